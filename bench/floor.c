/*
 * floor: the durable-commit floor of this machine, a limit of the bench harness (DESIGN D9).
 * tsad answers only once a token's audit record is on stable storage, so no token latency can
 * go below the time the filesystem takes to make a group of records durable. This probe
 * measures that time, in a directory of the filesystem under test, for groups of N records of
 * BYTES each, three ways:
 *
 *   lmdb     one LMDB write transaction putting N records (keys: 8-byte big-endian sequence
 *            numbers, MDB_APPEND), committed with the default, synchronous environment flags
 *            (the data pages and then the meta page are synced: two device flushes), on a
 *            fresh environment; the time from mdb_txn_begin to the return of mdb_txn_commit
 *   journal  one pwrite(2) of N * BYTES at increasing offsets into a file opened O_DSYNC that
 *            was filled with zeros and fsync()ed beforehand: an overwrite of allocated blocks,
 *            no metadata to sync, the cheapest durable append a write-ahead journal can do
 *   append   for reference, the same write appended to a file that grows (O_DSYNC|O_APPEND):
 *            every write also syncs the new size and block allocation
 *
 * Each is repeated K times after a few warm-up commits; lmdb and journal report the p50 and
 * p90 in milliseconds, append its p50. Text on stdout, and JSON with --json.
 *
 *   floor --dir DIR --size BYTES --records N[,N...] [--iterations K] [--json FILE]
 *
 * Everything is written in a temporary subdirectory of DIR (floor.XXXXXX), removed at the end.
 */
#include "common/log.h"
#include "common/status.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/magic.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define FL_MAX_SIZES 16
#define FL_WARMUP 5u
#define FL_MAX_BYTES (64u << 20) /* one group of records at most */
#define FL_FILL_CHUNK (1u << 20)

struct fl_opts {
    const char *dir, *json;
    unsigned long size;
    unsigned long records[FL_MAX_SIZES];
    unsigned nrecords;
    unsigned iterations;
};

/* Milliseconds of the K timed commits of one method, sorted. */
struct fl_series {
    double *ms;
    unsigned n;
};

/* Results for one N. */
struct fl_result {
    unsigned long records;
    double lmdb_p50, lmdb_p90, journal_p50, journal_p90, append_p50;
};

/* One method's run: the group written, where, and the times. */
struct fl_run {
    const struct fl_opts *o;
    unsigned long records;
    size_t bytes; /* records * size */
    char path[PATH_MAX];
    uint8_t *buf;
    struct fl_series series;
};

static double
fl_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
fl_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank quantile of a sorted series. */
static double
fl_quantile(const struct fl_series *s, double q)
{
    unsigned long rank = (unsigned long)(q * s->n + 0.999999);

    if (s->n == 0)
        return 0;
    if (rank == 0)
        rank = 1;
    return s->ms[rank > s->n ? s->n - 1 : rank - 1];
}

static void
fl_series_sort(struct fl_series *s)
{
    qsort(s->ms, s->n, sizeof(s->ms[0]), fl_cmp_double);
}

/* fsync a directory, so that a file created in it survives a crash. */
static int
fl_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), st = ST_OK;

    if (fd < 0)
        return ST_IO;
    if (fsync(fd) != 0)
        st = ST_IO;
    if (close(fd) != 0)
        st = ST_IO;
    return st;
}

static const char *
fl_fs_name(const char *dir)
{
    struct statfs sf;

    if (statfs(dir, &sf) != 0)
        return "unknown";
    switch ((unsigned long)sf.f_type) {
    case EXT4_SUPER_MAGIC:
        return "ext4";
    case XFS_SUPER_MAGIC:
        return "xfs";
    case BTRFS_SUPER_MAGIC:
        return "btrfs";
    case TMPFS_MAGIC:
        return "tmpfs";
    case OVERLAYFS_SUPER_MAGIC:
        return "overlayfs";
    case F2FS_SUPER_MAGIC:
        return "f2fs";
    case NFS_SUPER_MAGIC:
        return "nfs";
    default:
        return "other";
    }
}

/* ---- lmdb ---- */

static int
fl_lmdb_fail(const char *what, int rc)
{
    log_err("lmdb %s: %s", what, mdb_strerror(rc));
    return ST_STORE;
}

/* One timed commit of r->records records, sequence numbers from *seq. */
static int
fl_lmdb_commit(struct fl_run *r, MDB_env *env, MDB_dbi dbi, uint64_t *seq, double *ms)
{
    MDB_txn *txn = NULL;
    uint8_t kb[8];
    MDB_val k = {sizeof(kb), kb}, v = {r->o->size, r->buf};
    unsigned long i;
    unsigned b;
    double t0 = fl_now_ms();
    int rc;

    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
        return fl_lmdb_fail("begin", rc);
    for (i = 0; i < r->records; i++, (*seq)++) {
        for (b = 0; b < 8; b++)
            kb[b] = (uint8_t)(*seq >> (56 - 8 * b));
        if ((rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND)) != 0) {
            mdb_txn_abort(txn);
            return fl_lmdb_fail("put", rc);
        }
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return fl_lmdb_fail("commit", rc);
    *ms = fl_now_ms() - t0;
    return ST_OK;
}

static int
fl_lmdb_open(struct fl_run *r, MDB_env **env, MDB_dbi *dbi)
{
    size_t total = (size_t)(r->o->iterations + FL_WARMUP) * r->bytes * 2 + (64u << 20);
    MDB_txn *txn = NULL;
    int rc;

    total = (total + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);
    if (mkdir(r->path, 0700) != 0) {
        log_err("cannot create %s: %s", r->path, strerror(errno));
        return ST_IO;
    }
    if ((rc = mdb_env_create(env)) != 0)
        return fl_lmdb_fail("create", rc);
    if ((rc = mdb_env_set_mapsize(*env, total)) != 0 ||
        (rc = mdb_env_open(*env, r->path, 0, 0600)) != 0)
        return fl_lmdb_fail("open", rc);
    if ((rc = mdb_txn_begin(*env, NULL, 0, &txn)) != 0)
        return fl_lmdb_fail("begin", rc);
    if ((rc = mdb_dbi_open(txn, NULL, 0, dbi)) != 0) {
        mdb_txn_abort(txn);
        return fl_lmdb_fail("dbi", rc);
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return fl_lmdb_fail("commit", rc);
    return ST_OK;
}

/* Remove an LMDB environment directory (data.mdb, lock.mdb). */
static void
fl_lmdb_remove(const char *dir)
{
    char p[PATH_MAX + 16];

    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    if (unlink(p) != 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", p, strerror(errno));
    snprintf(p, sizeof(p), "%s/lock.mdb", dir);
    if (unlink(p) != 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", p, strerror(errno));
    if (rmdir(dir) != 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", dir, strerror(errno));
}

static int
fl_lmdb(struct fl_run *r)
{
    MDB_env *env = NULL;
    MDB_dbi dbi = 0;
    uint64_t seq = 1;
    double ms;
    unsigned i;
    int st;

    if ((st = fl_lmdb_open(r, &env, &dbi)) != ST_OK)
        goto out;
    for (i = 0; i < FL_WARMUP && st == ST_OK; i++)
        st = fl_lmdb_commit(r, env, dbi, &seq, &ms);
    for (i = 0; i < r->o->iterations && st == ST_OK; i++)
        st = fl_lmdb_commit(r, env, dbi, &seq, &r->series.ms[r->series.n++]);
out:
    if (env != NULL)
        mdb_env_close(env);
    fl_lmdb_remove(r->path);
    return st;
}

/* ---- journal: O_DSYNC overwrite of pre-allocated blocks ---- */

/* Fill the file with zeros for every write to come, and make that durable. */
static int
fl_prefill(int fd, size_t len)
{
    static const uint8_t zero[FL_FILL_CHUNK];
    size_t done = 0, n;
    ssize_t w;

    while (done < len) {
        n = len - done < sizeof(zero) ? len - done : sizeof(zero);
        w = pwrite(fd, zero, n, (off_t)done);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return ST_IO;
        }
        done += (size_t)w;
    }
    return fsync(fd) == 0 ? ST_OK : ST_IO;
}

/* One timed write of the group at off; a short write is a failure. */
static int
fl_write_once(const struct fl_run *r, int fd, off_t off, bool append, double *ms)
{
    double t0 = fl_now_ms();
    ssize_t w = append ? write(fd, r->buf, r->bytes) : pwrite(fd, r->buf, r->bytes, off);

    if (w < 0 || (size_t)w != r->bytes) {
        log_err("write %s: %s", r->path, w < 0 ? strerror(errno) : "short write");
        return ST_IO;
    }
    *ms = fl_now_ms() - t0;
    return ST_OK;
}

static int
fl_journal_prepare(const struct fl_run *r, const char *dir)
{
    size_t len = (size_t)(r->o->iterations + FL_WARMUP) * r->bytes;
    int fd = open(r->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), st;

    if (fd < 0) {
        log_err("cannot create %s: %s", r->path, strerror(errno));
        return ST_IO;
    }
    st = fl_prefill(fd, len);
    if (close(fd) != 0)
        st = ST_IO;
    if (st == ST_OK)
        st = fl_sync_dir(dir);
    if (st != ST_OK)
        log_err("cannot pre-fill %s: %s", r->path, strerror(errno));
    return st;
}

static int
fl_journal(struct fl_run *r, const char *dir)
{
    int fd = -1, st;
    double ms;
    unsigned i;
    off_t off = 0;

    if ((st = fl_journal_prepare(r, dir)) != ST_OK)
        goto out;
    if ((fd = open(r->path, O_WRONLY | O_DSYNC | O_CLOEXEC)) < 0) {
        log_err("cannot open %s: %s", r->path, strerror(errno));
        st = ST_IO;
        goto out;
    }
    for (i = 0; i < FL_WARMUP && st == ST_OK; i++, off += (off_t)r->bytes)
        st = fl_write_once(r, fd, off, false, &ms);
    for (i = 0; i < r->o->iterations && st == ST_OK; i++, off += (off_t)r->bytes)
        st = fl_write_once(r, fd, off, false, &r->series.ms[r->series.n++]);
out:
    if (fd >= 0 && close(fd) != 0 && st == ST_OK)
        st = ST_IO;
    if (unlink(r->path) != 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", r->path, strerror(errno));
    return st;
}

/* ---- append: O_DSYNC write that grows the file ---- */

static int
fl_append(struct fl_run *r, const char *dir)
{
    int fd = open(r->path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_DSYNC | O_CLOEXEC, 0600);
    int st = ST_OK;
    double ms;
    unsigned i;

    if (fd < 0) {
        log_err("cannot create %s: %s", r->path, strerror(errno));
        return ST_IO;
    }
    st = fl_sync_dir(dir);
    for (i = 0; i < FL_WARMUP && st == ST_OK; i++)
        st = fl_write_once(r, fd, 0, true, &ms);
    for (i = 0; i < r->o->iterations && st == ST_OK; i++)
        st = fl_write_once(r, fd, 0, true, &r->series.ms[r->series.n++]);
    if (close(fd) != 0 && st == ST_OK)
        st = ST_IO;
    if (unlink(r->path) != 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", r->path, strerror(errno));
    return st;
}

/* ---- one N ---- */

enum fl_method { FL_LMDB, FL_JOURNAL, FL_APPEND };

static int
fl_method(struct fl_run *r, const char *tmp, enum fl_method m)
{
    static const char *const name[] = {"lmdb", "journal", "append"};
    int st;

    r->series.n = 0;
    if ((size_t)snprintf(r->path, sizeof(r->path), "%s/%s-%lu", tmp, name[m], r->records) >=
        sizeof(r->path))
        return ST_INVALID;
    if (m == FL_LMDB)
        st = fl_lmdb(r);
    else if (m == FL_JOURNAL)
        st = fl_journal(r, tmp);
    else
        st = fl_append(r, tmp);
    if (st == ST_OK)
        fl_series_sort(&r->series);
    return st;
}

static int
fl_measure(const struct fl_opts *o, const char *tmp, unsigned long records, struct fl_result *res)
{
    struct fl_run r = {.o = o, .records = records, .bytes = records * o->size};
    size_t i;
    int st = ST_NOMEM;

    r.buf = malloc(r.bytes);
    r.series.ms = calloc(o->iterations, sizeof(double));
    if (r.buf == NULL || r.series.ms == NULL)
        goto out;
    for (i = 0; i < r.bytes; i++) /* not zeros: no filesystem may shortcut them */
        r.buf[i] = (uint8_t)(i * 131 + 7);
    res->records = records;
    if ((st = fl_method(&r, tmp, FL_LMDB)) != ST_OK)
        goto out;
    res->lmdb_p50 = fl_quantile(&r.series, 0.5);
    res->lmdb_p90 = fl_quantile(&r.series, 0.9);
    if ((st = fl_method(&r, tmp, FL_JOURNAL)) != ST_OK)
        goto out;
    res->journal_p50 = fl_quantile(&r.series, 0.5);
    res->journal_p90 = fl_quantile(&r.series, 0.9);
    if ((st = fl_method(&r, tmp, FL_APPEND)) != ST_OK)
        goto out;
    res->append_p50 = fl_quantile(&r.series, 0.5);
out:
    free(r.buf);
    free(r.series.ms);
    return st;
}

/* ---- report ---- */

static void
fl_print(const struct fl_opts *o, const char *fs, const struct fl_result *res, unsigned n)
{
    unsigned i;

    printf("floor: %s (%s), %lu-byte records, %u commits each after %u warm-up\n", o->dir, fs,
           o->size, o->iterations, FL_WARMUP);
    printf("  %8s %10s | %-18s | %-18s | %s\n", "records", "bytes", "lmdb p50 / p90 ms",
           "journal p50 / p90", "append p50 (growing file)");
    for (i = 0; i < n; i++)
        printf("  %8lu %10lu | %8.3f / %7.3f | %8.3f / %7.3f | %8.3f\n", res[i].records,
               res[i].records * o->size, res[i].lmdb_p50, res[i].lmdb_p90, res[i].journal_p50,
               res[i].journal_p90, res[i].append_p50);
}

static void
fl_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
    fputc('"', f);
}

static int
fl_json(const struct fl_opts *o, const char *fs, const struct fl_result *res, unsigned n)
{
    FILE *f = fopen(o->json, "w");
    unsigned i;

    if (f == NULL) {
        log_err("cannot write %s: %s", o->json, strerror(errno));
        return ST_IO;
    }
    fprintf(f, "{\"dir\": ");
    fl_json_string(f, o->dir);
    fprintf(f, ", \"filesystem\": \"%s\", \"record_bytes\": %lu, \"iterations\": %u, ", fs, o->size,
            o->iterations);
    fprintf(f, "\"warmup\": %u, \"results\": [", FL_WARMUP);
    for (i = 0; i < n; i++) {
        fprintf(f,
                "%s\n  {\"records\": %lu, \"bytes\": %lu, "
                "\"lmdb_ms\": {\"p50\": %.4f, \"p90\": %.4f}, "
                "\"journal_ms\": {\"p50\": %.4f, \"p90\": %.4f}, \"append_ms\": {\"p50\": %.4f}}",
                i ? "," : "", res[i].records, res[i].records * o->size, res[i].lmdb_p50,
                res[i].lmdb_p90, res[i].journal_p50, res[i].journal_p90, res[i].append_p50);
    }
    fprintf(f, "\n]}\n");
    return fclose(f) == 0 ? ST_OK : ST_IO;
}

/* ---- arguments ---- */

static bool
fl_parse_ulong(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || (*end != '\0' && *end != ',') || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool
fl_parse_records(struct fl_opts *o, const char *s)
{
    const char *p = s;

    o->nrecords = 0;
    for (;;) {
        if (o->nrecords == FL_MAX_SIZES ||
            !fl_parse_ulong(p, 1, FL_MAX_BYTES, &o->records[o->nrecords]))
            return false;
        o->nrecords++;
        if ((p = strchr(p, ',')) == NULL)
            return true;
        p++;
    }
}

static int
fl_args(struct fl_opts *o, int argc, char **argv)
{
    static const struct option lo[] = {{"dir", 1, NULL, 'd'},     {"size", 1, NULL, 's'},
                                       {"records", 1, NULL, 'r'}, {"iterations", 1, NULL, 'k'},
                                       {"json", 1, NULL, 'j'},    {NULL, 0, NULL, 0}};
    unsigned long v = 200;
    unsigned i;
    int c;
    bool ok = true;

    *o = (struct fl_opts){.iterations = 200};
    while (ok && (c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 'd')
            o->dir = optarg;
        else if (c == 'j')
            o->json = optarg;
        else if (c == 's')
            ok = fl_parse_ulong(optarg, 1, FL_MAX_BYTES, &o->size) && !strchr(optarg, ',');
        else if (c == 'r')
            ok = fl_parse_records(o, optarg);
        else if (c == 'k')
            ok = fl_parse_ulong(optarg, 1, 100000, &v) && !strchr(optarg, ',');
        else
            ok = false;
    }
    o->iterations = (unsigned)v;
    for (i = 0; ok && i < o->nrecords; i++)
        ok = o->records[i] <= FL_MAX_BYTES / (o->size ? o->size : 1);
    if (!ok || optind != argc || o->dir == NULL || o->size == 0 || o->nrecords == 0)
        return ST_INVALID;
    return ST_OK;
}

static int
fl_run_all(const struct fl_opts *o, const char *tmp, struct fl_result *res)
{
    unsigned i;
    int st = ST_OK;

    for (i = 0; i < o->nrecords && st == ST_OK; i++)
        st = fl_measure(o, tmp, o->records[i], &res[i]);
    return st;
}

int
main(int argc, char **argv)
{
    struct fl_opts o;
    struct fl_result res[FL_MAX_SIZES] = {{0}};
    char tmp[PATH_MAX];
    const char *fs;
    int st;

    log_init("floor", LOG_LVL_NOTICE);
    if (fl_args(&o, argc, argv) != ST_OK) {
        fprintf(stderr, "usage: floor --dir DIR --size BYTES --records N[,N...] "
                        "[--iterations K] [--json FILE]\n");
        return 2;
    }
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/floor.XXXXXX", o.dir) >= sizeof(tmp) ||
        mkdtemp(tmp) == NULL) {
        log_err("cannot create a directory in %s: %s", o.dir, strerror(errno));
        return 1;
    }
    fs = fl_fs_name(tmp);
    st = fl_run_all(&o, tmp, res);
    if (rmdir(tmp) != 0)
        log_warn("cannot remove %s: %s", tmp, strerror(errno));
    if (st == ST_OK)
        fl_print(&o, fs, res, o.nrecords);
    if (st == ST_OK && o.json != NULL)
        st = fl_json(&o, fs, res, o.nrecords);
    return st == ST_OK ? 0 : 1;
}
