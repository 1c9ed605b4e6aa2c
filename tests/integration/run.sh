#!/usr/bin/env bash
# Runs every tests/integration/test_*.sh (or those named as arguments) against the binaries
# in $BUILD, and totals their "NAME: N passed, M failed" lines.
#
# ITEST_JOBS scripts run at once (default 3: most scripts wait on daemons, sockets and
# timeouts more than they compute). Each script's output is kept and printed whole when it
# ends, with its wall and CPU seconds. A script whose header has the line
#   # itest: alone (REASON)
# measures load, memory or timing and runs with no other script beside it; they run after
# the shared pool. The pool starts the longest scripts first (their wall time in the previous
# run, kept in $BUILD/itest-times, else their size), so the slots end together. The demo PKI
# is built once and copied by each script (PKI_TEMPLATE), python3 resolved once (PY_DIRECT).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
export BUILD=${BUILD:-build}
# shellcheck source=tests/lib/common.sh
. tests/lib/common.sh # python3 resolved once for every script (PY_DIRECT)
JOBS=${ITEST_JOBS:-3}
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "ITEST_JOBS must be a positive number" >&2; exit 2; }
tests=("$@")
[ ${#tests[@]} -eq 0 ] && mapfile -t tests < <(ls tests/integration/test_*.sh)
outdir=$(mktemp -d)
trap 'rm -rf "$outdir"' EXIT
# one demo PKI for the whole run: each script's pki_demo copies it (tests/lib/pki.sh)
if bash tests/lib/pki.sh "$outdir/pki" >/dev/null 2>&1; then
    export PKI_TEMPLATE=$outdir/pki
else
    echo "integration: the demo PKI template could not be built; each script builds its own"
fi
times_file=$BUILD/itest-times
mkdir -p "$BUILD"
declare -A last=()
if [ -f "$times_file" ]; then
    while read -r s n; do last[$n]=$s; done <"$times_file"
fi

# one KEY per script: its output file name
key() { local b=${1##*/}; echo "${b%.sh}"; }

# run_one SCRIPT: run it, its output into $outdir/KEY.out, then "WALL USER+SYS RC" into .res
run_one() {
    local t=$1 k start rc
    k=$(key "$t")
    start=$(date +%s.%N)
    (
        bash "$t"
        echo "rc=$?" >"$outdir/$k.rc"
        times >"$outdir/$k.cpu"
    ) >"$outdir/$k.out" 2>&1
    rc=$(sed -n 's/^rc=//p' "$outdir/$k.rc" 2>/dev/null)
    # `times` second line: the children's user and system time, as 0m1.234s 0m0.567s
    local cpu
    cpu=$(sed -n 2p "$outdir/$k.cpu" 2>/dev/null | awk '{
        n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } printf "%.0f", n }')
    printf '%s %s %s\n' "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')" \
        "${cpu:-0}" "${rc:-1}" >"$outdir/$k.res"
}

passed=0 failed=0 broken=()
# report SCRIPT: print its output and fold its summary into the totals
report() {
    local t=$1 k line p f rc wall cpu
    k=$(key "$t")
    echo "=== $t"
    cat "$outdir/$k.out"
    read -r wall cpu rc <"$outdir/$k.res"
    echo "$wall $k" >>"$outdir/times.new"
    line=$(grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed' "$outdir/$k.out" | tail -n 1)
    if [ -z "$line" ]; then
        echo "=== $t: no summary line (exit $rc, ${wall}s)"
        failed=$((failed + 1)); broken+=("$t"); return
    fi
    p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")
    f=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
    [ "$rc" -ne 0 ] && broken+=("$t")
    echo "=== $t: exit $rc, ${wall}s (cpu ${cpu}s)"
}

alone=() pool=()
for t in "${tests[@]}"; do
    if grep -qE '^# itest: alone' "$t"; then alone+=("$t"); else pool+=("$t"); fi
done
# longest first: the previous run's wall time, else the script's size in bytes / 1000
mapfile -t pool < <(for t in "${pool[@]}"; do
    k=$(key "$t")
    echo "${last[$k]:-$(($(wc -c <"$t") / 1000))} $t"
done | sort -rn | cut -d' ' -f2-)

t0=$(date +%s)
declare -A running=() # pid -> script
for t in "${pool[@]}"; do
    while [ ${#running[@]} -ge "$JOBS" ]; do
        wait -n 2>/dev/null
        for pid in "${!running[@]}"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                wait "$pid" 2>/dev/null
                report "${running[$pid]}"
                unset "running[$pid]"
            fi
        done
    done
    run_one "$t" &
    running[$!]=$t
done
for pid in "${!running[@]}"; do
    wait "$pid" 2>/dev/null
    report "${running[$pid]}"
done
for t in "${alone[@]}"; do
    run_one "$t"
    report "$t"
done
[ -f "$outdir/times.new" ] && [ $# -eq 0 ] && cp "$outdir/times.new" "$times_file"
[ ${#broken[@]} -gt 0 ] && echo "failing scripts: ${broken[*]}"
echo "integration: $(($(date +%s) - t0)) s, $JOBS scripts at once in the pool"
echo "integration: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
