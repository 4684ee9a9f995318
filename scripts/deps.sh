#!/usr/bin/env bash
# Installs what building and testing virtio-compute needs on Debian 12:
# the OpenCL loader and headers, POCL (a CPU OpenCL runtime), clinfo, and
# CLBlast's tuners (a third-party OpenCL program the tests run through the
# shim), and the Rust toolchain pinned in rust-toolchain.toml. For the
# booted-guest test (scripts/vm-test.sh): QEMU 10 from bookworm-backports,
# busybox-static and cpio (the guest kernel itself is fetched by
# scripts/vm/build-initramfs.sh). NVRTC from PyPI for compiling the CUDA
# benchmark kernels, and NVIDIA's CUDA runtime, nvFatbin and CuPy for the
# CUDA runtime test (see below). Idempotent.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

pkgs=(pocl-opencl-icd ocl-icd-opencl-dev opencl-headers clinfo clblast-utils build-essential pkg-config
      busybox-static cpio ${EXTRA_PKGS:-})
missing=()
for p in "${pkgs[@]}"; do
    installed "$p" || missing+=("$p")
done
# QEMU 10 (vhost-user-vsock-pci with a memfd backend under TCG) is in
# bookworm-backports.
need_qemu=0
qemu-system-x86_64 --version 2>/dev/null | grep -q "version 10\." || need_qemu=1
if ((need_qemu)) && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" |
        $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
fi
if ((${#missing[@]} || need_qemu)); then
    $SUDO apt-get update -qq
fi
if ((${#missing[@]})); then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ((need_qemu)); then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        -t bookworm-backports qemu-system-x86
fi

if ! command -v cargo >/dev/null; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
# rust-toolchain.toml pins the version; this makes rustup fetch it if needed.
cargo --version >/dev/null

root=$(cd "$(dirname "$0")/.." && pwd)

# fetch_wheels DIR MARKER SPEC:SHA256... fetches pinned wheels from PyPI
# into DIR, checks each against its hash and unpacks it there, unless
# DIR/MARKER exists. Returns non-zero (and leaves no marker) if any wheel
# could not be fetched or checked.
fetch_wheels() {
    local dir=$1 marker=$2
    shift 2
    [ -e "$dir/$marker" ] && return 0
    mkdir -p "$dir/.wheels"
    local spec name sha file
    for spec in "$@"; do
        name=${spec%%:*} sha=${spec##*:}
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
            --platform manylinux2014_x86_64 -d "$dir/.wheels" "$name" || return 1
        file=$(ls "$dir/.wheels"/"$(echo "${name%%==*}" | tr - _)"-"${name##*==}"-*.whl 2>/dev/null | head -1)
        [ -n "$file" ] && echo "$sha  $file" | sha256sum -c --quiet || return 1
        python3 -m zipfile -e "$file" "$dir/${WHEEL_SUBDIR:-}" || return 1
    done
    rm -rf "$dir/.wheels"
    touch "$dir/$marker"
}

# NVRTC, for the compile check of the CUDA benchmark kernels and the CUDA
# runtime test (NVRTC needs no GPU): NVIDIA's nvidia-cuda-nvrtc-cu12 wheel
# from PyPI, the CUDA 12.4 release the workspace's cudarc bindings are
# pinned to, checked against its hash and unpacked once into target/nvrtc.
# 25 MB; skipped with VCOMPUTE_NO_NVRTC=1. Not fatal: without it the checks
# print SKIPPED.
if [ -z "${VCOMPUTE_NO_NVRTC:-}" ] && [ ! -e "$root/target/nvrtc/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" ]; then
    fetch_wheels "$root/target/nvrtc" .done \
        nvidia-cuda-nvrtc-cu12==12.4.127:a178759ebb095827bd30ef56598ec182b85547f1508941a3d560eb7ea1fbf338 ||
        echo "deps.sh: warning: could not fetch NVRTC; the CUDA kernel compile checks will be SKIPPED" >&2
fi

# The CUDA runtime test (guest-shim/tests/cudart.rs): NVIDIA's CUDA runtime
# 12.9 (libcudart.so.12, libcudart_static.a and the headers; 3.5 MB) and
# nvFatbin (1 MB), unpacked into target/cudart; CuPy 14.2 (137 MB, which
# links the runtime statically), NumPy 2.2 and cuda-pathfinder for
# CPython 3.11, unpacked into target/cudart/site (a PYTHONPATH directory).
# Skipped with VCOMPUTE_NO_CUDART=1; without them the test prints SKIPPED.
if [ -z "${VCOMPUTE_NO_CUDART:-}" ]; then
    fetch_wheels "$root/target/cudart" .done \
        nvidia-cuda-runtime-cu12==12.9.79:25bba2dfb01d48a9b59ca474a1ac43c6ebf7011f1b0b8cc44f54eb6ac48a96c3 \
        nvidia-nvfatbin-cu12==12.9.82:16cbfbd12287508212f22f42dff6ff51cf9b528b906f57f615b080da16dea1ea ||
        echo "deps.sh: warning: could not fetch the CUDA runtime; its test will be SKIPPED" >&2
    WHEEL_SUBDIR=site fetch_wheels "$root/target/cudart" .site-done \
        cupy-cuda12x==14.2.0:5fe2366cc5c61a7ee4a527ce1e8951cb89092d0fb0b5830623cf114d1942c585 \
        numpy==2.2.6:ba10f8411898fc418a521833e014a77d3ca01c15b0c6cdcce6a0d2897e6dbbdf \
        cuda-pathfinder==1.9.1:b743c132f90ad2d1e71d43fd28f31ebcde518f943e50fd44aca62b2a80d5230d ||
        echo "deps.sh: warning: could not fetch CuPy; its test will be SKIPPED" >&2
fi
