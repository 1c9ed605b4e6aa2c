/*
 * journal: a write-ahead journal in front of an append-only LMDB database (DESIGN D5, D10).
 *
 * Why: an LMDB commit makes two device flushes (the data pages, then the meta page that
 * points at them); appending to a file with O_DSYNC makes one. tsad's durable promise (no
 * token leaves before its audit record is durable) puts that flush on every token's path,
 * so records are made durable here first, in groups, with one O_DSYNC write per group, and
 * copied into the LMDB database in large batches afterwards (through the store's commit
 * pipeline), where readers and exports find them. Measured on the development VM: 8 records
 * of 700 bytes take p50 0.15 ms here and 0.48 ms as an LMDB append commit.
 *
 * Records get consecutive sequence numbers in write order: a record's number is its key in
 * the LMDB database (8 bytes, big-endian, written with MDB_APPEND).
 *
 * On disk: `dir/journal.NNNN`, files of segment_size bytes filled with zeros when created (so
 * that an O_DSYNC overwrite never has to allocate blocks or change the file size, which would
 * cost a second flush), reused in turn. Each starts with a header block
 * (journal_seg_header below: magic, a random salt drawn when the segment is (re)started, the
 * first sequence number it holds, CRC-32C) followed by groups. A group is one write:
 * a 32-byte header (magic, record count, first sequence number, body length, CRC-32C over
 * the salt, the header's fields and the body) and a body of records (u32 length, payload,
 * zero padding to 8 bytes). A group counts only when its whole CRC matches: a write torn by a
 * crash or power cut is dropped whole, and none of its records had been acknowledged. Old
 * groups left in a reused segment carry the previous salt and never match.
 *
 * Recovery (journal_open): the last key L of the database is read; segments are scanned in
 * the order of their first sequence numbers; every valid group after L is applied in order
 * (groups must continue L+1, L+2, ... without a gap; a gap is refused with a clear error),
 * synchronously, before the journal accepts anything. A segment whose written part ends in a
 * group that does not check out while valid groups of the same activation holding records
 * after L follow it is damaged, not torn: refused too, never skipped over. A segment file
 * that cannot be opened is refused. Then a fresh segment is started.
 *
 * A write that fails (EIO) may still have reached the disk: its group is written again,
 * unchanged, in a fresh segment; a second failure stops the journal (ST_IO) until a restart.
 * A new segment that cannot be created (the disk full) is not a failed write: nothing of the
 * group was written, its records complete with ST_IO (ST_FULL for a second after), and the
 * journal goes on.
 *
 * Capacity: at most segments_max segments; a segment is reused once all its records are in
 * LMDB. If LMDB cannot take records (its map is full), they stay durable here and the
 * applier retries every second; when no segment is free, appends complete with ST_FULL.
 *
 * Threads: one writer thread (appends, one write in flight) whose done callbacks run on it;
 * the applier's transactions run on the commit pipeline's writer.
 */
#ifndef COMMON_JOURNAL_H
#define COMMON_JOURNAL_H

#include "common/commit.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define JOURNAL_SEG_HEADER 4096u /* bytes before the first group of a segment */
#define JOURNAL_GROUP_HEADER 32u
#define JOURNAL_DEFAULT_SEGMENT (16u << 20)
#define JOURNAL_DEFAULT_SEGMENTS_MAX 16u
#define JOURNAL_DEFAULT_APPLY_BATCH 4096u
#define JOURNAL_DEFAULT_APPLY_DELAY 0.05
#define JOURNAL_RECORD_MAX 65536u
#define JOURNAL_SEGMENTS_LIMIT 1024u /* segments_max above this is refused */

struct journal_rec;
/* The record is durable (ST_OK, r->seq set) or could not be written (ST_IO, ST_FULL,
 * ST_SHUTDOWN). Runs on the journal's writer: must not block. The record is the callback's. */
typedef void (*journal_done_fn)(struct journal_rec *r, int status);

struct journal_rec {
    const void *data; /* payload: borrowed until done (copied when written) */
    size_t len;       /* 1..JOURNAL_RECORD_MAX */
    journal_done_fn done;
    void *user;               /* the submitter's, untouched */
    uint64_t seq;             /* out: sequence number = LMDB key, valid in done with ST_OK */
    struct journal_rec *next; /* private */
};

/* How segment writes (and a new segment's zero fill) are made: pwrite(2) unless a test
 * replaces it (to inject failures). */
typedef ssize_t (*journal_pwrite_fn)(int fd, const void *buf, size_t n, off_t off);

struct journal_config {
    const char *dir;             /* the journal's directory (created 0700 if missing) */
    size_t segment_size;         /* bytes per segment file (0: default) */
    unsigned segments_max;       /* capacity in segments, >= 2 (0: default) */
    unsigned apply_batch;        /* records per LMDB transaction of the applier (0: default) */
    double apply_delay;          /* seconds a record may wait before it is applied (0: default) */
    journal_pwrite_fn pwrite_fn; /* NULL: pwrite */
    /* Non-NULL: records (JSON objects) are sealed into this node's hash chain as their
     * sequence numbers are given, on the writer (common/chain.h; issue 9 item 3); the chain
     * goes on from the database's last record after recovery. */
    const char *chain_node;
};

struct journal;

/*
 * Open (or create) the journal for database `db` of the pipeline's store, recover it into the
 * database (see above), start the writer. NULL on failure, logged (an unreadable segment, a
 * gap in the sequence, a recovery that cannot be written).
 */
struct journal *journal_open(const struct journal_config *cfg, struct commit *c, int db);
/* Write what is queued, apply everything to the database, stop, free. NULL-safe. */
void journal_close(struct journal *j);

/* Queue a record. ST_OK: done will be called. ST_INVALID (length), ST_SHUTDOWN: refused, done
 * not called. */
int journal_append(struct journal *j, struct journal_rec *r);
/* Wait until every record appended before the call is in the database (tests, exports). */
void journal_sync_applied(struct journal *j);

/* Figures for health and metrics. */
struct journal_stats {
    uint64_t next_seq;    /* sequence number of the next record */
    uint64_t applied_seq; /* every record up to this one is in the database */
    unsigned segments, segments_free;
    bool apply_failing; /* the last transaction of the applier failed */
    bool write_failed;  /* writes failed twice in a row: no records until a restart */
};
void journal_stats(struct journal *j, struct journal_stats *out);

/* Sequence number <-> 8-byte big-endian database key. */
void journal_key(uint64_t seq, uint8_t key[8]);
uint64_t journal_key_seq(const uint8_t key[8]);

/* Scan the journal in `dir` without changing anything, calling fn for every valid record in
 * sequence order (recovery's view of it). For tools and tests. ST_OK or ST_IO. */
typedef void (*journal_scan_fn)(void *ctx, uint64_t seq, const void *data, size_t len);
int journal_scan(const char *dir, journal_scan_fn fn, void *ctx);

#endif
