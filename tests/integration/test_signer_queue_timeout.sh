#!/usr/bin/env bash
#
# test_signer_queue_timeout.sh: review of issue 8 (HSM faults, overload). A healthy but busy
# HSM: every signature takes 400 ms, one worker, sign_timeout 1 s. A burst of 12 concurrent
# token requests queues jobs for longer than sign_timeout; those answer systemFailure (fine),
# but a job that timed out while still QUEUED never reached the token and says nothing about
# it. Expected: the key is not marked down (no AUDIT hsm_unavailable, signer_keys_down 0,
# /healthz 200), as the HSM answered every call it got within 400 ms.
# Before the fix each queued timeout marked the key down: a flood from any client turns /healthz red
# and logs a false HSM outage (then every request fails at once until the probe).
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_signer_queue_timeout
WRAP=$BUILD/bench/libp11delay.so
[[ -x $BUILD/tsad && -f $WRAP ]] || fatal build "tsad or $WRAP not built"

itest_tsa_setup local
sed -i "s|^pkcs11_module = .*|pkcs11_module = $WRAP\nsign_timeout = 1s|" "$CONF"
printf '[signer]\nworkers = 1\nqueue_max = 64\n' >>"$CONF"
export P11DELAY_MODULE=$PKI_P11_MODULE P11DELAY_LATENCY_MS=400 P11DELAY_PARALLEL=1 \
    P11DELAY_HANG_FILE=$TMP/hang
itest_tsad_start
itest_tsad_healthy
echo "queue timeout" >"$TMP/doc"
openssl ts -query -data "$TMP/doc" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null
pids=()
for i in $(seq 12); do
    curl -s --max-time 20 -o "$TMP/r$i.tsr" -H 'Content-Type: application/timestamp-query' \
        --data-binary @"$TMP/q.tsq" "$URL" &
    pids+=($!)
done
wait "${pids[@]}"
sleep 0.5
if grep -q 'event=hsm_unavailable' "$LOG"; then
    t_fail "a healthy HSM behind a queue longer than sign_timeout is not reported unavailable" \
        "$(grep -m1 'hsm_unavailable' "$LOG")"
else t_ok "a healthy HSM behind a queue longer than sign_timeout is not reported unavailable"; fi
down=$(curl -s "$BASE/metrics" | awk '$1 == "signer_keys_down" { print $2 }')
if [[ $down == 0 ]]; then t_ok "signer_keys_down 0"; else t_fail "signer_keys_down 0" "$down"; fi

# and a call that hangs is still reported, also when its job had waited (and so timed out)
# before the call itself reached sign_timeout: 4 requests at once, the HSM stops answering
# at 0.6 s, while the third (queued since 0 s) is about to start at 0.8 s
sleep 1.5
pids=()
for i in $(seq 4); do
    curl -s --max-time 20 -o "$TMP/h$i.tsr" -H 'Content-Type: application/timestamp-query' \
        --data-binary @"$TMP/q.tsq" "$URL" &
    pids+=($!)
done
sleep 0.6
touch "$TMP/hang"
sleep 2.5
rm -f "$TMP/hang"
wait "${pids[@]}"
if grep -q 'event=hsm_unavailable key=pkcs11:tsu-n-p256 reason=timeout' "$LOG"; then
    t_ok "a call hung past sign_timeout (its job queued before) marks the key down"
else
    t_fail "a call hung past sign_timeout (its job queued before) marks the key down" \
        "no AUDIT line"
fi
t_summary "$NAME"
