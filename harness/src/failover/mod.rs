//! Failover managers — part of the system under test, not of the measurement: how the
//! primary is watched, declared down, replaced, and how clients are sent to the new one.
//! Each step a manager takes is an event in the history (`primary_declared_down`, `fenced`,
//! `promoted`, `rerouted`, `failover_failed`), so the checkers can split the observed RTO into
//! detect / promote / redirect whichever manager ran.
//!
//! [`builtin`] is regiondrill's own controller; real HA managers (Patroni, pg_auto_failover)
//! are further implementations of [`FailoverManager`].

pub mod builtin;
pub mod external;
pub mod patroni;
pub mod pg_auto_failover;

use crate::experiment::Experiment;
use crate::record::Recorder;
use crate::stack::Stack;
use crate::stack::backend::BoxFuture;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Something that watches the primary and fails over.
pub trait FailoverManager: Send + Sync {
    /// Its name in reports.
    fn name(&self) -> &'static str;

    /// Watches and acts until `stop` fires (a failover in progress finishes first), recording
    /// every step with `recorder`.
    fn run(
        &self,
        stack: Arc<Stack>,
        recorder: Recorder,
        stop: CancellationToken,
    ) -> BoxFuture<'static, ()>;
}

/// The manager an experiment names; on a target (`external`), the target's own, observed.
pub fn for_experiment(exp: &Experiment, external: bool) -> Box<dyn FailoverManager> {
    if external {
        return Box::new(external::ExternalWatch);
    }
    match &exp.failover.manager {
        crate::ha::Manager::Builtin => Box::new(builtin::Builtin::new(exp.failover.clone())),
        crate::ha::Manager::Patroni(p) => Box::new(patroni::PatroniWatch::new(p.clone())),
        crate::ha::Manager::PgAutoFailover(p) => {
            Box::new(pg_auto_failover::PgAutoFailoverWatch::new(p.clone()))
        }
    }
}
