#!/usr/bin/env bash
#
# test_tsad.sh: tsad end to end with real clients (openssl ts, openssl cms, curl, mdb_dump)
# against its own chronyd (local reference), its own SoftHSM2 token and demo PKI, and its own
# LMDB store, all in a private temp dir. RFC 3161 §2.4, §3.4; RFC 5816; STANDARDS
# TSP-01, TSP-06..TSP-10, TSP-14..TSP-23, TPR-01, TPR-03..TPR-07, TPR-12, TSA-01, TSA-03,
# TSA-17, TSA-18, CIR-01.
#
#   - every TSU of the demo config (n1, rsa, q1, soft-p256, soft-rsa) with imprint hashes
#     sha256/sha384/sha512/sha3-256: HTTP 200 + application/timestamp-reply, status granted,
#     signature verifies (openssl ts -verify; RSA-PSS tokens with openssl cms -verify because
#     OpenSSL's PKCS7 code cannot check PSS), policy, imprint and nonce echoed;
#   - nonce/certReq combinations, unaccepted policies, qualified separation, token profile
#     (accuracy, ordering, genTime, serials, ESSCertID(v2), qcStatements);
#   - HTTP behaviour (405, 415, 413, 404, HTTP/1.0, keep-alive, chunked);
#   - the LMDB audit log, /healthz, /metrics, and a restart on the same store.
# The DER reader tests/lib/derutil.py turns requests and responses into key=value lines.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsad

# ---- helpers ----
GRANTED=0
CT_QUERY='Content-Type: application/timestamp-query'

# kv FILE KEY: value of KEY in a key=value file
kv() {
    kv_get "$1" "$2"
}

# post URL QUERY OUT [CURL_ARGS...]: POST the query; sets HTTP_CODE, writes OUT (body),
# OUT.hdr (headers) and OUT.kv (parsed response when it parses); counts granted tokens.
post() {
    local url=$1 q=$2 o=$3
    shift 3
    HTTP_CODE=$(curl -s -D "$o.hdr" -o "$o" -w '%{http_code}' -H "$CT_QUERY" "$@" \
        --data-binary @"$q" "$url") || HTTP_CODE=000
    : >"$o.kv"
    if [[ $HTTP_CODE == 200 ]] && derutil tsp-resp "$o" >"$o.kv" 2>/dev/null &&
        [[ $(kv "$o.kv" status) == 0 ]]; then
        GRANTED=$((GRANTED + 1))
    fi
}

# query OUT [openssl ts -query ARGS...]: a request for $DOC
query() {
    local o=$1
    shift
    openssl ts -query -data "$DOC" "$@" -out "$o" 2>/dev/null
}

# expect WHAT ACTUAL WANTED: collect a mismatch into ERRS
expect() {
    [[ $2 == "$3" ]] || ERRS+=("$1: got '$2', want '$3'")
}

# report NAME: one result line for the ERRS collected since the last report
report() {
    if ((${#ERRS[@]} == 0)); then
        t_ok "$1"
    else
        t_fail "$1" "$(printf '%s; ' "${ERRS[@]}")"
    fi
    ERRS=()
}
ERRS=()

# verify_ts RESP QUERY: openssl ts -verify with the data and with the query file
verify_ts() {
    openssl ts -verify -data "$DOC" -in "$1" -CAfile "$PKI_CA_CHAIN" >/dev/null 2>&1 &&
        openssl ts -verify -queryfile "$2" -in "$1" -CAfile "$PKI_CA_CHAIN" >/dev/null 2>&1
}

# verify_cms RESP: the token's CMS signature (RSA-PSS too) and eContent = TSTInfo
verify_cms() {
    local r=$1
    openssl ts -reply -in "$r" -token_out -out "$r.tok" 2>/dev/null &&
        openssl cms -verify -inform DER -in "$r.tok" -CAfile "$PKI_CA_CHAIN" -purpose any \
            -out "$r.tst" >/dev/null 2>&1 &&
        openssl asn1parse -inform DER -in "$r.tst" >/dev/null 2>&1
}

# cert_hash ALG PEM: hex digest of the DER certificate
cert_hash() {
    openssl x509 -in "$2" -outform DER | openssl dgst "-$1" -r | cut -d' ' -f1
}

# ---- set-up ----
itest_tsa_setup local
itest_tsad_start
itest_tsad_healthy
DOC=$TMP/doc.txt
printf 'integration test document %s\n' "$RANDOM" >"$DOC"
mkdir -p "$TMP/r"
SOFT_P256_POLICY=1.3.6.1.4.1.55555.1.11
SOFT_RSA_POLICY=1.3.6.1.4.1.55555.1.12

# ---- every TSU x imprint hash (TSP-01, TSP-07, TSP-08, TSP-09, TSP-14, TSP-15, TSP-17) ----
# unit URL-path REQUEST-POLICY(- = none: default of the path) EXPECTED-POLICY VERIFY(ts|cms)
UNITS=(
    "n1 /tsa - $TSA_POLICY_N ts"
    "rsa /tsa $TSA_POLICY_RSA $TSA_POLICY_RSA ts"
    "q1 /tsa/qualified - $TSA_POLICY_Q ts"
    "soft-p256 /tsa/soft - $SOFT_P256_POLICY ts"
    "soft-rsa /tsa/soft $SOFT_RSA_POLICY $SOFT_RSA_POLICY cms"
)
for spec in "${UNITS[@]}"; do
    read -r unit path rpol epol how <<<"$spec"
    for h in sha256 sha384 sha512 sha3-256; do
        q=$TMP/r/$unit-$h.tsq
        r=$TMP/r/$unit-$h.tsr
        pol=()
        [[ $rpol != - ]] && pol=(-tspolicy "$rpol")
        if ! query "$q" "-$h" -cert "${pol[@]}"; then
            t_fail "$unit $h: openssl ts -query" "cannot build the query"
            continue
        fi
        post "$BASE$path" "$q" "$r"
        expect "HTTP status" "$HTTP_CODE" 200
        expect "Content-Type" "$(sed -n 's/^Content-Type: *//Ip' "$r.hdr" | tr -d '\r')" \
            application/timestamp-reply
        report "$unit $h: HTTP 200, Content-Type application/timestamp-reply (TSP-01)"

        derutil tsp-req "$q" >"$q.kv"
        expect status "$(kv "$r.kv" status)" 0
        expect policy "$(kv "$r.kv" policy)" "$epol"
        expect "messageImprint echoed" "$(kv "$r.kv" imprint_der)" "$(kv "$q.kv" req_imprint_der)"
        expect "imprint = $h(doc)" "$(kv "$r.kv" imprint_hash)" \
            "$(openssl dgst "-$h" -r "$DOC" | cut -d' ' -f1)"
        expect nonce "$(kv "$r.kv" nonce)" "$(kv "$q.kv" req_nonce)"
        report "$unit $h: granted, policy $epol (TSP-08), imprint (TSP-07) and nonce (TSP-09) echoed"

        expect ContentInfo "$(kv "$r.kv" content_type)" 1.2.840.113549.1.7.2
        expect eContentType "$(kv "$r.kv" econtent_type)" 1.2.840.113549.1.9.16.1.4
        expect "SignedData version" "$(kv "$r.kv" sd_version)" 3
        expect signerInfos "$(kv "$r.kv" signer_infos)" 1
        expect "TSTInfo version" "$(kv "$r.kv" tst_version)" 1
        expect "trailing bytes" "$(kv "$r.kv" trailing)" 0
        report "$unit $h: ContentInfo/SignedData v3/one SignerInfo/TSTInfo v1 (TSP-14, TSP-15, TSP-17)"

        if [[ $how == ts ]]; then
            t_check "$unit $h: openssl ts -verify (data and query file)" verify_ts "$r" "$q"
        else
            t_check "$unit $h: openssl cms -verify of the RSA-PSS token" verify_cms "$r"
        fi
    done
done

# openssl cms -verify must be able to fail: a token with one flipped signature byte
tamper_fails() {
    local r=$TMP/r/soft-rsa-sha256.tsr
    openssl ts -reply -in "$r" -token_out -out "$TMP/t.der" 2>/dev/null || return 1
    derutil flip "$TMP/t.der" -10 || return 1
    ! openssl cms -verify -inform DER -in "$TMP/t.der" -CAfile "$PKI_CA_CHAIN" -purpose any \
        -out /dev/null >/dev/null 2>&1
}
t_check "a tampered RSA-PSS token fails openssl cms -verify" tamper_fails

# n1 with its policy named explicitly (TSP-08)
query "$TMP/r/n1-explicit.tsq" -sha256 -cert -tspolicy "$TSA_POLICY_N"
post "$BASE/tsa" "$TMP/r/n1-explicit.tsq" "$TMP/r/n1-explicit.tsr"
expect status "$(kv "$TMP/r/n1-explicit.tsr.kv" status)" 0
expect policy "$(kv "$TMP/r/n1-explicit.tsr.kv" policy)" "$TSA_POLICY_N"
report "n1 policy requested explicitly: granted with that policy (TSP-08)"

# n1 with the other SHA-3 imprints the demo config accepts (ALG-01)
for h in sha3-384 sha3-512; do
    query "$TMP/r/n1-x$h.tsq" "-$h" -cert
    post "$BASE/tsa" "$TMP/r/n1-x$h.tsq" "$TMP/r/n1-x$h.tsr"
    expect status "$(kv "$TMP/r/n1-x$h.tsr.kv" status)" 0
    verify_ts "$TMP/r/n1-x$h.tsr" "$TMP/r/n1-x$h.tsq" || ERRS+=("does not verify")
    report "n1 $h imprint: granted and verifies (ALG-01)"
done

# TPR-01: every combination of reqPolicy, nonce and certReq is served
combos=0
for pol in "" "-tspolicy $TSA_POLICY_N"; do
    for non in -no_nonce ""; do
        for crt in "" -cert; do
            q=$TMP/r/combo$combos.tsq
            # shellcheck disable=SC2086 # the options are meant to split
            query "$q" -sha256 $pol $non $crt
            post "$BASE/tsa" "$q" "${q%.tsq}.tsr"
            [[ $(kv "${q%.tsq}.tsr.kv" status) == 0 ]] || ERRS+=("'$pol $non $crt' not granted")
            if [[ -n $crt ]]; then
                verify_ts "${q%.tsq}.tsr" "$q" || ERRS+=("'$pol $non $crt' does not verify")
            fi
            combos=$((combos + 1))
        done
    done
done
report "all 8 combinations of reqPolicy, nonce and certReq granted (TPR-01)"

# ---- nonce (TSP-09) and certReq (TSP-10) ----
query "$TMP/r/nononce.tsq" -sha256 -no_nonce -cert
post "$BASE/tsa" "$TMP/r/nononce.tsq" "$TMP/r/nononce.tsr"
expect status "$(kv "$TMP/r/nononce.tsr.kv" status)" 0
expect "nonce in token" "$(kv "$TMP/r/nononce.tsr.kv" nonce)" ""
report "request without nonce: token has no nonce (TSP-09)"
t_check "no-nonce token verifies" verify_ts "$TMP/r/nononce.tsr" "$TMP/r/nononce.tsq"

# nonces of 20 and 32 bytes with the top bit set (INTEGER with a leading 00), echoed exactly
for n in 20 32; do
    nonce=00$(openssl rand -hex "$n" | sed 's/^./f/')
    derutil tsp-mkreq "$TMP/r/nonce$n.tsq" "nonce=$nonce" \
        "hash=$(openssl dgst -sha256 -r "$DOC" | cut -d' ' -f1)" certreq=1
    post "$BASE/tsa" "$TMP/r/nonce$n.tsq" "$TMP/r/nonce$n.tsr"
    expect status "$(kv "$TMP/r/nonce$n.tsr.kv" status)" 0
    expect nonce "$(kv "$TMP/r/nonce$n.tsr.kv" nonce)" "$nonce"
    report "$n-byte nonce with the top bit set echoed byte for byte (TSP-09)"
done

# asn1parse view of SignedData: certificates are the `cont [ 0 ]` at depth 3 (TSP-10)
# (output captured first: `| grep -q` under pipefail fails when the writer gets SIGPIPE)
asn1_has_certs() {
    local dump
    openssl ts -reply -in "$1" -token_out -out "$1.tok" 2>/dev/null &&
        dump=$(openssl asn1parse -inform DER -in "$1.tok") &&
        grep -Eq 'd=3 +hl=[0-9]+ +l= *[0-9]+ cons: cont \[ 0 \]' <<<"$dump"
}
query "$TMP/r/nocert.tsq" -sha256
post "$BASE/tsa" "$TMP/r/nocert.tsq" "$TMP/r/nocert.tsr"
r=$TMP/r/n1-sha256.tsr
n1_sha256=$(cert_hash sha256 "$TSU_N_CERT")
expect "status with certReq" "$(kv "$r.kv" status)" 0
expect "certificates with certReq" "$(kv "$r.kv" certs)" 2
[[ ,$(kv "$r.kv" cert_sha256), == *",$n1_sha256,"* ]] || ERRS+=("TSU certificate not in the set")
asn1_has_certs "$r" || ERRS+=("asn1parse shows no certificates [0]")
report "certReq TRUE: SignedData.certificates holds the TSU cert and its CA (TSP-10)"
expect "status without certReq" "$(kv "$TMP/r/nocert.tsr.kv" status)" 0
expect "certificates without certReq" "$(kv "$TMP/r/nocert.tsr.kv" certs)" 0
asn1_has_certs "$TMP/r/nocert.tsr" && ERRS+=("asn1parse shows certificates [0]")
report "certReq absent: no certificates field in SignedData (TSP-10)"
cat "$TSU_N_CERT" "$PKI_TSACA_CERT" >"$TMP/untrusted.pem"
t_check "token without certificates verifies with the certificates given by the client" \
    openssl ts -verify -data "$DOC" -in "$TMP/r/nocert.tsr" -CAfile "$PKI_ROOT_CERT" \
    -untrusted "$TMP/untrusted.pem"

# ---- unaccepted policies (TSP-08, TSA-17) ----
# reject_policy NAME PATH POLICY
reject_policy() {
    local o=$TMP/r/pol-$1
    query "$o.tsq" -sha256 -tspolicy "$3"
    post "$BASE$2" "$o.tsq" "$o.tsr"
    expect "HTTP status" "$HTTP_CODE" 200
    expect status "$(kv "$o.tsr.kv" status)" 2
    expect failInfo "$(kv "$o.tsr.kv" failbits)" 15
    expect token "$(kv "$o.tsr.kv" token)" absent
    grep -q 'Failure info: the requested TSA policy is not supported' \
        <<<"$(openssl ts -reply -in "$o.tsr" -text 2>/dev/null)" ||
        ERRS+=("openssl ts -reply -text does not show unacceptedPolicy")
}
reject_policy unknown /tsa 1.3.6.1.4.1.55555.9.9
report "unknown policy on /tsa: rejection, failInfo unacceptedPolicy (TSP-08)"
reject_policy q-on-tsa /tsa "$TSA_POLICY_Q"
report "qualified policy sent to /tsa: unacceptedPolicy (TSA-17)"
reject_policy n-on-qualified /tsa/qualified "$TSA_POLICY_N"
report "n1 policy sent to /tsa/qualified: unacceptedPolicy (TSA-17)"
reject_policy rsa-on-soft /tsa/soft "$TSA_POLICY_RSA"
report "policy of another path sent to /tsa/soft: unacceptedPolicy (TSA-17)"

# ---- token profile over every granted token of the matrix ----
# mkeach FIELD-CHECK: run "check UNIT HASH KVFILE" over the 20 matrix tokens
mkeach() {
    local spec unit h
    for spec in "${UNITS[@]}"; do
        read -r unit _ <<<"$spec"
        for h in sha256 sha384 sha512 sha3-256; do
            "$1" "$unit" "$h" "$TMP/r/$unit-$h.tsr.kv"
        done
    done
}
check_accuracy() {
    local acc
    case $1 in
    n1 | q1) acc=3003800164 ;;    # 100 ms: millis [0] 100
    soft-p256) acc=3004800201f4 ;; # 500 ms: millis [0] 500
    *) acc=3003020101 ;;           # 1 s: seconds 1
    esac
    expect "$1 $2 accuracy" "$(kv "$3" accuracy)" "$acc"
    expect "$1 $2 ordering" "$(kv "$3" ordering)" absent
}
mkeach check_accuracy
report "accuracy always present, as configured, zero parts omitted (TPR-04, TSP-20, TSA-01); ordering absent (TSP-21)"
check_gentime() {
    local g
    g=$(kv "$3" gentime)
    [[ $g =~ ^[0-9]{14}(\.[0-9]*[1-9])?Z$ ]] || ERRS+=("$1 $2 genTime '$g'")
    # TPR-03: 100 ms accuracy -> at most 2 fraction digits (one more than needed)
    [[ $1 != n1 && $1 != q1 ]] || [[ $g =~ ^[0-9]{14}(\.[0-9]{1,2})?Z$ ]] ||
        ERRS+=("$1 $2 genTime digits '$g'")
}
mkeach check_gentime
report "genTime matches ^\\d{14}(\\.\\d*[1-9])?Z\$ in every token (TSP-19, TPR-03)"
check_extensions() {
    if [[ $1 == q1 ]]; then
        expect "q1 $2 extensions" "$(kv "$3" ext_oids)" 1.3.6.1.5.5.7.1.3
        expect "q1 $2 qcStatements" "$(kv "$3" qc_statements)" 0.4.0.19422.1.1
        expect "q1 $2 extension critical" "$(kv "$3" ext_critical)" no
    else
        expect "$1 $2 extensions" "$(kv "$3" ext_oids)" ""
    fi
}
mkeach check_extensions
report "qualified tokens carry qcStatements esi4-qtstStatement-1, not critical; others no extensions (CIR-01, TPR-12, TPR-06, TSA-17)"
check_tsa_name() {
    if [[ $1 == soft-rsa ]]; then
        expect "soft-rsa $2 tsa field (tsa_name = no)" "$(kv "$3" tsa)" absent
    else
        expect "$1 $2 tsa field" "$(kv "$3" tsa)" present
    fi
}
mkeach check_tsa_name
report "tsa field present except where tsa_name = no (TSP-22)"

# genTime close to the local clock (chronyd -x does not touch it; generous bound)
g=$(kv "$TMP/r/n1-sha256.tsr.kv" gentime)
gt=$(date -u -d "${g:0:4}-${g:4:2}-${g:6:2} ${g:8:2}:${g:10:2}:${g:12:2}" +%s 2>/dev/null) || gt=0
now=$(date -u +%s)
if ((gt > now - 300 && gt <= now + 1)); then
    t_ok "genTime is the current UTC time (TSA-03)"
else
    t_fail "genTime is the current UTC time (TSA-03)" "genTime $g vs now $(date -u +%Y%m%d%H%M%S)"
fi

# ---- serials: 20 requests, all distinct, positive, 64+ bits (TSP-18) ----
query "$TMP/r/serial.tsq" -sha256
serials=()
for i in $(seq 1 20); do
    post "$BASE/tsa" "$TMP/r/serial.tsq" "$TMP/r/serial$i.tsr"
    s=$(kv "$TMP/r/serial$i.tsr.kv" serial)
    serials+=("$s")
    [[ ${#s} -ge 16 && ${s:0:1} =~ [0-7] ]] || ERRS+=("serial '$s' short or negative")
    (( ${#s} <= 40 )) || ERRS+=("serial '$s' longer than 160 bits")
done
expect "distinct serials" "$(printf '%s\n' "${serials[@]}" | sort -u | grep -c .)" 20
report "20 tokens: 20 distinct positive serials of 64..160 bits (TSP-18)"

# ---- ESSCertID(v2) (TSP-16, TPR-07) ----
f=$TMP/r/n1-sha256.tsr.kv
expect "n1 ESSCertIDv2 certHash" "$(kv "$f" essv2_hash)" "$n1_sha256"
expect "n1 ESSCertIDv2 hashAlgorithm (DEFAULT sha256 omitted)" "$(kv "$f" essv2_alg)" absent
expect "n1 issuerSerial" "$(kv "$f" essv2_issuer_serial)" present
[[ ,$(kv "$f" attrs), == *,1.2.840.113549.1.9.16.2.12,* ]] && ERRS+=("n1 has a v1 signingCertificate")
[[ ,$(kv "$f" attrs), == *,1.2.840.113549.1.9.3,* && ,$(kv "$f" attrs), == *,1.2.840.113549.1.9.4,* ]] ||
    ERRS+=("n1 signedAttrs lack content-type/message-digest: $(kv "$f" attrs)")
report "n1: SigningCertificateV2 certHash = SHA-256 of the TSU cert DER, hashAlgorithm omitted (TSP-16)"
f=$TMP/r/rsa-sha256.tsr.kv
[[ ,$(kv "$f" attrs), == *,1.2.840.113549.1.9.16.2.12,* ]] || ERRS+=("rsa lacks signingCertificate v1")
[[ ,$(kv "$f" attrs), == *,1.2.840.113549.1.9.16.2.47,* ]] || ERRS+=("rsa lacks signingCertificateV2")
expect "rsa ESSCertID certHash (SHA-1)" "$(kv "$f" essv1_hash)" "$(cert_hash sha1 "$TSU_RSA_CERT")"
expect "rsa ESSCertIDv2 certHash" "$(kv "$f" essv2_hash)" "$(cert_hash sha256 "$TSU_RSA_CERT")"
report "rsa (ess_cert_id_v1 = yes): SigningCertificate and SigningCertificateV2 both name the TSU cert (TSP-16)"

# ---- TSP-06: the imprint is not inspected beyond its length; TSP-07 parameters absent ----
derutil tsp-mkreq "$TMP/r/zero.tsq" "hash=$(printf '00%.0s' $(seq 32))"
post "$BASE/tsa" "$TMP/r/zero.tsq" "$TMP/r/zero.tsr"
expect status "$(kv "$TMP/r/zero.tsr.kv" status)" 0
report "all-zero 32-byte SHA-256 imprint is granted (TSP-06)"
derutil tsp-mkreq "$TMP/r/noparams.tsq" params=absent "hash=$(openssl rand -hex 32)"
derutil tsp-req "$TMP/r/noparams.tsq" >"$TMP/r/noparams.tsq.kv"
post "$BASE/tsa" "$TMP/r/noparams.tsq" "$TMP/r/noparams.tsr"
expect status "$(kv "$TMP/r/noparams.tsr.kv" status)" 0
expect imprint "$(kv "$TMP/r/noparams.tsr.kv" imprint_der)" \
    "$(kv "$TMP/r/noparams.tsq.kv" req_imprint_der)"
report "SHA-256 AlgorithmIdentifier without NULL parameters echoed byte for byte (TSP-07)"

# TSP-23: nothing identifying the requester in the token
tok_has_ip() {
    openssl ts -reply -in "$TMP/r/n1-sha256.tsr" -token_out -out "$TMP/ip.der" 2>/dev/null &&
        ! grep -aq '127\.0\.0\.1' "$TMP/ip.der" &&
        ! LC_ALL=C grep -aqP '\x7f\x00\x00\x01' "$TMP/ip.der" # (the 4 bytes: a shell string drops NULs)
}
t_check "the token does not carry the client address (TSP-23)" tok_has_ip

# ---- HTTP behaviour (TSP-01, TSP-02) ----
code() {
    curl -s -o /dev/null -w '%{http_code}' "$@"
}
Q=$TMP/r/n1-sha256.tsq
expect "GET /tsa" "$(code "$BASE/tsa")" 405
report "GET /tsa -> 405"
expect "POST text/plain" "$(code -H 'Content-Type: text/plain' --data-binary @"$Q" "$BASE/tsa")" 415
report "POST with Content-Type text/plain -> 415"
head -c 20000 /dev/urandom >"$TMP/big.bin"
expect "20000-byte body" "$(code -H "$CT_QUERY" --data-binary @"$TMP/big.bin" "$BASE/tsa")" 413
report "body larger than max_body (16k) -> 413"
expect "unknown path" "$(code -H "$CT_QUERY" --data-binary @"$Q" "$BASE/nope")" 404
report "POST to an unknown path -> 404"
post "$BASE/tsa" "$Q" "$TMP/r/http10.tsr" --http1.0
expect "HTTP/1.0 status" "$HTTP_CODE" 200
expect "HTTP/1.0 PKIStatus" "$(kv "$TMP/r/http10.tsr.kv" status)" 0
report "HTTP/1.0 request granted"
post "$BASE/tsa" "$Q" "$TMP/r/chunked.tsr" -H 'Transfer-Encoding: chunked'
expect "chunked status" "$HTTP_CODE" 200
expect "chunked PKIStatus" "$(kv "$TMP/r/chunked.tsr.kv" status)" 0
report "chunked request body granted"
conns=$(curl -s -H "$CT_QUERY" --data-binary @"$Q" -w '%{http_code}:%{num_connects} ' \
    -o "$TMP/r/ka1.tsr" -o "$TMP/r/ka2.tsr" "$BASE/tsa" "$BASE/tsa")
expect "two requests, one connection" "$conns" "200:1 200:0 "
for k in ka1 ka2; do
    derutil tsp-resp "$TMP/r/$k.tsr" >"$TMP/r/$k.tsr.kv" 2>/dev/null
    expect "$k PKIStatus" "$(kv "$TMP/r/$k.tsr.kv" status)" 0
    [[ $(kv "$TMP/r/$k.tsr.kv" status) == 0 ]] && GRANTED=$((GRANTED + 1))
done
report "keep-alive: second request reuses the connection, both granted"

# ---- audit log in LMDB (TSA-18, DESIGN D5, D10) ----
# Records are keyed by their sequence number in write order (8 bytes, big-endian); the journal
# copies them into LMDB within its apply delay (50 ms), so a dump may wait for the last ones.
# audit_dump [N]: dump, waiting up to 3 s for at least N records
audit_dump() {
    local want=${1:-0} i
    for ((i = 0; i < 30; i++)); do
        mdb_dump -s tsa_audit "$STORE" >"$TMP/dump.txt" 2>"$TMP/dump.err" &&
            derutil mdb "$TMP/dump.txt" >"$TMP/audit.txt" || return 1
        (($(grep -c . "$TMP/audit.txt") >= want)) && return 0
        sleep 0.1
    done
    return 0
}
# audit_rec SERIALHEX: the record (JSON) with that serial
audit_rec() { awk '{ sub(/^[^ ]* /, ""); print }' "$TMP/audit.txt" | grep -F "\"serial\":\"$1\""; }
if audit_dump "$GRANTED"; then
    expect "audit records" "$(grep -c . "$TMP/audit.txt")" "$GRANTED"
    report "audit log holds one record per granted token ($GRANTED) (TSA-18)"
    r=$TMP/r/n1-sha256.tsr
    serial=$(printf '%032s' "$(kv "$r.kv" serial)" | tr ' ' 0)
    rec=$(audit_rec "$serial")
    if [[ -z $rec ]]; then
        t_fail "audit record of an n1 token" "no record with serial $serial"
    else
        openssl ts -reply -in "$r" -token_out -out "$TMP/tok.der" 2>/dev/null
        expect "record serial" "$(jq -r .serial <<<"$rec")" "$serial"
        expect "record imprint" "$(jq -r .imprint <<<"$rec")" "$(kv "$r.kv" imprint_hash)"
        expect "record client" "$(jq -r .client <<<"$rec")" 127.0.0.1
        expect "record tsu" "$(jq -r .tsu <<<"$rec")" n1
        expect "record policy" "$(jq -r .policy <<<"$rec")" "$TSA_POLICY_N"
        expect "record token_sha256" "$(jq -r .token_sha256 <<<"$rec")" \
            "$(sha256sum "$TMP/tok.der" | cut -d' ' -f1)"
        expect "record clock verdict" "$(jq -r .clock.verdict <<<"$rec")" ok
        report "audit record: serial, imprint, client 127.0.0.1, token_sha256 of the token bytes"
    fi
    # every token of the matrix has its record with the right token hash
    for f in "$TMP"/r/*-sha*.tsr.kv; do
        [[ $(kv "$f" status) == 0 ]] || continue
        s=$(printf '%032s' "$(kv "$f" serial)" | tr ' ' 0)
        h=$(audit_rec "$s" | jq -r .token_sha256 2>/dev/null)
        expect "token_sha256 of $(basename "$f" .tsr.kv)" "$h" "$(kv "$f" token_sha256)"
    done
    report "every matrix token has an audit record with its token_sha256"
else
    t_fail "mdb_dump of the live store" "$(cat "$TMP/dump.err")"
fi

# ---- /healthz and /metrics ----
hz=$(curl -s -w '\n%{http_code}' "$BASE/healthz")
expect "/healthz HTTP" "$(tail -n 1 <<<"$hz")" 200
expect "/healthz status" "$(head -n -1 <<<"$hz" | jq -r .status 2>/dev/null)" ok
report "/healthz 200 with \"status\":\"ok\""
tokens=$(curl -s "$BASE/metrics" | awk '$1 == "tsa_tokens_total" { print $2 }')
expect tsa_tokens_total "$tokens" "$GRANTED"
report "/metrics tsa_tokens_total equals the number of granted tokens ($GRANTED)"
rej=$(curl -s "$BASE/metrics" | awk '$1 == "tsa_rejections_total{reason=\"unacceptedPolicy\"}" { print $2 }')
expect "unacceptedPolicy rejections" "$rej" 4
report "/metrics counts the 4 unacceptedPolicy rejections"

# ---- restart on the same store: records kept, serials new (TSP-18) ----
before=$GRANTED
tsad_stop
if grep -q 'AUDIT event=service_stop' "$LOG"; then t_ok "clean stop logged (AUDIT service_stop)"; else
    t_fail "clean stop logged" "no AUDIT event=service_stop in the log"
fi
{ tsad_start "$CONF" "$LOG" && wait_http "$BASE/healthz" 10 200; } ||
    fatal "tsad restart" "$(tail -n 5 "$LOG")"
query "$TMP/r/after.tsq" -sha256 -cert
post "$BASE/tsa" "$TMP/r/after.tsq" "$TMP/r/after.tsr"
expect "after restart" "$(kv "$TMP/r/after.tsr.kv" status)" 0
t_check "token after restart verifies" verify_ts "$TMP/r/after.tsr" "$TMP/r/after.tsq"
if audit_dump "$((before + 1))"; then
    expect "records after restart" "$(grep -c . "$TMP/audit.txt")" "$((before + 1))"
    s=$(printf '%032s' "$(kv "$TMP/r/after.tsr.kv" serial)" | tr ' ' 0)
    expect "new serial recorded once" "$(audit_rec "$s" | grep -c .)" 1
    expect "earlier record kept" "$(audit_rec "$serial" | grep -c .)" 1
    # keys: consecutive sequence numbers 1..N in write order
    expect "keys are 1..N" "$(awk '{ print $1 }' "$TMP/audit.txt" | tr -d '\n')" \
        "$(for ((i = 1; i <= before + 1; i++)); do printf '%016x' "$i"; done)"
    [[ " ${serials[*]} " == *" $(kv "$TMP/r/after.tsr.kv" serial) "* ]] &&
        ERRS+=("serial after restart repeats an earlier one")
else
    ERRS+=("mdb_dump failed: $(cat "$TMP/dump.err")")
fi
report "restart on the same store: earlier audit records kept, new serial distinct (TSP-18)"

t_summary "$NAME"
