/*
 * check_clock: unit suite of common/clock (DESIGN D3): the time gate that refuses issuance
 * when the clock is out of accuracy (STANDARDS TSA-04, TSA-05, TSP-12).
 *
 * Verdicts and bounds are driven through clock_new_with_source() with a fake source and a
 * fake "now"; the chronyd wire format (protocol 6, REQ_TRACKING, chrony's Float) is checked
 * against hand-built packets and a fake chronyd on a Unix datagram socket in a temp dir.
 * When CHRONY_SOCKET is set (tests/integration/test_clock_chrony.sh), one more case talks to
 * that real chronyd and expects leap status CHRONY_EXPECT_LEAP (0 or 3).
 * Log lines (audit events) go to a temp file per test, which tests read back.
 */
#include "common/clock.h"
#include "common/clock_int.h"
#include "common/log.h"
#include "common/status.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* 2025-06-15T15:06:40Z: far from any midnight */
#define T_NOON 1750000000
/* 2025-07-01T00:00:00Z */
#define T_MIDNIGHT 1751328000

/* ---- fixture: stderr (the log) into an unlinked temp file, read back with pread ---- */

static int saved_stderr = -1;

static void
setup_log(void)
{
    char path[] = "/tmp/check_clock.log.XXXXXX";
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    unlink(path); /* nothing is left behind, even when a test fails */
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
    close(fd);
}

static void
teardown_log(void)
{
    if (saved_stderr >= 0) {
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        saved_stderr = -1;
    }
}

/* Number of log lines containing `needle`. */
static int
log_count(const char *needle)
{
    static char buf[65536];
    ssize_t n = pread(STDERR_FILENO, buf, sizeof(buf) - 1, 0);
    int count = 0;

    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
    for (char *line = buf; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');

        if (nl != NULL)
            *nl = '\0';
        if (strstr(line, needle) != NULL)
            count++;
        line = nl != NULL ? nl + 1 : NULL;
    }
    return count;
}

/* ---- the fake source ---- */

struct fake {
    int ret;               /* what sample() returns */
    struct clock_sample s; /* what it fills in */
    struct timespec rt, mono;
    atomic_int calls;
};

static int
fake_sample(void *ctx, struct clock_sample *out)
{
    struct fake *f = ctx;

    atomic_fetch_add(&f->calls, 1);
    if (f->ret == 0)
        *out = f->s;
    return f->ret;
}

static void
fake_now(void *ctx, struct timespec *rt, struct timespec *mono)
{
    struct fake *f = ctx;

    *rt = f->rt;
    *mono = f->mono;
}

static void
fake_init(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    f->s.leap = 0;
    f->s.stratum = 2;
    f->s.ref_id = 0xc0000201;
    f->s.offset = 0.001;
    f->s.root_delay = 0.002;
    f->s.root_dispersion = 0.003;
    f->s.skew_ppm = 1.0;
    f->s.resid_freq_ppm = -0.5;
    f->s.last_update_age = 10.0;
    f->s.ref_time.tv_sec = T_NOON - 10;
    f->s.kernel_unsync = false;
    f->s.kernel_maxerror = 0.01;
    f->rt.tv_sec = T_NOON;
    f->mono.tv_sec = 1000;
}

/* Time passes (no step): both clocks move to real time `t`. */
static void
fake_advance_to(struct fake *f, time_t t)
{
    f->mono.tv_sec += t - f->rt.tv_sec;
    f->rt.tv_sec = t;
}

static struct clock_config
base_cfg(void)
{
    struct clock_config cfg = {
        .chrony_socket = NULL,
        .poll_interval = 600.0, /* the poller never runs during a test: tests poll */
        .max_update_age = 90.0,
        .max_error = 1.0,
        .leap_guard = 10.0,
        .kernel_check = false,
    };
    return cfg;
}

static struct clock *
fake_clock(struct fake *f, const struct clock_config *cfg)
{
    struct clock_source src = {fake_sample, fake_now, f};
    struct clock *c = clock_new_with_source(cfg, &src);

    ck_assert_ptr_nonnull(c);
    return c;
}

static enum clock_verdict
read_verdict(struct clock *c)
{
    struct clock_reading r;

    clock_read(c, &r);
    return r.verdict;
}

/* ---- chrony Float ---- */

/* An encoder written from the format description (value = coef * 2^(exp - 25)),
 * independent of the decoder under test. */
static uint32_t
enc_float(double x)
{
    int e;
    double m;
    long coef;

    if (x == 0.0)
        return 0;
    m = frexp(x, &e); /* x = m * 2^e, 0.5 <= |m| < 1 */
    coef = lround(m * 16777216.0);
    e += 1;
    if (coef == 16777216L) {
        coef /= 2;
        e += 1;
    }
    return ((uint32_t)(e & 0x7f) << 25) | ((uint32_t)coef & 0x1ffffffu);
}

START_TEST(test_float_vectors)
{
    ck_assert_double_eq(clock_chrony_float(0x00000000u), 0.0);
    ck_assert_double_eq(clock_chrony_float(0x04800000u), 1.0);  /* exp 2, coef 2^23 */
    ck_assert_double_eq(clock_chrony_float(0x05800000u), -1.0); /* coef -2^23 */
    ck_assert_double_eq(clock_chrony_float(0x02800000u), 0.5);
    ck_assert_double_eq(clock_chrony_float(0xfe800000u), 0.125); /* exp -1 */
    ck_assert_double_eq(clock_chrony_float(0x01000000u), -0.5);  /* most negative coef */
    ck_assert_double_eq(clock_chrony_float(0x00000001u), ldexp(1.0, -25));
    ck_assert_double_eq(clock_chrony_float(0x80000001u), ldexp(1.0, -64 - 25));
}
END_TEST

START_TEST(test_float_round_trip)
{
    static const double values[] = {1e-9, -1e-9, 3.5e-6,  0.000123, -0.0421,
                                    1.0,  16.0,  -500.25, 123456.0, 2.5e-15};

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        double got = clock_chrony_float(enc_float(values[i]));

        ck_assert_double_eq_tol(got, values[i], fabs(values[i]) * ldexp(1.0, -23));
    }
}
END_TEST

/* ---- packets ---- */

static void
put16(unsigned char *p, uint16_t v)
{
    v = htons(v);
    memcpy(p, &v, 2);
}

static void
put32(unsigned char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

/* A tracking reply as chronyd 4.3 lays it out (candm.h, RPY_Tracking). */
static void
build_reply(unsigned char *b, uint32_t seq, int leap, uint64_t ref_sec)
{
    memset(b, 0, CLOCK_CHRONY_TRACKING_LEN);
    b[0] = 6;
    b[1] = 2;
    put16(b + 4, 33); /* command */
    put16(b + 6, 5);  /* reply RPY_TRACKING */
    put16(b + 8, 0);  /* status */
    put32(b + 16, seq);
    put32(b + 28, 0x7f7f0101);                /* ref_id */
    put16(b + 52, 3);                         /* stratum */
    put16(b + 54, (uint16_t)leap);            /* leap */
    put32(b + 56, (uint32_t)(ref_sec >> 32)); /* ref_time high */
    put32(b + 60, (uint32_t)ref_sec);         /* ref_time low */
    put32(b + 64, 250000000);                 /* nsec */
    put32(b + 68, enc_float(-0.0015));        /* current_correction */
    put32(b + 72, enc_float(0.0002));         /* last_offset */
    put32(b + 76, enc_float(0.0003));         /* rms_offset */
    put32(b + 80, enc_float(-12.5));          /* freq_ppm */
    put32(b + 84, enc_float(0.25));           /* resid_freq_ppm */
    put32(b + 88, enc_float(2.0));            /* skew_ppm */
    put32(b + 92, enc_float(0.004));          /* root_delay */
    put32(b + 96, enc_float(0.0005));         /* root_dispersion */
    put32(b + 100, enc_float(64.0));          /* last_update_interval */
}

START_TEST(test_build_request)
{
    unsigned char b[CLOCK_CHRONY_TRACKING_LEN + 8];
    size_t len;

    memset(b, 0xaa, sizeof(b));
    len = clock_chrony_build_request(b, 0x01020304u, 1);
    /* padded to the reply length, or chronyd drops it (protocol 6 anti-amplification) */
    ck_assert_uint_eq(len, 104);
    ck_assert_uint_eq(b[0], 6);
    ck_assert_uint_eq(b[1], 1);
    ck_assert_uint_eq(b[2], 0);
    ck_assert_uint_eq(b[3], 0);
    ck_assert_uint_eq(b[4], 0);
    ck_assert_uint_eq(b[5], 33);
    ck_assert_uint_eq(b[6], 0);
    ck_assert_uint_eq(b[7], 1);
    ck_assert_uint_eq(b[8], 1);
    ck_assert_uint_eq(b[11], 4);
    for (size_t i = 12; i < len; i++)
        ck_assert_uint_eq(b[i], 0);
    ck_assert_uint_eq(b[len], 0xaa);
}
END_TEST

START_TEST(test_parse_reply)
{
    unsigned char b[CLOCK_CHRONY_TRACKING_LEN];
    struct clock_sample s;
    struct timespec now = {T_NOON, 750000000};

    memset(&s, 0, sizeof(s));
    build_reply(b, 77, 0, T_NOON - 100);
    ck_assert_int_eq(clock_chrony_parse_reply(b, sizeof(b), 77, &now, &s), ST_OK);
    ck_assert_int_eq(s.leap, 0);
    ck_assert_int_eq(s.stratum, 3);
    ck_assert_uint_eq(s.ref_id, 0x7f7f0101u);
    ck_assert_double_eq_tol(s.last_update_age, 100.5, 1e-9);
    ck_assert_double_eq_tol(s.offset, -0.0015, 1e-9);
    ck_assert_double_eq_tol(s.resid_freq_ppm, 0.25, 1e-9);
    ck_assert_double_eq_tol(s.skew_ppm, 2.0, 1e-9);
    ck_assert_double_eq_tol(s.root_delay, 0.004, 1e-9);
    ck_assert_double_eq_tol(s.root_dispersion, 0.0005, 1e-9);

    /* ref time with TV_NOHIGHSEC in the high word, as a 32-bit time_t chronyd sends */
    build_reply(b, 77, 3, T_NOON - 5);
    put32(b + 56, 0x7fffffffu);
    ck_assert_int_eq(clock_chrony_parse_reply(b, sizeof(b), 77, &now, &s), ST_OK);
    ck_assert_int_eq(s.leap, 3);
    ck_assert_double_eq_tol(s.last_update_age, 5.5, 1e-9);
}
END_TEST

START_TEST(test_parse_reply_rejects)
{
    unsigned char b[CLOCK_CHRONY_TRACKING_LEN];
    struct clock_sample s;
    struct timespec now = {T_NOON, 0};

    build_reply(b, 9, 0, T_NOON);
    ck_assert_int_eq(clock_chrony_parse_reply(b, 27, 9, &now, &s), ST_INVALID);
    ck_assert_int_eq(clock_chrony_parse_reply(b, 103, 9, &now, &s), ST_INVALID);
    ck_assert_int_eq(clock_chrony_parse_reply(b, sizeof(b), 10, &now, &s), ST_NOTFOUND);
    b[0] = 5; /* protocol version */
    ck_assert_int_eq(clock_chrony_parse_reply(b, sizeof(b), 9, &now, &s), ST_INVALID);
    build_reply(b, 9, 0, T_NOON);
    b[1] = 1; /* a request, not a reply */
    ck_assert_int_eq(clock_chrony_parse_reply(b, sizeof(b), 9, &now, &s), ST_INVALID);
    build_reply(b, 9, 0, T_NOON);
    put16(b + 8, 18); /* STT_BADPKTVERSION */
    ck_assert_int_eq(clock_chrony_parse_reply(b, sizeof(b), 9, &now, &s), ST_INVALID);
    build_reply(b, 9, 0, T_NOON);
    put16(b + 6, 1); /* RPY_NULL */
    ck_assert_int_eq(clock_chrony_parse_reply(b, sizeof(b), 9, &now, &s), ST_INVALID);
    build_reply(b, 9, 0, T_NOON);
    put16(b + 4, 14); /* reply to another command */
    ck_assert_int_eq(clock_chrony_parse_reply(b, sizeof(b), 9, &now, &s), ST_INVALID);
    build_reply(b, 9, 4, T_NOON); /* no such leap status */
    ck_assert_int_eq(clock_chrony_parse_reply(b, sizeof(b), 9, &now, &s), ST_INVALID);
}
END_TEST

/* ---- a fake chronyd on a Unix datagram socket ---- */

struct fake_server {
    char dir[64];
    char path[128];
    int fd;
    bool answer; /* reply to requests, or stay silent */
    int leap;
    int requests;     /* requests seen */
    size_t last_len;  /* length of the last request */
    int last_attempt; /* attempt field of the last request */
    bool header_ok;   /* every request had version 6, type 1, command 33 */
};

static void *
fake_server_run(void *arg)
{
    struct fake_server *fs = arg;
    struct pollfd pfd = {.fd = fs->fd, .events = POLLIN};

    fs->header_ok = true;
    while (poll(&pfd, 1, 3000) > 0) {
        unsigned char req[600], rep[CLOCK_CHRONY_TRACKING_LEN];
        struct sockaddr_un from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(fs->fd, req, sizeof(req), 0, (struct sockaddr *)&from, &fl);
        uint32_t seq;
        struct timespec rt;

        if (n < 12)
            break;
        fs->requests++;
        fs->last_len = (size_t)n;
        fs->last_attempt = req[6] << 8 | req[7];
        if (req[0] != 6 || req[1] != 1 || req[4] != 0 || req[5] != 33)
            fs->header_ok = false;
        if (!fs->answer)
            continue;
        memcpy(&seq, req + 8, 4);
        clock_gettime(CLOCK_REALTIME, &rt);
        build_reply(rep, ntohl(seq), fs->leap, (uint64_t)rt.tv_sec - 20);
        /* a stray reply first (wrong sequence number): the client must skip it */
        put32(rep + 16, ntohl(seq) + 1);
        sendto(fs->fd, rep, sizeof(rep), 0, (struct sockaddr *)&from, fl);
        memcpy(rep + 16, &seq, 4);
        sendto(fs->fd, rep, sizeof(rep), 0, (struct sockaddr *)&from, fl);
        break;
    }
    return NULL;
}

static void
fake_server_start(struct fake_server *fs, pthread_t *th)
{
    struct sockaddr_un a;

    snprintf(fs->dir, sizeof(fs->dir), "/tmp/check_clock.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(fs->dir));
    snprintf(fs->path, sizeof(fs->path), "%s/chronyd.sock", fs->dir);
    fs->fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(fs->fd, 0);
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, fs->path, strlen(fs->path) + 1);
    ck_assert_int_eq(bind(fs->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(pthread_create(th, NULL, fake_server_run, fs), 0);
}

/* Entries left in the server's directory besides the server socket. */
static int
fake_server_leftovers(const struct fake_server *fs)
{
    DIR *d = opendir(fs->dir);
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            strcmp(e->d_name, "chronyd.sock") != 0)
            n++;
    closedir(d);
    return n;
}

static void
fake_server_stop(struct fake_server *fs, pthread_t th)
{
    pthread_join(th, NULL);
    close(fs->fd);
    unlink(fs->path);
    rmdir(fs->dir);
}

START_TEST(test_sample_fake_chronyd)
{
    struct fake_server fs = {.answer = true, .leap = 1};
    struct clock_sample s;
    pthread_t th;

    fake_server_start(&fs, &th);
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(clock_chrony_sample(fs.path, &s), ST_OK);
    fake_server_stop(&fs, th);
    ck_assert_int_eq(fs.requests, 1);
    ck_assert_uint_eq(fs.last_len, 104);
    ck_assert(fs.header_ok);
    ck_assert_int_eq(s.leap, 1);
    ck_assert_int_eq(s.stratum, 3);
    ck_assert_double_eq_tol(s.offset, -0.0015, 1e-9);
    ck_assert_double_eq_tol(s.root_delay, 0.004, 1e-9);
    /* ref time was "now - 20 s" (+0.25 s nsec) when the server answered */
    ck_assert_double_ge(s.last_update_age, 18.0);
    ck_assert_double_le(s.last_update_age, 25.0);
    ck_assert_double_ge(s.kernel_maxerror, 0.0);
}
END_TEST

START_TEST(test_sample_client_socket_removed)
{
    struct fake_server fs = {.answer = true, .leap = 0};
    struct clock_sample s;
    pthread_t th;

    fake_server_start(&fs, &th);
    ck_assert_int_eq(clock_chrony_sample(fs.path, &s), ST_OK);
    pthread_join(th, NULL);
    /* our reply socket was created next to chronyd's and must be gone afterwards */
    ck_assert_int_eq(fake_server_leftovers(&fs), 0);
    close(fs.fd);
    unlink(fs.path);
    rmdir(fs.dir);
}
END_TEST

START_TEST(test_sample_timeout_retries)
{
    struct fake_server fs = {.answer = false};
    struct clock_sample s;
    pthread_t th;

    fake_server_start(&fs, &th);
    ck_assert_int_eq(clock_chrony_sample(fs.path, &s), ST_TIMEOUT);
    /* close our end so the server thread stops waiting */
    shutdown(fs.fd, SHUT_RDWR);
    fake_server_stop(&fs, th);
    ck_assert_int_eq(fs.requests, 2);
    ck_assert_int_eq(fs.last_attempt, 1);
    ck_assert(fs.header_ok);
}
END_TEST

START_TEST(test_sample_no_daemon)
{
    struct clock_sample s;

    ck_assert_int_lt(clock_chrony_sample("/nonexistent-dir/chronyd.sock", &s), 0);
    ck_assert_int_eq(clock_chrony_sample(NULL, &s), ST_INVALID);
}
END_TEST

/* clock_new() with the real default source and no chronyd: UNREACHABLE (TSA-05). */
START_TEST(test_clock_new_no_daemon)
{
    struct clock_config cfg = base_cfg();
    struct clock_reading r;
    struct clock *c;

    cfg.chrony_socket = "/nonexistent-dir/chronyd.sock";
    c = clock_new(&cfg);
    ck_assert_ptr_nonnull(c);
    clock_read(c, &r);
    ck_assert_int_eq(r.verdict, CLOCK_UNREACHABLE);
    ck_assert_int_eq(clock_poll_now(c), CLOCK_UNREACHABLE);
    clock_free(c);
    ck_assert_int_eq(log_count("AUDIT event=clock_status reason=unreachable"), 1);
}
END_TEST

/* ---- verdicts (TSA-04 detection, TSA-05/TSP-12 refusal) ---- */

START_TEST(test_verdict_ok)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock_reading r;
    struct clock *c;

    fake_init(&f);
    c = fake_clock(&f, &cfg);
    clock_read(c, &r);
    ck_assert_int_eq(r.verdict, CLOCK_OK);
    ck_assert_int_eq(r.now.tv_sec, T_NOON);
    ck_assert_int_eq(r.sample.stratum, 2);
    ck_assert_double_eq(r.sample_age, 0.0);
    clock_free(c);
    ck_assert_int_eq(log_count("AUDIT event=clock_status reason=ok"), 1);
}
END_TEST

START_TEST(test_verdict_unsync_leap3)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    f.s.leap = 3;
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_UNSYNC);
    clock_free(c);
}
END_TEST

START_TEST(test_verdict_unreachable_never)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock_reading r;
    struct clock *c;

    fake_init(&f);
    f.ret = ST_IO;
    c = fake_clock(&f, &cfg);
    clock_read(c, &r);
    ck_assert_int_eq(r.verdict, CLOCK_UNREACHABLE);
    ck_assert_int_eq(r.sample.stratum, 0);
    clock_free(c);
}
END_TEST

START_TEST(test_verdict_unreachable_after_ok)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_OK);
    f.ret = ST_TIMEOUT;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_UNREACHABLE);
    ck_assert_int_eq(read_verdict(c), CLOCK_UNREACHABLE);
    clock_free(c);
    ck_assert_int_eq(log_count("AUDIT event=clock_sync_lost reason=unreachable prev=ok"), 1);
}
END_TEST

START_TEST(test_verdict_stale_update)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    f.s.last_update_age = 89.5;
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_OK);
    /* the same snapshot, 1 s later: 89.5 + 1 > 90 */
    f.mono.tv_sec += 1;
    f.rt.tv_sec += 1;
    ck_assert_int_eq(read_verdict(c), CLOCK_STALE);
    f.s.last_update_age = 500.0;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_STALE);
    clock_free(c);
}
END_TEST

START_TEST(test_verdict_stale_snapshot)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock_reading r;
    struct clock *c;

    fake_init(&f);
    cfg.poll_interval = 10.0;
    cfg.max_update_age = 1e6; /* only the snapshot-age rule can fire */
    c = fake_clock(&f, &cfg);
    f.mono.tv_sec += 31; /* 3 * 10 + 1; the real-time clock moves with it (no step) */
    f.rt.tv_sec += 31;
    ck_assert_int_eq(read_verdict(c), CLOCK_OK);
    f.mono.tv_nsec = 1000;
    f.rt.tv_nsec += 1000;
    clock_read(c, &r);
    ck_assert_int_eq(r.verdict, CLOCK_STALE);
    ck_assert_double_eq_tol(r.sample_age, 31.0, 1e-5);
    clock_free(c);
}
END_TEST

/* TSA-04: a step of the system clock between two samples is seen at once, without chronyd;
 * the next sample starts from the new time (and logs the step). */
START_TEST(test_verdict_step_detected)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    c = fake_clock(&f, &cfg);
    f.mono.tv_sec += 1;
    f.rt.tv_sec += 1;
    ck_assert_int_eq(read_verdict(c), CLOCK_OK);
    f.rt.tv_sec += 2; /* date -s: +2 s */
    ck_assert_int_eq(read_verdict(c), CLOCK_STEPPED);
    f.rt.tv_sec -= 4; /* and back, -2 s from the snapshot */
    ck_assert_int_eq(read_verdict(c), CLOCK_STEPPED);
    f.rt.tv_nsec += 1000000; /* 1 ms of jitter is not a step */
    f.rt.tv_sec += 2;
    ck_assert_int_eq(read_verdict(c), CLOCK_OK);
    f.rt.tv_sec += 2;
    /* a new sample sees the step too and keeps it (issue 8 item 3, test below) */
    ck_assert_int_eq(clock_poll_now(c), CLOCK_STEPPED);
    ck_assert_int_eq(read_verdict(c), CLOCK_STEPPED);
    f.mono.tv_sec += 1;
    f.rt.tv_sec += 1;
    f.s.ref_time = f.rt; /* chronyd updated after the step: the new time is taken */
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    ck_assert_int_eq(read_verdict(c), CLOCK_OK);
    ck_assert_str_eq(clock_verdict_str(CLOCK_STEPPED), "stepped");
    clock_free(c);
}
END_TEST

/* Issue 8 item 3 (TSA-04, TSA-05): a step of the system clock keeps issuance refused past the
 * next poll, until chronyd reports a clock update (its reference time) newer than the step.
 * Before the fix the next sample simply took the new time: +60 s refused at 1.0 s, accepted
 * again at 1.5 s while chronyd's answer had not changed. */
START_TEST(test_step_held_until_chronyd_update)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    c = fake_clock(&f, &cfg);
    f.mono.tv_sec += 1;
    f.rt.tv_sec += 1;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    f.rt.tv_sec += 60; /* date -s: +60 s */
    ck_assert_int_eq(read_verdict(c), CLOCK_STEPPED);
    f.mono.tv_nsec += 500000000; /* the next poll, 0.5 s later: chronyd said the same */
    f.rt.tv_nsec += 500000000;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_STEPPED);
    ck_assert_int_eq(read_verdict(c), CLOCK_STEPPED);
    for (int i = 0; i < 5; i++) { /* and so it stays, poll after poll */
        f.mono.tv_sec += 1;
        f.rt.tv_sec += 1;
        ck_assert_int_eq(clock_poll_now(c), CLOCK_STEPPED);
    }
    ck_assert_int_eq(read_verdict(c), CLOCK_STEPPED);
    /* an update from before the step (old clock: T_NOON + 1.5 s) does not release it */
    f.s.ref_time.tv_sec = T_NOON + 1;
    f.s.ref_time.tv_nsec = 500000000;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_STEPPED);
    /* chronyd's update after the step does */
    f.s.ref_time = f.rt;
    f.s.ref_time.tv_sec -= 1;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    ck_assert_int_eq(read_verdict(c), CLOCK_OK);
    clock_free(c);
    ck_assert_int_eq(log_count("AUDIT event=clock_step"), 1);
    ck_assert_int_eq(log_count("AUDIT event=clock_sync_regained reason=ok prev=stepped"), 1);
}
END_TEST

/* Issue 8 item 3: after a step backwards by 30 s, chronyd's reference times from before the
 * step look up to 30 s "newer" on the new clock; only one newer than the step on both the old
 * and the new clock releases issuance (so no token after the step carries a time earlier than
 * one before it). A source that cannot be reached meanwhile keeps the step too. */
START_TEST(test_step_back_held)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    c = fake_clock(&f, &cfg);
    f.mono.tv_sec += 1;
    f.rt.tv_sec += 1;
    f.s.ref_time = f.rt; /* chronyd updated just now: T_NOON + 1 */
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    f.rt.tv_sec -= 30; /* -30 s */
    f.mono.tv_sec += 1;
    f.rt.tv_sec += 1;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_STEPPED);
    f.ret = ST_IO; /* chronyd away */
    f.mono.tv_sec += 1;
    f.rt.tv_sec += 1;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_UNREACHABLE);
    f.ret = 0;
    f.mono.tv_sec += 1;
    f.rt.tv_sec += 1;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_STEPPED);
    /* newer than "now" on the new clock, but not on the old one (T_NOON + 4 there) */
    f.s.ref_time.tv_sec = f.rt.tv_sec + 2;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_STEPPED);
    f.s.ref_time.tv_sec = T_NOON + 5; /* after the step on both clocks */
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    clock_free(c);
}
END_TEST

/* DESIGN D3: with kernel_check the kernel's maxerror bounds the error too. */
START_TEST(test_verdict_kernel_maxerror)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock_reading r;
    struct clock *c;

    fake_init(&f);
    cfg.kernel_check = true;
    f.s.kernel_unsync = false;
    f.s.kernel_maxerror = 5.0;
    c = fake_clock(&f, &cfg);
    clock_read_max(c, 1.0, &r);
    ck_assert_int_eq(r.verdict, CLOCK_BOUND);
    ck_assert_double_ge(r.error_bound, 5.0);
    cfg.kernel_check = false;
    clock_free(c);
    c = fake_clock(&f, &cfg);
    clock_read_max(c, 1.0, &r);
    ck_assert_int_eq(r.verdict, CLOCK_OK);
    clock_free(c);
}
END_TEST

START_TEST(test_verdict_bound_offset)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock_reading r;
    struct clock *c;

    fake_init(&f);
    f.s.offset = -1.5; /* a step of -1.5 s still being slewed out */
    c = fake_clock(&f, &cfg);
    clock_read(c, &r);
    ck_assert_int_eq(r.verdict, CLOCK_BOUND);
    ck_assert_double_gt(r.error_bound, 1.5);
    clock_free(c);
}
END_TEST

START_TEST(test_verdict_bound_dispersion)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    cfg.max_error = 0.1;
    f.s.root_dispersion = 0.2;
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_BOUND);
    f.s.root_dispersion = 0.05;
    f.s.root_delay = 0.2; /* half of it counts: 0.001 + 0.1 + 0.05 > 0.1 */
    ck_assert_int_eq(clock_poll_now(c), CLOCK_BOUND);
    f.s.root_delay = 0.02;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    clock_free(c);
}
END_TEST

START_TEST(test_bound_arithmetic)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock_reading r;
    struct clock *c;

    fake_init(&f);
    c = fake_clock(&f, &cfg);
    clock_read(c, &r);
    /* |0.001| + 0.002/2 + 0.003 + 10 s * (1 + |-0.5| + 15) ppm */
    ck_assert_double_eq_tol(r.error_bound, 0.005 + 10.0 * 16.5e-6, 1e-12);
    f.mono.tv_sec += 2;
    f.mono.tv_nsec = 500000000;
    clock_read(c, &r);
    ck_assert_double_eq_tol(r.sample_age, 2.5, 1e-9);
    ck_assert_double_eq_tol(r.error_bound, 0.005 + 12.5 * 16.5e-6, 1e-12);
    ck_assert_double_eq_tol(clock_error_bound(&f.s, 0.0), 0.005165, 1e-12);
    clock_free(c);
}
END_TEST

/* Each TSU may declare its own accuracy: clock_read_max() judges the same snapshot against
 * the caller's maximum and leaves the shared verdict alone. */
START_TEST(test_read_max_per_caller)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock_reading r;
    struct clock *c;

    fake_init(&f);
    c = fake_clock(&f, &cfg);
    clock_read_max(c, 0.001, &r);
    ck_assert_int_eq(r.verdict, CLOCK_BOUND);
    ck_assert_double_eq_tol(r.error_bound, 0.005165, 1e-12);
    clock_read_max(c, 0.01, &r);
    ck_assert_int_eq(r.verdict, CLOCK_OK);
    clock_read(c, &r);
    ck_assert_int_eq(r.verdict, CLOCK_OK);
    clock_free(c);
    ck_assert_int_eq(log_count("clock_sync_lost"), 0);
}
END_TEST

START_TEST(test_verdict_leap_window)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    f.s.leap = 1; /* insert a second at the end of this UTC day */
    f.rt.tv_sec = T_MIDNIGHT - 3600;
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_OK); /* announced, but an hour away */
    fake_advance_to(&f, T_MIDNIGHT - 11);
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    fake_advance_to(&f, T_MIDNIGHT - 5);
    ck_assert_int_eq(clock_poll_now(c), CLOCK_LEAP);
    ck_assert_int_eq(read_verdict(c), CLOCK_LEAP);
    /* after midnight chronyd clears the announcement; the guard still holds */
    f.s.leap = 0;
    fake_advance_to(&f, T_MIDNIGHT + 3);
    ck_assert_int_eq(clock_poll_now(c), CLOCK_LEAP);
    fake_advance_to(&f, T_MIDNIGHT + 11);
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    clock_free(c);
    ck_assert_int_eq(log_count("AUDIT event=clock_sync_lost reason=leap"), 1);
    ck_assert_int_eq(log_count("AUDIT event=clock_sync_regained reason=ok prev=leap"), 1);
}
END_TEST

START_TEST(test_verdict_leap_delete)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    f.s.leap = 2;
    f.rt.tv_sec = T_MIDNIGHT - 1;
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_LEAP);
    clock_free(c);
}
END_TEST

/* The kernel inserts an announced leap second by stepping CLOCK_REALTIME back 1 s at midnight:
 * inside the leap guard that is the leap, not a step to hold until chronyd's next update
 * (issue 8 item 3 must not refuse tokens for a whole NTP poll after every leap second). A
 * step of any other size there is still held. */
START_TEST(test_leap_second_step_not_held)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    cfg.poll_interval = 1.0;
    f.s.leap = 1; /* insert a second at the end of this UTC day */
    f.rt.tv_sec = T_MIDNIGHT - 5;
    f.s.ref_time.tv_sec = T_MIDNIGHT - 20;
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_LEAP);
    /* 8 s later on the monotonic clock, 7 s later on the real-time clock: 23:59:60 repeated */
    f.s.leap = 0;
    f.mono.tv_sec += 8;
    f.rt.tv_sec += 7;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_LEAP);
    fake_advance_to(&f, T_MIDNIGHT + 11);
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    clock_free(c);

    /* the same window, a step of 3 s: held */
    fake_init(&f);
    f.s.leap = 1;
    f.rt.tv_sec = T_MIDNIGHT - 5;
    f.s.ref_time.tv_sec = T_MIDNIGHT - 20;
    c = fake_clock(&f, &cfg);
    f.s.leap = 0;
    f.mono.tv_sec += 8;
    f.rt.tv_sec += 5;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_STEPPED);
    fake_advance_to(&f, T_MIDNIGHT + 11);
    ck_assert_int_eq(clock_poll_now(c), CLOCK_STEPPED);
    clock_free(c);
}
END_TEST

/* Second review of issue 8: the same leap second seen by a late sample. The poller's sample
 * after the kernel's step can come later than leap_guard after midnight (a poll waits up to a
 * second for chronyd, which is busy at the leap itself); the step happened when the clock
 * passed midnight, between the two samples, and is still the leap: not held until chronyd's
 * next update (a whole NTP poll, up to 1024 s, without tokens). Defaults: poll 1 s, guard 1 s. */
START_TEST(test_leap_second_step_late_sample)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    cfg.poll_interval = 1.0;
    cfg.leap_guard = 1.0;
    f.s.leap = 1; /* insert a second at the end of this UTC day */
    f.rt.tv_sec = T_MIDNIGHT - 1;
    f.s.ref_time.tv_sec = T_MIDNIGHT - 20;
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_LEAP);
    /* the next sample 4 s later on the monotonic clock, 3 s on the real-time clock (23:59:60
     * repeated 23:59:59), so 2 s after midnight: outside the guard; chronyd has no new update */
    f.s.leap = 0;
    f.mono.tv_sec += 4;
    f.rt.tv_sec += 3;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    fake_advance_to(&f, T_MIDNIGHT + 5);
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    clock_free(c);

    /* a deleted second (23:59:59 skipped: +1 s), seen late as well */
    fake_init(&f);
    f.s.leap = 2;
    f.rt.tv_sec = T_MIDNIGHT - 1;
    f.s.ref_time.tv_sec = T_MIDNIGHT - 20;
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_LEAP);
    f.s.leap = 0;
    f.mono.tv_sec += 2;
    f.rt.tv_sec += 3;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    clock_free(c);

    /* a step of 1 s far from the announced midnight is still held */
    fake_init(&f);
    f.s.leap = 1;
    f.rt.tv_sec = T_MIDNIGHT - 3600;
    f.s.ref_time.tv_sec = T_MIDNIGHT - 3620;
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_OK);
    f.mono.tv_sec += 2;
    f.rt.tv_sec += 1;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_STEPPED);
    clock_free(c);
}
END_TEST

START_TEST(test_verdict_no_leap_at_midnight)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    f.rt.tv_sec = T_MIDNIGHT; /* no leap announced: midnight is an ordinary second */
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_OK);
    clock_free(c);
}
END_TEST

START_TEST(test_kernel_check)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    f.s.kernel_unsync = true;
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_OK); /* kernel_check off */
    clock_free(c);
    cfg.kernel_check = true;
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_UNSYNC);
    f.s.kernel_unsync = false;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    clock_free(c);
}
END_TEST

/* TSA-05: out of sync -> refuse; resumes only after a fresh good sample. */
START_TEST(test_recovery_audit)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock *c;

    fake_init(&f);
    c = fake_clock(&f, &cfg);
    ck_assert_int_eq(read_verdict(c), CLOCK_OK);
    f.s.leap = 3;
    ck_assert_int_eq(read_verdict(c), CLOCK_OK); /* nothing changes until a new sample */
    ck_assert_int_eq(clock_poll_now(c), CLOCK_UNSYNC);
    ck_assert_int_eq(read_verdict(c), CLOCK_UNSYNC);
    ck_assert_int_eq(clock_poll_now(c), CLOCK_UNSYNC); /* no transition, no new event */
    f.s.leap = 0;
    ck_assert_int_eq(clock_poll_now(c), CLOCK_OK);
    ck_assert_int_eq(read_verdict(c), CLOCK_OK);
    clock_free(c);
    ck_assert_int_eq(log_count("AUDIT event=clock_status reason=ok"), 1);
    ck_assert_int_eq(log_count("AUDIT event=clock_sync_lost reason=unsync prev=ok"), 1);
    ck_assert_int_eq(log_count("AUDIT event=clock_sync_regained reason=ok prev=unsync"), 1);
    ck_assert_int_eq(log_count("AUDIT"), 3);
    ck_assert_int_eq(log_count("bound=0.005165000"), 3);
}
END_TEST

/* The poller samples by itself and clock_free() stops it. */
START_TEST(test_poller_runs)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct timespec pause = {0, 10000000};
    struct clock *c;

    fake_init(&f);
    cfg.poll_interval = 0.02;
    c = fake_clock(&f, &cfg);
    for (int i = 0; i < 500 && atomic_load(&f.calls) < 4; i++)
        nanosleep(&pause, NULL);
    ck_assert_int_ge(atomic_load(&f.calls), 4);
    clock_free(c);
}
END_TEST

START_TEST(test_config_and_api)
{
    struct fake f;
    struct clock_config cfg = base_cfg();
    struct clock_source src = {fake_sample, fake_now, &f};

    fake_init(&f);
    clock_free(NULL);
    ck_assert_ptr_null(clock_new_with_source(NULL, &src));
    ck_assert_ptr_null(clock_new_with_source(&cfg, NULL));
    cfg.poll_interval = 0;
    ck_assert_ptr_null(clock_new_with_source(&cfg, &src));
    cfg = base_cfg();
    cfg.max_error = -1;
    ck_assert_ptr_null(clock_new_with_source(&cfg, &src));
    cfg = base_cfg();
    ck_assert_ptr_null(clock_new(&cfg)); /* no chrony_socket */
    ck_assert_str_eq(clock_verdict_str(CLOCK_OK), "ok");
    ck_assert_str_eq(clock_verdict_str(CLOCK_UNREACHABLE), "unreachable");
    ck_assert_str_eq(clock_verdict_str(CLOCK_UNSYNC), "unsync");
    ck_assert_str_eq(clock_verdict_str(CLOCK_STALE), "stale");
    ck_assert_str_eq(clock_verdict_str(CLOCK_BOUND), "bound");
    ck_assert_str_eq(clock_verdict_str(CLOCK_LEAP), "leap");
    ck_assert_int_eq(atomic_load(&f.calls), 0);
}
END_TEST

/* ---- a real chronyd (only with CHRONY_SOCKET; see tests/integration/test_clock_chrony.sh) ---- */

START_TEST(test_real_chronyd)
{
    const char *sock = getenv("CHRONY_SOCKET");
    const char *want = getenv("CHRONY_EXPECT_LEAP");
    int leap = want != NULL ? atoi(want) : 0;
    struct clock_config cfg = base_cfg();
    struct clock_sample s;
    struct clock_reading r;
    struct clock *c;

    ck_assert_ptr_nonnull(sock);
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(clock_chrony_sample(sock, &s), ST_OK);
    ck_assert_int_eq(s.leap, leap);
    if (leap == 0) {
        /* `local stratum 8`: ref id 127.127.1.1, ref time refreshed every 64 s */
        ck_assert_int_eq(s.stratum, 8);
        ck_assert_uint_eq(s.ref_id, 0x7f7f0101u);
        ck_assert_double_ge(s.last_update_age, 0.0);
        ck_assert_double_le(s.last_update_age, 70.0);
        ck_assert_double_lt(fabs(s.offset), 0.001);
    } else {
        ck_assert_int_eq(s.stratum, 0);
        ck_assert_double_eq_tol(s.root_dispersion, 1.0, 1e-6);
    }
    cfg.chrony_socket = sock;
    cfg.poll_interval = 1.0;
    c = clock_new(&cfg);
    ck_assert_ptr_nonnull(c);
    clock_read(c, &r);
    ck_assert_int_eq(r.verdict, leap == 0 ? CLOCK_OK : CLOCK_UNSYNC);
    if (leap == 0)
        ck_assert_double_lt(r.error_bound, 0.01);
    clock_free(c);
}
END_TEST

static Suite *
clock_suite(void)
{
    Suite *s = suite_create("clock");
    TCase *wire = tcase_create("wire");
    TCase *verdict = tcase_create("verdict");

    tcase_add_checked_fixture(wire, setup_log, teardown_log);
    tcase_set_timeout(wire, 15);
    tcase_add_test(wire, test_float_vectors);
    tcase_add_test(wire, test_float_round_trip);
    tcase_add_test(wire, test_build_request);
    tcase_add_test(wire, test_parse_reply);
    tcase_add_test(wire, test_parse_reply_rejects);
    tcase_add_test(wire, test_sample_fake_chronyd);
    tcase_add_test(wire, test_sample_client_socket_removed);
    tcase_add_test(wire, test_sample_timeout_retries);
    tcase_add_test(wire, test_sample_no_daemon);
    suite_add_tcase(s, wire);

    tcase_add_checked_fixture(verdict, setup_log, teardown_log);
    tcase_set_timeout(verdict, 15);
    tcase_add_test(verdict, test_clock_new_no_daemon);
    tcase_add_test(verdict, test_verdict_ok);
    tcase_add_test(verdict, test_verdict_unsync_leap3);
    tcase_add_test(verdict, test_verdict_unreachable_never);
    tcase_add_test(verdict, test_verdict_unreachable_after_ok);
    tcase_add_test(verdict, test_verdict_stale_update);
    tcase_add_test(verdict, test_verdict_stale_snapshot);
    tcase_add_test(verdict, test_verdict_step_detected);
    tcase_add_test(verdict, test_step_held_until_chronyd_update);
    tcase_add_test(verdict, test_step_back_held);
    tcase_add_test(verdict, test_verdict_kernel_maxerror);
    tcase_add_test(verdict, test_verdict_bound_offset);
    tcase_add_test(verdict, test_verdict_bound_dispersion);
    tcase_add_test(verdict, test_bound_arithmetic);
    tcase_add_test(verdict, test_read_max_per_caller);
    tcase_add_test(verdict, test_verdict_leap_window);
    tcase_add_test(verdict, test_verdict_leap_delete);
    tcase_add_test(verdict, test_verdict_no_leap_at_midnight);
    tcase_add_test(verdict, test_leap_second_step_not_held);
    tcase_add_test(verdict, test_leap_second_step_late_sample);
    tcase_add_test(verdict, test_kernel_check);
    tcase_add_test(verdict, test_recovery_audit);
    tcase_add_test(verdict, test_poller_runs);
    tcase_add_test(verdict, test_config_and_api);
    suite_add_tcase(s, verdict);

    if (getenv("CHRONY_SOCKET") != NULL) {
        TCase *real = tcase_create("chronyd");

        tcase_add_checked_fixture(real, setup_log, teardown_log);
        tcase_set_timeout(real, 15);
        tcase_add_test(real, test_real_chronyd);
        suite_add_tcase(s, real);
    }
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(clock_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
