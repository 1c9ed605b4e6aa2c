#!/usr/bin/env bash
#
# test_tsactl_hsm.sh: signed audit checkpoints while the HSM is away (issue 9 item 3 with
# issue 8's HSM faults; STANDARDS EID-11, TSA-18). tsad signs through the simulated network
# HSM (build/bench/libp11delay.so) in front of its SoftHSM2 token, with a checkpoint every
# second by its audit key in that token. Checked: with the device removed a checkpoint is not
# signed (logged) and nothing half-made enters the chain; the software-key TSU keeps issuing
# tokens meanwhile; with the device back checkpoints resume by themselves; the chain exported
# afterwards verifies with the audit certificate and its last checkpoint covers the tokens
# issued while the HSM was away.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsactl_hsm

WRAP=$BUILD/bench/libp11delay.so
[[ -x $BUILD/tsad && -x $BUILD/tsactl && -f $WRAP ]] || fatal build "tsad, tsactl or $WRAP not built"
F=$TMP/faults
mkdir -p "$F"
itest_tsa_setup local
tsad_audit_conf "$TMP/audit.conf" "$TMP/pki" gamma 1s
cat "$TMP/audit.conf" >>"$CONF"
sed -i "s|^pkcs11_module = .*|pkcs11_module = $WRAP\nsign_timeout = 1s|" "$CONF"
export P11DELAY_MODULE=$PKI_P11_MODULE P11DELAY_LATENCY_MS=0 P11DELAY_REMOVED_FILE=$F/removed \
    P11DELAY_REINIT=1
itest_tsad_start
itest_tsad_healthy
echo "checkpoints and a removed HSM" >"$TMP/doc"
openssl ts -query -data "$TMP/doc" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null || fatal query "openssl"
stamp() {
    curl -s --max-time 20 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/timestamp-query' \
        --data-binary @"$TMP/q.tsq" "$BASE$1"
}
# wait_log N ERE SECONDS: until the log holds at least N lines matching ERE
wait_log() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        (($(grep -Ec -- "$2" "$LOG") >= $1)) && return 0
        sleep 0.1
    done
    return 1
}

expect "a token before the fault" "$(stamp /tsa/soft)" 200
wait_log 1 'audit checkpoint signed' 10 || fatal "first checkpoint" "$(tail -n 3 "$LOG")"
t_ok "a checkpoint is signed"

touch "$F/removed"
expect "device removed: the software-key TSU still issues" "$(stamp /tsa/soft)" 200
stamp /tsa/soft >/dev/null
if wait_log 1 'audit checkpoint at [0-9]+ not signed' 10; then t_ok "device removed: the checkpoint is not signed, logged"; else
    t_fail "device removed: the checkpoint is not signed, logged" "$(grep -i checkpoint "$LOG" | tail -n 3)"
fi
expect "device removed: still issuing after the failed checkpoint" "$(stamp /tsa/soft)" 200
signed_before=$(grep -c 'audit checkpoint signed' "$LOG")
rm -f "$F/removed"
if wait_log $((signed_before + 1)) 'audit checkpoint signed' 15; then t_ok "device back: checkpoints resume by themselves"; else
    t_fail "device back: checkpoints resume by themselves" "$(grep -i checkpoint "$LOG" | tail -n 3)"
fi
expect "device back: tokens" "$(stamp /tsa/soft)" 200
tsad_stop

"$BUILD/tsactl" -c "$CONF" export >"$TMP/all.jsonl" 2>"$TMP/export.err" || fatal export "$(cat "$TMP/export.err")"
rc=0
"$BUILD/tsactl" verify --cert "$AUDIT_CERT" "$TMP/all.jsonl" >"$TMP/v.out" 2>&1 || rc=$?
if ((rc == 0)); then t_ok "the chain across the fault verifies, signatures included"; else
    t_fail "the chain across the fault verifies" "exit $rc: $(head -n 3 "$TMP/v.out")"
fi
expect "every token has its record" "$(grep -c '"type":"token"' "$TMP/all.jsonl")" 5
expect "the last record is the checkpoint of the clean stop, covering all before it" \
    "$(tail -n 1 "$TMP/all.jsonl" | jq -r '"\(.type) \(.covers_seq)"')" \
    "checkpoint $(($(grep -c . "$TMP/all.jsonl") - 1))"
itest_log_clean "$LOG"
t_summary "$NAME"
