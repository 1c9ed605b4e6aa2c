#!/usr/bin/env bash
#
# test_ocspd_reload.sh: OCSP delegate rollover without downtime and SIGHUP (issue 9 item 4;
# RFC 6960 §4.2.2.2, STANDARDS OCSP-21/22). A real ocspd on the demo SoftHSM2 token, real
# clients (openssl ocsp):
#   1. while a client loop asks continuously (pre-signed answers and nonce answers signed on
#      demand), a new delegated responder key is generated in the token, its certificate issued,
#      `ocspctl issuer add --signer-cert` names it and ocspd gets SIGHUP: no request fails;
#      every answer after the reload carries the new delegate (no pre-signed answer of the old
#      one is served, issue 8 item 4); AUDIT event=config_reload names issuer qca with the
#      responder certificate SHA-256 old->new; config_reloads_total{result="ok"} counts it;
#   2. a configuration that does not load (syntax error) leaves everything serving, says why
#      (file:line) and counts config_reloads_total{result="failed"};
#   3. a delegate whose software key file was replaced by another key: SIGHUP finds that the
#      key no longer matches its certificate, says so naming the issuer, counts a failed
#      reload, and the running key keeps signing;
#   4. [ocsp] max_certids applies at once; [server] threads is reported "needs restart".
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd_reload

itest_ocsp_setup
# shellcheck disable=SC1091
. "$TMP/pki/ocsp-pki.env"
export SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF
export OCSP_AIA_URL # the CA configuration reads it
LOG=$TMP/ocspd.log
ctl() { "$BUILD/ocspctl" -c "$CONF" -d "$STORE" -u tester "$@"; }
metric() { curl -s --max-time 5 "$URL/metrics" | awk -v n="$1" '$1 == n { printf "%d\n", $2 }'; }
reloads() { metric "config_reloads_total{result=\"$1\"}"; }
hup() { reload_wait "$OCSPD_PID" "$LOG"; }
last_audit() { grep 'AUDIT event=config_reload ' "$LOG" | tail -n 1; }
# ask NAME CERT [-nonce]: the answer in NAME.der, openssl's verdict in NAME.out
ask() {
    openssl ocsp -issuer "$CA" -cert "$2" -url "$URL/" -CAfile "$CHAIN" "${3:--no_nonce}" \
        -respout "$TMP/$1.der" >"$TMP/$1.out" 2>&1
}
resp_signer() {
    openssl ocsp -respin "$1" -resp_text -noverify 2>/dev/null |
        sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f'
}
fp() { derutil certsha256 "$1"; }
answered_by() { # NAME WANT_CERT CHECK
    if grep -q 'Response verify OK' "$TMP/$1.out" && grep -q ': good' "$TMP/$1.out" &&
        [[ $(resp_signer "$TMP/$1.der") == $(fp "$2") ]]; then
        t_ok "$3"
    else
        t_fail "$3" "signer $(resp_signer "$TMP/$1.der"), want $(fp "$2"); $(tr '\n' ' ' <"$TMP/$1.out")"
    fi
}
add_qca() { # add_qca KEYOPT KEY CERT: the delegate of issuer qca
    ctl issuer add qca --cert "$CA" "$1" "$2" --signer-cert "$3" --signature ecdsa \
        --digest sha256 --nonce echo --unissued revoked --archive-cutoff yes
}

expect "config_reloads_total{result=\"ok\"} is exported at 0" "$(reloads ok)" 0

# ---- 1. a new delegate in the token, under a continuous client loop ----
softhsm_keygen "$OCSP_PKI_DIR/hsm" ocsp-signer2 31 EC:prime256v1 "$TMP/signer2.pub.pem" \
    >"$TMP/keygen.log" 2>&1 || fatal "new responder key in the token" "$(tail -n 3 "$TMP/keygen.log")"
openssl x509 -new -force_pubkey "$TMP/signer2.pub.pem" \
    -subj "/C=RO/O=$OCSP_PKI_ORG/CN=Demo OCSP Responder (rollover)" \
    -CA "$CA" -CAkey "$OCSP_CA_KEY" -set_serial "0x$(openssl rand -hex 16)" -days 20 -sha256 \
    -extfile "$OCSP_CA_DIR/ca.cnf" -extensions v3_ocsp -out "$TMP/signer2.pem" 2>"$TMP/x509.err" ||
    fatal "new delegate issued" "$(cat "$TMP/x509.err")"

mkdir -p "$TMP/loop"
(
    i=0
    while [[ ! -e $TMP/loop.stop ]]; do
        i=$((i + 1))
        nonce=-no_nonce
        ((i % 4 == 0)) && nonce=-nonce
        date +%s.%N >"$TMP/loop/$i.start"
        openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -url "$URL/" -CAfile "$CHAIN" $nonce \
            -respout "$TMP/loop/$i.der" >"$TMP/loop/$i.part" 2>&1
        mv "$TMP/loop/$i.part" "$TMP/loop/$i.out"
    done
) &
LOOP_PID=$!
track_pid "$LOOP_PID"
wait_loop() {
    local i
    for ((i = 0; i < 600; i++)); do
        (($(find "$TMP/loop" -name '*.out' | wc -l) >= $1)) && return 0
        sleep 0.05
    done
    return 1
}
wait_loop 12 || fatal "client loop runs" "$(find "$TMP/loop" -name '*.out' | wc -l) answers"
add_qca --key-label ocsp-signer2 "$TMP/signer2.pem" >"$TMP/add.out" 2>&1 ||
    fatal "issuer add --signer-cert (new key in the token)" "$(tail -n 3 "$TMP/add.out")"
hup || fatal "reload 1 done" "$(tail -n 5 "$LOG")"
# the reload's audit line is written once the new delegate is in place: a request started
# after it (its .start holds the time it was sent) must be answered by the new one
audit_at=$(date -d "$(grep 'AUDIT event=config_reload ' "$LOG" | tail -n 1 | cut -d' ' -f1)" +%s.%N)
n_at=$(find "$TMP/loop" -name '*.start' | wc -l)
wait_loop $((n_at + 12)) || t_fail "client loop goes on after the reload" "$(tail -n 5 "$LOG")"
touch "$TMP/loop.stop"
wait "$LOOP_PID" 2>/dev/null
n=$(find "$TMP/loop" -name '*.out' | wc -l)
bad=0 old=0 new=0 late_old=0 first_bad=
old_fp=$(fp "$SIGNER") new_fp=$(fp "$TMP/signer2.pem")
for ((i = 1; i <= n; i++)); do
    if ! grep -q 'Response verify OK' "$TMP/loop/$i.out" || ! grep -q ': good' "$TMP/loop/$i.out"; then
        bad=$((bad + 1))
        [[ -n $first_bad ]] || first_bad="#$i of $n (reload at $n_at): $(tr '\n' ' ' <"$TMP/loop/$i.out")"
        continue
    fi
    case $(resp_signer "$TMP/loop/$i.der") in
    "$old_fp")
        old=$((old + 1))
        awk -v a="$audit_at" '{ exit !($1 > a) }' "$TMP/loop/$i.start" && late_old=$((late_old + 1))
        ;;
    "$new_fp") new=$((new + 1)) ;;
    *) bad=$((bad + 1)); [[ -n $first_bad ]] || first_bad="#$i: signed by $(resp_signer "$TMP/loop/$i.der")" ;;
    esac
done
if ((bad == 0)); then
    t_ok "delegate rollover under load: no failed request among $n (verify OK, good)"
else
    t_fail "delegate rollover under load: no failed request among $n" "$bad failed; first: ${first_bad:0:400}"
fi
if ((old >= 5 && new >= 10 && late_old == 0)); then
    t_ok "rollover: $old answers of the old delegate, then $new of the new one (none of the old after the reload)"
else
    t_fail "rollover: old answers, then new ones" "old $old new $new old-after-reload $late_old (requests started by the time the reload was seen: $n_at of $n)"
fi
has "AUDIT config_reload names issuer qca with the responder certificate SHA-256 old->new" "$LOG" \
    "AUDIT event=config_reload result=ok .*issuers_changed=qca:sha256=$old_fp->$new_fp"
expect "config_reloads_total{result=\"ok\"} = 1" "$(reloads ok)" 1
ask pre "$OCSP_REVOKED_CERT"
if grep -q ': revoked' "$TMP/pre.out" && grep -q 'Response verify OK' "$TMP/pre.out" &&
    [[ $(resp_signer "$TMP/pre.der") == "$new_fp" ]]; then
    t_ok "a stored answer (revoked.pem, no nonce) comes from the new delegate"
else
    t_fail "a stored answer comes from the new delegate" "$(tr '\n' ' ' <"$TMP/pre.out")"
fi

# ---- 2. a configuration file that does not load ----
cp "$CONF" "$TMP/good.conf"
echo "not ini at all" >>"$CONF"
hup || fatal "reload 2 done" "$(tail -n 5 "$LOG")"
has "syntax error: refused with file:line" "$LOG" \
    "AUDIT event=config_reload result=failed .*reason=\"$CONF:[0-9]+: "
expect "syntax error: config_reloads_total{result=\"failed\"} = 1" "$(reloads failed)" 1
ask syn "$OCSP_GOOD_CERT" -nonce
answered_by syn "$TMP/signer2.pem" "syntax error: the running responder keeps serving (nonce answer signed)"
cp "$TMP/good.conf" "$CONF"

# ---- 3. a delegate's key file replaced by another key: the running key keeps signing ----
openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/soft.key"
openssl req -new -key "$TMP/soft.key" -subj "/C=RO/O=$OCSP_PKI_ORG/CN=Demo OCSP Responder (soft)" \
    -out "$TMP/soft.csr" 2>/dev/null
openssl x509 -req -in "$TMP/soft.csr" -CA "$CA" -CAkey "$OCSP_CA_KEY" \
    -set_serial "0x$(openssl rand -hex 16)" -days 20 -sha256 -extfile "$OCSP_CA_DIR/ca.cnf" \
    -extensions v3_ocsp -out "$TMP/soft.pem" 2>"$TMP/x509.err" || fatal "soft delegate" "$(cat "$TMP/x509.err")"
add_qca --key-file "$TMP/soft.key" "$TMP/soft.pem" >"$TMP/add2.out" 2>&1 ||
    fatal "issuer add --key-file" "$(tail -n 3 "$TMP/add2.out")"
hup || fatal "reload 3 done" "$(tail -n 5 "$LOG")"
has "software delegate: reload ok, qca changed to it" "$LOG" \
    "AUDIT event=config_reload result=ok .*issuers_changed=qca:sha256=$new_fp->$(fp "$TMP/soft.pem")"
cp "$TMP/soft.key" "$TMP/soft.key.orig"
openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/soft.key"
hup || fatal "reload 4 done" "$(tail -n 5 "$LOG")"
if last_audit | grep -q 'result=failed .*issuer(s) qca: signing key or certificate not usable'; then
    t_ok "replaced key file: the reload fails and names issuer qca"
else
    t_fail "replaced key file: the reload fails and names issuer qca" "$(last_audit | cut -c1-300)"
fi
has "replaced key file: the log says the key does not match" "$LOG" "key $TMP/soft.key does not match its certificate"
expect "replaced key file: config_reloads_total{result=\"failed\"} = 2" "$(reloads failed)" 2
ask keep "$OCSP_GOOD_CERT" -nonce
answered_by keep "$TMP/soft.pem" "replaced key file: the running key keeps signing"

# ---- 4. a reloadable [ocsp] key and a restart-only one (the key file put back first) ----
cp "$TMP/soft.key.orig" "$TMP/soft.key"
openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -cert "$OCSP_REVOKED_CERT" -cert "$OCSP_HOLD_CERT" \
    -no_nonce -reqout "$TMP/three.req" >/dev/null 2>&1
post3() {
    curl -s -o "$TMP/three.der" -H 'Content-Type: application/ocsp-request' \
        --data-binary @"$TMP/three.req" "$URL/" && derutil ocsp-resp "$TMP/three.der" | sed -n 's/^status=//p'
}
expect "3 CertIDs with max_certids = 8: successful" "$(post3)" 0
sed -i 's/^max_certids = 8$/max_certids = 2/; s/^threads = 2$/threads = 3/' "$CONF"
hup || fatal "reload 5 done" "$(tail -n 5 "$LOG")"
has "[server] threads: needs restart" "$LOG" 'needs restart: \[server\] threads'
has "AUDIT config_reload: ok, needs_restart=server.threads" "$LOG" \
    'AUDIT event=config_reload result=ok .*needs_restart=server.threads'
expect "max_certids = 2 applies at once: 3 CertIDs are malformedRequest" "$(post3)" 1

itest_ocspd_stop_clean
t_summary "$NAME"
