# shellcheck shell=bash
#
# bench/scale.sh: the scale scenario of `make bench` (issue 10 section 3), sourced by
# bench/run.sh after its other OCSP scenarios (it reads run.sh's LG, OUT, WORK, BUILD, QUICK,
# WARM, DUR, CONNS, load, conf_apply, note, ocsp_bench_db and the tests/lib helpers).
#
# A store of SCALE_N certificates (10 million in a full run, 3 thousand with QUICK=1;
# BENCH_SCALE_N overrides) is built once and KEPT in $BUILD/bench-scale-N/ between runs:
#   pki/          its own OCSP demo PKI and SoftHSM2 token (tests/lib/ocsp-pki.sh, fixed URL)
#   ocspd.conf    the configuration ocspctl and ocspd use (the listen port is set per run)
#   store/        the LMDB store: issuer qca, SCALE_N serials imported from bench-index.txt
#                 (random 16-octet serials, 1 in 20 revoked: ocsp_bench_db), every answer
#                 pre-signed (answers valid 10 days)
#   bench-index.txt, bench-serials.txt   the index imported and loadgen's serial list
#   crl.pem       a CRL of SCALE_CRL_N entries (1 M; QUICK 2 k) of the same issuer, made
#                 with `openssl ca -gencrl` from crl-index.txt (serials not in the store)
#   uni-*.set     the uniform request sets over all SCALE_N serials (POST, GET)
#   build.json    what the build measured: index generation, import-index, presign (and its
#                 answer count), ocspd's first start taking the status changes import-index
#                 left pending (it re-signs their answers), CRL generation, the build's time
#   ready         written last: a directory without it is built again from scratch
# The store is built again when its PKI is rebuilt (the delegated responder certificate is
# valid 30 days); the answers are pre-signed again (timed, in build.json) when they are more
# than 4 days old, before ocspd's refresher (refresh_margin 50 % of 10 days) would re-sign
# them under the load.
#
# Every run: `ocspctl import-crl` of crl.pem into a scratch store (created and removed in the
# same directory, so it never touches the kept store) is timed, and so is `ocspctl presign` of
# SCALE_PRESIGN_CERTS certificates of the index (500 k: 1 M answers; QUICK 1 k) imported into
# another scratch store; the footprint of the kept
# store is read with `mdb_stat -a` (per database: (branch + leaf + overflow pages) x page
# size); ocspd is started on the kept store (a free port, its own log, stopped by pid) and
# loaded uniformly over all serials by POST and by GET (request sets of SCALE_SET_COUNT
# requests: 1 M in a full run, more than a run sends, so no request repeats the set) while
# /proc/PID/status is sampled (VmRSS, RssAnon, RssFile, RssShmem; the maximum of each).
# Results: $OUT/ocspd_scale_{post,get}.json (loadgen) and $OUT/scale.json (everything else),
# read by run.sh's report.

SCALE_N=${BENCH_SCALE_N:-$( ((QUICK)) && echo 3000 || echo 10000000)}
SCALE_CRL_N=${BENCH_SCALE_CRL_N:-$( ((QUICK)) && echo 2000 || echo 1000000)}
SCALE_SET_COUNT=${BENCH_SCALE_SET_COUNT:-$( ((QUICK)) && echo 10000 || echo 1000000)}
# the presign measured at the issue's size: certificates of the scale index imported into a
# scratch store and pre-signed (two answers each: 1 M answers in a full run)
SCALE_PRESIGN_CERTS=${BENCH_SCALE_PRESIGN_CERTS:-$( ((QUICK)) && echo 1000 || echo 500000)}
SCALE_DIR=$top/$BUILD/bench-scale-$SCALE_N
SCALE_URL=http://127.0.0.1/ # the PKI's AIA URL: fixed, so that the kept PKI stays current
SCALE_PRESIGN_MAX_AGE=$((4 * 86400))

# now: seconds since the epoch with nanoseconds
now() { date +%s.%N; }
# elapsed T0: seconds since T0 (3 decimals)
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# scale_ctl ARGS...: ocspctl on the kept store (SCALE_CTL_CONF: another ocspd.conf), its log
# appended to $SCALE_DIR/ocspctl.log
scale_ctl() {
    SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/ocspctl" -c "${SCALE_CTL_CONF:-$SCALE_DIR/ocspd.conf}" \
        -u bench "$@" 2>>"$SCALE_DIR/ocspctl.log"
}

# scale_signer_fp: fingerprint of the PKI's delegated responder certificate (a new PKI means
# a new token: the kept store is then built again)
scale_signer_fp() {
    openssl x509 -in "$SCALE_DIR/pki/ocsp-signer.pem" -noout -fingerprint -sha256 | sed 's/.*=//'
}

# scale_issuer_add [-d STORE]: issuer qca of the scale PKI, answers valid 10 days
scale_issuer_add() {
    scale_ctl "$@" issuer add qca --cert "$OCSP_CA_CERT" --key-label "$OCSP_SIGNER_LABEL" \
        --signer-cert "$OCSP_SIGNER_CERT" --signature ecdsa --digest sha256 --nonce echo \
        --unissued revoked --archive-cutoff yes --validity 10d >/dev/null
}

# scale_crl: crl.pem with SCALE_CRL_N revoked serials of the scale CA (openssl ca -gencrl)
scale_crl() {
    local d=$SCALE_DIR/crl
    mkdir -p "$d"
    openssl rand -hex $((SCALE_CRL_N * 16)) | fold -w 32 | awk '
        { printf "R\t351231235959Z\t240101000000Z,keyCompromise\t5%s\tunknown\t/CN=crl %d\n",
                 toupper(substr($0, 2)), NR }' >"$d/index.txt"
    echo 1000 >"$d/crlnumber"
    cat >"$d/crl.cnf" <<CNF
[ca]
default_ca = crl
[crl]
database = $d/index.txt
crlnumber = $d/crlnumber
default_md = sha256
default_crl_days = 3650
unique_subject = no
CNF
    openssl ca -batch -gencrl -config "$d/crl.cnf" -cert "$OCSP_CA_CERT" \
        -keyfile "$OCSP_CA_KEY" -out "$SCALE_DIR/crl.pem" 2>>"$SCALE_DIR/ocspctl.log"
    rm -f "$d/index.txt.old"
}

# scale_map_size: [store] map_size for SCALE_N certificates (a sparse file: only the pages
# written take disk)
scale_map_size() {
    local mib=$((SCALE_N * 8 / 1024))
    ((mib < 512)) && mib=512
    echo "${mib}M"
}

# scale_changes: entries of the store's "changes" database (status changes waiting for ocspd)
scale_changes() {
    mdb_stat -s changes "$SCALE_DIR/store" | awk '/Entries:/ { print $2 }'
}

# scale_drain: start ocspd on the kept store and wait until it has taken every pending status
# change (it re-signs their answers at start, DESIGN D6: import-index leaves one per line,
# which ocspctl presign does not take), so that the loads do not meet that re-signing. Sets
# SCALE_DRAIN_S (seconds from the start of ocspd) and SCALE_DRAIN_N (changes at the start).
scale_drain() {
    local conf=$WORK/ocspd-scale-drain.conf t0 left i limit
    SCALE_DRAIN_N=$(scale_changes)
    SCALE_DRAIN_S=0
    ((SCALE_DRAIN_N > 0)) || return 0
    cp "$SCALE_DIR/ocspd.conf" "$conf"
    conf_apply "$conf" "server.listen=127.0.0.1:$(free_port)"
    t0=$(now)
    ocspd_start "$conf" "$SCALE_DIR/ocspd-drain.log" || die "ocspd on the scale store did not start"
    limit=$((SCALE_DRAIN_N / 200 + 120)) # 200 answers/s at the least
    for ((i = 0; i < limit; i++)); do
        left=$(scale_changes)
        ((left == 0)) && break
        sleep 1
    done
    SCALE_DRAIN_S=$(elapsed "$t0")
    ocspd_stop
    ((left == 0)) || die "ocspd left $left of $SCALE_DRAIN_N status changes after $SCALE_DRAIN_S s"
    echo "  ocspd's first start: $SCALE_DRAIN_N pending status changes taken (answers re-signed) in $SCALE_DRAIN_S s"
}

# scale_build: build $SCALE_DIR from scratch (see the header); ready written last
scale_build() {
    local t0 gen_s import_s presign_s crl_s answers
    echo "== scale: building a store of $SCALE_N certificates in $SCALE_DIR (kept for later runs)"
    rm -rf "$SCALE_DIR"
    mkdir -p "$SCALE_DIR"
    ocsp_pki_demo "$SCALE_DIR/pki" "$SCALE_URL" >/dev/null
    # shellcheck disable=SC1091
    . "$SCALE_DIR/pki/ocsp-pki.env"
    ocspd_write_conf "$SCALE_DIR/ocspd.conf" "$(free_port)" "$SCALE_DIR/store" "$SCALE_DIR/pki"
    printf '[limits]\nsign_rate = 0\n' >>"$SCALE_DIR/ocspd.conf"
    conf_apply "$SCALE_DIR/ocspd.conf" log.level=warn "store.map_size=$(scale_map_size)"
    mkdir -p "$SCALE_DIR/store"
    t0=$(now)
    ocsp_bench_db "$SCALE_DIR" "$SCALE_N"
    gen_s=$(elapsed "$t0")
    scale_ctl init >/dev/null
    scale_issuer_add
    t0=$(now)
    scale_ctl import-index qca "$SCALE_DIR/bench-index.txt" >/dev/null
    import_s=$(elapsed "$t0")
    echo "  import-index: $SCALE_N lines in $import_s s"
    t0=$(now)
    answers=$(scale_ctl presign)
    presign_s=$(elapsed "$t0")
    echo "  presign: $answers answers in $presign_s s"
    scale_drain
    t0=$(now)
    scale_crl
    crl_s=$(elapsed "$t0")
    echo "  CRL of $SCALE_CRL_N entries: $crl_s s"
    jq -n --argjson n "$SCALE_N" --argjson crl_n "$SCALE_CRL_N" --arg fp "$(scale_signer_fp)" \
        --argjson at "$(date +%s)" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        --argjson gen "$gen_s" --argjson imp "$import_s" --argjson pre "$presign_s" \
        --argjson ans "$answers" --argjson crl "$crl_s" --argjson dn "$SCALE_DRAIN_N" \
        --argjson ds "$SCALE_DRAIN_S" \
        --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        '{n: $n, crl_n: $crl_n, signer_fp: $fp, built_at: $date, built_epoch: $at, commit: $commit,
          index_gen_s: $gen, index_import_s: $imp, presign_s: $pre, presign_answers: $ans,
          presigned_epoch: $at, crl_gen_s: $crl, drain_changes: $dn, drain_s: $ds}' \
        >"$SCALE_DIR/build.json"
    : >"$SCALE_DIR/ready"
}

# scale_schema: the store schema this build writes (ocsp/ocsp_store.h)
scale_schema() {
    sed -n 's/^#define OCSP_STORE_SCHEMA \([0-9]*\).*/\1/p' ocsp/ocsp_store.h
}

# scale_prepare: reuse $SCALE_DIR when it is complete and its PKI current, else build it;
# pre-sign again when the answers are old. Sets SCALE_REUSED, SCALE_RESIGNED.
scale_prepare() {
    local age t0 answers presign_s
    SCALE_REUSED=false SCALE_RESIGNED=false
    if [[ -e $SCALE_DIR/ready && -f $SCALE_DIR/build.json ]]; then
        ocsp_pki_demo "$SCALE_DIR/pki" "$SCALE_URL" >/dev/null
        if [[ $(scale_signer_fp) == "$(jq -r .signer_fp "$SCALE_DIR/build.json")" ]]; then
            SCALE_REUSED=true
        else
            echo "== scale: the PKI of $SCALE_DIR was renewed: the store is built again"
        fi
    fi
    if [[ $SCALE_REUSED == false ]]; then
        scale_build
        return 0
    fi
    # shellcheck disable=SC1091
    . "$SCALE_DIR/pki/ocsp-pki.env"
    echo "== scale: reusing the store of $SCALE_N certificates in $SCALE_DIR (built $(jq -r .built_at "$SCALE_DIR/build.json"))"
    # a store of an older schema is upgraded by its first writable open (ocsp_store.h): done
    # here, timed, so that neither the presign nor ocspd's start below carries it
    if [[ $(mdb_dump -s meta -p "$SCALE_DIR/store" 2>/dev/null |
        awk '$1 == "schema_version" { getline; print $1; exit }') != "$(scale_schema)" ]]; then
        t0=$(now)
        scale_ctl init >/dev/null || die "ocspctl init (schema upgrade) of $SCALE_DIR failed"
        echo "  store upgraded to schema $(scale_schema) in $(elapsed "$t0") s:" \
            "$(grep -o 'upgraded from schema.*' "$SCALE_DIR/ocspctl.log" | tail -1)"
    fi
    age=$(($(date +%s) - $(jq .presigned_epoch "$SCALE_DIR/build.json")))
    if ((age > SCALE_PRESIGN_MAX_AGE)); then
        t0=$(now)
        answers=$(scale_ctl presign)
        presign_s=$(elapsed "$t0")
        echo "  answers $((age / 3600)) h old: pre-signed again, $answers answers in $presign_s s"
        jq --argjson at "$(date +%s)" --argjson pre "$presign_s" --argjson ans "$answers" \
            '.presigned_epoch = $at | .resign_s = $pre | .resign_answers = $ans' \
            "$SCALE_DIR/build.json" >"$SCALE_DIR/build.json.new"
        mv "$SCALE_DIR/build.json.new" "$SCALE_DIR/build.json"
        SCALE_RESIGNED=true
    fi
    # a store left with pending changes (not by this script: nothing writes them after the
    # build) is drained the same way, so the loads meet none
    scale_drain
}

# scale_sets: the uniform request sets over all serials, made once per set size and kept
scale_sets() {
    local m seed pct
    for m in post get; do
        SCALE_SET[$m]=$SCALE_DIR/uni-$m-$SCALE_SET_COUNT.set
        [[ -s ${SCALE_SET[$m]} ]] && continue
        seed=31 pct=0
        [[ $m == get ]] && seed=32 pct=100
        "$LG" gen-ocsp --out "${SCALE_SET[$m]}.tmp" --issuer "$OCSP_CA_CERT" \
            --serials "$SCALE_DIR/bench-serials.txt" --count "$SCALE_SET_COUNT" --get "$pct" \
            --seed "$seed"
        mv "${SCALE_SET[$m]}.tmp" "${SCALE_SET[$m]}"
    done
}

# scale_crl_import: SCALE_CRL_S, the seconds of `ocspctl import-crl` of crl.pem into a
# scratch store (made and removed here)
scale_crl_import() {
    local scratch=$SCALE_DIR/scratch-crl t0 mib=$((SCALE_CRL_N * 2 / 1024))
    rm -rf "$scratch"
    mkdir -p "$scratch"
    # a map for the CRL's revocations (about 700 bytes each with their journal), however
    # small the scale store is (QUICK, or BENCH_SCALE_N below the CRL's size)
    ((mib < 512)) && mib=512
    cp "$SCALE_DIR/ocspd.conf" "$scratch.conf"
    conf_apply "$scratch.conf" "store.map_size=${mib}M"
    SCALE_CTL_CONF=$scratch.conf scale_ctl -d "$scratch" init >/dev/null
    SCALE_CTL_CONF=$scratch.conf scale_issuer_add -d "$scratch"
    t0=$(now)
    SCALE_CTL_CONF=$scratch.conf scale_ctl -d "$scratch" import-crl qca "$SCALE_DIR/crl.pem" >/dev/null
    SCALE_CRL_S=$(elapsed "$t0")
    rm -rf "$scratch" "$scratch.conf"
}

# scale_p11speed JSON: the raw C_Sign rate of the scale token's responder key, 2 sessions,
# LIMIT_S seconds (bench/p11speed)
scale_p11speed() {
    SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/bench/p11speed" --module "$OCSP_P11_MODULE" \
        --token "$OCSP_P11_TOKEN" --pin-file "$OCSP_P11_PIN_FILE" --key "$OCSP_SIGNER_LABEL" \
        --threads 2 --duration "$LIMIT_S" --json "$1" >/dev/null 2>&1 || rm -f "$1"
}

# scale_presign: SCALE_PRESIGN_JSON, `ocspctl presign` of the first SCALE_PRESIGN_CERTS lines
# of the scale index imported into a scratch store (made and removed here): the answers, the
# seconds (process start and token login included) and their rate, for the issue's target
# (1 M answers at >= 90 % of the signer's raw rate: p11speed, 2 sessions, the mean of a run
# right before and one right after)
scale_presign() {
    local scratch=$SCALE_DIR/scratch-presign n=$SCALE_PRESIGN_CERTS t0 answers s mib
    ((n > SCALE_N)) && n=$SCALE_N
    SCALE_PRESIGN_JSON=null
    rm -rf "$scratch"
    mkdir -p "$scratch"
    # about 1 KB a certificate with both answers, twice over for the copy-on-write pages
    mib=$((n * 2 / 1024 + 256))
    cp "$SCALE_DIR/ocspd.conf" "$scratch.conf"
    conf_apply "$scratch.conf" "store.map_size=${mib}M"
    head -n "$n" "$SCALE_DIR/bench-index.txt" >"$scratch.index"
    SCALE_CTL_CONF=$scratch.conf scale_ctl -d "$scratch" init >/dev/null
    SCALE_CTL_CONF=$scratch.conf scale_issuer_add -d "$scratch"
    SCALE_CTL_CONF=$scratch.conf scale_ctl -d "$scratch" import-index qca "$scratch.index" >/dev/null
    # the signer's raw rate right before and right after (this VM's speed moves within minutes:
    # the ratio is held to the mean of the two, measured beside the presign)
    scale_p11speed "$WORK/p11-presign-before.json"
    t0=$(now)
    if answers=$(SCALE_CTL_CONF=$scratch.conf scale_ctl -d "$scratch" presign); then
        s=$(elapsed "$t0")
        scale_p11speed "$WORK/p11-presign-after.json"
        SCALE_PRESIGN_JSON=$(jq -cn --argjson c "$n" --argjson a "$answers" --argjson s "$s" \
            --argjson r0 "$(jq .signs_per_s "$WORK/p11-presign-before.json" 2>/dev/null || echo null)" \
            --argjson r1 "$(jq .signs_per_s "$WORK/p11-presign-after.json" 2>/dev/null || echo null)" \
            '{certs: $c, answers: $a, s: $s, rate: (if $s > 0 then $a / $s else null end),
              raw_before: $r0, raw_after: $r1,
              raw: (if $r0 != null and $r1 != null then ($r0 + $r1) / 2 else null end)}')
    else
        note "scale: presign into the scratch store failed (see $SCALE_DIR/ocspctl.log)"
    fi
    rm -rf "$scratch" "$scratch.conf" "$scratch.index"
}

# scale_footprint: JSON of the kept store's pages per database (mdb_stat -ea: branch + leaf +
# overflow pages x page size), their sums per certificate (status + journal; with the
# pending changes; every database) and the pages in use in the file (free pages included)
scale_footprint() {
    mdb_stat -ea "$SCALE_DIR/store" | awk -v n="$SCALE_N" '
        /^Status of / { db = $3; if (db == "Main") db = "main"; next }
        /^  Page size:/ { ps = $3 }
        /^  Number of pages used:/ { used = $5 }
        /^  Branch pages:/ { pages[db] += $3 }
        /^  Leaf pages:/ { pages[db] += $3 }
        /^  Overflow pages:/ { pages[db] += $3 }
        /^  Entries:/ { ent[db] = $2 }
        END {
            printf "{\"page_size\": %d, \"dbs\": {", ps
            sep = ""
            for (d in pages) {
                printf "%s\"%s\": {\"pages\": %d, \"bytes\": %d, \"entries\": %d}", sep, d,
                       pages[d], pages[d] * ps, ent[d]
                sep = ", "
                all += pages[d] * ps
            }
            sj = (pages["status"] + pages["journal"]) * ps
            sjc = sj + pages["changes"] * ps
            printf "}, \"status_journal_bytes\": %d, \"all_bytes\": %d, ", sj, all
            printf "\"file_used_bytes\": %d, ", used * ps
            printf "\"status_journal_per_cert\": %.1f, ", sj / n
            printf "\"status_journal_changes_per_cert\": %.1f, ", sjc / n
            printf "\"all_per_cert\": %.1f, \"file_used_per_cert\": %.1f}\n", all / n, used * ps / n
        }'
}

# rss_sampler PID FILE: the VmRSS/RssAnon/RssFile/RssShmem lines of PID every 0.2 s (builtins
# only, but sleep); run in the background and stopped by pid
rss_sampler() {
    local pid=$1 k v _
    while [[ -e /proc/$pid/status ]]; do
        while read -r k v _; do
            case $k in VmRSS: | RssAnon: | RssFile: | RssShmem:) echo "$k $v" ;; esac
        done <"/proc/$pid/status" 2>/dev/null || true
        sleep 0.2
    done
}

# rss_max FILE: JSON of the maximum of each kind (KiB) and the number of samples
rss_max() {
    awk '{ k = $1; sub(":", "", k); if ($2 > m[k]) m[k] = $2; if (k == "VmRSS") n++ }
         END { printf "{\"samples\": %d, \"vmrss_kib\": %d, \"rss_anon_kib\": %d, \"rss_file_kib\": %d, \"rss_shmem_kib\": %d}\n",
                      n, m["VmRSS"], m["RssAnon"], m["RssFile"], m["RssShmem"] }' "$1"
}

# scale_null NAME [--fresh]: a null server returning the hot answer's bytes ($WORK/hit.der) for
# the rounds; sets NULL_<NAME>_PORT and NULL_<NAME>_PID (tracked; scale_null_stop ends both);
# false (noted) when it does not answer
scale_null() {
    local name=$1 port pid
    shift
    port=$(free_port)
    "$BUILD/bench/nullhttpd" --port "$port" --body "$WORK/hit.der" \
        --type application/ocsp-response --threads 2 "$@" >"$WORK/nullhttpd-$name.log" 2>&1 &
    pid=$!
    track_pid "$pid"
    printf -v "NULL_${name}_PORT" '%s' "$port"
    printf -v "NULL_${name}_PID" '%s' "$pid"
    if ! wait_http "http://127.0.0.1:$port/" 10; then
        note "null server ($name) did not start (nullhttpd-$name.log): the null rounds skipped"
        return 1
    fi
}

scale_null_stop() {
    local pid
    for pid in ${NULL_plain_PID:-} ${NULL_fresh_PID:-}; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    NULL_plain_PID='' NULL_fresh_PID=''
}

# scale_rounds PORT: the uniform loads over the scale store (ocspd on PORT, $OCSPD_PID) and,
# on a second ocspd over the bench's small store ($WORK/ocspd.conf, both up, one loaded at a
# time), its uniform loads and its one hot answer, HOT_ROUNDS rounds of HOT_DUR s each: the
# single runs above are minutes apart, and on this shared VM one run moves by tens of percent,
# so the report takes the median of the rounds' ratios (scalealt_*). Each round also loads two
# null servers with the hot answer's bytes: the plain one (the limit of the hot answer) and one
# that builds a new response for every request (nullhttpd --fresh: the limit of an answer not
# kept ready, which is what every request of the uniform load over SCALE_N is).
scale_rounds() {
    local port=$1 scale_pid=$OCSPD_PID small_port small_pid r m url pid set ms mark
    ((HOT_ROUNDS > 0)) || return 0
    [[ -f $WORK/ocspd.conf && -f $WORK/ocsp-uni-post.set ]] || return 0
    small_port=$(free_port)
    cp "$WORK/ocspd.conf" "$WORK/ocspd-small.conf"
    conf_apply "$WORK/ocspd-small.conf" "server.listen=127.0.0.1:$small_port"
    if ! ocspd_start "$WORK/ocspd-small.conf" "$WORK/ocspd-small.log"; then
        ocspd_stop || true
        OCSPD_PID=$scale_pid
        note "ocspd on the bench store did not start beside the scale one: alternating rounds skipped"
        return 0
    fi
    small_pid=$OCSPD_PID
    ms="scale_post scale_get small_post small_get hot_post hot_get"
    # both null servers send the hot answer with ocspd's five headers (the plain one formats
    # them once): they differ only in building the response for each request
    if [[ -s $WORK/hit.der ]] && scale_null plain --ocsp-headers && scale_null fresh --fresh; then
        ms="null null_fresh $ms"
    fi
    echo "== uniform over $SCALE_N / over the bench store's $NSERIALS / one hot answer, $HOT_ROUNDS alternating rounds of $HOT_DUR s"
    # the scale loads' share of answers sent from the front cache (the loadgen starts each run
    # of a set at the same offsets, so later rounds repeat requests of earlier ones)
    mark=$(front_mark "http://127.0.0.1:$port")
    for ((r = 1; r <= HOT_ROUNDS; r++)); do
        for m in $ms; do
            case $m in
            null) url=$NULL_plain_PORT pid=$NULL_plain_PID set=$WORK/one.set ;;
            null_fresh) url=$NULL_fresh_PORT pid=$NULL_fresh_PID set=$WORK/one.set ;;
            scale_post) url=$port pid=$scale_pid set=${SCALE_SET[post]} ;;
            scale_get) url=$port pid=$scale_pid set=${SCALE_SET[get]} ;;
            small_post) url=$small_port pid=$small_pid set=$WORK/ocsp-uni-post.set ;;
            small_get) url=$small_port pid=$small_pid set=$WORK/ocsp-uni-get.set ;;
            hot_post) url=$small_port pid=$small_pid set=$WORK/one.set ;;
            hot_get) url=$small_port pid=$small_pid set=$WORK/one-get.set ;;
            esac
            "$LG" run --label "scalealt_${m}_$r" --url "http://127.0.0.1:$url/" --requests "$set" \
                --conns "$CONNS" --warmup 0.5 --duration "$HOT_DUR" --verify-every 0 \
                --pid "$pid" --json "$OUT/scalealt_${m}_$r.json" >/dev/null
        done
        echo "  round $r: over $SCALE_N POST $(jq .rps "$OUT/scalealt_scale_post_$r.json")/s" \
            "GET $(jq .rps "$OUT/scalealt_scale_get_$r.json")/s; over $NSERIALS POST" \
            "$(jq .rps "$OUT/scalealt_small_post_$r.json")/s GET $(jq .rps "$OUT/scalealt_small_get_$r.json")/s;" \
            "one hot answer POST $(jq .rps "$OUT/scalealt_hot_post_$r.json")/s GET $(jq .rps "$OUT/scalealt_hot_get_$r.json")/s"
        if [[ -f $OUT/scalealt_null_$r.json ]]; then
            echo "    null server $(jq .rps "$OUT/scalealt_null_$r.json")/s, building each reply" \
                "$(jq .rps "$OUT/scalealt_null_fresh_$r.json")/s"
        fi
    done
    limit_add scale_front_share "$(front_share "$mark" "http://127.0.0.1:$port")" share \
        "uniform over $SCALE_N in the rounds: answers sent from the front cache / pre-signed answers"
    scale_null_stop
    ocspd_stop
    OCSPD_PID=$scale_pid
}

# scale_store_probe: what the store's part of a request not kept ready costs (bench/storeprobe:
# the answer and its status record read, one thread, after the pages are mapped as ocspd maps
# them), on the scale store (ocspd on it still up: its pages were read again into 2 MiB folios)
# and on the bench store, storeprobe_{scale,small}.json
scale_store_probe() {
    local n=$((QUICK ? 20000 : 500000))
    "$BUILD/bench/storeprobe" --store "$SCALE_DIR/store" --serials "$SCALE_DIR/bench-serials.txt" \
        --issuer qca --count "$n" >"$OUT/storeprobe_scale.json" 2>>"$WORK/storeprobe.log" ||
        note "storeprobe on the scale store failed (see storeprobe.log)"
    "$BUILD/bench/storeprobe" --store "$WORK/ocspd-store" --serials "$WORK/bench-serials.txt" \
        --issuer qca --count "$n" >"$OUT/storeprobe_small.json" 2>>"$WORK/storeprobe.log" ||
        note "storeprobe on the bench store failed (see storeprobe.log)"
    echo "  store read of an answer not kept ready (the stored answer, one lookup, one thread), CPU us:" \
        "over $SCALE_N $(jq .cpu_us_per_read "$OUT/storeprobe_scale.json" 2>/dev/null)," \
        "over $NSERIALS $(jq .cpu_us_per_read "$OUT/storeprobe_small.json" 2>/dev/null)"
}

scale_scenario() {
    local port conf=$WORK/ocspd-scale.conf ca_args foot rss="" sampler t0 i prefault=
    declare -gA SCALE_SET=()
    if ! command -v mdb_stat >/dev/null; then
        note "scale scenario skipped: mdb_stat not installed (lmdb-utils)"
        return 0
    fi
    scale_prepare
    scale_sets
    ca_args=(--ca "$OCSP_CA_CHAIN" --untrusted "$OCSP_SIGNER_CERT")
    scale_crl_import
    echo "  import-crl of $SCALE_CRL_N entries into a scratch store: $SCALE_CRL_S s"
    scale_presign
    echo "  presign into a scratch store: $(jq -r 'if . == null then "failed" else "\(.answers) answers of \(.certs) certificates in \(.s) s (\(.rate | floor)/s; the raw C_Sign rate \(.raw_before) before, \(.raw_after) after)" end' <<<"$SCALE_PRESIGN_JSON")"
    foot=$(scale_footprint)
    echo "  footprint: $(jq -r '"status + journal \(.status_journal_per_cert) B/cert, all \(.all_per_cert) B/cert"' <<<"$foot")"
    port=$(free_port)
    cp "$SCALE_DIR/ocspd.conf" "$conf"
    # the store's pages read again at start (the presign wrote them: cached in 4 KiB pages),
    # so that they can be mapped 2 MiB at a time, as after a reboot ([store] prefault)
    conf_apply "$conf" "server.listen=127.0.0.1:$port" store.prefault=reread log.level=info
    : >"$WORK/ocspd-scale.log"
    if ! ocspd_start "$conf" "$WORK/ocspd-scale.log"; then
        ocspd_stop || true
        note "ocspd on the scale store did not start: uniform load over $SCALE_N skipped"
    else
        echo "== ocspd on the store of $SCALE_N certificates (pid $OCSPD_PID)"
        # the load measures serving, not ocspd's start-up: its refresher's first walk of the
        # stored answers (the earliest due time; ocsp_refresh_scans_total) and the store's
        # pages mapped ahead (done well before) run at start
        t0=$(now)
        for ((i = 0; i < 3000; i++)); do
            [[ $(curl -s --max-time 5 "http://127.0.0.1:$port/metrics" |
                awk '$1 == "ocsp_refresh_scans_total" { print $2 }') -ge 1 ]] 2>/dev/null && break
            sleep 0.1
        done
        SCALE_WALK_S=$(elapsed "$t0")
        echo "  ocspd start-up: the refresher's first walk of the stored answers ended after $SCALE_WALK_S s"
        for ((i = 0; i < 600; i++)); do
            grep -q 'MiB of pages mapped ahead' "$WORK/ocspd-scale.log" && break
            sleep 0.1
        done
        # "N MiB of pages mapped ahead in S s, H MiB of them in 2 MiB pages"
        prefault=$(sed -n 's/.*: \([0-9.]*\) MiB of pages mapped ahead in \([0-9.]*\) s.*, '`
            `'\([0-9.]*\) MiB of them in 2 MiB pages.*/{"mib": \1, "s": \2, "huge_mib": \3}/p' \
            "$WORK/ocspd-scale.log" | tail -n 1)
        echo "  ocspd start-up: store pages mapped ahead (read again from disk): ${prefault:-not logged}"
        rss_sampler "$OCSPD_PID" >"$WORK/scale-rss.txt" &
        sampler=$!
        track_pid "$sampler"
        load ocspd_scale_post "http://127.0.0.1:$port/" "${SCALE_SET[post]}" "$OCSPD_PID" \
            "${ca_args[@]}"
        load ocspd_scale_get "http://127.0.0.1:$port/" "${SCALE_SET[get]}" "$OCSPD_PID" \
            "${ca_args[@]}"
        kill -TERM "$sampler" 2>/dev/null || true
        wait "$sampler" 2>/dev/null || true
        scale_rounds "$port"
        scale_store_probe
        ocspd_stop
        rss=$(rss_max "$WORK/scale-rss.txt")
        echo "  ocspd memory under the load (max, KiB): $(jq -c . <<<"$rss")"
    fi
    jq -n --argjson b "$(cat "$SCALE_DIR/build.json")" --argjson reused "$SCALE_REUSED" \
        --argjson resigned "$SCALE_RESIGNED" --argjson crl "$SCALE_CRL_S" --argjson foot "$foot" \
        --argjson rss "${rss:-null}" --argjson sets "$SCALE_SET_COUNT" --arg dir "$SCALE_DIR" \
        --argjson small "$NSERIALS" --argjson walk "${SCALE_WALK_S:-null}" \
        --argjson prefault "${prefault:-null}" --argjson presign "${SCALE_PRESIGN_JSON:-null}" \
        --argjson probe_scale "$(jq -c . "$OUT/storeprobe_scale.json" 2>/dev/null || echo null)" \
        --argjson probe_small "$(jq -c . "$OUT/storeprobe_small.json" 2>/dev/null || echo null)" \
        '{n: $b.n, crl_n: $b.crl_n, dir: $dir, reused: $reused, resigned: $resigned,
          build: $b, crl_import_s: $crl, footprint: $foot, rss: $rss, set_count: $sets,
          small_n: $small, startup_walk_s: $walk, prefault: $prefault, presign: $presign,
          store_probe: {scale: $probe_scale, small: $probe_small}}' >"$OUT/scale.json"
}
