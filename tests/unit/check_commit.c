/*
 * check_commit: unit suite of common/commit, the one commit pipeline of an LMDB environment
 * (DESIGN D10). Runs against real LMDB environments in fresh temp directories: group commit
 * of what gathers while a transaction is held, callbacks in submission order after the commit,
 * failure isolation (a failing operation never takes the others with it, nor is it half
 * written), headroom (background refused above the fill level, essential still written),
 * back-pressure (ST_BUSY past queue_max), MDB_MAP_FULL, drain at free, periodic reader checks.
 */
#include "common/commit.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/store.h"
#include "tests/unit/unitutil.h"

#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAP (8u << 20)

static const char *const names[] = {"data"};
static char dir[64];
static struct store *st;
static struct commit *cm;

static void
open_pipeline(size_t map, double fill_limit, unsigned queue_max, double hygiene)
{
    struct commit_config cc = {.name = "test",
                               .fill_limit = fill_limit,
                               .queue_max = queue_max,
                               .hygiene_interval = hygiene};

    st = store_open(dir, map, names, 1, false);
    ck_assert_ptr_nonnull(st);
    cm = commit_new(st, &cc);
    ck_assert_ptr_nonnull(cm);
}

static void
setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/check_commit.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    metrics_reset_all();
}

static void
teardown(void)
{
    commit_free(cm);
    cm = NULL;
    store_close(st);
    st = NULL;
    remove_tree(dir);
}

/* A test operation: puts key -> value; with `fail`, puts a second key then fails. */
struct top {
    struct commit_op op;
    char key[16];
    size_t vlen;
    int fail;
    int status;
    int order;
    bool done;
};

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static int done_seq;

static int
top_apply(struct store_txn *t, struct commit_op *op)
{
    static char val[256 * 1024];
    struct top *o = op->user;
    int rc;

    memset(val, 'v', sizeof(val));
    rc = store_txn_put(t, 0, o->key, strlen(o->key), val, o->vlen, false);
    if (rc != ST_OK)
        return rc;
    if (o->fail) {
        store_txn_put(t, 0, "half", 4, "x", 1, false);
        return o->fail;
    }
    return ST_OK;
}

static void
top_done(struct commit_op *op, int status)
{
    struct top *o = op->user;

    pthread_mutex_lock(&done_lock);
    o->status = status;
    o->order = done_seq++;
    o->done = true;
    pthread_mutex_unlock(&done_lock);
}

static void
top_init(struct top *o, enum commit_class cls, const char *key, size_t vlen, int fail)
{
    memset(o, 0, sizeof(*o));
    o->op.cls = cls;
    o->op.apply = top_apply;
    o->op.done = top_done;
    o->op.user = o;
    snprintf(o->key, sizeof(o->key), "%s", key);
    o->vlen = vlen;
    o->fail = fail;
    o->status = 12345;
}

static bool
has_key(const char *key)
{
    char buf[16];
    size_t len = 0;
    int rc = store_get(st, 0, key, strlen(key), buf, sizeof(buf), &len);

    return rc == ST_OK || (rc == ST_INVALID && len > sizeof(buf));
}

static double
metric(const char *name)
{
    return metrics_get(metrics_counter(name, "x"));
}

START_TEST(test_group_while_locked)
{
    /* everything that arrives while a transaction is held commits in the next group */
    struct store_txn *held = NULL;
    struct top o[10];
    char k[16];

    open_pipeline(MAP, 0, 0, 0);
    ck_assert_int_eq(store_txn_begin(st, true, &held), ST_OK);
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        top_init(&o[i], COMMIT_ESSENTIAL, k, 10, 0);
        ck_assert_int_eq(commit_submit(cm, &o[i].op), ST_OK);
    }
    usleep(50000);
    for (int i = 0; i < 10; i++)
        ck_assert(!o[i].done); /* nothing completes before its commit */
    store_txn_abort(held);
    commit_flush(cm);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(o[i].status, ST_OK);
        ck_assert_int_eq(o[i].order, i); /* callbacks in submission order */
        ck_assert(has_key(o[i].key));
    }
    ck_assert_double_le(metric("store_commit_groups_total{store=\"test\"}"), 2);
    ck_assert_double_eq(metric("store_commit_ops_total{store=\"test\"}"), 10);
}
END_TEST

START_TEST(test_durable_after_done)
{
    struct top o;
    size_t n = 0;

    open_pipeline(MAP, 0, 0, 0);
    top_init(&o, COMMIT_ESSENTIAL, "durable", 100, 0);
    ck_assert_int_eq(commit_run(cm, &o.op), ST_OK);
    ck_assert(o.done);
    commit_free(cm);
    cm = NULL;
    store_close(st);
    st = store_open(dir, MAP, names, 1, false);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_count(st, 0, &n), ST_OK);
    ck_assert_uint_eq(n, 1);
}
END_TEST

START_TEST(test_failure_isolated)
{
    /* one failing operation inside a group: the others commit, it leaves nothing behind */
    struct store_txn *held = NULL;
    struct top o[5];
    char k[16];

    open_pipeline(MAP, 0, 0, 0);
    ck_assert_int_eq(store_txn_begin(st, true, &held), ST_OK);
    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof(k), "i%d", i);
        top_init(&o[i], COMMIT_ESSENTIAL, k, 10, i == 2 ? ST_INVALID : 0);
        ck_assert_int_eq(commit_submit(cm, &o[i].op), ST_OK);
    }
    store_txn_abort(held);
    commit_flush(cm);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(o[i].status, i == 2 ? ST_INVALID : ST_OK);
        ck_assert(has_key(o[i].key) == (i != 2));
    }
    ck_assert(!has_key("half"));
    ck_assert_double_ge(metric("store_commit_failures_total{store=\"test\"}"), 1);
}
END_TEST

START_TEST(test_map_full_isolated)
{
    /* an essential write that cannot fit gets ST_FULL; the small ones beside it commit */
    struct store_txn *held = NULL;
    struct top small1, big, small2;

    open_pipeline(1u << 20, 1.0, 0, 0);
    top_init(&small1, COMMIT_ESSENTIAL, "s1", 100, 0);
    top_init(&big, COMMIT_ESSENTIAL, "big", 2u << 20, 0);
    top_init(&small2, COMMIT_ESSENTIAL, "s2", 100, 0);
    ck_assert_int_eq(store_txn_begin(st, true, &held), ST_OK);
    ck_assert_int_eq(commit_submit(cm, &small1.op), ST_OK);
    ck_assert_int_eq(commit_submit(cm, &big.op), ST_OK);
    ck_assert_int_eq(commit_submit(cm, &small2.op), ST_OK);
    store_txn_abort(held);
    commit_flush(cm);
    ck_assert_int_eq(small1.status, ST_OK);
    ck_assert_int_eq(big.status, ST_FULL);
    ck_assert_int_eq(small2.status, ST_OK);
    ck_assert(has_key("s1") && has_key("s2") && !has_key("big"));
}
END_TEST

START_TEST(test_headroom)
{
    /* above fill_limit background writes are refused, essential ones still commit */
    struct top fillers[16], bg, ess;
    char k[16];
    int i;

    open_pipeline(2u << 20, 0.5, 0, 0);
    for (i = 0; i < 16 && !commit_above_fill(cm); i++) {
        snprintf(k, sizeof(k), "f%d", i);
        top_init(&fillers[i], COMMIT_BACKGROUND, k, 128 * 1024, 0);
        ck_assert_int_eq(commit_run(cm, &fillers[i].op), ST_OK);
    }
    ck_assert_msg(commit_above_fill(cm), "fill %f never passed 0.5", commit_fill(cm));
    ck_assert_double_ge(commit_fill(cm), 0.5);
    top_init(&bg, COMMIT_BACKGROUND, "bg", 100, 0);
    ck_assert_int_eq(commit_submit(cm, &bg.op), ST_FULL);
    ck_assert(!bg.done); /* refused at once: no callback */
    top_init(&ess, COMMIT_ESSENTIAL, "revocation", 100, 0);
    ck_assert_int_eq(commit_run(cm, &ess.op), ST_OK);
    ck_assert(has_key("revocation") && !has_key("bg"));
    ck_assert_double_ge(metric("store_commit_refused_total{store=\"test\",reason=\"full\"}"), 1);
}
END_TEST

START_TEST(test_busy_backpressure)
{
    /* while another writer holds the lock, background writes queue up to queue_max */
    struct store_txn *held = NULL;
    struct top b[4], ess;
    char k[16];

    open_pipeline(MAP, 0, 2, 0);
    ck_assert_int_eq(store_txn_begin(st, true, &held), ST_OK);
    top_init(&b[0], COMMIT_BACKGROUND, "b0", 10, 0);
    ck_assert_int_eq(commit_submit(cm, &b[0].op), ST_OK);
    /* the writer takes b0 and waits for the lock (a bound, not a timing: up to 10 s) */
    for (int i = 0; i < 1000 && commit_queue_waiting(cm) > 0; i++)
        usleep(10000);
    ck_assert_uint_eq(commit_queue_waiting(cm), 0);
    for (int i = 1; i < 4; i++) {
        snprintf(k, sizeof(k), "b%d", i);
        top_init(&b[i], COMMIT_BACKGROUND, k, 10, 0);
    }
    ck_assert_int_eq(commit_submit(cm, &b[1].op), ST_OK);
    ck_assert_int_eq(commit_submit(cm, &b[2].op), ST_OK);
    ck_assert_int_eq(commit_submit(cm, &b[3].op), ST_BUSY);
    top_init(&ess, COMMIT_ESSENTIAL, "ess", 10, 0);
    ck_assert_int_eq(commit_submit(cm, &ess.op), ST_OK); /* essential is never refused */
    ck_assert_uint_eq(commit_queue_depth(cm), 4);        /* b0 (being written), b1, b2, ess */
    store_txn_abort(held);
    commit_flush(cm);
    ck_assert(has_key("b0") && has_key("b1") && has_key("b2") && has_key("ess"));
    ck_assert(!has_key("b3") && !b[3].done);
}
END_TEST

START_TEST(test_free_drains)
{
    /* operations queued when the pipeline is freed are committed and called back */
    struct store_txn *held = NULL;
    struct top o[20];
    char k[16];
    size_t n = 0;

    open_pipeline(MAP, 0, 0, 0);
    ck_assert_int_eq(store_txn_begin(st, true, &held), ST_OK);
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof(k), "d%d", i);
        top_init(&o[i], i % 2 ? COMMIT_BACKGROUND : COMMIT_ESSENTIAL, k, 10, 0);
        ck_assert_int_eq(commit_submit(cm, &o[i].op), ST_OK);
    }
    store_txn_abort(held);
    commit_free(cm);
    cm = NULL;
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(o[i].status, ST_OK);
    ck_assert_int_eq(store_count(st, 0, &n), ST_OK);
    ck_assert_uint_eq(n, 20);
}
END_TEST

START_TEST(test_periodic_reader_check)
{
    /* a reader killed with SIGKILL is cleared by the writer within its hygiene interval */
    const char *m = "store_stale_readers_cleared_total{store=\"test\"}";
    int fds[2];
    pid_t pid;
    char c;

    open_pipeline(MAP, 0, 0, 0.2);
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct store *ro = store_open(dir, MAP, names, 1, true);
        struct store_txn *t = NULL;

        if (ro == NULL || store_txn_begin(ro, false, &t) != ST_OK || write(fds[1], "r", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(fds[1]);
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    for (int i = 0; i < 50 && metric(m) < 1; i++)
        usleep(100000);
    ck_assert_double_eq(metric(m), 1);
}
END_TEST

static Suite *
commit_suite(void)
{
    Suite *s = suite_create("commit");
    TCase *tc = tcase_create("pipeline");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_group_while_locked);
    tcase_add_test(tc, test_durable_after_done);
    tcase_add_test(tc, test_failure_isolated);
    tcase_add_test(tc, test_map_full_isolated);
    tcase_add_test(tc, test_headroom);
    tcase_add_test(tc, test_busy_backpressure);
    tcase_add_test(tc, test_free_drains);
    tcase_add_test(tc, test_periodic_reader_check);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(commit_suite());
    int failed;

    log_init("check_commit", LOG_LVL_ERR);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
