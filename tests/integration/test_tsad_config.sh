#!/usr/bin/env bash
#
# test_tsad_config.sh: tsad's start-up checks of its configuration, certificates, keys and PIN,
# and how it behaves with a defective TSU or no time source (STANDARDS TSP-24, TSA-09, TPR-09,
# TSA-10, TSA-05, TSP-12, TSP-13, ALG-01, TSA-17; errors name file:line; -n checks).
#   - `tsad -n -c GOOD` exits 0; configuration errors exit non-zero naming `file:line:`;
#   - TSU certificates without a critical, timeStamping-only extendedKeyUsage are refused at
#     start with a message naming extendedKeyUsage (TSP-24); a certificate that does not chain
#     to its configured CA, or a key that does not match it, is refused too (TSA-10);
#   - a TSU whose privateKeyUsagePeriod is over loads, but its requests get systemFailure and
#     no token (TSA-09, TPR-09) while the other TSUs keep issuing;
#   - a wrong, missing or empty PIN file stops the start with a clear message;
#   - no chronyd socket: tsad starts, /healthz 503 (unreachable), requests timeNotAvailable.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsad_config
itest_tsa_setup local
GOOD=$CONF

# run_tsad OUT ARGS...: run tsad in the foreground (bounded by timeout); sets RC, output in OUT
run_tsad() {
    local out=$1
    shift
    timeout 30 "$BUILD/tsad" "$@" >"$out" 2>&1
    RC=$?
}

# ---- a good configuration ----
run_tsad "$TMP/n.out" -n -c "$GOOD"
if ((RC == 0)) && grep -q "is valid (5 TSU(s))" "$TMP/n.out"; then
    t_ok "tsad -n -c GOOD exits 0 and reports 5 TSUs"
else
    t_fail "tsad -n -c GOOD exits 0" "exit $RC: $(tail -n 3 "$TMP/n.out")"
fi

# ---- configuration errors: non-zero exit, message `tsad: FILE:LINE: ...` ----
# conf_error NAME FILE LINE-REGEX MESSAGE-REGEX: tsad -n on FILE fails naming FILE:LINE
conf_error() {
    local name=$1 f=$2 line=$3 msg=$4
    run_tsad "$TMP/e.out" -n -c "$f"
    if ((RC == 0 || RC == 124)); then
        t_fail "$name" "exit status $RC"
    elif grep -Eq 'Sanitizer|runtime error' "$TMP/e.out"; then # BUILD=build-asan
        t_fail "$name" "sanitizer report: $(grep -Em2 'SUMMARY|runtime error' "$TMP/e.out")"
    elif ! grep -Eq "^tsad: $f:$line: .*$msg" "$TMP/e.out"; then
        t_fail "$name" "message '$(tail -n 1 "$TMP/e.out")' lacks '$f:$line: ...$msg'"
    else
        t_ok "$name"
    fi
}
# variant NAME SED-SCRIPT: a copy of GOOD edited by sed; prints its path
variant() {
    sed "$2" "$GOOD" >"$TMP/$1.conf"
    printf '%s\n' "$TMP/$1.conf"
}
# line_of FILE REGEX: first line number matching REGEX
line_of() {
    grep -n -m1 -E "$2" "$1" | cut -d: -f1
}

f=$(variant unknown 's/^threads = 2$/bogus_key = 1/')
conf_error "unknown key -> file:line: unknown key" "$f" "$(line_of "$f" '^bogus_key')" \
    "unknown key 'bogus_key'"
f=$(variant accuracy '0,/^accuracy = 100ms$/s//accuracy = 2s/')
conf_error "accuracy 2s -> file:line: accuracy 1us..1s (TPR-04, TSA-01)" "$f" \
    "$(line_of "$f" '^accuracy = 2s')" "accuracy"
f=$(variant accuracy0 '0,/^accuracy = 100ms$/s//accuracy = fast/')
conf_error "accuracy not a duration -> file:line" "$f" "$(line_of "$f" '^accuracy = fast')" \
    "accuracy"
f=$(variant weakhash 's/^hashes = .*/hashes = sha256 sha1/')
conf_error "SHA-1 in hashes -> file:line: refused (ALG-01)" "$f" "$(line_of "$f" '^hashes')" \
    "'sha1' is not accepted.*ALG-01"
f=$(variant badoid "s/^policy = $TSA_POLICY_N\$/policy = not.an.oid/")
conf_error "policy not an OID -> file:line" "$f" "$(line_of "$f" '^policy = not')" \
    "not a dotted OID"
f=$(variant syntax 's/^\[log\]$/[log]\nthis line is not ini/')
conf_error "syntax error -> file:line" "$f" "$(line_of "$f" '^this line')" "syntax error"
f=$(variant badsig '0,/^signature = ecdsa$/s//signature = dsa/')
conf_error "unknown signature scheme -> file:line" "$f" "$(line_of "$f" '^signature = dsa')" \
    "signature"
printf '\n[tsu q2]\npolicy = 1.3.6.1.4.1.55555.1.33\npath = /tsa/qualified\ncertificate = %s\nkey_file = %s\nsignature = ecdsa\n' \
    "$SOFT_P256_CERT" "$SOFT_P256_KEY" >"$TMP/q2.units"
tsad_write_conf "$TMP/q2.conf" "$TMP/pki" "$PORT" "$SOCK" "$TMP/store" "$TMP/q2.units"
conf_error "a second TSU on the qualified path -> refused (TSA-17)" "$TMP/q2.conf" "[0-9]+" \
    "qualified and must be alone"
printf '\n[tsu dup]\npolicy = %s\npath = /tsa\ncertificate = %s\nkey_file = %s\nsignature = ecdsa\n' \
    "$TSA_POLICY_N" "$SOFT_P256_CERT" "$SOFT_P256_KEY" >"$TMP/dup.units"
tsad_write_conf "$TMP/dup.conf" "$TMP/pki" "$PORT" "$SOCK" "$TMP/store" "$TMP/dup.units"
conf_error "two TSUs with one policy on one path -> refused" "$TMP/dup.conf" "[0-9]+" \
    "serve policy $TSA_POLICY_N on the same path"
run_tsad "$TMP/e.out" -n -c "$TMP/does-not-exist.conf"
if ((RC != 0 && RC != 124)) && grep -q "does-not-exist.conf.*cannot open" "$TMP/e.out"; then
    t_ok "missing configuration file -> non-zero, 'cannot open'"
else
    t_fail "missing configuration file -> non-zero" "exit $RC: $(tail -n 1 "$TMP/e.out")"
fi

# ---- TSU certificates refused at start (TSP-24, TSA-10) ----
# extra_unit FILE CERT KEY [CHAIN]: one software-key TSU on /tsa/extra
extra_unit() {
    printf '\n[tsu extra]\npolicy = 1.3.6.1.4.1.55555.1.21\npath = /tsa/extra\n' >"$1"
    printf 'certificate = %s\nchain = %s\nkey_file = %s\n' "$2" "${4:-$PKI_CA_CHAIN}" "$3" >>"$1"
    printf 'signature = ecdsa\ndigest = sha256\naccuracy = 1s\n' >>"$1"
}
# refused NAME CERT KEY MESSAGE-REGEX [CHAIN]: tsad (really started, not -n) exits non-zero
# with MESSAGE-REGEX in its output and never serves
refused() {
    local name=$1 p
    extra_unit "$TMP/x.units" "$2" "$3" "${5:-}"
    p=$(free_port)
    tsad_write_conf "$TMP/x.conf" "$TMP/pki" "$p" "$SOCK" "$TMP/store-x" "$TMP/x.units"
    run_tsad "$TMP/x.out" -c "$TMP/x.conf"
    if ((RC == 0 || RC == 124)); then
        t_fail "$name" "exit status $RC"
    elif ! grep -Eq "$4" "$TMP/x.out"; then
        t_fail "$name" "no '$4' in: $(grep -E 'err|tsad:' "$TMP/x.out" | tail -n 2 | tr '\n' ' ')"
    elif grep -q 'AUDIT event=service_start' "$TMP/x.out"; then
        t_fail "$name" "the service started"
    elif grep -Eq 'Sanitizer|runtime error' "$TMP/x.out"; then # BUILD=build-asan
        t_fail "$name" "sanitizer report: $(grep -Em2 'SUMMARY|runtime error' "$TMP/x.out")"
    else
        t_ok "$name"
    fi
}
refused "extendedKeyUsage not critical -> start refused (TSP-24)" \
    "$BAD_EKU_NONCRITICAL_CERT" "$BAD_EKU_NONCRITICAL_KEY" \
    '\[tsu extra\].*extendedKeyUsage is not critical.*TSP-24'
refused "extendedKeyUsage timeStamping + serverAuth -> start refused (TSP-24)" \
    "$BAD_EKU_EXTRA_CERT" "$BAD_EKU_EXTRA_KEY" \
    '\[tsu extra\].*extendedKeyUsage must hold id-kp-timeStamping and nothing else.*TSP-24'
refused "no extendedKeyUsage -> start refused (TSP-24)" \
    "$BAD_EKU_NONE_CERT" "$BAD_EKU_NONE_KEY" \
    '\[tsu extra\].*no extendedKeyUsage extension.*TSP-24'
refused "certificate that does not chain to its configured CA -> start refused (TSA-10)" \
    "$SOFT_P256_CERT" "$SOFT_P256_KEY" '\[tsu extra\] certificate does not verify' \
    "$PKI_ROOT_CERT"
refused "key that does not match the certificate -> start refused (TSA-10)" \
    "$SOFT_P256_CERT" "$BAD_EKU_NONE_KEY" '\[tsu extra\] has no usable signing key'
run_tsad "$TMP/x.out" -n -c "$TMP/x.conf"
if ((RC != 0 && RC != 124)); then t_ok "tsad -n also refuses the mismatched key"; else
    t_fail "tsad -n also refuses the mismatched key" "exit $RC"
fi

# ---- a TSU certificate that can issue certificates (issue 8; RFC 3161 §2.3, TSP-24/25) ----
# The time-stamping key must be kept apart from certificate-issuing keys: basicConstraints
# CA:TRUE, or keyCertSign/cRLSign in keyUsage, is refused even with a correct critical
# timeStamping EKU. The certificates are issued here by the demo TSA CA (pki.sh profiles + one
# line each).
# ca_tsu NAME BASIC-CONSTRAINTS-LINE KEY-USAGE: software P-256 key TMP/NAME.key, cert TMP/NAME.pem
ca_tsu() {
    local name=$1
    printf '%s\n' "[ x ]" "$2" "keyUsage = $3" "extendedKeyUsage = critical,timeStamping" \
        "subjectKeyIdentifier = hash" "authorityKeyIdentifier = keyid:always" \
        "certificatePolicies = $TSA_POLICY_N" >"$TMP/$name.cnf"
    (umask 077 && openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$TMP/$name.key") &&
        openssl pkey -in "$TMP/$name.key" -pubout -out "$TMP/$name.pub.pem" &&
        openssl x509 -new -force_pubkey "$TMP/$name.pub.pem" -subj "$(pki_tsu_subject "$name")" \
            -CA "$PKI_DIR/tsaca.pem" -CAkey "$PKI_DIR/tsaca.key" -set_serial 0x$RANDOM$RANDOM \
            -days 30 -sha256 -extfile "$TMP/$name.cnf" -extensions x -out "$TMP/$name.pem" \
            2>/dev/null
}
ca_tsu tsu-ca "basicConstraints = critical,CA:true" "critical,digitalSignature" ||
    fatal "CA:TRUE TSU certificate" "openssl could not issue it"
ca_tsu tsu-certsign "" "critical,digitalSignature,keyCertSign" ||
    fatal "keyCertSign TSU certificate" "openssl could not issue it"
ca_tsu tsu-crlsign "basicConstraints = critical,CA:false" "critical,digitalSignature,cRLSign" ||
    fatal "cRLSign TSU certificate" "openssl could not issue it"
refused "TSU certificate with basicConstraints CA:TRUE -> start refused (RFC 3161 §2.3)" \
    "$TMP/tsu-ca.pem" "$TMP/tsu-ca.key" \
    '\[tsu extra\] certificate .* refused: .*is a CA certificate \(basicConstraints CA:TRUE\).*RFC 3161 §2.3'
run_tsad "$TMP/x.out" -n -c "$TMP/x.conf"
if ((RC != 0 && RC != 124)) && grep -q 'basicConstraints CA:TRUE' "$TMP/x.out"; then
    t_ok "tsad -n also refuses the CA:TRUE TSU certificate"
else
    t_fail "tsad -n also refuses the CA:TRUE TSU certificate" "exit $RC: $(tail -n 2 "$TMP/x.out")"
fi
refused "TSU certificate with keyCertSign in keyUsage -> start refused (RFC 3161 §2.3)" \
    "$TMP/tsu-certsign.pem" "$TMP/tsu-certsign.key" \
    '\[tsu extra\] certificate .* refused: keyUsage allows keyCertSign.*RFC 3161 §2.3'
refused "TSU certificate with cRLSign in keyUsage -> start refused (RFC 3161 §2.3)" \
    "$TMP/tsu-crlsign.pem" "$TMP/tsu-crlsign.key" \
    '\[tsu extra\] certificate .* refused: keyUsage allows .*cRLSign.*RFC 3161 §2.3'

# ---- PIN file (the token login) ----
# pin_case NAME PIN-FILE MESSAGE-REGEX
pin_case() {
    local p
    p=$(free_port)
    tsad_write_conf "$TMP/pin.conf" "$TMP/pki" "$p" "$SOCK" "$TMP/store-x"
    sed -i "s|^pin_file = .*|pin_file = $2|" "$TMP/pin.conf"
    run_tsad "$TMP/pin.out" -c "$TMP/pin.conf"
    if ((RC == 0 || RC == 124)); then
        t_fail "$1" "exit status $RC"
    elif ! grep -Eq "$3" "$TMP/pin.out"; then
        t_fail "$1" "no '$3' in: $(grep -E 'err|tsad:' "$TMP/pin.out" | tail -n 2 | tr '\n' ' ')"
    elif grep -q "$(cat "$PKI_P11_PIN_FILE")" "$TMP/pin.out"; then
        t_fail "$1" "the log shows the PIN"
    elif grep -Eq 'Sanitizer|runtime error' "$TMP/pin.out"; then # BUILD=build-asan
        t_fail "$1" "sanitizer report: $(grep -Em2 'SUMMARY|runtime error' "$TMP/pin.out")"
    else
        t_ok "$1"
    fi
}
(umask 077 && printf 'not-the-pin\n' >"$TMP/wrong.pin")
pin_case "wrong PIN -> start fails: C_Login CKR_PIN_INCORRECT" "$TMP/wrong.pin" \
    'C_Login: CKR_PIN_INCORRECT'
pin_case "missing PIN file -> start fails naming the file" "$TMP/nowhere.pin" \
    "PIN file $TMP/nowhere.pin: No such file"
(umask 077 && : >"$TMP/empty.pin")
pin_case "empty PIN file -> start fails" "$TMP/empty.pin" "PIN file $TMP/empty.pin is empty"
# issue 8 item 8: a PIN file that group or others may read is refused, not only warned about
# (the right PIN: only its mode is wrong)
cp "$PKI_P11_PIN_FILE" "$TMP/group.pin" && chmod 640 "$TMP/group.pin"
pin_case "group-readable PIN file (0640) -> start refused (issue 8)" "$TMP/group.pin" \
    "PIN file $TMP/group.pin is readable or writable by group or others \(mode 0640\).*chmod 600"
cp "$PKI_P11_PIN_FILE" "$TMP/world.pin" && chmod 604 "$TMP/world.pin"
pin_case "world-readable PIN file (0604) -> start refused (issue 8)" "$TMP/world.pin" \
    "PIN file $TMP/world.pin is readable or writable by group or others \(mode 0604\)"
# pin_file = credential:NAME reads $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=)
mkdir -p "$TMP/cred" && cp "$PKI_P11_PIN_FILE" "$TMP/cred/tsad-pin" && chmod 400 "$TMP/cred/tsad-pin"
tsad_write_conf "$TMP/cred.conf" "$TMP/pki" "$PORT" "$SOCK" "$TMP/store-x"
sed -i "s|^pin_file = .*|pin_file = credential:tsad-pin|" "$TMP/cred.conf"
RC=0
CREDENTIALS_DIRECTORY=$TMP/cred timeout 30 "$BUILD/tsad" -n -c "$TMP/cred.conf" >"$TMP/cred.out" 2>&1 ||
    RC=$?
if ((RC == 0)) && grep -q "is valid" "$TMP/cred.out"; then
    t_ok "pin_file = credential:tsad-pin reads \$CREDENTIALS_DIRECTORY/tsad-pin (LoadCredential=)"
else
    t_fail "pin_file = credential:tsad-pin reads \$CREDENTIALS_DIRECTORY/tsad-pin" \
        "exit $RC: $(tail -n 2 "$TMP/cred.out")"
fi
RC=0
env -u CREDENTIALS_DIRECTORY timeout 30 "$BUILD/tsad" -n -c "$TMP/cred.conf" >"$TMP/cred.out" 2>&1 ||
    RC=$?
if ((RC != 0 && RC != 124)) &&
    grep -q 'PIN file credential:tsad-pin: \$CREDENTIALS_DIRECTORY is not set' "$TMP/cred.out"; then
    t_ok "credential: without \$CREDENTIALS_DIRECTORY -> start refused, saying so"
else
    t_fail "credential: without \$CREDENTIALS_DIRECTORY -> start refused, saying so" \
        "exit $RC: $(tail -n 2 "$TMP/cred.out")"
fi
sed -i "s|^pin_file = .*|pin_file = credential:../pin|" "$TMP/cred.conf"
RC=0
CREDENTIALS_DIRECTORY=$TMP/cred timeout 30 "$BUILD/tsad" -n -c "$TMP/cred.conf" >"$TMP/cred.out" 2>&1 ||
    RC=$?
if ((RC != 0 && RC != 124)) && grep -Eq "^tsad: $TMP/cred.conf:[0-9]+: pin_file = credential:" "$TMP/cred.out"; then
    t_ok "credential:../pin (a path, not a name) -> file:line error"
else
    t_fail "credential:../pin -> file:line error" "exit $RC: $(tail -n 2 "$TMP/cred.out")"
fi

# ---- privateKeyUsagePeriod over: loads, systemFailure, no token (TSA-09, TPR-09) ----
# ask URL: "granted", a failure name from `openssl ts -reply -text`, or the HTTP status
ask() {
    local code text
    code=$(curl -s --max-time 10 -o "$TMP/r.tsr" -w '%{http_code}' \
        -H 'Content-Type: application/timestamp-query' --data-binary @"$TMP/q.tsq" "$1") || true
    [[ $code == 200 ]] || { echo "http-$code"; return; }
    text=$(openssl ts -reply -in "$TMP/r.tsr" -text 2>/dev/null)
    if grep -q '^Status: Granted' <<<"$text"; then
        echo granted
    elif ! [[ $text == *$'TST info:\nNot included'* ]]; then
        echo "rejection-with-token"
    elif grep -q '^Failure info: the request cannot be handled due to system failure$' <<<"$text"; then
        echo systemFailure
    elif grep -q "^Failure info: the TSA's time source is not available$" <<<"$text"; then
        echo timeNotAvailable
    else
        echo "other: $(grep -E '^(Status|Failure info)' <<<"$text" | tr '\n' ' ')"
    fi
}
printf 'config test document\n' >"$TMP/doc.txt"
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null ||
    fatal "openssl ts -query" "cannot build the query"
extra_unit "$TMP/pkup.units" "$PKUP_EXPIRED_CERT" "$PKUP_EXPIRED_KEY"
tsad_write_conf "$TMP/pkup.conf" "$TMP/pki" "$PORT" "$SOCK" "$TMP/store" "$TMP/pkup.units"
LOG=$TMP/pkup.log
if tsad_start "$TMP/pkup.conf" "$LOG" && wait_http "http://127.0.0.1:$PORT/healthz" 10 200; then
    t_ok "a TSU whose privateKeyUsagePeriod is over still loads (tsad starts)"
    a=$(ask "http://127.0.0.1:$PORT/tsa/extra")
    if [[ $a == systemFailure ]]; then t_ok "its requests get systemFailure, no token (TSA-09, TPR-09, TSP-13)"; else
        t_fail "its requests get systemFailure, no token (TSA-09)" "got $a"
    fi
    if grep -q '\[tsu extra\] outside its key usage period' "$LOG"; then t_ok "and the refusal is logged as an error"; else
        t_fail "and the refusal is logged as an error" "$(tail -n 3 "$LOG")"
    fi
    a=$(ask "http://127.0.0.1:$PORT/tsa")
    if [[ $a == granted ]]; then t_ok "the other TSUs keep issuing"; else
        t_fail "the other TSUs keep issuing" "got $a"
    fi
else
    t_fail "a TSU whose privateKeyUsagePeriod is over still loads" "$(tail -n 5 "$LOG")"
fi
tsad_stop

# ---- no chronyd socket: start, but no tokens (TSA-05, TSP-12) ----
tsad_write_conf "$TMP/nochrony.conf" "$TMP/pki" "$PORT" "$TMP/no-chrony/chronyd.sock" "$TMP/store"
LOG=$TMP/nochrony.log
if tsad_start "$TMP/nochrony.conf" "$LOG"; then
    t_ok "tsad starts without a chronyd socket"
    out=$(curl -s -w '\n%{http_code}' "http://127.0.0.1:$PORT/healthz")
    v="$(tail -n 1 <<<"$out") $(head -n -1 <<<"$out" | jq -r .clock.verdict 2>/dev/null)"
    if [[ $v == "503 unreachable" ]]; then t_ok "/healthz 503, clock verdict unreachable"; else
        t_fail "/healthz 503, clock verdict unreachable" "got '$v'"
    fi
    a=$(ask "http://127.0.0.1:$PORT/tsa")
    if [[ $a == timeNotAvailable ]]; then t_ok "requests get timeNotAvailable, no token (TSP-12)"; else
        t_fail "requests get timeNotAvailable (TSP-12)" "got $a"
    fi
    if grep -q 'AUDIT event=clock_status reason=unreachable' "$LOG"; then t_ok "AUDIT clock_status reason=unreachable logged"; else
        t_fail "AUDIT clock_status reason=unreachable logged" "$(grep AUDIT "$LOG" | tail -n 2)"
    fi
else
    t_fail "tsad starts without a chronyd socket" "$(tail -n 5 "$LOG")"
fi
tsad_stop

t_summary "$NAME"
