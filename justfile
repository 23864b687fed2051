# regiondrill tasks. `just --list` shows them.

# The demo: active-passive async vs sync, under region loss and under a replication
# partition followed by region loss, ending in the comparison table and the verdicts.
demo: (deps "demo")
    cargo build --release --workspace
    @if docker info >/dev/null 2>&1; then stacks/images/build.sh; fi
    "${CARGO_TARGET_DIR:-target}/release/regiondrill" run experiments/ap-async-region-loss.toml experiments/ap-sync-region-loss.toml experiments/ap-async-partition-then-region-loss.toml experiments/ap-sync-partition-then-region-loss.toml || test $? -eq 1

# Install what the demo ("demo") or the tests ("test") need and this machine lacks: apt-get and
# pip as root or with passwordless sudo, otherwise it prints the one command to run. Quick
# when everything is present; `demo`, `run`, `matrix` and `test` start with it.
deps PURPOSE="test":
    @stacks/deps.sh --for {{PURPOSE}}

# Run experiment files (or every shipped one): `just run experiments/ap-sync-region-loss.toml`.
run *FILES="experiments/*.toml": (deps "demo")
    cargo build --release --workspace
    @if docker info >/dev/null 2>&1; then stacks/images/build.sh; fi
    "${CARGO_TARGET_DIR:-target}/release/regiondrill" run {{FILES}}

# Compare postures: the seed's matrix (7 postures × 3 faults, 5-8 minutes), or the
# given matrix files / experiment directories. Writes reports/<id>/ with every format.
matrix *INPUTS="experiments/matrix.toml": (deps "demo")
    cargo build --release --workspace
    @if docker info >/dev/null 2>&1; then stacks/images/build.sh; fi
    "${CARGO_TARGET_DIR:-target}/release/regiondrill" matrix {{INPUTS}}

# Re-render every format of run or matrix folders from their stored results.
report +DIRS:
    cargo run --release -- report {{DIRS}}

# Build the container images offline from Debian packages (skipped when up to date).
images *ARGS:
    stacks/images/build.sh {{ARGS}}

# The tests: unit, known-answer and integration tests (real sockets, real processes). The
# workspace is compiled once, in the test profile, and the Docker tests' images hold those
# same binaries. The longest known answers (each 20-50 s) and the nightly's shards-and-compare
# test are left to `just test-long`.
test: (deps "test")
    cargo nextest run --workspace --no-run
    @if docker info >/dev/null 2>&1; then stacks/images/build.sh --binaries "${CARGO_TARGET_DIR:-target}/debug"; else echo "test: no Docker engine answers: the Docker tests will say SKIPPED"; fi
    REGIONDRILL_REQUIRE_BROWSER=1 REGIONDRILL_REQUIRE_PEERS=1 cargo nextest run --workspace --no-fail-fast
    cargo test --workspace --doc

# The long known answers `just test` leaves out (about 6 minutes: the HA managers' other
# scenarios; failback, Patroni and pg_auto_failover in containers). Run it before a release and after touching
# the HA managers, failback or the Docker backend.
test-long: (deps "test")
    cargo nextest run --workspace --no-run
    @if docker info >/dev/null 2>&1; then stacks/images/build.sh --binaries "${CARGO_TARGET_DIR:-target}/debug"; else echo "test-long: no Docker engine answers: the Docker tests will say SKIPPED"; fi
    REGIONDRILL_REQUIRE_PEERS=1 cargo nextest run --workspace --no-fail-fast --profile long

# Benchmarks, each figure printed next to its target (the images hold release binaries).
bench:
    cargo build --release -p regiondrill-app
    @if docker info >/dev/null 2>&1; then stacks/images/build.sh; fi
    cargo bench --bench proxy
    cargo bench --bench checkers
    cargo bench --bench stack
    cargo bench --bench render

# Serve the built-in fault proxy (Toxiproxy API) on 127.0.0.1:8474 until Ctrl-C.
proxy *ARGS:
    cargo run --release -- proxy {{ARGS}}
