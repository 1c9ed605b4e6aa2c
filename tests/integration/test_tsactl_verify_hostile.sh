#!/usr/bin/env bash
#
# test_tsactl_verify_hostile.sh: tsactl verify against crafted exports (issue 9 item 3;
# STANDARDS EID-11, EID-12, EID-18; review of the verifier). Chains are built here exactly as
# common/chain.c seals them (SHA-256 of each stored line), so that every case is one edit away
# from an intact chain that verifies. Checked:
#   - chained records whose seq, node and prev were stripped (made to look as if written before
#     the chain) are named: the first chained record's prev is the SHA-256 of the line before
#     it; real records from before the chain still verify;
#   - a node name that is not [A-Za-z0-9._-] (a terminal escape) is named, not printed;
#   - a file that cannot be read (a directory) is an error, not an empty export;
#   - --cert takes every certificate of a PEM file;
#   - two nodes' logs under one node name are named as possibly that, not only as an edit;
#   - a checkpoint covers the head it signed, not the records written between that head and
#     itself: verify counts those as not covered.
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

# ---- two nodes with one name (a configuration fault, not an edit): the message says so ----
bodies 3 | sed 's/"tsu":"n1"/"tsu":"n2"/' | chain alpha 1 "$ZERO" >"$TMP/twin.jsonl"
verify_broken "two nodes' logs under one name: named as possibly that" \
    "node alpha: record seq=1 .* differs from the one at .*: one of them was edited, or two nodes have the name alpha" \
    "$TMP/all.jsonl" "$TMP/twin.jsonl"

# ---- unreadable input is an error (exit 3), never "no records, OK" ----
rc=0
"$TSACTL" verify "$TMP/all.jsonl" "$TMP" >"$TMP/v.out" 2>&1 || rc=$?
expect "a directory given as a file: exit 3 (a read error), not OK" "$rc" 3
if grep -q "$TMP" "$TMP/v.out"; then t_ok "the message names it"; else t_fail "the message names it" "$(cat "$TMP/v.out")"; fi

# ---- what a checkpoint covers ----
# a checkpoint signs the head it read (covers_seq K), and is written later as record M > K:
# records K+1..M-1 (tokens that came meanwhile) and the checkpoint itself are covered only by
# the next checkpoint. Record 6 edited and the chain recomputed after it must not be reported
# as covered ("0 record(s) after the last checkpoint" was printed).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/ak.pem" \
    -out "$TMP/ac.pem" -subj /CN=audit -days 2 >/dev/null 2>&1 || fatal "audit cert" "openssl req"
# ckpt_chain FILE TOKEN6: records 1..5, token 6 (body TOKEN6), a checkpoint (7) covering 5
ckpt_chain() {
    python3 - "$TMP/ak.pem" "$TMP/ac.pem" "$2" >"$1" <<'PY'
import hashlib, subprocess, sys
key, cert, tok6 = sys.argv[1:4]
der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], capture_output=True, check=True).stdout
prev, out, heads = "0" * 64, [], {}
def seal(seq, body):
    global prev
    rec = '{"seq":%d,"node":"alpha","prev":"%s",%s' % (seq, prev, body[1:])
    out.append(rec)
    prev = heads[seq] = hashlib.sha256(rec.encode()).hexdigest()
for i in range(1, 6):
    seal(i, '{"v":1,"type":"token","serial":"%02x","gen_time":"2026-01-02T03:04:%02d.000000Z"}' % (i, i))
seal(6, tok6)
t = "2026-01-02T03:05:00.000000Z"
tbs = "tsad-audit-checkpoint v1\nnode=alpha\nseq=5\nhead=%s\ntime=%s\n" % (heads[5], t)
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=tbs.encode(), capture_output=True, check=True).stdout
seal(7, '{"v":1,"type":"checkpoint","time":"%s","covers_seq":5,"covers_head":"%s","key":"file","cert_sha256":"%s","sig_alg":"ecdsa","digest":"sha256","sig":"%s"}'
     % (t, heads[5], hashlib.sha256(der).hexdigest(), sig.hex()))
print("\n".join(out))
PY
}
ckpt_chain "$TMP/ck.jsonl" '{"v":1,"type":"token","serial":"06","gen_time":"2026-01-02T03:04:06.000000Z"}' ||
    fatal "checkpoint chain" "python"
verify_ok "a crafted chain with a signed checkpoint verifies" --cert "$TMP/ac.pem" "$TMP/ck.jsonl"
expect "its signature is verified" "$(grep -c '1 checkpoint(s), 1 signature(s) verified' "$TMP/v.out")" 1
# --cert with a PEM file of several certificates (the audit certificate after another one, as
# in a chain file or a bundle of several nodes' certificates): each of them is trusted
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/ok.pem" \
    -out "$TMP/oc.pem" -subj /CN=other -days 2 >/dev/null 2>&1 || fatal "other cert" "openssl req"
cat "$TMP/oc.pem" "$TMP/ac.pem" >"$TMP/bundle.pem"
verify_ok "--cert with the audit certificate second in a PEM bundle" --cert "$TMP/bundle.pem" "$TMP/ck.jsonl"
ckpt_chain "$TMP/ck6.jsonl" '{"v":1,"type":"token","serial":"66","gen_time":"2026-01-02T03:04:06.000000Z"}'
verify_ok "record 6 rewritten (after the covered head, before the checkpoint): links hold" \
    --cert "$TMP/ac.pem" "$TMP/ck6.jsonl"
if grep -q '2 record(s) after seq=5, the last one a checkpoint covers' "$TMP/v.out"; then
    t_ok "verify says records 6 and 7 are not covered by a signed checkpoint"
else
    t_fail "verify says records 6 and 7 are not covered by a signed checkpoint" "$(cat "$TMP/v.out")"
fi

t_summary "$NAME"
