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
json_init(struct json_out *o, char *buf, size_t cap)
{
    o->p = buf;
    o->cap = cap;
    o->len = 0;
    o->full = cap == 0;
    if (cap > 0)
        buf[0] = '\0';
}

size_t
json_end(const struct json_out *o)
{
    return o->full ? 0 : o->len;
}

/* Room for n more bytes and the NUL. */
static bool
room(struct json_out *o, size_t n)
{
    if (o->full || o->cap - o->len <= n) {
        o->full = true;
        return false;
    }
    return true;
}

void
json_raw(struct json_out *o, const char *s, size_t n)
{
    if (!room(o, n))
        return;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

void
json_lit(struct json_out *o, const char *s)
{
    json_raw(o, s, strlen(s));
}

void
json_printf(struct json_out *o, const char *fmt, ...)
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
comma(struct json_out *o)
{
    if (o->len > 0 && o->p[o->len - 1] != '{' && o->p[o->len - 1] != '[')
        json_raw(o, ",", 1);
}

void
json_begin(struct json_out *o)
{
    comma(o);
    json_raw(o, "{", 1);
}

void
json_close(struct json_out *o)
{
    json_raw(o, "}", 1);
}

void
json_key(struct json_out *o, const char *key)
{
    comma(o);
    json_str(o, key);
    json_raw(o, ":", 1);
}

void
json_item(struct json_out *o)
{
    comma(o);
}

void
json_strn(struct json_out *o, const char *s, size_t n)
{
    size_t i = 0;

    json_raw(o, "\"", 1);
    while (i < n && !o->full) {
        size_t run = i;
        unsigned char ch;

        /* copy the run of bytes that need no escape in one go (the common case) */
        while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\' &&
               s[run] != 0x7f)
            run++;
        if (run > i) {
            json_raw(o, s + i, run - i);
            i = run;
            continue;
        }
        ch = (unsigned char)s[i++];
        switch (ch) {
        case '"':
            json_raw(o, "\\\"", 2);
            break;
        case '\\':
            json_raw(o, "\\\\", 2);
            break;
        case '\b':
            json_raw(o, "\\b", 2);
            break;
        case '\f':
            json_raw(o, "\\f", 2);
            break;
        case '\n':
            json_raw(o, "\\n", 2);
            break;
        case '\r':
            json_raw(o, "\\r", 2);
            break;
        case '\t':
            json_raw(o, "\\t", 2);
            break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex_lower[ch >> 4], hex_lower[ch & 15]};

            json_raw(o, u, 6);
        }
        }
    }
    json_raw(o, "\"", 1);
}

void
json_str(struct json_out *o, const char *s)
{
    if (s == NULL)
        json_null(o);
    else
        json_strn(o, s, strlen(s));
}

void
json_hex(struct json_out *o, const uint8_t *b, size_t n)
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
json_u64(struct json_out *o, uint64_t v)
{
    json_printf(o, "%" PRIu64, v);
}

void
json_i64(struct json_out *o, int64_t v)
{
    json_printf(o, "%" PRId64, v);
}

void
json_bool(struct json_out *o, bool v)
{
    json_lit(o, v ? "true" : "false");
}

void
json_null(struct json_out *o)
{
    json_raw(o, "null", 4);
}

void
json_kstr(struct json_out *o, const char *key, const char *s)
{
    json_key(o, key);
    json_str(o, s);
}

void
json_khex(struct json_out *o, const char *key, const uint8_t *b, size_t n)
{
    json_key(o, key);
    json_hex(o, b, n);
}

void
json_ku64(struct json_out *o, const char *key, uint64_t v)
{
    json_key(o, key);
    json_u64(o, v);
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

static int
hex_val(char c)
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
        int hi = hex_val(s[2 * i]), lo = hex_val(s[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}
