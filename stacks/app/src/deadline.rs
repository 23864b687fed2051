//! The per-request deadline. Every step that can wait (getting a connection, a statement, the
//! COMMIT, a cache command) runs under it, so a request never outlives
//! `--request-timeout-ms`, whatever the network does.

use std::future::IntoFuture;
use std::time::Duration;

use tokio::time::{Instant, error::Elapsed};

/// The instant by which a request must be answered.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// When the time is up.
    at: Instant,
}

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now() + timeout,
        }
    }

    /// This deadline, or `limit` from now if that comes first: for a step that has its own,
    /// shorter budget (a cache command, a health check).
    pub fn capped(self, limit: Duration) -> Self {
        Self {
            at: self.at.min(Instant::now() + limit),
        }
    }

    /// Runs `fut`, giving up (and dropping it) when the deadline passes.
    pub async fn run<F: IntoFuture>(self, fut: F) -> Result<F::Output, Elapsed> {
        tokio::time::timeout_at(self.at, fut).await
    }
}
