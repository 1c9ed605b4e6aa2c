/*
 * ocsp_rules: the status-change rules of one serial (STANDARDS EID-07, EID-08, OCSP-16), as
 * pure functions: given the stored record (or none), the change asked for and the time, the
 * record to store, or that the change is refused, or that it changes nothing. ocsp_store
 * applies the verdict in its write transaction. Unit-tested as a table
 * (tests/unit/check_ocsp_rules.c).
 *
 *   no record  -> GOOD (issued), HOLD, REVOKED: allowed
 *   GOOD       -> GOOD, HOLD, REVOKED: allowed
 *   HOLD       -> GOOD (release), REVOKED: allowed; HOLD again keeps the original hold start
 *   REVOKED    -> GOOD or HOLD: refused (definitive); REVOKED again keeps the earliest
 *                 revocation time and may only make the reason more specific (none or
 *                 unspecified -> any) or raise it to keyCompromise; any other reason change
 *                 (removing it included) is refused
 * A change that leaves state, reason, revocation time and expiry as stored changes nothing.
 */
#ifndef OCSP_OCSP_RULES_H
#define OCSP_OCSP_RULES_H

#include "ocsp/ocsp_store.h"

#include <stdbool.h>
#include <stdint.h>

/* struct ocsp_status_change (the change asked for) is in ocsp_store.h. */

enum ocsp_rule_verdict {
    OCSP_RULE_APPLY = 0,   /* store *next */
    OCSP_RULE_SAME = 1,    /* nothing changes: no journal entry, no re-signing */
    OCSP_RULE_REFUSED = 2, /* *next is what was asked, for the journal */
};

/* The record after `req` applied to `cur` (NULL: no record) at `now` (UTC seconds, the
 * record's `updated`) and `now_ns` (its new stamp, made greater than the stored one). */
enum ocsp_rule_verdict ocsp_status_next(const struct ocsp_status *cur,
                                        const struct ocsp_status_change *req, int64_t now,
                                        uint64_t now_ns, struct ocsp_status *next);

/* A reason may be made more specific (none or unspecified -> any) or raised to keyCompromise
 * (RFC 5280 §5.3.1), never changed otherwise or removed. */
bool ocsp_reason_upgrade(uint8_t from, uint8_t to);

/* Same state, reason, revocation time and expiry. */
bool ocsp_status_same(const struct ocsp_status *a, const struct ocsp_status *b);

#endif
