/*
 * ocsp_request_fast: a strict reader of the common one-CertID request (see the header).
 */
#include "ocsp/ocsp_request_fast.h"
#include "common/der.h"

#include <string.h>

static const uint8_t oid_sha1[] = {0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a};
static const uint8_t oid_sha256[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                     0x65, 0x03, 0x04, 0x02, 0x01};
/* id-pkix-ocsp-nonce 1.3.6.1.5.5.7.48.1.2, its DER with tag and length */
static const uint8_t oid_nonce[] = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x05,
                                    0x05, 0x07, 0x30, 0x01, 0x02};
/* critical TRUE as DER has it (FALSE is never encoded: DEFAULT) */
static const uint8_t critical_true[] = {DER_BOOLEAN, 0x01, 0xff};

/* The one element of [p, end) with tag `want`, filling its content; it must end exactly at end
 * when `last`. */
static bool
take(const uint8_t **p, const uint8_t *end, uint8_t want, const uint8_t **c, size_t *cl, bool last)
{
    uint8_t tag;

    return der_read(p, end, &tag, c, cl) && tag == want && (!last || *p == end);
}

/* AlgorithmIdentifier of the hash: the OID alone or followed by NULL (as the full parser:
 * RFC 5754 §2). */
static bool
hash_alg(const uint8_t *a, size_t al, enum ocsp_hash *h, size_t *hlen)
{
    size_t ol;

    if (al >= sizeof(oid_sha1) && memcmp(a, oid_sha1, sizeof(oid_sha1)) == 0) {
        *h = OCSP_HASH_SHA1;
        *hlen = 20;
        ol = sizeof(oid_sha1);
    } else if (al >= sizeof(oid_sha256) && memcmp(a, oid_sha256, sizeof(oid_sha256)) == 0) {
        *h = OCSP_HASH_SHA256;
        *hlen = 32;
        ol = sizeof(oid_sha256);
    } else {
        return false;
    }
    return al == ol || (al == ol + 2 && a[ol] == DER_NULL && a[ol + 1] == 0x00);
}

/* serialNumber: non-negative, minimal, 1..20 octets of magnitude (21 with the sign octet);
 * zero is left to the full parser */
static bool
serial_ok(const uint8_t *c, size_t cl)
{
    if (cl == 0 || cl > OCSP_SERIAL_MAX || (c[0] & 0x80) != 0)
        return false;
    if (cl == 1)
        return c[0] != 0x00;
    if (c[0] == 0x00 && (c[1] & 0x80) == 0)
        return false; /* not minimal */
    return cl < OCSP_SERIAL_MAX || c[0] == 0x00;
}

/* requestExtensions [2] { Extensions { Extension } } holding the nonce alone, in the form of
 * RFC 9654 §2.1: extnID, critical TRUE or absent, extnValue = OCTET STRING { 1..128 octets }.
 * Fills req's nonce fields as ocsp_request_parse() would; a legacy raw nonce, another
 * extension or a second one is declined (the full parser decides). */
static bool
nonce_ext(const uint8_t *p, const uint8_t *end, struct ocsp_request *req)
{
    const uint8_t *c, *ext, *v, *n;
    size_t cl, extl, vl, nl;

    if (!take(&p, end, DER_SEQUENCE, &c, &cl, true)) /* Extensions: one Extension */
        return false;
    p = c;
    end = c + cl;
    if (!take(&p, end, DER_SEQUENCE, &ext, &extl, true))
        return false;
    p = ext;
    end = ext + extl;
    if (extl < sizeof(oid_nonce) || memcmp(p, oid_nonce, sizeof(oid_nonce)) != 0)
        return false;
    p += sizeof(oid_nonce);
    if ((size_t)(end - p) >= sizeof(critical_true) &&
        memcmp(p, critical_true, sizeof(critical_true)) == 0)
        p += sizeof(critical_true);
    if (!take(&p, end, DER_OCTET_STRING, &v, &vl, true) || vl > sizeof(req->nonce_value))
        return false;
    p = v;
    if (!take(&p, v + vl, DER_OCTET_STRING, &n, &nl, true) || nl == 0 || nl > OCSP_NONCE_MAX)
        return false;
    memcpy(req->nonce_value, v, vl);
    req->nonce_value_len = vl;
    req->nonce_len = nl;
    req->has_nonce = true;
    return true;
}

/* Request { CertID } with nothing else: fills id */
static bool
one_certid(const uint8_t *p, const uint8_t *end, struct ocsp_certid *id)
{
    const uint8_t *c, *cid = p, *q, *a, *nh, *kh, *sn;
    size_t cl, cidl, al, nhl, khl, snl, hlen;
    enum ocsp_hash h;

    if (!take(&p, end, DER_SEQUENCE, &c, &cl, true))
        return false;
    cidl = (size_t)(p - cid);
    if (cidl > sizeof(id->der))
        return false;
    /* CertID { AlgorithmIdentifier, OCTET STRING, OCTET STRING, INTEGER } */
    q = c;
    end = c + cl;
    if (!take(&q, end, DER_SEQUENCE, &a, &al, false) || !hash_alg(a, al, &h, &hlen) ||
        !take(&q, end, DER_OCTET_STRING, &nh, &nhl, false) || nhl != hlen ||
        !take(&q, end, DER_OCTET_STRING, &kh, &khl, false) || khl != hlen ||
        !take(&q, end, DER_INTEGER, &sn, &snl, true) || !serial_ok(sn, snl))
        return false;
    memcpy(id->der, cid, cidl);
    id->der_len = cidl;
    id->hash = h;
    id->hash_len = hlen;
    memcpy(id->name_hash, nh, hlen);
    memcpy(id->key_hash, kh, hlen);
    memcpy(id->serial, sn, snl);
    id->serial_len = snl;
    return true;
}

bool
ocsp_request_fast(const uint8_t *der, size_t len, struct ocsp_request *req)
{
    const uint8_t *p = der, *end, *c, *q, *r, *tbs_end;
    size_t cl, rl;

    ocsp_request_reset(req);
    if (der == NULL || len == 0 || len > OCSP_REQ_MAX)
        return false;
    end = der + len; /* (after the NULL check: no offset on a null pointer) */
    /* OCSPRequest { TBSRequest { requestList { Request { CertID } } [, [2] nonce] } } */
    if (!take(&p, end, DER_SEQUENCE, &c, &cl, true))
        return false;
    p = c;
    end = c + cl;
    if (!take(&p, end, DER_SEQUENCE, &c, &cl, true))
        return false;
    p = c;
    tbs_end = c + cl;
    if (!take(&p, tbs_end, DER_SEQUENCE, &c, &cl, false)) /* requestList */
        return false;
    q = c;
    if (!take(&q, c + cl, DER_SEQUENCE, &r, &rl, true) || !one_certid(r, r + rl, &req->ids[0]))
        return false;
    /* (nonce_ext writes the nonce fields only once it has taken the nonce) */
    if (p != tbs_end &&
        (!take(&p, tbs_end, DER_CTX_CONS(2), &c, &cl, true) || !nonce_ext(c, c + cl, req)))
        return false;
    req->n = 1;
    return true;
}
