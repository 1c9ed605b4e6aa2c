/*
 * clock: the UTC time gate (DESIGN D3; STANDARDS TSA-04, TSA-05, TSP-12; ETSI EN 319 421
 * TIS-7.7.1-07, TIS-7.7.2-05/06; RFC 3161 section 2.4.2 "timeNotAvailable").
 *
 * A poller thread asks chronyd for its tracking state over the command socket (the request
 * `chronyc tracking` sends, protocol version 6) and reads the kernel's ntp_adjtime(2) status,
 * every poll interval. The request path (clock_read) only copies that snapshot under a mutex
 * and reads CLOCK_REALTIME/CLOCK_MONOTONIC; from both it derives an error bound and a verdict.
 * Only CLOCK_OK lets a time-stamp be issued. Verdict changes are audit events.
 */
#include "common/clock.h"
#include "common/clock_int.h"
#include "common/log.h"
#include "common/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <sys/un.h>
#include <unistd.h>

#define CLOCK_CHRONY_TIMEOUT_MS 1000
#define CLOCK_CHRONY_ATTEMPTS 2
#define CLOCK_SECONDS_PER_DAY 86400

struct clock {
    struct clock_config cfg; /* cfg.chrony_socket points at socket_path */
    char *socket_path;       /* owned copy, may be NULL with a replaced source */
    struct clock_source src;
    pthread_mutex_t lock;      /* guards state, stopping, verdict fields */
    pthread_cond_t wake;       /* signalled by clock_free */
    pthread_mutex_t poll_lock; /* serialises sampling so transitions are logged in order */
    pthread_t thread;
    bool sync_ready; /* lock, wake and poll_lock are initialised */
    bool thread_started;
    bool stopping;
    struct clock_state state;
    bool verdict_known; /* a verdict has been logged */
    enum clock_verdict verdict;
};

static atomic_uint clock_sock_counter;
static atomic_uint clock_seq_counter;

/* ---- small helpers ---- */

static double
clock_ts_diff(const struct timespec *a, const struct timespec *b)
{
    return (double)(a->tv_sec - b->tv_sec) + (double)(a->tv_nsec - b->tv_nsec) * 1e-9;
}

static uint32_t
clock_get32(const unsigned char *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return ntohl(v);
}

static uint16_t
clock_get16(const unsigned char *p)
{
    uint16_t v;

    memcpy(&v, p, sizeof(v));
    return ntohs(v);
}

static void
clock_put16(unsigned char *p, uint16_t v)
{
    v = htons(v);
    memcpy(p, &v, sizeof(v));
}

static void
clock_put32(unsigned char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, sizeof(v));
}

const char *
clock_verdict_str(enum clock_verdict v)
{
    switch (v) {
    case CLOCK_OK:
        return "ok";
    case CLOCK_UNREACHABLE:
        return "unreachable";
    case CLOCK_UNSYNC:
        return "unsync";
    case CLOCK_STALE:
        return "stale";
    case CLOCK_BOUND:
        return "bound";
    case CLOCK_LEAP:
        return "leap";
    case CLOCK_STEPPED:
        return "stepped";
    }
    return "unknown";
}

/* ---- chronyd command protocol ---- */

double
clock_chrony_float(uint32_t v)
{
    int32_t e = (int32_t)(v >> 25);           /* 7-bit two's complement exponent */
    int32_t coef = (int32_t)(v & 0x1ffffffu); /* 25-bit two's complement coefficient */

    if (e >= 64)
        e -= 128;
    if (coef >= (1 << 24))
        coef -= (1 << 25);
    return ldexp((double)coef, e - 25);
}

size_t
clock_chrony_build_request(unsigned char *buf, uint32_t seq, uint16_t attempt)
{
    memset(buf, 0, CLOCK_CHRONY_TRACKING_LEN);
    buf[0] = CLOCK_CHRONY_PROTO_VERSION;
    buf[1] = CLOCK_CHRONY_PKT_REQUEST;
    clock_put16(buf + 4, CLOCK_CHRONY_REQ_TRACKING);
    clock_put16(buf + 6, attempt);
    clock_put32(buf + 8, seq);
    /* bytes 12..19 are pad1/pad2, the rest padding up to the reply length */
    return CLOCK_CHRONY_TRACKING_LEN;
}

static double
clock_chrony_float_at(const unsigned char *buf, size_t off)
{
    return clock_chrony_float(clock_get32(buf + off));
}

/* Header checks in the order chronyc applies them; the sequence number last so that a
 * stray reply is told apart from a broken one. */
static int
clock_chrony_check_header(const unsigned char *buf, size_t len, uint32_t seq)
{
    if (len < CLOCK_CHRONY_REPLY_HDR_LEN)
        return ST_INVALID;
    if (buf[0] != CLOCK_CHRONY_PROTO_VERSION || buf[1] != CLOCK_CHRONY_PKT_REPLY || buf[2] != 0 ||
        buf[3] != 0)
        return ST_INVALID;
    if (clock_get32(buf + CLOCK_CHRONY_OFF_SEQ) != seq)
        return ST_NOTFOUND;
    if (clock_get16(buf + 4) != CLOCK_CHRONY_REQ_TRACKING)
        return ST_INVALID;
    if (clock_get16(buf + CLOCK_CHRONY_OFF_STATUS) != CLOCK_CHRONY_STT_SUCCESS) {
        log_debug("clock: chronyd status %u", clock_get16(buf + CLOCK_CHRONY_OFF_STATUS));
        return ST_INVALID;
    }
    if (clock_get16(buf + CLOCK_CHRONY_OFF_REPLY) != CLOCK_CHRONY_RPY_TRACKING ||
        len < CLOCK_CHRONY_TRACKING_LEN)
        return ST_INVALID;
    return ST_OK;
}

int
clock_chrony_parse_reply(const unsigned char *buf, size_t len, uint32_t seq,
                         const struct timespec *now, struct clock_sample *out)
{
    struct timespec ref;
    uint32_t high;
    int st;

    st = clock_chrony_check_header(buf, len, seq);
    if (st != ST_OK)
        return st;
    out->leap = clock_get16(buf + CLOCK_CHRONY_OFF_LEAP);
    if (out->leap > 3)
        return ST_INVALID;
    out->stratum = clock_get16(buf + CLOCK_CHRONY_OFF_STRATUM);
    out->ref_id = clock_get32(buf + CLOCK_CHRONY_OFF_REF_ID);
    high = clock_get32(buf + CLOCK_CHRONY_OFF_REF_TIME);
    if (high == 0x7fffffffu) /* TV_NOHIGHSEC: a 32-bit time_t sender */
        high = 0;
    ref.tv_sec =
        (time_t)(((uint64_t)high << 32) | clock_get32(buf + CLOCK_CHRONY_OFF_REF_TIME + 4));
    ref.tv_nsec = (long)clock_get32(buf + CLOCK_CHRONY_OFF_REF_TIME + 8);
    if (ref.tv_nsec > 999999999L)
        ref.tv_nsec = 999999999L;
    out->offset = clock_chrony_float_at(buf, CLOCK_CHRONY_OFF_CORRECTION);
    out->resid_freq_ppm = clock_chrony_float_at(buf, CLOCK_CHRONY_OFF_RESID_FREQ);
    out->skew_ppm = clock_chrony_float_at(buf, CLOCK_CHRONY_OFF_SKEW);
    out->root_delay = clock_chrony_float_at(buf, CLOCK_CHRONY_OFF_ROOT_DELAY);
    out->root_dispersion = clock_chrony_float_at(buf, CLOCK_CHRONY_OFF_ROOT_DISP);
    out->last_update_age = clock_ts_diff(now, &ref);
    out->ref_time = ref;
    return ST_OK;
}

/* Our reply address: next to the server socket (as chronyc does), else in /tmp. Writable by
 * all, so that a chronyd that dropped root privileges can answer. */
static int
clock_chrony_bind(int fd, const char *server_path, struct sockaddr_un *local)
{
    const char *slash = strrchr(server_path, '/');
    int dirlen = slash != NULL ? (int)(slash - server_path) : 1;
    const char *dir = slash != NULL ? server_path : ".";
    unsigned int n = atomic_fetch_add(&clock_sock_counter, 1);

    for (int pass = 0; pass < 2; pass++) {
        int r;

        memset(local, 0, sizeof(*local));
        local->sun_family = AF_UNIX;
        if (pass == 1) {
            dir = "/tmp";
            dirlen = 4;
        }
        r = snprintf(local->sun_path, sizeof(local->sun_path), "%.*s/clockgate.%d.%u.sock", dirlen,
                     dir, (int)getpid(), n);
        if (r < 0 || (size_t)r >= sizeof(local->sun_path))
            continue;
        unlink(local->sun_path);
        if (bind(fd, (struct sockaddr *)local, sizeof(*local)) < 0)
            continue;
        if (chmod(local->sun_path, 0666) < 0) {
            unlink(local->sun_path);
            local->sun_path[0] = '\0';
            return ST_IO;
        }
        return ST_OK;
    }
    local->sun_path[0] = '\0';
    return ST_IO;
}

static int
clock_chrony_connect(int fd, const char *path)
{
    struct sockaddr_un srv;

    memset(&srv, 0, sizeof(srv));
    srv.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(srv.sun_path))
        return ST_INVALID;
    memcpy(srv.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&srv, sizeof(srv)) < 0) {
        log_debug("clock: connect %s: %s", path, strerror(errno));
        return ST_IO;
    }
    return ST_OK;
}

/* Wait up to the timeout for our reply; stray replies are dropped. */
static int
clock_chrony_await(int fd, uint32_t seq, struct clock_sample *out)
{
    unsigned char buf[1024];
    struct timespec start, now;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int left, r;
        ssize_t n;

        clock_gettime(CLOCK_MONOTONIC, &now);
        left = CLOCK_CHRONY_TIMEOUT_MS - (int)(clock_ts_diff(&now, &start) * 1000.0);
        if (left <= 0)
            return ST_TIMEOUT;
        r = poll(&pfd, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return ST_IO;
        if (r == 0)
            return ST_TIMEOUT;
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return ST_IO;
        clock_gettime(CLOCK_REALTIME, &now);
        r = clock_chrony_parse_reply(buf, (size_t)n, seq, &now, out);
        if (r != ST_NOTFOUND)
            return r;
    }
}

static int
clock_chrony_exchange(int fd, struct clock_sample *out)
{
    unsigned char req[CLOCK_CHRONY_TRACKING_LEN];
    struct timespec ts;
    uint32_t seq;
    int st = ST_TIMEOUT;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    seq = atomic_fetch_add(&clock_seq_counter, 1) * 2654435761u ^ (uint32_t)ts.tv_nsec ^
          (uint32_t)getpid();
    for (uint16_t attempt = 0; attempt < CLOCK_CHRONY_ATTEMPTS; attempt++) {
        size_t len = clock_chrony_build_request(req, seq, attempt);

        if (send(fd, req, len, 0) != (ssize_t)len) {
            log_debug("clock: send to chronyd: %s", strerror(errno));
            return ST_IO;
        }
        st = clock_chrony_await(fd, seq, out);
        if (st != ST_TIMEOUT)
            break;
    }
    return st;
}

static void
clock_kernel_sample(struct clock_sample *out)
{
    struct timex tx;
    int r;

    memset(&tx, 0, sizeof(tx)); /* modes = 0: read only */
    r = ntp_adjtime(&tx);
    if (r < 0) {
        log_debug("clock: ntp_adjtime: %s", strerror(errno));
        out->kernel_unsync = true;
        out->kernel_maxerror = 16.0;
        return;
    }
    out->kernel_unsync = r == TIME_ERROR || (tx.status & STA_UNSYNC) != 0;
    out->kernel_maxerror = (double)tx.maxerror * 1e-6;
}

int
clock_chrony_sample(const char *socket_path, struct clock_sample *out)
{
    struct sockaddr_un local;
    struct clock_sample s;
    int fd = -1;
    int st;

    memset(&local, 0, sizeof(local));
    memset(&s, 0, sizeof(s));
    if (socket_path == NULL || out == NULL) {
        st = ST_INVALID;
        goto out;
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        st = ST_IO;
        goto out;
    }
    st = clock_chrony_bind(fd, socket_path, &local);
    if (st != ST_OK)
        goto out;
    st = clock_chrony_connect(fd, socket_path);
    if (st != ST_OK)
        goto out;
    st = clock_chrony_exchange(fd, &s);
    if (st != ST_OK)
        goto out;
    clock_kernel_sample(&s);
    *out = s;
out:
    if (fd >= 0)
        close(fd);
    if (local.sun_path[0] != '\0')
        unlink(local.sun_path);
    if (st != ST_OK)
        log_debug("clock: chronyd at %s: %s", socket_path != NULL ? socket_path : "(null)",
                  status_str(st));
    return st;
}

/* ---- the default source ---- */

static int
clock_default_sample(void *ctx, struct clock_sample *out)
{
    return clock_chrony_sample((const char *)ctx, out);
}

static void
clock_default_now(void *ctx, struct timespec *realtime, struct timespec *monotonic)
{
    /* REALTIME bracketed by two MONOTONIC readings, the monotonic time taken as their middle:
     * a thread preempted between two plain reads (a busy machine) would otherwise look like a
     * clock step of the length of the preemption. The narrowest of a few tries is kept. */
    long best = -1;

    (void)ctx;
    for (int i = 0; i < 4; i++) {
        struct timespec m0, rt, m1;
        long width;

        clock_gettime(CLOCK_MONOTONIC, &m0);
        clock_gettime(CLOCK_REALTIME, &rt);
        clock_gettime(CLOCK_MONOTONIC, &m1);
        width = (long)((m1.tv_sec - m0.tv_sec) * 1000000000L + (m1.tv_nsec - m0.tv_nsec));
        if (best < 0 || width < best) {
            long half = width / 2;

            best = width;
            *realtime = rt;
            monotonic->tv_sec = m0.tv_sec + (m0.tv_nsec + half) / 1000000000L;
            monotonic->tv_nsec = (m0.tv_nsec + half) % 1000000000L;
        }
        if (best < 100000) /* within 100 us: good enough */
            break;
    }
}

/* ---- verdict ---- */

double
clock_error_bound(const struct clock_sample *s, double sample_age)
{
    double age = s->last_update_age + sample_age;
    double drift_ppm = fabs(s->skew_ppm) + fabs(s->resid_freq_ppm) + CLOCK_DRIFT_ALLOWANCE_PPM;

    if (age < 0)
        age = 0;
    return fabs(s->offset) + fabs(s->root_delay) / 2.0 + fabs(s->root_dispersion) +
           age * drift_ppm * 1e-6;
}

/* How far CLOCK_REALTIME moved against CLOCK_MONOTONIC between two readings (seconds). Both
 * run at the rate the kernel's NTP discipline sets; only a step moves one without the other. */
static double
clock_step(const struct timespec *rt0, const struct timespec *mono0, const struct timespec *rt,
           const struct timespec *mono)
{
    return clock_ts_diff(rt, rt0) - clock_ts_diff(mono, mono0);
}

static bool
clock_in_leap_window(const struct clock_config *cfg, const struct clock_state *st,
                     const struct timespec *rt)
{
    double to_leap;

    if (st->leap_when == 0)
        return false;
    to_leap = (double)(st->leap_when - rt->tv_sec) - (double)rt->tv_nsec * 1e-9;
    return fabs(to_leap) <= cfg->leap_guard;
}

enum clock_verdict
clock_evaluate(const struct clock_config *cfg, double max_error, const struct clock_state *st,
               const struct timespec *rt, const struct timespec *mono, double *bound,
               double *sample_age)
{
    const struct clock_sample *s = &st->sample;
    double age;

    *bound = 0;
    *sample_age = 0;
    if (!st->valid)
        return CLOCK_UNREACHABLE;
    age = clock_ts_diff(mono, &st->taken_mono);
    *sample_age = age;
    *bound = clock_error_bound(s, age);
    if (cfg->kernel_check && s->kernel_maxerror > *bound)
        *bound = s->kernel_maxerror;
    if (s->leap == 3 || (cfg->kernel_check && s->kernel_unsync))
        return CLOCK_UNSYNC;
    if (st->step_held ||
        fabs(clock_step(&st->taken_real, &st->taken_mono, rt, mono)) > CLOCK_STEP_TOLERANCE)
        return CLOCK_STEPPED;
    if (age > 3.0 * cfg->poll_interval + 1.0 || s->last_update_age + age > cfg->max_update_age)
        return CLOCK_STALE;
    if (clock_in_leap_window(cfg, st, rt))
        return CLOCK_LEAP;
    if (!(*bound <= max_error)) /* NaN counts as out of bound */
        return CLOCK_BOUND;
    return CLOCK_OK;
}

/* ---- state, transitions, poller ---- */

static void
clock_log_transition(const struct clock *c, bool first, enum clock_verdict prev,
                     enum clock_verdict v, double bound)
{
    const struct clock_sample *s = &c->state.sample;
    const char *event;

    if (first)
        event = "clock_status";
    else if (v == CLOCK_OK)
        event = "clock_sync_regained";
    else
        event = "clock_sync_lost";
    log_audit(event,
              "reason=%s prev=%s leap=%d stratum=%d kernel_unsync=%d offset=%.9f bound=%.9f "
              "max_error=%.6f last_update_age=%.3f",
              clock_verdict_str(v), first ? "none" : clock_verdict_str(prev),
              c->state.valid ? s->leap : -1, c->state.valid ? s->stratum : -1,
              c->state.valid ? (int)s->kernel_unsync : -1, c->state.valid ? s->offset : 0.0, bound,
              c->cfg.max_error, c->state.valid ? s->last_update_age : -1.0);
}

/* A step of `step` seconds seen at `rt` (new clock): hold CLOCK_STEPPED until chronyd reports
 * an update after it. On the old clock that moment reads rt - step; the later of the two is
 * kept, so that a step backwards is held at least as long as it went back. */
static void
clock_hold_step(struct clock_state *state, double step, const struct timespec *rt)
{
    struct timespec after = *rt;

    if (step < 0) {
        double whole = floor(-step);

        after.tv_sec += (time_t)whole;
        after.tv_nsec += (long)((-step - whole) * 1e9);
        if (after.tv_nsec >= 1000000000L) {
            after.tv_sec++;
            after.tv_nsec -= 1000000000L;
        }
    }
    if (!state->step_held || clock_ts_diff(&after, &state->step_after) > 0)
        state->step_after = after;
    state->step_held = true;
    log_audit("clock_step",
              "the system clock moved %+.6f s against the monotonic clock since the previous "
              "sample; no issuance until chronyd reports an update after %lld.%09ld",
              step, (long long)state->step_after.tv_sec, state->step_after.tv_nsec);
}

/* The kernel applies an announced leap second as a step of 1 s at midnight (back for an
 * inserted one): within the leap guard around it, such a step is the leap itself, already
 * refused by CLOCK_LEAP, and not held until chronyd's next update. The sample that sees the
 * step may come later than the guard (a poll that waited for chronyd): the step is the leap
 * as well when the old clock passed midnight between the previous sample and this one. Called
 * before c->state.taken_real is replaced (it is still the previous sample's). */
static bool
clock_is_leap_step(const struct clock *c, double step, const struct timespec *rt)
{
    double from_leap, prev, old_now;

    if (c->state.leap_when == 0 || fabs(fabs(step) - 1.0) > CLOCK_STEP_TOLERANCE)
        return false;
    from_leap = (double)(rt->tv_sec - c->state.leap_when) + (double)rt->tv_nsec * 1e-9;
    if (fabs(from_leap) <= c->cfg.leap_guard)
        return true;
    prev = (double)(c->state.taken_real.tv_sec - c->state.leap_when) +
           (double)c->state.taken_real.tv_nsec * 1e-9;
    old_now = from_leap - step; /* this moment on the clock before the step */
    return prev <= c->cfg.leap_guard && old_now >= -c->cfg.leap_guard - 1.0;
}

/* Store a sample result; caller holds c->lock. Returns the verdict against cfg.max_error. */
static enum clock_verdict
clock_store(struct clock *c, int st, const struct clock_sample *s, const struct timespec *rt,
            const struct timespec *mono)
{
    enum clock_verdict v;
    double bound, age;

    if (c->state.taken_mono.tv_sec != 0 || c->state.taken_mono.tv_nsec != 0) {
        double step = clock_step(&c->state.taken_real, &c->state.taken_mono, rt, mono);

        if (fabs(step) > CLOCK_STEP_TOLERANCE && clock_is_leap_step(c, step, rt))
            log_audit("clock_step",
                      "the system clock moved %+.6f s against the monotonic "
                      "clock since the previous sample: the announced leap second",
                      step);
        else if (fabs(step) > CLOCK_STEP_TOLERANCE)
            clock_hold_step(&c->state, step, rt);
    }
    c->state.valid = st == ST_OK;
    c->state.taken_real = *rt;
    c->state.taken_mono = *mono;
    if (st == ST_OK) {
        c->state.sample = *s;
        if ((s->leap == 1 || s->leap == 2) && rt->tv_sec >= 0)
            c->state.leap_when = (rt->tv_sec / CLOCK_SECONDS_PER_DAY + 1) * CLOCK_SECONDS_PER_DAY;
        if (c->state.step_held && clock_ts_diff(&s->ref_time, &c->state.step_after) > 0)
            c->state.step_held = false; /* chronyd updated the clock after the step */
    }
    v = clock_evaluate(&c->cfg, c->cfg.max_error, &c->state, rt, mono, &bound, &age);
    if (!c->verdict_known || v != c->verdict)
        clock_log_transition(c, !c->verdict_known, c->verdict, v, bound);
    c->verdict_known = true;
    c->verdict = v;
    return v;
}

enum clock_verdict
clock_poll_now(struct clock *c)
{
    struct clock_sample s;
    struct timespec rt, mono;
    enum clock_verdict v;
    int st;

    memset(&s, 0, sizeof(s));
    pthread_mutex_lock(&c->poll_lock);
    st = c->src.sample(c->src.ctx, &s);
    if (st > 0) /* the seam promises 0 or negative; anything else is a broken source */
        st = ST_ERR;
    c->src.now(c->src.ctx, &rt, &mono);
    pthread_mutex_lock(&c->lock);
    v = clock_store(c, st, &s, &rt, &mono);
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&c->poll_lock);
    return v;
}

static void
clock_deadline(struct timespec *ts, double seconds)
{
    double whole = floor(seconds);

    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)whole;
    ts->tv_nsec += (long)((seconds - whole) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *
clock_thread(void *arg)
{
    struct clock *c = arg;
    struct timespec deadline;

    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        int r = 0;

        /* the first sample was taken by clock_new: wait first, then sample */
        clock_deadline(&deadline, c->cfg.poll_interval);
        while (!c->stopping && r == 0) /* 0: signalled or spurious wake-up */
            r = pthread_cond_timedwait(&c->wake, &c->lock, &deadline);
        if (c->stopping)
            break;
        pthread_mutex_unlock(&c->lock);
        clock_poll_now(c);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

void
clock_read_max(struct clock *c, double max_error, struct clock_reading *out)
{
    struct clock_state st;
    struct timespec mono;

    pthread_mutex_lock(&c->lock);
    st = c->state;
    pthread_mutex_unlock(&c->lock);
    c->src.now(c->src.ctx, &out->now, &mono);
    out->verdict = clock_evaluate(&c->cfg, max_error, &st, &out->now, &mono, &out->error_bound,
                                  &out->sample_age);
    if (st.valid)
        out->sample = st.sample;
    else
        memset(&out->sample, 0, sizeof(out->sample));
}

void
clock_read(struct clock *c, struct clock_reading *out)
{
    clock_read_max(c, c->cfg.max_error, out);
}

/* ---- life cycle ---- */

static bool
clock_config_ok(const struct clock_config *cfg)
{
    if (!(cfg->poll_interval > 0 && cfg->poll_interval <= 3600) || !(cfg->max_update_age > 0) ||
        !(cfg->max_error > 0) || !(cfg->leap_guard >= 0)) {
        log_err("clock: invalid configuration (poll_interval %g, max_update_age %g, "
                "max_error %g, leap_guard %g)",
                cfg->poll_interval, cfg->max_update_age, cfg->max_error, cfg->leap_guard);
        return false;
    }
    return true;
}

static int
clock_sync_init(struct clock *c)
{
    pthread_condattr_t ca;
    int r;

    if (pthread_condattr_init(&ca) != 0)
        return ST_ERR;
    r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (r == 0)
        r = pthread_cond_init(&c->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (r != 0)
        return ST_ERR;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        pthread_cond_destroy(&c->wake);
        return ST_ERR;
    }
    if (pthread_mutex_init(&c->poll_lock, NULL) != 0) {
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->wake);
        return ST_ERR;
    }
    return ST_OK;
}

/* own_ctx: the source's ctx is the clock's own copy of the socket path (default source). */
static struct clock *
clock_create(const struct clock_config *cfg, const struct clock_source *src, bool own_ctx)
{
    struct clock *c = NULL;
    bool ok = false;

    if (!clock_config_ok(cfg))
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto out;
    if (cfg->chrony_socket != NULL) {
        c->socket_path = strdup(cfg->chrony_socket);
        if (c->socket_path == NULL)
            goto out;
    }
    c->cfg = *cfg;
    c->cfg.chrony_socket = c->socket_path;
    c->src = *src;
    if (own_ctx)
        c->src.ctx = c->socket_path;
    if (clock_sync_init(c) != ST_OK)
        goto out;
    c->sync_ready = true;
    /* A first snapshot before returning: the verdict is known (and logged) at start. */
    clock_poll_now(c);
    if (pthread_create(&c->thread, NULL, clock_thread, c) != 0)
        goto out;
    c->thread_started = true;
    ok = true;
out:
    if (!ok) {
        log_err("clock: cannot start the clock poller");
        clock_free(c);
        c = NULL;
    }
    return c;
}

struct clock *
clock_new_with_source(const struct clock_config *cfg, const struct clock_source *src)
{
    if (cfg == NULL || src == NULL || src->sample == NULL || src->now == NULL) {
        log_err("clock: no configuration or no source");
        return NULL;
    }
    return clock_create(cfg, src, false);
}

struct clock *
clock_new(const struct clock_config *cfg)
{
    const struct clock_source src = {clock_default_sample, clock_default_now, NULL};

    if (cfg == NULL || cfg->chrony_socket == NULL || cfg->chrony_socket[0] == '\0') {
        log_err("clock: no chronyd command socket configured");
        return NULL;
    }
    return clock_create(cfg, &src, true);
}

void
clock_free(struct clock *c)
{
    if (c == NULL)
        return;
    if (c->thread_started) {
        pthread_mutex_lock(&c->lock);
        c->stopping = true;
        pthread_cond_broadcast(&c->wake);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
    }
    if (c->sync_ready) {
        pthread_mutex_destroy(&c->poll_lock);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->wake);
    }
    free(c->socket_path);
    free(c);
}
