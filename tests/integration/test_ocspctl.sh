#!/usr/bin/env bash
#
# test_ocspctl.sh: the `ocspctl` operator tool against a real LMDB store and a real PKI made
# with the openssl CLI (root CA, issuing CA A running `openssl ca` with a real index.txt and
# CRLs, a delegated OCSP responder cert, an RSA CA B, and an impostor CA with A's name):
#   - init idempotent; issuer add with the CA key and with a delegate (RFC 6960 §4.2.2.2,
#     OCSP-21/22: issued by the CA, id-kp-OCSPSigning, nocheck, key matches), issuer list;
#   - add by serial and by certificate (a certificate of another CA refused);
#   - revoke / hold / release / status / list (EID-05, EID-08, OCSP-16); release or hold of a
#     definitively revoked serial refused with exit 3 and journalled (EID-07);
#   - import-index of `openssl ca`'s database (issued-serial knowledge, OCSP-13);
#   - import-crl of full CRLs, PEM and DER, an older CRL refused (RFC 5280 §5.2.3), a CRL
#     signed by another key refused, delta CRLs (§5.2.4) with certificateHold and
#     removeFromCRL, and a removeFromCRL of a revoked serial refused (EID-07);
#   - a repeated revoke or hold never weakens the status (OCSP-15, EID-07/08): earliest time
#     kept, reason only upgraded, anything else refused; a --time in the future refused;
#   - import-index with a bad line (nothing of the file committed, issue 8 item 5), of a PEM
#     file, of blank lines: exit 1;
#   - a partition CRL (IDP distributionPoint) releases no hold; a delta CRL's nextUpdate
#     bounds the issuer's (STS-12); a CRL dated in the future refused;
#   - export as JSON lines (EID-12/15); usage errors exit 2; --help on every level;
#   - presign with a software key over more than one chunk: every serial signed once, the
#     expired ones skipped (answered on demand), the leaf pages of a first presign filled
#     (written in key order, appended), and a re-presign reuses the pages it frees (no read
#     transaction held while signing).
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIB="$top/tests/lib"
# shellcheck source=tests/lib/common.sh
. "$LIB/common.sh"

BUILD=${BUILD:-build}
CTL="$top/$BUILD/ocspctl"
[ -x "$CTL" ] || die "$CTL not built (make $BUILD/ocspctl)"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
P="$TMP/pki"
S1="$TMP/store1"
S2="$TMP/store2"
mkdir -p "$P"
export USER=tester

# ---- helpers ----

# expect_rc NAME WANT CMD...: CMD exits with WANT.
expect_rc() {
    local name=$1 want=$2 rc out
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" -eq "$want" ]; then
        t_ok "$name"
    else
        t_fail "$name" "exit $rc, want $want: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"
    fi
}

# expect_out NAME REGEX CMD...: CMD succeeds and its stdout matches REGEX (grep -E).
expect_out() {
    local name=$1 re=$2 out
    shift 2
    if ! out=$("$@" 2>/dev/null); then
        t_fail "$name" "command failed: $*"
    elif grep -Eq -- "$re" <<<"$out"; then
        t_ok "$name"
    else
        t_fail "$name" "output '$(tr '\n' '|' <<<"$out")' does not match /$re/"
    fi
}

# expect_msg NAME WANT REGEX CMD...: CMD exits with WANT and its stderr matches REGEX.
expect_msg() {
    local name=$1 want=$2 re=$3 rc err
    shift 3
    err=$("$@" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        t_fail "$name" "exit $rc, want $want: $(printf '%s' "$err" | tail -n 3 | tr '\n' ' ')"
    elif grep -Eq -- "$re" <<<"$err"; then
        t_ok "$name"
    else
        t_fail "$name" "stderr '$(tr '\n' '|' <<<"$err")' does not match /$re/"
    fi
}

ctl1() { "$CTL" -d "$S1" "$@"; }
ctl2() { "$CTL" -d "$S2" "$@"; }

# Serial of a certificate as openssl prints it (uppercase hex).
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }

# ---- PKI ----

cat >"$P/ca.cnf" <<'EOF'
[ca]
default_ca = ca_a
[ca_a]
database = $ENV::CADB
new_certs_dir = $ENV::CADIR/certs
serial = $ENV::CADIR/serial
crlnumber = $ENV::CADIR/crlnumber
default_md = sha256
default_days = 30
default_crl_days = 1
policy = pol
unique_subject = no
copy_extensions = none
[pol]
commonName = supplied
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
[ocsp]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
[ocsp_nonc]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
[crl_ext]
authorityKeyIdentifier = keyid
[delta_ext]
authorityKeyIdentifier = keyid
2.5.29.27 = critical, $ENV::DELTA_BASE
[idp_ext]
authorityKeyIdentifier = keyid
issuingDistributionPoint = critical, @idp_sect
[idp_sect]
fullname = URI:http://crl.example/partition1.crl
EOF

export CADIR="$P/a" CADB="$P/a/index.txt" DELTA_BASE="DER:02:01:01"
mkdir -p "$P/a/certs" "$P/b" "$P/evil"
touch "$CADB"
echo 1000 >"$P/a/serial"
echo 01 >"$P/a/crlnumber"

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca_a() { openssl ca -batch -config "$P/ca.cnf" -cert "$P/a/ca.pem" -keyfile "$P/a/ca.key" "$@"; }

pki() {
    ec_key "$P/root.key" &&
        openssl req -x509 -new -key "$P/root.key" -subj "/CN=Test Root" -days 60 \
            -config "$P/ca.cnf" -extensions v3_ca -out "$P/root.pem" &&
        ec_key "$P/a/ca.key" &&
        openssl req -new -key "$P/a/ca.key" -subj "/O=Test/CN=Issuing CA A" -config "$P/ca.cnf" \
            -out "$P/a/ca.csr" &&
        openssl x509 -req -in "$P/a/ca.csr" -CA "$P/root.pem" -CAkey "$P/root.key" \
            -set_serial 1 -days 50 -extfile "$P/ca.cnf" -extensions v3_ca -out "$P/a/ca.pem" &&
        for i in 1 2 3 4 5; do
            ec_key "$P/a/l$i.key" &&
                openssl req -new -key "$P/a/l$i.key" -subj "/CN=leaf $i" -config "$P/ca.cnf" \
                    -out "$P/a/l$i.csr" &&
                ca_a -in "$P/a/l$i.csr" -extensions leaf -out "$P/a/l$i.pem" || return 1
        done &&
        ec_key "$P/a/ocsp.key" &&
        openssl req -new -key "$P/a/ocsp.key" -subj "/CN=OCSP responder A" -config "$P/ca.cnf" \
            -out "$P/a/ocsp.csr" &&
        ca_a -in "$P/a/ocsp.csr" -extensions ocsp -out "$P/a/ocsp.pem" &&
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$P/b/ca.key" &&
        openssl req -x509 -new -key "$P/b/ca.key" -subj "/CN=RSA CA B" -days 60 \
            -config "$P/ca.cnf" -extensions v3_ca -out "$P/b/ca.pem" &&
        ec_key "$P/b/l1.key" &&
        openssl req -new -key "$P/b/l1.key" -subj "/CN=leaf of B" -config "$P/ca.cnf" \
            -out "$P/b/l1.csr" &&
        openssl x509 -req -in "$P/b/l1.csr" -CA "$P/b/ca.pem" -CAkey "$P/b/ca.key" \
            -set_serial 0x7777 -days 10 -extfile "$P/ca.cnf" -extensions leaf \
            -out "$P/b/l1.pem" &&
        ec_key "$P/evil/ca.key" &&
        openssl req -x509 -new -key "$P/evil/ca.key" -subj "/O=Test/CN=Issuing CA A" -days 60 \
            -config "$P/ca.cnf" -extensions v3_ca -out "$P/evil/ca.pem"
}
pki >"$TMP/pki.log" 2>&1 || {
    cat "$TMP/pki.log" >&2
    die "building the test PKI failed"
}

L1=$(serial_of "$P/a/l1.pem")
L2=$(serial_of "$P/a/l2.pem")
L3=$(serial_of "$P/a/l3.pem")
L4=$(serial_of "$P/a/l4.pem")
L5=$(serial_of "$P/a/l5.pem")

# ---- help and usage ----

expect_rc "help: ocspctl -h" 0 "$CTL" -h
expect_out "help: names the commands" 'import-crl' "$CTL" --help
expect_rc "help: revoke --help" 0 "$CTL" -d "$S1" revoke --help
expect_rc "help: issuer --help" 0 "$CTL" issuer --help
expect_rc "help: issuer add -h" 0 "$CTL" issuer add -h
expect_rc "help: import-crl -h" 0 "$CTL" import-crl -h
expect_rc "usage: no command" 2 "$CTL"
expect_rc "usage: unknown command" 2 "$CTL" -d "$S1" frobnicate
expect_rc "usage: unknown global option" 2 "$CTL" -x init
expect_rc "usage: issuer without subcommand" 2 "$CTL" -d "$S1" issuer
expect_rc "error: status before init" 1 ctl1 status A 01
expect_rc "usage: operator name too long" 2 "$CTL" -d "$S1" -u "$(printf 'x%.0s' {1..200})" init

# ---- init and issuers ----

expect_rc "init creates the store" 0 ctl1 init
expect_rc "init is idempotent" 0 ctl1 init
expect_rc "issuer add A with the CA key" 0 ctl1 issuer add A --cert "$P/a/ca.pem" \
    --key-file "$P/a/ca.key"
expect_out "issuer list: A, CA signer, ecdsa default" \
    '^A .*signer=ca .*signature=ecdsa digest=sha256 nonce=echo unissued=revoked validity=86400 archive_cutoff=yes' \
    ctl1 issuer list
expect_rc "issuer add A again with a delegate (update)" 0 ctl1 issuer add A \
    --cert "$P/a/ca.pem" --signer-cert "$P/a/ocsp.pem" --key-file "$P/a/ocsp.key" \
    --nonce require --validity 2h
expect_out "issuer list: A now delegated, nonce require, 7200 s" \
    '^A .*signer=delegated .*nonce=require .*validity=7200' ctl1 issuer list
expect_rc "issuer add B (RSA) with a key label" 0 ctl1 -u alice issuer add B \
    --cert "$P/b/ca.pem" --key-label b-key --unissued unknown --archive-cutoff no
expect_out "issuer list: B rsa-pkcs1 default, label" \
    '^B .*key=label:b-key signature=rsa-pkcs1 .*unissued=unknown .*archive_cutoff=no' \
    ctl1 issuer list
expect_out "issuer list: two issuers" '^2$' bash -c "\"$CTL\" -d \"$S1\" issuer list | wc -l"
expect_rc "issuer add: key does not match the delegate" 1 ctl1 issuer add A \
    --cert "$P/a/ca.pem" --signer-cert "$P/a/ocsp.pem" --key-file "$P/a/ca.key"
expect_rc "issuer add: a leaf is not a CA" 1 ctl1 issuer add L --cert "$P/a/l1.pem" \
    --key-file "$P/a/l1.key"
expect_rc "issuer add: delegate without OCSPSigning refused" 1 ctl1 issuer add A \
    --cert "$P/a/ca.pem" --signer-cert "$P/a/l1.pem" --key-file "$P/a/l1.key"
expect_rc "issuer add: delegate of another CA refused" 1 ctl1 issuer add B \
    --cert "$P/b/ca.pem" --signer-cert "$P/a/ocsp.pem" --key-file "$P/a/ocsp.key"
# OCSP-22: a delegate without id-pkix-ocsp-nocheck is taken with a warning (relying parties
# would have to check its status), one with it without
openssl x509 -req -in "$P/a/ocsp.csr" -CA "$P/a/ca.pem" -CAkey "$P/a/ca.key" -set_serial 0x4242 \
    -days 10 -extfile "$P/ca.cnf" -extensions ocsp_nonc -out "$P/a/ocsp-nonc.pem" >/dev/null 2>&1
"$CTL" -d "$TMP/store3" init >/dev/null 2>&1
expect_msg "OCSP-22: delegate without nocheck: added, with a warning" 0 \
    'no id-pkix-ocsp-nocheck extension \(OCSP-22\)' "$CTL" -d "$TMP/store3" issuer add A \
    --cert "$P/a/ca.pem" --signer-cert "$P/a/ocsp-nonc.pem" --key-file "$P/a/ocsp.key"
if err=$("$CTL" -d "$TMP/store3" issuer add A --cert "$P/a/ca.pem" --signer-cert "$P/a/ocsp.pem" \
    --key-file "$P/a/ocsp.key" 2>&1 >/dev/null) && [[ $err != *nocheck* ]]; then
    t_ok "OCSP-22: delegate with nocheck: added, no warning"
else
    t_fail "OCSP-22: delegate with nocheck: added, no warning" "$err"
fi
expect_rc "issuer add: existing name with another cert refused" 1 ctl1 issuer add A \
    --cert "$P/b/ca.pem" --key-label x
expect_rc "issuer add: same CA under a second name refused" 1 ctl1 issuer add A2 \
    --cert "$P/a/ca.pem" --key-label x
expect_rc "issuer add: ecdsa asked for an RSA key refused" 1 ctl1 issuer add B \
    --cert "$P/b/ca.pem" --key-label b-key --signature ecdsa
expect_rc "usage: issuer add bad name" 2 ctl1 issuer add 'a/b' --cert "$P/a/ca.pem" \
    --key-label x
expect_rc "usage: issuer add bad --nonce" 2 ctl1 issuer add A --cert "$P/a/ca.pem" \
    --key-label x --nonce sometimes
expect_rc "usage: issuer add without a key" 2 ctl1 issuer add A --cert "$P/a/ca.pem"
expect_rc "usage: issuer add with both keys" 2 ctl1 issuer add A --cert "$P/a/ca.pem" \
    --key-label x --key-file "$P/a/ca.key"
expect_out "issuer list: A unchanged by refused adds" '^A .*signer=delegated .*nonce=require' \
    ctl1 issuer list

# ---- add, status ----

expect_rc "add by serial" 0 ctl1 add A "$L1"
expect_out "status of an added serial: good, no expiry" "^$L1 good - - -\$" ctl1 status A "$L1"
expect_rc "add by certificate" 0 ctl1 add A "$P/a/l2.pem"
expect_out "status of an added cert: good with notAfter" "^$L2 good - - [0-9]{14}Z\$" \
    ctl1 status A "$L2"
expect_rc "add: certificate of another CA refused" 1 ctl1 add A "$P/b/l1.pem"
expect_out "add: the refused cert was not recorded" '^7777 not-issued' ctl1 status A 7777
expect_rc "add: serial with top bit, 0x prefix, lower case, --not-after" 0 ctl1 add A \
    0x0080ff --not-after 20300101000000Z
expect_out "status: leading zeros stripped, upper case" '^80FF good - - 20300101000000Z$' \
    ctl1 status A 80ff
expect_rc "add: several serials at once" 0 ctl1 add A "$L3" "$L4" "$L5"
expect_rc "usage: add a non-hex serial" 2 ctl1 add A ZZ
expect_rc "usage: add serial zero" 2 ctl1 add A 0x00
expect_rc "usage: add a 21-octet serial" 2 ctl1 add A 0102030405060708090a0b0c0d0e0f101112131415
expect_rc "usage: add a bad --not-after" 2 ctl1 add A 01 --not-after 2030-01-01
expect_rc "error: add to an unknown issuer" 1 ctl1 add Nope 01
expect_out "status of a never-added serial: not-issued" '^ABCDEF not-issued - - -$' \
    ctl1 status A abcdef

# ---- revoke, hold, release ----

expect_rc "revoke keyCompromise at a given time" 0 ctl1 -u bob revoke A "$L1" \
    --reason keyCompromise --time 20250101000000Z
expect_out "status: revoked keyCompromise" "^$L1 revoked keyCompromise 20250101000000Z -\$" \
    ctl1 status A "$L1"
expect_rc "usage: revoke with certificateHold" 2 ctl1 revoke A "$L2" --reason certificateHold
expect_rc "usage: revoke with removeFromCRL" 2 ctl1 revoke A "$L2" --reason removeFromCRL
expect_rc "usage: revoke with a bad time" 2 ctl1 revoke A "$L2" --time 250101000000Z
expect_rc "usage: revoke without serial" 2 ctl1 revoke A
expect_rc "hold" 0 ctl1 hold A "$L2" --time 20250201000000Z
expect_out "status: hold, certificateHold, hold time (EID-08)" \
    "^$L2 hold certificateHold 20250201000000Z [0-9]{14}Z\$" ctl1 status A "$L2"
expect_rc "release a hold" 0 ctl1 release A "$L2"
expect_out "status: good after release" "^$L2 good - - [0-9]{14}Z\$" ctl1 status A "$L2"
expect_rc "release of a good serial is an error" 1 ctl1 release A "$L2"
expect_rc "release of an unknown serial is an error" 1 ctl1 release A 0777
expect_rc "hold again" 0 ctl1 hold A "$L2"
expect_rc "hold -> revoked" 0 ctl1 revoke A "$L2" --reason superseded
expect_out "status: revoked superseded" "^$L2 revoked superseded " ctl1 status A "$L2"
expect_rc "EID-07: release of a revoked serial refused (exit 3)" 3 ctl1 -u mallory release A "$L1"
expect_rc "EID-07: hold of a revoked serial refused (exit 3)" 3 ctl1 -u mallory hold A "$L2"
expect_out "EID-07: still revoked keyCompromise" "^$L1 revoked keyCompromise 20250101000000Z" \
    ctl1 status A "$L1"
expect_rc "OCSP-15: revoke again without options refused (exit 3)" 3 ctl1 -u carol revoke A "$L1"
expect_rc "OCSP-15: revoke again with another reason refused (exit 3)" 3 ctl1 -u carol \
    revoke A "$L1" --reason superseded --time 20250101000000Z
expect_rc "OCSP-15: revoke again, same reason, later time" 0 ctl1 revoke A "$L1" \
    --reason keyCompromise --time 20250601000000Z
expect_out "OCSP-15: keyCompromise and the earliest time kept" \
    "^$L1 revoked keyCompromise 20250101000000Z -\$" ctl1 status A "$L1"
l2_time=$(ctl1 status A "$L2" | cut -d' ' -f4)
expect_rc "OCSP-15: superseded raised to keyCompromise" 0 ctl1 revoke A "$L2" \
    --reason keyCompromise
expect_out "OCSP-15: keyCompromise, the first revocation time kept" \
    "^$L2 revoked keyCompromise $l2_time " ctl1 status A "$L2"
future=$(date -u -d '+1 day' +%Y%m%d%H%M%SZ)
soon=$(date -u -d '+30 seconds' +%Y%m%d%H%M%SZ)
expect_msg "revoke --time in the future refused (exit 2)" 2 'is in the future' \
    ctl1 revoke A "$L3" --time "$future"
expect_msg "hold --time in the future refused (exit 2)" 2 'is in the future' \
    ctl1 hold A "$L3" --time "$future"
expect_out "refused --time: nothing changed" "^$L3 good " ctl1 status A "$L3"
expect_rc "hold --time 30 s ahead accepted (clock skew)" 0 ctl1 hold A "$L5" --time "$soon"
expect_rc "EID-08: hold again with another time" 0 ctl1 hold A "$L5" --time 20250301000000Z
expect_out "EID-08: a repeated hold keeps its start" "^$L5 hold certificateHold $soon " \
    ctl1 status A "$L5"
expect_rc "release the repeated hold" 0 ctl1 release A "$L5"
expect_out "list: every serial of A" '^6$' bash -c "\"$CTL\" -d \"$S1\" list A | wc -l"
expect_out "list --revoked: the two revoked" '^2$' \
    bash -c "\"$CTL\" -d \"$S1\" list A --revoked | wc -l"
expect_out "list B: empty" '^0$' bash -c "\"$CTL\" -d \"$S1\" list B | wc -l"

# ---- export ----

"$CTL" -d "$S1" export >"$TMP/export1.jsonl" 2>"$TMP/export1.err"
expect_rc "export exits 0" 0 test -s "$TMP/export1.jsonl"
expect_rc "export: JSON lines parse" 0 python3 -c \
    'import json,sys; [json.loads(l) for l in sys.stdin]' <"$TMP/export1.jsonl"
count_type() {
    python3 -c 'import json,sys
t=sys.argv[1]
print(sum(1 for l in sys.stdin if json.loads(l)["type"]==t))' "$1" <"$2"
}
expect_out "export: two issuers" '^2$' count_type issuer "$TMP/export1.jsonl"
expect_out "export: six status records" '^6$' count_type status "$TMP/export1.jsonl"
expect_rc "export: journal has the refused release by mallory" 0 python3 -c '
import json,sys
es=[json.loads(l) for l in sys.stdin]
j=[e["entry"] for e in es if e["type"]=="journal"]
r=[e for e in j if e.get("result")=="refused" and e.get("who")=="mallory"]
assert len(r)==2, r
assert r[0]["before"]["state"]=="revoked" and r[0]["after"]["state"]=="good"
assert any(e.get("op")=="issuer-add" and e.get("who")=="alice" for e in j)
assert any(e.get("op")=="status" and e.get("who")=="bob" for e in j)
assert any(e.get("op")=="issuer-add" and e.get("who")=="tester" for e in j)  # $USER
' <"$TMP/export1.jsonl"
"$CTL" -d "$S1" export B >"$TMP/export_b.jsonl" 2>/dev/null
expect_rc "export B: JSON lines parse" 0 python3 -c \
    'import json,sys; [json.loads(l) for l in sys.stdin]' <"$TMP/export_b.jsonl"
expect_out "export B: only issuer B" '^1$' count_type issuer "$TMP/export_b.jsonl"
expect_out "export B: no status records" '^0$' count_type status "$TMP/export_b.jsonl"
expect_rc "usage: export with an option" 2 ctl1 export --bogus
expect_rc "error: export of an unknown issuer" 1 ctl1 export Nope

# ---- import-index (second store) ----

ca_a -revoke "$P/a/l3.pem" -crl_reason superseded >>"$TMP/pki.log" 2>&1
ca_a -revoke "$P/a/l4.pem" -crl_hold holdInstructionReject >>"$TMP/pki.log" 2>&1
ca_a -revoke "$P/a/l1.pem" -crl_reason keyCompromise >>"$TMP/pki.log" 2>&1
expect_rc "index.txt has three R lines" 0 test "$(grep -c '^R' "$CADB")" -eq 3
expect_rc "store2: init" 0 ctl2 init
expect_rc "store2: issuer A" 0 ctl2 issuer add A --cert "$P/a/ca.pem" \
    --signer-cert "$P/a/ocsp.pem" --key-file "$P/a/ocsp.key"
expect_rc "import-index" 0 ctl2 import-index A "$CADB"
expect_out "import-index: every line recorded (5 leaves + delegate)" '^6$' \
    bash -c "\"$CTL\" -d \"$S2\" list A | wc -l"
expect_out "import-index: V line good with notAfter" "^$L2 good - - [0-9]{14}Z\$" \
    ctl2 status A "$L2"
expect_out "import-index: R superseded" "^$L3 revoked superseded [0-9]{14}Z [0-9]{14}Z\$" \
    ctl2 status A "$L3"
expect_out "import-index: holdInstruction -> hold" "^$L4 hold certificateHold " \
    ctl2 status A "$L4"
expect_out "import-index: R keyCompromise" "^$L1 revoked keyCompromise " ctl2 status A "$L1"
expect_rc "import-index again is idempotent" 0 ctl2 import-index A "$CADB"
# Issue 8 item 5: all or nothing. Good lines before and after a bad one, a revocation among
# them: the bad line is named, exit 1, and not one of the good lines is committed.
printf 'V\t301231235959Z\t\t2000\tunknown\t/CN=x\nR\t301231235959Z\t250101000000Z,keyCompromise\t2002\tunknown\t/CN=z\ngarbage line\nV\t301231235959Z\t\t2001\tunknown\t/CN=y\n' >"$TMP/index_bad.txt"
expect_msg "import-index: a bad line is an error naming it (exit 1)" 1 'index_bad.txt:3: not an' \
    ctl2 import-index A "$TMP/index_bad.txt"
expect_out "import-index with a bad line: the good line before it is not committed" \
    '^2000 not-issued ' ctl2 status A 2000
expect_out "import-index with a bad line: the revocation before it is not committed" \
    '^2002 not-issued ' ctl2 status A 2002
expect_out "import-index with a bad line: the good line after it is not committed" \
    '^2001 not-issued ' ctl2 status A 2001
expect_msg "import-index with a bad line: says nothing was imported" 1 'nothing (was )?imported' \
    ctl2 import-index A "$TMP/index_bad.txt"
expect_msg "import-index: a PEM certificate given as index is an error" 1 'lines are not' \
    ctl2 import-index A "$P/a/l1.pem"
printf '\n\n\n' >"$TMP/index_blank.txt"
expect_msg "import-index: only blank lines is an error (no entries)" 1 'no entries' \
    ctl2 import-index A "$TMP/index_blank.txt"
: >"$TMP/index_empty.txt"
expect_rc "import-index: an empty file is an error" 1 ctl2 import-index A "$TMP/index_empty.txt"
expect_rc "usage: import-index without file" 2 ctl2 import-index A

# ---- import-crl ----

ca_a -gencrl -crlexts crl_ext -out "$P/a/crl1.pem" >>"$TMP/pki.log" 2>&1
sleep 1 # the next CRL gets a later thisUpdate
ca_a -gencrl -crlexts crl_ext -out "$P/a/crl2.pem" >>"$TMP/pki.log" 2>&1
openssl crl -in "$P/a/crl2.pem" -outform DER -out "$P/a/crl2.der"
touch "$P/evil/index.txt"
echo 01 >"$P/evil/crlnumber"
CADIR="$P/evil" CADB="$P/evil/index.txt" openssl ca -batch -config "$P/ca.cnf" \
    -cert "$P/evil/ca.pem" -keyfile "$P/evil/ca.key" -gencrl -out "$P/evil/crl.pem" \
    >>"$TMP/pki.log" 2>&1
expect_rc "CRLs generated" 0 test -s "$P/a/crl2.der" -a -s "$P/evil/crl.pem"

expect_rc "store3: init" 0 "$CTL" -d "$TMP/store3" init
expect_rc "store3: issuer A (CRL-fed)" 0 "$CTL" -d "$TMP/store3" issuer add A \
    --cert "$P/a/ca.pem" --key-file "$P/a/ca.key" --unissued good
ctl3() { "$CTL" -d "$TMP/store3" "$@"; }
expect_rc "import-crl: CRL signed by another key with A's name refused" 1 \
    ctl3 import-crl A "$P/evil/crl.pem"
expect_out "import-crl: refused CRL changed nothing" '^A .*crl=no' ctl3 issuer list
expect_rc "import-crl: full CRL, PEM" 0 ctl3 import-crl A "$P/a/crl2.pem"
expect_out "import-crl: issuer CRL-fed with number and times" \
    '^A .*crl=yes crl_number=2 crl_this_update=[0-9]{14}Z crl_next_update=[0-9]{14}Z' \
    ctl3 issuer list
expect_out "import-crl: keyCompromise revoked" "^$L1 revoked keyCompromise " ctl3 status A "$L1"
expect_out "import-crl: certificateHold is a hold" "^$L4 hold certificateHold " \
    ctl3 status A "$L4"
expect_out "import-crl: superseded" "^$L3 revoked superseded " ctl3 status A "$L3"
expect_out "import-crl: only revoked serials recorded" '^3$' \
    bash -c "\"$CTL\" -d \"$TMP/store3\" list A | wc -l"
expect_rc "import-crl: the same CRL again, DER" 0 ctl3 import-crl A "$P/a/crl2.der"
expect_rc "import-crl: an older CRL (lower crlNumber) refused" 1 ctl3 import-crl A "$P/a/crl1.pem"
expect_rc "import-crl: into the wrong issuer refused" 1 ctl1 import-crl B "$P/a/crl2.pem"
expect_rc "import-crl: not a CRL" 1 ctl3 import-crl A "$P/a/l1.pem"

# Delta CRLs: a database listing only the changes since CRL 2 (RFC 5280 §5.2.4).
now=$(date -u +%y%m%d%H%M%SZ)
exp=$(date -u -d '+20 days' +%y%m%d%H%M%SZ)
printf 'R\t%s\t%s,removeFromCRL\t%s\tunknown\t/CN=leaf 4\n' "$exp" "$now" "$L4" >"$P/a/delta1.txt"
printf 'R\t%s\t%s,certificateHold\t%s\tunknown\t/CN=leaf 2\n' "$exp" "$now" "$L2" >>"$P/a/delta1.txt"
printf 'R\t%s\t%s,removeFromCRL\t%s\tunknown\t/CN=leaf 1\n' "$exp" "$now" "$L1" >"$P/a/delta2.txt"
CADB="$P/a/delta1.txt" DELTA_BASE="DER:02:01:02" \
    ca_a -gencrl -crlexts delta_ext -out "$P/a/delta3.pem" >>"$TMP/pki.log" 2>&1
CADB="$P/a/delta2.txt" DELTA_BASE="DER:02:01:02" \
    ca_a -gencrl -crlexts delta_ext -out "$P/a/delta4.pem" >>"$TMP/pki.log" 2>&1
expect_out "delta CRL carries deltaCRLIndicator and removeFromCRL" 'Remove From CRL' \
    bash -c "openssl crl -in \"$P/a/delta3.pem\" -noout -text | grep -E 'Delta CRL|Remove From CRL'"
expect_rc "import-crl: delta before any full CRL refused" 1 ctl2 import-crl A "$P/a/delta3.pem"
expect_rc "import-crl: delta CRL" 0 ctl3 import-crl A "$P/a/delta3.pem"
expect_out "delta: removeFromCRL released the hold" '^good$' \
    bash -c "\"$CTL\" -d \"$TMP/store3\" status A $L4 | cut -d' ' -f2"
expect_out "delta: certificateHold put on hold" "^$L2 hold certificateHold " ctl3 status A "$L2"
expect_out "delta: crl_number advanced, full CRL times kept" '^A .*crl_number=3 ' \
    ctl3 issuer list
expect_rc "EID-07: delta removeFromCRL of a revoked serial refused (exit 3)" 3 \
    ctl3 import-crl A "$P/a/delta4.pem"
expect_out "EID-07: still revoked after the delta" "^$L1 revoked keyCompromise " \
    ctl3 status A "$L1"
expect_rc "import-crl: the delta's base CRL again (older number) refused" 1 \
    ctl3 import-crl A "$P/a/crl2.pem"
sleep 1
ca_a -gencrl -crlexts crl_ext -out "$P/a/crl5.pem" >>"$TMP/pki.log" 2>&1
expect_rc "import-crl: the next full CRL" 0 ctl3 import-crl A "$P/a/crl5.pem"
expect_out "full CRL: a hold it does not list is released" "^$L2 good " ctl3 status A "$L2"
expect_out "full CRL: its hold is back" "^$L4 hold certificateHold " ctl3 status A "$L4"
"$CTL" -d "$TMP/store3" export >"$TMP/export3.jsonl" 2>/dev/null
expect_rc "export store3: imports journalled" 0 python3 -c '
import json,sys
j=[json.loads(l)["entry"] for l in sys.stdin if json.loads(l)["type"]=="journal"]
imp=[e for e in j if e.get("op")=="import-crl"]
assert len(imp)==5, len(imp)
assert sum(e["refused"] for e in imp)==1
assert any(e["crl"]["delta"] for e in imp)
' <"$TMP/export3.jsonl"

# A partition CRL (RFC 5280 §5.2.5: IDP with a distributionPoint) lists only its part: holds
# it does not list stay. Made from a database without L4's hold.
next_of() { date -u -d "$(openssl crl -in "$1" -noout -nextupdate | sed 's/^nextUpdate=//')" \
    +%Y%m%d%H%M%SZ; }
printf 'R\t%s\t%s,superseded\t%s\tunknown\t/CN=leaf 3\n' "$exp" "$now" "$L3" >"$P/a/part.txt"
sleep 1
CADB="$P/a/part.txt" ca_a -gencrl -crlexts idp_ext -out "$P/a/crl6.pem" >>"$TMP/pki.log" 2>&1
expect_out "partition CRL carries an IDP distributionPoint" 'partition1' \
    bash -c "openssl crl -in \"$P/a/crl6.pem\" -noout -text"
expect_rc "import-crl: partition CRL" 0 ctl3 import-crl A "$P/a/crl6.pem"
expect_out "partition CRL: a hold it does not list stays" "^$L4 hold certificateHold " \
    ctl3 status A "$L4"
full_next=$(next_of "$P/a/crl6.pem")
# STS-12: a delta due before the full CRL bounds the issuer's nextUpdate; a later one does not.
CADB="$P/a/part.txt" DELTA_BASE="DER:02:01:06" \
    ca_a -gencrl -crlhours 1 -crlexts delta_ext -out "$P/a/delta7.pem" >>"$TMP/pki.log" 2>&1
CADB="$P/a/part.txt" DELTA_BASE="DER:02:01:06" \
    ca_a -gencrl -crldays 3 -crlexts delta_ext -out "$P/a/delta8.pem" >>"$TMP/pki.log" 2>&1
expect_rc "import-crl: delta due in an hour" 0 ctl3 import-crl A "$P/a/delta7.pem"
expect_out "STS-12: crl_next_update is the delta's" \
    "^A .*crl_number=7 .*crl_next_update=$(next_of "$P/a/delta7.pem")\$" ctl3 issuer list
expect_rc "import-crl: delta due in three days" 0 ctl3 import-crl A "$P/a/delta8.pem"
expect_out "STS-12: crl_next_update back to the full CRL's (the earlier)" \
    "^A .*crl_number=8 .*crl_next_update=$full_next\$" ctl3 issuer list
# A CRL dated ahead of this clock (more than 5 minutes) is refused.
ca_a -gencrl -crl_lastupdate "$(date -u -d '+1 day' +%Y%m%d%H%M%SZ)" -crlexts crl_ext \
    -out "$P/a/crl9.pem" >>"$TMP/pki.log" 2>&1
expect_msg "import-crl: thisUpdate a day ahead refused" 1 'thisUpdate is in the future' \
    ctl3 import-crl A "$P/a/crl9.pem"
expect_out "import-crl: the future CRL changed nothing" '^A .*crl_number=8 ' ctl3 issuer list
ca_a -gencrl -crl_lastupdate "$(date -u -d '+2 minutes' +%Y%m%d%H%M%SZ)" -crlexts crl_ext \
    -out "$P/a/crl10.pem" >>"$TMP/pki.log" 2>&1
expect_rc "import-crl: thisUpdate 2 minutes ahead accepted (clock skew)" 0 \
    ctl3 import-crl A "$P/a/crl10.pem"

# ---- presign (software key, no token) ----

# More serials than one presign chunk (1024), so the walk is resumed twice; every serial is
# signed exactly once per CertID form, and signing a chunk holds no read transaction, so a
# re-presign reuses the pages it frees instead of growing the file.
S4="$TMP/store4"
printf '[store]\npath = %s\nmap_size = 64M\n' "$S4" >"$TMP/store4.conf"
ctl4() { "$CTL" -c "$TMP/store4.conf" "$@"; }
pages_used() { mdb_stat -e "$S4" | sed -n 's/^ *Number of pages used: //p'; }
expect_rc "store4: init" 0 ctl4 init
expect_rc "store4: issuer A with the CA key" 0 ctl4 issuer add A --cert "$P/a/ca.pem" \
    --key-file "$P/a/ca.key"
# shellcheck disable=SC2046
expect_rc "store4: 2500 serials" 0 ctl4 add A $(seq -f '%.0f' 100000 102499)
expect_rc "store4: 3 serials of expired certificates" 0 ctl4 add A 300001 300002 300003 \
    --not-after 20200101000000Z
ctl4 presign A >"$TMP/presign4.out" 2>"$TMP/presign4.err"
expect_out "presign: 5000 responses (SHA-1 and SHA-256 CertIDs), none for the expired" '^5000$' \
    cat "$TMP/presign4.out"
expect_out "presign: the 3 expired certificates skipped (signed on demand)" \
    'presign: 3 expired certificate\(s\) skipped' cat "$TMP/presign4.err"
expect_out "presign: 5000 stored" '^ *Entries: 5000$' mdb_stat -s responses "$S4"
# a first presign writes each chunk in key order, appended: its leaf pages are filled, not
# split half-full (bytes of keys, values and node headers over the leaf pages' room)
leaf_fill() {
    local leaves
    leaves=$(mdb_stat -s responses "$S4" | sed -n 's/^ *Leaf pages: //p')
    mdb_dump -s responses "$S4" | awk -v leaves="$leaves" '
        /^ / { n++; b += (length($0) - 1) / 2 }
        END { entries = n / 2; printf "%d\n", 100 * (b + 10 * entries) / (leaves * 4080) }'
}
pages1=$(pages_used)
fill=$(leaf_fill)
expect_rc "presign: leaf pages of a first presign at least 90% full ($fill%)" 0 test "$fill" -ge 90
# values of one size per CertID form (same serial length, all good): an ECDSA signature's DER
# varies by a byte or two, and the stored answer is padded to the longest, so a re-signed
# answer overwrites its old value in place
value_sizes() {
    mdb_dump -s responses "$S4" | awk '/^ / { n++; if (n % 2) k = $0; else
        s[substr(k, length(k) - 1) " " length($0)] = 1 } END { for (x in s) print x }' | sort
}
expect_out "presign: one value size per CertID form (padded signatures)" '^2$' \
    echo "$(value_sizes | wc -l)"
ctl4 presign A >/dev/null 2>&1
ctl4 presign A >/dev/null 2>&1
pages3=$(pages_used)
expect_out "re-presign: still one value size per CertID form" '^2$' \
    echo "$(value_sizes | wc -l)"
# The pages a chunk's commit frees are reused only once no snapshot holds them, and the next
# chunk is read while the last one commits, so the file grows by what the chunks in flight hold
# and then stops: 785 -> 832..918 pages after two more presigns and no more after six, from run
# to run as the commits and reads overlap. Without the reuse each presign would add about the
# whole first one (+100 %), so four more are held to 30 % in all.
ctl4 presign A >/dev/null 2>&1
ctl4 presign A >/dev/null 2>&1
pages5=$(pages_used)
expect_rc "presign four times more: the file grew at most 30% ($pages1 -> $pages3 -> $pages5 pages)" 0 \
    test "$((pages5 * 100))" -le "$((pages1 * 130))"

# A short signer queue: presign keeps at most half of it in flight and, once full, waits until
# half of that is left before it submits again (one wake-up per refill, not per answer): with
# queue_max 1 (1 in flight: it used to keep 2, and the signer refused the second, which was
# dropped uncounted), 3 (1, refilled at 0) and 7 (3, refilled at 1), every answer is still
# signed and stored, and the presign ends.
for q in 1 3 7; do
    S5="$TMP/store5-$q"
    printf '[store]\npath = %s\nmap_size = 64M\n[signer]\nqueue_max = %s\n' "$S5" "$q" \
        >"$TMP/store5-$q.conf"
    ctl5() { "$CTL" -c "$TMP/store5-$q.conf" "$@"; }
    ctl5 init >/dev/null 2>&1
    ctl5 issuer add A --cert "$P/a/ca.pem" --key-file "$P/a/ca.key" >/dev/null 2>&1
    # shellcheck disable=SC2046
    ctl5 add A $(seq -f '%.0f' 200000 200299) >/dev/null 2>&1
    expect_out "presign with queue_max $q: 600 responses" '^600$' timeout 120 "$CTL" \
        -c "$TMP/store5-$q.conf" presign A
    expect_out "presign with queue_max $q: 600 stored" '^ *Entries: 600$' \
        mdb_stat -s responses "$S5"
done

t_summary test_ocspctl
