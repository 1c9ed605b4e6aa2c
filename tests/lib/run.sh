#!/usr/bin/env bash
# make run: the demo appliance on 127.0.0.1 in the foreground. Builds (Makefile), creates the
# demo PKI and a SoftHSM2 token with keys generated inside it (run/pki), starts a private
# chronyd with a local reference (run/chrony, -x: never touches the system clock), starts
# tsad, prints copy-paste commands and machine-readable lines, and stops everything it
# started on Ctrl-C or SIGTERM.
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

stopping=0
shutdown() {
    [ "$stopping" = 1 ] && return
    stopping=1
    echo "stopping..."
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
tsad_write_conf "$RUN_DIR/tsad.conf" "$RUN_DIR/pki" "$port" "$(chrony_socket "$RUN_DIR/chrony")" \
    "$RUN_DIR/tsad-store"
: >"$RUN_DIR/tsad.log"
tsad_start "$RUN_DIR/tsad.conf" "$RUN_DIR/tsad.log"

url="http://127.0.0.1:$port/tsa"
cat <<MSG

tsad is serving on $url (qualified TSU: $url/qualified). Log: $RUN_DIR/tsad.log
Try a round trip (copy-paste):

  echo hello >/tmp/doc.txt
  openssl ts -query -data /tmp/doc.txt -sha256 -cert -out /tmp/doc.tsq
  curl -s -H 'Content-Type: application/timestamp-query' --data-binary @/tmp/doc.tsq $url -o /tmp/doc.tsr
  openssl ts -reply -in /tmp/doc.tsr -text
  openssl ts -verify -data /tmp/doc.txt -in /tmp/doc.tsr -CAfile $PKI_ROOT_CERT -untrusted $PKI_TSACA_CERT

Other policies: -tspolicy $TSA_POLICY_RSA (RSA-3072 in the token) on $url, and the qualified TSU
($TSA_POLICY_Q, qcStatements esi4-qtstStatement-1) at $url/qualified.
Health: curl -s http://127.0.0.1:$port/healthz   Metrics: curl -s http://127.0.0.1:$port/metrics
Ctrl-C stops everything started here.

TSA_URL=$url
TSA_CA=$PKI_CA_CHAIN
MSG
# Serve until Ctrl-C / SIGTERM (trapped above), until tsad exits, or until the make that
# started us is gone (make does not pass SIGTERM on to its recipe).
parent=${RUN_PARENT:-$PPID}
while kill -0 "$TSAD_PID" 2>/dev/null; do
    if ! kill -0 "$parent" 2>/dev/null; then exit 0; fi
    sleep 1 &
    wait $! || true
done
echo "tsad exited; see $RUN_DIR/tsad.log" >&2
exit 1
