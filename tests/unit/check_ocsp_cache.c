/*
 * check_ocsp_cache: unit suite of ocsp/ocsp_cache, the bounded cache of answers for serials
 * without a status record (issue 8 item 2; STANDARDS OCSP-13, OCSP-27), and of ocspd's
 * [limits] and unissued_cache keys: an answer is served back as put, only for the signer and
 * settings it was signed under and before its nextUpdate; the table stays bounded and evicts
 * the least recently used; off when sized 0.
 */
#include "common/status.h"
#include "ocsp/ocsp_cache.h"
#include "ocsp/ocsp_config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int signer_a = 1, signer_b = 2, settings_a = 3, settings_b = 4;

static void
certid_of(unsigned n, uint8_t id[32])
{
    memset(id, 0x30, 32);
    id[28] = (uint8_t)(n >> 24);
    id[29] = (uint8_t)(n >> 16);
    id[30] = (uint8_t)(n >> 8);
    id[31] = (uint8_t)n;
}

static bool
get(struct ocsp_cache *c, unsigned n, const void *signer, const void *settings, int64_t now,
    uint8_t *first_byte)
{
    uint8_t id[32], *der = NULL;
    size_t len = 0;
    int64_t pa = 0, nu = 0;
    struct ocsp_cache_answer a;
    bool hit;

    certid_of(n, id);
    hit = ocsp_cache_get(
        c,
        &(struct ocsp_cache_key){
            .certid = id, .certid_len = sizeof(id), .signer = signer, .settings = settings},
        now, &a);
    der = a.der;
    len = a.der_len;
    pa = a.produced_at;
    nu = a.next_update;
    if (hit) {
        ck_assert_uint_eq(len, 3);
        ck_assert_int_eq(pa, 100);
        ck_assert_int_eq(nu, 200);
        *first_byte = der[0];
    }
    free(der);
    return hit;
}

static void
put(struct ocsp_cache *c, unsigned n, const void *signer, const void *settings, uint8_t tag)
{
    uint8_t id[32], der[3] = {tag, 0xaa, 0xbb};

    certid_of(n, id);
    ocsp_cache_put(
        c,
        &(struct ocsp_cache_key){
            .certid = id, .certid_len = sizeof(id), .signer = signer, .settings = settings},
        &(struct ocsp_cache_answer){
            .der = der, .der_len = sizeof(der), .produced_at = 100, .next_update = 200});
}

START_TEST(test_put_get)
{
    struct ocsp_cache *c = ocsp_cache_new(64);
    uint8_t b = 0;

    ck_assert(!get(c, 1, &signer_a, &settings_a, 150, &b));
    put(c, 1, &signer_a, &settings_a, 0x11);
    ck_assert(get(c, 1, &signer_a, &settings_a, 150, &b));
    ck_assert_uint_eq(b, 0x11);
    ck_assert(!get(c, 2, &signer_a, &settings_a, 150, &b));
    put(c, 1, &signer_a, &settings_a, 0x12); /* replaced, not added */
    ck_assert(get(c, 1, &signer_a, &settings_a, 150, &b));
    ck_assert_uint_eq(b, 0x12);
    ck_assert_uint_eq(ocsp_cache_count(c), 1);
    ocsp_cache_free(c);
}
END_TEST

/* Never served for another signer (a replaced responder certificate), under other settings,
 * or at or after its nextUpdate; such an entry is dropped. */
START_TEST(test_not_served_when_stale)
{
    struct ocsp_cache *c = ocsp_cache_new(64);
    uint8_t b = 0;

    put(c, 1, &signer_a, &settings_a, 0x11);
    ck_assert(!get(c, 1, &signer_b, &settings_a, 150, &b));
    ck_assert(!get(c, 1, &signer_a, &settings_a, 150, &b)); /* dropped by the mismatch */
    put(c, 1, &signer_a, &settings_a, 0x11);
    ck_assert(!get(c, 1, &signer_a, &settings_b, 150, &b));
    put(c, 1, &signer_a, &settings_a, 0x11);
    ck_assert(get(c, 1, &signer_a, &settings_a, 199, &b));
    ck_assert(!get(c, 1, &signer_a, &settings_a, 200, &b));
    ck_assert_uint_eq(ocsp_cache_count(c), 0);
    ocsp_cache_free(c);
}
END_TEST

/* 100 000 distinct serials into 64 slots: bounded; the most recent ones are there, and an
 * entry used all along survives the flood of its set. */
START_TEST(test_bounded_lru)
{
    struct ocsp_cache *c = ocsp_cache_new(64);
    uint8_t b = 0;

    put(c, 7, &signer_a, &settings_a, 0x77);
    for (unsigned n = 1000; n < 101000; n++) {
        put(c, n, &signer_a, &settings_a, 0x01);
        ck_assert(get(c, 7, &signer_a, &settings_a, 150, &b)); /* kept hot */
        ck_assert_uint_le(ocsp_cache_count(c), 64);
    }
    ck_assert(get(c, 100999, &signer_a, &settings_a, 150, &b));
    ck_assert(!get(c, 1000, &signer_a, &settings_a, 150, &b));
    ocsp_cache_free(c);
}
END_TEST

START_TEST(test_off)
{
    uint8_t b = 0;

    ck_assert_ptr_null(ocsp_cache_new(0));
    put(NULL, 1, &signer_a, &settings_a, 0x11);
    ck_assert(!get(NULL, 1, &signer_a, &settings_a, 150, &b));
}
END_TEST

START_TEST(test_config_keys)
{
    static struct ocsp_config cfg;
    char err[512];

    ck_assert_int_eq(
        ocsp_config_load_string(&cfg, "[server]\nlisten = 127.0.0.1:1\n", err, sizeof(err)), ST_OK);
    ck_assert(cfg.sign_limit.rate == 20 && cfg.sign_limit.burst == 100);
    ck_assert_uint_eq(cfg.unissued_cache, 4096);
    ck_assert_int_eq(ocsp_config_load_string(&cfg,
                                             "[limits]\nsign_rate = 0\nsign_burst = 5\n"
                                             "[ocsp]\nunissued_cache = 0\n",
                                             err, sizeof(err)),
                     ST_OK);
    ck_assert(cfg.sign_limit.rate == 0 && cfg.sign_limit.burst == 5);
    ck_assert_uint_eq(cfg.unissued_cache, 0);
    ck_assert_int_eq(ocsp_config_load_string(&cfg, "[limits]\ntoken_rate = 1\n", err, sizeof(err)),
                     ST_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "unknown key 'token_rate' in [limits]"));
    ck_assert_int_eq(
        ocsp_config_load_string(&cfg, "[ocsp]\nunissued_cache = -1\n", err, sizeof(err)),
        ST_CONFIG);
    /* [store] prefault: yes by default, no, or reread (the cached pages read again) */
    ck_assert_int_eq(ocsp_config_load_string(&cfg, "", err, sizeof(err)), ST_OK);
    ck_assert_int_eq(cfg.store_prefault, OCSP_PREFAULT_YES);
    ck_assert_int_eq(
        ocsp_config_load_string(&cfg, "[store]\nprefault = reread\n", err, sizeof(err)), ST_OK);
    ck_assert_int_eq(cfg.store_prefault, OCSP_PREFAULT_REREAD);
    ck_assert_int_eq(ocsp_config_load_string(&cfg, "[store]\nprefault = no\n", err, sizeof(err)),
                     ST_OK);
    ck_assert_int_eq(cfg.store_prefault, OCSP_PREFAULT_NO);
    ck_assert_int_eq(
        ocsp_config_load_string(&cfg, "[store]\nprefault = re-read\n", err, sizeof(err)),
        ST_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "prefault: yes, no or reread"));
}
END_TEST

/* Second review of issue 8: ocspd's new keys with hostile values get a file:line error naming
 * the key (never a wrapped or defaulted value). */
START_TEST(test_config_hostile_values)
{
    static struct ocsp_config cfg;
    static const struct {
        const char *section, *key;
        const char *values[12];
    } cases[] = {
        {"ocsp",
         "unissued_cache",
         {"-1", "+1", "4294967296", "18446744073709551617", "1e3", "nan", "", "x", NULL}},
        {"limits", "sign_rate", {"-1", "+1", "1000001", "1e400", "nan", "inf", "", "x", NULL}},
        {"limits", "sign_burst", {"0", "0.5", "-1", "1000001", "nan", "inf", "", NULL}},
        {"limits", "sign_sources", {"0", "-1", "63", "16777217", "4294967360", "", NULL}},
        {"server", "per_ip_limit", {"-1", "100001", "4294967296", "", NULL}},
        {"server", "request_timeout", {"0", "-1", "3601s", "1e400", "nan", "", NULL}},
        {"signer", "sign_timeout", {"0", "-1", "99ms", "3601s", "1e400", "nan", "", NULL}},
    };
    char text[256], err[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t v = 0; cases[i].values[v] != NULL; v++) {
            snprintf(text, sizeof(text), "[%s]\n%s = %s\n", cases[i].section, cases[i].key,
                     cases[i].values[v]);
            err[0] = '\0';
            ck_assert_msg(ocsp_config_load_string(&cfg, text, err, sizeof(err)) == ST_CONFIG,
                          "[%s] %s = '%s' accepted", cases[i].section, cases[i].key,
                          cases[i].values[v]);
            ck_assert_msg(strncmp(err, "<string>:2: ", 12) == 0 &&
                              strstr(err, cases[i].key) != NULL,
                          "[%s] %s = '%s': '%s' is not a <string>:2: error naming the key",
                          cases[i].section, cases[i].key, cases[i].values[v], err);
        }
    }
}
END_TEST

static Suite *
cache_suite(void)
{
    Suite *s = suite_create("ocsp_cache");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_put_get);
    tcase_add_test(tc, test_not_served_when_stale);
    tcase_add_test(tc, test_bounded_lru);
    tcase_add_test(tc, test_off);
    tcase_add_test(tc, test_config_keys);
    tcase_add_test(tc, test_config_hostile_values);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(cache_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
