#!/usr/bin/env bash
# The libFuzzer targets (tests/fuzz/fuzz_*.c), built with clang under ASan+UBSan into
# $BUILD/fuzz/ (default build/fuzz/), and what `make fuzz`, `make fuzz-merge` do with them:
#
#   build.sh run    build, then run each target for FUZZ_TIME seconds (default 60) on a working
#                   copy of its kept corpus, $BUILD/fuzz/corpus/<target>/ (the kept corpus in
#                   tests/fuzz/corpus/ is only read: the tree stays clean). A crash stops the
#                   run with the input saved in $BUILD/fuzz/artifacts/<target>/.
#   build.sh merge  build, then minimise what the runs found into the kept corpus
#                   (libFuzzer -merge=1: only the inputs that add coverage are copied in).
#   build.sh build  only build.
#
# FUZZ_TARGETS="config der_write" limits it to some targets. A dictionary
# tests/fuzz/<target>.dict, when there is one, is given to the run.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
mode=${1:-run}
build=${BUILD:-build}
out=$build/fuzz
time=${FUZZ_TIME:-${FUZZ_SECONDS:-60}}
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

case $mode in run | merge | build) ;; *)
    echo "usage: $0 run|merge|build" >&2
    exit 2
    ;;
esac
targets=${FUZZ_TARGETS:-$(for s in tests/fuzz/fuzz_*.c; do s=${s##*/fuzz_}; echo "${s%.c}"; done)}

# objects built with other flags (an older build.sh) are rebuilt: make does not track flags
if [ "$(cat "$out/obj/.flags" 2>/dev/null)" != "$san" ]; then
    rm -rf "$out/obj" "$out"/fuzz_*
    mkdir -p "$out/obj"
    echo "$san" >"$out/obj/.flags"
fi
make --no-print-directory BUILD="$out/obj" CC=clang SAN="$san" CFLAGS="-O1 -g" \
    "$out/obj/libcommon.a" "$out/obj/libtsa.a" "$out/obj/libocsp.a" >/dev/null
for t in $targets; do
    src=tests/fuzz/fuzz_$t.c
    [ -f "$src" ] || { echo "fuzz: no target $t ($src)" >&2; exit 2; }
    if [ ! -x "$out/fuzz_$t" ] || [ -n "$(find "$src" "$out/obj" -newer "$out/fuzz_$t" \
        -name '*.[ca]' -print -quit)" ]; then
        clang -O1 -g -std=c11 -D_GNU_SOURCE -I. -I/usr/include/p11-kit-1 \
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
            -fno-omit-frame-pointer -o "$out/fuzz_$t" "$src" \
            "$out/obj/libtsa.a" "$out/obj/libocsp.a" "$out/obj/libcommon.a" \
            -lssl -lcrypto -lmicrohttpd -llmdb -linih -ldl -lm -pthread
    fi
done
[ "$mode" = build ] && exit 0

for t in $targets; do
    kept=tests/fuzz/corpus/$t
    work=$out/corpus/$t
    mkdir -p "$kept" "$work" "$out/artifacts/$t"
    if [ "$mode" = merge ]; then
        before=$(find "$kept" -type f | wc -l)
        "$out/fuzz_$t" -merge=1 -max_len=8192 "$kept" "$work" 2>"$out/merge-$t.log" || {
            echo "fuzz-merge: $t failed, see $out/merge-$t.log" >&2
            exit 1
        }
        echo "fuzz-merge: $t: $before -> $(find "$kept" -type f | wc -l) inputs in $kept"
        continue
    fi
    cp -n "$kept"/* "$work"/ 2>/dev/null || true
    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    echo "fuzz: $t for ${time}s (corpus $work)"
    if ! "$out/fuzz_$t" -max_total_time="$time" -max_len=8192 -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$t/" "${dict[@]}" "$work" >"$out/run-$t.log" 2>&1; then
        tail -n 40 "$out/run-$t.log"
        echo "fuzz: $t FAILED: the input is in $out/artifacts/$t/ (log $out/run-$t.log);" \
            "once fixed, copy it into $kept/ so that make check replays it" >&2
        exit 1
    fi
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$out/run-$t.log" |
        sed "s/^/fuzz: $t: /"
done
