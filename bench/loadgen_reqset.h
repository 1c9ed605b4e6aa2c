/*
 * loadgen_reqset: request sets of bench/loadgen, generated before a run and saved to a file so
 * that nothing is encoded while the load runs and anyone can replay the same set (DESIGN D9).
 *
 *   TSA:  RFC 3161 §2.4.1 TimeStampReq with a random messageImprint (SHA-256/384/512 in a
 *         chosen mix), a 64-bit nonce and certReq in chosen shares, optional reqPolicy.
 *   OCSP: RFC 6960 §4.1.1 OCSPRequest with one CertID (SHA-1 or SHA-256 issuer hashes) of a
 *         serial drawn from a list of (serial, expected status, set) lines and/or never-issued
 *         random serials, in a chosen mix; a share with a nonce (RFC 8954: 32 octets); a share
 *         to be sent by GET (RFC 6960 App. A.1), the rest by POST.
 *
 * File format (all integers little-endian):
 *   "LGRQSET1" | u32 kind (1 TSA, 2 OCSP) | u32 count |
 *   count x ( u8 method (0 POST, 1 GET) | u8 expect (enum lg_expect) | u16 0 | u32 len | DER )
 *
 * A seeded xorshift drives every random choice and byte, so the same options and seed give the
 * same file. Included by bench/loadgen.c only.
 */
#ifndef BENCH_LOADGEN_REQSET_H
#define BENCH_LOADGEN_REQSET_H

#include "common/log.h"
#include "common/status.h"

#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LG_SET_MAGIC "LGRQSET1"
#define LG_SET_MAX_COUNT 1000000u
#define LG_REQ_MAX_LEN 65536u
#define LG_MIX_MAX 8

enum lg_kind { LG_KIND_TSA = 1, LG_KIND_OCSP = 2 };
enum lg_method { LG_POST = 0, LG_GET = 1 };
enum lg_expect {
    LG_EXPECT_GOOD = 0,
    LG_EXPECT_REVOKED = 1,
    LG_EXPECT_UNKNOWN = 2,
    LG_EXPECT_NOTGOOD = 3, /* revoked or unknown: a never-issued serial (RFC 6960 §2.2) */
    LG_EXPECT_ANY = 0xff
};

struct lg_req {
    uint8_t method;
    uint8_t expect;
    uint32_t len;
    uint8_t *der; /* points into lg_reqset.blob */
};

struct lg_reqset {
    uint32_t kind;
    uint32_t count;
    struct lg_req *req;
    uint8_t *blob;
};

/* "name=weight,name=weight" */
struct lg_mix {
    unsigned n;
    char name[LG_MIX_MAX][32];
    unsigned weight[LG_MIX_MAX];
    unsigned total;
};

static uint64_t
lg_rand_next(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void
lg_rand_bytes(uint64_t *s, uint8_t *out, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        out[i] = (uint8_t)(lg_rand_next(s) >> 24);
}

/* True in pct percent of the calls. */
static bool
lg_rand_pct(uint64_t *s, unsigned pct)
{
    return lg_rand_next(s) % 100u < pct;
}

static int
lg_mix_parse(struct lg_mix *m, const char *spec)
{
    const char *p = spec;
    char *end;
    size_t nl;
    unsigned long w;

    memset(m, 0, sizeof(*m));
    while (*p != '\0') {
        const char *eq = strchr(p, '=');
        if (eq == NULL || m->n == LG_MIX_MAX || (nl = (size_t)(eq - p)) == 0 ||
            nl >= sizeof(m->name[0]))
            return ST_INVALID;
        memcpy(m->name[m->n], p, nl);
        w = strtoul(eq + 1, &end, 10);
        if (end == eq + 1 || w > 1000000 || (*end != ',' && *end != '\0'))
            return ST_INVALID;
        m->weight[m->n++] = (unsigned)w;
        m->total += (unsigned)w;
        p = *end == ',' ? end + 1 : end;
    }
    return m->n > 0 && m->total > 0 ? ST_OK : ST_INVALID;
}

static unsigned
lg_mix_pick(const struct lg_mix *m, uint64_t *s)
{
    unsigned r = (unsigned)(lg_rand_next(s) % m->total), i;

    for (i = 0; i + 1 < m->n; i++) {
        if (r < m->weight[i])
            return i;
        r -= m->weight[i];
    }
    return m->n - 1;
}

static void
lg_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t
lg_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int
lg_write_header(FILE *f, uint32_t kind, uint32_t count)
{
    uint8_t h[16];

    memcpy(h, LG_SET_MAGIC, 8);
    lg_put_u32(h + 8, kind);
    lg_put_u32(h + 12, count);
    return fwrite(h, 1, sizeof(h), f) == sizeof(h) ? ST_OK : ST_IO;
}

static int
lg_write_record(FILE *f, uint8_t method, uint8_t expect, const uint8_t *der, int len)
{
    uint8_t h[8] = {method, expect, 0, 0, 0, 0, 0, 0};

    if (len <= 0 || (unsigned)len > LG_REQ_MAX_LEN)
        return ST_INVALID;
    lg_put_u32(h + 4, (uint32_t)len);
    if (fwrite(h, 1, sizeof(h), f) != sizeof(h) || fwrite(der, 1, (size_t)len, f) != (size_t)len)
        return ST_IO;
    return ST_OK;
}

/* ---- TSA requests ---- */

struct lg_tsa_opts {
    struct lg_mix hashes; /* sha256=.., sha384=.., sha512=.. */
    unsigned nonce_pct;
    unsigned certreq_pct;
    const char *policy; /* dotted OID or NULL */
};

static int
lg_tsa_imprint(TS_REQ *req, const char *hash, uint64_t *seed)
{
    const EVP_MD *md = EVP_get_digestbyname(hash);
    TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
    X509_ALGOR *alg = X509_ALGOR_new();
    uint8_t dig[EVP_MAX_MD_SIZE];
    int st = ST_CRYPTO;

    if (md == NULL || mi == NULL || alg == NULL)
        goto out;
    X509_ALGOR_set_md(alg, md);
    lg_rand_bytes(seed, dig, (size_t)EVP_MD_get_size(md));
    if (!TS_MSG_IMPRINT_set_algo(mi, alg) ||
        !TS_MSG_IMPRINT_set_msg(mi, dig, EVP_MD_get_size(md)) || !TS_REQ_set_msg_imprint(req, mi))
        goto out;
    st = ST_OK;
out:
    X509_ALGOR_free(alg);
    TS_MSG_IMPRINT_free(mi);
    return st;
}

static int
lg_tsa_nonce(TS_REQ *req, uint64_t *seed)
{
    uint8_t b[8];
    BIGNUM *bn = NULL;
    ASN1_INTEGER *ai = NULL;
    int st = ST_CRYPTO;

    lg_rand_bytes(seed, b, sizeof(b));
    b[0] &= 0x7f;
    b[0] |= 0x01; /* 63 significant bits, never zero */
    bn = BN_bin2bn(b, sizeof(b), NULL);
    if (bn == NULL || (ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL || !TS_REQ_set_nonce(req, ai))
        goto out;
    st = ST_OK;
out:
    ASN1_INTEGER_free(ai);
    BN_free(bn);
    return st;
}

static int
lg_tsa_policy(TS_REQ *req, const char *policy)
{
    ASN1_OBJECT *oid = OBJ_txt2obj(policy, 1);
    int st = oid != NULL && TS_REQ_set_policy_id(req, oid) ? ST_OK : ST_CRYPTO;

    ASN1_OBJECT_free(oid);
    return st;
}

/* One DER TimeStampReq into *der (caller frees with OPENSSL_free); its length or < 0. */
static int
lg_tsa_one(const struct lg_tsa_opts *o, uint64_t *seed, uint8_t **der)
{
    TS_REQ *req = TS_REQ_new();
    unsigned h = lg_mix_pick(&o->hashes, seed);
    int len = -1;

    *der = NULL;
    if (req == NULL || !TS_REQ_set_version(req, 1) ||
        lg_tsa_imprint(req, o->hashes.name[h], seed) != ST_OK)
        goto out;
    if (lg_rand_pct(seed, o->nonce_pct) && lg_tsa_nonce(req, seed) != ST_OK)
        goto out;
    if (o->policy != NULL && lg_tsa_policy(req, o->policy) != ST_OK)
        goto out;
    if (!TS_REQ_set_cert_req(req, lg_rand_pct(seed, o->certreq_pct)))
        goto out;
    len = i2d_TS_REQ(req, der);
out:
    TS_REQ_free(req);
    return len;
}

/* ---- OCSP requests ---- */

/* A serial of the list, kept as its value's octets (big-endian, no sign octet) so that a list
 * of 10 million serials takes 32 bytes each and no allocation per line (the scale scenario of
 * bench/run.sh); the ASN1_INTEGER is made only for the serials drawn into requests. */
#define LG_SERIAL_MAX 27u /* octets: RFC 5280 §4.1.2.2 allows 20; some CAs write more */
struct lg_serial {
    uint8_t len;
    uint8_t expect;
    uint8_t set; /* index into the mix (< LG_MIX_MAX) */
    uint8_t octets[LG_SERIAL_MAX + 2];
};

struct lg_ocsp_opts {
    X509 *issuer;
    const EVP_MD *certid_md;
    struct lg_mix mix; /* set names of the serial list; "never" = random never-issued */
    uint8_t never_expect;
    unsigned nonce_pct;
    unsigned get_pct;
    struct lg_serial *serials; /* serials of each set, grouped */
    size_t nserials;
    size_t *set_first; /* per mix entry: first index and count in serials */
    size_t *set_count;
};

static int
lg_expect_parse(const char *s, uint8_t *out)
{
    static const struct {
        const char *name;
        uint8_t v;
    } tab[] = {{"good", LG_EXPECT_GOOD},
               {"revoked", LG_EXPECT_REVOKED},
               {"unknown", LG_EXPECT_UNKNOWN},
               {"notgood", LG_EXPECT_NOTGOOD},
               {"any", LG_EXPECT_ANY}};
    size_t i;

    for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
        if (strcmp(s, tab[i].name) == 0) {
            *out = tab[i].v;
            return ST_OK;
        }
    }
    return ST_INVALID;
}

static int
lg_mix_find(const struct lg_mix *m, const char *name)
{
    unsigned i;

    for (i = 0; i < m->n; i++) {
        if (strcmp(m->name[i], name) == 0)
            return (int)i;
    }
    return -1;
}

static int
lg_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The next blank-separated word of *p (at most cap - 1 chars) into w; false at the end. */
static bool
lg_word(const char **p, char *w, size_t cap)
{
    const char *q = *p;
    size_t n = 0;

    while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
        q++;
    if (*q == '\0')
        return false;
    while (*q != '\0' && *q != ' ' && *q != '\t' && *q != '\r' && *q != '\n') {
        if (n + 1 < cap)
            w[n++] = *q;
        q++;
    }
    w[n] = '\0';
    *p = q;
    return true;
}

/* A hex serial into its value's octets (leading zero octets dropped; zero is one 0x00). */
static bool
lg_serial_hex(const char *hex, struct lg_serial *out)
{
    size_t n = strlen(hex), i, o = 0;
    uint8_t b[64];
    int hi, lo;

    if (n == 0 || n > 2 * sizeof(b))
        return false;
    for (i = 0; i < n;) {
        if (i == 0 && n % 2 == 1) {
            hi = 0;
            lo = lg_hexval(hex[i++]);
        } else {
            hi = lg_hexval(hex[i]);
            lo = lg_hexval(hex[i + 1]);
            i += 2;
        }
        if (hi < 0 || lo < 0)
            return false;
        b[o++] = (uint8_t)(hi << 4 | lo);
    }
    for (i = 0; i + 1 < o && b[i] == 0; i++)
        ;
    if (o - i > LG_SERIAL_MAX)
        return false;
    out->len = (uint8_t)(o - i);
    memcpy(out->octets, b + i, out->len);
    return true;
}

/* One "SERIALHEX STATUS [SET]" line; lines of sets not in the mix are skipped (*kept false). */
static int
lg_serial_line(struct lg_ocsp_opts *o, const char *line, struct lg_serial *out, bool *kept)
{
    char hex[128], status[32], set[32] = "hit";
    const char *p = line;
    int idx;

    *kept = false;
    if (!lg_word(&p, hex, sizeof(hex)) || hex[0] == '#')
        return ST_OK;
    if (!lg_word(&p, status, sizeof(status)) || lg_expect_parse(status, &out->expect) != ST_OK ||
        !lg_serial_hex(hex, out))
        return ST_INVALID;
    (void)lg_word(&p, set, sizeof(set));
    idx = lg_mix_find(&o->mix, set);
    if (idx < 0)
        return ST_OK;
    out->set = (uint8_t)idx;
    *kept = true;
    return ST_OK;
}

static int
lg_serials_load(struct lg_ocsp_opts *o, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    size_t cap = 0, lineno = 0;
    bool kept;
    int st = ST_IO;

    if (f == NULL) {
        log_err("cannot open %s", path);
        return ST_IO;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (o->nserials == cap) {
            size_t ncap = cap ? cap * 2 : 1024;
            struct lg_serial *p = realloc(o->serials, ncap * sizeof(*p));
            if (p == NULL)
                goto out;
            o->serials = p;
            cap = ncap;
        }
        if (lg_serial_line(o, line, &o->serials[o->nserials], &kept) != ST_OK) {
            log_err("%s:%zu: expected SERIALHEX good|revoked|unknown|notgood|any [SET]", path,
                    lineno);
            st = ST_INVALID;
            goto out;
        }
        o->nserials += kept;
    }
    st = ST_OK;
out:
    fclose(f);
    return st;
}

static int
lg_serial_cmp(const void *a, const void *b)
{
    const struct lg_serial *x = a, *y = b;

    return (x->set > y->set) - (x->set < y->set);
}

/* Group the serials by set; every set of the mix except "never" must have serials. */
static int
lg_serials_index(struct lg_ocsp_opts *o)
{
    size_t i;
    unsigned s;

    if (o->mix.n > 1)
        qsort(o->serials, o->nserials, sizeof(*o->serials), lg_serial_cmp);
    o->set_first = calloc(o->mix.n, sizeof(size_t));
    o->set_count = calloc(o->mix.n, sizeof(size_t));
    if (o->set_first == NULL || o->set_count == NULL)
        return ST_NOMEM;
    for (i = o->nserials; i-- > 0;) {
        o->set_first[o->serials[i].set] = i;
        o->set_count[o->serials[i].set]++;
    }
    for (s = 0; s < o->mix.n; s++) {
        if (o->set_count[s] == 0 && strcmp(o->mix.name[s], "never") != 0) {
            log_err("no serial of set '%s' in the serial list", o->mix.name[s]);
            return ST_INVALID;
        }
    }
    return ST_OK;
}

/* A random 16-octet positive serial: never issued by any CA of the demo (and with 2^-120
 * chance by any real one). */
static ASN1_INTEGER *
lg_never_serial(uint64_t *seed)
{
    uint8_t b[16];
    BIGNUM *bn;
    ASN1_INTEGER *ai = NULL;

    lg_rand_bytes(seed, b, sizeof(b));
    b[0] = (uint8_t)((b[0] & 0x3f) | 0x40);
    bn = BN_bin2bn(b, sizeof(b), NULL);
    if (bn != NULL)
        ai = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    return ai;
}

static int
lg_ocsp_one(const struct lg_ocsp_opts *o, uint64_t *seed, uint8_t **der, uint8_t *expect)
{
    unsigned set = lg_mix_pick(&o->mix, seed);
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    OCSP_CERTID *id = NULL;
    ASN1_INTEGER *own = NULL;
    const ASN1_INTEGER *serial;
    uint8_t nonce[32];
    int len = -1;

    *der = NULL;
    if (o->set_count[set] == 0) {
        serial = own = lg_never_serial(seed);
        *expect = o->never_expect;
    } else {
        const struct lg_serial *s =
            &o->serials[o->set_first[set] + lg_rand_next(seed) % o->set_count[set]];
        BIGNUM *bn = BN_bin2bn(s->octets, s->len, NULL);
        serial = own = bn != NULL ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
        BN_free(bn);
        *expect = s->expect;
    }
    if (req == NULL || serial == NULL)
        goto out;
    id = OCSP_cert_id_new(o->certid_md, X509_get_subject_name(o->issuer),
                          X509_get0_pubkey_bitstr(o->issuer), serial);
    if (id == NULL || OCSP_request_add0_id(req, id) == NULL) {
        OCSP_CERTID_free(id);
        goto out;
    }
    lg_rand_bytes(seed, nonce, sizeof(nonce));
    if (lg_rand_pct(seed, o->nonce_pct) && !OCSP_request_add1_nonce(req, nonce, (int)sizeof(nonce)))
        goto out;
    len = i2d_OCSP_REQUEST(req, der);
out:
    ASN1_INTEGER_free(own);
    OCSP_REQUEST_free(req);
    return len;
}

static void
lg_ocsp_opts_clear(struct lg_ocsp_opts *o)
{
    free(o->serials);
    free(o->set_first);
    free(o->set_count);
    X509_free(o->issuer);
}

/* ---- loading ---- */

static void
lg_reqset_free(struct lg_reqset *rs)
{
    free(rs->req);
    free(rs->blob);
    memset(rs, 0, sizeof(*rs));
}

static int
lg_read_all(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 1 << 16, n = 0, r;
    uint8_t *b = NULL, *nb;
    int st = ST_IO;

    if (f == NULL)
        return ST_IO;
    for (;;) {
        if ((nb = realloc(b, cap)) == NULL) {
            st = ST_NOMEM;
            goto out;
        }
        b = nb;
        r = fread(b + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        cap *= 2;
    }
    if (ferror(f))
        goto out;
    *buf = b;
    *len = n;
    b = NULL;
    st = ST_OK;
out:
    free(b);
    fclose(f);
    return st;
}

static int
lg_reqset_parse(struct lg_reqset *rs, size_t len)
{
    const uint8_t *p = rs->blob;
    size_t off = 16;
    uint32_t i;

    if (len < 16 || memcmp(p, LG_SET_MAGIC, 8) != 0)
        return ST_INVALID;
    rs->kind = lg_get_u32(p + 8);
    rs->count = lg_get_u32(p + 12);
    if ((rs->kind != LG_KIND_TSA && rs->kind != LG_KIND_OCSP) || rs->count == 0 ||
        rs->count > LG_SET_MAX_COUNT)
        return ST_INVALID;
    rs->req = calloc(rs->count, sizeof(*rs->req));
    if (rs->req == NULL)
        return ST_NOMEM;
    for (i = 0; i < rs->count; i++) {
        struct lg_req *r = &rs->req[i];
        if (len - off < 8)
            return ST_INVALID;
        r->method = p[off];
        r->expect = p[off + 1];
        r->len = lg_get_u32(p + off + 4);
        off += 8;
        if (r->method > LG_GET || r->len == 0 || r->len > LG_REQ_MAX_LEN || len - off < r->len)
            return ST_INVALID;
        r->der = rs->blob + off;
        off += r->len;
    }
    return off == len ? ST_OK : ST_INVALID;
}

static int
lg_reqset_load(struct lg_reqset *rs, const char *path)
{
    size_t len = 0;
    int st;

    memset(rs, 0, sizeof(*rs));
    st = lg_read_all(path, &rs->blob, &len);
    if (st == ST_OK)
        st = lg_reqset_parse(rs, len);
    if (st != ST_OK) {
        log_err("%s: not a loadgen request set (%s)", path, status_str(st));
        lg_reqset_free(rs);
    }
    return st;
}

/* ---- cheap check of every reply ---- */

/* Read a DER tag and definite length at *p; advance past the header. False when malformed. */
static bool
lg_der_hdr(const uint8_t **p, const uint8_t *end, uint8_t tag, size_t *len)
{
    const uint8_t *q = *p;
    size_t l, n;

    if (end - q < 2 || q[0] != tag)
        return false;
    l = q[1];
    q += 2;
    if (l & 0x80) {
        n = l & 0x7f;
        if (n == 0 || n > 4 || (size_t)(end - q) < n)
            return false;
        for (l = 0; n > 0; n--)
            l = (l << 8) | *q++;
    }
    if ((size_t)(end - q) < l)
        return false;
    *p = q;
    *len = l;
    return true;
}

/* The protocol status of a reply without a full parse: TimeStampResp.status.status (RFC 3161
 * §2.4.2: 0 granted, 1 grantedWithMods accepted) or OCSPResponse.responseStatus (RFC 6960
 * §4.2.1: 0 successful). Returns the status value, or -1 when the reply is not that DER. */
static int
lg_reply_status(uint32_t kind, const uint8_t *b, size_t n)
{
    const uint8_t *p = b, *end = b + n;
    size_t l;

    if (!lg_der_hdr(&p, end, 0x30, &l))
        return -1;
    if (kind == LG_KIND_TSA && !lg_der_hdr(&p, end, 0x30, &l))
        return -1;
    if (!lg_der_hdr(&p, end, kind == LG_KIND_TSA ? 0x02 : 0x0a, &l) || l != 1)
        return -1;
    return p[0];
}

/* Skip one element with the given tag at *p. */
static bool
lg_der_skip(const uint8_t **p, const uint8_t *end, uint8_t tag)
{
    size_t l;

    if (!lg_der_hdr(p, end, tag, &l))
        return false;
    *p += l;
    return true;
}

/*
 * The serialNumber of the token in a granted TimeStampResp, found without a full parse (DER
 * only, as every reply is checked while the load runs): TimeStampResp { status, ContentInfo {
 * contentType, [0] SignedData { version, digestAlgorithms, EncapsulatedContentInfo {
 * eContentType, [0] OCTET STRING { TSTInfo { version, policy, messageImprint, serialNumber
 * ... }}}}}} (RFC 3161 §2.4.2, RFC 5652 §5.1-5.2). *serial points at the INTEGER's content
 * octets. False when the reply has no token or is not laid out so.
 */
static bool
lg_tsa_serial(const uint8_t *b, size_t n, const uint8_t **serial, size_t *serial_len)
{
    const uint8_t *p = b, *end = b + n;
    size_t l;

    if (!lg_der_hdr(&p, end, 0x30, &l) || !lg_der_skip(&p, end, 0x30) ||    /* status */
        !lg_der_hdr(&p, end, 0x30, &l) || !lg_der_skip(&p, end, 0x06) ||    /* ContentInfo */
        !lg_der_hdr(&p, end, 0xa0, &l) || !lg_der_hdr(&p, end, 0x30, &l) || /* SignedData */
        !lg_der_skip(&p, end, 0x02) || !lg_der_skip(&p, end, 0x31) ||
        !lg_der_hdr(&p, end, 0x30, &l) || !lg_der_skip(&p, end, 0x06) || /* encapContentInfo */
        !lg_der_hdr(&p, end, 0xa0, &l) || !lg_der_hdr(&p, end, 0x04, &l) ||
        !lg_der_hdr(&p, end, 0x30, &l) || !lg_der_skip(&p, end, 0x02) || /* TSTInfo */
        !lg_der_skip(&p, end, 0x06) || !lg_der_skip(&p, end, 0x30) ||
        !lg_der_hdr(&p, end, 0x02, &l) || l == 0)
        return false;
    *serial = p;
    *serial_len = l;
    return true;
}

#endif
