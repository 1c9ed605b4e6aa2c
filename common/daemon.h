/*
 * daemon: process plumbing shared by tsad and ocspd: the common main() (options, config,
 * start-up and shutdown order), systemd readiness and watchdog notifications (sd_notify
 * protocol over $NOTIFY_SOCKET, no libsystemd needed), and a blocking wait for SIGTERM/SIGINT
 * that also sends watchdog pings; SIGHUP runs the daemon's reload op (issue 9 item 4).
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
/* Wait until SIGTERM, SIGINT or SIGHUP (returned too: a reload); when $WATCHDOG_USEC is set, pings
 * the watchdog at half that period while the process is alive (common/live: no thread busy in one
 * call for longer than `stall` seconds). Health is not looked at: an unusable clock or a full store
 * is a reason for /healthz to say 503, not for systemd to restart the daemon. A stall is logged
 * once, and its end too. Returns the signal number. */
int daemon_wait(double stall);

/* Exit status when the PKCS#11 token refused the PIN at start (EX_CONFIG of sysexits.h): the
 * units name it in RestartPreventExitStatus= so systemd does not restart the daemon into the
 * same refusal, each attempt counting toward locking the token. Other failures exit 1. */
#define DAEMON_EXIT_PIN 78
/* sd_listen_fds(3): the first socket systemd passes (socket activation) */
#define DAEMON_LISTEN_FDS_START 3

struct http_server;
struct config_server;
struct config_store;
struct config_signer;

/* Append ",item" (or "item" to an empty list) to a NUL-terminated list of at most cap bytes;
 * one that does not fit ends the list with "..." (the audit line of a reload). */
void daemon_list_add(char *list, size_t cap, const char *item);

/* The settings a reload cannot change (issue 9 item 4): each one found changed is logged as
 * "needs restart: KEY" and named in `keys` (comma-separated) for the audit line. */
struct daemon_restart {
    char keys[512];
    unsigned n;
};
void daemon_restart_note(struct daemon_restart *r, const char *key);
/* [server], [store] and [signer]: the listener, the store and the token stay as started. */
void daemon_restart_common(struct daemon_restart *r, const struct config_server *run,
                           const struct config_server *now, const struct config_store *run_st,
                           const struct config_store *now_st, const struct config_signer *run_sg,
                           const struct config_signer *now_sg);

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
    /* optional (issue 9 item 4): SIGHUP, `systemctl reload`. Re-read the file at `path` and
     * apply what may change while running, all or nothing: everything is loaded and checked
     * as at start into new objects, which replace the running ones only when all of it
     * loaded; requests in flight finish with the old ones. Settings that need a restart are
     * logged ("needs restart: [server] listen") and left as they are. ST_OK with a summary of
     * what changed in `what` (key=value words for the audit line), or an error with the
     * reason in `err` ("file:line: message", the failing key or certificate): the running
     * configuration stays. On the control thread, between watchdog pings. */
    int (*reload)(void *svc, const char *path, char *what, size_t whatcap, char *err,
                  size_t errlen);
};

/*
 * The daemon's main: `NAME [-n] [-c FILE] [-h]`. Order: config (errors to stderr, exit 1),
 * log level, signals blocked, HTTP server object, service (ops->start), then with -n report
 * and exit 0; else listen (or serve the one socket systemd passed: $LISTEN_PID/$LISTEN_FDS,
 * socket activation; [server] listen is then not bound), READY=1, wait for SIGTERM/SIGINT
 * (watchdog pings while alive; each SIGHUP: RELOADING=1, ops->reload, the audit event
 * config_reload, config_reloads_total{result="ok"|"failed"}, READY=1),
 * STOPPING=1, then stop HTTP (suspended requests answered 503), the service, free HTTP.
 * Returns the process exit code.
 */
int daemon_main(int argc, char **argv, const struct daemon_ops *ops);

#endif
