#!/usr/bin/env bash
#
# test_disk_flap.sh: tsad's journal on a disk that fills and frees again and again
# under load, then a kill -9 and a restart (second review of issue 8, "Faults of the parts -
# Disk"; DESIGN D5, D10; STANDARDS TSA-18: no token without its record). Every token a client
# received has its record after the restart, no serial twice, keys 1..N without a gap.
# Needs root for mount; without it the test says so and passes nothing but the skip.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_disk_flap

MOUNTS=()
flap_cleanup() {
    local m
    tsad_stop
    cleanup_tracked
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    itest_cleanup
}
trap flap_cleanup EXIT

expect() {
    if [[ $2 == "$3" ]]; then t_ok "$1"; else t_fail "$1" "got '$2', want '$3'"; fi
}
# mount_tmpfs DIR SIZE: a private tmpfs at DIR; non-zero (and nothing mounted) when we cannot
mount_tmpfs() {
    mkdir -p "$1" || return 1
    mount -t tmpfs -o "size=$2,mode=0700" tmpfs "$1" 2>"$TMP/mount.err" || return 1
    MOUNTS+=("$1")
}

# fill DIR: fill the filesystem of DIR to the last byte (DIR/filler)
fill() {
    dd if=/dev/zero of="$1/filler" bs=64k status=none 2>/dev/null
    # the last partial blocks
    head -c 1000000 /dev/zero >>"$1/filler" 2>/dev/null
    true
}

# dump_log: the audit log as "KEYHEX SERIAL" lines in TMP/log.txt (as test_tsad_crash.sh)
dump_log() {
    local prev=-1 n i
    for ((i = 0; i < 30; i++)); do
        mdb_dump -s tsa_audit "$STORE" >"$TMP/dump.txt" 2>"$TMP/dump.err" || return 1
        derutil mdb "$TMP/dump.txt" >"$TMP/audit.txt" || return 1
        n=$(grep -c . "$TMP/audit.txt")
        [[ $n == "$prev" ]] && break
        prev=$n
        sleep 0.2
    done
    awk '{ k = $1; sub(/^[^ ]* /, ""); print k, $0 }' "$TMP/audit.txt" |
        sed -E 's/^([0-9a-f]+) .*"serial":"([0-9a-f]+)".*/\1 \2/' >"$TMP/log.txt"
}

# check_records NAME: every token received (TMP/granted.txt) is in the log once, keys 1..N
check_records() {
    local name=$1 missing n i got
    got=$(sort -u "$TMP/granted.txt" | grep -c .)
    dump_log || {
        t_fail "$name: mdb_dump" "$(cat "$TMP/dump.err")"
        return
    }
    missing=$(awk '{ print $2 }' "$TMP/log.txt" | sort -u |
        comm -13 - <(sort -u "$TMP/granted.txt") | grep -c .)
    expect "$name: each of the $got tokens received has its record in the audit log" \
        "$missing missing" "0 missing"
    expect "$name: no serial twice in the log ($(grep -c . "$TMP/log.txt") records)" \
        "$(awk '{ print $2 }' "$TMP/log.txt" | sort | uniq -d | grep -c .)" 0
    n=$(grep -c . "$TMP/log.txt")
    expect "$name: keys are 1..N without a gap" \
        "$(awk '{ print $1 }' "$TMP/log.txt" | cmp -s - <(for ((i = 1; i <= n; i++)); do
            printf '%016x\n' "$i"; done) && echo yes)" yes
}

# load_start NAME: loadgen against URL in the background (serials to TMP/lg-NAME.serials)
load_start() {
    : >"$TMP/lg-$1.serials"
    "$LG" run --url "$URL" --requests "$TMP/tsa.set" --conns 8 --duration 60 --timeout 5 \
        --rate 200 --verify-every 0 --save-serials "$TMP/lg-$1.serials" >"$TMP/lg-$1.out" 2>&1 &
    LG_PID=$!
    track_pid "$LG_PID"
}

load_stop() {
    kill -TERM "$LG_PID" 2>/dev/null # its serials are written after every round
    wait "$LG_PID" 2>/dev/null
    cat "$TMP/lg-$1.serials" >>"$TMP/granted.txt"
}
if ! mount_tmpfs "$TMP/probe" 1m; then
    echo "SKIP: cannot mount a tmpfs ($(cat "$TMP/mount.err")): the test needs root" >&2
    t_ok "skipped: mount -t tmpfs refused (not root?)"
    t_summary "$NAME"
    exit 0
fi
umount "$TMP/probe" && MOUNTS=()
LG=$BUILD/bench/loadgen
[[ -x $LG ]] || fatal "loadgen" "$LG is not built (make all)"

itest_tsa_setup local
"$LG" gen-tsa --out "$TMP/tsa.set" --count 500 --hashes sha256=1 --seed 5 >/dev/null ||
    fatal "request set" "gen-tsa failed"
mount_tmpfs "$STORE" 24m || fatal "tmpfs for the store" "$(cat "$TMP/mount.err")"
printf '[store]\njournal_segment = 256k\njournal_max = 4M\n' >>"$CONF"
itest_tsad_start
URL=$BASE/tsa/soft
itest_tsad_healthy
: >"$TMP/granted.txt"

# the disk fills and frees every 0.5 s for 15 s under load, then tsad is killed (-9)
load_start flap
for ((i = 0; i < 15; i++)); do
    fill "$STORE"
    sleep 0.5
    rm -f "$STORE/filler"
    sleep 0.5
done
fill "$STORE"
sleep 0.3
rm -f "$STORE/filler"
sleep 0.2
kill -KILL "$TSAD_PID"
wait "$TSAD_PID" 2>/dev/null
TSAD_PID=
load_stop flap
n=$(grep -c . "$TMP/granted.txt")
if ((n > 0)); then t_ok "the load got $n tokens while the disk flapped"; else
    t_fail "the load got tokens while the disk flapped" "$(tail -n 5 "$TMP/lg-flap.out")"
fi
itest_tsad_start
URL=$BASE/tsa/soft
itest_tsad_healthy
check_records "after kill -9 and restart"
tsad_stop
itest_log_clean "$LOG"
umount "$STORE" && MOUNTS=()
t_summary "$NAME"
