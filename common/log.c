/*
 * log: stderr logging with levels, request ids and audit events. See log.h.
 */
#include "common/log.h"
#include "common/status.h"

#include <openssl/err.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "appliance";
static atomic_int log_level = LOG_LVL_INFO;
static const char *const level_names[] = {"err", "warn", "notice", "info", "debug"};

void
log_init(const char *ident, int level)
{
    if (ident != NULL)
        log_ident = ident;
    log_set_level(level);
}

void
log_set_level(int level)
{
    if (level < LOG_LVL_ERR)
        level = LOG_LVL_ERR;
    if (level > LOG_LVL_DEBUG)
        level = LOG_LVL_DEBUG;
    atomic_store(&log_level, level);
}

int
log_get_level(void)
{
    return atomic_load(&log_level);
}

int
log_level_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

static void __attribute__((format(printf, 3, 0)))
log_write(int level, const char *prefix, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int r;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%06ldZ %s[%d] %s: %s", ts.tv_nsec / 1000, log_ident,
                 (int)getpid(), level_names[level], prefix);
    if (r > 0)
        n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (r > 0)
        n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
    /* one write per line: lines from several threads never interleave */
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report it */
    }
}

void
log_vmsg(int level, const char *fmt, va_list ap)
{
    if (level > atomic_load(&log_level))
        return;
    log_write(level, "", fmt, ap);
}

void
log_msg(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

void
log_req(int level, unsigned long long rid, const char *fmt, ...)
{
    char prefix[32];
    va_list ap;

    if (level > atomic_load(&log_level))
        return;
    snprintf(prefix, sizeof(prefix), "req=%llu ", rid);
    va_start(ap, fmt);
    log_write(level, prefix, fmt, ap);
    va_end(ap);
}

void
log_audit(const char *event, const char *fmt, ...)
{
    char prefix[96];
    va_list ap;

    snprintf(prefix, sizeof(prefix), "AUDIT event=%s ", event);
    va_start(ap, fmt);
    log_write(LOG_LVL_NOTICE, prefix, fmt, ap);
    va_end(ap);
}

void
log_openssl(int level, const char *what)
{
    unsigned long e;
    char buf[256];
    int any = 0;

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        log_msg(level, "%s: %s", what, buf);
        any = 1;
    }
    if (!any)
        log_msg(level, "%s", what);
}

const char *
status_str(int st)
{
    switch (st) {
    case ST_OK:
        return "ok";
    case ST_ERR:
        return "error";
    case ST_NOMEM:
        return "out of memory";
    case ST_INVALID:
        return "invalid";
    case ST_IO:
        return "i/o error";
    case ST_NOTFOUND:
        return "not found";
    case ST_EXISTS:
        return "exists";
    case ST_BUSY:
        return "busy";
    case ST_CRYPTO:
        return "crypto error";
    case ST_CLOCK:
        return "clock unusable";
    case ST_CONFIG:
        return "configuration error";
    case ST_HSM:
        return "hsm error";
    case ST_STORE:
        return "store error";
    case ST_TIMEOUT:
        return "timeout";
    case ST_SHUTDOWN:
        return "shutting down";
    case ST_FULL:
        return "store full";
    default:
        return "unknown status";
    }
}
