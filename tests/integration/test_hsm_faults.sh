#!/usr/bin/env bash
# itest: alone (module calls counted against a once-a-second probe)
#
# test_hsm_faults.sh: a failing HSM, against the real daemons (issue 8, "faults of the parts:
# HSM"; STANDARDS TSP-13: an HSM failure is an error, never a partial token; DESIGN D2, D8).
# tsad and ocspd sign through the simulated network HSM (build/bench/libp11delay.so) in front
# of their real SoftHSM2 tokens; its fault files (bench/p11delay.c) break the token while the
# daemons run; real clients (openssl ts, openssl ocsp, curl) talk to them:
#   - a session closed under C_Sign (CKR_SESSION_CLOSED): the session is reopened and the user
#     logged in again within the same request, which gets its token / its answer;
#   - CKR_DEVICE_REMOVED on every call: tsad answers systemFailure with Retry-After, ocspd keeps
#     serving pre-signed answers and answers tryLater (Retry-After) for what needs a signature;
#     /healthz turns 503; AUDIT event=hsm_unavailable is logged; requests for the down key fail
#     at once, without calling the module one by one (a test signature a second looks for its
#     return); once the device is back both
#     recover by themselves, with no request needed (/healthz 200, AUDIT event=hsm_available):
#     tsad through C_Finalize + C_Initialize (the shim's P11DELAY_REINIT: a library that does not
#     reconnect by itself), ocspd by reopening its sessions and logging in again;
#   - a C_Sign that hangs past [signer] sign_timeout: HTTP threads stay free (/healthz answers,
#     503), the held requests get systemFailure / tryLater (timed out, or refused at once once
#     the hang was seen: both counted), recovery once the call returns;
#   - a full signer queue (one worker stuck, queue_max = 2): the next request is answered at
#     once with systemFailure / tryLater and Retry-After, and the queued ones are answered
#     (tokens, signed responses) once the HSM answers;
#   - a wrong PIN at start (CKR_PIN_INCORRECT): the daemon says so, logs
#     AUDIT event=hsm_login_refused, offers the PIN once only, and exits 78 (the units'
#     RestartPreventExitStatus: systemd must not restart it into the same refusal).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_hsm_faults

# has NAME FILE ERE
code_of() { curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$1"; }
# wait_code URL CODE SECONDS: poll until URL answers CODE; 0 when it did
wait_code() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        [[ $(code_of "$1") == "$2" ]] && return 0
        sleep 0.1
    done
    return 1
}
hdr() { sed -n "s/^$2: *//Ip" "$1" | tr -d '\r' | head -n 1; }
# metric BASE NAME: the value of an unlabelled series in BASE/metrics, as an integer
metric() { curl -s --max-time 5 "$1/metrics" | awk -v n="$2" '$1 == n { printf "%d\n", $2 }'; }

WRAP=$BUILD/bench/libp11delay.so
[[ -x $BUILD/tsad && -x $BUILD/ocspd && -f $WRAP ]] || fatal build "tsad, ocspd or $WRAP not built"
F=$TMP/faults
mkdir -p "$F"

# =============================== tsad ===============================
itest_tsa_setup local
sed -i "s|^pkcs11_module = .*|pkcs11_module = $WRAP\nsign_timeout = 1s|" "$CONF"
export P11DELAY_MODULE=$PKI_P11_MODULE P11DELAY_LATENCY_MS=0 P11DELAY_HANG_FILE=$F/hang \
    P11DELAY_REMOVED_FILE=$F/removed P11DELAY_CLOSE_FILE=$F/close P11DELAY_BADPIN_FILE=$F/badpin \
    P11DELAY_REINIT=1
itest_tsad_start
itest_tsad_healthy
echo "a document to stamp" >"$TMP/doc"
openssl ts -query -data "$TMP/doc" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null

# tsa TAG [PATH]: POST the query; TAG.tsr, TAG.hdr; prints "HTTP status failbits"
tsa() {
    local code
    code=$(curl -s --max-time 20 -D "$TMP/$1.hdr" -o "$TMP/$1.tsr" -w '%{http_code}' \
        -H 'Content-Type: application/timestamp-query' --data-binary @"$TMP/q.tsq" \
        "$BASE${2:-/tsa}")
    echo "$code $(derutil tsp-resp "$TMP/$1.tsr" 2>/dev/null | sed -n 's/^status=//p') $(
        derutil tsp-resp "$TMP/$1.tsr" 2>/dev/null | sed -n 's/^failbits=//p')"
}
granted() { # NAME TAG: one check: a token that openssl ts -verify accepts
    if [[ $(derutil tsp-resp "$TMP/$2.tsr" 2>/dev/null | sed -n 's/^status=//p') == 0 ]] &&
        openssl ts -verify -data "$TMP/doc" -in "$TMP/$2.tsr" -CAfile "$PKI_CA_CHAIN" >/dev/null 2>&1; then
        t_ok "$1"
    else
        t_fail "$1" "$(openssl ts -reply -in "$TMP/$2.tsr" -text 2>&1 | grep -m2 -E 'Status|Failure')"
    fi
}
# sysfail NAME TAG: one check: rejection (2) with failInfo systemFailure (bit 25) and Retry-After
sysfail() {
    local got ra
    got=$(derutil tsp-resp "$TMP/$2.tsr" 2>/dev/null | sed -n 's/^\(status\|failbits\|token\)=//p' | tr '\n' ' ')
    ra=$(hdr "$TMP/$2.hdr" Retry-After)
    if [[ $got == '2 25 absent ' && -n $ra ]]; then t_ok "$1"; else
        t_fail "$1" "status/failbits/token: $got, Retry-After '$ra'"
    fi
}

tsa base >/dev/null
granted "baseline: a token from the HSM TSU through the shim" base

# ---- a session closed under C_Sign ----
touch "$F/close"
tsa closed >/dev/null
granted "session closed (CKR_SESSION_CLOSED): the same request still gets a valid token" closed
[[ ! -e $F/close ]] && t_ok "the shim closed the sessions (fault consumed)" ||
    t_fail "the shim closed the sessions" "$F/close still there"
has "the log says the session was reopened" "$LOG" "reopening the session: CKR_SESSION_CLOSED"
has "and reopened, logged in again" "$LOG" "token 'tsa': session [0-9]+ reopened"
expect "/healthz stays 200" "$(code_of "$BASE/healthz")" 200

# ---- the device removed ----
touch "$F/removed"
tsa removed >/dev/null
sysfail "device removed: systemFailure with Retry-After, no token (TSP-13)" removed
# while the key is down its requests do not reach the module (nor the log) one by one: 20
# requests on one connection (one curl), against a test signature a second
before=$(grep -c 'C_SignInit/C_Sign: ' "$LOG")
urls=()
for i in $(seq 20); do urls+=("$URL"); done
curl -s --max-time 30 -o /dev/null -H 'Content-Type: application/timestamp-query' \
    --data-binary @"$TMP/q.tsq" "${urls[@]}" >/dev/null
tsa down >/dev/null
sysfail "  and so do the next ones" down
after=$(grep -c 'C_SignInit/C_Sign: ' "$LOG")
if ((after - before < 10)); then t_ok "  which fail at once: $((after - before)) module error(s) logged for 21"; else
    t_fail "requests for a down key fail without calling the module" "$((after - before)) errors for 21 requests"
fi
tsa soft /tsa/soft >/dev/null
granted "a software-key TSU still issues meanwhile" soft
wait_code "$BASE/healthz" 503 5
hz=$(curl -s -w ' %{http_code}' "$BASE/healthz")
if [[ $hz == *'"signer":{"ok":false'*' 503' ]]; then t_ok "/healthz 503, signer not ok"; else
    t_fail "/healthz red while the device is removed" "$hz"
fi
has "AUDIT event=hsm_unavailable logged" "$LOG" "AUDIT event=hsm_unavailable key=pkcs11:"
expect "/metrics: signer_keys_down 1" "$(metric "$BASE" signer_keys_down)" 1
sleep 1.5 # a probe or two while still removed: they fail, nothing else happens
rm -f "$F/removed"
if wait_code "$BASE/healthz" 200 10; then
    t_ok "device back: /healthz 200 by itself (no request sent)"
else
    t_fail "device back: /healthz 200 by itself" "$(curl -s "$BASE/healthz")"
fi
has "recovered through C_Finalize + C_Initialize" "$LOG" "re-initialised after CKR_DEVICE_REMOVED"
has "AUDIT event=hsm_available logged" "$LOG" "AUDIT event=hsm_available key=pkcs11:"
tsa back >/dev/null
granted "device back: tokens again" back
expect "/metrics: signer_keys_down 0" "$(metric "$BASE" signer_keys_down)" 0
if (($(metric "$BASE" signer_hsm_failures_total) >= 22)); then t_ok "/metrics: signer_hsm_failures_total counts the failed ones"; else
    t_fail "signer_hsm_failures_total" "$(metric "$BASE" signer_hsm_failures_total)"
fi

# ---- a C_Sign that hangs past sign_timeout (1 s) ----
fail0=$(metric "$BASE" signer_hsm_failures_total) tmo0=$(metric "$BASE" signer_timeouts_total)
touch "$F/hang"
HPIDS=()
for i in 1 2 3; do
    tsa "hang$i" >"$TMP/hang$i.res" &
    track_pid $!
    HPIDS+=($!)
done
sleep 0.3
expect "HTTP threads free while C_Sign hangs: /healthz answers" "$(code_of "$BASE/healthz" | sed 's/^\(200\|503\)$/answered/')" answered
wait "${HPIDS[@]}" # the three requests come back although the HSM still hangs
[[ -e $F/hang ]] && t_ok "the held requests came back while the HSM still hangs" ||
    t_fail "held requests answered while hung" "hang file gone"
for i in 1 2 3; do sysfail "hung C_Sign: request $i answered systemFailure with Retry-After" "hang$i"; done
has "the timeout is logged" "$LOG" "job\(s\) not signed within sign_timeout"
# the first request times out; one that comes after the hang was seen (its key down, or no
# room left for a call into the token) is refused at once and counted as a failure (DESIGN D8)
tmo=$(($(metric "$BASE" signer_timeouts_total) - tmo0))
fail1=$(metric "$BASE" signer_hsm_failures_total)
if ((tmo >= 1 && tmo + fail1 - fail0 >= 3)); then
    t_ok "/metrics: signer_timeouts_total and signer_hsm_failures_total count them ($tmo timed out, $((fail1 - fail0)) refused)"
else
    t_fail "signer_timeouts_total + signer_hsm_failures_total count the three" \
        "timeouts $tmo, failures $fail0 -> $fail1"
fi
wait_code "$BASE/healthz" 503 5
expect "/healthz 503 while C_Sign hangs" "$(code_of "$BASE/healthz")" 503
rm -f "$F/hang"
if wait_code "$BASE/healthz" 200 10; then t_ok "the HSM answers again: /healthz 200 by itself"; else
    t_fail "recovery after the hang" "$(curl -s "$BASE/healthz")"
fi
tsa after_hang >/dev/null
granted "after the hang: tokens again" after_hang
tsad_stop
itest_log_clean "$LOG"

# ---- a full signer queue: one worker stuck, queue_max = 2, sign_timeout long ----
sed -i "s|^workers = 2|workers = 1\nqueue_max = 2|; s|^sign_timeout = 1s|sign_timeout = 60s|" "$CONF"
itest_tsad_start
wait_code "$BASE/healthz" 200 10 || fatal "tsad restarted" "$(curl -s "$BASE/healthz")"
touch "$F/hang"
tsa q1 >/dev/null &
track_pid $!
QPIDS=($!)
sleep 0.5 # the worker takes it and hangs
for i in 2 3; do
    tsa "q$i" >/dev/null &
    track_pid $!
    QPIDS+=($!)
    sleep 0.2
done
tsa busy >/dev/null
[[ -e $F/hang ]] && t_ok "queue full: the next request is answered while the HSM still hangs" ||
    t_fail "queue full answered at once" "hang file gone"
sysfail "queue full: systemFailure with Retry-After" busy
openssl ts -reply -in "$TMP/busy.tsr" -text 2>/dev/null | grep -q 'signing queue full' &&
    t_ok "its statusString says the queue is full" ||
    t_fail "statusString" "$(openssl ts -reply -in "$TMP/busy.tsr" -text 2>&1 | grep -m1 -A1 Status)"
rm -f "$F/hang"
wait "${QPIDS[@]}"
for i in 1 2 3; do granted "queued request $i gets its token once the HSM answers" "q$i"; done
tsad_stop

# ---- a wrong PIN at start ----
touch "$F/badpin"
: >"$TMP/badpin.log"
timeout 60 "$BUILD/tsad" -c "$CONF" >>"$TMP/badpin.log" 2>&1
expect "wrong PIN at start: tsad exits 78 (not restarted by systemd)" "$?" 78
has "the reason is clear" "$TMP/badpin.log" "token 'tsa': the PIN in .* was refused; it will not be tried again"
has "AUDIT event=hsm_login_refused" "$TMP/badpin.log" "AUDIT event=hsm_login_refused .*CKR_PIN_INCORRECT"
expect "the PIN was offered once" "$(grep -c 'C_Login: CKR_PIN_INCORRECT' "$TMP/badpin.log")" 1
timeout 60 "$BUILD/tsad" -n -c "$CONF" >/dev/null 2>&1
expect "tsad -n (ExecStartPre) exits 78 too" "$?" 78
rm -f "$F/badpin"
itest_tsad_start
if wait_code "$BASE/healthz" 200 10; then t_ok "PIN right again: tsad starts"; else
    t_fail "tsad starts with the PIN right" "$(tail -n 3 "$LOG")"
fi
tsad_stop
chrony_stop "$CHRONY_DIR"
CHRONY_DIR=

# =============================== ocspd ===============================
unset P11DELAY_REINIT # ocspd: a library that reconnects by itself (sessions reopened)
itest_ocsp_setup
ocspd_stop
sed -i "s|^pkcs11_module = .*|pkcs11_module = $WRAP\nsign_timeout = 1s|" "$CONF"
export P11DELAY_MODULE=$OCSP_P11_MODULE
OLOG=$TMP/ocspd.log
ocspd_start "$CONF" "$OLOG" || fatal "ocspd through the shim" "$(tail -n 5 "$OLOG")"
wait_code "$URL/healthz" 200 10 || fatal "ocspd healthy" "$(curl -s "$URL/healthz")"

# oq TAG [openssl ocsp args]: POST with openssl ocsp for good.pem; TAG.der, TAG.out, prints
# "responseStatus certStatus-line"
oq() {
    local tag=$1
    shift
    rm -f "$TMP/$tag.der"
    openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -url "$URL" -CAfile "$CHAIN" \
        -respout "$TMP/$tag.der" "$@" >"$TMP/$tag.out" 2>&1
    echo "$(derutil ocsp-resp "$TMP/$tag.der" 2>/dev/null | sed -n 's/^status=//p' | head -n 1) $(
        sed -n 's|^.*/good.pem: ||p' "$TMP/$tag.out" | head -n 1)"
}
# ocurl TAG REQ: POST REQ with curl; TAG.hdr, TAG.der; prints the responseStatus
ocurl() {
    curl -s --max-time 20 -D "$TMP/$1.hdr" -o "$TMP/$1.der" -H 'Content-Type: application/ocsp-request' \
        --data-binary @"$2" "$URL/" >/dev/null
    derutil ocsp-resp "$TMP/$1.der" 2>/dev/null | sed -n 's/^status=//p' | head -n 1
}
openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -reqout "$TMP/nonce.req" >/dev/null 2>&1
trylater() { # NAME TAG: tryLater (3), Retry-After, no-cache
    local st ra
    st=$(derutil ocsp-resp "$TMP/$2.der" 2>/dev/null | sed -n 's/^status=//p' | head -n 1)
    ra=$(hdr "$TMP/$2.hdr" Retry-After)
    if [[ $st == 3 && -n $ra ]]; then t_ok "$1"; else t_fail "$1" "responseStatus '$st', Retry-After '$ra'"; fi
}

expect "baseline: pre-signed hit (no nonce)" "$(oq hit0 -no_nonce)" "0 good"
expect "baseline: nonce request signed on demand" "$(oq nonce0)" "0 good"

# ---- a session closed under C_Sign ----
touch "$F/close"
expect "session closed: the nonce request is still signed" "$(oq closed)" "0 good"
has "ocspd reopened its session" "$OLOG" "session [0-9]+ reopened"

# ---- the device removed ----
touch "$F/removed"
expect "device removed: a pre-signed hit is still served, verified" "$(oq hit1 -no_nonce)" "0 good"
grep -q 'Response verify OK' "$TMP/hit1.out" && t_ok "  and openssl verifies it" ||
    t_fail "pre-signed hit verifies" "$(head -n 3 "$TMP/hit1.out")"
ocurl removed "$TMP/nonce.req" >/dev/null
trylater "device removed: a request that needs a signature gets tryLater with Retry-After" removed
expect "  with Cache-Control no-cache" "$(hdr "$TMP/removed.hdr" Cache-Control)" no-cache
wait_code "$URL/healthz" 503 5
hz=$(curl -s -w ' %{http_code}' "$URL/healthz")
if [[ $hz == *'"signer":{"ok":false'*' 503' ]]; then t_ok "ocspd /healthz 503, signer not ok"; else
    t_fail "ocspd /healthz red" "$hz"
fi
has "AUDIT event=hsm_unavailable logged" "$OLOG" "AUDIT event=hsm_unavailable key=pkcs11:"
rm -f "$F/removed"
if wait_code "$URL/healthz" 200 10; then t_ok "device back: ocspd /healthz 200 by itself"; else
    t_fail "ocspd recovers by itself" "$(curl -s "$URL/healthz")"
fi
has "AUDIT event=hsm_available logged" "$OLOG" "AUDIT event=hsm_available"
expect "device back: nonce requests signed again" "$(oq nonce1)" "0 good"

# ---- a C_Sign that hangs past sign_timeout ----
touch "$F/hang"
ocurl hung "$TMP/nonce.req" >/dev/null &
track_pid $!
HP=$!
expect "C_Sign hangs: a pre-signed hit is served meanwhile" "$(oq hit2 -no_nonce)" "0 good"
wait "$HP"
[[ -e $F/hang ]] && t_ok "the held request came back while the HSM still hangs" ||
    t_fail "held request answered while hung" "hang file gone"
trylater "hung C_Sign: tryLater with Retry-After after sign_timeout" hung
wait_code "$URL/healthz" 503 5
expect "ocspd /healthz 503 while C_Sign hangs" "$(code_of "$URL/healthz")" 503
rm -f "$F/hang"
if wait_code "$URL/healthz" 200 10; then t_ok "the HSM answers again: ocspd /healthz 200"; else
    t_fail "ocspd recovers after the hang" "$(curl -s "$URL/healthz")"
fi
expect "after the hang: nonce requests signed again" "$(oq nonce2)" "0 good"
itest_ocspd_stop_clean

# ---- a full signer queue: one worker stuck, queue_max = 2 ----
sed -i "s|^workers = 2|workers = 1|; s|^queue_max = 4096|queue_max = 2|; s|^sign_timeout = 1s|sign_timeout = 60s|" "$CONF"
ocspd_start "$CONF" "$OLOG" || fatal "ocspd restarted" "$(tail -n 5 "$OLOG")"
wait_code "$URL/healthz" 200 10 || fatal "ocspd healthy again" "$(curl -s "$URL/healthz")"
touch "$F/hang"
QPIDS=()
for i in 1 2 3; do
    ocurl "oq$i" "$TMP/nonce.req" >/dev/null &
    track_pid $!
    QPIDS+=($!)
    sleep 0.3
done
expect "queue full: tryLater at once" "$(ocurl obusy "$TMP/nonce.req")" 3
[[ -e $F/hang ]] && t_ok "  answered while the HSM still hangs" || t_fail "ocspd queue full answered at once" "hang file gone"
trylater "  with Retry-After" obusy
expect "  and a pre-signed hit is still served" "$(oq hit3 -no_nonce)" "0 good"
rm -f "$F/hang"
wait "${QPIDS[@]}"
for i in 1 2 3; do
    expect "queued request $i answered once the HSM answers" \
        "$(derutil ocsp-resp "$TMP/oq$i.der" 2>/dev/null | sed -n 's/^status=//p' | head -n 1)" 0
done
itest_ocspd_stop_clean

# ---- a wrong PIN at start ----
touch "$F/badpin"
: >"$TMP/obadpin.log"
SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF timeout 60 "$BUILD/ocspd" -c "$CONF" >>"$TMP/obadpin.log" 2>&1
expect "wrong PIN at start: ocspd exits 78" "$?" 78
has "the reason is clear" "$TMP/obadpin.log" "the PIN in .* was refused; it will not be tried again"
rm -f "$F/badpin"

t_summary "$NAME"
