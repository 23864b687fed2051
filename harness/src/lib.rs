//! regiondrill: a chaos-testing harness for multi-region stacks.
//!
//! # Layout
//! - [`proxy`]: the fault proxy. A built-in server speaking Toxiproxy's HTTP API, one async
//!   client for it and for a real Toxiproxy, and [`proxy::Link`], the cross-region link faults.

pub mod proxy;
