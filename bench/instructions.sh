#!/usr/bin/env bash
# Instructions per request under callgrind, HAProxy beside bindgate: the
# comparison of bench/run.sh in a unit the machine's speed does not move.
# Installs HAProxy, nginx and valgrind if missing, builds in release mode,
# writes bench/INSTRUCTIONS.md. About 2 minutes after the build; REQUESTS
# (default 5000) per row.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/setup.sh
bench_setup valgrind:valgrind callgrind_control:valgrind
exec python3 bench/instructions.py "$@"
