/*
 * ocsp_response: DER of OCSP responses (RFC 6960 §4.2; RFC 9919 §2.2), written with
 * common/der. The signature is made elsewhere (common/signer): ocsp_tbs_build() writes the
 * tbsResponseData to be signed, ocsp_response_assemble() wraps it with the signature into a
 * successful OCSPResponse, ocsp_error_response() writes an unsigned error status.
 *
 *  - version v1 is the DEFAULT and never encoded (OCSP-07)
 *  - ResponderID byKey: SHA-1 of the signer's subjectPublicKey contents (OCSP-08)
 *  - times are GeneralizedTime, whole seconds, Z (OCSP-09)
 *  - one SingleResponse per CertID, CertID copied byte for byte (OCSP-10)
 *  - revoked: revocationTime + revocationReason [0] when known (OCSP-15); never-issued serials:
 *    revoked, certificateHold, 1970-01-01T00:00:00Z and the extended-revoke responseExtension,
 *    DER NULL, not critical (OCSP-13/14)
 *  - nonce echoed in responseExtensions with the request's extnValue bytes (OCSP-17)
 *  - archiveCutoff singleExtension when asked (OCSP-25)
 */
#ifndef OCSP_OCSP_RESPONSE_H
#define OCSP_OCSP_RESPONSE_H

#include "common/der.h"

#include <assert.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ocsp_resp_status {
    OCSP_RESP_SUCCESSFUL = 0,
    OCSP_RESP_MALFORMED = 1,
    OCSP_RESP_INTERNAL_ERROR = 2,
    OCSP_RESP_TRY_LATER = 3,
    OCSP_RESP_SIG_REQUIRED = 5,
    OCSP_RESP_UNAUTHORIZED = 6
};
/* OCSPResponseStatus values 0..6 (RFC 6960 §4.2.1): the size of per-status tables */
#define OCSP_RESP_STATUS_COUNT 7
static_assert(OCSP_RESP_UNAUTHORIZED < OCSP_RESP_STATUS_COUNT, "status outside the tables");

enum ocsp_single_status { OCSP_SINGLE_GOOD = 0, OCSP_SINGLE_REVOKED = 1, OCSP_SINGLE_UNKNOWN = 2 };

struct ocsp_single {
    const uint8_t *certid; /* CertID DER to echo */
    size_t certid_len;
    enum ocsp_single_status status;
    int64_t revocation_time; /* REVOKED */
    uint8_t reason;          /* CRLReason, or OCSP_REASON_NONE (ocsp_store.h) */
    int64_t this_update;
    int64_t next_update; /* 0: no nextUpdate */
    bool archive_cutoff;
    int64_t archive_cutoff_time;
};

/* ResponderID byKey ([2] EXPLICIT OCTET STRING SHA-1(subjectPublicKey)) of a signer cert,
 * into out (cap >= 24). Returns the length, 0 on failure. */
size_t ocsp_responder_id(X509 *signer, uint8_t *out, size_t cap);

/* Write tbsResponseData into d. `nonce_value` (may be NULL) is the request's nonce extnValue
 * contents to echo; `extended_revoke` adds that responseExtension. */
struct ocsp_tbs_spec {
    int64_t produced_at;
    const struct ocsp_single *singles;
    size_t n;
    const uint8_t *nonce_value; /* may be NULL */
    size_t nonce_len;
    bool extended_revoke;
};
void ocsp_tbs_build(struct der *d, const uint8_t *responder_id, size_t rid_len,
                    const struct ocsp_tbs_spec *spec);

/* OCSPResponse { successful, ResponseBytes { id-pkix-ocsp-basic, BasicOCSPResponse {
 * tbs, signatureAlgorithm, signature BIT STRING, certs [0] (pre-encoded, may be NULL) } } }.
 * *out is malloc()ed. ST_OK or ST_NOMEM. */
struct ocsp_signed_parts {
    const uint8_t *tbs;
    size_t tbs_len;
    const uint8_t *sigalg; /* AlgorithmIdentifier DER */
    size_t sigalg_len;
    const uint8_t *sig;
    size_t sig_len;
    const uint8_t *certs; /* the certs field, or NULL */
    size_t certs_len;
};
int ocsp_response_assemble(const struct ocsp_signed_parts *parts, uint8_t **out, size_t *out_len);

/* The certs field ([0] EXPLICIT SEQUENCE OF Certificate) for a delegated signer cert;
 * *out malloc()ed. ST_OK or ST_NOMEM. ocsp_response_assemble puts it last: it is always the
 * final bytes of the OCSPResponse DER (the store keeps answers without it, ocsp_store.h). */
int ocsp_certs_field(X509 *signer, uint8_t **out, size_t *out_len);

/* An unsigned OCSPResponse with only a responseStatus (5 bytes). */
size_t ocsp_error_response(enum ocsp_resp_status st, uint8_t *buf, size_t cap);

#endif
