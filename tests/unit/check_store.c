/*
 * check_store: unit suite of common/store, the LMDB environment of a daemon (DESIGN D4). Runs
 * against a real LMDB environment in a fresh temp directory per test: named databases, reads
 * copied out of the map, no-overwrite puts (the serial-collision guard behind TSP-18 and
 * TSA-18/19 audit records), walks in key order, transaction abort and durability across
 * reopen, read-only opening.
 */
#include "common/log.h"
#include "common/status.h"
#include "common/store.h"
#include "tests/unit/unitutil.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAP (8u << 20)

static const char *const db_names[] = {"serials", "audit", "meta"};
static char dir[64];
static struct store *st;

static void
setup_store(void)
{
    snprintf(dir, sizeof(dir), "/tmp/check_store.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    st = store_open(dir, MAP, db_names, 3, false);
    ck_assert_ptr_nonnull(st);
}

static void
teardown_store(void)
{
    store_close(st);
    st = NULL;
    remove_tree(dir);
}

/* Put key=val in db in its own committed transaction. */
static void
put1(int db, const char *key, const char *val)
{
    struct store_txn *t = NULL;

    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_put(t, db, key, strlen(key), val, strlen(val), false), ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
}

START_TEST(test_open_named_dbs)
{
    struct stat sb;

    ck_assert_int_eq(store_db(st, "serials"), 0);
    ck_assert_int_eq(store_db(st, "audit"), 1);
    ck_assert_int_eq(store_db(st, "meta"), 2);
    ck_assert_int_eq(store_db(st, "nosuch"), -1);
    ck_assert_int_eq(store_db(st, ""), -1);
    ck_assert_int_eq(stat(dir, &sb), 0);
    ck_assert_int_eq(access(dir, F_OK), 0);
}
END_TEST

START_TEST(test_open_creates_dir)
{
    char sub[128];
    struct store *s2;

    snprintf(sub, sizeof(sub), "%s/sub", dir);
    s2 = store_open(sub, MAP, db_names, 1, false);
    ck_assert_ptr_nonnull(s2);
    store_close(s2);
    remove_tree(sub);
    /* a parent that does not exist: NULL, not a crash */
    snprintf(sub, sizeof(sub), "%s/no/such/dir", dir);
    ck_assert_ptr_null(store_open(sub, MAP, db_names, 1, false));
}
END_TEST

START_TEST(test_put_get_copy)
{
    int db = store_db(st, "serials");
    char buf[32];
    size_t len = 0;

    put1(db, "k1", "value-one");
    memset(buf, 'x', sizeof(buf));
    ck_assert_int_eq(store_get(st, db, "k1", 2, buf, sizeof(buf), &len), ST_OK);
    ck_assert_uint_eq(len, 9);
    ck_assert_mem_eq(buf, "value-one", 9);
    ck_assert_int_eq(buf[9], 'x'); /* nothing written past the value */
    /* the same key in another database is another entry */
    ck_assert_int_eq(store_get(st, store_db(st, "audit"), "k1", 2, buf, sizeof(buf), &len),
                     ST_NOTFOUND);
}
END_TEST

/* The field of this process's mapping of the store's data file in /proc/self/smaps: a
 * "Field: N kB" line's N, -1 when not found; "VmFlags" copies the flags into flags. */
static long
data_smaps(const char *field, char *flags, size_t flags_cap)
{
    char path[128], line[512];
    size_t n = strlen(field);
    long v = -1;
    bool in = false;
    FILE *f = fopen("/proc/self/smaps", "r");

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *sp = strchr(line, ' ');

        if (sp != NULL && sp != line && sp[-1] != ':') {
            in = strstr(line, path) != NULL; /* a mapping's header */
            continue;
        }
        if (!in || strncmp(line, field, n) != 0 || line[n] != ':')
            continue;
        v = strtol(line + n + 1, NULL, 10);
        if (flags != NULL) {
            size_t len = strlen(line + n + 1);

            len = len < flags_cap ? len : flags_cap - 1;
            memcpy(flags, line + n + 1, len);
            flags[len] = '\0';
        }
        break;
    }
    fclose(f);
    return v;
}

/* KiB of this process's mapping of the store's data file that are resident (smaps Rss). */
static long
data_rss_kib(void)
{
    return data_smaps("Rss", NULL, 0);
}

/* The bytes this process has had read from storage so far (/proc/self/io read_bytes). */
static long long
io_read_bytes(void)
{
    char line[128];
    long long v = -1;
    FILE *f = fopen("/proc/self/io", "r");

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL && sscanf(line, "read_bytes: %lld", &v) != 1)
        ;
    fclose(f);
    return v;
}

/* A store of about 4.5 MB: 1500 values of 3000 bytes, committed; reopened, nothing mapped
 * yet. The data file's size in *size. */
static void
prefault_store(off_t *size)
{
    int db = store_db(st, "serials");
    static char val[3000];
    struct store_txn *t = NULL;
    struct stat sb;
    char path[128];

    memset(val, 'v', sizeof(val));
    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    for (int i = 0; i < 1500; i++) {
        char key[16];

        snprintf(key, sizeof(key), "k%05d", i);
        ck_assert_int_eq(store_txn_put(t, db, key, strlen(key), val, sizeof(val), false), ST_OK);
    }
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    store_close(st);
    st = store_open(dir, MAP, db_names, 3, false);
    ck_assert_ptr_nonnull(st);
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    ck_assert_int_eq(stat(path, &sb), 0);
    *size = sb.st_size;
    ck_assert_int_lt(data_rss_kib(), (long)(sb.st_size / 1024) - 4); /* hardly anything yet */
}

/* The prefault's report, once it has ended (waits up to 10 s). */
static struct store_prefault_report
prefault_wait(struct store *s)
{
    struct store_prefault_report r;

    for (int i = 0; i < 200 && !store_prefault_report(s, &r); i++)
        usleep(50000);
    ck_assert(store_prefault_report(s, &r));
    return r;
}

/* store_prefault_start maps the data file's pages into the process in the background (what
 * ocspd does at start: a store read uniformly does not fault on most reads), asking for 2 MiB
 * pages (the mapping's VmFlags "hg": the kernel may then map the file 2 MiB at a time);
 * once more is refused; store_close stops and joins it, also while it runs. */
START_TEST(test_prefault)
{
    struct store_prefault_report r;
    char flags[256] = "";
    long want;
    off_t size;
    struct store *s2;

    prefault_store(&size);
    want = (long)(size / 1024) - 4;
    ck_assert(!store_prefault_report(st, &r)); /* never started */
    ck_assert_int_eq(store_prefault_start(st, false), ST_OK);
    ck_assert_int_eq(store_prefault_start(st, false), ST_INVALID);
    r = prefault_wait(st);
    ck_assert_int_ge(data_rss_kib(), want);
    ck_assert_uint_ge(r.mapped, (size_t)size - 4096);
    ck_assert_uint_eq(r.reread, 0);
    ck_assert_uint_le(r.huge, r.mapped);
    data_smaps("VmFlags", flags, sizeof(flags));
    ck_assert_msg(strstr(flags, " hg") != NULL, "VmFlags:%s", flags);
    /* closed at once after the start: stopped and joined, nothing left running */
    s2 = store_open(dir, MAP, db_names, 3, false);
    ck_assert_ptr_nonnull(s2);
    ck_assert_int_eq(store_prefault_start(s2, false), ST_OK);
    store_close(s2);
}
END_TEST

/* reread: the data file's cached pages are dropped before they are mapped, so they are read
 * again from storage (into 2 MiB folios where the file system can): this process's read
 * bytes grow by about the file's size, where without reread they come from the page cache
 * (the file was just written). Where the directory is in memory (tmpfs) there is no storage
 * to read again from: the pages cannot be dropped, nothing is read. */
START_TEST(test_prefault_reread)
{
    struct store_prefault_report r;
    struct statfs fs;
    long long before;
    off_t size;

    prefault_store(&size);
    ck_assert_int_eq(statfs(dir, &fs), 0);
    before = io_read_bytes();
    ck_assert_int_ge(before, 0);
    ck_assert_int_eq(store_prefault_start(st, true), ST_OK);
    r = prefault_wait(st);
    ck_assert_uint_ge(r.mapped, (size_t)size - 4096);
    ck_assert_uint_eq(r.reread, r.mapped);
    ck_assert_int_ge(data_rss_kib(), (long)(size / 1024) - 4);
    if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC)
        ck_assert_int_lt(io_read_bytes() - before, (long long)size / 2);
    else
        ck_assert_int_ge(io_read_bytes() - before, (long long)size / 2);
}
END_TEST

START_TEST(test_binary_keys)
{
    int db = store_db(st, "serials");
    struct store_txn *t = NULL;
    const uint8_t k[16] = {0x7f, 0, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9};
    const uint8_t v[4] = {0, 1, 0, 2};
    uint8_t out[8];
    size_t len = 0;

    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_put(t, db, k, sizeof(k), v, sizeof(v), true), ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    ck_assert_int_eq(store_get(st, db, k, sizeof(k), out, sizeof(out), &len), ST_OK);
    ck_assert_uint_eq(len, 4);
    ck_assert_mem_eq(out, v, 4);
    /* a prefix of the key is another key */
    ck_assert_int_eq(store_get(st, db, k, 15, out, sizeof(out), &len), ST_NOTFOUND);
}
END_TEST

START_TEST(test_no_overwrite)
{
    /* TSP-18: a serial is written with no_overwrite; a collision leaves the first record */
    int db = store_db(st, "serials");
    struct store_txn *t = NULL;
    char buf[32];
    size_t len = 0;

    put1(db, "serial", "first");
    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_put(t, db, "serial", 6, "second", 6, true), ST_EXISTS);
    ck_assert_int_eq(store_txn_put(t, db, "other", 5, "x", 1, true), ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    ck_assert_int_eq(store_get(st, db, "serial", 6, buf, sizeof(buf), &len), ST_OK);
    ck_assert_uint_eq(len, 5);
    ck_assert_mem_eq(buf, "first", 5);
    /* without no_overwrite the value is replaced */
    put1(db, "serial", "third!");
    ck_assert_int_eq(store_get(st, db, "serial", 6, buf, sizeof(buf), &len), ST_OK);
    ck_assert_uint_eq(len, 6);
    ck_assert_mem_eq(buf, "third!", 6);
}
END_TEST

START_TEST(test_get_missing)
{
    int db = store_db(st, "meta");
    char buf[8];
    size_t len = 1234;
    uint8_t *val = (uint8_t *)buf;

    ck_assert_int_eq(store_get(st, db, "nope", 4, buf, sizeof(buf), &len), ST_NOTFOUND);
    ck_assert_int_eq(store_get_alloc(st, db, "nope", 4, &val, &len), ST_NOTFOUND);
    ck_assert_ptr_null(val);
}
END_TEST

START_TEST(test_get_small_buffer)
{
    int db = store_db(st, "meta");
    char buf[4] = {'a', 'b', 'c', 'd'};
    size_t len = 0;

    put1(db, "k", "0123456789");
    ck_assert_int_eq(store_get(st, db, "k", 1, buf, sizeof(buf), &len), ST_INVALID);
    ck_assert_uint_eq(len, 10); /* the full length, to size a retry */
    ck_assert_mem_eq(buf, "abcd", 4);
    len = 0;
    ck_assert_int_eq(store_get(st, db, "k", 1, NULL, 0, &len), ST_INVALID);
    ck_assert_uint_eq(len, 10);
}
END_TEST

START_TEST(test_get_alloc)
{
    int db = store_db(st, "audit");
    uint8_t *val = NULL;
    size_t len = 0;
    struct store_txn *t = NULL;

    put1(db, "rec", "{\"v\":1}");
    ck_assert_int_eq(store_get_alloc(st, db, "rec", 3, &val, &len), ST_OK);
    ck_assert_ptr_nonnull(val);
    ck_assert_uint_eq(len, 7);
    ck_assert_mem_eq(val, "{\"v\":1}", 7);
    free(val);
    /* an empty value */
    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_put(t, db, "empty", 5, "", 0, false), ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    val = NULL;
    len = 99;
    ck_assert_int_eq(store_get_alloc(st, db, "empty", 5, &val, &len), ST_OK);
    ck_assert_ptr_nonnull(val);
    ck_assert_uint_eq(len, 0);
    free(val);
}
END_TEST

START_TEST(test_count)
{
    int db = store_db(st, "serials");
    size_t n = 99;
    char k[16];
    struct store_txn *t = NULL;

    ck_assert_int_eq(store_count(st, db, &n), ST_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    for (int i = 0; i < 250; i++) {
        snprintf(k, sizeof(k), "key%04d", i);
        ck_assert_int_eq(store_txn_put(t, db, k, strlen(k), k, strlen(k), true), ST_OK);
    }
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    ck_assert_int_eq(store_count(st, db, &n), ST_OK);
    ck_assert_uint_eq(n, 250);
    ck_assert_int_eq(store_count(st, store_db(st, "audit"), &n), ST_OK);
    ck_assert_uint_eq(n, 0);
}
END_TEST

struct walk_log {
    char keys[16][16];
    size_t n;
    size_t stop_after; /* 0: never stop */
};

static bool
walk_collect(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct walk_log *w = ctx;

    ck_assert_uint_lt(w->n, 16);
    ck_assert_uint_lt(klen, 16);
    memcpy(w->keys[w->n], key, klen);
    w->keys[w->n][klen] = '\0';
    /* values are the key upper-cased */
    ck_assert_uint_eq(vlen, klen);
    ck_assert_int_eq(((const char *)val)[0], w->keys[w->n][0] - 'a' + 'A');
    w->n++;
    return w->stop_after == 0 || w->n < w->stop_after;
}

static void
put_walk_keys(void)
{
    /* inserted out of order; LMDB keeps byte order: "a" < "ab" < "b" < "ba" < "c" */
    static const char *const keys[] = {"c", "ab", "ba", "a", "b"};
    static const char *const vals[] = {"C", "AB", "BA", "A", "B"};
    int db = store_db(st, "meta");
    struct store_txn *t = NULL;

    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(
            store_txn_put(t, db, keys[i], strlen(keys[i]), vals[i], strlen(vals[i]), false), ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
}

START_TEST(test_walk_order)
{
    struct walk_log w = {0};

    put_walk_keys();
    ck_assert_int_eq(store_walk(st, store_db(st, "meta"), NULL, 0, walk_collect, &w), ST_OK);
    ck_assert_uint_eq(w.n, 5);
    ck_assert_str_eq(w.keys[0], "a");
    ck_assert_str_eq(w.keys[1], "ab");
    ck_assert_str_eq(w.keys[2], "b");
    ck_assert_str_eq(w.keys[3], "ba");
    ck_assert_str_eq(w.keys[4], "c");
}
END_TEST

START_TEST(test_walk_stop_and_start)
{
    struct walk_log w = {0};
    int db = store_db(st, "meta");

    put_walk_keys();
    w.stop_after = 2;
    ck_assert_int_eq(store_walk(st, db, NULL, 0, walk_collect, &w), ST_OK);
    ck_assert_uint_eq(w.n, 2);
    ck_assert_str_eq(w.keys[1], "ab");
    /* from an existing key */
    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(store_walk(st, db, "b", 1, walk_collect, &w), ST_OK);
    ck_assert_uint_eq(w.n, 3);
    ck_assert_str_eq(w.keys[0], "b");
    ck_assert_str_eq(w.keys[2], "c");
    /* from a key that is absent: the next one up */
    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(store_walk(st, db, "bb", 2, walk_collect, &w), ST_OK);
    ck_assert_uint_eq(w.n, 1);
    ck_assert_str_eq(w.keys[0], "c");
    /* past the end, and an empty database: no calls */
    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(store_walk(st, db, "d", 1, walk_collect, &w), ST_OK);
    ck_assert_uint_eq(w.n, 0);
    ck_assert_int_eq(store_walk(st, store_db(st, "audit"), NULL, 0, walk_collect, &w), ST_OK);
    ck_assert_uint_eq(w.n, 0);
}
END_TEST

START_TEST(test_txn_abort)
{
    int db = store_db(st, "serials");
    struct store_txn *t = NULL;
    const void *v = NULL;
    size_t vl = 0, n = 9;
    char buf[8];

    put1(db, "kept", "1");
    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_put(t, db, "gone", 4, "2", 1, true), ST_OK);
    ck_assert_int_eq(store_txn_del(t, db, "kept", 4), ST_OK);
    /* visible inside the transaction */
    ck_assert_int_eq(store_txn_get(t, db, "gone", 4, &v, &vl), ST_OK);
    ck_assert_uint_eq(vl, 1);
    ck_assert_mem_eq(v, "2", 1);
    ck_assert_int_eq(store_txn_get(t, db, "kept", 4, &v, &vl), ST_NOTFOUND);
    store_txn_abort(t);
    store_txn_abort(NULL);
    ck_assert_int_eq(store_get(st, db, "gone", 4, buf, sizeof(buf), &vl), ST_NOTFOUND);
    ck_assert_int_eq(store_get(st, db, "kept", 4, buf, sizeof(buf), &vl), ST_OK);
    ck_assert_int_eq(store_count(st, db, &n), ST_OK);
    ck_assert_uint_eq(n, 1);
}
END_TEST

START_TEST(test_txn_del)
{
    int db = store_db(st, "serials");
    struct store_txn *t = NULL;
    char buf[8];
    size_t len;

    put1(db, "k", "v");
    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_del(t, db, "k", 1), ST_OK);
    ck_assert_int_eq(store_txn_del(t, db, "k", 1), ST_NOTFOUND);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    ck_assert_int_eq(store_get(st, db, "k", 1, buf, sizeof(buf), &len), ST_NOTFOUND);
}
END_TEST

START_TEST(test_read_txn)
{
    int db = store_db(st, "serials");
    struct store_txn *t = NULL;
    const void *v = NULL;
    size_t vl = 0;

    put1(db, "k", "value");
    ck_assert_int_eq(store_txn_begin(st, false, &t), ST_OK);
    ck_assert_int_eq(store_txn_get(t, db, "k", 1, &v, &vl), ST_OK);
    ck_assert_uint_eq(vl, 5);
    ck_assert_mem_eq(v, "value", 5);
    /* a read transaction cannot write */
    ck_assert_int_ne(store_txn_put(t, db, "x", 1, "y", 1, false), ST_OK);
    store_txn_abort(t);
}
END_TEST

START_TEST(test_reopen_persists)
{
    int db = store_db(st, "audit");
    char buf[16];
    size_t len = 0, n = 0;

    put1(db, "a", "persisted");
    store_close(st);
    st = store_open(dir, MAP, db_names, 3, false);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_get(st, store_db(st, "audit"), "a", 1, buf, sizeof(buf), &len), ST_OK);
    ck_assert_uint_eq(len, 9);
    ck_assert_mem_eq(buf, "persisted", 9);
    ck_assert_int_eq(store_count(st, store_db(st, "serials"), &n), ST_OK);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_reopen_other_order)
{
    /* databases are found by name, not by position */
    static const char *const other[] = {"meta", "audit"};
    char buf[16];
    size_t len = 0;

    put1(store_db(st, "audit"), "a", "A");
    store_close(st);
    st = store_open(dir, MAP, other, 2, false);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_db(st, "audit"), 1);
    ck_assert_int_eq(store_db(st, "serials"), -1);
    ck_assert_int_eq(store_get(st, 1, "a", 1, buf, sizeof(buf), &len), ST_OK);
    ck_assert_mem_eq(buf, "A", 1);
}
END_TEST

START_TEST(test_readonly)
{
    struct store *ro;
    struct store_txn *t = NULL;
    char buf[16];
    size_t len = 0;
    static const char *const unknown[] = {"serials", "never_created"};

    put1(store_db(st, "serials"), "s", "1");
    store_close(st);
    st = NULL;
    ro = store_open(dir, MAP, db_names, 3, true);
    ck_assert_ptr_nonnull(ro);
    ck_assert_int_eq(store_get(ro, store_db(ro, "serials"), "s", 1, buf, sizeof(buf), &len), ST_OK);
    ck_assert_mem_eq(buf, "1", 1);
    ck_assert_int_ne(store_txn_begin(ro, true, &t), ST_OK);
    ck_assert_ptr_null(t);
    store_close(ro);
    /* read-only: a database that was never created cannot be opened */
    ck_assert_ptr_null(store_open(dir, MAP, unknown, 2, true));
    /* read-only on a directory that holds no environment */
    {
        char empty[128];

        snprintf(empty, sizeof(empty), "%s/empty", dir);
        ck_assert_int_eq(mkdir(empty, 0700), 0);
        ck_assert_ptr_null(store_open(empty, MAP, db_names, 3, true));
        rmdir(empty);
    }
}
END_TEST

START_TEST(test_bad_db_index)
{
    struct store_txn *t = NULL;
    char buf[8];
    size_t len = 0, n = 0;
    uint8_t *val = NULL;
    const void *v;
    struct walk_log w = {0};

    ck_assert_int_eq(store_get(st, -1, "k", 1, buf, sizeof(buf), &len), ST_INVALID);
    ck_assert_int_eq(store_get(st, 3, "k", 1, buf, sizeof(buf), &len), ST_INVALID);
    ck_assert_int_eq(store_get_alloc(st, -1, "k", 1, &val, &len), ST_INVALID);
    ck_assert_int_eq(store_count(st, 7, &n), ST_INVALID);
    ck_assert_int_eq(store_walk(st, -1, NULL, 0, walk_collect, &w), ST_INVALID);
    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_put(t, store_db(st, "nosuch"), "k", 1, "v", 1, false), ST_INVALID);
    ck_assert_int_eq(store_txn_get(t, 3, "k", 1, &v, &len), ST_INVALID);
    ck_assert_int_eq(store_txn_del(t, -1, "k", 1), ST_INVALID);
    store_txn_abort(t);
}
END_TEST

START_TEST(test_too_many_dbs)
{
    const char *many[17];

    for (int i = 0; i < 17; i++)
        many[i] = "x";
    ck_assert_ptr_null(store_open(dir, MAP, many, 17, false));
}
END_TEST

START_TEST(test_usage)
{
    size_t used = 0, map = 0;
    char big[4096];
    char k[16];
    struct store_txn *t = NULL;
    size_t before;

    ck_assert_int_eq(store_usage(st, &used, &map), ST_OK);
    ck_assert_uint_eq(map, MAP);
    ck_assert_uint_gt(used, 0);
    before = used;
    memset(big, 'b', sizeof(big));
    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    for (int i = 0; i < 64; i++) {
        snprintf(k, sizeof(k), "%d", i);
        ck_assert_int_eq(store_txn_put(t, 0, k, strlen(k), big, sizeof(big), false), ST_OK);
    }
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    ck_assert_int_eq(store_usage(st, &used, &map), ST_OK);
    ck_assert_uint_ge(used, before + 64 * sizeof(big));
    ck_assert_uint_le(used, map);
}
END_TEST

START_TEST(test_map_full)
{
    /* a write that does not fit the map fails cleanly and commits nothing */
    struct store *small;
    struct store_txn *t = NULL;
    char sub[128];
    static char big[64 * 1024];
    char k[16];
    int rc = ST_OK, i;
    size_t n = 99;

    snprintf(sub, sizeof(sub), "%s/small", dir);
    small = store_open(sub, 1u << 20, db_names, 1, false);
    ck_assert_ptr_nonnull(small);
    ck_assert_int_eq(store_txn_begin(small, true, &t), ST_OK);
    for (i = 0; i < 64 && rc == ST_OK; i++) {
        snprintf(k, sizeof(k), "%d", i);
        rc = store_txn_put(t, 0, k, strlen(k), big, sizeof(big), false);
    }
    ck_assert_int_eq(rc, ST_FULL); /* MDB_MAP_FULL has a status of its own */
    store_txn_abort(t);
    ck_assert_int_eq(store_count(small, 0, &n), ST_OK);
    ck_assert_uint_eq(n, 0);
    store_close(small);
    remove_tree(sub);
}
END_TEST

/* A reader whose process died: a child opens the store, begins a read transaction, and is
 * killed with SIGKILL while holding it. */
static pid_t
dead_reader(const char *path)
{
    int fds[2];
    pid_t pid;
    char c;

    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct store *ro = store_open(path, MAP, db_names, 3, true);
        struct store_txn *t = NULL;

        if (ro == NULL || store_txn_begin(ro, false, &t) != ST_OK)
            _exit(1);
        if (write(fds[1], "r", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(fds[1]);
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return pid;
}

/* store_last_commit / store_get_snap (the front cache's "nothing committed since", EID-05):
 * a read's snapshot equals the last commit until a write commits, in this process or another
 * one; an empty write transaction or an aborted one commits nothing. */
START_TEST(test_last_commit_snapshots)
{
    char buf[64];
    size_t len = 0;
    uint64_t snap = 0, last;
    struct store_txn *t = NULL;
    pid_t pid;
    int status = -1;

    put1(0, "k", "v1");
    ck_assert_int_eq(store_get_snap(st, 0, "k", 1, buf, sizeof(buf), &len, &snap), ST_OK);
    last = store_last_commit(st);
    ck_assert_uint_ne(snap, 0);
    ck_assert_uint_eq(snap, last);
    /* a missing key reads in a snapshot too */
    ck_assert_int_eq(store_get_snap(st, 0, "x", 1, buf, sizeof(buf), &len, &snap), ST_NOTFOUND);
    ck_assert_uint_eq(snap, last);
    /* nothing written: no commit */
    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_put(t, 0, "k", 1, "zz", 2, false), ST_OK);
    store_txn_abort(t);
    ck_assert_uint_eq(store_last_commit(st), last);
    /* a commit in this process */
    put1(0, "k", "v2");
    ck_assert_uint_gt(store_last_commit(st), last);
    ck_assert_int_eq(store_get_snap(st, 0, "k", 1, buf, sizeof(buf), &len, &snap), ST_OK);
    ck_assert_uint_eq(snap, store_last_commit(st));
    last = snap;
    /* a commit by another process (as ocspctl beside ocspd): seen once it has returned */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct store *other = store_open(dir, MAP, db_names, 3, false);
        struct store_txn *w = NULL;

        if (other == NULL || store_txn_begin(other, true, &w) != ST_OK ||
            store_txn_put(w, 0, "k", 1, "v3", 2, false) != ST_OK || store_txn_commit(w) != ST_OK)
            _exit(1);
        store_close(other);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_uint_gt(store_last_commit(st), last);
    ck_assert_int_eq(store_get_snap(st, 0, "k", 1, buf, sizeof(buf), &len, &snap), ST_OK);
    ck_assert_uint_eq(snap, store_last_commit(st));
    ck_assert_int_eq(memcmp(buf, "v3", 2), 0);
}
END_TEST

START_TEST(test_reader_check_clears_dead)
{
    int cleared = -1;

    /* DESIGN D10: a reader killed with kill -9 pins its snapshot until its slot is cleared */
    dead_reader(dir);
    ck_assert_int_eq(store_reader_check(st, &cleared), ST_OK);
    ck_assert_int_eq(cleared, 1);
    ck_assert_int_eq(store_reader_check(st, &cleared), ST_OK);
    ck_assert_int_eq(cleared, 0);
}
END_TEST

START_TEST(test_open_clears_dead_readers)
{
    int cleared = -1;

    dead_reader(dir);
    store_close(st);
    st = store_open(dir, MAP, db_names, 3, false);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_reader_check(st, &cleared), ST_OK);
    ck_assert_int_eq(cleared, 0); /* store_open cleared it already */
}
END_TEST

static void
put_many(int n, size_t size, int del)
{
    static char big[8192];
    struct store_txn *t = NULL;
    char k[16];

    memset(big, 'f', sizeof(big));
    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "f%05d", i);
        if (del)
            ck_assert_int_eq(store_txn_del(t, 0, k, strlen(k)), ST_OK);
        else
            ck_assert_int_eq(store_txn_put(t, 0, k, strlen(k), big, size, false), ST_OK);
    }
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
}

START_TEST(test_fill_counts_live_pages)
{
    double empty = -1, full = -1, after = -1;
    size_t hw_full = 0, hw_after = 0, map = 0;

    ck_assert_int_eq(store_fill(st, &empty), ST_OK);
    ck_assert(empty >= 0 && empty < 0.01);
    put_many(400, 8000, 0); /* 400 overflow pages of 2 x 4 KiB: about 3.2 MB of 8 MB */
    ck_assert_int_eq(store_fill(st, &full), ST_OK);
    ck_assert_msg(full > 0.35 && full < 0.5, "fill after 3.2 MB: %f", full);
    ck_assert_int_eq(store_usage(st, &hw_full, &map), ST_OK);
    put_many(400, 8000, 1);
    put_many(1, 10, 0); /* a later commit lets the freed pages be counted as free */
    ck_assert_int_eq(store_fill(st, &after), ST_OK);
    ck_assert_int_eq(store_usage(st, &hw_after, &map), ST_OK);
    /* the high-water mark never goes down; the live fill does */
    ck_assert_uint_ge(hw_after, hw_full);
    ck_assert_msg(after < 0.05, "fill after deleting everything: %f", after);
}
END_TEST

START_TEST(test_fill_counts_pinned_pages)
{
    /* a live reader (a backup, an export) pins what was freed after its snapshot: those pages
     * are not free for the fill level, or the headroom kept for revocations would be used up
     * by background writes that can only grow the file */
    int up[2], down[2];
    double pinned = -1, after = -1;
    pid_t pid;
    char c;

    put_many(400, 8000, 0);
    ck_assert_int_eq(pipe(up), 0);
    ck_assert_int_eq(pipe(down), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct store *ro = store_open(dir, MAP, db_names, 3, true);
        struct store_txn *t = NULL;

        if (ro == NULL || store_txn_begin(ro, false, &t) != ST_OK || write(up[1], "r", 1) != 1)
            _exit(1);
        if (read(down[0], &c, 1) < 0)
            _exit(1);
        store_txn_abort(t);
        _exit(0);
    }
    ck_assert_int_eq(read(up[0], &c, 1), 1);
    put_many(400, 8000, 1);
    put_many(1, 10, 0);
    put_many(1, 10, 0);
    ck_assert_int_eq(store_fill(st, &pinned), ST_OK);
    ck_assert_msg(pinned > 0.35, "fill with a reader pinning 3.2 MB: %f", pinned);
    ck_assert_int_eq(write(down[1], "x", 1), 1);
    waitpid(pid, NULL, 0);
    put_many(1, 10, 0);
    ck_assert_int_eq(store_fill(st, &after), ST_OK);
    ck_assert_msg(after < 0.05, "fill once the reader is gone: %f", after);
}
END_TEST

START_TEST(test_append_and_last)
{
    struct store_txn *t = NULL;
    uint8_t k[8] = {0}, last[8];
    size_t kl = 0;

    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_last(t, 1, last, sizeof(last), &kl), ST_NOTFOUND);
    for (int i = 1; i <= 300; i++) {
        k[6] = (uint8_t)(i >> 8);
        k[7] = (uint8_t)i;
        ck_assert_int_eq(store_txn_append(t, 1, k, 8, "v", 1), ST_OK);
    }
    /* a key that does not sort after the last one is refused, not inserted */
    k[6] = 0;
    k[7] = 7;
    ck_assert_int_eq(store_txn_append(t, 1, k, 8, "v", 1), ST_EXISTS);
    ck_assert_int_eq(store_txn_last(t, 1, last, sizeof(last), &kl), ST_OK);
    ck_assert_uint_eq(kl, 8);
    ck_assert_uint_eq(last[6], 1);
    ck_assert_uint_eq(last[7], 300 & 0xff);
    ck_assert_int_eq(store_txn_last(t, 1, last, 4, &kl), ST_INVALID);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
}
END_TEST

START_TEST(test_full_names_the_setting)
{
    /* MDB_MAP_FULL turns into a log line naming the store and the key that sizes it */
    struct store *small;
    struct store_txn *t = NULL;
    static char big[64 * 1024];
    char sub[128], logf[160], line[1024], k[16];
    int rc = ST_OK, saved, fd;
    FILE *f;
    bool named = false;

    snprintf(sub, sizeof(sub), "%s/small", dir);
    snprintf(logf, sizeof(logf), "%s/log", dir);
    small = store_open(sub, 1u << 20, db_names, 1, false);
    ck_assert_ptr_nonnull(small);
    store_set_label(small, "test audit store", "[store] map_size in test.conf");
    ck_assert(strncmp(store_name(small), "test audit store /", 18) == 0);
    ck_assert(strstr(store_name(small), "/small") != NULL);
    fflush(stderr);
    saved = dup(2);
    fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    ck_assert_int_eq(store_txn_begin(small, true, &t), ST_OK);
    for (int i = 0; i < 64 && rc == ST_OK; i++) {
        snprintf(k, sizeof(k), "%d", i);
        rc = store_txn_put(t, 0, k, strlen(k), big, sizeof(big), false);
    }
    store_txn_abort(t);
    fflush(stderr);
    dup2(saved, 2);
    close(fd);
    close(saved);
    ck_assert_int_eq(rc, ST_FULL);
    f = fopen(logf, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, "test audit store") != NULL && strstr(line, "is full") != NULL &&
            strstr(line, "[store] map_size in test.conf") != NULL)
            named = true;
    fclose(f);
    ck_assert_msg(named, "no log line naming the store and [store] map_size");
    store_close(small);
    remove_tree(sub);
}
END_TEST

static Suite *
store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("lmdb");

    tcase_add_checked_fixture(tc, setup_store, teardown_store);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_open_named_dbs);
    tcase_add_test(tc, test_open_creates_dir);
    tcase_add_test(tc, test_put_get_copy);
    tcase_add_test(tc, test_prefault);
    tcase_add_test(tc, test_prefault_reread);
    tcase_add_test(tc, test_binary_keys);
    tcase_add_test(tc, test_no_overwrite);
    tcase_add_test(tc, test_get_missing);
    tcase_add_test(tc, test_last_commit_snapshots);
    tcase_add_test(tc, test_get_small_buffer);
    tcase_add_test(tc, test_get_alloc);
    tcase_add_test(tc, test_count);
    tcase_add_test(tc, test_walk_order);
    tcase_add_test(tc, test_walk_stop_and_start);
    tcase_add_test(tc, test_txn_abort);
    tcase_add_test(tc, test_txn_del);
    tcase_add_test(tc, test_read_txn);
    tcase_add_test(tc, test_reopen_persists);
    tcase_add_test(tc, test_reopen_other_order);
    tcase_add_test(tc, test_readonly);
    tcase_add_test(tc, test_bad_db_index);
    tcase_add_test(tc, test_too_many_dbs);
    tcase_add_test(tc, test_usage);
    tcase_add_test(tc, test_map_full);
    tcase_add_test(tc, test_reader_check_clears_dead);
    tcase_add_test(tc, test_open_clears_dead_readers);
    tcase_add_test(tc, test_fill_counts_live_pages);
    tcase_add_test(tc, test_fill_counts_pinned_pages);
    tcase_add_test(tc, test_append_and_last);
    tcase_add_test(tc, test_full_names_the_setting);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(store_suite());
    int failed;

    /* failures the tests provoke are logged at err: keep the output readable */
    log_init("check_store", LOG_LVL_ERR);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
