/*
 * store: LMDB wrapper (DESIGN D4, D10). See store.h for the lifetime rules. LMDB reference:
 * lmdb.h (mdb_reader_check, MDB_APPEND, MDB_MAP_FULL); the free-page count is read from the
 * free-list database (dbi 0) the way `mdb_stat -f` does.
 */
#include "common/store.h"
#include "common/log.h"
#include "common/status.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif
#define STORE_PREFAULT_SLICE ((size_t)64 << 20)

#define STORE_MAX_DBS 16
#define STORE_MAX_READERS 512
#define STORE_FULL_LOG_EVERY_S 10 /* a full map is logged at most this often */
/* Read transactions kept reset for reuse: mdb_txn_renew() on a reset transaction keeps its
 * reader slot, where mdb_txn_begin() under MDB_NOTLS takes the shared reader-table mutex and
 * scans for a free slot on every read (the OCSP hit path reads on every request). */
#define STORE_READ_POOL 64

struct store {
    MDB_env *env;
    MDB_dbi dbi[STORE_MAX_DBS];
    char *names[STORE_MAX_DBS];
    size_t n_dbs;
    size_t map_size;
    char name[320];     /* "<label> <dir>" */
    char size_key[256]; /* the setting that sizes the map */
    _Atomic int64_t full_logged;
    pthread_mutex_t pool_lock;
    struct store_txn *pool[STORE_READ_POOL]; /* reset read transactions */
    size_t pool_n;
    pthread_t prefault; /* store_prefault_start's thread, while prefault_on */
    bool prefault_on;
    bool prefault_reread;
    atomic_bool prefault_stop;
    atomic_bool prefault_done;
    struct store_prefault_report prefault_rep; /* written by the thread before prefault_done */
};

struct store_txn {
    struct store *s;
    MDB_txn *txn;
    bool write;
};

/* A full map is the operator's problem to solve: say which store and which setting. */
static void
store_log_full(struct store *s)
{
    int64_t now = (int64_t)time(NULL), last = atomic_load(&s->full_logged);

    if (now - last < STORE_FULL_LOG_EVERY_S ||
        !atomic_compare_exchange_strong(&s->full_logged, &last, now))
        return;
    log_err("store: %s is full (map size %zu bytes reached): grow %s, or archive and rotate "
            "it",
            s->name, s->map_size, s->size_key[0] != '\0' ? s->size_key : "its map size");
}

static int
store_fail(struct store *s, const char *what, int rc)
{
    if (rc == MDB_MAP_FULL) {
        if (s != NULL) {
            store_log_full(s);
            store_reader_check(s, NULL); /* a dead reader may be what pins the space */
        }
        return ST_FULL;
    }
    log_err("store: %s: %s: %s", s != NULL ? s->name : "lmdb", what, mdb_strerror(rc));
    return rc == MDB_NOTFOUND ? ST_NOTFOUND : rc == MDB_KEYEXIST ? ST_EXISTS : ST_STORE;
}

struct store *
store_open(const char *dir, size_t map_size, const char *const *db_names, size_t n_dbs,
           bool readonly)
{
    struct store *s = NULL;
    MDB_txn *txn = NULL;
    unsigned flags = MDB_NOTLS | (readonly ? MDB_RDONLY : 0);
    int rc;

    if (n_dbs > STORE_MAX_DBS)
        goto fail;
    if (!readonly && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        log_err("store: cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto fail;
    if (pthread_mutex_init(&s->pool_lock, NULL) != 0) {
        free(s);
        s = NULL;
        goto fail;
    }
    s->map_size = map_size;
    snprintf(s->name, sizeof(s->name), "store %s", dir);
    if ((rc = mdb_env_create(&s->env)) != 0 ||
        (rc = mdb_env_set_maxdbs(s->env, (MDB_dbi)n_dbs + 1)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, map_size)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, STORE_MAX_READERS)) != 0) {
        store_fail(s, "environment setup", rc);
        goto fail;
    }
    if ((rc = mdb_env_open(s->env, dir, flags, 0600)) != 0) {
        log_err("store: cannot open LMDB environment %s: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    /* readers of processes killed meanwhile would pin old pages from the first write on */
    if (store_reader_check(s, NULL) != ST_OK)
        goto fail;
    if ((rc = mdb_txn_begin(s->env, NULL, readonly ? MDB_RDONLY : 0, &txn)) != 0) {
        store_fail(s, "begin", rc);
        goto fail;
    }
    for (size_t i = 0; i < n_dbs; i++) {
        rc = mdb_dbi_open(txn, db_names[i], readonly ? 0 : MDB_CREATE, &s->dbi[i]);
        if (rc != 0) {
            log_err("store: database %s in %s: %s", db_names[i], dir, mdb_strerror(rc));
            goto fail;
        }
        s->names[i] = strdup(db_names[i]);
        if (s->names[i] == NULL)
            goto fail;
        s->n_dbs = i + 1;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        txn = NULL;
        store_fail(s, "commit", rc);
        goto fail;
    }
    return s;
fail:
    if (txn != NULL)
        mdb_txn_abort(txn);
    store_close(s);
    return NULL;
}

/* Where LMDB mapped the data file (open as fd) in this process: its line in /proc/self/maps
 * (LMDB tells the address only with MDB_FIXEDMAP). NULL when not found; *vma_len is the whole
 * mapping's length (the map size), *len the part the file covers. */
static char *
store_map_find(int fd, size_t *vma_len, size_t *len)
{
    struct stat st;
    char line[PATH_MAX + 128];
    char *addr = NULL;
    FILE *f;

    if (fstat(fd, &st) != 0 || (f = fopen("/proc/self/maps", "re")) == NULL)
        return NULL;
    while (addr == NULL && fgets(line, sizeof(line), f) != NULL) {
        unsigned long lo, hi, off, ino;
        unsigned maj, mnr;

        if (sscanf(line, "%lx-%lx %*s %lx %x:%x %lu", &lo, &hi, &off, &maj, &mnr, &ino) == 6 &&
            off == 0 && ino == (unsigned long)st.st_ino && maj == major(st.st_dev) &&
            mnr == minor(st.st_dev) && hi > lo) {
            addr = (char *)(uintptr_t)lo;
            *vma_len = *len = (size_t)(hi - lo);
        }
    }
    fclose(f);
    if (addr != NULL && (size_t)st.st_size < *len)
        *len = (size_t)st.st_size; /* the map is larger than the file: only the file's pages */
    return addr;
}

/* Bytes of the mapping at map that the kernel maps with 2 MiB pages (FilePmdMapped in
 * /proc/self/smaps; 0 when it does not say). */
static size_t
store_map_huge(const char *map)
{
    char line[PATH_MAX + 128], head[32];
    unsigned long kib;
    bool in = false;
    size_t huge = 0;
    FILE *f;

    if ((f = fopen("/proc/self/smaps", "re")) == NULL)
        return 0;
    snprintf(head, sizeof(head), "%lx-", (unsigned long)(uintptr_t)map);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (!in) {
            in = strncmp(line, head, strlen(head)) == 0;
        } else if (sscanf(line, "FilePmdMapped: %lu kB", &kib) == 1) {
            huge = (size_t)kib << 10;
            break;
        } else {
            const char *sp = strchr(line, ' ');

            if (sp == NULL || sp == line || sp[-1] != ':')
                break; /* not a "Field: value" line: the next mapping's header */
        }
    }
    fclose(f);
    return huge;
}

static void *
store_prefault_run(void *arg)
{
    struct store *s = arg;
    struct store_prefault_report *rep = &s->prefault_rep;
    struct timespec t0, t1;
    size_t len = 0, vma_len = 0;
    mdb_filehandle_t fd;
    long page = sysconf(_SC_PAGESIZE);
    char *map = NULL;
    int err = 0;

    if (mdb_env_get_fd(s->env, &fd) != 0 || page <= 0 ||
        (map = store_map_find(fd, &vma_len, &len)) == NULL) {
        log_warn("store: %s: pages not mapped ahead (its mapping was not found); reads map them "
                 "as they go",
                 s->name);
        atomic_store(&s->prefault_done, true);
        return NULL;
    }
    len -= len % (size_t)page;
    /* 2 MiB pages where the kernel can: a store read at random over gigabytes otherwise
     * misses the TLB on most reads. The kernel then reads what is not cached in 2 MiB folios
     * and maps them whole (file systems with large folios: XFS, ext4 from Linux 6.16); the
     * whole mapping, so that it stays one (LMDB never maps it again) */
    if (madvise(map, vma_len, MADV_HUGEPAGE) != 0)
        log_info("store: %s: no 2 MiB pages asked for (madvise: %s)", s->name, strerror(errno));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (rep->mapped < len && !atomic_load(&s->prefault_stop)) {
        size_t n =
            len - rep->mapped < STORE_PREFAULT_SLICE ? len - rep->mapped : STORE_PREFAULT_SLICE;

        /* reread: the slice's cached pages dropped first (this process's mappings of them
         * too: a mapped page is never dropped; another process's stay, and so do dirty ones),
         * so that they are read again, into 2 MiB folios. The data is the file's: readers
         * fault it in again meanwhile */
        if (s->prefault_reread && madvise(map + rep->mapped, n, MADV_DONTNEED) == 0 &&
            posix_fadvise(fd, (off_t)rep->mapped, (off_t)n, POSIX_FADV_DONTNEED) == 0)
            rep->reread += n;
        if (madvise(map + rep->mapped, n, MADV_POPULATE_READ) != 0) {
            err = errno;
            break;
        }
        rep->mapped += n;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    rep->huge = store_map_huge(map);
    rep->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (err != 0)
        log_warn("store: %s: pages not mapped ahead (madvise: %s); reads map them as they go",
                 s->name, strerror(err));
    else
        log_info("store: %s: %.1f MiB of pages mapped ahead in %.2f s%s, %.1f MiB of them in "
                 "2 MiB pages%s",
                 s->name, (double)rep->mapped / (1 << 20), rep->seconds,
                 rep->mapped < len ? " (stopped)" : "", (double)rep->huge / (1 << 20),
                 rep->reread > 0 ? " (read again from disk)" : "");
    atomic_store(&s->prefault_done, true);
    return NULL;
}

int
store_prefault_start(struct store *s, bool reread)
{
    if (s == NULL || s->prefault_on)
        return ST_INVALID;
    atomic_store(&s->prefault_stop, false);
    atomic_store(&s->prefault_done, false);
    memset(&s->prefault_rep, 0, sizeof(s->prefault_rep));
    s->prefault_reread = reread;
    if (pthread_create(&s->prefault, NULL, store_prefault_run, s) != 0) {
        log_warn("store: %s: no thread to map the pages ahead", s->name);
        return ST_INVALID;
    }
    s->prefault_on = true;
    return ST_OK;
}

bool
store_prefault_report(struct store *s, struct store_prefault_report *out)
{
    if (s == NULL || !s->prefault_on || !atomic_load(&s->prefault_done))
        return false;
    *out = s->prefault_rep;
    return true;
}

void
store_close(struct store *s)
{
    if (s == NULL)
        return;
    if (s->prefault_on) {
        atomic_store(&s->prefault_stop, true);
        pthread_join(s->prefault, NULL);
        s->prefault_on = false;
    }
    for (size_t i = 0; i < s->pool_n; i++) {
        mdb_txn_abort(s->pool[i]->txn);
        free(s->pool[i]);
    }
    pthread_mutex_destroy(&s->pool_lock);
    if (s->env != NULL)
        mdb_env_close(s->env);
    for (size_t i = 0; i < s->n_dbs; i++)
        free(s->names[i]);
    free(s);
}

int
store_db(const struct store *s, const char *name)
{
    for (size_t i = 0; i < s->n_dbs; i++)
        if (strcmp(s->names[i], name) == 0)
            return (int)i;
    return -1;
}

static bool
store_db_ok(const struct store *s, int db)
{
    return db >= 0 && (size_t)db < s->n_dbs;
}

/* A read transaction on the latest snapshot: a pooled one renewed, else a new one. */
static int
read_begin(struct store *s, struct store_txn **out)
{
    struct store_txn *t = NULL;
    int rc;

    pthread_mutex_lock(&s->pool_lock);
    if (s->pool_n > 0)
        t = s->pool[--s->pool_n];
    pthread_mutex_unlock(&s->pool_lock);
    if (t != NULL) {
        if ((rc = mdb_txn_renew(t->txn)) == 0) {
            *out = t;
            return ST_OK;
        }
        mdb_txn_abort(t->txn);
        free(t);
        return store_fail(s, "read renew", rc);
    }
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return ST_NOMEM;
    t->s = s;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t->txn)) != 0) {
        free(t);
        return store_fail(s, "read begin", rc);
    }
    *out = t;
    return ST_OK;
}

/* End a read transaction: its snapshot is released at once (mdb_txn_reset), the transaction
 * kept for the next reader while the pool has room. */
static void
read_end(struct store_txn *t)
{
    struct store *s = t->s;

    mdb_txn_reset(t->txn);
    pthread_mutex_lock(&s->pool_lock);
    if (s->pool_n < STORE_READ_POOL) {
        s->pool[s->pool_n++] = t;
        t = NULL;
    }
    pthread_mutex_unlock(&s->pool_lock);
    if (t != NULL) {
        mdb_txn_abort(t->txn);
        free(t);
    }
}

int
store_get(struct store *s, int db, const void *key, size_t klen, void *buf, size_t cap, size_t *len)
{
    return store_get_snap(s, db, key, klen, buf, cap, len, NULL);
}

int
store_get_snap(struct store *s, int db, const void *key, size_t klen, void *buf, size_t cap,
               size_t *len, uint64_t *snap)
{
    struct store_txn *t = NULL;
    MDB_val k = {klen, (void *)key}, v;
    int rc, st;

    if (!store_db_ok(s, db))
        return ST_INVALID;
    if ((st = read_begin(s, &t)) != ST_OK)
        return st;
    if (snap != NULL)
        *snap = (uint64_t)mdb_txn_id(t->txn);
    rc = mdb_get(t->txn, s->dbi[db], &k, &v);
    if (rc == MDB_NOTFOUND) {
        st = ST_NOTFOUND;
    } else if (rc != 0) {
        st = store_fail(s, "get", rc);
    } else {
        *len = v.mv_size;
        st = v.mv_size <= cap ? ST_OK : ST_INVALID;
        if (st == ST_OK)
            memcpy(buf, v.mv_data, v.mv_size);
    }
    read_end(t);
    return st;
}

uint64_t
store_last_commit(struct store *s)
{
    MDB_envinfo info;

    /* the newer of the two meta pages, mapped at the start of the file: no transaction */
    if (mdb_env_info(s->env, &info) != 0)
        return 0;
    return (uint64_t)info.me_last_txnid;
}

int
store_get_alloc(struct store *s, int db, const void *key, size_t klen, uint8_t **val, size_t *len)
{
    struct store_txn *t = NULL;
    MDB_val k = {klen, (void *)key}, v;
    int rc, st = ST_OK;

    *val = NULL;
    if (!store_db_ok(s, db))
        return ST_INVALID;
    if ((st = read_begin(s, &t)) != ST_OK)
        return st;
    rc = mdb_get(t->txn, s->dbi[db], &k, &v);
    if (rc == MDB_NOTFOUND) {
        st = ST_NOTFOUND;
    } else if (rc != 0) {
        st = store_fail(s, "get", rc);
    } else if ((*val = malloc(v.mv_size ? v.mv_size : 1)) == NULL) {
        st = ST_NOMEM;
    } else {
        memcpy(*val, v.mv_data, v.mv_size);
        *len = v.mv_size;
    }
    read_end(t);
    return st;
}

int
store_count(struct store *s, int db, size_t *n)
{
    MDB_txn *txn = NULL;
    MDB_stat stat;
    int rc;

    if (!store_db_ok(s, db))
        return ST_INVALID;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return store_fail(s, "read begin", rc);
    rc = mdb_stat(txn, s->dbi[db], &stat);
    mdb_txn_abort(txn);
    if (rc != 0)
        return store_fail(s, "stat", rc);
    *n = stat.ms_entries;
    return ST_OK;
}

int
store_txn_begin(struct store *s, bool write, struct store_txn **out)
{
    struct store_txn *t;
    int rc;

    *out = NULL;
    if (!write)
        return read_begin(s, out);
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return ST_NOMEM;
    t->s = s;
    t->write = true;
    rc = mdb_txn_begin(s->env, NULL, 0, &t->txn);
    if (rc != 0) {
        free(t);
        return store_fail(s, "begin", rc);
    }
    *out = t;
    return ST_OK;
}

int
store_txn_commit(struct store_txn *t)
{
    struct store *s = t->s;
    int rc;

    if (!t->write) {
        read_end(t);
        return ST_OK;
    }
    rc = mdb_txn_commit(t->txn);
    free(t);
    return rc == 0 ? ST_OK : store_fail(s, "commit", rc);
}

void
store_txn_abort(struct store_txn *t)
{
    if (t == NULL)
        return;
    if (!t->write) {
        read_end(t);
        return;
    }
    mdb_txn_abort(t->txn);
    free(t);
}

int
store_txn_put(struct store_txn *t, int db, const void *key, size_t klen, const void *val,
              size_t vlen, bool no_overwrite)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc;

    if (!store_db_ok(t->s, db))
        return ST_INVALID;
    rc = mdb_put(t->txn, t->s->dbi[db], &k, &v, no_overwrite ? MDB_NOOVERWRITE : 0);
    if (rc == MDB_KEYEXIST)
        return ST_EXISTS;
    return rc == 0 ? ST_OK : store_fail(t->s, "put", rc);
}

int
store_txn_del(struct store_txn *t, int db, const void *key, size_t klen)
{
    MDB_val k = {klen, (void *)key};
    int rc;

    if (!store_db_ok(t->s, db))
        return ST_INVALID;
    rc = mdb_del(t->txn, t->s->dbi[db], &k, NULL);
    if (rc == MDB_NOTFOUND)
        return ST_NOTFOUND;
    return rc == 0 ? ST_OK : store_fail(t->s, "del", rc);
}

int
store_txn_get(struct store_txn *t, int db, const void *key, size_t klen, const void **val,
              size_t *vlen)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc;

    if (!store_db_ok(t->s, db))
        return ST_INVALID;
    rc = mdb_get(t->txn, t->s->dbi[db], &k, &v);
    if (rc == MDB_NOTFOUND)
        return ST_NOTFOUND;
    if (rc != 0)
        return store_fail(t->s, "get", rc);
    *val = v.mv_data;
    *vlen = v.mv_size;
    return ST_OK;
}

int
store_walk(struct store *s, int db, const void *start, size_t slen, store_walk_fn fn, void *ctx)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k = {slen, (void *)start}, v;
    int rc, st = ST_OK;

    if (!store_db_ok(s, db))
        return ST_INVALID;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return store_fail(s, "read begin", rc);
    if ((rc = mdb_cursor_open(txn, s->dbi[db], &cur)) != 0) {
        st = store_fail(s, "cursor", rc);
        goto out;
    }
    rc = mdb_cursor_get(cur, &k, &v, start != NULL ? MDB_SET_RANGE : MDB_FIRST);
    while (rc == 0) {
        if (!fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size))
            goto out;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc != MDB_NOTFOUND)
        st = store_fail(s, "walk", rc);
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return st;
}

int
store_usage(struct store *s, size_t *used, size_t *map_size)
{
    MDB_envinfo info;
    MDB_stat stat;
    int rc;

    if ((rc = mdb_env_info(s->env, &info)) != 0 || (rc = mdb_env_stat(s->env, &stat)) != 0)
        return store_fail(s, "info", rc);
    *used = (info.me_last_pgno + 1) * (size_t)stat.ms_psize;
    *map_size = info.me_mapsize;
    return ST_OK;
}

bool
store_exists(const char *dir)
{
    char path[PATH_MAX + 16];
    struct stat sb;

    snprintf(path, sizeof(path), "%.*s/data.mdb", PATH_MAX - 1, dir);
    return stat(path, &sb) == 0;
}

void
store_set_label(struct store *s, const char *label, const char *size_key)
{
    char dir[256] = "";
    const char *path = NULL;

    if (mdb_env_get_path(s->env, &path) == 0 && path != NULL)
        snprintf(dir, sizeof(dir), "%s", path);
    snprintf(s->name, sizeof(s->name), "%s %s", label != NULL ? label : "store", dir);
    snprintf(s->size_key, sizeof(s->size_key), "%s", size_key != NULL ? size_key : "");
}

const char *
store_name(const struct store *s)
{
    return s->name;
}

const char *
store_size_key(const struct store *s)
{
    return s->size_key;
}

int
store_reader_check(struct store *s, int *cleared)
{
    int dead = 0, rc = mdb_reader_check(s->env, &dead);

    if (cleared != NULL)
        *cleared = dead;
    if (rc != 0)
        return store_fail(s, "reader check", rc);
    if (dead > 0)
        log_notice("store: %s: cleared %d reader slot(s) left by processes that are gone", s->name,
                   dead);
    return ST_OK;
}

/* A reader slot of another process (mdb_reader_list's lines: pid, thread, txnid or "-"). */
static int
store_reader_other_line(const char *msg, void *ctx)
{
    unsigned long *pid = ctx, p;

    if (*pid == 0 && sscanf(msg, "%lu", &p) == 1 && p != 0 && p != (unsigned long)getpid())
        *pid = p;
    return 0;
}

int
store_reader_other(struct store *s, unsigned long *pid)
{
    int st = store_reader_check(s, NULL);

    *pid = 0;
    if (st == ST_OK && mdb_reader_list(s->env, store_reader_other_line, pid) < 0)
        st = store_fail(s, "reader list", EINVAL);
    return st;
}

/* The oldest snapshot a reader holds (mdb_reader_list's lines: pid, thread, txnid or "-"). */
struct store_oldest {
    size_t txnid;
    bool any;
};

static int
store_reader_line(const char *msg, void *ctx)
{
    struct store_oldest *o = ctx;
    unsigned long pid;
    unsigned long long thr, tx;
    char txs[32], *end = NULL;

    if (sscanf(msg, "%lu %llx %31s", &pid, &thr, txs) != 3 || txs[0] == '-')
        return 0;
    tx = strtoull(txs, &end, 10);
    if (end != txs && (!o->any || tx < o->txnid)) {
        o->txnid = (size_t)tx;
        o->any = true;
    }
    return 0;
}

int
store_fill(struct store *s, double *fill)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_envinfo info;
    MDB_stat stat;
    MDB_val k, v;
    size_t free_pages = 0, used, map_pages;
    struct store_oldest oldest = {0, false};
    int rc, st = ST_OK;

    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return store_fail(s, "read begin", rc);
    /* pages freed after the oldest snapshot a reader holds cannot be reused yet: a long
     * reader (a backup, an export) pins them, so they count as used */
    mdb_reader_list(s->env, store_reader_line, &oldest);
    if ((rc = mdb_env_info(s->env, &info)) != 0 || (rc = mdb_env_stat(s->env, &stat)) != 0 ||
        (rc = mdb_cursor_open(txn, 0, &cur)) != 0) {
        st = store_fail(s, "fill", rc);
        goto out;
    }
    /* the free list (dbi 0): id of the transaction that freed them -> list of page numbers
     * whose first element is its length; reusable only when freed before the oldest reader */
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
        if (v.mv_size >= sizeof(size_t) && k.mv_size == sizeof(size_t) &&
            (!oldest.any || *(const size_t *)k.mv_data < oldest.txnid))
            free_pages += *(const size_t *)v.mv_data;
    if (rc != MDB_NOTFOUND) {
        st = store_fail(s, "free list", rc);
        goto out;
    }
    used = info.me_last_pgno + 1;
    used = free_pages < used ? used - free_pages : 0;
    map_pages = info.me_mapsize / stat.ms_psize;
    *fill = map_pages > 0 ? (double)used / (double)map_pages : 1.0;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return st;
}

int
store_txn_append(struct store_txn *t, int db, const void *key, size_t klen, const void *val,
                 size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc;

    if (!store_db_ok(t->s, db))
        return ST_INVALID;
    rc = mdb_put(t->txn, t->s->dbi[db], &k, &v, MDB_APPEND);
    if (rc == MDB_KEYEXIST)
        return ST_EXISTS;
    return rc == 0 ? ST_OK : store_fail(t->s, "append", rc);
}

int
store_txn_last(struct store_txn *t, int db, void *key, size_t cap, size_t *klen)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, st;

    if (!store_db_ok(t->s, db))
        return ST_INVALID;
    if ((rc = mdb_cursor_open(t->txn, t->s->dbi[db], &cur)) != 0)
        return store_fail(t->s, "cursor", rc);
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == MDB_NOTFOUND) {
        st = ST_NOTFOUND;
    } else if (rc != 0) {
        st = store_fail(t->s, "last", rc);
    } else {
        *klen = k.mv_size;
        st = k.mv_size <= cap ? ST_OK : ST_INVALID;
        if (st == ST_OK)
            memcpy(key, k.mv_data, k.mv_size);
    }
    mdb_cursor_close(cur);
    return st;
}
