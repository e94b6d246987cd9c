#!/usr/bin/env bash
# Runs every fuzz target of this crate for SECONDS seconds each (default 45)
# and stops at the first crash (its input is left in artifacts/TARGET/).
#
#   bash fuzz/run.sh [SECONDS]
#
# Per target, if present: seeds/TARGET/ (a seed corpus, read only) and
# options/TARGET (extra libFuzzer flags on one line). The working corpus is
# corpus/TARGET/ (not committed).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-45}
cargo +nightly fuzz build
for t in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$t"
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    extra=()
    [ -f "options/$t" ] && read -r -a extra < "options/$t"
    echo "fuzz: $t for ${secs}s"
    log="target/fuzz-$t.log"
    if ! cargo +nightly fuzz run "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -print_final_stats=1 "${extra[@]}" >"$log" 2>&1; then
        tail -n 80 "$log" >&2
        echo "fuzz: $t found a crash; the input is in fuzz/artifacts/$t/ (full log $log)" >&2
        exit 1
    fi
    grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' "$log"
done
