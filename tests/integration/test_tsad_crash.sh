#!/usr/bin/env bash
#
# test_tsad_crash.sh: kill -9 of tsad under load (DESIGN D5, D10; TSA-18, TSP-18): the load
# generator keeps 8, then 64, then 256 connections busy on one store, tsad is killed with
# SIGKILL in the middle of each run and started again on the same store. Checked each time:
#   - every token any client received (loadgen --save-serials) has its record in the audit
#     log after the restart (replayed from the write-ahead journal);
#   - no serial appears twice in the log, across all the runs;
#   - the log's keys are the sequence numbers 1..N with no gap;
#   - the store opens clean (tsad starts and is healthy, mdb_stat reads it).
# Also: `tsad -n` run beside the loaded tsad changes nothing (it opens the store read-only,
# never the journal); a second tsad on the same store is refused; a crash with the journal
# followed by a start with journal = no loses nothing (the journal is replayed first); and the
# crash test once with journal = no (the records committed to LMDB directly).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
# shellcheck source=tests/lib/faults.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/faults.sh"
itest_setup test_tsad_crash

itest_tsa_setup local
cp "$CONF" "$TMP/tsad-journal.conf"
LG=$BUILD/bench/loadgen
[[ -x $LG ]] || fatal "loadgen" "$LG is not built (make all)"
"$LG" gen-tsa --out "$TMP/tsa.set" --count 2000 --hashes sha256=6,sha384=2,sha512=2 \
    --nonce 90 --cert-req 50 --seed 11 >/dev/null || fatal "request set" "gen-tsa failed"

# crash_run NAME CONNS PATH: load with CONNS connections, kill -9 tsad after ~1.5 s, restart.
# DURING, when set, is a command run in the middle of the load; RESTART_EXTRA, when set, a
# line appended to the configuration before the restart.
crash_run() {
    local name=$1 conns=$2 path=$3 lgpid got missing n i
    : >"$TMP/serials-$name.txt"
    "$LG" run --url "$BASE$path" --requests "$TMP/tsa.set" --conns "$conns" --duration 2.5 \
        --timeout 5 --rate 8000 --verify-every 0 --save-serials "$TMP/serials-$name.txt" \
        >"$TMP/lg-$name.out" 2>&1 &
    lgpid=$!
    track_pid "$lgpid"
    sleep 0.7
    if [[ -n ${DURING:-} ]]; then $DURING; fi
    sleep 0.8
    kill -9 "$TSAD_PID" 2>/dev/null
    wait "$TSAD_PID" 2>/dev/null
    TSAD_PID=
    wait "$lgpid" 2>/dev/null
    got=$(grep -c . "$TMP/serials-$name.txt")
    if ((got > 0)); then t_ok "$name: $got tokens received before kill -9"; else
        t_fail "$name: tokens received before kill -9" "$(tail -n 4 "$TMP/lg-$name.out")"
    fi
    if [[ -n ${RESTART_EXTRA:-} ]]; then printf '%s\n' "$RESTART_EXTRA" >>"$CONF"; fi
    tsad_start "$CONF" "$LOG" || fatal "$name: restart" "$(tail -n 5 "$LOG")"
    wait_http "$BASE/healthz" 10 200 || fatal "$name: healthy after restart" \
        "$(curl -s "$BASE/healthz")"
    t_ok "$name: tsad restarts on the store and is healthy"
    dump_log || fatal "$name: mdb_dump" "$(cat "$TMP/dump.err")"
    missing=$(awk '{ print $2 }' "$TMP/log.txt" | sort -u | comm -13 - <(sort -u "$TMP/serials-$name.txt") | grep -c .)
    expect "$name: every token received is in the audit log" "$missing missing" "0 missing"
    expect "$name: no serial twice in the log ($(grep -c . "$TMP/log.txt") records)" \
        "$(awk '{ print $2 }' "$TMP/log.txt" | sort | uniq -d | grep -c .)" 0
    n=$(grep -c . "$TMP/log.txt")
    expect "$name: keys are 1..N without a gap" \
        "$(awk '{ print $1 }' "$TMP/log.txt" | cmp -s - <(for ((i = 1; i <= n; i++)); do
            printf '%016x\n' "$i"; done) && echo yes)" yes
}

# check_beside: `tsad -n` on the live store, and a second tsad on it, in the middle of the load
check_beside() {
    local port2 conf2=$TMP/second.conf
    if "$BUILD/tsad" -n -c "$CONF" >"$TMP/check.out" 2>&1; then
        t_ok "tsad -n beside the loaded tsad: the configuration is valid"
    else
        t_fail "tsad -n beside the loaded tsad" "$(tail -n 2 "$TMP/check.out")"
    fi
    port2=$(free_port)
    sed "s/^listen = .*/listen = 127.0.0.1:$port2/" "$CONF" >"$conf2"
    if timeout 20 "$BUILD/tsad" -c "$conf2" >"$TMP/second.log" 2>&1; then
        t_fail "a second tsad on the same store is refused" "it ran"
    elif grep -q 'in use by another tsad' "$TMP/second.log"; then
        t_ok "a second tsad on the same store is refused (in use by another tsad)"
    else
        t_fail "a second tsad on the same store is refused" "$(tail -n 2 "$TMP/second.log")"
    fi
}

itest_tsad_start
itest_tsad_healthy
crash_run c8 8 /tsa/soft
DURING=check_beside crash_run c64 64 /tsa/soft
crash_run c256 256 /tsa/soft
crash_run hsm64 64 /tsa
RESTART_EXTRA=$'[store]\njournal = no' crash_run tojournalno 32 /tsa/soft
if grep -q 'journal: recovered' "$LOG"; then t_ok "the journal replayed records at a restart"; else
    t_fail "the journal replayed records at a restart" "no 'journal: recovered' line in the log"
fi
if mdb_stat -e "$STORE" >/dev/null 2>&1; then t_ok "mdb_stat reads the store"; else
    t_fail "mdb_stat reads the store" "$(mdb_stat -e "$STORE" 2>&1 | tail -n 1)"
fi

# the same with the records committed to LMDB directly (journal = no since tojournalno)
crash_run nojournal64 64 /tsa/soft
tsad_stop
itest_log_clean "$LOG"

t_summary "$NAME"
