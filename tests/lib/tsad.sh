# shellcheck shell=bash
#
# tsad.sh: write a tsad configuration for the demo PKI and start/stop a tsad (sourced).
#
#   tsad_write_conf OUT PKI_DIR PORT CHRONY_SOCKET STORE_DIR [EXTRA_UNITS_FILE]
#       three TSUs in the SoftHSM2 token: n1 (ECDSA P-256, default of /tsa), rsa (RSA-3072 PSS,
#       reqPolicy on /tsa) and q1 (qualified ECDSA P-256, alone on /tsa/qualified); plus two
#       software-key TSUs on /tsa/soft (P-256 default, RSA-3072 PSS by policy: openssl ts -verify
#       cannot check PSS, openssl cms -verify can).
#   tsad_audit_conf OUT PKI_DIR [NODE] [INTERVAL]
#       an [audit] section (for EXTRA_UNITS_FILE): the node name and signed checkpoints every
#       INTERVAL (default 60s) with the token's audit key (audit-p256), issue 9 item 3
#   tsad_start CONF LOGFILE   start ${BUILD}/tsad in the background, track its pid, wait for
#                             /healthz to answer (any status): daemon_start of common.sh;
#                             sets TSAD_PID
#   tsad_stop                 SIGTERM tsad, wait for it

tsad_write_conf() {
    local out=$1 pki=$2 port=$3 sock=$4 store=$5 extra=${6:-}
    # shellcheck disable=SC1091
    . "$pki/pki.env"
    cat >"$out" <<CONF
# tsad demo configuration (written by tests/lib/tsad.sh); every key: conf/tsad.conf
[server]
listen = 127.0.0.1:$port
threads = 2
max_body = 16k
timeout = 10s

[log]
level = info

[clock]
chrony_socket = $sock
poll_interval = 500ms
; a local-reference chronyd refreshes its reference time only every ~64 s
max_update_age = 90s
; chronyd -x does not discipline the kernel clock, so the kernel stays "unsynchronised"
kernel_check = no

[store]
path = $store
map_size = 4G

[signer]
pkcs11_module = $PKI_P11_MODULE
token = $PKI_P11_TOKEN
pin_file = $PKI_P11_PIN_FILE
workers = 2

[tsa]
hashes = sha256 sha384 sha512 sha3-256 sha3-384 sha3-512

[tsu n1]
policy = $TSA_POLICY_N
path = /tsa
default = yes
certificate = $TSU_N_CERT
chain = $PKI_CA_CHAIN
key_label = $TSU_N_LABEL
signature = ecdsa
digest = sha256
accuracy = 100ms

[tsu rsa]
policy = $TSA_POLICY_RSA
path = /tsa
certificate = $TSU_RSA_CERT
chain = $PKI_CA_CHAIN
key_label = $TSU_RSA_LABEL
signature = rsa-pkcs1
digest = sha256
accuracy = 1s
ess_cert_id_v1 = yes

[tsu q1]
policy = $TSA_POLICY_Q
path = /tsa/qualified
certificate = $TSU_Q_CERT
chain = $PKI_CA_CHAIN
key_label = $TSU_Q_LABEL
signature = ecdsa
digest = sha256
accuracy = 100ms
qualified = yes

[tsu soft-p256]
policy = 1.3.6.1.4.1.55555.1.11
path = /tsa/soft
default = yes
certificate = $SOFT_P256_CERT
chain = $PKI_CA_CHAIN
key_file = $SOFT_P256_KEY
signature = ecdsa
digest = sha256
accuracy = 500ms

[tsu soft-rsa]
policy = 1.3.6.1.4.1.55555.1.12
path = /tsa/soft
certificate = $SOFT_RSA_CERT
chain = $PKI_CA_CHAIN
key_file = $SOFT_RSA_KEY
signature = rsa-pss
digest = sha384
accuracy = 1s
tsa_name = no
CONF
    if [ -n "$extra" ]; then cat "$extra" >>"$out"; fi
}

tsad_audit_conf() {
    local out=$1 pki=$2 node=${3:-} interval=${4:-60s}
    # shellcheck disable=SC1091
    . "$pki/pki.env"
    {
        printf '\n[audit]\n'
        if [ -n "$node" ]; then printf 'node = %s\n' "$node"; fi
        printf '%s\n' "key_label = $AUDIT_LABEL" "certificate = $AUDIT_CERT" \
            "checkpoint_interval = $interval"
    } >"$out"
}

tsad_start() {
    local rc=0
    daemon_start tsad "${1:?tsad_start CONF LOG}" "${2:?log}" "${BUILD:-build}/tsad" -c "$1" ||
        rc=$?
    TSAD_PID=$DAEMON_PID
    return "$rc"
}

tsad_stop() {
    daemon_stop "${TSAD_PID:-}" || true
    TSAD_PID=
}
