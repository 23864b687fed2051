//! The programs a native stack runs — PostgreSQL, Redis, the app, and the tools run beside
//! them — found on this machine, and each node's command line.

use super::pg::{PgBinaries, PgSettings};
use super::process::{self, RunAs};
use crate::stack::StackError;
use crate::stack::clock;
use crate::stack::plan::{NodeSpec, Program};
use std::path::{Path, PathBuf};

/// Environment variable naming the app binary to run.
pub const APP_BIN_ENV: &str = "REGIONDRILL_APP_BIN";

/// Where every program is, found once per run.
#[derive(Debug, Clone)]
pub struct Programs {
    /// PostgreSQL's server programs.
    pub pg: PgBinaries,
    /// `redis-server`.
    pub redis: PathBuf,
    /// `regiondrill-app`.
    pub app: PathBuf,
    /// The user PostgreSQL runs as (it refuses root).
    pub run_as: Option<RunAs>,
    /// libfaketime, when some node runs under it.
    pub faketime: Option<PathBuf>,
    /// Patroni, etcd and HAProxy, when the stack runs Patroni.
    pub ha: Option<HaPrograms>,
    /// `pg_autoctl`, when the stack runs pg_auto_failover.
    pub pg_autoctl: Option<PathBuf>,
}

impl Programs {
    /// Finds every program; `faketime` when some node's clock is skewed, `ha` for Patroni,
    /// `paf` for pg_auto_failover.
    pub fn find(faketime: bool, ha: bool, paf: bool) -> Result<Programs, StackError> {
        let faketime = if faketime {
            Some(clock::libfaketime().ok_or_else(|| StackError::Missing {
                what: "libfaketime (for clock_skew faults)".into(),
                looked: "/usr/lib/*/faketime/libfaketime.so.1".into(),
                install: "apt-get install libfaketime".into(),
            })?)
        } else {
            None
        };
        Ok(Programs {
            pg: PgBinaries::find()?,
            redis: find_redis()?,
            app: find_app()?,
            run_as: RunAs::for_postgres(),
            faketime,
            ha: if ha { Some(HaPrograms::find()?) } else { None },
            pg_autoctl: if paf { Some(find_pg_autoctl()?) } else { None },
        })
    }

    /// The command of a node listening on `port`, with its log, data directory and (for a
    /// skewed node) clock file.
    pub fn command(
        &self,
        node: &NodeSpec,
        port: u16,
        data_dir: &Path,
        clock_file: &Path,
        log: &Path,
    ) -> Result<tokio::process::Command, StackError> {
        let ha = || {
            self.ha.as_ref().ok_or_else(|| StackError::Missing {
                what: "Patroni, etcd and HAProxy".into(),
                looked: "PATH".into(),
                install: "apt-get install patroni etcd-server haproxy".into(),
            })
        };
        let (program, run_as) = match &node.program {
            Program::Postgres { .. } => (self.pg.tool("postgres"), self.run_as),
            Program::Redis => (self.redis.clone(), None),
            Program::App { .. } => (self.app.clone(), None),
            Program::Patroni(_) => (ha()?.patroni.clone(), self.run_as),
            Program::Etcd => (ha()?.etcd.clone(), self.run_as),
            Program::Haproxy(_) => (ha()?.haproxy.clone(), self.run_as),
            Program::PgAutoFailoverMonitor | Program::PgAutoFailoverKeeper(_) => {
                let found = self.pg_autoctl.clone();
                let found = found.ok_or_else(|| StackError::Missing {
                    what: "pg_autoctl".into(),
                    looked: "PATH".into(),
                    install: "apt-get install postgresql-15-auto-failover pg-auto-failover-cli"
                        .into(),
                })?;
                (found, self.run_as)
            }
        };
        let mut cmd =
            process::command(&program, log, run_as).map_err(|e| StackError::io(log, e))?;
        match &node.program {
            Program::Postgres { cluster_name, .. } => {
                let settings = PgSettings {
                    port,
                    data_dir: data_dir.to_path_buf(),
                    cluster_name: cluster_name.clone(),
                };
                cmd.args(settings.args());
            }
            Program::Redis => {
                // Keep the command line as given (Redis rewrites its title by default), so
                // operators and tests can see which run a server belongs to.
                cmd.arg("--port").arg(port.to_string()).args([
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--set-proc-title",
                    "no",
                ]);
                cmd.arg("--dir").arg(data_dir);
            }
            Program::App { args } => {
                cmd.arg("serve")
                    .args(["--listen", &format!("127.0.0.1:{port}")])
                    .args(args);
            }
            // Their files and extra ports are the backend's (`NativeBackend::ha_args`).
            Program::Patroni(_)
            | Program::Etcd
            | Program::Haproxy(_)
            | Program::PgAutoFailoverMonitor
            | Program::PgAutoFailoverKeeper(_) => {}
        }
        if node.skewed {
            let lib = self.faketime.as_ref().ok_or_else(|| StackError::Missing {
                what: "libfaketime".into(),
                looked: "/usr/lib/*/faketime".into(),
                install: "apt-get install libfaketime".into(),
            })?;
            for (k, v) in clock::faketime_env(lib, clock_file) {
                cmd.env(k, v);
            }
        }
        Ok(cmd)
    }

    /// A tool's path and the user it runs as: the app's own program, PostgreSQL's tools (as
    /// PostgreSQL's user), or anything else on `PATH`.
    pub fn tool(&self, name: &str) -> (PathBuf, Option<RunAs>) {
        if name == crate::app::PROGRAM {
            return (self.app.clone(), None);
        }
        let pg = self.pg.tool(name);
        if pg.is_file() {
            return (pg, self.run_as);
        }
        (PathBuf::from(name), None)
    }
}

/// Finds `redis-server` on `PATH`.
fn find_redis() -> Result<PathBuf, StackError> {
    on_path("redis-server").ok_or_else(|| StackError::Missing {
        what: "redis-server".into(),
        looked: "PATH".into(),
        install: "apt-get install redis-server".into(),
    })
}

/// Finds `regiondrill-app`: `REGIONDRILL_APP_BIN`, else beside the running binary (also one
/// level up, for test binaries in `target/*/deps`), else on `PATH`.
fn find_app() -> Result<PathBuf, StackError> {
    if let Some(p) = std::env::var_os(APP_BIN_ENV) {
        return Ok(PathBuf::from(p));
    }
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(d) = exe.parent()
    {
        dirs.push(d.to_path_buf());
        if let Some(up) = d.parent() {
            dirs.push(up.to_path_buf());
        }
    }
    dirs.into_iter()
        .map(|d| d.join(crate::app::PROGRAM))
        .find(|p| p.is_file())
        .or_else(|| on_path(crate::app::PROGRAM))
        .ok_or_else(|| StackError::Missing {
            what: "the sample app binary regiondrill-app".into(),
            looked: format!("${APP_BIN_ENV}, beside the regiondrill binary, and PATH"),
            install: "cargo build --release -p regiondrill-app (or set REGIONDRILL_APP_BIN)".into(),
        })
}

pub(super) fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

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
            on_path(name)
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

/// Finds `pg_autoctl` (Debian: `/usr/bin`).
pub fn find_pg_autoctl() -> Result<PathBuf, StackError> {
    on_path("pg_autoctl")
        .or_else(|| Some(PathBuf::from("/usr/bin/pg_autoctl")).filter(|p| p.is_file()))
        .ok_or_else(|| StackError::Missing {
            what: "pg_autoctl (for manager = \"pg_auto_failover\")".into(),
            looked: "PATH, /usr/bin".into(),
            install: "apt-get install postgresql-15-auto-failover pg-auto-failover-cli (or run \
                      stacks/deps.sh)"
                .into(),
        })
}
