# shellcheck shell=bash
#
# ocsp-pki.sh: the demo PKI of ocspd for `make run` and the OCSP integration tests, built with
# the openssl CLI (`openssl ca`, so each CA keeps a real index.txt, as a small CA would).
#
#   Demo OCSP Root CA (P-384, software key; issued with `openssl ca -selfsign`, from 2019)
#     Demo Qualified CA (P-256, software key, from 2019-01-01: its notBefore is the
#     archiveCutoff of OCSP-25 / STS-09)
#       ocsp-signer.pem   delegated OCSP responder (RFC 6960 §4.2.2.2; STANDARDS OCSP-21,
#                         OCSP-22): key generated INSIDE the SoftHSM2 token "ocsp" (DIR/hsm,
#                         label ocsp-signer, sensitive, never extractable); EKU OCSPSigning,
#                         id-pkix-ocsp-nocheck, no AIA/CRLDP, 30 days
#       leaves with authorityInfoAccess OCSP;URI:URL (EID-09), issued with `openssl ca`:
#         good.pem, highbit.pem (serial C0FFFFFF...: top bit set, so a DER leading 0x00;
#                         and its GET base64 always contains a slash),
#         revoked.pem (`openssl ca -revoke -crl_reason keyCompromise`),
#         hold.pem (`-crl_reason certificateHold`: index.txt records "TIME,certificateHold"),
#         expired.pem (valid 2020-01-01 .. 2021-01-01)
#       never-issued.pem: signed by the CA key with `openssl x509 -req`, so it is NOT in
#         index.txt (OCSP-13: must never be answered "good")
#     Demo Qualified CA, re-keyed (same name, new key; issuer id differs, OCSP-21):
#       ocsp-signer-2.pem (token label ocsp-signer-2), rekey-good.pem
#   Demo Other CA (self-signed, not served): other.pem (OCSP-05: unauthorized)
#
# Public functions (each runs in its own `bash -e`, so errors always stop it):
#   ocsp_pki_demo DIR URL   build everything in DIR unless DIR/.done holds URL (and the
#                           responder certificates are valid for another day); writes
#                           DIR/ocsp-pki.env (sourceable; it does not export SOFTHSM2_CONF:
#                           OCSP_SOFTHSM2_CONF names the token's configuration).
#                           Serialised with flock on DIR/.lock.
#   ocsp_store_demo DIR STORE CONF
#                           (re)create the ocspd store STORE from DIR with ${BUILD}/ocspctl -c
#                           CONF: init; issuers "qca" and "qca-rekey" (delegated signers in the
#                           token, --archive-cutoff yes, --nonce echo); import-index of each
#                           CA's index.txt; hold of hold.pem if the import did not set it;
#                           presign. never-issued.pem is not added. ocspctl's log goes to
#                           DIR/ocspctl.log (its tail is shown on failure).
# Executed directly, `tests/lib/ocsp-pki.sh DIR URL` runs ocsp_pki_demo DIR URL.

_OCSP_PKI_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_OCSP_PKI_SH="$_OCSP_PKI_LIB_DIR/ocsp-pki.sh"
# shellcheck source=tests/lib/softhsm.sh
. "$_OCSP_PKI_LIB_DIR/softhsm.sh"

OCSP_PKI_ORG="Demo QTSP SRL"
OCSP_PKI_CA_START=20190101000000Z
OCSP_PKI_SIGNER_DAYS=30

ocsp_pki_demo() {
    bash -c 'set -euo pipefail; . "$1"; shift; _ocsp_pki_demo_locked "$@"' ocsp_pki_demo \
        "$_OCSP_PKI_SH" "$@"
}

ocsp_store_demo() {
    bash -c 'set -euo pipefail; . "$1"; shift; _ocsp_store_demo "$@"' ocsp_store_demo \
        "$_OCSP_PKI_SH" "$@"
}

# ---- internals (run under set -euo pipefail) ----

# openssl ca configuration of one CA in DIR/NAME (index.txt, serial, newcerts) plus the
# extension profiles. The AIA URL comes from $OCSP_AIA_URL when openssl loads the file.
_ocsp_pki_write_cnf() {
    local dir=$1 name=$2 cert=$3 key=$4
    mkdir -p "$dir/$name/newcerts"
    : >"$dir/$name/index.txt"
    printf 'unique_subject = no\n' >"$dir/$name/index.txt.attr"
    cat >"$dir/$name/ca.cnf" <<CNF
# openssl ca configuration of one demo CA (tests/lib/ocsp-pki.sh)
[ ca ]
default_ca = demo_ca

[ demo_ca ]
dir = $dir/$name
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
certificate = $cert
private_key = $key
default_md = sha256
default_days = 825
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
preserve = yes

[ policy_any ]
countryName = optional
organizationName = optional
commonName = supplied

[ req ]
distinguished_name = req_dn
[ req_dn ]

[ v3_root ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[ v3_ca ]
basicConstraints = critical,CA:true,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ v3_leaf ]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,nonRepudiation
extendedKeyUsage = clientAuth,emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
authorityInfoAccess = OCSP;URI:\$ENV::OCSP_AIA_URL

[ v3_ocsp ]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,OCSPSigning
noCheck = ignored
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF
}

_ocsp_pki_genkey() {
    local out=$1 curve=$2
    (umask 077 && openssl genpkey -quiet -algorithm EC -pkeyopt "ec_paramgen_curve:$curve" \
        -pkeyopt ec_param_enc:named_curve -out "$out")
}

# _ocsp_pki_ca_sign CADIR CSR OUT EXT [openssl ca options...]: issue with a fresh random
# serial (positive, 16 octets unless the caller gives -serial-hex via OCSP_NEXT_SERIAL).
_ocsp_pki_ca_sign() {
    local cadir=$1 csr=$2 out=$3 ext=$4
    shift 4
    printf '%s\n' "${OCSP_NEXT_SERIAL:-$(printf '%02X%s' $((RANDOM % 0x70 + 0x10)) \
        "$(openssl rand -hex 15 | tr a-f A-F)")}" >"$cadir/serial"
    openssl ca -batch -notext -config "$cadir/ca.cnf" -in "$csr" -out "$out" \
        -extensions "$ext" "$@" 2>"$cadir/last.err" || {
        cat "$cadir/last.err" >&2
        return 1
    }
}

# _ocsp_pki_leaf DIR CADIR NAME CN [openssl ca options...]: DIR/NAME.key (software) + NAME.pem
_ocsp_pki_leaf() {
    local dir=$1 cadir=$2 name=$3 cn=$4
    shift 4
    _ocsp_pki_genkey "$dir/keys/$name.key" P-256
    openssl req -new -config "$cadir/ca.cnf" -key "$dir/keys/$name.key" \
        -subj "/C=RO/O=$OCSP_PKI_ORG/CN=$cn" -out "$dir/keys/$name.csr"
    _ocsp_pki_ca_sign "$cadir" "$dir/keys/$name.csr" "$dir/$name.pem" v3_leaf "$@"
}

_ocsp_pki_serial_of() {
    openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'
}

_ocsp_pki_build_root() {
    local dir=$1
    _ocsp_pki_genkey "$dir/keys/root.key" P-384
    _ocsp_pki_write_cnf "$dir" root "$dir/root.pem" "$dir/keys/root.key"
    openssl req -new -config "$dir/root/ca.cnf" -key "$dir/keys/root.key" \
        -subj "/C=RO/O=$OCSP_PKI_ORG/CN=Demo OCSP Root CA" -out "$dir/keys/root.csr"
    _ocsp_pki_ca_sign "$dir/root" "$dir/keys/root.csr" "$dir/root.pem" v3_root -selfsign \
        -keyfile "$dir/keys/root.key" -md sha384 -startdate "$OCSP_PKI_CA_START" -days 5000
}

# _ocsp_pki_build_ca DIR NAME CN: issuing CA DIR/NAME.pem under the root, backdated to 2019
_ocsp_pki_build_ca() {
    local dir=$1 name=$2 cn=$3
    _ocsp_pki_genkey "$dir/keys/$name.key" P-256
    openssl req -new -config "$dir/root/ca.cnf" -key "$dir/keys/$name.key" \
        -subj "/C=RO/O=$OCSP_PKI_ORG/CN=$cn" -out "$dir/keys/$name.csr"
    _ocsp_pki_ca_sign "$dir/root" "$dir/keys/$name.csr" "$dir/$name.pem" v3_ca -md sha384 \
        -startdate "$OCSP_PKI_CA_START" -days 4000
    _ocsp_pki_write_cnf "$dir" "$name" "$dir/$name.pem" "$dir/keys/$name.key"
    cat "$dir/$name.pem" "$dir/root.pem" >"$dir/$name-chain.pem"
}

# _ocsp_pki_signer DIR CANAME LABEL ID OUT: delegated responder, key generated in the token
_ocsp_pki_signer() {
    local dir=$1 ca=$2 label=$3 id=$4 out=$5
    softhsm_keygen "$dir/hsm" "$label" "$id" EC:prime256v1 "$dir/hsm/$label.pub.pem"
    openssl x509 -new -force_pubkey "$dir/hsm/$label.pub.pem" \
        -subj "/C=RO/O=$OCSP_PKI_ORG/CN=Demo OCSP Responder ($label)" \
        -CA "$dir/$ca.pem" -CAkey "$dir/keys/$ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days "$OCSP_PKI_SIGNER_DAYS" -sha256 \
        -extfile "$dir/$ca/ca.cnf" -extensions v3_ocsp -out "$out"
}

_ocsp_pki_build_leaves() {
    local dir=$1 cadir="$1/qca"
    _ocsp_pki_leaf "$dir" "$cadir" good "Demo Good Holder"
    OCSP_NEXT_SERIAL="C0FFFFFF$(openssl rand -hex 13 | tr a-f A-F)" \
        _ocsp_pki_leaf "$dir" "$cadir" highbit "Demo High-bit Serial Holder"
    _ocsp_pki_leaf "$dir" "$cadir" revoked "Demo Revoked Holder"
    _ocsp_pki_leaf "$dir" "$cadir" hold "Demo Suspended Holder"
    _ocsp_pki_leaf "$dir" "$cadir" expired "Demo Expired Holder" \
        -startdate 20200101000000Z -enddate 20210101000000Z
    openssl ca -batch -config "$cadir/ca.cnf" -revoke "$dir/revoked.pem" \
        -crl_reason keyCompromise 2>"$cadir/last.err" || {
        cat "$cadir/last.err" >&2
        return 1
    }
    openssl ca -batch -config "$cadir/ca.cnf" -revoke "$dir/hold.pem" \
        -crl_reason certificateHold 2>"$cadir/last.err" || {
        cat "$cadir/last.err" >&2
        return 1
    }
    # never issued as far as the CA's records go: same key, not in index.txt
    _ocsp_pki_genkey "$dir/keys/never-issued.key" P-256
    openssl req -new -config "$cadir/ca.cnf" -key "$dir/keys/never-issued.key" \
        -subj "/C=RO/O=$OCSP_PKI_ORG/CN=Demo Never Issued" -out "$dir/keys/never-issued.csr"
    openssl x509 -req -in "$dir/keys/never-issued.csr" -CA "$dir/qca.pem" \
        -CAkey "$dir/keys/qca.key" -set_serial "0x5E$(openssl rand -hex 15)" -days 365 \
        -sha256 -extfile "$cadir/ca.cnf" -extensions v3_leaf -out "$dir/never-issued.pem" \
        2>/dev/null
}

_ocsp_pki_build_other() {
    local dir=$1
    _ocsp_pki_genkey "$dir/keys/other-ca.key" P-256
    _ocsp_pki_write_cnf "$dir" other-ca "$dir/other-ca.pem" "$dir/keys/other-ca.key"
    openssl req -new -config "$dir/other-ca/ca.cnf" -key "$dir/keys/other-ca.key" \
        -subj "/C=RO/O=Other QTSP/CN=Demo Other CA" -out "$dir/keys/other-ca.csr"
    _ocsp_pki_ca_sign "$dir/other-ca" "$dir/keys/other-ca.csr" "$dir/other-ca.pem" v3_root \
        -selfsign -keyfile "$dir/keys/other-ca.key" -startdate "$OCSP_PKI_CA_START" -days 4000
    _ocsp_pki_leaf "$dir" "$dir/other-ca" other "Demo Other Holder"
}

_ocsp_pki_build_rekey() {
    local dir=$1
    _ocsp_pki_build_ca "$dir" qca-rekey "Demo Qualified CA"
    _ocsp_pki_signer "$dir" qca-rekey ocsp-signer-2 02 "$dir/ocsp-signer-2.pem"
    _ocsp_pki_leaf "$dir" "$dir/qca-rekey" rekey-good "Demo Re-keyed CA Holder"
}

_ocsp_pki_write_env() {
    local dir=$1 url=$2 module f v
    module=$(softhsm_module)
    {
        echo "# OCSP demo PKI paths (tests/lib/ocsp-pki.sh); source it"
        printf '%s=%q\n' OCSP_PKI_DIR "$dir" OCSP_AIA_URL "$url" \
            OCSP_ROOT_CERT "$dir/root.pem" OCSP_CA_CERT "$dir/qca.pem" \
            OCSP_CA_KEY "$dir/keys/qca.key" OCSP_CA_CHAIN "$dir/qca-chain.pem" \
            OCSP_CA_DIR "$dir/qca" OCSP_CA_INDEX "$dir/qca/index.txt" \
            OCSP_CA_NOT_BEFORE "$OCSP_PKI_CA_START" \
            OCSP_SIGNER_CERT "$dir/ocsp-signer.pem" OCSP_SIGNER_LABEL ocsp-signer \
            OCSP_REKEY_CA_CERT "$dir/qca-rekey.pem" OCSP_REKEY_CA_CHAIN "$dir/qca-rekey-chain.pem" \
            OCSP_REKEY_INDEX "$dir/qca-rekey/index.txt" \
            OCSP_REKEY_SIGNER_CERT "$dir/ocsp-signer-2.pem" OCSP_REKEY_SIGNER_LABEL ocsp-signer-2 \
            OCSP_OTHER_CA_CERT "$dir/other-ca.pem" OCSP_OTHER_CERT "$dir/other.pem" \
            OCSP_P11_MODULE "$module" OCSP_P11_TOKEN ocsp OCSP_P11_PIN_FILE "$dir/hsm/pin" \
            OCSP_SOFTHSM2_CONF "$dir/hsm/softhsm2.conf"
        for f in good highbit revoked hold expired never-issued rekey-good; do
            v=${f//-/_}
            printf '%s=%q\n' "OCSP_${v^^}_CERT" "$dir/$f.pem" \
                "OCSP_${v^^}_SERIAL" "$(_ocsp_pki_serial_of "$dir/$f.pem")"
        done
    } >"$dir/ocsp-pki.env"
}

_ocsp_pki_build() {
    local dir=$1 url=$2 pin sopin
    rm -rf "$dir/.done" "$dir/hsm" "$dir/keys" "$dir/root" "$dir/qca" "$dir/qca-rekey" \
        "$dir/other-ca"
    mkdir -p "$dir/keys"
    chmod 700 "$dir/keys"
    export OCSP_AIA_URL=$url
    _ocsp_pki_build_root "$dir"
    _ocsp_pki_build_ca "$dir" qca "Demo Qualified CA"
    pin=$(openssl rand -hex 8)
    sopin=$(openssl rand -hex 8)
    softhsm_init "$dir/hsm" ocsp "$pin" "$sopin"
    (umask 077 && printf '%s' "$sopin" >"$dir/hsm/so-pin")
    _ocsp_pki_signer "$dir" qca ocsp-signer 01 "$dir/ocsp-signer.pem"
    _ocsp_pki_build_leaves "$dir"
    _ocsp_pki_build_rekey "$dir"
    _ocsp_pki_build_other "$dir"
    _ocsp_pki_write_env "$dir" "$url"
    printf '%s\n' "$url" >"$dir/.done"
}

_ocsp_pki_current() {
    local dir=$1 url=$2 f
    [[ -e $dir/.done && $(<"$dir/.done") == "$url" ]] || return 1
    for f in ocsp-signer ocsp-signer-2; do
        openssl x509 -in "$dir/$f.pem" -noout -checkend 86400 >/dev/null 2>&1 || return 1
    done
}

_ocsp_pki_demo_locked() {
    local dir=${1:?ocsp_pki_demo DIR URL} url=${2:?ocsp_pki_demo DIR URL} lockfd
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    exec {lockfd}>>"$dir/.lock"
    flock "$lockfd"
    if _ocsp_pki_current "$dir" "$url"; then
        return 0
    fi
    echo "ocsp-pki: building the OCSP demo PKI and SoftHSM2 token in $dir" >&2
    _ocsp_pki_build "$dir" "$url" >/dev/null
}

# ---- the ocspd store (ocspctl) ----

# ocspctl with its log (audit lines on stderr) kept in DIR/ocspctl.log, shown on failure
_ocsp_ctl() {
    "$_OCSP_CTL" -c "$_OCSP_CONF" -d "$_OCSP_STORE" -u demo-setup "$@" 2>>"$_OCSP_LOG" || {
        echo "ocsp_store_demo: ocspctl $* failed:" >&2
        tail -n 5 "$_OCSP_LOG" >&2
        return 1
    }
}

_ocsp_store_demo() {
    local dir=${1:?ocsp_store_demo DIR STORE CONF} store=${2:?store} conf=${3:?conf} st
    dir=$(cd "$dir" && pwd)
    # shellcheck disable=SC1091
    . "$dir/ocsp-pki.env"
    _OCSP_CTL=${BUILD:-build}/ocspctl
    _OCSP_CONF=$conf
    _OCSP_STORE=$store
    _OCSP_LOG=$dir/ocspctl.log
    : >"$_OCSP_LOG"
    [[ -x $_OCSP_CTL ]] || {
        echo "ocsp_store_demo: $_OCSP_CTL not built" >&2
        return 1
    }
    export SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF
    rm -rf "$store"
    mkdir -p "$store"
    _ocsp_ctl init >/dev/null
    _ocsp_ctl issuer add qca --cert "$OCSP_CA_CERT" --key-label "$OCSP_SIGNER_LABEL" \
        --signer-cert "$OCSP_SIGNER_CERT" --signature ecdsa --digest sha256 --nonce echo \
        --unissued revoked --archive-cutoff yes >/dev/null
    _ocsp_ctl issuer add qca-rekey --cert "$OCSP_REKEY_CA_CERT" \
        --key-label "$OCSP_REKEY_SIGNER_LABEL" --signer-cert "$OCSP_REKEY_SIGNER_CERT" \
        --signature ecdsa --digest sha256 --nonce echo --unissued revoked \
        --archive-cutoff yes >/dev/null
    _ocsp_ctl import-index qca "$OCSP_CA_INDEX" >/dev/null
    _ocsp_ctl import-index qca-rekey "$OCSP_REKEY_INDEX" >/dev/null
    st=$(_ocsp_ctl status qca "$OCSP_HOLD_SERIAL")
    if ! grep -qi hold <<<"$st"; then
        _ocsp_ctl hold qca "$OCSP_HOLD_SERIAL" >/dev/null
    fi
    _ocsp_ctl presign >/dev/null
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    ocsp_pki_demo "${1:?usage: ocsp-pki.sh DIR URL}" "${2:?usage: ocsp-pki.sh DIR URL}"
fi
