/*
 * tsad: the RFC 3161 time-stamp responder daemon. common/daemon runs the process (options,
 * config, start-up and shutdown order, systemd notifications); this file plugs in tsad's
 * config schema and its service (store, signer, TSUs, clock).
 *
 *   tsad -c /etc/tsad/tsad.conf     serve
 *   tsad -n -c FILE                 check the configuration (and its keys, certificates,
 *                                   token and clock socket) and exit
 */
#include "common/daemon.h"
#include "tsa/tsa_config.h"
#include "tsa/tsa_service.h"

#include <stdio.h>

static int
tsad_load(void *cfg, const char *path, char *err, size_t errlen)
{
    return tsa_config_load(cfg, path, err, errlen);
}

static const struct config_server *
tsad_server(const void *cfg)
{
    return &((const struct tsa_config *)cfg)->server;
}

static int
tsad_log_level(const void *cfg)
{
    return ((const struct tsa_config *)cfg)->log_level;
}

static void *
tsad_start(void *cfg, struct http_server *http, bool check)
{
    return tsa_service_new(cfg, http, NULL, check);
}

static void
tsad_stop(void *svc)
{
    tsa_service_free(svc);
}

static int
tsad_reload(void *svc, const char *path, char *what, size_t whatcap, char *err, size_t errlen)
{
    return tsa_service_reload(svc, path, what, whatcap, err, errlen);
}

static void
tsad_summary(const void *cfg, char *buf, size_t cap)
{
    snprintf(buf, cap, "%zu TSU(s)", ((const struct tsa_config *)cfg)->n_units);
}

int
main(int argc, char **argv)
{
    static struct tsa_config cfg;
    static const struct daemon_ops ops = {
        .name = "tsad",
        .default_conf = "/etc/tsad/tsad.conf",
        .cfg = &cfg,
        .load = tsad_load,
        .server = tsad_server,
        .log_level = tsad_log_level,
        .start = tsad_start,
        .stop = tsad_stop,
        .summary = tsad_summary,
        .reload = tsad_reload,
    };

    return daemon_main(argc, argv, &ops);
}
