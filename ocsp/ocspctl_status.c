/*
 * ocspctl_status: the per-certificate subcommands of `ocspctl`: add (issued-serial knowledge,
 * so that a serial the CA never issued is never "good", OCSP-13, D6), revoke, hold and release
 * (EID-05/07/08, OCSP-16: a definitive revocation is final, a hold is released; the store
 * enforces and journals it), status and list, and export of everything as JSON lines (EID-12,
 * EID-15: the status database and its journal in a documented format).
 */
#include "common/json.h"
#include "common/status.h"
#include "ocsp/ocspctl_int.h"

#include <getopt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char status_usage[] =
    "usage: ocspctl add ISSUER (SERIAL_HEX | CERT.pem)... [--not-after YYYYMMDDHHMMSSZ]\n"
    "       ocspctl revoke ISSUER SERIAL_HEX [--reason REASON] [--time YYYYMMDDHHMMSSZ]\n"
    "       ocspctl hold ISSUER SERIAL_HEX [--time YYYYMMDDHHMMSSZ]\n"
    "       ocspctl release ISSUER SERIAL_HEX\n"
    "       ocspctl status ISSUER SERIAL_HEX\n"
    "       ocspctl list ISSUER [--revoked]\n"
    "       ocspctl export [ISSUER]\n"
    "REASON: unspecified keyCompromise cACompromise affiliationChanged superseded\n"
    "        cessationOfOperation privilegeWithdrawn aACompromise\n"
    "A revoked serial is final: release or hold of it is refused (exit 3), and so is a repeated\n"
    "revoke that would weaken it: its earliest time is kept, its reason may only become more\n"
    "specific or keyCompromise. A repeated hold keeps the hold's start. --time may not be in\n"
    "the future.\n"
    "status/list print: SERIAL STATE REASON REVOCATION_TIME NOT_AFTER ('-' when absent).\n";

/* How far ahead of our clock a --time may be (the operator's clock may run a little ahead). */
#define STATUS_TIME_SKEW 60

/* Options shared by the per-serial subcommands. */
struct status_args {
    int reason;        /* -1: none given */
    int64_t time;      /* 0: none given */
    int64_t not_after; /* 0: none given */
    bool revoked_only;
    int first; /* index of the first positional argument */
};

static int
status_parse(int argc, char **argv, const char *allowed, struct status_args *a)
{
    static const struct option opts[] = {{"reason", required_argument, NULL, 'r'},
                                         {"time", required_argument, NULL, 't'},
                                         {"not-after", required_argument, NULL, 'n'},
                                         {"revoked", no_argument, NULL, 'R'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int opt;

    memset(a, 0, sizeof(*a));
    a->reason = -1;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == '?' || opt == 'h' || strchr(allowed, opt) == NULL) {
            if (opt != '?' && opt != 'h')
                fprintf(stderr, "ocspctl: %s: option not allowed here\n", argv[0]);
            return ST_INVALID;
        }
        if (opt == 'r' &&
            ((a->reason = ocspctl_reason_parse(optarg)) < 0 ||
             a->reason == OCSP_REVOKED_STATUS_CERTIFICATEHOLD ||
             a->reason == OCSP_REVOKED_STATUS_REMOVEFROMCRL || strcmp(optarg, "keyTime") == 0)) {
            fprintf(stderr,
                    "ocspctl: --reason %s: not a revocation reason (use `hold` for "
                    "certificateHold)\n",
                    optarg);
            return ST_INVALID;
        }
        if ((opt == 't' && ocspctl_time_parse(optarg, true, &a->time) != ST_OK) ||
            (opt == 'n' && ocspctl_time_parse(optarg, true, &a->not_after) != ST_OK)) {
            fprintf(stderr, "ocspctl: %s: expected YYYYMMDDHHMMSSZ\n", optarg);
            return ST_INVALID;
        }
        if (opt == 't' && a->time > (int64_t)time(NULL) + STATUS_TIME_SKEW) {
            fprintf(stderr,
                    "ocspctl: --time %s is in the future: a revocation or hold can only be dated "
                    "now or earlier\n",
                    optarg);
            return ST_INVALID;
        }
        a->revoked_only = a->revoked_only || opt == 'R';
    }
    a->first = optind;
    return ST_OK;
}

static int
usage_error(void)
{
    fputs(status_usage, stderr);
    return ST_INVALID;
}

static int
bad_serial(const char *s)
{
    fprintf(stderr, "ocspctl: '%s': not a serial number (hex, positive, at most 20 octets)\n", s);
    return ST_INVALID;
}

/* A single-serial subcommand: the options it allows and whether it writes; then what it was
 * given (options, issuer, serial). */
struct serial_cmd {
    const char *allowed;
    bool write;
    struct status_args a;
    struct ocsp_issuer_rec rec;
    struct ctl_serial s;
};

/* Common front of the single-serial subcommands: parse, open, find issuer and serial. */
static int
serial_cmd_open(struct ctl *c, int argc, char **argv, struct serial_cmd *sc)
{
    struct status_args *a = &sc->a;
    struct ocsp_issuer_rec *rec = &sc->rec;
    struct ctl_serial *s = &sc->s;

    memset(rec, 0, sizeof(*rec));
    if (status_parse(argc, argv, sc->allowed, a) != ST_OK || argc - a->first != 2)
        return usage_error();
    if (ocspctl_serial_parse(argv[a->first + 1], s) != ST_OK)
        return bad_serial(argv[a->first + 1]);
    if (ocspctl_open(c, sc->write, false) != ST_OK ||
        ocspctl_issuer_find(c, argv[a->first], rec) != ST_OK)
        return ST_ERR;
    return ST_OK;
}

static void
print_status(const uint8_t *serial, size_t len, const struct ocsp_status *st)
{
    char hex[2 * OCSP_SERIAL_MAX + 1], rt[16], na[16];

    ocspctl_serial_hex(serial, len, hex);
    ocspctl_time_fmt(st != NULL && st->state != OCSP_STATE_GOOD ? st->revocation_time : 0, rt);
    ocspctl_time_fmt(st != NULL ? st->not_after : 0, na);
    printf("%s %s %s %s %s\n", hex, st != NULL ? ocsp_state_name(st->state) : "not-issued",
           st != NULL && st->state != OCSP_STATE_GOOD ? ocspctl_reason_name(st->reason) : "-", rt,
           na);
}

/* Report the outcome of one status change. */
static int
change_result(const char *what, const char *serial, int st)
{
    if (st == ST_OK) {
        printf("%s %s\n", serial, what);
        return ST_OK;
    }
    if (st == ST_EXISTS)
        fprintf(stderr,
                "ocspctl: %s: refused: the serial is definitively revoked and this would undo or "
                "weaken its revocation (EID-07); the attempt is journalled\n",
                serial);
    else
        fprintf(stderr, "ocspctl: %s: %s failed: %s\n", serial, what, status_str(st));
    return ocspctl_status_of(st);
}

int
ocspctl_cmd_revoke(struct ctl *c, int argc, char **argv)
{
    struct serial_cmd sc = {.allowed = "rt", .write = true};
    int rc = serial_cmd_open(c, argc, argv, &sc);

    if (rc == ST_OK)
        rc = change_result(
            "revoked", argv[sc.a.first + 1],
            ocsp_store_status_set(
                c->store,
                &(struct ocsp_status_set){
                    sc.rec.id,
                    sc.s.b,
                    sc.s.len,
                    {OCSP_STATE_REVOKED, sc.a.reason < 0 ? OCSP_REASON_NONE : (uint8_t)sc.a.reason,
                     sc.a.time != 0 ? sc.a.time : time(NULL), 0},
                    c->who}));
    ocsp_issuer_rec_clear(&sc.rec);
    return rc;
}

int
ocspctl_cmd_hold(struct ctl *c, int argc, char **argv)
{
    struct serial_cmd sc = {.allowed = "t", .write = true};
    int rc = serial_cmd_open(c, argc, argv, &sc);

    if (rc == ST_OK)
        rc = change_result(
            "on hold", argv[sc.a.first + 1],
            ocsp_store_status_set(
                c->store, &(struct ocsp_status_set){
                              sc.rec.id,
                              sc.s.b,
                              sc.s.len,
                              {OCSP_STATE_HOLD, 6, sc.a.time != 0 ? sc.a.time : time(NULL), 0},
                              c->who}));
    ocsp_issuer_rec_clear(&sc.rec);
    return rc;
}

int
ocspctl_cmd_release(struct ctl *c, int argc, char **argv)
{
    struct serial_cmd sc = {.allowed = "", .write = true};
    struct ocsp_status cur;
    int rc = serial_cmd_open(c, argc, argv, &sc), st;

    if (rc != ST_OK)
        goto out;
    st = ocsp_store_status_get(c->store, sc.rec.id, sc.s.b, sc.s.len, &cur);
    if (st != ST_OK || cur.state == OCSP_STATE_GOOD) {
        fprintf(stderr, "ocspctl: %s: %s\n", argv[sc.a.first + 1],
                st == ST_NOTFOUND ? "no such serial"
                : st == ST_OK     ? "not on hold"
                                  : status_str(st));
        rc = ST_ERR;
        goto out;
    }
    /* for a revoked serial the store refuses and journals the attempt (EID-07) */
    rc = change_result(
        "released", argv[sc.a.first + 1],
        ocsp_store_status_set(
            c->store,
            &(struct ocsp_status_set){
                sc.rec.id, sc.s.b, sc.s.len, {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, c->who}));
out:
    ocsp_issuer_rec_clear(&sc.rec);
    return rc;
}

int
ocspctl_cmd_status(struct ctl *c, int argc, char **argv)
{
    struct serial_cmd sc = {.allowed = "", .write = false};
    struct ocsp_status cur;
    int rc = serial_cmd_open(c, argc, argv, &sc), st;

    if (rc != ST_OK)
        goto out;
    st = ocsp_store_status_get(c->store, sc.rec.id, sc.s.b, sc.s.len, &cur);
    if (st != ST_OK && st != ST_NOTFOUND) {
        fprintf(stderr, "ocspctl: %s: %s\n", argv[sc.a.first + 1], status_str(st));
        rc = ST_ERR;
        goto out;
    }
    print_status(sc.s.b, sc.s.len, st == ST_OK ? &cur : NULL);
out:
    ocsp_issuer_rec_clear(&sc.rec);
    return rc;
}

/* One `add` argument: a certificate file issued by ca, or a serial. */
static int
add_one(const char *arg, X509 *ca, int64_t not_after, struct ctl_serial *s, int64_t *na)
{
    X509 *x;
    int st;

    *na = not_after;
    if (access(arg, F_OK) != 0)
        return ocspctl_serial_parse(arg, s) == ST_OK ? ST_OK : bad_serial(arg);
    if ((x = ocspctl_load_cert(arg)) == NULL)
        return ST_ERR;
    if (!ocspctl_issued_by(x, ca)) {
        fprintf(stderr, "ocspctl: %s: not issued by this issuer (name or signature)\n", arg);
        X509_free(x);
        return ST_ERR;
    }
    st = ocspctl_serial_from_asn1(X509_get0_serialNumber(x), s);
    if (st == ST_OK)
        st = ocspctl_asn1_time(X509_get0_notAfter(x), na);
    X509_free(x);
    if (st != ST_OK)
        fprintf(stderr, "ocspctl: %s: unusable serial or notAfter\n", arg);
    return st == ST_OK ? ST_OK : ST_ERR;
}

static X509 *
rec_cert(const struct ocsp_issuer_rec *rec)
{
    const unsigned char *p = rec->cert;

    return d2i_X509(NULL, &p, (long)rec->cert_len);
}

int
ocspctl_cmd_add(struct ctl *c, int argc, char **argv)
{
    struct status_args a;
    struct ocsp_issuer_rec rec = {0};
    struct ctl_serial *s = NULL;
    int64_t *na = NULL;
    X509 *ca = NULL;
    int rc, n, st = ST_OK;

    if (status_parse(argc, argv, "n", &a) != ST_OK || argc - a.first < 2)
        return usage_error();
    n = argc - a.first - 1;
    if ((rc = ocspctl_open(c, true, false)) != ST_OK)
        goto out;
    if (ocspctl_issuer_find(c, argv[a.first], &rec) != ST_OK) {
        rc = ST_ERR;
        goto out;
    }
    rc = ST_ERR;
    s = calloc((size_t)n, sizeof(*s));
    na = calloc((size_t)n, sizeof(*na));
    if (s == NULL || na == NULL || (ca = rec_cert(&rec)) == NULL)
        goto out;
    /* check every argument before changing anything */
    for (int i = 0; i < n; i++)
        if ((rc = add_one(argv[a.first + 1 + i], ca, a.not_after, &s[i], &na[i])) != ST_OK)
            goto out;
    for (int i = 0; i < n && st == ST_OK; i++) {
        char hex[2 * OCSP_SERIAL_MAX + 1];
        st = ocspctl_record_issued(c, rec.id, &s[i], na[i]);
        ocspctl_serial_hex(s[i].b, s[i].len, hex);
        if (st == ST_OK)
            printf("%s recorded\n", hex);
        else
            fprintf(stderr, "ocspctl: %s: %s\n", hex, status_str(st));
    }
    rc = ocspctl_status_of(st);
out:
    free(s);
    free(na);
    X509_free(ca);
    ocsp_issuer_rec_clear(&rec);
    return rc;
}

struct list_ctx {
    bool revoked_only;
};

static bool
list_one(void *ctx, const uint8_t *serial, size_t len, const struct ocsp_status *st)
{
    const struct list_ctx *l = ctx;

    if (!l->revoked_only || st->state != OCSP_STATE_GOOD)
        print_status(serial, len, st);
    return true;
}

int
ocspctl_cmd_list(struct ctl *c, int argc, char **argv)
{
    struct status_args a;
    struct ocsp_issuer_rec rec = {0};
    struct list_ctx l;
    int rc = ST_ERR, st;

    if (status_parse(argc, argv, "R", &a) != ST_OK || argc - a.first != 1)
        return usage_error();
    if (ocspctl_open(c, false, false) != ST_OK ||
        ocspctl_issuer_find(c, argv[a.first], &rec) != ST_OK)
        goto out;
    l.revoked_only = a.revoked_only;
    if ((st = ocsp_store_status_walk(c->store, rec.id, list_one, &l)) != ST_OK) {
        fprintf(stderr, "ocspctl: reading statuses: %s\n", status_str(st));
        goto out;
    }
    rc = ST_OK;
out:
    ocsp_issuer_rec_clear(&rec);
    return rc;
}

/* ---- export ---- */

struct export_ctx {
    struct ocsp_store *store;
    const char *only;   /* issuer name, or NULL */
    const char *issuer; /* name of the issuer whose statuses are being walked */
    int st;
};

static char *
base64_of(const uint8_t *p, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);

    if (out != NULL && n > 0)
        EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    else if (out != NULL)
        out[0] = '\0';
    return out;
}

static void
export_line(struct ctl_json *j, struct export_ctx *e)
{
    const char *line = ocspctl_json_end(j);

    if (line == NULL)
        e->st = ST_NOMEM;
    else
        printf("%s\n", line);
    ocspctl_json_free(j);
}

static bool
export_status(void *ctx, const uint8_t *serial, size_t len, const struct ocsp_status *st)
{
    struct export_ctx *e = ctx;
    char hex[2 * OCSP_SERIAL_MAX + 1], t[16];
    struct ctl_json j;

    ocspctl_serial_hex(serial, len, hex);
    ocspctl_json_begin(&j);
    ocspctl_json_str(&j, "type", "status");
    ocspctl_json_str(&j, "issuer", e->issuer);
    ocspctl_json_str(&j, "serial", hex);
    ocspctl_json_str(&j, "state", ocsp_state_name(st->state));
    ocspctl_json_str(&j, "reason",
                     st->state != OCSP_STATE_GOOD ? ocspctl_reason_name(st->reason) : "-");
    ocspctl_time_fmt(st->state != OCSP_STATE_GOOD ? st->revocation_time : 0, t);
    ocspctl_json_str(&j, "revocation_time", t);
    ocspctl_time_fmt(st->not_after, t);
    ocspctl_json_str(&j, "not_after", t);
    ocspctl_time_fmt(st->updated, t);
    ocspctl_json_str(&j, "updated", t);
    export_line(&j, e);
    return e->st == ST_OK;
}

static bool
export_issuer(void *ctx, const struct ocsp_issuer_rec *r)
{
    struct export_ctx *e = ctx;
    char id[2 * OCSP_ISSUER_ID_LEN + 1], *b64 = NULL, *sb64 = NULL;
    struct ctl_json j;

    if (e->only != NULL && strcmp(e->only, r->name) != 0)
        return true;
    hex_encode(id, r->id, OCSP_ISSUER_ID_LEN, true);
    b64 = base64_of(r->cert, r->cert_len);
    sb64 = base64_of(r->signer_cert, r->signer_cert_len);
    ocspctl_json_begin(&j);
    ocspctl_json_str(&j, "type", "issuer");
    ocspctl_json_str(&j, "name", r->name);
    ocspctl_json_str(&j, "issuer_id", id);
    ocspctl_json_str(&j, "cert", b64 != NULL ? b64 : "");
    ocspctl_json_str(&j, "signer", r->signer_kind == OCSP_SIGNER_CA ? "ca" : "delegated");
    ocspctl_json_str(&j, "signer_cert", sb64 != NULL ? sb64 : "");
    ocspctl_json_str(&j, "key_label", r->key_label);
    ocspctl_json_str(&j, "key_file", r->key_file);
    ocspctl_json_int(&j, "scheme", r->scheme);
    ocspctl_json_int(&j, "hash", r->hash);
    ocspctl_json_int(&j, "nonce", r->nonce_policy);
    ocspctl_json_int(&j, "unissued", r->unissued_policy);
    ocspctl_json_int(&j, "validity", r->validity);
    ocspctl_json_bool(&j, "archive_cutoff", r->archive_cutoff);
    ocspctl_json_bool(&j, "qualified", r->qualified);
    ocspctl_json_int(&j, "purge_status_after", (long long)r->purge_status_after);
    ocspctl_json_bool(&j, "crl_fed", r->crl_fed);
    ocspctl_json_int(&j, "crl_this_update", r->crl_this_update);
    ocspctl_json_int(&j, "crl_next_update", r->crl_next_update);
    ocspctl_json_int(&j, "crl_number", (long long)r->crl_number);
    export_line(&j, e);
    free(b64);
    free(sb64);
    e->issuer = r->name;
    if (e->st == ST_OK)
        e->st = ocsp_store_status_walk(e->store, r->id, export_status, e);
    return e->st == ST_OK;
}

/* Journal entries (all, or those naming the issuer) wrapped with their sequence number. */
static bool
export_journal(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct export_ctx *e = ctx;
    char *entry = NULL, *want = NULL;
    struct ctl_json j;
    uint64_t seq = 0;

    for (size_t i = 0; i < klen; i++)
        seq = seq << 8 | ((const uint8_t *)key)[i];
    if ((entry = strndup(val, vlen)) == NULL) {
        e->st = ST_NOMEM;
        return false;
    }
    if (e->only != NULL) {
        ocspctl_json_begin(&j);
        ocspctl_json_str(&j, "issuer", e->only);
        want = strndup(j.p + 1, j.len - 1); /* "issuer":"NAME" */
        ocspctl_json_free(&j);
    }
    if (e->only == NULL || (want != NULL && strstr(entry, want) != NULL)) {
        ocspctl_json_begin(&j);
        ocspctl_json_str(&j, "type", "journal");
        ocspctl_json_int(&j, "seq", (long long)seq);
        ocspctl_json_raw(&j, "entry", entry);
        export_line(&j, e);
    }
    free(want);
    free(entry);
    return e->st == ST_OK;
}

int
ocspctl_cmd_export(struct ctl *c, int argc, char **argv)
{
    struct export_ctx e = {0};
    struct ocsp_issuer_rec rec = {0};
    struct store *raw;
    int st;

    if (argc > 2 || (argc == 2 && argv[1][0] == '-'))
        return usage_error();
    if (ocspctl_open(c, false, false) != ST_OK)
        return ST_ERR;
    if (argc == 2) {
        if (ocspctl_issuer_find(c, argv[1], &rec) != ST_OK)
            return ST_ERR;
        ocsp_issuer_rec_clear(&rec);
        e.only = argv[1];
    }
    e.store = c->store;
    st = ocsp_store_issuer_walk(c->store, export_issuer, &e);
    if (st == ST_OK && e.st == ST_OK) {
        raw = ocsp_store_raw(c->store);
        st = store_walk(raw, store_db(raw, "journal"), NULL, 0, export_journal, &e);
    }
    if (st == ST_OK)
        st = e.st;
    if (st == ST_OK && fflush(stdout) != 0)
        st = ST_IO;
    if (st != ST_OK) {
        fprintf(stderr, "ocspctl: export: %s\n", status_str(st));
        return ST_ERR;
    }
    return ST_OK;
}

void
ocspctl_status_usage(FILE *f)
{
    fputs(status_usage, f);
}
