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
# shellcheck source=tests/lib/faults.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/faults.sh"
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
