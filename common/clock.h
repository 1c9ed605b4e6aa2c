/*
 * clock: the UTC time gate (DESIGN D3; STANDARDS TSA-04/05, TSP-12).
 *
 * A background thread polls a time-status source (by default chronyd's command socket,
 * REQ_TRACKING, the request `chronyc tracking` sends, plus the kernel's ntp_adjtime(2)) every
 * poll interval and keeps a snapshot. clock_read() returns CLOCK_REALTIME together with an
 * error bound derived from that snapshot and a verdict: only CLOCK_OK may be used to issue
 * a time-stamp. Verdict changes are written as audit events ("clock_sync_lost",
 * "clock_sync_regained").
 *
 * Error bound (seconds) = |chronyd offset (current correction)| + root_delay/2
 *                         + root_dispersion + age_of_snapshot_and_last_update * drift_rate
 * where drift_rate is skew + residual frequency (ppm) plus a fixed 15 ppm allowance; with
 * kernel_check, the kernel's maxerror when it is larger.
 *
 * Independently of chronyd (TSA-04), every reading compares how far CLOCK_REALTIME and
 * CLOCK_MONOTONIC moved since the snapshot: a step of the system clock (settimeofday, date -s)
 * shows as a difference and gives CLOCK_STEPPED at once; the poller logs each step it sees
 * between two samples as an audit event "clock_step" and keeps CLOCK_STEPPED until chronyd
 * reports a reference time (its last clock update) later than the step (issue 8 item 3). A
 * step backwards is held at least as long as it went back, so no time-stamp after the step
 * carries a time earlier than one before it. The 1 s step of an announced leap second, inside
 * the leap guard, is not held (CLOCK_LEAP covers it).
 *
 * Thread-safety: clock_read()/clock_snapshot() may be called from any thread.
 */
#ifndef COMMON_CLOCK_H
#define COMMON_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

enum clock_verdict {
    CLOCK_OK = 0,
    CLOCK_UNREACHABLE = 1, /* chronyd did not answer (or never answered) */
    CLOCK_UNSYNC = 2,      /* chronyd leap status "not synchronised", or kernel STA_UNSYNC */
    CLOCK_STALE = 3,       /* last update older than max_update_age, or snapshot too old */
    CLOCK_BOUND = 4,       /* error bound larger than the allowed maximum */
    CLOCK_LEAP = 5,        /* within the leap-second guard window */
    CLOCK_STEPPED = 6      /* CLOCK_REALTIME moved against CLOCK_MONOTONIC since the snapshot:
                              the clock was stepped and chronyd has not yet been asked (TSA-04) */
};

/* One reading of the time-status source. */
struct clock_sample {
    int leap; /* 0 normal, 1 insert second, 2 delete second, 3 unsynchronised */
    int stratum;
    uint32_t ref_id;
    double offset;          /* seconds the system clock is off (chronyd current correction) */
    double root_delay;      /* seconds */
    double root_dispersion; /* seconds */
    double skew_ppm;
    double resid_freq_ppm;
    double last_update_age;   /* seconds since chronyd's last clock update, at sample time */
    struct timespec ref_time; /* chronyd's reference time: CLOCK_REALTIME of that last update
                                 as chronyd reports it (zero: never updated) */
    bool kernel_unsync;       /* ntp_adjtime reported STA_UNSYNC / TIME_ERROR */
    double kernel_maxerror;   /* seconds, from ntp_adjtime */
};

/* The seam tests replace: where samples and "now" come from. */
struct clock_source {
    /* Fill *out; return 0 or a negative ST_* code (source unreachable). */
    int (*sample)(void *ctx, struct clock_sample *out);
    /* CLOCK_REALTIME and CLOCK_MONOTONIC readings. */
    void (*now)(void *ctx, struct timespec *realtime, struct timespec *monotonic);
    void *ctx;
};

struct clock_config {
    const char *chrony_socket; /* chronyd command socket path (bindcmdaddress) */
    double poll_interval;      /* seconds between samples (e.g. 1.0) */
    double max_update_age;     /* chronyd last update older than this -> CLOCK_STALE */
    double max_error;          /* bound above this -> CLOCK_BOUND (usually the token accuracy) */
    double leap_guard;         /* seconds around a pending leap second with no issuance */
    bool kernel_check;         /* also require the kernel clock to be synchronised */
};

/* What clock_read() returns. */
struct clock_reading {
    struct timespec now; /* CLOCK_REALTIME, UTC */
    double error_bound;  /* seconds; meaningful when verdict is CLOCK_OK or CLOCK_BOUND */
    enum clock_verdict verdict;
    struct clock_sample sample; /* the snapshot the verdict was computed from */
    double sample_age;          /* seconds since the snapshot was taken */
};

struct clock;

/* Start a clock with chronyd + kernel as the source. NULL on failure (logged). */
struct clock *clock_new(const struct clock_config *cfg);
/* Start a clock with a replaced source (tests). *src is copied. */
struct clock *clock_new_with_source(const struct clock_config *cfg, const struct clock_source *src);
/* Stop the poller thread and free. NULL-safe. */
void clock_free(struct clock *c);

/* Now, its bound and the verdict, against cfg->max_error. */
void clock_read(struct clock *c, struct clock_reading *out);
/* Same, against a caller-given maximum error (each TSU may declare its own accuracy). */
void clock_read_max(struct clock *c, double max_error, struct clock_reading *out);
/* Take a sample now, synchronously (also done by the poller). Returns the new verdict. */
enum clock_verdict clock_poll_now(struct clock *c);

const char *clock_verdict_str(enum clock_verdict v);

/* The default source: chronyd's command socket at `socket_path` and ntp_adjtime(2).
 * Exposed for `tsad -n` diagnostics and tests against a real chronyd. */
int clock_chrony_sample(const char *socket_path, struct clock_sample *out);

#endif
