#!/usr/bin/env bash
#
# test_tsad_hostile.sh: hostile and malformed input against a running tsad, each followed by a
# liveness check (a good request must still be granted). RFC 3161 §2.4.1, §2.4.2, §3.4;
# STANDARDS TSP-02 (an answer, never a hang or a 5xx), TSP-03 (rejection = status 2, no token,
# DER-minimal failInfo), TSP-04 (version), TSP-05/ALG-01 (weak hashes -> badAlg), TSP-06
# (imprint length), TSP-11 (extensions), plus bodies over max_body, BER, trailing bytes,
# nesting bombs, 50 concurrent clients and slow clients holding connections open.
# Requests that openssl cannot produce are built in DER by a small python3 helper.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
BUILD=${BUILD:-build}
case "$BUILD" in
/*) ;;
*) BUILD="$ROOT/$BUILD" ;;
esac
export BUILD
# shellcheck source=tests/lib/common.sh
. "$ROOT/tests/lib/common.sh"
# shellcheck source=tests/lib/chrony.sh
. "$ROOT/tests/lib/chrony.sh"
# shellcheck source=tests/lib/pki.sh
. "$ROOT/tests/lib/pki.sh"
# shellcheck source=tests/lib/tsad.sh
. "$ROOT/tests/lib/tsad.sh"

NAME=test_tsad_hostile
TMP=$(mktemp -d)
SLOW_FDS=()
cleanup() {
    local fd
    for fd in "${SLOW_FDS[@]}"; do
        exec {fd}>&- 2>/dev/null
    done
    tsad_stop
    cleanup_tracked
    chrony_stop "$TMP/chrony"
    rm -rf "$TMP"
}
trap cleanup EXIT

fatal() {
    t_fail "$1" "$2"
    t_summary "$NAME"
    exit 1
}

# ---- DER helper: resp FILE | mkreq OUT k=v... | ber IN OUT | nest OUT DEPTH ----
cat >"$TMP/der.py" <<'PY'
import sys

def tlv(b, i):
    t, l = b[i], b[i + 1]
    i += 2
    if l & 0x80:
        n = l & 0x7f
        l = int.from_bytes(b[i:i + n], 'big')
        i += n
    if i + l > len(b):
        raise ValueError('truncated')
    return t, b[i:i + l], i + l

def kids(v):
    out, i = [], 0
    while i < len(v):
        t, c, j = tlv(v, i)
        out.append((t, c))
        i = j
    return out

def resp(b):
    t, v, end = tlv(b, 0)
    f = kids(v)
    st = kids(f[0][1])
    print('status=%d' % int.from_bytes(st[0][1], 'big'))
    fi = [c for t, c in st if t == 0x03]
    bits = []
    minimal = 'n/a'
    if fi:
        unused, data = fi[0][0], fi[0][1:]
        bits = [i for i in range(8 * len(data)) if data[i // 8] & (0x80 >> i % 8)]
        # X.690 §11.2.2: no trailing zero bits, unused bits exactly the trailing zeros
        last = data[-1] if data else 0
        tz = (last & -last).bit_length() - 1 if last else 8
        minimal = 'yes' if data and last and unused == tz else 'no'
    print('failbits=' + ','.join(str(x) for x in bits))
    print('failinfo_minimal=' + minimal)
    print('token=' + ('present' if len(f) > 1 else 'absent'))
    print('trailing=%d' % (len(b) - end))

def enc(tag, c):
    n = len(c)
    if n < 128:
        return bytes([tag, n]) + c
    nb = n.to_bytes((n.bit_length() + 7) // 8, 'big')
    return bytes([tag, 0x80 | len(nb)]) + nb + c

def enc_oid(s):
    p = [int(x) for x in s.split('.')]
    body = b''
    for n in [40 * p[0] + p[1]] + p[2:]:
        chunk = [n & 0x7f]
        while n > 0x7f:
            n >>= 7
            chunk.insert(0, 0x80 | (n & 0x7f))
        body += bytes(chunk)
    return enc(0x06, body)

def mkreq(path, args):
    a = dict(x.split('=', 1) for x in args)
    alg = enc_oid(a.get('alg', '2.16.840.1.101.3.4.2.1'))
    params = a.get('params', 'null')
    if params == 'null':
        alg += b'\x05\x00'
    elif params != 'absent':
        alg += bytes.fromhex(params)
    body = enc(0x02, bytes([int(a.get('version', '1'))]))
    body += enc(0x30, enc(0x30, alg) + enc(0x04, bytes.fromhex(a.get('hash', '11' * 32))))
    if 'policy' in a:
        body += enc_oid(a['policy'])
    if 'nonce' in a:
        body += enc(0x02, bytes.fromhex(a['nonce']))
    if a.get('certreq') == '1':
        body += b'\x01\x01\xff'
    if 'ext' in a:  # [0] IMPLICIT Extensions: one Extension { oid, [critical], OCTET STRING }
        crit = b'\x01\x01\xff' if a.get('critical') == '1' else b''
        ext = enc(0x30, enc_oid(a['ext']) + crit + enc(0x04, b'\x05\x00'))
        body += enc(0xa0, ext)
    open(path, 'wb').write(enc(0x30, body))

def ber(src, dst):
    t, v, end = tlv(open(src, 'rb').read(), 0)
    open(dst, 'wb').write(bytes([t, 0x80]) + v + b'\x00\x00')

def nest(path, depth):
    inner = b'\x05\x00'
    for _ in range(depth):
        inner = enc(0x30, inner)
    open(path, 'wb').write(inner)

def http_post(q):
    return ('POST /tsa HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/timestamp-query\r\n'
            'Content-Length: %d\r\n\r\n' % len(q)).encode() + q

def abort(port, q, n, rst):
    """n clients that send a whole request and go away at once (RST when rst)."""
    import socket, struct
    for _ in range(n):
        s = socket.create_connection(('127.0.0.1', port))
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        s.sendall(http_post(q))
        s.close()

def pipeline(port, q, n):
    """n requests written back to back on one connection; prints the number of 200 answers."""
    import socket
    s = socket.create_connection(('127.0.0.1', port))
    s.settimeout(10)
    s.sendall(http_post(q) * n)
    data = b''
    try:
        while data.count(b'HTTP/1.1 200 OK') < n:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError:
        pass
    s.close()
    print(data.count(b'HTTP/1.1 200 OK'))

cmd = sys.argv[1]
if cmd in ('abort', 'pipeline'):
    q = open(sys.argv[3], 'rb').read()
    if cmd == 'abort':
        abort(int(sys.argv[2]), q, int(sys.argv[4]), sys.argv[5] == 'rst')
    else:
        pipeline(int(sys.argv[2]), q, int(sys.argv[4]))
elif cmd == 'resp':
    resp(open(sys.argv[2], 'rb').read())
elif cmd == 'mkreq':
    mkreq(sys.argv[2], sys.argv[3:])
elif cmd == 'ber':
    ber(sys.argv[2], sys.argv[3])
elif cmd == 'nest':
    nest(sys.argv[2], int(sys.argv[3]))
PY

CT_QUERY='Content-Type: application/timestamp-query'

kv() {
    sed -n "s/^$2=//p" "$1" | head -n 1
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
        python3 "$TMP/der.py" resp "$TMP/out.tsr" >"$TMP/out.kv" 2>/dev/null ||
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
pki_demo "$TMP/pki" >/dev/null 2>&1 || fatal "demo PKI" "pki_demo failed"
# shellcheck disable=SC1091
. "$TMP/pki/pki.env"
chrony_start "$TMP/chrony" local || fatal "chronyd" "chrony_start local failed"
PORT=$(free_port) || fatal "free port" "none"
CONF=$TMP/tsad.conf
LOG=$TMP/tsad.log
tsad_write_conf "$CONF" "$TMP/pki" "$PORT" "$(chrony_socket "$TMP/chrony")" "$TMP/store"
tsad_start "$CONF" "$LOG" || fatal "tsad start" "$(tail -n 5 "$LOG")"
BASE=http://127.0.0.1:$PORT
URL=$BASE/tsa
wait_http "$BASE/healthz" 10 200 || fatal "tsad healthy" "$(curl -s "$BASE/healthz")"
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
python3 "$TMP/der.py" ber "$GOOD" "$D/ber"
reject "BER indefinite-length copy of a valid request -> badDataFormat (DER only)" "$D/ber" 5
{ cat "$GOOD"; printf '\x00'; } >"$D/trail"
reject "valid request plus 1 trailing byte -> badDataFormat" "$D/trail" 5
python3 "$TMP/der.py" nest "$D/nest" 3000
reject "3000 nested SEQUENCEs -> badDataFormat" "$D/nest" 5
for _ in $(seq 1 5000); do printf '\x30\x80'; done >"$D/nest-indef"
reject "5000 nested indefinite-length SEQUENCEs -> badDataFormat" "$D/nest-indef" 5
printf '\x30\x84\xff\xff\xff\xf0\x02\x01\x01' >"$D/hugelen"
reject "length field claiming 4 GB -> badDataFormat" "$D/hugelen" 5

# ---- version, imprint, algorithms, extensions, nonce ----
python3 "$TMP/der.py" mkreq "$D/v2" version=2
reject "TimeStampReq version 2 -> badRequest or badDataFormat (TSP-04)" "$D/v2" "2|5"
python3 "$TMP/der.py" mkreq "$D/len31" "hash=$(printf '11%.0s' $(seq 31))"
reject "31-byte SHA-256 imprint -> badDataFormat (TSP-06)" "$D/len31" 5
python3 "$TMP/der.py" mkreq "$D/len33" "hash=$(printf '11%.0s' $(seq 33))"
reject "33-byte SHA-256 imprint -> badDataFormat (TSP-06)" "$D/len33" 5
openssl ts -query -data "$TMP/doc.txt" -md5 -out "$D/md5" 2>/dev/null
reject "MD5 imprint (openssl ts -query -md5) -> badAlg (TSP-05, ALG-01)" "$D/md5" 0
openssl ts -query -data "$TMP/doc.txt" -sha1 -out "$D/sha1" 2>/dev/null
reject "SHA-1 imprint (openssl ts -query -sha1) -> badAlg (TSP-05, ALG-01)" "$D/sha1" 0
openssl ts -query -data "$TMP/doc.txt" -sha224 -out "$D/sha224" 2>/dev/null
reject "SHA-224 imprint -> badAlg (ALG-01)" "$D/sha224" 0
python3 "$TMP/der.py" mkreq "$D/unknown-alg" alg=1.3.6.1.4.1.55555.99.1
reject "unknown hash OID -> badAlg (TSP-05)" "$D/unknown-alg" 0
python3 "$TMP/der.py" mkreq "$D/params" params=020101
reject "SHA-256 with non-NULL parameters -> badAlg" "$D/params" 0
python3 "$TMP/der.py" mkreq "$D/ext" ext=1.3.6.1.4.1.55555.99.2
reject "request with a non-critical extension -> unacceptedExtension (TSP-11)" "$D/ext" 16
python3 "$TMP/der.py" mkreq "$D/ext-crit" ext=1.3.6.1.4.1.55555.99.2 critical=1
reject "request with a critical extension -> unacceptedExtension (TSP-11)" "$D/ext-crit" 16
python3 "$TMP/der.py" mkreq "$D/nonce200" "nonce=01$(openssl rand -hex 199)"
reject "200-byte nonce -> rejection badRequest" "$D/nonce200" 2
python3 "$TMP/der.py" mkreq "$D/nonce128" "nonce=01$(openssl rand -hex 127)"
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

# raw_http BYTES: send BYTES on a fresh TCP connection, print the status line
raw_http() {
    local fd line=""
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || return 1
    printf '%b' "$1" >&"$fd"
    IFS= read -r -t 5 line <&"$fd" || true
    exec {fd}>&-
    printf '%s\n' "${line%$'\r'}"
}
st=$(raw_http 'GARBAGE GARBAGE GARBAGE\r\n\r\n')
if [[ $st =~ ^HTTP/1\.[01]\ 4[0-9][0-9] || -z $st ]]; then
    t_ok "garbage request line -> 4xx or closed ('$st')"
else
    t_fail "garbage request line -> 4xx or closed" "got '$st'"
fi
t_check "  ...then a good request is granted" alive
st=$(raw_http "POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\nContent-Length: -5\r\n\r\n")
if [[ $st =~ ^HTTP/1\.[01]\ 4[0-9][0-9] || -z $st ]]; then
    t_ok "negative Content-Length -> 4xx or closed ('$st')"
else
    t_fail "negative Content-Length -> 4xx or closed" "got '$st'"
fi
t_check "  ...then a good request is granted" alive
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
        python3 "$TMP/der.py" resp "$D/par$i.tsr" >"$D/par$i.kv" 2>/dev/null &&
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
for fd in "${SLOW_FDS[@]}"; do exec {fd}>&-; done
SLOW_FDS=()

# ---- clients that vanish while their request is being signed; pipelined requests ----
python3 "$TMP/der.py" abort "$PORT" "$GOOD" 100 close
t_check "100 clients that close right after sending: a good request is still granted" alive
python3 "$TMP/der.py" abort "$PORT" "$GOOD" 100 rst
t_check "100 clients that reset right after sending: a good request is still granted" alive
n=$(python3 "$TMP/der.py" pipeline "$PORT" "$GOOD" 5)
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
if grep -Eq 'Sanitizer|runtime error|Assertion|Segmentation' "$LOG"; then
    t_fail "no sanitizer or assertion report in the log" "$(grep -Em3 'Sanitizer|runtime error|Assertion|Segmentation' "$LOG")"
else
    t_ok "no sanitizer or assertion report in the log"
fi

t_summary "$NAME"
