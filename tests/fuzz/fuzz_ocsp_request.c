/*
 * libFuzzer target: ocsp_request_parse() (RFC 6960 §4.1, RFC 9654 nonce) and ocsp_get_decode()
 * (RFC 6960 App. A.1) on arbitrary bytes. Properties checked beyond "no crash": an accepted
 * request has 1..OCSP_MAX_CERTIDS CertIDs, each a complete SEQUENCE TLV with a serial and
 * hash lengths in range, a nonce of 1..128 octets; a refusal always has a reason; and the
 * base64 GET form of an accepted request decodes back to the same bytes.
 */
#include "common/der.h"
#include "common/status.h"
#include "ocsp/ocsp_request.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
whole_tlv(const uint8_t *p, size_t n)
{
    const uint8_t *q = p, *c;
    size_t cl;
    uint8_t tag;

    return der_read(&q, p + n, &tag, &c, &cl) && q == p + n;
}

static void
check_certid(const struct ocsp_certid *id)
{
    static const size_t hash_len[] = {0, 20, 32, 48, 64};

    if (id->der_len > OCSP_CERTID_MAX || !whole_tlv(id->der, id->der_len) ||
        id->der[0] != DER_SEQUENCE)
        abort();
    if (id->serial_len == 0 || id->serial_len > OCSP_SERIAL_MAX || (id->serial[0] & 0x80))
        abort();
    if ((unsigned)id->hash > OCSP_HASH_SHA512 || id->hash_len != hash_len[id->hash])
        abort();
}

/* The GET form of an accepted request decodes to the same DER. */
static void
check_get_round_trip(const uint8_t *der, size_t len)
{
    char *b64 = malloc(len / 3 * 4 + 8);
    uint8_t *back = malloc(len);
    size_t blen = 0;

    if (b64 == NULL || back == NULL)
        abort();
    EVP_EncodeBlock((unsigned char *)b64, der, (int)len);
    if (ocsp_get_decode(b64, back, len, &blen) != ST_OK || blen != len || memcmp(back, der, len))
        abort();
    free(back);
    free(b64);
}

/* Short inputs are also tried as a GET path; what decodes must then parse safely. */
static void
fuzz_get(const uint8_t *data, size_t size)
{
    char path[1024];
    uint8_t der[sizeof(path)];
    size_t len = 0;
    struct ocsp_request req;
    const char *why = NULL;

    if (size >= sizeof(path))
        return;
    memcpy(path, data, size);
    path[size] = '\0';
    if (ocsp_get_decode(path, der, sizeof(der), &len) != ST_OK)
        return;
    if (len == 0 || len > sizeof(der))
        abort();
    if (ocsp_request_parse(der, len, &req, &why) != ST_OK && why == NULL)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ocsp_request req;
    const char *why = NULL;

    if (ocsp_request_parse(data, size, &req, &why) == ST_OK) {
        if (why != NULL || req.n == 0 || req.n > OCSP_MAX_CERTIDS)
            abort();
        for (size_t i = 0; i < req.n; i++)
            check_certid(&req.ids[i]);
        if (req.has_nonce &&
            (req.nonce_len == 0 || req.nonce_len > OCSP_NONCE_MAX ||
             req.nonce_value_len < req.nonce_len || req.nonce_value_len > OCSP_NONCE_MAX + 4))
            abort();
        check_get_round_trip(data, size);
    } else if (why == NULL) {
        abort();
    }
    fuzz_get(data, size);
    return 0;
}
