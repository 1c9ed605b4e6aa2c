#!/usr/bin/env bash
# run-unit: run each Check unit-test binary given as an argument (fork mode unless CK_FORK is
# set), show its output, and total the checks from Check's summary lines
# ("NN%: Checks: X, Failures: Y, Errors: Z"). A binary that exits non-zero without a
# failure in its summary (a crash, a missing summary) counts as one failed check.
# Prints `unit: N passed, M failed` last; exits 1 when anything failed. UNIT_JOBS binaries
# (default 3) run at once, their outputs shown in the order given (several suites wait on
# timeouts more than they compute).
set -u

export CK_FORK="${CK_FORK:-yes}"

passed=0
failed=0
broken=()

if [ "$#" -eq 0 ]; then
    echo "usage: $0 build/tests/check_* ..." >&2
    exit 2
fi

jobs=${UNIT_JOBS:-3}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "UNIT_JOBS must be a positive number" >&2; exit 2; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/run-unit.XXXXXX") || exit 2
trap 'rm -rf "$dir"' EXIT

# start them all, UNIT_JOBS at a time: binary i writes $dir/i.out and its exit status $dir/i.rc
i=0
for bin in "$@"; do
    i=$((i + 1))
    while [ "$(jobs -pr | wc -l)" -ge "$jobs" ]; do wait -n 2>/dev/null; done
    if [ -x "$bin" ]; then
        ("$bin" >"$dir/$i.out" 2>&1; echo $? >"$dir/$i.rc") &
    fi
done
wait

i=0
for bin in "$@"; do
    i=$((i + 1))
    echo "== $bin"
    if [ ! -x "$bin" ]; then
        echo "run-unit: $bin: not an executable" >&2
        failed=$((failed + 1))
        broken+=("$bin")
        continue
    fi
    out=$dir/$i.out
    rc=$(cat "$dir/$i.rc" 2>/dev/null || echo 1)
    cat "$out"
    # last summary line of the binary (one per srunner)
    summary=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$out" |
        tail -n 1)
    if [ -z "$summary" ]; then
        echo "run-unit: $bin: no Check summary (exit status $rc)" >&2
        failed=$((failed + 1))
        broken+=("$bin")
        continue
    fi
    read -r checks fails errs < <(echo "$summary" |
        sed -E 's/^[0-9]+%: Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/')
    bad=$((fails + errs))
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
        echo "run-unit: $bin: exit status $rc with no failed check" >&2
        bad=1
    fi
    passed=$((passed + checks - fails - errs))
    failed=$((failed + bad))
    if [ "$bad" -gt 0 ]; then
        broken+=("$bin")
    fi
done

if [ "${#broken[@]}" -gt 0 ]; then
    echo "failing binaries: ${broken[*]}"
fi
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
