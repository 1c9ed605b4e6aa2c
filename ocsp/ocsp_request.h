/*
 * ocsp_request: OCSPRequest parsing and checks (RFC 6960 §4.1, RFC 9654, RFC 9919 §2.1) and
 * the GET form's decoding (RFC 6960 App. A.1; RFC 9919 §5).
 *
 * Parsing is OpenSSL's (d2i_OCSP_REQUEST) after a size check, with a "consumed everything" and
 * a strict-DER check (the request must re-encode to the bytes received), as in tsa_request,
 * and each extension's critical flag absent or 01 01 ff (OpenSSL re-encodes a BOOLEAN with the
 * octet it read, so the re-encode cannot see an explicit FALSE).
 * Each CertID is kept as the exact DER received so the response can echo it (OCSP-10).
 * Checks, in this order (first failure -> malformedRequest with a reason):
 *   version v1; 1..OCSP_MAX_CERTIDS CertIDs; each CertID hash OID known (SHA-1/256/384/512;
 *   another hash gives that CertID hash = 0 -> answered "unknown", not an error) with hash
 *   lengths matching it; serial 1..OCSP_SERIAL_MAX-1 content octets;
 *   requestExtensions: nonce (1.3.6.1.5.5.7.48.1.2) per RFC 9654: extnValue holds a DER OCTET
 *   STRING whose content is 1..128 octets (a legacy raw value of 1..128 octets is accepted
 *   too); any other extension: ignored when not critical, malformedRequest when critical
 *   (OCSP-23, documented); single-request extensions the same; an extension repeated in
 *   either list is malformedRequest (RFC 5280 §4.2; checked by sorting, O(n log n)).
 * A signature on the request is ignored and requestorName treated as absent (OCSP-24).
 */
#ifndef OCSP_OCSP_REQUEST_H
#define OCSP_OCSP_REQUEST_H

#include "ocsp/ocsp_certid.h"
#include "ocsp/ocsp_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OCSP_REQ_MAX 16384  /* bytes of a DER OCSPRequest */
#define OCSP_MAX_CERTIDS 16 /* CertIDs per request (OCSP-27) */
#define OCSP_NONCE_MAX 128  /* RFC 9654 */
struct ocsp_request {
    struct ocsp_certid ids[OCSP_MAX_CERTIDS];
    size_t n;
    bool has_nonce;
    uint8_t nonce_value[OCSP_NONCE_MAX + 4]; /* the nonce extnValue contents, echoed verbatim */
    size_t nonce_value_len;
    size_t nonce_len; /* octets of the nonce itself */
};

/* Parse and check. ST_OK with *out filled, or ST_INVALID (malformedRequest) with *why set
 * (static text). */
int ocsp_request_parse(const uint8_t *der, size_t len, struct ocsp_request *out, const char **why);

/* Empty the request: no CertID, no nonce (its CertID slots are left as they are). */
void ocsp_request_reset(struct ocsp_request *out);

/* a and b hold the same CertIDs (every field) and the same nonce */
bool ocsp_request_same(const struct ocsp_request *a, const struct ocsp_request *b);

/*
 * Decode the GET form: `path` is the raw request path after the OCSP base path (for example
 * "MEow..." or "/MEow%2B..%3D"): leading slashes skipped, percent-escapes decoded, '+' kept as
 * '+' (base64, not form encoding), '/' inside the base64 kept; then base64 (with or without
 * padding). Writes at most cap bytes. ST_OK, or ST_INVALID when it is not url-encoded base64
 * or too long.
 */
int ocsp_get_decode(const char *path, uint8_t *out, size_t cap, size_t *len);

#endif
