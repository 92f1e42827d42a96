#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 60) on one core, one after the other.
# Usage: fuzz/run.sh [seconds]
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc accept the nightly flags
# cargo-fuzz passes (sanitizer, coverage instrumentation).
set -euo pipefail

seconds="${1:-60}"
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
status=0
for target in sftp_session sftp_packet proxy_header authorized_keys_line; do
    mkdir -p "corpus/$target"
    dict=""
    case "$target" in sftp_*) dict="-dict=sftp.dict" ;; esac
    echo "== $target for ${seconds}s"
    # The first corpus directory collects new inputs; seeds/ is read only.
    # One process (the default) uses one core; -timeout catches an input that spins.
    cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        $dict -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        || status=$?
done
exit "$status"
