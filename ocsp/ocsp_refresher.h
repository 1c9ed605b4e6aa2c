/*
 * ocsp_refresher: ocspd's refresher thread (DESIGN D6, D10). Every tick (250 ms) it loads
 * issuers added or changed with ocspctl (ocsp_issuers_reload), takes the status changes
 * ocspctl left in the store's `changes` (a write: through the commit pipeline) and re-signs
 * their answers at once; every refresh_interval it scans the stored responses and re-signs
 * those within refresh_margin of their nextUpdate (LW-05, EID-05) or produced before their
 * issuer's signer was replaced, a chunk at a time (no transaction held while signing).
 * Issuers that cannot sign now (stale CRL, STS-12; expired responder certificate) are skipped,
 * and so, for the rest of a walk, are those of a chunk that signed nothing (a key down, D8):
 * the answers after theirs are refreshed all the same; they are tried again at the next
 * interval. A chunk the store refused (above fill_limit) ends the walk.
 */
#ifndef OCSP_OCSP_REFRESHER_H
#define OCSP_OCSP_REFRESHER_H

#include "common/metrics.h"
#include "ocsp/ocsp_responder.h"

struct ocsp_refresher_config {
    struct ocsp_responder *resp; /* its store and issuers; outlives the refresher */
    struct metric *m_refreshed;  /* counts re-signed answers */
    struct metric *m_scans;      /* counts complete walks of the stored answers */
    double interval;             /* [ocsp] refresh_interval, seconds */
    double margin;               /* [ocsp] refresh_margin, 0..1 */
};

struct ocsp_refresher;

/* Start the thread. NULL on failure. */
struct ocsp_refresher *ocsp_refresher_start(const struct ocsp_refresher_config *cfg);
/* New interval and margin (SIGHUP); NULL is ignored. */
void ocsp_refresher_set(struct ocsp_refresher *s, double interval, double margin);
/* Stop and join the thread, free it; NULL is ignored. */
void ocsp_refresher_stop(struct ocsp_refresher *s);

#endif
