/*
 * libFuzzer target: ocsp_get_decode(), the GET form of an OCSP request (RFC 6960 App. A.1,
 * RFC 9919 §5: the url-encoded base64 of the DER request after the base path), checked
 * against a plain reference decoder written here: leading slashes skipped, %XX escapes
 * decoded (and nothing else: '+' stays '+'), then base64 with 0..2 '=' of padding (none or
 * complete). The first input byte picks the output room (cap), the rest is the path.
 * Properties: the same verdict and the same bytes as the reference, never more than cap bytes.
 */
#include "common/status.h"
#include "ocsp/ocsp_request.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
b64_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static int
hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The reference: 0 and out/len, or -1. */
static int
reference(const char *path, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = 0, data = 0, pad = 0, bits = 0, plen = strlen(path);
    uint8_t *text = malloc(plen + 1);
    uint32_t acc = 0;
    int rc = -1;

    *len = 0;
    if (text == NULL)
        abort();
    while (*path == '/')
        path++;
    for (; *path != '\0'; path++) {
        if (*path != '%') {
            text[n++] = (uint8_t)*path;
            continue;
        }
        if (hex_value(path[1]) < 0 || hex_value(path[2]) < 0)
            goto out;
        text[n++] = (uint8_t)(hex_value(path[1]) << 4 | hex_value(path[2]));
        path += 2;
    }
    while (data < n && b64_value(text[data]) >= 0)
        data++;
    while (data + pad < n && text[data + pad] == '=')
        pad++;
    if (data == 0 || data + pad != n || data % 4 == 1 || pad > 2 || (pad > 0 && n % 4 != 0))
        goto out;
    for (size_t i = 0; i < data; i++) {
        acc = acc << 6 | (uint32_t)b64_value(text[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (*len == cap)
                goto out;
            out[(*len)++] = (uint8_t)(acc >> bits);
        }
    }
    rc = 0;
out:
    if (rc != 0)
        *len = 0;
    free(text);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap, got_len = 0, want_len = 0;
    char *path;
    uint8_t *got, *want;
    int got_rc, want_rc;

    if (size == 0)
        return 0;
    /* 1..128 bytes of room, or OCSP_REQ_MAX as ocspd gives */
    cap = data[0] == 0xff ? OCSP_REQ_MAX : (size_t)(data[0] & 0x7f) + 1;
    path = malloc(size);
    got = malloc(cap);
    want = malloc(cap);
    if (path == NULL || got == NULL || want == NULL)
        abort();
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';
    got_rc = ocsp_get_decode(path, got, cap, &got_len);
    want_rc = reference(path, want, cap, &want_len);
    if ((got_rc == ST_OK) != (want_rc == 0) || got_len != want_len || got_len > cap ||
        memcmp(got, want, got_len) != 0)
        abort();
    free(want);
    free(got);
    free(path);
    return 0;
}
