#!/usr/bin/env bash
#
# test_ocspctl_export.sh: the OCSP status journal as a hash chain (issue 9 item 3; STANDARDS
# EID-12, EID-15, EID-18). ocspctl and ocspd seal each journal entry into the journal's chain
# in the write transaction that stores it; `ocspctl export --journal [--from] [--to]` writes
# the entries as stored and `tsactl verify` checks them. Checked: the entries of a demo store
# built by ocspctl (issuers, index import, hold), then revocations and a refused change made
# while ocspd serves, verify intact; an entry edited in the LMDB store, an entry deleted from
# it and two swapped lines are named (seq and file:line); --from/--to pieces verify apart and
# together; the snapshot export (`ocspctl export`) still carries the entries. Signed
# checkpoints are tsad's only: the journal's chain is checked link by link.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspctl_export

[[ -x $BUILD/tsactl ]] || fatal "tsactl" "$BUILD/tsactl is not built (make all)"
itest_ocsp_setup
CTL=$BUILD/ocspctl
export USER=auditor-test
WPIDS=()

# changes while ocspd serves: a revocation, a refused change (EID-07), a hold and a release
"$CTL" -c "$CONF" revoke qca "$OCSP_GOOD_SERIAL" --reason keyCompromise >/dev/null 2>&1 ||
    fatal "revoke" "ocspctl revoke failed"
"$CTL" -c "$CONF" release qca "$OCSP_GOOD_SERIAL" >/dev/null 2>&1 # refused: journalled
sleep 1.2
T_SPLIT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sleep 1.2
"$CTL" -c "$CONF" hold qca "$OCSP_HIGHBIT_SERIAL" >/dev/null 2>&1 || fatal "hold" "failed"
"$CTL" -c "$CONF" release qca "$OCSP_HIGHBIT_SERIAL" >/dev/null 2>&1 || fatal "release" "failed"

"$CTL" -c "$CONF" export --journal >"$TMP/all.jsonl" 2>"$TMP/export.err" ||
    fatal "ocspctl export --journal" "$(cat "$TMP/export.err")"
n=$(grep -c . "$TMP/all.jsonl")
if ((n >= 6)); then t_ok "export --journal: $n entries"; else
    t_fail "export --journal" "$n entries: $(head -n 3 "$TMP/all.jsonl")"
fi
expect "export --journal: entries in sequence 0..N-1" "$(jq -r .seq "$TMP/all.jsonl" | tr '\n' ' ')" \
    "$(seq -s ' ' 0 $((n - 1))) "
expect "export --journal: one node" "$(jq -r .node "$TMP/all.jsonl" | sort -u | grep -c .)" 1
expect "export --journal: the refused release is there" \
    "$(jq -r 'select(.result == "refused") | .who' "$TMP/all.jsonl")" auditor-test
verify_ok "tsactl verify: the journal's chain is intact" "$TMP/all.jsonl"
expect "the snapshot export still carries every entry" \
    "$("$CTL" -c "$CONF" export | jq -r 'select(.type == "journal") | .entry.seq' | grep -c .)" "$n"
expect_rc() {
    local name=$1 want=$2 rc=0
    shift 2
    "$@" >/dev/null 2>&1 || rc=$?
    expect "$name" "$rc" "$want"
}
expect_rc "export --from with a bad time: usage error" 2 "$CTL" -c "$CONF" export --from yesterday
expect_rc "export --journal with an issuer: usage error" 2 "$CTL" -c "$CONF" export --journal qca

# ---- tampering with the store (a copy: ocspd keeps serving the original) ----
# store_copy NAME FILTER: a new store TMP/NAME with every database of STORE, the journal
# database passed through the awk program FILTER (on its mdb_dump -p text) on the way
store_copy() {
    local name=$1 filter=$2 db
    rm -rf "${TMP:?}/$name"
    mkdir "$TMP/$name"
    for db in meta issuers certids status responses changes journal; do
        # printable form for the journal (JSON text) only: binary values go as hex
        if [[ $db == journal ]]; then mdb_dump -p -s "$db" "$STORE"; else mdb_dump -s "$db" "$STORE"; fi \
            >"$TMP/$name.$db" || fatal "mdb_dump" "$db"
        if [[ $db == journal ]]; then
            awk -v seqtag="\"seq\":$k," "$filter" "$TMP/$name.$db" >"$TMP/$name.$db.new"
            mv "$TMP/$name.$db.new" "$TMP/$name.$db"
        fi
        mdb_load -s "$db" -f "$TMP/$name.$db" "$TMP/$name" 2>"$TMP/load.err" ||
            fatal "mdb_load $db" "$(cat "$TMP/load.err")"
    done
}
k=3 # the fourth entry (seq 3): entries before and after it
victim=$(sed -n "$((k + 1))p" "$TMP/all.jsonl")
[[ $(jq -r .seq <<<"$victim") == "$k" ]] || fatal "victim" "$victim"

# edited: the operator's name of one entry rewritten in LMDB
store_copy edit 'index($0, seqtag) { sub(/"who":"[^"]*"/, "\"who\":\"somebody-else\"") } { print }'
"$CTL" -d "$TMP/edit" export --journal >"$TMP/edit.jsonl" || fatal "export" "edit"
expect "the edit is in the export" "$(grep -c somebody-else "$TMP/edit.jsonl")" 1
verify_broken "tsactl verify: an entry edited in the store is named (seq $k, file:line)" \
    "record seq=$k at $TMP/edit.jsonl:$((k + 1)) was edited" "$TMP/edit.jsonl"

# deleted: one entry removed from LMDB (its key/value pair left out of the journal database)
store_copy del '
    /^ / && !body { key = $0; body = 1; next }
    /^ / && body { if (index($0, seqtag) == 0) { print key; print } body = 0; next }
    { print }'
"$CTL" -d "$TMP/del" export --journal >"$TMP/del.jsonl" || fatal "export" "del"
expect "one entry fewer" "$(grep -c . "$TMP/del.jsonl")" "$((n - 1))"
verify_broken "tsactl verify: an entry deleted from the store is named (seq $k)" \
    "record seq=$k missing between $TMP/del.jsonl:$k and $TMP/del.jsonl:$((k + 1)): deleted" \
    "$TMP/del.jsonl"

# reordered: two lines of the export swapped
awk -v a="$((k + 1))" 'NR == a { held = $0; next } { print } NR == a + 1 { print held }' \
    "$TMP/all.jsonl" >"$TMP/swap.jsonl"
verify_broken "tsactl verify: two swapped lines are named (seq $k)" \
    "record seq=$k at $TMP/swap.jsonl:$((k + 2)) is out of order" "$TMP/swap.jsonl"

# ---- --from / --to ----
"$CTL" -c "$CONF" export --journal --to "$T_SPLIT" >"$TMP/p1.jsonl" || fatal "export --to" "failed"
"$CTL" -c "$CONF" export --from "$T_SPLIT" >"$TMP/p2.jsonl" || fatal "export --from" "failed"
expect "--to and --from split the journal in two" \
    "$(($(grep -c . "$TMP/p1.jsonl") + $(grep -c . "$TMP/p2.jsonl")))" "$n"
expect "--from: the hold and the release after the split" "$(jq -r .after.state "$TMP/p2.jsonl" | tr '\n' ' ')" \
    "hold good "
verify_ok "tsactl verify: the piece after the split alone" "$TMP/p2.jsonl"
verify_ok "tsactl verify: both pieces together" "$TMP/p1.jsonl" "$TMP/p2.jsonl"
m=$(grep -c . "$TMP/p1.jsonl")
sed "${m}s/\"who\":\"[^\"]*\"/\"who\":\"x\"/" "$TMP/p1.jsonl" >"$TMP/p1e.jsonl"
verify_broken "tsactl verify: an edit at the seam is named when the next piece is given" \
    "record seq=$((m - 1)) at $TMP/p1e.jsonl:$m was edited" "$TMP/p1e.jsonl" "$TMP/p2.jsonl"

# two ocspctl writing at once (each entry sealed in the write transaction that numbers it:
# LMDB has one writer at a time, so no fork): 2 x 10 changes, each worker on its own serial
before=$("$CTL" -c "$CONF" export --journal | grep -c .)
[[ -n ${OCSP_HOLD_SERIAL:-} ]] || fatal "hold serial" "OCSP_HOLD_SERIAL not set"
for w in 1 2; do
    ser=$OCSP_HIGHBIT_SERIAL ops=(hold release)
    ((w == 2)) && ser=$OCSP_HOLD_SERIAL ops=(release hold) # on hold since the setup
    (for i in 1 2 3 4 5; do
        for op in "${ops[@]}"; do
            "$CTL" -u "w$w" -c "$CONF" "$op" qca "$ser" >/dev/null 2>&1 || echo "w$w $op failed"
        done
    done >"$TMP/w$w.err") &
    track_pid $!
    WPIDS+=($!)
done
wait "${WPIDS[@]}"
"$CTL" -c "$CONF" export --journal >"$TMP/conc.jsonl" || fatal "export" "concurrent"
n2=$(grep -c . "$TMP/conc.jsonl")
expect "two concurrent ocspctl: no change failed" "$(cat "$TMP/w1.err" "$TMP/w2.err")" ""
expect "  every change journalled (20)" "$((n2 - before))" 20
expect "  entries numbered 0..N-1 in order, none twice" "$(jq -r .seq "$TMP/conc.jsonl" | tr '\n' ' ')" \
    "$(seq -s ' ' 0 $((n2 - 1))) "
verify_ok "tsactl verify: the journal written by two ocspctl at once is one chain" "$TMP/conc.jsonl"

# review (issue 9 item 3): an operator name that is not UTF-8 (a Latin-1 login name) or holds
# control characters still gives an entry that is JSON (jansson refuses invalid UTF-8) and that
# tsactl verify accepts: the intact journal is never named broken
"$CTL" -u $'op\xe9r\x01\x7f"\\' -c "$CONF" hold qca "$OCSP_HIGHBIT_SERIAL" >/dev/null 2>&1 ||
    fatal "hold -u" "failed"
"$CTL" -c "$CONF" export --journal >"$TMP/utf.jsonl" || fatal "export" "utf"
verify_ok "tsactl verify: an entry by an operator name that is not UTF-8 is intact" "$TMP/utf.jsonl"
expect "that entry is JSON with the name readable" "$(tail -n 1 "$TMP/utf.jsonl" | jq -j .who | od -An -c | tr -s ' ')" \
    "$(printf 'op\xc3\xa9r\x01\x7f"\\' | od -An -c | tr -s ' ')"
# a long file name (ocspctl writes strings in pieces of 256 bytes) with a UTF-8 character
# across a piece boundary: the journal entry keeps the name as it is
long=$TMP/$(printf 'd%.0s' $(seq $((254 - ${#TMP}))))é-index.txt
cp "$OCSP_CA_INDEX" "$long" || fatal "long name" "cp"
"$CTL" -c "$CONF" import-index qca "$long" >/dev/null 2>&1 || fatal "import-index" "long name"
"$CTL" -c "$CONF" export --journal >"$TMP/long.jsonl" || fatal "export" "long"
expect "a long file name with a UTF-8 character across 256 bytes is kept" \
    "$(tail -n 1 "$TMP/long.jsonl" | jq -j .file)" "$long"
verify_ok "tsactl verify: and the journal verifies" "$TMP/long.jsonl"

itest_ocspd_stop_clean
t_summary "$NAME"
