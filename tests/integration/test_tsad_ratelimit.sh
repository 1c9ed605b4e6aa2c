#!/usr/bin/env bash
# itest: alone (token refill rates)
#
# test_tsad_ratelimit.sh: the optional per-source token limit of tsad (issue 8 item 2,
# "TSA tokens as an option"; RFC 3161 §2.4.2). A real tsad (SoftHSM2 TSUs, private chronyd)
# with [limits] token_rate = 0.1, token_burst = 2; clients are curl bound to 127.x source
# addresses and `openssl ts -verify`:
#   - from 127.0.0.1: 2 tokens granted (and verify), then rejection (status 2) with failInfo
#     systemFailure (bit 25), a statusString naming the limit, Retry-After 1..10 s;
#   - from 127.0.0.2 a token is still granted; the refusals are counted
#     (tsa_rate_limited_total) and logged once.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsad_ratelimit

itest_tsa_setup local
cat >>"$CONF" <<'EOF'

[limits]
token_rate = 0.1
token_burst = 2
EOF
itest_tsad_start
itest_tsad_healthy

echo "rate limited document" >"$TMP/doc.txt"
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null ||
    fatal "openssl ts -query" "failed"
post() { # post SRC NAME: HTTP code; NAME.tsr, NAME.hdr, NAME.kv
    local code
    code=$(curl -s --max-time 20 --interface "$1" -D "$TMP/$2.hdr" -o "$TMP/$2.tsr" \
        -w '%{http_code}' -H 'Content-Type: application/timestamp-query' \
        --data-binary @"$TMP/q.tsq" "$URL")
    derutil tsp-resp "$TMP/$2.tsr" >"$TMP/$2.kv" 2>/dev/null
    echo "$code"
}
kv() { kv_get "$TMP/$1.kv" "$2"; }
header() { sed -n "s/^$2: *//Ip" "$TMP/$1.hdr" | tr -d '\r' | head -n 1; }

granted=0 limited=0 other=0 ra_bad=0
for i in 1 2 3 4; do
    code=$(post 127.0.0.1 "t$i")
    if [[ $code == 200 && $(kv "t$i" status) == 0 ]] &&
        openssl ts -verify -data "$TMP/doc.txt" -in "$TMP/t$i.tsr" -CAfile "$PKI_CA_CHAIN" \
            >/dev/null 2>&1; then
        granted=$((granted + 1))
    elif [[ $code == 200 && $(kv "t$i" status) == 2 && $(kv "t$i" failbits) == 25 ]]; then
        limited=$((limited + 1))
        [[ $(header "t$i" Retry-After) =~ ^([1-9]|10)$ ]] || ra_bad=$((ra_bad + 1))
    else
        other=$((other + 1))
    fi
done
expect "4 requests from one address: 2 tokens (burst 2, verified), 2 refused" \
    "$granted $limited $other" "2 2 0"
expect "each refusal is rejection/systemFailure with Retry-After 1..10" "$ra_bad" 0
if openssl ts -reply -in "$TMP/t4.tsr" -text 2>/dev/null | grep -q 'token_rate'; then
    t_ok "the statusString names the limit"
else
    t_fail "the statusString names the limit" "$(openssl ts -reply -in "$TMP/t4.tsr" -text 2>&1 | head -n 5)"
fi
code=$(post 127.0.0.2 other)
expect "another address still gets its token" "$code $(kv other status)" "200 0"
n=$(curl -s "$BASE/metrics" | awk '$1 == "tsa_rate_limited_total" { print $2 + 0 }')
expect "tsa_rate_limited_total counts the refusals" "$n" 2
expect "logged once for the episode" "$(grep -c 'rate limit: 127.0.0.1 is over' "$LOG")" 1

t_summary "$NAME"
