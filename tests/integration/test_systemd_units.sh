#!/usr/bin/env bash
#
# test_systemd_units.sh: the shipped systemd units (issue 8, item 8 and "Hardening").
#   - `systemd-analyze verify` of tsad/ocspd .service + .socket (binary paths pointed at the
#     build) prints nothing;
#   - `systemd-analyze security --offline=yes` scores each service at most 1.2;
#   - each service writes only its own state directory, which holds its own SoftHSM2 token
#     directory (SOFTHSM2_CONF = its conf/softhsm2-NAME.conf); nothing under /var/lib/softhsm;
#   - the PIN comes as a credential (LoadCredential=pin:...) and the sample configuration
#     reads it (pin_file = credential:pin);
#   - ProcSubset=pid, PrivateUsers=yes, IPAddressDeny=any + IPAddressAllow=localhost on the
#     service and its socket; the socket listens where the sample configuration does.
# Needs systemd-analyze (package systemd); without it the checks that use it are skipped.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_systemd_units

MAX_EXPOSURE=1.2
# key UNIT KEY: the values of KEY in UNIT, one a line
key() { sed -n "s/^$2=//p" "$1"; }

for u in tsad ocspd; do
    svc=systemd/$u.service sock=systemd/$u.socket
    [[ -f $sock ]] || fatal "$u.socket" "systemd/$u.socket is missing"
    if command -v systemd-analyze >/dev/null 2>&1; then
        for f in "$svc" "$sock"; do
            sed "s,/usr/local/sbin/,$BUILD/," "$f" >"$TMP/$(basename "$f")"
        done
        out=$(systemd-analyze verify "$TMP/$u.service" "$TMP/$u.socket" 2>&1)
        rc=$?
        if ((rc == 0)) && [[ -z $out ]]; then t_ok "$u: systemd-analyze verify is silent"; else
            t_fail "$u: systemd-analyze verify is silent" "exit $rc: $(head -n 3 <<<"$out")"
        fi
        score=$(systemd-analyze security --offline=yes "$svc" 2>&1 |
            sed -n "s/.*Overall exposure level for $u.service: \([0-9.]*\).*/\1/p")
        if [[ -n $score ]] && awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
            t_ok "$u: systemd-analyze security --offline=yes exposure $score <= $MAX_EXPOSURE"
        else
            t_fail "$u: exposure <= $MAX_EXPOSURE" "got '${score:-no score}'"
        fi
    else
        echo "note: systemd-analyze not installed (package systemd): verify and security skipped"
    fi

    # one token directory per service
    if grep -Eq '^(ReadWritePaths|BindPaths)=.*/var/lib/softhsm' "$svc"; then
        t_fail "$u: no access to the host's shared SoftHSM2 tokens" "$(grep -E '^ReadWritePaths=' "$svc")"
    else
        t_ok "$u: no access to the host's shared SoftHSM2 tokens (/var/lib/softhsm)"
    fi
    sh_conf=$(key "$svc" Environment | sed -n 's/^SOFTHSM2_CONF=//p')
    tokdir=$(sed -n 's/^directories.tokendir = //p' "conf/softhsm2-$u.conf")
    if [[ $sh_conf == /etc/$u/softhsm2.conf && $tokdir == /var/lib/$u/softhsm/tokens ]] &&
        key "$svc" StateDirectory | grep -qw "$u/softhsm/tokens"; then
        t_ok "$u: own token directory $tokdir in its StateDirectory (SOFTHSM2_CONF=$sh_conf)"
    else
        t_fail "$u: own token directory" "SOFTHSM2_CONF='$sh_conf' tokendir='$tokdir'"
    fi
    # PIN as a credential, read by the sample configuration
    if [[ $(key "$svc" LoadCredential) == "pin:/etc/$u/pin" ]] &&
        grep -q '^;pin_file = credential:pin$' "conf/$u.conf"; then
        t_ok "$u: PIN through LoadCredential=pin:/etc/$u/pin, conf says pin_file = credential:pin"
    else
        t_fail "$u: PIN through LoadCredential=" "$(key "$svc" LoadCredential)"
    fi
    # sandbox settings the issue names
    miss=""
    for kv in ProcSubset=pid PrivateUsers=yes PrivateNetwork=yes IPAddressDeny=any \
        IPAddressAllow=localhost "Requires=$u.socket"; do
        grep -qx "$kv" "$svc" || miss+=" $kv"
    done
    for kv in IPAddressDeny=any IPAddressAllow=localhost Accept=no; do
        grep -qx "$kv" "$sock" || miss+=" $sock:$kv"
    done
    if [[ -z $miss ]]; then t_ok "$u: ProcSubset, PrivateUsers, PrivateNetwork, IP lists on service and socket"; else
        t_fail "$u: sandbox settings" "missing:$miss"
    fi
    # the socket listens where the sample configuration does, and on one address only
    listen=$(sed -n 's/^listen = //p' "conf/$u.conf")
    if [[ $(key "$sock" ListenStream) == "$listen" && $(grep -c '^ListenStream=' "$sock") == 1 ]]; then
        t_ok "$u.socket: one ListenStream=$listen, as conf/$u.conf"
    else
        t_fail "$u.socket: one ListenStream= as conf/$u.conf ($listen)" "$(grep '^Listen' "$sock")"
    fi
done

t_summary "$NAME"
