/*
 * check_ocsp_request_fast: unit suite of ocsp/ocsp_request_fast, the fast path of request
 * parsing (issue 10 item 2): the one-CertID requests without a nonce that clients send for
 * SHA-1 and SHA-256 CertIDs are taken by it with the same fields as the full parser
 * (ocsp_request_parse) gives; everything else is declined; and over every one-byte change,
 * truncation and extension of such requests, whatever it takes the full parser takes with the
 * same CertID (it never answers what the full parser refuses: OCSP-03).
 */
#include "ocsp/ocsp_request.h"
#include "ocsp/ocsp_request_fast.h"

#include <check.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

/* A DER OCSPRequest for one CertID (md, a made-up issuer, serial), with a nonce when asked. */
static size_t
request_of(const EVP_MD *md, long long serial_value, const char *serial_hex, bool nonce,
           uint8_t *out, size_t cap)
{
    X509_NAME *name = X509_NAME_new();
    ASN1_BIT_STRING *key = ASN1_BIT_STRING_new();
    ASN1_INTEGER *serial = NULL;
    BIGNUM *bn = NULL;
    OCSP_CERTID *cid;
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    unsigned char keybytes[65], *p = out;
    int n;

    memset(keybytes, 0x04, sizeof(keybytes));
    ck_assert(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fast CA",
                                         -1, -1, 0) == 1);
    ck_assert(ASN1_BIT_STRING_set(key, keybytes, sizeof(keybytes)) == 1);
    if (serial_hex != NULL) {
        ck_assert(BN_hex2bn(&bn, serial_hex) > 0);
        serial = BN_to_ASN1_INTEGER(bn, NULL);
        BN_free(bn);
    } else {
        serial = ASN1_INTEGER_new();
        ck_assert(ASN1_INTEGER_set_int64(serial, serial_value) == 1);
    }
    cid = OCSP_cert_id_new(md, name, key, serial);
    ck_assert_ptr_nonnull(cid);
    ck_assert_ptr_nonnull(OCSP_request_add0_id(req, cid));
    if (nonce)
        ck_assert(OCSP_request_add1_nonce(req, NULL, 16) == 1);
    n = i2d_OCSP_REQUEST(req, NULL);
    ck_assert(n > 0 && (size_t)n <= cap);
    ck_assert_int_eq(i2d_OCSP_REQUEST(req, &p), n);
    OCSP_REQUEST_free(req);
    ASN1_INTEGER_free(serial);
    ASN1_BIT_STRING_free(key);
    X509_NAME_free(name);
    return (size_t)n;
}

static bool
same_certid(const struct ocsp_certid *a, const struct ocsp_certid *b)
{
    return a->der_len == b->der_len && memcmp(a->der, b->der, a->der_len) == 0 &&
           a->hash == b->hash && a->hash_len == b->hash_len &&
           memcmp(a->name_hash, b->name_hash, a->hash_len) == 0 &&
           memcmp(a->key_hash, b->key_hash, a->hash_len) == 0 && a->serial_len == b->serial_len &&
           memcmp(a->serial, b->serial, a->serial_len) == 0;
}

static struct ocsp_request full;

/* the property: fast => full, with the same CertID. Returns whether fast took it. */
static bool
check_agree(const uint8_t *der, size_t len)
{
    struct ocsp_certid id;
    const char *why = NULL;

    if (!ocsp_request_fast(der, len, &id))
        return false;
    ck_assert_msg(ocsp_request_parse(der, len, &full, &why) == 0,
                  "fast path took what the full parser refuses: %s", why);
    ck_assert_uint_eq(full.n, 1);
    ck_assert(!full.has_nonce);
    ck_assert(same_certid(&id, &full.ids[0]));
    return true;
}

START_TEST(test_common_requests_taken)
{
    static const char *const serials[] = {
        "01",
        "7F",
        "80",
        "FF",
        "0100",
        "4ABCDEF0123456789ABCDEF012345678",
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", /* 20 octets, top bit */
        "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"};
    uint8_t der[512];
    size_t len;

    for (size_t i = 0; i < sizeof(serials) / sizeof(serials[0]); i++) {
        len = request_of(EVP_sha1(), 0, serials[i], false, der, sizeof(der));
        ck_assert_msg(check_agree(der, len), "SHA-1 serial %s declined", serials[i]);
        len = request_of(EVP_sha256(), 0, serials[i], false, der, sizeof(der));
        ck_assert_msg(check_agree(der, len), "SHA-256 serial %s declined", serials[i]);
    }
}
END_TEST

START_TEST(test_others_declined)
{
    uint8_t der[512];
    struct ocsp_certid id;
    size_t len;

    /* a nonce, a hash the store does not pre-sign, serial zero: the full parser's business */
    len = request_of(EVP_sha1(), 5, NULL, true, der, sizeof(der));
    ck_assert(!ocsp_request_fast(der, len, &id));
    len = request_of(EVP_sha384(), 5, NULL, false, der, sizeof(der));
    ck_assert(!ocsp_request_fast(der, len, &id));
    len = request_of(EVP_sha1(), 0, NULL, false, der, sizeof(der));
    ck_assert(!ocsp_request_fast(der, len, &id));
    /* negative serial */
    len = request_of(EVP_sha1(), -5, NULL, false, der, sizeof(der));
    ck_assert(!ocsp_request_fast(der, len, &id));
    ck_assert(!ocsp_request_fast(NULL, 0, &id));
    ck_assert(!ocsp_request_fast(der, 0, &id));
}
END_TEST

/* every one-byte change, truncation and extension of common requests: fast => full, same */
START_TEST(test_mutations_agree)
{
    static const uint8_t deltas[] = {0x01, 0x80, 0x7f, 0xff};
    uint8_t der[512], m[520];
    size_t len, taken = 0;
    const EVP_MD *mds[2] = {EVP_sha1(), EVP_sha256()};

    for (int k = 0; k < 2; k++) {
        len = request_of(mds[k], 0, "00C0FFEE", false, der, sizeof(der));
        for (size_t i = 0; i < len; i++)
            for (size_t d = 0; d < sizeof(deltas); d++) {
                memcpy(m, der, len);
                m[i] ^= deltas[d];
                taken += check_agree(m, len);
                m[i] = 0x00;
                taken += check_agree(m, len);
            }
        for (size_t n = 0; n < len; n++)
            taken += check_agree(der, n);
        memcpy(m, der, len);
        m[len] = 0x00;
        m[len + 1] = 0x00;
        taken += check_agree(m, len + 2);
    }
    /* some changes keep a valid request (a hash byte, a serial byte): those are taken */
    ck_assert_uint_gt(taken, 50);
}
END_TEST

/* random bytes with a request-like start */
START_TEST(test_random_agree)
{
    uint8_t der[512], m[512];
    size_t len = request_of(EVP_sha1(), 0, "1234", false, der, sizeof(der));

    for (int i = 0; i < 20000; i++) {
        size_t keep = (size_t)(i % (int)len);

        memcpy(m, der, len);
        ck_assert(RAND_bytes(m + keep, (int)(len - keep)) == 1);
        check_agree(m, len);
    }
}
END_TEST

static Suite *
fast_suite(void)
{
    Suite *s = suite_create("ocsp_request_fast");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_common_requests_taken);
    tcase_add_test(tc, test_others_declined);
    tcase_add_test(tc, test_mutations_agree);
    tcase_add_test(tc, test_random_agree);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(fast_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
