#!/usr/bin/env bash
# make fuzz: build the libFuzzer targets with clang (ASan+UBSan) and run each for a bounded
# time (FUZZ_SECONDS, default 60), growing its corpus in tests/fuzz/corpus/<target>/.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
out=build-fuzz
san="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer"
make BUILD=$out CC=clang SAN="$san" CFLAGS="-O1 -g" $out/libcommon.a $out/libtsa.a $out/libocsp.a >/dev/null
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    target=${name#fuzz_}
    clang -O1 -g -std=c11 -D_GNU_SOURCE -I. -fsanitize=fuzzer,address,undefined \
        -o "$out/$name" "$src" $out/libtsa.a $out/libocsp.a $out/libcommon.a -lssl -lcrypto -llmdb -linih -ldl -lm
    mkdir -p "tests/fuzz/corpus/$target"
    "$out/$name" -max_total_time="${FUZZ_SECONDS:-60}" -max_len=8192 "tests/fuzz/corpus/$target"
done
