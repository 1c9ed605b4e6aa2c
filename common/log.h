/*
 * log: one line per event on stderr (the journal under systemd), with a level and an
 * optional request id. Audit events (clock sync lost/regained, key life cycle, start/stop)
 * are tagged "AUDIT" so they can be filtered; TSA-18, EN 319 401 REQ-7.10.
 * Thread-safe: each line is written with a single write(2).
 */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stdarg.h>

enum log_level {
    LOG_LVL_ERR = 0,
    LOG_LVL_WARN = 1,
    LOG_LVL_NOTICE = 2,
    LOG_LVL_INFO = 3,
    LOG_LVL_DEBUG = 4
};

/* Set the program name put on each line and the highest level written. */
void log_init(const char *ident, int level);
void log_set_level(int level);
int log_get_level(void);
/* Parse "err", "warn", "notice", "info", "debug"; -1 when unknown. */
int log_level_parse(const char *name);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* A line tied to one request: "req=<rid> ..." */
void log_req(int level, unsigned long long rid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An audit event: always written, at NOTICE, as "AUDIT event=<event> <details>". */
void log_audit(const char *event, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drain OpenSSL's error queue of this thread into the log, prefixed by what failed. */
void log_openssl(int level, const char *what);

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
