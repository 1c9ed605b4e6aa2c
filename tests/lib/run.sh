#!/usr/bin/env bash
# make run: the demo appliance on 127.0.0.1 in the foreground. Builds (Makefile), creates the
# demo PKI and a SoftHSM2 token with keys generated inside it (run/pki), starts a private
# chronyd with a local reference (run/chrony, -x: never touches the system clock), starts
# tsad; then builds the OCSP demo PKI with its own token "ocsp" (run/ocsp-pki: a CA managed
# with `openssl ca`, a delegated responder whose key is in the token, demo certificates whose
# AIA points at ocspd), recreates the ocspd store from the CA's index.txt (run/ocsp-store,
# ocspctl) and starts ocspd. Prints copy-paste commands and machine-readable lines
# (TSA_URL, TSA_CA, TSA_HTTPS_URL, TSA_HTTPS_CA, OCSP_URL, OCSP_ISSUER, OCSP_CHAIN, OCSP_DEMO),
# and stops everything it started on Ctrl-C or SIGTERM. tsad also serves HTTPS (issue 9) with
# the demo TLS server certificate (run/pki/tls-server.pem, from the demo PKI's TLS CA); its
# qualified TSU is HTTPS only (CIR-02).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
RUN_DIR=${RUN_DIR:-$top/run}
# shellcheck source=tests/lib/common.sh
. tests/lib/common.sh
# shellcheck source=tests/lib/chrony.sh
. tests/lib/chrony.sh
# shellcheck source=tests/lib/pki.sh
. tests/lib/pki.sh
# shellcheck source=tests/lib/tsad.sh
. tests/lib/tsad.sh
# shellcheck source=tests/lib/ocsp-pki.sh
. tests/lib/ocsp-pki.sh
# shellcheck source=tests/lib/ocspd.sh
. tests/lib/ocspd.sh

stopping=0
shutdown() {
    [ "$stopping" = 1 ] && return
    stopping=1
    echo "stopping..."
    ocspd_stop || true
    tsad_stop
    chrony_stop "$RUN_DIR/chrony" || true
    cleanup_tracked
}
trap shutdown EXIT
trap 'exit 0' INT TERM

mkdir -p "$RUN_DIR"
pki_demo "$RUN_DIR/pki"
# shellcheck disable=SC1091
. "$RUN_DIR/pki/pki.env"
mkdir -p "$RUN_DIR/chrony"
chrony_start "$RUN_DIR/chrony" local

port=${TSA_PORT:-3180}
if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then :; else port=$(free_port); fi
hport=${TSA_HTTPS_PORT:-3443}
if ! (echo >"/dev/tcp/127.0.0.1/$hport") 2>/dev/null && [ "$hport" != "$port" ]; then :; else
    hport=$(free_port)
fi
tsad_audit_conf "$RUN_DIR/tsad-audit.conf" "$RUN_DIR/pki" # signed audit checkpoints (issue 9)
# the HTTPS listener beside the plain one, and the audit key ([audit]): one extra file
{
    printf '\n[server]\nhttps_listen = 127.0.0.1:%s\ntls_cert = %s\ntls_key = %s\ntls_chain = %s\n' \
        "$hport" "$TLS_SERVER_CERT" "$TLS_SERVER_KEY" "$TLS_SERVER_CHAIN"
    cat "$RUN_DIR/tsad-audit.conf"
} >"$RUN_DIR/tsad-extra.conf"
tsad_write_conf "$RUN_DIR/tsad.conf" "$RUN_DIR/pki" "$port" "$(chrony_socket "$RUN_DIR/chrony")" \
    "$RUN_DIR/tsad-store" "$RUN_DIR/tsad-extra.conf"
sed -i 's/^qualified = yes$/qualified = yes\nhttps_only = yes/' "$RUN_DIR/tsad.conf"
: >"$RUN_DIR/tsad.log"
tsad_start "$RUN_DIR/tsad.conf" "$RUN_DIR/tsad.log"

url="http://127.0.0.1:$port/tsa"
hurl="https://127.0.0.1:$hport/tsa"
cat <<MSG

tsad is serving on $url and $hurl (HTTPS, TLS 1.2/1.3; demo server certificate
for 127.0.0.1 and localhost, verified by $TLS_SERVER_CA). Log: $RUN_DIR/tsad.log
Try a round trip (copy-paste):

  echo hello >/tmp/doc.txt
  openssl ts -query -data /tmp/doc.txt -sha256 -cert -out /tmp/doc.tsq
  curl -s --cacert $TLS_SERVER_CA -H 'Content-Type: application/timestamp-query' --data-binary @/tmp/doc.tsq $hurl -o /tmp/doc.tsr
  openssl ts -reply -in /tmp/doc.tsr -text
  openssl ts -verify -data /tmp/doc.txt -in /tmp/doc.tsr -CAfile $PKI_ROOT_CERT -untrusted $PKI_TSACA_CERT

Plain HTTP works too: curl -s -H 'Content-Type: application/timestamp-query' --data-binary @/tmp/doc.tsq $url -o /tmp/doc.tsr
The TSU's chain, leaf first (for -untrusted): curl -s --cacert $TLS_SERVER_CA $hurl/certchain
Other policies: -tspolicy $TSA_POLICY_RSA (RSA-3072 in the token) on /tsa, and the qualified TSU
($TSA_POLICY_Q, qcStatements esi4-qtstStatement-1) at $hurl/qualified, over HTTPS only
(plain HTTP gets 403):
  curl -s --cacert $TLS_SERVER_CA -H 'Content-Type: application/timestamp-query' --data-binary @/tmp/doc.tsq $hurl/qualified -o /tmp/q.tsr
Health: curl -s http://127.0.0.1:$port/healthz   Metrics: curl -s http://127.0.0.1:$port/metrics
Audit evidence: ${BUILD:-build}/tsactl -c $RUN_DIR/tsad.conf export >/tmp/audit.jsonl
  ${BUILD:-build}/tsactl verify --cert $AUDIT_CERT /tmp/audit.jsonl
Ctrl-C stops everything started here.

TSA_URL=$url
TSA_CA=$PKI_CA_CHAIN
TSA_HTTPS_URL=$hurl
TSA_HTTPS_CA=$TLS_SERVER_CA
MSG

# ---- ocspd (RFC 6960) ----
ocsp_start() {
    local port demo chain ca c n ctl
    if [ ! -x "$BUILD/ocspd" ] || [ ! -x "$BUILD/ocspctl" ]; then
        echo "ocspd/ocspctl not built: the OCSP responder is not started" >&2
        return 0
    fi
    port=${OCSP_PORT:-3181}
    if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then :; else port=$(free_port); fi
    OCSP_URL="http://127.0.0.1:$port"
    demo="$RUN_DIR/ocsp-pki"
    ocsp_pki_demo "$demo" "$OCSP_URL"
    ocspd_write_conf "$RUN_DIR/ocspd.conf" "$port" "$RUN_DIR/ocsp-store" "$demo"
    ocsp_store_demo "$demo" "$RUN_DIR/ocsp-store" "$RUN_DIR/ocspd.conf"
    : >"$RUN_DIR/ocspd.log"
    ocspd_start "$RUN_DIR/ocspd.conf" "$RUN_DIR/ocspd.log"
    ca="$demo/qca.pem"
    ctl="$BUILD/ocspctl"
    case $ctl in /*) ;; *) ctl="$top/$ctl" ;; esac
    chain="$demo/qca-chain.pem"
    cat <<MSG

ocspd is serving on $OCSP_URL (issuer: Demo Qualified CA; delegated responder key in the
SoftHSM2 token "ocsp"). Log: $RUN_DIR/ocspd.log   Store: $RUN_DIR/ocsp-store (rebuilt from
$demo/qca/index.txt at every start). Check each demo certificate (POST; openssl adds a nonce,
-no_nonce gets the pre-signed response):

MSG
    for n in good revoked hold expired never-issued; do
        c="$demo/$n.pem"
        echo "  openssl ocsp -issuer $ca -cert $c -url $OCSP_URL -CAfile $chain -resp_text"
        echo "  openssl ocsp -issuer $ca -cert $c -url $OCSP_URL -CAfile $chain -no_nonce"
    done
    cat <<MSG

GET (RFC 6960 App. A.1, cacheable; url-encoded base64 of the DER request):

  req=\$(openssl ocsp -issuer $ca -cert $demo/good.pem -no_nonce -reqout - | base64 -w0 | sed 's/+/%2B/g; s,/,%2F,g; s/=/%3D/g')
  curl -s -D - "$OCSP_URL/\$req" -o /tmp/good.ocsp
  openssl ocsp -respin /tmp/good.ocsp -issuer $ca -cert $demo/good.pem -CAfile $chain -resp_text

Change a status while it runs (seen on the next request):
  SOFTHSM2_CONF=$demo/hsm/softhsm2.conf $ctl -c $RUN_DIR/ocspd.conf -d $RUN_DIR/ocsp-store revoke qca \$(openssl x509 -in $demo/good.pem -noout -serial | cut -d= -f2) --reason keyCompromise
Health: curl -s $OCSP_URL/healthz   Metrics: curl -s $OCSP_URL/metrics

OCSP_URL=$OCSP_URL
OCSP_ISSUER=$ca
OCSP_CHAIN=$chain
OCSP_DEMO=$demo
MSG
}
OCSPD_PID=
ocsp_start

# Serve until Ctrl-C / SIGTERM (trapped above), until a daemon exits, or until the make that
# started us is gone (make does not pass SIGTERM on to its recipe).
parent=${RUN_PARENT:-$PPID}
while kill -0 "$TSAD_PID" 2>/dev/null; do
    if [ -n "$OCSPD_PID" ] && ! kill -0 "$OCSPD_PID" 2>/dev/null; then
        echo "ocspd exited; see $RUN_DIR/ocspd.log" >&2
        exit 1
    fi
    if ! kill -0 "$parent" 2>/dev/null; then exit 0; fi
    sleep 1 &
    wait $! || true
done
echo "tsad exited; see $RUN_DIR/tsad.log" >&2
exit 1
