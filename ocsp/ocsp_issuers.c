/*
 * ocsp_issuers: the registry of served issuers (see ocsp_issuers.h).
 * RFC 6960 §2.6, §4.2.2.2; STANDARDS OCSP-11, OCSP-21.
 */
#include "ocsp/ocsp_issuers.h"
#include "common/daemon.h"
#include "common/json.h"
#include "common/log.h"
#include "common/status.h"
#include "ocsp/ocsp_response.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ocsp_issuer_slot {
    struct ocsp_issuer iss;
    struct ocsp_issuer_slot *retired_next; /* replaced slots, kept until the registry goes */
};

struct ocsp_issuers {
    struct ocsp_store *store;
    struct signer *signer;
    pthread_rwlock_t lock;
    struct ocsp_issuer_slot *issuers[OCSP_MAX_ISSUERS]; /* the issuers served now */
    size_t n;
    struct ocsp_issuer_slot *retired; /* replaced (new key or certificate): pointers stay valid */
    uint64_t gen;
    /* bumped whenever what is served changes: a slot added or replaced, settings published
     * (the front cache's entries of an older generation are not sent: ocsp_front.h) */
    _Atomic uint64_t serve_gen;
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

static _Atomic uint64_t ocsp_live_gen;

const void *
ocsp_live_id(const struct ocsp_issuer_live *lv)
{
    return (const void *)(uintptr_t)lv->gen;
}

static int64_t
mono_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

size_t
ocsp_live_copies(const struct ocsp_issuer *iss)
{
    size_t n = 0;

    for (const struct ocsp_issuer_live *lv = atomic_load(&((struct ocsp_issuer *)iss)->live);
         lv != NULL; lv = lv->older)
        n++;
    return n;
}

static void
ocsp_live_free_chain(const struct ocsp_issuer_live *lv)
{
    const struct ocsp_issuer_live *older;

    for (; lv != NULL; lv = older) {
        older = lv->older;
        free((void *)lv);
    }
}

void
ocsp_live_free_all(struct ocsp_issuer *iss)
{
    ocsp_live_free_chain(atomic_exchange(&iss->live, NULL));
}

/* Publish the record's changeable settings as the issuer's live copy; free the copies past
 * the bound of ocsp_issuers.h (only the reloading thread, under reload_lock, changes the
 * chain: readers only load iss->live). */
int
ocsp_live_publish_at(struct ocsp_issuer *iss, const struct ocsp_issuer_rec *rec, int64_t mono)
{
    struct ocsp_issuer_live *lv = calloc(1, sizeof(*lv)), *prev, *p;
    size_t n = 1;

    if (lv == NULL)
        return ST_NOMEM;
    lv->nonce_policy = rec->nonce_policy;
    lv->unissued_policy = rec->unissued_policy;
    lv->archive_cutoff = rec->archive_cutoff;
    lv->validity = rec->validity;
    lv->crl_fed = rec->crl_fed;
    lv->crl_this_update = rec->crl_this_update;
    lv->crl_next_update = rec->crl_next_update;
    lv->gen = atomic_fetch_add(&ocsp_live_gen, 1) + 1;
    prev = (struct ocsp_issuer_live *)atomic_load(&iss->live);
    if (prev != NULL)
        prev->replaced_mono = mono;
    lv->older = prev;
    atomic_store(&iss->live, lv);
    /* keep the newest OCSP_LIVE_KEEP, then those replaced within the grace, at most
     * OCSP_LIVE_MAX; the rest (all older: replaced earlier) is cut off and freed */
    for (p = lv; p->older != NULL; p = (struct ocsp_issuer_live *)p->older, n++) {
        const struct ocsp_issuer_live *o = p->older;
        if (n >= OCSP_LIVE_MAX ||
            (n >= OCSP_LIVE_KEEP && mono - o->replaced_mono >= OCSP_LIVE_GRACE_S)) {
            p->older = NULL;
            ocsp_live_free_chain(o);
            break;
        }
    }
    return ST_OK;
}

static int
ocsp_live_publish(struct ocsp_issuer *iss, const struct ocsp_issuer_rec *rec)
{
    return ocsp_live_publish_at(iss, rec, mono_seconds());
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
    if (slot == NULL)
        return;
    ocsp_live_free_all(&slot->iss);
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

/* The first 8 bytes of SHA-256 of the responder certificate DER. */
static int
ocsp_signer_fp(X509 *signer, uint8_t fp[8])
{
    uint8_t md[32];
    unsigned len = sizeof(md);

    if (X509_digest(signer, EVP_sha256(), md, &len) != 1)
        return ST_CRYPTO;
    memcpy(fp, md, 8);
    return ST_OK;
}

/* Build the runtime issuer from its record: certificates, key, ResponderID, certs field. */
static struct ocsp_issuer_slot *
ocsp_slot_load(struct ocsp_issuers *r, const struct ocsp_issuer_rec *rec, bool check_only)
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
    if (ocsp_issuer_hashes(iss->cert, &iss->hashes) != ST_OK ||
        ocsp_signer_fp(iss->signer_cert, iss->signer_fp) != ST_OK)
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
    struct ocsp_issuers *r;
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
ocsp_slot_discard(struct ocsp_issuers *r, struct ocsp_issuer_slot *slot)
{
    signer_key_release(r->signer, slot->iss.key);
    ocsp_slot_free(slot);
}

static bool
ocsp_reload_one(void *ctx, const struct ocsp_issuer_rec *rec)
{
    struct reload_ctx *rc = ctx;
    struct ocsp_issuers *r = rc->r;
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
        if (!ocsp_live_same(ocsp_issuer_live(&old->iss), rec)) {
            if (ocsp_live_publish(&old->iss, rec) != ST_OK)
                reload_failed(rc, rec->name);
            atomic_fetch_add(&r->serve_gen, 1);
        }
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
    atomic_fetch_add(&r->serve_gen, 1);
    /* a rollover may delete the old key from the token: a re-initialisation of the module
     * (after a removed device) must not need it any more */
    if (old != NULL)
        signer_key_forget_token(r->signer, old->iss.key);
    return true;
}

static int
ocsp_reload_walk(struct ocsp_issuers *r, struct reload_ctx *rc, bool force)
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
ocsp_issuers_reload(struct ocsp_issuers *r)
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
ocsp_signers_seen(struct ocsp_issuers *r, char *what, size_t cap)
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
ocsp_issuers_reload_all(struct ocsp_issuers *r, char *what, size_t whatcap, char *err,
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

struct ocsp_issuers *
ocsp_issuers_new(struct ocsp_store *st, struct signer *signer, bool strict)
{
    struct ocsp_issuers *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->store = st;
    r->signer = signer;
    r->strict = strict;
    pthread_rwlock_init(&r->lock, NULL);
    pthread_mutex_init(&r->reload_lock, NULL);
    return r;
}

void
ocsp_issuers_free(struct ocsp_issuers *r)
{
    if (r == NULL)
        return;
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

void
ocsp_issuers_mark_seen(struct ocsp_issuers *r)
{
    pthread_mutex_lock(&r->reload_lock);
    ocsp_signers_seen(r, NULL, 0);
    pthread_mutex_unlock(&r->reload_lock);
}

struct ocsp_decide_in
ocsp_issuer_decide_in(const struct ocsp_issuer *iss, int64_t now)
{
    return (struct ocsp_decide_in){.live = ocsp_issuer_live(iss),
                                   .ca_not_before = iss->ca_not_before,
                                   .signer_not_after = iss->signer_not_after,
                                   .now = now};
}

bool
ocsp_issuers_healthy(struct ocsp_issuers *r, int64_t now)
{
    bool ok = true;

    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i < r->n; i++) {
        const struct ocsp_issuer *iss = &r->issuers[i]->iss;

        if (ocsp_signer_expired(iss->signer_not_after, now))
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

int64_t
ocsp_issuers_last_replace(struct ocsp_issuers *r)
{
    return atomic_load(&r->last_replace);
}

size_t
ocsp_issuers_count(struct ocsp_issuers *r)
{
    size_t n;

    pthread_rwlock_rdlock(&r->lock);
    n = r->n;
    pthread_rwlock_unlock(&r->lock);
    return n;
}

const struct ocsp_issuer *
ocsp_issuers_by_id(struct ocsp_issuers *r, const uint8_t id[OCSP_ISSUER_ID_LEN])
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
ocsp_issuers_find(struct ocsp_issuers *r, const struct ocsp_certid *id)
{
    const struct ocsp_issuer *found = NULL;
    int h = (int)id->hash - 1;

    if (h < 0 || h > 3)
        return NULL;
    /* the served issuers are few: compare their hashes directly, no store lookup */
    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i < r->n && found == NULL; i++) {
        const struct ocsp_issuer_slot *s = r->issuers[i];

        const struct ocsp_issuer_hashes *ih = &s->iss.hashes;

        if (ih->len[h] == id->hash_len && memcmp(ih->name[h], id->name_hash, id->hash_len) == 0 &&
            memcmp(ih->key[h], id->key_hash, id->hash_len) == 0)
            found = &s->iss;
    }
    pthread_rwlock_unlock(&r->lock);
    return found;
}

uint64_t
ocsp_issuers_serve_gen(struct ocsp_issuers *r)
{
    return atomic_load(&r->serve_gen);
}
