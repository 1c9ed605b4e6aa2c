#!/usr/bin/env bash
#
# test_tsactl_verify_hostile.sh: tsactl verify against crafted exports (issue 9 item 3;
# STANDARDS EID-11, EID-12, EID-18; review of the verifier). Chains are built here exactly as
# common/chain.c seals them (SHA-256 of each stored line), so that every case is one edit away
# from an intact chain that verifies. Checked:
#   - chained records whose seq, node and prev were stripped (made to look as if written before
#     the chain) are named: the first chained record's prev is the SHA-256 of the line before
#     it; real records from before the chain still verify;
#   - a node name that is not [A-Za-z0-9._-] (a terminal escape) is named, not printed.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsactl_verify_hostile

[[ -x $BUILD/tsactl ]] || fatal "tsactl" "$BUILD/tsactl is not built (make all)"
TSACTL=$BUILD/tsactl

# chain NODE FIRST_SEQ PREV_HEX < bodies > lines: each body ({...}) sealed as the next record
chain() {
    python3 -c '
import hashlib, sys
node, seq, prev = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for body in sys.stdin.read().splitlines():
    rec = "{\"seq\":%d,\"node\":\"%s\",\"prev\":\"%s\",%s" % (seq, node, prev, body[1:])
    sys.stdout.write(rec + "\n")
    prev = hashlib.sha256(rec.encode()).hexdigest()
    seq += 1
' "$@"
}
sha() { printf '%s' "$1" | sha256sum | cut -c1-64; }
ZERO=$(printf '0%.0s' {1..64})
bodies() {
    local i
    for ((i = 1; i <= $1; i++)); do
        printf '{"v":1,"type":"token","serial":"%02x","gen_time":"2026-01-02T03:04:%02d.000000Z","tsu":"n1"}\n' "$i" "$i"
    done
}

verify_ok() {
    local name=$1 rc=0
    shift
    "$TSACTL" verify "$@" >"$TMP/v.out" 2>&1 || rc=$?
    if ((rc == 0)); then t_ok "$name"; else t_fail "$name" "exit $rc: $(head -n 3 "$TMP/v.out")"; fi
}
verify_broken() {
    local name=$1 pat=$2 rc=0 first
    shift 2
    "$TSACTL" verify "$@" >"$TMP/v.out" 2>&1 || rc=$?
    first=$(grep -m1 '^BROKEN' "$TMP/v.out")
    if ((rc == 1)) && [[ $first =~ $pat ]]; then t_ok "$name"; else
        t_fail "$name" "exit $rc, want 1 and a first BROKEN line matching '$pat': $(head -n 3 "$TMP/v.out")"
    fi
}

bodies 6 | chain alpha 1 "$ZERO" >"$TMP/all.jsonl"
verify_ok "an intact crafted chain verifies" "$TMP/all.jsonl"

# ---- records from before the chain ----
# real ones: the chain goes on from the last of them (its first prev is that line's SHA-256)
bodies 3 >"$TMP/old.jsonl"
bodies 3 | chain alpha 4 "$(sha "$(tail -n 1 "$TMP/old.jsonl")")" >"$TMP/new.jsonl"
cat "$TMP/old.jsonl" "$TMP/new.jsonl" >"$TMP/upgraded.jsonl"
verify_ok "records from before the chain, then the chain from the last of them: intact" \
    "$TMP/upgraded.jsonl"
expect "they are counted" "$(grep -c '^3 record(s) from before the chain' "$TMP/v.out")" 1
# forged: the first three chained records stripped of seq, node and prev and edited
{
    head -n 3 "$TMP/all.jsonl" | sed -e 's/"seq":[0-9]*,"node":"alpha","prev":"[0-9a-f]*",//' \
        -e 's/"tsu":"n1"/"tsu":"forged"/'
    tail -n +4 "$TMP/all.jsonl"
} >"$TMP/stripped.jsonl"
verify_broken "chained records made to look older than the chain (and edited) are named" \
    "record seq=4 at $TMP/stripped.jsonl:4 does not follow the line before it" "$TMP/stripped.jsonl"
# the line before the first chained record edited
{
    sed '3s/"tsu":"n1"/"tsu":"n9"/' "$TMP/old.jsonl"
    cat "$TMP/new.jsonl"
} >"$TMP/oldedit.jsonl"
verify_broken "the last record from before the chain, edited, is named" \
    "record seq=4 at $TMP/oldedit.jsonl:4 does not follow the line before it" "$TMP/oldedit.jsonl"

# ---- node names ----
bodies 2 | chain $'a\\u001b[2Jb' 1 "$ZERO" >"$TMP/esc.jsonl"
verify_broken "a node name with a control character is named" \
    "esc.jsonl:1: a record with a malformed chain" "$TMP/esc.jsonl"
if grep -q $'\x1b' "$TMP/v.out"; then t_fail "the escape is not printed" "it is"; else
    t_ok "the escape is not printed"
fi

t_summary "$NAME"
