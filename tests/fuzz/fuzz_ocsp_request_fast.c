/*
 * libFuzzer target: ocsp_request_fast() (issue 10 item 2), the fast path of request parsing,
 * against the full parser ocsp_request_parse() on arbitrary bytes. Property beyond "no crash":
 * whatever the fast path accepts, the full parser accepts too, as one CertID, with every field
 * of the CertID and the nonce the same (the fast path never answers what the full parser
 * refuses, nor answers it differently); whatever it declines it leaves without a CertID.
 */
#include "ocsp/ocsp_request.h"
#include "ocsp/ocsp_request_fast.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ocsp_request fast, full;
    const char *why = NULL;

    if (!ocsp_request_fast(data, size, &fast)) {
        if (fast.n != 0 || fast.has_nonce || fast.nonce_len != 0 || fast.nonce_value_len != 0)
            abort();
        return 0;
    }
    if (ocsp_request_parse(data, size, &full, &why) != 0 || full.n != 1 ||
        !ocsp_request_same(&fast, &full))
        abort();
    return 0;
}
