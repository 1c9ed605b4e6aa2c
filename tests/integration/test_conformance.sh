#!/usr/bin/env bash
#
# test_conformance.sh: the repository explains itself (issue 9 item 6). tests/lib/conformance.py
# checks the tree against tests/CONFORMANCE.md and common/ARCHITECTURE.md:
#   - every requirement ID cited anywhere (code, tests, README, conf, systemd) has a row in
#     the conformance list, with its meaning, its source and how it is shown;
#   - every test file and test name a row gives exists (Check START_TEST names, script labels);
#   - every design decision Dn cited is defined in the architecture;
#   - no file points to documents outside the repository.
# Then the checker is shown to catch each kind of fault, on a file given as if it were in the
# tree and on an altered copy of the list (nothing in the tree is changed). No daemon runs.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
# shellcheck source=tests/lib/common.sh
. "$ROOT/tests/lib/common.sh"

TMP=$(mktemp -d) || die "mktemp -d failed"
trap 'rm -rf "$TMP"' EXIT
CHECK=(python3 "$ROOT/tests/lib/conformance.py" --root "$ROOT")

# ---- the tree as it is ----
if "${CHECK[@]}" >"$TMP/tree.out" 2>&1; then
    t_ok "tree: $(tail -n 1 "$TMP/tree.out")"
else
    t_fail "tree: every cited ID listed, every test named exists, no outside reference" \
        "$(grep -v '^conformance:' "$TMP/tree.out" | head -n 20)"
fi

# ---- the checker catches what it must (ids built from parts: this file cites none) ----
# fails NAME WANT ARGS...: the checker run with ARGS exits non-zero and says WANT
fails() {
    local name=$1 want=$2
    shift 2
    if "${CHECK[@]}" "$@" >"$TMP/f.out" 2>&1; then
        t_fail "$name" "the checker passed: $(tail -n 1 "$TMP/f.out")"
    elif grep -qF -- "$want" "$TMP/f.out"; then
        t_ok "$name"
    else
        t_fail "$name" "no '$want' in: $(head -n 5 "$TMP/f.out")"
    fi
}

uncited="CAB""-11"
printf '/* a new requirement (%s) */\n' "$uncited" >"$TMP/new.c"
fails "an ID cited in a file but not listed is caught" "cites $uncited, which has no row" \
    --extra "$TMP/new.c"

printf '/* spans a range: %s..%s */\n' "TSP-24" "26" >"$TMP/range.c"
fails "an ID inside a cited range is caught (the range's last, which has no row)" "cites TSP""-26" \
    --extra "$TMP/range.c"

printf '/* DESIGN %s */\n' "D""11" >"$TMP/d.c"
fails "a decision the architecture does not define is caught" "cites D""11, not defined" \
    --extra "$TMP/d.c"

printf 'see ../%s/%s\n' "shared" "DESIGN"".md" >"$TMP/out.md"
fails "a reference outside the repository is caught" "outside the repository" \
    --extra "$TMP/out.md"

sed 's/test_weak_hashes`/test_no_such_case`/' tests/CONFORMANCE.md >"$TMP/list1.md"
fails "a Check test name that does not exist is caught" "no START_TEST(test_no_such_case)" \
    --list "$TMP/list1.md"

sed 's|tests/integration/test_tsad_hostile.sh:SHA-224 imprint|tests/integration/test_tsad_hostile.sh:no such label|' \
    tests/CONFORMANCE.md >"$TMP/list2.md"
fails "a script label that does not exist is caught" "does not contain \"no such label" \
    --list "$TMP/list2.md"

sed 's|tests/integration/test_tsad_crash.sh|tests/integration/test_gone.sh|' tests/CONFORMANCE.md \
    >"$TMP/list3.md"
fails "a test file that does not exist is caught" "no file tests/integration/test_gone.sh" \
    --list "$TMP/list3.md"

grep -v '^| TSP-23 ' tests/CONFORMANCE.md >"$TMP/list4.md"
fails "a row removed from the list is caught (TSP-23 is cited in tests)" "cites TSP-23" \
    --list "$TMP/list4.md"

sed -E 's/^(\| TSP-23 \|.*\| )`[^|]*`( \|)$/\1\2/' tests/CONFORMANCE.md >"$TMP/list5.md"
fails "a row that names no test and does not say 'not tested' is caught" "TSP-23 names no test" \
    --list "$TMP/list5.md"

t_summary "test_conformance"
