//! A cross-region link: one proxy on a fault proxy, and the faults the harness puts on it.
//!
//! Every fault here is a toxic (or the proxy's `enabled` flag) set through the Toxiproxy API,
//! so a real `toxiproxy-server` and the built-in one behave alike, and [`Link::heal`] undoes
//! all of them in one call.

use super::client::{ClientError, ProxyInfo, ToxiproxyClient};
use super::toxic::{Latency, Stream, Timeout, Toxic, ToxicKind};
use std::time::Duration;

/// Names of the toxics a link owns, so re-applying a fault replaces it instead of conflicting.
/// The baseline round trip is not a fault: [`Link::heal`] keeps it.
/// The prefix of every toxic regiondrill adds.
const OURS: &str = "regiondrill_";
const RTT: &str = "regiondrill_rtt";
const DELAY: &str = "regiondrill_delay";
const PARTITION: &str = "regiondrill_partition";

/// Which bytes a black-hole partition stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways.
    Both,
    /// One way only: `Upstream` stops what the connecting side sends, `Downstream` what it
    /// receives. A one-way cut of a TCP link looks to both ends like a stall.
    Only(Stream),
}

impl Direction {
    fn streams(self) -> &'static [Stream] {
        match self {
            Direction::Both => &[Stream::Upstream, Stream::Downstream],
            Direction::Only(Stream::Upstream) => &[Stream::Upstream],
            Direction::Only(Stream::Downstream) => &[Stream::Downstream],
        }
    }
}

/// How a partition shows itself to the programs on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// Bytes vanish (a `timeout` toxic with timeout 0): open connections stall, new ones
    /// connect but nothing comes back, as with a dropped route. On heal, connections that
    /// carried the partition are closed and clients reconnect (their streams have holes).
    BlackHole(Direction),
    /// The link is down (the proxy is disabled): open connections are closed and new ones are
    /// refused at once, as when a region's endpoint is gone.
    Refuse,
}

/// One proxy, seen as a link between two regions.
#[derive(Debug, Clone)]
pub struct Link {
    client: ToxiproxyClient,
    name: String,
}

impl Link {
    /// The link for proxy `name` on the fault proxy `client` talks to.
    pub fn new(client: ToxiproxyClient, name: impl Into<String>) -> Self {
        Link {
            client,
            name: name.into(),
        }
    }

    /// The proxy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The proxy as the API reports it now.
    pub async fn info(&self) -> Result<ProxyInfo, ClientError> {
        self.client.proxy(&self.name).await
    }

    /// Sets the link's baseline round trip (the distance between the regions): each direction
    /// is delayed `rtt / 2 ± jitter / 2`, so a request and its reply pay `rtt ± jitter`.
    /// Replaces an earlier baseline; [`Link::heal`] keeps it. Toxiproxy delays data only, not
    /// the TCP handshake.
    pub async fn set_rtt(&self, rtt: Duration, jitter: Duration) -> Result<(), ClientError> {
        self.delay(RTT, rtt, jitter).await
    }

    /// Removes the baseline round trip.
    pub async fn clear_rtt(&self) -> Result<(), ClientError> {
        self.remove_both(RTT).await
    }

    /// Adds a round trip on top of the baseline, as a fault (healed by [`Link::heal`]).
    pub async fn add_delay(&self, rtt: Duration, jitter: Duration) -> Result<(), ClientError> {
        self.delay(DELAY, rtt, jitter).await
    }

    /// Removes the delay set by [`Link::add_delay`].
    pub async fn remove_delay(&self) -> Result<(), ClientError> {
        self.remove_both(DELAY).await
    }

    async fn delay(&self, base: &str, rtt: Duration, jitter: Duration) -> Result<(), ClientError> {
        let rtt_ms = rtt.as_millis() as u64;
        let jitter_ms = jitter.as_millis() as u64 / 2;
        let up = rtt_ms / 2;
        for (stream, latency) in [(Stream::Upstream, up), (Stream::Downstream, rtt_ms - up)] {
            let kind = ToxicKind::Latency(Latency {
                latency,
                jitter: jitter_ms,
            });
            self.replace(base, kind, stream).await?;
        }
        Ok(())
    }

    async fn remove_both(&self, base: &str) -> Result<(), ClientError> {
        for stream in [Stream::Upstream, Stream::Downstream] {
            self.remove_if_present(&toxic_name(base, stream)).await?;
        }
        Ok(())
    }

    /// Cuts the link.
    pub async fn partition(&self, how: Partition) -> Result<(), ClientError> {
        match how {
            Partition::Refuse => self.client.set_enabled(&self.name, false).await.map(drop),
            Partition::BlackHole(direction) => {
                for &stream in direction.streams() {
                    let kind = ToxicKind::Timeout(Timeout { timeout: 0 });
                    self.replace(PARTITION, kind, stream).await?;
                }
                Ok(())
            }
        }
    }

    /// Undoes a partition: the partition toxics removed, proxy enabled.
    pub async fn heal_partition(&self) -> Result<(), ClientError> {
        self.remove_both(PARTITION).await?;
        self.client.set_enabled(&self.name, true).await.map(drop)
    }

    /// Undoes every fault on the link: every toxic regiondrill added but the baseline round
    /// trip removed, proxy enabled. Toxics someone else added (a target's own, on its
    /// Toxiproxy) are left alone.
    pub async fn heal(&self) -> Result<(), ClientError> {
        for t in self.client.toxics(&self.name).await? {
            if t.name.starts_with(OURS) && !t.name.starts_with(RTT) {
                self.remove_if_present(&t.name).await?;
            }
        }
        self.client.set_enabled(&self.name, true).await.map(drop)
    }

    async fn replace(
        &self,
        base: &str,
        kind: ToxicKind,
        stream: Stream,
    ) -> Result<(), ClientError> {
        let mut toxic = Toxic::new(kind, stream);
        toxic.name = toxic_name(base, stream);
        self.remove_if_present(&toxic.name).await?;
        self.client.add_toxic(&self.name, &toxic).await.map(drop)
    }

    async fn remove_if_present(&self, toxic: &str) -> Result<(), ClientError> {
        match self.client.remove_toxic(&self.name, toxic).await {
            Err(e) if e.status() == Some(404) => Ok(()),
            other => other,
        }
    }
}

fn toxic_name(base: &str, stream: Stream) -> String {
    format!("{base}_{}", stream.as_str())
}
