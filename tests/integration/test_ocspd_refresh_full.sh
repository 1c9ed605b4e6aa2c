#!/usr/bin/env bash
#
# test_ocspd_refresh_full.sh: a store above fill_limit ends the refresher's walk at the first
# refused chunk (issue 10, review of the refresher's per-walk skip list; STANDARDS LW-05,
# DESIGN D6, D10). A chunk that signed nothing because an issuer's key is down puts its
# issuers on a skip list and the walk goes on to the others (test_ocspd_refresh_skip). A chunk
# whose answers were signed but refused by the store (above fill_limit: every background
# write is) is not the issuer's doing: the others' answers would be signed for nothing as
# well, up to 64 chunks per walk of HSM work that on-demand answers need meanwhile.
#
# Two issuers signing with their CA key files, answers valid 1 minute and due 6 s after they
# are signed (refresh_margin 90), each with more than a chunk of them (1024): 1100 and 600
# serials, so 2200 and 1200 answers (SHA-1 and SHA-256 CertIDs). The store is then above
# fill_limit (10%) for ocspd:
#   - each walk (its end logged at debug level: "refresher walk stopped") signs one chunk,
#     refused ("1024 signed response(s) not stored: the store is above fill_limit"), and ends
#     there: never two refused chunks in one walk;
#   - nothing was stored (ocsp_resigned_total stays 0).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd_refresh_full
itest_ocsp_setup
# shellcheck disable=SC1091
. "$TMP/pki/ocsp-pki.env"
export SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF
itest_ocspd_stop_clean

STORE2=$TMP/store2
ctl() { "$BUILD/ocspctl" -c "$CONF" -d "$STORE2" -u refresh-op "$@"; }
metric() {
    curl -s --max-time 5 "$URL/metrics" | awk -v m="$1" '$1 == m { print $2; exit }'
}
refused_lines() { grep -c 'signed response(s) not stored: the store is above fill_limit' "$TMP/ocspd.log"; }
id_of() { openssl x509 -in "$1" -outform DER | sha256sum | cut -c1-16; }

if [[ $(id_of "$OCSP_CA_CERT") < $(id_of "$OCSP_REKEY_CA_CERT") ]]; then
    A_ARGS=(--cert "$OCSP_CA_CERT" --key-file "$OCSP_CA_KEY")
    B_ARGS=(--cert "$OCSP_REKEY_CA_CERT" --key-file "$OCSP_PKI_DIR/keys/qca-rekey.key")
else
    A_ARGS=(--cert "$OCSP_REKEY_CA_CERT" --key-file "$OCSP_PKI_DIR/keys/qca-rekey.key")
    B_ARGS=(--cert "$OCSP_CA_CERT" --key-file "$OCSP_CA_KEY")
fi
index_of() {
    openssl rand -hex $((15 * $1)) | tr a-f A-F | fold -w 30 |
        awk '{ printf "V\t491231235959Z\t\t50%s\tunknown\t/CN=refresh %d\n", $0, NR }'
}
index_of 1100 >"$TMP/a-index.txt"
index_of 600 >"$TMP/b-index.txt"
ocspd_write_conf "$CONF" "$PORT" "$STORE2" "$TMP/pki"
sed -i -e 's/^map_size = .*/map_size = 4M/' \
    -e 's/^refresh_interval = .*/refresh_interval = 200ms/' \
    -e 's/^refresh_margin = .*/refresh_margin = 90/' -e 's/^level = .*/level = debug/' "$CONF"
if ctl init >"$TMP/ctl.out" 2>&1 &&
    ctl issuer add a "${A_ARGS[@]}" --unissued unknown --validity 1m >>"$TMP/ctl.out" 2>&1 &&
    ctl issuer add b "${B_ARGS[@]}" --unissued unknown --validity 1m >>"$TMP/ctl.out" 2>&1 &&
    ctl import-index a "$TMP/a-index.txt" >>"$TMP/ctl.out" 2>&1 &&
    ctl import-index b "$TMP/b-index.txt" >>"$TMP/ctl.out" 2>&1 &&
    ctl presign >>"$TMP/ctl.out" 2>&1; then
    t_ok "store of two issuers: a 1100 serials, b 600"
else
    fatal "store of two issuers" "$(tail -n 5 "$TMP/ctl.out")"
fi

# the store is above fill_limit for ocspd: every background write (a refresh) is refused
sed -i -e 's/^map_size = .*/map_size = 4M\nfill_limit = 0.1/' "$CONF"
ocspd_start "$CONF" "$TMP/ocspd.log" || fatal "ocspd starts" "$(tail -n 3 "$TMP/ocspd.log")"
fill=$(curl -s --max-time 5 "$URL/metrics" | awk '$1 ~ /^store_fill_ratio/ { print $2; exit }')
if awk -v f="$fill" 'BEGIN { exit !(f >= 0.1) }'; then t_ok "the store is above fill_limit ($fill)"; else
    fatal "the store is above fill_limit" "store_fill_ratio $fill"
fi

# three refused chunks (a bound, not a timing check: 90 s)
for ((i = 0; i < 450; i++)); do
    (($(refused_lines) >= 3)) && break
    sleep 0.2
done
if (($(refused_lines) >= 3)); then t_ok "refused chunks logged ($(refused_lines))"; else
    fatal "refused chunks logged" "$(tail -n 5 "$TMP/ocspd.log")"
fi
# the refused chunks of each walk: never more than one
most=$(awk '/signed response\(s\) not stored: the store is above fill_limit/ { n++; if (n > m) m = n }
    /refresher walk (complete|stopped)/ { n = 0 } END { print m + 0 }' "$TMP/ocspd.log")
if ((most == 1)); then
    t_ok "each walk ended at its first refused chunk: no other chunk signed for nothing"
else
    t_fail "each walk ended at its first refused chunk" "$most refused chunks in one walk: $(grep -E 'not stored|refresher walk' "$TMP/ocspd.log" | head -n 6)"
fi
resigned=$(metric ocsp_resigned_total | cut -d. -f1)
if [[ $resigned == 0 ]]; then t_ok "nothing stored above fill_limit"; else
    t_fail "nothing stored above fill_limit" "ocsp_resigned_total $resigned"
fi

itest_ocspd_stop_clean
t_summary "$NAME"
