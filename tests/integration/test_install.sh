#!/usr/bin/env bash
#
# test_install.sh: `make install` and the man pages (issue 9 item 5).
#   - `make install DESTDIR=TMP PREFIX=/usr/local` with the BUILD the tests use (nothing is
#     compiled: the build must be current) installs exactly the expected set, listed here:
#     tsad, ocspd (sbin), ocspctl, tsactl when tsa/tsactl.c exists (bin), the man pages
#     (man5, man8), the units (lib/systemd/system), the configurations under /etc/NAME with
#     their .example, README.md, network-hsm.conf, the Grafana dashboard and the nginx
#     (ocspd) or HAProxy (tsad) example (share/doc/NAME);
#     nothing of bench/;
#   - the units' ExecStart= binaries and -c configurations are where install put them, for the
#     default PREFIX and for another one (the units are rewritten for it);
#   - a second install keeps an edited configuration and refreshes the .example;
#   - every man page passes `mandoc -Tlint -Wwarning` (else `groff -mandoc -ww -z`), renders
#     with `man -l`, is found by `man -M`, and its .Xr references to our pages resolve;
#   - every config key the daemons accept is documented under its [section] in tsad.conf(5) /
#     ocspd.conf(5), and every key documented there is accepted. Which keys a daemon accepts is asked
#     of the built daemon itself (`-n` on a one-key file: "unknown key" or not), for every
#     string literal of the config parsers (the files that call config_error) and every key of
#     the page, in every section named by either: no hand-kept list to fall behind.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_install

for f in tsad ocspd ocspctl; do
    [[ -x $BUILD/$f ]] || fatal build "$BUILD/$f is not built (make all)"
done
# a make of its own, not the jobserver and command-line variables of a `make check` above us
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
# make's own BUILD: relative to the checkout when it is inside it (as the .d files name it)
MBUILD=${BUILD#"$ROOT"/}
PROGS=("$MBUILD/tsad" "$MBUILD/ocspd" "$MBUILD/ocspctl")
HAVE_TSACTL=0
if [[ -f tsa/tsactl.c ]]; then
    HAVE_TSACTL=1
    PROGS+=("$MBUILD/tsactl")
fi
if ! make -q BUILD="$MBUILD" "${PROGS[@]}" >/dev/null 2>&1; then
    fatal "build is current" "make would rebuild ${PROGS[*]}: run make (BUILD=$MBUILD) first"
fi

DEST=$TMP/dest
out=$(make --no-print-directory install BUILD="$MBUILD" DESTDIR="$DEST" PREFIX=/usr/local 2>&1)
rc=$?
((rc == 0)) || fatal "make install" "exit $rc: $(tail -n 5 <<<"$out")"
if grep -Eq '(^|[ /])(cc|gcc|clang)( |$)' <<<"$out"; then
    t_fail "make install compiles nothing" "$(grep -E '(^|[ /])(cc|gcc|clang) ' <<<"$out" | head -n 2)"
else
    t_ok "make install DESTDIR=... PREFIX=/usr/local: exit 0, nothing compiled"
fi

echo "--- installed into DESTDIR:"
landed=$(cd "$DEST" && find . \( -type f -o -type l \) -printf '%m %p\n' | sed 's, \./, /,' | sort -k2)
sed 's/^/    /' <<<"$landed"
echo "---"

expected=(
    /etc/ocspd/ocspd.conf /etc/ocspd/ocspd.conf.example
    /etc/ocspd/softhsm2.conf /etc/ocspd/softhsm2.conf.example
    /etc/tsad/softhsm2.conf /etc/tsad/softhsm2.conf.example
    /etc/tsad/tsad.conf /etc/tsad/tsad.conf.example
    /usr/local/bin/ocspctl
    /usr/local/lib/systemd/system/ocspd.service /usr/local/lib/systemd/system/ocspd.socket
    /usr/local/lib/systemd/system/tsad.service /usr/local/lib/systemd/system/tsad.socket
    /usr/local/sbin/ocspd /usr/local/sbin/tsad
    /usr/local/share/doc/ocspd/README.md /usr/local/share/doc/ocspd/grafana-dashboard.json
    /usr/local/share/doc/ocspd/network-hsm.conf /usr/local/share/doc/ocspd/nginx-ocspd.conf
    /usr/local/share/doc/tsad/README.md /usr/local/share/doc/tsad/grafana-dashboard.json
    /usr/local/share/doc/tsad/network-hsm.conf /usr/local/share/doc/tsad/haproxy-tsad.cfg
    /usr/local/share/man/man5/ocspd.conf.5 /usr/local/share/man/man5/tsad.conf.5
    /usr/local/share/man/man8/ocspctl.8 /usr/local/share/man/man8/ocspd.8
    /usr/local/share/man/man8/tsad.8
)
((HAVE_TSACTL)) && expected+=(/usr/local/bin/tsactl /usr/local/share/man/man8/tsactl.8)
want=$(printf '%s\n' "${expected[@]}" | sort)
got=$(awk '{ print $2 }' <<<"$landed" | sort)
if [[ $want == "$got" ]]; then
    t_ok "exactly the expected ${#expected[@]} files landed"
else
    t_fail "exactly the expected files landed" \
        "$(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | sed 's/^</missing:/; s/^>/unexpected:/' | tr '\n' ' ')"
fi

# nothing of bench/: none of its programs or its PKCS#11 module, whatever the name of the dir
bench_names=$(for f in bench/*.c; do b=${f##*/}; echo "${b%.c}"; done; echo libp11delay.so)
leaked=$(awk '{ print $2 }' <<<"$landed" | while read -r p; do
    grep -qxF "${p##*/}" <<<"$bench_names" && echo "$p"
done)
if [[ -z $leaked ]]; then t_ok "nothing from bench/ installed ($(wc -w <<<"$bench_names") names)"; else
    t_fail "nothing from bench/ installed" "$leaked"
fi

modes_bad=$(awk '($2 ~ /\/s?bin\//) != ($1 == "755") { print }' <<<"$landed")
if [[ -z $modes_bad ]]; then t_ok "programs 0755, everything else 0644"; else
    t_fail "programs 0755, everything else 0644" "$modes_bad"
fi

# the units find what install put in place (default PREFIX, then another one)
check_units() {
    local dest=$1 prefix=$2 u bad="" p
    for u in "$dest$prefix"/lib/systemd/system/*.service; do
        while read -r p; do
            [[ -x $dest$p ]] || bad+=" ${u##*/}:$p(missing)"
            [[ $p == "$prefix"/sbin/* ]] || bad+=" ${u##*/}:$p(not in $prefix/sbin)"
        done < <(sed -n 's/^ExecStart\(Pre\)\?=\([^ ]*\).*/\2/p' "$u")
        while read -r p; do
            [[ -f $dest$p ]] || bad+=" ${u##*/}:$p(config missing)"
        done < <(sed -n 's/^ExecStart\(Pre\)\?=.* -c \([^ ]*\).*/\2/p' "$u")
        p=$(sed -n 's/^Environment=SOFTHSM2_CONF=//p' "$u")
        [[ -f $dest$p ]] || bad+=" ${u##*/}:SOFTHSM2_CONF=$p(missing)"
        p=$(sed -n 's,^Documentation=file://,,p' "$u")
        [[ -f $dest$p ]] || bad+=" ${u##*/}:Documentation=$p(missing)"
    done
    if grep -l /usr/local/ "$dest$prefix"/lib/systemd/system/* 2>/dev/null | grep -q . &&
        [[ $prefix != /usr/local ]]; then
        bad+=" /usr/local/ left in a unit"
    fi
    printf '%s' "$bad"
}
bad=$(check_units "$DEST" /usr/local)
if [[ -z $bad ]]; then
    t_ok "PREFIX=/usr/local: the units' ExecStart binaries, -c configs, SOFTHSM2_CONF and docs are installed"
else
    t_fail "PREFIX=/usr/local: units match the install" "$bad"
fi
DEST2=$TMP/dest2
if make --no-print-directory install BUILD="$MBUILD" DESTDIR="$DEST2" PREFIX=/opt/tsa >"$TMP/i2.log" 2>&1; then
    bad=$(check_units "$DEST2" /opt/tsa)
    if [[ -z $bad && -x $DEST2/opt/tsa/sbin/tsad && -f $DEST2/opt/tsa/share/man/man8/tsad.8 ]]; then
        t_ok "PREFIX=/opt/tsa: units rewritten (ExecStart=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$DEST2/opt/tsa/lib/systemd/system/tsad.service"))"
    else
        t_fail "PREFIX=/opt/tsa: units rewritten" "$bad"
    fi
else
    t_fail "make install PREFIX=/opt/tsa" "$(tail -n 3 "$TMP/i2.log")"
fi

# a reinstall keeps the operator's configuration and refreshes the sample
[[ -f $DEST/etc/tsad/tsad.conf && -f $DEST/etc/ocspd/softhsm2.conf ]] ||
    t_fail "configs installed as the configuration" "no /etc/tsad/tsad.conf or /etc/ocspd/softhsm2.conf"
echo "; edited by the operator" >>"$DEST/etc/tsad/tsad.conf"
echo "; edited by the operator" >>"$DEST/etc/ocspd/softhsm2.conf"
echo "; stale sample" >>"$DEST/etc/tsad/tsad.conf.example"
if make --no-print-directory install BUILD="$MBUILD" DESTDIR="$DEST" PREFIX=/usr/local >"$TMP/i3.log" 2>&1 &&
    grep -q '^; edited by the operator' "$DEST/etc/tsad/tsad.conf" &&
    grep -q '^; edited by the operator' "$DEST/etc/ocspd/softhsm2.conf" &&
    cmp -s conf/tsad.conf "$DEST/etc/tsad/tsad.conf.example"; then
    t_ok "reinstall keeps edited configs (tsad.conf, softhsm2.conf), refreshes tsad.conf.example"
else
    t_fail "reinstall keeps edited configs" "$(tail -n 3 "$TMP/i3.log")"
fi

# ---- man pages ----
MANDIR=$DEST/usr/local/share/man
mapfile -t pages < <(find "$MANDIR" -type f -name '*.[58]' | sort)
if command -v mandoc >/dev/null 2>&1; then
    lint() { mandoc -Tlint -Wwarning "$1" 2>&1; }
    linter="mandoc -Tlint -Wwarning"
else
    echo "note: mandoc not installed (package mandoc): groff -mandoc -ww -z instead"
    lint() { groff -mandoc -ww -z "$1" 2>&1; }
    linter="groff -mandoc -ww -z"
fi
for p in "${pages[@]}"; do
    name=${p##*/}
    msg=$(lint "$p")
    rc=$?
    if ((rc == 0)) && [[ -z $msg ]]; then t_ok "$name: $linter clean"; else
        t_fail "$name: $linter clean" "exit $rc: $(head -n 3 <<<"$msg")"
    fi
    title=$(sed -n 's/^\.Dt \([^ ]*\) .*/\1/p' "$p")
    if command -v man >/dev/null 2>&1; then
        text=$(MANWIDTH=80 MANPAGER=cat man -l "$p" 2>"$TMP/man.err")
        rc=$?
    else # no man-db (a minimal image): mandoc renders it
        text=$(mandoc -Tascii "$p" 2>"$TMP/man.err" | col -b)
        rc=$?
    fi
    if ((rc == 0)) && grep -q "^$title(" <<<"$text" && grep -q '^NAME' <<<"$text" &&
        grep -q '^SEE ALSO' <<<"$text" && ! grep -qi 'warning' "$TMP/man.err"; then
        t_ok "$name: man -l renders it ($(wc -l <<<"$text") lines)"
    else
        t_fail "$name: man -l renders it" "exit $rc: $(head -n 3 "$TMP/man.err")"
    fi
    base=${name%.*} sect=${name##*.}
    found=$p
    command -v man >/dev/null 2>&1 && found=$(MANPAGER=cat man -M "$MANDIR" -w "$sect" "$base" 2>/dev/null)
    [[ $found == "$p" ]] || t_fail "$name: man -M PREFIX/share/man -w $sect $base finds it" "got '$found'"
    # our pages named in .Xr must be installed
    while read -r xn xs; do
        case $xn in tsad | tsactl | ocspd | ocspctl | tsad.conf | ocspd.conf) ;; *) continue ;; esac
        [[ $xn == tsactl && $HAVE_TSACTL == 0 ]] && continue
        [[ -f $MANDIR/man$xs/$xn.$xs ]] || t_fail "$name: .Xr $xn $xs resolves" "not installed"
    done < <(sed -n 's/^\.Xr \([^ ]*\) \([0-9]\).*/\1 \2/p' "$p")
done
((${#pages[@]} == 5 + HAVE_TSACTL)) || t_fail "man pages installed" "${#pages[@]}"

# ---- every config key documented, every documented key accepted ----
# page_keys PAGE: "section<TAB>key" for each `.It Ic KEY` under `.Ss [SECTION]`
page_keys() {
    awk '
        /^\.Ss / { s = $0; sub(/^\.Ss +/, "", s); sect = ""
                   if (s ~ /^\[.*\]$/) { sect = substr(s, 2, length(s) - 2) }
                   next }
        /^\.Sh / { sect = "" }
        /^\.It Ic / && sect != "" { print sect "\t" $3 }
    ' "$1"
}
# code literals: strings compared with strcmp/strncmp or opening a table row in the files that
# parse configuration; ratelimit keys are PREFIX_NAME
mapfile -t cfiles < <(grep -l 'config_error(' common/*.c tsa/*.c ocsp/*.c)
code_lits=$(grep -ohE '(strn?cmp\([A-Za-z_>.-]+, |\{)"[a-z][a-z0-9_]*"' "${cfiles[@]}" |
    sed -E 's/.*"([a-z0-9_]+)"/\1/' | sort -u)
rl_prefixes=$(grep -ohE 'ratelimit_config_key\([^"]*"[a-z]+"' "${cfiles[@]}" | sed -E 's/.*"([a-z]+)"/\1/' | sort -u)
rl_names=$(grep -ohE 'strcmp\(k, "[a-z]+"\)' common/ratelimit.c | sed -E 's/.*"([a-z]+)".*/\1/')
for pre in $rl_prefixes; do for n in $rl_names; do code_lits+=$'\n'"${pre}_$n"; done; done
code_sects=$(grep -ohE 'strcmp\(section, "[a-z]+"\)' "${cfiles[@]}" | sed -E 's/.*"([a-z]+)".*/\1/' | sort -u)
grep -q 'strncmp(section, "tsu "' tsa/tsa_config.c && code_sects+=$'\n'"tsu NAME"
for k in listen pin_file journal_segment base_path token_rate sign_burst policy; do
    grep -qx "$k" <<<"$code_lits" || fatal "key extraction" "'$k' not found in ${cfiles[*]}: fix the extraction"
done
t_ok "key extraction: $(wc -l <<<"$code_lits") literals from ${cfiles[*]}; sections: $(echo $code_sects)"

ORC=$TMP/oracle
mkdir -p "$ORC"
# The oracle: does DAEMON's parser know KEY in [SECTION]? Asked with -n on a file of that one
# key (a value no key takes) beside a private store path; the daemon stops at the first error,
# so it is one run per question (thousands under ASan: in two shells at once, without the leak
# check at exit, which the other tests run -n with). Input lines "daemon|section|key"; output
# the accepted ones as "daemon<TAB>section<TAB>key".
cat >"$ORC/ask.sh" <<'ASK'
c=$ORC/c.$$.conf
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
cd "$ORC" || exit 1
while IFS='|' read -r d s k; do
    sect=$s
    [[ $s == "tsu NAME" ]] && sect="tsu x"
    printf '[store]\npath = %s/store\n[%s]\n%s = @@\n' "$ORC" "$sect" "$k" >"$c"
    err=$("$BUILD/$d" -n -c "$c" 2>&1 >/dev/null)
    [[ $err == *"unknown key '$k'"* ]] || printf '%s\t%s\t%s\n' "$d" "$s" "$k"
done
rm -f "$c"
ASK
ask_all() {
    cat >"$ORC/q"
    awk 'NR % 2 == 0' "$ORC/q" | ORC=$ORC BUILD=$BUILD bash "$ORC/ask.sh" >"$ORC/a0" &
    local pid=$!
    awk 'NR % 2 == 1' "$ORC/q" | ORC=$ORC BUILD=$BUILD bash "$ORC/ask.sh" >"$ORC/a1"
    wait "$pid"
    sort -u "$ORC/a0" "$ORC/a1"
}
# sanity of the oracle itself
probe=$(printf '%s\n' "tsad|server|listen" "tsad|server|no_such_key" "ocspd|ocsp|max_age" \
    "ocspd|clock|chrony_socket" "tsad|tsu NAME|policy" | ask_all)
if [[ $probe == $(printf 'ocspd\tocsp\tmax_age\ntsad\tserver\tlisten\ntsad\ttsu NAME\tpolicy') ]]; then
    t_ok "oracle: tsad/ocspd -n tell a known key from an unknown one"
else
    fatal "oracle" "tsad/ocspd -n do not report unknown keys as expected: $probe"
fi

for pair in tsad:conf/tsad.conf.5 ocspd:conf/ocspd.conf.5; do
    d=${pair%%:*} page=${pair#*:}
    documented=$(page_keys "$page")
    sects=$(printf '%s\n%s\n' "$code_sects" "$(cut -f1 <<<"$documented")" | sed '/^$/d' | sort -u)
    cands=$(printf '%s\n%s\n' "$code_lits" "$(cut -f2 <<<"$documented")" | sed '/^$/d' | sort -u)
    accepted=$(while read -r s; do
        while read -r k; do printf '%s|%s|%s\n' "$d" "$s" "$k"; done <<<"$cands"
    done <<<"$sects" | ask_all | cut -f2,3)
    missing=$(comm -23 <(echo "$accepted") <(cut -f1,2 <<<"$documented" | sort -u) | sed 's/\t/] /; s/^/[/' | tr '\n' ' ')
    if [[ -z $missing ]]; then
        t_ok "$page: all $(wc -l <<<"$accepted") keys $d accepts are documented under their section"
    else
        t_fail "$page: every key $d accepts is documented under its section" "undocumented: $missing"
    fi
    stale=""
    while IFS=$'\t' read -r s k; do
        grep -qxF "$s"$'\t'"$k" <<<"$accepted" || stale+="[$s] $k "
    done <<<"$documented"
    if [[ -z $stale ]]; then t_ok "$page: every documented key is accepted by $d"; else
        t_fail "$page: every documented key is accepted by $d" "not accepted: $stale"
    fi
done

t_summary "$NAME"
