/*
 * tsa_audit: the audit record of each issued token (DESIGN D5, D10; STANDARDS EID-12,
 * TSA-18/19, TSP-18). Records live in the LMDB database "tsa_audit", keyed by their sequence
 * number in write order (8 bytes, big-endian: 1, 2, 3, ...). A token's reply leaves only once
 * its record is durable: in the write-ahead journal (common/journal, one O_DSYNC write per
 * group of records), which copies it into the database in batches within its apply delay, or,
 * with [store] journal = no, in an LMDB group commit (common/commit).
 * A record is a JSON object (one line) so an auditor can read an export without our tools:
 *   {"v":1,"serial":hex,"gen_time":"...Z","policy":"oid","tsu":"name","key":"signing key",
 *    "hash_alg":"sha256",
 *    "imprint":hex,"nonce":hex|null,"clock":{"verdict":"ok","error_bound":s,"offset":s,
 *    "root_delay":s,"root_dispersion":s,"stratum":n,"ref_id":"hex"},
 *    "client":"ip","token_sha256":hex}
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
