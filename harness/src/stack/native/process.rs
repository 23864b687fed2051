//! Child processes the native backend starts, tied to the harness's lifetime.
//!
//! Three layers make sure nothing outlives a run:
//! 1. [`NodeProcess`] kills its whole process group with SIGKILL when dropped (normal end,
//!    error, panic unwinding, Ctrl-C handled by the CLI).
//! 2. Each child asks the kernel for SIGKILL when the harness dies (`PR_SET_PDEATHSIG`, set
//!    after any change of user so it survives `exec`), which covers `kill -9` of the harness.
//! 3. Run directories record their owner; [`super::sweep`] removes those of dead
//!    owners (see `rundir.rs`).
//!
//! A "kill node" takes the server and every process under it down at once, as a crashed
//! machine would: the whole tree is frozen (SIGSTOP) before any of it is killed, because
//! PostgreSQL's backends leave the postmaster's process group (`setsid`) and would otherwise
//! live on for a moment — long enough to finish a commit and answer it after the "crash".

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// An unprivileged user to run PostgreSQL as (it refuses to run as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl RunAs {
    /// When the harness runs as root: the `postgres` user if it exists, else `nobody`.
    /// Otherwise `None` (children run as the harness's own user).
    pub fn for_postgres() -> Option<RunAs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        ["postgres", "nobody"]
            .iter()
            .find_map(|name| lookup_user(name))
    }

    /// Makes `path` (recursively) owned by this user.
    pub fn chown_tree(&self, path: &Path) -> std::io::Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))?;
        if path.is_dir() {
            for entry in std::fs::read_dir(path)? {
                self.chown_tree(&entry?.path())?;
            }
        }
        Ok(())
    }
}

fn lookup_user(name: &str) -> Option<RunAs> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer to static storage or null; read immediately.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: non-null pointer from getpwnam.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Some(RunAs { uid, gid })
}

/// A command for a node process: own process group, parent-death signal, output to a log.
pub fn command(
    program: &Path,
    log: &Path,
    run_as: Option<RunAs>,
) -> std::io::Result<tokio::process::Command> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut cmd = std::process::Command::new(program);
    cmd.stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .process_group(0);
    if let Some(u) = run_as {
        cmd.uid(u.uid).gid(u.gid);
    }
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Runs after std changed the user, so the setting survives exec.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The harness may have died between fork and prctl.
            if libc::getppid() == 1 {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    Ok(cmd)
}

/// A running node process. Dropping it SIGKILLs its process group.
#[derive(Debug)]
pub struct NodeProcess {
    /// Node name, for messages.
    pub name: String,
    child: tokio::process::Child,
    pid: i32,
    /// Where its output goes.
    pub log: PathBuf,
    /// Killed by [`NodeProcess::kill`] and waited for: nothing left for `Drop` to do.
    dead: bool,
}

impl NodeProcess {
    /// Spawns `cmd` (built by [`command`]).
    pub fn spawn(
        name: &str,
        mut cmd: tokio::process::Command,
        log: &Path,
    ) -> Result<NodeProcess, ProcessError> {
        let child = cmd.spawn().map_err(|e| ProcessError::Spawn {
            name: name.to_string(),
            error: e.to_string(),
        })?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        Ok(NodeProcess {
            name: name.to_string(),
            child,
            pid,
            log: log.to_path_buf(),
            dead: false,
        })
    }

    /// Process id (also the process group id).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether it has exited (and its exit status, if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the process and all its descendants at once, and waits for it to be reaped.
    /// The tree is found and signalled on a blocking thread (it scans `/proc`), so a region
    /// kill does not stall the harness's runtime — whose timers every measurement shares.
    pub async fn kill(&mut self) {
        let pid = self.pid;
        let killed = tokio::task::spawn_blocking(move || kill_tree(pid))
            .await
            .unwrap_or_else(|_| kill_tree(pid));
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        // PostgreSQL's backends leave the postmaster's group: wait for them too.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while killed.iter().any(|&p| is_running(p)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        remove_faketime_segments(self.pid);
        self.dead = true;
    }

    /// The last `n` lines of its log, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log, n)
    }
}

impl Drop for NodeProcess {
    /// Kills the tree and waits (bounded) until none of it runs any more: whatever drops a
    /// node (Ctrl-C during bring-up, an error, a panic) may remove the directory the node was
    /// writing into right after, and a process still finishing a write would make that fail.
    fn drop(&mut self) {
        if self.dead {
            return;
        }
        let killed = kill_tree(self.pid);
        wait_stopped(&killed, Duration::from_secs(2));
        remove_faketime_segments(self.pid);
    }
}

/// Removes the shared-memory segment and semaphore libfaketime makes for a process it is
/// preloaded in (named after its pid; version 0.9.10 has no setting to do without them). A
/// process that exits removes them itself; a SIGKILLed one cannot, and they would stay in
/// /dev/shm until reboot.
pub fn remove_faketime_segments(pid: i32) {
    if pid > 0 {
        let _ = std::fs::remove_file(format!("/dev/shm/faketime_shm_{pid}"));
        let _ = std::fs::remove_file(format!("/dev/shm/sem.faketime_sem_{pid}"));
    }
}

/// Removes PostgreSQL's POSIX shared-memory segments (`/dev/shm/PostgreSQL.*`) owned by `uid`
/// that no process maps. regiondrill's servers keep theirs in the data directory (`mmap`),
/// but `initdb`'s bootstrap backend runs before any setting exists and uses POSIX segments:
/// killed mid-way (a Ctrl-C while the template is built), it leaks them until reboot. A live
/// server, ours or anyone's, maps its control segment, so it is never touched.
pub fn remove_orphaned_pg_segments(uid: u32) {
    use std::os::unix::fs::MetadataExt;
    let Ok(shm) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    let orphans: Vec<std::path::PathBuf> = shm
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("PostgreSQL."))
        .filter(|e| e.metadata().is_ok_and(|m| m.uid() == uid))
        .map(|e| e.path())
        .collect();
    if orphans.is_empty() {
        return;
    }
    let mut mapped = std::collections::HashSet::new();
    for proc in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(maps) = std::fs::read_to_string(proc.path().join("maps")) {
            mapped.extend(
                maps.lines()
                    .filter_map(|l| l.find("/dev/shm/PostgreSQL.").map(|i| l[i..].to_string())),
            );
        }
    }
    for path in orphans {
        if !mapped.contains(path.to_string_lossy().as_ref()) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Waits until every process in `pids` has exited (a zombie or gone), for at most `limit`.
/// A zombie writes nothing, so what it wrote to is safe to remove.
pub fn wait_stopped(pids: &[i32], limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while pids.iter().any(|&p| is_running(p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether `pid` exists and is not a zombie (from `/proc/<pid>/stat`).
fn is_running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x") | None)
}

/// Freezes `pid` and every descendant (SIGSTOP), then SIGKILLs them all and `pid`'s process
/// group: no process of the tree runs between the first and the last kill. Returns the
/// processes it killed (`pid` first).
pub fn kill_tree(pid: i32) -> Vec<i32> {
    if pid <= 0 {
        return Vec::new();
    }
    // SAFETY: signalling our own child; SIGSTOP first so it forks no more.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let tree = descendants(pid);
    for &p in &tree {
        // SAFETY: signalling descendants of our own child.
        unsafe { libc::kill(p, libc::SIGSTOP) };
    }
    for &p in &tree {
        // SAFETY: as above.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    kill_group(pid);
    std::iter::once(pid).chain(tree).collect()
}

/// Sends `signal` (SIGSTOP or SIGCONT) to `pid` and every descendant.
pub fn signal_tree(pid: i32, signal: i32) {
    if pid <= 0 {
        return;
    }
    // SAFETY: signalling our own child and its descendants.
    unsafe { libc::kill(pid, signal) };
    for p in descendants(pid) {
        // SAFETY: as above.
        unsafe { libc::kill(p, signal) };
    }
}

/// Every descendant of `pid`, from `/proc`.
fn descendants(pid: i32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // Field 4 (ppid) follows the command name, which is in parentheses.
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 2..].split_whitespace().nth(1))
                .and_then(|v| v.parse::<i32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut found = vec![];
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(child, ppid) in &parent_of {
            if ppid == parent && !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// SIGKILLs a process group (no-op for pid 0).
pub fn kill_group(pid: i32) {
    if pid > 0 {
        // SAFETY: signalling a process group we created.
        unsafe { libc::killpg(pid, libc::SIGKILL) };
    }
}

/// The last `n` lines of a log file (empty when unreadable).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs a short-lived tool to completion (initdb, pg_basebackup, migrate), with its output
/// appended to `log`; a failure carries the log's tail.
pub async fn run_tool(
    name: &str,
    program: &Path,
    args: &[&OsStr],
    log: &Path,
    run_as: Option<RunAs>,
    timeout: Duration,
) -> Result<(), ProcessError> {
    let mut cmd = command(program, log, run_as).map_err(|e| ProcessError::Spawn {
        name: name.into(),
        error: e.to_string(),
    })?;
    cmd.args(args);
    let mut proc = NodeProcess::spawn(name, cmd, log)?;
    match tokio::time::timeout(timeout, proc.child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(ProcessError::Failed {
            name: name.into(),
            status: status.to_string(),
            log_tail: log_tail(log, 15),
        }),
        Ok(Err(e)) => Err(ProcessError::Spawn {
            name: name.into(),
            error: e.to_string(),
        }),
        Err(_) => Err(ProcessError::Failed {
            name: name.into(),
            status: format!("timed out after {timeout:?}"),
            log_tail: log_tail(log, 15),
        }),
    }
}

/// A node or tool that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be executed.
    #[error("cannot start {name}: {error}")]
    Spawn {
        /// What was being started.
        name: String,
        /// OS error.
        error: String,
    },
    /// It ran and failed, or exited during start-up.
    #[error("{name} failed ({status}); last log lines:\n{log_tail}")]
    Failed {
        /// What was being started.
        name: String,
        /// Exit status or what happened.
        status: String,
        /// End of its log.
        log_tail: String,
    },
}
