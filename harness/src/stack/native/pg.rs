//! PostgreSQL as local processes: find the server programs, make an empty cluster, and the
//! server's command line. Talking to a server is [`crate::postgres`]'s business.

use super::process::{self, RunAs};
use crate::postgres::INITDB_FLAGS;
use crate::stack::StackError;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where PostgreSQL's server programs are.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    bindir: PathBuf,
}

impl PgBinaries {
    /// `initdb`, `postgres` and `pg_basebackup` from `PATH`, else the newest
    /// `/usr/lib/postgresql/*/bin` (Debian's layout, where they are not on `PATH`).
    pub fn find() -> Result<PgBinaries, StackError> {
        let tools = ["initdb", "postgres", "pg_basebackup"];
        let has_all = |dir: &Path| tools.iter().all(|t| dir.join(t).is_file());
        let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path().join("bin"))
                    .collect()
            })
            .unwrap_or_default();
        debian.sort_by_key(|p| {
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
        debian.reverse();
        candidates.extend(debian);
        candidates
            .into_iter()
            .find(|d| has_all(d))
            .map(|bindir| PgBinaries {
                bindir: std::fs::canonicalize(&bindir).unwrap_or(bindir),
            })
            .ok_or_else(|| StackError::Missing {
                what: "PostgreSQL server programs (initdb, postgres, pg_basebackup)".into(),
                looked: "PATH and /usr/lib/postgresql/*/bin".into(),
                install: "apt-get install postgresql".into(),
            })
    }

    /// A program from the one directory, so every tool is of the same version.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

/// Where one server listens and what it is called: on its command line, as these differ per
/// node. Everything else is in `postgresql.conf` (from the template), so a failover can change
/// it with `ALTER SYSTEM` (command-line settings would win over that).
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Data directory.
    pub data_dir: PathBuf,
    /// `cluster_name`: the standby's name in `pg_stat_replication` and in
    /// `synchronous_standby_names`.
    pub cluster_name: String,
}

impl PgSettings {
    /// The arguments of `postgres`.
    pub fn args(&self) -> Vec<String> {
        let settings = [
            ("listen_addresses", "127.0.0.1".to_string()),
            ("port", self.port.to_string()),
            // TCP only: everything connects to 127.0.0.1, and a socket path longer than
            // 107 bytes (a long temp dir or experiment name) would stop the server.
            ("unix_socket_directories", String::new()),
            ("cluster_name", self.cluster_name.clone()),
        ];
        let mut v = vec!["-D".to_string(), self.data_dir.display().to_string()];
        for (k, val) in settings {
            v.push("-c".into());
            v.push(format!("{k}={val}"));
        }
        v
    }
}

/// A boolean setting's value.
pub fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Creates an empty cluster in `data_dir` (owned by `run_as` when set) with `conf` appended to
/// its `postgresql.conf`.
pub async fn initdb(
    bins: &PgBinaries,
    data_dir: &Path,
    log: &Path,
    run_as: Option<RunAs>,
    conf: &[(String, String)],
) -> Result<(), StackError> {
    std::fs::create_dir_all(data_dir).map_err(|e| StackError::io(data_dir, e))?;
    if let Some(u) = run_as {
        u.chown_tree(data_dir)
            .map_err(|e| StackError::io(data_dir, e))?;
    }
    let mut args: Vec<&OsStr> = vec![OsStr::new("-D"), data_dir.as_os_str()];
    args.extend(INITDB_FLAGS.iter().map(OsStr::new));
    process::run_tool(
        "initdb",
        &bins.tool("initdb"),
        &args,
        log,
        run_as,
        Duration::from_secs(60),
    )
    .await?;
    append(&data_dir.join("postgresql.conf"), &conf_text(conf))
}

/// `conf` as `postgresql.conf` lines.
pub fn conf_text(conf: &[(String, String)]) -> String {
    let mut text = String::from("\n# regiondrill\n");
    for (k, v) in conf {
        text.push_str(&format!("{k} = {v}\n"));
    }
    text
}

/// Sets `wal_log_hints` in the cluster's `postgresql.auto.conf` — what `pg_rewind` needs of a
/// cluster without data checksums. In a configuration file, not on the command line: when the
/// server was killed, `pg_rewind` first runs crash recovery in single-user mode with the
/// files' settings, and that run writes the setting into `pg_control`, which `pg_rewind` then
/// checks. Per node, at its first start: the shared empty cluster is not touched.
pub fn set_wal_log_hints(
    data_dir: &Path,
    on: bool,
    run_as: Option<RunAs>,
) -> Result<(), StackError> {
    let auto = data_dir.join("postgresql.auto.conf");
    append(&auto, &format!("wal_log_hints = {}\n", on_off(on)))?;
    if let Some(u) = run_as {
        std::os::unix::fs::chown(&auto, Some(u.uid), Some(u.gid))
            .map_err(|e| StackError::io(&auto, e))?;
    }
    Ok(())
}

/// Makes the cluster in `data_dir` a standby streaming from `host:port`.
pub fn make_standby(
    data_dir: &Path,
    host: &str,
    port: u16,
    run_as: Option<RunAs>,
) -> Result<(), StackError> {
    let signal = data_dir.join("standby.signal");
    std::fs::write(&signal, "").map_err(|e| StackError::io(&signal, e))?;
    let auto = data_dir.join("postgresql.auto.conf");
    append(&auto, &crate::postgres::primary_conninfo(host, port))?;
    if let Some(u) = run_as {
        for p in [&signal, &auto] {
            std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid))
                .map_err(|e| StackError::io(p, e))?;
        }
    }
    Ok(())
}

fn append(path: &Path, text: &str) -> Result<(), StackError> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| StackError::io(path, e))
}
