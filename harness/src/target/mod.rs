//! Targets: a stack someone else runs, described by a target file, that regiondrill drives
//! without owning it (`regiondrill run EXPERIMENT --target FILE`).
//!
//! A target file says where each region's app, database and cache are reached, which
//! Toxiproxy proxy carries which of regiondrill's links, and how to kill, restart, pause and
//! resume each node (shell commands). It also lists the hosts regiondrill may contact: every
//! address in the file must be on that list, and nothing else is ever contacted (the blast
//! radius of a drill is what the file names).
//!
//! - [`load`]/[`parse`]: the file, validated (errors name file, line, column and field).
//! - [`needs`]: what an experiment asks of a target, and the faults it cannot perform.
//! - [`mod@write`]: the target file of a stack `regiondrill up` brought up.

pub mod dry_run;
pub mod needs;
pub mod write;

use crate::experiment::ExperimentError;
use crate::experiment::error::read_text;
use crate::stack::topology::{self, NodeId, REGIONS, Role};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// How long a node command may run when the file does not say.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A validated target file.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The file it was read from.
    pub source: PathBuf,
    /// The hosts regiondrill may contact.
    pub allow_hosts: Vec<String>,
    /// The Toxiproxy API, when the target has one (network faults need it).
    pub toxiproxy: Option<String>,
    /// regiondrill's links the target carries, by regiondrill's link name.
    pub links: BTreeMap<String, TargetLink>,
    /// Where each region's parts are reached.
    pub regions: BTreeMap<String, TargetRegion>,
    /// How each node is operated.
    pub nodes: BTreeMap<NodeId, NodeOps>,
    /// Set when `regiondrill up` wrote the file: who holds the stack.
    pub up: Option<UpOwner>,
}

/// One of regiondrill's links on the target's Toxiproxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLink {
    /// The Toxiproxy proxy's name.
    pub proxy: String,
    /// Where the harness reaches the proxy's listen address (users' links: the harness sends
    /// a travelling user's requests through it).
    pub address: Option<(String, u16)>,
}

/// Where one region's parts are reached (each optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetRegion {
    /// The app's base URL (`http://host:port`), honouring the HTTP contract.
    pub app: Option<String>,
    /// A DSN of the region's PostgreSQL (final state, lag probes, timeline cross-check; in
    /// database-only mode the workload's too).
    pub db: Option<String>,
    /// The region's Redis URL (cache checks).
    pub cache: Option<String>,
    /// Database-only mode: the DSN the region's users write through — an HA endpoint that
    /// follows the primary (a router, a DNS name, a libpq multi-host DSN). Without it, writes
    /// go to the database the drill last saw promoted.
    pub write_db: Option<String>,
}

/// A node's operations: shell commands (`sh -c`), each bounded by `timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOps {
    /// Stops the node as a crash would.
    pub kill: Option<String>,
    /// Starts it again (its data kept).
    pub restart: Option<String>,
    /// Freezes it.
    pub pause: Option<String>,
    /// Unfreezes it.
    pub resume: Option<String>,
    /// The longest a command may run.
    pub timeout: Duration,
}

impl NodeOps {
    /// The command of `op` (`kill`, `restart`, `pause`, `resume`).
    pub fn command(&self, op: &str) -> Option<&str> {
        match op {
            "kill" => self.kill.as_deref(),
            "restart" => self.restart.as_deref(),
            "pause" => self.pause.as_deref(),
            "resume" => self.resume.as_deref(),
            _ => None,
        }
    }
}

/// The `regiondrill up` process that holds a stack (`regiondrill down` stops it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpOwner {
    /// Its process id.
    pub pid: u32,
    /// Its control API (node operations), on loopback.
    pub control: String,
    /// The experiment it brought up.
    pub experiment: String,
    /// The backend it runs on.
    pub backend: String,
}

impl Target {
    /// Whether the target has an app in some region (else: database-only mode).
    pub fn has_app(&self) -> bool {
        self.regions.values().any(|r| r.app.is_some())
    }

    /// The regions with a database, in region order.
    pub fn db_regions(&self) -> Vec<String> {
        REGIONS
            .iter()
            .filter(|r| self.regions.get(**r).is_some_and(|x| x.db.is_some()))
            .map(|r| r.to_string())
            .collect()
    }

    /// Whether `host` is on the allow-list.
    pub fn allows(&self, host: &str) -> bool {
        allowed_host(&self.allow_hosts, host)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    allow_hosts: Option<Spanned<Vec<Spanned<String>>>>,
    toxiproxy: Option<ToxiproxySpec>,
    #[serde(default)]
    links: BTreeMap<Spanned<String>, LinkSpec>,
    #[serde(default)]
    regions: BTreeMap<Spanned<String>, RegionSpec>,
    #[serde(default)]
    nodes: BTreeMap<Spanned<String>, NodeSpec>,
    up: Option<UpOwner>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToxiproxySpec {
    api: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkSpec {
    proxy: Spanned<String>,
    address: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionSpec {
    app: Option<Spanned<String>>,
    db: Option<Spanned<String>>,
    cache: Option<Spanned<String>>,
    write_db: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeSpec {
    kill: Option<Spanned<String>>,
    restart: Option<Spanned<String>>,
    pause: Option<Spanned<String>>,
    resume: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

/// Reads and validates the target file at `path`.
pub fn load(path: &Path) -> Result<Target, ExperimentError> {
    let text = read_text(path)?;
    parse(&text, path)
}

/// Validates the text of a target file; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Target, ExperimentError> {
    let spec: Spec =
        toml::from_str(text).map_err(|e| ExperimentError::from_toml(path, text, &e, false))?;
    let bad = |span: std::ops::Range<usize>, field: String, message: String| {
        ExperimentError::at(path, text, span.start, field, message)
    };
    let Some(allow) = spec.allow_hosts else {
        return Err(bad(
            0..0,
            "allow_hosts".into(),
            "missing: list the hosts regiondrill may contact, e.g. allow_hosts = [\"127.0.0.1\"]"
                .into(),
        ));
    };
    if allow.get_ref().is_empty() {
        return Err(bad(
            allow.span(),
            "allow_hosts".into(),
            "empty: list the hosts regiondrill may contact".into(),
        ));
    }
    let allow_hosts: Vec<String> = allow
        .get_ref()
        .iter()
        .map(|h| h.get_ref().trim().to_string())
        .collect();
    let mut target = Target {
        source: path.to_path_buf(),
        allow_hosts: Vec::new(),
        toxiproxy: None,
        links: BTreeMap::new(),
        regions: BTreeMap::new(),
        nodes: BTreeMap::new(),
        up: spec.up,
    };
    // Every address is checked against the allow-list where it is written.
    let allowed = |value: &Spanned<String>, field: String, host: Result<String, String>| {
        let host = host.map_err(|why| bad(value.span(), field.clone(), why))?;
        if allowed_host(&allow_hosts, &host) {
            Ok(())
        } else {
            Err(bad(
                value.span(),
                field,
                format!("host `{host}` is not in allow_hosts {:?}", allow_hosts),
            ))
        }
    };
    if let Some(t) = &spec.toxiproxy {
        allowed(
            &t.api,
            "toxiproxy.api".into(),
            url_host(t.api.get_ref(), &["http"]),
        )?;
    }
    let known_links = topology::link_names(&topology::default_regions());
    for (name, link) in &spec.links {
        let field = format!("links.{}", quoted(name.get_ref()));
        if !known_links.contains(name.get_ref()) {
            return Err(bad(
                name.span(),
                field,
                format!(
                    "`{}` is not one of regiondrill's links ({})",
                    name.get_ref(),
                    known_links.join(", ")
                ),
            ));
        }
        if link.proxy.get_ref().trim().is_empty() {
            return Err(bad(
                link.proxy.span(),
                format!("{field}.proxy"),
                "empty: name the Toxiproxy proxy that carries this link".into(),
            ));
        }
        let address = match &link.address {
            Some(a) => {
                let parsed = host_port(a.get_ref());
                allowed(
                    a,
                    format!("{field}.address"),
                    parsed.clone().map(|(h, _)| h),
                )?;
                parsed.ok()
            }
            None => None,
        };
        if spec.toxiproxy.is_none() {
            return Err(bad(
                link.proxy.span(),
                format!("{field}.proxy"),
                "a link needs the Toxiproxy that carries it: add [toxiproxy] api = \"http://…\""
                    .into(),
            ));
        }
        target.links.insert(
            name.get_ref().clone(),
            TargetLink {
                proxy: link.proxy.get_ref().clone(),
                address,
            },
        );
    }
    for (name, region) in &spec.regions {
        let field = format!("regions.{}", name.get_ref());
        if !REGIONS.contains(&name.get_ref().as_str()) {
            return Err(bad(
                name.span(),
                field,
                format!("not a region: regions are {}", REGIONS.join(", ")),
            ));
        }
        if let Some(app) = &region.app {
            allowed(
                app,
                format!("{field}.app"),
                url_host(app.get_ref(), &["http", "https"]),
            )?;
        }
        if let Some(db) = &region.db {
            allowed(db, format!("{field}.db"), dsn_host(db.get_ref()))?;
        }
        if let Some(w) = &region.write_db {
            let field = format!("{field}.write_db");
            let hosts = dsn_hosts(w.get_ref()).map_err(|why| bad(w.span(), field.clone(), why))?;
            for host in hosts {
                allowed(w, field.clone(), Ok(host))?;
            }
        }
        if let Some(cache) = &region.cache {
            allowed(
                cache,
                format!("{field}.cache"),
                url_host(cache.get_ref(), &["redis"]),
            )?;
        }
        target.regions.insert(
            name.get_ref().clone(),
            TargetRegion {
                app: region.app.as_ref().map(|s| trim_slash(s.get_ref())),
                db: region.db.as_ref().map(|s| s.get_ref().clone()),
                cache: region.cache.as_ref().map(|s| s.get_ref().clone()),
                write_db: region.write_db.as_ref().map(|s| s.get_ref().clone()),
            },
        );
    }
    for (name, ops) in &spec.nodes {
        let field = format!("nodes.{}", name.get_ref());
        let node = NodeId::parse(name.get_ref()).ok_or_else(|| {
            bad(
                name.span(),
                field.clone(),
                format!(
                    "not a node: nodes are <region>-<role>, regions {}, roles {}",
                    REGIONS.join(", "),
                    Role::ALL.map(Role::name).join(", ")
                ),
            )
        })?;
        let timeout = match &ops.timeout {
            Some(t) => humantime::parse_duration(t.get_ref()).map_err(|e| {
                bad(
                    t.span(),
                    format!("{field}.timeout"),
                    format!("{e}: write e.g. \"30s\" or \"2m\""),
                )
            })?,
            None => DEFAULT_COMMAND_TIMEOUT,
        };
        let command = |c: &Option<Spanned<String>>, key: &str| match c {
            Some(c) if c.get_ref().trim().is_empty() => Err(bad(
                c.span(),
                format!("{field}.{key}"),
                "empty command: leave the key out instead".into(),
            )),
            Some(c) => Ok(Some(c.get_ref().clone())),
            None => Ok(None),
        };
        target.nodes.insert(
            node,
            NodeOps {
                kill: command(&ops.kill, "kill")?,
                restart: command(&ops.restart, "restart")?,
                pause: command(&ops.pause, "pause")?,
                resume: command(&ops.resume, "resume")?,
                timeout,
            },
        );
    }
    target.toxiproxy = spec.toxiproxy.map(|t| trim_slash(t.api.get_ref()));
    target.allow_hosts = allow_hosts;
    Ok(target)
}

/// Whether `host` (an IPv6 address may come bracketed) is on `allow_hosts`.
fn allowed_host(allow_hosts: &[String], host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    allow_hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
}

fn quoted(name: &str) -> String {
    if name.contains('-') {
        format!("\"{name}\"")
    } else {
        name.to_string()
    }
}

fn trim_slash(s: &str) -> String {
    s.trim_end_matches('/').to_string()
}

/// The host of a URL with one of `schemes`.
fn url_host(url: &str, schemes: &[&str]) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e}): `{url}`"))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(format!(
            "scheme `{}` where {} is expected: `{url}`",
            parsed.scheme(),
            schemes.join(" or ")
        ));
    }
    parsed
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
        .ok_or_else(|| format!("no host in `{url}`"))
}

/// `host:port`.
fn host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("write host:port, not `{s}`"))?;
    let port = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port in `{s}`"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// The one host of a PostgreSQL DSN (key=value or URL form). A DSN naming several hosts is
/// refused: the harness must know which server it reads.
fn dsn_host(dsn: &str) -> Result<String, String> {
    match dsn_hosts(dsn)?.as_slice() {
        [h] => Ok(h.clone()),
        _ => Err("the DSN names several hosts: give each region's server its own DSN".into()),
    }
}

/// Every host of a PostgreSQL DSN (a libpq multi-host DSN names several); a Unix socket is
/// refused (not a host the allow-list can name).
fn dsn_hosts(dsn: &str) -> Result<Vec<String>, String> {
    let config: tokio_postgres::Config = dsn
        .parse()
        .map_err(|e| format!("not a PostgreSQL DSN ({e})"))?;
    if config.get_hosts().is_empty() {
        return Err("the DSN names no host: write host=… (or postgres://user@host:port/db)".into());
    }
    config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => Ok(h.clone()),
            _ => Err("a Unix socket is not a host regiondrill can check: use host=…".into()),
        })
        .collect()
}

#[cfg(test)]
mod tests;
