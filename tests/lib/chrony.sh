# shellcheck shell=bash
#
# chrony.sh: start and stop a private chronyd for tests (sourced, not run). It never touches
# the system clock (-x), opens no NTP or UDP command port (port 0, cmdport 0) and is reached
# only through its command socket DIR/chronyd.sock, the one common/clock.c speaks to
# (DESIGN D3; STANDARDS TSA-04/TSA-05 tests need a real chronyd in known states).
#
#   chrony_start DIR MODE   MODE=local: `local stratum 8`, no servers -> "Leap status: Normal"
#                           MODE=nosources: no servers, no local -> "Not synchronised"
#   chrony_stop DIR         SIGTERM the pid in DIR/chronyd.pid, wait, SIGKILL if it lingers
#   chrony_socket DIR       print the command socket path
#
# What chronyd 4.3 does here (measured on Debian 12):
# - It must be started as root, even with -x ("Fatal error : Not superuser" otherwise).
# - Run as root it drops privileges to _chrony and then refuses a socket directory it does not
#   own ("Wrong owner of DIR (UID != 102)"), disables the command socket and, with nothing
#   else to do, exits ("Fatal error : Nothing to do"). So as root we pass `-u root`; the
#   directory must also not be accessible by others (mode 0700/0770): chrony_start sets 0700.
# - A `local` chronyd answers "Leap status: Normal", stratum 8, ref id 7F7F0101 at its first
#   reply, within a second of starting: there is no wait for synchronisation.
# - Its reference time does NOT advance continuously: chronyd sets it to "now - 1 s" (minus up
#   to 1 s of random fuzz) and refreshes it only when a query finds it more than 64 s old
#   (LOCAL_REF_UPDATE_INTERVAL). Observed ref times 19:32:54, 19:33:57, 19:35:09 while polled
#   every 15 s. So last_update_age (now - ref time) seen by a client cycles from ~1 s up to
#   ~64-65 s; a clock with max_update_age below ~70 s would flap to STALE once a minute. With
#   poll_interval 1 s, max_update_age = 90 s is safe (65 s worst case + sample age + margin).
# - Root delay/dispersion, skew and residual frequency are 0 in local mode; a `nosources`
#   chronyd reports leap 3, stratum 0, ref time 0 (1970), root delay and dispersion 1.0 s.
# - chronyd removes its socket and pidfile when it exits on SIGTERM.

CHRONY_START_TIMEOUT=${CHRONY_START_TIMEOUT:-10}

chrony_socket() {
    printf '%s/chronyd.sock\n' "$1"
}

# chrony_write_conf DIR MODE
chrony_write_conf() {
    local dir=$1 mode=$2
    {
        printf 'bindcmdaddress %s/chronyd.sock\n' "$dir"
        printf 'pidfile %s/chronyd.pid\n' "$dir"
        printf 'port 0\n'
        printf 'cmdport 0\n'
        if [ "$mode" = local ]; then
            printf 'local stratum 8\n'
        fi
    } >"$dir/chrony.conf"
}

# chrony_wait_ready DIR MODE PID: 0 once chronyc answers (and, for local, says Normal).
chrony_wait_ready() {
    local dir=$1 mode=$2 pid=$3 sock out i
    sock=$(chrony_socket "$dir")
    for ((i = 0; i < CHRONY_START_TIMEOUT * 10; i++)); do
        if ! _chrony_alive "$pid"; then
            echo "chrony_start: chronyd exited; log:" >&2
            cat "$dir/chronyd.log" >&2
            return 1
        fi
        if [ -S "$sock" ] && out=$(chronyc -h "$sock" tracking 2>/dev/null); then
            if [ "$mode" != local ] || grep -q '^Leap status *: Normal' <<<"$out"; then
                return 0
            fi
        fi
        sleep 0.1
    done
    echo "chrony_start: chronyd in $dir not ready after ${CHRONY_START_TIMEOUT}s" >&2
    return 1
}

# chrony_start DIR MODE: start chronyd, wait until it answers; 0 on success.
chrony_start() {
    local dir=$1 mode=$2 user pid i
    case "$mode" in
    local | nosources) ;;
    *)
        echo "chrony_start: MODE must be local or nosources, not '$mode'" >&2
        return 2
        ;;
    esac
    mkdir -p "$dir" && chmod 0700 "$dir" || return 1
    rm -f "$dir/chronyd.pid"
    chrony_write_conf "$dir" "$mode" || return 1
    user=$(id -un) # root: keep root, see above
    chronyd -x -d -u "$user" -f "$dir/chrony.conf" </dev/null >"$dir/chronyd.log" 2>&1 &
    pid=$!
    # chronyd writes its pidfile itself; it must name the process we started
    for ((i = 0; i < CHRONY_START_TIMEOUT * 10; i++)); do
        [ -s "$dir/chronyd.pid" ] && break
        _chrony_alive "$pid" || break
        sleep 0.1
    done
    if [ "$(cat "$dir/chronyd.pid" 2>/dev/null)" != "$pid" ]; then
        echo "chrony_start: chronyd pidfile does not name pid $pid" >&2
        cat "$dir/chronyd.log" >&2
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 1
    fi
    if ! chrony_wait_ready "$dir" "$mode" "$pid"; then
        chrony_stop "$dir"
        return 1
    fi
    return 0
}

# _chrony_alive PID: true while PID runs; a zombie (our exited child) is reaped, counts as gone.
_chrony_alive() {
    local pid=$1 state=""
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null) || state=""
    if [ "$state" = Z ]; then
        wait "$pid" 2>/dev/null
        return 1
    fi
    return 0
}

# chrony_stop DIR: stop the chronyd whose pid is in DIR/chronyd.pid; 0 when it is gone.
chrony_stop() {
    local dir=$1 pid i
    pid=$(cat "$dir/chronyd.pid" 2>/dev/null) || return 0
    [ -n "$pid" ] || return 0
    # only ever signal a chronyd: the pid may have been reused if it died on its own
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != chronyd ]; then
        rm -f "$dir/chronyd.pid"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || {
        rm -f "$dir/chronyd.pid"
        return 0
    }
    for ((i = 0; i < 50; i++)); do
        _chrony_alive "$pid" || break
        sleep 0.1
    done
    if _chrony_alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null
        sleep 0.1
    fi
    wait "$pid" 2>/dev/null
    rm -f "$dir/chronyd.pid"
    return 0
}
