//! The real HA managers' programs as local processes: Patroni (its configuration file, one
//! per member), etcd and HAProxy, pg_auto_failover's `pg_autoctl` (monitor and keepers), all
//! as PostgreSQL's unprivileged user.
//!
//! Patroni starts PostgreSQL detached from itself (a new session, the intermediate process
//! gone), so the postmaster would not be a descendant of the Patroni process the backend
//! started, and a "kill node" would leave it running. The member is therefore started as a
//! child subreaper (`PR_SET_CHILD_SUBREAPER`): orphans below it are re-parented to it, the
//! postmaster stays in its tree, and the tree is frozen and killed as one, as for every node.
//!
//! `pg_autoctl … --run` keeps PostgreSQL in its own tree (a supervisor, a "start/stop
//! postgres" service whose child the postmaster is, and the keeper's "node active" service),
//! but a service outlives the supervisor and restarts PostgreSQL by itself (seen: a kill of
//! the supervisor and the postmaster alone left the service, which started PostgreSQL again
//! within 2 s). So a keeper is started as a subreaper too and killed as one tree; its files
//! (configuration, state, pid files: `XDG_CONFIG_HOME`, `XDG_DATA_HOME`, `XDG_RUNTIME_DIR`)
//! are all kept in the node's directory, which goes with the run's.

use super::pg::PgBinaries;
use super::process::RunAs;
use crate::stack::StackError;
use crate::stack::ha_config::{AutoctlHost, MemberHost, patroni_config};
use crate::stack::plan::{Keeper, PatroniMember, RouterConfig};
use std::path::{Path, PathBuf};

/// Writes a member's `patroni.yml` in `dir` (owned by `run_as`) for a PostgreSQL on `pg_port`
/// and a REST API on `api_port`; returns its path.
pub fn write_patroni_config(
    member: &PatroniMember,
    dir: &Path,
    pg: &PgBinaries,
    pg_port: u16,
    api_port: u16,
    run_as: Option<RunAs>,
) -> Result<PathBuf, StackError> {
    let (dir_text, bin_dir) = (dir.to_string_lossy(), pg.tool(""));
    let host = MemberHost {
        listen: "127.0.0.1",
        pg_port,
        api_port,
        dir: &dir_text,
        bin_dir: &bin_dir.to_string_lossy(),
        trust: "127.0.0.1/32",
    };
    let path = dir.join("patroni.yml");
    std::fs::write(&path, patroni_config(member, &host)).map_err(|e| StackError::io(&path, e))?;
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
    std::fs::write(&path, router.render(&format!("127.0.0.1:{port}"), None))
        .map_err(|e| StackError::io(&path, e))?;
    chown(&path, run_as)?;
    Ok(path)
}

/// etcd's arguments: one member `name` keeping its data in `data` and serving clients on
/// 127.0.0.1:`port`.
pub fn etcd_args(name: &str, data: &Path, port: u16, peer_port: u16) -> Vec<String> {
    let local = ("127.0.0.1".to_string(), port);
    let data = data.join("etcd").display().to_string();
    crate::stack::ha_config::etcd_args(name, &data, "127.0.0.1", port, &local, peer_port)
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

/// Where `pg_autoctl` keeps a node's cluster, inside its node directory `dir`.
pub fn pgdata(dir: &Path) -> PathBuf {
    dir.join("pgdata")
}

/// The directories of a `pg_autoctl` whose node directory is `dir`, for its configuration,
/// state and pid files (`XDG_CONFIG_HOME`, `XDG_DATA_HOME`, `XDG_RUNTIME_DIR`). They must
/// exist before it starts: where one does not, it falls back to `~/.config`, … and
/// `/tmp/pg_autoctl` (seen: every run left its pid files there).
pub fn pg_autoctl_dirs(dir: &Path) -> [PathBuf; 3] {
    ["config", "share", "run"].map(|d| dir.join(d))
}

/// The environment of a `pg_autoctl` whose node directory is `dir`: its files in
/// [`pg_autoctl_dirs`] (not in the user's home or `/tmp`), PostgreSQL's programs first on
/// `PATH`.
pub fn pg_autoctl_env(cmd: &mut tokio::process::Command, dir: &Path, pg: &PgBinaries) {
    let bin = pg.tool("pg_ctl");
    let bin = bin.parent().unwrap_or(Path::new("/usr/bin"));
    let [config, share, run] = pg_autoctl_dirs(dir);
    cmd.env("HOME", dir)
        .env("XDG_CONFIG_HOME", config)
        .env("XDG_DATA_HOME", share)
        .env("XDG_RUNTIME_DIR", run)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env_remove("PGHOST")
        .env_remove("PGPORT")
        .env_remove("PGDATA");
}

/// The arguments of pg_auto_failover's monitor on `port` (its cluster in `dir`), known as
/// 127.0.0.1. HBA rules stay the cluster's own (trust from 127.0.0.1, where every connection
/// comes from, through a link or not).
pub fn monitor_args(dir: &Path, pg: &PgBinaries, port: u16) -> Vec<String> {
    let (pgdata, pg_ctl) = paths(dir, pg);
    let host = autoctl_host(&pgdata, &pg_ctl, port);
    crate::stack::ha_config::monitor_args(&host, "127.0.0.1")
}

/// The arguments of a keeper whose PostgreSQL listens on 127.0.0.1:`port` (its cluster in
/// `dir`): registered at `keeper.hostname`, whose port must be `port` (pg_auto_failover
/// registers the port PostgreSQL listens on).
pub fn keeper_args(
    keeper: &Keeper,
    dir: &Path,
    pg: &PgBinaries,
    port: u16,
) -> Result<Vec<String>, StackError> {
    let (pgdata, pg_ctl) = paths(dir, pg);
    let host = autoctl_host(&pgdata, &pg_ctl, port);
    crate::stack::ha_config::keeper_args(keeper, &host).map_err(StackError::NotPlaced)
}

/// A node's data directory and `pg_ctl`, as arguments.
fn paths(dir: &Path, pg: &PgBinaries) -> (String, String) {
    (
        pgdata(dir).display().to_string(),
        pg.tool("pg_ctl").display().to_string(),
    )
}

/// A local `pg_autoctl`: PostgreSQL on 127.0.0.1 only (the links a database registers
/// listen on 127.0.0.2, same port).
fn autoctl_host<'a>(pgdata: &'a str, pg_ctl: &'a str, port: u16) -> AutoctlHost<'a> {
    AutoctlHost {
        pgdata,
        pg_ctl,
        port,
        listen: "127.0.0.1",
        local: "127.0.0.1",
    }
}
