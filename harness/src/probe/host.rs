//! The harness's own health: a drill emulates every region on one host, so a host too busy
//! to keep time makes every latency and every failover timing a measurement of the host, not
//! of the posture. Every 250 ms this probe records
//! - **timer lag**: how late a 10 ms sleep on the harness's runtime woke (the worst of the
//!   sleeps in the window) — the runtime's own delay, which every operation's timestamps
//!   and every health check share;
//! - **CPU busy**: the share of the CPU time available to the harness's cgroup that was used
//!   (cgroup v2 `cpu.stat` against `cpu.max` when a quota is set), else the host's busy share
//!   from `/proc/stat`.
//!
//! The open-loop generator's own lateness (an operation issued after its planned time) is
//! in the history: each operation carries its planned time.

use crate::history::HostSample;
use crate::record::Clock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often a sample is recorded.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// The sleep whose oversleep is the timer lag.
pub const TICK: Duration = Duration::from_millis(10);

/// Samples until `cancel`, appending to `out`.
pub async fn watch(clock: Clock, out: Arc<Mutex<Vec<HostSample>>>, cancel: CancellationToken) {
    let mut cpu = CpuMeter::new();
    loop {
        let window = Instant::now();
        let mut worst = Duration::ZERO;
        while window.elapsed() < INTERVAL {
            let t = Instant::now();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            worst = worst.max(t.elapsed().saturating_sub(TICK));
        }
        out.lock().expect("host lock").push(HostSample {
            at_ns: clock.now(),
            timer_lag_ns: worst.as_nanos() as u64,
            cpu_busy: cpu.busy_since_last(),
        });
    }
}

/// CPU time used since the last reading, as a share of what was available.
struct CpuMeter {
    source: CpuSource,
    last: Option<(u64, u64)>,
}

/// Where CPU use is read.
enum CpuSource {
    /// cgroup v2 with a CPU quota: (usage µs, quota µs per period, period µs).
    Cgroup { quota_us: u64, period_us: u64 },
    /// `/proc/stat`'s first line: all CPUs of the host.
    ProcStat,
}

impl CpuMeter {
    fn new() -> CpuMeter {
        let source = cgroup_quota()
            .map(|(quota_us, period_us)| CpuSource::Cgroup {
                quota_us,
                period_us,
            })
            .unwrap_or(CpuSource::ProcStat);
        let mut m = CpuMeter { source, last: None };
        m.last = m.read();
        m
    }

    /// (busy, total) in the source's unit, cumulative.
    fn read(&self) -> Option<(u64, u64)> {
        match self.source {
            CpuSource::ProcStat => proc_stat(),
            CpuSource::Cgroup { .. } => {
                let usage = cgroup_usage_us()?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_micros() as u64;
                Some((usage, now))
            }
        }
    }

    /// The busy share since the last call, in [0, 1] (None when unreadable).
    fn busy_since_last(&mut self) -> Option<f64> {
        let now = self.read()?;
        let (busy0, total0) = self.last.replace(now)?;
        let (busy, total) = (now.0.saturating_sub(busy0), now.1.saturating_sub(total0));
        if total == 0 {
            return None;
        }
        let share = match self.source {
            CpuSource::ProcStat => busy as f64 / total as f64,
            // Wall µs × CPUs allowed = the CPU µs available.
            CpuSource::Cgroup {
                quota_us,
                period_us,
            } => busy as f64 / (total as f64 * quota_us as f64 / period_us as f64),
        };
        Some(share.clamp(0.0, 1.0))
    }
}

/// `/proc/stat`'s aggregate line: (busy, total) jiffies.
fn proc_stat() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    let total: u64 = v.iter().take(8).sum();
    Some((total.saturating_sub(idle), total))
}

/// The harness's cgroup v2 CPU quota, when one is set: (quota µs, period µs).
fn cgroup_quota() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(cgroup_dir()?.join("cpu.max")).ok()?;
    let mut parts = text.split_whitespace();
    let quota = parts.next()?.parse().ok()?; // "max" means no quota
    let period = parts.next()?.parse().ok()?;
    Some((quota, period))
}

fn cgroup_usage_us() -> Option<u64> {
    let text = std::fs::read_to_string(cgroup_dir()?.join("cpu.stat")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

/// The harness's own cgroup v2 directory.
fn cgroup_dir() -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_reads_busy_below_total() {
        let (busy, total) = proc_stat().expect("/proc/stat");
        assert!(busy <= total && total > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn samples_come_every_interval_with_a_small_lag_on_an_idle_runtime() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch(Clock::start(), out.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_millis(800)).await;
        stop.cancel();
        task.await.unwrap();
        let samples = out.lock().unwrap().clone();
        assert!((2..=4).contains(&samples.len()), "{samples:?}");
        for s in &samples {
            assert!(
                s.cpu_busy.is_some_and(|b| (0.0..=1.0).contains(&b)),
                "{s:?}"
            );
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_shows_up_as_timer_lag() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch(Clock::start(), out.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Block the only runtime thread for 150 ms: the probe's sleep wakes that late.
        std::thread::sleep(Duration::from_millis(150));
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
        task.await.unwrap();
        let worst = out
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.timer_lag_ns)
            .max()
            .unwrap();
        assert!(
            worst >= 100_000_000,
            "timer lag {worst} ns after a 150 ms block"
        );
    }
}
