#!/usr/bin/env bash
#
# test_pki.sh: checks the demo PKI and SoftHSM2 token that tests/lib/pki.sh builds for
# `make run` and the integration tests, with independent tools (openssl CLI, pkcs11-tool):
#   - every TSU cert chains to the demo root and passes OpenSSL's timestampsign purpose
#     (RFC 3161 §2.3: EKU critical, timeStamping only; STANDARDS TSP-25);
#   - the defective certs are defective exactly as named, and OpenSSL refuses them;
#   - subjects per EN 319 412-3 (TPR-08), policies (TPR-02, TSA-16), privateKeyUsagePeriod
#     (TPR-09, TSA-09, TSA-15);
#   - the token holds exactly three private keys, generated inside it, sensitive and never
#     extractable (TSA-12, TSA-13, CIR-04), usable only for signature mechanisms, and each
#     TSU cert certifies the key of its label;
#   - `openssl ts` can produce and verify a token with the chain files;
#   - pki_demo is idempotent.
set -euo pipefail

LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")/../lib" && pwd)
# shellcheck source=tests/lib/common.sh
. "$LIB/common.sh"
# shellcheck source=tests/lib/pki.sh
. "$LIB/pki.sh"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
P="$TMP/pki"
unset PKI_TEMPLATE # this test is of the PKI's build itself, not of a copy of the runner's

GOOD_TSU=(tsu-n-p256 tsu-rsa tsu-q-p256 soft-p256 soft-rsa3072 pkup-expired)
BAD_TSU=(bad-eku-noncritical bad-eku-extra bad-eku-none)

# ---- helpers: each returns 0 when the property holds ----

# Print the text of extension EXT of CERT (header line included), nothing if absent.
cert_ext() {
    openssl x509 -in "$1" -noout -ext "$2" 2>/dev/null || true
}

chain_ok() {
    openssl verify -CAfile "$P/root.pem" -untrusted "$P/tsaca.pem" "$1" >/dev/null 2>&1
}

chain_ok_bundle() {
    openssl verify -CAfile "$P/ca-chain.pem" "$1" >/dev/null 2>&1
}

tsa_purpose_ok() {
    openssl verify -purpose timestampsign -CAfile "$P/root.pem" -untrusted "$P/tsaca.pem" \
        "$1" >/dev/null 2>&1
}

# EKU extension present, critical, and listing timeStamping and nothing else.
eku_critical_ts_only() {
    local ext
    ext=$(cert_ext "$1" extendedKeyUsage)
    [[ $(printf '%s\n' "$ext" | head -n 1) == *"Extended Key Usage: critical"* ]] || return 1
    [[ $(printf '%s\n' "$ext" | sed -n 2p | tr -d ' ') == "TimeStamping" ]] || return 1
    (($(printf '%s\n' "$ext" | wc -l) == 2))
}

eku_noncritical_ts_only() {
    local ext
    ext=$(cert_ext "$1" extendedKeyUsage)
    [[ $(printf '%s\n' "$ext" | head -n 1) == *"Extended Key Usage:"* ]] || return 1
    [[ $(printf '%s\n' "$ext" | head -n 1) != *critical* ]] || return 1
    [[ $(printf '%s\n' "$ext" | sed -n 2p | tr -d ' ') == "TimeStamping" ]] || return 1
    (($(printf '%s\n' "$ext" | wc -l) == 2))
}

eku_critical_with_server_auth() {
    local ext
    ext=$(cert_ext "$1" extendedKeyUsage)
    [[ $ext == *"Extended Key Usage: critical"* && $ext == *"Time Stamping"* &&
        $ext == *"TLS Web Server Authentication"* ]]
}

eku_absent() {
    [[ -z $(cert_ext "$1" extendedKeyUsage) ]] &&
        ! openssl x509 -in "$1" -noout -text | grep -q 'Extended Key Usage'
}

ku_critical_digital_signature() {
    local ext
    ext=$(cert_ext "$1" keyUsage)
    [[ $ext == *"Key Usage: critical"* ]] &&
        [[ $(printf '%s\n' "$ext" | sed -n 2p | tr -d ' ') == "DigitalSignature" ]]
}

# has_policies CERT OID...: every OID is listed in certificatePolicies.
has_policies() {
    local cert=$1 oid pol
    shift
    pol=$(cert_ext "$cert" certificatePolicies)
    for oid in "$@"; do
        grep -qxF "    Policy: $oid" <<<"$pol" || return 1
    done
}

# subject_is CERT CN: C=RO, O, organizationIdentifier and the given CN (TPR-08).
subject_is() {
    local subj
    subj=$(openssl x509 -in "$1" -noout -subject -nameopt RFC2253)
    [[ $subj == "subject=CN=$2,organizationIdentifier=VATRO-12345678,O=Demo QTSP SRL,C=RO" ]]
}

ski_aki_present() {
    [[ -n $(cert_ext "$1" subjectKeyIdentifier) && -n $(cert_ext "$1" authorityKeyIdentifier) ]]
}

# PKUP notAfter as a Unix time; returns 1 without a PKUP extension.
pkup_not_after() {
    local line
    line=$(cert_ext "$1" privateKeyUsagePeriod | grep -o 'Not After: .*GMT') || return 1
    date -u -d "${line#Not After: }" +%s
}

pkup_within_cert() {
    local pkup cert_end
    pkup=$(pkup_not_after "$1") || return 1
    cert_end=$(date -u -d "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)" +%s)
    ((pkup > $(date +%s) && pkup < cert_end))
}

pkup_in_past() {
    local pkup
    pkup=$(pkup_not_after "$1") || return 1
    ((pkup < $(date +%s)))
}

# cert_matches_key CERT KEY: the certificate certifies this software key.
cert_matches_key() {
    [[ $(openssl x509 -in "$1" -noout -pubkey) == $(openssl pkey -in "$2" -pubout) ]]
}

# Token private keys: count and attributes (pkcs11-tool reads CKA_SENSITIVE,
# CKA_ALWAYS_SENSITIVE, CKA_EXTRACTABLE, CKA_NEVER_EXTRACTABLE and CKA_LOCAL).
token_privkey_count() {
    softhsm_tool "$P/hsm" --list-objects --type privkey 2>/dev/null |
        grep -c '^Private Key Object'
}

privkey_protected() {
    local access
    access=$(softhsm_privkey_access "$P/hsm" "$1") || return 1
    [[ $access == "sensitive, always sensitive, never extractable, local" ]]
}

# Allowed mechanisms of private key LABEL are all signature mechanisms.
privkey_sign_only() {
    local mechs m
    mechs=$(softhsm_tool "$P/hsm" --list-objects --type privkey 2>/dev/null | awk -v want="$1" '
        /^[^ \t]/ { lbl = "" }
        /^[ \t]+label:/ { sub(/^[ \t]+label:[ \t]*/, ""); lbl = $0 }
        /^[ \t]+Allowed mechanisms:/ { if (lbl == want) { sub(/^.*mechanisms:[ \t]*/, ""); print } }')
    [[ -n $mechs ]] || return 1
    for m in ${mechs//,/ }; do
        [[ $m == ECDSA* || $m == *RSA-PKCS || $m == *RSA-PKCS-PSS ]] || return 1
    done
}

# token_sign_verifies ID KEYKIND CERT: sign a digest in the token with the mechanism the
# signer uses (CKM_ECDSA / CKM_RSA_PKCS over a DigestInfo) and verify with CERT's key.
token_sign_verifies() {
    local id=$1 kind=$2 cert=$3 d="$TMP/sig.$1"
    mkdir -p "$d"
    printf 'time-stamp me %s\n' "$id" >"$d/data"
    openssl x509 -in "$cert" -noout -pubkey >"$d/pub.pem"
    if [[ $kind == ec ]]; then
        openssl dgst -sha256 -binary "$d/data" >"$d/tbs"
        softhsm_tool "$P/hsm" --sign -m ECDSA --id "$id" --signature-format openssl \
            -i "$d/tbs" -o "$d/sig" >/dev/null 2>&1 || return 1
    else
        # DigestInfo(sha256) prefix, RFC 8017 §9.2 note 1
        { printf '\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20'
          openssl dgst -sha256 -binary "$d/data"; } >"$d/tbs"
        softhsm_tool "$P/hsm" --sign -m RSA-PKCS --id "$id" \
            -i "$d/tbs" -o "$d/sig" >/dev/null 2>&1 || return 1
    fi
    openssl dgst -sha256 -verify "$d/pub.pem" -signature "$d/sig" "$d/data" >/dev/null 2>&1
}

# A key generated with --extractable in a scratch token must NOT pass privkey_protected's
# test: shows the attribute check can fail.
extractable_key_detected() {
    local s="$TMP/scratch" access
    SOFTHSM2_CONF="" softhsm_init "$s" scratch 1111 2222 >/dev/null 2>&1 || return 1
    softhsm_tool "$s" --keypairgen --key-type EC:prime256v1 --usage-sign --label weak \
        --id 09 --extractable >/dev/null 2>&1 || return 1
    access=$(softhsm_privkey_access "$s" weak) || return 1
    [[ $access != *"never extractable"* ]]
}

ts_config() {
    local cert=$1 key=$2
    printf '%s\n' "[ tsa ]" "default_tsa = t" "[ t ]" \
        "serial = $TMP/ts.serial" "crypto_device = builtin" \
        "signer_cert = $cert" "signer_key = $key" "certs = $P/tsaca.pem" \
        "signer_digest = sha256" "default_policy = $TSA_POLICY_N" \
        "other_policies = $TSA_POLICY_BTSP" "digests = sha256, sha384, sha512" \
        "accuracy = secs:1" "ordering = no" "tsa_name = no" \
        "ess_cert_id_chain = no" "ess_cert_id_alg = sha256" >"$TMP/ts.cnf"
    [[ -e $TMP/ts.serial ]] || echo 01 >"$TMP/ts.serial"
}

# openssl ts -reply with CERT/KEY, then -verify with root + untrusted TSA CA, and with the
# bundle. Fails for a cert OpenSSL refuses as a TSA signer.
ts_roundtrip() {
    local cert=$1 key=$2 d
    d="$TMP/ts.$(basename "$1" .pem)"
    mkdir -p "$d"
    ts_config "$cert" "$key"
    echo "document" >"$d/doc"
    openssl ts -query -data "$d/doc" -sha256 -cert -out "$d/req" 2>/dev/null || return 1
    openssl ts -reply -config "$TMP/ts.cnf" -queryfile "$d/req" -out "$d/resp" \
        >/dev/null 2>&1 || return 1
    openssl ts -reply -in "$d/resp" -text 2>/dev/null | grep -q 'Status: Granted' || return 1
    openssl ts -verify -queryfile "$d/req" -in "$d/resp" -CAfile "$P/root.pem" \
        -untrusted "$P/tsaca.pem" >/dev/null 2>&1 || return 1
    openssl ts -verify -queryfile "$d/req" -in "$d/resp" -CAfile "$P/ca-chain.pem" \
        >/dev/null 2>&1
}

tree_state() {
    (cd "$P" && find . -type f ! -name .lock -printf '%p %s %T@\n' | sort &&
        find . -type f ! -name .lock -print0 | sort -z | xargs -0 sha256sum)
}

# ---- tests ----

pki_demo "$P" 2>/dev/null || die "pki_demo failed"
# shellcheck source=/dev/null
. "$P/pki.env"

t_check "pki.env and policies.env define the paths" \
    test -f "$TSU_N_CERT" -a -f "$TSU_Q_CERT" -a -f "$TSU_RSA_CERT" -a -n "$TSA_POLICY_Q" \
    -a "$PKI_P11_PIN_FILE" = "$P/hsm/pin" -a "$SOFTHSM2_CONF" = "$P/hsm/softhsm2.conf"
t_check "PIN file is mode 600" test "$(stat -c %a "$PKI_P11_PIN_FILE")" = 600
t_check "root CA self-signed and valid" openssl verify -CAfile "$P/root.pem" "$P/root.pem"
t_check "TSA CA chains to root" chain_ok "$P/tsaca.pem"
for c in root tsaca; do
    t_check "$c: basicConstraints critical CA:TRUE" \
        grep -q 'Basic Constraints: critical' <<<"$(cert_ext "$P/$c.pem" basicConstraints)"
    t_check "$c: keyUsage critical keyCertSign,cRLSign" grep -q 'Certificate Sign, CRL Sign' \
        <<<"$(cert_ext "$P/$c.pem" keyUsage)"
done

for n in "${GOOD_TSU[@]}" "${BAD_TSU[@]}"; do
    t_check "$n: verifies against root + untrusted TSA CA" chain_ok "$P/$n.pem"
    t_check "$n: verifies against ca-chain.pem" chain_ok_bundle "$P/$n.pem"
    t_check "$n: keyUsage critical digitalSignature only" \
        ku_critical_digital_signature "$P/$n.pem"
    t_check "$n: SKI and AKI present" ski_aki_present "$P/$n.pem"
done
for n in "${GOOD_TSU[@]}"; do
    t_check "$n: EKU critical, timeStamping only (RFC 3161 2.3)" eku_critical_ts_only "$P/$n.pem"
    t_check "$n: OpenSSL timestampsign purpose accepts it" tsa_purpose_ok "$P/$n.pem"
done
for n in "${BAD_TSU[@]}"; do
    if eku_critical_ts_only "$P/$n.pem"; then
        t_fail "$n: defective EKU" "EKU looks correct"
    else
        t_ok "$n: defective EKU"
    fi
    if tsa_purpose_ok "$P/$n.pem"; then
        t_fail "$n: OpenSSL timestampsign purpose refuses it" "accepted"
    else
        t_ok "$n: OpenSSL timestampsign purpose refuses it"
    fi
done
t_check "bad-eku-noncritical: EKU timeStamping, not critical" \
    eku_noncritical_ts_only "$P/bad-eku-noncritical.pem"
t_check "bad-eku-extra: critical EKU timeStamping + serverAuth" \
    eku_critical_with_server_auth "$P/bad-eku-extra.pem"
t_check "bad-eku-none: no EKU extension" eku_absent "$P/bad-eku-none.pem"

# Subjects and policies (TPR-08, TPR-02, TSA-16)
t_check "tsu-n-p256 subject (TPR-08)" subject_is "$TSU_N_CERT" "Demo TSU N1"
t_check "tsu-rsa subject" subject_is "$TSU_RSA_CERT" "Demo TSU RSA"
t_check "tsu-q-p256 subject" subject_is "$TSU_Q_CERT" "Demo Qualified TSU Q1"
t_check "soft-p256 subject" subject_is "$SOFT_P256_CERT" "Demo TSU Soft P-256"
t_check "soft-rsa3072 subject" subject_is "$SOFT_RSA_CERT" "Demo TSU Soft RSA"
t_check "tsu-n policies: own ECDSA policy + BTSP" \
    has_policies "$TSU_N_CERT" "$TSA_POLICY_N" "$TSA_POLICY_BTSP"
t_check "tsu-rsa policies: RSA policy + BTSP" \
    has_policies "$TSU_RSA_CERT" "$TSA_POLICY_RSA" "$TSA_POLICY_BTSP"
t_check "tsu-q policies: qualified policy + BTSP + NCP+ (TSA-16)" \
    has_policies "$TSU_Q_CERT" "$TSA_POLICY_Q" "$TSA_POLICY_BTSP" "$CA_POLICY_NCP_PLUS"
if has_policies "$TSU_N_CERT" "$TSA_POLICY_Q"; then
    t_fail "tsu-n does not carry the qualified policy (TSA-17)" "it does"
else
    t_ok "tsu-n does not carry the qualified policy (TSA-17)"
fi
for c in "$TSU_N_CERT" "$TSU_RSA_CERT" "$TSU_Q_CERT" "$SOFT_P256_CERT" "$SOFT_RSA_CERT"; do
    t_check "$(basename "$c" .pem): lists BTSP 0.4.0.2023.1.1 (TPR-02)" \
        has_policies "$c" 0.4.0.2023.1.1
done

# privateKeyUsagePeriod (TPR-09, TSA-09, TSA-15)
for n in tsu-n-p256 tsu-rsa tsu-q-p256 soft-p256 soft-rsa3072; do
    t_check "$n: PKUP notAfter in the future and before cert notAfter" \
        pkup_within_cert "$P/$n.pem"
done
t_check "pkup-expired: PKUP notAfter in the past" pkup_in_past "$PKUP_EXPIRED_CERT"

# Software keys belong to their certs.
for n in soft-p256 soft-rsa3072 "${BAD_TSU[@]}" pkup-expired; do
    t_check "$n: cert matches $n.key" cert_matches_key "$P/$n.pem" "$P/$n.key"
    t_check "$n.key is mode 600" test "$(stat -c %a "$P/$n.key")" = 600
done
if cert_matches_key "$SOFT_P256_CERT" "$BAD_EKU_NONE_KEY"; then
    t_fail "key/cert mismatch detected" "soft-p256 cert matches another key"
else
    t_ok "key/cert mismatch detected"
fi

# Token (TSA-12, TSA-13, CIR-04, TSP-25)
# three TSU keys and the audit key (checkpoints of the audit log, issue 9 item 3)
t_check "token holds exactly 4 private keys" test "$(token_privkey_count)" = 4
for l in "$TSU_N_LABEL" "$TSU_RSA_LABEL" "$TSU_Q_LABEL" "$AUDIT_LABEL"; do
    t_check "$l: sensitive, never extractable, generated in token" privkey_protected "$l"
    t_check "$l: only signature mechanisms allowed" privkey_sign_only "$l"
done
t_check "extractable key in a scratch token is detected" extractable_key_detected
t_check "tsu-n-p256: token CKM_ECDSA signature verifies with its cert" \
    token_sign_verifies "$TSU_N_ID" ec "$TSU_N_CERT"
t_check "tsu-q-p256: token CKM_ECDSA signature verifies with its cert" \
    token_sign_verifies "$TSU_Q_ID" ec "$TSU_Q_CERT"
t_check "tsu-rsa: token CKM_RSA_PKCS signature verifies with its cert" \
    token_sign_verifies "$TSU_RSA_ID" rsa "$TSU_RSA_CERT"
if token_sign_verifies "$TSU_N_ID" ec "$TSU_Q_CERT"; then
    t_fail "tsu-n-p256 signature does not verify with tsu-q cert" "it verified"
else
    t_ok "tsu-n-p256 signature does not verify with tsu-q cert"
fi
# CKA_ALLOWED_MECHANISMS is enforced: SHA256-RSA-PKCS (listed) signs, SHA1-RSA-PKCS (which
# SoftHSM implements, but not listed) is refused.
t_check "tsu-rsa signs with a listed mechanism (SHA256-RSA-PKCS)" \
    softhsm_tool "$P/hsm" --sign -m SHA256-RSA-PKCS --id "$TSU_RSA_ID" -i "$P/root.pem" \
    -o "$TMP/sha256.sig"
if softhsm_tool "$P/hsm" --sign -m SHA1-RSA-PKCS --id "$TSU_RSA_ID" -i "$P/root.pem" \
    -o "$TMP/sha1.sig" >/dev/null 2>&1; then
    t_fail "tsu-rsa refuses a mechanism outside its allowed list" "SHA1-RSA-PKCS signed"
else
    t_ok "tsu-rsa refuses a mechanism outside its allowed list"
fi

# openssl ts with the chain files
t_check "openssl ts reply/verify with soft-p256 (-CAfile root -untrusted tsaca, bundle)" \
    ts_roundtrip "$SOFT_P256_CERT" "$SOFT_P256_KEY"
t_check "openssl ts reply/verify with soft-rsa3072" \
    ts_roundtrip "$SOFT_RSA_CERT" "$SOFT_RSA_KEY"
for n in "${BAD_TSU[@]}"; do
    if ts_roundtrip "$P/$n.pem" "$P/$n.key"; then
        t_fail "openssl ts refuses $n as signer" "token issued and verified"
    else
        t_ok "openssl ts refuses $n as signer"
    fi
done

# Idempotency
before=$(tree_state)
out=$(pki_demo "$P" 2>&1) || out="pki_demo failed: $out"
after=$(tree_state)
t_check "second pki_demo prints nothing" test -z "$out"
t_check "second pki_demo changes no file" test "$before" = "$after"
t_check "token still holds 4 private keys" test "$(token_privkey_count)" = 4

t_summary test_pki
