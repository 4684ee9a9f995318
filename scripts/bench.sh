#!/usr/bin/env bash
# Reproduces the benchmark table and plot on a fresh Debian 12 machine:
# installs dependencies, builds, and runs every workload natively and
# through virtio-compute (the harness starts and stops its own daemon).
# Prints the Markdown table; writes results.md, results.json (every
# sample, the machine and runtime versions) and results.svg into the
# output directory.
#
#   scripts/bench.sh                        # full run into target/vcompute-bench
#   scripts/bench.sh --out DIR              # elsewhere
#   scripts/bench.sh --quick                # the CI smoke test
#   scripts/bench.sh --workloads bandwidthTest --rounds 5   # any run flags
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

out=target/vcompute-bench
args=()
while (($#)); do
    case "$1" in
    --out) out=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
    esac
done
cargo build --release -p vhost-device-compute -p vcompute-shim -p vcompute-bench
mkdir -p "$out"
target/release/vcompute-bench run --out "$out" "${args[@]}" | tee "$out/results.md"
