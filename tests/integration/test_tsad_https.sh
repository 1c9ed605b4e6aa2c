#!/usr/bin/env bash
#
# test_tsad_https.sh: tsad's HTTPS listener (issue 9 item 1; STANDARDS CIR-02, TPR-11), with
# real clients (openssl ts, curl --cacert, openssl s_client, python's ssl) against the real
# daemon (SoftHSM2 token, chronyd, LMDB) and the demo TLS server certificate of tests/lib/pki.sh:
#   - time stamps over HTTPS verify; TLS 1.2 and 1.3 accepted; TLS 1.0/1.1 refused; CBC
#     suites refused under TLS 1.2 (the client is set to offer them: the refusal is tsad's);
#   - the plain HTTP listener still serves beside it;
#   - an https_only TSU answers 403 with a clear text on plain HTTP and serves over HTTPS;
#   - GET <path>/certchain: the PEM chain, leaf first (RFC 8555 §9.1 media type); the leaf is
#     the TSU certificate and the chain verifies its tokens with `openssl ts -verify -untrusted`;
#   - HTTPS only (no `listen`): no plain listener;
#   - bad TLS configuration exits non-zero naming the file (missing file, key readable by
#     others, key that does not match, https_only without an HTTPS listener);
#   - the connection guards apply: a client that never handshakes, and one that handshakes but
#     never finishes its request, are cut (idle, deadline).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsad_https
itest_tsa_setup local
HPORT=$(free_port) || fatal "free port" "none"

# the HTTPS keys, appended as a second [server] block; the qualified TSU https_only
https_block() {
    printf '\n[server]\nhttps_listen = 127.0.0.1:%s\ntls_cert = %s\ntls_key = %s\ntls_chain = %s\n' \
        "$HPORT" "${1:-$TLS_SERVER_CERT}" "${2:-$TLS_SERVER_KEY}" "$TLS_SERVER_CHAIN"
    printf 'timeout = 2s\nrequest_timeout = 3s\n'
}
https_block >"$TMP/https.block"
tsad_write_conf "$CONF" "$TMP/pki" "$PORT" "$SOCK" "$STORE" "$TMP/https.block"
sed -i 's/^qualified = yes$/qualified = yes\nhttps_only = yes/' "$CONF"

run_tsad() { # OUT ARGS...: tsad in the foreground, bounded; RC
    local out=$1
    shift
    timeout 30 "$BUILD/tsad" "$@" >"$out" 2>&1
    RC=$?
}

run_tsad "$TMP/n.out" -n -c "$CONF"
if ((RC == 0)); then t_ok "tsad -n accepts the HTTPS configuration"; else
    fatal "tsad -n accepts the HTTPS configuration" "$(tail -n 3 "$TMP/n.out")"
fi

itest_tsad_start
itest_tsad_healthy
HBASE=https://127.0.0.1:$HPORT
CA=$TLS_SERVER_CA
echo "hello https" >"$TMP/doc.txt"
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$TMP/doc.tsq" 2>/dev/null

# post URL OUT [CURL ARGS...]: POST the query; prints the HTTP status
post() {
    local url=$1 out=$2
    shift 2
    curl -s --cacert "$CA" -o "$out" -w '%{http_code}' "$@" \
        -H 'Content-Type: application/timestamp-query' --data-binary @"$TMP/doc.tsq" "$url"
}
verify() { # TSR [openssl ts -verify args]: Verification: OK
    local tsr=$1
    shift
    openssl ts -verify -data "$TMP/doc.txt" -in "$tsr" -CAfile "$PKI_ROOT_CERT" "$@" 2>&1 |
        grep -q '^Verification: OK'
}

# ---- time stamps over HTTPS (CIR-02) ----
code=$(post "$HBASE/tsa" "$TMP/a.tsr")
if [[ $code == 200 ]] && verify "$TMP/a.tsr" -untrusted "$PKI_TSACA_CERT"; then
    t_ok "POST https://127.0.0.1/tsa with curl --cacert: a token that verifies"
else
    t_fail "POST over HTTPS" "HTTP $code"
fi
code=$(post "https://localhost:$HPORT/tsa" "$TMP/b.tsr" --resolve "localhost:$HPORT:127.0.0.1")
expect "https://localhost/ (DNS subjectAltName) verifies with the demo CA" "$code" 200
for v in 1.2 1.3; do
    code=$(post "$HBASE/tsa" "$TMP/v.tsr" --tlsv"$v" --tls-max "$v")
    expect "TLS $v accepted (curl --tlsv$v --tls-max $v)" "$code" 200
done
for v in tls1_2 tls1_3; do
    out=$(openssl s_client -connect "127.0.0.1:$HPORT" -"$v" -CAfile "$CA" -brief </dev/null 2>&1)
    if grep -q "Protocol version: TLSv1.${v#tls1_}" <<<"$out" &&
        grep -q "Verification: OK" <<<"$out"; then
        t_ok "openssl s_client -$v: handshake, server certificate verified"
    else
        t_fail "openssl s_client -$v" "$(head -n 3 <<<"$out" | tr '\n' ' ')"
    fi
done
# a client sending the usual X25519 key share gets no HelloRetryRequest (a second ServerHello):
# the server's group order starts with X25519 (common/http.h HTTP_TLS_PRIORITIES)
n=$(openssl s_client -connect "127.0.0.1:$HPORT" -tls1_3 -groups X25519:P-256 -msg -CAfile "$CA" \
    </dev/null 2>&1 | grep -c '<<< .*ServerHello')
expect "TLS 1.3 with an X25519 key share: one ServerHello, no HelloRetryRequest" "$n" 1
# refused NAME ARGS...: s_client (security level 0: it offers what ARGS say) fails the handshake
refused() {
    local name=$1 out
    shift
    out=$(openssl s_client -connect "127.0.0.1:$HPORT" "$@" </dev/null 2>&1)
    if grep -q "no protocols available\|no cipher match\|no ciphers available" <<<"$out"; then
        t_fail "$name" "the client did not offer it: $(grep -m1 error <<<"$out")"
    elif grep -q "^    Protocol *: TLS\|^Protocol version" <<<"$out" &&
        ! grep -q "Cipher is (NONE)\|Cipher    : 0000" <<<"$out"; then
        t_fail "$name" "handshake succeeded: $(grep -m2 'Protocol\|Cipher' <<<"$out" | tr '\n' ' ')"
    else
        t_ok "$name"
    fi
}
refused "TLS 1.1 refused" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'
refused "TLS 1.0 refused" -tls1 -cipher 'DEFAULT:@SECLEVEL=0'
refused "TLS 1.2 CBC suite (ECDHE-ECDSA-AES128-SHA) refused" -tls1_2 \
    -cipher 'ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0'
refused "TLS 1.2 CBC suite (ECDHE-ECDSA-AES256-SHA384) refused" -tls1_2 \
    -cipher 'ECDHE-ECDSA-AES256-SHA384:@SECLEVEL=0'
refused "TLS 1.2 static RSA key exchange (AES128-GCM-SHA256) refused" -tls1_2 \
    -cipher 'AES128-GCM-SHA256:@SECLEVEL=0'

# ---- the plain listener beside ----
code=$(post "$BASE/tsa" "$TMP/p.tsr")
if [[ $code == 200 ]] && verify "$TMP/p.tsr" -untrusted "$PKI_TSACA_CERT"; then
    t_ok "plain HTTP listener still serves /tsa beside HTTPS"
else
    t_fail "plain HTTP beside HTTPS" "HTTP $code"
fi

# ---- https_only: the qualified TSU (CIR-02) ----
code=$(post "$BASE/tsa/qualified" "$TMP/q.out")
if [[ $code == 403 ]] && grep -q "HTTPS only" "$TMP/q.out"; then
    t_ok "https_only TSU over plain HTTP: 403, '$(head -c 60 "$TMP/q.out")...'"
else
    t_fail "https_only TSU over plain HTTP refused" "HTTP $code: $(head -c 200 "$TMP/q.out")"
fi
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/tsa/qualified/certchain")
expect "https_only TSU's certchain over plain HTTP: 403" "$code" 403
code=$(post "$HBASE/tsa/qualified" "$TMP/q.tsr")
if [[ $code == 200 ]] && verify "$TMP/q.tsr" -untrusted "$PKI_TSACA_CERT"; then
    t_ok "https_only TSU over HTTPS: a qualified token that verifies"
else
    t_fail "https_only TSU over HTTPS" "HTTP $code"
fi
metric=$(curl -s "$BASE/metrics" | awk '$1 == "tsa_https_only_refused_total" {print $2}')
expect "tsa_https_only_refused_total counts both refusals" "$metric" 2

# ---- GET <path>/certchain ----
# certchain URL LEAF TSR NAME: served as application/pem-certificate-chain, leaf first equal to
# LEAF, and verifies TSR with -untrusted
certchain() {
    local url=$1 leaf=$2 tsr=$3 name=$4 ctype got want
    ctype=$(curl -s --cacert "$CA" -o "$TMP/chain.pem" -w '%{content_type}' "$url")
    got=$(openssl x509 -in "$TMP/chain.pem" -noout -fingerprint -sha256 2>/dev/null)
    want=$(openssl x509 -in "$leaf" -noout -fingerprint -sha256)
    if [[ $ctype != application/pem-certificate-chain ]]; then
        t_fail "$name" "Content-Type '$ctype'"
    elif [[ $got != "$want" ]]; then
        t_fail "$name" "first certificate is not the TSU certificate"
    elif ! verify "$tsr" -untrusted "$TMP/chain.pem"; then
        t_fail "$name" "the served chain does not verify the token"
    else
        t_ok "$name"
    fi
}
certchain "$HBASE/tsa/certchain" "$TSU_N_CERT" "$TMP/a.tsr" \
    "GET /tsa/certchain: PEM chain, leaf = TSU cert, verifies its token (-untrusted)"
certchain "$HBASE/tsa/qualified/certchain" "$TSU_Q_CERT" "$TMP/q.tsr" \
    "GET /tsa/qualified/certchain over HTTPS: leaf = qualified TSU cert, verifies its token"
n=$(grep -c 'BEGIN CERTIFICATE' "$TMP/chain.pem")
expect "certchain holds leaf, TSA CA and root" "$n" 3
curl -s "$BASE/tsa/certchain?policy=$TSA_POLICY_RSA" -o "$TMP/rsa.pem"
expect "certchain?policy=OID: that TSU's certificate first" \
    "$(openssl x509 -in "$TMP/rsa.pem" -noout -fingerprint -sha256 2>&1)" \
    "$(openssl x509 -in "$TSU_RSA_CERT" -noout -fingerprint -sha256)"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/tsa/certchain?policy=1.2.3.4")
expect "certchain?policy= of no TSU on the path: 404" "$code" 404

# ---- the guards apply to the HTTPS listener (issue 8 item 1) ----
# a client that connects and never starts the handshake; one that handshakes and never ends
# its request: both cut (timeout 2s, request_timeout 3s), the daemon serving on
slow=$(python3 - "$HPORT" "$CA" <<'PY'
import socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
def closed_within(sock, limit):
    sock.settimeout(limit)
    t0 = time.monotonic()
    try:
        while sock.recv(4096):
            pass
        return "cut"
    except (socket.timeout, TimeoutError):
        return "open"
    except (ConnectionResetError, ssl.SSLError, OSError):
        return "cut"
raw = socket.create_connection(("127.0.0.1", port))
a = closed_within(raw, 20)
ctx = ssl.create_default_context(cafile=ca)
tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
tls.sendall(b"POST /tsa HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/timestamp-query\r\n")
# a header line every 0.5 s: never idle for the 2 s timeout, so only the deadline can cut it
# (however long a loaded machine took for the handshake)
b = "open"
t_end = time.monotonic() + 20
while time.monotonic() < t_end:
    try:
        tls.sendall(b"X-Slow: 1\r\n")
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
        b = "cut"
        break
    if closed_within(tls, 0.5) == "cut":
        b = "cut"
        break
print(a, b)
PY
)
expect "no handshake: cut (idle); handshake, unfinished request: cut (deadline)" "$slow" "cut cut"
m=$(curl -s "$BASE/metrics")
idle=$(awk '$1 == "http_connections_rejected_total{reason=\"idle\"}" {print $2}' <<<"$m")
dl=$(awk '$1 == "http_connections_rejected_total{reason=\"deadline\"}" {print $2}' <<<"$m")
if ((${idle:-0} >= 1 && ${dl:-0} >= 1)); then
    t_ok "counted: http_connections_rejected_total idle=$idle deadline=$dl"
else
    t_fail "guard metrics" "idle=${idle:-} deadline=${dl:-}"
fi
code=$(post "$HBASE/tsa" "$TMP/after.tsr")
expect "HTTPS still serves after the slow clients" "$code" 200

# ---- the TLS certificate rolled over by SIGHUP (issue 9 item 4) ----
# served_fp: the SHA-256 fingerprint of the certificate a new handshake gets
served_fp() {
    openssl s_client -connect "127.0.0.1:$HPORT" -CAfile "$CA" </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null
}
hup() { reload_wait "$TSAD_PID" "$TMP/tsad.log"; }
_pki_pkup_env
_pki_genkey "$TMP/tls2.key" p256
openssl pkey -in "$TMP/tls2.key" -pubout -out "$TMP/tls2.pub.pem"
openssl x509 -new -force_pubkey "$TMP/tls2.pub.pem" -subj "/CN=localhost rollover" \
    -CA "$TMP/pki/tlsca.pem" -CAkey "$TMP/pki/tlsca.key" -set_serial "$(_pki_serial)" -days 30 \
    -sha256 -extfile "$TMP/pki/openssl-ext.cnf" -extensions v3_tls_server -out "$TMP/tls2.pem" \
    2>/dev/null || fatal "second TLS certificate" "not issued"
old_fp=$(served_fp)
expect "before the reload: the demo server certificate" "$old_fp" \
    "$(openssl x509 -in "$TLS_SERVER_CERT" -noout -fingerprint -sha256)"
sed -i "s|^tls_cert = .*|tls_cert = $TMP/tls2.pem|; s|^tls_key = .*|tls_key = $TMP/tls2.key|" "$CONF"
hup || fatal "SIGHUP reload" "no audit line"
has "reload with a new TLS certificate: AUDIT result=ok names it" "$TMP/tsad.log" \
    "AUDIT event=config_reload result=ok .*tls_cert=$TMP/tls2.pem"
expect "after the reload: new handshakes get the new certificate" "$(served_fp)" \
    "$(openssl x509 -in "$TMP/tls2.pem" -noout -fingerprint -sha256)"
code=$(post "$HBASE/tsa" "$TMP/roll.tsr")
expect "a token over HTTPS with the new certificate" "$code" 200
# a key that does not match: the reload fails, says why, the new certificate keeps serving
sed -i "s|^tls_key = .*|tls_key = $TLS_SERVER_KEY|" "$CONF"
hup || fatal "SIGHUP reload (bad key)" "no audit line"
has "reload with a mismatched TLS key: AUDIT result=failed names tls_key" "$TMP/tsad.log" \
    'AUDIT event=config_reload result=failed .*tls_cert/tls_key/tls_chain'
expect "after the failed reload: the running certificate still served" "$(served_fp)" \
    "$(openssl x509 -in "$TMP/tls2.pem" -noout -fingerprint -sha256)"
code=$(post "$HBASE/tsa" "$TMP/roll2.tsr")
expect "tokens over HTTPS go on after the failed reload" "$code" 200
tsad_stop
sed -i "s|^tls_cert = .*|tls_cert = $TLS_SERVER_CERT|" "$CONF" # the demo files again

# ---- HTTPS only: no `listen` key, no plain listener ----
sed '/^listen = /d' "$CONF" >"$TMP/only.conf"
"$BUILD/tsad" -c "$TMP/only.conf" >>"$TMP/only.log" 2>&1 &
ONLY_PID=$!
track_pid "$ONLY_PID"
if wait_http "$HBASE/healthz" 10 >/dev/null 2>&1 ||
    curl -s --cacert "$CA" -o /dev/null "$HBASE/healthz"; then :; fi
code=$(post "$HBASE/tsa" "$TMP/o.tsr")
expect "HTTPS only (no listen): HTTPS serves" "$code" 200
if curl -s -o /dev/null --max-time 3 "$BASE/healthz"; then
    t_fail "HTTPS only: no plain listener" "$BASE answered"
else
    t_ok "HTTPS only: nothing listens on the plain port"
fi
kill -TERM "$ONLY_PID" && wait "$ONLY_PID"
expect "HTTPS-only tsad exits 0 on SIGTERM" "$?" 0
if grep -q 'AUDIT event=service_start listen=none (HTTPS only)' "$TMP/only.log" &&
    grep -q "AUDIT event=https_start listen=127.0.0.1:$HPORT certificate=\".*CN=localhost\"" \
        "$TMP/only.log"; then
    t_ok "audit: service_start listen=none (HTTPS only), https_start with the certificate"
else
    t_fail "audit lines of an HTTPS-only start" "$(grep AUDIT "$TMP/only.log" | head -n 3)"
fi

# ---- bad TLS configuration: non-zero exit, the file named ----
# bad NAME CONF REGEX [start]: tsad -n (or a real start) fails with REGEX in its output
bad() {
    local name=$1 conf=$2 re=$3
    if [[ ${4:-} == start ]]; then run_tsad "$TMP/bad.out" -c "$conf"; else
        run_tsad "$TMP/bad.out" -n -c "$conf"
    fi
    if ((RC == 0 || RC == 124)); then
        t_fail "$name" "exit status $RC"
    elif ! grep -Eq "$re" "$TMP/bad.out"; then
        t_fail "$name" "no '$re' in: $(tail -n 2 "$TMP/bad.out" | tr '\n' ' ')"
    elif grep -q 'AUDIT event=service_start' "$TMP/bad.out"; then
        t_fail "$name" "the service started"
    else
        t_ok "$name"
    fi
}
badconf() { # NAME CERT KEY: a configuration with those TLS files; prints its path
    https_block "$2" "$3" >"$TMP/$1.block"
    tsad_write_conf "$TMP/$1.conf" "$TMP/pki" "$PORT" "$SOCK" "$TMP/store-$1" "$TMP/$1.block"
    printf '%s\n' "$TMP/$1.conf"
}
bad "missing tls_cert: refused, file named" "$(badconf miss "$TMP/none.pem" "$TLS_SERVER_KEY")" \
    "tls_cert $TMP/none.pem: No such file"
cp "$TLS_SERVER_KEY" "$TMP/open.key" && chmod 644 "$TMP/open.key"
bad "tls_key readable by others: refused, file named" \
    "$(badconf open "$TLS_SERVER_CERT" "$TMP/open.key")" \
    "tls_key $TMP/open.key is readable or writable by group or others"
bad "tls_key not matching tls_cert: refused at start (not -n), files named" \
    "$(badconf mism "$TLS_SERVER_CERT" "$SOFT_P256_KEY")" \
    "tls_key $SOFT_P256_KEY does not match the certificate in tls_cert $TLS_SERVER_CERT" start
printf 'not a certificate\n' >"$TMP/junk.pem"
bad "tls_cert without a certificate: refused" "$(badconf junk "$TMP/junk.pem" "$TLS_SERVER_KEY")" \
    "tls_cert $TMP/junk.pem: no PEM certificate"
sed -e '/^https_listen/d' -e '/^tls_/d' "$CONF" >"$TMP/noh.conf"
bad "https_only without https_listen: file:line error" "$TMP/noh.conf" \
    "^tsad: $TMP/noh.conf:[0-9]+: \[tsu q1\]: https_only = yes needs the HTTPS listener"

itest_log_clean "$LOG"
t_summary "$NAME"
