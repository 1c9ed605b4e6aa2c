/*
 * ocsp_certid: CertID encode and decode (RFC 6960 §4.1.1; STANDARDS OCSP-10, OCSP-11).
 * See ocsp_certid.h.
 */
#include "ocsp/ocsp_certid.h"
#include "common/der.h"
#include "common/status.h"

#include <openssl/evp.h>
#include <string.h>

const EVP_MD *
ocsp_hash_md(enum ocsp_hash h)
{
    switch (h) {
    case OCSP_HASH_SHA1:
        return EVP_sha1();
    case OCSP_HASH_SHA256:
        return EVP_sha256();
    case OCSP_HASH_SHA384:
        return EVP_sha384();
    case OCSP_HASH_SHA512:
        return EVP_sha512();
    }
    return NULL;
}

int
ocsp_issuer_hashes_of(X509 *issuer, enum ocsp_hash h, uint8_t name_hash[64], uint8_t key_hash[64],
                      size_t *len)
{
    const EVP_MD *md = ocsp_hash_md(h);
    const ASN1_BIT_STRING *pub = X509_get0_pubkey_bitstr(issuer);
    const unsigned char *name = NULL;
    size_t name_len = 0;
    unsigned n1 = 0, n2 = 0;

    if (md == NULL || pub == NULL ||
        X509_NAME_get0_der(X509_get_subject_name(issuer), &name, &name_len) != 1 ||
        EVP_Digest(name, name_len, name_hash, &n1, md, NULL) != 1 ||
        EVP_Digest(pub->data, (size_t)pub->length, key_hash, &n2, md, NULL) != 1)
        return ST_CRYPTO;
    *len = n1;
    return ST_OK;
}

int
ocsp_issuer_hashes(X509 *issuer, struct ocsp_issuer_hashes *h)
{
    for (int i = 0; i < 4; i++)
        if (ocsp_issuer_hashes_of(issuer, (enum ocsp_hash)(i + 1), h->name[i], h->key[i],
                                  &h->len[i]) != ST_OK)
            return ST_CRYPTO;
    return ST_OK;
}

static const uint8_t oid_sha1[] = {0x2b, 0x0e, 0x03, 0x02, 0x1a};
static const uint8_t oid_sha256[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
static const uint8_t oid_sha384[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02};
static const uint8_t oid_sha512[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03};

int
ocsp_certid_encode_form(const struct ocsp_issuer_hashes *h, uint8_t form, const uint8_t *serial,
                        size_t serial_len, struct ocsp_certid *out)
{
    static const struct {
        const uint8_t *oid;
        size_t len;
    } oids[] = {{oid_sha1, sizeof(oid_sha1)},
                {oid_sha256, sizeof(oid_sha256)},
                {oid_sha384, sizeof(oid_sha384)},
                {oid_sha512, sizeof(oid_sha512)}};
    unsigned hash = form & ~(unsigned)OCSP_FORM_NOPARAMS;
    int i = (int)hash - 1;
    struct der d;
    size_t m, a;

    memset(out, 0, sizeof(*out));
    if (hash < OCSP_HASH_SHA1 || hash > OCSP_HASH_SHA512 || serial_len == 0 ||
        serial_len > OCSP_SERIAL_MAX)
        return ST_INVALID;
    der_init(&d, out->der, sizeof(out->der));
    m = der_begin(&d, DER_SEQUENCE);
    a = der_begin(&d, DER_SEQUENCE);
    der_tlv(&d, DER_OID, oids[i].oid, oids[i].len);
    if ((form & OCSP_FORM_NOPARAMS) == 0)
        der_tlv(&d, DER_NULL, NULL, 0);
    der_end(&d, a);
    der_tlv(&d, DER_OCTET_STRING, h->name[i], h->len[i]);
    der_tlv(&d, DER_OCTET_STRING, h->key[i], h->len[i]);
    der_tlv(&d, DER_INTEGER, serial, serial_len);
    der_end(&d, m);
    if (der_finish(&d) != ST_OK)
        return ST_INVALID;
    out->der_len = d.len;
    out->hash = (enum ocsp_hash)hash;
    memcpy(out->name_hash, h->name[i], h->len[i]);
    memcpy(out->key_hash, h->key[i], h->len[i]);
    out->hash_len = h->len[i];
    memcpy(out->serial, serial, serial_len);
    out->serial_len = serial_len;
    return ST_OK;
}

int
ocsp_certid_encode(const struct ocsp_issuer_hashes *h, enum ocsp_hash hash, const uint8_t *serial,
                   size_t serial_len, struct ocsp_certid *out)
{
    if (hash != OCSP_HASH_SHA1 && hash != OCSP_HASH_SHA256) {
        memset(out, 0, sizeof(*out));
        return ST_INVALID;
    }
    return ocsp_certid_encode_form(h, (uint8_t)hash, serial, serial_len, out);
}

uint8_t
ocsp_certid_form_der(const uint8_t *der, size_t len, enum ocsp_hash hash)
{
    const uint8_t *p = der, *c, *q, *alg, *oid;
    size_t cl, al, ol;
    uint8_t tag;

    if (hash < OCSP_HASH_SHA1 || hash > OCSP_HASH_SHA512 || der == NULL ||
        !der_read(&p, der + len, &tag, &c, &cl) || tag != DER_SEQUENCE)
        return 0;
    q = c;
    if (!der_read(&q, c + cl, &tag, &alg, &al) || tag != DER_SEQUENCE)
        return 0;
    q = alg;
    if (!der_read(&q, alg + al, &tag, &oid, &ol) || tag != DER_OID)
        return 0;
    return (uint8_t)((unsigned)hash | (q == alg + al ? OCSP_FORM_NOPARAMS : 0u));
}

uint8_t
ocsp_certid_form(const struct ocsp_certid *id)
{
    return ocsp_certid_form_der(id->der, id->der_len, id->hash);
}

int
ocsp_certid_decode(const uint8_t *der, size_t len, struct ocsp_certid *id)
{
    const uint8_t *p = der, *c, *q, *end, *alg, *oid;
    size_t cl, al, ol, nl, kl;
    const uint8_t *nh, *kh, *ser;
    uint8_t tag;

    memset(id, 0, sizeof(*id));
    if (len > sizeof(id->der) || !der_read(&p, der + len, &tag, &c, &cl))
        return ST_INVALID;
    q = c;
    end = c + cl;
    if (!der_read(&q, end, &tag, &alg, &al) || !der_read(&alg, alg + al, &tag, &oid, &ol) ||
        !der_read(&q, end, &tag, &nh, &nl) || !der_read(&q, end, &tag, &kh, &kl) ||
        !der_read(&q, end, &tag, &ser, &id->serial_len) || id->serial_len > OCSP_SERIAL_MAX ||
        nl != kl || nl > sizeof(id->name_hash))
        return ST_INVALID;
    if (ol == sizeof(oid_sha1) && memcmp(oid, oid_sha1, ol) == 0)
        id->hash = OCSP_HASH_SHA1;
    else if (ol == sizeof(oid_sha256) && memcmp(oid, oid_sha256, ol) == 0)
        id->hash = OCSP_HASH_SHA256;
    else
        return ST_INVALID;
    memcpy(id->der, der, len);
    id->der_len = len;
    memcpy(id->name_hash, nh, nl);
    memcpy(id->key_hash, kh, kl);
    id->hash_len = nl;
    memcpy(id->serial, ser, id->serial_len);
    return ST_OK;
}
