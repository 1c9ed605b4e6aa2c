/*
 * tsactl verify: check exported audit chains (issue 9 item 3; STANDARDS EID-11, EID-12,
 * EID-18). The input is untrusted: it is read back with jansson, not with our writer's
 * conventions. See tsa/tsa_audit.h ("Verifying") for the rules.
 */
#include "common/chain.h"
#include "common/json.h"
#include "tsa/tsa_checkpoint.h"
#include "tsa/tsactl_int.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* A checkpoint's fields (only checkpoints carry them). */
struct vckpt {
    uint64_t covers_seq;
    uint8_t covers_head[32], cert_sha256[32];
    char time[48], sig_alg[16], digest[16];
    uint8_t sig[1024];
    size_t sig_len;
};

#define VERIFY_MAX_NODES 1024

static const uint8_t zero_hash[32];

/* One record (kept small: an export may hold millions). */
struct vrec {
    unsigned node; /* index in verify.nodes */
    uint64_t seq;
    uint8_t prev[32], hash[32];
    int file;
    long line;
    /* a line of its file that holds an earlier-or-equal seq of the same node before it */
    bool out_of_order;
    uint64_t after_seq;
    long after_line;
    struct vckpt *ck; /* a checkpoint's fields, NULL for other records */
};

struct vcert {
    uint8_t sha256[32];
    EVP_PKEY *key;
    const char *path;
};

struct verify {
    struct vrec *r;
    size_t n, cap;
    char **files;
    struct vcert *certs;
    int ncerts;
    FILE *out;
    unsigned problems;
    char (*nodes)[CHAIN_NODE_MAX];
    unsigned n_nodes;
    unsigned long legacy; /* records written before the chain began (no seq, node, prev) */
    bool chained_seen;    /* in the file being read */
    /* the SHA-256 of the line before, when it is a record from before the chain: the chain
     * goes on from the last of them (chain.h), so the first chained record's prev is that */
    bool legacy_before;
    uint8_t legacy_hash[32];
};

static void __attribute__((format(printf, 2, 3))) problem(struct verify *v, const char *fmt, ...)
{
    va_list ap;

    v->problems++;
    fputs("BROKEN: ", v->out);
    va_start(ap, fmt);
    vfprintf(v->out, fmt, ap);
    va_end(ap);
    fputc('\n', v->out);
}

static bool
get_hex(json_t *o, const char *k, uint8_t *out, size_t n)
{
    json_t *s = json_object_get(o, k);

    return json_is_string(s) && hex_decode(out, n, json_string_value(s), json_string_length(s));
}

static bool
get_str(json_t *o, const char *k, char *out, size_t cap)
{
    json_t *s = json_object_get(o, k);

    if (!json_is_string(s) || json_string_length(s) >= cap)
        return false;
    memcpy(out, json_string_value(s), json_string_length(s) + 1);
    return true;
}

static bool
get_u64(json_t *o, const char *k, uint64_t *out)
{
    json_t *i = json_object_get(o, k);

    if (!json_is_integer(i) || json_integer_value(i) < 0)
        return false;
    *out = (uint64_t)json_integer_value(i);
    return true;
}

/* One line into a record; false (a problem named) when it is not a chained record. */
static bool
parse_line(struct verify *v, struct vrec *r, const char *line, size_t len)
{
    json_error_t err;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err), *t, *sig;
    const char *f = v->files[r->file];
    char node[CHAIN_NODE_MAX];
    struct vckpt *c;
    bool ok = false;

    if (!json_is_object(o)) {
        problem(v, "%s:%ld: not a JSON object (%s): a record was edited or the file damaged", f,
                r->line, err.text);
        json_decref(o);
        return false;
    }
    if (json_object_get(o, "seq") == NULL && json_object_get(o, "node") == NULL &&
        json_object_get(o, "prev") == NULL) {
        /* written by a tsad/ocspd before the chain: only before the first chained record of
         * a file (a log's old records); among chained ones it was inserted or stripped */
        if (!v->chained_seen) {
            v->legacy++;
            v->legacy_before = true;
            chain_hash(line, len, v->legacy_hash);
        } else
            problem(v, "%s:%ld: a record without its chain after chained ones: inserted or edited",
                    f, r->line);
        goto out;
    }
    if (!get_u64(o, "seq", &r->seq) || !get_str(o, "node", node, sizeof(node)) ||
        !get_hex(o, "prev", r->prev, 32)) {
        problem(v, "%s:%ld: a record with a malformed chain (seq, node, prev): edited", f, r->line);
        goto out;
    }
    if (!chain_node_valid(node)) { /* never printed as it is: it may hold control characters */
        problem(v, "%s:%ld: a record with a malformed chain (node not [A-Za-z0-9._-]): edited", f,
                r->line);
        goto out;
    }
    /* (a zero prev starts another log: files concatenated after an older node's records) */
    if (!v->chained_seen && v->legacy_before && memcmp(r->prev, zero_hash, 32) != 0 &&
        memcmp(r->prev, v->legacy_hash, 32) != 0)
        problem(v,
                "record seq=%llu at %s:%ld does not follow the line before it (a record from "
                "before the chain): that one was edited, or chained records were stripped",
                (unsigned long long)r->seq, f, r->line);
    v->chained_seen = true;
    for (r->node = 0; r->node < v->n_nodes && strcmp(v->nodes[r->node], node) != 0; r->node++)
        ;
    if (r->node == v->n_nodes) {
        if (v->n_nodes == VERIFY_MAX_NODES) {
            problem(v, "%s:%ld: more than %d nodes", f, r->line, VERIFY_MAX_NODES);
            goto out;
        }
        memcpy(v->nodes[v->n_nodes++], node, sizeof(node));
    }
    chain_hash(line, len, r->hash);
    t = json_object_get(o, "type");
    if (json_is_string(t) && strcmp(json_string_value(t), "checkpoint") == 0) {
        if ((c = r->ck = calloc(1, sizeof(*c))) == NULL)
            goto out;
        sig = json_object_get(o, "sig");
        if (!get_u64(o, "covers_seq", &c->covers_seq) ||
            !get_hex(o, "covers_head", c->covers_head, 32) ||
            !get_hex(o, "cert_sha256", c->cert_sha256, 32) ||
            !get_str(o, "time", c->time, sizeof(c->time)) ||
            !get_str(o, "sig_alg", c->sig_alg, sizeof(c->sig_alg)) ||
            !get_str(o, "digest", c->digest, sizeof(c->digest)) || !json_is_string(sig) ||
            json_string_length(sig) % 2 != 0 || json_string_length(sig) / 2 > sizeof(c->sig) ||
            !hex_decode(c->sig, json_string_length(sig) / 2, json_string_value(sig),
                        json_string_length(sig))) {
            problem(v, "%s:%ld: checkpoint seq=%llu lacks a field or has a malformed one", f,
                    r->line, (unsigned long long)r->seq);
            free(c);
            r->ck = NULL;
            goto out;
        }
        c->sig_len = json_string_length(sig) / 2;
    }
    ok = true;
out:
    json_decref(o);
    return ok;
}

static int
load_file(struct verify *v, int fi)
{
    FILE *f = fopen(v->files[fi], "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long ln = 0;
    int err;
    /* per node of this file: the last seq and its line */
    struct {
        uint64_t seq;
        long line;
    } *last = calloc(VERIFY_MAX_NODES, sizeof(*last));

    if (f == NULL || last == NULL) {
        fprintf(stderr, "tsactl: verify: cannot open %s\n", v->files[fi]);
        if (f != NULL)
            fclose(f);
        free(last);
        return TSACTL_ERR;
    }
    v->chained_seen = v->legacy_before = false;
    while ((len = getline(&line, &cap, f)) >= 0) {
        struct vrec *r;

        ln++;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (len == 0)
            continue;
        if (v->n == v->cap) {
            size_t nc = v->cap ? v->cap * 2 : 1024;
            struct vrec *nr = realloc(v->r, nc * sizeof(*nr));

            if (nr == NULL) {
                fclose(f);
                free(line);
                free(last);
                return TSACTL_ERR;
            }
            v->r = nr;
            v->cap = nc;
        }
        r = &v->r[v->n];
        memset(r, 0, sizeof(*r));
        r->file = fi;
        r->line = ln;
        if (!parse_line(v, r, line, (size_t)len))
            continue;
        if (last[r->node].line != 0 && r->seq <= last[r->node].seq) {
            r->out_of_order = true;
            r->after_seq = last[r->node].seq;
            r->after_line = last[r->node].line;
        } else {
            last[r->node].seq = r->seq;
            last[r->node].line = ln;
        }
        v->n++;
    }
    err = errno;
    free(last);
    free(line);
    if (ferror(f)) { /* a read error (a directory, EIO) is not the end of the export */
        fprintf(stderr, "tsactl: verify: cannot read %s: %s\n", v->files[fi], strerror(err));
        fclose(f);
        return TSACTL_ERR;
    }
    fclose(f);
    return TSACTL_OK;
}

static int
rec_cmp(const void *a, const void *b)
{
    const struct vrec *x = a, *y = b;
    if (x->node != y->node)
        return x->node < y->node ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    if (x->file != y->file)
        return x->file - y->file;
    return x->line < y->line ? -1 : x->line > y->line;
}

static const EVP_MD *
md_by_name(const char *n)
{
    return strcmp(n, "sha256") == 0   ? EVP_sha256()
           : strcmp(n, "sha384") == 0 ? EVP_sha384()
           : strcmp(n, "sha512") == 0 ? EVP_sha512()
                                      : NULL;
}

/* 1 verified, 0 bad signature, -1 no certificate for it. */
static int
check_sig(struct verify *v, const struct vrec *r)
{
    const struct vckpt *c = r->ck;
    char tbs[512], head[65];
    const EVP_MD *md = md_by_name(c->digest);
    EVP_MD_CTX *ctx;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *key = NULL;
    size_t n;
    int ok = 0;

    for (int i = 0; i < v->ncerts; i++)
        if (memcmp(v->certs[i].sha256, c->cert_sha256, 32) == 0)
            key = v->certs[i].key;
    if (key == NULL)
        return -1;
    hex_encode(head, c->covers_head, 32, false);
    n = tsa_checkpoint_tbs(tbs, sizeof(tbs), v->nodes[r->node], c->covers_seq, head, c->time);
    if (n == 0 || md == NULL || (ctx = EVP_MD_CTX_new()) == NULL)
        return 0;
    if (EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key) == 1) {
        if (strcmp(c->sig_alg, "rsa-pss") == 0) {
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
        }
        ok = EVP_DigestVerify(ctx, c->sig, c->sig_len, (const uint8_t *)tbs, n) == 1;
    }
    EVP_MD_CTX_free(ctx);
    return ok;
}

#define AT(r) v->files[(r)->file], (r)->line

/* The first record with seq in v->r[a..b) (sorted by seq), or NULL. */
static const struct vrec *
find_seq(const struct verify *v, size_t a, size_t b, uint64_t seq)
{
    while (a < b) {
        size_t m = a + (b - a) / 2;

        if (v->r[m].seq < seq)
            a = m + 1;
        else
            b = m;
    }
    return a < v->n && v->r[a].seq == seq ? &v->r[a] : NULL;
}

/* One node's records, sorted by seq (v->r[a..b)). */
static void
check_node(struct verify *v, size_t a, size_t b, bool quiet)
{
    const char *node = v->nodes[v->r[a].node];
    unsigned before = v->problems, ckpts = 0, ck_ok = 0, ck_unchecked = 0;
    uint64_t covered = 0, count = 0; /* the highest covers_seq: records after it are unsigned */
    bool any_covered = false;
    const struct vrec *prev = NULL;

    for (size_t i = a; i < b; i++) {
        struct vrec *r = &v->r[i];

        if (prev != NULL && prev->seq == r->seq) {
            if (memcmp(prev->hash, r->hash, 32) != 0)
                problem(v,
                        "node %s: record seq=%llu at %s:%ld differs from the one at %s:%ld: "
                        "one of them was edited, or two nodes have the name %s ([audit] node)",
                        node, (unsigned long long)r->seq, AT(r), AT(prev), node);
            else if (r->out_of_order && prev->file == r->file && prev->line > r->line)
                problem(v,
                        "node %s: record seq=%llu at %s:%ld is out of order (after seq=%llu "
                        "at line %ld): reordered",
                        node, (unsigned long long)r->seq, AT(r), (unsigned long long)r->after_seq,
                        r->after_line);
            continue; /* the same record in two exports, or twice in one (concatenated) */
        }
        if (r->out_of_order) /* no identical record came before it: moved */
            problem(v,
                    "node %s: record seq=%llu at %s:%ld is out of order (after seq=%llu at "
                    "line %ld): reordered",
                    node, (unsigned long long)r->seq, AT(r), (unsigned long long)r->after_seq,
                    r->after_line);
        count++;
        if (prev == NULL) {
            static const uint8_t zero[32];

            /* a log's first record has a zero prev: tsad's is seq 1, ocspd's journal seq 0 */
            if (r->seq == 0 && memcmp(r->prev, zero, 32) != 0)
                problem(v, "node %s: record seq=0 at %s:%ld has a prev: edited", node, AT(r));
            else if (r->seq > 1 && memcmp(r->prev, zero, 32) == 0)
                problem(v, "node %s: record seq=%llu at %s:%ld claims to be the first: edited",
                        node, (unsigned long long)r->seq, AT(r));
        } else if (r->seq != prev->seq + 1) {
            problem(v,
                    "node %s: record%s seq=%llu%s%.0llu missing between %s:%ld and %s:%ld: "
                    "deleted",
                    node, r->seq - prev->seq > 2 ? "s" : "", (unsigned long long)prev->seq + 1,
                    r->seq - prev->seq > 2 ? ".." : "",
                    r->seq - prev->seq > 2 ? (unsigned long long)r->seq - 1 : 0ULL, AT(prev),
                    AT(r));
        } else if (memcmp(r->prev, prev->hash, 32) != 0) {
            problem(v,
                    "node %s: record seq=%llu at %s:%ld was edited: its SHA-256 is not the "
                    "prev of seq=%llu at %s:%ld",
                    node, (unsigned long long)prev->seq, AT(prev), (unsigned long long)r->seq,
                    AT(r));
        }
        if (r->ck != NULL) {
            const struct vrec *c = find_seq(v, a, b, r->ck->covers_seq);
            int s;

            ckpts++;
            if (r->ck->covers_seq >= r->seq)
                problem(v, "node %s: checkpoint seq=%llu at %s:%ld covers a later record", node,
                        (unsigned long long)r->seq, AT(r));
            /* the record it signed, when present */
            if (c != NULL && memcmp(c->hash, r->ck->covers_head, 32) != 0)
                problem(v,
                        "node %s: record seq=%llu at %s:%ld was edited: checkpoint seq=%llu at "
                        "%s:%ld signed another SHA-256 for it",
                        node, (unsigned long long)c->seq, AT(c), (unsigned long long)r->seq, AT(r));
            s = check_sig(v, r);
            if (s == 0)
                problem(v,
                        "node %s: checkpoint seq=%llu at %s:%ld: the signature does not "
                        "verify: edited",
                        node, (unsigned long long)r->seq, AT(r));
            else if (s < 0 && v->ncerts > 0) /* trusted certificates given: no other key */
                problem(v,
                        "node %s: checkpoint seq=%llu at %s:%ld is signed by a key none of the "
                        "--cert certificates holds",
                        node, (unsigned long long)r->seq, AT(r));
            else if (s < 0)
                ck_unchecked++;
            else
                ck_ok++;
            /* it signs the head it read (covers_seq), not the records written between that
             * and itself: those are covered by the next checkpoint only */
            if (!any_covered || r->ck->covers_seq > covered)
                covered = r->ck->covers_seq;
            any_covered = true;
        }
        prev = r;
    }
    if (v->problems == before && !quiet) {
        fprintf(v->out,
                "node %s: records seq=%llu..%llu (%llu) linked; %u checkpoint(s), %u signature(s) "
                "verified%s; ",
                node, (unsigned long long)v->r[a].seq, (unsigned long long)prev->seq,
                (unsigned long long)count, ckpts, ck_ok,
                ck_unchecked > 0 ? ", some NOT checked (no --cert for their key)" : "");
        if (any_covered)
            fprintf(v->out,
                    "%llu record(s) after seq=%llu, the last one a checkpoint covers (these could "
                    "be cut off or rewritten unseen)\n",
                    (unsigned long long)(prev->seq -
                                         (covered >= v->r[a].seq ? covered : v->r[a].seq - 1)),
                    (unsigned long long)covered);
        else
            fprintf(v->out, "no checkpoint covers any of them\n");
    }
}

/* Every certificate of the PEM file at path (an audit certificate may come in a chain file or
 * in a bundle of several nodes' certificates) into v->certs. */
static int
load_certs(struct verify *v, const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x;
    int n = 0;

    while (f != NULL && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        unsigned char *der = NULL;
        struct vcert *c, *nc = realloc(v->certs, ((size_t)v->ncerts + 1) * sizeof(*nc));
        int dl = nc != NULL ? i2d_X509(x, &der) : -1;

        if (nc != NULL)
            v->certs = nc;
        if (dl <= 0) {
            X509_free(x);
            break;
        }
        c = &v->certs[v->ncerts];
        chain_hash(der, (size_t)dl, c->sha256);
        OPENSSL_free(der);
        c->key = X509_get_pubkey(x);
        c->path = path;
        X509_free(x);
        if (c->key == NULL)
            break;
        v->ncerts++;
        n++;
    }
    ERR_clear_error(); /* the end of the file reads as an error */
    if (f != NULL)
        fclose(f);
    if (n == 0) {
        fprintf(stderr, "tsactl: verify: %s: not a PEM certificate\n", path);
        return TSACTL_ERR;
    }
    return TSACTL_OK;
}

int
tsactl_verify(char **files, int nfiles, char **certs, int ncerts, bool quiet, FILE *out)
{
    struct verify v = {.files = files, .out = out};
    int rc = TSACTL_OK;
    size_t a = 0;

    if ((v.nodes = calloc(VERIFY_MAX_NODES, sizeof(*v.nodes))) == NULL)
        return TSACTL_ERR;
    for (int i = 0; i < ncerts && rc == TSACTL_OK; i++)
        rc = load_certs(&v, certs[i]);
    for (int i = 0; i < nfiles && rc == TSACTL_OK; i++)
        rc = load_file(&v, i);
    if (rc == TSACTL_OK) {
        qsort(v.r, v.n, sizeof(*v.r), rec_cmp);
        while (a < v.n) {
            size_t b = a;

            while (b < v.n && v.r[b].node == v.r[a].node)
                b++;
            check_node(&v, a, b, quiet);
            a = b;
        }
        if (v.legacy > 0 && !quiet)
            fprintf(out,
                    "%lu record(s) from before the chain began (written by an older version): "
                    "not checked\n",
                    v.legacy);
        if (v.n == 0 && v.problems == 0)
            fprintf(out, "no records\n");
        if (v.problems > 0)
            rc = TSACTL_BROKEN;
        else if (!quiet)
            fprintf(out, "OK\n");
    }
    for (int i = 0; i < v.ncerts; i++)
        EVP_PKEY_free(v.certs[i].key);
    free(v.certs);
    for (size_t i = 0; i < v.n; i++)
        free(v.r[i].ck);
    free(v.r);
    free(v.nodes);
    return rc;
}
