/*
 * config: INI files read with libinih, one callback per key with its file:line, plus typed
 * value parsers. Each daemon keeps its own schema (tsa/tsa_config.c, ocsp/...) and validates
 * the whole file at start into an immutable struct; errors name file:line (DESIGN D8).
 */
#ifndef COMMON_CONFIG_H
#define COMMON_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_ERR_MAX 512

struct config_pos {
    const char *file;
    int line;
};

/* Called for each key. Return 0 to go on, or a negative ST_* code after writing a message
 * with config_error(). `section` is "" before the first section header. */
typedef int (*config_key_fn)(void *user, const char *section, const char *key, const char *value,
                             const struct config_pos *pos);

/* A parse: the user's callback, and the first error as "file:line: message". */
struct config_parse {
    config_key_fn fn;
    void *user;
    char err[CONFIG_ERR_MAX];
    int failed;
};

/* Read `path`; ST_OK, or ST_CONFIG with p->err set ("file:line: ..."). */
int config_parse_file(struct config_parse *p, const char *path);
/* Same on a string (tests); `name` stands for the file name in messages. */
int config_parse_string(struct config_parse *p, const char *name, const char *text);

/* Record an error (first one wins). Always returns ST_CONFIG. */
int config_error(struct config_parse *p, const struct config_pos *pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Typed parsers: 0 on success, ST_INVALID on a bad value. */
int config_bool(const char *v, bool *out);
int config_uint(const char *v, unsigned long long min, unsigned long long max,
                unsigned long long *out);
/* "250ms", "1s", "1.5s", "2m", "1h", "3d", "100us"; a bare number is seconds. */
int config_duration(const char *v, double *seconds);
/* "4096", "64k", "16M", "1G" (binary multiples). */
int config_size(const char *v, size_t *out);
/* "host:port" with host an IPv4/IPv6 literal ("[::1]:80"); port 0 allowed. */
int config_listen(const char *v, char *host, size_t hostcap, uint16_t *port);

/* [server]: the HTTP front of a daemon (listen, threads, limits). */
struct config_server {
    char listen_host[64];
    uint16_t listen_port;
    unsigned threads;
    size_t max_body;
    unsigned max_connections;
    unsigned per_ip_limit;
    unsigned timeout_s;         /* idle: no request started, or nothing moving */
    unsigned request_timeout_s; /* a whole request (line, headers, body) must be in by then */
    double watchdog_stall;      /* a thread busy in one call this long stops the watchdog pings */
    double stop_timeout;        /* a stop that takes longer ends the process at once */
};

/* pin_file = credential:NAME names $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=) */
#define CONFIG_CREDENTIAL_PREFIX "credential:"

/* [signer]: the PKCS#11 token and the batching signer's sizes. */
struct config_signer {
    char p11_module[PATH_MAX];
    char p11_token[64];
    char p11_pin_file[PATH_MAX]; /* the path; credential:NAME already resolved */
    unsigned workers;            /* 0: one per CPU */
    unsigned queue_max;
    unsigned batch_max;
    double sign_timeout; /* a job not signed after this long is answered ST_TIMEOUT (5 s) */
};

/* [store]: the daemon's LMDB environment, its hygiene and (tsad) its write-ahead journal. */
struct config_store {
    char path[PATH_MAX];
    size_t map_size;
    double fill_limit;      /* background writes stop above this live fill (0.8) */
    double reader_check;    /* seconds between clearing dead readers' slots (60) */
    bool journal;           /* tsad: write-ahead journal in front of the audit log (yes) */
    size_t journal_segment; /* bytes per journal segment file (16M) */
    size_t journal_max;     /* journal capacity (256M) */
};

/* Defaults: listen 127.0.0.1:port, 2 threads, max_body, 1024 connections, 64 per client
 * address, 5 s idle timeout, 10 s request timeout / no token, queue 4096, batch 64. */
void config_server_defaults(struct config_server *c, uint16_t port, size_t max_body);
void config_signer_defaults(struct config_signer *c);
/* [store] defaults for a daemon whose store lives in `path` with a map of map_size bytes. */
void config_store_defaults(struct config_store *c, const char *path, size_t map_size);
/* One key of [server] (max_body at most body_limit) or [signer]: ST_OK, ST_CONFIG (error
 * recorded in p), or ST_NOTFOUND when the key is not one of the section's common keys (the
 * daemon may know it). */
int config_server_key(struct config_parse *p, struct config_server *c, const char *key,
                      const char *value, const struct config_pos *pos, size_t body_limit);
int config_signer_key(struct config_parse *p, struct config_signer *c, const char *key,
                      const char *value, const struct config_pos *pos);
/* One key of [store]; the journal keys only when `journal` (tsad). Same returns. */
int config_store_key(struct config_parse *p, struct config_store *c, const char *key,
                     const char *value, const struct config_pos *pos, bool journal);
/* Whole-section check: a module needs a token and a PIN file. ST_OK or ST_CONFIG. */
int config_signer_check(struct config_parse *p, const struct config_signer *c, const char *file);

#endif
