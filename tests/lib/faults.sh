# shellcheck shell=bash
# Helpers of the fault tests (test_disk_faults.sh, test_disk_flap.sh, test_tsad_crash.sh),
# sourced after itest.sh: a private tmpfs to fill, a background load whose granted serials
# are kept, and the check that every token a client received has its record in tsad's audit
# log (STANDARDS TSA-18: no token without its record). Uses TMP, STORE, URL, LG.

# mount_tmpfs DIR SIZE: a private tmpfs at DIR (unmounted by the test's cleanup through
# MOUNTS); non-zero (and nothing mounted) when we cannot
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

# dump_log: the audit log of STORE as "KEYHEX SERIAL" lines in key order in TMP/log.txt
# (records wait for the journal's apply delay, so wait until the count stops moving)
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

# load_stop NAME: stop it; its serials are appended to TMP/granted.txt
load_stop() {
    kill -TERM "$LG_PID" 2>/dev/null # its serials are written after every round
    wait "$LG_PID" 2>/dev/null
    cat "$TMP/lg-$1.serials" >>"$TMP/granted.txt"
}
