#!/usr/bin/env bash
#
# test_signer_p11.sh: the PKCS#11 signer backend (common/signer_p11.c, DESIGN D1) against a
# real SoftHSM2 token. It makes a throw-away token in a temp dir, generates key pairs inside it
# (P-256, P-384, RSA-3072: STANDARDS ALG-02, ALG-04, TSA-12), makes certificates that carry the
# token's public keys (any CA key signs them; only the key they carry matters here), and runs
# the Check suite check_signer_p11 with P11_TEST_DIR set, which adds its token cases (login,
# key lookup and matching, ECDSA/PKCS#1/PSS signatures verified by OpenSSL, session reopen and
# re-login, two threads) to the pure ones. One result line per Check test, then
#   test_signer_p11: N passed, M failed
# Environment: BUILD (default build) selects the build tree, e.g. BUILD=build-asan.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIB=$ROOT/tests/lib
# shellcheck source=tests/lib/common.sh
. "$LIB/common.sh"
# shellcheck source=tests/lib/softhsm.sh
. "$LIB/softhsm.sh"

BUILD=${BUILD:-build}
case $BUILD in
/*) BIN=$BUILD/tests/check_signer_p11 ;;
*) BIN=$ROOT/$BUILD/tests/check_signer_p11 ;;
esac
if [[ ! -x $BIN ]]; then
    make -s -C "$ROOT" BUILD="$BUILD" "$BUILD/tests/check_signer_p11" >/dev/null ||
        die "cannot build $BIN"
fi

TMP=$(mktemp -d)
trap '[[ -n ${KEEP_TMP:-} ]] && echo "kept $TMP" || rm -rf "$TMP"' EXIT
TOK=$TMP/token
D=$TMP/p11
mkdir -p "$D"
MODULE=$(softhsm_module) || die "no SoftHSM2 module"
LABEL=t
LOG=$TMP/setup.log

softhsm_init "$TOK" "$LABEL" 1234 5678 >>"$LOG" 2>&1 || die "softhsm_init failed: $(tail -n 3 "$LOG")"

# cert NAME PUBPEM: D/NAME.crt carrying PUBPEM, signed by the throw-away CA key.
cert() {
    openssl x509 -new -subj "/CN=$1" -force_pubkey "$2" -key "$TMP/ca.key" -days 1 \
        -out "$D/$1.crt" 2>>"$LOG"
}

# keygen LABEL ID KEYTYPE: a key pair generated in the token and a cert for its public key.
keygen() {
    softhsm_keygen "$TOK" "$1" "$2" "$3" "$TMP/$1.pub.pem" >>"$LOG" 2>&1 &&
        cert "$1" "$TMP/$1.pub.pem"
}

# der_len N: the DER length octets of N content bytes, in hex.
der_len() {
    if (($1 < 128)); then
        printf '%02x' "$1"
    elif (($1 < 256)); then
        printf '81%02x' "$1"
    else
        printf '82%04x' "$1"
    fi
}

# ec_pub_from_listing ID OUTPEM: the SubjectPublicKeyInfo (RFC 5480) of the EC public key
# object ID, built from the CKA_EC_POINT and CKA_EC_PARAMS that `pkcs11-tool --list-objects`
# prints. pkcs11-tool 0.23 cannot --read-object a P-384 public key ("cannot create EVP_PKEY").
ec_pub_from_listing() {
    local listing point params n strip alg bits
    # --list-objects ignores --id: keep the one object whose ID matches
    listing=$(softhsm_tool "$TOK" --list-objects --type pubkey 2>>"$LOG" | awk -v want="$1" '
        /^[^ \t]/        { if (id == want) printf "%s", rec; rec = ""; id = "" }
        /^[ \t]+ID:/     { id = $2 }
                         { rec = rec $0 "\n" }
        END              { if (id == want) printf "%s", rec }') || return 1
    point=$(awk '/^[ \t]+EC_POINT:/ { print $2 }' <<<"$listing")
    params=$(awk '/^[ \t]+EC_PARAMS:/ { print $2 }' <<<"$listing")
    [[ $point =~ ^04[0-9a-f]+$ && $params =~ ^06[0-9a-f]+$ ]] || return 1
    # CKA_EC_POINT is an OCTET STRING around the point: drop its tag and length
    n=$((16#${point:2:2}))
    strip=$((n < 128 ? 4 : 4 + 2 * (n - 128)))
    point=${point:strip}
    alg="06072a8648ce3d0201$params" # id-ecPublicKey, namedCurve
    alg="30$(der_len $((${#alg} / 2)))$alg"
    bits="03$(der_len $((${#point} / 2 + 1)))00$point"
    printf '30%s%s%s' "$(der_len $(((${#alg} + ${#bits}) / 2)))" "$alg" "$bits" | xxd -r -p |
        openssl pkey -pubin -inform DER -out "$2" 2>>"$LOG"
}

# keygen_ec_listed LABEL ID KEYTYPE: keygen for curves pkcs11-tool cannot export (above).
keygen_ec_listed() {
    softhsm_tool "$TOK" --keypairgen --key-type "$3" --usage-sign --label "$1" --id "$2" \
        --allowed-mechanisms ECDSA,ECDSA-SHA256,ECDSA-SHA384,ECDSA-SHA512 >>"$LOG" 2>&1 &&
        ec_pub_from_listing "$2" "$TMP/$1.pub.pem" && cert "$1" "$TMP/$1.pub.pem"
}

# soft_cert NAME ALG OPTS...: a cert for a software key, i.e. a key the token does not hold.
soft_cert() {
    local name=$1
    shift
    openssl genpkey "$@" -out "$TMP/$name.key" 2>>"$LOG" &&
        openssl pkey -in "$TMP/$name.key" -pubout -out "$TMP/$name.pub.pem" 2>>"$LOG" &&
        cert "$name" "$TMP/$name.pub.pem"
}

setup() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/ca.key" \
        2>>"$LOG" || return 1
    keygen ec256 01 EC:prime256v1 || return 1
    keygen_ec_listed ec384 02 EC:secp384r1 || return 1
    keygen rsa3072 03 rsa:3072 || return 1
    # two private keys under one label: find_key must refuse to choose
    keygen dup 04 EC:prime256v1 || return 1
    softhsm_keygen "$TOK" dup 05 EC:prime256v1 "$TMP/dup2.pub.pem" >>"$LOG" 2>&1 || return 1
    # public key object under another label, same CKA_ID: found by CKA_ID
    keygen byid 06 EC:prime256v1 || return 1
    softhsm_tool "$TOK" --read-object --type pubkey --id 06 -o "$TMP/byid.der" >>"$LOG" 2>&1 &&
        softhsm_tool "$TOK" --delete-object --type pubkey --id 06 >>"$LOG" 2>&1 &&
        softhsm_tool "$TOK" --write-object "$TMP/byid.der" --type pubkey --label byid-pub \
            --id 06 >>"$LOG" 2>&1 || return 1
    # no public key object at all: an EC key cannot be matched
    keygen nopub 07 EC:prime256v1 || return 1
    softhsm_tool "$TOK" --delete-object --type pubkey --id 07 >>"$LOG" 2>&1 || return 1
    # the test clears CKA_SIGN on this one
    keygen nosign 08 EC:prime256v1 || return 1
    soft_cert other256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256 || return 1
    # same size as rsa3072, so only the modulus bytes tell them apart
    soft_cert otherrsa -algorithm RSA -pkeyopt rsa_keygen_bits:3072 || return 1
    (umask 077 && cp "$TOK/pin" "$D/pin" && printf '1234\r\n' >"$D/pin-crlf" &&
        printf 'wrong-XYZZY-pin\n' >"$D/badpin")
}

setup || die "token set-up failed: $(tail -n 5 "$LOG")"

OUT=$TMP/check.out
rc=0
# the fault-injecting shim (bench/p11delay.c) for the removed-device and refused-PIN cases
SHIM=${BIN%/tests/check_signer_p11}/bench/libp11delay.so
P11_TEST_DIR=$D P11_MODULE=$MODULE P11_TOKEN=$LABEL P11_SHIM=$SHIM CK_VERBOSITY=verbose \
    "$BIN" >"$OUT" 2>&1 || rc=$?

# One line per Check test: "file:line:P:tcase:test:iter: Passed" or :F:/:E: with a message.
token_passed=0
while IFS= read -r line; do
    IFS=: read -r _ _ res tcase name _ <<<"$line"
    msg=${line#*:*:*:*:*:*: }
    case $res in
    P)
        t_ok "$tcase/$name"
        [[ $tcase == token ]] && token_passed=$((token_passed + 1))
        ;;
    F | E) t_fail "$tcase/$name" "$msg" ;;
    esac
done < <(grep -E '^[^:]+:[0-9]+:[PFE]:' "$OUT" || true)

if ((token_passed == 0)); then
    t_fail "token cases" "none ran (is P11_TEST_DIR honoured?)"
fi
if ((rc != 0)) && ((T_FAILED == 0)); then
    t_fail "check_signer_p11" "exited with status $rc"
fi
if ((T_FAILED > 0)); then
    echo "---- last lines of check_signer_p11 output ----"
    tail -n 40 "$OUT"
fi
t_summary test_signer_p11
