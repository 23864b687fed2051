//! The real HA managers' programs as local processes: Patroni (its configuration file, one
//! per member), etcd and HAProxy, all as PostgreSQL's unprivileged user.
//!
//! Patroni starts PostgreSQL detached from itself (a new session, the intermediate process
//! gone), so the postmaster would not be a descendant of the Patroni process the backend
//! started, and a "kill node" would leave it running. The member is therefore started as a
//! child subreaper (`PR_SET_CHILD_SUBREAPER`): orphans below it are re-parented to it, the
//! postmaster stays in its tree, and the tree is frozen and killed as one, as for every node.

use super::pg::PgBinaries;
use super::process::RunAs;
use crate::stack::StackError;
use crate::stack::plan::{PatroniMember, RouterConfig};
use std::path::{Path, PathBuf};

/// Where Patroni, etcd and HAProxy are.
#[derive(Debug, Clone)]
pub struct HaPrograms {
    /// `patroni`.
    pub patroni: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
    /// `haproxy`.
    pub haproxy: PathBuf,
}

impl HaPrograms {
    /// Finds them on `PATH` (Debian puts `haproxy` in `/usr/sbin`, looked in too).
    pub fn find() -> Result<HaPrograms, StackError> {
        let find = |name: &str, package: &str| {
            super::programs::on_path(name)
                .or_else(|| {
                    ["/usr/sbin", "/usr/bin"]
                        .iter()
                        .map(|d| Path::new(d).join(name))
                        .find(|p| p.is_file())
                })
                .ok_or_else(|| StackError::Missing {
                    what: format!("{name} (for manager = \"patroni\")"),
                    looked: "PATH, /usr/sbin, /usr/bin".into(),
                    install: format!("apt-get install {package} (or run stacks/deps.sh)"),
                })
        };
        Ok(HaPrograms {
            patroni: find("patroni", "patroni")?,
            etcd: find("etcd", "etcd-server")?,
            haproxy: find("haproxy", "haproxy")?,
        })
    }
}

/// Writes a member's `patroni.yml` in `dir` (owned by `run_as`) for a PostgreSQL on `pg_port`
/// and a REST API on `api_port`; returns its path. JSON, which YAML reads as is.
pub fn write_patroni_config(
    member: &PatroniMember,
    dir: &Path,
    pg: &PgBinaries,
    pg_port: u16,
    api_port: u16,
    run_as: Option<RunAs>,
) -> Result<PathBuf, StackError> {
    let s = &member.settings;
    let mut parameters = serde_json::Map::new();
    for (k, v) in crate::postgres::cluster_conf() {
        parameters.insert(
            k,
            serde_json::Value::String(v.trim_matches('\'').to_string()),
        );
    }
    // TCP only, as for every native PostgreSQL (a long run directory would overflow a socket
    // path); Patroni then connects to `listen`.
    parameters.insert("unix_socket_directories".into(), "".into());
    let hba = [
        "host all all 127.0.0.1/32 trust",
        "host replication all 127.0.0.1/32 trust",
    ];
    let user = serde_json::json!({"username": crate::postgres::SUPERUSER});
    let config = serde_json::json!({
        "scope": "regiondrill",
        "name": member.name,
        "log": {"level": "INFO", "format": "%(asctime)s %(levelname)s: %(message)s"},
        "restapi": {
            "listen": format!("127.0.0.1:{api_port}"),
            "connect_address": format!("{}:{}", member.api_connect.0, member.api_connect.1),
        },
        "etcd3": {"hosts": [format!("{}:{}", member.dcs.0, member.dcs.1)], "protocol": "http"},
        "bootstrap": {
            "dcs": {
                "ttl": s.ttl,
                "loop_wait": s.loop_wait,
                "retry_timeout": s.retry_timeout,
                "maximum_lag_on_failover": s.maximum_lag_on_failover,
                "synchronous_mode": s.synchronous_mode,
                "synchronous_mode_strict": s.synchronous_mode_strict,
                "failsafe_mode": s.failsafe_mode,
                "postgresql": {
                    "use_pg_rewind": s.use_pg_rewind,
                    "use_slots": true,
                    "parameters": parameters,
                },
            },
            "initdb": [
                {"encoding": "UTF8"}, {"locale": "C"}, {"wal-segsize": "1"}, "no-sync",
                {"auth": "trust"},
            ],
        },
        "postgresql": {
            "listen": format!("127.0.0.1:{pg_port}"),
            "connect_address": format!("{}:{}", member.pg_connect.0, member.pg_connect.1),
            "data_dir": dir.join("pgdata"),
            "bin_dir": pg.tool(""),
            "pgpass": dir.join("pgpass"),
            "authentication": {"superuser": user, "replication": user, "rewind": user},
            // Patroni forces cluster_name to the scope on every member: the app names the
            // committing database by this instead (stacks/app/README.md, `committed_by`).
            "parameters": {"unix_socket_directories": "", "regiondrill.node": member.name},
            "pg_hba": hba,
        },
    });
    let path = dir.join("patroni.yml");
    let text = serde_json::to_string_pretty(&config).expect("static JSON");
    std::fs::write(&path, text).map_err(|e| StackError::io(&path, e))?;
    chown(&path, run_as)?;
    Ok(path)
}

/// Writes a router's `haproxy.cfg` in `dir` listening on 127.0.0.1:`port`.
pub fn write_haproxy_config(
    router: &RouterConfig,
    dir: &Path,
    port: u16,
    run_as: Option<RunAs>,
) -> Result<PathBuf, StackError> {
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, router.render(&format!("127.0.0.1:{port}")))
        .map_err(|e| StackError::io(&path, e))?;
    chown(&path, run_as)?;
    Ok(path)
}

/// etcd's arguments: one member `name` serving clients on `port` and peers on `peer_port`.
pub fn etcd_args(name: &str, data: &Path, port: u16, peer_port: u16) -> Vec<String> {
    let client = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name".into(),
        name.into(),
        "--data-dir".into(),
        data.join("etcd").display().to_string(),
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client,
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer.clone(),
        "--initial-cluster".into(),
        format!("{name}={peer}"),
        "--log-level".into(),
        "warn".into(),
    ]
}

fn chown(path: &Path, run_as: Option<RunAs>) -> Result<(), StackError> {
    if let Some(u) = run_as {
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid))
            .map_err(|e| StackError::io(path, e))?;
    }
    Ok(())
}

/// Makes a started process a child subreaper (see the module's doc), before it runs.
pub fn subreaper(cmd: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
