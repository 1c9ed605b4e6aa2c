/*
 * live: liveness heartbeats behind the systemd watchdog (DESIGN D8, D10).
 *
 * Every thread that can block inside one call owns a beat: HTTP handler threads, signer
 * workers, test signatures and signer_sign_now() (a PKCS#11 C_Sign may hang on a network HSM), the
 * commit pipeline's writer (an fsync may hang on a failing disk) and the journal writer. A thread
 * marks its beat busy when it enters such a call and idle when it leaves. live_check() says the
 * process is alive while no beat has been busy in one call for longer than a bound: a stuck thread
 * stops the watchdog pings (systemd then restarts the service), an idle thread never does, and
 * health (clock out of bounds, store filling up) is deliberately not looked at: it has /healthz and
 * the metrics, and restarting the daemon would not cure it.
 *
 * Beats live in a fixed table (no allocation); a full table makes live_beat_new() return
 * NULL, and every other call accepts NULL and does nothing.
 *
 * Thread-safety: all calls may be made from any thread; live_busy()/live_idle() are one
 * atomic store each (plus a vDSO clock read for busy) and are meant for hot paths.
 */
#ifndef COMMON_LIVE_H
#define COMMON_LIVE_H

#include <stdbool.h>
#include <stddef.h>

#define LIVE_MAX_BEATS 512
#define LIVE_NAME_MAX 40

struct live_beat;

/* A beat named `name` (copied, truncated to LIVE_NAME_MAX - 1), idle. NULL when the table is
 * full. */
struct live_beat *live_beat_new(const char *name);
/* Give the slot back. NULL-safe. */
void live_beat_free(struct live_beat *b);
/* Entering / leaving a call that may block. NULL-safe. */
void live_busy(struct live_beat *b);
void live_idle(struct live_beat *b);

/* true when no beat has been busy for longer than `bound` seconds. Otherwise false, with the
 * name of the longest-busy beat and for how long (seconds) in who/how_long (either may be
 * NULL). */
bool live_check(double bound, char *who, size_t cap, double *how_long);

#endif
