#!/usr/bin/env bash
# Fuzzes every target in fuzz/ (cargo-fuzz, nightly) for a bounded time and
# fails on any crash, timeout or out-of-memory. FUZZ_SECONDS (default 180) is
# the budget of the runs, shared evenly among the targets (at least
# FUZZ_MIN_SECONDS, default 5, each); the build comes on top, so a cold CI
# machine fuzzes as long as a warm one.
# Runs start from the committed seeds (fuzz/corpus/<target>/seed-*); what a
# run adds goes to a temporary directory, findings to fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

budget=${FUZZ_SECONDS:-180}
floor=${FUZZ_MIN_SECONDS:-5}
start=$SECONDS

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly --profile minimal)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# The fuzz package's lockfile is committed: refuse to fuzz other versions.
cargo +nightly metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null
(cd fuzz && cargo +nightly fuzz build)
built=$((SECONDS - start))

triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin=fuzz/target/$triple/release
mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
# Less 3 s per target: libFuzzer's start (loading the corpus) and its final
# stats fall outside -max_total_time.
each=$((budget / ${#targets[@]} - 3))
((each >= floor)) || each=$floor
echo "fuzz.sh: built in ${built}s; ${#targets[@]} targets, ${each}s each"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for target in "${targets[@]}"; do
    mkdir -p "$work/$target" "fuzz/artifacts/$target"
    log=$work/$target.log
    status=ok
    # One process (no -jobs/-workers): the machine is shared.
    if ! ASAN_OPTIONS=detect_odr_violation=0 "$bin/$target" "$work/$target" "fuzz/corpus/$target" \
        -max_total_time="$each" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1; then
        status=FAILED
        failed+=("$target")
        tail -n 60 "$log"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    summary+=("$(printf '%-20s %-6s %10s runs %8s exec/s' "$target" "$status" "${runs:-?}" "${rate:-?}")")
done

printf '%s\n' "${summary[@]}"
echo "fuzz.sh: $((SECONDS - start))s in all"
if ((${#failed[@]})); then
    echo "fuzz.sh: findings in ${failed[*]}; inputs in fuzz/artifacts/ (reproduce: cd fuzz && cargo +nightly fuzz run <target> <file>)" >&2
    exit 1
fi
