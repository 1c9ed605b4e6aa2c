/*
 * check_live: unit suite of common/live, the liveness heartbeats behind the systemd watchdog
 * (DESIGN D8, D10): an idle beat never counts as stuck, a beat busy in one call for longer
 * than the bound does (and is named), leaving the call clears it, freed slots are reused,
 * a full table gives NULL and NULL beats are harmless.
 */
#include "common/live.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(test_idle_is_alive)
{
    struct live_beat *b = live_beat_new("idle-worker");

    ck_assert_ptr_nonnull(b);
    usleep(30000);
    ck_assert(live_check(0.01, NULL, 0, NULL)); /* idle for long: still alive */
    live_beat_free(b);
}
END_TEST

START_TEST(test_busy_too_long_is_stuck)
{
    struct live_beat *a = live_beat_new("signer:0"), *b = live_beat_new("commit:tsa");
    char who[LIVE_NAME_MAX];
    double how = 0;

    live_busy(a);
    live_busy(b);
    ck_assert(live_check(5, who, sizeof(who), &how)); /* busy, but not for long */
    live_idle(a);
    usleep(60000);
    ck_assert(!live_check(0.03, who, sizeof(who), &how));
    ck_assert_str_eq(who, "commit:tsa");
    ck_assert(how >= 0.05 && how < 5);
    live_idle(b); /* the call returned: alive again */
    ck_assert(live_check(0.03, who, sizeof(who), &how));
    live_beat_free(a);
    live_beat_free(b);
}
END_TEST

START_TEST(test_free_clears)
{
    struct live_beat *b = live_beat_new("gone");

    live_busy(b);
    usleep(20000);
    live_beat_free(b); /* a thread that ended while busy is not stuck */
    ck_assert(live_check(0.01, NULL, 0, NULL));
}
END_TEST

START_TEST(test_table_full_and_null)
{
    static struct live_beat *all[LIVE_MAX_BEATS];
    size_t n = 0;

    while (n < LIVE_MAX_BEATS && (all[n] = live_beat_new("x")) != NULL)
        n++;
    ck_assert_uint_eq(n, LIVE_MAX_BEATS);
    ck_assert_ptr_null(live_beat_new("one too many"));
    live_busy(NULL); /* NULL beats do nothing */
    live_idle(NULL);
    live_beat_free(NULL);
    live_beat_free(all[7]);
    ck_assert_ptr_eq(live_beat_new("reused"), all[7]);
    for (size_t i = 0; i < n; i++)
        live_beat_free(all[i]);
}
END_TEST

static Suite *
live_suite(void)
{
    Suite *s = suite_create("live");
    TCase *tc = tcase_create("beats");

    tcase_add_test(tc, test_idle_is_alive);
    tcase_add_test(tc, test_busy_too_long_is_stuck);
    tcase_add_test(tc, test_free_clears);
    tcase_add_test(tc, test_table_full_and_null);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(live_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
