#!/usr/bin/env bash
#
# test_ocspd_upgrade_check.sh: the release that brings a new store schema, started the way
# the shipped unit starts it (systemd/ocspd.service: ExecStartPre=ocspd -n, then ocspd), on a
# store of the schema before (review13 of schema 4; STANDARDS EID-06: the status stays
# available). `ocspd -n` reads only and writes nothing, so it cannot upgrade the store; it
# checks what it can (the issuers, the token) and says that the start will upgrade it, and the
# start does:
#   - `ocspd -n` on a schema-3 store exits 0 and leaves the store at schema 3, with a notice
#     (before: it failed, "must be upgraded", and systemd never started ocspd);
#   - ocspd then starts, the store is at schema 4, and a request is answered.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd_upgrade_check

schema() { mdb_dump -s meta -p "$STORE" | awk '$1 == "schema_version" { getline; print $1; exit }'; }

PORT=$(free_port) || fatal port "no free port"
URL="http://127.0.0.1:$PORT"
ocsp_pki_demo "$TMP/pki" "$URL" >"$TMP/pki.log" 2>&1 || fatal pki "$(tail -n 5 "$TMP/pki.log")"
# shellcheck disable=SC1091
. "$TMP/pki/ocsp-pki.env"
CONF=$TMP/ocspd.conf
STORE=$TMP/store
ocspd_write_conf "$CONF" "$PORT" "$STORE" "$TMP/pki"
ocsp_store_demo "$TMP/pki" "$STORE" "$CONF" >"$TMP/store.log" 2>&1 ||
    fatal "store built with ocspctl" "$(tail -n 5 "$TMP/store.log")"
# the store as the release before left it: schema 3 (its answers are schema 4's, all backed)
printf 'schema_version\n3\n' | mdb_load -T -s meta "$STORE" ||
    fatal "schema 3 written" "mdb_load failed"
expect "the store is at schema 3" "$(schema)" "3"

SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/ocspd" -n -c "$CONF" >"$TMP/check.log" 2>&1
rc=$?
expect "ocspd -n on a schema-3 store succeeds (the start upgrades it)" "$rc" "0"
if grep -q 'upgraded when ocspd starts' "$TMP/check.log"; then
    t_ok "ocspd -n says the start will upgrade the store"
else
    t_fail "ocspd -n says the start will upgrade the store" "$(tail -n 2 "$TMP/check.log")"
fi
expect "ocspd -n writes nothing: still schema 3" "$(schema)" "3"

ocspd_start "$CONF" "$TMP/ocspd.log" || fatal "ocspd starts" "$(tail -n 3 "$TMP/ocspd.log")"
expect "ocspd's start upgraded the store" "$(schema)" "4"
ser=$(awk -F'\t' -v now="$(date -u +%y%m%d%H%M%SZ)" '$1 == "V" && $2 > now { s = $4 } END { print s }' \
    "$TMP/pki/qca/index.txt")
openssl ocsp -issuer "$OCSP_CA_CERT" -serial "0x$ser" -no_nonce -reqout "$TMP/good.req" >/dev/null 2>&1
curl -s -o "$TMP/good.der" -H 'Content-Type: application/ocsp-request' \
    --data-binary @"$TMP/good.req" "$URL/"
expect "a request is answered after the upgrade" \
    "$(derutil ocsp-resp "$TMP/good.der" 2>/dev/null | sed -n 's/^single.0.status=//p')" "good"
itest_ocspd_stop_clean
t_summary "$NAME"
