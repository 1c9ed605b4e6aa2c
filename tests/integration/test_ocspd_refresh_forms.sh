#!/usr/bin/env bash
#
# test_ocspd_refresh_forms.sh: the refresher re-signs a stored answer in the CertID form it
# was stored in (STANDARDS LW-05, OCSP-10). An answer signed on demand is stored in the form
# the client asked in: SHA-384, or SHA-1 without hash parameters (as Go's x/crypto/ocsp
# sends). Re-signed as the two pre-signed forms (SHA-1 and SHA-256 with NULL parameters), such
# an answer stayed due and was picked again at once: the refresher signed without end (about
# 500 signatures a second here) and never refreshed it. With answers valid 1 minute and
# refreshed at 90 % of it gone (due 6 s after they are signed):
#   - a scan that meets them ends (ocspd logs "refreshed N response(s)");
#   - each form is then served from the store (the presigned counter), with a new producedAt
#     and the client's own CertID echoed byte for byte;
#   - the re-signing counter grows by what the scan re-signed, not without end;
#   - the refresher walks the store only when an answer can be due (the earliest due time of
#     the answers it saw, or of one stored since), not at every refresh_interval.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd_refresh_forms
itest_ocsp_setup
# shellcheck disable=SC1091
. "$TMP/pki/ocsp-pki.env"
export SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF
itest_ocspd_stop_clean

ctl() { "$BUILD/ocspctl" -c "$CONF" -d "$STORE" -u forms-op "$@"; }
# check NAME GOT WANT
check() { if [[ $2 == "$3" ]]; then t_ok "$1"; else t_fail "$1" "got '$2', want '$3'"; fi; }
# post FORM TAG: POST FORM.req, the answer read into TAG.kv
post() {
    curl -s --max-time 20 -o "$TMP/$2.der" -H 'Content-Type: application/ocsp-request' \
        --data-binary @"$TMP/$1.req" "$URL/" >/dev/null
    derutil ocsp-resp "$TMP/$2.der" >"$TMP/$2.kv" 2>/dev/null || : >"$TMP/$2.kv"
}
kv() { kv_get "$TMP/$1.kv" "$2"; }
metric() { curl -s --max-time 10 "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# answers valid 1 minute (qca-rekey); refreshed at 90 % of it gone, scans every 200 ms
ctl issuer add qca-rekey --cert "$OCSP_REKEY_CA_CERT" --key-label "$OCSP_REKEY_SIGNER_LABEL" \
    --signer-cert "$OCSP_REKEY_SIGNER_CERT" --validity 1m >"$TMP/ctl.out" 2>&1 ||
    fatal "issuer with answers valid 1 minute" "$(cat "$TMP/ctl.out")"
SERIAL=7C$(openssl rand -hex 8 | tr a-f A-F)
ctl add qca-rekey "$SERIAL" >"$TMP/ctl.out" 2>&1 || fatal "ocspctl add" "$(cat "$TMP/ctl.out")"
sed -i -e 's/^refresh_interval = .*/refresh_interval = 200ms/' \
    -e 's/^refresh_margin = .*/refresh_margin = 90/' "$CONF"
ocspd_start "$CONF" "$TMP/ocspd.log" || fatal "ocspd" "$(tail -n 3 "$TMP/ocspd.log")"

openssl ocsp -issuer "$OCSP_REKEY_CA_CERT" -sha384 -serial "0x$SERIAL" -no_nonce \
    -reqout "$TMP/s384.req" >/dev/null 2>&1
openssl ocsp -issuer "$OCSP_REKEY_CA_CERT" -serial "0x$SERIAL" -no_nonce \
    -reqout "$TMP/sha1.req" >/dev/null 2>&1
derutil ocsp-mkreq "$TMP/np.req" "$TMP/sha1.req" noparams=1 ||
    fatal "a CertID without hash parameters" "derutil ocsp-mkreq failed"
forms="s384 np sha1"
for f in $forms; do
    post "$f" "${f}1"
    check "$f: answered good on demand" "$(kv "${f}1" single.0.status)" good
done
# no answer can be due in the first 6 s (the earliest: the new serial's, signed at the start):
# the refresher walks the store once at start, not at every 200 ms interval (a walk of a
# store of millions costs seconds of CPU)
sleep 2
scans=$(metric ocsp_refresh_scans_total)
if [[ $scans =~ ^[0-9]+$ ]] && ((scans >= 1 && scans <= 2)); then
    t_ok "the refresher walks the store when an answer can be due, not every interval ($scans walk(s) in 2 s)"
else
    t_fail "the refresher walks the store when an answer can be due, not every interval" \
        "ocsp_refresh_scans_total '$scans' after 2 s at refresh_interval 200ms"
fi

log0=$(grep -c 'refreshed [0-9]* response(s) before' "$TMP/ocspd.log")

# the first scan that finds them due, and ends
for ((i = 0; i < 300; i++)); do
    (($(grep -c 'refreshed [0-9]* response(s) before' "$TMP/ocspd.log") > log0)) && break
    sleep 0.2
done
if (($(grep -c 'refreshed [0-9]* response(s) before' "$TMP/ocspd.log") > log0)); then
    t_ok "the refresher's scan over the three forms ends: $(grep -o 'refreshed [0-9]* response(s) before' "$TMP/ocspd.log" | tail -n 1)"
else
    fatal "the refresher's scan over the three forms ends" "no scan ended in 60 s; ocsp_resigned_total $(metric ocsp_resigned_total)"
fi
# Another issuer's signer renewed (qca): the walk that re-signs its answers must still keep
# the due times of qca-rekey's answers, which it does not pick (review: they were left out of
# the earliest due time, so they waited for the hourly walk and passed their nextUpdate)
export OCSP_AIA_URL # the CA configuration reads it
openssl x509 -new -force_pubkey "$TMP/pki/hsm/ocsp-signer.pub.pem" \
    -subj "/C=RO/O=$OCSP_PKI_ORG/CN=Demo OCSP Responder (renewed)" \
    -CA "$OCSP_CA_CERT" -CAkey "$OCSP_CA_KEY" -set_serial "0x$(openssl rand -hex 16)" -days 20 \
    -sha256 -extfile "$OCSP_CA_DIR/ca.cnf" -extensions v3_ocsp -out "$TMP/renewed.pem" \
    2>"$TMP/x509.err" || fatal "renewed delegate of qca issued" "$(cat "$TMP/x509.err")"

# each form refreshed (answers signed a second apart fall due a second apart)
for f in $forms; do
    for ((i = 0; i < 120; i++)); do
        post "$f" "${f}2"
        [[ $(kv "${f}2" produced) > $(kv "${f}1" produced) ]] && break
        sleep 0.5
    done
done
# soon, well before qca-rekey's answers (refreshed just now) fall due again, and in a later
# second than they were signed (producedAt and the renewal time are whole seconds)
sleep 1
ctl issuer add qca --cert "$OCSP_CA_CERT" --key-label "$OCSP_SIGNER_LABEL" \
    --signer-cert "$TMP/renewed.pem" >"$TMP/ctl.out" 2>&1 ||
    fatal "qca's delegate renewed" "$(cat "$TMP/ctl.out")"
cp "$TMP/s3842.kv" "$TMP/s3843.kv"
resigned=$(metric ocsp_resigned_total)
hits0=$(metric 'ocsp_responses_total{source="presigned"}')
for f in $forms; do
    post "$f" "${f}2"
    if [[ $(kv "${f}2" produced) > $(kv "${f}1" produced) ]]; then
        t_ok "$f: refreshed in its own form (producedAt $(kv "${f}1" produced) -> $(kv "${f}2" produced))"
    else
        t_fail "$f: refreshed in its own form" "producedAt $(kv "${f}1" produced) -> $(kv "${f}2" produced)"
    fi
    check "$f: the client's CertID echoed" "$(kv "${f}2" single.0.certid)" \
        "$(derutil ocsp-req "$TMP/$f.req" | sed -n 's/^certid.0=//p')"
done
check "the three answers came from the store" "$(metric 'ocsp_responses_total{source="presigned"}')" \
    $((hits0 + 3))
# a handful per 6 s when due (4 answers), not hundreds a second
if [[ $resigned =~ ^[0-9]+$ ]] && ((resigned <= 100)); then
    t_ok "the refresher re-signed $resigned answer(s), not without end"
else
    t_fail "the refresher re-signed a bounded number of answers" "ocsp_resigned_total $resigned"
fi

for ((i = 0; i < 120; i++)); do
    post s384 s384r
    [[ $(kv s384r produced) > $(kv s3843 produced) ]] && break
    sleep 0.5
done
if [[ $(kv s384r produced) > $(kv s3843 produced) ]]; then
    t_ok "after qca's signer was renewed, qca-rekey's answer is still refreshed when due ($(kv s3843 produced) -> $(kv s384r produced))"
else
    t_fail "after qca's signer was renewed, qca-rekey's answer is still refreshed when due" \
        "producedAt $(kv s3843 produced) -> $(kv s384r produced) after 60 s"
fi

itest_ocspd_stop_clean
t_summary "$NAME"
