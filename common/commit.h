/*
 * commit: the one commit pipeline of an LMDB environment (DESIGN D10).
 *
 * Every write a daemon makes to its store goes through here: any number of producers (signer
 * batch callbacks, the refresher, the journal's applier) submit operations; one writer thread
 * per environment takes everything that has gathered while the previous transaction was
 * syncing, applies it in one write transaction, commits (one durable sync for the group) and
 * then calls each operation back, in submission order. Producers never open a write
 * transaction and never wait for a disk, nor for another process (ocspctl) that holds the
 * environment's write lock: only the writer does.
 *
 * Failure isolation: an operation whose apply fails (or a group whose commit fails, e.g. the
 * map is full) makes the writer abort the group and apply each operation again in a
 * transaction of its own, so one bad operation never takes the others down with it and no
 * operation is ever half written. apply must therefore have no effect outside the
 * transaction it is given (it may be called more than once).
 *
 * Headroom and back-pressure: operations are ESSENTIAL (audit records, revocations, holds:
 * never refused here) or BACKGROUND (pre-signed answers, refreshes: an optimisation that can
 * be redone). Background operations are refused with ST_FULL while the store's live fill is
 * above `fill_limit` (the space above it is kept for essential writes) and with ST_BUSY while
 * `queue_max` operations wait (e.g. while ocspctl holds the write lock for minutes); both are
 * counted, and the first refusal of a period is logged.
 *
 * Hygiene: the writer clears the reader slots of dead processes (store_reader_check) at
 * `hygiene_interval` and after every MDB_MAP_FULL, and keeps the fill level current.
 *
 * Metrics (label store="<name>"): store_commit_groups_total, store_commit_ops_total,
 * store_commit_group_size (histogram), store_commit_seconds (histogram),
 * store_commit_failures_total, store_commit_refused_total{reason="full"|"busy"},
 * store_stale_readers_cleared_total, store_fill_ratio, store_commit_queue.
 *
 * Lifetimes: an operation is the submitter's; the pipeline borrows it from commit_submit()
 * until its done callback, which is called exactly once (also for ST_SHUTDOWN at free).
 *
 * Thread-safety: commit_submit() from any thread. Callbacks run on the writer thread: they
 * must not block, and must not wait for this pipeline (a done callback may submit again).
 */
#ifndef COMMON_COMMIT_H
#define COMMON_COMMIT_H

#include "common/store.h"

#include <stdbool.h>
#include <stddef.h>

enum commit_class {
    COMMIT_ESSENTIAL = 0, /* must never be refused: audit records, revocations, holds */
    COMMIT_BACKGROUND = 1 /* may be refused (full, busy): answers that can be signed again */
};

struct commit_op;
struct commit_wait;

/* Write the operation into t. ST_OK, or a failure: the group is then redone without this
 * operation's writes (see above) and the operation completes with the failure. */
typedef int (*commit_apply_fn)(struct store_txn *t, struct commit_op *op);
/* Called once, on the writer thread, after the group's commit is durable (status ST_OK) or
 * with why the operation was not written (ST_FULL, ST_BUSY, ST_STORE, ST_SHUTDOWN or the
 * apply's failure). The operation belongs to the callback from then on. */
typedef void (*commit_done_fn)(struct commit_op *op, int status);

struct commit_op {
    enum commit_class cls;
    commit_apply_fn apply;
    commit_done_fn done; /* NULL: nothing to call */
    void *user;          /* the submitter's, untouched */
    /* private to the pipeline */
    int status;
    struct commit_wait *wait; /* commit_run() */
    struct commit_op *next;
};

#define COMMIT_DEFAULT_QUEUE_MAX 65536u
#define COMMIT_DEFAULT_GROUP_MAX 4096u
#define COMMIT_DEFAULT_FILL_LIMIT 0.8
#define COMMIT_DEFAULT_HYGIENE_S 60.0

struct commit_config {
    const char *name;        /* metric label and log name, e.g. "tsa" (copied) */
    unsigned queue_max;      /* background operations waiting at most (0: default) */
    unsigned group_max;      /* most operations in one transaction (0: default) */
    double fill_limit;       /* background refused above this live fill, 0 < x <= 1 (0: 0.8) */
    double hygiene_interval; /* seconds between reader checks (0: 60) */
};

struct commit;

/* Start the writer thread for store `s` (borrowed: it must outlive the pipeline). NULL on
 * failure, logged. */
struct commit *commit_new(struct store *s, const struct commit_config *cfg);
/* Commit what is queued, call every callback, stop the writer, free. NULL-safe. Operations
 * submitted after it began get ST_SHUTDOWN from commit_submit(). */
void commit_free(struct commit *c);

/* Queue an operation. ST_OK: done will be called. ST_FULL / ST_BUSY (background only) or
 * ST_SHUTDOWN: refused at once, done is not called, the operation is still the caller's. */
int commit_submit(struct commit *c, struct commit_op *op);
/* Queue and wait for the operation's completion; returns its status (done, if set, has
 * been called first). For tools and start-up, never on a request path. */
int commit_run(struct commit *c, struct commit_op *op);
/* Wait until everything submitted before the call has completed. Not on request paths. */
void commit_flush(struct commit *c);

/* The store's live fill as last measured (0..1), and whether it is above the fill limit
 * (background writes refused: a health warning). */
double commit_fill(struct commit *c);
bool commit_above_fill(struct commit *c);
/* A transaction could not be begun or committed (ENOSPC, EIO, a read-only filesystem) and none
 * has been committed since, within the last COMMIT_FAILING_HOLD_S seconds: a health failure
 * (issue 8, disk faults). It clears by itself with the next commit that succeeds. */
#define COMMIT_FAILING_HOLD_S 10
bool commit_failing(struct commit *c);
/* Operations submitted and not yet completed (queued, or in the group being written). */
unsigned commit_queue_depth(struct commit *c);
/* Operations submitted and not yet taken by the writer (tests wait on it). */
unsigned commit_queue_waiting(struct commit *c);
/* The pipeline's store. */
struct store *commit_store(struct commit *c);

#endif
