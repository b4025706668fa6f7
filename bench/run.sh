#!/usr/bin/env bash
# The benchmark, one command from a clean clone: installs HAProxy and nginx
# (Debian packages), builds bindgate and the load generator in release mode,
# then runs every row once and writes bench/RESULTS.md (raw data in bench/run/).
# About 4 minutes of load on top of the build. Knobs: see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else echo "bench: need root or sudo to run: $*" >&2; return 1
    fi
}

missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}" >&2
    install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}")
    as_root "${install[@]}" >/dev/null 2>&1 || { as_root apt-get update >/dev/null && as_root "${install[@]}" >/dev/null; }
    # The packages' own services would hold ports and CPU during the run.
    for service in haproxy nginx; do
        as_root service "$service" stop >/dev/null 2>&1 || true
    done
fi

echo "bench: building bindgate and the load generator (release)" >&2
cargo build --release --quiet --bin bindgate --example loadgen

exec python3 bench/run.py "$@"
