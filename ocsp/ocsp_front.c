/*
 * ocsp_front: the front cache of the hit path (see ocsp_front.h). Issue 10 item 2.
 */
#include "ocsp/ocsp_front.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define FRONT_WAYS 4u
#define FRONT_STRIPES 64u
/* bytes per entry the table is sized for: about what one counts (a request of 100 bytes, an
 * answer of 400 to 900, the overhead), so that the ways fill as the bytes do */
#define FRONT_NOMINAL 2048u

struct front_ent {
    uint64_t hash;
    uint64_t used; /* tick of the last get or put: the least recent of a set goes first */
    size_t cost;   /* counted bytes */
    struct ocsp_front_hit h;
    size_t key_len;
    uint8_t key[];
};

/* One set: its entries and their hashes side by side in one cache line, so that a lookup
 * reads the entry only when the hash matches (a miss, or a hit among 4 ways, touches one line
 * instead of up to four entries scattered over the heap) */
struct front_set {
    struct front_ent *e[FRONT_WAYS];
    uint64_t hash[FRONT_WAYS];
};

struct ocsp_front {
    void (*ref)(void *);
    void (*unref)(void *);
    uint64_t seed;
    size_t sets; /* a power of two */
    size_t limit;
    _Atomic size_t bytes, count;
    _Atomic uint64_t tick;
    struct front_set *set;  /* sets of them, cache-line aligned */
    _Atomic uint32_t *seen; /* recent request hashes (admission), dk_mask + 1 of them */
    size_t seen_mask;
    pthread_mutex_t lock[FRONT_STRIPES];
};

/* A seeded 64-bit hash of the request bytes, 8 bytes at a time (the requests are 70..300
 * bytes: byte-wise hashes cost more than the rest of a hit). */
static uint64_t
front_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t
front_hash(uint64_t seed, const uint8_t *p, size_t n)
{
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL), w;

    for (; n >= 8; n -= 8, p += 8) {
        memcpy(&w, p, 8);
        h = (h ^ front_mix(w)) * 0x9e3779b97f4a7c15ULL;
        h = (h << 27) | (h >> 37);
    }
    w = 0;
    memcpy(&w, p, n);
    return front_mix(h ^ front_mix(w ^ n));
}

struct ocsp_front *
ocsp_front_new(size_t bytes, void (*ref)(void *), void (*unref)(void *))
{
    struct ocsp_front *f;
    size_t sets = 1, want = bytes / FRONT_NOMINAL;

    if (bytes == 0 || ref == NULL || unref == NULL)
        return NULL;
    while (sets * FRONT_WAYS < want && sets < ((size_t)1 << 24))
        sets *= 2;
    if ((f = calloc(1, sizeof(*f))) == NULL)
        return NULL;
    f->ref = ref;
    f->unref = unref;
    f->sets = sets;
    f->limit = bytes;
    f->seen_mask = sets * FRONT_WAYS * 2 - 1;
    if ((f->set = aligned_alloc(64, sets * sizeof(*f->set))) == NULL ||
        (f->seen = calloc(f->seen_mask + 1, sizeof(*f->seen))) == NULL ||
        RAND_bytes((unsigned char *)&f->seed, sizeof(f->seed)) != 1) {
        free(f->set);
        free((void *)f->seen);
        free(f);
        return NULL;
    }
    memset(f->set, 0, sets * sizeof(*f->set));
    for (unsigned i = 0; i < FRONT_STRIPES; i++)
        pthread_mutex_init(&f->lock[i], NULL);
    return f;
}

static void
front_ent_free(struct ocsp_front *f, struct front_ent *e)
{
    if (e == NULL)
        return;
    atomic_fetch_sub(&f->bytes, e->cost);
    atomic_fetch_sub(&f->count, 1);
    f->unref(e->h.reply);
    free(e);
}

void
ocsp_front_free(struct ocsp_front *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->sets; i++)
        for (unsigned w = 0; w < FRONT_WAYS; w++)
            front_ent_free(f, f->set[i].e[w]);
    for (unsigned i = 0; i < FRONT_STRIPES; i++)
        pthread_mutex_destroy(&f->lock[i]);
    free(f->set);
    free((void *)f->seen);
    free(f);
}

/* The set of a hash, and the stripe lock guarding it. */
static struct front_set *
front_set_of(struct ocsp_front *f, uint64_t hash, pthread_mutex_t **lock)
{
    size_t set = (size_t)hash & (f->sets - 1);

    *lock = &f->lock[set % FRONT_STRIPES];
    return &f->set[set];
}

static int
front_find(const struct front_set *set, uint64_t hash, const uint8_t *key, size_t key_len)
{
    for (unsigned w = 0; w < FRONT_WAYS; w++)
        if (set->hash[w] == hash && set->e[w] != NULL && set->e[w]->key_len == key_len &&
            memcmp(set->e[w]->key, key, key_len) == 0)
            return (int)w;
    return -1;
}

/* Way w of a set holds e (NULL: empty). */
static void
front_set_way(struct front_set *set, unsigned w, struct front_ent *e)
{
    set->e[w] = e;
    set->hash[w] = e != NULL ? e->hash : 0;
}

bool
ocsp_front_get(struct ocsp_front *f, const uint8_t *key, size_t key_len, struct ocsp_front_hit *out)
{
    struct front_set *set;
    pthread_mutex_t *lock;
    uint64_t hash;
    int w;

    if (f == NULL || key_len == 0 || key_len > OCSP_FRONT_KEY_MAX)
        return false;
    hash = front_hash(f->seed, key, key_len);
    set = front_set_of(f, hash, &lock);
    pthread_mutex_lock(lock);
    if ((w = front_find(set, hash, key, key_len)) >= 0) {
        set->e[w]->used = atomic_fetch_add_explicit(&f->tick, 1, memory_order_relaxed);
        *out = set->e[w]->h;
        f->ref(out->reply);
    }
    pthread_mutex_unlock(lock);
    return w >= 0;
}

/* The least recently used entry of a set, -1 when it has none. */
static int
front_lru(const struct front_set *set)
{
    int v = -1;

    for (unsigned w = 0; w < FRONT_WAYS; w++)
        if (set->e[w] != NULL && (v < 0 || set->e[w]->used < set->e[v]->used))
            v = (int)w;
    return v;
}

/* The way to fill in a set: the key's own, a free one, or the least recently used. */
static unsigned
front_victim(const struct front_set *set, int own)
{
    unsigned v = 0;

    if (own >= 0)
        return (unsigned)own;
    for (unsigned w = 0; w < FRONT_WAYS; w++) {
        if (set->e[w] == NULL)
            return w;
        if (set->e[w]->used < set->e[v]->used)
            v = w;
    }
    return v;
}

void
ocsp_front_put(struct ocsp_front *f, const uint8_t *key, size_t key_len,
               const struct ocsp_front_hit *h)
{
    struct front_set *set;
    struct front_ent *e, *old;
    pthread_mutex_t *lock;
    uint64_t hash;
    uint32_t tag;
    size_t cost;
    unsigned w;
    int own;

    if (f == NULL || h == NULL || h->reply == NULL || key_len == 0 || key_len > OCSP_FRONT_KEY_MAX)
        return;
    hash = front_hash(f->seed, key, key_len);
    tag = (uint32_t)(hash >> 32) | 1u;
    if (atomic_exchange_explicit(&f->seen[hash & f->seen_mask], tag, memory_order_relaxed) != tag)
        return; /* first sighting: remembered, admitted when the same bytes come again */
    cost = key_len + h->answer_len + OCSP_FRONT_ENTRY_OVERHEAD;
    if (cost > f->limit)
        return;
    if ((e = malloc(sizeof(*e) + key_len)) == NULL)
        return;
    e->hash = hash;
    e->cost = cost;
    e->h = *h;
    e->key_len = key_len;
    memcpy(e->key, key, key_len);
    e->used = atomic_fetch_add_explicit(&f->tick, 1, memory_order_relaxed);
    set = front_set_of(f, hash, &lock);
    pthread_mutex_lock(lock);
    own = front_find(set, hash, key, key_len);
    w = front_victim(set, own);
    /* the bytes are full while this set has a free way: its least recently used entry goes
     * instead, so that a full cache keeps taking new requests rather than clogging */
    if (set->e[w] == NULL && atomic_load(&f->bytes) + cost > f->limit && front_lru(set) >= 0)
        w = (unsigned)front_lru(set);
    old = set->e[w];
    /* counted before it goes in, so that concurrent puts never pass the limit together */
    if (atomic_fetch_add(&f->bytes, cost) + cost - (old != NULL ? old->cost : 0) > f->limit) {
        atomic_fetch_sub(&f->bytes, cost);
        pthread_mutex_unlock(lock); /* full: the entries of other sets stay */
        free(e);
        return;
    }
    f->ref(e->h.reply);
    atomic_fetch_add(&f->count, 1);
    front_set_way(set, w, e);
    pthread_mutex_unlock(lock);
    front_ent_free(f, old);
}

void
ocsp_front_checked(struct ocsp_front *f, const uint8_t *key, size_t key_len, const void *reply,
                   uint64_t snap)
{
    struct front_set *set;
    pthread_mutex_t *lock;
    uint64_t hash;
    int w;

    if (f == NULL || key_len == 0 || key_len > OCSP_FRONT_KEY_MAX)
        return;
    hash = front_hash(f->seed, key, key_len);
    set = front_set_of(f, hash, &lock);
    pthread_mutex_lock(lock);
    /* only the entry that was checked: one put since (another reply) starts unchecked */
    if ((w = front_find(set, hash, key, key_len)) >= 0 && set->e[w]->h.reply == reply &&
        snap > set->e[w]->h.snap)
        set->e[w]->h.snap = snap;
    pthread_mutex_unlock(lock);
}

void
ocsp_front_drop(struct ocsp_front *f, const uint8_t *key, size_t key_len)
{
    struct front_set *set;
    struct front_ent *old = NULL;
    pthread_mutex_t *lock;
    uint64_t hash;
    int w;

    if (f == NULL || key_len == 0 || key_len > OCSP_FRONT_KEY_MAX)
        return;
    hash = front_hash(f->seed, key, key_len);
    set = front_set_of(f, hash, &lock);
    pthread_mutex_lock(lock);
    if ((w = front_find(set, hash, key, key_len)) >= 0) {
        old = set->e[w];
        front_set_way(set, w, NULL);
    }
    pthread_mutex_unlock(lock);
    front_ent_free(f, old);
}

bool
ocsp_front_backed(const struct ocsp_front_hit *h, const struct ocsp_front_now *n)
{
    if (h->status_found != n->status_found)
        return false;
    if (h->status_found && h->stamp != n->stamp)
        return false;
    if (n->now + 1 < h->produced_at) /* the clock stepped back: the full path re-signs */
        return false;
    /* due for re-signing as ocsp_refresh_due says: less than margin of its validity left */
    if ((double)(h->next_update - n->now) <=
            (double)(h->next_update - h->produced_at) * n->margin &&
        n->now > h->put_at)
        return false;
    return h->gen == n->gen && n->now < h->valid_until && h->max_age == n->max_age;
}

size_t
ocsp_front_count(struct ocsp_front *f)
{
    return f != NULL ? atomic_load(&f->count) : 0;
}

size_t
ocsp_front_bytes(struct ocsp_front *f)
{
    return f != NULL ? atomic_load(&f->bytes) : 0;
}
