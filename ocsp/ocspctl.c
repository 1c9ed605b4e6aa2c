/*
 * ocspctl: the operator tool of the OCSP responder (DESIGN D4, D6, D8). It writes the LMDB
 * status store that ocspd reads (ocspd sees each committed change at once): issuers and their
 * signing setup, issued serials, revocations and holds (EID-05/07/08, OCSP-16), CRL and
 * OpenSSL `ca` database imports, pre-signing (RFC 9919 §2.2.1), and an export of everything
 * with the journal (EID-12, EID-15). Every change is journalled with the operator's name.
 *
 * Exit codes: 0 ok, 1 error, 2 usage error, 3 refused by a rule (EID-07).
 * This file holds main, the global options and the dispatch; the subcommands live in
 * ocspctl_issuer.c, ocspctl_status.c and ocspctl_import.c.
 */
#include "common/log.h"
#include "common/status.h"
#include "ocsp/ocsp_presign.h"
#include "ocsp/ocspctl_int.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OCSPCTL_DEFAULT_CONF "/etc/ocspd/ocspd.conf"

static const char ctl_usage[] =
    "usage: ocspctl [-c CONF] [-d STORE_DIR] [-u OPERATOR] COMMAND [ARGS]\n"
    "  -c CONF      ocspd.conf (default " OCSPCTL_DEFAULT_CONF "); [store] and [signer] used\n"
    "  -d DIR       store directory (overrides [store] path; with -d and no -c no config\n"
    "               file is read, except for presign)\n"
    "  -u OPERATOR  name recorded in the journal (default $SUDO_USER, $USER or \"operator\")\n"
    "commands:\n"
    "  init                          create the store (idempotent)\n"
    "  issuer add NAME ... | issuer list\n"
    "  import-crl ISSUER FILE        full or delta CRL, DER or PEM\n"
    "  import-index ISSUER INDEX_TXT OpenSSL `ca` database\n"
    "  add ISSUER (SERIAL_HEX | CERT.pem)... [--not-after YYYYMMDDHHMMSSZ]\n"
    "  revoke ISSUER SERIAL_HEX [--reason REASON] [--time YYYYMMDDHHMMSSZ]\n"
    "  hold ISSUER SERIAL_HEX [--time YYYYMMDDHHMMSSZ]\n"
    "  release ISSUER SERIAL_HEX\n"
    "  status ISSUER SERIAL_HEX\n"
    "  list ISSUER [--revoked]\n"
    "  presign [ISSUER]              sign and store the responses of every known serial\n"
    "  export [ISSUER]               JSON lines: issuers, status records, journal\n"
    "  purge ISSUER --answers|--status  drop expired certificates' answers / status records\n"
    "  export --journal [--from TIME] [--to TIME]\n"
    "                                the journal's hash chain, for tsactl verify\n"
    "`ocspctl COMMAND --help` describes a command.\n"
    "exit codes: 0 ok, 1 error, 2 usage error, 3 refused by a rule (EID-07)\n";

static const char presign_usage[] = "usage: ocspctl presign [ISSUER]\n"
                                    "Needs the [signer] settings of the config file (-c).\n";

struct ctl_opts {
    const char *conf;
    const char *dir;
    const char *who;
};

static int
ctl_cmd_init(struct ctl *c, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fputs(ctl_usage, stderr);
        return ST_INVALID;
    }
    if (ocspctl_open(c, true, true) != ST_OK)
        return ST_ERR;
    printf("store ready in %s (schema %d)\n", c->cfg.store.path, OCSP_STORE_SCHEMA);
    return ST_OK;
}

static int
ctl_cmd_presign(struct ctl *c, int argc, char **argv)
{
    size_t count = 0, expired = 0;
    int st;

    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fputs(presign_usage, stderr);
        return ST_INVALID;
    }
    if (ocspctl_open(c, true, false) != ST_OK)
        return ST_ERR;
    st = ocsp_presign_run(&c->cfg, c->store, argc == 2 ? argv[1] : NULL, &count, &expired);
    if (expired > 0)
        fprintf(stderr,
                "ocspctl: presign: %zu expired certificate(s) skipped: answered on demand "
                "(`ocspctl purge ISSUER --answers` drops what was stored for them)\n",
                expired);
    if (st == ST_FULL) {
        fprintf(stderr,
                "ocspctl: presign stopped after %zu response(s): the store in %s is above "
                "fill_limit (%.0f%%); the space left is kept for revocations and holds. Grow "
                "[store] map_size in %s; answers are signed on demand meanwhile\n",
                count, c->cfg.store.path, c->cfg.store.fill_limit * 100,
                c->cfg.file[0] != '\0' ? c->cfg.file : "ocspd.conf");
        printf("%zu\n", count);
        return ST_ERR;
    }
    if (st != ST_OK) {
        fprintf(stderr, "ocspctl: presign failed: %s (see the log above)\n", status_str(st));
        return ST_ERR;
    }
    printf("%zu\n", count);
    return ST_OK;
}

struct ctl_command {
    const char *name;
    int (*fn)(struct ctl *c, int argc, char **argv);
    bool needs_config; /* reads [signer] even with -d */
    void (*usage)(FILE *f);
};

static void
usage_main(FILE *f)
{
    fputs(ctl_usage, f);
}

static void
usage_presign(FILE *f)
{
    fputs(presign_usage, f);
}

static const struct ctl_command ctl_commands[] = {
    {"init", ctl_cmd_init, false, usage_main},
    {"issuer", ocspctl_cmd_issuer, false, NULL},
    {"import-crl", ocspctl_cmd_import_crl, false, ocspctl_import_usage},
    {"import-index", ocspctl_cmd_import_index, false, ocspctl_import_usage},
    {"add", ocspctl_cmd_add, false, ocspctl_status_usage},
    {"revoke", ocspctl_cmd_revoke, false, ocspctl_status_usage},
    {"hold", ocspctl_cmd_hold, false, ocspctl_status_usage},
    {"release", ocspctl_cmd_release, false, ocspctl_status_usage},
    {"status", ocspctl_cmd_status, false, ocspctl_status_usage},
    {"list", ocspctl_cmd_list, false, ocspctl_status_usage},
    {"presign", ctl_cmd_presign, true, usage_presign},
    {"export", ocspctl_cmd_export_any, false, ocspctl_export_usage},
    {"purge", ocspctl_cmd_purge, false, ocspctl_purge_usage},
};

/* Global options, stopping at the command. Returns the command's index in argv or -1. */
static int
ctl_parse_global(int argc, char **argv, struct ctl_opts *o)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt;

    opterr = 1;
    while ((opt = getopt_long(argc, argv, "+c:d:u:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            o->conf = optarg;
            break;
        case 'd':
            o->dir = optarg;
            break;
        case 'u':
            o->who = optarg;
            break;
        case 'h':
            usage_main(stdout);
            exit(EXIT_SUCCESS);
        default:
            return -1;
        }
    }
    return optind < argc ? optind : -1;
}

/* Config: the file named with -c, the default one without -d, or built-in defaults. */
static int
ctl_load_config(struct ctl *c, const struct ctl_opts *o, bool needs_config)
{
    const char *path = o->conf;
    char err[512];
    int st;

    if (path == NULL && (o->dir == NULL || needs_config))
        path = OCSPCTL_DEFAULT_CONF;
    st = path != NULL ? ocsp_config_load(&c->cfg, path, err, sizeof(err))
                      : ocsp_config_load_string(&c->cfg, "", err, sizeof(err));
    if (st != ST_OK) {
        fprintf(stderr, "ocspctl: %s\n", err);
        return ST_ERR;
    }
    if (o->dir != NULL) {
        if (strlen(o->dir) >= sizeof(c->cfg.store.path)) {
            fprintf(stderr, "ocspctl: -d: path too long\n");
            return ST_ERR;
        }
        snprintf(c->cfg.store.path, sizeof(c->cfg.store.path), "%s", o->dir);
    }
    return ST_OK;
}

static const char *
ctl_operator(const char *given)
{
    const char *v = given;

    if (v == NULL || v[0] == '\0')
        v = getenv("SUDO_USER");
    if (v == NULL || v[0] == '\0')
        v = getenv("USER");
    return v != NULL && v[0] != '\0' ? v : "operator";
}

static const struct ctl_command *
ctl_find(const char *name)
{
    for (size_t i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
        if (strcmp(ctl_commands[i].name, name) == 0)
            return &ctl_commands[i];
    return NULL;
}

/* The edge: a status becomes ocspctl's exit code (ocspctl(8) EXIT STATUS). */
enum ctl_exit { CTL_EXIT_OK = 0, CTL_EXIT_ERR = 1, CTL_EXIT_USAGE = 2, CTL_EXIT_REFUSED = 3 };

static int
ctl_exit_code(int st)
{
    switch (st) {
    case ST_OK:
        return CTL_EXIT_OK;
    case ST_INVALID:
        return CTL_EXIT_USAGE;
    case ST_EXISTS:
        return CTL_EXIT_REFUSED;
    default:
        return CTL_EXIT_ERR;
    }
}

static int
ctl_run(int argc, char **argv)
{
    struct ctl_opts o = {NULL, NULL, NULL};
    static struct ctl c;
    const struct ctl_command *cmd;
    int first, rc;

    log_init("ocspctl", LOG_LVL_WARN);
    if ((first = ctl_parse_global(argc, argv, &o)) < 0) {
        usage_main(stderr);
        return ST_INVALID;
    }
    if ((cmd = ctl_find(argv[first])) == NULL) {
        fprintf(stderr, "ocspctl: unknown command '%s'\n", argv[first]);
        usage_main(stderr);
        return ST_INVALID;
    }
    if (ocspctl_wants_help(argc - first, argv + first)) {
        if (cmd->usage == NULL) /* the command prints its own help without the store */
            return cmd->fn(&c, argc - first, argv + first);
        cmd->usage(stdout);
        return ST_OK;
    }
    c.who = ctl_operator(o.who);
    if (strlen(c.who) > 128 || strpbrk(c.who, "\n\r\t") != NULL) {
        fprintf(stderr, "ocspctl: operator name: at most 128 characters on one line\n");
        return ST_INVALID;
    }
    if (ctl_load_config(&c, &o, cmd->needs_config) != ST_OK)
        return ST_ERR;
    rc = cmd->fn(&c, argc - first, argv + first);
    ocsp_store_close(c.store);
    return rc;
}

int
main(int argc, char **argv)
{
    return ctl_exit_code(ctl_run(argc, argv));
}
