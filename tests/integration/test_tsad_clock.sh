#!/usr/bin/env bash
#
# test_tsad_clock.sh: tsad follows its time source (STANDARDS TSA-05, TSP-12, TSA-04, TSA-18;
# RFC 3161 §2.4.2 timeNotAvailable; DESIGN D3). A private chronyd is driven through three
# states on one command-socket directory while tsad (poll_interval 500ms) keeps running:
#   1. chronyd without any source ("Not synchronised", leap 3): every request is rejected with
#      failInfo timeNotAvailable, /healthz is 503 with clock verdict "unsync", and the log
#      holds an AUDIT clock event;
#   2. that chronyd replaced by a `local` one on the same socket: tokens are granted again
#      within seconds, /healthz 200, AUDIT event clock_sync_regained;
#   3. chronyd stopped: timeNotAvailable again, verdict "unreachable", AUDIT clock_sync_lost.
# No token is ever granted while the clock is out (TSA-05).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsad_clock

DEADLINE=20 # seconds to wait for a state change (poll_interval is 500 ms)

# ask: one request to /tsa; prints granted, timeNotAvailable, or what else came back
ask() {
    local code text
    code=$(curl -s --max-time 10 -D "$TMP/r.hdr" -o "$TMP/r.tsr" -w '%{http_code}' \
        -H 'Content-Type: application/timestamp-query' --data-binary @"$TMP/q.tsq" \
        "$BASE/tsa") || true
    if [[ $code != 200 ]]; then
        echo "http-$code"
        return
    fi
    text=$(openssl ts -reply -in "$TMP/r.tsr" -text 2>/dev/null)
    if grep -q '^Status: Granted' <<<"$text"; then
        echo granted
    elif grep -q '^Status: Rejected' <<<"$text" &&
        grep -q "^Failure info: the TSA's time source is not available$" <<<"$text" &&
        [[ $text == *$'TST info:\nNot included'* ]]; then
        echo timeNotAvailable
    else
        echo "other: $(grep -E '^(Status|Failure info)' <<<"$text" | tr '\n' ' ')"
    fi
}

# verdict: clock verdict and HTTP status of /healthz, as "CODE VERDICT"
verdict() {
    local out
    out=$(curl -s --max-time 5 -w '\n%{http_code}' "$BASE/healthz") || true
    printf '%s %s\n' "$(tail -n 1 <<<"$out")" "$(head -n -1 <<<"$out" | jq -r .clock.verdict 2>/dev/null)"
}

# wait_for WANT: poll ask until it answers WANT; every other answer must be timeNotAvailable
# while we wait for granted (TSA-05: no token before sync is verified) and vice versa.
# Sets SEEN to the answers observed.
wait_for() {
    local want=$1 a deadline=$((SECONDS + DEADLINE))
    SEEN=()
    while ((SECONDS <= deadline)); do
        a=$(ask)
        SEEN+=("$a")
        [[ $a == "$want" ]] && return 0
        sleep 0.2
    done
    return 1
}

# wait_verdict CODE VERDICT
wait_verdict() {
    local deadline=$((SECONDS + DEADLINE))
    while ((SECONDS <= deadline)); do
        [[ $(verdict) == "$1 $2" ]] && return 0
        sleep 0.2
    done
    return 1
}

# ---- set-up: a chronyd without sources ----
itest_tsa_setup nosources
t_ok "chronyd started without sources"
itest_tsad_start
printf 'clock test document\n' >"$TMP/doc.txt"
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null ||
    fatal "openssl ts -query" "cannot build the query"

# ---- 1. not synchronised ----
bad=0
for _ in 1 2 3 4 5; do
    a=$(ask)
    [[ $a == timeNotAvailable ]] || bad=$((bad + 1))
done
if ((bad == 0)); then t_ok "unsynchronised chronyd: 5 of 5 requests rejected timeNotAvailable, no token (TSP-12, TSA-05)"; else
    t_fail "unsynchronised chronyd: requests rejected timeNotAvailable" "last answer: $a"
fi
if grep -qi '^Retry-After: *1' "$TMP/r.hdr"; then t_ok "timeNotAvailable carries Retry-After"; else
    t_fail "timeNotAvailable carries Retry-After" "$(tr -d '\r' <"$TMP/r.hdr" | tr '\n' ' ')"
fi
v=$(verdict)
if [[ $v == "503 unsync" ]]; then t_ok "/healthz 503, clock verdict unsync"; else
    t_fail "/healthz 503, clock verdict unsync" "got '$v'"
fi
if grep -Eq 'AUDIT event=clock_[a-z_]+ reason=unsync' "$LOG"; then t_ok "AUDIT clock event with reason=unsync logged (TSA-18)"; else
    t_fail "AUDIT clock event with reason=unsync logged (TSA-18)" "$(grep AUDIT "$LOG" | tail -n 3)"
fi
m=$(curl -s "$BASE/metrics" | awk '$1 == "tsa_clock_ok" { print $2 }')
if [[ $m == 0 ]]; then t_ok "metrics tsa_clock_ok 0"; else t_fail "metrics tsa_clock_ok 0" "got '$m'"; fi
tna=$(curl -s "$BASE/metrics" | awk '$1 == "tsa_rejections_total{reason=\"timeNotAvailable\"}" { print $2 }')
if [[ $tna =~ ^[0-9]+$ ]] && ((tna >= 5)); then t_ok "metrics count timeNotAvailable rejections ($tna)"; else
    t_fail "metrics count timeNotAvailable rejections" "got '$tna'"
fi

# ---- 2. a synchronised chronyd on the same socket ----
chrony_stop "$CHRONY_DIR"
chrony_start "$CHRONY_DIR" local || fatal "chronyd local" "chrony_start failed"
if wait_for granted; then
    t_ok "local chronyd on the same socket: tokens granted again (after ${#SEEN[@]} request(s))"
else
    t_fail "local chronyd on the same socket: tokens granted again" "answers: ${SEEN[*]}"
fi
others=$(printf '%s\n' "${SEEN[@]}" | grep -vcE '^(granted|timeNotAvailable)$')
if ((others == 0)); then t_ok "while resynchronising: only timeNotAvailable, then granted"; else
    t_fail "while resynchronising: only timeNotAvailable, then granted" "answers: ${SEEN[*]}"
fi
t_check "the token verifies" openssl ts -verify -data "$TMP/doc.txt" -in "$TMP/r.tsr" \
    -CAfile "$PKI_CA_CHAIN"
if wait_verdict 200 ok; then t_ok "/healthz 200, clock verdict ok"; else
    t_fail "/healthz 200, clock verdict ok" "got '$(verdict)'"
fi
if grep -q 'AUDIT event=clock_sync_regained reason=ok' "$LOG"; then t_ok "AUDIT event clock_sync_regained logged (TSA-18)"; else
    t_fail "AUDIT event clock_sync_regained logged (TSA-18)" "$(grep 'AUDIT event=clock' "$LOG" | tail -n 3)"
fi
m=$(curl -s "$BASE/metrics" | awk '$1 == "tsa_clock_ok" { print $2 }')
if [[ $m == 1 ]]; then t_ok "metrics tsa_clock_ok 1"; else t_fail "metrics tsa_clock_ok 1" "got '$m'"; fi

# ---- 3. chronyd gone ----
lost_before=$(grep -c 'AUDIT event=clock_sync_lost' "$LOG")
chrony_stop "$CHRONY_DIR"
if wait_for timeNotAvailable; then
    t_ok "chronyd stopped: requests rejected timeNotAvailable again (TSA-05)"
else
    t_fail "chronyd stopped: requests rejected timeNotAvailable again" "answers: ${SEEN[*]}"
fi
bad=0
for _ in 1 2 3; do
    a=$(ask)
    [[ $a == timeNotAvailable ]] || bad=$((bad + 1))
done
if ((bad == 0)); then t_ok "and stays so: 3 more requests rejected"; else
    t_fail "and stays so" "last answer: $a"
fi
if wait_verdict 503 unreachable; then t_ok "/healthz 503, clock verdict unreachable"; else
    t_fail "/healthz 503, clock verdict unreachable" "got '$(verdict)'"
fi
if (($(grep -c 'AUDIT event=clock_sync_lost' "$LOG") > lost_before)) &&
    grep -q 'AUDIT event=clock_sync_lost reason=unreachable' "$LOG"; then
    t_ok "AUDIT event clock_sync_lost reason=unreachable logged (TSA-18)"
else
    t_fail "AUDIT event clock_sync_lost reason=unreachable logged" "$(grep 'AUDIT event=clock' "$LOG" | tail -n 3)"
fi
if kill -0 "$TSAD_PID" 2>/dev/null; then t_ok "tsad kept running through the clock changes"; else
    t_fail "tsad kept running through the clock changes" "$(tail -n 5 "$LOG")"
fi

t_summary "$NAME"
