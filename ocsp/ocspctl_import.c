/*
 * ocspctl_import: feed the status store from the CA (DESIGN D7): `import-crl` takes a full or
 * delta CRL (RFC 5280 §5: signature checked with the issuer's key, crlNumber §5.2.3 never going
 * back, deltaCRLIndicator §5.2.4, reasonCode §5.3.1 with certificateHold as a hold and
 * removeFromCRL in a delta releasing it) and marks the issuer CRL-fed, so that ocspd answers
 * tryLater once the CRL is past its nextUpdate (STS-12); `import-index` takes an OpenSSL `ca`
 * database, which gives issued-serial knowledge (OCSP-13) and revocations. Every entry goes
 * through ocsp_store_status_set, so EID-07 holds for imports too: a definitive revocation is
 * never undone by a later CRL or index (refused, journalled, exit 3).
 */
#include "common/log.h"
#include "common/status.h"
#include "ocsp/ocsp_journal.h"
#include "ocsp/ocspctl_int.h"

#include <limits.h>
#include <malloc.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#define CRL_FILE_MAX ((size_t)256 << 20)
#define INDEX_LINE_MAX 8192
#define INDEX_BAD_SHOWN 10 /* bad index lines named, at most (then only counted) */
/* How far ahead of this host's clock a CRL's thisUpdate may be (clock skew between hosts). */
#define CRL_FUTURE_SKEW 300
/* How far ahead of this clock an index line's revocation date may be (as `ocspctl revoke
 * --time`): a revocation dated later would let a relying party take the certificate as not
 * yet revoked for a signature made before that date. */
#define INDEX_FUTURE_SKEW 60

/* Entries per write transaction (index lines, CRL entries): bounded memory (LMDB keeps a
 * transaction's dirty pages in memory) and progress kept when an import stops. OCSPCTL_IMPORT_CHUNK
 * overrides it. */
#define INDEX_CHUNK ((size_t)256 * 1024)
static size_t
env_size(const char *name, size_t dflt)
{
    const char *e = getenv(name);
    char *end = NULL;
    unsigned long long v;

    if (e == NULL || e[0] == '\0')
        return dflt;
    v = strtoull(e, &end, 10);
    return end != NULL && *end == '\0' && v >= 1 && v <= (1ull << 30) ? (size_t)v : dflt;
}

static const char import_usage[] =
    "usage: ocspctl import-crl ISSUER FILE     (DER or PEM; full or delta CRL)\n"
    "       ocspctl import-index ISSUER INDEX_TXT   (OpenSSL `ca` database)\n"
    "The CRL signature must verify with the issuer's key; a CRL with a lower crlNumber than\n"
    "the last imported one (or one whose import stopped part-way) is refused, and so is one\n"
    "whose thisUpdate is more than 5 minutes ahead of this clock. A partition CRL (IDP\n"
    "distributionPoint) or one limited to some reasons or certificate kinds releases no hold\n"
    "it does not list. A delta CRL due before\n"
    "the full CRL brings the issuer's nextUpdate forward (STS-12). Changes that would undo or\n"
    "weaken a revocation are refused (exit 3) and journalled. An index with a line that is\n"
    "not an index line, or with no entry at all, is an error (exit 1), and nothing of it is\n"
    "imported.\n";

void
ocspctl_import_usage(FILE *f)
{
    fputs(import_usage, f);
}

/* Counters of one import, journalled at the end. */
struct import_count {
    size_t entries, refused, failed, released, skipped;
    /* headroom (DESIGN D10): good entries are background writes; they stop when the bytes
     * left below fill_limit are used up, revocations and holds never do */
    double room;
    size_t not_imported;
    bool revocations_only; /* the second pass: good entries did not fit, none goes in */
    bool aborted;          /* stopped: not all of the file was committed */
    size_t committed;      /* entries committed when it stopped (whole chunks) */
    size_t done_released, done_refused; /* released and refused in those chunks */
};

/* What one `good` index entry may add to the store, for the headroom check. Measured: 149
 * bytes of status pages per entry over 1 M random serials (no journal line, no change entry
 * since issue 10 §3; it was 592 with them); kept at the earlier, conservative figure, which
 * also covers the pages a chunk copies before it commits. */
#define IMPORT_GOOD_BYTES 640.0

/* Stored answers a chunk may mark stale before it is committed early (review13): each status
 * change of a pre-signed serial marks its answers in the chunk's write transaction (the
 * Backing rule, ocsp_store.h), and LMDB keeps a copy of each page so touched until the
 * commit; a chunk of 256 K revocations would need room for every answer page they touch
 * (measured: a 24 MiB store under half full could not take 7000 in one). At most 4 K pages
 * (16 MiB) this way, about 512 (2 MiB) with adjacent serials; a commit per 2 K revocations.
 * OCSPCTL_IMPORT_MARKS overrides. */
#define IMPORT_MARK_CHUNK ((size_t)4 * 1024)

static void
count_result(struct import_count *n, int st, const char *hex)
{
    if (st == ST_OK)
        return;
    if (st == ST_EXISTS) {
        n->refused++;
        fprintf(stderr, "ocspctl: %s: refused: definitively revoked (EID-07)\n", hex);
    } else {
        n->failed++;
        fprintf(stderr, "ocspctl: %s: %s\n", hex, status_str(st));
    }
}

static int
import_open(struct ctl *c, int argc, char **argv, struct ocsp_issuer_rec *rec, X509 **ca)
{
    const unsigned char *p;

    memset(rec, 0, sizeof(*rec));
    *ca = NULL;
    if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-') {
        fputs(import_usage, stderr);
        return ST_INVALID;
    }
    if (ocspctl_open(c, true, false) != ST_OK || ocspctl_issuer_find(c, argv[1], rec) != ST_OK)
        return ST_ERR;
    p = rec->cert;
    if ((*ca = d2i_X509(NULL, &p, (long)rec->cert_len)) == NULL) {
        fprintf(stderr, "ocspctl: issuer %s: stored certificate unreadable\n", argv[1]);
        return ST_ERR;
    }
    return ST_OK;
}

/* What an import did, for its journal entry and its summary line. */
struct import_report {
    const char *op; /* "import-crl", "import-index" */
    const char *issuer;
    const char *file;
    const struct import_count *n;
    struct ctl_json *extra; /* the CRL's own facts, or NULL */
};

static int
import_finish(struct ctl *c, const struct import_report *r)
{
    const char *op = r->op, *issuer = r->issuer, *file = r->file;
    const struct import_count *n = r->n;
    struct ctl_json *extra = r->extra;
    struct ctl_json j;

    ocspctl_journal_begin(c, &j, op, issuer);
    ocspctl_json_str(&j, "file", file);
    if (extra != NULL && extra->p != NULL && extra->len > 2)
        ocspctl_json_raw(&j, "crl", ocspctl_json_end(extra));
    ocspctl_json_int(&j, "entries", (long long)n->entries);
    ocspctl_json_int(&j, "released", (long long)n->released);
    ocspctl_json_int(&j, "skipped", (long long)n->skipped);
    ocspctl_json_int(&j, "refused", (long long)n->refused);
    ocspctl_json_int(&j, "failed", (long long)n->failed);
    if (n->not_imported > 0)
        ocspctl_json_int(&j, "not_imported_full", (long long)n->not_imported);
    ocspctl_json_bool(&j, "committed", !n->aborted);
    if (n->aborted && n->committed > 0)
        ocspctl_json_int(&j, "committed_entries", (long long)n->committed);
    if (ocspctl_journal_end(c, &j) != ST_OK)
        return ST_ERR;
    log_audit("ocsp_import", "%s issuer=%s file=%s entries=%zu refused=%zu failed=%zu by=%s", op,
              issuer, file, n->entries, n->refused, n->failed, c->who);
    printf("%s: %zu entries, %zu released, %zu skipped, %zu refused, %zu failed", op, n->entries,
           n->released, n->skipped, n->refused, n->failed);
    if (n->not_imported > 0)
        printf(", %zu not imported (store full)", n->not_imported);
    if (n->aborted && n->committed > 0) {
        printf("; stopped\n");
        fprintf(stderr,
                "ocspctl: %s: stopped: the first %zu entries (in key order) are committed, the "
                "rest is not, nor the issuer's CRL number and times; import the same CRL again "
                "once fixed (entries already imported are unchanged)\n",
                file, n->committed);
    } else {
        printf("%s\n", n->aborted ? "; nothing imported" : "");
    }
    if (n->failed > 0)
        return ST_ERR;
    return n->refused > 0 ? ST_EXISTS : ST_OK;
}

/* ---- CRL ---- */

/* A PEM CRL decoded in one go: the base64 between the first X509 CRL markers, then DER with
 * nothing after it. OpenSSL's PEM reader grows its buffer line by line (measured: 40 % of the
 * import of a 1 M entry CRL, 66 MB). NULL when it is not that (the caller then tries
 * OpenSSL's reader). */
static X509_CRL *
crl_pem_decode(const uint8_t *buf, size_t len)
{
    static const char begin[] = "-----BEGIN X509 CRL-----", end[] = "-----END X509 CRL-----";
    const uint8_t *b = memmem(buf, len, begin, sizeof(begin) - 1), *e;
    EVP_ENCODE_CTX *ctx = NULL;
    const unsigned char *p;
    X509_CRL *crl = NULL;
    uint8_t *der = NULL;
    int n1 = 0, n2 = 0;
    size_t n;

    if (b == NULL)
        return NULL;
    b += sizeof(begin) - 1;
    if ((e = memmem(b, len - (size_t)(b - buf), end, sizeof(end) - 1)) == NULL ||
        (n = (size_t)(e - b)) > INT_MAX / 2 || (der = malloc(n / 4 * 3 + 64)) == NULL ||
        (ctx = EVP_ENCODE_CTX_new()) == NULL)
        goto out;
    EVP_DecodeInit(ctx);
    if (EVP_DecodeUpdate(ctx, der, &n1, b, (int)n) < 0 || EVP_DecodeFinal(ctx, der + n1, &n2) != 1)
        goto out;
    p = der;
    crl = d2i_X509_CRL(NULL, &p, (long)n1 + n2);
    if (crl != NULL && p != der + n1 + n2) {
        X509_CRL_free(crl);
        crl = NULL;
    }
out:
    EVP_ENCODE_CTX_free(ctx);
    free(der);
    ERR_clear_error();
    return crl;
}

X509_CRL *
ocspctl_crl_parse(const uint8_t *buf, size_t len)
{
    const unsigned char *p;
    X509_CRL *crl = NULL;
    BIO *bio = NULL;

    if (len > 10 && memmem(buf, len, "-----BEGIN", 10) != NULL) {
        if ((crl = crl_pem_decode(buf, len)) == NULL && len <= INT_MAX &&
            (bio = BIO_new_mem_buf(buf, (int)len)) != NULL)
            crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
    } else {
        p = buf;
        crl = d2i_X509_CRL(NULL, &p, (long)len);
        if (crl != NULL && p != buf + len) {
            X509_CRL_free(crl);
            crl = NULL;
        }
    }
    ERR_clear_error();
    BIO_free(bio);
    return crl;
}

static X509_CRL *
crl_load(const char *path)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    X509_CRL *crl = NULL;

    if (ocspctl_read_file(path, CRL_FILE_MAX, &buf, &len) != ST_OK)
        return NULL;
    if ((crl = ocspctl_crl_parse(buf, len)) == NULL)
        fprintf(stderr, "ocspctl: %s: not a PEM or DER CRL\n", path);
    free(buf);
    return crl;
}

/* Read an INTEGER extension; false when absent, -1 when unusable. */
static int
crl_int_ext(X509_CRL *crl, int nid, uint64_t *v)
{
    int crit = 0;
    ASN1_INTEGER *a = X509_CRL_get_ext_d2i(crl, nid, &crit, NULL);
    int rc = 0;

    if (a == NULL)
        return crit == -1 ? 0 : -1;
    rc = ASN1_INTEGER_get_uint64(v, a) == 1 ? 1 : -1;
    ASN1_INTEGER_free(a);
    return rc;
}

/* RFC 5280 §5.2.5: a CRL scoped by its IDP is not a complete list (holds absent from it are
 * not released): one limited to some reasons or kinds of certificate, or one naming a
 * distributionPoint (a partition: it lists only the certificates of that point). An indirect
 * CRL may list other issuers' certificates: refused. */
static int
crl_scope(X509_CRL *crl, bool *complete)
{
    int crit = 0;
    ISSUING_DIST_POINT *idp =
        X509_CRL_get_ext_d2i(crl, NID_issuing_distribution_point, &crit, NULL);
    int rc = 0;

    *complete = true;
    if (idp == NULL)
        return crit == -1 ? 0 : -1;
    if (idp->indirectCRL)
        rc = -1;
    *complete = !(idp->distpoint != NULL || idp->onlysomereasons != NULL || idp->onlyuser ||
                  idp->onlyCA || idp->onlyattr);
    ISSUING_DIST_POINT_free(idp);
    return rc;
}

/* Signature, issuer name, extensions and times; error message printed on failure. */
static int
crl_check(X509_CRL *crl, X509 *ca, const char *path, struct crl_info *ci)
{
    memset(ci, 0, sizeof(*ci));
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0 ||
        X509_CRL_verify(crl, X509_get0_pubkey(ca)) != 1) {
        ERR_clear_error();
        fprintf(stderr, "ocspctl: %s: not issued by this issuer (name or signature)\n", path);
        return ST_ERR;
    }
    return ocspctl_crl_info(crl, path, ci);
}

static bool
nid_in(int nid, const int *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == nid)
            return true;
    return false;
}

/* Whether x is critical and not one of the n extensions of set; its OID into oid when so. */
static bool
crl_ext_unknown(X509_EXTENSION *x, const int *set, size_t n, char *oid, int cap)
{
    if (!X509_EXTENSION_get_critical(x) ||
        nid_in(OBJ_obj2nid(X509_EXTENSION_get_object(x)), set, n))
        return false;
    if (OBJ_obj2txt(oid, cap, X509_EXTENSION_get_object(x), 1) <= 0)
        snprintf(oid, (size_t)cap, "?");
    return true;
}

/* RFC 5280 §5.2, §5.3: a CRL with a critical extension, or an entry with a critical entry
 * extension, that this import does not process must not be used to determine any status (an
 * unknown scope would make a partial CRL look complete): refused whole. */
static int
crl_critical_check(X509_CRL *crl, const char *path)
{
    static const int crl_known[] = {NID_crl_number, NID_delta_crl, NID_issuing_distribution_point,
                                    NID_authority_key_identifier};
    static const int entry_known[] = {NID_crl_reason, NID_invalidity_date};
    STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
    char oid[128];

    for (int i = 0; i < X509_CRL_get_ext_count(crl); i++) {
        if (crl_ext_unknown(X509_CRL_get_ext(crl, i), crl_known,
                            sizeof(crl_known) / sizeof(crl_known[0]), oid, sizeof(oid))) {
            fprintf(stderr,
                    "ocspctl: %s: critical CRL extension %s is not processed here: refused "
                    "(RFC 5280 §5.2)\n",
                    path, oid);
            return ST_ERR;
        }
    }
    for (int i = 0; revs != NULL && i < sk_X509_REVOKED_num(revs); i++) {
        X509_REVOKED *r = sk_X509_REVOKED_value(revs, i);

        for (int k = 0; k < X509_REVOKED_get_ext_count(r); k++) {
            if (crl_ext_unknown(X509_REVOKED_get_ext(r, k), entry_known,
                                sizeof(entry_known) / sizeof(entry_known[0]), oid, sizeof(oid))) {
                fprintf(stderr,
                        "ocspctl: %s: critical CRL entry extension %s is not processed here: "
                        "refused (RFC 5280 §5.3)\n",
                        path, oid);
                return ST_ERR;
            }
        }
    }
    return ST_OK;
}

int
ocspctl_crl_info(X509_CRL *crl, const char *path, struct crl_info *ci)
{
    int rc;

    memset(ci, 0, sizeof(*ci));
    if (crl_critical_check(crl, path) != ST_OK)
        return ST_ERR;
    if ((rc = crl_int_ext(crl, NID_crl_number, &ci->number)) < 0 ||
        crl_int_ext(crl, NID_delta_crl, &ci->base) < 0 || crl_scope(crl, &ci->complete) < 0) {
        fprintf(stderr, "ocspctl: %s: bad crlNumber, deltaCRLIndicator or an indirect CRL\n", path);
        return ST_ERR;
    }
    ci->has_number = rc == 1;
    ci->delta = X509_CRL_get_ext_by_NID(crl, NID_delta_crl, -1) >= 0;
    if (ocspctl_asn1_time(X509_CRL_get0_lastUpdate(crl), &ci->this_update) != ST_OK ||
        ocspctl_asn1_time(X509_CRL_get0_nextUpdate(crl), &ci->next_update) != ST_OK) {
        fprintf(stderr, "ocspctl: %s: thisUpdate or nextUpdate missing (STS-12)\n", path);
        return ST_ERR;
    }
    if (ci->delta && !ci->has_number) {
        fprintf(stderr, "ocspctl: %s: delta CRL without crlNumber\n", path);
        return ST_ERR;
    }
    if (ci->this_update > (int64_t)time(NULL) + CRL_FUTURE_SKEW) {
        fprintf(stderr,
                "ocspctl: %s: thisUpdate is in the future (more than %d s ahead of this "
                "clock): refused; check the CA's clock or this host's\n",
                path, CRL_FUTURE_SKEW);
        return ST_ERR;
    }
    return ST_OK;
}

/* RFC 5280 §5.2.3/§5.2.4: never import an older CRL; a delta needs its base imported. An
 * import that stopped part-way (pending: its first chunks are in, the issuer's CRL state is
 * not) counts as imported for this: an older CRL would release its holds and take the issuer
 * back behind the revocations it already wrote. */
static int
crl_order(const struct ocsp_issuer_rec *rec, const struct crl_info *ci, const char *path,
          const struct ocsp_crl_pending *pending)
{
    if (pending != NULL && ((ci->has_number && ci->number < pending->number) ||
                            (!ci->delta && ci->this_update < pending->this_update))) {
        fprintf(stderr,
                "ocspctl: %s: older than the CRL (crlNumber %llu) whose import stopped part-way: "
                "refused; import that CRL, or a newer one, again\n",
                path, (unsigned long long)pending->number);
        return ST_ERR;
    }
    if (ci->delta && (!rec->crl_fed || ci->base > rec->crl_number)) {
        fprintf(stderr,
                "ocspctl: %s: delta CRL on base %llu, but the last imported CRL is %llu "
                "(import the full CRL first)\n",
                path, (unsigned long long)ci->base, (unsigned long long)rec->crl_number);
        return ST_ERR;
    }
    if (rec->crl_fed && ci->has_number && ci->number < rec->crl_number) {
        fprintf(stderr, "ocspctl: %s: crlNumber %llu is older than the last imported %llu\n", path,
                (unsigned long long)ci->number, (unsigned long long)rec->crl_number);
        return ST_ERR;
    }
    if (rec->crl_fed && !ci->delta && ci->this_update < rec->crl_this_update) {
        fprintf(stderr, "ocspctl: %s: thisUpdate older than the last imported full CRL\n", path);
        return ST_ERR;
    }
    return ST_OK;
}

static int
crl_entry_reason(X509_REVOKED *r)
{
    int crit = 0;
    ASN1_ENUMERATED *e = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, &crit, NULL);
    long v;

    if (e == NULL)
        return crit == -1 ? OCSP_REASON_NONE : -1;
    v = ASN1_ENUMERATED_get(e);
    ASN1_ENUMERATED_free(e);
    return v < 0 || v > OCSP_REASON_MAX || !ocsp_reason_valid((unsigned)v) ? -1 : (int)v;
}

int
ocspctl_crl_entry(X509_REVOKED *r, bool delta, struct ctl_serial *s, int *reason, int64_t *when)
{
    *reason = crl_entry_reason(r);
    if (ocspctl_serial_from_asn1(X509_REVOKED_get0_serialNumber(r), s) != ST_OK ||
        ocspctl_asn1_time(X509_REVOKED_get0_revocationDate(r), when) != ST_OK ||
        (*reason == OCSP_REVOKED_STATUS_REMOVEFROMCRL && !delta))
        return ST_INVALID;
    /* a reasonCode that is not a CRLReason (7, above 10, unreadable): the CA still lists the
     * serial as revoked; taken as revoked without a reason, never skipped (a skipped serial
     * would stay good, and a complete CRL would release its hold) */
    if (*reason < 0)
        *reason = OCSP_REASON_NONE;
    return ST_OK;
}

/* One CRL being applied to an issuer's records. */
struct crl_run {
    struct ctl *c;
    const uint8_t *id; /* the issuer's */
    bool delta;
    struct import_count *n;
};

/* One usable CRL entry, kept for the sort. */
struct crl_ent {
    struct ctl_serial s;
    int64_t when;
    int reason;
    size_t seq; /* its place in the CRL */
};

/* Apply one entry (removeFromCRL in a delta releases a hold); flags: OCSP_SET_APPEND when
 * its key is past the store's last one. */
static int
crl_apply_entry(const struct crl_run *run, const struct crl_ent *e, unsigned flags)
{
    struct ctl *c = run->c;
    const uint8_t *id = run->id;
    struct import_count *n = run->n;
    const struct ctl_serial *s = &e->s;
    char hex[2 * OCSP_SERIAL_MAX + 1];
    struct ocsp_status cur;
    int64_t when = e->when;
    int reason = e->reason, st;

    ocspctl_serial_hex(s->b, s->len, hex);
    n->entries++;
    if (reason == OCSP_REVOKED_STATUS_REMOVEFROMCRL) {
        st = ocsp_store_status_get(c->store, id, s->b, s->len, &cur);
        if (st == ST_NOTFOUND || (st == ST_OK && cur.state == OCSP_STATE_GOOD))
            return ST_OK;
        if (st == ST_OK)
            st = ocsp_store_status_set(
                c->store, &(struct ocsp_status_set){
                              id, s->b, s->len, {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, c->who});
        n->released += st == ST_OK;
    } else {
        st = ocsp_store_status_apply(
            c->store,
            &(struct ocsp_status_set){id,
                                      s->b,
                                      s->len,
                                      {reason == OCSP_REVOKED_STATUS_CERTIFICATEHOLD
                                           ? OCSP_STATE_HOLD
                                           : OCSP_STATE_REVOKED,
                                       (uint8_t)reason, when, 0},
                                      c->who},
            flags, NULL);
    }
    count_result(n, st, hex);
    return st;
}

static int
serial_cmp(const void *a, const void *b)
{
    const struct ctl_serial *x = a, *y = b;

    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->b, y->b, x->len);
}

struct hold_scan {
    struct ctl_serial *holds;
    size_t n, cap;
    bool failed;
};

static bool
hold_scan_fn(void *ctx, const uint8_t *serial, size_t len, const struct ocsp_status *st)
{
    struct hold_scan *h = ctx;

    if (st->state != OCSP_STATE_HOLD)
        return true;
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        struct ctl_serial *p = realloc(h->holds, cap * sizeof(*p));
        if (p == NULL) {
            h->failed = true;
            return false;
        }
        h->holds = p;
        h->cap = cap;
    }
    memcpy(h->holds[h->n].b, serial, len);
    h->holds[h->n++].len = len;
    return true;
}

/* A complete full CRL lists every hold: holds it does not list were released. */
static int
crl_release_absent(const struct crl_run *run, struct ctl_serial *listed, size_t nlisted)
{
    struct ctl *c = run->c;
    const uint8_t *id = run->id;
    struct import_count *n = run->n;
    struct hold_scan h = {0};
    char hex[2 * OCSP_SERIAL_MAX + 1];
    int st = ocsp_store_status_walk(c->store, id, hold_scan_fn, &h);

    if (st == ST_OK && h.failed)
        st = ST_NOMEM;
    qsort(listed, nlisted, sizeof(*listed), serial_cmp);
    for (size_t i = 0; st == ST_OK && i < h.n; i++) {
        if (bsearch(&h.holds[i], listed, nlisted, sizeof(*listed), serial_cmp) != NULL)
            continue;
        int rc = ocsp_store_status_set(
            c->store, &(struct ocsp_status_set){id,
                                                h.holds[i].b,
                                                h.holds[i].len,
                                                {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0},
                                                c->who});
        ocspctl_serial_hex(h.holds[i].b, h.holds[i].len, hex);
        n->released += rc == ST_OK;
        count_result(n, rc, hex);
        if (rc != ST_OK && rc != ST_EXISTS)
            st = rc; /* a store error: the transaction is lost, stop */
    }
    free(h.holds);
    return st;
}

/* LMDB's key order of two serials of one issuer (memcmp, then the shorter first); equal
 * serials in the CRL's order. */
static int
crl_ent_cmp(const void *a, const void *b)
{
    const struct crl_ent *x = a, *y = b;
    size_t n = x->s.len < y->s.len ? x->s.len : y->s.len;
    int d = memcmp(x->s.b, y->s.b, n);

    if (d != 0)
        return d;
    if (x->s.len != y->s.len)
        return x->s.len < y->s.len ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Apply the CRL's entries in key order, in chunks of one write transaction each (as
 * import-index: each chunk touches its own key range of the status tree, a chunk past the
 * store's last key is appended); the holds it does not list are released, and the caller
 * updates the issuer, in the last one, left open. ST_STORE: a chunk could not be committed,
 * the batch is gone; n->committed says how many entries are. */
static int
crl_apply(struct ctl *c, X509_CRL *crl, const struct ocsp_issuer_rec *rec,
          const struct crl_info *ci, struct import_count *n)
{
    STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
    int count = revs != NULL ? sk_X509_REVOKED_num(revs) : 0;
    struct crl_ent *ents = calloc((size_t)count + 1, sizeof(*ents));
    struct ctl_serial *listed = calloc((size_t)count + 1, sizeof(*listed));
    size_t ne = 0, chunk = env_size("OCSPCTL_IMPORT_CHUNK", INDEX_CHUNK), start = 0;
    size_t marks = env_size("OCSPCTL_IMPORT_MARKS", IMPORT_MARK_CHUNK);
    struct crl_run run = {c, rec->id, ci->delta, n};
    bool append = false;
    int st = ST_OK;

    if (ents == NULL || listed == NULL) {
        free(ents);
        free(listed);
        return ST_NOMEM;
    }
    for (int i = 0; i < count; i++) {
        struct crl_ent *e = &ents[ne];
        X509_REVOKED *r = sk_X509_REVOKED_value(revs, i);
        char hex[2 * OCSP_SERIAL_MAX + 1];

        if (ocspctl_crl_entry(r, ci->delta, &e->s, &e->reason, &e->when) != ST_OK) {
            n->skipped++;
            fprintf(stderr, "ocspctl: warning: unusable CRL entry skipped\n");
            continue;
        }
        if (e->reason == OCSP_REASON_NONE &&
            X509_REVOKED_get_ext_by_NID(r, NID_crl_reason, -1) >= 0) {
            ocspctl_serial_hex(e->s.b, e->s.len, hex);
            fprintf(stderr,
                    "ocspctl: warning: %s: its reasonCode is not a CRLReason (RFC 5280 §5.3.1): "
                    "revoked without a reason\n",
                    hex);
        }
        if (e->reason != OCSP_REVOKED_STATUS_REMOVEFROMCRL &&
            e->when > ci->this_update + CRL_FUTURE_SKEW) {
            /* revoked after the CRL was issued: not a date the CA could have known, and a
             * relying party would take the certificate as not yet revoked before it */
            ocspctl_serial_hex(e->s.b, e->s.len, hex);
            fprintf(stderr,
                    "ocspctl: %s: revocationDate after the CRL's thisUpdate: the CRL is "
                    "refused\n",
                    hex);
            free(ents);
            free(listed);
            return ST_INVALID;
        }
        e->seq = ne;
        listed[ne++] = e->s;
    }
    qsort(ents, ne, sizeof(*ents), crl_ent_cmp);
    for (size_t i = 0; i < ne; i++) {
        const struct crl_ent *e = &ents[i];
        bool dup = false;
        int rc;

        /* a new chunk every `chunk` entries, or once its changes marked `marks` answers */
        if (i == 0 || i - start >= chunk || ocsp_store_batch_marked(c->store) >= marks) {
            start = i;
            if (i > 0) {
                if (ocsp_store_batch_checkpoint(c->store) != ST_OK) {
                    fprintf(stderr, "ocspctl: a chunk of the CRL could not be committed\n");
                    st = ST_STORE; /* the batch is gone */
                    break;
                }
                n->committed = i;
                n->done_released = n->released;
                n->done_refused = n->refused;
                fprintf(stderr, "ocspctl: %zu CRL entries committed\n", i);
            }
            if (ocsp_store_status_past_last(c->store, rec->id, e->s.b, e->s.len, &append) != ST_OK)
                append = false;
        } else {
            dup = e->s.len == e[-1].s.len && memcmp(e->s.b, e[-1].s.b, e->s.len) == 0;
        }
        rc = crl_apply_entry(&run, e, append && !dup ? OCSP_SET_APPEND : 0);
        if (rc != ST_OK && rc != ST_EXISTS) {
            /* a store error (full, I/O): the chunk's transaction is lost, every entry after
             * it would fail the same way; one message, not one per entry */
            st = rc;
            break;
        }
    }
    if (st == ST_OK && !ci->delta && ci->complete)
        st = crl_release_absent(&run, listed, ne);
    free(ents);
    free(listed);
    return st;
}

static int
crl_update_issuer(struct ctl *c, struct ocsp_issuer_rec *rec, const struct crl_info *ci)
{
    int st;

    if (!ci->delta) {
        rec->crl_this_update = ci->this_update;
        rec->crl_full_next_update = ci->next_update;
        rec->crl_next_update = ci->next_update;
    } else {
        /* STS-12: the status is current until the earlier of the full CRL's nextUpdate and
         * the latest delta's, so a delta feed that stops turns ocspd to tryLater */
        if (rec->crl_full_next_update == 0)
            rec->crl_full_next_update = rec->crl_next_update;
        rec->crl_next_update = ci->next_update < rec->crl_full_next_update
                                   ? ci->next_update
                                   : rec->crl_full_next_update;
    }
    rec->crl_fed = true;
    if (ci->has_number && ci->number > rec->crl_number)
        rec->crl_number = ci->number;
    if ((st = ocsp_store_issuer_put(c->store, rec)) != ST_OK)
        fprintf(stderr, "ocspctl: updating issuer %s: %s\n", rec->name, status_str(st));
    return st;
}

int
ocspctl_cmd_import_crl(struct ctl *c, int argc, char **argv)
{
    struct ocsp_issuer_rec rec;
    struct import_count n = {0};
    struct crl_info ci;
    struct ctl_json info = {0};
    struct ocsp_crl_pending pending;
    X509_CRL *crl = NULL;
    X509 *ca = NULL;
    int rc = import_open(c, argc, argv, &rec, &ca), pst;

    if (rc != ST_OK)
        goto out;
    rc = ST_ERR;
    if ((crl = crl_load(argv[2])) == NULL || crl_check(crl, ca, argv[2], &ci) != ST_OK)
        goto out;
    if ((pst = ocsp_store_crl_pending_get(c->store, rec.id, &pending)) != ST_OK &&
        pst != ST_NOTFOUND) {
        fprintf(stderr, "ocspctl: issuer %s: %s\n", rec.name, status_str(pst));
        goto out;
    }
    if (crl_order(&rec, &ci, argv[2], pst == ST_OK ? &pending : NULL) != ST_OK)
        goto out;
    if (ci.next_update <= time(NULL))
        fprintf(stderr,
                "ocspctl: warning: %s is past its nextUpdate: ocspd answers tryLater "
                "until a fresh CRL is imported (STS-12)\n",
                argv[2]);
    /* in chunks of write transactions (a chunk is durable when it is reported); the issuer's
     * CRL number and times, and the release of holds the CRL does not list, go into the last
     * one: an import that stops leaves the issuer as it was, and the same CRL imported again
     * finishes it */
    pending =
        (struct ocsp_crl_pending){ci.has_number ? ci.number : 0, ci.delta ? 0 : ci.this_update};
    if (ocsp_store_batch_begin(c->store) != ST_OK ||
        ocsp_store_crl_pending_put(c->store, rec.id, &pending) != ST_OK ||
        crl_apply(c, crl, &rec, &ci, &n) != ST_OK || crl_update_issuer(c, &rec, &ci) != ST_OK ||
        ocsp_store_crl_pending_put(c->store, rec.id, NULL) != ST_OK) {
        ocsp_store_batch_abort(c->store);
        n.aborted = true;
        n.failed++;
    } else if (ocsp_store_batch_commit(c->store) != ST_OK) {
        fprintf(stderr, "ocspctl: %s: the last chunk could not be committed\n", argv[2]);
        n.aborted = true;
        n.failed++;
    }
    if (n.aborted) {
        /* journalled as the store holds it: the committed chunks' counts (EID-12) */
        n.entries = n.committed;
        n.released = n.done_released;
        n.refused = n.done_refused;
    }
    ocspctl_json_begin(&info);
    ocspctl_json_bool(&info, "delta", ci.delta);
    ocspctl_json_int(&info, "number", ci.has_number ? (long long)ci.number : -1);
    ocspctl_json_int(&info, "this_update", ci.this_update);
    ocspctl_json_int(&info, "next_update", ci.next_update);
    rc = import_finish(c, &(struct import_report){"import-crl", rec.name, argv[2], &n, &info});
out:
    ocspctl_json_free(&info);
    X509_CRL_free(crl);
    X509_free(ca);
    ocsp_issuer_rec_clear(&rec);
    return rc;
}

/* ---- OpenSSL `ca` index ---- */

/* Split a line on tabs into at most max fields (in place). */
static int
split_tabs(char *line, char **f, int max)
{
    int n = 0;

    f[n++] = line;
    for (char *p = line; *p != '\0' && n < max; p++) {
        if (*p == '\t') {
            *p = '\0';
            f[n++] = p + 1;
        }
    }
    return n;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's days_from_civil). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + (int64_t)doe - 719468;
}

/* An index time: UTCTime YYMMDDHHMMSSZ (YY < 50: 20YY, RFC 5280 §4.1.2.5.1) or
 * GeneralizedTime YYYYMMDDHHMMSSZ, parsed without allocating (an import reads millions);
 * anything it does not take goes to ocspctl_time_parse, which decides. */
static int
index_time(const char *s, int64_t *t)
{
    static const unsigned char mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned v[7], i = 0, year;
    size_t n = strlen(s), k = 0;

    if ((n != 13 && n != 15) || s[n - 1] != 'Z')
        return ocspctl_time_parse(s, false, t);
    for (k = 0; k < n - 1; k++)
        if (s[k] < '0' || s[k] > '9')
            return ocspctl_time_parse(s, false, t);
    k = 0;
    if (n == 15) {
        year =
            (unsigned)((s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0'));
        k = 4;
    } else {
        year = (unsigned)((s[0] - '0') * 10 + (s[1] - '0'));
        year += year < 50 ? 2000 : 1900;
        k = 2;
    }
    for (i = 0; i < 5; i++, k += 2)
        v[i] = (unsigned)((s[k] - '0') * 10 + (s[k + 1] - '0'));
    /* v: month, day, hour, minute, second */
    if (v[0] < 1 || v[0] > 12 || v[1] < 1 || v[1] > mdays[v[0] - 1] || v[2] > 23 || v[3] > 59 ||
        v[4] > 59 ||
        (v[0] == 2 && v[1] == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))))
        return ocspctl_time_parse(s, false, t);
    *t = days_from_civil(year, v[0], v[1]) * 86400 + v[2] * 3600 + v[3] * 60 + v[4];
    return ST_OK;
}

/* hex digit values, -1 for anything else */
static signed char hexv[256];

static void
hexv_init(void)
{
    if (hexv[0] != 0)
        return;
    memset(hexv, -1, sizeof(hexv));
    for (int i = 0; i < 10; i++)
        hexv['0' + i] = (signed char)i;
    for (int i = 0; i < 6; i++)
        hexv['a' + i] = hexv['A' + i] = (signed char)(10 + i);
}

/* An index serial (hex, as ocspctl_serial_parse takes it) in one pass with a table: the
 * profile of a 1 M line import had the generic parser at 14 %. */
static int
index_serial(const char *hex, struct ctl_serial *out)
{
    uint8_t mag[OCSP_SERIAL_MAX];
    size_t n, nbytes, i = 0;
    const char *p;

    hexv_init();
    if (hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X'))
        hex += 2;
    while (*hex == '0')
        hex++;
    for (p = hex; hexv[(unsigned char)*p] >= 0; p++)
        ;
    if (*p != '\0')
        return ST_INVALID;
    n = (size_t)(p - hex);
    nbytes = (n + 1) / 2;
    if (n == 0 || nbytes > OCSP_SERIAL_MAX - 1)
        return ocspctl_serial_parse(hex, out); /* zero, or too long: its verdict */
    if (n % 2 == 1)
        mag[i++] = (uint8_t)hexv[(unsigned char)*hex++];
    for (; i < nbytes; i++, hex += 2)
        mag[i] = (uint8_t)(hexv[(unsigned char)hex[0]] << 4 | hexv[(unsigned char)hex[1]]);
    out->len = 0;
    if (mag[0] & 0x80)
        out->b[out->len++] = 0x00;
    memcpy(out->b + out->len, mag, nbytes);
    out->len += nbytes;
    return ST_OK;
}

/* R line: "date[,reason[,extra]]" -> state, reason, time. */
static int
index_revocation(char *field, enum ocsp_cert_state *state, int *reason, int64_t *when)
{
    char *comma = strchr(field, ',');

    *reason = OCSP_REASON_NONE;
    if (comma != NULL) {
        char *extra = strchr(comma + 1, ',');
        *comma = '\0';
        if (extra != NULL)
            *extra = '\0';
        if ((*reason = ocspctl_reason_parse(comma + 1)) < 0)
            return ST_INVALID;
    }
    if (index_time(field, when) != ST_OK)
        return ST_INVALID;
    *state = *reason == OCSP_REVOKED_STATUS_CERTIFICATEHOLD ? OCSP_STATE_HOLD : OCSP_STATE_REVOKED;
    if (*reason == OCSP_REVOKED_STATUS_REMOVEFROMCRL)
        *state = OCSP_STATE_GOOD; /* removed from CRL: issued and not revoked */
    return ST_OK;
}

/* Bytes the store may still take before it reaches fill_limit. */
static double
import_room(struct ctl *c)
{
    double fill = 1;

    if (store_fill(ocsp_store_raw(c->store), &fill) != ST_OK)
        fill = 1;
    return (c->cfg.store.fill_limit - fill) * (double)c->cfg.store.map_size;
}

int
ocspctl_index_parse(char *line, struct ctl_index_entry *e)
{
    char *f[6];
    size_t n = strcspn(line, "\n");
    int nf;

    memset(e, 0, sizeof(*e));
    e->state = OCSP_STATE_GOOD;
    e->reason = OCSP_REASON_NONE;
    line[n] = '\0';
    if (n > 0 && line[n - 1] == '\r')
        line[--n] = '\0'; /* CRLF */
    if (line[0] == '\0')
        return ST_NOTFOUND;
    /* a CR elsewhere is not a line end: cutting the line there could import "0B04<CR>77"
     * as serial 0B04, another certificate */
    if (memchr(line, '\r', n) != NULL)
        return ST_INVALID;
    nf = split_tabs(line, f, 6);
    if (nf < 4 || strlen(f[0]) != 1 || strchr("VRE", f[0][0]) == NULL ||
        index_time(f[1], &e->not_after) != ST_OK || index_serial(f[3], &e->serial) != ST_OK ||
        (f[0][0] == 'R' && index_revocation(f[2], &e->state, &e->reason, &e->when) != ST_OK))
        return ST_INVALID;
    e->kind = f[0][0];
    return ST_OK;
}

/* An index with lines that are not index lines (a PEM file, a truncated copy, another
 * format) or without any entry is not what the operator meant to import: an error. */
static int
index_check_complete(const char *path, const struct import_count *n)
{
    if (n->skipped > 0) {
        fprintf(stderr,
                "ocspctl: %s: %zu line%s not OpenSSL `ca` index lines: nothing was imported "
                "(an import is all or nothing); fix the file and import it again\n",
                path, n->skipped, n->skipped == 1 ? " is" : "s are");
        return ST_ERR;
    }
    if (n->entries == 0) {
        fprintf(stderr, "ocspctl: %s: no entries: not an OpenSSL `ca` index, or empty\n", path);
        return ST_ERR;
    }
    return ST_OK;
}

/* One parsed index line, kept until its window is sorted and applied (48 bytes). */
struct index_ent {
    uint64_t w[3]; /* the serial's octets as big-endian words, zero-padded: compared in key order */
    int64_t not_after, when;
    uint8_t len, kind, state, reason;
    uint32_t pad;
};

/* A window entry's sort key: the first serial word and its place in the window (16 bytes). */
struct index_key {
    uint64_t w0;
    uint64_t idx;
};

/* The index file being imported and what the import has done so far. */
struct index_run {
    struct ctl *c;
    const struct ocsp_issuer_rec *rec;
    const char *path;
    FILE *f;
    char *line; /* getline's buffer */
    size_t cap;
    size_t chunk;          /* lines per write transaction */
    size_t marks;          /* stored answers marked stale before a chunk is committed early */
    size_t window;         /* lines parsed, sorted and applied together, at most */
    struct index_ent *ent; /* window entries (index_arena), r->n of them in use */
    size_t n;
    struct index_key *keys, *tmp; /* the sort's (index_arena) */
    unsigned long lineno;
    size_t good, bad, lines;
    int64_t now; /* when the import started: no revocation is dated later */
    struct ocsp_journal_import j;
    struct ocsp_journal_import done; /* j's counts at the last committed chunk */
    bool revocations_only; /* the good entries do not fit below fill_limit: none goes in */
    bool one_txn; /* a pipe longer than a window: it cannot be read twice, so it is checked and
                     written as it is read, in one transaction */
    EVP_MD_CTX *md;
};

/* Lines parsed and sorted before any is written (80 bytes each with the sort's arrays: 1.3 GB
 * at most): a file of up to this many lines is read once and written in key order, so that
 * each chunk touches only its own key range of the B-tree. OCSPCTL_IMPORT_WINDOW overrides. */
#define INDEX_WINDOW ((size_t)16 * 1024 * 1024)

/* An array of a window's size, mapped: untouched pages cost nothing (a small file uses little
 * of it), no realloc copies, and transparent huge pages where the kernel gives them (measured:
 * the first touch of 4 KB pages and the TLB misses of the sorted walk through the entries
 * were a quarter of a 10 M import). NULL when it cannot be mapped. */
static void *
index_arena(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);

    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

static void
index_arena_free(void *p, size_t bytes)
{
    if (p != NULL)
        munmap(p, bytes);
}

/* Next line (NUL-terminated, newline kept) into r->line; -1 at the end, -2 too long. The
 * bytes read go into the digest when md is set. */
static ssize_t
index_read(struct index_run *r, bool digest)
{
    ssize_t len = getline(&r->line, &r->cap, r->f);

    if (len < 0)
        return -1;
    if (digest)
        EVP_DigestUpdate(r->md, r->line, (size_t)len);
    if ((size_t)len >= INDEX_LINE_MAX)
        return -2;
    if (memchr(r->line, '\0', (size_t)len) != NULL)
        r->line[0] = 'X'; /* a NUL byte: not an index line */
    return len;
}

/* Parse r->line: ST_OK (e filled, counted), ST_NOTFOUND (blank), ST_INVALID (named when
 * named, counted in r->bad). */
static int
index_line(struct index_run *r, ssize_t len, bool named, struct ctl_index_entry *e)
{
    int st;

    const char *why = "not an OpenSSL ca index line";

    if (len == -2) {
        st = ST_INVALID;
        why = "line too long";
    } else if ((st = ocspctl_index_parse(r->line, e)) == ST_NOTFOUND) {
        return st;
    } else if (st == ST_OK && e->kind == 'R' && e->state != OCSP_STATE_GOOD &&
               e->when > r->now + INDEX_FUTURE_SKEW) {
        st = ST_INVALID;
        why = "a revocation or hold dated in the future";
    }
    if (st != ST_OK) {
        if (named && r->bad++ < INDEX_BAD_SHOWN)
            fprintf(stderr, "ocspctl: %s:%lu: %s\n", r->path, r->lineno, why);
        return ST_INVALID;
    }
    r->lines++;
    r->good += e->kind != 'R' || e->state == OCSP_STATE_GOOD;
    return ST_OK;
}

/* Scan the rest of the file: every line parsed, nothing kept nor written, so that a file
 * with a bad line is refused whole (issue 8 item 5) and all its bad lines are named at once.
 * The window before it was parsed by index_fill. */
static int
index_scan(struct index_run *r)
{
    struct ctl_index_entry e;
    ssize_t len;

    while ((len = index_read(r, false)) != -1) {
        r->lineno++;
        (void)index_line(r, len, true, &e);
    }
    if (ferror(r->f)) {
        fprintf(stderr, "ocspctl: %s: read error\n", r->path);
        return ST_ERR;
    }
    return ST_OK;
}

/* Read up to a window of lines into r->ent (digested). strict: the file was scanned before,
 * a bad line now means it changed (ST_ERR); else bad lines are named and counted. *eof when
 * the file ended, also right after a full window. */
static int
index_fill(struct index_run *r, bool strict, bool *eof)
{
    struct ctl_index_entry e;
    struct index_ent *x;
    ssize_t len;
    int st;

    r->n = 0;
    *eof = false;
    while (r->n < r->window) {
        if ((len = index_read(r, true)) == -1) {
            *eof = true;
            break;
        }
        r->lineno++;
        if ((st = index_line(r, len, !strict, &e)) == ST_NOTFOUND)
            continue;
        if (st != ST_OK && strict) {
            fprintf(stderr, "ocspctl: %s: changed while it was imported\n", r->path);
            return ST_ERR;
        }
        if (st != ST_OK)
            continue;
        if (r->ent == NULL && (r->ent = index_arena(r->window * sizeof(*r->ent))) == NULL)
            return ST_NOMEM;
        x = &r->ent[r->n++];
        memset(x, 0, sizeof(*x));
        for (size_t k = 0; k < e.serial.len; k++)
            x->w[k / 8] |= (uint64_t)e.serial.b[k] << (56 - 8 * (k % 8));
        x->len = (uint8_t)e.serial.len;
        x->kind = (uint8_t)e.kind;
        x->state = (uint8_t)e.state;
        x->reason = (uint8_t)e.reason;
        x->not_after = e.not_after;
        x->when = e.when;
    }
    /* a full window: the file may end right after it (a pipe exactly one window long fits,
     * review15); a byte looked at is read again by the next getline */
    if (!*eof && r->n == r->window) {
        int ch = getc(r->f);

        if (ch == EOF)
            *eof = !ferror(r->f);
        else
            (void)ungetc(ch, r->f);
    }
    if (ferror(r->f)) {
        fprintf(stderr, "ocspctl: %s: read error\n", r->path);
        return ST_ERR;
    }
    return ST_OK;
}

/* LMDB's key order of two serials of one issuer (memcmp, then the shorter first) is the order
 * of their zero-padded words, then of their lengths; equal serials keep the file's order. */
static int
index_key_cmp(const struct index_ent *ent, const struct index_key *a, const struct index_key *b)
{
    const struct index_ent *x = &ent[a->idx], *y = &ent[b->idx];

    for (int i = 0; i < 3; i++)
        if (x->w[i] != y->w[i])
            return x->w[i] < y->w[i] ? -1 : 1;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int
index_key_qcmp(const void *a, const void *b, void *ent)
{
    return index_key_cmp(ent, a, b);
}

/* Sort the window into r->keys: a stable LSD radix sort on the first word (8-bit digits: 256
 * streams written at once stay in the caches and the TLB; a digit that is the same in every
 * key is skipped), then runs with an equal first word by the rest (measured: a comparison
 * sort of 10 M entries took seconds, 16-bit digits 0.6 s, 8-bit 0.33 s). */
static int
index_sort(struct index_run *r)
{
    size_t n = r->n, run, cnt[8][256];
    struct index_key *a, *b, *t;

    if (r->keys == NULL && ((r->keys = index_arena(r->window * sizeof(*r->keys))) == NULL ||
                            (r->tmp = index_arena(r->window * sizeof(*r->tmp))) == NULL))
        return ST_NOMEM;
    a = r->keys;
    b = r->tmp;
    memset(cnt, 0, sizeof(cnt));
    for (size_t i = 0; i < n; i++) {
        a[i] = (struct index_key){r->ent[i].w[0], i};
        for (int d = 0; d < 8; d++)
            cnt[d][a[i].w0 >> (8 * d) & 0xff]++;
    }
    for (int d = 0; d < 8; d++) {
        size_t *c = cnt[d], sum = 0, v;

        if (n == 0 || c[a[0].w0 >> (8 * d) & 0xff] == n)
            continue; /* one digit value: nothing to move */
        for (size_t i = 0; i < 256; i++) {
            v = c[i];
            c[i] = sum;
            sum += v;
        }
        for (size_t i = 0; i < n; i++)
            b[c[a[i].w0 >> (8 * d) & 0xff]++] = a[i];
        t = a;
        a = b;
        b = t;
    }
    r->keys = a;
    r->tmp = b;
    for (size_t i = 0; i < n; i += run) {
        for (run = 1; i + run < n && a[i + run].w0 == a[i].w0; run++)
            ;
        if (run > 16) {
            /* serials sharing their first 8 octets (a CA's fixed prefix) */
            qsort_r(a + i, run, sizeof(*a), index_key_qcmp, r->ent);
            continue;
        }
        for (size_t k = i + 1; k < i + run; k++) { /* short runs: insertion sort */
            struct index_key v = a[k];
            size_t m = k;
            while (m > i && index_key_cmp(r->ent, &a[m - 1], &v) > 0) {
                a[m] = a[m - 1];
                m--;
            }
            a[m] = v;
        }
    }
    return ST_OK;
}

static void
index_ent_serial(const struct index_ent *x, struct ctl_serial *s)
{
    s->len = x->len;
    for (size_t k = 0; k < x->len; k++)
        s->b[k] = (uint8_t)(x->w[k / 8] >> (56 - 8 * (k % 8)));
}

/* Apply one parsed entry inside the batch (OCSP_SET_APPEND in flags: past the last key). */
static int
index_apply(struct index_run *r, const struct index_ent *x, unsigned flags)
{
    struct ctl *c = r->c;
    struct ocsp_journal_import *j = &r->j;
    enum ocsp_set_outcome out = OCSP_SET_SAME;
    bool good = x->kind != 'R' || x->state == OCSP_STATE_GOOD;
    char hex[2 * OCSP_SERIAL_MAX + 1];
    struct ctl_serial s;
    int st;

    if (good && r->revocations_only) {
        j->not_imported++;
        return ST_OK;
    }
    index_ent_serial(x, &s);
    /* a good line records that the serial was issued: an existing record keeps its state
     * (a revocation is never undone by an index, EID-07), only its expiry is updated */
    st = ocsp_store_status_apply(
        c->store,
        &(struct ocsp_status_set){
            .issuer_id = r->rec->id,
            .serial = s.b,
            .serial_len = s.len,
            .change = good
                          ? (struct ocsp_status_change){OCSP_STATE_GOOD, OCSP_REASON_NONE, 0,
                                                        x->not_after}
                          : (struct ocsp_status_change){x->state, x->reason, x->when, x->not_after},
            .who = c->who},
        flags | OCSP_SET_BULK | (good ? OCSP_SET_ISSUED : 0), &out);
    if (st != ST_OK && st != ST_EXISTS) {
        ocspctl_serial_hex(s.b, s.len, hex);
        j->failed++;
        fprintf(stderr, "ocspctl: %s: %s\n", hex, status_str(st));
        return ST_ERR;
    }
    switch (out) {
    case OCSP_SET_SAME:
        j->unchanged++;
        break;
    case OCSP_SET_REFUSED:
        ocspctl_serial_hex(s.b, s.len, hex);
        fprintf(stderr, "ocspctl: %s: refused: definitively revoked (EID-07)\n", hex);
        j->refused++;
        break;
    case OCSP_SET_NEW:
    case OCSP_SET_CHANGED:
        if (x->state == OCSP_STATE_REVOKED && !good)
            j->revoked++;
        else if (x->state == OCSP_STATE_HOLD && !good)
            j->held++;
        else if (out == OCSP_SET_NEW)
            j->added++;
        else
            j->updated++;
        break;
    }
    return ST_OK;
}

#define INDEX_PREFETCH 16

/* Commit what the import wrote so far and go on in a new write transaction; the counts of
 * what is committed noted (the journal entry of an import that stops later says them). */
static int
index_checkpoint(struct index_run *r)
{
    if (ocsp_store_batch_checkpoint(r->c->store) != ST_OK) {
        fprintf(stderr, "ocspctl: %s: a chunk could not be committed\n", r->path);
        return ST_STORE; /* the batch is gone */
    }
    r->j.committed_lines = r->j.lines;
    r->done = r->j;
    fprintf(stderr, "ocspctl: %s: %zu entries committed\n", r->path, r->j.committed_lines);
    return ST_OK;
}

/* Apply keys [from, to) of the sorted window, in key order (each chunk then touches only its
 * own key range of the B-tree, each page once). When the chunk's first key is past every
 * status key of the store (an empty store, or serials above all stored ones), its records
 * are appended: no lookups, leaf pages filled whole. A serial listed twice keeps the file's
 * order (the sort is stable), its second line applied as an update. */
static int
index_chunk_apply(struct index_run *r, size_t from, size_t to)
{
    const struct index_key *k = r->keys;
    struct ctl_serial s;
    bool append = false;
    int st;

    if (from < to) {
        index_ent_serial(&r->ent[k[from].idx], &s);
        if ((st = ocsp_store_status_past_last(r->c->store, r->rec->id, s.b, s.len, &append)) !=
            ST_OK)
            return ST_ERR;
    }
    for (size_t i = from; i < to; i++) {
        const struct index_ent *x = &r->ent[k[i].idx], *p = i > from ? &r->ent[k[i - 1].idx] : NULL;

        /* the entries are visited in key order, not in memory order: ask for them ahead
         * (measured: the cache miss on each was a quarter of a 10 M import) */
        if (i + INDEX_PREFETCH < to)
            __builtin_prefetch(&r->ent[k[i + INDEX_PREFETCH].idx]);
        bool dup = p != NULL && p->len == x->len && memcmp(p->w, x->w, sizeof(x->w)) == 0;

        r->j.lines++;
        if ((st = index_apply(r, x, append && !dup ? OCSP_SET_APPEND : 0)) != ST_OK)
            return st;
        /* committed early once its changes marked many stored answers (IMPORT_MARK_CHUNK); an
         * append stays one: the keys after it are past it */
        if (!r->one_txn && i + 1 < to && ocsp_store_batch_marked(r->c->store) >= r->marks &&
            (st = index_checkpoint(r)) != ST_OK)
            return st;
    }
    return ST_OK;
}

/* Apply the window in chunks of r->chunk keys, each committed (not in one_txn mode); the last
 * one is left open when `last` (the import's journal entry goes into it). */
static int
index_window_apply(struct index_run *r, bool last)
{
    int st;

    if ((st = index_sort(r)) != ST_OK)
        return st;
    for (size_t from = 0; from < r->n; from += r->chunk) {
        size_t to = r->n - from > r->chunk ? from + r->chunk : r->n;

        if ((st = index_chunk_apply(r, from, to)) != ST_OK)
            return st;
        if (r->one_txn || (last && to == r->n))
            continue;
        if ((st = index_checkpoint(r)) != ST_OK)
            return st;
    }
    return ST_OK;
}

/* Write: the first window (r->n entries) when `filled`: a file or pipe read whole (eof, checked)
 * is applied from memory; a longer pipe's first window then the rest, read window by window in
 * one transaction (bad lines: the caller aborts it); a longer file (scanned whole before,
 * rewound) is read again window by window. A
 * failure stops the import: the chunks committed so far stay (running the same file again is
 * idempotent), j->committed_lines says how far. */
static int
index_write(struct index_run *r, bool filled, bool eof)
{
    int st = ST_OK;

    /* LMDB allocates each dirty page and frees them all at every commit: keep that memory
     * (no trim and fault again per chunk; measured: _int_malloc at 12 % of a 1 M import) */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
    if (ocsp_store_batch_begin(r->c->store) != ST_OK)
        return ST_ERR;
    if (filled && r->bad == 0)
        st = index_window_apply(r, eof);
    while (st == ST_OK && !eof) {
        if ((st = index_fill(r, !r->one_txn, &eof)) != ST_OK)
            break;
        if (r->bad == 0)
            st = index_window_apply(r, eof);
    }
    if (st == ST_STORE)
        return ST_ERR; /* the batch is gone */
    if (st != ST_OK)
        ocsp_store_batch_abort(r->c->store);
    return st;
}

/* A write that stopped: the journal counts what the committed chunks did, as the store holds
 * it (the entries of the lost chunk, its refusals' journal lines with them, are not there);
 * failed keeps the failure that stopped it. */
static void
index_counts_committed(struct index_run *r)
{
    struct ocsp_journal_import *j = &r->j;
    const struct ocsp_journal_import *d = &r->done;

    j->lines = d->lines;
    j->added = d->added;
    j->unchanged = d->unchanged;
    j->updated = d->updated;
    j->revoked = d->revoked;
    j->held = d->held;
    j->released = d->released;
    j->refused = d->refused;
    j->not_imported = d->not_imported;
    j->committed = false;
    j->committed_lines = d->lines;
}

/* The import's journal line into line (OCSP_JOURNAL_LINE_MAX bytes): a path whose escaped
 * form would not fit (PATH_MAX bytes, up to 6 each) is cut, the digest names the file. */
static void
index_journal_line(char *line, struct ocsp_journal_import *j)
{
    const char *file = j->file;
    char cut[1024];

    if (ocsp_journal_import_line(line, OCSP_JOURNAL_LINE_MAX, j))
        return;
    snprintf(cut, sizeof(cut), "%.1000s...", file);
    j->file = cut;
    (void)ocsp_journal_import_line(line, OCSP_JOURNAL_LINE_MAX, j);
    j->file = file;
}

/* The import's journal entry (in the open batch when there is one) and its summary. */
static int
index_finish(struct index_run *r, bool batch_open)
{
    struct ctl *c = r->c;
    struct ocsp_journal_import *j = &r->j;
    char *line = malloc(OCSP_JOURNAL_LINE_MAX);
    int st;

    if (line == NULL)
        return ST_NOMEM;
    if (batch_open) {
        /* the entry goes into the last chunk: true if, and only if, that chunk commits */
        j->committed = true;
        j->committed_lines = j->lines;
    }
    j->time = (int64_t)time(NULL);
    index_journal_line(line, j);
    st = ocsp_store_journal(c->store, line);
    if (batch_open) {
        if (st == ST_OK)
            st = ocsp_store_batch_commit(c->store);
        else
            ocsp_store_batch_abort(c->store);
        if (st != ST_OK) {
            fprintf(stderr, "ocspctl: %s: the last chunk could not be committed\n", r->path);
            index_counts_committed(r);
            j->failed++;
            /* say so in the journal, outside the failed transaction */
            j->sha256 = NULL;
            index_journal_line(line, j);
            (void)ocsp_store_journal(c->store, line);
        }
    }
    free(line);
    log_audit("ocsp_import",
              "import-index issuer=%s file=%s lines=%zu new=%zu revoked=%zu held=%zu "
              "refused=%zu failed=%zu committed=%zu by=%s",
              r->rec->name, r->path, j->lines, j->added, j->revoked, j->held, j->refused, j->failed,
              j->committed ? j->lines : j->committed_lines, c->who);
    printf("import-index: %zu entries, %zu new, %zu unchanged, %zu updated, %zu revoked, %zu "
           "held, %zu refused, %zu failed",
           j->lines, j->added, j->unchanged, j->updated, j->revoked, j->held, j->refused,
           j->failed);
    if (j->not_imported > 0)
        printf(", %zu not imported (store full)", j->not_imported);
    if (!j->committed)
        printf("; %s", j->committed_lines > 0 ? "stopped" : "nothing imported");
    printf("\n");
    if (!j->committed && j->committed_lines > 0)
        fprintf(stderr,
                "ocspctl: %s: stopped: the first %zu entries are committed, the rest is not; "
                "import the same file again once fixed (lines already imported are "
                "unchanged)\n",
                r->path, j->committed_lines);
    if (st != ST_OK || j->failed > 0 || !j->committed)
        return ST_ERR;
    return j->refused > 0 ? ST_EXISTS : ST_OK;
}

int
ocspctl_cmd_import_index(struct ctl *c, int argc, char **argv)
{
    struct ocsp_issuer_rec rec;
    struct index_run r;
    uint8_t digest[32];
    struct stat sb;
    X509 *ca = NULL;
    bool eof = false, pipe;
    int rc = import_open(c, argc, argv, &rec, &ca);

    memset(&r, 0, sizeof(r));
    if (rc != ST_OK)
        goto out;
    rc = ST_ERR;
    r.c = c;
    r.rec = &rec;
    r.path = argv[2];
    r.now = (int64_t)time(NULL);
    r.chunk = env_size("OCSPCTL_IMPORT_CHUNK", INDEX_CHUNK);
    r.marks = env_size("OCSPCTL_IMPORT_MARKS", IMPORT_MARK_CHUNK);
    r.window = env_size("OCSPCTL_IMPORT_WINDOW", INDEX_WINDOW);
    r.j = (struct ocsp_journal_import){
        .who = c->who, .op = "import-index", .issuer_name = rec.name, .file = argv[2]};
    if ((r.f = fopen(argv[2], "r")) == NULL) {
        fprintf(stderr, "ocspctl: %s: cannot open\n", argv[2]);
        goto out;
    }
    /* read in 1 MB blocks, not stdio's 4 KB (strace: 188 000 reads for 10 M lines) */
    (void)setvbuf(r.f, NULL, _IOFBF, (size_t)1 << 20);
    if ((r.md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(r.md, EVP_sha256(), NULL) != 1)
        goto out;
    pipe = fstat(fileno(r.f), &sb) != 0 || !S_ISREG(sb.st_mode);
    /* an index line takes at least 18 bytes and its newline: a small file maps a small window */
    if (!pipe && (uint64_t)sb.st_size / 16 + 1 < r.window)
        r.window = (size_t)((uint64_t)sb.st_size / 16 + 1);
    /* the first window read (and digested) once. A longer file is scanned to its end before
     * anything is written, then read again window by window; a pipe that fits in the window is
     * then taken as a file read whole; a longer pipe cannot be read again: one transaction */
    if (index_fill(&r, false, &eof) != ST_OK || (!eof && !pipe && index_scan(&r) != ST_OK))
        goto out;
    r.one_txn = pipe && !eof;
    if (!r.one_txn && (r.bad > 0 || r.lines == 0)) {
        /* not what the operator meant to import: nothing of it is written (issue 8 item 5) */
        r.j.lines = r.lines;
        r.j.failed = r.bad;
        (void)index_finish(&r, false);
        rc = index_check_complete(argv[2],
                                  &(struct import_count){.entries = r.lines, .skipped = r.bad});
        goto out;
    }
    /* headroom (DESIGN D10): good entries are background writes; when they do not all fit
     * below fill_limit none goes in, and the revocations and holds, which a full store must
     * never delay, are imported alone */
    if (!r.one_txn && (double)r.good * IMPORT_GOOD_BYTES > import_room(c)) {
        r.revocations_only = true;
        fprintf(stderr,
                "ocspctl: %s: the store in %s would pass its fill_limit (%.0f%%): none of the "
                "file's good entries is imported; its revocations and holds are\n",
                argv[2], c->cfg.store.path, c->cfg.store.fill_limit * 100);
    }
    if (!r.one_txn && !eof) {
        /* the digest is of the bytes written, read again */
        rewind(r.f);
        r.lineno = 0;
        if (EVP_DigestInit_ex(r.md, EVP_sha256(), NULL) != 1)
            goto out;
    }
    if (index_write(&r, eof || r.one_txn, eof) != ST_OK) {
        index_counts_committed(&r);
        (void)index_finish(&r, false);
        goto out;
    }
    if (r.one_txn && (r.bad > 0 || r.lines == 0)) {
        ocsp_store_batch_abort(c->store);
        /* the windows applied before the bad line was read are rolled back: the journal
         * counts what is committed (nothing), as for a file that stopped (review15) */
        index_counts_committed(&r);
        r.j.lines = r.lines;
        r.j.failed = r.bad;
        (void)index_finish(&r, false);
        rc = index_check_complete(argv[2],
                                  &(struct import_count){.entries = r.lines, .skipped = r.bad});
        goto out;
    }
    if (EVP_DigestFinal_ex(r.md, digest, NULL) == 1)
        r.j.sha256 = digest;
    rc = index_finish(&r, true);
    if (rc != ST_ERR && r.j.not_imported > 0) {
        fprintf(stderr,
                "ocspctl: %s: %zu good entr%s not imported (none of them): the store in %s is "
                "above fill_limit (%.0f%%). Grow [store] map_size in %s and import the file "
                "again\n",
                argv[2], r.j.not_imported, r.j.not_imported == 1 ? "y was" : "ies were",
                c->cfg.store.path, c->cfg.store.fill_limit * 100,
                c->cfg.file[0] != '\0' ? c->cfg.file : "ocspd.conf");
        rc = ST_ERR;
    }
out:
    if (r.f != NULL)
        fclose(r.f);
    free(r.line);
    index_arena_free(r.ent, r.window * sizeof(*r.ent));
    index_arena_free(r.keys, r.window * sizeof(*r.keys));
    index_arena_free(r.tmp, r.window * sizeof(*r.tmp));
    EVP_MD_CTX_free(r.md);
    X509_free(ca);
    ocsp_issuer_rec_clear(&rec);
    return rc;
}
