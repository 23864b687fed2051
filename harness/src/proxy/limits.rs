//! What one API client may hold of the fault proxy's server: how long a request may take to
//! arrive, a response to leave and a connection to sit idle, how many connections the API
//! keeps at once, how big a body and a name may be.
//!
//! The proxies and the API share one process and its file descriptors. Without these limits a
//! few dozen half-sent requests held file descriptors forever, until the proxies could not
//! accept: an API client could take the harness's cross-region links down.

use super::error::ApiError;
use std::time::Duration;

/// The longest proxy or toxic name, in bytes. Longer names were created and then could not be
/// addressed (their URL was too long); 255 is what most systems allow for a name.
pub const MAX_NAME_BYTES: usize = 255;

/// Limits of the API server. [`Default`] is Toxiproxy's (its `http.Server` timeouts) plus the
/// connection cap and body limit of this server; tests use short timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// A request must arrive in full (head and body) within this time of its first byte, or of
    /// the connection's accept for its first request. Toxiproxy: 15 s.
    pub read_timeout: Duration,
    /// A response must be written within this time of its first byte. Toxiproxy: 30 s.
    pub write_timeout: Duration,
    /// A kept-alive connection with no request for this long is closed. Toxiproxy: 60 s.
    pub idle_timeout: Duration,
    /// Connections the API serves at once; beyond it, new ones wait in the kernel's accept
    /// queue (they hold none of this process's file descriptors) until one ends. Never more
    /// than a quarter of the process's file-descriptor limit, so the proxies keep the rest.
    pub max_connections: usize,
    /// The largest request body (a populate of thousands of proxies fits); larger is a 413.
    pub max_body_bytes: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            read_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
            max_body_bytes: 2 * 1024 * 1024,
        }
    }
}

impl ApiLimits {
    /// The connection cap in effect: [`ApiLimits::max_connections`], but at most a quarter of
    /// `fd_limit` (the process's soft `RLIMIT_NOFILE`), and at least 1.
    pub fn connection_cap(&self, fd_limit: u64) -> usize {
        let quarter = usize::try_from(fd_limit / 4).unwrap_or(usize::MAX);
        self.max_connections.min(quarter).max(1)
    }
}

/// The process's soft limit on open file descriptors (unlimited when it cannot be read).
pub(crate) fn fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return u64::MAX;
    }
    limit.rlim_cur
}

/// What a name names, for its error message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NameOf {
    Proxy,
    Toxic,
}

/// Refuses names that could be created but never addressed again: longer than
/// [`MAX_NAME_BYTES`], or `.` and `..`, which every HTTP client folds out of a URL path.
/// Any other name works in a URL with its bytes percent-encoded.
pub(crate) fn check_name(of: NameOf, name: &str) -> Result<(), ApiError> {
    let what = match of {
        NameOf::Proxy => "proxy",
        NameOf::Toxic => "toxic",
    };
    if name.len() > MAX_NAME_BYTES {
        return Err(ApiError::invalid_name(
            what,
            format!(
                "{} bytes long; names are at most {MAX_NAME_BYTES} bytes",
                name.len()
            ),
        ));
    }
    if name == "." || name == ".." {
        return Err(ApiError::invalid_name(
            what,
            format!("'{name}' cannot be addressed in a URL"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_toxiproxys_timeouts() {
        let l = ApiLimits::default();
        assert_eq!(l.read_timeout, Duration::from_secs(15));
        assert_eq!(l.write_timeout, Duration::from_secs(30));
        assert_eq!(l.idle_timeout, Duration::from_secs(60));
        assert_eq!(l.max_connections, 256);
    }

    #[test]
    fn connection_cap_leaves_three_quarters_of_the_fds_to_the_proxies() {
        let l = ApiLimits::default();
        assert_eq!(l.connection_cap(20_000), 256);
        assert_eq!(l.connection_cap(1024), 256);
        assert_eq!(l.connection_cap(128), 32);
        assert_eq!(l.connection_cap(2), 1);
        assert_eq!(l.connection_cap(u64::MAX), 256);
    }

    #[test]
    fn names_longer_than_255_bytes_or_dot_segments_are_refused() {
        assert!(check_name(NameOf::Proxy, &"a".repeat(255)).is_ok());
        // 85 three-byte characters: 255 bytes.
        assert!(check_name(NameOf::Proxy, &"€".repeat(85)).is_ok());
        let err = check_name(NameOf::Proxy, &"€".repeat(86)).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("258 bytes"), "{}", err.message);
        assert!(check_name(NameOf::Toxic, "..").is_err());
        assert!(check_name(NameOf::Toxic, ".").is_err());
        assert!(check_name(NameOf::Toxic, "...").is_ok());
        assert!(check_name(NameOf::Toxic, "a/b?c#d%e f").is_ok());
    }
}
