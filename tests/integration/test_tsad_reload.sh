#!/usr/bin/env bash
#
# test_tsad_reload.sh: TSU rollover without downtime (issue 9 item 4). A real tsad on the demo
# SoftHSM2 token and chronyd, real clients (curl, openssl ts); SIGHUP reloads its
# configuration:
#   1. rollover under load: a client loop stamps continuously while a new key is generated in
#      the token, a certificate is issued for it, the config points TSU n1 at them and tsad
#      gets SIGHUP: no request fails; the tokens before the reload verify with the old
#      certificate, those after with the new one; AUDIT event=config_reload names the change
#      (sha256 old->new); config_reloads_total{result="ok"} counts it; the old set is released;
#   2. a TSU added (a new path) and one removed (/tsa/qualified: 404 afterwards);
#   3. configurations that do not load leave the running one serving and say why: a missing
#      certificate file, a certificate that does not match its key, a syntax error, a CA
#      certificate as TSU certificate (RFC 3161 §2.3, TSP-24): the log names the file:line or
#      the certificate/key, config_reloads_total{result="failed"} counts each;
#      a changed [server] key is reported "needs restart" and the rest applies;
#   4. requests in flight at the swap: tsad signs through the slow-HSM shim (bench/p11delay.c,
#      500 ms per signature, one at a time); requests queued when SIGHUP moves n1 to another
#      key are answered with tokens of the old key, the new ones with the new key, and the
#      old set is released only after the last of them was answered;
#   5. after the rollover the operator deletes the old key from the token; the device is then
#      removed and comes back: tsad re-initialises the module (C_Finalize, C_Initialize) and
#      finds its keys again, without looking for the released one (which is gone).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsad_reload

WRAP=$BUILD/bench/libp11delay.so
[[ -x $BUILD/tsad && -f $WRAP ]] || fatal build "tsad or $WRAP not built"

itest_tsa_setup local
BASECONF=$TMP/base.conf
cp "$CONF" "$BASECONF"
# the first daemon (parts 1-3) signs audit checkpoints: a reload must keep TSUs off its key
tsad_audit_conf "$TMP/audit.conf" "$TMP/pki"
cat "$TMP/audit.conf" >>"$CONF"
itest_tsad_start
itest_tsad_healthy
echo "a document to stamp during a rollover" >"$TMP/doc"
openssl ts -query -data "$TMP/doc" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null

# ---- helpers ----
# unit_set NAME KEY VALUE: set KEY in [tsu NAME] of CONF (the line replaced, or added)
unit_set() {
    python3 - "$CONF" "$1" "$2" "$3" <<'EOF'
import sys
path, unit, key, value = sys.argv[1:]
out, inside, done = [], False, False
for line in open(path).read().splitlines():
    if line.startswith('['):
        if inside and not done:
            out.append(f'{key} = {value}')
            done = True
        inside = line.strip() == f'[tsu {unit}]'
    elif inside and line.split('=')[0].strip() == key:
        line, done = f'{key} = {value}', True
    out.append(line)
if inside and not done:
    out.append(f'{key} = {value}')
open(path, 'w').write('\n'.join(out) + '\n')
EOF
}
# unit_del NAME KEY: remove KEY from [tsu NAME]; unit_drop NAME: remove the whole section
unit_del() {
    python3 - "$CONF" "$1" "$2" <<'EOF'
import sys
path, unit, key = sys.argv[1:]
out, inside = [], False
for line in open(path).read().splitlines():
    if line.startswith('['):
        inside = line.strip() == f'[tsu {unit}]'
    elif inside and line.split('=')[0].strip() == key:
        continue
    out.append(line)
open(path, 'w').write('\n'.join(out) + '\n')
EOF
}
unit_drop() {
    awk -v s="[tsu $1]" '/^\[/ { skip = ($0 == s) } !skip' "$CONF" >"$CONF.new" && mv "$CONF.new" "$CONF"
}
metric() { curl -s --max-time 5 "$BASE/metrics" | awk -v n="$1" '$1 == n { printf "%d\n", $2 }'; }
reloads() { metric "config_reloads_total{result=\"$1\"}"; }
# hup: SIGHUP tsad and wait for its audit line (the reload is done, either way)
hup() { reload_wait "$TSAD_PID" "$LOG"; }
last_audit() { grep 'AUDIT event=config_reload ' "$LOG" | tail -n 1; }
sha() { derutil certsha256 "$1"; }
# stamp TAG [PATH]: one request; TAG.tsr; prints "HTTP-code status"
stamp() {
    local code
    code=$(curl -s --max-time 20 -o "$TMP/$1.tsr" -w '%{http_code}' \
        -H 'Content-Type: application/timestamp-query' --data-binary @"$TMP/q.tsq" \
        "$BASE${2:-/tsa}")
    echo "$code $(derutil tsp-resp "$TMP/$1.tsr" 2>/dev/null | sed -n 's/^status=//p')"
}
# signer_of FILE: the SHA-256 of the TSU certificate the token carries: the one of its
# certificates that is not a CA of the demo chain
CHAIN_SHAS=" $(derutil certsha256 "$PKI_ROOT_CERT") $(derutil certsha256 "$PKI_TSACA_CERT") "
signer_of() {
    local c
    for c in $(derutil tsp-resp "$1" 2>/dev/null | sed -n 's/^cert_sha256=//p' | tr ',' ' '); do
        [[ $CHAIN_SHAS == *" $c "* ]] || echo "$c"
    done
}
verifies() { openssl ts -verify -data "$TMP/doc" -in "$1" -CAfile "$PKI_CA_CHAIN" >/dev/null 2>&1; }
# signed_by NAME TAG CERT: one check: TAG.tsr is a token that verifies and carries CERT
signed_by() {
    if verifies "$TMP/$2.tsr" && [[ $(signer_of "$TMP/$2.tsr") == $(sha "$3") ]]; then
        t_ok "$1"
    else
        t_fail "$1" "status $(derutil tsp-resp "$TMP/$2.tsr" 2>/dev/null | sed -n 's/^status=//p'), signer $(signer_of "$TMP/$2.tsr"), want $(sha "$3")"
    fi
}

expect "config_reloads_total{result=\"ok\"} is exported at 0" "$(reloads ok)" 0
expect "config_reloads_total{result=\"failed\"} is exported at 0" "$(reloads failed)" 0

# ---- 1. rollover of n1 to a new key in the token, under a continuous client loop ----
softhsm_keygen "$PKI_DIR/hsm" tsu-n2-p256 21 EC:prime256v1 "$TMP/n2.pub.pem" >"$TMP/keygen.log" 2>&1 ||
    fatal "new key generated in the token" "$(tail -n 3 "$TMP/keygen.log")"
pki_tsu_cert_for_pub "$PKI_DIR" "$TMP/n2.pub.pem" "$(pki_tsu_subject 'Demo TSU N2 P-256')" \
    "$TMP/n2.pem" tsu_n 2>"$TMP/cert.log" || fatal "certificate for the new key" "$(cat "$TMP/cert.log")"

mkdir -p "$TMP/loop"
(
    i=0
    while [[ ! -e $TMP/loop.stop ]]; do
        i=$((i + 1))
        curl -s --max-time 20 -o "$TMP/loop/$i.tsr" -w '%{http_code}\n' \
            -H 'Content-Type: application/timestamp-query' --data-binary @"$TMP/q.tsq" \
            "$URL" >"$TMP/loop/$i.code" 2>/dev/null
    done
) &
LOOP_PID=$!
track_pid "$LOOP_PID"
# wait_loop N: until the loop has N answers
wait_loop() {
    local i
    for ((i = 0; i < 400; i++)); do
        (($(find "$TMP/loop" -name '*.code' -size +0 | wc -l) >= $1)) && return 0
        sleep 0.05
    done
    return 1
}
wait_loop 15 || fatal "client loop runs" "$(ls "$TMP/loop" | wc -l) answers"
unit_set n1 certificate "$TMP/n2.pem"
unit_set n1 key_label tsu-n2-p256
hup || fatal "reload 1 done" "$(tail -n 5 "$LOG")"
n_at=$(find "$TMP/loop" -name '*.code' | wc -l)
wait_loop $((n_at + 15)) || t_fail "client loop goes on after the reload" "$(tail -n 5 "$LOG")"
touch "$TMP/loop.stop"
wait "$LOOP_PID" 2>/dev/null
n=$(find "$TMP/loop" -name '*.code' -size +0 | wc -l)
bad=0 old=0 new=0 back=0 seen_new=0
old_sha=$(sha "$TSU_N_CERT") new_sha=$(sha "$TMP/n2.pem")
for ((i = 1; i <= n; i++)); do
    f=$TMP/loop/$i.tsr
    if [[ $(<"$TMP/loop/$i.code") != 200 ]] || ! verifies "$f"; then
        bad=$((bad + 1))
        continue
    fi
    case $(signer_of "$f") in
    "$old_sha")
        old=$((old + 1))
        ((seen_new)) && back=$((back + 1))
        ;;
    "$new_sha")
        new=$((new + 1))
        seen_new=1
        ;;
    *) bad=$((bad + 1)) ;;
    esac
done
expect "rollover under load: no failed request among $n (HTTP 200, granted, verifies)" "$bad" 0
if ((old >= 10 && new >= 10 && back == 0)); then
    t_ok "rollover: $old tokens of the old certificate, then $new of the new one, never back"
else
    t_fail "rollover: old tokens, then new ones" "old $old new $new old-after-new $back"
fi
has "AUDIT config_reload names n1 with the certificate SHA-256 old->new" "$LOG" \
    "AUDIT event=config_reload result=ok .*tsus_changed=n1:sha256=$old_sha->$new_sha"
has "AUDIT config_reload: nothing added or removed" "$LOG" \
    'AUDIT event=config_reload result=ok .*tsus_added=none tsus_removed=none'
expect "config_reloads_total{result=\"ok\"} = 1" "$(reloads ok)" 1
for ((i = 0; i < 40; i++)); do grep -q 'TSU set #1 released' "$LOG" && break; sleep 0.1; done
has "the old TSU set is released once its requests are answered" "$LOG" 'TSU set #1 released'
has "the old key is released from the signer" "$LOG" 'signer: key pkcs11:tsu-n-p256 released'
r=$(stamp after)
expect "after the reload: granted" "$r" "200 0"
signed_by "after the reload: signed by the new TSU certificate" after "$TMP/n2.pem"

# ---- 2. a TSU added, one removed ----
openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/n3.key"
openssl pkey -in "$TMP/n3.key" -pubout -out "$TMP/n3.pub.pem"
pki_tsu_cert_for_pub "$PKI_DIR" "$TMP/n3.pub.pem" "$(pki_tsu_subject 'Demo TSU N3 Soft')" \
    "$TMP/n3.pem" tsu_n 2>"$TMP/cert.log" || fatal "certificate for n3" "$(cat "$TMP/cert.log")"
unit_drop q1
cat >>"$CONF" <<EOF

[tsu n3]
policy = 1.3.6.1.4.1.55555.1.21
path = /tsa/n3
certificate = $TMP/n3.pem
chain = $PKI_CA_CHAIN
key_file = $TMP/n3.key
signature = ecdsa
digest = sha256
accuracy = 500ms
EOF
expect "before: /tsa/n3 is not served" "$(stamp n3pre /tsa/n3 | cut -d' ' -f1)" 404
hup || fatal "reload 2 done" "$(tail -n 5 "$LOG")"
r=$(stamp n3 /tsa/n3)
expect "added TSU n3: /tsa/n3 granted" "$r" "200 0"
signed_by "added TSU n3 signs with its certificate" n3 "$TMP/n3.pem"
expect "removed TSU q1: /tsa/qualified is 404" "$(stamp q1gone /tsa/qualified | cut -d' ' -f1)" 404
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/tsa/n3")
expect "GET on a TSU path added by reload: 405" "$code" 405
has "AUDIT config_reload: n3 added, q1 removed (with their SHA-256)" "$LOG" \
    "AUDIT event=config_reload result=ok .*tsus_added=n3:sha256=$(sha "$TMP/n3.pem") tsus_removed=q1:sha256=$(sha "$TSU_Q_CERT") tsus_changed=none"

# ---- 3. configurations that do not load: the running one keeps serving ----
cp "$CONF" "$TMP/good.conf"
# bad NAME ERE: SIGHUP with the CONF as edited; the reload fails, says ERE, counts; n1 and n3 serve
bad() {
    local f0 r1 r2
    f0=$(reloads failed)
    hup || fatal "reload ($1) done" "$(tail -n 5 "$LOG")"
    if last_audit | grep -q 'result=failed' && grep -Eq -- "$2" "$LOG"; then
        t_ok "$1: refused, the log says why"
    else
        t_fail "$1: refused, the log says why" "want /$2/; $(last_audit | cut -c1-400)"
    fi
    expect "$1: config_reloads_total{result=\"failed\"} counts it" "$(reloads failed)" $((f0 + 1))
    r1=$(stamp "bad-$1-n1")
    r2=$(stamp "bad-$1-n3" /tsa/n3)
    if [[ $r1 == "200 0" && $r2 == "200 0" ]] && verifies "$TMP/bad-$1-n1.tsr" &&
        [[ $(signer_of "$TMP/bad-$1-n1.tsr") == "$new_sha" ]]; then
        t_ok "$1: the running TSUs keep serving"
    else
        t_fail "$1: the running TSUs keep serving" "n1 $r1, n3 $r2"
    fi
    cp "$TMP/good.conf" "$CONF"
}
unit_set n1 certificate "$TMP/missing.pem"
bad missing-cert "config_reload result=failed .*tsad.conf:[0-9]+: \[tsu n1\]: certificate $TMP/missing.pem"
unit_set n1 certificate "$TSU_N_CERT"
bad key-mismatch "config_reload result=failed .*\[tsu n1\]: no usable signing key key_label=tsu-n2-p256 for certificate $TSU_N_CERT"
echo "this line is not ini" >>"$CONF"
bad syntax "config_reload result=failed .*tsad.conf:[0-9]+:"
unit_set n3 certificate "$PKI_TSACA_CERT"
bad ca-cert "tsa: \[tsu n3\] certificate $PKI_TSACA_CERT refused"
# a time-stamping certificate for the audit key (whatever key_label says): refused by a reload
# as at the start ([audit] certificate compared by public key, before any key is looked up)
_pki_issue_tsu "$TMP/pki" "$TMP/pki/hsm/audit-p256.pub.pem" "$(pki_tsu_subject "Audit as TSU")" \
    "$TMP/audit-tsu.pem" tsu_n >/dev/null 2>&1 || fatal "audit key as TSU cert" "not issued"
unit_set n1 certificate "$TMP/audit-tsu.pem"
bad audit-key "config_reload result=failed .*\[tsu n1\]: certificate $TMP/audit-tsu.pem certifies the \[audit\] key"
has "a failed reload is logged as an error with the file" "$LOG" \
    "err: config reload: $CONF: .*the running configuration is kept"
expect "no reload succeeded meanwhile" "$(reloads ok)" 2

# a restart-only key changed beside a reloadable one: reported, the rest applies
sed -i 's/^threads = 2$/threads = 3/' "$CONF"
unit_set n3 accuracy 200ms
hup || fatal "reload 4 done" "$(tail -n 5 "$LOG")"
has "[server] threads: 'needs restart' logged" "$LOG" 'needs restart: \[server\] threads'
has "AUDIT config_reload: ok, n3's settings changed, needs_restart=server.threads" "$LOG" \
    "AUDIT event=config_reload result=ok .*tsus_changed=n3:sha256=$(sha "$TMP/n3.pem")\(settings\).*needs_restart=server.threads"
expect "the reload with a restart-only change counts as ok" "$(reloads ok)" 3
r=$(stamp acc /tsa/n3)
acc=$(openssl ts -reply -in "$TMP/acc.tsr" -text 2>/dev/null | sed -n 's/^Accuracy: *//p')
expect "n3's new accuracy (200ms) applies" "$(echo "$acc" | tr -d ' ')" "unspecifiedseconds,0xC8millis,unspecifiedmicros"

# [audit] is read at the start only (the chain's node, the checkpoint key and thread): a
# change is reported as needing a restart, never taken silently (review of issue 9 item 3)
sed -i 's/^checkpoint_interval = 60s$/checkpoint_interval = 30s/' "$CONF"
hup || fatal "reload 5 done" "$(tail -n 5 "$LOG")"
has "AUDIT config_reload: an [audit] change needs a restart" "$LOG" \
    "AUDIT event=config_reload result=ok .*needs_restart=.*audit.checkpoint_interval"
sed -i 's/^checkpoint_interval = 30s$/checkpoint_interval = 60s/' "$CONF"

tsad_stop
has "clean stop after the reloads" "$LOG" 'AUDIT event=service_stop'
itest_log_clean "$LOG"

# ---- 4. requests in flight at the swap (slow HSM: 500 ms a signature, one at a time) ----
LOG=$TMP/tsad-slow.log
cp "$BASECONF" "$CONF"
unit_set n1 certificate "$TMP/n2.pem"
unit_set n1 key_label tsu-n2-p256
sed -i "s|^pkcs11_module = .*|pkcs11_module = $WRAP\nsign_timeout = 20s|; s|^level = info|level = debug|" "$CONF"
F=$TMP/faults
mkdir -p "$F"
export P11DELAY_MODULE=$PKI_P11_MODULE P11DELAY_LATENCY_MS=500 P11DELAY_PARALLEL=1 \
    P11DELAY_REMOVED_FILE=$F/removed P11DELAY_HANG_FILE=$F/hang P11DELAY_REINIT=1
# a stand-in for systemd's notify socket: every datagram, one per line, in notify.log
cat >"$TMP/notify.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        log.write(s.recv(4096).decode(errors="replace").replace("\n", " ") + "\n")
PY
python3 "$TMP/notify.py" "$TMP/notify.sock" "$TMP/notify.log" &
track_pid $!
for ((i = 0; i < 50; i++)); do [[ -S $TMP/notify.sock ]] && break; sleep 0.1; done
export NOTIFY_SOCKET=$TMP/notify.sock
itest_tsad_start
unset NOTIFY_SOCKET
itest_tsad_healthy
openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/n4.key"
openssl pkey -in "$TMP/n4.key" -pubout -out "$TMP/n4.pub.pem"
pki_tsu_cert_for_pub "$PKI_DIR" "$TMP/n4.pub.pem" "$(pki_tsu_subject 'Demo TSU N4 Soft')" \
    "$TMP/n4.pem" tsu_n 2>"$TMP/cert.log" || fatal "certificate for n4" "$(cat "$TMP/cert.log")"
pids=()
# the HSM holds its signatures until the 4 are all in (on a loaded machine they may come more
# than one signature's time apart), then signs them one at a time, 500 ms each, around the reload
touch "$F/hang"
for i in 1 2 3 4; do
    stamp "fly$i" >"$TMP/fly$i.res" &
    pids+=($!)
    track_pid "$!"
done
# the 4 are in flight (suspended, waiting for the HSM) before the reload starts
for ((i = 0; i < 300; i++)); do
    (($(metric http_suspended_requests) >= 4)) && break
    sleep 0.05
done
expect "4 requests in flight (suspended for the HSM) before SIGHUP" "$(metric http_suspended_requests)" 4
rm -f "$F/hang"
unit_set n1 certificate "$TMP/n4.pem"
unit_del n1 key_label
unit_set n1 key_file "$TMP/n4.key"
hup || fatal "reload in flight done" "$(tail -n 5 "$LOG")"
has "the reload under way applied" "$LOG" "AUDIT event=config_reload result=ok .*tsus_changed=n1:sha256=$new_sha->$(sha "$TMP/n4.pem")"
sd=$(grep -oE '^(READY|RELOADING)=1' "$TMP/notify.log" | tr '\n' ' ')
expect "sd_notify: READY=1, then RELOADING=1 and READY=1 around the reload" "$sd" "READY=1 RELOADING=1 READY=1 "
has "sd_notify: RELOADING=1 carries MONOTONIC_USEC" "$TMP/notify.log" '^RELOADING=1 .*MONOTONIC_USEC=[0-9]+'
has "sd_notify: STATUS after the reload" "$TMP/notify.log" '^READY=1 STATUS=configuration reloaded'
r=$(stamp fresh)
signed_by "a request after the swap is signed with the new key (software)" fresh "$TMP/n4.pem"
for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
ok=0
for i in 1 2 3 4; do
    [[ $(<"$TMP/fly$i.res") == "200 0" ]] && verifies "$TMP/fly$i.tsr" &&
        [[ $(signer_of "$TMP/fly$i.tsr") == "$new_sha" ]] && ok=$((ok + 1))
done
expect "the 4 requests in flight at the swap: granted, signed by the old key" "$ok" 4
# in the log: the swap, then the old set's release. A request holds the set until its token is
# assembled and signed, which may end before its "granted" line (the durable write of its audit
# record comes between), and the reload's test signatures wait behind the in-flight ones in this
# one-slot HSM; that the in-flight tokens were signed with the old set's key is checked above.
order=$(awk '/set #1 is released once its requests in flight are answered/ { s = NR }
    /TSU set #1 released/ { r = NR } END { print (s && r > s) ? "ok" : "s=" s " r=" r }' "$LOG")
expect "old set released after the swap, once no request in flight uses it (log order)" "$order" ok

# ---- 5. the released key deleted from the token, then a removed device comes back ----
softhsm_tool "$PKI_DIR/hsm" --delete-object --type privkey --label tsu-n2-p256 >/dev/null 2>&1 &&
    softhsm_tool "$PKI_DIR/hsm" --delete-object --type pubkey --label tsu-n2-p256 >/dev/null 2>&1 ||
    fatal "old key deleted from the token" "pkcs11-tool --delete-object failed"
openssl ts -query -data "$TMP/doc" -sha256 -cert -tspolicy "$TSA_POLICY_RSA" -out "$TMP/rsa.tsq" 2>/dev/null
stamp_rsa() {
    curl -s --max-time 20 -o "$TMP/$1.tsr" -H 'Content-Type: application/timestamp-query' \
        --data-binary @"$TMP/rsa.tsq" "$URL"
    derutil tsp-resp "$TMP/$1.tsr" 2>/dev/null | sed -n 's/^status=//p'
}
touch "$F/removed"
expect "device removed: the token TSU rsa is refused (rejection)" "$(stamp_rsa gone)" 2
rm -f "$F/removed"
if wait_http "$BASE/healthz" 15 200 2>/dev/null; then
    t_ok "device back: /healthz 200 again"
else
    t_fail "device back: /healthz 200 again" "$(curl -s "$BASE/healthz"); $(grep -E 'pkcs11|hsm' "$LOG" | tail -n 3 | tr '\n' ' ')"
fi
has "the module was re-initialised without the deleted, released key" "$LOG" "re-initialised after CKR_DEVICE_REMOVED"
expect "device back: the token TSU rsa grants again" "$(stamp_rsa back)" 0
tsad_stop
has "clean stop with the slow HSM" "$LOG" 'AUDIT event=service_stop'
itest_log_clean "$LOG"
t_summary "$NAME"
