/*
 * clockshift: an LD_PRELOAD shim for the clock tests (test_clock_faults.sh,
 * test_tsad_gentime_restart.sh). The machine's clock is not a test's to step, so a daemon (and
 * chronyd) started with LD_PRELOAD=build/tests/libclockshift.so and CLOCKSHIFT_FILE=FILE sees
 * CLOCK_REALTIME moved by the whole seconds written in FILE: writing the file is a step of its
 * system clock. CLOCK_MONOTONIC is left alone, as a real step leaves it. Without the variable,
 * or while the file cannot be read, the real clock is returned.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int
clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    char buf[32];
    const char *f = getenv("CLOCKSHIFT_FILE");
    int fd, r;
    ssize_t n;

    if (real == NULL)
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    r = real(id, ts);
    if (r != 0 || (id != CLOCK_REALTIME && id != CLOCK_REALTIME_COARSE) || f == NULL)
        return r;
    if ((fd = open(f, O_RDONLY | O_CLOEXEC)) < 0)
        return r;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        ts->tv_sec += strtol(buf, NULL, 10);
    }
    return r;
}
