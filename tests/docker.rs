//! The Docker backend on this machine's engine, with the offline images (`just images`): the
//! same known answers as natively, and nothing left behind — after a run, after Ctrl-C, and
//! (by the next start's sweep) after `kill -9` of the harness. Each test skips, saying so,
//! when no engine answers.

use crate::support::{
    ASYNC_PARTITION_THEN_KILL, TempDir, assert_loses_the_partition_window, docker_or_skip,
    region_loss, run_shipped_on, run_toml_on,
};
use regiondrill::history::OpKind;
use regiondrill::stack::BackendChoice;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Containers and networks of runs (any run: tests in this group run one at a time).
async fn leftovers() -> Vec<String> {
    let out = |args: &[&str]| {
        let o = std::process::Command::new("docker")
            .args(args)
            .output()
            .expect("docker CLI");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let mut v = out(&[
        "ps",
        "-a",
        "--filter",
        "label=regiondrill.run",
        "--format",
        "container {{.Names}}",
    ]);
    v.extend(out(&[
        "network",
        "ls",
        "--filter",
        "label=regiondrill.run",
        "--format",
        "network {{.Name}}",
    ]));
    v
}

/// Docker's volumes (the databases' are anonymous, removed with their containers: they carry
/// no label, so a test compares the set before and after its run).
fn volumes() -> std::collections::BTreeSet<String> {
    let o = std::process::Command::new("docker")
        .args(["volume", "ls", "-q"])
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_loses_nothing_on_region_loss_in_containers() {
    if !docker_or_skip("sync_loses_nothing_on_region_loss_in_containers").await {
        return;
    }
    let toml = region_loss("active-passive-sync", "6s", "3s");
    let (out, _dir) = run_toml_on(BackendChoice::Docker, "docker-sync-loss", &toml, false).await;
    assert_eq!(out.backend, "docker");
    let f = &out.findings;
    assert!(f.lost_writes.checked);
    assert_eq!(f.lost_writes.count, 0, "sync lost {:?}", f.lost_writes.ids);
    assert!(
        out.history
            .ops
            .iter()
            .filter(|o| o.kind == OpKind::Write && o.outcome.is_ok())
            .count()
            > 200
    );
    assert!(f.failover.recovered);
    assert_eq!(out.final_state.primary_region.as_deref(), Some("eu"));
    assert!(
        leftovers().await.is_empty(),
        "left behind: {:?}",
        leftovers().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_partition_then_kill_loses_the_window_in_containers() {
    if !docker_or_skip("async_partition_then_kill_loses_the_window_in_containers").await {
        return;
    }
    let (out, _dir) = run_toml_on(
        BackendChoice::Docker,
        // Long on purpose: container names once held it and broke past 63 characters (DNS).
        "docker-async-partition-then-region-loss-window",
        ASYNC_PARTITION_THEN_KILL,
        false,
    )
    .await;
    assert_loses_the_partition_window(&out);
    assert!(
        leftovers().await.is_empty(),
        "left behind: {:?}",
        leftovers().await
    );
}

/// The CLI on the Docker backend, its output piped.
fn regiondrill(tmp: &std::path::Path, file: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_regiondrill"));
    cmd.args(["run", "--backend", "docker", "--out"])
        .arg(tmp.join("reports"))
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Starts a long Docker run and waits until its apps' containers exist.
async fn start_long_run(tmp: &std::path::Path) -> tokio::process::Child {
    let file = tmp.join("long.toml");
    std::fs::write(
        &file,
        "posture = \"active-passive-async\"\nduration = \"60s\"\n",
    )
    .unwrap();
    let child = regiondrill(tmp, &file).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if leftovers()
            .await
            .iter()
            .filter(|l| l.ends_with("-app"))
            .count()
            == 2
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return child;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the Docker stack did not come up: {:?}", leftovers().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_removes_every_container_and_network() {
    if !docker_or_skip("ctrl_c_removes_every_container_and_network").await {
        return;
    }
    let tmp = TempDir::new("docker-ctrlc");
    let mut child = start_long_run(&tmp.0).await;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("did not stop after Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(2));
    assert!(
        leftovers().await.is_empty(),
        "left behind after Ctrl-C: {:?}",
        leftovers().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_start_sweeps_what_a_killed_harness_left() {
    if !docker_or_skip("the_next_start_sweeps_what_a_killed_harness_left").await {
        return;
    }
    let tmp = TempDir::new("docker-kill9");
    let mut child = start_long_run(&tmp.0).await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
    assert!(
        !leftovers().await.is_empty(),
        "a SIGKILLed harness cannot clean up; expected leftovers"
    );
    let file = tmp.0.join("calm.toml");
    std::fs::write(
        &file,
        "posture = \"single-region\"\nduration = \"500ms\"\nsettle = \"100ms\"\n",
    )
    .unwrap();
    let out = regiondrill(&tmp.0, &file).output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        leftovers().await.is_empty(),
        "not swept: {:?}",
        leftovers().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_a_clear_error() {
    if !docker_or_skip("a_missing_image_is_a_clear_error").await {
        return;
    }
    let tmp = TempDir::new("docker-noimage");
    let file = tmp.0.join("calm.toml");
    std::fs::write(&file, "posture = \"single-region\"\nduration = \"500ms\"\n").unwrap();
    let out = regiondrill(&tmp.0, &file)
        .env("REGIONDRILL_IMAGE_APP", "regiondrill/no-such-image:1")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("regiondrill/no-such-image:1") && stderr.contains("just images"),
        "{stderr}"
    );
    assert!(
        leftovers().await.is_empty(),
        "left behind: {:?}",
        leftovers().await
    );
}

/// Ctrl-C at every stage of a Docker run (several moments of bring-up, when containers and
/// networks are being created, then workload, heal and teardown): exit 2, no container and
/// no network of the run left, and a run folder marked incomplete naming the stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_at_any_stage_removes_every_container_and_network() {
    use crate::support::interrupt::{SHORT, STAGES, incomplete_reason, interrupt, names_stage};
    if !docker_or_skip("ctrl_c_at_any_stage_removes_every_container_and_network").await {
        return;
    }
    let [bring_up, workload, heal, teardown] = STAGES;
    let ms = Duration::from_millis;
    let points = [
        (bring_up, ms(0)),
        (bring_up, ms(400)),
        (bring_up, ms(1500)),
        (bring_up, ms(3000)),
        (workload, ms(500)),
        (heal, ms(100)),
        (teardown, ms(0)),
    ];
    for (stage, delay) in points {
        let tmp = TempDir::new("docker-ctrlc-any");
        let file = tmp.0.join("short.toml");
        std::fs::write(&file, SHORT).unwrap();
        let run = interrupt(regiondrill(&tmp.0, &file), stage, delay).await;
        let at = format!("SIGINT {delay:?} after \"{stage}\"");
        assert_eq!(run.code, Some(2), "{at}: exit code\n{}", run.stderr);
        assert!(
            leftovers().await.is_empty(),
            "{at}: left behind: {:?}",
            leftovers().await
        );
        let reason = incomplete_reason(&tmp.0.join("reports"));
        assert!(
            names_stage(&reason, run.stage_seen),
            "{at}: the run folder says \"{reason}\", last stage seen {:?}",
            run.stage_seen
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn residency_ap_async_finds_every_users_data_abroad_in_containers() {
    if !docker_or_skip("residency_ap_async_finds_every_users_data_abroad_in_containers").await {
        return;
    }
    let (out, _dir) = crate::support::run_shipped_on(
        BackendChoice::Docker,
        "experiments/residency-ap-async.toml",
    )
    .await;
    assert_eq!(out.backend, "docker");
    let r = &out.findings.residency;
    assert!(r.checked && r.unreadable.is_empty(), "{r:#?}");
    // The same known answer at rest as natively: each region holds the other's 20 users.
    let held = |region: &str, home: &str| r.by_region[region].users_by_home.get(home).copied();
    assert_eq!(
        (held("us", "eu"), held("eu", "us")),
        (Some(20), Some(20)),
        "{r:#?}"
    );
    assert_eq!(r.at_rest_users, 40);
    // In flight, counted by the proxy container through its API: the same known answer as
    // natively — eu users' profiles crossed into us on the eu app's link to the primary, us
    // users' into eu on the replication stream, nothing personal on the monitor's link.
    let leak = |link: &str, to: &str| {
        r.in_flight
            .as_ref()
            .expect("the proxy container counts tokens")
            .iter()
            .find(|l| l.link == link && l.to == to)
            .unwrap_or_else(|| panic!("no {link} into {to}"))
            .clone()
    };
    assert_eq!(leak("eu-app-to-us-db", "us").violating_users, 20);
    assert_eq!(leak("replication", "eu").violating_users, 20);
    assert_eq!(leak("eu-monitor-to-us-db", "eu").tokens, 0);
    assert_eq!(r.in_flight_users, Some(40));
    assert!(!out.verdict.passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_under_partition_completes_after_the_heal_in_containers() {
    if !docker_or_skip("erasure_under_partition_completes_after_the_heal_in_containers").await {
        return;
    }
    let (out, _dir) = crate::support::run_shipped_on(
        BackendChoice::Docker,
        "experiments/erasure-under-partition.toml",
    )
    .await;
    let e = &out.findings.erasure;
    assert_eq!(
        (e.requested, e.acknowledged, e.done, e.pending),
        (8, 8, 8, 0),
        "{e:#?}"
    );
    // Acknowledged during the cut: done only after the heal, as natively.
    assert_eq!((e.during_fault, e.done_before_heal), (3, 0), "{e:#?}");
    for r in e.erasures.iter().filter(|r| r.fault.is_some()) {
        assert!(r.done_ms.unwrap() > r.heal_ms.unwrap(), "{r:?}");
    }
    // The erased users' writes are erased, not lost.
    assert!(out.findings.lost_writes.erased > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_holds_its_region_loss_known_answer_in_containers() {
    if !docker_or_skip("patroni_holds_its_region_loss_known_answer_in_containers").await {
        return;
    }
    let (out, _dir) = run_shipped_on(
        BackendChoice::Docker,
        "experiments/patroni-region-loss.toml",
    )
    .await;
    assert_eq!(out.backend, "docker");
    crate::managers::assert_patroni_region_loss_known_answer(&out);
    assert!(
        leftovers().await.is_empty(),
        "left behind: {:?}",
        leftovers().await
    );
}

/// Three regions in containers (one network per region, the witness's links on the proxy):
/// the shipped region loss with quorum commit (its schedule shortened) fails over once, to a
/// standby, and loses nothing; nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_regions_lose_nothing_to_a_region_loss_in_containers() {
    if !docker_or_skip("three_regions_lose_nothing_to_a_region_loss_in_containers").await {
        return;
    }
    let text = crate::support::three_region_loss_shortened();
    let (out, _dir) = run_toml_on(BackendChoice::Docker, "three-region-loss", &text, false).await;
    assert_eq!(out.backend, "docker");
    let f = &out.findings.false_failovers;
    assert_eq!((f.failovers, f.count), (1, 0), "{f:?}");
    assert!(out.findings.lost_writes.checked);
    assert_eq!(
        out.findings.lost_writes.count, 0,
        "{:?}",
        out.findings.lost_writes.ids
    );
    assert!(
        leftovers().await.is_empty(),
        "left behind: {:?}",
        leftovers().await
    );
}

/// A user's own app image in place of the sample app (`REGIONDRILL_IMAGE_APP`): built here,
/// offline, from the local app image with its binary moved away and a `regiondrill-app`
/// wrapper script in its place (what README's "Your own app on the Docker backend" asks of an
/// image). The run's app containers run that image, and the known answer holds: synchronous
/// replication loses nothing when `us` is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_app_image_runs_in_place_of_the_sample_app() {
    if !docker_or_skip("a_users_app_image_runs_in_place_of_the_sample_app").await {
        return;
    }
    const IMAGE: &str = "regiondrill-test/your-app:1";
    let tmp = TempDir::new("docker-your-app");
    let dockerfile = "FROM regiondrill/app:latest\n\
        RUN p=$(command -v regiondrill-app) && mv \"$p\" /opt/your-app && \
        printf '#!/bin/sh\\nexec /opt/your-app \"$@\"\\n' > \"$p\" && chmod +x \"$p\"\n";
    std::fs::write(tmp.0.join("Dockerfile"), dockerfile).unwrap();
    let built = std::process::Command::new("docker")
        .args(["build", "-q", "-t", IMAGE])
        .arg(&tmp.0)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let file = tmp.0.join("sync.toml");
    std::fs::write(&file, region_loss("active-passive-sync", "6s", "3s")).unwrap();
    let run = regiondrill(&tmp.0, &file)
        .env("REGIONDRILL_IMAGE_APP", IMAGE)
        .spawn()
        .unwrap();
    // While it runs: its app containers run the user's image.
    let mut seen = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen && Instant::now() < deadline {
        let ps = std::process::Command::new("docker")
            .args([
                "ps",
                "--filter",
                "label=regiondrill.run",
                "--format",
                "{{.Image}} {{.Names}}",
            ])
            .output()
            .unwrap();
        seen = String::from_utf8_lossy(&ps.stdout)
            .lines()
            .any(|l| l.starts_with(IMAGE) && l.ends_with("-app"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = run.wait_with_output().await.unwrap();
    let _ = std::process::Command::new("docker")
        .args(["rmi", IMAGE])
        .output();
    assert!(seen, "no app container ran {IMAGE}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = std::fs::read_dir(tmp.0.join("reports"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("results.json"))
        .find(|p| p.exists())
        .expect("results.json");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results).unwrap()).unwrap();
    let lost = &results["findings"]["lost_writes"];
    assert_eq!(lost["checked"], true);
    assert_eq!(lost["count"], 0, "sync lost writes with the user's image");
    assert!(
        leftovers().await.is_empty(),
        "left behind: {:?}",
        leftovers().await
    );
}

/// `regiondrill up --backend docker` holds a stack in containers; a drill through its target
/// file keeps the partition-window known answer; `down` removes every container and network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_docker_stack_is_drilled_as_a_target_and_removed_by_down() {
    if !docker_or_skip("a_held_docker_stack_is_drilled_as_a_target_and_removed_by_down").await {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_regiondrill");
    let tmp = TempDir::new("docker-up");
    let file = tmp.0.join("async.toml");
    std::fs::write(&file, ASYNC_PARTITION_THEN_KILL).unwrap();
    let target = tmp.0.join("target.toml");
    let up = std::process::Command::new(bin)
        .args(["up", "--backend", "docker", "--target-file"])
        .arg(&target)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let exp = regiondrill::experiment::load(&file).unwrap();
    let opts = regiondrill::run::RunOptions {
        backend: BackendChoice::Native,
        out: tmp.0.join("reports"),
        keep_stack_files: false,
        images: regiondrill::stack::docker::images::ImageChoice::Auto,
        observer: None,
        target: Some(regiondrill::target::load(&target).unwrap()),
    };
    let out = regiondrill::run::run(&exp, &opts, &tokio_util::sync::CancellationToken::new()).await;
    let down = std::process::Command::new(bin)
        .arg("down")
        .arg(&target)
        .output()
        .unwrap();
    let out = out.unwrap_or_else(|e| panic!("the drill could not run: {e}"));
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(out.backend, "external");
    assert_eq!(out.final_state.primary_region.as_deref(), Some("eu"));
    assert_loses_the_partition_window(&out);
    assert!(!target.exists());
    assert!(
        leftovers().await.is_empty(),
        "left behind: {:?}",
        leftovers().await
    );
}

/// pg_auto_failover in containers: the monitor on the witness's network, a keeper per
/// region, each registered at its replication link in the proxy container (the other
/// keeper's stream and the monitor's health checks cross it; each keeper's reports cross its
/// link to the witness). The same known answer as natively, and nothing left: containers,
/// networks, the databases' volumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_auto_failover_holds_its_region_loss_known_answer_in_containers() {
    if !docker_or_skip("pg_auto_failover_holds_its_region_loss_known_answer_in_containers").await {
        return;
    }
    let before = volumes();
    let (out, _dir) = run_shipped_on(
        BackendChoice::Docker,
        "experiments/pg-auto-failover-region-loss.toml",
    )
    .await;
    assert_eq!(out.backend, "docker");
    crate::managers::assert_pg_auto_failover_region_loss_known_answer(&out);
    assert!(
        leftovers().await.is_empty(),
        "left behind: {:?}",
        leftovers().await
    );
    let left: Vec<String> = volumes().difference(&before).cloned().collect();
    assert!(left.is_empty(), "volumes left behind: {left:?}");
}

/// Ctrl-C while a pg_auto_failover stack is being formed and while its workload runs: exit
/// 2, and no container, network or volume of the run left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_auto_failover_ctrl_c_removes_every_container_network_and_volume() {
    use crate::support::interrupt::{STAGES, interrupt};
    let test = "pg_auto_failover_ctrl_c_removes_every_container_network_and_volume";
    if !docker_or_skip(test).await {
        return;
    }
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../experiments/pg-auto-failover-region-loss.toml");
    let toml = std::fs::read_to_string(shipped).unwrap();
    let [bring_up, workload, ..] = STAGES;
    // 6 s into bring-up: the formation is being made (the monitor, then us's keeper, then
    // eu's cloning us: which one is reached depends on the host's load).
    for (stage, delay) in [(bring_up, 6_000), (workload, 1_000)] {
        let before = volumes();
        let tmp = TempDir::new("docker-paf-ctrlc");
        let file = tmp.0.join("paf.toml");
        std::fs::write(&file, &toml).unwrap();
        let run = interrupt(
            regiondrill(&tmp.0, &file),
            stage,
            Duration::from_millis(delay),
        )
        .await;
        let at = format!("SIGINT {delay} ms after \"{stage}\"");
        assert_eq!(run.code, Some(2), "{at}: exit code\n{}", run.stderr);
        assert!(
            leftovers().await.is_empty(),
            "{at}: left behind: {:?}",
            leftovers().await
        );
        let left: Vec<String> = volumes().difference(&before).cloned().collect();
        assert!(left.is_empty(), "{at}: volumes left behind: {left:?}");
    }
}
