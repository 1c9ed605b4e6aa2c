#!/usr/bin/env bash
#
# test_ocspd_hostile.sh: hostile and malformed input against a real ocspd (own temp dir, demo
# PKI, SoftHSM2 token, LMDB store and port), each followed by a liveness check (a nonce
# request signed on demand must still be answered "good"). RFC 6960 §2.3, §4.1, §4.4.1,
# App. A; RFC 9654 §2.1; RFC 9919 §7; STANDARDS OCSP-03, OCSP-10, OCSP-17, OCSP-23, OCSP-24,
# OCSP-27, LW-04:
#   - empty POST, random bytes, truncated DER, a trailing byte, BER (non-minimal) lengths, a
#     huge claimed length, an explicit v1 version, v2 -> malformedRequest (unsigned, no-cache);
#   - body over max_body -> 413 (Content-Length) or the connection cut (chunked);
#   - GET with bad base64, a long bad path, a path over the URL limit (414);
#   - 9 CertIDs (> max_certids 8) and 17 (> the parser's 16) -> malformedRequest; 8 answered;
#   - unknown critical request / single-request extension -> malformedRequest, non-critical
#     ignored; nonce of 0 and 129 octets -> malformedRequest, 1/16/32/128 echoed; a signed
#     request and a requestorName are answered as if absent;
#   - wrong Content-Type (415), wrong method (405);
#   - 50 parallel requests (POST with nonce and GET) all answered.
# Requests are built by the DER writer tests/lib/derutil.py (ocsp-mkreq).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd_hostile

# ---- start ----
itest_ocsp_setup

# Base requests made by openssl: good.pem with a nonce, good.pem + revoked.pem without.
openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -reqout "$TMP/good.req" >/dev/null 2>&1
openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -cert "$OCSP_REVOKED_CERT" -no_nonce \
    -reqout "$TMP/two.req" >/dev/null 2>&1
openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -no_nonce -reqout "$TMP/one.req" \
    >/dev/null 2>&1
mk() { derutil ocsp-mkreq "$@"; }

# post NAME FILE [curl args...]: POST FILE; NAME.body / NAME.hdr; prints the HTTP code
post() {
    local tag=$1 file=$2
    shift 2
    curl -s --max-time 20 -D "$TMP/$tag.hdr" -o "$TMP/$tag.body" -w '%{http_code}' \
        -H 'Content-Type: application/ocsp-request' --data-binary @"$file" "$@" "$URL/"
}
body_hex() { od -An -tx1 "$TMP/$1.body" 2>/dev/null | tr -d ' \n'; }
kv() {
    derutil ocsp-resp "$TMP/$1.body" 2>/dev/null | sed -n "s/^$2=//p" | head -n 1
}

# alive AFTER: ocspd still runs and answers a request it must sign now (nonce) with "good"
alive() {
    local code
    code=$(post alive "$TMP/good.req")
    if kill -0 "$OCSPD_PID" 2>/dev/null && [[ $code == 200 && $(kv alive single.0.status) == good ]]; then
        t_ok "alive after $1"
    else
        t_fail "alive after $1" "HTTP $code, status '$(kv alive single.0.status)'"
    fi
}

# malformed NAME FILE: POST -> 200, unsigned malformedRequest, Cache-Control: no-cache
malformed() {
    local code
    code=$(post m "$2")
    if [[ $code == 200 && $(body_hex m) == 30030a0101 ]] &&
        grep -qi '^Cache-Control: *no-cache' "$TMP/m.hdr"; then
        t_ok "$1 -> malformedRequest (OCSP-03)"
    else
        t_fail "$1 -> malformedRequest" "HTTP $code, body $(body_hex m | cut -c1-40)"
    fi
    alive "$1"
}

# answered NAME FILE STATUS...: POST -> successful response with these single statuses
answered() {
    local name=$1 file=$2 code got want
    shift 2
    code=$(post a "$file")
    want="200 $*"
    got="$code"
    for ((i = 0; i < $#; i++)); do got+=" $(kv a "single.$i.status")"; done
    expect "$name -> answered" "$got" "$want"
}

# ---- undecodable bodies (OCSP-03) ----
: >"$TMP/empty"
malformed "empty POST" "$TMP/empty"
head -c 300 /dev/urandom >"$TMP/random"
malformed "300 random bytes" "$TMP/random"
printf '\x30' >"$TMP/one-byte"
malformed "a lone SEQUENCE tag" "$TMP/one-byte"
len=$(stat -c %s "$TMP/good.req")
head -c $((len - 7)) "$TMP/good.req" >"$TMP/trunc"
malformed "truncated request" "$TMP/trunc"
{ cat "$TMP/good.req"; printf '\x00'; } >"$TMP/trailing"
malformed "request with a trailing byte" "$TMP/trailing"
mk "$TMP/trailing2.req" "$TMP/one.req" trailing=1
malformed "request with a trailing byte (built)" "$TMP/trailing2.req"
# outer SEQUENCE length in long form with a needless extra octet (BER, not DER)
derutil ber-longlen "$TMP/one.req" "$TMP/ber.req"
malformed "BER non-minimal length" "$TMP/ber.req"
printf '\x30\x84\x7f\xff\xff\xff\x30\x00' >"$TMP/huge-len"
malformed "claimed length of 2 GiB" "$TMP/huge-len"
# v1 written out although DEFAULT (BER, not DER): unambiguous, OpenSSL's template keeps it as
# OPTIONAL and it re-encodes identically, so it is answered (documented leniency)
mk "$TMP/v1.req" "$TMP/one.req" version=0
answered "version v1 encoded explicitly" "$TMP/v1.req" good
mk "$TMP/v2.req" "$TMP/one.req" version=1
malformed "version v2" "$TMP/v2.req"
printf '\x30\x03\x30\x01\x30' >"$TMP/nested"
malformed "nested garbage" "$TMP/nested"

# ---- sizes (OCSP-27) ----
head -c 9000 /dev/zero >"$TMP/big"
code=$(post big "$TMP/big")
expect "body over max_body (8k, Content-Length) -> 413" "$code" 413
alive "an oversized body"
code=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' \
    -H 'Content-Type: application/ocsp-request' --data-binary @"$TMP/big" "$URL/")
if [[ $code != 200 ]]; then
    t_ok "chunked body over max_body refused (HTTP $code: 413 or connection cut)"
else
    t_fail "chunked body over max_body refused" "HTTP 200"
fi
alive "an oversized chunked body"

# ---- GET (OCSP-02) ----
code=$(curl -s -o "$TMP/g.body" -w '%{http_code}' "$URL/@@@not*base64")
expect "GET with bad base64 -> malformedRequest" "$code $(body_hex g)" "200 30030a0101"
alive "GET with bad base64"
code=$(curl -s -o "$TMP/g.body" -w '%{http_code}' "$URL/$(head -c 3000 /dev/zero | tr '\0' A)")
expect "GET with a long path of base64 zeros -> malformedRequest" "$code $(body_hex g)" \
    "200 30030a0101"
alive "GET with a long path"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/$(head -c 20000 /dev/zero | tr '\0' A)")
expect "GET with a 20000-byte path -> 414" "$code" 414
alive "GET with a huge path"
code=$(curl -s -o "$TMP/g.body" -w '%{http_code}' "$URL/MEow%00%00%zz")
expect "GET with %00 and a bad escape -> malformedRequest" "$code $(body_hex g)" \
    "200 30030a0101"
alive "GET with bad escapes"

# ---- CertID counts (OCSP-27: max_certids 8, parser limit 16) ----
mk "$TMP/c8.req" "$TMP/two.req" copies=8
answered "8 CertIDs (max_certids)" "$TMP/c8.req" good revoked good revoked good revoked good revoked
expect "8 CertIDs -> 8 SingleResponses" "$(kv a singles)" 8
mk "$TMP/c9.req" "$TMP/two.req" copies=9
malformed "9 CertIDs (> max_certids 8)" "$TMP/c9.req"
mk "$TMP/c17.req" "$TMP/two.req" copies=17
malformed "17 CertIDs (> 16)" "$TMP/c17.req"
mk "$TMP/c1000.req" "$TMP/two.req" copies=1000
code=$(post c1000 "$TMP/c1000.req")
if [[ $code == 413 || $(body_hex c1000) == 30030a0101 ]]; then
    t_ok "1000 CertIDs -> refused cheaply (HTTP $code)"
else
    t_fail "1000 CertIDs -> refused cheaply" "HTTP $code $(body_hex c1000 | cut -c1-20)"
fi
alive "1000 CertIDs"

# ---- extensions (OCSP-23) and nonces (OCSP-17, RFC 9654) ----
mk "$TMP/crit.req" "$TMP/one.req" ext=1.3.6.1.4.1.55555.99.1:1:0500
malformed "unknown CRITICAL request extension" "$TMP/crit.req"
mk "$TMP/noncrit.req" "$TMP/one.req" ext=1.3.6.1.4.1.55555.99.1:0:0500
answered "unknown non-critical request extension ignored" "$TMP/noncrit.req" good
mk "$TMP/scrit.req" "$TMP/one.req" single_ext=1.3.6.1.4.1.55555.99.2:1:0500
malformed "unknown CRITICAL singleRequestExtension" "$TMP/scrit.req"
mk "$TMP/sncrit.req" "$TMP/one.req" single_ext=1.3.6.1.4.1.55555.99.2:0:0500
answered "unknown non-critical singleRequestExtension ignored" "$TMP/sncrit.req" good
mk "$TMP/n0.req" "$TMP/one.req" nonce=0
malformed "nonce of 0 octets" "$TMP/n0.req"
mk "$TMP/n129.req" "$TMP/one.req" nonce=129
malformed "nonce of 129 octets" "$TMP/n129.req"
for n in 1 16 32 128; do
    mk "$TMP/n$n.req" "$TMP/one.req" nonce=$n
    code=$(post "n$n" "$TMP/n$n.req")
    want=$(derutil ocsp-req "$TMP/n$n.req" | sed -n 's/^ext.1.3.6.1.5.5.7.48.1.2=//p')
    got=$(derutil ocsp-resp "$TMP/n$n.body" 2>/dev/null |
        sed -n 's/^ext.1.3.6.1.5.5.7.48.1.2=//p')
    expect "nonce of $n octets echoed verbatim" "$code $got" "200 $want"
done
mk "$TMP/rawnonce.req" "$TMP/one.req" ext=1.3.6.1.5.5.7.48.1.2:0:00112233445566778899aabbccddeeff
answered "legacy nonce (raw value, not an OCTET STRING) answered" "$TMP/rawnonce.req" good
mk "$TMP/signed.req" "$TMP/one.req" signed=1
answered "request with a (bogus) signature: signature ignored (OCSP-24)" "$TMP/signed.req" good
mk "$TMP/rname.req" "$TMP/one.req" requestor=ops@example.org
answered "requestorName in an unsigned request treated as absent" "$TMP/rname.req" good

# ---- HTTP level ----
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: text/plain' \
    --data-binary @"$TMP/one.req" "$URL/")
expect "POST with Content-Type text/plain -> 415" "$code" 415
alive "a wrong Content-Type"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/ocsp-request' \
    --data-binary @"$TMP/one.req" "$URL/")
expect "PUT -> 405" "$code" 405
alive "a PUT"

# ---- 50 parallel requests (25 POST with nonces: signed now; 25 GET: pre-signed) ----
gpath=$(base64 -w0 "$TMP/one.req" | sed 's/+/%2B/g; s,/,%2F,g; s/=/%3D/g')
pids=()
for i in $(seq 1 50); do
    if ((i % 2)); then
        curl -s --max-time 30 -o "$TMP/par$i.body" -w '%{http_code}' \
            -H 'Content-Type: application/ocsp-request' --data-binary @"$TMP/good.req" "$URL/" \
            >"$TMP/par$i.code" 2>/dev/null &
    else
        curl -s --max-time 30 -o "$TMP/par$i.body" -w '%{http_code}' "$URL/$gpath" \
            >"$TMP/par$i.code" 2>/dev/null &
    fi
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
ok=0
for i in $(seq 1 50); do
    if [[ $(cat "$TMP/par$i.code" 2>/dev/null) == 200 && $(kv "par$i" single.0.status) == good ]]; then
        ok=$((ok + 1))
    fi
done
expect "50 parallel requests all answered good" "$ok" 50
alive "50 parallel requests"

code=$(curl -s -o "$TMP/metrics" -w '%{http_code}' "$URL/metrics")
if [[ $code == 200 ]] && grep -Eq '^ocsp_errors_total\{status="malformedRequest"\} [1-9]' "$TMP/metrics"; then
    t_ok "/metrics counts the malformed requests"
else
    t_fail "/metrics counts the malformed requests" "HTTP $code"
fi

# Random never-issued serials (attacker-chosen, unbounded) are answered (revoked, signed on
# demand) but never stored: they cannot grow the store or turn into durable writes.
responses_count() { mdb_stat -s responses "$STORE" 2>/dev/null | sed -n 's/^ *Entries: //p'; }
before=$(responses_count)
never_ok=0
for i in $(seq 1 20); do
    serial=$(openssl rand -hex 16)
    if openssl ocsp -issuer "$CA" -serial "0x$serial" -url "$URL/" -CAfile "$CHAIN" -no_nonce \
        2>/dev/null | grep -q ": revoked"; then
        never_ok=$((never_ok + 1))
    fi
done
expect "20 random never-issued serials answered revoked (OCSP-13)" "$never_ok" 20
after=$(responses_count)
if [[ -n $before && $before == "$after" ]]; then
    t_ok "never-issued answers are not stored (responses: $before before and after)"
else
    t_fail "never-issued answers are not stored" "responses before=$before after=$after"
fi
alive "random never-issued serials"

itest_ocspd_stop_clean
t_summary "$NAME"
