#!/usr/bin/env bash
#
# test_tsad_reload_https_only.sh: a reload cannot make a TSU unreachable (issue 9 items 1 and
# 4, review; CIR-02). tsad runs without an HTTPS listener; the operator adds https_listen and
# marks the qualified TSU https_only, then sends SIGHUP. The HTTPS listener needs a restart, so
# applying https_only would refuse every request of that TSU (403 over HTTP, no HTTPS to go
# to): the reload is refused, says why, and the TSU keeps serving over HTTP until the restart.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsad_reload_https_only
itest_tsa_setup local
itest_tsad_start
itest_tsad_healthy
echo "reload https_only" >"$TMP/doc.txt"
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$TMP/doc.tsq" 2>/dev/null
post() { # PATH: the HTTP status of a time-stamp request over plain HTTP
    curl -s -o "$TMP/r.tsr" -w '%{http_code}' -H 'Content-Type: application/timestamp-query' \
        --data-binary @"$TMP/doc.tsq" "$BASE$1"
}
expect "before: /tsa/qualified serves over HTTP" "$(post /tsa/qualified)" 200

HPORT=$(free_port) || fatal "free port" "none"
printf '\n[server]\nhttps_listen = 127.0.0.1:%s\ntls_cert = %s\ntls_key = %s\ntls_chain = %s\n' \
    "$HPORT" "$TLS_SERVER_CERT" "$TLS_SERVER_KEY" "$TLS_SERVER_CHAIN" >>"$CONF"
sed -i 's/^qualified = yes$/qualified = yes\nhttps_only = yes/' "$CONF"
reload_wait "$TSAD_PID" "$LOG" || fatal "reload done" "$(tail -n 3 "$LOG")"
has "the reload is refused: https_only needs the HTTPS listener, which needs a restart" "$LOG" \
    'AUDIT event=config_reload result=failed .*https_only.*restart'
expect "after: /tsa/qualified still serves over HTTP (not 403)" "$(post /tsa/qualified)" 200
expect "after: /tsa still serves" "$(post /tsa)" 200
tsad_stop
itest_log_clean "$LOG"
t_summary "$NAME"
