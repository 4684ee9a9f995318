#!/usr/bin/env bash
# Validates the CUDA path on a host with an NVIDIA GPU and driver, in one go,
# in a few minutes (meant to fit a ~10-minute GPU window, build included).
#
# 1. Each validation program runs twice: natively (the NVIDIA libcuda.so.1),
#    then through the shim (LD_LIBRARY_PATH at the shim's libcuda.so.1)
#    against a daemon on the same GPU (--executor cuda). Their result lines
#    (checksums, PASS) must be identical.
#      cudarc             guest-shim/examples/cudarc_check.rs
#      ptx_c              hand-written PTX through the C driver API,
#                         guest-shim/tests/c/cuda_vadd.c
#      cuda_python        scripts/gpu/cuda_python_check.py
#      numba              scripts/gpu/numba_check.py
#      cudart_shared      a CUDA runtime program (NVRTC-compiled kernels
#      cudart_static      packed with nvFatbin, registered as nvcc does),
#                         linked against libcudart.so.12 and against
#                         libcudart_static.a: guest-shim/tests/c/cudart_program.c
#      cupy               CuPy's elementwise and reduction kernels, a raw
#                         kernel and a cuBLAS SGEMM against NumPy,
#                         scripts/gpu/cupy_check.py
#      torch              PyTorch: a tensor round trip, a matmul and a
#                         small model's forward pass against the CPU,
#                         scripts/gpu/torch_check.py
#    (the runtime programs need the wheels scripts/deps.sh fetches into
#    target/cudart; CuPy is imported from there unless installed; torch
#    must be installed)
#    Then the daemon's own CUDA tests against the real driver
#    (host-backend/src/executor/cuda/tests: conformance, hostile input,
#    two sessions' isolation by raw device pointer, memory returned after a
#    dropped session), which only print SKIPPED on a host without a GPU.
# 2. The benchmark harness, --api cuda: every thesis workload and the
#    micro-benchmarks, natively and through virtio-compute in one run,
#    every result checked against a CPU reference, judged against the
#    targets (tables, JSON and SVG in target/gpu-validation/cuda/). If that
#    run fails, each workload family runs alone (--quick) to show which
#    ones work.
# 3. The harness, --api opencl, when NVIDIA's OpenCL ICD is installed
#    (target/gpu-validation/opencl-nvidia/).
#
# Needs: the NVIDIA driver (nvidia-smi); NVRTC (a CUDA toolkit, or the
# nvidia-cuda-nvrtc wheel: found through VCOMPUTE_NVRTC=/path/libnvrtc.so.N,
# ldconfig, /usr/local/cuda, python's nvidia packages or target/nvrtc); cc;
# cargo (with the crates reachable) unless --prebuilt; for cuda_python and
# numba python3 with numpy, cuda-python and numba-cuda (each says SKIPPED
# when its module is missing). Writes every output and summary.txt to
# target/gpu-validation/. Every step is bounded in time.
#
# Usage:
#   scripts/gpu-validate.sh [--quick] [--prebuilt DIR]
#   scripts/gpu-validate.sh --bundle DIR
# --quick        small sizes (a smoke test; targets not judged)
# --prebuilt DIR use the binaries in DIR (made by --bundle on another
#                machine) instead of building: for a GPU host without cargo
#                or without access to the crates
# --bundle DIR   build here and put stripped copies of what step 1-3 run
#                into DIR (about 7 MB), then stop
set -uo pipefail
cd "$(dirname "$0")/.."
quick=
prebuilt=
bundle=
while (($#)); do
    case "$1" in
    --quick) quick=--quick; shift ;;
    --prebuilt) prebuilt=$2; shift 2 ;;
    --bundle) bundle=$2; shift 2 ;;
    *) echo "usage: $0 [--quick] [--prebuilt DIR] | --bundle DIR" >&2; exit 2 ;;
    esac
done
binaries=(vhost-device-compute vcompute-bench libvcompute_shim.so examples/cudarc_check daemon-tests)

# Builds everything the steps run; the daemon's unit-test binary is copied
# to target/release/daemon-tests.
build() {
    cargo build --release -p vhost-device-compute -p vcompute-shim -p vcompute-bench &&
        cargo build --release -p vcompute-shim --example cudarc_check || return 1
    local tests
    tests=$(cargo test --release -p vhost-device-compute --lib --no-run 2>&1 |
        grep -o 'target/release/deps/vhost_device_compute-[0-9a-f]*' | head -1)
    [ -n "$tests" ] && cp "$tests" target/release/daemon-tests
}

if [ -n "$bundle" ]; then
    build || exit 1
    mkdir -p "$bundle"
    for b in "${binaries[@]}"; do
        strip -o "$bundle/$(basename "$b")" "target/release/$b" || exit 1
    done
    ls -la "$bundle"
    exit 0
fi

out=target/gpu-validation
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
# The whole script stays within this many seconds; later steps are
# skipped (and say so) once it is spent.
budget=${VCOMPUTE_GPU_BUDGET_S:-420}
left() { echo $((budget - SECONDS)); }

if ! nvidia-smi -L >/dev/null 2>&1; then
    say "SKIPPED: no NVIDIA GPU or driver here (nvidia-smi -L failed); nothing validated"
    exit 0
fi
say "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"

if [ -n "$prebuilt" ]; then
    bin=$prebuilt
    for b in "${binaries[@]}"; do
        [ -x "$bin/$(basename "$b")" ] || { say "FAIL: $bin/$(basename "$b") is missing"; exit 1; }
    done
    example=$bin/cudarc_check
    daemon_tests=$bin/daemon-tests
else
    say "building (release) ..."
    if ! build >"$out/build.log" 2>&1; then
        say "FAIL: the build failed (see $out/build.log; a host without the crates needs --prebuilt)"
        tail -20 "$out/build.log"
        exit 1
    fi
    bin=target/release
    example=$bin/examples/cudarc_check
    daemon_tests=$bin/daemon-tests
fi
say "built or found in ${SECONDS} s"

# The shim as libcuda.so.1 (what scripts/libcuda.sh makes).
shimdir=$PWD/$out/libcuda
mkdir -p "$shimdir"
for name in libcuda.so.1 libcuda.so; do
    ln -sfn "$(realpath "$bin/libvcompute_shim.so")" "$shimdir/$name"
done

# NVRTC: cudarc looks for libnvrtc.so (or .so.12, ...), so a directory of
# links named for it, with its siblings (the builtins it loads), goes
# first on LD_LIBRARY_PATH, whatever the found library's version.
find_nvrtc() {
    local c
    for c in "${VCOMPUTE_NVRTC:-}" \
        "$(ldconfig -p 2>/dev/null | awk '/libnvrtc\.so/ && !/builtins/ {print $NF; exit}')" \
        /usr/local/cuda/lib64/libnvrtc.so* /usr/local/cuda/targets/*/lib/libnvrtc.so* \
        $(python3 -c 'import nvidia, os; [print(os.path.join(p, d, "lib")) for p in nvidia.__path__ for d in os.listdir(p)]' 2>/dev/null |
            sed 's|$|/libnvrtc.so*|') \
        target/nvrtc/nvidia/cuda_nvrtc/lib/libnvrtc.so.12; do
        for f in $c; do
            case "$f" in *builtins*) continue ;; esac
            [ -f "$f" ] && { realpath "$f"; return 0; }
        done
    done
    return 1
}
if nvrtc=$(find_nvrtc); then
    nvrtcdir=$PWD/$out/nvrtc
    rm -rf "$nvrtcdir" && mkdir -p "$nvrtcdir"
    for f in "$(dirname "$nvrtc")"/libnvrtc*; do ln -sfn "$f" "$nvrtcdir/$(basename "$f")"; done
    ln -sfn "$nvrtc" "$nvrtcdir/libnvrtc.so"
    export LD_LIBRARY_PATH="$nvrtcdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    say "NVRTC: $nvrtc"
else
    say "NVRTC: not found (cudarc, cuda-python and the CUDA benchmarks will fail or skip)"
fi

failed=0

# ---- 1. validation programs, native and through the shim ----
if command -v cc >/dev/null; then
    cc -O2 -o "$out/cuda_vadd" guest-shim/tests/c/cuda_vadd.c -I guest-shim/tests/c \
        -L "$shimdir" -l:libcuda.so.1
fi
sock="$out/compute.sock"
rm -f "$sock"
RUST_LOG=warn "$bin/vhost-device-compute" --socket "$sock" --executor cuda >"$out/daemon.log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
if [ ! -S "$sock" ]; then
    say "FAIL: the daemon did not start (see $out/daemon.log)"
    exit 1
fi

# check NAME COMMAND...: native run, shim run, compare the result lines.
check() {
    local name=$1
    shift
    if [ ! -e "$1" ] && ! command -v "$1" >/dev/null; then
        say "$name: SKIPPED ($1 is not there)"
        return
    fi
    VCOMPUTE_EXPECT_KERNELS=1 timeout 60 "$@" >"$out/$name.native" 2>&1
    local native_rc=$?
    LD_LIBRARY_PATH="$shimdir:$LD_LIBRARY_PATH" VCOMPUTE_ENDPOINT="vhost-user:$sock" \
        VCOMPUTE_EXPECT_KERNELS=1 timeout 60 "$@" >"$out/$name.shim" 2>&1
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

check cudarc "$example"
check ptx_c "$out/cuda_vadd"
check cuda_python python3 scripts/gpu/cuda_python_check.py
check numba python3 scripts/gpu/numba_check.py

# The CUDA runtime: the C program over the wheels' libcudart (shared and
# static), CuPy, torch. Native runs find NVIDIA's libcuda.so.1; the wheels'
# libraries come after it on the path.
wheels=$PWD/target/cudart/nvidia
nvrtc_wheel=$PWD/target/nvrtc/nvidia/cuda_nvrtc
if [ -e "$wheels/cuda_runtime/lib/libcudart.so.12" ] && [ -e "$nvrtc_wheel/lib/libnvrtc.so.12" ] &&
    command -v cc >/dev/null; then
    rt=$wheels/cuda_runtime
    cflags=(-O1 guest-shim/tests/c/cudart_program.c -I guest-shim/tests/c -I "$rt/include"
        -I "$nvrtc_wheel/include" -I "$wheels/nvfatbin/include" -L "$rt/lib"
        -L "$nvrtc_wheel/lib" -L "$wheels/nvfatbin/lib")
    libs=(-l:libnvrtc.so.12 -l:libnvfatbin.so.12 -lstdc++)
    cc -o "$out/cudart_shared" "${cflags[@]}" -l:libcudart.so.12 "${libs[@]}" &&
        cc -o "$out/cudart_static" "${cflags[@]}" "$rt/lib/libcudart_static.a" -lpthread -ldl -lrt \
            "${libs[@]}" || say "cudart: the C program did not build"
    rtpath="$rt/lib:$wheels/nvfatbin/lib:$nvrtc_wheel/lib"
    LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$rtpath" check cudart_shared "$out/cudart_shared"
    LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$rtpath" check cudart_static "$out/cudart_static"
else
    say "cudart_shared, cudart_static: SKIPPED (no wheels in target/cudart, or no cc: run scripts/deps.sh)"
fi
site=$PWD/target/cudart/site
PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" check cupy python3 scripts/gpu/cupy_check.py
check torch python3 scripts/gpu/torch_check.py
kill $daemon 2>/dev/null
wait $daemon 2>/dev/null
trap - EXIT

# The daemon's CUDA executor tests against the real driver. On a GPU host
# none may say SKIPPED: that would mean the real executor was not tested.
timeout 180 "$daemon_tests" executor::cuda --test-threads 2 --nocapture >"$out/daemon-tests.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    say "daemon-tests: FAIL (rc $rc; see $out/daemon-tests.log)"
    grep -E '^(test .* FAILED|failures:)|panicked' "$out/daemon-tests.log" | head -10 | tee -a "$summary"
    failed=1
elif grep -q 'SKIPPED' "$out/daemon-tests.log"; then
    say "daemon-tests: FAIL (the real executor was skipped on a GPU host:)"
    grep -m3 'SKIPPED' "$out/daemon-tests.log" | tee -a "$summary"
    failed=1
else
    say "daemon-tests: OK, $(grep -m1 -o '[0-9]* passed' "$out/daemon-tests.log") (real driver: conformance, hostile input, isolation, cleanup)"
fi

# ---- 2. and 3. the benchmark harness ----
# bench NAME SECONDS ARGS...: one harness run (its own daemon) into
# $out/NAME; prints its table into $out/NAME/results.md.
bench() {
    local name=$1 limit=$2
    shift 2
    if [ "$(left)" -lt 20 ]; then
        say "$name: SKIPPED (the ${budget} s time budget is spent)"
        return 1
    fi
    ((limit > $(left))) && limit=$(left)
    mkdir -p "$out/$name"
    timeout "$limit" "$bin/vcompute-bench" run --out "$out/$name" --case-timeout 60 \
        --daemon "$bin/vhost-device-compute" --shim "$bin/libvcompute_shim.so" "$@" \
        >"$out/$name/results.md" 2>"$out/$name/log.txt"
    local rc=$?
    if [ $rc -eq 0 ]; then
        say "$name: OK (${SECONDS} s into the script)"
        grep -A20 '^| target |' "$out/$name/results.md" >>"$summary"
        return 0
    fi
    say "$name: FAIL (rc $rc$([ $rc -eq 124 ] && echo ", over $limit s")):"
    grep -m1 'FAILED' "$out/$name/log.txt" | tee -a "$summary"
    return 1
}

cuda_args=(--api cuda)
if [ -n "$quick" ]; then
    cuda_args+=(--quick)
else
    # Every thesis size, two rounds: the figures for docs/benchmarks.md.
    cuda_args+=(--rounds 2)
fi
if ! bench cuda 240 "${cuda_args[@]}"; then
    failed=1
    say "each workload family alone, to see which work:"
    for f in vectorAdd matrixMul BlackScholes fastWalshTransform convolutionSeparable \
        bandwidthTest asyncAPI clock alignedTypes micro; do
        bench "cuda-$f" 40 --api cuda --quick --workloads "$f"
    done
fi

if grep -qils nvidia /etc/OpenCL/vendors/*.icd 2>/dev/null; then
    opencl_args=(--api opencl)
    [ -n "$quick" ] && opencl_args+=(--quick) || opencl_args+=(--rounds 1)
    bench opencl-nvidia 150 "${opencl_args[@]}" || failed=1
else
    say "opencl-nvidia: SKIPPED (no NVIDIA OpenCL ICD in /etc/OpenCL/vendors)"
fi
say "done in ${SECONDS} s; results in $out/"
exit $failed
