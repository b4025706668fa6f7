#!/usr/bin/env bash
# Installs what the integration tests need beyond cargo: a redis-server binary
# (tests start their own on a free loopback port); Debian's postgresql for its
# server binaries (initdb, postgres, psql in /usr/lib/postgresql/<major>/bin:
# tests start private clusters of their own, tests/it/common/postgres.rs, and
# the cluster the package creates is stopped and set to start manually); when
# run as root, the unprivileged system user bindgate-test that those clusters
# run as (initdb and postgres refuse root); the npm packages of the interop
# clients in tests/interop (DPoP proofs, openid-client at /token); and a
# Python virtualenv with Authlib for the second OAuth client
# (tests/interop/.venv, from tests/interop/requirements.txt); and Debian's
# nginx and haproxy for their binaries (the trusted-proxy tests start their
# own front proxies; the packaged services are stopped and disabled).
# Idempotent, and silent when everything is already there. The test harness
# runs it once per test process, so a missing dependency fails the tests
# instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Test processes may run this at the same time (one per test binary, or per
# test under nextest); apt and npm must not install over each other.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/bindgate-test-deps.lock"
    flock 9
fi

# Runs a command with its output kept aside; shows it only if the command fails.
quietly() {
    if ! "$@" >"$log" 2>&1; then
        echo "test-deps: failed: $*" >&2
        cat "$log" >&2
        return 1
    fi
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "test-deps: need root or sudo to run: $*" >&2
        return 1
    fi
}

# The Debian package may start its own redis-server on 6379 through its init
# script. Tests never use it, but a background server the tests did not ask for
# should not outlive this script, so one started by this install is stopped.
redis_was_running() {
    pidof redis-server >/dev/null 2>&1
}

if ! command -v redis-server >/dev/null 2>&1; then
    echo "test-deps: installing redis-server" >&2
    running_before=no
    redis_was_running && running_before=yes
    install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server)
    # A stale or missing package list is the usual reason an install fails;
    # updating only then keeps the common case fast and offline-friendly.
    if ! as_root "${install[@]}" >"$log" 2>&1; then
        quietly as_root apt-get update
        quietly as_root "${install[@]}"
    fi
    if [ "$running_before" = no ] && redis_was_running; then
        as_root service redis-server stop >/dev/null 2>&1 || true
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "test-deps: redis-server is still not on PATH after installing it" >&2
        exit 1
    fi
fi

# PostgreSQL: tests start private clusters with the server binaries
# themselves (initdb, postgres) and never use a packaged cluster. Debian keeps
# those binaries off PATH, in /usr/lib/postgresql/<major>/bin, so PATH alone
# cannot tell whether the server is installed; tests/it/common/postgres.rs
# looks in the same places in the same order. BINDGATE_PG_BINDIR overrides.
postgres_bindir() {
    local dir
    for dir in "${BINDGATE_PG_BINDIR:-}" \
        "$(pg_config --bindir 2>/dev/null || true)" \
        $(ls -dv /usr/lib/postgresql/*/bin 2>/dev/null | tac) \
        "$(dirname "$(command -v initdb 2>/dev/null || echo .)")"; do
        if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

# "VERSION NAME" of every packaged cluster (postgresql-common's pg_lsclusters).
postgres_clusters() {
    if command -v pg_lsclusters >/dev/null 2>&1; then
        pg_lsclusters --no-header 2>/dev/null | awk '{ print $1, $2 }'
    fi
}

if ! postgres_bindir >/dev/null; then
    echo "test-deps: installing postgresql" >&2
    clusters_before=$(postgres_clusters)
    install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql)
    if ! as_root "${install[@]}" >"$log" 2>&1; then
        quietly as_root apt-get update
        quietly as_root "${install[@]}"
    fi
    # The package's postinst creates a "main" cluster and may start it on
    # 5432. Tests never use it: stop every cluster this install created and
    # keep it from starting at boot (start.conf "manual"; pg_ctlcluster can
    # still start it by hand).
    while read -r version name; do
        [ -n "$version" ] || continue
        if printf '%s\n' "$clusters_before" | grep -qxF "$version $name"; then
            continue
        fi
        as_root pg_ctlcluster "$version" "$name" stop >/dev/null 2>&1 || true
        if [ -f "/etc/postgresql/$version/$name/start.conf" ]; then
            echo manual | as_root tee "/etc/postgresql/$version/$name/start.conf" >/dev/null
        fi
    done <<<"$(postgres_clusters)"
    if [ -z "$clusters_before" ]; then
        # No packaged cluster existed before: whatever the init script
        # started came with this install.
        as_root service postgresql stop >/dev/null 2>&1 || true
    fi
    if ! postgres_bindir >/dev/null; then
        echo "test-deps: no initdb and postgres in pg_config --bindir, /usr/lib/postgresql/*/bin or on PATH after installing postgresql" >&2
        exit 1
    fi
fi

# nginx and HAProxy: the trusted-proxy tests (tests/it/common/front_proxy.rs)
# start instances of their own, each on a free loopback port with a generated
# configuration, and need only the binaries, which Debian keeps in /usr/sbin
# (off a non-root PATH). The package `nginx` has the ssl and proxy modules
# those configurations use; `nginx-light` is only a transitional name for it.
# Both packages may start a service through their init scripts. The binary
# was missing, so any such service is this install's own: it is stopped (the
# init script finds it by its pidfile, never a test's instance) and kept from
# starting at boot.
front_proxy_binary() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]
}

missing_front=()
for package in nginx haproxy; do
    front_proxy_binary "$package" || missing_front+=("$package")
done
if [ ${#missing_front[@]} -gt 0 ]; then
    echo "test-deps: installing ${missing_front[*]}" >&2
    install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing_front[@]}")
    if ! as_root "${install[@]}" >"$log" 2>&1; then
        quietly as_root apt-get update
        quietly as_root "${install[@]}"
    fi
    for service in "${missing_front[@]}"; do
        as_root service "$service" stop >/dev/null 2>&1 || true
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            as_root systemctl disable "$service" >/dev/null 2>&1 || true
        elif command -v update-rc.d >/dev/null 2>&1; then
            as_root update-rc.d "$service" disable >/dev/null 2>&1 || true
        fi
    done
    for binary in nginx haproxy; do
        if ! front_proxy_binary "$binary"; then
            echo "test-deps: $binary is not on PATH or in /usr/sbin after installing ${missing_front[*]}" >&2
            exit 1
        fi
    done
fi

# initdb and postgres refuse to run as root: as root, the tests run them as
# this unprivileged system user (its own group, no home, no login shell).
if [ "$(id -u)" -eq 0 ] && ! id -u bindgate-test >/dev/null 2>&1; then
    quietly useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin bindgate-test
fi

# Every package the interop clients import, not only the first one added:
# a node_modules from before a package joined package.json lacks it.
missing_package=no
for package in dpop openid-client undici; do
    [ -d "tests/interop/node_modules/$package" ] || missing_package=yes
done
if [ "$missing_package" = yes ]; then
    for tool in node npm; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "test-deps: $tool is not on PATH; the interop clients need Node.js 20+ and npm" >&2
            exit 1
        fi
    done
    echo "test-deps: installing the interop clients' npm packages" >&2
    (cd tests/interop && quietly npm ci --no-audit --no-fund)
fi

venv=tests/interop/.venv
if ! "$venv/bin/python" -c 'import authlib, joserfc, requests' >/dev/null 2>&1; then
    if ! command -v python3 >/dev/null 2>&1; then
        echo "test-deps: python3 is not on PATH; the Authlib interop client needs Python 3.9+" >&2
        exit 1
    fi
    echo "test-deps: installing the Authlib interop client's packages (PyPI) into $venv" >&2
    rm -rf "$venv"
    # Debian's python3 keeps venv (with ensurepip) in a package of its own.
    if ! python3 -m venv "$venv" >"$log" 2>&1; then
        rm -rf "$venv"
        quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv
        quietly python3 -m venv "$venv"
    fi
    quietly "$venv/bin/pip" install --disable-pip-version-check --no-input -r tests/interop/requirements.txt
fi
