#!/usr/bin/env bash
#
# test_ocspctl_import_marks.sh: a mass revocation over a store full of pre-signed answers
# (review13 of schema 4; STANDARDS EID-05). Each status change marks its serial's
# answers stale in the write transaction that changes it (ocsp_store.h, the Backing rule),
# and rewriting a page in LMDB copies it, the old page freed only once the transaction
# commits: a transaction that revokes many serials copies as many answer pages. The import
# commits early when it has marked many answers (not only every OCSPCTL_IMPORT_CHUNK
# entries), so that it needs a bounded room in the map, not the size of the answers touched:
#   - 2 x 7000 serials pre-signed (two answers each) in a 24 MiB store, under half full;
#     7000 revoked by one import-index, then the 7000 others by one import-crl: every entry
#     imported, none failed (before: the CRL's import failed "store full", nothing imported,
#     where the release before schema 4 imported both);
#   - every revoked serial's answers are still stored, marked stale (the refresher and
#     on-demand signing sign them again): none is left with its old stamp;
#   - the same store again, all 14000 put on hold by one import-index read from a pipe exactly
#     one window long (OCSPCTL_IMPORT_WINDOW=14000, the hardest case of a pipe that fits):
#     every hold imported (before: a pipe was one transaction, and failed "store full"; then
#     a pipe of exactly one window was still taken for a longer one, review15).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspctl_import_marks

N=7000
mkdir -p "$TMP/ca/new"
: >"$TMP/ca/index.txt"
echo 1000 >"$TMP/ca/crlnumber"
cat >"$TMP/ca.cnf" <<CNF
[ca]
default_ca = marksca
[marksca]
dir = $TMP/ca
database = \$dir/index.txt
new_certs_dir = \$dir/new
crlnumber = \$dir/crlnumber
certificate = $TMP/ca.pem
private_key = $TMP/ca.key
default_md = sha256
default_crl_days = 7
unique_subject = no
[v3ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
CNF
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/ca.key" \
    -out "$TMP/ca.pem" -subj "/CN=Demo Marks CA/O=Demo QTSP SRL/C=RO" -days 30 \
    -config "$TMP/ca.cnf" -extensions v3ca 2>/dev/null || fatal "CA" "openssl req failed"
cat >"$TMP/ocspd.conf" <<CONF
[server]
listen = 127.0.0.1:9
[store]
path = $TMP/store
map_size = 24M
CONF
ctl() { "$BUILD/ocspctl" -c "$TMP/ocspd.conf" -d "$TMP/store" -u test "$@"; }
ctl init >/dev/null 2>&1 || fatal "init" "ocspctl init failed"
ctl issuer add marksca --cert "$TMP/ca.pem" --key-file "$TMP/ca.key" >"$TMP/ctl.out" 2>&1 ||
    fatal "issuer add" "$(cat "$TMP/ctl.out")"

# two sets of N serials: A revoked by an index, B by a CRL
na=$(date -u -d '+300 days' +%y%m%d%H%M%SZ)
rev=$(date -u -d '-1 day' +%y%m%d%H%M%SZ)
awk -v n=$N -v na="$na" 'BEGIN {
    for (i = 0; i < n; i++) {
        printf "V\t%s\t\t7A%012X\tunknown\t/CN=a%d\n", na, i, i
        printf "V\t%s\t\t7B%012X\tunknown\t/CN=b%d\n", na, i, i
    } }' >"$TMP/good.index"
awk -v n=$N -v na="$na" -v rev="$rev" 'BEGIN {
    for (i = 0; i < n; i++)
        printf "R\t%s\t%s,keyCompromise\t7A%012X\tunknown\t/CN=a%d\n", na, rev, i, i }' \
    >"$TMP/revoke.index"
awk -v n=$N -v na="$na" -v rev="$rev" 'BEGIN {
    for (i = 0; i < n; i++)
        printf "R\t%s\t%s,keyCompromise\t7B%012X\tunknown\t/CN=b%d\n", na, rev, i, i }' \
    >"$TMP/ca/index.txt"
openssl ca -batch -config "$TMP/ca.cnf" -gencrl -out "$TMP/revoke.crl" 2>"$TMP/crl.err" ||
    fatal "CRL of $N revocations" "$(tail -n 3 "$TMP/crl.err")"

ctl import-index marksca "$TMP/good.index" >"$TMP/import.out" 2>&1 ||
    fatal "import of $((2 * N)) good serials" "$(tail -n 3 "$TMP/import.out")"
ctl presign marksca >"$TMP/presign.out" 2>&1 || fatal "presign" "$(tail -n 3 "$TMP/presign.out")"
answers=$(mdb_stat -s responses "$TMP/store" | awk '/Entries:/ { print $2 }')
expect "presign stored two answers per serial" "$answers" "$((4 * N))"
pages=$(mdb_stat -e "$TMP/store" | awk '/Number of pages used/ { print $5 }')
if ((pages * 100 < 6144 * 50)); then t_ok "the store is under half full ($pages of 6144 pages)"; else
    t_fail "the store is under half full" "$pages of 6144 pages"
fi

ctl import-index marksca "$TMP/revoke.index" >"$TMP/revoke.out" 2>&1
rc=$?
expect "import-index of $N revocations of pre-signed serials succeeds (EID-05)" "$rc" "0"
if grep -q "$N revoked, 0 held, 0 refused, 0 failed" "$TMP/revoke.out"; then
    t_ok "import-index: every revocation imported"
else
    t_fail "import-index: every revocation imported" "$(tail -n 3 "$TMP/revoke.out")"
fi
ctl import-crl marksca "$TMP/revoke.crl" >"$TMP/crl.out" 2>&1
rc=$?
expect "import-crl of $N revocations of pre-signed serials succeeds (EID-05)" "$rc" "0"
if grep -q "import-crl: $N entries, .* 0 failed" "$TMP/crl.out"; then
    t_ok "import-crl: every revocation imported"
else
    t_fail "import-crl: every revocation imported" "$(tail -n 3 "$TMP/crl.out")"
fi
expect "the revoked serials (A by the index, B by the CRL)" \
    "$(ctl list marksca 2>/dev/null | awk '$2 == "revoked"' | wc -l)" "$((2 * N))"

# every answer still stored, each marked stale (stamp field: bytes 8..15 of the value)
mdb_dump -s responses "$TMP/store" >"$TMP/responses.dump" || fatal "mdb_dump" "responses"
read -r stored stale < <(awk 'f && /^ / { if (v) { n++; if (substr($1, 17, 16) == "ffffffffffffffff") s++ }
        v = !v; next } /^HEADER=END/ { f = 1 } END { print n + 0, s + 0 }' "$TMP/responses.dump")
expect "every answer still stored" "$stored" "$((4 * N))"
expect "every revoked serial's answer marked stale (none keeps its old stamp)" "$stale" "$((4 * N))"
# the same again on a second store, all 14000 put on hold through one pipe (read whole into
# memory, as a file is, then committed in chunks; before, a pipe was one transaction and
# failed "store full"), exactly one window long: it fits (review15: it was taken for a longer
# pipe, one transaction, as the window filled before its end was seen)
sed -i "s|^path = .*|path = $TMP/store2|" "$TMP/ocspd.conf"
ctl2() { "$BUILD/ocspctl" -c "$TMP/ocspd.conf" -d "$TMP/store2" -u test "$@"; }
{ ctl2 init && ctl2 issuer add marksca --cert "$TMP/ca.pem" --key-file "$TMP/ca.key" &&
    ctl2 import-index marksca "$TMP/good.index" && ctl2 presign marksca; } >"$TMP/ctl2.out" 2>&1 ||
    fatal "second store: import and presign" "$(tail -n 3 "$TMP/ctl2.out")"
awk -F'\t' -v OFS='\t' -v rev="$rev" '{ $1 = "R"; $3 = rev ",certificateHold"; print }' \
    "$TMP/good.index" | OCSPCTL_IMPORT_WINDOW=$((2 * N)) ctl2 import-index marksca /dev/stdin \
    >"$TMP/hold.out" 2>&1
rc=$?
expect "import-index of $((2 * N)) holds of pre-signed serials from a pipe succeeds (EID-05)" \
    "$rc" "0"
if grep -q "0 revoked, $((2 * N)) held, 0 refused, 0 failed" "$TMP/hold.out"; then
    t_ok "import-index from a pipe: every hold imported"
else
    t_fail "import-index from a pipe: every hold imported" "$(tail -n 3 "$TMP/hold.out")"
fi
t_summary "$NAME"
