#!/usr/bin/env bash
# itest: alone (pipeline occupancy under load)
#
# test_store_commit.sh: the commit pipeline and store hygiene (DESIGN D10) against the real
# daemons, a real SoftHSM2 token, chronyd and LMDB files:
#   - ocspd: while `ocspctl import-index` holds the store's write transaction for 10 s (its
#     input is a slow pipe longer than its window), nonce answers signed on demand are still answered at once, and
#     an on-demand answer is stored once the lock is released (storing is the pipeline's job);
#   - ocspd: a store above fill_limit: pre-signing stops at the headroom with a clear message,
#     an import of good entries stops with one, /healthz turns red; a revocation still
#     commits and the next request is answered revoked;
#   - tsad: a reader killed with kill -9 while it holds a read transaction (an mdb_dump
#     blocked on a full pipe) is cleared within reader_check (log line and metric), and the
#     next 300 tokens take about the pages the first 300 did.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_store_commit
TMP_ROOT=$TMP
trap 'TMP=$TMP_ROOT; itest_cleanup' EXIT

metric() { curl -s "$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }
pages_used() { mdb_stat -e "$1" | sed -n 's/^ *Number of pages used: //p'; }

# ======================= ocspd: a long ocspctl transaction =======================
itest_ocsp_setup
HSM=$(ocspd_conf_softhsm "$CONF")
ctl() { SOFTHSM2_CONF=$HSM "$BUILD/ocspctl" -c "$CONF" -u test "$@"; }

openssl ocsp -issuer "$CA" -cert "$OCSP_GOOD_CERT" -reqout "$TMP/nonce.req" >/dev/null 2>&1
for h in sha384 sha512; do
    openssl ocsp -"$h" -issuer "$CA" -cert "$OCSP_GOOD_CERT" -no_nonce -reqout "$TMP/$h.req" \
        >/dev/null 2>&1
done
# post FILE: prints "HTTP_CODE SECONDS"
post() {
    curl -s --max-time 30 -o "$TMP/post.body" -w '%{http_code} %{time_total}' \
        -H 'Content-Type: application/ocsp-request' --data-binary @"$1" "$URL/"
}
status_of() { derutil ocsp-resp "$TMP/post.body" 2>/dev/null | sed -n "s/^$1=//p" | head -n 1; }

# the import holds the write transaction while it waits for the rest of its input: a pipe
# longer than its window (OCSPCTL_IMPORT_WINDOW=1, two lines before the wait) is imported as it
# is read, in one transaction (a pipe that fits is read whole before anything is written)
line() { printf 'V\t351231235959Z\t\t%s\tunknown\t/CN=slow %s\n' "$1" "$1"; }
{ line 5A5A0001; line 5A5A0011; sleep 10; line 5A5A0002; } |
    OCSPCTL_IMPORT_WINDOW=1 ctl import-index qca /dev/stdin >"$TMP/slow.out" 2>&1 &
SLOW=$!
track_pid "$SLOW"
sleep 1.5
# answers that are kept (a SHA-384 and a SHA-512 CertID: not pre-signed) come first: they must
# not leave a signer worker waiting for the lock, or the nonce answers behind them would wait
signed0=$(metric "$URL" 'ocsp_responses_total{source="signed"}')
for h in sha384 sha512; do
    curl -s --max-time 30 -o "$TMP/$h.body" -w '%{http_code} %{time_total}' \
        -H 'Content-Type: application/ocsp-request' --data-binary @"$TMP/$h.req" "$URL/" \
        >"$TMP/$h.res" &
    track_pid $!
done
sleep 0.3
times=()
ok=1
for i in 1 2 3 4 5; do
    read -r code secs <<<"$(post "$TMP/nonce.req")"
    times+=("$secs")
    [[ $code == 200 && $(status_of single.0.status) == good ]] || ok=0
done
if ((ok)); then t_ok "5 nonce answers while ocspctl holds the write lock"; else
    t_fail "5 nonce answers while ocspctl holds the write lock" "HTTP $code"
fi
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
max=$(printf '%s\n' "${times[@]}" | sort -n | tail -n 1)
if awk -v m="$median" -v x="$max" 'BEGIN { exit !(m <= 0.05 && x <= 0.5) }'; then
    t_ok "answered at once: median ${median}s (<= 50 ms), max ${max}s (the lock is held 10 s)"
else
    t_fail "answered at once while the lock is held" "median ${median}s, max ${max}s"
fi
for h in sha384 sha512; do
    for ((i = 0; i < 50; i++)); do [[ -s $TMP/$h.res ]] && break; sleep 0.1; done
    read -r code secs <"$TMP/$h.res"
    cp "$TMP/$h.body" "$TMP/post.body"
    if [[ $code == 200 && $(status_of single.0.status) == good ]] &&
        awk -v x="$secs" 'BEGIN { exit !(x <= 0.5) }'; then
        t_ok "$h CertID answered at once during the lock (${secs}s)"
    else
        t_fail "$h CertID answered at once during the lock" "HTTP $code in ${secs}s"
    fi
done
queued=$(metric "$URL" 'store_commit_queue{store="ocsp"}')
if [[ ${queued:-0} -ge 2 ]]; then t_ok "their storing waits in the pipeline (queue $queued)"; else
    t_fail "their storing waits in the pipeline" "store_commit_queue is '${queued}'"
fi
if wait "$SLOW"; then t_ok "the slow import commits after 10 s"; else
    t_fail "the slow import commits" "$(cat "$TMP/slow.out")"
fi
for ((i = 0; i < 50; i++)); do
    [[ $(metric "$URL" 'store_commit_queue{store="ocsp"}') == 0 ]] && break
    sleep 0.1
done
hit0=$(metric "$URL" 'ocsp_responses_total{source="presigned"}')
read -r code secs <<<"$(post "$TMP/sha384.req")"
hit1=$(metric "$URL" 'ocsp_responses_total{source="presigned"}')
expect "after the lock: the SHA-384 answer is served from the store" \
    "$code $(status_of single.0.status) $((hit1 - hit0))" "200 good 1"
expect "signed on demand: the two kept answers and the 5 nonce answers" \
    "$(($(metric "$URL" 'ocsp_responses_total{source="signed"}') - signed0))" 7
itest_ocspd_stop_clean

# SIGTERM while ocspctl holds the write lock and an answer waits to be stored: ocspd ends
# after stop_timeout instead of waiting for ocspctl
printf '[server]\nstop_timeout = 2s\n' >>"$CONF"
ocspd_start "$CONF" "$TMP/ocspd2.log" || fatal "ocspd restart" "$(tail -n 3 "$TMP/ocspd2.log")"
mkfifo "$TMP/slow2.fifo"
OCSPCTL_IMPORT_WINDOW=1 ctl import-index qca "$TMP/slow2.fifo" >"$TMP/slow2.out" 2>&1 &
SLOW=$!
track_pid "$SLOW"
{ line 5A5A0003; line 5A5A0013; sleep 15; } >"$TMP/slow2.fifo" &
FEED=$!
track_pid "$FEED"
sleep 1.5
read -r code secs <<<"$(post "$TMP/sha512.req")" # stored form: its storing waits for the lock
openssl ocsp -sha1 -issuer "$CA" -cert "$OCSP_REVOKED_CERT" -no_nonce -reqout "$TMP/x.req" \
    >/dev/null 2>&1
t0=$SECONDS
kill -TERM "$OCSPD_PID"
for ((i = 0; i < 100; i++)); do kill -0 "$OCSPD_PID" 2>/dev/null || break; sleep 0.1; done
if ! kill -0 "$OCSPD_PID" 2>/dev/null && ((SECONDS - t0 <= 6)); then
    t_ok "SIGTERM while ocspctl holds the lock: ocspd ends within stop_timeout ($((SECONDS - t0)) s)"
else
    t_fail "SIGTERM while ocspctl holds the lock" "still running after $((SECONDS - t0)) s"
fi
wait "$OCSPD_PID" 2>/dev/null
OCSPD_PID=
kill "$FEED" "$SLOW" 2>/dev/null
wait "$FEED" "$SLOW" 2>/dev/null

# ======================= ocspd: a store at its fill limit =======================
FULL=$TMP/full
FCONF=$TMP/full.conf
printf '[store]\npath = %s\nmap_size = 4M\nfill_limit = 0.5\nreader_check = 1s\n' "$FULL" \
    >"$TMP/full-extra.conf"
ocspd_write_conf "$FCONF" "$PORT" "$FULL" "$TMP/pki" "$TMP/full-extra.conf"
fctl() { SOFTHSM2_CONF=$HSM "$BUILD/ocspctl" -c "$FCONF" -u test "$@"; }
fctl init >/dev/null 2>&1
fctl issuer add qca --cert "$OCSP_CA_CERT" --key-label "$OCSP_SIGNER_LABEL" \
    --signer-cert "$OCSP_SIGNER_CERT" --nonce echo >"$TMP/fctl.log" 2>&1 ||
    fatal "full store: issuer add" "$(tail -n 3 "$TMP/fctl.log")"
openssl rand -hex $((2000 * 8)) | fold -w 16 |
    awk '{ printf "V\t351231235959Z\t\t6%s\tunknown\t/CN=f\n", toupper(substr($0, 2)) }' \
        >"$TMP/idx2000.txt"
if fctl import-index qca "$TMP/idx2000.txt" >"$TMP/imp.out" 2>&1; then
    t_ok "2000 good entries imported below the limit"
else
    t_fail "2000 good entries imported below the limit" "$(tail -n 2 "$TMP/imp.out")"
fi
# a file whose good entries cross the limit part-way (issue 8 item 5): none of them goes in,
# its revocation does (a full store never delays a revocation), exit 1 saying so
openssl rand -hex $((4000 * 8)) | fold -w 16 |
    awk '{ printf "V\t351231235959Z\t\t5%s\tunknown\t/CN=h\n", toupper(substr($0, 2)) }' \
        >"$TMP/idx4000.txt"
printf 'R\t351231235959Z\t240101000000Z,keyCompromise\t4AB0C0FFEE\tunknown\t/CN=r\n' >>"$TMP/idx4000.txt"
first=$(awk -F'\t' 'NR == 1 { print $4 }' "$TMP/idx4000.txt")
fctl import-index qca "$TMP/idx4000.txt" >"$TMP/imp3.out" 2>&1
rc=$?
st_first=$(fctl status qca "$first" 2>&1 | head -n 1)
st_rev=$(fctl status qca 4AB0C0FFEE 2>&1 | head -n 1)
if ((rc != 0)) && grep -q 'none of them' "$TMP/imp3.out" && ! grep -qi 'good' <<<"$st_first"; then
    t_ok "good entries crossing the limit: none imported, exit $rc, said so"
else
    t_fail "good entries crossing the limit: none imported" "exit $rc, first: $st_first: $(tail -n 2 "$TMP/imp3.out")"
fi
if grep -qi 'revoked' <<<"$st_rev"; then t_ok "good entries crossing the limit: the file's revocation is in"; else
    t_fail "good entries crossing the limit: the file's revocation is in" "$st_rev"
fi
# 1500 more (the store's answers are compact: 2000 serials' would fit below the limit)
openssl rand -hex $((1500 * 8)) | fold -w 16 |
    awk '{ printf "V\t351231235959Z\t\t3%s\tunknown\t/CN=f\n", toupper(substr($0, 2)) }' \
        >"$TMP/idx1500.txt"
if fctl import-index qca "$TMP/idx1500.txt" >"$TMP/imp15.out" 2>&1; then
    t_ok "1500 more good entries imported below the limit"
else
    t_fail "1500 more good entries imported below the limit" "$(tail -n 2 "$TMP/imp15.out")"
fi
fctl presign >"$TMP/presign.out" 2>&1
rc=$?
stored=$(mdb_stat -s responses "$FULL" | sed -n 's/^ *Entries: //p')
if ((rc != 0)) && grep -q 'above fill_limit (50%)' "$TMP/presign.out" && ((stored > 0 && stored < 7000)); then
    t_ok "presign stops at the headroom with a clear message ($stored of 7000 stored)"
else
    t_fail "presign stops at the headroom" "exit $rc, $stored stored: $(tail -n 2 "$TMP/presign.out")"
fi
# a revocation always commits, and good entries do not go in any more
victim=$(awk -F'\t' 'NR == 7 { print $4 }' "$TMP/idx2000.txt")
openssl rand -hex $((100 * 8)) | fold -w 16 |
    awk '{ printf "V\t351231235959Z\t\t7%s\tunknown\t/CN=g\n", toupper(substr($0, 2)) }' \
        >"$TMP/idx100.txt"
fctl import-index qca "$TMP/idx100.txt" >"$TMP/imp2.out" 2>&1
rc=$?
if ((rc != 0)) && grep -q 'not imported' "$TMP/imp2.out" && grep -q 'above fill_limit' "$TMP/imp2.out"; then
    t_ok "import of good entries above the limit: refused with a clear message"
else
    t_fail "import of good entries above the limit" "exit $rc: $(tail -n 2 "$TMP/imp2.out")"
fi
if fctl revoke qca "$victim" --reason keyCompromise >"$TMP/rev.out" 2>&1; then
    t_ok "a revocation commits above the fill limit"
else
    t_fail "a revocation commits above the fill limit" "$(cat "$TMP/rev.out")"
fi
# presign and the import stop just below the limit (at the headroom): ocspd runs with a limit
# under the fill they reached, so that the store is above it whatever the last batch was
sed -i 's/^fill_limit = 0.5$/fill_limit = 0.4/' "$FCONF"
ocspd_start "$FCONF" "$TMP/ocspd-full.log" || fatal "ocspd on the full store" "$(tail -n 3 "$TMP/ocspd-full.log")"
openssl ocsp -issuer "$CA" -serial "0x$victim" -no_nonce -reqout "$TMP/victim.req" >/dev/null 2>&1
read -r code secs <<<"$(post "$TMP/victim.req")"
expect "the next request is answered revoked" "$code $(status_of single.0.status)" "200 revoked"
hz=$(curl -s -w ' %{http_code}' "$URL/healthz")
if [[ $hz == *'"store":{"ok":false'*' 503' ]]; then t_ok "/healthz 503 with store.ok false above the limit"; else
    t_fail "/healthz red above the limit" "$hz"
fi
if grep -q 'background writes stop' "$TMP/ocspd-full.log"; then
    t_ok "ocspd logs that background writes stopped"
else
    t_fail "ocspd logs that background writes stopped" "$(grep -i fill "$TMP/ocspd-full.log" | head -n 2)"
fi
ocspd_stop

# ======================= tsad: a reader killed with kill -9 =======================
TMP=$TMP_ROOT/tsa
mkdir -p "$TMP"
itest_tsa_setup local
printf '[store]\nreader_check = 1s\njournal = no\n' >>"$CONF"
itest_tsad_start
itest_tsad_healthy
expect "journal = no: /healthz journal_lag 0" \
    "$(curl -s "$BASE/healthz" | jq -r .store.journal_lag)" 0
openssl ts -query -data "$CONF" -sha256 -cert -out "$TMP/q.tsq" 2>/dev/null
tokens() {
    local i n=0
    for ((i = 0; i < $1; i++)); do
        curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/timestamp-query' \
            --data-binary @"$TMP/q.tsq" "$BASE/tsa/soft"
    done | grep -c '^200$'
}
p0=$(pages_used "$STORE")
expect "300 tokens" "$(tokens 300)" 300
p1=$(pages_used "$STORE")
# mdb_dump blocks on a pipe nobody reads, holding its read transaction; then it is killed
mkfifo "$TMP/fifo"
mdb_dump -s tsa_audit "$STORE" >"$TMP/fifo" &
DUMP=$!
exec 9<>"$TMP/fifo" # keep the pipe open, never read: the dump fills it and blocks
sleep 1
kill -9 "$DUMP" 2>/dev/null
wait "$DUMP" 2>/dev/null
exec 9>&-
cleared=""
for ((i = 0; i < 50; i++)); do
    cleared=$(metric "$BASE" 'store_stale_readers_cleared_total{store="tsa"}')
    [[ ${cleared:-0} -ge 1 ]] && break
    sleep 0.1
done
if [[ ${cleared:-0} -ge 1 ]] && grep -q 'cleared 1 reader slot' "$LOG"; then
    t_ok "the dead reader's slot is cleared within reader_check (log line, metric $cleared)"
else
    t_fail "the dead reader's slot is cleared" "metric '${cleared}'"
fi
expect "300 more tokens" "$(tokens 300)" 300
p2=$(pages_used "$STORE")
if ((p2 - p1 <= 2 * (p1 - p0) + 16)); then
    t_ok "the next 300 tokens use about the pages of the first 300 ($((p1 - p0)) then $((p2 - p1)))"
else
    t_fail "pages of the next 300 tokens" "$((p1 - p0)) then $((p2 - p1)) pages"
fi
tsad_stop
itest_log_clean "$LOG"
TMP=$TMP_ROOT

t_summary "$NAME"
