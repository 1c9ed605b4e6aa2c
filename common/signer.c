/*
 * signer: bounded job queue drained in batches by worker threads, over two backends
 * (PKCS#11 in signer_p11.c, software keys here). DESIGN D1, D2. See signer.h.
 */
#include "common/der.h"
#include "common/live.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/signer_int.h"
#include "common/status.h"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIGNER_PROBE_INTERVAL_NS 1000000000LL /* a test signature a second while unhealthy */
#define SIGNER_EXPIRED_CHUNK 64               /* timed-out jobs per callback */

/* A job's input, copied when a worker takes it: the job itself may be completed by the watch
 * thread (timeout) and freed by its owner while the worker is still inside C_Sign. */
struct signer_in {
    struct signer_key *key;
    uint8_t digest[SIGNER_MAX_DIGEST];
    size_t digest_len;
};

/* A worker slot (s->lock): no thread yet, a thread taking jobs (or stuck in the module: see
 * `hung`), or a thread that left the pool and is to be joined before the slot is used again. */
enum signer_slot_state { SLOT_FREE = 0, SLOT_RUN, SLOT_EXITED };

struct signer_worker {
    struct signer *s;
    unsigned idx; /* its slot: PKCS#11 session and software key context number */
    pthread_t thread;
    enum signer_slot_state state; /* under s->lock */
    bool joinable;                /* a thread was started here and not joined yet */
    /* the watch thread gave up on its call (inside the module for sign_timeout): it no longer
     * counts as a worker, a spare took its place, and it leaves the pool when the call
     * returns, unless no spare could be started (s->lock) */
    bool hung;
    struct live_beat *beat; /* busy while signing a batch and in its callback */
    /* the batch taken, under s->lock: listed[i] is NULL once the watch thread completed it */
    struct signer_job **listed;
    struct signer_in *in;
    size_t n_listed;
    /* the job inside the module now (SIZE_MAX: none) and since when: only a call that itself
     * outlasts sign_timeout says the token hangs, not a wait in the queue or the batch */
    size_t cur;
    long long cur_ns;
    bool in_token; /* its call is one into the token, counted in s->n_in_token (s->lock) */
};

/* A test signature's thread (s->lock): one per probe, on the session of its slot. A probe
 * still in the module after sign_timeout is given up (hung: it keeps its slot and session until
 * its call comes back), and the next one goes to the other slot: a call lost for good (a network
 * HSM's dead connection) must not keep the token's keys down once the token answers again. */
struct signer_probe {
    pthread_t thread;
    enum signer_slot_state state;
    bool joinable;
    bool hung;
    unsigned session;
    struct signer_key *key; /* held while the slot is not free (signer_key_in_use) */
    long long start_ns;
    struct live_beat *beat;
    struct signer *s;
};

struct signer {
    struct signer_config cfg;
    signer_batch_fn batch;
    void *batch_ctx;
    struct signer_p11 *p11;
    struct signer_key *keys;
    struct signer_key *retired; /* released keys a worker may still hold (issue 9 item 4) */
    /* queue */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct signer_job *head, *tail;
    unsigned depth;
    bool stopping;
    /* signer_sign_now() uses the extra PKCS#11 session number nslots + SIGNER_PROBE_SLOTS; its
     * beat is busy while it is in the call (a checkpoint lost in the token: the watchdog) */
    pthread_mutex_t now_lock;
    struct live_beat *now_beat;
    /* worker slots: cfg.workers taking jobs, and as many spares for the workers stuck in a call
     * the watch thread gave up on (a hung token must not stall the other keys; its keys are
     * down from then on). A token that comes back and hangs again takes more slots: calls
     * into the token are admitted only while, should they all hang, one slot would still be
     * left for a worker taking jobs (signer_token_admit), so key files are always signed. */
    struct signer_worker workers[SIGNER_MAX_SLOTS];
    unsigned nslots;     /* 2 * cfg.workers */
    unsigned n_threads;  /* slots in SLOT_RUN (s->lock) */
    unsigned n_live;     /* of those, not hung: the workers taking jobs (s->lock) */
    unsigned n_hung;     /* of those, hung (s->lock) */
    unsigned n_in_token; /* live workers inside a call into the token now (s->lock) */
    bool short_warned;   /* "no spare worker left" logged, until enough take jobs again */
    bool cap_warned;     /* "token calls refused" logged, until a stuck call comes back (not
                            each call admitted: one warning a refused request, under load) */
    atomic_uint n_down;  /* PKCS#11 keys whose last signature failed or timed out */
    bool started;
    /* the watch thread: sign_timeout and the health probe (its own condition: a signal on
     * `cond` must wake a worker) */
    pthread_t watch;
    bool watch_started;
    pthread_cond_t watch_cond;
    long long timeout_ns;
    unsigned long watch_rounds; /* rounds the watch thread made (s->lock; tests wait on it) */
    /* the test signatures with a down key, each on a thread of its own, one at a time: one
     * that hangs holds neither a worker nor the queue; given up after sign_timeout, the next
     * goes to the other slot (sessions nslots and nslots + 1) */
    struct signer_probe probes[SIGNER_PROBE_SLOTS];
    struct signer_key *probe_key; /* the one probed last (round robin over down keys) */
    long long probe_last;
    bool probe_short_warned; /* "every probe slot stuck" logged, until one is free again */
    long long watch_last;    /* its previous round, plus the time spent in callbacks since
                                (a pause of the process shows as a gap) */
    struct metric *m_timeouts, *m_hsm_fail, *m_down, *m_hung;
};

static long long
signer_now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Mark token key k down (with `reason`, for the audit event) or up; a change is an audit
 * event (DESIGN D8; issue 8, HSM faults). A released key says nothing any more. */
static void
signer_key_mark(struct signer *s, struct signer_key *k, bool down, const char *reason)
{
    if (k == NULL || k->soft != NULL || __atomic_load_n(&k->retired, __ATOMIC_ACQUIRE))
        return;
    if (atomic_load(&k->down) == down || atomic_exchange(&k->down, down) == down)
        return;
    if (down) {
        atomic_fetch_add(&s->n_down, 1);
        metrics_inc(s->m_down);
        /* released meanwhile (signer_key_release, between the check above and the exchange):
         * its own exchange found the key up, so the count is taken back here (whichever of
         * the two exchanges comes second sees the other's effect) */
        if (__atomic_load_n(&k->retired, __ATOMIC_ACQUIRE)) {
            if (atomic_exchange(&k->down, false)) {
                atomic_fetch_sub(&s->n_down, 1);
                metrics_dec(s->m_down);
            }
            return;
        }
        log_audit("hsm_unavailable",
                  "key=%s reason=%s: its signatures fail; answering "
                  "systemFailure/tryLater, a test signature every second until it signs again",
                  k->name, reason);
    } else {
        atomic_fetch_sub(&s->n_down, 1);
        metrics_dec(s->m_down);
        log_audit("hsm_available", "key=%s: the token signs again", k->name);
    }
}

/* Record the outcome of a PKCS#11 signature with key k (or its timeout): a key is down after
 * a failure (ST_HSM) or a timeout and up after a success. Other failures (a bad job) say
 * nothing about the token. */
static void
signer_key_health(struct signer *s, struct signer_key *k, int st)
{
    if (st != ST_OK && st != ST_HSM && st != ST_TIMEOUT)
        return;
    signer_key_mark(s, k, st != ST_OK, st == ST_TIMEOUT ? "timeout" : status_str(st));
}

static const uint8_t digalg_der[][13] = {
    {0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01},
    {0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02},
    {0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03},
};
/* ecdsa-with-SHA256/384/512 (RFC 5758 §3.2: parameters absent) */
static const uint8_t ecdsa_oid_last[] = {0x02, 0x03, 0x04};
/* sha256/384/512WithRSAEncryption (RFC 4055 §5: parameters NULL) */
static const uint8_t rsa_oid_last[] = {0x0b, 0x0c, 0x0d};

int
signer_scheme_parse(const char *name)
{
    if (strcmp(name, "ecdsa") == 0)
        return SIGNER_ECDSA;
    if (strcmp(name, "rsa-pkcs1") == 0)
        return SIGNER_RSA_PKCS1;
    if (strcmp(name, "rsa-pss") == 0)
        return SIGNER_RSA_PSS;
    return -1;
}

int
signer_hash_parse(const char *name)
{
    if (strcmp(name, "sha256") == 0)
        return SIGNER_SHA256;
    if (strcmp(name, "sha384") == 0)
        return SIGNER_SHA384;
    if (strcmp(name, "sha512") == 0)
        return SIGNER_SHA512;
    return -1;
}

size_t
signer_hash_len(enum signer_hash h)
{
    return h == SIGNER_SHA512 ? 64 : h == SIGNER_SHA384 ? 48 : 32;
}

/* Digests fetched once: OpenSSL 3 fetches the implementation again on every use of the legacy
 * EVP_sha256() and friends (a lock and a hash-table walk per call on the request path). */
static EVP_MD *signer_mds[3];
static pthread_once_t signer_mds_once = PTHREAD_ONCE_INIT;

static void
signer_mds_fetch(void)
{
    signer_mds[0] = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    signer_mds[1] = EVP_MD_fetch(NULL, "SHA2-384", NULL);
    signer_mds[2] = EVP_MD_fetch(NULL, "SHA2-512", NULL);
}

static const EVP_MD *
signer_md(enum signer_hash h)
{
    int i = h == SIGNER_SHA512 ? 2 : h == SIGNER_SHA384 ? 1 : 0;
    static const EVP_MD *(*const legacy[3])(void) = {EVP_sha256, EVP_sha384, EVP_sha512};

    pthread_once(&signer_mds_once, signer_mds_fetch);
    return signer_mds[i] != NULL ? signer_mds[i] : legacy[i]();
}

const EVP_MD *
signer_hash_md(enum signer_hash h)
{
    return signer_md(h);
}

/* RSASSA-PSS AlgorithmIdentifier (RFC 4055 §3.1): hash, MGF1 with the same hash, salt = hash
 * length, trailer field default. */
static int
signer_pss_algid(struct signer_key *k)
{
    static const uint8_t pss_oid[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                      0xf7, 0x0d, 0x01, 0x01, 0x0a};
    static const uint8_t mgf1_oid[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                       0xf7, 0x0d, 0x01, 0x01, 0x08};
    const uint8_t *h = digalg_der[k->hash - 1];
    struct der d;
    size_t top, params, m, m2;

    der_init(&d, k->sigalg, sizeof(k->sigalg));
    top = der_begin(&d, DER_SEQUENCE);
    der_raw(&d, pss_oid, sizeof(pss_oid));
    params = der_begin(&d, DER_SEQUENCE);
    m = der_begin(&d, DER_CTX_CONS(0));
    der_raw(&d, h, 13);
    der_end(&d, m);
    m = der_begin(&d, DER_CTX_CONS(1));
    m2 = der_begin(&d, DER_SEQUENCE);
    der_raw(&d, mgf1_oid, sizeof(mgf1_oid));
    der_raw(&d, h, 13);
    der_end(&d, m2);
    der_end(&d, m);
    m = der_begin(&d, DER_CTX_CONS(2));
    der_u64(&d, DER_INTEGER, signer_hash_len(k->hash));
    der_end(&d, m);
    der_end(&d, params);
    der_end(&d, top);
    k->sigalg_len = d.len;
    return der_finish(&d);
}

static int
signer_key_algids(struct signer_key *k)
{
    static const uint8_t ecdsa_prefix[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                           0x48, 0xce, 0x3d, 0x04, 0x03};
    static const uint8_t rsa_prefix[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86,
                                         0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01};
    size_t hi = (size_t)k->hash - 1;

    memcpy(k->digalg, digalg_der[hi], 13);
    k->digalg_len = 13;
    switch (k->scheme) {
    case SIGNER_ECDSA:
        memcpy(k->sigalg, ecdsa_prefix, sizeof(ecdsa_prefix));
        k->sigalg[sizeof(ecdsa_prefix)] = ecdsa_oid_last[hi];
        k->sigalg_len = sizeof(ecdsa_prefix) + 1;
        return ST_OK;
    case SIGNER_RSA_PKCS1:
        memcpy(k->sigalg, rsa_prefix, sizeof(rsa_prefix));
        k->sigalg[sizeof(rsa_prefix)] = rsa_oid_last[hi];
        k->sigalg[sizeof(rsa_prefix) + 1] = DER_NULL;
        k->sigalg[sizeof(rsa_prefix) + 2] = 0x00;
        k->sigalg_len = sizeof(rsa_prefix) + 3;
        return ST_OK;
    case SIGNER_RSA_PSS:
        return signer_pss_algid(k);
    }
    return ST_INVALID;
}

/* Check that the certificate's key fits the scheme (ALG-02/03): ECDSA on P-256/P-384/P-521,
 * RSA of 2048..4096 bits. */
static int
signer_key_check(struct signer_key *k, EVP_PKEY *pub)
{
    int bits = EVP_PKEY_get_bits(pub);

    k->pkey_type = EVP_PKEY_get_base_id(pub);
    if (k->scheme == SIGNER_ECDSA) {
        char curve[64] = "";
        size_t cl = 0;

        if (k->pkey_type != EVP_PKEY_EC) {
            log_err("signer: %s: scheme ecdsa needs an EC key", k->name);
            return ST_INVALID;
        }
        EVP_PKEY_get_utf8_string_param(pub, "group", curve, sizeof(curve), &cl);
        if (strcmp(curve, "prime256v1") != 0 && strcmp(curve, "secp384r1") != 0 &&
            strcmp(curve, "secp521r1") != 0) {
            log_err("signer: %s: unsupported curve '%s' (P-256, P-384, P-521)", k->name, curve);
            return ST_INVALID;
        }
        /* ALG-02: the hash length matches the curve (P-256/SHA-256, P-384/SHA-384,
         * P-521/SHA-512) */
        if ((strcmp(curve, "prime256v1") == 0) != (k->hash == SIGNER_SHA256) ||
            (strcmp(curve, "secp384r1") == 0) != (k->hash == SIGNER_SHA384)) {
            log_err("signer: %s: curve %s needs digest %s (TS 119 312, ALG-02)", k->name, curve,
                    strcmp(curve, "prime256v1") == 0  ? "sha256"
                    : strcmp(curve, "secp384r1") == 0 ? "sha384"
                                                      : "sha512");
            return ST_INVALID;
        }
        k->max_sig = (size_t)EVP_PKEY_get_size(pub);
        return ST_OK;
    }
    if (k->pkey_type != EVP_PKEY_RSA) {
        log_err("signer: %s: RSA scheme needs an RSA key", k->name);
        return ST_INVALID;
    }
    if (bits < 2048 || bits > 4096) {
        log_err("signer: %s: RSA key of %d bits (2048..4096 accepted)", k->name, bits);
        return ST_INVALID;
    }
    if (bits < 3000)
        log_warn("signer: %s: RSA-%d is legacy after 2026-12-31 (TS 119 312, ALG-03)", k->name,
                 bits);
    k->max_sig = (size_t)EVP_PKEY_get_size(pub);
    return ST_OK;
}

static struct signer_key *
signer_key_new(struct signer *s, const char *name, X509 *cert, enum signer_scheme scheme,
               enum signer_hash hash)
{
    struct signer_key *k = calloc(1, sizeof(*k));
    EVP_PKEY *pub = X509_get0_pubkey(cert);

    if (k == NULL)
        return NULL;
    k->owner = s;
    atomic_init(&k->refs, 1);
    snprintf(k->name, sizeof(k->name), "%s", name);
    k->scheme = scheme;
    k->hash = hash;
    if (pub == NULL || (int)scheme < SIGNER_ECDSA || (int)scheme > SIGNER_RSA_PSS ||
        (int)hash < SIGNER_SHA256 || (int)hash > SIGNER_SHA512 ||
        signer_key_check(k, pub) != ST_OK || signer_key_algids(k) != ST_OK) {
        free(k);
        return NULL;
    }
    EVP_PKEY_up_ref(pub);
    k->pub = pub;
    return k;
}

static int signer_key_test(struct signer *s, struct signer_key *k);
static size_t signer_sweep_retired(struct signer *s);

/* Link a new key; keys added after signer_start() are self-tested first. */
static int
signer_key_link(struct signer *s, struct signer_key *k)
{
    bool started;

    pthread_mutex_lock(&s->lock);
    started = s->started;
    pthread_mutex_unlock(&s->lock);
    if (started && signer_key_test(s, k) != ST_OK)
        return ST_CRYPTO;
    pthread_mutex_lock(&s->lock);
    k->next = s->keys;
    s->keys = k;
    pthread_mutex_unlock(&s->lock);
    return ST_OK;
}

struct signer_key *
signer_add_p11_key(struct signer *s, const char *label, X509 *cert, enum signer_scheme scheme,
                   enum signer_hash hash)
{
    char name[128];
    struct signer_key *k;

    if (s->p11 == NULL) {
        log_err("signer: key '%s' is in a PKCS#11 token but no token is configured", label);
        return NULL;
    }
    snprintf(name, sizeof(name), "pkcs11:%s", label);
    k = signer_key_new(s, name, cert, scheme, hash);
    if (k == NULL)
        return NULL;
    if (signer_p11_find_key(s->p11, label, X509_get0_pubkey(cert), &k->p11_obj) != ST_OK) {
        log_err("signer: no usable private key labelled '%s' matching its certificate", label);
        EVP_PKEY_free(k->pub);
        free(k);
        return NULL;
    }
    if (signer_key_link(s, k) != ST_OK) {
        signer_p11_forget_key(s->p11, k->p11_obj); /* found, but it does not sign */
        EVP_PKEY_free(k->pub);
        free(k);
        return NULL;
    }
    return k;
}

struct signer_key *
signer_add_soft_key(struct signer *s, const char *pem_path, X509 *cert, enum signer_scheme scheme,
                    enum signer_hash hash)
{
    struct signer_key *k;
    FILE *f;

    k = signer_key_new(s, pem_path, cert, scheme, hash);
    if (k == NULL)
        return NULL;
    f = fopen(pem_path, "r");
    if (f == NULL) {
        log_err("signer: cannot open key file %s", pem_path);
        goto fail;
    }
    k->soft = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (k->soft == NULL) {
        log_openssl(LOG_LVL_ERR, "signer: cannot read private key");
        goto fail;
    }
    if (EVP_PKEY_eq(k->soft, X509_get0_pubkey(cert)) != 1) {
        log_err("signer: key %s does not match its certificate", pem_path);
        goto fail;
    }
    if (signer_key_link(s, k) != ST_OK)
        goto fail;
    return k;
fail:
    EVP_PKEY_free(k->soft);
    EVP_PKEY_free(k->pub);
    free(k);
    return NULL;
}

/* Set the key's hash and padding on an initialised sign or verify context. */
static bool
signer_ctx_params(const struct signer_key *k, EVP_PKEY_CTX *ctx)
{
    if (EVP_PKEY_CTX_set_signature_md(ctx, signer_md(k->hash)) <= 0)
        return false;
    if (k->scheme == SIGNER_RSA_PKCS1)
        return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0;
    if (k->scheme == SIGNER_RSA_PSS)
        return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) > 0 &&
               EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, signer_md(k->hash)) > 0 &&
               EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) > 0;
    return true;
}

/* Sign with the context of slot `slot` (one per worker, plus one for signer_sign_now), set
 * up once: creating and initialising a context per signature costs as much as a P-256
 * signature's own arithmetic in OpenSSL 3. Each slot is used by one thread at a time. */
static int
signer_soft_sign(struct signer_key *k, unsigned slot, const uint8_t *dig, size_t dlen, uint8_t *sig,
                 size_t *slen)
{
    EVP_PKEY_CTX *ctx = k->soft_ctx[slot];

    if (ctx == NULL) {
        ctx = EVP_PKEY_CTX_new(k->soft, NULL);
        if (ctx == NULL || EVP_PKEY_sign_init(ctx) <= 0 || !signer_ctx_params(k, ctx)) {
            log_openssl(LOG_LVL_ERR, "signer: software key context");
            EVP_PKEY_CTX_free(ctx);
            return ST_CRYPTO;
        }
        k->soft_ctx[slot] = ctx;
    }
    if (EVP_PKEY_sign(ctx, sig, slen, dig, dlen) <= 0) {
        log_openssl(LOG_LVL_ERR, "signer: software signature failed");
        return ST_CRYPTO;
    }
    return ST_OK;
}

/* Verify a signature with the certificate's public key. */
static bool
signer_verify(const struct signer_key *k, const struct signer_job *job)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k->pub, NULL);
    bool ok = ctx != NULL && EVP_PKEY_verify_init(ctx) > 0 && signer_ctx_params(k, ctx) &&
              EVP_PKEY_verify(ctx, job->sig, job->sig_len, job->digest, job->digest_len) == 1;

    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/* Sign one job with session/worker number `slot`. While its token key is down only `force`d
 * jobs (the probe, self-tests) reach the module; the others fail at once (ST_HSM): a broken
 * HSM is not called, and nothing logged, once per request, while the probe looks for its
 * return once a second. A forced job's signature is verified. */
static void
signer_do_job(struct signer *s, unsigned slot, struct signer_job *job, bool force)
{
    struct signer_key *k = job->key;

    job->sig_len = sizeof(job->sig);
    if (k == NULL || job->digest_len != signer_hash_len(k->hash)) {
        job->status = ST_INVALID;
        return;
    }
    if (k->soft == NULL && !force && atomic_load(&k->down)) {
        job->status = ST_HSM;
        job->sig_len = 0;
        metrics_inc(s->m_hsm_fail);
        return;
    }
    if (k->soft != NULL)
        job->status =
            signer_soft_sign(k, slot, job->digest, job->digest_len, job->sig, &job->sig_len);
    else
        job->status = signer_p11_sign(s->p11, slot, k->p11_obj, k->scheme, k->hash, job->digest,
                                      job->digest_len, job->sig, &job->sig_len);
    /* a key comes back (and starts) only with a signature that verifies: after a recovery a
     * handle found again must name the certificate's key */
    if (job->status == ST_OK && k->soft == NULL && force && !signer_verify(k, job)) {
        log_err("signer: %s: the token's test signature does not verify with the certificate's "
                "key",
                k->name);
        job->status = ST_HSM;
    }
    if (job->status != ST_OK)
        job->sig_len = 0;
    if (job->status == ST_HSM)
        metrics_inc(s->m_hsm_fail);
    signer_key_health(s, k, job->status);
}

/* No call into the token can be admitted now, whatever the others do (the lock held): the
 * calls stuck in it hold every slot but the one kept for the key files (one worker and one call
 * lost for good is enough). Its keys may be up (a test signature on a probe session works),
 * yet every job of the token fails at once: the signer is not healthy (review14 finding 1). */
static bool
signer_token_capped(const struct signer *s)
{
    if (s->p11 == NULL || s->n_hung + 1 < s->nslots)
        return false;
    for (const struct signer_key *k = s->keys; k != NULL; k = k->next)
        if (k->soft == NULL)
            return true;
    return false; /* no key of the token in use: nothing is refused */
}

/* May worker w call into the token now (the lock held)? Only while, should every call in the
 * token hang now, a slot would be left for a worker taking jobs: the stuck ones keep theirs
 * until their calls come back, and without that slot the key files' jobs would stop too (a
 * token that comes back and hangs again, more than once). A call admitted is counted until it
 * returns or is found hung. */
static bool
signer_token_admit(struct signer *s, struct signer_worker *w)
{
    if (s->n_in_token + 1 + s->n_hung >= s->nslots) {
        if (!s->cap_warned) {
            s->cap_warned = true;
            log_warn("signer: %u worker(s) still stuck in the token: its signatures fail at once "
                     "until they come back (key files are signed as before)",
                     s->n_hung);
        }
        return false;
    }
    s->n_in_token++;
    w->in_token = true;
    return true;
}

/* Sign the i-th job taken from its input copy, and write the result into the job unless the
 * watch thread completed it meanwhile (then the job may be gone: it is not touched). */
static void
signer_worker_sign(struct signer_worker *w, size_t i, bool stopping)
{
    struct signer *s = w->s;
    struct signer_job tmp, *job;
    bool gone, admitted = true;

    /* completed already (timed out behind a call that hung): not worth a signature */
    pthread_mutex_lock(&s->lock);
    gone = w->listed[i] == NULL;
    if (!gone) {
        w->cur = i;
        w->cur_ns = signer_now_ns();
        if (!stopping && w->in[i].key != NULL && w->in[i].key->soft == NULL)
            admitted = signer_token_admit(s, w);
    }
    pthread_mutex_unlock(&s->lock);
    if (gone)
        return;
    tmp.key = w->in[i].key;
    tmp.digest_len = w->in[i].digest_len;
    memcpy(tmp.digest, w->in[i].digest, tmp.digest_len);
    if (stopping || !admitted) {
        tmp.status = stopping ? ST_SHUTDOWN : ST_HSM;
        tmp.sig_len = 0;
        if (!admitted)
            metrics_inc(s->m_hsm_fail);
    } else {
        signer_do_job(s, w->idx, &tmp, false);
    }
    pthread_mutex_lock(&s->lock);
    w->cur = SIZE_MAX;
    if (w->in_token) { /* not found hung meanwhile: that took it out of the count */
        w->in_token = false;
        s->n_in_token--;
    }
    if ((job = w->listed[i]) != NULL) {
        job->status = tmp.status;
        job->sig_len = tmp.sig_len;
        memcpy(job->sig, tmp.sig, tmp.sig_len);
        job->done = true;
    }
    pthread_mutex_unlock(&s->lock);
}

/* Take up to `cap` jobs from the queue head into w's listing, with a copy of their input.
 * Called with the lock held. */
static size_t
signer_worker_take(struct signer_worker *w, size_t cap)
{
    struct signer *s = w->s;
    size_t n = 0;

    while (s->head != NULL && n < cap) {
        struct signer_job *j = s->head;

        s->head = j->next;
        s->depth--;
        j->done = false;
        w->listed[n] = j;
        w->in[n].key = j->key;
        w->in[n].digest_len = j->digest_len <= SIGNER_MAX_DIGEST ? j->digest_len : 0;
        memcpy(w->in[n].digest, j->digest, w->in[n].digest_len);
        n++;
    }
    if (s->head == NULL)
        s->tail = NULL;
    w->n_listed = n;
    return n;
}

/* Hand the batch's completed jobs to the owner. */
static void
signer_worker_deliver(struct signer_worker *w, struct signer_job **out)
{
    struct signer *s = w->s;
    size_t m = 0;

    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < w->n_listed; i++) {
        if (w->listed[i] != NULL)
            out[m++] = w->listed[i];
    }
    w->n_listed = 0;
    pthread_mutex_unlock(&s->lock);
    if (m > 0)
        s->batch(out, m, s->batch_ctx);
}

/* A hung worker whose call came back (the lock held): it leaves the pool when a spare took its
 * place (true: the thread ends), else it takes jobs again. */
static bool
signer_worker_unhang(struct signer_worker *w)
{
    struct signer *s = w->s;

    w->hung = false;
    s->n_hung--;
    s->cap_warned = false; /* a call that comes back makes room: a refusal now says so again */
    metrics_dec(s->m_hung);
    if (s->n_live < s->cfg.workers) {
        s->n_live++;
        log_notice("signer: worker %u: its call into the token came back; it takes jobs again",
                   w->idx);
        return false;
    }
    w->state = SLOT_EXITED; /* joined by the watch thread or signer_free(): the thread no longer
                               touches the signer */
    s->n_threads--;
    log_notice("signer: worker %u: its call into the token came back; a spare took its place, "
               "it leaves",
               w->idx);
    return true;
}

static void *
signer_worker_main(void *arg)
{
    struct signer_worker *w = arg;
    struct signer *s = w->s;
    struct signer_job **out;
    unsigned cap = s->cfg.batch_max;

    out = calloc(cap, sizeof(*out));
    if (out == NULL) {
        log_err("signer: worker %u: out of memory", w->idx);
        pthread_mutex_lock(&s->lock);
        w->state = SLOT_EXITED;
        s->n_threads--;
        s->n_live--;
        pthread_mutex_unlock(&s->lock);
        return NULL;
    }
    for (;;) {
        size_t n, share;
        bool stopping;

        pthread_mutex_lock(&s->lock);
        if (w->hung && signer_worker_unhang(w)) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        while (s->head == NULL && !s->stopping)
            pthread_cond_wait(&s->cond, &s->lock);
        /* a fair share of the queue, so that every worker (every HSM session) gets work: with
         * a far-away HSM one worker signing a whole batch in turn would leave the others idle */
        share = (s->depth + s->cfg.workers - 1) / s->cfg.workers;
        if (share < cap)
            cap = share > 0 ? share : 1;
        n = signer_worker_take(w, cap);
        stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        cap = s->cfg.batch_max;
        if (n == 0)
            break; /* stopping and drained */
        live_busy(w->beat);
        for (size_t i = 0; i < n; i++)
            signer_worker_sign(w, i, stopping);
        signer_worker_deliver(w, out);
        live_idle(w->beat);
    }
    free(out);
    return NULL;
}

/* The down key after the one probed last (round robin, so that a key that stays down does not
 * keep the others from being probed); NULL when none is down. The lock held. */
static struct signer_key *
signer_probe_key(struct signer *s)
{
    struct signer_key *k, *first = NULL;
    bool past = s->probe_key == NULL;

    for (k = s->keys; k != NULL; k = k->next) {
        if (k->soft != NULL || !atomic_load(&k->down))
            continue;
        if (past)
            return k;
        if (first == NULL)
            first = k;
        if (k == s->probe_key)
            past = true;
    }
    return first;
}

static void *signer_probe_main(void *arg);

/* Join the probe threads that are done (the lock held: they no longer take it). */
static void
signer_probe_reap(struct signer *s)
{
    for (unsigned i = 0; i < SIGNER_PROBE_SLOTS; i++) {
        struct signer_probe *p = &s->probes[i];

        if (p->state == SLOT_EXITED && p->joinable) {
            pthread_join(p->thread, NULL);
            p->joinable = false;
            p->key = NULL;
            p->state = SLOT_FREE;
        }
    }
}

/* Start a test signature with a down token key (the lock held), unless one is in the module and
 * not given up yet; on a free probe slot (none while both hold a call lost in the module). */
static void
signer_probe_submit(struct signer *s, long long now)
{
    struct signer_probe *p = NULL;
    struct signer_key *k;

    for (unsigned i = 0; i < SIGNER_PROBE_SLOTS; i++) {
        if (s->probes[i].state == SLOT_RUN && !s->probes[i].hung)
            return; /* one at a time */
        if (p == NULL && s->probes[i].state == SLOT_FREE)
            p = &s->probes[i];
    }
    if (s->stopping || (k = signer_probe_key(s)) == NULL)
        return;
    if (p == NULL) {
        if (!s->probe_short_warned) {
            s->probe_short_warned = true;
            log_warn("signer: no test signature until one of the %u stuck in the module comes "
                     "back",
                     SIGNER_PROBE_SLOTS);
        }
        return;
    }
    s->probe_short_warned = false;
    s->probe_key = k;
    s->probe_last = now;
    p->key = k;
    p->hung = false;
    p->start_ns = now;
    if (pthread_create(&p->thread, NULL, signer_probe_main, p) != 0) {
        log_err("signer: cannot start a test signature's thread");
        p->key = NULL;
        return;
    }
    p->joinable = true;
    p->state = SLOT_RUN;
}

/* A test signature, on its slot's session. Its key is held until the slot is reaped. */
static void *
signer_probe_main(void *arg)
{
    struct signer_probe *p = arg;
    struct signer *s = p->s;
    struct signer_job job;

    memset(&job, 0, sizeof(job));
    job.key = p->key;
    job.digest_len = signer_hash_len(job.key->hash);
    memset(job.digest, 0x5a, job.digest_len);
    live_busy(p->beat);
    signer_do_job(s, p->session, &job, true);
    live_idle(p->beat);
    pthread_mutex_lock(&s->lock);
    if (p->hung)
        log_notice("signer: a test signature given up on came back (%s)", status_str(job.status));
    /* the token signs: its other down keys (token_hung) are tried from the next round on, one
     * after the other, not one a second (that pace is for a token that still fails) */
    if (job.status == ST_OK)
        s->probe_last = 0;
    p->state = SLOT_EXITED; /* joined by the watch thread or signer_free() */
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Give up on a test signature in the module for sign_timeout (the lock held): its key stays
 * down, and the next probe goes to the other slot. */
static void
signer_probe_expire(struct signer *s, long long now)
{
    for (unsigned i = 0; i < SIGNER_PROBE_SLOTS; i++) {
        struct signer_probe *p = &s->probes[i];

        if (p->state != SLOT_RUN || p->hung || now - p->start_ns < s->timeout_ns)
            continue;
        p->hung = true;
        log_warn("signer: test signature with %s stuck in the module for %.1f s: left to its "
                 "call, the next one goes to another session",
                 p->key->name, (double)(now - p->start_ns) / 1e9);
    }
}

/* The shifted start of a call: never later than now (a call that began after the resume, in
 * the moment before this round, must not be timed from the future). */
static long long
signer_pause_start(long long start, long long now, long long gap)
{
    return start + gap < now ? start + gap : now;
}

/* The process did not run for `gap` (a VM paused by its host, SIGSTOP, a debugger; the lock
 * held): the calls in the module did not hang meanwhile, their clocks restart now. */
static void
signer_pause_shift(struct signer *s, long long now, long long gap)
{
    for (unsigned w = 0; w < s->nslots; w++)
        if (s->workers[w].state == SLOT_RUN && s->workers[w].cur < s->workers[w].n_listed)
            s->workers[w].cur_ns = signer_pause_start(s->workers[w].cur_ns, now, gap);
    for (unsigned i = 0; i < SIGNER_PROBE_SLOTS; i++)
        if (s->probes[i].state == SLOT_RUN)
            s->probes[i].start_ns = signer_pause_start(s->probes[i].start_ns, now, gap);
    log_notice("signer: the process did not run for %.1f s (a pause): the calls in the module "
               "are timed from now",
               (double)gap / 1e9);
}

/* Collect the jobs older than sign_timeout, queued or taken by a worker and not signed yet,
 * into a list linked by `next` (the lock held). A worker whose
 * call has been inside the module for sign_timeout is hung: it no longer counts as a worker
 * (a spare takes its place) and the key of its call goes to hung[] (*n_hung of them). A job
 * that only waited (queue, batch) behind a slow but working token says nothing of it. */
static struct signer_job *
signer_collect_expired(struct signer *s, long long now, struct signer_key **hung, size_t *n_hung)
{
    struct signer_job *list = NULL, **tail = &list, *j;

    *n_hung = 0;
    for (unsigned w = 0; w < s->nslots; w++) {
        struct signer_worker *wk = &s->workers[w];

        if (wk->state != SLOT_RUN || wk->hung || wk->cur >= wk->n_listed ||
            now - wk->cur_ns < s->timeout_ns)
            continue;
        wk->hung = true; /* once: it stays hung until its call comes back */
        s->n_hung++;
        s->n_live--;
        if (wk->in_token) {
            wk->in_token = false;
            s->n_in_token--;
        }
        metrics_inc(s->m_hung);
        hung[(*n_hung)++] = wk->in[wk->cur].key;
        log_warn("signer: worker %u stuck in the module for %.1f s (key %s): left to its call, "
                 "the other keys are signed by the other workers",
                 w, (double)(now - wk->cur_ns) / 1e9,
                 wk->in[wk->cur].key != NULL ? wk->in[wk->cur].key->name : "-");
    }

    while ((j = s->head) != NULL && now - j->submitted_ns >= s->timeout_ns) {
        if ((s->head = j->next) == NULL)
            s->tail = NULL;
        s->depth--;
        j->next = NULL;
        *tail = j;
        tail = &j->next;
    }
    for (unsigned w = 0; w < s->nslots; w++) {
        for (size_t i = 0; i < s->workers[w].n_listed; i++) {
            j = s->workers[w].listed[i];
            if (j == NULL || j->done || now - j->submitted_ns < s->timeout_ns)
                continue;
            s->workers[w].listed[i] = NULL;
            j->next = NULL;
            *tail = j;
            tail = &j->next;
        }
    }
    return list;
}

/* Complete timed-out jobs through the batch callback, in chunks. */
static void
signer_deliver_expired(struct signer *s, struct signer_job *list)
{
    struct signer_job *chunk[SIGNER_EXPIRED_CHUNK];
    size_t m = 0;

    while (list != NULL) {
        struct signer_job *j = list;

        list = j->next;
        j->next = NULL;
        j->status = ST_TIMEOUT;
        j->sig_len = 0;
        chunk[m++] = j;
        if (m == SIGNER_EXPIRED_CHUNK || list == NULL) {
            s->batch(chunk, m, s->batch_ctx);
            m = 0;
        }
    }
}

static void *signer_worker_main(void *arg);

/* Start a worker thread in slot i (the lock held, the slot free or its thread joined). */
static int
signer_worker_spawn(struct signer *s, unsigned i)
{
    struct signer_worker *w = &s->workers[i];

    w->cur = SIZE_MAX;
    w->n_listed = 0;
    w->hung = false;
    w->in_token = false;
    if (pthread_create(&w->thread, NULL, signer_worker_main, w) != 0) {
        log_err("signer: cannot start worker %u", i);
        return ST_ERR;
    }
    w->joinable = true;
    w->state = SLOT_RUN;
    s->n_threads++;
    s->n_live++;
    return ST_OK;
}

/* Join the workers that left the pool (the lock held: they no longer take it). */
static void
signer_reap(struct signer *s)
{
    for (unsigned i = 0; i < s->nslots; i++) {
        struct signer_worker *w = &s->workers[i];

        if (w->state == SLOT_EXITED && w->joinable) {
            pthread_join(w->thread, NULL);
            w->joinable = false;
            w->state = SLOT_FREE;
        }
    }
}

/* Start spares while fewer than cfg.workers workers take jobs (the lock held): the workers
 * stuck in a call that hangs keep their slots (and PKCS#11 sessions) until it comes back. */
static void
signer_spawn_spares(struct signer *s)
{
    for (unsigned i = 0; i < s->nslots && s->n_live < s->cfg.workers && !s->stopping; i++) {
        if (s->workers[i].state != SLOT_FREE)
            continue;
        if (signer_worker_spawn(s, i) != ST_OK)
            return;
        log_notice("signer: spare worker %u started (%u stuck in the module)", i, s->n_hung);
    }
    if (s->n_live >= s->cfg.workers)
        s->short_warned = false;
    else if (!s->stopping && !s->short_warned) {
        s->short_warned = true;
        log_warn("signer: no spare worker left: %u worker(s) stuck in the module, %u taking jobs",
                 s->n_hung, s->n_live);
    }
}

/* Every token key is down once a call into the token hangs (the lock held): its other keys
 * would hang the next workers too. The key of the call itself is down for a timeout. */
static void
signer_token_hung(struct signer *s, struct signer_key *hung)
{
    if (hung == NULL || hung->soft != NULL)
        return;
    signer_key_health(s, hung, ST_TIMEOUT);
    for (struct signer_key *k = s->keys; k != NULL; k = k->next)
        if (k != hung)
            signer_key_mark(s, k, true, "token_hung");
}

/* The watch thread: sign_timeout for queued and stuck jobs, spares for the stuck workers, and
 * the probe while unhealthy. */
static void *
signer_watch_main(void *arg)
{
    struct signer *s = arg;
    long long tick = s->timeout_ns / 10;

    if (tick < 10000000LL)
        tick = 10000000LL;
    if (tick > 200000000LL)
        tick = 200000000LL;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        struct timespec until;
        struct signer_job *expired;
        struct signer_key *hung[SIGNER_MAX_SLOTS];
        size_t n_hung;
        long long now;
        int n = 0;

        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)tick;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        (void)pthread_cond_timedwait(&s->watch_cond, &s->lock, &until);
        if (s->stopping)
            break;
        now = signer_now_ns();
        s->watch_rounds++;
        /* a round much later than its tick: the process did not run (a VM pause), which says
         * nothing of the token */
        if (now - s->watch_last > tick + s->timeout_ns / 2)
            signer_pause_shift(s, now, now - s->watch_last - tick);
        s->watch_last = now;
        signer_probe_expire(s, now);
        expired = signer_collect_expired(s, now, hung, &n_hung);
        /* under the lock: a hung key may be a released one, freed once its worker is done */
        for (size_t i = 0; i < n_hung; i++)
            signer_token_hung(s, hung[i]);
        signer_reap(s);
        signer_probe_reap(s);
        signer_spawn_spares(s);
        if (s->retired != NULL)
            signer_sweep_retired(s);
        if (atomic_load(&s->n_down) > 0 && now - s->probe_last >= SIGNER_PROBE_INTERVAL_NS)
            signer_probe_submit(s, now);
        pthread_mutex_unlock(&s->lock);
        for (struct signer_job *j = expired; j != NULL; j = j->next)
            n++;
        if (n > 0) {
            metrics_add(s->m_timeouts, n);
            log_warn("signer: %d job(s) not signed within sign_timeout (%.1f s): answered as "
                     "failed",
                     n, (double)s->timeout_ns / 1e9);
        }
        if (expired != NULL) {
            long long t0 = signer_now_ns(), busy;

            signer_deliver_expired(s, expired);
            busy = signer_now_ns() - t0;
            pthread_mutex_lock(&s->lock);
            /* the time this thread spent in the owner's callback is no pause of the process:
             * taken for one, it would push back the clocks of calls that did hang meanwhile */
            s->watch_last += busy;
        } else {
            pthread_mutex_lock(&s->lock);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

void
signer_config_init(struct signer_config *sc, const struct config_signer *cs)
{
    memset(sc, 0, sizeof(*sc));
    sc->p11_module = cs->p11_module[0] != '\0' ? cs->p11_module : NULL;
    sc->p11_token = cs->p11_token;
    sc->p11_pin_file = cs->p11_pin_file;
    sc->workers = cs->workers;
    sc->queue_max = cs->queue_max;
    sc->batch_max = cs->batch_max;
    sc->sign_timeout = cs->sign_timeout;
}

struct signer *
signer_new(const struct signer_config *cfg, signer_batch_fn batch, void *ctx)
{
    struct signer *s = calloc(1, sizeof(*s));
    long ncpu;

    if (s == NULL)
        return NULL;
    s->cfg = *cfg;
    s->batch = batch;
    s->batch_ctx = ctx;
    if (s->cfg.workers == 0) {
        ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        s->cfg.workers = ncpu > 0 ? (unsigned)ncpu : 1;
    }
    if (s->cfg.workers > SIGNER_MAX_WORKERS)
        s->cfg.workers = SIGNER_MAX_WORKERS;
    s->nslots = 2 * s->cfg.workers;
    if (s->cfg.queue_max == 0)
        s->cfg.queue_max = 1024;
    if (s->cfg.batch_max == 0)
        s->cfg.batch_max = 64;
    if (!(s->cfg.sign_timeout > 0))
        s->cfg.sign_timeout = 5;
    s->timeout_ns = (long long)(s->cfg.sign_timeout * 1e9);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->now_lock, NULL);
    s->now_beat = live_beat_new("signer:now");
    pthread_cond_init(&s->cond, NULL);
    {
        pthread_condattr_t ca;

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->watch_cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    atomic_init(&s->n_down, 0);
    s->m_timeouts = metrics_counter("signer_timeouts_total",
                                    "Signing jobs answered as failed after sign_timeout.");
    s->m_hsm_fail = metrics_counter("signer_hsm_failures_total",
                                    "Signing jobs failed by the PKCS#11 token (or refused: their "
                                    "key down, or no room for a call into the token).");
    s->m_down =
        metrics_gauge("signer_keys_down", "Token keys whose last signature failed or timed out.");
    s->m_hung = metrics_gauge("signer_workers_hung",
                              "Signer workers stuck in a call into the token past sign_timeout "
                              "(spares sign meanwhile).");
    if (cfg->p11_module != NULL && cfg->p11_module[0] != '\0') {
        s->p11 = signer_p11_open(cfg->p11_module, cfg->p11_token, cfg->p11_pin_file,
                                 s->nslots + SIGNER_PROBE_SLOTS + 1);
        if (s->p11 == NULL) {
            signer_free(s);
            return NULL;
        }
    }
    return s;
}

/* Sign a fixed digest with each key and verify it with the certificate's public key: a key
 * that cannot sign, or signs wrongly, is an error at start and not at the first request. */
static int
signer_key_test(struct signer *s, struct signer_key *k)
{
    struct signer_job job;

    {
        memset(&job, 0, sizeof(job));
        job.key = k;
        job.digest_len = signer_hash_len(k->hash);
        memset(job.digest, 0x5a, job.digest_len);
        if (signer_sign_now(s, &job) != ST_OK) {
            log_err("signer: self-test signature with %s failed: %s", k->name,
                    status_str(job.status));
            return ST_CRYPTO;
        }
        if (!signer_verify(k, &job)) {
            log_openssl(LOG_LVL_ERR, "signer: self-test signature does not verify with the "
                                     "certificate's key");
            return ST_CRYPTO;
        }
    }
    return ST_OK;
}

static int
signer_self_test(struct signer *s)
{
    for (struct signer_key *k = s->keys; k != NULL; k = k->next)
        if (signer_key_test(s, k) != ST_OK)
            return ST_CRYPTO;
    return ST_OK;
}

int
signer_start(struct signer *s)
{
    int st = signer_self_test(s);

    if (st != ST_OK)
        return st;
    for (unsigned i = 0; i < s->nslots; i++) { /* the spares' slots too: nothing to fail later */
        char name[LIVE_NAME_MAX];

        snprintf(name, sizeof(name), "signer:%u", i);
        s->workers[i].s = s;
        s->workers[i].idx = i;
        s->workers[i].beat = live_beat_new(name);
        s->workers[i].cur = SIZE_MAX;
        s->workers[i].listed = calloc(s->cfg.batch_max, sizeof(*s->workers[i].listed));
        s->workers[i].in = calloc(s->cfg.batch_max, sizeof(*s->workers[i].in));
        if (s->workers[i].listed == NULL || s->workers[i].in == NULL) {
            log_err("signer: worker %u: out of memory", i);
            return ST_NOMEM;
        }
    }
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < s->cfg.workers && st == ST_OK; i++)
        st = signer_worker_spawn(s, i);
    pthread_mutex_unlock(&s->lock);
    if (st != ST_OK)
        return st;
    for (unsigned i = 0; i < SIGNER_PROBE_SLOTS; i++) {
        char name[LIVE_NAME_MAX];

        snprintf(name, sizeof(name), "signer:probe%u", i);
        s->probes[i].s = s;
        s->probes[i].session = s->nslots + i;
        s->probes[i].beat = live_beat_new(name);
    }
    /* from before the thread runs: a pause of the process between the workers' start and the
     * watch thread's (on a loaded machine, seconds) is one the thread sees as such */
    s->watch_last = signer_now_ns();
    if (pthread_create(&s->watch, NULL, signer_watch_main, s) != 0) {
        log_err("signer: cannot start the watch thread");
        return ST_ERR;
    }
    s->watch_started = true;
    pthread_mutex_lock(&s->lock);
    s->started = true;
    pthread_mutex_unlock(&s->lock);
    log_info("signer: %u worker(s), queue %u, batch %u, sign_timeout %.1f s, backend %s",
             s->cfg.workers, s->cfg.queue_max, s->cfg.batch_max, s->cfg.sign_timeout,
             s->p11 != NULL ? "pkcs11+software" : "software");
    return ST_OK;
}

static void
signer_key_destroy(struct signer_key *k)
{
    for (unsigned i = 0; i < SIGNER_MAX_SESSIONS; i++)
        EVP_PKEY_CTX_free(k->soft_ctx[i]);
    EVP_PKEY_free(k->soft);
    EVP_PKEY_free(k->pub);
    free(k);
}

/* true while a job or a worker may still use k (the lock held): queued, being signed (a worker
 * inside C_Sign for a job the watch thread already answered), or the health probe. */
static bool
signer_key_in_use(struct signer *s, const struct signer_key *k)
{
    for (const struct signer_job *j = s->head; j != NULL; j = j->next)
        if (j->key == k)
            return true;
    for (unsigned w = 0; w < s->nslots; w++)
        for (size_t i = 0; i < s->workers[w].n_listed; i++)
            if (s->workers[w].in[i].key == k)
                return true;
    for (unsigned i = 0; i < SIGNER_PROBE_SLOTS; i++)
        if (s->probes[i].state != SLOT_FREE && s->probes[i].key == k)
            return true;
    return false;
}

/* Free the retired keys nothing holds any more (the lock held); returns how many are left. */
static size_t
signer_sweep_retired(struct signer *s)
{
    struct signer_key **pp = &s->retired, *k;
    size_t left = 0;

    while ((k = *pp) != NULL) {
        if (signer_key_in_use(s, k)) {
            pp = &k->next;
            left++;
            continue;
        }
        *pp = k->next;
        signer_key_destroy(k);
    }
    return left;
}

void
signer_key_hold(struct signer_key *k)
{
    atomic_fetch_add(&k->refs, 1);
}

void
signer_key_release(struct signer *s, struct signer_key *k)
{
    struct signer_key **pp;
    CK_OBJECT_HANDLE obj;
    bool token, forgotten;
    char name[sizeof(k->name)];

    if (k == NULL || atomic_fetch_sub(&k->refs, 1) != 1)
        return;
    obj = k->p11_obj;
    token = k->soft == NULL;
    forgotten = atomic_exchange(&k->token_forgotten, true);
    memcpy(name, k->name, sizeof(name));
    pthread_mutex_lock(&s->lock);
    for (pp = &s->keys; *pp != NULL && *pp != k; pp = &(*pp)->next)
        ;
    if (*pp == k)
        *pp = k->next;
    __atomic_store_n(&k->retired, true, __ATOMIC_RELEASE);
    if (s->probe_key == k)
        s->probe_key = NULL;
    if (atomic_exchange(&k->down, false)) { /* a down key leaves: the signer may be healthy */
        atomic_fetch_sub(&s->n_down, 1);
        metrics_dec(s->m_down);
    }
    k->next = s->retired;
    s->retired = k;
    signer_sweep_retired(s);
    pthread_mutex_unlock(&s->lock);
    if (token && !forgotten) /* k may be gone now */
        signer_p11_forget_key(s->p11, obj);
    log_info("signer: key %s released", name);
}

void
signer_key_forget_token(struct signer *s, struct signer_key *k)
{
    if (k != NULL && k->soft == NULL && !atomic_exchange(&k->token_forgotten, true))
        signer_p11_forget_key(s->p11, k->p11_obj);
}

void
signer_free(struct signer *s)
{
    struct signer_key *k, *next;

    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    pthread_cond_broadcast(&s->watch_cond);
    pthread_mutex_unlock(&s->lock);
    if (s->watch_started) /* first: it starts spares and probes */
        pthread_join(s->watch, NULL);
    for (unsigned i = 0; i < SIGNER_PROBE_SLOTS; i++) {
        if (s->probes[i].joinable)
            pthread_join(s->probes[i].thread, NULL);
        live_beat_free(s->probes[i].beat);
    }
    for (unsigned i = 0; i < SIGNER_MAX_SLOTS; i++) {
        if (s->workers[i].joinable)
            pthread_join(s->workers[i].thread, NULL);
        live_beat_free(s->workers[i].beat);
        free(s->workers[i].listed);
        free(s->workers[i].in);
    }
    for (k = s->keys; k != NULL; k = next) {
        next = k->next;
        signer_key_destroy(k);
    }
    for (k = s->retired; k != NULL; k = next) {
        next = k->next;
        signer_key_destroy(k);
    }
    signer_p11_close(s->p11);
    live_beat_free(s->now_beat);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->watch_cond);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->now_lock);
    free(s);
}

int
signer_submit(struct signer *s, struct signer_job *job)
{
    int st = ST_OK;

    job->next = NULL;
    job->done = false;
    pthread_mutex_lock(&s->lock);
    job->submitted_ns = signer_now_ns();
    if (s->stopping)
        st = ST_SHUTDOWN;
    else if (s->depth >= s->cfg.queue_max)
        st = ST_BUSY;
    if (st == ST_OK) {
        if (s->tail != NULL)
            s->tail->next = job;
        else
            s->head = job;
        s->tail = job;
        s->depth++;
        pthread_cond_signal(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
    return st;
}

int
signer_sign_now(struct signer *s, struct signer_job *job)
{
    pthread_mutex_lock(&s->now_lock);
    live_busy(s->now_beat); /* a call that never returns restarts the daemon, as a worker's */
    signer_do_job(s, s->nslots + SIGNER_PROBE_SLOTS, job, true);
    live_idle(s->now_beat);
    pthread_mutex_unlock(&s->now_lock);
    return job->status;
}

enum signer_scheme
signer_key_scheme(const struct signer_key *k)
{
    return k->scheme;
}

size_t
signer_key_max_sig(const struct signer_key *k)
{
    return k->max_sig;
}

enum signer_hash
signer_key_hash(const struct signer_key *k)
{
    return k->hash;
}

const EVP_MD *
signer_key_md(const struct signer_key *k)
{
    return signer_md(k->hash);
}

const uint8_t *
signer_key_sigalg_der(const struct signer_key *k, size_t *len)
{
    *len = k->sigalg_len;
    return k->sigalg;
}

const uint8_t *
signer_key_digestalg_der(const struct signer_key *k, size_t *len)
{
    *len = k->digalg_len;
    return k->digalg;
}

const char *
signer_key_name(const struct signer_key *k)
{
    return k->name;
}

bool
signer_healthy(struct signer *s)
{
    bool capped;

    if (atomic_load(&s->n_down) > 0)
        return false;
    pthread_mutex_lock(&s->lock);
    capped = signer_token_capped(s);
    pthread_mutex_unlock(&s->lock);
    return !capped;
}

unsigned
signer_queue_depth(struct signer *s)
{
    unsigned d;

    pthread_mutex_lock(&s->lock);
    d = s->depth;
    pthread_mutex_unlock(&s->lock);
    return d;
}
