#!/usr/bin/env bash
# piglit's OpenCL (`cl`) profile, natively on the system's runtime (POCL)
# and through virtio-compute (a daemon this script starts, the shim as
# the only ICD), compared test by test and subtest by subtest. Fails on
# any difference not listed, with its reason, in
# scripts/piglit/cl-expected.txt, on a listed difference that no longer
# occurs, and when the daemon did not survive the run.
#
#   scripts/piglit-cl.sh              # the whole profile (7 to 15 min here)
#   scripts/piglit-cl.sh --ci         # the subset in scripts/piglit/cl-ci.txt
#   scripts/piglit-cl.sh --out DIR    # results elsewhere (target/piglit-cl)
#   scripts/piglit-cl.sh --compare-only   # compare results already in --out
#
# Installs piglit (Debian package `piglit`) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/piglit-cl
list=()
compare_only=0
while (($#)); do
    case "$1" in
    --ci) list=(--test-list "$PWD/scripts/piglit/cl-ci.txt"); shift ;;
    --out) out=$2; shift 2 ;;
    --compare-only) compare_only=1; shift ;;
    *) echo "usage: $0 [--ci] [--out DIR] [--compare-only]" >&2; exit 2 ;;
    esac
done

if ((!compare_only)); then
    EXTRA_PKGS=piglit scripts/deps.sh
    cargo build --release -p vhost-device-compute -p vcompute-shim
    rm -rf "$out"
    mkdir -p "$out"
    # Every test gets at most this long; a hung test is a timeout, not a
    # hung script.
    run=(piglit run -c --timeout 180 "${list[@]}" cl)

    start=$SECONDS
    env -u OCL_ICD_VENDORS -u VCOMPUTE_ENDPOINT "${run[@]}" "$out/native" >"$out/native.log"
    echo "piglit-cl: native run took $((SECONDS - start)) s"

    dir=$(mktemp -d)
    target/release/vhost-device-compute --socket "$dir/compute.sock" --executor opencl \
        --max-sessions 256 2>"$out/daemon.log" &
    daemon=$!
    trap 'kill $daemon 2>/dev/null; rm -rf "$dir"' EXIT
    for _ in $(seq 200); do
        [ -S "$dir/compute.sock" ] && break
        sleep 0.05
    done
    start=$SECONDS
    OCL_ICD_VENDORS=$PWD/target/release/libvcompute_shim.so \
        VCOMPUTE_ENDPOINT=vhost-user:$dir/compute.sock \
        "${run[@]}" "$out/shim" >"$out/shim.log"
    echo "piglit-cl: run through the shim took $((SECONDS - start)) s"
    if ! kill -0 "$daemon" 2>/dev/null; then
        echo "piglit-cl: the daemon died during the run (log: $out/daemon.log)" >&2
        exit 1
    fi
fi
python3 scripts/piglit/compare.py scripts/piglit/cl-expected.txt "$out/native" "$out/shim"
