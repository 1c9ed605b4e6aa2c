#!/usr/bin/env bash
#
# test_clock_faults.sh: tsad's time source fails in the ways a real chronyd does (issue 8,
# "Faults of the parts - Clock"; STANDARDS TSA-04, TSA-05, TSP-12, TSA-18; RFC 3161 §2.4.2;
# DESIGN D3). test_tsad_clock.sh covers a chronyd without sources at start, its replacement by
# a synchronised one and a clean stop (SIGTERM); here, with tsad running on a synchronised
# chronyd, each fault in turn and the recovery after it:
#   1. chronyd killed with SIGKILL (its socket file left behind, nobody reading it);
#   2. chronyd stopped with SIGSTOP (the socket takes requests, no answer comes), then SIGCONT;
#   3. chronyd restarted without any source ("Not synchronised");
#   4. chronyd's command socket removed while chronyd runs;
#   5. the system clock stepped by +2 s under tsad (an LD_PRELOAD shim on CLOCK_REALTIME):
#      refused at once and until chronyd reports an update made after the step (item 3).
# During each fault: every request is rejected with timeNotAvailable (no token, TSA-05) and
# Retry-After, /healthz is 503 with the clock verdict, an AUDIT clock_sync_lost line names the
# reason. After it: with a synchronised chronyd back on the socket, tokens are granted again
# without touching tsad, /healthz 200, AUDIT clock_sync_regained. tsad never stops.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_clock_faults

DEADLINE=20 # seconds for a state change (poll_interval 500 ms; a silent chronyd costs 2 x 1 s)

# ask: one request; prints granted, timeNotAvailable, or what else came back
ask() {
    local code text
    code=$(curl -s --max-time 10 -D "$TMP/r.hdr" -o "$TMP/r.tsr" -w '%{http_code}' \
        -H 'Content-Type: application/timestamp-query' --data-binary @"$TMP/q.tsq" "$URL") || true
    if [[ $code != 200 ]]; then
        echo "http-$code"
        return
    fi
    text=$(openssl ts -reply -in "$TMP/r.tsr" -text 2>/dev/null)
    if grep -q '^Status: Granted' <<<"$text"; then
        echo granted
    elif grep -q "^Failure info: the TSA's time source is not available$" <<<"$text" &&
        [[ $text == *$'TST info:\nNot included'* ]]; then
        echo timeNotAvailable
    else
        echo "other: $(grep -E '^(Status|Failure info)' <<<"$text" | tr '\n' ' ')"
    fi
}

# verdict: "CODE VERDICT" of /healthz
verdict() {
    local out
    out=$(curl -s --max-time 5 -w '\n%{http_code}' "$BASE/healthz") || true
    printf '%s %s\n' "$(tail -n 1 <<<"$out")" "$(head -n -1 <<<"$out" | jq -r .clock.verdict 2>/dev/null)"
}

# wait_for WANT: ask until the answer is WANT (answers seen in SEEN)
wait_for() {
    local a deadline=$((SECONDS + DEADLINE))
    SEEN=()
    while ((SECONDS <= deadline)); do
        a=$(ask)
        SEEN+=("$a")
        [[ $a == "$1" ]] && return 0
        sleep 0.2
    done
    return 1
}

# only_refused: every answer in SEEN was timeNotAvailable or granted (no other kind)
only_known() {
    ! printf '%s\n' "${SEEN[@]}" | grep -vqE '^(granted|timeNotAvailable)$'
}

# fault NAME REASON_ERE: after the fault was made: refused, /healthz red, audit line
fault() {
    local name=$1 reason=$2 bad=0 v deadline a
    if wait_for timeNotAvailable; then
        t_ok "$name: requests rejected timeNotAvailable (after ${#SEEN[@]} request(s))"
    else
        t_fail "$name: requests rejected timeNotAvailable" "answers: ${SEEN[*]}"
    fi
    only_known || t_fail "$name: only granted, then timeNotAvailable" "answers: ${SEEN[*]}"
    for _ in 1 2 3; do
        a=$(ask)
        [[ $a == timeNotAvailable ]] || bad=$((bad + 1))
    done
    if ((bad == 0)); then t_ok "$name: and so it stays (3 more requests, no token: TSA-05)"; else
        t_fail "$name: and so it stays" "last answer: $a"
    fi
    if grep -qi '^Retry-After: *1' "$TMP/r.hdr"; then t_ok "$name: Retry-After with the rejection"; else
        t_fail "$name: Retry-After with the rejection" "$(tr -d '\r' <"$TMP/r.hdr" | tr '\n' ' ')"
    fi
    deadline=$((SECONDS + DEADLINE))
    while v=$(verdict) && [[ ! $v =~ ^503\ ($reason)$ ]] && ((SECONDS < deadline)); do sleep 0.2; done
    if [[ $v =~ ^503\ ($reason)$ ]]; then t_ok "$name: /healthz 503, clock verdict ${v#503 }"; else
        t_fail "$name: /healthz 503, clock verdict $reason" "got '$v'"
    fi
    if log_wait "AUDIT event=clock_sync_lost reason=($reason) prev=ok"; then
        t_ok "$name: AUDIT clock_sync_lost with the reason logged (TSA-18)"
    else
        t_fail "$name: AUDIT clock_sync_lost logged" "$(grep 'AUDIT event=clock' "$LOG" | tail -n 3)"
    fi
}

# recovered NAME: a synchronised chronyd is back: tokens again, /healthz 200, AUDIT regained
recovered() {
    local name=$1 deadline
    if wait_for granted; then
        t_ok "$name: chronyd back: tokens granted again without touching tsad (after ${#SEEN[@]} request(s))"
    else
        t_fail "$name: chronyd back: tokens granted again" "answers: ${SEEN[*]}"
    fi
    only_known || t_fail "$name: only timeNotAvailable, then granted" "answers: ${SEEN[*]}"
    t_check "$name: the token verifies" openssl ts -verify -data "$TMP/doc.txt" -in "$TMP/r.tsr" \
        -CAfile "$PKI_CA_CHAIN"
    deadline=$((SECONDS + DEADLINE))
    while [[ $(verdict) != "200 ok" ]] && ((SECONDS < deadline)); do sleep 0.2; done
    if [[ $(verdict) == "200 ok" ]]; then t_ok "$name: /healthz 200, verdict ok"; else
        t_fail "$name: /healthz 200, verdict ok" "got '$(verdict)'"
    fi
    if log_wait 'AUDIT event=clock_sync_regained reason=ok'; then
        t_ok "$name: AUDIT clock_sync_regained logged"
    else
        t_fail "$name: AUDIT clock_sync_regained logged" "$(grep 'AUDIT event=clock' "$LOG" | tail -n 3)"
    fi
    if kill -0 "$TSAD_PID" 2>/dev/null; then t_ok "$name: tsad kept running"; else
        t_fail "$name: tsad kept running" "$(tail -n 5 "$LOG")"
    fi
}

# log_wait ERE: a line of LOG after line MARK matches ERE, within DEADLINE seconds (requests
# see a verdict at once; the poller logs it at its next sample)
log_wait() {
    local deadline=$((SECONDS + DEADLINE))
    while ((SECONDS <= deadline)); do
        tail -n +"$((MARK + 1))" "$LOG" | grep -E "$1" >/dev/null && return 0 # not -q: pipefail
        sleep 0.2
    done
    return 1
}

chronyd_pid() { cat "$CHRONY_DIR/chronyd.pid" 2>/dev/null; }

# ---- set-up: tsad on a synchronised chronyd ----
itest_tsa_setup local
itest_tsad_start
URL=$BASE/tsa/soft
itest_tsad_healthy
printf 'clock fault test document\n' >"$TMP/doc.txt"
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null ||
    fatal "openssl ts -query" "cannot build the query"
if [[ $(ask) == granted ]]; then t_ok "a token while chronyd is synchronised"; else
    t_fail "a token while chronyd is synchronised" "$(ask)"
fi

# ---- 1. chronyd killed (SIGKILL): its socket file stays, nobody answers ----
MARK=$(wc -l <"$LOG")
pid=$(chronyd_pid)
[[ $(cat "/proc/$pid/comm" 2>/dev/null) == chronyd ]] || fatal "chronyd pid" "'$pid' is not chronyd"
kill -KILL "$pid"
for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if [[ -S $SOCK ]]; then t_ok "kill -9: chronyd gone, its socket file left behind"; else
    t_ok "kill -9: chronyd gone (socket file removed)"
fi
fault "kill -9" unreachable
rm -f "$CHRONY_DIR/chronyd.pid"
chrony_start "$CHRONY_DIR" local || fatal "chronyd restart" "chrony_start local failed"
recovered "kill -9"

# ---- 2. chronyd stopped (SIGSTOP): requests queue on its socket, no answer ----
MARK=$(wc -l <"$LOG")
pid=$(chronyd_pid)
kill -STOP "$pid"
fault "SIGSTOP" 'unreachable|stale'
t0=$(date +%s%N)
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$BASE/healthz") || true
ms=$((($(date +%s%N) - t0) / 1000000))
# the poller waits for chronyd (2 x 1 s), never a request: /healthz answers at once
if [[ $code == 503 ]] && ((ms < 1500)); then t_ok "SIGSTOP: /healthz answers without waiting for chronyd (${ms} ms)"; else
    t_fail "SIGSTOP: /healthz answers without waiting for chronyd" "HTTP $code after ${ms} ms"
fi
kill -CONT "$pid"
recovered "SIGCONT"

# ---- 3. chronyd restarted without any source ----
MARK=$(wc -l <"$LOG")
chrony_stop "$CHRONY_DIR"
chrony_start "$CHRONY_DIR" nosources || fatal "chronyd nosources" "chrony_start nosources failed"
fault "restarted without sources" 'unsync|unreachable'
deadline=$((SECONDS + DEADLINE))
while [[ $(verdict) != "503 unsync" ]] && ((SECONDS < deadline)); do sleep 0.2; done
if [[ $(verdict) == "503 unsync" ]]; then t_ok "without sources: verdict unsync once it answers (leap status 3)"; else
    t_fail "without sources: verdict unsync" "got '$(verdict)'"
fi
chrony_stop "$CHRONY_DIR"
chrony_start "$CHRONY_DIR" local || fatal "chronyd local" "chrony_start local failed"
recovered "restarted without sources"

# ---- 4. the command socket removed while chronyd runs ----
MARK=$(wc -l <"$LOG")
rm -f "$SOCK"
fault "socket removed" unreachable
if kill -0 "$(chronyd_pid)" 2>/dev/null; then t_ok "socket removed: chronyd itself still runs"; else
    t_fail "socket removed: chronyd itself still runs" "it exited"
fi
chrony_stop "$CHRONY_DIR"
chrony_start "$CHRONY_DIR" local || fatal "chronyd local" "chrony_start local failed"
recovered "socket removed"

# ---- 5. the system clock stepped (issue 8 item 3) ----
# The machine's clock is not ours to step; tsad (and later chronyd) run with the LD_PRELOAD
# shim build/tests/libclockshift.so (tests/lib/clockshift.c): writing its file is a step of
# their system clock.
# A +2 s step (STANDARDS TSA-04) must be refused at once and stay refused after the next
# polls, while chronyd (which did not see the step) reports nothing newer; only a chronyd
# update made after the step (chronyd restarted on the stepped clock) lets tokens out again.
SHIM=$(cd "$BUILD/tests" 2>/dev/null && pwd)/libclockshift.so
if [[ ! -f $SHIM ]]; then
    t_fail "stepped clock: the clock shim is built" "$SHIM missing (make all)"
else
    tsad_stop
    echo 0 >"$TMP/shift"
    LD_PRELOAD=$SHIM CLOCKSHIFT_FILE=$TMP/shift itest_tsad_start
    wait_http "$BASE/healthz" 10 200 || fatal "tsad under the clock shim" "$(curl -s "$BASE/healthz")"
    if [[ $(ask) == granted ]]; then t_ok "stepped clock: tsad under the shim, offset 0: token granted"; else
        t_fail "stepped clock: token granted before the step" "$(ask)"
    fi
    MARK=$(wc -l <"$LOG")
    echo 2 >"$TMP/shift" # date -s '+2 seconds'
    fault "step +2 s" stepped
    if log_wait 'AUDIT event=clock_step .*moved \+(2\.0|1\.99)'; then
        t_ok "step +2 s: AUDIT clock_step names the step (+2 s)"
    else
        t_fail "step +2 s: AUDIT clock_step" "$(grep 'AUDIT event=clock_step' "$LOG" | tail -n 2)"
    fi
    # the polls go on (every 500 ms), chronyd says nothing new: the step stays refused
    sleep 3
    SEEN=()
    for _ in 1 2 3 4 5; do SEEN+=("$(ask)"); sleep 0.3; done
    if ! printf '%s\n' "${SEEN[@]}" | grep -qv '^timeNotAvailable$'; then
        t_ok "step +2 s: still refused 3 s (6 polls) later, chronyd unchanged (issue 8 item 3)"
    else
        t_fail "step +2 s: still refused after the next polls (issue 8 item 3)" "answers: ${SEEN[*]}"
    fi
    expect_v=$(verdict)
    if [[ $expect_v == "503 stepped" ]]; then t_ok "step +2 s: /healthz 503 stepped meanwhile"; else
        t_fail "step +2 s: /healthz 503 stepped meanwhile" "got '$expect_v'"
    fi
    # chronyd restarted on the stepped clock: its reference time is after the step
    chrony_stop "$CHRONY_DIR"
    export LD_PRELOAD=$SHIM CLOCKSHIFT_FILE=$TMP/shift
    chrony_start "$CHRONY_DIR" local
    rc=$?
    unset LD_PRELOAD CLOCKSHIFT_FILE
    ((rc == 0)) || fatal "chronyd on the stepped clock" "chrony_start failed"
    recovered "step +2 s"
    # the token's genTime is on the stepped clock: about 2 s past the real time its reply was
    # written (the file's mtime; not "now", which a loaded machine puts seconds later)
    gen=$(openssl ts -reply -in "$TMP/r.tsr" -text 2>/dev/null | sed -n 's/^Time stamp: //p')
    got_ms=$(stat -c %.3Y "$TMP/r.tsr")
    d=$(($(date -u -d "$gen" +%s%3N) - ${got_ms/./}))
    if ((d >= 500 && d <= 4000)); then # unstepped: <= 0
        t_ok "step +2 s: genTime of the new token is on the stepped clock (+${d} ms)"
    else
        t_fail "step +2 s: genTime on the stepped clock" "genTime $gen, ${d} ms from the real time of the reply"
    fi
fi

tsad_stop
itest_log_clean "$LOG"
t_summary "$NAME"
