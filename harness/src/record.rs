//! The run's clock and recorder: every operation, event and probe sample is stamped on one
//! monotonic clock and appended here while the run goes on; [`Recorder::finish`] hands the
//! history to the checkers.

use crate::history::{Event, EventKind, History, Nanos, Operation};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The harness's one clock: nanoseconds since the workload started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// Now, in ns since the start.
    pub fn now(&self) -> Nanos {
        self.start.elapsed().as_nanos() as Nanos
    }

    /// The instant `ns` after the start.
    pub fn instant(&self, ns: Nanos) -> Instant {
        self.start + std::time::Duration::from_nanos(ns)
    }
}

#[derive(Debug, Default)]
struct Inner {
    ops: Vec<Operation>,
    events: Vec<Event>,
}

/// Shared, append-only recorder of operations and events.
#[derive(Debug, Clone)]
pub struct Recorder {
    clock: Clock,
    inner: Arc<Mutex<Inner>>,
}

impl Recorder {
    /// A recorder on `clock`.
    pub fn new(clock: Clock) -> Recorder {
        Recorder {
            clock,
            inner: Arc::default(),
        }
    }

    /// The clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Records a completed operation.
    pub fn op(&self, op: Operation) {
        self.inner.lock().expect("recorder lock").ops.push(op);
    }

    /// Records an event that happens now; returns its timestamp.
    pub fn event(&self, kind: EventKind) -> Nanos {
        self.event_at(self.clock.now(), kind)
    }

    /// Records an event that happened at `at_ns` (e.g. when a fault's action began).
    pub fn event_at(&self, at_ns: Nanos, kind: EventKind) -> Nanos {
        tracing::info!(at_ms = at_ns / 1_000_000, ?kind, "event");
        self.inner
            .lock()
            .expect("recorder lock")
            .events
            .push(Event { at_ns, kind });
        at_ns
    }

    /// The history so far: operations in invoke order, events in time order.
    pub fn finish(&self) -> History {
        let inner = self.inner.lock().expect("recorder lock");
        let mut ops = inner.ops.clone();
        ops.sort_by_key(|o| (o.invoke_ns, o.id));
        let mut events = inner.events.clone();
        events.sort_by_key(|e| e.at_ns);
        History { ops, events }
    }
}
