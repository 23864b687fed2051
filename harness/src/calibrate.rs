//! Calibration: the highest rate this machine and this stack sustain, so users pick a rate
//! their host can drive instead of measuring their host and calling it a posture.
//!
//! The experiment's stack is brought up once, with its failover manager and no faults, and
//! warmed up for 2 s at the first rate. Then its workload (users, mix, keys) runs in steps of [`CalibrateOptions::step`] at rising
//! rates — doubling from [`CalibrateOptions::start_rate`] until a step is not sustained or
//! [`CalibrateOptions::max_rate`] is reached, then halving the gap between the last
//! sustained and the first unsustained rate three times. A step is **sustained** when
//! - no failover happened (a failover also ends the ramp: the stack is no longer as planned),
//! - at most 1 % of its operations did not end `ok`,
//! - the generator kept the plan and the runtime kept time: schedule lag p99 and timer lag
//!   p99 below the host checker's lateness ([`crate::checker::host::LATE_MS`], 25 ms),
//! - the p99 latency of its successful operations is within the bound: twice the first
//!   step's p99 plus 20 ms (or [`CalibrateOptions::p99_bound`]).
//!
//! The figure is the highest sustained rate.

use crate::checker::host::LATE_MS;
use crate::checker::percentile;
use crate::experiment::Experiment;
use crate::history::{EventKind, History, HostSample};
use crate::probe::host;
use crate::record::{Clock, Recorder};
use crate::run::RunOptions;
use crate::stack::{Stack, StackError};
use crate::workload::{self, client::AppClient, plan::Plan};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the unmeasured warm-up at the first rate lasts.
const WARM_UP: Duration = Duration::from_secs(2);

/// How to ramp.
#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    /// How long each rate runs.
    pub step: Duration,
    /// The first rate, operations per second.
    pub start_rate: f64,
    /// The highest rate tried.
    pub max_rate: f64,
    /// The p99 bound, ms (None: twice the first step's p99 plus 20 ms).
    pub p99_bound: Option<f64>,
}

impl Default for CalibrateOptions {
    fn default() -> Self {
        CalibrateOptions {
            step: Duration::from_secs(5),
            start_rate: 50.0,
            max_rate: 20_000.0,
            p99_bound: None,
        }
    }
}

/// One step of the ramp.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Step {
    /// Planned rate, operations per second.
    pub rate_per_s: f64,
    /// Operations that ended `ok`, per second of the step.
    pub ok_per_s: f64,
    /// p99 latency of the successful operations, ms.
    pub p99_ms: Option<f64>,
    /// Schedule lag p99, ms.
    pub schedule_lag_p99_ms: Option<f64>,
    /// Timer lag p99, ms.
    pub timer_lag_p99_ms: Option<f64>,
    /// Share of operations that did not end `ok`.
    pub not_ok: f64,
    /// Whether the failover manager failed over during the step.
    pub failover: bool,
    /// Why it was not sustained (empty: sustained).
    pub why_not: Vec<String>,
}

impl Step {
    /// Whether the step was sustained.
    pub fn sustained(&self) -> bool {
        self.why_not.is_empty()
    }
}

/// The outcome of a calibration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Calibration {
    /// The experiment calibrated.
    pub experiment: String,
    /// The backend.
    pub backend: String,
    /// The p99 bound used, ms.
    pub p99_bound_ms: f64,
    /// Every step, in the order run.
    pub steps: Vec<Step>,
    /// The highest sustained rate (None: not even the first).
    pub sustainable_rate_per_s: Option<f64>,
}

/// Calibrates `exp`'s stack on `opts`'s backend. `cancel` (Ctrl-C) stops it; the stack is
/// removed on every path.
pub async fn calibrate(
    exp: &Experiment,
    run: &RunOptions,
    opts: &CalibrateOptions,
    cancel: &CancellationToken,
) -> Result<Calibration, StackError> {
    let run_id = crate::run::run_id(&format!("calibrate-{}", exp.name));
    let backend = run.backend.backend(&run_id, run.images).await?;
    let stack = tokio::select! {
        s = Stack::up(exp.stack_plan(), backend) => Arc::new(s?),
        _ = cancel.cancelled() => return Err(StackError::NotRunning("calibration interrupted".into())),
    };
    let backend_name = stack.backend().to_string();
    let manager_recorder = Recorder::new(Clock::start());
    let stop = cancel.child_token();
    let manager = crate::failover::for_experiment(exp, false).run(
        stack.clone(),
        manager_recorder.clone(),
        stop.clone(),
    );
    let manager = tokio::spawn(manager);
    let ramp = ramp(exp, &stack, opts, &manager_recorder, cancel).await;
    stop.cancel();
    let _ = manager.await;
    if let Ok(stack) = Arc::try_unwrap(stack) {
        stack.teardown().await;
    }
    let (steps, bound) = ramp;
    let sustainable = steps
        .iter()
        .filter(|s| s.sustained())
        .map(|s| s.rate_per_s)
        .max_by(f64::total_cmp);
    Ok(Calibration {
        experiment: exp.name.clone(),
        backend: backend_name,
        p99_bound_ms: bound,
        steps,
        sustainable_rate_per_s: sustainable,
    })
}

/// The ramp: doubling, then three halvings of the gap. Returns the steps and the p99 bound.
async fn ramp(
    exp: &Experiment,
    stack: &Arc<Stack>,
    opts: &CalibrateOptions,
    manager: &Recorder,
    cancel: &CancellationToken,
) -> (Vec<Step>, f64) {
    let mut steps: Vec<Step> = Vec::new();
    let mut bound = opts.p99_bound;
    // A warm-up at the first rate, not measured: connections and caches fill, so the first
    // step's p99 (the bound's base) is the stack's, not its start-up's.
    let (_, mut next_id) = run_step(exp, stack, opts.start_rate, 1, WARM_UP, manager, cancel).await;
    next_id += 1;
    let (mut good, mut bad) = (None::<f64>, None::<f64>);
    let mut rate = opts.start_rate;
    let mut halvings = 0;
    while !cancel.is_cancelled() {
        let (step, ops) = run_step(exp, stack, rate, next_id, opts.step, manager, cancel).await;
        next_id += ops;
        let bound_ms = *bound.get_or_insert_with(|| 2.0 * step.p99_ms.unwrap_or(50.0) + 20.0);
        let step = judge(step, bound_ms);
        let (sustained, failover) = (step.sustained(), step.failover);
        steps.push(step);
        if failover {
            break;
        }
        if sustained {
            good = Some(rate);
        } else {
            bad = Some(rate);
        }
        rate = match (good, bad) {
            (_, None) if rate * 2.0 <= opts.max_rate => rate * 2.0,
            (_, None) => break,
            (None, Some(_)) => break,
            (Some(g), Some(b)) if halvings < 3 => {
                halvings += 1;
                ((g + b) / 2.0).round()
            }
            _ => break,
        };
        // Let replication and connection pools settle between steps.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    (steps, bound.unwrap_or(0.0))
}

/// Runs the workload at `rate` for `length`; the step (not judged yet) and how many
/// operations it planned.
async fn run_step(
    exp: &Experiment,
    stack: &Arc<Stack>,
    rate: f64,
    first_id: u64,
    length: Duration,
    manager: &Recorder,
    cancel: &CancellationToken,
) -> (Step, u64) {
    let mut w = exp.workload.clone();
    w.rate_per_s = rate;
    let plan = Arc::new(Plan::new(&w, length, exp.seed).with_first_id(first_id));
    let planned = plan.ops().count() as u64;
    let clock = Clock::start();
    let recorder = Recorder::new(clock);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop = cancel.child_token();
    let probe = tokio::spawn(host::watch(clock, samples.clone(), stop.clone()));
    let failovers_before = declared(&manager.finish());
    let client = AppClient::new(exp.workload.op_timeout);
    workload::run(
        plan,
        stack.clone(),
        client,
        exp.failover.dns_ttl,
        recorder.clone(),
        cancel.clone(),
    )
    .await;
    stop.cancel();
    let _ = probe.await;
    let history = recorder.finish();
    let host = std::mem::take(&mut *samples.lock().expect("host samples"));
    let failover = declared(&manager.finish()) > failovers_before;
    (measure(&history, &host, rate, length, failover), planned)
}

fn declared(h: &History) -> usize {
    h.events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::PrimaryDeclaredDown { .. }))
        .count()
}

/// A step's figures from its history and host samples.
fn measure(h: &History, host: &[HostSample], rate: f64, length: Duration, failover: bool) -> Step {
    let ok: Vec<_> = h.ops.iter().filter(|o| o.outcome.is_ok()).collect();
    let mut latency: Vec<f64> = ok.iter().map(|o| o.latency_ns() as f64 / 1e6).collect();
    let mut lag: Vec<f64> = h
        .ops
        .iter()
        .filter_map(|o| {
            o.planned_ns
                .map(|p| o.invoke_ns.saturating_sub(p) as f64 / 1e6)
        })
        .collect();
    let mut timer: Vec<f64> = host.iter().map(|s| s.timer_lag_ns as f64 / 1e6).collect();
    Step {
        rate_per_s: rate,
        ok_per_s: ok.len() as f64 / length.as_secs_f64(),
        p99_ms: percentile(&mut latency, 0.99),
        schedule_lag_p99_ms: percentile(&mut lag, 0.99),
        timer_lag_p99_ms: percentile(&mut timer, 0.99),
        not_ok: if h.ops.is_empty() {
            0.0
        } else {
            (h.ops.len() - ok.len()) as f64 / h.ops.len() as f64
        },
        failover,
        why_not: Vec::new(),
    }
}

/// Says why a step was not sustained (see the module's docs).
fn judge(mut s: Step, p99_bound_ms: f64) -> Step {
    if s.failover {
        s.why_not.push("the failover manager failed over".into());
    }
    if s.not_ok > 0.01 {
        s.why_not
            .push(format!("{:.1} % of operations not ok", s.not_ok * 100.0));
    }
    let over = |v: Option<f64>, limit: f64| v.is_some_and(|v| v >= limit);
    if over(s.schedule_lag_p99_ms, LATE_MS) {
        s.why_not.push("operations sent late".into());
    }
    if over(s.timer_lag_p99_ms, LATE_MS) {
        s.why_not.push("timers woke late".into());
    }
    if over(s.p99_ms, p99_bound_ms) {
        s.why_not.push(format!("p99 over {p99_bound_ms:.0} ms"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(p99: f64, lag: f64, timer: f64, not_ok: f64, failover: bool) -> Step {
        Step {
            rate_per_s: 100.0,
            ok_per_s: 100.0,
            p99_ms: Some(p99),
            schedule_lag_p99_ms: Some(lag),
            timer_lag_p99_ms: Some(timer),
            not_ok,
            failover,
            why_not: Vec::new(),
        }
    }

    #[test]
    fn a_step_is_sustained_only_within_every_bound() {
        assert!(judge(step(90.0, 2.0, 3.0, 0.0, false), 100.0).sustained());
        let s = judge(step(120.0, 30.0, 30.0, 0.02, true), 100.0);
        assert_eq!(
            s.why_not,
            [
                "the failover manager failed over",
                "2.0 % of operations not ok",
                "operations sent late",
                "timers woke late",
                "p99 over 100 ms"
            ]
        );
    }
}
