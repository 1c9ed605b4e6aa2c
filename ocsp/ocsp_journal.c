/*
 * ocsp_journal: journal line builders (see ocsp_journal.h). STANDARDS EID-07/08, RO-08.
 */
#include "ocsp/ocsp_journal.h"
#include "common/json.h"

static void
json_status(struct jw *o, const char *key, const struct ocsp_status *st)
{
    jw_key(o, key);
    if (st == NULL) {
        jw_null(o);
        return;
    }
    jw_begin(o);
    jw_kstr(o, "state", ocsp_state_name(st->state));
    jw_key(o, "reason");
    jw_i64(o, st->reason == OCSP_REASON_NONE ? -1 : st->reason);
    jw_key(o, "revocation_time");
    jw_i64(o, st->revocation_time);
    jw_key(o, "not_after");
    jw_i64(o, st->not_after);
    jw_close(o);
}

void
ocsp_journal_status_line(char *line, size_t cap, const struct ocsp_journal_status *e)
{
    char idhex[2 * OCSP_ISSUER_ID_LEN + 1], serhex[2 * OCSP_SERIAL_MAX + 1];
    struct jw o;

    hex_encode(idhex, e->issuer_id, OCSP_ISSUER_ID_LEN, true);
    hex_encode(serhex, e->serial, e->serial_len, true);
    jw_init(&o, line, cap);
    jw_begin(&o);
    jw_key(&o, "time");
    jw_i64(&o, e->time);
    jw_kstr(&o, "who", e->who != NULL ? e->who : "");
    jw_kstr(&o, "op", "status");
    jw_kstr(&o, "issuer", e->issuer_name != NULL ? e->issuer_name : "");
    jw_kstr(&o, "issuer_id", idhex);
    jw_kstr(&o, "serial", serhex);
    jw_kstr(&o, "result", e->refused ? "refused" : "ok");
    json_status(&o, "before", e->before);
    json_status(&o, "after", e->after);
    jw_close(&o);
}

void
ocsp_journal_upgrade_line(char *line, size_t cap, const struct ocsp_journal_upgrade *e)
{
    struct jw o;

    jw_init(&o, line, cap);
    jw_begin(&o);
    jw_key(&o, "time");
    jw_i64(&o, e->time);
    jw_kstr(&o, "who", e->who != NULL ? e->who : "");
    jw_kstr(&o, "op", "schema_upgrade");
    jw_key(&o, "from");
    jw_i64(&o, (int64_t)e->from);
    jw_key(&o, "to");
    jw_i64(&o, (int64_t)e->to);
    jw_key(&o, "responses_dropped");
    jw_i64(&o, (int64_t)e->dropped);
    jw_key(&o, "responses_rekeyed");
    jw_i64(&o, (int64_t)e->rekeyed);
    jw_key(&o, "responses_rekeyed_before");
    jw_i64(&o, (int64_t)e->rekeyed_before);
    jw_close(&o);
}

bool
ocsp_journal_import_line(char *line, size_t cap, const struct ocsp_journal_import *e)
{
    char hex[2 * 32 + 1];
    struct jw o;
    const struct {
        const char *key;
        size_t v;
    } counts[] = {{"lines", e->lines},         {"new", e->added},
                  {"unchanged", e->unchanged}, {"updated", e->updated},
                  {"revoked", e->revoked},     {"held", e->held},
                  {"released", e->released},   {"refused", e->refused},
                  {"failed", e->failed},       {"not_imported_full", e->not_imported}};

    jw_init(&o, line, cap);
    jw_begin(&o);
    jw_key(&o, "time");
    jw_i64(&o, e->time);
    jw_kstr(&o, "who", e->who != NULL ? e->who : "");
    jw_kstr(&o, "op", e->op);
    jw_kstr(&o, "issuer", e->issuer_name != NULL ? e->issuer_name : "");
    jw_kstr(&o, "file", e->file);
    jw_key(&o, "sha256");
    if (e->sha256 != NULL) {
        hex_encode(hex, e->sha256, 32, false);
        jw_str(&o, hex);
    } else
        jw_null(&o);
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        jw_key(&o, counts[i].key);
        jw_i64(&o, (int64_t)counts[i].v);
    }
    jw_key(&o, "committed");
    jw_bool(&o, e->committed);
    jw_key(&o, "committed_lines");
    jw_i64(&o, (int64_t)e->committed_lines);
    jw_close(&o);
    return jw_end(&o) > 0;
}
