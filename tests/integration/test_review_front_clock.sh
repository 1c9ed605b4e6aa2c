#!/usr/bin/env bash
#
# test_review_front_clock.sh (review of issue 10 item 2): ocspd's front cache after the system
# clock steps back. The full path never sends a stored answer produced after the clock's now
# (ocsp_try_stored: produced_at <= now + 1; it signs a new one instead), because a client
# rejects an answer whose producedAt/thisUpdate lies in its future. A reply kept in the front
# cache must obey the same rule: after a backward step, the very next identical request gets
# an answer whose producedAt is not ahead of ocspd's clock. STANDARDS EID-05, LW-03.
#
# The clock of ocspd is stepped with a shim built here: time() and gettimeofday() moved by the
# seconds in a file (ocspd's "now" is time(); tests/lib/clockshift.c moves only clock_gettime,
# which is left alone here: the timed waits take their deadline from it and the kernel would
# not see the step).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_review_front_clock

post() {
    curl -s -D "$TMP/$2.hdr" -o "$TMP/$2.der" -H 'Content-Type: application/ocsp-request' \
        --data-binary @"$1" "$URL/"
}
metric() { curl -s "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
hits() { metric 'ocsp_front_cache_total{result="hit"}'; }
produced_of() { derutil ocsp-resp "$TMP/$1.der" 2>/dev/null | sed -n 's/^produced=//p' | head -n 1; }
# GeneralizedTime YYYYMMDDHHMMSSZ -> epoch seconds
epoch_of() { date -u -d "$(sed -E 's/^(....)(..)(..)(..)(..)(..)Z$/\1-\2-\3 \4:\5:\6/' <<<"$1")" +%s; }

cc -shared -fPIC -O1 -o "$TMP/libshift.so" "$(dirname "${BASH_SOURCE[0]}")/../lib/timeshift.c" -ldl ||
    fatal "clock shim built" "cc failed"

itest_ocsp_setup
# again with the shim: the clock as it is for now
ocspd_stop
echo 0 >"$TMP/shift"
LD_PRELOAD=$TMP/libshift.so REVIEW_SHIFT_FILE=$TMP/shift ocspd_start "$CONF" "$TMP/ocspd.log" ||
    fatal "ocspd with the clock shim" "$(tail -n 3 "$TMP/ocspd.log")"

# (not expired: presign skips an expired certificate, whose answer is signed on demand)
ser=$(awk -F'\t' -v now="$(date -u +%y%m%d%H%M%SZ)" '$1 == "V" && $2 > now { s = $4 } END { print s }' \
    "$TMP/pki/qca/index.txt")
[[ -n $ser ]] || fatal "a good serial in the demo CA" "none"
openssl ocsp -issuer "$CA" -serial "0x$ser" -no_nonce -reqout "$TMP/good.req" >/dev/null 2>&1 ||
    fatal "request" "openssl ocsp -reqout failed"

# kept in the front cache: the third identical request is a hit
h0=$(hits)
for i in 1 2 3; do post "$TMP/good.req" k$i; done
h1=$(hits)
if ((h1 >= h0 + 1)); then t_ok "the reply is kept (the third request is a hit: $h0 -> $h1)"; else
    t_fail "the reply is kept" "hits $h0 -> $h1"
fi
p_kept=$(epoch_of "$(produced_of k3)")

# the clock steps back two hours
echo -7200 >"$TMP/shift"
post "$TMP/good.req" b1
now=$(($(date -u +%s) - 7200))
p_after=$(epoch_of "$(produced_of b1)")
if ((p_after <= now + 1)); then
    t_ok "after a backward clock step the answer is not produced in ocspd's future"
else
    t_fail "after a backward clock step the answer is not produced in ocspd's future" \
        "producedAt $p_after is $((p_after - now)) s ahead of ocspd's clock $now (kept reply: $p_kept)"
fi
# the full path for comparison: the same request with another body encoding is not kept
get_path=$(base64 -w0 "$TMP/good.req" | sed 's/=/%3D/g; s/^M/%4D/')
curl -s -o "$TMP/full.der" "$URL/$get_path"
now=$(($(date -u +%s) - 7200))
p_full=$(epoch_of "$(produced_of full)")
if ((p_full <= now + 1)); then t_ok "the full path signs a new answer after the step (reference)"; else
    t_fail "the full path signs a new answer after the step (reference)" "producedAt $p_full, now $now"
fi

echo 0 >"$TMP/shift"
itest_ocspd_stop_clean
t_summary "$NAME"
