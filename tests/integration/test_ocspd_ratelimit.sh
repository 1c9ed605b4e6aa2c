#!/usr/bin/env bash
# itest: alone (token refill rates)
#
# test_ocspd_ratelimit.sh: per-source limits on answers that cost a signature, and the cache
# of answers for serials never issued (issue 8 item 2; STANDARDS OCSP-27, OCSP-13, OCSP-18;
# RFC 6960 §4.2.1 tryLater; RFC 9919 §2.2.1). A real ocspd with [limits] sign_rate = 0.02,
# sign_burst = 4; clients are `openssl ocsp` and curl, bound to different 127.x source
# addresses (--interface) so each is its own source:
#   - 127.0.0.1: distinct never-issued serials: the first ones signed, then unsigned tryLater
#     with Retry-After (1..50 s at 0.02/s) and no-cache; a multi-CertID request too; pre-signed
#     answers (POST and GET, good and revoked) are still all served; a nonce request gets the
#     pre-signed answer without its nonce (it still verifies); logged once, counted;
#   - 127.0.0.2: another source is not touched by 127.0.0.1's refusals;
#   - 127.0.0.3: one never-issued serial asked 20 times costs one signature (a budget of 4
#     would refuse the rest otherwise): the unissued cache; once the serial gets a status
#     record (ocspctl add), the cached answer is no longer served (127.0.0.4 asks: good);
#   - global: behind the bench's simulated HSM (300 ms a signature, queue_max 1), 8 nonce
#     requests at once: those that find the queue full get tryLater with Retry-After: 1 at
#     once, and a pre-signed answer is served meanwhile; 20 requests at once for one new
#     never-issued serial wait for the one signature in flight: all answered, 1 signature.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspd_ratelimit

itest_ocsp_setup
# restart with tight limits (the demo store stays)
cat >"$TMP/limits.conf" <<'EOF'
[limits]
sign_rate = 0.02
sign_burst = 4
EOF
ocspd_stop
ocspd_write_conf "$CONF" "$PORT" "$STORE" "$TMP/pki" "$TMP/limits.conf"
ocspd_start "$CONF" "$TMP/ocspd.log" || fatal "ocspd restarts with [limits]" "$(tail -n 3 "$TMP/ocspd.log")"
t_ok "ocspd restarted with sign_rate = 0.02, sign_burst = 4"
# shellcheck disable=SC1091
. "$TMP/pki/ocsp-pki.env"
export SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF

# post SRC NAME FILE: POST FILE from source address SRC; NAME.body, NAME.hdr; HTTP code
post() {
    curl -s --max-time 20 --interface "$1" -D "$TMP/$2.hdr" -o "$TMP/$2.body" \
        -w '%{http_code}' -H 'Content-Type: application/ocsp-request' \
        --data-binary @"$3" "$URL/"
}
body_hex() { od -An -tx1 "$TMP/$1.body" 2>/dev/null | tr -d ' \n'; }
status_of() { derutil ocsp-resp "$TMP/$1.body" 2>/dev/null | sed -n 's/^single.0.status=//p'; }
header() { sed -n "s/^$2: *//Ip" "$TMP/$1.hdr" | tr -d '\r' | head -n 1; }
metric() { curl -s "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 + 0 }'; }
never_req() { # never_req OUT [SERIAL_HEX]: a request for a random (or given) serial
    openssl ocsp -issuer "$CA" -serial "0x${2:-5A$(openssl rand -hex 15)}" -no_nonce \
        -reqout "$1" >/dev/null 2>&1
}

openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -no_nonce -reqout "$TMP/good.req" >/dev/null 2>&1
openssl ocsp -issuer "$CA" -cert "$OCSP_REVOKED_CERT" -no_nonce -reqout "$TMP/rev.req" >/dev/null 2>&1
openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -cert "$OCSP_REVOKED_CERT" -no_nonce \
    -reqout "$TMP/two.req" >/dev/null 2>&1
openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -reqout "$TMP/nonce.req" >/dev/null 2>&1

# ---- 127.0.0.1: distinct never-issued serials ----
signed=0 limited=0 bad=0 ra_bad=0
for i in $(seq 1 12); do
    never_req "$TMP/n$i.req"
    code=$(post 127.0.0.1 "n$i" "$TMP/n$i.req")
    if [[ $code == 200 && $(status_of "n$i") == revoked ]]; then
        signed=$((signed + 1))
    elif [[ $code == 200 && $(body_hex "n$i") == 30030a0103 ]]; then
        limited=$((limited + 1))
        ra=$(header "n$i" Retry-After)
        [[ $ra =~ ^([1-9]|[1-4][0-9]|50)$ && $(header "n$i" Cache-Control) == no-cache ]] || ra_bad=$((ra_bad + 1))
    else
        bad=$((bad + 1))
    fi
done
if ((signed >= 4 && signed <= 8 && limited >= 4 && bad == 0)); then
    t_ok "12 never-issued serials from one address: $signed signed (burst 4), $limited tryLater (OCSP-27)"
else
    t_fail "12 never-issued serials from one address" "signed $signed, tryLater $limited, other $bad"
fi
expect "every tryLater carries Retry-After 1..50 and Cache-Control: no-cache" "$ra_bad" 0
code=$(post 127.0.0.1 multi "$TMP/two.req")
expect "over budget: a two-CertID request gets tryLater" "$code $(body_hex multi)" "200 30030a0103"

# pre-signed answers are never counted and always served
ok=0
for i in $(seq 1 10); do
    code=$(post 127.0.0.1 h$i "$TMP/good.req")
    [[ $code == 200 && $(status_of h$i) == good ]] && ok=$((ok + 1))
    code=$(post 127.0.0.1 r$i "$TMP/rev.req")
    [[ $code == 200 && $(status_of r$i) == revoked ]] && ok=$((ok + 1))
done
expect "over budget: 20 pre-signed answers (good, revoked) all served" "$ok" 20
gpath=$(base64 -w0 "$TMP/good.req" | sed 's/+/%2B/g; s,/,%2F,g; s/=/%3D/g')
code=$(curl -s --interface 127.0.0.1 -o "$TMP/get.body" -w '%{http_code}' "$URL/$gpath")
expect "over budget: a GET of a pre-signed answer is served" "$code $(status_of get)" "200 good"

# a nonce request over budget: the pre-signed answer, without the nonce (RFC 9919 §2.2.1)
code=$(post 127.0.0.1 nonce "$TMP/nonce.req")
nonce_out=$(derutil ocsp-resp "$TMP/nonce.body" 2>/dev/null | grep -c '^ext.1.3.6.1.5.5.7.48.1.2=')
expect "over budget: a nonce request gets the pre-signed answer without a nonce (OCSP-18)" \
    "$code $(status_of nonce) $nonce_out" "200 good 0"
if openssl ocsp -respin "$TMP/nonce.body" -CAfile "$CHAIN" -issuer "$CA" \
    -cert "$OCSP_GOOD_CERT" 2>&1 | grep -q 'Response verify OK'; then
    t_ok "that answer verifies"
else
    t_fail "that answer verifies" "openssl ocsp -respin"
fi
# openssl ocsp, the real client, through the same source (its own nonce, over budget)
if openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -url "$URL/" -CAfile "$CHAIN" 2>&1 |
    grep -q ': good'; then
    t_ok "openssl ocsp with a nonce, over budget: answered good"
else
    t_fail "openssl ocsp with a nonce, over budget: answered good" "not good"
fi

n_try=$(metric 'ocsp_rate_limited_total{answer="tryLater"}')
n_pre=$(metric 'ocsp_rate_limited_total{answer="presigned"}')
if [[ ${n_try:-0} -ge 5 && ${n_pre:-0} -ge 2 ]]; then
    t_ok "ocsp_rate_limited_total counts them (tryLater $n_try, presigned $n_pre)"
else
    t_fail "ocsp_rate_limited_total counts them" "tryLater '$n_try', presigned '$n_pre'"
fi
lines=$(grep -c 'rate limit: 127.0.0.1 is over' "$TMP/ocspd.log")
if ((lines >= 1 && lines <= 4)); then
    t_ok "the refusals are logged once per episode ($lines line(s) for $((n_try + n_pre)) refusals)"
else
    t_fail "the refusals are logged once per episode" "$lines lines"
fi

# ---- 127.0.0.2: another source keeps its own budget ----
never_req "$TMP/other.req"
code=$(post 127.0.0.2 other "$TMP/other.req")
expect "another address is still signed for" "$code $(status_of other)" "200 revoked"

# ---- 127.0.0.3: the same never-issued serial, 20 times: one signature ----
serial=5B$(openssl rand -hex 15)
never_req "$TMP/same.req" "$serial"
s0=$(metric 'ocsp_responses_total{source="signed"}')
c0=$(metric 'ocsp_responses_total{source="unissued_cache"}')
ok=0
for i in $(seq 1 20); do
    code=$(post 127.0.0.3 same$i "$TMP/same.req")
    [[ $code == 200 && $(status_of same$i) == revoked ]] && ok=$((ok + 1))
done
expect "one never-issued serial asked 20 times from one address: 20 answers (burst 4)" "$ok" 20
expect "...costing one signature" "$(($(metric 'ocsp_responses_total{source="signed"}') - s0))" 1
expect "...19 from the unissued cache" \
    "$(($(metric 'ocsp_responses_total{source="unissued_cache"}') - c0))" 19
if cmp -s "$TMP/same1.body" "$TMP/same20.body" &&
    openssl ocsp -respin "$TMP/same20.body" -CAfile "$CHAIN" -issuer "$CA" -serial "0x$serial" \
        2>&1 | grep -q 'Response verify OK'; then
    t_ok "the cached answer is the signed one, and verifies"
else
    t_fail "the cached answer is the signed one, and verifies" "differs or does not verify"
fi

# the serial gets a record: its cached "revoked (never issued)" answer is not served again
"$BUILD/ocspctl" -c "$CONF" -d "$STORE" -u tester add qca "$serial" >"$TMP/add.out" 2>&1 ||
    fatal "ocspctl add" "$(cat "$TMP/add.out")"
code=$(post 127.0.0.4 after "$TMP/same.req")
expect "after ocspctl add: answered good, not the cached answer" "$code $(status_of after)" "200 good"

# ---- global: a full signing queue (OCSP-27) ----
# ocspd through the simulated network HSM of the bench (300 ms per signature, one at a time),
# one worker, queue_max 1, no per-source limit: 8 nonce requests at once cannot all wait.
P11DELAY_SO=$BUILD/bench/libp11delay.so
if [[ -f $P11DELAY_SO ]]; then
    itest_ocspd_stop_clean
    printf '[limits]\nsign_rate = 0\n' >"$TMP/nolimit.conf"
    ocspd_write_conf "$CONF" "$PORT" "$STORE" "$TMP/pki" "$TMP/nolimit.conf"
    sed -i "s|^pkcs11_module = .*|pkcs11_module = $P11DELAY_SO|; s/^workers = .*/workers = 1/;
        s/^queue_max = .*/queue_max = 1/; s/^batch_max = .*/batch_max = 1/" "$CONF"
    export P11DELAY_MODULE=$OCSP_P11_MODULE P11DELAY_LATENCY_MS=300 P11DELAY_PARALLEL=1
    ocspd_start "$CONF" "$TMP/ocspd.log" ||
        fatal "ocspd starts behind the simulated HSM" "$(tail -n 3 "$TMP/ocspd.log")"
    # the burst starts with the signer idle and healthy (nothing of the start still queued)
    for ((w = 0; w < 50; w++)); do
        hz=$(curl -s "http://127.0.0.1:$PORT/healthz")
        [[ $hz == *'"signer":{"ok":true,"queue":0}'* ]] && break
        sleep 0.2
    done
    for i in $(seq 1 8); do
        openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -reqout "$TMP/q$i.req" >/dev/null 2>&1
    done
    pids=()
    for i in $(seq 1 8); do
        post 127.0.0.1 "q$i" "$TMP/q$i.req" >"$TMP/q$i.code" &
        pids+=($!)
    done
    code=$(post 127.0.0.1 qhit "$TMP/good.req")
    hit=$(status_of qhit)
    for p in "${pids[@]}"; do wait "$p"; done
    ok=0 busy=0 other=0
    for i in $(seq 1 8); do
        if [[ $(cat "$TMP/q$i.code") == 200 && $(status_of "q$i") == good ]]; then
            ok=$((ok + 1))
        elif [[ $(body_hex "q$i") == 30030a0103 && $(header "q$i" Retry-After) == 1 ]]; then
            busy=$((busy + 1))
        else
            other=$((other + 1))
        fi
    done
    if ((ok >= 1 && busy >= 1 && other == 0)); then
        t_ok "full signing queue: $busy of 8 nonce requests answered tryLater with Retry-After: 1 at once, $ok signed"
    else
        t_fail "full signing queue: tryLater with Retry-After: 1" "signed $ok, tryLater $busy, other $other; \
before: $hz; $(curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^(signer_|ocsp_queue_full|ocsp_resigned)' | tr '\n' ' '); \
$(grep -E 'err:|warn:|AUDIT' "$TMP/ocspd.log" | tail -n 4)"
    fi
    expect "full signing queue: a pre-signed answer is still served meanwhile" "$code $hit" "200 good"

    # 20 requests at once for one new never-issued serial: they wait for the one signature
    # in flight instead of each needing the (one-place) queue
    never_req "$TMP/burst.req"
    s0=$(metric 'ocsp_responses_total{source="signed"}')
    pids=()
    for i in $(seq 1 20); do
        post 127.0.0.1 "b$i" "$TMP/burst.req" >"$TMP/b$i.code" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    ok=0
    for i in $(seq 1 20); do
        [[ $(cat "$TMP/b$i.code") == 200 && $(status_of "b$i") == revoked ]] && ok=$((ok + 1))
    done
    signed=$(($(metric 'ocsp_responses_total{source="signed"}') - s0))
    if ((ok == 20 && signed >= 1 && signed <= 2)); then
        t_ok "20 concurrent requests for one never-issued serial: all answered, $signed signature(s)"
    else
        t_fail "20 concurrent requests for one never-issued serial" "answered $ok, signatures $signed"
    fi
fi

itest_ocspd_stop_clean
t_summary "$NAME"
