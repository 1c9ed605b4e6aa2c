#!/usr/bin/env bash
#
# test_ocspd_inflight_record.sh: review of issue 8 item 2 (never-issued answers). A request
# for a serial without a status record waits for the same CertID's answer already being
# signed (ocsp_inflight_join) instead of signing its own. That answer was decided before the
# serial got a record; a request that arrives after `ocspctl add` (or revoke) committed the
# record must be answered from the record, as the unissued cache is ("never served once the
# serial has a record"). ocspd behind the simulated HSM (1.5 s per signature): request A for
# a new serial starts signing; the serial is added as good; request B, sent after that,
# must be answered good, not A's "revoked (never issued)".
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd_inflight_record
itest_ocsp_delay_setup
printf '[limits]\nsign_rate = 0\n' >"$TMP/nolimit.conf"
ocspd_write_conf "$CONF" "$PORT" "$STORE" "$TMP/pki" "$TMP/nolimit.conf"
sed -i "s|^pkcs11_module = .*|pkcs11_module = $P11DELAY_SO|" "$CONF"
export P11DELAY_MODULE=$OCSP_P11_MODULE P11DELAY_LATENCY_MS=1500 P11DELAY_PARALLEL=4
ocspd_start "$CONF" "$TMP/ocspd.log" ||
    fatal "ocspd behind the simulated HSM" "$(tail -n 3 "$TMP/ocspd.log")"

post() {
    curl -s --max-time 20 -o "$TMP/$1.body" -w '%{http_code}' \
        -H 'Content-Type: application/ocsp-request' --data-binary @"$2" "$URL/"
}
status_of() { derutil ocsp-resp "$TMP/$1.body" 2>/dev/null | sed -n 's/^single.0.status=//p'; }

serial=5A$(openssl rand -hex 15)
openssl ocsp -issuer "$CA" -serial "0x$serial" -no_nonce -reqout "$TMP/s.req" >/dev/null 2>&1
post a "$TMP/s.req" >"$TMP/a.code" &
apid=$!
sleep 0.3
"$BUILD/ocspctl" -c "$CONF" -d "$STORE" -u tester add qca "$serial" >"$TMP/add.out" 2>&1 ||
    fatal "ocspctl add" "$(cat "$TMP/add.out")"
code=$(post b "$TMP/s.req")
wait "$apid"
echo "# A (before the record): $(cat "$TMP/a.code") $(status_of a)"
if [[ "$code $(status_of b)" == "200 good" ]]; then
    t_ok "a request after ocspctl add is answered from the record (good)"
else
    t_fail "a request after ocspctl add is answered from the record (good)" "$code $(status_of b)"
fi
itest_ocspd_stop_clean
t_summary "$NAME"
