/*
 * tsresp: the peer bound of the bench harness for time stamping (DESIGN D1, D9). OpenSSL's own
 * RFC 3161 response builder, TS_RESP_create_response (the engine of `openssl ts -reply` and of
 * servers built on it), driven in-process with no HTTP at all: 1..N threads, each with its own
 * TS_RESP_CTX on the same key and certificate, turn pre-encoded TimeStampReqs (SHA-256 imprint,
 * nonce, certReq) into DER TimeStampResps for a fixed time. Its tokens/s is the upper bound of
 * any server built on that function on this machine. Serials are 128-bit random, like tsad's
 * (DESIGN D5); ESSCertIDv2 with SHA-256 (RFC 5816); accuracy 100 ms.
 *
 *   tsresp --key KEY.pem --cert CERT.pem [--chain CHAIN.pem] [--threads N] [--duration S]
 *          [--policy OID] [--json FILE]
 */
#include "common/log.h"
#include "common/status.h"

#include <getopt.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ts.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TR_MAX_THREADS 64
#define TR_NREQ 256

struct tr_opts {
    const char *key, *cert, *chain, *policy, *json;
    unsigned threads;
    double duration;
};

struct tr_shared {
    EVP_PKEY *key;
    X509 *cert;
    STACK_OF(X509) * chain;
    ASN1_OBJECT *policy;
    unsigned char *req[TR_NREQ];
    int req_len[TR_NREQ];
    double deadline;
    atomic_bool failed;
};

struct tr_worker {
    struct tr_shared *sh;
    pthread_t tid;
    TS_RESP_CTX *ctx;
    unsigned long tokens;
};

static double
tr_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static ASN1_INTEGER *
tr_serial_cb(TS_RESP_CTX *ctx, void *data)
{
    unsigned char b[16];
    BIGNUM *bn = NULL;
    ASN1_INTEGER *ai = NULL;

    (void)ctx;
    (void)data;
    if (RAND_bytes(b, sizeof(b)) != 1)
        return NULL;
    b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
    if ((bn = BN_bin2bn(b, sizeof(b), NULL)) != NULL)
        ai = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    return ai;
}

static TS_RESP_CTX *
tr_ctx_new(const struct tr_shared *sh)
{
    TS_RESP_CTX *ctx = TS_RESP_CTX_new();

    if (ctx == NULL || !TS_RESP_CTX_set_signer_cert(ctx, sh->cert) ||
        !TS_RESP_CTX_set_signer_key(ctx, sh->key) ||
        (sh->chain != NULL && !TS_RESP_CTX_set_certs(ctx, sh->chain)) ||
        !TS_RESP_CTX_set_def_policy(ctx, sh->policy) || !TS_RESP_CTX_add_md(ctx, EVP_sha256()) ||
        !TS_RESP_CTX_add_md(ctx, EVP_sha384()) || !TS_RESP_CTX_add_md(ctx, EVP_sha512()) ||
        !TS_RESP_CTX_set_signer_digest(ctx, EVP_sha256()) ||
        !TS_RESP_CTX_set_ess_cert_id_digest(ctx, EVP_sha256()) ||
        !TS_RESP_CTX_set_accuracy(ctx, 0, 100, 0)) {
        log_openssl(LOG_LVL_ERR, "TS_RESP_CTX set-up");
        TS_RESP_CTX_free(ctx);
        return NULL;
    }
    TS_RESP_CTX_set_serial_cb(ctx, tr_serial_cb, NULL);
    return ctx;
}

/* One token: request bytes in, DER reply out; the reply must grant. */
static int
tr_one(struct tr_worker *w, unsigned i)
{
    const struct tr_shared *sh = w->sh;
    BIO *in = BIO_new_mem_buf(sh->req[i % TR_NREQ], sh->req_len[i % TR_NREQ]);
    TS_RESP *resp = NULL;
    unsigned char *der = NULL;
    int st = ST_CRYPTO;

    if (in == NULL || (resp = TS_RESP_create_response(w->ctx, in)) == NULL)
        goto out;
    if (ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(resp))) != 0 ||
        i2d_TS_RESP(resp, &der) <= 0)
        goto out;
    st = ST_OK;
out:
    if (st != ST_OK)
        log_openssl(LOG_LVL_ERR, "TS_RESP_create_response");
    OPENSSL_free(der);
    TS_RESP_free(resp);
    BIO_free(in);
    return st;
}

static void *
tr_worker_main(void *arg)
{
    struct tr_worker *w = arg;
    unsigned i = 0, k;

    while (!atomic_load(&w->sh->failed)) {
        for (k = 0; k < 8; k++, i++) {
            if (tr_one(w, i) != ST_OK) {
                atomic_store(&w->sh->failed, true);
                return NULL;
            }
            w->tokens++;
        }
        if (tr_now() >= w->sh->deadline)
            break;
    }
    return NULL;
}

static int
tr_make_requests(struct tr_shared *sh)
{
    unsigned char dig[32];
    unsigned i;
    int st = ST_OK;

    for (i = 0; i < TR_NREQ && st == ST_OK; i++) {
        TS_REQ *req = TS_REQ_new();
        TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
        X509_ALGOR *alg = X509_ALGOR_new();
        ASN1_INTEGER *nonce = ASN1_INTEGER_new();

        st = ST_CRYPTO;
        if (req != NULL && mi != NULL && alg != NULL && nonce != NULL &&
            RAND_bytes(dig, sizeof(dig)) == 1 && ASN1_INTEGER_set_int64(nonce, 1000003 + i) &&
            TS_REQ_set_version(req, 1) &&
            X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL) &&
            TS_MSG_IMPRINT_set_algo(mi, alg) && TS_MSG_IMPRINT_set_msg(mi, dig, sizeof(dig)) &&
            TS_REQ_set_msg_imprint(req, mi) && TS_REQ_set_nonce(req, nonce) &&
            TS_REQ_set_cert_req(req, 1) && (sh->req_len[i] = i2d_TS_REQ(req, &sh->req[i])) > 0)
            st = ST_OK;
        ASN1_INTEGER_free(nonce);
        X509_ALGOR_free(alg);
        TS_MSG_IMPRINT_free(mi);
        TS_REQ_free(req);
    }
    return st;
}

static STACK_OF(X509) * tr_load_chain(const char *path)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    BIO *b = BIO_new_file(path, "r");
    X509 *x;

    while (sk != NULL && b != NULL && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(sk, x))
            X509_free(x);
    }
    ERR_clear_error();
    BIO_free(b);
    if (sk != NULL && sk_X509_num(sk) == 0) {
        sk_X509_free(sk);
        sk = NULL;
    }
    return sk;
}

static int
tr_load(struct tr_shared *sh, const struct tr_opts *o)
{
    BIO *b = BIO_new_file(o->key, "r");

    sh->key = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    b = BIO_new_file(o->cert, "r");
    sh->cert = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (o->chain != NULL && (sh->chain = tr_load_chain(o->chain)) == NULL) {
        log_err("no certificate in %s", o->chain);
        return ST_INVALID;
    }
    sh->policy = OBJ_txt2obj(o->policy, 1);
    if (sh->key == NULL || sh->cert == NULL || sh->policy == NULL) {
        log_openssl(LOG_LVL_ERR, "cannot load the key, certificate or policy");
        return ST_INVALID;
    }
    return tr_make_requests(sh);
}

static int
tr_run(struct tr_shared *sh, struct tr_worker *w, const struct tr_opts *o, double *rate)
{
    unsigned i, started = 0;
    unsigned long total = 0;
    double t0;
    int st = ST_OK;

    for (i = 0; i < o->threads; i++) {
        w[i].sh = sh;
        if ((w[i].ctx = tr_ctx_new(sh)) == NULL)
            return ST_CRYPTO;
    }
    if (tr_one(&w[0], 0) != ST_OK) /* warm up and check the context grants */
        return ST_CRYPTO;
    t0 = tr_now();
    sh->deadline = t0 + o->duration;
    for (; started < o->threads; started++) {
        if (pthread_create(&w[started].tid, NULL, tr_worker_main, &w[started]) != 0)
            break;
    }
    for (i = 0; i < started; i++) {
        pthread_join(w[i].tid, NULL);
        total += w[i].tokens;
    }
    if (started != o->threads || atomic_load(&sh->failed))
        st = ST_CRYPTO;
    *rate = (double)total / (tr_now() - t0);
    return st;
}

static int
tr_args(struct tr_opts *o, int argc, char **argv)
{
    static const struct option lo[] = {{"key", 1, NULL, 'k'},      {"cert", 1, NULL, 'c'},
                                       {"chain", 1, NULL, 'C'},    {"threads", 1, NULL, 'n'},
                                       {"duration", 1, NULL, 'd'}, {"policy", 1, NULL, 'p'},
                                       {"json", 1, NULL, 'j'},     {NULL, 0, NULL, 0}};
    int c;

    *o = (struct tr_opts){.threads = 1, .duration = 3, .policy = "1.3.6.1.4.1.55555.1.11"};
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'k':
            o->key = optarg;
            break;
        case 'c':
            o->cert = optarg;
            break;
        case 'C':
            o->chain = optarg;
            break;
        case 'n':
            o->threads = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            o->duration = strtod(optarg, NULL);
            break;
        case 'p':
            o->policy = optarg;
            break;
        case 'j':
            o->json = optarg;
            break;
        default:
            return ST_INVALID;
        }
    }
    if (o->key == NULL || o->cert == NULL || o->threads == 0 || o->threads > TR_MAX_THREADS ||
        !(o->duration > 0 && o->duration <= 600))
        return ST_INVALID;
    return ST_OK;
}

static void
tr_report(const struct tr_opts *o, double rate)
{
    FILE *f;

    printf("tsresp: TS_RESP_create_response, %u thread(s): %.1f tokens/s\n", o->threads, rate);
    if (o->json == NULL || (f = fopen(o->json, "w")) == NULL)
        return;
    fprintf(f, "{\"threads\": %u, \"tokens_per_s\": %.1f}\n", o->threads, rate);
    fclose(f);
}

int
main(int argc, char **argv)
{
    struct tr_opts o;
    struct tr_shared sh = {0};
    struct tr_worker w[TR_MAX_THREADS] = {{0}};
    double rate = 0;
    unsigned i;
    int st;

    log_init("tsresp", LOG_LVL_NOTICE);
    if (tr_args(&o, argc, argv) != ST_OK) {
        fprintf(stderr, "usage: tsresp --key KEY.pem --cert CERT.pem [--chain CHAIN.pem] "
                        "[--threads N] [--duration S] [--policy OID] [--json FILE]\n");
        return 2;
    }
    st = tr_load(&sh, &o);
    if (st == ST_OK)
        st = tr_run(&sh, w, &o, &rate);
    if (st == ST_OK)
        tr_report(&o, rate);
    for (i = 0; i < TR_MAX_THREADS; i++)
        TS_RESP_CTX_free(w[i].ctx);
    for (i = 0; i < TR_NREQ; i++)
        OPENSSL_free(sh.req[i]);
    sk_X509_pop_free(sh.chain, X509_free);
    ASN1_OBJECT_free(sh.policy);
    X509_free(sh.cert);
    EVP_PKEY_free(sh.key);
    return st == ST_OK ? 0 : 1;
}
