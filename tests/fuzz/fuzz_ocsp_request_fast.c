/*
 * libFuzzer target: ocsp_request_fast() (issue 10 item 2), the fast path of request parsing,
 * against the full parser ocsp_request_parse() on arbitrary bytes. Property beyond "no crash":
 * whatever the fast path accepts, the full parser accepts too, as one CertID without a nonce,
 * with every field of the CertID the same (the fast path never answers what the full parser
 * refuses, nor answers it differently).
 */
#include "ocsp/ocsp_request.h"
#include "ocsp/ocsp_request_fast.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
same_certid(const struct ocsp_certid *a, const struct ocsp_certid *b)
{
    return a->der_len == b->der_len && memcmp(a->der, b->der, a->der_len) == 0 &&
           a->hash == b->hash && a->hash_len == b->hash_len &&
           memcmp(a->name_hash, b->name_hash, a->hash_len) == 0 &&
           memcmp(a->key_hash, b->key_hash, a->hash_len) == 0 && a->serial_len == b->serial_len &&
           memcmp(a->serial, b->serial, a->serial_len) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ocsp_request req;
    struct ocsp_certid id;
    const char *why = NULL;

    if (!ocsp_request_fast(data, size, &id))
        return 0;
    if (ocsp_request_parse(data, size, &req, &why) != 0 || req.n != 1 || req.has_nonce ||
        !same_certid(&id, &req.ids[0]))
        abort();
    return 0;
}
