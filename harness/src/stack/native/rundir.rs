//! The per-run temporary directory of the native backend (data directories, sockets, logs),
//! and the sweep that removes what a killed harness left behind.
//!
//! Each run directory holds an `owner` file (the harness's pid and start time) and a `pids`
//! file (the process groups it started, with their start times). A later run removes
//! directories whose owner is gone, first killing any recorded process group that is still
//! the same process (same start time: a reused pid is left alone).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable overriding where run directories go.
pub const TMP_ENV: &str = "REGIONDRILL_TMP";

/// A run's temporary directory; removed on drop unless kept.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    keep: std::sync::atomic::AtomicBool,
}

impl RunDir {
    /// Creates `<base>/<run_id>` (mode 0755 so an unprivileged PostgreSQL can traverse it).
    pub fn create(run_id: &str) -> std::io::Result<RunDir> {
        let base = base_dir();
        std::fs::create_dir_all(&base)?;
        let path = base.join(run_id);
        std::fs::create_dir(&path)?;
        set_mode(&base, 0o755)?;
        set_mode(&path, 0o755)?;
        let mut owner = std::fs::File::create(path.join("owner"))?;
        writeln!(
            owner,
            "{} {}",
            std::process::id(),
            start_time(std::process::id() as i32).unwrap_or(0)
        )?;
        Ok(RunDir {
            path,
            keep: false.into(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep the directory after the run (for inspection).
    pub fn keep(&self) {
        self.keep.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records a process group started for this run.
    pub fn record_pid(&self, pid: i32) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.join("pids"))
        {
            let _ = writeln!(f, "{pid} {}", start_time(pid).unwrap_or(0));
        }
    }
}

impl Drop for RunDir {
    /// Removes the directory. Its processes are dead by now; a few retries cover a file one of
    /// them created in the instant before it died (`remove_dir_all` then finds a directory
    /// not empty).
    fn drop(&mut self) {
        if self.keep.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        for _ in 0..20 {
            match std::fs::remove_dir_all(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                _ => return,
            }
        }
        tracing::warn!(dir = %self.path.display(), "could not remove the run directory");
    }
}

/// Where run directories go: `$REGIONDRILL_TMP`; else `/dev/shm/regiondrill-<uid>` when
/// `/dev/shm` is memory with at least 1 GiB free; else `<tmp>/regiondrill-<uid>`. In memory,
/// copying a cluster at bring-up and PostgreSQL's writes never wait for a disk (with
/// `fsync=off` they never reach one on purpose anyway): on a VM's disk a 28 MB copy took from
/// 0.05 s to 1 s depending on what else was being written.
pub fn base_dir() -> PathBuf {
    if let Some(p) = std::env::var_os(TMP_ENV) {
        return PathBuf::from(p);
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let name = format!("regiondrill-{uid}");
    let shm = Path::new("/dev/shm");
    if free_bytes(shm).is_some_and(|free| free >= 1 << 30) {
        return shm.join(name);
    }
    std::env::temp_dir().join(name)
}

/// Bytes available to unprivileged users on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed struct for the result.
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0)
        .then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// Removes run directories whose harness is gone, killing leftovers first. Returns how many
/// directories were removed.
pub fn sweep() -> usize {
    let Ok(entries) = std::fs::read_dir(base_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(owner) = std::fs::read_to_string(dir.join("owner")) else {
            continue;
        };
        let mut parts = owner
            .split_whitespace()
            .map(|p| p.parse::<u64>().unwrap_or(0));
        let (pid, started) = (parts.next().unwrap_or(0) as i32, parts.next().unwrap_or(0));
        if pid > 0 && start_time(pid) == Some(started) {
            continue; // its harness is still running
        }
        for line in std::fs::read_to_string(dir.join("pids"))
            .unwrap_or_default()
            .lines()
        {
            let mut parts = line
                .split_whitespace()
                .map(|p| p.parse::<u64>().unwrap_or(0));
            let (pgid, started) = (parts.next().unwrap_or(0) as i32, parts.next().unwrap_or(0));
            match start_time(pgid) {
                // Still the process the run started: kill it, then what it leaves.
                Some(t) if pgid > 0 && t == started => {
                    super::process::kill_group(pgid);
                    super::process::remove_faketime_segments(pgid);
                }
                None => super::process::remove_faketime_segments(pgid),
                // The pid was reused by another process: not ours.
                Some(_) => {}
            }
        }
        kill_detached_postmasters(&dir);
        if std::fs::remove_dir_all(&dir).is_ok() {
            tracing::info!(dir = %dir.display(), "removed the run directory of a harness that is gone");
            removed += 1;
        }
    }
    removed
}

/// A process's start time (clock ticks since boot), to tell a live owner from a reused pid.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Kills what a PostgreSQL started by Patroni left in `dir`: Patroni detaches its postmaster,
/// which dies with Patroni's tree while the harness lives, but outlives a `kill -9`'d harness
/// (Patroni dies of its parent-death signal; the postmaster, re-parented to init, does not —
/// nor one that Patroni's start-up helper launches just after). Found by their command lines,
/// which name their data directory in `dir`, or their environment (pg_autoctl's services,
/// which outlive their supervisor and restart PostgreSQL); processes of other runs are left
/// alone.
fn kill_detached_postmasters(dir: &Path) {
    let here = format!("{}/", dir.display());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        // pg_autoctl's services retitle themselves ("pg_autoctl: node active"): their
        // environment names the node's directory (`XDG_CONFIG_HOME`, …).
        let environ = std::fs::read(p.path().join("environ")).unwrap_or_default();
        let names = |b: &[u8]| String::from_utf8_lossy(b).contains(&here);
        if pid > 0 && (names(&cmdline) || names(&environ)) {
            // Not a process group leader (Patroni's helper made the session): the tree
            // below it, then itself.
            super::process::kill_tree(pid);
            // SAFETY: a process of a dead run of ours, named by its data directory.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable_and_stable() {
        let me = std::process::id() as i32;
        let a = start_time(me).unwrap();
        assert_eq!(start_time(me), Some(a));
    }
}
