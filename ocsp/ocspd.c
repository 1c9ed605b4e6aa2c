/*
 * ocspd: the RFC 6960 OCSP responder daemon. common/daemon runs the process (options,
 * config, start-up and shutdown order, systemd notifications); this file plugs in ocspd's
 * config schema and its service (store, signer, issuers, refresher). Issuers and status are
 * managed with ocspctl, in the same LMDB store, while ocspd runs.
 *
 *   ocspd -c /etc/ocspd/ocspd.conf     serve
 *   ocspd -n -c FILE                   check the configuration (store, token, issuer keys), exit
 */
#include "common/daemon.h"
#include "ocsp/ocsp_config.h"
#include "ocsp/ocsp_service.h"

static int
ocspd_load(void *cfg, const char *path, char *err, size_t errlen)
{
    return ocsp_config_load(cfg, path, err, errlen);
}

static const struct config_server *
ocspd_server(const void *cfg)
{
    return &((const struct ocsp_config *)cfg)->server;
}

static int
ocspd_log_level(const void *cfg)
{
    return ((const struct ocsp_config *)cfg)->log_level;
}

static void *
ocspd_start(void *cfg, struct http_server *http, bool check)
{
    return ocsp_service_new(cfg, http, check);
}

static void
ocspd_stop(void *svc)
{
    ocsp_service_free(svc);
}

static int
ocspd_reload(void *svc, const char *path, char *what, size_t whatcap, char *err, size_t errlen)
{
    return ocsp_service_reload(svc, path, what, whatcap, err, errlen);
}

int
main(int argc, char **argv)
{
    static struct ocsp_config cfg;
    static const struct daemon_ops ops = {
        .name = "ocspd",
        .default_conf = "/etc/ocspd/ocspd.conf",
        .cfg = &cfg,
        .max_url = 4096, /* GET requests carry the base64 request in the path */
        .load = ocspd_load,
        .server = ocspd_server,
        .log_level = ocspd_log_level,
        .start = ocspd_start,
        .stop = ocspd_stop,
        .reload = ocspd_reload,
    };

    return daemon_main(argc, argv, &ops);
}
