#!/usr/bin/env bash
# itest: alone (a flood against a slow HSM; its memory bound and refusal times)
#
# test_overload.sh: a flood of ten times what the signer can do, against tsad and ocspd behind
# a slow HSM (issue 8, "Faults of the parts - Overload"; STANDARDS OCSP-27 tryLater, TSA-18;
# DESIGN D9, D10). The HSM is SoftHSM2 behind the bench's PKCS#11 shim (bench/p11delay.c):
# every signature takes P11DELAY_LATENCY_MS (500), P11DELAY_PARALLEL (10) at a time, so the
# signer does at most PARALLEL / LATENCY signatures a second (20/s here) and its queue (queue_max = 16) fills
# at once under the flood (200 requests/s, 128 connections). Checked for each daemon:
#   - a request that finds the queue full is answered at once (sooner than one signature
#     takes), with the protocol's refusal and Retry-After: tsad systemFailure +
#     Retry-After 1, ocspd tryLater + Retry-After 1; the refusals are counted in /metrics;
#   - requests that need no signature keep being answered (ocspd's pre-signed answers) and
#     /healthz answers during the flood;
#   - memory stays bounded: VmHWM after the flood within a generous bound of VmRSS before;
#   - tsad: every token a client received has its record in the audit log (TSA-18);
#   - both keep serving after the flood (a token granted, an answer signed).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_overload

LATENCY_MS=500 # one signature: an answer sooner than this did not wait for one
PARALLEL=10
FLOOD_RATE=200 # 10 x PARALLEL / LATENCY
MEM_BOUND_KB=$((64 * 1024)) # growth allowed during the flood (generous: ~2 MB measured)

WRAP=$BUILD/bench/libp11delay.so
LG=$BUILD/bench/loadgen
[[ -f $WRAP && -x $LG ]] || fatal build "$WRAP or $LG not built (make all)"

# status_kb PID FIELD: VmRSS / VmHWM of PID in kB
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# flood URL SET NAME [ARGS...]: loadgen open loop at FLOOD_RATE with 128 connections, 4 s
flood() {
    local url=$1 set=$2 name=$3
    shift 3
    "$LG" run --url "$url" --requests "$set" --conns 128 --duration 4 --rate "$FLOOD_RATE" \
        --timeout 10 --verify-every 0 --json "$TMP/lg-$name.json" "$@" >"$TMP/lg-$name.out" 2>&1 &
    FLOOD_PID=$!
    track_pid "$FLOOD_PID"
}

# timed_post URL TYPE BODY OUT: POST, prints "HTTP_CODE MILLISECONDS"; headers in OUT.hdr
timed_post() {
    local t0 code
    t0=$(date +%s%N)
    code=$(curl -s --max-time 20 -D "$4.hdr" -o "$4" -w '%{http_code}' -H "Content-Type: $2" \
        --data-binary @"$3" "$1") || code=000
    echo "$code $((($(date +%s%N) - t0) / 1000000))"
}

# healthz_during URL: /healthz answered (200 or 503) within 5 s, several times during a flood
healthz_during() {
    local name=$1 url=$2 i code bad=0
    for i in 1 2 3; do
        code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$url") || code=000
        [[ $code == 200 || $code == 503 ]] || bad=$((bad + 1))
        sleep 0.3
    done
    expect "$name: /healthz answers during the flood (3 of 3)" "$bad" 0
}

# ==== tsad ====
itest_tsa_setup local
sed -i "s|^pkcs11_module = .*|pkcs11_module = $WRAP|" "$CONF"
printf '[signer]\nqueue_max = 16\nworkers = 2\n' >>"$CONF"
export P11DELAY_MODULE=$PKI_P11_MODULE P11DELAY_LATENCY_MS=$LATENCY_MS P11DELAY_PARALLEL=$PARALLEL
itest_tsad_start
itest_tsad_healthy
printf 'overload test document\n' >"$TMP/doc.txt"
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null ||
    fatal "openssl ts -query" "cannot build the query"
"$LG" gen-tsa --out "$TMP/tsa.set" --count 500 --hashes sha256=1 --seed 3 >/dev/null ||
    fatal "request set" "gen-tsa failed"
r=$(timed_post "$URL" application/timestamp-query "$TMP/q.tsq" "$TMP/one.tsr")
expect "tsad: a token through the slow HSM" "${r%% *}" 200
rss0=$(status_kb "$TSAD_PID" VmRSS)

flood "$URL" "$TMP/tsa.set" tsa --save-serials "$TMP/serials.txt"
sleep 1.5
refused=0 slow=0 hdr=0 tries=0
for _ in $(seq 1 10); do
    r=$(timed_post "$URL" application/timestamp-query "$TMP/q.tsq" "$TMP/f.tsr")
    tries=$((tries + 1))
    if openssl ts -reply -in "$TMP/f.tsr" -text 2>/dev/null |
        grep -q '^Failure info: the request cannot be handled due to system failure$'; then
        refused=$((refused + 1))
        # a refusal that waited for a signature was not "at once" (one takes LATENCY_MS)
        ((${r#* } < LATENCY_MS)) || slow=$((slow + 1))
        grep -qi '^Retry-After: *1' "$TMP/f.tsr.hdr" && hdr=$((hdr + 1))
    else
        # granted: its serial is one more token whose record must be there
        openssl ts -reply -in "$TMP/f.tsr" -text 2>/dev/null | sed -n 's/^Serial number: 0x//p' |
            tr 'A-F' 'a-f' | while read -r s; do printf '%32s\n' "$s" | tr ' ' 0; done >>"$TMP/serials.txt"
    fi
done
if ((refused > 0)); then t_ok "tsad, flood: $refused of $tries requests found the queue full: systemFailure"; else
    t_fail "tsad, flood: requests refused systemFailure (queue full)" "none of $tries"
fi
expect "tsad, flood: each refusal answered at once (not after a signature)" "$slow" 0
expect "tsad, flood: each refusal carries Retry-After: 1" "$hdr" "$refused"
healthz_during tsad "$BASE/healthz"
wait "$FLOOD_PID" 2>/dev/null
hwm=$(status_kb "$TSAD_PID" VmHWM)
if ((hwm - rss0 < MEM_BOUND_KB)); then
    t_ok "tsad: memory bounded (VmRSS before ${rss0} kB, VmHWM after ${hwm} kB)"
else
    t_fail "tsad: memory bounded" "VmRSS before ${rss0} kB, VmHWM after ${hwm} kB"
fi
full=$(curl -s "$BASE/metrics" | awk '$1 == "tsa_queue_full_total" { print $2 }')
if [[ $full =~ ^[0-9]+$ ]] && ((full > 0)); then t_ok "tsad: metrics tsa_queue_full_total $full"; else
    t_fail "tsad: metrics tsa_queue_full_total counts the refusals" "got '$full'"
fi
echo "loadgen: $(grep -c . "$TMP/serials.txt") tokens received, summary: $(tail -n 3 "$TMP/lg-tsa.out" | tr '\n' ' ')" >&2
r=$(timed_post "$URL" application/timestamp-query "$TMP/q.tsq" "$TMP/after.tsr")
if [[ ${r%% *} == 200 ]] && openssl ts -reply -in "$TMP/after.tsr" -text 2>/dev/null | grep -q '^Status: Granted'; then
    t_ok "tsad: after the flood a token is granted again"
    openssl ts -reply -in "$TMP/after.tsr" -text 2>/dev/null | sed -n 's/^Serial number: 0x//p' |
        tr 'A-F' 'a-f' | while read -r s; do printf '%32s\n' "$s" | tr ' ' 0; done >>"$TMP/serials.txt"
else
    t_fail "tsad: after the flood a token is granted again" "$r"
fi
# every token received has its record (wait for the journal to copy them into the log)
for ((i = 0; i < 50; i++)); do
    lag=$(curl -s "$BASE/healthz" | jq -r .store.journal_lag)
    [[ $lag == 0 ]] && break
    sleep 0.2
done
if mdb_dump -s tsa_audit "$STORE" >"$TMP/dump.txt" 2>"$TMP/dump.err"; then
    derutil mdb "$TMP/dump.txt" | sed -E 's/.*"serial":"([0-9a-f]+)".*/\1/' | sort -u >"$TMP/log-serials.txt"
else
    t_fail "tsad: audit log read" "$(cat "$TMP/dump.err")"
    : >"$TMP/log-serials.txt"
fi
got=$(sort -u "$TMP/serials.txt" | grep -c .)
missing=$(sort -u "$TMP/serials.txt" | comm -23 - "$TMP/log-serials.txt" | grep -c .)
if ((got > 0)); then t_ok "tsad: $got tokens received during and after the flood"; else
    t_fail "tsad: tokens received during the flood" "none: $(tail -n 5 "$TMP/lg-tsa.out")"
fi
expect "tsad: every token received has its record in the audit log (TSA-18)" "$missing missing" "0 missing"
tsad_stop
itest_log_clean "$LOG"
unset P11DELAY_MODULE

# ==== ocspd ====
itest_ocsp_setup
ocspd_stop
sed -i "s|^pkcs11_module = .*|pkcs11_module = $WRAP|" "$CONF"
grep -q "^pkcs11_module = $WRAP" "$CONF" || fatal "ocspd configuration" "no pkcs11_module line"
printf '[signer]\nqueue_max = 16\nworkers = 2\n' >>"$CONF"
# the flood comes from one address: no per-source budget ([limits]), so what it meets is the
# full queue and not the budget (test_ocspd_ratelimit.sh tests the budget)
printf '[limits]\nsign_rate = 0\n' >>"$CONF"
export P11DELAY_MODULE=$OCSP_P11_MODULE
ocspd_start "$CONF" "$TMP/ocspd.log" || fatal "ocspd behind the slow HSM" "$(tail -n 5 "$TMP/ocspd.log")"
# requests: with a nonce (signed on demand: the flood) and without (pre-signed: the hits)
openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -reqout "$TMP/nonce.req" >/dev/null 2>&1
openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -no_nonce -reqout "$TMP/hit.req" >/dev/null 2>&1
printf "%s good\n%s revoked\n" "$OCSP_GOOD_SERIAL" "$OCSP_REVOKED_SERIAL" >"$TMP/serials.lst"
"$LG" gen-ocsp --out "$TMP/ocsp.set" --issuer "$CA" --serials "$TMP/serials.lst" \
    --nonce 100 --count 500 --seed 3 >/dev/null 2>"$TMP/gen-ocsp.err" ||
    fatal "ocsp request set" "$(cat "$TMP/gen-ocsp.err")"
r=$(timed_post "$URL" application/ocsp-request "$TMP/nonce.req" "$TMP/one.der")
expect "ocspd: a signed answer through the slow HSM" "${r%% *}" 200
rss0=$(status_kb "$OCSPD_PID" VmRSS)

flood "$URL" "$TMP/ocsp.set" ocsp
sleep 1.5
refused=0 slow=0 hdr=0 hits=0 tries=0
for _ in $(seq 1 10); do
    r=$(timed_post "$URL" application/ocsp-request "$TMP/nonce.req" "$TMP/f.der")
    tries=$((tries + 1))
    out=$(openssl ocsp -respin "$TMP/f.der" -resp_text -noverify 2>&1) # exit 1 for tryLater
    if grep -q 'Responder Error: trylater (3)' <<<"$out"; then
        refused=$((refused + 1))
        ((${r#* } < LATENCY_MS)) || slow=$((slow + 1))
        grep -qi '^Retry-After: *1' "$TMP/f.der.hdr" && hdr=$((hdr + 1))
    fi
    r=$(timed_post "$URL" application/ocsp-request "$TMP/hit.req" "$TMP/h.der")
    openssl ocsp -respin "$TMP/h.der" -resp_text -noverify 2>/dev/null |
        grep -q 'Cert Status: good' && hits=$((hits + 1))
done
if ((refused > 0)); then t_ok "ocspd, flood: $refused of $tries nonce requests found the queue full: tryLater (OCSP-27)"; else
    t_fail "ocspd, flood: nonce requests refused tryLater (queue full)" "none of $tries"
fi
expect "ocspd, flood: each tryLater answered at once (not after a signature)" "$slow" 0
expect "ocspd, flood: each tryLater carries Retry-After: 1" "$hdr" "$refused"
expect "ocspd, flood: pre-signed answers still served (good)" "$hits" "$tries"
healthz_during ocspd "$URL/healthz"
wait "$FLOOD_PID" 2>/dev/null
hwm=$(status_kb "$OCSPD_PID" VmHWM)
if ((hwm - rss0 < MEM_BOUND_KB)); then
    t_ok "ocspd: memory bounded (VmRSS before ${rss0} kB, VmHWM after ${hwm} kB)"
else
    t_fail "ocspd: memory bounded" "VmRSS before ${rss0} kB, VmHWM after ${hwm} kB"
fi
full=$(curl -s "$URL/metrics" | awk '$1 == "ocsp_queue_full_total" { print $2 }')
if [[ $full =~ ^[0-9]+$ ]] && ((full > 0)); then t_ok "ocspd: metrics ocsp_queue_full_total $full"; else
    t_fail "ocspd: metrics ocsp_queue_full_total counts the refusals" "got '$full'"
fi
r=$(timed_post "$URL" application/ocsp-request "$TMP/nonce.req" "$TMP/after.der")
if openssl ocsp -respin "$TMP/after.der" -resp_text -noverify 2>/dev/null | grep -q 'Cert Status: good'; then
    t_ok "ocspd: after the flood an answer is signed again"
else
    t_fail "ocspd: after the flood an answer is signed again" "$r"
fi
itest_ocspd_stop_clean
unset P11DELAY_MODULE

t_summary "$NAME"
