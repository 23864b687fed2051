//! Stack benchmark on the native backend: prints each figure next to its target.
//!
//! - active-passive stack bring-up to ready (target ≤ 0.35 s natively, ≤ 3 s on Docker), and
//!   a three-region quorum stack's (≤ 0.5 s natively, ≤ 4.5 s on Docker),
//!   teardown
//! - a Patroni stack's bring-up to ready (target ≤ 8 s natively, ≤ 12 s on Docker: Patroni
//!   runs `initdb` and clones the replica itself)
//! - a pg_auto_failover stack's bring-up to a formed primary + secondary (no target: the
//!   monitor, then the first keeper, then the second's clone, one after the other)
//! - the workload's sustained recorded operations per second through the apps
//!   (target ≥ 2,000 on 2 cores, with PostgreSQL, Redis, the apps and the harness sharing them)
//! - harness overhead per experiment: bring-up + checks + teardown + rendering (and
//!   everything else that is not the stated workload and settle) as a share of the stated
//!   duration of a 12 s + 2 s experiment (target ≤ 10 % natively, ≤ 25 % on Docker)
//! - `regiondrill calibrate` on `experiments/ap-async-region-loss.toml`: the highest rate this
//!   machine sustains for it (no target: the figure users size their experiments by)
//! - when a Docker engine answers: the offline image build from Debian packages (forced, so
//!   it is measured, not skipped)
//!
//! Run with `just bench` or `cargo bench --bench stack` (needs PostgreSQL, Redis and the app
//! binary: `cargo build --release -p regiondrill-app`).

use regiondrill::run::{RunOptions, RunOutput};
use regiondrill::stack::BackendChoice;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// Whether a section runs: every one without a filter, else those whose name contains it
/// (`cargo bench --bench stack -- three-region` runs the native and Docker three-region
/// bring-ups only). Names: bring-up, three-region, patroni, pg_auto_failover, workload,
/// overhead, calibration, and the same prefixed `docker ` plus `docker image build`.
fn wanted(section: &str) -> bool {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .is_none_or(|filter| section.contains(&filter))
}

#[tokio::main]
async fn main() {
    let out = std::env::temp_dir().join(format!("regiondrill-bench-{}", std::process::id()));
    println!(
        "stack benchmark (native backend, {} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    if wanted("bring-up") {
        bring_up_and_teardown(&out, BackendChoice::Native, 0.35).await;
    }
    if wanted("three-region") {
        three_region_bring_up(&out, BackendChoice::Native, 0.5).await;
    }
    if wanted("patroni") {
        patroni_bring_up(&out, BackendChoice::Native, 8.0).await;
    }
    if wanted("pg_auto_failover") {
        pg_auto_failover_bring_up(&out, BackendChoice::Native).await;
    }

    for rate in [2_000, 3_000].into_iter().filter(|_| wanted("workload")) {
        let toml = format!(
            "posture = \"active-passive-async\"\nduration = \"10s\"\nsettle = \"0s\"\n[workload]\nrate_per_s = {rate}\nusers = 200\nkeys = 1000\n"
        );
        let r = run(&out, "throughput", &toml).await;
        let f = &r.findings;
        let secs = r.experiment.duration.as_secs_f64();
        let recorded = f.ops.total as f64 / secs;
        let ok = f.ops.ok as f64 / secs;
        let p99 = f
            .latency
            .values()
            .filter_map(|l| l.write.p99_ms)
            .fold(0.0f64, f64::max);
        report(
            &format!("workload at {rate} ops/s planned"),
            format!(
                "{recorded:.0} recorded/s, {ok:.0} ok/s, {} not ok, write p99 {p99:.1} ms",
                f.ops.fail + f.ops.unknown
            ),
            "≥ 2,000 ok/s",
            ok >= 2_000.0,
        );
    }

    if wanted("overhead") {
        overhead(&out, BackendChoice::Native, 10.0).await;
    }
    if wanted("calibration") {
        calibration(BackendChoice::Native).await;
    }

    if regiondrill::stack::docker::engine::Engine::available().await {
        docker(&out).await;
    } else {
        println!("  docker figures SKIPPED: no Docker engine answers");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// The Docker sections (the images `just bench` built hold release binaries).
async fn docker(out: &PathBuf) {
    if wanted("docker image build") {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let t = std::time::Instant::now();
        let built = std::process::Command::new(repo.join("stacks/images/build.sh"))
            .arg("--force")
            .current_dir(&repo)
            .output()
            .expect("build.sh");
        assert!(
            built.status.success(),
            "image build failed: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        report(
            "offline image build (forced)",
            format!("{:.0} s", t.elapsed().as_secs_f64()),
            "—",
            true,
        );
    }
    if wanted("docker bring-up") {
        bring_up_and_teardown(out, BackendChoice::Docker, 3.0).await;
    }
    if wanted("docker three-region") {
        three_region_bring_up(out, BackendChoice::Docker, 4.5).await;
    }
    if wanted("docker patroni") {
        patroni_bring_up(out, BackendChoice::Docker, 12.0).await;
    }
    if wanted("docker pg_auto_failover") {
        pg_auto_failover_bring_up(out, BackendChoice::Docker).await;
    }
    if wanted("docker overhead") {
        overhead(out, BackendChoice::Docker, 25.0).await;
    }
}

async fn run(out: &PathBuf, name: &str, toml: &str) -> RunOutput {
    run_on(out, BackendChoice::Native, name, toml).await
}

async fn run_on(out: &PathBuf, backend: BackendChoice, name: &str, toml: &str) -> RunOutput {
    std::fs::create_dir_all(out).unwrap();
    let path = out.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    let exp = regiondrill::experiment::load(&path).unwrap();
    let opts = RunOptions {
        backend,
        out: out.clone(),
        keep_stack_files: false,
        images: regiondrill::stack::docker::images::ImageChoice::Auto,
        observer: None,
        target: None,
    };
    regiondrill::run::run(&exp, &opts, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Active-passive bring-up to ready and teardown, median of 3; the target is in seconds.
async fn bring_up_and_teardown(out: &PathBuf, backend: BackendChoice, target_s: f64) {
    let mut bring_up = Vec::new();
    let mut teardown = Vec::new();
    for _ in 0..3 {
        let r = run_on(
            out,
            backend,
            "bringup",
            "posture = \"active-passive-sync\"\nduration = \"500ms\"\nsettle = \"0s\"\n",
        )
        .await;
        bring_up.push(r.timings.bring_up_ms);
        teardown.push(r.timings.teardown_ms);
    }
    let (b, t) = (median(&mut bring_up), median(&mut teardown));
    report(
        &format!("{backend:?} active-passive bring-up to ready"),
        format!("{:.2} s (median of 3: {})", b / 1e3, list(&bring_up)),
        &format!("≤ {target_s} s"),
        b <= target_s * 1e3,
    );
    report(
        &format!("{backend:?} teardown"),
        format!("{:.0} ms (median of 3)", t),
        "—",
        true,
    );
}

/// `toml`'s stack (a 500 ms run without faults) from nothing to ready, three times: its
/// `bring_up_ms` (all of `Stack::up`: the backend, every node ready, the posture set up, each
/// link's round trip set) printed as `what`, median first, next to `target_s` (None: none).
async fn bring_up(
    out: &PathBuf,
    backend: BackendChoice,
    toml: &str,
    what: &str,
    target_s: Option<f64>,
) {
    let mut bring_up = Vec::new();
    for _ in 0..3 {
        let r = run_on(out, backend, "bringup", toml).await;
        bring_up.push(r.timings.bring_up_ms);
    }
    let b = median(&mut bring_up);
    report(
        &format!("{backend:?} {what}"),
        format!("{:.2} s (median of 3: {})", b / 1e3, list(&bring_up)),
        &target_s.map_or("—".to_string(), |t| format!("≤ {t} s")),
        target_s.is_none_or(|t| b <= t * 1e3),
    );
}

/// A three-region quorum stack (us, eu, ap: three databases, caches and apps, 33 links with
/// the witness's) brought up to ready — every standby streaming, both in the quorum. Its
/// targets are the two-region ones × 1.5: half as many nodes again.
async fn three_region_bring_up(out: &PathBuf, backend: BackendChoice, target_s: f64) {
    let toml = "posture = \"active-passive-quorum\"\nregions = [\"us\", \"eu\", \"ap\"]\n\
                duration = \"500ms\"\nsettle = \"0s\"\n[network.pairs]\nus-eu = \"80ms\"\n\
                us-ap = \"180ms\"\neu-ap = \"220ms\"\n[failover]\n\
                watch_from = [\"eu\", \"ap\", \"witness\"]\n";
    let what = "three-region quorum bring-up to ready";
    bring_up(out, backend, toml, what, Some(target_s)).await;
}

/// A Patroni stack (etcd in a witness, two members, HAProxy per region) from nothing to
/// ready: Patroni's `initdb` and the replica's clone included.
async fn patroni_bring_up(out: &PathBuf, backend: BackendChoice, target_s: f64) {
    let toml = "posture = \"active-passive-async\"\nduration = \"500ms\"\nsettle = \"0s\"\n\
                [failover]\nmanager = \"patroni\"\n[failover.patroni]\nttl = 20\nloop_wait = 2\n\
                retry_timeout = 3\nhaproxy_inter = \"1s\"\nhaproxy_rise = 1\n";
    let what = "Patroni (etcd, 2 members, HAProxy) bring-up to ready";
    bring_up(out, backend, toml, what, Some(target_s)).await;
}

/// The shipped pg_auto_failover stack (monitor in a witness, a keeper per region) from
/// nothing to a formed primary + secondary: the second keeper's clone included.
async fn pg_auto_failover_bring_up(out: &PathBuf, backend: BackendChoice) {
    let toml = "posture = \"active-passive-async\"\nduration = \"500ms\"\nsettle = \"0s\"\n\
                [failover]\nmanager = \"pg_auto_failover\"\n\
                [failover.pg_auto_failover]\nmonitor = \"witness\"\n";
    let what = "pg_auto_failover (monitor, 2 keepers) bring-up to formed";
    bring_up(out, backend, toml, what, None).await;
}

/// One matrix cell (active-passive sync, region loss, 12 s + 2 s settle), three times:
/// everything the harness spends besides the stated workload and settle — bring-up, heal,
/// checks, writing the run folder, teardown and rendering every report format — as a share
/// of the stated time. The median run is shown, with its parts.
async fn overhead(out: &PathBuf, backend: BackendChoice, target_pct: f64) {
    let toml = "posture = \"active-passive-sync\"\nduration = \"12s\"\nsettle = \"2s\"\n\
                [[faults]]\nkind = \"kill_region\"\nregion = \"us\"\nat = \"4s\"\nheal_at = \"8s\"\n";
    let mut runs = Vec::new();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let r = run_on(out, backend, "overhead", toml).await;
        let rendered = std::time::Instant::now();
        regiondrill::report::render_run(&r.dir).expect("render");
        let render_ms = rendered.elapsed().as_secs_f64() * 1e3;
        let wall_ms = t.elapsed().as_secs_f64() * 1e3;
        let stated_ms = (r.experiment.duration + r.experiment.settle).as_secs_f64() * 1e3;
        runs.push((wall_ms - stated_ms, stated_ms, render_ms, r.timings));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let shares: Vec<String> = runs
        .iter()
        .map(|r| format!("{:.1}", r.0 / r.1 * 100.0))
        .collect();
    let (overhead_ms, stated_ms, render_ms, tm) = &runs[1];
    let share = overhead_ms / stated_ms * 100.0;
    report(
        &format!("{backend:?} harness overhead"),
        format!(
            "{share:.1} % of {:.0} s stated (median of 3: {} %); {:.2} s = bring-up {:.2} s, \
             checks {:.0} ms, teardown {:.2} s, render {render_ms:.0} ms, rest {:.2} s",
            stated_ms / 1e3,
            shares.join(", "),
            overhead_ms / 1e3,
            tm.bring_up_ms / 1e3,
            tm.check_ms,
            tm.teardown_ms / 1e3,
            (overhead_ms - tm.bring_up_ms - tm.check_ms - tm.teardown_ms - render_ms) / 1e3,
        ),
        &format!("≤ {target_pct} %"),
        share <= target_pct,
    );
}

/// The calibration figure of the shipped region-loss experiment.
async fn calibration(backend: BackendChoice) {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let exp =
        regiondrill::experiment::load(&repo.join("experiments/ap-async-region-loss.toml")).unwrap();
    let opts = RunOptions {
        backend,
        out: std::env::temp_dir(),
        keep_stack_files: false,
        images: regiondrill::stack::docker::images::ImageChoice::Auto,
        observer: None,
        target: None,
    };
    let c = regiondrill::calibrate::calibrate(
        &exp,
        &opts,
        &regiondrill::calibrate::CalibrateOptions::default(),
        &CancellationToken::new(),
    )
    .await
    .expect("calibrate");
    report(
        &format!("{backend:?} sustainable rate, ap-async-region-loss"),
        format!(
            "{} ops/s (p99 bound {:.0} ms, {} steps)",
            c.sustainable_rate_per_s
                .map_or("none".into(), |r| format!("{r:.0}")),
            c.p99_bound_ms,
            c.steps.len()
        ),
        "—",
        true,
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{:.2}", x / 1e3))
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(what: &str, measured: String, target: &str, met: bool) {
    let verdict = if met { "met" } else { "MISSED" };
    println!(
        "  {what:<36} {measured}\n  {:<36} target {target}: {verdict}",
        ""
    );
}
