#!/usr/bin/env bash
#
# test_tsad_hostile.sh: hostile and malformed input against a running tsad, each followed by a
# liveness check (a good request must still be granted). RFC 3161 §2.4.1, §2.4.2, §3.4;
# STANDARDS TSP-02 (an answer, never a hang or a 5xx), TSP-03 (rejection = status 2, no token,
# DER-minimal failInfo), TSP-04 (version), TSP-05/ALG-01 (weak hashes -> badAlg), TSP-06
# (imprint length), TSP-11 (extensions), plus bodies over max_body, request headers at and
# beyond their room (431, no token), BER, trailing bytes, nesting bombs, 50 concurrent clients
# and slow clients holding connections open.
# Requests that openssl cannot produce are built in DER by tests/lib/derutil.py.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsad_hostile
SLOW_FDS=()
# close_slow_fds: hang up the slow clients (before tsad is stopped)
close_slow_fds() {
    local fd
    for fd in "${SLOW_FDS[@]}"; do
        { exec {fd}>&-; } 2>/dev/null
    done
    SLOW_FDS=()
}
trap 'close_slow_fds; itest_cleanup' EXIT

CT_QUERY='Content-Type: application/timestamp-query'

kv() {
    kv_get "$1" "$2"
}

# send FILE [CURL_ARGS...]: POST FILE to /tsa; sets CODE (HTTP status, 000 when the connection
# was cut) and parses a 200 body into $TMP/out.kv
send() {
    local f=$1
    shift
    rm -f "$TMP/out.tsr"
    CODE=$(curl -s --max-time 20 -o "$TMP/out.tsr" -w '%{http_code}' -H "$CT_QUERY" "$@" \
        --data-binary @"$f" "$URL") || true
    [[ -n $CODE ]] || CODE=000
    : >"$TMP/out.kv"
    if [[ $CODE == 200 ]]; then
        derutil tsp-resp "$TMP/out.tsr" >"$TMP/out.kv" 2>/dev/null ||
            echo "status=unparsable" >"$TMP/out.kv"
    fi
}

# alive: a good request is still granted
alive() {
    send "$GOOD"
    [[ $CODE == 200 && $(kv "$TMP/out.kv" status) == 0 ]]
}

# reject NAME FILE BITS: HTTP 200, PKIStatus rejection(2), failInfo one of BITS (a|b),
# DER-minimal failInfo, no token (TSP-03); then the liveness check
reject() {
    local name=$1 f=$2 bits=$3 got
    send "$f"
    got=$(kv "$TMP/out.kv" failbits)
    if [[ $CODE != 200 ]]; then
        t_fail "$name" "HTTP $CODE, want 200 with a rejection"
    elif [[ $(kv "$TMP/out.kv" status) != 2 ]]; then
        t_fail "$name" "PKIStatus $(kv "$TMP/out.kv" status), want 2 (rejection)"
    elif ! [[ $got =~ ^($bits)$ ]]; then
        t_fail "$name" "failInfo bits '$got', want $bits"
    elif [[ $(kv "$TMP/out.kv" token) != absent || $(kv "$TMP/out.kv" failinfo_minimal) != yes ]]; then
        t_fail "$name" "token $(kv "$TMP/out.kv" token), minimal failInfo $(kv "$TMP/out.kv" failinfo_minimal)"
    else
        t_ok "$name"
    fi
    t_check "  ...then a good request is granted" alive
}

# ---- set-up ----
itest_tsa_setup local
itest_tsad_start
itest_tsad_healthy
printf 'hostile test document\n' >"$TMP/doc.txt"
GOOD=$TMP/good.tsq
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$GOOD" 2>/dev/null ||
    fatal "openssl ts -query" "cannot build the good query"
t_check "good request granted before the battery" alive
D=$TMP/h
mkdir -p "$D"
gl=$(stat -c %s "$GOOD")

# ---- malformed DER: badDataFormat (TSP-02, TSP-03) ----
: >"$D/empty"
reject "empty body -> badDataFormat" "$D/empty" 5
printf '\x30' >"$D/one"
reject "1-byte body -> badDataFormat" "$D/one" 5
head -c $((gl - 7)) "$GOOD" >"$D/trunc"
reject "truncated valid request -> badDataFormat" "$D/trunc" 5
head -c 100 /dev/urandom >"$D/rand100"
reject "100 random bytes -> badDataFormat" "$D/rand100" 5
head -c 16000 /dev/urandom >"$D/rand16k"
reject "16000 random bytes (under max_body) -> badDataFormat" "$D/rand16k" 5
derutil ber "$GOOD" "$D/ber"
reject "BER indefinite-length copy of a valid request -> badDataFormat (DER only)" "$D/ber" 5
{ cat "$GOOD"; printf '\x00'; } >"$D/trail"
reject "valid request plus 1 trailing byte -> badDataFormat" "$D/trail" 5
derutil nest "$D/nest" 3000
reject "3000 nested SEQUENCEs -> badDataFormat" "$D/nest" 5
for _ in $(seq 1 5000); do printf '\x30\x80'; done >"$D/nest-indef"
reject "5000 nested indefinite-length SEQUENCEs -> badDataFormat" "$D/nest-indef" 5
printf '\x30\x84\xff\xff\xff\xf0\x02\x01\x01' >"$D/hugelen"
reject "length field claiming 4 GB -> badDataFormat" "$D/hugelen" 5

# ---- version, imprint, algorithms, extensions, nonce ----
derutil tsp-mkreq "$D/v2" version=2
reject "TimeStampReq version 2 -> badRequest or badDataFormat (TSP-04)" "$D/v2" "2|5"
derutil tsp-mkreq "$D/len31" "hash=$(printf '11%.0s' $(seq 31))"
reject "31-byte SHA-256 imprint -> badDataFormat (TSP-06)" "$D/len31" 5
derutil tsp-mkreq "$D/len33" "hash=$(printf '11%.0s' $(seq 33))"
reject "33-byte SHA-256 imprint -> badDataFormat (TSP-06)" "$D/len33" 5
openssl ts -query -data "$TMP/doc.txt" -md5 -out "$D/md5" 2>/dev/null
reject "MD5 imprint (openssl ts -query -md5) -> badAlg (TSP-05, ALG-01)" "$D/md5" 0
openssl ts -query -data "$TMP/doc.txt" -sha1 -out "$D/sha1" 2>/dev/null
reject "SHA-1 imprint (openssl ts -query -sha1) -> badAlg (TSP-05, ALG-01)" "$D/sha1" 0
openssl ts -query -data "$TMP/doc.txt" -sha224 -out "$D/sha224" 2>/dev/null
reject "SHA-224 imprint -> badAlg (ALG-01)" "$D/sha224" 0
derutil tsp-mkreq "$D/unknown-alg" alg=1.3.6.1.4.1.55555.99.1
reject "unknown hash OID -> badAlg (TSP-05)" "$D/unknown-alg" 0
derutil tsp-mkreq "$D/params" params=020101
reject "SHA-256 with non-NULL parameters -> badAlg" "$D/params" 0
derutil tsp-mkreq "$D/ext" ext=1.3.6.1.4.1.55555.99.2
reject "request with a non-critical extension -> unacceptedExtension (TSP-11)" "$D/ext" 16
derutil tsp-mkreq "$D/ext-crit" ext=1.3.6.1.4.1.55555.99.2 critical=1
reject "request with a critical extension -> unacceptedExtension (TSP-11)" "$D/ext-crit" 16
derutil tsp-mkreq "$D/nonce200" "nonce=01$(openssl rand -hex 199)"
reject "200-byte nonce -> rejection badRequest" "$D/nonce200" 2
derutil tsp-mkreq "$D/nonce128" "nonce=01$(openssl rand -hex 127)"
send "$D/nonce128"
if [[ $CODE == 200 && $(kv "$TMP/out.kv" status) == 0 ]]; then t_ok "128-byte nonce granted (limit)"; else
    t_fail "128-byte nonce granted (limit)" "HTTP $CODE status $(kv "$TMP/out.kv" status)"
fi

# ---- HTTP level: oversized bodies, garbage, long URLs ----
head -c 10000000 /dev/zero >"$D/10mb"
send "$D/10mb"
if [[ $CODE == 413 ]]; then t_ok "10 MB body with Content-Length -> 413"; else
    t_fail "10 MB body with Content-Length -> 413" "HTTP $CODE"
fi
t_check "  ...then a good request is granted" alive
send "$D/10mb" -H 'Transfer-Encoding: chunked'
if [[ $CODE == 413 || $CODE == 000 || $CODE == 100 ]]; then
    t_ok "10 MB chunked body -> 413 or connection cut (HTTP '$CODE')"
else
    t_fail "10 MB chunked body -> 413 or connection cut" "HTTP $CODE"
fi
t_check "  ...then a good request is granted" alive

# ---- request headers (review helper-41): within the room (common/http.h: 6 KiB in 64 lines)
# answered with a token; beyond it 431 from tsad, or far beyond the connection closed by
# libmicrohttpd, and in either case no token signed ----
# hdr_args N L: N extra header lines of L bytes each (CRLF counted), as curl -H arguments
hdr_args() {
    local i v
    v=$(head -c $(($2 - 11)) /dev/zero | tr '\0' 0)
    HDRS=()
    for ((i = 0; i < $1; i++)); do HDRS+=(-H "$(printf 'X-P%04d: %s' "$i" "$v")"); done
}
tokens() { curl -s "$BASE/metrics" | awk '$1 == "tsa_tokens_total" { print $2 }'; }
t0=$(tokens)
hdr_args 56 100 # with curl's own five lines: 61 lines, about 5.7 KiB
send "$GOOD" "${HDRS[@]}"
if [[ $CODE == 200 && $(kv "$TMP/out.kv" status) == 0 && $(tokens) == $((t0 + 1)) ]]; then
    t_ok "61 header lines of 5.7 KiB -> granted"
else
    t_fail "61 header lines of 5.7 KiB -> granted" "HTTP $CODE, tokens $t0 -> $(tokens)"
fi
t0=$(tokens)
codes=""
for shape in "60 12" "70 12" "95 60" "103 60" "113 40" "125 30" "72 100" "154 40" "300 12" \
    "3 4000"; do
    read -r n len <<<"$shape"
    hdr_args "$n" "$len"
    send "$GOOD" "${HDRS[@]}"
    codes+=" $CODE"
done
if [[ $codes =~ ^(\ (431|000))+$ && $(tokens) == "$t0" ]]; then
    t_ok "headers beyond the room -> 431 or cut, no token signed ($codes)"
else
    t_fail "headers beyond the room -> 431 or cut, no token signed" \
        "codes$codes, tokens $t0 -> $(tokens)"
fi
t_check "  ...then a good request is granted" alive

# raw_http BYTES: send BYTES on a fresh TCP connection, print the status line
raw_http() {
    local fd line=""
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || return 1
    printf '%b' "$1" >&"$fd"
    IFS= read -r -t 5 line <&"$fd" || true
    exec {fd}>&-
    printf '%s\n' "${line%$'\r'}"
}
# raw_4xx NAME BYTES: BYTES on a fresh connection are answered 4xx or the connection is closed;
# then the liveness check
raw_4xx() {
    local st
    st=$(raw_http "$2")
    if [[ $st =~ ^HTTP/1\.[01]\ 4[0-9][0-9] || -z $st ]]; then
        t_ok "$1 -> 4xx or closed ('$st')"
    else
        t_fail "$1 -> 4xx or closed" "got '$st'"
    fi
    t_check "  ...then a good request is granted" alive
}
raw_4xx "garbage request line" 'GARBAGE GARBAGE GARBAGE\r\n\r\n'
raw_4xx "negative Content-Length" "POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\nContent-Length: -5\r\n\r\n"
long=$(head -c 9000 /dev/zero | tr '\0' a)
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/$long") || true
if [[ $code == 414 ]]; then t_ok "9000-character URL -> 414"; else
    t_fail "9000-character URL -> 414" "HTTP $code"
fi
t_check "  ...then a good request is granted" alive

# ---- 50 concurrent clients, all granted ----
pids=()
for i in $(seq 1 50); do
    curl -s --max-time 30 -o "$D/par$i.tsr" -w '%{http_code}' -H "$CT_QUERY" \
        --data-binary @"$GOOD" "$URL" >"$D/par$i.code" 2>/dev/null &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
ok=0
for i in $(seq 1 50); do
    if [[ $(cat "$D/par$i.code") == 200 ]] &&
        derutil tsp-resp "$D/par$i.tsr" >"$D/par$i.kv" 2>/dev/null &&
        [[ $(kv "$D/par$i.kv" status) == 0 ]]; then
        ok=$((ok + 1))
    fi
done
if ((ok == 50)); then t_ok "50 concurrent requests: all granted"; else
    t_fail "50 concurrent requests: all granted" "$ok of 50 granted"
fi
t_check "one concurrent token verifies" openssl ts -verify -data "$TMP/doc.txt" \
    -in "$D/par17.tsr" -CAfile "$PKI_CA_CHAIN"

# ---- slow clients: half a request each, held open, do not block others ----
half=$((gl / 2))
for i in $(seq 1 8); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || continue
    SLOW_FDS+=("$fd")
    {
        printf 'POST /tsa HTTP/1.1\r\nHost: 127.0.0.1\r\n'
        printf 'Content-Type: application/timestamp-query\r\nContent-Length: %d\r\n\r\n' "$gl"
        head -c "$half" "$GOOD"
    } >&"$fd"
done
if ((${#SLOW_FDS[@]} == 8)); then t_ok "8 slow clients hold half-sent requests"; else
    t_fail "8 slow clients hold half-sent requests" "only ${#SLOW_FDS[@]} connected"
fi
t_check "a normal request is granted while the slow clients wait" alive
send "$GOOD" --http1.0
if [[ $CODE == 200 && $(kv "$TMP/out.kv" status) == 0 ]]; then t_ok "and an HTTP/1.0 one too"; else
    t_fail "and an HTTP/1.0 one too" "HTTP $CODE"
fi
# one slow client finishes its body: it gets its token
fd=${SLOW_FDS[0]}
tail -c +$((half + 1)) "$GOOD" >&"$fd"
line=""
IFS= read -r -t 10 line <&"$fd" || true
if [[ ${line%$'\r'} == "HTTP/1.1 200 OK" ]]; then t_ok "a slow client that completes its body is answered 200"; else
    t_fail "a slow client that completes its body is answered 200" "got '${line%$'\r'}'"
fi
close_slow_fds

# ---- clients that vanish while their request is being signed; pipelined requests ----
derutil tsa-abort "$PORT" "$GOOD" 100 close
t_check "100 clients that close right after sending: a good request is still granted" alive
derutil tsa-abort "$PORT" "$GOOD" 100 rst
t_check "100 clients that reset right after sending: a good request is still granted" alive
n=$(derutil tsa-pipeline "$PORT" "$GOOD" 5)
if [[ $n == 5 ]]; then t_ok "5 pipelined requests on one connection: 5 answers 200"; else
    t_fail "5 pipelined requests on one connection: 5 answers 200" "got '$n'"
fi
# metric_le NAME MAX: poll /metrics until NAME <= MAX (connections are reaped asynchronously)
metric_le() {
    local v deadline=$((SECONDS + 15))
    while ((SECONDS <= deadline)); do
        v=$(curl -s "$BASE/metrics" | awk -v n="$1" '$1 == n { print $2 }')
        [[ $v =~ ^[0-9]+$ ]] && ((v <= $2)) && return 0
        sleep 0.2
    done
    echo "$1 = '$v'"
    return 1
}
t_check "no suspended request left behind (http_suspended_requests 0)" \
    metric_le http_suspended_requests 0
t_check "no connection left behind (http_connections <= 1, the metrics request)" \
    metric_le http_connections 1

# ---- the daemon is still the one we started, healthy, and counted the hostile input ----
if kill -0 "$TSAD_PID" 2>/dev/null; then t_ok "tsad survived the battery"; else
    t_fail "tsad survived the battery" "process $TSAD_PID is gone; $(tail -n 5 "$LOG")"
fi
t_check "/healthz still 200" wait_http "$BASE/healthz" 2 200
bdf=$(curl -s "$BASE/metrics" | awk '$1 == "tsa_rejections_total{reason=\"badDataFormat\"}" { print $2 }')
if [[ $bdf =~ ^[0-9]+$ ]] && ((bdf >= 12)); then t_ok "metrics count badDataFormat rejections ($bdf)"; else
    t_fail "metrics count badDataFormat rejections" "tsa_rejections_total{reason=\"badDataFormat\"} = '$bdf'"
fi
# a clean stop; with a sanitizer build (BUILD=build-asan) its reports land in the log
pid=$TSAD_PID
tsad_stop
wait "$pid" 2>/dev/null
if grep -q 'AUDIT event=service_stop' "$LOG"; then t_ok "clean shutdown after the battery"; else
    t_fail "clean shutdown after the battery" "$(tail -n 3 "$LOG")"
fi
itest_log_clean "$LOG"

t_summary "$NAME"
