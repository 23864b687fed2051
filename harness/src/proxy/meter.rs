//! Counting personal-data tokens in the bytes proxies carry (`crate::residency`), off by
//! default. Once [`TokenMeter::enable`]d, every connection opened afterwards feeds each piece
//! it writes out (what really crossed, so nothing a black hole swallowed) to a
//! [`TokenCounter`] of its stream, which keeps less than a token of the stream (a token split
//! across two reads still counts once) and never the payload; counts are added to the meter,
//! per proxy and stream, only when a piece held a token.
//!
//! A counting connection never goes direct (`splice(2)` moves bytes without their reaching
//! user space): it copies, as under any toxic. The cost is measured in the proxy bench.

use super::toxic::Stream;
use crate::residency::TokenCounter;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Tokens by proxy and stream, then by user.
pub type TokenCounts = BTreeMap<(String, Stream), BTreeMap<u32, u64>>;

/// One row of [`TokenCounts`] as the API carries it (`GET /regiondrill/tokens`: a
/// regiondrill extension of Toxiproxy's API, so that a proxy in a container counts too).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenRow {
    /// The proxy (link) name.
    pub proxy: String,
    /// Which direction.
    pub stream: Stream,
    /// The user whose tokens these are.
    pub user: u32,
    /// How many tokens.
    pub tokens: u64,
}

/// Counts as rows, in order.
pub fn to_rows(counts: &TokenCounts) -> Vec<TokenRow> {
    counts
        .iter()
        .flat_map(|((proxy, stream), by_user)| {
            by_user.iter().map(move |(&user, &tokens)| TokenRow {
                proxy: proxy.clone(),
                stream: *stream,
                user,
                tokens,
            })
        })
        .collect()
}

/// Rows back into counts.
pub fn from_rows(rows: Vec<TokenRow>) -> TokenCounts {
    let mut counts = TokenCounts::new();
    for r in rows {
        *counts
            .entry((r.proxy, r.stream))
            .or_default()
            .entry(r.user)
            .or_default() += r.tokens;
    }
    counts
}

/// One stream's counts, by user: shared by every connection of that proxy and direction.
type StreamCounts = Arc<Mutex<BTreeMap<u32, u64>>>;

/// One server's token counts.
#[derive(Debug, Default)]
pub struct TokenMeter {
    enabled: AtomicBool,
    streams: Mutex<BTreeMap<(String, Stream), StreamCounts>>,
}

impl TokenMeter {
    /// Counts on every connection opened from now on.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Whether new connections count.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// What was counted so far (streams that carried no token are left out).
    pub fn counts(&self) -> TokenCounts {
        let streams = self.streams.lock().expect("meter lock");
        streams
            .iter()
            .map(|(k, v)| (k.clone(), v.lock().expect("stream lock").clone()))
            .filter(|(_, by_user)| !by_user.is_empty())
            .collect()
    }

    /// The counts of `proxy`'s `stream`, made on first use.
    fn stream(&self, proxy: &str, stream: Stream) -> StreamCounts {
        let mut streams = self.streams.lock().expect("meter lock");
        streams
            .entry((proxy.to_string(), stream))
            .or_default()
            .clone()
    }
}

/// One stream's counter, feeding its proxy's meter. A piece's tokens are counted straight
/// into the stream's shared counts under their own lock, with no map or name made per piece.
pub(crate) struct StreamMeter {
    counts: StreamCounts,
    counter: TokenCounter,
}

impl StreamMeter {
    /// A counter for `stream` of `proxy`, when `meter` is enabled.
    pub(crate) fn new(meter: &Arc<TokenMeter>, proxy: &Arc<str>, stream: Stream) -> Option<Self> {
        meter.enabled().then(|| StreamMeter {
            counts: meter.stream(proxy, stream),
            counter: TokenCounter::default(),
        })
    }

    /// Counts the tokens `piece` completes; only a piece holding one takes the lock.
    pub(crate) fn feed(&mut self, piece: &[u8]) {
        let shared = &self.counts;
        let mut counts = None;
        self.counter.feed_with(piece, |user| {
            let c = counts.get_or_insert_with(|| shared.lock().expect("stream lock"));
            *c.entry(user).or_default() += 1;
        });
    }
}
