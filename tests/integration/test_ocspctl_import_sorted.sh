#!/usr/bin/env bash
#
# test_ocspctl_import_sorted.sh: the write paths of `ocspctl import-index` and `import-crl`
# (issue 10 §3), each checked against the whole store: `ocspctl list` must equal the states
# computed from the files imported so far (awk below), line for line.
#   - a fresh store: every chunk's keys are past the last stored key, records are appended
#     (MDB_APPEND: no lookup);
#   - a file whose serials all sort after the stored ones: appended into a non-empty store,
#     with a serial listed twice in the file (its later line wins: good then revoked);
#   - a file whose sorted serials interleave the stored ones (and revokes some stored good
#     serials): the lookup path;
#   - serials sharing their first 8 octets (sorted by the rest);
#   - a file longer than the sort window (OCSPCTL_IMPORT_WINDOW): scanned whole first, then
#     read again window by window; its journal entry has the SHA-256 of its bytes and the
#     counts; one with a bad line in its last window writes nothing;
#   - a file whose path is 3800 bytes long: its journal entry holds it, and the import commits;
#   - a CRL older than one whose import was killed after its first chunk is refused;
#   - a CRL entry whose reasonCode is 7 (unused): revoked without a reason, never left good;
#   - a CRL with a critical extension it does not process: refused whole (RFC 5280 §5.2);
#   - a revocation dated in the future, in an index or a CRL: refused;
#   - import-crl into a store that fills up: stops at the first store error;
#   - `ocspctl import-crl` in chunks, in key order: killed after its first chunk it leaves
#     whole chunks and the issuer's CRL number as it was; the same CRL again completes it.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspctl_import_sorted

[[ -x $BUILD/ocspctl ]] || fatal "build" "ocspctl is needed"
command -v mdb_stat >/dev/null || fatal "mdb_stat" "mdb_stat (lmdb-utils) is needed"
ocsp_pki_demo "$TMP/pki" "http://127.0.0.1:1/" >"$TMP/pki.log" 2>&1 ||
    fatal pki "$(tail -n 5 "$TMP/pki.log")"
# shellcheck disable=SC1091
. "$TMP/pki/ocsp-pki.env"
CONF=$TMP/ocspd.conf
STORE=$TMP/store
ocspd_write_conf "$CONF" 1 "$STORE" "$TMP/pki"
sed -i 's/^map_size = .*/map_size = 256M/' "$CONF"
export USER=sorter SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF
ctl() { "$BUILD/ocspctl" -c "$CONF" "$@"; }
ctl init >/dev/null 2>&1 || fatal init "ocspctl init failed"
# one issuer only: its status keys are the whole status database (the append check)
ctl issuer add qca --cert "$OCSP_CA_CERT" --key-label "$OCSP_SIGNER_LABEL" \
    --signer-cert "$OCSP_SIGNER_CERT" --signature ecdsa --digest sha256 --nonce echo \
    --unissued revoked --validity 10d >/dev/null 2>"$TMP/issuer.err" ||
    fatal "issuer add" "$(cat "$TMP/issuer.err")"

# index FILE N FIRST SEED: N lines of random 16-octet serials whose first hex digit is one of
# FIRST (e.g. "5", "4678"); 1 in 20 revoked, 1 in 50 on hold
index() {
    openssl rand -hex $(($2 * 16)) | fold -w 32 | awk -v first="$3" -v seed="$4" '
        { s = substr(first, NR % length(first) + 1, 1) toupper(substr($0, 2))
          if (NR % 20 == 0) printf "R\t351231235959Z\t240101000000Z,keyCompromise\t%s\tunknown\t/CN=%s %d\n", s, seed, NR
          else if (NR % 50 == 0) printf "R\t351231235959Z\t240101000000Z,certificateHold\t%s\tunknown\t/CN=%s %d\n", s, seed, NR
          else printf "V\t351231235959Z\t\t%s\tunknown\t/CN=%s %d\n", s, seed, NR }' >"$1"
}
IMPORTED=()
# expected: the `list` lines the files in IMPORTED give, sorted (a good line keeps a stored
# serial's state; a revocation or hold applies to a good one; later lines win)
expected() {
    awk -F'\t' '
        { s = $4; split($3, r, ",")
          if ($1 == "V") { if (!(s in st)) st[s] = "good - -" }
          else if (r[2] == "certificateHold") { if (!(s in st) || st[s] ~ /^good/) st[s] = "hold certificateHold 20" r[1] }
          else if (!(s in st) || st[s] !~ /^revoked/) st[s] = "revoked " r[2] " 20" r[1] }
        END { for (s in st) print s " " st[s] " 20351231235959Z" }' "${IMPORTED[@]}" | sort
}
listed() { ctl list qca 2>/dev/null | sort; }
# import NAME FILE [ENV...]: import FILE (with the environment given), expect exit 0 and the
# store to hold exactly what the files imported so far say
import() {
    local name=$1 file=$2 out rc
    shift 2
    out=$(env "$@" "$BUILD/ocspctl" -c "$CONF" import-index qca "$file" 2>"$TMP/imp.err")
    rc=$?
    IMPORTED+=("$file")
    expect "$name: exit 0" "$rc" 0
    if diff <(expected) <(listed) >"$TMP/diff.txt"; then
        t_ok "$name: the store lists exactly the states of the files imported"
    else
        t_fail "$name: store differs" "$(head -n 6 "$TMP/diff.txt")"
    fi
    IMPORT_OUT=$out
}
# last_import: the journal entry of the last import
last_import() {
    ctl export --journal 2>/dev/null | jq -c '(.entry // .) | select(.op == "import-index")' |
        tail -n 1
}

# ---- a fresh store: appended ----
index "$TMP/a.txt" 3000 5 a
import "fresh store (append)" "$TMP/a.txt" OCSPCTL_IMPORT_CHUNK=700
expect "fresh store: 3000 records" "$(listed | grep -c .)" 3000
expect "fresh store: the summary" "$(grep -Eo '[0-9]+ entries, [0-9]+ new' <<<"$IMPORT_OUT")" \
    "3000 entries, $(grep -c '^V' "$TMP/a.txt") new"

# the same file into a store whose one record sorts after all of it: the lookup path, which
# leaves leaf pages part full where appending fills them
S2=$TMP/store2
if ! { ctl -d "$S2" init >/dev/null 2>&1 &&
    ctl -d "$S2" issuer add qca --cert "$OCSP_CA_CERT" --key-label "$OCSP_SIGNER_LABEL" \
        --signer-cert "$OCSP_SIGNER_CERT" --signature ecdsa --digest sha256 --nonce echo \
        --unissued revoked --validity 10d >/dev/null 2>&1 &&
    ctl -d "$S2" add qca 7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF >/dev/null 2>&1 &&
    OCSPCTL_IMPORT_CHUNK=700 ctl -d "$S2" import-index qca "$TMP/a.txt" >/dev/null 2>&1; }; then
    t_fail "the lookup-path store" "not built"
fi
leaves() { mdb_stat -s status "$1" | awk '/Leaf pages:/ { print $3 }'; }
la=$(leaves "$STORE") lb=$(leaves "$S2")
if ((la > 0 && la < lb)); then
    t_ok "fresh store: appended, $la leaf pages where lookups leave $lb"
else
    t_fail "fresh store: appended" "$la leaf pages, $lb by lookups"
fi

# ---- serials above every stored one, one listed twice (good, then revoked) ----
index "$TMP/b.txt" 2000 7 b
dup=$(awk -F'\t' 'NR == 3 { print $4 }' "$TMP/b.txt")
printf 'R\t351231235959Z\t240301000000Z,superseded\t%s\tunknown\t/CN=dup\n' "$dup" >>"$TMP/b.txt"
import "above the stored serials (append into a non-empty store)" "$TMP/b.txt" \
    OCSPCTL_IMPORT_CHUNK=300
expect "the serial listed twice: its later line (revoked) holds" \
    "$(ctl status qca "$dup" 2>/dev/null | grep -Eo 'revoked|superseded' | tr '\n' ' ')" \
    "revoked superseded "

# ---- serials interleaving the stored ones, and revocations of stored good serials ----
index "$TMP/c.txt" 3000 4689 c
awk -F'\t' '$1 == "V" && FNR % 7 == 0 { printf "R\t351231235959Z\t240201000000Z,cessationOfOperation\t%s\tunknown\t/CN=rev\n", $4 }' \
    "$TMP/a.txt" "$TMP/b.txt" >>"$TMP/c.txt"
nrev=$(grep -c cessationOfOperation "$TMP/c.txt")
import "interleaving the stored serials (lookup path)" "$TMP/c.txt" OCSPCTL_IMPORT_CHUNK=500
expect "interleaving: stored good serials revoked" \
    "$(listed | grep -c ' revoked cessationOfOperation ')" "$nrev"

# ---- serials sharing their first 8 octets (a CA's fixed prefix), in file order unsorted ----
openssl rand -hex $((1500 * 8)) | fold -w 16 | awk '
    { s = "7102030405060708" toupper($0)
      if (NR % 20 == 0) printf "R\t351231235959Z\t240101000000Z,keyCompromise\t%s\tunknown\t/CN=p %d\n", s, NR
      else printf "V\t351231235959Z\t\t%s\tunknown\t/CN=p %d\n", s, NR }' >"$TMP/p.txt"
import "a fixed 8-octet prefix" "$TMP/p.txt" OCSPCTL_IMPORT_CHUNK=600

# ---- longer than the sort window: scanned, then read again window by window ----
index "$TMP/d.txt" 4000 3456789A d
import "longer than the window (read again per window)" "$TMP/d.txt" \
    OCSPCTL_IMPORT_WINDOW=900 OCSPCTL_IMPORT_CHUNK=400
imp=$(last_import)
expect "window: the journal entry's SHA-256 is of the file's bytes" "$(jq -r .sha256 <<<"$imp")" \
    "$(sha256sum "$TMP/d.txt" | cut -d' ' -f1)"
expect "window: the journal entry's counts" \
    "$(jq -r '[.lines, .committed, .committed_lines, .failed] | map(tostring) | join(" ")' <<<"$imp")" \
    "4000 true 4000 0"
index "$TMP/e.txt" 3000 5 e
sed -i '2951s/^V/X/' "$TMP/e.txt"
before=$(listed | md5sum)
OCSPCTL_IMPORT_WINDOW=900 OCSPCTL_IMPORT_CHUNK=400 "$BUILD/ocspctl" -c "$CONF" import-index qca \
    "$TMP/e.txt" >/dev/null 2>"$TMP/e.err"
expect "window: a bad line in the last window: exit 1, named" \
    "$?:$(grep -c 'e.txt:2951: not an' "$TMP/e.err")" "1:1"
expect "window: a bad line in the last window: nothing written" "$(listed | md5sum)" "$before"

# ---- a file whose path is long (3800 bytes; PATH_MAX is 4096): the import's journal entry,
# written with its last chunk, holds the whole path (EID-12) and the import commits ----
long=$TMP
for _ in $(seq 15); do long=$long/$(printf 'd%.0s' $(seq 250)); done
mkdir -p "$long" || fatal "long path" "mkdir failed"
long=$long/$(printf 'i%.0s' $(seq $((3800 - ${#long} - 1))))
index "$long" 200 3 l
import "a file whose path is ${#long} bytes long" "$long"
expect "long path: the journal entry names the whole path, committed" \
    "$(jq -r '[(.file == $f), .committed, .committed_lines] | map(tostring) | join(" ")' \
        --arg f "$long" <<<"$(last_import)")" "true true 200"

# ---- import-crl in chunks of write transactions, in key order ----
# crl FILE N NUMBER [EXTRA]: a CRL of the demo CA listing N random serials (affiliationChanged)
# plus every 9th good serial of a.txt's range (its sorted keys interleave the stored ones), and
# the index lines of the file EXTRA when given
crl() {
    local d=$TMP/crl-$3
    mkdir -p "$d"
    {
        openssl rand -hex $(($2 * 16)) | fold -w 32 |
            awk '{ printf "R\t351231235959Z\t240101000000Z,affiliationChanged\t6%s\tunknown\t/CN=crl %d\n", toupper(substr($0, 2)), NR }'
        listed | awk '$1 ~ /^5/ && $2 == "good" && NR % 9 == 0 { printf "R\t351231235959Z\t240101000000Z,affiliationChanged\t%s\tunknown\t/CN=a\n", $1 }'
        if [[ -n ${4:-} ]]; then cat "$4"; fi
    } >"$d/index.txt"
    echo "$3" >"$d/crlnumber"
    printf '[ca]\ndefault_ca = crl\n[crl]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\ndefault_crl_days = 30\nunique_subject = no\n' \
        "$d/index.txt" "$d/crlnumber" >"$d/crl.cnf"
    openssl ca -batch -gencrl -config "$d/crl.cnf" -cert "$OCSP_CA_CERT" -keyfile "$OCSP_CA_KEY" \
        -out "$1" >/dev/null 2>&1 || fatal "crl" "openssl ca -gencrl failed"
    CRL_N=$(grep -c . "$d/index.txt")
}
affil() { ctl list qca --revoked 2>/dev/null | grep -c ' affiliationChanged '; }
crl "$TMP/c1.pem" 40000 1000
# killed after its first chunk: whole chunks only, the issuer not yet CRL-fed
a0=$(affil)
OCSPCTL_IMPORT_CHUNK=2000 "$BUILD/ocspctl" -c "$CONF" import-crl qca "$TMP/c1.pem" >/dev/null \
    2>"$TMP/c1.err" &
kill9_when_logged $! "$TMP/c1.err" 'CRL entries committed'
done1=$(($(affil) - a0))
if ((done1 > 0 && done1 % 2000 == 0 && done1 < CRL_N)); then
    t_ok "import-crl killed: $done1 of $CRL_N entries committed, whole chunks of 2000 only"
else
    t_fail "import-crl killed" "$done1 of $CRL_N revoked, not whole chunks of 2000 (or all)"
fi
expect "import-crl killed: the issuer's CRL number not yet updated" \
    "$(ctl issuer list 2>/dev/null | grep -Eo 'crl=[a-z]+')" "crl=no"
out=$(OCSPCTL_IMPORT_CHUNK=2000 ctl import-crl qca "$TMP/c1.pem" 2>"$TMP/c1b.err")
expect "import-crl again: exit 0, every entry" "$?:$(grep -Eo '^import-crl: [0-9]+ entries' <<<"$out")" \
    "0:import-crl: $CRL_N entries"
expect "import-crl again: every CRL serial revoked" "$(($(affil) - a0))" "$CRL_N"
expect "import-crl again: the issuer CRL-fed with the CRL's number" \
    "$(ctl issuer list 2>/dev/null | grep -Eo 'crl=[a-z]+ crl_number=[0-9]+')" "crl=yes crl_number=4096"
expect "import-crl again: committed in chunks" "$(grep -c 'CRL entries committed' "$TMP/c1b.err")" \
    $(((CRL_N - 1) / 2000))
imp=$(ctl export --journal 2>/dev/null | jq -c '(.entry // .) | select(.op == "import-crl")' | tail -n 1)
expect "import-crl again: journalled as committed, every entry" \
    "$(jq -r '[.entries, .committed, .failed] | map(tostring) | join(" ")' <<<"$imp")" "$CRL_N true 0"
if diff <(ctl list qca 2>/dev/null | awk '$3 == "affiliationChanged" { print $1 }' | sort) \
    <(awk -F'\t' '{ print $4 }' "$TMP/crl-1000/index.txt" | sort) >/dev/null; then
    t_ok "import-crl: exactly the CRL's serials are revoked affiliationChanged"
else
    t_fail "import-crl" "the revoked serials differ from the CRL's"
fi

# ---- an older CRL after a newer one's import stopped (RFC 5280 §5.2.3: crlNumber never goes
# back): CRL 1002 (a hold on the first key, in its first chunk) killed after its first chunk,
# then CRL 1001, complete, which does not list that hold: refused, so it neither releases the
# hold CRL 1002 put nor takes the issuer back; CRL 1002 again completes (OCSP-16) ----
H=10000000000000000000000000000001
printf 'R\t351231235959Z\t240501000000Z,certificateHold\t%s\tunknown\t/CN=hold\n' "$H" >"$TMP/hold.txt"
crl "$TMP/c3.pem" 40000 1002 "$TMP/hold.txt"
crl "$TMP/c2.pem" 100 1001
OCSPCTL_IMPORT_CHUNK=2000 "$BUILD/ocspctl" -c "$CONF" import-crl qca "$TMP/c3.pem" >/dev/null \
    2>"$TMP/c3.err" &
kill9_when_logged $! "$TMP/c3.err" 'CRL entries committed'
expect "CRL 1002 killed after its first chunk: its hold is in" \
    "$(ctl status qca "$H" 2>/dev/null | grep -Eo 'hold|good')" hold
ctl import-crl qca "$TMP/c2.pem" >/dev/null 2>"$TMP/c2.err"
expect "CRL 1001 after CRL 1002's stopped import: refused (exit 1), named" \
    "$?:$(grep -c 'crlNumber 4098' "$TMP/c2.err")" "1:1"
expect "CRL 1001 refused: CRL 1002's hold kept" \
    "$(ctl status qca "$H" 2>/dev/null | grep -Eo 'hold|good')" hold
expect "CRL 1001 refused: the issuer's CRL number unchanged" \
    "$(ctl issuer list 2>/dev/null | grep -Eo 'crl_number=[0-9]+')" "crl_number=4096"
OCSPCTL_IMPORT_CHUNK=2000 ctl import-crl qca "$TMP/c3.pem" >/dev/null 2>"$TMP/c3b.err"
expect "CRL 1002 again: exit 0, the issuer at its number, the hold kept" \
    "$?:$(ctl issuer list 2>/dev/null | grep -Eo 'crl_number=[0-9]+'):$(ctl status qca "$H" 2>/dev/null | grep -Eo 'hold|good')" \
    "0:crl_number=4098:hold"

# ---- a CRL entry whose reasonCode is not a CRLReason (7 is unused, RFC 5280 §5.3.1): the CA
# lists the serial, so it is revoked (without a reason), never left good, and a hold it lists
# so is not released as if the CRL did not list it (fail closed; OCSP-16, EID-05) ----
S4=$TMP/store4
{ ctl -d "$S4" init &&
    ctl -d "$S4" issuer add qca --cert "$OCSP_CA_CERT" --key-label "$OCSP_SIGNER_LABEL" \
        --signer-cert "$OCSP_SIGNER_CERT" --signature ecdsa --digest sha256 --nonce echo \
        --unissued revoked --validity 10d &&
    ctl -d "$S4" add qca 0A01 0A02 0A03 && ctl -d "$S4" hold qca 0A02; } >/dev/null 2>&1 ||
    fatal "reason store" "not built"
mkdir -p "$TMP/r7"
for s in 0A01 0A02; do
    printf 'R\t351231235959Z\t240101000000Z,keyCompromise\t%s\tunknown\t/CN=%s\n' "$s" "$s"
done >"$TMP/r7/index.txt"
printf 'R\t351231235959Z\t240101000000Z,superseded\t0A03\tunknown\t/CN=0A03\n' >>"$TMP/r7/index.txt"
echo 1010 >"$TMP/r7/crlnumber"
printf '[ca]\ndefault_ca = crl\n[crl]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\ndefault_crl_days = 30\nunique_subject = no\n' \
    "$TMP/r7/index.txt" "$TMP/r7/crlnumber" >"$TMP/r7/crl.cnf"
openssl ca -batch -gencrl -config "$TMP/r7/crl.cnf" -cert "$OCSP_CA_CERT" -keyfile "$OCSP_CA_KEY" \
    -out "$TMP/r7/ok.pem" >/dev/null 2>&1 || fatal "crl" "openssl ca -gencrl failed"
# the keyCompromise entries' reasonCode (ENUMERATED 1) made 7, the CRL signed again
openssl crl -in "$TMP/r7/ok.pem" -outform DER -out "$TMP/r7/ok.der" 2>/dev/null
python3 - "$ROOT/tests/lib" "$TMP/r7" "$OCSP_CA_KEY" <<'PY' || fatal "crl" "reasonCode 7 not written"
import subprocess, sys
sys.path.insert(0, sys.argv[1])
import derutil as d
b = open(sys.argv[2] + '/ok.der', 'rb').read()
_, crl, _ = d.tlv(b, 0)
tbs, alg, _ = d.kids(crl)
ext = bytes.fromhex('0603551d1504030a0101')
if tbs[2].count(ext) != 2:
    sys.exit(1)
t = tbs[2].replace(ext, ext[:-1] + b'\x07')
open(sys.argv[2] + '/tbs.der', 'wb').write(t)
sig = subprocess.run(['openssl', 'dgst', '-sha256', '-sign', sys.argv[3], sys.argv[2] + '/tbs.der'],
                     capture_output=True, check=True).stdout
open(sys.argv[2] + '/r7.der', 'wb').write(d.enc(0x30, t + alg[2] + d.enc(0x03, b'\x00' + sig)))
PY
ctl -d "$S4" import-crl qca "$TMP/r7/r7.der" >"$TMP/r7.out" 2>"$TMP/r7.err"
expect "reasonCode 7: imported (exit 0), both entries named in a warning" \
    "$?:$(grep -Ec '0A01|0A02' "$TMP/r7.err")" "0:2"
expect "reasonCode 7: the listed good serial revoked, not left good" \
    "$(ctl -d "$S4" status qca 0A01 2>/dev/null | grep -Eo ' (good|revoked|hold) ')" " revoked "
expect "reasonCode 7: the listed hold not released (revoked)" \
    "$(ctl -d "$S4" status qca 0A02 2>/dev/null | grep -Eo ' (good|revoked|hold) ')" " revoked "
expect "reasonCode 7: the other entry as listed" \
    "$(ctl -d "$S4" status qca 0A03 2>/dev/null | grep -Eo ' (revoked superseded|good) ')" " revoked superseded "

# ---- a CRL with a critical extension ocspctl does not process (RFC 5280 §5.2: such a CRL
# MUST NOT be used to determine any status; a scope it does not know would make it look
# complete): refused whole, the issuer and its records as they were ----
printf 'crl_extensions = crl_ext\n[crl_ext]\n1.3.6.1.4.1.99999.1 = critical,ASN1:UTF8String:scope\n' \
    >>"$TMP/r7/crl.cnf"
printf 'R\t351231235959Z\t240101000000Z,superseded\t0A04\tunknown\t/CN=0A04\n' >>"$TMP/r7/index.txt"
openssl ca -batch -gencrl -config "$TMP/r7/crl.cnf" -cert "$OCSP_CA_CERT" -keyfile "$OCSP_CA_KEY" \
    -out "$TMP/r7/crit.pem" >/dev/null 2>&1 || fatal "crl" "openssl ca -gencrl failed"
before=$(ctl -d "$S4" list qca 2>/dev/null | md5sum)
ctl -d "$S4" import-crl qca "$TMP/r7/crit.pem" >/dev/null 2>"$TMP/crit.err"
expect "unknown critical CRL extension: refused (exit 1), named" \
    "$?:$(grep -c '1.3.6.1.4.1.99999.1' "$TMP/crit.err")" "1:1"
expect "unknown critical CRL extension: no record changed, the issuer's CRL number kept" \
    "$(ctl -d "$S4" list qca 2>/dev/null | md5sum) $(ctl -d "$S4" issuer list 2>/dev/null | grep -Eo 'crl_number=[0-9]+')" \
    "$before crl_number=4112"

# ---- a revocation dated in the future (as `ocspctl revoke --time` refuses one): a relying
# party checking a signature made before that date would take the certificate as not yet
# revoked then. An index line so dated is a bad line (nothing of the file imported); a CRL
# entry dated after the CRL's thisUpdate makes the CRL refused whole (OCSP-15) ----
printf 'R\t351231235959Z\t341231000000Z,keyCompromise\t0B01\tunknown\t/CN=future\n' >"$TMP/fut.txt"
printf 'V\t351231235959Z\t\t0B02\tunknown\t/CN=v\n' >>"$TMP/fut.txt"
before=$(ctl -d "$S4" list qca 2>/dev/null | md5sum)
ctl -d "$S4" import-index qca "$TMP/fut.txt" >/dev/null 2>"$TMP/fut.err"
expect "index revocation dated 2034: refused (exit 1), the line named, nothing imported" \
    "$?:$(grep -c 'fut.txt:1: ' "$TMP/fut.err"):$(ctl -d "$S4" list qca 2>/dev/null | md5sum)" \
    "1:1:$before"
# ---- a CR inside a line (a file edited on another system, a damaged copy): the line used to
# be cut at it, so "0B04<CR>77" was imported as serial 0B04, another certificate's status
# (in a V line: a serial the CA never issued made good, OCSP-13). A CR only ends a line
# before its LF (CRLF files import as before); elsewhere the line is bad, named, and nothing
# of the file is imported ----
printf 'R\t351231235959Z\t240101000000Z,keyCompromise\t0B04\r77\tunknown\t/CN=cr\n' >"$TMP/cr.txt"
printf 'V\t351231235959Z\t\t0B05\tunknown\t/CN=v\n' >>"$TMP/cr.txt"
ctl -d "$S4" import-index qca "$TMP/cr.txt" >/dev/null 2>"$TMP/cr.err"
expect "index line with a CR inside its serial: refused (exit 1), the line named, nothing imported" \
    "$?:$(grep -c 'cr.txt:1: ' "$TMP/cr.err"):$(ctl -d "$S4" list qca 2>/dev/null | md5sum)" \
    "1:1:$before"
printf 'V\t351231235959Z\t\t0B06\tunknown\t/CN=crlf\r\n' >"$TMP/crlf.txt"
ctl -d "$S4" import-index qca "$TMP/crlf.txt" >/dev/null 2>"$TMP/crlf.err"
expect "index with CRLF line ends: imported" \
    "$?:$(ctl -d "$S4" list qca 2>/dev/null | grep -c '0B06')" "0:1"
before=$(ctl -d "$S4" list qca 2>/dev/null | md5sum)
mkdir -p "$TMP/fc"
printf 'R\t351231235959Z\t340101000000Z,keyCompromise\t0B03\tunknown\t/CN=f\n' >"$TMP/fc/index.txt"
echo 1020 >"$TMP/fc/crlnumber"
printf '[ca]\ndefault_ca = crl\n[crl]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\ndefault_crl_days = 30\nunique_subject = no\n' \
    "$TMP/fc/index.txt" "$TMP/fc/crlnumber" >"$TMP/fc/crl.cnf"
openssl ca -batch -gencrl -config "$TMP/fc/crl.cnf" -cert "$OCSP_CA_CERT" -keyfile "$OCSP_CA_KEY" \
    -out "$TMP/fc/c.pem" >/dev/null 2>&1 || fatal "crl" "openssl ca -gencrl failed"
ctl -d "$S4" import-crl qca "$TMP/fc/c.pem" >/dev/null 2>"$TMP/fc.err"
expect "CRL entry dated 2034: refused (exit 1), named, nothing imported" \
    "$?:$(grep -c '0B03' "$TMP/fc.err"):$(ctl -d "$S4" list qca 2>/dev/null | md5sum)" "1:1:$before"

# ---- import-crl into a store that fills up (map_size 2M): the import stops at the entry that
# found the store full, says so once (not once for every entry after it) and leaves the store
# and the issuer as they were (D10) ----
CONF3=$TMP/ocspd-small.conf
S3=$TMP/store3
sed -e 's/^map_size = .*/map_size = 2M/' -e "s|^path = .*|path = $S3|" "$CONF" >"$CONF3"
"$BUILD/ocspctl" -c "$CONF3" init >/dev/null 2>&1 &&
    "$BUILD/ocspctl" -c "$CONF3" issuer add qca --cert "$OCSP_CA_CERT" \
        --key-label "$OCSP_SIGNER_LABEL" --signer-cert "$OCSP_SIGNER_CERT" --signature ecdsa \
        --digest sha256 --nonce echo --unissued revoked --validity 10d >/dev/null 2>&1 ||
    fatal "small store" "not built"
crl "$TMP/c-full.pem" 20000 2000
"$BUILD/ocspctl" -c "$CONF3" import-crl qca "$TMP/c-full.pem" >"$TMP/cf.out" 2>"$TMP/cf.err"
expect "import-crl, store full: exit 1, nothing imported" \
    "$?:$(grep -c '; nothing imported$' "$TMP/cf.out")" "1:1"
expect "import-crl, store full: one entry named as failed, not every one after it" \
    "$(grep -Ec '^ocspctl: [0-9A-F]+: ' "$TMP/cf.err")" 1
expect "import-crl, store full: no serial stored, the issuer not CRL-fed" \
    "$("$BUILD/ocspctl" -c "$CONF3" list qca 2>/dev/null | grep -c .) $("$BUILD/ocspctl" -c "$CONF3" issuer list 2>/dev/null | grep -Eo 'crl=[a-z]+')" \
    "0 crl=no"
# an index of revocations into the same small store (revocations pass the fill_limit check,
# D10): stopped at a chunk that does not fit; its journal entry counts what was committed,
# as the store holds it (EID-12), not the chunk that was lost
awk 'BEGIN { for (i = 1; i <= 20000; i++) printf "R\t351231235959Z\t240101000000Z,keyCompromise\t6%07X\tunknown\t/CN=f %d\n", i, i }' \
    >"$TMP/rfull.txt"
OCSPCTL_IMPORT_CHUNK=2000 "$BUILD/ocspctl" -c "$CONF3" import-index qca "$TMP/rfull.txt" \
    >/dev/null 2>"$TMP/rfull.err"
rc=$?
nrev=$("$BUILD/ocspctl" -c "$CONF3" list qca --revoked 2>/dev/null | grep -c .)
imp=$("$BUILD/ocspctl" -c "$CONF3" export --journal 2>/dev/null |
    jq -c '(.entry // .) | select(.op == "import-index")' | tail -n 1)
if ((rc == 1 && nrev > 0 && nrev % 2000 == 0 && nrev < 20000)); then
    t_ok "import-index, store full: stopped (exit 1) after $nrev revocations, whole chunks"
else
    t_fail "import-index, store full: stopped after whole chunks" "exit $rc, $nrev revoked"
fi
expect "import-index, store full: the journal entry counts the committed chunks" \
    "$(jq -r '[.committed, .committed_lines, .lines, .revoked] | map(tostring) | join(" ")' <<<"$imp")" \
    "false $nrev $nrev $nrev"
# the same for import-crl in chunks, into a fresh small store: its journal entry counts the
# committed chunks (EID-12)
CONF5=$TMP/ocspd-small5.conf
sed -e "s|^path = .*|path = $TMP/store5|" "$CONF3" >"$CONF5"
"$BUILD/ocspctl" -c "$CONF5" init >/dev/null 2>&1 &&
    "$BUILD/ocspctl" -c "$CONF5" issuer add qca --cert "$OCSP_CA_CERT" \
        --key-label "$OCSP_SIGNER_LABEL" --signer-cert "$OCSP_SIGNER_CERT" --signature ecdsa \
        --digest sha256 --nonce echo --unissued revoked --validity 10d >/dev/null 2>&1 ||
    fatal "small store 5" "not built"
OCSPCTL_IMPORT_CHUNK=2000 "$BUILD/ocspctl" -c "$CONF5" import-crl qca "$TMP/c-full.pem" \
    >/dev/null 2>"$TMP/cf5.err"
rc=$?
nrev=$("$BUILD/ocspctl" -c "$CONF5" list qca --revoked 2>/dev/null | grep -c .)
imp=$("$BUILD/ocspctl" -c "$CONF5" export --journal 2>/dev/null |
    jq -c '(.entry // .) | select(.op == "import-crl")' | tail -n 1)
if ((rc == 1 && nrev > 0 && nrev % 2000 == 0)); then
    t_ok "import-crl, store full: stopped (exit 1) after $nrev revocations, whole chunks"
else
    t_fail "import-crl, store full: stopped after whole chunks" "exit $rc, $nrev revoked"
fi
expect "import-crl, store full: the journal entry counts the committed chunks" \
    "$(jq -r '[.committed, .committed_entries, .entries] | map(tostring) | join(" ")' <<<"$imp")" \
    "false $nrev $nrev"

t_summary "$NAME"
