//! The backend seam: what a place to run a stack must offer, as primitives only — place the
//! nodes, start one, run a tool beside one, kill, pause, restart, set a clock, say whether one
//! still runs, remove everything. The one bring-up recipe ([`super::recipe`]) and the
//! [`Stack`](super::Stack) build everything else on these, so a new backend is one folder
//! implementing this trait.
//!
//! Every method returns a boxed future so backends can sit behind `Box<dyn Backend>` (the
//! rest of the harness never knows which one it has).

use super::StackError;
use super::plan::{NodeSpec, StackPlan};
use super::topology::NodeId;
use super::wiring::Placement;
use crate::proxy::FaultProxy;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether a node runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeStatus {
    /// Its process or container runs.
    Running,
    /// It stopped by itself (not killed by a fault): what it said last, for a diagnosis.
    Exited {
        /// Exit status as the backend knows it.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// Not started, or killed.
    Down,
}

/// A place to run a stack: local processes, containers, …
pub trait Backend: Send + Sync {
    /// Its name in reports (`native`, `docker`).
    fn name(&self) -> &'static str;

    /// Decides where every node and link of `plan` is reached (and sets up what must exist
    /// before any node starts, such as the regions' networks). Called once, first.
    fn prepare<'a>(
        &'a mut self,
        plan: &'a StackPlan,
    ) -> BoxFuture<'a, Result<Placement, StackError>>;

    /// Starts the fault proxy every link goes through; returns once its API answers.
    fn start_proxy(&self) -> BoxFuture<'_, Result<FaultProxy, StackError>>;

    /// Starts a node (returns once it is started, not once it is ready).
    fn start<'a>(&'a self, node: &'a NodeSpec) -> BoxFuture<'a, Result<(), StackError>>;

    /// Runs `argv` to completion beside `node` (its machine or container, so addresses
    /// resolve as they do for the node): e.g. the app's `migrate`.
    fn run_tool<'a>(
        &'a self,
        node: &'a NodeId,
        argv: &'a [String],
    ) -> BoxFuture<'a, Result<(), StackError>>;

    /// SIGKILLs nodes at once, as crashed machines (no-op for those already down).
    fn kill<'a>(&'a self, nodes: &'a [NodeId]) -> BoxFuture<'a, Result<(), StackError>>;

    /// Freezes (`paused`) or resumes a node.
    fn pause<'a>(&'a self, node: &'a NodeId, paused: bool)
    -> BoxFuture<'a, Result<(), StackError>>;

    /// Starts a node that is down again, as it was started (its data kept).
    fn restart<'a>(&'a self, node: &'a NodeId) -> BoxFuture<'a, Result<(), StackError>>;

    /// Shifts the wall clock of a node started with `skewed` by `offset_ms`.
    fn set_clock<'a>(
        &'a self,
        node: &'a NodeId,
        offset_ms: i64,
    ) -> BoxFuture<'a, Result<(), StackError>>;

    /// Whether a node runs.
    fn status<'a>(&'a self, node: &'a NodeId) -> BoxFuture<'a, NodeStatus>;

    /// Keeps the stack's files (data directories, logs) after removal; returns where, when
    /// the backend has any to keep.
    fn keep_files(&self) -> Option<PathBuf>;

    /// Stops and removes everything it started. Also done (blocking) when the backend is
    /// dropped without it: on an error, a panic, or Ctrl-C during bring-up.
    fn remove(&self) -> BoxFuture<'_, ()>;
}
