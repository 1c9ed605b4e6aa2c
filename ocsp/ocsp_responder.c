/*
 * ocsp_responder: jobs, batched signing and storing of OCSP responses, the re-sign driver.
 * RFC 6960 §4.2; RFC 9919 §2.2; STANDARDS OCSP-08, OCSP-21, STS-12; DESIGN D6, D10.
 * See ocsp_responder.h.
 */
#include "ocsp/ocsp_responder.h"
#include "common/commit.h"
#include "common/daemon.h"
#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/status.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OCSP_COMMIT_QUEUE_MAX 4096u /* signed answers waiting to be stored, at most */
/* Answers per transaction, at most: a re-presign replaces every answer, and the pages a
 * transaction frees are reused only by later ones, so large groups grow the file (measured:
 * groups of up to 4096 grew it 15% over two re-presigns of 5000 answers) */
#define OCSP_COMMIT_GROUP_MAX 256u

struct ocsp_responder {
    const struct ocsp_config *cfg;
    struct ocsp_store *store;
    struct commit *commit; /* every write of ours goes through it (DESIGN D10) */
    struct signer *signer;
    struct ocsp_issuers *issuers;
    _Atomic int64_t due_note;    /* ocsp_responder_take_due */
    struct metric *m_superseded; /* signed, not stored: the record changed meanwhile */
    /* presign: the previous chunk's writes, still being committed while the next chunk is
     * signed (ocsp_responder_presign, ocsp_responder_presign_flush); NULL before the first */
    struct resign_wait *tail;
};

struct resign_wait;
static void ocsp_presign_tail_free(struct resign_wait *w);

/* Storing one signed response: an operation of the commit pipeline (BACKGROUND: an answer
 * that is not stored is signed again when asked for). */
struct ocsp_store_op {
    struct commit_op op;
    struct ocsp_responder *r; /* its store, and the due time noted once stored */
    struct ocsp_response_put put;
    uint8_t serial[OCSP_SERIAL_MAX];
    uint8_t *der;                   /* our copy, or the job's response when a job waits for us */
    struct ocsp_job *job;           /* a re-sign job that completes once stored, or NULL */
    struct resign_wait *wait;       /* a sorted write (presign) that counts it, or NULL */
    uint8_t key[OCSP_RESP_KEY_MAX]; /* its `responses` key (the sort order) */
    size_t key_len;
    bool gone; /* nothing written: its status record changed or went while it was signed, or
                  (put.replace) the answer was purged meanwhile (ST_NOTFOUND of the put) */
};

static void ocsp_presign_stored(struct resign_wait *w, int status);

static int
ocsp_store_op_apply(struct store_txn *t, struct commit_op *op)
{
    struct ocsp_store_op *so = op->user;
    int st = ocsp_store_response_put_txn(so->r->store, t, &so->put);

    /* applied again after a failed group: decided anew each time */
    so->gone = st == ST_NOTFOUND;
    return so->gone ? ST_OK : st;
}

/* An answer was stored: the earliest time it can be due for refresh, noted (a lower bound:
 * 10 % of its validity gone, the refresh margin being at most 90 %). */
static void
ocsp_due_note(struct ocsp_responder *r, const struct ocsp_response_put *p)
{
    int64_t due = p->produced_at + (p->next_update - p->produced_at) / 10;
    int64_t cur = atomic_load(&r->due_note);

    while (due < cur && !atomic_compare_exchange_weak(&r->due_note, &cur, due))
        ;
}

int64_t
ocsp_responder_take_due(struct ocsp_responder *r)
{
    return atomic_exchange(&r->due_note, INT64_MAX);
}

int64_t
ocsp_responder_peek_due(struct ocsp_responder *r)
{
    return atomic_load(&r->due_note);
}

static void
ocsp_store_op_done(struct commit_op *op, int status)
{
    struct ocsp_store_op *so = op->user;
    struct ocsp_job *j = so->job;

    if (status == ST_OK && !so->gone)
        ocsp_due_note(so->r, &so->put);
    if (status == ST_OK && so->gone)
        metrics_inc(so->r->m_superseded);

    if (j != NULL) {
        if (status == ST_OK && so->gone)
            status = ST_NOTFOUND;
        j->stored = status == ST_OK;
        j->store_status = status;
        j->done(j, j->ctx);
    } else {
        if (so->wait != NULL)
            ocsp_presign_stored(so->wait, status == ST_OK && so->gone ? ST_NOTFOUND : status);
        free(so->der);
    }
    free(so);
}

void
ocsp_etag_of(const uint8_t *der, size_t len, uint8_t etag[OCSP_FP_LEN])
{
    uint8_t md[32];

    if (EVP_Digest(der, len, md, NULL, signer_hash_md(SIGNER_SHA256), NULL) != 1)
        memset(md, 0, sizeof(md));
    memcpy(etag, md, OCSP_FP_LEN);
}

/* The store operation of a signed job: the answer (the job's own with `take`, else a copy) and
 * its header. NULL when out of memory. */
static struct ocsp_store_op *
ocsp_store_op_of(struct ocsp_responder *r, struct ocsp_job *j, bool take)
{
    struct ocsp_store_op *so = calloc(1, sizeof(*so));
    size_t max_sig;

    if (so == NULL || (!take && (so->der = malloc(j->resp_len)) == NULL)) {
        free(so);
        return NULL;
    }
    if (take)
        so->der = j->resp;
    else
        memcpy(so->der, j->resp, j->resp_len);
    memcpy(so->serial, j->serial, j->serial_len);
    so->put = (struct ocsp_response_put){.form = j->form,
                                         .issuer_id = j->iss->rec.id,
                                         .serial = so->serial,
                                         .serial_len = j->serial_len,
                                         .stamp = j->stamp,
                                         .this_update = j->this_update,
                                         .next_update = j->next_update,
                                         .produced_at = j->produced_at,
                                         .der = so->der,
                                         .der_len = j->resp_len,
                                         .replace = j->replace};
    memcpy(so->put.signer_fp, j->iss->signer_fp, OCSP_FP_LEN);
    ocsp_etag_of(so->der, j->resp_len, so->put.etag);
    /* the issuer's certs field, the same in all its answers, is not stored with each: the
     * reader puts it back (ocsp_store.h) */
    if (j->iss->certs_len > 0 && j->resp_len > j->iss->certs_len &&
        memcmp(so->der + j->resp_len - j->iss->certs_len, j->iss->certs, j->iss->certs_len) == 0)
        so->put.certs_len = j->iss->certs_len;
    /* padded to the longest signature of the key (an ECDSA signature's DER is often 1 or 2
     * bytes shorter): re-signing the answer writes a value of the same size, which LMDB
     * overwrites in place (no page split); the padding is never part of the answer */
    max_sig = signer_key_max_sig(j->iss->key);
    if (max_sig > j->sj.sig_len && max_sig - j->sj.sig_len <= UINT16_MAX)
        so->put.pad_len = max_sig - j->sj.sig_len;
    so->key_len = ocsp_response_key(j->iss->rec.id, j->serial, j->serial_len, j->form, so->key);
    so->r = r;
    so->op = (struct commit_op){.cls = COMMIT_BACKGROUND,
                                .apply = ocsp_store_op_apply,
                                .done = ocsp_store_op_done,
                                .user = so};
    return so;
}

/* Hand a signed response to the pipeline. true when the job's completion now waits for it. */
static bool
ocsp_job_store(struct ocsp_responder *r, struct ocsp_job *j)
{
    bool wait = j->wait_store;
    struct ocsp_store_op *so = ocsp_store_op_of(r, j, wait);
    int st;

    if (so == NULL) {
        j->store_status = ST_NOMEM;
        return false;
    }
    so->job = wait ? j : NULL;
    st = r->commit != NULL ? commit_submit(r->commit, &so->op) : ST_INVALID;
    if (st == ST_OK)
        return wait;      /* with wait, j may already be completed and freed: not touched again */
    j->store_status = st; /* refused: full, or too many waiting (a long ocspctl transaction) */
    if (!wait)
        free(so->der);
    free(so);
    return false;
}

/* Signer batch callback: assemble each response and complete its job at once; the ones to keep
 * go to the commit pipeline (a re-sign job completes when its response is stored). No I/O
 * here: an answer never waits for a disk or for another process's write transaction. */
static void
ocsp_batch(struct signer_job **jobs, size_t n, void *ctx)
{
    struct ocsp_responder *r = ctx;

    for (size_t i = 0; i < n; i++) {
        struct ocsp_job *j = jobs[i]->user;
        size_t alg_len;
        const uint8_t *alg;

        if (j->sj.status == ST_OK) {
            alg = signer_key_sigalg_der(j->iss->key, &alg_len);
            if (ocsp_response_assemble(
                    &(struct ocsp_signed_parts){j->tbs, j->tbs_len, alg, alg_len, j->sj.sig,
                                                j->sj.sig_len, j->iss->certs, j->iss->certs_len},
                    &j->resp, &j->resp_len) != ST_OK)
                j->sj.status = ST_NOMEM;
        }
        if (j->resp != NULL && j->store && ocsp_job_store(r, j))
            continue;
        j->done(j, j->ctx);
    }
}

struct ocsp_responder *
ocsp_responder_new(const struct ocsp_config *cfg, struct ocsp_store *st, bool strict)
{
    struct ocsp_responder *r = calloc(1, sizeof(*r));
    struct signer_config sc = {0};

    if (r == NULL)
        return NULL;
    r->cfg = cfg;
    r->store = st;
    atomic_init(&r->due_note, INT64_MAX);
    r->m_superseded = metrics_counter(
        "ocsp_answers_superseded_total",
        "Signed responses not stored: their status record changed or went (or the answer was "
        "purged) while they were being signed.");
    if (!ocsp_store_readonly(st)) /* a read-only store (ocspd -n) is never written */
        r->commit =
            commit_new(ocsp_store_raw(st),
                       &(struct commit_config){.name = "ocsp",
                                               .queue_max = OCSP_COMMIT_QUEUE_MAX,
                                               .group_max = OCSP_COMMIT_GROUP_MAX,
                                               .fill_limit = cfg->store.fill_limit,
                                               .hygiene_interval = cfg->store.reader_check});
    if (r->commit == NULL && !ocsp_store_readonly(st))
        goto fail;
    signer_config_init(&sc, &cfg->signer);
    r->signer = signer_new(&sc, ocsp_batch, r);
    if (r->signer == NULL || signer_start(r->signer) != ST_OK)
        goto fail;
    r->issuers = ocsp_issuers_new(st, r->signer, strict);
    if (r->issuers == NULL || ocsp_issuers_reload(r->issuers) != ST_OK)
        goto fail;
    ocsp_issuers_mark_seen(r->issuers);
    return r;
fail:
    ocsp_responder_free(r);
    return NULL;
}

void
ocsp_responder_free(struct ocsp_responder *r)
{
    if (r == NULL)
        return;
    signer_free(r->signer);          /* pending jobs complete with ST_SHUTDOWN */
    commit_free(r->commit);          /* what is queued is stored (or waits for ocspctl's lock) */
    ocsp_presign_tail_free(r->tail); /* after the pipeline: its operations count into it */
    ocsp_issuers_free(r->issuers);
    free(r);
}

struct ocsp_store *
ocsp_responder_store(struct ocsp_responder *r)
{
    return r->store;
}

struct commit *
ocsp_responder_commit(struct ocsp_responder *r)
{
    return r->commit;
}

/* Healthy: the signer works and no served issuer's responder certificate has expired (its
 * answers would not verify). */
bool
ocsp_responder_healthy(struct ocsp_responder *r)
{
    bool signer_ok = signer_healthy(r->signer);

    return ocsp_issuers_healthy(r->issuers, (int64_t)time(NULL)) && signer_ok;
}

unsigned
ocsp_responder_queue(struct ocsp_responder *r)
{
    return signer_queue_depth(r->signer);
}

struct ocsp_issuers *
ocsp_responder_issuers(struct ocsp_responder *r)
{
    return r->issuers;
}

struct ocsp_job *
ocsp_job_new(struct ocsp_responder *r, const struct ocsp_issuer *iss,
             const struct ocsp_tbs_spec *spec)
{
    struct ocsp_job *j = calloc(1, sizeof(*j));
    unsigned dl = 0;
    struct der d;

    if (j == NULL)
        return NULL;
    j->r = r;
    j->iss = iss;
    j->produced_at = spec->produced_at;
    if (der_init_alloc(&d, 512) != ST_OK)
        goto fail;
    ocsp_tbs_build(&d, iss->rid, iss->rid_len, spec);
    if (der_finish(&d) != ST_OK) {
        der_release(&d);
        goto fail;
    }
    j->tbs = der_take(&d, &j->tbs_len);
    if (EVP_Digest(j->tbs, j->tbs_len, j->sj.digest, &dl, signer_key_md(iss->key), NULL) != 1)
        goto fail;
    j->sj.digest_len = dl;
    j->sj.key = iss->key;
    j->sj.user = j;
    return j;
fail:
    ocsp_job_free(j);
    return NULL;
}

int
ocsp_job_submit(struct ocsp_job *j, ocsp_job_done_fn done, void *ctx)
{
    j->done = done;
    j->ctx = ctx;
    return signer_submit(j->r->signer, &j->sj);
}

void
ocsp_job_free(struct ocsp_job *j)
{
    if (j == NULL)
        return;
    free(j->tbs);
    free(j->resp);
    free(j);
}

/* Waiting for a set of re-sign jobs. */
struct resign_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t pending;
    /* the submitting thread waits until at most wake_at are pending, and the callbacks wake
     * it only then: refilled from half the limit, it wakes once per limit / 2 answers, not
     * after every one (perf: 3 % of a presign's CPU in the wake-ups, and a context switch of
     * the submitting thread per answer). A broadcast with no waiter costs no system call */
    size_t wake_at;
    size_t stored;
    size_t unstored; /* signed, but the store write failed */
    size_t full;     /* of those, refused above the store's fill level */
    size_t gone;     /* not written: its status record changed or went while it was being
                        signed, or (refresh) the answer was purged meanwhile */
    size_t refused;  /* not signed: the signer refused the job (its queue full, stopping) */
    /* sorted (presign): the signed answers gathered here, written in key order at the end */
    bool sorted;
    bool refresh; /* only over the answers still stored (ocsp_responder_refresh) */
    struct ocsp_responder *r;
    struct ocsp_store_op **ops;
    size_t n_ops, cap_ops;
};

/* Under w->lock: wait until at most `at` operations are pending. */
static void
resign_wait_until(struct resign_wait *w, size_t at)
{
    w->wake_at = at;
    while (w->pending > at)
        pthread_cond_wait(&w->cond, &w->lock);
}

/* Under w->lock, after pending went down: wake the waiting thread once it is down to what it
 * waits for. */
static void
resign_wake(struct resign_wait *w)
{
    if (w->pending <= w->wake_at)
        pthread_cond_broadcast(&w->cond);
}

/* Under w->lock: one more operation pending, waiting first while `limit` are (down to half). */
static void
resign_admit(struct resign_wait *w, size_t limit)
{
    if (w->pending >= limit)
        resign_wait_until(w, limit / 2);
    w->pending++;
}

/* A sorted write's operation completed (on the pipeline's writer thread). */
static void
ocsp_presign_stored(struct resign_wait *w, int status)
{
    pthread_mutex_lock(&w->lock);
    w->pending--;
    if (status == ST_OK)
        w->stored++;
    else if (status == ST_NOTFOUND)
        w->gone++;
    else
        w->unstored++;
    if (status == ST_FULL)
        w->full++;
    resign_wake(w);
    pthread_mutex_unlock(&w->lock);
}

/* Keep a signed answer of a sorted write (under w->lock). */
static void
ocsp_presign_keep(struct resign_wait *w, struct ocsp_job *j)
{
    struct ocsp_store_op *so;

    if (w->n_ops == w->cap_ops) {
        size_t cap = w->cap_ops ? w->cap_ops * 2 : 256;
        struct ocsp_store_op **ops = realloc(w->ops, cap * sizeof(*ops));

        if (ops == NULL) {
            w->unstored++;
            return;
        }
        w->ops = ops;
        w->cap_ops = cap;
    }
    if ((so = ocsp_store_op_of(w->r, j, true)) == NULL || so->key_len == 0) {
        free(so);
        w->unstored++;
        return;
    }
    j->resp = NULL; /* the operation's now */
    so->wait = w;
    w->ops[w->n_ops++] = so;
}

static void
ocsp_resign_done(struct ocsp_job *j, void *ctx)
{
    struct resign_wait *w = ctx;

    pthread_mutex_lock(&w->lock);
    w->pending--;
    if (w->sorted && j->resp != NULL && j->sj.status == ST_OK)
        ocsp_presign_keep(w, j);
    else if (j->stored)
        w->stored++;
    else if (j->store_status == ST_NOTFOUND)
        w->gone++;
    else if (j->resp != NULL)
        w->unstored++;
    if (j->store_status == ST_FULL)
        w->full++;
    resign_wake(w);
    pthread_mutex_unlock(&w->lock);
    ocsp_job_free(j);
}

/* Queue the pre-signed forms for one (issuer, serial). */
static void
ocsp_resign_one(struct ocsp_responder *r, const struct ocsp_change *c, struct resign_wait *w,
                unsigned limit)
{
    static const uint8_t presigned[] = {OCSP_HASH_SHA1, OCSP_HASH_SHA256};
    const uint8_t *forms = c->form != 0 ? &c->form : presigned;
    size_t n_forms = c->form != 0 ? 1 : 2;
    const struct ocsp_issuer *iss = ocsp_issuers_by_id(r->issuers, c->issuer_id);
    struct ocsp_status st;
    bool have;
    int64_t now = (int64_t)time(NULL);

    if (iss == NULL || ocsp_issuer_stale(ocsp_issuer_live(iss), now))
        return;
    have = ocsp_store_status_get(r->store, c->issuer_id, c->serial, c->serial_len, &st) == ST_OK;
    for (size_t f = 0; f < n_forms; f++) {
        struct ocsp_decide_in in = ocsp_issuer_decide_in(iss, now);
        struct ocsp_certid id;
        struct ocsp_decision d;
        struct ocsp_single *single = &d.single;
        struct ocsp_job *j;

        if (ocsp_certid_encode_form(&iss->hashes, forms[f], c->serial, c->serial_len, &id) != ST_OK)
            continue;
        in.status = have ? &st : NULL;
        in.certid = id.der;
        in.certid_len = id.der_len;
        ocsp_decide(&in, &d);
        j = ocsp_job_new(r, iss,
                         &(struct ocsp_tbs_spec){.produced_at = now,
                                                 .singles = single,
                                                 .n = 1,
                                                 .extended_revoke = d.extended_revoke});
        if (j == NULL)
            continue;
        j->store = !w->sorted; /* sorted: kept by ocsp_resign_done, written at the end */
        j->wait_store = !w->sorted;
        j->replace = w->refresh;
        j->form = ocsp_certid_form(&id);
        memcpy(j->serial, id.serial, id.serial_len);
        j->serial_len = id.serial_len;
        j->stamp = have ? st.stamp : 0;
        j->this_update = single->this_update;
        j->next_update = single->next_update;
        pthread_mutex_lock(&w->lock);
        resign_admit(w, limit);
        pthread_mutex_unlock(&w->lock);
        if (ocsp_job_submit(j, ocsp_resign_done, w) != ST_OK) {
            pthread_mutex_lock(&w->lock);
            w->pending--;
            w->refused++;
            pthread_mutex_unlock(&w->lock);
            ocsp_job_free(j);
        }
    }
}

static int
ocsp_op_key_cmp(const void *a, const void *b)
{
    const struct ocsp_store_op *x = *(struct ocsp_store_op *const *)a;
    const struct ocsp_store_op *y = *(struct ocsp_store_op *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);

    return c != 0 ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Write the gathered answers of a sorted write in key order: appended (MDB_APPEND) while
 * they sort after the last stored key, so a first presign fills leaf pages completely. */
static void
ocsp_presign_write(struct ocsp_responder *r, struct resign_wait *w, unsigned limit)
{
    if (w->n_ops > 1) /* none kept (a stale issuer, failed signatures): w->ops is NULL */
        qsort(w->ops, w->n_ops, sizeof(*w->ops), ocsp_op_key_cmp);
    for (size_t i = 0; i < w->n_ops; i++) {
        struct ocsp_store_op *so = w->ops[i];
        int st;

        so->put.append = true;
        pthread_mutex_lock(&w->lock);
        resign_admit(w, limit);
        pthread_mutex_unlock(&w->lock);
        st = r->commit != NULL ? commit_submit(r->commit, &so->op) : ST_INVALID;
        if (st != ST_OK) {
            pthread_mutex_lock(&w->lock);
            w->pending--;
            w->unstored++;
            if (st == ST_FULL)
                w->full++;
            pthread_mutex_unlock(&w->lock);
            free(so->der);
            free(so);
        }
    }
    free(w->ops);
    w->ops = NULL;
    w->n_ops = w->cap_ops = 0;
}

/* The outcome of a set of re-signed answers, from its counts. */
static int
ocsp_resign_result(const struct resign_wait *w)
{
    if (w->gone > 0)
        log_info("ocsp: %zu signed response(s) not stored: the status record changed or the "
                 "answer was purged while being signed",
                 w->gone);
    if (w->full > 0) {
        /* commit.c has logged the fill level; the answers are signed on demand meanwhile */
        log_info("ocsp: %zu signed response(s) not stored: the store is above fill_limit", w->full);
        return ST_FULL;
    }
    if (w->unstored > 0) {
        log_err("ocsp: %zu signed response(s) could not be stored", w->unstored);
        return ST_STORE;
    }
    if (w->refused > 0) {
        /* (before: dropped uncounted, and a presign said it was done with answers missing).
         * The refresher, whose jobs yield to live traffic, counts them as not stored and
         * walks again at its next interval: not logged for each of its chunks */
        if (!w->refresh)
            log_warn("ocsp: %zu response(s) not signed: the signer refused them (its queue "
                     "full, or stopping)",
                     w->refused);
        return ST_BUSY;
    }
    return ST_OK;
}

static void
ocsp_presign_tail_free(struct resign_wait *w)
{
    if (w == NULL)
        return;
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* Wait for the previous chunk's writes (presign) and add their counts to w's. */
static void
ocsp_presign_tail_take(struct ocsp_responder *r, struct resign_wait *w)
{
    struct resign_wait *t = r->tail;

    if (t == NULL)
        return;
    pthread_mutex_lock(&t->lock);
    resign_wait_until(t, 0);
    w->stored += t->stored;
    w->unstored += t->unstored;
    w->full += t->full;
    w->gone += t->gone;
    w->refused += t->refused;
    t->stored = t->unstored = t->full = t->gone = t->refused = 0;
    pthread_mutex_unlock(&t->lock);
}

static int
ocsp_resign_run(struct ocsp_responder *r, const struct ocsp_change *changes, size_t n,
                size_t *count, bool sorted, bool refresh)
{
    struct resign_wait w = {.sorted = sorted, .refresh = refresh, .r = r};
    /* half the signer's queue, the rest for on-demand answers; at least one */
    unsigned limit = r->cfg->signer.queue_max >= 2 ? r->cfg->signer.queue_max / 2 : 1;
    int rc;

    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    for (size_t i = 0; i < n; i++)
        ocsp_resign_one(r, &changes[i], &w, limit);
    pthread_mutex_lock(&w.lock);
    resign_wait_until(&w, 0);
    pthread_mutex_unlock(&w.lock);
    if (sorted) {
        /* the previous chunk's writes had this chunk's signing to be committed in: taken
         * now, and this chunk's are handed to the pipeline and committed while the caller
         * signs the next one (its counts come with the next call, or the flush) */
        ocsp_presign_tail_take(r, &w);
        if (r->tail == NULL && (r->tail = calloc(1, sizeof(*r->tail))) != NULL) {
            pthread_mutex_init(&r->tail->lock, NULL);
            pthread_cond_init(&r->tail->cond, NULL);
            r->tail->r = r;
            r->tail->sorted = true;
        }
        if (r->tail == NULL) {
            w.unstored += w.n_ops; /* no memory to count them: not written */
            for (size_t i = 0; i < w.n_ops; i++) {
                free(w.ops[i]->der);
                free(w.ops[i]);
            }
            free(w.ops);
        } else {
            r->tail->ops = w.ops;
            r->tail->n_ops = w.n_ops;
            r->tail->cap_ops = w.cap_ops;
            for (size_t i = 0; i < w.n_ops; i++)
                w.ops[i]->wait = r->tail;
            ocsp_presign_write(r, r->tail, OCSP_COMMIT_QUEUE_MAX / 2);
        }
        w.ops = NULL;
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    *count = w.stored;
    rc = ocsp_resign_result(&w);
    return rc;
}

int
ocsp_responder_presign_flush(struct ocsp_responder *r, size_t *count)
{
    struct resign_wait w = {.r = r};

    ocsp_presign_tail_take(r, &w);
    *count = w.stored;
    return ocsp_resign_result(&w);
}

int
ocsp_responder_resign(struct ocsp_responder *r, const struct ocsp_change *changes, size_t n,
                      size_t *count)
{
    return ocsp_resign_run(r, changes, n, count, false, false);
}

int
ocsp_responder_refresh(struct ocsp_responder *r, const struct ocsp_change *changes, size_t n,
                       size_t *count)
{
    return ocsp_resign_run(r, changes, n, count, false, true);
}

int
ocsp_responder_presign(struct ocsp_responder *r, const struct ocsp_change *changes, size_t n,
                       size_t *count)
{
    return ocsp_resign_run(r, changes, n, count, true, false);
}
