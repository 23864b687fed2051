//! Checkers: pure functions of (history, probes, final state) → findings.
