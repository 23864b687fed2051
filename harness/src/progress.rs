//! Progress of long work on stderr: bars on a terminal (the matrix, each experiment's stages
//! and its workload timeline), plain lines when stderr is not a terminal or with `--quiet`
//! (then only the start and end of each experiment). Results go to stdout either way.

use crate::run::Stage;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
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
                bar.set_style(
                    ProgressStyle::with_template("  {prefix} {spinner} {msg}")
                        .expect("static template"),
                );
                bar.set_prefix(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                ExperimentProgress {
                    name: name.to_string(),
                    bar: Some(bar),
                    quiet: false,
                    timeline: Arc::default(),
                }
            }
            Progress::Lines { quiet } => {
                eprintln!("{name}: starting");
                ExperimentProgress {
                    name: name.to_string(),
                    bar: None,
                    quiet: *quiet,
                    timeline: Arc::default(),
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
    /// When the workload started and how long it runs (to draw the timeline).
    timeline: Arc<Mutex<Option<(Instant, Duration)>>>,
}

impl ExperimentProgress {
    /// The callback a run reports its stages to.
    pub fn observer(&self) -> crate::run::Observer {
        let (name, bar, quiet, timeline) = (
            self.name.clone(),
            self.bar.clone(),
            self.quiet,
            self.timeline.clone(),
        );
        Arc::new(move |stage: Stage| {
            let text = stage.describe();
            if let Stage::Workload { duration } = stage {
                *timeline.lock().expect("timeline lock") = Some((Instant::now(), duration));
                if let Some(bar) = &bar {
                    let (bar, timeline) = (bar.clone(), timeline.clone());
                    // Redraw the timeline until the next stage replaces it.
                    std::thread::spawn(move || {
                        loop {
                            // Copied out: the lock is not held while drawing or sleeping.
                            let current = *timeline.lock().expect("timeline lock");
                            let Some((start, total)) = current else {
                                return;
                            };
                            let done = start.elapsed().min(total).as_secs_f64()
                                / total.as_secs_f64().max(1e-9);
                            let width = 30usize;
                            let filled = (done * width as f64) as usize;
                            bar.set_message(format!(
                                "workload [{}{}] {:.0}s / {:.0}s",
                                "=".repeat(filled),
                                " ".repeat(width - filled),
                                start.elapsed().min(total).as_secs_f64(),
                                total.as_secs_f64()
                            ));
                            if bar.is_finished() {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    });
                }
            } else {
                *timeline.lock().expect("timeline lock") = None;
            }
            match &bar {
                // The timeline thread owns the message during the workload.
                Some(_) if matches!(stage, Stage::Workload { .. }) => {}
                Some(bar) => bar.set_message(text),
                None if !quiet => eprintln!("{name}: {text}"),
                None => {}
            }
        })
    }
}
