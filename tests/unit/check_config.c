/*
 * check_config: unit suite of common/config (INI through libinih, typed value parsers) and of
 * the tsad.conf schema in tsa/tsa_config (DESIGN D8: the whole file is validated at start and
 * every error names file:line). Schema rules checked here: accuracy of 1 s or better (TPR-04),
 * weak imprint hashes refused (ALG-01), a qualified TSU alone on its path (TSA-17), one
 * default TSU per shared path, exactly one key source per TSU, PKCS#11 settings when a key
 * lives in a token.
 */
#include "common/chain.h"
#include "common/config.h"
#include "common/log.h"
#include "common/signer.h"
#include "common/status.h"
#include "tsa/tsa_config.h"

#include <check.h>
#include <math.h>
#include <openssl/objects.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct tsa_config cfg;
static char err[CONFIG_ERR_MAX];

/* ---- typed parsers ---- */

START_TEST(test_bool)
{
    static const char *const yes[] = {"yes", "true", "on", "1", "YES", "True"};
    static const char *const no[] = {"no", "false", "off", "0", "No", "OFF"};
    static const char *const bad[] = {"", "y", "n", "2", "yess", "enable", " yes"};
    bool b;

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        b = false;
        ck_assert_int_eq(config_bool(yes[i], &b), ST_OK);
        ck_assert_msg(b, "%s", yes[i]);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        b = true;
        ck_assert_int_eq(config_bool(no[i], &b), ST_OK);
        ck_assert_msg(!b, "%s", no[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        b = true;
        ck_assert_msg(config_bool(bad[i], &b) == ST_INVALID, "'%s' accepted", bad[i]);
        ck_assert(b); /* untouched */
    }
}
END_TEST

START_TEST(test_uint)
{
    unsigned long long x = 77;

    ck_assert_int_eq(config_uint("0", 0, 10, &x), ST_OK);
    ck_assert_uint_eq(x, 0);
    ck_assert_int_eq(config_uint("10", 1, 10, &x), ST_OK);
    ck_assert_uint_eq(x, 10);
    ck_assert_int_eq(config_uint("1", 1, 10, &x), ST_OK);
    ck_assert_uint_eq(x, 1);
    ck_assert_int_eq(config_uint("18446744073709551615", 0, ~0ULL, &x), ST_OK);
    ck_assert_uint_eq(x, ~0ULL);
    x = 77;
    ck_assert_int_eq(config_uint("11", 1, 10, &x), ST_INVALID);
    ck_assert_int_eq(config_uint("0", 1, 10, &x), ST_INVALID);
    ck_assert_int_eq(config_uint("-1", 0, ~0ULL, &x), ST_INVALID);
    ck_assert_int_eq(config_uint("+1", 0, 10, &x), ST_INVALID);
    ck_assert_int_eq(config_uint("", 0, 10, &x), ST_INVALID);
    ck_assert_int_eq(config_uint("5x", 0, 10, &x), ST_INVALID);
    ck_assert_int_eq(config_uint("1.5", 0, 10, &x), ST_INVALID);
    ck_assert_int_eq(config_uint("18446744073709551616", 0, ~0ULL, &x), ST_INVALID);
    ck_assert_uint_eq(x, 77);
}
END_TEST

static void
check_duration(const char *v, double want)
{
    double d = -1;

    ck_assert_msg(config_duration(v, &d) == ST_OK, "'%s' refused", v);
    ck_assert_msg(fabs(d - want) <= want * 1e-12, "'%s' -> %.12g, want %.12g", v, d, want);
}

START_TEST(test_duration)
{
    static const char *const bad[] = {"",    "ms", "1x", "-1s", "+1s", "1 s",  "1sec",
                                      "1ss", "s1", ".",  "nan", "inf", "1e999"};
    double d = 42;

    check_duration("100ms", 0.1);
    check_duration("1.5s", 1.5);
    check_duration("2m", 120);
    check_duration("1us", 1e-6);
    check_duration("250ms", 0.25);
    check_duration("1h", 3600);
    check_duration("3d", 3 * 86400.0);
    check_duration("5", 5); /* a bare number is seconds */
    check_duration("0", 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(config_duration(bad[i], &d) == ST_INVALID, "'%s' accepted", bad[i]);
    ck_assert(d == 42);
}
END_TEST

START_TEST(test_size)
{
    static const char *const bad[] = {"",     "k",   "1T",   "-1",          "+1",
                                      "1.5M", "1kb", "64 k", "17179869184G"};
    size_t n = 0;

    ck_assert_int_eq(config_size("4096", &n), ST_OK);
    ck_assert_uint_eq(n, 4096);
    ck_assert_int_eq(config_size("64k", &n), ST_OK);
    ck_assert_uint_eq(n, 65536);
    ck_assert_int_eq(config_size("16M", &n), ST_OK);
    ck_assert_uint_eq(n, 16u << 20);
    ck_assert_int_eq(config_size("1G", &n), ST_OK);
    ck_assert_uint_eq(n, 1u << 30);
    ck_assert_int_eq(config_size("2g", &n), ST_OK);
    ck_assert_uint_eq(n, 2ULL << 30);
    n = 99;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(config_size(bad[i], &n) == ST_INVALID, "'%s' accepted", bad[i]);
    ck_assert_uint_eq(n, 99);
}
END_TEST

START_TEST(test_listen)
{
    static const char *const bad[] = {"127.0.0.1",       "127.0.0.1:",
                                      "127.0.0.1:65536", "127.0.0.1:-1",
                                      "127.0.0.1:http",  ":80",
                                      "localhost:80",    "[::1]443",
                                      "[::1:443",        "[]:80",
                                      "1.2.3:80",        "[::1]:",
                                      "300.0.0.1:80",    ""};
    char host[64];
    char tiny[4];
    uint16_t port = 0;

    ck_assert_int_eq(config_listen("127.0.0.1:80", host, sizeof(host), &port), ST_OK);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_uint_eq(port, 80);
    ck_assert_int_eq(config_listen("[::1]:443", host, sizeof(host), &port), ST_OK);
    ck_assert_str_eq(host, "::1");
    ck_assert_uint_eq(port, 443);
    ck_assert_int_eq(config_listen("0.0.0.0:0", host, sizeof(host), &port), ST_OK);
    ck_assert_str_eq(host, "0.0.0.0");
    ck_assert_uint_eq(port, 0);
    ck_assert_int_eq(config_listen("[fe80::1:2]:65535", host, sizeof(host), &port), ST_OK);
    ck_assert_str_eq(host, "fe80::1:2");
    ck_assert_uint_eq(port, 65535);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(config_listen(bad[i], host, sizeof(host), &port) == ST_INVALID,
                      "'%s' accepted", bad[i]);
    /* a host that does not fit the caller's buffer */
    ck_assert_int_eq(config_listen("127.0.0.1:80", tiny, sizeof(tiny), &port), ST_INVALID);
}
END_TEST

/* ---- common/config parse driver ---- */

struct seen {
    int n;
    char last[128];
    int last_line;
};

static int
record_key(void *user, const char *section, const char *key, const char *value,
           const struct config_pos *pos)
{
    struct seen *s = user;

    s->n++;
    snprintf(s->last, sizeof(s->last), "%s/%s=%s", section, key, value);
    s->last_line = pos->line;
    return ST_OK;
}

static struct config_parse *refuse_parse;

static int
refuse_key(void *user, const char *section, const char *key, const char *value,
           const struct config_pos *pos)
{
    (void)user;
    (void)section;
    (void)value;
    if (strcmp(key, "bad") == 0)
        return config_error(refuse_parse, pos, "no '%s' here", key);
    if (strcmp(key, "silent") == 0)
        return ST_INVALID; /* the driver must still produce a message */
    return ST_OK;
}

START_TEST(test_parse_string_lines)
{
    struct seen s = {0};
    struct config_parse p = {.fn = record_key, .user = &s};

    ck_assert_int_eq(
        config_parse_string(&p, "x.conf", "; comment\n\n[a]\nk = v\n# more\n[b]\nz = 1 2 3\n"),
        ST_OK);
    ck_assert_int_eq(s.n, 2);
    ck_assert_str_eq(s.last, "b/z=1 2 3");
    ck_assert_int_eq(s.last_line, 7);
    ck_assert_str_eq(p.err, "");
}
END_TEST

START_TEST(test_parse_string_errors)
{
    struct config_parse p = {.fn = refuse_key};

    refuse_parse = &p;
    ck_assert_int_eq(config_parse_string(&p, "f.conf", "[s]\nok = 1\nbad = 2\nbad = 3\n"),
                     ST_CONFIG);
    ck_assert_str_eq(p.err, "f.conf:3: no 'bad' here"); /* first error wins */
    ck_assert_int_eq(config_parse_string(&p, "g.conf", "[s]\nsilent = 1\n"), ST_CONFIG);
    ck_assert_str_eq(p.err, "g.conf:2: invalid setting 'silent'");
    ck_assert_int_eq(config_parse_string(&p, "h.conf", "[s]\nok = 1\nnot ini at all\n"), ST_CONFIG);
    ck_assert_ptr_nonnull(strstr(p.err, "h.conf:3: syntax error"));
    ck_assert_int_eq(config_parse_string(&p, "i.conf", "[s\nok = 1\n"), ST_CONFIG);
    ck_assert_ptr_nonnull(strstr(p.err, "i.conf:1: "));
}
END_TEST

START_TEST(test_parse_file)
{
    char path[] = "/tmp/check_config.XXXXXX";
    int fd = mkstemp(path);
    static const char text[] = "[a]\nk = v\n\n[b]\nbad = 1\n";
    struct config_parse p = {.fn = refuse_key};

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    refuse_parse = &p;
    ck_assert_int_eq(config_parse_file(&p, path), ST_CONFIG);
    unlink(path);
    ck_assert_ptr_nonnull(strstr(p.err, path));
    ck_assert_ptr_nonnull(strstr(p.err, ":5: no 'bad' here"));
    /* the same struct again: the new error replaces the old one */
    ck_assert_int_eq(config_parse_file(&p, "/nonexistent/dir/x.conf"), ST_CONFIG);
    ck_assert_ptr_nonnull(strstr(p.err, "/nonexistent/dir/x.conf:0: cannot open"));
}
END_TEST

START_TEST(test_parse_file_long_line)
{
    char path[] = "/tmp/check_config.XXXXXX";
    int fd = mkstemp(path);
    char line[300];
    struct config_parse p = {.fn = refuse_key};
    FILE *f;

    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    memset(line, 'v', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\0';
    fprintf(f, "[a]\nk = %s\nz = 1\n", line);
    fclose(f);
    refuse_parse = &p;
    ck_assert_int_eq(config_parse_file(&p, path), ST_CONFIG);
    unlink(path);
    ck_assert_msg(strstr(p.err, ":2: line too long") != NULL, "%s", p.err);
}
END_TEST

/* ---- tsad.conf schema ---- */

/* Line numbers matter: the error tests below count on them. */
static const char full_conf[] = "; tsad test configuration\n"                       /* 1 */
                                "[server]\n"                                        /* 2 */
                                "listen = [::1]:3181\n"                             /* 3 */
                                "threads = 4\n"                                     /* 4 */
                                "max_body = 32k\n"                                  /* 5 */
                                "max_connections = 200\n"                           /* 6 */
                                "per_ip_limit = 10\n"                               /* 7 */
                                "timeout = 30s\n"                                   /* 8 */
                                "[log]\n"                                           /* 9 */
                                "level = debug\n"                                   /* 10 */
                                "[clock]\n"                                         /* 11 */
                                "chrony_socket = /run/test/chronyd.sock\n"          /* 12 */
                                "poll_interval = 500ms\n"                           /* 13 */
                                "max_update_age = 20m\n"                            /* 14 */
                                "leap_guard = 2s\n"                                 /* 15 */
                                "kernel_check = no\n"                               /* 16 */
                                "[store]\n"                                         /* 17 */
                                "path = /var/lib/tsad-test\n"                       /* 18 */
                                "map_size = 64M\n"                                  /* 19 */
                                "[signer]\n"                                        /* 20 */
                                "pkcs11_module = /usr/lib/softhsm/libsofthsm2.so\n" /* 21 */
                                "token = tsa\n"                                     /* 22 */
                                "pin_file = /etc/tsad/pin\n"                        /* 23 */
                                "workers = 2\n"                                     /* 24 */
                                "queue_max = 100\n"                                 /* 25 */
                                "batch_max = 8\n"                                   /* 26 */
                                "[tsa]\n"                                           /* 27 */
                                "hashes = sha256, sha512 sha3-256\n"                /* 28 */
                                "[tsu qual]\n"                                      /* 29 */
                                "policy = 0.4.0.2023.1.1\n"                         /* 30 */
                                "path = /qtsa\n"                                    /* 31 */
                                "certificate = /etc/tsad/q.pem\n"                   /* 32 */
                                "chain = /etc/tsad/ca.pem\n"                        /* 33 */
                                "key_label = tsu-q\n"                               /* 34 */
                                "signature = ecdsa\n"                               /* 35 */
                                "accuracy = 100ms\n"                                /* 36 */
                                "qualified = yes\n"                                 /* 37 */
                                "[tsu plain]\n"                                     /* 38 */
                                "policy = 1.3.6.1.4.1.4146.2.3\n"                   /* 39 */
                                "certificate = /etc/tsad/n.pem\n"                   /* 40 */
                                "key_file = /etc/tsad/n.key\n"                      /* 41 */
                                "signature = rsa-pss\n"                             /* 42 */
                                "digest = sha384\n"                                 /* 43 */
                                "accuracy = 1s\n"                                   /* 44 */
                                "tsa_name = no\n"                                   /* 45 */
                                "ess_cert_id_v1 = yes\n";                           /* 46 */

START_TEST(test_tsa_full)
{
    const struct tsa_unit_config *q, *n;

    ck_assert_msg(tsa_config_load_string(&cfg, full_conf, err, sizeof(err)) == ST_OK, "%s", err);
    ck_assert_str_eq(cfg.server.listen_host, "::1");
    ck_assert_uint_eq(cfg.server.listen_port, 3181);
    ck_assert_uint_eq(cfg.server.threads, 4);
    ck_assert_uint_eq(cfg.server.max_body, 32768);
    ck_assert_uint_eq(cfg.server.max_connections, 200);
    ck_assert_uint_eq(cfg.server.per_ip_limit, 10);
    ck_assert_uint_eq(cfg.server.timeout_s, 30);
    ck_assert_int_eq(cfg.log_level, LOG_LVL_DEBUG);
    ck_assert_str_eq(cfg.chrony_socket, "/run/test/chronyd.sock");
    ck_assert(fabs(cfg.poll_interval - 0.5) < 1e-12);
    ck_assert(fabs(cfg.max_update_age - 1200) < 1e-9);
    ck_assert(fabs(cfg.leap_guard - 2) < 1e-12);
    ck_assert(!cfg.kernel_check);
    ck_assert_str_eq(cfg.store.path, "/var/lib/tsad-test");
    ck_assert_uint_eq(cfg.store.map_size, 64u << 20);
    ck_assert_str_eq(cfg.signer.p11_module, "/usr/lib/softhsm/libsofthsm2.so");
    ck_assert_str_eq(cfg.signer.p11_token, "tsa");
    ck_assert_str_eq(cfg.signer.p11_pin_file, "/etc/tsad/pin");
    ck_assert_uint_eq(cfg.signer.workers, 2);
    ck_assert_uint_eq(cfg.signer.queue_max, 100);
    ck_assert_uint_eq(cfg.signer.batch_max, 8);
    /* ALG-01: the listed hashes only */
    ck_assert_uint_eq(cfg.n_hashes, 3);
    ck_assert_int_eq(cfg.hashes[0], NID_sha256);
    ck_assert_int_eq(cfg.hashes[1], NID_sha512);
    ck_assert_int_eq(cfg.hashes[2], NID_sha3_256);

    ck_assert_uint_eq(cfg.n_units, 2);
    q = &cfg.units[0];
    n = &cfg.units[1];
    ck_assert_str_eq(q->name, "qual");
    ck_assert_str_eq(q->policy, "0.4.0.2023.1.1");
    ck_assert_str_eq(q->path, "/qtsa");
    ck_assert_str_eq(q->cert, "/etc/tsad/q.pem");
    ck_assert_str_eq(q->chain, "/etc/tsad/ca.pem");
    ck_assert_str_eq(q->key_label, "tsu-q");
    ck_assert_str_eq(q->key_file, "");
    ck_assert_int_eq(q->scheme, SIGNER_ECDSA);
    ck_assert_int_eq(q->hash, SIGNER_SHA256); /* default */
    ck_assert(fabs(q->accuracy - 0.1) < 1e-12);
    ck_assert(q->qualified);
    ck_assert(q->tsa_name); /* default yes */
    ck_assert(!q->ess_cert_id_v1);
    ck_assert(q->is_default); /* alone on its path */

    ck_assert_str_eq(n->name, "plain");
    ck_assert_str_eq(n->path, "/tsa"); /* default path */
    ck_assert_str_eq(n->key_file, "/etc/tsad/n.key");
    ck_assert_int_eq(n->scheme, SIGNER_RSA_PSS);
    ck_assert_int_eq(n->hash, SIGNER_SHA384);
    ck_assert(fabs(n->accuracy - 1.0) < 1e-12);
    ck_assert(!n->qualified);
    ck_assert(!n->tsa_name);
    ck_assert(n->ess_cert_id_v1);
    ck_assert(n->is_default);
}
END_TEST

START_TEST(test_tsa_defaults)
{
    static const char text[] = "[tsu a]\n"
                               "policy = 1.2.3.4\n"
                               "certificate = /c.pem\n"
                               "key_file = /k.pem\n"
                               "signature = ecdsa\n";

    ck_assert_msg(tsa_config_load_string(&cfg, text, err, sizeof(err)) == ST_OK, "%s", err);
    ck_assert_str_eq(cfg.file, "<string>");
    ck_assert_str_eq(cfg.server.listen_host, "127.0.0.1");
    ck_assert_uint_eq(cfg.server.listen_port, 3180);
    ck_assert(cfg.kernel_check);
    /* issue 8 item 1: a per-address limit, a short idle timeout and a request deadline */
    ck_assert_uint_eq(cfg.server.per_ip_limit, 64);
    ck_assert_uint_eq(cfg.server.timeout_s, 5);
    ck_assert_uint_eq(cfg.server.request_timeout_s, 10);
    /* ALG-01: SHA-256, SHA-384, SHA-512 by default */
    ck_assert_uint_eq(cfg.n_hashes, 3);
    ck_assert_int_eq(cfg.hashes[0], NID_sha256);
    ck_assert_int_eq(cfg.hashes[1], NID_sha384);
    ck_assert_int_eq(cfg.hashes[2], NID_sha512);
    /* TPR-04: accuracy present and 1 s when not configured */
    ck_assert(fabs(cfg.units[0].accuracy - 1.0) < 1e-12);
    ck_assert(cfg.units[0].is_default);
}
END_TEST

/* Load `text`; expect ST_CONFIG and an error starting with `prefix` and containing `needle`. */
static void
expect_error(const char *text, const char *prefix, const char *needle)
{
    int st;

    err[0] = '\0';
    st = tsa_config_load_string(&cfg, text, err, sizeof(err));
    ck_assert_msg(st == ST_CONFIG, "accepted, expected '%s...%s'", prefix, needle);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "'%s' does not start with '%s'", err,
                  prefix);
    ck_assert_msg(needle == NULL || strstr(err, needle) != NULL, "'%s' lacks '%s'", err, needle);
}

#define UNIT_A                                                                                     \
    "[tsu a]\n"                                                                                    \
    "policy = 1.2.3.4\n"                                                                           \
    "certificate = /a.pem\n"                                                                       \
    "key_file = /a.key\n"                                                                          \
    "signature = ecdsa\n"

START_TEST(test_tsa_unknown_key)
{
    expect_error("[server]\nthreads = 2\nthread = 3\n" UNIT_A, "<string>:3: ", "'thread'");
    expect_error(UNIT_A "colour = blue\n", "<string>:6: ", "unknown key 'colour' in [tsu a]");
    expect_error("[clock]\nleap_guard = 1s\nmax_age = 1\n" UNIT_A, "<string>:3: ", "[clock]");
    expect_error("[signer]\npin = 1234\n" UNIT_A, "<string>:2: ", "[signer]");
    expect_error("key_before_any_section = 1\n" UNIT_A, "<string>:1: ", "unknown key");
}
END_TEST

/* [audit] (issue 9 item 3): node names, checkpoint keys of their own, complete settings. */
START_TEST(test_tsa_audit)
{
    ck_assert_msg(tsa_config_load_string(&cfg, UNIT_A, err, sizeof(err)) == ST_OK, "%s", err);
    ck_assert(chain_node_valid(cfg.audit.node)); /* the host name by default */
    ck_assert(cfg.audit.checkpoint_interval == 0);
    ck_assert_msg(tsa_config_load_string(&cfg,
                                         UNIT_A "[audit]\nnode = tsa-1.b_c\nkey_file = /audit.key\n"
                                                "certificate = /audit.pem\n",
                                         err, sizeof(err)) == ST_OK,
                  "%s", err);
    ck_assert_str_eq(cfg.audit.node, "tsa-1.b_c");
    ck_assert(cfg.audit.checkpoint_interval == 60); /* the default with a key */
    ck_assert_int_eq(cfg.audit.scheme, SIGNER_ECDSA);
    expect_error(UNIT_A "[audit]\nnode = a b\n", "<string>:7: ", "node");
    expect_error(UNIT_A "[audit]\nnode = " /* 64 characters */
                        "0123456789012345678901234567890123456789012345678901234567890123\n",
                 "<string>:7: ", "node");
    expect_error(UNIT_A "[audit]\ncheckpoint_interval = 100ms\n",
                 "<string>:7: ", "checkpoint_interval");
    expect_error(UNIT_A "[audit]\ncolour = blue\n", "<string>:7: ", "unknown key 'colour'");
    expect_error(UNIT_A "[audit]\nkey_file = /audit.key\n", "<string>:7: ", "certificate");
    expect_error(UNIT_A "[audit]\ncheckpoint_interval = 10s\n", "<string>:7: ", "certificate");
    /* errors of the whole section name its first key's line; a TSU's key, by key file, label
     * or certificate: refused */
    expect_error(UNIT_A "[audit]\nkey_file = /a.key\ncertificate = /audit.pem\n",
                 "<string>:7: ", "the audit key is the key of [tsu a]");
    expect_error(UNIT_A "[audit]\nkey_file = /audit.key\ncertificate = /a.pem\n",
                 "<string>:7: ", "the audit key is the key of [tsu a]");
    expect_error("[signer]\npkcs11_module = /m.so\ntoken = t\npin_file = /p\n[tsu b]\n"
                 "policy = 1.2.3.5\ncertificate = /b.pem\nkey_label = tsu-b\nsignature = ecdsa\n"
                 "[audit]\nkey_label = tsu-b\ncertificate = /audit.pem\n",
                 "<string>:11: ", "a key of their own");
    expect_error(UNIT_A "[audit]\nkey_label = audit\ncertificate = /audit.pem\n",
                 "<string>:7: ", "pkcs11_module");
}
END_TEST

START_TEST(test_tsa_unknown_section)
{
    expect_error(UNIT_A "[nosuch]\nkey = 1\n", "<string>:7: ", "unknown key 'key' in [nosuch]");
    expect_error("[Server]\nthreads = 2\n" UNIT_A, "<string>:2: ", "[Server]");
}
END_TEST

START_TEST(test_tsa_bad_values)
{
    expect_error("[server]\nlisten = localhost:80\n" UNIT_A, "<string>:2: ", "listen");
    expect_error("[server]\nthreads = 0\n" UNIT_A, "<string>:2: ", "threads");
    expect_error("[server]\nmax_body = 2M\n" UNIT_A, "<string>:2: ", "max_body");
    expect_error("[server]\nrequest_timeout = 0s\n" UNIT_A, "<string>:2: ", "request_timeout");
    ck_assert_msg(tsa_config_load_string(&cfg, "[server]\nrequest_timeout = 45s\n" UNIT_A, err,
                                         sizeof(err)) == ST_OK,
                  "%s", err);
    ck_assert_uint_eq(cfg.server.request_timeout_s, 45);
    expect_error("[store]\nmap_size = 512k\n" UNIT_A, "<string>:2: ", "map_size");
    expect_error("[log]\nlevel = loud\n" UNIT_A, "<string>:2: ", "level");
    expect_error("[clock]\npoll_interval = 10ms\n" UNIT_A, "<string>:2: ", "poll_interval");
    expect_error("[clock]\nkernel_check = maybe\n" UNIT_A, "<string>:2: ", "kernel_check");
    expect_error(UNIT_A "policy = 1..2\n", "<string>:6: ", "policy");
    expect_error(UNIT_A "path = tsa\n", "<string>:6: ", "path");
    expect_error(UNIT_A "signature = dsa\n", "<string>:6: ", "signature");
    expect_error(UNIT_A "digest = sha1\n", "<string>:6: ", "digest");
    expect_error(UNIT_A "qualified = sure\n", "<string>:6: ", "qualified");
    expect_error(UNIT_A "certificate = \n", "<string>:6: ", "certificate");
}
END_TEST

START_TEST(test_store_keys)
{
    /* DESIGN D10: headroom, reader checks, the journal; [server] watchdog_stall */
    const char *conf = "[server]\nwatchdog_stall = 5s\n"
                       "[store]\nfill_limit = 75%\nreader_check = 2s\njournal = no\n"
                       "journal_segment = 1M\njournal_max = 8M\n" UNIT_A;

    ck_assert_msg(tsa_config_load_string(&cfg, conf, err, sizeof(err)) == ST_OK, "%s", err);
    ck_assert(fabs(cfg.server.watchdog_stall - 5) < 1e-9);
    ck_assert(fabs(cfg.store.fill_limit - 0.75) < 1e-9);
    ck_assert(fabs(cfg.store.reader_check - 2) < 1e-9);
    ck_assert(!cfg.store.journal);
    ck_assert_uint_eq(cfg.store.journal_segment, 1u << 20);
    ck_assert_uint_eq(cfg.store.journal_max, 8u << 20);
    ck_assert_msg(tsa_config_load_string(&cfg, "[store]\nfill_limit = 0.9\n" UNIT_A, err,
                                         sizeof(err)) == ST_OK,
                  "%s", err);
    ck_assert(fabs(cfg.store.fill_limit - 0.9) < 1e-9);
    /* defaults */
    ck_assert(cfg.store.journal);
    ck_assert(fabs(cfg.store.reader_check - 60) < 1e-9);
    ck_assert(fabs(cfg.server.watchdog_stall - 20) < 1e-9);
    expect_error("[store]\nfill_limit = 1.5\n" UNIT_A, "<string>:2: ", "fill_limit");
    expect_error("[store]\nfill_limit = 5%\n" UNIT_A, "<string>:2: ", "fill_limit");
    expect_error("[store]\nfill_limit = most\n" UNIT_A, "<string>:2: ", "fill_limit");
    expect_error("[store]\nreader_check = 0\n" UNIT_A, "<string>:2: ", "reader_check");
    expect_error("[store]\njournal = perhaps\n" UNIT_A, "<string>:2: ", "journal");
    expect_error("[store]\njournal_segment = 4k\n" UNIT_A, "<string>:2: ", "journal_segment");
    expect_error("[store]\njournal_segment = 16M\njournal_max = 20M\n" UNIT_A,
                 "<string>:0: ", "journal_max");
    expect_error("[server]\nwatchdog_stall = 0s\n" UNIT_A, "<string>:2: ", "watchdog_stall");
    /* journal.NNNN: no more than 1024 segments (journal_segment = 256k, journal_max = 512M) */
    expect_error("[store]\njournal_segment = 256k\njournal_max = 512M\n" UNIT_A,
                 "<string>:0: ", "from 2 to 1024");
}
END_TEST

/* Second review of issue 8: every key the issue added, with hostile values (zero where it is
 * not allowed, negative, signs, overflow, not a number, empty, infinity, exponents past the
 * range), gets a file:line error naming the key, never a silent default or a wrapped value. */
START_TEST(test_new_keys_hostile_values)
{
    static const struct {
        const char *section, *key;
        const char *values[16];
    } cases[] = {
        {"server",
         "request_timeout",
         {"0", "-1", "+5", "0.5s", "3601s", "1e400", "nan", "inf", "", "1y", "18446744073709551617",
          "2h", NULL}},
        {"server",
         "per_ip_limit",
         {"-1", "+1", "100001", "4294967296", "18446744073709551617", "1e3", "nan", "", "1.5",
          NULL}},
        {"server", "max_connections", {"0", "-1", "100001", "4294967297", "", "1e9", NULL}},
        {"signer",
         "sign_timeout",
         {"0", "-1", "+1s", "99ms", "3601s", "1e400", "nan", "inf", "", "1y", NULL}},
        {"signer", "queue_max", {"0", "-1", "1000001", "4294967296", "", NULL}},
        {"signer", "batch_max", {"0", "-1", "4097", "4294967296", "", NULL}},
        {"signer", "workers", {"0", "-1", "4294967296", "", NULL}},
        {"signer",
         "pin_file",
         {"credential:", "credential:../pin", "credential:a/b", "credential:.", "credential:..",
          NULL}},
        {"limits", "token_rate", {"-1", "+1", "1000001", "1e400", "nan", "inf", "", "x", NULL}},
        {"limits", "token_burst", {"0", "0.5", "-1", "1000001", "nan", "inf", "", NULL}},
        {"limits",
         "token_sources",
         {"0", "-1", "63", "16777217", "4294967360", "18446744073709551617", "", NULL}},
    };
    char text[512], needle[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t v = 0; cases[i].values[v] != NULL; v++) {
            snprintf(text, sizeof(text), "[%s]\n%s = %s\n" UNIT_A, cases[i].section, cases[i].key,
                     cases[i].values[v]);
            snprintf(needle, sizeof(needle), "%s", cases[i].key);
            err[0] = '\0';
            ck_assert_msg(tsa_config_load_string(&cfg, text, err, sizeof(err)) == ST_CONFIG,
                          "[%s] %s = '%s' accepted", cases[i].section, cases[i].key,
                          cases[i].values[v]);
            ck_assert_msg(strncmp(err, "<string>:2: ", 12) == 0 && strstr(err, needle) != NULL,
                          "[%s] %s = '%s': '%s' is not a <string>:2: error naming the key",
                          cases[i].section, cases[i].key, cases[i].values[v], err);
        }
    }
}
END_TEST

START_TEST(test_sign_timeout)
{
    /* issue 8: [signer] sign_timeout, 5 s by default, 100ms..1h */
    ck_assert_msg(tsa_config_load_string(&cfg, UNIT_A, err, sizeof(err)) == ST_OK, "%s", err);
    ck_assert(fabs(cfg.signer.sign_timeout - 5) < 1e-9);
    ck_assert_msg(tsa_config_load_string(&cfg, "[signer]\nsign_timeout = 250ms\n" UNIT_A, err,
                                         sizeof(err)) == ST_OK,
                  "%s", err);
    ck_assert(fabs(cfg.signer.sign_timeout - 0.25) < 1e-9);
    expect_error("[signer]\nsign_timeout = 50ms\n" UNIT_A, "<string>:2: ", "sign_timeout");
    expect_error("[signer]\nsign_timeout = 2h\n" UNIT_A, "<string>:2: ", "sign_timeout");
    expect_error("[signer]\nsign_timeout = soon\n" UNIT_A, "<string>:2: ", "sign_timeout");
}
END_TEST

START_TEST(test_tsa_accuracy)
{
    /* TPR-04: accuracy 1 s or better (and not below the 1 us the encoding can carry) */
    expect_error(UNIT_A "accuracy = 2s\n", "<string>:6: ", "TPR-04");
    expect_error(UNIT_A "accuracy = 1001ms\n", "<string>:6: ", "accuracy");
    expect_error(UNIT_A "accuracy = 0\n", "<string>:6: ", "accuracy");
    expect_error(UNIT_A "accuracy = 100ns\n", "<string>:6: ", "accuracy");
    ck_assert_int_eq(tsa_config_load_string(&cfg, UNIT_A "accuracy = 1s\n", err, sizeof(err)),
                     ST_OK);
    ck_assert_int_eq(tsa_config_load_string(&cfg, UNIT_A "accuracy = 1us\n", err, sizeof(err)),
                     ST_OK);
    ck_assert(fabs(cfg.units[0].accuracy - 1e-6) < 1e-15);
}
END_TEST

START_TEST(test_tsa_weak_hash)
{
    /* ALG-01: MD5, SHA-1, SHA-224 refused in the configuration itself */
    expect_error("[tsa]\nhashes = sha1\n" UNIT_A, "<string>:2: ", "ALG-01");
    expect_error("[tsa]\nhashes = sha256, md5\n" UNIT_A, "<string>:2: ", "'md5'");
    expect_error("[tsa]\nhashes = sha224\n" UNIT_A, "<string>:2: ", "'sha224'");
    expect_error("[tsa]\nhashes = ripemd160\n" UNIT_A, "<string>:2: ", "'ripemd160'");
    expect_error("[tsa]\nhashes = , ,\n" UNIT_A, "<string>:2: ", "at least one");
    expect_error("[tsa]\nhashes = sha256 sha256 sha256 sha256 sha256 sha256 sha256 sha256 "
                 "sha256\n" UNIT_A,
                 "<string>:2: ", "too many");
}
END_TEST

START_TEST(test_tsa_qualified_shares_path)
{
    /* TSA-17: a qualified TSU alone on its path. The unit's line is that of its first key. */
    static const char text[] = UNIT_A /* 1-5, path /tsa */
        "default = yes\n"             /* 6 */
        "[tsu q]\n"                   /* 7 */
        "policy = 1.2.3.5\n"          /* 8 */
        "certificate = /q.pem\n"      /* 9 */
        "key_file = /q.key\n"         /* 10 */
        "signature = ecdsa\n"         /* 11 */
        "qualified = yes\n";          /* 12 */

    expect_error(text, "<string>:8: ", "TSA-17");
    ck_assert_ptr_nonnull(strstr(err, "[tsu q]"));
}
END_TEST

START_TEST(test_tsa_shared_path_default)
{
    static const char two[] = UNIT_A "[tsu b]\npolicy = 1.2.3.5\ncertificate = /b.pem\n"
                                     "key_file = /b.key\nsignature = ecdsa\n";
    static const char two_defaults[] = UNIT_A "default = yes\n[tsu b]\npolicy = 1.2.3.5\n"
                                              "certificate = /b.pem\nkey_file = /b.key\n"
                                              "signature = ecdsa\ndefault = yes\n";
    static const char same_policy[] = UNIT_A "default = yes\n[tsu b]\npolicy = 1.2.3.4\n"
                                             "certificate = /b.pem\nkey_file = /b.key\n"
                                             "signature = ecdsa\n";
    static const char ok[] = UNIT_A "[tsu b]\npolicy = 1.2.3.5\ncertificate = /b.pem\n"
                                    "key_file = /b.key\nsignature = ecdsa\ndefault = yes\n";

    expect_error(two, "<string>:2: ", "exactly one 'default = yes'");
    expect_error(two_defaults, "<string>:2: ", "exactly one 'default = yes'");
    expect_error(same_policy, "<string>:2: ", "same path");
    ck_assert_msg(tsa_config_load_string(&cfg, ok, err, sizeof(err)) == ST_OK, "%s", err);
    ck_assert(!cfg.units[0].is_default);
    ck_assert(cfg.units[1].is_default);
}
END_TEST

/* issue 9 item 1: the HTTPS keys go together; https_only needs the HTTPS listener and is the
 * same for every TSU of a path; no `listen` with https_listen: HTTPS only */
START_TEST(test_tsa_https)
{
    static const char tls[] = "[server]\nhttps_listen = 127.0.0.1:3443\ntls_cert = /t.pem\n"
                              "tls_key = /t.key\n";
    char text[1024];

    expect_error("[server]\ntls_cert = /t.pem\n" UNIT_A, "<string>:2: ", "need https_listen");
    expect_error("[server]\nhttps_listen = 127.0.0.1:3443\ntls_cert = /t.pem\n" UNIT_A,
                 "<string>:2: ", "needs tls_cert and tls_key");
    expect_error("[server]\nhttps_listen = 0.0.0.0.1:3443\n" UNIT_A,
                 "<string>:2: ", "https_listen: expected address:port");
    expect_error("[server]\nlisten = 127.0.0.1:3443\nhttps_listen = 127.0.0.1:3443\n"
                 "tls_cert = /t.pem\ntls_key = /t.key\n" UNIT_A,
                 "<string>:3: ", "the same address");
    expect_error(UNIT_A "https_only = yes\n", "<string>:2: ", "https_only = yes needs");
    snprintf(text, sizeof(text), "%s%s%s", tls, UNIT_A "https_only = yes\ndefault = yes\n",
             "[tsu b]\npolicy = 1.2.3.5\ncertificate = /b.pem\nkey_file = /b.key\n"
             "signature = ecdsa\n");
    expect_error(text, "<string>:", "set https_only the same");

    snprintf(text, sizeof(text), "%s%s", tls, UNIT_A "https_only = yes\n");
    ck_assert_msg(tsa_config_load_string(&cfg, text, err, sizeof(err)) == ST_OK, "%s", err);
    ck_assert(cfg.tls.on);
    ck_assert(!cfg.tls.plain); /* no listen key: HTTPS only */
    ck_assert_uint_eq(cfg.tls.listen_port, 3443);
    ck_assert_str_eq(cfg.tls.key, "/t.key");
    ck_assert(cfg.units[0].https_only);
    snprintf(text, sizeof(text), "[server]\nlisten = 127.0.0.1:3180\n%s%s", tls + 9, UNIT_A);
    ck_assert_msg(tsa_config_load_string(&cfg, text, err, sizeof(err)) == ST_OK, "%s", err);
    ck_assert(cfg.tls.on && cfg.tls.plain);
    ck_assert_msg(tsa_config_load_string(&cfg, UNIT_A, err, sizeof(err)) == ST_OK, "%s", err);
    ck_assert(!cfg.tls.on && cfg.tls.plain);
}
END_TEST

START_TEST(test_tsa_key_sources)
{
    expect_error(UNIT_A "key_label = k\n", "<string>:2: ", "exactly one of key_label");
    expect_error("[tsu a]\npolicy = 1.2.3.4\ncertificate = /a.pem\nsignature = ecdsa\n",
                 "<string>:2: ", "exactly one of key_label");
    expect_error("[tsu a]\npolicy = 1.2.3.4\ncertificate = /a.pem\nkey_file = /a.key\n",
                 "<string>:2: ", "signature is required");
    expect_error("[tsu a]\ncertificate = /a.pem\nkey_file = /a.key\nsignature = ecdsa\n",
                 "<string>:2: ", "policy and certificate are required");
    expect_error("[tsu a]\npolicy = 1.2.3.4\nkey_file = /a.key\nsignature = ecdsa\n",
                 "<string>:2: ", "policy and certificate are required");
}
END_TEST

START_TEST(test_tsa_p11_settings)
{
    static const char label[] = "[tsu a]\npolicy = 1.2.3.4\ncertificate = /a.pem\n"
                                "key_label = k\nsignature = ecdsa\n";
    static const char partial[] = "[signer]\npkcs11_module = /m.so\ntoken = t\n"
                                  "[tsu a]\npolicy = 1.2.3.4\ncertificate = /a.pem\n"
                                  "key_label = k\nsignature = ecdsa\n";
    static const char full[] = "[signer]\npkcs11_module = /m.so\ntoken = t\npin_file = /p\n"
                               "[tsu a]\npolicy = 1.2.3.4\ncertificate = /a.pem\n"
                               "key_label = k\nsignature = ecdsa\n";

    expect_error(label, "<string>:0: ", "pkcs11_module, token and pin_file");
    expect_error(partial, "<string>:0: ", "pkcs11_module, token and pin_file");
    ck_assert_msg(tsa_config_load_string(&cfg, full, err, sizeof(err)) == ST_OK, "%s", err);
}
END_TEST

/* issue 8: pin_file = credential:NAME is $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=);
 * without the variable the text is kept (the PIN read refuses it, ocspctl's other commands
 * work); a name with '/' is a file:line error. */
START_TEST(test_tsa_pin_credential)
{
    static const char cred[] = "[signer]\npkcs11_module = /m.so\ntoken = t\n"
                               "pin_file = credential:pin\n" UNIT_A;

    ck_assert_int_eq(setenv("CREDENTIALS_DIRECTORY", "/run/credentials/tsad.service", 1), 0);
    ck_assert_msg(tsa_config_load_string(&cfg, cred, err, sizeof(err)) == ST_OK, "%s", err);
    ck_assert_str_eq(cfg.signer.p11_pin_file, "/run/credentials/tsad.service/pin");
    expect_error("[signer]\npin_file = credential:../pin\n" UNIT_A,
                 "<string>:2: ", "a credential name, without '/'");
    expect_error("[signer]\npin_file = credential:\n" UNIT_A, "<string>:2: ", "credential name");
    ck_assert_int_eq(unsetenv("CREDENTIALS_DIRECTORY"), 0);
    ck_assert_msg(tsa_config_load_string(&cfg, cred, err, sizeof(err)) == ST_OK, "%s", err);
    ck_assert_str_eq(cfg.signer.p11_pin_file, "credential:pin");
}
END_TEST

START_TEST(test_tsa_no_unit)
{
    expect_error("", "<string>:0: ", "at least one TSU");
    expect_error("[server]\nthreads = 2\n", "<string>:0: ", "at least one TSU");
}
END_TEST

START_TEST(test_tsa_units_named)
{
    expect_error("[tsu ]\npolicy = 1.2.3.4\n", "<string>:2: ", "NAME is 1..63");
    expect_error(UNIT_A "[server]\nthreads = 2\n" UNIT_A, "<string>:9: ", "appears twice");
}
END_TEST

START_TEST(test_tsa_too_many_units)
{
    char text[8192];
    size_t n = 0;

    for (int i = 0; i <= TSA_MAX_UNITS; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "[tsu u%d]\npolicy = 1.2.3.%d\npath = /t%d\ncertificate = /c\n"
                              "key_file = /k\nsignature = ecdsa\n",
                              i, i, i);
    ck_assert_uint_lt(n, sizeof(text));
    /* the 17th unit starts on line 16 * 6 + 1, its first key on the next line */
    expect_error(text, "<string>:98: ", "too many");
}
END_TEST

START_TEST(test_tsa_syntax_error)
{
    expect_error("[server]\nthreads = 2\nthis is not ini\n" UNIT_A, "<string>:3: ", "syntax error");
    expect_error(UNIT_A "[tsu b\n", "<string>:6: ", "syntax error");
}
END_TEST

START_TEST(test_tsa_long_line)
{
    /* A value longer than libinih's line buffer (200) was cut: the rest was read as the next
     * line, so the file was refused with a syntax error one line too far (and every later
     * line number was off), or worse, the rest parsed as another key. The error must name the
     * long line itself. */
    char path[301], text[1024];

    memset(path, 'p', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    snprintf(text, sizeof(text),
             "[tsu a]\npolicy = 1.2.3.4\ncertificate = %s\n"
             "key_file = /a.key\nsignature = ecdsa\n",
             path);
    expect_error(text, "<string>:3: ", "too long");
}
END_TEST

START_TEST(test_tsa_load_file)
{
    char dir[] = "/tmp/check_config.XXXXXX";
    char path[256];
    FILE *f;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/tsad.conf", dir);
    /* missing file: named in the error */
    ck_assert_int_eq(tsa_config_load(&cfg, path, err, sizeof(err)), ST_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
    /* a real file: its name in messages */
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(full_conf, f);
    fclose(f);
    ck_assert_msg(tsa_config_load(&cfg, path, err, sizeof(err)) == ST_OK, "%s", err);
    ck_assert_str_eq(cfg.file, path);
    ck_assert_uint_eq(cfg.n_units, 2);
    f = fopen(path, "a");
    ck_assert_ptr_nonnull(f);
    fputs("[tsa]\nhashes = md5\n", f);
    fclose(f);
    ck_assert_int_eq(tsa_config_load(&cfg, path, err, sizeof(err)), ST_CONFIG);
    unlink(path);
    rmdir(dir);
    {
        char want[300];

        snprintf(want, sizeof(want), "%s:48: ", path);
        ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
    }
}
END_TEST

START_TEST(test_tsa_err_truncated)
{
    /* a small caller buffer gets a terminated prefix */
    char small[12];

    ck_assert_int_eq(tsa_config_load_string(&cfg, "", small, sizeof(small)), ST_CONFIG);
    ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
    ck_assert_str_eq(small, "<string>:0:");
}
END_TEST

static Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *typed = tcase_create("typed");
    TCase *drv = tcase_create("driver");
    TCase *tsa = tcase_create("tsa_config");

    tcase_add_test(typed, test_bool);
    tcase_add_test(typed, test_uint);
    tcase_add_test(typed, test_duration);
    tcase_add_test(typed, test_size);
    tcase_add_test(typed, test_listen);
    suite_add_tcase(s, typed);

    tcase_add_test(drv, test_parse_string_lines);
    tcase_add_test(drv, test_parse_string_errors);
    tcase_add_test(drv, test_parse_file);
    tcase_add_test(drv, test_parse_file_long_line);
    suite_add_tcase(s, drv);

    tcase_add_test(tsa, test_tsa_full);
    tcase_add_test(tsa, test_tsa_defaults);
    tcase_add_test(tsa, test_tsa_unknown_key);
    tcase_add_test(tsa, test_tsa_unknown_section);
    tcase_add_test(tsa, test_tsa_bad_values);
    tcase_add_test(tsa, test_store_keys);
    tcase_add_test(tsa, test_sign_timeout);
    tcase_add_test(tsa, test_new_keys_hostile_values);
    tcase_add_test(tsa, test_tsa_accuracy);
    tcase_add_test(tsa, test_tsa_weak_hash);
    tcase_add_test(tsa, test_tsa_qualified_shares_path);
    tcase_add_test(tsa, test_tsa_shared_path_default);
    tcase_add_test(tsa, test_tsa_https);
    tcase_add_test(tsa, test_tsa_key_sources);
    tcase_add_test(tsa, test_tsa_p11_settings);
    tcase_add_test(tsa, test_tsa_pin_credential);
    tcase_add_test(tsa, test_tsa_no_unit);
    tcase_add_test(tsa, test_tsa_units_named);
    tcase_add_test(tsa, test_tsa_too_many_units);
    tcase_add_test(tsa, test_tsa_syntax_error);
    tcase_add_test(tsa, test_tsa_long_line);
    tcase_add_test(tsa, test_tsa_load_file);
    tcase_add_test(tsa, test_tsa_err_truncated);
    tcase_add_test(tsa, test_tsa_audit);
    suite_add_tcase(s, tsa);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    log_init("check_config", LOG_LVL_ERR);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
