/*
 * tsactl_int: what the parts of the `tsactl` tool share (tsactl.c: main and dispatch;
 * tsactl_export.c: export; tsactl_verify.c: verify). Issue 9 item 3.
 */
#ifndef TSA_TSACTL_INT_H
#define TSA_TSACTL_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

enum tsactl_exit { TSACTL_OK = 0, TSACTL_BROKEN = 1, TSACTL_USAGE = 2, TSACTL_ERR = 3 };

/* Write the records of the chain in store `dir` (db `db_name`; the journal in `journal_dir`
 * too, when not NULL, for records not yet copied into the store) with a time in
 * [from, to) to f, one per line, exactly as stored: the records from the first one at or
 * after `from` to the last one before `to`, every record between them included so that the
 * export is one piece of the chain. */
int tsactl_export_store(const char *dir, size_t map_size, const char *db_name,
                        const char *journal_dir, int64_t from, int64_t to, FILE *f);

/* Verify exports (see tsa_audit.h, "Verifying"): exit code TSACTL_OK when every chain is
 * intact and every checkpoint checked, TSACTL_BROKEN naming the first broken record. */
int tsactl_verify(char **files, int nfiles, char **certs, int ncerts, bool quiet, FILE *out);

#endif
