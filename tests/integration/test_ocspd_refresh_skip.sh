#!/usr/bin/env bash
#
# test_ocspd_refresh_skip.sh: an issuer whose key is down does not stop the refresh of the
# other issuers' answers (issue 10, review of the refresher's walk; STANDARDS LW-05, DESIGN D6,
# D8). The refresher walks the stored answers in key order (issuer id prefix, serial) a chunk
# of 1024 due answers at a time. A chunk that could not be signed at all used to end the walk,
# and every walk starts at the first key: the answers of the issuers sorting after one whose
# key is down were never refreshed ahead of their nextUpdate while the key stayed down.
#
# Two issuers, answers valid 1 minute and due 6 s after they are signed (refresh_margin 90):
#   - A sorts first (its id, the SHA-256 of its certificate, is the smaller) and signs with a
#     delegated responder key in the token behind the simulated HSM (bench/p11delay.c); it has
#     1100 serials, so 2200 pre-signed answers (SHA-1 and SHA-256 CertIDs): more than a chunk;
#   - B signs with its CA key from a file (the software backend), 5 serials.
# The token then goes away (P11DELAY_REMOVED_FILE: every call fails, CKR_DEVICE_REMOVED):
#   - B's 10 answers are re-signed by the refresher (ocsp_resigned_total; no request is made,
#     so nothing is signed on demand), although A's due answers come first and cannot be;
#   - once the token is back, A's answers are re-signed too.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd_refresh_skip
itest_ocsp_delay_setup

STORE2=$TMP/store2
ctl() { "$BUILD/ocspctl" -c "$CONF" -d "$STORE2" -u refresh-op "$@"; }
metric() {
    curl -s --max-time 5 "$URL/metrics" | awk -v m="$1" '$1 == m { print $2; exit }'
}
# wait_for NAME COND...: poll COND every 0.2 s, up to 90 s (not a timing check: a bound)
wait_for() {
    local name=$1 i
    shift
    for ((i = 0; i < 450; i++)); do
        "$@" && return 0
        sleep 0.2
    done
    t_fail "$name" "not seen in 90 s: resigned $(metric ocsp_resigned_total); $(tail -n 5 "$TMP/ocspd.log")"
    return 1
}
resigned_at_least() { (($(metric ocsp_resigned_total | cut -d. -f1) >= $1)) 2>/dev/null; }
# an issuer's id, as its answers' keys begin (ocsp_issuer_id_of): the SHA-256 of its public
# key (the BIT STRING of the certificate's SubjectPublicKeyInfo, without its unused-bits byte)
id_of() {
    local der=$TMP/spki.der o h l
    openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER -out "$der"
    read -r o h l < <(openssl asn1parse -inform DER -in "$der" | awk '/d=1/ && /BIT STRING/ {
        split($1, a, ":"); sub("hl=", "", $2); l = $3; sub("l=", "", l); if (l == "") l = $4
        print a[1], $2, l }' | tail -n 1)
    tail -c +$((o + h + 2)) "$der" | head -c $((l - 1)) | sha256sum | cut -c1-16
}

# A: whichever demo CA's id sorts first, with its delegated responder in the token; B: the
# other, signing with its own key file
if [[ $(id_of "$OCSP_CA_CERT") < $(id_of "$OCSP_REKEY_CA_CERT") ]]; then
    A_ARGS=(--cert "$OCSP_CA_CERT" --key-label "$OCSP_SIGNER_LABEL" --signer-cert "$OCSP_SIGNER_CERT")
    B_ARGS=(--cert "$OCSP_REKEY_CA_CERT" --key-file "$OCSP_PKI_DIR/keys/qca-rekey.key")
else
    A_ARGS=(--cert "$OCSP_REKEY_CA_CERT" --key-label "$OCSP_REKEY_SIGNER_LABEL"
        --signer-cert "$OCSP_REKEY_SIGNER_CERT")
    B_ARGS=(--cert "$OCSP_CA_CERT" --key-file "$OCSP_CA_KEY")
fi
# index.txt lines of N fresh serials (0x50 and 15 random bytes), valid until 2049
index_of() {
    openssl rand -hex $((15 * $1)) | tr a-f A-F | fold -w 30 |
        awk '{ printf "V\t491231235959Z\t\t50%s\tunknown\t/CN=refresh %d\n", $0, NR }'
}
index_of 1100 >"$TMP/a-index.txt"
index_of 5 >"$TMP/b-index.txt"
if ctl init >"$TMP/ctl.out" 2>&1 &&
    ctl issuer add a "${A_ARGS[@]}" --unissued unknown --validity 1m >>"$TMP/ctl.out" 2>&1 &&
    ctl issuer add b "${B_ARGS[@]}" --unissued unknown --validity 1m >>"$TMP/ctl.out" 2>&1 &&
    ctl import-index a "$TMP/a-index.txt" >>"$TMP/ctl.out" 2>&1 &&
    ctl import-index b "$TMP/b-index.txt" >>"$TMP/ctl.out" 2>&1 &&
    ctl presign >>"$TMP/ctl.out" 2>&1; then
    t_ok "store of two issuers: a (token key, sorting first) 1100 serials, b (key file) 5"
else
    fatal "store of two issuers" "$(tail -n 5 "$TMP/ctl.out")"
fi

# the walk meets a's answers first: the answers of the issuer whose keys come first (the
# first 8 bytes of a `responses` key are its issuer id) are a's 2200
first=$(mdb_dump -s responses "$STORE2" 2>/dev/null | sed -n '/^HEADER=END$/,$p' |
    awk 'NR % 2 == 0 && /^ / { print substr($0, 2, 16) }' | uniq -c | awk '{ print $1; exit }')
if [[ $first == 2200 ]]; then t_ok "issuer a's answers come first in the store's key order"; else
    t_fail "issuer a's answers come first in the store's key order" "the first issuer's answers: ${first:-none} (not a's 2200)"
fi

ocspd_write_conf "$CONF" "$PORT" "$STORE2" "$TMP/pki"
sed -i -e "s|^pkcs11_module = .*|pkcs11_module = $P11DELAY_SO|" \
    -e 's/^refresh_interval = .*/refresh_interval = 200ms/' \
    -e 's/^refresh_margin = .*/refresh_margin = 90/' "$CONF"
export P11DELAY_MODULE=$OCSP_P11_MODULE P11DELAY_LATENCY_MS=0.1 P11DELAY_REMOVED_FILE=$TMP/removed
ocspd_start "$CONF" "$TMP/ocspd.log" ||
    fatal "ocspd behind the simulated HSM" "$(tail -n 3 "$TMP/ocspd.log")"
# the token goes away before any answer is due (6 s after the presign)
touch "$TMP/removed"
r0=$(metric ocsp_resigned_total | cut -d. -f1)
if [[ $r0 == 0 ]]; then t_ok "nothing re-signed yet (answers due 6 s after the presign)"; else
    t_fail "nothing re-signed yet" "ocsp_resigned_total $r0 (the presign took over 6 s?)"
fi

wait_for "issuer b's 10 answers re-signed while issuer a's key is down (a's come first)" \
    resigned_at_least 10 &&
    t_ok "issuer b's answers re-signed while a's key is down: ocsp_resigned_total $(metric ocsp_resigned_total)"
if grep -q 'hsm_unavailable' "$TMP/ocspd.log"; then
    t_ok "issuer a's key was down meanwhile (hsm_unavailable logged)"
else
    t_fail "issuer a's key was down meanwhile" "$(tail -n 5 "$TMP/ocspd.log")"
fi
resigned=$(metric ocsp_resigned_total | cut -d. -f1)
if ((resigned < 1000)); then t_ok "a's answers were not re-signed without its key ($resigned)"; else
    t_fail "a's answers were not re-signed without its key" "ocsp_resigned_total $resigned"
fi

rm -f "$TMP/removed"
wait_for "issuer a's 2200 answers re-signed once its token is back" resigned_at_least 2210 &&
    t_ok "issuer a's answers re-signed once its token is back: ocsp_resigned_total $(metric ocsp_resigned_total)"

itest_ocspd_stop_clean
t_summary "$NAME"
