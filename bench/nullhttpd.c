/*
 * nullhttpd: the HTTP limit of the bench harness (DESIGN D9, "What the design must keep
 * possible": ocspd's hit path against a null libmicrohttpd server returning the same bytes).
 * A libmicrohttpd daemon configured like common/http.c (internal epoll thread pool,
 * suspend/resume allowed, same timeout) that answers every GET and
 * every POST (after reading its body) with 200, a fixed body and a given Content-Type, plus the
 * headers our daemons add. It does nothing else, so its rate is the most any responder built
 * on libmicrohttpd can serve on this machine.
 *
 * With --fresh it builds a new response for every request instead of queueing one kept
 * response: the five headers ocspd sends with an answer (Content-Type, ETag, Cache-Control,
 * Last-Modified, Expires) formatted and added, then the response released after it is queued.
 * The body is not copied: ocspd sends the buffer its store read filled, and the bench's
 * storeprobe counts that read and its copy. That is the least a responder on libmicrohttpd
 * spends on an answer it has not kept ready (ocspd's uniform load over 10 M certificates, where
 * no request repeats), so it is the limit probe of that load as the plain server is of the hot
 * one. --ocsp-headers gives the kept response the same five headers (values of the same
 * lengths, formatted once), so that it and --fresh send the same bytes and differ only in
 * building the response.
 *
 * With --replies N it keeps N responses, each with its own copy of the body, and answers each
 * request with its own one: a 64-bit hash of its bytes (the POST body, or the GET path) is
 * given the next reply the first time it is seen (a table of hashes, read without a lock), so
 * N different requests use N different replies. That is an ideal cache of N ready replies,
 * with nothing checked: the limit of ocspd's hits over a set of many different requests (the
 * bench's 5000, the openssl ocsp comparison's load), where the replies no longer all sit in the
 * CPU's caches as one hot reply does.
 *
 *   nullhttpd --port P (--bytes N | --body FILE) [--type CT] [--threads N] [--fresh]
 *             [--ocsp-headers] [--replies N] [--pool-url N] [--max-seconds S] [--pid-file F]
 *
 * Binds 127.0.0.1 only. Stops on SIGTERM/SIGINT, or after --max-seconds (default 600).
 */
#include "common/http.h"
#include "common/log.h"
#include "common/status.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NH_POOL_DEFAULT (32u * 1024u) /* libmicrohttpd's MHD_POOL_SIZE_DEFAULT */
#define NH_MAX_BODY (1u << 20)
#define NH_MAX_REPLIES 1000000u
#define NH_FNV_OFFSET 0xcbf29ce484222325ULL
#define NH_FNV_PRIME 0x100000001b3ULL

struct nh_opts {
    unsigned port, threads, bytes, max_seconds, replies;
    size_t pool;
    const char *body_file, *ctype, *pid_file;
    bool fresh, ocsp_headers;
};

/* what every request is answered with: one kept response, one of the kept ones (replies), or
 * (fresh) the body to copy */
struct nh_reply {
    struct MHD_Response *resp;
    struct MHD_Response **many; /* o->replies of them */
    /* which reply a request's hash was given: open addressing, hash 0 = empty; written under
     * the lock (the index first, then the hash, released), read without it */
    _Atomic uint64_t *seen_hash;
    unsigned *seen_idx;
    size_t seen_mask;
    uint64_t next;
    pthread_mutex_t seen_lock;
    const struct nh_opts *o;
    char *body;
    size_t len;
    unsigned long n; /* requests answered fresh (varies the headers' values) */
};

static volatile sig_atomic_t nh_stop;

static void
nh_on_signal(int sig)
{
    (void)sig;
    nh_stop = 1;
}

/* ocspd's five headers on resp, their values formatted for the n-th request: ST_OK or -1 */
static int
nh_ocsp_headers(struct nh_reply *r, struct MHD_Response *resp, unsigned long n)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char etag[40], cc[96], lm[32], ex[32];
    time_t t = time(NULL);
    struct tm tm;

    snprintf(etag, sizeof(etag), "\"%016lx%016lx\"", n, n * 2654435761u);
    snprintf(cc, sizeof(cc), "max-age=%lu, public, no-transform, must-revalidate", 3600 - n % 60);
    gmtime_r(&t, &tm);
    snprintf(lm, sizeof(lm), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    t += 3600;
    gmtime_r(&t, &tm);
    snprintf(ex, sizeof(ex), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->o->ctype) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cc) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, lm) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_EXPIRES, ex) != MHD_YES)
        return -1;
    return ST_OK;
}

/* A response of its own for one request, as ocspd builds one for an answer not kept ready:
 * ocspd's five headers, their values formatted for this request, on the body as it is (ocspd
 * sends the buffer its store read filled; r->body lives as long as the process). */
static struct MHD_Response *
nh_fresh(struct nh_reply *r)
{
    unsigned long n = __atomic_add_fetch(&r->n, 1, __ATOMIC_RELAXED);
    struct MHD_Response *resp;

    resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return NULL;
    if (nh_ocsp_headers(r, resp, n) != ST_OK) {
        MHD_destroy_response(resp);
        return NULL;
    }
    return resp;
}

/* FNV-1a over more request bytes; the low bit stays set so that the running value, kept in
 * the connection's request pointer, is never NULL */
static uintptr_t
nh_hash(uintptr_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t v = h;

    for (size_t i = 0; i < n; i++)
        v = (v ^ b[i]) * NH_FNV_PRIME;
    return (uintptr_t)v | 1u;
}

/* The reply given to a request hash (never 0: nh_hash keeps its low bit set), given the next
 * one the first time the hash is seen. */
static unsigned
nh_reply_of(struct nh_reply *r, uint64_t h)
{
    size_t i = (size_t)(h >> 7) & r->seen_mask;
    unsigned idx;

    for (;; i = (i + 1) & r->seen_mask) {
        uint64_t v = atomic_load_explicit(&r->seen_hash[i], memory_order_acquire);

        if (v == h)
            return r->seen_idx[i];
        if (v == 0)
            break;
    }
    pthread_mutex_lock(&r->seen_lock);
    for (i = (size_t)(h >> 7) & r->seen_mask;; i = (i + 1) & r->seen_mask) {
        uint64_t v = atomic_load_explicit(&r->seen_hash[i], memory_order_relaxed);

        if (v == h) {
            idx = r->seen_idx[i];
            break;
        }
        if (v == 0 || r->next >= 4 * (uint64_t)r->o->replies) {
            /* a new request: the next reply (past 4 N requests the table, half full, stays as
             * it is and the rest share replies) */
            bool keep = v == 0 && r->next < 4 * (uint64_t)r->o->replies;

            idx = (unsigned)(r->next++ % r->o->replies);
            if (keep) {
                r->seen_idx[i] = idx;
                atomic_store_explicit(&r->seen_hash[i], h, memory_order_release);
            }
            break;
        }
    }
    pthread_mutex_unlock(&r->seen_lock);
    return idx;
}

static enum MHD_Result
nh_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
          const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    struct nh_reply *r = cls;
    struct MHD_Response *resp;
    enum MHD_Result rc;

    (void)version;
    (void)upload;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return MHD_NO;
    if (*con_cls == NULL) { /* first call: headers only */
        *con_cls = (void *)((uintptr_t)NH_FNV_OFFSET | 1u);
        return MHD_YES;
    }
    if (*upload_size != 0) { /* consume the body (hashed for --replies) */
        if (r->many != NULL)
            *con_cls = (void *)nh_hash((uintptr_t)*con_cls, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->many != NULL) {
        uintptr_t h = (uintptr_t)*con_cls;

        if (strcmp(method, MHD_HTTP_METHOD_GET) == 0)
            h = nh_hash(h, url, strlen(url));
        return MHD_queue_response(conn, MHD_HTTP_OK, r->many[nh_reply_of(r, h)]);
    }
    if (!r->o->fresh)
        return MHD_queue_response(conn, MHD_HTTP_OK, r->resp);
    if ((resp = nh_fresh(r)) == NULL)
        return MHD_NO;
    rc = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp); /* MHD keeps its own reference until it is sent */
    return rc;
}

static struct MHD_Response *
nh_response(const struct nh_opts *o, struct nh_reply *r)
{
    struct MHD_Response *resp;
    char *body;
    size_t len = o->bytes;
    bool ok;
    FILE *f;

    if ((body = r->body = malloc(NH_MAX_BODY)) == NULL)
        return NULL;
    if (o->body_file != NULL) {
        if ((f = fopen(o->body_file, "rb")) == NULL) {
            log_err("cannot read %s", o->body_file);
            return NULL;
        }
        len = fread(body, 1, NH_MAX_BODY, f);
        fclose(f);
    } else {
        memset(body, 'x', len);
    }
    r->len = len;
    r->o = o;
    /* r->body is freed after the kept response is destroyed (main) */
    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return NULL;
    if (o->ocsp_headers)
        ok = nh_ocsp_headers(r, resp, 0) == ST_OK;
    else
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, o->ctype) == MHD_YES &&
             MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") == MHD_YES;
    if (!ok) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    return resp;
}

/* --replies: N responses with the headers of the kept one, each with its own copy of the body */
static int
nh_many(const struct nh_opts *o, struct nh_reply *r)
{
    size_t slots = 16;

    while (slots < 8 * (size_t)o->replies)
        slots *= 2;
    r->seen_mask = slots - 1;
    if ((r->many = calloc(o->replies, sizeof(*r->many))) == NULL ||
        (r->seen_hash = calloc(slots, sizeof(*r->seen_hash))) == NULL ||
        (r->seen_idx = calloc(slots, sizeof(*r->seen_idx))) == NULL)
        return ST_NOMEM;
    pthread_mutex_init(&r->seen_lock, NULL);
    for (unsigned i = 0; i < o->replies; i++) {
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_COPY);

        if (resp == NULL)
            return ST_NOMEM;
        r->many[i] = resp;
        if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, o->ctype) != MHD_YES ||
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES)
            return ST_NOMEM;
    }
    return ST_OK;
}

static struct MHD_Daemon *
nh_start(const struct nh_opts *o, struct nh_reply *r)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    unsigned int flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* clang-format off */
    return MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, &nh_access, r,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)(o->threads > 1 ? o->threads : 0),
        MHD_OPTION_CONNECTION_LIMIT, 4096u,
        MHD_OPTION_CONNECTION_TIMEOUT, 15u,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->pool,
        MHD_OPTION_END);
    /* clang-format on */
}

static int
nh_args(struct nh_opts *o, int argc, char **argv)
{
    static const struct option lo[] = {
        {"port", 1, NULL, 'p'},     {"bytes", 1, NULL, 'b'},        {"body", 1, NULL, 'f'},
        {"type", 1, NULL, 't'},     {"threads", 1, NULL, 'n'},      {"max-seconds", 1, NULL, 's'},
        {"pid-file", 1, NULL, 'P'}, {"fresh", 0, NULL, 'F'},        {"pool-url", 1, NULL, 'u'},
        {"replies", 1, NULL, 'r'},  {"ocsp-headers", 0, NULL, 'H'}, {NULL, 0, NULL, 0}};
    unsigned long v;
    int c;

    *o = (struct nh_opts){.threads = 2,
                          .bytes = 512,
                          .max_seconds = 600,
                          .pool = NH_POOL_DEFAULT,
                          .ctype = "application/octet-stream"};
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        v = optarg != NULL ? strtoul(optarg, NULL, 10) : 0;
        switch (c) {
        case 'p':
            o->port = (unsigned)v;
            break;
        case 'b':
            o->bytes = (unsigned)v;
            break;
        case 'f':
            o->body_file = optarg;
            break;
        case 't':
            o->ctype = optarg;
            break;
        case 'n':
            o->threads = (unsigned)v;
            break;
        case 's':
            o->max_seconds = (unsigned)v;
            break;
        case 'P':
            o->pid_file = optarg;
            break;
        case 'F':
            o->fresh = true;
            break;
        case 'H':
            o->ocsp_headers = true;
            break;
        case 'r':
            if (v == 0 || v > NH_MAX_REPLIES)
                return ST_INVALID;
            o->replies = (unsigned)v;
            break;
        case 'u':
            if (v == 0 || v > 65536)
                return ST_INVALID;
            o->pool = http_pool_bytes(v);
            break;
        default:
            return ST_INVALID;
        }
    }
    if (o->port == 0 || o->port > 65535 || o->bytes > NH_MAX_BODY || o->threads == 0 ||
        o->threads > 256 || o->max_seconds == 0 || optind != argc || (o->fresh && o->replies > 0))
        return ST_INVALID;
    return ST_OK;
}

static int
nh_write_pid(const char *path)
{
    FILE *f;

    if (path == NULL)
        return ST_OK;
    if ((f = fopen(path, "w")) == NULL)
        return ST_IO;
    fprintf(f, "%d\n", (int)getpid());
    return fclose(f) == 0 ? ST_OK : ST_IO;
}

int
main(int argc, char **argv)
{
    struct nh_opts o;
    struct nh_reply r = {0};
    struct MHD_Daemon *d = NULL;
    struct sigaction sa = {.sa_handler = nh_on_signal};
    time_t until;
    int rc = 1;

    log_init("nullhttpd", LOG_LVL_NOTICE);
    if (nh_args(&o, argc, argv) != ST_OK) {
        fprintf(stderr, "usage: nullhttpd --port P (--bytes N | --body FILE) [--type CT] "
                        "[--threads N] [--fresh | --replies N] [--ocsp-headers] [--pool-url N] "
                        "[--max-seconds S] "
                        "[--pid-file F]\n");
        return 2;
    }
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if ((r.resp = nh_response(&o, &r)) == NULL || (o.replies > 0 && nh_many(&o, &r) != ST_OK) ||
        (d = nh_start(&o, &r)) == NULL) {
        log_err("cannot serve on 127.0.0.1:%u", o.port);
        goto out;
    }
    if (nh_write_pid(o.pid_file) != ST_OK)
        goto out;
    log_notice("serving %s on 127.0.0.1:%u with %u threads%s (%u kept replies)", o.ctype, o.port,
               o.threads, o.fresh ? ", a new response for each request" : "",
               o.replies > 0 ? o.replies : 1);
    until = time(NULL) + (time_t)o.max_seconds;
    while (!nh_stop && time(NULL) < until)
        usleep(100000);
    rc = 0;
out:
    if (d != NULL)
        MHD_stop_daemon(d);
    if (o.replies > 0 && r.many != NULL)
        log_notice("%llu different requests seen, given %u replies", (unsigned long long)r.next,
                   o.replies);
    if (r.resp != NULL)
        MHD_destroy_response(r.resp);
    for (unsigned i = 0; r.many != NULL && i < o.replies; i++)
        if (r.many[i] != NULL)
            MHD_destroy_response(r.many[i]);
    free(r.many);
    free((void *)r.seen_hash);
    free(r.seen_idx);
    free(r.body);
    return rc;
}
