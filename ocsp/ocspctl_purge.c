/*
 * ocspctl_purge: `ocspctl purge ISSUER --answers|--status`, so that the store does not grow
 * for ever (issue 10 §3). --answers drops the pre-signed answers of the issuer's expired
 * certificates (status record not_after known and past; RFC 9919 §2.2.1 pre-signing is a
 * cache: they are signed again on demand when asked for); the status records stay. --status
 * also removes the status records past the issuer's archive cutoff (now - its
 * purge-status-after), only for an issuer that allows it (ocspctl issuer add
 * --purge-status-after, which needs --unissued unknown): never for an issuer marked qualified
 * (eIDAS Art. 24(4), STANDARDS LW-09, EID-06), where the command is refused (exit 3) and the
 * refusal journalled. Each run is journalled with the operator: `started` before anything is
 * removed, then `done` (or `failed`, `refused`) with the counts.
 */
#include "common/log.h"
#include "common/status.h"
#include "ocsp/ocspctl_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char purge_usage[] =
    "usage: ocspctl purge ISSUER (--answers | --status)\n"
    "  --answers  drop the pre-signed answers of the issuer's expired certificates (signed\n"
    "             again on demand when asked for); the status records stay. Any issuer.\n"
    "  --status   also remove the status records of certificates expired for longer than\n"
    "             the issuer's purge-status-after (ocspctl issuer add --purge-status-after);\n"
    "             their serials are then answered unknown. Refused (exit 3) for an issuer\n"
    "             without that setting and always for a qualified issuer (eIDAS Art. 24(4),\n"
    "             LW-09).\n";

void
ocspctl_purge_usage(FILE *f)
{
    fputs(purge_usage, f);
}

static int
purge_journal(struct ctl *c, const char *issuer, const char *what, const char *result,
              size_t answers, size_t status)
{
    struct ctl_json j;

    ocspctl_journal_begin(c, &j, "purge", issuer);
    ocspctl_json_str(&j, "what", what);
    ocspctl_json_str(&j, "result", result);
    ocspctl_json_int(&j, "answers_dropped", (long long)answers);
    ocspctl_json_int(&j, "status_removed", (long long)status);
    return ocspctl_journal_end(c, &j);
}

int
ocspctl_cmd_purge(struct ctl *c, int argc, char **argv)
{
    struct ocsp_issuer_rec rec = {0};
    const char *why = NULL, *what;
    size_t answers = 0, status = 0;
    bool want_status;
    int64_t now = (int64_t)time(NULL);
    int st, rc = ST_ERR;

    if (argc != 3 || (strcmp(argv[2], "--answers") != 0 && strcmp(argv[2], "--status") != 0)) {
        fputs(purge_usage, stderr);
        return ST_INVALID;
    }
    want_status = strcmp(argv[2], "--status") == 0;
    what = want_status ? "status" : "answers";
    if (ocspctl_open(c, true, false) != ST_OK || ocspctl_issuer_find(c, argv[1], &rec) != ST_OK)
        goto out;
    if (want_status) {
        if (rec.purge_status_after == 0 && !rec.qualified)
            why = "the issuer does not allow status purging (ocspctl issuer add "
                  "--purge-status-after)";
        else if (rec.qualified)
            why = "a qualified issuer keeps the status of its expired certificates for ever "
                  "(eIDAS Art. 24(4), LW-09, EID-06)";
        else
            (void)ocsp_issuer_purge_check(&rec, &why);
        if (why != NULL) {
            fprintf(stderr, "ocspctl: purge %s --status refused: %s\n", rec.name, why);
            log_audit("ocsp_purge", "refused issuer=%s what=status by=%s", rec.name, c->who);
            rc = purge_journal(c, rec.name, what, "refused", 0, 0) == ST_OK ? ST_EXISTS : ST_ERR;
            goto out;
        }
    }
    /* journalled before anything is removed: a purge killed half-way (or whose journal cannot
     * be written) never leaves removals that no journal entry mentions */
    if (purge_journal(c, rec.name, what, "started", 0, 0) != ST_OK)
        goto out;
    if (want_status)
        st = ocsp_store_status_purge(c->store, rec.id, now, &status, &answers);
    else
        st = ocsp_store_responses_purge(c->store, rec.id, now, &answers);
    if (want_status && st == ST_INVALID) { /* settings changed meanwhile (ocsp_store.h) */
        fprintf(stderr,
                "ocspctl: purge %s --status stopped: the issuer's settings no longer allow it "
                "(changed while it ran; %zu status record(s) removed before)\n",
                rec.name, status);
        log_audit("ocsp_purge", "refused issuer=%s what=status answers=%zu status=%zu by=%s",
                  rec.name, answers, status, c->who);
        rc = purge_journal(c, rec.name, what, "refused", answers, status) == ST_OK ? ST_EXISTS
                                                                                   : ST_ERR;
        goto out;
    }
    if (st != ST_OK) {
        fprintf(stderr,
                "ocspctl: purge %s --%s: %s (what was purged before the failure stays "
                "purged; run it again)\n",
                rec.name, what, status_str(st));
        (void)purge_journal(c, rec.name, what, "failed", answers, status);
        goto out;
    }
    log_audit("ocsp_purge", "issuer=%s what=%s answers=%zu status=%zu by=%s", rec.name, what,
              answers, status, c->who);
    if (purge_journal(c, rec.name, what, "done", answers, status) != ST_OK)
        goto out;
    if (want_status)
        printf("purge %s: %zu status record(s) removed, %zu answer(s) dropped\n", rec.name, status,
               answers);
    else
        printf("purge %s: %zu answer(s) dropped\n", rec.name, answers);
    rc = ST_OK;
out:
    ocsp_issuer_rec_clear(&rec);
    return rc;
}
