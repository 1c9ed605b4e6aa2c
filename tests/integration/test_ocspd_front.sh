#!/usr/bin/env bash
#
# test_ocspd_front.sh: ocspd's front cache (issue 10 item 2; [ocsp] front_cache): a request
# seen twice is answered from a reply kept by its DER, and that shortcut never changes
# an answer. STANDARDS EID-05, OCSP-13, OCSP-16, LW-03, OCSP-03:
#   - the third identical POST and GET are front-cache hits (metric), byte for byte the same
#     answer with the same ETag, Last-Modified, Expires and Cache-Control as the first; an
#     escaped GET of the same request is the same entry;
#   - hits with no store commit in between do not read the status record again (metric); an
#     idle ocspd commits nothing (the store's transaction id stays);
#   - a revocation, a hold and a release made with ocspctl are seen by the very next request
#     after the reply was kept (the entry is found stale: metric), the record read again;
#   - an answer for a never-issued serial kept from the unissued cache stops being sent once
#     the serial gets a record (imported as good, then revoked);
#   - a changed issuer setting (nonce required) applies to the very next request after ocspd
#     loads it: the kept good answer is not sent again;
#   - If-None-Match still gets 304; a POST whose body is the text of a kept GET path is
#     malformedRequest, not the GET's answer;
#   - front_cache = 0: no entry is ever kept, answers unchanged.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd_front

ctl() {
    SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/ocspctl" -c "$CONF" -d "$STORE" -u test-operator "$@"
}
metric() { curl -s "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
hits() { metric 'ocsp_front_cache_total{result="hit"}'; }
stale() { metric 'ocsp_front_cache_total{result="stale"}'; }
# post REQ TAG: POST REQ; TAG.der the body, TAG.hdr the headers
post() {
    curl -s -D "$TMP/$2.hdr" -o "$TMP/$2.der" -H 'Content-Type: application/ocsp-request' \
        --data-binary @"$1" "$URL/"
}
# get REQ TAG: the same by GET (unescaped base64 path)
get() {
    curl -s -D "$TMP/$2.hdr" -o "$TMP/$2.der" "$URL/$(base64 -w0 "$1")"
}
status_of() { derutil ocsp-resp "$TMP/$1.der" 2>/dev/null | sed -n 's/^single.0.status=//p' | head -n 1; }
# responseStatus (RFC 6960 §4.2.1: 1 = malformedRequest)
respstatus_of() { derutil ocsp-resp "$TMP/$1.der" 2>/dev/null | sed -n 's/^status=//p' | head -n 1; }
hdr() { tr -d '\r' <"$TMP/$1.hdr" | awk -v h="$2" 'tolower($1) == tolower(h) ":" { $1 = ""; sub(/^ /, ""); print }'; }
# serial of a PEM certificate, hex
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }

itest_ocsp_setup

# a fresh good certificate of the demo CA, requested by serial (SHA-1 CertID, no nonce)
# (not expired: presign skips an expired certificate, whose answer is signed on demand)
ser=$(awk -F'\t' -v now="$(date -u +%y%m%d%H%M%SZ)" '$1 == "V" && $2 > now { s = $4 } END { print s }' \
    "$TMP/pki/qca/index.txt")
[[ -n $ser ]] || fatal "a good serial in the demo CA" "none"
openssl ocsp -issuer "$CA" -serial "0x$ser" -no_nonce -reqout "$TMP/good.req" >/dev/null 2>&1 ||
    fatal "request" "openssl ocsp -reqout failed"

# ---- hits: the third identical request, byte for byte the same answer ----
h0=$(hits)
post "$TMP/good.req" p1
post "$TMP/good.req" p2
post "$TMP/good.req" p3
h1=$(hits)
expect "POST answers good" "$(status_of p1) $(status_of p3)" "good good"
if ((h1 >= h0 + 1)); then t_ok "the third identical POST is a front-cache hit ($h0 -> $h1)"; else
    t_fail "the third identical POST is a front-cache hit" "hits $h0 -> $h1"
fi
if cmp -s "$TMP/p1.der" "$TMP/p3.der"; then t_ok "the kept reply is the same answer, byte for byte"; else
    t_fail "the kept reply is the same answer" "bodies differ"
fi
for h in ETag Last-Modified Expires Cache-Control Content-Type; do
    expect "the kept reply carries the same $h (LW-03)" "$(hdr p3 "$h")" "$(hdr p1 "$h")"
done
get "$TMP/good.req" g1
get "$TMP/good.req" g2
get "$TMP/good.req" g3
h2=$(hits)
if ((h2 >= h1 + 1)) && cmp -s "$TMP/g3.der" "$TMP/p1.der"; then
    t_ok "the third identical GET is a hit with the same answer ($h1 -> $h2)"
else
    t_fail "the third identical GET is a hit with the same answer" "hits $h1 -> $h2"
fi

# every GET spelling of one request is one entry: the escaped form hits at once
h3=$(hits)
gpath=$(base64 -w0 "$TMP/good.req" | sed 's/+/%2B/g; s,/,%2F,g; s/=/%3D/g')
curl -s -o "$TMP/ge.der" "$URL/$gpath"
h4=$(hits)
if ((h4 == h3 + 1)) && cmp -s "$TMP/ge.der" "$TMP/p1.der"; then
    t_ok "an escaped GET of the same request is the same entry (hit at once)"
else
    t_fail "an escaped GET of the same request is the same entry" "hits $h3 -> $h4"
fi

# ---- If-None-Match: 304, also once the reply is kept ----
etag=$(hdr g3 ETag)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$URL/$(base64 -w0 "$TMP/good.req")")
expect "If-None-Match with the kept ETag -> 304 (LW-03)" "$code" "304"

# ---- a POST whose body is the text of the kept GET path: not the GET's answer ----
base64 -w0 "$TMP/good.req" >"$TMP/text.req"
post "$TMP/text.req" t1
post "$TMP/text.req" t2
post "$TMP/text.req" t3
expect "a POST of the GET path's text is malformedRequest, not a kept answer (OCSP-03)" \
    "$(respstatus_of t3)" "1"

# ---- nothing committed since an entry read the record: it is not read again ----
# (ocspd's own writes, such as the refresher's, commit too and make the next hit read it: the
# check is made over a window in which the store's last transaction id did not move)
reads() { metric ocsp_front_cache_record_reads_total; }
last_txn() { mdb_stat -e "$STORE" | awk -F': ' '/Last transaction ID/ { print $2 }'; }
quiet=""
for try in $(seq 1 20); do
    ((try == 1)) || sleep 0.3
    # the window starts before q1, which reads the record (or relies on an earlier read)
    tx0=$(last_txn)
    post "$TMP/good.req" q1
    rd0=$(reads) h5=$(hits)
    for i in 2 3 4; do post "$TMP/good.req" q$i; done
    rd1=$(reads) h6=$(hits) tx1=$(last_txn)
    if [[ -n $tx0 && $tx0 == "$tx1" ]]; then
        quiet="hits $h5 -> $h6, record reads $rd0 -> $rd1 (store transaction $tx0, try $try)"
        break
    fi
done
if [[ -z $quiet ]]; then
    t_fail "hits with no store commit in between" "the store committed in each of 20 windows"
elif [[ -n $rd0 ]] && ((h6 == h5 + 3 && rd1 == rd0)) && cmp -s "$TMP/q4.der" "$TMP/p1.der"; then
    t_ok "hits with no store commit in between do not read the record again: $quiet"
else
    t_fail "hits with no store commit in between do not read the record again" "$quiet"
fi

# ---- an idle ocspd commits nothing: the refresher looks for pending status changes 4 times a
# second (before, each look was a write transaction that moved the store's transaction id,
# which sent every front-cache hit back to its status record) ----
tx0=$(last_txn)
sleep 1.5
tx1=$(last_txn)
expect "idle for 1.5 s: the store's transaction id stays ($tx0)" "$tx1" "$tx0"

# ---- revocation, hold, release: the very next request (EID-05, OCSP-16) ----
s0=$(stale)
ctl revoke qca "$ser" --reason keyCompromise >"$TMP/ctl.out" 2>&1 || fatal "revoke" "$(cat "$TMP/ctl.out")"
post "$TMP/good.req" r1
get "$TMP/good.req" r2
expect "revoked: the very next POST after the reply was kept (EID-05)" "$(status_of r1)" "revoked"
expect "revoked: the very next GET after the reply was kept (EID-05)" "$(status_of r2)" "revoked"
s1=$(stale)
rd2=$(reads)
if ((rd2 > rd1)); then t_ok "after ocspctl's commit the record is read again ($rd1 -> $rd2)"; else
    t_fail "after ocspctl's commit the record is read again" "reads $rd1 -> $rd2"
fi
if ((s1 >= s0 + 1)); then t_ok "the kept replies were found stale ($s0 -> $s1)"; else
    t_fail "the kept replies were found stale" "stale $s0 -> $s1"
fi

hold=$OCSP_HOLD_SERIAL
openssl ocsp -issuer "$CA" -serial "0x$hold" -no_nonce -reqout "$TMP/hold.req" >/dev/null 2>&1
ctl release qca "$hold" >/dev/null 2>&1 || true # the demo holds it: start from good
for i in 1 2 3; do post "$TMP/hold.req" h$i; done
expect "hold serial good before the hold (kept)" "$(status_of h3)" "good"
ctl hold qca "$hold" >"$TMP/ctl.out" 2>&1 || fatal "hold" "$(cat "$TMP/ctl.out")"
post "$TMP/hold.req" h4
expect "held: the very next request (OCSP-16)" "$(status_of h4)" "revoked"
for i in 5 6; do post "$TMP/hold.req" h$i; done
ctl release qca "$hold" >"$TMP/ctl.out" 2>&1 || fatal "release" "$(cat "$TMP/ctl.out")"
post "$TMP/hold.req" h7
expect "released: the very next request (OCSP-16)" "$(status_of h7)" "good"

# ---- a never-issued serial: its kept answer goes once the serial has a record ----
never=7E57F00D0000000000000000C0FFEE01
openssl ocsp -issuer "$CA" -serial "0x$never" -no_nonce -reqout "$TMP/never.req" >/dev/null 2>&1
for i in 1 2 3 4; do post "$TMP/never.req" n$i; done
expect "never issued: revoked (OCSP-13), kept" "$(status_of n4)" "revoked"
ctl add qca "$never" >"$TMP/ctl.out" 2>&1 || fatal "add" "$(cat "$TMP/ctl.out")"
post "$TMP/never.req" n5
expect "the serial now issued: good on the very next request" "$(status_of n5)" "good"

# ---- a changed issuer setting applies to the next request once loaded ----
for i in 1 2 3; do post "$TMP/never.req" c$i; done
ctl issuer add qca --cert "$CA" --key-label "$OCSP_SIGNER_LABEL" --signer-cert "$SIGNER" \
    --nonce require >"$TMP/ctl.out" 2>&1 || fatal "issuer add --nonce require" "$(cat "$TMP/ctl.out")"
# ocspd loads changed issuers on its refresher's poll (refresh_interval): SIGHUP now
reload_wait "$OCSPD_PID" "$TMP/ocspd.log" || t_fail "SIGHUP reload" "no config_reload line"
post "$TMP/never.req" c4
expect "nonce required: the kept good answer is not sent (malformedRequest)" \
    "$(respstatus_of c4)" "1"
ctl issuer add qca --cert "$CA" --key-label "$OCSP_SIGNER_LABEL" --signer-cert "$SIGNER" \
    --nonce echo >/dev/null 2>&1
reload_wait "$OCSPD_PID" "$TMP/ocspd.log" || true
post "$TMP/never.req" c5
expect "nonce echo again: good" "$(status_of c5)" "good"

# ---- front_cache = 0: nothing kept, same answers ----
itest_ocspd_stop_clean
printf '\n[ocsp]\nfront_cache = 0\n' >>"$CONF"
ocspd_start "$CONF" "$TMP/ocspd.log" || fatal "ocspd with front_cache = 0" "$(tail -n 3 "$TMP/ocspd.log")"
for i in 1 2 3 4; do post "$TMP/never.req" z$i; done
expect "front_cache = 0: no hit" "$(hits)" "0"
expect "front_cache = 0: answers unchanged" "$(status_of z4)" "good"
itest_ocspd_stop_clean
t_summary "$NAME"
