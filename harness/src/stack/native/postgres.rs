//! PostgreSQL as local processes: find the binaries, make a primary, a streaming replica
//! (through the replication link), promote, and talk to them.

use crate::stack::StackError;
use crate::stack::process::{self, NodeProcess, ProcessError, RunAs};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The superuser every node and client uses (trust auth on loopback: it is a test stack).
pub const SUPERUSER: &str = "postgres";

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
    pub(crate) fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

/// Where one PostgreSQL server listens and what it is called (on its command line: these
/// differ per node). Everything else is in `postgresql.conf`, written once on the primary by
/// [`initdb`] and copied to the replica by [`basebackup`], so a failover can change it with
/// `ALTER SYSTEM` (command-line settings would win over that).
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Data directory.
    pub data_dir: PathBuf,
    /// `cluster_name`: the replica's name in `pg_stat_replication` and in
    /// `synchronous_standby_names`.
    pub cluster_name: String,
}

impl PgSettings {
    fn args(&self) -> Vec<String> {
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

/// The cluster-wide settings a drill needs. The posture's commit mode is not among them: it is
/// set on the primary once the replica streams ([`require_standby`]), so that neither the
/// schema set-up before nor a promoted replica after waits for a standby that is not there.
pub fn cluster_conf() -> Vec<(String, String)> {
    [
        // Nodes die by SIGKILL, never by power loss: the OS page cache keeps every write a
        // process made, so fsync changes nothing measured here and costs a lot.
        ("fsync", "off".to_string()),
        // Logical, so active-active postures can replicate tables both ways.
        ("wal_level", "logical".into()),
        ("max_replication_slots", "10".into()),
        ("max_wal_senders", "10".into()),
        ("wal_keep_size", "'1GB'".into()),
        ("hot_standby", "on".into()),
        // Notice a dead peer in seconds, and reconnect fast once a link heals.
        ("wal_sender_timeout", "'3s'".into()),
        ("wal_receiver_timeout", "'3s'".into()),
        ("wal_retrieve_retry_interval", "'100ms'".into()),
        ("wal_receiver_status_interval", "'1s'".into()),
        ("max_connections", "200".into()),
        ("shared_buffers", "'64MB'".into()),
        ("log_min_messages", "warning".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `initdb`'s flags besides the data directory.
pub const INITDB_FLAGS: [&str; 6] = [
    "-U",
    SUPERUSER,
    "--auth=trust",
    "--no-sync",
    "--encoding=UTF8",
    "--locale=C",
];

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
    let path = data_dir.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&path).map_err(|e| StackError::io(&path, e))?;
    text.push_str("\n# regiondrill\n");
    for (k, v) in conf {
        text.push_str(&format!("{k} = {v}\n"));
    }
    std::fs::write(&path, text).map_err(|e| StackError::io(&path, e))?;
    Ok(())
}

/// Makes a replica's data directory from the primary reached at `127.0.0.1:port` (the
/// replication link), with `standby.signal` and `primary_conninfo` pointing at that port.
pub async fn basebackup(
    bins: &PgBinaries,
    port: u16,
    data_dir: &Path,
    log: &Path,
    run_as: Option<RunAs>,
) -> Result<(), StackError> {
    let parent = data_dir.parent().unwrap_or(data_dir);
    if let Some(u) = run_as {
        u.chown_tree(parent)
            .map_err(|e| StackError::io(parent, e))?;
    }
    let port = port.to_string();
    let args: Vec<&OsStr> = vec![
        OsStr::new("-h"),
        OsStr::new("127.0.0.1"),
        OsStr::new("-p"),
        OsStr::new(&port),
        OsStr::new("-U"),
        OsStr::new(SUPERUSER),
        OsStr::new("-D"),
        data_dir.as_os_str(),
        OsStr::new("-X"),
        OsStr::new("stream"),
        OsStr::new("-R"),
        OsStr::new("-c"),
        OsStr::new("fast"),
        OsStr::new("--no-sync"),
    ];
    process::run_tool(
        "pg_basebackup",
        &bins.tool("pg_basebackup"),
        &args,
        log,
        run_as,
        Duration::from_secs(60),
    )
    .await?;
    Ok(())
}

/// Starts a server (primary or, when its data directory has `standby.signal`, replica) and
/// waits until it accepts queries.
pub async fn start(
    name: &str,
    bins: &PgBinaries,
    settings: &PgSettings,
    log: &Path,
    run_as: Option<RunAs>,
) -> Result<NodeProcess, StackError> {
    let mut cmd = process::command(&bins.tool("postgres"), log, run_as)
        .map_err(|e| StackError::io(log, e))?;
    cmd.args(settings.args());
    let mut proc = NodeProcess::spawn(name, cmd, log)?;
    wait_ready(&mut proc, settings.port, Duration::from_secs(20)).await?;
    Ok(proc)
}

/// Waits until the server on `port` answers `SELECT 1`, or fails with its log's tail when the
/// process exits or time runs out.
async fn wait_ready(proc: &mut NodeProcess, port: u16, limit: Duration) -> Result<(), StackError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(status) = proc.exited() {
            return Err(ProcessError::Failed {
                name: proc.name.clone(),
                status: format!("exited during start-up: {status}"),
                log_tail: proc.log_tail(15),
            }
            .into());
        }
        if let Ok(c) = connect(port, Duration::from_millis(500)).await {
            if c.simple_query("SELECT 1").await.is_ok() {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ProcessError::Failed {
                name: proc.name.clone(),
                status: format!("not ready after {limit:?}"),
                log_tail: proc.log_tail(15),
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A libpq connection string for `127.0.0.1:port`.
pub fn dsn(port: u16) -> String {
    dsn_at("127.0.0.1", port)
}

/// A libpq connection string for `host:port`.
pub fn dsn_at(host: &str, port: u16) -> String {
    format!("host={host} port={port} user={SUPERUSER} dbname=postgres connect_timeout=2")
}

/// Connects to `127.0.0.1:port`; the connection's driver task ends with the client.
pub async fn connect(port: u16, timeout: Duration) -> Result<tokio_postgres::Client, String> {
    connect_dsn(&dsn(port), timeout).await
}

/// Connects with a DSN, giving up after `timeout` (a black-holed link never answers).
pub async fn connect_dsn(dsn: &str, timeout: Duration) -> Result<tokio_postgres::Client, String> {
    let mut config: tokio_postgres::Config =
        dsn.parse().map_err(|e| format!("bad DSN {dsn}: {e}"))?;
    config.connect_timeout(timeout);
    let connecting = config.connect(tokio_postgres::NoTls);
    let (client, connection) = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("connect timed out after {timeout:?}")),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Sets the primary's commit mode (`synchronous_commit`, `synchronous_standby_names`) and
/// waits until the standby `standby` streams — and, when commits wait for it, is the
/// synchronous standby.
pub async fn require_standby(
    port: u16,
    synchronous_commit: &str,
    standby_names: &str,
    standby: &str,
) -> Result<(), String> {
    let c = connect(port, Duration::from_secs(2)).await?;
    for sql in [
        format!("ALTER SYSTEM SET synchronous_commit = '{synchronous_commit}'"),
        format!("ALTER SYSTEM SET synchronous_standby_names = '{standby_names}'"),
        "SELECT pg_reload_conf()".to_string(),
    ] {
        c.simple_query(&sql)
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
    }
    let want_sync = !standby_names.is_empty();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows = c
            .query(
                "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = $1",
                &[&standby],
            )
            .await
            .map_err(|e| e.to_string())?;
        let ready = rows.iter().any(|r| {
            r.get::<_, Option<String>>(0).as_deref() == Some("streaming")
                && (!want_sync || r.get::<_, Option<String>>(1).as_deref() == Some("sync"))
        });
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "standby {standby} not streaming{} after 15s",
                if want_sync {
                    " as the synchronous standby"
                } else {
                    ""
                }
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The harness's own table (the heartbeat probe's), created on every primary before any
/// replication is set up, so it is replicated like the app's tables.
pub const HARNESS_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS regiondrill_heartbeat (id int PRIMARY KEY, seq bigint NOT NULL)";

/// The app's tables a region writes in active-active postures (see stacks/app/README.md).
pub fn region_tables(region: &str) -> Vec<String> {
    ["kv", "writes", "counter"]
        .iter()
        .map(|t| format!("{t}_{region}"))
        .collect()
}

/// Name of the subscription through which `to`'s database receives `from`'s tables (also
/// its walsender's `application_name` on `from`).
pub fn subscription_name(from: &str) -> String {
    format!("rd_from_{from}")
}

/// Active-active replication, one direction: `from`'s database (harness port `from_port`)
/// publishes its own tables (and, from the primary region, the heartbeat table); `to`'s
/// database (harness port `to_port`) subscribes, connecting with `from_dsn_inside` — the
/// replication link as `to`'s database reaches it.
pub async fn replicate(
    from: &str,
    from_port: u16,
    to_port: u16,
    from_dsn_inside: &str,
    with_heartbeat: bool,
) -> Result<(), String> {
    let publisher = connect(from_port, Duration::from_secs(3)).await?;
    let mut tables = region_tables(from);
    if with_heartbeat {
        tables.push("regiondrill_heartbeat".into());
    }
    let create = format!(
        "CREATE PUBLICATION rd_pub_{from} FOR TABLE {}",
        tables.join(", ")
    );
    publisher
        .simple_query(&create)
        .await
        .map_err(|e| format!("{create}: {e}"))?;
    let subscriber = connect(to_port, Duration::from_secs(3)).await?;
    // No initial copy: every table is empty when replication starts.
    let sub = subscription_name(from);
    let create = format!(
        "CREATE SUBSCRIPTION {sub} CONNECTION '{from_dsn_inside}' PUBLICATION rd_pub_{from} WITH (copy_data = false)"
    );
    subscriber
        .simple_query(&create)
        .await
        .map_err(|e| format!("{create}: {e}"))?;
    Ok(())
}

/// Promotes the replica on `port` and waits until it accepts writes.
pub async fn promote(port: u16) -> Result<(), String> {
    let c = connect(port, Duration::from_secs(2))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let row = c
        .query_one("SELECT pg_promote(true, 30)", &[])
        .await
        .map_err(|e| format!("pg_promote: {e}"))?;
    if row.get::<_, bool>(0) {
        Ok(())
    } else {
        Err("pg_promote returned false".into())
    }
}
