#!/usr/bin/env bash
# test_ocspd_crl: a CRL-fed issuer in ocspd (STS-12, RFC 6960 §2.3/§2.4) and the SHA-384/512
# CertID forms (OCSP-11):
#   - status from an imported CRL: listed -> revoked with the CRL's reason, absent -> good
#     (issuer with --unissued good: no issued-serial knowledge, the CRL is the whole truth)
#   - thisUpdate of the answer = the CRL's thisUpdate; nextUpdate never beyond the CRL's
#   - once the CRL is past its nextUpdate: tryLater, never the stale status (STS-12, OCSP-04)
#   - a fresh CRL brings answers back, without restarting ocspd
#   - SHA-384 and SHA-512 CertIDs are answered and echoed
#   - before any CRL, --unissued good does not apply: an unknown serial is revoked (OCSP-13)
#   - many CRL imports (each changes the issuer's CRL times) keep the issuer served
#   - a delegated responder certificate that expires: tryLater and /healthz 503, never answers
#     that would not verify; nextUpdate never beyond the responder certificate
# A software CA and `openssl ca` make the CRLs; ocspd runs with a software key.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
. tests/lib/common.sh

TMP=$(mktemp -d)
cleanup() {
    cleanup_tracked
    rm -rf "$TMP"
}
trap cleanup EXIT

# ---- a CA managed with `openssl ca`, two leaves, one revoked ----
mkdir -p "$TMP/ca/new"
: >"$TMP/ca/index.txt"
echo 1000 >"$TMP/ca/crlnumber"
echo 01 >"$TMP/ca/serial"
cat >"$TMP/ca.cnf" <<CNF
[ca]
default_ca = crlca
[crlca]
dir = $TMP/ca
database = \$dir/index.txt
new_certs_dir = \$dir/new
crlnumber = \$dir/crlnumber
serial = \$dir/serial
certificate = $TMP/ca.pem
private_key = $TMP/ca.key
default_md = sha256
default_days = 365
policy = any
unique_subject = no
crl_extensions = crlext
[any]
commonName = supplied
[crlext]
authorityKeyIdentifier = keyid:always
[v3ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = CA:false
keyUsage = digitalSignature
CNF
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/ca.key" \
    -out "$TMP/ca.pem" -subj "/CN=Demo CRL CA/O=Demo QTSP SRL/C=RO" -days 30 \
    -config "$TMP/ca.cnf" -extensions v3ca 2>/dev/null || die "CA"
for n in good revoked; do
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/$n.key" \
        -out "$TMP/$n.csr" -subj "/CN=$n" 2>/dev/null || die "csr $n"
    openssl ca -batch -config "$TMP/ca.cnf" -extensions leaf -in "$TMP/$n.csr" \
        -out "$TMP/$n.pem" 2>/dev/null || die "issue $n"
done
openssl ca -config "$TMP/ca.cnf" -revoke "$TMP/revoked.pem" -crl_reason superseded \
    2>/dev/null || die "revoke"
gencrl() { # gencrl OUT SECONDS
    openssl ca -batch -config "$TMP/ca.cnf" -gencrl -crlsec "$2" -out "$1" 2>/dev/null
}
gencrl "$TMP/short.crl" 6 || die "crl"

# ---- store and ocspd ----
ctl() { "$BUILD/ocspctl" -d "$TMP/store" -u test "$@"; }
ctl init >/dev/null 2>&1 || die "init"
ctl issuer add crlca --cert "$TMP/ca.pem" --key-file "$TMP/ca.key" --unissued good \
    >/dev/null 2>&1 || die "issuer add"
port=$(free_port)
cat >"$TMP/ocspd.conf" <<CONF
[server]
listen = 127.0.0.1:$port
[store]
path = $TMP/store
map_size = 64M
[log]
level = info
CONF
"$BUILD/ocspd" -c "$TMP/ocspd.conf" >"$TMP/ocspd.log" 2>&1 &
track_pid $!
wait_http "http://127.0.0.1:$port/healthz" 10 || die "ocspd did not start"
URL="http://127.0.0.1:$port/"

# before any CRL the issuer has no source for "not revoked": --unissued good must not apply
openssl ocsp -url "$URL" -CAfile "$TMP/ca.pem" -no_nonce -issuer "$TMP/ca.pem" \
    -serial 0x7777777777 >"$TMP/nocrl.out" 2>&1
if grep -q ": revoked" "$TMP/nocrl.out"; then
    t_ok "no CRL yet: an unknown serial is revoked, not good (OCSP-13)"
else
    t_fail "no CRL yet: an unknown serial is revoked, not good (OCSP-13)" "$(cat "$TMP/nocrl.out")"
fi
t_check "import-crl of a fresh CRL" ctl import-crl crlca "$TMP/short.crl"
sleep 0.6 # the refresher takes in the new CRL times within a quarter of a second

q() { # q NAME [openssl ocsp options]: query, keep -resp_text output in $TMP/NAME.out
    local name=$1
    shift
    openssl ocsp -url "$URL" -CAfile "$TMP/ca.pem" -resp_text -no_nonce "$@" \
        -respout "$TMP/$name.der" >"$TMP/$name.out" 2>&1
}

q good -issuer "$TMP/ca.pem" -cert "$TMP/good.pem"
has "not on the CRL -> good (CRL-fed issuer)" "$TMP/good.out" "good.pem: good"
has "response verifies" "$TMP/good.out" "Response verify OK"
q revoked -issuer "$TMP/ca.pem" -cert "$TMP/revoked.pem"
has "on the CRL -> revoked" "$TMP/revoked.out" "revoked.pem: revoked"
has "with the CRL's reason" "$TMP/revoked.out" "Reason: superseded"
crl_this=$(openssl crl -in "$TMP/short.crl" -noout -lastupdate | cut -d= -f2)
crl_next=$(openssl crl -in "$TMP/short.crl" -noout -nextupdate | cut -d= -f2)
has "thisUpdate is the CRL's thisUpdate" "$TMP/good.out" "This Update: $crl_this"
has "nextUpdate is not beyond the CRL's nextUpdate" "$TMP/good.out" "Next Update: $crl_next"

for h in sha384 sha512; do
    q "$h" "-$h" -issuer "$TMP/ca.pem" -cert "$TMP/revoked.pem"
    has "$h CertID answered (OCSP-11)" "$TMP/$h.out" "revoked.pem: revoked"
    has "$h CertID echoed" "$TMP/$h.out" "Hash Algorithm: $h"
done

# ---- the CRL goes stale: tryLater, never the old status ----
sleep_until=$(( $(date -d "$crl_next" +%s) + 1 ))
while [ "$(date +%s)" -lt "$sleep_until" ]; do sleep 0.5; done
q stale -issuer "$TMP/ca.pem" -cert "$TMP/good.pem"
has "CRL past nextUpdate -> tryLater (STS-12)" "$TMP/stale.out" "trylater \(3\)"
q stale2 -issuer "$TMP/ca.pem" -cert "$TMP/revoked.pem"
has "also for a revoked serial" "$TMP/stale2.out" "trylater \(3\)"
code=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' -D "$TMP/stale.h" \
    -H 'Content-Type: application/ocsp-request' --data-binary @<(openssl ocsp -issuer \
    "$TMP/ca.pem" -cert "$TMP/good.pem" -no_nonce -reqout - 2>/dev/null) "$URL")
if [ "$code" = "200 application/ocsp-response" ] && grep -qi '^Cache-Control: no-cache' \
    "$TMP/stale.h"; then
    t_ok "tryLater is an unsigned, uncacheable OCSPResponse"
else
    t_fail "tryLater is an unsigned, uncacheable OCSPResponse" "$code"
fi
# presign over the stale issuer signs nothing (each chunk's set of answers is empty): it
# stores none and exits 0, with no undefined behaviour (an empty set is never sorted from NULL:
# a sanitizer build, BUILD=build-asan, aborts on that)
out=$("$BUILD/ocspctl" -c "$TMP/ocspd.conf" -u test presign crlca 2>"$TMP/presign-stale.err")
rc=$?
if [ "$rc" = 0 ] && [ "$out" = 0 ]; then
    t_ok "presign of a stale CRL-fed issuer: nothing signed, exit 0"
else
    t_fail "presign of a stale CRL-fed issuer: nothing signed, exit 0" \
        "exit $rc, out '$out': $(tail -n 3 "$TMP/presign-stale.err" | tr "\n" " ")"
fi

# ---- a fresh CRL: answers come back without a restart ----
gencrl "$TMP/fresh.crl" 3600 || die "crl"
t_check "import-crl of the next CRL" ctl import-crl crlca "$TMP/fresh.crl"
ok=0
for _ in $(seq 1 20); do
    q fresh -issuer "$TMP/ca.pem" -cert "$TMP/good.pem"
    if grep -q "good.pem: good" "$TMP/fresh.out"; then ok=1; break; fi
    sleep 0.25
done
if [ "$ok" = 1 ]; then t_ok "fresh CRL -> good again, no restart"; else
    t_fail "fresh CRL -> good again, no restart" "$(cat "$TMP/fresh.out")"; fi
t_check "an older CRL is refused" bash -c "! '$BUILD/ocspctl' -d '$TMP/store' import-crl crlca '$TMP/short.crl' 2>/dev/null"

# ---- 70 more CRLs (more than the 64 issuer slots): still served, fresh times used ----
imports=0
for i in $(seq 1 70); do
    gencrl "$TMP/n.crl" 7200 && ctl import-crl crlca "$TMP/n.crl" >/dev/null 2>&1 &&
        imports=$((imports + 1))
done
expect_eq() { if [ "$2" = "$3" ]; then t_ok "$1"; else t_fail "$1" "got '$2', want '$3'"; fi; }
expect_eq "70 CRL imports" "$imports" 70
sleep 0.6
q many -issuer "$TMP/ca.pem" -cert "$TMP/good.pem"
has "after 70 CRL imports the issuer is still served" "$TMP/many.out" "good.pem: good"
last_next=$(openssl crl -in "$TMP/n.crl" -noout -nextupdate | cut -d= -f2)
has "with the last CRL's nextUpdate" "$TMP/many.out" "Next Update: $last_next"

# ---- a delegated responder certificate that expires ----
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/dlg.key" \
    -out "$TMP/dlg.csr" -subj "/CN=short-lived responder" 2>/dev/null || die "dlg csr"
cat >>"$TMP/ca.cnf" <<CNF
[responder]
basicConstraints = CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
CNF
end=$(date -u -d '+8 seconds' +%Y%m%d%H%M%SZ)
openssl ca -batch -config "$TMP/ca.cnf" -extensions responder -enddate "$end" \
    -in "$TMP/dlg.csr" -out "$TMP/dlg.pem" 2>/dev/null || die "dlg cert"
t_check "issuer switched to a delegated responder" ctl issuer add crlca --cert "$TMP/ca.pem" \
    --key-file "$TMP/dlg.key" --signer-cert "$TMP/dlg.pem"
sleep 0.6
q dlg -issuer "$TMP/ca.pem" -cert "$TMP/revoked.pem"
has "answered by the delegate" "$TMP/dlg.out" "revoked.pem: revoked"
has "and it verifies" "$TMP/dlg.out" "Response verify OK"
dlg_end=$(openssl x509 -in "$TMP/dlg.pem" -noout -enddate | cut -d= -f2)
has "nextUpdate not beyond the responder certificate" "$TMP/dlg.out" "Next Update: $dlg_end"
until_s=$(( $(date -d "$dlg_end" +%s) + 1 ))
while [ "$(date +%s)" -lt "$until_s" ]; do sleep 0.5; done
q expired -issuer "$TMP/ca.pem" -cert "$TMP/revoked.pem"
has "responder certificate expired -> tryLater, no answer that would not verify" \
    "$TMP/expired.out" "trylater \(3\)"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")
expect_eq "and /healthz is 503" "$code" 503
t_summary test_ocspd_crl
