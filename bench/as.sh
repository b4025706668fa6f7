#!/usr/bin/env bash
# The authorization server benchmark, one command from a clean clone:
# bindgate's token endpoint beside panva's oidc-provider (client_credentials,
# mTLS- and DPoP-bound tokens), and the gateway verifying EdDSA tokens beside
# ES256 ones. Installs nginx, openssl and util-linux (Debian) and Node.js if
# missing, oidc-provider from its lockfile (npm ci, into bench/as/node_modules),
# builds bindgate and the load generator in release mode, then writes
# bench/RESULTS-AS.md (raw data in bench/run/). About 90 s of load with the
# defaults (6 rows x DURATION 5 s x ROUNDS 3). Knobs: see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/setup.sh
BENCH_BASE="nginx:nginx-light openssl:openssl python3:python3" bench_setup taskset:util-linux node:nodejs npm:npm
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
exec python3 bench/run_as.py "$@"
