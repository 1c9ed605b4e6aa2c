/*
 * http: libmicrohttpd glue shared by tsad and ocspd (DESIGN D2, D8). See http.h for the
 * contract; transport per RFC 3161 section 3.4 and RFC 6960 appendix A / RFC 9919 section 5.
 *
 * Life of a request. MHD's URI log callback runs as soon as the request line is in: it
 * allocates the request (one malloc, the raw request-target inline, before MHD unescapes
 * anything) and returns it as MHD's per-request pointer. The first access-handler call
 * (headers in) applies the built-in checks in a fixed order; later calls append body bytes;
 * the last one runs the route's handler. The request is freed by reference count: MHD holds
 * one reference until MHD_OPTION_NOTIFY_COMPLETED, and a handler that suspends takes a
 * second one, dropped by its http_reply(). So a client that disconnects while its request
 * is suspended, or a reply that races the handler's return, never frees the request under
 * the other side.
 *
 * Suspend/resume. http_reply() from another thread and the handler's return meet under the
 * server lock: whoever comes second acts. If the reply came first, the handler's return
 * queues it at once (no suspension); otherwise the return suspends the connection and the
 * reply resumes it, and MHD's next access-handler call queues the stored response. A
 * response is only ever queued from the access handler, as MHD requires.
 *
 * What a request holds as its answer: a response of its own (resp_owned, destroyed once
 * queued: MHD keeps its own reference until sent), one of the server's shared 500/503, or a
 * canned reply's response with a reference on the canned reply (req->canned), dropped once
 * queued or when the request is freed unanswered. Bodies in parts (http_reply_parts, canned
 * replies) are MHD iovec responses: MHD's free callback of the response is the one place
 * the parts are released, so it runs once, after the last connection is done with them.
 */
#include "common/http.h"
#include "common/config.h"
#include "common/http_tls.h"
#include "common/live.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/ratelimit.h"
#include "common/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HTTP_MAX_ROUTES 48 /* tsad: 16 paths x (POST, GET certchain) + built-ins */
#define HTTP_METHOD_MAX 16
#define HTTP_HDR_SPACE 1024  /* per-request room for http_reply_header() */
#define HTTP_HEALTH_MAX 2048 /* /healthz JSON document */
/* libmicrohttpd's per-connection pool holds the request line (max_url), the request headers
 * (HTTP_HEADER_ROOM), its record of each header line, cookie and query argument (56 bytes and
 * alignment: HTTP_POOL_RECORD each, HTTP_HEADER_LINES of them) and the reply's header block
 * (HTTP_POOL_REPLY). A request within those limits therefore always leaves room for its reply:
 * when the pool was too small for the reply, MHD closed the connection without one after the
 * handler had run (review helper-41). The pool is zeroed after every request, so its size is
 * paid on each hit: MHD's default 32 KiB cost 1.3 us of a 20 us hit. */
#define HTTP_POOL_RECORD 64u
#define HTTP_POOL_REPLY 1024u
#define HTTP_STOP_GRACE_MS 2000
#define HTTP_STOP_POLL_MS 5
#define HTTP_BODY_MIN 1024
#define HTTP_ALLOW_MAX 64
#define HTTP_CLASSES 5

enum http_stage {
    HTTP_STAGE_NEW,  /* request line in, headers not yet seen by us */
    HTTP_STAGE_BODY, /* checks passed, collecting the body */
    HTTP_STAGE_WAIT, /* handler ran and suspended; waiting to be resumed with a reply */
    HTTP_STAGE_DONE  /* response queued (or the connection cut) */
};

struct http_route_ent {
    char method[HTTP_METHOD_MAX];
    char *path;
    size_t path_len;
    bool prefix;
    char *ctype;
    http_handler_fn fn;
    void *ctx;
};

struct http_metrics {
    struct metric *requests[HTTP_CLASSES]; /* by status class 1xx..5xx */
    struct metric *rej_404;
    struct metric *rej_405;
    struct metric *rej_413;
    struct metric *rej_414;
    struct metric *rej_431;
    struct metric *rej_400;
    struct metric *rej_411;
    struct metric *rej_415;
    struct metric *connections;
    struct metric *suspended;
    struct metric *bytes_in;
    struct metric *bytes_out;
    struct metric *duration;
};

enum http_state { HTTP_SRV_NEW, HTTP_SRV_RUNNING, HTTP_SRV_STOPPED };

/* ---- connection guard types (see http.h: hostile and slow clients) ---- */

#define HTTP_GUARD_TICK_MS 250  /* the sweeper's longest sleep */
#define HTTP_GUARD_LOG_MS 10000 /* one log line per reason at most this often */
#define HTTP_IDLE_SLACK_S 1u    /* MHD's own idle timeout: ours first, MHD's as a backstop */
#define HTTP_FD_SPARE 128u      /* descriptors besides connections: stores, journal, token, logs */

enum http_conn_state {
    HTTP_CONN_WAITING,   /* ready for a request; no whole request line yet */
    HTTP_CONN_RECEIVING, /* request line in; headers or body still coming */
    HTTP_CONN_BUSY,      /* request whole: handler, suspended, or answer being sent */
    HTTP_CONN_CUT        /* shut down by the guard; MHD closes it */
};

enum http_cut {
    HTTP_CUT_PER_IP,
    HTTP_CUT_LIMIT,
    HTTP_CUT_DEADLINE,
    HTTP_CUT_IDLE,
    HTTP_CUT_EVICTED,
    HTTP_CUT_QUERY,
    HTTP_CUTS
};

struct http_ipkey {
    uint8_t a[RATELIMIT_SOURCE_LEN]; /* ratelimit_source_key() */
};

struct http_ipent {
    struct http_ipkey key;
    unsigned count; /* 0: free slot */
};

struct http_conn {
    struct http_conn *prev, *next; /* the waiting list (WAITING, RECEIVING), oldest first */
    struct http_server *srv;       /* for the TLS certificate callback */
    int fd;
    enum http_conn_state state;
    bool listed;
    bool reserve; /* accepted past max_connections: /healthz and /metrics only */
    uint64_t ready_ms;
    struct http_ipkey ip;
    char ip_text[INET6_ADDRSTRLEN]; /* the client's address as text, for its requests */
};

struct http_guard {
    pthread_mutex_t lock; /* everything below */
    pthread_cond_t wake;
    pthread_t thread;
    bool thread_up;
    bool stop;
    struct http_conn *head, *tail;
    unsigned count; /* connections between MHD's STARTED and CLOSED notifications */
    unsigned cut;   /* of which shut down by us, MHD about to close them */
    struct http_ipent *ips;
    size_t ipmask; /* table size - 1 (a power of two) */
    uint64_t seed;
    struct metric *rejected[HTTP_CUTS];
    unsigned pending[HTTP_CUTS]; /* not yet logged */
    uint64_t logged_ms[HTTP_CUTS];
    struct http_ipkey last[HTTP_CUTS];
};

union http_sockaddr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

/* One listening MHD daemon: plain HTTP, or HTTPS (issue 9). Both share the server's routes,
 * request accounting, metrics and connection guard: a connection is a connection. */
enum http_lsn_kind { HTTP_LSN_PLAIN, HTTP_LSN_TLS, HTTP_LSNS };

struct http_listener {
    bool on;  /* to be started */
    bool tls; /* HTTPS */
    bool ipv6;
    char addr[INET6_ADDRSTRLEN];
    union http_sockaddr bind_addr;
    uint16_t want_port; /* configured; 0: the kernel picks */
    uint16_t port;      /* bound, once started */
    int listen_fd;      /* > 0: a socket systemd passed (plain only) */
    struct MHD_Daemon *mhd;
};

struct http_server {
    struct http_config cfg;
    struct http_listener lsn[HTTP_LSNS];
    enum http_state state;
    pthread_mutex_t tls_lock;       /* tls_cred, swapped by http_tls_reload() */
    struct http_tls_cred *tls_cred; /* current set; its `older` list: the replaced ones */
    struct http_route_ent routes[HTTP_MAX_ROUTES];
    size_t nroutes;
    http_health_fn health;
    void *health_ctx;
    struct http_metrics m;
    struct MHD_Response *resp_500; /* shared fallbacks, built at start */
    struct MHD_Response *resp_503;
    atomic_bool stopping;
    atomic_bool started;  /* MHD is up: its messages are request noise, logged at debug */
    atomic_int active;    /* requests between the URI log callback and completion */
    atomic_int pending;   /* suspended requests whose http_reply() has not come yet */
    pthread_mutex_t lock; /* the suspended list and every request's reply state */
    struct http_request *parked;
    struct http_guard guard;
};

struct http_request {
    struct http_server *srv;
    struct MHD_Connection *conn;
    struct http_conn *cn; /* the guard's record of the connection (NULL: untracked) */
    atomic_int refs;
    uint64_t id;
    struct timespec t0;
    enum http_stage stage;
    const struct http_route_ent *route;
    const char *version;
    char method[HTTP_METHOD_MAX];
    char client_ip[INET6_ADDRSTRLEN];
    unsigned char *body;
    size_t body_len;
    size_t body_cap;
    bool in_handler;
    bool tls;        /* came over the HTTPS listener */
    bool async;      /* the handler called http_req_suspend() */
    bool app_done;   /* the async owner has called http_reply() */
    bool suspended;  /* MHD_suspend_connection() done, not yet resumed (under lock) */
    bool replied;    /* resp/status hold the answer (under lock when async) */
    bool resp_owned; /* resp is ours to destroy (the shared fallbacks are not) */
    struct MHD_Response *resp;
    struct http_canned *canned; /* resp is this canned reply's: one reference held */
    unsigned status;
    size_t resp_len;
    struct http_request *prev; /* in the server's suspended list */
    struct http_request *next;
    unsigned nhdr;
    size_t hdr_used;
    char hdr[HTTP_HDR_SPACE]; /* "name\0value\0" pairs */
    size_t uri_len;
    size_t path_len;
    bool has_query;
    char uri[]; /* raw request-target; '?' replaced by NUL */
};

/*
 * A canned reply (http.h). Two counts: refs, the users (its creator, requests about to queue
 * it), whose last one destroys resp; bodies, the MHD responses over the parts (resp itself,
 * one-off fallbacks), each giving its count back from MHD's free callback when MHD has
 * destroyed it, that is once no connection sends it any more. The last body runs release and
 * frees the struct, so it outlives every response that points to it.
 */
struct http_canned {
    atomic_int refs;
    atomic_int bodies;
    struct MHD_Response *resp;
    unsigned status;
    size_t len; /* body bytes */
    unsigned nparts;
    struct MHD_IoVec iov[HTTP_PARTS_MAX];
    http_release_fn release;
    void *release_arg;
    bool has_ctype; /* hdr starts with the Content-Type, NUL-terminated */
    size_t nhdr;    /* then nhdr "name\0value\0" pairs */
    char hdr[];
};

static atomic_uint_fast64_t http_next_id;

/* ---- connection guard: per-address limit, reserve, eviction, request deadline ---- */

static uint64_t
mono_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* The per-address limit counts sources as the signing budgets do (common/ratelimit). */
static void
ipkey_from(struct http_ipkey *k, const struct sockaddr *sa)
{
    ratelimit_source_key(sa, k->a);
}

static void
ipkey_text(const struct http_ipkey *k, char *out, size_t cap)
{
    static const unsigned char v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (memcmp(k->a, v4, sizeof(v4)) == 0)
        inet_ntop(AF_INET, k->a + 12, out, (socklen_t)cap);
    else
        inet_ntop(AF_INET6, k->a, out, (socklen_t)cap);
}

/* splitmix64's finalizer: every input bit moves every output bit. */
static uint64_t
mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* Seeded hash of the whole address (for IPv4 all of it sits in the upper half): a client
 * cannot pick addresses that collide on purpose. */
static size_t
ip_slot(const struct http_guard *g, const struct http_ipkey *k)
{
    uint64_t lo, hi;

    memcpy(&lo, k->a, 8);
    memcpy(&hi, k->a + 8, 8);
    return (size_t)mix64(mix64(lo ^ g->seed) ^ hi) & g->ipmask;
}

/* Under the guard lock: the slot holding k, or the free slot where it would go. */
static struct http_ipent *
ip_find(const struct http_guard *g, const struct http_ipkey *k)
{
    size_t i = ip_slot(g, k);

    while (g->ips[i].count != 0 && memcmp(&g->ips[i].key, k, sizeof(*k)) != 0)
        i = (i + 1) & g->ipmask;
    return &g->ips[i];
}

static unsigned
ip_count(const struct http_guard *g, const struct http_ipkey *k)
{
    return ip_find(g, k)->count;
}

static unsigned
ip_add(struct http_guard *g, const struct http_ipkey *k)
{
    struct http_ipent *e = ip_find(g, k);

    e->key = *k;
    return ++e->count;
}

/* Linear probing: a freed slot pulls back the entries after it that belong before it. */
static void
ip_del(struct http_guard *g, const struct http_ipkey *k)
{
    struct http_ipent *e = ip_find(g, k);
    size_t i, j, home;

    if (e->count == 0 || --e->count != 0)
        return;
    i = (size_t)(e - g->ips);
    for (j = (i + 1) & g->ipmask; g->ips[j].count != 0; j = (j + 1) & g->ipmask) {
        home = ip_slot(g, &g->ips[j].key);
        /* entry j may move to i when its home is not within (i, j] cyclically */
        if (((j - home) & g->ipmask) >= ((j - i) & g->ipmask)) {
            g->ips[i] = g->ips[j];
            g->ips[j].count = 0;
            i = j;
        }
    }
}

static const char *const http_cut_names[HTTP_CUTS] = {"per_ip", "limit",   "deadline",
                                                      "idle",   "evicted", "query"};

/* Under the guard lock: one info line for the refusals of reason r not yet logged. */
static void
guard_log(struct http_server *srv, enum http_cut r, uint64_t now)
{
    struct http_guard *g = &srv->guard;
    const struct http_config *c = &srv->cfg;
    char ip[INET6_ADDRSTRLEN];
    unsigned n = g->pending[r];

    g->pending[r] = 0;
    g->logged_ms[r] = now;
    ipkey_text(&g->last[r], ip, sizeof(ip));
    switch (r) {
    case HTTP_CUT_PER_IP:
        log_info("http: refused %u connections over per_ip_limit (%u), last from %s", n,
                 c->per_ip_limit, ip);
        break;
    case HTTP_CUT_LIMIT:
        log_info("http: answered 503 to %u requests past max_connections (%u), last from %s", n,
                 c->max_connections, ip);
        break;
    case HTTP_CUT_DEADLINE:
        log_info("http: cut %u connections whose request was not whole within "
                 "request_timeout (%us), last from %s",
                 n, c->request_timeout_s, ip);
        break;
    case HTTP_CUT_QUERY:
        log_info("http: closed %u connections whose query string had more than %u arguments, "
                 "last from %s",
                 n, HTTP_HEADER_LINES, ip);
        break;
    case HTTP_CUT_EVICTED:
        log_info("http: closed %u waiting connections to make room past max_connections (%u), "
                 "last from %s",
                 n, c->max_connections, ip);
        break;
    default:
        log_debug("http: closed %u idle connections (timeout %us), last from %s", n, c->timeout_s,
                  ip);
        break;
    }
}

/* Under the guard lock: count a refusal; log at once unless a line went out recently. */
static void
guard_note(struct http_server *srv, enum http_cut r, const struct http_ipkey *ip)
{
    struct http_guard *g = &srv->guard;
    uint64_t now = mono_ms();

    metrics_inc(g->rejected[r]);
    g->pending[r]++;
    g->last[r] = *ip;
    if (g->logged_ms[r] == 0 || now - g->logged_ms[r] >= HTTP_GUARD_LOG_MS)
        guard_log(srv, r, now);
}

static void
guard_unlink(struct http_guard *g, struct http_conn *c)
{
    if (!c->listed)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        g->tail = c->prev;
    c->prev = c->next = NULL;
    c->listed = false;
}

/* Under the guard lock: c waits for a request from now on (tail of the list). */
static void
guard_wait(struct http_guard *g, struct http_conn *c)
{
    guard_unlink(g, c);
    c->state = HTTP_CONN_WAITING;
    c->ready_ms = mono_ms();
    c->prev = g->tail;
    c->next = NULL;
    if (g->tail != NULL)
        g->tail->next = c;
    else
        g->head = c;
    g->tail = c;
    c->listed = true;
}

/*
 * Under the guard lock: shut the connection down. MHD sees the end of stream on its next
 * turn and closes it; the descriptor stays MHD's until then. It cannot have been closed and
 * reused under us: libmicrohttpd (0.9.75: new_connection_process_ on its failure path,
 * MHD_cleanup_connections otherwise) calls the CLOSED notification before it closes the
 * socket, and guard_closed() drops our record under this lock. A suspended connection is
 * never cut (its request is whole), so MHD always watches the socket it is shut down on.
 */
static void
guard_cut(struct http_server *srv, struct http_conn *c, enum http_cut r)
{
    guard_unlink(&srv->guard, c);
    c->state = HTTP_CONN_CUT;
    srv->guard.cut++;
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);
    guard_note(srv, r, &c->ip);
}

/* The request on c is whole: no deadline any more until its answer is sent. */
static void
guard_busy(struct http_server *srv, struct http_conn *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&srv->guard.lock);
    if (c->state != HTTP_CONN_CUT && c->state != HTTP_CONN_BUSY) {
        guard_unlink(&srv->guard, c);
        c->state = HTTP_CONN_BUSY;
    }
    pthread_mutex_unlock(&srv->guard.lock);
}

/* MHD's connection record for conn (NULL when it was not tracked). */
static struct http_conn *
guard_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci;

    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

/* MHD_AcceptPolicyCallback: the cheap refusal, before MHD allocates anything. */
static enum MHD_Result
http_accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct http_server *srv = cls;
    struct http_guard *g = &srv->guard;
    struct http_ipkey k;
    bool ok;

    (void)addrlen;
    if (srv->cfg.per_ip_limit == 0)
        return MHD_YES;
    ipkey_from(&k, addr);
    pthread_mutex_lock(&g->lock);
    ok = ip_count(g, &k) < srv->cfg.per_ip_limit;
    if (!ok)
        guard_note(srv, HTTP_CUT_PER_IP, &k);
    pthread_mutex_unlock(&g->lock);
    return ok ? MHD_YES : MHD_NO;
}

/*
 * The connection that has waited longest for a request, other than c and reserve ones. No
 * minimum age: against a client that reopens what is closed as fast as it can, the newest
 * connections must be the safe ones, and a real client sends its request at once.
 */
static struct http_conn *
guard_victim(const struct http_guard *g, const struct http_conn *c)
{
    for (struct http_conn *v = g->head; v != NULL; v = v->next)
        if (v != c && !v->reserve)
            return v;
    return NULL;
}

/* The text of a client address ("?" when there is none). */
static void
addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
    union http_sockaddr a;

    out[0] = '?';
    out[1] = '\0';
    if (sa == NULL)
        return;
    memcpy(&a.sa, sa, sizeof(a.sa));
    if (a.sa.sa_family == AF_INET) {
        memcpy(&a.in4, sa, sizeof(a.in4));
        inet_ntop(AF_INET, &a.in4.sin_addr, out, (socklen_t)cap);
    } else if (a.sa.sa_family == AF_INET6) {
        memcpy(&a.in6, sa, sizeof(a.in6));
        inet_ntop(AF_INET6, &a.in6.sin6_addr, out, (socklen_t)cap);
    }
}

/* NOTIFY_CONNECTION STARTED: track, then the firm per-address check and the global limit. */
static void
guard_started(struct http_server *srv, struct MHD_Connection *conn, void **socket_ctx)
{
    struct http_guard *g = &srv->guard;
    const union MHD_ConnectionInfo *fd, *addr;
    struct http_conn *c, *victim;

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return; /* untracked: only MHD's own limits apply to it */
    fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    addr = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    c->fd = fd != NULL ? fd->connect_fd : -1;
    c->srv = srv;
    ipkey_from(&c->ip, addr != NULL ? addr->client_addr : NULL);
    addr_text(addr != NULL ? addr->client_addr : NULL, c->ip_text, sizeof(c->ip_text));
    pthread_mutex_lock(&g->lock);
    g->count++;
    guard_wait(g, c);
    /* two threads may both pass the accept policy for one address: this check is exact */
    if (ip_add(g, &c->ip) > srv->cfg.per_ip_limit && srv->cfg.per_ip_limit != 0) {
        guard_cut(srv, c, HTTP_CUT_PER_IP);
    } else if (g->count - g->cut > srv->cfg.max_connections) {
        /* (those already cut are leaving: one newcomer, one eviction) */
        victim = guard_victim(g, c);
        if (victim != NULL)
            guard_cut(srv, victim, HTTP_CUT_EVICTED);
        else
            c->reserve = true;
    }
    pthread_mutex_unlock(&g->lock);
    *socket_ctx = c;
}

/* NOTIFY_CONNECTION CLOSED: MHD closes the descriptor after this returns. */
static void
guard_closed(struct http_server *srv, void **socket_ctx)
{
    struct http_guard *g = &srv->guard;
    struct http_conn *c = *socket_ctx;

    if (c == NULL)
        return;
    pthread_mutex_lock(&g->lock);
    guard_unlink(g, c);
    g->count--;
    if (c->state == HTTP_CONN_CUT)
        g->cut--;
    ip_del(g, &c->ip);
    c->fd = -1;
    pthread_mutex_unlock(&g->lock);
    *socket_ctx = NULL;
    free(c);
}

/* Under the guard lock: cut what is past its time; returns when to look again. */
static uint64_t
guard_sweep(struct http_server *srv, uint64_t now)
{
    struct http_guard *g = &srv->guard;
    uint64_t idle = (uint64_t)srv->cfg.timeout_s * 1000u;
    uint64_t whole = (uint64_t)srv->cfg.request_timeout_s * 1000u;
    uint64_t first = idle < whole ? idle : whole, next = now + HTTP_GUARD_TICK_MS, at;
    struct http_conn *c = g->head, *after;

    for (; c != NULL; c = after) {
        after = c->next;
        if (c->ready_ms + first > now) {
            /* the list is in ready order: nothing after this one is due yet */
            at = c->ready_ms + first;
            if (at < next)
                next = at;
            break;
        }
        if (c->ready_ms + whole <= now)
            guard_cut(srv, c, HTTP_CUT_DEADLINE);
        else if (c->state == HTTP_CONN_WAITING && c->ready_ms + idle <= now)
            guard_cut(srv, c, HTTP_CUT_IDLE);
        else if (c->ready_ms + whole < next)
            next = c->ready_ms + whole;
    }
    for (int r = 0; r < HTTP_CUTS; r++)
        if (g->pending[r] > 0 && now - g->logged_ms[r] >= HTTP_GUARD_LOG_MS)
            guard_log(srv, (enum http_cut)r, now);
    return next;
}

static void *
guard_main(void *arg)
{
    struct http_server *srv = arg;
    struct http_guard *g = &srv->guard;
    uint64_t now, next;

    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        now = mono_ms();
        next = guard_sweep(srv, now);
        if (next > now) {
            /* on the monotonic clock (guard_init): a step of the wall clock cannot stall it */
            struct timespec until = {(time_t)(next / 1000), (long)(next % 1000) * 1000000L};

            pthread_cond_timedwait(&g->wake, &g->lock, &until);
        }
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

static int
guard_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc;

    if (pthread_condattr_init(&attr) != 0)
        return -1;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

/* Listeners to be started: each has MHD's connection limit of its own. */
static unsigned
http_listeners(const struct http_server *srv)
{
    unsigned n = 0;

    for (int i = 0; i < HTTP_LSNS; i++)
        n += srv->lsn[i].on;
    return n > 0 ? n : 1;
}

/* The address table holds every address with a connection: at most MHD's limits of them.
 * Sized again (nothing in it yet) when the HTTPS listener is added. */
static int
guard_init(struct http_server *srv)
{
    struct http_guard *g = &srv->guard;
    size_t want = 2 * http_listeners(srv) *
                  ((size_t)srv->cfg.max_connections + HTTP_RESERVE_CONNECTIONS),
           n = 64;

    while (n < want)
        n *= 2;
    free(g->ips);
    g->ips = calloc(n, sizeof(*g->ips));
    if (g->ips == NULL)
        return ST_NOMEM;
    g->ipmask = n - 1;
    if (getrandom(&g->seed, sizeof(g->seed), 0) != (ssize_t)sizeof(g->seed))
        g->seed = mono_ms() ^ (uint64_t)(uintptr_t)g;
    return ST_OK;
}

/*
 * Every connection is a descriptor: raise the soft open-file limit to what max_connections and
 * the reserve need (the hard limit permitting; no select() in the process, so descriptors past
 * 1024 are fine). Short of it, accept() fails and connections wait in the kernel's queue.
 */
static void
guard_fd_limit(const struct http_server *srv)
{
    struct rlimit rl;
    rlim_t need =
        (rlim_t)http_listeners(srv) * (srv->cfg.max_connections + HTTP_RESERVE_CONNECTIONS) +
        HTTP_FD_SPARE;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < need)
        log_warn("http: open-file limit %llu is below max_connections + %u (reserve) + %u; "
                 "raise it (LimitNOFILE=) or lower max_connections",
                 (unsigned long long)rl.rlim_cur, HTTP_RESERVE_CONNECTIONS, HTTP_FD_SPARE);
}

static int
guard_start(struct http_server *srv)
{
    struct http_guard *g = &srv->guard;

    g->stop = false;
    guard_fd_limit(srv);
    if (pthread_create(&g->thread, NULL, guard_main, srv) != 0) {
        log_err("http: cannot start the connection guard thread");
        return ST_IO;
    }
    g->thread_up = true;
    return ST_OK;
}

static void
guard_stop(struct http_server *srv)
{
    struct http_guard *g = &srv->guard;

    if (!g->thread_up)
        return;
    pthread_mutex_lock(&g->lock);
    g->stop = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    g->thread_up = false;
}

/* ---- request life cycle ---- */

static void
req_unref(struct http_request *req)
{
    if (atomic_fetch_sub_explicit(&req->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (req->resp_owned && req->resp != NULL)
        MHD_destroy_response(req->resp);
    http_canned_unref(req->canned);
    free(req->body);
    free(req);
}

/* The request's client address as text: its connection's, formatted once when it started
 * (inet_ntop and its sprintf were 3 % of a front-cache hit's CPU when done per request). */
static void
req_client_ip(struct http_request *req)
{
    const union MHD_ConnectionInfo *ci;

    if (req->cn != NULL) {
        memcpy(req->client_ip, req->cn->ip_text, sizeof(req->client_ip));
        return;
    }
    ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    addr_text(ci != NULL ? ci->client_addr : NULL, req->client_ip, sizeof(req->client_ip));
}

static bool
http_conn_is_tls(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci;

    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    return ci != NULL && ci->tls_session != NULL;
}

/* The query arguments libmicrohttpd makes of a query string: one per '&'-separated part. */
static size_t
query_args(const char *q)
{
    size_t n = 1;

    for (; *q != '\0'; q++)
        n += *q == '&';
    return n;
}

/* MHD_OPTION_URI_LOG_CALLBACK: the raw request-target, before MHD unescapes it. */
static void *
http_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct http_server *srv = cls;
    struct http_request *req;
    size_t len = strlen(uri);
    char *q;

    req = malloc(sizeof(*req) + len + 1);
    if (req == NULL) {
        log_err("http: out of memory for a request");
        return NULL;
    }
    /* the header space and the fields after it are set below or on use */
    memset(req, 0, offsetof(struct http_request, hdr));
    req->srv = srv;
    req->conn = conn;
    atomic_init(&req->refs, 1);
    req->id = atomic_fetch_add_explicit(&http_next_id, 1, memory_order_relaxed) + 1;
    clock_gettime(CLOCK_MONOTONIC, &req->t0);
    memcpy(req->uri, uri, len + 1);
    req->uri_len = len;
    req->path_len = len;
    req->has_query = false;
    q = memchr(req->uri, '?', len);
    if (q != NULL) {
        *q = '\0';
        req->path_len = (size_t)(q - req->uri);
        req->has_query = true;
    }
    req->tls = http_conn_is_tls(conn);
    req->cn = guard_of(conn);
    req_client_ip(req);
    if (req->cn != NULL) {
        pthread_mutex_lock(&srv->guard.lock);
        if (req->cn->state == HTTP_CONN_WAITING) {
            /* the request's own deadline runs from its request line, not from when the
             * connection became ready: a kept-alive client silent for a while (under the
             * idle timeout) still has request_timeout for its next request (back of the
             * list, which stays in ready order) */
            guard_wait(&srv->guard, req->cn);
            req->cn->state = HTTP_CONN_RECEIVING;
        }
        /* libmicrohttpd keeps a record of each query argument in the connection's pool,
         * before any handler and beyond the reach of req_begin's 431: far too many of them
         * left it stalled without a reply until the timeout (review helper-42) */
        if (req->has_query && query_args(req->uri + req->path_len + 1) > HTTP_HEADER_LINES &&
            req->cn->state == HTTP_CONN_RECEIVING)
            guard_cut(srv, req->cn, HTTP_CUT_QUERY);
        pthread_mutex_unlock(&srv->guard.lock);
    }
    atomic_fetch_add(&srv->active, 1);
    return req;
}

/* MHD_OPTION_NOTIFY_COMPLETED: MHD is done with the request; drop its reference. */
static void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
               enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct http_request *req = *con_cls;
    struct http_conn *c = guard_of(conn);

    if (c != NULL) {
        /* answered or ended: the connection waits for its next request (or closes) */
        pthread_mutex_lock(&srv->guard.lock);
        if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
            guard_note(srv, HTTP_CUT_IDLE, &c->ip);
        if (c->state != HTTP_CONN_CUT)
            guard_wait(&srv->guard, c);
        pthread_mutex_unlock(&srv->guard.lock);
    }
    *con_cls = NULL;
    if (req == NULL)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        log_req(LOG_LVL_DEBUG, req->id, "http: request ended early (code %d)", (int)toe);
    atomic_fetch_sub(&srv->active, 1);
    req_unref(req);
}

static void
http_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                 enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *srv = cls;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        metrics_inc(srv->m.connections);
        guard_started(srv, conn, socket_ctx);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        metrics_dec(srv->m.connections);
        guard_closed(srv, socket_ctx);
    }
}

/* ---- responses ---- */

static bool
is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
header_valid(const char *name, const char *value)
{
    if (name == NULL || value == NULL || name[0] == '\0')
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (!is_token_char(*p))
            return false;
    return strpbrk(value, "\r\n") == NULL;
}

static void
resp_header(struct MHD_Response *resp, const char *name, const char *value)
{
    if (MHD_add_response_header(resp, name, value) != MHD_YES)
        log_err("http: libmicrohttpd refused response header %s", name);
}

/* Add the "name\0value\0" pairs of a header block. */
static void
resp_header_block(struct MHD_Response *resp, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *value = p + strlen(p) + 1;

        resp_header(resp, p, value);
        p = value + strlen(value) + 1;
    }
}

/* A response for body (copied, or taken when take), with Content-Type and req's headers. */
static struct MHD_Response *
resp_build(const struct http_request *req, const char *ctype, const void *body, size_t len,
           bool take)
{
    static char empty[1];
    struct MHD_Response *resp;

    if (len == 0) {
        if (take)
            free((void *)body);
        resp = MHD_create_response_from_buffer(0, empty, MHD_RESPMEM_PERSISTENT);
    } else if (take) {
        resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_FREE);
        if (resp == NULL)
            free((void *)body);
    } else {
        resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    }
    if (resp == NULL)
        return NULL;
    if (ctype != NULL)
        resp_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    resp_header_block(resp, req->hdr, req->nhdr);
    return resp;
}

/* A short text/plain error body, not cacheable (LW-04). text is a string literal. */
static struct MHD_Response *
resp_error(const char *text, const char *allow, bool close)
{
    struct MHD_Response *resp;

    resp = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return NULL;
    resp_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
    resp_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    if (allow != NULL)
        resp_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (close)
        resp_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    return resp;
}

/* Record one of the shared answers (500/503), not owned by the request. */
static void
req_store_shared(struct http_request *req, struct MHD_Response *resp, unsigned status)
{
    req->replied = true;
    req->resp_owned = false;
    req->resp = resp;
    req->canned = NULL;
    req->status = status;
    req->resp_len = 0;
}

/*
 * Record the answer; a NULL resp (could not be built) becomes the shared 500. resp is the
 * request's to destroy, or, with canned, canned's response with the reference the request
 * now holds.
 */
static void
req_store(struct http_request *req, struct MHD_Response *resp, unsigned status, size_t len,
          struct http_canned *canned)
{
    if (resp == NULL) {
        req_store_shared(req, req->srv->resp_500, MHD_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }
    req->replied = true;
    req->resp_owned = canned == NULL;
    req->canned = canned;
    req->resp = resp;
    req->status = status;
    req->resp_len = len;
}

static void
req_account(const struct http_request *req)
{
    const struct http_metrics *m = &req->srv->m;
    struct timespec now;
    unsigned cls = req->status / 100;

    if (cls >= 1 && cls <= HTTP_CLASSES)
        metrics_inc(m->requests[cls - 1]);
    metrics_add(m->bytes_out, (double)req->resp_len);
    clock_gettime(CLOCK_MONOTONIC, &now);
    metrics_observe(m->duration, (double)(now.tv_sec - req->t0.tv_sec) +
                                     (double)(now.tv_nsec - req->t0.tv_nsec) / 1e9);
}

/* Queue the stored answer; only ever called from the access handler. */
static enum MHD_Result
req_queue(struct http_request *req)
{
    enum MHD_Result ret;

    req->stage = HTTP_STAGE_DONE;
    guard_busy(req->srv, req->cn);
    ret = MHD_queue_response(req->conn, req->status, req->resp);
    if (ret != MHD_YES)
        log_req(LOG_LVL_DEBUG, req->id, "http: could not queue the response");
    log_req(LOG_LVL_DEBUG, req->id, "http: %s %s from %s -> %u", req->method, req->uri,
            req->client_ip, req->status);
    req_account(req);
    if (req->resp_owned)
        MHD_destroy_response(req->resp);
    /* MHD holds its own reference to the queued response until it has been sent */
    http_canned_unref(req->canned);
    req->canned = NULL;
    req->resp = NULL;
    req->resp_owned = false;
    return ret;
}

static enum MHD_Result
req_reject(struct http_request *req, unsigned status, const char *text, const char *allow,
           struct metric *counter)
{
    log_req(LOG_LVL_DEBUG, req->id, "http: %s %s from %s refused: %u", req->method, req->uri,
            req->client_ip, status);
    metrics_inc(counter);
    req_store(req, resp_error(text, allow, false), status, strlen(text), NULL);
    return req_queue(req);
}

/* ---- routing and the built-in checks ---- */

static bool
route_path_matches(const struct http_route_ent *r, const struct http_request *req)
{
    if (r->prefix)
        return req->path_len >= r->path_len && memcmp(req->uri, r->path, r->path_len) == 0;
    return req->path_len == r->path_len && memcmp(req->uri, r->path, r->path_len) == 0;
}

static bool
route_method_matches(const struct http_route_ent *r, const char *method)
{
    return strcmp(r->method, method) == 0 ||
           (strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 && strcmp(r->method, "GET") == 0);
}

static void
allow_add(char *allow, size_t cap, const char *method)
{
    size_t used = strlen(allow);

    if (strstr(allow, method) != NULL)
        return;
    snprintf(allow + used, cap - used, "%s%s", used > 0 ? ", " : "", method);
    if (strcmp(method, "GET") == 0)
        allow_add(allow, cap, MHD_HTTP_METHOD_HEAD);
}

/* The route for the request; NULL with *allow non-empty when only the method is wrong. */
static const struct http_route_ent *
route_find(const struct http_server *srv, const struct http_request *req, char *allow, size_t cap)
{
    allow[0] = '\0';
    for (size_t i = 0; i < srv->nroutes; i++)
        if (route_path_matches(&srv->routes[i], req) &&
            route_method_matches(&srv->routes[i], req->method))
            return &srv->routes[i];
    /* none: the Allow list is built only now (its snprintf was 2 % of a GET hit's CPU) */
    for (size_t i = 0; i < srv->nroutes; i++)
        if (route_path_matches(&srv->routes[i], req))
            allow_add(allow, cap, srv->routes[i].method);
    return NULL;
}

/* Media type of the request equals the route's, ignoring case and parameters. */
static bool
ctype_ok(const struct http_request *req)
{
    const char *want = req->route->ctype, *got;
    size_t n = 0;

    if (want == NULL || strcmp(req->method, MHD_HTTP_METHOD_POST) != 0)
        return true;
    got = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (got == NULL)
        return false;
    got += strspn(got, " \t");
    while (got[n] != '\0' && got[n] != ';' && got[n] != ' ' && got[n] != '\t')
        n++;
    return n == strlen(want) && strncasecmp(got, want, n) == 0;
}

/* What one walk of the request's header records finds for req_begin's checks. */
struct hdr_scan {
    unsigned records;  /* header lines, parsed cookies and query arguments */
    size_t cookie_len; /* the first Cookie header's value (libmicrohttpd copies it again) */
    bool cookie_seen;
    unsigned lengths;  /* Content-Length headers */
    bool differ;       /* two of them differ */
    bool malformed;    /* one that is not a number */
    bool chunked;      /* a Transfer-Encoding */
    bool spaced;       /* a field name with whitespace before its colon */
    const char *first; /* the first Content-Length's value */
    size_t first_len;
};

/* A Content-Length value is digits (trailing blanks aside; libmicrohttpd drops the leading
 * ones of a value on one line): a folded line (obs-fold) that libmicrohttpd joined into it, or
 * one that left it empty or began it with a blank, framed nothing for libmicrohttpd while a
 * proxy that unfolds it frames the body (review helper-44). */
static bool
length_digits(const char *v, size_t n)
{
    size_t i = 0, digits = 0;

    while (i < n && v[i] >= '0' && v[i] <= '9') {
        i++;
        digits++;
    }
    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    return i == n && digits > 0 && digits <= 19;
}

static enum MHD_Result
hdr_scan_one(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
             const char *value, size_t value_size)
{
    struct hdr_scan *h = cls;

    h->records++;
    if (kind != MHD_HEADER_KIND)
        return MHD_YES;
    /* RFC 9112 §5.1: whitespace between a field name and its colon is refused (libmicrohttpd
     * keeps it in the name, so "Content-Length : 4" framed nothing; review helper-43) */
    if (key_size > 0 && (key[key_size - 1] == ' ' || key[key_size - 1] == '\t'))
        h->spaced = true;
    if (key_size == 6 && !h->cookie_seen && strncasecmp(key, MHD_HTTP_HEADER_COOKIE, 6) == 0) {
        h->cookie_seen = true;
        h->cookie_len = value_size;
    }
    if (key_size == 17 && strncasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING, 17) == 0)
        h->chunked = true;
    if (key_size != 14 || strncasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH, 14) != 0)
        return MHD_YES;
    if (!length_digits(value, value_size))
        h->malformed = true;
    if (h->lengths++ == 0) {
        h->first = value;
        h->first_len = value_size;
    } else if (value_size != h->first_len || memcmp(value, h->first, value_size) != 0) {
        h->differ = true;
    }
    return MHD_YES;
}

/* The headers within HTTP_HEADER_ROOM bytes as sent (libmicrohttpd's header size, whitespace
 * and all, less the request line: counting names and values only missed the spaces before a
 * value, which take pool space too; review helper-42), a Cookie header's value twice (review
 * helper-43), and HTTP_HEADER_LINES records. */
static bool
headers_fit(const struct http_request *req, const struct hdr_scan *h)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    /* "METHOD URI HTTP/1.x" CRLF, and the CRLF of the empty line */
    size_t line = strlen(req->method) + 1 + req->uri_len + 1 + 8 + 2 + 2;

    return ci != NULL && ci->header_size + h->cookie_len <= line + HTTP_HEADER_ROOM &&
           h->records <= HTTP_HEADER_LINES;
}

/* One message length (RFC 9112 §6.3): Content-Lengths that differ, one that is not a number,
 * one beside a Transfer-Encoding, or a field name with whitespace before its colon (§5.1), are
 * refused: libmicrohttpd took the first length, or none, and a proxy before us might take
 * another (request smuggling; reviews helper-42, -43). */
static bool
framing_ok(const struct hdr_scan *h)
{
    return !h->differ && !h->spaced && !h->malformed && !(h->chunked && h->lengths > 0);
}

/* A POST says how long its body is: without Content-Length or Transfer-Encoding its body is
 * empty to libmicrohttpd, and what follows on the connection is read as the next request;
 * a Content-Length folded onto a second line (obs-fold) left none (review helper-44). */
static bool
length_given(const struct http_request *req, const struct hdr_scan *h)
{
    return strcmp(req->method, MHD_HTTP_METHOD_POST) != 0 || h->lengths > 0 || h->chunked;
}

/* Content-Length within max_body; reserves the body buffer when the length is known. */
static bool
length_ok(struct http_request *req)
{
    const char *cl;
    unsigned long long n;
    char *end;

    cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl == NULL)
        return true;
    errno = 0;
    n = strtoull(cl, &end, 10);
    if (errno != 0 || end == cl)
        return errno != ERANGE; /* MHD itself rejects malformed lengths */
    if (n > req->srv->cfg.max_body)
        return false;
    if (n > 0 && (req->body = malloc((size_t)n)) != NULL)
        req->body_cap = (size_t)n;
    return true;
}

/*
 * A connection accepted past max_connections (the reserve): health and metrics are
 * answered, anything else gets 503 with Retry-After; both close the connection so that the
 * reserve frees at once.
 */
static void builtin_health(struct http_request *req, void *ctx);
static void builtin_metrics(struct http_request *req, void *ctx);

static bool
req_reserve_ok(struct http_request *req)
{
    if (req->route->fn != builtin_health && req->route->fn != builtin_metrics)
        return false;
    http_reply_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
    return true;
}

static enum MHD_Result
req_reserve_refuse(struct http_request *req)
{
    struct http_server *srv = req->srv;
    struct MHD_Response *resp;
    static const char text[] = "server busy, retry later\n";

    pthread_mutex_lock(&srv->guard.lock);
    guard_note(srv, HTTP_CUT_LIMIT, &req->cn->ip);
    pthread_mutex_unlock(&srv->guard.lock);
    resp = resp_error(text, NULL, true);
    if (resp != NULL)
        resp_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    req_store(req, resp, MHD_HTTP_SERVICE_UNAVAILABLE, sizeof(text) - 1, NULL);
    return req_queue(req);
}

/* First call, headers in: 503, 414, 431, 400, 411, 404, 405, 415, 413, in that order. */
static enum MHD_Result
req_begin(struct http_request *req, const char *method, const char *version)
{
    struct http_server *srv = req->srv;
    const struct http_metrics *m = &srv->m;
    char allow[HTTP_ALLOW_MAX];
    struct hdr_scan hs = {0};
    size_t n;

    /* (a bounded copy: snprintf was 0.8 % of a front-cache hit's CPU) */
    n = strnlen(method, sizeof(req->method) - 1);
    memcpy(req->method, method, n);
    req->method[n] = '\0';
    req->version = strcmp(version, MHD_HTTP_VERSION_1_0) == 0 ? "HTTP/1.0" : "HTTP/1.1";
    if (atomic_load(&srv->stopping)) {
        req_store_shared(req, srv->resp_503, MHD_HTTP_SERVICE_UNAVAILABLE);
        return req_queue(req);
    }
    if (req->uri_len > srv->cfg.max_url)
        return req_reject(req, MHD_HTTP_URI_TOO_LONG, "URI too long\n", NULL, m->rej_414);
    /* one walk of the header records for the next three checks */
    (void)MHD_get_connection_values_n(
        req->conn, MHD_HEADER_KIND | MHD_COOKIE_KIND | MHD_GET_ARGUMENT_KIND, &hdr_scan_one, &hs);
    if (!headers_fit(req, &hs))
        return req_reject(req, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                          "request header fields too large\n", NULL, m->rej_431);
    if (!framing_ok(&hs))
        return req_reject(req, MHD_HTTP_BAD_REQUEST, "conflicting message length\n", NULL,
                          m->rej_400);
    if (!length_given(req, &hs))
        return req_reject(req, MHD_HTTP_LENGTH_REQUIRED, "Content-Length required\n", NULL,
                          m->rej_411);
    req->route = route_find(srv, req, allow, sizeof(allow));
    if (req->route == NULL && allow[0] == '\0')
        return req_reject(req, MHD_HTTP_NOT_FOUND, "not found\n", NULL, m->rej_404);
    if (req->route == NULL)
        return req_reject(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", allow,
                          m->rej_405);
    if (req->cn != NULL && req->cn->reserve && !req_reserve_ok(req))
        return req_reserve_refuse(req);
    if (!ctype_ok(req))
        return req_reject(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported media type\n", NULL,
                          m->rej_415);
    if (!length_ok(req))
        return req_reject(req, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n", NULL,
                          m->rej_413);
    req->stage = HTTP_STAGE_BODY;
    return MHD_YES;
}

/*
 * Append body bytes. MHD cannot queue a response while it is delivering upload data, so a
 * body that grows past max_body (chunked, no Content-Length to judge it by) is cut by
 * closing the connection.
 */
static enum MHD_Result
req_body(struct http_request *req, const char *data, size_t *size)
{
    size_t n = *size, max = req->srv->cfg.max_body, cap;
    unsigned char *grown;

    *size = 0;
    metrics_add(req->srv->m.bytes_in, (double)n);
    if (n > max - req->body_len) {
        log_req(LOG_LVL_DEBUG, req->id, "http: body from %s over %zu bytes, connection cut",
                req->client_ip, max);
        metrics_inc(req->srv->m.rej_413);
        req->stage = HTTP_STAGE_DONE;
        return MHD_NO;
    }
    if (n > req->body_cap - req->body_len) {
        cap = req->body_cap > HTTP_BODY_MIN / 2 ? req->body_cap * 2 : HTTP_BODY_MIN;
        if (cap < req->body_len + n)
            cap = req->body_len + n;
        if (cap > max)
            cap = max;
        grown = realloc(req->body, cap);
        if (grown == NULL) {
            log_req(LOG_LVL_ERR, req->id, "http: out of memory for a %zu byte body", cap);
            req->stage = HTTP_STAGE_DONE;
            return MHD_NO;
        }
        req->body = grown;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    return MHD_YES;
}

/* ---- suspend / resume ---- */

static void
park_add(struct http_server *srv, struct http_request *req)
{
    req->prev = NULL;
    req->next = srv->parked;
    if (srv->parked != NULL)
        srv->parked->prev = req;
    srv->parked = req;
    req->suspended = true;
    metrics_inc(srv->m.suspended);
}

/* Under srv->lock: take req off the suspended list and let MHD resume it. */
static void
park_release(struct http_server *srv, struct http_request *req)
{
    if (req->prev != NULL)
        req->prev->next = req->next;
    else
        srv->parked = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
    req->suspended = false;
    metrics_dec(srv->m.suspended);
    MHD_resume_connection(req->conn);
}

/* The handler returned after http_req_suspend(): queue now or suspend until the reply. */
static enum MHD_Result
req_park(struct http_request *req)
{
    struct http_server *srv = req->srv;
    bool ready;

    pthread_mutex_lock(&srv->lock);
    ready = req->replied;
    if (!ready && atomic_load(&srv->stopping)) {
        req_store_shared(req, srv->resp_503, MHD_HTTP_SERVICE_UNAVAILABLE);
        ready = true;
    }
    if (!ready) {
        req->stage = HTTP_STAGE_WAIT;
        MHD_suspend_connection(req->conn);
        park_add(srv, req);
    }
    pthread_mutex_unlock(&srv->lock);
    /* not ready: from here on req may be resumed by another thread; do not touch it */
    return ready ? req_queue(req) : MHD_YES;
}

static enum MHD_Result
req_dispatch(struct http_request *req)
{
    const struct http_route_ent *r = req->route;

    guard_busy(req->srv, req->cn);
    req->in_handler = true;
    r->fn(req, r->ctx);
    req->in_handler = false;
    if (req->async)
        return req_park(req);
    if (!req->replied) {
        log_req(LOG_LVL_ERR, req->id, "http: handler for %s %s gave no reply", req->method,
                r->path);
        req_store(req, NULL, 0, 0, NULL);
    }
    return req_queue(req);
}

/* Resumed after http_reply(): the answer is stored; the lock orders us after it. */
static enum MHD_Result
req_resumed(struct http_request *req)
{
    bool ready;

    pthread_mutex_lock(&req->srv->lock);
    ready = req->replied;
    pthread_mutex_unlock(&req->srv->lock);
    return ready ? req_queue(req) : MHD_YES;
}

/* Liveness (common/live): each MHD thread owns a beat, busy while our code runs on it; the
 * slot is given back when the thread ends. */
static pthread_key_t http_beat_key;
static pthread_once_t http_beat_once = PTHREAD_ONCE_INIT;

static void
http_beat_release(void *beat)
{
    live_beat_free(beat);
}

static void
http_beat_init(void)
{
    pthread_key_create(&http_beat_key, http_beat_release);
}

static struct live_beat *
http_beat(void)
{
    struct live_beat *b;

    pthread_once(&http_beat_once, http_beat_init);
    b = pthread_getspecific(http_beat_key);
    if (b == NULL && (b = live_beat_new("http")) != NULL)
        pthread_setspecific(http_beat_key, b);
    return b;
}

static enum MHD_Result
http_access_run(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct http_request *req = *con_cls;

    (void)url; /* unescaped by MHD; the raw form came through http_uri_log */
    if (req == NULL) {
        /* the request could not be allocated */
        if (upload_data != NULL || *upload_size != 0)
            return MHD_NO;
        return MHD_queue_response(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, srv->resp_500);
    }
    switch (req->stage) {
    case HTTP_STAGE_NEW:
        return req_begin(req, method, version);
    case HTTP_STAGE_BODY:
        if (*upload_size != 0)
            return req_body(req, upload_data, upload_size);
        return req_dispatch(req);
    case HTTP_STAGE_WAIT:
        return req_resumed(req);
    case HTTP_STAGE_DONE:
        break;
    }
    *upload_size = 0;
    return MHD_NO;
}

static enum MHD_Result
http_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
            const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct live_beat *b = http_beat();
    enum MHD_Result r;

    live_busy(b);
    r = http_access_run(cls, conn, url, method, version, upload_data, upload_size, con_cls);
    live_idle(b);
    return r;
}

/* ---- public request API ---- */

const char *
http_req_method(const struct http_request *req)
{
    return req->method;
}

const char *
http_req_path(const struct http_request *req)
{
    return req->uri;
}

const char *
http_req_subpath(const struct http_request *req)
{
    return req->route != NULL ? req->uri + req->route->path_len : req->uri + req->path_len;
}

const char *
http_req_query(const struct http_request *req)
{
    return req->has_query ? req->uri + req->path_len + 1 : NULL;
}

const char *
http_req_header(const struct http_request *req, const char *name)
{
    if (!req->in_handler || name == NULL)
        return NULL;
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const unsigned char *
http_req_body(const struct http_request *req, size_t *len)
{
    *len = req->body_len;
    return req->body_len > 0 ? req->body : NULL;
}

const char *
http_req_client_ip(const struct http_request *req)
{
    return req->client_ip;
}

uint64_t
http_req_id(const struct http_request *req)
{
    return req->id;
}

const char *
http_req_version(const struct http_request *req)
{
    return req->version;
}

bool
http_req_tls(const struct http_request *req)
{
    return req->tls;
}

void
http_req_suspend(struct http_request *req)
{
    if (req == NULL || req->async || req->replied)
        return;
    req->async = true;
    atomic_fetch_add(&req->refs, 1);
    atomic_fetch_add(&req->srv->pending, 1);
}

int
http_reply_header(struct http_request *req, const char *name, const char *value)
{
    size_t nl, vl;

    /* after suspend, only app_done is the owner's to read: stop may set replied */
    if (req == NULL || (req->async ? req->app_done : req->replied) || !header_valid(name, value))
        return ST_INVALID;
    nl = strlen(name) + 1;
    vl = strlen(value) + 1;
    if (nl + vl > sizeof(req->hdr) - req->hdr_used)
        return ST_NOMEM;
    memcpy(req->hdr + req->hdr_used, name, nl);
    memcpy(req->hdr + req->hdr_used + nl, value, vl);
    req->hdr_used += nl + vl;
    req->nhdr++;
    return ST_OK;
}

/* An answer not used after all: the request's own response, or a canned reference. */
static void
resp_drop(struct MHD_Response *resp, struct http_canned *canned)
{
    if (canned != NULL)
        http_canned_unref(canned);
    else if (resp != NULL)
        MHD_destroy_response(resp);
}

/* Async reply: store and resume under the lock, unless the stop path answered already. */
static void
reply_async(struct http_request *req, struct MHD_Response *resp, unsigned status, size_t len,
            struct http_canned *canned)
{
    struct http_server *srv = req->srv;
    bool unused = false;

    pthread_mutex_lock(&srv->lock);
    if (req->replied) {
        unused = true; /* answered 503 by http_server_stop() */
    } else {
        req_store(req, resp, status, len, canned);
        if (req->suspended)
            park_release(srv, req);
    }
    atomic_fetch_sub(&srv->pending, 1);
    pthread_mutex_unlock(&srv->lock);
    if (unused)
        resp_drop(resp, canned);
    req_unref(req);
}

/* Store the answer (see req_store for resp and canned); it is consumed in every case. */
static int
reply_common(struct http_request *req, unsigned status, struct MHD_Response *resp, size_t len,
             struct http_canned *canned)
{
    int st = resp != NULL ? ST_OK : ST_NOMEM;

    if (status < 200 || status > 599) {
        log_req(LOG_LVL_ERR, req->id, "http: invalid status %u, answering 500", status);
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (resp == NULL)
        log_req(LOG_LVL_ERR, req->id, "http: could not build the reply, answering 500");
    if (req->async && !req->app_done) {
        req->app_done = true;
        reply_async(req, resp, status, len, canned);
        return st;
    }
    if (req->replied) {
        log_req(LOG_LVL_ERR, req->id, "http: second reply to one request ignored");
        resp_drop(resp, canned);
        return ST_INVALID;
    }
    req_store(req, resp, status, len, canned);
    return st;
}

int
http_reply(struct http_request *req, unsigned status, const char *content_type, const void *body,
           size_t len)
{
    if (req == NULL)
        return ST_INVALID;
    if (body == NULL)
        len = 0;
    return reply_common(req, status, resp_build(req, content_type, body, len, false), len, NULL);
}

int
http_reply_take(struct http_request *req, unsigned status, const char *content_type, void *body,
                size_t len)
{
    if (req == NULL) {
        free(body);
        return ST_INVALID;
    }
    if (body == NULL)
        len = 0;
    return reply_common(req, status, resp_build(req, content_type, body, len, true), len, NULL);
}

/* ---- replies from parts, not copied; canned replies ---- */

/* parts as MHD's iovec, and the body's length; false when they are refused. */
static bool
parts_iov(const struct http_part *parts, size_t n, struct MHD_IoVec *iov, size_t *len)
{
    *len = 0;
    if (n > HTTP_PARTS_MAX || (n > 0 && parts == NULL))
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((parts[i].len > 0 && parts[i].base == NULL) || parts[i].len > (size_t)SSIZE_MAX - *len)
            return false;
        iov[i].iov_base = parts[i].base;
        iov[i].iov_len = parts[i].len;
        *len += parts[i].len;
    }
    return true;
}

/* A response over the parts: one part goes out as a buffer response, since libmicrohttpd
 * (0.9.75) sends a buffer body with the header in one sendmsg() but an iovec body in a second
 * call after the header, a second TCP segment each time (measured: issue 10 item 2). */
static struct MHD_Response *
resp_of_iov(const struct MHD_IoVec *iov, unsigned n, MHD_ContentReaderFreeCallback done, void *cls)
{
    if (n == 1)
        return MHD_create_response_from_buffer_with_free_callback_cls(
            iov[0].iov_len, (void *)iov[0].iov_base, done, cls);
    return MHD_create_response_from_iovec(iov, n, done, cls);
}

int
http_reply_parts(struct http_request *req, unsigned status, const char *content_type,
                 const struct http_part *parts, size_t n, http_release_fn release, void *arg)
{
    struct MHD_IoVec iov[HTTP_PARTS_MAX];
    struct MHD_Response *resp = NULL;
    size_t len;
    bool ok = parts_iov(parts, n, iov, &len);

    if (ok && req != NULL)
        resp = resp_of_iov(iov, (unsigned)n, release, arg);
    /* from here on MHD's free callback releases the parts (MHD_destroy_response) */
    if (resp == NULL && release != NULL)
        release(arg);
    if (req == NULL)
        return ST_INVALID;
    if (!ok) {
        log_req(LOG_LVL_ERR, req->id, "http: reply body of %zu parts refused", n);
        reply_common(req, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, 0, NULL);
        return ST_INVALID;
    }
    if (resp != NULL) {
        if (content_type != NULL)
            resp_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        resp_header_block(resp, req->hdr, req->nhdr);
    }
    return reply_common(req, status, resp, len, NULL);
}

/* MHD's free callback of every response over c's parts. */
static void
canned_body_done(void *cls)
{
    struct http_canned *c = cls;

    if (atomic_fetch_sub_explicit(&c->bodies, 1, memory_order_acq_rel) != 1)
        return;
    if (c->release != NULL)
        c->release(c->release_arg);
    free(c);
}

/* The spec's status and headers are acceptable; *space: bytes to copy its strings. */
static bool
canned_spec_ok(const struct http_canned_spec *spec, size_t *space)
{
    *space = 0;
    if (spec->status < 200 || spec->status > 599 || spec->nheaders > HTTP_CANNED_HEADERS ||
        (spec->nheaders > 0 && spec->headers == NULL))
        return false;
    if (spec->content_type != NULL) {
        if (strpbrk(spec->content_type, "\r\n") != NULL)
            return false;
        *space += strlen(spec->content_type) + 1;
    }
    for (size_t i = 0; i < spec->nheaders; i++) {
        const struct http_header *h = &spec->headers[i];

        if (!header_valid(h->name, h->value))
            return false;
        *space += strlen(h->name) + 1 + strlen(h->value) + 1;
    }
    return true;
}

/* Copy the spec's Content-Type and headers into c->hdr (sized by canned_spec_ok). */
static void
canned_copy_headers(struct http_canned *c, const struct http_canned_spec *spec)
{
    char *p = c->hdr;
    size_t n;

    c->has_ctype = spec->content_type != NULL;
    if (c->has_ctype) {
        n = strlen(spec->content_type) + 1;
        memcpy(p, spec->content_type, n);
        p += n;
    }
    c->nhdr = spec->nheaders;
    for (size_t i = 0; i < spec->nheaders; i++) {
        n = strlen(spec->headers[i].name) + 1;
        memcpy(p, spec->headers[i].name, n);
        p += n;
        n = strlen(spec->headers[i].value) + 1;
        memcpy(p, spec->headers[i].value, n);
        p += n;
    }
}

static bool
canned_header(struct MHD_Response *resp, const char *name, const char *value)
{
    if (MHD_add_response_header(resp, name, value) == MHD_YES)
        return true;
    log_err("http: libmicrohttpd refused response header %s", name);
    return false;
}

/* Add c's Content-Type and headers to resp; false (logged) when MHD refuses one. */
static bool
canned_headers(const struct http_canned *c, struct MHD_Response *resp)
{
    const char *p = c->hdr, *value;

    if (c->has_ctype) {
        if (!canned_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, p))
            return false;
        p += strlen(p) + 1;
    }
    for (size_t i = 0; i < c->nhdr; i++) {
        value = p + strlen(p) + 1;
        if (!canned_header(resp, p, value))
            return false;
        p = value + strlen(value) + 1;
    }
    return true;
}

struct http_canned *
http_canned_new(const struct http_canned_spec *spec)
{
    struct http_canned *c;
    struct MHD_IoVec iov[HTTP_PARTS_MAX];
    size_t space, len;

    if (spec == NULL || !canned_spec_ok(spec, &space) ||
        !parts_iov(spec->parts, spec->nparts, iov, &len)) {
        log_err("http: canned reply refused (status, parts or headers)");
        return NULL;
    }
    c = malloc(sizeof(*c) + space);
    if (c == NULL) {
        log_err("http: out of memory for a canned reply");
        return NULL;
    }
    atomic_init(&c->refs, 1);
    atomic_init(&c->bodies, 1); /* c->resp's */
    c->status = spec->status;
    c->len = len;
    c->nparts = (unsigned)spec->nparts;
    memcpy(c->iov, iov, sizeof(iov));
    c->release = NULL; /* until it is built: on failure the parts stay the caller's */
    c->release_arg = spec->release_arg;
    canned_copy_headers(c, spec);
    c->resp = resp_of_iov(c->iov, c->nparts, canned_body_done, c);
    if (c->resp == NULL) {
        log_err("http: out of memory for a canned reply");
        free(c);
        return NULL;
    }
    if (!canned_headers(c, c->resp)) {
        MHD_destroy_response(c->resp); /* frees c (canned_body_done) */
        return NULL;
    }
    c->release = spec->release;
    return c;
}

void
http_canned_ref(struct http_canned *c)
{
    if (c != NULL)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void
http_canned_unref(struct http_canned *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* MHD keeps the response (and c) while a connection still sends it */
    MHD_destroy_response(c->resp);
}

/* A response of c's parts and headers for this request only, with the request's headers. */
static struct MHD_Response *
canned_one_off(struct http_request *req, struct http_canned *c)
{
    struct MHD_Response *resp;

    atomic_fetch_add_explicit(&c->bodies, 1, memory_order_relaxed);
    resp = resp_of_iov(c->iov, c->nparts, canned_body_done, c);
    if (resp == NULL) {
        canned_body_done(c); /* never the last: c->resp holds one while we hold c */
        return NULL;
    }
    canned_headers(c, resp);
    resp_header_block(resp, req->hdr, req->nhdr);
    return resp;
}

int
http_reply_canned(struct http_request *req, struct http_canned *c)
{
    if (req == NULL)
        return ST_INVALID;
    if (c == NULL) {
        log_req(LOG_LVL_ERR, req->id, "http: no canned reply given");
        reply_common(req, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, 0, NULL);
        return ST_INVALID;
    }
    if (req->nhdr > 0)
        return reply_common(req, c->status, canned_one_off(req, c), c->len, NULL);
    http_canned_ref(c); /* the request's, dropped once MHD has queued the response */
    return reply_common(req, c->status, c->resp, c->len, c);
}

/* ---- built-in endpoints ---- */

static void
builtin_health(struct http_request *req, void *ctx)
{
    struct http_server *srv = ctx;
    char json[HTTP_HEALTH_MAX];
    int ok = 1;

    json[0] = '\0';
    if (srv->health != NULL)
        ok = srv->health(srv->health_ctx, json, sizeof(json));
    json[sizeof(json) - 1] = '\0';
    if (json[0] == '\0')
        snprintf(json, sizeof(json), "{\"status\":\"%s\"}", ok ? "ok" : "fail");
    http_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    http_reply(req, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", json,
               strlen(json));
}

static void
builtin_metrics(struct http_request *req, void *ctx)
{
    char *text = NULL;
    size_t len = 0;

    (void)ctx;
    http_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    if (metrics_render(&text, &len) != ST_OK) {
        static const char msg[] = "metrics unavailable\n";

        http_reply(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", msg, sizeof(msg) - 1);
        return;
    }
    http_reply_take(req, MHD_HTTP_OK, "text/plain; version=0.0.4", text, len);
}

/* ---- server ---- */

static void
http_metrics_register(struct http_metrics *m)
{
    static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
    static const char *const requests[HTTP_CLASSES] = {
        "http_requests_total{code=\"1xx\"}", "http_requests_total{code=\"2xx\"}",
        "http_requests_total{code=\"3xx\"}", "http_requests_total{code=\"4xx\"}",
        "http_requests_total{code=\"5xx\"}"};
    const char *rej = "Requests refused by the HTTP layer before any handler, by status.";

    for (int i = 0; i < HTTP_CLASSES; i++)
        m->requests[i] = metrics_counter(requests[i], "HTTP requests answered, by status class.");
    m->rej_404 = metrics_counter("http_rejected_total{code=\"404\"}", rej);
    m->rej_405 = metrics_counter("http_rejected_total{code=\"405\"}", rej);
    m->rej_413 = metrics_counter("http_rejected_total{code=\"413\"}", rej);
    m->rej_414 = metrics_counter("http_rejected_total{code=\"414\"}", rej);
    m->rej_431 = metrics_counter("http_rejected_total{code=\"431\"}", rej);
    m->rej_400 = metrics_counter("http_rejected_total{code=\"400\"}", rej);
    m->rej_411 = metrics_counter("http_rejected_total{code=\"411\"}", rej);
    m->rej_415 = metrics_counter("http_rejected_total{code=\"415\"}", rej);
    m->connections = metrics_gauge("http_connections", "Open HTTP connections.");
    m->suspended = metrics_gauge("http_suspended_requests",
                                 "Requests suspended, waiting for an asynchronous reply.");
    m->bytes_in = metrics_counter("http_request_body_bytes_total", "Request body bytes received.");
    m->bytes_out = metrics_counter("http_response_body_bytes_total",
                                   "Response body bytes queued for sending.");
    m->duration = metrics_histogram("http_request_duration_seconds",
                                    "Time from the request line to the queued reply.", buckets,
                                    sizeof(buckets) / sizeof(buckets[0]));
}

/* Numeric, non-wildcard address: the daemon binds exactly this one. */
static int
http_addr_parse(struct http_listener *l, const char *addr, uint16_t port)
{
    union http_sockaddr *a = &l->bind_addr;

    memset(a, 0, sizeof(*a));
    l->want_port = port;
    if (addr == NULL || strlen(addr) >= sizeof(l->addr))
        return ST_CONFIG;
    snprintf(l->addr, sizeof(l->addr), "%s", addr);
    if (inet_pton(AF_INET, addr, &a->in4.sin_addr) == 1) {
        if (a->in4.sin_addr.s_addr == htonl(INADDR_ANY))
            return ST_CONFIG;
        a->in4.sin_family = AF_INET;
        a->in4.sin_port = htons(port);
        return ST_OK;
    }
    if (inet_pton(AF_INET6, addr, &a->in6.sin6_addr) == 1) {
        if (IN6_IS_ADDR_UNSPECIFIED(&a->in6.sin6_addr))
            return ST_CONFIG;
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons(port);
        l->ipv6 = true;
        return ST_OK;
    }
    return ST_CONFIG;
}

static void
http_config_defaults(struct http_config *c)
{
    if (c->threads == 0)
        c->threads = HTTP_DEFAULT_THREADS;
    if (c->max_body == 0)
        c->max_body = HTTP_DEFAULT_MAX_BODY;
    if (c->max_connections == 0)
        c->max_connections = HTTP_DEFAULT_MAX_CONNECTIONS;
    if (c->timeout_s == 0)
        c->timeout_s = HTTP_DEFAULT_TIMEOUT_S;
    if (c->request_timeout_s == 0)
        c->request_timeout_s = HTTP_DEFAULT_REQUEST_TIMEOUT_S;
    if (c->max_url == 0)
        c->max_url = HTTP_DEFAULT_MAX_URL;
}

static int
route_add(struct http_server *srv, const char *method, const char *path, bool prefix,
          const char *ctype, http_handler_fn fn, void *ctx)
{
    struct http_route_ent *r = &srv->routes[srv->nroutes];

    memset(r, 0, sizeof(*r));
    snprintf(r->method, sizeof(r->method), "%s", method);
    r->path = strdup(path);
    r->ctype = ctype != NULL ? strdup(ctype) : NULL;
    if (r->path == NULL || (ctype != NULL && r->ctype == NULL)) {
        free(r->path);
        free(r->ctype);
        return ST_NOMEM;
    }
    r->path_len = strlen(path);
    r->prefix = prefix;
    r->fn = fn;
    r->ctx = ctx;
    srv->nroutes++;
    return ST_OK;
}

struct http_server *
http_server_new(const struct http_config *cfg)
{
    struct http_server *srv;

    if (cfg == NULL)
        return NULL;
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return NULL;
    srv->cfg = *cfg;
    http_config_defaults(&srv->cfg);
    if (http_addr_parse(&srv->lsn[HTTP_LSN_PLAIN], cfg->listen_addr, cfg->port) != ST_OK) {
        log_err("http: listen address \"%s\" is not a numeric, non-wildcard IP address",
                cfg->listen_addr != NULL ? cfg->listen_addr : "");
        free(srv);
        return NULL;
    }
    srv->lsn[HTTP_LSN_PLAIN].on = true;
    srv->lsn[HTTP_LSN_PLAIN].listen_fd = cfg->listen_fd;
    srv->cfg.listen_addr = srv->lsn[HTTP_LSN_PLAIN].addr;
    if (pthread_mutex_init(&srv->lock, NULL) != 0) {
        free(srv);
        return NULL;
    }
    if (pthread_mutex_init(&srv->tls_lock, NULL) != 0) {
        pthread_mutex_destroy(&srv->lock);
        free(srv);
        return NULL;
    }
    if (pthread_mutex_init(&srv->guard.lock, NULL) != 0) {
        pthread_mutex_destroy(&srv->tls_lock);
        pthread_mutex_destroy(&srv->lock);
        free(srv);
        return NULL;
    }
    if (guard_cond_init(&srv->guard.wake) != 0 || guard_init(srv) != ST_OK) {
        log_err("http: out of memory for the connection table");
        pthread_mutex_destroy(&srv->guard.lock);
        pthread_mutex_destroy(&srv->tls_lock);
        pthread_mutex_destroy(&srv->lock);
        free(srv->guard.ips);
        free(srv);
        return NULL;
    }
    http_metrics_register(&srv->m);
    for (int r = 0; r < HTTP_CUTS; r++) {
        char name[80];

        snprintf(name, sizeof(name), "http_connections_rejected_total{reason=\"%s\"}",
                 http_cut_names[r]);
        srv->guard.rejected[r] = metrics_counter(
            name, "Connections refused or closed by the HTTP layer's limits, by reason.");
    }
    if (route_add(srv, "GET", "/healthz", false, NULL, builtin_health, srv) != ST_OK ||
        route_add(srv, "GET", "/metrics", false, NULL, builtin_metrics, srv) != ST_OK) {
        http_server_free(srv);
        return NULL;
    }
    return srv;
}

int
http_route(struct http_server *srv, const char *method, const char *path, bool prefix,
           const char *content_type, http_handler_fn fn, void *ctx)
{
    if (srv == NULL || method == NULL || path == NULL || fn == NULL || path[0] != '/' ||
        method[0] == '\0' || strlen(method) >= HTTP_METHOD_MAX)
        return ST_INVALID;
    if (srv->state != HTTP_SRV_NEW || srv->nroutes == HTTP_MAX_ROUTES) {
        log_err("http: route %s %s not added (server started or table full)", method, path);
        return ST_INVALID;
    }
    return route_add(srv, method, path, prefix, content_type, fn, ctx);
}

void
http_server_set_health(struct http_server *srv, http_health_fn fn, void *ctx)
{
    if (srv == NULL || srv->state != HTTP_SRV_NEW)
        return;
    srv->health = fn;
    srv->health_ctx = ctx;
}

/* MHD's own messages: errors while starting, client noise afterwards. */
__attribute__((format(printf, 2, 0))) static void
http_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct http_server *srv = cls;

    log_vmsg(atomic_load(&srv->started) ? LOG_LVL_DEBUG : LOG_LVL_ERR, fmt, ap);
}

/*
 * GnuTLS certificate callback (MHD_OPTION_HTTPS_CERT_CALLBACK), at each handshake: the
 * current credentials, so that http_tls_reload() takes effect at the next handshake without a
 * restart. MHD makes the connection the session's pointer; our record of the connection
 * (made at accept, before any handshake byte) leads to the server. An untracked connection
 * (no memory for its record) fails its handshake.
 */
static int
http_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                  const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                  gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    struct MHD_Connection *conn = gnutls_session_get_ptr(session);
    struct http_conn *c = conn != NULL ? guard_of(conn) : NULL;
    struct http_tls_cred *cred = NULL;

    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    if (c != NULL) {
        pthread_mutex_lock(&c->srv->tls_lock);
        cred = c->srv->tls_cred;
        pthread_mutex_unlock(&c->srv->tls_lock);
    }
    if (cred == NULL)
        return -1;
    *pcert = cred->pcert;
    *pcert_length = cred->npcert;
    *pkey = cred->key;
    return 0;
}

static struct MHD_Daemon *
http_mhd_start(struct http_server *srv, const struct http_listener *l)
{
    unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                         MHD_USE_ERROR_LOG | (l->ipv6 ? MHD_USE_IPv6 : 0) |
                         (l->tls ? MHD_USE_TLS : 0);
    const struct http_config *c = &srv->cfg;
    /* the HTTPS listener's own options: versions and suites (HTTP_TLS_PRIORITIES), and the
     * certificate chosen per handshake */
    struct MHD_OptionItem tls[] = {{MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)HTTP_TLS_PRIORITIES},
                                   {MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)&http_tls_retrieve},
                                   {MHD_OPTION_END, 0, NULL}};

    /* clang-format off */
    return MHD_start_daemon(flags, l->want_port, &http_accept_policy, srv, &http_access, srv,
        MHD_OPTION_EXTERNAL_LOGGER, &http_mhd_log, srv,
        MHD_OPTION_SOCK_ADDR, &l->bind_addr.sa,
        MHD_OPTION_LISTEN_SOCKET, l->listen_fd > 0 ? (MHD_socket)l->listen_fd : MHD_INVALID_SOCKET,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)(c->threads > 1 ? c->threads : 0),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(c->max_connections + HTTP_RESERVE_CONNECTIONS),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)(c->timeout_s + HTTP_IDLE_SLACK_S),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, http_pool_bytes(c->max_url),
        MHD_OPTION_URI_LOG_CALLBACK, &http_uri_log, srv,
        MHD_OPTION_NOTIFY_COMPLETED, &http_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, &http_conn_notify, srv,
        MHD_OPTION_ARRAY, l->tls ? tls : &tls[2],
        MHD_OPTION_END);
    /* clang-format on */
}

size_t
http_pool_bytes(size_t max_url)
{
    return (max_url != 0 ? max_url : HTTP_DEFAULT_MAX_URL) + HTTP_HEADER_ROOM +
           HTTP_HEADER_LINES * HTTP_POOL_RECORD + HTTP_POOL_REPLY;
}

/* err may be NULL: the reason then only goes to the log. */
static char *
http_err_buf(char *err, size_t *errlen, char *own, size_t cap)
{
    if (err != NULL && *errlen > 0)
        return err;
    *errlen = cap;
    return own;
}

int
http_server_set_tls(struct http_server *srv, const struct http_tls_config *tc, char *err,
                    size_t errlen)
{
    struct http_listener *l;
    struct http_tls_cred *cred;
    char own[512];

    err = http_err_buf(err, &errlen, own, sizeof(own));
    err[0] = '\0';
    if (srv == NULL || tc == NULL || srv->state != HTTP_SRV_NEW) {
        snprintf(err, errlen, "HTTPS can only be set up before the server starts");
        return ST_INVALID;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
        MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) != MHD_YES) {
        snprintf(err, errlen, "this libmicrohttpd was built without TLS (GnuTLS): no HTTPS");
        return ST_CONFIG;
    }
    l = &srv->lsn[HTTP_LSN_TLS];
    if (http_addr_parse(l, tc->listen_addr, tc->port) != ST_OK) {
        snprintf(err, errlen,
                 "https_listen address \"%s\" is not a numeric, non-wildcard IP "
                 "address",
                 tc->listen_addr != NULL ? tc->listen_addr : "");
        return ST_CONFIG;
    }
    if ((cred = http_tls_cred_load(tc->cert, tc->key, tc->chain, err, errlen)) == NULL)
        return ST_CONFIG;
    http_tls_cred_free(srv->tls_cred);
    srv->tls_cred = cred;
    l->tls = true;
    l->on = true;
    /* a socket passed by systemd is served whatever the configuration says */
    if (tc->only && srv->lsn[HTTP_LSN_PLAIN].listen_fd <= 0)
        srv->lsn[HTTP_LSN_PLAIN].on = false;
    if (guard_init(srv) != ST_OK) {
        snprintf(err, errlen, "out of memory for the connection table");
        return ST_NOMEM;
    }
    log_info("http: HTTPS certificate %s, %u certificate(s) sent", cred->subject, cred->npcert);
    return ST_OK;
}

int
http_tls_reload(struct http_server *srv, const char *cert, const char *key, const char *chain,
                char *err, size_t errlen)
{
    struct http_tls_cred *cred;
    char own[512];

    err = http_err_buf(err, &errlen, own, sizeof(own));
    err[0] = '\0';
    if (srv == NULL || !srv->lsn[HTTP_LSN_TLS].on) {
        snprintf(err, errlen, "no HTTPS listener is configured (https_listen)");
        return ST_INVALID;
    }
    if ((cred = http_tls_cred_load(cert, key, chain, err, errlen)) == NULL) {
        log_warn("http: HTTPS certificate not reloaded, the old one stays: %s", err);
        return ST_CONFIG;
    }
    pthread_mutex_lock(&srv->tls_lock);
    cred->older = srv->tls_cred; /* kept: a handshake may be using it (http_tls.h) */
    srv->tls_cred = cred;
    pthread_mutex_unlock(&srv->tls_lock);
    log_info("http: HTTPS certificate reloaded: %s for new connections (open ones keep theirs)",
             cred->subject);
    return ST_OK;
}

static int
http_shared_responses(struct http_server *srv)
{
    if (srv->resp_500 == NULL)
        srv->resp_500 = resp_error("internal error\n", NULL, false);
    if (srv->resp_503 == NULL)
        srv->resp_503 = resp_error("service stopping\n", NULL, true);
    return srv->resp_500 != NULL && srv->resp_503 != NULL ? ST_OK : ST_NOMEM;
}

static int
http_lsn_start(struct http_server *srv, struct http_listener *l)
{
    const union MHD_DaemonInfo *info;
    const char *what = l->tls ? "HTTPS" : "HTTP";

    l->mhd = http_mhd_start(srv, l);
    if (l->mhd == NULL) {
        log_err("http: cannot serve %s on %s port %u", what, l->addr, (unsigned)l->want_port);
        return ST_IO;
    }
    info = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_BIND_PORT);
    l->port = info != NULL ? info->port : l->want_port;
    if (l->listen_fd > 0)
        log_info("http: serving the socket passed by systemd (fd %d, port %u), %u threads",
                 l->listen_fd, (unsigned)l->port, srv->cfg.threads);
    else
        log_info("http: listening%s on %s port %u, %u threads", l->tls ? " for HTTPS" : "", l->addr,
                 (unsigned)l->port, srv->cfg.threads);
    if (l->tls)
        log_audit("https_start", "listen=%s:%u certificate=\"%s\"", l->addr, (unsigned)l->port,
                  srv->tls_cred->subject);
    return ST_OK;
}

static void
http_lsn_stop_all(struct http_server *srv)
{
    for (int i = 0; i < HTTP_LSNS; i++) {
        if (srv->lsn[i].mhd != NULL)
            MHD_stop_daemon(srv->lsn[i].mhd);
        srv->lsn[i].mhd = NULL;
    }
}

int
http_server_start(struct http_server *srv)
{
    int st = ST_INVALID;

    if (srv == NULL || srv->state != HTTP_SRV_NEW)
        goto out;
    st = http_shared_responses(srv);
    if (st != ST_OK)
        goto out;
    st = guard_start(srv);
    if (st != ST_OK)
        goto out;
    for (int i = 0; i < HTTP_LSNS && st == ST_OK; i++)
        if (srv->lsn[i].on)
            st = http_lsn_start(srv, &srv->lsn[i]);
    if (st != ST_OK) {
        http_lsn_stop_all(srv);
        guard_stop(srv);
        goto out;
    }
    atomic_store(&srv->started, true);
    srv->state = HTTP_SRV_RUNNING;
out:
    return st;
}

uint16_t
http_server_port(const struct http_server *srv)
{
    return srv != NULL && srv->lsn[HTTP_LSN_PLAIN].on ? srv->lsn[HTTP_LSN_PLAIN].port : 0;
}

uint16_t
http_server_tls_port(const struct http_server *srv)
{
    return srv != NULL && srv->lsn[HTTP_LSN_TLS].on ? srv->lsn[HTTP_LSN_TLS].port : 0;
}

/* Answer every suspended request with 503 and refuse to suspend new ones. */
static void
http_answer_parked(struct http_server *srv)
{
    struct http_request *req;

    pthread_mutex_lock(&srv->lock);
    atomic_store(&srv->stopping, true);
    while ((req = srv->parked) != NULL) {
        req_store_shared(req, srv->resp_503, MHD_HTTP_SERVICE_UNAVAILABLE);
        park_release(srv, req);
    }
    pthread_mutex_unlock(&srv->lock);
}

static void
http_wait_idle(struct http_server *srv)
{
    struct timespec pause = {0, HTTP_STOP_POLL_MS * 1000000L};

    for (int waited = 0; waited < HTTP_STOP_GRACE_MS; waited += HTTP_STOP_POLL_MS) {
        if (atomic_load(&srv->active) == 0)
            return;
        nanosleep(&pause, NULL);
    }
    log_warn("http: stopping with %d requests still in flight", atomic_load(&srv->active));
}

void
http_server_stop(struct http_server *srv)
{
    MHD_socket lfd[HTTP_LSNS];

    if (srv == NULL || srv->state != HTTP_SRV_RUNNING)
        return;
    for (int i = 0; i < HTTP_LSNS; i++)
        lfd[i] = srv->lsn[i].mhd != NULL ? MHD_quiesce_daemon(srv->lsn[i].mhd) : MHD_INVALID_SOCKET;
    http_answer_parked(srv);
    http_wait_idle(srv);
    http_lsn_stop_all(srv);
    guard_stop(srv);
    for (int i = 0; i < HTTP_LSNS; i++) {
        if (lfd[i] != MHD_INVALID_SOCKET)
            close(lfd[i]);
        if (srv->lsn[i].on)
            log_info("http: stopped serving %s on %s port %u", srv->lsn[i].tls ? "HTTPS" : "HTTP",
                     srv->lsn[i].addr, (unsigned)srv->lsn[i].port);
    }
    srv->state = HTTP_SRV_STOPPED;
}

void
http_server_free(struct http_server *srv)
{
    if (srv == NULL)
        return;
    http_server_stop(srv);
    if (atomic_load(&srv->pending) > 0) {
        log_err("http: %d suspended requests never got http_reply(); server memory kept",
                atomic_load(&srv->pending));
        return;
    }
    if (srv->resp_500 != NULL)
        MHD_destroy_response(srv->resp_500);
    if (srv->resp_503 != NULL)
        MHD_destroy_response(srv->resp_503);
    for (size_t i = 0; i < srv->nroutes; i++) {
        free(srv->routes[i].path);
        free(srv->routes[i].ctype);
    }
    http_tls_cred_free(srv->tls_cred);
    pthread_mutex_destroy(&srv->tls_lock);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->guard.wake);
    pthread_mutex_destroy(&srv->guard.lock);
    free(srv->guard.ips);
    free(srv);
}

void
http_config_init(struct http_config *hc, const struct config_server *cs)
{
    memset(hc, 0, sizeof(*hc));
    hc->listen_addr = cs->listen_host;
    hc->port = cs->listen_port;
    hc->threads = cs->threads;
    hc->max_body = cs->max_body;
    hc->max_connections = cs->max_connections;
    hc->per_ip_limit = cs->per_ip_limit;
    hc->timeout_s = cs->timeout_s;
    hc->request_timeout_s = cs->request_timeout_s;
}
