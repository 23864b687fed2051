//! Holding a stack for someone else to drill (`regiondrill up`): bring an experiment's stack
//! up, keep it — with the experiment's failover manager watching it, as a real stack has its
//! HA manager — write its target file, and act on node operations sent to a control API on
//! loopback, until told to stop (`regiondrill down`, SIGTERM); then remove everything.
//!
//! The holder is a process of its own because the stack's processes, the built-in fault proxy
//! and the manager live in it: `regiondrill up` starts one in the background and returns once
//! the target file is written.

use crate::experiment::Experiment;
use crate::record::{Clock, Recorder};
use crate::stack::topology::NodeId;
use crate::stack::{BackendChoice, Stack, StackError};
use crate::target::UpOwner;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Why a stack could not be held.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// The stack could not be brought up.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The control API or the target file could not be set up.
    #[error("{0}")]
    Io(String),
}

/// Brings `exp`'s stack up on `backend`, writes its target file at `file`, and serves node
/// operations until `cancel`; then tears everything down and removes the file.
pub async fn hold(
    exp: &Experiment,
    backend: BackendChoice,
    images: crate::stack::docker::images::ImageChoice,
    file: &Path,
    cancel: &CancellationToken,
) -> Result<(), HoldError> {
    let run_id = crate::run::run_id(&format!("{}-up", exp.name));
    let plan = exp.stack_plan();
    let up = async {
        let backend = backend.backend(&run_id, images).await?;
        Stack::up(plan, backend).await
    };
    let stack = tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        s = up => Arc::new(s?),
    };
    let result = serve(exp, &stack, file, cancel).await;
    let _ = std::fs::remove_file(file);
    crate::run::teardown(stack).await;
    result
}

async fn serve(
    exp: &Experiment,
    stack: &Arc<Stack>,
    file: &Path,
    cancel: &CancellationToken,
) -> Result<(), HoldError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| HoldError::Io(format!("control API: {e}")))?;
    let control = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| HoldError::Io(e.to_string()))?
    );
    let app = axum::Router::new()
        .route("/nodes/{node}/{op}", axum::routing::post(operate))
        .with_state(stack.clone());
    let stop = cancel.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    // The stack's own HA: the experiment's failover manager watches it for as long as it is
    // held (its events are nobody's: a drill observes what it does).
    let stop_manager = cancel.child_token();
    let manager = crate::failover::for_experiment(exp, false).run(
        stack.clone(),
        Recorder::new(Clock::start()),
        stop_manager.clone(),
    );
    let manager = tokio::spawn(manager);
    let owner = UpOwner {
        pid: std::process::id(),
        control,
        experiment: exp.source.display().to_string(),
        backend: stack.backend().to_string(),
    };
    let exe = std::env::current_exe().map_err(|e| HoldError::Io(e.to_string()))?;
    let text = crate::target::write::target_file(stack, &owner, &exe);
    let staging = file.with_extension("toml.part");
    std::fs::write(&staging, text)
        .and_then(|()| std::fs::rename(&staging, file))
        .map_err(|e| HoldError::Io(format!("{}: {e}", file.display())))?;
    tracing::info!(file = %file.display(), "stack held");
    cancel.cancelled().await;
    stop_manager.cancel();
    let _ = manager.await;
    let _ = server.await;
    Ok(())
}

/// `POST /nodes/{node}/{op}`: kill, restart, pause or resume a node. 200 with what was done;
/// 404 for an unknown node, 400 for an unknown operation, 500 when the stack refused.
async fn operate(
    State(stack): State<Arc<Stack>>,
    UrlPath((node, op)): UrlPath<(String, String)>,
) -> (StatusCode, String) {
    let Some(id) = NodeId::parse(&node).filter(|n| stack.has(n)) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no node {node} in this stack\n"),
        );
    };
    let done = match op.as_str() {
        "kill" => stack.kill(&id).await.map(|()| format!("killed {id}")),
        "restart" => stack.restart(&id).await.map(|started| {
            if started {
                format!("{id} running")
            } else {
                format!("{id} left down: it was a primary and has been deposed by a failover")
            }
        }),
        "pause" => stack
            .pause(&id, true)
            .await
            .map(|()| format!("paused {id}")),
        "resume" => stack
            .pause(&id, false)
            .await
            .map(|()| format!("resumed {id}")),
        other => {
            return (
                StatusCode::BAD_REQUEST,
                format!("no operation {other}: kill, restart, pause or resume\n"),
            );
        }
    };
    match done {
        Ok(text) => (StatusCode::OK, text + "\n"),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{op} {id}: {e}\n"),
        ),
    }
}

/// Sends a node operation to a holder's control API (what the commands of an `up` target
/// file run); what the holder answered.
pub async fn send(control: &str, op: &str, node: &str) -> Result<String, String> {
    let url = format!("{}/nodes/{node}/{op}", control.trim_end_matches('/'));
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("static client")
        .post(&url)
        .timeout(std::time::Duration::from_secs(85))
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let ok = resp.status().is_success();
    let text = resp.text().await.unwrap_or_default();
    if ok { Ok(text) } else { Err(text) }
}
