/*
 * daemon: sd_notify and signal waiting (see daemon.h).
 */
#include "common/daemon.h"
#include "common/log.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

void
daemon_block_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void
daemon_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t len;
    int fd;

    if (path == NULL || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sa.sun_path))
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract socket */
    len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, (socklen_t)len) < 0)
        log_debug("sd_notify failed");
    close(fd);
}

int
daemon_wait(int (*healthy)(void *ctx), void *ctx)
{
    const char *wd = getenv("WATCHDOG_USEC");
    long long usec = wd != NULL ? atoll(wd) : 0;
    struct timespec tick = {1, 0};
    sigset_t set;
    int sig;

    if (usec > 0) {
        tick.tv_sec = (time_t)(usec / 2000000);
        tick.tv_nsec = (long)((usec / 2 % 1000000) * 1000);
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    for (;;) {
        sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT)
            return sig;
        if (sig == SIGHUP)
            log_notice("SIGHUP: configuration reload is not supported; restart to apply changes");
        if (usec > 0 && (healthy == NULL || healthy(ctx)))
            daemon_notify("WATCHDOG=1");
    }
}
