# shellcheck shell=bash
#
# common.sh: helpers shared by the integration tests, `make run` and the bench scripts.
# Source it; it defines functions and a few globals, and changes no shell option.
#
#   free_port                  print a TCP port that is free on 127.0.0.1 right now
#   wait_http URL TIMEOUT [CODE]
#                              poll URL with curl until it answers (any HTTP status, or
#                              exactly CODE when given); non-zero after TIMEOUT seconds
#   track_pid PID              remember a process this script started
#   cleanup_tracked            stop exactly the tracked pids: TERM, up to 5 s, then KILL.
#                              Meant for an EXIT trap: trap cleanup_tracked EXIT
#   daemon_start NAME CONF LOG CMD...
#                              run CMD (a daemon NAME configured by CONF) in the background,
#                              output appended to LOG; track its pid and wait up to 10 s for
#                              http://LISTEN/healthz to answer with any status (LISTEN: CONF's
#                              "listen = " line); sets DAEMON_PID. Non-zero, with LOG's tail on
#                              stderr, when CMD exits first or never answers
#   daemon_stop PID            SIGTERM PID when it runs and wait for it; returns its exit
#                              status (0 when it was not running)
#   kv_get FILE KEY            print the value of the first KEY=VALUE line of FILE (read by
#                              the shell itself: the tests call it thousands of times)
#   kill9_when_logged PID FILE PATTERN
#                              wait (up to 30 s) until FILE holds PATTERN or PID has ended,
#                              then kill -9 PID and reap it: a process killed mid-work
#   die MSG                    print "error: MSG" on stderr and exit 1
#   t_ok NAME / t_fail NAME MSG / t_check NAME CMD...
#                              test counters (T_PASSED, T_FAILED) with one line per result
#   t_summary NAME             print "NAME: N passed, M failed"; non-zero when M > 0
#
# Good-neighbour rules: servers bind 127.0.0.1 on free ports, every process a
# test starts is tracked by pid and stopped on exit, never by name.

# python3 is resolved once: when PATH's python3 is a version manager's shim (pyenv's is a
# bash script that forks ~15 processes and costs 0.1-1 s a call), a directory holding a link
# to the interpreter it selects goes first in PATH, for this script and what it starts (the
# tests call python3 a few hundred times): build/pydirect. PY_DIRECT names it once done.
if [[ -z ${PY_DIRECT:-} ]] && _py=$(command -v python3) && [[ $_py == */shims/* ]] &&
    _real=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) && [[ -x $_real ]]; then
    PY_DIRECT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/pydirect
    mkdir -p "$PY_DIRECT" && ln -s "$_real" "$PY_DIRECT/python3.$$" &&
        mv -f "$PY_DIRECT/python3.$$" "$PY_DIRECT/python3" && export PY_DIRECT PATH="$PY_DIRECT:$PATH"
fi
unset _py _real

T_PASSED=${T_PASSED:-0}
T_FAILED=${T_FAILED:-0}
_COMMON_PIDS=()

kv_get() {
    local line
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line == "$2="* ]]; then
            printf '%s\n' "${line#"$2="}"
            return 0
        fi
    done <"$1"
    return 0
}

kill9_when_logged() {
    local pid=$1 i
    for ((i = 0; i < 600; i++)); do
        grep -q -- "$3" "$2" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Ask the kernel for an ephemeral port on 127.0.0.1 (bind to port 0). The port is released
# before we return, so a tiny race remains; callers retry the start-up on EADDRINUSE if they
# care. Falls back to a random high port checked against `ss` when python3 is unusable.
free_port() {
    local port
    if port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()' 2>/dev/null) && [[ $port =~ ^[0-9]+$ ]]; then
        printf '%s\n' "$port"
        return 0
    fi
    local tries
    for ((tries = 0; tries < 100; tries++)); do
        port=$((20000 + RANDOM % 40000))
        if [[ -z $(ss -Htan "( sport = :$port )" 2>/dev/null) ]]; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    echo "free_port: no free port found" >&2
    return 1
}

# wait_http URL TIMEOUT [CODE]: 0 once URL answers (with CODE if given), 1 after TIMEOUT s.
wait_http() {
    local url=$1 timeout=${2:-10} want=${3:-} code deadline
    deadline=$((SECONDS + timeout))
    while ((SECONDS <= deadline)); do
        code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$url" 2>/dev/null) || true
        if [[ -n $code && $code != 000 ]]; then
            if [[ -z $want || $code == "$want" ]]; then
                return 0
            fi
        fi
        sleep 0.1
    done
    echo "wait_http: $url did not answer${want:+ with $want} within ${timeout}s" >&2
    return 1
}

track_pid() {
    [[ ${1:-} =~ ^[0-9]+$ ]] || {
        echo "track_pid: bad pid '${1:-}'" >&2
        return 1
    }
    _COMMON_PIDS+=("$1")
}

# True while PID runs. A zombie child is reaped here and counts as gone.
_common_pid_alive() {
    local pid=$1 state=""
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r /proc/$pid/stat ]]; then
        state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null) || state=""
    fi
    if [[ $state == Z ]]; then
        wait "$pid" 2>/dev/null || true
        return 1
    fi
    return 0
}

cleanup_tracked() {
    local pid alive i
    ((${#_COMMON_PIDS[@]} > 0)) || return 0
    for pid in "${_COMMON_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pid in "${_COMMON_PIDS[@]}"; do
            if _common_pid_alive "$pid"; then
                alive=1
            fi
        done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${_COMMON_PIDS[@]}"; do
        if _common_pid_alive "$pid"; then
            echo "cleanup: pid $pid ignored TERM for 5 s, sending KILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    _COMMON_PIDS=()
    return 0
}

daemon_start() {
    local name=${1:?daemon_start NAME CONF LOG CMD...} conf=${2:?conf} log=${3:?log} url i
    shift 3
    DAEMON_PID=
    "$@" >>"$log" 2>&1 &
    DAEMON_PID=$!
    track_pid "$DAEMON_PID"
    url="http://$(sed -n 's/^listen = //p' "$conf" | head -n 1)/healthz"
    for ((i = 0; i < 100; i++)); do
        if ! _common_pid_alive "$DAEMON_PID"; then
            echo "$name exited at start; log:" >&2
            tail -n 20 "$log" >&2
            return 1
        fi
        if curl -s -o /dev/null --max-time 2 "$url"; then return 0; fi
        sleep 0.1
    done
    echo "$name did not answer on $url" >&2
    return 1
}

daemon_stop() {
    local pid=${1:-} rc=0
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || rc=$?
    fi
    return "$rc"
}

t_ok() {
    T_PASSED=$((T_PASSED + 1))
    printf 'ok   - %s\n' "$1"
}

t_fail() {
    T_FAILED=$((T_FAILED + 1))
    printf 'FAIL - %s: %s\n' "$1" "${2:-failed}"
}

# expect NAME GOT WANT: ok when GOT equals WANT, else a failure showing both.
expect() {
    if [[ $2 == "$3" ]]; then t_ok "$1"; else t_fail "$1" "got '$2', want '$3'"; fi
}

# has NAME FILE ERE: ok when a line of FILE matches ERE, else a failure showing FILE's end.
has() {
    if grep -Eq -- "$3" "$2"; then t_ok "$1"; else
        t_fail "$1" "no /$3/ in $(basename "$2"): $(tail -n 5 "$2" | tr '\n' ' ' | cut -c1-600)"
    fi
}

# t_check NAME CMD...: run CMD (output hidden unless it fails) and count the result.
t_check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        t_ok "$name"
    else
        t_fail "$name" "command failed: $* ${out:+-- $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')}"
    fi
}

t_summary() {
    printf '%s: %d passed, %d failed\n' "$1" "$T_PASSED" "$T_FAILED"
    ((T_FAILED == 0))
}
