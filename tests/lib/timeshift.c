/*
 * timeshift: an LD_PRELOAD shim for the front-cache clock tests (test_review_front_clock.sh,
 * test_review_front_margin.sh): time() and gettimeofday() run ahead or behind by the number of
 * seconds in the file named by $REVIEW_SHIFT_FILE, read on every call (clockshift.c moves only
 * clock_gettime). Built by the tests themselves (cc -shared -fPIC).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
static long
shift_s(void)
{
    char buf[32];
    const char *f = getenv("REVIEW_SHIFT_FILE");
    int fd;
    ssize_t n;
    if (f == NULL || (fd = open(f, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}
time_t
time(time_t *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += shift_s();
    if (t != NULL)
        *t = ts.tv_sec;
    return ts.tv_sec;
}
int
gettimeofday(struct timeval *tv, void *tz)
{
    struct timespec ts;
    (void)tz;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec + shift_s();
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}
