#!/usr/bin/env bash
#
# test_http_hostile.sh: slow and idle clients against the real tsad (and ocspd once), issue 8
# item 1 (one address with 1,030 trickling connections made /healthz time out for everyone).
# The clients come from tests/lib/slowloris.py, bound to other loopback addresses than the
# good client's (the whole of 127/8 is loopback on Linux). tsad runs with small limits
# (per_ip_limit 8, max_connections 256, timeout 2 s, request_timeout 3 s) and its HSM TSU
# behind the simulated network HSM (bench/p11delay.c), whose hang file holds signatures:
#   (a) 40 trickling connections from one address: 32 refused at once, 8 cut at the deadline;
#       meanwhile another address gets /healthz 200 and a token; counters and log lines
#   (b) 3,000 idle and trickling connections from 500 addresses, closed ones reopened after 0.2 s:
#       /healthz, /metrics and a token are still answered; the longest-waiting connections
#       are evicted to make room
#   (c) a body announced by Content-Length and trickled: cut at the deadline
#   (d) a request suspended for 5 s on a held HSM (longer than request_timeout): answered
#   (e) ocspd: trickling connections from one address, /healthz from another still 200
# Only "answered" and "cut within generous bounds" are asserted, never a latency.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_http_hostile
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WRAP=$BUILD/bench/libp11delay.so
[[ -x $BUILD/tsad && -f $WRAP ]] || fatal build "tsad or $WRAP not built (make all)"
SLOW=$ROOT/tests/lib/slowloris.py
CT_QUERY='Content-Type: application/timestamp-query'
GOOD_SRC=127.0.0.3

# slowloris OUT ARGS...: run the slow clients in the background (pid in SLOW_PID), wait until
# their first connections are tried
slowloris() {
    local out=$1 i
    shift
    rm -f "$out.ready"
    python3 "$SLOW" --ready "$out.ready" "$@" >"$out" 2>"$out.err" &
    SLOW_PID=$!
    track_pid "$SLOW_PID"
    for ((i = 0; i < 300; i++)); do
        [[ -e $out.ready ]] && return 0
        kill -0 "$SLOW_PID" 2>/dev/null || break
        sleep 0.1
    done
    fatal "slowloris $*" "did not start: $(cat "$out.err")"
}

# jget FILE KEY: a number from slowloris' JSON summary
jget() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], -1))' "$1" "$2"
}

# metric NAME: its value in tsad's (or BASE's) /metrics, from the good address
metric() {
    curl -s --interface "$GOOD_SRC" --max-time 10 "$BASE/metrics" |
        awk -v n="$1" '$1 == n { print $2 }'
}
rejected() { metric "http_connections_rejected_total{reason=\"$1\"}"; }

# ge NAME VALUE MIN: one check
ge() {
    if [[ $2 =~ ^[0-9]+$ ]] && (($2 >= $3)); then t_ok "$1 ($2)"; else
        t_fail "$1" "got '$2', want >= $3"
    fi
}

# within NAME VALUE LO HI: LO <= VALUE <= HI (seconds, decimals allowed)
within() {
    if python3 -c 'import sys; v=float(sys.argv[1]); sys.exit(0 if float(sys.argv[2]) <= v <= float(sys.argv[3]) else 1)' "$2" "$3" "$4" 2>/dev/null; then
        t_ok "$1 ($2 s)"
    else t_fail "$1" "got '$2', want $3..$4"; fi
}

# healthz_ok: GET /healthz from the good address answers 200
healthz_ok() {
    [[ $(curl -s -o /dev/null -w '%{http_code}' --interface "$GOOD_SRC" --max-time 5 \
        "$BASE/healthz") == 200 ]]
}
metrics_ok() {
    [[ $(curl -s -o /dev/null -w '%{http_code}' --interface "$GOOD_SRC" --max-time 5 \
        "$BASE/metrics") == 200 ]]
}

# token_ok PATH: a token request from the good address is granted (PKIStatus 0)
token_ok() {
    local code
    rm -f "$TMP/out.tsr"
    code=$(curl -s --interface "$GOOD_SRC" --max-time 20 -o "$TMP/out.tsr" -w '%{http_code}' \
        -H "$CT_QUERY" --data-binary @"$GOOD" "$BASE$1") || true
    [[ $code == 200 ]] && derutil tsp-resp "$TMP/out.tsr" 2>/dev/null | grep -qx 'status=0'
}

itest_tsa_setup local
# sign_timeout 30 s: (d) holds the HSM for 5 s, which must stay a wait, never a signer timeout
sed -i -e "s|^pkcs11_module = .*|pkcs11_module = $WRAP\nsign_timeout = 30s|" -e 's|^timeout = .*|timeout = 2s|' \
    "$CONF"
printf '[server]\nper_ip_limit = 8\nmax_connections = 256\nrequest_timeout = 3s\n' >>"$CONF"
export P11DELAY_MODULE=$PKI_P11_MODULE P11DELAY_LATENCY_MS=0 P11DELAY_HANG_FILE=$TMP/hang
itest_tsad_start
itest_tsad_healthy
printf 'http hostile test document\n' >"$TMP/doc.txt"
GOOD=$TMP/good.tsq
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$GOOD" 2>/dev/null ||
    fatal "openssl ts -query" "cannot build the good query"
t_check "a token from $GOOD_SRC before the slow clients" token_ok /tsa/soft

# ---- (a) one address, 40 trickling connections (per_ip_limit 8, request_timeout 3 s) ----
slowloris "$TMP/a.json" --port "$PORT" --conns 40 --sources 127.0.0.2 --mode headers \
    --interval 0.5 --duration 8
t_check "(a) while 127.0.0.2 trickles 40 connections: /healthz 200 from $GOOD_SRC" healthz_ok
t_check "(a) and a token is granted to $GOOD_SRC" token_ok /tsa/soft
wait "$SLOW_PID"
ge "(a) the server closed all 40 connections" "$(jget "$TMP/a.json" closed)" 40
ge "(a) 32 were refused at once (per_ip_limit 8)" "$(jget "$TMP/a.json" closed_under_1s)" 32
within "(a) the last 8 were cut at the 3 s deadline though never idle" \
    "$(jget "$TMP/a.json" lifetime_max)" 2.5 7
ge "(a) http_connections_rejected_total{reason=\"per_ip\"}" "$(rejected per_ip)" 32
ge "(a) http_connections_rejected_total{reason=\"deadline\"}" "$(rejected deadline)" 8
t_check "(a) info log line for the per-address refusals" \
    grep -Eq 'info: http: refused [0-9]+ connections over per_ip_limit \(8\), last from 127\.0\.0\.2' "$LOG"
t_check "(a) info log line for the deadline cuts" \
    grep -Eq 'info: http: cut [0-9]+ connections whose request was not whole within request_timeout \(3s\)' "$LOG"
n=$(grep -c 'over per_ip_limit' "$LOG")
if ((n <= 2)); then t_ok "(a) refusals logged in at most 2 lines, not one per connection ($n)"; else
    t_fail "(a) refusals rate-limited in the log" "$n lines"
fi

# ---- (b) 3,000 idle and trickling connections from 500 addresses, reopened when closed ----
per_ip0=$(rejected per_ip)
slowloris "$TMP/b1.json" --port "$PORT" --conns 1500 --sources 127.0.1.1-127.0.1.250 \
    --mode idle --duration 6 --reopen 0.2
pid_b1=$SLOW_PID
slowloris "$TMP/b2.json" --port "$PORT" --conns 1500 --sources 127.0.2.1-127.0.2.250 \
    --mode headers --interval 0.5 --duration 6 --reopen 0.2
pid_b2=$SLOW_PID
t_check "(b) under 3,000 slow connections from 500 addresses: /healthz 200" healthz_ok
t_check "(b) /metrics 200" metrics_ok
t_check "(b) a token is granted" token_ok /tsa/soft
t_check "(b) and again" token_ok /tsa/soft
wait "$pid_b1" "$pid_b2"
ge "(b) idle clients: connections opened (with reopens)" "$(jget "$TMP/b1.json" opened)" 1500
ge "(b) connections evicted to make room (http_connections_rejected_total{reason=\"evicted\"})" \
    "$(rejected evicted)" 1
t_check "(b) info log line for the evictions" \
    grep -Eq 'info: http: closed [0-9]+ waiting connections to make room past max_connections \(256\)' "$LOG"
# 6 connections per address, under per_ip_limit 8, reopened only after the server closed
# them: a per-address count that drifted (a connection not forgotten) would refuse some
d=$(($(rejected per_ip) - per_ip0))
if ((d == 0)); then t_ok "(b) no address under its limit was refused (per-address counts exact)"; else
    t_fail "(b) no address under its limit was refused" "$d per_ip refusals"
fi
if kill -0 "$TSAD_PID" 2>/dev/null; then t_ok "(b) tsad survived"; else
    t_fail "(b) tsad survived" "$(tail -n 5 "$LOG")"
fi

# ---- (c) a slow body: Content-Length announced, one byte every 0.5 s ----
deadline0=$(rejected deadline)
slowloris "$TMP/c.json" --port "$PORT" --conns 1 --sources 127.0.0.4 --mode body \
    --interval 0.5 --duration 9 --path /tsa/soft
wait "$SLOW_PID"
ge "(c) the slow body's connection was closed by the server" "$(jget "$TMP/c.json" closed)" 1
within "(c) at the 3 s deadline" "$(jget "$TMP/c.json" lifetime_max)" 2.5 7
ge "(c) counted as a deadline cut" "$(($(rejected deadline) - deadline0))" 1

# ---- (d) a request suspended on a held HSM (5 s > request_timeout) is not cut ----
deadline0=$(rejected deadline)
touch "$TMP/hang"
(token_ok /tsa && touch "$TMP/d.ok") &
dpid=$!
sleep 5
rm -f "$TMP/hang"
wait "$dpid"
if [[ -e $TMP/d.ok ]]; then t_ok "(d) a token held 5 s by the HSM (/tsa) is delivered"; else
    t_fail "(d) a token held 5 s by the HSM (/tsa) is delivered" "not granted"
fi
d=$(($(rejected deadline) - deadline0))
if ((d == 0)); then t_ok "(d) no deadline cut while suspended"; else
    t_fail "(d) no deadline cut while suspended" "$d cuts"
fi
pid=$TSAD_PID
tsad_stop
wait "$pid" 2>/dev/null
itest_log_clean "$LOG"

# ---- (e) ocspd: the same guard in front of the OCSP responder ----
unset P11DELAY_MODULE P11DELAY_LATENCY_MS P11DELAY_HANG_FILE
TMP=$TMP/ocsp
mkdir -p "$TMP"
itest_ocsp_setup
ocspd_stop
sed -i -e 's|^per_ip_limit = .*|per_ip_limit = 8|' -e 's|^timeout = .*|timeout = 2s\nrequest_timeout = 3s|' \
    "$CONF"
ocspd_start "$CONF" "$TMP/ocspd.log" || fatal "ocspd restart" "$(tail -n 5 "$TMP/ocspd.log")"
BASE=$URL
OPORT=${URL##*:}
slowloris "$TMP/e.json" --port "$OPORT" --conns 20 --sources 127.0.0.6 --mode headers \
    --interval 0.5 --duration 7 --path /
t_check "(e) ocspd: while 127.0.0.6 trickles 20 connections, /healthz 200 from $GOOD_SRC" healthz_ok
wait "$SLOW_PID"
ge "(e) ocspd closed all 20" "$(jget "$TMP/e.json" closed)" 20
ge "(e) ocspd: per_ip refusals" "$(rejected per_ip)" 12
ge "(e) ocspd: deadline cuts" "$(rejected deadline)" 8
itest_ocspd_stop_clean

t_summary "$NAME"
