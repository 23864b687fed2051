//! Running one experiment, end to end:
//!
//! 1. bring up the stack (backend), set the regions' round trip;
//! 2. start the probes and the failover controller, then the workload and the fault
//!    schedule together (fault offsets count from the workload's start);
//! 3. when the workload ends: heal every fault, let the system settle, read the final state;
//! 4. tear the stack down (on every path: success, error, cancellation);
//! 5. check the history and probes, compare with the SLOs, write the run folder.

use crate::checker::{self, Findings, Verdict};
use crate::experiment::Experiment;
use crate::failover;
use crate::final_state;
use crate::history::{EventKind, FinalState, History, Probes};
use crate::probe::{heartbeat, replication_stat};
use crate::record::{Clock, Recorder};
use crate::schedule::Schedule;
use crate::stack::docker::{self, engine::Engine, images::Images};
use crate::stack::native::postgres;
use crate::stack::{Stack, StackError, native};
use crate::workload::{self, client::AppClient, plan::Plan};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Which backend brings the stack up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// Docker when an engine answers, else native.
    Auto,
    /// Local processes.
    Native,
    /// Containers (testcontainers).
    Docker,
}

/// A stage of a run, as reported to an [`Observer`] (progress display).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stage {
    /// The stack is being brought up.
    BringingUp,
    /// The workload and the fault schedule run for `duration`.
    Workload {
        /// The workload's duration.
        duration: Duration,
    },
    /// Faults are healed and the system settles.
    Healing,
    /// The stack is torn down.
    TearingDown,
    /// The checkers run and the run folder is written.
    Checking,
}

impl Stage {
    /// A few words for progress displays.
    pub fn describe(&self) -> String {
        match self {
            Stage::BringingUp => "bringing up the stack".into(),
            Stage::Workload { duration } => format!(
                "workload and faults for {}",
                humantime::format_duration(*duration)
            ),
            Stage::Healing => "healing and settling".into(),
            Stage::TearingDown => "tearing down".into(),
            Stage::Checking => "checking".into(),
        }
    }
}

/// Receives a run's stages.
pub type Observer = Arc<dyn Fn(Stage) + Send + Sync>;

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    /// Backend.
    pub backend: BackendChoice,
    /// Where run folders go (`<out>/<run-id>/`).
    pub out: PathBuf,
    /// Keep the stack's files (data directories, logs) after the run, for inspection.
    pub keep_stack_files: bool,
    /// Which container images the Docker backend runs.
    pub images: crate::stack::docker::images::ImageChoice,
    /// Told of each stage (progress display); `None` for silence.
    pub observer: Option<Observer>,
}

impl RunOptions {
    fn stage(&self, stage: Stage) {
        if let Some(o) = &self.observer {
            o(stage);
        }
    }
}

/// Why an experiment could not run (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The stack could not be brought up or operated.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The run was interrupted (Ctrl-C).
    #[error("interrupted")]
    Cancelled,
    /// Writing the run folder failed.
    #[error("writing {path}: {error}")]
    Output {
        /// The path.
        path: String,
        /// The error.
        error: String,
    },
}

/// How long each stage of the harness took (for the overhead figures).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    /// Stack bring-up to ready, ms.
    pub bring_up_ms: f64,
    /// Workload, ms.
    pub workload_ms: f64,
    /// Heal and settle, ms.
    pub heal_settle_ms: f64,
    /// Teardown, ms.
    pub teardown_ms: f64,
    /// Checkers, ms.
    pub check_ms: f64,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The run id (also the folder name).
    pub run_id: String,
    /// The run folder.
    pub dir: PathBuf,
    /// The experiment as run.
    pub experiment: Experiment,
    /// Operations and events.
    pub history: History,
    /// Probe samples.
    pub probes: Probes,
    /// The final state.
    pub final_state: FinalState,
    /// What the checkers found.
    pub findings: Findings,
    /// SLO comparison.
    pub verdict: Verdict,
    /// Stage timings.
    pub timings: Timings,
    /// The backend used.
    pub backend: String,
    /// The fault proxy used.
    pub fault_proxy: String,
    /// Where the stack's files were kept, when asked.
    pub stack_files: Option<PathBuf>,
}

/// Runs one experiment. `cancel` (Ctrl-C) stops it; the stack is torn down on every path.
pub async fn run(
    exp: &Experiment,
    opts: &RunOptions,
    cancel: &CancellationToken,
) -> Result<RunOutput, RunError> {
    let run_id = run_id(&exp.name);
    let docker = match opts.backend {
        BackendChoice::Native => false,
        BackendChoice::Docker => true,
        BackendChoice::Auto => Engine::available().await,
    };
    let backend = if docker { "docker" } else { "native" };
    opts.stage(Stage::BringingUp);
    let t = Instant::now();
    let up = async {
        if docker {
            let engine = Engine::connect().await?;
            let local = engine.has_image(&Images::local().db).await;
            docker::up(exp, &run_id, Images::resolve(opts.images, local)).await
        } else {
            native::up(exp, &run_id).await
        }
    };
    let stack = tokio::select! {
        _ = cancel.cancelled() => return Err(RunError::Cancelled),
        s = up => Arc::new(s?),
    };
    let bring_up_ms = ms_since(t);
    let fault_proxy = stack.fault_proxy();
    let result = drive(exp, &stack, cancel, opts).await;
    opts.stage(Stage::TearingDown);
    let t = Instant::now();
    let stack_files = if opts.keep_stack_files {
        stack.keep_files().await
    } else {
        None
    };
    teardown(stack).await;
    let teardown_ms = ms_since(t);
    let driven = result?;

    opts.stage(Stage::Checking);
    let t = Instant::now();
    let findings = checker::check(&driven.history, &driven.probes, Some(&driven.final_state));
    let verdict = checker::verdict(&findings, &exp.slo);
    let check_ms = ms_since(t);
    let timings = Timings {
        bring_up_ms,
        workload_ms: driven.workload_ms,
        heal_settle_ms: driven.heal_settle_ms,
        teardown_ms,
        check_ms,
    };
    let dir = opts.out.join(&run_id);
    let output = RunOutput {
        run_id,
        dir,
        experiment: exp.clone(),
        history: driven.history,
        probes: driven.probes,
        final_state: driven.final_state,
        findings,
        verdict,
        timings,
        backend: backend.into(),
        fault_proxy,
        stack_files,
    };
    write_run_folder(&output)?;
    Ok(output)
}

struct Driven {
    history: History,
    probes: Probes,
    final_state: FinalState,
    workload_ms: f64,
    heal_settle_ms: f64,
}

/// Everything between bring-up and teardown.
async fn drive(
    exp: &Experiment,
    stack: &Arc<Stack>,
    cancel: &CancellationToken,
    opts: &RunOptions,
) -> Result<Driven, RunError> {
    let primary = stack.routing.snapshot().primary;
    let primary_dsn = stack
        .db_dsn(&primary)
        .ok_or_else(|| StackError::Other("no primary database".into()))?;
    let replica_region = crate::stack::topology::other_region(&primary).to_string();
    let replica_dsn = stack.db_dsn(&replica_region);
    let hb = match &replica_dsn {
        Some(replica) => Some(
            heartbeat::HeartbeatProbe::setup(&primary_dsn, replica)
                .await
                .map_err(StackError::Other)?,
        ),
        None => None,
    };
    let plan = Arc::new(Plan::new(&exp.workload, exp.duration, exp.seed));
    let client = AppClient::new(exp.workload.op_timeout);

    let clock = Clock::start();
    let recorder = Recorder::new(clock);
    let stop_probes = cancel.child_token();
    let stop_controller = cancel.child_token();
    let stats = Arc::new(Mutex::new(Vec::new()));
    let mut background = tokio::task::JoinSet::new();
    if let (Some(hb), Some(replica_dsn)) = (&hb, replica_dsn) {
        let (h, dsn, region, routing, stop) = (
            hb.clone(),
            primary_dsn.clone(),
            primary.clone(),
            stack.routing.clone(),
            stop_probes.clone(),
        );
        background.spawn(async move { h.write(dsn, region, routing, clock, stop).await });
        let (h, stop) = (hb.clone(), stop_probes.clone());
        background.spawn(async move { h.poll(replica_dsn, clock, stop).await });
        // pg_stat_replication names a physical standby by its cluster_name, a logical
        // subscriber by its subscription.
        let walsender = if stack.posture.is_active_active() {
            postgres::subscription_name(&primary)
        } else {
            replica_region.clone()
        };
        let (dsn, standby, out, stop) = (
            primary_dsn.clone(),
            walsender,
            stats.clone(),
            stop_probes.clone(),
        );
        background
            .spawn(async move { replication_stat::sample(dsn, standby, clock, out, stop).await });
    }
    let controller = tokio::spawn(failover::run(
        stack.clone(),
        exp.failover.clone(),
        recorder.clone(),
        stop_controller.clone(),
    ));
    let mut bg = Background {
        controller: Some(controller),
        probes: background,
        stop_probes,
        stop_controller,
    };
    let result = run_and_heal(exp, stack, cancel, plan, client, &recorder, &mut bg, opts).await;
    // Whatever happened, nothing of the run may still hold the stack when it is torn down.
    bg.stop_controller().await;
    bg.stop_probes().await;
    let (workload_ms, heal_settle_ms, final_state) = result?;
    let probes = Probes {
        heartbeat_poll_ms: heartbeat::POLL_INTERVAL.as_secs_f64() * 1e3,
        heartbeats: hb.map(|h| h.heartbeats()).unwrap_or_default(),
        replication: std::mem::take(&mut *stats.lock().expect("stats lock")),
        // Filled by the in-region health probe (run side, not yet in this checkout).
        health: Vec::new(),
    };
    Ok(Driven {
        history: recorder.finish(),
        probes,
        final_state,
        workload_ms,
        heal_settle_ms,
    })
}

/// Tears the stack down once the run's tasks have let go of it (they all stop on their own
/// within moments of the run ending).
async fn teardown(mut stack: Arc<Stack>) {
    for _ in 0..500 {
        match Arc::try_unwrap(stack) {
            Ok(s) => return s.teardown().await,
            Err(shared) => stack = shared,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::error!("the stack is still shared 5 s after the run; it is removed when dropped");
}

/// The run's background tasks: the failover controller and the probes.
struct Background {
    controller: Option<tokio::task::JoinHandle<()>>,
    probes: tokio::task::JoinSet<()>,
    stop_probes: CancellationToken,
    stop_controller: CancellationToken,
}

impl Background {
    /// Stops the controller and waits for it (a failover in progress finishes first).
    async fn stop_controller(&mut self) {
        self.stop_controller.cancel();
        if let Some(c) = self.controller.take() {
            let _ = c.await;
        }
    }

    /// Stops the probes and waits for them.
    async fn stop_probes(&mut self) {
        self.stop_probes.cancel();
        while self.probes.join_next().await.is_some() {}
    }
}

/// The workload with the fault schedule, then heal, settle and read the final state.
/// Returns the workload's and the heal's durations (ms) and the final state.
#[allow(clippy::too_many_arguments)] // each is a distinct part of the run, used once
async fn run_and_heal(
    exp: &Experiment,
    stack: &Arc<Stack>,
    cancel: &CancellationToken,
    plan: Arc<Plan>,
    client: AppClient,
    recorder: &Recorder,
    bg: &mut Background,
    opts: &RunOptions,
) -> Result<(f64, f64, FinalState), RunError> {
    opts.stage(Stage::Workload {
        duration: exp.duration,
    });
    let t = Instant::now();
    recorder.event(EventKind::WorkloadStarted);
    let schedule = Schedule::new(exp.faults.clone());
    let workload = workload::run(
        plan,
        stack.clone(),
        client,
        exp.failover.dns_ttl,
        recorder.clone(),
        cancel.clone(),
    );
    let (_, scheduled) = tokio::join!(workload, schedule.run(stack, recorder, cancel));
    recorder.event(EventKind::WorkloadStopped);
    let workload_ms = ms_since(t);
    scheduled?;
    if cancel.is_cancelled() {
        return Err(RunError::Cancelled);
    }
    opts.stage(Stage::Healing);
    let t = Instant::now();
    bg.stop_controller().await;
    schedule.heal_remaining(stack, recorder).await?;
    stack.heal_links().await?;
    recorder.event(EventKind::Healed);
    tokio::select! {
        _ = cancel.cancelled() => return Err(RunError::Cancelled),
        _ = tokio::time::sleep(exp.settle) => {}
    }
    bg.stop_probes().await;
    let final_state = final_state::read(stack).await;
    Ok((workload_ms, ms_since(t), final_state))
}

/// `<UTC yyyymmdd-hhmmss>-<name>-<4 hex>`: sortable, unique, readable.
pub fn run_id(name: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let suffix: u16 = rand::random();
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{name}-{suffix:04x}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// `results.json`'s schema version.
pub const RESULTS_SCHEMA: &str = "regiondrill.results/v1";

/// `results.json`: everything a report needs, each finding under a stable dotted name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// [`RESULTS_SCHEMA`].
    pub schema: String,
    /// The run.
    pub run: RunInfo,
    /// The experiment as run.
    pub experiment: Experiment,
    /// What the checkers found.
    pub findings: Findings,
    /// SLO comparison: `slo.passed`, `slo.checks`.
    pub slo: Verdict,
}

/// About the run itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// Run id.
    pub id: String,
    /// Backend.
    pub backend: String,
    /// Fault proxy.
    pub fault_proxy: String,
    /// What a "lost write" can survive here.
    pub durability: String,
    /// Stage timings.
    pub timings: Timings,
}

impl RunOutput {
    /// The `results.json` content.
    pub fn results(&self) -> Results {
        Results {
            schema: RESULTS_SCHEMA.into(),
            run: RunInfo {
                id: self.run_id.clone(),
                backend: self.backend.clone(),
                fault_proxy: self.fault_proxy.clone(),
                durability: "fsync=off: nodes die by SIGKILL, so the OS keeps every write a process made; power loss is not emulated".into(),
                timings: self.timings.clone(),
            },
            experiment: self.experiment.clone(),
            findings: self.findings.clone(),
            slo: self.verdict.clone(),
        }
    }
}

fn write_run_folder(out: &RunOutput) -> Result<(), RunError> {
    let dir = &out.dir;
    let err = |p: &Path, e: std::io::Error| RunError::Output {
        path: p.display().to_string(),
        error: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| err(&p, e))
    };
    if let Ok(text) = std::fs::read(&out.experiment.source) {
        write("experiment.toml", &text)?;
    }
    write(
        "experiment.json",
        &serde_json::to_vec_pretty(&out.experiment).expect("serializable"),
    )?;
    let mut history = Vec::new();
    out.history
        .write_jsonl(&mut history)
        .map_err(|e| err(&dir.join("history.jsonl"), e))?;
    write("history.jsonl", &history)?;
    write(
        "probes.json",
        &serde_json::to_vec_pretty(&out.probes).expect("serializable"),
    )?;
    write(
        "final_state.json",
        &serde_json::to_vec(&out.final_state).expect("serializable"),
    )?;
    write(
        "results.json",
        &serde_json::to_vec_pretty(&out.results()).expect("serializable"),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_783), (2026, 11, 26));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
