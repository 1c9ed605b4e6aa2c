/*
 * check_http_tls: unit suite of the HTTPS listener of common/http (issue 9 items 1 and 4;
 * STANDARDS CIR-02, TPR-11). A real server on 127.0.0.1 (ports picked by the kernel) with an
 * HTTPS listener beside the plain one; an OpenSSL client written here talks to it:
 *   - HTTPS and HTTP served side by side, http_req_tls() tells them apart;
 *   - http_tls_reload(): new handshakes get the new certificate, a connection opened before
 *     the reload keeps working with the old one, a refused reload keeps the current one and
 *     says why;
 *   - TLS 1.0/1.1 and a CBC suite under TLS 1.2 are refused by the server (the client here is
 *     set to offer them, so the refusal is the server's), TLS 1.2 with AEAD and TLS 1.3 pass;
 *   - files refused with a reason naming them: missing, a key others may read, a key that does
 *     not match the certificate.
 * Certificates are made here with OpenSSL (self-signed P-256), in a private temp dir.
 */
#include "common/http.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/status.h"
#include "unitutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static char dir[256];
static char cert_a[300], key_a[300], cert_b[300], key_b[300];

/* A self-signed P-256 certificate with CN=cn, its key written mode 0600. */
static void
make_cert(const char *cn, const char *cert_path, const char *key_path)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name;
    FILE *f;

    ck_assert_ptr_nonnull(pk);
    ck_assert_ptr_nonnull(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0x7fffffff));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    ck_assert_int_gt(X509_sign(x, pk, EVP_sha256()), 0);
    f = fopen(cert_path, "w");
    ck_assert_ptr_nonnull(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fchmod(fileno(f), 0600), 0);
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pk);
}

static void
setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/check_http_tls.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cert_a, sizeof(cert_a), "%s/a.pem", dir);
    snprintf(key_a, sizeof(key_a), "%s/a.key", dir);
    snprintf(cert_b, sizeof(cert_b), "%s/b.pem", dir);
    snprintf(key_b, sizeof(key_b), "%s/b.key", dir);
    make_cert("server A", cert_a, key_a);
    make_cert("server B", cert_b, key_b);
    log_init("check_http_tls", LOG_LVL_ERR);
}

static void
teardown(void)
{
    remove_tree(dir);
}

/* Answers "tls" or "plain": how the request came. */
static void
h_which(struct http_request *req, void *ctx)
{
    const char *w = http_req_tls(req) ? "tls" : "plain";

    (void)ctx;
    http_reply(req, 200, "text/plain", w, strlen(w));
}

static struct http_server *
server_start(const char *cert, const char *key)
{
    struct http_config hc = {.listen_addr = "127.0.0.1", .threads = 2, .timeout_s = 5};
    struct http_tls_config tc = {.listen_addr = "127.0.0.1", .cert = cert, .key = key};
    struct http_server *srv = http_server_new(&hc);
    char err[512];

    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(http_route(srv, "GET", "/which", false, NULL, h_which, NULL), ST_OK);
    ck_assert_msg(http_server_set_tls(srv, &tc, err, sizeof(err)) == ST_OK, "%s", err);
    ck_assert_int_eq(http_server_start(srv), ST_OK);
    ck_assert_uint_ne(http_server_tls_port(srv), 0);
    ck_assert_uint_ne(http_server_port(srv), 0);
    return srv;
}

static int
tcp_connect(uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {10, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

struct tls_cli {
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
};

/* Connect and handshake with versions [minv, maxv] and (when set) only the TLS 1.2 suites
 * `ciphers`; the client's own security level is 0 so that what it offers is refused, if at
 * all, by the server. Returns whether the handshake succeeded. */
static bool
tls_open(struct tls_cli *c, uint16_t port, int minv, int maxv, const char *ciphers)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(c->ctx);
    SSL_CTX_set_security_level(c->ctx, 0);
    SSL_CTX_set_min_proto_version(c->ctx, minv);
    SSL_CTX_set_max_proto_version(c->ctx, maxv);
    if (ciphers != NULL)
        ck_assert_int_eq(SSL_CTX_set_cipher_list(c->ctx, ciphers), 1);
    c->fd = tcp_connect(port);
    c->ssl = SSL_new(c->ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    return SSL_connect(c->ssl) == 1;
}

static void
tls_close(struct tls_cli *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    close(c->fd);
    ERR_clear_error();
}

/* The CN of the certificate the server sent. */
static void
peer_cn(struct tls_cli *c, char *out, size_t cap)
{
    X509 *x = SSL_get1_peer_certificate(c->ssl);

    ck_assert_ptr_nonnull(x);
    out[0] = '\0';
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)cap);
    X509_free(x);
}

/* GET /which over the TLS connection (kept alive); the body. */
static void
tls_get(struct tls_cli *c, char *body, size_t cap)
{
    static const char req[] = "GET /which HTTP/1.1\r\nHost: localhost\r\n\r\n";
    char buf[4096];
    size_t len = 0;
    char *p;
    int r;

    ck_assert_int_eq(SSL_write(c->ssl, req, (int)sizeof(req) - 1), (int)sizeof(req) - 1);
    /* headers then a short body: read until both are in */
    while (len < sizeof(buf) - 1) {
        r = SSL_read(c->ssl, buf + len, (int)(sizeof(buf) - 1 - len));
        ck_assert_int_gt(r, 0);
        len += (size_t)r;
        buf[len] = '\0';
        if ((p = strstr(buf, "\r\n\r\n")) != NULL && (strstr(p, "tls") || strstr(p, "plain")))
            break;
    }
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "reply: %.40s", buf);
    snprintf(body, cap, "%s", strstr(buf, "\r\n\r\n") + 4);
}

START_TEST(test_https_beside_http)
{
    struct http_server *srv = server_start(cert_a, key_a);
    struct tls_cli c;
    char body[64], buf[1024];
    int fd;
    ssize_t n;

    ck_assert(tls_open(&c, http_server_tls_port(srv), TLS1_2_VERSION, TLS1_3_VERSION, NULL));
    tls_get(&c, body, sizeof(body));
    ck_assert_str_eq(body, "tls");
    tls_close(&c);
    fd = tcp_connect(http_server_port(srv));
    ck_assert_int_gt(send(fd, "GET /which HTTP/1.0\r\n\r\n", 23, 0), 0);
    n = recv(fd, buf, sizeof(buf) - 1, MSG_WAITALL);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_ptr_nonnull(strstr(buf, "\r\n\r\nplain"));
    close(fd);
    http_server_free(srv);
}
END_TEST

/* issue 9 item 4: the reload hook SIGHUP uses */
START_TEST(test_reload)
{
    struct http_server *srv = server_start(cert_a, key_a);
    uint16_t port = http_server_tls_port(srv);
    struct tls_cli old, c;
    char cn[128], body[64], err[512];

    ck_assert(tls_open(&old, port, TLS1_2_VERSION, TLS1_3_VERSION, NULL));
    peer_cn(&old, cn, sizeof(cn));
    ck_assert_str_eq(cn, "server A");
    tls_get(&old, body, sizeof(body));

    ck_assert_int_eq(http_tls_reload(srv, cert_b, key_b, NULL, err, sizeof(err)), ST_OK);
    ck_assert(tls_open(&c, port, TLS1_2_VERSION, TLS1_3_VERSION, NULL));
    peer_cn(&c, cn, sizeof(cn));
    ck_assert_str_eq(cn, "server B");
    tls_get(&c, body, sizeof(body));
    ck_assert_str_eq(body, "tls");
    tls_close(&c);
    /* the connection made before the reload goes on, with its certificate */
    tls_get(&old, body, sizeof(body));
    ck_assert_str_eq(body, "tls");
    peer_cn(&old, cn, sizeof(cn));
    ck_assert_str_eq(cn, "server A");
    tls_close(&old);

    /* a refused reload: the current certificate stays, err says why */
    ck_assert_int_eq(http_tls_reload(srv, cert_a, key_b, NULL, err, sizeof(err)), ST_CONFIG);
    ck_assert_msg(strstr(err, "does not match") != NULL && strstr(err, key_b) != NULL, "%s", err);
    ck_assert(tls_open(&c, port, TLS1_2_VERSION, TLS1_3_VERSION, NULL));
    peer_cn(&c, cn, sizeof(cn));
    ck_assert_str_eq(cn, "server B");
    tls_close(&c);
    http_server_free(srv);
}
END_TEST

/* CIR-02: TLS 1.2 or later, no weak suites */
START_TEST(test_versions_and_suites)
{
    struct http_server *srv = server_start(cert_a, key_a);
    uint16_t port = http_server_tls_port(srv);
    struct tls_cli c;

    ck_assert(tls_open(&c, port, TLS1_3_VERSION, TLS1_3_VERSION, NULL));
    tls_close(&c);
    ck_assert(tls_open(&c, port, TLS1_2_VERSION, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256"));
    tls_close(&c);
    ck_assert(!tls_open(&c, port, TLS1_VERSION, TLS1_1_VERSION, NULL));
    tls_close(&c);
    ck_assert(!tls_open(&c, port, TLS1_2_VERSION, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA"));
    tls_close(&c);
    ck_assert(!tls_open(&c, port, TLS1_2_VERSION, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA256"));
    tls_close(&c);
    http_server_free(srv);
}
END_TEST

START_TEST(test_files_refused)
{
    struct http_config hc = {.listen_addr = "127.0.0.1"};
    struct http_tls_config tc = {.listen_addr = "127.0.0.1", .cert = cert_a, .key = key_a};
    struct http_server *srv = http_server_new(&hc);
    char err[512], missing[300];

    ck_assert_ptr_nonnull(srv);
    snprintf(missing, sizeof(missing), "%s/none.pem", dir);
    tc.cert = missing;
    ck_assert_int_eq(http_server_set_tls(srv, &tc, err, sizeof(err)), ST_CONFIG);
    ck_assert_msg(strstr(err, missing) != NULL && strstr(err, "No such file") != NULL, "%s", err);
    tc.cert = cert_a;
    ck_assert_int_eq(chmod(key_a, 0640), 0);
    ck_assert_int_eq(http_server_set_tls(srv, &tc, err, sizeof(err)), ST_CONFIG);
    ck_assert_msg(strstr(err, key_a) != NULL && strstr(err, "group or others") != NULL, "%s", err);
    ck_assert_int_eq(chmod(key_a, 0600), 0);
    tc.key = key_b;
    ck_assert_int_eq(http_server_set_tls(srv, &tc, err, sizeof(err)), ST_CONFIG);
    ck_assert_msg(strstr(err, "does not match") != NULL, "%s", err);
    tc.key = key_a;
    tc.listen_addr = "0.0.0.0";
    ck_assert_int_eq(http_server_set_tls(srv, &tc, err, sizeof(err)), ST_CONFIG);
    tc.listen_addr = "127.0.0.1";
    ck_assert_int_eq(http_server_set_tls(srv, &tc, err, sizeof(err)), ST_OK);
    http_server_free(srv);
}
END_TEST

static Suite *
http_tls_suite(void)
{
    Suite *s = suite_create("http_tls");
    TCase *tc = tcase_create("tls");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_https_beside_http);
    tcase_add_test(tc, test_reload);
    tcase_add_test(tc, test_versions_and_suites);
    tcase_add_test(tc, test_files_refused);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(http_tls_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
