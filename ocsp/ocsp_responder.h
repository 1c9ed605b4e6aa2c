/*
 * ocsp_responder: the signing side of OCSP shared by ocspd and `ocspctl presign`: the signer
 * and the registry of served issuers (ocsp_issuers) it loads keys into, and jobs that carry a
 * tbsResponseData through the batched signer (common/signer). The signer's batch callback assembles
 * every response of the batch and completes each job at once; the responses to keep (DESIGN D6) go
 * to the store's commit pipeline (common/commit, DESIGN D10), which the responder owns: an answer
 * is sent as soon as it is signed and is never held up by a disk or by an ocspctl transaction. A
 * re-sign job (ocsp_responder_resign) completes once its response is stored.
 *
 * Thread-safety: see ocsp_issuers for the registry. Jobs
 * belong to their creator until submitted, to the signer until completed, then to `done`.
 */
#ifndef OCSP_OCSP_RESPONDER_H
#define OCSP_OCSP_RESPONDER_H

#include "common/commit.h"
#include "common/signer.h"
#include "ocsp/ocsp_config.h"
#include "ocsp/ocsp_issuers.h"
#include "ocsp/ocsp_request.h"
#include "ocsp/ocsp_response.h"
#include "ocsp/ocsp_store.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ocsp_job;
typedef void (*ocsp_job_done_fn)(struct ocsp_job *job, void *ctx);

struct ocsp_job {
    struct signer_job sj; /* first: the signer's part */
    struct ocsp_responder *r;
    const struct ocsp_issuer *iss;
    uint8_t *tbs; /* tbsResponseData (malloc) */
    size_t tbs_len;
    /* when store is true the result is written to `responses` for (issuer, serial, form) (in
     * the background; with wait_store the job completes only once it is stored) */
    bool store;
    bool wait_store;
    bool replace;     /* a refresh: stored only over the answer still stored (not one a purge
                         removed meanwhile: then store_status is ST_NOTFOUND) */
    bool stored;      /* set when the store write succeeded */
    int store_status; /* why not: ST_FULL above fill_limit, ST_BUSY, ST_NOTFOUND, ... */
    uint8_t form;     /* of the CertID: enum ocsp_hash, | OCSP_FORM_NOPARAMS (ocsp_certid_form) */
    uint8_t serial[OCSP_SERIAL_MAX];
    size_t serial_len;
    uint64_t stamp;
    int64_t this_update, next_update, produced_at;
    /* result: an OCSPResponse DER (malloc), or NULL with sj.status != ST_OK */
    uint8_t *resp;
    size_t resp_len;
    ocsp_job_done_fn done; /* owns the job afterwards: ocsp_job_free() */
    void *ctx;
};

struct ocsp_responder;

/* Open the signer ([signer] of cfg), load every issuer of the store with its key, start the
 * signer's workers. NULL on failure (logged). An issuer whose key cannot be used is logged and
 * left out (the others are served); `strict` makes it an error instead. */
struct ocsp_responder *ocsp_responder_new(const struct ocsp_config *cfg, struct ocsp_store *st,
                                          bool strict);
void ocsp_responder_free(struct ocsp_responder *r);
struct ocsp_store *ocsp_responder_store(struct ocsp_responder *r);
/* The store's commit pipeline: every write ocspd makes goes through it. */
struct commit *ocsp_responder_commit(struct ocsp_responder *r);
bool ocsp_responder_healthy(struct ocsp_responder *r);
unsigned ocsp_responder_queue(struct ocsp_responder *r);
/* A lower bound of the earliest time at which an answer stored since the last call can be
 * due for refresh (INT64_MAX: none stored), and reset: every answer this process stores notes
 * produced_at + 10 % of its validity (the refresh margin is at most 90 %). The refresher
 * takes it when a scan starts, so that it need not walk the store before then. */
int64_t ocsp_responder_take_due(struct ocsp_responder *r);
/* Peek at it, without resetting. */
int64_t ocsp_responder_peek_due(struct ocsp_responder *r);
/* The served issuers (the registry outlives every job). */
struct ocsp_issuers *ocsp_responder_issuers(struct ocsp_responder *r);

/* Build a job: tbsResponseData of `spec` (ResponderID: iss's) signed by iss's key, with the digest
 * ready. NULL on failure. */
struct ocsp_job *ocsp_job_new(struct ocsp_responder *r, const struct ocsp_issuer *iss,
                              const struct ocsp_tbs_spec *spec);
/* The ETag of an answer: the first OCSP_FP_LEN bytes of SHA-256 of its DER (stored with it). */
void ocsp_etag_of(const uint8_t *der, size_t len, uint8_t etag[OCSP_FP_LEN]);

/* Queue a job; ST_OK, ST_BUSY or ST_SHUTDOWN (then the job is still the caller's). */
int ocsp_job_submit(struct ocsp_job *j, ocsp_job_done_fn done, void *ctx);
void ocsp_job_free(struct ocsp_job *j);

/* Re-sign, in batches, the stored responses of (issuer, serial) pairs (both pre-signed forms)
 * and wait until they are stored. Used for status changes and pre-signing. *count gets the
 * number stored; ST_FULL when the store is above its fill level (background writes stop there),
 * ST_STORE when some could be signed but not stored for another reason. */
int ocsp_responder_resign(struct ocsp_responder *r, const struct ocsp_change *changes, size_t n,
                          size_t *count);
/* The same for the refresher's re-signing of stored answers whose validity runs out (LW-05):
 * an answer is stored again only over the one still stored, so an answer a purge removed while
 * it was being signed is not written back (it would outlive its status record). */
int ocsp_responder_refresh(struct ocsp_responder *r, const struct ocsp_change *changes, size_t n,
                           size_t *count);
/* The same for pre-signing (`ocspctl presign`): the signed answers are gathered and written
 * once all are signed, in key order, appended (MDB_APPEND) while they sort after every
 * stored key, so the pages of a first presign are filled completely rather than split. The
 * writes are committed while the caller signs its next set: a call waits for the previous
 * call's writes, and its *count and result are theirs (and any of its own answers that could
 * not be kept); ocsp_responder_presign_flush waits for the last set's and gives theirs. Calls
 * must come in key order (each set after the previous one), from one thread. */
int ocsp_responder_presign(struct ocsp_responder *r, const struct ocsp_change *changes, size_t n,
                           size_t *count);
int ocsp_responder_presign_flush(struct ocsp_responder *r, size_t *count);

#endif
