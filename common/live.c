/*
 * live: liveness heartbeats (see live.h). A fixed table of slots, each with the monotonic
 * time its thread entered the call it is in (0 when idle).
 */
#include "common/live.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct live_beat {
    atomic_bool used;
    _Atomic int64_t busy_since; /* CLOCK_MONOTONIC ns; 0 = idle */
    char name[LIVE_NAME_MAX];
};

static struct live_beat live_table[LIVE_MAX_BEATS];

static int64_t
live_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + 1; /* never 0 */
}

struct live_beat *
live_beat_new(const char *name)
{
    for (size_t i = 0; i < LIVE_MAX_BEATS; i++) {
        struct live_beat *b = &live_table[i];
        bool expected = false;

        if (atomic_load(&b->used) || !atomic_compare_exchange_strong(&b->used, &expected, true))
            continue;
        atomic_store(&b->busy_since, 0);
        snprintf(b->name, sizeof(b->name), "%s", name != NULL ? name : "thread");
        return b;
    }
    return NULL;
}

void
live_beat_free(struct live_beat *b)
{
    if (b == NULL)
        return;
    atomic_store(&b->busy_since, 0);
    atomic_store(&b->used, false);
}

void
live_busy(struct live_beat *b)
{
    if (b != NULL)
        atomic_store_explicit(&b->busy_since, live_now(), memory_order_relaxed);
}

void
live_idle(struct live_beat *b)
{
    if (b != NULL)
        atomic_store_explicit(&b->busy_since, 0, memory_order_relaxed);
}

bool
live_check(double bound, char *who, size_t cap, double *how_long)
{
    int64_t now = live_now(), worst = 0;
    const struct live_beat *stuck = NULL;

    for (size_t i = 0; i < LIVE_MAX_BEATS; i++) {
        const struct live_beat *b = &live_table[i];
        int64_t since;

        if (!atomic_load(&b->used))
            continue;
        since = atomic_load_explicit(&b->busy_since, memory_order_relaxed);
        if (since != 0 && now - since > worst) {
            worst = now - since;
            stuck = b;
        }
    }
    if (how_long != NULL)
        *how_long = (double)worst / 1e9;
    if (who != NULL && cap > 0)
        snprintf(who, cap, "%s", stuck != NULL ? stuck->name : "");
    return (double)worst / 1e9 <= bound;
}
