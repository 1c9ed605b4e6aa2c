/*
 * tsa_checkpoint: signed checkpoints of the audit chain (see tsa_checkpoint.h).
 */
#include "tsa/tsa_checkpoint.h"
#include "common/chain.h"
#include "common/json.h"
#include "common/log.h"
#include "common/status.h"

#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tsa_checkpoint {
    const struct tsa_audit_config *cfg;
    struct signer *signer;
    struct signer_key *key;
    X509 *cert;
    uint8_t cert_sha256[32];
    struct store *store;
    int db;
    struct journal *journal;
    struct commit *commit;
    uint64_t last_covered;
    pthread_t thread;
    bool started, stopping;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* one record in flight through the journal */
    struct journal_rec jrec;
    bool rec_done;
    int rec_status;
};

static X509 *
read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x;

    if (f == NULL) {
        log_err("tsa: [audit] cannot open certificate %s", path);
        return NULL;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL)
        log_err("tsa: [audit] %s holds no PEM certificate", path);
    return x;
}

bool
tsa_checkpoint_is_audit_key(const struct tsa_checkpoint *c, X509 *cert)
{
    const EVP_PKEY *a, *b;

    if (c == NULL || cert == NULL)
        return false;
    a = X509_get0_pubkey(c->cert);
    b = X509_get0_pubkey(cert);
    return a != NULL && b != NULL && EVP_PKEY_eq(a, b) == 1;
}

int
tsa_checkpoint_new(const struct tsa_audit_config *ac, struct signer *sg, X509 *const *tsu_certs,
                   size_t n, struct tsa_checkpoint **out)
{
    struct tsa_checkpoint *c;
    unsigned char *der = NULL;
    int dl;

    *out = NULL;
    if (ac->key_label[0] == '\0' && ac->key_file[0] == '\0')
        return ST_OK;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return ST_NOMEM;
    c->cfg = ac;
    c->signer = sg;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    if ((c->cert = read_cert(ac->cert)) == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (tsa_checkpoint_is_audit_key(c, tsu_certs[i])) {
            log_err("tsa: [audit] the audit key is a TSU's key (certificate %s): checkpoints "
                    "need a key of their own (a TSU key signs time-stamp tokens only)",
                    ac->cert);
            goto fail;
        }
    }
    if ((dl = i2d_X509(c->cert, &der)) <= 0)
        goto fail;
    chain_hash(der, (size_t)dl, c->cert_sha256);
    OPENSSL_free(der);
    c->key = ac->key_label[0] != '\0'
                 ? signer_add_p11_key(sg, ac->key_label, c->cert, ac->scheme, ac->hash)
                 : signer_add_soft_key(sg, ac->key_file, c->cert, ac->scheme, ac->hash);
    if (c->key == NULL) {
        log_err("tsa: [audit] the audit key cannot be used");
        goto fail;
    }
    log_audit("audit_key_loaded", "node=%s key=%s certificate=%s interval=%g", ac->node,
              signer_key_name(c->key), ac->cert, ac->checkpoint_interval);
    *out = c;
    return ST_OK;
fail:
    tsa_checkpoint_free(c);
    return ST_CONFIG;
}

size_t
tsa_checkpoint_tbs(char *buf, size_t cap, const char *node, uint64_t seq, const char *head_hex,
                   const char *time)
{
    int n = snprintf(buf, cap, "tsad-audit-checkpoint v1\nnode=%s\nseq=%llu\nhead=%s\ntime=%s\n",
                     node, (unsigned long long)seq, head_hex, time);

    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

static const char *
scheme_name(enum signer_scheme s)
{
    return s == SIGNER_ECDSA ? "ecdsa" : s == SIGNER_RSA_PSS ? "rsa-pss" : "rsa-pkcs1";
}

static const char *
hash_name(enum signer_hash h)
{
    return h == SIGNER_SHA384 ? "sha384" : h == SIGNER_SHA512 ? "sha512" : "sha256";
}

static void
ckpt_journal_done(struct journal_rec *r, int status)
{
    struct tsa_checkpoint *c = r->user;

    pthread_mutex_lock(&c->lock);
    c->rec_done = true;
    c->rec_status = status;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

struct ckpt_op {
    struct commit_op op;
    const char *node, *rec;
    size_t len;
    int db;
};

static int
ckpt_apply(struct store_txn *t, struct commit_op *op)
{
    struct ckpt_op *o = (struct ckpt_op *)op;

    return chain_txn_append(t, o->db, o->node, o->rec, o->len);
}

/* Append the record and wait until it is durable. */
static int
ckpt_write(struct tsa_checkpoint *c, const char *rec, size_t len)
{
    int st;

    if (c->journal == NULL) {
        struct ckpt_op o = {.op = {.cls = COMMIT_ESSENTIAL, .apply = ckpt_apply},
                            .node = c->cfg->node,
                            .rec = rec,
                            .len = len,
                            .db = c->db};

        return commit_run(c->commit, &o.op);
    }
    c->jrec = (struct journal_rec){.data = rec, .len = len, .done = ckpt_journal_done, .user = c};
    c->rec_done = false;
    if ((st = journal_append(c->journal, &c->jrec)) != ST_OK)
        return st;
    pthread_mutex_lock(&c->lock);
    while (!c->rec_done)
        pthread_cond_wait(&c->cond, &c->lock);
    st = c->rec_status;
    pthread_mutex_unlock(&c->lock);
    return st;
}

int
tsa_checkpoint_now(struct tsa_checkpoint *c)
{
    struct signer_job job = {0};
    uint8_t head[32];
    char head_hex[65], type[32], when[64], tbs[512], rec[4096];
    struct timespec now;
    struct jw o;
    struct tm tm;
    uint64_t seq;
    size_t n;
    unsigned dl = 0;
    int st;

    if (c->journal != NULL)
        journal_sync_applied(c->journal); /* the head as written, not as applied a moment ago */
    if ((st = chain_head(c->store, c->db, &seq, head, type, sizeof(type))) != ST_OK)
        return st;
    if (seq == 0 || seq <= c->last_covered || strcmp(type, "checkpoint") == 0)
        return ST_OK; /* nothing new since the last one */
    hex_encode(head_hex, head, 32, false);
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(when, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%06ldZ", now.tv_nsec / 1000);
    if ((n = tsa_checkpoint_tbs(tbs, sizeof(tbs), c->cfg->node, seq, head_hex, when)) == 0)
        return ST_INVALID;
    job.key = c->key;
    if (EVP_Digest(tbs, n, job.digest, &dl, signer_key_md(c->key), NULL) != 1)
        return ST_INVALID;
    job.digest_len = dl;
    if ((st = signer_sign_now(c->signer, &job)) != ST_OK || job.status != ST_OK) {
        st = st != ST_OK ? st : job.status;
        log_warn("tsa: audit checkpoint at %llu not signed: %s", (unsigned long long)seq,
                 status_str(st));
        return st;
    }
    jw_init(&o, rec, sizeof(rec));
    jw_begin(&o);
    jw_ku64(&o, "v", 1);
    jw_kstr(&o, "type", "checkpoint");
    jw_kstr(&o, "time", when);
    jw_ku64(&o, "covers_seq", seq);
    jw_khex(&o, "covers_head", head, 32);
    jw_kstr(&o, "key", signer_key_name(c->key));
    jw_khex(&o, "cert_sha256", c->cert_sha256, 32);
    jw_kstr(&o, "sig_alg", scheme_name(signer_key_scheme(c->key)));
    jw_kstr(&o, "digest", hash_name(signer_key_hash(c->key)));
    jw_khex(&o, "sig", job.sig, job.sig_len);
    jw_close(&o);
    if ((n = jw_end(&o)) == 0)
        return ST_INVALID;
    if ((st = ckpt_write(c, rec, n)) != ST_OK) {
        log_warn("tsa: audit checkpoint at %llu not written: %s", (unsigned long long)seq,
                 status_str(st));
        return st;
    }
    c->last_covered = seq;
    log_info("tsa: audit checkpoint signed: node=%s seq=%llu head=%s", c->cfg->node,
             (unsigned long long)seq, head_hex);
    return ST_OK;
}

static void *
ckpt_main(void *arg)
{
    struct tsa_checkpoint *c = arg;
    struct timespec due;

    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        clock_gettime(CLOCK_REALTIME, &due);
        due.tv_sec += (time_t)c->cfg->checkpoint_interval;
        while (!c->stopping && pthread_cond_timedwait(&c->cond, &c->lock, &due) == 0)
            ;
        if (c->stopping)
            break;
        pthread_mutex_unlock(&c->lock);
        tsa_checkpoint_now(c);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int
tsa_checkpoint_start(struct tsa_checkpoint *c, struct store *st, int db, struct journal *jn,
                     struct commit *cm)
{
    if (c == NULL)
        return ST_OK;
    c->store = st;
    c->db = db;
    c->journal = jn;
    c->commit = cm;
    if (pthread_create(&c->thread, NULL, ckpt_main, c) != 0)
        return ST_NOMEM;
    c->started = true;
    return ST_OK;
}

void
tsa_checkpoint_free(struct tsa_checkpoint *c)
{
    if (c == NULL)
        return;
    if (c->started) {
        pthread_mutex_lock(&c->lock);
        c->stopping = true;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
        tsa_checkpoint_now(c); /* the last records of this run, signed */
    }
    X509_free(c->cert);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
