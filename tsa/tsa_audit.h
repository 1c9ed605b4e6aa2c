/*
 * tsa_audit: the audit record of each issued token (DESIGN D5, D10; STANDARDS EID-12,
 * TSA-18/19, TSP-18). Records live in the LMDB database "tsa_audit", keyed by their sequence
 * number in write order (8 bytes, big-endian: 1, 2, 3, ...). A token's reply leaves only once
 * its record is durable: in the write-ahead journal (common/journal, one O_DSYNC write per
 * group of records), which copies it into the database in batches within its apply delay, or,
 * with [store] journal = no, in an LMDB group commit (common/commit).
 * A record is a JSON object (one line) so an auditor can read an export without our tools;
 * it is written by the shared writer (common/json) and stored sealed into the node's hash
 * chain (common/chain.h: the first three members are added where its sequence number is
 * fixed, in the journal's writer or the commit pipeline's transaction). A token's record:
 *   {"seq":N,"node":"NODE","prev":"<SHA-256 of record N-1 as stored, 64 hex; zeros for 1>",
 *    "v":1,"type":"token","serial":hex,"gen_time":"2026-01-02T03:04:05.678901Z",
 *    "policy":"oid","tsu":"name","key":"signing key","hash_alg":"SHA256",
 *    "imprint":hex,"nonce":hex|null,"clock":{"verdict":"ok","error_bound":s,"offset":s,
 *    "root_delay":s,"root_dispersion":s,"stratum":n,"ref_id":"hex"},
 *    "client":"ip","token_sha256":hex}
 * and a signed checkpoint (tsa/tsa_checkpoint.h, with [audit] key_label):
 *   {"seq":M,"node":"NODE","prev":"...","v":1,"type":"checkpoint",
 *    "time":"2026-01-02T03:04:05.678901Z","covers_seq":K,"covers_head":"<SHA-256 of record K>",
 *    "key":"pkcs11:LABEL","cert_sha256":"<SHA-256 of the audit certificate, DER>",
 *    "sig_alg":"ecdsa|rsa-pkcs1|rsa-pss","digest":"sha256|sha384|sha512","sig":hex}
 * whose signature is over the bytes "tsad-audit-checkpoint v1\nnode=NODE\nseq=K\n
 * head=<covers_head>\ntime=<time>\n" (K < M: it signs the head as it was when the checkpoint
 * was made).
 *
 * Exporting: `tsactl export [--from T] [--to T]` writes the records from the first one at or
 * after T (gen_time of tokens, time of checkpoints) to the last one before --to, every record
 * between them included, one per line, exactly as stored (also those still only in the
 * journal). Verifying (`tsactl verify [--cert PEM]... FILE...`, tsa/tsactl_verify.c): records
 * are grouped by node; in each file a node's seq must grow line by line (a record repeated
 * identically, as in concatenated overlapping exports, is allowed); across all files, each
 * record N+1's prev must be the SHA-256 of record N, a missing N between two present ones is
 * a deletion, two different records with one seq an edit; a record with a zero prev must be
 * the log's first (seq 0 or 1), the first record of an export that starts later is taken on
 * trust (and checked when another file holds the one before it); records without seq, node
 * and prev (written before the chain existed) are counted, not checked, before a file's first
 * chained record (whose prev must be the SHA-256 of the last of them, unless zero), and named as
 * inserted after it; a node name that chain_node_valid() refuses is malformed; each checkpoint's
 * covers_head must be the SHA-256 of record covers_seq when present, and its signature must
 * verify with the --cert certificate whose SHA-256 is its cert_sha256 (with --cert given, a
 * checkpoint signed by any other key is a failure; without, signatures are reported as not
 * checked). Exit 0 intact, 1 broken (the first broken record of each node is named by seq and
 * file:line), 2 usage, 3 error. What it cannot see: records after the last one a checkpoint
 * covers (covers_seq; the summary counts them) can be cut off or rewritten with the links
 * recomputed, and a whole log can be rewritten by whoever holds the audit key.
 */
#ifndef TSA_TSA_AUDIT_H
#define TSA_TSA_AUDIT_H

#include "common/clock.h"
#include "tsa/tsa_request.h"
#include "tsa/tsa_token.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define TSA_AUDIT_DB "tsa_audit"
#define TSA_AUDIT_MAX 2048

/* Format one record into buf; returns its length, 0 when it does not fit. */
size_t tsa_audit_format(char *buf, size_t cap, const struct tsa_unit *u,
                        const struct tsa_request *req, const struct tsa_token *t,
                        const struct clock_reading *clk, const char *client,
                        const uint8_t token_sha256[32]);

/* Reading records back (tsad's start: each TSU's latest genTime, DESIGN D3).
 * tsa_audit_tsu_tag: the bytes `,"tsu":"NAME",` exactly as tsa_audit_format writes them (same
 * escaping), to find a unit's records with memmem; its length, 0 when it does not fit.
 * tsa_audit_gen_time: the "gen_time" of a record into *out; false when it has none. */
size_t tsa_audit_tsu_tag(char *out, size_t cap, const char *name);
bool tsa_audit_gen_time(const void *rec, size_t len, struct timespec *out);

/* The TimeStampToken (ContentInfo) inside a granted TimeStampResp, for its digest. */
int tsa_audit_token_span(const uint8_t *resp, size_t len, const uint8_t **tok, size_t *tok_len);

#endif
