/*
 * ocsp_store: the OCSP status store on LMDB (DESIGN D4, D6). ocspctl writes it, ocspd reads it
 * (LMDB readers never block and see committed changes at once, without a restart).
 *
 * Schema version 4: named databases of one LMDB environment.
 *
 *   meta       "schema_version" -> "4"; "issuers_gen" -> u64 LE, bumped on every issuer change
 *   issuers    issuer id (32 bytes) -> issuer record (ocsp_store.c encodes it; see
 *              struct ocsp_issuer_rec). issuer id = SHA-256 of the issuer certificate's
 *              subjectPublicKey BIT STRING contents: a re-keyed CA (same name, new key) is
 *              another issuer (OCSP-21).
 *   certids    hash byte + issuerNameHash + issuerKeyHash -> issuer id. For every issuer the
 *              four entries SHA-1, SHA-256, SHA-384, SHA-512 (hash byte = enum ocsp_hash).
 *              issuerNameHash is over the DER of the issuer's subject as encoded in the issuer
 *              certificate; issuerKeyHash over its subjectPublicKey BIT STRING contents (OCSP-11).
 *   status     issuer id + serial (INTEGER content octets, as DER-encoded) -> struct ocsp_status
 *              (40-byte little-endian record). A record exists for every serial the CA is known
 *              to have issued (issued-serial knowledge) and for every revoked serial.
 *   responses  first 8 bytes of the issuer id + serial (INTEGER content octets) + form byte
 *              (enum ocsp_hash of the CertID, | OCSP_FORM_NOPARAMS when its hash
 *              AlgorithmIdentifier has no parameters: a client comparing CertIDs tells the two
 *              spellings apart, so each has its own answer) -> pre-signed response. The key is
 *              computed from a decoded request once its issuer is found, never from its DER; a
 *              serial's answers are adjacent (unless another serial of the issuer is that serial
 *              followed by the form byte), and every key names one (issuer, serial, form): the
 *              key length gives the serial length. Value, integers little-endian (56 bytes):
 *                u8 version (3), u8 flags (bit 0: certs elided), u16 pad_len,
 *                u32 certs_len (bytes elided, 0 if none),
 *                u64 stamp (of the status record it was signed for, 0: no record,
 *                OCSP_STAMP_STALE: its record changed since; see "Backing" below),
 *                i64 thisUpdate, i64 nextUpdate, i64 producedAt,
 *                u8 signer_fp[8] (first 8 bytes of SHA-256 of the DER of the responder
 *                certificate that signed it), u8 etag[8] (first 8 bytes of SHA-256 of the whole
 *                OCSPResponse DER),
 *              then the OCSPResponse DER, then pad_len zero bytes (never part of an answer:
 *              the writer pads a signature shorter than its key's longest, so that re-signing
 *              an answer writes a value of the same size and LMDB overwrites it in place). With
 *              flag bit 0 set the DER is stored without its final certs_len bytes: the
 *              `[0] EXPLICIT SEQUENCE OF Certificate` certs field of the BasicOCSPResponse is
 *              always the last bytes of the whole DER, so the answer is the stored bytes
 *              followed by the issuer's certs field (the same for all its answers), and the
 *              outer lengths stay valid. Two issuers whose ids share their first 8 bytes are
 *              refused (ocsp_store_issuer_put), so the key names one issuer.
 *   changes    8-byte big-endian sequence -> issuer id + serial: status changes not yet
 *              re-signed; ocspd's refresher consumes them (deletes the entries it handled).
 *   journal    8-byte big-endian sequence -> one-line JSON of each operator change (who, what,
 *              when, before/after), never deleted: the evidence of EID-07/08, RO-08.
 *
 * Backing (schema 4): an answer whose stamp is neither 0 nor OCSP_STAMP_STALE is signed for the
 * status record as it is now: the record exists and has that stamp. A reader of that answer
 * therefore knows the record's stamp without reading the status tree (the pre-signed hit reads
 * one tree, ocsp_response_query.stamp_only). Every writer keeps it so, in the write
 * transaction that changes the store:
 *   - a status record that changes (its stamp with it) marks its serial's answers stale;
 *   - a status record that is removed (ocsp_store_status_purge) removes its serial's answers;
 *   - an answer is written only while the record it was signed for is the one stored (the
 *     record's stamp, or no record for stamp 0): ocsp_store_response_put_txn checks it;
 *   - the upgrade to schema 4 drops the answers that an older writer left unbacked.
 * A new record does not touch the answers: one signed without a record (stamp 0) is not
 * trusted this way, its reader reads the status tree too.
 *
 * Serials are keys as their DER INTEGER content octets (minimal two's complement, so a serial
 * with its top bit set carries a leading 0x00), at most 20 octets plus that zero (RFC 5280).
 *
 * Writers: ocspctl writes with the functions below directly (its transactions may be long:
 * LMDB readers never wait for them). ocspd writes only through its commit pipeline
 * (common/commit.h, DESIGN D10), with the *_txn functions, so that no HTTP thread, signer
 * worker or refresher ever waits for a write transaction or a disk.
 *
 * Thread-safety: as common/store. Records returned are copies owned by the caller.
 */
#ifndef OCSP_OCSP_STORE_H
#define OCSP_OCSP_STORE_H

#include "common/store.h"

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define OCSP_STORE_SCHEMA 4
#define OCSP_FP_LEN 8 /* signer fingerprint and ETag: first bytes of a SHA-256 */
#define OCSP_ISSUER_ID_LEN 32
#define OCSP_SERIAL_MAX 21
#define OCSP_RESP_KEY_ID_LEN 8 /* issuer id bytes in a `responses` key */
#define OCSP_RESP_KEY_MAX (OCSP_RESP_KEY_ID_LEN + OCSP_SERIAL_MAX + 1)
#define OCSP_FORM_NOPARAMS 0x80 /* form byte: CertID hash algorithm without parameters */
/* the stamp of an answer whose status record changed since it was signed: never a record's
 * (those are nanoseconds since the epoch) */
#define OCSP_STAMP_STALE UINT64_MAX

enum ocsp_hash {
    OCSP_HASH_SHA1 = 1,
    OCSP_HASH_SHA256 = 2,
    OCSP_HASH_SHA384 = 3,
    OCSP_HASH_SHA512 = 4
};

enum ocsp_cert_state {
    OCSP_STATE_GOOD = 0,
    OCSP_STATE_REVOKED = 1, /* definitive: can never go back (EID-07) */
    OCSP_STATE_HOLD = 2     /* suspended: revoked/certificateHold until released (EID-08) */
};

#define OCSP_REASON_NONE 0xff /* no CRLReason known */
/* CRLReason values (RFC 5280 §5.3.1) are named by OpenSSL's OCSP_REVOKED_STATUS_* (0..10);
 * 7 is not used. ocsp_reason_valid: a reason a revoked or held record may carry. */
#define OCSP_REASON_UNUSED 7
#define OCSP_REASON_MAX OCSP_REVOKED_STATUS_AACOMPROMISE
static inline bool
ocsp_reason_valid(unsigned reason)
{
    return reason == OCSP_REASON_NONE ||
           (reason <= OCSP_REASON_MAX && reason != OCSP_REASON_UNUSED);
}

struct ocsp_status {
    uint8_t state;           /* enum ocsp_cert_state */
    uint8_t reason;          /* CRLReason (ocsp_reason_valid), or OCSP_REASON_NONE */
    int64_t revocation_time; /* UTC seconds, for REVOKED and HOLD */
    int64_t not_after;       /* certificate expiry (UTC seconds), 0 when unknown */
    uint64_t stamp;          /* changes with every change of the record (ns since the epoch) */
    int64_t updated;         /* UTC seconds of the last change */
};

/* "good", "revoked", "hold" (or "invalid"). */
const char *ocsp_state_name(uint8_t state);

enum ocsp_nonce_policy { OCSP_NONCE_IGNORE = 0, OCSP_NONCE_ECHO = 1, OCSP_NONCE_REQUIRE = 2 };

/* What to answer for a serial with no status record. */
enum ocsp_unissued_policy {
    OCSP_UNISSUED_REVOKED = 0, /* revoked, certificateHold, 1970-01-01, extended-revoke (OCSP-13) */
    OCSP_UNISSUED_UNKNOWN = 1, /* certStatus unknown */
    OCSP_UNISSUED_GOOD = 2     /* only for issuers WITHOUT issued-serial knowledge (CRL-fed):
                                  absent from the CRL means not revoked */
};

enum ocsp_signer_kind { OCSP_SIGNER_CA = 0, OCSP_SIGNER_DELEGATED = 1 };

struct ocsp_issuer_rec {
    uint8_t id[OCSP_ISSUER_ID_LEN];
    char name[64]; /* operator's label, [A-Za-z0-9._-] */
    uint8_t *cert; /* issuer CA certificate DER (owned) */
    size_t cert_len;
    uint8_t signer_kind;  /* enum ocsp_signer_kind */
    uint8_t *signer_cert; /* delegated responder certificate DER (owned), NULL for CA */
    size_t signer_cert_len;
    char key_label[128];          /* signing key: PKCS#11 label, or */
    char key_file[PATH_MAX];      /* a PEM software key */
    int scheme;                   /* enum signer_scheme */
    int hash;                     /* enum signer_hash */
    uint8_t nonce_policy;         /* enum ocsp_nonce_policy */
    uint8_t unissued_policy;      /* enum ocsp_unissued_policy */
    bool archive_cutoff;          /* add archiveCutoff = CA notBefore (ETSI, OCSP-25) */
    uint32_t validity;            /* seconds from thisUpdate to nextUpdate */
    bool crl_fed;                 /* status comes from CRLs: tryLater once past crl_next_update */
    int64_t crl_this_update;      /* of the last imported full CRL */
    int64_t crl_next_update;      /* when the status stops being current: the full CRL's
                                     nextUpdate, or the latest delta's when that is earlier */
    uint64_t crl_number;          /* of the last imported CRL (full or delta) */
    int64_t crl_full_next_update; /* nextUpdate of the last imported full CRL */
    /* purging (issue 10; record fields added after crl_full_next_update, absent in older
     * records: read as not qualified, no status purge) */
    bool qualified;              /* EU qualified CA: status after expiry is never purged
                                    (eIDAS Art. 24(4), LW-09, EID-06) */
    uint64_t purge_status_after; /* seconds after notAfter from which an expired
                                    certificate's status record may be removed by
                                    `ocspctl purge --status`; 0: never (the default).
                                    Refused for a qualified issuer; needs unissued unknown */
};

struct ocsp_store;

/* Open (create when writable) the environment in `dir`; checks the schema version (a newer or
 * unknown one is refused). An older store opened writable is upgraded in place, with one
 * journal entry saying so: schema 1's stored responses are dropped (signed again on demand);
 * schema 2's are re-keyed (CertID DER -> issuer id prefix + serial + form) with their DER
 * kept; then (schema 2 and 3) the answers that no status record backs any longer are dropped
 * (the Backing rule above). A chunk per write transaction: an interrupted upgrade resumes at
 * the next open. Stop ocspd and every ocspctl of an older release first: one that goes on
 * writing after the upgrade does not keep the Backing rule; so the store is first marked as
 * being upgraded (schema_version "Nu", e.g. "3u": every older release refuses to open it, also
 * after an upgrade that stopped part-way, which the next writable open resumes), and the
 * upgrade is refused (logged, NULL; the mark taken back) while another process has the store
 * open (store_reader_other: one that has read it; a process upgrading it is seen so from
 * before its mark, so that another finding the mark meanwhile is refused too, not taking it
 * for an upgrade that stopped).
 * Opened read-only an older store is refused (run ocspctl or ocspd once on it writable).
 * NULL on failure, logged. */
struct ocsp_store *ocsp_store_open(const char *dir, size_t map_size, bool readonly);
/* ocsp_store_open read-only for a check that writes nothing (`ocspd -n`, which the shipped
 * unit runs before ocspd): a store of an older schema, which the writable open of ocspd's
 * start upgrades, is taken as it is (a notice logged) instead of refused. Only its issuers
 * are to be read through it: the other trees may still have the older layout. */
struct ocsp_store *ocsp_store_open_check(const char *dir, size_t map_size);
void ocsp_store_close(struct ocsp_store *s);
/* A seam for tests: called after each chunk a schema upgrade commits (NULL: nothing). */
extern void (*ocsp_store_upgrade_chunk_hook)(void);

/* The issuer id of a certificate (SHA-256 of its subjectPublicKey contents). */
int ocsp_issuer_id_of(const uint8_t *cert_der, size_t len, uint8_t id[OCSP_ISSUER_ID_LEN]);

/* Add or replace an issuer and its four certids entries; bumps issuers_gen. ST_EXISTS (logged)
 * for a new issuer whose id shares its first OCSP_RESP_KEY_ID_LEN bytes with a stored one's. */
int ocsp_store_issuer_put(struct ocsp_store *s, const struct ocsp_issuer_rec *rec);

/* An `ocspctl import-crl` under way for an issuer: its CRL's crlNumber and thisUpdate, written
 * with its first chunk and removed with its last, so that a CRL older than one whose import
 * stopped part-way is refused (RFC 5280 §5.2.3) instead of undoing the chunks already in. */
struct ocsp_crl_pending {
    uint64_t number;     /* its crlNumber; 0: none */
    int64_t this_update; /* of a full CRL; 0 for a delta */
};
/* ST_OK (p filled), ST_NOTFOUND (none under way). */
int ocsp_store_crl_pending_get(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                               struct ocsp_crl_pending *p);
/* Written in the open batch when there is one; p NULL removes it. */
int ocsp_store_crl_pending_put(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                               const struct ocsp_crl_pending *p);
/* Whether an issuer record may be stored: ST_OK, or ST_INVALID with the reason in *why (a
 * static string): a qualified issuer with purge_status_after (LW-09), or purge_status_after
 * with an unissued policy other than unknown (a purged serial would be answered as never
 * issued: revoked, or good). ocsp_store_issuer_put refuses what this refuses. */
int ocsp_issuer_purge_check(const struct ocsp_issuer_rec *rec, const char **why);
/* Fetch by id into *rec (allocations owned by rec: free with ocsp_issuer_rec_clear). */
int ocsp_store_issuer_get(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                          struct ocsp_issuer_rec *rec);
void ocsp_issuer_rec_clear(struct ocsp_issuer_rec *rec);
/* Call fn for each issuer (rec valid during the call only); fn returns false to stop. */
int ocsp_store_issuer_walk(struct ocsp_store *s,
                           bool (*fn)(void *ctx, const struct ocsp_issuer_rec *rec), void *ctx);
/* Issuer id for a CertID's hash algorithm and hashes; ST_NOTFOUND when not served. */
int ocsp_store_issuer_by_hashes(struct ocsp_store *s, enum ocsp_hash h, const uint8_t *name_hash,
                                const uint8_t *key_hash, size_t hash_len,
                                uint8_t id[OCSP_ISSUER_ID_LEN]);
/* Current issuers generation (changes whenever an issuer is added, changed or removed). */
uint64_t ocsp_store_issuers_gen(struct ocsp_store *s);

/* Status of one serial; ST_NOTFOUND when there is no record. */
int ocsp_store_status_get(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                          const uint8_t *serial, size_t serial_len, struct ocsp_status *out);
/* Same, and *snap gets the store snapshot it was read in (store_get_snap): while
 * ocsp_store_last_commit() still returns that value, the store holds what was read. */
int ocsp_store_status_get_snap(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                               const uint8_t *serial, size_t serial_len, struct ocsp_status *out,
                               uint64_t *snap);
/* The last transaction committed to the store by any process (store_last_commit). */
uint64_t ocsp_store_last_commit(struct ocsp_store *s);

/*
 * Operator change of one serial's status, in one write transaction with its journal entry
 * and its `changes` entry. Rules (EID-07/08, OCSP-16): REVOKED is final (any change away from
 * it is refused with ST_EXISTS and journalled as refused); HOLD -> GOOD (release) and
 * HOLD -> REVOKED allowed; GOOD -> HOLD/REVOKED allowed. A GOOD record for a new serial records
 * that it was issued. `who` names the operator (journal). `not_after` 0 keeps the stored one.
 * The rules are ocsp_rules' (pure, unit-tested as a table).
 * Repeats never weaken a status: REVOKED -> REVOKED keeps the earliest revocation time and
 * may only change the reason from none/unspecified to a specific one or to keyCompromise (any
 * other reason change, removing the reason included, is refused like the above); HOLD -> HOLD
 * keeps the original hold start time. A repeat that changes nothing is ST_OK, unjournalled.
 */
/* A change asked for (by an operator, a CRL or an index import). */
struct ocsp_status_change {
    uint8_t state;           /* enum ocsp_cert_state */
    uint8_t reason;          /* CRLReason (ocsp_reason_valid) or OCSP_REASON_NONE */
    int64_t revocation_time; /* REVOKED, HOLD */
    int64_t not_after;       /* certificate expiry; 0 keeps the stored one */
};

/* What ocsp_store_status_set did. */
enum ocsp_set_outcome {
    OCSP_SET_NEW = 1,     /* a record was created */
    OCSP_SET_SAME = 2,    /* nothing changed (no journal entry, no `changes` entry) */
    OCSP_SET_CHANGED = 3, /* an existing record was changed */
    OCSP_SET_REFUSED = 4  /* refused (ST_EXISTS), journalled */
};

/* Flags of ocsp_store_status_apply. OCSP_SET_BULK: a bulk import; a new GOOD record is not
 * journalled one by one (the import journals itself once: file, digest, counts).
 * OCSP_SET_ISSUED: "this serial was issued"; an existing record keeps its state, reason and
 * revocation time (only not_after is set). */
#define OCSP_SET_BULK 1u
#define OCSP_SET_ISSUED 2u
/* OCSP_SET_APPEND: the key sorts after every key of the status database (the caller checked
 * with ocsp_store_status_past_last in the same write transaction, and applies keys in
 * ascending order, each once): no lookup, the record is appended (MDB_APPEND: leaf pages
 * filled in order and whole). ST_STORE when the key is not past the last one (the batch then
 * fails at its commit: never a record silently left out). */
#define OCSP_SET_APPEND 4u

struct ocsp_status_set {
    const uint8_t *issuer_id;
    const uint8_t *serial;
    size_t serial_len;
    struct ocsp_status_change change;
    const char *who; /* the operator, for the journal */
};

/* A `changes` entry (re-sign now, EID-05) is written only for a changed record of a serial
 * that had one: a new serial has no pre-signed answer backed by a record (an answer stored
 * for it before, with stamp 0, no longer matches: it is signed again on demand, or by
 * `ocspctl presign`). */
int ocsp_store_status_set(struct ocsp_store *s, const struct ocsp_status_set *req);
/* The same with flags (OCSP_SET_*); *outcome (when not NULL) gets what was done, when the
 * result is ST_OK or ST_EXISTS. */
int ocsp_store_status_apply(struct ocsp_store *s, const struct ocsp_status_set *req, unsigned flags,
                            enum ocsp_set_outcome *outcome);

/* *past: whether the status key of (id, serial) sorts after every status key of the store
 * (true when there is none), read in the open batch or a transaction of its own. */
int ocsp_store_status_past_last(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                                const uint8_t *serial, size_t serial_len, bool *past);

/* Walk the status records of one issuer in serial order (key order: bytewise over the
 * content octets, a shorter key first when one is a prefix of the other). fn gets borrowed
 * pointers valid during the call only; it returns false to stop. The whole walk is one read
 * transaction: fn must not do slow work (signing, network I/O). */
int ocsp_store_status_walk(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                           bool (*fn)(void *ctx, const uint8_t *serial, size_t serial_len,
                                      const struct ocsp_status *st),
                           void *ctx);
/* The same, starting at the first serial that sorts after `start` (start itself is skipped,
 * whether or not it has a record); start NULL walks from the first serial. For long jobs done
 * in chunks: stop the walk (fn returns false) after a chunk, work on it with no transaction
 * open, then resume from the last serial seen. ST_INVALID for a start longer than
 * OCSP_SERIAL_MAX or empty. */
int ocsp_store_status_walk_from(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                                const uint8_t *start, size_t start_len,
                                bool (*fn)(void *ctx, const uint8_t *serial, size_t serial_len,
                                           const struct ocsp_status *st),
                                void *ctx);

/* A stored pre-signed response (the value header, and the answer). */
struct ocsp_stored_response {
    uint8_t form;       /* enum ocsp_hash of the CertID, | OCSP_FORM_NOPARAMS */
    uint32_t certs_len; /* certs field bytes elided from the stored DER (0: none) */
    uint16_t pad_len;   /* padding stored after the DER (never part of the answer) */
    uint64_t stamp;     /* status stamp it was signed for (0: serial had no record) */
    int64_t this_update, next_update, produced_at;
    uint8_t signer_fp[OCSP_FP_LEN];
    uint8_t etag[OCSP_FP_LEN];
    uint8_t issuer_id[OCSP_ISSUER_ID_LEN]; /* a walk: the issuer whose id the key begins with */
    uint8_t serial[OCSP_SERIAL_MAX];
    size_t serial_len;
    /* ocsp_store_response_get: the whole OCSPResponse DER (malloc, caller frees), the elided
     * certs put back, without the padding; a walk: NULL */
    uint8_t *der;
    size_t der_len;
};

/* What to read: the answer stored for (issuer, serial, form) and, with `status`, the serial's
 * status record in the same read transaction (so the caller can tell whether the answer is
 * still current). With `stamp_only` too, only the record's stamp is wanted: an answer signed
 * for a record (stamp neither 0 nor stale) gives it (the Backing rule: status_found, and
 * status.stamp; the record's other fields are not read, zero), the others read the record.
 * `certs` is the issuer's certs field, put back where it was elided. */
struct ocsp_response_query {
    const uint8_t *issuer_id;
    const uint8_t *serial;
    size_t serial_len;
    uint8_t form; /* enum ocsp_hash, | OCSP_FORM_NOPARAMS (ocsp_certid_form) */
    bool status;
    bool stamp_only;
    const uint8_t *certs;
    size_t certs_len;
};

struct ocsp_response_found {
    struct ocsp_stored_response resp;
    struct ocsp_status status;
    bool status_found;
};

/* ST_OK, or ST_NOTFOUND when absent or when the answer's certs were elided and `certs` does
 * not have their length (another signer's answer: the caller signs again). */
int ocsp_store_response_get(struct ocsp_store *s, const struct ocsp_response_query *q,
                            struct ocsp_response_found *out);

/* The `responses` key of (issuer, serial, form) into key; returns its length (0: serial
 * empty or too long). Keys sort as the answers are laid out: by issuer prefix, serial, form. */
size_t ocsp_response_key(const uint8_t issuer_id[OCSP_ISSUER_ID_LEN], const uint8_t *serial,
                         size_t serial_len, uint8_t form, uint8_t key[OCSP_RESP_KEY_MAX]);

/* A pre-signed response to store. */
struct ocsp_response_put {
    uint8_t form; /* enum ocsp_hash of the CertID, | OCSP_FORM_NOPARAMS */
    const uint8_t *issuer_id;
    const uint8_t *serial;
    size_t serial_len;
    uint64_t stamp;
    int64_t this_update, next_update, produced_at;
    uint8_t signer_fp[OCSP_FP_LEN];
    uint8_t etag[OCSP_FP_LEN];
    const uint8_t *der; /* the whole OCSPResponse */
    size_t der_len;
    size_t certs_len; /* its last certs_len bytes are the issuer's certs field: not stored */
    size_t pad_len;   /* zero bytes stored after it (at most UINT16_MAX) */
    bool append;      /* written in key order (presign): appended (MDB_APPEND, pages filled
                         in order) while the key sorts after every stored one */
    bool replace;     /* a refresh: written only over the answer still stored; one a purge
                         removed meanwhile is not written back (ST_NOTFOUND, nothing written) */
};
/* Store (replace) one response inside the caller's write transaction: the commit pipeline's,
 * since ocspd never writes outside it (DESIGN D10). ST_NOTFOUND, nothing written, also when
 * the status record it was signed for (r->stamp) is no longer the one stored: changed or
 * removed since, or added since for stamp 0 (the Backing rule). ST_INVALID for a form that is
 * not a hash of enum ocsp_hash (| OCSP_FORM_NOPARAMS): a status change marks only those. */
int ocsp_store_response_put_txn(struct ocsp_store *s, struct store_txn *t,
                                const struct ocsp_response_put *r);
/* Walk stored responses in key order: fn gets each response's header, its issuer id and
 * serial from the key (r->der is NULL; valid during the call only); it returns false to stop.
 * Answers whose key names no stored issuer are not passed. */
typedef bool (*ocsp_response_walk_fn)(void *ctx, const struct ocsp_stored_response *r);
int ocsp_store_response_walk(struct ocsp_store *s, ocsp_response_walk_fn fn, void *ctx);
/* The same from the first key >= start (start_len 0: from the first). */
int ocsp_store_response_walk_from(struct ocsp_store *s, const uint8_t *start, size_t start_len,
                                  ocsp_response_walk_fn fn, void *ctx);

/*
 * Purging (issue 10 §3), per issuer. Both work in chunks of write transactions (readers never
 * wait; an interrupted purge is resumed by running it again) and count what they removed in
 * *n. The caller journals the operation (ocspctl purge).
 *
 * ocsp_store_responses_purge: drop the pre-signed answers (every CertID form) of the serials
 * of issuer `id` (a range of keys: the issuer's prefix) whose status record has a known not_after
 * earlier than `before` (an expired certificate). The status records stay; a dropped answer is
 * signed again on demand when asked for (and not by the refresher, which only re-signs stored
 * answers). Also dropped: answers signed for a status record that is gone (a re-sign that raced
 * a status purge; never served). Answers signed without a record (stamp 0) stay. Allowed for
 * every issuer.
 *
 * ocsp_store_status_purge: remove the status records of issuer `id` whose not_after is known
 * and earlier than now - purge_status_after (past the issuer's archive cutoff), with their
 * answers (counted in *answers). Refused with ST_INVALID (nothing removed) unless the stored issuer
 * allows it (purge_status_after > 0, not qualified, unissued unknown: ocsp_issuer_purge_check);
 * ST_NOTFOUND for an unknown issuer. A purged serial is then answered as a serial without a
 * record: certStatus unknown (the policy the issuer must have). The issuer's settings are
 * read again in each write transaction that removes, and each record checked as it is then:
 * settings changed meanwhile (marked qualified, purge-status-after changed or removed) apply
 * from the next chunk on (ST_INVALID when they no longer allow it; what went before stays
 * removed). *n counts the records actually removed.
 */
/* Tests only (NULL otherwise): called by ocsp_store_status_purge after it read a chunk of
 * records to remove and before its write transaction removes them, so that a test can change
 * the store in between (as a concurrent ocspctl would). */
extern void (*ocsp_store_purge_chunk_hook)(struct ocsp_store *s, void *arg);
int ocsp_store_responses_purge(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                               int64_t before, size_t *n);
int ocsp_store_status_purge(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN], int64_t now,
                            size_t *n, size_t *answers);

/* Pending status changes: take up to `max` (issuer id + serial), oldest first, and delete
 * them, inside the caller's write transaction (the commit pipeline's). Returns the count in
 * *n. */
struct ocsp_change {
    uint8_t issuer_id[OCSP_ISSUER_ID_LEN];
    uint8_t serial[OCSP_SERIAL_MAX];
    size_t serial_len;
    uint8_t form; /* 0: both pre-signed forms; else the one form of a stored answer (refresh) */
};
int ocsp_store_changes_take_txn(struct ocsp_store *s, struct store_txn *t, struct ocsp_change *out,
                                size_t max, size_t *n);
/* Whether status changes are pending, read without a write transaction (the refresher asks 4
 * times a second; an idle ocspd must not commit for it). */
int ocsp_store_changes_pending(struct ocsp_store *s, bool *pending);

/* The longest journal line (JSON, without its chain prefix) the store takes. */
#define OCSP_JOURNAL_LINE_MAX 16384

/* Journal an operator event (also used for refused changes and imports); ST_INVALID for a
 * line that is not one JSON object or is longer than OCSP_JOURNAL_LINE_MAX. */
int ocsp_store_journal(struct ocsp_store *s, const char *json_line);

/*
 * Batch mode, for imports: between ocsp_store_batch_begin() and ocsp_store_batch_commit()
 * every write of this handle (status changes, journal, issuer updates) goes into one write
 * transaction, committed (and synced) once; a failure inside the batch aborts all of it at
 * commit (ST_STORE). Readers see nothing of the batch until it commits. One batch per handle,
 * used from one thread; no other write transaction may be begun on that thread meanwhile.
 */
int ocsp_store_batch_begin(struct ocsp_store *s);
int ocsp_store_batch_commit(struct ocsp_store *s);
/* Commit what the batch holds so far and go on in a new write transaction (a chunked
 * import: bounded memory, and what was committed stays when the import stops later).
 * ST_STORE (batch aborted, none open) when a write of this chunk failed or the commit did. */
int ocsp_store_batch_checkpoint(struct ocsp_store *s);
void ocsp_store_batch_abort(struct ocsp_store *s);
/* Stored answers marked stale or removed by the open batch's status changes since it began or
 * was last checkpointed (the Backing rule): LMDB copies each one's page, the old one freed
 * only when the transaction commits, so a chunk of many revocations of pre-signed serials
 * needs room for all of those pages; an import checkpoints when this grows. 0 without a
 * batch. */
size_t ocsp_store_batch_marked(const struct ocsp_store *s);

/* The underlying common/store (for health and usage). */
struct store *ocsp_store_raw(struct ocsp_store *s);
/* Opened read-only (ocspd -n, ocspctl's read commands). */
bool ocsp_store_readonly(const struct ocsp_store *s);

#endif
