/*
 * ocsp_request: OCSPRequest parsing and checks (RFC 6960 §4.1.1, §4.1.2, §4.4.1; RFC 9654 §2.1
 * nonce; RFC 9919 §2.1) and the GET form's decoding (RFC 6960 App. A.1; RFC 9919 §5).
 * STANDARDS OCSP-02, OCSP-03, OCSP-10, OCSP-17, OCSP-23, OCSP-24, OCSP-27.
 *
 * OpenSSL's d2i_OCSP_REQUEST does the structural parse; the request must then re-encode to the
 * exact bytes received (strict DER), so every CertID re-encoded by i2d_OCSP_CERTID is the
 * client's own bytes. Hostile input is only reported through *why (the caller logs it with the
 * request id); OpenSSL's error queue is drained at debug level.
 */
#include "ocsp/ocsp_request.h"
#include "common/der.h"
#include "common/json.h"
#include "common/log.h"
#include "common/status.h"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

/* CertID hash algorithms we serve (OCSP-11: SHA-1 and SHA-256 required, SHA-384/512 too). */
static const struct {
    int nid;
    enum ocsp_hash hash;
    size_t len;
} ocsp_req_hashes[] = {
    {NID_sha1, OCSP_HASH_SHA1, 20},
    {NID_sha256, OCSP_HASH_SHA256, 32},
    {NID_sha384, OCSP_HASH_SHA384, 48},
    {NID_sha512, OCSP_HASH_SHA512, 64},
};

/* Strict DER: the parsed request must re-encode to exactly the input. */
static bool
ocsp_request_is_der(OCSP_REQUEST *req, const uint8_t *der, size_t len)
{
    unsigned char *re = NULL;
    int n = i2d_OCSP_REQUEST(req, &re);
    bool same = n > 0 && (size_t)n == len && memcmp(re, der, len) == 0;

    OPENSSL_free(re);
    return same;
}

/* The TBSRequest's contents in the DER of an OCSPRequest { TBSRequest, ... }. */
static bool
ocsp_tbs_of(const uint8_t *der, size_t len, const uint8_t **c, size_t *cl)
{
    const uint8_t *p = der;
    uint8_t tag;

    if (!der_read(&p, der + len, &tag, c, cl) || tag != DER_SEQUENCE)
        return false;
    p = *c;
    return der_read(&p, *c + *cl, &tag, c, cl) && tag == DER_SEQUENCE;
}

/*
 * TBSRequest.version [0] EXPLICIT INTEGER DEFAULT v1(0). OpenSSL has no accessor for it, so
 * walk the (already validated) DER: OCSPRequest { TBSRequest { [0] version?, ... } }. An
 * explicit v1 is tolerated (some clients encode the DEFAULT); any other value is refused.
 */
static bool
ocsp_request_version_ok(const uint8_t *der, size_t len)
{
    static const uint8_t v1[] = {0x02, 0x01, 0x00};
    const uint8_t *p, *c;
    size_t cl;
    uint8_t tag;

    if (!ocsp_tbs_of(der, len, &p, &cl) || !der_read(&p, p + cl, &tag, &c, &cl))
        return false;
    if (tag != DER_CTX_CONS(0))
        return true; /* version absent: v1 */
    return cl == sizeof(v1) && memcmp(c, v1, sizeof(v1)) == 0;
}

/* [n] EXPLICIT Extensions at [p, end) whose Extensions' critical fields are DER: absent (FALSE
 * is the DEFAULT) or 01 01 ff. The rest of the structure was checked by OpenSSL's decoder. */
static bool
ocsp_exts_bools_der(const uint8_t *p, const uint8_t *end)
{
    const uint8_t *c, *e, *f, *x;
    size_t cl, el, xl;
    uint8_t tag;

    if (!der_read(&p, end, &tag, &c, &cl) || tag != DER_SEQUENCE || p != end)
        return false;
    for (p = c; p < c + cl;) {
        if (!der_read(&p, c + cl, &tag, &e, &el) || tag != DER_SEQUENCE)
            return false;
        f = e;
        if (!der_read(&f, e + el, &tag, &x, &xl) || tag != DER_OID)
            return false;
        if (f < e + el && f[0] == DER_BOOLEAN &&
            (!der_read(&f, e + el, &tag, &x, &xl) || xl != 1 || x[0] != 0xff))
            return false;
    }
    return true;
}

/*
 * Every extension of the request (requestExtensions, each singleRequestExtensions) has a DER
 * critical field. OpenSSL 3.0 re-encodes a BOOLEAN with the octet it read, so an explicit
 * FALSE or a TRUE other than ff passes the re-encode check (ocsp_request_is_der): walk the
 * (already decoded) DER: OCSPRequest { TBSRequest { [0]?, [1]?, requestList, [2]? } }.
 */
static bool
ocsp_request_bools_der(const uint8_t *der, size_t len)
{
    const uint8_t *p, *c, *end, *r, *q, *rend, *x;
    size_t cl, rl, xl;
    uint8_t tag;

    if (!ocsp_tbs_of(der, len, &p, &cl))
        return false;
    end = p + cl;
    while (p < end) {
        if (!der_read(&p, end, &tag, &c, &cl))
            return false;
        if (tag == DER_CTX_CONS(2) && !ocsp_exts_bools_der(c, c + cl))
            return false;
        if (tag != DER_SEQUENCE)
            continue;              /* version, requestorName */
        for (r = c; r < c + cl;) { /* requestList: Request { CertID, [0] Extensions? } */
            if (!der_read(&r, c + cl, &tag, &q, &rl) || tag != DER_SEQUENCE)
                return false;
            rend = q + rl;
            if (!der_read(&q, rend, &tag, &x, &xl)) /* CertID */
                return false;
            if (q < rend && (!der_read(&q, rend, &tag, &x, &xl) || tag != DER_CTX_CONS(0) ||
                             !ocsp_exts_bools_der(x, x + xl)))
                return false;
        }
    }
    return true;
}

/* Extensions other than the nonce: unknown non-critical ones are ignored, unknown critical
 * ones refused (OCSP-23; documented behaviour: malformedRequest). */
static bool
ocsp_ext_acceptable(X509_EXTENSION *ext)
{
    return !X509_EXTENSION_get_critical(ext);
}

/* An extension type may appear once in an Extensions list (RFC 5280 §4.2). Checked by
 * sorting the OIDs' encodings: O(n log n), where comparing each with all before it was
 * quadratic (issue 8 item 6: 780 extensions in 7.7 KB cost 7 ms a request). */
static int
ocsp_oid_cmp(const void *a, const void *b)
{
    const ASN1_OBJECT *x = *(const ASN1_OBJECT *const *)a, *y = *(const ASN1_OBJECT *const *)b;
    size_t xl = OBJ_length(x), yl = OBJ_length(y);
    int c = memcmp(OBJ_get0_data(x), OBJ_get0_data(y), xl < yl ? xl : yl);

    return c != 0 ? c : (xl > yl) - (xl < yl);
}

static X509_EXTENSION *
ocsp_req_ext(void *obj, int i)
{
    return OCSP_REQUEST_get_ext(obj, i);
}

static X509_EXTENSION *
ocsp_onereq_ext(void *obj, int i)
{
    return OCSP_ONEREQ_get_ext(obj, i);
}

/* ST_OK, or ST_INVALID when one of the n extensions of obj (read with get) cannot be read or
 * repeats another. */
static int
ocsp_exts_unique(void *obj, X509_EXTENSION *(*get)(void *obj, int i), int n, const char **why)
{
    const ASN1_OBJECT **oids;
    int rc = ST_INVALID;

    if (n <= 1)
        return ST_OK;
    *why = "out of memory";
    if ((oids = calloc((size_t)n, sizeof(*oids))) == NULL)
        return ST_INVALID;
    *why = "extensions cannot be read or repeat an extension (RFC 5280 §4.2)";
    for (int i = 0; i < n; i++) {
        X509_EXTENSION *ext = get(obj, i);

        if (ext == NULL || (oids[i] = X509_EXTENSION_get_object(ext)) == NULL ||
            OBJ_get0_data(oids[i]) == NULL)
            goto out;
    }
    qsort(oids, (size_t)n, sizeof(*oids), ocsp_oid_cmp);
    for (int i = 1; i < n; i++)
        if (ocsp_oid_cmp(&oids[i - 1], &oids[i]) == 0)
            goto out;
    rc = ST_OK;
out:
    free(oids);
    return rc;
}

static int
ocsp_check_single_exts(OCSP_ONEREQ *one, const char **why)
{
    int n = OCSP_ONEREQ_get_ext_count(one);

    for (int i = 0; i < n; i++) {
        X509_EXTENSION *ext = OCSP_ONEREQ_get_ext(one, i);

        if (ext == NULL || !ocsp_ext_acceptable(ext)) {
            *why = "unknown critical singleRequestExtension (RFC 6960 §4.1.2)";
            return ST_INVALID;
        }
    }
    return ocsp_exts_unique(one, ocsp_onereq_ext, n, why);
}

/* Serial INTEGER: non-negative, magnitude of at most 20 octets (RFC 5280 §4.1.2.2), kept as
 * its DER content octets (the store's key form). */
static int
ocsp_copy_serial(const ASN1_INTEGER *serial, struct ocsp_certid *out, const char **why)
{
    uint8_t der[8 + OCSP_SERIAL_MAX];
    unsigned char *p = der;
    const uint8_t *q = der, *c;
    size_t cl;
    uint8_t tag;
    int n;

    *why = "CertID serialNumber is negative, empty or longer than 20 octets";
    if (ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER || ASN1_STRING_length(serial) <= 0 ||
        ASN1_STRING_length(serial) > OCSP_SERIAL_MAX)
        return ST_INVALID;
    n = i2d_ASN1_INTEGER(serial, &p);
    if (n <= 0 || !der_read(&q, der + n, &tag, &c, &cl) || cl == 0 || cl > OCSP_SERIAL_MAX)
        return ST_INVALID;
    if (cl == OCSP_SERIAL_MAX && c[0] != 0x00)
        return ST_INVALID;
    memcpy(out->serial, c, cl);
    out->serial_len = cl;
    return ST_OK;
}

static int
ocsp_copy_hashes(const ASN1_OBJECT *md, const ASN1_OCTET_STRING *name_hash,
                 const ASN1_OCTET_STRING *key_hash, struct ocsp_certid *out, const char **why)
{
    int nid = OBJ_obj2nid(md);

    out->hash = 0;
    out->hash_len = 0;
    for (size_t i = 0; i < sizeof(ocsp_req_hashes) / sizeof(ocsp_req_hashes[0]); i++) {
        if (ocsp_req_hashes[i].nid != nid)
            continue;
        if ((size_t)ASN1_STRING_length(name_hash) != ocsp_req_hashes[i].len ||
            (size_t)ASN1_STRING_length(key_hash) != ocsp_req_hashes[i].len) {
            *why = "CertID hash length does not match its hash algorithm";
            return ST_INVALID;
        }
        out->hash = ocsp_req_hashes[i].hash;
        out->hash_len = ocsp_req_hashes[i].len;
        memcpy(out->name_hash, ASN1_STRING_get0_data(name_hash), out->hash_len);
        memcpy(out->key_hash, ASN1_STRING_get0_data(key_hash), out->hash_len);
        return ST_OK;
    }
    return ST_OK; /* a hash we do not serve: answered "unknown", not an error */
}

/* The hash AlgorithmIdentifier of a CertID carries no parameters or a NULL (RFC 5754 §2):
 * anything else would let a client invent endless distinct CertIDs for one certificate. */
static bool
ocsp_hash_params_ok(const uint8_t *der, size_t len)
{
    const uint8_t *p = der, *c, *q, *alg, *a, *oid;
    size_t cl, al, ol;
    uint8_t tag;

    if (!der_read(&p, der + len, &tag, &c, &cl))
        return false;
    q = c;
    if (!der_read(&q, c + cl, &tag, &alg, &al) || tag != DER_SEQUENCE)
        return false;
    a = alg;
    if (!der_read(&a, alg + al, &tag, &oid, &ol) || tag != DER_OID)
        return false;
    if (a == alg + al)
        return true; /* absent */
    return alg + al - a == 2 && a[0] == DER_NULL && a[1] == 0x00;
}

static int
ocsp_check_certid(OCSP_CERTID *cid, struct ocsp_certid *out, const char **why)
{
    ASN1_OCTET_STRING *name_hash = NULL, *key_hash = NULL;
    ASN1_OBJECT *md = NULL;
    ASN1_INTEGER *serial = NULL;
    unsigned char *p = out->der;
    int n;

    if (OCSP_id_get0_info(&name_hash, &md, &key_hash, &serial, cid) != 1 || name_hash == NULL ||
        md == NULL || key_hash == NULL || serial == NULL) {
        *why = "CertID cannot be read";
        return ST_INVALID;
    }
    n = i2d_OCSP_CERTID(cid, NULL);
    if (n <= 0 || (size_t)n > sizeof(out->der)) {
        *why = "CertID too large";
        return ST_INVALID;
    }
    out->der_len = (size_t)i2d_OCSP_CERTID(cid, &p);
    if (!ocsp_hash_params_ok(out->der, out->der_len)) {
        *why = "CertID hash algorithm parameters must be absent or NULL";
        return ST_INVALID;
    }
    if (ocsp_copy_hashes(md, name_hash, key_hash, out, why) != ST_OK)
        return ST_INVALID;
    return ocsp_copy_serial(serial, out, why);
}

static int
ocsp_check_certids(OCSP_REQUEST *req, struct ocsp_request *out, const char **why)
{
    int n = OCSP_request_onereq_count(req);

    if (n <= 0 || n > OCSP_MAX_CERTIDS) {
        *why = "request must hold 1 to 16 CertIDs (RFC 6960 §4.1.1; OCSP-27)";
        return ST_INVALID;
    }
    for (int i = 0; i < n; i++) {
        OCSP_ONEREQ *one = OCSP_request_onereq_get0(req, i);

        if (one == NULL) {
            *why = "request entry cannot be read";
            return ST_INVALID;
        }
        if (ocsp_check_certid(OCSP_onereq_get0_id(one), &out->ids[i], why) != ST_OK ||
            ocsp_check_single_exts(one, why) != ST_OK)
            return ST_INVALID;
        out->n = (size_t)i + 1;
    }
    return ST_OK;
}

/*
 * Nonce (RFC 9654 §2.1; OCSP-17): extnValue holds the DER of an OCTET STRING whose content is
 * the nonce, 1..128 octets. When extnValue is not one complete OCTET STRING it is taken as a
 * legacy raw nonce (RFC 2560 clients), also 1..128 octets. The extnValue contents are kept to
 * be echoed byte for byte.
 */
static int
ocsp_check_nonce(X509_EXTENSION *ext, struct ocsp_request *out, const char **why)
{
    const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
    const uint8_t *val = ASN1_STRING_get0_data(v), *p = val, *c;
    size_t vl = (size_t)ASN1_STRING_length(v), cl, nonce_len;
    uint8_t tag;

    if (der_read(&p, val + vl, &tag, &c, &cl) && tag == DER_OCTET_STRING && p == val + vl)
        nonce_len = cl;
    else
        nonce_len = vl;
    if (nonce_len == 0 || nonce_len > OCSP_NONCE_MAX || vl > sizeof(out->nonce_value)) {
        *why = "nonce must be 1 to 128 octets (RFC 9654 §2.1)";
        return ST_INVALID;
    }
    memcpy(out->nonce_value, val, vl);
    out->nonce_value_len = vl;
    out->nonce_len = nonce_len;
    out->has_nonce = true;
    return ST_OK;
}

static int
ocsp_check_request_exts(OCSP_REQUEST *req, struct ocsp_request *out, const char **why)
{
    int n = OCSP_REQUEST_get_ext_count(req);

    if (n <= 0)
        return ST_OK;
    if (ocsp_exts_unique(req, ocsp_req_ext, n, why) != ST_OK)
        return ST_INVALID;
    for (int i = 0; i < n; i++) {
        X509_EXTENSION *ext = OCSP_REQUEST_get_ext(req, i);

        if (ext == NULL) {
            *why = "requestExtensions cannot be read";
            return ST_INVALID;
        }
        if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == NID_id_pkix_OCSP_Nonce) {
            if (ocsp_check_nonce(ext, out, why) != ST_OK)
                return ST_INVALID;
        } else if (!ocsp_ext_acceptable(ext)) {
            *why = "unknown critical requestExtension (RFC 6960 §4.1.2)";
            return ST_INVALID;
        }
    }
    return ST_OK;
}

/* (each CertID slot used is written whole by whoever fills it, and n says how many are used:
 * the ~6 KB of slots are not cleared on the hot path of every OCSP request) */
void
ocsp_request_reset(struct ocsp_request *out)
{
    out->n = 0;
    out->has_nonce = false;
    out->nonce_value_len = 0;
    out->nonce_len = 0;
}

int
ocsp_request_parse(const uint8_t *der, size_t len, struct ocsp_request *out, const char **why)
{
    const unsigned char *p = der;
    OCSP_REQUEST *req = NULL;
    int rc = ST_INVALID;

    ocsp_request_reset(out);
    *why = "request is not a DER OCSPRequest";
    if (der == NULL || len == 0 || len > OCSP_REQ_MAX)
        goto out;
    if ((req = d2i_OCSP_REQUEST(NULL, &p, (long)len)) == NULL) {
        log_openssl(LOG_LVL_DEBUG, "ocsp: request does not decode");
        goto out;
    }
    if ((size_t)(p - der) != len) {
        *why = "trailing bytes after the OCSPRequest";
        goto out;
    }
    if (!ocsp_request_is_der(req, der, len)) {
        *why = "request is not DER-encoded (BER or non-minimal encoding)";
        goto out;
    }
    if (!ocsp_request_bools_der(der, len)) {
        *why = "request is not DER-encoded (an extension's critical flag is not DER)";
        goto out;
    }
    if (!ocsp_request_version_ok(der, len)) {
        *why = "unsupported OCSPRequest version (only v1)";
        goto out;
    }
    if (ocsp_check_certids(req, out, why) != ST_OK ||
        ocsp_check_request_exts(req, out, why) != ST_OK)
        goto out;
    rc = ST_OK;
    *why = NULL;
out:
    OCSP_REQUEST_free(req);
    if (rc != ST_OK) {
        ocsp_request_reset(out);
    }
    return rc;
}

static bool
ocsp_certid_same(const struct ocsp_certid *a, const struct ocsp_certid *b)
{
    return a->der_len == b->der_len && memcmp(a->der, b->der, a->der_len) == 0 &&
           a->hash == b->hash && a->hash_len == b->hash_len &&
           memcmp(a->name_hash, b->name_hash, a->hash_len) == 0 &&
           memcmp(a->key_hash, b->key_hash, a->hash_len) == 0 && a->serial_len == b->serial_len &&
           memcmp(a->serial, b->serial, a->serial_len) == 0;
}

bool
ocsp_request_same(const struct ocsp_request *a, const struct ocsp_request *b)
{
    if (a->n != b->n || a->has_nonce != b->has_nonce || a->nonce_len != b->nonce_len ||
        a->nonce_value_len != b->nonce_value_len ||
        memcmp(a->nonce_value, b->nonce_value, a->nonce_value_len) != 0)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!ocsp_certid_same(&a->ids[i], &b->ids[i]))
            return false;
    return true;
}

/* ---- GET form (RFC 6960 App. A.1; RFC 9919 §5; OCSP-02) ---- */

#define OCSP_GET_SMALL 1024 /* base64 characters of a GET request decoded on the stack */

static bool
ocsp_is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Percent-decode path into text (at most max characters, NUL-terminated; text has room for
 * max + 3 padding characters and the NUL). ST_INVALID on a bad escape or overflow. */
static int
ocsp_unescape(const char *path, char *text, size_t max, size_t *n)
{
    size_t k = 0;

    for (const char *s = path; *s != '\0'; s++) {
        char c = *s;

        if (c == '%') {
            int hi = hex_digit(s[1]), lo = hi < 0 ? -1 : hex_digit(s[2]);

            if (hi < 0 || lo < 0)
                return ST_INVALID;
            c = (char)(hi * 16 + lo);
            s += 2;
        }
        if (k == max)
            return ST_INVALID;
        text[k++] = c;
    }
    text[k] = '\0';
    *n = k;
    return ST_OK;
}

/* Check the base64 alphabet and padding of text (n characters) and pad it to a multiple of
 * four in place. Sets *bytes to the decoded length. ST_INVALID when it is not base64. */
static int
ocsp_b64_normalise(char *text, size_t *n, size_t *bytes)
{
    size_t data = 0, pad = 0;

    while (data < *n && ocsp_is_b64(text[data]))
        data++;
    while (data + pad < *n && text[data + pad] == '=')
        pad++;
    if (data == 0 || data + pad != *n || pad > 2 || data % 4 == 1)
        return ST_INVALID;
    if (pad > 0 && (data + pad) % 4 != 0)
        return ST_INVALID;
    while (*n % 4 != 0)
        text[(*n)++] = '=';
    text[*n] = '\0';
    *bytes = data / 4 * 3 + (data % 4 == 0 ? 0 : data % 4 - 1);
    return ST_OK;
}

int
ocsp_get_decode(const char *path, uint8_t *out, size_t cap, size_t *len)
{
    size_t max, n = 0, bytes = 0, plen;
    char *text = NULL, stext[OCSP_GET_SMALL + 4];
    uint8_t *raw = NULL, sraw[OCSP_GET_SMALL / 4 * 3];
    int rc = ST_INVALID, got;

    *len = 0;
    if (path == NULL || cap == 0 || cap > (SIZE_MAX - 8) / 4 * 3)
        goto out;
    while (*path == '/')
        path++;
    max = (cap + 2) / 3 * 4;
    /* the text is never longer than the path (rounded up to whole groups when padded): a
     * common request fits on the stack (two allocations per GET were 1 % of a hit's CPU) */
    plen = strlen(path);
    if (plen < max)
        max = (plen + 3) / 4 * 4;
    if (max <= OCSP_GET_SMALL) {
        text = stext;
        raw = sraw;
    } else if ((text = malloc(max + 4)) == NULL || (raw = malloc(max / 4 * 3)) == NULL) {
        goto out;
    }
    if (ocsp_unescape(path, text, max, &n) != ST_OK ||
        ocsp_b64_normalise(text, &n, &bytes) != ST_OK || bytes > cap)
        goto out;
    got = EVP_DecodeBlock(raw, (const unsigned char *)text, (int)n);
    if (got < 0 || (size_t)got < bytes)
        goto out;
    memcpy(out, raw, bytes);
    *len = bytes;
    rc = ST_OK;
out:
    if (raw != sraw)
        free(raw);
    if (text != stext)
        free(text);
    return rc;
}
