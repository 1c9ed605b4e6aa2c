/*
 * ocsp_config: the schema of ocspd.conf (also read by ocspctl for the store path and the
 * PKCS#11 settings), parsed with common/config and validated completely at start (DESIGN D8).
 * Every key is documented in conf/ocspd.conf. Issuers are not configured here: they live in
 * the store and are managed with `ocspctl issuer add`.
 */
#ifndef OCSP_OCSP_CONFIG_H
#define OCSP_OCSP_CONFIG_H

#include "common/config.h"
#include "common/ratelimit.h"

#include <limits.h>
#include <stdbool.h>

#define OCSP_FRONT_CACHE_DEFAULT ((size_t)16 << 20)
#define OCSP_FRONT_CACHE_MAX ((size_t)1 << 30)

#include <stddef.h>
#include <stdint.h>

/* [store] prefault: no; yes (map ahead, asking for 2 MiB pages); reread (cached pages
 * dropped and read again first, so that they can be 2 MiB ones): store_prefault_start */
enum { OCSP_PREFAULT_NO, OCSP_PREFAULT_YES, OCSP_PREFAULT_REREAD };

struct ocsp_config {
    char file[PATH_MAX];
    struct config_server server; /* [server] */
    char base_path[128];         /* [server] base_path: POST and GET served under it ("/") */
    /* [log] */
    int log_level;
    struct config_store store;   /* [store] (no journal keys) */
    uint8_t store_prefault;      /* [store] prefault: OCSP_PREFAULT_* (yes) */
    struct config_signer signer; /* [signer] */
    /* [ocsp] */
    double refresh_interval; /* seconds between refresher scans */
    double refresh_margin;   /* re-sign when less than this fraction of validity is left, 0..1 */
    double max_age;          /* upper bound of Cache-Control max-age (seconds) */
    unsigned max_certids;    /* CertIDs per request (<= OCSP_MAX_CERTIDS) */
    size_t front_cache;      /* bytes of built replies kept by request bytes (0: off) */
    size_t unissued_cache;   /* answers for serials without a record kept in memory (0: off) */
    /* [limits]: answers signed on demand, per client address (sign_rate, sign_burst,
     * sign_sources; OCSP-27) */
    struct ratelimit_config sign_limit;
};

/* Parse and validate. ST_OK, or ST_CONFIG with "file:line: message" in err. */
int ocsp_config_load(struct ocsp_config *cfg, const char *path, char *err, size_t errlen);
int ocsp_config_load_string(struct ocsp_config *cfg, const char *text, char *err, size_t errlen);

#endif
