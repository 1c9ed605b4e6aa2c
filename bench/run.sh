#!/usr/bin/env bash
# bench/run.sh (make bench): measure tsad and ocspd, the physical limits of this machine and the
# peers a user would pick instead, side by side in one run (DESIGN D9), and report every figure
# as a ratio to its limit and to its peer.
#
#   limits  signing: `openssl speed` (1 and 2 processes) for P-256 and RSA-3072, and the
#                    SoftHSM2 tokens through PKCS#11 directly (build/bench/p11speed: rate, and
#                    CPU per raw C_Sign); the simulated network HSM's capacity
#                    (build/bench/libp11delay.so: PARALLEL / LATENCY, 8 / 2 ms = 4000/s)
#           HTTP:    build/bench/nullhttpd, libmicrohttpd configured like our daemons but with
#                    its default connection pool, returning the bytes of a real OCSP reply (and,
#                    in the alternating rounds, a second one with ocspd's smaller pool, and a
#                    third keeping HIT_SET_COUNT replies, each different request answered with
#                    a reply of its own: the limit of hits over many different answers)
#           durable commit: build/bench/floor on the filesystem of the work dir, groups of 8
#                    and 64 records of 700 bytes (about one audit record): an LMDB commit, and
#                    one O_DSYNC overwrite of pre-allocated blocks (a write-ahead journal's floor)
#   peers   OpenSSL's TS_RESP_create_response in-process, 1 and 2 threads (build/bench/tsresp);
#           `openssl ocsp -multi 2` on the same CA database and request set, inside a network
#           namespace made for the run (it binds every interface)
#   ours    tsad with a software P-256 key (at 8, 32 and 64 connections), on SoftHSM2 P-256,
#           with a software RSA-3072 key; ocspd pre-signed hits by POST and GET: one hot answer
#           (a request set of one request, the one whose reply the null server returns; then
#           HOT_ROUNDS rounds of null server, ocspd POST and ocspd GET in turn, HOT_DUR s each,
#           whose median ratio is the one held to the target), HIT_SET_COUNT (5000) requests
#           over the bench serials (the hit set; also in the rounds, beside a null server keeping
#           as many replies, picked by a hash of the request bytes), and uniform over all NSERIALS serials of the bench
#           store (SCALE_SET_COUNT requests, no repeat of the set within a run); on-demand
#           nonce responses, a hit/never-issued mix; an open-loop run at half of the measured
#           maximum of the hot GET for the latency target; a second tsad and ocspd whose
#           signer goes through the simulated network HSM (workers = 16): closed loop against
#           its capacity, open loop at 90 % of it for the latency over the HSM's round trip;
#           the latency of
#           tokens beside thousands of slow and idle connections from one address and from many
#           (tests/lib/slowloris.py), against the same unloaded (issue 8 item 1); HTTPS beside
#           HTTP on the same tsad (software P-256), kept-alive and a new connection per request
#           (loadgen --close: a full TLS handshake each, server certificate verified, no session
#           resumption), each set against its HTTP twin (issue 9 item 1)
#
#   scale   (bench/scale.sh) a store of 10 M certificates (QUICK: 3 k; BENCH_SCALE_N) built
#           once and kept in $BUILD/bench-scale-N/ with its build times (import-index,
#           presign, against the PKCS#11 signer's raw rate); import-crl of a 1 M entry CRL
#           (QUICK: 10 k) into a scratch store; the store's bytes per certificate (mdb_stat);
#           ocspd on it under a uniform load over all serials, by POST and GET, against the
#           same over the bench store and against one hot answer, with its resident memory;
#           then HOT_ROUNDS rounds of HOT_DUR s with a second ocspd on the bench store (both
#           up, one loaded at a time): uniform over the scale store, uniform over the bench
#           store and its one hot answer, POST and GET in turn, whose median ratios are the
#           ones held to the targets. BENCH_ONLY=scale runs this scenario alone (no rounds).
#
# Every tsad is started by tsad_bench_start NAME [SECTION.KEY=VALUE...] (a configuration with
# keys overridden, its own store): a scenario on another configuration is one call and a few
# load lines (see nethsm_tsa).
#
# Load comes from build/bench/loadgen (closed loop, keep-alive, replies checked, 1 in 50
# verified). Output: a table on stdout, $OUT/report.json, $OUT/bench.png (gnuplot), per-run JSON
# and logs in $OUT. QUICK=1: short runs (< 40 s in all) for CI; figures are never asserted.
#
# Good neighbour: servers bind 127.0.0.1 (the OCSP peer: its own namespace), free ports, a temp
# dir; every run is bounded in time; every process started here is stopped by pid at the end,
# also on failure or Ctrl-C.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
QUICK=${QUICK:-}
OUT=${BENCH_OUT:-$top/$BUILD/bench-out}
# shellcheck source=tests/lib/common.sh
. tests/lib/common.sh
# shellcheck source=tests/lib/chrony.sh
. tests/lib/chrony.sh
# shellcheck source=tests/lib/pki.sh
. tests/lib/pki.sh
# shellcheck source=tests/lib/tsad.sh
. tests/lib/tsad.sh

if [[ -n $QUICK && $QUICK != 0 ]]; then
    QUICK=1 WARM=0.2 DUR=0.8 SPEED_S=1 LIMIT_S=0.5 NSERIALS=200 FLOOR_K=50 HOT_ROUNDS=1 HOT_DUR=0.5
else
    QUICK=0 WARM=1 DUR=6 SPEED_S=3 LIMIT_S=3 NSERIALS=10000 FLOOR_K=200 HOT_ROUNDS=5 HOT_DUR=3
fi
CONNS=${BENCH_CONNS:-32}
# shellcheck source=bench/scale.sh
. bench/scale.sh
# the simulated network HSM (bench/p11delay.c): round trip, operations in flight, the
# capacity they make and the open-loop rate (90 % of it)
NETHSM_MS=${BENCH_NETHSM_MS:-2}
NETHSM_PARALLEL=${BENCH_NETHSM_PARALLEL:-8}
NETHSM_CAP=$(awk -v p="$NETHSM_PARALLEL" -v l="$NETHSM_MS" 'BEGIN { printf "%d", p * 1000 / l }')
NETHSM_RATE=$((NETHSM_CAP * 9 / 10))
NETHSM_ENV=("P11DELAY_LATENCY_MS=$NETHSM_MS" "P11DELAY_PARALLEL=$NETHSM_PARALLEL")
FLOOR_BYTES=700 # about one tsad audit record
# the hit set: requests over the bench serials, cycled (ocspd_hit_*, the openssl ocsp peer and
# the null server keeping as many replies); the report reads it too
export HIT_SET_COUNT=5000
VERIFY_EVERY=50
LG=$BUILD/bench/loadgen
WORK=$(mktemp -d /tmp/bench.XXXXXX)
NETNS=""
PEER_PID=""
NOTES=()

for tool in jq curl openssl; do
    command -v "$tool" >/dev/null || die "bench needs $tool (make deps)"
done
for b in loadgen nullhttpd p11speed tsresp floor; do
    [[ -x $BUILD/bench/$b ]] || die "$BUILD/bench/$b not built (make all)"
done
[[ -f $BUILD/bench/libp11delay.so ]] || die "$BUILD/bench/libp11delay.so not built (make all)"
P11DELAY_SO=$(cd "$BUILD/bench" && pwd)/libp11delay.so

stopping=0
shutdown() {
    local rc=$?
    [[ $stopping == 1 ]] && return
    stopping=1
    tsad_stop
    if declare -F ocspd_stop >/dev/null; then ocspd_stop; fi
    cleanup_tracked
    netns_stop
    chrony_stop "$WORK/chrony" || true
    if ((rc != 0)); then
        mkdir -p "$OUT/logs"
        cp "$WORK"/*.log "$OUT/logs/" 2>/dev/null || true
        echo "bench: failed (exit $rc); logs in $OUT/logs" >&2
    fi
    rm -rf "$WORK"
}
trap shutdown EXIT
trap 'exit 130' INT TERM

note() {
    NOTES+=("$*")
    printf 'note: %s\n' "$*" >&2
}

# ---- limits ----

# speed_sign ALG PROCS: sign/s of `openssl speed` for ALG (ecdsap256, rsa3072)
speed_sign() {
    local alg=$1 procs=$2 pat
    local -a multi=()
    ((procs > 1)) && multi=(-multi "$procs")
    case $alg in
    ecdsap256) pat='^ *256 bits ecdsa' ;;
    rsa3072) pat='^rsa 3072 bits' ;;
    esac
    timeout 60 openssl speed -seconds "$SPEED_S" "${multi[@]}" "$alg" 2>/dev/null |
        grep -E "$pat" | tail -n 1 | awk '{ print $(NF - 1) }'
}

# limit_json NAME VALUE UNIT WHAT
LIMITS=()
limit_add() {
    LIMITS+=("$(jq -nc --arg n "$1" --argjson v "${2:-0}" --arg u "$3" --arg w "$4" \
        '{name: $n, value: $v, unit: $u, what: $w}')")
    printf '  %-22s %12.3f %-9s %s\n' "$1" "${2:-0}" "$3" "$4"
}

# p11_limits: C_Sign rate of the TSA token's P-256 key with 1 and 2 sessions, and the CPU one
# raw signature costs (1 session: no contention inside SoftHSM2)
p11_limits() {
    local threads
    for threads in 1 2; do
        "$BUILD/bench/p11speed" --module "$PKI_P11_MODULE" --token "$PKI_P11_TOKEN" \
            --pin-file "$PKI_P11_PIN_FILE" --key "$TSU_N_LABEL" --threads "$threads" \
            --duration "$LIMIT_S" --json "$OUT/p11-tsa-$threads.json" >/dev/null
        limit_add "p11_p256_${threads}t" "$(jq .signs_per_s "$OUT/p11-tsa-$threads.json")" sign/s \
            "SoftHSM2 C_Sign CKM_ECDSA, $threads session(s)"
    done
    limit_add p11_p256_cpu_us "$(jq .cpu_us_per_sign "$OUT/p11-tsa-1.json")" us/sign \
        "SoftHSM2 C_Sign CKM_ECDSA, process CPU per signature (1 session)"
}

# floor_limits: the durable-commit floor (bench/floor.c) on the work dir's filesystem
floor_limits() {
    local n m
    "$BUILD/bench/floor" --dir "$WORK" --size "$FLOOR_BYTES" --records 8,64 \
        --iterations "$FLOOR_K" --json "$OUT/floor.json" | sed 's/^/  /'
    for n in 8 64; do
        for m in lmdb journal append; do
            limit_add "floor_${m}_$n" \
                "$(jq --argjson n "$n" ".results[] | select(.records == \$n) | .${m}_ms.p50" \
                    "$OUT/floor.json")" ms "p50 durable commit, $n x $FLOOR_BYTES bytes: $m"
        done
    done
}

measure_limits() {
    local v threads
    echo "== limits and in-process peers"
    for threads in $( ((QUICK)) && echo 2 || echo 1 2); do
        v=$(speed_sign ecdsap256 "$threads")
        limit_add "speed_p256_${threads}p" "$v" sign/s "openssl speed ecdsap256, $threads process(es)"
        v=$(speed_sign rsa3072 "$threads")
        limit_add "speed_rsa3072_${threads}p" "$v" sign/s "openssl speed rsa3072, $threads process(es)"
        "$BUILD/bench/tsresp" --key "$SOFT_P256_KEY" --cert "$SOFT_P256_CERT" \
            --chain "$PKI_CA_CHAIN" --threads "$threads" --duration "$LIMIT_S" \
            --json "$OUT/tsresp-p256-$threads.json" >/dev/null
        limit_add "tsresp_p256_${threads}t" "$(jq .tokens_per_s "$OUT/tsresp-p256-$threads.json")" \
            tokens/s "TS_RESP_create_response P-256, $threads thread(s)"
        "$BUILD/bench/tsresp" --key "$SOFT_RSA_KEY" --cert "$SOFT_RSA_CERT" \
            --chain "$PKI_CA_CHAIN" --threads "$threads" --duration "$LIMIT_S" \
            --json "$OUT/tsresp-rsa-$threads.json" >/dev/null
        limit_add "tsresp_rsa3072_${threads}t" "$(jq .tokens_per_s "$OUT/tsresp-rsa-$threads.json")" \
            tokens/s "TS_RESP_create_response RSA-3072, $threads thread(s)"
    done
    p11_limits
    limit_add nethsm_capacity "$NETHSM_CAP" sign/s \
        "simulated network HSM: $NETHSM_PARALLEL in flight / $NETHSM_MS ms"
    limit_add nethsm_latency "$NETHSM_MS" ms "simulated network HSM: round trip per signature"
    floor_limits
}

# ---- load runs ----

# load NAME URL SETFILE PID [loadgen options...]: one loadgen run; JSON in $OUT/NAME.json
load() {
    local name=$1 url=$2 set=$3 pid=$4
    shift 4
    "$LG" run --label "$name" --url "$url" --requests "$set" --conns "$CONNS" \
        --warmup "$WARM" --duration "$DUR" --timeout 10 --verify-every "$VERIFY_EVERY" \
        --pid "$pid" --json "$OUT/$name.json" "$@" | sed 's/^/  /'
}

tsa_scenarios() {
    local base=$1 ca_args=(--ca "$PKI_ROOT_CERT" --untrusted "$WORK/tsa-untrusted.pem") rps
    echo "== tsad (pid $TSAD_PID)"
    load tsad_soft_p256 "$base/tsa/soft" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}"
    load tsad_soft_p256_c8 "$base/tsa/soft" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}" --conns 8
    load tsad_soft_p256_c64 "$base/tsa/soft" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}" \
        --conns 64
    load tsad_hsm_p256 "$base/tsa" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}"
    load tsad_soft_rsa3072 "$base/tsa/bench-rsa" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}"
    # HTTPS beside HTTP (issue 9): the same TSU and connections, kept alive and one request
    # per connection
    load tsad_soft_p256_https "$TSA_HTTPS_BASE/tsa/soft" "$WORK/tsa.set" "$TSAD_PID" \
        "${ca_args[@]}" --tls-ca "$TLS_SERVER_CA"
    load tsad_soft_p256_close "$base/tsa/soft" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}" \
        --close
    load tsad_soft_p256_https_close "$TSA_HTTPS_BASE/tsa/soft" "$WORK/tsa.set" "$TSAD_PID" \
        "${ca_args[@]}" --tls-ca "$TLS_SERVER_CA" --close
    rps=$(jq '.rps / 2 | floor' "$OUT/tsad_soft_p256.json")
    if ((rps > 0)); then
        load tsad_soft_p256_half "$base/tsa/soft" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}" \
            --rate "$rps"
    fi
}

# A/B of the durable write path (DESIGN D10): the same TSU with [store] journal = no, every
# group of audit records an LMDB append commit instead of one O_DSYNC journal write.
nojournal_tsa() {
    local ca_args=(--ca "$PKI_ROOT_CERT" --untrusted "$WORK/tsa-untrusted.pem")
    tsad_bench_start tsad-nojournal store.journal=no
    echo "== tsad, journal = no: audit records committed to LMDB directly (pid $TSAD_PID)"
    load tsad_nojournal_p256_c8 "$TSA_BASE/tsa/soft" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}" \
        --conns 8
    load tsad_nojournal_p256 "$TSA_BASE/tsa/soft" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}"
    tsad_stop
}

# The simulated network HSM in front of the same SoftHSM2 token: the HSM P-256 TSU (/tsa)
# closed loop against the HSM's capacity, and open loop at 90 % of it.
nethsm_tsa() {
    local ca_args=(--ca "$PKI_ROOT_CERT" --untrusted "$WORK/tsa-untrusted.pem")
    TSAD_ENV=("${NETHSM_ENV[@]}" "P11DELAY_MODULE=$PKI_P11_MODULE")
    tsad_bench_start tsad-nethsm "signer.pkcs11_module=$P11DELAY_SO" signer.workers=16
    TSAD_ENV=()
    echo "== tsad, simulated network HSM: $NETHSM_PARALLEL x $NETHSM_MS ms (pid $TSAD_PID)"
    load tsad_nethsm_p256 "$TSA_BASE/tsa" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}"
    load tsad_nethsm_p256_open "$TSA_BASE/tsa" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}" \
        --rate "$NETHSM_RATE"
    tsad_stop
}

# Slow and idle clients (issue 8 item 1): the latency of normal token requests (open loop at
# SLOW_RATE/s over 8 connections, software P-256) on a tsad with its default connection limits
# (per_ip_limit 64, max_connections 1024, timeout 5 s, request_timeout 10 s), unloaded, then
# beside SLOW_CONNS slow and idle connections (tests/lib/slowloris.py) from one address
# (127.0.0.2: trickled headers) and from many (127.0.3.1-127.0.3.100: half idle, half
# trickling), each reopened 1 s after the server closes it. The report sets loaded against
# unloaded p50 and p99 (the goal: within 2x).
SLOW_CONNS=${BENCH_SLOW_CONNS:-2000}
SLOW_RATE=${BENCH_SLOW_RATE:-500}

# slow_start OUT ARGS...: slowloris.py in the background (SLOW_PID), once its first
# connections are tried; its JSON summary goes to OUT when it ends (--duration, or SIGTERM)
slow_start() {
    local out=$1 i
    shift
    rm -f "$out.ready"
    python3 tests/lib/slowloris.py --ready "$out.ready" "$@" >"$out" 2>>"$WORK/slowloris.log" &
    SLOW_PID=$!
    track_pid "$SLOW_PID"
    for ((i = 0; i < 300; i++)); do
        [[ -e $out.ready ]] && return 0
        sleep 0.1
    done
    die "slowloris.py did not start; see $WORK/slowloris.log"
}

slowloris_tsa() {
    local ca_args=(--ca "$PKI_ROOT_CERT" --untrusted "$WORK/tsa-untrusted.pem") secs port p1 p2
    local lg=(--conns 8 --rate "$SLOW_RATE")
    secs=$(awk -v w="$WARM" -v d="$DUR" 'BEGIN { print w + d + 3 }')
    tsad_bench_start tsad-slowloris server.per_ip_limit=64
    port=${TSA_BASE##*:}
    echo "== tsad beside $SLOW_CONNS slow and idle connections, from one address and from many (pid $TSAD_PID)"
    load tsad_slowloris_base "$TSA_BASE/tsa/soft" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}" \
        "${lg[@]}"
    slow_start "$OUT/slowloris_one.json" --port "$port" --conns "$SLOW_CONNS" \
        --sources 127.0.0.2 --mode headers --interval 4 --duration "$secs" --reopen 1
    p1=$SLOW_PID
    load tsad_slowloris_one "$TSA_BASE/tsa/soft" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}" \
        "${lg[@]}"
    kill -TERM "$p1" 2>/dev/null || true
    wait "$p1" || true
    slow_start "$OUT/slowloris_many_idle.json" --port "$port" --conns $((SLOW_CONNS / 2)) \
        --sources 127.0.3.1-127.0.3.100 --mode idle --duration "$secs" --reopen 1
    p1=$SLOW_PID
    slow_start "$OUT/slowloris_many_slow.json" --port "$port" --conns $((SLOW_CONNS / 2)) \
        --sources 127.0.3.101-127.0.3.200 --mode headers --interval 4 --duration "$secs" \
        --reopen 1
    p2=$SLOW_PID
    load tsad_slowloris_many "$TSA_BASE/tsa/soft" "$WORK/tsa.set" "$TSAD_PID" "${ca_args[@]}" \
        "${lg[@]}"
    kill -TERM "$p1" "$p2" 2>/dev/null || true
    wait "$p1" "$p2" || true
    curl -s "$TSA_BASE/metrics" | grep '^http_connections_rejected_total' |
        sed 's/^/  /' || true
    tsad_stop
}

# conf_set FILE SECTION KEY VALUE: set KEY = VALUE in [SECTION] of an INI file. Any line of
# that key in the section is dropped and the new one put right under the section's header; a
# missing section is appended. (The daemons refuse a key given twice in a section.)
conf_set() {
    local file=$1
    S="[$2]" K=$3 V=$4 awk '
        BEGIN { s = ENVIRON["S"]; k = ENVIRON["K"]; v = ENVIRON["V"] }
        /^[[:space:]]*\[/ {
            insec = ($0 == s); print
            if (insec) { print k " = " v; done = 1 }
            next
        }
        insec {
            line = $0; sub(/^[[:space:]]+/, "", line)
            if (index(line, k) == 1 && substr(line, length(k) + 1) ~ /^[[:space:]]*=/) next
        }
        { print }
        END { if (!done) { print ""; print s; print k " = " v } }' "$file" >"$file.new" &&
        mv "$file.new" "$file"
}

# conf_apply FILE SECTION.KEY=VALUE...: conf_set for each (the key is the part after the last
# dot before the =, the section what comes before it: "tsu n1.accuracy=1s")
conf_apply() {
    local file=$1 kv sk
    shift
    for kv in "$@"; do
        sk=${kv%%=*}
        [[ $sk == *.* ]] || die "conf_apply: $kv is not SECTION.KEY=VALUE"
        conf_set "$file" "${sk%.*}" "${sk##*.}" "${kv#*=}"
    done
}

# tsad_bench_conf NAME PORT [SECTION.KEY=VALUE...]: $WORK/NAME.conf, the bench's tsad
# configuration: tests/lib/tsad.sh's TSUs plus the RSA-3072 PKCS#1 v1.5 TSU, store
# $WORK/NAME-store, log level warn, then the given keys set (conf_apply).
tsad_bench_conf() {
    local name=$1 port=$2 extra="$WORK/tsad-extra.conf"
    shift 2
    # RSA-3072 with PKCS#1 v1.5, the scheme `openssl speed rsa3072` and TS_RESP_create_response
    # use, so that the three compare like with like
    cat >"$extra" <<CONF

[tsu bench-rsa]
policy = 1.3.6.1.4.1.55555.1.13
path = /tsa/bench-rsa
certificate = $SOFT_RSA_CERT
chain = $PKI_CA_CHAIN
key_file = $SOFT_RSA_KEY
signature = rsa-pkcs1
digest = sha256
accuracy = 1s
CONF
    tsad_write_conf "$WORK/$name.conf" "$WORK/pki" "$port" "$(chrony_socket "$WORK/chrony")" \
        "$WORK/$name-store" "$extra"
    # loadgen runs up to 64 connections from one address: no per-address limit by default
    conf_apply "$WORK/$name.conf" log.level=warn server.per_ip_limit=0 "$@"
}

# tsad_bench_start NAME [SECTION.KEY=VALUE...]: write $WORK/NAME.conf (tsad_bench_conf) on a
# free port, start tsad on it with the environment words in TSAD_ENV (VAR=VALUE), log
# $WORK/NAME.log, and wait until it issues (/healthz 200: the clock gate opens once the first
# chronyd sample is in). Sets TSAD_PID and TSA_BASE.
TSAD_ENV=()
tsad_bench_start() {
    local name=$1 port i conf="$WORK/$1.conf"
    shift
    port=$(free_port)
    tsad_bench_conf "$name" "$port" "$@"
    : >"$WORK/$name.log"
    daemon_start tsad "$conf" "$WORK/$name.log" \
        env ${TSAD_ENV[@]+"${TSAD_ENV[@]}"} "$BUILD/tsad" -c "$conf" ||
        die "tsad ($name) did not start; see $WORK/$name.log"
    TSAD_PID=$DAEMON_PID
    TSA_BASE="http://127.0.0.1:$port"
    for ((i = 0; i < 50; i++)); do
        if curl -s -o /dev/null -w '%{http_code}' "$TSA_BASE/healthz" | grep -q 200; then
            return 0
        fi
        sleep 0.1
    done
    die "tsad ($name) not healthy; see $WORK/$name.log"
}

# ---- OCSP ----

# ocsp_bench_db DIR N: a synthetic CA database (openssl ca index.txt) of N serials, 1 in 20
# revoked, and the matching loadgen serial list
ocsp_bench_db() {
    local dir=$1 n=$2
    openssl rand -hex $((n * 16)) | fold -w 32 | awk -v idx="$dir/bench-index.txt" \
        -v list="$dir/bench-serials.txt" '
        { s = "4" toupper(substr($0, 2))
          if (NR % 20 == 0) {
              printf "R\t351231235959Z\t240101000000Z,keyCompromise\t%s\tunknown\t/CN=bench %d\n", s, NR > idx
              printf "%s revoked hit\n", s > list
          } else {
              printf "V\t351231235959Z\t\t%s\tunknown\t/CN=bench %d\n", s, NR > idx
              printf "%s good hit\n", s > list
          } }'
}

start_ocspd() {
    local port
    if [[ ! -f tests/lib/ocsp-pki.sh || ! -f tests/lib/ocspd.sh || ! -x $BUILD/ocspd ||
        ! -x $BUILD/ocspctl ]]; then
        note "ocspd not available (needs tests/lib/ocsp-pki.sh, ocspd.sh, $BUILD/ocspd, ocspctl)"
        return 1
    fi
    # shellcheck source=tests/lib/ocsp-pki.sh
    . tests/lib/ocsp-pki.sh
    # shellcheck source=tests/lib/ocspd.sh
    . tests/lib/ocspd.sh
    port=$(free_port)
    OCSP_BASE="http://127.0.0.1:$port"
    # (called inside `if`, where set -e is off: every step checks its status)
    ocsp_pki_demo "$WORK/ocsp-pki" "$OCSP_BASE/" >/dev/null || return 1
    # shellcheck disable=SC1091
    . "$WORK/ocsp-pki/ocsp-pki.env"
    ocspd_write_conf "$WORK/ocspd.conf" "$port" "$WORK/ocspd-store" "$WORK/ocsp-pki" || return 1
    sed -i 's/^level = info/level = warn/' "$WORK/ocspd.conf" || return 1
    # one source (loadgen): measure the responder, not its per-source signing budget
    printf '[limits]\nsign_rate = 0\n' >>"$WORK/ocspd.conf" || return 1
    ocsp_store_demo "$WORK/ocsp-pki" "$WORK/ocspd-store" "$WORK/ocspd.conf" \
        >"$WORK/ocspctl.log" 2>&1 || {
        cat "$WORK/ocspctl.log" >&2
        return 1
    }
    ocsp_bench_db "$WORK" "$NSERIALS" || return 1
    if ! SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/ocspctl" -c "$WORK/ocspd.conf" -u bench \
        import-index qca "$WORK/bench-index.txt" >>"$WORK/ocspctl.log" 2>&1; then
        cat "$WORK/ocspctl.log" >&2
        return 1
    fi
    # the presign of the bench store, timed: this run's code against this run's raw C_Sign
    # rate of the same key (p11_ocsp_p256_2t), process start and login included
    local t0 answers
    t0=$(now)
    if ! answers=$(SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/ocspctl" -c "$WORK/ocspd.conf" \
        -u bench presign 2>>"$WORK/ocspctl.log"); then
        cat "$WORK/ocspctl.log" >&2
        return 1
    fi
    jq -n --argjson a "$answers" --argjson s "$(elapsed "$t0")" \
        '{label: "ocspd_presign", answers: $a, s: $s, rate: ($a / $s)}' >"$OUT/ocspd_presign.json"
    echo "  ocspctl presign of the bench store: $answers answers in $(jq .s "$OUT/ocspd_presign.json") s"
    : >"$WORK/ocspd.log"
    ocspd_start "$WORK/ocspd.conf" "$WORK/ocspd.log" || return 1
}

# ocsp_sets: request sets (hits by POST, by GET, with nonces, a hit/never-issued mix; one hot
# answer: a set of one request, by POST (one.set, also the request of the null server's
# reply) and by GET; uniform over the bench store's NSERIALS serials, SCALE_SET_COUNT requests
# by POST and by GET, as the scale scenario loads its store)
ocsp_sets() {
    local common=(--issuer "$OCSP_CA_CERT" --serials "$WORK/bench-serials.txt"
        --count "$HIT_SET_COUNT")
    local uni=(--issuer "$OCSP_CA_CERT" --serials "$WORK/bench-serials.txt"
        --count "$SCALE_SET_COUNT")
    "$LG" gen-ocsp --out "$WORK/ocsp-post.set" "${common[@]}" --seed 11
    "$LG" gen-ocsp --out "$WORK/ocsp-get.set" "${common[@]}" --get 100 --seed 12
    "$LG" gen-ocsp --out "$WORK/ocsp-nonce.set" "${common[@]}" --nonce 100 --seed 13
    "$LG" gen-ocsp --out "$WORK/ocsp-mix.set" "${common[@]}" --mix hit=90,never=10 \
        --never-status notgood --get 50 --nonce 10 --seed 14
    "$LG" gen-ocsp --out "$WORK/one.set" --issuer "$OCSP_CA_CERT" \
        --serials "$WORK/bench-serials.txt" --count 1 --seed 99
    # the same draw (seed), sent by GET: the same CertID, the same stored answer
    "$LG" gen-ocsp --out "$WORK/one-get.set" --issuer "$OCSP_CA_CERT" \
        --serials "$WORK/bench-serials.txt" --count 1 --get 100 --seed 99
    "$LG" gen-ocsp --out "$WORK/ocsp-uni-post.set" "${uni[@]}" --seed 21
    "$LG" gen-ocsp --out "$WORK/ocsp-uni-get.set" "${uni[@]}" --get 100 --seed 22
}

# The HTTP limit: nullhttpd returning the bytes of a real pre-signed reply. It keeps running
# (NULL_PID, NULL_URL) for the alternating rounds (hot_rounds), beside a second one sized like
# ocspd's connection pool (NULLP_PID, NULLP_URL; --pool-url with ocspd's max_url, 4096) and a
# third that keeps as many replies as the hit set has requests, each different request answered
# with a reply of its own (NULLM_PID, NULLM_URL; --replies: the limit of hits over many answers,
# as ocspd_hit_post and the openssl ocsp comparison load them); null_stop ends them.
null_limit() {
    local port
    curl -s -H 'Content-Type: application/ocsp-request' --data-binary @"$WORK/one.req" \
        "$OCSP_BASE/" -o "$WORK/hit.der"
    port=$(free_port)
    "$BUILD/bench/nullhttpd" --port "$port" --body "$WORK/hit.der" \
        --type application/ocsp-response --threads 2 >"$WORK/nullhttpd.log" 2>&1 &
    NULL_PID=$!
    NULL_URL="http://127.0.0.1:$port/"
    track_pid "$NULL_PID"
    wait_http "$NULL_URL" 10
    port=$(free_port)
    "$BUILD/bench/nullhttpd" --port "$port" --body "$WORK/hit.der" --pool-url 4096 \
        --type application/ocsp-response --threads 2 >"$WORK/nullhttpd-pool.log" 2>&1 &
    NULLP_PID=$!
    NULLP_URL="http://127.0.0.1:$port/"
    track_pid "$NULLP_PID"
    wait_http "$NULLP_URL" 10 || note "null server with ocspd's pool did not start (nullhttpd-pool.log)"
    port=$(free_port)
    "$BUILD/bench/nullhttpd" --port "$port" --body "$WORK/hit.der" --replies "$HIT_SET_COUNT" \
        --type application/ocsp-response --threads 2 >"$WORK/nullhttpd-many.log" 2>&1 &
    NULLM_PID=$!
    NULLM_URL="http://127.0.0.1:$port/"
    track_pid "$NULLM_PID"
    wait_http "$NULLM_URL" 10 || note "null server with many replies did not start (nullhttpd-many.log)"
    echo "== null libmicrohttpd server (pid $NULL_PID, $(stat -c %s "$WORK/hit.der")-byte reply)"
    "$LG" run --label null_http --url "$NULL_URL" --requests "$WORK/one.set" \
        --conns "$CONNS" --warmup "$WARM" --duration "$DUR" --verify-every 0 --pid "$NULL_PID" \
        --json "$OUT/null_http.json" | sed 's/^/  /'
    if kill -0 "${NULLM_PID:-0}" 2>/dev/null; then
        echo "== null server with $HIT_SET_COUNT kept replies (pid $NULLM_PID), the hit set"
        "$LG" run --label null_http_many --url "$NULLM_URL" --requests "$WORK/ocsp-post.set" \
            --conns "$CONNS" --warmup "$WARM" --duration "$DUR" --verify-every 0 \
            --pid "$NULLM_PID" --json "$OUT/null_http_many.json" | sed 's/^/  /'
    fi
}

null_stop() {
    local p
    for p in ${NULL_PID:-} ${NULLP_PID:-} ${NULLM_PID:-}; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    NULL_PID='' NULLP_PID='' NULLM_PID=''
}

# round_errors R: ", errors: LABEL N ..." for the loads of round R that had errors (left out of
# the medians), nothing when none had
round_errors() {
    local f e out=""
    for f in "$OUT"/hotalt_*_"$1".json; do
        [[ -f $f ]] || continue
        e=$(jq '.errors // 0' "$f" 2>/dev/null)
        ((${e:-0} > 0)) && out+=" $(jq -r .label "$f") $e"
    done
    [[ -z $out ]] || printf '; errors (left out of the medians):%s' "$out"
}

# hot_rounds: the null server and ocspd's hot answer (POST, GET) loaded in turn, HOT_ROUNDS
# rounds of HOT_DUR s (both servers up, one loaded at a time): on this shared VM a single pair
# of runs moves by tens of percent, so the report takes the median of the rounds' ratios
hot_rounds() {
    local r half
    ((HOT_ROUNDS > 0)) || return 0
    half=$(jq '.rps / 2 | floor' "$OUT/ocspd_hot_get.json" 2>/dev/null || echo 0)
    echo "== one hot answer / null server, $HOT_ROUNDS alternating rounds of $HOT_DUR s"
    for ((r = 1; r <= HOT_ROUNDS; r++)); do
        "$LG" run --label "hotalt_null_$r" --url "$NULL_URL" --requests "$WORK/one.set" \
            --conns "$CONNS" --warmup 0.5 --duration "$HOT_DUR" --verify-every 0 \
            --pid "$NULL_PID" --json "$OUT/hotalt_null_$r.json" >/dev/null
        if kill -0 "${NULLP_PID:-0}" 2>/dev/null; then
            "$LG" run --label "hotalt_nullpool_$r" --url "$NULLP_URL" --requests "$WORK/one.set" \
                --conns "$CONNS" --warmup 0.5 --duration "$HOT_DUR" --verify-every 0 \
                --pid "$NULLP_PID" --json "$OUT/hotalt_nullpool_$r.json" >/dev/null
        fi
        "$LG" run --label "hotalt_post_$r" --url "$OCSP_BASE/" --requests "$WORK/one.set" \
            --conns "$CONNS" --warmup 0.5 --duration "$HOT_DUR" --verify-every 0 \
            --pid "$OCSPD_PID" --json "$OUT/hotalt_post_$r.json" >/dev/null
        "$LG" run --label "hotalt_get_$r" --url "$OCSP_BASE/" --requests "$WORK/one-get.set" \
            --conns "$CONNS" --warmup 0.5 --duration "$HOT_DUR" --verify-every 0 \
            --pid "$OCSPD_PID" --json "$OUT/hotalt_get_$r.json" >/dev/null
        if kill -0 "${NULLM_PID:-0}" 2>/dev/null; then
            "$LG" run --label "hotalt_nullmany_$r" --url "$NULLM_URL" \
                --requests "$WORK/ocsp-post.set" --conns "$CONNS" --warmup 0.5 \
                --duration "$HOT_DUR" --verify-every 0 --pid "$NULLM_PID" \
                --json "$OUT/hotalt_nullmany_$r.json" >/dev/null
        fi
        "$LG" run --label "hotalt_hit_$r" --url "$OCSP_BASE/" --requests "$WORK/ocsp-post.set" \
            --conns "$CONNS" --warmup 0.5 --duration "$HOT_DUR" --verify-every 0 \
            --pid "$OCSPD_PID" --json "$OUT/hotalt_hit_$r.json" >/dev/null
        # p99 at half of ocspd's maximum hot GET rate, open loop: ocspd, then the null server at
        # the same rate (its limit on this machine)
        if ((half > 0)); then
            "$LG" run --label "hotalt_half_$r" --url "$OCSP_BASE/" --requests "$WORK/one-get.set" \
                --conns "$CONNS" --warmup 0.5 --duration "$HOT_DUR" --verify-every 0 \
                --rate "$half" --pid "$OCSPD_PID" --json "$OUT/hotalt_half_$r.json" >/dev/null
            "$LG" run --label "hotalt_nullhalf_$r" --url "$NULL_URL" --requests "$WORK/one-get.set" \
                --conns "$CONNS" --warmup 0.5 --duration "$HOT_DUR" --verify-every 0 \
                --rate "$half" --pid "$NULL_PID" --json "$OUT/hotalt_nullhalf_$r.json" >/dev/null
        fi
        if [[ -n $NETNS && -n ${PEER_PID:-} ]]; then
            ip netns exec "$NETNS" "$LG" run --label "hotalt_peer_$r" --url "$PEER_URL" \
                --requests "$WORK/ocsp-post.set" --conns "$CONNS" --warmup 0.5 \
                --duration "$HOT_DUR" --timeout 10 --verify-every 0 --pid "$PEER_PID" \
                --json "$OUT/hotalt_peer_$r.json" >/dev/null
        fi
        echo "  round $r: null $(jq .rps "$OUT/hotalt_null_$r.json")/s" \
            "(with ocspd's pool $(jq .rps "$OUT/hotalt_nullpool_$r.json" 2>/dev/null)/s)," \
            "ocspd POST $(jq .rps "$OUT/hotalt_post_$r.json")/s, GET $(jq .rps "$OUT/hotalt_get_$r.json")/s;" \
            "hit set: null with $HIT_SET_COUNT replies $(jq .rps "$OUT/hotalt_nullmany_$r.json" 2>/dev/null)/s," \
            "ocspd $(jq .rps "$OUT/hotalt_hit_$r.json" 2>/dev/null)/s;" \
            "openssl ocsp -multi 2 $(jq .rps "$OUT/hotalt_peer_$r.json" 2>/dev/null)/s;" \
            "p99 at $half/s: ocspd $(jq .latency_ms.p99 "$OUT/hotalt_half_$r.json" 2>/dev/null) ms," \
            "null $(jq .latency_ms.p99 "$OUT/hotalt_nullhalf_$r.json" 2>/dev/null) ms$(round_errors "$r")"
    done
}

# ocsp_metric NAME [BASE]: the value of one series of the /metrics of the ocspd at BASE
# ($OCSP_BASE by default), 0 when missing
ocsp_metric() {
    curl -s --max-time 5 "${2:-$OCSP_BASE}/metrics" |
        awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
}

# front_mark [BASE]: "HITS ANSWERS", the front cache's hits and the pre-signed answers so far;
# front_share MARK [BASE]: the share of the pre-signed answers since MARK sent from the front
# cache (the rest took the full path)
front_mark() {
    echo "$(ocsp_metric 'ocsp_front_cache_total{result="hit"}' "$@")" \
        "$(ocsp_metric 'ocsp_responses_total{source="presigned"}' "$@")"
}
front_share() {
    awk -v m="$1" -v n="$(front_mark "${@:2}")" 'BEGIN { split(m, a, " "); split(n, b, " ")
        printf "%.4f", (b[2] > a[2]) ? (b[1] - a[1]) / (b[2] - a[2]) : 0 }'
}

ocsp_scenarios() {
    local ca_args=(--ca "$OCSP_CA_CHAIN" --untrusted "$WORK/ocsp-untrusted.pem") rps
    echo "== ocspd (pid $OCSPD_PID)"
    # one hot answer: every request the same one (the null server's reply)
    load ocspd_hot_post "$OCSP_BASE/" "$WORK/one.set" "$OCSPD_PID" "${ca_args[@]}"
    load ocspd_hot_get "$OCSP_BASE/" "$WORK/one-get.set" "$OCSPD_PID" "${ca_args[@]}"
    # HIT_SET_COUNT requests over the bench serials, cycled; the share of the POST run's answers
    # sent from the front cache (the rest took the full path: the ratios to the null server
    # keeping as many replies compare like with like only when it is near 1)
    local mark
    mark=$(front_mark)
    load ocspd_hit_post "$OCSP_BASE/" "$WORK/ocsp-post.set" "$OCSPD_PID" "${ca_args[@]}"
    limit_add ocspd_hit_front_share "$(front_share "$mark")" share \
        "ocspd_hit_post: answers sent from the front cache / pre-signed answers"
    load ocspd_hit_get "$OCSP_BASE/" "$WORK/ocsp-get.set" "$OCSPD_PID" "${ca_args[@]}"
    # uniform over all NSERIALS serials of the store: the small store of the scale comparison
    load ocspd_uni_small_post "$OCSP_BASE/" "$WORK/ocsp-uni-post.set" "$OCSPD_PID" \
        "${ca_args[@]}"
    load ocspd_uni_small_get "$OCSP_BASE/" "$WORK/ocsp-uni-get.set" "$OCSPD_PID" \
        "${ca_args[@]}"
    # the nonce answers' CPU is held to a raw C_Sign's measured right before and right after
    # them (this VM's speed moves within minutes; the limits at the start are minutes away)
    ocsp_p11speed "$WORK/p11-nonce-before.json"
    load ocspd_nonce "$OCSP_BASE/" "$WORK/ocsp-nonce.set" "$OCSPD_PID" "${ca_args[@]}"
    ocsp_p11speed "$WORK/p11-nonce-after.json"
    limit_add p11_ocsp_p256_2t_cpu_us_beside "$(jq -s 'map(.cpu_us_per_sign) | add / length' \
        "$WORK/p11-nonce-before.json" "$WORK/p11-nonce-after.json" 2>/dev/null || echo 0)" \
        us/sign "SoftHSM2 C_Sign (ocspd's key), process CPU per signature, 2 sessions: the mean of runs right before and right after the nonce load"
    if ((!QUICK)); then
        load ocspd_mix "$OCSP_BASE/" "$WORK/ocsp-mix.set" "$OCSPD_PID" "${ca_args[@]}"
    fi
    rps=$(jq '.rps / 2 | floor' "$OUT/ocspd_hot_get.json")
    if ((rps > 0)); then
        load ocspd_hot_get_half "$OCSP_BASE/" "$WORK/one-get.set" "$OCSPD_PID" \
            "${ca_args[@]}" --rate "$rps"
    fi
}

# ocspd's on-demand nonce answers with its signer behind the simulated network HSM (same
# store, same token; a port of its own): closed loop, then open loop at 90 % of the capacity.
nethsm_ocsp() {
    local ca_args=(--ca "$OCSP_CA_CHAIN" --untrusted "$WORK/ocsp-untrusted.pem") port base
    port=$(free_port)
    base="http://127.0.0.1:$port/"
    cp "$WORK/ocspd.conf" "$WORK/ocspd-nethsm.conf"
    conf_apply "$WORK/ocspd-nethsm.conf" "server.listen=127.0.0.1:$port" \
        "signer.pkcs11_module=$P11DELAY_SO" signer.workers=16
    : >"$WORK/ocspd-nethsm.log"
    # (assignments before a function call reach the processes it starts)
    if ! P11DELAY_MODULE=$OCSP_P11_MODULE P11DELAY_LATENCY_MS=$NETHSM_MS \
        P11DELAY_PARALLEL=$NETHSM_PARALLEL ocspd_start "$WORK/ocspd-nethsm.conf" \
        "$WORK/ocspd-nethsm.log"; then
        ocspd_stop || true
        note "ocspd on the simulated network HSM did not start: skipped"
        return 0
    fi
    echo "== ocspd, simulated network HSM: $NETHSM_PARALLEL x $NETHSM_MS ms (pid $OCSPD_PID)"
    load ocspd_nethsm_nonce "$base" "$WORK/ocsp-nonce.set" "$OCSPD_PID" "${ca_args[@]}"
    load ocspd_nethsm_nonce_open "$base" "$WORK/ocsp-nonce.set" "$OCSPD_PID" "${ca_args[@]}" \
        --rate "$NETHSM_RATE"
    ocspd_stop
}

# ocsp_p11_limit: the C_Sign rate of ocspd's own key (the delegated responder's, on the ocsp
# token) with 2 sessions, and the CPU one raw signature of it costs with 2 sessions (the nonce
# answer's yardstick, "one raw signature of the key", at the concurrency the bench's ocspd signs
# with: workers = 2) and with 1 (SoftHSM2's own contention: measured 72.9 us a signature with 1
# session, 105.5 us with 2, in one run)
# ocsp_p11speed JSON: the raw C_Sign rate and CPU of ocspd's key, 2 sessions, LIMIT_S seconds
ocsp_p11speed() {
    SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/bench/p11speed" --module "$OCSP_P11_MODULE" \
        --token "$OCSP_P11_TOKEN" --pin-file "$OCSP_P11_PIN_FILE" --key "$OCSP_SIGNER_LABEL" \
        --threads 2 --duration "$LIMIT_S" --json "$1" >/dev/null
}

ocsp_p11_limit() {
    local threads
    for threads in 1 2; do
        SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/bench/p11speed" --module "$OCSP_P11_MODULE" \
            --token "$OCSP_P11_TOKEN" --pin-file "$OCSP_P11_PIN_FILE" --key "$OCSP_SIGNER_LABEL" \
            --threads "$threads" --duration "$LIMIT_S" --json "$OUT/p11-ocsp-$threads.json" >/dev/null
    done
    limit_add p11_ocsp_p256_2t "$(jq .signs_per_s "$OUT/p11-ocsp-2.json")" sign/s \
        "SoftHSM2 C_Sign CKM_ECDSA (ocsp token), 2 sessions"
    limit_add p11_ocsp_p256_2t_cpu_us "$(jq .cpu_us_per_sign "$OUT/p11-ocsp-2.json")" us/sign \
        "SoftHSM2 C_Sign CKM_ECDSA (ocsp token, ocspd's key), process CPU per signature (2 sessions)"
    limit_add p11_ocsp_p256_cpu_us "$(jq .cpu_us_per_sign "$OUT/p11-ocsp-1.json")" us/sign \
        "SoftHSM2 C_Sign CKM_ECDSA (ocsp token, ocspd's key), process CPU per signature (1 session)"
}

netns_stop() {
    local p i
    # Everything in our namespace was started by this run: the peer and its worker processes.
    # The workers are signalled too: `openssl ocsp -multi` does not pass SIGTERM on to them
    # while it waits for them (OpenSSL 3.0), so the parent alone would never exit.
    if [[ -n $NETNS ]]; then
        for p in $(ip netns pids "$NETNS" 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done
    fi
    if [[ -n $PEER_PID ]]; then
        kill -TERM "$PEER_PID" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            _common_pid_alive "$PEER_PID" || break
            sleep 0.1
        done
        if [[ -n $NETNS ]]; then
            for p in $(ip netns pids "$NETNS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
        fi
        kill -KILL "$PEER_PID" 2>/dev/null || true
        wait "$PEER_PID" 2>/dev/null || true
        PEER_PID=""
    fi
    if [[ -n $NETNS ]]; then
        ip netns del "$NETNS" 2>/dev/null || true
        NETNS=""
    fi
}

# The peer: `openssl ocsp -multi 2` on the same CA database (demo + bench serials), signing
# with a software P-256 delegated responder key, inside a private network namespace.
ocsp_peer() {
    local port=8080 i
    NETNS="bench$$"
    if ! ip netns add "$NETNS" 2>/dev/null; then
        NETNS=""
        note "openssl ocsp peer skipped: cannot create a network namespace (needs root)"
        return 0
    fi
    ip netns exec "$NETNS" ip link set lo up
    cat "$OCSP_CA_INDEX" "$WORK/bench-index.txt" >"$WORK/peer-index.txt"
    ip netns exec "$NETNS" openssl ocsp -index "$WORK/peer-index.txt" -port "$port" \
        -CA "$OCSP_CA_CERT" -rsigner "$WORK/peer-signer.pem" -rkey "$WORK/peer-signer.key" \
        -multi 2 -nmin 60 -ignore_err >"$WORK/peer.log" 2>&1 &
    PEER_PID=$!
    PEER_URL="http://127.0.0.1:$port/"
    for ((i = 0; i < 50; i++)); do
        ip netns exec "$NETNS" curl -s -o /dev/null -H 'Content-Type: application/ocsp-request' \
            --data-binary @"$WORK/one.req" "http://127.0.0.1:$port/" && break
        sleep 0.1
    done
    echo "== peer: openssl ocsp -multi 2 (pid $PEER_PID, namespace $NETNS)"
    ip netns exec "$NETNS" "$LG" run --label peer_openssl_ocsp --url "http://127.0.0.1:$port/" \
        --requests "$WORK/ocsp-post.set" --conns "$CONNS" --warmup "$WARM" --duration "$DUR" \
        --timeout 10 --verify-every "$VERIFY_EVERY" --pid "$PEER_PID" \
        --ca "$OCSP_CA_CHAIN" --untrusted "$WORK/ocsp-untrusted.pem" \
        --json "$OUT/peer_openssl_ocsp.json" | sed 's/^/  /'
}

ocsp_prepare_peer_signer() {
    openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$WORK/peer-signer.key"
    openssl pkey -in "$WORK/peer-signer.key" -pubout -out "$WORK/peer-signer.pub"
    OCSP_AIA_URL=$OCSP_AIA_URL openssl x509 -new -force_pubkey "$WORK/peer-signer.pub" \
        -subj "/C=RO/O=Bench/CN=Bench openssl ocsp responder" -CA "$OCSP_CA_CERT" \
        -CAkey "$OCSP_CA_KEY" -set_serial "0x$(openssl rand -hex 16)" -days 2 -sha256 \
        -extfile "$OCSP_CA_DIR/ca.cnf" -extensions v3_ocsp -out "$WORK/peer-signer.pem"
    cat "$OCSP_SIGNER_CERT" "$WORK/peer-signer.pem" >"$WORK/ocsp-untrusted.pem"
}

run_ocsp() {
    if ! start_ocspd; then
        note "ocspd not available: OCSP scenarios skipped"
        return 0
    fi
    ocsp_sets
    # the one request (hot answer) as a body, for the null server's reply and the probes
    tail -c +25 "$WORK/one.set" >"$WORK/one.req"
    ocsp_prepare_peer_signer
    ocsp_p11_limit
    null_limit
    ocsp_scenarios
    # the peer stays up through the alternating rounds, so the 10 x target is held to the
    # median of rounds run minutes apart at most, like the null server's ratios
    ocsp_peer
    hot_rounds
    netns_stop
    null_stop
    ocspd_stop
    nethsm_ocsp
    # last: it sources its own PKI's environment over the demo's OCSP_* variables
    scale_scenario
}

# ---- report ----

# REPORT_JQ: the report (report.json) from the machine, the limits, the loadgen runs and notes.
# shellcheck disable=SC2016 # a jq program: its $names are jq's
REPORT_JQ='
def lim($n): ($l[0] | map(select(.name == $n)) | .[0].value) // null;
def run($n): ($s[0] | map(select(.label == $n)) | .[0]) // null;
def ratio($a; $b): if $a == null or $b == null or $b == 0 then null else $a / $b end;
def rpsof($n): (run($n) | if . == null then null else .rps end);
# a round load that had errors is left out of the medians (its rate is not the server at work)
def okrps($n): (run($n) | if . == null or (.errors // 0) > 0 then null else .rps end);
def median_of: map(select(. != null)) | sort
               | if length == 0 then null else .[(length - 1) / 2 | floor] end;
def hitn: ($ENV.HIT_SET_COUNT // "the");
def hotn: [$s[0][] | select(.label | startswith("hotalt_null_"))] | length;
def hotmedian_of($m; $null): [range(1; hotn + 1) as $r
                     | ratio(okrps("hotalt_\($m)_\($r)"); okrps("hotalt_\($null)_\($r)"))]
                   | median_of;
def hotmedian($m): hotmedian_of($m; "null");
def cpuof($n): (run($n) | if . == null or .server_cpu_us_per_req == 0 or (.errors // 0) > 0 then null
                          else .server_cpu_us_per_req end);
def scalen: [$s[0][] | select(.label | startswith("scalealt_scale_post_"))] | length;
def scalemedian($a; $b): [range(1; scalen + 1) as $r
                           | ratio(okrps("scalealt_\($a)_\($r)"); okrps("scalealt_\($b)_\($r)"))]
                         | median_of;
def scalecpu($m): [range(1; scalen + 1) as $r | cpuof("scalealt_\($m)_\($r)")] | median_of;
def sign_us($one; $two): if lim($one) then 1e6 / lim($one)
                         elif lim($two) then 2e6 / lim($two) else null end;
def row($n; $ln; $lv; $pn; $pv):
  run($n) as $r
  | if $r == null then empty else
    {name: $n, rps: $r.rps, p50: $r.latency_ms.p50, p90: $r.latency_ms.p90,
     p99: $r.latency_ms.p99, p999: $r.latency_ms.p999, max: $r.latency_ms.max,
     cpu_us: (if $r.server_cpu_us_per_req > 0 then $r.server_cpu_us_per_req else null end),
     errors: $r.errors, verified: $r.verified, mode: $r.mode,
     limit_name: $ln, limit_value: $lv, limit_ratio: ratio($r.rps; $lv),
     peer_name: $pn, peer_value: $pv, peer_ratio: ratio($r.rps; $pv)} end;
def tsa_peer($k): if lim("tsresp_\($k)_2t") then "TS_RESP_create_response 2t" else null end;
def p50of($n): (run($n) | if . == null then null else .latency_ms.p50 end);
def plus($a; $b): if $a == null or $b == null then null else $a + $b end;
def p99of($n): (run($n) | if . == null then null else .latency_ms.p99 end);
def halfp99($m): [range(1; hotn + 1) as $r | run("hotalt_\($m)_\($r)")
                  | select(. != null and (.errors // 0) == 0) | .latency_ms.p99] | median_of;
def sc: ($x[0] // {});
# the CPU per read of storeprobe on the scale ($k = "scale") or bench ("small") store, when every
# read found its answer
def probe_us($k): sc.store_probe[$k] as $p
                  | if ($p.found // -1) == ($p.reads // -2) then $p.cpu_us_per_read else null end;
# the bound in one round r: the CPU of the hot answer plus what building a reply costs the null
# server in that round (the same bytes sent either way) plus the store read
def boundcpu_r($hot; $r): [cpuof("scalealt_\($hot)_\($r)"), cpuof("scalealt_null_fresh_\($r)"),
                           cpuof("scalealt_null_\($r)"), probe_us("scale")] as [$h, $f, $n, $p]
                         | if $h == null or $f == null or $n == null or $p == null then null
                           else $h + $f - $n + $p end;
# the CPU of load $m in each round against that bound of $hot, the median ($m = $hot: the most
# the uniform / hot-answer ratio can reach in CPU)
def vsbound($m; $hot): [range(1; scalen + 1) as $r
                        | ratio(cpuof("scalealt_\($m)_\($r)"); boundcpu_r($hot; $r))] | median_of;
def built: if sc.reused then " [store built \(sc.build.built_at), reused]"
           else " [store built in this run]" end;
def mib($k): if $k == null then null else $k / 1024 end;
{
  machine: $m,
  limits: $l[0],
  runs: $s[0],
  notes: $n[0],
  scale: (if sc == {} then null else sc end),
  rows: [
    row("tsad_soft_p256"; "openssl speed 2p"; lim("speed_p256_2p"); tsa_peer("p256");
        lim("tsresp_p256_2t")),
    row("tsad_soft_p256_c8"; "openssl speed 2p"; lim("speed_p256_2p"); tsa_peer("p256");
        lim("tsresp_p256_2t")),
    row("tsad_soft_p256_c64"; "openssl speed 2p"; lim("speed_p256_2p"); tsa_peer("p256");
        lim("tsresp_p256_2t")),
    row("tsad_hsm_p256"; "PKCS#11 C_Sign 2 sessions"; lim("p11_p256_2t"); tsa_peer("p256");
        lim("tsresp_p256_2t")),
    row("tsad_soft_rsa3072"; "openssl speed 2p"; lim("speed_rsa3072_2p"); tsa_peer("rsa3072");
        lim("tsresp_rsa3072_2t")),
    row("tsad_soft_p256_half"; null; null; null; null),
    row("tsad_soft_p256_https"; "openssl speed 2p"; lim("speed_p256_2p"); "HTTP keep-alive";
        rpsof("tsad_soft_p256")),
    row("tsad_soft_p256_close"; "openssl speed 2p"; lim("speed_p256_2p"); "HTTP keep-alive";
        rpsof("tsad_soft_p256")),
    row("tsad_soft_p256_https_close"; "openssl speed 2p"; lim("speed_p256_2p");
        "HTTP new connections"; rpsof("tsad_soft_p256_close")),
    row("tsad_nojournal_p256_c8"; "openssl speed 2p"; lim("speed_p256_2p"); "journal = yes";
        rpsof("tsad_soft_p256_c8")),
    row("tsad_nojournal_p256"; "openssl speed 2p"; lim("speed_p256_2p"); "journal = yes";
        rpsof("tsad_soft_p256")),
    row("tsad_nethsm_p256"; "net HSM capacity"; lim("nethsm_capacity"); null; null),
    row("tsad_nethsm_p256_open"; null; null; null; null),
    row("null_http"; null; null; null; null),
    row("null_http_many"; "null MHD server"; rpsof("null_http"); "openssl ocsp -multi 2";
        rpsof("peer_openssl_ocsp")),
    row("ocspd_hot_post"; "null MHD server"; rpsof("null_http"); "openssl ocsp -multi 2";
        rpsof("peer_openssl_ocsp")),
    row("ocspd_hot_get"; "null MHD server"; rpsof("null_http"); "openssl ocsp -multi 2";
        rpsof("peer_openssl_ocsp")),
    row("ocspd_hit_post"; "null MHD server"; rpsof("null_http"); "openssl ocsp -multi 2";
        rpsof("peer_openssl_ocsp")),
    row("ocspd_hit_get"; "null MHD server"; rpsof("null_http"); "openssl ocsp -multi 2";
        rpsof("peer_openssl_ocsp")),
    row("ocspd_uni_small_post"; "one hot answer"; rpsof("ocspd_hot_post"); null; null),
    row("ocspd_uni_small_get"; "one hot answer"; rpsof("ocspd_hot_get"); null; null),
    row("ocspd_scale_post"; "uniform, small store"; rpsof("ocspd_uni_small_post");
        "one hot answer"; rpsof("ocspd_hot_post")),
    row("ocspd_scale_get"; "uniform, small store"; rpsof("ocspd_uni_small_get");
        "one hot answer"; rpsof("ocspd_hot_get")),
    row("ocspd_nonce"; "PKCS#11 C_Sign 2 sessions"; lim("p11_ocsp_p256_2t");
        "openssl ocsp -multi 2"; rpsof("peer_openssl_ocsp")),
    row("ocspd_mix"; "null MHD server"; rpsof("null_http"); "openssl ocsp -multi 2";
        rpsof("peer_openssl_ocsp")),
    row("ocspd_hot_get_half"; null; null; null; null),
    row("ocspd_nethsm_nonce"; "net HSM capacity"; lim("nethsm_capacity"); null; null),
    row("ocspd_nethsm_nonce_open"; null; null; null; null),
    row("peer_openssl_ocsp"; null; null; null; null),
    row("tsad_slowloris_base"; null; null; null; null),
    row("tsad_slowloris_one"; null; null; null; null),
    row("tsad_slowloris_many"; null; null; null; null)
  ],
  derived: [
    {what: "tsad soft P-256 over HTTPS, kept alive: server CPU per token / over HTTP",
     value: ratio(cpuof("tsad_soft_p256_https"); cpuof("tsad_soft_p256"))},
    {what: "tsad soft P-256 over HTTPS, a connection per request: server CPU per token / over HTTP",
     value: ratio(cpuof("tsad_soft_p256_https_close"); cpuof("tsad_soft_p256_close"))},
    {what: "tsad p50 beside slow and idle connections from one address / unloaded",
     value: ratio(p50of("tsad_slowloris_one"); p50of("tsad_slowloris_base")), target: "<= 2"},
    {what: "tsad p99 beside slow and idle connections from one address / unloaded",
     value: ratio(p99of("tsad_slowloris_one"); p99of("tsad_slowloris_base")), target: "<= 2"},
    {what: "tsad p50 beside slow and idle connections from 200 addresses / unloaded",
     value: ratio(p50of("tsad_slowloris_many"); p50of("tsad_slowloris_base")), target: "<= 2"},
    {what: "tsad p99 beside slow and idle connections from 200 addresses / unloaded",
     value: ratio(p99of("tsad_slowloris_many"); p99of("tsad_slowloris_base")), target: "<= 2"},
    {what: "tsad soft P-256: server CPU per token / one bare P-256 signature",
     value: ratio(cpuof("tsad_soft_p256"); sign_us("speed_p256_1p"; "speed_p256_2p")),
     target: "<= 1.5"},
    {what: "tsad SoftHSM2 P-256: server CPU per token / one PKCS#11 signature",
     value: ratio(cpuof("tsad_hsm_p256"); sign_us("p11_p256_1t"; "p11_p256_2t")),
     target: "<= 1.5"},
    {what: "tsad soft RSA-3072: server CPU per token / one bare RSA-3072 signature",
     value: ratio(cpuof("tsad_soft_rsa3072"); sign_us("speed_rsa3072_1p"; "speed_rsa3072_2p")),
     target: "<= 1.5"},
    {what: "tsad soft P-256 at 8 connections: server CPU per token / one bare P-256 signature",
     value: ratio(cpuof("tsad_soft_p256_c8"); sign_us("speed_p256_1p"; "speed_p256_2p")),
     target: "<= 1.5"},
    {what: "tsad soft P-256 at 64 connections: server CPU per token / one bare P-256 signature",
     value: ratio(cpuof("tsad_soft_p256_c64"); sign_us("speed_p256_1p"; "speed_p256_2p")),
     target: "<= 1.5"},
    {what: "tsad SoftHSM2 P-256: server CPU per token / CPU of one raw C_Sign (p11speed)",
     value: ratio(cpuof("tsad_hsm_p256"); lim("p11_p256_cpu_us")), target: null},
    {what: "tsad soft P-256 p50 at 8 connections / floor_journal_8 (O_DSYNC overwrite, 8 x 700 B)",
     value: ratio(p50of("tsad_soft_p256_c8"); lim("floor_journal_8")), target: null},
    {what: "tsad soft P-256 p50 at 8 connections / floor_lmdb_8 (LMDB commit, 8 x 700 B)",
     value: ratio(p50of("tsad_soft_p256_c8"); lim("floor_lmdb_8")), target: null},
    {what: "A/B, 8 connections: tsad throughput with the journal / with LMDB commits (journal = no)",
     value: ratio(rpsof("tsad_soft_p256_c8"); rpsof("tsad_nojournal_p256_c8")), target: null},
    {what: "A/B, 8 connections: tsad p50 with the journal / with LMDB commits (journal = no)",
     value: ratio(p50of("tsad_soft_p256_c8"); p50of("tsad_nojournal_p256_c8")), target: null},
    {what: "tsad journal = no, p50 at 8 connections / floor_lmdb_8",
     value: ratio(p50of("tsad_nojournal_p256_c8"); lim("floor_lmdb_8")), target: null},
    {what: "tsad simulated network HSM: throughput / HSM capacity",
     value: ratio(rpsof("tsad_nethsm_p256"); lim("nethsm_capacity")), target: null},
    {what: "tsad simulated network HSM: p50 at 90 % of capacity / (HSM round trip + floor_journal_8)",
     value: ratio(p50of("tsad_nethsm_p256_open"); plus(lim("nethsm_latency"); lim("floor_journal_8"))),
     target: null},
    {what: "ocspd nonce, simulated network HSM: throughput / HSM capacity",
     value: ratio(rpsof("ocspd_nethsm_nonce"); lim("nethsm_capacity")), target: null},
    {what: "ocspd nonce, simulated network HSM: p50 at 90 % of capacity / HSM round trip (no durable commit)",
     value: ratio(p50of("ocspd_nethsm_nonce_open"); lim("nethsm_latency")), target: null},
    {what: "tsad soft P-256 throughput / TS_RESP_create_response 1 thread",
     value: ratio(rpsof("tsad_soft_p256"); lim("tsresp_p256_1t")), target: null},
    {what: "ocspd hit POST throughput, one hot answer / null libmicrohttpd server (same bytes), one run each",
     value: ratio(rpsof("ocspd_hot_post"); rpsof("null_http")), target: null},
    {what: "ocspd hit GET throughput, one hot answer / null libmicrohttpd server (same bytes), one run each",
     value: ratio(rpsof("ocspd_hot_get"); rpsof("null_http")), target: null},
    {what: "ocspd hit POST throughput, one hot answer / null libmicrohttpd server (same bytes), median of \(hotn) alternating rounds",
     value: hotmedian("post"), target: ">= 0.85"},
    {what: "ocspd hit GET throughput, one hot answer / null libmicrohttpd server (same bytes), median of \(hotn) alternating rounds",
     value: hotmedian("get"), target: ">= 0.85"},
    {what: "ocspd hit POST throughput, one hot answer / null server with the connection pool of ocspd (nullhttpd --pool-url 4096; the default is 32 KiB), median of \(hotn) alternating rounds",
     value: hotmedian_of("post"; "nullpool"), target: null},
    {what: "ocspd hit GET throughput, one hot answer / null server with the connection pool of ocspd, median of \(hotn) alternating rounds",
     value: hotmedian_of("get"; "nullpool"), target: null},
    {what: "null server with the connection pool of ocspd / null server with the default pool, median of \(hotn) alternating rounds",
     value: hotmedian_of("nullpool"; "null"), target: null},
    {what: "ocspd hit POST throughput, 5000 requests over the bench serials / null libmicrohttpd server",
     value: ratio(rpsof("ocspd_hit_post"); rpsof("null_http")), target: null},
    {what: "ocspd hit GET throughput, 5000 requests over the bench serials / null libmicrohttpd server",
     value: ratio(rpsof("ocspd_hit_get"); rpsof("null_http")), target: null},
    {what: "null server CPU per request / ocspd hit GET CPU per request (one hot answer)",
     value: ratio(cpuof("null_http"); cpuof("ocspd_hot_get")), target: null},
    {what: "ocspd hit POST throughput / openssl ocsp -multi 2 (same CA database and requests), one run each",
     value: ratio(rpsof("ocspd_hit_post"); rpsof("peer_openssl_ocsp")), target: null},
    {what: "ocspd hit POST throughput, the hit set / openssl ocsp -multi 2 (same CA database and requests), median of \(hotn) alternating rounds",
     value: hotmedian_of("hit"; "peer"), target: ">= 10"},
    {what: "null server keeping \(hitn) replies / openssl ocsp -multi 2, the hit set, median of \(hotn) alternating rounds (the most a responder on libmicrohttpd reaches against the peer)",
     value: hotmedian_of("nullmany"; "peer"), target: null},
    {what: "null server keeping \(hitn) replies, each different request answered with a reply of its own / openssl ocsp -multi 2, the hit set (the most a responder on libmicrohttpd reaches against the peer on these requests)",
     value: ratio(rpsof("null_http_many"); rpsof("peer_openssl_ocsp")), target: null},
    {what: "null server keeping \(hitn) replies (the hit set) / plain null server (one reply), median of \(hotn) alternating rounds",
     value: hotmedian_of("nullmany"; "null"), target: null},
    {what: "ocspd hit POST throughput, the hit set / null server keeping \(hitn) replies, median of \(hotn) alternating rounds",
     value: hotmedian_of("hit"; "nullmany"), target: null},
    {what: "ocspd hit POST run over the hit set: share of its answers sent from the front cache (the rest took the full path)",
     value: lim("ocspd_hit_front_share"), target: null},
    {what: "ocspd nonce: server CPU per answer / CPU of one raw C_Sign of its key (p11speed, SoftHSM2 P-256, 1 session)",
     value: ratio(cpuof("ocspd_nonce"); lim("p11_ocsp_p256_cpu_us")), target: null},
    {what: "ocspd nonce (2 signer workers): server CPU per answer / CPU of one raw C_Sign of its key at the same concurrency (p11speed, SoftHSM2 P-256, 2 sessions, the mean of runs right before and right after the nonce load)",
     value: ratio(cpuof("ocspd_nonce"); lim("p11_ocsp_p256_2t_cpu_us_beside")), target: "<= 1.5"},
    {what: "the same against the raw C_Sign measured with the other limits at the start of the run (p11_ocsp_p256_2t_cpu_us)",
     value: ratio(cpuof("ocspd_nonce"); lim("p11_ocsp_p256_2t_cpu_us")), target: null},
    {what: "ocspctl presign of the bench store (\(run("ocspd_presign").answers) answers in \(run("ocspd_presign").s) s, process start and login included) answers/s / raw C_Sign rate of the same key (p11_ocsp_p256_2t, SoftHSM2, 2 sessions)",
     value: ratio(run("ocspd_presign").rate; lim("p11_ocsp_p256_2t")), target: null},
    {what: "ocspctl presign of \(sc.presign.answers // "-") answers (\(sc.presign.certs // "-") certificates of the scale index imported into a scratch store; \(sc.presign.s // "-") s, process start and login included) answers/s / raw C_Sign rate of its key (p11speed, SoftHSM2, 2 sessions: the mean of \(sc.presign.raw_before // "-")/s right before and \(sc.presign.raw_after // "-")/s right after)",
     value: ratio(sc.presign.rate; sc.presign.raw), target: ">= 0.9"},
    {what: "the same against the raw rate measured with the other limits at the start of the run (p11_ocsp_p256_2t)",
     value: ratio(sc.presign.rate; lim("p11_ocsp_p256_2t")), target: null},
    {what: "ocspd uniform over \(sc.n) certificates / uniform over the \(sc.small_n) of the bench store, POST, one run each",
     value: ratio(rpsof("ocspd_scale_post"); rpsof("ocspd_uni_small_post")), target: null},
    {what: "ocspd uniform over \(sc.n) certificates / uniform over the \(sc.small_n) of the bench store, GET, one run each",
     value: ratio(rpsof("ocspd_scale_get"); rpsof("ocspd_uni_small_get")), target: null},
    {what: "ocspd uniform over \(sc.n) certificates / one hot answer, POST, one run each",
     value: ratio(rpsof("ocspd_scale_post"); rpsof("ocspd_hot_post")), target: null},
    {what: "ocspd uniform over \(sc.n) certificates / one hot answer, GET, one run each",
     value: ratio(rpsof("ocspd_scale_get"); rpsof("ocspd_hot_get")), target: null},
    {what: "ocspd uniform over \(sc.n) certificates / uniform over the \(sc.small_n) of the bench store, POST, median of \(scalen) alternating rounds",
     value: scalemedian("scale_post"; "small_post"), target: ">= 0.9"},
    {what: "ocspd uniform over \(sc.n) certificates / uniform over the \(sc.small_n) of the bench store, GET, median of \(scalen) alternating rounds",
     value: scalemedian("scale_get"; "small_get"), target: ">= 0.9"},
    {what: "ocspd uniform over \(sc.n) certificates / one hot answer, POST, median of \(scalen) alternating rounds",
     value: scalemedian("scale_post"; "hot_post"), target: ">= 0.9"},
    {what: "ocspd uniform over \(sc.n) certificates / one hot answer, GET, median of \(scalen) alternating rounds",
     value: scalemedian("scale_get"; "hot_get"), target: ">= 0.9"},
    {what: "ocspd uniform over \(sc.n) in the scale rounds: share of its answers sent from the front cache (a request never seen before cannot be)",
     value: lim("scale_front_share"), target: null},
    {what: "null server building a new reply for every request (nullhttpd --fresh: the limit of an answer not kept ready) / plain null server (both with ocspd headers), median of \(scalen) alternating rounds",
     value: scalemedian("null_fresh"; "null"), target: null},
    {what: "ocspd uniform over \(sc.n) certificates / null server building a new reply for every request, POST, median of \(scalen) alternating rounds",
     value: scalemedian("scale_post"; "null_fresh"), target: null},
    {what: "ocspd uniform over \(sc.n) certificates / null server building a new reply for every request, GET, median of \(scalen) alternating rounds",
     value: scalemedian("scale_get"; "null_fresh"), target: null},
    {what: "ocspd one hot answer / plain null server, POST, median of the scale rounds",
     value: scalemedian("hot_post"; "null"), target: null},
    {what: "store read of an answer not kept ready (bench/storeprobe: the stored answer, one lookup, one thread), CPU us: over \(sc.n) certificates",
     value: probe_us("scale"), target: null},
    {what: "store read of an answer not kept ready (bench/storeprobe: the stored answer, one lookup, one thread), CPU us: over the \(sc.small_n) of the bench store",
     value: probe_us("small"), target: null},
    {what: "server CPU per answer, one hot answer / the least an answer of the uniform load over \(sc.n) can cost by the limit probes (the hot answer + what building a reply for the request costs the null server, the same bytes sent + the store read over \(sc.n), storeprobe), POST, median of the scale rounds: in CPU the uniform / hot-answer ratio cannot pass it (the hot answer is sent ready from the front cache; a request never seen before is neither ready nor cached); throughput also moves with the share of the 2 cores the load generator takes",
     value: vsbound("hot_post"; "hot_post"), target: null},
    {what: "the same, GET",
     value: vsbound("hot_get"; "hot_get"), target: null},
    {what: "ocspd uniform over \(sc.n) server CPU per answer / that least cost, POST, median of the scale rounds: what ocspd spends beyond the probes (the request decoded, the issuer and front-cache lookups, the store read under load), 1 = nothing",
     value: vsbound("scale_post"; "hot_post"), target: null},
    {what: "the same, GET",
     value: vsbound("scale_get"; "hot_get"), target: null},
    {what: "null server CPU per reply (us), median of the scale rounds: plain",
     value: scalecpu("null"), target: null},
    {what: "null server CPU per reply (us), median of the scale rounds: building a new reply for every request",
     value: scalecpu("null_fresh"), target: null},
    {what: "ocspd server CPU per answer (us), median of the rounds: uniform over \(sc.n) POST",
     value: scalecpu("scale_post"), target: null},
    {what: "ocspd server CPU per answer (us), median of the rounds: uniform over \(sc.n) GET",
     value: scalecpu("scale_get"), target: null},
    {what: "ocspd server CPU per answer (us), median of the rounds: uniform over \(sc.small_n) POST",
     value: scalecpu("small_post"), target: null},
    {what: "ocspd server CPU per answer (us), median of the rounds: uniform over \(sc.small_n) GET",
     value: scalecpu("small_get"), target: null},
    {what: "ocspd server CPU per answer (us), median of the rounds: one hot answer POST",
     value: scalecpu("hot_post"), target: null},
    {what: "ocspd server CPU per answer (us), median of the rounds: one hot answer GET",
     value: scalecpu("hot_get"), target: null},
    {what: "ocspd resident memory under the uniform load over \(sc.n), MiB not counting mapped store pages (max RssAnon + RssShmem)",
     value: (if sc.rss then mib(sc.rss.rss_anon_kib + sc.rss.rss_shmem_kib) else null end),
     target: "<= 64"},
    {what: "ocspd resident memory under the uniform load over \(sc.n), MiB of mapped store and binary pages (max RssFile)",
     value: (if sc.rss then mib(sc.rss.rss_file_kib) else null end), target: null},
    {what: "ocspd resident memory under the uniform load over \(sc.n), MiB in all (max VmRSS)",
     value: (if sc.rss then mib(sc.rss.vmrss_kib) else null end), target: null},
    {what: "store of \(sc.n): status + journal, bytes per certificate (mdb_stat pages x page size)",
     value: sc.footprint.status_journal_per_cert, target: "<= 150"},
    {what: "store of \(sc.n): status + journal + pending changes, bytes per certificate",
     value: sc.footprint.status_journal_changes_per_cert, target: null},
    {what: "store of \(sc.n): every database, bytes per certificate (mdb_stat pages x page size)",
     value: sc.footprint.all_per_cert, target: "<= 1024"},
    {what: "store of \(sc.n): pages in use in the file (free pages too), bytes per certificate",
     value: sc.footprint.file_used_per_cert, target: null},
    {what: "ocspctl import-index of \(sc.n) lines, s\(built)",
     value: sc.build.index_import_s, target: null},
    {what: "ocspctl import-index, s per 1 M lines (\(sc.n) lines)\(built)",
     value: (if sc.build then sc.build.index_import_s / sc.n * 1e6 else null end),
     target: "<= 6"},
    {what: "ocspctl import-index, s for 10 M lines at that rate (\(sc.n) lines)\(built)",
     value: (if sc.build then sc.build.index_import_s / sc.n * 1e7 else null end),
     target: "<= 60"},
    {what: "ocspctl presign of \(sc.n) certificates, s (\(sc.build.presign_answers) answers)\(built)",
     value: sc.build.presign_s, target: null},
    {what: "ocspctl presign, answers/s\(built)",
     value: (if sc.build then sc.build.presign_answers / sc.build.presign_s else null end),
     target: null},
    {what: "ocspctl presign answers/s / PKCS#11 signer raw rate (p11_ocsp_p256_2t, this run)\(built)",
     value: (if sc.build then ratio(sc.build.presign_answers / sc.build.presign_s; lim("p11_ocsp_p256_2t")) else null end),
     target: null},
    {what: "ocspd first start on the new store: the \(sc.build.drain_changes) status changes import-index left pending taken (answers re-signed), s\(built)",
     value: sc.build.drain_s, target: null},
    {what: "ocspd start on the store of \(sc.n): first walk of the stored answers by the refresher, s (before the uniform loads)",
     value: sc.startup_walk_s, target: null},
    {what: "ocspd start on the store of \(sc.n): its pages read again and mapped ahead ([store] prefault = reread), s",
     value: sc.prefault.s, target: null},
    {what: "ocspd start on the store of \(sc.n): share of the mapped store in 2 MiB pages (kernel and file system permitting)",
     value: (if sc.prefault and sc.prefault.mib > 0 then sc.prefault.huge_mib / sc.prefault.mib else null end),
     target: null},
    {what: "ocspctl import-crl of a CRL of \(sc.crl_n) entries into a scratch store, s (this run)",
     value: sc.crl_import_s, target: null},
    {what: "ocspctl import-crl, s per 1 M CRL entries (\(sc.crl_n) entries, this run)",
     value: (if sc.crl_import_s then sc.crl_import_s / sc.crl_n * 1e6 else null end),
     target: "<= 30"},
    {what: "tsad soft P-256 p99 (ms) at half of its maximum rate, open loop",
     value: (run("tsad_soft_p256_half") | if . then .latency_ms.p99 else null end),
     target: "a few ms"},
    {what: "ocspd hit GET p99 (ms) at half of its maximum rate, one hot answer, open loop, one run",
     value: (run("ocspd_hot_get_half") | if . then .latency_ms.p99 else null end),
     target: null},
    {what: "ocspd hit GET p99 (ms) at half of its maximum rate, one hot answer, open loop, median of \(hotn) alternating rounds",
     value: halfp99("half"), target: "<= 2"},
    {what: "null server (same bytes) p99 (ms) at the same rate, open loop, median of the same rounds (the limit: on this 2-core VM the load generator waits for a core when both are busy, and an open loop counts that wait)",
     value: halfp99("nullhalf"), target: null}
  ] | map(select(.value != null))
}'

machine_json() {
    jq -nc --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" \
        --argjson n "$(nproc)" --arg k "$(uname -r)" --arg o "$(openssl version)" \
        --arg d "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg rev "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        --argjson q "$QUICK" --argjson dur "$DUR" --argjson conns "$CONNS" \
        '{cpu: $cpu, cpus: $n, kernel: $k, openssl: $o, date: $d, commit: $rev, quick: ($q == 1),
          seconds_per_run: $dur, connections: $conns}'
}

write_report() {
    local scen=() f
    for f in "$OUT"/tsad_*.json "$OUT"/ocspd_*.json "$OUT"/null_http.json "$OUT"/null_http_many.json \
        "$OUT"/peer_openssl_ocsp.json "$OUT"/hotalt_*.json "$OUT"/scalealt_*.json; do
        [[ -f $f ]] && scen+=("$f")
    done
    printf '%s\n' "${LIMITS[@]}" | jq -s '.' >"$WORK/limits.json"
    printf '%s\n' "${NOTES[@]+"${NOTES[@]}"}" | jq -R . | jq -s 'map(select(length > 0))' \
        >"$WORK/notes.json"
    jq -s '.' "${scen[@]}" >"$WORK/scen.json"
    [[ -f $OUT/scale.json ]] || echo '{}' >"$OUT/scale.json"
    jq -n --argjson m "$(machine_json)" --slurpfile l "$WORK/limits.json" \
        --slurpfile s "$WORK/scen.json" --slurpfile n "$WORK/notes.json" \
        --slurpfile x "$OUT/scale.json" "$REPORT_JQ" >"$OUT/report.json"
}

print_table() {
    echo
    echo "== results ($( ((QUICK)) && echo "QUICK: smoke test, figures not meaningful" || echo "${DUR} s per run, $CONNS connections"))"
    jq -r '
      def f: if . == null then "-" elif . >= 100 then (. | floor | tostring)
             else ((. * 100 | floor) / 100 | tostring) end;
      ["figure", "req/s", "p50 ms", "p99 ms", "cpu us/req", "errors", "vs limit", "ratio",
       "vs peer", "ratio"],
      (.rows[] | [.name, (.rps | f), (.p50 | f), (.p99 | f), (.cpu_us | f), (.errors | tostring),
        (.limit_name // "-"), (.limit_ratio | f), (.peer_name // "-"), (.peer_ratio | f)])
      | @tsv' "$OUT/report.json" | column -t -s $'\t'
    echo
    jq -r '.derived[] | "  \(.what): \(.value | if . == null then "-" else . * 100 | floor / 100 end)\(if .target then "  (target \(.target))" else "" end)"' \
        "$OUT/report.json"
    jq -r 'if .scale then .scale | "\n  scale: \(.n) certificates in \(.dir) (\(if .reused then "built \(.build.built_at), reused\(if .resigned then ", answers pre-signed again" else "" end)" else "built in this run" end)): build \(.build.index_gen_s) s index generation, \(.build.index_import_s) s import-index, \(.build.presign_s) s presign (\(.build.presign_answers) answers), \(.build.drain_s // "-") s for ocspd to take the \(.build.drain_changes // "-") pending changes, \(.build.crl_gen_s) s CRL of \(.crl_n) entries; footprint \(.footprint.status_journal_per_cert) B/cert status + journal, \(.footprint.all_per_cert) B/cert in all (\(.footprint.all_bytes / 1048576 | floor) MiB)" else empty end' "$OUT/report.json"
    jq -r '.notes[] | "  note: \(.)"' "$OUT/report.json"
}

# PLOT_GP: throughput per figure (ours, limit, peer) and latency percentiles (log scale).
# shellcheck disable=SC2016
PLOT_GP='
set terminal pngcairo size 1400,1000 font ",10"
set output out
set multiplot layout 2,1 title "make bench: throughput and latency (same run, same machine)"
set datafile separator "\t"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -25 noenhanced
set key top right noenhanced
set grid ytics
set ylabel "requests/s"
set title "throughput: ours, its limit, its peer"
plot tput using 2:xtic(1) title "ours", "" using 3 title "limit", "" using 4 title "peer"
set title "latency percentiles (ms, log scale)"
set ylabel "ms"
set logscale y
plot lat using 2:xtic(1) title "p50", "" using 3 title "p90", "" using 4 title "p99", \
     "" using 5 title "p99.9"
unset multiplot
'

draw_png() {
    if ! command -v gnuplot >/dev/null; then
        note "gnuplot not installed: no PNG"
        return 0
    fi
    jq -r '.rows[] | [.name, (.rps // 0), (.limit_value // 0), (.peer_value // 0)] | @tsv' \
        "$OUT/report.json" >"$WORK/tput.dat"
    jq -r '.rows[] | select(.p50 != null) | [.name, .p50, .p90, .p99, .p999] | @tsv' \
        "$OUT/report.json" >"$WORK/lat.dat"
    printf '%s\n' "$PLOT_GP" >"$WORK/plot.gp"
    gnuplot -e "tput='$WORK/tput.dat'; lat='$WORK/lat.dat'; out='$OUT/bench.png'" \
        "$WORK/plot.gp" 2>"$WORK/gnuplot.log" || note "gnuplot failed: $(head -c 300 "$WORK/gnuplot.log")"
}

# scale_only: BENCH_ONLY=scale, the scale scenario alone (to build or refresh the kept store,
# or to look at it again): no limits, no other scenario, so no ratio to them
scale_only() {
    note "BENCH_ONLY=scale: only the scale scenario ran (no limits, no other scenario)"
    # shellcheck source=tests/lib/ocsp-pki.sh
    . tests/lib/ocsp-pki.sh
    # shellcheck source=tests/lib/ocspd.sh
    . tests/lib/ocspd.sh
    scale_scenario
}

main() {
    local t0=$SECONDS hport
    mkdir -p "$OUT"
    rm -f "$OUT"/*.json "$OUT"/bench.png
    echo "bench: $( ((QUICK)) && echo quick || echo full) run, work dir $WORK, results in $OUT"
    if [[ ${BENCH_ONLY:-} == scale ]]; then
        scale_only
        write_report
        print_table
        echo
        echo "report: $OUT/report.json  ($((SECONDS - t0)) s)"
        return 0
    fi
    pki_demo "$WORK/pki" 2>/dev/null
    # shellcheck disable=SC1091
    . "$WORK/pki/pki.env"
    cat "$PKI_TSACA_CERT" "$TSU_N_CERT" "$SOFT_P256_CERT" "$SOFT_RSA_CERT" \
        >"$WORK/tsa-untrusted.pem"
    "$LG" gen-tsa --out "$WORK/tsa.set" --count 5000 --hashes sha256=6,sha384=2,sha512=2 \
        --nonce 90 --cert-req 50 --seed 7
    measure_limits
    mkdir -p "$WORK/chrony"
    chrony_start "$WORK/chrony" local
    hport=$(free_port)
    tsad_bench_start tsad "server.https_listen=127.0.0.1:$hport" \
        "server.tls_cert=$TLS_SERVER_CERT" "server.tls_key=$TLS_SERVER_KEY" \
        "server.tls_chain=$TLS_SERVER_CHAIN"
    TSA_HTTPS_BASE="https://127.0.0.1:$hport"
    tsa_scenarios "$TSA_BASE"
    tsad_stop
    nojournal_tsa
    nethsm_tsa
    slowloris_tsa
    run_ocsp
    write_report
    print_table
    draw_png
    echo
    echo "report: $OUT/report.json  plot: $OUT/bench.png  ($((SECONDS - t0)) s)"
}

main "$@"
