/*
 * check_ocsp_request_fast: unit suite of ocsp/ocsp_request_fast, the fast path of request
 * parsing (issue 10 item 2): the one-CertID requests that clients send for SHA-1 and SHA-256
 * CertIDs, without a nonce or with one (RFC 9654, critical or not), are taken by it with the
 * same fields as the full parser (ocsp_request_parse) gives; everything else is declined (a
 * legacy raw nonce, another extension, a nonce out of bounds); and over every one-byte change,
 * truncation and extension of such requests, whatever it takes the full parser takes with the
 * same CertID and nonce (it never answers what the full parser refuses: OCSP-03, OCSP-17).
 */
#include "common/json.h"
#include "ocsp/ocsp_request.h"
#include "ocsp/ocsp_request_fast.h"

#include <check.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

enum nonce_kind {
    NONCE_NONE,
    NONCE_STD,      /* RFC 9654: extnValue = OCTET STRING { nonce }, not critical */
    NONCE_CRITICAL, /* the same, critical */
    NONCE_RAW,      /* legacy: extnValue = the nonce itself */
    NONCE_PLUS,     /* RFC 9654 nonce and a second, unknown non-critical extension */
};

/* A DER OCSPRequest for one CertID (md, a made-up issuer, serial) and a nonce of nonce_len
 * octets of the given kind. */
static size_t
request_nonce(const EVP_MD *md, long long serial_value, const char *serial_hex,
              enum nonce_kind kind, int nonce_len, uint8_t *out, size_t cap)
{
    X509_NAME *name = X509_NAME_new();
    ASN1_BIT_STRING *key = ASN1_BIT_STRING_new();
    ASN1_INTEGER *serial = NULL;
    BIGNUM *bn = NULL;
    OCSP_CERTID *cid;
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    unsigned char keybytes[65], nonce[300], inner[310], *p = out, *q = inner;
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
    ck_assert(nonce_len >= 0 && (size_t)nonce_len <= sizeof(nonce));
    ck_assert(RAND_bytes(nonce, (int)sizeof(nonce)) == 1);
    nonce[0] = 0x30; /* a raw nonce must not read as one OCTET STRING */
    if (kind == NONCE_STD || kind == NONCE_PLUS)
        ck_assert(OCSP_request_add1_nonce(req, nonce, nonce_len) == 1);
    if (kind == NONCE_CRITICAL || kind == NONCE_RAW) {
        ASN1_OCTET_STRING *v = ASN1_OCTET_STRING_new(), *in = ASN1_OCTET_STRING_new();
        X509_EXTENSION *ext;

        ck_assert(ASN1_OCTET_STRING_set(in, nonce, nonce_len) == 1);
        if (kind == NONCE_CRITICAL)
            ck_assert(ASN1_OCTET_STRING_set(v, inner, i2d_ASN1_OCTET_STRING(in, &q)) == 1);
        else
            ck_assert(ASN1_OCTET_STRING_set(v, nonce, nonce_len) == 1);
        ext = X509_EXTENSION_create_by_NID(NULL, NID_id_pkix_OCSP_Nonce, kind == NONCE_CRITICAL, v);
        ck_assert_ptr_nonnull(ext);
        ck_assert(OCSP_REQUEST_add_ext(req, ext, -1) == 1);
        X509_EXTENSION_free(ext);
        ASN1_OCTET_STRING_free(v);
        ASN1_OCTET_STRING_free(in);
    }
    if (kind == NONCE_PLUS) {
        ASN1_OCTET_STRING *v = ASN1_OCTET_STRING_new();
        ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.4.1.99999.7", 1);
        X509_EXTENSION *ext;

        ck_assert(ASN1_OCTET_STRING_set(v, (const unsigned char *)"\x05\x00", 2) == 1);
        ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, v);
        ck_assert_ptr_nonnull(ext);
        ck_assert(OCSP_REQUEST_add_ext(req, ext, -1) == 1);
        X509_EXTENSION_free(ext);
        ASN1_OBJECT_free(oid);
        ASN1_OCTET_STRING_free(v);
    }
    n = i2d_OCSP_REQUEST(req, NULL);
    ck_assert(n > 0 && (size_t)n <= cap);
    ck_assert_int_eq(i2d_OCSP_REQUEST(req, &p), n);
    OCSP_REQUEST_free(req);
    ASN1_INTEGER_free(serial);
    ASN1_BIT_STRING_free(key);
    X509_NAME_free(name);
    return (size_t)n;
}

/* A DER OCSPRequest for one CertID, with a 16-octet nonce (RFC 9654) when asked. */
static size_t
request_of(const EVP_MD *md, long long serial_value, const char *serial_hex, bool nonce,
           uint8_t *out, size_t cap)
{
    return request_nonce(md, serial_value, serial_hex, nonce ? NONCE_STD : NONCE_NONE, 16, out,
                         cap);
}

static struct ocsp_request fast, full;

/* the property: fast => full, with the same CertID and nonce; declined => nothing filled.
 * Returns whether fast took it. */
static bool
check_agree(const uint8_t *der, size_t len)
{
    const char *why = NULL;

    if (!ocsp_request_fast(der, len, &fast)) {
        ck_assert_uint_eq(fast.n, 0);
        ck_assert(!fast.has_nonce);
        ck_assert_uint_eq(fast.nonce_len, 0);
        ck_assert_uint_eq(fast.nonce_value_len, 0);
        return false;
    }
    ck_assert_msg(ocsp_request_parse(der, len, &full, &why) == 0,
                  "fast path took what the full parser refuses: %s", why);
    ck_assert_uint_eq(full.n, 1);
    ck_assert(ocsp_request_same(&fast, &full));
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
        ck_assert(!fast.has_nonce);
        len = request_of(EVP_sha256(), 0, serials[i], true, der, sizeof(der));
        ck_assert_msg(check_agree(der, len), "SHA-256 serial %s with a nonce declined", serials[i]);
        ck_assert(fast.has_nonce);
        ck_assert_uint_eq(fast.nonce_len, 16);
        ck_assert_uint_eq(fast.nonce_value_len, 18);
    }
}
END_TEST

/* RFC 9654 nonces of every length the full parser takes, critical or not (OCSP-17) */
START_TEST(test_nonce_requests_taken)
{
    static const int lens[] = {1, 2, 16, 32, 127, 128};
    uint8_t der[1024];
    size_t len;

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        len = request_nonce(EVP_sha1(), 77, NULL, NONCE_STD, lens[i], der, sizeof(der));
        ck_assert_msg(check_agree(der, len), "nonce of %d declined", lens[i]);
        ck_assert(fast.has_nonce);
        ck_assert_uint_eq(fast.nonce_len, (size_t)lens[i]);
        len = request_nonce(EVP_sha256(), 77, NULL, NONCE_CRITICAL, lens[i], der, sizeof(der));
        ck_assert_msg(check_agree(der, len), "critical nonce of %d declined", lens[i]);
        ck_assert_uint_eq(fast.nonce_len, (size_t)lens[i]);
    }
}
END_TEST

START_TEST(test_others_declined)
{
    uint8_t der[1024];
    size_t len;
    const char *why;

    /* a hash the store does not pre-sign, serial zero: the full parser's business */
    len = request_of(EVP_sha384(), 5, NULL, false, der, sizeof(der));
    ck_assert(!ocsp_request_fast(der, len, &fast));
    len = request_of(EVP_sha1(), 0, NULL, false, der, sizeof(der));
    ck_assert(!ocsp_request_fast(der, len, &fast));
    /* negative serial */
    len = request_of(EVP_sha1(), -5, NULL, false, der, sizeof(der));
    ck_assert(!ocsp_request_fast(der, len, &fast));
    ck_assert(!ocsp_request_fast(NULL, 0, &fast));
    ck_assert(!ocsp_request_fast(der, 0, &fast));
    /* a legacy raw nonce and a nonce beside another extension: taken by the full parser only */
    len = request_nonce(EVP_sha1(), 5, NULL, NONCE_RAW, 16, der, sizeof(der));
    ck_assert(!ocsp_request_fast(der, len, &fast));
    ck_assert_int_eq(ocsp_request_parse(der, len, &full, &why), 0);
    ck_assert(full.has_nonce);
    len = request_nonce(EVP_sha1(), 5, NULL, NONCE_PLUS, 16, der, sizeof(der));
    ck_assert(!ocsp_request_fast(der, len, &fast));
    ck_assert_int_eq(ocsp_request_parse(der, len, &full, &why), 0);
    ck_assert(full.has_nonce);
    /* nonces the full parser refuses (0 and 129 octets) */
    len = request_nonce(EVP_sha1(), 5, NULL, NONCE_CRITICAL, 0, der, sizeof(der));
    ck_assert(!ocsp_request_fast(der, len, &fast));
    ck_assert_int_ne(ocsp_request_parse(der, len, &full, &why), 0);
    len = request_nonce(EVP_sha1(), 5, NULL, NONCE_STD, 129, der, sizeof(der));
    ck_assert(!ocsp_request_fast(der, len, &fast));
    ck_assert_int_ne(ocsp_request_parse(der, len, &full, &why), 0);
    ck_assert_uint_eq(fast.n, 0);
    ck_assert(!fast.has_nonce);
}
END_TEST

/* hex of a request into der; its length */
static size_t
unhex(const char *hex, uint8_t *der, size_t cap)
{
    size_t n = strlen(hex) / 2;

    ck_assert(n <= cap && hex_decode(der, n, hex, strlen(hex)));
    return n;
}

/* bytes left over after the nonce's extnValue, after its Extensions inside [2], and after [2]
 * in TBSRequest: the full parser refuses each, so the fast path must decline them (review of
 * the nonce fast path: no test held these three checks); and a 5-octet raw nonce whose first
 * octets read as an OCTET STRING shorter than the extnValue, taken by the full parser only */
#define CERTID_HEX                                                                                 \
    "303a300906052b0e03021a05000414111111111111111111111111111111111111111104142222222222222222"   \
    "222222222222222222222222020105"
START_TEST(test_trailing_bytes_declined)
{
    static const char *const refused[] = {
        "305a3058303e303c" CERTID_HEX "a2163014301206092b060105050730010204030401aa0500",
        "305a3058303e303c" CERTID_HEX "a2163012301006092b060105050730010204030401aa0500",
        "305a3058303e303c" CERTID_HEX "a2143012301006092b060105050730010204030401aa0500"};
    uint8_t der[256];
    size_t len;
    const char *why;

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        len = unhex(refused[i], der, sizeof(der));
        ck_assert_msg(!ocsp_request_fast(der, len, &fast), "vector %zu taken", i);
        ck_assert_msg(ocsp_request_parse(der, len, &full, &why) != 0, "vector %zu parsed", i);
    }
    /* the same with nothing left over: taken by both, nonce 0xaa */
    len = unhex("30583056303e303c" CERTID_HEX "a2143012301006092b060105050730010204030401aa", der,
                sizeof(der));
    ck_assert(check_agree(der, len));
    ck_assert_uint_eq(fast.nonce_len, 1);
    ck_assert_uint_eq(fast.nonce_value[2], 0xaa);
    /* raw nonce 04 02 01 aa 00: an OCTET STRING of 2 that does not fill the extnValue */
    len = unhex("305a3058303e303c" CERTID_HEX "a2163014301206092b06010505073001020405040201aa00",
                der, sizeof(der));
    ck_assert(!ocsp_request_fast(der, len, &fast));
    ck_assert_int_eq(ocsp_request_parse(der, len, &full, &why), 0);
    ck_assert_uint_eq(full.nonce_len, 5);
}
END_TEST

/* every one-byte change, truncation and extension of common requests: fast => full, same */
START_TEST(test_mutations_agree)
{
    static const uint8_t deltas[] = {0x01, 0x80, 0x7f, 0xff};
    uint8_t der[512], m[520];
    size_t len, taken = 0;
    const EVP_MD *mds[2] = {EVP_sha1(), EVP_sha256()};

    for (int k = 0; k < 4; k++) {
        len = request_nonce(mds[k % 2], 0, "00C0FFEE",
                            k < 2 ? NONCE_NONE : (k == 2 ? NONCE_STD : NONCE_CRITICAL), 8, der,
                            sizeof(der));
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
    /* some changes keep a valid request (a hash, serial or nonce byte): those are taken */
    ck_assert_uint_gt(taken, 100);
}
END_TEST

/* random bytes with a request-like start */
START_TEST(test_random_agree)
{
    uint8_t der[512], m[512];
    size_t len = request_of(EVP_sha1(), 0, "1234", _i == 1, der, sizeof(der));

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
    tcase_add_test(tc, test_nonce_requests_taken);
    tcase_add_test(tc, test_others_declined);
    tcase_add_test(tc, test_trailing_bytes_declined);
    tcase_add_test(tc, test_mutations_agree);
    tcase_add_loop_test(tc, test_random_agree, 0, 2);
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
