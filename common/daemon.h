/*
 * daemon: process plumbing shared by tsad and ocspd: the common main() (options, config,
 * start-up and shutdown order), systemd readiness and watchdog notifications (sd_notify
 * protocol over $NOTIFY_SOCKET, no libsystemd needed), and a blocking wait for SIGTERM/SIGINT
 * that also sends watchdog pings.
 */
#ifndef COMMON_DAEMON_H
#define COMMON_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

/* Block SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread; call before starting any
 * thread so that every thread inherits the mask. */
void daemon_block_signals(void);
/* Send a state string ("READY=1", "STOPPING=1", "STATUS=...") to systemd; no-op outside it. */
void daemon_notify(const char *state);
/* Wait until SIGTERM or SIGINT; when $WATCHDOG_USEC is set, pings the watchdog at half that
 * period while the process is alive (common/live: no thread busy in one call for longer than
 * `stall` seconds). Health is not looked at: an unusable clock or a full store is a reason for
 * /healthz to say 503, not for systemd to restart the daemon. A stall is logged once, and its
 * end too. Returns the signal number. */
int daemon_wait(double stall);

/* Exit status when the PKCS#11 token refused the PIN at start (EX_CONFIG of sysexits.h): the
 * units name it in RestartPreventExitStatus= so systemd does not restart the daemon into the
 * same refusal, each attempt counting toward locking the token. Other failures exit 1. */
#define DAEMON_EXIT_PIN 78
/* sd_listen_fds(3): the first socket systemd passes (socket activation) */
#define DAEMON_LISTEN_FDS_START 3

struct http_server;
struct config_server;

/* What a daemon plugs into daemon_main(). */
struct daemon_ops {
    const char *name;         /* "tsad": log ident and messages */
    const char *default_conf; /* config path when -c is not given */
    void *cfg;                /* the daemon's config struct */
    size_t max_url;           /* request-target cap for the HTTP server (0: default) */
    /* parse and validate the file into cfg; "file:line: message" in err on failure */
    int (*load)(void *cfg, const char *path, char *err, size_t errlen);
    const struct config_server *(*server)(const void *cfg);
    int (*log_level)(const void *cfg);
    /* build the service on the (not yet started) server; NULL on failure, reasons logged.
     * With `check` (-n) nothing may be written and nothing another running instance owns
     * may be touched: stores are opened read-only, no journal, no background threads. */
    void *(*start)(void *cfg, struct http_server *http, bool check);
    void (*stop)(void *svc);
    /* optional: a few words about a valid config for -n, e.g. "5 TSU(s)" */
    void (*summary)(const void *cfg, char *buf, size_t cap);
};

/*
 * The daemon's main: `NAME [-n] [-c FILE] [-h]`. Order: config (errors to stderr, exit 1),
 * log level, signals blocked, HTTP server object, service (ops->start), then with -n report
 * and exit 0; else listen (or serve the one socket systemd passed: $LISTEN_PID/$LISTEN_FDS,
 * socket activation; [server] listen is then not bound), READY=1, wait for SIGTERM/SIGINT
 * (watchdog pings while alive),
 * STOPPING=1, then stop HTTP (suspended requests answered 503), the service, free HTTP.
 * Returns the process exit code.
 */
int daemon_main(int argc, char **argv, const struct daemon_ops *ops);

#endif
