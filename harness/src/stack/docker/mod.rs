//! The Docker backend: every node a container, through testcontainers.
//!
//! One user-defined network per region; the fault proxy's container is attached to every
//! region's network, and is the only thing that is, so every byte between the regions
//! crosses a link. The harness reaches containers through ports published on 127.0.0.1 only.
//! What each container runs is in [`containers`].
//!
//! Faults map to the engine: kill = `docker kill` (SIGKILL, every container of a region at
//! once), pause = `docker pause`, restart = `docker start` (the database keeps its files).
//! Everything is labelled with the run and removed at teardown, on Ctrl-C, on panic (in
//! `Drop`), and by the next start's sweep when the harness was killed outright.

pub mod containers;
pub mod engine;
pub mod images;

use super::backend::{Backend, BoxFuture, NodeStatus};
use super::plan::{NodeSpec, StackPlan};
use super::ports::PortAllocator;
use super::topology::NodeId;
use super::wiring::{Endpoint, LinkPlacement, Placement};
use super::StackError;
use crate::proxy::FaultProxy;
use containers::{Container, LINK_PORT_BASE, PROXY_API_PORT};
use engine::Engine;
use images::Images;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::sync::Mutex;

/// Containers and networks of one run.
pub struct DockerBackend {
    engine: Engine,
    run_id: String,
    /// A short tag of the run id for names: Docker's DNS resolves names, and a DNS label
    /// holds at most 63 characters, so names cannot carry the run id (with the experiment's
    /// name) itself; every object carries it as a label.
    tag: String,
    images: Images,
    /// Each node's region network and published port (from `prepare`).
    placed: BTreeMap<NodeId, (String, u16)>,
    /// The networks, the first one the proxy's, and the proxy's published ports.
    networks: Vec<String>,
    proxy_ports: Vec<(u16, u16)>,
    nodes: Mutex<BTreeMap<NodeId, ContainerAsync<GenericImage>>>,
    proxy: Mutex<Option<ContainerAsync<GenericImage>>>,
    removed: std::sync::atomic::AtomicBool,
}

impl DockerBackend {
    /// A backend for the run `run_id` on `engine` with `images` (nothing happens until
    /// [`Backend::prepare`]).
    pub fn new(engine: Engine, run_id: &str, images: Images) -> DockerBackend {
        DockerBackend {
            engine,
            run_id: run_id.to_string(),
            tag: short_tag(run_id),
            images,
            placed: BTreeMap::new(),
            networks: Vec::new(),
            proxy_ports: Vec::new(),
            nodes: Mutex::default(),
            proxy: Mutex::default(),
            removed: false.into(),
        }
    }

    fn name_of(&self, what: &str) -> String {
        format!("rd-{}-{what}", self.tag)
    }

    async fn start_node(&self, node: &NodeSpec) -> Result<(), StackError> {
        let (network, port) = self
            .placed
            .get(&node.id)
            .cloned()
            .ok_or_else(|| StackError::NotPlaced(node.id.to_string()))?;
        let c = containers::container(node, &self.images);
        let inside = c.port;
        let handle = run(&self.name_of(&node.id.to_string()), c, &network, &[(port, inside)], &self.run_id).await?;
        self.nodes.lock().await.insert(node.id.clone(), handle);
        Ok(())
    }

    async fn container_name(&self, node: &NodeId) -> Result<String, StackError> {
        if self.nodes.lock().await.contains_key(node) {
            Ok(self.name_of(&node.to_string()))
        } else {
            Err(StackError::NotRunning(node.to_string()))
        }
    }
}

impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn prepare<'a>(
        &'a mut self,
        plan: &'a StackPlan,
    ) -> BoxFuture<'a, Result<Placement, StackError>> {
        Box::pin(async move {
            self.engine.sweep().await;
            check_images(&self.engine, &self.images).await?;
            self.networks = plan.regions.iter().map(|r| self.name_of(r)).collect();
            let creating = self.networks.iter().map(|n| self.engine.create_network(n, &self.run_id));
            futures::future::try_join_all(creating).await?;
            let mut ports = PortAllocator::new();
            let mut next = || ports.allocate().map_err(|e| StackError::io(std::path::Path::new("ports"), e));
            let mut placement = Placement::default();
            for node in &plan.nodes {
                let port = next()?;
                let inside = (self.name_of(&node.to_string()), containers::listen_port(node.role));
                placement.nodes.insert(node.clone(), Endpoint { port, inside });
                self.placed.insert(node.clone(), (self.name_of(&node.region), port));
            }
            self.proxy_ports = vec![(next()?, PROXY_API_PORT)];
            for (i, link) in plan.links.iter().enumerate() {
                let listen = LINK_PORT_BASE + i as u16;
                let port = next()?;
                self.proxy_ports.push((port, listen));
                let endpoint = Endpoint {
                    port,
                    inside: (self.name_of("proxy"), listen),
                };
                let listen = format!("0.0.0.0:{listen}");
                placement.links.insert(link.name.clone(), LinkPlacement { endpoint, listen });
            }
            Ok(placement)
        })
    }

    fn start_proxy(&self) -> BoxFuture<'_, Result<FaultProxy, StackError>> {
        Box::pin(async move {
            let name = self.name_of("proxy");
            let (entrypoint, cmd) = if self.images.proxy_is_builtin() {
                let cmd = ["proxy", "--host", "0.0.0.0", "--port", &PROXY_API_PORT.to_string()];
                ("regiondrill".to_string(), cmd.map(String::from).to_vec())
            } else {
                (String::new(), vec!["-host=0.0.0.0".to_string()])
            };
            let c = Container {
                image: self.images.proxy.clone(),
                entrypoint,
                cmd,
                user: None,
                env: Vec::new(),
                port: PROXY_API_PORT,
            };
            let first = self.networks.first().cloned().unwrap_or_default();
            let handle = run(&name, c, &first, &self.proxy_ports, &self.run_id).await?;
            for network in self.networks.iter().skip(1) {
                self.engine.connect_network(network, &name).await?;
            }
            let proxy = FaultProxy::Container {
                url: format!("http://127.0.0.1:{}", self.proxy_ports[0].0),
                image: self.images.proxy.clone(),
            };
            let client = proxy.client();
            let deadline = Instant::now() + Duration::from_secs(60);
            while client.version().await.is_err() {
                if !handle.is_running().await.unwrap_or(false) || Instant::now() > deadline {
                    return Err(StackError::NotReady {
                        node: name,
                        why: "the fault proxy API did not answer".into(),
                        log_tail: logs(&handle).await,
                    });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            *self.proxy.lock().await = Some(handle);
            Ok(proxy)
        })
    }

    fn start<'a>(&'a self, node: &'a NodeSpec) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(self.start_node(node))
    }

    fn run_tool<'a>(
        &'a self,
        node: &'a NodeId,
        argv: &'a [String],
    ) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async move {
            let name = self.container_name(node).await?;
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            self.engine.exec(&name, &argv).await
        })
    }

    fn kill<'a>(&'a self, nodes: &'a [NodeId]) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async move {
            let names: Vec<String> = {
                let running = self.nodes.lock().await;
                nodes
                    .iter()
                    .filter(|n| running.contains_key(*n))
                    .map(|n| self.name_of(&n.to_string()))
                    .collect()
            };
            let kills = names.iter().map(|name| self.engine.kill(name));
            futures::future::try_join_all(kills).await.map(drop)
        })
    }

    fn pause<'a>(
        &'a self,
        node: &'a NodeId,
        paused: bool,
    ) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async move {
            let name = self.container_name(node).await?;
            self.engine.pause(&name, paused).await
        })
    }

    fn restart<'a>(&'a self, node: &'a NodeId) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async move {
            let name = self.container_name(node).await?;
            self.engine.start(&name).await
        })
    }

    fn set_clock<'a>(
        &'a self,
        node: &'a NodeId,
        offset_ms: i64,
    ) -> BoxFuture<'a, Result<(), StackError>> {
        Box::pin(async move {
            let name = self.container_name(node).await?;
            let script = containers::set_clock_script(offset_ms);
            self.engine.exec(&name, &["sh", "-c", &script]).await
        })
    }

    fn status<'a>(&'a self, node: &'a NodeId) -> BoxFuture<'a, NodeStatus> {
        Box::pin(async move {
            if !self.nodes.lock().await.contains_key(node) {
                return NodeStatus::Down;
            }
            let name = self.name_of(&node.to_string());
            if self.engine.is_running(&name).await {
                return NodeStatus::Running;
            }
            match self.engine.exit_code(&name).await {
                // 137: SIGKILLed (by a fault); a crash exits otherwise.
                Some(137) | None => NodeStatus::Down,
                Some(code) => {
                    let nodes = self.nodes.lock().await;
                    let log_tail = match nodes.get(node) {
                        Some(handle) => logs(handle).await,
                        None => String::new(),
                    };
                    NodeStatus::Exited {
                        status: format!("exit code {code}"),
                        log_tail,
                    }
                }
            }
        })
    }

    fn keep_files(&self) -> Option<PathBuf> {
        None
    }

    fn remove(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut handles: Vec<_> = std::mem::take(&mut *self.nodes.lock().await)
                .into_values()
                .collect();
            handles.extend(self.proxy.lock().await.take());
            let mut removals = tokio::task::JoinSet::new();
            for handle in handles {
                removals.spawn(async move {
                    let _ = handle.rm().await;
                });
            }
            while removals.join_next().await.is_some() {}
            // Networks, and anything started outside the handles.
            self.engine.remove_run(&self.run_id).await;
            self.removed.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    }
}

impl Drop for DockerBackend {
    /// Removes the run's containers and networks when the backend goes without `remove`: a
    /// failed bring-up, a panic, Ctrl-C.
    fn drop(&mut self) {
        if self.removed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        remove_blocking(self.engine.clone(), self.run_id.clone());
        // The containers are gone: dropping their handles would only have testcontainers log
        // that it cannot find them.
        for handle in std::mem::take(self.nodes.get_mut()).into_values() {
            std::mem::forget(handle);
        }
        if let Some(handle) = self.proxy.get_mut().take() {
            std::mem::forget(handle);
        }
    }
}

/// Removes a run's objects from a plain thread with its own runtime, so it works from `Drop`
/// in any context (including while a panic unwinds through the harness's runtime).
fn remove_blocking(engine: Engine, run_id: String) {
    let done = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(engine.remove_run_until_gone(&run_id));
        }
    });
    let _ = done.join();
}

/// Fails with the images that are neither present nor pullable, and how to get them.
async fn check_images(engine: &Engine, images: &Images) -> Result<(), StackError> {
    let mut unpullable = Vec::new();
    for image in images.all() {
        // Official images can be pulled where a registry is reachable; regiondrill's cannot.
        if image.starts_with("regiondrill/") && !engine.has_image(image).await {
            unpullable.push(image.to_string());
        }
    }
    if unpullable.is_empty() {
        return Ok(());
    }
    Err(StackError::Missing {
        what: format!("image(s) {}", unpullable.join(", ")),
        looked: "the local Docker engine".into(),
        install: "just images (builds them offline from Debian packages)".into(),
    })
}

/// 12 hex digits standing for a run id in container and network names (FNV-1a, so the same
/// id always gives the same tag).
fn short_tag(run_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in run_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", h >> 16)
}

/// Starts one container with the run's labels on `network`, its ports (127.0.0.1 port,
/// container port) published on 127.0.0.1 only: the stack trusts every connection.
async fn run(
    name: &str,
    c: Container,
    network: &str,
    ports: &[(u16, u16)],
    run_id: &str,
) -> Result<ContainerAsync<GenericImage>, StackError> {
    let (repo, tag) = images::split(&c.image);
    let mut image = GenericImage::new(repo, tag);
    if !c.entrypoint.is_empty() {
        image = image.with_entrypoint(&c.entrypoint);
    }
    let mut req = image
        .with_container_name(name)
        .with_network(network)
        .with_cmd(c.cmd.clone())
        .with_startup_timeout(Duration::from_secs(120));
    for (k, v) in Engine::labels(run_id) {
        req = req.with_label(k, v);
    }
    if let Some(u) = &c.user {
        req = req.with_user(u);
    }
    for (host, inside) in ports {
        req = req.with_mapped_port(*host, inside.tcp());
    }
    for (k, v) in &c.env {
        req = req.with_env_var(k, v);
    }
    let req = req.with_host_config_modifier(|hc| {
        if let Some(bindings) = hc.port_bindings.as_mut() {
            for b in bindings.values_mut().flatten().flatten() {
                b.host_ip = Some("127.0.0.1".into());
            }
        }
    });
    req.start().await.map_err(|e| {
        let hint = if c.image.starts_with("regiondrill/") {
            ""
        } else {
            " (pull it, or use the offline images: just images)"
        };
        StackError::Engine(format!("starting container {name} from {}{hint}: {e}", c.image))
    })
}

/// A container's last log lines.
async fn logs(handle: &ContainerAsync<GenericImage>) -> String {
    let mut log = handle.stdout_to_vec().await.unwrap_or_default();
    log.extend(handle.stderr_to_vec().await.unwrap_or_default());
    let text = String::from_utf8_lossy(&log);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_fit_a_dns_label_whatever_the_experiment_name() {
        let id = crate::run::run_id(&"ap-async-partition-then-region-loss".repeat(4));
        let tag = short_tag(&id);
        assert_eq!(tag.len(), 12);
        // The longest container name the backend makes.
        assert!(format!("rd-{tag}-proxy").len() <= 63);
        assert!(format!("rd-{tag}-eu-cache").len() <= 63);
        assert_eq!(tag, short_tag(&id), "stable");
        assert_ne!(tag, short_tag(&crate::run::run_id("other")));
    }
}
