/*
 * config: INI parsing through libinih with line numbers, and typed value parsers.
 *
 * libinih as packaged is built without INI_HANDLER_LINENO, so the line number is counted
 * by our own reader: ini_parse_stream() asks the reader for exactly one line per call.
 */
#include "common/config.h"
#include "common/commit.h"
#include "common/signer.h"
#include "common/status.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct config_stream {
    FILE *f;       /* file input, or */
    const char *s; /* string input */
    int line;
    struct config_parse *p;
    const char *name;
};

/* Whether input remains after the current read. */
static bool
config_more(struct config_stream *st)
{
    int c;

    if (st->f == NULL)
        return *st->s != '\0';
    c = getc(st->f);
    if (c == EOF)
        return false;
    ungetc(c, st->f);
    return true;
}

static char *
config_reader(char *str, int num, void *stream)
{
    struct config_stream *st = stream;
    int i = 0;

    if (num < 2)
        return NULL;
    if (st->f != NULL) {
        if (fgets(str, num, st->f) == NULL)
            return NULL;
    } else {
        if (*st->s == '\0')
            return NULL;
        while (i < num - 1 && st->s[0] != '\0') {
            str[i++] = *st->s;
            if (*st->s++ == '\n')
                break;
        }
        str[i] = '\0';
    }
    st->line++;
    /* libinih would read the rest of a longer line as the next line: refuse it here */
    if (strchr(str, '\n') == NULL && config_more(st)) {
        struct config_pos pos = {st->name, st->line};

        config_error(st->p, &pos, "line too long (more than %d characters)", num - 2);
        return NULL;
    }
    return str;
}

static int
config_handler(void *user, const char *section, const char *name, const char *value)
{
    struct config_stream *st = user;
    struct config_pos pos = {st->name, st->line};

    if (st->p->failed)
        return 0;
    if (st->p->fn(st->p->user, section, name, value, &pos) != 0) {
        if (!st->p->failed)
            config_error(st->p, &pos, "invalid setting '%s'", name);
        return 0;
    }
    return 1;
}

static int
config_run(struct config_parse *p, struct config_stream *st)
{
    int r;

    p->failed = 0;
    p->err[0] = '\0';
    st->p = p;
    st->line = 0;
    r = ini_parse_stream(config_reader, st, config_handler, st);
    if (p->failed)
        return ST_CONFIG;
    if (r > 0) {
        struct config_pos pos = {st->name, r};
        return config_error(p, &pos, "syntax error (expected 'key = value' or '[section]')");
    }
    if (r < 0) {
        struct config_pos pos = {st->name, 0};
        return config_error(p, &pos, "cannot read the file");
    }
    return ST_OK;
}

int
config_parse_file(struct config_parse *p, const char *path)
{
    struct config_stream st = {0};
    int r;

    p->failed = 0; /* a struct config_parse may be reused, as config_run() allows */
    st.name = path;
    st.f = fopen(path, "r");
    if (st.f == NULL) {
        struct config_pos pos = {path, 0};
        return config_error(p, &pos, "cannot open: %s", strerror(errno));
    }
    r = config_run(p, &st);
    fclose(st.f);
    return r;
}

int
config_parse_string(struct config_parse *p, const char *name, const char *text)
{
    struct config_stream st = {0};

    st.name = name;
    st.s = text;
    return config_run(p, &st);
}

int
config_error(struct config_parse *p, const struct config_pos *pos, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (p->failed)
        return ST_CONFIG;
    p->failed = 1;
    n = snprintf(p->err, sizeof(p->err), "%s:%d: ", pos ? pos->file : "?", pos ? pos->line : 0);
    if (n < 0 || (size_t)n >= sizeof(p->err))
        return ST_CONFIG;
    va_start(ap, fmt);
    vsnprintf(p->err + n, sizeof(p->err) - (size_t)n, fmt, ap);
    va_end(ap);
    return ST_CONFIG;
}

int
config_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return ST_OK;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return ST_OK;
        }
    }
    return ST_INVALID;
}

int
config_uint(const char *v, unsigned long long min, unsigned long long max, unsigned long long *out)
{
    char *end = NULL;
    unsigned long long x;

    if (*v == '\0' || *v == '-' || *v == '+' || isspace((unsigned char)*v))
        return ST_INVALID;
    errno = 0;
    x = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || x < min || x > max)
        return ST_INVALID;
    *out = x;
    return ST_OK;
}

int
config_duration(const char *v, double *seconds)
{
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {{"us", 1e-6}, {"ms", 1e-3}, {"s", 1}, {"m", 60},
                 {"h", 3600},  {"d", 86400}, {"", 1}};
    char *end = NULL;
    double x;

    if (*v == '\0' || *v == '-' || *v == '+' || isspace((unsigned char)*v))
        return ST_INVALID;
    errno = 0;
    x = strtod(v, &end);
    if (errno != 0 || end == v || !isfinite(x) || x < 0)
        return ST_INVALID;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            *seconds = x * units[i].mult;
            return ST_OK;
        }
    }
    return ST_INVALID;
}

int
config_size(const char *v, size_t *out)
{
    char *end = NULL;
    unsigned long long x;
    unsigned shift = 0;

    if (*v == '\0' || *v == '-' || *v == '+' || isspace((unsigned char)*v))
        return ST_INVALID;
    errno = 0;
    x = strtoull(v, &end, 10);
    if (errno != 0 || end == v)
        return ST_INVALID;
    if (strcasecmp(end, "k") == 0)
        shift = 10;
    else if (strcasecmp(end, "m") == 0)
        shift = 20;
    else if (strcasecmp(end, "g") == 0)
        shift = 30;
    else if (*end != '\0')
        return ST_INVALID;
    if (x > (SIZE_MAX >> shift))
        return ST_INVALID;
    *out = (size_t)(x << shift);
    return ST_OK;
}

int
config_listen(const char *v, char *host, size_t hostcap, uint16_t *port)
{
    const char *colon, *h = v;
    size_t hl;
    unsigned long long p;
    unsigned char tmp[16];

    if (*v == '[') {
        const char *rb = strchr(v, ']');
        if (rb == NULL || rb[1] != ':')
            return ST_INVALID;
        h = v + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(v, ':');
        if (colon == NULL)
            return ST_INVALID;
        hl = (size_t)(colon - v);
    }
    if (hl == 0 || hl >= hostcap)
        return ST_INVALID;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (inet_pton(AF_INET, host, tmp) != 1 && inet_pton(AF_INET6, host, tmp) != 1)
        return ST_INVALID;
    if (config_uint(colon + 1, 0, 65535, &p) != ST_OK)
        return ST_INVALID;
    *port = (uint16_t)p;
    return ST_OK;
}

void
config_server_defaults(struct config_server *c, uint16_t port, size_t max_body)
{
    memset(c, 0, sizeof(*c));
    strcpy(c->listen_host, "127.0.0.1");
    c->listen_port = port;
    c->threads = 2;
    c->max_body = max_body;
    c->max_connections = 1024;
    c->per_ip_limit = 64;
    c->timeout_s = 5;
    c->request_timeout_s = 10;
    c->watchdog_stall = 20;
    c->stop_timeout = 10;
}

void
config_signer_defaults(struct config_signer *c)
{
    memset(c, 0, sizeof(*c));
    c->queue_max = 4096;
    c->batch_max = 64;
    c->sign_timeout = 5;
}

void
config_store_defaults(struct config_store *c, const char *path, size_t map_size)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->path, sizeof(c->path), "%s", path);
    c->map_size = map_size;
    c->fill_limit = COMMIT_DEFAULT_FILL_LIMIT;
    c->reader_check = 60;
    c->journal = true;
    c->journal_segment = (size_t)16 << 20;
    c->journal_max = (size_t)256 << 20;
}

static int
config_copy(struct config_parse *p, const struct config_pos *pos, const char *key, const char *v,
            char *dst, size_t cap)
{
    if (strlen(v) >= cap || v[0] == '\0')
        return config_error(p, pos, "%s: empty or too long", key);
    memcpy(dst, v, strlen(v) + 1);
    return ST_OK;
}

/* An unsigned key of a table: name, bounds, destination. */
struct config_uint_key {
    const char *name;
    unsigned long long min, max;
    unsigned *dst;
};

static int
config_uint_keys(struct config_parse *p, const struct config_uint_key *keys, size_t n,
                 const char *key, const char *v, const struct config_pos *pos)
{
    unsigned long long x;

    for (size_t i = 0; i < n; i++) {
        if (strcmp(key, keys[i].name) != 0)
            continue;
        if (config_uint(v, keys[i].min, keys[i].max, &x) != ST_OK)
            return config_error(p, pos, "%s: %llu..%llu", key, keys[i].min, keys[i].max);
        *keys[i].dst = (unsigned)x;
        return ST_OK;
    }
    return ST_NOTFOUND;
}

int
config_server_key(struct config_parse *p, struct config_server *c, const char *key,
                  const char *value, const struct config_pos *pos, size_t body_limit)
{
    const struct config_uint_key keys[] = {
        {"threads", 1, 256, &c->threads},
        {"max_connections", 1, 100000, &c->max_connections},
        {"per_ip_limit", 0, 100000, &c->per_ip_limit},
    };
    double d;

    if (strcmp(key, "listen") == 0) {
        if (config_listen(value, c->listen_host, sizeof(c->listen_host), &c->listen_port) != 0)
            return config_error(p, pos, "listen: expected address:port, e.g. 127.0.0.1:3180");
        return ST_OK;
    }
    if (strcmp(key, "max_body") == 0) {
        if (config_size(value, &c->max_body) != 0 || c->max_body < 64 || c->max_body > body_limit)
            return config_error(p, pos, "max_body: a size from 64 to %zu", body_limit);
        return ST_OK;
    }
    if (strcmp(key, "timeout") == 0) {
        if (config_duration(value, &d) != 0 || d < 1 || d > 3600)
            return config_error(p, pos, "timeout: a duration from 1s to 1h");
        c->timeout_s = (unsigned)d;
        return ST_OK;
    }
    if (strcmp(key, "request_timeout") == 0) {
        if (config_duration(value, &d) != 0 || d < 1 || d > 3600)
            return config_error(p, pos, "request_timeout: a duration from 1s to 1h");
        c->request_timeout_s = (unsigned)d;
        return ST_OK;
    }
    if (strcmp(key, "stop_timeout") == 0) {
        if (config_duration(value, &d) != 0 || d < 1 || d > 3600)
            return config_error(p, pos, "stop_timeout: a duration from 1s to 1h");
        c->stop_timeout = d;
        return ST_OK;
    }
    if (strcmp(key, "watchdog_stall") == 0) {
        if (config_duration(value, &d) != 0 || d < 0.1 || d > 3600)
            return config_error(p, pos, "watchdog_stall: a duration from 100ms to 1h");
        c->watchdog_stall = d;
        return ST_OK;
    }
    return config_uint_keys(p, keys, sizeof(keys) / sizeof(keys[0]), key, value, pos);
}

/* pin_file = PATH, or credential:NAME for $CREDENTIALS_DIRECTORY/NAME: a credential that
 * systemd's LoadCredential=NAME:SOURCE hands the service (owner-only, in a private tmpfs).
 * Without $CREDENTIALS_DIRECTORY the text is kept and the PIN read refuses it: ocspctl
 * commands that never log in to the token still work with the service's file. */
static int
config_pin_file(struct config_parse *p, const struct config_pos *pos, const char *v, char *dst,
                size_t cap)
{
    const char *dir, *name;

    if (strncmp(v, CONFIG_CREDENTIAL_PREFIX, strlen(CONFIG_CREDENTIAL_PREFIX)) != 0)
        return config_copy(p, pos, "pin_file", v, dst, cap);
    name = v + strlen(CONFIG_CREDENTIAL_PREFIX);
    if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return config_error(p, pos, "pin_file = %s: a credential name, without '/'", v);
    dir = getenv("CREDENTIALS_DIRECTORY");
    if (dir == NULL || dir[0] != '/')
        return config_copy(p, pos, "pin_file", v, dst, cap);
    if ((size_t)snprintf(dst, cap, "%s/%s", dir, name) >= cap)
        return config_error(p, pos, "pin_file = %s: path too long", v);
    return ST_OK;
}

int
config_signer_key(struct config_parse *p, struct config_signer *c, const char *key,
                  const char *value, const struct config_pos *pos)
{
    const struct config_uint_key keys[] = {
        {"workers", 1, SIGNER_MAX_WORKERS, &c->workers},
        {"queue_max", 1, 1000000, &c->queue_max},
        {"batch_max", 1, 4096, &c->batch_max},
    };

    if (strcmp(key, "pkcs11_module") == 0)
        return config_copy(p, pos, key, value, c->p11_module, sizeof(c->p11_module));
    if (strcmp(key, "token") == 0)
        return config_copy(p, pos, key, value, c->p11_token, sizeof(c->p11_token));
    if (strcmp(key, "pin_file") == 0)
        return config_pin_file(p, pos, value, c->p11_pin_file, sizeof(c->p11_pin_file));
    if (strcmp(key, "sign_timeout") == 0) {
        double d;

        if (config_duration(value, &d) != 0 || d < 0.1 || d > 3600)
            return config_error(p, pos, "sign_timeout: a duration from 100ms to 1h");
        c->sign_timeout = d;
        return ST_OK;
    }
    return config_uint_keys(p, keys, sizeof(keys) / sizeof(keys[0]), key, value, pos);
}

int
config_store_key(struct config_parse *p, struct config_store *c, const char *key, const char *value,
                 const struct config_pos *pos, bool journal)
{
    double d;

    if (strcmp(key, "path") == 0)
        return config_copy(p, pos, key, value, c->path, sizeof(c->path));
    if (strcmp(key, "map_size") == 0) {
        if (config_size(value, &c->map_size) != 0 || c->map_size < (1u << 20))
            return config_error(p, pos, "map_size: a size of at least 1M");
        return ST_OK;
    }
    if (strcmp(key, "fill_limit") == 0) {
        char *end = NULL;

        d = strtod(value, &end);
        if (end != NULL && *end == '%')
            d /= 100, end++;
        if (end == value || end == NULL || *end != '\0' || !(d >= 0.1 && d <= 1))
            return config_error(p, pos, "fill_limit: a fraction from 0.1 to 1 (or 10%% to 100%%)");
        c->fill_limit = d;
        return ST_OK;
    }
    if (strcmp(key, "reader_check") == 0) {
        if (config_duration(value, &d) != 0 || d < 0.1 || d > 3600)
            return config_error(p, pos, "reader_check: a duration from 100ms to 1h");
        c->reader_check = d;
        return ST_OK;
    }
    if (!journal)
        return ST_NOTFOUND;
    if (strcmp(key, "journal") == 0) {
        if (config_bool(value, &c->journal) != 0)
            return config_error(p, pos, "journal: yes or no");
        return ST_OK;
    }
    if (strcmp(key, "journal_segment") == 0) {
        if (config_size(value, &c->journal_segment) != 0 || c->journal_segment < (256u << 10) ||
            c->journal_segment > ((size_t)1 << 30))
            return config_error(p, pos, "journal_segment: a size from 256k to 1G");
        return ST_OK;
    }
    if (strcmp(key, "journal_max") == 0) {
        if (config_size(value, &c->journal_max) != 0)
            return config_error(p, pos, "journal_max: a size, e.g. 256M");
        return ST_OK;
    }
    return ST_NOTFOUND;
}

int
config_signer_check(struct config_parse *p, const struct config_signer *c, const char *file)
{
    struct config_pos pos = {file, 0};

    if (c->p11_module[0] != '\0' && (c->p11_token[0] == '\0' || c->p11_pin_file[0] == '\0'))
        return config_error(p, &pos,
                            "[signer]: token and pin_file are required with "
                            "pkcs11_module");
    return ST_OK;
}
