#!/usr/bin/env bash
# itest: alone (load shared between nodes)
#
# test_haproxy_tsad.sh: the shipped conf/haproxy-tsad.cfg, run by the real HAProxy, balancing
# two tsad nodes with active health checks on /healthz (issue 9 item 2; DESIGN D7; STANDARDS
# TSP-18 serials, TSA-04/TSA-05 clock gate). Each node has its own private chronyd
# (tests/lib/chrony.sh), its own store and its own serial key; both use the demo PKI's TSU keys
# (one SoftHSM2 token, as two nodes on one network HSM would). HAProxy's configuration is the
# shipped file with its example addresses, paths and check interval (2s -> 300ms) replaced
# (tests/lib/nodes.sh); all in a private temp dir on 127.0.0.1 free ports, stopped by pid.
#   - requests go to both nodes in turn; every token verifies with openssl ts -verify;
#   - node 2's chronyd stopped: its /healthz turns 503, HAProxy marks it DOWN (stats socket),
#     and every token then comes from node 1 (each node's tsa_tokens_total, HAProxy's per-server
#     session count); chronyd back: node 2 is UP again and serves again;
#   - node 1 killed (SIGKILL) while 4 clients send requests: no request fails, neither after
#     the health check noticed (checked first) nor at all (retry-on conn-failure
#     empty-response response-timeout + option redispatch resend what node 1 dropped);
#     HAProxy marks node 1 DOWN; the tokens kept from the load verify; node 1 restarted on
#     its store is UP again and serves;
#   - the serial numbers of all tokens received (both nodes) never repeat.
# Not asserted, by design: between a clock fault and the check that notices it (up to inter x
# fall), node 2 still answers, with timeNotAvailable (a valid RFC 3161 rejection HAProxy cannot
# tell from a token); this test sends nothing in that window.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
# shellcheck source=tests/lib/nodes.sh
. "$ROOT/tests/lib/nodes.sh"
itest_setup test_haproxy_tsad

INTER_MS=300 # HAProxy check interval for the test (the shipped file says 2s); fall 2, rise 2
T_PID=()
nodes_cleanup() {
    nodes_haproxy_stop
    cleanup_tracked
    chrony_stop "$TMP/c1"
    chrony_stop "$TMP/c2"
    itest_cleanup
}
trap nodes_cleanup EXIT

if ! nodes_need haproxy haproxy; then
    t_ok "skipped: haproxy is not installed and could not be installed"
    t_summary "$NAME"
    exit 0
fi
[[ -x $BUILD/tsad ]] || fatal build "$BUILD/tsad is not built (make all)"

# ---- helpers ----
SERIALS=$TMP/serials
: >"$SERIALS"
# tokens I: node I's tsa_tokens_total
tokens() {
    local port=P$1
    curl -s --max-time 5 "http://127.0.0.1:${!port}/metrics" | awk '$1 == "tsa_tokens_total" { print $2 }'
}
health() {
    local port=P$1
    curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${!port}/healthz"
}
# ask TAG: one request through HAProxy; TAG.tsr; prints "granted SERIAL" or what came back
ask() {
    local code kv
    code=$(curl -s --max-time 20 -o "$TMP/$1.tsr" -w '%{http_code}' \
        -H 'Content-Type: application/timestamp-query' --data-binary @"$TMP/q.tsq" "$URL") || true
    [[ $code == 200 ]] || {
        echo "http-$code"
        return
    }
    kv=$(derutil tsp-resp "$TMP/$1.tsr")
    if [[ $(sed -n 's/^status=//p' <<<"$kv") == 0 && $(sed -n 's/^token=//p' <<<"$kv") == present ]]; then
        echo "granted $(sed -n 's/^serial=//p' <<<"$kv")"
    else
        echo "rejected $(sed -n 's/^failbits=//p' <<<"$kv")"
    fi
}
# round N TAG: N requests one after the other; sets GOT_ALL (all granted and verified),
# D1/D2 (tokens issued by node 1/2 meanwhile), BAD (the first answers that were not)
round() {
    local n=$1 tag=$2 k a b1 b2
    b1=$(tokens 1) b2=$(tokens 2)
    GOT_ALL=1 BAD=
    for ((k = 0; k < n; k++)); do
        a=$(ask "$tag$k")
        if [[ $a == granted\ * ]] &&
            openssl ts -verify -data "$TMP/doc.txt" -in "$TMP/$tag$k.tsr" -CAfile "$PKI_CA_CHAIN" \
                >"$TMP/$tag$k.verify" 2>&1; then
            echo "${a#granted }" >>"$SERIALS"
        else
            GOT_ALL=0
            BAD+="$a; "
        fi
    done
    D1=$(($(tokens 1 || echo 0) - b1))
    D2=$(($(tokens 2 || echo 0) - b2))
}
wait_health() {
    local i=$1 want=$2 deadline=$((SECONDS + 15))
    while ((SECONDS <= deadline)); do
        [[ $(health "$i") == "$want" ]] && return 0
        sleep 0.1
    done
    return 1
}

# ---- two tsad nodes, each with its own chronyd and store; HAProxy in front ----
pki_demo "$TMP/pki" >"$TMP/pki.log" 2>&1 || fatal "demo PKI" "$(tail -n 5 "$TMP/pki.log")"
# shellcheck disable=SC1091
. "$TMP/pki/pki.env"
read -r P1 P2 PH < <(nodes_free_ports 3)
[[ -n ${PH:-} ]] || fatal ports "no free port"
for i in 1 2; do
    port=P$i
    chrony_start "$TMP/c$i" local || fatal "chronyd $i" "chrony_start local failed"
    mkdir -p "$TMP/t$i"
    tsad_write_conf "$TMP/t$i/tsad.conf" "$TMP/pki" "${!port}" "$(chrony_socket "$TMP/c$i")" "$TMP/t$i/store"
    tsad_start "$TMP/t$i/tsad.conf" "$TMP/t$i/tsad.log" || fatal "tsad $i starts" "$(tail -n 5 "$TMP/t$i/tsad.log")"
    T_PID[i]=$TSAD_PID
    wait_health "$i" 200 || fatal "tsad $i healthy" "$(curl -s "http://127.0.0.1:${!port}/healthz")"
done
TSAD_PID= # the nodes are stopped here, by their own pids
t_ok "two tsad nodes, each on its own chronyd and store, /healthz 200"
nodes_haproxy_conf "$TMP/haproxy.cfg" "$TMP/haproxy" "$PH" "127.0.0.1:$P1" "127.0.0.1:$P2" "${INTER_MS}ms" ||
    fatal "haproxy configuration" "cannot make it from conf/haproxy-tsad.cfg"
nodes_haproxy_start "$TMP/haproxy.cfg" "$TMP/haproxy.log" || fatal "haproxy starts" "see above"
URL=http://127.0.0.1:$PH/tsa
for s in node1 node2; do
    nodes_wait_status "$s" '^UP$' 10 || fatal "haproxy: $s UP" "$(nodes_haproxy_cmd 'show servers state tsad_nodes')"
done
t_ok "haproxy runs conf/haproxy-tsad.cfg (example values replaced), both nodes UP by /healthz checks"
printf 'several-node test document\n' >"$TMP/doc.txt"
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null ||
    fatal "openssl ts -query" "cannot build the query"

# ---- both nodes serve; tokens verify ----
round 6 a
expect "6 requests through HAProxy: all granted, each verifies (openssl ts -verify)" "$GOT_ALL" 1
[[ -z $BAD ]] || echo "# answers: $BAD"
expect "round robin: 3 tokens from each node (tsa_tokens_total of each)" "$D1 $D2" "3 3"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PH/metrics")
expect "the nodes' /metrics is not served to clients" "$code" 404

# ---- node 2's clock made unusable: it leaves the pool, and returns ----
stot2=$(nodes_haproxy_stat node2 stot)
chrony_stop "$TMP/c2"
if wait_health 2 503; then t_ok "node 2's chronyd stopped: its /healthz 503"; else
    t_fail "node 2's chronyd stopped: its /healthz 503" "$(health 2)"
fi
t0=$SECONDS
if nodes_wait_status node2 '^DOWN' 15; then
    t_ok "haproxy marks node 2 DOWN ($((SECONDS - t0)) s after /healthz turned 503; check $(nodes_haproxy_stat node2 check_status))"
else
    t_fail "haproxy marks node 2 DOWN" "$(nodes_haproxy_status node2)"
fi
expect "node 1 stays UP" "$(nodes_haproxy_status node1)" UP
round 8 b
expect "8 requests while node 2 is DOWN: all granted and verified" "$GOT_ALL" 1
[[ -z $BAD ]] || echo "# answers: $BAD"
expect "... all from node 1 (tokens issued: node 1, node 2)" "$D1 $D2" "8 0"
expect "... haproxy sent node 2 no request (its session count)" "$(nodes_haproxy_stat node2 stot)" "$stot2"
chrony_start "$TMP/c2" local || fatal "chronyd 2 restart" "chrony_start local failed"
if wait_health 2 200; then t_ok "node 2's chronyd back: its /healthz 200"; else
    t_fail "node 2's chronyd back: its /healthz 200" "$(health 2)"
fi
if nodes_wait_status node2 '^UP$' 15; then t_ok "haproxy puts node 2 back (UP)"; else
    t_fail "haproxy puts node 2 back" "$(nodes_haproxy_status node2)"
fi
round 6 c
expect "6 requests with node 2 back: all granted and verified" "$GOT_ALL" 1
if ((D1 > 0 && D2 > 0)); then t_ok "... from both nodes again ($D1, $D2)"; else
    t_fail "... from both nodes again" "node 1: $D1, node 2: $D2"
fi

# ---- node 1 killed (SIGKILL) under load ----
nodes_load tsa "$URL" "$TMP/q.tsq" "$TMP/load" --clients 4 --max-seconds 40 --keep-every 40 \
    >"$TMP/load.out" 2>&1 &
load_pid=$!
track_pid "$load_pid"
sleep 1.5
t_kill=$(date +%s.%N)
kill -KILL "${T_PID[1]}"
wait "${T_PID[1]}" 2>/dev/null
t0=$SECONDS
nodes_wait_status node1 '^DOWN' 15
t_down=$(date +%s.%N)
st1=$(nodes_haproxy_status node1)
expect "node 1 killed (SIGKILL) under load: haproxy marks it DOWN ($((SECONDS - t0)) s)" "${st1%% *}" DOWN
sleep 2
touch "$TMP/load/stop"
wait "$load_pid"
read -r total _ failed < <(sed -n 's/^total=\([0-9]*\) ok=\([0-9]*\) failed=\([0-9]*\)$/\1 \2 \3/p' "$TMP/load.out")
after=$(awk -F'\t' -v t="$t_kill" '$1 > t && $6 == "ok"' "$TMP/load/log.tsv" | wc -l)
late_fail=$(awk -F'\t' -v t="$t_down" '$1 > t && $6 != "ok"' "$TMP/load/log.tsv" | wc -l)
if ((late_fail == 0 && after > 10)); then
    t_ok "no failed request after the check noticed ($after granted after the kill)"
else
    t_fail "no failed request after the check noticed" "$late_fail failed; $(cat "$TMP/load.out")"
fi
if [[ ${failed:-x} == 0 ]] && ((total > 20)); then
    t_ok "no failed request at all: $total requests (retry-on + redispatch)"
else
    t_fail "no failed request at all" "$(cat "$TMP/load.out"); first: $(grep -m3 $'\tfail\t' "$TMP/load/log.tsv" | tr '\t\n' ' ;')"
fi
awk -F'\t' '$6 == "ok" { print $7 }' "$TMP/load/log.tsv" >>"$SERIALS"
bad=0 n=0
for f in "$TMP"/load/tok-*.tsr; do
    [[ -e $f ]] || continue
    n=$((n + 1))
    openssl ts -verify -data "$TMP/doc.txt" -in "$f" -CAfile "$PKI_CA_CHAIN" >/dev/null 2>&1 || bad=$((bad + 1))
done
if ((n > 0 && bad == 0)); then t_ok "the $n tokens kept from the load verify"; else
    t_fail "the tokens kept from the load verify" "$bad of $n do not"
fi

# ---- node 1 restarted on its store (as systemd would): back in the pool ----
if tsad_start "$TMP/t1/tsad.conf" "$TMP/t1/tsad.log" && wait_health 1 200; then
    T_PID[1]=$TSAD_PID
    TSAD_PID=
    t_ok "node 1 restarted on its store after the SIGKILL: /healthz 200"
else
    t_fail "node 1 restarted on its store" "$(tail -n 5 "$TMP/t1/tsad.log")"
fi
if nodes_wait_status node1 '^UP$' 15; then t_ok "haproxy puts node 1 back (UP)"; else
    t_fail "haproxy puts node 1 back" "$(nodes_haproxy_status node1)"
fi
round 4 d
expect "4 requests: all granted and verified" "$GOT_ALL" 1
expect "... 2 from each node" "$D1 $D2" "2 2"

# ---- serials (TSP-18) ----
all=$(grep -c . "$SERIALS")
uniq=$(sort -u "$SERIALS" | grep -c .)
if ((all > 20 && all == uniq)); then
    t_ok "$all tokens from both nodes: no serial number repeats"
else
    t_fail "serial numbers never repeat" "$all serials, $uniq distinct: $(sort "$SERIALS" | uniq -d | head -n 3 | tr '\n' ' ')"
fi

# ---- end ----
for i in 1 2; do
    rc=0
    daemon_stop "${T_PID[i]}" || rc=$?
    expect "node $i exits 0 on SIGTERM" "$rc" 0
done
itest_log_clean "$TMP/t1/tsad.log"
itest_log_clean "$TMP/t2/tsad.log"
nodes_haproxy_stop
t_summary "$NAME"
