#!/usr/bin/env bash
# itest: alone (resident memory bound)
#
# test_review_front_memory.sh (review of issue 10 item 2): [ocsp] front_cache bounds the front
# cache's memory. A client fills it for free: every spelling of one GET request (each base64
# character raw or percent-escaped) is its own entry with its own copy of the answer, admitted
# on its second sighting, and costs no signature (a pre-signed hit: no rate limit, OCSP-27).
# Filled that way with 16 MiB configured, ocspd's resident memory must not grow by more than
# the setting and a quarter (the counted cost per entry, key + answer + 512, leaves out the
# canned reply, libmicrohttpd's response and its header copies: on main it grows by about
# 1.65 times the setting).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_review_front_memory

metric() { curl -s "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$OCSPD_PID/status"; }

itest_ocsp_setup
ocspd_stop
sed -i 's/^max_certids = 8$/max_certids = 8\nfront_cache = 16M/' "$CONF"
grep -q '^front_cache = 16M$' "$CONF" || fatal "front_cache = 16M set" "not in $CONF"
ocspd_start "$CONF" "$TMP/ocspd.log" || fatal "ocspd with front_cache = 16M" "$(tail -n 3 "$TMP/ocspd.log")"

# (not expired: presign skips an expired certificate, whose answer is signed on demand)
ser=$(awk -F'\t' -v now="$(date -u +%y%m%d%H%M%SZ)" '$1 == "V" && $2 > now { s = $4 } END { print s }' \
    "$TMP/pki/qca/index.txt")
[[ -n $ser ]] || fatal "a good serial in the demo CA" "none"
openssl ocsp -issuer "$CA" -serial "0x$ser" -no_nonce -reqout "$TMP/good.req" >/dev/null 2>&1 ||
    fatal "request" "openssl ocsp -reqout failed"

# fill.py PORT REQ FIRST COUNT: GET spellings FIRST..FIRST+COUNT-1 of REQ, each twice, on one
# keep-alive connection; prints the number of 200 answers
cat >"$TMP/fill.py" <<'PY'
import base64, http.client, sys
port, req, first, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b64 = base64.b64encode(open(req, "rb").read()).decode()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
ok = 0
for i in range(first, first + count):
    # spelling i: the first 40 characters raw or %XX by the bits of i
    path = "/" + "".join("%%%02X" % ord(ch) if j < 40 and (i >> j) & 1 else ch
                         for j, ch in enumerate(b64))
    for _ in range(2):
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        ok += r.status == 200
print(ok)
PY

# warm up (threads, arenas, connection buffers), then the baseline
python3 "$TMP/fill.py" "$PORT" "$TMP/good.req" 1 500 >/dev/null
r0=$(rss_kb)
n=$(python3 "$TMP/fill.py" "$PORT" "$TMP/good.req" 1000 16000)
expect "32000 GET spellings of one request answered" "$n" "32000"
h=$(metric 'ocsp_front_cache_total{result="hit"}')
python3 "$TMP/fill.py" "$PORT" "$TMP/good.req" 1000 200 >/dev/null
h2=$(metric 'ocsp_front_cache_total{result="hit"}')
if ((h2 > h)); then t_ok "the spellings were kept (hits $h -> $h2)"; else
    t_fail "the spellings were kept" "hits $h -> $h2"
fi
r1=$(rss_kb)
limit=$((16 * 1024 * 5 / 4))
# the memory bound: not under ASan, whose allocator keeps freed memory in quarantine (hundreds
# of MB of resident memory that are not ocspd's); the requests above still run and are checked
if [[ $BUILD == *asan* ]]; then
    t_ok "resident memory grew by $((r1 - r0)) kB (no bound under ASan)"
elif ((r1 - r0 <= limit)); then
    t_ok "resident memory grew by $((r1 - r0)) kB <= $limit kB (front_cache = 16M)"
else
    t_fail "resident memory bounded by front_cache" \
        "grew by $((r1 - r0)) kB ($r0 -> $r1 kB), more than $limit kB for front_cache = 16M"
fi
itest_ocspd_stop_clean
t_summary "$NAME"
