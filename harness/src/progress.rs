//! Progress of long work on stderr: bars on a terminal (the matrix, each experiment's stages
//! and its workload timeline), plain lines when stderr is not a terminal or with `--quiet`
//! (then only the start and end of each experiment). Results go to stdout either way.

use crate::run::Stage;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Clone)]
pub enum Progress {
    /// Bars (stderr is a terminal and not `--quiet`).
    Bars {
        /// All bars.
        multi: MultiProgress,
        /// Experiments done out of all.
        overall: ProgressBar,
    },
    /// Plain lines; `quiet` keeps only each experiment's start and end.
    Lines {
        /// Fewer lines.
        quiet: bool,
    },
}

impl Progress {
    /// Bars when stderr is a terminal and `quiet` is off, else lines.
    pub fn new(quiet: bool, experiments: usize) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress::Lines { quiet };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(experiments as u64));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30}] {pos}/{len} experiments, {elapsed}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        overall.set_prefix("regiondrill");
        Progress::Bars { multi, overall }
    }

    /// Starts showing one experiment; returns the observer its run reports stages to.
    pub fn experiment(&self, name: &str) -> ExperimentProgress {
        match self {
            Progress::Bars { multi, .. } => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(stage_style());
                bar.set_prefix(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                ExperimentProgress {
                    name: name.to_string(),
                    bar: Some(bar),
                    quiet: false,
                    in_workload: Arc::default(),
                }
            }
            Progress::Lines { quiet } => {
                eprintln!("{name}: starting");
                ExperimentProgress {
                    name: name.to_string(),
                    bar: None,
                    quiet: *quiet,
                    in_workload: Arc::default(),
                }
            }
        }
    }

    /// One experiment is done.
    pub fn experiment_done(&self, exp: ExperimentProgress, outcome: &str) {
        if let Some(bar) = &exp.bar {
            bar.finish_and_clear();
        }
        match self {
            Progress::Bars { multi, overall } => {
                let _ = multi.println(format!("  {}: {outcome}", exp.name));
                overall.inc(1);
            }
            Progress::Lines { .. } => eprintln!("{}: {outcome}", exp.name),
        }
    }

    /// All done.
    pub fn finish(&self) {
        if let Progress::Bars { overall, .. } = self {
            overall.finish_and_clear();
        }
    }
}

/// One experiment's progress.
pub struct ExperimentProgress {
    name: String,
    bar: Option<ProgressBar>,
    quiet: bool,
    /// Set while the workload runs: the thread advancing its timeline stops when it clears.
    in_workload: Arc<AtomicBool>,
}

/// The spinner shown for every stage but the workload.
fn stage_style() -> ProgressStyle {
    ProgressStyle::with_template("  {prefix} {spinner} {msg}").expect("static template")
}

/// The workload's timeline: a bar over its duration (position in ms).
fn workload_style() -> ProgressStyle {
    ProgressStyle::with_template("  {prefix} workload [{bar:30}] {msg}")
        .expect("static template")
        .progress_chars("=> ")
}

impl ExperimentProgress {
    /// The callback a run reports its stages to.
    pub fn observer(&self) -> crate::run::Observer {
        let (name, bar, quiet, in_workload) = (
            self.name.clone(),
            self.bar.clone(),
            self.quiet,
            self.in_workload.clone(),
        );
        Arc::new(move |stage: Stage| {
            let Some(bar) = &bar else {
                if !quiet {
                    eprintln!("{name}: {}", stage.describe());
                }
                return;
            };
            let Stage::Workload { duration } = stage else {
                in_workload.store(false, Ordering::Relaxed);
                bar.set_style(stage_style());
                bar.set_message(stage.describe());
                return;
            };
            in_workload.store(true, Ordering::Relaxed);
            bar.set_style(workload_style());
            bar.set_length(duration.as_millis() as u64);
            bar.set_position(0);
            let (bar, in_workload) = (bar.clone(), in_workload.clone());
            let start = Instant::now();
            // Advance the timeline until the next stage (or the end) stops it.
            std::thread::spawn(move || {
                while in_workload.load(Ordering::Relaxed) && !bar.is_finished() {
                    let done = start.elapsed().min(duration);
                    bar.set_position(done.as_millis() as u64);
                    bar.set_message(format!(
                        "{:.0}s / {:.0}s",
                        done.as_secs_f64(),
                        duration.as_secs_f64()
                    ));
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        })
    }
}
