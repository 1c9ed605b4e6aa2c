/*
 * check_tsa_request: unit suite of tsa/tsa_request, the TimeStampReq checks of RFC 3161
 * §2.4.1 applied before anything is signed (STANDARDS TSP-02, TSP-04..TSP-07, TSP-09, TSP-11,
 * ALG-01). Requests are built with OpenSSL's TS_REQ API (which lets us set the odd fields a
 * hostile client would: version 2, extensions, a 31-byte imprint, weak hashes), and by hand
 * for the encodings OpenSSL never writes (BER indefinite length, non-minimal lengths). Each
 * accepted request must echo the exact DER of its parts.
 */
#include "common/status.h"
#include "tsa/tsa_request.h"

#include <check.h>
#include <openssl/bn.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/ts.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int hashes[] = {NID_sha256, NID_sha384, NID_sha512};
#define N_HASHES (sizeof(hashes) / sizeof(hashes[0]))

static struct tsa_request out;
static const char *why;

/* Which optional parts a test request gets. */
struct req_spec {
    int version;          /* 0 -> 1 */
    int hash_nid;         /* 0 -> sha256 */
    int param_type;       /* V_ASN1_UNDEF (absent) or V_ASN1_NULL; 0 -> absent */
    size_t imprint_len;   /* 0 -> the hash's length */
    uint8_t imprint_byte; /* fill byte */
    const char *policy;   /* dotted, or NULL */
    const uint8_t *nonce; /* big-endian magnitude, or NULL */
    size_t nonce_len;
    int cert_req;
    bool extension; /* add one non-critical extension */
};

static TS_REQ *
build_req(const struct req_spec *sp)
{
    TS_REQ *req = TS_REQ_new();
    TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
    X509_ALGOR *alg = X509_ALGOR_new();
    int nid = sp->hash_nid ? sp->hash_nid : NID_sha256;
    size_t ilen =
        sp->imprint_len ? sp->imprint_len : (size_t)EVP_MD_get_size(EVP_get_digestbynid(nid));
    uint8_t h[128];

    ck_assert_ptr_nonnull(req);
    ck_assert_ptr_nonnull(mi);
    ck_assert_ptr_nonnull(alg);
    ck_assert_uint_le(ilen, sizeof(h));
    memset(h, sp->imprint_byte, ilen);
    ck_assert_int_eq(TS_REQ_set_version(req, sp->version ? sp->version : 1), 1);
    ck_assert_int_eq(X509_ALGOR_set0(alg, OBJ_nid2obj(nid),
                                     sp->param_type ? sp->param_type : V_ASN1_UNDEF, NULL),
                     1);
    ck_assert_int_eq(TS_MSG_IMPRINT_set_algo(mi, alg), 1);
    ck_assert_int_eq(TS_MSG_IMPRINT_set_msg(mi, h, (int)ilen), 1);
    ck_assert_int_eq(TS_REQ_set_msg_imprint(req, mi), 1);
    if (sp->policy != NULL) {
        ASN1_OBJECT *o = OBJ_txt2obj(sp->policy, 1);

        ck_assert_ptr_nonnull(o);
        ck_assert_int_eq(TS_REQ_set_policy_id(req, o), 1);
        ASN1_OBJECT_free(o);
    }
    if (sp->nonce != NULL) {
        BIGNUM *bn = BN_bin2bn(sp->nonce, (int)sp->nonce_len, NULL);
        ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, NULL);

        ck_assert_ptr_nonnull(ai);
        ck_assert_int_eq(TS_REQ_set_nonce(req, ai), 1);
        ASN1_INTEGER_free(ai);
        BN_free(bn);
    }
    ck_assert_int_eq(TS_REQ_set_cert_req(req, sp->cert_req), 1);
    if (sp->extension) {
        X509_EXTENSION *ext =
            X509V3_EXT_conf_nid(NULL, NULL, NID_subject_key_identifier, "01020304");

        ck_assert_ptr_nonnull(ext);
        ck_assert_int_eq(TS_REQ_add_ext(req, ext, -1), 1);
        X509_EXTENSION_free(ext);
    }
    X509_ALGOR_free(alg);
    TS_MSG_IMPRINT_free(mi);
    return req;
}

/* DER of a request built from spec; *len set; caller frees with OPENSSL_free. */
static uint8_t *
build_der(const struct req_spec *sp, size_t *len)
{
    TS_REQ *req = build_req(sp);
    unsigned char *der = NULL;
    int n = i2d_TS_REQ(req, &der);

    ck_assert_int_gt(n, 0);
    TS_REQ_free(req);
    *len = (size_t)n;
    return der;
}

static enum tsa_fail
parse(const uint8_t *der, size_t len)
{
    why = "untouched";
    return tsa_request_parse(der, len, hashes, N_HASHES, &out, &why);
}

static enum tsa_fail
parse_spec(const struct req_spec *sp)
{
    size_t len;
    uint8_t *der = build_der(sp, &len);
    enum tsa_fail f = parse(der, len);

    OPENSSL_free(der);
    return f;
}

#define ck_assert_fail(f, want)                                                                    \
    do {                                                                                           \
        enum tsa_fail f_ = (f);                                                                    \
        ck_assert_msg(f_ == (want), "failure %d, want %d (%s)", (int)f_, (int)(want),              \
                      why ? why : "no reason");                                                    \
    } while (0)

/* ---- accepted requests and what they echo ---- */

static void
check_valid_hash(int nid, size_t hlen, uint8_t last_oid_octet)
{
    struct req_spec sp = {.hash_nid = nid, .imprint_byte = 0xa5};
    /* MessageImprint with parameters absent: 30 LL 30 0b 06 09 <OID> 04 LL <hash> */
    uint8_t want[8 + 13 + 64];
    size_t wl = 0;

    want[wl++] = 0x30;
    want[wl++] = (uint8_t)(13 + 2 + hlen);
    memcpy(
        want + wl,
        ((const uint8_t[]){0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02}),
        12);
    wl += 12;
    want[wl++] = last_oid_octet;
    want[wl++] = 0x04;
    want[wl++] = (uint8_t)hlen;
    memset(want + wl, 0xa5, hlen);
    wl += hlen;

    ck_assert_fail(parse_spec(&sp), TSA_FAIL_NONE);
    ck_assert_ptr_null(why);
    ck_assert_int_eq(out.hash_nid, nid);
    ck_assert_uint_eq(out.imprint_len, wl);
    ck_assert_mem_eq(out.imprint, want, wl);
    ck_assert(!out.has_nonce);
    ck_assert(!out.has_policy);
    ck_assert(!out.cert_req);
}

START_TEST(test_valid_sha2)
{
    /* TSP-05: SHA-256/384/512 granted */
    check_valid_hash(NID_sha256, 32, 0x01);
    check_valid_hash(NID_sha384, 48, 0x02);
    check_valid_hash(NID_sha512, 64, 0x03);
}
END_TEST

START_TEST(test_echo_parts)
{
    /* every echoed field is the DER of the request's own part */
    static const uint8_t nonce[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    struct req_spec sp = {.policy = "1.3.6.1.4.1.4146.2.3",
                          .nonce = nonce,
                          .nonce_len = sizeof(nonce),
                          .cert_req = 1,
                          .imprint_byte = 7};
    TS_REQ *req = build_req(&sp);
    unsigned char *der = NULL, *p;
    int n = i2d_TS_REQ(req, &der);
    uint8_t buf[256];
    int bl;

    ck_assert_int_gt(n, 0);
    ck_assert_fail(parse(der, (size_t)n), TSA_FAIL_NONE);
    p = buf;
    bl = i2d_TS_MSG_IMPRINT(TS_REQ_get_msg_imprint(req), &p);
    ck_assert_uint_eq(out.imprint_len, (size_t)bl);
    ck_assert_mem_eq(out.imprint, buf, (size_t)bl);
    p = buf;
    bl = i2d_ASN1_OBJECT(TS_REQ_get_policy_id(req), &p);
    ck_assert(out.has_policy);
    ck_assert_uint_eq(out.policy_len, (size_t)bl);
    ck_assert_mem_eq(out.policy, buf, (size_t)bl);
    ck_assert_uint_eq(out.policy_len, 11);
    ck_assert_mem_eq(
        out.policy,
        ((const uint8_t[]){0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xa0, 0x32, 0x02, 0x03}), 11);
    p = buf;
    bl = i2d_ASN1_INTEGER(TS_REQ_get_nonce(req), &p);
    ck_assert(out.has_nonce);
    ck_assert_uint_eq(out.nonce_len, (size_t)bl);
    ck_assert_mem_eq(out.nonce, buf, (size_t)bl);
    ck_assert_mem_eq(
        out.nonce, ((const uint8_t[]){0x02, 0x08, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}),
        10);
    ck_assert(out.cert_req);
    OPENSSL_free(der);
    TS_REQ_free(req);
}
END_TEST

START_TEST(test_cert_req)
{
    /* TSP-10 input: certReq true / false (absent, DEFAULT FALSE) */
    struct req_spec sp = {.cert_req = 1};

    ck_assert_fail(parse_spec(&sp), TSA_FAIL_NONE);
    ck_assert(out.cert_req);
    sp.cert_req = 0;
    ck_assert_fail(parse_spec(&sp), TSA_FAIL_NONE);
    ck_assert(!out.cert_req);
}
END_TEST

START_TEST(test_cert_req_explicit_false)
{
    /* certReq FALSE written out is the DEFAULT encoded: not DER (X.690 §11.5) */
    struct req_spec sp = {0};
    size_t len;
    uint8_t *der = build_der(&sp, &len);
    uint8_t *bad = malloc(len + 3);

    ck_assert_ptr_nonnull(bad);
    ck_assert_uint_lt(len, 126);
    memcpy(bad, der, len);
    bad[1] = (uint8_t)(der[1] + 3);
    bad[len] = 0x01;
    bad[len + 1] = 0x01;
    bad[len + 2] = 0x00;
    ck_assert_fail(parse(bad, len + 3), TSA_FAIL_BAD_DATA_FORMAT);
    /* the same with TRUE is DER and accepted */
    bad[len + 2] = 0xff;
    ck_assert_fail(parse(bad, len + 3), TSA_FAIL_NONE);
    ck_assert(out.cert_req);
    free(bad);
    OPENSSL_free(der);
}
END_TEST

/* ---- TSP-05 / ALG-01: hash allow-list ---- */

START_TEST(test_weak_hashes)
{
    static const int weak[] = {NID_md5, NID_sha1, NID_sha224, NID_ripemd160, NID_sha3_256};
    struct req_spec sp = {0};

    for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
        sp.hash_nid = weak[i];
        ck_assert_fail(parse_spec(&sp), TSA_FAIL_BAD_ALG);
        ck_assert_ptr_nonnull(why);
    }
}
END_TEST

START_TEST(test_unknown_hash_oid)
{
    /* an OID that is no hash at all */
    struct req_spec sp = {.hash_nid = NID_rsaEncryption, .imprint_len = 32};

    ck_assert_fail(parse_spec(&sp), TSA_FAIL_BAD_ALG);
}
END_TEST

START_TEST(test_allow_list_is_the_callers)
{
    /* with only SHA-512 configured, SHA-256 is refused */
    static const int only512[] = {NID_sha512};
    struct req_spec sp = {0};
    size_t len;
    uint8_t *der = build_der(&sp, &len);

    ck_assert_fail(tsa_request_parse(der, len, only512, 1, &out, &why), TSA_FAIL_BAD_ALG);
    ck_assert_fail(tsa_request_parse(der, len, hashes, N_HASHES, &out, &why), TSA_FAIL_NONE);
    OPENSSL_free(der);
}
END_TEST

START_TEST(test_hash_params)
{
    /* TSP-07: SHA-256 with NULL parameters and with parameters absent are both accepted and
     * echoed byte for byte */
    struct req_spec sp = {.param_type = V_ASN1_NULL, .imprint_byte = 0x11};
    static const uint8_t with_null[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                        0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    static const uint8_t absent[] = {0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48,
                                     0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x04, 0x20};
    uint8_t h[32];

    memset(h, 0x11, sizeof(h));
    ck_assert_fail(parse_spec(&sp), TSA_FAIL_NONE);
    ck_assert_uint_eq(out.imprint_len, sizeof(with_null) + 32);
    ck_assert_mem_eq(out.imprint, with_null, sizeof(with_null));
    ck_assert_mem_eq(out.imprint + sizeof(with_null), h, 32);

    sp.param_type = V_ASN1_UNDEF;
    ck_assert_fail(parse_spec(&sp), TSA_FAIL_NONE);
    ck_assert_uint_eq(out.imprint_len, sizeof(absent) + 32);
    ck_assert_mem_eq(out.imprint, absent, sizeof(absent));
    ck_assert_mem_eq(out.imprint + sizeof(absent), h, 32);
}
END_TEST

START_TEST(test_hash_params_other)
{
    /* parameters other than NULL/absent on a SHA-2 OID are refused */
    struct req_spec sp = {0};
    TS_REQ *req = build_req(&sp);
    X509_ALGOR *alg = TS_MSG_IMPRINT_get_algo(TS_REQ_get_msg_imprint(req));
    ASN1_INTEGER *i = ASN1_INTEGER_new();
    unsigned char *der = NULL;
    int n;

    ck_assert_int_eq(ASN1_INTEGER_set(i, 5), 1);
    ck_assert_int_eq(X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_INTEGER, i), 1);
    n = i2d_TS_REQ(req, &der);
    ck_assert_int_gt(n, 0);
    ck_assert_fail(parse(der, (size_t)n), TSA_FAIL_BAD_ALG);
    OPENSSL_free(der);
    TS_REQ_free(req);
}
END_TEST

/* ---- TSP-06: imprint length ---- */

START_TEST(test_imprint_length)
{
    struct req_spec sp = {.imprint_len = 31};

    ck_assert_fail(parse_spec(&sp), TSA_FAIL_BAD_DATA_FORMAT);
    sp.imprint_len = 33;
    ck_assert_fail(parse_spec(&sp), TSA_FAIL_BAD_DATA_FORMAT);
    sp.hash_nid = NID_sha512;
    sp.imprint_len = 32;
    ck_assert_fail(parse_spec(&sp), TSA_FAIL_BAD_DATA_FORMAT);
    /* an all-zero imprint of the right length is not inspected further */
    sp.hash_nid = NID_sha256;
    sp.imprint_len = 32;
    sp.imprint_byte = 0;
    ck_assert_fail(parse_spec(&sp), TSA_FAIL_NONE);
    ck_assert_uint_eq(out.imprint_len, 2 + 13 + 2 + 32);
}
END_TEST

/* ---- TSP-04 / TSP-11 ---- */

START_TEST(test_version)
{
    struct req_spec sp = {.version = 2};

    ck_assert_fail(parse_spec(&sp), TSA_FAIL_BAD_DATA_FORMAT);
    sp.version = 3;
    ck_assert_fail(parse_spec(&sp), TSA_FAIL_BAD_DATA_FORMAT);
}
END_TEST

START_TEST(test_extension)
{
    struct req_spec sp = {.extension = true};

    ck_assert_fail(parse_spec(&sp), TSA_FAIL_UNACCEPTED_EXTENSION);
    ck_assert_ptr_nonnull(why);
}
END_TEST

/* ---- TSP-09: nonce ---- */

static void
check_nonce(size_t n, uint8_t first)
{
    uint8_t nonce[160];
    struct req_spec sp = {0};
    size_t cl = n + (first & 0x80 ? 1 : 0), hl = cl < 128 ? 2 : 3;
    uint8_t *c;

    ck_assert_uint_le(n, sizeof(nonce));
    ck_assert_int_eq(RAND_bytes(nonce, (int)n), 1);
    nonce[0] = first;
    sp.nonce = nonce;
    sp.nonce_len = n;
    ck_assert_fail(parse_spec(&sp), TSA_FAIL_NONE);
    ck_assert(out.has_nonce);
    ck_assert_uint_eq(out.nonce_len, hl + cl);
    ck_assert_uint_eq(out.nonce[0], 0x02);
    c = out.nonce + hl;
    if (first & 0x80) {
        ck_assert_uint_eq(c[0], 0x00); /* stays positive */
        c++;
    }
    ck_assert_mem_eq(c, nonce, n);
}

START_TEST(test_nonce_sizes)
{
    check_nonce(8, 0x80);
    check_nonce(8, 0x7f);
    check_nonce(20, 0xff); /* 160-bit */
    check_nonce(32, 0x9a);
    check_nonce(1, 0x05);
    check_nonce(127, 0x01);
    /* 128 octets with the top bit set: 129 content octets, 132 in all, fits exactly */
    check_nonce(128, 0xff);
}
END_TEST

START_TEST(test_nonce_too_long)
{
    uint8_t nonce[129];
    struct req_spec sp = {.nonce = nonce, .nonce_len = sizeof(nonce)};

    memset(nonce, 0x42, sizeof(nonce));
    ck_assert_fail(parse_spec(&sp), TSA_FAIL_BAD_REQUEST);
}
END_TEST

/* ---- TSP-08 input: policy ---- */

START_TEST(test_policy_too_long)
{
    /* an OID longer than the echo buffer */
    char oid[400];
    size_t n = (size_t)snprintf(oid, sizeof(oid), "1.2");
    struct req_spec sp = {0};

    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(oid + n, sizeof(oid) - n, ".%d", 100000 + i);
    sp.policy = oid;
    ck_assert_fail(parse_spec(&sp), TSA_FAIL_UNACCEPTED_POLICY);
}
END_TEST

/* ---- TSP-02: malformed input ---- */

START_TEST(test_empty_and_random)
{
    uint8_t junk[512];

    ck_assert_fail(parse(NULL, 0), TSA_FAIL_BAD_DATA_FORMAT);
    ck_assert_fail(parse((const uint8_t *)"", 0), TSA_FAIL_BAD_DATA_FORMAT);
    ck_assert_ptr_nonnull(why);
    for (int i = 0; i < 200; i++) {
        size_t n = 1 + (size_t)(i * 37) % sizeof(junk);

        ck_assert_int_eq(RAND_bytes(junk, (int)n), 1);
        ck_assert_fail(parse(junk, n), TSA_FAIL_BAD_DATA_FORMAT);
    }
    /* random bytes behind a plausible SEQUENCE header */
    junk[0] = 0x30;
    junk[1] = 0x40;
    ck_assert_fail(parse(junk, 0x42), TSA_FAIL_BAD_DATA_FORMAT);
}
END_TEST

START_TEST(test_truncated)
{
    static const uint8_t nonce[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct req_spec sp = {.policy = "1.2.3.4", .nonce = nonce, .nonce_len = 8, .cert_req = 1};
    size_t len;
    uint8_t *der = build_der(&sp, &len);

    ck_assert_fail(parse(der, len), TSA_FAIL_NONE);
    for (size_t n = 1; n < len; n++)
        ck_assert_fail(parse(der, n), TSA_FAIL_BAD_DATA_FORMAT);
    OPENSSL_free(der);
}
END_TEST

START_TEST(test_trailing_bytes)
{
    struct req_spec sp = {0};
    size_t len;
    uint8_t *der = build_der(&sp, &len);
    uint8_t *more = malloc(len + 2);

    ck_assert_ptr_nonnull(more);
    memcpy(more, der, len);
    more[len] = 0x00;
    more[len + 1] = 0x00;
    ck_assert_fail(parse(more, len + 1), TSA_FAIL_BAD_DATA_FORMAT);
    ck_assert_fail(parse(more, len + 2), TSA_FAIL_BAD_DATA_FORMAT);
    /* a second request behind the first */
    free(more);
    more = malloc(2 * len);
    ck_assert_ptr_nonnull(more);
    memcpy(more, der, len);
    memcpy(more + len, der, len);
    ck_assert_fail(parse(more, 2 * len), TSA_FAIL_BAD_DATA_FORMAT);
    free(more);
    OPENSSL_free(der);
}
END_TEST

START_TEST(test_ber_indefinite)
{
    /* the outer SEQUENCE rewritten as 30 80 <content> 00 00: a valid BER encoding of a valid
     * request, which DER forbids (X.690 §10.1) */
    struct req_spec sp = {.cert_req = 1};
    size_t len;
    uint8_t *der = build_der(&sp, &len);
    uint8_t *ber = malloc(len + 2);
    size_t content = len - 2;

    ck_assert_ptr_nonnull(ber);
    ck_assert_uint_lt(der[1], 0x80); /* short form: content starts at 2 */
    ber[0] = 0x30;
    ber[1] = 0x80;
    memcpy(ber + 2, der + 2, content);
    ber[2 + content] = 0x00;
    ber[3 + content] = 0x00;
    {
        /* OpenSSL itself takes it: the refusal is ours */
        const unsigned char *p = ber;
        TS_REQ *r = d2i_TS_REQ(NULL, &p, (long)(len + 2));

        ck_assert_ptr_nonnull(r);
        TS_REQ_free(r);
    }
    ck_assert_fail(parse(ber, len + 2), TSA_FAIL_BAD_DATA_FORMAT);
    free(ber);
    OPENSSL_free(der);
}
END_TEST

START_TEST(test_non_minimal_length)
{
    /* the outer length in long form (30 81 LL) although LL < 128 */
    struct req_spec sp = {0};
    size_t len;
    uint8_t *der = build_der(&sp, &len);
    uint8_t *nm = malloc(len + 1);

    ck_assert_ptr_nonnull(nm);
    ck_assert_uint_lt(der[1], 0x80);
    nm[0] = 0x30;
    nm[1] = 0x81;
    nm[2] = der[1];
    memcpy(nm + 3, der + 2, len - 2);
    ck_assert_fail(parse(nm, len + 1), TSA_FAIL_BAD_DATA_FORMAT);
    /* and an inner one: the version INTEGER 02 01 01 as 02 81 01 01 */
    ck_assert_mem_eq(der + 2, ((const uint8_t[]){0x02, 0x01, 0x01}), 3);
    nm[0] = 0x30;
    nm[1] = (uint8_t)(der[1] + 1);
    nm[2] = 0x02;
    nm[3] = 0x81;
    nm[4] = 0x01;
    nm[5] = 0x01;
    memcpy(nm + 6, der + 5, len - 5);
    ck_assert_fail(parse(nm, len + 1), TSA_FAIL_BAD_DATA_FORMAT);
    free(nm);
    OPENSSL_free(der);
}
END_TEST

START_TEST(test_too_large)
{
    /* bounded before parsing */
    uint8_t *big = calloc(1, TSA_REQ_MAX + 1);

    ck_assert_ptr_nonnull(big);
    big[0] = 0x30;
    big[1] = 0x82;
    big[2] = (uint8_t)((TSA_REQ_MAX - 3) >> 8);
    big[3] = (uint8_t)((TSA_REQ_MAX - 3) & 0xff);
    ck_assert_fail(parse(big, TSA_REQ_MAX + 1), TSA_FAIL_BAD_DATA_FORMAT);
    free(big);
}
END_TEST

START_TEST(test_not_a_request)
{
    /* well-formed DER of something else */
    static const uint8_t seq[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    static const uint8_t null[] = {0x05, 0x00};

    ck_assert_fail(parse(seq, sizeof(seq)), TSA_FAIL_BAD_DATA_FORMAT);
    ck_assert_fail(parse(null, sizeof(null)), TSA_FAIL_BAD_DATA_FORMAT);
}
END_TEST

static Suite *
tsa_request_suite(void)
{
    Suite *s = suite_create("tsa_request");
    TCase *ok = tcase_create("accepted");
    TCase *chk = tcase_create("checks");
    TCase *bad = tcase_create("malformed");

    tcase_add_test(ok, test_valid_sha2);
    tcase_add_test(ok, test_echo_parts);
    tcase_add_test(ok, test_cert_req);
    tcase_add_test(ok, test_cert_req_explicit_false);
    tcase_add_test(ok, test_hash_params);
    tcase_add_test(ok, test_nonce_sizes);
    suite_add_tcase(s, ok);

    tcase_add_test(chk, test_weak_hashes);
    tcase_add_test(chk, test_unknown_hash_oid);
    tcase_add_test(chk, test_allow_list_is_the_callers);
    tcase_add_test(chk, test_hash_params_other);
    tcase_add_test(chk, test_imprint_length);
    tcase_add_test(chk, test_version);
    tcase_add_test(chk, test_extension);
    tcase_add_test(chk, test_nonce_too_long);
    tcase_add_test(chk, test_policy_too_long);
    suite_add_tcase(s, chk);

    tcase_set_timeout(bad, 20);
    tcase_add_test(bad, test_empty_and_random);
    tcase_add_test(bad, test_truncated);
    tcase_add_test(bad, test_trailing_bytes);
    tcase_add_test(bad, test_ber_indefinite);
    tcase_add_test(bad, test_non_minimal_length);
    tcase_add_test(bad, test_too_large);
    tcase_add_test(bad, test_not_a_request);
    suite_add_tcase(s, bad);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(tsa_request_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
