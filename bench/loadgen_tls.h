/*
 * loadgen_tls: HTTPS for bench/loadgen (issue 9 item 1: HTTPS beside HTTP in the bench).
 * OpenSSL on the loadgen's non-blocking sockets: a handshake state between connect and the
 * first send, and reads and writes that map OpenSSL's WANT_READ/WANT_WRITE to EAGAIN so that
 * the epoll loop stays the same. The server certificate is verified (chain and name) when
 * --tls-ca is given, as a real client does; sessions are never resumed, so with --close every
 * request pays a full handshake (the worst case: a client without a session cache).
 * Header-only, included by loadgen.c only.
 */
#ifndef BENCH_LOADGEN_TLS_H
#define BENCH_LOADGEN_TLS_H

#include "common/log.h"
#include "common/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

/* A client context: TLS 1.2 or later; the server verified against ca (PEM) when not NULL. */
static SSL_CTX *
lg_tls_ctx(const char *ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* a server that closes a kept-alive connection without close_notify: end of stream */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (ca != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
            log_err("--tls-ca %s: cannot load it", ca);
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    return ctx;
}

/* The TLS side of a new connection on fd to host (name checked when verifying). */
static SSL *
lg_tls_new(SSL_CTX *ctx, int fd, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    unsigned char ip[16];
    bool numeric = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;

    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
        goto fail;
    if (numeric ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
                : (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1))
        goto fail;
    SSL_set_connect_state(ssl);
    return ssl;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

/* An SSL_read/SSL_write result r <= 0 as recv/send would give it. */
static ssize_t
lg_tls_result(SSL *ssl, int r)
{
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        errno = ECONNRESET;
        return -1;
    }
}

/* Handshake step: 1 done, 0 not yet (wait for the next event), -1 failed. */
static int
lg_tls_handshake(SSL *ssl)
{
    int r = SSL_do_handshake(ssl);

    if (r == 1)
        return 1;
    if (lg_tls_result(ssl, r) < 0 && errno == EAGAIN)
        return 0;
    ERR_clear_error();
    return -1;
}

static ssize_t
lg_io_recv(SSL *ssl, int fd, void *buf, size_t n)
{
    int r;

    if (ssl == NULL)
        return recv(fd, buf, n, 0);
    r = SSL_read(ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
    return r > 0 ? r : lg_tls_result(ssl, r);
}

static ssize_t
lg_io_send(SSL *ssl, int fd, const void *buf, size_t n)
{
    int r;

    if (ssl == NULL)
        return send(fd, buf, n, MSG_NOSIGNAL);
    r = SSL_write(ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
    return r > 0 ? r : lg_tls_result(ssl, r);
}

#endif
