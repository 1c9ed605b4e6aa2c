/*
 * http_tls: certificate and key files of the HTTPS listener (see http_tls.h). OpenSSL reads
 * and checks them (the rest of the project's PKI code is OpenSSL: one set of messages); the
 * checked DER is then imported into GnuTLS.
 */
#include "common/http_tls.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HTTP_TLS_FILE_MAX (1024 * 1024)

struct tls_load {
    X509 *certs[HTTP_TLS_CHAIN_MAX];
    int ncerts;
    EVP_PKEY *pkey;
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 2, 3))) static void
tls_err(struct tls_load *l, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(l->err, l->errlen, fmt, ap);
    va_end(ap);
    ERR_clear_error();
}

/* The whole file into a memory BIO (NULL, err set, on failure). A key file must be private. */
static BIO *
tls_read_file(struct tls_load *l, const char *what, const char *path, bool secret)
{
    struct stat sb;
    BIO *bio = NULL;
    char *buf = NULL;
    ssize_t r;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        tls_err(l, "%s %s: %s", what, path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > HTTP_TLS_FILE_MAX) {
        tls_err(l, "%s %s: not a regular file of at most 1 MiB", what, path);
        goto out;
    }
    /* as for the PKCS#11 PIN file: a key others may read is no secret any more */
    if (secret && (sb.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) != 0) {
        tls_err(l,
                "%s %s is readable or writable by group or others (mode %04o): refused; "
                "chmod 600 it (owner only)",
                what, path, (unsigned)(sb.st_mode & 07777));
        goto out;
    }
    if (secret && sb.st_uid != 0 && sb.st_uid != geteuid()) {
        tls_err(l,
                "%s %s is owned by uid %lu, not by root or this daemon's user (uid %lu): "
                "refused; chown it",
                what, path, (unsigned long)sb.st_uid, (unsigned long)geteuid());
        goto out;
    }
    if ((buf = malloc((size_t)sb.st_size + 1)) == NULL) {
        tls_err(l, "%s %s: out of memory", what, path);
        goto out;
    }
    while (len < (size_t)sb.st_size &&
           ((r = read(fd, buf + len, (size_t)sb.st_size - len)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0)
            len += (size_t)r;
    if (len != (size_t)sb.st_size) {
        tls_err(l, "%s %s: read failed", what, path);
        goto out;
    }
    /* a secure-heap BIO for the key: its memory is wiped when freed */
    bio = BIO_new(secret ? BIO_s_secmem() : BIO_s_mem());
    if (bio == NULL || BIO_write(bio, buf, (int)len) != (int)len) {
        BIO_free(bio);
        bio = NULL;
        tls_err(l, "%s %s: out of memory", what, path);
    }
out:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    return bio;
}

/* Append every PEM certificate of path; at least one. */
static bool
tls_read_certs(struct tls_load *l, const char *what, const char *path)
{
    BIO *bio = tls_read_file(l, what, path, false);
    int before = l->ncerts;
    X509 *x;
    bool ok = false;

    if (bio == NULL)
        return false;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (l->ncerts == HTTP_TLS_CHAIN_MAX) {
            X509_free(x);
            tls_err(l, "%s %s: more than %d certificates in the chain", what, path,
                    HTTP_TLS_CHAIN_MAX);
            goto out;
        }
        l->certs[l->ncerts++] = x;
    }
    ERR_clear_error(); /* the end of the file reads as an error */
    if (l->ncerts == before) {
        tls_err(l, "%s %s: no PEM certificate in it", what, path);
        goto out;
    }
    ok = true;
out:
    BIO_free(bio);
    return ok;
}

/* Refuse to prompt for a passphrase: an encrypted key cannot be loaded by a daemon. */
static int
tls_no_pass(char *buf, int size, int rw, void *u)
{
    (void)buf;
    (void)size;
    (void)rw;
    (void)u;
    return -1;
}

static bool
tls_read_key(struct tls_load *l, const char *path)
{
    BIO *bio = tls_read_file(l, "tls_key", path, true);

    if (bio == NULL)
        return false;
    l->pkey = PEM_read_bio_PrivateKey(bio, NULL, tls_no_pass, NULL);
    BIO_free(bio);
    if (l->pkey == NULL)
        tls_err(l, "tls_key %s: no unencrypted PEM private key in it", path);
    return l->pkey != NULL;
}

/* The checks of a loaded set (see http_tls.h). */
static bool
tls_check(struct tls_load *l, const char *cert, const char *key)
{
    X509 *leaf = l->certs[0];

    if (X509_check_private_key(leaf, l->pkey) != 1) {
        tls_err(l, "tls_key %s does not match the certificate in tls_cert %s", key, cert);
        return false;
    }
    if (l->ncerts > 1 && X509_check_issued(l->certs[1], leaf) != X509_V_OK) {
        tls_err(l,
                "tls_chain: the first CA certificate after the leaf of tls_cert %s did not "
                "issue it (the chain goes leaf first, then its issuer, up to the root)",
                cert);
        return false;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
        tls_err(l, "tls_cert %s has expired", cert);
        return false;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
        log_warn("http: tls_cert %s is not valid yet (notBefore in the future)", cert);
    return true;
}

/* The DER of every certificate into pcerts, and the key into a GnuTLS private key. */
static bool
tls_to_gnutls(struct tls_load *l, struct http_tls_cred *c)
{
    unsigned char *der = NULL;
    BIO *bio = NULL;
    BUF_MEM *mem = NULL;
    gnutls_datum_t d;
    bool ok = false;
    int len;

    for (int i = 0; i < l->ncerts; i++) {
        der = NULL;
        if ((len = i2d_X509(l->certs[i], &der)) <= 0)
            goto out;
        d.data = der;
        d.size = (unsigned)len;
        if (gnutls_pcert_import_x509_raw(&c->pcert[i], &d, GNUTLS_X509_FMT_DER, 0) < 0) {
            OPENSSL_free(der);
            goto out;
        }
        OPENSSL_free(der);
        c->npcert++;
    }
    if ((bio = BIO_new(BIO_s_secmem())) == NULL ||
        PEM_write_bio_PKCS8PrivateKey(bio, l->pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
        BIO_get_mem_ptr(bio, &mem) != 1 || gnutls_privkey_init(&c->key) < 0)
        goto out;
    d.data = (unsigned char *)mem->data;
    d.size = (unsigned)mem->length;
    if (gnutls_privkey_import_x509_raw(c->key, &d, GNUTLS_X509_FMT_PEM, NULL, 0) < 0)
        goto out;
    ok = true;
out:
    if (mem != NULL)
        OPENSSL_cleanse(mem->data, mem->length);
    BIO_free(bio);
    return ok;
}

struct http_tls_cred *
http_tls_cred_load(const char *cert, const char *key, const char *chain, char *err, size_t errlen)
{
    struct tls_load l = {.err = err, .errlen = errlen};
    struct http_tls_cred *c = NULL;
    const ASN1_TIME *na;
    struct tm tm;

    if (cert == NULL || cert[0] == '\0' || key == NULL || key[0] == '\0') {
        tls_err(&l, "tls_cert and tls_key are both required for HTTPS");
        goto out;
    }
    if (!tls_read_certs(&l, "tls_cert", cert) ||
        (chain != NULL && chain[0] != '\0' && !tls_read_certs(&l, "tls_chain", chain)) ||
        !tls_read_key(&l, key) || !tls_check(&l, cert, key))
        goto out;
    if ((c = calloc(1, sizeof(*c))) == NULL || !tls_to_gnutls(&l, c)) {
        tls_err(&l, "tls_cert %s / tls_key %s: cannot be loaded into GnuTLS", cert, key);
        http_tls_cred_free(c);
        c = NULL;
        goto out;
    }
    na = X509_get0_notAfter(l.certs[0]);
    if (ASN1_TIME_to_tm(na, &tm) == 1)
        c->not_after = timegm(&tm);
    X509_NAME_oneline(X509_get_subject_name(l.certs[0]), c->subject, sizeof(c->subject));
    for (char *p = c->subject; *p != '\0'; p++) /* it goes into log and audit lines */
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = '?';
out:
    for (int i = 0; i < l.ncerts; i++)
        X509_free(l.certs[i]);
    EVP_PKEY_free(l.pkey);
    return c;
}

void
http_tls_cred_free(struct http_tls_cred *c)
{
    while (c != NULL) {
        struct http_tls_cred *older = c->older;

        for (unsigned i = 0; i < c->npcert; i++)
            gnutls_pcert_deinit(&c->pcert[i]);
        if (c->key != NULL)
            gnutls_privkey_deinit(c->key);
        free(c);
        c = older;
    }
}
