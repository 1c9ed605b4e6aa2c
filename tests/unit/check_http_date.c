/*
 * check_http_date: unit suite of common/http_date, the IMF-fixdate writer (RFC 9110 section
 * 5.6.7) that replaces gmtime_r() + strftime() on reply paths. Every result is compared with
 * what glibc's gmtime_r() and strftime() in the C locale write for the same second: known
 * dates, the leap days and century years the Gregorian rules single out, one second of every
 * day from the epoch to 9999-12-31, pseudo-random seconds, and the clamping of what has no
 * four-digit year.
 */
#include "common/http_date.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What the reply paths wrote before: gmtime_r() and strftime() in the C locale. Plain checks
 * in the loops (each ck_assert in fork mode costs a message to the parent): the first
 * mismatch is printed, the count asserted by the caller. */
static bool
reference(int64_t t, char out[HTTP_DATE_LEN])
{
    time_t tt = (time_t)t;
    struct tm tm;

    return gmtime_r(&tt, &tm) != NULL &&
           strftime(out, HTTP_DATE_LEN, "%a, %d %b %Y %H:%M:%S GMT", &tm) == HTTP_DATE_LEN - 1;
}

static unsigned mismatches;

static void
check_same(int64_t t)
{
    char got[HTTP_DATE_LEN + 8], want[HTTP_DATE_LEN];
    size_t n;

    memset(got, 'x', sizeof(got));
    n = http_date_format(t, got);
    if (reference(t, want) && n == HTTP_DATE_LEN - 1 && strcmp(got, want) == 0 &&
        got[HTTP_DATE_LEN] == 'x') /* nothing written past the NUL */
        return;
    if (mismatches++ == 0)
        fprintf(stderr, "t=%lld: got \"%.*s\" (%zu), want \"%s\"\n", (long long)t, HTTP_DATE_LEN,
                got, n, want);
}

static void
check_text(int64_t t, const char *want)
{
    char got[HTTP_DATE_LEN];

    ck_assert_uint_eq(http_date_format(t, got), HTTP_DATE_LEN - 1);
    ck_assert_str_eq(got, want);
}

/* Seconds of a UTC date, by timegm(). */
static int64_t
at(int y, int mon, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};

    return (int64_t)timegm(&tm);
}

START_TEST(test_known)
{
    mismatches = 0;
    check_text(0, "Thu, 01 Jan 1970 00:00:00 GMT");
    check_text(784111777, "Sun, 06 Nov 1994 08:49:37 GMT"); /* RFC 9110's example */
    check_text(951782400, "Tue, 29 Feb 2000 00:00:00 GMT");
    check_text(at(2100, 3, 1, 0, 0, 0), "Mon, 01 Mar 2100 00:00:00 GMT");
    check_text(at(2400, 2, 29, 12, 0, 0), "Tue, 29 Feb 2400 12:00:00 GMT");
    check_text(HTTP_DATE_MAX, "Fri, 31 Dec 9999 23:59:59 GMT");
    check_same(784111777);
    check_same(HTTP_DATE_MAX);
    ck_assert_uint_eq(mismatches, 0);
}
END_TEST

/* The days the leap-year rules decide: 2000 (divisible by 400) has 29 February, 2100 and
 * 2200 (by 100) do not, 2400 does; each second around midnight, and each year's last. */
START_TEST(test_leap_days)
{
    mismatches = 0;
    static const int years[] = {1972, 2000, 2024, 2100, 2200, 2300, 2400, 2800, 9996, 9999};

    for (size_t i = 0; i < sizeof(years) / sizeof(years[0]); i++) {
        int64_t feb28 = at(years[i], 2, 28, 0, 0, 0), dec31 = at(years[i], 12, 31, 0, 0, 0);

        for (int64_t t = feb28 - 1; t <= feb28 + 3 * 86400; t += 43200)
            check_same(t);
        check_same(feb28 + 86400 - 1);
        check_same(feb28 + 86400);
        check_same(dec31 + 86400 - 1);
        if (dec31 + 86400 <= HTTP_DATE_MAX)
            check_same(dec31 + 86400);
    }
    check_text(at(2100, 2, 28, 23, 59, 59) + 1, "Mon, 01 Mar 2100 00:00:00 GMT");
    check_text(at(2000, 2, 28, 23, 59, 59) + 1, "Tue, 29 Feb 2000 00:00:00 GMT");
    ck_assert_uint_eq(mismatches, 0);
}
END_TEST

/* One second of every day from the epoch to 9999-12-31, the time of day varying. */
START_TEST(test_every_day)
{
    mismatches = 0;
    int64_t days = HTTP_DATE_MAX / 86400;

    for (int64_t d = 0; d <= days; d++)
        check_same(d * 86400 + (d * 7919) % 86400);
    ck_assert_uint_eq(mismatches, 0);
}
END_TEST

/* splitmix64: a fixed sequence, so a failure is repeated by the next run. */
static uint64_t
next_rand(uint64_t *state)
{
    uint64_t x = (*state += 0x9e3779b97f4a7c15u);

    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

START_TEST(test_random)
{
    mismatches = 0;
    uint64_t state = 20260101;

    for (int i = 0; i < 200000; i++)
        check_same((int64_t)(next_rand(&state) % (uint64_t)(HTTP_DATE_MAX + 1)));
    /* the near future, where Date, Last-Modified and Expires live */
    for (int i = 0; i < 200000; i++)
        check_same(at(2026, 1, 1, 0, 0, 0) + (int64_t)(next_rand(&state) % (50u * 366 * 86400)));
    ck_assert_uint_eq(mismatches, 0);
}
END_TEST

/* No sign and four year digits in the grammar: anything outside is clamped (http_date.h). */
START_TEST(test_clamped)
{
    check_text(-1, "Thu, 01 Jan 1970 00:00:00 GMT");
    check_text(-86400 * 365, "Thu, 01 Jan 1970 00:00:00 GMT");
    check_text(INT64_MIN, "Thu, 01 Jan 1970 00:00:00 GMT");
    check_text(HTTP_DATE_MAX + 1, "Fri, 31 Dec 9999 23:59:59 GMT");
    check_text(INT64_C(1) << 40, "Fri, 31 Dec 9999 23:59:59 GMT");
    check_text(INT64_MAX, "Fri, 31 Dec 9999 23:59:59 GMT");
}
END_TEST

static Suite *
http_date_suite(void)
{
    Suite *s = suite_create("http_date");
    TCase *tc = tcase_create("format");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_known);
    tcase_add_test(tc, test_leap_days);
    tcase_add_test(tc, test_every_day);
    tcase_add_test(tc, test_random);
    tcase_add_test(tc, test_clamped);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(http_date_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
