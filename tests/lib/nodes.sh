# shellcheck shell=bash
#
# nodes.sh: nginx and HAProxy in front of several daemon nodes, for the several-node tests
# (tests/integration/test_nginx_ocspd.sh, test_haproxy_tsad.sh; issue 9 item 2, DESIGN D7).
# Source it after itest.sh. The run configuration is made from the shipped file
# (conf/nginx-ocspd.conf, conf/haproxy-tsad.cfg) by replacing its example values only, so the
# tests exercise what an operator installs; a replacement that no longer matches the shipped
# file is an error, not a silent no-op.
#
#   nodes_need BIN PACKAGE  0 when BIN is on PATH (/usr/sbin included), after trying
#                           tests/lib/deps.sh to install it; otherwise prints a SKIP line
#                           and returns 1 (the caller passes the skip and exits 0)
#   nodes_sub FILE FROM TO  replace the literal FROM by TO in FILE (every occurrence); fails
#                           when FROM does not occur
#   nodes_nginx_conf OUT DIR PORT NODE1 NODE2
#                           OUT from conf/nginx-ocspd.conf: listen 127.0.0.1:PORT, upstream
#                           servers NODE1 NODE2 (host:port), pid, logs, cache and temporary
#                           paths under DIR, workers as the current user
#   nodes_nginx_start CONF DIR
#                           `nginx -t`, then nginx in the foreground (daemon off) with prefix
#                           DIR, its error log DIR/error.log from the first line (then the
#                           file's, DIR/log/ocspd-error.log), output in DIR/nginx.out; tracked;
#                           waits for its port; sets NGINX_PID
#   nodes_nginx_stop        SIGTERM nginx's master by pid, wait (its workers go with it)
#   nodes_haproxy_conf OUT DIR PORT NODE1 NODE2 INTER
#                           OUT from conf/haproxy-tsad.cfg: bind 127.0.0.1:PORT, servers,
#                           check interval INTER, stats socket DIR/admin.sock, pid file in DIR,
#                           no chroot/user switch, logs to stdout (the test's log file)
#   nodes_haproxy_start CONF LOG
#                           `haproxy -c`, then haproxy -db (foreground) with output in LOG;
#                           tracked; waits for the stats socket; sets HAPROXY_PID
#   nodes_haproxy_stop      SIGTERM haproxy by pid, wait
#   nodes_haproxy_cmd CMD   one command on the stats socket (DIR/admin.sock), its answer
#   nodes_haproxy_status SERVER
#                           the server's status in backend tsad_nodes (UP, DOWN, "UP 1/2", ...)
#   nodes_haproxy_stat SERVER FIELD
#                           one column of `show stat` for that server (stot, chkfail, ...)
#   nodes_wait_status SERVER ERE SECONDS
#                           0 once the status matches ERE, 1 after SECONDS
#   nodes_load ARGS...      tests/lib/nodeload.py ARGS (the client loop)
#   nodes_free_ports N      print N distinct free ports on 127.0.0.1 (free_port of common.sh)
#
# Good-neighbour rules: own prefix, pid file, logs and temporary directories under
# the test's TMP; 127.0.0.1 free ports; stopped by pid; the system nginx/haproxy are never
# touched.

_NODES_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NGINX_PID=
HAPROXY_PID=
_NODES_HAPROXY_SOCK=

nodes_need() {
    local bin=${1:?nodes_need BIN PACKAGE} pkg=${2:?package}
    PATH=$PATH:/usr/sbin:/sbin
    if ! command -v "$bin" >/dev/null 2>&1; then
        "$_NODES_LIB_DIR/deps.sh" >&2 || true
    fi
    if command -v "$bin" >/dev/null 2>&1; then return 0; fi
    echo "SKIP: $bin is not installed and could not be installed (apt-get install $pkg)" >&2
    return 1
}

nodes_sub() {
    local file=${1:?nodes_sub FILE FROM TO} from=${2:?from} to=${3-} text
    text=$(<"$file")
    if [[ $text != *"$from"* ]]; then
        echo "nodes_sub: '$from' not found in $file (the shipped configuration changed?)" >&2
        return 1
    fi
    printf '%s\n' "${text//"$from"/"$to"}" >"$file"
}

nodes_nginx_conf() {
    local out=${1:?nodes_nginx_conf OUT DIR PORT NODE1 NODE2} dir=${2:?dir} port=${3:?port}
    local n1=${4:?node1} n2=${5:?node2} user
    mkdir -p "$dir/log" "$dir/var" || return 1
    cp "$ROOT/conf/nginx-ocspd.conf" "$out" || return 1
    user=$(id -un)
    nodes_sub "$out" "listen 80;" "listen 127.0.0.1:$port;" &&
        nodes_sub "$out" 192.0.2.11:3181 "$n1" &&
        nodes_sub "$out" 192.0.2.12:3181 "$n2" &&
        nodes_sub "$out" /var/cache/nginx-ocspd "$dir/var" &&
        nodes_sub "$out" /var/log/nginx/ "$dir/log/" &&
        nodes_sub "$out" /run/nginx-ocspd.pid "$dir/nginx.pid" &&
        nodes_sub "$out" "worker_processes auto;" "worker_processes 2;" || return 1
    if ((EUID == 0)); then
        nodes_sub "$out" "user www-data;" "user $user;"
    else
        nodes_sub "$out" "user www-data;" "# user: not root, the workers run as $user"
    fi
}

nodes_nginx_start() {
    local conf=${1:?nodes_nginx_start CONF DIR} dir=${2:?dir} port i
    port=$(sed -n 's/^ *listen 127\.0\.0\.1:\([0-9]*\);/\1/p' "$conf" | head -n 1)
    if ! nginx -t -p "$dir/" -e "$dir/error.log" -c "$conf" >"$dir/nginx-t.log" 2>&1; then
        cat "$dir/nginx-t.log" >&2
        return 1
    fi
    nginx -p "$dir/" -e "$dir/error.log" -c "$conf" -g 'daemon off;' >>"$dir/nginx.out" 2>&1 &
    NGINX_PID=$!
    track_pid "$NGINX_PID"
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$NGINX_PID" 2>/dev/null; then
            echo "nginx exited at start:" >&2
            tail -n 5 "$dir/nginx.out" "$dir/error.log" "$dir/log/ocspd-error.log" >&2 2>/dev/null
            return 1
        fi
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/healthz" && return 0
        sleep 0.1
    done
    echo "nginx does not answer on 127.0.0.1:$port" >&2
    return 1
}

nodes_nginx_stop() {
    daemon_stop "${NGINX_PID:-}" || true
    NGINX_PID=
}

nodes_haproxy_conf() {
    local out=${1:?nodes_haproxy_conf OUT DIR PORT NODE1 NODE2 INTER} dir=${2:?dir}
    local port=${3:?port} n1=${4:?node1} n2=${5:?node2} inter=${6:?inter}
    mkdir -p "$dir" || return 1
    cp "$ROOT/conf/haproxy-tsad.cfg" "$out" || return 1
    _NODES_HAPROXY_SOCK=$dir/admin.sock
    nodes_sub "$out" "bind :80" "bind 127.0.0.1:$port" &&
        nodes_sub "$out" 192.0.2.21:3180 "$n1" &&
        nodes_sub "$out" 192.0.2.22:3180 "$n2" &&
        nodes_sub "$out" "inter 2s" "inter $inter" &&
        nodes_sub "$out" /run/haproxy/tsad-admin.sock "$_NODES_HAPROXY_SOCK" &&
        nodes_sub "$out" /run/haproxy-tsad.pid "$dir/haproxy.pid" &&
        nodes_sub "$out" "log /dev/log local0" "log stdout format raw local0" &&
        nodes_sub "$out" "    chroot /var/lib/haproxy"$'\n' "" &&
        nodes_sub "$out" "    user haproxy"$'\n' "" &&
        nodes_sub "$out" "    group haproxy"$'\n' ""
}

nodes_haproxy_start() {
    local conf=${1:?nodes_haproxy_start CONF LOG} log=${2:?log} i
    if ! haproxy -c -f "$conf" >"$log.check" 2>&1; then
        cat "$log.check" >&2
        return 1
    fi
    haproxy -db -f "$conf" >>"$log" 2>&1 &
    HAPROXY_PID=$!
    track_pid "$HAPROXY_PID"
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$HAPROXY_PID" 2>/dev/null; then
            echo "haproxy exited at start:" >&2
            tail -n 5 "$log" >&2
            return 1
        fi
        [[ -S $_NODES_HAPROXY_SOCK ]] && nodes_haproxy_cmd 'show info' >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "haproxy's stats socket $_NODES_HAPROXY_SOCK does not answer" >&2
    return 1
}

nodes_haproxy_stop() {
    daemon_stop "${HAPROXY_PID:-}" || true
    HAPROXY_PID=
}

nodes_haproxy_cmd() {
    python3 - "$_NODES_HAPROXY_SOCK" "${1:?nodes_haproxy_cmd CMD}" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b'\n')
out = b''
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.write(out.decode())
PY
}

# the status column of `show stat` (CSV: pxname,svname,...,status is the 18th field)
nodes_haproxy_status() {
    nodes_haproxy_cmd 'show stat' |
        awk -F, -v s="${1:?nodes_haproxy_status SERVER}" '$1 == "tsad_nodes" && $2 == s { print $18 }'
}

# one field of `show stat` by its CSV header name (stot, chkfail, lastchg, ...)
nodes_haproxy_stat() {
    nodes_haproxy_cmd 'show stat' |
        awk -F, -v s="${1:?nodes_haproxy_stat SERVER FIELD}" -v f="${2:?field}" '
            NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
            $1 == "tsad_nodes" && $2 == s { print $col[f] }'
}

nodes_wait_status() {
    local server=${1:?nodes_wait_status SERVER ERE SECONDS} ere=${2:?ere} secs=${3:?seconds}
    local deadline st
    deadline=$((SECONDS + secs))
    while ((SECONDS <= deadline)); do
        st=$(nodes_haproxy_status "$server")
        [[ $st =~ $ere ]] && return 0
        sleep 0.1
    done
    echo "haproxy: $server is '$st', not /$ere/ after ${secs}s" >&2
    return 1
}

nodes_load() {
    python3 "$_NODES_LIB_DIR/nodeload.py" "$@"
}

nodes_free_ports() {
    local n=${1:?nodes_free_ports N} p tries
    local -a ports=()
    for ((tries = 0; tries < 50 && ${#ports[@]} < n; tries++)); do
        p=$(free_port) || return 1
        [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
    done
    ((${#ports[@]} == n)) || return 1
    echo "${ports[*]}"
}
