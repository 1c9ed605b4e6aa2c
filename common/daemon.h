/*
 * daemon: process plumbing shared by tsad and ocspd: systemd readiness and watchdog
 * notifications (sd_notify protocol over $NOTIFY_SOCKET, no libsystemd needed), and a
 * blocking wait for SIGTERM/SIGINT that also sends watchdog pings.
 */
#ifndef COMMON_DAEMON_H
#define COMMON_DAEMON_H

/* Block SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread; call before starting any
 * thread so that every thread inherits the mask. */
void daemon_block_signals(void);
/* Send a state string ("READY=1", "STOPPING=1", "STATUS=...") to systemd; no-op outside it. */
void daemon_notify(const char *state);
/* Wait until SIGTERM or SIGINT; pings the watchdog when $WATCHDOG_USEC is set, calling
 * healthy() first (a false answer skips the ping). Returns the signal number. */
int daemon_wait(int (*healthy)(void *ctx), void *ctx);

#endif
