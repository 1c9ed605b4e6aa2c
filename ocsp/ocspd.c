/*
 * ocspd: the RFC 6960 OCSP responder daemon. main() reads and validates the config, then
 * brings the services up in a fixed order (log, http server object, ocsp service: store,
 * signer, issuers, refresher; then HTTP listening) and takes them down in reverse on
 * SIGTERM/SIGINT. Issuers and status are managed with ocspctl, in the same LMDB store, while
 * ocspd runs.
 *
 *   ocspd -c /etc/ocspd/ocspd.conf     serve
 *   ocspd -n -c FILE                   check the configuration (store, token, issuer keys), exit
 */
#include "common/daemon.h"
#include "common/http.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/status.h"
#include "ocsp/ocsp_config.h"
#include "ocsp/ocsp_service.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void
usage(FILE *f)
{
    fprintf(f, "usage: ocspd [-n] [-c FILE]\n"
               "  -c FILE   configuration file (default /etc/ocspd/ocspd.conf)\n"
               "  -n        check the configuration and exit (0 when valid)\n"
               "  -h        this help\n");
}

static int
ocspd_healthy(void *ctx)
{
    return ocsp_service_healthy(ctx);
}

int
main(int argc, char **argv)
{
    static struct ocsp_config cfg;
    const char *path = "/etc/ocspd/ocspd.conf";
    struct http_server *http = NULL;
    struct ocsp_service *svc = NULL;
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
    log_init("ocspd", LOG_LVL_INFO);
    if (ocsp_config_load(&cfg, path, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "ocspd: %s\n", err);
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
    hc.max_url = 4096;
    http = http_server_new(&hc);
    if (http == NULL)
        goto out;
    svc = ocsp_service_new(&cfg, http);
    if (svc == NULL) {
        fprintf(stderr, "ocspd: cannot start with %s (see the log above)\n", path);
        goto out;
    }
    if (check_only) {
        printf("ocspd: %s is valid\n", path);
        rc = 0;
        goto out;
    }
    if (http_server_start(http) != ST_OK)
        goto out;
    log_audit("service_start", "listen=%s:%u", cfg.listen_host, (unsigned)http_server_port(http));
    daemon_notify("READY=1");
    log_notice("received signal %d, stopping", daemon_wait(ocspd_healthy, svc));
    daemon_notify("STOPPING=1");
    rc = 0;
out:
    http_server_stop(http);
    ocsp_service_free(svc);
    http_server_free(http);
    if (rc == 0 && !check_only)
        log_audit("service_stop", "clean shutdown");
    metrics_fini();
    return rc;
}
