//! Reports: rendered only from stored results (`results.json`), never from a live stack.

pub mod terminal;
