#!/usr/bin/env bash
# The benchmark, one command from a clean clone: installs HAProxy and nginx
# (Debian packages), builds bindgate and the load generator in release mode,
# then runs every row once and writes bench/RESULTS.md (raw data in bench/run/).
# About 10 minutes of load on top of the build. Knobs: see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/setup.sh
bench_setup taskset:util-linux
exec python3 bench/run.py "$@"
