#!/usr/bin/env bash
#
# test_tsactl.sh: evidence for auditors (issue 9 item 3; STANDARDS EID-11, EID-12, EID-18).
# tsad seals every audit record into its node's hash chain when the record is written and
# signs checkpoints with an audit key of its own in the SoftHSM2 token; `tsactl export` writes
# a time range as JSON lines and `tsactl verify` checks them. Checked:
#   - tokens across a clean restart and a kill -9 (journal replay): one intact chain, the
#     checkpoints' signatures verify with the audit certificate;
#   - a record edited in the LMDB store, a record deleted from it, two lines of an export
#     swapped, a checkpoint signature altered, a checkpoint signed by an untrusted key: verify
#     exits 1 and names the record (seq and file:line);
#   - two nodes' exports, apart and concatenated, verify; --from/--to split a chain in two
#     pieces that verify apart and together, and an edit at the seam is named;
#   - a configuration that names a TSU key as the audit key is refused.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_tsactl

[[ -x $BUILD/tsactl ]] || fatal "tsactl" "$BUILD/tsactl is not built (make all)"
itest_tsa_setup local
tsad_audit_conf "$TMP/audit.conf" "$TMP/pki" alpha 2s
tsad_write_conf "$CONF" "$TMP/pki" "$PORT" "$SOCK" "$STORE" "$TMP/audit.conf"
TSACTL=$BUILD/tsactl
echo "evidence" >"$TMP/doc.txt"
openssl ts -query -data "$TMP/doc.txt" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null ||
    fatal "query" "openssl ts -query failed"

# issue N [BASE]: N tokens, each must be granted
issue() {
    local n=$1 base=${2:-$BASE} i code
    for ((i = 0; i < n; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/timestamp-query' \
            --data-binary @"$TMP/q.tsq" "$base/tsa")
        [[ $code == 200 ]] || return 1
    done
}

# ---- a configuration naming a TSU key as the audit key is refused ----
for bad in "key_label = $TSU_N_LABEL|certificate = $AUDIT_CERT" \
    "key_label = $AUDIT_LABEL|certificate = $TSU_Q_CERT"; do
    sed -e '/^\[audit\]/,$d' "$CONF" >"$TMP/bad.conf"
    printf '[audit]\n%s\n%s\n' "${bad%%|*}" "${bad##*|}" >>"$TMP/bad.conf"
    if "$BUILD/tsad" -n -c "$TMP/bad.conf" >"$TMP/bad.out" 2>&1; then
        t_fail "a TSU key as audit key is refused (${bad%%|*})" "tsad -n accepted it"
    elif grep -q 'a key of their own' "$TMP/bad.out"; then
        t_ok "a TSU key as audit key is refused (${bad%%|*}): $(grep -m1 -o 'the audit key is [^:]*' "$TMP/bad.out")"
    else
        t_fail "a TSU key as audit key is refused" "$(tail -n 2 "$TMP/bad.out")"
    fi
done

# ---- tokens, a clean restart, a kill -9 ----
itest_tsad_start
itest_tsad_healthy
issue 5 || fatal "tokens" "not granted: $(tail -n 3 "$LOG")"
sleep 2.5 # a checkpoint interval
issue 3 || fatal "tokens" "not granted"
tsad_stop
if grep -q 'audit checkpoint signed' "$LOG"; then t_ok "tsad signs audit checkpoints"; else
    t_fail "tsad signs audit checkpoints" "none in the log"
fi
itest_tsad_start
wait_http "$BASE/healthz" 10 200 || fatal "restart" "$(tail -n 3 "$LOG")"
issue 4 || fatal "tokens after restart" "not granted"
kill -9 "$TSAD_PID"
wait "$TSAD_PID" 2>/dev/null
TSAD_PID=
itest_tsad_start
wait_http "$BASE/healthz" 10 200 || fatal "restart after kill -9" "$(tail -n 3 "$LOG")"
issue 3 || fatal "tokens after kill -9" "not granted"
sleep 1.2
T_SPLIT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sleep 1.2
issue 3 || fatal "tokens" "not granted"
tsad_stop

"$TSACTL" -c "$CONF" export >"$TMP/all.jsonl" 2>"$TMP/export.err" ||
    fatal "tsactl export" "$(cat "$TMP/export.err")"
n_tok=$(grep -c '"type":"token"' "$TMP/all.jsonl")
n_ck=$(grep -c '"type":"checkpoint"' "$TMP/all.jsonl")
expect "export: every token's record (18)" "$n_tok" 18
if ((n_ck >= 3)); then t_ok "export: $n_ck checkpoints in the chain"; else
    t_fail "export: checkpoints" "$n_ck, want at least 3 (one per clean stop and interval)"
fi
expect "export: records in sequence 1..N" "$(jq -r .seq "$TMP/all.jsonl" | tr '\n' ' ')" \
    "$(seq -s ' ' 1 "$(grep -c . "$TMP/all.jsonl")") "
expect "export: the node's name in every record" "$(jq -r .node "$TMP/all.jsonl" | sort -u)" alpha
verify_ok "verify: the chain across a restart and a kill -9 is intact, signatures verify" \
    --cert "$AUDIT_CERT" "$TMP/all.jsonl"
if grep -q "signature(s) verified" "$TMP/v.out" && ! grep -q "NOT checked" "$TMP/v.out"; then
    t_ok "verify: $(grep -o '[0-9]* signature(s) verified' "$TMP/v.out")"
else
    t_fail "verify: signatures verified" "$(cat "$TMP/v.out")"
fi
verify_ok "verify without --cert: links checked, signatures not" "$TMP/all.jsonl"
expect "verify without --cert says so" "$(grep -c 'NOT checked' "$TMP/v.out")" 1

# records of an older tsad (no chain) before the chained ones: counted, not checked; an
# unchained line among chained ones: named
legacy='{"v":1,"serial":"00","gen_time":"2020-01-01T00:00:00.000000Z","tsu":"n1"}'
{ printf '%s\n%s\n' "$legacy" "$legacy"; cat "$TMP/all.jsonl"; } >"$TMP/legacy.jsonl"
verify_ok "verify: records from before the chain are counted, not checked" \
    --cert "$AUDIT_CERT" "$TMP/legacy.jsonl"
expect "verify says how many" "$(grep -c '^2 record(s) from before the chain' "$TMP/v.out")" 1
{ head -n 4 "$TMP/all.jsonl"; printf '%s\n' "$legacy"; tail -n +5 "$TMP/all.jsonl"; } \
    >"$TMP/inserted.jsonl"
verify_broken "verify: an unchained record among chained ones is named (line 5)" \
    "$TMP/inserted.jsonl:5: a record without its chain after chained ones" \
    --cert "$AUDIT_CERT" "$TMP/inserted.jsonl"

# ---- tampering with the store ----
# store_copy NAME: a copy of the store and a config pointing at it
store_copy() {
    rm -rf "$TMP/$1"
    cp -a "$STORE" "$TMP/$1"
    sed "/^\[store\]/,/^\[signer/ s|^path = .*|path = $TMP/$1|" "$CONF" >"$TMP/$1.conf"
}
# the third token's record (one with records before and after it)
victim=$(jq -c 'select(.type == "token")' "$TMP/all.jsonl" | sed -n 3p)
vseq=$(jq -r .seq <<<"$victim")
vserial=$(jq -r .serial <<<"$victim")
[[ -n $vserial && $vserial != null && $(sed -n "${vseq}p" "$TMP/all.jsonl") == *"\"serial\":\"$vserial\""* ]] ||
    fatal "victim" "the third token is not on line seq: $victim"

# edited: the client address of one record rewritten in LMDB (mdb_dump -p / mdb_load)
store_copy edit
mdb_dump -p -s tsa_audit "$TMP/edit" >"$TMP/edit.dump"
sed -i "/\"serial\":\"$vserial\"/s/\"client\":\"127.0.0.1\"/\"client\":\"127.0.0.9\"/" "$TMP/edit.dump"
mdb_load -s tsa_audit -f "$TMP/edit.dump" "$TMP/edit" 2>"$TMP/load.err" ||
    fatal "mdb_load" "$(cat "$TMP/load.err")"
"$TSACTL" -c "$TMP/edit.conf" export >"$TMP/edit.jsonl" || fatal "export" "edit"
expect "the edit is in the export" "$(grep -c '127.0.0.9' "$TMP/edit.jsonl")" 1
verify_broken "verify: a record edited in the store is named (seq $vseq, file:line)" \
    "record seq=$vseq at $TMP/edit.jsonl:$vseq was edited" --cert "$AUDIT_CERT" "$TMP/edit.jsonl"

# deleted: one record removed from LMDB
store_copy del
mdb_dump -p -s tsa_audit "$TMP/del" >"$TMP/del.dump"
awk -v s="\"serial\":\"$vserial\"" '
    /^ / && !body { key = $0; body = 1; next }
    /^ / && body { if (index($0, s) == 0) { print key; print } body = 0; next }
    { print }' "$TMP/del.dump" >"$TMP/del2.dump"
rm -rf "$TMP/del"
mkdir "$TMP/del"
mdb_load -s tsa_audit -f "$TMP/del2.dump" "$TMP/del" 2>"$TMP/load.err" ||
    fatal "mdb_load" "$(cat "$TMP/load.err")"
"$TSACTL" -c "$TMP/del.conf" export >"$TMP/del.jsonl" || fatal "export" "del"
expect "one record fewer in the export" "$(grep -c . "$TMP/del.jsonl")" \
    "$(($(grep -c . "$TMP/all.jsonl") - 1))"
verify_broken "verify: a record deleted from the store is named (seq $vseq)" \
    "record seq=$vseq missing between $TMP/del.jsonl:$((vseq - 1)) and $TMP/del.jsonl:$vseq: deleted" \
    --cert "$AUDIT_CERT" "$TMP/del.jsonl"

# reordered: two lines of an export swapped
awk -v a="$vseq" 'NR == a { held = $0; next } { print } NR == a + 1 { print held }' \
    "$TMP/all.jsonl" >"$TMP/swap.jsonl"
verify_broken "verify: two swapped lines are named (seq $vseq)" \
    "record seq=$vseq at $TMP/swap.jsonl:$((vseq + 1)) is out of order" \
    --cert "$AUDIT_CERT" "$TMP/swap.jsonl"

# a checkpoint signature altered: the last record (the checkpoint of the last clean stop),
# so that no later link covers it and only the signature check can tell
last=$(tail -n 1 "$TMP/all.jsonl")
expect "the last record is a checkpoint" "$(jq -r .type <<<"$last")" checkpoint
lseq=$(jq -r .seq <<<"$last")
nl=$(grep -c . "$TMP/all.jsonl")
sig=$(jq -r .sig <<<"$last")
flip=$(printf '%s' "${sig:20:1}" | tr '0-9a-f' '123456789abcdef0')
{ head -n -1 "$TMP/all.jsonl"; printf '%s\n' "${last/$sig/${sig:0:20}$flip${sig:21}}"; } >"$TMP/sig.jsonl"
verify_broken "verify: an altered checkpoint signature is named (seq $lseq)" \
    "checkpoint seq=$lseq at $TMP/sig.jsonl:$nl: the signature does not verify" \
    --cert "$AUDIT_CERT" "$TMP/sig.jsonl"
verify_broken "verify: checkpoints signed by a key that is not the trusted one are named" \
    "checkpoint seq=[0-9]+ at .* is signed by a key none of the --cert" \
    --cert "$TSU_N_CERT" "$TMP/all.jsonl"

# ---- --from / --to ----
"$TSACTL" -c "$CONF" export --to "$T_SPLIT" >"$TMP/part1.jsonl" || fatal "export --to" "failed"
"$TSACTL" -c "$CONF" export --from "$T_SPLIT" >"$TMP/part2.jsonl" || fatal "export --from" "failed"
expect "--to and --from split the chain in two" \
    "$(($(grep -c . "$TMP/part1.jsonl") + $(grep -c . "$TMP/part2.jsonl")))" "$nl"
expect "--from: the 3 tokens issued after the split" "$(grep -c '"type":"token"' "$TMP/part2.jsonl")" 3
bad_t=$(jq -r 'select(.type == "token") | .gen_time' "$TMP/part2.jsonl" |
    awk -v t="$T_SPLIT" '$0 < t' | grep -c .)
expect "--from: no token before the split time" "$bad_t" 0
verify_ok "verify: the piece before the split alone" --cert "$AUDIT_CERT" "$TMP/part1.jsonl"
verify_ok "verify: the piece after the split alone (its first prev taken on trust)" \
    --cert "$AUDIT_CERT" "$TMP/part2.jsonl"
verify_ok "verify: both pieces together" --cert "$AUDIT_CERT" "$TMP/part2.jsonl" "$TMP/part1.jsonl"
k=$(grep -c . "$TMP/part1.jsonl")
sed "${k}s/\"client\":\"127.0.0.1\"/\"client\":\"127.0.0.8\"/" "$TMP/part1.jsonl" >"$TMP/part1e.jsonl"
if [[ $(sed -n "${k}p" "$TMP/part1e.jsonl") == *127.0.0.8* ]]; then
    verify_broken "verify: an edit at the seam is named when the next piece is given" \
        "record seq=$k at $TMP/part1e.jsonl:$k was edited" "$TMP/part1e.jsonl" "$TMP/part2.jsonl"
else # the seam is a checkpoint: alter its time instead
    sed -i "${k}s/\"time\":\"2/\"time\":\"3/" "$TMP/part1e.jsonl"
    verify_broken "verify: an edit at the seam is named when the next piece is given" \
        "record seq=$k at $TMP/part1e.jsonl:$k was edited" "$TMP/part1e.jsonl" "$TMP/part2.jsonl"
fi
"$TSACTL" -c "$CONF" export --from 2000-01-01 --to 2000-01-02 >"$TMP/none.jsonl"
expect "an empty range exports nothing" "$(grep -c . "$TMP/none.jsonl")" 0

# ---- two nodes ----
PORT2=$(free_port) || fatal "free port" "none"
tsad_audit_conf "$TMP/audit2.conf" "$TMP/pki" beta 2s
tsad_write_conf "$TMP/beta.conf" "$TMP/pki" "$PORT2" "$SOCK" "$TMP/store-beta" "$TMP/audit2.conf"
sed -i "s|^journal = .*||" "$TMP/beta.conf"
printf '\n[store]\njournal = no\n' >>"$TMP/beta.conf" # the other write path (commit pipeline)
daemon_start tsad-beta "$TMP/beta.conf" "$TMP/beta.log" "$BUILD/tsad" -c "$TMP/beta.conf" ||
    fatal "node beta" "$(tail -n 3 "$TMP/beta.log")"
BETA_PID=$DAEMON_PID
wait_http "http://127.0.0.1:$PORT2/healthz" 10 200 || fatal "node beta healthy" "$(tail -n 3 "$TMP/beta.log")"
issue 4 "http://127.0.0.1:$PORT2" || fatal "beta tokens" "not granted"
daemon_stop "$BETA_PID"
"$TSACTL" -c "$TMP/beta.conf" export >"$TMP/beta.jsonl" || fatal "export beta" "failed"
expect "node beta's export: its name" "$(jq -r .node "$TMP/beta.jsonl" | sort -u)" beta
verify_ok "verify: two nodes' exports together" --cert "$AUDIT_CERT" "$TMP/all.jsonl" "$TMP/beta.jsonl"
expect "verify reports both nodes" "$(grep -c '^node ' "$TMP/v.out")" 2
cat "$TMP/beta.jsonl" "$TMP/all.jsonl" "$TMP/part2.jsonl" >"$TMP/cat.jsonl"
verify_ok "verify: both nodes concatenated in one file (with an overlapping piece)" \
    --cert "$AUDIT_CERT" "$TMP/cat.jsonl"
verify_broken "verify: a deletion in one node's export is named beside another node's" \
    "node alpha: record seq=$vseq missing" --cert "$AUDIT_CERT" "$TMP/beta.jsonl" "$TMP/del.jsonl"

# ---- --to far before the end of a long log: records after it are not held in memory ----
# (a period exported from a log that goes on long after it: 60000 records of 1 kB after the
# period, loaded with mdb_load; the export runs with 40 MB of data memory)
rm -rf "$TMP/long"
mkdir "$TMP/long"
python3 - "$TMP/long.dump" <<'PY'
import sys, datetime
t0 = datetime.datetime(2026, 1, 1)
with open(sys.argv[1], "w") as f:
    f.write("VERSION=3\nformat=bytevalue\ndatabase=tsa_audit\ntype=btree\nmapsize=268435456\nHEADER=END\n")
    for i in range(1, 60001):
        t = (t0 + datetime.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        rec = '{"v":1,"type":"token","serial":"%032x","gen_time":"%s","pad":"%s"}' % (i, t, "x" * 900)
        f.write(" %016x\n %s\n" % (i, rec.encode().hex()))
    f.write("DATA=END\n")
PY
mdb_load -s tsa_audit -f "$TMP/long.dump" "$TMP/long" 2>"$TMP/load.err" || fatal "mdb_load" "$(cat "$TMP/load.err")"
sed "/^\[store\]/,/^\[signer/ s|^path = .*|path = $TMP/long|" "$CONF" >"$TMP/long.conf"
rc=0
# the memory bound: not under ASan, whose shadow memory alone is larger (the export still runs)
limit=(prlimit --data=40000000)
mem="with 40 MB of memory"
if [[ $BUILD == *asan* ]]; then limit=() mem="(no memory limit under ASan)"; fi
"${limit[@]}" "$TSACTL" -c "$TMP/long.conf" export --to 2026-01-01T00:00:11Z \
    >"$TMP/long.jsonl" 2>"$TMP/long.err" || rc=$?
expect "export --to far before the end of a long log, $mem: exit 0" "$rc" 0
expect "  its 10 records" "$(grep -c . "$TMP/long.jsonl")" 10

itest_log_clean "$LOG"
t_summary "$NAME"
