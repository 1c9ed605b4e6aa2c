# shellcheck shell=bash
#
# softhsm.sh: a private SoftHSM2 token for `make run` and the integration tests, with TSU key
# pairs generated inside the token (EN 319 421 TIS-7.6.2; STANDARDS TSA-12, TSA-13, CIR-04:
# key generated in the device, CKA_SENSITIVE, never extractable, CKA_LOCAL). Each key is also
# limited by CKA_ALLOWED_MECHANISMS to signature mechanisms (TSP-25: key used only for
# signing time-stamps); the signer uses CKM_ECDSA, CKM_RSA_PKCS and CKM_RSA_PKCS_PSS.
# Source it.
#
#   softhsm_module                         print the path of libsofthsm2.so
#   softhsm_init DIR TOKEN_LABEL PIN SOPIN  DIR/softhsm2.conf, DIR/tokens, DIR/pin (0600),
#                                          DIR/token-label; exports SOFTHSM2_CONF
#   softhsm_keygen DIR LABEL ID KEYTYPE OUTPUB
#                                          generate a key pair in the token (KEYTYPE as for
#                                          pkcs11-tool: EC:prime256v1, EC:secp384r1, rsa:3072)
#                                          and write the public key as PEM to OUTPUB
#   softhsm_tool DIR ARGS...               pkcs11-tool on that token, logged in with DIR/pin
#   softhsm_privkey_access DIR LABEL       print the "Access:" line pkcs11-tool reports for
#                                          the private key LABEL
#
# The PIN reaches pkcs11-tool through the environment (--pin env:VAR), not argv. Only
# softhsm2-util --init-token takes PINs on its command line; this token is a demo token.

softhsm_module() {
    local cand
    for cand in "${SOFTHSM_MODULE:-}" \
        "$(dpkg -L libsofthsm2 softhsm2 2>/dev/null | grep -m1 '/libsofthsm2\.so$')" \
        /usr/lib/softhsm/libsofthsm2.so \
        /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
        /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so \
        /usr/local/lib/softhsm/libsofthsm2.so; do
        if [[ -n $cand && -f $cand ]]; then
            printf '%s\n' "$cand"
            return 0
        fi
    done
    echo "softhsm: libsofthsm2.so not found (apt-get install softhsm2)" >&2
    return 1
}

softhsm_init() {
    local dir=${1:?softhsm_init DIR LABEL PIN SOPIN} label=${2:?label} pin=${3:?pin}
    local sopin=${4:?so pin}
    mkdir -p "$dir/tokens" || return 1
    dir=$(cd "$dir" && pwd) || return 1
    chmod 700 "$dir" "$dir/tokens" || return 1
    printf '%s\n' \
        "# SoftHSM2 configuration written by tests/lib/softhsm.sh" \
        "directories.tokendir = $dir/tokens" \
        "objectstore.backend = file" \
        "log.level = ERROR" \
        "slots.removable = false" >"$dir/softhsm2.conf" || return 1
    export SOFTHSM2_CONF="$dir/softhsm2.conf"
    if softhsm2-util --show-slots 2>/dev/null |
        awk -v want="$label" '$1 == "Label:" { sub(/^[ \t]*Label:[ \t]*/, ""); sub(/[ \t]+$/, "");
            if ($0 == want) found = 1 } END { exit !found }'; then
        echo "softhsm: a token labelled '$label' already exists in $dir/tokens" >&2
        return 1
    fi
    softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$sopin" \
        >/dev/null || return 1
    (umask 077 && printf '%s' "$pin" >"$dir/pin") || return 1
    chmod 600 "$dir/pin" || return 1
    printf '%s\n' "$label" >"$dir/token-label" || return 1
}

# softhsm_tool DIR ARGS...: pkcs11-tool against the token in DIR, logged in as the user.
softhsm_tool() {
    local dir=${1:?softhsm_tool DIR ARGS...} module token
    shift
    module=$(softhsm_module) || return 1
    token=$(<"$dir/token-label") || return 1
    SOFTHSM2_CONF="$dir/softhsm2.conf" SOFTHSM_TOOL_PIN=$(<"$dir/pin") \
        pkcs11-tool --module "$module" --token-label "$token" \
        --login --pin env:SOFTHSM_TOOL_PIN "$@"
}

softhsm_privkey_access() {
    local dir=${1:?softhsm_privkey_access DIR LABEL} label=${2:?label}
    softhsm_tool "$dir" --list-objects --type privkey 2>/dev/null | awk -v want="$label" '
        /^[^ \t]/            { lbl = ""; inpriv = ($0 ~ /^Private Key Object/) }
        /^[ \t]+label:/      { sub(/^[ \t]+label:[ \t]*/, ""); lbl = $0 }
        /^[ \t]+Access:/     { if (inpriv && lbl == want) { sub(/^[ \t]+Access:[ \t]*/, ""); print; found = 1 } }
        END                  { exit found ? 0 : 1 }'
}

softhsm_keygen() {
    local dir=${1:?softhsm_keygen DIR LABEL ID KEYTYPE OUTPUB} label=${2:?label} id=${3:?id}
    local keytype=${4:?keytype} outpub=${5:?output PEM} mechs access
    case $keytype in
    EC:* | ec:*) mechs=ECDSA,ECDSA-SHA256,ECDSA-SHA384,ECDSA-SHA512 ;;
    rsa:* | RSA:*) mechs=RSA-PKCS,RSA-PKCS-PSS,SHA256-RSA-PKCS,SHA384-RSA-PKCS,SHA512-RSA-PKCS,SHA256-RSA-PKCS-PSS,SHA384-RSA-PKCS-PSS,SHA512-RSA-PKCS-PSS ;;
    *)
        echo "softhsm: unsupported key type '$keytype'" >&2
        return 1
        ;;
    esac
    softhsm_tool "$dir" --keypairgen --key-type "$keytype" --usage-sign \
        --label "$label" --id "$id" --allowed-mechanisms "$mechs" >/dev/null || return 1
    # Generated in the token, sensitive, never extractable: refuse the key otherwise.
    access=$(softhsm_privkey_access "$dir" "$label") || {
        echo "softhsm: private key '$label' not found after generation" >&2
        return 1
    }
    case $access in
    *"always sensitive"*"never extractable"*local*) ;;
    *)
        echo "softhsm: private key '$label' has weak attributes: $access" >&2
        return 1
        ;;
    esac
    softhsm_tool "$dir" --read-object --type pubkey --id "$id" 2>/dev/null |
        openssl pkey -pubin -inform DER -out "$outpub" || {
        echo "softhsm: cannot export public key '$label'" >&2
        return 1
    }
}
