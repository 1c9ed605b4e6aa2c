#!/usr/bin/env bash
#
# test_hsm_flap.sh: a token that flaps (CKR_DEVICE_REMOVED on, then off, every 300 ms)
# under load, for FLAP_S seconds (8) (second review of issue 8, "Faults of the parts - HSM"; STANDARDS
# TSP-13, DESIGN D2, D8). tsad signs through the simulated HSM (build/bench/libp11delay.so,
# with C_Finalize + C_Initialize after each removal) in front of its real SoftHSM2 token;
# loadgen asks for tokens and verifies every one it gets (signature, certificate chain) while
# the device comes and goes. Afterwards: tsad still runs and recovers (/healthz 200, tokens
# again), no open descriptor more than before the flapping (give or take a few: connections),
# resident memory bounded, and every token received has its record in the audit log.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_hsm_flap

code_of() { curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$1"; }
wait_code() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        [[ $(code_of "$1") == "$2" ]] && return 0
        sleep 0.1
    done
    return 1
}
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
metric() { curl -s --max-time 5 "$1/metrics" | awk -v n="$2" '$1 == n { printf "%d\n", $2 }'; }

WRAP=$BUILD/bench/libp11delay.so
LG=$BUILD/bench/loadgen
[[ -x $BUILD/tsad && -f $WRAP && -x $LG ]] || fatal build "tsad, $WRAP or loadgen not built"
F=$TMP/faults
mkdir -p "$F"
FLAP_S=${FLAP_S:-8}

itest_tsa_setup local
sed -i "s|^pkcs11_module = .*|pkcs11_module = $WRAP\nsign_timeout = 1s|" "$CONF"
export P11DELAY_MODULE=$PKI_P11_MODULE P11DELAY_LATENCY_MS=0 P11DELAY_REMOVED_FILE=$F/removed \
    P11DELAY_REINIT=1
itest_tsad_start
itest_tsad_healthy
"$LG" gen-tsa --out "$TMP/tsa.set" --count 200 --hashes sha256=1 --cert-req 100 --seed 7 \
    >/dev/null || fatal "request set" "gen-tsa failed"

# warm up: a short load, then the reference figures
"$LG" run --url "$URL" --requests "$TMP/tsa.set" --conns 4 --duration 2 --rate 100 \
    --verify-every 0 >/dev/null 2>&1
sleep 0.5
FD0=$(fds "$TSAD_PID")
RSS0=$(rss "$TSAD_PID")

: >"$TMP/serials"
"$LG" run --url "$URL" --requests "$TMP/tsa.set" --conns 4 --duration $((FLAP_S + 2)) \
    --rate 200 --timeout 5 --verify-every 1 --ca "$PKI_CA_CHAIN" \
    --save-serials "$TMP/serials" >"$TMP/lg.out" 2>&1 &
LGP=$!
track_pid "$LGP"
end=$((SECONDS + FLAP_S))
flaps=0
while ((SECONDS < end)); do
    touch "$F/removed"
    sleep 0.3
    rm -f "$F/removed"
    sleep 0.3
    flaps=$((flaps + 1))
done
wait "$LGP"
t_ok "the device flapped $flaps times under load"
if kill -0 "$TSAD_PID" 2>/dev/null; then t_ok "tsad still runs"; else
    fatal "tsad still runs" "$(tail -n 5 "$LOG")"
fi
if wait_code "$BASE/healthz" 200 15; then t_ok "device back: /healthz 200 by itself"; else
    t_fail "device back: /healthz 200" "$(curl -s "$BASE/healthz")"
fi
granted=$(grep -c . "$TMP/serials")
if ((granted > 0)); then t_ok "$granted tokens granted while the device flapped"; else
    t_fail "tokens granted while the device flapped" "$(tail -n 8 "$TMP/lg.out")"
fi
bad=$(grep -Eo 'verify_[a-z]+=[0-9]+' "$TMP/lg.out" | tr '\n' ' ')
if [[ -z $bad ]]; then t_ok "every token received verifies (signature by the TSU's key)"; else
    t_fail "every token received verifies" "$bad"
fi
# after: a second warm-up-sized load with the device up, then compare
"$LG" run --url "$URL" --requests "$TMP/tsa.set" --conns 4 --duration 2 --rate 100 \
    --verify-every 0 >/dev/null 2>&1
sleep 1
FD1=$(fds "$TSAD_PID")
RSS1=$(rss "$TSAD_PID")
if ((FD1 <= FD0 + 4)); then t_ok "no descriptor leaked: $FD0 open before, $FD1 after"; else
    t_fail "no descriptor leaked" \
        "$FD0 before, $FD1 after: $(find "/proc/$TSAD_PID/fd" -mindepth 1 -printf "%l " 2>/dev/null)"
fi
if [[ $BUILD == *asan* ]]; then
    t_ok "resident memory: not compared under ASan (its quarantine; LeakSanitizer checks at exit)"
elif ((RSS1 <= RSS0 + 32768)); then
    t_ok "resident memory bounded: $RSS0 kB before, $RSS1 kB after"
else
    t_fail "resident memory bounded" "$RSS0 kB before, $RSS1 kB after"
fi
echo "# fds $FD0 -> $FD1, rss $RSS0 -> $RSS1 kB, $(grep -c 're-initialised' "$LOG") re-inits" >&2
tsad_stop
itest_log_clean "$LOG"

# ---- ocspd: pre-signed hits, never-issued serials, nonces; records added while it flaps ----
unset P11DELAY_REINIT # ocspd: a library that reconnects by itself (sessions reopened)
itest_ocsp_setup
ocspd_stop
sed -i "s|^pkcs11_module = .*|pkcs11_module = $WRAP\nsign_timeout = 1s|" "$CONF"
sed -i "s|^refresh_interval = .*|refresh_interval = 200ms|" "$CONF" # the refresher busy meanwhile
printf '[limits]\nsign_rate = 0\n' >>"$CONF"
export P11DELAY_MODULE=$OCSP_P11_MODULE
OLOG=$TMP/ocspd.log
ocspd_start "$CONF" "$OLOG" || fatal "ocspd through the shim" "$(tail -n 5 "$OLOG")"
wait_code "$URL/healthz" 200 10 || fatal "ocspd healthy" "$(curl -s "$URL/healthz")"
printf "%s good\n%s revoked\n" "$OCSP_GOOD_SERIAL" "$OCSP_REVOKED_SERIAL" >"$TMP/serials.lst"
"$LG" gen-ocsp --out "$TMP/ocsp.set" --issuer "$CA" --serials "$TMP/serials.lst" \
    --mix hit=6,never=4 --nonce 30 --get 30 --count 400 --seed 3 >/dev/null 2>"$TMP/gen.err" ||
    fatal "ocsp request set" "$(cat "$TMP/gen.err")"
"$LG" run --url "$URL/" --requests "$TMP/ocsp.set" --conns 4 --duration 2 --rate 100 \
    --verify-every 0 >/dev/null 2>&1
sleep 0.5
OPID=$OCSPD_PID
FD0=$(fds "$OPID")
RSS0=$(rss "$OPID")
"$LG" run --url "$URL/" --requests "$TMP/ocsp.set" --conns 4 --duration $((FLAP_S + 2)) \
    --rate 200 --timeout 5 --verify-every 1 --ca "$CHAIN" >"$TMP/olg.out" 2>&1 &
LGP=$!
track_pid "$LGP"
end=$((SECONDS + FLAP_S))
flaps=0 added=()
while ((SECONDS < end)); do
    touch "$F/removed"
    s=5B$(openssl rand -hex 15)
    # a record added while the device is away: the refresher signs it when it can
    if "$BUILD/ocspctl" -c "$CONF" -d "$STORE" -u tester add qca "$s" >/dev/null 2>&1; then
        added+=("$s")
    fi
    sleep 0.3
    rm -f "$F/removed"
    sleep 0.3
    flaps=$((flaps + 1))
done
wait "$LGP"
t_ok "ocspd: the device flapped $flaps times under load (${#added[@]} records added meanwhile)"
if kill -0 "$OPID" 2>/dev/null; then t_ok "ocspd still runs"; else
    fatal "ocspd still runs" "$(tail -n 5 "$OLOG")"
fi
if wait_code "$URL/healthz" 200 15; then t_ok "ocspd: device back: /healthz 200 by itself"; else
    t_fail "ocspd: device back: /healthz 200" "$(curl -s "$URL/healthz")"
fi
ok=$(sed -n 's/^ *requests *\([0-9]*\) ok.*/\1/p' "$TMP/olg.out")
if ((${ok:-0} > 0)); then t_ok "ocspd: $ok answers while the device flapped"; else
    t_fail "ocspd: answers while the device flapped" "$(tail -n 8 "$TMP/olg.out")"
fi
bad=$(grep -Eo 'verify_[a-z]+=[0-9]+' "$TMP/olg.out" | tr '\n' ' ')
if [[ -z $bad ]]; then t_ok "ocspd: every answer received verifies (signature, status, nonce)"; else
    t_fail "ocspd: every answer received verifies" "$bad"
fi
# the records added while the device was away are answered good, by the responder's key
nbad=0
for s in "${added[@]}"; do
    openssl ocsp -issuer "$CA" -serial "0x$s" -url "$URL" -CAfile "$CHAIN" -no_nonce \
        >"$TMP/one.out" 2>&1
    grep -q "^0x$s: good" "$TMP/one.out" && grep -q 'Response verify OK' "$TMP/one.out" ||
        nbad=$((nbad + 1))
done
expect "ocspd: the ${#added[@]} records added while it flapped: good, verified" "$nbad bad" "0 bad"
"$LG" run --url "$URL/" --requests "$TMP/ocsp.set" --conns 4 --duration 2 --rate 100 \
    --verify-every 0 >/dev/null 2>&1
sleep 1
FD1=$(fds "$OPID")
RSS1=$(rss "$OPID")
if ((FD1 <= FD0 + 4)); then t_ok "ocspd: no descriptor leaked: $FD0 open before, $FD1 after"; else
    t_fail "ocspd: no descriptor leaked" \
        "$FD0 before, $FD1 after: $(find "/proc/$OPID/fd" -mindepth 1 -printf "%l " 2>/dev/null)"
fi
if [[ $BUILD == *asan* ]]; then t_ok "ocspd: resident memory: not compared under ASan (quarantine)"
elif ((RSS1 <= RSS0 + 32768)); then
    t_ok "ocspd: resident memory bounded: $RSS0 kB before, $RSS1 kB after"
else
    t_fail "ocspd: resident memory bounded" "$RSS0 kB before, $RSS1 kB after"
fi
echo "# ocspd: fds $FD0 -> $FD1, rss $RSS0 -> $RSS1 kB" >&2
ocspd_stop
itest_log_clean "$OLOG"
t_summary "$NAME"
