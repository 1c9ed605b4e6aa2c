/*
 * tsa_config: the schema of tsad.conf, parsed with common/config and validated completely at
 * start into an immutable struct (DESIGN D8). Every key is documented in conf/tsad.conf.
 *
 * TSA-17: each time-stamping unit (`[tsu NAME]`) is served at a URL path.
 * A path may carry several non-qualified TSUs (chosen by the request's reqPolicy, else the
 * path's default one); a qualified TSU must be alone on its path, so no request field can
 * move a request between qualified and non-qualified issuance.
 */
#ifndef TSA_TSA_CONFIG_H
#define TSA_TSA_CONFIG_H

#include "common/config.h"
#include "common/ratelimit.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TSA_MAX_UNITS 16
#define TSA_MAX_HASHES 8

struct tsa_unit_config {
    char name[64];
    char policy[128];        /* dotted OID */
    char path[128];          /* URL path, e.g. /tsa */
    bool is_default;         /* default TSU of its path when reqPolicy is absent */
    char cert[PATH_MAX];     /* TSU certificate (PEM) */
    char chain[PATH_MAX];    /* issuing CA chain (PEM), sent with certReq and checked */
    char key_label[128];     /* PKCS#11 private key label, or */
    char key_file[PATH_MAX]; /* software key (PEM) */
    int scheme;              /* enum signer_scheme */
    int hash;                /* enum signer_hash */
    double accuracy;         /* seconds, 1e-6 .. 1 */
    bool qualified;          /* adds esi4-qtstStatement-1 (CIR-01, TPR-12) */
    bool tsa_name;           /* put the TSU subject in TSTInfo.tsa */
    bool ess_cert_id_v1;     /* also add SigningCertificate (v1, SHA-1) */
    bool https_only;         /* its path refuses plain HTTP with 403 (CIR-02, issue 9) */
    int line;                /* where the section starts, for messages */
};

/* [server] https_listen, tls_cert, tls_key, tls_chain: the HTTPS listener (issue 9 item 1).
 * With https_listen and no `listen` key there is no plain HTTP listener. */
struct tsa_tls_config {
    bool on;    /* https_listen is set */
    bool plain; /* a plain HTTP listener too (listen set, or no https_listen) */
    char listen_host[64];
    uint16_t listen_port;
    char cert[PATH_MAX];  /* PEM server certificate (maybe followed by its chain) */
    char key[PATH_MAX];   /* PEM private key, mode 0600 */
    char chain[PATH_MAX]; /* PEM CA certificates after it (optional) */
    int line;             /* of https_listen, for messages */
};

struct tsa_config {
    char file[PATH_MAX];
    struct config_server server; /* [server] */
    struct tsa_tls_config tls;   /* [server] HTTPS keys */
    /* [log] */
    int log_level;
    /* [clock] */
    char chrony_socket[PATH_MAX];
    double poll_interval;
    double max_update_age;
    double leap_guard;
    bool kernel_check;
    struct config_store store;   /* [store] */
    struct config_signer signer; /* [signer] */
    /* [tsa] */
    int hashes[TSA_MAX_HASHES]; /* NIDs of accepted imprint hashes (ALG-01) */
    size_t n_hashes;
    /* [tsu NAME] */
    struct tsa_unit_config units[TSA_MAX_UNITS];
    size_t n_units;
    /* [limits] token_rate, token_burst, token_sources: tokens per client address (0: off) */
    struct ratelimit_config
        token_limit; /* [audit] (issue 9 item 3): this node's name in the audit chain; signed
                      * checkpoints every checkpoint_interval seconds (0: none) with a key of their
                      * own, never a TSU's */
    struct tsa_audit_config {
        char node[64];
        double checkpoint_interval;
        char key_label[128];
        char key_file[PATH_MAX];
        char cert[PATH_MAX];
        int scheme, hash;
        int line;
    } audit;
};

/* Parse and validate. ST_OK, or ST_CONFIG with "file:line: message" in err. */
int tsa_config_load(struct tsa_config *cfg, const char *path, char *err, size_t errlen);
/* Same from a string (tests). */
int tsa_config_load_string(struct tsa_config *cfg, const char *text, char *err, size_t errlen);

#endif
