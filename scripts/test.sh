#!/usr/bin/env bash
# The test command: installs dependencies, checks the house rules
# (scripts/lint.sh: rustfmt, clippy, rustdoc, the MSRV, the fuzz targets'
# build), then builds and runs the whole test suite (unit, property,
# integration and end-to-end through the daemon on POCL), the benchmark
# harness's smoke run, piglit's OpenCL tests natively and through the shim
# (the CI subset; scripts/piglit-cl.sh runs the whole profile) and the
# booted-guest tests (two QEMU guests over vhost-user-vsock; one guest
# with the guest driver and the daemon as its virtio-compute device).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/lint.sh

export RUST_BACKTRACE=1
cargo build --workspace --all-targets
if command -v cargo-nextest >/dev/null; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
# Doc tests (nextest does not run them).
cargo test --workspace --doc

# Benchmark harness smoke test: every workload at small sizes, natively and
# through the daemon, each result checked against its CPU reference; the
# table, JSON and SVG are produced as in a real run. Checks correctness
# through the whole path, not speed.
cargo build --release -p vhost-device-compute -p vcompute-shim -p vcompute-bench -p vmm-plugin
target/release/vcompute-bench run --quick --out target/vcompute-bench-quick
# Time to first call through fresh worker processes, warm and cold: a
# smoke run of the measurement (each probe checks its kernel's result).
target/release/vcompute-bench coldstart --samples 2 --gap-ms 100

# piglit's OpenCL tests (the subset in scripts/piglit/cl-ci.txt, some 30 s),
# natively and through a daemon, compared test by test against the known
# differences in scripts/piglit/cl-expected.txt.
scripts/piglit-cl.sh --ci

# Booted guests: a Debian cloud kernel under QEMU (TCG), the shim inside,
# the daemon as the VMs' vhost-user-vsock device.
scripts/vm-test.sh

# A booted guest with the virtio-compute device: the guest driver built for
# the test kernel, the daemon in device mode behind QEMU's carrier device,
# clinfo, vector adds from two programs at once, a killed program and a
# killed VM.
scripts/vm-device-test.sh
