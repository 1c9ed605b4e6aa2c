/*
 * ocspctl export --journal: the status journal as a hash chain, for auditors (issue 9 item 3;
 * STANDARDS EID-12, EID-15, EID-18). Each journal entry is sealed into the journal's chain
 * when ocspd or ocspctl writes it (ocsp_store.c, common/chain.h); this writes a time range of
 * the entries exactly as stored, one per line, for `tsactl verify`. Without --journal, --from
 * or --to, `ocspctl export [ISSUER]` is the snapshot of issuers, statuses and journal
 * (ocspctl_status.c).
 */
#include "common/chain.h"
#include "common/status.h"
#include "common/store.h"
#include "ocsp/ocspctl_int.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char export_usage[] =
    "usage: ocspctl export [ISSUER]\n"
    "         issuers, status records and journal entries as JSON lines (a snapshot)\n"
    "       ocspctl export --journal [--from TIME] [--to TIME]\n"
    "         the journal entries of [from, to) exactly as stored, one per line: each carries\n"
    "         the SHA-256 of the entry before it (check them with `tsactl verify FILE...`)\n"
    "TIME: 2026-01-02T03:04:05Z (fraction and +hh:mm allowed) or 2026-01-02 (00:00 UTC)\n";

void
ocspctl_export_usage(FILE *f)
{
    fputs(export_usage, f);
}

int
ocspctl_cmd_export_any(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"journal", no_argument, NULL, 'j'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    int64_t from = INT64_MIN, to = INT64_MAX;
    bool journal = false;
    struct store *raw;
    int opt, st;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--journal") == 0 || strncmp(argv[i], "--from", 6) == 0 ||
            strncmp(argv[i], "--to", 4) == 0)
            journal = true;
    if (!journal)
        return ocspctl_cmd_export(c, argc, argv);
    optind = 1;
    opterr = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'j')
            continue;
        if ((opt == 'f' && chain_time_parse(optarg, &from)) ||
            (opt == 't' && chain_time_parse(optarg, &to)))
            continue;
        if (opt == 'f' || opt == 't')
            fprintf(stderr, "ocspctl: export: '%s' is not a time (2026-01-02T03:04:05Z)\n", optarg);
        fputs(export_usage, stderr);
        return ST_INVALID;
    }
    if (optind != argc) {
        fputs(export_usage, stderr);
        return ST_INVALID;
    }
    if (ocspctl_open(c, false, false) != ST_OK)
        return ST_ERR;
    raw = ocsp_store_raw(c->store);
    st = chain_export(raw, store_db(raw, "journal"), NULL, from, to, stdout);
    if (st != ST_OK) {
        fprintf(stderr, "ocspctl: export --journal: %s\n", status_str(st));
        return ST_ERR;
    }
    return ST_OK;
}
