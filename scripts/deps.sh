#!/usr/bin/env bash
# Installs what building and testing virtio-compute needs on Debian 12:
# the OpenCL loader and headers, POCL (a CPU OpenCL runtime), clinfo, and
# CLBlast's tuners (a third-party OpenCL program the tests run through the
# shim), and the Rust toolchain pinned in rust-toolchain.toml. For the
# booted-guest test (scripts/vm-test.sh): QEMU 10 from bookworm-backports,
# busybox-static and cpio (the guest kernel itself is fetched by
# scripts/vm/build-initramfs.sh). NVRTC from PyPI for compiling the CUDA
# benchmark kernels (see below). Idempotent.
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

# NVRTC, for the compile check of the CUDA benchmark kernels (NVRTC needs
# no GPU): NVIDIA's nvidia-cuda-nvrtc-cu12 wheel from PyPI, the CUDA 12.4
# release the workspace's cudarc bindings are pinned to, checked against
# its hash and unpacked once into target/nvrtc. 25 MB; skipped with
# VCOMPUTE_NO_NVRTC=1. Not fatal: without it the check prints SKIPPED.
root=$(cd "$(dirname "$0")/.." && pwd)
nvrtc_dir=$root/target/nvrtc
nvrtc_wheel=nvidia_cuda_nvrtc_cu12-12.4.127-py3-none-manylinux2014_x86_64.whl
nvrtc_sha256=a178759ebb095827bd30ef56598ec182b85547f1508941a3d560eb7ea1fbf338
if [ -z "${VCOMPUTE_NO_NVRTC:-}" ] && [ ! -e "$nvrtc_dir/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" ]; then
    mkdir -p "$nvrtc_dir"
    if python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux2014_x86_64 -d "$nvrtc_dir" nvidia-cuda-nvrtc-cu12==12.4.127 &&
        echo "$nvrtc_sha256  $nvrtc_dir/$nvrtc_wheel" | sha256sum -c --quiet; then
        python3 -m zipfile -e "$nvrtc_dir/$nvrtc_wheel" "$nvrtc_dir"
        rm -f "$nvrtc_dir/$nvrtc_wheel"
    else
        echo "deps.sh: warning: could not fetch NVRTC; the CUDA kernel compile check will be SKIPPED" >&2
    fi
fi
