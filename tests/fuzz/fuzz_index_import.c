/*
 * libFuzzer target: the OpenSSL `ca` index parser of `ocspctl import-index`
 * (ocspctl_index_parse, ocsp/ocspctl_import.c) on arbitrary text, one line at a time as the
 * import reads it. Properties checked beyond "no crash": an accepted line is V, R or E; its
 * serial is 1..OCSP_SERIAL_MAX minimal positive INTEGER content octets that print as hex and
 * parse back the same; its expiry prints (ocspctl_time_fmt, as `export` does) and parses back
 * to the same second; an R line carries a CRLReason 0..10 but not 7 (RFC 5280 §5.3.1) or
 * none, HOLD exactly for certificateHold and GOOD exactly for removeFromCRL; V and E lines
 * are GOOD without a reason.
 */
#include "common/status.h"
#include "ocsp/ocspctl_int.h"

#include <openssl/ocsp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_serial(const struct ctl_serial *s)
{
    char hex[2 * OCSP_SERIAL_MAX + 1];
    struct ctl_serial back;

    if (s->len == 0 || s->len > OCSP_SERIAL_MAX || (s->b[0] & 0x80) ||
        (s->b[0] == 0 && (s->len == 1 || !(s->b[1] & 0x80))))
        abort();
    ocspctl_serial_hex(s->b, s->len, hex);
    if (ocspctl_serial_parse(hex, &back) != ST_OK || back.len != s->len ||
        memcmp(back.b, s->b, s->len) != 0)
        abort();
}

static void
check_time(int64_t t)
{
    char text[16];
    int64_t back = 0;

    ocspctl_time_fmt(t, text);
    if (strcmp(text, "-") == 0)
        return; /* 0 (unknown), or a year strftime cannot print in 15 characters */
    if (ocspctl_time_parse(text, true, &back) != ST_OK || back != t)
        abort();
}

static void
check_entry(const struct ctl_index_entry *e)
{
    check_serial(&e->serial);
    check_time(e->not_after);
    if (e->kind != 'R') {
        if ((e->kind != 'V' && e->kind != 'E') || e->state != OCSP_STATE_GOOD ||
            e->reason != OCSP_REASON_NONE)
            abort();
        return;
    }
    /* RFC 5280 §5.3.1, written out here rather than taken from ocsp_reason_valid() */
    if (e->reason != OCSP_REASON_NONE && (e->reason < 0 || e->reason > 10 || e->reason == 7))
        abort();
    if ((e->state == OCSP_STATE_HOLD) != (e->reason == OCSP_REVOKED_STATUS_CERTIFICATEHOLD) ||
        (e->state == OCSP_STATE_GOOD) != (e->reason == OCSP_REVOKED_STATUS_REMOVEFROMCRL))
        abort();
    check_time(e->when);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    char *text = malloc(size + 1);
    struct ctl_index_entry e;

    if (!quiet) { /* the parsers' messages, not the sanitizers' reports (fd 2 stays open) */
        FILE *null = fopen("/dev/null", "w");
        if (null != NULL)
            stderr = null;
        quiet = true;
    }
    if (text == NULL)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    for (char *line = text, *next; line != NULL && line < text + size; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        /* empty: nothing but a CRLF's CR (a CR elsewhere makes a bad line) */
        bool empty = line[0] == '\0' || (line[0] == '\r' && line[1] == '\0');
        int st = ocspctl_index_parse(line, &e);
        if (st == ST_OK)
            check_entry(&e);
        else if (st != ST_INVALID && st != ST_NOTFOUND)
            abort();
        else if ((st == ST_NOTFOUND) != empty)
            abort();
    }
    free(text);
    return 0;
}
