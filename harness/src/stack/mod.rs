//! Stacks: the system under test, brought up by a backend.

pub mod topology;
