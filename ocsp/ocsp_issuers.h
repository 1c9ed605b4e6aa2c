/*
 * ocsp_issuers: the registry of served issuers (RFC 6960 §2.6, §4.2.2.2; STANDARDS OCSP-11,
 * OCSP-21): each issuer of the store loaded into a slot with its certificates, its signing key
 * (the CA key itself or a delegated responder certificate issued by that same CA key, added
 * to the signer), its ResponderID, its certs field and its CertID hashes; found by CertID or
 * by issuer id. Reloads take issuers added or changed with ocspctl (the store's issuers_gen),
 * publish changed settings (struct ocsp_issuer_live) without a new slot, and replace the slot
 * of a new key or certificate (rollover), retiring the old one: a slot pointer stays valid
 * until ocsp_issuers_free().
 *
 * Thread-safety: lookups take a read lock; a reload a write lock, one reload at a time.
 */
#ifndef OCSP_OCSP_ISSUERS_H
#define OCSP_OCSP_ISSUERS_H

#include "common/signer.h"
#include "ocsp/ocsp_certid.h"
#include "ocsp/ocsp_decide.h"
#include "ocsp/ocsp_store.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OCSP_MAX_ISSUERS 64

/* A served issuer, ready to sign. Read-only once loaded, except `live`. `rec` holds the record
 * as first loaded: use ocsp_issuer_live() for the settings of struct ocsp_issuer_live. */
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
    /* first 8 bytes of SHA-256 of the responder certificate DER: what a stored answer
     * records of its signer (ocsp_store.h) */
    uint8_t signer_fp[8];
    struct ocsp_issuer_hashes hashes; /* for CertIDs (OCSP-11) */
    int64_t ca_not_before;
    int64_t signer_not_after;
    /* when this slot replaced the issuer's previous one while ocspd ran (a new or renewed
     * responder certificate): stored answers produced until then are the old signer's, and
     * the refresher re-signs them (issue 8 item 4); 0 for slots loaded at start */
    int64_t replaced_at;
};

struct ocsp_issuers;

/* An empty registry whose keys go to `signer`; `strict`: an issuer whose key cannot be used
 * makes a reload fail (ST_CONFIG) instead of being left out. NULL on failure. */
struct ocsp_issuers *ocsp_issuers_new(struct ocsp_store *st, struct signer *signer, bool strict);
void ocsp_issuers_free(struct ocsp_issuers *r);
/* Load issuers added or changed since the last load (store's issuers_gen). */
int ocsp_issuers_reload(struct ocsp_issuers *r);
/* SIGHUP (issue 9 item 4): load every issuer of the store again now, and look for the key of
 * each unchanged one again (token label or key file, matched with its certificate, a test
 * signature): an issuer whose new or present key does not load keeps its running signer.
 * ST_OK with the signer changes since the start or the previous call in `what`
 * ("issuers_added=NAME:sha256=FP issuers_changed=NAME:sha256=OLD->NEW issuers_unchanged=N",
 * SHA-256 of the responder certificates), or ST_CONFIG naming the issuers that failed. */
int ocsp_issuers_reload_all(struct ocsp_issuers *r, char *what, size_t whatcap, char *err,
                            size_t errlen);
/* Record the served signers as the base of the next reload_all's `what`. */
void ocsp_issuers_mark_seen(struct ocsp_issuers *r);
/* No served issuer's responder certificate has expired at `now` (one ending within 7 days is
 * logged as a warning, at most hourly). */
bool ocsp_issuers_healthy(struct ocsp_issuers *r, int64_t now);
size_t ocsp_issuers_count(struct ocsp_issuers *r);
/* Changes whenever what is served changes: an issuer added, its slot replaced (a new key or
 * certificate), its settings published. Read before deciding an answer that is kept (the
 * front cache), compared before sending it again. */
uint64_t ocsp_issuers_serve_gen(struct ocsp_issuers *r);
/* The latest replaced_at of any issuer (0: none replaced since start). */
int64_t ocsp_issuers_last_replace(struct ocsp_issuers *r);

/* The served issuer for a CertID, or NULL (unknown hash or issuer not served). */
const struct ocsp_issuer *ocsp_issuers_find(struct ocsp_issuers *r, const struct ocsp_certid *id);
const struct ocsp_issuer *ocsp_issuers_by_id(struct ocsp_issuers *r,
                                             const uint8_t id[OCSP_ISSUER_ID_LEN]);

/* The current settings of an issuer (never NULL for a loaded issuer). */
const struct ocsp_issuer_live *ocsp_issuer_live(const struct ocsp_issuer *iss);
/*
 * Settings copies stay bounded (issue 10 §3: "changed issuer settings stop accumulating
 * copies"). A reader loads the live pointer and uses it briefly: within one decision or one
 * check (ocsp_service's request path, ocsp_responder's decisions, the refresher's stale
 * check), never across a wait; a signing job or a cache entry that must remember the settings
 * keeps ocsp_live_id(), a number, never the pointer. Each publication keeps the newest
 * OCSP_LIVE_KEEP copies and, of the older ones, those replaced less than OCSP_LIVE_GRACE_S
 * seconds ago (monotonic clock); at most OCSP_LIVE_MAX copies in all. A copy is freed only
 * after OCSP_LIVE_KEEP further publications AND OCSP_LIVE_GRACE_S seconds (or
 * OCSP_LIVE_MAX publications): publications are serialized reloads (the refresher's poll,
 * SIGHUP), each reading the store, so a reader would have to stall for seconds between
 * loading the pointer and its last use, which none of them does (no lock, I/O or signing in
 * between).
 */
#define OCSP_LIVE_KEEP 8
#define OCSP_LIVE_GRACE_S 10
#define OCSP_LIVE_MAX 256
/* Identity of an issuer's settings copy, unique in the process (for caches and in-flight
 * joins: compared, never dereferenced). */
const void *ocsp_live_id(const struct ocsp_issuer_live *lv);
/* Publish rec's changeable settings as iss's live copy at monotonic time `mono` (seconds),
 * freeing copies past the bound above (the registry calls it; exposed for the unit test). */
int ocsp_live_publish_at(struct ocsp_issuer *iss, const struct ocsp_issuer_rec *rec, int64_t mono);
/* Copies of iss's settings held now (the live one included). */
size_t ocsp_live_copies(const struct ocsp_issuer *iss);
/* Free every copy (the registry's slot free; for the unit test). */
void ocsp_live_free_all(struct ocsp_issuer *iss);

/* The decision inputs of an issuer at `now` (status and certid left for the caller). */
struct ocsp_decide_in ocsp_issuer_decide_in(const struct ocsp_issuer *iss, int64_t now);

#endif
