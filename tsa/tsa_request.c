/*
 * tsa_request: TimeStampReq checks (RFC 3161 §2.4.1; STANDARDS TSP-02, TSP-04..TSP-09, TSP-11,
 * ALG-01).
 */
#include "tsa/tsa_request.h"

#include <openssl/objects.h>
#include <openssl/ts.h>
#include <stdlib.h>
#include <string.h>

/* Strict DER: the parsed request must re-encode to exactly the input. */
static bool
tsa_request_is_der(TS_REQ *req, const uint8_t *der, size_t len)
{
    unsigned char *re = NULL;
    int n = i2d_TS_REQ(req, &re);
    bool same = n > 0 && (size_t)n == len && memcmp(re, der, len) == 0;

    OPENSSL_free(re);
    return same;
}

static bool
tsa_hash_allowed(int nid, const int *hashes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (hashes[i] == nid)
            return true;
    return false;
}

/* Copy the DER of an ASN.1 object into dst (cap bytes); 0 when it does not fit. */
#define TSA_COPY_DER(fn, obj, dst, cap)                                                            \
    ({                                                                                             \
        int n_ = fn(obj, NULL);                                                                    \
        unsigned char *p_ = (dst);                                                                 \
        (n_ > 0 && (size_t)n_ <= (cap)) ? (size_t)fn(obj, &p_) : (size_t)0;                        \
    })

static enum tsa_fail
tsa_check_imprint(TS_REQ *req, const int *hashes, size_t n_hashes, struct tsa_request *out,
                  const char **why)
{
    TS_MSG_IMPRINT *mi = TS_REQ_get_msg_imprint(req);
    X509_ALGOR *alg = TS_MSG_IMPRINT_get_algo(mi);
    ASN1_OCTET_STRING *h = TS_MSG_IMPRINT_get_msg(mi);
    const ASN1_OBJECT *oid = NULL;
    const void *pval = NULL;
    int ptype = 0;
    const EVP_MD *md;

    X509_ALGOR_get0(&oid, &ptype, &pval, alg);
    out->hash_nid = OBJ_obj2nid(oid);
    if (!tsa_hash_allowed(out->hash_nid, hashes, n_hashes)) {
        *why = "hash algorithm of the message imprint is not accepted";
        return TSA_FAIL_BAD_ALG;
    }
    if (ptype != V_ASN1_UNDEF && ptype != V_ASN1_NULL) {
        *why = "hash algorithm parameters must be absent or NULL";
        return TSA_FAIL_BAD_ALG;
    }
    md = EVP_get_digestbynid(out->hash_nid);
    if (md == NULL || ASN1_STRING_length(h) != EVP_MD_get_size(md)) {
        *why = "message imprint length does not match its hash algorithm";
        return TSA_FAIL_BAD_DATA_FORMAT;
    }
    out->imprint_len = TSA_COPY_DER(i2d_TS_MSG_IMPRINT, mi, out->imprint, sizeof(out->imprint));
    if (out->imprint_len == 0) {
        *why = "message imprint too large";
        return TSA_FAIL_BAD_DATA_FORMAT;
    }
    return TSA_FAIL_NONE;
}

enum tsa_fail
tsa_request_parse(const uint8_t *der, size_t len, const int *hashes, size_t n_hashes,
                  struct tsa_request *out, const char **why)
{
    const unsigned char *p = der;
    TS_REQ *req = NULL;
    const ASN1_INTEGER *nonce;
    const ASN1_OBJECT *policy;
    enum tsa_fail f = TSA_FAIL_BAD_DATA_FORMAT;

    memset(out, 0, sizeof(*out));
    *why = "request is not a DER TimeStampReq";
    if (len == 0 || len > TSA_REQ_MAX)
        goto out;
    req = d2i_TS_REQ(NULL, &p, (long)len);
    if (req == NULL)
        goto out;
    if ((size_t)(p - der) != len) {
        *why = "trailing bytes after the TimeStampReq";
        goto out;
    }
    if (!tsa_request_is_der(req, der, len)) {
        *why = "request is not DER-encoded (BER or non-minimal encoding)";
        goto out;
    }
    if (TS_REQ_get_version(req) != 1) {
        *why = "unsupported TimeStampReq version (only v1)";
        goto out;
    }
    if (TS_REQ_get_exts(req) != NULL && sk_X509_EXTENSION_num(TS_REQ_get_exts(req)) > 0) {
        *why = "request extensions are not supported";
        f = TSA_FAIL_UNACCEPTED_EXTENSION;
        goto out;
    }
    f = tsa_check_imprint(req, hashes, n_hashes, out, why);
    if (f != TSA_FAIL_NONE)
        goto out;
    f = TSA_FAIL_BAD_DATA_FORMAT;
    if ((policy = TS_REQ_get_policy_id(req)) != NULL) {
        out->policy_len = TSA_COPY_DER(i2d_ASN1_OBJECT, policy, out->policy, sizeof(out->policy));
        if (out->policy_len == 0) {
            *why = "requested policy OID too long";
            f = TSA_FAIL_UNACCEPTED_POLICY;
            goto out;
        }
        out->has_policy = true;
    }
    if ((nonce = TS_REQ_get_nonce(req)) != NULL) {
        if (ASN1_STRING_length(nonce) > TSA_NONCE_MAX) {
            *why = "nonce longer than 128 octets";
            f = TSA_FAIL_BAD_REQUEST;
            goto out;
        }
        out->nonce_len = TSA_COPY_DER(i2d_ASN1_INTEGER, nonce, out->nonce, sizeof(out->nonce));
        if (out->nonce_len == 0)
            goto out;
        out->has_nonce = true;
    }
    out->cert_req = TS_REQ_get_cert_req(req) != 0;
    f = TSA_FAIL_NONE;
    *why = NULL;
out:
    TS_REQ_free(req);
    return f;
}
