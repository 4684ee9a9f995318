#!/usr/bin/env bash
# Runs every fuzz target for a fixed time (default 60 s each): the protocol
# decoders, the CUDA module image parser, the fat binary parser (with its
# LZ4 and Zstd entries), the vsock connection muxer and
# whole stream sessions, all fed guest bytes.
# Usage: scripts/fuzz.sh [seconds]
# Not part of the default test command: it needs cargo-fuzz and takes minutes.
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes -Z sanitizer flags; allow them on the stable toolchain.
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
    echo "== fuzzing $target for ${secs}s"
    mkdir -p "corpus/$target"
    cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536
done
echo "fuzz: all targets ran ${secs}s clean"
