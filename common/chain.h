/*
 * chain: the hash chain of an append-only record log (issue 9 item 3; STANDARDS EID-11,
 * EID-12, EID-18). One chain per node and log: tsad's audit records, ocspd's status journal.
 *
 * A record is sealed when its sequence number is fixed, in the one place that fixes it (the
 * journal's writer while it assembles a group, common/journal.c; the commit pipeline's writer
 * with journal = no, chain_txn_append below), and is stored sealed: the stored record is
 *
 *   {"seq":N,"node":"NODE","prev":"<SHA-256 of record N-1, 64 hex>",<the record's members>}
 *
 * where record N-1 means its exact stored bytes (the first record of a log has prev = 64
 * zeros). An edit, a deletion or a reordering of stored records therefore breaks a link that
 * anyone holding the records can recompute (tsactl verify); a signed checkpoint (tsad) makes
 * the head itself unforgeable. Cost: one SHA-256 per record, no extra I/O, no lock.
 */
#ifndef COMMON_CHAIN_H
#define COMMON_CHAIN_H

#include "common/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CHAIN_NODE_MAX 64    /* node names: 1..63 of [A-Za-z0-9._-] */
#define CHAIN_PREFIX_MAX 192 /* bytes sealing adds at most */

/* A node name that needs no JSON escape: 1..63 characters of [A-Za-z0-9._-]. */
bool chain_node_valid(const char *node);
/* This host's default node name (the host name, cut at the first character not allowed). */
void chain_default_node(char *out, size_t cap);

/* Seal record `in` (a JSON object with at least one member) as number `seq` after the record
 * whose SHA-256 is `prev`, into out; its SHA-256 into hash (the next record's prev). Returns
 * the sealed length, 0 when it does not fit or `in` is not an object. */
size_t chain_seal(char *out, size_t cap, uint64_t seq, const char *node, const uint8_t prev[32],
                  const void *in, size_t len, uint8_t hash[32]);

/* SHA-256 of a stored record. */
void chain_hash(const void *rec, size_t len, uint8_t out[32]);

/* Inside a write transaction (the commit pipeline, journal = no): append `in` sealed to db as
 * the next sequence number after the last key there (1 for an empty db). May be called again
 * for the same record in a new transaction (the pipeline redoes failed groups): it keeps no
 * state. */
int chain_txn_append(struct store_txn *t, int db, const char *node, const void *in, size_t len);

/* The head of the chain in db: the last record's sequence number and SHA-256 (0 and zeros when
 * empty); *last_type gets its "type" member ("" when none), when not NULL. */
int chain_head(struct store *s, int db, uint64_t *seq, uint8_t hash[32], char *last_type,
               size_t type_cap);
int chain_txn_head(struct store_txn *t, int db, uint64_t *seq, uint8_t hash[32]);

/* Exports (common/chain_export.c; tsactl export, ocspctl export --journal).
 * chain_time_parse: 2026-01-02T03:04:05[.ffffff]Z, ...+01:00, or 2026-01-02 (00:00 UTC), to
 * microseconds since the epoch. chain_record_time: a stored record's time, from its
 * "gen_time" (tsad tokens) or "time" (checkpoints; seconds as a number in the OCSP journal).
 * chain_export: the records of db (and of the journal in journal_dir, when not NULL, for
 * those not yet copied into db) from the first one at or after `from` to the last one before
 * `to`, every record between them included (the export is one piece of the chain), one per
 * line exactly as stored. ST_OK, or why not. */
bool chain_time_parse(const char *s, int64_t *us);
bool chain_record_time(const void *rec, size_t len, int64_t *us);
int chain_export(struct store *s, int db, const char *journal_dir, int64_t from, int64_t to,
                 FILE *f);

#endif
