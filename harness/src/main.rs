//! The `regiondrill` command line. Exit codes: 0 every SLO met, 1 an SLO missed, 2 an
//! experiment could not run (bad file, missing program, stack failure, Ctrl-C).

use anyhow::Context;
use clap::{Parser, Subcommand};
use regiondrill::run::{BackendChoice, RunOptions};
use regiondrill::stack::docker::images::ImageChoice;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
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

#[derive(Subcommand)]
enum Command {
    /// Run experiments and print their verdicts.
    Run {
        /// Experiment files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where the stack runs: Docker when an engine answers (auto), local processes, or
        /// containers.
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendChoice,
        /// Where run folders go.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Keep the stack's data directories and logs after the run (native backend).
        #[arg(long)]
        keep: bool,
        /// Container images (docker backend): the offline `regiondrill/*` ones from
        /// `just images` when present (auto), those, or the official ones. Each can be
        /// overridden with REGIONDRILL_IMAGE_DB, _CACHE, _APP, _PROXY.
        #[arg(long, value_enum, default_value = "auto")]
        images: ImageChoice,
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
    match cli.command {
        Command::Run {
            files,
            backend,
            out,
            keep,
            images,
        } => {
            run(
                files,
                RunOptions {
                    backend,
                    out,
                    keep_stack_files: keep,
                    images,
                },
            )
            .await
        }
        Command::Proxy { host, port } => match proxy(host, port).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// Ctrl-C once: stop the run and clean up. Twice: leave now (children die with us).
fn cancel_on_ctrl_c() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: stopping the stack (Ctrl-C again to leave at once)");
            t.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    token
}

async fn run(files: Vec<PathBuf>, opts: RunOptions) -> ExitCode {
    let mut experiments = Vec::new();
    for f in &files {
        match regiondrill::experiment::load(f) {
            Ok(e) => experiments.push(e),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let cancel = cancel_on_ctrl_c();
    let mut results = Vec::new();
    let mut could_not_run = false;
    for exp in &experiments {
        eprintln!(
            "running {} ({}, {})…",
            exp.name,
            exp.posture,
            humantime::format_duration(exp.duration)
        );
        match regiondrill::run::run(exp, &opts, &cancel).await {
            Ok(output) => {
                let r = output.results();
                println!("{}", regiondrill::report::terminal::run_report(&r));
                println!("run folder: {}", output.dir.display());
                if let Some(kept) = &output.stack_files {
                    println!("stack files kept in: {}", kept.display());
                }
                println!();
                results.push(r);
            }
            Err(e) => {
                eprintln!("error: {} could not run: {e}", exp.name);
                could_not_run = true;
                if cancel.is_cancelled() {
                    break;
                }
            }
        }
    }
    if results.len() > 1 {
        println!("{}", regiondrill::report::terminal::comparison(&results));
    }
    if could_not_run {
        ExitCode::from(2)
    } else if results.iter().all(|r| r.slo.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
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
