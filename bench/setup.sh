# Sourced by bench/run.sh and bench/instructions.sh: installs the Debian
# packages a benchmark needs, then builds bindgate and the load generator.
# Usage: bench_setup command:package ... (beyond HAProxy, nginx, openssl, python3;
# BENCH_BASE, if set, replaces that base list)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else echo "bench: need root or sudo to run: $*" >&2; return 1
    fi
}

bench_setup() {
    local missing=() pair
    local base="${BENCH_BASE:-haproxy:haproxy nginx:nginx-light openssl:openssl python3:python3}"
    # shellcheck disable=SC2086  # the base list splits on spaces on purpose
    for pair in $base "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "bench: installing ${missing[*]}" >&2
        local install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}")
        as_root "${install[@]}" >/dev/null 2>&1 || { as_root apt-get update >/dev/null && as_root "${install[@]}" >/dev/null; }
        # The packages' own services would hold ports and CPU during the run.
        for service in haproxy nginx; do
            as_root service "$service" stop >/dev/null 2>&1 || true
        done
    fi
    echo "bench: building bindgate and the load generator (release)" >&2
    cargo build --release --quiet --bin bindgate --example loadgen
}
