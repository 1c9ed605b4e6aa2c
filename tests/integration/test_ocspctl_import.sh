#!/usr/bin/env bash
#
# test_ocspctl_import.sh: a bulk `ocspctl import-index` (issue 10 §3; STANDARDS EID-05, EID-07,
# EID-12) on a store that ocspd does not serve (so the `changes` queue is not consumed):
#   - the import is journalled as what it is: ONE entry with the file, the SHA-256 of its
#     bytes (checked against sha256sum), the counts and the operator, plus one entry per
#     revocation and hold; no entry per new `good` line;
#   - no `changes` entry for a new serial (nothing stored to re-sign); a later revocation of
#     an imported serial is queued (EID-05);
#   - `ocspctl export --journal` + `tsactl verify`: the chain is intact after the import;
#   - the import commits in chunks (OCSPCTL_IMPORT_CHUNK lines each): ocspctl killed with
#     SIGKILL after its first chunk was committed leaves whole chunks only (the count of new
#     records is a multiple of the chunk, whenever the kill lands), and importing the same file
#     again completes it: every line is then new or unchanged, none twice;
#   - a file with a bad line in the middle is refused whole before anything is written;
#   - input that is not a regular file (a pipe) is read once, all or nothing: whole into
#     memory and checked first, as a file; one longer than a window in one transaction.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_ocspctl_import

command -v mdb_stat >/dev/null || fatal "mdb_stat" "mdb_stat (lmdb-utils) is needed"
[[ -x $BUILD/tsactl && -x $BUILD/ocspctl ]] || fatal "build" "ocspctl and tsactl are needed"
ocsp_pki_demo "$TMP/pki" "http://127.0.0.1:1/" >"$TMP/pki.log" 2>&1 ||
    fatal pki "$(tail -n 5 "$TMP/pki.log")"
# shellcheck disable=SC1091
. "$TMP/pki/ocsp-pki.env"
CONF=$TMP/ocspd.conf
STORE=$TMP/store
ocspd_write_conf "$CONF" 1 "$STORE" "$TMP/pki"
sed -i 's/^map_size = .*/map_size = 256M/' "$CONF"
ocsp_store_demo "$TMP/pki" "$STORE" "$CONF" >"$TMP/store.log" 2>&1 ||
    fatal "store built with ocspctl" "$(tail -n 5 "$TMP/store.log")"
CTL=$BUILD/ocspctl
export USER=importer

# entries DB: the entries of one database of the store
entries() { mdb_stat -s "$1" "$STORE" | awk '/Entries:/ { print $2 }'; }
# records: status records of issuer qca
records() { "$CTL" -c "$CONF" list qca 2>/dev/null | grep -c .; }
# index FILE N SEED: N lines of random 16-octet serials, 1 in 20 revoked, 1 in 50 on hold
index() {
    openssl rand -hex $(($2 * 16)) | fold -w 32 | awk -v seed="$3" '
        { s = "5" toupper(substr($0, 2))
          if (NR % 20 == 0) printf "R\t351231235959Z\t240101000000Z,keyCompromise\t%s\tunknown\t/CN=%s %d\n", s, seed, NR
          else if (NR % 50 == 0) printf "R\t351231235959Z\t240101000000Z,certificateHold\t%s\tunknown\t/CN=%s %d\n", s, seed, NR
          else printf "V\t351231235959Z\t\t%s\tunknown\t/CN=%s %d\n", s, seed, NR }' >"$1"
}

# ---- one import, journalled as one entry (+ revocations and holds) ----
N=3000
index "$TMP/a.txt" $N a
REV=$(grep -c 'keyCompromise' "$TMP/a.txt")
HOLD=$(grep -c 'certificateHold' "$TMP/a.txt")
GOOD=$((N - REV - HOLD))
j0=$(entries journal)
c0=$(entries changes)
r0=$(records)
out=$(OCSPCTL_IMPORT_CHUNK=1000 "$CTL" -c "$CONF" import-index qca "$TMP/a.txt" 2>"$TMP/a.err")
expect "import-index: exit 0" "$?" 0
expect "import-index: every line recorded" "$(($(records) - r0))" $N
expect "journal: one entry for the import plus one per revocation and hold" \
    "$(($(entries journal) - j0))" $((1 + REV + HOLD))
expect "changes: none for new serials" "$(($(entries changes) - c0))" 0
"$CTL" -c "$CONF" export --journal >"$TMP/all.jsonl" 2>"$TMP/export.err" ||
    fatal "ocspctl export --journal" "$(cat "$TMP/export.err")"
jq -c 'select(.entry.op == "import-index" or .op == "import-index")' "$TMP/all.jsonl" |
    tail -n 1 >"$TMP/imp.json"
# the entry as exported: the JSON line of the entry is its "entry" or the line itself
imp() { jq -r "(.entry // .) | $1" "$TMP/imp.json"; }
expect "import entry: the file" "$(imp .file)" "$TMP/a.txt"
expect "import entry: SHA-256 of the file's bytes" "$(imp .sha256)" \
    "$(sha256sum "$TMP/a.txt" | cut -d' ' -f1)"
expect "import entry: the operator" "$(imp .who)" importer
expect "import entry: counts" "$(imp '[.lines, .new, .unchanged, .revoked, .held, .refused, .failed] | map(tostring) | join(" ")')" \
    "$N $GOOD 0 $REV $HOLD 0 0"
expect "import entry: committed whole" "$(imp '[.committed, .committed_lines] | map(tostring) | join(" ")')" \
    "true $N"
expect "journal: no status entry for a new good serial" \
    "$(jq -r '(.entry // .) | select(.op == "status" and .after.state == "good" and .before == null) | .serial' "$TMP/all.jsonl" | grep -c .)" 0
verify_ok "tsactl verify: the journal's chain is intact after the import" "$TMP/all.jsonl"
out=$(OCSPCTL_IMPORT_CHUNK=1000 "$CTL" -c "$CONF" import-index qca "$TMP/a.txt" 2>/dev/null)
expect "import-index again: exit 0, every line unchanged" "$?:$(grep -Eo '[0-9]+ unchanged' <<<"$out")" \
    "0:$N unchanged"
# a revocation of an imported serial is queued for re-signing at once (EID-05)
S=$(awk -F'\t' '$1 == "V" { print $4; exit }' "$TMP/a.txt")
c1=$(entries changes)
"$CTL" -c "$CONF" revoke qca "$S" --reason keyCompromise >/dev/null 2>&1 || t_fail revoke "$S"
expect "changes: a revocation of an imported serial is queued (EID-05)" \
    "$(($(entries changes) - c1))" 1

# ---- a bad line in the middle: nothing of the file written ----
index "$TMP/bad.txt" 2000 bad
sed -i '1001s/^V/X/' "$TMP/bad.txt"
r1=$(records)
OCSPCTL_IMPORT_CHUNK=100 "$CTL" -c "$CONF" import-index qca "$TMP/bad.txt" >/dev/null 2>"$TMP/bad.err"
expect "a bad line: exit 1, named" "$?:$(grep -c 'bad.txt:1001: not an' "$TMP/bad.err")" "1:1"
expect "a bad line: no chunk written" "$(records)" "$r1"

# ---- chunked: killed after its first chunk, then the same file again ----
N2=40000
CH=2000
index "$TMP/big.txt" $N2 big
r1=$(records)
OCSPCTL_IMPORT_CHUNK=$CH "$CTL" -c "$CONF" import-index qca "$TMP/big.txt" >/dev/null \
    2>"$TMP/big.err" &
kill9_when_logged $! "$TMP/big.err" 'entries committed'
done1=$(($(records) - r1))
if ((done1 > 0 && done1 % CH == 0)); then
    t_ok "killed: $done1 of $N2 lines committed, whole chunks of $CH only"
else
    t_fail "killed" "$done1 new records, not a positive multiple of $CH"
fi
out=$(OCSPCTL_IMPORT_CHUNK=$CH "$CTL" -c "$CONF" import-index qca "$TMP/big.txt" 2>/dev/null)
expect "the same file again: exit 0" "$?" 0
expect "the same file again: every line recorded once" "$(($(records) - r1))" $N2
new=$(grep -Eo '[0-9]+ new' <<<"$out" | cut -d' ' -f1)
unch=$(grep -Eo '[0-9]+ unchanged' <<<"$out" | cut -d' ' -f1)
rev=$(grep -Eo '[0-9]+ revoked' <<<"$out" | cut -d' ' -f1)
held=$(grep -Eo '[0-9]+ held' <<<"$out" | cut -d' ' -f1)
expect "the same file again: new + unchanged + revoked + held = lines" \
    "$((new + unch + rev + held))" $N2
expect "the same file again: the lines committed before are unchanged" "$unch" "$done1"
"$CTL" -c "$CONF" export --journal >"$TMP/all2.jsonl" 2>/dev/null
verify_ok "tsactl verify: intact after the killed import and its re-run" "$TMP/all2.jsonl"

# ---- not a regular file (a pipe): read once, all or nothing: whole into memory and checked
# before anything is written, as a file is; longer than a window (OCSPCTL_IMPORT_WINDOW
# lines), in one transaction ----
index "$TMP/pipe.txt" 500 pipe
r1=$(records)
sed '251s/^V/X/' "$TMP/pipe.txt" | "$CTL" -c "$CONF" import-index qca /dev/stdin >/dev/null 2>&1
expect "a pipe with a bad line: exit 1, nothing written" "$?:$(records)" "1:$r1"
sed '251s/^V/X/' "$TMP/pipe.txt" | OCSPCTL_IMPORT_WINDOW=100 OCSPCTL_IMPORT_CHUNK=50 \
    "$CTL" -c "$CONF" import-index qca /dev/stdin >/dev/null 2>&1
expect "a pipe longer than a window with a bad line: exit 1, nothing written" "$?:$(records)" \
    "1:$r1"
# its journal entry counts what was committed, as a file's that stopped does: nothing (review15:
# it said the new records, revocations and holds of the windows applied before the bad line
# was read, then rolled back)
"$CTL" -c "$CONF" export --journal 2>/dev/null | grep '"op":"import-index"' | tail -n 1 |
    grep -Eo '"(new|unchanged|updated|revoked|held|committed)":[a-z0-9]+' | tr '\n' ' ' \
    >"$TMP/pipe.journal"
expect "a pipe longer than a window with a bad line: its journal entry counts nothing written" \
    "$(cat "$TMP/pipe.journal")" \
    '"new":0 "unchanged":0 "updated":0 "revoked":0 "held":0 "committed":false '
sed '' "$TMP/pipe.txt" | "$CTL" -c "$CONF" import-index qca /dev/stdin >/dev/null 2>&1
expect "a pipe: exit 0, every line recorded" "$?:$(($(records) - r1))" "0:500"

t_summary "$NAME"
