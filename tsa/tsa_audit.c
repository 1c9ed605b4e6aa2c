/*
 * tsa_audit: audit record format (see tsa_audit.h).
 */
#include "tsa/tsa_audit.h"
#include "common/der.h"
#include "common/status.h"

#include <openssl/objects.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct out {
    char *p;
    size_t cap, len;
    bool full;
};

static void __attribute__((format(printf, 2, 3))) out_printf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->full)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len)
        o->full = true;
    else
        o->len += (size_t)n;
}

static void
out_hex(struct out *o, const uint8_t *b, size_t n)
{
    static const char hx[] = "0123456789abcdef";

    if (o->full || o->cap - o->len < 2 * n + 1) {
        o->full = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        o->p[o->len++] = hx[b[i] >> 4];
        o->p[o->len++] = hx[b[i] & 15];
    }
    o->p[o->len] = '\0';
}

/* A JSON string value (quotes included), escaping what JSON requires. */
static void
out_jstr(struct out *o, const char *v)
{
    out_printf(o, "\"");
    for (; v != NULL && *v != '\0' && !o->full; v++) {
        unsigned char ch = (unsigned char)*v;

        if (ch == '"' || ch == '\\')
            out_printf(o, "\\%c", ch);
        else if (ch < 0x20)
            out_printf(o, "\\u%04x", ch);
        else if (o->len + 1 < o->cap)
            o->p[o->len++] = (char)ch; /* the common case: no formatting */
        else
            o->full = true;
    }
    if (!o->full)
        o->p[o->len] = '\0';
    out_printf(o, "\"");
}

size_t
tsa_audit_tsu_tag(char *out, size_t cap, const char *name)
{
    struct out o = {out, cap, 0, cap == 0};

    out_printf(&o, ",\"tsu\":");
    out_jstr(&o, name);
    out_printf(&o, ",");
    return o.full ? 0 : o.len;
}

bool
tsa_audit_gen_time(const void *rec, size_t len, struct timespec *out)
{
    static const char tag[] = "\"gen_time\":\"";
    const char *p = memmem(rec, len, tag, sizeof(tag) - 1);
    char buf[40];
    struct tm tm = {0};
    long usec = 0;
    size_t left;
    time_t t;

    if (p == NULL)
        return false;
    p += sizeof(tag) - 1;
    left = len - (size_t)(p - (const char *)rec);
    snprintf(buf, sizeof(buf), "%.*s", (int)(left < sizeof(buf) - 1 ? left : sizeof(buf) - 1), p);
    if (sscanf(buf, "%4d-%2d-%2dT%2d:%2d:%2d.%6ldZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &usec) != 7)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    if ((t = timegm(&tm)) == (time_t)-1)
        return false;
    out->tv_sec = t;
    out->tv_nsec = usec * 1000;
    return true;
}

/* Content octets of the TLV at p (our own validated DER). */
static bool
tlv_content(const uint8_t *p, size_t n, const uint8_t **c, size_t *cl)
{
    uint8_t tag;

    return der_read(&p, p + n, &tag, c, cl);
}

size_t
tsa_audit_format(char *buf, size_t cap, const struct tsa_unit *u, const struct tsa_request *req,
                 const struct tsa_token *t, const struct clock_reading *clk, const char *client,
                 const uint8_t token_sha256[32])
{
    struct out o = {buf, cap, 0, cap == 0};
    const uint8_t *c, *q, *end, *hash = NULL;
    size_t cl, hl = 0;
    struct tm tm;
    char when[40], ref[12];
    uint8_t tag;

    gmtime_r(&t->gen_time.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    /* hashedMessage: the second element of MessageImprint */
    if (tlv_content(req->imprint, req->imprint_len, &c, &cl)) {
        q = c;
        end = c + cl;
        if (der_read(&q, end, &tag, &c, &cl) && der_read(&q, end, &tag, &hash, &hl) &&
            tag != DER_OCTET_STRING)
            hash = NULL;
    }
    out_printf(&o, "{\"v\":1,\"serial\":\"");
    out_hex(&o, t->serial, TSA_SERIAL_LEN);
    out_printf(&o, "\",\"gen_time\":\"%s.%06ldZ\",\"policy\":\"%s\",\"tsu\":", when,
               t->gen_time.tv_nsec / 1000, u->cfg->policy);
    out_jstr(&o, u->cfg->name);
    out_printf(&o, ",\"key\":");
    out_jstr(&o, u->key != NULL ? signer_key_name(u->key) : "");
    out_printf(&o, ",");
    out_printf(&o, "\"hash_alg\":\"%s\",\"imprint\":\"", OBJ_nid2sn(req->hash_nid));
    if (hash != NULL)
        out_hex(&o, hash, hl);
    out_printf(&o, "\",\"nonce\":");
    if (req->has_nonce && tlv_content(req->nonce, req->nonce_len, &c, &cl)) {
        out_printf(&o, "\"");
        out_hex(&o, c, cl);
        out_printf(&o, "\"");
    } else {
        out_printf(&o, "null");
    }
    snprintf(ref, sizeof(ref), "%08x", (unsigned)clk->sample.ref_id);
    out_printf(&o,
               ",\"clock\":{\"verdict\":\"%s\",\"error_bound\":%.9f,\"offset\":%.9f,"
               "\"root_delay\":%.9f,\"root_dispersion\":%.9f,\"stratum\":%d,\"ref_id\":\"%s\"},",
               clock_verdict_str(clk->verdict), clk->error_bound, clk->sample.offset,
               clk->sample.root_delay, clk->sample.root_dispersion, clk->sample.stratum, ref);
    out_printf(&o, "\"client\":");
    out_jstr(&o, client);
    out_printf(&o, ",\"token_sha256\":\"");
    out_hex(&o, token_sha256, 32);
    out_printf(&o, "\"}");
    return o.full ? 0 : o.len;
}

int
tsa_audit_token_span(const uint8_t *resp, size_t len, const uint8_t **tok, size_t *tok_len)
{
    const uint8_t *p = resp, *c, *q, *status;
    size_t cl, sl;
    uint8_t tag;

    /* TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken } */
    if (!der_read(&p, resp + len, &tag, &c, &cl) || tag != DER_SEQUENCE)
        return ST_INVALID;
    q = c;
    if (!der_read(&q, c + cl, &tag, &status, &sl) || q >= c + cl)
        return ST_INVALID;
    *tok = q;
    *tok_len = (size_t)(c + cl - q);
    return ST_OK;
}
