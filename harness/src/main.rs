//! The `regiondrill` command line. Exit codes: 0 every SLO met, 1 an SLO missed, 2 an
//! experiment could not run (bad file, missing program, stack failure, Ctrl-C).

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use regiondrill::experiment::{self, Experiment, matrix};
use regiondrill::progress::Progress;
use regiondrill::report::{self, MatrixIndex, MatrixRun, ShardRecord};
use regiondrill::run::RunOptions;
use regiondrill::run_folder::Results;
use regiondrill::shard::ShardSpec;
use regiondrill::stack::BackendChoice;
use regiondrill::stack::docker::images::ImageChoice;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "regiondrill",
    version,
    about = "Chaos drills for multi-region stacks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by `run` and `matrix`.
#[derive(Args)]
struct RunArgs {
    /// Where the stack runs: Docker when an engine answers (auto), local processes, or
    /// containers.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
    /// Container images (docker backend): the offline `regiondrill/*` ones from
    /// `just images` when present (auto), those, or the official ones. Each can be
    /// overridden with REGIONDRILL_IMAGE_DB, _CACHE, _APP, _PROXY.
    #[arg(long, value_enum, default_value = "auto")]
    images: ImageChoice,
    /// Where run folders go.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Plain progress lines only at each experiment's start and end (no bars).
    #[arg(long)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run experiments and print their verdicts.
    Run {
        /// Experiment files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        args: RunArgs,
        /// Keep the stack's data directories and logs after the run (native backend).
        #[arg(long)]
        keep: bool,
        /// Drill a running stack described by this target file instead of bringing one up
        /// (see README, "Drill your own stack").
        #[arg(long, value_name = "FILE")]
        target: Option<PathBuf>,
        /// With --target: print every fault, command and time the drill would run, and what
        /// the target cannot do, without contacting anything.
        #[arg(long, requires = "target")]
        dry_run: bool,
    },
    /// Bring an experiment's stack up and leave it running, with its failover manager, for
    /// `run --target` to drill; writes its target file and returns.
    Up {
        /// The experiment whose stack is brought up (its faults are not run).
        file: PathBuf,
        /// Where the target file is written.
        #[arg(long, default_value = "target.toml")]
        target_file: PathBuf,
        /// Where the stack runs (as for `run`).
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendChoice,
        /// Container images (as for `run`).
        #[arg(long, value_enum, default_value = "auto")]
        images: ImageChoice,
        /// Hold the stack in this process (what `up` starts in the background).
        #[arg(long, hide = true)]
        hold: bool,
    },
    /// Remove a stack `up` brought up: everything it started, and its target file.
    Down {
        /// The target file `up` wrote.
        target_file: PathBuf,
    },
    /// Ask a held stack to kill, restart, pause or resume a node (the commands of an `up`
    /// target file).
    #[command(hide = true)]
    Node {
        /// kill, restart, pause or resume.
        op: String,
        /// The node, e.g. us-db.
        node: String,
        /// The holder's control API.
        #[arg(long)]
        control: String,
    },
    /// Run a set of experiments — a directory of experiment files, or a matrix file that
    /// crosses postures with fault scenarios — and print one comparison table.
    Matrix {
        /// Matrix files, experiment files or directories of experiment files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[command(flatten)]
        args: RunArgs,
        /// Run only slice K of N of the expanded matrix (1 ≤ K ≤ N): deterministic slices
        /// balanced by stated duration, one per CI job; merge them with
        /// `regiondrill report --merge`.
        #[arg(long, value_name = "K/N")]
        shard: Option<ShardSpec>,
    },
    /// Re-render every format (text, Markdown, HTML, JUnit) of run or matrix folders from
    /// their stored results, without re-running anything.
    Report {
        /// Run folders (with results.json) or matrix folders (with matrix.json); with
        /// --merge, every slice's folder; with --trend, one folder per night.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Merge the folders of `matrix --shard K/N` (every slice of one matrix, once) into
        /// one matrix folder, --out, rendered as if the matrix had run in one go.
        #[arg(long, requires = "out", conflicts_with = "trend")]
        merge: bool,
        /// Render each cell's figures over the nights' folders as one HTML page,
        /// <out>/trend.html.
        #[arg(long, requires = "out")]
        trend: bool,
        /// The folder written by --merge (new or empty) or --trend.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Compare two run or matrix folders cell by cell (RTO, RPO, lost writes, stale-read
    /// rate, lag p99, write p99, verdict) and say what regressed beyond run-to-run noise.
    /// Exit 1 on a regression.
    Compare {
        /// The folder to compare against (e.g. last night's).
        baseline: PathBuf,
        /// The folder compared (e.g. tonight's).
        current: PathBuf,
        /// Print GitHub-flavoured Markdown (for $GITHUB_STEP_SUMMARY) instead of text.
        #[arg(long)]
        markdown: bool,
        /// Override a threshold: METRIC=LIMIT with METRIC one of rto, rpo, lost_writes,
        /// stale_read_rate, lag_p99, write_p99 and LIMIT an absolute allowance (400ms; a
        /// count for lost_writes; a fraction for stale_read_rate), a relative one (30%), or
        /// both (20ms,30%: the larger applies). Repeatable.
        #[arg(long = "threshold", value_name = "METRIC=LIMIT")]
        thresholds: Vec<String>,
    },
    /// Find the highest rate this machine and the experiment's stack sustain: the stack
    /// comes up with no faults and the workload ramps (doubling, then bisecting) until the
    /// p99 latency, the generator's or the runtime's timing, errors or a failover say it is
    /// too much. Run it once per machine and keep experiments below the figure.
    Calibrate {
        /// The experiment whose stack and workload mix are calibrated (its faults are not
        /// injected).
        file: PathBuf,
        #[command(flatten)]
        args: RunArgs,
        /// How long each rate runs.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        step: std::time::Duration,
        /// The first rate, operations per second.
        #[arg(long, default_value_t = 50.0)]
        start_rate: f64,
        /// The highest rate tried, operations per second.
        #[arg(long, default_value_t = 20_000.0)]
        max_rate: f64,
        /// p99 latency bound in ms (default: twice the first step's p99 plus 20 ms).
        #[arg(long)]
        p99_bound_ms: Option<f64>,
    },
    /// Check that apps honour the HTTP contract the harness relies on (stacks/app/README.md):
    /// one line per check, PASS or FAIL with what was expected and what came. Exit 0 every
    /// check passed, 1 one failed, 2 an app cannot be reached.
    Contract {
        /// Each region's app, as a base URL (http://127.0.0.1:8080).
        #[arg(required = true, value_name = "URL")]
        urls: Vec<String>,
        /// Timeout of every request.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// How long a read through the app that wrote may take to show the write (reads go
        /// to a replica); reads are retried until then.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        read_wait: std::time::Duration,
        /// How long a write through one app may take to be readable through another.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        replication_wait: std::time::Duration,
    },
    /// Serve the fault proxy's Toxiproxy-compatible HTTP API until Ctrl-C.
    Proxy {
        /// Address the API binds to. Proxies created through it bind where their `listen` says.
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// API port (Toxiproxy's default).
        #[arg(long, default_value_t = 8474)]
        port: u16,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REGIONDRILL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            files,
            args,
            keep,
            target,
            dry_run,
        } => match (target, dry_run) {
            (Some(t), true) => dry_run_target(files, t),
            (target, _) => run(files, args, keep, target, &cancel_on_signals()).await,
        },
        Command::Up {
            file,
            target_file,
            backend,
            images,
            hold,
        } => {
            if hold {
                hold_stack(file, target_file, backend, images, &cancel_on_signals()).await
            } else {
                up(file, target_file, backend, images).await
            }
        }
        Command::Down { target_file } => down(target_file).await,
        Command::Node { op, node, control } => {
            match regiondrill::hold::send(&control, &op, &node).await {
                Ok(text) => {
                    print!("{text}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(text) => {
                    eprint!("{text}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Matrix {
            inputs,
            args,
            shard,
        } => run_matrix(inputs, args, shard, &cancel_on_signals()).await,
        Command::Report {
            dirs,
            merge,
            trend,
            out,
        } => match (merge, trend, out) {
            (true, _, Some(out)) => merge_shards(dirs, out),
            (_, true, Some(out)) => render_trend(dirs, out),
            _ => rerender(dirs),
        },
        Command::Compare {
            baseline,
            current,
            markdown,
            thresholds,
        } => compare(baseline, current, markdown, thresholds),
        Command::Calibrate {
            file,
            args,
            step,
            start_rate,
            max_rate,
            p99_bound_ms,
        } => {
            let opts = regiondrill::calibrate::CalibrateOptions {
                step,
                start_rate,
                max_rate,
                p99_bound: p99_bound_ms,
            };
            calibrate(file, args, opts, &cancel_on_signals()).await
        }
        Command::Contract {
            urls,
            timeout,
            read_wait,
            replication_wait,
        } => {
            let opts = regiondrill::contract::Options {
                timeout,
                read_wait,
                replication_wait,
            };
            regiondrill::contract::run(&urls, &opts)
                .await
                .map(|report| {
                    print!("{report}");
                    ExitCode::from(report.exit_code())
                })
                .map_err(Into::into)
        }
        Command::Proxy { host, port } => proxy(host, port).await.map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}

/// Whether the terminal tables may use colour: stdout is a terminal and `NO_COLOR` is unset.
fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Ctrl-C (or SIGTERM) once: stop the run and clean up. Twice: leave now (children die with
/// us). The handlers are registered before this returns, so a signal at any later moment is
/// caught (registering inside the spawned task left a window where SIGINT killed the harness
/// outright).
fn cancel_on_signals() -> CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!("warning: cannot catch Ctrl-C; an interrupted run may leave its stack behind");
        return token;
    };
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("\ninterrupted: stopping the stack (Ctrl-C again to leave at once)");
        t.cancel();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        std::process::exit(130);
    });
    token
}

/// The outcome of one experiment in a batch.
enum Ran {
    Done(Box<Results>, PathBuf),
    Failed(String),
}

/// Runs experiments one after another, each into its own folder under `out`, rendering each
/// folder's reports when `render` (a matrix renders them all at the end instead).
async fn run_all(
    experiments: &[Experiment],
    args: &RunArgs,
    out: &Path,
    keep: bool,
    render: bool,
    target: Option<&regiondrill::target::Target>,
    cancel: &CancellationToken,
) -> Vec<Ran> {
    let progress = Progress::new(args.quiet, experiments.len());
    let mut ran = Vec::new();
    for exp in experiments {
        if cancel.is_cancelled() {
            ran.push(Ran::Failed("interrupted".into()));
            continue;
        }
        let shown = progress.experiment(&exp.name);
        let opts = RunOptions {
            backend: args.backend,
            out: out.to_path_buf(),
            keep_stack_files: keep,
            images: args.images,
            observer: Some(shown.observer()),
            target: target.cloned(),
        };
        match regiondrill::run::run(exp, &opts, cancel).await {
            Ok(output) => {
                let results = output.results();
                if render && let Err(e) = report::render_run(&output.dir) {
                    eprintln!("warning: {}: {e}", output.dir.display());
                }
                let verdict = if results.slo.passed {
                    "SLOs met"
                } else {
                    "SLO MISSED"
                };
                progress.experiment_done(shown, verdict);
                if let Some(kept) = &output.stack_files {
                    eprintln!("{}: stack files kept in {}", exp.name, kept.display());
                }
                ran.push(Ran::Done(Box::new(results), output.dir));
            }
            Err(e) => {
                progress.experiment_done(shown, &format!("could not run: {e}"));
                ran.push(Ran::Failed(e.to_string()));
            }
        }
    }
    progress.finish();
    // Ctrl-C after the last experiment finished still means the batch was interrupted.
    if cancel.is_cancelled() && !ran.iter().any(|r| matches!(r, Ran::Failed(_))) {
        ran.push(Ran::Failed("interrupted".into()));
    }
    ran
}

/// 0 every SLO met, 1 one missed, 2 one could not run.
fn exit_code(ran: &[Ran]) -> ExitCode {
    if ran.iter().any(|r| matches!(r, Ran::Failed(_))) {
        ExitCode::from(2)
    } else if ran
        .iter()
        .all(|r| matches!(r, Ran::Done(res, _) if res.slo.passed))
    {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn run(
    files: Vec<PathBuf>,
    args: RunArgs,
    keep: bool,
    target: Option<PathBuf>,
    cancel: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let experiments: Vec<Experiment> = files
        .iter()
        .map(|f| experiment::load(f))
        .collect::<Result<_, _>>()?;
    let target = target.map(|t| regiondrill::target::load(&t)).transpose()?;
    if let Some(t) = &target {
        // Every experiment is checked before the first runs: a drill never stops half-way
        // for want of a command.
        let mut refused = Vec::new();
        for exp in &experiments {
            for r in regiondrill::target::needs::refusals(t, exp) {
                refused.push(format!("{}: {r}", exp.source.display()));
            }
        }
        if !refused.is_empty() {
            anyhow::bail!(
                "{} cannot run these experiments:\n  {}",
                t.source.display(),
                refused.join("\n  ")
            );
        }
    }
    let ran = run_all(
        &experiments,
        &args,
        &args.out,
        keep,
        true,
        target.as_ref(),
        cancel,
    )
    .await;
    let mut done = Vec::new();
    for r in &ran {
        if let Ran::Done(results, dir) = r {
            println!("{}", report::terminal::run_report(results));
            println!("run folder: {}\n", dir.display());
            done.push((**results).clone());
        }
    }
    if done.len() > 1 {
        println!("{}", report::terminal::comparison(&done, color()));
    }
    Ok(exit_code(&ran))
}

/// What a matrix input names: the experiments it expands to, and where they came from.
fn expand(inputs: &[PathBuf]) -> anyhow::Result<(String, Option<u64>, Vec<Experiment>)> {
    let mut experiments = Vec::new();
    let mut name = None;
    let mut seed = None;
    for input in inputs {
        if input.is_dir() {
            experiments.extend(experiment::load_dir(input)?);
            name.get_or_insert_with(|| {
                input
                    .file_name()
                    .map_or("matrix".into(), |n| n.to_string_lossy().to_string())
            });
        } else if matrix::is_matrix(input)? {
            let m = matrix::load(input)?;
            name.get_or_insert(m.name.clone());
            seed.get_or_insert(m.seed);
            experiments.extend(m.cells);
        } else {
            experiments.push(experiment::load(input)?);
        }
    }
    Ok((name.unwrap_or_else(|| "matrix".into()), seed, experiments))
}

async fn run_matrix(
    inputs: Vec<PathBuf>,
    args: RunArgs,
    shard: Option<ShardSpec>,
    cancel: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let (name, seed, experiments) = expand(&inputs)?;
    anyhow::ensure!(
        !experiments.is_empty(),
        "no experiments in {}",
        inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let digest = regiondrill::shard::digest(&name, &experiments);
    let (experiments, shard, folder) = match shard {
        None => (experiments, None, name.clone()),
        Some(spec) => {
            let positions = regiondrill::shard::positions(&experiments, spec);
            let record = ShardRecord {
                index: spec.index,
                count: spec.count,
                cells: experiments.len(),
                positions: positions.clone(),
            };
            eprintln!(
                "shard {spec}: {} of the matrix's {} cells",
                positions.len(),
                experiments.len()
            );
            let slice = positions.iter().map(|&i| experiments[i].clone()).collect();
            let folder = format!("{name}-shard-{}-of-{}", spec.index, spec.count);
            (slice, Some(record), folder)
        }
    };
    let dir = args.out.join(regiondrill::run::run_id(&folder));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // render_matrix below renders every run folder as well as the matrix's own reports.
    let ran = run_all(&experiments, &args, &dir, false, false, None, cancel).await;
    let runs = experiments
        .iter()
        .zip(&ran)
        .map(|(exp, r)| MatrixRun {
            experiment: exp.name.clone(),
            posture: exp.posture.to_string(),
            scenario: exp.scenario.clone(),
            dir: match r {
                Ran::Done(_, d) => d.strip_prefix(&dir).unwrap_or(d).display().to_string(),
                Ran::Failed(_) => String::new(),
            },
            error: match r {
                Ran::Failed(e) => Some(e.clone()),
                Ran::Done(..) => None,
            },
        })
        .collect();
    let mut index = MatrixIndex::new(
        name,
        inputs.iter().map(|p| p.display().to_string()).collect(),
        seed,
        runs,
    );
    index.digest = Some(digest);
    index.shard = shard;
    index.save(&dir)?;
    report::render_matrix(&dir)?;
    print!("{}", report::terminal::matrix_table(&dir, color())?);
    println!(
        "matrix folder: {} (matrix.txt, matrix.md, matrix.html, junit.xml)",
        dir.display()
    );
    Ok(exit_code(&ran))
}

/// Merges the slices of a sharded matrix into `out`; the exit code is the merged verdicts'
/// (as `report`'s).
fn merge_shards(dirs: Vec<PathBuf>, out: PathBuf) -> anyhow::Result<ExitCode> {
    let merged = report::merge::merge(&dirs, &out)?;
    print!("{}", report::terminal::matrix_table(&out, color())?);
    println!(
        "merged {} slices ({} cells) into {} (matrix.txt, matrix.md, matrix.html, junit.xml)",
        dirs.len(),
        merged.runs.len(),
        out.display()
    );
    Ok(verdicts(&out, &merged))
}

/// The exit code of a matrix folder's stored verdicts: 2 when an experiment could not run
/// (or its folder cannot be read), else 1 when an SLO was missed, else 0.
fn verdicts(dir: &Path, index: &MatrixIndex) -> ExitCode {
    let (mut missed, mut could_not_run) = (false, false);
    for i in 0..index.runs.len() {
        match index.run_dir(dir, i).map(|run| report::load_results(&run)) {
            Some(Ok(results)) => missed |= !results.slo.passed,
            Some(Err(_)) | None => could_not_run = true,
        }
    }
    if could_not_run {
        ExitCode::from(2)
    } else if missed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Renders the trend page over the nights' folders.
fn render_trend(dirs: Vec<PathBuf>, out: PathBuf) -> anyhow::Result<ExitCode> {
    let page = report::trend::render(&dirs, &out)?;
    println!("trend of {} folders: {}", dirs.len(), page.display());
    Ok(ExitCode::SUCCESS)
}

/// Compares two folders: 0 nothing regressed, 1 something did.
fn compare(
    baseline: PathBuf,
    current: PathBuf,
    markdown: bool,
    thresholds: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let mut t = report::compare::Thresholds::default();
    for spec in &thresholds {
        t.set(spec)
            .map_err(|e| anyhow::anyhow!("--threshold {e}"))?;
    }
    let c = report::compare::compare(&baseline, &current, &t)?;
    if markdown {
        print!("{}", report::compare::markdown(&c, &baseline, &current));
    } else {
        print!("{}", report::compare::text(&c, &baseline, &current));
    }
    Ok(if c.regressed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Re-renders run and matrix folders. Exit code from the stored verdicts: 2 when an
/// experiment of a matrix could not run, else 1 when an SLO was missed, else 0.
fn rerender(dirs: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let (mut missed, mut could_not_run) = (false, false);
    for dir in &dirs {
        if dir.join(report::MATRIX_INDEX).is_file() {
            report::render_matrix(dir)?;
            print!("{}", report::terminal::matrix_table(dir, color())?);
            println!(
                "re-rendered {} (matrix.txt, matrix.md, matrix.html, junit.xml, and every run's)",
                dir.display()
            );
            let index = MatrixIndex::load(dir)?;
            for i in 0..index.runs.len() {
                match index.run_dir(dir, i).map(|run| report::load_results(&run)) {
                    Some(Ok(results)) => missed |= !results.slo.passed,
                    // Not run, or its folder is unreadable (the reports say which).
                    Some(Err(_)) | None => could_not_run = true,
                }
            }
        } else {
            report::render_run(dir)?;
            // Only results.json: the history (the bulk of the folder) was read by render_run.
            let results = report::load_results(dir)?;
            println!("{}", report::terminal::run_report(&results));
            println!(
                "re-rendered {} (report.txt, report.md, report.html, junit.xml)",
                dir.display()
            );
            missed |= !results.slo.passed;
        }
    }
    Ok(if could_not_run {
        ExitCode::from(2)
    } else if missed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn calibrate(
    file: PathBuf,
    args: RunArgs,
    opts: regiondrill::calibrate::CalibrateOptions,
    cancel: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let exp = experiment::load(&file)?;
    let run = RunOptions {
        backend: args.backend,
        out: args.out.clone(),
        keep_stack_files: false,
        images: args.images,
        observer: None,
        target: None,
    };
    eprintln!(
        "calibrating {} ({} s per step, from {} ops/s)",
        exp.name,
        opts.step.as_secs_f64(),
        opts.start_rate
    );
    let c = regiondrill::calibrate::calibrate(&exp, &run, &opts, cancel).await?;
    if cancel.is_cancelled() {
        anyhow::bail!("interrupted");
    }
    println!(
        "{:>8}  {:>8}  {:>9}  {:>10}  {:>10}  {:>6}  verdict",
        "rate/s", "ok/s", "p99", "sched p99", "timer p99", "not ok"
    );
    let ms = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1} ms"));
    for s in &c.steps {
        println!(
            "{:>8.0}  {:>8.0}  {:>9}  {:>10}  {:>10}  {:>5.1}%  {}",
            s.rate_per_s,
            s.ok_per_s,
            ms(s.p99_ms),
            ms(s.schedule_lag_p99_ms),
            ms(s.timer_lag_p99_ms),
            s.not_ok * 100.0,
            if s.sustained() {
                "sustained".to_string()
            } else {
                format!("not sustained: {}", s.why_not.join(", "))
            }
        );
    }
    match c.sustainable_rate_per_s {
        Some(rate) => {
            println!(
                "highest sustained rate: {rate:.0} operations/s ({} backend, p99 bound {:.0} ms)",
                c.backend, c.p99_bound_ms
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!("not even {:.0} operations/s was sustained", opts.start_rate);
            Ok(ExitCode::from(1))
        }
    }
}

async fn proxy(host: IpAddr, port: u16) -> anyhow::Result<()> {
    let addr = SocketAddr::new(host, port);
    let server = regiondrill::proxy::ProxyServer::start(addr)
        .await
        .with_context(|| format!("cannot bind the fault proxy API on {addr}"))?;
    println!(
        "regiondrill fault proxy (Toxiproxy API {}) listening on {}",
        regiondrill::proxy::API_VERSION,
        server.url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    server.shutdown().await;
    Ok(())
}

/// `run --target T --dry-run`: what each experiment would do to the target.
fn dry_run_target(files: Vec<PathBuf>, target: PathBuf) -> anyhow::Result<ExitCode> {
    let target = regiondrill::target::load(&target)?;
    let mut refused = false;
    for f in &files {
        let exp = experiment::load(f)?;
        let (text, refusals) = regiondrill::target::dry_run::describe(&exp, &target);
        refused |= !refusals.is_empty();
        print!("{text}");
    }
    Ok(if refused {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// How long `up` waits for its holder to write the target file.
const UP_WITHIN: std::time::Duration = std::time::Duration::from_secs(300);

/// `up`: starts a holder in the background (its own session, so the terminal's Ctrl-C and
/// hang-up do not reach it) and returns once it has written the target file.
async fn up(
    file: PathBuf,
    target_file: PathBuf,
    backend: BackendChoice,
    images: ImageChoice,
) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt as _;
    experiment::load(&file)?;
    if target_file.exists() {
        anyhow::bail!(
            "{} exists: run `regiondrill down {}` first, or choose another --target-file",
            target_file.display(),
            target_file.display()
        );
    }
    let log_path = target_file.with_extension("log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding the regiondrill binary")?;
    let backend = backend
        .to_possible_value()
        .expect("a value")
        .get_name()
        .to_string();
    let images = images
        .to_possible_value()
        .expect("a value")
        .get_name()
        .to_string();
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("up")
        .arg(&file)
        .arg("--target-file")
        .arg(&target_file)
        .args(["--backend", &backend, "--images", &images, "--hold"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if std::env::var_os("REGIONDRILL_LOG").is_none() {
        cmd.env("REGIONDRILL_LOG", "info");
    }
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the stack's holder")?;
    let deadline = std::time::Instant::now() + UP_WITHIN;
    loop {
        if target_file.exists() {
            println!(
                "stack up, held by process {}; target file: {}\n\
                 drill it: regiondrill run EXPERIMENT --target {}\n\
                 remove it: regiondrill down {}",
                child.id(),
                target_file.display(),
                target_file.display(),
                target_file.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            anyhow::bail!(
                "the stack did not come up ({status}); {}:\n{}",
                log_path.display(),
                tail.join("\n")
            );
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            anyhow::bail!(
                "the stack was not up within {UP_WITHIN:?}; see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `up --hold`: the holder itself.
async fn hold_stack(
    file: PathBuf,
    target_file: PathBuf,
    backend: BackendChoice,
    images: ImageChoice,
    cancel: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let exp = experiment::load(&file)?;
    regiondrill::hold::hold(&exp, backend, images, &target_file, cancel).await?;
    Ok(ExitCode::SUCCESS)
}

/// How long `down` waits for the holder to remove everything.
const DOWN_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

/// `down`: stops the holder a target file names (SIGTERM: it removes everything it started)
/// and waits until it is gone.
async fn down(target_file: PathBuf) -> anyhow::Result<ExitCode> {
    let target = regiondrill::target::load(&target_file)?;
    let Some(owner) = target.up else {
        anyhow::bail!(
            "{} was not written by `regiondrill up` (no [up] section): its stack is not ours to remove",
            target_file.display()
        );
    };
    let pid = owner.pid as libc::pid_t;
    let alive = || std::path::Path::new(&format!("/proc/{pid}")).exists();
    let is_holder = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("--hold"));
    if !is_holder {
        let _ = std::fs::remove_file(&target_file);
        println!(
            "the holder (process {pid}) is already gone; removed {}",
            target_file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // SAFETY: a process whose command line says it is a holder.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + DOWN_WITHIN;
    while alive() {
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "the holder (process {pid}) is still removing its stack after {DOWN_WITHIN:?}"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_file(&target_file);
    let _ = std::fs::remove_file(target_file.with_extension("log"));
    println!("stack removed ({})", owner.experiment);
    Ok(ExitCode::SUCCESS)
}
