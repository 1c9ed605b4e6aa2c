/*
 * der: DER writer (X.690 §8 and §10-11 DER restrictions). See der.h.
 */
#include "common/der.h"
#include "common/status.h"

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
der_init(struct der *d, uint8_t *buf, size_t cap)
{
    d->buf = buf;
    d->len = 0;
    d->cap = cap;
    d->growable = false;
    d->failed = false;
    d->open = 0;
}

int
der_init_alloc(struct der *d, size_t initial)
{
    der_init(d, NULL, 0);
    d->growable = true;
    if (initial == 0)
        initial = 256;
    d->buf = malloc(initial);
    if (d->buf == NULL) {
        d->failed = true;
        return ST_NOMEM;
    }
    d->cap = initial;
    return ST_OK;
}

void
der_release(struct der *d)
{
    if (d->growable)
        free(d->buf);
    d->buf = NULL;
    d->len = d->cap = 0;
}

uint8_t *
der_take(struct der *d, size_t *len)
{
    uint8_t *p = d->buf;

    *len = d->len;
    d->buf = NULL;
    d->len = d->cap = 0;
    return p;
}

int
der_finish(const struct der *d)
{
    if (d->failed)
        return ST_NOMEM;
    return d->open == 0 ? ST_OK : ST_INVALID;
}

static bool
der_reserve(struct der *d, size_t extra)
{
    size_t want;
    uint8_t *nb;

    if (d->failed)
        return false;
    if (extra <= d->cap - d->len)
        return true;
    if (!d->growable || extra > SIZE_MAX / 4 - d->len) {
        d->failed = true;
        return false;
    }
    want = d->cap * 2;
    if (want < d->len + extra)
        want = d->len + extra + 64;
    nb = realloc(d->buf, want);
    if (nb == NULL) {
        d->failed = true;
        return false;
    }
    d->buf = nb;
    d->cap = want;
    return true;
}

size_t
der_header_len(size_t n)
{
    size_t h = 2;

    if (n >= 0x80)
        for (; n > 0; n >>= 8)
            h++;
    return h;
}

static void
der_put_len(uint8_t *out, size_t n, size_t hlen)
{
    if (hlen == 1) {
        out[0] = (uint8_t)n;
        return;
    }
    out[0] = (uint8_t)(0x80 | (hlen - 1));
    for (size_t i = hlen - 1; i >= 1; i--) {
        out[i] = (uint8_t)(n & 0xff);
        n >>= 8;
    }
}

size_t
der_begin(struct der *d, uint8_t tag)
{
    size_t mark = d->len;

    if (!der_reserve(d, 2))
        return mark;
    d->buf[d->len++] = tag;
    d->buf[d->len++] = 0; /* length placeholder, fixed by der_end */
    d->open++;
    return mark;
}

void
der_end(struct der *d, size_t mark)
{
    size_t content, lenlen;

    if (d->failed)
        return;
    if (mark + 2 > d->len || d->open == 0) {
        d->failed = true;
        return;
    }
    d->open--;
    content = d->len - mark - 2;
    lenlen = der_header_len(content) - 1;
    if (lenlen > 1) {
        if (!der_reserve(d, lenlen - 1))
            return;
        memmove(d->buf + mark + 1 + lenlen, d->buf + mark + 2, content);
        d->len += lenlen - 1;
    }
    der_put_len(d->buf + mark + 1, content, lenlen);
}

void
der_raw(struct der *d, const void *p, size_t n)
{
    if (n == 0 || !der_reserve(d, n))
        return;
    memcpy(d->buf + d->len, p, n);
    d->len += n;
}

void
der_tlv(struct der *d, uint8_t tag, const void *v, size_t n)
{
    size_t h = der_header_len(n);

    if (!der_reserve(d, h + n))
        return;
    d->buf[d->len] = tag;
    der_put_len(d->buf + d->len + 1, n, h - 1);
    d->len += h;
    der_raw(d, v, n);
}

void
der_uint(struct der *d, uint8_t tag, const uint8_t *mag, size_t n)
{
    static const uint8_t zero = 0;
    size_t mark;

    while (n > 0 && mag[0] == 0) {
        mag++;
        n--;
    }
    if (n == 0) {
        der_tlv(d, tag, &zero, 1);
        return;
    }
    mark = der_begin(d, tag);
    if (mag[0] & 0x80)
        der_raw(d, &zero, 1);
    der_raw(d, mag, n);
    der_end(d, mark);
}

void
der_u64(struct der *d, uint8_t tag, uint64_t v)
{
    uint8_t b[8];

    for (int i = 7; i >= 0; i--) {
        b[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
    der_uint(d, tag, b, sizeof(b));
}

void
der_bool(struct der *d, bool v)
{
    uint8_t b = v ? 0xff : 0x00;

    der_tlv(d, DER_BOOLEAN, &b, 1);
}

void
der_null(struct der *d)
{
    der_tlv(d, DER_NULL, NULL, 0);
}

void
der_gentime(struct der *d, const struct timespec *t, unsigned frac_digits)
{
    char s[40];
    struct tm tm;
    time_t sec = t->tv_sec;
    int n;

    /* four digits of year (X.680 §46): years before 0000 and after 9999 cannot be written */
    if (gmtime_r(&sec, &tm) == NULL || frac_digits > 9 || tm.tm_year + 1900L < 0 ||
        tm.tm_year + 1900L > 9999 || t->tv_nsec < 0 || t->tv_nsec > 999999999) {
        d->failed = true;
        return;
    }
    n = snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (frac_digits > 0) {
        long ns = t->tv_nsec;
        char frac[10];

        for (unsigned i = frac_digits; i < 9; i++)
            ns /= 10;
        snprintf(frac, sizeof(frac), "%0*ld", (int)frac_digits, ns);
        for (int i = (int)frac_digits - 1; i >= 0 && frac[i] == '0'; i--)
            frac[i] = '\0';
        if (frac[0] != '\0')
            n += snprintf(s + n, sizeof(s) - (size_t)n, ".%s", frac);
    }
    s[n++] = 'Z';
    der_tlv(d, DER_GENERALIZED_TIME, s, (size_t)n);
}

void
der_named_bits(struct der *d, uint32_t bits)
{
    uint8_t v[5] = {0};
    int last = -1;
    size_t nbytes;

    for (int i = 0; i < 32; i++)
        if (bits & (1u << i))
            last = i;
    if (last < 0) {
        der_tlv(d, DER_BIT_STRING, v, 1);
        return;
    }
    nbytes = (size_t)last / 8 + 1;
    for (int i = 0; i <= last; i++)
        if (bits & (1u << i))
            v[1 + i / 8] |= (uint8_t)(0x80 >> (i % 8));
    v[0] = (uint8_t)(7 - (last % 8)); /* unused bits in the last octet */
    der_tlv(d, DER_BIT_STRING, v, nbytes + 1);
}

static int
der_item_cmp(const void *a, const void *b)
{
    const struct der_item *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);

    if (c != 0)
        return c;
    /* the shorter one is padded with zero octets: it sorts first unless the rest is zero */
    return (x->n > y->n) - (x->n < y->n);
}

void
der_set_of(struct der *d, uint8_t tag, struct der_item *items, size_t n)
{
    size_t mark;

    if (n > 1) /* qsort() wants a non-NULL base even for 0 items */
        qsort(items, n, sizeof(*items), der_item_cmp);
    mark = der_begin(d, tag);
    for (size_t i = 0; i < n; i++)
        der_raw(d, items[i].p, items[i].n);
    der_end(d, mark);
}

/* Strict dotted form: arcs of digits without leading zeros, separated by single dots.
 * OBJ_txt2obj() alone also takes "1..2" (as 1.0.2), "1.2." and spaces. */
static bool
der_oid_text_ok(const char *s)
{
    size_t arcs = 0;

    while (*s != '\0') {
        if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
        arcs++;
        if (*s == '.' && *++s == '\0')
            return false;
        if (*s != '\0' && (*s < '0' || *s > '9'))
            return false;
    }
    return arcs >= 2;
}

size_t
der_oid_from_text(const char *dotted, uint8_t *out, size_t cap)
{
    ASN1_OBJECT *obj = NULL;
    unsigned char *p = out;
    int n = 0;

    if (!der_oid_text_ok(dotted))
        goto out;
    obj = OBJ_txt2obj(dotted, 1);
    if (obj == NULL)
        goto out;
    n = i2d_ASN1_OBJECT(obj, NULL);
    if (n <= 0 || (size_t)n > cap) {
        n = 0;
        goto out;
    }
    n = i2d_ASN1_OBJECT(obj, &p);
out:
    ASN1_OBJECT_free(obj);
    return n > 0 ? (size_t)n : 0;
}

bool
der_read(const uint8_t **p, const uint8_t *end, uint8_t *tag, const uint8_t **content, size_t *len)
{
    const uint8_t *q = *p;
    size_t n;

    if (end - q < 2)
        return false;
    *tag = *q++;
    if ((*tag & 0x1f) == 0x1f)
        return false; /* high tag numbers: never produced by us */
    n = *q++;
    if (n & 0x80) {
        size_t k = n & 0x7f;

        if (k == 0 || k > sizeof(size_t) || (size_t)(end - q) < k || q[0] == 0)
            return false;
        n = 0;
        for (size_t i = 0; i < k; i++)
            n = (n << 8) | *q++;
        if (n < 0x80)
            return false;
    }
    if ((size_t)(end - q) < n)
        return false;
    *content = q;
    *len = n;
    *p = q + n;
    return true;
}
