#!/usr/bin/env bash
# The house rules, checked: formatting (the workspace and the fuzz crate),
# clippy with warnings denied, rustdoc with warnings denied, a check on the
# declared MSRV (`rust-version` in Cargo.toml, with the committed
# Cargo.lock; the toolchain is installed if missing) and a build of every
# fuzz target. Every check runs; the script fails if any did, naming each
# failed check and how to reproduce it. scripts/test.sh runs it first.
#
# The MSRV check and the fuzz build use their own target directories
# (target/msrv, target/fuzz-check), so they do not invalidate the main
# build's cache.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
# check NAME COMMAND...: runs one check, timed; records it if it fails.
check() {
    local name=$1 start=$SECONDS
    shift
    echo "== lint: $name"
    if "$@"; then
        echo "== lint: $name: ok ($((SECONDS - start)) s)"
    else
        echo "== lint: $name: FAILED ($((SECONDS - start)) s); to rerun: $*" >&2
        failed+=("$name")
    fi
}

msrv=$(sed -n 's/^rust-version *= *"\([0-9.]*\)"/\1/p' Cargo.toml)
if [ -z "$msrv" ]; then
    echo "lint: no rust-version in Cargo.toml" >&2
    exit 1
fi
# "1.89" names the release 1.89.0: the oldest compiler the declaration admits.
case "$msrv" in
*.*.*) toolchain=$msrv ;;
*) toolchain=$msrv.0 ;;
esac
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$toolchain" --profile minimal
fi

check "rustfmt (workspace)" cargo fmt --all --check
check "rustfmt (fuzz crate)" cargo fmt --manifest-path fuzz/Cargo.toml --check
check "clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
check "rustdoc" env RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked
check "MSRV $toolchain" cargo "+$toolchain" check --workspace --all-targets --locked \
    --target-dir target/msrv
# A plain build of the fuzz crate links every target against libFuzzer's
# main on the stable toolchain; only the sanitizer instrumentation that
# scripts/fuzz.sh adds is missing.
check "fuzz targets build" cargo build --manifest-path fuzz/Cargo.toml --locked --bins \
    --target-dir target/fuzz-check

if ((${#failed[@]})); then
    printf -v list '%s; ' "${failed[@]}"
    echo "lint: FAILED: ${list%; }" >&2
    exit 1
fi
echo "lint: all checks passed"
