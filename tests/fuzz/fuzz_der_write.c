/*
 * libFuzzer target: the DER writer (common/der, DESIGN D1; X.690 §8 and the DER rules of
 * §10-11) in a round trip through OpenSSL. The input is a small program: each op writes one
 * value built from the following bytes (INTEGER from a magnitude or a uint64, OBJECT
 * IDENTIFIER from arcs, OCTET STRING, GeneralizedTime with 0..9 fraction digits, BOOLEAN,
 * NULL, named BIT STRING, [n] primitive) or opens/closes a SEQUENCE or [n] constructed, or
 * writes a SET OF items; everything sits in one outer SEQUENCE.
 * What is checked (abort() on a difference):
 *   - OpenSSL parses what we wrote (ASN1_get_object over every element, d2i_* of each value)
 *     back to the values we put in, element for element in the same nesting;
 *   - d2i_ASN1_SEQUENCE_ANY then i2d gives back the same bytes (our output is DER as
 *     OpenSSL writes it: minimal lengths and INTEGERs, BOOLEAN 0xff, bit strings trimmed);
 *   - a SET OF's elements are in X.690 §11.6 order;
 *   - a writer over a fixed buffer of cap bytes fails exactly when the output is longer, and
 *     otherwise writes the same bytes;
 *   - der_read() agrees with ASN1_get_object() on the same element, on our output and on
 *     the raw fuzz input (der_read is stricter: it may refuse, never disagree).
 */
#include "common/der.h"
#include "common/status.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_NODES 512
#define MAX_DEPTH 24
#define MAX_ITEMS 6

enum kind { K_INT, K_OID, K_OCTETS, K_TIME, K_BOOL, K_NULL, K_BITS, K_PRIM, K_CONS, K_SET };

/* One element as we meant to write it, in pre-order. */
struct node {
    enum kind kind;
    uint8_t tag;
    unsigned depth;
    uint8_t v[512]; /* INTEGER magnitude (no leading zeros), octets, OID/time text */
    size_t vlen;
    uint32_t bits;
    bool b;
};

struct prog {
    const uint8_t *p, *end;
    struct node *nodes; /* NULL on the second run (fixed buffer) */
    size_t n;
    bool full;
};

static uint8_t
next(struct prog *g)
{
    return g->p < g->end ? *g->p++ : 0;
}

static size_t
take(struct prog *g, uint8_t *out, size_t want)
{
    size_t n = (size_t)(g->end - g->p) < want ? (size_t)(g->end - g->p) : want;

    memcpy(out, g->p, n);
    g->p += n;
    return n;
}

static struct node *
add(struct prog *g, enum kind k, uint8_t tag, unsigned depth)
{
    static struct node scratch;
    struct node *x;

    if (g->nodes == NULL || g->n == MAX_NODES) {
        g->full = g->nodes != NULL;
        x = &scratch;
    } else {
        x = &g->nodes[g->n++];
    }
    memset(x, 0, sizeof(*x));
    x->kind = k;
    x->tag = tag;
    x->depth = depth;
    return x;
}

/* GeneralizedTime text as X.690 §11.7 and RFC 3161 §2.4.2 want it; false outside 0..9999. */
static bool
gentime_text(int64_t sec, long nsec, unsigned digits, char *out, size_t cap)
{
    time_t t = (time_t)sec;
    struct tm tm;
    char frac[16];
    int n;

    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900L < 0 || tm.tm_year + 1900L > 9999)
        return false;
    n = snprintf(out, cap, "%04d%02d%02d%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
    snprintf(frac, sizeof(frac), "%09ld", nsec);
    frac[digits] = '\0';
    for (int i = (int)digits - 1; i >= 0 && frac[i] == '0'; i--)
        frac[i] = '\0';
    if (frac[0] != '\0')
        n += snprintf(out + n, cap - (size_t)n, ".%s", frac);
    snprintf(out + n, cap - (size_t)n, "Z");
    return true;
}

/* One SET OF: items encoded alone (INTEGERs and OCTET STRINGs), sorted by der_set_of. */
static void
op_set(struct prog *g, struct der *d, unsigned depth)
{
    struct der_item items[MAX_ITEMS];
    uint8_t enc[MAX_ITEMS][80];
    size_t n = next(g) % (MAX_ITEMS + 1);
    struct node *x;

    for (size_t i = 0; i < n; i++) {
        uint8_t v[64];
        size_t len = take(g, v, next(g) % 64);
        struct der e;

        der_init(&e, enc[i], sizeof(enc[i]));
        if (next(g) & 1)
            der_uint(&e, DER_INTEGER, v, len);
        else
            der_tlv(&e, DER_OCTET_STRING, v, len);
        if (der_finish(&e) != ST_OK)
            abort();
        items[i].p = enc[i];
        items[i].n = e.len;
    }
    der_set_of(d, DER_SET, items, n);
    x = add(g, K_SET, DER_SET, depth);
    for (size_t i = 0; i < n; i++) { /* the content, in the order written */
        memcpy(x->v + x->vlen, items[i].p, items[i].n);
        x->vlen += items[i].n;
    }
}

static void
op_oid(struct prog *g, struct der *d, unsigned depth)
{
    char text[200];
    uint8_t enc[128];
    size_t arcs = 2 + next(g) % 8, len = 0, n;
    unsigned first = next(g) % 3;
    struct node *x;

    n = (size_t)snprintf(text, sizeof(text), "%u", first);
    for (size_t i = 1; i < arcs; i++) {
        uint64_t arc = 0;
        uint8_t w = next(g) % 9; /* 0..8 bytes */
        for (uint8_t k = 0; k < w; k++)
            arc = arc << 8 | next(g);
        if (i == 1 && first < 2)
            arc %= 40;
        n += (size_t)snprintf(text + n, sizeof(text) - n, ".%llu", (unsigned long long)arc);
    }
    if ((len = der_oid_from_text(text, enc, sizeof(enc))) == 0)
        return; /* refused (too long for the room): nothing written */
    der_raw(d, enc, len);
    x = add(g, K_OID, DER_OID, depth);
    x->vlen = strlen(text);
    memcpy(x->v, text, x->vlen + 1);
}

static void
op_time(struct prog *g, struct der *d, unsigned depth)
{
    uint8_t b[9];
    int64_t sec = 0;
    long nsec;
    unsigned digits;
    char text[64];
    struct timespec ts;
    struct node *x;

    memset(b, 0, sizeof(b));
    take(g, b, sizeof(b));
    for (int i = 0; i < 5; i++) /* about ±17,000 years: both sides of 0000..9999 */
        sec = sec << 8 | b[i];
    sec -= (int64_t)1 << 39;
    nsec = (long)(((uint32_t)b[5] << 24 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 8 | b[8]) %
                  1000000000u);
    digits = next(g) % 10;
    ts.tv_sec = (time_t)sec;
    ts.tv_nsec = nsec;
    if (!gentime_text(sec, nsec, digits, text, sizeof(text))) {
        struct der e; /* refused: on a writer of its own, which must then fail */
        uint8_t buf[64];

        der_init(&e, buf, sizeof(buf));
        der_gentime(&e, &ts, digits);
        if (der_finish(&e) == ST_OK)
            abort();
        return;
    }
    der_gentime(d, &ts, digits);
    x = add(g, K_TIME, DER_GENERALIZED_TIME, depth);
    x->vlen = strlen(text);
    memcpy(x->v, text, x->vlen + 1);
}

static void
run(struct prog *g, struct der *d)
{
    size_t marks[MAX_DEPTH + 1];
    unsigned depth = 1;
    struct node *x;

    marks[0] = der_begin(d, DER_SEQUENCE);
    add(g, K_CONS, DER_SEQUENCE, 0);
    while (g->p < g->end) {
        uint8_t op = next(g), v[300];
        size_t len;
        uint64_t u = 0;

        switch (op % 12) {
        case 0:
            len = take(g, v, next(g) % 40);
            der_uint(d, DER_INTEGER, v, len);
            x = add(g, K_INT, DER_INTEGER, depth);
            for (size_t i = 0; i < len; i++)
                if (x->vlen > 0 || v[i] != 0)
                    x->v[x->vlen++] = v[i];
            break;
        case 1:
            len = take(g, v, 8);
            for (size_t i = 0; i < len; i++)
                u = u << 8 | v[i];
            der_u64(d, DER_INTEGER, u);
            x = add(g, K_INT, DER_INTEGER, depth);
            for (int i = 7; i >= 0; i--)
                if (x->vlen > 0 || (uint8_t)(u >> (8 * i)) != 0)
                    x->v[x->vlen++] = (uint8_t)(u >> (8 * i));
            break;
        case 2:
            op_oid(g, d, depth);
            break;
        case 3: /* up to 299 octets: one- and two-octet long lengths */
            len = take(g, v, (size_t)next(g) + (op & 0x80 ? 44 : 0));
            der_tlv(d, DER_OCTET_STRING, v, len);
            x = add(g, K_OCTETS, DER_OCTET_STRING, depth);
            memcpy(x->v, v, len);
            x->vlen = len;
            break;
        case 4:
            op_time(g, d, depth);
            break;
        case 5:
            der_bool(d, op & 0x80);
            add(g, K_BOOL, DER_BOOLEAN, depth)->b = (op & 0x80) != 0;
            break;
        case 6:
            der_null(d);
            add(g, K_NULL, DER_NULL, depth);
            break;
        case 7:
            len = take(g, v, 4);
            for (size_t i = 0; i < len; i++)
                u = u << 8 | v[i];
            der_named_bits(d, (uint32_t)u);
            add(g, K_BITS, DER_BIT_STRING, depth)->bits = (uint32_t)u;
            break;
        case 8:
        case 9:
            if (depth > MAX_DEPTH)
                break;
            {
                uint8_t tag = op % 12 == 8 ? DER_SEQUENCE : DER_CTX_CONS(next(g) % 31);
                marks[depth] = der_begin(d, tag);
                add(g, K_CONS, tag, depth);
                depth++;
            }
            break;
        case 10:
            if (depth > 1)
                der_end(d, marks[--depth]);
            else
                op_set(g, d, depth);
            break;
        case 11: {
            uint8_t tag = DER_CTX(next(g) % 31);
            len = take(g, v, next(g) % 64);
            der_tlv(d, tag, v, len);
            x = add(g, K_PRIM, tag, depth);
            memcpy(x->v, v, len);
            x->vlen = len;
            break;
        }
        }
    }
    while (depth > 0)
        der_end(d, marks[--depth]);
}

/* ---- reading back ---- */

struct walk {
    const struct node *nodes;
    size_t n, i;
};

static void
check_value(const struct node *x, const uint8_t *tlv, long tlv_len, const uint8_t *c, long clen)
{
    const unsigned char *p = tlv;
    uint8_t mag[300];
    char text[300];

    switch (x->kind) {
    case K_INT: {
        ASN1_INTEGER *a = d2i_ASN1_INTEGER(NULL, &p, tlv_len);
        BIGNUM *bn = a != NULL ? ASN1_INTEGER_to_BN(a, NULL) : NULL;
        int n = bn != NULL ? BN_bn2bin(bn, mag) : -1;
        if (n < 0 || BN_is_negative(bn) || (size_t)n != x->vlen || memcmp(mag, x->v, x->vlen))
            abort();
        BN_free(bn);
        ASN1_INTEGER_free(a);
        break;
    }
    case K_OID: {
        ASN1_OBJECT *o = d2i_ASN1_OBJECT(NULL, &p, tlv_len);
        if (o == NULL || OBJ_obj2txt(text, sizeof(text), o, 1) <= 0 || strcmp(text, (char *)x->v))
            abort();
        ASN1_OBJECT_free(o);
        break;
    }
    case K_OCTETS: {
        ASN1_OCTET_STRING *o = d2i_ASN1_OCTET_STRING(NULL, &p, tlv_len);
        if (o == NULL || (size_t)ASN1_STRING_length(o) != x->vlen ||
            memcmp(ASN1_STRING_get0_data(o), x->v, x->vlen))
            abort();
        ASN1_OCTET_STRING_free(o);
        break;
    }
    case K_TIME: {
        ASN1_GENERALIZEDTIME *t = d2i_ASN1_GENERALIZEDTIME(NULL, &p, tlv_len);
        if (t == NULL || ASN1_GENERALIZEDTIME_check(t) != 1 || (size_t)clen != x->vlen ||
            memcmp(c, x->v, x->vlen))
            abort();
        ASN1_GENERALIZEDTIME_free(t);
        break;
    }
    case K_BOOL:
        if (clen != 1 || c[0] != (x->b ? 0xff : 0x00))
            abort();
        break;
    case K_NULL:
        if (clen != 0)
            abort();
        break;
    case K_BITS: {
        ASN1_BIT_STRING *b = d2i_ASN1_BIT_STRING(NULL, &p, tlv_len);
        if (b == NULL || clen < 1 || c[0] > 7 || (clen == 1 && c[0] != 0))
            abort();
        for (int i = 0; i < 40; i++)
            if (ASN1_BIT_STRING_get_bit(b, i) != (i < 32 && (x->bits >> i & 1)))
                abort();
        /* §11.2.2: the last bit written is a one */
        if (clen > 1 && !(c[clen - 1] >> c[0] & 1))
            abort();
        ASN1_BIT_STRING_free(b);
        break;
    }
    case K_PRIM:
        if ((size_t)clen != x->vlen || memcmp(c, x->v, x->vlen))
            abort();
        break;
    case K_SET: {
        const uint8_t *q = c, *prev = NULL;
        size_t prev_len = 0;
        if ((size_t)clen != x->vlen || memcmp(c, x->v, x->vlen))
            abort();
        while (q < c + clen) { /* §11.6: ascending, the shorter padded with zeros */
            const uint8_t *e = q, *ec;
            uint8_t tag;
            size_t el;
            if (!der_read(&q, c + clen, &tag, &ec, &el))
                abort();
            if (prev != NULL) {
                size_t cur = (size_t)(q - e), m = prev_len < cur ? prev_len : cur;
                int cmp = memcmp(prev, e, m);
                if (cmp > 0 || (cmp == 0 && prev_len > cur))
                    abort();
            }
            prev = e;
            prev_len = (size_t)(q - e);
        }
        break;
    }
    case K_CONS:
        break;
    }
}

/* Walk with ASN1_get_object and der_read side by side, matching the nodes in pre-order. */
static void
walk(struct walk *w, const uint8_t *p, const uint8_t *end, unsigned depth)
{
    while (p < end) {
        const unsigned char *q = p;
        const uint8_t *r = p, *rc;
        long len = 0;
        int tag = 0, cls = 0, ret = ASN1_get_object(&q, &len, &tag, &cls, end - p);
        uint8_t rtag;
        size_t rlen;
        const struct node *x;

        if ((ret & 0x80) || !der_read(&r, end, &rtag, &rc, &rlen) || rc != q ||
            rlen != (size_t)len || r != q + len)
            abort();
        if (w->i == w->n)
            abort();
        x = &w->nodes[w->i++];
        if (x->depth != depth || rtag != x->tag ||
            ((ret & V_ASN1_CONSTRUCTED) != 0) != ((x->tag & 0x20) != 0) || cls != (x->tag & 0xc0) ||
            tag != (x->tag & 0x1f))
            abort();
        check_value(x, p, (long)(r - p), q, len);
        if (x->kind == K_CONS)
            walk(w, q, q + len, depth + 1);
        p = r;
    }
}

/* der_read against ASN1_get_object on arbitrary bytes: der_read may refuse, never differ. */
static void
read_raw(const uint8_t *data, size_t size)
{
    const uint8_t *r = data, *rc;
    const unsigned char *q = data;
    uint8_t rtag;
    size_t rlen;
    long len = 0;
    int tag = 0, cls = 0, ret;

    if (!der_read(&r, data + size, &rtag, &rc, &rlen))
        return;
    ret = ASN1_get_object(&q, &len, &tag, &cls, (long)size);
    if ((ret & 0x80) || q != rc || (size_t)len != rlen || cls != (rtag & 0xc0) ||
        tag != (rtag & 0x1f) || ((ret & V_ASN1_CONSTRUCTED) != 0) != ((rtag & 0x20) != 0))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct node nodes[MAX_NODES];
    struct prog g = {data, data + size, nodes, 0, false};
    struct walk w = {nodes, 0, 0};
    struct der d, f;
    const unsigned char *p;
    unsigned char *again = NULL;
    ASN1_SEQUENCE_ANY *any;
    uint8_t *fixed;
    size_t cap;
    int n;

    read_raw(data, size);
    ERR_clear_error();
    if (size == 0 || der_init_alloc(&d, 16) != ST_OK)
        return 0;
    run(&g, &d);
    if (der_finish(&d) != ST_OK)
        abort();
    if (g.full) {
        der_release(&d);
        return 0;
    }
    w.n = g.n;
    walk(&w, d.buf, d.buf + d.len, 0);
    if (w.i != w.n)
        abort();
    p = d.buf;
    if ((any = d2i_ASN1_SEQUENCE_ANY(NULL, &p, (long)d.len)) == NULL || p != d.buf + d.len ||
        (n = i2d_ASN1_SEQUENCE_ANY(any, &again)) < 0 || (size_t)n != d.len ||
        memcmp(again, d.buf, d.len) != 0)
        abort();
    OPENSSL_free(again);
    sk_ASN1_TYPE_pop_free(any, ASN1_TYPE_free);

    /* the same program on a fixed buffer of data[0]-derived size */
    cap = d.len - (data[0] % 4 == 0 ? 0 : data[0] % 4 == 1 ? 1 : data[0] % (d.len + 1));
    if ((fixed = malloc(cap + 1)) == NULL)
        abort();
    g = (struct prog){data, data + size, NULL, 0, false};
    der_init(&f, fixed, cap);
    run(&g, &f);
    if ((der_finish(&f) == ST_OK) != (d.len <= cap) ||
        (d.len <= cap && (f.len != d.len || memcmp(fixed, d.buf, d.len) != 0)))
        abort();
    free(fixed);
    der_release(&d);
    ERR_clear_error();
    return 0;
}
