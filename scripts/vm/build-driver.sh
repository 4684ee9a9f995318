#!/usr/bin/env bash
# Builds guest-driver/vcompute.ko for the test guest's kernel (the Debian
# cloud kernel of scripts/vm/build-initramfs.sh, recorded in
# target/vm/kernel-package). The kernel's headers packages
# (linux-headers-VER-cloud-amd64, its -common part and linux-kbuild) are
# fetched with apt-get download and unpacked under target/vm/kheaders, so
# nothing is installed on the host; the host's gcc builds the module.
# Usage: scripts/vm/build-driver.sh   (prints the path of vcompute.ko)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-target/vm}
out=$(cd "$out" && pwd)
pkg=$(cat "$out/kernel-package" 2>/dev/null) ||
    { echo "build-driver: $out/kernel-package missing (run scripts/vm/build-initramfs.sh first)" >&2; exit 1; }
ver=${pkg#linux-image-}               # e.g. 6.1.0-57-cloud-amd64
common=${ver%-cloud-amd64}-common     # e.g. 6.1.0-57-common
kbuild=linux-kbuild-$(echo "$ver" | cut -d. -f1-2)
kh=$out/kheaders
tree=$kh/usr/src/linux-headers-$ver
if [ ! -f "$tree/.unpacked" ]; then
    rm -rf "$kh"
    dl=$(mktemp -d)
    chmod 777 "$dl"
    (cd "$dl" && apt-get download -q "linux-headers-$ver" "linux-headers-$common" "$kbuild" >/dev/null)
    for d in "$dl"/*.deb; do dpkg-deb -x "$d" "$kh"; done
    rm -rf "$dl"
    # The headers' Makefile includes the -common tree by its installed
    # path, and their symlinks point at the installed kbuild: point both
    # at the unpacked copies.
    sed -i "s|/usr/src/linux-headers-$common|$kh/usr/src/linux-headers-$common|" "$tree/Makefile"
    for t in "$tree" "$kh/usr/src/linux-headers-$common"; do
        for l in scripts tools; do ln -sfn "$kh/usr/lib/$kbuild/$l" "$t/$l"; done
    done
    touch "$tree/.unpacked"
fi
build=$out/driver-build
rm -rf "$build"
mkdir -p "$build"
cp guest-driver/vcompute.c guest-driver/vcompute_uapi.h guest-driver/Kbuild "$build/"
make -s -C "$tree" M="$build" modules >&2
echo "$build/vcompute.ko"
