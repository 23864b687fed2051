# The sample app image for users with a registry (the offline build is build.sh): Debian's
# slim base, libfaketime (clock-skew faults), and this repository's binaries, built first with
# `cargo build --release --workspace`. Build from the repository root:
#   docker build -f stacks/images/app.Dockerfile -t regiondrill/app:latest .
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libfaketime \
    && rm -rf /var/lib/apt/lists/*
COPY target/release/regiondrill-app target/release/regiondrill /usr/local/bin/
ENTRYPOINT ["regiondrill-app"]
