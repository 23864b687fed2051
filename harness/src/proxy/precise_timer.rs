//! A sleep with sub-millisecond precision, for latency toxics.
//!
//! Tokio's timer wheel rounds deadlines up to the next millisecond, which made a 40 ms
//! latency toxic add 41.4 ms at p50. A `timerfd` is a kernel high-resolution timer that the
//! reactor can wait on: the wake-up lands within tens of microseconds of the deadline.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// One re-armable high-resolution timer (one per stream that needs it).
pub(crate) struct PreciseTimer {
    fd: AsyncFd<OwnedFd>,
}

impl PreciseTimer {
    /// A disarmed timer.
    pub fn new() -> io::Result<PreciseTimer> {
        // SAFETY: creates a new fd we own.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the OwnedFd moves into the AsyncFd and stays open for its whole lifetime.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        Ok(PreciseTimer { fd })
    }

    /// Sleeps until `at`. Cancel-safe: re-arming discards an expiry left by a dropped sleep.
    pub async fn sleep_until(&mut self, at: Instant) -> io::Result<()> {
        let now = Instant::now();
        if at <= now {
            return Ok(());
        }
        let wait = at - now;
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: arms our own timerfd with a valid itimerspec; this also resets its count.
        if unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) }
            != 0
        {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut guard = self.fd.readable().await?;
            let read = guard.try_io(|fd| {
                let mut ticks = [0u8; 8];
                // SAFETY: reads 8 bytes into a buffer we own.
                let n = unsafe { libc::read(fd.as_raw_fd(), ticks.as_mut_ptr().cast(), 8) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match read {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_close_to_the_deadline() {
        let mut t = PreciseTimer::new().unwrap();
        let mut late = Vec::new();
        for _ in 0..20 {
            let at = Instant::now() + Duration::from_millis(3);
            t.sleep_until(at).await.unwrap();
            let now = Instant::now();
            assert!(now >= at);
            late.push(now - at);
        }
        late.sort();
        assert!(
            late[10] < Duration::from_micros(900),
            "median lateness {:?}",
            late[10]
        );
    }

    #[tokio::test]
    async fn a_dropped_sleep_does_not_wake_the_next_one_early() {
        let mut t = PreciseTimer::new().unwrap();
        let _ = tokio::time::timeout(
            Duration::from_millis(1),
            t.sleep_until(Instant::now() + Duration::from_micros(500)),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(2)).await; // the old expiry has fired by now
        let at = Instant::now() + Duration::from_millis(20);
        t.sleep_until(at).await.unwrap();
        assert!(Instant::now() >= at);
    }
}
