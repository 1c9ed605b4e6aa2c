#!/usr/bin/env bash
#
# test_http_keepalive_deadline.sh: review of issue 8 item 1 (request deadline). The deadline
# for receiving a whole request runs from when the connection became ready (accept, or the
# previous answer), not from when the request began: on a kept-alive connection, a client
# that is silent for a while (under the idle timeout) and then sends a request that takes
# less than request_timeout to arrive is cut in the middle of it. Here: timeout 2 s,
# request_timeout 3 s; 1.5 s of silence, then a request whose body takes 2 s: the request
# took 2 s (< 3 s) and must be answered.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_http_keepalive_deadline
itest_tsa_setup local
sed -i -e 's|^timeout = .*|timeout = 2s|' "$CONF"
printf '[server]\nrequest_timeout = 3s\n' >>"$CONF"
itest_tsad_start
itest_tsad_healthy
echo "keepalive" >"$TMP/doc"
openssl ts -query -data "$TMP/doc" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null
got=$(python3 "$ROOT/tests/lib/keepalive_late.py" "$PORT" "$TMP/q.tsq" 1.5 2 2>&1)
if [[ $got == "200 200" ]]; then
    t_ok "a request begun 1.5 s into a kept-alive connection, 2 s to arrive: answered"
else
    t_fail "a request begun 1.5 s into a kept-alive connection, 2 s to arrive: answered" "$got"
fi
got=$(python3 "$ROOT/tests/lib/keepalive_late.py" "$PORT" "$TMP/q.tsq" 0.2 4 2>&1)
if [[ $got == "200 cut" ]]; then t_ok "a request that takes 4 s (> 3 s) is still cut"; else
    t_fail "a request that takes 4 s (> 3 s) is still cut" "$got"
fi
t_summary "$NAME"
