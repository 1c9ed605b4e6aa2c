/*
 * check_ocsp_decide: table-driven unit suite of ocsp_decide and its time predicates
 * (ocsp/ocsp_decide.h), pure functions of explicit inputs. RFC 6960 §2.2, §4.2.2.1; STANDARDS
 * OCSP-09, OCSP-12, OCSP-13, OCSP-14, OCSP-25, EID-06, STS-12.
 *
 * One table of cases (issuer settings, status record or none, times) -> the answer
 * (certStatus, revocation time and reason, archiveCutoff, thisUpdate/nextUpdate,
 * extended-revoke); then every combination of settings for a serial without a record, proving
 * that a never-issued serial is never answered good by an issuer with issued-serial
 * knowledge (OCSP-13).
 */
#include "ocsp/ocsp_decide.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1000000
#define DAY 86400
#define HOLD OCSP_REVOKED_STATUS_CERTIFICATEHOLD
#define KEYC OCSP_REVOKED_STATUS_KEYCOMPROMISE

enum rec { NO_RECORD = 0, GOOD, REVOKED, ONHOLD };

struct decide_case {
    const char *what;
    /* issuer settings */
    uint8_t unissued;
    bool crl_fed;
    int64_t crl_this_update, crl_next_update;
    bool archive_cutoff;
    int64_t signer_not_after;
    /* the serial's record */
    enum rec rec;
    uint8_t reason;
    int64_t revoked_at, not_after, updated;
    /* expected */
    enum ocsp_single_status status;
    int64_t exp_revoked_at;
    uint8_t exp_reason;
    bool ext;
    bool cutoff;
    int64_t this_update, next_update;
};

/* validity is 1 day throughout; the CA's notBefore (archiveCutoff) is 500 */
static const struct decide_case cases[] = {
    /* records of an issuer with issued-serial knowledge (not CRL-fed) */
    {"good record", OCSP_UNISSUED_REVOKED, false, 0, 0, false, 0, GOOD, OCSP_REASON_NONE, 0, 0, 0,
     OCSP_SINGLE_GOOD, 0, OCSP_REASON_NONE, false, false, NOW, NOW + DAY},
    {"revoked keyCompromise", OCSP_UNISSUED_REVOKED, false, 0, 0, false, 0, REVOKED, KEYC, 700, 0,
     0, OCSP_SINGLE_REVOKED, 700, KEYC, false, false, NOW, NOW + DAY},
    {"revoked without reason", OCSP_UNISSUED_REVOKED, false, 0, 0, false, 0, REVOKED,
     OCSP_REASON_NONE, 700, 0, 0, OCSP_SINGLE_REVOKED, 700, OCSP_REASON_NONE, false, false, NOW,
     NOW + DAY},
    {"on hold: revoked certificateHold", OCSP_UNISSUED_REVOKED, false, 0, 0, false, 0, ONHOLD,
     OCSP_REASON_NONE, 800, 0, 0, OCSP_SINGLE_REVOKED, 800, HOLD, false, false, NOW, NOW + DAY},
    {"good, expired, archive cutoff on", OCSP_UNISSUED_REVOKED, false, 0, 0, true, 0, GOOD,
     OCSP_REASON_NONE, 0, NOW - 1, 0, OCSP_SINGLE_GOOD, 0, OCSP_REASON_NONE, false, true, NOW,
     NOW + DAY},
    {"revoked, expired, archive cutoff on: status kept", OCSP_UNISSUED_REVOKED, false, 0, 0, true,
     0, REVOKED, KEYC, 700, NOW - 1, 0, OCSP_SINGLE_REVOKED, 700, KEYC, false, true, NOW,
     NOW + DAY},
    {"good, not yet expired, archive cutoff on", OCSP_UNISSUED_REVOKED, false, 0, 0, true, 0, GOOD,
     OCSP_REASON_NONE, 0, NOW + 1, 0, OCSP_SINGLE_GOOD, 0, OCSP_REASON_NONE, false, false, NOW,
     NOW + DAY},
    {"good, expired, archive cutoff off", OCSP_UNISSUED_REVOKED, false, 0, 0, false, 0, GOOD,
     OCSP_REASON_NONE, 0, NOW - 1, 0, OCSP_SINGLE_GOOD, 0, OCSP_REASON_NONE, false, false, NOW,
     NOW + DAY},
    {"nextUpdate capped by the responder certificate", OCSP_UNISSUED_REVOKED, false, 0, 0, false,
     NOW + 3600, GOOD, OCSP_REASON_NONE, 0, 0, 0, OCSP_SINGLE_GOOD, 0, OCSP_REASON_NONE, false,
     false, NOW, NOW + 3600},
    /* serials without a record, issued-serial knowledge: never good (OCSP-13) */
    {"no record, policy revoked", OCSP_UNISSUED_REVOKED, false, 0, 0, false, 0, NO_RECORD, 0, 0, 0,
     0, OCSP_SINGLE_REVOKED, 0, HOLD, true, false, NOW, NOW + DAY},
    {"no record, policy unknown", OCSP_UNISSUED_UNKNOWN, false, 0, 0, false, 0, NO_RECORD, 0, 0, 0,
     0, OCSP_SINGLE_UNKNOWN, 0, OCSP_REASON_NONE, false, false, NOW, NOW + DAY},
    {"no record, policy good but not CRL-fed: revoked", OCSP_UNISSUED_GOOD, false, 0, 0, false, 0,
     NO_RECORD, 0, 0, 0, 0, OCSP_SINGLE_REVOKED, 0, HOLD, true, false, NOW, NOW + DAY},
    {"no record, unknown policy value: revoked", 9, false, 0, 0, false, 0, NO_RECORD, 0, 0, 0, 0,
     OCSP_SINGLE_REVOKED, 0, HOLD, true, false, NOW, NOW + DAY},
    {"no record, archive cutoff on: no cutoff without a record", OCSP_UNISSUED_REVOKED, false, 0, 0,
     true, 0, NO_RECORD, 0, 0, 0, 0, OCSP_SINGLE_REVOKED, 0, HOLD, true, false, NOW, NOW + DAY},
    /* CRL-fed issuers (no issued-serial knowledge): thisUpdate/nextUpdate from the CRL */
    {"CRL-fed, no record, policy good: good", OCSP_UNISSUED_GOOD, true, NOW - 5000, NOW + 3600,
     false, 0, NO_RECORD, 0, 0, 0, 0, OCSP_SINGLE_GOOD, 0, OCSP_REASON_NONE, false, false,
     NOW - 5000, NOW + 3600},
    {"CRL-fed, no record, policy revoked", OCSP_UNISSUED_REVOKED, true, NOW - 5000, NOW + 3600,
     false, 0, NO_RECORD, 0, 0, 0, 0, OCSP_SINGLE_REVOKED, 0, HOLD, true, false, NOW - 5000,
     NOW + 3600},
    {"CRL-fed, no record, policy unknown", OCSP_UNISSUED_UNKNOWN, true, NOW - 5000, NOW + 3600,
     false, 0, NO_RECORD, 0, 0, 0, 0, OCSP_SINGLE_UNKNOWN, 0, OCSP_REASON_NONE, false, false,
     NOW - 5000, NOW + 3600},
    {"CRL-fed, revoked after the CRL: thisUpdate = the change", OCSP_UNISSUED_GOOD, true,
     NOW - 5000, NOW + 3600, false, 0, REVOKED, KEYC, NOW - 100, 0, NOW - 100, OCSP_SINGLE_REVOKED,
     NOW - 100, KEYC, false, false, NOW - 100, NOW + 3600},
    {"CRL-fed, record older than the CRL: thisUpdate = the CRL's", OCSP_UNISSUED_GOOD, true,
     NOW - 5000, NOW + 3600, false, 0, REVOKED, KEYC, 700, 0, 800, OCSP_SINGLE_REVOKED, 700, KEYC,
     false, false, NOW - 5000, NOW + 3600},
    {"CRL-fed, record changed in the future: thisUpdate = the CRL's", OCSP_UNISSUED_GOOD, true,
     NOW - 5000, NOW + 3600, false, 0, GOOD, OCSP_REASON_NONE, 0, 0, NOW + 10, OCSP_SINGLE_GOOD, 0,
     OCSP_REASON_NONE, false, false, NOW - 5000, NOW + 3600},
    {"CRL-fed, CRL nextUpdate after validity: validity", OCSP_UNISSUED_GOOD, true, NOW - 5000,
     NOW + 2 * DAY, false, 0, GOOD, OCSP_REASON_NONE, 0, 0, 0, OCSP_SINGLE_GOOD, 0,
     OCSP_REASON_NONE, false, false, NOW - 5000, NOW + DAY},
    {"CRL-fed, signer expires before the CRL's nextUpdate", OCSP_UNISSUED_GOOD, true, NOW - 5000,
     NOW + 3600, false, NOW + 60, GOOD, OCSP_REASON_NONE, 0, 0, 0, OCSP_SINGLE_GOOD, 0,
     OCSP_REASON_NONE, false, false, NOW - 5000, NOW + 60},
};

static struct ocsp_issuer_live
live_of(const struct decide_case *c)
{
    return (struct ocsp_issuer_live){.unissued_policy = c->unissued,
                                     .archive_cutoff = c->archive_cutoff,
                                     .validity = DAY,
                                     .crl_fed = c->crl_fed,
                                     .crl_this_update = c->crl_this_update,
                                     .crl_next_update = c->crl_next_update};
}

START_TEST(test_decide_table)
{
    static const uint8_t certid[] = {0x30, 0x03, 0x02, 0x01, 0x05};
    const struct decide_case *c = &cases[_i];
    struct ocsp_issuer_live lv = live_of(c);
    struct ocsp_status st = {.reason = c->reason,
                             .revocation_time = c->revoked_at,
                             .not_after = c->not_after,
                             .stamp = 42,
                             .updated = c->updated};
    struct ocsp_decision d;

    st.state = c->rec == REVOKED  ? OCSP_STATE_REVOKED
               : c->rec == ONHOLD ? OCSP_STATE_HOLD
                                  : OCSP_STATE_GOOD;
    memset(&d, 0xa5, sizeof(d)); /* every field must be set */
    ocsp_decide(&(struct ocsp_decide_in){.live = &lv,
                                         .ca_not_before = 500,
                                         .signer_not_after = c->signer_not_after,
                                         .status = c->rec == NO_RECORD ? NULL : &st,
                                         .now = NOW,
                                         .certid = certid,
                                         .certid_len = sizeof(certid)},
                &d);
    ck_assert_msg(d.single.status == c->status, "%s: certStatus %d, expected %d", c->what,
                  d.single.status, c->status);
    ck_assert_msg(d.extended_revoke == c->ext, "%s: extended-revoke %d", c->what,
                  d.extended_revoke);
    ck_assert_msg(d.single.archive_cutoff == c->cutoff, "%s: archiveCutoff %d", c->what,
                  d.single.archive_cutoff);
    if (c->cutoff)
        ck_assert_int_eq(d.single.archive_cutoff_time, 500);
    ck_assert_msg(d.single.this_update == c->this_update, "%s: thisUpdate %lld", c->what,
                  (long long)d.single.this_update);
    ck_assert_msg(d.single.next_update == c->next_update, "%s: nextUpdate %lld", c->what,
                  (long long)d.single.next_update);
    ck_assert_ptr_eq(d.single.certid, certid);
    ck_assert_uint_eq(d.single.certid_len, sizeof(certid));
    if (c->status == OCSP_SINGLE_REVOKED) {
        ck_assert_msg(d.single.revocation_time == c->exp_revoked_at, "%s: revocationTime %lld",
                      c->what, (long long)d.single.revocation_time);
        ck_assert_msg(d.single.reason == c->exp_reason, "%s: reason %u", c->what, d.single.reason);
    } else {
        ck_assert_msg(d.single.reason == OCSP_REASON_NONE, "%s: a reason on a non-revoked answer",
                      c->what);
    }
}
END_TEST

/* OCSP-13 over every combination: a serial without a record is answered good only by a
 * CRL-fed issuer (no issued-serial knowledge) whose policy says good; otherwise never good,
 * and revoked (certificateHold, 1970, extended-revoke) unless the policy says unknown. */
START_TEST(test_never_issued_never_good)
{
    static const uint8_t policies[] = {OCSP_UNISSUED_REVOKED, OCSP_UNISSUED_UNKNOWN,
                                       OCSP_UNISSUED_GOOD, 3, 0xff};
    static const int64_t crl_next[] = {0, NOW - 1, NOW, NOW + 3600};
    static const int64_t crl_this[] = {0, NOW - 5000};
    static const int64_t signer_end[] = {0, NOW - 1, NOW + 60};
    size_t checked = 0, good = 0;

    for (size_t p = 0; p < sizeof(policies); p++)
        for (int fed = 0; fed < 2; fed++)
            for (int cutoff = 0; cutoff < 2; cutoff++)
                for (size_t n = 0; n < sizeof(crl_next) / sizeof(crl_next[0]); n++)
                    for (size_t t = 0; t < sizeof(crl_this) / sizeof(crl_this[0]); t++)
                        for (size_t e = 0; e < sizeof(signer_end) / sizeof(signer_end[0]); e++) {
                            struct ocsp_issuer_live lv = {.unissued_policy = policies[p],
                                                          .archive_cutoff = cutoff,
                                                          .validity = DAY,
                                                          .crl_fed = fed,
                                                          .crl_this_update = crl_this[t],
                                                          .crl_next_update = crl_next[n]};
                            struct ocsp_decision d;

                            ocsp_decide(&(struct ocsp_decide_in){.live = &lv,
                                                                 .ca_not_before = 500,
                                                                 .signer_not_after = signer_end[e],
                                                                 .status = NULL,
                                                                 .now = NOW},
                                        &d);
                            checked++;
                            if (!fed || policies[p] != OCSP_UNISSUED_GOOD)
                                ck_assert_msg(d.single.status != OCSP_SINGLE_GOOD,
                                              "OCSP-13: never-issued serial answered good "
                                              "(policy %u, crl_fed %d)",
                                              policies[p], fed);
                            if (d.single.status == OCSP_SINGLE_GOOD) {
                                good++;
                                continue;
                            }
                            if (policies[p] == OCSP_UNISSUED_UNKNOWN) {
                                ck_assert_int_eq(d.single.status, OCSP_SINGLE_UNKNOWN);
                                ck_assert(!d.extended_revoke);
                                continue;
                            }
                            ck_assert_int_eq(d.single.status, OCSP_SINGLE_REVOKED);
                            ck_assert_int_eq(d.single.revocation_time, 0);
                            ck_assert_uint_eq(d.single.reason, HOLD);
                            ck_assert(d.extended_revoke);
                            ck_assert(!d.single.archive_cutoff);
                        }
    ck_assert_uint_eq(checked, sizeof(policies) * 2 * 2 * 4 * 2 * 3);
    /* the only good answers: CRL-fed with policy good, every other setting */
    ck_assert_uint_eq(good, 1 * 1 * 2 * 4 * 2 * 3);
}
END_TEST

struct pred_case {
    const char *what;
    bool crl_fed;
    int64_t crl_next_update, signer_not_after;
    bool stale, expired;
};

static const struct pred_case preds[] = {
    {"not CRL-fed, no signer end", false, 0, 0, false, false},
    {"not CRL-fed ignores the CRL time", false, NOW - 1, 0, false, false},
    {"CRL-fed, no CRL yet: stale", true, 0, 0, true, false},
    {"CRL-fed, CRL current", true, NOW + 1, 0, false, false},
    {"CRL-fed, at the CRL's nextUpdate: stale", true, NOW, 0, true, false},
    {"CRL-fed, past it: stale", true, NOW - 1, 0, true, false},
    {"signer valid", false, 0, NOW + 1, false, false},
    {"signer ends now: expired", false, 0, NOW, false, true},
    {"signer ended", false, 0, NOW - 1, false, true},
};

START_TEST(test_predicates)
{
    const struct pred_case *c = &preds[_i];
    struct ocsp_issuer_live lv = {.crl_fed = c->crl_fed, .crl_next_update = c->crl_next_update};

    ck_assert_msg(ocsp_issuer_stale(&lv, NOW) == c->stale, "%s: stale", c->what);
    ck_assert_msg(ocsp_signer_expired(c->signer_not_after, NOW) == c->expired, "%s: expired",
                  c->what);
}
END_TEST

static Suite *
decide_suite(void)
{
    Suite *s = suite_create("ocsp_decide");
    TCase *tc = tcase_create("decide");

    tcase_add_loop_test(tc, test_decide_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_never_issued_never_good);
    tcase_add_loop_test(tc, test_predicates, 0, (int)(sizeof(preds) / sizeof(preds[0])));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(decide_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
