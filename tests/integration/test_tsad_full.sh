#!/usr/bin/env bash
#
# test_tsad_full.sh: tsad with a store that fills up (DESIGN D5, D10; TSA-18). A 1 MB LMDB map
# behind a journal of two 256 KiB segments, under load from the load generator:
#   - once the map is full, records stay durable in the journal and tokens keep being issued
#     until the journal is full too; then requests get systemFailure (never a token without
#     its record), /healthz turns red, the log names the store and the setting to grow, and
#     tsad keeps answering;
#   - with map_size grown and tsad started again, the journal is replayed: every token any
#     client received is in the audit log, each once.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsad_full

LG=$BUILD/bench/loadgen
[[ -x $LG ]] || fatal "loadgen" "$LG is not built (make all)"
itest_tsa_setup local
sed -i 's/^map_size = .*/map_size = 1M/' "$CONF"
printf '[store]\njournal_segment = 256k\njournal_max = 512k\n' >>"$CONF"
itest_tsad_start
itest_tsad_healthy
"$LG" gen-tsa --out "$TMP/tsa.set" --count 500 --nonce 50 --seed 5 >/dev/null ||
    fatal "request set" "gen-tsa failed"
"$LG" run --url "$BASE/tsa/soft" --requests "$TMP/tsa.set" --conns 8 --duration 4 --timeout 5 \
    --verify-every 0 --save-serials "$TMP/serials.txt" >"$TMP/lg.out" 2>&1
granted=$(grep -c . "$TMP/serials.txt")
if grep -q 'protocol_status' "$TMP/lg.out" && ((granted > 500)); then
    t_ok "$granted tokens issued, then refusals once the journal is full too"
else
    t_fail "tokens, then refusals" "$granted granted: $(grep -E 'requests|errors' "$TMP/lg.out")"
fi
openssl ts -query -data "$CONF" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null
curl -s -o "$TMP/full.tsr" -H 'Content-Type: application/timestamp-query' \
    --data-binary @"$TMP/q.tsq" "$BASE/tsa/soft"
expect "a request now gets systemFailure (failInfo bit 25)" "$(derutil tsp-resp "$TMP/full.tsr" \
    2>/dev/null | sed -n 's/^failbits=//p')" 25
hz=$(curl -s -w ' %{http_code}' "$BASE/healthz")
if [[ $hz == *'"store":{"ok":false'*' 503' ]]; then t_ok "/healthz 503, store not ok"; else
    t_fail "/healthz red" "$hz"
fi
if grep -q 'tsad audit store .* is full .*\[store\] map_size in' "$LOG"; then
    t_ok "the log names the store and [store] map_size"
else
    t_fail "the log names the store and the setting" "$(grep -m2 -i full "$LOG")"
fi
tsad_stop
sed -i 's/^map_size = .*/map_size = 64M/' "$CONF"
itest_tsad_start
itest_tsad_healthy
for ((i = 0; i < 30; i++)); do
    mdb_dump -s tsa_audit "$STORE" >"$TMP/dump.txt" 2>/dev/null
    derutil mdb "$TMP/dump.txt" | sed -E 's/.*"serial":"([0-9a-f]+)".*/\1/' | sort >"$TMP/log.txt"
    (($(grep -c . "$TMP/log.txt") >= granted)) && break
    sleep 0.2
done
expect "after growing the map: every token received is in the log" \
    "$(sort -u "$TMP/serials.txt" | comm -13 "$TMP/log.txt" - | grep -c .)" 0
expect "no serial twice" "$(uniq -d "$TMP/log.txt" | grep -c .)" 0
curl -s -o "$TMP/after.tsr" -H 'Content-Type: application/timestamp-query' \
    --data-binary @"$TMP/q.tsq" "$BASE/tsa/soft"
expect "tokens are issued again" "$(derutil tsp-resp "$TMP/after.tsr" 2>/dev/null |
    sed -n 's/^status=//p')" 0
tsad_stop
itest_log_clean "$LOG"

t_summary "$NAME"
