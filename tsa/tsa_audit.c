/*
 * tsa_audit: audit record format (see tsa_audit.h).
 */
#include "tsa/tsa_audit.h"
#include "common/der.h"
#include "common/json.h"
#include "common/status.h"

#include <openssl/objects.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

size_t
tsa_audit_tsu_tag(char *out, size_t cap, const char *name)
{
    struct jw o;

    jw_init(&o, out, cap);
    jw_lit(&o, ",\"tsu\":");
    jw_str(&o, name);
    jw_lit(&o, ",");
    return jw_end(&o);
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
    struct jw o;
    const uint8_t *c, *q, *end, *hash = NULL;
    size_t cl, hl = 0;
    struct tm tm;
    char when[40];
    uint8_t tag, ref[4];

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
    jw_init(&o, buf, cap);
    jw_begin(&o);
    jw_ku64(&o, "v", 1);
    jw_kstr(&o, "type", "token");
    jw_khex(&o, "serial", t->serial, TSA_SERIAL_LEN);
    jw_key(&o, "gen_time");
    jw_printf(&o, "\"%s.%06ldZ\"", when, t->gen_time.tv_nsec / 1000);
    jw_kstr(&o, "policy", u->cfg->policy);
    /* the TSU tag exactly as tsa_audit_tsu_tag writes it (read back at start) */
    jw_kstr(&o, "tsu", u->cfg->name);
    jw_kstr(&o, "key", u->key != NULL ? signer_key_name(u->key) : "");
    jw_kstr(&o, "hash_alg", OBJ_nid2sn(req->hash_nid));
    jw_khex(&o, "imprint", hash, hash != NULL ? hl : 0);
    jw_key(&o, "nonce");
    if (req->has_nonce && tlv_content(req->nonce, req->nonce_len, &c, &cl))
        jw_hex(&o, c, cl);
    else
        jw_null(&o);
    for (int i = 0; i < 4; i++)
        ref[i] = (uint8_t)(clk->sample.ref_id >> (24 - 8 * i));
    jw_key(&o, "clock");
    jw_begin(&o);
    jw_kstr(&o, "verdict", clock_verdict_str(clk->verdict));
    jw_key(&o, "error_bound");
    jw_printf(&o, "%.9f", clk->error_bound);
    jw_key(&o, "offset");
    jw_printf(&o, "%.9f", clk->sample.offset);
    jw_key(&o, "root_delay");
    jw_printf(&o, "%.9f", clk->sample.root_delay);
    jw_key(&o, "root_dispersion");
    jw_printf(&o, "%.9f", clk->sample.root_dispersion);
    jw_key(&o, "stratum");
    jw_i64(&o, clk->sample.stratum);
    jw_khex(&o, "ref_id", ref, 4);
    jw_close(&o);
    jw_kstr(&o, "client", client);
    jw_khex(&o, "token_sha256", token_sha256, 32);
    jw_close(&o);
    return jw_end(&o);
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
