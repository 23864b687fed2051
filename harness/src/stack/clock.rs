//! Node clocks under libfaketime: how a backend starts a node whose wall clock a
//! `clock_skew` fault shifts while it runs. The node reads its offset from a file on every
//! clock read; monotonic time is left alone (`FAKETIME_DONT_FAKE_MONOTONIC=1`), so its timers
//! and timeouts keep working.

use std::path::{Path, PathBuf};

/// libfaketime's spelling of an offset: seconds with a sign and a decimal point (`+0.500`;
/// `+500ms` would mean 500 minutes, and a decimal comma is silently ignored).
pub fn faketime_offset(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let abs = offset_ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

/// The environment that puts a program's wall clock under the offset in `file` (re-read on
/// every clock read), leaving its monotonic clock alone.
pub fn faketime_env(lib: &Path, file: &Path) -> Vec<(String, String)> {
    vec![
        ("LD_PRELOAD".into(), lib.display().to_string()),
        ("FAKETIME_TIMESTAMP_FILE".into(), file.display().to_string()),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}

/// Debian's path of libfaketime (also inside the offline images).
pub const DEBIAN_LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Where libfaketime is on this machine, if installed (Debian's `libfaketime` package).
pub fn libfaketime() -> Option<PathBuf> {
    let debian = PathBuf::from(DEBIAN_LIBFAKETIME);
    if debian.is_file() {
        return Some(debian);
    }
    std::fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_signed_seconds_with_a_point() {
        assert_eq!(faketime_offset(500), "+0.500");
        assert_eq!(faketime_offset(-2250), "-2.250");
        assert_eq!(faketime_offset(0), "+0.000");
    }
}
