//! Real servers for the tests, each owned by a guard that kills it on drop (also when a test
//! panics): PostgreSQL (initdb into a temp dir, run as user `postgres` when the tests run as
//! root, since PostgreSQL refuses root), redis-server, and the app binary itself.

#![allow(dead_code)] // Each test module uses a different subset.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Where Debian puts the PostgreSQL 15 binaries.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The app under test.
pub const APP_BIN: &str = env!("CARGO_BIN_EXE_regiondrill-app");

/// A child process, killed on drop: first `stop_signal` (so PostgreSQL can stop its backends),
/// then SIGKILL if it has not exited within two seconds.
pub struct Proc {
    /// What it is, for messages.
    name: String,
    /// The process.
    child: Child,
    /// Signal sent first on drop.
    stop_signal: i32,
}

impl Proc {
    /// Spawns `cmd`.
    fn spawn(name: &str, cmd: &mut Command, stop_signal: i32) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            stop_signal,
        }
    }

    /// Whether it is still running.
    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.running() {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: `pid` is our own child, not yet reaped, so the id cannot have been reused.
        unsafe { libc::kill(pid, self.stop_signal) };
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!(
            "{} ignored signal {}, killing it",
            self.name, self.stop_signal
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral port")
        .port()
}

/// Polls `ready` every 20 ms until it holds, `proc` dies, or `timeout` passes.
fn wait_until(proc: &mut Proc, timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if ready() {
            return true;
        }
        if !proc.running() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The user PostgreSQL runs as: `postgres` when we are root, else ourselves (`None`).
fn postgres_user() -> Option<(u32, u32)> {
    // SAFETY: plain libc calls; getpwnam's result is read before any other passwd call.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let pw = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !pw.is_null(),
            "running as root but there is no user `postgres`"
        );
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

/// Runs `cmd` as the PostgreSQL user.
fn as_postgres(cmd: &mut Command) -> &mut Command {
    if let Some((uid, gid)) = postgres_user() {
        cmd.uid(uid).gid(gid);
    }
    cmd.env("LC_ALL", "C").env_remove("PGDATA")
}

/// A PostgreSQL server in a temp dir, listening on 127.0.0.1 only.
pub struct Postgres {
    /// The server; `None` while stopped.
    proc: Option<Proc>,
    /// Its port.
    pub port: u16,
    /// Its `cluster_name` (what the app reports as `committed_by`).
    pub cluster_name: String,
    /// Data directory.
    data: PathBuf,
    /// Holds the data directory, the socket directory and the server log. Last field: removed
    /// after the server is stopped.
    dir: TempDir,
}

impl Postgres {
    /// initdb and start a fresh server, `cluster_name` `test`.
    pub fn start() -> Postgres {
        Postgres::start_named("test")
    }

    /// initdb and start a fresh server with this `cluster_name`.
    pub fn start_named(cluster_name: &str) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("regiondrill-app-pg-")
            .tempdir()
            .expect("creating a temp dir");
        if let Some((uid, gid)) = postgres_user() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown temp dir");
        }
        let data = dir.path().join("data");
        let out = as_postgres(&mut Command::new(Path::new(PG_BIN).join("initdb")))
            .args([
                "--auth=trust",
                "-N",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            proc: None,
            port: 0,
            cluster_name: cluster_name.to_owned(),
            data,
            dir,
        };
        pg.restart_on_new_port();
        pg
    }

    /// Starts the server on a fresh port, retrying if the port was taken meanwhile.
    fn restart_on_new_port(&mut self) {
        for _ in 0..3 {
            self.port = free_port();
            if self.try_start() {
                return;
            }
        }
        panic!(
            "PostgreSQL did not start; see {}",
            self.log_path().display()
        );
    }

    /// (Re)starts the stopped server on its port (crash recovery included).
    pub fn restart(&mut self) {
        assert!(
            self.try_start(),
            "PostgreSQL did not restart; see {}",
            self.log_path().display()
        );
    }

    /// Starts the server on `self.port`; false if it exits or is not ready within 15 s.
    fn try_start(&mut self) -> bool {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the PostgreSQL log");
        if let Some((uid, gid)) = postgres_user() {
            let _ = std::os::unix::fs::chown(self.log_path(), Some(uid), Some(gid));
        }
        let mut cmd = Command::new(Path::new(PG_BIN).join("postgres"));
        as_postgres(&mut cmd)
            .arg("-D")
            .arg(&self.data)
            .args(["-c", "listen_addresses=127.0.0.1", "-c"])
            .arg(format!("port={}", self.port))
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            .args(["-c", "fsync=off", "-c", "max_connections=100", "-c"])
            .arg(format!("cluster_name={}", self.cluster_name))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning a file handle"))
            .stderr(log);
        // SIGQUIT: immediate shutdown, the postmaster takes its backends down with it.
        let mut proc = Proc::spawn("postgres", &mut cmd, libc::SIGQUIT);
        let isready = Path::new(PG_BIN).join("pg_isready");
        let port = self.port.to_string();
        let ready = wait_until(&mut proc, Duration::from_secs(15), || {
            Command::new(&isready)
                .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-p", &port])
                .status()
                .is_ok_and(|s| s.success())
        });
        if ready {
            self.proc = Some(proc);
        }
        ready
    }

    /// Stops the server abruptly (immediate shutdown: clients see their connections drop).
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// DSN of database `db`.
    pub fn dsn(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.port
        )
    }

    /// A file in this server's temp dir (for app logs).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The server log.
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A client on database `db`; its connection task runs on the current runtime.
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.dsn(db), tokio_postgres::NoTls)
            .await
            .expect("connecting to the test PostgreSQL");
        tokio::spawn(connection);
        client
    }
}

/// A redis-server on 127.0.0.1, no persistence.
pub struct Redis {
    /// The server; `None` while killed.
    proc: Option<Proc>,
    /// Its port.
    pub port: u16,
}

impl Redis {
    /// Starts a server on a fresh port.
    pub fn start() -> Redis {
        let mut redis = Redis {
            proc: None,
            port: 0,
        };
        for _ in 0..3 {
            redis.port = free_port();
            if redis.try_start() {
                return redis;
            }
        }
        panic!("redis-server did not start");
    }

    /// Restarts a killed server on the same port.
    pub fn restart(&mut self) {
        assert!(
            self.try_start(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// Kills the server.
    pub fn kill(&mut self) {
        self.proc = None;
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts on `self.port`; false if it exits or does not answer PING within 10 s.
    fn try_start(&mut self) -> bool {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut proc = Proc::spawn("redis-server", &mut cmd, libc::SIGKILL);
        let port = self.port;
        let ready = wait_until(&mut proc, Duration::from_secs(10), || ping_redis(port));
        if ready {
            self.proc = Some(proc);
        }
        ready
    }

    /// `GET key`: the value, or `None` when absent.
    pub fn get(&self, key: &str) -> Option<String> {
        let reply = self.command(&["GET", key]);
        if reply.starts_with("$-1") {
            return None;
        }
        let (_, rest) = reply.split_once("\r\n").expect("a bulk string reply");
        Some(rest.trim_end_matches("\r\n").to_owned())
    }

    /// `PTTL key` in milliseconds (negative: absent or no expiry).
    pub fn pttl(&self, key: &str) -> i64 {
        self.command(&["PTTL", key])
            .trim()
            .trim_start_matches(':')
            .parse()
            .expect("an integer reply")
    }

    /// Runs one command (RESP array of `args`) and returns the raw reply.
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connecting to redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = [0u8; 4096];
        let n = stream.read(&mut reply).unwrap();
        String::from_utf8_lossy(&reply[..n]).into_owned()
    }
}

/// Whether a Redis answers PING on `port`.
fn ping_redis(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// Runs `regiondrill-app migrate --db DSN`; panics unless it exits 0.
pub fn migrate(dsn: &str) {
    let out = Command::new(APP_BIN)
        .args(["migrate", "--db", dsn])
        .output()
        .expect("running migrate");
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The arguments of `serve` (all but `--listen`): region, DBs, Redis, then `extra`.
pub fn serve_args(
    region: &str,
    write_db: &str,
    read_db: &str,
    redis: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "--region",
        region,
        "--write-db",
        write_db,
        "--read-db",
        read_db,
        "--redis",
        redis,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A running app instance.
pub struct App {
    /// The process (SIGTERM first: graceful shutdown).
    proc: Proc,
    /// Base URL, e.g. http://127.0.0.1:41234.
    pub base: String,
    /// Its stderr (the log).
    pub log: PathBuf,
    /// HTTP client for it.
    http: reqwest::Client,
}

impl App {
    /// Starts `regiondrill-app serve` with `args` (plus `--listen 127.0.0.1:0`), writing its log
    /// to `log`, and waits for its `listening on ADDR` line.
    pub fn start(args: &[String], log: PathBuf) -> App {
        let mut cmd = Command::new(APP_BIN);
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("REGIONDRILL_APP_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("creating the app log"));
        let mut proc = Proc::spawn("regiondrill-app", &mut cmd, libc::SIGTERM);
        let stdout = proc.child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            // Keep draining so the app never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                panic!(
                    "the app did not print `listening on ADDR`; its log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let addr: SocketAddr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        App {
            proc,
            base: format!("http://{addr}"),
            log,
            http: http_client(),
        }
    }

    /// `METHOD path` with an optional JSON body; returns the status and the JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        call(&self.http, &self.base, method, path, body).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// `PUT path` with `body`.
    pub async fn put(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// The app's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The HTTP client the tests use.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("building the HTTP client")
}

/// `METHOD base+path` with an optional JSON body; returns the status and the JSON answer.
async fn call(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = http.request(method, format!("{base}{path}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sending a request to the app");
    let status = response.status().as_u16();
    let text = response.text().await.expect("reading the answer");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("answer to {path} is not JSON ({e}): {text:?}"));
    (status, json)
}

/// Polls `check` every 5 ms until it holds or `timeout` passes; returns how long it took, or
/// `None` if it never held.
pub async fn within<F, Fut>(timeout: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A whole single-region stack: PostgreSQL (migrated), Redis, the app (region `us`), and an
/// HTTP client. Fields drop in order: the app first, PostgreSQL last.
pub struct Stack {
    /// The app.
    pub app: App,
    /// HTTP client for the app.
    pub http: reqwest::Client,
    /// Redis.
    pub redis: Redis,
    /// PostgreSQL; the app's write and read DB are both its database `postgres`.
    pub pg: Postgres,
}

impl Stack {
    /// Starts everything; `extra` is appended to the app's command line.
    pub fn start(extra: &[&str]) -> Stack {
        let pg = Postgres::start();
        let redis = Redis::start();
        let dsn = pg.dsn("postgres");
        migrate(&dsn);
        let args = serve_args("us", &dsn, &dsn, &redis.url(), extra);
        let app = App::start(&args, pg.dir.path().join("app.log"));
        let http = http_client();
        Stack {
            app,
            http,
            redis,
            pg,
        }
    }

    /// `METHOD path` with an optional JSON body; returns the status and the JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        call(&self.http, &self.app.base, method, path, body).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// `PUT path` with `body`.
    pub async fn put(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// The app's log so far.
    pub fn app_log(&self) -> String {
        std::fs::read_to_string(&self.app.log).unwrap_or_default()
    }
}

/// What the harness's logical replication does, done by hand: copies `region`'s tables
/// (`kv_{region}`, `writes_{region}`, `counter_{region}`) from `src` to `dst`, replacing
/// their contents there.
pub async fn replicate(src: &tokio_postgres::Client, dst: &tokio_postgres::Client, region: &str) {
    for table in ["kv", "writes", "counter"] {
        let table = format!("{table}_{region}");
        let rows: String = src
            .query_one(
                &format!("SELECT coalesce(json_agg(t), '[]')::text FROM {table} t"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        dst.execute(&format!("DELETE FROM {table}"), &[])
            .await
            .unwrap();
        dst.execute(
            &format!(
                "INSERT INTO {table} SELECT * FROM json_populate_recordset(null::{table}, $1::text::json)"
            ),
            &[&rows],
        )
        .await
        .unwrap();
    }
}
