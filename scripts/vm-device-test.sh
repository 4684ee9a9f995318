#!/usr/bin/env bash
# Booted-guest test of the virtio-compute device: builds the guest driver
# (guest-driver/) for the test guest's Debian cloud kernel, boots it under
# QEMU (TCG) with the daemon in device mode attached through QEMU's
# vhost-user-fs-pci as a carrier (virtio ID 26; QEMU 10 cannot create a
# generic vhost-user device, see docs/operators.md), loads vcompute.ko
# carrier_id=26, and checks from the serial console that clinfo and a
# verified vector add run through /dev/vcompute0 (named, and picked with
# VCOMPUTE_ENDPOINT unset), that two programs at once both verify, and
# that a program killed with SIGKILL mid-run leaves the device serving the
# next. The daemon's log must show every earlier session closed when the
# last program opens its own, and the VM's end closing that one. Then the host kills the VM mid-run
# and checks that the daemon serves on (a vector add through its unix
# listener) with its file descriptors and threads back where they were.
#
# Usage: scripts/vm-device-test.sh  (after `cargo build --release -p
# vhost-device-compute -p vcompute-shim -p vmm-plugin`; scripts/deps.sh
# installs the rest). The device's QEMU options are `vcompute-attach qemu`'s
# output, the same builder docs/operators.md shows.
# VCOMPUTE_VM_TIMEOUT (default 900) bounds the guest run in seconds.
# VCOMPUTE_DAEMON overrides the daemon binary.
# VCOMPUTE_VM_BENCH=1 also runs the micro-benchmark workloads in the guest
# over the device and over vsock (a second daemon as the VM's
# vhost-user-vsock device) and prints their p50s and ratios (needs
# target/release/vcompute-bench). Not a test: TCG numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
timeout_s=${VCOMPUTE_VM_TIMEOUT:-900}
rel=target/release
port=7000
daemon_bin=${VCOMPUTE_DAEMON:-$rel/vhost-device-compute}
bench=${VCOMPUTE_VM_BENCH:-0}
for f in "$daemon_bin" "$rel/libvcompute_shim.so" "$rel/vcompute-attach"; do
    [ -f "$f" ] || { echo "vm-device-test: $f missing; cargo build --release first" >&2; exit 1; }
done
[ "$bench" = 1 ] && [ ! -f "$rel/vcompute-bench" ] &&
    { echo "vm-device-test: $rel/vcompute-bench missing (cargo build --release -p vcompute-bench)" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "vm-device-test: qemu-system-x86_64 missing (scripts/deps.sh)" >&2; exit 1; }
"$daemon_bin" --help 2>&1 | grep -q -- "--device" ||
    { echo "vm-device-test: FAILED: $daemon_bin has no --device mode" >&2; exit 1; }

vm=target/vm
# The kernel first (build-driver.sh builds for the kernel it fetched), then
# the driver, then the initramfs holding it.
[ -f "$vm/kernel-package" ] && [ -f "$vm/vmlinuz" ] ||
    scripts/vm/build-initramfs.sh "$rel/libvcompute_shim.so" "$port" > /dev/null
ko=$(scripts/vm/build-driver.sh)
if [ "$bench" = 1 ]; then
    DRIVER_KO="$ko" BENCH_BIN="$rel/vcompute-bench" scripts/vm/build-initramfs.sh "$rel/libvcompute_shim.so" "$port"
else
    DRIVER_KO="$ko" scripts/vm/build-initramfs.sh "$rel/libvcompute_shim.so" "$port"
fi
cc -O2 -Wall -o "$vm/vadd-host" scripts/vm/vadd.c -lOpenCL

dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # The daemon's log stays for a look after the run.
    cp "$dir/daemon.log" "$vm/device-daemon.log" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

fail() {
    echo "vm-device-test: FAILED: $*" >&2
    {
        [ -f "$dir/serial.log" ] && { echo "--- guest serial (last 40 lines)"; tail -n 40 "$dir/serial.log"; }
        [ -f "$dir/daemon.log" ] && { echo "--- daemon log (last 20 lines)"; tail -n 20 "$dir/daemon.log"; }
        [ -f "$dir/qemu.log" ] && { echo "--- qemu"; tail -n 5 "$dir/qemu.log"; }
    } >&2
    exit 1
}

count() { ls "/proc/$1/$2" 2>/dev/null | wc -l; }

# The daemon logs one info line per device session opened or closed
# ("device session opened session=N open=M", M the sessions then open) and
# one when a device reset ends the rest ("device reset; its sessions are
# closed"). The
# lines go through a rate limiter (10 per 10 s; a line after suppressed
# ones says suppressed=K), so the checks read the fields of single lines,
# never count lines. field LINE NAME: the value of NAME= in LINE.
field() { echo "$1" | sed -nE "s/.*[^a-z_]$2=([0-9]+).*/\1/p"; }

host_vadd() {
    OCL_ICD_VENDORS="$PWD/$rel/libvcompute_shim.so" VCOMPUTE_ENDPOINT="unix:$dir/host.sock" \
        timeout 120 "$vm/vadd-host" 65536
}

RUST_LOG=info "$daemon_bin" --socket "$dir/dev.sock" --device \
    --listen "unix:$dir/host.sock" --executor opencl 2> "$dir/daemon.log" &
daemon=$!
pids+=("$!")
vsock_args=()
if [ "$bench" = 1 ]; then
    RUST_LOG=warn "$daemon_bin" --socket "$dir/vsock.sock" --vsock-cid 3 --vsock-port "$port" \
        --executor opencl 2> "$dir/daemon-vsock.log" &
    pids+=("$!")
    vsock_args=(-chardev "socket,id=vs,path=$dir/vsock.sock" -device vhost-user-vsock-pci,chardev=vs)
fi
for _ in $(seq 200); do [ -S "$dir/dev.sock" ] && [ -S "$dir/host.sock" ] && break; sleep 0.05; done
[ -S "$dir/dev.sock" ] || fail "the daemon did not create its sockets"
if [ "$bench" = 1 ]; then
    for _ in $(seq 200); do [ -S "$dir/vsock.sock" ] && break; sleep 0.05; done
    [ -S "$dir/vsock.sock" ] || fail "the vsock daemon did not create its socket"
fi
# Warm the runtime up (compiler, thread pool) before taking the baseline.
host_vadd > /dev/null || fail "host vadd through the daemon before the VM"
sleep 0.5
fds0=$(count "$daemon" fd)
threads0=$(count "$daemon" task)

# slub_debug: red zones and poisoning, so that a use-after-free or an
# overrun of the driver's allocations shows in the kernel log, which the
# guest checks before it says DONE.
mem=512M
extra=""
[ "$bench" = 1 ] && { mem=1G; extra=" vcompute.bench=1"; }
attach=$("$rel/vcompute-attach" qemu --socket "$dir/dev.sock" --memory "$mem" --machine pc) ||
    fail "vcompute-attach qemu"
attach_args=()
while read -r opt val; do attach_args+=("$opt" "$val"); done <<< "$attach"
SECONDS=0
qemu-system-x86_64 -accel tcg -cpu max -smp 1 -m "$mem" \
    -kernel "$vm/vmlinuz" -initrd "$vm/initramfs-device.gz" \
    -append "console=ttyS0 panic=-1 quiet slub_debug=FZPU$extra" \
    "${attach_args[@]}" \
    "${vsock_args[@]}" \
    -nodefaults -display none -monitor none -serial "file:$dir/serial.log" -no-reboot \
    2> "$dir/qemu.log" &
qemu=$!
pids+=("$!")

# Wait (bounded, counted in polls so that a clock step cannot cut it short)
# for the guest to reach its final busy loop.
s="$dir/serial.log"
polls=0
until grep -A100 "VCOMPUTE: DONE" "$s" 2>/dev/null | grep -q "VADD READY"; do
    grep -q "VCOMPUTE: FAIL" "$s" 2>/dev/null && fail "guest: $(grep -m1 'VCOMPUTE: FAIL' "$s")"
    kill -0 "$qemu" 2>/dev/null || fail "QEMU exited early ($(tail -n 3 "$dir/qemu.log" | tr '\n' ' '))"
    polls=$((polls + 1))
    [ "$polls" -lt $((timeout_s * 2)) ] || fail "the guest did not finish within ${timeout_s}s"
    sleep 0.5
done
elapsed=$SECONDS

grep -q "VCOMPUTE: CLINFO OK" "$s" || fail "clinfo did not run"
grep -q "VCOMPUTE: VADD OK n=262144" "$s" || fail "the vector add did not verify"
grep -q "VCOMPUTE: AUTO VADD OK n=65536" "$s" || fail "no vector add with VCOMPUTE_ENDPOINT unset"
grep -q "VCOMPUTE: PARALLEL VADD OK x2" "$s" || fail "the two vector adds at once did not verify"
grep -q "VCOMPUTE: AFTER-KILL VADD OK" "$s" || fail "no vector add after a killed program"
grep -q "VCOMPUTE: ABI OK" "$s" || fail "the driver's ABI checks did not pass"
grep "VCOMPUTE:" "$s" | grep -v "BENCH" | sed "s/^/guest: /"

# Sessions: clinfo, vadd, the unset-endpoint vadd, two at once, the killed
# loop, vadd again, the ABI check's four (two files, one for a timed-out
# chain, one after the device was unbound and bound again), (the device
# benchmark,) then the final loop (the guest waits out the limiter's window before it, so its
# open is logged): its session is the 12th (13th) the device opened and
# the only one open, so every earlier program's session was closed when it
# exited or was killed.
want=12
[ "$bench" = 1 ] && want=13
last_open=$(grep "device session opened" "$dir/daemon.log" | tail -n 1)
[ -n "$last_open" ] || fail "the daemon logged no device session"
id=$(field "$last_open" session)
open=$(field "$last_open" open)
[ "$id" = "$want" ] || fail "the final program has device session ${id:-?}, expected number $want"
[ "$open" = 1 ] || fail "${open:-?} device sessions open when the final program started, expected only its own"
echo "daemon: $id device sessions opened, all closed before the last one opened (open=$open)"

if [ "$bench" = 1 ]; then
    grep "VCOMPUTE: BENCH" "$s" | sed 's/^VCOMPUTE: //'
    # p50 per workload over each transport, and vsock / device.
    grep "VCOMPUTE: BENCH" "$s" | awk '
        { t = $3; w = $4; sub("p50_ns=", "", $6); p[t, w] = $6; ws[w] = 1; order[++k] = w }
        END {
            printf "%-8s %14s %14s %8s\n", "workload", "device p50 ns", "vsock p50 ns", "ratio"
            for (i = 1; i <= k; i++) {
                w = order[i]; if (seen[w]++) continue
                r = p["device", w] > 0 ? p["vsock", w] / p["device", w] : 0
                printf "%-8s %14d %14d %7.2fx\n", w, p["device", w], p["vsock", w], r
            }
        }'
fi

# Kill the VM in the middle of its busy loop.
kill -9 "$qemu"
wait "$qemu" 2>/dev/null || true
kill -0 "$daemon" 2>/dev/null || fail "the daemon died with its VM"
fds=0 threads=0
for _ in $(seq 200); do
    fds=$(count "$daemon" fd)
    threads=$(count "$daemon" task)
    [ "$fds" -le "$fds0" ] && [ "$threads" -le "$threads0" ] && break
    sleep 0.1
done
[ "$fds" -le "$fds0" ] || fail "fds $fds0 before the VM, $fds after it was killed"
[ "$threads" -le "$threads0" ] || fail "threads $threads0 before the VM, $threads after"
# The device's connection is served by a worker process (the log lines'
# "worker PID:" prefix); the VM's end ends the connection, and the worker
# goes with every session it still had.
worker=$(echo "$last_open" | sed -nE 's/^worker ([0-9]+):.*/\1/p')
[ -n "$worker" ] || fail "no worker process named in the daemon's log"
for _ in $(seq 100); do kill -0 "$worker" 2>/dev/null || break; sleep 0.1; done
kill -0 "$worker" 2>/dev/null && fail "worker $worker still runs after its VM was killed"
out=$(host_vadd) || fail "the daemon does not serve after its VM was killed: $out"
echo "daemon: VM killed mid-run; still serving ($out); fds $fds0 -> $fds, threads $threads0 -> $threads"
echo "vm-device-test: the guest driver and the device passed in ${elapsed}s (TCG)"
