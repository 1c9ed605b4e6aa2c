/*
 * check_der: unit suite of common/der, the project's one DER writer (DESIGN D1; X.690 §8 and
 * the DER restrictions of §10-11). Every case compares against golden bytes written out by
 * hand from X.690: minimal INTEGERs (§8.3.2), definite lengths in the fewest octets (§10.1),
 * GeneralizedTime for RFC 3161 genTime (TSP-19), named bit lists without trailing zero bits
 * (§11.2.2, TSP-03), SET OF sorting (§11.6), OBJECT IDENTIFIER text encoding, the sticky error
 * of a fixed buffer and the strict reader der_read().
 */
#include "common/der.h"
#include "common/status.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2026-01-02T03:04:05Z */
#define T_2026 1767323045

/* Assert that the writer holds exactly the expected bytes and had no error. */
#define ck_assert_der(d, ...)                                                                      \
    do {                                                                                           \
        static const uint8_t exp_[] = {__VA_ARGS__};                                               \
        ck_assert_int_eq(der_finish(d), ST_OK);                                                    \
        ck_assert_uint_eq((d)->len, sizeof(exp_));                                                 \
        ck_assert_mem_eq((d)->buf, exp_, sizeof(exp_));                                            \
    } while (0)

static uint8_t buf[256];
static struct der w;

static void
setup_writer(void)
{
    memset(buf, 0xee, sizeof(buf));
    der_init(&w, buf, sizeof(buf));
}

/* ---- INTEGER (X.690 §8.3.2: minimal two's complement; unsigned magnitudes) ---- */

START_TEST(test_u64_small)
{
    der_u64(&w, DER_INTEGER, 0);
    ck_assert_der(&w, 0x02, 0x01, 0x00);
    setup_writer();
    der_u64(&w, DER_INTEGER, 127);
    ck_assert_der(&w, 0x02, 0x01, 0x7f);
}
END_TEST

START_TEST(test_u64_top_bit)
{
    der_u64(&w, DER_INTEGER, 128);
    ck_assert_der(&w, 0x02, 0x02, 0x00, 0x80);
    setup_writer();
    der_u64(&w, DER_INTEGER, 255);
    ck_assert_der(&w, 0x02, 0x02, 0x00, 0xff);
    setup_writer();
    der_u64(&w, DER_INTEGER, 256);
    ck_assert_der(&w, 0x02, 0x02, 0x01, 0x00);
    setup_writer();
    der_u64(&w, DER_INTEGER, UINT64_MAX);
    ck_assert_der(&w, 0x02, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
}
END_TEST

START_TEST(test_u64_other_tag)
{
    /* accuracy millis [0] IMPLICIT INTEGER (TSP-20) */
    der_u64(&w, DER_CTX(0), 500);
    ck_assert_der(&w, 0x80, 0x02, 0x01, 0xf4);
}
END_TEST

START_TEST(test_uint_leading_zeros)
{
    static const uint8_t mag[] = {0x00, 0x00, 0x01, 0x02};
    static const uint8_t zeros[] = {0x00, 0x00, 0x00};

    der_uint(&w, DER_INTEGER, mag, sizeof(mag));
    ck_assert_der(&w, 0x02, 0x02, 0x01, 0x02);
    setup_writer();
    der_uint(&w, DER_INTEGER, zeros, sizeof(zeros));
    ck_assert_der(&w, 0x02, 0x01, 0x00);
    setup_writer();
    der_uint(&w, DER_INTEGER, zeros, 0);
    ck_assert_der(&w, 0x02, 0x01, 0x00);
}
END_TEST

START_TEST(test_uint_top_bit_gets_zero)
{
    /* a 16-byte serial whose first octet has the top bit set (TSP-18 serials stay positive) */
    static const uint8_t mag[] = {0x00, 0x80, 0x01};
    static const uint8_t serial[16] = {0xc0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

    der_uint(&w, DER_INTEGER, mag, sizeof(mag));
    ck_assert_der(&w, 0x02, 0x03, 0x00, 0x80, 0x01);
    setup_writer();
    der_uint(&w, DER_INTEGER, serial, sizeof(serial));
    ck_assert_der(&w, 0x02, 0x11, 0x00, 0xc0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
END_TEST

START_TEST(test_bool_null)
{
    der_bool(&w, true);
    der_bool(&w, false);
    der_null(&w);
    ck_assert_der(&w, 0x01, 0x01, 0xff, 0x01, 0x01, 0x00, 0x05, 0x00);
}
END_TEST

/* ---- lengths (X.690 §8.1.3, §10.1: definite form, fewest octets) ---- */

START_TEST(test_header_len)
{
    ck_assert_uint_eq(der_header_len(0), 2);
    ck_assert_uint_eq(der_header_len(127), 2);
    ck_assert_uint_eq(der_header_len(128), 3);
    ck_assert_uint_eq(der_header_len(255), 3);
    ck_assert_uint_eq(der_header_len(256), 4);
    ck_assert_uint_eq(der_header_len(65535), 4);
    ck_assert_uint_eq(der_header_len(65536), 5);
}
END_TEST

/* SEQUENCE of n content octets through der_begin/der_end on a growable writer: the header
 * must be `hdr` and the content (a counting pattern) must survive the move. */
static void
check_seq_len(size_t n, const uint8_t *hdr, size_t hlen)
{
    struct der d;
    uint8_t *content = malloc(n);
    size_t m;

    ck_assert_ptr_nonnull(content);
    for (size_t i = 0; i < n; i++)
        content[i] = (uint8_t)(i * 7 + 3);
    ck_assert_int_eq(der_init_alloc(&d, 16), ST_OK);
    m = der_begin(&d, DER_SEQUENCE);
    ck_assert_uint_eq(m, 0);
    der_raw(&d, content, n);
    der_end(&d, m);
    ck_assert_int_eq(der_finish(&d), ST_OK);
    ck_assert_uint_eq(d.len, hlen + n);
    ck_assert_mem_eq(d.buf, hdr, hlen);
    ck_assert_int_eq(memcmp(d.buf + hlen, content, n), 0);
    der_release(&d);
    free(content);
}

START_TEST(test_len_forms)
{
    static const uint8_t h127[] = {0x30, 0x7f};
    static const uint8_t h128[] = {0x30, 0x81, 0x80};
    static const uint8_t h255[] = {0x30, 0x81, 0xff};
    static const uint8_t h256[] = {0x30, 0x82, 0x01, 0x00};
    static const uint8_t h65535[] = {0x30, 0x82, 0xff, 0xff};
    static const uint8_t h65536[] = {0x30, 0x83, 0x01, 0x00, 0x00};
    static const uint8_t h0[] = {0x30, 0x00};

    check_seq_len(0, h0, sizeof(h0));
    check_seq_len(127, h127, sizeof(h127));
    check_seq_len(128, h128, sizeof(h128));
    check_seq_len(255, h255, sizeof(h255));
    check_seq_len(256, h256, sizeof(h256));
    check_seq_len(65535, h65535, sizeof(h65535));
    check_seq_len(65536, h65536, sizeof(h65536));
}
END_TEST

START_TEST(test_tlv_long)
{
    struct der d;
    uint8_t v[300];
    static const uint8_t hdr[] = {0x04, 0x82, 0x01, 0x2c};

    memset(v, 0x5a, sizeof(v));
    ck_assert_int_eq(der_init_alloc(&d, 0), ST_OK);
    der_tlv(&d, DER_OCTET_STRING, v, sizeof(v));
    ck_assert_int_eq(der_finish(&d), ST_OK);
    ck_assert_uint_eq(d.len, 4 + 300);
    ck_assert_mem_eq(d.buf, hdr, 4);
    ck_assert_mem_eq(d.buf + 4, v, 300);
    der_release(&d);
}
END_TEST

/* SEQUENCE { OCTET STRING (n octets, written with der_begin), NULL } built on a growable
 * writer; the expected bytes are assembled from the lengths computed by hand. */
static void
check_nested(size_t n, const uint8_t *outer_hdr, size_t ohl, const uint8_t *inner_hdr, size_t ihl)
{
    struct der d;
    size_t o, i, want = ohl + ihl + n + 2;
    uint8_t *exp = malloc(want);

    ck_assert_ptr_nonnull(exp);
    memcpy(exp, outer_hdr, ohl);
    memcpy(exp + ohl, inner_hdr, ihl);
    for (size_t k = 0; k < n; k++)
        exp[ohl + ihl + k] = (uint8_t)k;
    exp[want - 2] = 0x05;
    exp[want - 1] = 0x00;

    ck_assert_int_eq(der_init_alloc(&d, 8), ST_OK);
    o = der_begin(&d, DER_SEQUENCE);
    i = der_begin(&d, DER_OCTET_STRING);
    for (size_t k = 0; k < n; k++) {
        uint8_t b = (uint8_t)k;
        der_raw(&d, &b, 1);
    }
    der_end(&d, i);
    der_null(&d);
    der_end(&d, o);
    ck_assert_int_eq(der_finish(&d), ST_OK);
    ck_assert_uint_eq(d.len, want);
    ck_assert_int_eq(memcmp(d.buf, exp, want), 0);
    der_release(&d);
    free(exp);
}

START_TEST(test_nested_cross_128)
{
    /* inner 124: inner TLV 126 + NULL 2 = 128 -> the outer crosses into long form */
    check_nested(124, (const uint8_t[]){0x30, 0x81, 0x80}, 3, (const uint8_t[]){0x04, 0x7c}, 2);
    /* inner 123: outer content 127, still short */
    check_nested(123, (const uint8_t[]){0x30, 0x7f}, 2, (const uint8_t[]){0x04, 0x7b}, 2);
    /* inner 128: both long; outer content 3 + 128 + 2 = 133 */
    check_nested(128, (const uint8_t[]){0x30, 0x81, 0x85}, 3, (const uint8_t[]){0x04, 0x81, 0x80},
                 3);
    /* inner 253: inner header 3, outer content 258 -> two length octets outside */
    check_nested(253, (const uint8_t[]){0x30, 0x82, 0x01, 0x02}, 4,
                 (const uint8_t[]){0x04, 0x81, 0xfd}, 3);
    /* inner 256 -> 04 82 01 00, outer 4 + 256 + 2 = 262 */
    check_nested(256, (const uint8_t[]){0x30, 0x82, 0x01, 0x06}, 4,
                 (const uint8_t[]){0x04, 0x82, 0x01, 0x00}, 4);
}
END_TEST

START_TEST(test_nested_fixed_buffer)
{
    /* the same nesting across the boundary in a caller buffer that has room */
    uint8_t b[200];
    struct der d;
    size_t o, i;
    uint8_t x[126];

    memset(x, 0x11, sizeof(x));
    der_init(&d, b, sizeof(b));
    o = der_begin(&d, DER_SEQUENCE);
    i = der_begin(&d, DER_OCTET_STRING);
    der_raw(&d, x, sizeof(x));
    der_end(&d, i);
    der_end(&d, o);
    ck_assert_int_eq(der_finish(&d), ST_OK);
    ck_assert_uint_eq(d.len, 3 + 2 + 126);
    ck_assert_mem_eq(b, ((const uint8_t[]){0x30, 0x81, 0x80, 0x04, 0x7e}), 5);
    ck_assert_mem_eq(b + 5, x, sizeof(x));
}
END_TEST

/* ---- GeneralizedTime (RFC 3161 §2.4.2, TSP-19: ^\d{14}(\.\d*[1-9])?Z$) ---- */

static void
check_gentime(long nsec, unsigned digits, const char *text)
{
    struct timespec t = {T_2026, nsec};
    size_t n = strlen(text);

    setup_writer();
    der_gentime(&w, &t, digits);
    ck_assert_int_eq(der_finish(&w), ST_OK);
    ck_assert_uint_eq(w.len, 2 + n);
    ck_assert_uint_eq(buf[0], DER_GENERALIZED_TIME);
    ck_assert_uint_eq(buf[1], n);
    ck_assert_msg(memcmp(buf + 2, text, n) == 0, "nsec %ld digits %u: got '%.*s', want '%s'", nsec,
                  digits, (int)n, (const char *)buf + 2, text);
}

START_TEST(test_gentime_no_fraction)
{
    /* TSP-19: no fraction when it is zero; seconds present; ends in Z */
    check_gentime(0, 0, "20260102030405Z");
    check_gentime(0, 6, "20260102030405Z");
    check_gentime(0, 9, "20260102030405Z");
    /* digits 0 never writes a fraction */
    check_gentime(999999999, 0, "20260102030405Z");
    /* the digits kept are all zero: the dot goes too */
    check_gentime(50000000, 1, "20260102030405Z");
    check_gentime(999, 6, "20260102030405Z");
}
END_TEST

START_TEST(test_gentime_trailing_zeros)
{
    /* TSP-19: trailing zeros removed */
    check_gentime(123000000, 6, "20260102030405.123Z");
    check_gentime(100000000, 9, "20260102030405.1Z");
    check_gentime(120000000, 3, "20260102030405.12Z");
    check_gentime(1000, 6, "20260102030405.000001Z");
}
END_TEST

START_TEST(test_gentime_digits)
{
    check_gentime(987654321, 1, "20260102030405.9Z");
    check_gentime(987654321, 3, "20260102030405.987Z");
    check_gentime(123456789, 9, "20260102030405.123456789Z");
    /* truncated, not rounded: never a time later than the clock reading */
    check_gentime(999999999, 6, "20260102030405.999999Z");
}
END_TEST

START_TEST(test_gentime_epoch_and_bad)
{
    struct timespec t = {0, 0};

    der_gentime(&w, &t, 0);
    ck_assert_der(&w, 0x18, 0x0f, '1', '9', '7', '0', '0', '1', '0', '1', '0', '0', '0', '0', '0',
                  '0', 'Z');
    /* more than 9 digits is a caller error: sticky failure */
    setup_writer();
    t.tv_sec = T_2026;
    der_gentime(&w, &t, 10);
    ck_assert_int_ne(der_finish(&w), ST_OK);
}
END_TEST

/* ---- named bit lists (X.690 §11.2.2; PKIFailureInfo, TSP-03) ---- */

START_TEST(test_named_bits_fail_info)
{
    der_named_bits(&w, 1u << 0); /* badAlg */
    ck_assert_der(&w, 0x03, 0x02, 0x07, 0x80);
    setup_writer();
    der_named_bits(&w, 1u << 2); /* badRequest */
    ck_assert_der(&w, 0x03, 0x02, 0x05, 0x20);
    setup_writer();
    der_named_bits(&w, 1u << 5); /* badDataFormat */
    ck_assert_der(&w, 0x03, 0x02, 0x02, 0x04);
    setup_writer();
    der_named_bits(&w, 1u << 25); /* systemFailure */
    ck_assert_der(&w, 0x03, 0x05, 0x06, 0x00, 0x00, 0x00, 0x40);
}
END_TEST

START_TEST(test_named_bits_second_octet)
{
    der_named_bits(&w, 1u << 14); /* timeNotAvailable */
    ck_assert_der(&w, 0x03, 0x03, 0x01, 0x00, 0x02);
    setup_writer();
    der_named_bits(&w, 1u << 15); /* unacceptedPolicy */
    ck_assert_der(&w, 0x03, 0x03, 0x00, 0x00, 0x01);
    setup_writer();
    der_named_bits(&w, 1u << 16); /* unacceptedExtension */
    ck_assert_der(&w, 0x03, 0x04, 0x07, 0x00, 0x00, 0x80);
    setup_writer();
    der_named_bits(&w, 1u << 17); /* addInfoNotAvailable */
    ck_assert_der(&w, 0x03, 0x04, 0x06, 0x00, 0x00, 0x40);
}
END_TEST

START_TEST(test_named_bits_several_and_none)
{
    der_named_bits(&w, (1u << 0) | (1u << 2));
    ck_assert_der(&w, 0x03, 0x02, 0x05, 0xa0);
    setup_writer();
    der_named_bits(&w, (1u << 7) | (1u << 8));
    ck_assert_der(&w, 0x03, 0x03, 0x07, 0x01, 0x80);
    setup_writer();
    der_named_bits(&w, 1u << 31);
    ck_assert_der(&w, 0x03, 0x05, 0x00, 0x00, 0x00, 0x00, 0x01);
    setup_writer();
    der_named_bits(&w, 0); /* empty: only the unused-bits octet, 0 */
    ck_assert_der(&w, 0x03, 0x01, 0x00);
}
END_TEST

/* ---- SET OF (X.690 §11.6) ---- */

START_TEST(test_set_of_sorted)
{
    static const uint8_t a[] = {0x30, 0x00};
    static const uint8_t b[] = {0x02, 0x01, 0x05};
    static const uint8_t c[] = {0x01, 0x01, 0xff};
    static const uint8_t e[] = {0x04, 0x00};
    static const uint8_t f[] = {0x02, 0x02, 0x00, 0x80};
    struct der_item items[] = {
        {a, sizeof(a)}, {b, sizeof(b)}, {c, sizeof(c)}, {e, sizeof(e)}, {f, sizeof(f)}};

    der_set_of(&w, DER_SET, items, 5);
    ck_assert_der(&w, 0x31, 0x0e, 0x01, 0x01, 0xff, 0x02, 0x01, 0x05, 0x02, 0x02, 0x00, 0x80, 0x04,
                  0x00, 0x30, 0x00);
}
END_TEST

START_TEST(test_set_of_prefix)
{
    /* one encoding a prefix of another: the shorter is padded with zero octets and so sorts
     * first (equal to a zero tail, lower than any non-zero tail) */
    static const uint8_t longer[] = {0x04, 0x02, 0xab, 0x01};
    static const uint8_t shorter[] = {0x04, 0x02, 0xab};
    static const uint8_t zero_tail[] = {0x04, 0x02, 0xab, 0x00, 0x00};
    struct der_item items[] = {{longer, sizeof(longer)}, {shorter, sizeof(shorter)}};
    struct der_item items2[] = {{zero_tail, sizeof(zero_tail)}, {longer, sizeof(longer)}};

    der_set_of(&w, DER_SET, items, 2);
    ck_assert_der(&w, 0x31, 0x07, 0x04, 0x02, 0xab, 0x04, 0x02, 0xab, 0x01);
    /* 04 02 ab 00 00 vs 04 02 ab 01: 00 < 01 at the fourth octet */
    setup_writer();
    der_set_of(&w, DER_CTX_CONS(0), items2, 2);
    ck_assert_der(&w, 0xa0, 0x09, 0x04, 0x02, 0xab, 0x00, 0x00, 0x04, 0x02, 0xab, 0x01);
}
END_TEST

START_TEST(test_set_of_empty_and_one)
{
    static const uint8_t x[] = {0x05, 0x00};
    struct der_item one[] = {{x, sizeof(x)}};

    der_set_of(&w, DER_SET, NULL, 0);
    der_set_of(&w, DER_SET, one, 1);
    ck_assert_der(&w, 0x31, 0x00, 0x31, 0x02, 0x05, 0x00);
}
END_TEST

START_TEST(test_set_of_long)
{
    /* two 100-octet elements: the SET content is 204 octets, long-form length */
    uint8_t x[102], y[102];
    struct der_item items[2];
    struct der d;

    x[0] = y[0] = 0x04;
    x[1] = y[1] = 100;
    memset(x + 2, 0x22, 100);
    memset(y + 2, 0x11, 100);
    items[0] = (struct der_item){x, sizeof(x)};
    items[1] = (struct der_item){y, sizeof(y)};
    ck_assert_int_eq(der_init_alloc(&d, 4), ST_OK);
    der_set_of(&d, DER_SET, items, 2);
    ck_assert_int_eq(der_finish(&d), ST_OK);
    ck_assert_uint_eq(d.len, 3 + 204);
    ck_assert_mem_eq(d.buf, ((const uint8_t[]){0x31, 0x81, 0xcc}), 3);
    ck_assert_mem_eq(d.buf + 3, y, sizeof(y));
    ck_assert_mem_eq(d.buf + 3 + 102, x, sizeof(x));
    der_release(&d);
}
END_TEST

/* ---- OBJECT IDENTIFIER from dotted text ---- */

START_TEST(test_oid_known)
{
    uint8_t o[64];
    static const uint8_t tstinfo[] = {0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                      0x0d, 0x01, 0x09, 0x10, 0x01, 0x04};
    /* esi4-qtstStatement-1 (CIR-01) */
    static const uint8_t qtst[] = {0x06, 0x07, 0x04, 0x00, 0x81, 0x97, 0x5e, 0x01, 0x01};
    static const uint8_t qcs[] = {0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x03};
    static const uint8_t sha256[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                     0x65, 0x03, 0x04, 0x02, 0x01};
    static const uint8_t two_arcs[] = {0x06, 0x01, 0x2a};
    static const uint8_t joint[] = {0x06, 0x02, 0x88, 0x37}; /* 2.999 -> 80 + 999 = 1079 */

    ck_assert_uint_eq(der_oid_from_text("1.2.840.113549.1.9.16.1.4", o, sizeof(o)),
                      sizeof(tstinfo));
    ck_assert_mem_eq(o, tstinfo, sizeof(tstinfo));
    ck_assert_uint_eq(der_oid_from_text("0.4.0.19422.1.1", o, sizeof(o)), sizeof(qtst));
    ck_assert_mem_eq(o, qtst, sizeof(qtst));
    ck_assert_uint_eq(der_oid_from_text("1.3.6.1.5.5.7.1.3", o, sizeof(o)), sizeof(qcs));
    ck_assert_mem_eq(o, qcs, sizeof(qcs));
    ck_assert_uint_eq(der_oid_from_text("2.16.840.1.101.3.4.2.1", o, sizeof(o)), sizeof(sha256));
    ck_assert_mem_eq(o, sha256, sizeof(sha256));
    ck_assert_uint_eq(der_oid_from_text("1.2", o, sizeof(o)), sizeof(two_arcs));
    ck_assert_mem_eq(o, two_arcs, sizeof(two_arcs));
    ck_assert_uint_eq(der_oid_from_text("2.999", o, sizeof(o)), sizeof(joint));
    ck_assert_mem_eq(o, joint, sizeof(joint));
}
END_TEST

START_TEST(test_oid_invalid)
{
    uint8_t o[64];
    /* "1..2", "1.2.", "1 .2", "1.2 " and "1.02.3" were accepted by OpenSSL's lenient
     * OBJ_txt2obj() (as 1.0.2, 1.2, 1.0.2, 1.2, 1.2.3): a config policy "1..2" encoded
     * another OID than its text */
    static const char *const bad[] = {"",       "not an oid", "1.2.x",    "1..2",  "1.2.", ".1.2",
                                      "sha256", "3.1",        "1",        "-1.2",  "1.2 ", " 1.2",
                                      "1 .2",   "1.02.3",     "1.2.3..4", "1.2.\n"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(der_oid_from_text(bad[i], o, sizeof(o)) == 0, "'%s' accepted", bad[i]);
    /* does not fit: 13 octets into 12 */
    ck_assert_uint_eq(der_oid_from_text("1.2.840.113549.1.9.16.1.4", o, 12), 0);
    ck_assert_uint_eq(der_oid_from_text("1.2.840.113549.1.9.16.1.4", o, 13), 13);
}
END_TEST

/* ---- sticky errors of a fixed buffer ---- */

START_TEST(test_fixed_overflow_sticky)
{
    uint8_t small[8];
    uint8_t ten[10] = {0};
    struct der d;

    der_init(&d, small, sizeof(small));
    der_u64(&d, DER_INTEGER, 1);
    ck_assert_int_eq(der_finish(&d), ST_OK);
    ck_assert_uint_eq(d.len, 3);
    der_tlv(&d, DER_OCTET_STRING, ten, sizeof(ten)); /* 12 > 5 left */
    ck_assert(d.failed);
    ck_assert_int_ne(der_finish(&d), ST_OK);
    /* later writes that would fit are no-ops */
    der_null(&d);
    der_raw(&d, ten, 1);
    ck_assert_uint_eq(d.len, 3);
    ck_assert_int_ne(der_finish(&d), ST_OK);
}
END_TEST

START_TEST(test_fixed_end_needs_room)
{
    /* 128 octets of content need a third header octet at der_end(): 131 fits, 130 not */
    uint8_t b[131], x[128];
    struct der d;
    size_t m;

    memset(x, 0x33, sizeof(x));
    der_init(&d, b, 131);
    m = der_begin(&d, DER_SEQUENCE);
    der_raw(&d, x, sizeof(x));
    der_end(&d, m);
    ck_assert_int_eq(der_finish(&d), ST_OK);
    ck_assert_uint_eq(d.len, 131);
    ck_assert_mem_eq(b, ((const uint8_t[]){0x30, 0x81, 0x80}), 3);

    der_init(&d, b, 130);
    m = der_begin(&d, DER_SEQUENCE);
    der_raw(&d, x, sizeof(x));
    ck_assert(!d.failed);
    der_end(&d, m);
    ck_assert_int_ne(der_finish(&d), ST_OK);
}
END_TEST

START_TEST(test_bad_mark)
{
    struct der d;
    uint8_t b[16];

    der_init(&d, b, sizeof(b));
    der_null(&d);
    der_end(&d, 5); /* no element was opened there */
    ck_assert_int_ne(der_finish(&d), ST_OK);
}
END_TEST

START_TEST(test_unclosed_element)
{
    /* der.h: der_finish() is 0 only when "every element was closed"; an element left open
     * would go out with its zero length placeholder */
    struct der d;
    uint8_t b[16];
    size_t o, i;

    der_init(&d, b, sizeof(b));
    o = der_begin(&d, DER_SEQUENCE);
    i = der_begin(&d, DER_SEQUENCE);
    der_null(&d);
    der_end(&d, i);
    ck_assert_int_ne(der_finish(&d), ST_OK);
    der_end(&d, o);
    ck_assert_int_eq(der_finish(&d), ST_OK);
    ck_assert_mem_eq(b, ((const uint8_t[]){0x30, 0x04, 0x30, 0x02, 0x05, 0x00}), 6);
}
END_TEST

START_TEST(test_take_and_grow)
{
    struct der d;
    uint8_t *p;
    size_t n = 0;

    ck_assert_int_eq(der_init_alloc(&d, 1), ST_OK);
    for (int i = 0; i < 1000; i++)
        der_u64(&d, DER_INTEGER, (uint64_t)i);
    ck_assert_int_eq(der_finish(&d), ST_OK);
    /* 0..127: 3 octets each, 128..255: 4, 256..999: 4 */
    p = der_take(&d, &n);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(n, 128 * 3 + 872 * 4);
    ck_assert_ptr_null(d.buf);
    ck_assert_uint_eq(d.len, 0);
    ck_assert_mem_eq(p + 128 * 3, ((const uint8_t[]){0x02, 0x02, 0x00, 0x80}), 4);
    free(p);
    der_release(&d); /* harmless after der_take */
}
END_TEST

/* ---- der_read: the strict reader ---- */

START_TEST(test_read_ok)
{
    static const uint8_t in[] = {0x30, 0x03, 0x02, 0x01, 0x05, 0x05, 0x00};
    const uint8_t *p = in, *c;
    uint8_t tag;
    size_t len;

    ck_assert(der_read(&p, in + sizeof(in), &tag, &c, &len));
    ck_assert_uint_eq(tag, 0x30);
    ck_assert_uint_eq(len, 3);
    ck_assert_ptr_eq(c, in + 2);
    ck_assert_ptr_eq(p, in + 5);
    ck_assert(der_read(&p, in + sizeof(in), &tag, &c, &len));
    ck_assert_uint_eq(tag, 0x05);
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_eq(p, in + sizeof(in));
    ck_assert(!der_read(&p, in + sizeof(in), &tag, &c, &len));
}
END_TEST

START_TEST(test_read_long_form)
{
    uint8_t in[3 + 128], in2[4 + 256];
    const uint8_t *p = in, *c;
    uint8_t tag;
    size_t len;

    memset(in, 0, sizeof(in));
    in[0] = 0x04;
    in[1] = 0x81;
    in[2] = 0x80;
    ck_assert(der_read(&p, in + sizeof(in), &tag, &c, &len));
    ck_assert_uint_eq(len, 128);
    ck_assert_ptr_eq(c, in + 3);
    memset(in2, 0, sizeof(in2));
    in2[0] = 0x04;
    in2[1] = 0x82;
    in2[2] = 0x01;
    in2[3] = 0x00;
    p = in2;
    ck_assert(der_read(&p, in2 + sizeof(in2), &tag, &c, &len));
    ck_assert_uint_eq(len, 256);
}
END_TEST

static bool
read_one(const uint8_t *in, size_t n)
{
    const uint8_t *p = in, *c;
    uint8_t tag;
    size_t len;

    return der_read(&p, in + n, &tag, &c, &len);
}

START_TEST(test_read_rejects)
{
    uint8_t big[3 + 200] = {0};
    /* indefinite length (BER only, X.690 §10.1) */
    static const uint8_t indef[] = {0x30, 0x80, 0x05, 0x00, 0x00, 0x00};
    /* long form for a length under 128 */
    static const uint8_t nonmin1[] = {0x30, 0x81, 0x02, 0x05, 0x00};
    /* leading zero length octet */
    static const uint8_t nonmin2[] = {0x04, 0x82, 0x00, 0x02, 0xaa, 0xbb};
    /* content shorter than the length */
    static const uint8_t trunc[] = {0x30, 0x05, 0x02, 0x01};
    /* length octets missing */
    static const uint8_t trunc_len[] = {0x04, 0x82, 0x01};
    static const uint8_t one[] = {0x30};
    /* high tag number form */
    static const uint8_t high_tag[] = {0x1f, 0x81, 0x00, 0x00};
    /* more length octets than a size_t */
    static const uint8_t huge[] = {0x04, 0x89, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};

    ck_assert(!read_one(indef, sizeof(indef)));
    ck_assert(!read_one(nonmin1, sizeof(nonmin1)));
    ck_assert(!read_one(nonmin2, sizeof(nonmin2)));
    ck_assert(!read_one(trunc, sizeof(trunc)));
    ck_assert(!read_one(trunc_len, sizeof(trunc_len)));
    ck_assert(!read_one(one, sizeof(one)));
    ck_assert(!read_one(one, 0));
    ck_assert(!read_one(high_tag, sizeof(high_tag)));
    ck_assert(!read_one(huge, sizeof(huge)));
    /* 04 81 c8 with 199 octets: one short */
    big[0] = 0x04;
    big[1] = 0x81;
    big[2] = 200;
    ck_assert(!read_one(big, sizeof(big) - 1));
    ck_assert(read_one(big, sizeof(big)));
}
END_TEST

START_TEST(test_read_round_trip)
{
    /* what the writer produces, the reader accepts: nested long forms */
    struct der d;
    uint8_t x[300];
    size_t o, i;
    const uint8_t *p, *c, *q;
    uint8_t tag;
    size_t len, ilen;

    memset(x, 0x44, sizeof(x));
    ck_assert_int_eq(der_init_alloc(&d, 0), ST_OK);
    o = der_begin(&d, DER_SEQUENCE);
    i = der_begin(&d, DER_OCTET_STRING);
    der_raw(&d, x, sizeof(x));
    der_end(&d, i);
    der_end(&d, o);
    ck_assert_int_eq(der_finish(&d), ST_OK);
    p = d.buf;
    ck_assert(der_read(&p, d.buf + d.len, &tag, &c, &len));
    ck_assert_uint_eq(tag, DER_SEQUENCE);
    ck_assert_ptr_eq(p, d.buf + d.len);
    q = c;
    ck_assert(der_read(&q, c + len, &tag, &c, &ilen));
    ck_assert_uint_eq(tag, DER_OCTET_STRING);
    ck_assert_uint_eq(ilen, 300);
    ck_assert_mem_eq(c, x, 300);
    der_release(&d);
}
END_TEST

static Suite *
der_suite(void)
{
    Suite *s = suite_create("der");
    TCase *ints = tcase_create("integer");
    TCase *lens = tcase_create("length");
    TCase *prims = tcase_create("gentime_bits");
    TCase *sets = tcase_create("set_oid");
    TCase *errs = tcase_create("errors_reader");

    tcase_add_checked_fixture(ints, setup_writer, NULL);
    tcase_add_test(ints, test_u64_small);
    tcase_add_test(ints, test_u64_top_bit);
    tcase_add_test(ints, test_u64_other_tag);
    tcase_add_test(ints, test_uint_leading_zeros);
    tcase_add_test(ints, test_uint_top_bit_gets_zero);
    tcase_add_test(ints, test_bool_null);
    suite_add_tcase(s, ints);

    tcase_add_checked_fixture(lens, setup_writer, NULL);
    tcase_add_test(lens, test_header_len);
    tcase_add_test(lens, test_len_forms);
    tcase_add_test(lens, test_tlv_long);
    tcase_add_test(lens, test_nested_cross_128);
    tcase_add_test(lens, test_nested_fixed_buffer);
    suite_add_tcase(s, lens);

    tcase_add_checked_fixture(prims, setup_writer, NULL);
    tcase_add_test(prims, test_gentime_no_fraction);
    tcase_add_test(prims, test_gentime_trailing_zeros);
    tcase_add_test(prims, test_gentime_digits);
    tcase_add_test(prims, test_gentime_epoch_and_bad);
    tcase_add_test(prims, test_named_bits_fail_info);
    tcase_add_test(prims, test_named_bits_second_octet);
    tcase_add_test(prims, test_named_bits_several_and_none);
    suite_add_tcase(s, prims);

    tcase_add_checked_fixture(sets, setup_writer, NULL);
    tcase_add_test(sets, test_set_of_sorted);
    tcase_add_test(sets, test_set_of_prefix);
    tcase_add_test(sets, test_set_of_empty_and_one);
    tcase_add_test(sets, test_set_of_long);
    tcase_add_test(sets, test_oid_known);
    tcase_add_test(sets, test_oid_invalid);
    suite_add_tcase(s, sets);

    tcase_add_checked_fixture(errs, setup_writer, NULL);
    tcase_add_test(errs, test_fixed_overflow_sticky);
    tcase_add_test(errs, test_fixed_end_needs_room);
    tcase_add_test(errs, test_bad_mark);
    tcase_add_test(errs, test_unclosed_element);
    tcase_add_test(errs, test_take_and_grow);
    tcase_add_test(errs, test_read_ok);
    tcase_add_test(errs, test_read_long_form);
    tcase_add_test(errs, test_read_rejects);
    tcase_add_test(errs, test_read_round_trip);
    suite_add_tcase(s, errs);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(der_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
