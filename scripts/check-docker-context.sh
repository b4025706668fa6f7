#!/usr/bin/env bash
# Builds bindgate from exactly the files the Dockerfile's build stage copies,
# in a temporary directory, with `cargo build --locked`: an image whose build
# context lacks a file the manifest needs (a declared bench, a build script)
# fails here instead of at `docker build`. No Docker engine is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT

# The build stage: from its FROM line up to the next FROM.
stage=$(awk '/^FROM /{n++} n==1' Dockerfile)
workdir=$(printf '%s\n' "$stage" | awk '$1=="WORKDIR"{print $2}' | tail -n1)
workdir=${workdir:-/}

copies=0
while read -r instruction args; do
    [ "$instruction" = COPY ] || continue
    # shellcheck disable=SC2206 # the Dockerfile's words, split as Docker splits them
    words=($args)
    case "${words[0]}" in --*)
        echo "check-docker-context: unsupported COPY flag in the build stage: ${words[0]}" >&2
        exit 1
        ;;
    esac
    dest=${words[-1]}
    unset 'words[-1]'
    case "$dest" in
        /*) target="$context$dest" ;;
        *) target="$context$workdir/$dest" ;;
    esac
    for src in "${words[@]}"; do
        if [ ! -e "$src" ]; then
            echo "check-docker-context: Dockerfile copies $src, which does not exist" >&2
            exit 1
        fi
        case "$dest" in
            */) mkdir -p "$target"; cp -R "$src" "$target" ;;
            *) mkdir -p "$(dirname "$target")"; cp -R "$src" "$target" ;;
        esac
    done
    copies=$((copies + 1))
done < <(printf '%s\n' "$stage")

if [ "$copies" -eq 0 ]; then
    echo "check-docker-context: no COPY lines found in the Dockerfile's build stage" >&2
    exit 1
fi

# Its own target directory, kept between runs: sharing the repository's
# would overwrite target/debug/bindgate with a build from another path.
cd "$context$workdir"
CARGO_TARGET_DIR="$repo/target/docker-context" cargo build --locked --bin bindgate --quiet
echo "check-docker-context: bindgate builds from the Dockerfile's build context ($copies COPY lines)"
