/*
 * check_ocsp_refresh: unit suite of ocsp_refresh_due, when the refresher re-signs a stored
 * answer (RFC 9919 §2.2.1; STANDARDS LW-05, EID-05), table-driven. The case that matters: a
 * CRL-fed issuer's answers carry the CRL's thisUpdate (OCSP-14, STS-12), which may be days old;
 * an answer just signed must not be due, or the refresher re-signs it without end.
 */
#include "ocsp/ocsp_decide.h"

#include <check.h>
#include <stdlib.h>

struct due_case {
    const char *what;
    int64_t this_update, produced_at, next_update, now;
    double margin;
    bool due;
};

static const struct due_case cases[] = {
    /* a CA-signed answer: thisUpdate = producedAt, validity 1 day */
    {"just signed", 1000, 1000, 1000 + 86400, 1001, 0.5, false},
    {"just under half left", 1000, 1000, 1000 + 86400, 1000 + 43201, 0.5, true},
    {"just over half left", 1000, 1000, 1000 + 86400, 1000 + 43199, 0.5, false},
    {"expired", 1000, 1000, 2000, 3000, 0.5, true},
    {"margin 0: only at nextUpdate", 1000, 1000, 2000, 1999, 0.0, false},
    {"margin 0: at nextUpdate", 1000, 1000, 2000, 2000, 0.0, true},
    {"margin 1: at once", 1000, 1000, 2000, 1001, 1.0, true},
    /* a CRL-fed issuer: thisUpdate is the CRL's, 10 days before the answer was signed */
    {"CRL 10 days old, answer just signed", 0, 864000, 864000 + 86400, 864001, 0.5, false},
    {"CRL 10 days old, answer half way", 0, 864000, 864000 + 86400, 864000 + 43201, 0.5, true},
    /* nextUpdate capped by the CRL's, 1 hour after signing */
    {"capped by the CRL, just signed", 0, 5000, 5000 + 3600, 5001, 0.5, false},
};

START_TEST(test_refresh_due)
{
    const struct due_case *c = &cases[_i];
    struct ocsp_stored_response r = {.stamp = 1,
                                     .this_update = c->this_update,
                                     .next_update = c->next_update,
                                     .produced_at = c->produced_at};

    ck_assert_msg(ocsp_refresh_due(r.produced_at, r.next_update, c->now, c->margin) == c->due,
                  "%s: due should be %s", c->what, c->due ? "true" : "false");
}
END_TEST

/* The refresher sleeps until the earliest ocsp_refresh_due_at of the answers it saw: the
 * first second at which the answer is due, never one before (it would be refreshed late). */
START_TEST(test_refresh_due_at)
{
    const struct due_case *c = &cases[_i];
    int64_t at = ocsp_refresh_due_at(c->produced_at, c->next_update, c->margin);

    ck_assert_msg(ocsp_refresh_due(c->produced_at, c->next_update, at, c->margin),
                  "%s: not due at its due time %lld", c->what, (long long)at);
    ck_assert_msg(!ocsp_refresh_due(c->produced_at, c->next_update, at - 1, c->margin) ||
                      at <= c->produced_at,
                  "%s: already due before its due time %lld", c->what, (long long)at);
    ck_assert_msg((c->now >= at) == c->due, "%s: due at %lld, now %lld, due %d", c->what,
                  (long long)at, (long long)c->now, c->due);
}
END_TEST

static Suite *
refresh_suite(void)
{
    Suite *s = suite_create("ocsp_refresh");
    TCase *tc = tcase_create("due");

    tcase_add_loop_test(tc, test_refresh_due, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_loop_test(tc, test_refresh_due_at, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(refresh_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
