#!/usr/bin/env bash
# Installs what `just demo` and `just test` need and this machine lacks, before any long
# build starts. Quick (well under a second) when everything is present.
#
# Debian packages: PostgreSQL (native stacks), Redis, Patroni, etcd and HAProxy (the
# `patroni` failover manager), pg_auto_failover (the `pg_auto_failover` one), libfaketime
# (clock-skew faults),
# Chromium (the test that lays the HTML report out in a browser) and, when a Docker engine
# answers, mmdebstrap (the offline images). PyPI: the workflow linters, the third-party
# fault-proxy client the tests drive the proxy with, and kubernetes-validate (the Kubernetes
# example's manifests against the schemas it ships) (only for `--for test`).
#
# As root (or with passwordless sudo) it installs them with apt-get and pip; otherwise it
# stops, exit 1, printing the one command to run.
#
# Usage: stacks/deps.sh [--for demo|test] [--check]
#   --check  only report what is missing (exit 1 if anything is).
set -euo pipefail

purpose=test
check_only=false
while [ $# -gt 0 ]; do
    case "$1" in
        --for) purpose=$2; shift 2 ;;
        --check) check_only=true; shift ;;
        *) echo "deps: unknown argument $1 (usage: stacks/deps.sh [--for demo|test] [--check])" >&2; exit 2 ;;
    esac
done

apt_missing=()
pip_missing=()

has() { command -v "$1" >/dev/null 2>&1; }

# PostgreSQL server binaries (initdb, postgres, pg_basebackup, pg_rewind).
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || apt_missing+=(postgresql)
has redis-server || apt_missing+=(redis-server)
# The real HA managers ([failover] manager = "patroni"): Patroni, etcd (its DCS) and HAProxy
# (the per-region router on Patroni's REST checks).
has patroni || apt_missing+=(patroni)
has etcd || apt_missing+=(etcd-server)
has etcdctl || apt_missing+=(etcd-client)
has haproxy || apt_missing+=(haproxy)
# pg_auto_failover ([failover] manager = "pg_auto_failover"): pg_autoctl and the monitor's
# extension for PostgreSQL 15.
has pg_autoctl || apt_missing+=(pg-auto-failover-cli)
compgen -G '/usr/share/postgresql/15/extension/pgautofailover.control' >/dev/null \
    || apt_missing+=(postgresql-15-auto-failover)
compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || apt_missing+=(faketime libfaketime)
docker_answers=false
if has docker && docker info >/dev/null 2>&1; then
    docker_answers=true
    has mmdebstrap || apt_missing+=(mmdebstrap)
fi
if [ "$purpose" = test ]; then
    has chromium || has chromium-browser || apt_missing+=(chromium)
    # Workflow linters (the nightly workflow test) and toxiproxy-python (a peer client of the
    # fault proxy's API in the tests), pinned.
    has zizmor || pip_missing+=(zizmor==1.32.0)
    has check-jsonschema || pip_missing+=(check-jsonschema==0.39.0)
    python3 -c 'import toxiproxy' >/dev/null 2>&1 || pip_missing+=(toxiproxy-python==0.1.1)
    # The Kubernetes example's manifests (tests/k8s.rs), validated offline against the
    # Kubernetes schemas the package ships, pinned.
    has kubernetes-validate || pip_missing+=(kubernetes-validate==1.37.0)
fi

cargo_missing=false
if [ "$purpose" = test ] && ! cargo nextest --version >/dev/null 2>&1; then
    cargo_missing=true
    if ! $check_only; then
        echo "deps: installing cargo-nextest (cargo install, a few minutes)"
        cargo install --locked --quiet cargo-nextest
        cargo_missing=false
    fi
fi

if [ ${#apt_missing[@]} -eq 0 ] && [ ${#pip_missing[@]} -eq 0 ]; then
    if $cargo_missing; then
        echo "deps: missing: cargo-nextest; run: cargo install --locked cargo-nextest" >&2
        exit 1
    fi
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if has sudo && sudo -n true >/dev/null 2>&1; then
        sudo="sudo -n"
    else
        check_only=true
    fi
fi

cmd=""
if [ ${#apt_missing[@]} -gt 0 ]; then
    cmd="sudo apt-get update && sudo apt-get install -y --no-install-recommends ${apt_missing[*]}"
fi
if [ ${#pip_missing[@]} -gt 0 ]; then
    cmd="${cmd:+$cmd && }pip install ${pip_missing[*]}"
fi

if $check_only; then
    echo "deps: missing: ${apt_missing[*]} ${pip_missing[*]}" >&2
    echo "deps: run this once (it needs root for apt-get), then try again:" >&2
    echo "    $cmd" >&2
    exit 1
fi

if [ ${#apt_missing[@]} -gt 0 ]; then
    echo "deps: installing ${apt_missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${apt_missing[@]}"
fi
if [ ${#pip_missing[@]} -gt 0 ]; then
    echo "deps: installing ${pip_missing[*]} (pip)"
    pip install --quiet "${pip_missing[@]}"
    # pyenv finds new programs only through shims made by a rehash.
    if has pyenv; then pyenv rehash; fi
fi
hash -r
# Say so now if an install did not give what was asked for, rather than after the build.
if ! "$0" --for "$purpose" --check; then
    echo "deps: still missing after installing; see above" >&2
    exit 1
fi
$docker_answers || echo "deps: no Docker engine answers: Docker tests will say SKIPPED"
