/*
 * ocsp_rules: status-change rules, pure (see ocsp_rules.h). STANDARDS EID-07, EID-08, OCSP-16.
 */
#include "ocsp/ocsp_rules.h"

#include <string.h>

bool
ocsp_status_same(const struct ocsp_status *a, const struct ocsp_status *b)
{
    return a->state == b->state && a->reason == b->reason &&
           a->revocation_time == b->revocation_time && a->not_after == b->not_after;
}

bool
ocsp_reason_upgrade(uint8_t from, uint8_t to)
{
    if (to == from || to == OCSP_REVOKED_STATUS_KEYCOMPROMISE)
        return true;
    return (from == OCSP_REASON_NONE || from == OCSP_REVOKED_STATUS_UNSPECIFIED) &&
           to != OCSP_REASON_NONE;
}

/* REVOKED -> REVOKED: refused unless the reason is upgraded or kept; the earliest revocation
 * time is kept (a later one would shorten the period a relying party sees as revoked). */
static bool
ocsp_revoked_again(const struct ocsp_status *cur, struct ocsp_status *next)
{
    if (!ocsp_reason_upgrade(cur->reason, next->reason))
        return false;
    if (cur->revocation_time < next->revocation_time)
        next->revocation_time = cur->revocation_time;
    return true;
}

static bool
ocsp_status_allowed(const struct ocsp_status *cur, const struct ocsp_status_change *req,
                    struct ocsp_status *next)
{
    if (cur == NULL || cur->state == OCSP_STATE_GOOD)
        return true;
    /* EID-08: a hold started when it was first put on hold; repeating it does not move it */
    if (cur->state == OCSP_STATE_HOLD && req->state == OCSP_STATE_HOLD)
        next->revocation_time = cur->revocation_time;
    if (cur->state != OCSP_STATE_REVOKED)
        return true;
    /* EID-07, OCSP-16: a definitive revocation never goes back to good or on hold, and a
     * revocation repeated (by an operator, a CRL or an index) never weakens it */
    return req->state == OCSP_STATE_REVOKED && ocsp_revoked_again(cur, next);
}

enum ocsp_rule_verdict
ocsp_status_next(const struct ocsp_status *cur, const struct ocsp_status_change *req, int64_t now,
                 uint64_t now_ns, struct ocsp_status *next)
{
    bool good = req->state == OCSP_STATE_GOOD;

    memset(next, 0, sizeof(*next));
    next->state = req->state;
    next->reason = good ? OCSP_REASON_NONE : req->reason;
    next->revocation_time = good ? 0 : req->revocation_time;
    next->not_after = req->not_after != 0 ? req->not_after : cur != NULL ? cur->not_after : 0;
    next->updated = now;
    next->stamp = now_ns;
    if (cur != NULL && next->stamp <= cur->stamp)
        next->stamp = cur->stamp + 1;
    /* never an answer's mark (ocsp_store.h, Backing): 0 (no record) nor OCSP_STAMP_STALE,
     * which a stale-marked answer would then match (here the stored stamp is at least
     * OCSP_STAMP_STALE - 1, or there is none: 1 is another) */
    if (next->stamp == 0 || next->stamp == OCSP_STAMP_STALE)
        next->stamp = 1;
    if (!ocsp_status_allowed(cur, req, next))
        return OCSP_RULE_REFUSED;
    return cur != NULL && ocsp_status_same(cur, next) ? OCSP_RULE_SAME : OCSP_RULE_APPLY;
}
