/*
 * tsad: the RFC 3161 time-stamp responder daemon. main() reads and validates the config,
 * then brings the services up in a fixed order (log, http server object, tsa service: store,
 * signer, TSUs, clock; then HTTP listening) and takes them down in reverse on SIGTERM/SIGINT.
 *
 *   tsad -c /etc/tsad/tsad.conf     serve
 *   tsad -n -c FILE                 check the configuration (and its keys, certificates,
 *                                   token and clock socket) and exit
 */
#include "common/daemon.h"
#include "common/http.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/status.h"
#include "tsa/tsa_config.h"
#include "tsa/tsa_service.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
usage(FILE *f)
{
    fprintf(f, "usage: tsad [-n] [-c FILE]\n"
               "  -c FILE   configuration file (default /etc/tsad/tsad.conf)\n"
               "  -n        check the configuration and exit (0 when valid)\n"
               "  -h        this help\n");
}

static int
tsad_healthy(void *ctx)
{
    return tsa_service_healthy(ctx);
}

int
main(int argc, char **argv)
{
    static struct tsa_config cfg;
    const char *path = "/etc/tsad/tsad.conf";
    struct http_server *http = NULL;
    struct tsa_service *svc = NULL;
    struct http_config hc = {0};
    char err[512];
    bool check_only = false;
    int opt, rc = 1;

    while ((opt = getopt(argc, argv, "c:nh")) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 'n': check_only = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    log_init("tsad", LOG_LVL_INFO);
    if (tsa_config_load(&cfg, path, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "tsad: %s\n", err);
        return 1;
    }
    log_set_level(cfg.log_level);
    daemon_block_signals();
    hc.listen_addr = cfg.listen_host;
    hc.port = cfg.listen_port;
    hc.threads = cfg.threads;
    hc.max_body = cfg.max_body;
    hc.max_connections = cfg.max_connections;
    hc.per_ip_limit = cfg.per_ip_limit;
    hc.timeout_s = cfg.timeout_s;
    http = http_server_new(&hc);
    if (http == NULL)
        goto out;
    svc = tsa_service_new(&cfg, http, NULL);
    if (svc == NULL) {
        fprintf(stderr, "tsad: cannot start with %s (see the log above)\n", path);
        goto out;
    }
    if (check_only) {
        printf("tsad: %s is valid (%zu TSU(s))\n", path, cfg.n_units);
        rc = 0;
        goto out;
    }
    if (http_server_start(http) != ST_OK)
        goto out;
    log_audit("service_start", "listen=%s:%u tsus=%zu", cfg.listen_host,
              (unsigned)http_server_port(http), cfg.n_units);
    daemon_notify("READY=1");
    log_notice("received signal %d, stopping", daemon_wait(tsad_healthy, svc));
    daemon_notify("STOPPING=1");
    rc = 0;
out:
    http_server_stop(http);
    tsa_service_free(svc);
    http_server_free(http);
    if (rc == 0 && !check_only)
        log_audit("service_stop", "clean shutdown");
    metrics_fini();
    return rc;
}
