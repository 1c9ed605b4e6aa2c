/*
 * check_ocsp_store: unit suite of ocsp/ocsp_store, the OCSP status store on LMDB (DESIGN D4,
 * D6). Runs against a real LMDB environment in a fresh temp directory per test: the schema
 * version (written, checked, a newer one refused), issuer records round trip, the certids
 * index for all four CertID hashes (RFC 6960 §4.1.1, OCSP-11) computed independently with
 * OpenSSL's OCSP_cert_id_new, the status life cycle of EID-07/08 and OCSP-16 (a definitive
 * revocation is never undone nor weakened by a repeat, OCSP-15; a hold is released and keeps
 * its start when repeated), the journal (EID-12 evidence) and the change queue (EID-05: a
 * change is re-signed at once), status walks resumed after a serial (chunked pre-signing),
 * issuer records of the older layout, pre-signed responses read with their status in one
 * transaction, and a reader in another process seeing committed writes.
 */
#include "common/chain.h"
#include "common/json.h"
#include "common/log.h"
#include "common/status.h"
#include "common/store.h"
#include "ocsp/ocsp_journal.h"
#include "ocsp/ocsp_store.h"
#include "tests/unit/unitutil.h"

#include <check.h>
#include <dirent.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAP (16u << 20)

static char dir[64];
#define JOURNAL_MAX 16384
static struct ocsp_store *os;
static X509 *ca;
static uint8_t *ca_der;
static size_t ca_der_len;
static uint8_t ca_id[OCSP_ISSUER_ID_LEN];

/* A self-signed P-256 CA certificate with the given CN. */
static X509 *
make_ca(const char *cn)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();

    ck_assert_ptr_nonnull(key);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(name);
    ck_assert_int_eq(X509_set_version(x, 2), 1);
    ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
    ck_assert_int_eq(
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0),
        1);
    ck_assert_int_eq(X509_set_subject_name(x, name), 1);
    ck_assert_int_eq(X509_set_issuer_name(x, name), 1);
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), 0));
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
    ck_assert_int_eq(X509_set_pubkey(x, key), 1);
    ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
    X509_NAME_free(name);
    EVP_PKEY_free(key);
    return x;
}

static void
setup(void)
{
    unsigned char *p = NULL;
    int n;

    snprintf(dir, sizeof(dir), "/tmp/check_ocsp_store.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    os = ocsp_store_open(dir, MAP, false);
    ck_assert_ptr_nonnull(os);
    ca = make_ca("Test Issuing CA");
    n = i2d_X509(ca, &p);
    ck_assert_int_gt(n, 0);
    ca_der = p;
    ca_der_len = (size_t)n;
    ck_assert_int_eq(ocsp_issuer_id_of(ca_der, ca_der_len, ca_id), ST_OK);
}

static void
teardown(void)
{
    ocsp_store_close(os);
    os = NULL;
    X509_free(ca);
    OPENSSL_free(ca_der);
    remove_tree(dir);
}

static void
fill_issuer(struct ocsp_issuer_rec *r, const char *name)
{
    memset(r, 0, sizeof(*r));
    memcpy(r->id, ca_id, sizeof(ca_id));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->cert = ca_der;
    r->cert_len = ca_der_len;
    r->signer_kind = OCSP_SIGNER_DELEGATED;
    r->signer_cert = (uint8_t *)"\x30\x03\x02\x01\x05";
    r->signer_cert_len = 5;
    snprintf(r->key_label, sizeof(r->key_label), "ocsp-key-1");
    snprintf(r->key_file, sizeof(r->key_file), "/etc/ocspd/k.pem");
    r->scheme = 3;
    r->hash = 2;
    r->nonce_policy = OCSP_NONCE_REQUIRE;
    r->unissued_policy = OCSP_UNISSUED_UNKNOWN;
    r->archive_cutoff = true;
    r->validity = 7200;
    r->crl_fed = true;
    r->crl_this_update = 1700000000;
    r->crl_next_update = 1700086400;
    r->crl_number = 0x123456789aull;
    r->crl_full_next_update = 1700090000;
}

static size_t
count_db(const char *name)
{
    struct store *raw = ocsp_store_raw(os);
    size_t n = 0;

    ck_assert_int_eq(store_count(raw, store_db(raw, name), &n), ST_OK);
    return n;
}

static const uint8_t serial1[] = {0x01, 0x02, 0x03};
static const uint8_t serial2[] = {0x00, 0xff, 0x10};

/* The store's writes as ocspd makes them: inside a write transaction (its commit pipeline's). */
static int
responses_put(struct ocsp_store *s, const struct ocsp_response_put *r, size_t n)
{
    struct store_txn *t = NULL;
    int st = store_txn_begin(ocsp_store_raw(s), true, &t);

    for (size_t i = 0; i < n && st == ST_OK; i++)
        st = ocsp_store_response_put_txn(s, t, &r[i]);
    if (st != ST_OK) {
        store_txn_abort(t);
        return st;
    }
    return store_txn_commit(t);
}

/* The stamp of the status record of (id, serial) now, 0 without one: what an answer signed now
 * is stored under (the Backing rule, ocsp_store.h). */
static uint64_t
stamp_now(struct ocsp_store *s, const uint8_t *id, const uint8_t *serial, size_t serial_len)
{
    struct ocsp_status st;
    int rc = ocsp_store_status_get(s, id, serial, serial_len, &st);

    ck_assert(rc == ST_OK || rc == ST_NOTFOUND);
    return rc == ST_OK ? st.stamp : 0;
}

/* responses_put with each answer signed for its serial's record as it is now. */
static int
responses_put_backed(struct ocsp_store *s, struct ocsp_response_put *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        r[i].stamp = stamp_now(s, r[i].issuer_id, r[i].serial, r[i].serial_len);
    return responses_put(s, r, n);
}

static int
changes_take(struct ocsp_store *s, struct ocsp_change *out, size_t max, size_t *n)
{
    struct store_txn *t = NULL;
    int st = store_txn_begin(ocsp_store_raw(s), true, &t);

    *n = 0;
    if (st == ST_OK)
        st = ocsp_store_changes_take_txn(s, t, out, max, n);
    if (st != ST_OK) {
        store_txn_abort(t);
        *n = 0;
        return st;
    }
    return store_txn_commit(t);
}

/* The current schema is written into a new store and found on reopen, read-only too. */
START_TEST(test_schema_written)
{
    struct store *raw = ocsp_store_raw(os);
    char buf[16];
    size_t n = 0;
    struct ocsp_store *ro;

    ck_assert_int_eq(
        store_get(raw, store_db(raw, "meta"), "schema_version", 14, buf, sizeof(buf), &n), ST_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(buf[0], '0' + OCSP_STORE_SCHEMA);
    ocsp_store_close(os);
    os = ocsp_store_open(dir, MAP, false);
    ck_assert_ptr_nonnull(os);
    ro = ocsp_store_open(dir, MAP, true);
    ck_assert_ptr_nonnull(ro);
    ocsp_store_close(ro);
}
END_TEST

/* A store of an unknown (newer) schema is refused, writable and read-only. */
START_TEST(test_schema_refused)
{
    static const char *const names[] = {"meta"};
    struct store_txn *t = NULL;
    struct store *raw;

    ocsp_store_close(os);
    os = NULL;
    raw = store_open(dir, MAP, names, 1, false);
    ck_assert_ptr_nonnull(raw);
    ck_assert_int_eq(store_txn_begin(raw, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_put(t, 0, "schema_version", 14, "99", 2, false), ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    store_close(raw);
    ck_assert_ptr_null(ocsp_store_open(dir, MAP, false));
    ck_assert_ptr_null(ocsp_store_open(dir, MAP, true));
}
END_TEST

/* A read-only open of a directory that was never initialised fails. */
START_TEST(test_readonly_uninitialised)
{
    char sub[96];

    snprintf(sub, sizeof(sub), "%s/none", dir);
    ck_assert_ptr_null(ocsp_store_open(sub, MAP, true));
}
END_TEST

static bool
count_issuer(void *ctx, const struct ocsp_issuer_rec *rec)
{
    int *n = ctx;

    ck_assert_str_eq(rec->name, "ca-A");
    ck_assert_mem_eq(rec->id, ca_id, sizeof(ca_id));
    ck_assert_uint_eq(rec->cert_len, ca_der_len);
    (*n)++;
    return true;
}

/* Every field of an issuer record survives put/get; walk visits it; gen is bumped. */
START_TEST(test_issuer_round_trip)
{
    struct ocsp_issuer_rec in, out;
    uint64_t gen0 = ocsp_store_issuers_gen(os);
    int n = 0;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_uint_gt(ocsp_store_issuers_gen(os), gen0);
    ck_assert_int_eq(ocsp_store_issuer_get(os, ca_id, &out), ST_OK);
    ck_assert_mem_eq(out.id, in.id, sizeof(in.id));
    ck_assert_str_eq(out.name, "ca-A");
    ck_assert_uint_eq(out.cert_len, ca_der_len);
    ck_assert_mem_eq(out.cert, ca_der, ca_der_len);
    ck_assert_uint_eq(out.signer_kind, OCSP_SIGNER_DELEGATED);
    ck_assert_uint_eq(out.signer_cert_len, 5);
    ck_assert_mem_eq(out.signer_cert, in.signer_cert, 5);
    ck_assert_str_eq(out.key_label, "ocsp-key-1");
    ck_assert_str_eq(out.key_file, "/etc/ocspd/k.pem");
    ck_assert_int_eq(out.scheme, 3);
    ck_assert_int_eq(out.hash, 2);
    ck_assert_uint_eq(out.nonce_policy, OCSP_NONCE_REQUIRE);
    ck_assert_uint_eq(out.unissued_policy, OCSP_UNISSUED_UNKNOWN);
    ck_assert(out.archive_cutoff);
    ck_assert_uint_eq(out.validity, 7200);
    ck_assert(out.crl_fed);
    ck_assert_int_eq(out.crl_this_update, 1700000000);
    ck_assert_int_eq(out.crl_next_update, 1700086400);
    ck_assert_uint_eq(out.crl_number, 0x123456789aull);
    ck_assert_int_eq(out.crl_full_next_update, 1700090000);
    ocsp_issuer_rec_clear(&out);
    ck_assert_ptr_null(out.cert);
    ck_assert_int_eq(ocsp_store_issuer_walk(os, count_issuer, &n), ST_OK);
    ck_assert_int_eq(n, 1);
}
END_TEST

/* An issuer without a delegate (CA signs) keeps signer_cert NULL; a wrong id is refused. */
START_TEST(test_issuer_ca_signer_and_bad_id)
{
    struct ocsp_issuer_rec in, out;
    uint8_t other[OCSP_ISSUER_ID_LEN] = {0};

    fill_issuer(&in, "ca-A");
    in.signer_kind = OCSP_SIGNER_CA;
    in.signer_cert = NULL;
    in.signer_cert_len = 0;
    in.crl_fed = false;
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(ocsp_store_issuer_get(os, ca_id, &out), ST_OK);
    ck_assert_ptr_null(out.signer_cert);
    ck_assert_uint_eq(out.signer_kind, OCSP_SIGNER_CA);
    ck_assert(!out.crl_fed);
    ocsp_issuer_rec_clear(&out);
    ck_assert_int_eq(ocsp_store_issuer_get(os, other, &out), ST_NOTFOUND);
    memset(in.id, 0x55, sizeof(in.id));
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_INVALID);
}
END_TEST

/* The issuer id is SHA-256 of the subjectPublicKey contents (computed here independently). */
START_TEST(test_issuer_id)
{
    const ASN1_BIT_STRING *pub = X509_get0_pubkey_bitstr(ca);
    uint8_t want[32];

    ck_assert_int_eq(EVP_Digest(pub->data, (size_t)pub->length, want, NULL, EVP_sha256(), NULL), 1);
    ck_assert_mem_eq(ca_id, want, 32);
    ck_assert_int_ne(ocsp_issuer_id_of(ca_der, ca_der_len - 1, want), ST_OK);
}
END_TEST

/* Look the issuer up with the hashes of an OpenSSL-made CertID of the given digest. */
static int
lookup_by_openssl_certid(const EVP_MD *md, enum ocsp_hash h, uint8_t id[OCSP_ISSUER_ID_LEN])
{
    OCSP_CERTID *cid = OCSP_cert_id_new(md, X509_get_subject_name(ca), X509_get0_pubkey_bitstr(ca),
                                        X509_get_serialNumber(ca));
    ASN1_OCTET_STRING *nh = NULL, *kh = NULL;
    int st;

    ck_assert_ptr_nonnull(cid);
    ck_assert_int_eq(OCSP_id_get0_info(&nh, NULL, &kh, NULL, cid), 1);
    ck_assert_int_eq(nh->length, EVP_MD_get_size(md));
    st = ocsp_store_issuer_by_hashes(os, h, nh->data, kh->data, (size_t)nh->length, id);
    OCSP_CERTID_free(cid);
    return st;
}

/* OCSP-11: all four CertID hash forms find the issuer; another algorithm byte does not. */
START_TEST(test_certids_lookup)
{
    struct ocsp_issuer_rec in;
    uint8_t id[OCSP_ISSUER_ID_LEN];
    X509 *other = make_ca("Other CA");
    OCSP_CERTID *cid;
    ASN1_OCTET_STRING *nh = NULL, *kh = NULL;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(lookup_by_openssl_certid(EVP_sha1(), OCSP_HASH_SHA1, id), ST_NOTFOUND);
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(lookup_by_openssl_certid(EVP_sha1(), OCSP_HASH_SHA1, id), ST_OK);
    ck_assert_mem_eq(id, ca_id, sizeof(id));
    memset(id, 0, sizeof(id));
    ck_assert_int_eq(lookup_by_openssl_certid(EVP_sha256(), OCSP_HASH_SHA256, id), ST_OK);
    ck_assert_mem_eq(id, ca_id, sizeof(id));
    memset(id, 0, sizeof(id));
    ck_assert_int_eq(lookup_by_openssl_certid(EVP_sha384(), OCSP_HASH_SHA384, id), ST_OK);
    ck_assert_mem_eq(id, ca_id, sizeof(id));
    memset(id, 0, sizeof(id));
    ck_assert_int_eq(lookup_by_openssl_certid(EVP_sha512(), OCSP_HASH_SHA512, id), ST_OK);
    ck_assert_mem_eq(id, ca_id, sizeof(id));
    /* SHA-256 hashes presented as SHA-1-length input do not match; a SHA-256 pair under the
     * SHA-384 algorithm byte does not either */
    cid = OCSP_cert_id_new(EVP_sha256(), X509_get_subject_name(ca), X509_get0_pubkey_bitstr(ca),
                           X509_get_serialNumber(ca));
    ck_assert_int_eq(OCSP_id_get0_info(&nh, NULL, &kh, NULL, cid), 1);
    ck_assert_int_eq(ocsp_store_issuer_by_hashes(os, OCSP_HASH_SHA384, nh->data, kh->data, 32, id),
                     ST_NOTFOUND);
    ck_assert_int_eq(ocsp_store_issuer_by_hashes(os, (enum ocsp_hash)9, nh->data, kh->data, 32, id),
                     ST_NOTFOUND);
    OCSP_CERTID_free(cid);
    /* another CA is not served */
    cid = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(other), X509_get0_pubkey_bitstr(other),
                           X509_get_serialNumber(other));
    ck_assert_int_eq(OCSP_id_get0_info(&nh, NULL, &kh, NULL, cid), 1);
    ck_assert_int_eq(ocsp_store_issuer_by_hashes(os, OCSP_HASH_SHA1, nh->data, kh->data, 20, id),
                     ST_NOTFOUND);
    OCSP_CERTID_free(cid);
    X509_free(other);
    /* replacing the issuer keeps exactly four certids entries */
    snprintf(in.name, sizeof(in.name), "ca-A-renamed");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_uint_eq(count_db("certids"), 4);
    ck_assert_uint_eq(count_db("issuers"), 1);
}
END_TEST

START_TEST(test_status_set_get)
{
    struct ocsp_status st;

    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial1, sizeof(serial1), &st), ST_NOTFOUND);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os, &(struct ocsp_status_set){ca_id,
                                          serial1,
                                          sizeof(serial1),
                                          {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 1900000000},
                                          "alice"}),
        ST_OK);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial1, sizeof(serial1), &st), ST_OK);
    ck_assert_uint_eq(st.state, OCSP_STATE_GOOD);
    ck_assert_uint_eq(st.reason, OCSP_REASON_NONE);
    ck_assert_int_eq(st.not_after, 1900000000);
    ck_assert_uint_gt(st.stamp, 0);
    ck_assert_int_gt(st.updated, 0);
    /* revoke, not_after 0 keeps the stored expiry */
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_REVOKED, 1, 1800000000, 0}, "alice"}),
        ST_OK);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial1, sizeof(serial1), &st), ST_OK);
    ck_assert_uint_eq(st.state, OCSP_STATE_REVOKED);
    ck_assert_uint_eq(st.reason, 1);
    ck_assert_int_eq(st.revocation_time, 1800000000);
    ck_assert_int_eq(st.not_after, 1900000000);
    /* bad arguments */
    ck_assert_int_eq(ocsp_store_status_set(
                         os,
                         &(struct ocsp_status_set){
                             ca_id, serial1, 0, {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "x"}),
                     ST_INVALID);
    ck_assert_int_eq(ocsp_store_status_set(
                         os,
                         &(struct ocsp_status_set){
                             ca_id, serial2, sizeof(serial2), {OCSP_STATE_REVOKED, 7, 1, 0}, "x"}),
                     ST_INVALID);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial2, sizeof(serial2), &st), ST_NOTFOUND);
}
END_TEST

/* EID-07/08, OCSP-16: hold -> good and hold -> revoked are allowed; revoked is final. */
START_TEST(test_status_rules)
{
    struct ocsp_status st;
    uint64_t stamp;

    ck_assert_int_eq(ocsp_store_status_set(
                         os, &(struct ocsp_status_set){ca_id,
                                                       serial1,
                                                       sizeof(serial1),
                                                       {OCSP_STATE_HOLD, 6, 1700000000, 1900000000},
                                                       "op"}),
                     ST_OK);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial1, sizeof(serial1), &st), ST_OK);
    ck_assert_uint_eq(st.state, OCSP_STATE_HOLD);
    ck_assert_uint_eq(st.reason, 6);
    stamp = st.stamp;
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
        ST_OK);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial1, sizeof(serial1), &st), ST_OK);
    ck_assert_uint_eq(st.state, OCSP_STATE_GOOD);
    ck_assert_int_eq(st.revocation_time, 0);
    ck_assert_int_eq(st.not_after, 1900000000);
    ck_assert_uint_gt(st.stamp, stamp);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_HOLD, 6, 1700000100, 0}, "op"}),
        ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_REVOKED, 1, 1700000200, 0}, "op"}),
        ST_OK);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial1, sizeof(serial1), &st), ST_OK);
    stamp = st.stamp;
    ck_assert_int_eq(ocsp_store_status_set(
                         os, &(struct ocsp_status_set){ca_id,
                                                       serial1,
                                                       sizeof(serial1),
                                                       {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0},
                                                       "mallory"}),
                     ST_EXISTS);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_HOLD, 6, 1700000300, 0}, "mallory"}),
        ST_EXISTS);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial1, sizeof(serial1), &st), ST_OK);
    ck_assert_uint_eq(st.state, OCSP_STATE_REVOKED);
    ck_assert_uint_eq(st.reason, 1);
    ck_assert_int_eq(st.revocation_time, 1700000200);
    ck_assert_uint_eq(st.stamp, stamp);
}
END_TEST

/* Put the status of serial1 and check what is stored. */
static void
set_and_expect(enum ocsp_cert_state state, uint8_t reason, int64_t when, int want_st,
               uint8_t want_reason, int64_t want_time)
{
    struct ocsp_status st;

    ck_assert_int_eq(
        ocsp_store_status_set(os,
                              &(struct ocsp_status_set){
                                  ca_id, serial1, sizeof(serial1), {state, reason, when, 0}, "op"}),
        want_st);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial1, sizeof(serial1), &st), ST_OK);
    ck_assert_uint_eq(st.reason, want_reason);
    ck_assert_int_eq(st.revocation_time, want_time);
}

/* OCSP-15, EID-07: revoking again never weakens a revocation: the earliest time stays, the
 * reason only becomes more specific or keyCompromise; anything else is refused. */
START_TEST(test_status_revoked_again)
{
    size_t journal0;

    set_and_expect(OCSP_STATE_REVOKED, 1, 1704067200, ST_OK, 1, 1704067200);
    journal0 = count_db("journal");
    /* `ocspctl revoke` without options: no reason, now */
    set_and_expect(OCSP_STATE_REVOKED, OCSP_REASON_NONE, 1800000000, ST_EXISTS, 1, 1704067200);
    set_and_expect(OCSP_STATE_REVOKED, 4, 1704067200, ST_EXISTS, 1, 1704067200);
    set_and_expect(OCSP_STATE_REVOKED, 0, 1600000000, ST_EXISTS, 1, 1704067200);
    ck_assert_uint_eq(count_db("journal"), journal0 + 3); /* each refusal journalled */
    /* same reason, later time: nothing changes (not even the journal) */
    set_and_expect(OCSP_STATE_REVOKED, 1, 1800000000, ST_OK, 1, 1704067200);
    ck_assert_uint_eq(count_db("journal"), journal0 + 3);
    /* same reason, earlier time: the earlier one is kept */
    set_and_expect(OCSP_STATE_REVOKED, 1, 1700000000, ST_OK, 1, 1700000000);
    ck_assert_uint_eq(count_db("journal"), journal0 + 4);
}
END_TEST

/* No reason -> unspecified -> a specific reason -> keyCompromise, keeping the earliest time;
 * no step down or sideways. */
START_TEST(test_status_reason_ladder)
{
    set_and_expect(OCSP_STATE_REVOKED, OCSP_REASON_NONE, 1750000000, ST_OK, OCSP_REASON_NONE,
                   1750000000);
    set_and_expect(OCSP_STATE_REVOKED, 0, 1760000000, ST_OK, 0, 1750000000);
    set_and_expect(OCSP_STATE_REVOKED, OCSP_REASON_NONE, 1750000000, ST_EXISTS, 0, 1750000000);
    set_and_expect(OCSP_STATE_REVOKED, 4, 1740000000, ST_OK, 4, 1740000000);
    set_and_expect(OCSP_STATE_REVOKED, 5, 1740000000, ST_EXISTS, 4, 1740000000);
    set_and_expect(OCSP_STATE_REVOKED, 0, 1740000000, ST_EXISTS, 4, 1740000000);
    set_and_expect(OCSP_STATE_REVOKED, 1, 1790000000, ST_OK, 1, 1740000000);
    set_and_expect(OCSP_STATE_REVOKED, 2, 1740000000, ST_EXISTS, 1, 1740000000);
    set_and_expect(OCSP_STATE_HOLD, 6, 1740000000, ST_EXISTS, 1, 1740000000);
}
END_TEST

/* EID-08: a repeated hold keeps the start of the hold; a hold may still become revoked. */
START_TEST(test_status_hold_again)
{
    struct ocsp_status st;
    uint64_t stamp;

    set_and_expect(OCSP_STATE_HOLD, 6, 1700000000, ST_OK, 6, 1700000000);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial1, sizeof(serial1), &st), ST_OK);
    stamp = st.stamp;
    set_and_expect(OCSP_STATE_HOLD, 6, 1800000000, ST_OK, 6, 1700000000);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial1, sizeof(serial1), &st), ST_OK);
    ck_assert_uint_eq(st.state, OCSP_STATE_HOLD);
    ck_assert_uint_eq(st.stamp, stamp); /* no change, nothing to re-sign */
    set_and_expect(OCSP_STATE_REVOKED, 1, 1750000000, ST_OK, 1, 1750000000);
}
END_TEST

struct journal_scan {
    int n, refused, mallory;
    char last[4096];
    uint8_t prev[32]; /* SHA-256 of the entry before (issue 9 item 3: the journal's chain) */
};

static bool
scan_journal(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct journal_scan *j = ctx;

    ck_assert_uint_eq(klen, 8);
    ck_assert_uint_eq(((const uint8_t *)key)[7], (uint8_t)j->n);
    ck_assert_uint_lt(vlen, sizeof(j->last));
    memcpy(j->last, val, vlen);
    j->last[vlen] = '\0';
    ck_assert_int_eq(j->last[0], '{');
    {
        char want[160], hex[65];

        hex_encode(hex, j->prev, 32, false);
        snprintf(want, sizeof(want), "{\"seq\":%d,\"node\":\"", j->n);
        ck_assert_msg(strncmp(j->last, want, strlen(want)) == 0, "entry %d: %s", j->n, j->last);
        snprintf(want, sizeof(want), "\"prev\":\"%s\",", hex);
        ck_assert_msg(strstr(j->last, want) != NULL, "entry %d is not linked: %s", j->n, j->last);
        chain_hash(val, vlen, j->prev);
    }
    ck_assert_ptr_null(strchr(j->last, '\n'));
    if (strstr(j->last, "\"result\":\"refused\"") != NULL)
        j->refused++;
    if (strstr(j->last, "\"who\":\"mallory\"") != NULL)
        j->mallory++;
    j->n++;
    return true;
}

/* Every change is journalled (refused ones too, without changing the record); a repeated
 * identical set is not a change. */
START_TEST(test_journal)
{
    struct store *raw = ocsp_store_raw(os);
    struct journal_scan j = {0};

    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_REVOKED, 1, 1700000000, 0}, "alice"}),
        ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_REVOKED, 1, 1700000000, 0}, "alice"}),
        ST_OK);
    ck_assert_int_eq(ocsp_store_status_set(
                         os, &(struct ocsp_status_set){ca_id,
                                                       serial1,
                                                       sizeof(serial1),
                                                       {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0},
                                                       "mallory"}),
                     ST_EXISTS);
    ck_assert_int_eq(ocsp_store_journal(os, "{\"op\":\"import\",\"n\":3}"), ST_OK);
    ck_assert_int_eq(ocsp_store_journal(os, "not json"), ST_INVALID);
    ck_assert_int_eq(ocsp_store_journal(os, "{\"a\":1}\n{\"b\":2}"), ST_INVALID);
    ck_assert_int_eq(store_walk(raw, store_db(raw, "journal"), NULL, 0, scan_journal, &j), ST_OK);
    ck_assert_int_eq(j.n, 3);
    ck_assert_int_eq(j.refused, 1);
    ck_assert_int_eq(j.mallory, 1);
    /* stored sealed into the chain: seq, node and prev first, then the entry as given */
    ck_assert_ptr_nonnull(strstr(j.last, "\",\"op\":\"import\",\"n\":3}"));
}
END_TEST

/* Changes are queued per accepted change and taken oldest first, then gone. */
/* A changed record of an existing serial is queued for re-signing (EID-05); a new serial is
 * not (it has no answer backed by a record to re-sign, issue 10 §3). */
START_TEST(test_changes_take)
{
    static const uint8_t s3[] = {0x7f};
    struct ocsp_change c[4];
    size_t n = 99;
    uint64_t txn = store_last_commit(ocsp_store_raw(os));

    /* nothing pending: the take writes nothing, so the store's last transaction id stays (the
     * refresher takes 4 times a second; each id moved sent every front-cache hit back to its
     * status record, and an idle ocspd committed 4 times a second) */
    ck_assert_int_eq(changes_take(os, c, 4, &n), ST_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(store_last_commit(ocsp_store_raw(os)), txn);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 1}, "op"}),
        ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial2, sizeof(serial2), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 1}, "op"}),
        ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, s3, sizeof(s3), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 1}, "op"}),
        ST_OK);
    ck_assert_uint_eq(count_db("journal"), 3);
    ck_assert_uint_eq(count_db("changes"), 0); /* three new serials: nothing to re-sign */
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial2, sizeof(serial2), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 5}, "op"}),
        ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_REVOKED, 4, 10, 0}, "op"}),
        ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){ca_id, s3, sizeof(s3), {OCSP_STATE_HOLD, 6, 11, 0}, "op"}),
        ST_OK);
    /* refused: no change queued */
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
        ST_EXISTS);
    ck_assert_uint_eq(count_db("changes"), 3);
    ck_assert_int_eq(changes_take(os, c, 2, &n), ST_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_mem_eq(c[0].issuer_id, ca_id, sizeof(ca_id));
    ck_assert_uint_eq(c[0].serial_len, sizeof(serial2));
    ck_assert_mem_eq(c[0].serial, serial2, sizeof(serial2));
    ck_assert_uint_eq(c[1].serial_len, sizeof(serial1));
    ck_assert_mem_eq(c[1].serial, serial1, sizeof(serial1));
    ck_assert_uint_eq(count_db("changes"), 1);
    ck_assert_int_eq(changes_take(os, c, 4, &n), ST_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(c[0].serial_len, 1);
    ck_assert_uint_eq(c[0].serial[0], 0x7f);
    ck_assert_int_eq(changes_take(os, c, 4, &n), ST_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(count_db("changes"), 0);
}
END_TEST

static int
bulk_apply(const uint8_t *serial, size_t len, struct ocsp_status_change ch, unsigned flags,
           enum ocsp_set_outcome *out)
{
    return ocsp_store_status_apply(os, &(struct ocsp_status_set){ca_id, serial, len, ch, "op"},
                                   flags, out);
}

/* A bulk import (issue 10 §3): new `good` records are not journalled one by one (the import
 * journals itself once), an existing record keeps its state (OCSP_SET_ISSUED), revocations
 * and changed records are journalled, and only changed records of existing serials are
 * queued for re-signing; chunks commit one by one. */
START_TEST(test_bulk_import)
{
    static const uint8_t s3[] = {0x7f};
    static const struct ocsp_status_change good = {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 100};
    enum ocsp_set_outcome out = 0;
    struct ocsp_status st;
    struct ocsp_issuer_rec rec;

    fill_issuer(&rec, "bulk");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &rec), ST_OK);
    ck_assert_int_eq(ocsp_store_batch_begin(os), ST_OK);
    ck_assert_int_eq(
        bulk_apply(serial1, sizeof(serial1), good, OCSP_SET_BULK | OCSP_SET_ISSUED, &out), ST_OK);
    ck_assert_int_eq(out, OCSP_SET_NEW);
    ck_assert_int_eq(
        bulk_apply(serial1, sizeof(serial1), good, OCSP_SET_BULK | OCSP_SET_ISSUED, &out), ST_OK);
    ck_assert_int_eq(out, OCSP_SET_SAME);
    ck_assert_int_eq(bulk_apply(s3, sizeof(s3),
                                (struct ocsp_status_change){OCSP_STATE_REVOKED, 1, 50, 100},
                                OCSP_SET_BULK, &out),
                     ST_OK);
    ck_assert_int_eq(out, OCSP_SET_NEW);
    ck_assert_int_eq(ocsp_store_batch_checkpoint(os), ST_OK); /* chunk 1 committed */
    ck_assert_uint_eq(count_db("journal"), 1);                /* the revocation only */
    ck_assert_uint_eq(count_db("changes"), 0);                /* both serials new */
    ck_assert_uint_eq(count_db("status"), 2);
    /* a good line for a revoked serial: it stays revoked, its expiry changes (journalled,
     * re-signed) */
    ck_assert_int_eq(
        bulk_apply(s3, sizeof(s3),
                   (struct ocsp_status_change){OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 200},
                   OCSP_SET_BULK | OCSP_SET_ISSUED, &out),
        ST_OK);
    ck_assert_int_eq(out, OCSP_SET_CHANGED);
    ck_assert_int_eq(ocsp_store_batch_commit(os), ST_OK);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, s3, sizeof(s3), &st), ST_OK);
    ck_assert_uint_eq(st.state, OCSP_STATE_REVOKED);
    ck_assert_int_eq(st.not_after, 200);
    ck_assert_uint_eq(count_db("journal"), 2);
    ck_assert_uint_eq(count_db("changes"), 1);
    /* without OCSP_SET_BULK a new good record is journalled (an operator's `add`) */
    ck_assert_int_eq(bulk_apply(serial2, sizeof(serial2), good, 0, &out), ST_OK);
    ck_assert_int_eq(out, OCSP_SET_NEW);
    ck_assert_uint_eq(count_db("journal"), 3);
    ck_assert_uint_eq(count_db("changes"), 1);
}
END_TEST

/* OCSP_SET_APPEND (issue 10 §3, the import's append path): a key past every status key is
 * appended without a lookup; ocsp_store_status_past_last tells which keys are (LMDB's order:
 * memcmp, then the shorter first), in the batch or on its own; an append of a key that is
 * not past the last one fails the batch instead of being dropped. */
START_TEST(test_status_append)
{
    static const uint8_t a[] = {0x10}, b[] = {0x10, 0x00}, c[] = {0x20}, lo[] = {0x05},
                         hi[] = {0x30};
    static const struct ocsp_status_change good = {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 100};
    static const unsigned app = OCSP_SET_APPEND | OCSP_SET_BULK | OCSP_SET_ISSUED;
    enum ocsp_set_outcome out = 0;
    struct ocsp_status st;
    struct ocsp_issuer_rec rec;
    bool past = false;

    fill_issuer(&rec, "app");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &rec), ST_OK);
    ck_assert_int_eq(ocsp_store_status_past_last(os, ca_id, a, sizeof(a), &past), ST_OK);
    ck_assert(past); /* no status record at all */
    ck_assert_int_eq(ocsp_store_batch_begin(os), ST_OK);
    ck_assert_int_eq(bulk_apply(a, sizeof(a), good, app, &out), ST_OK);
    ck_assert_int_eq(out, OCSP_SET_NEW);
    ck_assert_int_eq(ocsp_store_status_past_last(os, ca_id, a, sizeof(a), &past), ST_OK);
    ck_assert(!past); /* equal: not past */
    ck_assert_int_eq(ocsp_store_status_past_last(os, ca_id, b, sizeof(b), &past), ST_OK);
    ck_assert(past); /* longer with the same octets: after */
    ck_assert_int_eq(bulk_apply(b, sizeof(b),
                                (struct ocsp_status_change){OCSP_STATE_REVOKED, 1, 50, 100},
                                OCSP_SET_APPEND | OCSP_SET_BULK, &out),
                     ST_OK);
    ck_assert_int_eq(out, OCSP_SET_NEW);
    ck_assert_int_eq(bulk_apply(c, sizeof(c), good, app, &out), ST_OK);
    ck_assert_int_eq(ocsp_store_status_past_last(os, ca_id, lo, sizeof(lo), &past), ST_OK);
    ck_assert(!past);
    ck_assert_int_eq(ocsp_store_batch_checkpoint(os), ST_OK);
    ck_assert_uint_eq(count_db("status"), 3);
    ck_assert_uint_eq(count_db("journal"), 1); /* the revocation only */
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, b, sizeof(b), &st), ST_OK);
    ck_assert_uint_eq(st.state, OCSP_STATE_REVOKED);
    /* below the last key: an error that fails the chunk, never a silent "unchanged" */
    ck_assert_int_eq(bulk_apply(lo, sizeof(lo), good, app, &out), ST_STORE);
    ck_assert_int_eq(ocsp_store_batch_commit(os), ST_STORE);
    ck_assert_uint_eq(count_db("status"), 3);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, lo, sizeof(lo), &st), ST_NOTFOUND);
    /* outside a batch, in a transaction of its own */
    ck_assert_int_eq(ocsp_store_status_past_last(os, ca_id, c, sizeof(c), &past), ST_OK);
    ck_assert(!past);
    ck_assert_int_eq(ocsp_store_status_past_last(os, ca_id, hi, sizeof(hi), &past), ST_OK);
    ck_assert(past);
}
END_TEST

/* The import's own journal entry: file, digest, counts, operator. */
START_TEST(test_journal_import_line)
{
    uint8_t digest[32];
    char line[2048];

    for (size_t i = 0; i < sizeof(digest); i++)
        digest[i] = (uint8_t)i;
    /* a line that does not fit says so (the caller then cuts the file name) */
    ck_assert(!ocsp_journal_import_line(
        line, 64, &(struct ocsp_journal_import){.op = "import-index", .file = "/x/index.txt"}));
    ck_assert(ocsp_journal_import_line(line, sizeof(line),
                                       &(struct ocsp_journal_import){.time = 1700000000,
                                                                     .who = "alice",
                                                                     .op = "import-index",
                                                                     .issuer_name = "qca",
                                                                     .file = "/x/index.txt",
                                                                     .sha256 = digest,
                                                                     .lines = 10,
                                                                     .added = 6,
                                                                     .unchanged = 1,
                                                                     .revoked = 2,
                                                                     .refused = 1,
                                                                     .committed = true,
                                                                     .committed_lines = 10}));
    ck_assert_str_eq(line, "{\"time\":1700000000,\"who\":\"alice\",\"op\":\"import-index\","
                           "\"issuer\":\"qca\",\"file\":\"/x/index.txt\",\"sha256\":"
                           "\"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\","
                           "\"lines\":10,\"new\":6,\"unchanged\":1,\"updated\":0,\"revoked\":2,"
                           "\"held\":0,\"released\":0,\"refused\":1,\"failed\":0,"
                           "\"not_imported_full\":0,\"committed\":true,\"committed_lines\":10}");
}
END_TEST

/* An import-crl under way (RFC 5280 §5.2.3): its number and thisUpdate kept per issuer until
 * removed; written in a batch that is aborted, it is not there. */
START_TEST(test_crl_pending)
{
    struct ocsp_crl_pending p;
    uint8_t other[OCSP_ISSUER_ID_LEN];

    memset(other, 0x5a, sizeof(other));
    ck_assert_int_eq(ocsp_store_crl_pending_get(os, ca_id, &p), ST_NOTFOUND);
    ck_assert_int_eq(ocsp_store_crl_pending_put(os, ca_id, &(struct ocsp_crl_pending){7, 1000}),
                     ST_OK);
    ck_assert_int_eq(ocsp_store_crl_pending_get(os, ca_id, &p), ST_OK);
    ck_assert_uint_eq(p.number, 7);
    ck_assert_int_eq(p.this_update, 1000);
    ck_assert_int_eq(ocsp_store_crl_pending_get(os, other, &p), ST_NOTFOUND);
    ck_assert_int_eq(ocsp_store_batch_begin(os), ST_OK);
    ck_assert_int_eq(ocsp_store_crl_pending_put(os, ca_id, NULL), ST_OK);
    ocsp_store_batch_abort(os);
    ck_assert_int_eq(ocsp_store_crl_pending_get(os, ca_id, &p), ST_OK);
    ck_assert_int_eq(ocsp_store_crl_pending_put(os, ca_id, NULL), ST_OK);
    ck_assert_int_eq(ocsp_store_crl_pending_get(os, ca_id, &p), ST_NOTFOUND);
    ck_assert_int_eq(ocsp_store_crl_pending_put(os, ca_id, NULL), ST_OK); /* none: no error */
}
END_TEST

static const uint8_t resp_a[] = {0x30, 0x03, 0x0a, 0x01, 0x00};
#define FORM_A OCSP_HASH_SHA256
#define FORM_B OCSP_HASH_SHA1

/* A response to store, for serial1 of ca_id in form `form`. */
static struct ocsp_response_put
put_of(uint8_t form, uint64_t stamp, int64_t this_update, int64_t next_update)
{
    struct ocsp_response_put p = {.form = form,
                                  .issuer_id = ca_id,
                                  .serial = serial1,
                                  .serial_len = sizeof(serial1),
                                  .stamp = stamp,
                                  .this_update = this_update,
                                  .next_update = next_update,
                                  .produced_at = this_update + 1,
                                  .der = resp_a,
                                  .der_len = sizeof(resp_a)};

    memcpy(p.signer_fp, "SIGNERFP", OCSP_FP_LEN);
    memcpy(p.etag, "ETAG5678", OCSP_FP_LEN);
    return p;
}

static int
response_get(uint8_t form, const uint8_t *serial, size_t serial_len, bool with_status,
             struct ocsp_response_found *f)
{
    return ocsp_store_response_get(os,
                                   &(struct ocsp_response_query){.issuer_id = ca_id,
                                                                 .serial = serial,
                                                                 .serial_len = serial_len,
                                                                 .form = form,
                                                                 .status = with_status},
                                   f);
}

/* The raw value stored for (ca_id, serial, form), copied into buf; its length. */
static size_t
raw_value(const uint8_t *serial, size_t serial_len, uint8_t form, uint8_t *buf, size_t cap)
{
    uint8_t key[OCSP_RESP_KEY_MAX];
    size_t klen = ocsp_response_key(ca_id, serial, serial_len, form, key), n = 0;
    struct store *raw = ocsp_store_raw(os);

    ck_assert_uint_eq(klen, OCSP_RESP_KEY_ID_LEN + serial_len + 1);
    ck_assert_int_eq(store_get(raw, store_db(raw, "responses"), key, klen, buf, cap, &n), ST_OK);
    return n;
}

/* The status record of (ca_id, serial) removed behind the store's back (as no release of ours
 * does any longer), to make the state an older release could leave. */
static void
raw_status_del(const uint8_t *serial, size_t serial_len)
{
    struct store *raw = ocsp_store_raw(os);
    struct store_txn *t = NULL;
    uint8_t key[OCSP_ISSUER_ID_LEN + OCSP_SERIAL_MAX];

    memcpy(key, ca_id, OCSP_ISSUER_ID_LEN);
    memcpy(key + OCSP_ISSUER_ID_LEN, serial, serial_len);
    ck_assert_int_eq(store_txn_begin(raw, true, &t), ST_OK);
    ck_assert_int_eq(
        store_txn_del(t, store_db(raw, "status"), key, OCSP_ISSUER_ID_LEN + serial_len), ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
}

/* The key (schema 3): 8 bytes of the issuer id, the serial, the form byte; so a serial's
 * answers are adjacent and come after those of a smaller serial. */
START_TEST(test_response_key)
{
    uint8_t key[OCSP_RESP_KEY_MAX], k2[OCSP_RESP_KEY_MAX];
    uint8_t big[OCSP_SERIAL_MAX + 1] = {0};

    ck_assert_uint_eq(ocsp_response_key(ca_id, serial1, sizeof(serial1), FORM_A, key), 12);
    ck_assert_mem_eq(key, ca_id, 8);
    ck_assert_mem_eq(key + 8, serial1, sizeof(serial1));
    ck_assert_uint_eq(key[11], FORM_A);
    ck_assert_uint_eq(
        ocsp_response_key(ca_id, serial1, sizeof(serial1), OCSP_HASH_SHA1 | OCSP_FORM_NOPARAMS, k2),
        12);
    ck_assert_mem_ne(key, k2, 12); /* the two spellings of a CertID: two answers */
    ck_assert_uint_eq(ocsp_response_key(ca_id, serial1, 0, FORM_A, key), 0);
    ck_assert_uint_eq(ocsp_response_key(ca_id, big, sizeof(big), FORM_A, key), 0);
}
END_TEST

/* A stored response comes back with its header (times, signer, ETag; issuer, serial and form
 * from the query) and the serial's status of the same snapshot; each form is its own answer. */
START_TEST(test_responses)
{
    struct ocsp_response_put p[2] = {
        put_of(FORM_A, 0, 100, 200),
        put_of(FORM_B, 0, 300, 400),
    };
    struct ocsp_response_found f;
    const struct ocsp_stored_response *r = &f.resp;

    p[1].der_len = 3;
    p[1].serial = serial2;
    p[1].serial_len = sizeof(serial2);
    ck_assert_int_eq(response_get(FORM_A, serial1, sizeof(serial1), true, &f), ST_NOTFOUND);
    ck_assert_int_eq(responses_put(os, p, 2), ST_OK);
    ck_assert_int_eq(response_get(FORM_A, serial1, sizeof(serial1), true, &f), ST_OK);
    ck_assert(!f.status_found);
    ck_assert_uint_eq(r->stamp, 0);
    ck_assert_int_eq(r->this_update, 100);
    ck_assert_int_eq(r->next_update, 200);
    ck_assert_int_eq(r->produced_at, 101);
    ck_assert_uint_eq(r->form, FORM_A);
    ck_assert_mem_eq(r->signer_fp, "SIGNERFP", OCSP_FP_LEN);
    ck_assert_mem_eq(r->etag, "ETAG5678", OCSP_FP_LEN);
    ck_assert_mem_eq(r->issuer_id, ca_id, OCSP_ISSUER_ID_LEN);
    ck_assert_uint_eq(r->serial_len, sizeof(serial1));
    ck_assert_mem_eq(r->serial, serial1, sizeof(serial1));
    ck_assert_uint_eq(r->certs_len, 0);
    ck_assert_uint_eq(r->der_len, sizeof(resp_a));
    ck_assert_mem_eq(r->der, resp_a, sizeof(resp_a));
    free(r->der);
    /* another form of the same serial, or the same form of another serial: not this answer */
    ck_assert_int_eq(response_get(FORM_B, serial1, sizeof(serial1), true, &f), ST_NOTFOUND);
    ck_assert_int_eq(response_get(FORM_A | OCSP_FORM_NOPARAMS, serial1, sizeof(serial1), true, &f),
                     ST_NOTFOUND);
    ck_assert_int_eq(response_get(FORM_A, serial2, sizeof(serial2), true, &f), ST_NOTFOUND);
    ck_assert_int_eq(ocsp_store_status_set(
                         os,
                         &(struct ocsp_status_set){
                             ca_id, serial1, sizeof(serial1), {OCSP_STATE_HOLD, 6, 150, 0}, "op"}),
                     ST_OK);
    ck_assert_int_eq(response_get(FORM_A, serial1, sizeof(serial1), true, &f), ST_OK);
    ck_assert(f.status_found);
    ck_assert_uint_eq(f.status.state, OCSP_STATE_HOLD);
    ck_assert_uint_ne(f.status.stamp, r->stamp); /* the caller sees the response is stale */
    free(r->der);
    /* without a status request */
    ck_assert_int_eq(response_get(FORM_B, serial2, sizeof(serial2), false, &f), ST_OK);
    ck_assert(!f.status_found);
    ck_assert_uint_eq(r->der_len, 3);
    ck_assert_uint_eq(r->form, FORM_B);
    ck_assert_mem_eq(r->serial, serial2, sizeof(serial2));
    free(r->der);
    /* replace */
    ck_assert_int_eq(response_get(FORM_A, serial1, sizeof(serial1), true, &f), ST_OK);
    free(f.resp.der);
    p[0].stamp = f.status.stamp;
    ck_assert_int_eq(responses_put(os, p, 1), ST_OK);
    ck_assert_int_eq(response_get(FORM_A, serial1, sizeof(serial1), true, &f), ST_OK);
    ck_assert_uint_eq(f.status.stamp, r->stamp);
    free(r->der);
    /* an empty response, or one without issuer id, serial or form, is refused and nothing of
     * that batch is stored */
    p[1].der_len = 0;
    ck_assert_int_ne(responses_put(os, p, 2), ST_OK);
    p[1] = put_of(FORM_B, 0, 300, 400);
    p[1].issuer_id = NULL;
    ck_assert_int_ne(responses_put(os, p, 2), ST_OK);
    p[1] = put_of(FORM_B, 0, 300, 400);
    p[1].serial_len = 0;
    ck_assert_int_ne(responses_put(os, p, 2), ST_OK);
    p[1] = put_of(0, 0, 300, 400);
    ck_assert_int_ne(responses_put(os, p, 2), ST_OK);
    ck_assert_uint_eq(count_db("responses"), 2);
}
END_TEST

/* A delegated responder's answers are stored without their certs field (its last bytes), and
 * come back whole with the issuer's certs put back; asked with other certs (another signer)
 * they are a miss. */
START_TEST(test_response_certs_elided)
{
    static const uint8_t whole[] = {0x30, 0x0a, 0x0a, 0x01, 0x00, 0xa0,
                                    0x05, 0x30, 0x03, 0x02, 0x01, 0x07};
    static const uint8_t certs[] = {0xa0, 0x05, 0x30, 0x03, 0x02, 0x01, 0x07};
    static const uint8_t other[] = {0xa0, 0x05, 0x30, 0x03, 0x02, 0x01, 0x08, 0x00};
    struct ocsp_response_put p = put_of(FORM_A, 0, 100, 200);
    struct ocsp_response_found f;
    struct ocsp_response_query q = {.issuer_id = ca_id,
                                    .serial = serial1,
                                    .serial_len = sizeof(serial1),
                                    .form = FORM_A,
                                    .certs = certs,
                                    .certs_len = sizeof(certs)};
    uint8_t v[256];
    size_t vlen;

    p.der = whole;
    p.der_len = sizeof(whole);
    p.certs_len = sizeof(certs);
    ck_assert_int_eq(responses_put(os, &p, 1), ST_OK);
    /* stored: the 56-byte header and the answer without its certs */
    vlen = raw_value(serial1, sizeof(serial1), FORM_A, v, sizeof(v));
    ck_assert_uint_eq(vlen, 56 + sizeof(whole) - sizeof(certs));
    ck_assert_uint_eq(v[0], 3);    /* version */
    ck_assert_uint_eq(v[1], 0x01); /* flags: certs elided */
    ck_assert_int_eq(ocsp_store_response_get(os, &q, &f), ST_OK);
    ck_assert_uint_eq(f.resp.certs_len, sizeof(certs));
    ck_assert_uint_eq(f.resp.der_len, sizeof(whole));
    ck_assert_mem_eq(f.resp.der, whole, sizeof(whole));
    free(f.resp.der);
    q.certs = other;
    q.certs_len = sizeof(other);
    ck_assert_int_eq(ocsp_store_response_get(os, &q, &f), ST_NOTFOUND);
    ck_assert_ptr_null(f.resp.der);
    q.certs = NULL;
    q.certs_len = 0;
    ck_assert_int_eq(ocsp_store_response_get(os, &q, &f), ST_NOTFOUND);
    /* padded: the certs put back right after the stored part, the padding dropped */
    p.pad_len = 2;
    ck_assert_int_eq(responses_put(os, &p, 1), ST_OK);
    q.certs = certs;
    q.certs_len = sizeof(certs);
    ck_assert_int_eq(ocsp_store_response_get(os, &q, &f), ST_OK);
    ck_assert_uint_eq(f.resp.der_len, sizeof(whole));
    ck_assert_mem_eq(f.resp.der, whole, sizeof(whole));
    free(f.resp.der);
    /* the whole answer as certs is refused */
    p.certs_len = sizeof(whole);
    ck_assert_int_eq(responses_put(os, &p, 1), ST_INVALID);
}
END_TEST

/* Padding (a signature shorter than its key's longest): stored after the DER, its length in
 * the header, never part of the answer read back; the value has the size of the longest
 * signature's, whatever this signature's length. */
START_TEST(test_response_padding)
{
    static const uint8_t longer[] = {0x30, 0x05, 0x0a, 0x01, 0x00, 0x05, 0x00};
    struct ocsp_response_put p = put_of(FORM_A, 0, 100, 200);
    struct ocsp_response_found f;
    uint8_t v[256];
    size_t vlen;

    p.pad_len = 2;
    ck_assert_int_eq(responses_put(os, &p, 1), ST_OK);
    vlen = raw_value(serial1, sizeof(serial1), FORM_A, v, sizeof(v));
    ck_assert_uint_eq(vlen, 56 + sizeof(resp_a) + 2);
    ck_assert_uint_eq(v[2] | v[3] << 8, 2);
    ck_assert_int_eq(response_get(FORM_A, serial1, sizeof(serial1), false, &f), ST_OK);
    ck_assert_uint_eq(f.resp.pad_len, 2);
    ck_assert_uint_eq(f.resp.der_len, sizeof(resp_a));
    ck_assert_mem_eq(f.resp.der, resp_a, sizeof(resp_a));
    free(f.resp.der);
    /* re-signed with a longer signature, no padding: the same value size */
    p.der = longer;
    p.der_len = sizeof(longer);
    p.pad_len = 0;
    ck_assert_int_eq(responses_put(os, &p, 1), ST_OK);
    ck_assert_uint_eq(raw_value(serial1, sizeof(serial1), FORM_A, v, sizeof(v)), vlen);
    ck_assert_int_eq(response_get(FORM_A, serial1, sizeof(serial1), false, &f), ST_OK);
    ck_assert_uint_eq(f.resp.pad_len, 0);
    ck_assert_uint_eq(f.resp.der_len, sizeof(longer));
    ck_assert_mem_eq(f.resp.der, longer, sizeof(longer));
    free(f.resp.der);
    p.pad_len = 70000; /* more than the header holds */
    ck_assert_int_eq(responses_put(os, &p, 1), ST_INVALID);
}
END_TEST

struct resp_scan {
    int n;
    int64_t sum_next;
    uint8_t forms;
};

static bool
scan_response(void *ctx, const struct ocsp_stored_response *r)
{
    struct resp_scan *w = ctx;

    ck_assert_int_lt(r->this_update, r->next_update);
    ck_assert_int_eq(r->produced_at, r->this_update + 1);
    ck_assert_ptr_null(r->der);
    /* issuer and serial from the key, no CertID parsed */
    ck_assert_mem_eq(r->issuer_id, ca_id, OCSP_ISSUER_ID_LEN);
    ck_assert_uint_eq(r->serial_len, sizeof(serial1));
    ck_assert_mem_eq(r->serial, serial1, sizeof(serial1));
    w->forms |= r->form;
    w->n++;
    w->sum_next += r->next_update;
    return true;
}

static bool
scan_response_any(void *ctx, const struct ocsp_stored_response *r)
{
    struct resp_scan *w = ctx;

    ck_assert_mem_eq(r->issuer_id, ca_id, OCSP_ISSUER_ID_LEN);
    ck_assert_uint_eq(r->serial_len, 3);
    w->n++;
    return true;
}

/* A walk gives the answers of stored issuers, the full issuer id resolved from the key's
 * prefix; an answer whose prefix names no stored issuer is left out. */
START_TEST(test_response_walk)
{
    struct ocsp_issuer_rec in;
    struct ocsp_response_put p[3] = {
        put_of(FORM_A, 0, 100, 200),
        put_of(FORM_B, 0, 300, 400),
        put_of(FORM_B, 0, 300, 400),
    };
    struct resp_scan w = {0};
    uint8_t other[OCSP_ISSUER_ID_LEN];

    memset(other, 0x77, sizeof(other));
    p[2].issuer_id = other;
    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(responses_put(os, p, 3), ST_OK);
    ck_assert_int_eq(ocsp_store_response_walk(os, scan_response, &w), ST_OK);
    ck_assert_int_eq(w.n, 2);
    ck_assert_int_eq(w.sum_next, 600);
    ck_assert_uint_eq(w.forms, FORM_A | FORM_B);
}
END_TEST

/* An issuer whose id shares its first 8 bytes with a stored issuer's is refused (the answers'
 * keys would not tell them apart); the same issuer is replaced as before. */
START_TEST(test_issuer_prefix_clash)
{
    struct ocsp_issuer_rec in;
    struct store *raw = ocsp_store_raw(os);
    struct store_txn *t = NULL;
    uint8_t twin[OCSP_ISSUER_ID_LEN];

    fill_issuer(&in, "ca-A");
    /* a stored issuer record of another id with the same first 8 bytes */
    memcpy(twin, ca_id, sizeof(twin));
    twin[31] ^= 0xff;
    ck_assert_int_eq(store_txn_begin(raw, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_put(t, store_db(raw, "issuers"), twin, sizeof(twin), "x", 1, false),
                     ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_EXISTS);
    ck_assert_int_eq(store_txn_begin(raw, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_del(t, store_db(raw, "issuers"), twin, sizeof(twin)), ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
}
END_TEST

/* The last journal line into buf. */
static void
last_journal(char *buf, size_t cap)
{
    struct store *raw = ocsp_store_raw(os);
    uint64_t last = count_db("journal") - 1;
    uint8_t key[8];
    size_t n = 0;

    for (int i = 0; i < 8; i++)
        key[7 - i] = (uint8_t)(last >> (8 * i));
    ck_assert_int_eq(store_get(raw, store_db(raw, "journal"), key, 8, buf, cap - 1, &n), ST_OK);
    buf[n] = '\0';
}

static void
set_schema(const char *v)
{
    struct store *raw = ocsp_store_raw(os);
    struct store_txn *t = NULL;

    ck_assert_int_eq(store_txn_begin(raw, true, &t), ST_OK);
    ck_assert_int_eq(
        store_txn_put(t, store_db(raw, "meta"), "schema_version", 14, v, strlen(v), false), ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
}

static void
check_schema_now(void)
{
    struct store *raw = ocsp_store_raw(os);
    char buf[16];
    size_t n = 0;

    ck_assert_int_eq(
        store_get(raw, store_db(raw, "meta"), "schema_version", 14, buf, sizeof(buf), &n), ST_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(buf[0], '0' + OCSP_STORE_SCHEMA);
}

/* Schema 1 -> 4 (issue 10): opened read-only, a schema-1 store is refused; opened writable it
 * is upgraded in place: its stored responses (another value layout) dropped, status and
 * journal kept, schema 4 written, one journal entry saying so; opening it again changes
 * nothing more. */
START_TEST(test_schema_upgrade)
{
    struct ocsp_response_put p[2] = {put_of(FORM_A, 1, 100, 200), put_of(FORM_B, 2, 300, 400)};
    struct ocsp_status st;
    size_t journal;
    char buf[JOURNAL_MAX];

    ck_assert_int_eq(ocsp_store_status_set(
                         os, &(struct ocsp_status_set){ca_id,
                                                       serial1,
                                                       sizeof(serial1),
                                                       {OCSP_STATE_REVOKED,
                                                        OCSP_REVOKED_STATUS_KEYCOMPROMISE, 1000, 0},
                                                       "op"}),
                     ST_OK);
    ck_assert_int_eq(responses_put_backed(os, p, 2), ST_OK);
    journal = count_db("journal");
    ck_assert_uint_eq(journal, 1);
    set_schema("1"); /* as a schema-1 store would be */
    ocsp_store_close(os);
    os = NULL;
    ck_assert_ptr_null(ocsp_store_open(dir, MAP, true)); /* read-only: refused */
    os = ocsp_store_open(dir, MAP, false);
    ck_assert_ptr_nonnull(os);
    check_schema_now();
    ck_assert_uint_eq(count_db("responses"), 0);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial1, sizeof(serial1), &st), ST_OK);
    ck_assert_uint_eq(st.state, OCSP_STATE_REVOKED);
    ck_assert_uint_eq(count_db("journal"), journal + 1);
    last_journal(buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "\"op\":\"schema_upgrade\""));
    ck_assert_ptr_nonnull(strstr(buf, "\"from\":1,\"to\":4,\"responses_dropped\":2"));
    /* now schema 4: read-only opens, nothing more is journalled */
    ocsp_store_close(os);
    os = ocsp_store_open(dir, MAP, true);
    ck_assert_ptr_nonnull(os);
    ocsp_store_close(os);
    os = ocsp_store_open(dir, MAP, false);
    ck_assert_ptr_nonnull(os);
    ck_assert_uint_eq(count_db("journal"), journal + 1);
}
END_TEST

/* A schema-2 value (the layout of that schema, written here as its code wrote it): header
 * with hash, serial length, issuer id and serial, then the DER without its certs. */
static size_t
schema2_value(uint8_t *v, uint8_t hash, const uint8_t *serial, size_t serial_len,
              const uint8_t *der, size_t der_len, uint32_t certs_len, uint64_t stamp)
{
    memset(v, 0, 88);
    v[0] = 2;
    v[1] = hash;
    v[2] = (uint8_t)serial_len;
    v[3] = certs_len > 0 ? 1 : 0;
    for (int i = 0; i < 4; i++)
        v[4 + i] = (uint8_t)(certs_len >> (8 * i));
    for (int i = 0; i < 8; i++) {
        v[8 + i] = (uint8_t)(stamp >> (8 * i));
        v[16 + i] = (uint8_t)((uint64_t)1000 >> (8 * i));
        v[24 + i] = (uint8_t)((uint64_t)2000 >> (8 * i));
        v[32 + i] = (uint8_t)((uint64_t)1001 >> (8 * i));
    }
    memcpy(v + 40, "SIGNERFP", 8);
    memcpy(v + 48, "ETAG5678", 8);
    memcpy(v + 56, ca_id, OCSP_ISSUER_ID_LEN);
    memcpy(v + 88, serial, serial_len);
    memcpy(v + 88 + serial_len, der, der_len);
    return 88 + serial_len + der_len;
}

/* Schema 2 -> 4 (issue 10 §3): read-only refused; writable, every stored answer is re-keyed
 * (issuer id prefix + serial + form, the form read from the old CertID key: NULL parameters
 * or none) with its DER, times, stamp and certs elision kept, so it is served as before
 * without a signature; an unreadable entry is dropped, and so is one no longer backed by its
 * status record (schema 4); one journal entry; more than one chunk (an upgrade in several
 * write transactions). */
START_TEST(test_schema_upgrade2)
{
    enum { N = 4100 };
    /* SHA-1 CertIDs of serial1, hash parameters NULL and absent; SHA-256 with NULL */
    static const uint8_t cid_sha1_null[] = {0x30, 0x0e, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03,
                                            0x02, 0x1a, 0x05, 0x00, 0x02, 0x03, 0x01, 0x02, 0x03};
    static const uint8_t cid_sha1_none[] = {0x30, 0x0c, 0x30, 0x07, 0x06, 0x05, 0x2b, 0x0e,
                                            0x03, 0x02, 0x1a, 0x02, 0x03, 0x01, 0x02, 0x03};
    static const uint8_t cid_sha256[] = {0x30, 0x12, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86,
                                         0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
                                         0x00, 0x02, 0x03, 0x01, 0x02, 0x03};
    static const uint8_t whole[] = {0x30, 0x0a, 0x0a, 0x01, 0x00, 0xa0,
                                    0x05, 0x30, 0x03, 0x02, 0x01, 0x07};
    static const uint8_t certs[] = {0xa0, 0x05, 0x30, 0x03, 0x02, 0x01, 0x07};
    struct store *raw = ocsp_store_raw(os);
    struct store_txn *t = NULL;
    struct ocsp_response_found f;
    struct ocsp_issuer_rec in;
    struct resp_scan w = {0};
    uint8_t v[256], key[32];
    size_t vlen, journal;
    char buf[JOURNAL_MAX];
    uint64_t s1;
    int db;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    /* serial1 has a record: its answers signed for it are kept, the one signed for an
     * earlier record (stamp 8) is dropped after the re-keying (schema 4's Backing rule) */
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
        ST_OK);
    s1 = stamp_now(os, ca_id, serial1, sizeof(serial1));
    ck_assert_uint_gt(s1, 8);
    set_schema("2");
    db = store_db(raw, "responses");
    ck_assert_int_eq(store_txn_begin(raw, true, &t), ST_OK);
    vlen = schema2_value(v, OCSP_HASH_SHA1, serial1, sizeof(serial1), whole,
                         sizeof(whole) - sizeof(certs), sizeof(certs), s1);
    ck_assert_int_eq(store_txn_put(t, db, cid_sha1_null, sizeof(cid_sha1_null), v, vlen, false),
                     ST_OK);
    vlen = schema2_value(v, OCSP_HASH_SHA1, serial1, sizeof(serial1), resp_a, sizeof(resp_a), 0, 8);
    ck_assert_int_eq(store_txn_put(t, db, cid_sha1_none, sizeof(cid_sha1_none), v, vlen, false),
                     ST_OK);
    vlen =
        schema2_value(v, OCSP_HASH_SHA256, serial1, sizeof(serial1), resp_a, sizeof(resp_a), 0, 9);
    ck_assert_int_eq(store_txn_put(t, db, cid_sha256, sizeof(cid_sha256), v, vlen, false), ST_OK);
    /* unreadable: not a CertID key */
    ck_assert_int_eq(store_txn_put(t, db, "\x30\x00", 2, v, vlen, false), ST_OK);
    /* more than a chunk of others: SHA-256 CertIDs of 2-byte serials */
    for (unsigned i = 0; i < N; i++) {
        uint8_t ser[3] = {0x01, (uint8_t)(i >> 8), (uint8_t)i};

        memcpy(key, cid_sha256, sizeof(cid_sha256));
        memcpy(key + sizeof(cid_sha256) - 3, ser, 3);
        vlen = schema2_value(v, OCSP_HASH_SHA256, ser, 3, resp_a, sizeof(resp_a), 0,
                             memcmp(ser, serial1, 3) == 0 ? s1 : 0);
        ck_assert_int_eq(store_txn_put(t, db, key, sizeof(cid_sha256), v, vlen, false), ST_OK);
    }
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    journal = count_db("journal");
    ocsp_store_close(os);
    os = NULL;
    ck_assert_ptr_null(ocsp_store_open(dir, MAP, true)); /* read-only: refused */
    os = ocsp_store_open(dir, MAP, false);
    ck_assert_ptr_nonnull(os);
    check_schema_now();
    /* 0x01 0x00 0x00.. 0x01 0x10 0x03 re-keyed; serial1 (01 02 03) is one of them: N + 2,
     * less serial1's unbacked SHA-1 answer */
    ck_assert_uint_eq(count_db("responses"), N + 1);
    ck_assert_uint_eq(count_db("journal"), journal + 1);
    last_journal(buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "\"op\":\"schema_upgrade\",\"from\":2,\"to\":4,"
                                      "\"responses_dropped\":2,\"responses_rekeyed\":4102"));
    /* served as before: the same DER, certs put back, its stamp and times */
    ck_assert_int_eq(
        ocsp_store_response_get(os,
                                &(struct ocsp_response_query){.issuer_id = ca_id,
                                                              .serial = serial1,
                                                              .serial_len = sizeof(serial1),
                                                              .form = OCSP_HASH_SHA1,
                                                              .certs = certs,
                                                              .certs_len = sizeof(certs)},
                                &f),
        ST_OK);
    ck_assert_uint_eq(f.resp.der_len, sizeof(whole));
    ck_assert_mem_eq(f.resp.der, whole, sizeof(whole));
    ck_assert_uint_eq(f.resp.stamp, s1);
    ck_assert_int_eq(f.resp.next_update, 2000);
    ck_assert_mem_eq(f.resp.etag, "ETAG5678", 8);
    free(f.resp.der);
    ck_assert_int_eq(
        response_get(OCSP_HASH_SHA1 | OCSP_FORM_NOPARAMS, serial1, sizeof(serial1), false, &f),
        ST_NOTFOUND);
    /* serial1's SHA-256 answer: the one of the chunk (stamp s1) replaced the single one
     * (stamp 9: it would have been dropped) */
    ck_assert_int_eq(response_get(OCSP_HASH_SHA256, serial1, sizeof(serial1), false, &f), ST_OK);
    ck_assert_uint_eq(f.resp.stamp, s1);
    free(f.resp.der);
    ck_assert_int_eq(ocsp_store_response_walk(os, scan_response_any, &w), ST_OK);
    ck_assert_int_eq(w.n, N + 1);
    /* done: nothing more on the next open */
    ocsp_store_close(os);
    os = ocsp_store_open(dir, MAP, false);
    ck_assert_ptr_nonnull(os);
    ck_assert_uint_eq(count_db("journal"), journal + 1);
}
END_TEST

/* Schema 2 -> 4 resumed after a run that was killed part-way (its chunks committed, the
 * schema still 2): the answers that run re-keyed are kept as they are, and the journal entry
 * says how many there were besides those this run re-keyed (EID-12: the upgrade journalled as
 * what it did, not only its last run). */
START_TEST(test_schema_upgrade2_resumed)
{
    static const uint8_t cid_sha256[] = {0x30, 0x12, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86,
                                         0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
                                         0x00, 0x02, 0x03, 0x05, 0x06, 0x07};
    struct ocsp_response_put p[2] = {put_of(FORM_A, 1, 100, 200), put_of(FORM_B, 2, 300, 400)};
    struct store *raw = ocsp_store_raw(os);
    struct store_txn *t = NULL;
    struct ocsp_issuer_rec in;
    const uint8_t ser[3] = {0x05, 0x06, 0x07};
    uint8_t v[256];
    size_t vlen;
    char buf[JOURNAL_MAX];

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(responses_put_backed(os, p, 2), ST_OK); /* re-keyed by the killed run */
    set_schema("2");
    ck_assert_int_eq(store_txn_begin(raw, true, &t), ST_OK);
    vlen = schema2_value(v, OCSP_HASH_SHA256, ser, 3, resp_a, sizeof(resp_a), 0, 0);
    ck_assert_int_eq(store_txn_put(t, store_db(raw, "responses"), cid_sha256, sizeof(cid_sha256), v,
                                   vlen, false),
                     ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    ocsp_store_close(os);
    os = ocsp_store_open(dir, MAP, false);
    ck_assert_ptr_nonnull(os);
    check_schema_now();
    ck_assert_uint_eq(count_db("responses"), 3);
    last_journal(buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "\"from\":2,\"to\":4,\"responses_dropped\":0,"
                                      "\"responses_rekeyed\":1,\"responses_rekeyed_before\":2"));
}
END_TEST

struct status_scan {
    int n;
    uint8_t first;
};

static bool
scan_status(void *ctx, const uint8_t *serial, size_t serial_len, const struct ocsp_status *st)
{
    struct status_scan *w = ctx;

    ck_assert_uint_ge(serial_len, 1);
    if (w->n == 0)
        w->first = serial[0];
    (void)st;
    w->n++;
    return true;
}

/* The walk stays within one issuer and goes in serial order. */
START_TEST(test_status_walk)
{
    X509 *other = make_ca("Other CA");
    unsigned char *der = NULL;
    int len = i2d_X509(other, &der);
    uint8_t other_id[OCSP_ISSUER_ID_LEN];
    struct status_scan w = {0};

    ck_assert_int_gt(len, 0);
    ck_assert_int_eq(ocsp_issuer_id_of(der, (size_t)len, other_id), ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
        ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial2, sizeof(serial2), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
        ST_OK);
    ck_assert_int_eq(ocsp_store_status_set(
                         os, &(struct ocsp_status_set){other_id,
                                                       serial1,
                                                       sizeof(serial1),
                                                       {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0},
                                                       "op"}),
                     ST_OK);
    ck_assert_int_eq(ocsp_store_status_walk(os, ca_id, scan_status, &w), ST_OK);
    ck_assert_int_eq(w.n, 2);
    ck_assert_uint_eq(w.first, serial2[0]); /* 00 ff 10 sorts before 01 02 03 */
    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(ocsp_store_status_walk(os, other_id, scan_status, &w), ST_OK);
    ck_assert_int_eq(w.n, 1);
    OPENSSL_free(der);
    X509_free(other);
}
END_TEST

struct serial_list {
    uint8_t s[8][OCSP_SERIAL_MAX];
    size_t len[8];
    int n, max; /* stop after max (0: never) */
};

static bool
collect_serial(void *ctx, const uint8_t *serial, size_t serial_len, const struct ocsp_status *st)
{
    struct serial_list *l = ctx;

    (void)st;
    ck_assert_int_lt(l->n, 8);
    memcpy(l->s[l->n], serial, serial_len);
    l->len[l->n++] = serial_len;
    return l->max == 0 || l->n < l->max;
}

static int
walk_from(const uint8_t *start, size_t len, struct serial_list *l)
{
    int max = l->max;

    memset(l, 0, sizeof(*l));
    l->max = max;
    return ocsp_store_status_walk_from(os, ca_id, start, len, collect_serial, l);
}

/* ocsp_store_status_walk_from starts after `start` (present or not) and stays within the
 * issuer; chunked walks resumed from the last serial see every serial exactly once. */
START_TEST(test_status_walk_from)
{
    static const uint8_t s01[] = {0x01}, s0102[] = {0x01, 0x02}, s02[] = {0x02}, s03[] = {0x03},
                         s0101[] = {0x01, 0x01}, s04[] = {0x04};
    static const uint8_t *const all[] = {s01, s0102, s02, s03};
    static const size_t lens[] = {1, 2, 1, 1};
    uint8_t other_id[OCSP_ISSUER_ID_LEN], big[OCSP_SERIAL_MAX + 1] = {0x01};
    struct serial_list l = {0};
    uint8_t last[OCSP_SERIAL_MAX];
    size_t last_len = 0;
    int seen = 0;

    memset(other_id, 0xff, sizeof(other_id)); /* sorts after ca_id */
    for (int i = 3; i >= 0; i--)
        ck_assert_int_eq(
            ocsp_store_status_set(
                os,
                &(struct ocsp_status_set){
                    ca_id, all[i], lens[i], {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
            ST_OK);
    ck_assert_int_eq(ocsp_store_status_set(
                         os,
                         &(struct ocsp_status_set){
                             other_id, s04, 1, {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
                     ST_OK);
    ck_assert_int_eq(walk_from(NULL, 0, &l), ST_OK);
    ck_assert_int_eq(l.n, 4);
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_eq(l.len[i], lens[i]);
        ck_assert_mem_eq(l.s[i], all[i], lens[i]);
    }
    ck_assert_int_eq(walk_from(s01, 1, &l), ST_OK); /* present: skipped */
    ck_assert_int_eq(l.n, 3);
    ck_assert_mem_eq(l.s[0], s0102, 2);
    ck_assert_int_eq(walk_from(s0101, 2, &l), ST_OK); /* absent: the next one */
    ck_assert_int_eq(l.n, 3);
    ck_assert_mem_eq(l.s[0], s0102, 2);
    ck_assert_int_eq(walk_from(s03, 1, &l), ST_OK); /* the last: nothing, not other's 04 */
    ck_assert_int_eq(l.n, 0);
    ck_assert_int_eq(walk_from(s01, 0, &l), ST_INVALID);
    ck_assert_int_eq(walk_from(big, sizeof(big), &l), ST_INVALID);
    /* chunks of 3: 01 0102 02 | 03 | (none) */
    l.max = 3;
    for (int round = 0; round < 4; round++) {
        ck_assert_int_eq(walk_from(last_len > 0 ? last : NULL, last_len, &l), ST_OK);
        for (int i = 0; i < l.n; i++, seen++) {
            ck_assert_int_lt(seen, 4);
            ck_assert_mem_eq(l.s[i], all[seen], lens[seen]);
        }
        if (l.n == 0)
            break;
        memcpy(last, l.s[l.n - 1], l.len[l.n - 1]);
        last_len = l.len[l.n - 1];
    }
    ck_assert_int_eq(seen, 4);
}
END_TEST

/* An issuer record written before crl_full_next_update existed (it ends at crl_number)
 * still decodes, with the full CRL's nextUpdate taken from crl_next_update. */
START_TEST(test_issuer_record_without_full_next_update)
{
    struct store *raw = ocsp_store_raw(os);
    struct ocsp_issuer_rec in, out;
    struct store_txn *t = NULL;
    uint8_t *v = NULL;
    size_t n = 0;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(store_get_alloc(raw, store_db(raw, "issuers"), ca_id, sizeof(ca_id), &v, &n),
                     ST_OK);
    ck_assert_uint_gt(n, 8);
    ck_assert_int_eq(store_txn_begin(raw, true, &t), ST_OK);
    ck_assert_uint_gt(n, 17);
    /* a record of before delta CRLs: without crl_full_next_update and the purge fields */
    ck_assert_int_eq(
        store_txn_put(t, store_db(raw, "issuers"), ca_id, sizeof(ca_id), v, n - 17, false), ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    free(v);
    ck_assert_int_eq(ocsp_store_issuer_get(os, ca_id, &out), ST_OK);
    ck_assert_uint_eq(out.crl_number, 0x123456789aull);
    ck_assert_int_eq(out.crl_next_update, 1700086400);
    ck_assert_int_eq(out.crl_full_next_update, 1700086400);
    ocsp_issuer_rec_clear(&out);
}
END_TEST

/* An issuer record written before purging existed (it ends at crl_full_next_update) still
 * loads: not qualified, no status purge (issue 10 §3). */
START_TEST(test_issuer_record_before_purge)
{
    struct store *raw = ocsp_store_raw(os);
    struct ocsp_issuer_rec in, out;
    struct store_txn *t = NULL;
    uint8_t *v = NULL;
    size_t n = 0;

    fill_issuer(&in, "ca-A");
    in.purge_status_after = 86400;
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(ocsp_store_issuer_get(os, ca_id, &out), ST_OK);
    ck_assert_uint_eq(out.purge_status_after, 86400);
    ck_assert(!out.qualified);
    ocsp_issuer_rec_clear(&out);
    ck_assert_int_eq(store_get_alloc(raw, store_db(raw, "issuers"), ca_id, sizeof(ca_id), &v, &n),
                     ST_OK);
    ck_assert_int_eq(store_txn_begin(raw, true, &t), ST_OK);
    ck_assert_int_eq(
        store_txn_put(t, store_db(raw, "issuers"), ca_id, sizeof(ca_id), v, n - 9, false), ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    free(v);
    ck_assert_int_eq(ocsp_store_issuer_get(os, ca_id, &out), ST_OK);
    ck_assert(!out.qualified);
    ck_assert_uint_eq(out.purge_status_after, 0);
    ck_assert_int_eq(out.crl_full_next_update, 1700090000);
    ck_assert_uint_eq(out.crl_number, 0x123456789aull);
    ocsp_issuer_rec_clear(&out);
}
END_TEST

/* LW-09, EID-06: a qualified issuer refuses the status purge setting (with the reason citing
 * eIDAS Art. 24(4) / LW-09); the setting needs unissued unknown; qualified round-trips. */
START_TEST(test_issuer_qualified_refuses_purge)
{
    struct ocsp_issuer_rec in, out;
    const char *why = NULL;

    fill_issuer(&in, "qca");
    in.qualified = true;
    in.purge_status_after = 365 * 86400;
    ck_assert_int_eq(ocsp_issuer_purge_check(&in, &why), ST_INVALID);
    ck_assert_ptr_nonnull(strstr(why, "LW-09"));
    ck_assert_ptr_nonnull(strstr(why, "Art. 24(4)"));
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_INVALID);
    ck_assert_int_eq(ocsp_store_issuer_get(os, ca_id, &out), ST_NOTFOUND);
    in.purge_status_after = 0;
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(ocsp_store_issuer_get(os, ca_id, &out), ST_OK);
    ck_assert(out.qualified);
    ck_assert_uint_eq(out.purge_status_after, 0);
    ocsp_issuer_rec_clear(&out);
    /* not qualified: allowed with unissued unknown only */
    in.qualified = false;
    in.purge_status_after = 86400;
    in.unissued_policy = OCSP_UNISSUED_REVOKED;
    ck_assert_int_eq(ocsp_issuer_purge_check(&in, &why), ST_INVALID);
    ck_assert_ptr_nonnull(strstr(why, "unknown"));
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_INVALID);
    in.unissued_policy = OCSP_UNISSUED_UNKNOWN;
    ck_assert_int_eq(ocsp_issuer_purge_check(&in, &why), ST_OK);
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
}
END_TEST

static const uint8_t serial3[] = {0x42};

/* Status records: serial1 expired long ago, serial2 expired yesterday, serial3 valid; an
 * answer stored for each (serial2's in two CertID forms). */
static void
purge_fixture(int64_t now)
{
    struct ocsp_response_put p[4];
    const struct {
        const uint8_t *serial;
        size_t len;
        int64_t not_after;
    } recs[] = {{serial1, sizeof(serial1), now - 400 * 86400},
                {serial2, sizeof(serial2), now - 86400},
                {serial3, sizeof(serial3), now + 86400}};

    for (size_t i = 0; i < 3; i++)
        ck_assert_int_eq(
            ocsp_store_status_set(os, &(struct ocsp_status_set){ca_id,
                                                                recs[i].serial,
                                                                recs[i].len,
                                                                {OCSP_STATE_GOOD, OCSP_REASON_NONE,
                                                                 0, recs[i].not_after},
                                                                "test"}),
            ST_OK);
    p[0] = put_of(FORM_A, 1, now, now + 3600);
    p[1] = put_of(FORM_B, 1, now, now + 3600);
    p[1].serial = serial2;
    p[1].serial_len = sizeof(serial2);
    p[2] = p[1];
    p[2].form = FORM_A;
    p[3] = put_of(FORM_A, 1, now, now + 3600);
    p[3].serial = serial3;
    p[3].serial_len = sizeof(serial3);
    ck_assert_int_eq(responses_put_backed(os, p, 4), ST_OK);
    ck_assert_uint_eq(count_db("responses"), 4);
}

/* Purging answers drops those of expired certificates only; every status record stays. */
START_TEST(test_purge_answers_keeps_status)
{
    struct ocsp_issuer_rec in;
    struct ocsp_status st;
    int64_t now = (int64_t)time(NULL);
    size_t n = 99;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    purge_fixture(now);
    ck_assert_int_eq(ocsp_store_responses_purge(os, ca_id, now, &n), ST_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(count_db("responses"), 1); /* serial3's, still valid */
    ck_assert_uint_eq(count_db("status"), 3);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial1, sizeof(serial1), &st), ST_OK);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial2, sizeof(serial2), &st), ST_OK);
    /* again: nothing left to drop */
    ck_assert_int_eq(ocsp_store_responses_purge(os, ca_id, now, &n), ST_OK);
    ck_assert_uint_eq(n, 0);
}
END_TEST

/* Status purging only where the issuer allows it (never for a qualified one), only past its
 * cutoff, with the answers of what it removes. */
START_TEST(test_status_purge_only_where_allowed)
{
    struct ocsp_issuer_rec in;
    struct ocsp_status st;
    int64_t now = (int64_t)time(NULL);
    size_t n = 99, answers = 99;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    purge_fixture(now);
    /* not allowed: no setting */
    ck_assert_int_eq(ocsp_store_status_purge(os, ca_id, now, &n, &answers), ST_INVALID);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(count_db("status"), 3);
    ck_assert_uint_eq(count_db("responses"), 4);
    /* qualified: refused (and the setting cannot be stored for it) */
    in.qualified = true;
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(ocsp_store_status_purge(os, ca_id, now, &n, &answers), ST_INVALID);
    in.purge_status_after = 30 * 86400;
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_INVALID);
    ck_assert_int_eq(ocsp_store_status_purge(os, ca_id, now, &n, &answers), ST_INVALID);
    ck_assert_uint_eq(count_db("status"), 3);
    /* allowed: 30 days after expiry, unissued unknown */
    in.qualified = false;
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(ocsp_store_status_purge(os, ca_id, now, &n, &answers), ST_OK);
    ck_assert_uint_eq(n, 1);       /* serial1 only: serial2 expired yesterday */
    ck_assert_uint_eq(answers, 1); /* serial1's answer */
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial1, sizeof(serial1), &st), ST_NOTFOUND);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial2, sizeof(serial2), &st), ST_OK);
    ck_assert_int_eq(ocsp_store_status_get(os, ca_id, serial3, sizeof(serial3), &st), ST_OK);
    ck_assert_uint_eq(count_db("status"), 2);
    ck_assert_uint_eq(count_db("responses"), 3);
    /* an unknown issuer */
    ck_assert_int_eq(ocsp_store_status_purge(os,
                                             (const uint8_t *)"0123456789abcdef0123456789abcdef",
                                             now, &n, &answers),
                     ST_NOTFOUND);
}
END_TEST

/* The issuer's settings change while a status purge runs (between its read of a chunk and
 * the removal): marked qualified (with purge-status-after never), or its purge-status-after
 * lengthened. What the purge removes must follow the settings stored when it removes, never
 * those it started with: a qualified issuer loses no status (LW-09, EID-06). Failed before
 * the removal re-read the issuer in its write transaction. */
static struct ocsp_issuer_rec hook_rec;
static int hook_calls;

static void
purge_hook_change_issuer(struct ocsp_store *s, void *arg)
{
    (void)arg;
    hook_calls++;
    ck_assert_int_eq(ocsp_store_issuer_put(s, &hook_rec), ST_OK);
}

START_TEST(test_status_purge_follows_settings_changed_meanwhile)
{
    struct ocsp_issuer_rec in;
    int64_t now = (int64_t)time(NULL);
    size_t n = 99, answers = 99;

    fill_issuer(&in, "ca-A");
    in.unissued_policy = OCSP_UNISSUED_UNKNOWN;
    in.purge_status_after = 30 * 86400;
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    purge_fixture(now); /* serial1 expired 400 days ago: past the 30-day cutoff */
    /* marked qualified meanwhile: nothing removed, refused */
    hook_rec = in;
    hook_rec.qualified = true;
    hook_rec.purge_status_after = 0;
    hook_calls = 0;
    ocsp_store_purge_chunk_hook = purge_hook_change_issuer;
    ck_assert_int_ne(ocsp_store_status_purge(os, ca_id, now, &n, &answers), ST_OK);
    ocsp_store_purge_chunk_hook = NULL;
    ck_assert_int_eq(hook_calls, 1);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(count_db("status"), 3);
    /* allowed again, then lengthened to 1000 days meanwhile: serial1 is not past it */
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    hook_rec = in;
    hook_rec.purge_status_after = 1000 * 86400ull;
    ocsp_store_purge_chunk_hook = purge_hook_change_issuer;
    ck_assert_int_eq(ocsp_store_status_purge(os, ca_id, now, &n, &answers), ST_OK);
    ocsp_store_purge_chunk_hook = NULL;
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(count_db("status"), 3);
}
END_TEST

/* An answer signed for a status record that is gone (stored by a re-sign that raced a status
 * purge: its stamp is the removed record's) is never served (ocsp_try_stored wants stamp 0
 * without a record): purging answers drops it; an answer signed without a record (stamp 0,
 * certStatus as the unissued policy says) stays. Failed before: both stayed for ever. */
START_TEST(test_purge_answers_drops_orphans)
{
    static const uint8_t serial9[] = {0x09, 0x09};
    struct ocsp_issuer_rec in;
    struct ocsp_response_put p[2];
    int64_t now = (int64_t)time(NULL);
    size_t n = 99;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    /* the same serial in two CertID forms: one signed without a record, one signed for a
     * record that is then removed behind the store's back (as an older release's re-sign that
     * raced a status purge left it) */
    p[0] = put_of(FORM_A, 0, now, now + 3600);
    p[1] = put_of(FORM_B, 0, now, now + 3600);
    for (size_t i = 0; i < 2; i++) {
        p[i].serial = serial9;
        p[i].serial_len = sizeof(serial9);
    }
    ck_assert_int_eq(responses_put(os, &p[1], 1), ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial9, sizeof(serial9), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
        ST_OK);
    ck_assert_int_eq(responses_put_backed(os, p, 1), ST_OK);
    ck_assert_uint_gt(p[0].stamp, 0);
    raw_status_del(serial9, sizeof(serial9));
    ck_assert_int_eq(ocsp_store_responses_purge(os, ca_id, now, &n), ST_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(count_db("responses"), 1);
}
END_TEST

/* A refresh writes only over the answer still stored: one a purge removed while it was being
 * signed is not written back (it would outlive its status record; LW-09), and a stored one
 * is replaced. */
START_TEST(test_response_replace_only_over_stored)
{
    struct ocsp_issuer_rec in;
    struct ocsp_response_put p;
    struct ocsp_response_found f;
    int64_t now = (int64_t)time(NULL);
    uint64_t s2;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
        ST_OK);
    p = put_of(FORM_A, stamp_now(os, ca_id, serial1, sizeof(serial1)), now, now + 3600);
    p.replace = true;
    ck_assert_int_eq(responses_put(os, &p, 1), ST_NOTFOUND);
    ck_assert_uint_eq(count_db("responses"), 0);
    p.replace = false;
    ck_assert_int_eq(responses_put(os, &p, 1), ST_OK);
    /* the record changes (its answer marked stale), the refresh signs for the new one */
    ck_assert_int_eq(ocsp_store_status_set(
                         os,
                         &(struct ocsp_status_set){
                             ca_id, serial1, sizeof(serial1), {OCSP_STATE_HOLD, 6, 1000, 0}, "op"}),
                     ST_OK);
    s2 = stamp_now(os, ca_id, serial1, sizeof(serial1));
    p = put_of(FORM_A, s2, now + 10, now + 3610);
    p.replace = true;
    ck_assert_int_eq(responses_put(os, &p, 1), ST_OK);
    ck_assert_uint_eq(count_db("responses"), 1);
    ck_assert_int_eq(response_get(FORM_A, serial1, sizeof(serial1), false, &f), ST_OK);
    ck_assert_uint_eq(f.resp.stamp, s2);
    ck_assert_int_eq(f.resp.next_update, now + 3610);
    free(f.resp.der);
}
END_TEST

/* The Backing rule (schema 4, ocsp_store.h): a status change marks every stored answer of its
 * serial stale, in the write transaction of the change (each CertID form; another serial's
 * answers untouched); the one-tree read (stamp_only) then reads the record and sees the
 * answer is not current. Failed before: the answers kept the old record's stamp, so a reader
 * of the answer alone would serve the old status. */
START_TEST(test_backing_change_marks_stale)
{
    static const uint8_t forms[] = {FORM_A, FORM_B, FORM_A | OCSP_FORM_NOPARAMS};
    struct ocsp_issuer_rec in;
    struct ocsp_response_put p[4];
    struct ocsp_response_found f;
    struct ocsp_response_query q = {.issuer_id = ca_id,
                                    .serial = serial1,
                                    .serial_len = sizeof(serial1),
                                    .form = FORM_A,
                                    .status = true,
                                    .stamp_only = true};
    struct ocsp_change ch[4];
    uint64_t s1, s2;
    size_t n = 0;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    for (size_t i = 0; i < 2; i++)
        ck_assert_int_eq(
            ocsp_store_status_set(
                os, &(struct ocsp_status_set){ca_id,
                                              i == 0 ? serial1 : serial2,
                                              3,
                                              {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0},
                                              "op"}),
            ST_OK);
    for (size_t i = 0; i < 3; i++)
        p[i] = put_of(forms[i], 0, 100, 200);
    p[3] = put_of(FORM_A, 0, 100, 200);
    p[3].serial = serial2;
    ck_assert_int_eq(responses_put_backed(os, p, 4), ST_OK);
    s1 = p[0].stamp;
    ck_assert_uint_gt(s1, 0);
    /* backed: the answer alone gives the record's stamp */
    ck_assert_int_eq(ocsp_store_response_get(os, &q, &f), ST_OK);
    ck_assert(f.status_found);
    ck_assert_uint_eq(f.status.stamp, s1);
    ck_assert_uint_eq(f.resp.stamp, s1);
    free(f.resp.der);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_REVOKED, 1, 1000, 0}, "op"}),
        ST_OK);
    s2 = stamp_now(os, ca_id, serial1, sizeof(serial1));
    ck_assert_uint_gt(s2, s1);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(response_get(forms[i], serial1, sizeof(serial1), false, &f), ST_OK);
        ck_assert_uint_eq(f.resp.stamp, OCSP_STAMP_STALE);
        ck_assert_mem_eq(f.resp.der, resp_a, sizeof(resp_a)); /* the rest of it as it was */
        ck_assert_int_eq(f.resp.next_update, 200);
        free(f.resp.der);
    }
    ck_assert_int_eq(response_get(FORM_A, serial2, sizeof(serial2), false, &f), ST_OK);
    ck_assert_uint_eq(f.resp.stamp, p[3].stamp);
    free(f.resp.der);
    /* the one-tree read: stale, so the record is read, and it is not the answer's */
    ck_assert_int_eq(ocsp_store_response_get(os, &q, &f), ST_OK);
    ck_assert(f.status_found);
    ck_assert_uint_eq(f.status.stamp, s2);
    ck_assert_uint_eq(f.status.state, OCSP_STATE_REVOKED);
    ck_assert_uint_ne(f.resp.stamp, f.status.stamp);
    free(f.resp.der);
    /* and it is still re-signed at once (EID-05) */
    ck_assert_int_eq(changes_take(os, ch, 4, &n), ST_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_mem_eq(ch[0].serial, serial1, sizeof(serial1));
    /* a refusal changes nothing: the marks stay, nothing else is written */
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
        ST_EXISTS);
    ck_assert_uint_eq(stamp_now(os, ca_id, serial1, sizeof(serial1)), s2);
}
END_TEST

/* An answer is written only while the record it was signed for is the one stored: signed for
 * an earlier record (a change landed while it was signed), for no record while one exists, or
 * for a record that is gone: ST_NOTFOUND, nothing written (a stale mark is not overwritten).
 * Failed before: each was stored, and only the two-tree read told them apart. */
START_TEST(test_backing_put_checks_record)
{
    struct ocsp_issuer_rec in;
    struct ocsp_response_put p = put_of(FORM_A, 0, 100, 200);
    struct ocsp_response_found f;
    uint64_t s1, s2;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    /* no record: stamp 0 only */
    p.stamp = 5;
    ck_assert_int_eq(responses_put(os, &p, 1), ST_NOTFOUND);
    p.stamp = OCSP_STAMP_STALE;
    ck_assert_int_eq(responses_put(os, &p, 1), ST_INVALID);
    ck_assert_uint_eq(count_db("responses"), 0);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
        ST_OK);
    s1 = stamp_now(os, ca_id, serial1, sizeof(serial1));
    p.stamp = 0; /* signed before the record was added */
    ck_assert_int_eq(responses_put(os, &p, 1), ST_NOTFOUND);
    p.stamp = s1 - 1;
    ck_assert_int_eq(responses_put(os, &p, 1), ST_NOTFOUND);
    ck_assert_uint_eq(count_db("responses"), 0);
    p.stamp = s1;
    ck_assert_int_eq(responses_put(os, &p, 1), ST_OK);
    /* revoked while a refresh signed for s1: the refresh is not written over the mark */
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_REVOKED, 1, 1000, 0}, "op"}),
        ST_OK);
    s2 = stamp_now(os, ca_id, serial1, sizeof(serial1));
    p.replace = true;
    ck_assert_int_eq(responses_put(os, &p, 1), ST_NOTFOUND);
    ck_assert_int_eq(response_get(FORM_A, serial1, sizeof(serial1), false, &f), ST_OK);
    ck_assert_uint_eq(f.resp.stamp, OCSP_STAMP_STALE);
    free(f.resp.der);
    p.stamp = s2;
    ck_assert_int_eq(responses_put(os, &p, 1), ST_OK);
    ck_assert_int_eq(response_get(FORM_A, serial1, sizeof(serial1), false, &f), ST_OK);
    ck_assert_uint_eq(f.resp.stamp, s2);
    free(f.resp.der);
    /* a record removed behind the store's back: its answer's put refused */
    raw_status_del(serial1, sizeof(serial1));
    p.replace = false;
    ck_assert_int_eq(responses_put(os, &p, 1), ST_NOTFOUND);
}
END_TEST

/* A re-sign stored between a status purge's answer purge and its removal of the records (the
 * purge's chunk hook stands for the refresher) goes with its record, counted. Failed before:
 * it outlived the record. */
static void
purge_hook_resign(struct ocsp_store *s, void *arg)
{
    struct ocsp_response_put p = put_of(FORM_B | OCSP_FORM_NOPARAMS, 0, 100, 200);

    (void)arg;
    hook_calls++;
    ck_assert_int_eq(responses_put_backed(s, &p, 1), ST_OK); /* serial1: expired, purged */
}

START_TEST(test_backing_status_purge_takes_answers)
{
    struct ocsp_issuer_rec in;
    int64_t now = (int64_t)time(NULL);
    size_t n = 0, answers = 0;

    fill_issuer(&in, "ca-A");
    in.purge_status_after = 30 * 86400;
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    purge_fixture(now);
    hook_calls = 0;
    ocsp_store_purge_chunk_hook = purge_hook_resign;
    ck_assert_int_eq(ocsp_store_status_purge(os, ca_id, now, &n, &answers), ST_OK);
    ocsp_store_purge_chunk_hook = NULL;
    ck_assert_int_eq(hook_calls, 1);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(answers, 2); /* the purged one, and the re-signed one */
    ck_assert_uint_eq(count_db("responses"), 3);
    ck_assert_uint_eq(stamp_now(os, ca_id, serial1, sizeof(serial1)), 0);
}
END_TEST

/* Schema 3 -> 4: the answers an older release left unbacked (signed for a record that changed
 * since, or one that is gone, or under no stored issuer) are dropped; those backed, those
 * signed without a record (stamp 0) and the stale-marked stay; more than one chunk; one journal
 * entry; nothing more on the next open. */
START_TEST(test_schema_upgrade3)
{
    enum { N = 4100 };
    static uint8_t serials[N][3];
    static struct ocsp_response_put p[N];
    struct ocsp_issuer_rec in;
    struct ocsp_response_put q;
    struct store *raw = ocsp_store_raw(os);
    struct store_txn *t = NULL;
    uint8_t key[OCSP_RESP_KEY_MAX], v[256], other[OCSP_ISSUER_ID_LEN];
    size_t journal, klen, vlen, unbacked = 0;
    char buf[JOURNAL_MAX], want[128];

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    for (size_t i = 0; i < N; i++) {
        serials[i][0] = 0x20;
        serials[i][1] = (uint8_t)(i >> 8);
        serials[i][2] = (uint8_t)i;
        if (i % 5 != 4) /* every fifth without a record: stamp 0 */
            ck_assert_int_eq(
                ocsp_store_status_set(
                    os,
                    &(struct ocsp_status_set){
                        ca_id, serials[i], 3, {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
                ST_OK);
        p[i] = put_of(FORM_A, 0, 100, 200);
        p[i].serial = serials[i];
        p[i].serial_len = 3;
    }
    ck_assert_int_eq(responses_put_backed(os, p, N), ST_OK);
    /* what an older release left: every fifth from the first changed without its answer
     * marked (its stamp rewritten to an earlier one, raw), every fifth from the second with its
     * record gone; the third's stale-marked by a change */
    ck_assert_int_eq(store_txn_begin(raw, true, &t), ST_OK);
    for (size_t i = 0; i < N; i += 5) {
        klen = ocsp_response_key(ca_id, serials[i], 3, FORM_A, key);
        vlen = raw_value(serials[i], 3, FORM_A, v, sizeof(v));
        v[8] ^= 1;
        ck_assert_int_eq(store_txn_put(t, store_db(raw, "responses"), key, klen, v, vlen, false),
                         ST_OK);
        unbacked++;
    }
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    for (size_t i = 1; i < N; i += 5) {
        raw_status_del(serials[i], 3);
        unbacked++;
    }
    for (size_t i = 2; i < N; i += 5)
        ck_assert_int_eq(ocsp_store_status_set(
                             os,
                             &(struct ocsp_status_set){
                                 ca_id, serials[i], 3, {OCSP_STATE_REVOKED, 1, 1000, 0}, "op"}),
                         ST_OK);
    /* an answer under an issuer no longer stored (written raw: its put would be refused) */
    memset(other, 0x77, sizeof(other));
    klen = ocsp_response_key(other, serial1, sizeof(serial1), FORM_A, key);
    vlen = raw_value(serials[0], 3, FORM_A, v, sizeof(v));
    v[8] ^= 2;
    ck_assert_int_eq(store_txn_begin(raw, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_put(t, store_db(raw, "responses"), key, klen, v, vlen, false),
                     ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    unbacked++;
    ck_assert_uint_eq(count_db("responses"), N + 1);
    set_schema("3");
    journal = count_db("journal");
    ocsp_store_close(os);
    os = NULL;
    ck_assert_ptr_null(ocsp_store_open(dir, MAP, true)); /* read-only: refused */
    os = ocsp_store_open(dir, MAP, false);
    ck_assert_ptr_nonnull(os);
    check_schema_now();
    ck_assert_uint_eq(count_db("responses"), N + 1 - unbacked);
    ck_assert_uint_eq(count_db("journal"), journal + 1);
    last_journal(buf, sizeof(buf));
    snprintf(want, sizeof(want), "\"from\":3,\"to\":4,\"responses_dropped\":%zu,", unbacked);
    ck_assert_ptr_nonnull(strstr(buf, want));
    for (size_t i = 0; i < N; i++) {
        struct ocsp_response_found f;
        int rc = response_get(FORM_A, serials[i], 3, false, &f);

        ck_assert_int_eq(rc, i % 5 < 2 ? ST_NOTFOUND : ST_OK);
        if (rc == ST_OK) {
            ck_assert_uint_eq(f.resp.stamp, i % 5 == 2   ? OCSP_STAMP_STALE
                                            : i % 5 == 3 ? stamp_now(os, ca_id, serials[i], 3)
                                                         : 0);
            free(f.resp.der);
        }
    }
    /* what it keeps is backed: a put of the same answers is taken */
    q = p[3];
    ck_assert_int_eq(responses_put(os, &q, 1), ST_OK);
    ocsp_store_close(os);
    os = ocsp_store_open(dir, MAP, false);
    ck_assert_ptr_nonnull(os);
    ck_assert_uint_eq(count_db("journal"), journal + 1);
}
END_TEST

/* The upgrade to schema 4 waits until no other process has the store open (review13): an
 * older release's ocspd or ocspctl still running would go on writing answers without the
 * Backing rule's check (one signed for the record a revocation just replaced), and the new
 * ocspd would serve them without reading the record. Another process with a reader slot (here
 * a child that has read the store, as any running ocspd or ocspctl has) makes the writable
 * open of a schema-3 store fail, the store left as it is; once it is gone the open upgrades.
 * Failed before: upgraded under the running process. */
START_TEST(test_schema_upgrade_waits_for_other_processes)
{
    static const char *const names[] = {"meta"};
    int up[2], down[2];
    char c = 0, buf[16];
    size_t n = 0;
    struct store *raw;
    pid_t pid;
    int wst = 0;

    set_schema("3");
    ocsp_store_close(os);
    os = NULL;
    ck_assert_int_eq(pipe(up), 0);
    ck_assert_int_eq(pipe(down), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) { /* an older release's process: it has read the store, and keeps it open */
        struct store *r = store_open(dir, MAP, names, 1, true);

        if (r == NULL || store_get(r, 0, "schema_version", 14, buf, sizeof(buf), &n) != ST_OK ||
            write(up[1], "r", 1) != 1 || read(down[0], &c, 1) != 1)
            _exit(1);
        store_close(r);
        _exit(0);
    }
    ck_assert_int_eq(read(up[0], &c, 1), 1);
    ck_assert_ptr_null(ocsp_store_open(dir, MAP, false));
    raw = store_open(dir, MAP, names, 1, true);
    ck_assert_ptr_nonnull(raw);
    ck_assert_int_eq(store_get(raw, 0, "schema_version", 14, buf, sizeof(buf), &n), ST_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(buf[0], '3'); /* not upgraded */
    store_close(raw);
    ck_assert_int_eq(write(down[1], "x", 1), 1);
    ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
    ck_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    os = ocsp_store_open(dir, MAP, false);
    ck_assert_ptr_nonnull(os);
    check_schema_now();
    for (int i = 0; i < 2; i++) {
        close(up[i]);
        close(down[i]);
    }
}
END_TEST

/* The seam's stand-in for a crash: the upgrading process ends after its first chunk. */
static void
upgrade_crash(void)
{
    _exit(7);
}

/*
 * An upgrade marks the store as being upgraded before it changes anything (schema_version
 * "3u": a value every older release refuses), so that an older ocspd or ocspctl started while
 * it runs, or after it stopped part-way, cannot open the store and write answers without the
 * Backing rule (review13 leftover; STANDARDS EID-05). Here the upgrade ends after its first
 * chunk as in a crash: the store says "3u", not "3"; ocspd -n's check takes it (it will be
 * upgraded), a plain read-only open refuses it, and the next writable open finishes the
 * upgrade (schema 4, the unbacked answer dropped).
 */
START_TEST(test_schema_upgrade_marked_while_it_runs)
{
    static const char *const names[] = {"meta"};
    struct ocsp_issuer_rec in;
    struct ocsp_response_put p[2] = {put_of(FORM_A, 0, 100, 200), put_of(FORM_A, 0, 100, 200)};
    struct ocsp_response_found f;
    struct ocsp_store *ro;
    struct store *raw;
    char buf[16];
    size_t n = 0;
    pid_t pid;
    int wst = 0;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    p[1].serial = serial2;
    for (size_t i = 0; i < 2; i++)
        ck_assert_int_eq(
            ocsp_store_status_set(
                os, &(struct ocsp_status_set){ca_id,
                                              p[i].serial,
                                              p[i].serial_len,
                                              {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0},
                                              "op"}),
            ST_OK);
    ck_assert_int_eq(responses_put_backed(os, p, 2), ST_OK);
    raw_status_del(serial1, sizeof(serial1)); /* gone, as an older release could leave it */
    set_schema("3");
    ocsp_store_close(os);
    os = NULL;
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ocsp_store_upgrade_chunk_hook = upgrade_crash;
        ocsp_store_open(dir, MAP, false);
        _exit(0); /* no chunk committed: the seam was not reached */
    }
    ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
    ck_assert_msg(WIFEXITED(wst) && WEXITSTATUS(wst) == 7, "the upgrade did not reach a chunk");
    raw = store_open(dir, MAP, names, 1, true);
    ck_assert_ptr_nonnull(raw);
    ck_assert_int_eq(store_get(raw, 0, "schema_version", 14, buf, sizeof(buf), &n), ST_OK);
    store_close(raw);
    ck_assert_msg(n == 2 && memcmp(buf, "3u", 2) == 0,
                  "schema_version '%.*s' part-way through the upgrade: an older release opens it",
                  (int)n, buf);
    ck_assert_ptr_null(ocsp_store_open(dir, MAP, true));
    ro = ocsp_store_open_check(dir, MAP);
    ck_assert_ptr_nonnull(ro);
    ocsp_store_close(ro);
    os = ocsp_store_open(dir, MAP, false);
    ck_assert_ptr_nonnull(os);
    check_schema_now();
    ck_assert_int_eq(response_get(FORM_A, serial1, sizeof(serial1), false, &f), ST_NOTFOUND);
    ck_assert_int_eq(response_get(FORM_A, serial2, sizeof(serial2), false, &f), ST_OK);
    free(f.resp.der);
}
END_TEST

/* The seam's stand-in for a long upgrade: the upgrading process says it is part-way
 * (upgrade_up) and waits until told to go on (upgrade_go). */
static int upgrade_up[2], upgrade_go[2];

static void
upgrade_pause(void)
{
    char c = 0;

    if (write(upgrade_up[1], "u", 1) != 1 || read(upgrade_go[0], &c, 1) < 0)
        _exit(8);
}

/*
 * A new-release process that opens the store for writing while another one upgrades it finds
 * the mark ("3u") of an upgrade that runs, not of one that stopped part-way: it is refused
 * (the upgrading process has the store open), the mark and the running upgrade left alone, and
 * the store is upgraded once, with one journal entry (review15 of the mark; STANDARDS EID-05).
 * Failed before: the upgrading process held no reader slot (its walks end their read
 * transactions), so the second took the mark for a stopped upgrade and ran a second upgrade
 * alongside, journalled twice; and had the first then taken its mark back (an older process
 * seen), the second would have gone on upgrading a store that older releases open again.
 */
START_TEST(test_schema_upgrade_refused_while_another_upgrades)
{
    static const char *const names[] = {"meta"};
    struct ocsp_issuer_rec in;
    struct ocsp_response_put p[2] = {put_of(FORM_A, 0, 100, 200), put_of(FORM_A, 0, 100, 200)};
    struct ocsp_store *second;
    struct store *raw;
    char buf[16], c = 0;
    size_t n = 0, journal0;
    pid_t pid;
    int wst = 0;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    p[1].serial = serial2;
    for (size_t i = 0; i < 2; i++)
        ck_assert_int_eq(
            ocsp_store_status_set(
                os, &(struct ocsp_status_set){ca_id,
                                              p[i].serial,
                                              p[i].serial_len,
                                              {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0},
                                              "op"}),
            ST_OK);
    ck_assert_int_eq(responses_put_backed(os, p, 2), ST_OK);
    raw_status_del(serial1, sizeof(serial1)); /* unbacked: the upgrade has a chunk to drop */
    set_schema("3");
    journal0 = count_db("journal");
    ocsp_store_close(os);
    os = NULL;
    ck_assert_int_eq(pipe(upgrade_up), 0);
    ck_assert_int_eq(pipe(upgrade_go), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) { /* the first: it upgrades, and waits part-way */
        struct ocsp_store *first;

        ocsp_store_upgrade_chunk_hook = upgrade_pause;
        first = ocsp_store_open(dir, MAP, false);
        ocsp_store_close(first);
        _exit(first != NULL ? 0 : 1);
    }
    ck_assert_int_eq(read(upgrade_up[0], &c, 1), 1);
    second = ocsp_store_open(dir, MAP, false);
    ocsp_store_close(second);
    raw = store_open(dir, MAP, names, 1, true);
    ck_assert_ptr_nonnull(raw);
    ck_assert_int_eq(store_get(raw, 0, "schema_version", 14, buf, sizeof(buf), &n), ST_OK);
    store_close(raw);
    ck_assert_int_eq(write(upgrade_go[1], "g", 1), 1);
    ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
    ck_assert_msg(second == NULL,
                  "a second writable open ran its own upgrade while another was part-way");
    ck_assert_msg(n == 2 && memcmp(buf, "3u", 2) == 0,
                  "schema_version '%.*s' while the first upgrade is part-way", (int)n, buf);
    ck_assert_msg(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "the first upgrade did not end");
    os = ocsp_store_open(dir, MAP, false);
    ck_assert_ptr_nonnull(os);
    check_schema_now();
    ck_assert_uint_eq(count_db("journal"), journal0 + 1); /* one upgrade, journalled once */
    for (int i = 0; i < 2; i++) {
        close(upgrade_up[i]);
        close(upgrade_go[i]);
    }
}
END_TEST

/* A batch counts the stored answers its status changes marked stale (review13: an import
 * commits early when they are many, each one's page copied until the commit); a checkpoint
 * starts again from 0; none without a batch, none for a new record. */
START_TEST(test_batch_marked)
{
    struct ocsp_issuer_rec in;
    struct ocsp_response_put p[2] = {put_of(FORM_A, 0, 100, 200), put_of(FORM_B, 0, 100, 200)};

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
        ST_OK);
    ck_assert_int_eq(responses_put_backed(os, p, 2), ST_OK);
    ck_assert_uint_eq(ocsp_store_batch_marked(os), 0);
    ck_assert_int_eq(ocsp_store_batch_begin(os), ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial2, sizeof(serial2), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
        ST_OK);
    ck_assert_uint_eq(ocsp_store_batch_marked(os), 0);
    ck_assert_int_eq(ocsp_store_status_set(
                         os,
                         &(struct ocsp_status_set){
                             ca_id, serial1, sizeof(serial1), {OCSP_STATE_HOLD, 6, 1000, 0}, "op"}),
                     ST_OK);
    ck_assert_uint_eq(ocsp_store_batch_marked(os), 2);
    ck_assert_int_eq(ocsp_store_batch_checkpoint(os), ST_OK);
    ck_assert_uint_eq(ocsp_store_batch_marked(os), 0);
    /* marked already: not counted again */
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0}, "op"}),
        ST_OK);
    ck_assert_uint_eq(ocsp_store_batch_marked(os), 0);
    ck_assert_int_eq(ocsp_store_batch_commit(os), ST_OK);
    ck_assert_uint_eq(ocsp_store_batch_marked(os), 0);
}
END_TEST

/* An answer is written only under a form a status change marks (each hash of enum ocsp_hash,
 * with or without parameters): one under another form byte would never be marked stale and
 * would stay backed-looking through every change of its record (review13, EID-05). Failed
 * before: any form byte but 0 was taken. */
START_TEST(test_backing_put_known_forms)
{
    static const uint8_t bad[] = {5, 0x7f, OCSP_FORM_NOPARAMS, 5 | OCSP_FORM_NOPARAMS, 0xff};
    struct ocsp_issuer_rec in;
    struct ocsp_response_put p = put_of(FORM_A, 0, 100, 200);

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    for (size_t i = 0; i < sizeof(bad); i++) {
        p.form = bad[i];
        ck_assert_int_eq(responses_put(os, &p, 1), ST_INVALID);
    }
    ck_assert_uint_eq(count_db("responses"), 0);
    for (uint8_t h = OCSP_HASH_SHA1; h <= OCSP_HASH_SHA512; h++) {
        p.form = h;
        ck_assert_int_eq(responses_put(os, &p, 1), ST_OK);
        p.form = h | OCSP_FORM_NOPARAMS;
        ck_assert_int_eq(responses_put(os, &p, 1), ST_OK);
    }
    ck_assert_uint_eq(count_db("responses"), 8);
}
END_TEST

/* The upgrade to schema 4 with a status record that does not decode (a corrupt store): that
 * serial's answer is dropped (nothing says it is backed; never served) and the upgrade goes
 * on, the other answers kept. Failed before: the upgrade stopped at that record, so the store
 * could not be opened writable at all (ocspd would not start) for one bad record (review13). */
START_TEST(test_schema_upgrade3_corrupt_record)
{
    struct ocsp_issuer_rec in;
    struct ocsp_response_put p[2] = {put_of(FORM_A, 0, 100, 200), put_of(FORM_A, 0, 100, 200)};
    struct store *raw = ocsp_store_raw(os);
    struct store_txn *t = NULL;
    struct ocsp_response_found f;
    uint8_t key[OCSP_ISSUER_ID_LEN + OCSP_SERIAL_MAX], bad[39] = {0};

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    p[1].serial = serial2;
    for (size_t i = 0; i < 2; i++)
        ck_assert_int_eq(
            ocsp_store_status_set(
                os, &(struct ocsp_status_set){ca_id,
                                              p[i].serial,
                                              p[i].serial_len,
                                              {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0},
                                              "op"}),
            ST_OK);
    ck_assert_int_eq(responses_put_backed(os, p, 2), ST_OK);
    memcpy(key, ca_id, OCSP_ISSUER_ID_LEN);
    memcpy(key + OCSP_ISSUER_ID_LEN, serial1, sizeof(serial1));
    ck_assert_int_eq(store_txn_begin(raw, true, &t), ST_OK);
    ck_assert_int_eq(store_txn_put(t, store_db(raw, "status"), key,
                                   OCSP_ISSUER_ID_LEN + sizeof(serial1), bad, sizeof(bad), false),
                     ST_OK);
    ck_assert_int_eq(store_txn_commit(t), ST_OK);
    set_schema("3");
    ocsp_store_close(os);
    os = ocsp_store_open(dir, MAP, false);
    ck_assert_ptr_nonnull(os);
    check_schema_now();
    ck_assert_int_eq(response_get(FORM_A, serial1, sizeof(serial1), false, &f), ST_NOTFOUND);
    ck_assert_int_eq(response_get(FORM_A, serial2, sizeof(serial2), false, &f), ST_OK);
    free(f.resp.der);
}
END_TEST

/* Many answers (more than one purge chunk) of three issuers: only the asked issuer's expired
 * ones go (its range of keys: the issuers before and after it keep theirs). */
START_TEST(test_purge_answers_chunks)
{
    enum { N = 5000 };
    struct ocsp_issuer_rec in;
    uint8_t before[OCSP_ISSUER_ID_LEN], after[OCSP_ISSUER_ID_LEN];
    static uint8_t serials[N][3];
    static struct ocsp_response_put p[N];
    int64_t now = (int64_t)time(NULL);
    size_t n = 0;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    purge_fixture(now); /* serial1, serial2 expired, 3 answers of theirs */
    memcpy(before, ca_id, sizeof(before));
    memcpy(after, ca_id, sizeof(after));
    before[7]--; /* prefixes just before and just after ca_id's */
    after[7]++;
    for (size_t i = 0; i < N; i++) {
        /* half of them expired serials of ca_id, the other half other issuers' */
        serials[i][0] = 0x10;
        serials[i][1] = (uint8_t)(i >> 8);
        serials[i][2] = (uint8_t)i;
        p[i] = put_of(FORM_A, 1, now, now + 3600);
        p[i].serial = serials[i];
        p[i].serial_len = 3;
        if (i % 2)
            p[i].issuer_id = i % 4 == 1 ? before : after;
        else
            ck_assert_int_eq(
                ocsp_store_status_set(
                    os, &(struct ocsp_status_set){ca_id,
                                                  serials[i],
                                                  3,
                                                  {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, now - 1},
                                                  "test"}),
                ST_OK);
    }
    ck_assert_int_eq(responses_put_backed(os, p, N), ST_OK);
    ck_assert_uint_eq(count_db("responses"), N + 4);
    ck_assert_int_eq(ocsp_store_responses_purge(os, ca_id, now, &n), ST_OK);
    ck_assert_uint_eq(n, N / 2 + 3);
    ck_assert_uint_eq(count_db("responses"), N / 2 + 1);
}
END_TEST

/* Child: open read-only, wait for the parent's go, then check serial1 is revoked. */
static int
reader_child(int ready_fd, int go_fd)
{
    struct ocsp_store *ro = ocsp_store_open(dir, MAP, true);
    struct ocsp_status st;
    char c = 'r';

    if (ro == NULL)
        return 10;
    if (ocsp_store_status_get(ro, ca_id, serial1, sizeof(serial1), &st) != ST_NOTFOUND)
        return 11;
    if (write(ready_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 1)
        return 12;
    if (ocsp_store_status_get(ro, ca_id, serial1, sizeof(serial1), &st) != ST_OK)
        return 13;
    if (st.state != OCSP_STATE_REVOKED || ocsp_store_issuers_gen(ro) == 0)
        return 14;
    if (ocsp_store_status_set(ro,
                              &(struct ocsp_status_set){ca_id,
                                                        serial2,
                                                        sizeof(serial2),
                                                        {OCSP_STATE_GOOD, OCSP_REASON_NONE, 0, 0},
                                                        "ro"}) == ST_OK)
        return 15;
    ocsp_store_close(ro);
    return 0;
}

/* D4: a reader already open in another process sees committed writes without reopening. */
START_TEST(test_readonly_sees_writes)
{
    struct ocsp_issuer_rec in;
    int ready[2], go[2], status = 0;
    char c;
    pid_t pid;

    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(go), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(reader_child(ready[1], go[0]));
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_REVOKED, 1, 1700000000, 0}, "op"}),
        ST_OK);
    ck_assert_int_eq(write(go[1], "g", 1), 1);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
}
END_TEST

/* Records survive close and reopen (read-only). */
START_TEST(test_reopen_readonly)
{
    struct ocsp_issuer_rec in, out;
    struct ocsp_status st;
    struct ocsp_store *ro;

    fill_issuer(&in, "ca-A");
    ck_assert_int_eq(ocsp_store_issuer_put(os, &in), ST_OK);
    ck_assert_int_eq(
        ocsp_store_status_set(
            os,
            &(struct ocsp_status_set){
                ca_id, serial1, sizeof(serial1), {OCSP_STATE_HOLD, 6, 1700000000, 0}, "op"}),
        ST_OK);
    ocsp_store_close(os);
    os = NULL;
    ro = ocsp_store_open(dir, MAP, true);
    ck_assert_ptr_nonnull(ro);
    ck_assert_int_eq(ocsp_store_status_get(ro, ca_id, serial1, sizeof(serial1), &st), ST_OK);
    ck_assert_uint_eq(st.state, OCSP_STATE_HOLD);
    ck_assert_int_eq(ocsp_store_issuer_get(ro, ca_id, &out), ST_OK);
    ck_assert_str_eq(out.name, "ca-A");
    ocsp_issuer_rec_clear(&out);
    ocsp_store_close(ro);
}
END_TEST

static Suite *
ocsp_store_suite(void)
{
    Suite *s = suite_create("ocsp_store");
    TCase *tc = tcase_create("lmdb");

    tcase_add_checked_fixture(tc, setup, teardown);
    /* 60 s: the schema upgrade tests write thousands of records with durable commits, and one
     * came close to 30 s on a loaded machine */
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_schema_written);
    tcase_add_test(tc, test_schema_refused);
    tcase_add_test(tc, test_schema_upgrade);
    tcase_add_test(tc, test_schema_upgrade2);
    tcase_add_test(tc, test_schema_upgrade2_resumed);
    tcase_add_test(tc, test_response_key);
    tcase_add_test(tc, test_issuer_prefix_clash);
    tcase_add_test(tc, test_readonly_uninitialised);
    tcase_add_test(tc, test_issuer_round_trip);
    tcase_add_test(tc, test_issuer_ca_signer_and_bad_id);
    tcase_add_test(tc, test_issuer_id);
    tcase_add_test(tc, test_certids_lookup);
    tcase_add_test(tc, test_status_set_get);
    tcase_add_test(tc, test_status_rules);
    tcase_add_test(tc, test_status_revoked_again);
    tcase_add_test(tc, test_status_reason_ladder);
    tcase_add_test(tc, test_status_hold_again);
    tcase_add_test(tc, test_status_walk_from);
    tcase_add_test(tc, test_issuer_record_without_full_next_update);
    tcase_add_test(tc, test_issuer_record_before_purge);
    tcase_add_test(tc, test_issuer_qualified_refuses_purge);
    tcase_add_test(tc, test_purge_answers_keeps_status);
    tcase_add_test(tc, test_status_purge_only_where_allowed);
    tcase_add_test(tc, test_purge_answers_chunks);
    tcase_add_test(tc, test_journal);
    tcase_add_test(tc, test_changes_take);
    tcase_add_test(tc, test_bulk_import);
    tcase_add_test(tc, test_status_append);
    tcase_add_test(tc, test_journal_import_line);
    tcase_add_test(tc, test_crl_pending);
    tcase_add_test(tc, test_responses);
    tcase_add_test(tc, test_response_walk);
    tcase_add_test(tc, test_response_certs_elided);
    tcase_add_test(tc, test_response_padding);
    tcase_add_test(tc, test_status_walk);
    tcase_add_test(tc, test_purge_answers_drops_orphans);
    tcase_add_test(tc, test_response_replace_only_over_stored);
    tcase_add_test(tc, test_backing_change_marks_stale);
    tcase_add_test(tc, test_backing_put_checks_record);
    tcase_add_test(tc, test_backing_status_purge_takes_answers);
    tcase_add_test(tc, test_schema_upgrade3);
    tcase_add_test(tc, test_schema_upgrade_waits_for_other_processes);
    tcase_add_test(tc, test_schema_upgrade_marked_while_it_runs);
    tcase_add_test(tc, test_schema_upgrade_refused_while_another_upgrades);
    tcase_add_test(tc, test_batch_marked);
    tcase_add_test(tc, test_backing_put_known_forms);
    tcase_add_test(tc, test_schema_upgrade3_corrupt_record);
    tcase_add_test(tc, test_status_purge_follows_settings_changed_meanwhile);
    tcase_add_test(tc, test_readonly_sees_writes);
    tcase_add_test(tc, test_reopen_readonly);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ocsp_store_suite());
    int failed;

    /* failures the tests provoke are logged at err: keep the output readable */
    log_init("check_ocsp_store", LOG_LVL_ERR);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
