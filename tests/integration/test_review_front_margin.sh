#!/usr/bin/env bash
#
# test_review_front_margin.sh (review of issue 10 item 2): a kept front-cache reply is sent
# until "the time it is due for re-signing" (ocsp_front.h), computed once, when the reply is
# kept, from [ocsp] refresh_margin. A SIGHUP that raises refresh_margin moves that time
# earlier (LW-05: the operator wants answers re-signed sooner); the refresher re-signs the
# stored answer, the full path sends the new one, and the kept reply must not outlive the new
# refresh point. On main the front cache keeps sending the old answer until the old point.
#
# The clock of ocspd is stepped forward with a shim built here: time() and gettimeofday() only
# (ocspd's "now"); clock_gettime is left alone, since the timed waits of the refresher take
# their deadline from it and the kernel would not see the step.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_review_front_margin

post() {
    curl -s -o "$TMP/$2.der" -H 'Content-Type: application/ocsp-request' \
        --data-binary @"$1" "$URL/"
}
metric() { curl -s "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
hits() { metric 'ocsp_front_cache_total{result="hit"}'; }
resigned() { metric 'ocsp_resigned_total'; }
produced_of() { derutil ocsp-resp "$TMP/$1.der" 2>/dev/null | sed -n 's/^produced=//p' | head -n 1; }

cc -shared -fPIC -O1 -o "$TMP/libshift.so" "$(dirname "${BASH_SOURCE[0]}")/../lib/timeshift.c" -ldl ||
    fatal "clock shim built" "cc failed"

itest_ocsp_setup
ocspd_stop
echo 0 >"$TMP/shift"
sed -i 's/^refresh_interval = .*/refresh_interval = 1s/' "$CONF"
LD_PRELOAD=$TMP/libshift.so REVIEW_SHIFT_FILE=$TMP/shift ocspd_start "$CONF" "$TMP/ocspd.log" ||
    fatal "ocspd with the clock shim" "$(tail -n 3 "$TMP/ocspd.log")"

# (not expired: presign skips an expired certificate, whose answer is signed on demand)
ser=$(awk -F'\t' -v now="$(date -u +%y%m%d%H%M%SZ)" '$1 == "V" && $2 > now { s = $4 } END { print s }' \
    "$TMP/pki/qca/index.txt")
[[ -n $ser ]] || fatal "a good serial in the demo CA" "none"
openssl ocsp -issuer "$CA" -serial "0x$ser" -no_nonce -reqout "$TMP/good.req" >/dev/null 2>&1 ||
    fatal "request" "openssl ocsp -reqout failed"

h0=$(hits)
for i in 1 2 3; do post "$TMP/good.req" k$i; done
h1=$(hits)
if ((h1 >= h0 + 1)); then t_ok "the reply is kept (the third request is a hit: $h0 -> $h1)"; else
    t_fail "the reply is kept" "hits $h0 -> $h1"
fi
p0=$(produced_of k3)

# refresh_margin 50 -> 90: answers are due once 10 % of their validity (1 day) has passed
sed -i 's/^refresh_margin = .*/refresh_margin = 90/' "$CONF"
reload_wait "$OCSPD_PID" "$TMP/ocspd.log" || fatal "SIGHUP reload" "no config_reload line"
# three hours later: due under the new margin, not under the old one
r0=$(resigned)
echo 10800 >"$TMP/shift"
for ((i = 0; i < 100; i++)); do
    (($(resigned) > r0)) && break
    sleep 0.1
done
if (($(resigned) > r0)); then t_ok "the refresher re-signed the due answers ($r0 -> $(resigned))"; else
    t_fail "the refresher re-signed the due answers" "ocsp_resigned_total still $r0"
fi
# the full path (another spelling of the same request, never kept) sends the re-signed answer
curl -s -o "$TMP/full.der" "$URL/$(base64 -w0 "$TMP/good.req" | sed 's/^M/%4D/')"
p_full=$(produced_of full)
if [[ $p_full > $p0 ]]; then t_ok "the full path sends the re-signed answer ($p0 -> $p_full)"; else
    t_fail "the full path sends the re-signed answer" "producedAt $p_full, kept $p0"
fi
post "$TMP/good.req" k4
expect "the kept request gets the re-signed answer, not the one past its refresh point (LW-05)" \
    "$(produced_of k4)" "$p_full"

echo 0 >"$TMP/shift"
itest_ocspd_stop_clean
t_summary "$NAME"
