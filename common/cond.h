/*
 * cond: waiting on a condition variable for a relative time. The project's condition
 * variables use the default clock (CLOCK_REALTIME), whose absolute deadline each timed wait
 * needs; this computes it in one place. Header only.
 */
#ifndef COMMON_COND_H
#define COMMON_COND_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Wait on `cond` (with `lock` held) for at most `ns` nanoseconds (<= 0: at once). Returns as
 * pthread_cond_timedwait: 0, or ETIMEDOUT. */
static inline int
cond_wait_ns(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t ns)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    if (ns < 0)
        ns = 0;
    until.tv_sec += (time_t)(ns / 1000000000);
    until.tv_nsec += (long)(ns % 1000000000);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(cond, lock, &until);
}

#endif
