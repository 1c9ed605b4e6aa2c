/*
 * ocspctl_util: shared helpers of the `ocspctl` operator tool: serial numbers as the store
 * keys them (DER INTEGER content octets, RFC 5280 §4.1.2.2: positive, at most 20 octets),
 * GeneralizedTime/UTCTime arguments (RFC 5280 §4.1.2.5), CRLReason names (RFC 5280 §5.3.1),
 * certificate loading and issuance checks, and the JSON lines of the journal (EID-12) and of
 * `export` (EID-15).
 */
#include "common/json.h"
#include "common/log.h"
#include "common/status.h"
#include "ocsp/ocspctl_int.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CTL_CERT_MAX (1u << 20)

int
ocspctl_open(struct ctl *c, bool write, bool create)
{
    char key[PATH_MAX + 64];

    if (!create && !store_exists(c->cfg.store.path)) {
        fprintf(stderr, "ocspctl: no store in %s (run `ocspctl init`): %s\n", c->cfg.store.path,
                strerror(errno));
        return ST_ERR;
    }
    c->store = ocsp_store_open(c->cfg.store.path, c->cfg.store.map_size, !write);
    if (c->store == NULL) {
        fprintf(stderr, "ocspctl: cannot open the store in %s\n", c->cfg.store.path);
        return ST_ERR;
    }
    /* a full map is reported naming the setting to grow (store_open also cleared the reader
     * slots of dead processes, DESIGN D10) */
    snprintf(key, sizeof(key), "[store] map_size in %s",
             c->cfg.file[0] != '\0' ? c->cfg.file : "ocspd.conf");
    store_set_label(ocsp_store_raw(c->store), "ocsp store", key);
    return ST_OK;
}

/* ---- serials ---- */

static int
hex_val(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int
ocspctl_serial_parse(const char *hex, struct ctl_serial *out)
{
    uint8_t mag[OCSP_SERIAL_MAX];
    size_t n, nbytes, i = 0;

    if (hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X'))
        hex += 2;
    for (const char *p = hex; *p != '\0'; p++)
        if (hex_val(*p) < 0)
            return ST_INVALID;
    while (*hex == '0')
        hex++;
    n = strlen(hex);
    nbytes = (n + 1) / 2;
    if (n == 0 || nbytes > OCSP_SERIAL_MAX - 1)
        return ST_INVALID;
    if (n % 2 == 1)
        mag[i++] = (uint8_t)hex_val(*hex++);
    for (; i < nbytes; i++, hex += 2)
        mag[i] = (uint8_t)(hex_val(hex[0]) << 4 | hex_val(hex[1]));
    out->len = 0;
    if (mag[0] & 0x80)
        out->b[out->len++] = 0x00;
    memcpy(out->b + out->len, mag, nbytes);
    out->len += nbytes;
    return ST_OK;
}

int
ocspctl_serial_from_asn1(const ASN1_INTEGER *a, struct ctl_serial *out)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    long len = 0;
    int tag = 0, cls = 0, n = i2d_ASN1_INTEGER(a, &der), st = ST_INVALID;

    if (n <= 0)
        return ST_CRYPTO;
    p = der;
    if ((ASN1_get_object(&p, &len, &tag, &cls, n) & 0x80) != 0 || len < 1 ||
        (size_t)len > OCSP_SERIAL_MAX)
        goto out;
    memcpy(out->b, p, (size_t)len);
    out->len = (size_t)len;
    st = ST_OK;
out:
    OPENSSL_free(der);
    return st;
}

void
ocspctl_serial_hex(const uint8_t *b, size_t len, char *out)
{
    if (len > 1 && b[0] == 0x00) {
        b++;
        len--;
    }
    hex_encode(out, b, len, true);
}

/* ---- times ---- */

int
ocspctl_asn1_time(const ASN1_TIME *a, int64_t *t)
{
    struct tm tm;
    time_t v;

    memset(&tm, 0, sizeof(tm));
    if (a == NULL || ASN1_TIME_to_tm(a, &tm) != 1)
        return ST_INVALID;
    v = timegm(&tm);
    if (v == (time_t)-1)
        return ST_INVALID;
    *t = (int64_t)v;
    return ST_OK;
}

int
ocspctl_time_parse(const char *s, bool gen_only, int64_t *t)
{
    ASN1_TIME *a = NULL;
    size_t n = strlen(s);
    int st = ST_INVALID;

    if ((n != 15 && (gen_only || n != 13)) || s[n - 1] != 'Z')
        return ST_INVALID;
    if ((a = ASN1_TIME_new()) == NULL)
        return ST_NOMEM;
    if (ASN1_TIME_set_string_X509(a, s) == 1)
        st = ocspctl_asn1_time(a, t);
    ASN1_TIME_free(a);
    return st;
}

void
ocspctl_time_fmt(int64_t t, char out[16])
{
    time_t v = (time_t)t;
    struct tm tm;

    /* %04d: strftime's %Y writes year 1 as "1", which no one reads back as a time */
    if (t == 0 || gmtime_r(&v, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
        snprintf(out, 16, "-");
    else
        snprintf(out, 16, "%04u%02u%02u%02u%02u%02uZ", (unsigned)(tm.tm_year + 1900) % 10000,
                 (unsigned)(tm.tm_mon + 1) % 100, (unsigned)tm.tm_mday % 100,
                 (unsigned)tm.tm_hour % 100, (unsigned)tm.tm_min % 100, (unsigned)tm.tm_sec % 100);
}

/* ---- reasons and states ---- */

static const char *const ctl_reasons[OCSP_REASON_MAX + 1] = {
    [OCSP_REVOKED_STATUS_UNSPECIFIED] = "unspecified",
    [OCSP_REVOKED_STATUS_KEYCOMPROMISE] = "keyCompromise",
    [OCSP_REVOKED_STATUS_CACOMPROMISE] = "cACompromise",
    [OCSP_REVOKED_STATUS_AFFILIATIONCHANGED] = "affiliationChanged",
    [OCSP_REVOKED_STATUS_SUPERSEDED] = "superseded",
    [OCSP_REVOKED_STATUS_CESSATIONOFOPERATION] = "cessationOfOperation",
    [OCSP_REVOKED_STATUS_CERTIFICATEHOLD] = "certificateHold",
    [OCSP_REVOKED_STATUS_REMOVEFROMCRL] = "removeFromCRL",
    [OCSP_REVOKED_STATUS_PRIVILEGEWITHDRAWN] = "privilegeWithdrawn",
    [OCSP_REVOKED_STATUS_AACOMPROMISE] = "aACompromise"};

int
ocspctl_reason_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof(ctl_reasons) / sizeof(ctl_reasons[0])); i++)
        if (ctl_reasons[i] != NULL && strcasecmp(name, ctl_reasons[i]) == 0)
            return i;
    /* the OpenSSL `ca` index spellings */
    if (strcasecmp(name, "holdInstruction") == 0)
        return OCSP_REVOKED_STATUS_CERTIFICATEHOLD;
    if (strcasecmp(name, "keyTime") == 0)
        return OCSP_REVOKED_STATUS_KEYCOMPROMISE;
    if (strcasecmp(name, "CAkeyTime") == 0)
        return OCSP_REVOKED_STATUS_CACOMPROMISE;
    return -1;
}

const char *
ocspctl_reason_name(uint8_t reason)
{
    if (reason < sizeof(ctl_reasons) / sizeof(ctl_reasons[0]) && ctl_reasons[reason] != NULL)
        return ctl_reasons[reason];
    return "-";
}

/* ---- files and certificates ---- */

int
ocspctl_read_file(const char *path, size_t max, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b = NULL;
    size_t n = 0;
    int st = ST_IO;

    *buf = NULL;
    if (f == NULL) {
        fprintf(stderr, "ocspctl: %s: %s\n", path, strerror(errno));
        return ST_IO;
    }
    if ((b = malloc(max + 1)) == NULL) {
        st = ST_NOMEM;
        goto out;
    }
    n = fread(b, 1, max + 1, f);
    if (ferror(f) || n > max) {
        fprintf(stderr, "ocspctl: %s: %s\n", path, ferror(f) ? "read error" : "too large");
        goto out;
    }
    *buf = b;
    *len = n;
    b = NULL;
    st = ST_OK;
out:
    free(b);
    fclose(f);
    return st;
}

X509 *
ocspctl_load_cert(const char *path)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    const unsigned char *p;
    X509 *x = NULL;
    BIO *bio = NULL;

    if (ocspctl_read_file(path, CTL_CERT_MAX, &buf, &len) != ST_OK)
        return NULL;
    if (len > 10 && memmem(buf, len, "-----BEGIN", 10) != NULL) {
        if ((bio = BIO_new_mem_buf(buf, (int)len)) != NULL)
            x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    } else {
        p = buf;
        x = d2i_X509(NULL, &p, (long)len);
        if (x != NULL && p != buf + len) {
            X509_free(x);
            x = NULL;
        }
    }
    if (x == NULL) {
        fprintf(stderr, "ocspctl: %s: not a PEM or DER certificate\n", path);
        log_openssl(LOG_LVL_DEBUG, path);
    }
    BIO_free(bio);
    free(buf);
    return x;
}

bool
ocspctl_issued_by(X509 *child, X509 *ca)
{
    EVP_PKEY *pub = X509_get0_pubkey(ca);
    bool ok =
        X509_check_issued(ca, child) == X509_V_OK && pub != NULL && X509_verify(child, pub) == 1;

    ERR_clear_error();
    return ok;
}

/* ---- issuers ---- */

bool
ocspctl_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n < 1 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '.' && name[i] != '_' && name[i] != '-')
            return false;
    return true;
}

struct find_name {
    const char *name;
    uint8_t id[OCSP_ISSUER_ID_LEN];
    bool found;
};

static bool
find_name_fn(void *ctx, const struct ocsp_issuer_rec *rec)
{
    struct find_name *f = ctx;

    if (strcmp(rec->name, f->name) != 0)
        return true;
    memcpy(f->id, rec->id, sizeof(f->id));
    f->found = true;
    return false;
}

int
ocspctl_issuer_find(struct ctl *c, const char *name, struct ocsp_issuer_rec *rec)
{
    struct find_name f = {name, {0}, false};
    int st = ocsp_store_issuer_walk(c->store, find_name_fn, &f);

    memset(rec, 0, sizeof(*rec));
    if (st != ST_OK) {
        fprintf(stderr, "ocspctl: reading issuers: %s\n", status_str(st));
        return st;
    }
    if (!f.found) {
        fprintf(stderr, "ocspctl: no issuer named '%s' (see `ocspctl issuer list`)\n", name);
        return ST_NOTFOUND;
    }
    st = ocsp_store_issuer_get(c->store, f.id, rec);
    if (st != ST_OK)
        fprintf(stderr, "ocspctl: issuer %s: %s\n", name, status_str(st));
    return st;
}

int
ocspctl_record_issued(struct ctl *c, const uint8_t *id, const struct ctl_serial *s,
                      int64_t not_after)
{
    struct ocsp_status cur;
    int st = ocsp_store_status_get(c->store, id, s->b, s->len, &cur);

    if (st == ST_NOTFOUND)
        return ocsp_store_status_set(
            c->store,
            &(struct ocsp_status_set){
                id, s->b, s->len, {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, not_after}, c->who});
    if (st != ST_OK)
        return st;
    return ocsp_store_status_set(
        c->store, &(struct ocsp_status_set){
                      id,
                      s->b,
                      s->len,
                      {(enum ocsp_cert_state)cur.state, cur.reason, cur.revocation_time, not_after},
                      c->who});
}

int
ocspctl_status_of(int st)
{
    return st == ST_OK || st == ST_EXISTS ? st : ST_ERR;
}

/* ---- JSON lines ---- */

static void
json_put(struct ctl_json *j, const char *s, size_t n)
{
    if (j->failed)
        return;
    if (j->len + n + 1 > j->cap) {
        size_t cap = (j->len + n + 1) * 2;
        char *p = realloc(j->p, cap);
        if (p == NULL) {
            j->failed = true;
            return;
        }
        j->p = p;
        j->cap = cap;
    }
    memcpy(j->p + j->len, s, n);
    j->len += n;
    j->p[j->len] = '\0';
}

/* A quoted string, escaped by the shared writer (common/json) a piece at a time. */
static void
json_quoted(struct ctl_json *j, const char *v)
{
    char piece[256 * 6 + 3];
    size_t left = strlen(v);

    json_put(j, "\"", 1);
    while (left > 0) {
        size_t n = left < 256 ? left : 256, len;
        struct jw o;

        /* a piece ends before a UTF-8 continuation byte: a character is never cut in two
         * (the writer escapes a lone part of one) */
        while (n < left && n > 252 && ((unsigned char)v[n] & 0xc0) == 0x80)
            n--;

        jw_init(&o, piece, sizeof(piece));
        jw_strn(&o, v, n);
        len = jw_end(&o);
        json_put(j, piece + 1, len - 2); /* without its quotes */
        v += n;
        left -= n;
    }
    json_put(j, "\"", 1);
}

static void
json_key(struct ctl_json *j, const char *key)
{
    if (!j->first)
        json_put(j, ",", 1);
    j->first = false;
    json_quoted(j, key);
    json_put(j, ":", 1);
}

void
ocspctl_json_begin(struct ctl_json *j)
{
    memset(j, 0, sizeof(*j));
    j->first = true;
    json_put(j, "{", 1);
}

void
ocspctl_json_str(struct ctl_json *j, const char *key, const char *v)
{
    json_key(j, key);
    json_quoted(j, v);
}

void
ocspctl_json_int(struct ctl_json *j, const char *key, long long v)
{
    char b[32];
    int n = snprintf(b, sizeof(b), "%lld", v);

    json_key(j, key);
    json_put(j, b, (size_t)n);
}

void
ocspctl_json_bool(struct ctl_json *j, const char *key, bool v)
{
    json_key(j, key);
    json_put(j, v ? "true" : "false", v ? 4 : 5);
}

void
ocspctl_json_raw(struct ctl_json *j, const char *key, const char *v)
{
    json_key(j, key);
    json_put(j, v, strlen(v));
}

const char *
ocspctl_json_end(struct ctl_json *j)
{
    json_put(j, "}", 1);
    return j->failed ? NULL : j->p;
}

void
ocspctl_json_free(struct ctl_json *j)
{
    free(j->p);
    memset(j, 0, sizeof(*j));
}

void
ocspctl_journal_begin(struct ctl *c, struct ctl_json *j, const char *op, const char *issuer)
{
    ocspctl_json_begin(j);
    ocspctl_json_int(j, "time", (long long)time(NULL));
    ocspctl_json_str(j, "who", c->who);
    ocspctl_json_str(j, "op", op);
    if (issuer != NULL)
        ocspctl_json_str(j, "issuer", issuer);
}

int
ocspctl_journal_end(struct ctl *c, struct ctl_json *j)
{
    const char *line = ocspctl_json_end(j);
    int st = line != NULL ? ocsp_store_journal(c->store, line) : ST_NOMEM;

    if (st != ST_OK)
        fprintf(stderr, "ocspctl: writing the journal: %s\n", status_str(st));
    ocspctl_json_free(j);
    return st;
}

bool
ocspctl_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    return false;
}
