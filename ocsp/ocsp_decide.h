/*
 * ocsp_decide: what an answer says, as pure functions of explicit inputs (no responder, no
 * store, no clock): the certStatus, revocation and archiveCutoff of one CertID from its status
 * record and its issuer's settings (RFC 6960 §2.2, §4.2.2.1; STANDARDS OCSP-09, OCSP-12..15,
 * OCSP-25, EID-06, STS-12), and the time predicates around it (re-sign due, CRL stale,
 * responder certificate expired). Unit-tested as a table (tests/unit/check_ocsp_decide.c).
 */
#ifndef OCSP_OCSP_DECIDE_H
#define OCSP_OCSP_DECIDE_H

#include "ocsp/ocsp_response.h"
#include "ocsp/ocsp_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The settings of an issuer that change without a new key or certificate (ocspctl issuer add
 * on the same certificate, every CRL import): the policy half of a decision. The registry
 * (ocsp_issuers) publishes a new copy on change; readers may keep using the one they took. */
struct ocsp_issuer_live {
    uint8_t nonce_policy;    /* enum ocsp_nonce_policy */
    uint8_t unissued_policy; /* enum ocsp_unissued_policy */
    bool archive_cutoff;
    uint32_t validity;
    bool crl_fed;
    int64_t crl_this_update;
    int64_t crl_next_update;
    /* the registry's bookkeeping (ocsp_issuers.c): the previous copy, kept for readers that
     * loaded it just before a publication and freed once bounded (see ocsp_live_publish_at),
     * when it was replaced (monotonic seconds), and a number unique in the process that
     * identifies these settings (ocsp_live_id: an address may be reused once a copy is freed) */
    const struct ocsp_issuer_live *older;
    int64_t replaced_mono;
    uint64_t gen;
};

/* Everything a decision depends on. */
struct ocsp_decide_in {
    const struct ocsp_issuer_live *live; /* the issuer's settings */
    int64_t ca_not_before;               /* archiveCutoff given for expired certificates */
    int64_t signer_not_after;            /* 0: unknown; no answer outlives it */
    const struct ocsp_status *status;    /* the serial's record, NULL: none */
    int64_t now;
    const uint8_t *certid; /* CertID DER to echo (borrowed into the result) */
    size_t certid_len;
};

struct ocsp_decision {
    struct ocsp_single single;
    bool extended_revoke; /* a never-issued serial answered revoked (OCSP-13) */
};

/* The answer for one CertID. Never good for a serial without a record unless the issuer has
 * no issued-serial knowledge (CRL-fed) and its policy says so (OCSP-13). */
void ocsp_decide(const struct ocsp_decide_in *in, struct ocsp_decision *out);

/* A stored answer is due for re-signing (LW-05, EID-05) when less than `margin` (0..1) of the
 * time between its signing (producedAt) and its nextUpdate is left at `now`. Not measured from
 * thisUpdate: a CRL-fed issuer's thisUpdate is the CRL's, possibly days old, and from it a
 * freshly signed answer would be due at once, for ever. */
bool ocsp_refresh_due(int64_t produced_at, int64_t next_update, int64_t now, double margin);
/* The first second at which ocsp_refresh_due is true for that answer (the refresher sleeps
 * until the earliest of them). */
int64_t ocsp_refresh_due_at(int64_t produced_at, int64_t next_update, double margin);
/* The issuer's status comes from a CRL that is past its nextUpdate (STS-12). */
bool ocsp_issuer_stale(const struct ocsp_issuer_live *live, int64_t now);
/* The responder certificate has expired (its answers would not verify). */
bool ocsp_signer_expired(int64_t signer_not_after, int64_t now);

#endif
