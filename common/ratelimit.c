/*
 * ratelimit: per-source token buckets in a bounded, set-associative table (see ratelimit.h).
 * STANDARDS OCSP-27; issue 8 item 2.
 */
#include "common/ratelimit.h"
#include "common/config.h"
#include "common/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ratelimit_bucket {
    uint8_t key[RATELIMIT_KEY_MAX];
    uint8_t key_len; /* 0: free */
    bool limited;    /* refused since it was last allowed */
    double tokens;
    double last; /* when tokens was computed (monotonic seconds) */
};

struct ratelimit {
    struct ratelimit_config cfg;
    pthread_mutex_t lock;
    uint64_t k0, k1;            /* hash key, drawn at start */
    size_t sets;                /* a power of two */
    struct ratelimit_bucket *b; /* sets * RATELIMIT_WAYS */
};

/* ---- config ---- */

void
ratelimit_config_defaults(struct ratelimit_config *c, double rate, double burst)
{
    c->rate = rate;
    c->burst = burst;
    c->sources = 65536;
}

static int
parse_number(const char *v, double max, double *out)
{
    char *end = NULL;
    double x;

    if (*v == '\0' || *v == '-' || *v == '+')
        return ST_INVALID;
    errno = 0;
    x = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !isfinite(x) || x < 0 || x > max)
        return ST_INVALID;
    *out = x;
    return ST_OK;
}

int
ratelimit_config_key(struct config_parse *p, struct ratelimit_config *c, const char *prefix,
                     const char *key, const char *value, const struct config_pos *pos)
{
    size_t pl = strlen(prefix);
    unsigned long long n;
    const char *k;

    if (strncmp(key, prefix, pl) != 0 || key[pl] != '_')
        return ST_NOTFOUND;
    k = key + pl + 1;
    if (strcmp(k, "rate") == 0) {
        if (parse_number(value, 1e6, &c->rate) != ST_OK)
            return config_error(p, pos, "%s: per second per address, 0 (no limit) .. 1000000", key);
    } else if (strcmp(k, "burst") == 0) {
        if (parse_number(value, 1e6, &c->burst) != ST_OK || c->burst < 1)
            return config_error(p, pos, "%s: 1 .. 1000000", key);
    } else if (strcmp(k, "sources") == 0) {
        if (config_uint(value, RATELIMIT_SOURCES_MIN, RATELIMIT_SOURCES_MAX, &n) != ST_OK)
            return config_error(p, pos, "%s: %u .. %u", key, RATELIMIT_SOURCES_MIN,
                                RATELIMIT_SOURCES_MAX);
        c->sources = (unsigned)n;
    } else {
        return ST_NOTFOUND;
    }
    return ST_OK;
}

/* ---- table ---- */

struct ratelimit *
ratelimit_new(const struct ratelimit_config *c)
{
    struct ratelimit *rl;
    size_t sets = 1;

    if (c->rate <= 0)
        return NULL;
    if ((rl = calloc(1, sizeof(*rl))) == NULL)
        return NULL;
    rl->cfg = *c;
    if (rl->cfg.burst < 1)
        rl->cfg.burst = 1;
    while (sets * RATELIMIT_WAYS < c->sources && sets < RATELIMIT_SOURCES_MAX / RATELIMIT_WAYS)
        sets *= 2;
    rl->sets = sets;
    if ((rl->b = calloc(sets * RATELIMIT_WAYS, sizeof(*rl->b))) == NULL ||
        RAND_bytes((unsigned char *)&rl->k0, sizeof(rl->k0)) != 1 ||
        RAND_bytes((unsigned char *)&rl->k1, sizeof(rl->k1)) != 1) {
        free(rl->b);
        free(rl);
        return NULL;
    }
    pthread_mutex_init(&rl->lock, NULL);
    return rl;
}

void
ratelimit_free(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl->b);
    free(rl);
}

/* SipHash-2-4 (Aumasson, Bernstein) of a short key: a client cannot choose addresses that
 * all land in one set without knowing k0, k1. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t
siphash24(uint64_t k0, uint64_t k1, const uint8_t *in, size_t len)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)len << 56, m;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        m = 0;
        for (int j = 0; j < 8; j++)
            m |= (uint64_t)in[i + (size_t)j] << (8 * j);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (int j = 0; i < len; i++, j++)
        b |= (uint64_t)in[i] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Tokens of a bucket at `now` (refilled, capped at burst). */
static double
bucket_level(const struct ratelimit *rl, const struct ratelimit_bucket *b, double now)
{
    double t = b->tokens + (now > b->last ? (now - b->last) * rl->cfg.rate : 0);

    return t > rl->cfg.burst ? rl->cfg.burst : t;
}

/* The source's bucket in its set, or the one it replaces (reset to a full bucket). */
static struct ratelimit_bucket *
bucket_find(struct ratelimit *rl, const uint8_t *key, size_t len, double now)
{
    struct ratelimit_bucket *set =
        &rl->b[(siphash24(rl->k0, rl->k1, key, len) & (rl->sets - 1)) * RATELIMIT_WAYS];
    struct ratelimit_bucket *victim = NULL;
    double best = -1;

    for (unsigned i = 0; i < RATELIMIT_WAYS; i++) {
        struct ratelimit_bucket *b = &set[i];
        double score;

        if (b->key_len == len && memcmp(b->key, key, len) == 0)
            return b;
        /* free first, then the fullest (forgetting it loses nothing), then the oldest */
        score = b->key_len == 0 ? 1e300 : bucket_level(rl, b, now) * 1e9 + (now - b->last);
        if (score > best) {
            best = score;
            victim = b;
        }
    }
    memset(victim, 0, sizeof(*victim));
    memcpy(victim->key, key, len);
    victim->key_len = (uint8_t)len;
    victim->tokens = rl->cfg.burst;
    victim->last = now;
    return victim;
}

struct ratelimit_verdict
ratelimit_take(struct ratelimit *rl, const void *key, size_t key_len, double now)
{
    struct ratelimit_verdict v = {.allowed = true};
    struct ratelimit_bucket *b;
    double level;

    if (rl == NULL)
        return v;
    if (key_len > RATELIMIT_KEY_MAX)
        key_len = RATELIMIT_KEY_MAX;
    if (key_len == 0) {
        key = "";
        key_len = 1;
    }
    pthread_mutex_lock(&rl->lock);
    b = bucket_find(rl, key, key_len, now);
    level = bucket_level(rl, b, now);
    b->last = now > b->last ? now : b->last;
    if (level >= 1) {
        b->tokens = level - 1;
        b->limited = false;
    } else {
        double wait = ceil((1 - level) / rl->cfg.rate);

        b->tokens = level;
        v.allowed = false;
        v.first = !b->limited;
        v.retry_after = wait < 1 ? 1 : wait > 86400 ? 86400 : (unsigned)wait;
        b->limited = true;
    }
    pthread_mutex_unlock(&rl->lock);
    return v;
}

void
ratelimit_source_key(const struct sockaddr *sa, uint8_t key[RATELIMIT_SOURCE_LEN])
{
    memset(key, 0, RATELIMIT_SOURCE_LEN);
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)sa;

        key[10] = key[11] = 0xff;
        memcpy(key + 12, &in4->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

        memcpy(key, &in6->sin6_addr, 16);
        if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            memset(key + 8, 0, 8);
    }
}

struct ratelimit_verdict
ratelimit_take_addr(struct ratelimit *rl, const char *addr)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } a = {0};
    uint8_t key[RATELIMIT_SOURCE_LEN];
    struct timespec ts;

    if (rl == NULL)
        return (struct ratelimit_verdict){.allowed = true};
    if (addr != NULL && inet_pton(AF_INET, addr, &a.in4.sin_addr) == 1)
        a.sa.sa_family = AF_INET;
    else if (addr != NULL && inet_pton(AF_INET6, addr, &a.in6.sin6_addr) == 1)
        a.sa.sa_family = AF_INET6;
    ratelimit_source_key(a.sa.sa_family != 0 ? &a.sa : NULL, key);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ratelimit_take(rl, key, sizeof(key), (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
}
