//! The Docker engine as the backend uses it directly (through testcontainers' re-exported
//! bollard client): reachability, images, networks, kill/start/pause, removal, and the
//! sweep of what a killed harness left behind.
//!
//! Everything a run creates carries three labels: `regiondrill.run` (the run id),
//! `regiondrill.owner` (the harness's pid and start time) and `regiondrill.host`. A later
//! start removes containers and networks whose owner on this host is gone.

use crate::stack::StackError;
use std::collections::HashMap;
use std::time::Duration;
use testcontainers::bollard::Docker;
use testcontainers::bollard::models::NetworkCreateRequest;
use testcontainers::bollard::query_parameters::{
    KillContainerOptions, ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
};

/// Label: the run id.
pub const RUN_LABEL: &str = "regiondrill.run";
/// Label: `<pid>:<start time>` of the harness that created it.
pub const OWNER_LABEL: &str = "regiondrill.owner";
/// Label: the host the harness runs on.
pub const HOST_LABEL: &str = "regiondrill.host";

/// What [`Engine::run_container`] starts.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec<'a> {
    /// Image.
    pub image: &'a str,
    /// Entrypoint (empty: the image's).
    pub entrypoint: &'a str,
    /// Arguments.
    pub cmd: &'a [String],
    /// User to run as (None: the image's).
    pub user: Option<&'a str>,
    /// Environment.
    pub env: &'a [(String, String)],
    /// The networks it is on (the first is its main one).
    pub networks: &'a [String],
    /// (127.0.0.1 port, container port) to publish.
    pub ports: &'a [(u16, u16)],
    /// The run it belongs to (its labels).
    pub run_id: &'a str,
}

/// A connection to the local engine.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
}

impl Engine {
    /// Connects and pings the engine (within 3 s).
    pub async fn connect() -> Result<Engine, StackError> {
        let docker =
            Docker::connect_with_local_defaults().map_err(|e| no_engine(&e.to_string()))?;
        match tokio::time::timeout(Duration::from_secs(3), docker.ping()).await {
            Ok(Ok(_)) => Ok(Engine { docker }),
            Ok(Err(e)) => Err(no_engine(&e.to_string())),
            Err(_) => Err(no_engine("no answer within 3 s")),
        }
    }

    /// Whether an engine answers (for `--backend auto`).
    pub async fn available() -> bool {
        Engine::connect().await.is_ok()
    }

    /// Whether an image exists locally.
    pub async fn has_image(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    /// The labels every object of this run carries.
    pub fn labels(run_id: &str) -> HashMap<String, String> {
        HashMap::from([
            (RUN_LABEL.to_string(), run_id.to_string()),
            (OWNER_LABEL.to_string(), owner()),
            (HOST_LABEL.to_string(), hostname()),
        ])
    }

    /// Creates a user-defined bridge network.
    pub async fn create_network(&self, name: &str, run_id: &str) -> Result<(), StackError> {
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(Engine::labels(run_id)),
            ..Default::default()
        };
        self.docker
            .create_network(req)
            .await
            .map(drop)
            .map_err(|e| StackError::Engine(format!("creating network {name}: {e}")))
    }

    /// Creates and starts a container named `name` from `image` on `network`, with the run's
    /// labels, its ports (127.0.0.1 port, container port) published on 127.0.0.1 only (the
    /// stack trusts every connection). Two calls to the engine, nothing else: starting a
    /// stack's seven containers this way took 2.0 s where testcontainers' runner, which also
    /// inspects networks under a global lock and the container twice, took 3.0 s.
    pub async fn run_container(&self, name: &str, c: &RunSpec<'_>) -> Result<(), StackError> {
        use testcontainers::bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
        use testcontainers::bollard::query_parameters::CreateContainerOptionsBuilder;
        let mut bindings = HashMap::new();
        let mut exposed = Vec::new();
        for (host, inside) in c.ports {
            let key = format!("{inside}/tcp");
            exposed.push(key.clone());
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(host.to_string()),
                }]),
            );
        }
        let body = ContainerCreateBody {
            image: Some(c.image.to_string()),
            entrypoint: (!c.entrypoint.is_empty()).then(|| vec![c.entrypoint.to_string()]),
            cmd: Some(c.cmd.to_vec()),
            user: c.user.map(str::to_string),
            env: Some(c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(Engine::labels(c.run_id)),
            exposed_ports: Some(exposed),
            host_config: Some(HostConfig {
                network_mode: c.networks.first().cloned(),
                port_bindings: Some(bindings),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let hint = if c.image.starts_with("regiondrill/") {
            ""
        } else {
            " (pull it, or use the offline images: just images)"
        };
        let failed = |e: String| {
            StackError::Engine(format!(
                "starting container {name} from {}{hint}: {e}",
                c.image
            ))
        };
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| failed(e.to_string()))?;
        // Further networks before it starts (engines before API 1.44 take one at creation).
        for network in c.networks.iter().skip(1) {
            let req = testcontainers::bollard::models::NetworkConnectRequest {
                container: name.to_string(),
                endpoint_config: None,
            };
            self.docker
                .connect_network(network, req)
                .await
                .map_err(|e| failed(format!("attaching to {network}: {e}")))?;
        }
        self.docker
            .start_container(name, None)
            .await
            .map_err(|e| failed(e.to_string()))
    }

    /// The last `n` lines a container wrote (stdout and stderr), for diagnoses.
    pub async fn log_tail(&self, name: &str, n: usize) -> String {
        use futures::StreamExt;
        use testcontainers::bollard::query_parameters::LogsOptionsBuilder;
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&n.to_string())
            .build();
        let mut out = String::new();
        let mut logs = self.docker.logs(name, Some(options));
        while let Some(Ok(chunk)) = logs.next().await {
            out.push_str(&chunk.to_string());
        }
        out.trim_end().to_string()
    }

    /// SIGKILLs a container (no-op when it is not running).
    pub async fn kill(&self, container: &str) -> Result<(), StackError> {
        let opts = KillContainerOptions {
            signal: "SIGKILL".into(),
        };
        match self.docker.kill_container(container, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if e.to_string().contains("is not running") => Ok(()),
            Err(e) => Err(StackError::Engine(format!("docker kill {container}: {e}"))),
        }
    }

    /// Starts a stopped container.
    pub async fn start(&self, container: &str) -> Result<(), StackError> {
        self.docker
            .start_container(container, None)
            .await
            .map_err(|e| StackError::Engine(format!("docker start {container}: {e}")))
    }

    /// Freezes (`docker pause`) or resumes a container.
    pub async fn pause(&self, container: &str, paused: bool) -> Result<(), StackError> {
        let r = if paused {
            self.docker.pause_container(container).await
        } else {
            self.docker.unpause_container(container).await
        };
        r.map_err(|e| {
            StackError::Engine(format!(
                "docker {} {container}: {e}",
                if paused { "pause" } else { "unpause" }
            ))
        })
    }

    /// Runs a command in a running container and waits for it; fails on a non-zero exit.
    pub async fn exec(&self, container: &str, cmd: &[&str]) -> Result<(), StackError> {
        use futures::StreamExt;
        use testcontainers::bollard::exec::{CreateExecOptions, StartExecResults};
        let err = |e: String| {
            StackError::Engine(format!("docker exec {container} {}: {e}", cmd.join(" ")))
        };
        let opts = CreateExecOptions {
            cmd: Some(cmd.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(container, opts)
            .await
            .map_err(|e| err(e.to_string()))?;
        if let StartExecResults::Attached { mut output, .. } = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| err(e.to_string()))?
        {
            while output.next().await.is_some() {}
        }
        let info = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| err(e.to_string()))?;
        match info.exit_code {
            Some(0) => Ok(()),
            code => Err(err(format!("exit code {code:?}"))),
        }
    }

    /// Whether a container is running.
    pub async fn is_running(&self, container: &str) -> bool {
        match self.docker.inspect_container(container, None).await {
            Ok(info) => info.state.and_then(|s| s.running).unwrap_or(false),
            Err(_) => false,
        }
    }

    /// A stopped container's exit code (None while it runs).
    pub async fn exit_code(&self, container: &str) -> Option<i64> {
        let info = self.docker.inspect_container(container, None).await.ok()?;
        let state = info.state?;
        if state.running.unwrap_or(false) {
            None
        } else {
            state.exit_code
        }
    }

    /// Removes every container and network of `run_id`.
    pub async fn remove_run(&self, run_id: &str) {
        let filter = HashMap::from([("label".to_string(), vec![format!("{RUN_LABEL}={run_id}")])]);
        self.remove_matching(filter).await;
    }

    /// Removes every container and network of `run_id`, again and again until nothing of
    /// it has shown up for half a second (at most 5 s): when bring-up is interrupted, create
    /// requests already sent still complete in the engine after a first removal.
    pub async fn remove_run_until_gone(&self, run_id: &str) {
        let filter = HashMap::from([("label".to_string(), vec![format!("{RUN_LABEL}={run_id}")])]);
        let mut quiet = 0;
        for _ in 0..20 {
            if self.count_matching(filter.clone()).await == 0 {
                quiet += 1;
                if quiet >= 2 {
                    return;
                }
            } else {
                quiet = 0;
                self.remove_matching(filter.clone()).await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// How many containers and networks match a label filter.
    async fn count_matching(&self, filters: HashMap<String, Vec<String>>) -> usize {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(opts))
            .await
            .unwrap_or_default();
        let opts = ListNetworksOptions {
            filters: Some(filters),
        };
        let networks = self
            .docker
            .list_networks(Some(opts))
            .await
            .unwrap_or_default();
        containers.len() + networks.len()
    }

    /// Removes containers, then networks, matching a label filter.
    async fn remove_matching(&self, filters: HashMap<String, Vec<String>>) {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(opts))
            .await
            .unwrap_or_default();
        // All at once: the engine removes them in parallel.
        let removals = containers.iter().filter_map(|c| c.id.as_deref()).map(|id| {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            self.docker.remove_container(id, Some(options))
        });
        futures::future::join_all(removals).await;
        let opts = ListNetworksOptions {
            filters: Some(filters),
        };
        let networks = self
            .docker
            .list_networks(Some(opts))
            .await
            .unwrap_or_default();
        let removals = networks
            .iter()
            .filter_map(|n| n.id.as_deref())
            .map(|id| self.docker.remove_network(id));
        futures::future::join_all(removals).await;
    }

    /// Removes what runs of harnesses on this host that are gone left behind; returns how
    /// many runs were swept.
    pub async fn sweep(&self) -> usize {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{HOST_LABEL}={}", hostname())],
        )]);
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        };
        let mut dead_runs = std::collections::BTreeSet::new();
        let containers = self
            .docker
            .list_containers(Some(opts))
            .await
            .unwrap_or_default();
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .unwrap_or_default();
        let labelled = containers
            .iter()
            .filter_map(|c| c.labels.as_ref())
            .chain(networks.iter().filter_map(|n| n.labels.as_ref()));
        for labels in labelled {
            if let (Some(run), Some(owner)) = (labels.get(RUN_LABEL), labels.get(OWNER_LABEL)) {
                if !owner_alive(owner) {
                    dead_runs.insert(run.clone());
                }
            }
        }
        for run in &dead_runs {
            tracing::info!(
                run,
                "removing the containers and networks of a harness that is gone"
            );
            self.remove_run(run).await;
        }
        dead_runs.len()
    }
}

fn no_engine(detail: &str) -> StackError {
    StackError::Engine(format!(
        "no Docker engine answers ({detail}); start Docker, or run with --backend native"
    ))
}

/// `<pid>:<start time>` of this process.
fn owner() -> String {
    let pid = std::process::id();
    format!(
        "{pid}:{}",
        crate::stack::native::rundir::start_time(pid as i32).unwrap_or(0)
    )
}

/// Whether the harness named by an owner label is still running.
fn owner_alive(owner: &str) -> bool {
    let mut parts = owner.split(':').map(|p| p.parse::<u64>().unwrap_or(0));
    let (pid, started) = (parts.next().unwrap_or(0) as i32, parts.next().unwrap_or(0));
    pid > 0 && crate::stack::native::rundir::start_time(pid) == Some(started)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
