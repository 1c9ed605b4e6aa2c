#!/usr/bin/env bash
#
# test_ocspd_signer_change.sh: a replaced responder certificate (issue 8 item 4; RFC 6960
# §4.2.2.2, STANDARDS OCSP-21/22). While ocspd runs, `ocspctl issuer add --signer-cert NEW`
# replaces the delegate of issuer qca:
#   1. renewal: a new certificate for the same key in the token;
#   2. a new delegate with a new (software) key.
# After each change, no stored answer of the old delegate is served: a pre-signed answer
# signed by another signer than the issuer's current one is a miss, signed again by the new
# one, stored, and then served as a hit; the refresher also re-signs the old delegate's
# stored answers at once (one not asked for since is a hit of the new delegate); every answer
# verifies with `openssl ocsp` against the CA chain and carries the new delegate's
# certificate.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd_signer_change

itest_ocsp_setup
# shellcheck disable=SC1091
. "$TMP/pki/ocsp-pki.env"
export SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF
export OCSP_AIA_URL  # the CA configuration reads it
ctl() { "$BUILD/ocspctl" -c "$CONF" -d "$STORE" -u tester "$@"; }

# ask NAME CERT [-nonce]: one openssl ocsp request, without a nonce unless asked (so a
# pre-signed answer may serve it); the response in NAME.der, openssl's verdict in NAME.out
ask() {
    openssl ocsp -issuer "$CA" -cert "$2" -url "$URL/" -CAfile "$CHAIN" "${3:--no_nonce}" \
        -respout "$TMP/$1.der" >"$TMP/$1.out" 2>&1
}
# the SHA-256 fingerprint of the responder certificate a response carries
resp_signer() {
    openssl ocsp -respin "$TMP/$1.der" -resp_text -noverify 2>/dev/null |
        sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//'
}
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//'; }
metric() {
    curl -s "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 + 0 }'
}
hits() { metric 'ocsp_responses_total{source="presigned"}'; }
# answered_by NAME WANT_CERT: the answer verified, good, and carries WANT_CERT
answered_by() {
    local got
    got=$(resp_signer "$1")
    if grep -q 'Response verify OK' "$TMP/$1.out" && grep -q ': good' "$TMP/$1.out" &&
        [[ $got == $(fp "$2") ]]; then
        t_ok "$3"
    else
        t_fail "$3" "signer $got, want $(fp "$2"); $(tr '\n' ' ' <"$TMP/$1.out")"
    fi
}
# wait until ocspd signs with CERT (it loads changed issuers within ~250 ms): a nonce request,
# always signed on demand
wait_signer() {
    local i
    for i in $(seq 1 40); do
        ask probe "$OCSP_HIGHBIT_CERT" -nonce
        [[ $(resp_signer probe) == $(fp "$1") ]] && return 0
        sleep 0.25
    done
    return 1
}

ask before "$OCSP_GOOD_CERT"
sleep 1 # the store was pre-signed in an earlier second than the change below
R0=$(metric ocsp_resigned_total)
answered_by before "$SIGNER" "before: the pre-signed answer carries the first delegate"

# ---- 1. renewal: a new certificate for the same key (label ocsp-signer in the token) ----
openssl x509 -new -force_pubkey "$TMP/pki/hsm/ocsp-signer.pub.pem" \
    -subj "/C=RO/O=$OCSP_PKI_ORG/CN=Demo OCSP Responder (renewed)" \
    -CA "$CA" -CAkey "$OCSP_CA_KEY" -set_serial "0x$(openssl rand -hex 16)" -days 20 -sha256 \
    -extfile "$OCSP_CA_DIR/ca.cnf" -extensions v3_ocsp -out "$TMP/renewed.pem" 2>"$TMP/x509.err" ||
    fatal "renewed delegate issued" "$(cat "$TMP/x509.err")"
ctl issuer add qca --cert "$CA" --key-label "$OCSP_SIGNER_LABEL" --signer-cert "$TMP/renewed.pem" \
    --signature ecdsa --digest sha256 --nonce echo --unissued revoked --archive-cutoff yes \
    >"$TMP/add1.out" 2>&1 || fatal "issuer add --signer-cert renewed" "$(tail -n 3 "$TMP/add1.out")"
wait_signer "$TMP/renewed.pem" || fatal "ocspd loads the renewed delegate" "$(tail -n 3 "$TMP/ocspd.log")"
t_ok "ocspd loads the renewed delegate (same key) without a restart"

# the refresher re-signs the old delegate's stored answers at once, not only when asked for
# (the demo's 8: presign skips the expired certificate)
r0=${R0:-0}
for i in $(seq 1 40); do
    (($(metric ocsp_resigned_total) - r0 >= 8)) && break
    sleep 0.25
done
h0=$(hits)
ask highbit "$OCSP_HIGHBIT_CERT"
if [[ $(($(hits) - h0)) == 1 && $(resp_signer highbit) == $(fp "$TMP/renewed.pem") ]] &&
    grep -q 'Response verify OK' "$TMP/highbit.out"; then
    t_ok "renewal: the refresher re-signed the stored answers: highbit.pem is a hit of the new delegate"
else
    t_fail "renewal: the refresher re-signed the stored answers" \
        "hits +$(($(hits) - h0)), signer $(resp_signer highbit), resigned $(metric ocsp_resigned_total) (from $r0)"
fi
ask renew1 "$OCSP_GOOD_CERT"
answered_by renew1 "$TMP/renewed.pem" \
    "renewal: the answer stored by the old delegate is not served (re-signed with the new one)"
h0=$(hits)
ask renew2 "$OCSP_GOOD_CERT"
answered_by renew2 "$TMP/renewed.pem" "renewal: the next request is a hit of the new answer"
expect "renewal: that request was a pre-signed hit" "$(($(hits) - h0))" 1
ask renew3 "$OCSP_REVOKED_CERT"
if grep -q ': revoked' "$TMP/renew3.out" && grep -q 'Response verify OK' "$TMP/renew3.out" &&
    [[ $(resp_signer renew3) == $(fp "$TMP/renewed.pem") ]]; then
    t_ok "renewal: revoked.pem answered revoked by the new delegate"
else
    t_fail "renewal: revoked.pem answered revoked by the new delegate" "$(tr '\n' ' ' <"$TMP/renew3.out")"
fi

# ---- 2. a new delegate with a new key (software key file) ----
openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/new.key"
openssl req -new -key "$TMP/new.key" -subj "/C=RO/O=$OCSP_PKI_ORG/CN=Demo OCSP Responder (new key)" \
    -out "$TMP/new.csr" 2>/dev/null
openssl x509 -req -in "$TMP/new.csr" -CA "$CA" -CAkey "$OCSP_CA_KEY" \
    -set_serial "0x$(openssl rand -hex 16)" -days 20 -sha256 -extfile "$OCSP_CA_DIR/ca.cnf" \
    -extensions v3_ocsp -out "$TMP/newkey.pem" 2>"$TMP/x509.err" ||
    fatal "new-key delegate issued" "$(cat "$TMP/x509.err")"
ctl issuer add qca --cert "$CA" --key-file "$TMP/new.key" --signer-cert "$TMP/newkey.pem" \
    --signature ecdsa --digest sha256 --nonce echo --unissued revoked --archive-cutoff yes \
    >"$TMP/add2.out" 2>&1 || fatal "issuer add --signer-cert newkey" "$(tail -n 3 "$TMP/add2.out")"
wait_signer "$TMP/newkey.pem" || fatal "ocspd loads the new-key delegate" "$(tail -n 3 "$TMP/ocspd.log")"
t_ok "ocspd loads the new-key delegate without a restart"
ask new1 "$OCSP_GOOD_CERT"
answered_by new1 "$TMP/newkey.pem" "new key: no answer of the replaced delegate is served"
rid=$(derutil ocsp-resp "$TMP/new1.der" | sed -n 's/^rid=//p')
expect "new key: ResponderID is byKey of the new delegate (OCSP-08)" "$rid" \
    "bykey:$(derutil keyhash "$TMP/newkey.pem")"
ask new2 "$OCSP_HOLD_CERT"
if grep -q ': revoked' "$TMP/new2.out" && [[ $(resp_signer new2) == $(fp "$TMP/newkey.pem") ]]; then
    t_ok "new key: hold.pem (pre-signed before) answered by the new delegate"
else
    t_fail "new key: hold.pem answered by the new delegate" "$(tr '\n' ' ' <"$TMP/new2.out")"
fi

itest_ocspd_stop_clean
t_summary "$NAME"
