/*
 * config: INI parsing through libinih with line numbers, and typed value parsers.
 *
 * libinih as packaged is built without INI_HANDLER_LINENO, so the line number is counted
 * by our own reader: ini_parse_stream() asks the reader for exactly one line per call.
 */
#include "common/config.h"
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
    FILE *f;          /* file input, or */
    const char *s;    /* string input */
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
config_uint(const char *v, unsigned long long min, unsigned long long max,
            unsigned long long *out)
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
    } units[] = {{"us", 1e-6}, {"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400},
                 {"", 1}};
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
