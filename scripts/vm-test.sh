#!/usr/bin/env bash
# Booted-guest end-to-end test. Boots two Debian cloud-kernel guests under
# QEMU (TCG) at the same time, each attached to its own daemon through
# vhost-user-vsock-pci (guest memory: memory-backend-memfd, share=on), and
# checks from each serial console that clinfo and a verified vector add run
# through the shim against the daemon (POCL on the host), that a guest
# program killed mid-run leaves the daemon serving, and then kills each VM
# mid-run and checks that its daemon is still serving (a vector add from
# the host through the daemon's unix listener) with its file descriptors
# and threads back where they were before the VM came.
#
# Usage: scripts/vm-test.sh  (after `cargo build --release -p
# vhost-device-compute -p vcompute-shim`; scripts/deps.sh installs the rest)
# VCOMPUTE_VM_TIMEOUT (default 900) bounds the whole guest run in seconds.
# VCOMPUTE_VM_BENCH=1 also runs the micro-benchmark workloads over vsock in
# guest 1 and prints their p50 (needs target/release/vcompute-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
timeout_s=${VCOMPUTE_VM_TIMEOUT:-900}
rel=target/release
port=7000
for f in "$rel/vhost-device-compute" "$rel/libvcompute_shim.so"; do
    [ -f "$f" ] || { echo "vm-test: $f missing; cargo build --release first" >&2; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null || { echo "vm-test: qemu-system-x86_64 missing (scripts/deps.sh)" >&2; exit 1; }

bench=${VCOMPUTE_VM_BENCH:-0}
if [ "$bench" = 1 ]; then
    BENCH_BIN="$rel/vcompute-bench" scripts/vm/build-initramfs.sh "$rel/libvcompute_shim.so" "$port"
else
    scripts/vm/build-initramfs.sh "$rel/libvcompute_shim.so" "$port"
fi
vm=target/vm
cc -O2 -Wall -o "$vm/vadd-host" scripts/vm/vadd.c -lOpenCL

dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

fail() {
    echo "vm-test: FAILED: $*" >&2
    for i in 1 2; do
        [ -f "$dir/serial$i.log" ] && { echo "--- guest $i serial (last 40 lines)"; tail -n 40 "$dir/serial$i.log"; }
        [ -f "$dir/daemon$i.log" ] && { echo "--- daemon $i log (last 20 lines)"; tail -n 20 "$dir/daemon$i.log"; }
    done >&2
    exit 1
}

count() { ls "/proc/$1/$2" 2>/dev/null | wc -l; }

# Host-side vector add through daemon $1's unix listener.
host_vadd() {
    OCL_ICD_VENDORS="$PWD/$rel/libvcompute_shim.so" VCOMPUTE_ENDPOINT="unix:$dir/host$1.sock" \
        timeout 120 "$vm/vadd-host" 65536
}

declare -A daemon qemu fds0 threads0
for i in 1 2; do
    cid=$((2 + i))
    RUST_LOG=info "$rel/vhost-device-compute" --socket "$dir/vm$i.sock" --vsock-cid "$cid" \
        --vsock-port "$port" --listen "unix:$dir/host$i.sock" --executor opencl \
        2> "$dir/daemon$i.log" &
    daemon[$i]=$!
    pids+=("$!")
done
for i in 1 2; do
    for _ in $(seq 200); do [ -S "$dir/vm$i.sock" ] && [ -S "$dir/host$i.sock" ] && break; sleep 0.05; done
    [ -S "$dir/vm$i.sock" ] || fail "daemon $i did not create its sockets"
    # Warm the runtime up (compiler, thread pool) before taking the baseline.
    host_vadd "$i" > /dev/null || fail "host vadd through daemon $i before the VM"
done
sleep 0.5
for i in 1 2; do
    fds0[$i]=$(count "${daemon[$i]}" fd)
    threads0[$i]=$(count "${daemon[$i]}" task)
done

SECONDS=0
for i in 1 2; do
    extra=""
    [ "$bench" = 1 ] && [ "$i" = 1 ] && extra=" vcompute.bench=1"
    qemu-system-x86_64 -accel tcg -cpu max -smp 1 -m 512M \
        -object memory-backend-memfd,id=mem,size=512M,share=on -machine pc,memory-backend=mem \
        -kernel "$vm/vmlinuz" -initrd "$vm/initramfs.gz" \
        -append "console=ttyS0 panic=-1 quiet$extra" \
        -chardev "socket,id=vs,path=$dir/vm$i.sock" -device vhost-user-vsock-pci,chardev=vs \
        -nodefaults -display none -monitor none -serial "file:$dir/serial$i.log" -no-reboot \
        2> "$dir/qemu$i.log" &
    qemu[$i]=$!
    pids+=("$!")
done

# Wait (bounded, counted in polls so that a clock step cannot cut it short)
# for both guests to reach their final busy loop.
polls=0
for i in 1 2; do
    until grep -A100 "VCOMPUTE: DONE" "$dir/serial$i.log" 2>/dev/null | grep -q "VADD READY"; do
        grep -q "VCOMPUTE: FAIL" "$dir/serial$i.log" 2>/dev/null &&
            fail "guest $i: $(grep -m1 'VCOMPUTE: FAIL' "$dir/serial$i.log")"
        kill -0 "${qemu[$i]}" 2>/dev/null ||
            fail "guest $i: QEMU exited early ($(tail -n 3 "$dir/qemu$i.log" | tr '\n' ' '))"
        polls=$((polls + 1))
        [ "$polls" -lt $((timeout_s * 2)) ] ||
            fail "guest $i did not finish within ${timeout_s}s"
        sleep 0.5
    done
done
elapsed=$SECONDS

for i in 1 2; do
    s="$dir/serial$i.log"
    grep -q "VCOMPUTE: CLINFO OK" "$s" || fail "guest $i: clinfo did not run"
    grep -q "VCOMPUTE: VADD OK n=262144" "$s" || fail "guest $i: vector add did not verify"
    grep -q "VCOMPUTE: AFTER-KILL VADD OK" "$s" || fail "guest $i: no vector add after a killed program"
    grep "VCOMPUTE:" "$s" | sed "s/^/guest $i: /"
done

# Kill each VM in the middle of its busy loop.
for i in 1 2; do
    kill -9 "${qemu[$i]}"
    wait "${qemu[$i]}" 2>/dev/null || true
done
for i in 1 2; do
    kill -0 "${daemon[$i]}" 2>/dev/null || fail "daemon $i died with its VM"
    fds=0 threads=0
    for _ in $(seq 200); do
        fds=$(count "${daemon[$i]}" fd)
        threads=$(count "${daemon[$i]}" task)
        [ "$fds" -le "${fds0[$i]}" ] && [ "$threads" -le "${threads0[$i]}" ] && break
        sleep 0.1
    done
    [ "$fds" -le "${fds0[$i]}" ] || fail "daemon $i: fds ${fds0[$i]} before the VM, $fds after it was killed"
    [ "$threads" -le "${threads0[$i]}" ] || fail "daemon $i: threads ${threads0[$i]} before the VM, $threads after"
    out=$(host_vadd "$i") || fail "daemon $i does not serve after its VM was killed: $out"
    # clinfo, vadd, the killed vadd, vadd again, the final loop (+ the bench).
    want=5
    [ "$bench" = 1 ] && [ "$i" = 1 ] && want=6
    conns=$(grep -c "guest vsock connection opened" "$dir/daemon$i.log" || true)
    [ "$conns" -eq "$want" ] || fail "daemon $i saw $conns guest connections, expected its own guest's $want"
    echo "daemon $i: VM killed mid-run; still serving ($out); fds ${fds0[$i]} -> $fds, threads ${threads0[$i]} -> $threads"
done
echo "vm-test: 2 guests booted and passed concurrently in ${elapsed}s (TCG)"
