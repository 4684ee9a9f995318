#!/usr/bin/env bash
# Builds what the booted-guest test needs under OUT (default target/vm):
#   vmlinuz        a Debian cloud kernel (linux-image-cloud-amd64), fetched
#                  from the Debian archive with apt-get download
#   initramfs.gz   busybox, the virtio-vsock modules, the shim, the ocl-icd
#                  loader, clinfo and the vadd test program (scripts/vm/vadd.c),
#                  with scripts/vm/init as PID 1
# Usage: scripts/vm/build-initramfs.sh SHIM_SO [PORT]
# With BENCH_BIN=path/to/vcompute-bench the benchmark worker is included too.
# With DRIVER_KO=path/to/vcompute.ko (scripts/vm/build-driver.sh) the guest
# driver is included and scripts/vm/init-device is PID 1 instead; the
# result is then initramfs-device.gz.
# Needs busybox-static, cpio, clinfo, ocl-icd-opencl-dev and a C compiler
# (scripts/deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
shim=${1:?usage: $0 path/to/libvcompute_shim.so [port]}
port=${2:-7000}
out=${OUT:-target/vm}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# --- kernel -----------------------------------------------------------------
kernel_pkg() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
if [ ! -f "$out/vmlinuz" ] || [ ! -d "$out/modules" ]; then
    pkg=$(kernel_pkg)
    if [ -z "$pkg" ]; then
        apt-get update -qq
        pkg=$(kernel_pkg)
    fi
    [ -n "$pkg" ] || { echo "build-initramfs: cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
    dl=$(mktemp -d)
    chmod 777 "$dl"
    (cd "$dl" && apt-get download -q "$pkg" >/dev/null)
    dpkg-deb -x "$dl"/"$pkg"_*.deb "$dl/root"
    cp "$dl"/root/boot/vmlinuz-* "$out/vmlinuz"
    rm -rf "$out/modules"
    mkdir -p "$out/modules"
    for m in drivers/virtio/virtio_ring drivers/virtio/virtio \
             drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci_modern_dev \
             drivers/virtio/virtio_pci net/vmw_vsock/vsock \
             net/vmw_vsock/vmw_vsock_virtio_transport_common \
             net/vmw_vsock/vmw_vsock_virtio_transport; do
        cp "$dl"/root/lib/modules/*/kernel/$m.ko "$out/modules/"
    done
    echo "$pkg" > "$out/kernel-package"
    rm -rf "$dl"
fi

# --- initramfs ----------------------------------------------------------------
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,opt/vcompute,lib/modules}
cp /bin/busybox "$root/bin/busybox"
file "$root/bin/busybox" 2>/dev/null | grep -q "statically linked" ||
    ldd /bin/busybox 2>&1 | grep -q "not a dynamic" ||
    { echo "build-initramfs: /bin/busybox is not static (apt-get install busybox-static)" >&2; exit 1; }
cp "$out"/modules/*.ko "$root/lib/modules/"
image=initramfs.gz
if [ -n "${DRIVER_KO:-}" ]; then
    cp "$DRIVER_KO" "$root/lib/modules/vcompute.ko"
    cp scripts/vm/init-device "$root/init"
    image=initramfs-device.gz
else
    cp scripts/vm/init "$root/init"
fi
chmod 755 "$root/init"
echo "$port" > "$root/etc/vcompute-port"

cc -O2 -Wall -o "$root/opt/vcompute/vadd" scripts/vm/vadd.c -lOpenCL
[ -n "${DRIVER_KO:-}" ] &&
    cc -O2 -Wall -I guest-driver -o "$root/opt/vcompute/vcompute-abi" scripts/vm/vcompute-abi.c
cp "$shim" "$root/opt/vcompute/libvcompute_shim.so"
strip --strip-debug "$root/opt/vcompute/libvcompute_shim.so"
cp "$(command -v clinfo)" "$root/bin/clinfo"
bins=("$root/opt/vcompute/vadd" "$root/opt/vcompute/libvcompute_shim.so" "$root/bin/clinfo")
if [ -n "${BENCH_BIN:-}" ]; then
    cp "$BENCH_BIN" "$root/opt/vcompute/vcompute-bench"
    strip --strip-debug "$root/opt/vcompute/vcompute-bench"
    bins+=("$root/opt/vcompute/vcompute-bench")
fi

# Every shared library the programs need, at the path the loader expects.
for bin in "${bins[@]}"; do
    ldd "$bin" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'
done | sort -u | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/$image"
echo "build-initramfs: $out/vmlinuz ($(cat "$out/kernel-package")), $out/$image ($(du -h "$out/$image" | cut -f1))"
