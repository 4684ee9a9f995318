#!/usr/bin/env bash
# Installs what building and testing virtio-compute needs on Debian 12:
# the OpenCL loader and headers, POCL (a CPU OpenCL runtime), clinfo, and
# CLBlast's tuners (a third-party OpenCL program the tests run through the
# shim), and the Rust toolchain pinned in rust-toolchain.toml. Idempotent.
set -euo pipefail

pkgs=(pocl-opencl-icd ocl-icd-opencl-dev opencl-headers clinfo clblast-utils build-essential pkg-config ${EXTRA_PKGS:-})
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
# rust-toolchain.toml pins the version; this makes rustup fetch it if needed.
cargo --version >/dev/null
