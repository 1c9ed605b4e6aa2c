/*
 * tsa_request: parse and check a TimeStampReq (RFC 3161 §2.4.1) before anything is signed.
 *
 * Parsing is OpenSSL's (d2i_TS_REQ) after a size check; we then insist on strict DER (the
 * request must re-encode to exactly the bytes received: no BER indefinite lengths, no trailing
 * bytes) and apply the checks in a fixed order: version, extensions, imprint algorithm
 * (allow-list, ALG-01), imprint length, nonce size. Each failure maps to one PKIFailureInfo bit
 * (TSP-03) and a short text for the statusString.
 */
#ifndef TSA_TSA_REQUEST_H
#define TSA_TSA_REQUEST_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* PKIFailureInfo bits (RFC 3161 §2.4.2). */
enum tsa_fail {
    TSA_FAIL_NONE = -1,
    TSA_FAIL_BAD_ALG = 0,
    TSA_FAIL_BAD_REQUEST = 2,
    TSA_FAIL_BAD_DATA_FORMAT = 5,
    TSA_FAIL_TIME_NOT_AVAILABLE = 14,
    TSA_FAIL_UNACCEPTED_POLICY = 15,
    TSA_FAIL_UNACCEPTED_EXTENSION = 16,
    TSA_FAIL_ADD_INFO_NOT_AVAILABLE = 17,
    TSA_FAIL_SYSTEM_FAILURE = 25
};
/* PKIFailureInfo bits 0..25 (RFC 3161 §2.4.2, RFC 4210): the size of per-failInfo tables */
#define TSA_FAIL_BITS 26
static_assert(TSA_FAIL_SYSTEM_FAILURE < TSA_FAIL_BITS, "failInfo bit outside the tables");

#define TSA_REQ_MAX 8192  /* a TimeStampReq is far smaller; bigger is not one */
#define TSA_NONCE_MAX 128 /* octets of the nonce INTEGER content */

/* What a checked request contributes to the token; every field is the exact DER received. */
struct tsa_request {
    uint8_t imprint[8 + 32 + 64]; /* MessageImprint SEQUENCE, echoed byte for byte (TSP-07) */
    size_t imprint_len;
    int hash_nid;       /* imprint hash algorithm */
    uint8_t policy[64]; /* reqPolicy OBJECT IDENTIFIER TLV, when has_policy */
    size_t policy_len;
    bool has_policy;
    uint8_t nonce[TSA_NONCE_MAX + 4]; /* nonce INTEGER TLV, when has_nonce (TSP-09) */
    size_t nonce_len;
    bool has_nonce;
    bool cert_req;
};

/* Parse and check. Returns TSA_FAIL_NONE with *out filled, or the failure bit with *why set
 * to a static text. `hashes` lists the accepted imprint hash NIDs. */
enum tsa_fail tsa_request_parse(const uint8_t *der, size_t len, const int *hashes, size_t n_hashes,
                                struct tsa_request *out, const char **why);

#endif
