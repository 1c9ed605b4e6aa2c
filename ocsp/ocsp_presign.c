/*
 * ocsp_presign: pre-signing every known certificate's response (see ocsp_presign.h).
 */
#include "ocsp/ocsp_presign.h"
#include "common/log.h"
#include "common/status.h"
#include "ocsp/ocsp_responder.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PRESIGN_CHUNK 1024

/* One chunk of serials, collected by a status walk that then ends, so that no read
 * transaction is held while the chunk is signed and stored (LMDB could not reuse the pages
 * the new responses free, and a re-presign of everything would need twice the map). */
struct presign_ctx {
    const uint8_t *issuer_id;
    struct ocsp_change *buf;
    size_t n;
    uint8_t last[OCSP_SERIAL_MAX]; /* last serial seen: where the next walk resumes */
    size_t last_len;
    size_t scanned; /* serials seen by this walk (a chunk ends after PRESIGN_CHUNK) */
    int64_t now;
    size_t expired; /* serials skipped: their certificate has expired */
};

static bool
presign_serial(void *ctx, const uint8_t *serial, size_t serial_len, const struct ocsp_status *st)
{
    struct presign_ctx *pc = ctx;
    struct ocsp_change *c = &pc->buf[pc->n];

    if (serial_len > sizeof(c->serial))
        return true; /* never stored (the store bounds serials) */
    memcpy(pc->last, serial, serial_len);
    pc->last_len = serial_len;
    pc->scanned++;
    if (st->not_after != 0 && st->not_after < pc->now) {
        /* expired: its answers are signed on demand (`ocspctl purge --answers` drops those
         * stored before), not kept for a certificate nobody should rely on any more */
        pc->expired++;
        return pc->scanned < PRESIGN_CHUNK;
    }
    memcpy(c->issuer_id, pc->issuer_id, OCSP_ISSUER_ID_LEN);
    memcpy(c->serial, serial, serial_len);
    c->serial_len = serial_len;
    c->form = 0;
    pc->n++;
    return pc->scanned < PRESIGN_CHUNK;
}

/* Pre-sign every serial of one issuer, chunk by chunk; *stored counts the responses. */
static int
presign_issuer(struct ocsp_store *st, struct ocsp_responder *r, struct presign_ctx *pc,
               size_t *stored)
{
    size_t count;
    bool more = true;
    int rc = ST_OK, frc;

    pc->last_len = 0;
    while (more) {
        pc->n = pc->scanned = 0;
        rc = ocsp_store_status_walk_from(st, pc->issuer_id, pc->last_len > 0 ? pc->last : NULL,
                                         pc->last_len, presign_serial, pc);
        if (rc != ST_OK) {
            ocsp_responder_presign_flush(r, &count);
            *stored += count;
            return rc;
        }
        more = pc->scanned == PRESIGN_CHUNK;
        count = 0;
        /* the previous chunk's writes are committed while this one is signed: rc and count
         * are theirs */
        rc = pc->n > 0 ? ocsp_responder_presign(r, pc->buf, pc->n, &count) : ST_OK;
        *stored += count;
        if (rc != ST_OK)
            break;
    }
    count = 0;
    frc = ocsp_responder_presign_flush(r, &count); /* the last chunk's writes */
    if (rc == ST_OK)
        rc = frc;
    *stored += count;
    if (rc == ST_FULL) /* headroom reached: the space left is for revocations */
        return rc;
    return rc == ST_OK ? ST_OK : ST_ERR;
}

struct issuer_pick {
    const char *name;
    uint8_t ids[OCSP_MAX_ISSUERS][OCSP_ISSUER_ID_LEN];
    size_t n;
};

static bool
presign_pick(void *ctx, const struct ocsp_issuer_rec *rec)
{
    struct issuer_pick *ip = ctx;

    if ((ip->name == NULL || strcmp(ip->name, rec->name) == 0) && ip->n < OCSP_MAX_ISSUERS)
        memcpy(ip->ids[ip->n++], rec->id, OCSP_ISSUER_ID_LEN);
    return true;
}

int
ocsp_presign_run(const struct ocsp_config *cfg, struct ocsp_store *st, const char *issuer_name,
                 size_t *count, size_t *expired)
{
    struct issuer_pick ip = {.name = issuer_name, .n = 0};
    struct presign_ctx pc = {.now = (int64_t)time(NULL)};
    struct ocsp_responder *r = NULL;
    int rc = ST_OK;

    *count = *expired = 0;
    if ((rc = ocsp_store_issuer_walk(st, presign_pick, &ip)) != ST_OK)
        return rc;
    if (ip.n == 0) {
        log_err("presign: no issuer%s%s in the store", issuer_name ? " named " : "",
                issuer_name ? issuer_name : "");
        return ST_NOTFOUND;
    }
    /* every chunk's signed answers are held until written in key order, then freed: keep that
     * memory instead of giving it back and faulting it in again for the next chunk (as
     * import-index does) */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
    r = ocsp_responder_new(cfg, st, true);
    pc.buf = calloc(PRESIGN_CHUNK, sizeof(*pc.buf));
    if (r == NULL || pc.buf == NULL) {
        rc = r == NULL ? ST_CONFIG : ST_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < ip.n && rc == ST_OK; i++) {
        pc.issuer_id = ip.ids[i];
        rc = presign_issuer(st, r, &pc, count);
    }
out:
    *expired = pc.expired;
    free(pc.buf);
    ocsp_responder_free(r);
    return rc;
}
