//! `noop`: passes data through untouched. Toxiproxy registers it; clients use it to test the
//! API itself.

/// The `noop` toxic has no attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Noop;
