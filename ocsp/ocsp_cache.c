/*
 * ocsp_cache: bounded cache of answers for serials without a status record (see
 * ocsp_cache.h). Issue 8 item 2; STANDARDS OCSP-13, OCSP-27.
 */
#include "ocsp/ocsp_cache.h"
#include "ocsp/ocsp_request.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define OCSP_CACHE_WAYS 4u

struct ocsp_cache_entry {
    uint8_t certid[OCSP_CERTID_MAX];
    size_t certid_len; /* 0: free */
    const void *signer, *settings;
    uint8_t *der;
    size_t der_len;
    int64_t produced_at, next_update;
    uint64_t used; /* tick of the last get or put: the least recent is evicted */
};

struct ocsp_cache {
    pthread_mutex_t lock;
    size_t sets; /* a power of two */
    uint64_t seed, tick;
    size_t count;
    struct ocsp_cache_entry *e; /* sets * OCSP_CACHE_WAYS */
};

struct ocsp_cache *
ocsp_cache_new(size_t entries)
{
    struct ocsp_cache *c;
    size_t sets = 1;

    if (entries == 0)
        return NULL;
    if (entries > OCSP_CACHE_MAX_ENTRIES)
        entries = OCSP_CACHE_MAX_ENTRIES;
    while (sets * OCSP_CACHE_WAYS < entries)
        sets *= 2;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    if ((c->e = calloc(sets * OCSP_CACHE_WAYS, sizeof(*c->e))) == NULL ||
        RAND_bytes((unsigned char *)&c->seed, sizeof(c->seed)) != 1) {
        free(c->e);
        free(c);
        return NULL;
    }
    c->sets = sets;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void
ocsp_cache_free(struct ocsp_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->sets * OCSP_CACHE_WAYS; i++)
        free(c->e[i].der);
    pthread_mutex_destroy(&c->lock);
    free(c->e);
    free(c);
}

/* FNV-1a from a random start: clients cannot aim at one set without knowing it, and an
 * aimed flood would only evict what any flood of distinct serials evicts. */
static struct ocsp_cache_entry *
ocsp_cache_set(struct ocsp_cache *c, const uint8_t *certid, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ c->seed;

    for (size_t i = 0; i < len; i++)
        h = (h ^ certid[i]) * 0x100000001b3ULL;
    h ^= h >> 29;
    return &c->e[(h & (c->sets - 1)) * OCSP_CACHE_WAYS];
}

static struct ocsp_cache_entry *
ocsp_cache_find(struct ocsp_cache_entry *set, const uint8_t *certid, size_t len)
{
    for (unsigned i = 0; i < OCSP_CACHE_WAYS; i++)
        if (set[i].certid_len == len && memcmp(set[i].certid, certid, len) == 0)
            return &set[i];
    return NULL;
}

static void
ocsp_cache_drop(struct ocsp_cache *c, struct ocsp_cache_entry *e)
{
    free(e->der);
    memset(e, 0, sizeof(*e));
    c->count--;
}

bool
ocsp_cache_get(struct ocsp_cache *c, const struct ocsp_cache_key *k, int64_t now,
               struct ocsp_cache_answer *out)
{
    const uint8_t *certid = k->certid;
    size_t certid_len = k->certid_len;
    struct ocsp_cache_entry *e;
    bool hit = false;

    memset(out, 0, sizeof(*out));
    if (c == NULL || certid_len == 0 || certid_len > OCSP_CERTID_MAX)
        return false;
    pthread_mutex_lock(&c->lock);
    e = ocsp_cache_find(ocsp_cache_set(c, certid, certid_len), certid, certid_len);
    if (e != NULL &&
        (e->signer != k->signer || e->settings != k->settings || now >= e->next_update)) {
        ocsp_cache_drop(c, e); /* signed by a replaced signer, under old settings, or stale */
        e = NULL;
    }
    if (e != NULL && (out->der = malloc(e->der_len)) != NULL) {
        memcpy(out->der, e->der, e->der_len);
        out->der_len = e->der_len;
        out->produced_at = e->produced_at;
        out->next_update = e->next_update;
        e->used = ++c->tick;
        hit = true;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

void
ocsp_cache_put(struct ocsp_cache *c, const struct ocsp_cache_key *k,
               const struct ocsp_cache_answer *a)
{
    const uint8_t *certid = k->certid;
    size_t certid_len = k->certid_len, der_len = a->der_len;
    struct ocsp_cache_entry *set, *e;
    uint8_t *copy;

    if (c == NULL || certid_len == 0 || certid_len > OCSP_CERTID_MAX || der_len == 0 ||
        (copy = malloc(der_len)) == NULL)
        return;
    memcpy(copy, a->der, der_len);
    pthread_mutex_lock(&c->lock);
    set = ocsp_cache_set(c, certid, certid_len);
    if ((e = ocsp_cache_find(set, certid, certid_len)) == NULL) {
        e = &set[0];
        for (unsigned i = 1; i < OCSP_CACHE_WAYS && e->certid_len != 0; i++)
            if (set[i].certid_len == 0 || set[i].used < e->used)
                e = &set[i];
    }
    if (e->certid_len != 0)
        ocsp_cache_drop(c, e);
    memcpy(e->certid, certid, certid_len);
    e->certid_len = certid_len;
    e->signer = k->signer;
    e->settings = k->settings;
    e->der = copy;
    e->der_len = der_len;
    e->produced_at = a->produced_at;
    e->next_update = a->next_update;
    e->used = ++c->tick;
    c->count++;
    pthread_mutex_unlock(&c->lock);
}

size_t
ocsp_cache_count(struct ocsp_cache *c)
{
    size_t n;

    if (c == NULL)
        return 0;
    pthread_mutex_lock(&c->lock);
    n = c->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}
