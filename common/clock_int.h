/*
 * clock_int: internals of common/clock.c exposed to its unit suite only (tests/unit/check_clock.c).
 * Nothing outside common/clock.c and its tests includes this header.
 *
 * chronyd command protocol (version 6), as `chronyc tracking` speaks it over the Unix socket:
 * a 20-byte request header padded with zeros to the length of the reply (chronyd drops shorter
 * requests, an anti-amplification rule), and a 28-byte reply header followed by RPY_Tracking.
 * All integers are big-endian; reals use chrony's 32-bit "Float" (7-bit signed exponent,
 * 25-bit signed coefficient, value = coef * 2^(exp - 25)).
 */
#ifndef COMMON_CLOCK_INT_H
#define COMMON_CLOCK_INT_H

#include "common/clock.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CLOCK_CHRONY_PROTO_VERSION 6
#define CLOCK_CHRONY_PKT_REQUEST 1
#define CLOCK_CHRONY_PKT_REPLY 2
#define CLOCK_CHRONY_REQ_TRACKING 33
#define CLOCK_CHRONY_RPY_TRACKING 5
#define CLOCK_CHRONY_STT_SUCCESS 0
/* Reply header (28) + RPY_Tracking up to its EOR (76); the request is padded to this too. */
#define CLOCK_CHRONY_TRACKING_LEN 104
#define CLOCK_CHRONY_REPLY_HDR_LEN 28

/* Reply field offsets (bytes from the start of the packet). */
#define CLOCK_CHRONY_OFF_STATUS 8
#define CLOCK_CHRONY_OFF_REPLY 6
#define CLOCK_CHRONY_OFF_SEQ 16
#define CLOCK_CHRONY_OFF_REF_ID 28
#define CLOCK_CHRONY_OFF_STRATUM 52
#define CLOCK_CHRONY_OFF_LEAP 54
#define CLOCK_CHRONY_OFF_REF_TIME 56   /* sec_high, sec_low, nsec */
#define CLOCK_CHRONY_OFF_CORRECTION 68 /* then last_offset, rms_offset, freq, resid_freq, ... */
#define CLOCK_CHRONY_OFF_RESID_FREQ 84
#define CLOCK_CHRONY_OFF_SKEW 88
#define CLOCK_CHRONY_OFF_ROOT_DELAY 92
#define CLOCK_CHRONY_OFF_ROOT_DISP 96

/* Fixed drift allowance added to chronyd's skew and residual frequency (ppm). */
#define CLOCK_DRIFT_ALLOWANCE_PPM 15.0
/* A clock step smaller than this is not told from scheduling jitter (seconds); the next chronyd
 * sample (poll_interval) reports smaller ones as offset. */
#define CLOCK_STEP_TOLERANCE 0.010

/* Decode one chrony Float given as its 32-bit value already in host byte order. */
double clock_chrony_float(uint32_t v);

/* Write a REQ_TRACKING request into buf (at least CLOCK_CHRONY_TRACKING_LEN bytes).
 * Returns the number of bytes to send. */
size_t clock_chrony_build_request(unsigned char *buf, uint32_t seq, uint16_t attempt);

/* Check a reply against the request's sequence number and decode it into *out; `now` is
 * CLOCK_REALTIME at receipt, for last_update_age. Kernel fields of *out are left alone.
 * Returns 0, or ST_INVALID (wrong version, type, command, status, length or leap value),
 * or ST_NOTFOUND when the sequence number is not ours (a stray reply: keep waiting). */
int clock_chrony_parse_reply(const unsigned char *buf, size_t len, uint32_t seq,
                             const struct timespec *now, struct clock_sample *out);

/* What the poller keeps: the latest answer of the source and when it was taken. */
struct clock_state {
    bool valid;                 /* the last sample succeeded */
    struct clock_sample sample; /* meaningful when valid */
    struct timespec taken_mono; /* source's CLOCK_MONOTONIC when the sample was taken */
    struct timespec taken_real; /* source's CLOCK_REALTIME at the same moment */
    time_t leap_when;           /* UTC midnight of the last announced leap second, or 0 */
    /* A step of the system clock was seen between two samples: CLOCK_STEPPED until chronyd
     * reports a reference time later than step_after (issue 8 item 3). step_after is the
     * moment the step was seen, on the new clock and on the old one, whichever is later:
     * chronyd's updates from before the step are no later than that on either clock. */
    bool step_held;
    struct timespec step_after;
};

/* The error bound (seconds) of a sample `sample_age` seconds old; see clock.h. */
double clock_error_bound(const struct clock_sample *s, double sample_age);

/* The verdict for `st` at (rt, mono) against max_error; sets *bound and *sample_age
 * (0 when the state is not valid). Pure: reads nothing else. */
enum clock_verdict clock_evaluate(const struct clock_config *cfg, double max_error,
                                  const struct clock_state *st, const struct timespec *rt,
                                  const struct timespec *mono, double *bound, double *sample_age);

#endif
