#!/usr/bin/env bash
#
# test_disk_faults.sh: the store's disk fails under the real daemons (issue 8, "Faults of the
# parts - Disk"; DESIGN D5, D10; STANDARDS TSA-18: no token without its record).
#
# tsad's store (LMDB and its write-ahead journal, common/journal.c) lives on a small tmpfs of
# its own. While a load generator asks for tokens, the filesystem is filled to the last byte:
#   - tokens are granted while the journal can still make their records durable in segments
#     it already has; once it would need a new segment (ENOSPC) or the LMDB map cannot grow,
#     every request gets systemFailure with Retry-After (no token leaves without its record);
#   - /healthz turns red (store.ok false) and the log says why;
#   - when the space comes back, tsad grants tokens again by itself, without a restart;
#   - every token any client received has its record in the audit log, none twice, keys
#     1..N without a gap (nothing half-written).
# The same with `journal = no` (every record an LMDB commit: ENOSPC on the file's growth).
# ocspd on a full store: pre-signed answers and /healthz keep coming, the daemon keeps serving;
# an `ocspctl import-index` whose last chunk cannot be committed says that nothing was.
# A read-only store: ext4 on a loop device forced read-only by an ext4 error
# (errors=remount-ro, /sys/fs/ext4/DEV/trigger_fs_error; `mount -o remount,ro` is refused by
# the kernel while tsad holds files open for writing): systemFailure, /healthz red; after the
# operator repairs and remounts the filesystem a restarted tsad recovers every record.
# Needs root for mount; without it the test says so and passes nothing but the skip.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
# shellcheck source=tests/lib/faults.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/faults.sh"
itest_setup test_disk_faults

MOUNTS=()
LOOPS=()
disk_cleanup() {
    local m l
    tsad_stop
    ocspd_stop || true
    cleanup_tracked
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
    itest_cleanup
}
trap disk_cleanup EXIT

# ask URL: one request; prints "granted SERIAL", systemFailure, timeNotAvailable or other: ...
ask() {
    local code text serial
    code=$(curl -s --max-time 10 -D "$TMP/r.hdr" -o "$TMP/r.tsr" -w '%{http_code}' \
        -H 'Content-Type: application/timestamp-query' --data-binary @"$TMP/q.tsq" "$1") || true
    if [[ $code != 200 ]]; then
        echo "http-$code"
        return
    fi
    text=$(openssl ts -reply -in "$TMP/r.tsr" -text 2>/dev/null)
    if grep -q '^Status: Granted' <<<"$text"; then
        serial=$(sed -n 's/^Serial number: 0x//p' <<<"$text" | tr 'A-F' 'a-f')
        serial=$(printf '%32s' "$serial" | tr ' ' 0)
        echo "granted $serial"
    elif grep -q '^Failure info: the request cannot be handled due to system failure$' <<<"$text"; then
        echo systemFailure
    elif grep -q "^Failure info: the TSA's time source is not available$" <<<"$text"; then
        echo timeNotAvailable
    else
        echo "other: $(grep -E '^(Status|Failure info)' <<<"$text" | tr '\n' ' ')"
    fi
}

# healthz_store BASE: "CODE STORE_OK"
healthz_store() {
    local out
    out=$(curl -s --max-time 5 -w '\n%{http_code}' "$1/healthz") || true
    printf '%s %s\n' "$(tail -n 1 <<<"$out")" "$(head -n -1 <<<"$out" | jq -r .store.ok 2>/dev/null)"
}

# chain_intact NAME CONF: the whole audit log exports and `tsactl verify` finds its hash chain
# intact: no gap, no fork, across the faults and restarts (issue 9 item 3)
chain_intact() {
    local rc=0
    "$BUILD/tsactl" -c "$2" export >"$TMP/chain.jsonl" 2>"$TMP/chain.err" || rc=$?
    ((rc == 0)) || { t_fail "$1: the audit log exports" "exit $rc: $(head -n 3 "$TMP/chain.err")"; return; }
    "$BUILD/tsactl" verify "$TMP/chain.jsonl" >"$TMP/chain.out" 2>&1 || rc=$?
    if ((rc == 0)); then t_ok "$1: the audit chain is intact ($(grep -c . "$TMP/chain.jsonl") records)"; else
        t_fail "$1: the audit chain is intact" "exit $rc: $(head -n 3 "$TMP/chain.out")"
    fi
}

# wait_answer URL WANT SECONDS: ask until the answer starts with WANT; the answers seen are
# in SEEN, granted serials are appended to TMP/granted.txt
wait_answer() {
    local a deadline=$((SECONDS + $3))
    SEEN=()
    while ((SECONDS <= deadline)); do
        a=$(ask "$1")
        SEEN+=("${a%% *}")
        if [[ $a == granted* ]]; then echo "${a#granted }" >>"$TMP/granted.txt"; fi
        [[ $a == "$2"* ]] && return 0
        sleep 0.2
    done
    return 1
}

# ---- can we mount at all? ----
if ! mount_tmpfs "$TMP/probe" 1m; then
    echo "SKIP: cannot mount a tmpfs ($(cat "$TMP/mount.err")): the disk fault tests need root" >&2
    t_ok "skipped: mount -t tmpfs refused (not root?)"
    t_summary "$NAME"
    exit 0
fi
umount "$TMP/probe" && MOUNTS=()

LG=$BUILD/bench/loadgen
[[ -x $LG ]] || fatal "loadgen" "$LG is not built (make all)"

# why_logged SINCE: a line logged at or after SINCE says why the store refuses (one awk: a
# `| grep -q` would end the pipe early and, under pipefail, fail on the writer's SIGPIPE)
why_logged() {
    awk -v t="$1" '$1 >= t && /No space left on device|Input\/output error|journal: cannot create|records cannot be copied/ { f = 1 }
        END { exit !f }' "$LOG"
}

# full_cycle NAME: with tsad running on STORE (a tmpfs) under load, fill the filesystem, check
# the refusals, free it, check the recovery and the records
full_cycle() {
    local name=$1 a bad v granted_lg deadline mark i since
    mark=$(wc -l <"$LOG")
    since=$(date -u +%Y-%m-%dT%H:%M:%S.%6N)
    : >"$TMP/granted.txt"
    a=$(ask "$URL")
    if [[ $a == granted* ]]; then t_ok "$name: a token before the fault"; else
        t_fail "$name: a token before the fault" "$a"
    fi
    [[ $a == granted* ]] && echo "${a#granted }" >>"$TMP/granted.txt"
    load_start "$name"
    sleep 1
    fill "$STORE"
    t_ok "$name: the store's filesystem filled ($(df --output=avail -k "$STORE" | tail -n 1 | tr -d ' ') kB left)"
    if wait_answer "$URL" systemFailure 30; then
        t_ok "$name: disk full: requests answered systemFailure (after ${#SEEN[@]} request(s))"
    else
        t_fail "$name: disk full: requests answered systemFailure" "answers: ${SEEN[*]}"
    fi
    if grep -qi '^Retry-After: *1' "$TMP/r.hdr"; then t_ok "$name: systemFailure carries Retry-After"; else
        t_fail "$name: systemFailure carries Retry-After" "$(tr -d '\r' <"$TMP/r.hdr" | tr '\n' ' ')"
    fi
    bad=0
    for _ in 1 2 3 4 5; do
        a=$(ask "$URL")
        [[ $a == systemFailure ]] || bad=$((bad + 1))
        [[ $a == granted* ]] && echo "${a#granted }" >>"$TMP/granted.txt"
    done
    expect "$name: disk full: and so it stays (5 more requests refused)" "$bad" 0
    v=$(healthz_store "$BASE")
    expect "$name: disk full: /healthz 503, store.ok false" "$v" "503 false"
    # ENOSPC from the journal's new segment; LMDB reports its short write at the file's end
    # as EIO; the journal says its records wait or it cannot grow
    # the reason may be logged a moment after the first refusals (a slow build: ASan): wait
    # (lines are picked by their timestamp, later than the cycle's start)
    for ((i = 0; i < 50; i++)); do
        why_logged "$since" && break
        sleep 0.2
    done
    if why_logged "$since"; then
        t_ok "$name: disk full: the log says why ($(tail -n +"$((mark + 1))" "$LOG" | grep -Ec 'No space left on device|Input/output error') ENOSPC/EIO lines)"
    else
        t_fail "$name: disk full: the log says why" "since $since, mark $mark of $(wc -l <"$LOG") lines, \
reason lines at $(grep -nE 'No space left on device|Input/output error|journal: cannot create|records cannot be copied' "$LOG" | cut -d: -f1 | head -n 5 | tr '\n' ' '), \
$(grep -Ec 'No space left on device|Input/output error' "$LOG") ENOSPC/EIO lines in all; \
$(grep -E 'err:' "$LOG" | tail -n 3)"
    fi
    if kill -0 "$TSAD_PID" 2>/dev/null; then t_ok "$name: disk full: tsad keeps running"; else
        t_fail "$name: disk full: tsad keeps running" "$(tail -n 5 "$LOG")"
    fi

    rm -f "$STORE/filler"
    if wait_answer "$URL" granted 30; then
        t_ok "$name: space back: tokens granted again without a restart (after ${#SEEN[@]} request(s))"
    else
        t_fail "$name: space back: tokens granted again without a restart" "answers: ${SEEN[*]}"
    fi
    load_stop "$name"
    deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)) && [[ $(healthz_store "$BASE") != "200 true" ]]; do sleep 0.3; done
    expect "$name: space back: /healthz 200, store.ok true" "$(healthz_store "$BASE")" "200 true"
    granted_lg=$(grep -c . "$TMP/lg-$name.serials")
    if ((granted_lg > 0)); then t_ok "$name: the load got $granted_lg tokens around the fault"; else
        t_fail "$name: the load got tokens around the fault" "$(tail -n 5 "$TMP/lg-$name.out")"
    fi
    check_records "$name"
}

itest_tsa_setup local
"$LG" gen-tsa --out "$TMP/tsa.set" --count 500 --hashes sha256=1 --seed 5 >/dev/null ||
    fatal "request set" "gen-tsa failed"
printf 'disk fault test document\n' >"$TMP/doc.txt"
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null ||
    fatal "openssl ts -query" "cannot build the query"

# ==== 1. tsad with its journal (a full disk shows when the journal needs a new segment) ====
mount_tmpfs "$STORE" 24m || fatal "tmpfs for the store" "$(cat "$TMP/mount.err")"
printf '[store]\njournal_segment = 256k\njournal_max = 4M\n' >>"$CONF"
itest_tsad_start
URL=$BASE/tsa/soft
itest_tsad_healthy
full_cycle journal
# ==== 2. journal = no: every record an LMDB commit (ENOSPC when the file grows) ====
tsad_stop
printf '[store]\njournal = no\n' >>"$CONF"
itest_tsad_start
URL=$BASE/tsa/soft
itest_tsad_healthy
full_cycle nojournal
tsad_stop
chain_intact "journal, then journal = no, each through a full disk" "$CONF"
itest_log_clean "$LOG"
umount "$STORE" && MOUNTS=()

# ==== 3. tsad's filesystem turns read-only under load (an ext4 error, errors=remount-ro) ====
# `mount -o remount,ro` is refused (EBUSY) while tsad holds its files open for writing; what
# makes a filesystem read-only under a running daemon is the kernel, after an error. ext4 in
# that state cannot be made writable again without an unmount and fsck: tsad refuses tokens
# until then, and a tsad started on the repaired filesystem recovers every record.
ro_part() {
    local img=$TMP/ro.img dev loop mnt=$TMP/rodisk a bad
    for t in losetup mkfs.ext4 e2fsck; do
        command -v "$t" >/dev/null || {
            t_ok "read-only: skipped, $t is not installed"
            return
        }
    done
    if ! { truncate -s 64M "$img" && mkfs.ext4 -q -F "$img" >/dev/null 2>&1; }; then
        t_ok "read-only: skipped, cannot make an ext4 image"
        return
    fi
    loop=$(losetup -f --show "$img" 2>"$TMP/losetup.err") || {
        t_ok "read-only: skipped, no loop device ($(cat "$TMP/losetup.err"))"
        return
    }
    LOOPS+=("$loop")
    dev=$(basename "$loop")
    mkdir -p "$mnt"
    mount -o errors=remount-ro "$loop" "$mnt" 2>"$TMP/mount.err" || {
        t_ok "read-only: skipped, cannot mount ext4 on $loop ($(cat "$TMP/mount.err"))"
        return
    }
    MOUNTS=("$mnt")
    if [[ ! -w /sys/fs/ext4/$dev/trigger_fs_error ]]; then
        t_ok "read-only: skipped, no /sys/fs/ext4/$dev/trigger_fs_error"
        return
    fi
    STORE=$mnt/store
    mkdir -p "$STORE" && chmod 0700 "$STORE"
    tsad_write_conf "$CONF" "$TMP/pki" "$PORT" "$SOCK" "$STORE"
    printf '[store]\njournal_segment = 256k\njournal_max = 4M\n' >>"$CONF"
    : >"$TMP/granted.txt"
    itest_tsad_start
    URL=$BASE/tsa/soft
    itest_tsad_healthy
    a=$(ask "$URL")
    [[ $a == granted* ]] && echo "${a#granted }" >>"$TMP/granted.txt"
    load_start ro
    sleep 1
    echo "test_disk_faults: forced error" >"/sys/fs/ext4/$dev/trigger_fs_error"
    if grep -q "^$loop .*[ ,]ro[ ,]\|emergency_ro" /proc/mounts; then
        t_ok "read-only: the ext4 error made the store's filesystem read-only under tsad"
    else
        t_fail "read-only: the filesystem turned read-only" "$(grep "^$loop " /proc/mounts)"
    fi
    if wait_answer "$URL" systemFailure 30; then
        t_ok "read-only: requests answered systemFailure (after ${#SEEN[@]} request(s))"
    else
        t_fail "read-only: requests answered systemFailure" "answers: ${SEEN[*]}"
    fi
    bad=0
    for _ in 1 2 3; do
        a=$(ask "$URL")
        [[ $a == systemFailure ]] || bad=$((bad + 1))
        [[ $a == granted* ]] && echo "${a#granted }" >>"$TMP/granted.txt"
    done
    expect "read-only: and so it stays (3 more requests refused)" "$bad" 0
    expect "read-only: /healthz 503, store.ok false" "$(healthz_store "$BASE")" "503 false"
    if grep -q 'Read-only file system' "$LOG"; then t_ok "read-only: the log says why (EROFS)"; else
        t_fail "read-only: the log says why" "$(tail -n 5 "$LOG")"
    fi
    if kill -0 "$TSAD_PID" 2>/dev/null; then t_ok "read-only: tsad keeps running"; else
        t_fail "read-only: tsad keeps running" "$(tail -n 5 "$LOG")"
    fi
    load_stop ro
    tsad_stop
    # the operator's repair: unmount, fsck, mount again
    umount "$mnt" && MOUNTS=()
    e2fsck -fy "$loop" >"$TMP/fsck.out" 2>&1
    (($? < 4)) || t_fail "read-only: e2fsck repairs the filesystem" "$(tail -n 3 "$TMP/fsck.out")"
    mount "$loop" "$mnt" 2>"$TMP/mount.err" || fatal "read-only: mount again" "$(cat "$TMP/mount.err")"
    MOUNTS=("$mnt")
    itest_tsad_start
    itest_tsad_healthy
    if wait_answer "$URL" granted 20; then t_ok "read-only: repaired: a new tsad grants tokens"; else
        t_fail "read-only: repaired: a new tsad grants tokens" "answers: ${SEEN[*]}"
    fi
    check_records "read-only, after repair"
    tsad_stop
    chain_intact "read-only, after repair" "$CONF"
    umount "$mnt" && MOUNTS=()
    losetup -d "$loop" && LOOPS=()
}
ro_part

# ==== 3. ocspd on a full store: pre-signed answers keep coming ====
STORE=$TMP/store
rm -rf "$STORE"
itest_ocsp_setup
# the store built, moved onto a tmpfs of its own (ocsp_store_demo makes STORE afresh)
ocspd_stop
mount_tmpfs "$TMP/odisk" 24m || fatal "tmpfs for ocspd's store" "$(cat "$TMP/mount.err")"
cp -a "$STORE/." "$TMP/odisk/" || fatal "store copied onto the tmpfs" "cp failed"
STORE=$TMP/odisk
sed -i "s|^path = $TMP/store\$|path = $STORE|" "$CONF"
grep -q "^path = $STORE\$" "$CONF" || fatal "ocspd configuration" "store path not rewritten"
ocspd_start "$CONF" "$TMP/ocspd.log" || fatal "ocspd on the tmpfs store" "$(tail -n 5 "$TMP/ocspd.log")"

# oq TAG OPENSSL_OCSP_ARGS...: one request with openssl ocsp, verified against CHAIN; TAG.out
oq() {
    local tag=$1
    shift
    timeout 20 openssl ocsp -issuer "$CA" "$@" -url "$URL" -CAfile "$CHAIN" -timeout 10 \
        -respout "$TMP/$tag.der" >"$TMP/$tag.out" 2>&1
}
# ostatus TAG FILE: "good", "revoked", "tryLater" or what openssl said
ostatus() {
    local st
    st=$(sed -n "s|^.*/$2: ||p" "$TMP/$1.out" | head -n 1)
    if [[ -n $st ]]; then echo "$st"; return; fi
    if grep -q 'tryLater\|try later' "$TMP/$1.out"; then echo tryLater; return; fi
    echo "other: $(head -c 200 "$TMP/$1.out" | tr '\n' ' ')"
}
olog_mark=$(wc -l <"$TMP/ocspd.log")
oq before -cert "$OCSP_GOOD_CERT" -no_nonce
expect "ocspd: good.pem answered good before the fault" "$(ostatus before good.pem)" good
fill "$STORE"
t_ok "ocspd: its store's filesystem filled ($(df --output=avail -k "$STORE" | tail -n 1 | tr -d ' ') kB left)"
oq full-good -cert "$OCSP_GOOD_CERT" -no_nonce
expect "ocspd, disk full: pre-signed answer for good.pem still served (good, verified)" \
    "$(ostatus full-good good.pem)" good
oq full-revoked -cert "$OCSP_REVOKED_CERT" -no_nonce
expect "ocspd, disk full: pre-signed answer for revoked.pem still served (revoked)" \
    "$(ostatus full-revoked revoked.pem)" revoked
# signed on demand (a nonce; a never-issued serial whose answer would be stored): answered,
# signed or tryLater, never a hang or a dead daemon
for c in nonce:"$OCSP_GOOD_CERT" never:"$OCSP_NEVER_ISSUED_CERT"; do
    tag=full-${c%%:*}
    if [[ $tag == full-nonce ]]; then oq "$tag" -cert "${c#*:}"; else oq "$tag" -cert "${c#*:}" -no_nonce; fi
    a=$(ostatus "$tag" "$(basename "${c#*:}")")
    if [[ $a == good || $a == revoked || $a == tryLater ]]; then
        t_ok "ocspd, disk full: on-demand request (${c%%:*}) answered: $a"
    else
        t_fail "ocspd, disk full: on-demand request (${c%%:*}) answered" "$a"
    fi
done
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$URL/healthz") || true
if [[ $code == 200 || $code == 503 ]]; then t_ok "ocspd, disk full: /healthz answers ($code)"; else
    t_fail "ocspd, disk full: /healthz answers" "HTTP '$code'"
fi
# an operator's revocation on a full store: done (and then served) or refused with a clear
# message (and good.pem still good): never half of it
SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/ocspctl" -c "$CONF" -d "$STORE" -u test-operator \
    revoke qca "$OCSP_GOOD_SERIAL" --reason keyCompromise >"$TMP/revoke.out" 2>&1
rrc=$?
oq full-after -cert "$OCSP_GOOD_CERT" -no_nonce
a=$(ostatus full-after good.pem)
if ((rrc == 0)) && [[ $a == revoked ]]; then
    t_ok "ocspd, disk full: ocspctl revoke succeeded and the very next answer says revoked"
    want_after=revoked
elif ((rrc != 0)) && [[ $a == good ]] && grep -Eiq 'space|error|fail' "$TMP/revoke.out"; then
    t_ok "ocspd, disk full: ocspctl revoke refused (exit $rrc: $(tail -n 1 "$TMP/revoke.out")), good.pem still good"
    want_after=good
else
    t_fail "ocspd, disk full: ocspctl revoke all or nothing" "exit $rrc, answer $a: $(tail -n 2 "$TMP/revoke.out")"
    want_after=$a
fi
if kill -0 "$OCSPD_PID" 2>/dev/null; then t_ok "ocspd, disk full: ocspd keeps running"; else
    t_fail "ocspd, disk full: ocspd keeps running" "$(tail -n 5 "$TMP/ocspd.log")"
fi
# an index import on the full disk (issue 10 §3, EID-12): its one chunk cannot be committed
# (ENOSPC at the commit), so ocspctl says nothing was imported and its audit line counts 0
# committed, never "the first N entries are committed"; the store keeps none of it
awk 'BEGIN { for (i = 1; i <= 20000; i++) printf "V\t351231235959Z\t\t7A%06X\tunknown\t/CN=full %d\n", i, i }' \
    >"$TMP/full-index.txt"
SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/ocspctl" -c "$CONF" -d "$STORE" -u test-operator \
    import-index qca "$TMP/full-index.txt" >"$TMP/import.out" 2>"$TMP/import.err"
expect "ocspctl import-index, disk full: exit 1, nothing imported" \
    "$?:$(grep -c '; nothing imported$' "$TMP/import.out")" "1:1"
expect "ocspctl import-index, disk full: no entries said to be committed" \
    "$(grep -c 'entries are committed' "$TMP/import.err")" 0
expect "ocspctl import-index, disk full: its audit line counts 0 committed" \
    "$(grep -Eo 'event=ocsp_import import-index .* committed=[0-9]+' "$TMP/import.err" |
        grep -Eo 'committed=[0-9]+$')" "committed=0"
rm -f "$STORE/filler"
expect "ocspctl import-index, disk full: none of its serials stored" \
    "$(SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF "$BUILD/ocspctl" -c "$CONF" -d "$STORE" list qca 2>/dev/null |
        grep -c '^7A0')" 0
oq back -cert "$OCSP_GOOD_CERT" -no_nonce
expect "ocspd, space back: good.pem answered as before ($want_after)" "$(ostatus back good.pem)" "$want_after"
oq back-never -cert "$OCSP_NEVER_ISSUED_CERT" -no_nonce
expect "ocspd, space back: on-demand answers signed again" "$(ostatus back-never never-issued.pem)" revoked
echo "ocspd log during the fault: $(tail -n +"$((olog_mark + 1))" "$TMP/ocspd.log" | grep -Ec 'err|warn') warning/error lines" >&2
itest_ocspd_stop_clean

t_summary "$NAME"
