/*
 * ocspctl_issuer: `ocspctl issuer add|list`: the CAs the responder serves and how it signs
 * for each (RFC 6960 §2.6, §4.2.2.2: the CA key itself or a delegated responder certificate
 * issued directly by the CA, with id-kp-OCSPSigning, OCSP-21, and id-pkix-ocsp-nocheck,
 * OCSP-22), the nonce policy (OCSP-17, RFC 9654), what to answer for serials never issued
 * (OCSP-13), the validity of responses and archiveCutoff (OCSP-25, ETSI EN 319 411-2), and
 * whether the status of expired certificates may be purged (never for an EU qualified CA:
 * eIDAS Art. 24(4), LW-09, EID-06).
 */
#include "common/config.h"
#include "common/json.h"
#include "common/log.h"
#include "common/signer.h"
#include "common/status.h"
#include "ocsp/ocspctl_int.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ISSUER_VALIDITY_MIN 60
#define ISSUER_VALIDITY_MAX (10 * 86400)

static const char issuer_usage[] =
    "usage: ocspctl issuer add NAME --cert CA.pem (--key-label LABEL | --key-file KEY.pem)\n"
    "           [--signer-cert DELEGATE.pem] [--signature ecdsa|rsa-pkcs1|rsa-pss]\n"
    "           [--digest sha256|sha384|sha512] [--nonce ignore|echo|require]\n"
    "           [--unissued revoked|unknown|good] [--validity DURATION]\n"
    "           [--archive-cutoff yes|no] [--qualified yes|no]\n"
    "           [--purge-status-after DURATION|never]\n"
    "       ocspctl issuer list\n"
    "NAME: [A-Za-z0-9._-]{1,63}. Defaults: signature from the signer key type, digest sha256,\n"
    "nonce echo, unissued revoked, validity 1d (1m..10d), archive-cutoff yes, qualified no,\n"
    "purge-status-after never (a DURATION allows `ocspctl purge ISSUER --status`; it needs\n"
    "--unissued unknown and is refused for a qualified issuer: eIDAS Art. 24(4), LW-09).\n"
    "Adding an existing NAME with the same CA certificate updates its settings.\n";

/* What the operator gave; NULL/-1 for what was not given. */
struct issuer_args {
    const char *name, *cert, *key_label, *key_file, *signer_cert;
    int scheme, hash, nonce, unissued, archive_cutoff, qualified;
    double validity;
    double purge_status_after; /* -1: not given, 0: never */
};

static int
pick(const char *v, const char *const *names, const int *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0)
            return values[i];
    return -1;
}

static int
issuer_opt(struct issuer_args *a, int opt, const char *v)
{
    static const char *const sch[] = {"ecdsa", "rsa-pkcs1", "rsa-pss"};
    static const int schv[] = {SIGNER_ECDSA, SIGNER_RSA_PKCS1, SIGNER_RSA_PSS};
    static const char *const dg[] = {"sha256", "sha384", "sha512"};
    static const int dgv[] = {SIGNER_SHA256, SIGNER_SHA384, SIGNER_SHA512};
    static const char *const nn[] = {"ignore", "echo", "require"};
    static const int nnv[] = {OCSP_NONCE_IGNORE, OCSP_NONCE_ECHO, OCSP_NONCE_REQUIRE};
    static const char *const un[] = {"revoked", "unknown", "good"};
    static const int unv[] = {OCSP_UNISSUED_REVOKED, OCSP_UNISSUED_UNKNOWN, OCSP_UNISSUED_GOOD};
    static const char *const yn[] = {"yes", "no"};
    static const int ynv[] = {1, 0};

    switch (opt) {
    case 'c':
        a->cert = v;
        return ST_OK;
    case 'l':
        a->key_label = v;
        return ST_OK;
    case 'k':
        a->key_file = v;
        return ST_OK;
    case 'd':
        a->signer_cert = v;
        return ST_OK;
    case 's':
        return (a->scheme = pick(v, sch, schv, 3)) < 0 ? ST_INVALID : ST_OK;
    case 'g':
        return (a->hash = pick(v, dg, dgv, 3)) < 0 ? ST_INVALID : ST_OK;
    case 'n':
        return (a->nonce = pick(v, nn, nnv, 3)) < 0 ? ST_INVALID : ST_OK;
    case 'u':
        return (a->unissued = pick(v, un, unv, 3)) < 0 ? ST_INVALID : ST_OK;
    case 'a':
        return (a->archive_cutoff = pick(v, yn, ynv, 2)) < 0 ? ST_INVALID : ST_OK;
    case 'q':
        return (a->qualified = pick(v, yn, ynv, 2)) < 0 ? ST_INVALID : ST_OK;
    case 'p':
        if (strcmp(v, "never") == 0 || strcmp(v, "0") == 0) {
            a->purge_status_after = 0;
            return ST_OK;
        }
        return config_duration(v, &a->purge_status_after) != ST_OK || a->purge_status_after < 1 ||
                       a->purge_status_after > 1e11
                   ? ST_INVALID
                   : ST_OK;
    case 'v':
        return config_duration(v, &a->validity) != ST_OK || a->validity < ISSUER_VALIDITY_MIN ||
                       a->validity > ISSUER_VALIDITY_MAX
                   ? ST_INVALID
                   : ST_OK;
    }
    return ST_INVALID;
}

static int
issuer_parse(int argc, char **argv, struct issuer_args *a)
{
    static const struct option opts[] = {{"cert", required_argument, NULL, 'c'},
                                         {"key-label", required_argument, NULL, 'l'},
                                         {"key-file", required_argument, NULL, 'k'},
                                         {"signer-cert", required_argument, NULL, 'd'},
                                         {"signature", required_argument, NULL, 's'},
                                         {"digest", required_argument, NULL, 'g'},
                                         {"nonce", required_argument, NULL, 'n'},
                                         {"unissued", required_argument, NULL, 'u'},
                                         {"validity", required_argument, NULL, 'v'},
                                         {"archive-cutoff", required_argument, NULL, 'a'},
                                         {"qualified", required_argument, NULL, 'q'},
                                         {"purge-status-after", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int opt, idx = 0;

    memset(a, 0, sizeof(*a));
    a->scheme = a->hash = a->nonce = a->unissued = a->archive_cutoff = a->qualified = -1;
    a->validity = a->purge_status_after = -1;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        if (opt == '?' || opt == 'h')
            return ST_INVALID;
        if (issuer_opt(a, opt, optarg) != ST_OK) {
            fprintf(stderr, "ocspctl: issuer add: bad value '%s' for --%s\n", optarg,
                    opts[idx].name);
            return ST_INVALID;
        }
    }
    if (optind + 1 != argc || a->cert == NULL || (a->key_label == NULL) == (a->key_file == NULL)) {
        fprintf(stderr, "ocspctl: issuer add: NAME, --cert and one of --key-label/--key-file "
                        "are required\n");
        return ST_INVALID;
    }
    a->name = argv[optind];
    if (!ocspctl_name_ok(a->name)) {
        fprintf(stderr, "ocspctl: issuer name '%s': use [A-Za-z0-9._-], 1..63 characters\n",
                a->name);
        return ST_INVALID;
    }
    return ST_OK;
}

/* RFC 6960 §4.2.2.2, OCSP-21/22: the delegate is issued by the CA, is for OCSP signing,
 * carries nocheck (warned when missing) and is valid now. */
static bool
issuer_check_delegate(X509 *d, X509 *ca, const char *path)
{
    uint32_t xku;

    if (!ocspctl_issued_by(d, ca)) {
        fprintf(stderr, "ocspctl: %s: not issued by the CA certificate\n", path);
        return false;
    }
    xku = X509_get_extended_key_usage(d);
    if (!(X509_get_extension_flags(d) & EXFLAG_XKUSAGE) || !(xku & XKU_OCSP_SIGN)) {
        fprintf(stderr, "ocspctl: %s: no extendedKeyUsage id-kp-OCSPSigning\n", path);
        return false;
    }
    if (X509_get_ext_by_NID(d, NID_id_pkix_OCSP_noCheck, -1) < 0)
        fprintf(stderr, "ocspctl: warning: %s: no id-pkix-ocsp-nocheck extension (OCSP-22)\n",
                path);
    if (X509_cmp_current_time(X509_get0_notBefore(d)) >= 0 ||
        X509_cmp_current_time(X509_get0_notAfter(d)) <= 0) {
        fprintf(stderr, "ocspctl: %s: not valid now\n", path);
        return false;
    }
    return true;
}

static bool
issuer_check_key(const char *path, X509 *signer)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *key = NULL;
    bool ok = false;

    if (f == NULL) {
        fprintf(stderr, "ocspctl: %s: cannot open\n", path);
        return false;
    }
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (key == NULL)
        fprintf(stderr, "ocspctl: %s: not a PEM private key\n", path);
    else if (EVP_PKEY_eq(key, X509_get0_pubkey(signer)) != 1)
        fprintf(stderr, "ocspctl: %s: does not match the signer certificate's key\n", path);
    else
        ok = true;
    EVP_PKEY_free(key);
    ERR_clear_error();
    return ok;
}

/* The signature scheme: the one asked for, which must suit the key, or the key's default.
 * keep: a stored scheme kept when it still suits the key (an update without --signature). */
static int
issuer_scheme(X509 *signer, int asked, int keep)
{
    int type = EVP_PKEY_get_base_id(X509_get0_pubkey(signer));
    int dflt = type == EVP_PKEY_EC        ? SIGNER_ECDSA
               : type == EVP_PKEY_RSA     ? SIGNER_RSA_PKCS1
               : type == EVP_PKEY_RSA_PSS ? SIGNER_RSA_PSS
                                          : -1;

    if (dflt < 0) {
        fprintf(stderr, "ocspctl: the signer key is neither EC nor RSA\n");
        return -1;
    }
    if (asked < 0 && keep > 0 && (keep == SIGNER_ECDSA) == (dflt == SIGNER_ECDSA) &&
        !(type == EVP_PKEY_RSA_PSS && keep != SIGNER_RSA_PSS))
        return keep;
    if (asked < 0)
        return dflt;
    if ((asked == SIGNER_ECDSA) != (dflt == SIGNER_ECDSA) ||
        (type == EVP_PKEY_RSA_PSS && asked != SIGNER_RSA_PSS)) {
        fprintf(stderr, "ocspctl: --signature does not suit the signer key\n");
        return -1;
    }
    return asked;
}

static int
cert_der(X509 *x, uint8_t **der, size_t *len)
{
    unsigned char *p = NULL;
    int n = i2d_X509(x, &p);

    if (n <= 0)
        return ST_CRYPTO;
    *der = malloc((size_t)n);
    if (*der == NULL) {
        OPENSSL_free(p);
        return ST_NOMEM;
    }
    memcpy(*der, p, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(p);
    return ST_OK;
}

struct name_or_id {
    const char *name;
    const uint8_t *id;
    char clash[64]; /* issuer with the same id under another name */
    bool name_found;
    bool same_cert;
};

static bool
name_or_id_fn(void *ctx, const struct ocsp_issuer_rec *rec)
{
    struct name_or_id *f = ctx;
    bool same_id = memcmp(rec->id, f->id, OCSP_ISSUER_ID_LEN) == 0;

    if (strcmp(rec->name, f->name) == 0) {
        f->name_found = true;
        f->same_cert = same_id;
    } else if (same_id) {
        snprintf(f->clash, sizeof(f->clash), "%s", rec->name);
    }
    return true;
}

/* Check the certificates and key; fill the record's certificate, signer and id. */
static int
issuer_build_certs(const struct issuer_args *a, X509 *ca, X509 *del, struct ocsp_issuer_rec *r)
{
    int st;

    if (!(X509_get_extension_flags(ca) & EXFLAG_CA)) {
        fprintf(stderr, "ocspctl: %s: not a CA certificate (basicConstraints CA:TRUE)\n", a->cert);
        return ST_INVALID;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(ca)) <= 0)
        fprintf(stderr, "ocspctl: warning: %s has expired\n", a->cert);
    if (del != NULL && !issuer_check_delegate(del, ca, a->signer_cert))
        return ST_INVALID;
    if (a->key_file != NULL && !issuer_check_key(a->key_file, del != NULL ? del : ca))
        return ST_INVALID;
    free(r->cert);
    free(r->signer_cert);
    r->cert = r->signer_cert = NULL;
    r->signer_cert_len = 0;
    if ((st = cert_der(ca, &r->cert, &r->cert_len)) != ST_OK ||
        (del != NULL && (st = cert_der(del, &r->signer_cert, &r->signer_cert_len)) != ST_OK))
        return st;
    r->signer_kind = del != NULL ? OCSP_SIGNER_DELEGATED : OCSP_SIGNER_CA;
    return ocsp_issuer_id_of(r->cert, r->cert_len, r->id);
}

/* Apply the given settings (and defaults for a new issuer) to r. */
static int
issuer_apply(const struct issuer_args *a, X509 *signer, bool update, struct ocsp_issuer_rec *r)
{
    char abs[PATH_MAX];

    snprintf(r->name, sizeof(r->name), "%s", a->name);
    if (a->key_label != NULL && strlen(a->key_label) >= sizeof(r->key_label)) {
        fprintf(stderr, "ocspctl: --key-label: too long\n");
        return ST_INVALID;
    }
    snprintf(r->key_label, sizeof(r->key_label), "%s", a->key_label ? a->key_label : "");
    /* ocspd runs elsewhere: keep the key file as an absolute path */
    if (a->key_file != NULL && realpath(a->key_file, abs) == NULL) {
        fprintf(stderr, "ocspctl: %s: %s\n", a->key_file, strerror(errno));
        return ST_INVALID;
    }
    snprintf(r->key_file, sizeof(r->key_file), "%s", a->key_file ? abs : "");
    if ((r->scheme = issuer_scheme(signer, a->scheme, update ? r->scheme : -1)) < 0)
        return ST_INVALID;
    if (!update) {
        r->hash = SIGNER_SHA256;
        r->nonce_policy = OCSP_NONCE_ECHO;
        r->unissued_policy = OCSP_UNISSUED_REVOKED;
        r->validity = 86400;
        r->archive_cutoff = true;
    }
    if (a->hash >= 0)
        r->hash = a->hash;
    if (a->nonce >= 0)
        r->nonce_policy = (uint8_t)a->nonce;
    if (a->unissued >= 0)
        r->unissued_policy = (uint8_t)a->unissued;
    if (a->validity >= 0)
        r->validity = (uint32_t)a->validity;
    if (a->archive_cutoff >= 0)
        r->archive_cutoff = a->archive_cutoff == 1;
    if (a->qualified >= 0)
        r->qualified = a->qualified == 1;
    if (a->purge_status_after >= 0)
        r->purge_status_after = (uint64_t)a->purge_status_after;
    return ST_OK;
}

static int
issuer_journal(struct ctl *c, const struct ocsp_issuer_rec *r, bool update)
{
    char subject[256] = "", id[2 * OCSP_ISSUER_ID_LEN + 1];
    const unsigned char *p = r->cert;
    X509 *x = d2i_X509(NULL, &p, (long)r->cert_len);
    struct ctl_json j;

    if (x != NULL)
        X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    X509_free(x);
    hex_encode(id, r->id, OCSP_ISSUER_ID_LEN, true);
    ocspctl_journal_begin(c, &j, update ? "issuer-update" : "issuer-add", r->name);
    ocspctl_json_str(&j, "issuer_id", id);
    ocspctl_json_str(&j, "subject", subject);
    ocspctl_json_str(&j, "signer", r->signer_kind == OCSP_SIGNER_CA ? "ca" : "delegated");
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
    return ocspctl_journal_end(c, &j);
}

static int
issuer_add(struct ctl *c, int argc, char **argv)
{
    struct issuer_args a;
    struct ocsp_issuer_rec r = {0};
    struct name_or_id f = {0};
    X509 *ca = NULL, *del = NULL;
    const char *why = NULL;
    int rc = ST_ERR, st;

    if (issuer_parse(argc, argv, &a) != ST_OK) {
        fputs(issuer_usage, stderr);
        return ST_INVALID;
    }
    if ((ca = ocspctl_load_cert(a.cert)) == NULL ||
        (a.signer_cert != NULL && (del = ocspctl_load_cert(a.signer_cert)) == NULL))
        goto out;
    if (issuer_build_certs(&a, ca, del, &r) != ST_OK || ocspctl_open(c, true, false) != ST_OK)
        goto out;
    f.name = a.name;
    f.id = r.id;
    if ((st = ocsp_store_issuer_walk(c->store, name_or_id_fn, &f)) != ST_OK) {
        fprintf(stderr, "ocspctl: reading issuers: %s\n", status_str(st));
        goto out;
    }
    if (f.name_found && !f.same_cert) {
        fprintf(stderr, "ocspctl: issuer '%s' exists with another CA certificate\n", a.name);
        goto out;
    }
    if (f.clash[0] != '\0') {
        fprintf(stderr, "ocspctl: this CA key is already served as issuer '%s'\n", f.clash);
        goto out;
    }
    if (f.name_found) {
        struct ocsp_issuer_rec old;
        if (ocsp_store_issuer_get(c->store, r.id, &old) != ST_OK)
            goto out;
        /* keep the stored settings and CRL state the operator did not change */
        free(old.cert);
        free(old.signer_cert);
        old.cert = r.cert;
        old.cert_len = r.cert_len;
        old.signer_cert = r.signer_cert;
        old.signer_cert_len = r.signer_cert_len;
        old.signer_kind = r.signer_kind;
        r = old;
    }
    if (issuer_apply(&a, del != NULL ? del : ca, f.name_found, &r) != ST_OK)
        goto out;
    if (ocsp_issuer_purge_check(&r, &why) != ST_OK) {
        fprintf(stderr, "ocspctl: issuer %s: %s\n", a.name, why);
        rc = ST_EXISTS; /* refused by a rule: exit 3 */
        goto out;
    }
    if ((st = ocsp_store_issuer_put(c->store, &r)) != ST_OK) {
        fprintf(stderr, "ocspctl: storing issuer %s: %s\n", a.name, status_str(st));
        goto out;
    }
    log_audit("ocsp_issuer", "%s issuer=%s by=%s", f.name_found ? "updated" : "added", a.name,
              c->who);
    if (issuer_journal(c, &r, f.name_found) != ST_OK)
        goto out;
    printf("issuer %s %s\n", a.name, f.name_found ? "updated" : "added");
    rc = ST_OK;
out:
    ocsp_issuer_rec_clear(&r);
    X509_free(ca);
    X509_free(del);
    return rc;
}

static const char *
scheme_name(int s)
{
    return s == SIGNER_ECDSA ? "ecdsa" : s == SIGNER_RSA_PKCS1 ? "rsa-pkcs1" : "rsa-pss";
}

static bool
issuer_print(void *ctx, const struct ocsp_issuer_rec *r)
{
    static const char *const nonce[] = {"ignore", "echo", "require"};
    static const char *const unissued[] = {"revoked", "unknown", "good"};
    static const char *const digest[] = {"?", "sha256", "sha384", "sha512"};
    const unsigned char *p = r->cert;
    X509 *x = d2i_X509(NULL, &p, (long)r->cert_len);
    char subject[256] = "?", tu[16], nu[16];

    (void)ctx;
    if (x != NULL)
        X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    X509_free(x);
    ocspctl_time_fmt(r->crl_this_update, tu);
    ocspctl_time_fmt(r->crl_next_update, nu);
    printf("%s subject=%s signer=%s key=%s:%s signature=%s digest=%s nonce=%s unissued=%s "
           "validity=%u archive_cutoff=%s qualified=%s purge_status_after=%llu crl=%s",
           r->name, subject, r->signer_kind == OCSP_SIGNER_CA ? "ca" : "delegated",
           r->key_label[0] ? "label" : "file", r->key_label[0] ? r->key_label : r->key_file,
           scheme_name(r->scheme), digest[r->hash >= 1 && r->hash <= 3 ? r->hash : 0],
           nonce[r->nonce_policy % 3], unissued[r->unissued_policy % 3], r->validity,
           r->archive_cutoff ? "yes" : "no", r->qualified ? "yes" : "no",
           (unsigned long long)r->purge_status_after, r->crl_fed ? "yes" : "no");
    if (r->crl_fed)
        printf(" crl_number=%llu crl_this_update=%s crl_next_update=%s",
               (unsigned long long)r->crl_number, tu, nu);
    printf("\n");
    return true;
}

static int
issuer_list(struct ctl *c, int argc, char **argv)
{
    int st;

    (void)argv;
    if (argc != 1) {
        fputs(issuer_usage, stderr);
        return ST_INVALID;
    }
    if (ocspctl_open(c, false, false) != ST_OK)
        return ST_ERR;
    if ((st = ocsp_store_issuer_walk(c->store, issuer_print, NULL)) != ST_OK) {
        fprintf(stderr, "ocspctl: reading issuers: %s\n", status_str(st));
        return ST_ERR;
    }
    return ST_OK;
}

int
ocspctl_cmd_issuer(struct ctl *c, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(issuer_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? ST_INVALID : ST_OK;
    }
    if (ocspctl_wants_help(argc - 1, argv + 1)) {
        fputs(issuer_usage, stdout);
        return ST_OK;
    }
    if (strcmp(argv[1], "add") == 0)
        return issuer_add(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return issuer_list(c, argc - 1, argv + 1);
    fprintf(stderr, "ocspctl: issuer: unknown subcommand '%s'\n", argv[1]);
    fputs(issuer_usage, stderr);
    return ST_INVALID;
}
