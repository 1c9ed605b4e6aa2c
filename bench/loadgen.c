/*
 * loadgen: the load generator of the bench harness (DESIGN D9), usable against any RFC 3161
 * time-stamp or RFC 6960 OCSP responder over HTTP/1.1 (RFC 9112), not only ours.
 *
 *   loadgen gen-tsa  --out FILE [--count N] [--hashes sha256=2,sha384=1,sha512=1]
 *                    [--nonce PCT] [--cert-req PCT] [--policy OID] [--seed N]
 *   loadgen gen-ocsp --out FILE --issuer CA.pem --serials LIST [--mix hit=9,never=1]
 *                    [--never-status notgood] [--certid-hash sha1] [--get PCT] [--nonce PCT]
 *                    [--count N] [--seed N]
 *   loadgen run      --url URL --requests FILE [--conns N] [--threads N] [--duration S |
 *                    --count N] [--warmup S] [--rate R] [--close] [--timeout S] [--tls-ca FILE]
 *                    [--verify-every N --ca FILE [--untrusted FILE]] [--pid PID]...
 *                    [--json FILE] [--label NAME] [--save-serials FILE]
 *
 * URL is http:// or https:// (bench/loadgen_tls.h: OpenSSL, the server verified with
 * --tls-ca, no session resumption). Request sets are made before the run (bench/loadgen_reqset.h).
 * The run drives N keep-alive connections (or a new connection per request with --close) from epoll
 * loops, one per thread: closed loop (every connection sends its next request as soon as a reply
 * arrives) or open loop at --rate requests/s, where latency runs from the intended send time so
 * that a stalled server cannot hide its queue (coordinated omission). Every reply's HTTP status,
 * Content-Type and protocol status are checked as it arrives; one in --verify-every is copied aside
 * and verified in full (bench/loadgen_verify.h) when the load stops, so that the verifier's CPU
 * (chain checks with P-384 roots cost ~1 ms) does not take cores from the server measured. Results:
 * requests/s, latency percentiles from a log-linear histogram (bench/loadgen_hist.h), every error
 * by kind, and the CPU time the server pids (and their child processes) used per request, from
 * /proc/PID/stat utime+stime. Printed as a table and written as JSON.
 *
 * --save-serials FILE (TSA sets) appends the serialNumber of every granted token received in
 * full (PKIStatus 0 or 1, HTTP 200, right Content-Type), warm-up and grace period included,
 * one per line: lowercase hex of the integer's value, sign octet dropped, left-padded with
 * zeros to 32 digits (16 octets, the form of the "serial" field of tsad's audit log); a
 * longer serial is written in full. Only the serial is parsed (lg_tsa_serial). Each thread
 * hands its new lines to the kernel with one write(2) (O_APPEND) after every round of events,
 * so the file holds every token received even when the server dies mid-run (connection
 * errors are counted and the run goes on to its end) or loadgen itself is killed after the
 * write. A crash test checks that every serial in it is in the server's audit log.
 */
#include "bench/loadgen_hist.h"
#include "bench/loadgen_http.h"
#include "bench/loadgen_reqset.h"
#include "bench/loadgen_tls.h"
#include "bench/loadgen_verify.h"
#include "common/json.h"
#include "common/log.h"
#include "common/status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LG_MAX_CONNS 10000u
#define LG_MAX_THREADS 64u
#define LG_MAX_PIDS 8u
#define LG_MAX_REPLY (1u << 20)
#define LG_MAX_DURATION 3600.0
#define LG_GRACE_NS 2000000000LL /* in-flight requests may finish this long after the end */
#define LG_EXPLAIN_MAX 3         /* verification failures logged in detail */
#define LG_SAMPLE_MAX 2000u      /* replies kept for verification, per thread */
#define LG_SERIAL_BUF 65536u     /* saved serial lines buffered per thread between writes */
#define LG_SERIAL_LINE 80u       /* longest line: 20 octets in hex (RFC 3161 §2.4.2) + \n */

enum lg_errkind {
    LG_E_CONNECT,
    LG_E_SEND,
    LG_E_RECV,
    LG_E_TIMEOUT,
    LG_E_HTTP_PARSE,
    LG_E_HTTP_STATUS,
    LG_E_CTYPE,
    LG_E_APP_STATUS,
    LG_E_VERIFY, /* + enum lg_verr - 1 */
    LG_E_COUNT = LG_E_VERIFY + LG_VERR_COUNT - 1
};

static const char *const lg_err_name[LG_E_COUNT] = {"connect",      "send",
                                                    "recv",         "timeout",
                                                    "http_parse",   "http_status",
                                                    "content_type", "protocol_status",
                                                    "verify_parse", "verify_signature",
                                                    "verify_nonce", "verify_status"};

struct lg_opts {
    const char *url, *reqfile, *ca, *untrusted, *json, *label, *serials, *tls_ca;
    unsigned conns, threads, verify_every;
    double duration_s, warmup_s, rate, timeout_s;
    uint64_t count;
    bool close;
    pid_t pids[LG_MAX_PIDS];
    unsigned npids;
};

struct lg_stats {
    struct lg_hist hist; /* latency of successful replies */
    uint64_t ok, sent, retries, connects, sampled, verified, missed, unfinished;
    uint64_t serials, serials_bad; /* serials saved, granted replies without a readable one */
    uint64_t err[LG_E_COUNT];
    uint64_t http_code[600];
    uint64_t bytes_in, bytes_out;
};

enum lg_cstate { LG_C_IDLE, LG_C_CONNECTING, LG_C_HANDSHAKE, LG_C_SENDING, LG_C_RECEIVING };

struct lg_conn {
    int fd;
    SSL *ssl; /* https:// only */
    enum lg_cstate state;
    uint32_t req; /* index in the request set */
    int64_t t0;   /* intended (open loop) or actual (closed loop) send time */
    size_t sent;
    char *rb; /* reply bytes */
    size_t rlen, rcap;
    struct lg_reply reply;
    unsigned served; /* replies on this connection */
    bool retried;
};

struct lg_run;

/* A reply kept for verification after the run. */
struct lg_sample {
    uint32_t req;
    uint32_t len;
    uint8_t *body;
};

struct lg_thread {
    struct lg_run *run;
    unsigned idx;
    pthread_t tid;
    int ep;
    struct lg_conn *conn;
    unsigned nconn;
    unsigned *idle; /* stack of idle connections */
    unsigned nidle, inflight;
    uint32_t next_req;
    int64_t next_due, interval; /* open loop */
    uint64_t since_verify;
    struct lg_sample *sample;
    unsigned nsample;
    double cpu0, cpu1; /* this thread's CPU seconds at the start and end of the measure */
    bool measuring;
    int64_t last_done;
    int64_t backoff_until; /* after a failed connect, wait a little before the next */
    bool stopping;
    char *sbuf; /* serial lines not yet written */
    size_t slen;
    struct lg_stats st;
};

struct lg_run {
    struct lg_opts o;
    struct lg_target target;
    struct lg_reqset rs;
    struct lg_wire *wire;
    struct lg_verifier ver;
    SSL_CTX *tls; /* https:// only */
    bool verify;
    const char *want_ctype;
    int64_t t_start, t_measure, t_end;
    atomic_uint_fast64_t issued; /* --count budget */
    atomic_uint explained;
    int serials_fd;             /* --save-serials, or -1 */
    atomic_bool serials_failed; /* a write to it failed */
    struct lg_thread *th;
};

static int64_t
lg_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- connections ---- */

static void
lg_conn_close(struct lg_thread *t, struct lg_conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    SSL_free(c->ssl); /* no close_notify: the socket is gone, as with a plain close */
    c->ssl = NULL;
    c->fd = -1;
    c->served = 0;
}

static int
lg_conn_open(struct lg_thread *t, struct lg_conn *c, unsigned ci)
{
    const struct lg_target *tg = &t->run->target;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u32 = ci};
    int one = 1;

    c->fd = socket(tg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return ST_IO;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (t->measuring)
        t->st.connects++;
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0 ||
        (connect(c->fd, (const struct sockaddr *)&tg->addr, tg->addrlen) != 0 &&
         errno != EINPROGRESS)) {
        lg_conn_close(t, c);
        return ST_IO;
    }
    if (t->run->tls != NULL && (c->ssl = lg_tls_new(t->run->tls, c->fd, tg->host)) == NULL) {
        lg_conn_close(t, c);
        return ST_IO;
    }
    c->state = LG_C_CONNECTING;
    return ST_OK;
}

static void lg_conn_send(struct lg_thread *t, struct lg_conn *c, unsigned ci);

/* Put the connection's current request on the wire, opening a connection when needed. */
static void
lg_conn_start(struct lg_thread *t, struct lg_conn *c, unsigned ci)
{
    c->sent = 0;
    c->rlen = 0;
    memset(&c->reply, 0, sizeof(c->reply));
    if (c->fd < 0) {
        if (lg_conn_open(t, c, ci) != ST_OK) {
            t->st.err[LG_E_CONNECT]++;
            t->backoff_until = lg_now() + 10000000;
            t->inflight--;
            t->idle[t->nidle++] = ci;
            c->state = LG_C_IDLE;
        }
        return;
    }
    c->state = LG_C_SENDING;
    lg_conn_send(t, c, ci);
}

/* The request failed: count it and free the connection. */
static void
lg_conn_fail(struct lg_thread *t, struct lg_conn *c, unsigned ci, enum lg_errkind e)
{
    t->st.err[e]++;
    lg_conn_close(t, c);
    c->state = LG_C_IDLE;
    t->inflight--;
    t->idle[t->nidle++] = ci;
}

/* A kept-alive connection the server had closed before it saw our request: resend once on a
 * new connection (not an error; counted as a retry). */
static bool
lg_conn_retry(struct lg_thread *t, struct lg_conn *c, unsigned ci)
{
    if (c->served == 0 || c->retried || c->rlen > 0)
        return false;
    t->st.retries++;
    lg_conn_close(t, c);
    c->retried = true;
    lg_conn_start(t, c, ci);
    return true;
}

static void
lg_conn_send(struct lg_thread *t, struct lg_conn *c, unsigned ci)
{
    const struct lg_wire *w = &t->run->wire[c->req];
    ssize_t n;

    while (c->sent < w->len) {
        n = lg_io_send(c->ssl, c->fd, w->buf + c->sent, w->len - c->sent);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            if (!lg_conn_retry(t, c, ci))
                lg_conn_fail(t, c, ci, LG_E_SEND);
            return;
        }
        c->sent += (size_t)n;
        t->st.bytes_out += (uint64_t)n;
    }
    c->state = LG_C_RECEIVING;
}

/* ---- replies ---- */

/* Keep one in verify_every good replies for verification after the run. */
static void
lg_sample_keep(struct lg_thread *t, struct lg_conn *c)
{
    struct lg_run *r = t->run;
    struct lg_sample *sm;

    if (!r->verify || ++t->since_verify < r->o.verify_every || t->nsample == LG_SAMPLE_MAX)
        return;
    t->since_verify = 0;
    sm = &t->sample[t->nsample];
    if ((sm->body = malloc(c->reply.body_len ? c->reply.body_len : 1)) == NULL)
        return;
    memcpy(sm->body, c->rb + c->reply.body_off, c->reply.body_len);
    sm->len = (uint32_t)c->reply.body_len;
    sm->req = c->req;
    t->nsample++;
}

static void
lg_sample_verify(struct lg_thread *t)
{
    struct lg_run *r = t->run;
    enum lg_verr v;
    bool explain;
    unsigned i;

    for (i = 0; i < t->nsample; i++) {
        struct lg_sample *sm = &t->sample[i];
        explain = atomic_load(&r->explained) < LG_EXPLAIN_MAX;
        v = lg_verify(&r->ver, &r->rs.req[sm->req], sm->body, sm->len, explain);
        t->st.sampled++;
        if (v == LG_VERR_OK)
            t->st.verified++;
        else
            t->st.err[LG_E_VERIFY + v - 1]++;
        if (v != LG_VERR_OK && explain)
            atomic_fetch_add(&r->explained, 1);
        free(sm->body);
    }
    t->nsample = 0;
}

/* Classify a complete reply; returns the error kind or -1 when it is a good reply. */
static int
lg_reply_check(struct lg_thread *t, struct lg_conn *c)
{
    const struct lg_reply *rp = &c->reply;
    int ps;

    t->st.http_code[rp->status]++;
    if (rp->status != 200)
        return LG_E_HTTP_STATUS;
    if (!rp->ctype_ok)
        return LG_E_CTYPE;
    ps = lg_reply_status(t->run->rs.kind, (const uint8_t *)c->rb + rp->body_off, rp->body_len);
    if (ps < 0 || (t->run->rs.kind == LG_KIND_TSA ? ps > 1 : ps != 0))
        return LG_E_APP_STATUS;
    return -1;
}

/* ---- serials of granted tokens (--save-serials) ---- */

/* Hand the thread's buffered lines to the kernel: one write(2), O_APPEND, whole lines. */
static void
lg_serials_flush(struct lg_thread *t)
{
    size_t off = 0;
    ssize_t n;

    while (off < t->slen) {
        n = write(t->run->serials_fd, t->sbuf + off, t->slen - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (!atomic_exchange(&t->run->serials_failed, true))
                log_err("cannot write %s: %s", t->run->o.serials,
                        n < 0 ? strerror(errno) : "no progress");
            break;
        }
        off += (size_t)n;
    }
    t->slen = 0;
}

/* Buffer the serial of a granted token as one line (see the top of this file). */
static void
lg_serial_keep(struct lg_thread *t, const struct lg_conn *c)
{
    const uint8_t *v;
    size_t len, pad;
    char *o;

    if (!lg_tsa_serial((const uint8_t *)c->rb + c->reply.body_off, c->reply.body_len, &v, &len) ||
        len > (LG_SERIAL_LINE - 1) / 2) {
        t->st.serials_bad++;
        return;
    }
    while (len > 1 && v[0] == 0) { /* the sign octet (and any padding) */
        v++;
        len--;
    }
    if (t->slen + LG_SERIAL_LINE > LG_SERIAL_BUF)
        lg_serials_flush(t);
    o = t->sbuf + t->slen;
    for (pad = len < 16 ? 16 - len : 0; pad > 0; pad--) {
        *o++ = '0';
        *o++ = '0';
    }
    hex_encode(o, v, len, false);
    o += 2 * len;
    *o++ = '\n';
    t->slen = (size_t)(o - t->sbuf);
    t->st.serials++;
}

static void
lg_reply_done(struct lg_thread *t, struct lg_conn *c, unsigned ci, int64_t now)
{
    int e = lg_reply_check(t, c);
    bool measured = c->t0 >= t->run->t_measure;

    if (e < 0 && t->sbuf != NULL)
        lg_serial_keep(t, c);

    if (measured) {
        if (e < 0) {
            t->st.ok++;
            lg_hist_record(&t->st.hist, (uint64_t)(now - c->t0));
            lg_sample_keep(t, c);
        } else {
            t->st.err[e]++;
        }
        t->last_done = now;
    }
    c->served++;
    c->retried = false;
    if (c->reply.close || t->run->o.close || c->reply.total != c->rlen) {
        if (c->reply.total != c->rlen && measured)
            t->st.err[LG_E_HTTP_PARSE]++; /* bytes we did not ask for */
        lg_conn_close(t, c);
    }
    c->state = LG_C_IDLE;
    t->inflight--;
    t->idle[t->nidle++] = ci;
}

static bool
lg_conn_grow(struct lg_conn *c)
{
    size_t ncap = c->rcap ? c->rcap * 2 : 4096;
    char *nb;

    if (c->rlen < c->rcap)
        return true;
    if (ncap > LG_MAX_REPLY || (nb = realloc(c->rb, ncap + 1)) == NULL)
        return false;
    c->rb = nb;
    c->rcap = ncap;
    return true;
}

/* An idle keep-alive connection became readable: the server closed it (or sent junk). */
static void
lg_conn_idle_event(struct lg_thread *t, struct lg_conn *c)
{
    char b[256];
    ssize_t n = lg_io_recv(c->ssl, c->fd, b, sizeof(b));

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n > 0)
        t->st.err[LG_E_HTTP_PARSE]++;
    lg_conn_close(t, c);
}

static void
lg_conn_recv(struct lg_thread *t, struct lg_conn *c, unsigned ci)
{
    ssize_t n;
    int done;

    for (;;) {
        if (!lg_conn_grow(c)) {
            lg_conn_fail(t, c, ci, LG_E_HTTP_PARSE);
            return;
        }
        n = lg_io_recv(c->ssl, c->fd, c->rb + c->rlen, c->rcap - c->rlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0 && lg_conn_retry(t, c, ci))
            return;
        if (n > 0) {
            c->rlen += (size_t)n;
            t->st.bytes_in += (uint64_t)n;
        }
        done = lg_reply_complete(&c->reply, c->rb, c->rlen, n <= 0, t->run->want_ctype);
        if (done > 0) {
            lg_reply_done(t, c, ci, lg_now());
            return;
        }
        if (done < 0 || n <= 0) {
            lg_conn_fail(t, c, ci, done < 0 && n > 0 ? LG_E_HTTP_PARSE : LG_E_RECV);
            return;
        }
    }
}

static void
lg_conn_event(struct lg_thread *t, unsigned ci, uint32_t ev)
{
    struct lg_conn *c = &t->conn[ci];
    int err = 0;
    socklen_t el = sizeof(err);

    if (c->fd < 0)
        return;
    if (c->state == LG_C_IDLE) {
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            lg_conn_idle_event(t, c);
        return;
    }
    if (c->state == LG_C_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
            lg_conn_fail(t, c, ci, LG_E_CONNECT);
            t->backoff_until = lg_now() + 10000000;
            return;
        }
        c->state = c->ssl != NULL ? LG_C_HANDSHAKE : LG_C_SENDING;
    }
    if (c->state == LG_C_HANDSHAKE) {
        int hs = lg_tls_handshake(c->ssl);

        if (hs < 0) {
            lg_conn_fail(t, c, ci, LG_E_CONNECT);
            return;
        }
        if (hs == 0)
            return;
        /* done, maybe on a read event: the socket is writable, no edge will say so */
        c->state = LG_C_SENDING;
        lg_conn_send(t, c, ci);
        return;
    }
    if (c->state == LG_C_SENDING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        lg_conn_send(t, c, ci);
    if (c->state == LG_C_RECEIVING && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        lg_conn_recv(t, c, ci);
}

/* ---- the loop of one thread ---- */

static bool
lg_take_budget(struct lg_run *r)
{
    if (r->o.count == 0)
        return true;
    return atomic_fetch_add(&r->issued, 1) < r->o.count;
}

static void
lg_issue(struct lg_thread *t, int64_t t0)
{
    unsigned ci = t->idle[--t->nidle];
    struct lg_conn *c = &t->conn[ci];

    c->req = t->next_req;
    t->next_req = (t->next_req + 1) % t->run->rs.count;
    c->t0 = t0;
    c->retried = false;
    t->inflight++;
    if (t0 >= t->run->t_measure)
        t->st.sent++;
    lg_conn_start(t, c, ci);
}

static void
lg_issue_due(struct lg_thread *t, int64_t now)
{
    if (now < t->backoff_until)
        return;
    if (t->interval == 0) {
        while (t->nidle > 0 && !t->stopping) {
            if (!lg_take_budget(t->run)) {
                t->stopping = true;
                break;
            }
            lg_issue(t, lg_now());
        }
        return;
    }
    while (t->nidle > 0 && t->next_due <= now && t->next_due < t->run->t_end) {
        if (!lg_take_budget(t->run)) {
            t->stopping = true;
            break;
        }
        lg_issue(t, t->next_due);
        t->next_due += t->interval;
    }
}

static void
lg_check_timeouts(struct lg_thread *t, int64_t now)
{
    int64_t limit = (int64_t)(t->run->o.timeout_s * 1e9);
    unsigned i;

    for (i = 0; i < t->nconn; i++) {
        struct lg_conn *c = &t->conn[i];
        if (c->state != LG_C_IDLE && now - c->t0 > limit)
            lg_conn_fail(t, c, i, LG_E_TIMEOUT);
    }
}

/* Open loop: requests that were due before the end but never found a free connection. */
static void
lg_count_missed(struct lg_thread *t)
{
    int64_t from = t->next_due > t->run->t_measure ? t->next_due : t->run->t_measure;

    if (t->interval > 0 && from < t->run->t_end)
        t->st.missed += (uint64_t)((t->run->t_end - from + t->interval - 1) / t->interval);
}

static int64_t
lg_wait_ns(const struct lg_thread *t, int64_t now)
{
    int64_t w = 100000000; /* timeouts are checked at least every 100 ms */

    if (!t->stopping && t->interval > 0 && t->nidle > 0 && t->next_due - now < w)
        w = t->next_due - now;
    if (!t->stopping && t->run->t_end - now < w)
        w = t->run->t_end - now;
    if (t->backoff_until > now && t->backoff_until - now < w)
        w = t->backoff_until - now;
    return w < 0 ? 0 : w;
}

static double
lg_thread_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
lg_loop(struct lg_thread *t)
{
    struct epoll_event ev[256];
    struct timespec ts;
    int64_t now = lg_now(), last_check = now, w;
    int n, i;

    while (!t->stopping || t->inflight > 0) {
        if (!t->measuring && now >= t->run->t_measure) {
            t->measuring = true;
            t->cpu0 = lg_thread_cpu_s();
        }
        if (!t->stopping)
            lg_issue_due(t, now);
        if (!t->stopping && now >= t->run->t_end) {
            t->stopping = true;
            lg_count_missed(t);
        }
        if (t->stopping && now > t->run->t_end + LG_GRACE_NS)
            break;
        w = lg_wait_ns(t, now);
        ts.tv_sec = w / 1000000000;
        ts.tv_nsec = w % 1000000000;
        n = epoll_pwait2(t->ep, ev, 256, &ts, NULL);
        for (i = 0; i < n; i++)
            lg_conn_event(t, ev[i].data.u32, ev[i].events);
        if (t->slen > 0)
            lg_serials_flush(t);
        now = lg_now();
        if (now - last_check > 100000000) {
            lg_check_timeouts(t, now);
            last_check = now;
        }
    }
    t->st.unfinished = t->inflight;
    t->cpu1 = lg_thread_cpu_s();
    if (!t->measuring)
        t->cpu0 = t->cpu1;
}

static void *
lg_thread_main(void *arg)
{
    struct lg_thread *t = arg;
    unsigned i;

    for (i = 0; i < t->nconn; i++)
        t->idle[t->nidle++] = t->nconn - 1 - i;
    lg_loop(t);
    for (i = 0; i < t->nconn; i++) {
        lg_conn_close(t, &t->conn[i]);
        free(t->conn[i].rb);
    }
    if (t->slen > 0)
        lg_serials_flush(t);
    lg_sample_verify(t);
    return NULL;
}

/* ---- server CPU time from /proc ---- */

/* utime+stime (clock ticks) and parent of a process, from /proc/PID/stat (all its threads). */
static bool
lg_proc_stat(pid_t pid, pid_t *ppid, uint64_t *ticks)
{
    char path[64], buf[1024], *p;
    unsigned long long ut = 0, st = 0;
    int pp = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL ||
        sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &pp, &ut, &st) != 3)
        return false;
    *ppid = pp;
    *ticks = ut + st;
    return true;
}

/* CPU ticks of pid and of all its descendants that are alive now. */
static uint64_t
lg_tree_ticks(pid_t root)
{
    enum { MAXP = 32768 };
    static pid_t pid[MAXP], ppid[MAXP];
    static uint64_t tk[MAXP];
    static bool in[MAXP];
    DIR *d = opendir("/proc");
    struct dirent *de;
    size_t n = 0, i;
    uint64_t sum = 0;
    bool grew = true;

    while (d != NULL && (de = readdir(d)) != NULL && n < MAXP) {
        pid_t p = (pid_t)atoi(de->d_name);
        if (p > 0 && lg_proc_stat(p, &ppid[n], &tk[n])) {
            pid[n] = p;
            in[n] = p == root;
            n++;
        }
    }
    if (d != NULL)
        closedir(d);
    while (grew) {
        grew = false;
        for (i = 0; i < n; i++) {
            size_t j;
            for (j = 0; j < n && !in[i]; j++) {
                if (in[j] && ppid[i] == pid[j])
                    grew = in[i] = true;
            }
        }
    }
    for (i = 0; i < n; i++)
        sum += in[i] ? tk[i] : 0;
    return sum;
}

static double
lg_server_cpu_s(const struct lg_opts *o)
{
    double s = 0;
    unsigned i;

    for (i = 0; i < o->npids; i++)
        s += (double)lg_tree_ticks(o->pids[i]) / (double)sysconf(_SC_CLK_TCK);
    return s;
}

/* ---- set-up of a run ---- */

static int
lg_serials_open(struct lg_run *r)
{
    if (r->o.serials == NULL)
        return ST_OK;
    if (r->rs.kind != LG_KIND_TSA) {
        log_err("--save-serials needs a TSA request set");
        return ST_INVALID;
    }
    r->serials_fd = open(r->o.serials, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (r->serials_fd < 0) {
        log_err("cannot open %s: %s", r->o.serials, strerror(errno));
        return ST_IO;
    }
    return ST_OK;
}

static int
lg_run_prepare(struct lg_run *r)
{
    uint32_t i;
    int st;

    if (lg_target_parse(&r->target, r->o.url) != ST_OK) {
        log_err("bad or unresolvable URL %s (http[s]://host[:port]/path)", r->o.url);
        return ST_INVALID;
    }
    if (r->target.tls && (r->tls = lg_tls_ctx(r->o.tls_ca)) == NULL)
        return ST_CRYPTO;
    if (r->target.tls && r->o.tls_ca == NULL)
        log_warn("https without --tls-ca: the server certificate is not verified");
    if ((st = lg_reqset_load(&r->rs, r->o.reqfile)) != ST_OK)
        return st;
    r->want_ctype =
        r->rs.kind == LG_KIND_TSA ? "application/timestamp-reply" : "application/ocsp-response";
    r->wire = calloc(r->rs.count, sizeof(*r->wire));
    if (r->wire == NULL)
        return ST_NOMEM;
    for (i = 0; i < r->rs.count; i++) {
        if ((st = lg_wire_build(&r->wire[i], &r->target, r->rs.kind, &r->rs.req[i], r->o.close)))
            return st;
    }
    r->verify = r->o.verify_every > 0 && r->o.ca != NULL;
    if (r->verify && lg_verifier_init(&r->ver, r->rs.kind, r->o.ca, r->o.untrusted) != ST_OK)
        return ST_CRYPTO;
    return lg_serials_open(r);
}

static int
lg_threads_prepare(struct lg_run *r)
{
    unsigned i, j, nt = r->o.threads;

    r->th = calloc(nt, sizeof(*r->th));
    if (r->th == NULL)
        return ST_NOMEM;
    for (i = 0; i < nt; i++) {
        struct lg_thread *t = &r->th[i];
        t->run = r;
        t->idx = i;
        t->nconn = r->o.conns / nt + (i < r->o.conns % nt);
        t->conn = calloc(t->nconn, sizeof(*t->conn));
        t->idle = calloc(t->nconn, sizeof(*t->idle));
        t->sample = calloc(LG_SAMPLE_MAX, sizeof(*t->sample));
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        if (t->conn == NULL || t->idle == NULL || t->sample == NULL || t->ep < 0)
            return ST_NOMEM;
        if (r->serials_fd >= 0 && (t->sbuf = malloc(LG_SERIAL_BUF)) == NULL)
            return ST_NOMEM;
        for (j = 0; j < t->nconn; j++)
            t->conn[j].fd = -1;
        lg_hist_reset(&t->st.hist);
        t->next_req = (uint32_t)((uint64_t)r->rs.count * i / nt);
        if (r->o.rate > 0) {
            t->interval = (int64_t)(1e9 * nt / r->o.rate);
            t->next_due = r->t_start + t->interval * i / nt;
        }
    }
    return ST_OK;
}

static void
lg_threads_free(struct lg_run *r)
{
    unsigned i;

    for (i = 0; r->th != NULL && i < r->o.threads; i++) {
        free(r->th[i].conn);
        free(r->th[i].idle);
        free(r->th[i].sample);
        free(r->th[i].sbuf);
        if (r->th[i].ep >= 0)
            close(r->th[i].ep);
    }
    free(r->th);
}

static void
lg_run_free(struct lg_run *r)
{
    uint32_t i;

    lg_threads_free(r);
    for (i = 0; r->wire != NULL && i < r->rs.count; i++)
        free(r->wire[i].buf);
    free(r->wire);
    lg_verifier_clear(&r->ver);
    lg_reqset_free(&r->rs);
    SSL_CTX_free(r->tls);
    r->tls = NULL;
    if (r->serials_fd >= 0 && close(r->serials_fd) != 0)
        atomic_store(&r->serials_failed, true);
    r->serials_fd = -1;
}

/* ---- results ---- */

struct lg_result {
    struct lg_stats total;
    double elapsed_s, rps, server_cpu_s, client_cpu_s;
    uint64_t errors;
};

static void
lg_stats_merge(struct lg_stats *d, const struct lg_stats *s)
{
    unsigned i;

    lg_hist_merge(&d->hist, &s->hist);
    d->ok += s->ok;
    d->sent += s->sent;
    d->retries += s->retries;
    d->connects += s->connects;
    d->verified += s->verified;
    d->sampled += s->sampled;
    d->missed += s->missed;
    d->unfinished += s->unfinished;
    d->serials += s->serials;
    d->serials_bad += s->serials_bad;
    d->bytes_in += s->bytes_in;
    d->bytes_out += s->bytes_out;
    for (i = 0; i < LG_E_COUNT; i++)
        d->err[i] += s->err[i];
    for (i = 0; i < 600; i++)
        d->http_code[i] += s->http_code[i];
}

static void
lg_print_errors(const struct lg_result *res)
{
    unsigned i;

    if (res->errors == 0) {
        printf("  errors     none\n");
        return;
    }
    printf("  errors     %llu:", (unsigned long long)res->errors);
    for (i = 0; i < LG_E_COUNT; i++) {
        if (res->total.err[i] > 0)
            printf(" %s=%llu", lg_err_name[i], (unsigned long long)res->total.err[i]);
    }
    for (i = 100; i < 600; i++) {
        if (i != 200 && res->total.http_code[i] > 0)
            printf(" http_%u=%llu", i, (unsigned long long)res->total.http_code[i]);
    }
    printf("\n");
}

static void
lg_print(const struct lg_run *r, const struct lg_result *res)
{
    const struct lg_hist *h = &res->total.hist;

    printf("loadgen %s: %s\n  load       %s loop, %u connections%s, %u thread(s), %.1f s",
           r->o.label, r->o.url, r->o.rate > 0 ? "open" : "closed", r->o.conns,
           r->o.close ? " (close)" : " (keep-alive)", r->o.threads, res->elapsed_s);
    if (r->o.rate > 0)
        printf(", target %.0f/s", r->o.rate);
    printf("\n  requests   %llu ok, %.1f/s", (unsigned long long)res->total.ok, res->rps);
    if (res->total.missed > 0)
        printf(", %llu never sent (no free connection)", (unsigned long long)res->total.missed);
    printf("\n  latency    p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  ms\n",
           (double)lg_hist_quantile(h, 0.50) / 1e6, (double)lg_hist_quantile(h, 0.90) / 1e6,
           (double)lg_hist_quantile(h, 0.99) / 1e6, (double)lg_hist_quantile(h, 0.999) / 1e6,
           (double)h->max_ns / 1e6);
    lg_print_errors(res);
    if (r->verify)
        printf("  verified   %llu of %llu sampled replies (1 in %u, checked after the load)\n",
               (unsigned long long)res->total.verified, (unsigned long long)res->total.sampled,
               r->o.verify_every);
    if (r->o.npids > 0 && res->total.ok > 0)
        printf("  server cpu %.3f s = %.1f us/request\n", res->server_cpu_s,
               res->server_cpu_s * 1e6 / (double)res->total.ok);
    if (r->o.serials != NULL)
        printf("  serials    %llu appended to %s%s\n", (unsigned long long)res->total.serials,
               r->o.serials,
               res->total.serials_bad > 0 ? " (some granted replies unreadable)" : "");
    if (res->total.ok > 0)
        printf("  client cpu %.1f us/request, %llu connects, %llu retries\n",
               res->client_cpu_s * 1e6 / (double)res->total.ok,
               (unsigned long long)res->total.connects, (unsigned long long)res->total.retries);
}

static void
lg_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
    fputc('"', f);
}

static void
lg_json_errors(FILE *f, const struct lg_result *res)
{
    unsigned i;
    const char *sep = "";

    fprintf(f, "  \"errors\": %llu,\n  \"error_kinds\": {", (unsigned long long)res->errors);
    for (i = 0; i < LG_E_COUNT; i++) {
        fprintf(f, "%s\"%s\": %llu", sep, lg_err_name[i], (unsigned long long)res->total.err[i]);
        sep = ", ";
    }
    fprintf(f, "},\n  \"http_codes\": {");
    sep = "";
    for (i = 100; i < 600; i++) {
        if (res->total.http_code[i] > 0) {
            fprintf(f, "%s\"%u\": %llu", sep, i, (unsigned long long)res->total.http_code[i]);
            sep = ", ";
        }
    }
    fprintf(f, "},\n");
}

static int
lg_write_json(const struct lg_run *r, const struct lg_result *res)
{
    const struct lg_hist *h = &res->total.hist;
    double ok = (double)res->total.ok;
    FILE *f = fopen(r->o.json, "w");

    if (f == NULL) {
        log_err("cannot write %s", r->o.json);
        return ST_IO;
    }
    fprintf(f, "{\n  \"label\": ");
    lg_json_string(f, r->o.label);
    fprintf(f, ",\n  \"url\": ");
    lg_json_string(f, r->o.url);
    fprintf(f, ",\n  \"kind\": \"%s\",\n  \"mode\": \"%s\",\n  \"keepalive\": %s,\n",
            r->rs.kind == LG_KIND_TSA ? "tsa" : "ocsp", r->o.rate > 0 ? "open" : "closed",
            r->o.close ? "false" : "true");
    fprintf(f, "  \"connections\": %u,\n  \"threads\": %u,\n  \"target_rate\": %.1f,\n", r->o.conns,
            r->o.threads, r->o.rate);
    fprintf(f, "  \"elapsed_s\": %.3f,\n  \"requests_ok\": %llu,\n  \"rps\": %.1f,\n",
            res->elapsed_s, (unsigned long long)res->total.ok, res->rps);
    fprintf(f, "  \"missed\": %llu,\n  \"unfinished\": %llu,\n  \"sampled\": %llu,\n",
            (unsigned long long)res->total.missed, (unsigned long long)res->total.unfinished,
            (unsigned long long)res->total.sampled);
    fprintf(f, "  \"verified\": %llu,\n", (unsigned long long)res->total.verified);
    if (r->o.serials != NULL)
        fprintf(f, "  \"serials_saved\": %llu,\n  \"serials_unreadable\": %llu,\n",
                (unsigned long long)res->total.serials, (unsigned long long)res->total.serials_bad);
    lg_json_errors(f, res);
    fprintf(f,
            "  \"latency_ms\": {\"p50\": %.4f, \"p90\": %.4f, \"p99\": %.4f, \"p999\": %.4f, "
            "\"max\": %.4f, \"mean\": %.4f},\n",
            (double)lg_hist_quantile(h, 0.50) / 1e6, (double)lg_hist_quantile(h, 0.90) / 1e6,
            (double)lg_hist_quantile(h, 0.99) / 1e6, (double)lg_hist_quantile(h, 0.999) / 1e6,
            (double)h->max_ns / 1e6, h->count ? h->sum_ns / (double)h->count / 1e6 : 0.0);
    fprintf(f, "  \"server_cpu_s\": %.3f,\n  \"server_cpu_us_per_req\": %.2f,\n", res->server_cpu_s,
            ok > 0 && r->o.npids > 0 ? res->server_cpu_s * 1e6 / ok : 0.0);
    fprintf(f, "  \"client_cpu_us_per_req\": %.2f,\n  \"connects\": %llu,\n",
            ok > 0 ? res->client_cpu_s * 1e6 / ok : 0.0, (unsigned long long)res->total.connects);
    fprintf(f, "  \"bytes_in\": %llu,\n  \"bytes_out\": %llu\n}\n",
            (unsigned long long)res->total.bytes_in, (unsigned long long)res->total.bytes_out);
    return fclose(f) == 0 ? ST_OK : ST_IO;
}

/* ---- run ---- */

static void
lg_sleep_until(int64_t t)
{
    struct timespec ts = {.tv_sec = t / 1000000000, .tv_nsec = t % 1000000000};

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int
lg_execute(struct lg_run *r, struct lg_result *res)
{
    double cpu0;
    int64_t last = 0;
    unsigned i, started = 0;
    int st = ST_OK;

    r->t_start = lg_now() + 10000000;
    r->t_measure = r->t_start + (int64_t)(r->o.warmup_s * 1e9);
    r->t_end = r->o.count > 0 ? INT64_MAX / 2 : r->t_measure + (int64_t)(r->o.duration_s * 1e9);
    if ((st = lg_threads_prepare(r)) != ST_OK)
        return st;
    for (i = 0; i < r->o.threads; i++, started++) {
        if (pthread_create(&r->th[i].tid, NULL, lg_thread_main, &r->th[i]) != 0) {
            log_err("cannot start a load thread");
            st = ST_ERR;
            break;
        }
    }
    lg_sleep_until(r->t_measure);
    cpu0 = lg_server_cpu_s(&r->o);
    memset(res, 0, sizeof(*res));
    lg_hist_reset(&res->total.hist);
    for (i = 0; i < started; i++) {
        pthread_join(r->th[i].tid, NULL);
        lg_stats_merge(&res->total, &r->th[i].st);
        res->client_cpu_s += r->th[i].cpu1 - r->th[i].cpu0;
        if (r->th[i].last_done > last)
            last = r->th[i].last_done;
    }
    res->server_cpu_s = lg_server_cpu_s(&r->o) - cpu0;
    if (res->server_cpu_s < 0) /* a server pid exited during the run: its CPU is gone */
        res->server_cpu_s = 0;
    res->elapsed_s = last > r->t_measure ? (double)(last - r->t_measure) / 1e9 : 0;
    res->rps = res->elapsed_s > 0 ? (double)res->total.ok / res->elapsed_s : 0;
    for (i = 0; i < LG_E_COUNT; i++)
        res->errors += res->total.err[i];
    return st;
}

static void
lg_usage(FILE *f)
{
    fprintf(f,
            "usage: loadgen gen-tsa --out FILE [--count N] [--hashes sha256=2,sha384=1,...]\n"
            "                [--nonce PCT] [--cert-req PCT] [--policy OID] [--seed N]\n"
            "       loadgen gen-ocsp --out FILE --issuer CA.pem --serials LIST\n"
            "                [--mix hit=9,never=1] [--never-status notgood] [--certid-hash sha1]\n"
            "                [--get PCT] [--nonce PCT] [--count N] [--seed N]\n"
            "                LIST lines: SERIALHEX good|revoked|unknown|notgood|any [SET]\n"
            "       loadgen run --url URL --requests FILE [--conns N] [--threads N]\n"
            "                [--duration S | --count N] [--warmup S] [--rate R] [--close]\n"
            "                [--timeout S] [--verify-every N --ca FILE [--untrusted FILE]]\n"
            "                [--tls-ca FILE]   (https:// URL: verify the server with FILE)\n"
            "                [--pid PID]... [--json FILE] [--label NAME]\n"
            "                [--save-serials FILE]   (TSA: serials of granted tokens, appended)\n");
}

static bool
lg_parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end != '\0' || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

static int
lg_run_opt(struct lg_opts *o, int c, const char *arg)
{
    double v = 0;

    switch (c) {
    case 'u':
        o->url = arg;
        return ST_OK;
    case 'r':
        o->reqfile = arg;
        return ST_OK;
    case 'a':
        o->ca = arg;
        return ST_OK;
    case 'U':
        o->untrusted = arg;
        return ST_OK;
    case 'j':
        o->json = arg;
        return ST_OK;
    case 'l':
        o->label = arg;
        return ST_OK;
    case 'S':
        o->serials = arg;
        return ST_OK;
    case 'A':
        o->tls_ca = arg;
        return ST_OK;
    case 'C':
        o->close = true;
        return ST_OK;
    case 'c':
        if (!lg_parse_num(arg, 1, LG_MAX_CONNS, &v))
            break;
        o->conns = (unsigned)v;
        return ST_OK;
    case 't':
        if (!lg_parse_num(arg, 1, LG_MAX_THREADS, &v))
            break;
        o->threads = (unsigned)v;
        return ST_OK;
    case 'v':
        if (!lg_parse_num(arg, 0, 1e9, &v))
            break;
        o->verify_every = (unsigned)v;
        return ST_OK;
    case 'd':
        if (!lg_parse_num(arg, 0.1, LG_MAX_DURATION, &o->duration_s))
            break;
        return ST_OK;
    case 'w':
        if (!lg_parse_num(arg, 0, 600, &o->warmup_s))
            break;
        return ST_OK;
    case 'R':
        if (!lg_parse_num(arg, 1, 1e7, &o->rate))
            break;
        return ST_OK;
    case 'T':
        if (!lg_parse_num(arg, 0.01, 600, &o->timeout_s))
            break;
        return ST_OK;
    case 'n':
        if (!lg_parse_num(arg, 1, 1e12, &v))
            break;
        o->count = (uint64_t)v;
        return ST_OK;
    case 'p':
        if (o->npids == LG_MAX_PIDS || !lg_parse_num(arg, 1, 4194304, &v))
            break;
        o->pids[o->npids++] = (pid_t)v;
        return ST_OK;
    default:
        break;
    }
    return ST_INVALID;
}

static int
lg_run_args(struct lg_opts *o, int argc, char **argv)
{
    /* clang-format off */
    static const struct option lo[] = {
        {"url", 1, NULL, 'u'},          {"requests", 1, NULL, 'r'},     {"ca", 1, NULL, 'a'},
        {"untrusted", 1, NULL, 'U'},    {"json", 1, NULL, 'j'},         {"label", 1, NULL, 'l'},
        {"close", 0, NULL, 'C'},        {"conns", 1, NULL, 'c'},        {"threads", 1, NULL, 't'},
        {"verify-every", 1, NULL, 'v'}, {"duration", 1, NULL, 'd'},     {"warmup", 1, NULL, 'w'},
        {"rate", 1, NULL, 'R'},         {"timeout", 1, NULL, 'T'},      {"count", 1, NULL, 'n'},
        {"pid", 1, NULL, 'p'},          {"save-serials", 1, NULL, 'S'}, {"tls-ca", 1, NULL, 'A'},
        {NULL, 0, NULL, 0}};
    /* clang-format on */
    int c;

    *o = (struct lg_opts){.conns = 16,
                          .threads = 1,
                          .duration_s = 5,
                          .timeout_s = 10,
                          .verify_every = 100,
                          .label = "run"};
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (lg_run_opt(o, c, optarg) != ST_OK) {
            log_err("bad option or value (%s)", argv[optind - 1]);
            return ST_INVALID;
        }
    }
    if (o->url == NULL || o->reqfile == NULL || optind != argc || o->threads > o->conns ||
        (o->count > 0 && o->rate > 0)) {
        lg_usage(stderr);
        return ST_INVALID;
    }
    if (o->verify_every > 0 && o->ca == NULL)
        log_warn("no --ca: replies are checked for status and type only, none verified");
    return ST_OK;
}

static int
lg_cmd_run(int argc, char **argv)
{
    struct lg_run r;
    struct lg_result res;
    int st;

    memset(&r, 0, sizeof(r));
    r.serials_fd = -1;
    if ((st = lg_run_args(&r.o, argc, argv)) != ST_OK)
        return st;
    if ((st = lg_run_prepare(&r)) == ST_OK && (st = lg_execute(&r, &res)) == ST_OK) {
        lg_print(&r, &res);
        if (r.o.json != NULL)
            st = lg_write_json(&r, &res);
    }
    lg_run_free(&r);
    if (st == ST_OK && atomic_load(&r.serials_failed))
        st = ST_IO;
    return st;
}

/* ---- request-set generation ---- */

struct lg_gen_opts {
    const char *out, *issuer, *serials, *mix, *hashes, *never, *certid_hash, *policy;
    double count, nonce_pct, certreq_pct, get_pct, seed;
};

static int
lg_gen_args(struct lg_gen_opts *g, int argc, char **argv)
{
    static const struct option lo[] = {
        {"out", 1, NULL, 'o'},         {"issuer", 1, NULL, 'i'},   {"serials", 1, NULL, 's'},
        {"mix", 1, NULL, 'm'},         {"hashes", 1, NULL, 'H'},   {"never-status", 1, NULL, 'N'},
        {"certid-hash", 1, NULL, 'h'}, {"policy", 1, NULL, 'P'},   {"count", 1, NULL, 'n'},
        {"nonce", 1, NULL, 'x'},       {"cert-req", 1, NULL, 'q'}, {"get", 1, NULL, 'g'},
        {"seed", 1, NULL, 'S'},        {NULL, 0, NULL, 0}};
    int c;
    bool ok = true;

    *g = (struct lg_gen_opts){.mix = "hit=1",
                              .hashes = "sha256=1",
                              .never = "notgood",
                              .certid_hash = "sha1",
                              .count = 10000,
                              .nonce_pct = -1,
                              .certreq_pct = 100,
                              .seed = 1};
    while (ok && (c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'o':
            g->out = optarg;
            break;
        case 'i':
            g->issuer = optarg;
            break;
        case 's':
            g->serials = optarg;
            break;
        case 'm':
            g->mix = optarg;
            break;
        case 'H':
            g->hashes = optarg;
            break;
        case 'N':
            g->never = optarg;
            break;
        case 'h':
            g->certid_hash = optarg;
            break;
        case 'P':
            g->policy = optarg;
            break;
        case 'n':
            ok = lg_parse_num(optarg, 1, LG_SET_MAX_COUNT, &g->count);
            break;
        case 'x':
            ok = lg_parse_num(optarg, 0, 100, &g->nonce_pct);
            break;
        case 'q':
            ok = lg_parse_num(optarg, 0, 100, &g->certreq_pct);
            break;
        case 'g':
            ok = lg_parse_num(optarg, 0, 100, &g->get_pct);
            break;
        case 'S':
            ok = lg_parse_num(optarg, 1, 1e15, &g->seed);
            break;
        default:
            ok = false;
            break;
        }
    }
    if (!ok || g->out == NULL || optind != argc) {
        lg_usage(stderr);
        return ST_INVALID;
    }
    return ST_OK;
}

static int
lg_gen_tsa(const struct lg_gen_opts *g, FILE *f, uint64_t *seed)
{
    struct lg_tsa_opts o = {.nonce_pct = g->nonce_pct < 0 ? 100 : (unsigned)g->nonce_pct,
                            .certreq_pct = (unsigned)g->certreq_pct,
                            .policy = g->policy};
    uint8_t *der = NULL;
    unsigned i;
    int len, st;

    if (lg_mix_parse(&o.hashes, g->hashes) != ST_OK) {
        log_err("bad --hashes %s (e.g. sha256=2,sha384=1,sha512=1)", g->hashes);
        return ST_INVALID;
    }
    for (i = 0; i < o.hashes.n; i++) {
        if (EVP_get_digestbyname(o.hashes.name[i]) == NULL) {
            log_err("unknown hash %s", o.hashes.name[i]);
            return ST_INVALID;
        }
    }
    st = lg_write_header(f, LG_KIND_TSA, (uint32_t)g->count);
    for (i = 0; st == ST_OK && i < (unsigned)g->count; i++) {
        len = lg_tsa_one(&o, seed, &der);
        st = len > 0 ? lg_write_record(f, LG_POST, LG_EXPECT_ANY, der, len) : ST_CRYPTO;
        OPENSSL_free(der);
    }
    return st;
}

static int
lg_gen_ocsp_setup(const struct lg_gen_opts *g, struct lg_ocsp_opts *o)
{
    BIO *b;

    if (g->issuer == NULL || (b = BIO_new_file(g->issuer, "r")) == NULL) {
        log_err("gen-ocsp needs a readable --issuer certificate");
        return ST_INVALID;
    }
    o->issuer = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    o->certid_md = EVP_get_digestbyname(g->certid_hash);
    o->nonce_pct = g->nonce_pct < 0 ? 0 : (unsigned)g->nonce_pct;
    o->get_pct = (unsigned)g->get_pct;
    if (o->issuer == NULL || o->certid_md == NULL || lg_mix_parse(&o->mix, g->mix) != ST_OK ||
        lg_expect_parse(g->never, &o->never_expect) != ST_OK) {
        log_err("bad --issuer, --certid-hash, --mix or --never-status");
        return ST_INVALID;
    }
    if (g->serials != NULL && lg_serials_load(o, g->serials) != ST_OK)
        return ST_INVALID;
    return lg_serials_index(o);
}

static int
lg_gen_ocsp(const struct lg_gen_opts *g, FILE *f, uint64_t *seed)
{
    struct lg_ocsp_opts o;
    uint8_t *der = NULL, expect = 0, method;
    unsigned i;
    int len, st;

    memset(&o, 0, sizeof(o));
    st = lg_gen_ocsp_setup(g, &o);
    if (st == ST_OK)
        st = lg_write_header(f, LG_KIND_OCSP, (uint32_t)g->count);
    for (i = 0; st == ST_OK && i < (unsigned)g->count; i++) {
        len = lg_ocsp_one(&o, seed, &der, &expect);
        method = lg_rand_pct(seed, o.get_pct) ? LG_GET : LG_POST;
        st = len > 0 ? lg_write_record(f, method, expect, der, len) : ST_CRYPTO;
        OPENSSL_free(der);
        der = NULL;
    }
    lg_ocsp_opts_clear(&o);
    return st;
}

static int
lg_cmd_gen(bool tsa, int argc, char **argv)
{
    struct lg_gen_opts g;
    uint64_t seed;
    FILE *f;
    int st;

    if ((st = lg_gen_args(&g, argc, argv)) != ST_OK)
        return st;
    seed = (uint64_t)g.seed * 0x9e3779b97f4a7c15ULL + 1;
    if ((f = fopen(g.out, "wb")) == NULL) {
        log_err("cannot write %s", g.out);
        return ST_IO;
    }
    st = tsa ? lg_gen_tsa(&g, f, &seed) : lg_gen_ocsp(&g, f, &seed);
    if (fclose(f) != 0 && st == ST_OK)
        st = ST_IO;
    if (st != ST_OK) {
        log_openssl(LOG_LVL_ERR, "request generation failed");
        unlink(g.out);
    }
    return st;
}

int
main(int argc, char **argv)
{
    int st;

    log_init("loadgen", LOG_LVL_NOTICE);
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        lg_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "gen-tsa") == 0 || strcmp(argv[1], "gen-ocsp") == 0)
        st = lg_cmd_gen(argv[1][4] == 't', argc - 1, argv + 1);
    else if (strcmp(argv[1], "run") == 0)
        st = lg_cmd_run(argc - 1, argv + 1);
    else if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        lg_usage(stdout);
        return 0;
    } else {
        lg_usage(stderr);
        return 2;
    }
    return st == ST_OK ? 0 : 1;
}
