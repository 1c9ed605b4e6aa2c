/*
 * tsa_service: tsad's request pipeline (see tsa_service.h). RFC 3161 §2.4, §3.4;
 * STANDARDS TSP-01..13, TSP-18, TSA-05, TSA-09, TSA-17; DESIGN D2, D3, D5.
 */
#include "tsa/tsa_service.h"
#include "common/chain.h"
#include "common/daemon.h"
#include "common/journal.h"
#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/ratelimit.h"
#include "common/status.h"
#include "tsa/tsa_audit.h"
#include "tsa/tsa_checkpoint.h"
#include "tsa/tsa_request.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TSA_REPLY_TYPE "application/timestamp-reply" /* TSP-01 (RFC 3161 §3.4: not -response) */
#define TSA_QUERY_TYPE "application/timestamp-query"
#define TSA_CHAIN_TYPE "application/pem-certificate-chain" /* RFC 8555 §9.1 */
#define TSA_CHAIN_SUFFIX "/certchain"

/* One distinct URL path and the TSUs served there (TSA-17). */
struct tsa_path {
    struct tsa_set *set;
    const char *path;
    struct tsa_unit *units[TSA_MAX_UNITS];
    size_t n;
    struct tsa_unit *dflt;
    bool https_only; /* every TSU of the path says so (tsa_config checks they agree) */
};

/* genTime state of a TSU, by name, kept for the service's life: a TSU reloaded with a new
 * certificate or key keeps its name's genTime order (DESIGN D3), also while requests of the
 * old set are still in flight. Made on the control thread only; never freed before the
 * service. */
struct tsa_gen {
    char name[sizeof(((struct tsa_unit_config *)0)->name)];
    pthread_mutex_t lock;
    struct timespec last;
    bool seeded; /* `last` read from the audit log (or no store to read: tsad -n) */
    struct tsa_gen *next;
};

/*
 * The TSUs served (issue 9 item 4): a set built from one reading of the configuration file,
 * replaced as a whole by a reload. Requests take a reference when they start (the handler)
 * and drop it when their job is freed; the service holds one for the current set. The last
 * reference frees the units and releases their signer keys (a key a newer set kept stays).
 */
struct tsa_set {
    atomic_uint refs;
    struct tsa_service *svc;
    struct tsa_config *cfg; /* own copy: units point at their section in it */
    struct tsa_unit units[TSA_MAX_UNITS];
    struct tsa_gen *gen[TSA_MAX_UNITS];
    size_t n_units;
    struct tsa_path paths[TSA_MAX_UNITS];
    size_t n_paths;
    double max_error;               /* the smallest of the units': /healthz and the metrics */
    unsigned serial;                /* 1 at start, +1 per reload: for the log */
    char *chain_pem[TSA_MAX_UNITS]; /* GET <path>/certchain: each unit's cert + chain, PEM */
    size_t chain_pem_len[TSA_MAX_UNITS];
    bool key_loaded[TSA_MAX_UNITS]; /* a key of its own (not kept from the set before) */
};

struct tsa_service {
    const struct tsa_config *cfg; /* as started: what needs a restart ([server], [store], ...) */
    struct http_server *http;
    pthread_mutex_t set_lock; /* guards `set` and taking a reference to it */
    struct tsa_set *set;      /* current (one reference held) */
    struct tsa_gen *gens;
    atomic_bool closing;             /* tsa_service_free: keys go with the signer, not one by one */
    _Atomic double health_max_error; /* the current set's max_error */
    unsigned reloads;                /* sets built after the first */
    struct clock *clock;
    struct signer *signer;
    struct store *store;
    int audit_db;
    /* DESIGN D5, D10: a token leaves once its audit record is durable: in the write-ahead
     * journal (one O_DSYNC write per group), or, with journal = no, in an LMDB group commit */
    struct commit *commit;
    struct journal *journal;
    struct tsa_checkpoint *ckpt; /* [audit] signed checkpoints of the chain, or NULL */
    int lock_fd;                 /* flock on the store directory: one tsad per store */
    struct metric *m_granted, *m_batch, *m_audit_fail, *m_busy;
    struct metric *m_reject[TSA_FAIL_BITS];
    struct ratelimit *limit; /* [limits] token_rate per client address, or NULL (off) */
    struct metric *m_limited;
    struct metric *m_https_only;
};

/* One request in flight between the handler and the batch callback. */
struct tsa_job {
    struct signer_job sj;
    struct tsa_service *svc;
    struct tsa_set *set; /* the TSU set it was taken from (a reference) */
    struct http_request *http;
    struct tsa_unit *unit;
    struct tsa_request req;
    struct tsa_token tok;
    struct clock_reading clk;
    char client[48];
    uint64_t rid;
    uint8_t *resp; /* granted TimeStampResp, once assembled */
    size_t resp_len;
    char rec[TSA_AUDIT_MAX]; /* its audit record */
    size_t rec_len;
    struct journal_rec jrec; /* the record on its way to the journal, or */
    struct commit_op op;     /* to the store's commit pipeline (journal = no) */
};

static const char *const reject_names[TSA_FAIL_BITS] = {
    [TSA_FAIL_BAD_ALG] = "badAlg",
    [TSA_FAIL_BAD_REQUEST] = "badRequest",
    [TSA_FAIL_BAD_DATA_FORMAT] = "badDataFormat",
    [TSA_FAIL_TIME_NOT_AVAILABLE] = "timeNotAvailable",
    [TSA_FAIL_UNACCEPTED_POLICY] = "unacceptedPolicy",
    [TSA_FAIL_UNACCEPTED_EXTENSION] = "unacceptedExtension",
    [TSA_FAIL_ADD_INFO_NOT_AVAILABLE] = "addInfoNotAvailable",
    [TSA_FAIL_SYSTEM_FAILURE] = "systemFailure",
};

/* ---- TSU sets (issue 9 item 4) ---- */

static void
tsa_set_free(struct tsa_set *set)
{
    struct tsa_service *s = set->svc;
    bool closing = atomic_load(&s->closing);

    for (size_t i = 0; i < set->n_units; i++) {
        /* while the service closes, signer_free() frees every key itself */
        if (!closing && set->units[i].key != NULL)
            signer_key_release(s->signer, set->units[i].key);
        tsa_unit_clear(&set->units[i]);
        free(set->chain_pem[i]);
    }
    if (set->serial > 0 && !closing)
        log_info("tsa: TSU set #%u released (no request uses it any more)", set->serial);
    free(set->cfg);
    free(set);
}

/* The current set, with a reference for the caller. */
static struct tsa_set *
tsa_set_get(struct tsa_service *s)
{
    struct tsa_set *set;

    pthread_mutex_lock(&s->set_lock);
    set = s->set;
    atomic_fetch_add(&set->refs, 1);
    pthread_mutex_unlock(&s->set_lock);
    return set;
}

static void
tsa_set_put(struct tsa_set *set)
{
    if (set != NULL && atomic_fetch_sub(&set->refs, 1) == 1)
        tsa_set_free(set);
}

/* The set's TSUs at a raw request path, or NULL. */
static struct tsa_path *
tsa_set_path(struct tsa_set *set, const char *path)
{
    for (size_t i = 0; i < set->n_paths; i++)
        if (strcmp(set->paths[i].path, path) == 0)
            return &set->paths[i];
    return NULL;
}

static void
tsa_job_free(struct tsa_job *j)
{
    tsa_set_put(j->set);
    free(j->resp);
    free(j);
}

/* Answer with a rejection TimeStampResp (HTTP 200: the protocol carries the error). */
static void
tsa_reply_reject(struct tsa_service *s, struct http_request *http, uint64_t rid, enum tsa_fail fail,
                 const char *why)
{
    uint8_t buf[512];
    size_t n = tsa_rejection(fail, why, buf, sizeof(buf));

    metrics_inc(s->m_reject[fail]);
    log_req(LOG_LVL_DEBUG, (unsigned long long)rid, "rejected: %s: %s", reject_names[fail],
            why != NULL ? why : "");
    if (fail == TSA_FAIL_SYSTEM_FAILURE || fail == TSA_FAIL_TIME_NOT_AVAILABLE)
        http_reply_header(http, "Retry-After", "1");
    http_reply_header(http, "Cache-Control", "no-store");
    if (n == 0)
        http_reply(http, 500, "text/plain", "internal error\n", 15);
    else
        http_reply(http, 200, TSA_REPLY_TYPE, buf, n);
}

/* Over the client's [limits] token_rate: rejection/systemFailure (RFC 3161 §2.4.2: the TSA
 * cannot handle it now) with a statusString saying why and Retry-After: the time until the
 * client's budget has a token again. An answer in the protocol, as for a full signing queue,
 * rather than an HTTP 503 that clients report without a reason. */
static void
tsa_reply_limited(struct tsa_service *s, struct http_request *http, uint64_t rid,
                  const struct ratelimit_verdict *v)
{
    static const char why[] = "too many requests from this address ([limits] token_rate): "
                              "retry later";
    uint8_t buf[512];
    size_t n = tsa_rejection(TSA_FAIL_SYSTEM_FAILURE, why, buf, sizeof(buf));
    char ra[16];

    metrics_inc(s->m_limited);
    metrics_inc(s->m_reject[TSA_FAIL_SYSTEM_FAILURE]);
    if (v->first)
        log_req(LOG_LVL_INFO, (unsigned long long)rid,
                "tsa: rate limit: %s is over [limits] token_rate (%g/s, burst %g): "
                "systemFailure for %u s",
                http_req_client_ip(http), s->cfg->token_limit.rate, s->cfg->token_limit.burst,
                v->retry_after);
    snprintf(ra, sizeof(ra), "%u", v->retry_after);
    http_reply_header(http, "Retry-After", ra);
    http_reply_header(http, "Cache-Control", "no-store");
    if (n == 0)
        http_reply(http, 500, "text/plain", "internal error\n", 15);
    else
        http_reply(http, 200, TSA_REPLY_TYPE, buf, n);
}

static struct tsa_unit *
tsa_select_unit(struct tsa_path *p, const struct tsa_request *req)
{
    if (!req->has_policy)
        return p->dflt;
    for (size_t i = 0; i < p->n; i++)
        if (p->units[i]->policy_len == req->policy_len &&
            memcmp(p->units[i]->policy, req->policy, req->policy_len) == 0)
            return p->units[i];
    return NULL;
}

/* Build TSTInfo + signedAttrs with a fresh serial and the gated time; ST_OK or failure. */
static int
tsa_job_prepare(struct tsa_job *j)
{
    if (tsa_serial_new(j->tok.serial) != ST_OK)
        return ST_CRYPTO;
    j->sj.key = j->unit->key;
    j->sj.user = j;
    return tsa_token_prepare(j->unit, &j->req, &j->tok, j->sj.digest, &j->sj.digest_len);
}

/* An https_only path asked over plain HTTP: 403 and why (CIR-02: qualified time stamps are
 * served over HTTPS). True when refused. */
static bool
tsa_https_refused(struct tsa_path *p, struct http_request *http)
{
    static const char msg[] = "this time-stamping unit is served over HTTPS only: use the "
                              "https:// URL of this path\n";

    if (!p->https_only || http_req_tls(http))
        return false;
    metrics_inc(p->set->svc->m_https_only);
    log_req(LOG_LVL_DEBUG, (unsigned long long)http_req_id(http),
            "refused: %s is https_only, asked over plain HTTP", p->path);
    http_reply_header(http, "Cache-Control", "no-store");
    http_reply(http, 403, "text/plain", msg, sizeof(msg) - 1);
    return true;
}

/* GET <path>/certchain[?policy=OID]: the PEM chain of the path's default TSU (or of the TSU
 * of that policy), leaf first, as clients need to verify its tokens (issue 9 item 1). From the
 * set the request holds, so a reload changes the chains served with the TSUs. */
static void
tsa_certchain(struct http_request *http, struct tsa_path *p)
{
    static const char none[] = "no time-stamping unit of that policy on this path\n";
    const char *q = http_req_query(http);
    struct tsa_unit *u = p->dflt;
    size_t i;

    if (tsa_https_refused(p, http))
        return;
    if (q != NULL && strncmp(q, "policy=", 7) == 0) {
        u = NULL;
        for (i = 0; i < p->n; i++)
            if (strcmp(p->units[i]->cfg->policy, q + 7) == 0)
                u = p->units[i];
        if (u == NULL) {
            http_reply_header(http, "Cache-Control", "no-cache");
            http_reply(http, 404, "text/plain", none, sizeof(none) - 1);
            return;
        }
    }
    i = (size_t)(u - p->set->units);
    http_reply_header(http, "Cache-Control", "max-age=300");
    http_reply(http, 200, TSA_CHAIN_TYPE, p->set->chain_pem[i], p->set->chain_pem_len[i]);
}

/* The TSU path of `path` when it is `<tsu path>/certchain` ("/certchain" for the path "/"). */
static struct tsa_path *
tsa_chain_path(struct tsa_set *set, const char *path)
{
    size_t n = strlen(path), k = sizeof(TSA_CHAIN_SUFFIX) - 1;
    char base[sizeof(((struct tsa_unit_config *)0)->path)];

    if (n < k || strcmp(path + n - k, TSA_CHAIN_SUFFIX) != 0 || n - k >= sizeof(base))
        return NULL;
    if (n == k)
        return tsa_set_path(set, "/");
    memcpy(base, path, n - k);
    base[n - k] = '\0';
    return tsa_set_path(set, base);
}

static void
tsa_handle(struct http_request *http, void *ctx)
{
    struct tsa_service *s = ctx;
    struct tsa_set *set = tsa_set_get(s);
    struct tsa_path *p = tsa_set_path(set, http_req_path(http));
    uint64_t rid = http_req_id(http);
    struct tsa_job *j = NULL;
    struct tsa_gen *g;
    const unsigned char *body;
    const char *why = NULL;
    enum tsa_fail fail;
    size_t len;
    bool back;
    int st;
    struct ratelimit_verdict verdict;

    if (p == NULL) { /* one route takes every POST: the paths are the current set's */
        tsa_set_put(set);
        http_reply_header(http, "Cache-Control", "no-cache");
        http_reply(http, 404, "text/plain", "not found\n", 10);
        return;
    }
    if (tsa_https_refused(p, http)) {
        tsa_set_put(set);
        return;
    }
    body = http_req_body(http, &len);
    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        tsa_set_put(set);
        tsa_reply_reject(s, http, rid, TSA_FAIL_SYSTEM_FAILURE, "out of memory");
        return;
    }
    j->svc = s;
    j->set = set;
    j->http = http;
    j->rid = rid;
    snprintf(j->client, sizeof(j->client), "%s", http_req_client_ip(http));
    fail = tsa_request_parse(body, len, set->cfg->hashes, set->cfg->n_hashes, &j->req, &why);
    if (fail != TSA_FAIL_NONE)
        goto reject;
    j->unit = tsa_select_unit(p, &j->req);
    if (j->unit == NULL) {
        fail = TSA_FAIL_UNACCEPTED_POLICY;
        why = "requested policy is not served at this address";
        goto reject;
    }
    /* the clock is read and genTime assigned under the lock of the TSU's name (shared by the
     * sets a reload makes), so that concurrent requests get genTimes in the order they read
     * the clock; a genTime earlier than the previous one then only comes from a clock that
     * went back (DESIGN D3) */
    g = set->gen[j->unit - set->units]; /* shared with this TSU name in other sets */
    pthread_mutex_lock(&g->lock);
    j->unit->last_gen = g->last;
    clock_read_max(s->clock, j->unit->max_error, &j->clk);
    back = j->clk.verdict == CLOCK_OK &&
           !tsa_unit_gen_time_locked(j->unit, &j->clk.now, &j->tok.gen_time);
    g->last = j->unit->last_gen;
    pthread_mutex_unlock(&g->lock);
    if (j->clk.verdict != CLOCK_OK || back) { /* TSA-05, TSP-12 */
        fail = TSA_FAIL_TIME_NOT_AVAILABLE;
        why = back ? "the clock went back since the previous token"
                   : "time source not within the declared accuracy";
        goto reject;
    }
    if (j->clk.now.tv_sec >= j->unit->key_not_after ||
        j->clk.now.tv_sec < j->unit->key_not_before) { /* TSA-09, TPR-09 */
        fail = TSA_FAIL_SYSTEM_FAILURE;
        why = "outside the TSU key usage period";
        log_err("tsa: [tsu %s] outside its key usage period: refusing to sign", j->unit->cfg->name);
        goto reject;
    }
    verdict = ratelimit_take_addr(s->limit, j->client); /* work that costs a signature */
    if (!verdict.allowed) {
        tsa_reply_limited(s, http, rid, &verdict);
        tsa_job_free(j);
        return;
    }
    if (tsa_job_prepare(j) != ST_OK) {
        fail = TSA_FAIL_SYSTEM_FAILURE;
        why = "cannot build the token";
        goto reject;
    }
    http_req_suspend(http);
    st = signer_submit(s->signer, &j->sj);
    if (st == ST_OK)
        return;
    metrics_inc(s->m_busy);
    fail = TSA_FAIL_SYSTEM_FAILURE;
    why = st == ST_BUSY ? "signing queue full, retry later" : "service stopping";
reject:
    tsa_reply_reject(s, http, rid, fail, why);
    tsa_job_free(j);
}

/* GET on any path but /healthz and /metrics: 405 on a TSU path (POST only), 404 elsewhere,
 * as the route table did when it held one route per path. */
static void
tsa_handle_get(struct http_request *http, void *ctx)
{
    struct tsa_service *s = ctx;
    struct tsa_set *set = tsa_set_get(s);
    struct tsa_path *chain = tsa_chain_path(set, http_req_path(http));
    bool known = tsa_set_path(set, http_req_path(http)) != NULL;

    if (chain != NULL) {
        tsa_certchain(http, chain); /* the reply holds a copy: the set may go */
        tsa_set_put(set);
        return;
    }
    tsa_set_put(set);
    http_reply_header(http, "Cache-Control", "no-cache");
    if (known) {
        http_reply_header(http, "Allow", "POST");
        http_reply(http, 405, "text/plain", "method not allowed\n", 19);
    } else {
        http_reply(http, 404, "text/plain", "not found\n", 10);
    }
}

/* Assemble the granted response and its audit record text (on the signer's worker). */
static int
tsa_job_finish(struct tsa_job *j)
{
    const uint8_t *tok;
    uint8_t digest[32];
    size_t tok_len;

    if (j->sj.status != ST_OK)
        return j->sj.status;
    if (tsa_token_response(j->unit, &j->req, &j->tok, j->sj.sig, j->sj.sig_len, &j->resp,
                           &j->resp_len) != ST_OK)
        return ST_NOMEM;
    if (tsa_audit_token_span(j->resp, j->resp_len, &tok, &tok_len) != ST_OK ||
        EVP_Digest(tok, tok_len, digest, NULL, signer_hash_md(SIGNER_SHA256), NULL) != 1)
        return ST_INVALID;
    j->rec_len = tsa_audit_format(j->rec, sizeof(j->rec), j->unit, &j->req, &j->tok, &j->clk,
                                  j->client, digest);
    return j->rec_len > 0 ? ST_OK : ST_NOMEM;
}

/* The record is durable (ST_OK) or could not be written: reply, on the writer's thread. */
static void
tsa_job_recorded(struct tsa_job *j, int status)
{
    struct tsa_service *s = j->svc;

    if (status == ST_OK) {
        metrics_inc(s->m_granted);
        log_req(LOG_LVL_DEBUG, (unsigned long long)j->rid, "granted tsu=%s", j->unit->cfg->name);
        http_reply_header(j->http, "Cache-Control", "no-store");
        http_reply_take(j->http, 200, TSA_REPLY_TYPE, j->resp, j->resp_len);
        j->resp = NULL;
    } else {
        /* no token leaves without its record (DESIGN D5) */
        metrics_inc(s->m_audit_fail);
        log_req(LOG_LVL_WARN, (unsigned long long)j->rid,
                "audit record not written (%s): "
                "token withheld",
                status_str(status));
        tsa_reply_reject(s, j->http, j->rid, TSA_FAIL_SYSTEM_FAILURE,
                         status == ST_SHUTDOWN ? "service stopping" : "audit log unavailable");
    }
    tsa_job_free(j);
}

static void
tsa_journal_done(struct journal_rec *r, int status)
{
    tsa_job_recorded(r->user, status);
}

static void
tsa_commit_done(struct commit_op *op, int status)
{
    tsa_job_recorded(op->user, status);
}

/* journal = no: the record goes straight into the log, keyed by the next sequence number. */
static int
tsa_audit_apply(struct store_txn *t, struct commit_op *op)
{
    struct tsa_job *j = op->user;

    /* sealed into the node's chain here, where its number is fixed (issue 9 item 3) */
    return chain_txn_append(t, j->svc->audit_db, j->svc->cfg->audit.node, j->rec, j->rec_len);
}

/* Hand a finished job's record to the journal (or the pipeline); its reply follows from
 * there. Never waits (DESIGN D10: a batch callback does no I/O). */
static void
tsa_job_record(struct tsa_service *s, struct tsa_job *j)
{
    int st;

    if (s->journal != NULL) {
        j->jrec = (struct journal_rec){
            .data = j->rec, .len = j->rec_len, .done = tsa_journal_done, .user = j};
        st = journal_append(s->journal, &j->jrec);
    } else {
        j->op = (struct commit_op){
            .cls = COMMIT_ESSENTIAL, .apply = tsa_audit_apply, .done = tsa_commit_done, .user = j};
        st = commit_submit(s->commit, &j->op);
    }
    if (st != ST_OK)
        tsa_job_recorded(j, st);
}

/* Signer batch callback, on a worker: finish the tokens, hand their records on. */
static void
tsa_batch(struct signer_job **jobs, size_t n, void *ctx)
{
    struct tsa_service *s = ctx;

    metrics_observe(s->m_batch, (double)n);
    for (size_t i = 0; i < n; i++) {
        struct tsa_job *j = jobs[i]->user;
        int st = tsa_job_finish(j);

        if (st == ST_OK) {
            tsa_job_record(s, j);
            continue;
        }
        /* issue 8: an HSM that fails or does not answer within sign_timeout: systemFailure
         * with Retry-After, /healthz red (signer health), recovery by the signer itself */
        tsa_reply_reject(s, j->http, j->rid, TSA_FAIL_SYSTEM_FAILURE,
                         st == ST_SHUTDOWN  ? "service stopping"
                         : st == ST_TIMEOUT ? "signing timed out: the HSM does not answer"
                         : st == ST_HSM     ? "the HSM is unavailable"
                                            : "signing failed");
        tsa_job_free(j);
    }
}

static int
tsa_health(void *ctx, char *json, size_t cap)
{
    struct tsa_service *s = ctx;
    struct clock_reading clk;
    struct journal_stats js = {0};
    size_t used = 0, map = 1;
    bool store_ok, signer_ok, clock_ok;

    clock_read_max(s->clock, s->health_max_error, &clk);
    clock_ok = clk.verdict == CLOCK_OK;
    signer_ok = signer_healthy(s->signer);
    if (s->journal != NULL)
        journal_stats(s->journal, &js);
    /* red above fill_limit (keep the rest for the audit records still to come) and while the
     * journal cannot copy records into the store */
    store_ok = s->commit != NULL && store_usage(s->store, &used, &map) == ST_OK &&
               !commit_above_fill(s->commit) && !js.apply_failing && !js.write_failed &&
               !commit_failing(s->commit);
    snprintf(json, cap,
             "{\"status\":\"%s\",\"clock\":{\"ok\":%s,\"verdict\":\"%s\",\"error_bound\":%.6f,"
             "\"max_error\":%.6f,\"offset\":%.6f,\"stratum\":%d,\"leap\":%d},"
             "\"signer\":{\"ok\":%s,\"queue\":%u},"
             "\"store\":{\"ok\":%s,\"fill\":%.4f,\"used_bytes\":%zu,\"map_bytes\":%zu,"
             "\"journal_lag\":%llu}}",
             clock_ok && signer_ok && store_ok ? "ok" : "fail", clock_ok ? "true" : "false",
             clock_verdict_str(clk.verdict), clk.error_bound, s->health_max_error,
             clk.sample.offset, clk.sample.stratum, clk.sample.leap, signer_ok ? "true" : "false",
             signer_queue_depth(s->signer), store_ok ? "true" : "false",
             s->commit != NULL ? commit_fill(s->commit) : 0.0, used, map,
             (unsigned long long)(s->journal != NULL ? js.next_seq - 1 - js.applied_seq : 0));
    return clock_ok && signer_ok && store_ok;
}

static void
tsa_metrics_source(void *ctx, struct metrics_out *out)
{
    struct tsa_service *s = ctx;
    struct clock_reading clk;

    clock_read_max(s->clock, s->health_max_error, &clk);
    metrics_out_family(out, "tsa_signer_queue_depth", "gauge", "Jobs waiting for a signer.");
    metrics_out_value(out, "tsa_signer_queue_depth", signer_queue_depth(s->signer));
    metrics_out_family(out, "tsa_clock_error_bound_seconds", "gauge",
                       "Current bound on the clock error.");
    metrics_out_value(out, "tsa_clock_error_bound_seconds", clk.error_bound);
    metrics_out_family(out, "tsa_clock_offset_seconds", "gauge", "chronyd's offset estimate.");
    metrics_out_value(out, "tsa_clock_offset_seconds", clk.sample.offset);
    metrics_out_family(out, "tsa_clock_ok", "gauge", "1 when tokens may be issued.");
    metrics_out_value(out, "tsa_clock_ok", clk.verdict == CLOCK_OK);
}

static void
tsa_metrics_init(struct tsa_service *s)
{
    static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
    char name[96];

    s->m_granted = metrics_counter("tsa_tokens_total", "Time-stamp tokens issued.");
    s->m_batch = metrics_histogram("tsa_sign_batch_size", "Jobs per signing batch.", batch_buckets,
                                   sizeof(batch_buckets) / sizeof(double));
    s->m_audit_fail = metrics_counter("tsa_audit_commit_failures_total",
                                      "Audit records that could not be written (tokens withheld).");
    s->m_busy = metrics_counter("tsa_queue_full_total", "Requests refused: signing queue full.");
    s->m_limited = metrics_counter("tsa_rate_limited_total",
                                   "Requests refused: over [limits] token_rate for the address.");
    s->m_https_only = metrics_counter("tsa_https_only_refused_total",
                                      "Requests refused: an https_only path asked over HTTP.");
    for (int i = 0; i < TSA_FAIL_BITS; i++) {
        if (reject_names[i] == NULL)
            continue;
        snprintf(name, sizeof(name), "tsa_rejections_total{reason=\"%s\"}", reject_names[i]);
        s->m_reject[i] = metrics_counter(name, "Requests rejected, by PKIFailureInfo.");
    }
    metrics_source_add(tsa_metrics_source, s);
}

static int tsa_seed_gen_time(struct tsa_service *s, struct tsa_gen **gens, size_t n);
static int tsa_chain_pem(struct tsa_set *set, size_t i);

/* A reason for the reload's error (truncated to errlen, which is fine for a message). */
static void __attribute__((format(printf, 3, 4)))
tsa_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The genTime state of TSU `name`, made when first needed (control thread). */
static struct tsa_gen *
tsa_gen_for(struct tsa_service *s, const char *name)
{
    struct tsa_gen *g;

    for (g = s->gens; g != NULL; g = g->next)
        if (strcmp(g->name, name) == 0)
            return g;
    if ((g = calloc(1, sizeof(*g))) == NULL)
        return NULL;
    snprintf(g->name, sizeof(g->name), "%s", name);
    pthread_mutex_init(&g->lock, NULL);
    g->next = s->gens;
    s->gens = g;
    return g;
}

/* The unit of `old` that `uc` can keep the signing key of: same name, same key (label or file),
 * scheme, digest and certificate. NULL when there is none. */
static const struct tsa_unit *
tsa_same_key(const struct tsa_set *old, const struct tsa_unit_config *uc, const struct tsa_unit *u)
{
    for (size_t i = 0; old != NULL && i < old->n_units; i++) {
        const struct tsa_unit *o = &old->units[i];

        if (strcmp(o->cfg->name, uc->name) == 0 && strcmp(o->cfg->key_label, uc->key_label) == 0 &&
            strcmp(o->cfg->key_file, uc->key_file) == 0 && o->cfg->scheme == uc->scheme &&
            o->cfg->hash == uc->hash && memcmp(o->cert_sha256, u->cert_sha256, 32) == 0)
            return o;
    }
    return NULL;
}

/*
 * Build a set from `cfg` (taken over; freed with the set, also on failure) with the checks of a
 * start: each TSU's certificate and chain (tsa_unit_load: EKU, CA:TRUE refused, validity), its
 * key (found in the token by label and matched with the certificate, or read from its file; a
 * test signature verified), the largest token it can be asked for. A TSU whose key and
 * certificate are unchanged from `old` keeps its signer key. NULL on failure, with the reason
 * in err (and the details logged).
 */
static struct tsa_set *
tsa_set_build(struct tsa_service *s, struct tsa_config *cfg, const struct tsa_set *old, char *err,
              size_t errlen)
{
    struct tsa_set *set = calloc(1, sizeof(*set));
    struct tsa_gen *fresh[TSA_MAX_UNITS];
    size_t n_fresh = 0;

    if (set == NULL) {
        free(cfg);
        tsa_errf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&set->refs, 1);
    set->svc = s;
    set->cfg = cfg;
    for (size_t i = 0; i < cfg->n_units; i++) {
        const struct tsa_unit_config *uc = &cfg->units[i];
        struct tsa_unit *u = &set->units[i];
        const struct tsa_unit *keep;

        if (tsa_unit_load(u, uc) != ST_OK) {
            tsa_unit_clear(u); /* not yet counted in n_units: tsa_set_free skips it */
            tsa_errf(err, errlen,
                     "%s:%d: [tsu %s]: certificate %s (chain %s) refused or unreadable (see the "
                     "log line above)",
                     cfg->file, uc->line, uc->name, uc->cert, uc->chain[0] ? uc->chain : "none");
            goto fail;
        }
        set->n_units = i + 1;
        if (tsa_checkpoint_is_audit_key(s->ckpt, u->cert)) {
            tsa_errf(err, errlen,
                     "%s:%d: [tsu %s]: certificate %s certifies the [audit] key, which signs "
                     "audit checkpoints only",
                     cfg->file, uc->line, uc->name, uc->cert);
            goto fail;
        }
        if ((keep = tsa_same_key(old, uc, u)) != NULL) {
            signer_key_hold(keep->key);
            u->key = keep->key;
        } else if (uc->key_label[0] != '\0') {
            u->key = signer_add_p11_key(s->signer, uc->key_label, u->cert, uc->scheme, uc->hash);
        } else {
            u->key = signer_add_soft_key(s->signer, uc->key_file, u->cert, uc->scheme, uc->hash);
        }
        if (u->key == NULL) {
            log_err("tsa: [tsu %s] has no usable signing key", uc->name);
            tsa_errf(err, errlen,
                     "%s:%d: [tsu %s]: no usable signing key %s%s for certificate %s (missing, "
                     "not matching the certificate, or its test signature failed; see the log)",
                     cfg->file, uc->line, uc->name, uc->key_label[0] ? "key_label=" : "key_file=",
                     uc->key_label[0] ? uc->key_label : uc->key_file, uc->cert);
            goto fail;
        }
        if (tsa_unit_selftest(u) != ST_OK) {
            tsa_errf(err, errlen, "%s:%d: [tsu %s]: the self-test token cannot be built", cfg->file,
                     uc->line, uc->name);
            goto fail;
        }
        if ((set->gen[i] = tsa_gen_for(s, uc->name)) == NULL) {
            tsa_errf(err, errlen, "out of memory");
            goto fail;
        }
        if (!set->gen[i]->seeded)
            fresh[n_fresh++] = set->gen[i];
        if (set->max_error == 0 || u->max_error < set->max_error)
            set->max_error = u->max_error;
        set->key_loaded[i] = keep == NULL;
    }
    for (size_t i = 0; i < set->n_units; i++) {
        struct tsa_unit *u = &set->units[i];
        struct tsa_path *p = tsa_set_path(set, u->cfg->path);

        if (p == NULL) {
            p = &set->paths[set->n_paths++];
            p->set = set;
            p->path = u->cfg->path;
            p->https_only = u->cfg->https_only;
        }
        p->units[p->n++] = u;
        if (u->cfg->is_default)
            p->dflt = u;
        if (tsa_chain_pem(set, i) != ST_OK) {
            tsa_errf(err, errlen, "out of memory for the certificate chains");
            goto fail;
        }
    }
    /* a TSU name new to this process: its latest genTime from the audit log (DESIGN D3) */
    if (n_fresh > 0 && s->commit != NULL && tsa_seed_gen_time(s, fresh, n_fresh) != ST_OK) {
        log_err("tsa: cannot read the last genTime from the audit log");
        tsa_errf(err, errlen, "cannot read the last genTime of the TSUs from the audit log");
        goto fail;
    }
    return set;
fail:
    tsa_set_free(set);
    return NULL;
}

/* The audit events of the TSUs whose key the set loaded: once it serves (a reload that fails
 * after building it logs none, issue 9 item 4 review). */
static void
tsa_set_audit_loaded(const struct tsa_set *set)
{
    for (size_t i = 0; i < set->n_units; i++) {
        const struct tsa_unit_config *uc = set->units[i].cfg;

        if (set->key_loaded[i])
            log_audit("tsu_loaded", "tsu=%s policy=%s path=%s key=%s qualified=%s accuracy=%g",
                      uc->name, uc->policy, uc->path, signer_key_name(set->units[i].key),
                      uc->qualified ? "yes" : "no", uc->accuracy);
    }
}

/* Records read back at start for the latest genTime: those written after the latest one can
 * only be tokens that were in flight with it (queued or signing), far fewer than this. */
#define TSA_GEN_SCAN_MIN 65536u

struct gen_scan {
    size_t n_units;
    char tag[TSA_MAX_UNITS][2 * sizeof(((struct tsa_unit_config *)0)->name) * 3 + 16];
    size_t tag_len[TSA_MAX_UNITS];
    struct timespec max[TSA_MAX_UNITS];
    bool found[TSA_MAX_UNITS];
};

/* One audit record: its genTime, for the unit its "tsu" names. */
static bool
tsa_gen_scan(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct gen_scan *g = ctx;
    struct timespec t;
    size_t u;

    (void)key;
    (void)klen;
    for (u = 0; u < g->n_units; u++)
        if (g->tag_len[u] > 0 && memmem(val, vlen, g->tag[u], g->tag_len[u]) != NULL)
            break;
    if (u == g->n_units || !tsa_audit_gen_time(val, vlen, &t)) /* a unit no longer configured */
        return true;
    if (!g->found[u] || t.tv_sec > g->max[u].tv_sec ||
        (t.tv_sec == g->max[u].tv_sec && t.tv_nsec > g->max[u].tv_nsec))
        g->max[u] = t;
    g->found[u] = true;
    return true;
}

/* genTime never goes backwards between consecutive tokens of a TSU (DESIGN D3), also across
 * a restart: each unit starts from its latest genTime in the audit log (the journal is
 * replayed into it by now), so a clock that went back while tsad was down (or during a step
 * hold that a restart ended) is refused as it is while tsad runs (second review of issue 8). */
static int
tsa_seed_gen_time(struct tsa_service *s, struct tsa_gen **gens, size_t n)
{
    const struct config_signer *sc = &s->cfg->signer;
    struct store_txn *t = NULL;
    static struct gen_scan g; /* one control thread: at start and at reloads */
    uint8_t last[8], start[8];
    size_t klen = 0;
    uint64_t seq = 0, window;
    int st;
    struct timespec now;

    memset(&g, 0, sizeof(g));
    g.n_units = n;
    for (size_t i = 0; i < n; i++)
        g.tag_len[i] = tsa_audit_tsu_tag(g.tag[i], sizeof(g.tag[i]), gens[i]->name);
    if ((st = store_txn_begin(s->store, false, &t)) != ST_OK)
        return st;
    st = store_txn_last(t, s->audit_db, last, sizeof(last), &klen);
    store_txn_abort(t);
    if (st == ST_NOTFOUND) {
        for (size_t i = 0; i < n; i++)
            gens[i]->seeded = true;
        return ST_OK; /* no token yet */
    }
    if (st != ST_OK || klen != sizeof(last))
        return st != ST_OK ? st : ST_STORE;
    for (size_t i = 0; i < sizeof(last); i++)
        seq = seq << 8 | last[i];
    window = (uint64_t)sc->queue_max + (uint64_t)sc->batch_max * (sc->workers + 1u);
    if (window < TSA_GEN_SCAN_MIN)
        window = TSA_GEN_SCAN_MIN;
    seq = seq > window ? seq - window : 0;
    for (size_t i = 0; i < sizeof(start); i++)
        start[i] = (uint8_t)(seq >> (8 * (sizeof(start) - 1 - i)));
    if ((st = store_walk(s->store, s->audit_db, start, sizeof(start), tsa_gen_scan, &g)) != ST_OK)
        return st;
    clock_gettime(CLOCK_REALTIME, &now);
    for (size_t i = 0; i < n; i++) {
        gens[i]->seeded = true;
        if (!g.found[i])
            continue;
        pthread_mutex_lock(&gens[i]->lock);
        gens[i]->last = g.max[i];
        pthread_mutex_unlock(&gens[i]->lock);
        if (g.max[i].tv_sec > now.tv_sec)
            log_warn("tsa: [tsu %s] its last token in the audit log has a genTime %lld s ahead "
                     "of the system clock: tokens are refused (timeNotAvailable) until the clock "
                     "passes it (genTime never goes back, DESIGN D3)",
                     gens[i]->name, (long long)(g.max[i].tv_sec - now.tv_sec));
    }
    return ST_OK;
}

/* The unit's certificate then its chain (the CA certificates, without the leaf), PEM. */
static int
tsa_chain_pem(struct tsa_set *set, size_t i)
{
    const struct tsa_unit *u = &set->units[i];
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long len;
    int st = ST_NOMEM;

    if (bio == NULL || PEM_write_bio_X509(bio, u->cert) != 1)
        goto out;
    for (int k = 0; u->chain != NULL && k < sk_X509_num(u->chain); k++) {
        X509 *x = sk_X509_value(u->chain, k);

        if (X509_cmp(x, u->cert) != 0 && PEM_write_bio_X509(bio, x) != 1)
            goto out;
    }
    len = BIO_get_mem_data(bio, &data);
    if (len <= 0 || (set->chain_pem[i] = malloc((size_t)len)) == NULL)
        goto out;
    memcpy(set->chain_pem[i], data, (size_t)len);
    set->chain_pem_len[i] = (size_t)len;
    st = ST_OK;
out:
    BIO_free(bio);
    return st;
}

/* The HTTPS listener ([server] https_listen), on the server not yet started: its files are
 * checked here, so `tsad -n` checks them too. */
static int
tsa_https(struct tsa_service *s, struct http_server *http)
{
    const struct tsa_tls_config *t = &s->cfg->tls;
    struct http_tls_config tc = {.listen_addr = t->listen_host,
                                 .port = t->listen_port,
                                 .cert = t->cert,
                                 .key = t->key,
                                 .chain = t->chain,
                                 .only = !t->plain};
    char err[512];

    if (!t->on)
        return ST_OK;
    if (http_server_set_tls(http, &tc, err, sizeof(err)) != ST_OK) {
        log_err("tsa: HTTPS listener: %s", err);
        return ST_CONFIG;
    }
    return ST_OK;
}

/* One route takes every POST and one every GET (but /healthz and /metrics, matched first):
 * the handlers look the path up in the current set, so a reload can add and remove paths. */
static int
tsa_routes(struct tsa_service *s, struct http_server *http)
{
    if (http_route(http, "POST", "/", true, TSA_QUERY_TYPE, tsa_handle, s) != ST_OK ||
        http_route(http, "GET", "/", true, NULL, tsa_handle_get, s) != ST_OK)
        return ST_ERR;
    http_server_set_health(http, tsa_health, s);
    return ST_OK;
}

/* One tsad per store: two would hand out the same sequence numbers to different records
 * through their journals. An exclusive flock on the store directory itself (not on a file in
 * it, which could be deleted and made again), held for the process's life. */
static int
tsa_lock_store(struct tsa_service *s)
{
    const char *path = s->cfg->store.path;

    s->lock_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->lock_fd < 0) {
        log_err("tsa: cannot open %s: %s", path, strerror(errno));
        return ST_IO;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        log_err("tsa: the store %s is in use by another tsad (the directory is locked): one "
                "tsad per store",
                path);
        return ST_BUSY;
    }
    return ST_OK;
}

/* The audit store, its commit pipeline and (journal = yes) the journal in front of it;
 * recovery of a journal left by a crash happens here, before anything is served. With
 * `check` (tsad -n, maybe beside a running tsad) the store is only looked at, read-only. */
static int
tsa_open_audit(struct tsa_service *s, bool check)
{
    static const char *const dbs[] = {TSA_AUDIT_DB};
    const struct config_store *sc = &s->cfg->store;
    struct commit_config cc = {
        .name = "tsa", .fill_limit = sc->fill_limit, .hygiene_interval = sc->reader_check};
    char key[PATH_MAX + 64], jdir[PATH_MAX + 16];
    struct journal_config jc = {0};
    struct stat sb;

    snprintf(jdir, sizeof(jdir), "%s/journal", sc->path);
    if (check) {
        if (!store_exists(sc->path))
            return ST_OK; /* made at the first start */
        s->store = store_open(sc->path, sc->map_size, dbs, 1, true);
        return s->store != NULL ? ST_OK : ST_STORE;
    }
    s->store = store_open(sc->path, sc->map_size, dbs, 1, false);
    if (s->store == NULL || tsa_lock_store(s) != ST_OK)
        return ST_STORE;
    snprintf(key, sizeof(key), "[store] map_size in %s", s->cfg->file);
    store_set_label(s->store, "tsad audit store", key);
    s->audit_db = store_db(s->store, TSA_AUDIT_DB);
    if ((s->commit = commit_new(s->store, &cc)) == NULL)
        return ST_STORE;
    jc.dir = jdir;
    jc.segment_size = sc->journal_segment;
    jc.segments_max = (unsigned)(sc->journal_max / sc->journal_segment);
    jc.chain_node = s->cfg->audit.node; /* records sealed into the chain (issue 9 item 3) */
    if (!sc->journal) {
        /* records a journal still holds (a crash with journal = yes) go into the log first:
         * the log's next sequence numbers are theirs */
        if (stat(jdir, &sb) == 0) {
            struct journal *j = journal_open(&jc, s->commit, s->audit_db);

            if (j == NULL)
                return ST_STORE;
            journal_close(j);
        }
        return ST_OK;
    }
    s->journal = journal_open(&jc, s->commit, s->audit_db);
    return s->journal != NULL ? ST_OK : ST_STORE;
}

struct tsa_service *
tsa_service_new(const struct tsa_config *cfg, struct http_server *http,
                const struct clock_source *clock_src, bool check)
{
    struct tsa_service *s = calloc(1, sizeof(*s));
    struct signer_config sc = {0};
    struct clock_config cc = {0};

    struct tsa_config *own;
    char err[512];

    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->http = http;
    s->lock_fd = -1;
    pthread_mutex_init(&s->set_lock, NULL);
    if (tsa_https(s, http) != ST_OK || tsa_open_audit(s, check) != ST_OK)
        goto fail;
    signer_config_init(&sc, &cfg->signer);
    s->signer = signer_new(&sc, tsa_batch, s);
    if (s->signer == NULL || (own = malloc(sizeof(*own))) == NULL)
        goto fail;
    memcpy(own, cfg, sizeof(*own));
    if ((s->set = tsa_set_build(s, own, NULL, err, sizeof(err))) == NULL)
        goto fail; /* the reason is logged */
    s->set->serial = 1;
    tsa_set_audit_loaded(s->set);
    s->health_max_error = s->set->max_error;
    {
        X509 *certs[TSA_MAX_UNITS];

        for (size_t i = 0; i < s->set->n_units; i++)
            certs[i] = s->set->units[i].cert;
        if (tsa_checkpoint_new(&cfg->audit, s->signer, certs, s->set->n_units, &s->ckpt) != ST_OK)
            goto fail;
    }
    cc.chrony_socket = cfg->chrony_socket;
    cc.poll_interval = cfg->poll_interval;
    cc.max_update_age = cfg->max_update_age;
    cc.max_error = s->health_max_error;
    cc.leap_guard = cfg->leap_guard;
    cc.kernel_check = cfg->kernel_check;
    s->clock = clock_src != NULL ? clock_new_with_source(&cc, clock_src) : clock_new(&cc);
    if (s->clock == NULL || signer_start(s->signer) != ST_OK)
        goto fail;
    if (!check &&
        tsa_checkpoint_start(s->ckpt, s->store, s->audit_db, s->journal, s->commit) != ST_OK)
        goto fail;
    s->limit = ratelimit_new(&cfg->token_limit);
    if (s->limit == NULL && cfg->token_limit.rate > 0)
        goto fail;
    tsa_metrics_init(s);
    if (tsa_routes(s, http) != ST_OK)
        goto fail;
    return s;
fail:
    tsa_service_free(s);
    return NULL;
}

void
tsa_service_free(struct tsa_service *s)
{
    struct tsa_gen *g, *next;

    if (s == NULL)
        return;
    metrics_source_remove(tsa_metrics_source, s);
    atomic_store(&s->closing, true); /* signer_free() frees every key */
    /* in order: the signer answers every pending job (ST_SHUTDOWN) through tsa_batch; the
     * journal writes the records handed to it (their tokens leave) and copies everything into
     * the store; the pipeline commits what it holds */
    tsa_checkpoint_free(s->ckpt); /* a last checkpoint while signer and journal still run */
    signer_free(s->signer);
    journal_close(s->journal);
    commit_free(s->commit);
    clock_free(s->clock);
    ratelimit_free(s->limit);
    /* every job is answered by now: the current set is the last one */
    if (s->set != NULL)
        tsa_set_put(s->set);
    for (g = s->gens; g != NULL; g = next) {
        next = g->next;
        pthread_mutex_destroy(&g->lock);
        free(g);
    }
    pthread_mutex_destroy(&s->set_lock);
    store_close(s->store);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
}

/* ---- reload (SIGHUP; issue 9 item 4) ---- */

/* Settings of a TSU section other than its name and place in the file. */
static bool
tsa_unit_cfg_same(const struct tsa_unit_config *a, const struct tsa_unit_config *b)
{
    return strcmp(a->policy, b->policy) == 0 && strcmp(a->path, b->path) == 0 &&
           a->is_default == b->is_default && strcmp(a->cert, b->cert) == 0 &&
           strcmp(a->chain, b->chain) == 0 && strcmp(a->key_label, b->key_label) == 0 &&
           strcmp(a->key_file, b->key_file) == 0 && a->scheme == b->scheme && a->hash == b->hash &&
           a->accuracy == b->accuracy && a->qualified == b->qualified &&
           a->tsa_name == b->tsa_name && a->ess_cert_id_v1 == b->ess_cert_id_v1;
}

static const struct tsa_unit *
tsa_set_unit(const struct tsa_set *set, const char *name)
{
    for (size_t i = 0; i < set->n_units; i++)
        if (strcmp(set->units[i].cfg->name, name) == 0)
            return &set->units[i];
    return NULL;
}

/* What the audit line says about the TSUs: added, removed and changed ones with the SHA-256
 * of their certificates (old->new), and how many stayed as they were. */
static void
tsa_set_diff(const struct tsa_set *old, const struct tsa_set *set, char *what, size_t cap)
{
    char added[512] = "", removed[512] = "", changed[768] = "", item[256];
    char fa[65], fb[65];
    unsigned same = 0;

    for (size_t i = 0; i < set->n_units; i++) {
        const struct tsa_unit *u = &set->units[i], *o = tsa_set_unit(old, u->cfg->name);

        hex_encode(fb, u->cert_sha256, 32, false);
        if (o == NULL) {
            snprintf(item, sizeof(item), "%s:sha256=%s", u->cfg->name, fb);
            daemon_list_add(added, sizeof(added), item);
            continue;
        }
        hex_encode(fa, o->cert_sha256, 32, false);
        if (strcmp(fa, fb) != 0)
            snprintf(item, sizeof(item), "%s:sha256=%s->%s", u->cfg->name, fa, fb);
        else if (!tsa_unit_cfg_same(o->cfg, u->cfg) || o->certs_len != u->certs_len ||
                 memcmp(o->certs, u->certs, u->certs_len) != 0)
            snprintf(item, sizeof(item), "%s:sha256=%s(settings)", u->cfg->name, fb);
        else {
            same++;
            continue;
        }
        daemon_list_add(changed, sizeof(changed), item);
    }
    for (size_t i = 0; i < old->n_units; i++) {
        const struct tsa_unit *o = &old->units[i];

        if (tsa_set_unit(set, o->cfg->name) != NULL)
            continue;
        hex_encode(fa, o->cert_sha256, 32, false);
        snprintf(item, sizeof(item), "%s:sha256=%s", o->cfg->name, fa);
        daemon_list_add(removed, sizeof(removed), item);
    }
    snprintf(what, cap, "tsus_added=%s tsus_removed=%s tsus_changed=%s tsus_unchanged=%u",
             added[0] ? added : "none", removed[0] ? removed : "none",
             changed[0] ? changed : "none", same);
}

/* Restart-only settings of tsad beyond [server], [store] and [signer]. */
static void
tsa_restart_keys(struct daemon_restart *r, const struct tsa_config *run,
                 const struct tsa_config *now)
{
    daemon_restart_common(r, &run->server, &now->server, &run->store, &now->store, &run->signer,
                          &now->signer);
    if (strcmp(run->chrony_socket, now->chrony_socket) != 0)
        daemon_restart_note(r, "[clock] chrony_socket");
    if (run->poll_interval != now->poll_interval)
        daemon_restart_note(r, "[clock] poll_interval");
    if (run->max_update_age != now->max_update_age)
        daemon_restart_note(r, "[clock] max_update_age");
    if (run->leap_guard != now->leap_guard)
        daemon_restart_note(r, "[clock] leap_guard");
    if (run->kernel_check != now->kernel_check)
        daemon_restart_note(r, "[clock] kernel_check");
    if (run->token_limit.rate != now->token_limit.rate ||
        run->token_limit.burst != now->token_limit.burst ||
        run->token_limit.sources != now->token_limit.sources)
        daemon_restart_note(r, "[limits]");
    if (run->tls.on != now->tls.on || run->tls.plain != now->tls.plain ||
        strcmp(run->tls.listen_host, now->tls.listen_host) != 0 ||
        run->tls.listen_port != now->tls.listen_port)
        daemon_restart_note(r, "[server] https_listen");
    /* the chain's node and the checkpoint key and thread are set up at the start only */
    if (strcmp(run->audit.node, now->audit.node) != 0)
        daemon_restart_note(r, "[audit] node");
    if (run->audit.checkpoint_interval != now->audit.checkpoint_interval)
        daemon_restart_note(r, "[audit] checkpoint_interval");
    if (strcmp(run->audit.key_label, now->audit.key_label) != 0 ||
        strcmp(run->audit.key_file, now->audit.key_file) != 0 ||
        strcmp(run->audit.cert, now->audit.cert) != 0 || run->audit.scheme != now->audit.scheme ||
        run->audit.hash != now->audit.hash)
        daemon_restart_note(r, "[audit] key");
}

/*
 * The TLS certificate, key and chain of the HTTPS listener: loaded and checked last, after the
 * TSUs, so that a reload either applies both or neither (http_tls_reload keeps the old
 * certificate when the new files are refused). New handshakes use the new certificate;
 * connections already open keep theirs. ST_OK, or an error with the reason in err.
 */
static int
tsa_reload_tls(struct tsa_service *s, const struct tsa_config *cfg, char *what, size_t whatcap,
               char *err, size_t errlen)
{
    char terr[512];
    size_t used;

    if (!s->cfg->tls.on || !cfg->tls.on)
        return ST_OK; /* turning HTTPS on or off needs a restart (tsa_restart_keys) */
    if (http_tls_reload(s->http, cfg->tls.cert, cfg->tls.key,
                        cfg->tls.chain[0] != '\0' ? cfg->tls.chain : NULL, terr,
                        sizeof(terr)) != ST_OK) {
        tsa_errf(err, errlen, "%s: [server] tls_cert/tls_key/tls_chain: %s", cfg->file, terr);
        return ST_CONFIG;
    }
    used = strlen(what);
    snprintf(what + used, whatcap - used, " tls_cert=%s", cfg->tls.cert);
    return ST_OK;
}

int
tsa_service_reload(struct tsa_service *s, const char *path, char *what, size_t whatcap, char *err,
                   size_t errlen)
{
    struct tsa_config *cfg = malloc(sizeof(*cfg));
    struct daemon_restart rs = {0};
    struct tsa_set *old, *set;
    size_t used;

    if (cfg == NULL) {
        tsa_errf(err, errlen, "out of memory");
        return ST_NOMEM;
    }
    if (tsa_config_load(cfg, path, err, errlen) != ST_OK) {
        free(cfg);
        return ST_CONFIG;
    }
    tsa_restart_keys(&rs, s->cfg, cfg);
    /* https_only with no HTTPS listener running (adding one needs a restart) would refuse every
     * request of the TSU: refused, the TSU keeps serving as it does */
    for (size_t i = 0; !s->cfg->tls.on && i < cfg->n_units; i++) {
        if (cfg->units[i].https_only) {
            tsa_errf(err, errlen,
                     "%s:%d: [tsu %s]: https_only = yes, but no HTTPS listener is running: "
                     "https_listen needs a restart, then https_only applies",
                     cfg->file, cfg->units[i].line, cfg->units[i].name);
            free(cfg);
            return ST_CONFIG;
        }
    }
    old = s->set; /* only this (control) thread replaces it */
    set = tsa_set_build(s, cfg, old, err, errlen);
    if (set == NULL)
        return ST_CONFIG;
    tsa_set_diff(old, set, what, whatcap);
    if (tsa_reload_tls(s, set->cfg, what, whatcap, err, errlen) != ST_OK) {
        tsa_set_put(set);
        return ST_CONFIG;
    }
    set->serial = ++s->reloads + 1;
    tsa_set_audit_loaded(set);
    log_set_level(set->cfg->log_level);
    pthread_mutex_lock(&s->set_lock);
    s->set = set;
    pthread_mutex_unlock(&s->set_lock);
    s->health_max_error = set->max_error;
    used = strlen(what);
    snprintf(what + used, whatcap - used, " set=%u needs_restart=%s", set->serial,
             rs.n > 0 ? rs.keys : "none");
    log_notice("tsa: TSU set #%u serves %zu TSU(s) on %zu path(s); set #%u is released once "
               "its requests in flight are answered",
               set->serial, set->n_units, set->n_paths, old->serial);
    tsa_set_put(old); /* requests in flight keep it until they are answered */
    return ST_OK;
}
