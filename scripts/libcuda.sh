#!/usr/bin/env bash
# Makes the shim loadable as the CUDA driver: creates
# target/<profile>/cuda/libcuda.so.1 and libcuda.so, symbolic links to the
# shim's cdylib (target/<profile>/libvcompute_shim.so), and prints that
# directory. Point LD_LIBRARY_PATH at it and a CUDA program loads the shim
# in place of the driver:
#
#   LD_LIBRARY_PATH=$(scripts/libcuda.sh release) \
#   VCOMPUTE_ENDPOINT=vhost-user:/run/vcompute.sock ./my-cuda-program
#
# Usage: scripts/libcuda.sh [debug|release]   (default: release; builds it)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-release}
case "$profile" in
    release) cargo build --release -p vcompute-shim >&2 ;;
    debug) cargo build -p vcompute-shim >&2 ;;
    *) echo "usage: $0 [debug|release]" >&2; exit 2 ;;
esac
target=${CARGO_TARGET_DIR:-$PWD/target}
dir="$target/$profile/cuda"
mkdir -p "$dir"
for name in libcuda.so.1 libcuda.so; do
    ln -sfn ../libvcompute_shim.so "$dir/$name"
done
echo "$dir"
