#!/usr/bin/env bash
#
# test_tsad_gentime_restart.sh: genTime never goes backwards between consecutive tokens of
# one TSU (DESIGN D3, STANDARDS TSA-04/05), also across a restart of tsad. A backward step of
# the system clock is refused while tsad runs ("the clock went back since the previous
# token"), but that memory was in the process only: a step back while tsad was down (or a
# restart during the hold), with chronyd then synchronised on the stepped clock, gave the next
# token a genTime earlier than the last one already issued (second review of issue 8, clock).
# The clock is stepped through an LD_PRELOAD shim on CLOCK_REALTIME, as in test_clock_faults.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsad_gentime_restart

BACK=5 # seconds the clock steps back while tsad is down

# ask: one request; prints granted, timeNotAvailable, or what else came back
ask() {
    local code text
    code=$(curl -s --max-time 10 -o "$TMP/r.tsr" -w '%{http_code}' \
        -H 'Content-Type: application/timestamp-query' --data-binary @"$TMP/q.tsq" "$URL") || true
    if [[ $code != 200 ]]; then
        echo "http-$code"
        return
    fi
    text=$(openssl ts -reply -in "$TMP/r.tsr" -text 2>/dev/null)
    if grep -q '^Status: Granted' <<<"$text"; then
        echo granted
    elif grep -q "^Failure info: the TSA's time source is not available$" <<<"$text"; then
        echo timeNotAvailable
    else
        echo "other: $(grep -E '^(Status|Failure info)' <<<"$text" | tr '\n' ' ')"
    fi
}
# gen: genTime of the last reply, seconds since the epoch
gen() {
    date -u -d "$(openssl ts -reply -in "$TMP/r.tsr" -text 2>/dev/null |
        sed -n 's/^Time stamp: //p')" +%s
}

# the clock shim (tests/lib/clockshift.c): writing TMP/shift steps tsad's and chronyd's clock
SHIM=$(cd "$BUILD/tests" 2>/dev/null && pwd)/libclockshift.so
[[ -f $SHIM ]] || fatal "the clock shim" "$SHIM missing (make all)"
echo 0 >"$TMP/shift"

itest_tsa_setup local
# the demo certificates start now: the step back must not take the clock before them
sleep $((BACK + 2))
LD_PRELOAD=$SHIM CLOCKSHIFT_FILE=$TMP/shift itest_tsad_start
URL=$BASE/tsa/soft
itest_tsad_healthy
printf 'genTime restart test\n' >"$TMP/doc.txt"
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null ||
    fatal "openssl ts -query" "cannot build the query"
a=$(ask)
[[ $a == granted ]] || fatal "a token before the step" "$a"
G1=$(gen)
t_ok "a token before the step (genTime $G1)"

# tsad stops; the clock steps back; chronyd (restarted on the stepped clock) is synchronised
tsad_stop
echo "-$BACK" >"$TMP/shift"
chrony_stop "$CHRONY_DIR"
export LD_PRELOAD=$SHIM CLOCKSHIFT_FILE=$TMP/shift
chrony_start "$CHRONY_DIR" local
rc=$?
unset LD_PRELOAD CLOCKSHIFT_FILE
((rc == 0)) || fatal "chronyd on the stepped clock" "chrony_start failed"
LD_PRELOAD=$SHIM CLOCKSHIFT_FILE=$TMP/shift itest_tsad_start
URL=$BASE/tsa/soft
wait_http "$BASE/healthz" 10 200 >/dev/null 2>&1 || true

# every answer until the stepped clock is past G1: no token with an earlier genTime
bad=0 granted=0 refused=0 deadline=$((SECONDS + BACK + 15))
while ((SECONDS < deadline)); do
    a=$(ask)
    if [[ $a == granted ]]; then
        g=$(gen)
        if ((g < G1)); then
            bad=$((bad + 1))
            t_fail "restart on a clock ${BACK} s back: genTime never before the last one (D3)" \
                "genTime $g < previous $G1"
            break
        fi
        granted=$((granted + 1))
        break
    elif [[ $a == timeNotAvailable ]]; then
        refused=$((refused + 1))
    else
        t_fail "restart after a step back: only timeNotAvailable or granted" "$a"
        break
    fi
    sleep 0.5
done
if ((bad == 0 && granted == 1)); then
    t_ok "restart on a clock ${BACK} s back: $refused x timeNotAvailable until the clock passed \
the last genTime, then granted at or after it"
elif ((bad == 0)); then
    t_fail "restart on a clock stepped back: granted once the clock passed the last genTime" \
        "$refused refusals, no token"
fi
if grep -q 'went back\|last token' "$LOG"; then t_ok "the refusal is logged"; else
    t_fail "the refusal after a restart is logged" "$(tail -n 5 "$LOG")"
fi

tsad_stop
itest_log_clean "$LOG"
t_summary "$NAME"
