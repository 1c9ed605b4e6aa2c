/*
 * ocsp_store: the OCSP status store on LMDB (DESIGN D4, D6); the schema is documented in
 * ocsp_store.h. This file encodes the records, keeps the certids index of each issuer
 * (RFC 6960 §4.1.1 CertID hashes, OCSP-11), enforces the status life cycle of EID-07/08 and
 * OCSP-16 (a definitive revocation is final; a hold can be released) in the same write
 * transaction as its journal entry (EID-12 evidence) and its `changes` entry (D6: a status
 * change re-signs the response at once, EID-05).
 *
 * Sequences (journal, changes) are kept in `meta` as 8-byte little-endian counters so that a
 * write transaction can append and consume without a cursor: "journal_next", "changes_next"
 * (next sequence to write) and "changes_head" (oldest sequence not yet taken).
 */
#include "ocsp/ocsp_store.h"
#include "common/chain.h"
#include "common/json.h"
#include "common/log.h"
#include "common/status.h"
#include "ocsp/ocsp_certid.h"
#include "ocsp/ocsp_journal.h"
#include "ocsp/ocsp_rules.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DB_META = 0, DB_ISSUERS, DB_CERTIDS, DB_STATUS, DB_RESPONSES, DB_CHANGES, DB_JOURNAL };

static const char *const ocsp_db_names[] = {"meta",      "issuers", "certids", "status",
                                            "responses", "changes", "journal"};
#define OCSP_N_DBS (sizeof(ocsp_db_names) / sizeof(ocsp_db_names[0]))

#define STATUS_REC_LEN 40
#define ISSUER_REC_VERSION 1
#define JOURNAL_LINE_MAX OCSP_JOURNAL_LINE_MAX
/* The value header of schema 3 (ocsp_store.h), then the DER, then the padding. */
#define RESP_VERSION 3
#define RESP_HDR_LEN (4 + 4 + 8 * 4 + 2 * OCSP_FP_LEN)
#define RESP_FLAG_CERTS 0x01
/* schema 2's header (read only by the upgrade): fixed part, issuer id, serial */
#define RESP2_VERSION 2
#define RESP2_HDR_MIN (RESP_HDR_LEN + OCSP_ISSUER_ID_LEN)

struct ocsp_store {
    struct store *st;
    int db[OCSP_N_DBS];
    struct store_txn *batch; /* open batch write transaction (ocsp_store_batch_begin) */
    bool batch_failed;
    size_t batch_marked; /* answers marked or removed in the batch's transaction so far */
    /* inside a batch: the issuer name of the last journalled status change (an import
     * journals many changes of one issuer; its record is decoded once) */
    bool name_cached;
    uint8_t name_id[OCSP_ISSUER_ID_LEN];
    char name[64];
    bool readonly;
    bool check; /* ocsp_store_open_check: an older schema taken as it is */
};

/* A write transaction: the open batch, or a new one (see ocsp_store_batch_begin). */
static int
wtxn_begin(struct ocsp_store *s, struct store_txn **t)
{
    if (s->batch != NULL) {
        *t = s->batch;
        return ST_OK;
    }
    return store_txn_begin(s->st, true, t);
}

static int
wtxn_commit(struct ocsp_store *s, struct store_txn *t)
{
    return t == s->batch ? ST_OK : store_txn_commit(t);
}

/* End a write transaction that was not committed: abort it, or, inside a batch, remember a
 * failure so that the whole batch is aborted (an import is all or nothing). */
static void
wtxn_release(struct ocsp_store *s, struct store_txn *t, int st)
{
    if (t == NULL)
        return;
    if (t != s->batch)
        store_txn_abort(t);
    else if (st != ST_OK && st != ST_EXISTS && st != ST_NOTFOUND)
        s->batch_failed = true;
}

int
ocsp_store_batch_begin(struct ocsp_store *s)
{
    if (s->batch != NULL)
        return ST_INVALID;
    s->batch_failed = false;
    s->batch_marked = 0;
    s->name_cached = false;
    return store_txn_begin(s->st, true, &s->batch);
}

int
ocsp_store_batch_checkpoint(struct ocsp_store *s)
{
    int st;

    if (s->batch == NULL)
        return ST_INVALID;
    if ((st = ocsp_store_batch_commit(s)) != ST_OK)
        return st;
    return store_txn_begin(s->st, true, &s->batch);
}

int
ocsp_store_batch_commit(struct ocsp_store *s)
{
    struct store_txn *t = s->batch;

    if (t == NULL)
        return ST_INVALID;
    s->batch = NULL;
    s->batch_marked = 0;
    s->name_cached = false;
    if (s->batch_failed) {
        store_txn_abort(t);
        return ST_STORE;
    }
    return store_txn_commit(t);
}

void
ocsp_store_batch_abort(struct ocsp_store *s)
{
    if (s->batch != NULL)
        store_txn_abort(s->batch);
    s->batch = NULL;
    s->batch_marked = 0;
    s->name_cached = false;
}

size_t
ocsp_store_batch_marked(const struct ocsp_store *s)
{
    return s->batch != NULL ? s->batch_marked : 0;
}

/* ---- little helpers: LE/BE integers, hex ---- */

static void
put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
get_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void
put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[7 - i] = (uint8_t)(v >> (8 * i));
}

static bool
serial_ok(const uint8_t *serial, size_t len)
{
    return serial != NULL && len >= 1 && len <= OCSP_SERIAL_MAX;
}

/* ---- open / close / schema ---- */

static int
ocsp_meta_u64(struct store_txn *t, int db, const char *key, uint64_t *v)
{
    const void *p = NULL;
    size_t n = 0;
    int st = store_txn_get(t, db, key, strlen(key), &p, &n);

    *v = 0;
    if (st == ST_NOTFOUND)
        return ST_OK;
    if (st != ST_OK)
        return st;
    if (n != 8)
        return ST_STORE;
    *v = get_le64(p);
    return ST_OK;
}

static int
ocsp_meta_put_u64(struct store_txn *t, int db, const char *key, uint64_t v)
{
    uint8_t b[8];

    put_le64(b, v);
    return store_txn_put(t, db, key, strlen(key), b, sizeof(b), false);
}

static int ocsp_journal_txn(struct ocsp_store *s, struct store_txn *t, const char *line);
static int ocsp_upgrade_unbacked(struct ocsp_store *s, size_t *dropped);
static uint8_t *ocsp_response_value(const struct ocsp_response_put *r, const uint8_t *body,
                                    size_t body_len, size_t *len);

/* Keys of `responses`, a chunk at a time, for the upgrade. */
#define UPGRADE_CHUNK 4096
/* A walk done in chunks restarts at the last key of the chunk before: true for that key (once),
 * which the chunk before has handled. */
static bool
walk_resumed_at(bool *skip_first, const void *key, size_t klen, const uint8_t *last,
                size_t last_len)
{
    if (!*skip_first)
        return false;
    *skip_first = false;
    return klen == last_len && memcmp(key, last, klen) == 0;
}

struct key_list {
    uint8_t (*keys)[OCSP_CERTID_MAX];
    size_t len[UPGRADE_CHUNK];
    size_t n;
};

static bool
ocsp_upgrade_collect(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct key_list *kl = ctx;

    (void)val;
    (void)vlen;
    if (klen > OCSP_CERTID_MAX)
        klen = OCSP_CERTID_MAX; /* not ours to keep: cut, deleted below as not found */
    memcpy(kl->keys[kl->n], key, klen);
    kl->len[kl->n++] = klen;
    return kl->n < UPGRADE_CHUNK;
}

/* The journal entry and schema version that end an upgrade, in one write transaction. */
static int
ocsp_schema_upgrade_end(struct ocsp_store *s, unsigned from, size_t dropped, size_t rekeyed,
                        size_t before)
{
    struct store_txn *t = NULL;
    char line[256], want[16];
    int st;

    snprintf(want, sizeof(want), "%d", OCSP_STORE_SCHEMA);
    ocsp_journal_upgrade_line(line, sizeof(line),
                              &(struct ocsp_journal_upgrade){.time = (int64_t)time(NULL),
                                                             .who = "ocsp_store",
                                                             .from = from,
                                                             .to = OCSP_STORE_SCHEMA,
                                                             .dropped = dropped,
                                                             .rekeyed = rekeyed,
                                                             .rekeyed_before = before});
    if ((st = store_txn_begin(s->st, true, &t)) != ST_OK ||
        (st = store_txn_put(t, s->db[DB_META], "schema_version", 14, want, strlen(want), false)) !=
            ST_OK ||
        (st = ocsp_journal_txn(s, t, line)) != ST_OK) {
        store_txn_abort(t);
        return st;
    }
    return store_txn_commit(t);
}

/* Schema 1 -> 4: the response values changed layout; they are only a cache of signatures
 * (signed again on demand and by the refresher), so they are dropped, a chunk per write
 * transaction (an interrupted upgrade resumes), then the schema is written with one journal
 * entry saying so. */
static int
ocsp_schema_upgrade1(struct ocsp_store *s, const char *dir)
{
    struct key_list kl = {.n = 0};
    size_t dropped = 0;
    struct store_txn *t = NULL;
    int st = ST_OK;

    if ((kl.keys = malloc(UPGRADE_CHUNK * sizeof(*kl.keys))) == NULL)
        return ST_NOMEM;
    for (;;) {
        kl.n = 0;
        if ((st = store_walk(s->st, s->db[DB_RESPONSES], NULL, 0, ocsp_upgrade_collect, &kl)) !=
                ST_OK ||
            kl.n == 0)
            break;
        if ((st = store_txn_begin(s->st, true, &t)) != ST_OK)
            break;
        for (size_t i = 0; i < kl.n && st == ST_OK; i++) {
            st = store_txn_del(t, s->db[DB_RESPONSES], kl.keys[i], kl.len[i]);
            if (st == ST_NOTFOUND)
                st = ST_OK;
        }
        if (st != ST_OK)
            break;
        st = store_txn_commit(t);
        t = NULL;
        if (st != ST_OK)
            break;
        dropped += kl.n;
    }
    free(kl.keys);
    store_txn_abort(t);
    if (st == ST_OK)
        st = ocsp_schema_upgrade_end(s, 1, dropped, 0, 0);
    if (st == ST_OK)
        log_notice("ocsp_store: %s: upgraded from schema 1 to %d: %zu stored response(s) "
                   "dropped, signed again on demand",
                   dir, OCSP_STORE_SCHEMA, dropped);
    else
        log_err("ocsp_store: %s: upgrade from schema 1 failed: %s", dir, status_str(st));
    return st;
}

/* Schema 2 -> 4, a chunk of schema-2 answers at a time: each is written under its new key
 * (issuer id prefix + serial + form, from its value header and its CertID key) with the
 * schema-3 header and the same DER, and its old entry deleted, in one write transaction per
 * chunk. Both layouts share the database meanwhile; the value's version byte tells them
 * apart, so an interrupted upgrade resumes at the next writable open. An entry that cannot be
 * read as schema 2 is dropped (signed again on demand). Then the answers no longer backed are
 * dropped as from schema 3 (ocsp_upgrade_unbacked). */
struct rekey_chunk {
    uint8_t old[UPGRADE_CHUNK][OCSP_CERTID_MAX];
    size_t old_len[UPGRADE_CHUNK];
    uint8_t key[UPGRADE_CHUNK][OCSP_RESP_KEY_MAX];
    size_t key_len[UPGRADE_CHUNK]; /* 0: dropped, not re-keyed */
    uint8_t *val[UPGRADE_CHUNK];
    size_t val_len[UPGRADE_CHUNK];
    size_t n;
    uint8_t last[OCSP_CERTID_MAX];
    size_t last_len;
    bool skip_first, failed;
};

/* A schema-2 value (old key: the CertID DER) as a schema-3 key and value into c's slot i. */
static void
ocsp_rekey_one(struct rekey_chunk *c, size_t i, const uint8_t *key, size_t klen, const uint8_t *b,
               size_t n)
{
    struct ocsp_response_put p = {0};
    size_t hdr, slen;
    uint8_t form;

    c->key_len[i] = 0;
    c->val[i] = NULL;
    if (n < RESP2_HDR_MIN + 1 || b[0] != RESP2_VERSION || (slen = b[2]) == 0 ||
        slen > OCSP_SERIAL_MAX || (hdr = RESP2_HDR_MIN + slen) >= n ||
        (form = ocsp_certid_form_der(key, klen, (enum ocsp_hash)b[1])) == 0)
        return; /* not readable: dropped */
    p.form = form;
    p.issuer_id = b + RESP_HDR_LEN;
    p.serial = b + RESP2_HDR_MIN;
    p.serial_len = slen;
    p.certs_len = (b[3] & RESP_FLAG_CERTS) ? get_le32(b + 4) : 0;
    p.stamp = get_le64(b + 8);
    p.this_update = (int64_t)get_le64(b + 16);
    p.next_update = (int64_t)get_le64(b + 24);
    p.produced_at = (int64_t)get_le64(b + 32);
    memcpy(p.signer_fp, b + 40, OCSP_FP_LEN);
    memcpy(p.etag, b + 40 + OCSP_FP_LEN, OCSP_FP_LEN);
    if (p.certs_len > UINT32_MAX)
        return;
    c->key_len[i] = ocsp_response_key(p.issuer_id, p.serial, p.serial_len, form, c->key[i]);
    if (c->key_len[i] == 0)
        return;
    if ((c->val[i] = ocsp_response_value(&p, b + hdr, n - hdr, &c->val_len[i])) == NULL)
        c->failed = true;
}

static bool
ocsp_rekey_collect(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct rekey_chunk *c = ctx;
    const uint8_t *b = val;

    if (walk_resumed_at(&c->skip_first, key, klen, c->last, c->last_len))
        return true;
    if (klen <= OCSP_CERTID_MAX) {
        memcpy(c->last, key, klen);
        c->last_len = klen;
    }
    if (vlen > 0 && b[0] == RESP_VERSION)
        return true; /* already schema 3 */
    if (klen > OCSP_CERTID_MAX)
        return true; /* no schema-2 key is this long (ocsp_certid.h): left alone */
    memcpy(c->old[c->n], key, klen);
    c->old_len[c->n] = klen;
    ocsp_rekey_one(c, c->n, key, klen, b, vlen);
    c->n++;
    return !c->failed && c->n < UPGRADE_CHUNK;
}

/* Counts the schema-3 answers a schema-2 store holds: re-keyed by an earlier run of the
 * upgrade that stopped part-way (each of its chunks committed whole). */
static bool
ocsp_rekeyed_count(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key;
    (void)klen;
    if (vlen > 0 && ((const uint8_t *)val)[0] == RESP_VERSION)
        (*(size_t *)ctx)++;
    return true;
}

static int
ocsp_schema_upgrade2(struct ocsp_store *s, const char *dir)
{
    struct rekey_chunk *c = calloc(1, sizeof(*c));
    size_t dropped = 0, rekeyed = 0, before = 0;
    struct store_txn *t = NULL;
    bool more = true;
    int st = ST_OK;

    if (c == NULL)
        return ST_NOMEM;
    /* the journal entry says what the whole upgrade did, a stopped run's share included */
    st = store_walk(s->st, s->db[DB_RESPONSES], NULL, 0, ocsp_rekeyed_count, &before);
    while (more && st == ST_OK) {
        c->n = 0;
        c->skip_first = c->last_len > 0;
        st = store_walk(s->st, s->db[DB_RESPONSES], c->last_len > 0 ? c->last : NULL, c->last_len,
                        ocsp_rekey_collect, c);
        if (st == ST_OK && c->failed)
            st = ST_NOMEM;
        more = c->n == UPGRADE_CHUNK;
        if (st == ST_OK && c->n > 0 && (st = store_txn_begin(s->st, true, &t)) == ST_OK) {
            for (size_t i = 0; i < c->n && st == ST_OK; i++) {
                st = store_txn_del(t, s->db[DB_RESPONSES], c->old[i], c->old_len[i]);
                if (st == ST_NOTFOUND)
                    st = ST_OK;
                if (st == ST_OK && c->key_len[i] > 0)
                    st = store_txn_put(t, s->db[DB_RESPONSES], c->key[i], c->key_len[i], c->val[i],
                                       c->val_len[i], false);
            }
            if (st == ST_OK)
                st = store_txn_commit(t);
            else
                store_txn_abort(t);
            t = NULL;
        }
        for (size_t i = 0; i < c->n; i++) {
            if (st == ST_OK) {
                if (c->key_len[i] > 0)
                    rekeyed++;
                else
                    dropped++;
            }
            free(c->val[i]);
            c->val[i] = NULL;
        }
    }
    free(c);
    if (st == ST_OK)
        st = ocsp_upgrade_unbacked(s, &dropped);
    if (st == ST_OK)
        st = ocsp_schema_upgrade_end(s, 2, dropped, rekeyed, before);
    if (st == ST_OK)
        log_notice("ocsp_store: %s: upgraded from schema 2 to %d: %zu stored response(s) "
                   "re-keyed (%zu more by an earlier run that stopped), %zu unreadable or "
                   "unbacked one(s) dropped",
                   dir, OCSP_STORE_SCHEMA, rekeyed, before, dropped);
    else
        log_err("ocsp_store: %s: upgrade from schema 2 failed: %s", dir, status_str(st));
    return st;
}

/* Schema 3 -> 4: the Backing rule (ocsp_store.h) made to hold: the answers signed for a
 * status record that changed or went since are dropped (ocsp_upgrade_unbacked). */
static int
ocsp_schema_upgrade3(struct ocsp_store *s, const char *dir)
{
    size_t dropped = 0;
    int st = ocsp_upgrade_unbacked(s, &dropped);

    if (st == ST_OK)
        st = ocsp_schema_upgrade_end(s, 3, dropped, 0, 0);
    if (st == ST_OK)
        log_notice("ocsp_store: %s: upgraded from schema 3 to %d: %zu stored response(s) no "
                   "longer backed by their status record dropped, signed again on demand",
                   dir, OCSP_STORE_SCHEMA, dropped);
    else
        log_err("ocsp_store: %s: upgrade from schema 3 failed: %s", dir, status_str(st));
    return st;
}

/* schema_version set to `to` if it still is `expect` (one write transaction). */
static int
ocsp_schema_swap(struct ocsp_store *s, const char *expect, const char *to)
{
    struct store_txn *t = NULL;
    const void *v = NULL;
    size_t n = 0;
    int st;

    if ((st = store_txn_begin(s->st, true, &t)) != ST_OK)
        return st;
    st = store_txn_get(t, s->db[DB_META], "schema_version", 14, &v, &n);
    if (st != ST_OK || n != strlen(expect) || memcmp(v, expect, n) != 0) {
        store_txn_abort(t);
        return st == ST_OK ? ST_BUSY : st; /* changed by another process meanwhile */
    }
    if ((st = store_txn_put(t, s->db[DB_META], "schema_version", 14, to, strlen(to), false)) !=
        ST_OK) {
        store_txn_abort(t);
        return st;
    }
    return store_txn_commit(t);
}

static int
ocsp_schema_check(struct ocsp_store *s, bool readonly, const char *dir)
{
    struct store_txn *t = NULL;
    const void *v = NULL;
    size_t n = 0;
    char want[16], old[4], marked[4];
    unsigned from = 0;    /* an older schema to upgrade from */
    bool resumed = false; /* its upgrade began before ("Nu") and stopped part-way */
    unsigned long other = 0;
    int st;

    snprintf(want, sizeof(want), "%d", OCSP_STORE_SCHEMA);
    if ((st = store_txn_begin(s->st, !readonly, &t)) != ST_OK)
        goto out;
    st = store_txn_get(t, s->db[DB_META], "schema_version", 14, &v, &n);
    if (st == ST_NOTFOUND && !readonly) {
        st = store_txn_put(t, s->db[DB_META], "schema_version", 14, want, strlen(want), false);
        if (st == ST_OK)
            st = store_txn_commit(t);
        t = NULL;
        goto out;
    }
    if (st == ST_NOTFOUND) {
        log_err("ocsp_store: %s: no schema version (run `ocspctl init`)", dir);
        st = ST_STORE;
    } else if (st == ST_OK && (n == 1 || (n == 2 && ((const char *)v)[1] == 'u')) &&
               ((const char *)v)[0] >= '1' && ((const char *)v)[0] < '0' + OCSP_STORE_SCHEMA) {
        from = (unsigned)(((const char *)v)[0] - '0');
        resumed = n == 2;
    } else if (st == ST_OK && (n != strlen(want) || memcmp(v, want, n) != 0)) {
        log_err("ocsp_store: %s: schema version '%.*s' is not the supported '%s'", dir,
                (int)(n < 16 ? n : 16), (const char *)v, want);
        st = ST_STORE;
    }
out:
    store_txn_abort(t);
    if (st != ST_OK || from == 0)
        return st;
    if (readonly && s->check) {
        log_notice("ocsp_store: %s: schema version %u%s is upgraded when ocspd starts (to %d; "
                   "or by `ocspctl -d %s init`): only its issuers are checked now",
                   dir, from, resumed ? " (an upgrade that stopped part-way)" : "",
                   OCSP_STORE_SCHEMA, dir);
        return ST_OK;
    }
    if (readonly) {
        log_err("ocsp_store: %s: schema version %u%s must be upgraded to %d, which writes: run "
                "`ocspctl -d %s init` (or start ocspd) once, with write access",
                dir, from, resumed ? " (an upgrade that stopped part-way)" : "", OCSP_STORE_SCHEMA,
                dir);
        return ST_STORE;
    }
    /* an older release's ocspd or ocspctl would go on writing answers without the Backing
     * rule's check (ocsp_store.h), which this release then serves without reading the record
     * (review13, EID-05). First the store is marked as being upgraded ("Nu", which every
     * older release refuses to open), so that none opens it from now on, through the upgrade
     * or after it stopped part-way; then the upgrade waits until none that opened it before
     * has it open any more (else the mark is taken back: that release may go on) */
    snprintf(old, sizeof(old), "%u", from);
    snprintf(marked, sizeof(marked), "%uu", from);
    /* this process is seen by store_reader_other from before its mark until it closes the
     * store (a reader slot, kept reset in the store's pool: it pins no snapshot): another
     * process that finds the mark meanwhile is refused, it does not take it for an upgrade
     * that stopped and run a second one alongside (review15) */
    if ((st = store_txn_begin(s->st, false, &t)) != ST_OK)
        return st;
    store_txn_abort(t);
    if (!resumed && (st = ocsp_schema_swap(s, old, marked)) != ST_OK) {
        log_err("ocsp_store: %s: cannot mark the store for its upgrade from schema %u: %s", dir,
                from,
                st == ST_BUSY ? "another process changed its schema version meanwhile (upgrading "
                                "it too?): start again"
                              : status_str(st));
        return ST_STORE;
    }
    if ((st = store_reader_other(s->st, &other)) != ST_OK || other != 0) {
        if (!resumed)
            (void)ocsp_schema_swap(s, marked, old);
        if (st != ST_OK)
            return st;
        log_err("ocsp_store: %s: schema version %u must be upgraded to %d, but process %lu has "
                "the store open (an older ocspd or ocspctl, or one upgrading it?): stop every "
                "process that uses it, then start again",
                dir, from, OCSP_STORE_SCHEMA, other);
        return ST_STORE;
    }
    return from == 1   ? ocsp_schema_upgrade1(s, dir)
           : from == 2 ? ocsp_schema_upgrade2(s, dir)
                       : ocsp_schema_upgrade3(s, dir);
}

static struct ocsp_store *
ocsp_store_open_as(const char *dir, size_t map_size, bool readonly, bool check)
{
    struct ocsp_store *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->readonly = readonly;
    s->check = check;
    s->st = store_open(dir, map_size, ocsp_db_names, OCSP_N_DBS, readonly);
    if (s->st == NULL)
        goto fail;
    for (size_t i = 0; i < OCSP_N_DBS; i++)
        s->db[i] = store_db(s->st, ocsp_db_names[i]);
    if (ocsp_schema_check(s, readonly, dir) != ST_OK)
        goto fail;
    return s;
fail:
    ocsp_store_close(s);
    return NULL;
}

struct ocsp_store *
ocsp_store_open(const char *dir, size_t map_size, bool readonly)
{
    return ocsp_store_open_as(dir, map_size, readonly, false);
}

struct ocsp_store *
ocsp_store_open_check(const char *dir, size_t map_size)
{
    return ocsp_store_open_as(dir, map_size, true, true);
}

void
ocsp_store_close(struct ocsp_store *s)
{
    if (s == NULL)
        return;
    store_close(s->st);
    free(s);
}

struct store *
ocsp_store_raw(struct ocsp_store *s)
{
    return s->st;
}

bool
ocsp_store_readonly(const struct ocsp_store *s)
{
    return s->readonly;
}

/* ---- issuer certificate hashes ---- */

int
ocsp_issuer_id_of(const uint8_t *cert_der, size_t len, uint8_t id[OCSP_ISSUER_ID_LEN])
{
    const unsigned char *p = cert_der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    const ASN1_BIT_STRING *key;
    int st = ST_CRYPTO;

    if (x == NULL || p != cert_der + len) {
        log_openssl(LOG_LVL_ERR, "ocsp_store: issuer certificate");
        st = ST_INVALID;
        goto out;
    }
    key = X509_get0_pubkey_bitstr(x);
    if (key == NULL ||
        EVP_Digest(key->data, (size_t)key->length, id, NULL, EVP_sha256(), NULL) != 1)
        goto out;
    st = ST_OK;
out:
    X509_free(x);
    return st;
}

/* certids key: hash byte + issuerNameHash + issuerKeyHash. *klen gets its length. */
static int
ocsp_certid_key(X509 *x, enum ocsp_hash h, uint8_t key[1 + 2 * EVP_MAX_MD_SIZE], size_t *klen)
{
    uint8_t name[64], pub[64];
    size_t n = 0;

    if (ocsp_issuer_hashes_of(x, h, name, pub, &n) != ST_OK)
        return ST_CRYPTO;
    key[0] = (uint8_t)h;
    memcpy(key + 1, name, n);
    memcpy(key + 1 + n, pub, n);
    *klen = 1 + 2 * n;
    return ST_OK;
}

/* Put (or delete, with del) the four certids entries of an issuer certificate. */
static int
ocsp_certids_apply(struct ocsp_store *s, struct store_txn *t, const uint8_t *der, size_t len,
                   const uint8_t id[OCSP_ISSUER_ID_LEN], bool del)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    uint8_t key[1 + 2 * EVP_MAX_MD_SIZE];
    size_t klen = 0;
    int st = ST_INVALID;

    if (x == NULL)
        goto out;
    for (int h = OCSP_HASH_SHA1; h <= OCSP_HASH_SHA512; h++) {
        if ((st = ocsp_certid_key(x, (enum ocsp_hash)h, key, &klen)) != ST_OK)
            goto out;
        if (del)
            st = store_txn_del(t, s->db[DB_CERTIDS], key, klen);
        else
            st = store_txn_put(t, s->db[DB_CERTIDS], key, klen, id, OCSP_ISSUER_ID_LEN, false);
        if (st != ST_OK && !(del && st == ST_NOTFOUND))
            goto out;
        st = ST_OK;
    }
out:
    X509_free(x);
    return st;
}

/* ---- issuer record encoding ---- */

struct rec_buf {
    uint8_t *p;
    size_t len, cap;
    bool failed;
};

static void
rb_put(struct rec_buf *b, const void *v, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2 + 64;
        uint8_t *q = realloc(b->p, cap);
        if (q == NULL) {
            b->failed = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, v, n);
    b->len += n;
}

static void
rb_u8(struct rec_buf *b, uint8_t v)
{
    rb_put(b, &v, 1);
}

static void
rb_u64(struct rec_buf *b, uint64_t v)
{
    uint8_t t[8];

    put_le64(t, v);
    rb_put(b, t, 8);
}

static void
rb_blob(struct rec_buf *b, const void *v, size_t n)
{
    rb_u64(b, n);
    rb_put(b, v, n);
}

static int
ocsp_issuer_encode(const struct ocsp_issuer_rec *r, struct rec_buf *b)
{
    rb_u8(b, ISSUER_REC_VERSION);
    rb_put(b, r->id, OCSP_ISSUER_ID_LEN);
    rb_blob(b, r->name, strnlen(r->name, sizeof(r->name) - 1));
    rb_blob(b, r->cert, r->cert_len);
    rb_u8(b, r->signer_kind);
    rb_blob(b, r->signer_cert, r->signer_cert != NULL ? r->signer_cert_len : 0);
    rb_blob(b, r->key_label, strnlen(r->key_label, sizeof(r->key_label) - 1));
    rb_blob(b, r->key_file, strnlen(r->key_file, sizeof(r->key_file) - 1));
    rb_u64(b, (uint64_t)(int64_t)r->scheme);
    rb_u64(b, (uint64_t)(int64_t)r->hash);
    rb_u8(b, r->nonce_policy);
    rb_u8(b, r->unissued_policy);
    rb_u8(b, r->archive_cutoff ? 1 : 0);
    rb_u64(b, r->validity);
    rb_u8(b, r->crl_fed ? 1 : 0);
    rb_u64(b, (uint64_t)r->crl_this_update);
    rb_u64(b, (uint64_t)r->crl_next_update);
    rb_u64(b, r->crl_number);
    rb_u64(b, (uint64_t)r->crl_full_next_update); /* optional trailing field, see decode */
    rb_u8(b, r->qualified ? 1 : 0);               /* optional trailing fields (purging) */
    rb_u64(b, r->purge_status_after);
    return b->failed ? ST_NOMEM : ST_OK;
}

struct rec_rd {
    const uint8_t *p;
    size_t left;
    bool failed;
};

static const uint8_t *
rd_take(struct rec_rd *r, size_t n)
{
    const uint8_t *p = r->p;

    if (r->failed || n > r->left) {
        r->failed = true;
        return NULL;
    }
    r->p += n;
    r->left -= n;
    return p;
}

static uint8_t
rd_u8(struct rec_rd *r)
{
    const uint8_t *p = rd_take(r, 1);

    return p != NULL ? *p : 0;
}

static uint64_t
rd_u64(struct rec_rd *r)
{
    const uint8_t *p = rd_take(r, 8);

    return p != NULL ? get_le64(p) : 0;
}

/* A length-prefixed string into dst (cap bytes, NUL-terminated). */
static void
rd_str(struct rec_rd *r, char *dst, size_t cap)
{
    uint64_t n = rd_u64(r);
    const uint8_t *p = n < cap ? rd_take(r, (size_t)n) : NULL;

    if (p == NULL) {
        r->failed = true;
        return;
    }
    memcpy(dst, p, (size_t)n);
    dst[n] = '\0';
}

/* A length-prefixed blob, copied (NULL when empty). */
static uint8_t *
rd_blob(struct rec_rd *r, size_t *len)
{
    uint64_t n = rd_u64(r);
    const uint8_t *p = n <= r->left ? rd_take(r, (size_t)n) : NULL;
    uint8_t *c;

    *len = 0;
    if (p == NULL || n == 0) {
        r->failed = r->failed || p == NULL;
        return NULL;
    }
    if ((c = malloc((size_t)n)) == NULL) {
        r->failed = true;
        return NULL;
    }
    memcpy(c, p, (size_t)n);
    *len = (size_t)n;
    return c;
}

static int
ocsp_issuer_decode(const uint8_t *p, size_t len, struct ocsp_issuer_rec *rec)
{
    struct rec_rd r = {p, len, false};
    const uint8_t *id;

    memset(rec, 0, sizeof(*rec));
    if (rd_u8(&r) != ISSUER_REC_VERSION || (id = rd_take(&r, OCSP_ISSUER_ID_LEN)) == NULL)
        return ST_STORE;
    memcpy(rec->id, id, OCSP_ISSUER_ID_LEN);
    rd_str(&r, rec->name, sizeof(rec->name));
    rec->cert = rd_blob(&r, &rec->cert_len);
    rec->signer_kind = rd_u8(&r);
    rec->signer_cert = rd_blob(&r, &rec->signer_cert_len);
    rd_str(&r, rec->key_label, sizeof(rec->key_label));
    rd_str(&r, rec->key_file, sizeof(rec->key_file));
    rec->scheme = (int)(int64_t)rd_u64(&r);
    rec->hash = (int)(int64_t)rd_u64(&r);
    rec->nonce_policy = rd_u8(&r);
    rec->unissued_policy = rd_u8(&r);
    rec->archive_cutoff = rd_u8(&r) != 0;
    rec->validity = (uint32_t)rd_u64(&r);
    rec->crl_fed = rd_u8(&r) != 0;
    rec->crl_this_update = (int64_t)rd_u64(&r);
    rec->crl_next_update = (int64_t)rd_u64(&r);
    rec->crl_number = rd_u64(&r);
    /* records written before delta CRLs were followed end here: the only nextUpdate was the
     * full CRL's */
    rec->crl_full_next_update = r.left > 0 ? (int64_t)rd_u64(&r) : rec->crl_next_update;
    /* records written before purging existed end here: not qualified, no status purge */
    if (r.left > 0) {
        rec->qualified = rd_u8(&r) != 0;
        rec->purge_status_after = rd_u64(&r);
    }
    if (r.failed || r.left != 0 || rec->cert == NULL) {
        ocsp_issuer_rec_clear(rec);
        log_err("ocsp_store: corrupt issuer record");
        return ST_STORE;
    }
    return ST_OK;
}

void
ocsp_issuer_rec_clear(struct ocsp_issuer_rec *rec)
{
    if (rec == NULL)
        return;
    free(rec->cert);
    free(rec->signer_cert);
    memset(rec, 0, sizeof(*rec));
}

/* ---- issuers ---- */

static int
ocsp_bump_gen(struct ocsp_store *s, struct store_txn *t)
{
    uint64_t gen = 0;
    int st = ocsp_meta_u64(t, s->db[DB_META], "issuers_gen", &gen);

    return st != ST_OK ? st : ocsp_meta_put_u64(t, s->db[DB_META], "issuers_gen", gen + 1);
}

/* Remove the certids entries of the record currently stored under id (if any). */
static int
ocsp_issuer_unindex(struct ocsp_store *s, struct store_txn *t, const uint8_t *id)
{
    struct ocsp_issuer_rec old;
    const void *v = NULL;
    size_t n = 0;
    int st = store_txn_get(t, s->db[DB_ISSUERS], id, OCSP_ISSUER_ID_LEN, &v, &n);

    if (st == ST_NOTFOUND)
        return ST_OK;
    if (st != ST_OK || (st = ocsp_issuer_decode(v, n, &old)) != ST_OK)
        return st;
    st = ocsp_certids_apply(s, t, old.cert, old.cert_len, id, true);
    ocsp_issuer_rec_clear(&old);
    return st;
}

int
ocsp_issuer_purge_check(const struct ocsp_issuer_rec *rec, const char **why)
{
    *why = NULL;
    if (rec->purge_status_after == 0)
        return ST_OK;
    if (rec->qualified)
        *why = "a qualified issuer keeps the status of its expired certificates for ever "
               "(eIDAS Art. 24(4), LW-09, EID-06): status purging is refused";
    else if (rec->unissued_policy != OCSP_UNISSUED_UNKNOWN)
        *why = "status purging needs --unissued unknown (a purged serial is answered as one "
               "without a record: revoked or good would be wrong)";
    return *why != NULL ? ST_INVALID : ST_OK;
}

/* Whether another stored issuer's id begins with the same OCSP_RESP_KEY_ID_LEN bytes. */
struct prefix_scan {
    const uint8_t *id;
    bool clash;
};

static bool
ocsp_prefix_scan_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct prefix_scan *p = ctx;

    (void)val;
    (void)vlen;
    if (klen < OCSP_RESP_KEY_ID_LEN || memcmp(key, p->id, OCSP_RESP_KEY_ID_LEN) != 0)
        return false;
    if (klen != OCSP_ISSUER_ID_LEN || memcmp(key, p->id, OCSP_ISSUER_ID_LEN) != 0)
        p->clash = true;
    return !p->clash;
}

int
ocsp_store_issuer_put(struct ocsp_store *s, const struct ocsp_issuer_rec *rec)
{
    struct prefix_scan ps = {rec->id, false};
    const char *why = NULL;
    struct rec_buf b = {0};
    struct store_txn *t = NULL;
    uint8_t id[OCSP_ISSUER_ID_LEN];
    int st;

    if (rec->cert == NULL || (st = ocsp_issuer_id_of(rec->cert, rec->cert_len, id)) != ST_OK)
        return ST_INVALID;
    if (ocsp_issuer_purge_check(rec, &why) != ST_OK) {
        log_err("ocsp_store: issuer %s: %s", rec->name, why);
        return ST_INVALID;
    }
    if (memcmp(id, rec->id, sizeof(id)) != 0) {
        log_err("ocsp_store: issuer %s: id does not match its certificate", rec->name);
        return ST_INVALID;
    }
    /* the `responses` keys carry the id's first bytes: they must name one issuer */
    if ((st = store_walk(s->st, s->db[DB_ISSUERS], id, OCSP_RESP_KEY_ID_LEN, ocsp_prefix_scan_one,
                         &ps)) != ST_OK)
        return st;
    if (ps.clash) {
        log_err("ocsp_store: issuer %s: its id shares its first %d bytes with another issuer's "
                "(the stored answers could not tell them apart): refused",
                rec->name, OCSP_RESP_KEY_ID_LEN);
        return ST_EXISTS;
    }
    if ((st = ocsp_issuer_encode(rec, &b)) != ST_OK || (st = wtxn_begin(s, &t)) != ST_OK)
        goto out;
    if ((st = ocsp_issuer_unindex(s, t, id)) != ST_OK ||
        (st = store_txn_put(t, s->db[DB_ISSUERS], id, sizeof(id), b.p, b.len, false)) != ST_OK ||
        (st = ocsp_certids_apply(s, t, rec->cert, rec->cert_len, id, false)) != ST_OK ||
        (st = ocsp_bump_gen(s, t)) != ST_OK)
        goto out;
    st = wtxn_commit(s, t);
    t = NULL;
out:
    wtxn_release(s, t, st);
    free(b.p);
    return st;
}

/* meta key of an issuer's CRL import under way: "crl_pending" + issuer id */
#define CRL_PENDING_KEY "crl_pending"
static size_t
ocsp_crl_pending_key(const uint8_t *id,
                     uint8_t key[sizeof(CRL_PENDING_KEY) - 1 + OCSP_ISSUER_ID_LEN])
{
    memcpy(key, CRL_PENDING_KEY, sizeof(CRL_PENDING_KEY) - 1);
    memcpy(key + sizeof(CRL_PENDING_KEY) - 1, id, OCSP_ISSUER_ID_LEN);
    return sizeof(CRL_PENDING_KEY) - 1 + OCSP_ISSUER_ID_LEN;
}

int
ocsp_store_crl_pending_get(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                           struct ocsp_crl_pending *p)
{
    uint8_t key[sizeof(CRL_PENDING_KEY) - 1 + OCSP_ISSUER_ID_LEN], b[16];
    size_t klen = ocsp_crl_pending_key(id, key), n = 0;
    int st = store_get(s->st, s->db[DB_META], key, klen, b, sizeof(b), &n);

    memset(p, 0, sizeof(*p));
    if (st == ST_OK && n != sizeof(b))
        st = ST_STORE;
    if (st != ST_OK)
        return st == ST_INVALID ? ST_STORE : st;
    p->number = get_le64(b);
    p->this_update = (int64_t)get_le64(b + 8);
    return ST_OK;
}

int
ocsp_store_crl_pending_put(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                           const struct ocsp_crl_pending *p)
{
    uint8_t key[sizeof(CRL_PENDING_KEY) - 1 + OCSP_ISSUER_ID_LEN], b[16];
    size_t klen = ocsp_crl_pending_key(id, key);
    struct store_txn *t = NULL;
    int st;

    if ((st = wtxn_begin(s, &t)) != ST_OK)
        return st;
    if (p == NULL) {
        st = store_txn_del(t, s->db[DB_META], key, klen);
        if (st == ST_NOTFOUND)
            st = ST_OK;
    } else {
        put_le64(b, p->number);
        put_le64(b + 8, (uint64_t)p->this_update);
        st = store_txn_put(t, s->db[DB_META], key, klen, b, sizeof(b), false);
    }
    if (st == ST_OK) {
        st = wtxn_commit(s, t);
        t = NULL;
    }
    wtxn_release(s, t, st);
    return st;
}

int
ocsp_store_issuer_get(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                      struct ocsp_issuer_rec *rec)
{
    uint8_t *v = NULL;
    size_t n = 0;
    int st = store_get_alloc(s->st, s->db[DB_ISSUERS], id, OCSP_ISSUER_ID_LEN, &v, &n);

    memset(rec, 0, sizeof(*rec));
    if (st == ST_OK)
        st = ocsp_issuer_decode(v, n, rec);
    free(v);
    return st;
}

struct issuer_walk {
    bool (*fn)(void *ctx, const struct ocsp_issuer_rec *rec);
    void *ctx;
    int st;
};

static bool
ocsp_issuer_walk_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct issuer_walk *w = ctx;
    struct ocsp_issuer_rec rec;
    bool more;

    (void)key;
    (void)klen;
    if ((w->st = ocsp_issuer_decode(val, vlen, &rec)) != ST_OK)
        return false;
    more = w->fn(w->ctx, &rec);
    ocsp_issuer_rec_clear(&rec);
    return more;
}

int
ocsp_store_issuer_walk(struct ocsp_store *s,
                       bool (*fn)(void *ctx, const struct ocsp_issuer_rec *rec), void *ctx)
{
    struct issuer_walk w = {fn, ctx, ST_OK};
    int st = store_walk(s->st, s->db[DB_ISSUERS], NULL, 0, ocsp_issuer_walk_one, &w);

    return st != ST_OK ? st : w.st;
}

int
ocsp_store_issuer_by_hashes(struct ocsp_store *s, enum ocsp_hash h, const uint8_t *name_hash,
                            const uint8_t *key_hash, size_t hash_len,
                            uint8_t id[OCSP_ISSUER_ID_LEN])
{
    uint8_t key[1 + 2 * 64];
    size_t n = 0;
    int st;

    if (ocsp_hash_md(h) == NULL || hash_len == 0 || hash_len > 64)
        return ST_NOTFOUND;
    key[0] = (uint8_t)h;
    memcpy(key + 1, name_hash, hash_len);
    memcpy(key + 1 + hash_len, key_hash, hash_len);
    st = store_get(s->st, s->db[DB_CERTIDS], key, 1 + 2 * hash_len, id, OCSP_ISSUER_ID_LEN, &n);
    if (st == ST_OK && n != OCSP_ISSUER_ID_LEN)
        return ST_STORE;
    return st;
}

uint64_t
ocsp_store_issuers_gen(struct ocsp_store *s)
{
    uint8_t b[8];
    size_t n = 0;

    if (store_get(s->st, s->db[DB_META], "issuers_gen", 11, b, sizeof(b), &n) != ST_OK || n != 8)
        return 0;
    return get_le64(b);
}

/* ---- status records ---- */

static void
ocsp_status_encode(const struct ocsp_status *st, uint8_t b[STATUS_REC_LEN])
{
    memset(b, 0, STATUS_REC_LEN);
    b[0] = st->state;
    b[1] = st->reason;
    put_le64(b + 8, (uint64_t)st->revocation_time);
    put_le64(b + 16, (uint64_t)st->not_after);
    put_le64(b + 24, st->stamp);
    put_le64(b + 32, (uint64_t)st->updated);
}

static int
ocsp_status_decode(const void *v, size_t n, struct ocsp_status *st)
{
    const uint8_t *b = v;

    if (n != STATUS_REC_LEN) {
        log_err("ocsp_store: corrupt status record (%zu bytes)", n);
        return ST_STORE;
    }
    st->state = b[0];
    st->reason = b[1];
    st->revocation_time = (int64_t)get_le64(b + 8);
    st->not_after = (int64_t)get_le64(b + 16);
    st->stamp = get_le64(b + 24);
    st->updated = (int64_t)get_le64(b + 32);
    return ST_OK;
}

/* status key: issuer id + serial; *klen gets the length. */
static size_t
ocsp_status_key(const uint8_t *id, const uint8_t *serial, size_t serial_len,
                uint8_t key[OCSP_ISSUER_ID_LEN + OCSP_SERIAL_MAX])
{
    memcpy(key, id, OCSP_ISSUER_ID_LEN);
    memcpy(key + OCSP_ISSUER_ID_LEN, serial, serial_len);
    return OCSP_ISSUER_ID_LEN + serial_len;
}

/* Borrowed read of a status inside a transaction. */
static int
ocsp_status_txn_get(struct ocsp_store *s, struct store_txn *t, const uint8_t *id,
                    const uint8_t *serial, size_t serial_len, struct ocsp_status *out)
{
    uint8_t key[OCSP_ISSUER_ID_LEN + OCSP_SERIAL_MAX];
    size_t klen = ocsp_status_key(id, serial, serial_len, key);
    const void *v = NULL;
    size_t n = 0;
    int st = store_txn_get(t, s->db[DB_STATUS], key, klen, &v, &n);

    return st != ST_OK ? st : ocsp_status_decode(v, n, out);
}

/* The form bytes an answer's key may end with (ocsp_store.h): each hash, both spellings. */
static const uint8_t ocsp_forms[] = {
    OCSP_HASH_SHA1,
    OCSP_HASH_SHA256,
    OCSP_HASH_SHA384,
    OCSP_HASH_SHA512,
    OCSP_HASH_SHA1 | OCSP_FORM_NOPARAMS,
    OCSP_HASH_SHA256 | OCSP_FORM_NOPARAMS,
    OCSP_HASH_SHA384 | OCSP_FORM_NOPARAMS,
    OCSP_HASH_SHA512 | OCSP_FORM_NOPARAMS,
};

static bool
ocsp_form_known(uint8_t form)
{
    return memchr(ocsp_forms, form, sizeof(ocsp_forms)) != NULL;
}

/* The answers stored for (id, serial), every form, when its status record changes (`drop`
 * false: each marked stale, its stamp OCSP_STAMP_STALE, so that it is re-signed by the
 * refresher or on demand and never served as it is) or is removed (`drop`: each deleted), in
 * the caller's write transaction, the one that changes the record (the Backing rule,
 * ocsp_store.h). Counted in *n when not NULL. A value that is not a schema-3 answer is
 * deleted. */
static int
ocsp_answers_unback_txn(struct ocsp_store *s, struct store_txn *t, const uint8_t *id,
                        const uint8_t *serial, size_t serial_len, bool drop, size_t *n)
{
    uint8_t key[OCSP_RESP_KEY_MAX];

    for (size_t i = 0; i < sizeof(ocsp_forms); i++) {
        size_t klen = ocsp_response_key(id, serial, serial_len, ocsp_forms[i], key), vn = 0;
        const void *v = NULL;
        uint8_t *copy;
        int st;

        if (klen == 0)
            return ST_INVALID;
        st = store_txn_get(t, s->db[DB_RESPONSES], key, klen, &v, &vn);
        if (st == ST_NOTFOUND)
            continue;
        if (st != ST_OK)
            return st;
        if (drop || vn < RESP_HDR_LEN || ((const uint8_t *)v)[0] != RESP_VERSION) {
            st = store_txn_del(t, s->db[DB_RESPONSES], key, klen);
        } else if (get_le64((const uint8_t *)v + 8) == OCSP_STAMP_STALE) {
            continue; /* marked by an earlier change */
        } else {
            if ((copy = malloc(vn)) == NULL)
                return ST_NOMEM;
            memcpy(copy, v, vn); /* v is the map's page: not the value to write from */
            put_le64(copy + 8, OCSP_STAMP_STALE);
            st = store_txn_put(t, s->db[DB_RESPONSES], key, klen, copy, vn, false);
            free(copy);
        }
        if (st != ST_OK)
            return st;
        if (n != NULL)
            (*n)++;
        if (t == s->batch)
            s->batch_marked++;
    }
    return ST_OK;
}

int
ocsp_store_status_get(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                      const uint8_t *serial, size_t serial_len, struct ocsp_status *out)
{
    return ocsp_store_status_get_snap(s, id, serial, serial_len, out, NULL);
}

uint64_t
ocsp_store_last_commit(struct ocsp_store *s)
{
    return store_last_commit(s->st);
}

int
ocsp_store_status_get_snap(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                           const uint8_t *serial, size_t serial_len, struct ocsp_status *out,
                           uint64_t *snap)
{
    uint8_t key[OCSP_ISSUER_ID_LEN + OCSP_SERIAL_MAX];
    uint8_t b[STATUS_REC_LEN];
    size_t klen, n = 0;
    int st;

    if (!serial_ok(serial, serial_len))
        return ST_INVALID;
    klen = ocsp_status_key(id, serial, serial_len, key);
    st = store_get_snap(s->st, s->db[DB_STATUS], key, klen, b, sizeof(b), &n, snap);
    if (st == ST_INVALID)
        st = ST_STORE; /* longer than a status record */
    return st != ST_OK ? st : ocsp_status_decode(b, n, out);
}

const char *
ocsp_state_name(uint8_t state)
{
    switch (state) {
    case OCSP_STATE_GOOD:
        return "good";
    case OCSP_STATE_REVOKED:
        return "revoked";
    case OCSP_STATE_HOLD:
        return "hold";
    }
    return "invalid";
}

static uint64_t
ocsp_now_ns(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (uint64_t)time(NULL) * 1000000000u;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The journal's node name (its chain, common/chain.h): kept in meta "journal_node", this
 * host's name when the first entry is written, so that ocspd and ocspctl seal alike. */
static int
ocsp_journal_node(struct ocsp_store *s, struct store_txn *t, char *node, size_t cap)
{
    const void *v = NULL;
    size_t n = 0;
    int st = store_txn_get(t, s->db[DB_META], "journal_node", 12, &v, &n);

    if (st == ST_OK && n > 0 && n < cap) {
        memcpy(node, v, n);
        node[n] = '\0';
        return ST_OK;
    }
    if (st != ST_OK && st != ST_NOTFOUND)
        return st;
    chain_default_node(node, cap);
    return store_txn_put(t, s->db[DB_META], "journal_node", 12, node, strlen(node), false);
}

/* Append a journal line (in t); the line must be one JSON object on one line. */
static int
ocsp_journal_txn(struct ocsp_store *s, struct store_txn *t, const char *line)
{
    uint64_t seq = 0;
    uint8_t key[8], prev[32] = {0}, hash[32];
    char node[CHAIN_NODE_MAX], sealed[JOURNAL_LINE_MAX + CHAIN_PREFIX_MAX];
    const void *pv = NULL;
    size_t pn = 0, n;
    int st;

    if (line[0] != '{' || strchr(line, '\n') != NULL || line[strlen(line) - 1] != '}')
        return ST_INVALID;
    if ((st = ocsp_meta_u64(t, s->db[DB_META], "journal_next", &seq)) != ST_OK ||
        (st = ocsp_journal_node(s, t, node, sizeof(node))) != ST_OK)
        return st;
    /* sealed into the journal's chain here, in the write transaction that fixes its place
     * (issue 9 item 3): prev is the SHA-256 of the entry before it, as stored */
    if (seq > 0) {
        put_be64(key, seq - 1);
        st = store_txn_get(t, s->db[DB_JOURNAL], key, 8, &pv, &pn);
        if (st == ST_OK)
            chain_hash(pv, pn, prev);
        else if (st != ST_NOTFOUND)
            return st; /* never a zero prev for an entry that could not be read */
    }
    n = chain_seal(sealed, sizeof(sealed), seq, node, prev, line, strlen(line), hash);
    if (n == 0)
        return ST_INVALID;
    put_be64(key, seq);
    /* seq is past every key of the journal (journal_next only grows): appended, pages filled
     * in order (measured: 18 % fewer journal pages than a put); ST_EXISTS as with a put */
    if ((st = store_txn_append(t, s->db[DB_JOURNAL], key, 8, sealed, n)) != ST_OK)
        return st;
    return ocsp_meta_put_u64(t, s->db[DB_META], "journal_next", seq + 1);
}

int
ocsp_store_journal(struct ocsp_store *s, const char *json_line)
{
    struct store_txn *t = NULL;
    int st;

    if (json_line == NULL || json_line[0] == '\0' || strlen(json_line) > JOURNAL_LINE_MAX)
        return ST_INVALID;
    if ((st = wtxn_begin(s, &t)) != ST_OK)
        return st;
    if ((st = ocsp_journal_txn(s, t, json_line)) != ST_OK)
        goto out;
    st = wtxn_commit(s, t);
    t = NULL;
out:
    wtxn_release(s, t, st);
    return st;
}

static int
ocsp_change_add(struct ocsp_store *s, struct store_txn *t, const uint8_t *id, const uint8_t *serial,
                size_t serial_len)
{
    uint8_t key[8], val[OCSP_ISSUER_ID_LEN + OCSP_SERIAL_MAX];
    uint64_t seq = 0;
    size_t vlen = ocsp_status_key(id, serial, serial_len, val);
    int st;

    if ((st = ocsp_meta_u64(t, s->db[DB_META], "changes_next", &seq)) != ST_OK)
        return st;
    put_be64(key, seq);
    /* changes_next only grows: past every key, appended (as the journal) */
    if ((st = store_txn_append(t, s->db[DB_CHANGES], key, 8, val, vlen)) != ST_OK)
        return st;
    return ocsp_meta_put_u64(t, s->db[DB_META], "changes_next", seq + 1);
}

/* The journal line of one status change (the issuer's name read in t). */
static void
ocsp_status_journal(struct ocsp_store *s, struct store_txn *t, char *line, size_t cap,
                    struct ocsp_journal_status *e)
{
    char name[64] = "";
    const void *v = NULL;
    size_t n = 0;
    struct ocsp_issuer_rec rec;

    if (t == s->batch && s->name_cached &&
        memcmp(s->name_id, e->issuer_id, OCSP_ISSUER_ID_LEN) == 0) {
        memcpy(name, s->name, sizeof(name));
    } else if (store_txn_get(t, s->db[DB_ISSUERS], e->issuer_id, OCSP_ISSUER_ID_LEN, &v, &n) ==
                   ST_OK &&
               ocsp_issuer_decode(v, n, &rec) == ST_OK) {
        memcpy(name, rec.name, sizeof(name));
        ocsp_issuer_rec_clear(&rec);
        if (t == s->batch) {
            memcpy(s->name_id, e->issuer_id, OCSP_ISSUER_ID_LEN);
            memcpy(s->name, name, sizeof(name));
            s->name_cached = true;
        }
    }
    e->issuer_name = name;
    e->time = (int64_t)time(NULL);
    ocsp_journal_status_line(line, cap, e);
}

int
ocsp_store_status_set(struct ocsp_store *s, const struct ocsp_status_set *r)
{
    return ocsp_store_status_apply(s, r, 0, NULL);
}

int
ocsp_store_status_apply(struct ocsp_store *s, const struct ocsp_status_set *r, unsigned flags,
                        enum ocsp_set_outcome *result)
{
    uint8_t key[OCSP_ISSUER_ID_LEN + OCSP_SERIAL_MAX], rec[STATUS_REC_LEN];
    struct ocsp_status cur = {0}, next;
    struct ocsp_status_change req = r->change;
    const uint8_t *id = r->issuer_id, *serial = r->serial;
    size_t serial_len = r->serial_len;
    enum ocsp_rule_verdict verdict;
    enum ocsp_set_outcome outcome = OCSP_SET_SAME;
    struct store_txn *t = NULL;
    char line[JOURNAL_LINE_MAX];
    bool found, allowed, journal;
    size_t klen;
    int st;

    if (id == NULL || !serial_ok(serial, serial_len) || req.state > OCSP_STATE_HOLD ||
        (req.state != OCSP_STATE_GOOD && !ocsp_reason_valid(req.reason)))
        return ST_INVALID;
    line[0] = '\0';
    if ((st = wtxn_begin(s, &t)) != ST_OK)
        goto out;
    klen = ocsp_status_key(id, serial, serial_len, key);
    /* OCSP_SET_APPEND: the caller knows the key is past every status key (no record) */
    st = (flags & OCSP_SET_APPEND) != 0 ? ST_NOTFOUND
                                        : ocsp_status_txn_get(s, t, id, serial, serial_len, &cur);
    if (st != ST_OK && st != ST_NOTFOUND)
        goto out;
    found = st == ST_OK;
    if (found && (flags & OCSP_SET_ISSUED) != 0)
        req =
            (struct ocsp_status_change){cur.state, cur.reason, cur.revocation_time, req.not_after};
    verdict =
        ocsp_status_next(found ? &cur : NULL, &req, (int64_t)time(NULL), ocsp_now_ns(), &next);
    if (verdict == OCSP_RULE_SAME) {
        outcome = OCSP_SET_SAME;
        st = ST_OK; /* nothing changes: no journal entry, no re-signing */
        goto out;
    }
    allowed = verdict == OCSP_RULE_APPLY;
    outcome = !allowed ? OCSP_SET_REFUSED : found ? OCSP_SET_CHANGED : OCSP_SET_NEW;
    /* a bulk import journals itself (file, digest, counts): its new `good` records are not
     * journalled one by one; revocations, holds, releases and refusals always are */
    journal =
        !(outcome == OCSP_SET_NEW && next.state == OCSP_STATE_GOOD && (flags & OCSP_SET_BULK) != 0);
    if (journal) {
        ocsp_status_journal(s, t, line, sizeof(line),
                            &(struct ocsp_journal_status){.who = r->who,
                                                          .issuer_id = id,
                                                          .serial = serial,
                                                          .serial_len = serial_len,
                                                          .before = found ? &cur : NULL,
                                                          .after = &next,
                                                          .refused = !allowed});
        if ((st = ocsp_journal_txn(s, t, line)) != ST_OK)
            goto out;
    }
    if (allowed) {
        ocsp_status_encode(&next, rec);
        st = (flags & OCSP_SET_APPEND) != 0
                 ? store_txn_append(t, s->db[DB_STATUS], key, klen, rec, sizeof(rec))
                 : store_txn_put(t, s->db[DB_STATUS], key, klen, rec, sizeof(rec), false);
        if (st == ST_EXISTS)
            st = ST_STORE; /* an append not past the last key: the caller's order is wrong */
        if (st != ST_OK)
            goto out;
        /* only a record that existed may have a pre-signed answer signed for it: marked
         * stale now (the Backing rule), and re-signed at once (EID-05) */
        if (found &&
            ((st = ocsp_answers_unback_txn(s, t, id, serial, serial_len, false, NULL)) != ST_OK ||
             (st = ocsp_change_add(s, t, id, serial, serial_len)) != ST_OK))
            goto out;
    }
    st = wtxn_commit(s, t);
    t = NULL;
    if (st == ST_OK && !allowed) {
        log_audit("status_refused", "%s", line);
        st = ST_EXISTS;
    }
out:
    wtxn_release(s, t, st);
    if (result != NULL && (st == ST_OK || st == ST_EXISTS))
        *result = outcome;
    return st;
}

int
ocsp_store_status_past_last(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                            const uint8_t *serial, size_t serial_len, bool *past)
{
    uint8_t key[OCSP_ISSUER_ID_LEN + OCSP_SERIAL_MAX], last[OCSP_ISSUER_ID_LEN + OCSP_SERIAL_MAX];
    size_t klen, llen = 0, n;
    struct store_txn *t = NULL;
    int st, d;

    *past = false;
    if (id == NULL || !serial_ok(serial, serial_len))
        return ST_INVALID;
    /* the batch's view, or a read transaction of its own (no write lock for a look) */
    if (s->batch != NULL)
        t = s->batch;
    else if ((st = store_txn_begin(s->st, false, &t)) != ST_OK)
        return st;
    klen = ocsp_status_key(id, serial, serial_len, key);
    st = store_txn_last(t, s->db[DB_STATUS], last, sizeof(last), &llen);
    if (st == ST_NOTFOUND) {
        *past = true; /* no status record at all */
        st = ST_OK;
    } else if (st == ST_OK) {
        /* LMDB's default order: memcmp over the shorter, then the shorter first */
        n = klen < llen ? klen : llen;
        d = memcmp(key, last, n);
        *past = d > 0 || (d == 0 && klen > llen);
    } else if (st == ST_INVALID) {
        st = ST_STORE; /* a status key longer than any serial */
    }
    if (t != s->batch)
        store_txn_abort(t);
    return st;
}

struct status_walk {
    const uint8_t *id;
    const uint8_t *after; /* skip this serial (the walk starts at it), or NULL */
    size_t after_len;
    bool (*fn)(void *ctx, const uint8_t *serial, size_t serial_len, const struct ocsp_status *st);
    void *ctx;
    int st;
};

static bool
ocsp_status_walk_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct status_walk *w = ctx;
    struct ocsp_status rec;

    if (klen <= OCSP_ISSUER_ID_LEN || memcmp(key, w->id, OCSP_ISSUER_ID_LEN) != 0)
        return false;
    if (w->after != NULL && klen - OCSP_ISSUER_ID_LEN == w->after_len &&
        memcmp((const uint8_t *)key + OCSP_ISSUER_ID_LEN, w->after, w->after_len) == 0)
        return true;
    if ((w->st = ocsp_status_decode(val, vlen, &rec)) != ST_OK)
        return false;
    return w->fn(w->ctx, (const uint8_t *)key + OCSP_ISSUER_ID_LEN, klen - OCSP_ISSUER_ID_LEN,
                 &rec);
}

int
ocsp_store_status_walk_from(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                            const uint8_t *start, size_t start_len,
                            bool (*fn)(void *ctx, const uint8_t *serial, size_t serial_len,
                                       const struct ocsp_status *st),
                            void *ctx)
{
    struct status_walk w = {id, start, start_len, fn, ctx, ST_OK};
    uint8_t key[OCSP_ISSUER_ID_LEN + OCSP_SERIAL_MAX];
    size_t klen = OCSP_ISSUER_ID_LEN;
    int st;

    if (start != NULL && !serial_ok(start, start_len))
        return ST_INVALID;
    /* LMDB orders keys bytewise, so every serial > start sorts after id + start */
    memcpy(key, id, OCSP_ISSUER_ID_LEN);
    if (start != NULL)
        klen = ocsp_status_key(id, start, start_len, key);
    st = store_walk(s->st, s->db[DB_STATUS], key, klen, ocsp_status_walk_one, &w);
    return st != ST_OK ? st : w.st;
}

int
ocsp_store_status_walk(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                       bool (*fn)(void *ctx, const uint8_t *serial, size_t serial_len,
                                  const struct ocsp_status *st),
                       void *ctx)
{
    return ocsp_store_status_walk_from(s, id, NULL, 0, fn, ctx);
}

/* ---- pre-signed responses ---- */

size_t
ocsp_response_key(const uint8_t issuer_id[OCSP_ISSUER_ID_LEN], const uint8_t *serial,
                  size_t serial_len, uint8_t form, uint8_t key[OCSP_RESP_KEY_MAX])
{
    if (!serial_ok(serial, serial_len))
        return 0;
    memcpy(key, issuer_id, OCSP_RESP_KEY_ID_LEN);
    memcpy(key + OCSP_RESP_KEY_ID_LEN, serial, serial_len);
    key[OCSP_RESP_KEY_ID_LEN + serial_len] = form;
    return OCSP_RESP_KEY_ID_LEN + serial_len + 1;
}

/* Serial and form of a key (the issuer's prefix is its first bytes); false when it is not
 * one of ours. */
static bool
ocsp_response_key_parse(const uint8_t *key, size_t klen, struct ocsp_stored_response *out)
{
    if (klen < OCSP_RESP_KEY_ID_LEN + 2 || klen > OCSP_RESP_KEY_MAX)
        return false;
    out->serial_len = klen - OCSP_RESP_KEY_ID_LEN - 1;
    memcpy(out->serial, key + OCSP_RESP_KEY_ID_LEN, out->serial_len);
    out->form = key[klen - 1];
    return true;
}

/* The header into *out (form, issuer and serial are the key's: not touched), and the stored
 * DER's length (*body: without padding). */
static int
ocsp_response_decode(const void *v, size_t n, struct ocsp_stored_response *out, size_t *body)
{
    const uint8_t *b = v;
    size_t pad;

    if (n < RESP_HDR_LEN + 1 || b[0] != RESP_VERSION ||
        (pad = (size_t)b[2] | (size_t)b[3] << 8) >= n - RESP_HDR_LEN) {
        log_err("ocsp_store: corrupt response record (%zu bytes)", n);
        return ST_STORE;
    }
    out->pad_len = (uint16_t)pad;
    out->certs_len = (b[1] & RESP_FLAG_CERTS) ? get_le32(b + 4) : 0;
    out->stamp = get_le64(b + 8);
    out->this_update = (int64_t)get_le64(b + 16);
    out->next_update = (int64_t)get_le64(b + 24);
    out->produced_at = (int64_t)get_le64(b + 32);
    memcpy(out->signer_fp, b + 40, OCSP_FP_LEN);
    memcpy(out->etag, b + 40 + OCSP_FP_LEN, OCSP_FP_LEN);
    *body = n - RESP_HDR_LEN - pad; /* stored bytes: without the elided certs */
    out->der = NULL;
    out->der_len = *body;
    return ST_OK;
}

int
ocsp_store_response_get(struct ocsp_store *s, const struct ocsp_response_query *q,
                        struct ocsp_response_found *out)
{
    struct ocsp_stored_response *r = &out->resp;
    struct store_txn *t = NULL;
    uint8_t key[OCSP_RESP_KEY_MAX];
    const void *v = NULL;
    size_t n = 0, body = 0, klen;
    int st, sst;

    memset(out, 0, sizeof(*out));
    if (q->issuer_id == NULL ||
        (klen = ocsp_response_key(q->issuer_id, q->serial, q->serial_len, q->form, key)) == 0)
        return ST_INVALID;
    if ((st = store_txn_begin(s->st, false, &t)) != ST_OK)
        return st;
    st = store_txn_get(t, s->db[DB_RESPONSES], key, klen, &v, &n);
    if (st != ST_OK || (st = ocsp_response_decode(v, n, r, &body)) != ST_OK)
        goto out;
    r->form = q->form;
    memcpy(r->issuer_id, q->issuer_id, OCSP_ISSUER_ID_LEN);
    memcpy(r->serial, q->serial, q->serial_len);
    r->serial_len = q->serial_len;
    if (r->certs_len > 0 && (q->certs == NULL || q->certs_len != r->certs_len)) {
        st = ST_NOTFOUND; /* elided certs that are not the caller's: another signer's */
        goto out;
    }
    /* the answer, its certs put back (a copy for now: LMDB's pages are valid only in t) */
    if ((r->der = malloc(body + r->certs_len)) == NULL) {
        st = ST_NOMEM;
        goto out;
    }
    memcpy(r->der, (const uint8_t *)v + RESP_HDR_LEN, body);
    if (r->certs_len > 0)
        memcpy(r->der + body, q->certs, r->certs_len);
    r->der_len = body + r->certs_len;
    if (q->status && q->stamp_only && r->stamp != 0 && r->stamp != OCSP_STAMP_STALE) {
        out->status_found = true; /* the record it was signed for is the one stored (Backing) */
        out->status.stamp = r->stamp;
    } else if (q->status) {
        sst = ocsp_status_txn_get(s, t, q->issuer_id, q->serial, q->serial_len, &out->status);
        if (sst != ST_OK && sst != ST_NOTFOUND) {
            st = sst;
            goto out;
        }
        out->status_found = sst == ST_OK;
    }
out:
    store_txn_abort(t);
    if (st != ST_OK) {
        free(r->der);
        r->der = NULL;
    }
    return st;
}

/* A value of schema 3: header, body (the DER without its elided certs), padding. */
static uint8_t *
ocsp_response_value(const struct ocsp_response_put *r, const uint8_t *body, size_t body_len,
                    size_t *len)
{
    uint8_t *v;

    *len = RESP_HDR_LEN + body_len + r->pad_len;
    if ((v = malloc(*len)) == NULL)
        return NULL;
    v[0] = RESP_VERSION;
    v[1] = r->certs_len > 0 ? RESP_FLAG_CERTS : 0;
    v[2] = (uint8_t)r->pad_len;
    v[3] = (uint8_t)(r->pad_len >> 8);
    put_le32(v + 4, (uint32_t)r->certs_len);
    put_le64(v + 8, r->stamp);
    put_le64(v + 16, (uint64_t)r->this_update);
    put_le64(v + 24, (uint64_t)r->next_update);
    put_le64(v + 32, (uint64_t)r->produced_at);
    memcpy(v + 40, r->signer_fp, OCSP_FP_LEN);
    memcpy(v + 40 + OCSP_FP_LEN, r->etag, OCSP_FP_LEN);
    memcpy(v + RESP_HDR_LEN, body, body_len);
    memset(v + RESP_HDR_LEN + body_len, 0, r->pad_len);
    return v;
}

int
ocsp_store_response_put_txn(struct ocsp_store *s, struct store_txn *t,
                            const struct ocsp_response_put *r)
{
    uint8_t key[OCSP_RESP_KEY_MAX];
    struct ocsp_status cur_status;
    size_t klen, len;
    uint8_t *v;
    int st;

    /* only a form ocsp_answers_unback_txn marks (the Backing rule) */
    if (r->der == NULL || r->der_len == 0 || r->issuer_id == NULL || !ocsp_form_known(r->form) ||
        r->certs_len >= r->der_len || r->certs_len > UINT32_MAX || r->pad_len > UINT16_MAX ||
        r->stamp == OCSP_STAMP_STALE ||
        (klen = ocsp_response_key(r->issuer_id, r->serial, r->serial_len, r->form, key)) == 0)
        return ST_INVALID;
    /* signed for the record stored now, or not written (the Backing rule): the record may
     * have changed or gone while the answer was being signed */
    st = ocsp_status_txn_get(s, t, r->issuer_id, r->serial, r->serial_len, &cur_status);
    if (st != ST_OK && st != ST_NOTFOUND)
        return st;
    if (st == ST_OK ? cur_status.stamp != r->stamp : r->stamp != 0)
        return ST_NOTFOUND;
    if (r->replace) {
        const void *cur = NULL;
        size_t cur_len = 0;

        if ((st = store_txn_get(t, s->db[DB_RESPONSES], key, klen, &cur, &cur_len)) != ST_OK)
            return st; /* ST_NOTFOUND: purged since it was picked, not written back */
    }
    if ((v = ocsp_response_value(r, r->der, r->der_len - r->certs_len, &len)) == NULL)
        return ST_NOMEM;
    st = ST_EXISTS;
    if (r->append) /* ST_EXISTS when the key does not sort after the last one */
        st = store_txn_append(t, s->db[DB_RESPONSES], key, klen, v, len);
    if (st == ST_EXISTS)
        st = store_txn_put(t, s->db[DB_RESPONSES], key, klen, v, len, false);
    free(v);
    return st;
}

/* The stored issuers' ids (few), to resolve the prefix of a key. */
struct id_list {
    uint8_t (*ids)[OCSP_ISSUER_ID_LEN];
    size_t n, cap;
    bool failed;
};

static bool
ocsp_id_collect(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct id_list *l = ctx;

    (void)val;
    (void)vlen;
    if (klen != OCSP_ISSUER_ID_LEN)
        return true;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        uint8_t(*ids)[OCSP_ISSUER_ID_LEN] = realloc(l->ids, cap * sizeof(*ids));

        if (ids == NULL) {
            l->failed = true;
            return false;
        }
        l->ids = ids;
        l->cap = cap;
    }
    memcpy(l->ids[l->n++], key, OCSP_ISSUER_ID_LEN);
    return true;
}

static int
ocsp_id_list_load(struct ocsp_store *s, struct id_list *l)
{
    int st = store_walk(s->st, s->db[DB_ISSUERS], NULL, 0, ocsp_id_collect, l);

    return st != ST_OK ? st : l->failed ? ST_NOMEM : ST_OK;
}

static const uint8_t *
ocsp_id_list_find(const struct id_list *l, const uint8_t *prefix)
{
    for (size_t i = 0; i < l->n; i++)
        if (memcmp(l->ids[i], prefix, OCSP_RESP_KEY_ID_LEN) == 0)
            return l->ids[i];
    return NULL;
}

/* The upgrade to schema 4 (ocsp_schema_check): answers an older release left signed for a
 * status record that changed or went since (they were told apart when read) are dropped, so
 * that the Backing rule (ocsp_store.h) holds; they are signed again on demand or by the
 * refresher. A chunk of keys with their stamps is read, then checked against the status
 * records in one write transaction (a commit that changed nothing writes nothing): dropping
 * is always safe, so a stamp read before the write transaction is good enough. */
struct unbacked_chunk {
    uint8_t keys[UPGRADE_CHUNK][OCSP_RESP_KEY_MAX];
    size_t klen[UPGRADE_CHUNK];
    uint64_t stamp[UPGRADE_CHUNK];
    size_t n;
    uint8_t last[OCSP_RESP_KEY_MAX];
    size_t last_len;
    bool skip_first;
};

static bool
ocsp_unbacked_collect(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct unbacked_chunk *c = ctx;
    const uint8_t *v = val;

    if (walk_resumed_at(&c->skip_first, key, klen, c->last, c->last_len))
        return true;
    if (klen > OCSP_RESP_KEY_MAX)
        return true; /* not one of ours: never read as an answer */
    memcpy(c->last, key, klen);
    c->last_len = klen;
    if (klen < OCSP_RESP_KEY_ID_LEN + 2 || vlen < RESP_HDR_LEN || v[0] != RESP_VERSION)
        return true; /* not a schema-3 answer: refused when read */
    c->stamp[c->n] = get_le64(v + 8);
    if (c->stamp[c->n] == 0 || c->stamp[c->n] == OCSP_STAMP_STALE)
        return true; /* not trusted without its record, or marked */
    memcpy(c->keys[c->n], key, klen);
    c->klen[c->n] = klen;
    return ++c->n < UPGRADE_CHUNK;
}

static int
ocsp_unbacked_apply(struct ocsp_store *s, const struct id_list *ids, struct unbacked_chunk *c,
                    size_t *dropped)
{
    struct store_txn *t = NULL;
    struct ocsp_stored_response r;
    struct ocsp_status cur;
    size_t n = 0;
    int st;

    if ((st = store_txn_begin(s->st, true, &t)) != ST_OK)
        return st;
    for (size_t i = 0; i < c->n && st == ST_OK; i++) {
        const uint8_t *id = ocsp_id_list_find(ids, c->keys[i]);

        if (id != NULL && ocsp_response_key_parse(c->keys[i], c->klen[i], &r)) {
            uint8_t skey[OCSP_ISSUER_ID_LEN + OCSP_SERIAL_MAX];
            const void *sv = NULL;
            size_t sn = 0;

            st = store_txn_get(t, s->db[DB_STATUS], skey,
                               ocsp_status_key(id, r.serial, r.serial_len, skey), &sv, &sn);
            if (st == ST_OK && ocsp_status_decode(sv, sn, &cur) == ST_OK &&
                cur.stamp == c->stamp[i])
                continue; /* backed */
            if (st != ST_OK && st != ST_NOTFOUND)
                break;
        }
        /* its record changed or went (or does not decode: logged), or no stored issuer's:
         * never served */
        st = store_txn_del(t, s->db[DB_RESPONSES], c->keys[i], c->klen[i]);
        if (st == ST_OK)
            n++;
        else if (st == ST_NOTFOUND)
            st = ST_OK;
    }
    if (st != ST_OK) {
        store_txn_abort(t);
        return st;
    }
    if ((st = store_txn_commit(t)) == ST_OK) {
        *dropped += n;
        if (ocsp_store_upgrade_chunk_hook != NULL)
            ocsp_store_upgrade_chunk_hook();
    }
    return st;
}

void (*ocsp_store_upgrade_chunk_hook)(void);

static int
ocsp_upgrade_unbacked(struct ocsp_store *s, size_t *dropped)
{
    struct unbacked_chunk *c = calloc(1, sizeof(*c));
    struct id_list ids = {0};
    int st;

    if (c == NULL)
        return ST_NOMEM;
    if ((st = ocsp_id_list_load(s, &ids)) != ST_OK)
        goto out;
    for (;;) {
        c->n = 0;
        c->skip_first = c->last_len > 0;
        st = store_walk(s->st, s->db[DB_RESPONSES], c->last_len > 0 ? c->last : NULL, c->last_len,
                        ocsp_unbacked_collect, c);
        if (st != ST_OK || (c->n > 0 && (st = ocsp_unbacked_apply(s, &ids, c, dropped)) != ST_OK) ||
            c->n < UPGRADE_CHUNK)
            break;
    }
out:
    free(ids.ids);
    free(c);
    return st;
}

struct response_walk {
    ocsp_response_walk_fn fn;
    void *ctx;
    struct id_list ids;
    int st;
};

static bool
ocsp_response_walk_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct response_walk *w = ctx;
    struct ocsp_stored_response r;
    const uint8_t *id;
    size_t body;

    memset(&r, 0, sizeof(r));
    if (!ocsp_response_key_parse(key, klen, &r) || (id = ocsp_id_list_find(&w->ids, key)) == NULL)
        return true; /* no issuer of ours */
    if ((w->st = ocsp_response_decode(val, vlen, &r, &body)) != ST_OK)
        return false;
    memcpy(r.issuer_id, id, OCSP_ISSUER_ID_LEN);
    return w->fn(w->ctx, &r);
}

int
ocsp_store_response_walk_from(struct ocsp_store *s, const uint8_t *start, size_t start_len,
                              ocsp_response_walk_fn fn, void *ctx)
{
    struct response_walk w = {fn, ctx, {NULL, 0, 0, false}, ST_OK};
    int st = ocsp_id_list_load(s, &w.ids);

    if (st == ST_OK)
        st = store_walk(s->st, s->db[DB_RESPONSES], start_len > 0 ? start : NULL, start_len,
                        ocsp_response_walk_one, &w);
    free(w.ids.ids);
    return st != ST_OK ? st : w.st;
}

int
ocsp_store_response_walk(struct ocsp_store *s, ocsp_response_walk_fn fn, void *ctx)
{
    return ocsp_store_response_walk_from(s, NULL, 0, fn, ctx);
}

/* ---- purging (issue 10 §3; LW-09, EID-06) ---- */

#define PURGE_CHUNK 4096

/* One chunk of `responses` keys of one issuer: a range scan from its prefix (or from the
 * last key of the chunk before), at most PURGE_CHUNK entries per read transaction. */
struct purge_chunk {
    const uint8_t *id;
    uint8_t keys[PURGE_CHUNK][OCSP_RESP_KEY_MAX];
    size_t klen[PURGE_CHUNK];
    uint64_t stamp[PURGE_CHUNK]; /* of the record it was signed for (0: none) */
    size_t n;
    uint8_t last[OCSP_RESP_KEY_MAX];
    size_t last_len; /* last key seen (the next chunk starts after it) */
    bool skip_first; /* the walk restarts at last: skip it */
    bool done;       /* past the issuer's keys */
    int st;          /* of the walk: a value that does not decode */
};

static bool
ocsp_purge_collect(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct purge_chunk *c = ctx;
    struct ocsp_stored_response r;
    size_t off;

    if (walk_resumed_at(&c->skip_first, key, klen, c->last, c->last_len))
        return true;
    if (klen < OCSP_RESP_KEY_ID_LEN || memcmp(key, c->id, OCSP_RESP_KEY_ID_LEN) != 0) {
        c->done = true;
        return false;
    }
    if (klen > OCSP_RESP_KEY_MAX)
        return true; /* not one of ours */
    memcpy(c->last, key, klen);
    c->last_len = klen;
    if ((c->st = ocsp_response_decode(val, vlen, &r, &off)) != ST_OK)
        return false;
    memcpy(c->keys[c->n], key, klen);
    c->klen[c->n] = klen;
    c->stamp[c->n] = r.stamp;
    return ++c->n < PURGE_CHUNK;
}

/* Drop the collected answers whose certificate expired before `before`, and those signed for
 * a record that is gone (a re-sign that raced a status purge: never served, as
 * ocsp_try_stored wants stamp 0 without a record). Answers signed without a record (stamp 0)
 * stay. */
static int
ocsp_purge_chunk_apply(struct ocsp_store *s, struct purge_chunk *c, int64_t before, size_t *n)
{
    struct store_txn *t = NULL;
    struct ocsp_stored_response r;
    struct ocsp_status st;
    size_t dropped = 0;
    int rc;

    if (c->n == 0)
        return ST_OK;
    if ((rc = wtxn_begin(s, &t)) != ST_OK)
        return rc;
    for (size_t i = 0; i < c->n; i++) {
        if (!ocsp_response_key_parse(c->keys[i], c->klen[i], &r))
            continue;
        rc = ocsp_status_txn_get(s, t, c->id, r.serial, r.serial_len, &st);
        if (rc == ST_NOTFOUND && c->stamp[i] == 0)
            continue; /* signed without a record: nothing says it expired (it stays) */
        if (rc != ST_OK && rc != ST_NOTFOUND)
            goto fail;
        if (rc == ST_OK && (st.not_after == 0 || st.not_after >= before))
            continue;
        rc = store_txn_del(t, s->db[DB_RESPONSES], c->keys[i], c->klen[i]);
        if (rc == ST_NOTFOUND)
            continue;
        if (rc != ST_OK)
            goto fail;
        dropped++;
    }
    if ((rc = wtxn_commit(s, t)) == ST_OK)
        *n += dropped;
    return rc;
fail:
    wtxn_release(s, t, rc);
    return rc;
}

int
ocsp_store_responses_purge(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN],
                           int64_t before, size_t *n)
{
    struct purge_chunk *c = calloc(1, sizeof(*c));
    int st = ST_OK;

    *n = 0;
    if (c == NULL)
        return ST_NOMEM;
    c->id = id;
    memcpy(c->last, id, OCSP_RESP_KEY_ID_LEN);
    c->last_len = OCSP_RESP_KEY_ID_LEN; /* no key is the bare prefix: nothing skipped */
    for (;;) {
        c->n = 0;
        c->skip_first = true;
        c->st = ST_OK;
        st = store_walk(s->st, s->db[DB_RESPONSES], c->last, c->last_len, ocsp_purge_collect, c);
        if (st == ST_OK)
            st = c->st;
        if (st != ST_OK || (st = ocsp_purge_chunk_apply(s, c, before, n)) != ST_OK || c->done ||
            c->n < PURGE_CHUNK)
            break;
    }
    free(c);
    return st;
}

void (*ocsp_store_purge_chunk_hook)(struct ocsp_store *s, void *arg);

struct status_purge {
    int64_t cutoff;
    uint8_t serial[PURGE_CHUNK][OCSP_SERIAL_MAX];
    size_t slen[PURGE_CHUNK];
    size_t n, scanned;
    uint8_t last[OCSP_SERIAL_MAX];
    size_t last_len;
};

static bool
ocsp_status_purge_collect(void *ctx, const uint8_t *serial, size_t serial_len,
                          const struct ocsp_status *st)
{
    struct status_purge *p = ctx;

    memcpy(p->last, serial, serial_len);
    p->last_len = serial_len;
    p->scanned++;
    if (st->not_after != 0 && st->not_after < p->cutoff) {
        memcpy(p->serial[p->n], serial, serial_len);
        p->slen[p->n++] = serial_len;
    }
    return p->scanned < PURGE_CHUNK;
}

/* The issuer's cutoff as stored now, read in the write transaction that removes: the
 * settings may have changed since the purge started (marked qualified, purge-status-after
 * changed or removed by a concurrent ocspctl issuer add): ST_INVALID when it no longer
 * allows purging (LW-09, EID-06). */
static int
ocsp_status_purge_cutoff_txn(struct ocsp_store *s, struct store_txn *t, const uint8_t *id,
                             int64_t now, int64_t *cutoff)
{
    struct ocsp_issuer_rec rec;
    const char *why = NULL;
    const void *v = NULL;
    size_t n = 0;
    int st = store_txn_get(t, s->db[DB_ISSUERS], id, OCSP_ISSUER_ID_LEN, &v, &n);

    if (st != ST_OK || (st = ocsp_issuer_decode(v, n, &rec)) != ST_OK)
        return st;
    if (rec.purge_status_after == 0 || ocsp_issuer_purge_check(&rec, &why) != ST_OK) {
        log_err("ocsp_store: issuer %s: status purging stopped, the settings changed: %s", rec.name,
                why != NULL ? why : "purge_status_after unset");
        st = ST_INVALID;
    } else {
        *cutoff = rec.purge_status_after > (uint64_t)INT64_MAX / 2
                      ? INT64_MIN
                      : now - (int64_t)rec.purge_status_after;
    }
    ocsp_issuer_rec_clear(&rec);
    return st;
}

/* Remove one status record if, as stored now, it is still past the cutoff; counted in *n. */
static int
ocsp_status_purge_one(struct ocsp_store *s, struct store_txn *t, const uint8_t *id,
                      const uint8_t *serial, size_t serial_len, int64_t cutoff, size_t *n,
                      size_t *answers)
{
    uint8_t key[OCSP_ISSUER_ID_LEN + OCSP_SERIAL_MAX];
    struct ocsp_status cur;
    int st = ocsp_status_txn_get(s, t, id, serial, serial_len, &cur);

    if (st == ST_NOTFOUND)
        return ST_OK;
    if (st != ST_OK)
        return st;
    if (cur.not_after == 0 || cur.not_after >= cutoff)
        return ST_OK;
    st = store_txn_del(t, s->db[DB_STATUS], key, ocsp_status_key(id, serial, serial_len, key));
    if (st != ST_OK)
        return st == ST_NOTFOUND ? ST_OK : st;
    (*n)++;
    /* with its answers (the Backing rule): one re-signed since the answers were purged */
    return ocsp_answers_unback_txn(s, t, id, serial, serial_len, true, answers);
}

int
ocsp_store_status_purge(struct ocsp_store *s, const uint8_t id[OCSP_ISSUER_ID_LEN], int64_t now,
                        size_t *n, size_t *answers)
{
    struct ocsp_issuer_rec rec;
    struct status_purge *p = NULL;
    struct store_txn *t = NULL;
    const char *why = NULL;
    size_t removed = 0, dropped = 0;
    int st;

    *n = *answers = 0;
    if ((st = ocsp_store_issuer_get(s, id, &rec)) != ST_OK)
        return st;
    if (rec.purge_status_after == 0 || ocsp_issuer_purge_check(&rec, &why) != ST_OK) {
        log_err("ocsp_store: issuer %s: status purging refused: %s", rec.name,
                why != NULL ? why : "the issuer does not allow it (purge_status_after unset)");
        ocsp_issuer_rec_clear(&rec);
        return ST_INVALID;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL) {
        ocsp_issuer_rec_clear(&rec);
        return ST_NOMEM;
    }
    p->cutoff = rec.purge_status_after > (uint64_t)INT64_MAX / 2
                    ? INT64_MIN
                    : now - (int64_t)rec.purge_status_after;
    ocsp_issuer_rec_clear(&rec);
    /* their answers first (while the records still say they expired) */
    if ((st = ocsp_store_responses_purge(s, id, p->cutoff, answers)) != ST_OK)
        goto out;
    for (;;) {
        p->n = p->scanned = 0;
        st = ocsp_store_status_walk_from(s, id, p->last_len > 0 ? p->last : NULL, p->last_len,
                                         ocsp_status_purge_collect, p);
        if (st != ST_OK)
            break;
        if (p->n > 0) {
            if (ocsp_store_purge_chunk_hook != NULL)
                ocsp_store_purge_chunk_hook(s, NULL);
            if ((st = wtxn_begin(s, &t)) != ST_OK ||
                (st = ocsp_status_purge_cutoff_txn(s, t, id, now, &p->cutoff)) != ST_OK)
                break;
            for (size_t i = 0; i < p->n && st == ST_OK; i++)
                st = ocsp_status_purge_one(s, t, id, p->serial[i], p->slen[i], p->cutoff, &removed,
                                           &dropped);
            if (st != ST_OK)
                break;
            st = wtxn_commit(s, t);
            t = NULL;
            if (st != ST_OK)
                break;
            *n += removed;
            *answers += dropped;
            removed = dropped = 0;
        }
        if (p->scanned < PURGE_CHUNK)
            break;
    }
out:
    wtxn_release(s, t, st);
    free(p);
    return st;
}

/* ---- pending changes ---- */

static int
ocsp_change_take1(struct ocsp_store *s, struct store_txn *t, uint64_t seq, struct ocsp_change *c)
{
    const void *v = NULL;
    size_t n = 0;
    uint8_t key[8];
    int st;

    put_be64(key, seq);
    st = store_txn_get(t, s->db[DB_CHANGES], key, 8, &v, &n);
    if (st != ST_OK)
        return st;
    if (n <= OCSP_ISSUER_ID_LEN || n > OCSP_ISSUER_ID_LEN + OCSP_SERIAL_MAX)
        return ST_STORE;
    memcpy(c->issuer_id, v, OCSP_ISSUER_ID_LEN);
    c->serial_len = n - OCSP_ISSUER_ID_LEN;
    memcpy(c->serial, (const uint8_t *)v + OCSP_ISSUER_ID_LEN, c->serial_len);
    c->form = 0;
    return store_txn_del(t, s->db[DB_CHANGES], key, 8);
}

/* The queue of pending changes: entries head..next-1. */
static int
ocsp_changes_range(struct ocsp_store *s, struct store_txn *t, uint64_t *head, uint64_t *next)
{
    int st = ocsp_meta_u64(t, s->db[DB_META], "changes_head", head);

    return st == ST_OK ? ocsp_meta_u64(t, s->db[DB_META], "changes_next", next) : st;
}

int
ocsp_store_changes_pending(struct ocsp_store *s, bool *pending)
{
    struct store_txn *t = NULL;
    uint64_t head = 0, next = 0;
    int st;

    *pending = false;
    if ((st = store_txn_begin(s->st, false, &t)) != ST_OK)
        return st;
    if ((st = ocsp_changes_range(s, t, &head, &next)) == ST_OK)
        *pending = head < next;
    store_txn_abort(t);
    return st;
}

int
ocsp_store_changes_take_txn(struct ocsp_store *s, struct store_txn *t, struct ocsp_change *out,
                            size_t max, size_t *n)
{
    uint64_t head = 0, next = 0;
    int st;

    *n = 0;
    if ((st = ocsp_changes_range(s, t, &head, &next)) != ST_OK)
        return st;
    /* nothing pending: nothing written, so the transaction commits as a no-op (LMDB keeps its
     * last transaction id; the refresher asks 4 times a second, and each id moved made every
     * front-cache hit read its status record again) */
    if (head >= next)
        return ST_OK;
    while (*n < max && head < next) {
        st = ocsp_change_take1(s, t, head, &out[*n]);
        head++;
        if (st == ST_NOTFOUND)
            continue;
        if (st != ST_OK)
            return st;
        (*n)++;
    }
    return ocsp_meta_put_u64(t, s->db[DB_META], "changes_head", head);
}
