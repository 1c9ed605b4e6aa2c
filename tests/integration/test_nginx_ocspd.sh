#!/usr/bin/env bash
# itest: alone (load shared between nodes)
#
# test_nginx_ocspd.sh: the shipped conf/nginx-ocspd.conf, run by the real nginx, caching and
# balancing two ocspd nodes (issue 9 item 2; DESIGN D7; RFC 5019 §6 / RFC 9919 §6, STANDARDS
# LW-03, LW-04, EID-05). Each node has its own LMDB store, built with ocspctl from the same
# demo CA (tests/lib/ocsp-pki.sh), and [ocsp] max_age = 5s, so that the cache's lifetime of an
# answer is short enough to watch. nginx's configuration is the shipped file with its example
# addresses and paths replaced (tests/lib/nodes.sh); all of it in a private temp dir on
# 127.0.0.1 free ports, every process stopped by pid.
#   - GET through nginx: the node's answer with its Cache-Control (max-age <= max_age), ETag,
#     Expires, Last-Modified unchanged; a second GET is a cache HIT that reaches no node, same
#     bytes; both verify with openssl ocsp;
#   - If-None-Match with the ETag -> 304 from the cache; another ETag -> 200; an error answer
#     (malformedRequest, Cache-Control: no-cache) is never a HIT;
#   - POST is never cached: every POST reaches a node (both nodes in turn), a nonce is echoed;
#   - a revocation imported on both nodes (openssl ca -revoke, ocspctl import-index): the
#     nodes answer revoked at once; the cache keeps serving its copy ("good", HIT) while it is
#     fresh, and serves "revoked" within max-age (+3 s of slack) of the revocation;
#   - one node stopped (SIGTERM, by pid) while 4 clients send GETs and POSTs: no request fails
#     (nginx's proxy_next_upstream and passive fail handling); afterwards every request that
#     reached a node was answered by the other one, and nginx logged the stopped node's error.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
# shellcheck source=tests/lib/nodes.sh
. "$ROOT/tests/lib/nodes.sh"
itest_setup test_nginx_ocspd

MAXAGE=5 # [ocsp] max_age of both nodes, seconds
N_PID=()
nodes_cleanup() {
    nodes_nginx_stop
    itest_cleanup
}
trap nodes_cleanup EXIT

if ! nodes_need nginx nginx; then
    t_ok "skipped: nginx is not installed and could not be installed"
    t_summary "$NAME"
    exit 0
fi
for f in ocspd ocspctl; do
    [[ -x $BUILD/$f ]] || fatal build "$BUILD/$f is not built (make all)"
done

# ---- helpers ----
# ctl I ARGS...: ocspctl on node I's store
ctl() {
    local i=$1
    shift
    SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/ocspctl" -c "$TMP/n$i/ocspd.conf" \
        -d "$TMP/n$i/store" -u test-operator "$@"
}
# get TAG URL [curl args...]: TAG.body, TAG.hdr; prints the HTTP code
get() {
    local tag=$1 url=$2
    shift 2
    curl -s --path-as-is --max-time 20 -D "$TMP/$tag.hdr" -o "$TMP/$tag.body" \
        -w '%{http_code}' "$@" "$url"
}
hdr() { sed -n "s/^$2: *//Ip" "$TMP/$1.hdr" | tr -d '\r' | head -n 1; }
b64_escape() { sed 's/+/%2B/g; s,/,%2F,g; s/=/%3D/g'; }
# ocsp_req NAME CERT: an OCSPRequest without nonce in TMP/NAME.req; prints its GET path
ocsp_req() {
    openssl ocsp -issuer "$CA" -cert "$2" -no_nonce -reqout "$TMP/$1.req" >/dev/null 2>&1 &&
        base64 -w0 "$TMP/$1.req" | b64_escape
}
# verify TAG CERT: openssl ocsp checks TAG.body (signature, CA chain); prints the status
verify() {
    openssl ocsp -respin "$TMP/$1.body" -issuer "$CA" -cert "$2" -CAfile "$CHAIN" -no_nonce \
        >"$TMP/$1.out" 2>&1
    if grep -q 'Response verify OK' "$TMP/$1.out"; then
        sed -n "s|^.*/$(basename "$2"): ||p" "$TMP/$1.out" | head -n 1
    else
        echo "unverified: $(tr '\n' ' ' <"$TMP/$1.out" | cut -c1-200)"
    fi
}
# access log: the line of the Nth request (1-based), and how many there are
ACCESS=$TMP/nginx/log/ocspd-access.log
alog_count() { wc -l <"$ACCESS"; }
alog_line() { sed -n "${1}p" "$ACCESS"; }
# upstream="..." of an access log line: the node(s) asked ("A, B": A failed), "-" for the cache
alog_upstream() { sed -n 's/.* upstream="\([^"]*\)".*/\1/p' <<<"$1"; }
# calc EXPR: floating-point arithmetic (awk), the value with 3 decimals; lt A B: A < B
calc() { awk "BEGIN { printf \"%.3f\\n\", ($1) }"; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }
now() { date +%s.%N; }

# ---- two ocspd nodes (own stores from the same CA), nginx in front ----
read -r P1 P2 PN < <(nodes_free_ports 3)
[[ -n ${PN:-} ]] || fatal ports "no free port"
URL=http://127.0.0.1:$PN
ocsp_pki_demo "$TMP/pki" "$URL" >"$TMP/pki.log" 2>&1 || fatal pki "$(tail -n 5 "$TMP/pki.log")"
# shellcheck disable=SC1091
. "$TMP/pki/ocsp-pki.env"
CA=$OCSP_CA_CERT CHAIN=$OCSP_CA_CHAIN
for i in 1 2; do
    port=P$i
    mkdir -p "$TMP/n$i"
    ocspd_write_conf "$TMP/n$i/ocspd.conf" "${!port}" "$TMP/n$i/store" "$TMP/pki"
    sed -i "s/^max_age = .*/max_age = ${MAXAGE}s/" "$TMP/n$i/ocspd.conf"
    grep -q "^max_age = ${MAXAGE}s$" "$TMP/n$i/ocspd.conf" || fatal "node $i conf" "max_age not set"
    ocsp_store_demo "$TMP/pki" "$TMP/n$i/store" "$TMP/n$i/ocspd.conf" >"$TMP/n$i/store.log" 2>&1 ||
        fatal "node $i store" "$(tail -n 5 "$TMP/n$i/store.log")"
    ocspd_start "$TMP/n$i/ocspd.conf" "$TMP/n$i/ocspd.log" ||
        fatal "node $i starts" "$(tail -n 5 "$TMP/n$i/ocspd.log")"
    N_PID[i]=$OCSPD_PID
done
OCSPD_PID= # the nodes are stopped here, by their own pids
t_ok "two ocspd nodes, each with its own store built by ocspctl from the demo CA (max_age ${MAXAGE}s)"
nodes_nginx_conf "$TMP/nginx.conf" "$TMP/nginx" "$PN" "127.0.0.1:$P1" "127.0.0.1:$P2" ||
    fatal "nginx configuration" "cannot make it from conf/nginx-ocspd.conf"
nodes_nginx_start "$TMP/nginx.conf" "$TMP/nginx" || fatal "nginx starts" "see above"
t_ok "nginx runs conf/nginx-ocspd.conf (example values replaced) on $URL"

# ---- GET: cached as the node says (LW-03) ----
gpath=$(ocsp_req good "$OCSP_GOOD_CERT") || fatal "openssl ocsp -reqout" "failed"
mark=$(alog_count)
code=$(get g1 "$URL/$gpath")
expect "GET through nginx: 200, a cache MISS" "$code $(hdr g1 X-Cache-Status)" "200 MISS"
expect "GET answer verifies (openssl ocsp): good" "$(verify g1 "$OCSP_GOOD_CERT")" good
cc=$(hdr g1 Cache-Control)
if [[ $cc =~ ^max-age=([0-9]+),\ public,\ no-transform,\ must-revalidate$ ]] &&
    ((BASH_REMATCH[1] >= 1 && BASH_REMATCH[1] <= MAXAGE)); then
    t_ok "ocspd's Cache-Control passed through unchanged: '$cc' (max-age <= max_age)"
else
    t_fail "ocspd's Cache-Control passed through" "'$cc'"
fi
for h in ETag Expires Last-Modified; do
    v=$(hdr g1 "$h")
    if [[ -n $v ]]; then t_ok "GET through nginx: $h: $v"; else t_fail "GET through nginx: $h" "missing"; fi
done
etag=$(hdr g1 ETag)
code=$(get g2 "$URL/$gpath")
expect "the same GET again: 200, a cache HIT, same ETag" "$code $(hdr g2 X-Cache-Status) $(hdr g2 ETag)" \
    "200 HIT $etag"
t_check "the HIT has the very bytes of the node's answer" cmp "$TMP/g1.body" "$TMP/g2.body"
expect "the cached answer verifies: good" "$(verify g2 "$OCSP_GOOD_CERT")" good
code=$(get g304 "$URL/$gpath" -H "If-None-Match: $etag")
expect "If-None-Match with that ETag -> 304 from the cache" "$code $(hdr g304 X-Cache-Status)" "304 HIT"
code=$(get g200 "$URL/$gpath" -H 'If-None-Match: "0000"')
expect "If-None-Match with another ETag -> 200" "$code $(hdr g200 X-Cache-Status)" "200 HIT"
sleep 0.2 # nginx writes the access log line after the answer
expect "MISS reached a node; HIT, 304 and 200 from the cache reached none (access log)" \
    "$(alog_upstream "$(alog_line $((mark + 1)))" | grep -c 127.0.0.1),$(for n in 2 3 4; do alog_upstream "$(alog_line $((mark + n)))"; done | tr '\n' ,)" \
    "1,-,-,-,"

for n in 1 2; do
    code=$(get e$n "$URL/not-base64")
    expect "an error answer (malformedRequest, no-cache) is not cached: GET $n is a MISS" \
        "$code $(hdr e$n X-Cache-Status) $(hdr e$n Cache-Control) $(od -An -tx1 "$TMP/e$n.body" | tr -d ' \n')" \
        "200 MISS no-cache 30030a0101"
done

# ---- POST: never cached, both nodes in turn ----
mark=$(alog_count)
for n in 1 2 3 4; do
    code=$(get p$n "$URL/" -H 'Content-Type: application/ocsp-request' --data-binary @"$TMP/good.req")
    [[ $code == 200 && $(verify p$n "$OCSP_GOOD_CERT") == good ]] ||
        t_fail "POST $n through nginx" "HTTP $code, $(verify p$n "$OCSP_GOOD_CERT")"
done
sleep 0.2
ups=$(for n in 1 2 3 4; do alog_upstream "$(alog_line $((mark + n)))"; done | sort | uniq -c | awk '{ print $2 "x" $1 }' | tr '\n' ' ')
expect "4 POSTs of the same request: each reached a node, 2 on each (round robin, no cache)" \
    "$ups" "$(printf '127.0.0.1:%sx2\n' "$P1" "$P2" | sort | tr '\n' ' ')"
if [[ $(sed -n "$((mark + 1)),\$p" "$ACCESS" | grep -c 'cache=HIT') == 0 ]]; then
    t_ok "no POST answered from the cache"
else
    t_fail "no POST answered from the cache" "$(sed -n "$((mark + 1)),\$p" "$ACCESS")"
fi
openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -url "$URL" -CAfile "$CHAIN" \
    >"$TMP/nonce.out" 2>&1
if grep -q 'good.pem: good' "$TMP/nonce.out" && grep -q 'Response verify OK' "$TMP/nonce.out" &&
    ! grep -Eq 'WARNING: no nonce|Nonce Verify error' "$TMP/nonce.out"; then
    t_ok "openssl ocsp with a nonce through nginx: good, nonce echoed and verified"
else
    t_fail "openssl ocsp with a nonce through nginx" "$(tr '\n' ' ' <"$TMP/nonce.out")"
fi

# ---- a revocation on both nodes, seen through the cache within max-age (EID-05) ----
hpath=$(ocsp_req hb "$OCSP_HIGHBIT_CERT") || fatal "openssl ocsp -reqout" "failed"
code=$(get r0 "$URL/$hpath")
t_fill=$(now)
expect "highbit.pem through nginx: good, now cached" "$code $(hdr r0 X-Cache-Status) $(verify r0 "$OCSP_HIGHBIT_CERT")" \
    "200 MISS good"
r0age=$(hdr r0 Cache-Control | sed -n 's/^max-age=\([0-9]*\),.*/\1/p')
OCSP_AIA_URL=$URL openssl ca -batch -config "$OCSP_CA_DIR/ca.cnf" -revoke "$OCSP_HIGHBIT_CERT" \
    -crl_reason keyCompromise >"$TMP/revoke.log" 2>&1 || fatal "openssl ca -revoke" "$(cat "$TMP/revoke.log")"
for i in 1 2; do
    t_check "ocspctl import-index of the CA's index.txt on node $i" ctl "$i" import-index qca "$OCSP_CA_INDEX"
done
t_rev=$(now)
for i in 1 2; do
    port=P$i
    openssl ocsp -issuer "$CA" -cert "$OCSP_HIGHBIT_CERT" -no_nonce -url "http://127.0.0.1:${!port}" \
        -CAfile "$CHAIN" >"$TMP/direct$i.out" 2>&1
    if grep -q 'highbit.pem: revoked' "$TMP/direct$i.out" && grep -q 'Reason: keyCompromise' "$TMP/direct$i.out"; then
        t_ok "node $i answers revoked (keyCompromise) at once"
    else
        t_fail "node $i answers revoked at once" "$(tr '\n' ' ' <"$TMP/direct$i.out")"
    fi
done
code=$(get r1 "$URL/$hpath")
since=$(calc "$(now) - $t_fill")
if lt "$since" "$((r0age - 1))"; then
    # what a cache does by design: its copy is fresh for max-age
    expect "right after it, nginx still serves its fresh copy: good, HIT (${since}s of max-age=$r0age)" \
        "$code $(hdr r1 X-Cache-Status) $(verify r1 "$OCSP_HIGHBIT_CERT")" "200 HIT good"
else
    t_ok "(the cached copy was ${since}s old, too near max-age=$r0age to check it is still served)"
fi
deadline=$(calc "$t_rev + $MAXAGE + 3")
st=
while lt "$(now)" "$deadline"; do
    code=$(get r2 "$URL/$hpath")
    st=$(verify r2 "$OCSP_HIGHBIT_CERT")
    [[ $st == revoked ]] && break
    sleep 0.25
done
seen=$(calc "$(now) - $t_rev")
if [[ $st == revoked ]]; then
    t_ok "through nginx: revoked ${seen}s after the import, $(calc "$(now) - $t_fill")s after the cache took its copy (max-age $MAXAGE s; + 3 s slack: nginx counts whole seconds), verified"
else
    t_fail "through nginx: revoked within max-age + 3 s" "still '$st' after ${seen}s"
fi
if grep -q 'Reason: keyCompromise' "$TMP/r2.out"; then t_ok "... reason keyCompromise"; else
    t_fail "... reason keyCompromise" "$(tr '\n' ' ' <"$TMP/r2.out")"
fi

# ---- one node stopped under load: no failed request ----
{
    echo "POST $TMP/good.req"
    echo "GET $gpath"
    echo "POST $TMP/hb.req"
    echo "GET $hpath"
    for c in hold revoked expired; do
        v=OCSP_${c^^}_CERT
        echo "GET $(ocsp_req "$c" "${!v}")"
        echo "POST $TMP/$c.req"
    done
} >"$TMP/load.spec"
mark=$(alog_count)
nodes_load ocsp "$URL/" "$TMP/load.spec" "$TMP/load" --clients 4 --max-seconds 40 \
    >"$TMP/load.out" 2>&1 &
load_pid=$!
track_pid "$load_pid"
sleep 1.5
t_kill=$(now)
rc=0
daemon_stop "${N_PID[1]}" || rc=$?
expect "node 1 stopped by pid (SIGTERM) while 4 clients run: exit 0" "$rc" 0
kill_line=$(alog_count)
# long enough for every cached GET to expire and be fetched again, from node 2
sleep $((MAXAGE + 2))
touch "$TMP/load/stop"
wait "$load_pid"
read -r total _ failed < <(sed -n 's/^total=\([0-9]*\) ok=\([0-9]*\) failed=\([0-9]*\)$/\1 \2 \3/p' "$TMP/load.out")
after=$(awk -F'\t' -v t="$t_kill" '$1 > t' "$TMP/load/log.tsv" | wc -l)
if [[ ${failed:-x} == 0 ]] && ((total > 20 && after > 10)); then
    t_ok "no failed request: $total requests, $after of them after the stop"
else
    t_fail "no failed request across the stop" "$(cat "$TMP/load.out"); $after after the stop; first failures: $(grep -m3 $'\tfail\t' "$TMP/load/log.tsv" | tr '\t\n' ' ;')"
fi
before1=$(sed -n "$((mark + 1)),${kill_line}p" "$ACCESS" | grep -c "upstream=\"127.0.0.1:$P1\"")
expect "node 1 served requests before it stopped" "$((before1 > 0))" 1
# requests that began after the stop: a line's last upstream is the node that answered
# (from 20 lines after the stop on: requests in flight at the stop are logged when they end)
read -r n_up wrong < <(sed -n "$((kill_line + 20)),\$p" "$ACCESS" | awk -v p2="127.0.0.1:$P2" '
    match($0, /upstream="[^"]*"/) {
        u = substr($0, RSTART + 10, RLENGTH - 11)
        if (u == "-") next
        n++
        k = split(u, a, ", ")
        if (a[k] != p2 && bad < 3) { bad++; list = list u ";" }
    }
    END { print n + 0, list }')
if [[ -z $wrong ]] && ((n_up > 5)); then
    t_ok "after the stop every request that reached a node was answered by node 2 ($n_up)"
else
    t_fail "after the stop, node 2 answers" "$n_up upstream requests, others: $wrong"
fi
if grep -q "upstream: \"http://127.0.0.1:$P1/" "$TMP/nginx/log/ocspd-error.log"; then
    t_ok "nginx saw node 1 fail and went on to node 2: $(grep -m1 "127.0.0.1:$P1/" "$TMP/nginx/log/ocspd-error.log" | sed 's/.*\] //' | cut -c1-90)"
else
    t_fail "nginx logged node 1's failure" "$(tail -n 3 "$TMP/nginx/log/ocspd-error.log")"
fi
retried=$(sed -n "$((mark + 1)),\$p" "$ACCESS" | grep -c "upstream=\"127.0.0.1:$P1, 127.0.0.1:$P2\"")
echo "# requests retried on node 2 after node 1 failed them: $retried"

# ---- end ----
rc=0
daemon_stop "${N_PID[2]}" || rc=$?
expect "node 2 exits 0 on SIGTERM" "$rc" 0
itest_log_clean "$TMP/n1/ocspd.log"
itest_log_clean "$TMP/n2/ocspd.log"
nodes_nginx_stop
t_summary "$NAME"
