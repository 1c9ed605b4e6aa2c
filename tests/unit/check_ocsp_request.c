/*
 * check_ocsp_request: unit suite of ocsp/ocsp_request, the OCSPRequest checks of RFC 6960
 * §4.1 (STANDARDS OCSP-02, OCSP-03, OCSP-10, OCSP-11, OCSP-17, OCSP-23, OCSP-24, OCSP-27).
 * Requests are built with OpenSSL's OCSP API over a throwaway CA and leaf made here, and by
 * hand (with common/der) for what OpenSSL never writes: wrong hash lengths, version v2, BER.
 * Accepted requests must echo each CertID as the exact DER OpenSSL encodes for it.
 */
#include "common/der.h"
#include "common/json.h"
#include "common/status.h"
#include "ocsp/ocsp_request.h"

#include <check.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static EVP_PKEY *ca_key;
static X509 *ca_cert, *leaf_cert;
static struct ocsp_request out;
static const char *why;

#define ck_assert_ok(rc) ck_assert_msg((rc) == ST_OK, "rejected: %s", why ? why : "no reason")
#define ck_assert_malformed(rc)                                                                    \
    do {                                                                                           \
        ck_assert_int_eq((rc), ST_INVALID);                                                        \
        ck_assert_ptr_nonnull(why);                                                                \
        ck_assert_uint_eq(out.n, 0);                                                               \
    } while (0)

/* ---- throwaway PKI ---- */

static void
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    ck_assert_ptr_nonnull(ext);
    ck_assert_int_eq(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

static X509 *
make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, long serial)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();

    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(name);
    ck_assert_int_eq(X509_set_version(x, 2), 1);
    ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
    ck_assert_int_eq(
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0),
        1);
    ck_assert_int_eq(X509_set_subject_name(x, name), 1);
    ck_assert_int_eq(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
    ck_assert_int_eq(X509_set_pubkey(x, key), 1);
    add_ext(x, issuer ? issuer : x, NID_basic_constraints,
            issuer ? "critical,CA:FALSE" : "critical,CA:TRUE");
    ck_assert_int_gt(X509_sign(x, issuer_key, EVP_sha256()), 0);
    X509_NAME_free(name);
    return x;
}

static void
pki_setup(void)
{
    EVP_PKEY *leaf_key = EVP_EC_gen("P-256");

    ca_key = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(ca_key);
    ck_assert_ptr_nonnull(leaf_key);
    ca_cert = make_cert("OCSP test CA", ca_key, NULL, ca_key, 1);
    leaf_cert = make_cert("OCSP test leaf", leaf_key, ca_cert, ca_key, 0x1234);
    EVP_PKEY_free(leaf_key);
}

static void
pki_teardown(void)
{
    X509_free(leaf_cert);
    X509_free(ca_cert);
    EVP_PKEY_free(ca_key);
}

/* ---- requests built with OpenSSL ---- */

static OCSP_CERTID *
certid_for(const EVP_MD *md, const ASN1_INTEGER *serial)
{
    OCSP_CERTID *id;

    if (serial == NULL)
        id = OCSP_cert_to_id(md, leaf_cert, ca_cert);
    else
        id = OCSP_cert_id_new(md, X509_get_subject_name(ca_cert), X509_get0_pubkey_bitstr(ca_cert),
                              serial);
    ck_assert_ptr_nonnull(id);
    return id;
}

/* Add a CertID (the request takes it) and return it borrowed. */
static OCSP_CERTID *
add_id(OCSP_REQUEST *req, OCSP_CERTID *id)
{
    ck_assert_ptr_nonnull(OCSP_request_add0_id(req, id));
    return id;
}

static OCSP_REQUEST *
new_req(const EVP_MD *md)
{
    OCSP_REQUEST *req = OCSP_REQUEST_new();

    ck_assert_ptr_nonnull(req);
    if (md != NULL)
        add_id(req, certid_for(md, NULL));
    return req;
}

static void
add_raw_ext(OCSP_REQUEST *req, OCSP_ONEREQ *one, const char *oid, int crit, const uint8_t *v,
            size_t vlen)
{
    ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *data = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext;

    ck_assert_ptr_nonnull(o);
    ck_assert_ptr_nonnull(data);
    ck_assert_int_eq(ASN1_OCTET_STRING_set(data, v, (int)vlen), 1);
    ext = X509_EXTENSION_create_by_OBJ(NULL, o, crit, data);
    ck_assert_ptr_nonnull(ext);
    if (one != NULL)
        ck_assert_int_eq(OCSP_ONEREQ_add_ext(one, ext, -1), 1);
    else
        ck_assert_int_eq(OCSP_REQUEST_add_ext(req, ext, -1), 1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(data);
    ASN1_OBJECT_free(o);
}

static int
parse(const uint8_t *der, size_t len)
{
    why = "untouched";
    return ocsp_request_parse(der, len, &out, &why);
}

static int
parse_req(OCSP_REQUEST *req)
{
    unsigned char *der = NULL;
    int n = i2d_OCSP_REQUEST(req, &der);
    int rc;

    ck_assert_int_gt(n, 0);
    rc = parse(der, (size_t)n);
    OPENSSL_free(der);
    return rc;
}

/* The parsed CertID must be the DER of id, with its hashes and serial. */
static void
check_certid(const struct ocsp_certid *got, OCSP_CERTID *id, enum ocsp_hash hash, size_t hlen)
{
    ASN1_OCTET_STRING *nh, *kh;
    ASN1_OBJECT *md;
    ASN1_INTEGER *serial;
    unsigned char *der = NULL, *sder = NULL;
    int n = i2d_OCSP_CERTID(id, &der), sn;

    ck_assert_int_gt(n, 0);
    ck_assert_uint_eq(got->der_len, (size_t)n);
    ck_assert_mem_eq(got->der, der, (size_t)n);
    ck_assert_int_eq(got->hash, hash);
    ck_assert_uint_eq(got->hash_len, hlen);
    ck_assert_int_eq(OCSP_id_get0_info(&nh, &md, &kh, &serial, id), 1);
    if (hlen > 0) {
        ck_assert_mem_eq(got->name_hash, ASN1_STRING_get0_data(nh), hlen);
        ck_assert_mem_eq(got->key_hash, ASN1_STRING_get0_data(kh), hlen);
    }
    sn = i2d_ASN1_INTEGER(serial, &sder);
    ck_assert_int_gt(sn, 2);
    ck_assert_uint_eq(got->serial_len, (size_t)sn - 2);
    ck_assert_mem_eq(got->serial, sder + 2, got->serial_len);
    OPENSSL_free(sder);
    OPENSSL_free(der);
}

/* ---- accepted requests ---- */

START_TEST(test_single_sha1)
{
    OCSP_REQUEST *req = new_req(NULL);
    OCSP_CERTID *id = add_id(req, certid_for(EVP_sha1(), NULL));
    static const uint8_t serial[] = {0x12, 0x34};

    ck_assert_ok(parse_req(req));
    ck_assert_ptr_null(why);
    ck_assert_uint_eq(out.n, 1);
    ck_assert(!out.has_nonce);
    check_certid(&out.ids[0], id, OCSP_HASH_SHA1, 20);
    ck_assert_uint_eq(out.ids[0].serial_len, 2);
    ck_assert_mem_eq(out.ids[0].serial, serial, 2);
    OCSP_REQUEST_free(req);
}
END_TEST

/* OCSP-10/11: 1..5 CertIDs mixing SHA-1/256/384/512, each echoed exactly and in order. */
START_TEST(test_mixed_hashes)
{
    static const struct {
        const EVP_MD *(*md)(void);
        enum ocsp_hash hash;
        size_t len;
    } hs[] = {{EVP_sha1, OCSP_HASH_SHA1, 20},
              {EVP_sha256, OCSP_HASH_SHA256, 32},
              {EVP_sha384, OCSP_HASH_SHA384, 48},
              {EVP_sha512, OCSP_HASH_SHA512, 64}};

    for (size_t n = 1; n <= 5; n++) {
        OCSP_REQUEST *req = new_req(NULL);
        OCSP_CERTID *ids[5];

        for (size_t i = 0; i < n; i++) {
            ASN1_INTEGER *serial = ASN1_INTEGER_new();

            ck_assert_int_eq(ASN1_INTEGER_set(serial, (long)(1000 + i * 77777)), 1);
            ids[i] = add_id(req, certid_for(hs[(i + n) % 4].md(), serial));
            ASN1_INTEGER_free(serial);
        }
        ck_assert_ok(parse_req(req));
        ck_assert_uint_eq(out.n, n);
        for (size_t i = 0; i < n; i++)
            check_certid(&out.ids[i], ids[i], hs[(i + n) % 4].hash, hs[(i + n) % 4].len);
        OCSP_REQUEST_free(req);
    }
}
END_TEST

START_TEST(test_sixteen_certids)
{
    OCSP_REQUEST *req = new_req(NULL);

    for (int i = 0; i < OCSP_MAX_CERTIDS; i++)
        add_id(req, certid_for(EVP_sha256(), NULL));
    ck_assert_ok(parse_req(req));
    ck_assert_uint_eq(out.n, OCSP_MAX_CERTIDS);
    OCSP_REQUEST_free(req);
}
END_TEST

/* A hash we do not serve is not an error: hash 0, answered "unknown" later. */
START_TEST(test_unknown_hash_oid)
{
    OCSP_REQUEST *req = new_req(NULL);
    OCSP_CERTID *id = add_id(req, certid_for(EVP_sha224(), NULL));

    ck_assert_ok(parse_req(req));
    ck_assert_uint_eq(out.n, 1);
    check_certid(&out.ids[0], id, 0, 0);
    OCSP_REQUEST_free(req);
}
END_TEST

static ASN1_INTEGER *
serial_from(const uint8_t *mag, size_t n, bool negative)
{
    BIGNUM *bn = BN_bin2bn(mag, (int)n, NULL);
    ASN1_INTEGER *ai;

    ck_assert_ptr_nonnull(bn);
    BN_set_negative(bn, negative);
    ai = BN_to_ASN1_INTEGER(bn, NULL);
    ck_assert_ptr_nonnull(ai);
    BN_free(bn);
    return ai;
}

static int
parse_serial(const uint8_t *mag, size_t n, bool negative)
{
    OCSP_REQUEST *req = new_req(NULL);
    ASN1_INTEGER *serial = serial_from(mag, n, negative);
    int rc;

    add_id(req, certid_for(EVP_sha256(), serial));
    rc = parse_req(req);
    ASN1_INTEGER_free(serial);
    OCSP_REQUEST_free(req);
    return rc;
}

/* Serials: 20-octet magnitude with the top bit set (21 content octets) is fine; a 21-octet
 * magnitude and a negative serial are not (RFC 5280 §4.1.2.2). */
START_TEST(test_serials)
{
    uint8_t mag[21];

    memset(mag, 0xc3, sizeof(mag));
    ck_assert_ok(parse_serial(mag, 20, false));
    ck_assert_uint_eq(out.ids[0].serial_len, 21);
    ck_assert_uint_eq(out.ids[0].serial[0], 0x00);
    ck_assert_mem_eq(out.ids[0].serial + 1, mag, 20);
    mag[0] = 0x01;
    ck_assert_ok(parse_serial(mag, 20, false));
    ck_assert_uint_eq(out.ids[0].serial_len, 20);
    ck_assert_malformed(parse_serial(mag, 21, false));
    ck_assert_malformed(parse_serial(mag, 3, true));
    ck_assert_ok(parse_serial(mag, 1, false));
    ck_assert_uint_eq(out.ids[0].serial_len, 1);
    ck_assert_uint_eq(out.ids[0].serial[0], 0x01);
    mag[0] = 0x00; /* serial zero: not RFC 5280 conforming, but answerable */
    ck_assert_ok(parse_serial(mag, 1, false));
    ck_assert_uint_eq(out.ids[0].serial_len, 1);
    ck_assert_uint_eq(out.ids[0].serial[0], 0x00);
}
END_TEST

/* OCSP-24: a signature (and requestorName) on the request is ignored. */
START_TEST(test_signed_request)
{
    OCSP_REQUEST *req = new_req(EVP_sha1());
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *signer;

    ck_assert_ptr_nonnull(key);
    signer = make_cert("OCSP test requestor", key, ca_cert, ca_key, 99);
    ck_assert_int_eq(OCSP_request_sign(req, signer, key, EVP_sha256(), NULL, 0), 1);
    ck_assert_ok(parse_req(req));
    ck_assert_uint_eq(out.n, 1);
    X509_free(signer);
    EVP_PKEY_free(key);
    OCSP_REQUEST_free(req);
}
END_TEST

/* ---- nonce (OCSP-17, RFC 9654 §2.1) ---- */

static void
check_nonce_ok(size_t len)
{
    OCSP_REQUEST *req = new_req(EVP_sha256());
    uint8_t v[OCSP_NONCE_MAX];
    size_t h = len < 128 ? 2 : 3;

    ck_assert_int_eq(RAND_bytes(v, (int)len), 1);
    ck_assert_int_eq(OCSP_request_add1_nonce(req, v, (int)len), 1);
    ck_assert_ok(parse_req(req));
    ck_assert(out.has_nonce);
    ck_assert_uint_eq(out.nonce_len, len);
    /* extnValue contents kept verbatim: the inner OCTET STRING TLV */
    ck_assert_uint_eq(out.nonce_value_len, len + h);
    ck_assert_uint_eq(out.nonce_value[0], 0x04);
    if (h == 3)
        ck_assert_uint_eq(out.nonce_value[1], 0x81);
    ck_assert_uint_eq(out.nonce_value[h - 1], len & 0xff);
    ck_assert_mem_eq(out.nonce_value + h, v, len);
    OCSP_REQUEST_free(req);
}

START_TEST(test_nonce_lengths_ok)
{
    static const size_t lens[] = {1, 15, 16, 32, 33, 64, 127, 128};

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        check_nonce_ok(lens[i]);
}
END_TEST

static int
parse_with_ext(const char *oid, int crit, const uint8_t *v, size_t vlen)
{
    OCSP_REQUEST *req = new_req(EVP_sha1());
    int rc;

    add_raw_ext(req, NULL, oid, crit, v, vlen);
    rc = parse_req(req);
    OCSP_REQUEST_free(req);
    return rc;
}

#define NONCE_OID "1.3.6.1.5.5.7.48.1.2"

START_TEST(test_nonce_empty)
{
    static const uint8_t empty_inner[] = {0x04, 0x00};

    ck_assert_malformed(parse_with_ext(NONCE_OID, 0, empty_inner, sizeof(empty_inner)));
    ck_assert_malformed(parse_with_ext(NONCE_OID, 0, empty_inner, 0));
}
END_TEST

START_TEST(test_nonce_too_long)
{
    OCSP_REQUEST *req = new_req(EVP_sha1());
    uint8_t v[OCSP_NONCE_MAX + 1];

    memset(v, 0x5a, sizeof(v));
    ck_assert_int_eq(OCSP_request_add1_nonce(req, v, (int)sizeof(v)), 1);
    ck_assert_malformed(parse_req(req));
    OCSP_REQUEST_free(req);
    /* legacy raw form, 129 octets */
    ck_assert_malformed(parse_with_ext(NONCE_OID, 0, v, sizeof(v)));
}
END_TEST

/* RFC 2560/8954-era clients put the nonce straight into extnValue. */
START_TEST(test_nonce_legacy)
{
    uint8_t v[OCSP_NONCE_MAX];

    memset(v, 0xab, sizeof(v));
    ck_assert_ok(parse_with_ext(NONCE_OID, 0, v, 16));
    ck_assert(out.has_nonce);
    ck_assert_uint_eq(out.nonce_len, 16);
    ck_assert_uint_eq(out.nonce_value_len, 16);
    ck_assert_mem_eq(out.nonce_value, v, 16);
    ck_assert_ok(parse_with_ext(NONCE_OID, 0, v, 1));
    ck_assert_uint_eq(out.nonce_len, 1);
    ck_assert_ok(parse_with_ext(NONCE_OID, 0, v, OCSP_NONCE_MAX));
    ck_assert_uint_eq(out.nonce_value_len, OCSP_NONCE_MAX);
    /* starts like an OCTET STRING but is not one complete TLV: raw */
    v[0] = 0x04;
    v[1] = 0x05;
    ck_assert_ok(parse_with_ext(NONCE_OID, 0, v, 32));
    ck_assert_uint_eq(out.nonce_len, 32);
    ck_assert_mem_eq(out.nonce_value, v, 32);
}
END_TEST

START_TEST(test_nonce_critical_and_repeated)
{
    static const uint8_t v[] = {0x04, 0x02, 0x01, 0x02};
    OCSP_REQUEST *req;

    ck_assert_ok(parse_with_ext(NONCE_OID, 1, v, sizeof(v)));
    ck_assert_uint_eq(out.nonce_len, 2);
    req = new_req(EVP_sha1());
    add_raw_ext(req, NULL, NONCE_OID, 0, v, sizeof(v));
    add_raw_ext(req, NULL, NONCE_OID, 0, v, sizeof(v));
    ck_assert_malformed(parse_req(req));
    OCSP_REQUEST_free(req);
}
END_TEST

/* ---- other extensions (OCSP-23) ---- */

START_TEST(test_unknown_extensions)
{
    static const uint8_t v[] = {0x05, 0x00};
    OCSP_REQUEST *req;
    OCSP_ONEREQ *one;

    ck_assert_ok(parse_with_ext("1.3.6.1.4.1.99999.1", 0, v, sizeof(v)));
    ck_assert(!out.has_nonce);
    ck_assert_malformed(parse_with_ext("1.3.6.1.4.1.99999.1", 1, v, sizeof(v)));
    /* preferred-signature-algorithms is not processed: critical -> refused too */
    ck_assert_malformed(parse_with_ext("1.3.6.1.5.5.7.48.1.8", 1, v, sizeof(v)));

    req = new_req(NULL);
    one = OCSP_request_add0_id(req, certid_for(EVP_sha256(), NULL));
    ck_assert_ptr_nonnull(one);
    add_raw_ext(req, one, "1.3.6.1.4.1.99999.2", 0, v, sizeof(v));
    ck_assert_ok(parse_req(req));
    add_raw_ext(req, one, "1.3.6.1.4.1.99999.3", 1, v, sizeof(v));
    ck_assert_malformed(parse_req(req));
    OCSP_REQUEST_free(req);
}
END_TEST

/* Issue 8 item 6: the duplicate check was quadratic (780 extensions in 7.7 KB: 7 ms per
 * request). Many extensions must still be checked whole: a repeat far apart is refused, in
 * requestExtensions and in singleRequestExtensions; many distinct ones are answered. */
static void
add_many_exts(OCSP_REQUEST *req, OCSP_ONEREQ *one, int n, int repeat_of_first)
{
    static const uint8_t v[] = {0x05, 0x00};
    char oid[64];

    for (int i = 0; i < n; i++) {
        snprintf(oid, sizeof(oid), "1.3.6.1.4.1.99999.%d.%d", 7 + i % 5, i);
        add_raw_ext(req, one, oid, 0, v, sizeof(v));
    }
    if (repeat_of_first) {
        snprintf(oid, sizeof(oid), "1.3.6.1.4.1.99999.%d.%d", 7, 0);
        add_raw_ext(req, one, oid, 0, v, sizeof(v));
    }
}

START_TEST(test_many_extensions)
{
    static const uint8_t nonce[] = {0x04, 0x02, 0x01, 0x02};
    OCSP_REQUEST *req;
    OCSP_ONEREQ *one;

    req = new_req(EVP_sha1());
    add_raw_ext(req, NULL, NONCE_OID, 0, nonce, sizeof(nonce));
    add_many_exts(req, NULL, 700, 0);
    ck_assert_ok(parse_req(req)); /* distinct: answered, the nonce found among them */
    ck_assert(out.has_nonce);
    OCSP_REQUEST_free(req);

    req = new_req(EVP_sha1());
    add_many_exts(req, NULL, 700, 1); /* the first one again, 700 entries later */
    ck_assert_malformed(parse_req(req));
    ck_assert_ptr_nonnull(strstr(why, "repeat"));
    OCSP_REQUEST_free(req);

    req = new_req(EVP_sha1());
    add_raw_ext(req, NULL, NONCE_OID, 0, nonce, sizeof(nonce));
    add_many_exts(req, NULL, 300, 0);
    add_raw_ext(req, NULL, NONCE_OID, 0, nonce, sizeof(nonce)); /* a second nonce, far away */
    ck_assert_malformed(parse_req(req));
    OCSP_REQUEST_free(req);

    req = new_req(NULL);
    one = OCSP_request_add0_id(req, certid_for(EVP_sha256(), NULL));
    ck_assert_ptr_nonnull(one);
    add_many_exts(req, one, 500, 0);
    ck_assert_ok(parse_req(req));
    add_many_exts(req, one, 1, 0); /* repeats the first singleRequestExtension */
    ck_assert_malformed(parse_req(req));
    ck_assert_ptr_nonnull(strstr(why, "repeat"));
    OCSP_REQUEST_free(req);
}
END_TEST

/* ---- refused structures ---- */

START_TEST(test_certid_count)
{
    OCSP_REQUEST *req = new_req(NULL);

    ck_assert_malformed(parse_req(req)); /* zero CertIDs */
    for (int i = 0; i < OCSP_MAX_CERTIDS + 1; i++)
        add_id(req, certid_for(EVP_sha1(), NULL));
    ck_assert_malformed(parse_req(req)); /* 17 */
    OCSP_REQUEST_free(req);
}
END_TEST

/* Hand-made CertID: SEQUENCE { AlgorithmIdentifier { oid, NULL }, name, key, serial }. */
static void
put_certid(struct der *d, const uint8_t *oid, size_t oid_len, size_t name_len, size_t key_len)
{
    static const uint8_t hash[128], serial[] = {0x01, 0x02};
    size_t m = der_begin(d, DER_SEQUENCE), a = der_begin(d, DER_SEQUENCE);

    der_raw(d, oid, oid_len);
    der_null(d);
    der_end(d, a);
    der_tlv(d, DER_OCTET_STRING, hash, name_len);
    der_tlv(d, DER_OCTET_STRING, hash, key_len);
    der_tlv(d, DER_INTEGER, serial, sizeof(serial));
    der_end(d, m);
}

/* OCSPRequest { TBSRequest { [0] version?, requestList { Request { CertID } } } } */
static size_t
hand_request(uint8_t *buf, size_t cap, const uint8_t *version, size_t vlen, const uint8_t *oid,
             size_t oid_len, size_t name_len, size_t key_len)
{
    struct der d;
    size_t m, t, l, r;

    der_init(&d, buf, cap);
    m = der_begin(&d, DER_SEQUENCE);
    t = der_begin(&d, DER_SEQUENCE);
    if (version != NULL)
        der_raw(&d, version, vlen);
    l = der_begin(&d, DER_SEQUENCE);
    r = der_begin(&d, DER_SEQUENCE);
    put_certid(&d, oid, oid_len, name_len, key_len);
    der_end(&d, r);
    der_end(&d, l);
    der_end(&d, t);
    der_end(&d, m);
    ck_assert_int_eq(der_finish(&d), 0);
    return d.len;
}

static const uint8_t OID_SHA1[] = {0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a};
static const uint8_t OID_SHA256[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                     0x65, 0x03, 0x04, 0x02, 0x01};

START_TEST(test_hash_length_mismatch)
{
    uint8_t buf[512];
    size_t n;

    n = hand_request(buf, sizeof(buf), NULL, 0, OID_SHA256, sizeof(OID_SHA256), 32, 32);
    ck_assert_ok(parse(buf, n));
    ck_assert_int_eq(out.ids[0].hash, OCSP_HASH_SHA256);
    n = hand_request(buf, sizeof(buf), NULL, 0, OID_SHA256, sizeof(OID_SHA256), 20, 32);
    ck_assert_malformed(parse(buf, n));
    n = hand_request(buf, sizeof(buf), NULL, 0, OID_SHA256, sizeof(OID_SHA256), 32, 31);
    ck_assert_malformed(parse(buf, n));
    n = hand_request(buf, sizeof(buf), NULL, 0, OID_SHA1, sizeof(OID_SHA1), 32, 32);
    ck_assert_malformed(parse(buf, n));
}
END_TEST

/* A request whose SHA-256 CertID carries `params` (raw bytes, NULL for none) after the OID. */
static size_t
params_request(uint8_t *buf, size_t cap, const uint8_t *params, size_t plen)
{
    static const uint8_t hash[32] = {1};
    static const uint8_t serial[] = {0x01, 0x02};
    struct der d;
    size_t m, t, l, r, c, a;

    der_init(&d, buf, cap);
    m = der_begin(&d, DER_SEQUENCE);
    t = der_begin(&d, DER_SEQUENCE);
    l = der_begin(&d, DER_SEQUENCE);
    r = der_begin(&d, DER_SEQUENCE);
    c = der_begin(&d, DER_SEQUENCE);
    a = der_begin(&d, DER_SEQUENCE);
    der_raw(&d, OID_SHA256, sizeof(OID_SHA256));
    if (params != NULL)
        der_raw(&d, params, plen);
    der_end(&d, a);
    der_tlv(&d, DER_OCTET_STRING, hash, sizeof(hash));
    der_tlv(&d, DER_OCTET_STRING, hash, sizeof(hash));
    der_tlv(&d, DER_INTEGER, serial, sizeof(serial));
    der_end(&d, c);
    der_end(&d, r);
    der_end(&d, l);
    der_end(&d, t);
    der_end(&d, m);
    ck_assert_int_eq(der_finish(&d), 0);
    return d.len;
}

/* OCSP-27: hash parameters are absent or NULL; anything else would give one certificate
 * endless distinct CertIDs (and pre-signed entries) at a client's whim. */
START_TEST(test_certid_hash_params)
{
    static const uint8_t null_p[] = {0x05, 0x00};
    static const uint8_t octets[] = {0x04, 0x03, 0xaa, 0xbb, 0xcc};
    static const uint8_t integer[] = {0x02, 0x01, 0x07};
    uint8_t buf[512];
    size_t n;

    n = params_request(buf, sizeof(buf), NULL, 0);
    ck_assert_ok(parse(buf, n));
    n = params_request(buf, sizeof(buf), null_p, sizeof(null_p));
    ck_assert_ok(parse(buf, n));
    n = params_request(buf, sizeof(buf), octets, sizeof(octets));
    ck_assert_malformed(parse(buf, n));
    n = params_request(buf, sizeof(buf), integer, sizeof(integer));
    ck_assert_malformed(parse(buf, n));
}
END_TEST

START_TEST(test_version)
{
    static const uint8_t v1[] = {0xa0, 0x03, 0x02, 0x01, 0x00};
    static const uint8_t v2[] = {0xa0, 0x03, 0x02, 0x01, 0x01};
    uint8_t buf[512];
    size_t n;

    /* an explicitly encoded v1 (the DEFAULT) is tolerated */
    n = hand_request(buf, sizeof(buf), v1, sizeof(v1), OID_SHA1, sizeof(OID_SHA1), 20, 20);
    ck_assert_ok(parse(buf, n));
    n = hand_request(buf, sizeof(buf), v2, sizeof(v2), OID_SHA1, sizeof(OID_SHA1), 20, 20);
    ck_assert_malformed(parse(buf, n));
}
END_TEST

/* A CertID too large to echo (an unknown hash with 100-octet values). */
START_TEST(test_certid_too_large)
{
    static const uint8_t oid[] = {0x06, 0x03, 0x2a, 0x03, 0x04};
    uint8_t buf[512];
    size_t n = hand_request(buf, sizeof(buf), NULL, 0, oid, sizeof(oid), 100, 100);

    ck_assert_malformed(parse(buf, n));
    n = hand_request(buf, sizeof(buf), NULL, 0, oid, sizeof(oid), 20, 20);
    ck_assert_ok(parse(buf, n));
    ck_assert_int_eq(out.ids[0].hash, 0);
}
END_TEST

/* OCSP-03: whatever is not one complete DER OCSPRequest is malformedRequest. */
static uint8_t *
good_der(size_t *len)
{
    OCSP_REQUEST *req = new_req(EVP_sha256());
    unsigned char *der = NULL;
    uint8_t v[16] = {1, 2, 3};
    int n;

    ck_assert_int_eq(OCSP_request_add1_nonce(req, v, sizeof(v)), 1);
    n = i2d_OCSP_REQUEST(req, &der);
    ck_assert_int_gt(n, 0);
    OCSP_REQUEST_free(req);
    *len = (size_t)n;
    return der;
}

START_TEST(test_truncated_and_trailing)
{
    size_t len;
    uint8_t *der = good_der(&len), *longer = malloc(len + 1);

    ck_assert_ok(parse(der, len));
    for (size_t i = 0; i < len; i++)
        ck_assert_malformed(parse(der, i));
    ck_assert_ptr_nonnull(longer);
    memcpy(longer, der, len);
    longer[len] = 0x00;
    ck_assert_malformed(parse(longer, len + 1));
    free(longer);
    OPENSSL_free(der);
}
END_TEST

START_TEST(test_ber_indefinite)
{
    size_t len;
    uint8_t *der = good_der(&len), buf[600];
    size_t h = der[1] < 0x80 ? 2 : 2 + (der[1] & 0x7fu), clen = len - h;

    ck_assert_uint_le(len + 4, sizeof(buf));
    /* outer SEQUENCE rewritten with indefinite length and an end-of-contents */
    buf[0] = 0x30;
    buf[1] = 0x80;
    memcpy(buf + 2, der + h, clen);
    buf[2 + clen] = 0x00;
    buf[3 + clen] = 0x00;
    ck_assert_malformed(parse(buf, clen + 4));
    /* non-minimal length octets: two length octets where one would do */
    ck_assert_uint_lt(clen, 256);
    buf[0] = 0x30;
    buf[1] = 0x82;
    buf[2] = 0x00;
    buf[3] = (uint8_t)clen;
    memcpy(buf + 4, der + h, clen);
    ck_assert_malformed(parse(buf, clen + 4));
    /* the same content with its minimal header is fine */
    memcpy(buf, der, len);
    ck_assert_ok(parse(buf, len));
    OPENSSL_free(der);
}
END_TEST

START_TEST(test_empty_and_random)
{
    uint8_t buf[256] = {0};

    ck_assert_malformed(parse(buf, 0));
    ck_assert_malformed(parse(NULL, 0));
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(RAND_bytes(buf, sizeof(buf)), 1);
        ck_assert_malformed(parse(buf, (size_t)(i + 1)));
    }
}
END_TEST

START_TEST(test_too_large)
{
    uint8_t *big = calloc(1, OCSP_REQ_MAX + 1);

    ck_assert_ptr_nonnull(big);
    ck_assert_malformed(parse(big, OCSP_REQ_MAX + 1));
    free(big);
}
END_TEST

/* ---- GET form (OCSP-02) ---- */

/* 8 bytes whose base64 holds '+', '/' and one padding '=': "+/+/+/+/+/8=" */
static const uint8_t get_bytes[] = {0xfb, 0xff, 0xbf, 0xfb, 0xff, 0xbf, 0xfb, 0xff};

static int
decode(const char *path, size_t cap)
{
    uint8_t buf[64];
    size_t len = 99;
    int rc;

    ck_assert_uint_le(cap, sizeof(buf));
    rc = ocsp_get_decode(path, buf, cap, &len);
    if (rc == ST_OK) {
        ck_assert_uint_eq(len, sizeof(get_bytes));
        ck_assert_mem_eq(buf, get_bytes, sizeof(get_bytes));
    }
    return rc;
}

/* Replace each c in s by rep (into out). */
static void
escape(const char *s, char c, const char *rep, char *outs, size_t cap)
{
    size_t k = 0;

    for (; *s != '\0'; s++) {
        const char *add = *s == c ? rep : (char[2]){*s, '\0'};

        ck_assert_uint_lt(k + strlen(add), cap);
        memcpy(outs + k, add, strlen(add));
        k += strlen(add);
    }
    outs[k] = '\0';
}

START_TEST(test_get_decode)
{
    char b64[32], a[96], b[96], c[96];

    ck_assert_int_eq(EVP_EncodeBlock((unsigned char *)b64, get_bytes, sizeof(get_bytes)), 12);
    ck_assert_str_eq(b64, "+/+/+/+/+/8=");
    ck_assert_int_eq(decode(b64, 64), ST_OK);
    escape(b64, '+', "%2B", a, sizeof(a));
    escape(a, '/', "%2F", b, sizeof(b));
    escape(b, '=', "%3D", c, sizeof(c));
    ck_assert_str_eq(c, "%2B%2F%2B%2F%2B%2F%2B%2F%2B%2F8%3D");
    ck_assert_int_eq(decode(c, 64), ST_OK);
    escape(b64, '+', "%2b", a, sizeof(a));
    escape(a, '/', "%2f", b, sizeof(b));
    escape(b, '=', "%3d", c, sizeof(c));
    ck_assert_int_eq(decode(c, 64), ST_OK);
    ck_assert_int_eq(decode("+/+/+/+/+/8", 64), ST_OK);    /* padding missing */
    ck_assert_int_eq(decode("//+/+/+/+/+/8=", 64), ST_OK); /* leading slashes skipped */
    ck_assert_int_eq(decode("/%2B/+/+/+/+/8", 64), ST_OK);
    ck_assert_int_eq(decode("+/+/+/+/+/8=", sizeof(get_bytes)), ST_OK); /* exactly cap */
}
END_TEST

START_TEST(test_get_decode_bad)
{
    static const char *bad[] = {
        "",              /* nothing */
        "//",            /* only slashes */
        "+/+/+/+/+/8*",  /* outside the alphabet */
        "+/+/ +/+/+/8=", /* space */
        "+/+/+/+/+/8=%", /* escape cut short */
        "+/+/+/+/+/8%3", /* escape cut short */
        "+/+/+/+/+/8%zz",
        "+/+/+/+/+/8%00",
        "+/+/+/+/+/8===", /* too much padding */
        "+/+/+/+/+/8=A",  /* data after padding */
        "+/+/+/+/+",      /* 9 characters: not base64 */
        "+/+/+/+/+/8=?x=1",
        "====",
    };
    uint8_t buf[8];
    size_t len = 99;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(decode(bad[i], 64) == ST_INVALID, "accepted \"%s\"", bad[i]);
    ck_assert_int_eq(decode("+/+/+/+/+/8=", sizeof(get_bytes) - 1), ST_INVALID); /* too long */
    ck_assert_int_eq(ocsp_get_decode("AAAAAAAAAAAAAAAA", buf, sizeof(buf), &len), ST_INVALID);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(ocsp_get_decode("AAAAAAAAAAA", buf, sizeof(buf), &len), ST_OK);
    ck_assert_uint_eq(len, 8);
}
END_TEST

/* Paths on both sides of the length decoded on the stack (1024 characters) and far past it:
 * the same bytes back, escaped or not, and the cap still holds (OCSP-02). */
START_TEST(test_get_decode_lengths)
{
    static const size_t sizes[] = {1, 2, 3, 765, 766, 767, 768, 769, 770, 3000, 12000};
    static uint8_t raw[12000], dec[12001];
    static char b64[16004], esc[48100];

    ck_assert_int_eq(RAND_bytes(raw, sizeof(raw)), 1);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i], len = 0, k = 0;
        int chars = EVP_EncodeBlock((unsigned char *)b64, raw, (int)n);

        ck_assert_int_gt(chars, 0);
        ck_assert_int_eq(ocsp_get_decode(b64, dec, n, &len), ST_OK);
        ck_assert_uint_eq(len, n);
        ck_assert_mem_eq(dec, raw, n);
        ck_assert_int_eq(ocsp_get_decode(b64, dec, n - 1 > 0 ? n - 1 : 1, &len),
                         n > 1 ? ST_INVALID : ST_OK);
        /* every character escaped: a path three times as long, the same bytes */
        for (int c = 0; c < chars; c++)
            k += (size_t)snprintf(esc + k, sizeof(esc) - k, "%%%02X", (unsigned char)b64[c]);
        len = 0;
        ck_assert_int_eq(ocsp_get_decode(esc, dec, sizeof(dec), &len), ST_OK);
        ck_assert_uint_eq(len, n);
        ck_assert_mem_eq(dec, raw, n);
        /* without its padding */
        while (chars > 0 && b64[chars - 1] == '=')
            b64[--chars] = '\0';
        ck_assert_int_eq(ocsp_get_decode(b64, dec, n, &len), ST_OK);
        ck_assert_uint_eq(len, n);
        ck_assert_mem_eq(dec, raw, n);
    }
}
END_TEST

/* A whole request through GET: base64 of the DER, escaped as `openssl ocsp` does. */
START_TEST(test_get_request_round_trip)
{
    size_t len, dlen = 0;
    uint8_t *der = good_der(&len), dec[OCSP_REQ_MAX];
    char *b64 = malloc(len * 2 + 4), *esc = malloc(len * 6 + 8);

    ck_assert_ptr_nonnull(b64);
    ck_assert_ptr_nonnull(esc);
    ck_assert_int_gt(EVP_EncodeBlock((unsigned char *)b64, der, (int)len), 0);
    escape(b64, '=', "%3D", esc, len * 6 + 8);
    ck_assert_int_eq(ocsp_get_decode(esc, dec, sizeof(dec), &dlen), ST_OK);
    ck_assert_uint_eq(dlen, len);
    ck_assert_mem_eq(dec, der, len);
    ck_assert_ok(parse(dec, dlen));
    ck_assert(out.has_nonce);
    free(esc);
    free(b64);
    OPENSSL_free(der);
}
END_TEST

/* hex into a parse of the full parser */
static int
parse_hex(const char *hex)
{
    uint8_t der[512];
    size_t n = strlen(hex) / 2;

    ck_assert(n <= sizeof(der) && hex_decode(der, n, hex, strlen(hex)));
    return ocsp_request_parse(der, n, &out, &why);
}

#define REQ_CERTID_HEX                                                                             \
    "303a300906052b0e03021a05000414111111111111111111111111111111111111111104142222222222222222"   \
    "222222222222222222222222020105"

/* An extension's critical BOOLEAN in DER is absent (FALSE is the DEFAULT) or 01 01 ff; an
 * explicit FALSE or a TRUE other than ff is BER, which OpenSSL 3.0 re-encodes as it read it,
 * so the re-encode check cannot see it (review of the nonce fast path, finding 2): in
 * requestExtensions (a nonce) and in singleRequestExtensions (an unknown extension) */
START_TEST(test_extension_boolean_der)
{
    static const char *const ber[] = {
        "305b3059303e303c" REQ_CERTID_HEX "a2173015301306092b060105050730010201010004030401aa",
        "305b3059303e303c" REQ_CERTID_HEX "a2173015301306092b060105050730010201010104030401aa",
        "305a305830563054" REQ_CERTID_HEX "a0163014301206092b06010401868d1f0701010004020500",
        "305a305830563054" REQ_CERTID_HEX "a0163014301206092b06010401868d1f0701010104020500"};

    for (size_t i = 0; i < sizeof(ber) / sizeof(ber[0]); i++)
        ck_assert_malformed(parse_hex(ber[i]));
    /* the DER forms of the same: a critical nonce, an unknown extension not critical */
    ck_assert_ok(parse_hex("305b3059303e303c" REQ_CERTID_HEX
                           "a2173015301306092b06010505073001020101ff04030401aa"));
    ck_assert(out.has_nonce);
    ck_assert_ok(
        parse_hex("3057305530533051" REQ_CERTID_HEX "a0133011300f06092b06010401868d1f0704020500"));
    ck_assert_uint_eq(out.n, 1);
}
END_TEST

static Suite *
ocsp_request_suite(void)
{
    Suite *s = suite_create("ocsp_request");
    TCase *ok = tcase_create("accepted");
    TCase *nonce = tcase_create("nonce");
    TCase *bad = tcase_create("refused");
    TCase *get = tcase_create("get");

    tcase_add_unchecked_fixture(ok, pki_setup, pki_teardown);
    tcase_add_test(ok, test_single_sha1);
    tcase_add_test(ok, test_mixed_hashes);
    tcase_add_test(ok, test_sixteen_certids);
    tcase_add_test(ok, test_unknown_hash_oid);
    tcase_add_test(ok, test_serials);
    tcase_add_test(ok, test_signed_request);
    suite_add_tcase(s, ok);

    tcase_add_unchecked_fixture(nonce, pki_setup, pki_teardown);
    tcase_add_test(nonce, test_nonce_lengths_ok);
    tcase_add_test(nonce, test_nonce_empty);
    tcase_add_test(nonce, test_nonce_too_long);
    tcase_add_test(nonce, test_nonce_legacy);
    tcase_add_test(nonce, test_nonce_critical_and_repeated);
    tcase_add_test(nonce, test_unknown_extensions);
    suite_add_tcase(s, nonce);

    tcase_add_unchecked_fixture(bad, pki_setup, pki_teardown);
    tcase_set_timeout(bad, 20);
    tcase_add_test(bad, test_certid_count);
    tcase_add_test(bad, test_hash_length_mismatch);
    tcase_add_test(bad, test_certid_hash_params);
    tcase_add_test(bad, test_version);
    tcase_add_test(bad, test_certid_too_large);
    tcase_add_test(bad, test_truncated_and_trailing);
    tcase_add_test(bad, test_ber_indefinite);
    tcase_add_test(bad, test_empty_and_random);
    tcase_add_test(bad, test_too_large);
    tcase_add_test(bad, test_many_extensions);
    tcase_add_test(bad, test_extension_boolean_der);
    suite_add_tcase(s, bad);

    tcase_add_unchecked_fixture(get, pki_setup, pki_teardown);
    tcase_add_test(get, test_get_decode);
    tcase_add_test(get, test_get_decode_bad);
    tcase_add_test(get, test_get_decode_lengths);
    tcase_add_test(get, test_get_request_round_trip);
    suite_add_tcase(s, get);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ocsp_request_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
