/*
 * tsactl export: a time range of tsad's audit chain as JSON lines, exactly as stored (issue 9
 * item 3); the walk is common/chain_export.c, shared with `ocspctl export --journal`.
 */
#include "common/chain.h"
#include "common/status.h"
#include "common/store.h"
#include "tsa/tsactl_int.h"

#include <stdio.h>

int
tsactl_export_store(const char *dir, size_t map_size, const char *db_name, const char *journal_dir,
                    int64_t from, int64_t to, FILE *f)
{
    const char *dbs[] = {db_name};
    struct store *s;
    int st;

    if (!store_exists(dir)) {
        fprintf(stderr, "tsactl: no store in %s\n", dir);
        return TSACTL_ERR;
    }
    if ((s = store_open(dir, map_size, dbs, 1, true)) == NULL) {
        fprintf(stderr, "tsactl: cannot open the store in %s\n", dir);
        return TSACTL_ERR;
    }
    st = chain_export(s, store_db(s, db_name), journal_dir, from, to, f);
    store_close(s);
    if (st != ST_OK) {
        fprintf(stderr, "tsactl: export of %s: %s\n", dir, status_str(st));
        return TSACTL_ERR;
    }
    return TSACTL_OK;
}
