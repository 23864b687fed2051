//! The Docker backend: the same stack in containers, through testcontainers.
//!
//! One user-defined network per region; the fault proxy's container is attached to both, and
//! is the only thing that is, so every byte between the regions crosses a link. The harness
//! reaches containers through ports published on 127.0.0.1 only. The harness runs its own
//! commands in each container (`initdb`, `pg_basebackup`, `postgres`, `redis-server`,
//! `regiondrill-app`) rather than relying on an image's entrypoint, so the official images
//! and the offline ones built by `just images` behave the same.
//!
//! Faults map to the engine: kill node = `docker kill` (SIGKILL), kill region = every
//! container of the region; heal = `docker start` (the database keeps its files; an app is
//! pointed at the current primary once it is back). Everything is labelled with the run and
//! removed at teardown, on Ctrl-C, on panic (in `Drop`), and by the next start's sweep when
//! the harness was killed outright.

pub mod engine;
pub mod images;

use super::ports::PortAllocator;
use super::routing::Routing;
use super::topology::{self, NodeId, Role, STANDBY_REGION};
use super::{AppTuning, Endpoint, Nodes, Stack, StackError, StackLink};
use crate::experiment::Experiment;
use crate::proxy::{FaultProxy, Link, ProxySpec, ToxiproxyClient};
use crate::stack::native::{postgres, redis};
use engine::Engine;
use images::Images;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// Port PostgreSQL listens on inside its container.
const PG_PORT: u16 = 5432;
/// Port Redis listens on inside its container.
const REDIS_PORT: u16 = 6379;
/// Port the app listens on inside its container.
const APP_PORT: u16 = 8080;
/// The fault proxy's API port inside its container.
const PROXY_API_PORT: u16 = 8474;
/// First listen port of the links inside the proxy's container.
const LINK_PORT_BASE: u16 = 10_000;
/// Where PostgreSQL keeps its files inside its container (writable by any user).
const PGDATA: &str = "/tmp/pgdata";
/// libfaketime inside the offline images (Debian's path).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// The clock offset file of a skewed app, inside its container.
const CLOCK_FILE: &str = "/tmp/regiondrill-faketime";

/// A container the backend started.
struct Node {
    name: String,
    /// Dropping the handle removes the container (testcontainers); teardown removes it
    /// through the handle instead, so nothing tries twice.
    handle: ContainerAsync<GenericImage>,
}

/// The containers of a run.
pub(crate) struct DockerNodes {
    engine: Engine,
    run_id: String,
    nodes: BTreeMap<NodeId, Node>,
    endpoints: BTreeMap<NodeId, Endpoint>,
    /// The fault proxy's container (None once removed).
    proxy: Option<Node>,
    torn_down: bool,
}

/// What one container runs.
struct Spec {
    name: String,
    image: String,
    entrypoint: Option<String>,
    cmd: Vec<String>,
    user: Option<String>,
    network: String,
    /// (port on 127.0.0.1, port in the container)
    ports: Vec<(u16, u16)>,
    /// Environment variables.
    env: Vec<(String, String)>,
}

/// Brings up the experiment's stack in containers.
pub async fn up(exp: &Experiment, run_id: &str, images: Images) -> Result<Stack, StackError> {
    let t = Instant::now();
    let engine = Engine::connect().await?;
    engine.sweep().await;
    check_images(&engine, &images).await?;
    let posture = exp.posture;
    let regions: Vec<&str> = if posture.has_standby() {
        topology::REGIONS.to_vec()
    } else {
        vec![topology::PRIMARY_REGION]
    };
    // Containers are reached by name through Docker's DNS, and a DNS label holds at most 63
    // characters: names carry a short tag of the run id rather than the id itself (which
    // holds the experiment's name). The run id is on every object as a label.
    let tag = short_tag(run_id);
    let network = |region: &str| format!("rd-{tag}-{region}");
    let container = |what: &str| format!("rd-{tag}-{what}");
    let mut guard = Cleanup {
        engine: engine.clone(),
        run_id: run_id.to_string(),
        armed: true,
    };
    for region in &regions {
        engine.create_network(&network(region), run_id).await?;
    }

    // Ports on 127.0.0.1 for every node and link, chosen up front.
    let mut allocator = PortAllocator::new();
    let mut next_port = || {
        allocator
            .allocate()
            .map_err(|e| StackError::Other(e.to_string()))
    };
    let mut endpoints = BTreeMap::new();
    for region in &regions {
        for (role, inside) in [
            (Role::Db, PG_PORT),
            (Role::Cache, REDIS_PORT),
            (Role::App, APP_PORT),
        ] {
            let node = NodeId::new(region, role);
            endpoints.insert(
                node.clone(),
                Endpoint {
                    port: next_port()?,
                    inside: (container(&node.to_string()), inside),
                },
            );
        }
    }
    let specs: Vec<_> = topology::links()
        .into_iter()
        .filter(|l| {
            endpoints.contains_key(&l.target) && topology::used_by(l, posture.is_active_active())
        })
        .collect();
    let link_ports: Vec<(u16, u16)> = (0..specs.len())
        .map(|i| Ok((next_port()?, LINK_PORT_BASE + i as u16)))
        .collect::<Result<_, StackError>>()?;

    // The fault proxy, on every region's network.
    let proxy_name = container("proxy");
    let api_port = next_port()?;
    let (entrypoint, cmd) = if images.proxy_is_builtin() {
        (
            Some("regiondrill".to_string()),
            vec![
                "proxy".into(),
                "--host".into(),
                "0.0.0.0".into(),
                "--port".into(),
                PROXY_API_PORT.to_string(),
            ],
        )
    } else {
        (None, vec!["-host=0.0.0.0".into()])
    };
    let mut ports = vec![(api_port, PROXY_API_PORT)];
    ports.extend(link_ports.iter().copied());
    let proxy_handle = start(
        Spec {
            name: proxy_name.clone(),
            image: images.proxy.clone(),
            entrypoint,
            cmd,
            user: None,
            network: network(regions[0]),
            ports,
            env: Vec::new(),
        },
        run_id,
    )
    .await?;
    for region in regions.iter().skip(1) {
        engine
            .connect_network(&network(region), &proxy_name)
            .await?;
    }
    let proxy = FaultProxy::Container {
        url: format!("http://127.0.0.1:{api_port}"),
        image: images.proxy.clone(),
    };
    let client = proxy.client();
    wait_for_proxy(&client, &proxy_handle).await?;

    // The primary, its schema, the caches.
    let primary = NodeId::new(topology::PRIMARY_REGION, Role::Db);
    let mut nodes = BTreeMap::new();
    let db = |node: &NodeId, script: String| Spec {
        name: endpoints[node].inside.0.clone(),
        image: images.db.clone(),
        entrypoint: Some("sh".into()),
        cmd: vec!["-c".into(), script],
        user: Some("postgres".into()),
        network: network(&node.region),
        ports: vec![(endpoints[node].port, PG_PORT)],
        env: Vec::new(),
    };
    let handle = start(db(&primary, primary_script(&primary.region)), run_id).await?;
    wait_for_db(&handle, endpoints[&primary].port).await?;
    nodes.insert(
        primary.clone(),
        Node {
            name: endpoints[&primary].inside.0.clone(),
            handle,
        },
    );
    let (host, port) = &endpoints[&primary].inside;
    migrate(
        &engine,
        &images,
        &container("migrate"),
        &network(&primary.region),
        &postgres::dsn_at(host, *port),
        run_id,
    )
    .await?;
    for region in &regions {
        let node = NodeId::new(region, Role::Cache);
        let spec = Spec {
            name: endpoints[&node].inside.0.clone(),
            image: images.cache.clone(),
            entrypoint: Some("redis-server".into()),
            cmd: [
                "--bind",
                "0.0.0.0",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--set-proc-title",
                "no",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            user: None,
            network: network(region),
            ports: vec![(endpoints[&node].port, REDIS_PORT)],
            env: Vec::new(),
        };
        let handle = start(spec, run_id).await?;
        wait_for_cache(&handle, endpoints[&node].port).await?;
        nodes.insert(
            node.clone(),
            Node {
                name: endpoints[&node].inside.0.clone(),
                handle,
            },
        );
    }

    // Links: every cross-region path goes through the proxy's container.
    let mut links = BTreeMap::new();
    for (spec, (host_port, listen)) in specs.into_iter().zip(link_ports) {
        let (target, target_port) = &endpoints[&spec.target].inside;
        client
            .create_proxy(&ProxySpec {
                name: spec.name.clone(),
                listen: format!("0.0.0.0:{listen}"),
                upstream: format!("{target}:{target_port}"),
                enabled: true,
            })
            .await?;
        let link = Link::new(client.clone(), &spec.name);
        links.insert(
            spec.name.clone(),
            StackLink {
                spec,
                port: host_port,
                inside: (proxy_name.clone(), listen),
                link,
            },
        );
    }

    if posture.is_active_active() {
        // A second primary, replicated both ways with the first.
        let other = NodeId::new(STANDBY_REGION, Role::Db);
        let handle = start(db(&other, primary_script(&other.region)), run_id).await?;
        wait_for_db(&handle, endpoints[&other].port).await?;
        nodes.insert(
            other.clone(),
            Node {
                name: endpoints[&other].inside.0.clone(),
                handle,
            },
        );
        let (host, port) = &endpoints[&other].inside;
        migrate(
            &engine,
            &images,
            &container("migrate-eu"),
            &network(&other.region),
            &postgres::dsn_at(host, *port),
            run_id,
        )
        .await?;
        super::replicate_both_ways(&endpoints, &links).await?;
    } else if posture.has_standby() {
        // The replica, made and fed through the replication link.
        let replica = NodeId::new(STANDBY_REGION, Role::Db);
        let (proxy_host, repl_port) = links["replication"].inside.clone();
        let handle = start(
            db(
                &replica,
                replica_script(&replica.region, &proxy_host, repl_port),
            ),
            run_id,
        )
        .await?;
        wait_for_db(&handle, endpoints[&replica].port).await?;
        nodes.insert(
            replica.clone(),
            Node {
                name: endpoints[&replica].inside.0.clone(),
                handle,
            },
        );
        let (commit, standby_names) = posture.commit_settings(STANDBY_REGION);
        postgres::require_standby(
            endpoints[&primary].port,
            commit,
            &standby_names,
            STANDBY_REGION,
        )
        .await
        .map_err(StackError::Other)?;
    }

    let routing = Arc::new(Routing::new(posture));
    let tuning = AppTuning::from_experiment(exp);
    let docker_nodes = DockerNodes {
        engine,
        run_id: run_id.to_string(),
        nodes,
        endpoints: endpoints.clone(),
        proxy: Some(Node {
            name: proxy_name,
            handle: proxy_handle,
        }),
        torn_down: false,
    };
    let stack = Stack::assemble(
        posture,
        proxy,
        links,
        endpoints.clone(),
        tuning,
        routing,
        Nodes::Docker(docker_nodes),
    );
    // From here the stack's teardown (or its Drop) cleans up.
    guard.armed = false;
    for region in &regions {
        let node = NodeId::new(region, Role::App);
        let args = stack
            .app_args(region)
            .ok_or_else(|| StackError::Other(format!("no settings for {node}")))?;
        let listen = format!("0.0.0.0:{APP_PORT}");
        let serve = std::iter::once("serve".to_string())
            .chain(["--listen".to_string(), listen])
            .chain(args);
        // Under libfaketime when a clock_skew fault names it (the offset file must exist
        // before the app reads the clock).
        let (entrypoint, cmd, env) = if stack.tuning().skewed.contains(&node) {
            let script = format!(
                "printf '%s' '{}' > {CLOCK_FILE} && exec regiondrill-app \"$@\"",
                crate::fault::faketime_offset(0)
            );
            let cmd = ["-c".to_string(), script, "regiondrill-app".to_string()]
                .into_iter()
                .chain(serve)
                .collect();
            let env = crate::stack::native::app::faketime_env(
                std::path::Path::new(LIBFAKETIME),
                std::path::Path::new(CLOCK_FILE),
            );
            (Some("sh".to_string()), cmd, env)
        } else {
            (
                Some("regiondrill-app".to_string()),
                serve.collect(),
                Vec::new(),
            )
        };
        let spec = Spec {
            name: endpoints[&node].inside.0.clone(),
            image: images.app.clone(),
            entrypoint,
            cmd,
            user: None,
            network: network(region),
            ports: vec![(endpoints[&node].port, APP_PORT)],
            env,
        };
        let handle = start(spec, run_id).await?;
        wait_for_app(&handle, endpoints[&node].port).await?;
        stack.adopt_container(&node, handle).await;
    }
    stack.set_rtt(exp.network.rtt, exp.network.jitter).await?;
    tracing::info!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "docker stack up"
    );
    Ok(stack)
}

impl DockerNodes {
    pub(crate) async fn kill(&mut self, node: &NodeId) -> Result<(), StackError> {
        match self.nodes.get(node) {
            Some(n) => self.engine.kill(&n.name).await,
            None => Ok(()),
        }
    }

    pub(crate) async fn kill_all(&mut self, targets: &[NodeId]) -> Result<(), StackError> {
        let names: Vec<&str> = targets
            .iter()
            .filter_map(|n| self.nodes.get(n))
            .map(|n| n.name.as_str())
            .collect();
        let kills = names.iter().map(|name| self.engine.kill(name));
        futures::future::join_all(kills).await.into_iter().collect()
    }

    pub(crate) async fn is_running(&self, node: &NodeId) -> bool {
        match self.nodes.get(node) {
            Some(n) => self.engine.is_running(&n.name).await,
            None => false,
        }
    }

    /// Starts a killed container again and waits until it serves; an app is then pointed at
    /// the databases `dsns` names (it starts with the ones it was created with).
    pub(crate) async fn restart(
        &mut self,
        node: &NodeId,
        dsns: Option<(String, String)>,
    ) -> Result<(), StackError> {
        let Some(n) = self.nodes.get(node) else {
            return Ok(());
        };
        if self.engine.is_running(&n.name).await {
            return Ok(());
        }
        self.engine.start(&n.name).await?;
        let port = self.endpoints[node].port;
        match node.role {
            Role::Db => {
                wait_until(&self.engine, &n.name, || async {
                    postgres::connect(port, Duration::from_millis(500))
                        .await
                        .is_ok()
                })
                .await
            }
            Role::Cache => wait_until(&self.engine, &n.name, || redis::ping(port)).await,
            Role::App => {
                wait_until(&self.engine, &n.name, || app_answers(port)).await?;
                let (write_db, read_db) =
                    dsns.ok_or_else(|| StackError::Other(format!("no databases to give {node}")))?;
                let body = serde_json::json!({ "write_db": write_db, "read_db": read_db });
                let http = reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(3))
                    .build()
                    .expect("static client");
                http.post(format!("http://127.0.0.1:{port}/admin/db"))
                    .json(&body)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| StackError::Other(format!("reconfiguring {node}: {e}")))
            }
        }
    }

    pub(crate) async fn pause(&mut self, node: &NodeId, paused: bool) -> Result<(), StackError> {
        let n = self
            .nodes
            .get(node)
            .ok_or_else(|| StackError::Other(format!("{node} is not running")))?;
        self.engine.pause(&n.name, paused).await
    }

    /// Shifts a skewed app's clock by rewriting its offset file inside the container.
    pub(crate) async fn set_clock_offset(
        &mut self,
        node: &NodeId,
        offset_ms: i64,
    ) -> Result<(), StackError> {
        let n = self
            .nodes
            .get(node)
            .ok_or_else(|| StackError::Other(format!("{node} is not running")))?;
        let script = format!(
            "printf '%s' '{}' > {CLOCK_FILE}.tmp && mv {CLOCK_FILE}.tmp {CLOCK_FILE}",
            crate::fault::faketime_offset(offset_ms)
        );
        self.engine.exec(&n.name, &["sh", "-c", &script]).await
    }

    pub(crate) fn adopt(&mut self, node: &NodeId, handle: ContainerAsync<GenericImage>) {
        let name = self.endpoints[node].inside.0.clone();
        self.nodes.insert(node.clone(), Node { name, handle });
    }

    /// Every container of the run, taken out of the stack.
    fn take_all(&mut self) -> Vec<Node> {
        let mut all: Vec<Node> = std::mem::take(&mut self.nodes).into_values().collect();
        all.extend(self.proxy.take());
        all
    }

    /// Removes every container (in parallel, through its handle) and network of the run.
    pub(crate) async fn teardown(mut self) {
        let mut removals = tokio::task::JoinSet::new();
        for node in self.take_all() {
            removals.spawn(async move {
                let _ = node.handle.rm().await;
            });
        }
        while removals.join_next().await.is_some() {}
        // Networks, and anything started outside the handles.
        self.engine.remove_run(&self.run_id).await;
        self.torn_down = true;
    }
}

impl Drop for DockerNodes {
    fn drop(&mut self) {
        if !self.torn_down {
            remove_blocking(self.engine.clone(), self.run_id.clone());
            // The containers are gone: dropping their handles would only have testcontainers
            // log that it cannot find them.
            for node in self.take_all() {
                std::mem::forget(node);
            }
        }
    }
}

/// Removes the run's containers and networks if bring-up fails half way.
struct Cleanup {
    engine: Engine,
    run_id: String,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.armed {
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
            rt.block_on(engine.remove_run(&run_id));
        }
    });
    let _ = done.join();
}

/// The primary's command: a cluster made on first start (with the drill's settings and trust
/// for the stack's networks), then PostgreSQL in the foreground.
fn primary_script(region: &str) -> String {
    let conf: String = postgres::cluster_conf()
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    format!(
        r#"set -e
export PGDATA={PGDATA}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" -U postgres --auth=trust --no-sync --encoding=UTF8 --locale=C >/dev/null
  cat >> "$PGDATA/postgresql.conf" <<'CONF'
{conf}CONF
  printf 'host all all 0.0.0.0/0 trust\nhost replication all 0.0.0.0/0 trust\n' >> "$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c port={PG_PORT} -c unix_socket_directories=/tmp -c cluster_name={region}
"#
    )
}

/// The replica's command: a base backup through the replication link on first start, then
/// PostgreSQL in the foreground (as a standby, from `standby.signal`).
fn replica_script(region: &str, proxy: &str, port: u16) -> String {
    format!(
        r#"set -e
export PGDATA={PGDATA}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  n=0
  until pg_basebackup -h {proxy} -p {port} -U postgres -D "$PGDATA" -X stream -R -c fast --no-sync; do
    n=$((n + 1)); [ "$n" -ge 20 ] && exit 1
    rm -rf "$PGDATA"; sleep 0.5
  done
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c port={PG_PORT} -c unix_socket_directories=/tmp -c cluster_name={region}
"#
    )
}

/// Fails with the images that are neither present nor pullable, and how to get them.
async fn check_images(engine: &Engine, images: &Images) -> Result<(), StackError> {
    let mut missing = Vec::new();
    for image in images.all() {
        if !engine.has_image(image).await {
            missing.push(image.to_string());
        }
    }
    // Official images can be pulled where a registry is reachable; regiondrill's cannot.
    let unpullable: Vec<_> = missing
        .iter()
        .filter(|i| i.starts_with("regiondrill/"))
        .cloned()
        .collect();
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

/// Starts one container with the run's labels, its ports published on 127.0.0.1 only.
async fn start(spec: Spec, run_id: &str) -> Result<ContainerAsync<GenericImage>, StackError> {
    let (repo, tag) = images::split(&spec.image);
    let mut image = GenericImage::new(repo, tag);
    if let Some(e) = &spec.entrypoint {
        image = image.with_entrypoint(e);
    }
    let mut req = image
        .with_container_name(&spec.name)
        .with_network(&spec.network)
        .with_cmd(spec.cmd.clone())
        .with_startup_timeout(Duration::from_secs(120));
    for (k, v) in Engine::labels(run_id) {
        req = req.with_label(k, v);
    }
    if let Some(u) = &spec.user {
        req = req.with_user(u);
    }
    for (host, inside) in &spec.ports {
        req = req.with_mapped_port(*host, inside.tcp());
    }
    for (k, v) in &spec.env {
        req = req.with_env_var(k, v);
    }
    // Publish on loopback only: the stack trusts every connection.
    let req = req.with_host_config_modifier(|hc| {
        if let Some(bindings) = hc.port_bindings.as_mut() {
            for b in bindings.values_mut().flatten().flatten() {
                b.host_ip = Some("127.0.0.1".into());
            }
        }
    });
    req.start().await.map_err(|e| {
        let hint = if spec.image.starts_with("regiondrill/") {
            ""
        } else {
            " (pull it, or use the offline images: just images)"
        };
        StackError::Other(format!(
            "starting container {} from {}{hint}: {e}",
            spec.name, spec.image
        ))
    })
}

/// Runs `regiondrill-app migrate` in a one-off container on the primary's network.
async fn migrate(
    engine: &Engine,
    images: &Images,
    name: &str,
    network: &str,
    dsn: &str,
    run_id: &str,
) -> Result<(), StackError> {
    let spec = Spec {
        name: name.to_string(),
        image: images.app.clone(),
        entrypoint: Some("regiondrill-app".into()),
        cmd: vec!["migrate".into(), "--db".into(), dsn.to_string()],
        user: None,
        network: network.to_string(),
        ports: vec![],
        env: Vec::new(),
    };
    let handle = start(spec, run_id).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(code) = engine.exit_code(name).await {
            if code == 0 {
                let _ = handle.rm().await;
                return Ok(());
            }
            return Err(failed(name, &format!("exited with {code}"), &handle).await);
        }
        if Instant::now() > deadline {
            return Err(failed(name, "did not finish within 60 s", &handle).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_proxy(
    client: &ToxiproxyClient,
    handle: &ContainerAsync<GenericImage>,
) -> Result<(), StackError> {
    poll(handle, "the fault proxy API", || async {
        client.version().await.is_ok()
    })
    .await
}

async fn wait_for_db(handle: &ContainerAsync<GenericImage>, port: u16) -> Result<(), StackError> {
    poll(handle, "PostgreSQL", || async move {
        postgres::connect(port, Duration::from_millis(500))
            .await
            .is_ok()
    })
    .await
}

async fn wait_for_cache(
    handle: &ContainerAsync<GenericImage>,
    port: u16,
) -> Result<(), StackError> {
    poll(handle, "Redis", || redis::ping(port)).await
}

async fn wait_for_app(handle: &ContainerAsync<GenericImage>, port: u16) -> Result<(), StackError> {
    poll(handle, "the app's /health", || app_answers(port)).await
}

async fn app_answers(port: u16) -> bool {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("static client");
    http.get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .is_ok()
}

/// Polls `ready` for up to 60 s; fails early, with the container's last log lines, if the
/// container stops.
async fn poll<F, Fut>(
    handle: &ContainerAsync<GenericImage>,
    what: &str,
    mut ready: F,
) -> Result<(), StackError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if ready().await {
            return Ok(());
        }
        if !handle.is_running().await.unwrap_or(false) {
            return Err(failed(
                handle.id(),
                &format!("exited before {what} was ready"),
                handle,
            )
            .await);
        }
        if Instant::now() > deadline {
            return Err(failed(handle.id(), &format!("{what} not ready after 60 s"), handle).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Like [`poll`] for a restarted container, known by name.
async fn wait_until<F, Fut>(engine: &Engine, name: &str, mut ready: F) -> Result<(), StackError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ready().await {
            return Ok(());
        }
        if !engine.is_running(name).await {
            return Err(StackError::Other(format!(
                "container {name} stopped while restarting"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(StackError::Other(format!(
        "container {name} not ready 60 s after restarting"
    )))
}

/// A start-up failure with the container's last log lines.
async fn failed(name: &str, status: &str, handle: &ContainerAsync<GenericImage>) -> StackError {
    let mut log = handle.stdout_to_vec().await.unwrap_or_default();
    log.extend(handle.stderr_to_vec().await.unwrap_or_default());
    let text = String::from_utf8_lossy(&log);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    crate::stack::process::ProcessError::Failed {
        name: format!("container {name}"),
        status: status.to_string(),
        log_tail: tail,
    }
    .into()
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
        assert!(format!("rd-{tag}-migrate-eu").len() <= 63);
        assert_eq!(tag, short_tag(&id), "stable");
        assert_ne!(tag, short_tag(&crate::run::run_id("other")));
    }
}
