#!/usr/bin/env bash
# Heap allocations per request inside bindgate, one command from a clean
# clone: installs nginx (Debian) if missing, builds the load generator and a
# bindgate with a counting allocator (--features count-allocs; bench/run.sh
# builds it again without), writes bench/ALLOCS.md. About a minute after
# the build; REQUESTS (default 20000).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/setup.sh
BENCH_BASE="nginx:nginx-light openssl:openssl python3:python3" bench_setup
echo "bench: building the counting bindgate (release, --features count-allocs)" >&2
cargo build --release --quiet --bin bindgate --features count-allocs
exec python3 bench/allocs.py "$@"
