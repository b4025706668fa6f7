#!/usr/bin/env bash
# The refresh-token benchmark, one command from a clean clone: bindgate's
# refresh_token grant on its SQLite store and on a private PostgreSQL
# cluster, beside panva's oidc-provider's (memory adapter), at 16 and at 64
# concurrent chains, and bindgate's token exchanges. Installs openssl,
# util-linux, strace, Node.js and Debian's postgresql (its server binaries;
# the cluster its package creates is stopped and left to start manually) if
# missing, the unprivileged user bindgate-test that initdb and postgres run
# as when this runs as root, oidc-provider from its lockfile (npm ci, into
# bench/as/node_modules), builds bindgate and the load generator in release
# mode, then writes bench/RESULTS-REFRESH.md (raw data in bench/run/). About
# 150 s of load with the defaults (8 rows x DURATION 5 s x ROUNDS 3, warm-up
# and the group-commit row). Knobs: see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/setup.sh
BENCH_BASE="openssl:openssl python3:python3" bench_setup taskset:util-linux node:nodejs npm:npm strace:strace

postgres_bindir() {
    local dir
    for dir in "${BINDGATE_PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" \
        $(ls -dv /usr/lib/postgresql/*/bin 2>/dev/null | tac); do
        if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}
if ! postgres_bindir >/dev/null; then
    echo "bench: installing postgresql" >&2
    clusters() { command -v pg_lsclusters >/dev/null 2>&1 && pg_lsclusters --no-header 2>/dev/null | awk '{ print $1, $2 }' || true; }
    before=$(clusters)
    install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql)
    as_root "${install[@]}" >/dev/null 2>&1 || { as_root apt-get update >/dev/null && as_root "${install[@]}" >/dev/null; }
    # The cluster the package creates would hold port 5432 and CPU during the run.
    if command -v pg_lsclusters >/dev/null 2>&1; then
        clusters | while read -r version name; do
            printf '%s\n' "$before" | grep -qxF "$version $name" && continue
            as_root pg_ctlcluster "$version" "$name" stop >/dev/null 2>&1 || true
            if [ -f "/etc/postgresql/$version/$name/start.conf" ]; then
                echo manual | as_root tee "/etc/postgresql/$version/$name/start.conf" >/dev/null
            fi
        done
    fi
fi
if [ "$(id -u)" -eq 0 ] && ! id -u bindgate-test >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin bindgate-test
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
    echo "bench: oidc-provider 9 needs Node.js 20 or later; this is $(node --version)" >&2
    exit 1
fi
want=$(node -p 'require("./bench/as/package.json").dependencies["oidc-provider"]')
have=$(node -p 'try { require("./bench/as/node_modules/oidc-provider/package.json").version } catch { "" }')
if [ "$want" != "$have" ]; then
    echo "bench: installing oidc-provider $want (npm ci in bench/as)" >&2
    (cd bench/as && npm ci --no-audit --no-fund --loglevel=error)
fi
exec python3 bench/run_refresh.py "$@"
