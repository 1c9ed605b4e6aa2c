/*
 * commit: one writer thread per LMDB environment, group commit, headroom and hygiene
 * (DESIGN D10). See commit.h for the contract.
 */
#include "common/commit.h"
#include "common/cond.h"
#include "common/live.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/status.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COMMIT_FILL_WALK_NS 200000000LL /* free-list walk at most this often above the limit */
#define COMMIT_REFILL_NS 1000000000LL   /* above the limit: fill measured again this often */
#define COMMIT_REFUSAL_LOG_S 60         /* a refusal reason is logged at most this often */

struct commit {
    struct store *s;
    struct commit_config cfg;
    char name[64];
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;     /* work for the writer */
    pthread_cond_t progress; /* an operation completed (flush) */
    struct commit_op *head, *tail;
    unsigned bg_depth; /* background operations queued (queue_max) */
    bool stopping;
    uint64_t submitted, completed;
    /* fill, written by the writer, read anywhere */
    _Atomic double fill;
    atomic_bool above;
    int64_t last_walk;    /* writer only: the last free-list walk, */
    double walk_fill;     /* the fill it found */
    size_t walk_used;     /* and the high-water mark then */
    int64_t next_hygiene; /* writer only */
    _Atomic int64_t logged_full, logged_busy;
    _Atomic int64_t txn_failed_at, txn_ok_at; /* commit_now() of the last of each, 0: none */
    struct live_beat *beat;
    struct metric *m_groups, *m_ops, *m_size, *m_secs, *m_fail, *m_full, *m_busy, *m_readers,
        *m_fill, *m_queue;
};

static int64_t
commit_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- fill level and hygiene (writer thread) ---- */

static void
commit_set_fill(struct commit *c, double fill)
{
    bool above = fill >= c->cfg.fill_limit, was = atomic_exchange(&c->above, above);

    atomic_store(&c->fill, fill);
    metrics_set(c->m_fill, fill);
    if (above && !was)
        log_warn("store: %s is %.0f%% full (fill_limit %.0f%%): background writes stop "
                 "(pre-signing, refresh, imports of good entries); the rest is kept for "
                 "revocations, holds and audit records. Grow %s",
                 store_name(c->s), fill * 100, c->cfg.fill_limit * 100,
                 store_size_key(c->s)[0] != '\0' ? store_size_key(c->s) : "its map size");
    else if (!above && was)
        log_notice("store: %s is %.0f%% full again: background writes resume", store_name(c->s),
                   fill * 100);
}

/* The high-water mark bounds the live fill from above: only when it is past the limit is the
 * free list walked, at most every COMMIT_FILL_WALK_NS (or now with `force`); between walks the
 * fill is the last walk's plus whatever the file grew by since. */
static void
commit_update_fill(struct commit *c, bool force)
{
    size_t used = 0, map = 1;
    double fill;
    int64_t now = commit_now();

    if (store_usage(c->s, &used, &map) != ST_OK || map == 0)
        return;
    if ((double)used / (double)map < c->cfg.fill_limit && !force) {
        commit_set_fill(c, (double)used / (double)map);
        return;
    }
    if (force || now - c->last_walk >= COMMIT_FILL_WALK_NS) {
        if (store_fill(c->s, &fill) != ST_OK)
            return;
        c->last_walk = now;
        c->walk_fill = fill;
        c->walk_used = used;
        commit_set_fill(c, fill);
        return;
    }
    fill = c->walk_fill;
    if (used > c->walk_used)
        fill += (double)(used - c->walk_used) / (double)map;
    commit_set_fill(c, fill);
}

/* When the writer must wake up with nothing queued: the next reader check, or, while above
 * the fill level, the next look at whether space was freed. */
static int64_t
commit_deadline(struct commit *c)
{
    int64_t d = c->next_hygiene;

    if (atomic_load(&c->above) && c->last_walk + COMMIT_REFILL_NS < d)
        d = c->last_walk + COMMIT_REFILL_NS;
    return d;
}

static void
commit_hygiene(struct commit *c)
{
    int cleared = 0;

    if (store_reader_check(c->s, &cleared) == ST_OK && cleared > 0)
        metrics_add(c->m_readers, (double)cleared);
    commit_update_fill(c, true);
    c->next_hygiene = commit_now() + (int64_t)(c->cfg.hygiene_interval * 1e9);
}

/* ---- one group ---- */

/* Begin a write transaction; waiting for the environment's write lock (another process may
 * hold it for minutes) is not "stuck": the beat is idle meanwhile. */
static int
commit_begin(struct commit *c, struct store_txn **t)
{
    int st;

    live_idle(c->beat);
    st = store_txn_begin(c->s, true, t);
    live_busy(c->beat);
    return st;
}

/* Note how a transaction's begin or commit went (not an operation's own refusal). */
static int
commit_txn_result(struct commit *c, int st)
{
    atomic_store(st == ST_OK ? &c->txn_ok_at : &c->txn_failed_at, commit_now());
    return st;
}

/* Commit t and note how it went. A transaction that wrote nothing commits as a no-op (LMDB
 * keeps its last transaction id and touches no disk): it proves nothing of the disk, so it does
 * not clear a failure that /healthz reports (review helper-43). */
static int
commit_end(struct commit *c, struct store_txn *t)
{
    uint64_t before = store_last_commit(c->s);
    int st = store_txn_commit(t);

    if (st == ST_OK && store_last_commit(c->s) == before)
        return st;
    return commit_txn_result(c, st);
}

/* Apply one operation in a transaction of its own. */
static int
commit_single(struct commit *c, struct commit_op *op)
{
    struct store_txn *t = NULL;
    int st;

    if (op->cls == COMMIT_BACKGROUND && atomic_load(&c->above))
        return ST_FULL;
    if ((st = commit_begin(c, &t)) != ST_OK)
        return commit_txn_result(c, st);
    if ((st = op->apply(t, op)) != ST_OK) {
        store_txn_abort(t);
        return st;
    }
    return commit_end(c, t);
}

/* The group in one transaction; ST_OK, or the first failure (nothing of it written). */
static int
commit_group_txn(struct commit *c, struct commit_op *list)
{
    struct store_txn *t = NULL;
    bool above = atomic_load(&c->above);
    int st;

    if ((st = commit_begin(c, &t)) != ST_OK)
        return commit_txn_result(c, st);
    for (struct commit_op *op = list; op != NULL; op = op->next) {
        if (op->cls == COMMIT_BACKGROUND && above) {
            op->status = ST_FULL; /* refused before any write: the group goes on */
            continue;
        }
        if ((op->status = op->apply(t, op)) != ST_OK) {
            store_txn_abort(t);
            return op->status;
        }
    }
    return commit_end(c, t);
}

static void
commit_refused(struct commit *c, int st)
{
    _Atomic int64_t *logged = st == ST_FULL ? &c->logged_full : &c->logged_busy;
    int64_t now = (int64_t)time(NULL), last = atomic_load(logged);

    metrics_inc(st == ST_FULL ? c->m_full : c->m_busy);
    if (now - last < COMMIT_REFUSAL_LOG_S || !atomic_compare_exchange_strong(logged, &last, now))
        return;
    if (st == ST_FULL)
        log_warn("store: %s: background write refused: the store is above fill_limit (%.0f%%)",
                 store_name(c->s), c->cfg.fill_limit * 100);
    else
        log_warn("store: %s: background write refused: %u writes are waiting (is another "
                 "process holding the write lock?)",
                 store_name(c->s), c->cfg.queue_max);
}

static void commit_wake(struct commit_wait *w, int status);

static void
commit_group(struct commit *c, struct commit_op *list, size_t n)
{
    int64_t t0 = commit_now();
    int st = commit_group_txn(c, list);

    if (st != ST_OK) {
        /* isolate: every operation again on its own, so the others still commit */
        metrics_inc(c->m_fail);
        if (st == ST_FULL)
            commit_hygiene(c); /* a dead reader may be what pins the space */
        if (n > 1)
            log_warn("store: %s: a group of %zu writes failed (%s): writing them one by one",
                     store_name(c->s), n, status_str(st));
        for (struct commit_op *op = list; op != NULL; op = op->next)
            op->status = commit_single(c, op);
    }
    live_idle(c->beat);
    metrics_inc(c->m_groups);
    metrics_add(c->m_ops, (double)n);
    metrics_observe(c->m_size, (double)n);
    metrics_observe(c->m_secs, (double)(commit_now() - t0) / 1e9);
    commit_update_fill(c, false);
    while (list != NULL) {
        struct commit_op *next = list->next;

        struct commit_wait *w = list->wait;
        int status = list->status;

        if (status == ST_FULL || status == ST_BUSY)
            commit_refused(c, status);
        if (list->done != NULL)
            list->done(list, status); /* may free the operation */
        if (w != NULL)
            commit_wake(w, status);
        list = next;
    }
}

static void *
commit_main(void *arg)
{
    struct commit *c = arg;

    for (;;) {
        struct commit_op *list = NULL, *last = NULL;
        size_t n = 0;
        bool hygiene;

        pthread_mutex_lock(&c->lock);
        while (c->head == NULL && !c->stopping && commit_now() < commit_deadline(c))
            cond_wait_ns(&c->cond, &c->lock, commit_deadline(c) - commit_now());
        if (c->head == NULL && c->stopping) {
            pthread_mutex_unlock(&c->lock);
            break;
        }
        while (c->head != NULL && n < c->cfg.group_max) {
            struct commit_op *op = c->head;

            c->head = op->next;
            if (op->cls == COMMIT_BACKGROUND)
                c->bg_depth--;
            op->next = NULL;
            if (last != NULL)
                last->next = op;
            else
                list = op;
            last = op;
            n++;
        }
        if (c->head == NULL)
            c->tail = NULL;
        pthread_mutex_unlock(&c->lock);
        hygiene = commit_now() >= c->next_hygiene;
        if (hygiene)
            commit_hygiene(c);
        else if (atomic_load(&c->above) && commit_now() >= c->last_walk + COMMIT_REFILL_NS)
            commit_update_fill(c, true); /* space may have been freed meanwhile */
        if (list == NULL)
            continue;
        commit_group(c, list, n);
        pthread_mutex_lock(&c->lock);
        c->completed += n;
        metrics_set(c->m_queue, (double)(c->submitted - c->completed));
        pthread_cond_broadcast(&c->progress);
        pthread_mutex_unlock(&c->lock);
    }
    return NULL;
}

/* ---- set-up ---- */

static struct metric *
commit_metric(struct commit *c, int kind, const char *base, const char *extra, const char *help)
{
    static const double size_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096};
    static const double secs_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                          0.01,   0.025,   0.05,   0.1,   0.5,    2};
    char name[160];

    snprintf(name, sizeof(name), "%s{store=\"%s\"%s}", base, c->name, extra);
    switch (kind) {
    case 0:
        return metrics_counter(name, help);
    case 1:
        return metrics_gauge(name, help);
    case 2:
        return metrics_histogram(name, help, size_buckets, sizeof(size_buckets) / sizeof(double));
    default:
        return metrics_histogram(name, help, secs_buckets, sizeof(secs_buckets) / sizeof(double));
    }
}

static void
commit_metrics_init(struct commit *c)
{
    c->m_groups = commit_metric(c, 0, "store_commit_groups_total", "",
                                "Write transactions committed by the store's writer.");
    c->m_ops =
        commit_metric(c, 0, "store_commit_ops_total", "", "Writes handled by the store's writer.");
    c->m_size = commit_metric(c, 2, "store_commit_group_size", "",
                              "Writes per transaction (group commit).");
    c->m_secs = commit_metric(c, 3, "store_commit_seconds", "",
                              "Time of one group: write lock, writes and durable sync.");
    c->m_fail = commit_metric(c, 0, "store_commit_failures_total", "",
                              "Groups whose transaction failed (their writes redone one by one).");
    c->m_full = commit_metric(c, 0, "store_commit_refused_total", ",reason=\"full\"",
                              "Background writes refused.");
    c->m_busy = commit_metric(c, 0, "store_commit_refused_total", ",reason=\"busy\"",
                              "Background writes refused.");
    c->m_readers = commit_metric(c, 0, "store_stale_readers_cleared_total", "",
                                 "Reader slots of dead processes cleared (mdb_reader_check).");
    c->m_fill = commit_metric(c, 1, "store_fill_ratio", "", "Live fill of the store's map (0..1).");
    c->m_queue = commit_metric(c, 1, "store_commit_queue", "",
                               "Writes submitted and not yet committed (or refused).");
}

struct commit *
commit_new(struct store *s, const struct commit_config *cfg)
{
    struct commit *c = calloc(1, sizeof(*c));
    char beat[LIVE_NAME_MAX];

    if (c == NULL)
        return NULL;
    c->s = s;
    c->cfg = *cfg;
    snprintf(c->name, sizeof(c->name), "%s", cfg->name != NULL ? cfg->name : "store");
    c->cfg.name = c->name;
    if (c->cfg.queue_max == 0)
        c->cfg.queue_max = COMMIT_DEFAULT_QUEUE_MAX;
    if (c->cfg.group_max == 0)
        c->cfg.group_max = COMMIT_DEFAULT_GROUP_MAX;
    if (!(c->cfg.fill_limit > 0 && c->cfg.fill_limit <= 1))
        c->cfg.fill_limit = COMMIT_DEFAULT_FILL_LIMIT;
    if (!(c->cfg.hygiene_interval > 0))
        c->cfg.hygiene_interval = COMMIT_DEFAULT_HYGIENE_S;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    pthread_cond_init(&c->progress, NULL);
    commit_metrics_init(c);
    snprintf(beat, sizeof(beat), "commit:%.30s", c->name);
    c->beat = live_beat_new(beat);
    commit_hygiene(c);
    if (pthread_create(&c->thread, NULL, commit_main, c) != 0) {
        log_err("store: %s: cannot start the writer thread", store_name(s));
        commit_free(c);
        return NULL;
    }
    c->started = true;
    return c;
}

void
commit_free(struct commit *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (c->started)
        pthread_join(c->thread, NULL);
    live_beat_free(c->beat);
    pthread_cond_destroy(&c->progress);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ---- producers ---- */

static int
commit_submit_wait(struct commit *c, struct commit_op *op, struct commit_wait *w)
{
    int st = ST_OK;

    op->next = NULL;
    op->status = ST_OK;
    op->wait = w;
    pthread_mutex_lock(&c->lock);
    if (c->stopping)
        st = ST_SHUTDOWN;
    else if (op->cls == COMMIT_BACKGROUND && atomic_load(&c->above))
        st = ST_FULL;
    else if (op->cls == COMMIT_BACKGROUND && c->bg_depth >= c->cfg.queue_max)
        st = ST_BUSY;
    if (st == ST_OK) {
        if (c->tail != NULL)
            c->tail->next = op;
        else
            c->head = op;
        c->tail = op;
        if (op->cls == COMMIT_BACKGROUND)
            c->bg_depth++;
        c->submitted++;
        metrics_set(c->m_queue, (double)(c->submitted - c->completed));
        pthread_cond_signal(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
    if (st == ST_FULL || st == ST_BUSY)
        commit_refused(c, st);
    return st;
}

int
commit_submit(struct commit *c, struct commit_op *op)
{
    return commit_submit_wait(c, op, NULL);
}

struct commit_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
};

static void
commit_wake(struct commit_wait *w, int status)
{
    pthread_mutex_lock(&w->lock);
    w->done = true;
    w->status = status;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int
commit_run(struct commit *c, struct commit_op *op)
{
    struct commit_wait w = {.done = false};
    int st;

    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    st = commit_submit_wait(c, op, &w);
    if (st == ST_OK) {
        pthread_mutex_lock(&w.lock);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        st = w.status;
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return st;
}

void
commit_flush(struct commit *c)
{
    pthread_mutex_lock(&c->lock);
    uint64_t target = c->submitted;

    while (c->completed < target)
        pthread_cond_wait(&c->progress, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

double
commit_fill(struct commit *c)
{
    return atomic_load(&c->fill);
}

bool
commit_above_fill(struct commit *c)
{
    return atomic_load(&c->above);
}

bool
commit_failing(struct commit *c)
{
    int64_t failed = atomic_load(&c->txn_failed_at);

    return failed != 0 && failed > atomic_load(&c->txn_ok_at) &&
           commit_now() - failed < (int64_t)COMMIT_FAILING_HOLD_S * 1000000000LL;
}

unsigned
commit_queue_waiting(struct commit *c)
{
    unsigned n = 0;

    pthread_mutex_lock(&c->lock);
    for (const struct commit_op *op = c->head; op != NULL; op = op->next)
        n++;
    pthread_mutex_unlock(&c->lock);
    return n;
}

unsigned
commit_queue_depth(struct commit *c)
{
    unsigned d;

    pthread_mutex_lock(&c->lock);
    d = (unsigned)(c->submitted - c->completed);
    pthread_mutex_unlock(&c->lock);
    return d;
}

struct store *
commit_store(struct commit *c)
{
    return c->s;
}
