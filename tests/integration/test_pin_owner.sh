#!/usr/bin/env bash
#
# test_pin_owner.sh: review of issue 8 (PIN file rule). The rule once refused a PIN file
# readable or writable by group or others,
# but not one owned by another user: a mode 0600 file owned by `nobody` (who can rewrite it with a
# wrong PIN and so spend the token's PIN attempts, or read it) was accepted by a root tsad.
# Expected: refused unless owned by the daemon's user (or root).
set -uo pipefail
if [[ $(id -u) != 0 ]] || ! id nobody >/dev/null 2>&1; then
    echo "skip: test_pin_owner needs root and a user nobody"
    exit 0
fi
# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup review_pin_owner
itest_tsa_setup local
cp "$PKI_P11_PIN_FILE" "$TMP/pin"
chmod 600 "$TMP/pin"
chown nobody "$TMP/pin"
sed -i "s|^pin_file = .*|pin_file = $TMP/pin|" "$CONF"
if "$BUILD/tsad" -n -c "$CONF" >"$TMP/n.out" 2>&1; then
    t_fail "a PIN file owned by nobody (0600) is refused" "tsad -n: $(tail -n 1 "$TMP/n.out")"
else
    t_ok "a PIN file owned by nobody (0600) is refused"
fi
t_summary "$NAME"
