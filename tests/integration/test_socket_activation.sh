#!/usr/bin/env bash
#
# test_socket_activation.sh: tsad and ocspd serve a listening socket passed by systemd
# (socket activation, sd_listen_fds(3): $LISTEN_PID is the daemon's pid, $LISTEN_FDS sockets
# from fd 3), so that a unit can run with PrivateNetwork=yes (issue 8, "Hardening").
#   - tsad started with an inherited listening socket (a python3 launcher that binds it, sets
#     LISTEN_FDS=1 / LISTEN_PID=own pid and execs tsad) serves /healthz and grants a token
#     that verifies through it; the [server] listen port of its configuration stays unbound;
#     the AUDIT service_start line names the passed socket;
#   - LISTEN_PID of another process: the variables are not for tsad, it binds [server] listen;
#   - LISTEN_FDS=2, or a passed socket that is not a listening stream socket: tsad refuses to
#     start with a clear message;
#   - the same through `systemd-socket-activate` (systemd package), when it is installed;
#   - ocspd serves a pre-signed answer through a passed socket.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_socket_activation
itest_tsa_setup local

# The launcher: sa.py PORT NFDS PIDMODE(self|other) KIND(stream|dgram|unix) PROGRAM ARGS...
export TMPDIR_SA=$TMP
cat >"$TMP/sa.py" <<'PY'
import os, socket, sys
port, nfds, pidmode, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
socks = []
for i in range(nfds):
    if kind == "unix":  # a listening Unix stream socket: no client address to limit by
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(os.path.join(os.environ["TMPDIR_SA"], "sa%d.sock" % i))
        s.listen(128)
        socks.append(s)
        continue
    t = socket.SOCK_STREAM if kind == "stream" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, t)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port if i == 0 else 0))
    if kind == "stream":
        s.listen(128)
    socks.append(s)
for i, s in enumerate(socks):
    if s.fileno() != 3 + i:
        os.dup2(s.fileno(), 3 + i)
    os.set_inheritable(3 + i, True)
if os.environ.get("SA_NETNS") == "1":
    # as PrivateNetwork=yes: a network namespace of its own, the passed socket from outside
    import ctypes
    if ctypes.CDLL(None, use_errno=True).unshare(0x40000000) != 0:  # CLONE_NEWNET
        print("sa.py: unshare(CLONE_NEWNET) failed: errno", ctypes.get_errno())
        sys.exit(77)
os.environ["LISTEN_FDS"] = str(nfds)
os.environ["LISTEN_PID"] = str(os.getpid() if pidmode == "self" else 1)
os.execv(sys.argv[5], sys.argv[5:])
PY

# the configuration's own port: must stay unbound when a socket is passed
CONF_PORT=$PORT
SA_PORT=$(free_port) || fatal "free port" "none"
printf 'listen = 127.0.0.1:%s\n' "$SA_PORT" >"$TMP/sa.url" # what daemon_start polls

printf 'socket activation test\n' >"$TMP/doc.txt"
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null ||
    fatal "openssl ts -query" "cannot build the query"
# token_through PORT NAME: a granted token through 127.0.0.1:PORT that verifies
token_through() {
    local code
    code=$(curl -s --max-time 10 -o "$TMP/r.tsr" -w '%{http_code}' \
        -H 'Content-Type: application/timestamp-query' --data-binary @"$TMP/q.tsq" \
        "http://127.0.0.1:$1/tsa") || true
    if [[ $code == 200 ]] && openssl ts -verify -data "$TMP/doc.txt" -in "$TMP/r.tsr" \
        -CAfile "$PKI_CA_CHAIN" >/dev/null 2>&1; then
        t_ok "$2"
    else
        t_fail "$2" "HTTP $code, $(openssl ts -reply -in "$TMP/r.tsr" -text 2>&1 | grep -m1 Status)"
    fi
}

# ---- tsad with one passed listening socket ----
LOG=$TMP/tsad-sa.log
rc=0
daemon_start tsad "$TMP/sa.url" "$LOG" python3 "$TMP/sa.py" "$SA_PORT" 1 self stream \
    "$BUILD/tsad" -c "$CONF" || rc=$?
TSAD_PID=$DAEMON_PID # stopped below also when it failed to answer
if ((rc == 0)); then
    t_ok "tsad started with a socket passed as LISTEN_FDS=1 (fd 3)"
    if wait_http "http://127.0.0.1:$SA_PORT/healthz" 10 200; then
        t_ok "/healthz 200 through the passed socket"
    else
        t_fail "/healthz 200 through the passed socket" "$(tail -n 3 "$LOG")"
    fi
    token_through "$SA_PORT" "a token granted through the passed socket verifies (openssl ts -verify)"
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$CONF_PORT/healthz"; then
        t_fail "[server] listen port not bound when a socket is passed" "port $CONF_PORT answers"
    else
        t_ok "[server] listen port not bound when a socket is passed"
    fi
    if grep -q "AUDIT event=service_start listen=127.0.0.1:$SA_PORT socket=systemd" "$LOG" &&
        grep -q "serving the socket passed by systemd (fd 3" "$LOG"; then
        t_ok "log and AUDIT service_start name the passed socket"
    else
        t_fail "log and AUDIT service_start name the passed socket" "$(grep -E 'AUDIT|http:' "$LOG" | head -n 3)"
    fi
    tsad_stop
    itest_log_clean "$LOG"
else
    t_fail "tsad started with a passed socket" "$(tail -n 5 "$LOG")"
    tsad_stop
fi

# ---- in a network namespace of its own (PrivateNetwork=yes), as the shipped units run it ----
# Nothing but the passed socket reaches the outside; chronyd's Unix socket and the SoftHSM2
# token (files) still work. Needs the right to create a network namespace (root).
SA_PORT=$(free_port) || fatal "free port" "none"
printf 'listen = 127.0.0.1:%s\n' "$SA_PORT" >"$TMP/sa.url"
LOG=$TMP/tsad-netns.log
if SA_NETNS=1 python3 "$TMP/sa.py" 0 0 self stream /bin/true >/dev/null 2>&1; then
    rc=0
    SA_NETNS=1 daemon_start tsad "$TMP/sa.url" "$LOG" python3 "$TMP/sa.py" "$SA_PORT" 1 self \
        stream "$BUILD/tsad" -c "$CONF" || rc=$?
    TSAD_PID=$DAEMON_PID
    if ((rc == 0)) && wait_http "http://127.0.0.1:$SA_PORT/healthz" 10 200; then
        t_ok "tsad in its own network namespace (PrivateNetwork=yes): /healthz 200 (chronyd reached)"
        token_through "$SA_PORT" "a token from tsad in its own network namespace verifies"
        if [[ $(readlink "/proc/$TSAD_PID/ns/net") != "$(readlink /proc/self/ns/net)" ]]; then
            t_ok "that tsad really runs in another network namespace"
        else
            t_fail "that tsad really runs in another network namespace" "same namespace"
        fi
    else
        t_fail "tsad in its own network namespace serves the passed socket" "$(tail -n 3 "$LOG")"
    fi
    tsad_stop
else
    echo "note: cannot create a network namespace here (not root?): PrivateNetwork case skipped"
fi

# ---- LISTEN_PID of another process: not ours, tsad binds its configured address ----
LOG=$TMP/tsad-other.log
rc=0
daemon_start tsad "$CONF" "$LOG" python3 "$TMP/sa.py" "$SA_PORT" 1 other stream \
    "$BUILD/tsad" -c "$CONF" || rc=$?
TSAD_PID=$DAEMON_PID
if ((rc == 0)); then
    if grep -q "http: listening on 127.0.0.1 port $CONF_PORT" "$LOG"; then
        t_ok "LISTEN_PID of another process: ignored, tsad binds [server] listen"
    else
        t_fail "LISTEN_PID of another process: ignored" "$(grep 'http:' "$LOG" | head -n 2)"
    fi
    tsad_stop
else
    t_fail "LISTEN_PID of another process: tsad starts on its own port" "$(tail -n 5 "$LOG")"
    tsad_stop
fi

# ---- what cannot be served: refused at start with a clear message ----
# refused NAME NFDS KIND REGEX
refused() {
    local rc=0
    timeout 30 python3 "$TMP/sa.py" "$SA_PORT" "$2" self "$3" "$BUILD/tsad" -c "$CONF" \
        >"$TMP/r.out" 2>&1 || rc=$?
    if ((rc == 0 || rc == 124)); then
        t_fail "$1" "exit status $rc"
    elif ! grep -Eq "$4" "$TMP/r.out"; then
        t_fail "$1" "no '$4' in: $(tail -n 2 "$TMP/r.out" | tr '\n' ' ')"
    elif grep -Eq 'Sanitizer|runtime error' "$TMP/r.out"; then # BUILD=build-asan
        t_fail "$1" "sanitizer report: $(grep -Em2 'SUMMARY|runtime error' "$TMP/r.out")"
    else
        t_ok "$1"
    fi
}
refused "LISTEN_FDS=2 -> start refused (one socket served)" 2 stream \
    'systemd passed 2 sockets \(LISTEN_FDS\); exactly one is served'
refused "a datagram socket passed -> start refused" 1 dgram \
    'fd 3 passed by systemd is not a listening stream socket'
refused "a Unix socket passed -> start refused (per-address limits need an IP client)" 1 unix \
    'fd 3 passed by systemd is not an IPv4 or IPv6 socket'

# ---- the same through systemd-socket-activate (systemd package), when installed ----
if command -v systemd-socket-activate >/dev/null 2>&1; then
    SA_PORT=$(free_port) || fatal "free port" "none"
    printf 'listen = 127.0.0.1:%s\n' "$SA_PORT" >"$TMP/sa.url"
    LOG=$TMP/tsad-ssa.log
    # it listens, and execs tsad (same pid) on the first connection: daemon_start's first poll;
    # it passes on only the environment named with -E
    rc=0
    daemon_start tsad "$TMP/sa.url" "$LOG" systemd-socket-activate -l "127.0.0.1:$SA_PORT" \
        -E "SOFTHSM2_CONF=$SOFTHSM2_CONF" -E "ASAN_OPTIONS=${ASAN_OPTIONS:-}" \
        -E "UBSAN_OPTIONS=${UBSAN_OPTIONS:-}" "$BUILD/tsad" -c "$CONF" || rc=$?
    TSAD_PID=$DAEMON_PID
    if ((rc == 0)); then
        wait_http "http://127.0.0.1:$SA_PORT/healthz" 10 200 || true
        token_through "$SA_PORT" "systemd-socket-activate: a token through its socket verifies"
        tsad_stop
        itest_log_clean "$LOG"
    else
        t_fail "tsad under systemd-socket-activate" "$(tail -n 5 "$LOG")"
        tsad_stop
    fi
else
    echo "note: systemd-socket-activate not installed (package systemd): that part skipped"
fi

# ---- ocspd through a passed socket ----
# its own PKI and store in TMP/ocsp (the OCSP demo PKI would overwrite the TSA one's files)
chrony_stop "$CHRONY_DIR"
CHRONY_DIR=
TSA_TMP=$TMP
TMP=$TSA_TMP/ocsp
mkdir -p "$TMP"
trap 'itest_cleanup; rm -rf "$TSA_TMP"' EXIT
itest_ocsp_setup
ocspd_stop
SA_PORT=$(free_port) || fatal "free port" "none"
printf 'listen = 127.0.0.1:%s\n' "$SA_PORT" >"$TMP/sa.url"
LOG=$TMP/ocspd-sa.log
rc=0
daemon_start ocspd "$TMP/sa.url" "$LOG" env "SOFTHSM2_CONF=$(ocspd_conf_softhsm "$CONF")" \
    python3 "$TSA_TMP/sa.py" "$SA_PORT" 1 self stream "$BUILD/ocspd" -c "$CONF" || rc=$?
OCSPD_PID=$DAEMON_PID
if ((rc == 0)); then
    out=$(openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -url "http://127.0.0.1:$SA_PORT" \
        -CAfile "$CHAIN" 2>&1)
    if grep -q ': good' <<<"$out" && grep -q 'Response verify OK' <<<"$out"; then
        t_ok "ocspd answers 'good' through the passed socket (openssl ocsp verifies)"
    else
        t_fail "ocspd answers through the passed socket" "$(head -n 3 <<<"$out")"
    fi
    if grep -q "AUDIT event=service_start listen=127.0.0.1:$SA_PORT socket=systemd" "$LOG"; then
        t_ok "ocspd AUDIT service_start names the passed socket"
    else
        t_fail "ocspd AUDIT service_start names the passed socket" "$(grep AUDIT "$LOG" | head -n 2)"
    fi
    itest_ocspd_stop_clean
else
    t_fail "ocspd started with a passed socket" "$(tail -n 5 "$LOG")"
    ocspd_stop
fi
TMP=$TSA_TMP
trap itest_cleanup EXIT

t_summary "$NAME"
