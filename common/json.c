/*
 * json: the shared JSON writer and hex (see json.h).
 */
#include "common/json.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

void
jw_init(struct jw *o, char *buf, size_t cap)
{
    o->p = buf;
    o->cap = cap;
    o->len = 0;
    o->full = cap == 0;
    if (cap > 0)
        buf[0] = '\0';
}

size_t
jw_end(const struct jw *o)
{
    return o->full ? 0 : o->len;
}

/* Room for n more bytes and the NUL. */
static bool
room(struct jw *o, size_t n)
{
    if (o->full || o->cap - o->len <= n) {
        o->full = true;
        return false;
    }
    return true;
}

void
jw_raw(struct jw *o, const char *s, size_t n)
{
    if (!room(o, n))
        return;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

void
jw_lit(struct jw *o, const char *s)
{
    jw_raw(o, s, strlen(s));
}

void
jw_printf(struct jw *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->full)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->full = true;
        return;
    }
    o->len += (size_t)n;
}

static void
comma(struct jw *o)
{
    if (o->len > 0 && o->p[o->len - 1] != '{' && o->p[o->len - 1] != '[' && o->p[o->len - 1] != ':')
        jw_raw(o, ",", 1);
}

void
jw_begin(struct jw *o)
{
    comma(o);
    jw_raw(o, "{", 1);
}

void
jw_close(struct jw *o)
{
    jw_raw(o, "}", 1);
}

void
jw_key(struct jw *o, const char *key)
{
    comma(o);
    jw_str(o, key);
    jw_raw(o, ":", 1);
}

void
jw_item(struct jw *o)
{
    comma(o);
}

/* The length of the well-formed UTF-8 sequence (RFC 3629: no overlong form, no surrogate,
 * at most U+10FFFF) of 2 to 4 bytes at s, 0 when there is none. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xc2 && s[0] <= 0xdf   ? 2
                 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
                 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                                : 0;
    unsigned char lo = 0x80, hi = 0xbf;

    if (len == 0 || len > n)
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

void
jw_strn(struct jw *o, const char *s, size_t n)
{
    size_t i = 0;

    jw_raw(o, "\"", 1);
    while (i < n && !o->full) {
        size_t run = i;
        unsigned char ch;

        /* copy the run of bytes that need no escape in one go (the common case) */
        while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\' &&
               s[run] != 0x7f) {
            size_t k = (unsigned char)s[run] < 0x80
                           ? 1
                           : utf8_seq((const unsigned char *)s + run, n - run);

            if (k == 0) /* not UTF-8: the byte goes as \u00XX below (JSON must be UTF-8) */
                break;
            run += k;
        }
        if (run > i) {
            jw_raw(o, s + i, run - i);
            i = run;
            continue;
        }
        ch = (unsigned char)s[i++];
        switch (ch) {
        case '"':
            jw_raw(o, "\\\"", 2);
            break;
        case '\\':
            jw_raw(o, "\\\\", 2);
            break;
        case '\b':
            jw_raw(o, "\\b", 2);
            break;
        case '\f':
            jw_raw(o, "\\f", 2);
            break;
        case '\n':
            jw_raw(o, "\\n", 2);
            break;
        case '\r':
            jw_raw(o, "\\r", 2);
            break;
        case '\t':
            jw_raw(o, "\\t", 2);
            break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex_lower[ch >> 4], hex_lower[ch & 15]};

            jw_raw(o, u, 6);
        }
        }
    }
    jw_raw(o, "\"", 1);
}

void
jw_str(struct jw *o, const char *s)
{
    if (s == NULL)
        jw_null(o);
    else
        jw_strn(o, s, strlen(s));
}

void
jw_hex(struct jw *o, const uint8_t *b, size_t n)
{
    if (!room(o, 2 * n + 2))
        return;
    o->p[o->len++] = '"';
    hex_encode(o->p + o->len, b, n, false);
    o->len += 2 * n;
    o->p[o->len++] = '"';
    o->p[o->len] = '\0';
}

void
jw_u64(struct jw *o, uint64_t v)
{
    jw_printf(o, "%" PRIu64, v);
}

void
jw_i64(struct jw *o, int64_t v)
{
    jw_printf(o, "%" PRId64, v);
}

void
jw_bool(struct jw *o, bool v)
{
    jw_lit(o, v ? "true" : "false");
}

void
jw_null(struct jw *o)
{
    jw_raw(o, "null", 4);
}

void
jw_kstr(struct jw *o, const char *key, const char *s)
{
    jw_key(o, key);
    jw_str(o, s);
}

void
jw_khex(struct jw *o, const char *key, const uint8_t *b, size_t n)
{
    jw_key(o, key);
    jw_hex(o, b, n);
}

void
jw_ku64(struct jw *o, const char *key, uint64_t v)
{
    jw_key(o, key);
    jw_u64(o, v);
}

void
hex_encode(char *out, const uint8_t *b, size_t n, bool upper)
{
    const char *d = upper ? hex_upper : hex_lower;

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int
hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool
hex_decode(uint8_t *out, size_t n, const char *s, size_t slen)
{
    if (slen != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}
