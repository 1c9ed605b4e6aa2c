#!/usr/bin/env bash
#
# test_clock_chrony.sh: common/clock against a real chronyd 4.3 (DESIGN D3; STANDARDS TSA-04,
# TSA-05, TSP-12). Starts a private chronyd through tests/lib/chrony.sh, then runs the clock
# unit suite with CHRONY_SOCKET set, which adds a case that sends REQ_TRACKING over the command
# socket, decodes the reply and runs a clock_new() poller on it:
#   - `local` chronyd (local stratum 8): leap 0, stratum 8, ref id 7F7F0101, verdict CLOCK_OK;
#   - `nosources` chronyd: leap 3 ("Not synchronised"), verdict CLOCK_UNSYNC (no issuance).
# Also checks chrony.sh itself: the pidfile names the real chronyd, and chrony_stop ends it
# and its socket. Needs root (chronyd refuses to start otherwise).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in
/*) ;;
*) BUILD="$ROOT/$BUILD" ;;
esac
# shellcheck source=tests/lib/common.sh
. "$ROOT/tests/lib/common.sh"
# shellcheck source=tests/lib/chrony.sh
. "$ROOT/tests/lib/chrony.sh"

CHECK_BIN="$BUILD/tests/check_clock"
TMP=$(mktemp -d)
CHRONY_DIR="$TMP/chrony"
trap 'chrony_stop "$CHRONY_DIR"; rm -rf "$TMP"' EXIT

# run_suite LEAP: the unit suite with the real-chronyd case; every check must pass and the
# extra case must have run (one more check than without CHRONY_SOCKET).
run_suite() {
    local leap=$1 out base with
    out=$(env -u CHRONY_SOCKET CK_FORK=yes "$CHECK_BIN" 2>&1) || {
        echo "$out"
        return 1
    }
    base=$(sed -n 's/.*Checks: \([0-9]*\),.*/\1/p' <<<"$out")
    out=$(CHRONY_SOCKET=$(chrony_socket "$CHRONY_DIR") CHRONY_EXPECT_LEAP=$leap CK_FORK=yes \
        "$CHECK_BIN" 2>&1) || {
        echo "$out"
        return 1
    }
    with=$(sed -n 's/.*Checks: \([0-9]*\),.*/\1/p' <<<"$out")
    [[ -n $base && -n $with ]] && ((with == base + 1)) || {
        echo "expected $((base + 1)) checks with CHRONY_SOCKET, got '$with': $out"
        return 1
    }
}

pid_is_chronyd() {
    local pid
    pid=$(cat "$CHRONY_DIR/chronyd.pid") && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == chronyd ]]
}

stopped_cleanly() {
    local pid
    pid=$(cat "$CHRONY_DIR/chronyd.pid") || return 1
    chrony_stop "$CHRONY_DIR" || return 1
    ! kill -0 "$pid" 2>/dev/null && [[ ! -e $(chrony_socket "$CHRONY_DIR") ]]
}

if [[ ! -x $CHECK_BIN ]]; then
    t_fail "check_clock binary" "$CHECK_BIN missing (make $CHECK_BIN)"
    t_summary test_clock_chrony
    exit 1
fi

# ---- a local-reference chronyd: synchronised ----
if chrony_start "$CHRONY_DIR" local; then
    t_ok "chronyd local started"
    t_check "pidfile names the chronyd process" pid_is_chronyd
    t_check "chronyc sees Leap status Normal" \
        bash -c "chronyc -h '$(chrony_socket "$CHRONY_DIR")' tracking | grep -q '^Leap status *: Normal'"
    t_check "clock on local chronyd: leap 0, CLOCK_OK" run_suite 0
    t_check "chrony_stop ends chronyd and its socket" stopped_cleanly
else
    t_fail "chronyd local started" "chrony_start failed"
fi

# ---- a chronyd with no source at all: not synchronised ----
if chrony_start "$CHRONY_DIR" nosources; then
    t_ok "chronyd nosources started"
    t_check "clock on unsynchronised chronyd: leap 3, CLOCK_UNSYNC" run_suite 3
    t_check "chrony_stop ends chronyd and its socket" stopped_cleanly
else
    t_fail "chronyd nosources started" "chrony_start failed"
fi

t_summary test_clock_chrony
