/*
 * ocsp_response: DER of OCSPResponse, BasicOCSPResponse and ResponseData (RFC 6960 §4.2.1,
 * §4.2.2, §4.4.1 nonce, §4.4.4 archiveCutoff, §4.4.8 extended-revoke; RFC 9919 §2.2),
 * written with common/der. STANDARDS OCSP-03, OCSP-06..OCSP-10, OCSP-13..OCSP-15, OCSP-17,
 * OCSP-25, OCSP-28.
 *
 * Nothing here signs or allocates per single response: ocsp_tbs_build() writes the bytes to be
 * signed into the caller's writer, ocsp_response_assemble() wraps them with the signature.
 * DER DEFAULTs are omitted (ResponseData version, Extension critical FALSE).
 */
#include "ocsp/ocsp_response.h"
#include "common/status.h"
#include "ocsp/ocsp_store.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

/* id-pkix-ocsp-basic 1.3.6.1.5.5.7.48.1.1 (RFC 6960 §4.2.1) */
static const uint8_t OID_OCSP_BASIC[] = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x05,
                                         0x05, 0x07, 0x30, 0x01, 0x01};
/* id-pkix-ocsp-nonce 1.3.6.1.5.5.7.48.1.2 (§4.4.1) */
static const uint8_t OID_OCSP_NONCE[] = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x05,
                                         0x05, 0x07, 0x30, 0x01, 0x02};
/* id-pkix-ocsp-archive-cutoff 1.3.6.1.5.5.7.48.1.6 (§4.4.4) */
static const uint8_t OID_OCSP_ARCHIVE_CUTOFF[] = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x05,
                                                  0x05, 0x07, 0x30, 0x01, 0x06};
/* id-pkix-ocsp-extended-revoke 1.3.6.1.5.5.7.48.1.9 (§4.4.8) */
static const uint8_t OID_OCSP_EXTENDED_REVOKE[] = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x05,
                                                   0x05, 0x07, 0x30, 0x01, 0x09};

#define OCSP_SHA1_LEN 20
#define OCSP_RID_LEN (4 + OCSP_SHA1_LEN) /* a2 16 04 14 <SHA-1> */

size_t
ocsp_responder_id(X509 *signer, uint8_t *out, size_t cap)
{
    const ASN1_BIT_STRING *key;
    uint8_t *h = out + 4;

    if (signer == NULL || cap < OCSP_RID_LEN || (key = X509_get0_pubkey_bitstr(signer)) == NULL)
        return 0;
    /* KeyHash: SHA-1 of the BIT STRING contents without tag, length and unused-bits octet. */
    if (SHA1(ASN1_STRING_get0_data(key), (size_t)ASN1_STRING_length(key), h) == NULL)
        return 0;
    out[0] = DER_CTX_CONS(2);
    out[1] = 2 + OCSP_SHA1_LEN;
    out[2] = DER_OCTET_STRING;
    out[3] = OCSP_SHA1_LEN;
    return OCSP_RID_LEN;
}

/* GeneralizedTime, whole seconds, Z (OCSP-09). */
static void
ocsp_put_time(struct der *d, int64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)t, .tv_nsec = 0};

    der_gentime(d, &ts, 0);
}

/* Extension { extnID, extnValue OCTET STRING }: critical FALSE is the DEFAULT, left out.
 * The caller writes the extnValue contents between ocsp_ext_begin() and ocsp_ext_end(). */
static void
ocsp_ext_begin(struct der *d, const uint8_t *oid, size_t oid_len, size_t marks[2])
{
    marks[0] = der_begin(d, DER_SEQUENCE);
    der_raw(d, oid, oid_len);
    marks[1] = der_begin(d, DER_OCTET_STRING);
}

static void
ocsp_ext_end(struct der *d, const size_t marks[2])
{
    der_end(d, marks[1]);
    der_end(d, marks[0]);
}

/* RevokedInfo [1] IMPLICIT { revocationTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL } */
static void
ocsp_put_revoked(struct der *d, const struct ocsp_single *s)
{
    size_t m = der_begin(d, DER_CTX_CONS(1));

    ocsp_put_time(d, s->revocation_time);
    if (s->reason != OCSP_REASON_NONE) {
        size_t r = der_begin(d, DER_CTX_CONS(0));

        der_u64(d, DER_ENUMERATED, s->reason);
        der_end(d, r);
    }
    der_end(d, m);
}

static void
ocsp_put_cert_status(struct der *d, const struct ocsp_single *s)
{
    switch (s->status) {
    case OCSP_SINGLE_GOOD:
        der_tlv(d, DER_CTX(0), NULL, 0);
        break;
    case OCSP_SINGLE_REVOKED:
        ocsp_put_revoked(d, s);
        break;
    case OCSP_SINGLE_UNKNOWN:
        der_tlv(d, DER_CTX(2), NULL, 0);
        break;
    default:
        d->failed = true; /* not a CertStatus: fail the whole writer */
        break;
    }
}

/* singleExtensions [1] EXPLICIT Extensions { archiveCutoff GeneralizedTime } (OCSP-25) */
static void
ocsp_put_archive_cutoff(struct der *d, int64_t t)
{
    size_t m = der_begin(d, DER_CTX_CONS(1)), l = der_begin(d, DER_SEQUENCE), e[2];

    ocsp_ext_begin(d, OID_OCSP_ARCHIVE_CUTOFF, sizeof(OID_OCSP_ARCHIVE_CUTOFF), e);
    ocsp_put_time(d, t);
    ocsp_ext_end(d, e);
    der_end(d, l);
    der_end(d, m);
}

/* SingleResponse { certID, certStatus, thisUpdate, nextUpdate [0] OPTIONAL,
 * singleExtensions [1] OPTIONAL }; the CertID is the client's bytes (OCSP-10). */
static void
ocsp_put_single(struct der *d, const struct ocsp_single *s)
{
    size_t m = der_begin(d, DER_SEQUENCE);

    if (s->certid == NULL || s->certid_len == 0)
        d->failed = true;
    der_raw(d, s->certid, s->certid_len);
    ocsp_put_cert_status(d, s);
    ocsp_put_time(d, s->this_update);
    if (s->next_update != 0) {
        size_t n = der_begin(d, DER_CTX_CONS(0));

        ocsp_put_time(d, s->next_update);
        der_end(d, n);
    }
    if (s->archive_cutoff)
        ocsp_put_archive_cutoff(d, s->archive_cutoff_time);
    der_end(d, m);
}

/* responseExtensions [1] EXPLICIT Extensions: nonce echo (OCSP-17), extended-revoke with a
 * DER NULL value (OCSP-13/14), both non-critical. */
static void
ocsp_put_response_exts(struct der *d, const uint8_t *nonce_value, size_t nonce_len,
                       bool extended_revoke)
{
    size_t m = der_begin(d, DER_CTX_CONS(1)), l = der_begin(d, DER_SEQUENCE), e[2];

    if (nonce_value != NULL) {
        ocsp_ext_begin(d, OID_OCSP_NONCE, sizeof(OID_OCSP_NONCE), e);
        der_raw(d, nonce_value, nonce_len);
        ocsp_ext_end(d, e);
    }
    if (extended_revoke) {
        ocsp_ext_begin(d, OID_OCSP_EXTENDED_REVOKE, sizeof(OID_OCSP_EXTENDED_REVOKE), e);
        der_null(d);
        ocsp_ext_end(d, e);
    }
    der_end(d, l);
    der_end(d, m);
}

void
ocsp_tbs_build(struct der *d, const uint8_t *responder_id, size_t rid_len,
               const struct ocsp_tbs_spec *spec)
{
    int64_t produced_at = spec->produced_at;
    const struct ocsp_single *singles = spec->singles;
    size_t n = spec->n, nonce_len = spec->nonce_len;
    const uint8_t *nonce_value = spec->nonce_value;
    bool extended_revoke = spec->extended_revoke;
    size_t m = der_begin(d, DER_SEQUENCE), r;

    /* version v1 is the DEFAULT: not encoded (OCSP-07) */
    if (responder_id == NULL || rid_len == 0 || n == 0)
        d->failed = true;
    der_raw(d, responder_id, rid_len);
    ocsp_put_time(d, produced_at);
    r = der_begin(d, DER_SEQUENCE);
    for (size_t i = 0; i < n; i++)
        ocsp_put_single(d, &singles[i]);
    der_end(d, r);
    if (nonce_value != NULL || extended_revoke)
        ocsp_put_response_exts(d, nonce_value, nonce_len, extended_revoke);
    der_end(d, m);
}

static int
ocsp_take(struct der *d, uint8_t **out, size_t *out_len)
{
    if (der_finish(d) != ST_OK) {
        der_release(d);
        return ST_NOMEM;
    }
    *out = der_take(d, out_len);
    return ST_OK;
}

/* BasicOCSPResponse { tbsResponseData, signatureAlgorithm, signature BIT STRING,
 * certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL (pre-encoded) } */
static void
ocsp_put_basic(struct der *d, const struct ocsp_signed_parts *p)
{
    static const uint8_t no_unused_bits = 0;
    size_t m = der_begin(d, DER_SEQUENCE), bits;

    der_raw(d, p->tbs, p->tbs_len);
    der_raw(d, p->sigalg, p->sigalg_len);
    bits = der_begin(d, DER_BIT_STRING);
    der_raw(d, &no_unused_bits, 1);
    der_raw(d, p->sig, p->sig_len);
    der_end(d, bits);
    if (p->certs != NULL) /* last: the store relies on it (ocsp_store.h) */
        der_raw(d, p->certs, p->certs_len);
    der_end(d, m);
}

int
ocsp_response_assemble(const struct ocsp_signed_parts *parts, uint8_t **out, size_t *out_len)
{
    size_t tbs_len = parts->tbs_len, sigalg_len = parts->sigalg_len, sig_len = parts->sig_len,
           certs_len = parts->certs_len;
    static const uint8_t successful = OCSP_RESP_SUCCESSFUL;
    const size_t limit = SIZE_MAX / 8;
    struct der d;
    size_t resp, bytes, seq, octets;

    *out = NULL;
    *out_len = 0;
    if (parts->tbs == NULL || parts->sigalg == NULL || parts->sig == NULL || tbs_len > limit ||
        sigalg_len > limit || sig_len > limit || certs_len > limit)
        return ST_NOMEM;
    if (der_init_alloc(&d, tbs_len + sigalg_len + sig_len + certs_len + 64) != ST_OK)
        return ST_NOMEM;
    resp = der_begin(&d, DER_SEQUENCE);
    der_tlv(&d, DER_ENUMERATED, &successful, 1);
    bytes = der_begin(&d, DER_CTX_CONS(0));
    seq = der_begin(&d, DER_SEQUENCE);
    der_raw(&d, OID_OCSP_BASIC, sizeof(OID_OCSP_BASIC)); /* OCSP-06 */
    octets = der_begin(&d, DER_OCTET_STRING);
    ocsp_put_basic(&d, parts);
    der_end(&d, octets);
    der_end(&d, seq);
    der_end(&d, bytes);
    der_end(&d, resp);
    return ocsp_take(&d, out, out_len);
}

int
ocsp_certs_field(X509 *signer, uint8_t **out, size_t *out_len)
{
    unsigned char *cert = NULL;
    int n = signer != NULL ? i2d_X509(signer, &cert) : -1;
    struct der d;
    size_t m, l;
    int st = ST_NOMEM;

    *out = NULL;
    *out_len = 0;
    if (n <= 0 || der_init_alloc(&d, (size_t)n + 16) != ST_OK)
        goto out;
    m = der_begin(&d, DER_CTX_CONS(0));
    l = der_begin(&d, DER_SEQUENCE);
    der_raw(&d, cert, (size_t)n);
    der_end(&d, l);
    der_end(&d, m);
    st = ocsp_take(&d, out, out_len);
out:
    OPENSSL_free(cert);
    return st;
}

size_t
ocsp_error_response(enum ocsp_resp_status st, uint8_t *buf, size_t cap)
{
    /* Only the error statuses: "successful" needs responseBytes, and 4 is unused (§4.2.1). */
    if (cap < 5 || st == OCSP_RESP_SUCCESSFUL || (int)st < 0 || st == 4 || st > 6)
        return 0;
    buf[0] = DER_SEQUENCE;
    buf[1] = 3;
    buf[2] = DER_ENUMERATED;
    buf[3] = 1;
    buf[4] = (uint8_t)st;
    return 5;
}
