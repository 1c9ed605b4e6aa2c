/*
 * check_ocsp_certid: unit suite of CertID encode and decode (ocsp/ocsp_certid.h; RFC 6960
 * §4.1.1; STANDARDS OCSP-10, OCSP-11): every pre-signed form round-trips through
 * encode -> decode, OpenSSL reads the encoding back to the same parts, and what is not a
 * pre-signed form is refused.
 */
#include "common/status.h"
#include "ocsp/ocsp_certid.h"

#include <check.h>
#include <openssl/ocsp.h>
#include <stdlib.h>
#include <string.h>

static void
hashes_fill(struct ocsp_issuer_hashes *h)
{
    static const size_t lens[4] = {20, 32, 48, 64};

    for (int i = 0; i < 4; i++) {
        h->len[i] = lens[i];
        for (size_t k = 0; k < 64; k++) {
            h->name[i][k] = (uint8_t)(i * 64 + k);
            h->key[i][k] = (uint8_t)(0xff - i * 64 - k);
        }
    }
}

static const struct {
    uint8_t b[OCSP_SERIAL_MAX];
    size_t n;
} serials[] = {
    {{0x01}, 1},
    {{0x00, 0x80}, 2}, /* top bit set: leading zero */
    {{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
     20},
    {{0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 21},
};

START_TEST(test_round_trip)
{
    static const enum ocsp_hash forms[] = {OCSP_HASH_SHA1, OCSP_HASH_SHA256};
    struct ocsp_issuer_hashes h;

    hashes_fill(&h);
    for (size_t f = 0; f < 2; f++)
        for (size_t s = 0; s < sizeof(serials) / sizeof(serials[0]); s++) {
            struct ocsp_certid enc, dec;
            const unsigned char *p;
            OCSP_CERTID *ossl;
            ASN1_OCTET_STRING *nh = NULL, *kh = NULL;
            ASN1_OBJECT *md = NULL;
            ASN1_INTEGER *ser = NULL;
            int i = (int)forms[f] - 1;

            ck_assert_int_eq(ocsp_certid_encode(&h, forms[f], serials[s].b, serials[s].n, &enc),
                             ST_OK);
            ck_assert_int_eq(enc.hash, forms[f]);
            ck_assert_uint_eq(enc.serial_len, serials[s].n);
            ck_assert_int_eq(ocsp_certid_decode(enc.der, enc.der_len, &dec), ST_OK);
            ck_assert_uint_eq(dec.der_len, enc.der_len);
            ck_assert_mem_eq(dec.der, enc.der, enc.der_len);
            ck_assert_int_eq(dec.hash, forms[f]);
            ck_assert_uint_eq(dec.hash_len, h.len[i]);
            ck_assert_mem_eq(dec.name_hash, h.name[i], h.len[i]);
            ck_assert_mem_eq(dec.key_hash, h.key[i], h.len[i]);
            ck_assert_uint_eq(dec.serial_len, serials[s].n);
            ck_assert_mem_eq(dec.serial, serials[s].b, serials[s].n);
            /* OpenSSL reads the same parts back, with the whole input consumed */
            p = enc.der;
            ossl = d2i_OCSP_CERTID(NULL, &p, (long)enc.der_len);
            ck_assert_ptr_nonnull(ossl);
            ck_assert(p == enc.der + enc.der_len);
            ck_assert_int_eq(OCSP_id_get0_info(&nh, &md, &kh, &ser, ossl), 1);
            ck_assert_int_eq(OBJ_obj2nid(md), forms[f] == OCSP_HASH_SHA1 ? NID_sha1 : NID_sha256);
            ck_assert_int_eq(nh->length, (int)h.len[i]);
            ck_assert_mem_eq(nh->data, h.name[i], h.len[i]);
            ck_assert_mem_eq(kh->data, h.key[i], h.len[i]);
            OCSP_CERTID_free(ossl);
        }
}
END_TEST

START_TEST(test_refused)
{
    struct ocsp_issuer_hashes h;
    struct ocsp_certid id;
    uint8_t serial[OCSP_SERIAL_MAX + 1] = {1};

    hashes_fill(&h);
    /* only the pre-signed forms are encoded */
    ck_assert_int_eq(ocsp_certid_encode(&h, OCSP_HASH_SHA384, serial, 1, &id), ST_INVALID);
    ck_assert_int_eq(ocsp_certid_encode(&h, OCSP_HASH_SHA512, serial, 1, &id), ST_INVALID);
    ck_assert_int_eq(ocsp_certid_encode(&h, (enum ocsp_hash)0, serial, 1, &id), ST_INVALID);
    ck_assert_int_eq(ocsp_certid_encode(&h, OCSP_HASH_SHA1, serial, 0, &id), ST_INVALID);
    ck_assert_int_eq(ocsp_certid_encode(&h, OCSP_HASH_SHA1, serial, sizeof(serial), &id),
                     ST_INVALID);
    /* decode: truncated, empty, another hash */
    ck_assert_int_eq(ocsp_certid_encode(&h, OCSP_HASH_SHA256, serial, 1, &id), ST_OK);
    {
        struct ocsp_certid out;
        uint8_t der[OCSP_CERTID_MAX];

        ck_assert_int_eq(ocsp_certid_decode(id.der, id.der_len - 1, &out), ST_INVALID);
        ck_assert_int_eq(ocsp_certid_decode(id.der, 0, &out), ST_INVALID);
        memcpy(der, id.der, id.der_len);
        der[8] ^= 0x01; /* inside the hash OID: not SHA-256 any more */
        ck_assert_int_eq(ocsp_certid_decode(der, id.der_len, &out), ST_INVALID);
    }
}
END_TEST

/* The form byte of a stored answer's key: the hash, with OCSP_FORM_NOPARAMS when the hash
 * AlgorithmIdentifier has no parameters (the two spellings a client may send). */
START_TEST(test_form)
{
    struct ocsp_issuer_hashes h;
    struct ocsp_certid id;
    static const uint8_t serial[] = {0x01, 0x02};
    /* SHA-1, no parameters, serial 01 02 */
    static const uint8_t none[] = {0x30, 0x0b, 0x30, 0x07, 0x06, 0x05, 0x2b, 0x0e,
                                   0x03, 0x02, 0x1a, 0x02, 0x02, 0x01, 0x02};

    hashes_fill(&h);
    ck_assert_int_eq(ocsp_certid_encode(&h, OCSP_HASH_SHA1, serial, 2, &id), ST_OK);
    ck_assert_uint_eq(ocsp_certid_form(&id), OCSP_HASH_SHA1);
    ck_assert_int_eq(ocsp_certid_encode(&h, OCSP_HASH_SHA256, serial, 2, &id), ST_OK);
    ck_assert_uint_eq(ocsp_certid_form(&id), OCSP_HASH_SHA256);
    ck_assert_uint_eq(ocsp_certid_form_der(none, sizeof(none), OCSP_HASH_SHA1),
                      OCSP_HASH_SHA1 | OCSP_FORM_NOPARAMS);
    ck_assert_uint_eq(ocsp_certid_form_der(none, sizeof(none), OCSP_HASH_SHA512),
                      OCSP_HASH_SHA512 | OCSP_FORM_NOPARAMS);
    /* not a CertID, or no hash of ours */
    ck_assert_uint_eq(ocsp_certid_form_der(none, 3, OCSP_HASH_SHA1), 0);
    ck_assert_uint_eq(ocsp_certid_form_der((const uint8_t *)"\x30\x00", 2, OCSP_HASH_SHA1), 0);
    ck_assert_uint_eq(ocsp_certid_form_der(none, sizeof(none), (enum ocsp_hash)0), 0);
    ck_assert_uint_eq(ocsp_certid_form_der(none, sizeof(none), (enum ocsp_hash)5), 0);
}
END_TEST

/* Every form a stored answer can have is encoded as the refresher re-signs it: the form byte
 * read back is the one asked for, and OpenSSL reads the same hash, issuer hashes and serial
 * (the parameters absent with OCSP_FORM_NOPARAMS, a NULL without). */
START_TEST(test_encode_every_form)
{
    static const int nids[] = {NID_sha1, NID_sha256, NID_sha384, NID_sha512};
    struct ocsp_issuer_hashes h;
    static const uint8_t serial[] = {0x00, 0x80, 0x01};

    hashes_fill(&h);
    for (unsigned hash = OCSP_HASH_SHA1; hash <= OCSP_HASH_SHA512; hash++)
        for (int np = 0; np < 2; np++) {
            uint8_t form = (uint8_t)(hash | (np ? OCSP_FORM_NOPARAMS : 0u));
            struct ocsp_certid id;
            const unsigned char *p;
            OCSP_CERTID *ossl;
            ASN1_OCTET_STRING *nh = NULL, *kh = NULL;
            ASN1_OBJECT *md = NULL;
            ASN1_INTEGER *ser = NULL;
            int ptype = -1;
            int i = (int)hash - 1;

            ck_assert_int_eq(ocsp_certid_encode_form(&h, form, serial, sizeof(serial), &id), ST_OK);
            ck_assert_uint_eq(ocsp_certid_form(&id), form);
            p = id.der;
            ossl = d2i_OCSP_CERTID(NULL, &p, (long)id.der_len);
            ck_assert_ptr_nonnull(ossl);
            ck_assert(p == id.der + id.der_len);
            ck_assert_int_eq(OCSP_id_get0_info(&nh, &md, &kh, &ser, ossl), 1);
            ck_assert_int_eq(OBJ_obj2nid(md), nids[i]);
            ck_assert_int_eq(nh->length, (int)h.len[i]);
            ck_assert_mem_eq(nh->data, h.name[i], h.len[i]);
            ck_assert_mem_eq(kh->data, h.key[i], h.len[i]);
            {
                /* the AlgorithmIdentifier as encoded: a NULL at its end, or the OID alone */
                const uint8_t *q = id.der + 2 + ((id.der[1] & 0x80) ? (id.der[1] & 0x7f) : 0);
                size_t alen = q[1];

                ck_assert_uint_eq(q[0], 0x30);
                ptype = q[2 + alen - 2] == 0x05 && q[2 + alen - 1] == 0x00 ? 1 : 0;
            }
            ck_assert_int_eq(ptype, np ? 0 : 1);
            OCSP_CERTID_free(ossl);
            /* the pre-signed forms are the ones ocsp_certid_encode makes */
            if (!np && hash <= OCSP_HASH_SHA256) {
                struct ocsp_certid pre;

                ck_assert_int_eq(
                    ocsp_certid_encode(&h, (enum ocsp_hash)hash, serial, sizeof(serial), &pre),
                    ST_OK);
                ck_assert_uint_eq(pre.der_len, id.der_len);
                ck_assert_mem_eq(pre.der, id.der, id.der_len);
            }
        }
    {
        struct ocsp_certid id;

        ck_assert_int_eq(ocsp_certid_encode_form(&h, 0, serial, 1, &id), ST_INVALID);
        ck_assert_int_eq(ocsp_certid_encode_form(&h, 5, serial, 1, &id), ST_INVALID);
        ck_assert_int_eq(ocsp_certid_encode_form(&h, OCSP_FORM_NOPARAMS, serial, 1, &id),
                         ST_INVALID);
        ck_assert_int_eq(ocsp_certid_encode_form(&h, OCSP_HASH_SHA1, serial, 0, &id), ST_INVALID);
    }
}
END_TEST

static Suite *
certid_suite(void)
{
    Suite *s = suite_create("ocsp_certid");
    TCase *tc = tcase_create("certid");

    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_form);
    tcase_add_test(tc, test_encode_every_form);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(certid_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
