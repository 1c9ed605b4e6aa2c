/*
 * tsa_service: tsad's request pipeline (see tsa_service.h). RFC 3161 §2.4, §3.4;
 * STANDARDS TSP-01..13, TSP-18, TSA-05, TSA-09, TSA-17; DESIGN D2, D3, D5.
 */
#include "tsa/tsa_service.h"
#include "common/journal.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/ratelimit.h"
#include "common/status.h"
#include "tsa/tsa_audit.h"
#include "tsa/tsa_request.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
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
    struct tsa_service *svc;
    const char *path;
    struct tsa_unit *units[TSA_MAX_UNITS];
    size_t n;
    struct tsa_unit *dflt;
    bool https_only; /* every TSU of the path says so (tsa_config checks they agree) */
};

struct tsa_service {
    const struct tsa_config *cfg;
    struct tsa_unit units[TSA_MAX_UNITS];
    size_t n_units;
    struct tsa_path paths[TSA_MAX_UNITS];
    size_t n_paths;
    struct clock *clock;
    struct signer *signer;
    struct store *store;
    int audit_db;
    /* DESIGN D5, D10: a token leaves once its audit record is durable: in the write-ahead
     * journal (one O_DSYNC write per group), or, with journal = no, in an LMDB group commit */
    struct commit *commit;
    struct journal *journal;
    int lock_fd; /* flock on the store directory: one tsad per store */
    double health_max_error;
    struct metric *m_granted, *m_batch, *m_audit_fail, *m_busy;
    struct metric *m_reject[TSA_FAIL_BITS];
    struct ratelimit *limit; /* [limits] token_rate per client address, or NULL (off) */
    struct metric *m_limited;
    struct metric *m_https_only;
    char *chain_pem[TSA_MAX_UNITS]; /* GET <path>/certchain: each unit's cert + chain, PEM */
    size_t chain_pem_len[TSA_MAX_UNITS];
};

/* One request in flight between the handler and the batch callback. */
struct tsa_job {
    struct signer_job sj;
    struct tsa_service *svc;
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
    metrics_inc(p->svc->m_https_only);
    log_req(LOG_LVL_DEBUG, (unsigned long long)http_req_id(http),
            "refused: %s is https_only, asked over plain HTTP", p->path);
    http_reply_header(http, "Cache-Control", "no-store");
    http_reply(http, 403, "text/plain", msg, sizeof(msg) - 1);
    return true;
}

/* GET <path>/certchain[?policy=OID]: the PEM chain of the path's default TSU (or of the TSU
 * of that policy), leaf first, as clients need to verify its tokens (issue 9 item 1). */
static void
tsa_certchain(struct http_request *http, void *ctx)
{
    static const char none[] = "no time-stamping unit of that policy on this path\n";
    struct tsa_path *p = ctx;
    struct tsa_service *s = p->svc;
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
    i = (size_t)(u - s->units);
    http_reply_header(http, "Cache-Control", "max-age=300");
    http_reply(http, 200, TSA_CHAIN_TYPE, s->chain_pem[i], s->chain_pem_len[i]);
}

static void
tsa_handle(struct http_request *http, void *ctx)
{
    struct tsa_path *p = ctx;
    struct tsa_service *s = p->svc;
    uint64_t rid = http_req_id(http);
    struct tsa_job *j = NULL;
    const unsigned char *body;
    const char *why = NULL;
    enum tsa_fail fail;
    size_t len;
    bool back;
    int st;
    struct ratelimit_verdict verdict;

    if (tsa_https_refused(p, http))
        return;
    body = http_req_body(http, &len);
    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        tsa_reply_reject(s, http, rid, TSA_FAIL_SYSTEM_FAILURE, "out of memory");
        return;
    }
    j->svc = s;
    j->http = http;
    j->rid = rid;
    snprintf(j->client, sizeof(j->client), "%s", http_req_client_ip(http));
    fail = tsa_request_parse(body, len, s->cfg->hashes, s->cfg->n_hashes, &j->req, &why);
    if (fail != TSA_FAIL_NONE)
        goto reject;
    j->unit = tsa_select_unit(p, &j->req);
    if (j->unit == NULL) {
        fail = TSA_FAIL_UNACCEPTED_POLICY;
        why = "requested policy is not served at this address";
        goto reject;
    }
    /* the clock is read and genTime assigned under the unit's lock, so that concurrent
     * requests get genTimes in the order they read the clock; a genTime earlier than the
     * previous one then only comes from a clock that went back (DESIGN D3) */
    pthread_mutex_lock(&j->unit->lock);
    clock_read_max(s->clock, j->unit->max_error, &j->clk);
    back = j->clk.verdict == CLOCK_OK &&
           !tsa_unit_gen_time_locked(j->unit, &j->clk.now, &j->tok.gen_time);
    pthread_mutex_unlock(&j->unit->lock);
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
        free(j);
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
    free(j);
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
    free(j->resp);
    free(j);
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
    uint8_t key[8];
    size_t klen = 0;
    uint64_t seq = 1;
    int st = store_txn_last(t, j->svc->audit_db, key, sizeof(key), &klen);

    if (st == ST_OK && klen == 8)
        seq = journal_key_seq(key) + 1;
    else if (st != ST_NOTFOUND)
        return st == ST_OK ? ST_STORE : st;
    journal_key(seq, key);
    return store_txn_append(t, j->svc->audit_db, key, 8, j->rec, j->rec_len);
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
        free(j->resp);
        free(j);
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

static int
tsa_load_units(struct tsa_service *s)
{
    const struct tsa_config *cfg = s->cfg;

    for (size_t i = 0; i < cfg->n_units; i++) {
        const struct tsa_unit_config *uc = &cfg->units[i];
        struct tsa_unit *u = &s->units[i];
        X509 *cert;

        if (tsa_unit_load(u, uc) != ST_OK) {
            tsa_unit_clear(u); /* not yet counted in n_units: tsa_service_free skips it */
            return ST_CONFIG;
        }
        s->n_units = i + 1;
        cert = u->cert;
        if (uc->key_label[0] != '\0')
            u->key = signer_add_p11_key(s->signer, uc->key_label, cert, uc->scheme, uc->hash);
        else
            u->key = signer_add_soft_key(s->signer, uc->key_file, cert, uc->scheme, uc->hash);
        if (u->key == NULL) {
            log_err("tsa: [tsu %s] has no usable signing key", uc->name);
            return ST_CONFIG;
        }
        if (tsa_unit_selftest(u) != ST_OK)
            return ST_CONFIG;
        if (s->health_max_error == 0 || u->max_error < s->health_max_error)
            s->health_max_error = u->max_error;
        log_audit("tsu_loaded", "tsu=%s policy=%s path=%s key=%s qualified=%s accuracy=%g",
                  uc->name, uc->policy, uc->path, signer_key_name(u->key),
                  uc->qualified ? "yes" : "no", uc->accuracy);
    }
    return ST_OK;
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
tsa_seed_gen_time(struct tsa_service *s)
{
    const struct config_signer *sc = &s->cfg->signer;
    struct store_txn *t = NULL;
    static struct gen_scan g; /* one control thread, at start */
    uint8_t last[8], start[8];
    size_t klen = 0;
    uint64_t seq = 0, window;
    int st;
    struct timespec now;

    memset(&g, 0, sizeof(g));
    g.n_units = s->n_units;
    for (size_t i = 0; i < s->n_units; i++)
        g.tag_len[i] = tsa_audit_tsu_tag(g.tag[i], sizeof(g.tag[i]), s->units[i].cfg->name);
    if ((st = store_txn_begin(s->store, false, &t)) != ST_OK)
        return st;
    st = store_txn_last(t, s->audit_db, last, sizeof(last), &klen);
    store_txn_abort(t);
    if (st == ST_NOTFOUND)
        return ST_OK; /* no token yet */
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
    for (size_t i = 0; i < s->n_units; i++) {
        if (!g.found[i])
            continue;
        s->units[i].last_gen = g.max[i];
        if (g.max[i].tv_sec > now.tv_sec)
            log_warn("tsa: [tsu %s] its last token in the audit log has a genTime %lld s ahead "
                     "of the system clock: tokens are refused (timeNotAvailable) until the clock "
                     "passes it (genTime never goes back, DESIGN D3)",
                     s->units[i].cfg->name, (long long)(g.max[i].tv_sec - now.tv_sec));
    }
    return ST_OK;
}

/* The unit's certificate then its chain (the CA certificates, without the leaf), PEM. */
static int
tsa_chain_pem(struct tsa_service *s, size_t i)
{
    const struct tsa_unit *u = &s->units[i];
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
    if (len <= 0 || (s->chain_pem[i] = malloc((size_t)len)) == NULL)
        goto out;
    memcpy(s->chain_pem[i], data, (size_t)len);
    s->chain_pem_len[i] = (size_t)len;
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

static int
tsa_routes(struct tsa_service *s, struct http_server *http)
{
    char chain_path[sizeof(s->units[0].cfg->path) + sizeof(TSA_CHAIN_SUFFIX)];

    for (size_t i = 0; i < s->n_units; i++) {
        struct tsa_unit *u = &s->units[i];
        struct tsa_path *p = NULL;

        if (tsa_chain_pem(s, i) != ST_OK)
            return ST_NOMEM;
        for (size_t k = 0; k < s->n_paths; k++)
            if (strcmp(s->paths[k].path, u->cfg->path) == 0)
                p = &s->paths[k];
        if (p == NULL) {
            p = &s->paths[s->n_paths++];
            p->svc = s;
            p->path = u->cfg->path;
            p->https_only = u->cfg->https_only;
            snprintf(chain_path, sizeof(chain_path), "%s%s",
                     strcmp(p->path, "/") == 0 ? "" : p->path, TSA_CHAIN_SUFFIX);
            if (http_route(http, "POST", p->path, false, TSA_QUERY_TYPE, tsa_handle, p) != ST_OK ||
                http_route(http, "GET", chain_path, false, NULL, tsa_certchain, p) != ST_OK)
                return ST_ERR;
        }
        p->units[p->n++] = u;
        if (u->cfg->is_default)
            p->dflt = u;
    }
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

    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->lock_fd = -1;
    if (tsa_https(s, http) != ST_OK || tsa_open_audit(s, check) != ST_OK)
        goto fail;
    signer_config_init(&sc, &cfg->signer);
    s->signer = signer_new(&sc, tsa_batch, s);
    if (s->signer == NULL || tsa_load_units(s) != ST_OK)
        goto fail;
    if (!check && tsa_seed_gen_time(s) != ST_OK) {
        log_err("tsa: cannot read the last genTime from the audit log");
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
    if (s == NULL)
        return;
    metrics_source_remove(tsa_metrics_source, s);
    /* in order: the signer answers every pending job (ST_SHUTDOWN) through tsa_batch; the
     * journal writes the records handed to it (their tokens leave) and copies everything into
     * the store; the pipeline commits what it holds */
    signer_free(s->signer);
    journal_close(s->journal);
    commit_free(s->commit);
    clock_free(s->clock);
    ratelimit_free(s->limit);
    for (size_t i = 0; i < s->n_units; i++) {
        tsa_unit_clear(&s->units[i]);
        free(s->chain_pem[i]);
    }
    store_close(s->store);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
}
