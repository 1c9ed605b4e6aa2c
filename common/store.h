/*
 * store: the LMDB environment of a daemon's data directory (DESIGN D4).
 *
 * Named databases are opened once at start (store_open() lists them) and referred to by the
 * index returned by store_db(). Reads copy values out before their read transaction ends, so
 * no pointer into the map outlives a call, and no transaction is held across network I/O.
 * Writes go through an explicit write transaction so that a batch of records commits (and
 * fsyncs) once.
 *
 * Daemons never write through store_txn_begin(write) on a request path: every write of a
 * daemon goes through its store's commit pipeline (common/commit.h, DESIGN D10). Tools
 * (ocspctl) and the pipeline's own writer thread use the transaction calls below.
 *
 * Hygiene: store_open() clears reader slots left by processes that died (mdb_reader_check);
 * the commit pipeline does it again periodically and whenever the map is full. A full map
 * (MDB_MAP_FULL) is reported as ST_FULL with a log line naming the store and the config key
 * that sizes it (store_set_label()).
 *
 * Thread-safety: the environment is opened with MDB_NOTLS; store_get()/store_count() may be
 * called from any thread; a struct store_txn belongs to the thread that began it. LMDB allows
 * one write transaction at a time: store_txn_begin(write) waits for the previous one.
 */
#ifndef COMMON_STORE_H
#define COMMON_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_txn;

/* Open (creating the directory if missing) an environment with the named databases.
 * map_size: maximum size of the data file. readonly: open for reading only.
 * NULL on failure, with the reason logged. */
struct store *store_open(const char *dir, size_t map_size, const char *const *db_names,
                         size_t n_dbs, bool readonly);
void store_close(struct store *s);
/* Map the store's pages into this process ahead of use, in a background thread: the data
 * file's length, 64 MiB at a time (madvise MADV_POPULATE_READ; the pages are read from disk
 * when they are not cached). A daemon whose reads are spread over a large store (ocspd answers
 * uniformly over millions of certificates) otherwise pays a page fault on most reads for
 * minutes after each start. The mapping asks for 2 MiB pages (MADV_HUGEPAGE): where the file
 * system caches files in large folios, what is read from disk is mapped 2 MiB at a time, and
 * reads spread over gigabytes miss the TLB far less often. Pages cached already stay as they
 * are (4 KiB after the store was written, say by ocspctl presign); with reread, each slice's
 * cached pages are dropped first (those no other process maps, and not dirty ones) so that
 * they are read again from disk, the whole file at each start. Logged when done, with the
 * time it took and the bytes in 2 MiB pages, or as a warning when the mapping is not found or
 * the kernel cannot populate it (before Linux 5.14). store_close stops it (between two
 * slices) and waits for it. ST_OK, or ST_INVALID when started already or no thread could be
 * made. */
int store_prefault_start(struct store *s, bool reread);
/* What the prefault did, once it has ended (false before, or when never started). */
struct store_prefault_report {
    size_t mapped;  /* bytes of the data file mapped */
    size_t reread;  /* bytes whose cached pages were dropped first (reread) */
    size_t huge;    /* bytes of the mapping in 2 MiB pages at the end */
    double seconds; /* the time it took */
};
bool store_prefault_report(struct store *s, struct store_prefault_report *out);
/* Whether an environment was created in dir (its data file exists); errno set when not. */
bool store_exists(const char *dir);

/* Name the store for log lines: `label` (e.g. "tsad audit store") and `size_key`, the setting
 * that sizes it (e.g. "[store] map_size in /etc/tsad/tsad.conf"). Both copied; call before the
 * store is shared between threads. */
void store_set_label(struct store *s, const char *label, const char *size_key);
/* "<label> <dir>" for messages (never NULL). */
const char *store_name(const struct store *s);
/* The hint naming the setting that sizes the store ("" when unset). */
const char *store_size_key(const struct store *s);

/* Clear the reader slots of processes that are gone (a reader killed with kill -9 pins its
 * snapshot, and every page freed after it, until then). *cleared gets the number cleared
 * (logged when > 0). ST_OK or ST_STORE. Thread-safe. */
int store_reader_check(struct store *s, int *cleared);

/* The id of another live process that has the store open, as LMDB's reader table records it
 * (a process holds a reader slot once it has read: the slots of processes that are gone are
 * cleared first); 0 when there is none. A process that has only written is not seen. ST_OK or
 * ST_STORE. */
int store_reader_other(struct store *s, unsigned long *pid);

/* Live fill of the map: pages holding data or pinned by a reader (the file's pages in use
 * minus the free pages that can be reused, i.e. freed before the oldest snapshot a reader
 * holds) over the pages the map may grow to, 0..1. Thread-safe; walks the free list, so meant
 * for periodic checks, not for every write. */
int store_fill(struct store *s, double *fill);

/* Index of a database named at open; -1 when unknown. */
int store_db(const struct store *s, const char *name);

/* Copy the value of `key` into buf (cap bytes). *len gets the full value length even when it
 * did not fit (then ST_INVALID). ST_NOTFOUND when absent, ST_STORE on LMDB failure. */
int store_get(struct store *s, int db, const void *key, size_t klen, void *buf, size_t cap,
              size_t *len);
/* Same, and *snap gets the snapshot it was read in: the id of the last transaction committed
 * before it (see store_last_commit). */
int store_get_snap(struct store *s, int db, const void *key, size_t klen, void *buf, size_t cap,
                   size_t *len, uint64_t *snap);
/* The id of the last transaction committed to the store, by any process, read from its meta
 * pages without a transaction (a few loads). Ids only grow within one data file: a value read
 * in a snapshot (store_get_snap) that equals it means nothing was committed since that
 * snapshot, so what the snapshot read is still what the store holds. A commit that has
 * returned to its writer is seen here by any later call (LMDB writes the meta page before the
 * commit returns). A data file replaced under a running process (a restored copy moved in)
 * starts other ids and is not seen at all: the store is never replaced while it is open. */
uint64_t store_last_commit(struct store *s);
/* Same, allocating: *val (caller frees with free()). */
int store_get_alloc(struct store *s, int db, const void *key, size_t klen, uint8_t **val,
                    size_t *len);
/* Number of entries in a database. */
int store_count(struct store *s, int db, size_t *n);

int store_txn_begin(struct store *s, bool write, struct store_txn **out);
/* Commit (durably, for a write transaction) and free. ST_OK or ST_STORE. */
int store_txn_commit(struct store_txn *t);
/* Abort and free. NULL-safe. */
void store_txn_abort(struct store_txn *t);
/* Put; with no_overwrite, an existing key gives ST_EXISTS and changes nothing. */
int store_txn_put(struct store_txn *t, int db, const void *key, size_t klen, const void *val,
                  size_t vlen, bool no_overwrite);
int store_txn_del(struct store_txn *t, int db, const void *key, size_t klen);
/* Append: `key` must sort after every key of db (MDB_APPEND: no tree search, pages filled
 * in order). ST_EXISTS when it does not. */
int store_txn_append(struct store_txn *t, int db, const void *key, size_t klen, const void *val,
                     size_t vlen);
/* The last key of db (in key order) copied into key (cap bytes); ST_NOTFOUND when db is
 * empty, ST_INVALID when it does not fit. */
int store_txn_last(struct store_txn *t, int db, void *key, size_t cap, size_t *klen);
/* Borrowed read inside a transaction: *val points into the map and is valid only until the
 * transaction ends. */
int store_txn_get(struct store_txn *t, int db, const void *key, size_t klen, const void **val,
                  size_t *vlen);

/* Walk a database in key order from `start` (NULL: from the first key), calling fn with
 * borrowed key/value pointers valid during the call only; fn returns false to stop. */
typedef bool (*store_walk_fn)(void *ctx, const void *key, size_t klen, const void *val,
                              size_t vlen);
int store_walk(struct store *s, int db, const void *start, size_t slen, store_walk_fn fn,
               void *ctx);

/* High-water mark of the data file (bytes of the map ever used, free pages included) and the
 * map size, for health and metrics. */
int store_usage(struct store *s, size_t *used, size_t *map_size);

#endif
