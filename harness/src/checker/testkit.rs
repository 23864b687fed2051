//! Builders for hand-made histories in the checkers' known-answer tests. Times are given in
//! whole milliseconds so the expected figures can be worked out by hand in comments.

use crate::history::{Event, EventKind, History, Nanos, OpKind, Operation, Outcome, Source};

/// One millisecond in [`Nanos`].
pub const MS: Nanos = 1_000_000;

/// An operation under construction: by default user 1 of region `us`, outcome `ok`.
pub struct B(pub Operation);

/// An `ok` write `id` of `key`, invoked at `invoke_ms`, acknowledged at `complete_ms`.
pub fn w(id: u64, key: &str, invoke_ms: u64, complete_ms: u64) -> B {
    B(Operation {
        from: None,
        id,
        user: 1,
        region: "us".into(),
        kind: OpKind::Write,
        key: key.into(),
        invoke_ns: invoke_ms * MS,
        complete_ns: complete_ms * MS,
        outcome: Outcome::Ok {
            served_by: "us".into(),
            version: Some(id as i64),
            write_id: Some(id),
            source: None, committed_by: None, value: None
        },
    })
}

/// An `ok` read `id` of `key` from the database that returned write `returned` (None: absent).
pub fn r(id: u64, key: &str, invoke_ms: u64, complete_ms: u64, returned: Option<u64>) -> B {
    B(Operation {
        from: None,
        id,
        user: 1,
        region: "us".into(),
        kind: OpKind::Read,
        key: key.into(),
        invoke_ns: invoke_ms * MS,
        complete_ns: complete_ms * MS,
        outcome: Outcome::Ok {
            served_by: "us".into(),
            version: returned.map(|v| v as i64),
            write_id: returned,
            source: Some(Source::Db), committed_by: None, value: None
        },
    })
}

impl B {
    /// Issued by this user.
    pub fn user(mut self, user: u32) -> B {
        self.0.user = user;
        self
    }

    /// The user's home region (and the serving region, for `ok` outcomes).
    pub fn region(mut self, region: &str) -> B {
        self.0.region = region.into();
        if let Outcome::Ok { served_by, .. } = &mut self.0.outcome {
            *served_by = region.into();
        }
        self
    }

    /// The outcome is `fail`.
    pub fn fail(mut self) -> B {
        self.0.outcome = Outcome::Fail {
            error: "refused".into(),
        };
        self
    }

    /// The outcome is `unknown`.
    pub fn unknown(mut self) -> B {
        self.0.outcome = Outcome::Unknown {
            error: "timeout".into(),
        };
        self
    }

    /// A read served from the cache.
    pub fn cache(mut self) -> B {
        if let Outcome::Ok { source, .. } = &mut self.0.outcome {
            *source = Some(Source::Cache);
        }
        self
    }
}

/// A history of these operations (in the given order) and events.
pub fn history(ops: Vec<B>, events: Vec<Event>) -> History {
    History {
        ops: ops.into_iter().map(|b| b.0).collect(),
        events,
    }
}

/// An event at `at_ms`.
pub fn ev(at_ms: u64, kind: EventKind) -> Event {
    Event {
        at_ns: at_ms * MS,
        kind,
    }
}

/// Fault `index` starts at `at_ms`.
pub fn fault(at_ms: u64, index: usize, hits_primary: bool) -> Event {
    ev(
        at_ms,
        EventKind::FaultStarted {
            index,
            fault: format!("fault {index}"),
            hits_primary,
        },
    )
}

/// Fault `index` heals at `at_ms`.
pub fn heal(at_ms: u64, index: usize) -> Event {
    ev(
        at_ms,
        EventKind::FaultHealed {
            index,
            fault: format!("fault {index}"),
        },
    )
}

/// The controller's failover steps: declared down, promoted, rerouted (to `eu`).
pub fn failover_steps(declared_ms: u64, promoted_ms: u64, rerouted_ms: u64) -> Vec<Event> {
    vec![
        ev(
            declared_ms,
            EventKind::PrimaryDeclaredDown {
                region: "us".into(),
            },
        ),
        ev(
            promoted_ms,
            EventKind::Promoted {
                region: "eu".into(),
            },
        ),
        ev(
            rerouted_ms,
            EventKind::Rerouted {
                region: "eu".into(),
            },
        ),
    ]
}
