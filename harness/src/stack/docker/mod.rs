//! The Docker backend: every node a container, through testcontainers.
//!
//! One user-defined network per region (and one for a witness, where a failover manager's
//! state lives); the fault proxy's container is attached to every region's network, and is
//! the only thing that is, so every byte between the regions crosses a link. The harness
//! reaches containers through ports published on 127.0.0.1 only.
//!
//! Each link listens on a port of its own in the proxy's container. A database that
//! registers one address for everyone (pg_auto_failover's keepers: the other keeper streams
//! from it, the monitor health-checks it) registers its replication link — the proxy's name,
//! which Docker's DNS resolves on every network, and that link's port — and listens on that
//! same port in its own container, since pg_auto_failover registers the port PostgreSQL
//! listens on ([`inside_ports`], `containers::pg_autoctl`).
//! What each container runs is in [`containers`]. Containers are created and started through
//! the engine's API (testcontainers' bollard client) with two calls each, all at once, and
//! removed by the run's label.
//!
//! Faults map to the engine: kill = `docker kill` (SIGKILL, every container of a region at
//! once), pause = `docker pause`, restart = `docker start` (the database keeps its files).
//! Everything is labelled with the run and removed at teardown, on Ctrl-C, on panic (in
//! `Drop`), and by the next start's sweep when the harness was killed outright.

pub mod containers;
pub mod engine;
pub mod images;

use super::StackError;
use super::backend::{Backend, BoxFuture, NodeStatus};
use super::plan::{NodeSpec, Program, StackPlan};
use super::ports::PortAllocator;
use super::topology::{NodeId, Role};
use super::wiring::{Endpoint, LinkPlacement, Placement};
use crate::proxy::FaultProxy;
use containers::{Container, LINK_PORT_BASE, PROXY_API_PORT};
use engine::Engine;
use engine::RunSpec;
use images::Images;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Numbers the helper containers that work on a stopped database's data.
static DATA_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
    /// The nodes whose containers exist.
    nodes: Mutex<BTreeSet<NodeId>>,
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
        if let Program::PgAutoFailoverKeeper(k) = &node.program
            && (k.hostname.0.is_empty() || k.monitor.0.is_empty())
        {
            return Err(StackError::NotPlaced(format!(
                "{}'s registered address or its monitor's",
                node.id
            )));
        }
        let c = containers::container(node, &self.images);
        let name = self.name_of(&node.id.to_string());
        let mut ports = vec![(port, c.port)];
        if let Program::Patroni(_) = node.program {
            let api = NodeId::new(&node.id.region, Role::Api);
            let (_, api_port) = self
                .placed
                .get(&api)
                .cloned()
                .ok_or_else(|| StackError::NotPlaced(api.to_string()))?;
            ports.push((api_port, containers::listen_port(Role::Api)));
        }
        let networks = [network];
        let spec = run_spec(&c, &networks, &ports, &self.run_id);
        let t = Instant::now();
        self.engine.run_container(&name, &spec).await?;
        tracing::debug!(%name, elapsed_ms = t.elapsed().as_millis() as u64, "container started");
        self.nodes.lock().await.insert(node.id.clone());
        Ok(())
    }

    async fn container_name(&self, node: &NodeId) -> Result<String, StackError> {
        if self.nodes.lock().await.contains(node) {
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
            if plan.patroni.is_some() && self.images.db != Images::local().db {
                return Err(StackError::Engine(format!(
                    "manager = \"patroni\" on Docker needs the offline database image, which \
                     holds Patroni, etcd and HAProxy (`just images`); {} holds none of them",
                    self.images.db
                )));
            }
            if plan.pg_auto_failover.is_some() && self.images.db != Images::local().db {
                return Err(StackError::Engine(format!(
                    "manager = \"pg_auto_failover\" on Docker needs the offline database \
                     image, which holds pg_auto_failover (`just images`); {} does not",
                    self.images.db
                )));
            }
            self.engine.sweep().await;
            check_images(&self.engine, &self.images).await?;
            // A network per region any node is in: the data regions, and a witness's.
            let regions: BTreeSet<&str> = plan.nodes.iter().map(|n| n.region.as_str()).collect();
            self.networks = regions.iter().map(|r| self.name_of(r)).collect();
            let creating = self
                .networks
                .iter()
                .map(|n| self.engine.create_network(n, &self.run_id));
            futures::future::try_join_all(creating).await?;
            let mut ports = PortAllocator::new();
            let mut next = || {
                ports
                    .allocate()
                    .map_err(|e| StackError::io(std::path::Path::new("ports"), e))
            };
            let (node_listen, link_listen) = inside_ports(plan);
            let mut placement = Placement::default();
            for node in &plan.placed() {
                let port = next()?;
                // A Patroni member's REST API is a second port of its database's container.
                let container = match node.role {
                    Role::Api => NodeId::new(&node.region, Role::Db),
                    _ => node.clone(),
                };
                let inside = (self.name_of(&container.to_string()), node_listen[node]);
                placement
                    .nodes
                    .insert(node.clone(), Endpoint { port, inside });
                self.placed
                    .insert(node.clone(), (self.name_of(&node.region), port));
            }
            self.proxy_ports = vec![(next()?, PROXY_API_PORT)];
            for link in &plan.links {
                let listen = link_listen[&link.name];
                let port = next()?;
                self.proxy_ports.push((port, listen));
                let endpoint = Endpoint {
                    port,
                    inside: (self.name_of("proxy"), listen),
                };
                let listen = format!("0.0.0.0:{listen}");
                placement
                    .links
                    .insert(link.name.clone(), LinkPlacement { endpoint, listen });
            }
            Ok(placement)
        })
    }

    fn start_proxy(&self) -> BoxFuture<'_, Result<FaultProxy, StackError>> {
        Box::pin(async move {
            let name = self.name_of("proxy");
            let (entrypoint, cmd) = if self.images.proxy_is_builtin() {
                let cmd = [
                    "proxy",
                    "--host",
                    "0.0.0.0",
                    "--port",
                    &PROXY_API_PORT.to_string(),
                ];
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
                volumes: Vec::new(),
            };
            let spec = run_spec(&c, &self.networks, &self.proxy_ports, &self.run_id);
            let t = Instant::now();
            self.engine.run_container(&name, &spec).await?;
            tracing::debug!(%name, elapsed_ms = t.elapsed().as_millis() as u64, "proxy container started");
            let proxy = FaultProxy::Container {
                url: format!("http://127.0.0.1:{}", self.proxy_ports[0].0),
                image: self.images.proxy.clone(),
            };
            let client = proxy.client();
            let deadline = Instant::now() + Duration::from_secs(60);
            while client.version().await.is_err() {
                if !self.engine.is_running(&name).await || Instant::now() > deadline {
                    return Err(StackError::NotReady {
                        log_tail: self.engine.log_tail(&name, 15).await,
                        node: name,
                        why: "the fault proxy API did not answer".into(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tracing::debug!(
                elapsed_ms = t.elapsed().as_millis() as u64,
                "proxy API answers"
            );
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
                    .filter(|n| running.contains(*n))
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

    fn run_on_data<'a>(
        &'a self,
        node: &'a NodeId,
        script: &'a str,
    ) -> BoxFuture<'a, Result<String, StackError>> {
        Box::pin(async move {
            let name = self.container_name(node).await?;
            if self.engine.is_running(&name).await {
                return Err(StackError::Task(format!(
                    "{node} must be down to work on its data"
                )));
            }
            let (network, _) = self
                .placed
                .get(node)
                .cloned()
                .ok_or_else(|| StackError::NotPlaced(node.to_string()))?;
            // A helper from the database's image, with the stopped container's volume, on
            // its region's network (so the links resolve as they do for the node).
            let full = format!("export PGDATA={}\n{script}", containers::PGDATA);
            let cmd = vec!["-c".to_string(), full];
            let networks = [network];
            let spec = RunSpec {
                image: &self.images.db,
                entrypoint: "sh",
                cmd: &cmd,
                user: Some("postgres"),
                env: &[],
                networks: &networks,
                ports: &[],
                run_id: &self.run_id,
                volumes: &[],
                volumes_from: Some(&name),
            };
            let n = DATA_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let helper = self.name_of(&format!("{node}-data-{n}"));
            let (code, printed) = self
                .engine
                .run_to_end(&helper, &spec, Duration::from_secs(120))
                .await?;
            if code == 0 {
                Ok(printed)
            } else {
                Err(StackError::Engine(format!(
                    "a script on {node}'s data exited with {code}: {printed}"
                )))
            }
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
            if !self.nodes.lock().await.contains(node) {
                return NodeStatus::Down;
            }
            let name = self.name_of(&node.to_string());
            if self.engine.is_running(&name).await {
                return NodeStatus::Running;
            }
            match self.engine.exit_code(&name).await {
                // 137: SIGKILLed (by a fault); a crash exits otherwise.
                Some(137) | None => NodeStatus::Down,
                Some(code) => NodeStatus::Exited {
                    status: format!("exit code {code}"),
                    log_tail: self.engine.log_tail(&name, 15).await,
                },
            }
        })
    }

    fn keep_files(&self) -> Option<PathBuf> {
        None
    }

    fn remove(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.nodes.lock().await.clear();
            // Every container and network of the run, by its label.
            self.engine.remove_run(&self.run_id).await;
            self.removed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        })
    }
}

impl Drop for DockerBackend {
    /// Removes the run's containers and networks when the backend goes without `remove`: a
    /// failed bring-up, a panic, Ctrl-C.
    fn drop(&mut self) {
        if !self.removed.load(std::sync::atomic::Ordering::Relaxed) {
            remove_blocking(self.engine.clone(), self.run_id.clone());
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

/// The port each placed node listens on inside its container, and each link inside the
/// proxy's. Every link has a port of its own; a database that registers its link as its own
/// address (pg_auto_failover's keepers, [`StackPlan::registered_links`]) listens on that
/// link's port in its own container, since pg_auto_failover registers the port PostgreSQL
/// listens on (see `containers::pg_autoctl`). pg_auto_failover's monitor is a PostgreSQL
/// ([`containers::MONITOR_PORT`]); every other node listens on its role's port.
fn inside_ports(plan: &StackPlan) -> (BTreeMap<NodeId, u16>, BTreeMap<String, u16>) {
    let links: BTreeMap<String, u16> = plan
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.clone(), LINK_PORT_BASE + i as u16))
        .collect();
    let registered = plan.registered_links();
    let nodes = plan
        .placed()
        .into_iter()
        .map(|node| {
            let registered = registered
                .iter()
                .find(|(_, db)| *db == node)
                .and_then(|(link, _)| links.get(link).copied());
            let port = match registered {
                Some(port) => port,
                None if node.role == Role::Dcs && plan.pg_auto_failover.is_some() => {
                    containers::MONITOR_PORT
                }
                None => containers::listen_port(node.role),
            };
            (node, port)
        })
        .collect();
    (nodes, links)
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

/// What the engine needs to start `c` on `networks` with `ports` published.
fn run_spec<'a>(
    c: &'a Container,
    networks: &'a [String],
    ports: &'a [(u16, u16)],
    run_id: &'a str,
) -> RunSpec<'a> {
    RunSpec {
        image: &c.image,
        entrypoint: &c.entrypoint,
        cmd: &c.cmd,
        user: c.user.as_deref(),
        env: &c.env,
        networks,
        ports,
        run_id,
        volumes: &c.volumes,
        volumes_from: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pg_auto_failover's keepers register their replication links: each database listens
    /// in its container on the port its link listens on in the proxy's, so the address a
    /// keeper registers (the proxy's name, that port) reaches it only through that link.
    #[test]
    fn a_keepers_database_listens_on_its_registered_links_port() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../experiments/pg-auto-failover-region-loss.toml");
        let plan = crate::experiment::load(&path).unwrap().stack_plan();
        let (nodes, links) = inside_ports(&plan);
        let node = |id: &str| nodes[&NodeId::parse(id).unwrap()];
        assert_eq!(node("us-db"), links[crate::stack::topology::REPLICATION]);
        assert_eq!(
            node("eu-db"),
            links[crate::stack::topology::REPLICATION_TO_US]
        );
        assert_ne!(node("us-db"), node("eu-db"));
        let monitor = NodeId::new(crate::stack::topology::WITNESS_REGION, Role::Dcs);
        assert_eq!(nodes[&monitor], containers::MONITOR_PORT);
        // Every link a port of its own, none the proxy's API.
        let mut ports: Vec<u16> = links.values().copied().collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), links.len());
        assert!(!ports.contains(&PROXY_API_PORT));
        // Any other stack's databases keep PostgreSQL's port.
        let plain = crate::experiment::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../experiments/ap-async-region-loss.toml"),
        )
        .unwrap()
        .stack_plan();
        let (nodes, _) = inside_ports(&plain);
        assert_eq!(nodes[&NodeId::parse("us-db").unwrap()], containers::PG_PORT);
    }

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
