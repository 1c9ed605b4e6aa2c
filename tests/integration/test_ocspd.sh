#!/usr/bin/env bash
#
# test_ocspd.sh: ocspd end to end with real clients (openssl ocsp, curl) against its own demo
# PKI (tests/lib/ocsp-pki.sh: a CA run with `openssl ca`, a delegated responder whose key is in
# a private SoftHSM2 token), its own LMDB store filled with ocspctl from the CA's index.txt,
# on a free port, all in a private temp dir. RFC 6960 §2.2-2.3, §4.1-4.2, §4.4.1/4.4.4/4.4.8,
# App. A; RFC 9919 §5-6; RFC 9654; STANDARDS EID-05..EID-09, OCSP-01..OCSP-03, OCSP-05..OCSP-17,
# OCSP-19, OCSP-21, OCSP-25, LW-01..LW-04, LW-07, LW-08, STS-04, STS-08, STS-09:
#   - statuses: good, revoked/keyCompromise with the CA's revocation time, hold ->
#     revoked/certificateHold, expired -> status kept with archiveCutoff = CA notBefore,
#     never issued -> revoked/certificateHold/1970 + extended-revoke, other CA -> unauthorized;
#   - nonce echoed (and absent without one), SHA-1 and SHA-256 CertIDs echoed byte for byte,
#     several CertIDs in one request, a re-keyed CA answered by its own delegate;
#   - every successful response verified by openssl with the CA chain as trust anchor and the
#     delegate certificate taken from the response; DER details (no version, byKey ResponderID,
#     times) read with the DER reader tests/lib/derutil.py;
#   - GET (escaped and unescaped base64, one containing '/'), RFC 9919 caching headers, 304,
#     no-cache on errors;
#   - operator changes with ocspctl seen by the very next request (revoke, hold, release; a
#     definitive revocation cannot be released: exit 3, still revoked);
#   - /healthz and /metrics.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd

# ---- helpers ----
ctl() {
    SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/ocspctl" -c "$CONF" -d "$STORE" -u test-operator "$@"
}

# q TAG CHAIN OPENSSL_OCSP_ARGS...: POST with openssl ocsp (verifying against CHAIN). Leaves
# TAG.out (openssl's output), TAG.req, TAG.der (the response) and TAG.kv (parsed).
q() {
    local tag=$1 chain=$2
    shift 2
    rm -f "$TMP/$tag.der"
    openssl ocsp "$@" -url "$URL" -CAfile "$chain" -resp_text -reqout "$TMP/$tag.req" \
        -respout "$TMP/$tag.der" >"$TMP/$tag.out" 2>&1
    derutil ocsp-resp "$TMP/$tag.der" >"$TMP/$tag.kv" 2>/dev/null || : >"$TMP/$tag.kv"
    derutil ocsp-req "$TMP/$tag.req" >"$TMP/$tag.rkv" 2>/dev/null || : >"$TMP/$tag.rkv"
}

# ctl_exit NAME WANT ARGS...: run ocspctl ARGS (output in ctl.out); one check: it exits WANT
ctl_exit() {
    local name=$1 want=$2 rc
    shift 2
    ctl "$@" >"$TMP/ctl.out" 2>&1
    rc=$?
    if ((rc == want)); then
        t_ok "$name"
    else
        t_fail "$name" "exit $rc, want $want: $(tail -n 3 "$TMP/ctl.out" | tr '\n' ' ')"
    fi
}

kv() { kv_get "$TMP/$1.kv" "$2"; }
rkv() { kv_get "$TMP/$1.rkv" "$2"; }

# has NAME FILE ERE / hasnt NAME FILE ERE
hasnt() {
    if grep -Eq -- "$3" "$2"; then
        t_fail "$1" "unexpected /$3/ in $(basename "$2"): $(grep -E -m1 -- "$3" "$2")"
    else
        t_ok "$1"
    fi
}

# check_signed TAG SIGNER_CERT: a successful basic response, verified by openssl with the CA
# as trust anchor and the delegate from the response itself, DER as RFC 6960 §4.2 wants.
check_signed() {
    local tag=$1 signer=$2 errs="" now t next produced
    grep -q 'Response verify OK' "$TMP/$tag.out" || errs+=" openssl did not verify it;"
    [[ $(kv "$tag" status) == 0 ]] || errs+=" responseStatus $(kv "$tag" status);"
    [[ $(kv "$tag" trailing) == 0 ]] || errs+=" trailing bytes;"
    [[ $(kv "$tag" type) == 1.3.6.1.5.5.7.48.1.1 ]] || errs+=" not id-pkix-ocsp-basic (OCSP-06);"
    [[ $(kv "$tag" version_present) == 0 ]] || errs+=" version v1 encoded (OCSP-07);"
    [[ $(kv "$tag" rid) == "bykey:$(derutil keyhash "$signer")" ]] ||
        errs+=" ResponderID is not byKey of the delegate (OCSP-08);"
    [[ $(kv "$tag" certs) == 1 && $(kv "$tag" cert.0.sha256) == "$(derutil certsha256 "$signer")" ]] ||
        errs+=" delegate certificate not the one in certs (OCSP-21);"
    [[ $(kv "$tag" sigalg) == 1.2.840.10045.4.3.2 ]] || errs+=" sigalg $(kv "$tag" sigalg);"
    now=$(date -u -d '+2 seconds' +%Y%m%d%H%M%SZ)
    produced=$(kv "$tag" produced)
    t=$(kv "$tag" single.0.this)
    next=$(kv "$tag" single.0.next)
    for v in "$produced" "$t" "$next"; do
        [[ $v =~ ^[0-9]{14}Z$ ]] || errs+=" time '$v' not YYYYMMDDHHMMSSZ (OCSP-09);"
    done
    [[ ! $t > $now ]] || errs+=" thisUpdate $t in the future;"
    [[ $next > $t ]] || errs+=" nextUpdate $next not after thisUpdate $t;"
    if [[ -z $errs ]]; then
        t_ok "$tag: signed by the delegated responder, verified, well-formed (OCSP-06..09, -19, -21)"
    else
        t_fail "$tag: signed response" "$errs"
    fi
}

# status line openssl prints for a certificate: "PATH: good"
status_of() { sed -n "s|^.*/$2: ||p" "$TMP/$1.out" | head -n 1; }

# index.txt revocation time of SERIAL (UTCTime YYMMDDHHMMSSZ -> 20YYMMDDHHMMSSZ)
index_revtime() {
    awk -F'\t' -v s="$2" '$4 == s { split($3, a, ","); print "20" a[1] }' "$1"
}

# get NAME PATH [curl args...]: GET URL/PATH; NAME.body, NAME.hdr; prints the HTTP code
get() {
    local tag=$1 path=$2
    shift 2
    curl -s --path-as-is -D "$TMP/$tag.hdr" -o "$TMP/$tag.body" -w '%{http_code}' "$@" \
        "$URL/$path"
}
hdr() { sed -n "s/^$2: *//Ip" "$TMP/$1.hdr" | tr -d '\r' | head -n 1; }
b64_escape() { sed 's/+/%2B/g; s,/,%2F,g; s/=/%3D/g'; }

# ---- start: PKI, store (ocspctl), ocspd ----
itest_ocsp_setup
# [store] prefault = yes (the default): the data file's pages mapped ahead in the background
for ((i = 0; i < 100; i++)); do
    grep -q 'MiB of pages mapped ahead' "$TMP/ocspd.log" && break
    sleep 0.1
done
mapped=$(sed -n 's/.*: \([0-9.]*\) MiB of pages mapped ahead in .*/\1/p' "$TMP/ocspd.log" | tail -n 1)
# all of the data file as it was then (it may have grown by a page or two since; the log
# rounds to 0.1 MiB)
if awk -v m="${mapped:-0}" -v b="$(stat -c %s "$STORE/data.mdb")" \
    'BEGIN { r = 52429; exit !(m > 0 && m * 1048576 >= 0.9 * b - r && m * 1048576 <= b + r) }'; then
    t_ok "ocspd maps the store's data file ahead at start ([store] prefault): $mapped MiB"
else
    t_fail "ocspd maps the store's data file ahead at start ([store] prefault)" \
        "mapped '$mapped' MiB, data.mdb $(stat -c %s "$STORE/data.mdb") bytes"
fi

# ---- statuses (OCSP-12, OCSP-13, OCSP-15, OCSP-25, EID-06, EID-08) ----
q good "$CHAIN" -issuer "$CA" -cert "$OCSP_GOOD_CERT"
expect "good.pem -> good" "$(status_of good good.pem)" good
check_signed good "$SIGNER"
expect "nonce echoed verbatim in responseExtensions (OCSP-17)" \
    "$(kv good ext.1.3.6.1.5.5.7.48.1.2)" "$(rkv good ext.1.3.6.1.5.5.7.48.1.2)"
hasnt "openssl accepts the nonce" "$TMP/good.out" 'WARNING: no nonce|Nonce Verify error'
expect "CertID echoed byte for byte (OCSP-10)" "$(kv good single.0.certid)" "$(rkv good certid.0)"
# EID-09: a certificate names its status service (AIA id-ad-ocsp), which answers at that URL
aia=$(openssl x509 -noout -ocsp_uri -in "$OCSP_GOOD_CERT" 2>/dev/null)
expect "AIA OCSP URL of good.pem is the one the CA was set up with (EID-09)" "$aia" "$OCSP_AIA_URL"
if [[ $aia == "$URL" ]]; then
    openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -url "$aia" -CAfile "$CHAIN" -no_nonce \
        >"$TMP/aia.out" 2>&1
    has "openssl ocsp at the AIA URL of good.pem: good (EID-09)" "$TMP/aia.out" 'good\.pem: good'
else
    t_ok "AIA URL query skipped: ocspd had to move to another port than the CA's AIA URL"
fi
expect "responseExtensions: nonce only, no extended-revoke for a good cert (LW-07)" \
    "$(kv good ext)" 1.3.6.1.5.5.7.48.1.2

q good-nn "$CHAIN" -issuer "$CA" -cert "$OCSP_GOOD_CERT" -no_nonce
expect "good.pem without nonce -> good" "$(status_of good-nn good.pem)" good
check_signed good-nn "$SIGNER"
expect "no nonce asked, none answered" "$(kv good-nn ext)" ""

q revoked "$CHAIN" -issuer "$CA" -cert "$OCSP_REVOKED_CERT" -no_nonce
expect "revoked.pem -> revoked" "$(status_of revoked revoked.pem)" revoked
check_signed revoked "$SIGNER"
expect "revoked.pem reason keyCompromise (OCSP-15)" "$(kv revoked single.0.reason)" 1
has "openssl prints the reason" "$TMP/revoked.out" 'Reason: keyCompromise'
expect "revoked.pem revocationTime = the CA's (index.txt)" "$(kv revoked single.0.revtime)" \
    "$(index_revtime "$OCSP_CA_INDEX" "$OCSP_REVOKED_SERIAL")"

q hold "$CHAIN" -issuer "$CA" -cert "$OCSP_HOLD_CERT" -no_nonce
expect "hold.pem -> revoked (EID-08)" "$(status_of hold hold.pem)" revoked
check_signed hold "$SIGNER"
expect "hold.pem reason certificateHold" "$(kv hold single.0.reason)" 6

q expired "$CHAIN" -issuer "$CA" -cert "$OCSP_EXPIRED_CERT" -no_nonce
expect "expired.pem keeps its status: good (EID-06)" "$(status_of expired expired.pem)" good
check_signed expired "$SIGNER"
expect "expired.pem archiveCutoff = CA notBefore (OCSP-25, STS-09)" \
    "$(kv expired single.0.archive_cutoff)" "$OCSP_CA_NOT_BEFORE"
expect "archiveCutoff is the only singleExtension, not critical" \
    "$(kv expired single.0.ext.1.3.6.1.5.5.7.48.1.6 | cut -d: -f1),$(kv expired single.0.ext)" \
    "0,1.3.6.1.5.5.7.48.1.6"
has "openssl prints the archive cutoff" "$TMP/expired.out" 'Archive Cutoff'
expect "a current certificate has no archiveCutoff" "$(kv good single.0.ext)" ""

q never "$CHAIN" -issuer "$CA" -cert "$OCSP_NEVER_ISSUED_CERT" -no_nonce
expect "never-issued.pem -> revoked, never good (OCSP-13)" \
    "$(status_of never never-issued.pem)" revoked
check_signed never "$SIGNER"
expect "never-issued: reason certificateHold" "$(kv never single.0.reason)" 6
expect "never-issued: revocationTime 1970-01-01" "$(kv never single.0.revtime)" 19700101000000Z
expect "never-issued: extended-revoke in responseExtensions, NULL, not critical (OCSP-14)" \
    "$(kv never ext.1.3.6.1.5.5.7.48.1.9)" "0:0500"
expect "never-issued: no singleExtensions (no CRL references)" "$(kv never single.0.ext)" ""

q other "$OCSP_OTHER_CA_CERT" -issuer "$OCSP_OTHER_CA_CERT" -cert "$OCSP_OTHER_CERT" -no_nonce
has "a certificate of a CA not served -> unauthorized (OCSP-05)" "$TMP/other.out" \
    'Responder Error: unauthorized \(6\)'
expect "unauthorized is unsigned, without responseBytes (OCSP-03)" \
    "$(kv other status),$(kv other has_bytes)" "6,0"

q high "$CHAIN" -issuer "$CA" -cert "$OCSP_HIGHBIT_CERT" -no_nonce
expect "serial with its top bit set (DER leading 0x00) -> good" "$(status_of high highbit.pem)" good
check_signed high "$SIGNER"

# ---- CertID forms, several CertIDs, a re-keyed CA (OCSP-10, OCSP-11, OCSP-21) ----
q sha256 "$CHAIN" -sha256 -issuer "$CA" -cert "$OCSP_GOOD_CERT" -no_nonce
expect "SHA-256 CertID -> good (OCSP-11)" "$(status_of sha256 good.pem)" good
check_signed sha256 "$SIGNER"
expect "SHA-256 CertID echoed" "$(kv sha256 single.0.hashalg),$(kv sha256 single.0.certid)" \
    "2.16.840.1.101.3.4.2.1,$(rkv sha256 certid.0)"
q sha256n "$CHAIN" -sha256 -issuer "$CA" -cert "$OCSP_REVOKED_CERT"
expect "SHA-256 CertID with a nonce (signed on demand) -> revoked" \
    "$(status_of sha256n revoked.pem),$(kv sha256n single.0.reason)" "revoked,1"
hasnt "SHA-256 + nonce: nonce verified" "$TMP/sha256n.out" 'WARNING: no nonce|Nonce Verify error'

q multi "$CHAIN" -issuer "$CA" -cert "$OCSP_GOOD_CERT" -cert "$OCSP_REVOKED_CERT" \
    -cert "$OCSP_HOLD_CERT" -cert "$OCSP_NEVER_ISSUED_CERT"
check_signed multi "$SIGNER"
expect "four CertIDs -> four SingleResponses in order (OCSP-10)" \
    "$(kv multi singles):$(kv multi single.0.status),$(kv multi single.1.status),$(kv multi single.2.status),$(kv multi single.3.status)" \
    "4:good,revoked,revoked,revoked"
expect "four CertIDs echoed" \
    "$(kv multi single.0.certid)$(kv multi single.1.certid)$(kv multi single.2.certid)$(kv multi single.3.certid)" \
    "$(rkv multi certid.0)$(rkv multi certid.1)$(rkv multi certid.2)$(rkv multi certid.3)"
expect "openssl reads every status" \
    "$(status_of multi good.pem),$(status_of multi revoked.pem),$(status_of multi hold.pem)" \
    "good,revoked,revoked"
expect "a never-issued serial among others still brings extended-revoke" \
    "$(kv multi ext.1.3.6.1.5.5.7.48.1.9)" "0:0500"

q rekey "$OCSP_REKEY_CA_CHAIN" -issuer "$OCSP_REKEY_CA_CERT" -cert "$OCSP_REKEY_GOOD_CERT" -no_nonce
expect "re-keyed CA (same name, new key): its certificate -> good" \
    "$(status_of rekey rekey-good.pem)" good
check_signed rekey "$OCSP_REKEY_SIGNER_CERT"
q rekey-x "$OCSP_REKEY_CA_CHAIN" -issuer "$OCSP_REKEY_CA_CERT" -cert "$OCSP_GOOD_CERT" -no_nonce
expect "old key's serial under the new key's issuerKeyHash: not issued there -> revoked" \
    "$(kv rekey-x single.0.status),$(kv rekey-x single.0.revtime)" "revoked,19700101000000Z"

# ---- HTTP: POST headers, GET forms, caching (OCSP-01, OCSP-02, LW-01..04) ----
openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -no_nonce -reqout "$TMP/post.req" >/dev/null 2>&1
code=$(curl -s -D "$TMP/post.hdr" -o "$TMP/post.body" -w '%{http_code}' \
    -H 'Content-Type: application/ocsp-request' --data-binary @"$TMP/post.req" "$URL/")
expect "POST (curl): 200 application/ocsp-response with Content-Length (OCSP-01)" \
    "$code $(hdr post Content-Type) $(hdr post Content-Length)" \
    "200 application/ocsp-response $(stat -c %s "$TMP/post.body")"
openssl ocsp -respin "$TMP/post.body" -issuer "$CA" -cert "$OCSP_GOOD_CERT" -CAfile "$CHAIN" \
    -no_nonce >"$TMP/post.out" 2>&1
has "POST (curl) response verifies: good" "$TMP/post.out" 'good\.pem: good'

openssl ocsp -issuer "$CA" -cert "$OCSP_HIGHBIT_CERT" -no_nonce -reqout "$TMP/hb.req" >/dev/null 2>&1
b64=$(base64 -w0 "$TMP/hb.req")
if [[ $b64 == */* ]]; then
    t_ok "a GET request whose base64 contains '/' (serial C0FFFFFF...)"
else
    t_fail "a GET request whose base64 contains '/'" "$b64"
fi
for form in escaped unescaped; do
    if [[ $form == escaped ]]; then path=$(b64_escape <<<"$b64"); else path=$b64; fi
    code=$(get "get-$form" "$path")
    expect "GET $form: 200 application/ocsp-response (OCSP-02)" \
        "$code $(hdr "get-$form" Content-Type)" "200 application/ocsp-response"
    openssl ocsp -respin "$TMP/get-$form.body" -issuer "$CA" -cert "$OCSP_HIGHBIT_CERT" \
        -CAfile "$CHAIN" -no_nonce >"$TMP/get-$form.out" 2>&1
    has "GET $form: verifies, good" "$TMP/get-$form.out" 'highbit\.pem: good'
    has "GET $form: verified" "$TMP/get-$form.out" 'Response verify OK'
done
etag=$(hdr get-escaped ETag)
expect "the same response for both GET forms (one cached object, LW-02)" \
    "$(hdr get-unescaped ETag)" "$etag"
cc=$(hdr get-unescaped Cache-Control)
if [[ $cc =~ max-age=([0-9]+) ]] && ((BASH_REMATCH[1] > 0 && BASH_REMATCH[1] <= 3600)) &&
    [[ $cc == *public* && $cc == *no-transform* && $cc == *must-revalidate* ]]; then
    t_ok "GET hit: Cache-Control '$cc' (LW-03)"
else
    t_fail "GET hit: Cache-Control" "'$cc'"
fi
if [[ $etag =~ ^\"[0-9a-f]{16}\"$ ]]; then
    t_ok "GET hit: strong ETag $etag"
else
    t_fail "GET hit: ETag" "'$etag'"
fi
# the stored answer is padded to its key's longest signature: none of it reaches a client
# (the body is exactly the DER, its ETag and Content-Length are the DER's)
body=$TMP/get-unescaped.body
der_len=$(openssl asn1parse -inform DER -in "$body" 2>/dev/null |
    awk 'NR == 1 { sub(/.*hl=/, ""); split($0, a, /[ =]+/); print a[1] + a[3]; exit }')
expect "GET hit: the body is the answer's DER, nothing after it (no padding)" \
    "$der_len $(hdr get-unescaped Content-Length)" "$(stat -c %s "$body") $(stat -c %s "$body")"
expect "GET hit: the ETag is the DER's (first 8 bytes of its SHA-256)" "$etag" \
    "\"$(sha256sum "$body" | cut -c1-16)\""
for h in Last-Modified Expires Date; do
    v=$(hdr get-unescaped "$h")
    if [[ -n $v ]] && date -d "$v" >/dev/null 2>&1; then t_ok "GET hit: $h: $v"; else t_fail "GET hit: $h" "'$v'"; fi
done
hasnt "GET hit: no no-cache / no-store / Pragma (LW-04)" "$TMP/get-unescaped.hdr" \
    '(no-cache|no-store|^Pragma)'
expires=$(date -u -d "$(hdr get-unescaped Expires)" +%Y%m%d%H%M%SZ 2>/dev/null)
derutil ocsp-resp "$TMP/get-unescaped.body" >"$TMP/get-unescaped.kv" 2>/dev/null
expect "Expires = nextUpdate (LW-03)" "$expires" "$(kv get-unescaped single.0.next)"
code=$(get get-304 "$b64" -H "If-None-Match: $etag")
expect "If-None-Match with that ETag -> 304 (LW-03)" "$code" 304
code=$(get get-304b "$b64" -H 'If-None-Match: "0000"')
expect "If-None-Match with another ETag -> 200" "$code" 200

openssl ocsp -issuer "$OCSP_OTHER_CA_CERT" -cert "$OCSP_OTHER_CERT" -no_nonce \
    -reqout "$TMP/other.req" >/dev/null 2>&1
code=$(curl -s -D "$TMP/err.hdr" -o "$TMP/err.body" -w '%{http_code}' \
    -H 'Content-Type: application/ocsp-request' --data-binary @"$TMP/other.req" "$URL/")
expect "unauthorized over POST: 200 application/ocsp-response, body 30 03 0a 01 06" \
    "$code $(hdr err Content-Type) $(od -An -tx1 "$TMP/err.body" | tr -d ' \n')" \
    "200 application/ocsp-response 30030a0106"
has "error response: Cache-Control: no-cache (LW-04)" "$TMP/err.hdr" '^Cache-Control: *no-cache'
hasnt "error response: no ETag" "$TMP/err.hdr" '^ETag'
code=$(get err-get "not-base64%%")
expect "GET of something that is not base64 -> malformedRequest" \
    "$code $(od -An -tx1 "$TMP/err-get.body" | tr -d ' \n')" "200 30030a0101"
has "malformedRequest: Cache-Control: no-cache" "$TMP/err-get.hdr" '^Cache-Control: *no-cache'

# ---- operator changes seen at once (EID-05, EID-07, EID-08, OCSP-16) ----
openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -no_nonce -reqout "$TMP/g.req" >/dev/null 2>&1
gpath=$(base64 -w0 "$TMP/g.req" | b64_escape)
code=$(get before "$gpath")
derutil ocsp-resp "$TMP/before.body" >"$TMP/before.kv" 2>/dev/null
expect "GET good.pem before the revocation: good (and now cached)" \
    "$code $(kv before single.0.status)" "200 good"
revt=$(date -u -d '-5 minutes' +%Y%m%d%H%M%SZ)
ctl_exit "ocspctl revoke good.pem" 0 revoke qca "$OCSP_GOOD_SERIAL" --reason keyCompromise \
    --time "$revt"
q eid05-post "$CHAIN" -issuer "$CA" -cert "$OCSP_GOOD_CERT" -no_nonce
expect "very next POST: revoked keyCompromise at --time (EID-05)" \
    "$(status_of eid05-post good.pem),$(kv eid05-post single.0.reason),$(kv eid05-post single.0.revtime)" \
    "revoked,1,$revt"
check_signed eid05-post "$SIGNER"
code=$(get eid05-get "$gpath")
derutil ocsp-resp "$TMP/eid05-get.body" >"$TMP/eid05-get.kv" 2>/dev/null
expect "very next GET of the same URL: revoked (EID-05)" \
    "$code $(kv eid05-get single.0.status)" "200 revoked"
if [[ $(hdr eid05-get ETag) != "$(hdr before ETag)" ]]; then t_ok "GET after the revocation: new ETag"; else t_fail "GET after the revocation: new ETag" "unchanged"; fi
q eid05-nonce "$CHAIN" -issuer "$CA" -cert "$OCSP_GOOD_CERT"
expect "very next POST with a nonce: revoked" "$(status_of eid05-nonce good.pem)" revoked
q eid05-sha256 "$CHAIN" -sha256 -issuer "$CA" -cert "$OCSP_GOOD_CERT" -no_nonce
expect "very next SHA-256 CertID POST: revoked" "$(status_of eid05-sha256 good.pem)" revoked

ctl_exit "ocspctl release hold.pem: exit 0" 0 release qca "$OCSP_HOLD_SERIAL"
q rel "$CHAIN" -issuer "$CA" -cert "$OCSP_HOLD_CERT" -no_nonce
expect "hold.pem released -> good (EID-08, OCSP-16)" "$(status_of rel hold.pem)" good
ctl_exit "ocspctl hold hold.pem again: exit 0" 0 hold qca "$OCSP_HOLD_SERIAL"
q rehold "$CHAIN" -issuer "$CA" -cert "$OCSP_HOLD_CERT" -no_nonce
expect "held again -> revoked certificateHold" \
    "$(status_of rehold hold.pem),$(kv rehold single.0.reason)" "revoked,6"
holdt=$(kv rehold single.0.revtime)
if [[ $holdt > $(date -u -d '-1 minute' +%Y%m%d%H%M%SZ) ]]; then
    t_ok "revocationTime = suspension start ($holdt)"
else
    t_fail "revocationTime = suspension start" "$holdt"
fi
ctl_exit "ocspctl revoke of a held certificate: exit 0" 0 \
    revoke qca "$OCSP_HOLD_SERIAL" --reason keyCompromise
ctl_exit "release after a definitive revocation refused: exit 3 (EID-07)" 3 \
    release qca "$OCSP_HOLD_SERIAL"
q rel2 "$CHAIN" -issuer "$CA" -cert "$OCSP_HOLD_CERT" -no_nonce
expect "... and OCSP still says revoked keyCompromise" \
    "$(status_of rel2 hold.pem),$(kv rel2 single.0.reason)" "revoked,1"
ctl_exit "release of revoked.pem (keyCompromise) refused: exit 3 (EID-07, STS-08)" 3 \
    release qca "$OCSP_REVOKED_SERIAL"
ctl_exit "hold of revoked.pem refused too: exit 3" 3 hold qca "$OCSP_REVOKED_SERIAL"
q rel3 "$CHAIN" -issuer "$CA" -cert "$OCSP_REVOKED_CERT" -no_nonce
expect "revoked.pem stays revoked keyCompromise" \
    "$(status_of rel3 revoked.pem),$(kv rel3 single.0.reason)" "revoked,1"
code=$(get rel3-get "$(base64 -w0 "$TMP/rel3.req" | b64_escape)")
derutil ocsp-resp "$TMP/rel3-get.body" >"$TMP/rel3-get.kv" 2>/dev/null
expect "... over GET too" "$code $(kv rel3-get single.0.status)" "200 revoked"

# ---- health and metrics ----
code=$(curl -s -o "$TMP/health" -w '%{http_code}' "$URL/healthz")
expect "/healthz: 200" "$code" 200
has "/healthz: ok with both issuers" "$TMP/health" '"status":"ok","issuers":2'
code=$(curl -s -o "$TMP/metrics" -w '%{http_code}' "$URL/metrics")
expect "/metrics: 200" "$code" 200
has "/metrics: pre-signed responses served" "$TMP/metrics" \
    '^ocsp_responses_total\{source="presigned"\} [1-9]'
has "/metrics: responses signed on demand" "$TMP/metrics" \
    '^ocsp_responses_total\{source="signed"\} [1-9]'
has "/metrics: unauthorized counted" "$TMP/metrics" '^ocsp_errors_total\{status="unauthorized"\} [1-9]'
has "/metrics: 304 counted" "$TMP/metrics" '^ocsp_not_modified_total [1-9]'
if kill -0 "$OCSPD_PID" 2>/dev/null; then t_ok "ocspd still running"; else t_fail "ocspd still running" "exited"; fi

# ocspd -n writes nothing: with a store that does not exist yet it says so and creates none
sed "s|^path = .*|path = $TMP/no-store|" "$CONF" >"$TMP/nostore.conf"
SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/ocspd" -n -c "$TMP/nostore.conf" >"$TMP/n.out" 2>&1
expect "ocspd -n with a missing store: valid" "$?" 0
if [[ ! -e $TMP/no-store ]]; then t_ok "ocspd -n creates no store"; else
    t_fail "ocspd -n creates no store" "$(ls -la "$TMP/no-store")"
fi
has "ocspd -n says the store is made at the first start" "$TMP/n.out" 'does not exist yet'

itest_ocspd_stop_clean
t_summary "$NAME"
