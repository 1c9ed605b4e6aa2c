/*
 * ocsp_request_fast: the fast path of request parsing (issue 10 item 2) for the one shape
 * nearly every pre-signed hit has (RFC 9919 §2.1: one CertID, no nonce): an OCSPRequest whose
 * TBSRequest holds only a requestList of one Request with only its CertID (no version, no
 * requestorName, no extensions, no signature), with the SHA-1 or SHA-256 CertID the store
 * pre-signs, all of it DER (minimal lengths, minimal non-negative serial).
 *
 * It either fills the CertID exactly as ocsp_request_parse() would fill ids[0] for the same
 * bytes, or declines (false), and then the full parser decides, its errors included: the fast
 * path never accepts what the full parser refuses (tests/unit/check_ocsp_request_fast.c and the
 * fuzz target compare the two on every input).
 */
#ifndef OCSP_OCSP_REQUEST_FAST_H
#define OCSP_OCSP_REQUEST_FAST_H

#include "ocsp/ocsp_request.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool ocsp_request_fast(const uint8_t *der, size_t len, struct ocsp_certid *id);

#endif
