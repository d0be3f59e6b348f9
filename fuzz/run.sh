#!/usr/bin/env bash
# Runs every fuzz target, one after the other, for SECONDS each (60 by default), on the
# minimized corpus in corpus/<target> plus the hand-written seeds in seeds/<target>. New inputs
# that reach new code are added to corpus/<target>; a crash stops the script with the failing
# input in artifacts/<target>/ (replay it with `cargo +nightly fuzz run -s none -a <target> <file>`).
#
#   fuzz/run.sh            # 60 s per target
#   fuzz/run.sh 600        # 10 minutes per target
#   TARGETS="topic structured" fuzz/run.sh 30
#
# Needs nightly Rust and cargo-fuzz (`cargo install cargo-fuzz`). The Kafka target builds
# librdkafka with cmake the first time; leave it out with TARGETS when cmake is missing. Each
# target's last libFuzzer status line (executions, coverage `cov:` and features `ft:`) is printed
# at the end and kept in `fuzz/target/run-<target>.log`.
set -euo pipefail

seconds="${1:-60}"
cd "$(dirname "$0")"
all="nats_headers amqp_properties kafka_headers redis_fields mqtt_properties structured attributes decode_protobuf decode_json topic"
targets="${TARGETS:-$all}"

# cargo fuzz builds with its own flags in fuzz/target; a target dir set for ordinary builds
# would mix the two.
unset CARGO_TARGET_DIR

# Every tidings crate forbids `unsafe`, so a memory sanitizer has little to find; overflow and
# the other debug assertions are what a parser trips.
flags=(--sanitizer none --debug-assertions)

mkdir -p target
for target in $targets; do
    features=()
    if [ "$target" = kafka_headers ]; then
        features=(--features kafka)
    fi
    mkdir -p "corpus/$target" "seeds/$target"
    echo "== $target: $seconds s"
    set +e
    cargo +nightly fuzz run "${flags[@]}" "${features[@]}" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>&1 | tee "target/run-$target.log" |
        grep -E '^(#[0-9]+[[:space:]]+(DONE|INITED)|Done|==[0-9]+==|.*panicked|stat::number_of_executed_units)'
    # A crash, or a build that failed, ends the run with the fuzzer's (or cargo's) status.
    status="${PIPESTATUS[0]}"
    set -e
    if [ "$status" -ne 0 ]; then
        echo "$target failed (status $status); see fuzz/target/run-$target.log" >&2
        exit 1
    fi
done

echo
echo "target | executions | cov | ft"
for target in $targets; do
    last="$(grep -E '^#[0-9]+[[:space:]]+DONE' "target/run-$target.log" | tail -n 1 || true)"
    execs="$(grep -oE 'stat::number_of_executed_units: [0-9]+' "target/run-$target.log" | grep -oE '[0-9]+$' || true)"
    cov="$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || true)"
    ft="$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || true)"
    echo "$target | ${execs:-?} | ${cov:-?} | ${ft:-?}"
done
