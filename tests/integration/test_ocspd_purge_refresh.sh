#!/usr/bin/env bash
#
# test_ocspd_purge_refresh.sh: a status purge that meets the refresher (issue 10 §3, review
# of the purge; STANDARDS LW-05, LW-09). The refresher picks a stored answer whose validity
# runs out, reads the serial's status and signs; `ocspctl purge ISSUER --status` removes the
# serial's answers and its record meanwhile. The signed answer must not be written back: it
# would outlive its record (never served, since it no longer matches the store, but kept for
# ever). ocspd behind the simulated HSM (bench/p11delay.c) with a hang file, so that the
# refresher's signature is held (FILE.held says so) until the purge has run:
#   - the purged serial's answer stays gone once the refresher has stored what it signed, and
#     ocspd logs that it did not store it;
#   - the answer of the serial the purge kept is refreshed (a new producedAt), and the purged
#     serial is then answered unknown (the issuer's unissued policy, never revoked).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd_purge_refresh
itest_ocsp_delay_setup

ctl() { "$BUILD/ocspctl" -c "$CONF" -d "$STORE" -u purge-op "$@"; }
# check NAME GOT WANT
check() { if [[ $2 == "$3" ]]; then t_ok "$1"; else t_fail "$1" "got '$2', want '$3'"; fi; }
responses() { mdb_stat -s responses "$STORE" | awk '/Entries:/ { print $2 }'; }
# ask TAG SERIAL: POST for SERIAL of qca-rekey without a nonce (the stored answer's path)
ask() {
    openssl ocsp -issuer "$OCSP_REKEY_CA_CERT" -serial "0x$2" -no_nonce -reqout "$TMP/$1.req" \
        >/dev/null 2>&1
    curl -s --max-time 20 -o "$TMP/$1.der" -H 'Content-Type: application/ocsp-request' \
        --data-binary @"$TMP/$1.req" "$URL/" >/dev/null
    derutil ocsp-resp "$TMP/$1.der" >"$TMP/$1.kv" 2>/dev/null || : >"$TMP/$1.kv"
}
kv() { kv_get "$TMP/$1.kv" "$2"; }
# wait_for NAME COND...: poll COND every 0.2 s, up to 60 s (not a timing check: a bound)
wait_for() {
    local name=$1 i
    shift
    for ((i = 0; i < 300; i++)); do
        "$@" && return 0
        sleep 0.2
    done
    fatal "$name" "not seen in 60 s: $(tail -n 5 "$TMP/ocspd.log")"
}

# answers valid 1 minute, refreshed at 90 % of it gone: due 6 s after they are signed
ctl issuer add qca-rekey --cert "$OCSP_REKEY_CA_CERT" --key-label "$OCSP_REKEY_SIGNER_LABEL" \
    --signer-cert "$OCSP_REKEY_SIGNER_CERT" --purge-status-after 1d --unissued unknown \
    --validity 1m >"$TMP/ctl.out" 2>&1 || fatal "issuer allowing status purge" "$(cat "$TMP/ctl.out")"
OLD=7A$(openssl rand -hex 8 | tr a-f A-F)
NEW=7B$(openssl rand -hex 8 | tr a-f A-F)
ctl add qca-rekey "$OLD" --not-after 20010101000000Z >"$TMP/ctl.out" 2>&1 &&
    ctl add qca-rekey "$NEW" --not-after 20491231000000Z >"$TMP/ctl.out" 2>&1 ||
    fatal "ocspctl add" "$(cat "$TMP/ctl.out")"

printf '[limits]\nsign_rate = 0\n' >"$TMP/nolimit.conf"
ocspd_write_conf "$CONF" "$PORT" "$STORE" "$TMP/pki" "$TMP/nolimit.conf"
sed -i -e "s|^pkcs11_module = .*|pkcs11_module = $P11DELAY_SO|" \
    -e 's/^refresh_interval = .*/refresh_interval = 200ms/' \
    -e 's/^refresh_margin = .*/refresh_margin = 90/' "$CONF"
export P11DELAY_MODULE=$OCSP_P11_MODULE P11DELAY_LATENCY_MS=1 P11DELAY_HANG_FILE=$TMP/hang
ocspd_start "$CONF" "$TMP/ocspd.log" ||
    fatal "ocspd behind the simulated HSM" "$(tail -n 3 "$TMP/ocspd.log")"

# both serials answered on demand, and so stored
ask old1 "$OLD"
ask new1 "$NEW"
check "the expired serial is answered good before the purge" "$(kv old1 single.0.status)" good
check "the valid serial is answered good" "$(kv new1 single.0.status)" good
n0=$(responses)

# the refresher's next signatures are held: it has picked both answers and read their status
touch "$TMP/hang"
wait_for "the refresher's signature held by the HSM" test -e "$TMP/hang.held"
if ! ctl purge qca-rekey --status >"$TMP/purge.out" 2>&1; then
    t_fail "purge qca-rekey --status while the refresher signs" "$(cat "$TMP/purge.out")"
fi
n1=$(responses)
if ((n1 < n0)); then t_ok "the purge removed the expired serial's answer ($n0 -> $n1)"; else
    t_fail "the purge removed the expired serial's answer" "responses $n0 -> $n1"
fi
rm -f "$TMP/hang"
wait_for "the refresher's chunk stored" grep -q 'refreshed [0-9]* response(s) before' "$TMP/ocspd.log"
check "the purged serial's answer is not written back by the refresher" "$(responses)" "$n1"
if grep -q 'signed response(s) not stored: the status record changed or the answer was purged while being signed' "$TMP/ocspd.log"; then
    t_ok "ocspd logs the refreshed answer it did not store (the purge removed it)"
else
    t_fail "ocspd logs the refreshed answer it did not store" "$(grep refresh "$TMP/ocspd.log")"
fi

ask new2 "$NEW"
if [[ $(kv new2 produced) > $(kv new1 produced) && $(kv new2 single.0.status) == good ]]; then
    t_ok "the kept serial's answer was refreshed (producedAt $(kv new1 produced) -> $(kv new2 produced))"
else
    t_fail "the kept serial's answer was refreshed" \
        "producedAt $(kv new1 produced) -> $(kv new2 produced), $(kv new2 single.0.status)"
fi
ask old2 "$OLD"
check "the purged serial is answered unknown (never revoked)" "$(kv old2 single.0.status)" unknown

itest_ocspd_stop_clean
t_summary "$NAME"
