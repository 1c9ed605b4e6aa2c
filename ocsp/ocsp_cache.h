/*
 * ocsp_cache: a bounded in-memory cache of the answers for serials without a status record
 * ("never issued": revoked + extended-revoke, OCSP-13; or unknown / good as the issuer's
 * policy says), so that the same unknown serial asked again and again costs one signature
 * until its answer's nextUpdate, not one per request (issue 8 item 2, STANDARDS OCSP-27).
 * Such answers are not written to the store: the serials a client may send are unbounded.
 *
 * Keyed by the CertID DER as received. An entry is served only for the issuer slot and the
 * issuer settings it was signed under (`signer` and `settings`: the responder's pointers,
 * which are never reused while ocspd runs), before its nextUpdate; the caller also checks
 * that the serial still has no status record (a serial that gets one is answered from it).
 * Bounded: `entries` slots, 4-way set-associative, least recently used evicted first.
 *
 * Thread-safety: get/put from any thread (one mutex); new/free from the control thread.
 */
#ifndef OCSP_OCSP_CACHE_H
#define OCSP_OCSP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OCSP_CACHE_MAX_ENTRIES (1u << 20)

struct ocsp_cache;

/* NULL when entries is 0 (no cache: get misses, put does nothing) or on failure. */
struct ocsp_cache *ocsp_cache_new(size_t entries);
void ocsp_cache_free(struct ocsp_cache *c);

/* What an answer is kept under: its CertID, signed by `signer` under `settings` (compared by
 * identity: an answer of a replaced signer, or decided under older settings, is never
 * returned). */
struct ocsp_cache_key {
    const uint8_t *certid;
    size_t certid_len;
    const void *signer, *settings;
};

/* An answer and its times. */
struct ocsp_cache_answer {
    uint8_t *der; /* get: malloc()ed copy (caller frees); put: copied from */
    size_t der_len;
    int64_t produced_at, next_update;
};

/* A copy of the answer stored under *k when it is before its nextUpdate at `now`. false
 * otherwise. */
bool ocsp_cache_get(struct ocsp_cache *c, const struct ocsp_cache_key *k, int64_t now,
                    struct ocsp_cache_answer *out);
/* Keep a copy of *a under *k (replacing what it had). Silently nothing on failure. */
void ocsp_cache_put(struct ocsp_cache *c, const struct ocsp_cache_key *k,
                    const struct ocsp_cache_answer *a);
/* Entries held now (for tests and metrics). */
size_t ocsp_cache_count(struct ocsp_cache *c);

#endif
