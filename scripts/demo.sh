#!/usr/bin/env bash
# The main job: installs dependencies, builds, starts vhost-device-compute on
# POCL, and runs real OpenCL programs through the shim: clinfo, then the
# benchmark harness, then a CLBlast tuner (an unmodified third-party OpenCL
# program that verifies every kernel it runs against a reference).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release -p vhost-device-compute -p vcompute-shim -p vcompute-bench

dir=$(mktemp -d)
sock="$dir/compute.sock"
target/release/vhost-device-compute --socket "$sock" --executor opencl &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done

export OCL_ICD_VENDORS="$PWD/target/release/libvcompute_shim.so"
export VCOMPUTE_ENDPOINT="vhost-user:$sock"

echo "== clinfo through virtio-compute"
clinfo -l
clinfo | grep -E "Platform Name|Device Name|Max compute units|Global memory size" | head -8

echo "== CLBlast dot-product tuner through virtio-compute (each kernel is verified)"
clblast_tuner_xdot -precision 32 -n 1048576 -runs 1 2>&1 | grep -E "Found|results match|Completed" | head -n 12

echo "== micro-benchmarks (native vs virtio-compute)"
unset OCL_ICD_VENDORS VCOMPUTE_ENDPOINT
target/release/vcompute-bench micro --endpoint "vhost-user:$sock" --reps 1000 --rounds 1
