#!/usr/bin/env bash
#
# test_http_ipv6_prefix.sh: review of issue 8 item 1 (per-address connection limit). An IPv6
# host usually holds a whole /64 and picks any source address in it: a per-address limit on
# full 128-bit addresses does not bound it (the signing budget, common/ratelimit, already
# counts IPv6 clients by /64). Run in a network namespace of its own (unshare -n, root) with
# 20 addresses of fd00::/64 on lo: tsad with per_ip_limit 4, 20 connections from 20
# addresses of the one /64: 16 must be refused.
set -uo pipefail
if [[ -z ${REVIEW_NETNS:-} ]]; then
    if ! unshare -n true 2>/dev/null; then
        echo "skip: test_http_ipv6_prefix needs unshare -n (root)"
        exit 0
    fi
    exec unshare -n env REVIEW_NETNS=1 "$0" "$@"
fi
ip link set lo up
for i in $(seq 1 21); do ip -6 addr add "fd00::$(printf %x "$i")/64" dev lo nodad; done

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_http_ipv6_prefix
itest_tsa_setup local
sed -i -e "s|^listen = .*|listen = [fd00::1]:$PORT|" "$CONF"
printf '[server]\nper_ip_limit = 4\n' >>"$CONF"
itest_tsad_start
BASE="http://[fd00::1]:$PORT"
wait_http "$BASE/healthz" 10 200 || fatal "tsad healthy" "$(tail -n 3 "$LOG")"
t_ok "tsad on [fd00::1]:$PORT"
closed=$(python3 "$ROOT/tests/lib/v6conns.py" "$PORT" 20 fd00:: 2>&1)
if [[ $closed == 16 ]]; then t_ok "20 connections from one /64, per_ip_limit 4: 16 refused"; else
    t_fail "20 connections from one /64, per_ip_limit 4: 16 refused" "$closed refused"
fi
t_summary "$NAME"
