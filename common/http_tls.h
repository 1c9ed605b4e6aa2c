/*
 * http_tls: the certificate and key of common/http's HTTPS listener (issue 9 item 1,
 * STANDARDS CIR-02, TPR-11), loaded from PEM files and checked with OpenSSL, then handed to
 * GnuTLS (libmicrohttpd's TLS library) as the pcert list and private key its certificate
 * callback returns at each handshake.
 *
 * A set of credentials is immutable once loaded. http.c keeps the current one and the ones it
 * replaced (http_tls_reload): a handshake that picked a set may still use it after a reload,
 * and GnuTLS keeps pointers into it for the session, so a replaced set is only freed with the
 * server (a few KiB per reload).
 */
#ifndef COMMON_HTTP_TLS_H
#define COMMON_HTTP_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stddef.h>
#include <time.h>

/* Certificates of the leaf and its chain the listener sends at most. */
#define HTTP_TLS_CHAIN_MAX 8

struct http_tls_cred {
    gnutls_pcert_st pcert[HTTP_TLS_CHAIN_MAX]; /* leaf first */
    unsigned npcert;
    gnutls_privkey_t key;
    time_t not_after;            /* of the leaf */
    char subject[256];           /* of the leaf, for the log */
    struct http_tls_cred *older; /* replaced sets, kept until http_tls_cred_free */
};

/*
 * Load cert (PEM: the leaf, optionally followed by its chain), key (PEM, unencrypted) and chain
 * (PEM CA certificates, optional: NULL or ""). Refused, with the reason in err naming the file:
 * a file missing or unreadable; no certificate or key in it; a key file readable or writable
 * by group or others, or owned by another user than root or this process's; a key that does
 * not match the leaf; a chain whose first certificate did not issue the leaf; an expired leaf.
 * Returns a new set (older = NULL) or NULL.
 */
struct http_tls_cred *http_tls_cred_load(const char *cert, const char *key, const char *chain,
                                         char *err, size_t errlen);

/* Free c and every set in its `older` list. NULL-safe. */
void http_tls_cred_free(struct http_tls_cred *c);

#endif
