#!/usr/bin/env bash
# Runs every tests/integration/test_*.sh (or those named as arguments) against the binaries
# in $BUILD, and totals their "NAME: N passed, M failed" lines.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
export BUILD=${BUILD:-build}
tests=("$@")
[ ${#tests[@]} -eq 0 ] && mapfile -t tests < <(ls tests/integration/test_*.sh)
passed=0 failed=0 broken=()
for t in "${tests[@]}"; do
    echo "=== $t"
    out=$(mktemp)
    start=$(date +%s)
    bash "$t" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    line=$(grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    rm -f "$out"
    if [ -z "$line" ]; then
        echo "=== $t: no summary line (exit $rc)"
        failed=$((failed + 1)); broken+=("$t"); continue
    fi
    p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")
    f=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
    [ "$rc" -ne 0 ] && broken+=("$t")
    echo "=== $t: exit $rc, $(( $(date +%s) - start ))s"
done
[ ${#broken[@]} -gt 0 ] && echo "failing scripts: ${broken[*]}"
echo "integration: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
