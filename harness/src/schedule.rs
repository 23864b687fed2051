//! The schedule: when each fault of the experiment starts and heals, as offsets from the
//! start of the workload. Faults still in effect when the workload ends are healed by
//! [`Schedule::heal_remaining`] before the final state is read. What a started fault leaves
//! running ([`fault::Running`], e.g. a link flap's task) is held here until it heals, and
//! stopped if the schedule is dropped first. Operations (`crate::operation`: rejoin,
//! switchover) sit on the same timeline, after the faults' heals and starts of the same
//! instant; each runs to its end before the next item (a failed one is recorded, and the
//! run goes on).

use crate::experiment::ScheduledFault;
use crate::fault;
use crate::history::EventKind;
use crate::operation::ScheduledOperation;
use crate::record::Recorder;
use crate::stack::{Stack, StackError};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One step of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Heal,
    Start,
    Operate,
}

/// The experiment's faults and which of them are in effect (with what each left running).
#[derive(Debug, Clone)]
pub struct Schedule {
    faults: Arc<Vec<ScheduledFault>>,
    operations: Arc<Vec<ScheduledOperation>>,
    active: Arc<Mutex<BTreeMap<usize, fault::Running>>>,
}

impl Schedule {
    /// The schedule of `faults` and `operations`.
    pub fn new(faults: Vec<ScheduledFault>, operations: Vec<ScheduledOperation>) -> Schedule {
        Schedule {
            faults: Arc::new(faults),
            operations: Arc::new(operations),
            active: Arc::default(),
        }
    }

    /// Starts and heals faults on time until the timeline is done or `cancel` fires. Heals
    /// come before starts at the same instant.
    pub async fn run(
        &self,
        stack: &Stack,
        recorder: &Recorder,
        cancel: &CancellationToken,
    ) -> Result<(), StackError> {
        let mut timeline: Vec<(Duration, Step, usize)> = Vec::new();
        for (i, f) in self.faults.iter().enumerate() {
            timeline.push((f.at, Step::Start, i));
            if let Some(h) = f.heal_at {
                timeline.push((h, Step::Heal, i));
            }
        }
        for (i, o) in self.operations.iter().enumerate() {
            timeline.push((o.at, Step::Operate, i));
        }
        timeline.sort();
        let clock = recorder.clock();
        for (at, step, i) in timeline {
            let due = tokio::time::Instant::from_std(clock.instant(at.as_nanos() as u64));
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(due) => {}
            }
            match step {
                Step::Start => self.start(i, stack, recorder).await?,
                Step::Heal => self.heal(i, stack, recorder).await?,
                Step::Operate => {
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = self.operate(i, stack, recorder) => {}
                    }
                }
            }
        }
        Ok(())
    }

    async fn start(&self, i: usize, stack: &Stack, recorder: &Recorder) -> Result<(), StackError> {
        let spec = &self.faults[i].fault;
        let hits_primary = fault::hits_primary(spec, stack);
        // The fault is stamped when its action begins: a kill takes effect on the first node
        // while the others are still being killed.
        let at = recorder.clock().now();
        let running = fault::start(spec, stack).await?;
        self.active
            .lock()
            .expect("schedule lock")
            .insert(i, running);
        recorder.event_at(
            at,
            EventKind::FaultStarted {
                index: i,
                fault: fault::describe(spec),
                hits_primary,
            },
        );
        Ok(())
    }

    /// Runs operation `i` to its end; a failure is recorded, not raised: the drill goes on
    /// and the report says what did not happen.
    async fn operate(&self, i: usize, stack: &Stack, recorder: &Recorder) {
        let operation = &self.operations[i].operation;
        recorder.event(EventKind::OperationStarted {
            index: i,
            operation: operation.describe(),
        });
        match operation.run(stack, recorder).await {
            Ok(()) => {
                recorder.event(EventKind::OperationDone { index: i });
            }
            Err(error) => {
                tracing::warn!(%error, "operation {i} failed");
                recorder.event(EventKind::OperationFailed { index: i, error });
            }
        }
    }

    async fn heal(&self, i: usize, stack: &Stack, recorder: &Recorder) -> Result<(), StackError> {
        let Some(running) = self.active.lock().expect("schedule lock").remove(&i) else {
            return Ok(());
        };
        let spec = &self.faults[i].fault;
        let at = recorder.clock().now();
        let note = fault::heal(spec, stack, running).await?;
        let mut description = fault::describe(spec);
        if let Some(n) = note {
            description = format!("{description} ({n})");
        }
        recorder.event_at(
            at,
            EventKind::FaultHealed {
                index: i,
                fault: description,
            },
        );
        Ok(())
    }

    /// Heals every fault still in effect, in reverse order of starting.
    pub async fn heal_remaining(
        &self,
        stack: &Stack,
        recorder: &Recorder,
    ) -> Result<(), StackError> {
        let active: Vec<usize> = self
            .active
            .lock()
            .expect("schedule lock")
            .keys()
            .rev()
            .copied()
            .collect();
        for i in active {
            self.heal(i, stack, recorder).await?;
        }
        Ok(())
    }
}
