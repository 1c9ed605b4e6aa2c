/*
 * ocsp_request_fast: the fast path of request parsing (issue 10 item 2) for the two shapes
 * nearly every request has: one CertID without a nonce (RFC 9919 §2.1, the pre-signed hit) and
 * one CertID with the nonce of RFC 9654 (an answer signed for that request). An OCSPRequest
 * whose TBSRequest holds a requestList of one Request with only its CertID (no version, no
 * requestorName, no single-request extensions, no signature), with the SHA-1 or SHA-256 CertID
 * the store pre-signs, and either no requestExtensions or exactly one: the nonce, critical
 * or not, whose extnValue is an OCTET STRING of 1..128 octets; all of it DER (minimal lengths,
 * minimal non-negative serial).
 *
 * It either fills the request exactly as ocsp_request_parse() would for the same bytes (n = 1,
 * ids[0], the nonce fields), or declines (false), and then the full parser decides, its errors
 * and the legacy raw nonce included: the fast path never accepts what the full parser refuses
 * (tests/unit/check_ocsp_request_fast.c and the fuzz target compare the two on every input).
 * Read by OpenSSL, a nonce request cost 9 us of a 176 us nonce answer (perf, issue 10).
 */
#ifndef OCSP_OCSP_REQUEST_FAST_H
#define OCSP_OCSP_REQUEST_FAST_H

#include "ocsp/ocsp_request.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool ocsp_request_fast(const uint8_t *der, size_t len, struct ocsp_request *req);

#endif
