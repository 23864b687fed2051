//! Running one experiment, end to end:
//!
//! 1. bring up the stack (the experiment's plan over the chosen backend);
//! 2. start the probes and the failover manager, then the workload and the fault schedule
//!    together (fault offsets count from the workload's start);
//! 3. when the workload ends: heal every fault, let the system settle, read the final state;
//! 4. tear the stack down (on every path: success, error, cancellation);
//! 5. check the history and probes, compare with the SLOs, write the run folder
//!    ([`crate::run_folder`]).

use crate::checker::{self, Findings, Verdict};
use crate::experiment::Experiment;
use crate::failover;
use crate::final_state;
use crate::history::{EventKind, FinalState, History, Probes};
use crate::probe::ProbeSet;
use crate::record::{Clock, Recorder};
use crate::run_folder::{Incomplete, Results, RunFolder, RunInfo, Timings, WriteError};
use crate::schedule::Schedule;
use crate::stack::docker::images::ImageChoice;
use crate::stack::{BackendChoice, Stack, StackError};
use crate::workload::{self, client::AppClient, plan::Plan};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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
    pub images: ImageChoice,
    /// Told of each stage (progress display); `None` for silence.
    pub observer: Option<Observer>,
    /// Drive this stack someone else runs instead of bringing one up (`--target`).
    pub target: Option<crate::target::Target>,
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
    /// The run was interrupted (Ctrl-C), in the stage named.
    #[error("interrupted while {stage}")]
    Interrupted {
        /// The stage it was in, e.g. "bringing up the stack".
        stage: String,
    },
    /// Writing the run folder failed.
    #[error(transparent)]
    Output(#[from] WriteError),
    /// The target (its file) cannot run the experiment: every reason, one per line.
    #[error("{} cannot run this experiment:\n  {}", .0.display(), .1.join("\n  "))]
    Refused(PathBuf, Vec<String>),
    /// The run stopped early; what it recorded up to then is in `dir`, marked incomplete.
    #[error("{error} (incomplete run folder: {})", dir.display())]
    Incomplete {
        /// Why it stopped.
        error: Box<RunError>,
        /// The run folder, with `incomplete.json`.
        dir: PathBuf,
    },
}

impl RunError {
    /// Whether the run was interrupted (rather than failing by itself).
    pub fn is_interrupted(&self) -> bool {
        match self {
            RunError::Interrupted { .. } => true,
            RunError::Incomplete { error, .. } => error.is_interrupted(),
            _ => false,
        }
    }
}

/// Follows a run's stages, and remembers the one it was in when `cancel` fired: Ctrl-C can
/// come at any moment, and the report must say when.
struct StageTracker {
    current: Arc<Mutex<Stage>>,
    interrupted_in: Arc<std::sync::OnceLock<Stage>>,
}

impl StageTracker {
    fn new(cancel: &CancellationToken) -> StageTracker {
        let current = Arc::new(Mutex::new(Stage::BringingUp));
        let interrupted_in = Arc::new(std::sync::OnceLock::new());
        let (c, at, token) = (current.clone(), interrupted_in.clone(), cancel.clone());
        tokio::spawn(async move {
            token.cancelled().await;
            let _ = at.set(*c.lock().expect("stage lock"));
        });
        StageTracker {
            current,
            interrupted_in,
        }
    }

    fn enter(&self, stage: Stage, opts: &RunOptions) {
        *self.current.lock().expect("stage lock") = stage;
        opts.stage(stage);
    }

    /// The error for an interrupted run.
    fn interrupted(&self) -> RunError {
        let stage = self
            .interrupted_in
            .get()
            .copied()
            .unwrap_or_else(|| *self.current.lock().expect("stage lock"));
        RunError::Interrupted {
            stage: stage.describe(),
        }
    }
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
/// A run that stops early — interrupted in any stage, or failing after bring-up — still
/// writes its run folder, with what it recorded and `incomplete.json` saying why (never
/// `results.json`: there is no verdict).
pub async fn run(
    exp: &Experiment,
    opts: &RunOptions,
    cancel: &CancellationToken,
) -> Result<RunOutput, RunError> {
    let run_id = run_id(&exp.name);
    let dir = opts.out.join(&run_id);
    let stages = StageTracker::new(cancel);
    stages.enter(Stage::BringingUp, opts);
    let t = Instant::now();
    let up = async {
        if let Some(target) = &opts.target {
            let refusals = crate::target::needs::refusals(target, exp);
            if !refusals.is_empty() {
                return Err(RunError::Refused(target.source.clone(), refusals));
            }
            let plan = crate::stack::external::plan_for(exp.stack_plan(), target);
            return Ok(crate::stack::external::attach(plan, target).await?);
        }
        let plan = exp.stack_plan();
        let backend = opts.backend.backend(&run_id, opts.images).await?;
        Ok(Stack::up(plan, backend).await?)
    };
    let stack = tokio::select! {
        _ = cancel.cancelled() => {
            return Err(incomplete(&dir, exp, None, stages.interrupted()));
        }
        s = up => Arc::new(s?),
    };
    let bring_up_ms = ms_since(t);
    let (backend, fault_proxy) = (stack.backend(), stack.fault_proxy());
    let (recorded, result) = drive(exp, &stack, cancel, opts, &stages).await;
    stages.enter(Stage::TearingDown, opts);
    let t = Instant::now();
    let stack_files = if opts.keep_stack_files {
        stack.keep_files()
    } else {
        None
    };
    teardown(stack).await;
    let teardown_ms = ms_since(t);
    let healed = match (recorded, result) {
        (Some(recorded), Ok(healed)) if !cancel.is_cancelled() => (recorded, healed),
        (recorded, result) => {
            let error = match result {
                Err(e) if !e.is_interrupted() && !cancel.is_cancelled() => e,
                _ => stages.interrupted(),
            };
            return Err(incomplete(&dir, exp, recorded.as_ref(), error));
        }
    };
    let (recorded, (workload_ms, heal_settle_ms, final_state)) = healed;

    stages.enter(Stage::Checking, opts);
    let t = Instant::now();
    let findings = checker::check(&recorded.history, &recorded.probes, Some(&final_state));
    let verdict = checker::verdict(&findings, &exp.slo);
    let timings = Timings {
        bring_up_ms,
        workload_ms,
        heal_settle_ms,
        teardown_ms,
        check_ms: ms_since(t),
    };
    let output = RunOutput {
        run_id,
        dir,
        experiment: exp.clone(),
        history: recorded.history,
        probes: recorded.probes,
        final_state,
        findings,
        verdict,
        timings,
        backend: backend.into(),
        fault_proxy,
        stack_files,
    };
    if cancel.is_cancelled() {
        let recorded = Recorded {
            history: output.history,
            probes: output.probes,
        };
        let error = stages.interrupted();
        return Err(incomplete(&output.dir, exp, Some(&recorded), error));
    }
    let folder = RunFolder::create(&output.dir)?;
    folder.experiment(exp)?;
    folder.recorded(&output.history, &output.probes)?;
    folder.complete(&output.final_state, &output.results())?;
    Ok(output)
}

/// What a run recorded, complete or not.
struct Recorded {
    history: History,
    probes: Probes,
}

/// The workload's and the heal's durations (ms) and the final state.
type Healed = (f64, f64, FinalState);

/// Everything between bring-up and teardown. Whatever happens, returns what was recorded
/// (None only when recording never began) beside the outcome.
async fn drive(
    exp: &Experiment,
    stack: &Arc<Stack>,
    cancel: &CancellationToken,
    opts: &RunOptions,
    stages: &StageTracker,
) -> (Option<Recorded>, Result<Healed, RunError>) {
    let heartbeat = match ProbeSet::prepare(stack).await {
        Ok(h) => h,
        Err(e) => return (None, Err(StackError::from(e).into())),
    };
    // The run's clock starts with the workload: plan and fault times count from here.
    let clock = Clock::start();
    let mut probes = ProbeSet::start(stack, heartbeat, clock, cancel.child_token());
    if let Some(r) = &exp.residency {
        let kv = Plan::new(&exp.workload, exp.duration, exp.seed);
        let personal = crate::residency::PersonalPlan::new(r, &kv, exp.duration, exp.seed);
        let targets = personal
            .erasures
            .iter()
            .map(|&(at, user)| (at, user, kv.home(user).to_string()))
            .collect();
        probes.watch_erasures(stack, targets, r.poll, clock);
    }
    let recorder = Recorder::new(clock);
    let stop_manager = cancel.child_token();
    let manager = failover::for_experiment(exp, opts.target.is_some());
    let manager = tokio::spawn(manager.run(stack.clone(), recorder.clone(), stop_manager.clone()));
    let mut bg = Background {
        manager: Some(manager),
        stop_manager,
        probes: Some(probes),
        sampled: None,
    };
    let result = run_and_heal(exp, stack, cancel, &recorder, &mut bg, opts, stages).await;
    // Whatever happened, nothing of the run may still hold the stack when it is torn down.
    bg.stop_manager().await;
    bg.stop_probes().await;
    let recorded = Recorded {
        history: recorder.finish(),
        probes: bg.sampled.take().unwrap_or_default(),
    };
    (Some(recorded), result)
}

/// Tears the stack down once the run's tasks have let go of it (they all stop on their own
/// within moments of the run ending).
pub(crate) async fn teardown(mut stack: Arc<Stack>) {
    for _ in 0..500 {
        match Arc::try_unwrap(stack) {
            Ok(s) => return s.teardown().await,
            Err(shared) => stack = shared,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::error!("the stack is still shared 5 s after the run; it is removed when dropped");
}

/// The run's background tasks: the failover manager and the probes.
struct Background {
    manager: Option<tokio::task::JoinHandle<()>>,
    stop_manager: CancellationToken,
    probes: Option<ProbeSet>,
    sampled: Option<Probes>,
}

impl Background {
    /// Stops the failover manager and waits for it (a failover in progress finishes first).
    async fn stop_manager(&mut self) {
        self.stop_manager.cancel();
        if let Some(m) = self.manager.take() {
            let _ = m.await;
        }
    }

    /// Stops the probes and keeps what they sampled.
    async fn stop_probes(&mut self) {
        if let Some(p) = self.probes.take() {
            self.sampled = Some(p.finish().await);
        }
    }
}

/// The workload with the fault schedule, then heal, settle and read the final state.
async fn run_and_heal(
    exp: &Experiment,
    stack: &Arc<Stack>,
    cancel: &CancellationToken,
    recorder: &Recorder,
    bg: &mut Background,
    opts: &RunOptions,
    stages: &StageTracker,
) -> Result<Healed, RunError> {
    stages.enter(
        Stage::Workload {
            duration: exp.duration,
        },
        opts,
    );
    let t = Instant::now();
    recorder.event(EventKind::WorkloadStarted);
    let schedule = Schedule::new(exp.faults.clone(), exp.operations.clone());
    let mut plan = Plan::new(&exp.workload, exp.duration, exp.seed);
    if let Some(r) = &exp.residency {
        // Users who ask for erasure stop using the service from then on.
        let personal = crate::residency::PersonalPlan::new(r, &plan, exp.duration, exp.seed);
        plan.departures = personal.erasures.iter().map(|&(at, u)| (u, at)).collect();
    }
    let plan = Arc::new(plan);
    let client = AppClient::new(exp.workload.op_timeout);
    let workload = workload::run(
        plan.clone(),
        stack.clone(),
        client,
        exp.failover.dns_ttl,
        recorder.clone(),
        cancel.clone(),
    );
    let personal = async {
        let Some(r) = &exp.residency else { return };
        let personal = crate::residency::PersonalPlan::new(r, &plan, exp.duration, exp.seed);
        crate::residency::workload::run(
            Arc::new(personal),
            plan.clone(),
            exp.seed,
            stack.clone(),
            AppClient::new(exp.workload.op_timeout),
            recorder.clone(),
            cancel.clone(),
        )
        .await;
    };
    let (_, _, scheduled) = tokio::join!(workload, personal, schedule.run(stack, recorder, cancel));
    recorder.event(EventKind::WorkloadStopped);
    let workload_ms = ms_since(t);
    scheduled?;
    if cancel.is_cancelled() {
        return Err(stages.interrupted());
    }
    stages.enter(Stage::Healing, opts);
    let t = Instant::now();
    bg.stop_manager().await;
    schedule.heal_remaining(stack, recorder).await?;
    stack.heal_links().await?;
    recorder.event(EventKind::Healed);
    tokio::select! {
        _ = cancel.cancelled() => return Err(stages.interrupted()),
        _ = tokio::time::sleep(exp.settle) => {}
    }
    bg.stop_probes().await;
    let mut final_state = final_state::read(stack).await;
    if let Some(r) = &exp.residency {
        let homes = (0..plan.users)
            .map(|u| (u, plan.home(u).to_string()))
            .collect();
        final_state.residency = Some(crate::residency::scan(stack, r.allow.clone(), homes).await);
        if let Some(sampled) = bg.sampled.as_mut() {
            sampled.in_flight = stack.token_counts().await;
        }
    }
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

impl RunOutput {
    /// The `results.json` content.
    pub fn results(&self) -> Results {
        Results {
            schema: crate::run_folder::RESULTS_SCHEMA.into(),
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

/// Writes what an early-stopped run has into its run folder, marked incomplete, and returns
/// the error to report (naming the folder). When even that fails, the original error.
fn incomplete(
    dir: &Path,
    exp: &Experiment,
    recorded: Option<&Recorded>,
    error: RunError,
) -> RunError {
    let marker = Incomplete {
        reason: error.to_string(),
        interrupted: error.is_interrupted(),
        has_history: recorded.is_some(),
    };
    let written = (|| {
        let folder = RunFolder::create(dir)?;
        folder.experiment(exp)?;
        if let Some(r) = recorded {
            folder.recorded(&r.history, &r.probes)?;
        }
        folder.incomplete(&marker)
    })();
    match written {
        Ok(()) => RunError::Incomplete {
            error: Box::new(error),
            dir: dir.to_path_buf(),
        },
        Err(e) => {
            tracing::warn!("could not write the incomplete run folder: {e}");
            error
        }
    }
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
