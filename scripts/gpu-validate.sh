#!/usr/bin/env bash
# Validates the CUDA path on a host with an NVIDIA GPU and driver, in one go.
#
# Each program runs twice: natively (the NVIDIA libcuda.so.1), then through
# the shim (LD_LIBRARY_PATH at the shim's libcuda.so.1) against a daemon on
# the same GPU (--executor cuda). Their result lines (checksums, PASS) must
# be identical. Then the CUDA micro-benchmarks print native vs virtualized.
#
#   1. a cudarc program            guest-shim/examples/cudarc_check.rs
#   2. PTX vector add (hand-written PTX, C driver API)
#                                  guest-shim/tests/c/cuda_vadd.c
#      PTX vector add and matrix multiply (NVRTC) are in 1 and 3.
#   3. cuda-python's driver API    scripts/gpu/cuda_python_check.py
#   4. a numba-cuda kernel         scripts/gpu/numba_check.py
#   5. micro-benchmarks            guest-shim/examples/cuda_micro.rs
#
# Needs: cargo, cc; for 3 and 4 python3 with numpy, cuda-python and
# numba-cuda installed (each check says SKIPPED when its module is
# missing); libnvrtc for 1 and 3. Writes every output and a summary to
# target/gpu-validation/.
#
# Usage: scripts/gpu-validate.sh [--quick]
set -uo pipefail
cd "$(dirname "$0")/.."
quick=${1:-}
out=target/gpu-validation
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }

if ! nvidia-smi -L >/dev/null 2>&1; then
    say "SKIPPED: no NVIDIA GPU or driver here (nvidia-smi -L failed); nothing validated"
    exit 0
fi
say "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"

set -e
cargo build --release -p vhost-device-compute -p vcompute-shim --examples
shimdir=$(scripts/libcuda.sh release)
cc -O2 -o "$out/cuda_vadd" guest-shim/tests/c/cuda_vadd.c -I guest-shim/tests/c \
    -L "$shimdir" -l:libcuda.so.1
set +e

sock="$out/compute.sock"
rm -f "$sock"
target/release/vhost-device-compute --socket "$sock" --executor cuda >"$out/daemon.log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
if [ ! -S "$sock" ]; then
    say "FAIL: the daemon did not start (see $out/daemon.log)"
    exit 1
fi

failed=0
# check NAME COMMAND...: native run, shim run, compare the result lines.
check() {
    local name=$1
    shift
    VCOMPUTE_EXPECT_KERNELS=1 "$@" >"$out/$name.native" 2>&1
    local native_rc=$?
    LD_LIBRARY_PATH="$shimdir" VCOMPUTE_ENDPOINT="vhost-user:$sock" \
        VCOMPUTE_EXPECT_KERNELS=1 "$@" >"$out/$name.shim" 2>&1
    local shim_rc=$?
    if grep -q '^SKIPPED' "$out/$name.native"; then
        say "$name: $(grep -m1 '^SKIPPED' "$out/$name.native")"
        return
    fi
    grep -E 'checksum|^PASS' "$out/$name.native" >"$out/$name.native.result"
    grep -E 'checksum|^PASS' "$out/$name.shim" >"$out/$name.shim.result"
    if [ $native_rc -eq 0 ] && [ $shim_rc -eq 0 ] && grep -q '^PASS' "$out/$name.native.result" &&
        cmp -s "$out/$name.native.result" "$out/$name.shim.result"; then
        say "$name: OK, identical results native and through the shim"
        sed 's/^/    /' "$out/$name.shim.result" | tee -a "$summary"
    else
        say "$name: FAIL (native rc $native_rc, shim rc $shim_rc; see $out/$name.*)"
        failed=1
    fi
}

check cudarc target/release/examples/cudarc_check
check ptx_c "$out/cuda_vadd"
check cuda_python python3 scripts/gpu/cuda_python_check.py
check numba python3 scripts/gpu/numba_check.py

say "micro-benchmarks:"
LD_LIBRARY_PATH= VCOMPUTE_ENDPOINT="vhost-user:$sock" \
    target/release/examples/cuda_micro $quick --shim "$shimdir/libcuda.so.1" 2>&1 | tee -a "$summary"
exit $failed
