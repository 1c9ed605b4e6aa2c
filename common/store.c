/*
 * store: LMDB wrapper (DESIGN D4). See store.h for the lifetime rules.
 */
#include "common/store.h"
#include "common/log.h"
#include "common/status.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STORE_MAX_DBS 16

struct store {
    MDB_env *env;
    MDB_dbi dbi[STORE_MAX_DBS];
    char *names[STORE_MAX_DBS];
    size_t n_dbs;
    size_t map_size;
};

struct store_txn {
    struct store *s;
    MDB_txn *txn;
};

static int
store_fail(const char *what, int rc)
{
    log_err("store: %s: %s", what, mdb_strerror(rc));
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
    s->map_size = map_size;
    if ((rc = mdb_env_create(&s->env)) != 0 ||
        (rc = mdb_env_set_maxdbs(s->env, (MDB_dbi)n_dbs + 1)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, map_size)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, 512)) != 0) {
        store_fail("environment setup", rc);
        goto fail;
    }
    if ((rc = mdb_env_open(s->env, dir, flags, 0600)) != 0) {
        log_err("store: cannot open LMDB environment %s: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    if ((rc = mdb_txn_begin(s->env, NULL, readonly ? MDB_RDONLY : 0, &txn)) != 0) {
        store_fail("begin", rc);
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
        store_fail("commit", rc);
        goto fail;
    }
    return s;
fail:
    if (txn != NULL)
        mdb_txn_abort(txn);
    store_close(s);
    return NULL;
}

void
store_close(struct store *s)
{
    if (s == NULL)
        return;
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

int
store_get(struct store *s, int db, const void *key, size_t klen, void *buf, size_t cap,
          size_t *len)
{
    MDB_txn *txn = NULL;
    MDB_val k = {klen, (void *)key}, v;
    int rc, st;

    if (!store_db_ok(s, db))
        return ST_INVALID;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return store_fail("read begin", rc);
    rc = mdb_get(txn, s->dbi[db], &k, &v);
    if (rc == MDB_NOTFOUND) {
        st = ST_NOTFOUND;
    } else if (rc != 0) {
        st = store_fail("get", rc);
    } else {
        *len = v.mv_size;
        st = v.mv_size <= cap ? ST_OK : ST_INVALID;
        if (st == ST_OK)
            memcpy(buf, v.mv_data, v.mv_size);
    }
    mdb_txn_abort(txn);
    return st;
}

int
store_get_alloc(struct store *s, int db, const void *key, size_t klen, uint8_t **val,
                size_t *len)
{
    MDB_txn *txn = NULL;
    MDB_val k = {klen, (void *)key}, v;
    int rc, st = ST_OK;

    *val = NULL;
    if (!store_db_ok(s, db))
        return ST_INVALID;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return store_fail("read begin", rc);
    rc = mdb_get(txn, s->dbi[db], &k, &v);
    if (rc == MDB_NOTFOUND) {
        st = ST_NOTFOUND;
    } else if (rc != 0) {
        st = store_fail("get", rc);
    } else if ((*val = malloc(v.mv_size ? v.mv_size : 1)) == NULL) {
        st = ST_NOMEM;
    } else {
        memcpy(*val, v.mv_data, v.mv_size);
        *len = v.mv_size;
    }
    mdb_txn_abort(txn);
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
        return store_fail("read begin", rc);
    rc = mdb_stat(txn, s->dbi[db], &stat);
    mdb_txn_abort(txn);
    if (rc != 0)
        return store_fail("stat", rc);
    *n = stat.ms_entries;
    return ST_OK;
}

int
store_txn_begin(struct store *s, bool write, struct store_txn **out)
{
    struct store_txn *t;
    int rc;

    *out = NULL;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return ST_NOMEM;
    t->s = s;
    rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    if (rc != 0) {
        free(t);
        return store_fail("begin", rc);
    }
    *out = t;
    return ST_OK;
}

int
store_txn_commit(struct store_txn *t)
{
    int rc = mdb_txn_commit(t->txn);

    free(t);
    return rc == 0 ? ST_OK : store_fail("commit", rc);
}

void
store_txn_abort(struct store_txn *t)
{
    if (t == NULL)
        return;
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
    return rc == 0 ? ST_OK : store_fail("put", rc);
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
    return rc == 0 ? ST_OK : store_fail("del", rc);
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
        return store_fail("get", rc);
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
        return store_fail("read begin", rc);
    if ((rc = mdb_cursor_open(txn, s->dbi[db], &cur)) != 0) {
        st = store_fail("cursor", rc);
        goto out;
    }
    rc = mdb_cursor_get(cur, &k, &v, start != NULL ? MDB_SET_RANGE : MDB_FIRST);
    while (rc == 0) {
        if (!fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size))
            goto out;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc != MDB_NOTFOUND)
        st = store_fail("walk", rc);
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
        return store_fail("info", rc);
    *used = (info.me_last_pgno + 1) * (size_t)stat.ms_psize;
    *map_size = info.me_mapsize;
    return ST_OK;
}
