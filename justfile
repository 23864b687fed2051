# regiondrill tasks. `just --list` shows them.

# The tests: unit, known-answer and integration tests (real sockets, real processes).
test:
    cargo nextest run --workspace --no-fail-fast
    cargo test --workspace --doc

# Benchmarks, each figure printed next to its target.
bench:
    cargo bench --bench proxy

# Serve the built-in fault proxy (Toxiproxy API) on 127.0.0.1:8474 until Ctrl-C.
proxy *ARGS:
    cargo run --release -- proxy {{ARGS}}
