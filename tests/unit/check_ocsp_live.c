/*
 * check_ocsp_live: an issuer's settings copies stay bounded (issue 10 §3: "changed issuer
 * settings stop accumulating copies"): ocsp_live_publish_at keeps the newest OCSP_LIVE_KEEP
 * copies and those replaced within OCSP_LIVE_GRACE_S seconds, at most OCSP_LIVE_MAX; the live
 * copy is always the last published; ids are never reused. Run under ASan by `make asan`.
 */
#include "common/log.h"
#include "common/status.h"
#include "ocsp/ocsp_issuers.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static struct ocsp_issuer *
new_issuer(void)
{
    struct ocsp_issuer *iss = calloc(1, sizeof(*iss));

    ck_assert_ptr_nonnull(iss);
    return iss;
}

/* 10,000 publications one second apart (a CRL import each): the copies stay within
 * OCSP_LIVE_KEEP + OCSP_LIVE_GRACE_S, the live one is the last, ids strictly increase. */
START_TEST(test_publications_bounded_in_time)
{
    struct ocsp_issuer *iss = new_issuer();
    struct ocsp_issuer_rec rec = {0};
    uintptr_t last_id = 0;
    size_t most = 0;

    for (int i = 0; i < 10000; i++) {
        rec.crl_this_update = 1700000000 + i;
        rec.crl_next_update = 1700086400 + i;
        ck_assert_int_eq(ocsp_live_publish_at(iss, &rec, 1000 + i), ST_OK);
        const struct ocsp_issuer_live *lv = ocsp_issuer_live(iss);
        ck_assert_int_eq(lv->crl_this_update, 1700000000 + i);
        ck_assert_uint_gt((uintptr_t)ocsp_live_id(lv), last_id);
        last_id = (uintptr_t)ocsp_live_id(lv);
        if (ocsp_live_copies(iss) > most)
            most = ocsp_live_copies(iss);
    }
    ck_assert_uint_le(most, OCSP_LIVE_KEEP + OCSP_LIVE_GRACE_S + 1);
    ck_assert_uint_ge(ocsp_live_copies(iss), OCSP_LIVE_KEEP);
    ocsp_live_free_all(iss);
    ck_assert_uint_eq(ocsp_live_copies(iss), 0);
    free(iss);
}
END_TEST

/* A storm of 10,000 publications within one second: capped at OCSP_LIVE_MAX copies. */
START_TEST(test_publications_bounded_storm)
{
    struct ocsp_issuer *iss = new_issuer();
    struct ocsp_issuer_rec rec = {0};
    size_t most = 0;

    for (int i = 0; i < 10000; i++) {
        rec.validity = (uint32_t)(60 + i);
        ck_assert_int_eq(ocsp_live_publish_at(iss, &rec, 5000), ST_OK);
        if (ocsp_live_copies(iss) > most)
            most = ocsp_live_copies(iss);
    }
    ck_assert_uint_eq(most, OCSP_LIVE_MAX);
    ck_assert_uint_eq(ocsp_issuer_live(iss)->validity, 60 + 9999);
    ocsp_live_free_all(iss);
    free(iss);
}
END_TEST

/* A copy a reader loaded stays readable for OCSP_LIVE_KEEP - 1 more publications at once, and
 * for any number of them within the grace period (up to the cap). */
START_TEST(test_reader_copy_survives_grace)
{
    struct ocsp_issuer *iss = new_issuer();
    struct ocsp_issuer_rec rec = {.validity = 777};
    const struct ocsp_issuer_live *held;

    ck_assert_int_eq(ocsp_live_publish_at(iss, &rec, 100), ST_OK);
    held = ocsp_issuer_live(iss);
    for (int i = 0; i < OCSP_LIVE_MAX - 1; i++) {
        rec.validity = (uint32_t)i;
        ck_assert_int_eq(ocsp_live_publish_at(iss, &rec, 100 + OCSP_LIVE_GRACE_S - 1), ST_OK);
    }
    ck_assert_uint_eq(held->validity, 777); /* still ours: ASan would report a free */
    ocsp_live_free_all(iss);
    free(iss);
}
END_TEST

static Suite *
live_suite(void)
{
    Suite *s = suite_create("ocsp_live");
    TCase *tc = tcase_create("copies");

    tcase_add_test(tc, test_publications_bounded_in_time);
    tcase_add_test(tc, test_publications_bounded_storm);
    tcase_add_test(tc, test_reader_copy_survives_grace);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(live_suite());
    int failed;

    log_init("check_ocsp_live", LOG_LVL_ERR);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
