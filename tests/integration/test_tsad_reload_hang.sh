#!/usr/bin/env bash
#
# test_tsad_reload_hang.sh: a reload that hangs in the HSM does not keep tsad from stopping
# (issue 9 item 4, review): SIGHUP with a TSU whose new key must pass its test signature while
# the token does not answer (bench/p11delay.c hang_file), then SIGTERM: tsad stops within
# [server] stop_timeout as it does when a signature hangs outside a reload, instead of waiting
# for ever inside the reload.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsad_reload_hang
itest_tsa_setup local
WRAP=$BUILD/bench/libp11delay.so
[[ -f $WRAP ]] || fatal "p11delay built" "$WRAP missing (make all)"
F=$TMP/faults
mkdir -p "$F"
export P11DELAY_MODULE=$PKI_P11_MODULE P11DELAY_LATENCY_MS=0 P11DELAY_HANG_FILE=$F/hang
sed -i "s|^pkcs11_module = .*|pkcs11_module = $WRAP|" "$CONF"
printf '\n[server]\nstop_timeout = 2s\n' >>"$CONF"
itest_tsad_start
itest_tsad_healthy

# [tsu rsa] with another digest: a new signer key, test-signed in the token at the reload
awk '/^\[/ { s = ($0 == "[tsu rsa]") } s && /^digest = / { $0 = "digest = sha384" } 1' \
    "$CONF" >"$CONF.new" && mv "$CONF.new" "$CONF"
touch "$F/hang"
kill -HUP "$TSAD_PID"
for ((i = 0; i < 100; i++)); do
    grep -q 'SIGHUP: reloading' "$LOG" && break
    sleep 0.05
done
sleep 0.5 # inside the test signature, which does not come back
kill -TERM "$TSAD_PID"
stopped=no
for ((i = 0; i < 200; i++)); do # 20 s: far past stop_timeout (2 s)
    if ! kill -0 "$TSAD_PID" 2>/dev/null; then
        stopped=yes
        break
    fi
    sleep 0.1
done
expect "SIGTERM during a reload hung in the HSM: tsad stops (stop_timeout)" "$stopped" yes
has "the log says the stop waits for the reload, within stop_timeout" "$LOG" \
    'received signal 15 during the reload: stopping once it returns, within stop_timeout'
rm -f "$F/hang"
if [[ $stopped == yes ]]; then
    wait "$TSAD_PID" 2>/dev/null
    TSAD_PID=
fi
t_summary "$NAME"
