//! Latency: adds a round trip (± jitter) on links, on top of the regions' baseline RTT. Half
//! goes on each direction, so the stated RTT is what a request and its reply pay.

use crate::stack::{StackError, StackLink};
use std::time::Duration;

pub(super) async fn start(
    links: &[&StackLink],
    rtt: Duration,
    jitter: Duration,
) -> Result<(), StackError> {
    for l in links {
        l.link.add_delay(rtt, jitter).await?;
    }
    Ok(())
}

pub(super) async fn heal(links: &[&StackLink]) -> Result<(), StackError> {
    for l in links {
        l.link.remove_delay().await?;
    }
    Ok(())
}
