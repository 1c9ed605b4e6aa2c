#!/usr/bin/env bash
#
# test_watchdog.sh: the systemd watchdog follows liveness, not health (DESIGN D8, D10). tsad
# runs under a stand-in for systemd's notify socket ($NOTIFY_SOCKET, $WATCHDOG_USEC = 0.5 s:
# a ping every 0.25 s) with watchdog_stall = 1s, its HSM TSU behind the simulated network HSM
# (build/bench/libp11delay.so) whose hang file makes a signature never come back:
#   - a signer worker stuck in C_Sign for longer than watchdog_stall stops the WATCHDOG=1
#     pings, with a log line naming the worker; when the call returns the pings resume;
#   - an unusable clock (chronyd gone) turns /healthz red and refuses tokens, and the pings go
#     on: systemd must not restart a daemon for a reason a restart does not cure;
#   - SIGTERM while a worker is stuck in C_Sign: tsad ends after stop_timeout (2 s) instead of
#     waiting for the call for ever.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_watchdog

WRAP=$BUILD/bench/libp11delay.so
[[ -x $BUILD/tsad && -f $WRAP ]] || fatal build "tsad or $WRAP not built (make all)"
itest_tsa_setup local
sed -i "s|^pkcs11_module = .*|pkcs11_module = $WRAP|" "$CONF"
printf '[server]\nwatchdog_stall = 1s\n' >>"$CONF"

# the notify socket: every datagram as "SECONDS MESSAGE" (CLOCK_MONOTONIC) in notify.log
cat >"$TMP/notify.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        msg = s.recv(4096).decode(errors="replace").replace("\n", " ")
        log.write("%.3f %s\n" % (time.monotonic(), msg))
PY
python3 "$TMP/notify.py" "$TMP/notify.sock" "$TMP/notify.log" &
track_pid $!
for ((i = 0; i < 50; i++)); do [[ -S $TMP/notify.sock ]] && break; sleep 0.1; done
now() { python3 -c 'import time; print("%.3f" % time.monotonic())'; }
# pings_since T: WATCHDOG=1 datagrams received after monotonic time T
pings_since() { awk -v t="$1" '$1 > t && $2 == "WATCHDOG=1"' "$TMP/notify.log" | grep -c .; }

export NOTIFY_SOCKET=$TMP/notify.sock WATCHDOG_USEC=500000
export P11DELAY_MODULE=$PKI_P11_MODULE P11DELAY_LATENCY_MS=0 P11DELAY_HANG_FILE=$TMP/hang
itest_tsad_start
unset NOTIFY_SOCKET WATCHDOG_USEC
itest_tsad_healthy
grep -q 'READY=1' "$TMP/notify.log" && t_ok "READY=1 sent" || t_fail "READY=1 sent" "$(cat "$TMP/notify.log")"
t0=$(now)
sleep 1.2
n=$(pings_since "$t0")
if ((n >= 3)); then t_ok "healthy and idle: $n pings in 1.2 s"; else
    t_fail "healthy and idle: pings" "$n in 1.2 s"
fi

# ---- a worker stuck in C_Sign ----
openssl ts -query -data "$CONF" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null
touch "$TMP/hang"
curl -s --max-time 20 -o "$TMP/stuck.tsr" -w '%{http_code}' -H 'Content-Type: application/timestamp-query' \
    --data-binary @"$TMP/q.tsq" "$BASE/tsa" >"$TMP/stuck.code" &
CURL=$!
track_pid "$CURL"
sleep 2 # past watchdog_stall (1 s) and the next tick
t1=$(now)
sleep 1.5
n=$(pings_since "$t1")
expect "a worker stuck in C_Sign for > watchdog_stall: no pings for 1.5 s" "$n" 0
if grep -q 'watchdog: thread signer:[0-9]* has been inside one call' "$LOG"; then
    t_ok "the log names the stuck worker"
else
    t_fail "the log names the stuck worker" "$(grep watchdog "$LOG" | head -n 2)"
fi
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$BASE/healthz")
expect "HTTP still answers meanwhile (/healthz)" "$code" 200
rm -f "$TMP/hang"
wait "$CURL"
expect "the held request is answered once the HSM answers" "$(cat "$TMP/stuck.code")" 200
t2=$(now)
sleep 1.2
n=$(pings_since "$t2")
if ((n >= 3)); then t_ok "the call returned: pings resume ($n in 1.2 s)"; else
    t_fail "pings resume" "$n in 1.2 s"
fi
grep -q 'pings resume' "$LOG" && t_ok "resumption logged" || t_fail "resumption logged" "no line"

# ---- an unusable clock: health, not liveness ----
chrony_stop "$CHRONY_DIR"
CHRONY_DIR=
for ((i = 0; i < 100; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz") == 503 ]] && break
    sleep 0.1
done
expect "chronyd gone: /healthz 503" "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" 503
t3=$(now)
sleep 1.5
n=$(pings_since "$t3")
if ((n >= 4)); then t_ok "clock unusable: the pings go on ($n in 1.5 s)"; else
    t_fail "clock unusable: the pings go on" "$n in 1.5 s"
fi
tsad_stop
grep -q 'STOPPING=1' "$TMP/notify.log" && t_ok "STOPPING=1 sent" || t_fail "STOPPING=1 sent" "no"
itest_log_clean "$LOG"

# ---- SIGTERM while a worker is stuck in C_Sign: the stop does not wait for ever ----
chrony_start "$TMP/chrony2" local || fatal "chronyd" "restart failed"
CHRONY_DIR=$TMP/chrony2
sed -i "s|^chrony_socket = .*|chrony_socket = $(chrony_socket "$TMP/chrony2")|" "$CONF"
printf '[server]\nstop_timeout = 2s\n' >>"$CONF"
itest_tsad_start
wait_http "$BASE/healthz" 10 200 || fatal "tsad healthy again" "$(curl -s "$BASE/healthz")"
touch "$TMP/hang"
curl -s --max-time 20 -o /dev/null -H 'Content-Type: application/timestamp-query' \
    --data-binary @"$TMP/q.tsq" "$BASE/tsa" &
track_pid $!
sleep 0.5
t4=$SECONDS
kill -TERM "$TSAD_PID"
for ((i = 0; i < 100; i++)); do kill -0 "$TSAD_PID" 2>/dev/null || break; sleep 0.1; done
if ! kill -0 "$TSAD_PID" 2>/dev/null && grep -q 'stop: not done after 2 s' "$LOG"; then
    t_ok "SIGTERM with a worker stuck in C_Sign: exits after stop_timeout ($((SECONDS - t4)) s)"
else
    t_fail "SIGTERM with a worker stuck in C_Sign: exits after stop_timeout" \
        "$(grep -m1 'stop:' "$LOG")"
fi
wait "$TSAD_PID" 2>/dev/null
TSAD_PID=
rm -f "$TMP/hang"

t_summary "$NAME"
