/*
 * libFuzzer target: tsa_request_parse() on arbitrary bytes (RFC 3161 §2.4.1 request checks).
 * Properties checked beyond "no crash": a granted parse yields a DER messageImprint that
 * starts with a SEQUENCE, and echoed nonce/policy fields are complete TLVs.
 */
#include "common/der.h"
#include "tsa/tsa_request.h"

#include <openssl/objects.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
whole_tlv(const uint8_t *p, size_t n)
{
    const uint8_t *q = p, *c;
    size_t cl;
    uint8_t tag;

    return der_read(&q, p + n, &tag, &c, &cl) && q == p + n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int hashes[] = {NID_sha256, NID_sha384, NID_sha512, NID_sha3_256};
    struct tsa_request req;
    const char *why = NULL;

    if (tsa_request_parse(data, size, hashes, 4, &req, &why) == TSA_FAIL_NONE) {
        if (!whole_tlv(req.imprint, req.imprint_len) || req.imprint[0] != DER_SEQUENCE)
            abort();
        if (req.has_nonce && (!whole_tlv(req.nonce, req.nonce_len) || req.nonce[0] != 0x02))
            abort();
        if (req.has_policy && (!whole_tlv(req.policy, req.policy_len) || req.policy[0] != 0x06))
            abort();
    } else if (why == NULL) {
        abort();
    }
    return 0;
}
