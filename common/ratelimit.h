/*
 * ratelimit: per-source token buckets for work that costs a signature (STANDARDS OCSP-27;
 * issue 8 item 2), shared by ocspd (answers signed on demand) and tsad (tokens, optional).
 *
 * Each source (a client address: IPv4 whole, IPv6 by its /64, since one host usually holds a
 * whole /64) has a bucket of `burst` tokens refilled at `rate` per second; one unit of work
 * takes one token. Memory is bounded: a fixed table of `sources` buckets (rounded up to a
 * power of two), set-associative (RATELIMIT_WAYS buckets per set, the set chosen by a keyed
 * hash so that a client cannot aim at another's set). A new source takes, in its set, a free
 * bucket, else the one that has refilled the most (nothing is lost by forgetting a full
 * bucket), else the least recently used one: an evicted source starts again with a full
 * bucket, which can only favour it, never refuse a client that is under its rate.
 *
 * The [limits] keys of both daemons are read by ratelimit_config_key() with a prefix
 * ("sign" for ocspd: sign_rate, sign_burst, sign_sources; "token" for tsad).
 *
 * Thread-safety: ratelimit_take() may be called from any thread (one mutex; it is only taken
 * for work that is about to cost a signature). new/free from one control thread.
 */
#ifndef COMMON_RATELIMIT_H
#define COMMON_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_WAYS 8u
#define RATELIMIT_KEY_MAX 16u /* bytes of a source key (an IPv6 address) */
#define RATELIMIT_SOURCES_MIN 64u
#define RATELIMIT_SOURCES_MAX (1u << 24)

struct ratelimit_config {
    double rate;      /* tokens per second per source; 0 = no limit */
    double burst;     /* bucket size (>= 1 when rate > 0) */
    unsigned sources; /* buckets kept (memory: about 48 bytes each) */
};

struct ratelimit;
struct config_parse;
struct config_pos;

/* Defaults: rate and burst as given, sources 65536. */
void ratelimit_config_defaults(struct ratelimit_config *c, double rate, double burst);
/* One [limits] key named PREFIX_rate, PREFIX_burst or PREFIX_sources: ST_OK, ST_CONFIG (error
 * recorded in p) or ST_NOTFOUND when the key is not one of these. */
int ratelimit_config_key(struct config_parse *p, struct ratelimit_config *c, const char *prefix,
                         const char *key, const char *value, const struct config_pos *pos);

/* NULL when c->rate is 0 (no limit: ratelimit_take on NULL always allows) or on failure
 * (ST_NOMEM: check c->rate to tell them apart). */
struct ratelimit *ratelimit_new(const struct ratelimit_config *c);
void ratelimit_free(struct ratelimit *rl);

/* The result of one take. */
struct ratelimit_verdict {
    bool allowed;
    unsigned retry_after; /* refused: whole seconds until a token is back (>= 1) */
    bool first;           /* refused, and the source's first refusal since it was last allowed:
                             log it once per episode, not once per request */
};

/* Take one token for the source `key` (key_len <= RATELIMIT_KEY_MAX bytes) at `now`
 * (monotonic seconds). rl NULL: allowed. */
struct ratelimit_verdict ratelimit_take(struct ratelimit *rl, const void *key, size_t key_len,
                                        double now);
/* The source every per-source limit counts (the signing budgets here, the per-address
 * connection limit of common/http): an IPv4 client, also one on an IPv6 socket, by its
 * address, written as ::ffff:a.b.c.d; a native IPv6 client by its /64 (one host usually holds
 * a whole one and may use any address in it), the low 64 bits zero. Another family or NULL:
 * all zero (one shared source). */
#define RATELIMIT_SOURCE_LEN 16
struct sockaddr;
void ratelimit_source_key(const struct sockaddr *sa, uint8_t key[RATELIMIT_SOURCE_LEN]);
/* ratelimit_take() for a client address as text ("192.0.2.1", "2001:db8::1"), keyed by
 * ratelimit_source_key(); text that is not an address is one shared source. Time from
 * CLOCK_MONOTONIC. */
struct ratelimit_verdict ratelimit_take_addr(struct ratelimit *rl, const char *addr);

#endif
