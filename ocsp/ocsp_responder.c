/*
 * ocsp_responder: issuers, status decisions and batched signing of OCSP responses.
 * RFC 6960 §2.2-2.6, §4.2; RFC 9919 §2.2; STANDARDS OCSP-08..15, OCSP-21, OCSP-25, STS-12.
 * See ocsp_responder.h.
 */
#include "ocsp/ocsp_responder.h"
#include "common/commit.h"
#include "common/daemon.h"
#include "common/json.h"
#include "common/log.h"
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

/* Hashes of the issuer for each CertID hash algorithm, index enum ocsp_hash - 1. */
struct ocsp_issuer_hashes {
    uint8_t name[4][64];
    uint8_t key[4][64];
    size_t len[4];
};

struct ocsp_issuer_slot {
    struct ocsp_issuer iss;
    struct ocsp_issuer_hashes h;
    struct ocsp_issuer_slot *retired_next; /* replaced slots, kept until the responder goes */
};

struct ocsp_responder {
    const struct ocsp_config *cfg;
    struct ocsp_store *store;
    struct commit *commit; /* every write of ours goes through it (DESIGN D10) */
    struct signer *signer;
    pthread_rwlock_t lock;
    struct ocsp_issuer_slot *issuers[OCSP_MAX_ISSUERS]; /* the issuers served now */
    size_t n;
    struct ocsp_issuer_slot *retired; /* replaced (new key or certificate): pointers stay valid */
    uint64_t gen;
    bool strict;
    _Atomic int64_t expiry_warned; /* last "responder certificate expires soon" warning */
    _Atomic int64_t last_replace;  /* latest replaced_at of a slot */
    /* one reload at a time: the refresher's poll and a SIGHUP (issue 9 item 4) */
    pthread_mutex_t reload_lock;
    /* the signers as of the start or the last SIGHUP, for the config_reload audit line */
    struct ocsp_signer_seen {
        uint8_t id[OCSP_ISSUER_ID_LEN];
        char name[64];
        uint8_t sha256[32]; /* of the responder certificate (delegate or CA) */
    } seen[OCSP_MAX_ISSUERS];
    size_t n_seen;
};

static int64_t
asn1_time_unix(const ASN1_TIME *t)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* issuerNameHash and issuerKeyHash for each algorithm (OCSP-11), computed once at load. */
static int
ocsp_issuer_hashes(X509 *cert, struct ocsp_issuer_hashes *h)
{
    for (int i = 0; i < 4; i++)
        if (ocsp_issuer_hashes_of(cert, (enum ocsp_hash)(i + 1), h->name[i], h->key[i],
                                  &h->len[i]) != ST_OK)
            return ST_CRYPTO;
    return ST_OK;
}

/* Publish the record's changeable settings as the issuer's live copy. */
static int
ocsp_live_publish(struct ocsp_issuer *iss, const struct ocsp_issuer_rec *rec)
{
    struct ocsp_issuer_live *lv = calloc(1, sizeof(*lv));

    if (lv == NULL)
        return ST_NOMEM;
    lv->nonce_policy = rec->nonce_policy;
    lv->unissued_policy = rec->unissued_policy;
    lv->archive_cutoff = rec->archive_cutoff;
    lv->validity = rec->validity;
    lv->crl_fed = rec->crl_fed;
    lv->crl_this_update = rec->crl_this_update;
    lv->crl_next_update = rec->crl_next_update;
    lv->older = atomic_load(&iss->live);
    atomic_store(&iss->live, lv);
    return ST_OK;
}

static bool
ocsp_live_same(const struct ocsp_issuer_live *lv, const struct ocsp_issuer_rec *rec)
{
    return lv->nonce_policy == rec->nonce_policy && lv->unissued_policy == rec->unissued_policy &&
           lv->archive_cutoff == rec->archive_cutoff && lv->validity == rec->validity &&
           lv->crl_fed == rec->crl_fed && lv->crl_this_update == rec->crl_this_update &&
           lv->crl_next_update == rec->crl_next_update;
}

/* Same key and certificates: the slot (and its signer key) can stay, only settings change. */
static bool
ocsp_identity_same(const struct ocsp_issuer_rec *a, const struct ocsp_issuer_rec *b)
{
    return memcmp(a->id, b->id, OCSP_ISSUER_ID_LEN) == 0 && a->cert_len == b->cert_len &&
           memcmp(a->cert, b->cert, a->cert_len) == 0 && a->signer_kind == b->signer_kind &&
           a->signer_cert_len == b->signer_cert_len &&
           (a->signer_cert_len == 0 ||
            memcmp(a->signer_cert, b->signer_cert, a->signer_cert_len) == 0) &&
           strcmp(a->key_label, b->key_label) == 0 && strcmp(a->key_file, b->key_file) == 0 &&
           a->scheme == b->scheme && a->hash == b->hash;
}

const struct ocsp_issuer_live *
ocsp_issuer_live(const struct ocsp_issuer *iss)
{
    return atomic_load(&((struct ocsp_issuer *)iss)->live);
}

static void
ocsp_slot_free(struct ocsp_issuer_slot *slot)
{
    const struct ocsp_issuer_live *lv, *older;

    if (slot == NULL)
        return;
    for (lv = atomic_load(&slot->iss.live); lv != NULL; lv = older) {
        older = lv->older;
        free((void *)lv);
    }
    X509_free(slot->iss.cert);
    if (slot->iss.signer_cert != NULL && slot->iss.signer_cert != slot->iss.cert)
        X509_free(slot->iss.signer_cert);
    free(slot->iss.certs);
    ocsp_issuer_rec_clear(&slot->iss.rec);
    free(slot);
}

static X509 *
der_to_x509(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;

    return len > 0 ? d2i_X509(NULL, &p, (long)len) : NULL;
}

/* Build the runtime issuer from its record: certificates, key, ResponderID, certs field. */
static struct ocsp_issuer_slot *
ocsp_slot_load(struct ocsp_responder *r, const struct ocsp_issuer_rec *rec, bool check_only)
{
    struct ocsp_issuer_slot *slot = calloc(1, sizeof(*slot));
    struct ocsp_issuer *iss;

    if (slot == NULL)
        return NULL;
    iss = &slot->iss;
    if (ocsp_store_issuer_get(r->store, rec->id, &iss->rec) != ST_OK)
        goto fail;
    iss->cert = der_to_x509(iss->rec.cert, iss->rec.cert_len);
    iss->signer_cert = iss->rec.signer_kind == OCSP_SIGNER_DELEGATED
                           ? der_to_x509(iss->rec.signer_cert, iss->rec.signer_cert_len)
                           : iss->cert;
    if (iss->cert == NULL || iss->signer_cert == NULL) {
        log_err("ocsp: issuer %s: unreadable certificate in the store", rec->name);
        goto fail;
    }
    if (ocsp_issuer_hashes(iss->cert, &slot->h) != ST_OK)
        goto fail;
    if (iss->rec.key_label[0] != '\0')
        iss->key = signer_add_p11_key(r->signer, iss->rec.key_label, iss->signer_cert,
                                      iss->rec.scheme, iss->rec.hash);
    else
        iss->key = signer_add_soft_key(r->signer, iss->rec.key_file, iss->signer_cert,
                                       iss->rec.scheme, iss->rec.hash);
    if (iss->key == NULL) {
        log_err("ocsp: issuer %s: its signing key is not usable", rec->name);
        goto fail;
    }
    iss->rid_len = ocsp_responder_id(iss->signer_cert, iss->rid, sizeof(iss->rid));
    if (iss->rid_len == 0)
        goto fail;
    if (iss->rec.signer_kind == OCSP_SIGNER_DELEGATED &&
        ocsp_certs_field(iss->signer_cert, &iss->certs, &iss->certs_len) != ST_OK)
        goto fail;
    if (ocsp_live_publish(iss, &iss->rec) != ST_OK)
        goto fail;
    iss->ca_not_before = asn1_time_unix(X509_get0_notBefore(iss->cert));
    iss->signer_not_after = asn1_time_unix(X509_get0_notAfter(iss->signer_cert));
    if (check_only)
        return slot;
    log_audit("ocsp_issuer_loaded",
              "issuer=%s signer=%s key=%s nonce=%u unissued=%u "
              "validity=%u crl_fed=%d",
              iss->rec.name, iss->rec.signer_kind == OCSP_SIGNER_DELEGATED ? "delegated" : "ca",
              signer_key_name(iss->key), iss->rec.nonce_policy, iss->rec.unissued_policy,
              iss->rec.validity, iss->rec.crl_fed);
    return slot;
fail:
    ocsp_slot_free(slot);
    return NULL;
}

struct reload_ctx {
    struct ocsp_responder *r;
    int failed;
    bool check_same; /* SIGHUP: load unchanged issuers again to check their keys */
    char failed_names[256];
};

static void
reload_failed(struct reload_ctx *rc, const char *name)
{
    size_t used = strlen(rc->failed_names);

    rc->failed++;
    if (used + strlen(name) + 2 < sizeof(rc->failed_names))
        snprintf(rc->failed_names + used, sizeof(rc->failed_names) - used, "%s%s",
                 used > 0 ? "," : "", name);
}

/* A slot loaded only to check it (SIGHUP on an unchanged issuer): never published. */
static void
ocsp_slot_discard(struct ocsp_responder *r, struct ocsp_issuer_slot *slot)
{
    signer_key_release(r->signer, slot->iss.key);
    ocsp_slot_free(slot);
}

static bool
ocsp_reload_one(void *ctx, const struct ocsp_issuer_rec *rec)
{
    struct reload_ctx *rc = ctx;
    struct ocsp_responder *r = rc->r;
    struct ocsp_issuer_slot *slot, *old = NULL;
    size_t at = r->n;

    for (size_t i = 0; i < r->n; i++) {
        if (memcmp(r->issuers[i]->iss.rec.id, rec->id, OCSP_ISSUER_ID_LEN) == 0) {
            old = r->issuers[i];
            at = i;
        }
    }
    if (old != NULL && ocsp_identity_same(&old->iss.rec, rec)) {
        /* same key and certificates: publish the new settings (CRL times, policies) */
        if (!ocsp_live_same(ocsp_issuer_live(&old->iss), rec) &&
            ocsp_live_publish(&old->iss, rec) != ST_OK)
            reload_failed(rc, rec->name);
        /* SIGHUP: its key is looked for again (token label, key file) and must still sign
         * and match the certificate; the running slot stays either way */
        if (rc->check_same) {
            if ((slot = ocsp_slot_load(r, rec, true)) == NULL) {
                log_err("ocsp: issuer %s: its signing key no longer loads; the running one "
                        "keeps signing until a restart",
                        rec->name);
                reload_failed(rc, rec->name);
            } else {
                ocsp_slot_discard(r, slot);
            }
        }
        return true;
    }
    if (old == NULL && r->n == OCSP_MAX_ISSUERS) {
        log_err("ocsp: more than %d issuers: %s not served", OCSP_MAX_ISSUERS, rec->name);
        reload_failed(rc, rec->name);
        return true;
    }
    slot = ocsp_slot_load(r, rec, false);
    if (slot == NULL) {
        if (old != NULL)
            log_err("ocsp: issuer %s: its new signer does not load; the running one keeps "
                    "signing",
                    rec->name);
        reload_failed(rc, rec->name);
        return true;
    }
    /* a new key or certificate (rollover): the new slot takes the old one's place; the old
     * one is retired, not freed, so pointers held by requests in flight stay valid */
    if (old != NULL) {
        slot->iss.replaced_at = (int64_t)time(NULL);
        atomic_store(&r->last_replace, slot->iss.replaced_at);
    }
    pthread_rwlock_wrlock(&r->lock);
    r->issuers[at] = slot;
    if (old != NULL) {
        old->retired_next = r->retired;
        r->retired = old;
    } else {
        r->n++;
    }
    pthread_rwlock_unlock(&r->lock);
    /* a rollover may delete the old key from the token: a re-initialisation of the module
     * (after a removed device) must not need it any more */
    if (old != NULL)
        signer_key_forget_token(r->signer, old->iss.key);
    return true;
}

static int
ocsp_reload_walk(struct ocsp_responder *r, struct reload_ctx *rc, bool force)
{
    uint64_t gen = ocsp_store_issuers_gen(r->store);
    int st;

    if (!force && gen == r->gen && r->n > 0)
        return ST_OK;
    st = ocsp_store_issuer_walk(r->store, ocsp_reload_one, rc);
    if (st != ST_OK)
        return st;
    r->gen = gen;
    return ST_OK;
}

int
ocsp_responder_reload(struct ocsp_responder *r)
{
    struct reload_ctx rc = {.r = r};
    int st;

    pthread_mutex_lock(&r->reload_lock);
    st = ocsp_reload_walk(r, &rc, false);
    pthread_mutex_unlock(&r->reload_lock);
    if (st != ST_OK)
        return st;
    return rc.failed > 0 && r->strict ? ST_CONFIG : ST_OK;
}

/* The served signers now, into r->seen; `what` (when not NULL) gets the changes from the
 * previous ones: issuers_added=NAME:sha256=FP,... issuers_changed=NAME:sha256=OLD->NEW,...
 * issuers_unchanged=N. Under reload_lock. */
static void
ocsp_signers_seen(struct ocsp_responder *r, char *what, size_t cap)
{
    struct ocsp_signer_seen now[OCSP_MAX_ISSUERS];
    char added[512] = "", changed[768] = "", item[200], fa[65], fb[65];
    size_t n = 0;
    unsigned same = 0;

    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i < r->n; i++) {
        const struct ocsp_issuer *iss = &r->issuers[i]->iss;
        unsigned len = 32;

        memcpy(now[n].id, iss->rec.id, OCSP_ISSUER_ID_LEN);
        snprintf(now[n].name, sizeof(now[n].name), "%s", iss->rec.name);
        if (X509_digest(iss->signer_cert, signer_hash_md(SIGNER_SHA256), now[n].sha256, &len) != 1)
            memset(now[n].sha256, 0, sizeof(now[n].sha256));
        n++;
    }
    pthread_rwlock_unlock(&r->lock);
    for (size_t i = 0; what != NULL && i < n; i++) {
        const struct ocsp_signer_seen *o = NULL;
        char *list;
        size_t lcap;

        for (size_t k = 0; k < r->n_seen; k++)
            if (memcmp(r->seen[k].id, now[i].id, OCSP_ISSUER_ID_LEN) == 0)
                o = &r->seen[k];
        hex_encode(fb, now[i].sha256, 32, false);
        if (o != NULL)
            hex_encode(fa, o->sha256, 32, false);
        if (o != NULL && memcmp(o->sha256, now[i].sha256, 32) == 0) {
            same++;
            continue;
        }
        if (o == NULL) {
            snprintf(item, sizeof(item), "%s:sha256=%s", now[i].name, fb);
            list = added;
            lcap = sizeof(added);
        } else {
            snprintf(item, sizeof(item), "%s:sha256=%s->%s", now[i].name, fa, fb);
            list = changed;
            lcap = sizeof(changed);
        }
        daemon_list_add(list, lcap, item);
    }
    if (what != NULL)
        snprintf(what, cap, "issuers_added=%s issuers_changed=%s issuers_unchanged=%u",
                 added[0] ? added : "none", changed[0] ? changed : "none", same);
    memcpy(r->seen, now, n * sizeof(now[0]));
    r->n_seen = n;
}

int
ocsp_responder_reload_all(struct ocsp_responder *r, char *what, size_t whatcap, char *err,
                          size_t errlen)
{
    struct reload_ctx rc = {.r = r, .check_same = true};
    int st;

    pthread_mutex_lock(&r->reload_lock);
    st = ocsp_reload_walk(r, &rc, true);
    if (st == ST_OK)
        ocsp_signers_seen(r, what, whatcap);
    pthread_mutex_unlock(&r->reload_lock);
    if (st != ST_OK) {
        snprintf(err, errlen, "cannot read the issuers from the store: %s", status_str(st));
        return st;
    }
    if (rc.failed > 0) {
        snprintf(err, errlen,
                 "issuer(s) %s: signing key or certificate not usable (see the log); they keep "
                 "their running signer",
                 rc.failed_names);
        return ST_CONFIG;
    }
    return ST_OK;
}

/* Storing one signed response: an operation of the commit pipeline (BACKGROUND: an answer
 * that is not stored is signed again when asked for). */
struct ocsp_store_op {
    struct commit_op op;
    struct ocsp_store *store;
    struct ocsp_response_put put;
    uint8_t certid[OCSP_CERTID_MAX];
    uint8_t *der;         /* our copy, or the job's response when a job waits for us */
    struct ocsp_job *job; /* a re-sign job that completes once stored, or NULL */
};

static int
ocsp_store_op_apply(struct store_txn *t, struct commit_op *op)
{
    struct ocsp_store_op *so = op->user;

    return ocsp_store_response_put_txn(so->store, t, &so->put);
}

static void
ocsp_store_op_done(struct commit_op *op, int status)
{
    struct ocsp_store_op *so = op->user;
    struct ocsp_job *j = so->job;

    if (j != NULL) {
        j->stored = status == ST_OK;
        j->store_status = status;
        j->done(j, j->ctx);
    } else {
        free(so->der);
    }
    free(so);
}

/* Hand a signed response to the pipeline. true when the job's completion now waits for it. */
static bool
ocsp_job_store(struct ocsp_responder *r, struct ocsp_job *j)
{
    struct ocsp_store_op *so = calloc(1, sizeof(*so));
    bool wait = j->wait_store;
    int st;

    if (so == NULL || (!wait && (so->der = malloc(j->resp_len)) == NULL)) {
        free(so);
        j->store_status = ST_NOMEM;
        return false;
    }
    if (j->wait_store)
        so->der = j->resp;
    else
        memcpy(so->der, j->resp, j->resp_len);
    memcpy(so->certid, j->certid, j->certid_len);
    so->put = (struct ocsp_response_put){so->certid,     j->certid_len,  j->stamp, j->this_update,
                                         j->next_update, j->produced_at, so->der,  j->resp_len};
    so->store = r->store;
    so->job = j->wait_store ? j : NULL;
    so->op = (struct commit_op){.cls = COMMIT_BACKGROUND,
                                .apply = ocsp_store_op_apply,
                                .done = ocsp_store_op_done,
                                .user = so};
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
            if (ocsp_response_assemble(j->tbs, j->tbs_len, alg, alg_len, j->sj.sig, j->sj.sig_len,
                                       j->iss->certs, j->iss->certs_len, &j->resp,
                                       &j->resp_len) != ST_OK)
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
    r->strict = strict;
    pthread_rwlock_init(&r->lock, NULL);
    pthread_mutex_init(&r->reload_lock, NULL);
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
    if (ocsp_responder_reload(r) != ST_OK)
        goto fail;
    pthread_mutex_lock(&r->reload_lock);
    ocsp_signers_seen(r, NULL, 0);
    pthread_mutex_unlock(&r->reload_lock);
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
    signer_free(r->signer); /* pending jobs complete with ST_SHUTDOWN */
    commit_free(r->commit); /* what is queued is stored (or waits for ocspctl's lock) */
    for (size_t i = 0; i < r->n; i++)
        ocsp_slot_free(r->issuers[i]);
    while (r->retired != NULL) {
        struct ocsp_issuer_slot *next = r->retired->retired_next;

        ocsp_slot_free(r->retired);
        r->retired = next;
    }
    pthread_rwlock_destroy(&r->lock);
    pthread_mutex_destroy(&r->reload_lock);
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
 * answers would not verify); one ending within 7 days is logged as a warning. */
bool
ocsp_responder_healthy(struct ocsp_responder *r)
{
    int64_t now = (int64_t)time(NULL);
    bool ok = signer_healthy(r->signer);

    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i < r->n; i++) {
        const struct ocsp_issuer *iss = &r->issuers[i]->iss;

        if (ocsp_issuer_signer_expired(iss, now))
            ok = false;
        else if (iss->signer_not_after > 0 && iss->signer_not_after - now < 7 * 86400 &&
                 now - atomic_exchange(&r->expiry_warned, now) >= 3600)
            log_warn("ocsp: issuer %s: responder certificate expires in %lld h: renew it "
                     "(ocspctl issuer add --signer-cert)",
                     iss->rec.name, (long long)((iss->signer_not_after - now) / 3600));
    }
    pthread_rwlock_unlock(&r->lock);
    return ok;
}

unsigned
ocsp_responder_queue(struct ocsp_responder *r)
{
    return signer_queue_depth(r->signer);
}

int64_t
ocsp_responder_last_replace(struct ocsp_responder *r)
{
    return atomic_load(&r->last_replace);
}

size_t
ocsp_responder_issuer_count(struct ocsp_responder *r)
{
    size_t n;

    pthread_rwlock_rdlock(&r->lock);
    n = r->n;
    pthread_rwlock_unlock(&r->lock);
    return n;
}

const struct ocsp_issuer *
ocsp_responder_issuer_by_id(struct ocsp_responder *r, const uint8_t id[OCSP_ISSUER_ID_LEN])
{
    const struct ocsp_issuer *found = NULL;

    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i < r->n && found == NULL; i++)
        if (memcmp(r->issuers[i]->iss.rec.id, id, OCSP_ISSUER_ID_LEN) == 0)
            found = &r->issuers[i]->iss;
    pthread_rwlock_unlock(&r->lock);
    return found;
}

const struct ocsp_issuer *
ocsp_responder_issuer(struct ocsp_responder *r, const struct ocsp_certid *id)
{
    const struct ocsp_issuer *found = NULL;
    int h = (int)id->hash - 1;

    if (h < 0 || h > 3)
        return NULL;
    /* the served issuers are few: compare their hashes directly, no store lookup */
    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i < r->n && found == NULL; i++) {
        const struct ocsp_issuer_slot *s = r->issuers[i];

        if (s->h.len[h] == id->hash_len && memcmp(s->h.name[h], id->name_hash, id->hash_len) == 0 &&
            memcmp(s->h.key[h], id->key_hash, id->hash_len) == 0)
            found = &s->iss;
    }
    pthread_rwlock_unlock(&r->lock);
    return found;
}

bool
ocsp_refresh_due(const struct ocsp_stored_response *r, int64_t now, double margin)
{
    double left = (double)(r->next_update - now);
    double span = (double)(r->next_update - r->produced_at);

    return left <= span * margin;
}

bool
ocsp_issuer_stale(const struct ocsp_issuer *iss, int64_t now)
{
    const struct ocsp_issuer_live *lv = ocsp_issuer_live(iss);

    return lv->crl_fed && (lv->crl_next_update == 0 || now >= lv->crl_next_update);
}

bool
ocsp_issuer_signer_expired(const struct ocsp_issuer *iss, int64_t now)
{
    return iss->signer_not_after > 0 && now >= iss->signer_not_after;
}

void
ocsp_decide(const struct ocsp_issuer *iss, const struct ocsp_certid *id,
            const struct ocsp_status *st, int64_t now, struct ocsp_single *out,
            bool *extended_revoke)
{
    const struct ocsp_issuer_live *lv = ocsp_issuer_live(iss);

    memset(out, 0, sizeof(*out));
    out->certid = id->der;
    out->certid_len = id->der_len;
    out->reason = OCSP_REASON_NONE;
    /* thisUpdate: when the status was known correct: for a CRL-fed issuer the CRL's time, or
     * the record's later change made with ocspctl (never before a revocationTime, OCSP-09) */
    out->this_update = now;
    if (lv->crl_fed && lv->crl_this_update > 0) {
        out->this_update = lv->crl_this_update;
        if (st != NULL && st->updated > out->this_update && st->updated <= now)
            out->this_update = st->updated;
    }
    out->next_update = now + (int64_t)lv->validity;
    if (lv->crl_fed && lv->crl_next_update > 0 && lv->crl_next_update < out->next_update)
        out->next_update = lv->crl_next_update;
    /* an answer never outlives the certificate that signs it (OCSP-21/22) */
    if (iss->signer_not_after > 0 && iss->signer_not_after < out->next_update)
        out->next_update = iss->signer_not_after;
    if (st == NULL) {
        switch (lv->unissued_policy) {
        case OCSP_UNISSUED_GOOD:
            /* only an issuer fed by CRLs, without issued-serial knowledge, may say good for
             * a serial it has no record of; any other says revoked (OCSP-13) */
            if (!lv->crl_fed)
                goto never_issued;
            out->status = OCSP_SINGLE_GOOD;
            break;
        case OCSP_UNISSUED_UNKNOWN:
            out->status = OCSP_SINGLE_UNKNOWN;
            break;
        default: /* OCSP-13: never good for a serial the CA never issued */
        never_issued:
            out->status = OCSP_SINGLE_REVOKED;
            out->revocation_time = 0;
            out->reason = OCSP_REVOKED_STATUS_CERTIFICATEHOLD;
            *extended_revoke = true;
            break;
        }
        return;
    }
    if (st->state == OCSP_STATE_GOOD) {
        out->status = OCSP_SINGLE_GOOD;
    } else {
        out->status = OCSP_SINGLE_REVOKED;
        out->revocation_time = st->revocation_time;
        out->reason =
            st->state == OCSP_STATE_HOLD ? OCSP_REVOKED_STATUS_CERTIFICATEHOLD : st->reason;
    }
    /* expired certificates keep their status, with archiveCutoff (OCSP-25, EID-06) */
    if (lv->archive_cutoff && st->not_after > 0 && st->not_after < now) {
        out->archive_cutoff = true;
        out->archive_cutoff_time = iss->ca_not_before;
    }
}

struct ocsp_job *
ocsp_job_new(struct ocsp_responder *r, const struct ocsp_issuer *iss, int64_t produced_at,
             const struct ocsp_single *singles, size_t n, const uint8_t *nonce_value,
             size_t nonce_len, bool extended_revoke)
{
    struct ocsp_job *j = calloc(1, sizeof(*j));
    unsigned dl = 0;
    struct der d;

    if (j == NULL)
        return NULL;
    j->r = r;
    j->iss = iss;
    j->produced_at = produced_at;
    if (der_init_alloc(&d, 512) != ST_OK)
        goto fail;
    ocsp_tbs_build(&d, iss->rid, iss->rid_len, produced_at, singles, n, nonce_value, nonce_len,
                   extended_revoke);
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

size_t
ocsp_certid_encode(const struct ocsp_issuer *iss, enum ocsp_hash h, const uint8_t *serial,
                   size_t serial_len, uint8_t *out, size_t cap)
{
    static const uint8_t alg_sha1[] = {0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                       0x03, 0x02, 0x1a, 0x05, 0x00};
    static const uint8_t alg_sha256[] = {0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                         0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00};
    const struct ocsp_issuer_slot *slot = (const struct ocsp_issuer_slot *)iss;
    int i = (int)h - 1;
    struct der d;
    size_t m;

    if (h != OCSP_HASH_SHA1 && h != OCSP_HASH_SHA256)
        return 0;
    der_init(&d, out, cap);
    m = der_begin(&d, DER_SEQUENCE);
    if (h == OCSP_HASH_SHA1)
        der_raw(&d, alg_sha1, sizeof(alg_sha1));
    else
        der_raw(&d, alg_sha256, sizeof(alg_sha256));
    der_tlv(&d, DER_OCTET_STRING, slot->h.name[i], slot->h.len[i]);
    der_tlv(&d, DER_OCTET_STRING, slot->h.key[i], slot->h.len[i]);
    der_tlv(&d, DER_INTEGER, serial, serial_len);
    der_end(&d, m);
    return der_finish(&d) == ST_OK ? d.len : 0;
}

/* Waiting for a set of re-sign jobs. */
struct resign_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t pending;
    size_t stored;
    size_t unstored; /* signed, but the store write failed */
    size_t full;     /* of those, refused above the store's fill level */
};

static void
ocsp_resign_done(struct ocsp_job *j, void *ctx)
{
    struct resign_wait *w = ctx;

    pthread_mutex_lock(&w->lock);
    w->pending--;
    if (j->stored)
        w->stored++;
    else if (j->resp != NULL)
        w->unstored++;
    if (j->store_status == ST_FULL)
        w->full++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    ocsp_job_free(j);
}

/* Queue the pre-signed forms for one (issuer, serial). */
static void
ocsp_resign_one(struct ocsp_responder *r, const struct ocsp_change *c, struct resign_wait *w,
                unsigned limit)
{
    static const enum ocsp_hash forms[] = {OCSP_HASH_SHA1, OCSP_HASH_SHA256};
    const struct ocsp_issuer *iss = ocsp_responder_issuer_by_id(r, c->issuer_id);
    struct ocsp_status st;
    bool have, ext = false;
    int64_t now = (int64_t)time(NULL);

    if (iss == NULL || ocsp_issuer_stale(iss, now))
        return;
    have = ocsp_store_status_get(r->store, c->issuer_id, c->serial, c->serial_len, &st) == ST_OK;
    for (size_t f = 0; f < 2; f++) {
        struct ocsp_certid id = {0};
        struct ocsp_single single;
        struct ocsp_job *j;

        id.der_len =
            ocsp_certid_encode(iss, forms[f], c->serial, c->serial_len, id.der, sizeof(id.der));
        if (id.der_len == 0)
            continue;
        ocsp_decide(iss, &id, have ? &st : NULL, now, &single, &ext);
        j = ocsp_job_new(r, iss, now, &single, 1, NULL, 0, ext);
        if (j == NULL)
            continue;
        j->store = true;
        j->wait_store = true;
        memcpy(j->certid, id.der, id.der_len);
        j->certid_len = id.der_len;
        j->stamp = have ? st.stamp : 0;
        j->this_update = single.this_update;
        j->next_update = single.next_update;
        pthread_mutex_lock(&w->lock);
        while (w->pending >= limit)
            pthread_cond_wait(&w->cond, &w->lock);
        w->pending++;
        pthread_mutex_unlock(&w->lock);
        if (ocsp_job_submit(j, ocsp_resign_done, w) != ST_OK) {
            pthread_mutex_lock(&w->lock);
            w->pending--;
            pthread_mutex_unlock(&w->lock);
            ocsp_job_free(j);
        }
    }
}

int
ocsp_responder_resign(struct ocsp_responder *r, const struct ocsp_change *changes, size_t n,
                      size_t *count)
{
    struct resign_wait w = {.pending = 0, .stored = 0};
    unsigned limit = r->cfg->signer.queue_max > 4 ? r->cfg->signer.queue_max / 2 : 2;

    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    for (size_t i = 0; i < n; i++)
        ocsp_resign_one(r, &changes[i], &w, limit);
    pthread_mutex_lock(&w.lock);
    while (w.pending > 0)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    *count = w.stored;
    if (w.full > 0) {
        /* commit.c has logged the fill level; the answers are signed on demand meanwhile */
        log_info("ocsp: %zu signed response(s) not stored: the store is above fill_limit", w.full);
        return ST_FULL;
    }
    if (w.unstored > 0) {
        log_err("ocsp: %zu signed response(s) could not be stored", w.unstored);
        return ST_STORE;
    }
    return ST_OK;
}
