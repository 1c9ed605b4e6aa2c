/*
 * ocsp_responder: the signing side of OCSP shared by ocspd and `ocspctl presign`: issuers
 * loaded from the store with their signing keys (RFC 6960 §2.6, §4.2.2.2: the CA key itself or
 * a delegated responder certificate issued by that same CA key, OCSP-21), the status decision
 * for one CertID (OCSP-12..15, OCSP-25, STS-12), and jobs that carry a tbsResponseData through
 * the batched signer (common/signer). The signer's batch callback assembles every response of
 * the batch and completes each job at once; the responses to keep (DESIGN D6) go to the
 * store's commit pipeline (common/commit, DESIGN D10), which the responder owns: an answer is
 * sent as soon as it is signed and is never held up by a disk or by an ocspctl transaction.
 * A re-sign job (ocsp_responder_resign) completes once its response is stored.
 *
 * Thread-safety: issuer lookups take a read lock; ocsp_responder_reload() a write lock. Jobs
 * belong to their creator until submitted, to the signer until completed, then to `done`.
 */
#ifndef OCSP_OCSP_RESPONDER_H
#define OCSP_OCSP_RESPONDER_H

#include "common/commit.h"
#include "common/signer.h"
#include "ocsp/ocsp_config.h"
#include "ocsp/ocsp_request.h"
#include "ocsp/ocsp_response.h"
#include "ocsp/ocsp_store.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OCSP_MAX_ISSUERS 64

/* The settings of an issuer that change without a new key or certificate (ocspctl issuer add
 * on the same certificate, every CRL import). A reload publishes a new copy; readers take the
 * current one with ocsp_issuer_live() and may keep using it (copies are freed with the
 * responder). */
struct ocsp_issuer_live {
    uint8_t nonce_policy;    /* enum ocsp_nonce_policy */
    uint8_t unissued_policy; /* enum ocsp_unissued_policy */
    bool archive_cutoff;
    uint32_t validity;
    bool crl_fed;
    int64_t crl_this_update;
    int64_t crl_next_update;
    const struct ocsp_issuer_live *older; /* previous copies, kept until ocsp_responder_free */
};

/* A served issuer, ready to sign. Read-only once loaded, except `live`. `rec` holds the record
 * as first loaded: use ocsp_issuer_live() for the settings listed above. */
struct ocsp_issuer {
    struct ocsp_issuer_rec rec;
    _Atomic(const struct ocsp_issuer_live *) live;
    X509 *cert;        /* issuer CA certificate */
    X509 *signer_cert; /* delegated responder certificate, or the CA cert */
    struct signer_key *key;
    uint8_t rid[32]; /* ResponderID byKey */
    size_t rid_len;
    uint8_t *certs; /* certs field with the delegate, NULL when the CA key signs */
    size_t certs_len;
    int64_t ca_not_before;
    int64_t signer_not_after;
    /* when this slot replaced the issuer's previous one while ocspd ran (a new or renewed
     * responder certificate): stored answers produced until then are the old signer's, and
     * the refresher re-signs them (issue 8 item 4); 0 for slots loaded at start */
    int64_t replaced_at;
};

struct ocsp_job;
typedef void (*ocsp_job_done_fn)(struct ocsp_job *job, void *ctx);

struct ocsp_job {
    struct signer_job sj; /* first: the signer's part */
    struct ocsp_responder *r;
    const struct ocsp_issuer *iss;
    uint8_t *tbs; /* tbsResponseData (malloc) */
    size_t tbs_len;
    /* when store is true the result is written to `responses` under certid (in the background;
     * with wait_store the job completes only once it is stored) */
    bool store;
    bool wait_store;
    bool stored;      /* set when the store write succeeded */
    int store_status; /* why not: ST_FULL above fill_limit, ST_BUSY, ... */
    uint8_t certid[OCSP_CERTID_MAX];
    size_t certid_len;
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
/* Load issuers added or changed since the last load (store's issuers_gen). */
int ocsp_responder_reload(struct ocsp_responder *r);
/* SIGHUP (issue 9 item 4): load every issuer of the store again now, and look for the key of
 * each unchanged one again (token label or key file, matched with its certificate, a test
 * signature): an issuer whose new or present key does not load keeps its running signer.
 * ST_OK with the signer changes since the start or the previous call in `what`
 * ("issuers_added=NAME:sha256=FP issuers_changed=NAME:sha256=OLD->NEW issuers_unchanged=N",
 * SHA-256 of the responder certificates), or ST_CONFIG naming the issuers that failed. */
int ocsp_responder_reload_all(struct ocsp_responder *r, char *what, size_t whatcap, char *err,
                              size_t errlen);
struct ocsp_store *ocsp_responder_store(struct ocsp_responder *r);
/* The store's commit pipeline: every write ocspd makes goes through it. */
struct commit *ocsp_responder_commit(struct ocsp_responder *r);
bool ocsp_responder_healthy(struct ocsp_responder *r);
unsigned ocsp_responder_queue(struct ocsp_responder *r);
size_t ocsp_responder_issuer_count(struct ocsp_responder *r);
/* The latest replaced_at of any issuer (0: none replaced since start). */
int64_t ocsp_responder_last_replace(struct ocsp_responder *r);

/* The served issuer for a CertID, or NULL (unknown hash or issuer not served). The pointer
 * stays valid until ocsp_responder_free() (reloads add issuers, never free them). */
const struct ocsp_issuer *ocsp_responder_issuer(struct ocsp_responder *r,
                                                const struct ocsp_certid *id);
const struct ocsp_issuer *ocsp_responder_issuer_by_id(struct ocsp_responder *r,
                                                      const uint8_t id[OCSP_ISSUER_ID_LEN]);

/* Status decision for one CertID of a served issuer at time `now` from its status record
 * (`st` NULL: no record). Fills *out (certid pointers borrowed from `id`) and sets
 * *extended_revoke for a never-issued serial answered revoked. */
void ocsp_decide(const struct ocsp_issuer *iss, const struct ocsp_certid *id,
                 const struct ocsp_status *st, int64_t now, struct ocsp_single *out,
                 bool *extended_revoke);
/* A stored answer is due for re-signing (LW-05, EID-05) when less than `margin` (0..1) of the
 * time between its signing (producedAt) and its nextUpdate is left at `now`. Not measured from
 * thisUpdate: a CRL-fed issuer's thisUpdate is the CRL's, possibly days old, and from it a
 * freshly signed answer would be due at once, for ever. */
bool ocsp_refresh_due(const struct ocsp_stored_response *r, int64_t now, double margin);
/* The current settings of an issuer (never NULL for a loaded issuer). */
const struct ocsp_issuer_live *ocsp_issuer_live(const struct ocsp_issuer *iss);
/* true when the issuer's status comes from a CRL that is past its nextUpdate (STS-12). */
bool ocsp_issuer_stale(const struct ocsp_issuer *iss, int64_t now);
/* true when the responder certificate has expired: its answers would not verify. */
bool ocsp_issuer_signer_expired(const struct ocsp_issuer *iss, int64_t now);

/* Build a job: tbsResponseData for `singles` signed by iss's key, with the digest ready.
 * NULL on failure. */
struct ocsp_job *ocsp_job_new(struct ocsp_responder *r, const struct ocsp_issuer *iss,
                              int64_t produced_at, const struct ocsp_single *singles, size_t n,
                              const uint8_t *nonce_value, size_t nonce_len, bool extended_revoke);
/* Queue a job; ST_OK, ST_BUSY or ST_SHUTDOWN (then the job is still the caller's). */
int ocsp_job_submit(struct ocsp_job *j, ocsp_job_done_fn done, void *ctx);
void ocsp_job_free(struct ocsp_job *j);

/* CertID DER in the pre-signed forms (hash with NULL parameters) for an issuer and serial.
 * Returns the length, 0 on failure. */
size_t ocsp_certid_encode(const struct ocsp_issuer *iss, enum ocsp_hash h, const uint8_t *serial,
                          size_t serial_len, uint8_t *out, size_t cap);

/* Re-sign, in batches, the stored responses of (issuer, serial) pairs (both pre-signed forms)
 * and wait until they are stored. Used for status changes and pre-signing. *count gets the
 * number stored; ST_FULL when the store is above its fill level (background writes stop there),
 * ST_STORE when some could be signed but not stored for another reason. */
int ocsp_responder_resign(struct ocsp_responder *r, const struct ocsp_change *changes, size_t n,
                          size_t *count);

#endif
