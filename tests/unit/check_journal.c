/*
 * check_journal: unit suite of common/journal, the write-ahead journal in front of tsad's
 * audit log (DESIGN D5, D10), against real files and a real LMDB environment:
 *  - CRC-32C check value (RFC 3720 §B.4);
 *  - records acknowledged in write order with consecutive sequence numbers, then copied into
 *    the database under those keys;
 *  - a process that dies (no close) loses no acknowledged record: the next open recovers
 *    them into the database;
 *  - power cut: the last write cut at every byte offset (zeros, or garbage, from there on):
 *    recovery keeps every earlier group and drops the torn one whole; a full recovery then
 *    continues the sequence;
 *  - segments are reused once applied, and stale groups in them are never recovered again;
 *  - a full database keeps records durable in the journal, appends end with ST_FULL when no
 *    segment is free, and the records reach the database once it is grown;
 *  - a gap between the database and the journal is refused.
 */
#include "common/commit.h"
#include "common/crc32c.h"
#include "common/journal.h"
#include "common/log.h"
#include "common/status.h"
#include "common/store.h"
#include "tests/unit/unitutil.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAP (64u << 20)
#define SEG (256u * 1024u)

static const char *const names[] = {"log"};
static char dir[64], sdir[128], jdir[128];
static struct store *st;
static struct commit *cm;
static struct journal *jr;

static void
setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/check_journal.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sdir, sizeof(sdir), "%s/store", dir);
    snprintf(jdir, sizeof(jdir), "%s/store/journal", dir);
}

static void
close_all(void)
{
    journal_close(jr);
    jr = NULL;
    commit_free(cm);
    cm = NULL;
    store_close(st);
    st = NULL;
}

static void
teardown(void)
{
    close_all();
    remove_tree(dir);
}

/* Segment writes as the test wants them (NULL: pwrite). */
static journal_pwrite_fn test_pwrite;

/* Open store, pipeline and journal at `sd`/`jd`; the journal may fail (returns it). */
static struct journal *
open_at(const char *sd, const char *jd, size_t map, unsigned segs_max, double delay)
{
    struct journal_config jc = {.dir = jd,
                                .segment_size = SEG,
                                .segments_max = segs_max,
                                .apply_delay = delay,
                                .pwrite_fn = test_pwrite};

    st = store_open(sd, map, names, 1, false);
    ck_assert_ptr_nonnull(st);
    cm = commit_new(st, &(struct commit_config){.name = "journal-test"});
    ck_assert_ptr_nonnull(cm);
    jr = journal_open(&jc, cm, 0);
    return jr;
}

static void
open_all(size_t map, unsigned segs_max, double delay)
{
    ck_assert_ptr_nonnull(open_at(sdir, jdir, map, segs_max, delay));
}

/* Appending and waiting for acknowledgements. */
struct acks {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t done, ok, full;
    uint64_t last_seq;
    bool in_order;
};

struct trec {
    struct journal_rec r;
    char payload[1100];
    struct acks *a;
};

static void
trec_done(struct journal_rec *r, int status)
{
    struct trec *t = r->user;
    struct acks *a = t->a;

    pthread_mutex_lock(&a->lock);
    a->done++;
    if (status == ST_OK) {
        a->ok++;
        if (r->seq != a->last_seq + 1 && a->last_seq != 0)
            a->in_order = false;
        a->last_seq = r->seq;
    } else if (status == ST_FULL) {
        a->full++;
    }
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    free(t);
}

static void
acks_init(struct acks *a)
{
    memset(a, 0, sizeof(*a));
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    a->in_order = true;
}

/* Append n records "<tag>-<i>" padded to `size` bytes and wait for their callbacks. */
static void
append_n(struct acks *a, const char *tag, size_t n, size_t size)
{
    size_t target;

    pthread_mutex_lock(&a->lock);
    target = a->done + n;
    pthread_mutex_unlock(&a->lock);
    for (size_t i = 0; i < n; i++) {
        struct trec *t = calloc(1, sizeof(*t));

        ck_assert_ptr_nonnull(t);
        char name[64];
        int m = snprintf(name, sizeof(name), "%s-%zu", tag, i);

        memset(t->payload, '.', size);
        memcpy(t->payload, name, (size_t)m < size ? (size_t)m : size);
        t->r.data = t->payload;
        t->r.len = size;
        t->r.done = trec_done;
        t->r.user = t;
        t->a = a;
        ck_assert_int_eq(journal_append(jr, &t->r), ST_OK);
    }
    pthread_mutex_lock(&a->lock);
    while (a->done < target)
        pthread_cond_wait(&a->cond, &a->lock);
    pthread_mutex_unlock(&a->lock);
}

static size_t
db_count(void)
{
    size_t n = 0;

    ck_assert_int_eq(store_count(st, 0, &n), ST_OK);
    return n;
}

/* The value under sequence number seq starts with `prefix`. */
static bool
db_has(uint64_t seq, const char *prefix)
{
    uint8_t key[8], *val = NULL;
    size_t len = 0;
    bool ok;

    journal_key(seq, key);
    if (store_get_alloc(st, 0, key, 8, &val, &len) != ST_OK)
        return false;
    ok = len >= strlen(prefix) && memcmp(val, prefix, strlen(prefix)) == 0;
    free(val);
    return ok;
}

START_TEST(test_crc32c_check_value)
{
    ck_assert_uint_eq(crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    ck_assert_uint_eq(crc32c(0, "", 0), 0);
}
END_TEST

START_TEST(test_append_then_applied)
{
    struct acks a;
    char p[32];

    acks_init(&a);
    open_all(MAP, 4, 0.01);
    append_n(&a, "one", 1, 20);
    append_n(&a, "many", 300, 700);
    ck_assert_uint_eq(a.ok, 301);
    ck_assert(a.in_order);
    ck_assert_uint_eq(a.last_seq, 301);
    journal_sync_applied(jr);
    ck_assert_uint_eq(db_count(), 301);
    ck_assert(db_has(1, "one-0"));
    for (int i = 0; i < 300; i++) {
        snprintf(p, sizeof(p), "many-%d.", i);
        ck_assert_msg(db_has((uint64_t)i + 2, p), "record %d", i);
    }
}
END_TEST

START_TEST(test_bad_length_refused)
{
    struct journal_rec r = {.data = "x", .len = 0, .done = trec_done};

    open_all(MAP, 4, 0.01);
    ck_assert_int_eq(journal_append(jr, &r), ST_INVALID);
    r.len = JOURNAL_RECORD_MAX + 1;
    ck_assert_int_eq(journal_append(jr, &r), ST_INVALID);
}
END_TEST

/* A child appends records (`groups` groups of `per_group`, then one record of last_size
 * bytes when that is not 0) and dies without closing anything (kill -9 in effect). */
static void
child_dies_after_last(size_t groups, size_t per_group, size_t size, const char *tag,
                      size_t last_size)
{
    pid_t pid = fork();
    int status = 0;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct acks a;
        char t[32];

        acks_init(&a);
        if (open_at(sdir, jdir, MAP, 4, 1000) == NULL) /* nothing applied before it dies */
            _exit(3);
        for (size_t g = 0; g < groups; g++) {
            snprintf(t, sizeof(t), "%s%zu", tag, g);
            append_n(&a, t, per_group, size);
        }
        if (last_size > 0)
            append_n(&a, "last", 1, last_size);
        _exit(a.ok == groups * per_group + (last_size > 0) ? 0 : 4);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
child_dies_after(size_t groups, size_t per_group, size_t size, const char *tag)
{
    child_dies_after_last(groups, per_group, size, tag, 0);
}

START_TEST(test_crash_recovers_acknowledged)
{
    struct acks a;

    acks_init(&a);
    open_all(MAP, 4, 0.01);
    append_n(&a, "before", 10, 100);
    close_all(); /* 10 records in the database */
    child_dies_after(20, 3, 500, "g");
    open_all(MAP, 4, 0.01);
    ck_assert_uint_eq(db_count(), 70);
    ck_assert(db_has(10, "before-9"));
    ck_assert(db_has(11, "g0-0"));
    ck_assert(db_has(70, "g19-2"));
    /* the sequence goes on after the recovered records */
    append_n(&a, "after", 1, 50);
    ck_assert_uint_eq(a.last_seq, 71);
    journal_sync_applied(jr);
    ck_assert(db_has(71, "after-0"));
}
END_TEST

/* The active segment (highest first sequence number) and its last group's [start, end). */
static void
last_group(const char *jd, char *seg, size_t cap, size_t *start, size_t *end)
{
    uint64_t best = 0;
    uint8_t h[40];

    for (int i = 0; i < 8; i++) {
        char p[256];
        int fd;

        snprintf(p, sizeof(p), "%s/journal.%04d", jd, i);
        if ((fd = open(p, O_RDONLY)) < 0)
            continue;
        if (pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) && memcmp(h, "TSJRNL01", 8) == 0) {
            uint64_t first = 0;

            for (int b = 7; b >= 0; b--)
                first = first << 8 | h[16 + b];
            if (first >= best) {
                best = first;
                snprintf(seg, cap, "%s", p);
            }
        }
        close(fd);
    }
    {
        int fd = open(seg, O_RDONLY);
        size_t off = JOURNAL_SEG_HEADER;
        uint8_t g[JOURNAL_GROUP_HEADER];

        ck_assert_int_ge(fd, 0);
        *start = *end = 0;
        while (pread(fd, g, sizeof(g), (off_t)off) == (ssize_t)sizeof(g) && g[0] == 'J' &&
               g[1] == 'R' && g[2] == 'N' && g[3] == 'L') {
            uint32_t body = (uint32_t)g[16] | (uint32_t)g[17] << 8 | (uint32_t)g[18] << 16 |
                            (uint32_t)g[19] << 24;

            *start = off;
            *end = off + JOURNAL_GROUP_HEADER + body;
            off = *end;
        }
        close(fd);
    }
    ck_assert_uint_gt(*end, *start);
}

static void
copy_file(const char *from, const char *to)
{
    char buf[65536];
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ssize_t n;

    ck_assert_int_ge(in, 0);
    ck_assert_int_ge(out, 0);
    while ((n = read(in, buf, sizeof(buf))) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
}

static void
copy_dir(const char *from, const char *to)
{
    DIR *d = opendir(from);
    struct dirent *e;

    mkdir(to, 0700);
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        char a[512], b[512];
        struct stat sb;

        if (e->d_name[0] == '.')
            continue;
        snprintf(a, sizeof(a), "%s/%s", from, e->d_name);
        snprintf(b, sizeof(b), "%s/%s", to, e->d_name);
        if (stat(a, &sb) == 0 && S_ISREG(sb.st_mode))
            copy_file(a, b);
    }
    closedir(d);
}

/* Overwrite [from, to) of a file with zeros or pseudo-random bytes. */
static void
damage(const char *path, size_t from, size_t to, bool garbage, unsigned seed)
{
    int fd = open(path, O_WRONLY);

    ck_assert_int_ge(fd, 0);
    for (size_t o = from; o < to; o++) {
        uint8_t b = 0;

        if (garbage) {
            seed = seed * 1103515245u + 12345u;
            b = (uint8_t)(seed >> 16);
        }
        ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)o), 1);
    }
    close(fd);
}

struct seen {
    uint64_t n, last;
    bool order;
};

static void
seen_one(void *ctx, uint64_t seq, const void *data, size_t len)
{
    struct seen *s = ctx;

    (void)data;
    (void)len;
    if (s->n > 0 && seq != s->last + 1)
        s->order = false;
    s->n++;
    s->last = seq;
}

START_TEST(test_power_cut_every_offset)
{
    char seg[256], scratch[160], sseg[320];
    size_t start, end, total_before;
    struct seen all = {0, 0, true};

    /* 6 groups: 5 of 2 records, then a last one of a single 300-byte record */
    child_dies_after_last(5, 2, 120, "p", 300);
    ck_assert_int_eq(journal_scan(jdir, seen_one, &all), ST_OK);
    ck_assert_uint_eq(all.n, 11);
    ck_assert(all.order);
    total_before = all.n - 1;
    last_group(jdir, seg, sizeof(seg), &start, &end);
    snprintf(scratch, sizeof(scratch), "%s/cut", dir);
    snprintf(sseg, sizeof(sseg), "%s/%s", scratch, strrchr(seg, '/') + 1);
    for (size_t o = start; o <= end; o++) {
        for (int garbage = 0; garbage < 2; garbage++) {
            struct seen s = {0, 0, true};

            if (o == end && garbage)
                continue;
            copy_dir(jdir, scratch);
            damage(sseg, o, end, garbage, (unsigned)o);
            ck_assert_int_eq(journal_scan(scratch, seen_one, &s), ST_OK);
            ck_assert(s.order);
            /* the torn group is dropped whole; the complete one is kept */
            ck_assert_msg(s.n == (o == end ? total_before + 1 : total_before),
                          "cut at %zu (%s): %llu records", o, garbage ? "garbage" : "zeros",
                          (unsigned long long)s.n);
        }
    }
    /* a full recovery from a cut in the middle of the last write */
    copy_dir(jdir, scratch);
    damage(sseg, start + (end - start) / 2, end, false, 0);
    {
        char s2[192];
        struct acks a;

        snprintf(s2, sizeof(s2), "%s/store2", dir);
        acks_init(&a);
        ck_assert_ptr_nonnull(open_at(s2, scratch, MAP, 4, 0.01));
        ck_assert_uint_eq(db_count(), total_before);
        ck_assert(db_has(10, "p4-1"));
        append_n(&a, "new", 3, 40);
        ck_assert_uint_eq(a.last_seq, total_before + 3);
        close_all();
        /* and again: the new records are found, the dropped one never comes back */
        ck_assert_ptr_nonnull(open_at(s2, scratch, MAP, 4, 0.01));
        ck_assert_uint_eq(db_count(), total_before + 3);
        ck_assert(db_has(total_before + 1, "new-0"));
    }
}
END_TEST

START_TEST(test_segments_reused)
{
    struct acks a;
    struct journal_stats js;

    acks_init(&a);
    open_all(MAP, 3, 0.005);
    /* about 2 MB through 3 segments of 256 KiB: each is reused several times */
    for (int b = 0; b < 40; b++)
        append_n(&a, "r", 50, 1000);
    ck_assert_uint_eq(a.ok, 2000);
    ck_assert(a.in_order);
    journal_sync_applied(jr);
    journal_stats(jr, &js);
    ck_assert_uint_le(js.segments, 3);
    ck_assert_uint_eq(js.applied_seq, 2000);
    ck_assert_uint_eq(db_count(), 2000);
    close_all();
    /* stale groups in reused segments are not recovered a second time */
    open_all(MAP, 3, 0.005);
    ck_assert_uint_eq(db_count(), 2000);
    append_n(&a, "next", 1, 10);
    ck_assert_uint_eq(a.last_seq, 2001);
}
END_TEST

START_TEST(test_full_database_keeps_records)
{
    struct acks a;
    size_t ok;

    acks_init(&a);
    /* a 1 MB database cannot take 2 x 256 KiB of journal... plus everything after */
    open_all(1u << 20, 2, 0.005);
    for (int b = 0; b < 100 && a.full == 0; b++)
        append_n(&a, "f", 20, 1000);
    ck_assert_msg(a.full > 0, "appends never reported the journal full");
    ok = a.ok;
    close_all();
    /* grown: every acknowledged record reaches the database */
    open_all(MAP, 2, 0.005);
    ck_assert_uint_eq(db_count(), ok);
    ck_assert_uint_eq(a.last_seq, ok);
    ck_assert(db_has(ok, "f-"));
}
END_TEST

START_TEST(test_gap_refused)
{
    struct store_txn *t = NULL;
    uint8_t key[8];
    char other[192];
    struct journal *j2;

    /* database A ends at 9: the journal continues at 10 */
    st = store_open(sdir, MAP, names, 1, false);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    for (uint64_t s = 1; s <= 9; s++) {
        journal_key(s, key);
        ck_assert_int_eq(store_txn_append(t, 0, key, 8, "a", 1), ST_OK);
    }
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    store_close(st);
    st = NULL;
    child_dies_after(2, 2, 50, "j");
    /* database B ends at 5: records 6..9 would be missing */
    snprintf(other, sizeof(other), "%s/other", dir);
    st = store_open(other, MAP, names, 1, false);
    ck_assert_int_eq(store_txn_begin(st, true, &t), ST_OK);
    for (uint64_t s = 1; s <= 5; s++) {
        journal_key(s, key);
        ck_assert_int_eq(store_txn_append(t, 0, key, 8, "b", 1), ST_OK);
    }
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    cm = commit_new(st, &(struct commit_config){.name = "journal-test"});
    j2 = journal_open(&(struct journal_config){.dir = jdir, .segment_size = SEG}, cm, 0);
    ck_assert_ptr_null(j2);
    ck_assert_uint_eq(db_count(), 5); /* nothing written past the gap */
}
END_TEST

/* Injected failures: group writes (those longer than a segment header) number n_fail_from
 * and the next n_fail_more - 1 fail with EIO; the first of them after writing the data (it
 * reached the disk, the error came late), the others without writing. */
static int writes_seen, fail_from, fail_count;

static ssize_t
flaky_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    /* groups only: not segment headers (36 bytes), nor the zero fill of a new segment */
    if (n > 64 && ((const uint8_t *)buf)[0] != 0) {
        writes_seen++;
        if (writes_seen >= fail_from && writes_seen < fail_from + fail_count) {
            if (writes_seen == fail_from && pwrite(fd, buf, n, off) != (ssize_t)n)
                return -1;
            errno = EIO;
            return -1;
        }
    }
    return pwrite(fd, buf, n, off);
}

/* A child appends groups of one record each through a flaky disk, notes which were
 * acknowledged, and dies without closing (apply_delay long: nothing reaches the database). */
static void
child_flaky(int groups, int from, int count, const char *acked)
{
    pid_t pid = fork();
    int status = 0;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        FILE *f = fopen(acked, "w");
        struct acks a;
        char tag[16];

        test_pwrite = flaky_pwrite;
        writes_seen = 0;
        fail_from = from;
        fail_count = count;
        acks_init(&a);
        if (f == NULL || open_at(sdir, jdir, MAP, 4, 1000) == NULL)
            _exit(3);
        for (int g = 0; g < groups; g++) {
            size_t ok = a.ok;

            snprintf(tag, sizeof(tag), "x%d", g);
            append_n(&a, tag, 1, 100 + (size_t)g); /* lengths differ: no lookalike */
            if (a.ok > ok)
                fprintf(f, "%llu %s\n", (unsigned long long)a.last_seq, tag);
        }
        fclose(f);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Every acknowledged record (file of "SEQ TAG") is in the database under its number with its
 * own payload. Returns how many. */
static int
check_acked(const char *acked)
{
    FILE *f = fopen(acked, "r");
    unsigned long long seq;
    char tag[16], prefix[24];
    int n = 0;

    ck_assert_ptr_nonnull(f);
    while (fscanf(f, "%llu %15s", &seq, tag) == 2) {
        snprintf(prefix, sizeof(prefix), "%s-0.", tag);
        ck_assert_msg(db_has(seq, prefix), "acknowledged record %llu (%s) lost", seq, tag);
        n++;
    }
    fclose(f);
    return n;
}

START_TEST(test_eio_write_landed)
{
    /* a write that reached the disk but reported EIO: its group is written again, and no
     * sequence number is given to two records */
    char acked[160];
    struct acks a;

    snprintf(acked, sizeof(acked), "%s/acked", dir);
    child_flaky(12, 4, 1, acked);
    acks_init(&a);
    open_all(MAP, 4, 0.01);
    ck_assert_int_eq(check_acked(acked), 12); /* the retry succeeded: all 12 acknowledged */
    ck_assert_uint_eq(db_count(), 12);
    append_n(&a, "next", 1, 10);
    ck_assert_uint_eq(a.last_seq, 13);
}
END_TEST

START_TEST(test_eio_twice_stops)
{
    /* two failures in a row: that group is refused, and so is everything after it, until a
     * restart; the restart recovers every acknowledged record */
    char acked[160];
    struct acks a;
    struct journal_stats js;

    snprintf(acked, sizeof(acked), "%s/acked", dir);
    child_flaky(10, 4, 2, acked);
    acks_init(&a);
    open_all(MAP, 4, 0.01);
    ck_assert_int_eq(check_acked(acked), 3); /* groups 1..3; 4 failed; 5..10 refused */
    /* the group that landed before its EIO comes back (a withheld token's record: harmless) */
    ck_assert_uint_le(db_count(), 4);
    journal_stats(jr, &js);
    ck_assert(!js.write_failed);
    append_n(&a, "next", 1, 10);
    ck_assert_uint_eq(a.ok, 1);
}
END_TEST

START_TEST(test_eio_stopped_refuses)
{
    struct acks a;
    struct journal_stats js;

    test_pwrite = flaky_pwrite;
    writes_seen = 0;
    fail_from = 2;
    fail_count = 1000;
    acks_init(&a);
    open_all(MAP, 4, 0.01);
    append_n(&a, "a", 1, 100);
    append_n(&a, "b", 1, 100);
    append_n(&a, "c", 1, 100);
    ck_assert_uint_eq(a.ok, 1);
    ck_assert_uint_eq(a.done, 3);
    journal_stats(jr, &js);
    ck_assert(js.write_failed);
    test_pwrite = NULL;
}
END_TEST

START_TEST(test_eio_retry_full_stops)
{
    /* the retry of a failed write finds no free segment (the database is not taking records):
     * the numbers of the failed group may be on disk, so the journal stops rather than give
     * them to the next records */
    struct store_txn *held = NULL;
    struct journal_stats js;
    struct acks a;

    test_pwrite = flaky_pwrite;
    writes_seen = 0;
    fail_from = 260; /* a write in the second segment, the first one being full */
    fail_count = 1;
    acks_init(&a);
    open_all(MAP, 2, 0.005);
    ck_assert_int_eq(store_txn_begin(st, true, &held), ST_OK); /* the applier waits */
    for (int i = 0; i < 262 && a.done == a.ok; i++)
        append_n(&a, "w", 1, 1000);
    journal_stats(jr, &js);
    ck_assert_msg(js.write_failed, "the journal goes on after a failed write it could not redo");
    append_n(&a, "after", 1, 1000);
    ck_assert_uint_lt(a.ok, a.done);
    store_txn_abort(held);
    test_pwrite = NULL;
}
END_TEST

/* The disk full: a new segment cannot be created (its zero fill fails with ENOSPC); writes
 * into the segments already there succeed, as on a real filesystem. */
static bool no_space;

static ssize_t
nospace_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (no_space && n > 0 && ((const uint8_t *)buf)[0] == 0) { /* a group starts "JRNL" */
        errno = ENOSPC;
        return -1;
    }
    return pwrite(fd, buf, n, off);
}

START_TEST(test_no_space_for_segment_recovers)
{
    /* issue 8 (disk faults): with the database not taking records, the journal fills the
     * segments it has and needs a new one, which the full disk refuses. Nothing of those
     * records was written: they are refused, but the journal does not stop, and once the
     * database takes records again (segments free) appends succeed without a restart.
     * Before the fix, the failed creation counted as a failed write: "no more tokens until
     * tsad is restarted". */
    struct store_txn *held = NULL;
    struct journal_stats js;
    struct acks a;
    size_t ok_before;

    test_pwrite = nospace_pwrite;
    no_space = false;
    acks_init(&a);
    open_all(MAP, 8, 0.005);
    no_space = true;
    ck_assert_int_eq(store_txn_begin(st, true, &held), ST_OK); /* the applier waits */
    for (int i = 0; i < 600 && a.done == a.ok; i++)
        append_n(&a, "w", 1, 1000);
    ck_assert_msg(a.done > a.ok, "the journal took records without a segment for them");
    journal_stats(jr, &js);
    ck_assert_msg(!js.write_failed, "a segment that could not be created stopped the journal");
    ck_assert_uint_eq(js.segments, 2);
    append_n(&a, "refused", 1, 1000); /* still no room: refused at once */
    ck_assert_uint_lt(a.ok, a.done);
    /* space back, the database takes records again: no restart needed */
    ok_before = a.ok;
    no_space = false;
    store_txn_abort(held);
    for (int i = 0; i < 100 && a.ok == ok_before; i++) {
        struct timespec pause = {0, 20000000};

        append_n(&a, "after", 1, 1000);
        if (a.ok == ok_before)
            nanosleep(&pause, NULL);
    }
    ck_assert_uint_gt(a.ok, ok_before);
    journal_close(jr); /* applies everything: each acknowledged record, none else */
    jr = NULL;
    ck_assert_uint_eq(db_count(), a.ok);
    test_pwrite = NULL;
}
END_TEST

/* Flip one byte at `off` of the active segment's second group. */
static void
flip_second_group(void)
{
    char seg[256];
    size_t start, end, second;
    int fd;
    uint8_t g[JOURNAL_GROUP_HEADER], b;
    uint32_t body;

    last_group(jdir, seg, sizeof(seg), &start, &end);
    fd = open(seg, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, g, sizeof(g), JOURNAL_SEG_HEADER), (ssize_t)sizeof(g));
    body = (uint32_t)g[16] | (uint32_t)g[17] << 8 | (uint32_t)g[18] << 16 | (uint32_t)g[19] << 24;
    second = JOURNAL_SEG_HEADER + JOURNAL_GROUP_HEADER + body;
    ck_assert_uint_lt(second, start);
    ck_assert_int_eq(pread(fd, &b, 1, (off_t)second + 40), 1);
    b ^= 0x20;
    ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)second + 40), 1);
    close(fd);
}

START_TEST(test_damage_not_skipped)
{
    /* a flipped byte in the middle of the written part, with records after it that are not in
     * the database: recovery refuses, instead of dropping them as if the write had been torn */
    child_dies_after(6, 1, 200, "d");
    flip_second_group();
    st = store_open(sdir, MAP, names, 1, false);
    cm = commit_new(st, &(struct commit_config){.name = "journal-test"});
    jr = journal_open(&(struct journal_config){.dir = jdir, .segment_size = SEG}, cm, 0);
    ck_assert_ptr_null(jr);
    ck_assert_uint_eq(db_count(), 0); /* refused as a whole */
    ck_assert_int_eq(journal_scan(jdir, seen_one, &(struct seen){0, 0, true}), ST_STORE);
}
END_TEST

START_TEST(test_unreadable_segment_refused)
{
    /* a segment that cannot be read may hold the records not yet in the database: refused,
     * not skipped (here a directory where a segment file should be) */
    char bad[192];

    child_dies_after(3, 1, 100, "u");
    snprintf(bad, sizeof(bad), "%s/journal.0005", jdir);
    ck_assert_int_eq(mkdir(bad, 0700), 0);
    ck_assert_int_eq(journal_scan(jdir, seen_one, &(struct seen){0, 0, true}), ST_IO);
    st = store_open(sdir, MAP, names, 1, false);
    cm = commit_new(st, &(struct commit_config){.name = "journal-test"});
    jr = journal_open(&(struct journal_config){.dir = jdir, .segment_size = SEG}, cm, 0);
    ck_assert_ptr_null(jr);
    rmdir(bad);
}
END_TEST

START_TEST(test_damaged_header_refused)
{
    /* the header of the segment holding records not yet in the database, damaged: refused,
     * not taken for a segment never started */
    char seg[256];
    size_t start, end;
    uint8_t b;
    int fd;

    child_dies_after(4, 1, 100, "h");
    last_group(jdir, seg, sizeof(seg), &start, &end);
    fd = open(seg, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, &b, 1, 9), 1);
    b ^= 0x01;
    ck_assert_int_eq(pwrite(fd, &b, 1, 9), 1); /* a bit of the salt */
    close(fd);
    ck_assert_int_eq(journal_scan(jdir, seen_one, &(struct seen){0, 0, true}), ST_STORE);
    st = store_open(sdir, MAP, names, 1, false);
    cm = commit_new(st, &(struct commit_config){.name = "journal-test"});
    jr = journal_open(&(struct journal_config){.dir = jdir, .segment_size = SEG}, cm, 0);
    ck_assert_ptr_null(jr);
}
END_TEST

START_TEST(test_damage_in_applied_part)
{
    /* the same damage where every record is in the database already: nothing is lost, start */
    struct acks a;

    acks_init(&a);
    open_all(MAP, 4, 0.01);
    for (int i = 0; i < 6; i++)
        append_n(&a, "e", 1, 200);
    close_all();
    flip_second_group();
    open_all(MAP, 4, 0.01);
    ck_assert_uint_eq(db_count(), 6);
}
END_TEST

static Suite *
journal_suite(void)
{
    Suite *s = suite_create("journal");
    TCase *tc = tcase_create("journal");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_crc32c_check_value);
    tcase_add_test(tc, test_append_then_applied);
    tcase_add_test(tc, test_bad_length_refused);
    tcase_add_test(tc, test_crash_recovers_acknowledged);
    tcase_add_test(tc, test_power_cut_every_offset);
    tcase_add_test(tc, test_segments_reused);
    tcase_add_test(tc, test_full_database_keeps_records);
    tcase_add_test(tc, test_gap_refused);
    tcase_add_test(tc, test_eio_write_landed);
    tcase_add_test(tc, test_eio_twice_stops);
    tcase_add_test(tc, test_eio_stopped_refuses);
    tcase_add_test(tc, test_eio_retry_full_stops);
    tcase_add_test(tc, test_no_space_for_segment_recovers);
    tcase_add_test(tc, test_damage_not_skipped);
    tcase_add_test(tc, test_damage_in_applied_part);
    tcase_add_test(tc, test_unreadable_segment_refused);
    tcase_add_test(tc, test_damaged_header_refused);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(journal_suite());
    int failed;

    log_init("check_journal", LOG_LVL_ERR);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
