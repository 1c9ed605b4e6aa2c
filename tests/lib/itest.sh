# shellcheck shell=bash
#
# itest.sh: the set-up shared by the tsad and ocspd integration tests
# (tests/integration/test_tsad*.sh, test_ocspd*.sh), so that each script holds only its checks.
# Source it first; it sets ROOT (the checkout) and cd's there, makes BUILD absolute and exports
# it, and sources common.sh, chrony.sh, pki.sh, tsad.sh, ocsp-pki.sh and ocspd.sh.
#
#   itest_setup NAME    NAME (the t_summary label) and TMP, a fresh private temp dir; installs
#                       `trap itest_cleanup EXIT`
#   itest_cleanup       stop tsad and ocspd, every tracked pid and the chronyd of CHRONY_DIR
#                       (when set), then remove TMP (kept, and named on stderr, with KEEP_TMP=1)
#   fatal NAME MSG      count NAME as failed with MSG, print the summary, exit 1
#   derutil CMD ARGS... the DER reader/writer tests/lib/derutil.py (commands: its docstring)
#   itest_tsa_setup CHRONY_MODE
#                       the TSA demo PKI in TMP/pki (pki.env sourced), a chronyd in CHRONY_MODE
#                       (chrony.sh: local | nosources) on CHRONY_DIR=TMP/chrony with command
#                       socket SOCK, a free PORT, and a tsad configuration CONF (TMP/tsad.conf:
#                       tsad_write_conf with store STORE=TMP/store) with log LOG=TMP/tsad.log;
#                       fatal on any failure
#   itest_tsad_start    tsad_start CONF LOG (fatal when it does not come up); BASE is
#                       http://127.0.0.1:PORT, URL is BASE/tsa
#   itest_tsad_healthy  wait for /healthz 200 (fatal otherwise): one passed check
#   itest_ocsp_setup    ocspd and ocspctl are built; the OCSP demo PKI in TMP/pki for
#                       URL=http://127.0.0.1:PORT (ocsp-pki.env sourced; CA, CHAIN, SIGNER), an
#                       ocspd configuration CONF (TMP/ocspd.conf) and store STORE (TMP/store)
#                       filled by ocsp_store_demo, ocspd started with log TMP/ocspd.log (up to
#                       3 ports tried): two passed checks; fatal on any failure
#   itest_log_clean LOG one check: no sanitizer, assertion or crash report in LOG (what a
#                       BUILD=build-asan daemon writes there)
#   itest_ocspd_stop_clean
#                       stop ocspd: two checks, it exits 0 on SIGTERM and itest_log_clean of
#                       its log
#
# Good-neighbour rules: everything runs in TMP on 127.0.0.1 free ports; every
# process started here is stopped by pid on exit, also on failure.

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
# shellcheck source=tests/lib/ocsp-pki.sh
. "$ROOT/tests/lib/ocsp-pki.sh"
# shellcheck source=tests/lib/ocspd.sh
. "$ROOT/tests/lib/ocspd.sh"

itest_setup() {
    NAME=${1:?itest_setup NAME}
    TMP=$(mktemp -d) || die "mktemp -d failed"
    trap itest_cleanup EXIT
}

itest_cleanup() {
    tsad_stop
    ocspd_stop || true
    cleanup_tracked
    if [[ -n ${CHRONY_DIR:-} ]]; then chrony_stop "$CHRONY_DIR"; fi
    if [[ -n ${KEEP_TMP:-} ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}

fatal() {
    t_fail "$1" "$2"
    t_summary "$NAME"
    exit 1
}

derutil() {
    python3 "$ROOT/tests/lib/derutil.py" "$@"
}

itest_tsa_setup() {
    local mode=${1:?itest_tsa_setup CHRONY_MODE}
    pki_demo "$TMP/pki" >/dev/null 2>&1 || fatal "demo PKI" "pki_demo failed"
    # shellcheck disable=SC1091
    . "$TMP/pki/pki.env"
    CHRONY_DIR=$TMP/chrony
    chrony_start "$CHRONY_DIR" "$mode" || fatal "chronyd $mode" "chrony_start $mode failed"
    SOCK=$(chrony_socket "$CHRONY_DIR")
    PORT=$(free_port) || fatal "free port" "none"
    CONF=$TMP/tsad.conf
    LOG=$TMP/tsad.log
    STORE=$TMP/store
    tsad_write_conf "$CONF" "$TMP/pki" "$PORT" "$SOCK" "$STORE"
}

itest_tsad_start() {
    tsad_start "$CONF" "$LOG" || fatal "tsad start" "$(tail -n 5 "$LOG")"
    BASE=http://127.0.0.1:$PORT
    URL=$BASE/tsa
}

itest_tsad_healthy() {
    wait_http "$BASE/healthz" 10 200 || fatal "tsad healthy" "$(curl -s "$BASE/healthz")"
    t_ok "tsad started, /healthz 200"
}

# itest_ocsp_delay_setup: itest_ocsp_setup's demo PKI and store (its variables, SOFTHSM2_CONF
# exported), its ocspd stopped again, for a script that starts ocspd with its own settings
# behind the simulated network HSM (bench/p11delay.c: $P11DELAY_SO)
itest_ocsp_delay_setup() {
    P11DELAY_SO=$BUILD/bench/libp11delay.so
    [[ -f $P11DELAY_SO ]] || fatal build "$P11DELAY_SO not built"
    itest_ocsp_setup
    export SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF
    itest_ocspd_stop_clean
}

itest_ocsp_setup() {
    local f attempt started=0
    for f in ocspd ocspctl; do
        [[ -x $BUILD/$f ]] || fatal build "$BUILD/$f is not built (make all)"
    done
    PORT=$(free_port) || fatal port "no free port"
    URL="http://127.0.0.1:$PORT"
    ocsp_pki_demo "$TMP/pki" "$URL" >"$TMP/pki.log" 2>&1 || fatal pki "$(tail -n 5 "$TMP/pki.log")"
    # shellcheck disable=SC1091
    . "$TMP/pki/ocsp-pki.env"
    # shellcheck disable=SC2034 # for the test scripts
    CA=$OCSP_CA_CERT CHAIN=$OCSP_CA_CHAIN SIGNER=$OCSP_SIGNER_CERT
    CONF=$TMP/ocspd.conf
    STORE=$TMP/store
    ocspd_write_conf "$CONF" "$PORT" "$STORE" "$TMP/pki"
    ocsp_store_demo "$TMP/pki" "$STORE" "$CONF" >"$TMP/store.log" 2>&1 ||
        fatal "store built with ocspctl" "$(tail -n 5 "$TMP/store.log")"
    t_ok "store built with ocspctl: init, issuer add (token key), import-index, presign"
    for attempt in 1 2 3; do
        if ocspd_start "$CONF" "$TMP/ocspd.log"; then
            started=1
            break
        fi
        ocspd_stop
        PORT=$(free_port) || break
        URL="http://127.0.0.1:$PORT"
        ocspd_write_conf "$CONF" "$PORT" "$STORE" "$TMP/pki"
    done
    ((started)) || fatal "ocspd starts" "$(tail -n 5 "$TMP/ocspd.log")"
    t_ok "ocspd serves $URL (attempt $attempt)"
}

# reload_wait PID LOG: SIGHUP the daemon and wait (10 s at most) for the AUDIT config_reload
# line that ends its reload, whatever the result; 1 when none came
reload_wait() {
    local pid=$1 log=$2 before i
    before=$(grep -c 'AUDIT event=config_reload ' "$log")
    kill -HUP "$pid"
    for ((i = 0; i < 200; i++)); do
        (($(grep -c 'AUDIT event=config_reload ' "$log") > before)) && return 0
        sleep 0.05
    done
    return 1
}

# verify_ok NAME ARGS...: `tsactl verify ARGS` exits 0 (its output in TMP/v.out)
verify_ok() {
    local name=$1 rc=0
    shift
    "$BUILD/tsactl" verify "$@" >"$TMP/v.out" 2>&1 || rc=$?
    if ((rc == 0)); then t_ok "$name"; else t_fail "$name" "exit $rc: $(head -n 3 "$TMP/v.out")"; fi
}
# verify_broken NAME ERE ARGS...: `tsactl verify ARGS` exits 1 and its first BROKEN line
# matches ERE
verify_broken() {
    local name=$1 pat=$2 rc=0 first
    shift 2
    "$BUILD/tsactl" verify "$@" >"$TMP/v.out" 2>&1 || rc=$?
    first=$(grep -m1 '^BROKEN' "$TMP/v.out")
    if ((rc == 1)) && [[ $first =~ $pat ]]; then t_ok "$name"; else
        t_fail "$name" "exit $rc, want 1 and a first BROKEN line matching '$pat': $(head -n 3 "$TMP/v.out")"
    fi
}

itest_log_clean() {
    local log=${1:?itest_log_clean LOG} name reports
    name="no sanitizer or assertion report in $(basename "$log")"
    reports=$(grep -E -m3 'Sanitizer|runtime error|Assertion|Segmentation|terminate called|Fatal glibc error|double free|stack smashing' "$log")
    if [[ -z $reports ]]; then t_ok "$name"; else t_fail "$name" "$reports"; fi
}

itest_ocspd_stop_clean() {
    local rc=0
    ocspd_stop || rc=$?
    if ((rc == 0)); then t_ok "ocspd exits 0 on SIGTERM"; else
        # the log's end says what it was doing (an abort leaves no report of its own)
        t_fail "ocspd exits 0 on SIGTERM" "exit status $rc; ocspd.log ends: $(tail -n 8 "$TMP/ocspd.log" | tr '\n' ' ' | cut -c1-1500)"
    fi
    itest_log_clean "$TMP/ocspd.log"
}
