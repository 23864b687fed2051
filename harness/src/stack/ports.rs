//! Ports for the native backend's nodes.
//!
//! A node's port must be chosen before the node starts (it is in every DSN and proxy). A
//! port picked by binding port 0 comes from the kernel's ephemeral range — the same range
//! every outgoing connection on the host draws from, so on a busy machine another program's
//! connection can take it before the node binds it. Ports are therefore picked at random
//! *below* the ephemeral range and checked free at the moment of picking.

use rand::Rng;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};

/// Lowest port handed out.
const LOW: u16 = 10_000;

/// Hands out distinct free ports below the ephemeral range.
#[derive(Debug, Default)]
pub struct PortAllocator {
    given: BTreeSet<u16>,
}

impl PortAllocator {
    /// A fresh allocator.
    pub fn new() -> Self {
        Self::default()
    }

    /// A port on 127.0.0.1 that is free now and not given out before by this allocator.
    pub fn allocate(&mut self) -> std::io::Result<u16> {
        let high = ephemeral_low().max(LOW + 1_000);
        let mut rng = rand::rng();
        for _ in 0..1_000 {
            let port = rng.random_range(LOW..high);
            if !self.given.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
            {
                self.given.insert(port);
                return Ok(port);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("no free port in {LOW}..{high}"),
        ))
    }
}

/// The start of the kernel's ephemeral port range (32768 when it cannot be read).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let mut a = PortAllocator::new();
        let ports: Vec<u16> = (0..50).map(|_| a.allocate().unwrap()).collect();
        let distinct: BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), 50);
        assert!(
            ports
                .iter()
                .all(|p| *p >= LOW && *p < ephemeral_low().max(LOW + 1_000))
        );
    }
}
