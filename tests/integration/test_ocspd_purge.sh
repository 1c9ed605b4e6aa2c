#!/usr/bin/env bash
#
# test_ocspd_purge.sh: purging per issuer (issue 10 §3) with the real ocspctl and ocspd on the
# demo PKI (tests/lib/ocsp-pki.sh; its store pre-signed). STANDARDS LW-09, EID-06, OCSP-25:
#   - an issuer marked qualified refuses --purge-status-after (exit 3, citing eIDAS Art. 24(4)
#     and LW-09), and `ocspctl purge ISSUER --status` is refused for it (exit 3, journalled);
#   - the demo's presign skipped the expired certificate: its first request is signed on
#     demand (then stored, in each CertID form asked for);
#   - `ocspctl purge qca --answers` drops the stored answers of the expired certificate
#     (both CertID forms) and keeps its status record; the next request is signed again on
#     demand (a new producedAt) and still says good with archiveCutoff (EID-06);
#   - an issuer that allows it (--purge-status-after 1d, which needs --unissued unknown)
#     loses the status of a serial expired long ago with `purge --status`, keeps a valid
#     one's, and answers the purged serial unknown (never revoked: ocspctl.8);
#   - `ocspctl export` lists both settings of each issuer (qualified, purge_status_after).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd_purge
itest_ocsp_setup
# shellcheck disable=SC1091
. "$TMP/pki/ocsp-pki.env"

ctl() {
    SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/ocspctl" -c "$CONF" -d "$STORE" -u purge-op "$@"
}
# ctl_exit NAME WANT ARGS...: ocspctl ARGS exits WANT (its output in ctl.out)
ctl_exit() {
    local name=$1 want=$2 rc
    shift 2
    ctl "$@" >"$TMP/ctl.out" 2>&1
    rc=$?
    if ((rc == want)); then t_ok "$name"; else
        t_fail "$name" "exit $rc, want $want: $(tail -n 3 "$TMP/ctl.out" | tr '\n' ' ')"
    fi
}
# check NAME GOT WANT
check() { if [[ $2 == "$3" ]]; then t_ok "$1"; else t_fail "$1" "got '$2', want '$3'"; fi; }
responses() { mdb_stat -s responses "$STORE" | awk '/Entries:/ { print $2 }'; }
# ask TAG CERT|SERIAL ISSUER_CERT: POST without a nonce (the stored answer's path)
ask() {
    local tag=$1 what=$2 iss=$3
    if [[ -f $what ]]; then
        openssl ocsp -issuer "$iss" -cert "$what" -no_nonce -reqout "$TMP/$tag.req" >/dev/null 2>&1
    else
        openssl ocsp -issuer "$iss" -serial "0x$what" -no_nonce -reqout "$TMP/$tag.req" \
            >/dev/null 2>&1
    fi
    curl -s --max-time 20 -o "$TMP/$tag.der" -H 'Content-Type: application/ocsp-request' \
        --data-binary @"$TMP/$tag.req" "$URL/" >/dev/null
    derutil ocsp-resp "$TMP/$tag.der" >"$TMP/$tag.kv" 2>/dev/null || : >"$TMP/$tag.kv"
}
kv() { kv_get "$TMP/$1.kv" "$2"; }
# has NAME FILE ERE: FILE has a line matching ERE
has() { if grep -Eq -- "$3" "$2"; then t_ok "$1"; else t_fail "$1" "no /$3/ in: $(head -c 600 "$2")"; fi; }
issuer_qca() {
    ctl issuer add qca --cert "$OCSP_CA_CERT" --key-label "$OCSP_SIGNER_LABEL" \
        --signer-cert "$OCSP_SIGNER_CERT" "$@"
}
EXPIRED=$TMP/pki/expired.pem
EXPIRED_SERIAL=$(openssl x509 -in "$EXPIRED" -noout -serial | sed 's/.*=//')

metric() { curl -s "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# ---- a qualified issuer (LW-09, EID-06) ----
signed0=$(metric 'ocsp_responses_total{source="signed"}')
ask before "$EXPIRED" "$CA"
check "expired.pem answered good before any purge" "$(kv before single.0.status)" good
signed1=$(metric 'ocsp_responses_total{source="signed"}')
check "... signed on demand: presign skipped the expired certificate" \
    "$((${signed1:-0} - ${signed0:-0}))" 1
# its SHA-256 CertID form too (stored on demand as well)
openssl ocsp -issuer "$CA" -sha256 -cert "$EXPIRED" -no_nonce -reqout "$TMP/b256.req" \
    >/dev/null 2>&1
curl -s --max-time 20 -o "$TMP/b256.der" -H 'Content-Type: application/ocsp-request' \
    --data-binary @"$TMP/b256.req" "$URL/" >/dev/null
ctl_exit "qca marked qualified" 0 issuer add qca --cert "$OCSP_CA_CERT" \
    --key-label "$OCSP_SIGNER_LABEL" --signer-cert "$OCSP_SIGNER_CERT" --qualified yes
ctl issuer list >"$TMP/list.out" 2>&1
has "issuer list shows qualified=yes" "$TMP/list.out" '^qca .*qualified=yes purge_status_after=0'
ctl export qca >"$TMP/export.out" 2>&1
has "export shows the issuer qualified, no status purging" "$TMP/export.out" \
    '^\{"type":"issuer","name":"qca",.*"qualified":true,"purge_status_after":0[,}]'
issuer_qca --purge-status-after 1d --unissued unknown >"$TMP/q.out" 2>&1
rc=$?
if ((rc == 3)) && grep -q 'LW-09' "$TMP/q.out" && grep -q 'Art. 24(4)' "$TMP/q.out"; then
    t_ok "a qualified issuer refuses --purge-status-after (exit 3, eIDAS Art. 24(4), LW-09)"
else
    t_fail "a qualified issuer refuses --purge-status-after" "exit $rc: $(cat "$TMP/q.out")"
fi
ctl issuer list >"$TMP/list.out" 2>&1
has "the refused update changed nothing" "$TMP/list.out" \
    '^qca .*unissued=revoked .*qualified=yes purge_status_after=0'
ctl_exit "purge qca --status refused for the qualified issuer (exit 3)" 3 purge qca --status
ctl export qca >"$TMP/export.out" 2>&1
has "the refused status purge is journalled" "$TMP/export.out" \
    '"op":"purge".*"what":"status","result":"refused"'

# ---- answers of expired certificates dropped, re-signed on demand ----
n0=$(responses)
sleep 1 # a new producedAt second for the answer signed again
ctl_exit "purge qca --answers" 0 purge qca --answers
dropped=$(sed -n 's/.*: \([0-9]*\) answer(s) dropped.*/\1/p' "$TMP/ctl.out")
if [[ $dropped =~ ^[0-9]+$ ]] && ((dropped == 2)) && (($(responses) == n0 - dropped)); then
    t_ok "the expired certificates' answers dropped ($dropped, both CertID forms)"
else
    t_fail "the expired certificates' answers dropped" "dropped '$dropped', responses $n0 -> $(responses)"
fi
ctl export qca >"$TMP/export.out" 2>&1
has "the answers purge is journalled with the operator and its count" "$TMP/export.out" \
    '"who":"purge-op","op":"purge".*"what":"answers","result":"done","answers_dropped":'"$dropped"
ctl status qca "$EXPIRED_SERIAL" >"$TMP/st.out" 2>&1
has "the expired certificate's status record stays" "$TMP/st.out" ' good '
ask after "$EXPIRED" "$CA"
check "expired.pem still answered good after the purge (EID-06)" "$(kv after single.0.status)" good
has "... with archiveCutoff (OCSP-25)" "$TMP/after.kv" '^single\.0\.archive_cutoff=[0-9]{14}Z$'
if [[ $(kv after produced) > $(kv before produced) ]]; then
    t_ok "the purged answer was signed again on demand (producedAt $(kv after produced))"
else
    t_fail "the purged answer was signed again on demand" "producedAt $(kv before produced) -> $(kv after produced)"
fi

# ---- an issuer that allows status purging ----
ctl_exit "purge-status-after without --unissued unknown refused (exit 3)" 3 \
    issuer add qca-rekey --cert "$OCSP_REKEY_CA_CERT" --key-label "$OCSP_REKEY_SIGNER_LABEL" \
    --signer-cert "$OCSP_REKEY_SIGNER_CERT" --purge-status-after 1d
ctl_exit "qca-rekey allows status purging after 1 day" 0 \
    issuer add qca-rekey --cert "$OCSP_REKEY_CA_CERT" --key-label "$OCSP_REKEY_SIGNER_LABEL" \
    --signer-cert "$OCSP_REKEY_SIGNER_CERT" --purge-status-after 1d --unissued unknown
ctl export qca-rekey >"$TMP/export.out" 2>&1
has "export shows the issuer not qualified, status purged after 1 day" "$TMP/export.out" \
    '^\{"type":"issuer","name":"qca-rekey",.*"qualified":false,"purge_status_after":86400[,}]'
OLD=7A$(openssl rand -hex 8 | tr a-f A-F)
NEW=7B$(openssl rand -hex 8 | tr a-f A-F)
ctl_exit "a serial expired in 2001" 0 add qca-rekey "$OLD" --not-after 20010101000000Z
ctl_exit "a serial valid until 2049" 0 add qca-rekey "$NEW" --not-after 20491231000000Z
ask old1 "$OLD" "$OCSP_REKEY_CA_CERT"
check "the expired serial is answered good before the purge" "$(kv old1 single.0.status)" good
ctl_exit "purge qca-rekey --status" 0 purge qca-rekey --status
has "one status record removed" "$TMP/ctl.out" ': 1 status record\(s\) removed'
# journalled before anything is removed (a purge killed half-way, or whose journal cannot be
# written, must not have removed status records that no journal entry mentions: LW-09)
ctl export qca-rekey >"$TMP/export.out" 2>&1
started=$(grep -n '"op":"purge".*"what":"status","result":"started"' "$TMP/export.out" | head -n 1)
done_at=$(grep -n '"op":"purge".*"what":"status","result":"done".*"status_removed":1' \
    "$TMP/export.out" | head -n 1)
if [[ -n $started && -n $done_at ]] && ((${started%%:*} < ${done_at%%:*})); then
    t_ok "the status purge is journalled as started before it removes anything, then done"
else
    t_fail "the status purge is journalled as started before it removes anything" \
        "$(grep '"op":"purge"' "$TMP/export.out" | head -c 800)"
fi
ctl status qca-rekey "$OLD" >"$TMP/st.out" 2>&1
has "the purged serial has no record" "$TMP/st.out" "^$OLD not-issued "
ctl status qca-rekey "$NEW" >"$TMP/st.out" 2>&1
has "the valid serial keeps its record" "$TMP/st.out" "^$NEW good "
ask old2 "$OLD" "$OCSP_REKEY_CA_CERT"
check "the purged serial is answered unknown (never revoked)" "$(kv old2 single.0.status)" unknown
ask new2 "$NEW" "$OCSP_REKEY_CA_CERT"
check "the valid serial is still answered good" "$(kv new2 single.0.status)" good

itest_ocspd_stop_clean
t_summary "$NAME"
