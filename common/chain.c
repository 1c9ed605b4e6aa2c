/*
 * chain: sealing records into a per-node hash chain (see chain.h).
 */
#include "common/chain.h"
#include "common/journal.h"
#include "common/json.h"
#include "common/signer.h"
#include "common/status.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

bool
chain_node_valid(const char *node)
{
    size_t n = strlen(node);

    if (n == 0 || n >= CHAIN_NODE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = node[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

void
chain_default_node(char *out, size_t cap)
{
    char host[256] = "";
    size_t n = 0;

    if (gethostname(host, sizeof(host) - 1) != 0)
        host[0] = '\0';
    while (host[n] != '\0' && n + 1 < CHAIN_NODE_MAX) {
        char c = host[n];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            break;
        n++;
    }
    host[n] = '\0';
    snprintf(out, cap, "%s", n > 0 ? host : "node");
}

void
chain_hash(const void *rec, size_t len, uint8_t out[32])
{
    if (EVP_Digest(rec, len, out, NULL, signer_hash_md(SIGNER_SHA256), NULL) != 1)
        memset(out, 0, 32); /* cannot happen with a fetched SHA-256; a broken link shows it */
}

size_t
chain_seal(char *out, size_t cap, uint64_t seq, const char *node, const uint8_t prev[32],
           const void *in, size_t len, uint8_t hash[32])
{
    const char *r = in;
    struct jw o;
    size_t n;

    if (len < 3 || r[0] != '{' || r[len - 1] != '}' || r[1] == '}')
        return 0;
    jw_init(&o, out, cap);
    jw_begin(&o);
    jw_ku64(&o, "seq", seq);
    jw_kstr(&o, "node", node);
    jw_khex(&o, "prev", prev, 32);
    jw_raw(&o, ",", 1);
    jw_raw(&o, r + 1, len - 1);
    if ((n = jw_end(&o)) == 0)
        return 0;
    chain_hash(out, n, hash);
    return n;
}

int
chain_txn_head(struct store_txn *t, int db, uint64_t *seq, uint8_t hash[32])
{
    uint8_t key[8];
    size_t klen = 0, vlen;
    const void *val;
    int st = store_txn_last(t, db, key, sizeof(key), &klen);

    *seq = 0;
    memset(hash, 0, 32);
    if (st == ST_NOTFOUND)
        return ST_OK;
    if (st != ST_OK || klen != 8)
        return st != ST_OK ? st : ST_STORE;
    if ((st = store_txn_get(t, db, key, 8, &val, &vlen)) != ST_OK)
        return st;
    *seq = journal_key_seq(key);
    chain_hash(val, vlen, hash);
    return ST_OK;
}

int
chain_txn_append(struct store_txn *t, int db, const char *node, const void *in, size_t len)
{
    char buf[JOURNAL_RECORD_MAX + CHAIN_PREFIX_MAX];
    uint8_t prev[32], hash[32], key[8];
    uint64_t seq;
    size_t n;
    int st;

    if (len + CHAIN_PREFIX_MAX > sizeof(buf))
        return ST_INVALID;
    if ((st = chain_txn_head(t, db, &seq, prev)) != ST_OK)
        return st;
    if ((n = chain_seal(buf, sizeof(buf), seq + 1, node, prev, in, len, hash)) == 0)
        return ST_INVALID;
    journal_key(seq + 1, key);
    return store_txn_append(t, db, key, 8, buf, n);
}

int
chain_head(struct store *s, int db, uint64_t *seq, uint8_t hash[32], char *last_type,
           size_t type_cap)
{
    struct store_txn *t;
    uint8_t key[8];
    size_t klen = 0, vlen;
    const void *val;
    int st;

    if ((st = store_txn_begin(s, false, &t)) != ST_OK)
        return st;
    if ((st = chain_txn_head(t, db, seq, hash)) == ST_OK && last_type != NULL && type_cap > 0) {
        static const char tag[] = "\"type\":\"";

        last_type[0] = '\0';
        if (*seq > 0 && store_txn_last(t, db, key, sizeof(key), &klen) == ST_OK &&
            store_txn_get(t, db, key, 8, &val, &vlen) == ST_OK) {
            const char *p = memmem(val, vlen, tag, sizeof(tag) - 1), *e;

            if (p != NULL) {
                p += sizeof(tag) - 1;
                e = memchr(p, '"', vlen - (size_t)(p - (const char *)val));
                if (e != NULL)
                    snprintf(last_type, type_cap, "%.*s", (int)(e - p), p);
            }
        }
    }
    store_txn_abort(t);
    return st;
}
