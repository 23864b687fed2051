//! Targets: `regiondrill up` holds a real stack, `run --target` drills it as a stack someone
//! else runs (every node operation a shell command, every link a proxy on a Toxiproxy API,
//! the failover the stack's own), `regiondrill down` removes it. The known answers are the
//! built-in runs': synchronous replication loses nothing; asynchronous replication with the
//! replication link black-holed and then the primary's region killed loses exactly the
//! writes acknowledged in between — also in database-only mode, with no app at all.

use crate::support::{self, ASYNC_PARTITION_THEN_KILL, TempDir};
use regiondrill::history::EventKind;
use regiondrill::run::{RunOptions, RunOutput};
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_regiondrill");

/// A stack held by `regiondrill up` (native), removed with `regiondrill down` on drop.
struct Held {
    tmp: TempDir,
    experiment: PathBuf,
    target: PathBuf,
}

impl Held {
    /// `up` of a shipped experiment file (from the repository's root).
    fn up_shipped(name: &str, file: &str) -> Held {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
        Held::up(name, &std::fs::read_to_string(path).unwrap())
    }

    fn up(name: &str, toml: &str) -> Held {
        let tmp = TempDir::new(name);
        let experiment = tmp.0.join(format!("{name}.toml"));
        std::fs::write(&experiment, toml).unwrap();
        let target = tmp.0.join("target.toml");
        let out = Command::new(BIN)
            .args(["up", "--backend", "native", "--target-file"])
            .arg(&target)
            .arg(&experiment)
            .env("REGIONDRILL_TMP", tmp.0.join("runs"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "up failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(target.exists());
        Held {
            tmp,
            experiment,
            target,
        }
    }

    /// Runs the experiment against `target` through the library (the history is needed).
    async fn drill(&self, target: &Path) -> RunOutput {
        let exp = regiondrill::experiment::load(&self.experiment).unwrap();
        let opts = RunOptions {
            backend: regiondrill::stack::BackendChoice::Native,
            out: self.tmp.0.join("reports"),
            keep_stack_files: false,
            images: regiondrill::stack::docker::images::ImageChoice::Auto,
            observer: None,
            target: Some(regiondrill::target::load(target).unwrap_or_else(|e| panic!("{e}"))),
        };
        regiondrill::run::run(&exp, &opts, &CancellationToken::new())
            .await
            .unwrap_or_else(|e| panic!("the drill could not run: {e}"))
    }

    /// The held stack's target file without its apps (no `app` addresses, no app nodes): a
    /// database-only target.
    fn database_only(&self) -> PathBuf {
        let text = std::fs::read_to_string(&self.target).unwrap();
        let mut db_only = String::new();
        let mut skipping = false;
        for line in text.lines() {
            if line.starts_with('[') {
                skipping = line.contains("-app]") || line.contains("-app\"]");
            }
            if !skipping && !line.starts_with("app = ") {
                db_only.push_str(line);
                db_only.push('\n');
            }
        }
        assert!(!db_only.contains("app = "), "{db_only}");
        let file = self.tmp.0.join("db-only.toml");
        std::fs::write(&file, db_only).unwrap();
        file
    }

    /// `down`, then: nothing the holder started still runs, and its files are gone.
    fn down(&self) {
        let out = Command::new(BIN)
            .arg("down")
            .arg(&self.target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "down failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!self.target.exists(), "target file left behind");
        let left = support::leftovers(&self.tmp.0);
        assert!(left.is_empty(), "left running after down: {left:?}");
        let runs = std::fs::read_dir(self.tmp.0.join("runs"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(runs, 0, "run directories left behind");
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.target.exists() {
            let _ = Command::new(BIN).arg("down").arg(&self.target).output();
        }
    }
}

/// The drill saw the stack's own manager promote `eu`, and read the final state there.
fn assert_promoted_eu(out: &RunOutput) {
    assert_eq!(out.backend, "external");
    assert!(
        out.history
            .events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Promoted { region, .. } if region == "eu")),
        "no promotion of eu observed: {:?}",
        out.history.events
    );
    assert_eq!(out.final_state.primary_region.as_deref(), Some("eu"));
    // Judged by the replaced primary's health, which the region's loss took: not false.
    let ff = &out.findings.false_failovers;
    assert_eq!(
        (ff.failovers, ff.count, ff.not_measured),
        (1, 0, 0),
        "{ff:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_sync_stack_loses_nothing_when_its_primary_region_dies() {
    let held = Held::up(
        "target-sync",
        &support::region_loss("active-passive-sync", "8s", "3s"),
    );
    let out = held.drill(&held.target).await;
    assert_promoted_eu(&out);
    let f = &out.findings;
    assert!(f.lost_writes.checked);
    assert_eq!(
        f.lost_writes.count, 0,
        "sync replication lost {:?}",
        f.lost_writes.ids
    );
    assert!(f.failover.recovered, "the users never wrote again");
    held.down();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_async_stack_loses_exactly_the_partition_window() {
    let held = Held::up("target-async", ASYNC_PARTITION_THEN_KILL);
    let out = held.drill(&held.target).await;
    assert_promoted_eu(&out);
    support::assert_loses_the_partition_window(&out);
    held.down();
}

/// Database-only mode: the same target without its apps (no `app` addresses, no app nodes):
/// the drill writes and reads PostgreSQL directly, and the physics is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_only_mode_loses_exactly_the_partition_window() {
    let held = Held::up("target-db-only", ASYNC_PARTITION_THEN_KILL);
    let file = held.database_only();
    let out = held.drill(&file).await;
    assert_promoted_eu(&out);
    assert!(
        out.history.ops.iter().all(|o| !o.key.is_empty()),
        "operations recorded"
    );
    support::assert_loses_the_partition_window(&out);
    held.down();
}

/// A target for the dry-run and refusal tests: loopback addresses nothing listens on, and
/// commands that would leave a mark if they ran.
fn inert_target(dir: &Path, with_restart: bool) -> PathBuf {
    let mark = dir.join("ran");
    let mut text = format!(
        r#"allow_hosts = ["127.0.0.1"]
[toxiproxy]
api = "http://127.0.0.1:9"
[links.replication]
proxy = "replication"
[regions.us]
app = "http://127.0.0.1:9"
db = "host=127.0.0.1 port=9 user=postgres dbname=postgres"
[regions.eu]
app = "http://127.0.0.1:9"
db = "host=127.0.0.1 port=9 user=postgres dbname=postgres"
[nodes.us-db]
kill = "touch {mark}"
"#,
        mark = mark.display()
    );
    if with_restart {
        text.push_str(&format!("restart = \"touch {}\"\n", mark.display()));
    }
    let file = dir.join("target.toml");
    std::fs::write(&file, text).unwrap();
    file
}

const KILL_AND_PARTITION: &str = r#"
posture = "active-passive-async"
duration = "6s"
[[faults]]
kind = "partition"
links = ["replication"]
at = "1s"
[[faults]]
kind = "kill_node"
node = "us-db"
at = "2s"
"#;

/// `regiondrill run --target TARGET e.toml` of [`KILL_AND_PARTITION`] (`extra` flags added,
/// run folders under `tmp/reports`).
fn run_inert(tmp: &Path, target: &Path, extra: &[&str]) -> std::process::Output {
    let exp = tmp.join("e.toml");
    std::fs::write(&exp, KILL_AND_PARTITION).unwrap();
    Command::new(BIN)
        .args(["run", "--target"])
        .arg(target)
        .arg(&exp)
        .arg("--out")
        .arg(tmp.join("reports"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn dry_run_prints_every_fault_command_and_time_and_runs_nothing() {
    let tmp = TempDir::new("target-dry-run");
    let target = inert_target(&tmp.0, true);
    let out = run_inert(&tmp.0, &target, &["--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mark = tmp.0.join("ran").display().to_string();
    for want in [
        "1s    toxics on proxy `replication` (link replication) at http://127.0.0.1:9",
        &format!("2s    kill us-db: `touch {mark}` (timeout 30s)"),
        &format!("6s    restart us-db: `touch {mark}` (timeout 30s)"),
        "the target can run every step",
    ] {
        assert!(stdout.contains(want), "missing `{want}` in:\n{stdout}");
    }
    assert!(!tmp.0.join("ran").exists(), "a dry run ran a command");
}

#[test]
fn a_fault_the_target_cannot_perform_is_refused_before_anything_runs() {
    let tmp = TempDir::new("target-refused");
    let target = inert_target(&tmp.0, false);
    let out = run_inert(&tmp.0, &target, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} cannot run these experiments",
            target.display()
        )) && stderr.contains(
            "e.toml: faults[1] (kill node us-db): no `restart` command for us-db \
                 ([nodes.us-db] restart = \"…\")"
        ),
        "{stderr}"
    );
    assert!(!tmp.0.join("ran").exists(), "a refused drill ran a command");
    assert!(
        !tmp.0.join("reports").exists(),
        "a refused drill wrote a run folder"
    );
}

/// A target names the default regions: an experiment over others is refused before anything
/// runs, naming them.
#[test]
fn an_experiment_over_other_regions_is_refused() {
    let tmp = TempDir::new("target-regions");
    let target = inert_target(&tmp.0, true);
    let exp = tmp.0.join("three.toml");
    std::fs::write(
        &exp,
        "posture = \"active-passive-async\"\nduration = \"2s\"\nregions = [\"us\", \"eu\", \"ap\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", "--target"])
        .arg(&target)
        .arg(&exp)
        .arg("--out")
        .arg(tmp.0.join("reports"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("three.toml: regions = [us, eu, ap]: a target names the regions us and eu"),
        "{stderr}"
    );
    assert!(
        !tmp.0.join("reports").exists(),
        "a refused drill wrote a run folder"
    );
}

#[test]
fn a_host_outside_the_allow_list_is_refused_at_its_line() {
    let tmp = TempDir::new("target-allow");
    let target = inert_target(&tmp.0, true);
    let text = std::fs::read_to_string(&target).unwrap().replace(
        "host=127.0.0.1 port=9 user=postgres dbname=postgres\"\n[regions.eu]",
        "host=db.prod.example port=5432\"\n[regions.eu]",
    );
    std::fs::write(&target, text).unwrap();
    let out = run_inert(&tmp.0, &target, &["--dry-run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let want = format!(
        "{}:8:6: regions.us.db: host `db.prod.example` is not in allow_hosts",
        target.display()
    );
    assert!(stderr.contains(&want), "want {want}\ngot {stderr}");
}

/// Database-only mode against a Patroni stack (long tier: Patroni cannot fail over before its
/// leader key expires), the users writing through each region's HAProxy (`write_db`): the
/// drill sees Patroni promote `eu`, and the users' RTO keeps the shipped bound,
/// [ttl − loop_wait, ttl + loop_wait + 4 s].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_only_mode_holds_patronis_region_loss_known_answer() {
    let held = Held::up_shipped("target-patroni", "experiments/patroni-region-loss.toml");
    let file = held.database_only();
    // Users write through each region's HAProxy, the endpoint that follows Patroni's leader.
    let target = regiondrill::target::load(&file).unwrap();
    assert!(target.regions.values().all(|r| r.write_db.is_some()));
    let out = held.drill(&file).await;
    assert_promoted_eu(&out);
    let p = match &out.experiment.failover.manager {
        regiondrill::ha::Manager::Patroni(p) => p.clone(),
        other => panic!("not Patroni: {other:?}"),
    };
    let (ttl, loop_wait) = (f64::from(p.ttl) * 1e3, f64::from(p.loop_wait) * 1e3);
    let f = &out.findings;
    let rto = f.failover.rto_ms.expect("recovered");
    assert!(
        (ttl - loop_wait..=ttl + loop_wait + 4_000.0).contains(&rto),
        "RTO {rto} ms with ttl {ttl} ms, loop_wait {loop_wait} ms"
    );
    assert!(f.lost_writes.checked);
    assert!(
        f.lost_writes.rpo_ms.unwrap_or(0.0) <= 1_000.0,
        "RPO {:?} ms",
        f.lost_writes.rpo_ms
    );
    held.down();
}

/// Ctrl-C in the middle of a drill of a target: the drill exits 2 and leaves the target as
/// it found it — no regiondrill toxic on any of its proxies but the holder's own baseline
/// round trip, every proxy enabled, the killed node restarted through its command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_drill_leaves_the_target_as_it_was() {
    let held = Held::up(
        "target-ctrl-c",
        "posture = \"active-passive-async\"\nduration = \"30s\"\n",
    );
    let drill = held.tmp.0.join("drill.toml");
    std::fs::write(
        &drill,
        r#"
posture = "active-passive-async"
duration = "30s"
[[faults]]
kind = "partition"
links = ["replication", "eu-app-to-us-db"]
mode = "refuse"
at = "500ms"
[[faults]]
kind = "kill_node"
node = "us-cache"
at = "1s"
"#,
    )
    .unwrap();
    let target = regiondrill::target::load(&held.target).unwrap();
    let api = regiondrill::proxy::ToxiproxyClient::new(target.toxiproxy.clone().unwrap());
    let mut run = tokio::process::Command::new(BIN)
        .args(["run", "--quiet", "--target"])
        .arg(&held.target)
        .arg(&drill)
        .arg("--out")
        .arg(held.tmp.0.join("reports"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Until the faults are in: a proxy disabled, the cache down.
    let cache = target.regions["us"].cache.clone().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let disabled = api.proxies().await.unwrap().values().any(|p| !p.enabled);
        let cache_down = redis_pings(&cache).await.is_none();
        if disabled && cache_down {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the faults never took effect"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(run.id().unwrap() as libc::pid_t, libc::SIGINT) };
    let status = run.wait().await.unwrap();
    assert_eq!(status.code(), Some(2));
    for (name, proxy) in api.proxies().await.unwrap() {
        assert!(proxy.enabled, "{name} left disabled");
        let toxics = api.toxics(&name).await.unwrap();
        let left: Vec<_> = toxics
            .iter()
            .filter(|t| !t.name.starts_with("regiondrill_rtt"))
            .map(|t| t.name.clone())
            .collect();
        assert!(left.is_empty(), "{name} keeps toxics {left:?}");
    }
    assert!(redis_pings(&cache).await.is_some(), "us-cache left down");
    held.down();
}

/// PONG from the Redis at `url`, if it answers within a second.
async fn redis_pings(url: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let ping = async {
        let mut c = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING").query_async::<String>(&mut c).await.ok()
    };
    tokio::time::timeout(std::time::Duration::from_secs(1), ping)
        .await
        .ok()
        .flatten()
}
