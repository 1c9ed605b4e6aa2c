# shellcheck shell=bash
#
# ocspd.sh: write an ocspd configuration for the OCSP demo PKI (tests/lib/ocsp-pki.sh) and
# start/stop an ocspd (sourced). Every key is documented in conf/ocspd.conf.
#
#   ocspd_write_conf OUT PORT STORE PKI_DIR [EXTRA_FILE]
#       listen on 127.0.0.1:PORT, LMDB store STORE, [signer] = the PKI's SoftHSM2 token "ocsp"
#       (module, token label, PIN file). The token's SoftHSM2 configuration is recorded in a
#       comment line (";! SOFTHSM2_CONF=...") that ocspd_start reads, so ocspd gets its own
#       token even when the caller's environment points at another one (tsad's in `make run`).
#       EXTRA_FILE, when given, is appended (later keys of a section are refused by ocspd, so
#       it should add sections, not repeat keys).
#   ocspd_conf_softhsm CONF print the SoftHSM2 configuration recorded in CONF
#   ocspd_start CONF LOGFILE
#                       start ${BUILD}/ocspd in the background with that SoftHSM2
#                       configuration, track its pid, wait for /healthz to answer (any status):
#                       daemon_start of common.sh; sets OCSPD_PID
#   ocspd_stop          SIGTERM ocspd, wait for it; returns ocspd's exit status (0 when it
#                       was not running)

ocspd_write_conf() {
    local out=${1:?ocspd_write_conf OUT PORT STORE PKI_DIR} port=${2:?port} store=${3:?store}
    local pki=${4:?pki dir} extra=${5:-}
    # shellcheck disable=SC1091
    . "$pki/ocsp-pki.env"
    cat >"$out" <<CONF
; ocspd demo configuration (written by tests/lib/ocspd.sh); every key: conf/ocspd.conf
;! SOFTHSM2_CONF=$OCSP_SOFTHSM2_CONF
[server]
listen = 127.0.0.1:$port
threads = 2
max_body = 8k
max_connections = 512
per_ip_limit = 0
timeout = 10s
base_path = /

[log]
level = info

[store]
path = $store
map_size = 64M

[signer]
pkcs11_module = $OCSP_P11_MODULE
token = $OCSP_P11_TOKEN
pin_file = $OCSP_P11_PIN_FILE
workers = 2
queue_max = 4096
batch_max = 64

[ocsp]
refresh_interval = 60s
refresh_margin = 50
max_age = 1h
max_certids = 8
CONF
    if [[ -n $extra ]]; then cat "$extra" >>"$out"; fi
}

ocspd_conf_softhsm() {
    sed -n 's/^;! SOFTHSM2_CONF=//p' "${1:?ocspd_conf_softhsm CONF}" | head -n 1
}

ocspd_start() {
    local conf=${1:?ocspd_start CONF LOG} log=${2:?log} hsm rc=0
    hsm=$(ocspd_conf_softhsm "$conf")
    daemon_start ocspd "$conf" "$log" \
        env "SOFTHSM2_CONF=${hsm:-${SOFTHSM2_CONF:-}}" "${BUILD:-build}/ocspd" -c "$conf" || rc=$?
    OCSPD_PID=$DAEMON_PID
    return "$rc"
}

ocspd_stop() {
    local rc=0
    daemon_stop "${OCSPD_PID:-}" || rc=$?
    OCSPD_PID=
    return "$rc"
}
