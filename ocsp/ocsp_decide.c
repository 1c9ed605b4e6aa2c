/*
 * ocsp_decide: the status decision and its time predicates, pure (see ocsp_decide.h).
 * RFC 6960 §2.2, §4.2.2.1; STANDARDS OCSP-09, OCSP-12..15, OCSP-25, EID-06, STS-12, LW-05.
 */
#include "ocsp/ocsp_decide.h"

#include <string.h>

bool
ocsp_refresh_due(int64_t produced_at, int64_t next_update, int64_t now, double margin)
{
    double left = (double)(next_update - now);
    double span = (double)(next_update - produced_at);

    return left <= span * margin;
}

int64_t
ocsp_refresh_due_at(int64_t produced_at, int64_t next_update, double margin)
{
    double span = (double)(next_update - produced_at);
    int64_t t = next_update - (int64_t)(span * margin); /* left = span * margin, rounded up */

    while (t > produced_at && ocsp_refresh_due(produced_at, next_update, t - 1, margin))
        t--;
    while (!ocsp_refresh_due(produced_at, next_update, t, margin))
        t++;
    return t;
}

bool
ocsp_issuer_stale(const struct ocsp_issuer_live *lv, int64_t now)
{
    return lv->crl_fed && (lv->crl_next_update == 0 || now >= lv->crl_next_update);
}

bool
ocsp_signer_expired(int64_t signer_not_after, int64_t now)
{
    return signer_not_after > 0 && now >= signer_not_after;
}

/* thisUpdate and nextUpdate of an answer made now. */
static void
ocsp_decide_times(const struct ocsp_decide_in *in, struct ocsp_single *out)
{
    const struct ocsp_issuer_live *lv = in->live;
    const struct ocsp_status *st = in->status;

    /* thisUpdate: when the status was known correct: for a CRL-fed issuer the CRL's time, or
     * the record's later change made with ocspctl (never before a revocationTime, OCSP-09) */
    out->this_update = in->now;
    if (lv->crl_fed && lv->crl_this_update > 0) {
        out->this_update = lv->crl_this_update;
        if (st != NULL && st->updated > out->this_update && st->updated <= in->now)
            out->this_update = st->updated;
    }
    out->next_update = in->now + (int64_t)lv->validity;
    if (lv->crl_fed && lv->crl_next_update > 0 && lv->crl_next_update < out->next_update)
        out->next_update = lv->crl_next_update;
    /* an answer never outlives the certificate that signs it (OCSP-21/22) */
    if (in->signer_not_after > 0 && in->signer_not_after < out->next_update)
        out->next_update = in->signer_not_after;
}

void
ocsp_decide(const struct ocsp_decide_in *in, struct ocsp_decision *d)
{
    const struct ocsp_issuer_live *lv = in->live;
    const struct ocsp_status *st = in->status;
    struct ocsp_single *out = &d->single;

    memset(d, 0, sizeof(*d));
    out->certid = in->certid;
    out->certid_len = in->certid_len;
    out->reason = OCSP_REASON_NONE;
    ocsp_decide_times(in, out);
    if (st == NULL) {
        switch (lv->unissued_policy) {
        case OCSP_UNISSUED_GOOD:
            /* only an issuer fed by CRLs, without issued-serial knowledge, may say good for
             * a serial it has no record of; any other says revoked (OCSP-13) */
            if (!lv->crl_fed)
                goto never_issued;
            out->status = OCSP_SINGLE_GOOD;
            break;
        case OCSP_UNISSUED_UNKNOWN:
            out->status = OCSP_SINGLE_UNKNOWN;
            break;
        default: /* OCSP-13: never good for a serial the CA never issued */
        never_issued:
            out->status = OCSP_SINGLE_REVOKED;
            out->revocation_time = 0;
            out->reason = OCSP_REVOKED_STATUS_CERTIFICATEHOLD;
            d->extended_revoke = true;
            break;
        }
        return;
    }
    if (st->state == OCSP_STATE_GOOD) {
        out->status = OCSP_SINGLE_GOOD;
    } else {
        out->status = OCSP_SINGLE_REVOKED;
        out->revocation_time = st->revocation_time;
        out->reason =
            st->state == OCSP_STATE_HOLD ? OCSP_REVOKED_STATUS_CERTIFICATEHOLD : st->reason;
    }
    /* expired certificates keep their status, with archiveCutoff (OCSP-25, EID-06) */
    if (lv->archive_cutoff && st->not_after > 0 && st->not_after < in->now) {
        out->archive_cutoff = true;
        out->archive_cutoff_time = in->ca_not_before;
    }
}
