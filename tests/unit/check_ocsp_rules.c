/*
 * check_ocsp_rules: table-driven unit suite of the status-change rules (ocsp/ocsp_rules.h),
 * pure functions. STANDARDS EID-07 (a revocation is definitive), EID-08 (a hold keeps its
 * start, is released to good or made definitive), OCSP-16 (a repeated revocation never
 * weakens the status: earliest time kept, reason only made more specific or keyCompromise).
 * from-state x to-state x reason -> applied / refused / no-op, and the resulting record.
 */
#include "ocsp/ocsp_rules.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define NOW 2000000
#define NOW_NS 2000000000000000000ull
#define NONE OCSP_REASON_NONE
#define UNSPEC OCSP_REVOKED_STATUS_UNSPECIFIED
#define KEYC OCSP_REVOKED_STATUS_KEYCOMPROMISE
#define CAC OCSP_REVOKED_STATUS_CACOMPROMISE
#define SUPER OCSP_REVOKED_STATUS_SUPERSEDED
#define G OCSP_STATE_GOOD
#define R OCSP_STATE_REVOKED
#define H OCSP_STATE_HOLD
#define X 0xee /* no record */

struct rule_case {
    const char *what;
    /* stored record (state X: none) */
    uint8_t cur_state, cur_reason;
    int64_t cur_time, cur_not_after;
    /* asked */
    uint8_t state, reason;
    int64_t time, not_after;
    /* expected */
    enum ocsp_rule_verdict verdict;
    uint8_t exp_reason;
    int64_t exp_time, exp_not_after;
};

static const struct rule_case cases[] = {
    /* no record */
    {"new serial issued", X, 0, 0, 0, G, NONE, 0, 9000, OCSP_RULE_APPLY, NONE, 0, 9000},
    {"new serial revoked", X, 0, 0, 0, R, KEYC, 100, 0, OCSP_RULE_APPLY, KEYC, 100, 0},
    {"new serial on hold", X, 0, 0, 0, H, NONE, 100, 0, OCSP_RULE_APPLY, NONE, 100, 0},
    {"good asked with a reason: dropped", X, 0, 0, 0, G, KEYC, 100, 0, OCSP_RULE_APPLY, NONE, 0, 0},
    /* GOOD -> */
    {"good again: nothing", G, NONE, 0, 9000, G, NONE, 0, 0, OCSP_RULE_SAME, NONE, 0, 9000},
    {"good, new expiry", G, NONE, 0, 9000, G, NONE, 0, 9500, OCSP_RULE_APPLY, NONE, 0, 9500},
    {"good -> revoked", G, NONE, 0, 9000, R, SUPER, 300, 0, OCSP_RULE_APPLY, SUPER, 300, 9000},
    {"good -> hold", G, NONE, 0, 9000, H, NONE, 300, 0, OCSP_RULE_APPLY, NONE, 300, 9000},
    /* HOLD -> (EID-08) */
    {"hold released", H, NONE, 300, 9000, G, NONE, 0, 0, OCSP_RULE_APPLY, NONE, 0, 9000},
    {"hold made definitive", H, NONE, 300, 9000, R, KEYC, 400, 0, OCSP_RULE_APPLY, KEYC, 400, 9000},
    {"hold again keeps its start", H, NONE, 300, 9000, H, NONE, 500, 0, OCSP_RULE_SAME, NONE, 300,
     9000},
    {"hold again, new expiry: start kept", H, NONE, 300, 9000, H, NONE, 500, 9900, OCSP_RULE_APPLY,
     NONE, 300, 9900},
    /* REVOKED -> (EID-07, OCSP-16) */
    {"revoked -> good refused", R, KEYC, 300, 9000, G, NONE, 0, 0, OCSP_RULE_REFUSED, NONE, 0,
     9000},
    {"revoked -> hold refused", R, KEYC, 300, 9000, H, NONE, 400, 0, OCSP_RULE_REFUSED, NONE, 400,
     9000},
    {"revoked again, same: nothing", R, KEYC, 300, 9000, R, KEYC, 300, 0, OCSP_RULE_SAME, KEYC, 300,
     9000},
    {"revoked again later: earliest kept, nothing", R, KEYC, 300, 9000, R, KEYC, 800, 0,
     OCSP_RULE_SAME, KEYC, 300, 9000},
    {"revoked again earlier: earlier taken", R, KEYC, 300, 9000, R, KEYC, 200, 0, OCSP_RULE_APPLY,
     KEYC, 200, 9000},
    {"reason none -> specific", R, NONE, 300, 9000, R, SUPER, 300, 0, OCSP_RULE_APPLY, SUPER, 300,
     9000},
    {"reason unspecified -> specific", R, UNSPEC, 300, 9000, R, CAC, 300, 0, OCSP_RULE_APPLY, CAC,
     300, 9000},
    {"reason specific -> keyCompromise", R, SUPER, 300, 9000, R, KEYC, 300, 0, OCSP_RULE_APPLY,
     KEYC, 300, 9000},
    {"reason specific -> another refused", R, SUPER, 300, 9000, R, CAC, 300, 0, OCSP_RULE_REFUSED,
     CAC, 300, 9000},
    {"reason removed refused", R, SUPER, 300, 9000, R, NONE, 300, 0, OCSP_RULE_REFUSED, NONE, 300,
     9000},
    {"keyCompromise -> unspecified refused", R, KEYC, 300, 9000, R, UNSPEC, 300, 0,
     OCSP_RULE_REFUSED, UNSPEC, 300, 9000},
    {"reason unspecified -> none refused", R, UNSPEC, 300, 9000, R, NONE, 300, 0, OCSP_RULE_REFUSED,
     NONE, 300, 9000},
};

START_TEST(test_rules_table)
{
    const struct rule_case *c = &cases[_i];
    struct ocsp_status cur = {.state = c->cur_state,
                              .reason = c->cur_reason,
                              .revocation_time = c->cur_time,
                              .not_after = c->cur_not_after,
                              .stamp = 7,
                              .updated = 10};
    struct ocsp_status_change req = {c->state, c->reason, c->time, c->not_after};
    struct ocsp_status next;
    enum ocsp_rule_verdict v;

    memset(&next, 0xa5, sizeof(next));
    v = ocsp_status_next(c->cur_state == X ? NULL : &cur, &req, NOW, NOW_NS, &next);
    ck_assert_msg(v == c->verdict, "%s: verdict %d, expected %d", c->what, v, c->verdict);
    ck_assert_msg(next.state == c->state, "%s: state %u", c->what, next.state);
    ck_assert_msg(next.reason == c->exp_reason, "%s: reason %u", c->what, next.reason);
    ck_assert_msg(next.revocation_time == c->exp_time, "%s: revocation time %lld", c->what,
                  (long long)next.revocation_time);
    ck_assert_msg(next.not_after == c->exp_not_after, "%s: not_after %lld", c->what,
                  (long long)next.not_after);
    ck_assert_int_eq(next.updated, NOW);
    ck_assert(next.stamp == NOW_NS);
}
END_TEST

/* The stamp always moves forward, even when the clock does not (a stored stamp ahead). */
START_TEST(test_stamp_forward)
{
    struct ocsp_status cur = {.state = OCSP_STATE_GOOD, .reason = NONE, .stamp = NOW_NS + 5};
    struct ocsp_status_change req = {OCSP_STATE_REVOKED, KEYC, 100, 0};
    struct ocsp_status next;

    ck_assert_int_eq(ocsp_status_next(&cur, &req, NOW, NOW_NS, &next), OCSP_RULE_APPLY);
    ck_assert(next.stamp == NOW_NS + 6);
}
END_TEST

/* A record's stamp is never one of the marks an answer's stamp may carry (ocsp_store.h, the
 * Backing rule): 0 (signed without a record) nor OCSP_STAMP_STALE (its record changed since).
 * Failed before: a stored stamp one below the mark (a clock far ahead, a store written so)
 * made the next change's record carry the mark itself, and every answer marked stale by that
 * change then matched its record and was served (review13, EID-05). */
START_TEST(test_stamp_never_a_mark)
{
    struct ocsp_status_change req = {OCSP_STATE_REVOKED, KEYC, 100, 0};
    struct ocsp_status cur = {.state = OCSP_STATE_GOOD, .reason = NONE};
    struct ocsp_status next;

    cur.stamp = OCSP_STAMP_STALE - 1;
    ck_assert_int_eq(ocsp_status_next(&cur, &req, NOW, NOW_NS, &next), OCSP_RULE_APPLY);
    ck_assert(next.stamp != OCSP_STAMP_STALE && next.stamp != 0 && next.stamp != cur.stamp);
    cur.stamp = OCSP_STAMP_STALE;
    ck_assert_int_eq(ocsp_status_next(&cur, &req, NOW, NOW_NS, &next), OCSP_RULE_APPLY);
    ck_assert(next.stamp != OCSP_STAMP_STALE && next.stamp != 0 && next.stamp != cur.stamp);
    ck_assert_int_eq(ocsp_status_next(NULL, &req, NOW, OCSP_STAMP_STALE, &next), OCSP_RULE_APPLY);
    ck_assert(next.stamp != OCSP_STAMP_STALE && next.stamp != 0);
    ck_assert_int_eq(ocsp_status_next(NULL, &req, NOW, 0, &next), OCSP_RULE_APPLY);
    ck_assert(next.stamp != OCSP_STAMP_STALE && next.stamp != 0);
}
END_TEST

/* Every from-state x to-state x reason: a definitive revocation never becomes good or held,
 * and an applied repeat never moves its time later nor weakens its reason (EID-07, OCSP-16). */
START_TEST(test_revoked_never_weakens)
{
    static const uint8_t reasons[] = {NONE, 0, 1, 2, 3, 4, 5, 6, 8, 9, 10};
    static const uint8_t states[] = {G, R, H};

    for (size_t a = 0; a < sizeof(reasons); a++)
        for (size_t s = 0; s < sizeof(states); s++)
            for (size_t b = 0; b < sizeof(reasons); b++) {
                struct ocsp_status cur = {
                    .state = R, .reason = reasons[a], .revocation_time = 500, .stamp = 1};
                struct ocsp_status_change req = {states[s], reasons[b], 400 + 200 * (b % 2), 0};
                struct ocsp_status next;
                enum ocsp_rule_verdict v = ocsp_status_next(&cur, &req, NOW, NOW_NS, &next);

                if (states[s] != R) {
                    ck_assert_int_eq(v, OCSP_RULE_REFUSED);
                    continue;
                }
                if (v == OCSP_RULE_REFUSED)
                    continue;
                ck_assert_int_le(next.revocation_time, 500);
                ck_assert(ocsp_reason_upgrade(reasons[a], next.reason));
                ck_assert(next.reason != NONE || reasons[a] == NONE);
            }
}
END_TEST

static Suite *
rules_suite(void)
{
    Suite *s = suite_create("ocsp_rules");
    TCase *tc = tcase_create("rules");

    tcase_add_loop_test(tc, test_rules_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_stamp_forward);
    tcase_add_test(tc, test_stamp_never_a_mark);
    tcase_add_test(tc, test_revoked_never_weakens);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(rules_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
