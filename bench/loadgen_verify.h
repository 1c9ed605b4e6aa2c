/*
 * loadgen_verify: full verification of a sample of the replies bench/loadgen receives, with
 * OpenSSL as the independent verifier (DESIGN D9: errors counted, never hidden).
 *
 *   TSA (RFC 3161 §2.4.2): TS_RESP_verify_response with the request's checks (version, policy
 *       when asked, messageImprint, nonce) plus the signature, the signer's certificate chain
 *       to the trust anchors and its critical timeStamping EKU (RFC 3161 §2.3).
 *   OCSP (RFC 6960 §3.2, §4.2.2.2): responseStatus successful, OCSP_basic_verify (signature,
 *       signer chain, responder authorisation), nonce echoed when sent (RFC 8954), the
 *       certStatus the request set expects, thisUpdate/nextUpdate sane (5 min skew).
 *
 * One lg_verifier is shared by the load threads (X509_STORE is reference counted and
 * read-only here). Included by bench/loadgen.c only.
 */
#ifndef BENCH_LOADGEN_VERIFY_H
#define BENCH_LOADGEN_VERIFY_H

#include "bench/loadgen_reqset.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

enum lg_verr {
    LG_VERR_OK = 0,
    LG_VERR_PARSE,     /* reply is not a TimeStampResp / OCSPResponse */
    LG_VERR_SIGNATURE, /* signature, chain or request match failed */
    LG_VERR_NONCE,     /* OCSP nonce sent but not echoed, or different */
    LG_VERR_STATUS,    /* OCSP certStatus not the expected one, or times insane */
    LG_VERR_COUNT
};

static const char *const lg_verr_name[LG_VERR_COUNT] = {"ok", "verify_parse", "verify_signature",
                                                        "verify_nonce", "verify_status"};

struct lg_verifier {
    uint32_t kind;
    X509_STORE *store;
    STACK_OF(X509) * untrusted;
};

static void
lg_verifier_clear(struct lg_verifier *v)
{
    X509_STORE_free(v->store);
    sk_X509_pop_free(v->untrusted, X509_free);
    memset(v, 0, sizeof(*v));
}

static int
lg_load_certs(const char *path, STACK_OF(X509) * out)
{
    BIO *b = BIO_new_file(path, "r");
    X509 *x;
    int n = 0;

    if (b == NULL)
        return ST_IO;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(out, x)) {
            X509_free(x);
            break;
        }
        n++;
    }
    ERR_clear_error(); /* the end of the file */
    BIO_free(b);
    return n > 0 ? ST_OK : ST_INVALID;
}

/* cafile: trust anchors (PEM); untrusted: intermediate and signer certificates (PEM, or NULL). */
static int
lg_verifier_init(struct lg_verifier *v, uint32_t kind, const char *cafile, const char *untrusted)
{
    int st = ST_CRYPTO;

    memset(v, 0, sizeof(*v));
    v->kind = kind;
    v->store = X509_STORE_new();
    v->untrusted = sk_X509_new_null();
    if (v->store == NULL || v->untrusted == NULL)
        goto out;
    if (!X509_STORE_load_file(v->store, cafile)) {
        log_openssl(LOG_LVL_ERR, cafile);
        goto out;
    }
    if (untrusted != NULL && lg_load_certs(untrusted, v->untrusted) != ST_OK) {
        log_err("%s: no certificate", untrusted);
        goto out;
    }
    st = ST_OK;
out:
    if (st != ST_OK)
        lg_verifier_clear(v);
    return st;
}

static enum lg_verr
lg_verify_tsa(const struct lg_verifier *v, const uint8_t *rq, size_t rqlen, const uint8_t *rp,
              size_t rplen)
{
    const unsigned char *p = rq;
    TS_REQ *req = d2i_TS_REQ(NULL, &p, (long)rqlen);
    TS_RESP *resp = NULL;
    TS_VERIFY_CTX *ctx = NULL;
    STACK_OF(X509) *certs = NULL;
    enum lg_verr r = LG_VERR_PARSE;

    p = rp;
    if (req == NULL || (resp = d2i_TS_RESP(NULL, &p, (long)rplen)) == NULL)
        goto out;
    r = LG_VERR_SIGNATURE;
    if ((ctx = TS_REQ_to_TS_VERIFY_CTX(req, NULL)) == NULL ||
        (certs = X509_chain_up_ref(v->untrusted)) == NULL || !X509_STORE_up_ref(v->store))
        goto out;
    TS_VERIFY_CTX_set_store(ctx, v->store);
    TS_VERIFY_CTX_set_certs(ctx, certs);
    certs = NULL;
    TS_VERIFY_CTX_add_flags(ctx, TS_VFY_SIGNATURE);
    if (TS_RESP_verify_response(ctx, resp) == 1)
        r = LG_VERR_OK;
out:
    sk_X509_pop_free(certs, X509_free);
    TS_VERIFY_CTX_free(ctx);
    TS_RESP_free(resp);
    TS_REQ_free(req);
    return r;
}

static bool
lg_status_expected(uint8_t expect, int status)
{
    switch (expect) {
    case LG_EXPECT_GOOD:
        return status == V_OCSP_CERTSTATUS_GOOD;
    case LG_EXPECT_REVOKED:
        return status == V_OCSP_CERTSTATUS_REVOKED;
    case LG_EXPECT_UNKNOWN:
        return status == V_OCSP_CERTSTATUS_UNKNOWN;
    case LG_EXPECT_NOTGOOD:
        return status != V_OCSP_CERTSTATUS_GOOD;
    default:
        return true;
    }
}

/* Status and nonce of a verified BasicOCSPResponse against the request. */
static enum lg_verr
lg_verify_ocsp_content(OCSP_REQUEST *req, OCSP_BASICRESP *bs, uint8_t expect)
{
    OCSP_ONEREQ *one = OCSP_request_onereq_get0(req, 0);
    ASN1_GENERALIZEDTIME *thisupd = NULL, *nextupd = NULL, *rev = NULL;
    int status = -1, reason = -1, nonce;

    nonce = OCSP_check_nonce(req, bs);
    if (nonce == 0 || nonce == -1)
        return LG_VERR_NONCE;
    if (one == NULL || OCSP_resp_find_status(bs, OCSP_onereq_get0_id(one), &status, &reason, &rev,
                                             &thisupd, &nextupd) != 1)
        return LG_VERR_STATUS;
    if (!lg_status_expected(expect, status) || !OCSP_check_validity(thisupd, nextupd, 300, -1))
        return LG_VERR_STATUS;
    return LG_VERR_OK;
}

static enum lg_verr
lg_verify_ocsp(const struct lg_verifier *v, const uint8_t *rq, size_t rqlen, uint8_t expect,
               const uint8_t *rp, size_t rplen)
{
    const unsigned char *p = rq;
    OCSP_REQUEST *req = d2i_OCSP_REQUEST(NULL, &p, (long)rqlen);
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *bs = NULL;
    enum lg_verr r = LG_VERR_PARSE;

    p = rp;
    if (req == NULL || (resp = d2i_OCSP_RESPONSE(NULL, &p, (long)rplen)) == NULL ||
        OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
        (bs = OCSP_response_get1_basic(resp)) == NULL)
        goto out;
    r = LG_VERR_SIGNATURE;
    if (OCSP_basic_verify(bs, v->untrusted, v->store, 0) != 1)
        goto out;
    r = lg_verify_ocsp_content(req, bs, expect);
out:
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    OCSP_REQUEST_free(req);
    return r;
}

/* Verify one reply against the request it answers; with explain, a failure is logged with
 * OpenSSL's reasons. Thread-safe. */
static enum lg_verr
lg_verify(const struct lg_verifier *v, const struct lg_req *rq, const uint8_t *rp, size_t rplen,
          bool explain)
{
    enum lg_verr r;

    if (v->kind == LG_KIND_TSA)
        r = lg_verify_tsa(v, rq->der, rq->len, rp, rplen);
    else
        r = lg_verify_ocsp(v, rq->der, rq->len, rq->expect, rp, rplen);
    if (r != LG_VERR_OK && explain)
        log_openssl(LOG_LVL_WARN, lg_verr_name[r]);
    ERR_clear_error();
    return r;
}

#endif
