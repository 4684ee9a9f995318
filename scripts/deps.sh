#!/usr/bin/env bash
# Installs what building and testing virtio-compute needs on Debian 12:
# the OpenCL loader and headers, POCL (a CPU OpenCL runtime), clinfo, and
# CLBlast's tuners (a third-party OpenCL program the tests run through the
# shim), and the Rust toolchain pinned in rust-toolchain.toml. For the
# booted-guest test (scripts/vm-test.sh): QEMU 10 from bookworm-backports,
# busybox-static and cpio (the guest kernel itself is fetched by
# scripts/vm/build-initramfs.sh). Idempotent.
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
