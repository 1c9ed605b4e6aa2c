/*
 * ocsp_refresher: ocspd's refresher thread (see ocsp_refresher.h).
 * RFC 9919 §2.2.1; STANDARDS LW-05, EID-05, STS-12; DESIGN D6, D10.
 */
#include "ocsp/ocsp_refresher.h"
#include "common/commit.h"
#include "common/cond.h"
#include "common/log.h"
#include "common/status.h"
#include "ocsp/ocsp_decide.h"
#include "ocsp/ocsp_issuers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OCSP_REFRESH_TICK_MS 250
#define OCSP_CHANGES_BATCH 256
/* A full scan at least this often, even when no stored answer can be due before (answers
 * another process stored, e.g. `ocspctl presign` while ocspd runs, are not noted here) */
#define OCSP_REFRESH_SCAN_MAX_S 3600

struct ocsp_refresher {
    struct ocsp_responder *resp;
    struct ocsp_issuers *issuers;
    struct ocsp_store *store;
    struct metric *m_refreshed, *m_scans;
    _Atomic double interval, margin;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    bool rescan; /* ocsp_refresher_set changed the margin: scan at the next interval */
    /* when the last scan started (CLOCK_MONOTONIC seconds: a step of the wall clock does not
     * put off the hourly scan) and the earliest time (UTC) an answer it saw becomes due
     * (INT64_MAX: none): no scan before then unless something changed (see main) */
    int64_t scanned_at, next_due;
};

#define OCSP_REFRESH_CHUNK 1024
/* issuers passed over in one walk after a chunk of theirs signed nothing; more stop the walk */
#define OCSP_REFRESH_SKIP_MAX 64

struct refresh_scan {
    struct ocsp_refresher *s;
    int64_t now;
    int64_t replaced; /* ocsp_responder_last_replace at the start of the walk */
    struct ocsp_change *list;
    size_t n, cap;
    int64_t next_due;                  /* earliest due time of the answers seen and not picked */
    uint8_t resume[OCSP_RESP_KEY_MAX]; /* the chunk is full: the next walk starts here */
    size_t resume_len;
    bool failed; /* out of memory for the list: the walk stopped early */
    /* issuers none of whose answers a chunk could re-sign in this walk (a key down): not
     * picked again in it, so that they do not stop it before the answers after theirs */
    const uint8_t (*skip)[OCSP_ISSUER_ID_LEN];
    size_t n_skip;
};

static bool
ocsp_refresh_skipped(const struct refresh_scan *rs, const uint8_t *id)
{
    for (size_t i = 0; i < rs->n_skip; i++)
        if (memcmp(rs->skip[i], id, OCSP_ISSUER_ID_LEN) == 0)
            return true;
    return false;
}

static int
ocsp_change_cmp(const void *a, const void *b)
{
    const struct ocsp_change *x = a, *y = b;
    int c = memcmp(x->issuer_id, y->issuer_id, OCSP_ISSUER_ID_LEN);

    if (c != 0)
        return c;
    if (x->serial_len != y->serial_len)
        return x->serial_len < y->serial_len ? -1 : 1;
    if ((c = memcmp(x->serial, y->serial, x->serial_len)) != 0)
        return c;
    return (x->form > y->form) - (x->form < y->form);
}

/* Each entry once (a status change names an (issuer, serial): all its pre-signed forms; a
 * refresh, one stored form). */
static size_t
ocsp_changes_unique(struct ocsp_change *list, size_t n)
{
    size_t m = 0;

    qsort(list, n, sizeof(*list), ocsp_change_cmp);
    for (size_t i = 0; i < n; i++)
        if (m == 0 || ocsp_change_cmp(&list[m - 1], &list[i]) != 0)
            list[m++] = list[i];
    return m;
}

static int64_t
ocsp_mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static bool
ocsp_refresher_stopping(struct ocsp_refresher *s)
{
    bool stop;

    pthread_mutex_lock(&s->lock);
    stop = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return stop;
}

/* Entries of an issuer that cannot be re-signed now (stale CRL, expired responder
 * certificate) are not picked: they would fill every chunk and stop the scan before the
 * others. */
static bool
ocsp_refresh_pick(void *ctx, const struct ocsp_stored_response *r)
{
    struct refresh_scan *rs = ctx;
    const struct ocsp_issuer *iss;
    struct ocsp_change *c;

    bool due;

    if (rs->n >= OCSP_REFRESH_CHUNK) {
        /* a chunk at a time: no transaction held while signing; the next walk goes on from
         * this answer (not from the first: a store whose answers all fall due together
         * would be walked again from the start for each chunk) */
        rs->resume_len =
            ocsp_response_key(r->issuer_id, r->serial, r->serial_len, r->form, rs->resume);
        return false;
    }
    due = ocsp_refresh_due(r->produced_at, r->next_update, rs->now, rs->s->margin);
    if (!due) {
        /* every answer not due now, whether picked below (an old signer's) or not: the next
         * walk comes no later than its due time */
        int64_t at = ocsp_refresh_due_at(r->produced_at, r->next_update, rs->s->margin);

        if (at < rs->next_due)
            rs->next_due = at;
        if (r->produced_at >= rs->replaced)
            return true; /* current, and produced after any signer change */
    }
    /* issuer and serial come from the key (issuer id prefix + serial): no CertID parsed */
    if (ocsp_refresh_skipped(rs, r->issuer_id) ||
        (iss = ocsp_issuers_by_id(rs->s->issuers, r->issuer_id)) == NULL ||
        ocsp_issuer_stale(ocsp_issuer_live(iss), rs->now) ||
        ocsp_signer_expired(iss->signer_not_after, rs->now))
        return true;
    /* produced before its issuer's signer was replaced: the old signer's answer (issue 8
     * item 4): served by nobody, re-signed now rather than on the next request */
    if (!due && (iss->replaced_at == 0 || r->produced_at >= iss->replaced_at))
        return true;
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 256;
        struct ocsp_change *nl = realloc(rs->list, cap * sizeof(*nl));

        if (nl == NULL) {
            rs->failed = true; /* the walk stops here: not a complete one */
            return false;
        }
        rs->list = nl;
        rs->cap = cap;
    }
    c = &rs->list[rs->n++];
    memcpy(c->issuer_id, iss->rec.id, OCSP_ISSUER_ID_LEN);
    memcpy(c->serial, r->serial, r->serial_len);
    c->serial_len = r->serial_len;
    /* this answer's own form: another (a SHA-384 CertID, or one without hash parameters,
     * stored when a client asked so) re-signed as SHA-1 and SHA-256 would stay due and be
     * picked again at once, for ever */
    c->form = r->form;
    return true;
}

static void ocsp_refresh_changes(struct ocsp_refresher *s);

/* Re-sign stored responses whose remaining validity fell below the margin (LW-05), a chunk at
 * a time; between chunks, status changes and new issuers or CRLs are taken in, so a long
 * refresh never delays them, and a stop is honoured. Refreshed entries are not picked again
 * (their nextUpdate moved), so each walk finds the next chunk. */
static void
ocsp_refresh_scan(struct ocsp_refresher *s)
{
    size_t total = 0, n_skip = 0;
    uint8_t from[OCSP_RESP_KEY_MAX], skip[OCSP_REFRESH_SKIP_MAX][OCSP_ISSUER_ID_LEN];
    size_t from_len = 0;
    int64_t next_due = INT64_MAX, start = (int64_t)time(NULL), start_mono = ocsp_mono_s();
    bool complete = false, retry = false;

    /* answers stored from here on are noted for the next decision (ocsp_refresher_main) */
    ocsp_responder_take_due(s->resp);
    while (!ocsp_refresher_stopping(s)) {
        struct refresh_scan rs = {.s = s,
                                  .now = (int64_t)time(NULL),
                                  .replaced = ocsp_issuers_last_replace(s->issuers),
                                  .next_due = INT64_MAX,
                                  .skip = skip,
                                  .n_skip = n_skip};
        size_t count = 0;
        int st = ST_OK;

        if (ocsp_store_response_walk_from(s->store, from, from_len, ocsp_refresh_pick, &rs) !=
            ST_OK) {
            free(rs.list);
            break;
        }
        if (rs.next_due < next_due)
            next_due = rs.next_due;
        if (rs.n > 0) {
            rs.n = ocsp_changes_unique(rs.list, rs.n);
            st = ocsp_responder_refresh(s->resp, rs.list, rs.n, &count);
            total += count;
            metrics_add(s->m_refreshed, (double)count);
            /* one form each: an answer not stored (its key down, a stale issuer, purged
             * meanwhile) is due still: the next walk at the next interval, not its due time */
            if (count < rs.n)
                retry = true;
        }
        /* nothing of the chunk stored because the store refused it (above fill_limit, a
         * write failing) or the signer did (its queue full with live traffic: ST_BUSY): not
         * its issuers' doing, and the others' answers would be signed for nothing or refused
         * as well: the walk ends here, as when nothing could be signed before */
        if (rs.n > 0 && count == 0 && st != ST_OK)
            rs.failed = true;
        /* nothing of the chunk could be signed (an issuer's key down): its issuers are passed
         * over for the rest of the walk, which goes on to the others' answers after theirs
         * (their turn again at the next interval); too many such issuers end the walk */
        for (size_t i = 0; rs.n > 0 && count == 0 && i < rs.n && !rs.failed; i++) {
            if (ocsp_refresh_skipped(&rs, rs.list[i].issuer_id))
                continue;
            if (n_skip == OCSP_REFRESH_SKIP_MAX)
                rs.failed = true;
            else
                memcpy(skip[n_skip++], rs.list[i].issuer_id, OCSP_ISSUER_ID_LEN);
            rs.n_skip = n_skip;
        }
        free(rs.list);
        if (rs.failed)
            break; /* try again at the next interval */
        if (rs.resume_len == 0) {
            complete = true; /* the walk reached the last answer */
            break;
        }
        memcpy(from, rs.resume, rs.resume_len);
        from_len = rs.resume_len;
        ocsp_issuers_reload(s->issuers);
        ocsp_refresh_changes(s);
    }
    if (complete)
        metrics_inc(s->m_scans);
    pthread_mutex_lock(&s->lock);
    s->scanned_at = start_mono;
    s->next_due = complete && !retry ? next_due : 0; /* else again at the next interval */
    pthread_mutex_unlock(&s->lock);
    if (total > 0)
        log_info("ocsp: refreshed %zu response(s) before their nextUpdate", total);
    log_debug("ocsp: refresher walk %s in %lld s", complete ? "complete" : "stopped",
              (long long)((int64_t)time(NULL) - start));
}

/* Taking pending status changes is a write (the entries are deleted): it goes through the
 * commit pipeline like every write of ocspd, and the refresher waits for it without ever
 * holding a transaction. When ocspd stops meanwhile (the writer may wait for an ocspctl
 * transaction), the refresher leaves and the operation frees itself. */
struct take_op {
    struct commit_op op;
    struct ocsp_refresher *svc;
    struct ocsp_change changes[OCSP_CHANGES_BATCH];
    size_t n;
    int status;
    bool done, abandoned;
};

static int
take_apply(struct store_txn *t, struct commit_op *op)
{
    struct take_op *to = op->user;

    return ocsp_store_changes_take_txn(to->svc->store, t, to->changes, OCSP_CHANGES_BATCH, &to->n);
}

static void
take_done(struct commit_op *op, int status)
{
    struct take_op *to = op->user;
    struct ocsp_refresher *s = to->svc;

    pthread_mutex_lock(&s->lock);
    if (to->abandoned) {
        pthread_mutex_unlock(&s->lock);
        free(to);
        return;
    }
    to->status = status;
    to->done = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Up to OCSP_CHANGES_BATCH pending changes into out (allocated by the caller as a take_op).
 * ST_OK, ST_SHUTDOWN when stopping, or the pipeline's failure. */
static int
ocsp_take_changes(struct ocsp_refresher *s, struct ocsp_change *out, size_t *n)
{
    struct take_op *to;
    bool pending = true;
    int st;

    *n = 0;
    /* nothing pending (the usual case): no write transaction through the pipeline at all */
    if (ocsp_store_changes_pending(s->store, &pending) == ST_OK && !pending)
        return ST_OK;
    if ((to = calloc(1, sizeof(*to))) == NULL)
        return ST_NOMEM;
    to->svc = s;
    to->op = (struct commit_op){
        .cls = COMMIT_ESSENTIAL, .apply = take_apply, .done = take_done, .user = to};
    if ((st = commit_submit(ocsp_responder_commit(s->resp), &to->op)) != ST_OK) {
        free(to);
        return st;
    }
    pthread_mutex_lock(&s->lock);
    while (!to->done && !s->stopping)
        pthread_cond_wait(&s->cond, &s->lock);
    if (!to->done) {
        to->abandoned = true; /* take_done frees it */
        pthread_mutex_unlock(&s->lock);
        return ST_SHUTDOWN;
    }
    pthread_mutex_unlock(&s->lock);
    st = to->status;
    if (st == ST_OK) {
        memcpy(out, to->changes, to->n * sizeof(*out));
        *n = to->n;
    }
    free(to);
    return st;
}

/* Status changes made with ocspctl: re-sign at once (DESIGN D6). */
static void
ocsp_refresh_changes(struct ocsp_refresher *s)
{
    struct ocsp_change changes[OCSP_CHANGES_BATCH];
    size_t n = 0, count = 0;

    while (ocsp_take_changes(s, changes, &n) == ST_OK && n > 0) {
        size_t taken = n;

        n = ocsp_changes_unique(changes, n);
        ocsp_responder_resign(s->resp, changes, n, &count);
        metrics_add(s->m_refreshed, (double)count);
        log_info("ocsp: re-signed %zu response(s) after %zu status change(s)", count, n);
        if (taken < OCSP_CHANGES_BATCH || ocsp_refresher_stopping(s))
            break;
    }
}

static void *
ocsp_refresher_main(void *arg)
{
    struct ocsp_refresher *s = arg;
    double since_scan = s->interval; /* scan at start */
    int64_t replaced = 0;
    uint64_t gen = 0;
    bool changed = true;

    for (;;) {
        ocsp_issuers_reload(s->issuers);
        if (ocsp_issuers_last_replace(s->issuers) != replaced) {
            replaced = ocsp_issuers_last_replace(s->issuers);
            since_scan = s->interval; /* a new signer: its answers now */
        }
        if (ocsp_issuers_serve_gen(s->issuers) != gen) {
            gen = ocsp_issuers_serve_gen(s->issuers);
            changed = true; /* an issuer added, re-keyed or its settings (a new CRL) changed */
        }
        ocsp_refresh_changes(s);
        if (since_scan >= s->interval) {
            int64_t now = (int64_t)time(NULL), mono = ocsp_mono_s(), next_due, scanned_at;

            pthread_mutex_lock(&s->lock);
            changed = changed || s->rescan;
            s->rescan = false;
            next_due = s->next_due;
            scanned_at = s->scanned_at;
            pthread_mutex_unlock(&s->lock);
            /* a walk of every stored answer (seconds of CPU for millions) only when one can
             * be due: the earliest due time the last scan saw, or that of an answer stored
             * since (noted by the responder), or something changed, or an hour passed */
            if (changed || now >= next_due || now >= ocsp_responder_peek_due(s->resp) ||
                mono - scanned_at >= OCSP_REFRESH_SCAN_MAX_S) {
                changed = false;
                ocsp_refresh_scan(s);
            }
            since_scan = 0;
        }
        pthread_mutex_lock(&s->lock);
        if (!s->stopping)
            cond_wait_ns(&s->cond, &s->lock, OCSP_REFRESH_TICK_MS * 1000000LL);
        if (s->stopping) {
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
        pthread_mutex_unlock(&s->lock);
        since_scan += OCSP_REFRESH_TICK_MS / 1000.0;
    }
}

struct ocsp_refresher *
ocsp_refresher_start(const struct ocsp_refresher_config *cfg)
{
    struct ocsp_refresher *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->resp = cfg->resp;
    s->issuers = ocsp_responder_issuers(cfg->resp);
    s->store = ocsp_responder_store(cfg->resp);
    s->m_refreshed = cfg->m_refreshed;
    s->m_scans = cfg->m_scans;
    s->interval = cfg->interval;
    s->margin = cfg->margin;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (pthread_create(&s->thread, NULL, ocsp_refresher_main, s) != 0) {
        ocsp_refresher_stop(s);
        return NULL;
    }
    s->started = true;
    return s;
}

void
ocsp_refresher_set(struct ocsp_refresher *s, double interval, double margin)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->rescan = s->rescan || margin != s->margin;
    s->interval = interval;
    s->margin = margin; /* before the refresher can take rescan: its walk uses the new one */
    pthread_mutex_unlock(&s->lock);
}

void
ocsp_refresher_stop(struct ocsp_refresher *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (s->started)
        pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
