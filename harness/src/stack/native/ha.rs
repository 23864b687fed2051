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
use crate::stack::ha_config::{MemberHost, patroni_config};
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
