/*
 * tsa_token: TSU loading and token DER (RFC 3161 §2.4.2, RFC 5816, RFC 5652 §5, RFC 5035,
 * ETSI EN 319 422 §5.2; STANDARDS TSP-03, TSP-14..TSP-24, TPR-02..TPR-07, TPR-09, TPR-12, CIR-01).
 */
#include "tsa/tsa_token.h"
#include "common/der.h"
#include "common/log.h"
#include "common/status.h"

#include <math.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint8_t OID_SIGNED_DATA[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                          0xf7, 0x0d, 0x01, 0x07, 0x02};
static const uint8_t OID_CT_TSTINFO[] = {0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                         0x0d, 0x01, 0x09, 0x10, 0x01, 0x04};
static const uint8_t OID_CONTENT_TYPE[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                           0xf7, 0x0d, 0x01, 0x09, 0x03};
static const uint8_t OID_MESSAGE_DIGEST[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                             0xf7, 0x0d, 0x01, 0x09, 0x04};
static const uint8_t OID_SIGNING_CERT_V2[] = {0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                              0x0d, 0x01, 0x09, 0x10, 0x02, 0x2f};
static const uint8_t OID_SIGNING_CERT[] = {0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                           0x0d, 0x01, 0x09, 0x10, 0x02, 0x0c};
static const uint8_t OID_QC_STATEMENTS[] = {0x06, 0x08, 0x2b, 0x06, 0x01,
                                            0x05, 0x05, 0x07, 0x01, 0x03};
/* esi4-qtstStatement-1, 0.4.0.19422.1.1 (EN 319 422 §9.1) */
static const uint8_t OID_QTST_STATEMENT[] = {0x06, 0x07, 0x04, 0x00, 0x81, 0x97, 0x5e, 0x01, 0x01};

const char *
tsa_cert_check_eku(X509 *cert)
{
    int idx = X509_get_ext_by_NID(cert, NID_ext_key_usage, -1);
    EXTENDED_KEY_USAGE *eku = NULL;
    const char *why = NULL;

    if (idx < 0)
        return "no extendedKeyUsage extension (RFC 3161 §2.3 needs a critical "
               "id-kp-timeStamping EKU)";
    if (X509_get_ext_by_NID(cert, NID_ext_key_usage, idx) >= 0)
        return "more than one extendedKeyUsage extension";
    if (!X509_EXTENSION_get_critical(X509_get_ext(cert, idx)))
        return "extendedKeyUsage is not critical (RFC 3161 §2.3)";
    eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
    if (eku == NULL)
        why = "extendedKeyUsage cannot be decoded";
    else if (sk_ASN1_OBJECT_num(eku) != 1 ||
             OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)) != NID_time_stamp)
        why = "extendedKeyUsage must hold id-kp-timeStamping and nothing else (RFC 3161 §2.3)";
    EXTENDED_KEY_USAGE_free(eku);
    return why;
}

const char *
tsa_cert_check_not_ca(X509 *cert)
{
    BASIC_CONSTRAINTS *bc;
    uint32_t ku;
    int crit = 0;

    bc = X509_get_ext_d2i(cert, NID_basic_constraints, &crit, NULL);
    if (bc == NULL && crit != -1)
        return "basicConstraints cannot be decoded, or appears twice";
    if (bc != NULL && bc->ca) {
        BASIC_CONSTRAINTS_free(bc);
        return "it is a CA certificate (basicConstraints CA:TRUE): a time-stamping key must "
               "not issue certificates (RFC 3161 §2.3)";
    }
    BASIC_CONSTRAINTS_free(bc);
    /* X509_get_key_usage: UINT32_MAX when there is no keyUsage extension (nothing to refuse) */
    ku = X509_get_key_usage(cert);
    if (ku != UINT32_MAX && (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) != 0)
        return (ku & KU_KEY_CERT_SIGN) != 0
                   ? "keyUsage allows keyCertSign: a time-stamping key must not issue "
                     "certificates (RFC 3161 §2.3)"
                   : "keyUsage allows cRLSign: a time-stamping key must not sign CRLs "
                     "(RFC 3161 §2.3)";
    return NULL;
}

static X509 *
tsa_read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x = NULL;

    if (f == NULL) {
        log_err("tsa: cannot open certificate %s", path);
        return NULL;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL)
        log_openssl(LOG_LVL_ERR, "tsa: cannot read certificate");
    return x;
}

static STACK_OF(X509) * tsa_read_chain(const char *path)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    FILE *f;
    X509 *x;

    if (sk == NULL || path[0] == '\0')
        return sk;
    if ((f = fopen(path, "r")) == NULL) {
        log_err("tsa: cannot open chain %s", path);
        sk_X509_free(sk);
        return NULL;
    }
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_num(sk) >= TSA_CHAIN_MAX || sk_X509_push(sk, x) <= 0) {
            log_err("tsa: chain %s: more than %d certificates, or out of memory", path,
                    TSA_CHAIN_MAX);
            X509_free(x);
            sk_X509_pop_free(sk, X509_free);
            fclose(f);
            return NULL;
        }
    }
    ERR_clear_error(); /* end of file */
    fclose(f);
    return sk;
}

static bool
tsa_self_signed(X509 *x)
{
    return (X509_get_extension_flags(x) & EXFLAG_SS) != 0;
}

/* TSA-10: the TSU certificate must chain to the configured CA certificates. */
static int
tsa_verify_chain(struct tsa_unit *u)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    int st = ST_CONFIG;

    if (store == NULL || ctx == NULL || untrusted == NULL)
        goto out;
    for (int i = 0; i < sk_X509_num(u->chain); i++) {
        X509 *c = sk_X509_value(u->chain, i);
        if (tsa_self_signed(c))
            X509_STORE_add_cert(store, c);
        else
            sk_X509_push(untrusted, c);
    }
    X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
    for (int i = 0; i < sk_X509_num(untrusted); i++)
        X509_STORE_add_cert(store, sk_X509_value(untrusted, i));
    if (X509_STORE_CTX_init(ctx, store, u->cert, untrusted) != 1)
        goto out;
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_TIMESTAMP_SIGN);
    if (X509_verify_cert(ctx) != 1) {
        log_err("tsa: [tsu %s] certificate does not verify against chain %s: %s", u->cfg->name,
                u->cfg->chain, X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
    st = ST_OK;
out:
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return st;
}

/* Accuracy SEQUENCE (TSP-20): seconds, millis [0] 1..999, micros [1] 1..999, zeros omitted.
 * genTime gets one more fraction digit than the accuracy needs (TPR-03). */
static void
tsa_encode_accuracy(struct tsa_unit *u)
{
    long long us = llround(u->cfg->accuracy * 1e6);
    long long sec = us / 1000000, ms = (us / 1000) % 1000, mic = us % 1000;
    struct der d;
    size_t m;
    int digits = (int)ceil(-log10(u->cfg->accuracy) - 1e-9) + 1;

    der_init(&d, u->accuracy, sizeof(u->accuracy));
    m = der_begin(&d, DER_SEQUENCE);
    if (sec > 0)
        der_u64(&d, DER_INTEGER, (uint64_t)sec);
    if (ms > 0)
        der_u64(&d, DER_CTX(0), (uint64_t)ms);
    if (mic > 0)
        der_u64(&d, DER_CTX(1), (uint64_t)mic);
    der_end(&d, m);
    u->accuracy_len = d.len;
    u->frac_digits = (unsigned)(digits < 1 ? 1 : digits > 6 ? 6 : digits);
    u->resolution = pow(10.0, -(double)u->frac_digits);
    u->max_error = u->cfg->accuracy - u->resolution;
}

/* Encode an OpenSSL object with its i2d function into a malloc()ed buffer. */
#define TSA_I2D(fn, obj, outp, lenp)                                                               \
    do {                                                                                           \
        unsigned char *p_ = NULL;                                                                  \
        int n_ = fn(obj, &p_);                                                                     \
        *(outp) = n_ > 0 ? p_ : NULL;                                                              \
        *(lenp) = n_ > 0 ? (size_t)n_ : 0;                                                         \
    } while (0)

static int
tsa_take(struct der *d, uint8_t **out, size_t *len)
{
    if (der_finish(d) != ST_OK) {
        der_release(d);
        return ST_NOMEM;
    }
    *out = der_take(d, len);
    return ST_OK;
}

/* IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber } (RFC 5035 §4). */
static void
tsa_issuer_serial(struct der *d, const uint8_t *issuer, size_t ilen, const uint8_t *serial,
                  size_t slen)
{
    size_t m = der_begin(d, DER_SEQUENCE), g = der_begin(d, DER_SEQUENCE);
    size_t dn = der_begin(d, DER_CTX_CONS(4));

    der_raw(d, issuer, ilen);
    der_end(d, dn);
    der_end(d, g);
    der_raw(d, serial, slen);
    der_end(d, m);
}

/* sid, SigningCertificateV2 (and v1) attributes, certificate set. */
static int
tsa_encode_identity(struct tsa_unit *u)
{
    uint8_t *cert = NULL, *issuer = NULL, *serial = NULL, sha1[20];
    size_t cert_len, issuer_len, serial_len;
    struct der_item items[TSA_CHAIN_MAX + 1]; /* the TSU certificate and its chain */
    size_t n = 0, m, s, a;
    struct der d;
    int st = ST_NOMEM;

    TSA_I2D(i2d_X509, u->cert, &cert, &cert_len);
    TSA_I2D(i2d_X509_NAME, X509_get_issuer_name(u->cert), &issuer, &issuer_len);
    TSA_I2D(i2d_ASN1_INTEGER, X509_get0_serialNumber(u->cert), &serial, &serial_len);
    if (cert == NULL || issuer == NULL || serial == NULL)
        goto out;
    SHA256(cert, cert_len, u->cert_sha256);
    SHA1(cert, cert_len, sha1);

    if (der_init_alloc(&d, issuer_len + serial_len + 8) != ST_OK)
        goto out;
    m = der_begin(&d, DER_SEQUENCE);
    der_raw(&d, issuer, issuer_len);
    der_raw(&d, serial, serial_len);
    der_end(&d, m);
    if (tsa_take(&d, &u->sid, &u->sid_len) != ST_OK)
        goto out;

    /* Attribute { signingCertificateV2, SET { SigningCertificateV2 { SEQ { ESSCertIDv2 } } } }
     * ESSCertIDv2 with SHA-256: hashAlgorithm omitted (DER DEFAULT, TSP-16). */
    for (int v1 = 0; v1 <= (u->cfg->ess_cert_id_v1 ? 1 : 0); v1++) {
        if (der_init_alloc(&d, 256 + issuer_len) != ST_OK)
            goto out;
        a = der_begin(&d, DER_SEQUENCE);
        if (v1)
            der_raw(&d, OID_SIGNING_CERT, sizeof(OID_SIGNING_CERT));
        else
            der_raw(&d, OID_SIGNING_CERT_V2, sizeof(OID_SIGNING_CERT_V2));
        s = der_begin(&d, DER_SET);
        m = der_begin(&d, DER_SEQUENCE);
        size_t certs = der_begin(&d, DER_SEQUENCE), id = der_begin(&d, DER_SEQUENCE);
        if (v1)
            der_tlv(&d, DER_OCTET_STRING, sha1, sizeof(sha1));
        else
            der_tlv(&d, DER_OCTET_STRING, u->cert_sha256, sizeof(u->cert_sha256));
        tsa_issuer_serial(&d, issuer, issuer_len, serial, serial_len);
        der_end(&d, id);
        der_end(&d, certs);
        der_end(&d, m);
        der_end(&d, s);
        der_end(&d, a);
        if (tsa_take(&d, v1 ? &u->sig_cert_v1_attr : &u->sig_cert_attr,
                     v1 ? &u->sig_cert_v1_attr_len : &u->sig_cert_attr_len) != ST_OK)
            goto out;
    }

    /* certificates [0] IMPLICIT SET OF: the TSU certificate and its CA certificates without
     * the self-signed root. DER sorts the SET. */
    uint8_t *encs[TSA_CHAIN_MAX + 1] = {NULL};
    items[n].p = cert;
    items[n++].n = cert_len;
    for (int i = 0; i < sk_X509_num(u->chain) && n < TSA_CHAIN_MAX + 1; i++) {
        X509 *c = sk_X509_value(u->chain, i);
        size_t l;

        if (tsa_self_signed(c))
            continue;
        TSA_I2D(i2d_X509, c, &encs[n], &l);
        if (encs[n] == NULL)
            goto out_encs;
        items[n].p = encs[n];
        items[n++].n = l;
    }
    if (der_init_alloc(&d, 4096) == ST_OK) {
        der_set_of(&d, DER_CTX_CONS(0), items, n);
        st = tsa_take(&d, &u->certs, &u->certs_len);
    }
out_encs:
    for (size_t i = 0; i < TSA_CHAIN_MAX + 1; i++)
        OPENSSL_free(encs[i]);
out:
    OPENSSL_free(cert);
    OPENSSL_free(issuer);
    OPENSSL_free(serial);
    return st;
}

/* tsa [0] GeneralName (directoryName) and extensions [1] with the qcStatements of a
 * qualified TSU: SEQUENCE { qcStatements, OCTET STRING { SEQUENCE { SEQUENCE {
 * esi4-qtstStatement-1 } } } }, not critical (CIR-01). */
static int
tsa_encode_tstinfo_parts(struct tsa_unit *u)
{
    uint8_t *name = NULL;
    size_t name_len, m, n;
    struct der d;
    int st = ST_OK;

    if (u->cfg->tsa_name) {
        TSA_I2D(i2d_X509_NAME, X509_get_subject_name(u->cert), &name, &name_len);
        if (name == NULL || der_init_alloc(&d, name_len + 16) != ST_OK) {
            OPENSSL_free(name);
            return ST_NOMEM;
        }
        m = der_begin(&d, DER_CTX_CONS(0));
        n = der_begin(&d, DER_CTX_CONS(4));
        der_raw(&d, name, name_len);
        der_end(&d, n);
        der_end(&d, m);
        OPENSSL_free(name);
        if ((st = tsa_take(&d, &u->tsa_name, &u->tsa_name_len)) != ST_OK)
            return st;
    }
    if (u->cfg->qualified) {
        size_t ext, e, os, qcs, qc;

        if (der_init_alloc(&d, 64) != ST_OK)
            return ST_NOMEM;
        ext = der_begin(&d, DER_CTX_CONS(1));
        e = der_begin(&d, DER_SEQUENCE);
        der_raw(&d, OID_QC_STATEMENTS, sizeof(OID_QC_STATEMENTS));
        os = der_begin(&d, DER_OCTET_STRING);
        qcs = der_begin(&d, DER_SEQUENCE);
        qc = der_begin(&d, DER_SEQUENCE);
        der_raw(&d, OID_QTST_STATEMENT, sizeof(OID_QTST_STATEMENT));
        der_end(&d, qc);
        der_end(&d, qcs);
        der_end(&d, os);
        der_end(&d, e);
        der_end(&d, ext);
        st = tsa_take(&d, &u->extensions, &u->extensions_len);
    }
    return st;
}

/* The end of the key's use (TSA-09, TPR-09): the certificate's notAfter, or the
 * privateKeyUsagePeriod notAfter when that is earlier. */
static void
tsa_key_period(struct tsa_unit *u)
{
    PKEY_USAGE_PERIOD *pkup = X509_get_ext_d2i(u->cert, NID_private_key_usage_period, NULL, NULL);
    struct tm tm;

    if (ASN1_TIME_to_tm(X509_get0_notBefore(u->cert), &tm) == 1)
        u->key_not_before = timegm(&tm);
    if (pkup != NULL && pkup->notBefore != NULL && ASN1_TIME_to_tm(pkup->notBefore, &tm) == 1 &&
        timegm(&tm) > u->key_not_before)
        u->key_not_before = timegm(&tm);
    if (ASN1_TIME_to_tm(X509_get0_notAfter(u->cert), &tm) == 1)
        u->key_not_after = timegm(&tm);
    if (pkup != NULL && pkup->notAfter != NULL && ASN1_TIME_to_tm(pkup->notAfter, &tm) == 1 &&
        timegm(&tm) < u->key_not_after)
        u->key_not_after = timegm(&tm);
    PKEY_USAGE_PERIOD_free(pkup);
}

int
tsa_unit_load(struct tsa_unit *u, const struct tsa_unit_config *cfg)
{
    const char *why;

    memset(u, 0, sizeof(*u));
    u->cfg = cfg;
    pthread_mutex_init(&u->lock, NULL);
    if ((u->cert = tsa_read_cert(cfg->cert)) == NULL)
        return ST_CONFIG;
    if ((why = tsa_cert_check_eku(u->cert)) != NULL) {
        log_err("tsa: [tsu %s] certificate %s refused: %s (TSP-24)", cfg->name, cfg->cert, why);
        return ST_CONFIG;
    }
    if ((why = tsa_cert_check_not_ca(u->cert)) != NULL) {
        log_err("tsa: [tsu %s] certificate %s refused: %s", cfg->name, cfg->cert, why);
        return ST_CONFIG;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(u->cert)) > 0 ||
        X509_cmp_current_time(X509_get0_notAfter(u->cert)) < 0) {
        log_err("tsa: [tsu %s] certificate %s is not valid now", cfg->name, cfg->cert);
        return ST_CONFIG;
    }
    if ((u->chain = tsa_read_chain(cfg->chain)) == NULL)
        return ST_CONFIG;
    if (sk_X509_num(u->chain) > 0 && tsa_verify_chain(u) != ST_OK)
        return ST_CONFIG;
    if (sk_X509_num(u->chain) == 0)
        log_warn("tsa: [tsu %s] no chain configured: the certificate chain is not checked "
                 "(TSA-10)",
                 cfg->name);
    u->policy_len = der_oid_from_text(cfg->policy, u->policy, sizeof(u->policy));
    if (u->policy_len == 0)
        return ST_CONFIG;
    tsa_encode_accuracy(u);
    tsa_key_period(u);
    if (u->key_not_after <= time(NULL))
        log_err("tsa: [tsu %s] the private key usage period of %s has ended: every request "
                "to this TSU gets systemFailure (TSA-09)",
                cfg->name, cfg->cert);
    else if (u->key_not_after - time(NULL) < 30 * 86400)
        log_warn("tsa: [tsu %s] the private key usage period ends in less than 30 days "
                 "(TSA-15): prepare the successor key",
                 cfg->name);
    if (tsa_encode_identity(u) != ST_OK || tsa_encode_tstinfo_parts(u) != ST_OK) {
        log_err("tsa: [tsu %s] cannot encode its constant parts", cfg->name);
        return ST_CONFIG;
    }
    return ST_OK;
}

void
tsa_unit_clear(struct tsa_unit *u)
{
    if (u == NULL || u->cfg == NULL)
        return;
    X509_free(u->cert);
    sk_X509_pop_free(u->chain, X509_free);
    free(u->tsa_name);
    free(u->extensions);
    free(u->certs);
    free(u->sid);
    free(u->sig_cert_attr);
    free(u->sig_cert_v1_attr);
    pthread_mutex_destroy(&u->lock);
    memset(u, 0, sizeof(*u));
}

bool
tsa_unit_gen_time_locked(struct tsa_unit *u, const struct timespec *now, struct timespec *out)
{
    double back;

    back = (double)(u->last_gen.tv_sec - now->tv_sec) +
           (double)(u->last_gen.tv_nsec - now->tv_nsec) * 1e-9;
    if (back <= 0)
        u->last_gen = *now;
    else if (back > u->resolution)
        return false;
    *out = u->last_gen;
    return true;
}

bool
tsa_unit_gen_time(struct tsa_unit *u, const struct timespec *now, struct timespec *out)
{
    bool ok;

    pthread_mutex_lock(&u->lock);
    ok = tsa_unit_gen_time_locked(u, now, out);
    pthread_mutex_unlock(&u->lock);
    return ok;
}

int
tsa_unit_selftest(const struct tsa_unit *u)
{
    static const uint8_t sha512[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                     0x65, 0x03, 0x04, 0x02, 0x03};
    static struct tsa_token t; /* large: not on the stack; start-up only, one thread */
    struct tsa_request req = {0};
    uint8_t zero[64] = {0}, nonce[TSA_NONCE_MAX], digest[SIGNER_MAX_DIGEST];
    size_t dl = 0, m, a;
    struct der d;

    der_init(&d, req.imprint, sizeof(req.imprint));
    m = der_begin(&d, DER_SEQUENCE);
    a = der_begin(&d, DER_SEQUENCE);
    der_raw(&d, sha512, sizeof(sha512));
    der_null(&d);
    der_end(&d, a);
    der_tlv(&d, DER_OCTET_STRING, zero, sizeof(zero));
    der_end(&d, m);
    req.imprint_len = d.len;
    memset(nonce, 0x7f, sizeof(nonce));
    der_init(&d, req.nonce, sizeof(req.nonce));
    der_tlv(&d, DER_INTEGER, nonce, sizeof(nonce));
    req.nonce_len = d.len;
    req.has_nonce = true;
    req.cert_req = true;
    if (der_finish(&d) != ST_OK || tsa_serial_new(t.serial) != ST_OK)
        return ST_INVALID;
    clock_gettime(CLOCK_REALTIME, &t.gen_time);
    if (tsa_token_prepare(u, &req, &t, digest, &dl) != ST_OK) {
        log_err("tsa: [tsu %s] the largest token it may issue does not fit (names or policy "
                "too long)",
                u->cfg->name);
        return ST_CONFIG;
    }
    return ST_OK;
}

/* Serial numbers (TSP-18, DESIGN D5): a keyed pseudorandom permutation of a counter. Each
 * process draws a 128-bit AES key from the OS CSPRNG at its first serial; serial number i is
 * AES-128(key, i), cycle-walked into [1, 2^127): encrypting again until the result is a
 * positive 127-bit integer keeps it a permutation of that range. Distinct counters give
 * distinct serials, so no serial repeats within a run, however many tokens and threads; across
 * runs, nodes and restored backups (independent keys) two serials meet with probability
 * 2^-127 per pair, as independent random draws would. No lookup is needed to keep that
 * promise, so the audit log can be written in append order. */
static struct {
    pthread_mutex_t lock;
    EVP_CIPHER_CTX *ctx;
    pid_t pid;     /* a forked child draws its own key */
    uint64_t next; /* counter: 1, 2, ... */
} tsa_serials = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 1};

static int
tsa_serial_key_locked(void)
{
    unsigned char key[16];
    EVP_CIPHER *aes = NULL;
    int ok;

    if (tsa_serials.ctx != NULL && tsa_serials.pid == getpid())
        return ST_OK;
    EVP_CIPHER_CTX_free(tsa_serials.ctx);
    tsa_serials.ctx = EVP_CIPHER_CTX_new();
    aes = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
    ok = tsa_serials.ctx != NULL && aes != NULL && RAND_priv_bytes(key, sizeof(key)) == 1 &&
         EVP_EncryptInit_ex(tsa_serials.ctx, aes, NULL, key, NULL) == 1 &&
         EVP_CIPHER_CTX_set_padding(tsa_serials.ctx, 0) == 1;
    OPENSSL_cleanse(key, sizeof(key));
    EVP_CIPHER_free(aes);
    if (!ok) {
        EVP_CIPHER_CTX_free(tsa_serials.ctx);
        tsa_serials.ctx = NULL;
        log_openssl(LOG_LVL_ERR, "tsa: serial number key");
        return ST_CRYPTO;
    }
    tsa_serials.pid = getpid();
    tsa_serials.next = 1;
    return ST_OK;
}

static bool
tsa_serial_in_range(const uint8_t b[16])
{
    static const uint8_t zero[16];

    return (b[0] & 0x80) == 0 && memcmp(b, zero, 16) != 0;
}

int
tsa_serial_new(uint8_t serial[TSA_SERIAL_LEN])
{
    uint8_t block[16] = {0};
    int outl = 0, st;

    pthread_mutex_lock(&tsa_serials.lock);
    if ((st = tsa_serial_key_locked()) != ST_OK)
        goto out;
    for (int i = 0; i < 8; i++)
        block[15 - i] = (uint8_t)(tsa_serials.next >> (8 * i));
    tsa_serials.next++;
    do { /* cycle walking: about two rounds on average */
        if (EVP_EncryptUpdate(tsa_serials.ctx, block, &outl, block, 16) != 1 || outl != 16) {
            st = ST_CRYPTO;
            goto out;
        }
    } while (!tsa_serial_in_range(block));
    memcpy(serial, block, TSA_SERIAL_LEN);
out:
    pthread_mutex_unlock(&tsa_serials.lock);
    return st;
}

static int
tsa_build_tstinfo(const struct tsa_unit *u, const struct tsa_request *req, struct tsa_token *t)
{
    struct der d;
    size_t m;

    der_init(&d, t->tstinfo, sizeof(t->tstinfo));
    m = der_begin(&d, DER_SEQUENCE);
    der_u64(&d, DER_INTEGER, 1); /* version v1 (TSP-17) */
    der_raw(&d, u->policy, u->policy_len);
    der_raw(&d, req->imprint, req->imprint_len);
    der_uint(&d, DER_INTEGER, t->serial, TSA_SERIAL_LEN);
    der_gentime(&d, &t->gen_time, u->frac_digits);
    der_raw(&d, u->accuracy, u->accuracy_len);
    /* ordering FALSE is the DEFAULT: never encoded (TSP-21) */
    if (req->has_nonce)
        der_raw(&d, req->nonce, req->nonce_len);
    if (u->tsa_name != NULL)
        der_raw(&d, u->tsa_name, u->tsa_name_len);
    if (u->extensions != NULL)
        der_raw(&d, u->extensions, u->extensions_len);
    der_end(&d, m);
    t->tstinfo_len = d.len;
    return der_finish(&d) == ST_OK ? ST_OK : ST_INVALID;
}

int
tsa_token_prepare(const struct tsa_unit *u, const struct tsa_request *req, struct tsa_token *t,
                  uint8_t *digest, size_t *digest_len)
{
    const EVP_MD *md = signer_key_md(u->key);
    uint8_t ct_attr[64], md_attr[96], content_digest[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    struct der_item items[4];
    struct der d, a;
    size_t n = 0, m, s;

    if (tsa_build_tstinfo(u, req, t) != ST_OK)
        return ST_INVALID;
    if (EVP_Digest(t->tstinfo, t->tstinfo_len, content_digest, &dl, md, NULL) != 1)
        return ST_CRYPTO;

    der_init(&a, ct_attr, sizeof(ct_attr)); /* content-type = id-ct-TSTInfo */
    m = der_begin(&a, DER_SEQUENCE);
    der_raw(&a, OID_CONTENT_TYPE, sizeof(OID_CONTENT_TYPE));
    s = der_begin(&a, DER_SET);
    der_raw(&a, OID_CT_TSTINFO, sizeof(OID_CT_TSTINFO));
    der_end(&a, s);
    der_end(&a, m);
    items[n].p = ct_attr;
    items[n++].n = a.len;

    der_init(&d, md_attr, sizeof(md_attr)); /* message-digest of the eContent */
    m = der_begin(&d, DER_SEQUENCE);
    der_raw(&d, OID_MESSAGE_DIGEST, sizeof(OID_MESSAGE_DIGEST));
    s = der_begin(&d, DER_SET);
    der_tlv(&d, DER_OCTET_STRING, content_digest, dl);
    der_end(&d, s);
    der_end(&d, m);
    items[n].p = md_attr;
    items[n++].n = d.len;

    items[n].p = u->sig_cert_attr;
    items[n++].n = u->sig_cert_attr_len;
    if (u->sig_cert_v1_attr != NULL) {
        items[n].p = u->sig_cert_v1_attr;
        items[n++].n = u->sig_cert_v1_attr_len;
    }
    if (der_finish(&a) != ST_OK || der_finish(&d) != ST_OK)
        return ST_INVALID;
    der_init(&d, t->signed_attrs, sizeof(t->signed_attrs));
    der_set_of(&d, DER_SET, items, n);
    if (der_finish(&d) != ST_OK)
        return ST_INVALID;
    t->signed_attrs_len = d.len;
    /* the signature covers the DER SET OF signedAttrs (RFC 5652 §5.4) */
    if (EVP_Digest(t->signed_attrs, t->signed_attrs_len, digest, &dl, md, NULL) != 1)
        return ST_CRYPTO;
    *digest_len = dl;
    return ST_OK;
}

int
tsa_token_response(const struct tsa_unit *u, const struct tsa_request *req,
                   const struct tsa_token *t, const uint8_t *sig, size_t sig_len, uint8_t **out,
                   size_t *out_len)
{
    size_t alg_len, dig_len, resp, m, ci, cx, sd, set, eci, ec, si, sis;
    const uint8_t *sigalg = signer_key_sigalg_der(u->key, &alg_len);
    const uint8_t *digalg = signer_key_digestalg_der(u->key, &dig_len);
    static const uint8_t status_granted[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    struct der d;

    if (der_init_alloc(&d, 1024 + t->tstinfo_len + sig_len + (req->cert_req ? u->certs_len : 0)) !=
        ST_OK)
        return ST_NOMEM;
    resp = der_begin(&d, DER_SEQUENCE); /* TimeStampResp */
    der_raw(&d, status_granted, sizeof(status_granted));
    ci = der_begin(&d, DER_SEQUENCE); /* ContentInfo (TSP-14) */
    der_raw(&d, OID_SIGNED_DATA, sizeof(OID_SIGNED_DATA));
    cx = der_begin(&d, DER_CTX_CONS(0));
    sd = der_begin(&d, DER_SEQUENCE); /* SignedData */
    der_u64(&d, DER_INTEGER, 3);      /* version 3: eContentType is not id-data */
    set = der_begin(&d, DER_SET);     /* digestAlgorithms */
    der_raw(&d, digalg, dig_len);
    der_end(&d, set);
    eci = der_begin(&d, DER_SEQUENCE); /* encapContentInfo */
    der_raw(&d, OID_CT_TSTINFO, sizeof(OID_CT_TSTINFO));
    ec = der_begin(&d, DER_CTX_CONS(0));
    der_tlv(&d, DER_OCTET_STRING, t->tstinfo, t->tstinfo_len);
    der_end(&d, ec);
    der_end(&d, eci);
    if (req->cert_req) /* TSP-10 */
        der_raw(&d, u->certs, u->certs_len);
    sis = der_begin(&d, DER_SET); /* signerInfos: exactly one */
    si = der_begin(&d, DER_SEQUENCE);
    der_u64(&d, DER_INTEGER, 1); /* issuerAndSerialNumber -> version 1 */
    der_raw(&d, u->sid, u->sid_len);
    der_raw(&d, digalg, dig_len);
    /* signedAttrs [0] IMPLICIT: the signed SET with its tag changed */
    m = der_begin(&d, DER_CTX_CONS(0));
    {
        const uint8_t *p = t->signed_attrs, *content;
        uint8_t tag;
        size_t clen;

        if (!der_read(&p, t->signed_attrs + t->signed_attrs_len, &tag, &content, &clen)) {
            der_release(&d);
            return ST_INVALID;
        }
        der_raw(&d, content, clen);
    }
    der_end(&d, m);
    der_raw(&d, sigalg, alg_len);
    der_tlv(&d, DER_OCTET_STRING, sig, sig_len);
    der_end(&d, si);
    der_end(&d, sis);
    der_end(&d, sd);
    der_end(&d, cx);
    der_end(&d, ci);
    der_end(&d, resp);
    if (der_finish(&d) != ST_OK) {
        der_release(&d);
        return ST_NOMEM;
    }
    *out = der_take(&d, out_len);
    return ST_OK;
}

size_t
tsa_rejection(enum tsa_fail fail, const char *text, uint8_t *buf, size_t cap)
{
    struct der d;
    size_t resp, si, ft;
    size_t tl = text != NULL ? strlen(text) : 0;

    if (tl > 200)
        tl = 200;
    der_init(&d, buf, cap);
    resp = der_begin(&d, DER_SEQUENCE);
    si = der_begin(&d, DER_SEQUENCE);
    der_u64(&d, DER_INTEGER, 2); /* rejection */
    if (tl > 0) {
        ft = der_begin(&d, DER_SEQUENCE);
        der_tlv(&d, DER_UTF8_STRING, text, tl);
        der_end(&d, ft);
    }
    der_named_bits(&d, 1u << fail);
    der_end(&d, si);
    der_end(&d, resp);
    return der_finish(&d) == ST_OK ? d.len : 0;
}
