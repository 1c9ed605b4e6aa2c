/*
 * ocsp_service: ocspd's HTTP pipeline (see ocsp_service.h).
 * RFC 6960 §2.3, §4.1-4.2, App. A; RFC 9919 §5-6; RFC 9654; STANDARDS OCSP-01..05, OCSP-10,
 * OCSP-17/18, OCSP-27, LW-01..05, STS-12, EID-05.
 */
#include "ocsp/ocsp_service.h"
#include "common/commit.h"
#include "common/cond.h"
#include "common/daemon.h"
#include "common/der.h"
#include "common/http_date.h"
#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/ratelimit.h"
#include "common/signer.h"
#include "common/status.h"
#include "ocsp/ocsp_cache.h"
#include "ocsp/ocsp_decide.h"
#include "ocsp/ocsp_front.h"
#include "ocsp/ocsp_issuers.h"
#include "ocsp/ocsp_refresher.h"
#include "ocsp/ocsp_request.h"
#include "ocsp/ocsp_request_fast.h"
#include "ocsp/ocsp_responder.h"
#include "ocsp/ocsp_response.h"
#include "ocsp/ocsp_store.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OCSP_RESPONSE_TYPE "application/ocsp-response"
#define OCSP_REQUEST_TYPE "application/ocsp-request"
#define OCSP_INFLIGHT_MAX                                                                          \
    64                             /* answers without a record being signed that others may wait   \
                                      for (more are signed without that) */
#define OCSP_INFLIGHT_WAITERS 256u /* requests waiting for one such signature, at most */

/* A request waiting for the answer another request is having signed. */
struct ocsp_waiter {
    struct ocsp_waiter *next;
    struct http_request *http;
    char inm[80];
};

/* An answer for a serial without a status record on its way through the signer: the same
 * CertID asked meanwhile waits for it instead of costing its own signature (issue 8 item 2),
 * as it would find it in the unissued cache a moment later. */
struct ocsp_inflight {
    bool used;
    uint8_t certid[OCSP_CERTID_MAX];
    size_t certid_len;
    const void *signer, *settings;
    struct ocsp_waiter *waiters;
    unsigned nwait;
};

struct ocsp_service {
    const struct ocsp_config *cfg; /* as started: what needs a restart */
    /* [ocsp] settings a reload changes (SIGHUP, issue 9 item 4) */
    _Atomic double max_age;
    _Atomic double refresh_margin; /* the refresher's: a kept reply is not sent past it */
    atomic_uint max_certids;
    struct ocsp_store *store;
    struct ocsp_responder *resp;
    struct ocsp_issuers *issuers; /* the responder's */
    struct ocsp_refresher *refresher;
    struct metric *m_hit, *m_signed, *m_busy, *m_refreshed, *m_304, *m_scans;
    struct metric *m_err[OCSP_RESP_STATUS_COUNT];
    struct ratelimit *limit;     /* answers signed on demand, per client address (OCSP-27) */
    struct ocsp_cache *unissued; /* answers for serials without a status record */
    struct metric *m_cached, *m_limited_try, *m_limited_presigned;
    struct ocsp_front *front; /* built replies by request bytes (issue 10 item 2) */
    struct metric *m_front_hit, *m_front_stale, *m_front_reads;
    pthread_mutex_t inflight_lock;
    struct ocsp_inflight inflight[OCSP_INFLIGHT_MAX];
};

/* A request waiting for its signature. */
struct ocsp_pending {
    struct ocsp_service *svc;
    struct http_request *http;
    bool cacheable;
    int64_t this_update, next_update, produced_at;
    char inm[80]; /* If-None-Match, copied while the handler runs */
    /* an answer for a serial without a status record: kept in the unissued cache */
    bool cache_it;
    const void *cache_signer, *cache_settings;
    uint8_t certid[OCSP_CERTID_MAX];
    size_t certid_len;
    struct ocsp_inflight *inflight; /* others may be waiting for this answer */
};

static const char *const err_names[OCSP_RESP_STATUS_COUNT] = {
    NULL, "malformedRequest", "internalError", "tryLater", NULL, "sigRequired", "unauthorized"};

/* An unsigned error (RFC 6960 §4.2.1); tryLater carries Retry-After: retry_after seconds. */
static void
ocsp_reply_error_retry(struct ocsp_service *s, struct http_request *http, enum ocsp_resp_status st,
                       const char *why, unsigned retry_after)
{
    uint8_t buf[8];
    size_t n = ocsp_error_response(st, buf, sizeof(buf));
    char ra[16];

    metrics_inc(s->m_err[st]);
    log_req(LOG_LVL_DEBUG, (unsigned long long)http_req_id(http), "%s: %s", err_names[st],
            why != NULL ? why : "");
    http_reply_header(http, "Cache-Control", "no-cache"); /* LW-04 */
    if (st == OCSP_RESP_TRY_LATER) {
        snprintf(ra, sizeof(ra), "%u", retry_after > 0 ? retry_after : 1);
        http_reply_header(http, "Retry-After", ra);
    }
    http_reply(http, 200, OCSP_RESPONSE_TYPE, buf, n);
}

static void
ocsp_reply_error(struct ocsp_service *s, struct http_request *http, enum ocsp_resp_status st,
                 const char *why)
{
    ocsp_reply_error_retry(s, http, st, why, 5);
}

/* Where a kept reply's answer came from (struct ocsp_front_hit.source). */
enum { OCSP_SRC_STORED = 1, OCSP_SRC_UNISSUED = 2 };

/* A successful answer to send. */
struct ocsp_answer {
    uint8_t *der; /* taken by ocsp_reply_ok */
    size_t len;
    int64_t produced_at, next_update;
    bool cacheable;      /* false: a nonce makes it one client's */
    const uint8_t *etag; /* stored with it (OCSP_FP_LEN bytes), or NULL: computed */
};

/* The Cache-Control max-age of an answer at `now`: to its nextUpdate, at most [ocsp] max_age
 * (LW-08). */
static uint32_t
ocsp_max_age(struct ocsp_service *s, int64_t next_update, int64_t now)
{
    int64_t age = next_update - now, cap = (int64_t)atomic_load(&s->max_age);

    if (age > cap)
        age = cap;
    return age > 0 ? (uint32_t)age : 0;
}

static void
ocsp_free_der(void *der)
{
    free(der);
}

static void
ocsp_canned_ref(void *c)
{
    http_canned_ref(c);
}

static void
ocsp_canned_unref(void *c)
{
    http_canned_unref(c);
}

/*
 * A successful response with RFC 9919 §6.2 caching headers (LW-03/04), or 304. A cacheable
 * answer is sent as a canned reply (built once, sendable again: the front cache keeps it) and
 * that reply is returned with a reference for the caller (NULL otherwise); the max-age it
 * carries goes to max_age_out (when not NULL), for the front cache's check.
 */
static struct http_canned *
ocsp_reply_ok(struct ocsp_service *s, struct http_request *http, const struct ocsp_answer *a,
              const char *inm, int64_t now, uint32_t *max_age_out)
{
    uint8_t digest[OCSP_FP_LEN];
    char etag[2 * OCSP_FP_LEN + 3], lm[HTTP_DATE_LEN], ex[HTTP_DATE_LEN], cc[96];
    struct http_canned *c;
    struct http_canned_spec spec;
    uint32_t max_age = ocsp_max_age(s, a->next_update, now);

    if (!a->cacheable) { /* a nonce makes the answer one client's */
        http_reply_header(http, "Cache-Control", "private, max-age=0, no-transform");
        http_reply_take(http, 200, OCSP_RESPONSE_TYPE, a->der, a->len);
        return NULL;
    }
    /* a strong ETag: the first bytes of SHA-256 of the answer, as stored with it */
    if (a->etag != NULL)
        memcpy(digest, a->etag, OCSP_FP_LEN);
    else
        ocsp_etag_of(a->der, a->len, digest);
    etag[0] = '"';
    hex_encode(etag + 1, digest, OCSP_FP_LEN, false);
    etag[2 * OCSP_FP_LEN + 1] = '"';
    etag[2 * OCSP_FP_LEN + 2] = '\0';
    if (max_age_out != NULL)
        *max_age_out = max_age;
    snprintf(cc, sizeof(cc), "max-age=%u, public, no-transform, must-revalidate",
             (unsigned)max_age);
    http_date_format(a->produced_at, lm);
    http_date_format(a->next_update, ex);
    if (inm != NULL && inm[0] != '\0' && (strstr(inm, etag) != NULL || strcmp(inm, "*") == 0)) {
        metrics_inc(s->m_304);
        free(a->der);
        http_reply_header(http, "ETag", etag);
        http_reply_header(http, "Cache-Control", cc);
        http_reply_header(http, "Last-Modified", lm);
        http_reply_header(http, "Expires", ex);
        http_reply(http, 304, NULL, NULL, 0);
        return NULL;
    }
    spec = (struct http_canned_spec){.status = 200,
                                     .content_type = OCSP_RESPONSE_TYPE,
                                     .parts = {{a->der, a->len}},
                                     .nparts = 1,
                                     .release = ocsp_free_der,
                                     .release_arg = a->der,
                                     .headers = (struct http_header[]){{"ETag", etag},
                                                                       {"Cache-Control", cc},
                                                                       {"Last-Modified", lm},
                                                                       {"Expires", ex}},
                                     .nheaders = 4};
    if ((c = http_canned_new(&spec)) == NULL) {
        /* (the parts are still ours) */
        http_reply_header(http, "ETag", etag);
        http_reply_header(http, "Cache-Control", cc);
        http_reply_header(http, "Last-Modified", lm);
        http_reply_header(http, "Expires", ex);
        http_reply_parts(http, 200, OCSP_RESPONSE_TYPE, spec.parts, spec.nparts, ocsp_free_der,
                         a->der);
        return NULL;
    }
    http_reply_canned(http, c);
    return c;
}

/* An answer that is not kept for later requests (signed for this one, or waited for). */
static void
ocsp_reply_once(struct ocsp_service *s, struct http_request *http, const struct ocsp_answer *a,
                const char *inm)
{
    http_canned_unref(ocsp_reply_ok(s, http, a, inm, (int64_t)time(NULL), NULL));
}

static bool
ocsp_inflight_same(const struct ocsp_inflight *f, const uint8_t *certid, size_t len,
                   const void *signer, const void *settings)
{
    return f->used && f->certid_len == len && memcmp(f->certid, certid, len) == 0 &&
           f->signer == signer && f->settings == settings;
}

/* Wait for the same CertID's answer already being signed: true when the request now waits
 * (suspended; answered by ocsp_inflight_finish). */
static bool
ocsp_inflight_join(struct ocsp_service *s, struct http_request *http, const struct ocsp_certid *id,
                   const struct ocsp_issuer *iss)
{
    const void *lv = ocsp_live_id(ocsp_issuer_live(iss)); /* an identity (ocsp_issuers.h) */
    const char *inm = http_req_header(http, "If-None-Match");
    struct ocsp_waiter *w;
    struct ocsp_status st;
    bool joined = false;

    if (s->unissued == NULL)
        return false;
    /* the answer in flight was decided without a record: once the serial has one (ocspctl
     * add/revoke since), a new request is answered from it, as by the unissued cache */
    if (ocsp_store_status_get(s->store, iss->rec.id, id->serial, id->serial_len, &st) !=
        ST_NOTFOUND)
        return false;
    pthread_mutex_lock(&s->inflight_lock);
    for (size_t i = 0; i < OCSP_INFLIGHT_MAX && !joined; i++) {
        struct ocsp_inflight *f = &s->inflight[i];

        if (!ocsp_inflight_same(f, id->der, id->der_len, iss, lv) ||
            f->nwait >= OCSP_INFLIGHT_WAITERS || (w = calloc(1, sizeof(*w))) == NULL)
            continue;
        w->http = http;
        snprintf(w->inm, sizeof(w->inm), "%s", inm != NULL ? inm : "");
        http_req_suspend(http); /* before another thread can answer it */
        w->next = f->waiters;
        f->waiters = w;
        f->nwait++;
        joined = true;
    }
    pthread_mutex_unlock(&s->inflight_lock);
    return joined;
}

/* Register p's answer as one that others may wait for (when a slot is free). */
static void
ocsp_inflight_begin(struct ocsp_service *s, struct ocsp_pending *p)
{
    pthread_mutex_lock(&s->inflight_lock);
    for (size_t i = 0; i < OCSP_INFLIGHT_MAX; i++) {
        struct ocsp_inflight *f = &s->inflight[i];

        if (ocsp_inflight_same(f, p->certid, p->certid_len, p->cache_signer, p->cache_settings))
            break; /* another request leads it already (it came in meanwhile) */
        if (f->used)
            continue;
        memset(f, 0, sizeof(*f));
        f->used = true;
        memcpy(f->certid, p->certid, p->certid_len);
        f->certid_len = p->certid_len;
        f->signer = p->cache_signer;
        f->settings = p->cache_settings;
        p->inflight = f;
        break;
    }
    pthread_mutex_unlock(&s->inflight_lock);
}

/* The leader's answer (der NULL: its failure, as `fail`): answer every waiter with its own
 * copy, and free the slot. */
static void
ocsp_inflight_finish(struct ocsp_service *s, struct ocsp_pending *p, const uint8_t *der, size_t len,
                     enum ocsp_resp_status fail)
{
    struct ocsp_waiter *w, *next;

    if (p->inflight == NULL)
        return;
    pthread_mutex_lock(&s->inflight_lock);
    w = p->inflight->waiters;
    memset(p->inflight, 0, sizeof(*p->inflight));
    pthread_mutex_unlock(&s->inflight_lock);
    p->inflight = NULL;
    for (; w != NULL; w = next) {
        uint8_t *copy = der != NULL ? malloc(len) : NULL;

        next = w->next;
        if (copy != NULL) {
            memcpy(copy, der, len);
            metrics_inc(s->m_cached);
            ocsp_reply_once(s, w->http,
                            &(struct ocsp_answer){.der = copy,
                                                  .len = len,
                                                  .produced_at = p->produced_at,
                                                  .next_update = p->next_update,
                                                  .cacheable = true},
                            w->inm);
        } else {
            ocsp_reply_error(s, w->http, der != NULL ? OCSP_RESP_INTERNAL_ERROR : fail,
                             "the answer waited for was not signed");
        }
        free(w);
    }
}

/* Signature done: reply (the batch already stored the cacheable ones). */
static void
ocsp_signed(struct ocsp_job *j, void *ctx)
{
    struct ocsp_pending *p = ctx;
    struct ocsp_service *s = p->svc;

    /* cached first, then the waiters answered: a request in between finds one or the other */
    if (p->cache_it && j->resp != NULL)
        ocsp_cache_put(s->unissued,
                       &(struct ocsp_cache_key){.certid = p->certid,
                                                .certid_len = p->certid_len,
                                                .signer = p->cache_signer,
                                                .settings = p->cache_settings},
                       &(struct ocsp_cache_answer){.der = j->resp,
                                                   .der_len = j->resp_len,
                                                   .produced_at = p->produced_at,
                                                   .next_update = p->next_update});
    ocsp_inflight_finish(s, p, j->resp, j->resp_len,
                         j->sj.status == ST_SHUTDOWN ? OCSP_RESP_TRY_LATER
                                                     : OCSP_RESP_INTERNAL_ERROR);
    if (j->resp == NULL) {
        int st = j->sj.status;

        /* issue 8: an HSM that fails or does not answer within sign_timeout is a passing
         * condition: tryLater with Retry-After (stored answers are still served meanwhile) */
        ocsp_reply_error(s, p->http,
                         st == ST_SHUTDOWN || st == ST_HSM || st == ST_TIMEOUT
                             ? OCSP_RESP_TRY_LATER
                             : OCSP_RESP_INTERNAL_ERROR,
                         st == ST_TIMEOUT ? "signing timed out: the HSM does not answer"
                         : st == ST_HSM   ? "the HSM is unavailable"
                                          : "signing failed");
    } else {
        metrics_inc(s->m_signed);
        ocsp_reply_once(s, p->http,
                        &(struct ocsp_answer){.der = j->resp,
                                              .len = j->resp_len,
                                              .produced_at = p->produced_at,
                                              .next_update = p->next_update,
                                              .cacheable = p->cacheable},
                        p->inm);
        j->resp = NULL;
    }
    ocsp_job_free(j);
    free(p);
}

/* The request's DER: the POST body, or the GET path decoded (OCSP-02). */
static bool
ocsp_request_bytes(struct http_request *http, uint8_t *buf, size_t cap, const uint8_t **der,
                   size_t *len)
{
    if (strcmp(http_req_method(http), "POST") == 0) {
        *der = http_req_body(http, len);
        return *der != NULL && *len > 0;
    }
    *der = buf;
    return ocsp_get_decode(http_req_subpath(http), buf, cap, len) == ST_OK;
}

/* The front cache's view of one request: its key (the request's DER) and the registry
 * generation read before anything was decided for it. */
struct ocsp_front_key {
    const uint8_t *b; /* the request's DER, borrowed for the handler's run */
    size_t len;       /* 0: not cacheable (too long, or no cache) */
    uint64_t gen;
};

/* The reply just sent for a one-CertID request, offered to the front cache: what backs it
 * (the serial's record as read with the answer, the generation) and until when it may be
 * sent again: its nextUpdate, the time the refresher re-signs it, the CRL's nextUpdate, the
 * responder certificate's expiry (STS-12, issue 8 item 4). */
static void
ocsp_front_offer(struct ocsp_service *s, const struct ocsp_front_key *k, struct http_canned *c,
                 const struct ocsp_front_hit *base, int64_t produced_at, int64_t now)
{
    struct ocsp_front_hit h = *base;
    const struct ocsp_issuer *iss = h.issuer;
    const struct ocsp_issuer_live *lv = ocsp_issuer_live(iss);
    int64_t until = h.next_update;

    if (c == NULL || k == NULL || k->len == 0)
        return; /* not kept: not cacheable, or answered without the nonce it asked for */
    /* the re-sign point is checked when it is sent, with the margin then (ocsp_front_backed) */
    h.produced_at = produced_at;
    h.put_at = now;
    if (lv->crl_fed && lv->crl_next_update < until)
        until = lv->crl_next_update;
    if (iss->signer_not_after < until)
        until = iss->signer_not_after;
    h.valid_until = until;
    h.gen = k->gen;
    h.reply = c;
    ocsp_front_put(s->front, k->b, k->len, &h);
}

/* Pre-signed hit: one CertID, no nonce to echo, response current for the status record. */
static bool
ocsp_try_stored(struct ocsp_service *s, struct http_request *http, const struct ocsp_certid *id,
                const struct ocsp_issuer *iss, int64_t now, const struct ocsp_front_key *k)
{
    struct ocsp_response_found f;
    const struct ocsp_stored_response *sr = &f.resp;
    struct ocsp_front_hit h = {0};
    struct http_canned *c;
    bool current;

    if (ocsp_store_response_get(s->store,
                                &(struct ocsp_response_query){.issuer_id = iss->rec.id,
                                                              .serial = id->serial,
                                                              .serial_len = id->serial_len,
                                                              .form = ocsp_certid_form(id),
                                                              .status = true,
                                                              .stamp_only = true,
                                                              .certs = iss->certs,
                                                              .certs_len = iss->certs_len},
                                &f) != ST_OK)
        return false;
    /* current: signed for the status record as it is now, not past its nextUpdate, and by
     * the issuer's current signer (a replaced responder certificate's answers are misses,
     * signed again: issue 8 item 4): the signer fingerprint stored with it, no DER walk */
    current = (f.status_found ? sr->stamp == f.status.stamp : sr->stamp == 0) &&
              sr->stamp != OCSP_STAMP_STALE && /* marked: never current, whatever the record */
              now < sr->next_update && sr->produced_at <= now + 1 &&
              memcmp(sr->signer_fp, iss->signer_fp, OCSP_FP_LEN) == 0 &&
              sr->certs_len == iss->certs_len;
    if (!current) {
        free(sr->der);
        return false;
    }
    metrics_inc(s->m_hit);
    c = ocsp_reply_ok(s, http,
                      &(struct ocsp_answer){.der = sr->der,
                                            .len = sr->der_len,
                                            .produced_at = sr->produced_at,
                                            .next_update = sr->next_update,
                                            .cacheable = true,
                                            .etag = sr->etag},
                      http_req_header(http, "If-None-Match"), now, &h.max_age);
    h.issuer = iss;
    memcpy(h.issuer_id, iss->rec.id, OCSP_ISSUER_ID_LEN);
    memcpy(h.serial, id->serial, id->serial_len);
    h.serial_len = (uint8_t)id->serial_len;
    h.status_found = f.status_found;
    h.stamp = f.status_found ? f.status.stamp : 0;
    h.next_update = sr->next_update;
    h.answer_len = sr->der_len;
    h.source = OCSP_SRC_STORED;
    ocsp_front_offer(s, k, c, &h, sr->produced_at, now);
    http_canned_unref(c);
    return true;
}

/* An answer for a serial without a status record, from the unissued cache: signed by the
 * issuer's current signer under its current settings, before its nextUpdate, and only while
 * the serial still has no record (one added since is answered from it). */
static bool
ocsp_try_cached(struct ocsp_service *s, struct http_request *http, const struct ocsp_certid *id,
                const struct ocsp_issuer *iss, int64_t now, const struct ocsp_front_key *k)
{
    struct ocsp_status st;
    struct ocsp_cache_answer a;
    struct ocsp_front_hit h = {0};
    struct http_canned *c;

    if (s->unissued == NULL ||
        !ocsp_cache_get(s->unissued,
                        &(struct ocsp_cache_key){.certid = id->der,
                                                 .certid_len = id->der_len,
                                                 .signer = iss,
                                                 .settings = ocsp_live_id(ocsp_issuer_live(iss))},
                        now, &a))
        return false;
    if (ocsp_store_status_get(s->store, iss->rec.id, id->serial, id->serial_len, &st) !=
        ST_NOTFOUND) {
        free(a.der); /* the serial has a record now (or the store cannot tell): not this answer */
        return false;
    }
    metrics_inc(s->m_cached);
    c = ocsp_reply_ok(s, http,
                      &(struct ocsp_answer){.der = a.der,
                                            .len = a.der_len,
                                            .produced_at = a.produced_at,
                                            .next_update = a.next_update,
                                            .cacheable = true},
                      http_req_header(http, "If-None-Match"), now, &h.max_age);
    h.issuer = iss;
    memcpy(h.issuer_id, iss->rec.id, OCSP_ISSUER_ID_LEN);
    memcpy(h.serial, id->serial, id->serial_len);
    h.serial_len = (uint8_t)id->serial_len;
    h.status_found = false;
    h.next_update = a.next_update;
    h.answer_len = a.der_len;
    h.source = OCSP_SRC_UNISSUED;
    ocsp_front_offer(s, k, c, &h, a.produced_at, now);
    http_canned_unref(c);
    return true;
}

/* The request's front cache key: the request's DER, whatever the method and the GET
 * spelling (every escaped or unescaped form of one request shares one entry and one reply);
 * false when it cannot be kept (no cache, too long, a conditional request: If-None-Match is
 * answered by the full path). */
static bool
ocsp_front_key_of(struct ocsp_service *s, struct http_request *http, const uint8_t *der, size_t len,
                  struct ocsp_front_key *k)
{
    const char *inm;

    k->len = 0;
    if (s->front == NULL || len == 0 || len > OCSP_FRONT_KEY_MAX)
        return false;
    inm = http_req_header(http, "If-None-Match");
    if (inm != NULL && inm[0] != '\0')
        return false;
    k->b = der;
    k->len = len;
    k->gen = ocsp_issuers_serve_gen(s->issuers);
    return true;
}

/* A request seen before: its kept reply, when what backs it is unchanged (ocsp_front.h). The
 * serial's status record is read now, unless no transaction was committed to the store since
 * the entry last read it (then the record is as it was), so a revocation is visible on the very
 * next request (EID-05). false: answer it the long way (a stale entry is dropped). */
static bool
ocsp_front_serve(struct ocsp_service *s, struct http_request *http, const struct ocsp_front_key *k,
                 int64_t now)
{
    struct ocsp_front_hit h;
    struct ocsp_status st = {0};
    uint64_t snap = 0;
    int rc;
    bool backed;

    if (!ocsp_front_get(s->front, k->b, k->len, &h))
        return false;
    if (h.snap != 0 && h.snap == ocsp_store_last_commit(s->store)) {
        rc = h.status_found ? ST_OK : ST_NOTFOUND; /* the record read in snapshot h.snap */
        st.stamp = h.stamp;
    } else {
        rc = ocsp_store_status_get_snap(s->store, h.issuer_id, h.serial, h.serial_len, &st, &snap);
        metrics_inc(s->m_front_reads);
    }
    backed = (rc == ST_OK || rc == ST_NOTFOUND) &&
             ocsp_front_backed(
                 &h, &(struct ocsp_front_now){.now = now,
                                              .gen = ocsp_issuers_serve_gen(s->issuers),
                                              .max_age = ocsp_max_age(s, h.next_update, now),
                                              .margin = atomic_load(&s->refresh_margin),
                                              .status_found = rc == ST_OK,
                                              .stamp = rc == ST_OK ? st.stamp : 0});
    if (!backed) {
        metrics_inc(s->m_front_stale);
        ocsp_front_drop(s->front, k->b, k->len);
        http_canned_unref(h.reply);
        return false;
    }
    if (snap != 0)
        ocsp_front_checked(s->front, k->b, k->len, h.reply, snap);
    metrics_inc(h.source == OCSP_SRC_UNISSUED ? s->m_cached : s->m_hit);
    metrics_inc(s->m_front_hit);
    http_reply_canned(http, h.reply);
    http_canned_unref(h.reply);
    return true;
}

/* A parsed request on its way: for the issuer answering it, at `now`. */
struct ocsp_ask {
    struct http_request *http;
    const struct ocsp_request *req;
    const struct ocsp_issuer *iss; /* the first served issuer of its CertIDs */
    bool echo_nonce;
    int64_t now;
};

/* Over the per-source budget (OCSP-27). A nonce request that a pre-signed answer can serve
 * gets it, without the nonce (RFC 9919 §2.2.1, OCSP-18: the best answer rather than an
 * error), unless the issuer requires nonces; anything else gets tryLater with Retry-After. */
static void
ocsp_rate_limited(struct ocsp_service *s, const struct ocsp_ask *a,
                  const struct ratelimit_verdict *v)
{
    struct http_request *http = a->http;
    const struct ocsp_request *req = a->req;
    const struct ocsp_issuer *iss = a->iss;
    bool echo_nonce = a->echo_nonce;
    int64_t now = a->now;

    if (v->first)
        log_req(LOG_LVL_INFO, (unsigned long long)http_req_id(http),
                "ocsp: rate limit: %s is over [limits] sign_rate (%g/s, burst %g): answers "
                "that need a signature get tryLater for %u s",
                http_req_client_ip(http), s->cfg->sign_limit.rate, s->cfg->sign_limit.burst,
                v->retry_after);
    if (req->n == 1 && echo_nonce && ocsp_issuer_live(iss)->nonce_policy != OCSP_NONCE_REQUIRE &&
        (ocsp_try_stored(s, http, &req->ids[0], iss, now, NULL) ||
         ocsp_try_cached(s, http, &req->ids[0], iss, now, NULL))) {
        metrics_inc(s->m_limited_presigned);
        return;
    }
    metrics_inc(s->m_limited_try);
    ocsp_reply_error_retry(s, http, OCSP_RESP_TRY_LATER, "rate limit", v->retry_after);
}

/* Sign on demand: singles for every CertID, signed by the first served issuer's signer. */
static void
ocsp_sign_request(struct ocsp_service *s, const struct ocsp_ask *a)
{
    struct http_request *http = a->http;
    const struct ocsp_request *req = a->req;
    const struct ocsp_issuer *iss = a->iss;
    bool echo_nonce = a->echo_nonce;
    int64_t now = a->now;
    struct ocsp_single singles[OCSP_MAX_CERTIDS];
    struct ocsp_pending *p = NULL;
    struct ocsp_job *j = NULL;
    bool ext = false;
    const char *inm;

    struct ocsp_status first = {0}; /* the record the first answer was decided from */
    bool first_found = false, first_ours = false;
    /* read before deciding: a cached answer is tied to the settings it may have been decided
     * under (a change meanwhile only makes it unusable) */
    const struct ocsp_issuer_live *lv = ocsp_issuer_live(iss);
    struct ocsp_decide_in in = ocsp_issuer_decide_in(iss, now);
    struct ocsp_decision d;

    in.live = lv;
    for (size_t i = 0; i < req->n; i++) {
        const struct ocsp_certid *id = &req->ids[i];
        struct ocsp_status st;
        bool found;

        if (ocsp_issuers_find(s->issuers, id) != iss) { /* another issuer: not ours to say */
            memset(&singles[i], 0, sizeof(singles[i]));
            singles[i].certid = id->der;
            singles[i].certid_len = id->der_len;
            singles[i].status = OCSP_SINGLE_UNKNOWN;
            singles[i].reason = OCSP_REASON_NONE;
            singles[i].this_update = now;
            singles[i].next_update = now + (int64_t)ocsp_issuer_live(iss)->validity;
            continue;
        }
        /* read once: the answer and the stamp it is stored under come from the same record,
         * so a revocation landing meanwhile can never be stored as current */
        found =
            ocsp_store_status_get(s->store, iss->rec.id, id->serial, id->serial_len, &st) == ST_OK;
        if (i == 0) {
            first = st;
            first_found = found;
            first_ours = true;
        }
        in.status = found ? &st : NULL;
        in.certid = id->der;
        in.certid_len = id->der_len;
        ocsp_decide(&in, &d);
        singles[i] = d.single;
        ext |= d.extended_revoke;
    }
    p = calloc(1, sizeof(*p));
    j = ocsp_job_new(s->resp, iss,
                     &(struct ocsp_tbs_spec){.produced_at = now,
                                             .singles = singles,
                                             .n = req->n,
                                             .nonce_value = echo_nonce ? req->nonce_value : NULL,
                                             .nonce_len = echo_nonce ? req->nonce_value_len : 0,
                                             .extended_revoke = ext});
    if (p == NULL || j == NULL) {
        ocsp_reply_error(s, http, OCSP_RESP_INTERNAL_ERROR, "out of memory");
        goto fail;
    }
    p->svc = s;
    p->http = http;
    p->cacheable = !echo_nonce;
    p->produced_at = now;
    p->this_update = singles[0].this_update;
    p->next_update = singles[0].next_update;
    if ((inm = http_req_header(http, "If-None-Match")) != NULL)
        snprintf(p->inm, sizeof(p->inm), "%s", inm);
    /* Store single answers for the next request, but only for serials with a status record:
     * the serials a client may send are unbounded and attacker-chosen, the known ones are not
     * (a never-issued serial is signed each time, like a nonce request, and bounded by the
     * signing queue). */
    if (req->n == 1 && !echo_nonce && first_ours && first_found) {
        j->store = true;
        j->form = ocsp_certid_form(&req->ids[0]);
        memcpy(j->serial, req->ids[0].serial, req->ids[0].serial_len);
        j->serial_len = req->ids[0].serial_len;
        j->stamp = first.stamp;
        j->this_update = p->this_update;
        j->next_update = p->next_update;
    } else if (req->n == 1 && !echo_nonce && first_ours && s->unissued != NULL) {
        /* no record: kept in memory only, so the same unknown serial costs one signature
         * until its nextUpdate (issue 8 item 2) */
        p->cache_it = true;
        p->cache_signer = iss;
        p->cache_settings = ocsp_live_id(lv); /* an identity, not the copy (ocsp_issuers.h) */
        memcpy(p->certid, req->ids[0].der, req->ids[0].der_len);
        p->certid_len = req->ids[0].der_len;
    }
    if (p->cache_it)
        ocsp_inflight_begin(s, p);
    http_req_suspend(http);
    if (ocsp_job_submit(j, ocsp_signed, p) == ST_OK)
        return;
    metrics_inc(s->m_busy);
    ocsp_inflight_finish(s, p, NULL, 0, OCSP_RESP_TRY_LATER);
    /* the queue drains in milliseconds: come back soon (as tsad's full queue) */
    ocsp_reply_error_retry(s, http, OCSP_RESP_TRY_LATER, "signing queue full", 1);
fail:
    ocsp_job_free(j);
    free(p);
}

static void
ocsp_handle(struct http_request *http, void *ctx)
{
    struct ocsp_service *s = ctx;
    static _Thread_local struct ocsp_request req;
    uint8_t getbuf[OCSP_REQ_MAX];
    const struct ocsp_issuer *iss = NULL;
    const uint8_t *der = NULL;
    const char *why = NULL;
    size_t len = 0;
    int64_t now = (int64_t)time(NULL);
    uint8_t nonce_policy;
    bool echo_nonce;
    struct ratelimit_verdict verdict;
    struct ocsp_ask ask;
    struct ocsp_front_key key;

    if (!ocsp_request_bytes(http, getbuf, sizeof(getbuf), &der, &len)) {
        ocsp_reply_error(s, http, OCSP_RESP_MALFORMED, "no request, or not url-encoded base64");
        return;
    }
    /* a request seen before whose kept reply is still backed (issue 10 item 2) */
    if (ocsp_front_key_of(s, http, der, len, &key) && ocsp_front_serve(s, http, &key, now))
        return;
    /* the common one-CertID request, with or without a nonce, is read without OpenSSL;
     * anything else (and every error) by the full parser */
    if (!ocsp_request_fast(der, len, &req) && ocsp_request_parse(der, len, &req, &why) != ST_OK) {
        ocsp_reply_error(s, http, OCSP_RESP_MALFORMED, why);
        return;
    }
    if (req.n > atomic_load(&s->max_certids)) {
        ocsp_reply_error(s, http, OCSP_RESP_MALFORMED, "too many CertIDs");
        return;
    }
    for (size_t i = 0; i < req.n && iss == NULL; i++)
        iss = ocsp_issuers_find(s->issuers, &req.ids[i]);
    if (iss == NULL) { /* OCSP-05: no issuer of the request is served here */
        ocsp_reply_error(s, http, OCSP_RESP_UNAUTHORIZED, "issuer not served");
        return;
    }
    if (ocsp_issuer_stale(ocsp_issuer_live(iss),
                          now)) { /* STS-12: never status older than the CRL allows */
        ocsp_reply_error(s, http, OCSP_RESP_TRY_LATER, "issuer's CRL is past its nextUpdate");
        return;
    }
    if (ocsp_signer_expired(iss->signer_not_after, now)) { /* its signatures would not verify */
        ocsp_reply_error(s, http, OCSP_RESP_TRY_LATER, "responder certificate has expired");
        return;
    }
    nonce_policy = ocsp_issuer_live(iss)->nonce_policy;
    if (nonce_policy == OCSP_NONCE_REQUIRE && !req.has_nonce) {
        ocsp_reply_error(s, http, OCSP_RESP_MALFORMED, "this issuer requires a nonce");
        return;
    }
    /* OCSP-18: with the "ignore" policy a nonce request gets the pre-signed answer */
    echo_nonce = req.has_nonce && nonce_policy != OCSP_NONCE_IGNORE;
    ask = (struct ocsp_ask){http, &req, iss, echo_nonce, now};
    if (req.n == 1 && !echo_nonce &&
        (ocsp_try_stored(s, http, &req.ids[0], iss, now, &key) ||
         ocsp_try_cached(s, http, &req.ids[0], iss, now, &key) ||
         ocsp_inflight_join(s, http, &req.ids[0], iss)))
        return;
    /* what follows costs a signature: counted per client address (OCSP-27) */
    verdict = ratelimit_take_addr(s->limit, http_req_client_ip(http));
    if (!verdict.allowed) {
        ocsp_rate_limited(s, &ask, &verdict);
        return;
    }
    ocsp_sign_request(s, &ask);
}

static int
ocsp_health(void *ctx, char *json, size_t cap)
{
    struct ocsp_service *s = ctx;
    struct commit *c = ocsp_responder_commit(s->resp);
    size_t used = 0, map = 1, issuers = ocsp_issuers_count(s->issuers);
    bool signer_ok = ocsp_responder_healthy(s->resp);
    /* above fill_limit pre-signing and refresh have stopped: the rest is kept for revocations;
     * a write that failed (disk full, read-only) means stored answers go stale: red either way */
    bool store_ok = store_usage(ocsp_store_raw(s->store), &used, &map) == ST_OK &&
                    !commit_above_fill(c) && !commit_failing(c);
    bool ok = signer_ok && store_ok && issuers > 0;

    snprintf(json, cap,
             "{\"status\":\"%s\",\"issuers\":%zu,\"signer\":{\"ok\":%s,\"queue\":%u},"
             "\"store\":{\"ok\":%s,\"fill\":%.4f,\"used_bytes\":%zu,\"map_bytes\":%zu,"
             "\"write_queue\":%u}}",
             ok ? "ok" : "fail", issuers, signer_ok ? "true" : "false",
             ocsp_responder_queue(s->resp), store_ok ? "true" : "false", commit_fill(c), used, map,
             commit_queue_depth(c));
    return ok;
}

static void
ocsp_metrics_init(struct ocsp_service *s)
{
    static const char *const front_help =
        "Requests answered from the front cache ([ocsp] front_cache), and entries found no "
        "longer backed (a status change, a reload, their time), answered the long way.";
    char name[96];

    s->m_hit = metrics_counter("ocsp_responses_total{source=\"presigned\"}",
                               "Successful OCSP responses, by where they came from.");
    s->m_signed = metrics_counter("ocsp_responses_total{source=\"signed\"}",
                                  "Successful OCSP responses, by where they came from.");
    s->m_busy = metrics_counter("ocsp_queue_full_total", "Requests answered tryLater: queue full.");
    s->m_scans = metrics_counter("ocsp_refresh_scans_total",
                                 "Walks of every stored answer by the refresher (made only when "
                                 "one can be due, and at least hourly).");
    s->m_refreshed = metrics_counter("ocsp_resigned_total",
                                     "Stored responses re-signed (refresh or status change).");
    s->m_304 = metrics_counter("ocsp_not_modified_total", "Conditional GETs answered 304.");
    s->m_front_hit = metrics_counter("ocsp_front_cache_total{result=\"hit\"}", front_help);
    s->m_front_stale = metrics_counter("ocsp_front_cache_total{result=\"stale\"}", front_help);
    s->m_front_reads = metrics_counter(
        "ocsp_front_cache_record_reads_total",
        "Front-cache lookups that read the serial's status record again because a transaction "
        "was committed to the store since the entry last read it (the others rely on it).");
    s->m_cached = metrics_counter("ocsp_responses_total{source=\"unissued_cache\"}",
                                  "Successful OCSP responses, by where they came from.");
    s->m_limited_try = metrics_counter(
        "ocsp_rate_limited_total{answer=\"tryLater\"}",
        "Requests over their source's signing budget ([limits] sign_rate), by what they got.");
    s->m_limited_presigned = metrics_counter(
        "ocsp_rate_limited_total{answer=\"presigned\"}",
        "Requests over their source's signing budget ([limits] sign_rate), by what they got.");
    for (int i = 0; i < OCSP_RESP_STATUS_COUNT; i++) {
        if (err_names[i] == NULL)
            continue;
        snprintf(name, sizeof(name), "ocsp_errors_total{status=\"%s\"}", err_names[i]);
        s->m_err[i] = metrics_counter(name, "Unsuccessful OCSP responses, by responseStatus.");
    }
}

static int
ocsp_routes(struct ocsp_service *s, struct http_server *http)
{
    char get_path[160];
    const char *base = s->cfg->base_path;

    snprintf(get_path, sizeof(get_path), "%s%s", base, strcmp(base, "/") == 0 ? "" : "/");
    if (http_route(http, "POST", base, true, OCSP_REQUEST_TYPE, ocsp_handle, s) != ST_OK ||
        http_route(http, "GET", get_path, true, NULL, ocsp_handle, s) != ST_OK)
        return ST_ERR;
    http_server_set_health(http, ocsp_health, s);
    return ST_OK;
}

struct ocsp_service *
ocsp_service_new(const struct ocsp_config *cfg, struct http_server *http, bool check)
{
    struct ocsp_service *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->max_age = cfg->max_age;
    s->refresh_margin = cfg->refresh_margin;
    atomic_init(&s->max_certids, cfg->max_certids);
    pthread_mutex_init(&s->inflight_lock, NULL);
    /* ocspd -n may run beside a live ocspd and writes nothing: an existing store is only
     * read; a missing one is left for the first start to make (no issuers to check then) */
    if (check && !store_exists(cfg->store.path)) {
        log_notice("ocsp: store %s does not exist yet (made at the first start); no issuer "
                   "checked",
                   cfg->store.path);
        ocsp_metrics_init(s);
        return ocsp_routes(s, http) == ST_OK ? s : (ocsp_service_free(s), NULL);
    }
    /* ocspd -n: a store that the start upgrades is checked as it is (its issuers) */
    s->store = check ? ocsp_store_open_check(cfg->store.path, cfg->store.map_size)
                     : ocsp_store_open(cfg->store.path, cfg->store.map_size, false);
    if (s->store == NULL)
        goto fail;
    {
        char key[PATH_MAX + 64];

        snprintf(key, sizeof(key), "[store] map_size in %s", cfg->file);
        store_set_label(ocsp_store_raw(s->store), "ocspd store", key);
    }
    /* a store spread over millions of certificates: its pages mapped before the requests
     * fault them in one by one (in the background; ocspd -n only checks) */
    if (!check && cfg->store_prefault != OCSP_PREFAULT_NO)
        store_prefault_start(ocsp_store_raw(s->store), cfg->store_prefault == OCSP_PREFAULT_REREAD);
    s->resp = ocsp_responder_new(cfg, s->store, false);
    if (s->resp == NULL)
        goto fail;
    s->issuers = ocsp_responder_issuers(s->resp);
    s->limit = ratelimit_new(&cfg->sign_limit);
    s->unissued = ocsp_cache_new(cfg->unissued_cache);
    s->front = ocsp_front_new(cfg->front_cache, ocsp_canned_ref, ocsp_canned_unref);
    if (s->front == NULL && cfg->front_cache > 0) {
        log_err("ocsp: out of memory for the front cache");
        goto fail;
    }
    if ((s->limit == NULL && cfg->sign_limit.rate > 0) ||
        (s->unissued == NULL && cfg->unissued_cache > 0)) {
        log_err("ocsp: out of memory for the rate limit or the unissued cache");
        goto fail;
    }
    if (ocsp_issuers_count(s->issuers) == 0)
        log_warn("ocsp: no issuer in the store yet (ocspctl issuer add); every request is "
                 "answered unauthorized until one is added");
    ocsp_metrics_init(s);
    if (ocsp_routes(s, http) != ST_OK)
        goto fail;
    if (check)
        return s; /* no refresher: it writes */
    s->refresher =
        ocsp_refresher_start(&(struct ocsp_refresher_config){.resp = s->resp,
                                                             .m_refreshed = s->m_refreshed,
                                                             .m_scans = s->m_scans,
                                                             .interval = cfg->refresh_interval,
                                                             .margin = cfg->refresh_margin});
    if (s->refresher == NULL)
        goto fail;
    return s;
fail:
    ocsp_service_free(s);
    return NULL;
}

void
ocsp_service_free(struct ocsp_service *s)
{
    if (s == NULL)
        return;
    ocsp_refresher_stop(s->refresher);
    /* the HTTP server has stopped: no reply of the front cache is queued any more; its
     * replies borrow the issuers' certs, freed with the responder below */
    ocsp_front_free(s->front);
    ocsp_responder_free(s->resp); /* no more completions: the cache is no longer used */
    ocsp_cache_free(s->unissued);
    ratelimit_free(s->limit);
    ocsp_store_close(s->store);
    pthread_mutex_destroy(&s->inflight_lock);
    free(s);
}

int
ocsp_service_reload(struct ocsp_service *s, const char *path, char *what, size_t whatcap, char *err,
                    size_t errlen)
{
    struct ocsp_config *cfg = malloc(sizeof(*cfg));
    const struct ocsp_config *run = s->cfg;
    struct daemon_restart rs = {0};
    char signers[1200] = "";
    int st;

    if (cfg == NULL) {
        snprintf(err, errlen, "out of memory");
        return ST_NOMEM;
    }
    if ((st = ocsp_config_load(cfg, path, err, errlen)) != ST_OK) {
        free(cfg);
        return st;
    }
    daemon_restart_common(&rs, &run->server, &cfg->server, &run->store, &cfg->store, &run->signer,
                          &cfg->signer);
    if (strcmp(run->base_path, cfg->base_path) != 0)
        daemon_restart_note(&rs, "[server] base_path");
    if (run->store_prefault != cfg->store_prefault)
        daemon_restart_note(&rs, "[store] prefault");
    if (run->unissued_cache != cfg->unissued_cache)
        daemon_restart_note(&rs, "[ocsp] unissued_cache");
    if (run->front_cache != cfg->front_cache)
        daemon_restart_note(&rs, "[ocsp] front_cache");
    if (run->sign_limit.rate != cfg->sign_limit.rate ||
        run->sign_limit.burst != cfg->sign_limit.burst ||
        run->sign_limit.sources != cfg->sign_limit.sources)
        daemon_restart_note(&rs, "[limits]");
    /* the signers: every issuer of the store again, each key looked for again */
    if ((st = ocsp_issuers_reload_all(s->issuers, signers, sizeof(signers), err, errlen)) !=
        ST_OK) {
        free(cfg);
        return st;
    }
    s->max_age = cfg->max_age;
    s->refresh_margin = cfg->refresh_margin;
    ocsp_refresher_set(s->refresher, cfg->refresh_interval, cfg->refresh_margin);
    atomic_store(&s->max_certids, cfg->max_certids);
    log_set_level(cfg->log_level);
    snprintf(what, whatcap, "%s needs_restart=%s", signers, rs.n > 0 ? rs.keys : "none");
    free(cfg);
    return ST_OK;
}
