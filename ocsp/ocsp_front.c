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
/* the admission table's marks are looked up in buckets of this many, kept first in, first
 * out, so that requests whose hashes share a bucket do not overwrite each other's mark */
#define FRONT_SEEN_WAYS 8u
#define FRONT_STRIPES 64u
/* counted bytes per way the table is sized for: half of the least an entry counts (a request of
 * about 100 bytes, an answer of 400 to 900, the overhead), so that there are at least twice as
 * many ways as the bytes hold entries */
#define FRONT_NOMINAL 1024u

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
    _Atomic uint32_t *seen; /* recent request hashes (admission): seen_mask + 1 marks, looked
                             * up in buckets of FRONT_SEEN_WAYS */
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
    /* twice as many ways as the bytes hold entries: at most half of them in use, so that few
     * sets overflow (at a full load, every set of more keys than ways would evict one of its
     * own on each pass of a working set that fits the bytes) */
    while (sets * FRONT_WAYS < want && sets < ((size_t)1 << 24))
        sets *= 2;
    if ((f = calloc(1, sizeof(*f))) == NULL)
        return NULL;
    f->ref = ref;
    f->unref = unref;
    f->sets = sets;
    f->limit = bytes;
    f->seen_mask = sets * FRONT_WAYS * 4 - 1; /* four marks a way, in buckets of eight */
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

/* The two sets a hash may live in and the stripe locks guarding them, in lock order. Two
 * choices: an entry goes to the one of its two sets with room, so that a working set that fits
 * the bytes is held whole (with one choice, keys spread at random over 4-way sets overflow a
 * tenth of the sets at 60 % of the ways, and an overflowing set loses all its keys to each other
 * when they come in turn). */
struct front_pair {
    struct front_set *s[2];
    unsigned slots; /* 2 x FRONT_WAYS, or FRONT_WAYS when both choices are the same set */
    pthread_mutex_t *lock[2];
    unsigned locks;
};

#define FRONT_SLOTS (2u * FRONT_WAYS)

static void
front_pair_of(struct ocsp_front *f, uint64_t hash, struct front_pair *p)
{
    size_t a = (size_t)hash & (f->sets - 1), b = (size_t)(hash >> 32) & (f->sets - 1);
    size_t la = a % FRONT_STRIPES, lb = b % FRONT_STRIPES;

    p->s[0] = &f->set[a];
    p->s[1] = &f->set[b];
    p->slots = a == b ? FRONT_WAYS : FRONT_SLOTS;
    p->lock[0] = &f->lock[la < lb ? la : lb];
    p->lock[1] = &f->lock[la < lb ? lb : la];
    p->locks = la == lb ? 1 : 2;
}

static void
front_lock(const struct front_pair *p)
{
    for (unsigned i = 0; i < p->locks; i++)
        pthread_mutex_lock(p->lock[i]);
}

static void
front_unlock(const struct front_pair *p)
{
    for (unsigned i = p->locks; i-- > 0;)
        pthread_mutex_unlock(p->lock[i]);
}

/* Slot k of a pair: way k % FRONT_WAYS of its set k / FRONT_WAYS. */
static struct front_ent *
front_at(const struct front_pair *p, unsigned k)
{
    return p->s[k / FRONT_WAYS]->e[k % FRONT_WAYS];
}

/* Slot k holds e (NULL: empty); its hash is kept beside the pointer. */
static void
front_put_at(const struct front_pair *p, unsigned k, struct front_ent *e)
{
    struct front_set *set = p->s[k / FRONT_WAYS];

    set->e[k % FRONT_WAYS] = e;
    set->hash[k % FRONT_WAYS] = e != NULL ? e->hash : 0;
}

/* The slot holding the key, -1 when neither set has it. */
static int
front_find(const struct front_pair *p, uint64_t hash, const uint8_t *key, size_t key_len)
{
    for (unsigned k = 0; k < p->slots; k++) {
        const struct front_set *set = p->s[k / FRONT_WAYS];
        const struct front_ent *e = set->e[k % FRONT_WAYS];

        if (set->hash[k % FRONT_WAYS] == hash && e != NULL && e->key_len == key_len &&
            memcmp(e->key, key, key_len) == 0)
            return (int)k;
    }
    return -1;
}

bool
ocsp_front_get(struct ocsp_front *f, const uint8_t *key, size_t key_len, struct ocsp_front_hit *out)
{
    struct front_pair p;
    uint64_t hash;
    int k;

    if (f == NULL || key_len == 0 || key_len > OCSP_FRONT_KEY_MAX)
        return false;
    hash = front_hash(f->seed, key, key_len);
    front_pair_of(f, hash, &p);
    front_lock(&p);
    if ((k = front_find(&p, hash, key, key_len)) >= 0) {
        struct front_ent *e = front_at(&p, (unsigned)k);

        e->used = atomic_fetch_add_explicit(&f->tick, 1, memory_order_relaxed);
        *out = e->h;
        f->ref(out->reply);
    }
    front_unlock(&p);
    return k >= 0;
}

/* The least recently used entry of both sets outside the slots of `skip` (a bit per slot), -1
 * when there is none. */
static int
front_lru(const struct front_pair *p, unsigned skip)
{
    int v = -1;

    for (unsigned k = 0; k < p->slots; k++) {
        const struct front_ent *e = front_at(p, k);

        if (e != NULL && !(skip & (1u << k)) && (v < 0 || e->used < front_at(p, (unsigned)v)->used))
            v = (int)k;
    }
    return v;
}

/* The slot for a new entry: the key's own, else a free way of the set holding fewer entries,
 * else the least recently used of both sets. */
static unsigned
front_victim(const struct front_pair *p, int own)
{
    int free_way[2] = {-1, -1};
    unsigned used[2] = {0, 0};

    if (own >= 0)
        return (unsigned)own;
    for (unsigned k = 0; k < p->slots; k++) {
        if (front_at(p, k) != NULL)
            used[k / FRONT_WAYS]++;
        else if (free_way[k / FRONT_WAYS] < 0)
            free_way[k / FRONT_WAYS] = (int)k;
    }
    if (free_way[0] >= 0 && (free_way[1] < 0 || used[0] <= used[1]))
        return (unsigned)free_way[0];
    if (free_way[1] >= 0)
        return (unsigned)free_way[1];
    return (unsigned)front_lru(p, 0);
}

/* The admission mark of a hash: true when its tag is in its bucket (seen before), else false
 * with the tag put first in the bucket and the others moved down, the oldest dropped (first in,
 * first out: a mark lasts FRONT_SEEN_WAYS - 1 more first sightings in its bucket, whatever else
 * happens; races between threads only lose or double a mark: a request is then admitted one
 * sighting later or earlier) */
static bool
front_seen(struct ocsp_front *f, uint64_t hash, uint32_t tag)
{
    _Atomic uint32_t *b =
        &f->seen[(size_t)(hash >> 8) & f->seen_mask & ~(size_t)(FRONT_SEEN_WAYS - 1)];
    unsigned w;

    for (w = 0; w < FRONT_SEEN_WAYS; w++)
        if (atomic_load_explicit(&b[w], memory_order_relaxed) == tag)
            return true;
    for (w = FRONT_SEEN_WAYS - 1; w > 0; w--)
        atomic_store_explicit(&b[w], atomic_load_explicit(&b[w - 1], memory_order_relaxed),
                              memory_order_relaxed);
    atomic_store_explicit(&b[0], tag, memory_order_relaxed);
    return false;
}

void
ocsp_front_put(struct ocsp_front *f, const uint8_t *key, size_t key_len,
               const struct ocsp_front_hit *h)
{
    struct front_ent *e, *old, *gone[FRONT_SLOTS];
    struct front_pair p;
    unsigned k, ngone = 0, skip;
    uint64_t hash;
    uint32_t tag;
    size_t cost, freed;
    int v;

    if (f == NULL || h == NULL || h->reply == NULL || key_len == 0 || key_len > OCSP_FRONT_KEY_MAX)
        return;
    hash = front_hash(f->seed, key, key_len);
    tag = (uint32_t)(hash >> 32) | 1u;
    if (!front_seen(f, hash, tag))
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
    front_pair_of(f, hash, &p);
    front_lock(&p);
    k = front_victim(&p, front_find(&p, hash, key, key_len));
    old = front_at(&p, k);
    freed = old != NULL ? old->cost : 0;
    skip = 1u << k;
    /* while the bytes would pass the limit, the least recently used entries of both sets go
     * too (chosen here, taken out only once the entry is sure to go in), so that a full cache
     * keeps taking new requests rather than clogging, whatever their sizes */
    while (atomic_load(&f->bytes) + cost > f->limit + freed && (v = front_lru(&p, skip)) >= 0) {
        skip |= 1u << (unsigned)v;
        freed += front_at(&p, (unsigned)v)->cost;
    }
    /* counted before it goes in, so that concurrent puts never pass the limit together */
    if (atomic_fetch_add(&f->bytes, cost) + cost > f->limit + freed) {
        atomic_fetch_sub(&f->bytes, cost);
        front_unlock(&p); /* full: the entries of other sets stay */
        free(e);
        return;
    }
    f->ref(e->h.reply);
    atomic_fetch_add(&f->count, 1);
    front_put_at(&p, k, e);
    for (unsigned i = 0; i < p.slots; i++)
        if (i != k && (skip & (1u << i))) {
            gone[ngone++] = front_at(&p, i);
            front_put_at(&p, i, NULL);
        }
    front_unlock(&p);
    front_ent_free(f, old);
    for (unsigned i = 0; i < ngone; i++)
        front_ent_free(f, gone[i]);
}

void
ocsp_front_checked(struct ocsp_front *f, const uint8_t *key, size_t key_len, const void *reply,
                   uint64_t snap)
{
    struct front_pair p;
    struct front_ent *e;
    uint64_t hash;
    int k;

    if (f == NULL || key_len == 0 || key_len > OCSP_FRONT_KEY_MAX)
        return;
    hash = front_hash(f->seed, key, key_len);
    front_pair_of(f, hash, &p);
    front_lock(&p);
    /* only the entry that was checked: one put since (another reply) starts unchecked */
    if ((k = front_find(&p, hash, key, key_len)) >= 0 &&
        (e = front_at(&p, (unsigned)k))->h.reply == reply && snap > e->h.snap)
        e->h.snap = snap;
    front_unlock(&p);
}

void
ocsp_front_drop(struct ocsp_front *f, const uint8_t *key, size_t key_len)
{
    struct front_ent *old = NULL;
    struct front_pair p;
    uint64_t hash;
    int k;

    if (f == NULL || key_len == 0 || key_len > OCSP_FRONT_KEY_MAX)
        return;
    hash = front_hash(f->seed, key, key_len);
    front_pair_of(f, hash, &p);
    front_lock(&p);
    if ((k = front_find(&p, hash, key, key_len)) >= 0) {
        old = front_at(&p, (unsigned)k);
        front_put_at(&p, (unsigned)k, NULL);
    }
    front_unlock(&p);
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
