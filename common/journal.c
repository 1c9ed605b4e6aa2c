/*
 * journal: write-ahead journal in front of an append-only LMDB database (see journal.h for
 * the format, recovery and capacity rules; DESIGN D5, D10).
 *
 * Threads and locks: the writer thread owns the segments' contents (fds, tails, salts,
 * next_seq); j->lock guards the queue, the applier's lists, segment states and the counters
 * other threads read. The applier's transaction runs on the commit pipeline's writer; its
 * done callback takes j->lock. j->lock is never held while calling into the pipeline.
 */
#include "common/journal.h"
#include "common/chain.h"
#include "common/cond.h"
#include "common/crc32c.h"
#include "common/live.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JOURNAL_SEG_MAGIC "TSJRNL01"    /* 8 bytes, segment header */
#define JOURNAL_GROUP_MAGIC 0x4c4e524au /* "JRNL" little-endian, group header */
#define JOURNAL_SEG_HDR_LEN 36u         /* magic 8, salt 8, first_seq 8, size 8, crc 4 */
#define JOURNAL_MAX_SEGMENTS JOURNAL_SEGMENTS_LIMIT
#define JOURNAL_RETRY_NS 1000000000LL /* applier retry after a failed transaction */
#define JOURNAL_MIN_SEGMENT (256u * 1024u)
#define JOURNAL_FREE_WAIT_NS 2000000000LL /* a write waits this long for the applier */

enum seg_state { SEG_FREE = 0, SEG_ACTIVE, SEG_FULL };

struct seg {
    int fd; /* O_RDWR | O_DSYNC */
    uint64_t salt;
    uint64_t first_seq;   /* of the current activation */
    uint64_t last_seq;    /* highest written in this activation; first_seq - 1 when none */
    size_t tail;          /* next write offset (active segment) */
    enum seg_state state; /* under j->lock */
};

/* One written group, kept in memory until it is in the database. */
struct jbuf {
    uint64_t first_seq, last_seq;
    uint8_t *data; /* the group: header and body */
    size_t len;
    uint8_t chain_after[32]; /* chained: the hash of its last record (issue 9 item 3) */
    struct jbuf *next;
};

struct journal {
    struct journal_config cfg;
    char dir[PATH_MAX];
    struct commit *c;
    int db;
    struct seg segs[JOURNAL_MAX_SEGMENTS];
    unsigned nsegs;
    int active;              /* writer only */
    int64_t create_retry_at; /* writer only: no new segment before (a creation failed) */
    uint64_t next_seq;       /* writer only (after open) */
    bool chained;            /* records are sealed into the node's hash chain (chain.h) */
    char chain_node[CHAIN_NODE_MAX];
    uint8_t chain_head[32]; /* writer only: SHA-256 of record next_seq - 1 */
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;    /* work for the writer */
    pthread_cond_t applied; /* the applier finished a transaction */
    struct journal_rec *head, *tail;
    bool stopping, writing;
    unsigned flush_waiters;
    struct jbuf *pend_head, *pend_tail, *applying;
    size_t pend_count;
    int64_t pend_since, retry_at;
    bool apply_inflight, apply_failing;
    bool urgent; /* no free segment: apply now, whatever the delay */
    bool failed; /* two writes in a row failed: no more records until restart */
    uint64_t applied_seq, written_seq, apply_epoch;
    struct commit_op apply_op;
    struct live_beat *beat;
    struct metric *m_groups, *m_records, *m_size, *m_secs, *m_fail, *m_lag, *m_free, *m_full;
};

/* ---- little helpers ---- */

static int64_t
j_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

void
journal_key(uint64_t seq, uint8_t key[8])
{
    for (int i = 0; i < 8; i++)
        key[7 - i] = (uint8_t)(seq >> (8 * i));
}

uint64_t
journal_key_seq(const uint8_t key[8])
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | key[i];
    return v;
}

static size_t
rec_span(size_t len)
{
    return (4 + len + 7) & ~(size_t)7;
}

/* CRC of a group: salt, the header's fields (crc itself excluded), body. */
static uint32_t
group_crc(uint64_t salt, const uint8_t *hdr, const uint8_t *body, size_t body_len)
{
    uint8_t s[8];
    uint32_t crc;

    put_le64(s, salt);
    crc = crc32c(0, s, 8);
    crc = crc32c(crc, hdr, 20);
    crc = crc32c(crc, hdr + 24, 8);
    return crc32c(crc, body, body_len);
}

static bool
write_with(journal_pwrite_fn fn, int fd, const void *p, size_t n, off_t off)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t w = fn(fd, b, n, off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
        off += w;
    }
    return true;
}

/* ---- segment files ---- */

static void
seg_path(const char *dir, unsigned i, char *out, size_t cap)
{
    snprintf(out, cap, "%.*s/journal.%04u", PATH_MAX - 16, dir, i); /* i < 1024 */
}

static bool
fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = fd >= 0 && fsync(fd) == 0;

    if (fd >= 0)
        close(fd);
    return ok;
}

/* Create segment file i filled with zeros (blocks allocated, size final), durably. */
static int
seg_create(struct journal *j, unsigned i)
{
    char path[PATH_MAX + 16], tmp[PATH_MAX + 32];
    static const uint8_t zero[65536];
    int fd;
    size_t off = 0;

    seg_path(j->dir, i, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    while (off < j->cfg.segment_size) {
        size_t n =
            j->cfg.segment_size - off < sizeof(zero) ? j->cfg.segment_size - off : sizeof(zero);

        if (!write_with(j->cfg.pwrite_fn, fd, zero, n, (off_t)off)) /* tests: a full disk */
            goto fail;
        off += n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0 || !fsync_dir(j->dir))
        goto fail;
    fd = open(path, O_RDWR | O_DSYNC | O_CLOEXEC);
    if (fd < 0)
        goto fail;
    j->segs[i].fd = fd;
    j->segs[i].state = SEG_FREE;
    j->segs[i].first_seq = 0;
    j->segs[i].last_seq = 0;
    return ST_OK;
fail:
    log_err("journal: cannot create %s (%zu bytes): %s", path, j->cfg.segment_size,
            strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return ST_IO;
}

/* Segment header: magic, salt, first_seq, segment size, CRC-32C of those. */
static void
seg_header_encode(uint8_t h[JOURNAL_SEG_HDR_LEN], uint64_t salt, uint64_t first, uint64_t size)
{
    memcpy(h, JOURNAL_SEG_MAGIC, 8);
    put_le64(h + 8, salt);
    put_le64(h + 16, first);
    put_le64(h + 24, size);
    put_le32(h + 32, crc32c(0, h, 32));
}

static bool
seg_header_decode(const uint8_t h[JOURNAL_SEG_HDR_LEN], uint64_t *salt, uint64_t *first,
                  uint64_t *size)
{
    if (memcmp(h, JOURNAL_SEG_MAGIC, 8) != 0 || get_le32(h + 32) != crc32c(0, h, 32))
        return false;
    *salt = get_le64(h + 8);
    *first = get_le64(h + 16);
    *size = get_le64(h + 24);
    return true;
}

/* ---- scanning (recovery and journal_scan) ---- */

/* A segment never started: its header block still holds the zeros it was created with. */
static bool
seg_header_blank(const uint8_t h[JOURNAL_SEG_HDR_LEN])
{
    for (size_t i = 0; i < JOURNAL_SEG_HDR_LEN; i++)
        if (h[i] != 0)
            return false;
    return true;
}

struct scan_seg {
    char path[PATH_MAX + 16];
    int fd;
    uint64_t salt, first, size;
};

static int
scan_seg_cmp(const void *a, const void *b)
{
    const struct scan_seg *x = a, *y = b;

    return x->first < y->first ? -1 : x->first > y->first;
}

/* The group at off in a mapped segment, checked: magic, count, length, CRC with the
 * segment's salt, record framing. first_seq must equal `expect` unless expect is 0. Returns
 * the group's whole length (header + body), 0 when it does not check out. */
static size_t
group_at(const uint8_t *map, size_t size, size_t off, uint64_t salt, uint64_t expect,
         uint64_t *first, uint32_t *count)
{
    const uint8_t *h = map + off, *body = h + JOURNAL_GROUP_HEADER;
    uint32_t body_len;
    size_t p = 0;

    if (off + JOURNAL_GROUP_HEADER > size || get_le32(h) != JOURNAL_GROUP_MAGIC)
        return 0;
    *count = get_le32(h + 4);
    *first = get_le64(h + 8);
    body_len = get_le32(h + 16);
    if (*count == 0 || (expect != 0 && *first != expect) || body_len % 8 != 0 ||
        body_len > size - off - JOURNAL_GROUP_HEADER ||
        get_le32(h + 20) != group_crc(salt, h, body, body_len))
        return 0;
    /* the CRC matched: the records are as written, but check their framing anyway */
    for (uint32_t i = 0; i < *count; i++) {
        uint32_t len;

        if (p + 4 > body_len || (len = get_le32(body + p)) == 0 || rec_span(len) > body_len - p)
            return 0;
        p += rec_span(len);
    }
    return p == body_len ? JOURNAL_GROUP_HEADER + body_len : 0;
}

/*
 * Valid groups of one segment, in order; fn per record. The written part ends at the first
 * group that does not check out: the end of what was written, a write torn by a crash (only
 * ever the last one), or an older activation's groups (another salt). A group of this
 * activation further on means damage instead (a bad block in the middle): when such a group
 * holds records from `keep_from` on (not yet in the database), ST_STORE with *damaged_at set,
 * rather than dropping what follows without a word.
 */
static int
scan_one(const struct scan_seg *sg, uint64_t keep_from, journal_scan_fn fn, void *ctx,
         size_t *damaged_at)
{
    uint64_t expect = sg->first, first;
    size_t off = JOURNAL_SEG_HEADER, glen;
    uint32_t count;
    uint8_t *map;
    int st = ST_OK;

    if (sg->size <= JOURNAL_SEG_HEADER)
        return ST_OK;
    map = mmap(NULL, sg->size, PROT_READ, MAP_PRIVATE, sg->fd, 0);
    if (map == MAP_FAILED) {
        log_err("journal: cannot read %s: %s", sg->path, strerror(errno));
        return ST_IO;
    }
    while ((glen = group_at(map, sg->size, off, sg->salt, expect, &first, &count)) > 0) {
        size_t p = off + JOURNAL_GROUP_HEADER;

        for (uint32_t i = 0; i < count; i++) {
            uint32_t len = get_le32(map + p);

            fn(ctx, first + i, map + p + 4, len);
            p += rec_span(len);
        }
        expect = first + count;
        off += glen;
    }
    for (size_t q = off + 8; q + JOURNAL_GROUP_HEADER <= sg->size; q += 8) {
        if (group_at(map, sg->size, q, sg->salt, 0, &first, &count) > 0 && first >= expect &&
            first + count > keep_from) {
            *damaged_at = off;
            st = ST_STORE;
            break;
        }
    }
    munmap(map, sg->size);
    return st;
}

/* The segments of dir with a valid header, sorted by first sequence number. A segment file
 * that cannot be opened or read is an error: its records may be the ones not yet in the
 * database. */
static int
scan_list(const char *dir, struct scan_seg **out, size_t *n)
{
    struct scan_seg *v = NULL;
    size_t cnt = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    int st = ST_OK;

    *out = NULL;
    *n = 0;
    if (d == NULL)
        return errno == ENOENT ? ST_OK : ST_IO;
    while (st == ST_OK && (e = readdir(d)) != NULL) {
        uint8_t h[JOURNAL_SEG_HDR_LEN];
        struct scan_seg sg;
        struct stat stt;
        unsigned idx;
        char extra;
        ssize_t got;
        struct scan_seg *nv;

        if (sscanf(e->d_name, "journal.%u%c", &idx, &extra) != 1)
            continue;
        memset(&sg, 0, sizeof(sg));
        snprintf(sg.path, sizeof(sg.path), "%s/%s", dir, e->d_name);
        sg.fd = open(sg.path, O_RDONLY | O_CLOEXEC);
        if (sg.fd < 0 || fstat(sg.fd, &stt) != 0) {
            log_err("journal: cannot open %s: %s", sg.path, strerror(errno));
            st = ST_IO;
            break;
        }
        got = (size_t)stt.st_size < sizeof(h) ? 0 : pread(sg.fd, h, sizeof(h), 0);
        if (got < 0) {
            log_err("journal: cannot read %s: %s", sg.path, strerror(errno));
            close(sg.fd);
            st = ST_IO;
            break;
        }
        if (got != (ssize_t)sizeof(h) || seg_header_blank(h)) {
            close(sg.fd); /* never started (zeros) */
            continue;
        }
        if (!seg_header_decode(h, &sg.salt, &sg.first, &sg.size)) {
            /* written once, damaged since: its records cannot be told from anything */
            log_err("journal: the header of %s is damaged: its records may not be in the "
                    "database yet",
                    sg.path);
            close(sg.fd);
            st = ST_STORE;
            break;
        }
        if ((uint64_t)stt.st_size < sg.size) /* a truncated file: scan what is there */
            sg.size = (uint64_t)stt.st_size;
        if ((nv = realloc(v, (cnt + 1) * sizeof(*v))) == NULL) {
            close(sg.fd);
            st = ST_NOMEM;
            break;
        }
        v = nv;
        v[cnt++] = sg;
    }
    closedir(d);
    if (st != ST_OK) {
        for (size_t i = 0; i < cnt; i++)
            close(v[i].fd);
        free(v);
        return st;
    }
    if (cnt > 1)
        qsort(v, cnt, sizeof(*v), scan_seg_cmp);
    *out = v;
    *n = cnt;
    return ST_OK;
}

/* Scan every segment; records before keep_from only matter for the damage check. */
static int
scan_dir(const char *dir, uint64_t keep_from, journal_scan_fn fn, void *ctx)
{
    struct scan_seg *v = NULL;
    size_t n = 0, at = 0;
    int st = scan_list(dir, &v, &n);

    for (size_t i = 0; i < n; i++) {
        if (st == ST_OK && (st = scan_one(&v[i], keep_from, fn, ctx, &at)) == ST_STORE)
            log_err("journal: %s is damaged at offset %zu: valid records follow that are not "
                    "in the database yet; they are not skipped over. Save the journal "
                    "directory and have it looked at before moving it aside",
                    v[i].path, at);
        close(v[i].fd);
    }
    free(v);
    return st;
}

int
journal_scan(const char *dir, journal_scan_fn fn, void *ctx)
{
    return scan_dir(dir, 0, fn, ctx);
}

/* ---- applying records to the database ---- */

/* Append every record of every buffer of the list. */
static int
apply_bufs(struct store_txn *t, int db, const struct jbuf *b)
{
    for (; b != NULL; b = b->next) {
        const uint8_t *body = b->data + JOURNAL_GROUP_HEADER;
        size_t p = 0;

        for (uint64_t seq = b->first_seq; seq <= b->last_seq; seq++) {
            uint32_t len = get_le32(body + p);
            uint8_t key[8];
            int st;

            journal_key(seq, key);
            if ((st = store_txn_append(t, db, key, 8, body + p + 4, len)) != ST_OK)
                return st;
            p += rec_span(len);
        }
    }
    return ST_OK;
}

static int
apply_op_apply(struct store_txn *t, struct commit_op *op)
{
    struct journal *j = op->user;

    return apply_bufs(t, j->db, j->applying);
}

static void
jbuf_free_list(struct jbuf *b)
{
    while (b != NULL) {
        struct jbuf *next = b->next;

        free(b->data);
        free(b);
        b = next;
    }
}

/* Segments whose records are all in the database become free (under j->lock). */
static void
release_segments(struct journal *j)
{
    unsigned nfree = 0;

    for (unsigned i = 0; i < j->nsegs; i++) {
        struct seg *s = &j->segs[i];

        if (s->state == SEG_FULL && s->last_seq <= j->applied_seq)
            s->state = SEG_FREE;
        if (s->state == SEG_FREE)
            nfree++;
    }
    metrics_set(j->m_free, nfree);
}

static void
apply_op_done(struct commit_op *op, int status)
{
    struct journal *j = op->user;
    struct jbuf *done = NULL;

    pthread_mutex_lock(&j->lock);
    if (status == ST_OK) {
        struct jbuf *last = j->applying;

        while (last != NULL && last->next != NULL)
            last = last->next;
        if (last != NULL)
            j->applied_seq = last->last_seq;
        done = j->applying;
        j->apply_failing = false;
        release_segments(j);
    } else {
        /* keep them (they are durable in the journal) and try again later */
        struct jbuf *last = j->applying;

        while (last != NULL && last->next != NULL)
            last = last->next;
        if (last != NULL) {
            last->next = j->pend_head;
            if (j->pend_head == NULL)
                j->pend_tail = last;
            j->pend_head = j->applying;
        }
        if (!j->apply_failing)
            log_err("journal: %s: records cannot be copied into the database (%s); they stay "
                    "in the journal and are retried every second",
                    j->dir, status_str(status));
        j->apply_failing = true;
        j->retry_at = j_now() + JOURNAL_RETRY_NS;
    }
    j->applying = NULL;
    j->apply_inflight = false;
    j->apply_epoch++;
    metrics_set(j->m_lag, (double)(j->written_seq - j->applied_seq));
    pthread_cond_broadcast(&j->applied);
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
    jbuf_free_list(done);
}

static bool
apply_due(struct journal *j, int64_t now)
{
    if (j->apply_inflight || j->pend_head == NULL || now < j->retry_at)
        return false;
    return j->stopping || j->urgent || j->flush_waiters > 0 ||
           j->pend_count >= j->cfg.apply_batch ||
           now - j->pend_since >= (int64_t)(j->cfg.apply_delay * 1e9);
}

/* Under j->lock: when due, move up to apply_batch pending records to the applier and submit
 * (the lock is dropped around the submission). */
static void
maybe_apply(struct journal *j)
{
    size_t n = 0;
    struct jbuf *last = NULL;
    int st;

    if (!apply_due(j, j_now()))
        return;
    j->applying = j->pend_head;
    while (j->pend_head != NULL && (n == 0 || n < j->cfg.apply_batch)) {
        last = j->pend_head;
        n += last->last_seq - last->first_seq + 1;
        j->pend_head = last->next;
    }
    last->next = NULL;
    if (j->pend_head == NULL)
        j->pend_tail = NULL;
    j->pend_count -= n;
    j->pend_since = j_now();
    j->apply_inflight = true;
    memset(&j->apply_op, 0, sizeof(j->apply_op));
    j->apply_op.cls = COMMIT_ESSENTIAL;
    j->apply_op.apply = apply_op_apply;
    j->apply_op.done = apply_op_done;
    j->apply_op.user = j;
    pthread_mutex_unlock(&j->lock);
    st = commit_submit(j->c, &j->apply_op);
    pthread_mutex_lock(&j->lock);
    if (st != ST_OK) { /* the pipeline is stopping: keep them for recovery */
        pthread_mutex_unlock(&j->lock);
        apply_op_done(&j->apply_op, st);
        pthread_mutex_lock(&j->lock);
    }
}

/* ---- the writer ---- */

/* Start segment i for records from next_seq on: new salt, header written durably. */
static int
seg_activate(struct journal *j, unsigned i)
{
    uint8_t h[JOURNAL_SEG_HDR_LEN];
    struct seg *s = &j->segs[i];
    uint64_t salt;

    if (RAND_bytes((unsigned char *)&salt, sizeof(salt)) != 1)
        return ST_CRYPTO;
    seg_header_encode(h, salt, j->next_seq, j->cfg.segment_size);
    if (!write_with(j->cfg.pwrite_fn, s->fd, h, sizeof(h), 0)) {
        log_err("journal: cannot start segment %u in %s: %s", i, j->dir, strerror(errno));
        return ST_IO;
    }
    s->salt = salt;
    s->first_seq = j->next_seq;
    s->last_seq = j->next_seq - 1;
    s->tail = JOURNAL_SEG_HEADER;
    pthread_mutex_lock(&j->lock);
    s->state = SEG_ACTIVE;
    release_segments(j);
    pthread_mutex_unlock(&j->lock);
    j->active = (int)i;
    return ST_OK;
}

static int
seg_pick_free(struct journal *j)
{
    for (unsigned i = 0; i < j->nsegs; i++)
        if (j->segs[i].state == SEG_FREE)
            return (int)i;
    return -1;
}

/* No segment is free and the journal may not grow: the applier is behind. Make it apply now
 * and wait for it (a brief stall of this write rather than refused records), unless the
 * database refuses records (then ST_FULL at once). Under j->lock. */
static int
seg_wait_free(struct journal *j)
{
    int64_t deadline = j_now() + JOURNAL_FREE_WAIT_NS;
    int pick = -1;

    if (j->apply_failing)
        return -1; /* the database refuses records: waiting would only delay the refusal */
    j->urgent = true;
    while ((pick = seg_pick_free(j)) < 0 && j_now() < deadline &&
           !(j->apply_failing && !j->apply_inflight && j->pend_head == NULL)) {
        uint64_t epoch = j->apply_epoch;

        maybe_apply(j);
        cond_wait_ns(&j->applied, &j->lock, 100000000LL);
        if (j->apply_failing && j->apply_epoch != epoch)
            break; /* the database refuses them */
    }
    j->urgent = false;
    return pick;
}

/* Leave the active segment after a failed write: full from now on; the next write starts a
 * fresh segment. */
static void
seg_switch_away(struct journal *j)
{
    pthread_mutex_lock(&j->lock);
    if (j->active >= 0)
        j->segs[j->active].state = SEG_FULL;
    j->active = -1;
    pthread_mutex_unlock(&j->lock);
}

/* Leave the active segment (full, or its last write failed) for a free one. */
static int
seg_switch(struct journal *j)
{
    int pick, st;

    pthread_mutex_lock(&j->lock);
    if (j->active >= 0)
        j->segs[j->active].state = SEG_FULL;
    j->active = -1;
    release_segments(j);
    pick = seg_pick_free(j);
    if (pick < 0 && j->nsegs >= j->cfg.segments_max && j->started)
        pick = seg_wait_free(j);
    pthread_mutex_unlock(&j->lock);
    if (pick < 0 && j->nsegs < j->cfg.segments_max) {
        /* the applier is behind: grow the journal (a one-off cost on this write). After a
         * failed creation (the disk full) the next try waits a while: meanwhile writes are
         * refused at once rather than each filling the disk with zeros again. */
        if (j_now() < j->create_retry_at)
            return ST_FULL;
        if ((st = seg_create(j, j->nsegs)) != ST_OK) {
            j->create_retry_at = j_now() + JOURNAL_RETRY_NS;
            return st;
        }
        pick = (int)j->nsegs++;
    }
    if (pick < 0)
        return ST_FULL;
    return seg_activate(j, (unsigned)pick);
}

/* Assemble the records of `list` that fit in one segment into a group buffer; *rest gets
 * those that did not fit. NULL on allocation failure. */
static struct jbuf *
group_build(struct journal *j, struct journal_rec *list, struct journal_rec **rest, uint32_t *count)
{
    size_t cap = j->cfg.segment_size - JOURNAL_SEG_HEADER, len = JOURNAL_GROUP_HEADER, p;
    size_t grow = j->chained ? CHAIN_PREFIX_MAX : 0;
    struct journal_rec *r = list;
    uint8_t head[32];
    struct jbuf *b;
    uint32_t n = 0;

    /* chained: sizes are reckoned with the most sealing adds; the group is cut to its
     * real length below */
    while (r != NULL && len + rec_span(r->len + grow) <= cap) {
        len += rec_span(r->len + grow);
        n++;
        r = r->next;
    }
    *rest = r;
    *count = n;
    if ((b = calloc(1, sizeof(*b))) == NULL || (b->data = calloc(1, len + 1)) == NULL) {
        free(b);
        return NULL;
    }
    b->len = len;
    b->first_seq = j->next_seq;
    b->last_seq = j->next_seq + n - 1;
    p = JOURNAL_GROUP_HEADER;
    r = list;
    memcpy(head, j->chain_head, 32);
    for (uint32_t i = 0; i < n; i++, r = r->next) {
        size_t rl = r->len;

        /* the order of the records is fixed here: sealed into the chain in that order, the
         * head kept only once the group is written (write_list) */
        if (j->chained)
            rl = chain_seal((char *)b->data + p + 4, r->len + grow + 1, b->first_seq + i,
                            j->chain_node, head, r->data, r->len, head);
        else
            memcpy(b->data + p + 4, r->data, r->len);
        if (rl == 0) { /* not a JSON object: refused by journal_append, cannot happen */
            free(b->data);
            free(b);
            return NULL;
        }
        put_le32(b->data + p, (uint32_t)rl);
        p += rec_span(rl);
    }
    b->len = len = p;
    memcpy(b->chain_after, head, 32);
    put_le32(b->data, JOURNAL_GROUP_MAGIC);
    put_le32(b->data + 4, n);
    put_le64(b->data + 8, b->first_seq);
    put_le32(b->data + 16, (uint32_t)(len - JOURNAL_GROUP_HEADER));
    return b;
}

/* One attempt at writing the group at the tail of the active segment (switching first when it
 * does not fit). *wrote: the group's write was made (and may be on disk even if it failed);
 * false when the attempt stopped before it (no segment: full, or one could not be created). */
static int
group_write_once(struct journal *j, struct jbuf *b, bool *wrote)
{
    struct seg *s;
    bool ok;
    int st;

    *wrote = false;
    if (j->active < 0 || j->segs[j->active].tail + b->len > j->cfg.segment_size)
        if ((st = seg_switch(j)) != ST_OK)
            return st;
    *wrote = true;
    s = &j->segs[j->active];
    put_le32(b->data + 20, group_crc(s->salt, b->data, b->data + JOURNAL_GROUP_HEADER,
                                     b->len - JOURNAL_GROUP_HEADER));
    live_busy(j->beat);
    ok = write_with(j->cfg.pwrite_fn, s->fd, b->data, b->len, (off_t)s->tail);
    live_idle(j->beat);
    if (!ok) {
        log_err("journal: write of %zu bytes to segment %d of %s failed: %s", b->len, j->active,
                j->dir, strerror(errno));
        metrics_inc(j->m_fail);
        /* never write twice at a place whose state is unknown: that segment is left */
        seg_switch_away(j);
        return ST_IO;
    }
    s->tail += b->len;
    s->last_seq = b->last_seq;
    return ST_OK;
}

/*
 * Write one group durably (one O_DSYNC pwrite); ST_OK or why not. A failed write may still
 * have reached the disk, so its sequence numbers are never given to other records: the same
 * group (same numbers, same records) is written again in a fresh segment, and if that fails
 * too the journal stops taking records (ST_IO from then on, /healthz red) until a restart
 * recovers it. Recovery then finds the group once or twice, identical, and applies it once.
 */
static int
group_write(struct journal *j, struct jbuf *b)
{
    bool wrote;
    int st;

    if (j->failed)
        return ST_IO;
    st = group_write_once(j, b, &wrote);
    if (st == ST_OK || !wrote)
        return st; /* written, or refused before anything was written (full, no space for a
                      new segment: issue 8, the disk full): the next group may succeed */
    /* the failed write may be on disk: the retry must succeed, or these numbers are burnt */
    if ((st = group_write_once(j, b, &wrote)) != ST_OK) {
        st = ST_IO;
        log_err("journal: %s: a failed write could not be made again: no more tokens until "
                "tsad is restarted (the journal is recovered then)",
                j->dir);
        pthread_mutex_lock(&j->lock);
        j->failed = true;
        pthread_mutex_unlock(&j->lock);
    }
    return st;
}

/* Write the queued records, as many groups as needed; complete them; queue the groups for
 * the applier. */
static void
write_list(struct journal *j, struct journal_rec *list)
{
    while (list != NULL) {
        struct journal_rec *rest = NULL, *r;
        uint32_t n = 0;
        int64_t t0 = j_now();
        struct jbuf *b = group_build(j, list, &rest, &n);
        int st = b == NULL ? ST_NOMEM : n == 0 ? ST_INVALID : group_write(j, b);

        if (st == ST_OK) {
            j->next_seq += n;
            memcpy(j->chain_head, b->chain_after, 32);
            metrics_inc(j->m_groups);
            metrics_add(j->m_records, n);
            metrics_observe(j->m_size, n);
            metrics_observe(j->m_secs, (double)(j_now() - t0) / 1e9);
        } else if (st == ST_FULL) {
            metrics_add(j->m_full, n);
        }
        if (n == 0) /* a record too large for a segment: cannot happen with checked lengths */
            n = 1;
        r = list;
        for (uint32_t i = 0; i < n; i++) {
            struct journal_rec *next = r->next;

            r->seq = st == ST_OK ? b->first_seq + i : 0;
            r->next = NULL;
            r->done(r, st);
            r = next;
        }
        list = r;
        pthread_mutex_lock(&j->lock);
        if (st == ST_OK) {
            if (j->pend_head == NULL)
                j->pend_since = j_now();
            if (j->pend_tail != NULL)
                j->pend_tail->next = b;
            else
                j->pend_head = b;
            j->pend_tail = b;
            j->pend_count += n;
            j->written_seq = b->last_seq;
            metrics_set(j->m_lag, (double)(j->written_seq - j->applied_seq));
            b = NULL;
        }
        pthread_mutex_unlock(&j->lock);
        if (b != NULL) {
            free(b->data);
            free(b);
        }
    }
}

static void
writer_wait(struct journal *j)
{
    int64_t wait = 0;

    if (j->pend_head != NULL && !j->apply_inflight) {
        int64_t due = j->pend_since + (int64_t)(j->cfg.apply_delay * 1e9);

        if (j->retry_at > due)
            due = j->retry_at;
        wait = due - j_now();
        if (wait <= 0)
            return;
    }
    if (wait == 0) {
        pthread_cond_wait(&j->cond, &j->lock);
        return;
    }
    cond_wait_ns(&j->cond, &j->lock, wait);
}

static void *
writer_main(void *arg)
{
    struct journal *j = arg;

    pthread_mutex_lock(&j->lock);
    for (;;) {
        struct journal_rec *list;

        maybe_apply(j);
        if (j->head == NULL) {
            if (j->stopping && j->pend_head == NULL && !j->apply_inflight)
                break;
            if (j->stopping && j->apply_failing && !j->apply_inflight)
                break; /* the records stay in the journal for the next start */
            writer_wait(j);
            continue;
        }
        list = j->head;
        j->head = j->tail = NULL;
        j->writing = true;
        pthread_mutex_unlock(&j->lock);
        write_list(j, list);
        pthread_mutex_lock(&j->lock);
        j->writing = false;
        pthread_cond_broadcast(&j->applied);
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

/* ---- recovery ---- */

struct recover {
    struct journal *j;
    uint64_t next_needed; /* L + 1, then one past each record taken */
    uint64_t gap_at;      /* first record seen beyond a gap (0: none) */
    struct jbuf *chunk;   /* records gathered for one transaction, as one pseudo-group */
    size_t chunk_cap, chunk_n;
    int st;
};

static int
recover_apply_op(struct store_txn *t, struct commit_op *op)
{
    struct recover *rc = op->user;

    return apply_bufs(t, rc->j->db, rc->chunk);
}

static void
recover_flush(struct recover *rc)
{
    struct commit_op op = {.cls = COMMIT_ESSENTIAL, .apply = recover_apply_op, .user = rc};
    int st;

    if (rc->chunk == NULL || rc->chunk_n == 0 || rc->st != ST_OK)
        return;
    st = commit_run(rc->j->c, &op);
    if (st != ST_OK) {
        log_err("journal: %s: recovered records cannot be written to the database: %s", rc->j->dir,
                status_str(st));
        rc->st = st;
    }
    rc->chunk->len = JOURNAL_GROUP_HEADER;
    rc->chunk_n = 0;
}

static void
recover_one(void *ctx, uint64_t seq, const void *data, size_t len)
{
    struct recover *rc = ctx;
    struct jbuf *b;

    if (seq < rc->next_needed || rc->st != ST_OK)
        return; /* already in the database */
    if (seq > rc->next_needed) {
        if (rc->gap_at == 0)
            rc->gap_at = seq;
        return;
    }
    if (rc->chunk == NULL) {
        if ((rc->chunk = calloc(1, sizeof(*rc->chunk))) == NULL) {
            rc->st = ST_NOMEM;
            return;
        }
        rc->chunk->len = JOURNAL_GROUP_HEADER;
    }
    b = rc->chunk;
    if (b->len + rec_span(len) > rc->chunk_cap) {
        size_t cap = (b->len + rec_span(len)) * 2;
        uint8_t *nd = realloc(b->data, cap);

        if (nd == NULL) {
            rc->st = ST_NOMEM;
            return;
        }
        b->data = nd;
        rc->chunk_cap = cap;
    }
    if (rc->chunk_n == 0)
        b->first_seq = seq;
    memset(b->data + b->len, 0, rec_span(len));
    put_le32(b->data + b->len, (uint32_t)len);
    memcpy(b->data + b->len + 4, data, len);
    b->len += rec_span(len);
    b->last_seq = seq;
    rc->chunk_n++;
    rc->next_needed = seq + 1;
    if (rc->chunk_n >= rc->j->cfg.apply_batch)
        recover_flush(rc);
}

static int
last_op_apply(struct store_txn *t, struct commit_op *op)
{
    struct journal *j = op->user;
    uint8_t key[8];
    size_t klen = 0;
    int st = store_txn_last(t, j->db, key, sizeof(key), &klen);

    j->next_seq = 1;
    if (st == ST_NOTFOUND)
        return ST_OK;
    if (st != ST_OK || klen != 8)
        return st != ST_OK ? st : ST_STORE;
    j->next_seq = journal_key_seq(key) + 1;
    return ST_OK;
}

static int
head_op_apply(struct store_txn *t, struct commit_op *op)
{
    struct journal *j = op->user;
    uint64_t seq;
    int st = chain_txn_head(t, j->db, &seq, j->chain_head);

    if (st == ST_OK && seq != j->next_seq - 1)
        st = ST_STORE;
    return st;
}

static int
journal_recover(struct journal *j)
{
    struct commit_op op = {.cls = COMMIT_ESSENTIAL, .apply = last_op_apply, .user = j};
    struct recover rc = {.j = j, .st = ST_OK};
    int st;

    /* the database's last key, read on the pipeline (it is the only writer) */
    if ((st = commit_run(j->c, &op)) != ST_OK)
        return st;
    rc.next_needed = j->next_seq;
    if ((st = scan_dir(j->dir, j->next_seq, recover_one, &rc)) == ST_OK)
        recover_flush(&rc);
    if (rc.chunk != NULL)
        free(rc.chunk->data);
    free(rc.chunk);
    if (st != ST_OK) {
        log_err("journal: %s cannot be recovered (%s): tsad does not start without the "
                "records it may hold",
                j->dir, status_str(st));
        return st;
    }
    if (rc.st != ST_OK)
        return rc.st;
    if (rc.next_needed > j->next_seq)
        log_notice("journal: recovered %llu record(s) (%llu..%llu) from %s into the database",
                   (unsigned long long)(rc.next_needed - j->next_seq),
                   (unsigned long long)j->next_seq, (unsigned long long)(rc.next_needed - 1),
                   j->dir);
    if (rc.gap_at != 0) {
        log_err("journal: %s holds records from %llu on, but the database ends at %llu: records "
                "%llu..%llu are missing. Restore the store, or move the journal aside after "
                "saving it",
                j->dir, (unsigned long long)rc.gap_at, (unsigned long long)(rc.next_needed - 1),
                (unsigned long long)rc.next_needed, (unsigned long long)(rc.gap_at - 1));
        return ST_STORE;
    }
    j->next_seq = rc.next_needed;
    j->applied_seq = j->written_seq = j->next_seq - 1;
    if (j->chained) { /* the chain goes on from the last record, recovered or not */
        op = (struct commit_op){.cls = COMMIT_ESSENTIAL, .apply = head_op_apply, .user = j};
        if ((st = commit_run(j->c, &op)) != ST_OK)
            return st;
    }
    return ST_OK;
}

/* Open the existing segment files (all free after recovery) or create them. */
static int
segments_open(struct journal *j)
{
    unsigned want = j->cfg.segments_max < 2 ? j->cfg.segments_max : 2;

    for (unsigned i = 0; i < j->cfg.segments_max; i++) {
        char path[PATH_MAX + 16];
        struct stat st;
        int fd;

        seg_path(j->dir, i, path, sizeof(path));
        fd = open(path, O_RDWR | O_DSYNC | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
            break;
        if (fd < 0) {
            log_err("journal: cannot open %s: %s", path, strerror(errno));
            return ST_IO;
        }
        if (fstat(fd, &st) != 0 || (size_t)st.st_size != j->cfg.segment_size) {
            /* another segment size was configured: this one is made again */
            close(fd);
            if (seg_create(j, i) != ST_OK)
                return ST_IO;
        } else {
            j->segs[i].fd = fd;
            j->segs[i].state = SEG_FREE;
        }
        j->nsegs = i + 1;
    }
    while (j->nsegs < want) {
        if (seg_create(j, j->nsegs) != ST_OK)
            return ST_IO;
        j->nsegs++;
    }
    return ST_OK;
}

static void
journal_metrics_init(struct journal *j)
{
    static const double size_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024};
    static const double secs_buckets[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                          0.0025,  0.005,  0.01,    0.05,   0.25};

    j->m_groups = metrics_counter("journal_writes_total", "Journal writes (one O_DSYNC each).");
    j->m_records = metrics_counter("journal_records_total", "Records made durable.");
    j->m_size = metrics_histogram("journal_write_records", "Records per journal write.",
                                  size_buckets, sizeof(size_buckets) / sizeof(double));
    j->m_secs = metrics_histogram("journal_write_seconds", "Time of one journal write.",
                                  secs_buckets, sizeof(secs_buckets) / sizeof(double));
    j->m_fail = metrics_counter("journal_write_failures_total", "Journal writes that failed.");
    j->m_full = metrics_counter("journal_full_total",
                                "Records refused: no free journal segment (the database is "
                                "not taking records).");
    j->m_lag = metrics_gauge("journal_apply_lag_records",
                             "Records durable in the journal, not yet in the database.");
    j->m_free = metrics_gauge("journal_segments_free", "Journal segments free for reuse.");
}

struct journal *
journal_open(const struct journal_config *cfg, struct commit *c, int db)
{
    struct journal *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return NULL;
    for (unsigned i = 0; i < JOURNAL_MAX_SEGMENTS; i++)
        j->segs[i].fd = -1;
    j->cfg = *cfg;
    j->c = c;
    j->db = db;
    j->active = -1;
    snprintf(j->dir, sizeof(j->dir), "%s", cfg->dir);
    j->cfg.dir = j->dir;
    if (cfg->chain_node != NULL) {
        j->chained = true;
        snprintf(j->chain_node, sizeof(j->chain_node), "%s", cfg->chain_node);
        j->cfg.chain_node = j->chain_node;
    }
    if (j->cfg.segment_size == 0)
        j->cfg.segment_size = JOURNAL_DEFAULT_SEGMENT;
    if (j->cfg.pwrite_fn == NULL)
        j->cfg.pwrite_fn = pwrite;
    if (j->cfg.segments_max == 0)
        j->cfg.segments_max = JOURNAL_DEFAULT_SEGMENTS_MAX;
    if (j->cfg.apply_batch == 0)
        j->cfg.apply_batch = JOURNAL_DEFAULT_APPLY_BATCH;
    if (!(j->cfg.apply_delay > 0))
        j->cfg.apply_delay = JOURNAL_DEFAULT_APPLY_DELAY;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    pthread_cond_init(&j->applied, NULL);
    journal_metrics_init(j);
    if (j->cfg.segment_size < JOURNAL_MIN_SEGMENT || j->cfg.segments_max < 2 ||
        j->cfg.segments_max > JOURNAL_MAX_SEGMENTS) {
        log_err("journal: segments of at least %u bytes, from 2 to %u of them", JOURNAL_MIN_SEGMENT,
                JOURNAL_MAX_SEGMENTS);
        goto fail;
    }
    if (mkdir(j->dir, 0700) != 0 && errno != EEXIST) {
        log_err("journal: cannot create %s: %s", j->dir, strerror(errno));
        goto fail;
    }
    if (journal_recover(j) != ST_OK || segments_open(j) != ST_OK || seg_switch(j) != ST_OK)
        goto fail;
    j->beat = live_beat_new("journal");
    if (pthread_create(&j->thread, NULL, writer_main, j) != 0)
        goto fail;
    j->started = true;
    return j;
fail:
    journal_close(j);
    return NULL;
}

void
journal_close(struct journal *j)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->lock);
    j->stopping = true;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
    if (j->started)
        pthread_join(j->thread, NULL);
    for (struct journal_rec *r = j->head; r != NULL;) { /* only when the writer never ran */
        struct journal_rec *next = r->next;

        r->done(r, ST_SHUTDOWN);
        r = next;
    }
    jbuf_free_list(j->pend_head);
    for (unsigned i = 0; i < JOURNAL_MAX_SEGMENTS; i++)
        if (j->segs[i].fd >= 0)
            close(j->segs[i].fd);
    live_beat_free(j->beat);
    pthread_cond_destroy(&j->applied);
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->lock);
    free(j);
}

int
journal_append(struct journal *j, struct journal_rec *r)
{
    int st = ST_OK;

    if (r->len == 0 || r->len > JOURNAL_RECORD_MAX || r->done == NULL)
        return ST_INVALID;
    if (j->chained && (r->len + CHAIN_PREFIX_MAX > JOURNAL_RECORD_MAX || r->len < 3 ||
                       ((const char *)r->data)[0] != '{'))
        return ST_INVALID;
    r->next = NULL;
    r->seq = 0;
    pthread_mutex_lock(&j->lock);
    if (j->stopping) {
        st = ST_SHUTDOWN;
    } else {
        if (j->tail != NULL)
            j->tail->next = r;
        else
            j->head = r;
        j->tail = r;
        if (!j->writing)
            pthread_cond_signal(&j->cond);
    }
    pthread_mutex_unlock(&j->lock);
    return st;
}

void
journal_sync_applied(struct journal *j)
{
    pthread_mutex_lock(&j->lock);
    j->flush_waiters++;
    pthread_cond_signal(&j->cond);
    for (;;) {
        uint64_t epoch = j->apply_epoch;

        if (j->head == NULL && !j->writing && j->pend_head == NULL && !j->apply_inflight)
            break;
        pthread_cond_wait(&j->applied, &j->lock);
        if (j->apply_failing && j->apply_epoch != epoch)
            break; /* the database refuses them: they stay durable in the journal */
    }
    j->flush_waiters--;
    pthread_mutex_unlock(&j->lock);
}

void
journal_stats(struct journal *j, struct journal_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&j->lock);
    out->next_seq = j->written_seq + 1;
    out->applied_seq = j->applied_seq;
    out->segments = j->nsegs;
    for (unsigned i = 0; i < j->nsegs; i++)
        if (j->segs[i].state == SEG_FREE)
            out->segments_free++;
    out->apply_failing = j->apply_failing;
    out->write_failed = j->failed;
    pthread_mutex_unlock(&j->lock);
}
