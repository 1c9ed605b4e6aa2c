#!/usr/bin/env bash
#
# test_tsad_reload_audit.sh: the audit trail of a reload that fails names no TSU as loaded
# (issue 9 item 4, review; EID-11). SIGHUP with two TSUs added, the first usable and the
# second with a missing certificate: the reload fails and the old set serves; no
# event=tsu_loaded may say the first one was loaded, since it never served. A reload that
# applies then logs it. A changed [audit] section (read at start only) is reported as needing
# a restart.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsad_reload_audit
itest_tsa_setup local
itest_tsad_start
itest_tsad_healthy
cp "$CONF" "$TMP/base.conf"
# tsu_section NAME POLICY PATH CERT: a software-key TSU like [tsu soft-p256]
tsu_section() {
    printf '\n[tsu %s]\npolicy = %s\npath = %s\ncertificate = %s\nchain = %s\n' "$1" "$2" "$3" \
        "$4" "$TMP/pki/ca-chain.pem"
    printf 'key_file = %s\nsignature = ecdsa\ndigest = sha256\naccuracy = 1s\n' \
        "$TMP/pki/soft-p256.key"
}
{
    tsu_section n7 1.3.6.1.4.1.55555.1.77 /tsa/n7 "$TMP/pki/soft-p256.pem"
    tsu_section n8 1.3.6.1.4.1.55555.1.88 /tsa/n8 "$TMP/missing.pem"
} >>"$CONF"
reload_wait "$TSAD_PID" "$LOG" || fatal "reload done" "$(tail -n 3 "$LOG")"
has "the reload with n8's certificate missing fails" "$LOG" 'AUDIT event=config_reload result=failed .*tsu n8'
if grep -q 'AUDIT event=tsu_loaded tsu=n7 ' "$LOG"; then
    t_fail "failed reload: no event=tsu_loaded for n7 (it never served)" \
        "$(grep 'event=tsu_loaded tsu=n7 ' "$LOG" | head -n 1 | cut -c1-200)"
else
    t_ok "failed reload: no event=tsu_loaded for n7 (it never served)"
fi
cp "$TMP/base.conf" "$CONF"
tsu_section n7 1.3.6.1.4.1.55555.1.77 /tsa/n7 "$TMP/pki/soft-p256.pem" >>"$CONF"
reload_wait "$TSAD_PID" "$LOG" || fatal "reload done" "$(tail -n 3 "$LOG")"
has "the reload adding n7 applies" "$LOG" 'AUDIT event=config_reload result=ok .*tsus_added=n7:'
has "and event=tsu_loaded names n7" "$LOG" 'AUDIT event=tsu_loaded tsu=n7 '
# [audit] is read at start only (the chain's node name, the checkpoint key and interval): a
# change is reported as needing a restart, not taken silently as applied
printf '\n[audit]\nnode = review-node-2\n' >>"$CONF"
reload_wait "$TSAD_PID" "$LOG" || fatal "reload done" "$(tail -n 3 "$LOG")"
has "a changed [audit] node: the reload says it needs a restart" "$LOG" \
    'AUDIT event=config_reload result=ok .*needs_restart=.*audit\.node'
tsad_stop
itest_log_clean "$LOG"
t_summary "$NAME"
