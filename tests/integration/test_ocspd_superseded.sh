#!/usr/bin/env bash
#
# test_ocspd_superseded.sh: an answer signed for a status that changed while it was signed is
# not stored, and is counted (STANDARDS EID-05: the Backing rule of ocsp/ocsp_store.h; a
# revocation is visible on the next request).
# ocspd signs a request without a nonce for a serial that has no stored answer (on demand, then
# stored for the next requests); the token holds that signature (bench/p11delay.c,
# P11DELAY_HANG_FILE) while `ocspctl revoke` changes the serial's status. When the signature
# comes back, the `good` answer is not stored (its status record is no longer the one it was
# signed for): /metrics ocsp_answers_superseded_total counts it, and the next request is
# answered `revoked`, and so is a request for the answer's GET form.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd_superseded
itest_ocsp_delay_setup

metric() { curl -s --max-time 5 "$URL/metrics" | awk -v n="$1" '$1 == n { printf "%d\n", $2 }'; }
STORE2=$TMP/store2
H=$TMP/hang
ctl() { "$BUILD/ocspctl" -c "$CONF" -d "$STORE2" -u superseded-op "$@"; }
SERIAL=51$(openssl rand -hex 15 | tr a-f A-F)
printf 'V\t491231235959Z\t\t%s\tunknown\t/CN=superseded\n' "$SERIAL" >"$TMP/index.txt"
if ctl init >"$TMP/ctl.out" 2>&1 &&
    ctl issuer add a --cert "$OCSP_CA_CERT" --key-label "$OCSP_SIGNER_LABEL" \
        --signer-cert "$OCSP_SIGNER_CERT" >>"$TMP/ctl.out" 2>&1 &&
    ctl import-index a "$TMP/index.txt" >>"$TMP/ctl.out" 2>&1; then
    t_ok "store: one issuer (token key), one good serial, no answer stored"
else
    fatal "store" "$(tail -n 5 "$TMP/ctl.out")"
fi

ocspd_write_conf "$CONF" "$PORT" "$STORE2" "$TMP/pki"
sed -i -e "s|^pkcs11_module = .*|pkcs11_module = $P11DELAY_SO\nsign_timeout = 20s|" "$CONF"
export P11DELAY_MODULE=$OCSP_P11_MODULE P11DELAY_LATENCY_MS=0 P11DELAY_HANG_FILE=$H
ocspd_start "$CONF" "$TMP/ocspd.log" ||
    fatal "ocspd behind the simulated HSM" "$(tail -n 3 "$TMP/ocspd.log")"

# oq TAG: a request without a nonce for SERIAL; prints "responseStatus certStatus"
oq() {
    rm -f "$TMP/$1.der"
    timeout 40 openssl ocsp -issuer "$OCSP_CA_CERT" -serial "0x$SERIAL" -url "$URL" -noverify \
        -no_nonce -respout "$TMP/$1.der" >"$TMP/$1.out" 2>&1
    echo "$(derutil ocsp-resp "$TMP/$1.der" 2>/dev/null | sed -n 's/^status=//p' | head -n 1) $(
        sed -n "s/^0x$SERIAL: //p" "$TMP/$1.out" | head -n 1)"
}

expect "superseded answers: none yet" "$(metric ocsp_answers_superseded_total)" 0
touch "$H"
oq held >"$TMP/held.res" &
track_pid $!
HELD=$!
for ((i = 0; i < 300; i++)); do # a bound: the request's signature held in the token
    [[ -e $H.held ]] && break
    sleep 0.1
done
[[ -e $H.held ]] || fatal "the signature held" "no call reached the token"
if ctl revoke a "$SERIAL" --reason keyCompromise >>"$TMP/ctl.out" 2>&1; then
    t_ok "revoked while its answer is being signed"
else
    t_fail "ocspctl revoke" "$(tail -n 3 "$TMP/ctl.out")"
fi
rm -f "$H"
wait "$HELD"
expect "the request in flight is answered (successful)" "$(cut -d' ' -f1 "$TMP/held.res")" 0
for ((i = 0; i < 100; i++)); do # a bound: the commit writer's turn
    [[ $(metric ocsp_answers_superseded_total) == 1 ]] && break
    sleep 0.1
done
expect "ocsp_answers_superseded_total counts the answer not stored" \
    "$(metric ocsp_answers_superseded_total)" 1
expect "the next request: revoked (the good answer was not stored)" "$(oq next | cut -d' ' -f2)" \
    revoked

itest_ocspd_stop_clean
t_summary "$NAME"
