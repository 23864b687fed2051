//! The `regiondrill` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};

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
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REGIONDRILL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Proxy { host, port } => {
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
    }
}
