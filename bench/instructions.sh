#!/usr/bin/env bash
# Instructions per request under callgrind, HAProxy beside bindgate: the
# comparison of bench/run.sh in a unit the machine's speed does not move.
# Installs what bench/run.sh installs plus valgrind; writes bench/INSTRUCTIONS.md.
# About 5 minutes on top of the build. REQUESTS (default 5000) per row.
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
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}" >&2
    install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}")
    as_root "${install[@]}" >/dev/null 2>&1 || { as_root apt-get update >/dev/null && as_root "${install[@]}" >/dev/null; }
    for service in haproxy nginx; do
        as_root service "$service" stop >/dev/null 2>&1 || true
    done
fi

echo "bench: building bindgate and the load generator (release)" >&2
cargo build --release --quiet --bin bindgate --example loadgen

exec python3 bench/instructions.py "$@"
