/*
 * tsactl: evidence for auditors (issue 9 item 3; STANDARDS EID-11, EID-12, EID-18).
 *   tsactl [-c CONF] export [--from TIME] [--to TIME]
 *   tsactl verify [--cert PEM]... [-q] FILE...
 * The record and checkpoint formats are described in tsa/tsa_audit.h and the README
 * ("Evidence for auditors").
 */
#include "common/chain.h"
#include "common/log.h"
#include "common/status.h"
#include "tsa/tsa_audit.h"
#include "tsa/tsa_config.h"
#include "tsa/tsactl_int.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TSACTL_DEFAULT_CONF "/etc/tsad/tsad.conf"
#define TSACTL_MAX_FILES 256

static const char usage[] =
    "usage: tsactl [-c CONF] COMMAND [ARGS]\n"
    "  -c CONF   tsad.conf (default " TSACTL_DEFAULT_CONF "): [store] path and [audit] node\n"
    "commands:\n"
    "  export [--from TIME] [--to TIME]\n"
    "        the audit records (tokens and checkpoints) of [from, to) as JSON lines on\n"
    "        standard output, exactly as stored (each carries the SHA-256 of the one before)\n"
    "  verify [--cert AUDIT_CERT.pem]... [-q] FILE...\n"
    "        check exports of tsactl or ocspctl (one or several nodes, in any files): every\n"
    "        link of every node's chain and, with --cert, every checkpoint signature\n"
    "TIME: 2026-01-02T03:04:05Z (fraction and +hh:mm allowed) or 2026-01-02 (00:00 UTC)\n"
    "exit codes: 0 intact, 1 broken (the first broken record is named), 2 usage, 3 error\n";

static int
cmd_export(const char *conf, int argc, char **argv)
{
    static const struct option opts[] = {{"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct tsa_config *cfg = calloc(1, sizeof(*cfg));
    int64_t from = INT64_MIN, to = INT64_MAX;
    char err[1024], jdir[PATH_MAX + 16];
    int opt, rc;

    if (cfg == NULL)
        return TSACTL_ERR;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'f' && chain_time_parse(optarg, &from))
            continue;
        if (opt == 't' && chain_time_parse(optarg, &to))
            continue;
        if (opt == 'f' || opt == 't')
            fprintf(stderr, "tsactl: export: '%s' is not a time (2026-01-02T03:04:05Z)\n", optarg);
        fputs(usage, stderr);
        free(cfg);
        return TSACTL_USAGE;
    }
    if (optind != argc) {
        fputs(usage, stderr);
        free(cfg);
        return TSACTL_USAGE;
    }
    if (tsa_config_load(cfg, conf, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "tsactl: %s\n", err);
        free(cfg);
        return TSACTL_ERR;
    }
    snprintf(jdir, sizeof(jdir), "%s/journal", cfg->store.path);
    rc = tsactl_export_store(cfg->store.path, cfg->store.map_size, TSA_AUDIT_DB, jdir, from, to,
                             stdout);
    free(cfg);
    return rc;
}

static int
cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {{"cert", required_argument, NULL, 'C'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    char *certs[TSACTL_MAX_FILES];
    int ncerts = 0, opt;
    bool quiet = false;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        if (opt == 'C' && ncerts < TSACTL_MAX_FILES) {
            certs[ncerts++] = optarg;
            continue;
        }
        if (opt == 'q') {
            quiet = true;
            continue;
        }
        fputs(usage, stderr);
        return TSACTL_USAGE;
    }
    if (optind >= argc) {
        fputs(usage, stderr);
        return TSACTL_USAGE;
    }
    return tsactl_verify(argv + optind, argc - optind, certs, ncerts, quiet, stdout);
}

int
main(int argc, char **argv)
{
    const char *conf = TSACTL_DEFAULT_CONF;
    int opt;

    log_init("tsactl", LOG_LVL_WARN);
    while ((opt = getopt(argc, argv, "+c:h")) != -1) {
        if (opt == 'c') {
            conf = optarg;
            continue;
        }
        fputs(usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? TSACTL_OK : TSACTL_USAGE;
    }
    if (optind >= argc) {
        fputs(usage, stderr);
        return TSACTL_USAGE;
    }
    argc -= optind;
    argv += optind;
    if (strcmp(argv[0], "export") == 0)
        return cmd_export(conf, argc, argv);
    if (strcmp(argv[0], "verify") == 0)
        return cmd_verify(argc, argv);
    fprintf(stderr, "tsactl: unknown command '%s'\n%s", argv[0], usage);
    return TSACTL_USAGE;
}
