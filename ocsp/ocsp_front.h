/*
 * ocsp_front: the front cache of ocspd's hit path (issue 10 item 2). It maps the DER of a
 * request (the POST body, or the GET path decoded: every spelling of one request is one key) to the
 * reply sent for it last time, ready to be sent again as it is (a reply built once: its body,
 * its ETag, Last-Modified, Expires and Cache-Control), together with what the answer was
 * decided from. A request found here skips decoding, the issuer lookup, the response read and
 * the building of the reply.
 *
 * The cache is only a shortcut, never a source of truth: before an entry is sent the service
 * checks what backs it (ocsp_front_backed): the serial's status record as it is in the store
 * now (its stamp, or its absence; read again only when a transaction was committed to the
 * store since the entry last found it: ocsp_front_hit.snap, store_last_commit), the issuer
 * registry's generation (any issuer reload, new signer or changed settings), the clock (the
 * answer's nextUpdate, the time it is due for re-signing, the CRL's nextUpdate, the responder
 * certificate's expiry) and the max-age the reply carries. Anything different is a miss, answered
 * by the full path, so an answer the status record no longer backs is never sent (a revocation is
 * visible on the very next request, EID-05).
 *
 * Bounded: [ocsp] front_cache bytes, counted per entry (request bytes, the answer's own bytes,
 * a fixed overhead). Each entry goes in one of two 4-way sets (two choices), with at least twice
 * as many ways as the bytes hold entries, so that a working set that fits the bytes is held
 * whole; when room is needed the least recently used entries of the two sets go first. An
 * entry is admitted only when the same request bytes were seen once before (a table of recent
 * request hashes, four per way, in buckets of eight kept first in, first out, so that requests
 * sharing a bucket do not overwrite each other's mark), so traffic spread over millions of
 * serials does not churn it: each miss then costs one hash, not an insertion and an eviction.
 *
 * The reply is opaque here: the cache takes a reference when it keeps one (ref) and drops it
 * when the entry goes (unref); ocsp_front_get hands the caller a reference of its own.
 *
 * Thread-safety: get/put/drop from any thread (striped locks); new/free from one thread while
 * no other uses the cache.
 */
#ifndef OCSP_OCSP_FRONT_H
#define OCSP_OCSP_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OCSP_FRONT_KEY_MAX 1024 /* longer requests are never cached */
/* bytes counted per entry besides key and answer: the entry, the built reply with its
 * headers and libmicrohttpd's response (measured: an entry of a 100-byte request and an
 * 834-byte answer takes about 2.4 KB of ocspd's resident memory) */
#define OCSP_FRONT_ENTRY_OVERHEAD 1536
#define OCSP_FRONT_SERIAL_MAX 21

/* What one entry was decided from, and the reply it sends. */
struct ocsp_front_hit {
    const void *issuer; /* the issuer slot the answer belongs to */
    uint64_t gen;       /* the issuer registry's generation when it was built */
    uint8_t issuer_id[32];
    uint8_t serial[OCSP_FRONT_SERIAL_MAX];
    uint8_t serial_len;
    bool status_found;   /* the serial had a status record ... */
    uint64_t stamp;      /* ... with this stamp */
    uint64_t snap;       /* the store snapshot in which that was last read (0: not yet):
                          * while no commit came after it, the record need not be read again */
    int64_t valid_until; /* first second (UTC) at which it must not be sent any more */
    int64_t produced_at; /* the answer's producedAt: not sent while the clock is before it */
    int64_t next_update; /* the answer's nextUpdate (the max-age is counted to it) */
    int64_t put_at;      /* when it was kept: sent for that second even past its re-sign point */
    uint32_t max_age;    /* the Cache-Control max-age the reply carries */
    uint8_t source;      /* the caller's: where the answer came from (for its metrics) */
    size_t answer_len;   /* the answer's own bytes (for the memory bound) */
    void *reply;         /* the reply, a reference */
};

struct ocsp_front;

/* A cache of about `bytes` (0: no cache; get always misses, put does nothing: NULL is returned
 * and every function accepts it). ref/unref manage the replies' references. NULL also on
 * allocation failure (logged by the caller: the service runs without it). */
struct ocsp_front *ocsp_front_new(size_t bytes, void (*ref)(void *), void (*unref)(void *));
void ocsp_front_free(struct ocsp_front *f);

/* The entry for the request bytes: true with *out filled and out->reply a new reference (the
 * caller unrefs it), false on a miss. */
bool ocsp_front_get(struct ocsp_front *f, const uint8_t *key, size_t key_len,
                    struct ocsp_front_hit *out);
/* Offer a reply for the request bytes: kept (replacing what the key had) when the request was
 * seen before and the entry fits; the cache takes its own reference. */
void ocsp_front_put(struct ocsp_front *f, const uint8_t *key, size_t key_len,
                    const struct ocsp_front_hit *h);
/* The entry of the request bytes, while it still sends `reply`, was found backed in store
 * snapshot `snap` (ocsp_front_hit.snap). */
void ocsp_front_checked(struct ocsp_front *f, const uint8_t *key, size_t key_len, const void *reply,
                        uint64_t snap);
/* Forget the entry of the request bytes (found not backed any more). */
void ocsp_front_drop(struct ocsp_front *f, const uint8_t *key, size_t key_len);

/* The state an entry is checked against, read by the service just before sending it. */
struct ocsp_front_now {
    int64_t now;       /* UTC seconds */
    uint64_t gen;      /* the issuer registry's current generation */
    uint32_t max_age;  /* the max-age a reply built now would carry */
    double margin;     /* the refresher's refresh_margin now (0..1) */
    bool status_found; /* the serial's status record as the store has it now */
    uint64_t stamp;
};
/* true when the entry may be sent as it is: same status record (or still none), same issuer
 * registry generation, before valid_until, not before producedAt (a clock stepped back), not
 * past the point where the refresher re-signs it (nextUpdate - margin of its validity, as
 * ocsp_refresh_due: a newer answer is due; in the second it was kept it is sent anyway, so
 * that an answer the refresher has not re-signed yet costs one rebuild a second, not one a
 * request), and the same max-age. */
bool ocsp_front_backed(const struct ocsp_front_hit *h, const struct ocsp_front_now *n);

/* Entries held and their counted bytes (tests, metrics). */
size_t ocsp_front_count(struct ocsp_front *f);
size_t ocsp_front_bytes(struct ocsp_front *f);

#endif
