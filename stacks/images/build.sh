#!/usr/bin/env bash
# Builds regiondrill's container images with no registry, from Debian's packages:
#   regiondrill/base:<hash>  Debian bookworm (minbase) with PostgreSQL 15, Redis, libfaketime and
#                            the HA managers (Patroni, etcd, HAProxy, pg_auto_failover),
#                            made by mmdebstrap and `docker import`;
#   regiondrill/stack:<hash> the base plus the `regiondrill` and `regiondrill-app` binaries and
#                            an empty PostgreSQL cluster (copied by database containers), tagged regiondrill/postgres:15, regiondrill/redis:7,
#                            regiondrill/app:latest and regiondrill/toxiproxy:latest.
# Each step is skipped when an image built from the same inputs exists (`--force` rebuilds).
# Users with a registry can use the official postgres, redis and ghcr.io/shopify/toxiproxy
# images instead (see the README); the app image always comes from here.
#
#   build.sh [--force] [--binaries DIR]
# --binaries DIR: put the `regiondrill` and `regiondrill-app` already built in DIR into the
# image instead of building them in release (`just test` passes its own test build's, so
# the tests compile the workspace once; `just demo` and `just bench` use release binaries).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
force=
binaries=
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=--force ;;
        --binaries) binaries=${2:?--binaries needs a directory}; shift ;;
        *) echo "images: unknown argument $1 (usage: build.sh [--force] [--binaries DIR])" >&2; exit 2 ;;
    esac
    shift
done

command -v docker >/dev/null || { echo "images: docker is not installed" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "images: no Docker engine answers" >&2; exit 2; }

suite=bookworm
packages=postgresql-15,postgresql-client-15,redis-server,faketime,libfaketime,procps,ca-certificates,patroni,etcd-server,haproxy,postgresql-15-auto-failover,pg-auto-failover-cli
base_hash=$(printf '%s\n' "$suite" "$packages" "$(sed -n '/^# base recipe/,/^# end of base recipe/p' "$0")" | sha256sum | cut -c1-12)
base=regiondrill/base:$base_hash

# The Debian mirror apt already uses (REGIONDRILL_DEBIAN_MIRROR overrides).
mirror=${REGIONDRILL_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | awk '{print $2}' | head -n1 || true)
    [ -n "$mirror" ] || mirror=$(grep -hE '^\s*deb\s' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1 || true)
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi

if [ "$force" = --force ] || ! docker image inspect "$base" >/dev/null 2>&1; then
    command -v mmdebstrap >/dev/null || { echo "images: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 2; }
    echo "images: building $base from $mirror (about a minute)"
    start=$(date +%s)
    # base recipe
    mmdebstrap --quiet --variant=minbase --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='chroot "$1" pg_dropcluster 15 main || true' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        "$suite" - "deb $mirror $suite main" |
        docker import \
            --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change "LABEL regiondrill.inputs=$base_hash" \
            - "$base" >/dev/null
    # end of base recipe
    echo "images: $base built in $(( $(date +%s) - start )) s ($(docker image inspect -f '{{.Size}}' "$base" | awk '{printf "%.0f MB", $1/1e6}'))"
else
    echo "images: $base is up to date"
fi

if [ -n "$binaries" ]; then
    release=$binaries
    for b in regiondrill regiondrill-app; do
        [ -x "$release/$b" ] || { echo "images: $release/$b is missing (build it first)" >&2; exit 2; }
    done
else
    cargo build --release --quiet -p regiondrill -p regiondrill-app
    release="${CARGO_TARGET_DIR:-target}/release"
fi
# stack recipe (initdb flags: harness/src/postgres.rs INITDB_FLAGS): an empty cluster made at build time (the drill's settings are appended when a
# container first starts), so a database container copies it instead of running initdb.
template_cmd='mkdir -p /var/lib/regiondrill && chown postgres:postgres /var/lib/regiondrill && runuser -u postgres -- initdb -D /var/lib/regiondrill/pg-template -U postgres --auth=trust --no-sync --encoding=UTF8 --locale=C --wal-segsize=1 >/dev/null'
stack_hash=$( (cat "$release/regiondrill" "$release/regiondrill-app"; echo "$template_cmd") | sha256sum | cut -c1-12)-$base_hash
stack=regiondrill/stack:$stack_hash
if [ "$force" = --force ] || ! docker image inspect "$stack" >/dev/null 2>&1; then
    ctr=$(docker create "$base" sh -c "$template_cmd")
    trap 'docker rm -f "$ctr" >/dev/null 2>&1 || true' EXIT
    docker start -a "$ctr" >/dev/null
    docker cp "$release/regiondrill" "$ctr:/usr/local/bin/regiondrill"
    docker cp "$release/regiondrill-app" "$ctr:/usr/local/bin/regiondrill-app"
    docker commit --change "LABEL regiondrill.inputs=$stack_hash" "$ctr" "$stack" >/dev/null
    echo "images: $stack built"
else
    echo "images: $stack is up to date"
fi
for tag in regiondrill/postgres:15 regiondrill/redis:7 regiondrill/app:latest regiondrill/toxiproxy:latest; do
    docker tag "$stack" "$tag"
done
# Older builds of the top image are not needed any more.
docker image ls --format '{{.Repository}}:{{.Tag}}' regiondrill/stack | grep -v -x "$stack" | xargs -r docker rmi >/dev/null 2>&1 || true
echo "images: tagged regiondrill/postgres:15 regiondrill/redis:7 regiondrill/app:latest regiondrill/toxiproxy:latest"
