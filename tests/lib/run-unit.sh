#!/usr/bin/env bash
# run-unit: run each Check unit-test binary given as an argument (fork mode unless CK_FORK is
# set), show its output, and total the checks from Check's summary lines
# ("NN%: Checks: X, Failures: Y, Errors: Z"). A binary that exits non-zero without a
# failure in its summary (a crash, a missing summary) counts as one failed check.
# Prints `unit: N passed, M failed` last; exits 1 when anything failed.
set -u

export CK_FORK="${CK_FORK:-yes}"

passed=0
failed=0
broken=()

if [ "$#" -eq 0 ]; then
    echo "usage: $0 build/tests/check_* ..." >&2
    exit 2
fi

out=$(mktemp "${TMPDIR:-/tmp}/run-unit.XXXXXX") || exit 2
trap 'rm -f "$out"' EXIT

for bin in "$@"; do
    echo "== $bin"
    if [ ! -x "$bin" ]; then
        echo "run-unit: $bin: not an executable" >&2
        failed=$((failed + 1))
        broken+=("$bin")
        continue
    fi
    "$bin" >"$out" 2>&1
    rc=$?
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
