/*
 * daemon: sd_notify and signal waiting (see daemon.h).
 */
#include "common/daemon.h"
#include "common/config.h"
#include "common/http.h"
#include "common/live.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/signer.h"
#include "common/status.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

void
daemon_block_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void
daemon_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t len;
    int fd;

    if (path == NULL || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sa.sun_path))
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract socket */
    len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, (socklen_t)len) < 0)
        log_debug("sd_notify failed");
    close(fd);
}

int
daemon_wait(double stall)
{
    const char *wd = getenv("WATCHDOG_USEC");
    long long usec = wd != NULL ? atoll(wd) : 0;
    struct timespec tick = {1, 0};
    static bool stalled; /* across calls: a reload returns in between */
    sigset_t set;
    int sig;

    if (usec > 0) {
        tick.tv_sec = (time_t)(usec / 2000000);
        tick.tv_nsec = (long)((usec / 2 % 1000000) * 1000);
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    for (;;) {
        char who[LIVE_NAME_MAX];
        double how = 0;
        bool alive;

        sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
            return sig;
        alive = live_check(stall, who, sizeof(who), &how);
        if (!alive && !stalled)
            log_err("watchdog: thread %s has been inside one call for %.1f s (watchdog_stall "
                    "%.1f s): %s",
                    who, how, stall,
                    usec > 0 ? "no more watchdog pings" : "not running under a watchdog");
        else if (alive && stalled)
            log_notice("watchdog: no thread stuck any more: pings resume");
        stalled = !alive;
        if (usec > 0 && alive)
            daemon_notify("WATCHDOG=1");
    }
}

/* A stop must not wait for ever: a PKCS#11 call that never returns, or a write transaction
 * another process (ocspctl) holds for minutes, would keep the daemon from exiting. Past
 * stop_timeout the process ends at once. That is as safe as a crash, which the daemons are
 * built for: no token was sent without its durable record, and the stores recover at start. */
static double daemon_stop_timeout;

static void *
daemon_stop_guard(void *arg)
{
    struct timespec t = {(time_t)daemon_stop_timeout,
                         (long)((daemon_stop_timeout - (double)(time_t)daemon_stop_timeout) * 1e9)};
    char who[LIVE_NAME_MAX];
    double how = 0;

    (void)arg;
    while (nanosleep(&t, &t) != 0)
        ;
    live_check(0, who, sizeof(who), &how);
    log_err("stop: not done after %.0f s (stop_timeout)%s%s: exiting without waiting more",
            daemon_stop_timeout, who[0] != '\0' ? "; busy: " : "", who);
    _exit(1);
    return NULL;
}

static void
daemon_arm_stop_guard(double timeout)
{
    static atomic_bool armed; /* once: by a SIGTERM during a reload, or by the stop */
    pthread_t t;

    if (atomic_exchange(&armed, true))
        return;
    daemon_stop_timeout = timeout;
    if (pthread_create(&t, NULL, daemon_stop_guard, NULL) == 0)
        pthread_detach(t);
}

/*
 * While a reload runs on the main thread (it may wait on the HSM: a new key's test signature,
 * which has no sign_timeout), a thread of its own takes SIGTERM and SIGINT: the stop is then
 * bounded by stop_timeout as any other stop (issue 9 item 4, review). SIGHUP stays pending for
 * the main loop.
 */
struct daemon_reload_watch {
    atomic_bool done; /* the reload returned */
    atomic_int sig;   /* SIGTERM or SIGINT taken during it, else 0 */
    double stop_timeout;
};

static void *
daemon_reload_watch_main(void *arg)
{
    struct daemon_reload_watch *w = arg;
    struct timespec tick = {0, 100000000L};
    sigset_t set;
    int sig;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    while (!atomic_load(&w->done)) {
        sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            atomic_store(&w->sig, sig);
            log_notice("received signal %d during the reload: stopping once it returns, "
                       "within stop_timeout (%.0f s)",
                       sig, w->stop_timeout);
            daemon_arm_stop_guard(w->stop_timeout);
            break;
        }
    }
    return NULL;
}

/*
 * Socket activation (sd_listen_fds(3), done here in a few lines rather than linking
 * libsystemd): when $LISTEN_PID is our pid, $LISTEN_FDS sockets start at fd 3. One listening
 * stream socket is expected (one ListenStream= in NAME.socket). Returns the fd, 0 when no
 * socket was passed to this process, -1 (logged) when what was passed cannot be served. The
 * variables are removed so that no child takes the socket for its own.
 */
static int
daemon_listen_fd(const char *name)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    int type = 0, acc = 0, fd = DAEMON_LISTEN_FDS_START;
    socklen_t len = sizeof(int);
    struct sockaddr_storage ss = {0};
    socklen_t slen = sizeof(ss);
    char *end = NULL;
    long long p, n;

    if (pid == NULL || fds == NULL)
        return 0;
    p = strtoll(pid, &end, 10);
    if (end == pid || *end != '\0' || p != (long long)getpid())
        return 0; /* meant for another process (our parent) */
    n = strtoll(fds, &end, 10);
    if (end == fds || *end != '\0')
        n = -1;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (n != 1) {
        log_err("%s: systemd passed %lld sockets (LISTEN_FDS); exactly one is served (one "
                "ListenStream= in %s.socket)",
                name, n, name);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 || !acc) {
        log_err("%s: fd %d passed by systemd is not a listening stream socket (ListenStream= "
                "in %s.socket, Accept=no)",
                name, fd, name);
        return -1;
    }
    /* the per-address connection limit and signing budget need a client address: a Unix
     * socket would make every client one */
    if (getsockname(fd, (struct sockaddr *)&ss, &slen) != 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
        log_err("%s: fd %d passed by systemd is not an IPv4 or IPv6 socket (ListenStream= "
                "ADDRESS:PORT in %s.socket)",
                name, fd, name);
        return -1;
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

/* "ADDR:PORT" of a listening socket, for the audit line. */
static void
daemon_sock_name(int fd, char *buf, size_t cap)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        ss.ss_family = AF_UNSPEC;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;

        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(buf, cap, "%s:%u", host, port);
}

void
daemon_list_add(char *list, size_t cap, const char *item)
{
    size_t used = strlen(list);

    if (used + strlen(item) + 2 < cap)
        snprintf(list + used, cap - used, "%s%s", used > 0 ? "," : "", item);
    else if (used + 4 < cap && strcmp(list + (used > 3 ? used - 3 : 0), "...") != 0)
        snprintf(list + used, cap - used, "...");
}

void
daemon_restart_note(struct daemon_restart *r, const char *key)
{
    char word[96], *w = word;

    log_warn("config reload: needs restart: %s (the running value is kept)", key);
    /* "[server] listen" -> "server.listen": one word in the audit line */
    for (const char *k = key; *k != '\0' && w < word + sizeof(word) - 1; k++) {
        if (*k == '[')
            continue;
        *w++ = *k == ']' ? '.' : *k;
        if (*k == ']' && k[1] == ' ')
            k++;
    }
    *w = '\0';
    daemon_list_add(r->keys, sizeof(r->keys), word);
    r->n++;
}

void
daemon_restart_common(struct daemon_restart *r, const struct config_server *run,
                      const struct config_server *now, const struct config_store *run_st,
                      const struct config_store *now_st, const struct config_signer *run_sg,
                      const struct config_signer *now_sg)
{
#define DIFF_NUM(a, b, f, key)                                                                     \
    do {                                                                                           \
        if ((a)->f != (b)->f)                                                                      \
            daemon_restart_note(r, key);                                                           \
    } while (0)
#define DIFF_STR(a, b, f, key)                                                                     \
    do {                                                                                           \
        if (strcmp((a)->f, (b)->f) != 0)                                                           \
            daemon_restart_note(r, key);                                                           \
    } while (0)
    if (strcmp(run->listen_host, now->listen_host) != 0 || run->listen_port != now->listen_port)
        daemon_restart_note(r, "[server] listen");
    DIFF_NUM(run, now, threads, "[server] threads");
    DIFF_NUM(run, now, max_body, "[server] max_body");
    DIFF_NUM(run, now, max_connections, "[server] max_connections");
    DIFF_NUM(run, now, per_ip_limit, "[server] per_ip_limit");
    DIFF_NUM(run, now, timeout_s, "[server] timeout");
    DIFF_NUM(run, now, request_timeout_s, "[server] request_timeout");
    DIFF_NUM(run, now, watchdog_stall, "[server] watchdog_stall");
    DIFF_NUM(run, now, stop_timeout, "[server] stop_timeout");
    DIFF_STR(run_st, now_st, path, "[store] path");
    DIFF_NUM(run_st, now_st, map_size, "[store] map_size");
    DIFF_NUM(run_st, now_st, fill_limit, "[store] fill_limit");
    DIFF_NUM(run_st, now_st, reader_check, "[store] reader_check");
    DIFF_NUM(run_st, now_st, journal, "[store] journal");
    DIFF_NUM(run_st, now_st, journal_segment, "[store] journal_segment");
    DIFF_NUM(run_st, now_st, journal_max, "[store] journal_max");
    DIFF_STR(run_sg, now_sg, p11_module, "[signer] pkcs11_module");
    DIFF_STR(run_sg, now_sg, p11_token, "[signer] token");
    DIFF_STR(run_sg, now_sg, p11_pin_file, "[signer] pin_file");
    DIFF_NUM(run_sg, now_sg, workers, "[signer] workers");
    DIFF_NUM(run_sg, now_sg, queue_max, "[signer] queue_max");
    DIFF_NUM(run_sg, now_sg, batch_max, "[signer] batch_max");
    DIFF_NUM(run_sg, now_sg, sign_timeout, "[signer] sign_timeout");
#undef DIFF_NUM
#undef DIFF_STR
}

/* Reload outcomes, created at start so that both series exist from the first scrape. */
static struct metric *daemon_m_reload_ok, *daemon_m_reload_failed;

static void
daemon_reload_metrics(void)
{
    static const char help[] = "Configuration reloads (SIGHUP), by result.";

    daemon_m_reload_ok = metrics_counter("config_reloads_total{result=\"ok\"}", help);
    daemon_m_reload_failed = metrics_counter("config_reloads_total{result=\"failed\"}", help);
}

/* Quotes and line ends out of a reason going into an audit line's reason="...". */
static void
daemon_quote_safe(char *s)
{
    for (; *s != '\0'; s++)
        if (*s == '"' || *s == '\n' || *s == '\r')
            *s = '\'';
}

/* SIGHUP: sd_notify's reload protocol (RELOADING=1 with MONOTONIC_USEC, then READY=1), the
 * daemon's reload op, the audit event and the counter. The running configuration stays when
 * the new one does not load. */
static void
daemon_reload_locked(const struct daemon_ops *ops, void *svc, const char *path)
{
    char what[1536] = "", err[512] = "", state[160];
    struct timespec now;
    int st;

    if (ops->reload == NULL) {
        log_notice("SIGHUP: %s does not reload its configuration; restart to apply changes",
                   ops->name);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    snprintf(state, sizeof(state), "RELOADING=1\nSTATUS=reloading %s\nMONOTONIC_USEC=%llu", path,
             (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_nsec / 1000);
    daemon_notify(state);
    log_notice("SIGHUP: reloading %s", path);
    st = ops->reload(svc, path, what, sizeof(what), err, sizeof(err));
    if (st == ST_OK) {
        metrics_inc(daemon_m_reload_ok);
        log_audit("config_reload", "result=ok file=%s%s%s", path, what[0] != '\0' ? " " : "", what);
        daemon_notify("READY=1\nSTATUS=configuration reloaded");
        return;
    }
    metrics_inc(daemon_m_reload_failed);
    if (err[0] == '\0')
        snprintf(err, sizeof(err), "%s", status_str(st));
    daemon_quote_safe(err);
    log_err("config reload: %s: %s; the running configuration is kept", path, err);
    log_audit("config_reload", "result=failed file=%s reason=\"%s\"", path, err);
    snprintf(state, sizeof(state),
             "READY=1\nSTATUS=reload failed, running configuration kept: %.80s", err);
    daemon_notify(state);
}

/* The reload with the SIGTERM watch beside it; returns the stop signal taken meanwhile, or 0. */
static int
daemon_reload(const struct daemon_ops *ops, void *svc, const char *path)
{
    struct daemon_reload_watch w = {.stop_timeout = ops->server(ops->cfg)->stop_timeout};
    pthread_t t;
    bool watched;

    atomic_init(&w.done, false);
    atomic_init(&w.sig, 0);
    watched = pthread_create(&t, NULL, daemon_reload_watch_main, &w) == 0;
    daemon_reload_locked(ops, svc, path);
    atomic_store(&w.done, true);
    if (watched)
        pthread_join(t, NULL);
    return atomic_load(&w.sig);
}

static void
daemon_usage(FILE *f, const struct daemon_ops *ops)
{
    fprintf(f,
            "usage: %s [-n] [-c FILE]\n"
            "  -c FILE   configuration file (default %s)\n"
            "  -n        check the configuration (keys, certificates, token) and exit\n"
            "  -h        this help\n",
            ops->name, ops->default_conf);
}

int
daemon_main(int argc, char **argv, const struct daemon_ops *ops)
{
    const char *path = ops->default_conf;
    struct http_server *http = NULL;
    struct http_config hc;
    void *svc = NULL;
    char err[512];
    bool check_only = false;
    int opt, rc = 1;

    while ((opt = getopt(argc, argv, "c:nh")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'n':
            check_only = true;
            break;
        case 'h':
            daemon_usage(stdout, ops);
            return 0;
        default:
            daemon_usage(stderr, ops);
            return 2;
        }
    }
    log_init(ops->name, LOG_LVL_INFO);
    if (ops->load(ops->cfg, path, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "%s: %s\n", ops->name, err);
        return 1;
    }
    log_set_level(ops->log_level(ops->cfg));
    daemon_block_signals();
    http_config_init(&hc, ops->server(ops->cfg));
    hc.max_url = ops->max_url;
    if (!check_only && (hc.listen_fd = daemon_listen_fd(ops->name)) < 0)
        goto out;
    if ((http = http_server_new(&hc)) == NULL)
        goto out;
    if ((svc = ops->start(ops->cfg, http, check_only)) == NULL) {
        fprintf(stderr, "%s: cannot start with %s (see the log above)\n", ops->name, path);
        if (signer_pin_refused()) { /* issue 8: a wrong PIN is not retried by a restart */
            fprintf(stderr,
                    "%s: the token refused the PIN: correct the PIN file, then start "
                    "again (exit status %d: not restarted by systemd)\n",
                    ops->name, DAEMON_EXIT_PIN);
            rc = DAEMON_EXIT_PIN;
        }
        goto out;
    }
    if (check_only) {
        char more[128] = "";

        if (ops->summary != NULL)
            ops->summary(ops->cfg, more, sizeof(more));
        printf("%s: %s is valid%s%s%s\n", ops->name, path, more[0] ? " (" : "", more,
               more[0] ? ")" : "");
        rc = 0;
        goto out;
    }
    if (http_server_start(http) != ST_OK)
        goto out;
    if (hc.listen_fd > 0) {
        char where[INET6_ADDRSTRLEN + 8];

        daemon_sock_name(hc.listen_fd, where, sizeof(where));
        log_audit("service_start", "listen=%s socket=systemd", where);
    } else if (http_server_port(http) != 0) {
        log_audit("service_start", "listen=%s:%u", hc.listen_addr,
                  (unsigned)http_server_port(http));
    } else {
        log_audit("service_start", "listen=none (HTTPS only)");
    }
    if (ops->reload != NULL)
        daemon_reload_metrics();
    daemon_notify("READY=1");
    for (;;) {
        int sig = daemon_wait(ops->server(ops->cfg)->watchdog_stall);

        if (sig == SIGHUP && (sig = daemon_reload(ops, svc, path)) == 0)
            continue;
        log_notice("received signal %d, stopping", sig);
        break;
    }
    daemon_notify("STOPPING=1");
    daemon_arm_stop_guard(ops->server(ops->cfg)->stop_timeout);
    rc = 0;
out:
    http_server_stop(http);
    if (svc != NULL)
        ops->stop(svc);
    http_server_free(http);
    if (rc == 0 && !check_only)
        log_audit("service_stop", "clean shutdown");
    metrics_fini();
    return rc;
}
