//! Personal data, where it goes, and how long it takes to erase it.
//!
//! With a `[residency]` section an experiment's users have personal data: each user writes a
//! profile (`PUT /users/{id}/profile`, see `stacks/app/README.md`) whose email and name carry
//! a **token** unique to the user and the run, `rdpii-<user, 7 digits>-<seed, 8 hex digits>`
//! (22 bytes, e.g. `rdpii-0000017-00000001`). Profiles are then read like any other data
//! (cache fills included), and some users ask for erasure (`DELETE /users/{id}`) at planned
//! times. Because the token is plain text wherever the data is — a table row, a WAL record
//! streamed to a replica, a logical replication message, a Redis value, an HTTP body — the
//! harness can find it without knowing how the stack stores or ships it:
//!
//! - **at rest** ([`scan`]): after the run, every table of every region's database (primary
//!   or replica) and every key of every region's cache is searched for tokens;
//! - **in flight**: the built-in fault proxy counts tokens in the bytes crossing each link,
//!   by direction ([`TokenCounter`]; counted, never stored);
//! - **erasure** (`crate::probe::erasure`): from a user's planned erasure on, its profile
//!   tables and cache entries in every region are polled until no copy is left.
//!
//! A **residency violation** is a user's token found in a region its home region's policy
//! does not allow (`[residency] allow`; by default a user's personal data may only be in its
//! home region). What this proves, and what not: a drill checks the paths this stack took
//! during this run — the tables, caches and links the harness can see — under this workload.
//! It is evidence about an architecture, not a legal opinion: backups, logs, the operating
//! system's files and anything outside the stack are not searched, and a path the workload
//! did not exercise (a traveller, a support tool) is not covered.

pub mod plan;
pub mod scan;
pub mod workload;

pub use plan::PersonalPlan;
pub use scan::scan;

/// The app's tables `[residency] personal_tables` may name (without a region suffix).
pub const APP_TABLES: [&str; 3] = ["profiles", "kv", "writes"];

/// Every token starts with this.
pub const TOKEN_PREFIX: &[u8] = b"rdpii-";

/// The length of a token in bytes: `rdpii-` + 7 digits + `-` + 8 hex digits.
pub const TOKEN_LEN: usize = 22;

/// The personal-data token of `user` in a run with `seed`.
pub fn token(user: u32, seed: u64) -> String {
    format!("rdpii-{user:07}-{:08x}", seed as u32)
}

/// The user of the token at the start of `bytes`, if a whole token is there.
fn token_at(bytes: &[u8]) -> Option<u32> {
    let t = bytes.get(..TOKEN_LEN)?;
    if !t.starts_with(TOKEN_PREFIX) || t[13] != b'-' {
        return None;
    }
    let digits = &t[6..13];
    let hex = &t[14..22];
    if !digits.iter().all(u8::is_ascii_digit) || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The prefix's searcher, built once (memchr's SIMD substring search: scanning for the first
/// byte alone stops at every `r` of ordinary text and cost the proxy 15 % of its throughput).
static PREFIX: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(TOKEN_PREFIX));

/// Calls `found` with the user of every whole token in `bytes`, in order.
pub fn tokens_in(bytes: &[u8], mut found: impl FnMut(u32)) {
    let mut i = 0;
    while i + TOKEN_LEN <= bytes.len() {
        let Some(at) = PREFIX.find(&bytes[i..]) else {
            return;
        };
        let start = i + at;
        match token_at(&bytes[start..]) {
            Some(user) => {
                found(user);
                i = start + TOKEN_LEN;
            }
            None => i = start + 1,
        }
    }
}

/// Counts the tokens in a stream of chunks, as a proxy reads them: a token split across two
/// reads counts once, because the last `TOKEN_LEN − 1` bytes of what came before are kept
/// (never more: the stream itself is not stored).
#[derive(Debug, Default, Clone)]
pub struct TokenCounter {
    /// The last bytes seen (at most `TOKEN_LEN − 1`).
    tail: Vec<u8>,
    /// Tokens counted, by user.
    pub by_user: std::collections::BTreeMap<u32, u64>,
}

impl TokenCounter {
    /// Counts the tokens `chunk` completes: those that began in the bytes before it, then
    /// those inside it.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut by_user = std::mem::take(&mut self.by_user);
        self.feed_with(chunk, |u| *by_user.entry(u).or_default() += 1);
        self.by_user = by_user;
    }

    /// Like [`TokenCounter::feed`], handing each token's user to `found` instead of
    /// [`TokenCounter::by_user`].
    pub fn feed_with(&mut self, chunk: &[u8], mut found: impl FnMut(u32)) {
        let keep = TOKEN_LEN - 1;
        if !self.tail.is_empty() {
            // Tokens spanning the boundary start in the tail (shorter than a token) and end in
            // the chunk's first bytes; none fits in either alone.
            let mut joined = std::mem::take(&mut self.tail);
            let head = chunk.len().min(keep);
            let start_len = joined.len();
            joined.extend_from_slice(&chunk[..head]);
            tokens_in(&joined, &mut found);
            joined.truncate(start_len);
            self.tail = joined;
        }
        tokens_in(chunk, &mut found);
        if chunk.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
    }

    /// Tokens counted in all.
    pub fn total(&self) -> u64 {
        self.by_user.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(bytes: &[u8]) -> Vec<u32> {
        let mut v = Vec::new();
        tokens_in(bytes, |u| v.push(u));
        v
    }

    #[test]
    fn tokens_are_fixed_width_and_found_anywhere() {
        assert_eq!(token(17, 1), "rdpii-0000017-00000001");
        assert_eq!(token(17, 1).len(), TOKEN_LEN);
        assert_eq!(token(3, 0x1_0000_00ab), "rdpii-0000003-000000ab");
        let text = format!(
            "{{\"email\":\"{}@example.org\",\"name\":\"User {}\"}} rdpii-00x rr{}",
            token(7, 9),
            token(7, 9),
            token(1_000_000, 9)
        );
        assert_eq!(users(text.as_bytes()), vec![7, 7, 1_000_000]);
        // Near misses are not tokens.
        assert!(users(b"rdpii-000001-00000001 rdpii-0000001x00000001").is_empty());
        assert!(users(b"rdpii-0000001-0000000g").is_empty());
        assert!(users(b"rdpii-0000001-0000000").is_empty());
        assert!(users(b"").is_empty());
    }

    #[test]
    fn a_token_split_across_reads_counts_once() {
        let stream = format!("xx{}yy{}{}z", token(5, 1), token(6, 1), token(5, 1));
        let bytes = stream.as_bytes();
        // Every way of cutting the stream in two, three and one-byte reads counts the same.
        for cut in 0..=bytes.len() {
            let mut c = TokenCounter::default();
            c.feed(&bytes[..cut]);
            c.feed(&bytes[cut..]);
            assert_eq!(c.by_user, [(5, 2), (6, 1)].into(), "cut at {cut}");
            for cut2 in cut..=bytes.len() {
                let mut c = TokenCounter::default();
                c.feed(&bytes[..cut]);
                c.feed(&bytes[cut..cut2]);
                c.feed(&bytes[cut2..]);
                assert_eq!(c.total(), 3, "cuts at {cut}, {cut2}");
            }
        }
        let mut c = TokenCounter::default();
        for b in bytes {
            c.feed(std::slice::from_ref(b));
        }
        assert_eq!(c.by_user, [(5, 2), (6, 1)].into());
        assert!(c.tail.len() < TOKEN_LEN);
    }

    #[test]
    fn the_counter_keeps_less_than_a_token() {
        let mut c = TokenCounter::default();
        c.feed(&[b'a'; 10_000]);
        assert_eq!(c.tail.len(), TOKEN_LEN - 1);
        assert_eq!(c.total(), 0);
    }
}
