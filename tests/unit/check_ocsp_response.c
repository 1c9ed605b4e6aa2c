/*
 * check_ocsp_response: unit suite of ocsp/ocsp_response, the DER of OCSP responses (RFC 6960
 * §4.2, §4.4; STANDARDS OCSP-03, OCSP-06..OCSP-10, OCSP-13..OCSP-15, OCSP-17, OCSP-19,
 * OCSP-21, OCSP-25). Responses are built with ocsp_tbs_build(), signed here with throwaway
 * EC P-256 and RSA-2048 keys (EVP_DigestSign, SHA-256) and assembled; then OpenSSL, as a
 * relying party, must parse them, re-encode them to the same bytes, verify the signature and
 * the responder's authority (CA itself or a delegate with id-kp-OCSPSigning) and read back
 * every status, time and extension.
 */
#include "common/der.h"
#include "common/status.h"
#include "ocsp/ocsp_request.h"
#include "ocsp/ocsp_response.h"

#include <check.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const uint8_t SIGALG_ECDSA_SHA256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                              0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
static const uint8_t SIGALG_RSA_SHA256[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                            0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00};

static EVP_PKEY *ca_key, *rsa_key, *del_key;
static X509 *ca_cert, *rsa_cert, *del_cert, *del_noeku_cert;
static X509_STORE *store;
static int64_t now;

/* the last tbsResponseData built */
static uint8_t last_tbs[4096];
static size_t last_tbs_len;

/* ---- throwaway PKI ---- */

static void
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    ck_assert_ptr_nonnull(ext);
    ck_assert_int_eq(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for key; self-signed CA when issuer is NULL; eku may be NULL. */
static X509 *
make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *eku)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();

    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(name);
    ck_assert_int_eq(X509_set_version(x, 2), 1);
    ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(now & 0xffffff)), 1);
    ck_assert_int_eq(
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0),
        1);
    ck_assert_int_eq(X509_set_subject_name(x, name), 1);
    ck_assert_int_eq(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
    ck_assert_int_eq(X509_set_pubkey(x, key), 1);
    add_ext(x, issuer ? issuer : x, NID_basic_constraints,
            issuer ? "critical,CA:FALSE" : "critical,CA:TRUE");
    if (eku != NULL)
        add_ext(x, issuer, NID_ext_key_usage, eku);
    ck_assert_int_gt(X509_sign(x, issuer_key, EVP_sha256()), 0);
    X509_NAME_free(name);
    return x;
}

static void
pki_setup(void)
{
    now = (int64_t)time(NULL);
    ca_key = EVP_EC_gen("P-256");
    del_key = EVP_EC_gen("P-256");
    rsa_key = EVP_RSA_gen(2048);
    ck_assert_ptr_nonnull(ca_key);
    ck_assert_ptr_nonnull(del_key);
    ck_assert_ptr_nonnull(rsa_key);
    ca_cert = make_cert("OCSP test CA", ca_key, NULL, ca_key, NULL);
    rsa_cert = make_cert("OCSP test RSA CA", rsa_key, NULL, rsa_key, NULL);
    del_cert = make_cert("OCSP test responder", del_key, ca_cert, ca_key, "OCSPSigning");
    del_noeku_cert = make_cert("OCSP test not a responder", del_key, ca_cert, ca_key, NULL);
    store = X509_STORE_new();
    ck_assert_ptr_nonnull(store);
    ck_assert_int_eq(X509_STORE_add_cert(store, ca_cert), 1);
    ck_assert_int_eq(X509_STORE_add_cert(store, rsa_cert), 1);
}

static void
pki_teardown(void)
{
    X509_STORE_free(store);
    X509_free(del_noeku_cert);
    X509_free(del_cert);
    X509_free(rsa_cert);
    X509_free(ca_cert);
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(del_key);
    EVP_PKEY_free(ca_key);
}

/* ---- CertIDs ---- */

struct test_id {
    OCSP_CERTID *id;
    uint8_t der[OCSP_CERTID_MAX];
    size_t len;
};

/* Every OCSP_CERTID made by a test, freed by the checked fixture after it. */
static OCSP_CERTID *made_ids[16];
static size_t n_made_ids;

static void
ids_free(void)
{
    while (n_made_ids > 0)
        OCSP_CERTID_free(made_ids[--n_made_ids]);
}

static void
make_id(struct test_id *t, const EVP_MD *md, X509 *issuer, long serial)
{
    ASN1_INTEGER *sn = ASN1_INTEGER_new();
    unsigned char *p = t->der;
    int n;

    ck_assert_ptr_nonnull(sn);
    ck_assert_int_eq(ASN1_INTEGER_set(sn, serial), 1);
    t->id =
        OCSP_cert_id_new(md, X509_get_subject_name(issuer), X509_get0_pubkey_bitstr(issuer), sn);
    ck_assert_ptr_nonnull(t->id);
    ck_assert_uint_lt(n_made_ids, sizeof(made_ids) / sizeof(made_ids[0]));
    made_ids[n_made_ids++] = t->id;
    n = i2d_OCSP_CERTID(t->id, NULL);
    ck_assert(n > 0 && (size_t)n <= sizeof(t->der));
    t->len = (size_t)i2d_OCSP_CERTID(t->id, &p);
    ASN1_INTEGER_free(sn);
}

static struct ocsp_single
single_for(const struct test_id *t, enum ocsp_single_status st)
{
    struct ocsp_single s = {.certid = t->der,
                            .certid_len = t->len,
                            .status = st,
                            .reason = 0xff,
                            .this_update = now - 10,
                            .next_update = now + 3600};
    return s;
}

/* ---- building and signing ---- */

struct resp_spec {
    EVP_PKEY *key;   /* NULL: the CA key */
    X509 *signer;    /* NULL: the CA */
    bool with_certs; /* certs field with the signer */
    const struct ocsp_single *singles;
    size_t n;
    const uint8_t *nonce;
    size_t nonce_len;
    bool extended_revoke;
    bool corrupt_sig;
};

static void
sign_tbs(EVP_PKEY *key, const uint8_t *tbs, size_t len, uint8_t *sig, size_t *sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
    ck_assert_int_eq(EVP_DigestSign(ctx, sig, sig_len, tbs, len), 1);
    EVP_MD_CTX_free(ctx);
}

/* The DER OCSPResponse for sp (malloc()ed). */
static uint8_t *
build_resp(const struct resp_spec *sp, size_t *len)
{
    EVP_PKEY *key = sp->key ? sp->key : ca_key;
    X509 *signer = sp->signer ? sp->signer : ca_cert;
    uint8_t rid[32], sig[512], *certs = NULL, *der = NULL;
    size_t rid_len = ocsp_responder_id(signer, rid, sizeof(rid)), sig_len = sizeof(sig);
    size_t certs_len = 0;
    bool rsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
    struct der d;

    ck_assert_uint_eq(rid_len, 24);
    der_init(&d, last_tbs, sizeof(last_tbs));
    ocsp_tbs_build(&d, rid, rid_len,
                   &(struct ocsp_tbs_spec){now, sp->singles, sp->n, sp->nonce, sp->nonce_len,
                                           sp->extended_revoke});
    ck_assert_int_eq(der_finish(&d), ST_OK);
    last_tbs_len = d.len;
    sign_tbs(key, last_tbs, last_tbs_len, sig, &sig_len);
    if (sp->corrupt_sig)
        sig[sig_len / 2] ^= 0x01;
    if (sp->with_certs)
        ck_assert_int_eq(ocsp_certs_field(signer, &certs, &certs_len), ST_OK);
    ck_assert_int_eq(ocsp_response_assemble(
                         &(struct ocsp_signed_parts){
                             last_tbs, last_tbs_len, rsa ? SIGALG_RSA_SHA256 : SIGALG_ECDSA_SHA256,
                             rsa ? sizeof(SIGALG_RSA_SHA256) : sizeof(SIGALG_ECDSA_SHA256), sig,
                             sig_len, certs, certs_len},
                         &der, len),
                     ST_OK);
    ck_assert_ptr_nonnull(der);
    free(certs);
    return der;
}

/* OpenSSL parses der completely, re-encodes it to the same bytes (DER), sees a successful
 * id-pkix-ocsp-basic response (OCSP-06); returns the BasicOCSPResponse. */
static OCSP_BASICRESP *
parse_resp(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    OCSP_BASICRESP *bs;
    unsigned char *re = NULL;
    int n;

    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_eq(p, der + len);
    n = i2d_OCSP_RESPONSE(r, &re);
    ck_assert_int_eq(n, (int)len);
    ck_assert_mem_eq(re, der, len);
    ck_assert_int_eq(OCSP_response_status(r), OCSP_RESPONSE_STATUS_SUCCESSFUL);
    bs = OCSP_response_get1_basic(r);
    ck_assert_ptr_nonnull(bs);
    OPENSSL_free(re);
    OCSP_RESPONSE_free(r);
    return bs;
}

static OCSP_BASICRESP *
build_and_parse(const struct resp_spec *sp)
{
    size_t len;
    uint8_t *der = build_resp(sp, &len);
    OCSP_BASICRESP *bs = parse_resp(der, len);

    free(der);
    return bs;
}

/* Verify with the CA (and the RSA CA) trusted; `certs` are extra untrusted certs. */
static int
verify(OCSP_BASICRESP *bs, X509 *extra)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    int rc;

    ck_assert_ptr_nonnull(certs);
    if (extra != NULL)
        ck_assert_int_gt(sk_X509_push(certs, extra), 0);
    rc = OCSP_basic_verify(bs, certs, store, 0);
    sk_X509_free(certs);
    return rc;
}

/* t must be GeneralizedTime YYYYMMDDHHMMSSZ of want (OCSP-09). */
static void
check_time(const ASN1_GENERALIZEDTIME *t, int64_t want)
{
    char s[32];
    struct tm tm;
    time_t w = (time_t)want;

    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(gmtime_r(&w, &tm));
    ck_assert_uint_eq(strftime(s, sizeof(s), "%Y%m%d%H%M%SZ", &tm), 15);
    ck_assert_int_eq(ASN1_STRING_type(t), V_ASN1_GENERALIZEDTIME);
    ck_assert_int_eq(ASN1_STRING_length(t), 15);
    ck_assert_mem_eq(ASN1_STRING_get0_data(t), s, 15);
}

static int
sigalg_nid(OCSP_BASICRESP *bs)
{
    const ASN1_OBJECT *o = NULL;

    X509_ALGOR_get0(&o, NULL, NULL, OCSP_resp_get0_tbs_sigalg(bs));
    return OBJ_obj2nid(o);
}

static void
check_status(OCSP_BASICRESP *bs, const struct test_id *t, int want, int want_reason,
             int64_t want_rev)
{
    ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
    int status = -5, reason = -5;

    ck_assert_int_eq(OCSP_resp_find_status(bs, t->id, &status, &reason, &rev, &thisupd, &nextupd),
                     1);
    ck_assert_int_eq(status, want);
    if (want == V_OCSP_CERTSTATUS_REVOKED) {
        ck_assert_int_eq(reason, want_reason);
        check_time(rev, want_rev);
    } else {
        ck_assert_ptr_null(rev);
    }
    check_time(thisupd, now - 10);
    check_time(nextupd, now + 3600);
    ck_assert_int_eq(OCSP_check_validity(thisupd, nextupd, 5, -1), 1);
}

/* ---- tests ---- */

/* OCSP-06..09, OCSP-19: a good answer signed by the CA key itself. */
START_TEST(test_good_ca_signed)
{
    struct test_id t;
    struct ocsp_single s;
    struct resp_spec sp = {0};
    OCSP_BASICRESP *bs;
    const ASN1_OCTET_STRING *keyid = NULL;
    const X509_NAME *byname = NULL;
    uint8_t h[SHA_DIGEST_LENGTH];
    const ASN1_BIT_STRING *pk = X509_get0_pubkey_bitstr(ca_cert);
    size_t hdr;

    make_id(&t, EVP_sha1(), ca_cert, 0x1234);
    s = single_for(&t, OCSP_SINGLE_GOOD);
    sp.singles = &s;
    sp.n = 1;
    bs = build_and_parse(&sp);
    ck_assert_int_eq(verify(bs, ca_cert), 1);
    check_status(bs, &t, V_OCSP_CERTSTATUS_GOOD, -1, 0);
    check_time(OCSP_resp_get0_produced_at(bs), now);
    /* OCSP-07: tbsResponseData starts with responderID [2] byKey, no [0] version */
    hdr = last_tbs[1] < 0x80 ? 2 : 2 + (last_tbs[1] & 0x7fu);
    ck_assert_uint_eq(last_tbs[0], 0x30);
    ck_assert_uint_eq(last_tbs[hdr], 0xa2);
    /* OCSP-08: byKey = SHA-1 of the subjectPublicKey BIT STRING contents */
    ck_assert_int_eq(OCSP_resp_get0_id(bs, &keyid, &byname), 1);
    ck_assert_ptr_null(byname);
    ck_assert_ptr_nonnull(keyid);
    SHA1(ASN1_STRING_get0_data(pk), (size_t)ASN1_STRING_length(pk), h);
    ck_assert_int_eq(ASN1_STRING_length(keyid), SHA_DIGEST_LENGTH);
    ck_assert_mem_eq(ASN1_STRING_get0_data(keyid), h, sizeof(h));
    ck_assert_int_eq(OCSP_BASICRESP_get_ext_count(bs), 0);
    ck_assert_int_eq(sigalg_nid(bs), NID_ecdsa_with_SHA256);
    ck_assert_int_le(sk_X509_num(OCSP_resp_get0_certs(bs)), 0); /* no certs field */
    OCSP_BASICRESP_free(bs);
}
END_TEST

/* A response whose signature does not match must fail verification (the check is real). */
START_TEST(test_bad_signature_fails)
{
    struct test_id t;
    struct ocsp_single s;
    struct resp_spec sp = {.n = 1, .corrupt_sig = true};
    OCSP_BASICRESP *bs;

    make_id(&t, EVP_sha256(), ca_cert, 7);
    s = single_for(&t, OCSP_SINGLE_GOOD);
    sp.singles = &s;
    bs = build_and_parse(&sp);
    ck_assert_int_le(verify(bs, ca_cert), 0);
    OCSP_BASICRESP_free(bs);
}
END_TEST

/* OCSP-15: revoked with and without a reason. */
START_TEST(test_revoked)
{
    struct test_id t[2];
    struct ocsp_single s[2];
    struct resp_spec sp = {.singles = s, .n = 2};
    OCSP_BASICRESP *bs;

    make_id(&t[0], EVP_sha256(), ca_cert, 100);
    make_id(&t[1], EVP_sha1(), ca_cert, 101);
    s[0] = single_for(&t[0], OCSP_SINGLE_REVOKED);
    s[0].revocation_time = now - 86400;
    s[0].reason = 1; /* keyCompromise */
    s[1] = single_for(&t[1], OCSP_SINGLE_REVOKED);
    s[1].revocation_time = now - 100;
    bs = build_and_parse(&sp);
    ck_assert_int_eq(verify(bs, ca_cert), 1);
    check_status(bs, &t[0], V_OCSP_CERTSTATUS_REVOKED, OCSP_REVOKED_STATUS_KEYCOMPROMISE,
                 now - 86400);
    check_status(bs, &t[1], V_OCSP_CERTSTATUS_REVOKED, OCSP_REVOKED_STATUS_NOSTATUS, now - 100);
    OCSP_BASICRESP_free(bs);
}
END_TEST

START_TEST(test_unknown)
{
    struct test_id t;
    struct ocsp_single s;
    struct resp_spec sp = {.singles = &s, .n = 1};
    OCSP_BASICRESP *bs;

    make_id(&t, EVP_sha256(), ca_cert, 5);
    s = single_for(&t, OCSP_SINGLE_UNKNOWN);
    bs = build_and_parse(&sp);
    ck_assert_int_eq(verify(bs, ca_cert), 1);
    check_status(bs, &t, V_OCSP_CERTSTATUS_UNKNOWN, -1, 0);
    OCSP_BASICRESP_free(bs);
}
END_TEST

static X509_EXTENSION *
resp_ext(OCSP_BASICRESP *bs, const char *oid)
{
    ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
    int i;

    ck_assert_ptr_nonnull(o);
    i = OCSP_BASICRESP_get_ext_by_OBJ(bs, o, -1);
    ASN1_OBJECT_free(o);
    return i < 0 ? NULL : OCSP_BASICRESP_get_ext(bs, i);
}

/* OCSP-13/14: never-issued serial: revoked, certificateHold, 1970-01-01, extended-revoke
 * responseExtension with a DER NULL value, not critical; nothing in singleExtensions. */
START_TEST(test_never_issued)
{
    static const uint8_t null_der[] = {0x05, 0x00};
    struct test_id t;
    struct ocsp_single s;
    struct resp_spec sp = {.singles = &s, .n = 1, .extended_revoke = true};
    OCSP_BASICRESP *bs;
    X509_EXTENSION *ext;
    const ASN1_OCTET_STRING *v;

    make_id(&t, EVP_sha1(), ca_cert, 0x7777);
    s = single_for(&t, OCSP_SINGLE_REVOKED);
    s.revocation_time = 0;
    s.reason = 6;
    bs = build_and_parse(&sp);
    ck_assert_int_eq(verify(bs, ca_cert), 1);
    check_status(bs, &t, V_OCSP_CERTSTATUS_REVOKED, OCSP_REVOKED_STATUS_CERTIFICATEHOLD, 0);
    ext = resp_ext(bs, "1.3.6.1.5.5.7.48.1.9");
    ck_assert_ptr_nonnull(ext);
    ck_assert_int_eq(X509_EXTENSION_get_critical(ext), 0);
    v = X509_EXTENSION_get_data(ext);
    ck_assert_int_eq(ASN1_STRING_length(v), 2);
    ck_assert_mem_eq(ASN1_STRING_get0_data(v), null_der, 2);
    ck_assert_int_eq(OCSP_BASICRESP_get_ext_count(bs), 1);
    ck_assert_int_eq(OCSP_SINGLERESP_get_ext_count(OCSP_resp_get0(bs, 0)), 0);
    OCSP_BASICRESP_free(bs);
}
END_TEST

/* OCSP-17: the nonce of a parsed request comes back identical (RFC 9654 form and legacy). */
static void
check_nonce_echo(bool legacy, size_t nonce_len, bool extended_revoke)
{
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    struct test_id t;
    struct ocsp_request pr;
    struct ocsp_single s;
    struct resp_spec sp = {.singles = &s, .n = 1, .extended_revoke = extended_revoke};
    uint8_t v[OCSP_NONCE_MAX], *der = NULL;
    const char *why = NULL;
    OCSP_BASICRESP *bs;
    X509_EXTENSION *ext;
    int n;

    ck_assert_ptr_nonnull(req);
    make_id(&t, EVP_sha256(), ca_cert, 42);
    ck_assert_ptr_nonnull(OCSP_request_add0_id(req, OCSP_CERTID_dup(t.id)));
    memset(v, 0xab, sizeof(v));
    ck_assert_int_eq(RAND_bytes(v + 1, (int)nonce_len - 1), 1);
    if (legacy) { /* the nonce octets straight in extnValue */
        ASN1_OCTET_STRING *raw = ASN1_OCTET_STRING_new();
        X509_EXTENSION *e;

        ck_assert_int_eq(ASN1_OCTET_STRING_set(raw, v, (int)nonce_len), 1);
        e = X509_EXTENSION_create_by_NID(NULL, NID_id_pkix_OCSP_Nonce, 0, raw);
        ck_assert_ptr_nonnull(e);
        ck_assert_int_eq(OCSP_REQUEST_add_ext(req, e, -1), 1);
        X509_EXTENSION_free(e);
        ASN1_OCTET_STRING_free(raw);
    } else {
        ck_assert_int_eq(OCSP_request_add1_nonce(req, v, (int)nonce_len), 1);
    }
    n = i2d_OCSP_REQUEST(req, &der);
    ck_assert_int_gt(n, 0);
    ck_assert_msg(ocsp_request_parse(der, (size_t)n, &pr, &why) == 0, "%s", why);
    ck_assert(pr.has_nonce);
    ck_assert_uint_eq(pr.nonce_len, nonce_len);
    s = single_for(&t, OCSP_SINGLE_GOOD);
    sp.nonce = pr.nonce_value;
    sp.nonce_len = pr.nonce_value_len;
    bs = build_and_parse(&sp);
    ck_assert_int_eq(verify(bs, ca_cert), 1);
    ck_assert_int_eq(OCSP_check_nonce(req, bs), 1);
    ext = resp_ext(bs, "1.3.6.1.5.5.7.48.1.2");
    ck_assert_ptr_nonnull(ext);
    ck_assert_int_eq(X509_EXTENSION_get_critical(ext), 0);
    ck_assert_int_eq(ASN1_STRING_length(X509_EXTENSION_get_data(ext)), (int)pr.nonce_value_len);
    ck_assert_mem_eq(ASN1_STRING_get0_data(X509_EXTENSION_get_data(ext)), pr.nonce_value,
                     pr.nonce_value_len);
    ck_assert_int_eq(OCSP_BASICRESP_get_ext_count(bs), extended_revoke ? 2 : 1);
    ck_assert_int_eq(OCSP_SINGLERESP_get_ext_count(OCSP_resp_get0(bs, 0)), 0);
    OCSP_BASICRESP_free(bs);
    OPENSSL_free(der);
    OCSP_REQUEST_free(req);
}

START_TEST(test_nonce_echo)
{
    check_nonce_echo(false, 32, false);
    check_nonce_echo(false, 1, false);
    check_nonce_echo(false, 128, true);
    check_nonce_echo(true, 16, false);
    check_nonce_echo(true, 20, true);
}
END_TEST

/* Without a nonce in the response, a client that sent one sees it missing (-1). */
START_TEST(test_nonce_absent)
{
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    struct test_id t;
    struct ocsp_single s;
    struct resp_spec sp = {.singles = &s, .n = 1};
    OCSP_BASICRESP *bs;

    make_id(&t, EVP_sha256(), ca_cert, 43);
    ck_assert_int_eq(OCSP_request_add1_nonce(req, NULL, 16), 1);
    s = single_for(&t, OCSP_SINGLE_GOOD);
    bs = build_and_parse(&sp);
    ck_assert_int_eq(OCSP_check_nonce(req, bs), -1);
    OCSP_BASICRESP_free(bs);
    OCSP_REQUEST_free(req);
}
END_TEST

/* OCSP-25: archiveCutoff singleExtension, a GeneralizedTime, not critical. */
START_TEST(test_archive_cutoff)
{
    struct test_id t[2];
    struct ocsp_single s[2];
    struct resp_spec sp = {.singles = s, .n = 2};
    OCSP_BASICRESP *bs;
    OCSP_SINGLERESP *single;
    X509_EXTENSION *ext;
    const ASN1_OCTET_STRING *v;
    const unsigned char *p;
    ASN1_GENERALIZEDTIME *gt;
    int64_t cutoff = 1700000000; /* 2023-11-14T22:13:20Z */

    make_id(&t[0], EVP_sha1(), ca_cert, 9);
    make_id(&t[1], EVP_sha1(), ca_cert, 10);
    s[0] = single_for(&t[0], OCSP_SINGLE_GOOD);
    s[0].archive_cutoff = true;
    s[0].archive_cutoff_time = cutoff;
    s[1] = single_for(&t[1], OCSP_SINGLE_GOOD);
    bs = build_and_parse(&sp);
    ck_assert_int_eq(verify(bs, ca_cert), 1);
    single = OCSP_resp_get0(bs, 0);
    ck_assert_int_eq(OCSP_SINGLERESP_get_ext_count(single), 1);
    ext = OCSP_SINGLERESP_get_ext(
        single, OCSP_SINGLERESP_get_ext_by_NID(single, NID_id_pkix_OCSP_archiveCutoff, -1));
    ck_assert_ptr_nonnull(ext);
    ck_assert_int_eq(X509_EXTENSION_get_critical(ext), 0);
    v = X509_EXTENSION_get_data(ext);
    ck_assert_int_eq(ASN1_STRING_length(v), 17);
    ck_assert_mem_eq(ASN1_STRING_get0_data(v),
                     "\x18\x0f"
                     "20231114221320Z",
                     17);
    p = ASN1_STRING_get0_data(v);
    gt = d2i_ASN1_GENERALIZEDTIME(NULL, &p, ASN1_STRING_length(v));
    ck_assert_ptr_nonnull(gt);
    check_time(gt, cutoff);
    ASN1_GENERALIZEDTIME_free(gt);
    ck_assert_int_eq(OCSP_SINGLERESP_get_ext_count(OCSP_resp_get0(bs, 1)), 0);
    OCSP_BASICRESP_free(bs);
}
END_TEST

/* OCSP-10: several singles, in order, CertIDs byte for byte (SHA-1/256/384/512 mixed). */
START_TEST(test_multiple_singles)
{
    const EVP_MD *mds[5] = {EVP_sha1(), EVP_sha256(), EVP_sha384(), EVP_sha512(), EVP_sha1()};
    static const enum ocsp_single_status sts[5] = {OCSP_SINGLE_GOOD, OCSP_SINGLE_REVOKED,
                                                   OCSP_SINGLE_UNKNOWN, OCSP_SINGLE_GOOD,
                                                   OCSP_SINGLE_REVOKED};
    struct test_id t[5];
    struct ocsp_single s[5];
    struct resp_spec sp = {.singles = s, .n = 5};
    OCSP_BASICRESP *bs;

    for (int i = 0; i < 5; i++) {
        make_id(&t[i], mds[i], ca_cert, 1000 + i);
        s[i] = single_for(&t[i], sts[i]);
        s[i].revocation_time = now - 500;
        s[i].reason = (uint8_t)(i == 1 ? 4 : 0xff);
    }
    bs = build_and_parse(&sp);
    ck_assert_int_eq(verify(bs, ca_cert), 1);
    ck_assert_int_eq(OCSP_resp_count(bs), 5);
    for (int i = 0; i < 5; i++) {
        OCSP_SINGLERESP *one = OCSP_resp_get0(bs, i);
        unsigned char *der = NULL;
        int n = i2d_OCSP_CERTID((OCSP_CERTID *)OCSP_SINGLERESP_get0_id(one), &der);
        int reason = -5;

        ck_assert_int_eq(n, (int)t[i].len);
        ck_assert_mem_eq(der, t[i].der, t[i].len);
        ck_assert_int_eq(OCSP_single_get0_status(one, &reason, NULL, NULL, NULL), (int)sts[i]);
        OPENSSL_free(der);
    }
    check_status(bs, &t[1], V_OCSP_CERTSTATUS_REVOKED, OCSP_REVOKED_STATUS_SUPERSEDED, now - 500);
    OCSP_BASICRESP_free(bs);
}
END_TEST

/* OCSP-21: a delegated responder with id-kp-OCSPSigning, its certificate in certs. */
START_TEST(test_delegated)
{
    struct test_id t;
    struct ocsp_single s;
    struct resp_spec sp = {
        .key = del_key, .signer = del_cert, .with_certs = true, .singles = &s, .n = 1};
    OCSP_BASICRESP *bs;
    const STACK_OF(X509) * certs;

    make_id(&t, EVP_sha256(), ca_cert, 77);
    s = single_for(&t, OCSP_SINGLE_GOOD);
    bs = build_and_parse(&sp);
    certs = OCSP_resp_get0_certs(bs);
    ck_assert_int_eq(sk_X509_num(certs), 1);
    ck_assert_int_eq(X509_cmp(sk_X509_value(certs, 0), del_cert), 0);
    ck_assert_int_eq(verify(bs, NULL), 1);
    check_status(bs, &t, V_OCSP_CERTSTATUS_GOOD, -1, 0);
    OCSP_BASICRESP_free(bs);

    /* the same key certified without the OCSPSigning EKU is not a responder */
    sp.signer = del_noeku_cert;
    bs = build_and_parse(&sp);
    ck_assert_int_le(verify(bs, NULL), 0);
    OCSP_BASICRESP_free(bs);
}
END_TEST

/* The store keeps a delegated responder's answers without their certs field and puts the
 * issuer's back (ocsp_store.h, schema 2): that field must be the very last bytes of the whole
 * OCSPResponse DER, so the outer lengths stay those of the whole answer. A CA-signed answer
 * has none. */
START_TEST(test_certs_last)
{
    struct test_id t;
    struct ocsp_single s;
    struct resp_spec sp = {
        .key = del_key, .signer = del_cert, .with_certs = true, .singles = &s, .n = 1};
    uint8_t *der, *certs = NULL, *other_certs = NULL;
    size_t len, certs_len = 0, other_len = 0;

    make_id(&t, EVP_sha256(), ca_cert, 78);
    s = single_for(&t, OCSP_SINGLE_GOOD);
    ck_assert_int_eq(ocsp_certs_field(del_cert, &certs, &certs_len), ST_OK);
    ck_assert_int_eq(ocsp_certs_field(del_noeku_cert, &other_certs, &other_len), ST_OK);
    der = build_resp(&sp, &len);
    ck_assert_uint_gt(len, certs_len);
    ck_assert_mem_eq(der + len - certs_len, certs, certs_len);
    /* another certificate of the same key differs in those bytes */
    ck_assert(other_len != certs_len || memcmp(der + len - other_len, other_certs, other_len) != 0);
    free(der);
    /* CA-signed: no certs field, the DER ends with the signature BIT STRING */
    sp = (struct resp_spec){.singles = &s, .n = 1};
    der = build_resp(&sp, &len);
    ck_assert(len <= certs_len || memcmp(der + len - certs_len, certs, certs_len) != 0);
    free(der);
    free(certs);
    free(other_certs);
}
END_TEST

/* OCSP-19, ALG-04: RSA with SHA-256. */
START_TEST(test_rsa_signer)
{
    struct test_id t;
    struct ocsp_single s;
    struct resp_spec sp = {.key = rsa_key, .signer = rsa_cert, .singles = &s, .n = 1};
    OCSP_BASICRESP *bs;
    X509_STORE *only_ec;
    STACK_OF(X509) *certs = sk_X509_new_null();

    make_id(&t, EVP_sha256(), rsa_cert, 3);
    s = single_for(&t, OCSP_SINGLE_REVOKED);
    s.revocation_time = now - 3600;
    s.reason = 0;
    bs = build_and_parse(&sp);
    ck_assert_int_eq(sigalg_nid(bs), NID_sha256WithRSAEncryption);
    ck_assert_int_eq(verify(bs, rsa_cert), 1);
    check_status(bs, &t, V_OCSP_CERTSTATUS_REVOKED, OCSP_REVOKED_STATUS_UNSPECIFIED, now - 3600);
    /* the trust check is real: with only the EC CA trusted the RSA responder is refused */
    only_ec = X509_STORE_new();
    ck_assert_ptr_nonnull(only_ec);
    ck_assert_int_eq(X509_STORE_add_cert(only_ec, ca_cert), 1);
    ck_assert_int_eq(sk_X509_push(certs, rsa_cert), 1);
    ck_assert_int_le(OCSP_basic_verify(bs, certs, only_ec, 0), 0);
    sk_X509_free(certs);
    X509_STORE_free(only_ec);
    OCSP_BASICRESP_free(bs);
}
END_TEST

/* OCSP-03/04/05: unsigned error responses, status only. */
START_TEST(test_error_responses)
{
    static const struct {
        enum ocsp_resp_status st;
        uint8_t want[5];
    } cases[] = {
        {OCSP_RESP_MALFORMED, {0x30, 0x03, 0x0a, 0x01, 0x01}},
        {OCSP_RESP_INTERNAL_ERROR, {0x30, 0x03, 0x0a, 0x01, 0x02}},
        {OCSP_RESP_TRY_LATER, {0x30, 0x03, 0x0a, 0x01, 0x03}},
        {OCSP_RESP_SIG_REQUIRED, {0x30, 0x03, 0x0a, 0x01, 0x05}},
        {OCSP_RESP_UNAUTHORIZED, {0x30, 0x03, 0x0a, 0x01, 0x06}},
    };
    uint8_t buf[8];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const unsigned char *p = buf;
        OCSP_RESPONSE *r;

        memset(buf, 0xee, sizeof(buf));
        ck_assert_uint_eq(ocsp_error_response(cases[i].st, buf, sizeof(buf)), 5);
        ck_assert_mem_eq(buf, cases[i].want, 5);
        r = d2i_OCSP_RESPONSE(NULL, &p, 5);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(OCSP_response_status(r), (int)cases[i].st);
        ck_assert_ptr_null(OCSP_response_get1_basic(r));
        OCSP_RESPONSE_free(r);
    }
    ck_assert_uint_eq(ocsp_error_response(OCSP_RESP_MALFORMED, buf, 4), 0);
    ck_assert_uint_eq(ocsp_error_response(OCSP_RESP_SUCCESSFUL, buf, sizeof(buf)), 0);
    ck_assert_uint_eq(ocsp_error_response((enum ocsp_resp_status)4, buf, sizeof(buf)), 0);
    ck_assert_uint_eq(ocsp_error_response((enum ocsp_resp_status)7, buf, sizeof(buf)), 0);
}
END_TEST

START_TEST(test_responder_id)
{
    uint8_t rid[24], h[SHA_DIGEST_LENGTH];
    const ASN1_BIT_STRING *pk = X509_get0_pubkey_bitstr(rsa_cert);
    static const uint8_t head[] = {0xa2, 0x16, 0x04, 0x14};

    ck_assert_uint_eq(ocsp_responder_id(rsa_cert, rid, sizeof(rid) - 1), 0);
    ck_assert_uint_eq(ocsp_responder_id(NULL, rid, sizeof(rid)), 0);
    ck_assert_uint_eq(ocsp_responder_id(rsa_cert, rid, sizeof(rid)), 24);
    ck_assert_mem_eq(rid, head, sizeof(head));
    SHA1(ASN1_STRING_get0_data(pk), (size_t)ASN1_STRING_length(pk), h);
    ck_assert_mem_eq(rid + 4, h, sizeof(h));
}
END_TEST

START_TEST(test_certs_field)
{
    uint8_t *f = NULL, *cert = NULL;
    size_t n = 0;
    int clen = i2d_X509(del_cert, &cert);
    const uint8_t *p, *c, *c2;
    size_t cl, cl2;
    uint8_t tag;

    ck_assert_int_gt(clen, 0);
    ck_assert_int_eq(ocsp_certs_field(del_cert, &f, &n), ST_OK);
    p = f;
    ck_assert(der_read(&p, f + n, &tag, &c, &cl));
    ck_assert_uint_eq(tag, 0xa0);
    ck_assert_ptr_eq(p, f + n);
    p = c;
    ck_assert(der_read(&p, c + cl, &tag, &c2, &cl2));
    ck_assert_uint_eq(tag, 0x30);
    ck_assert_ptr_eq(p, c + cl);
    ck_assert_uint_eq(cl2, (size_t)clen);
    ck_assert_mem_eq(c2, cert, cl2);
    free(f);
    OPENSSL_free(cert);
    ck_assert_int_eq(ocsp_certs_field(NULL, &f, &n), ST_NOMEM);
    ck_assert_ptr_null(f);
}
END_TEST

/* Writer errors are reported by der_finish (no response from a half-built tbs). */
START_TEST(test_tbs_errors)
{
    struct test_id t;
    struct ocsp_single s;
    uint8_t rid[24], small[40], buf[512];
    struct der d;

    make_id(&t, EVP_sha1(), ca_cert, 1);
    s = single_for(&t, OCSP_SINGLE_GOOD);
    ck_assert_uint_eq(ocsp_responder_id(ca_cert, rid, sizeof(rid)), 24);
    der_init(&d, buf, sizeof(buf));
    ocsp_tbs_build(&d, rid, sizeof(rid),
                   &(struct ocsp_tbs_spec){now, &s, 0, NULL, 0, false}); /* no singles */
    ck_assert_int_ne(der_finish(&d), ST_OK);
    der_init(&d, small, sizeof(small));
    ocsp_tbs_build(&d, rid, sizeof(rid),
                   &(struct ocsp_tbs_spec){now, &s, 1, NULL, 0, false}); /* does not fit */
    ck_assert_int_ne(der_finish(&d), ST_OK);
    s.status = (enum ocsp_single_status)3;
    der_init(&d, buf, sizeof(buf));
    ocsp_tbs_build(&d, rid, sizeof(rid),
                   &(struct ocsp_tbs_spec){now, &s, 1, NULL, 0, false}); /* not a CertStatus */
    ck_assert_int_ne(der_finish(&d), ST_OK);
    s.status = OCSP_SINGLE_GOOD;
    der_init(&d, buf, sizeof(buf));
    ocsp_tbs_build(&d, rid, sizeof(rid), &(struct ocsp_tbs_spec){now, &s, 1, NULL, 0, false});
    ck_assert_int_eq(der_finish(&d), ST_OK);
}
END_TEST

/* A good single without nextUpdate encodes exactly as RFC 6960 §4.2.1 says. */
START_TEST(test_single_bytes)
{
    static const uint8_t certid[] = {0x30, 0x03, 0x02, 0x01, 0x05}; /* opaque to the writer */
    static const uint8_t want_single[] = {0x30, 0x18, 0x30, 0x03, 0x02, 0x01, 0x05, 0x80, 0x00,
                                          0x18, 0x0f, '2',  '0',  '2',  '3',  '1',  '1',  '1',
                                          '4',  '2',  '2',  '1',  '3',  '2',  '0',  'Z'};
    static const uint8_t want_revoked[] = {0xa1, 0x16, 0x18, 0x0f, '1',  '9',  '7',  '0',
                                           '0',  '1',  '0',  '1',  '0',  '0',  '0',  '0',
                                           '0',  '0',  'Z',  0xa0, 0x03, 0x0a, 0x01, 0x06};
    struct ocsp_single s = {.certid = certid,
                            .certid_len = sizeof(certid),
                            .status = OCSP_SINGLE_GOOD,
                            .reason = 0xff,
                            .this_update = 1700000000};
    uint8_t rid[24] = {0xa2, 0x16, 0x04, 0x14}, buf[256];
    struct der d;
    const uint8_t *p = buf, *c, *q;
    size_t cl;
    uint8_t tag;

    der_init(&d, buf, sizeof(buf));
    ocsp_tbs_build(&d, rid, sizeof(rid),
                   &(struct ocsp_tbs_spec){1700000000, &s, 1, NULL, 0, false});
    ck_assert_int_eq(der_finish(&d), ST_OK);
    ck_assert(der_read(&p, buf + d.len, &tag, &c, &cl));
    q = c + sizeof(rid) + 17; /* after responderID and producedAt */
    ck_assert_uint_eq(q[0], 0x30);
    ck_assert_uint_eq(q[1], sizeof(want_single));
    ck_assert_mem_eq(q + 2, want_single, sizeof(want_single));
    ck_assert_ptr_eq(q + 2 + sizeof(want_single), c + cl); /* no responseExtensions */

    s.status = OCSP_SINGLE_REVOKED;
    s.revocation_time = 0;
    s.reason = 6;
    der_init(&d, buf, sizeof(buf));
    ocsp_tbs_build(&d, rid, sizeof(rid),
                   &(struct ocsp_tbs_spec){1700000000, &s, 1, NULL, 0, false});
    ck_assert_int_eq(der_finish(&d), ST_OK);
    ck_assert_mem_eq(q + 2 + 2 + sizeof(certid), want_revoked, sizeof(want_revoked));
}
END_TEST

static Suite *
ocsp_response_suite(void)
{
    Suite *s = suite_create("ocsp_response");
    TCase *ok = tcase_create("responses");
    TCase *parts = tcase_create("parts");

    tcase_add_unchecked_fixture(ok, pki_setup, pki_teardown);
    tcase_add_checked_fixture(ok, NULL, ids_free);
    tcase_set_timeout(ok, 30);
    tcase_add_test(ok, test_good_ca_signed);
    tcase_add_test(ok, test_bad_signature_fails);
    tcase_add_test(ok, test_revoked);
    tcase_add_test(ok, test_unknown);
    tcase_add_test(ok, test_never_issued);
    tcase_add_test(ok, test_certs_last);
    tcase_add_test(ok, test_nonce_echo);
    tcase_add_test(ok, test_nonce_absent);
    tcase_add_test(ok, test_archive_cutoff);
    tcase_add_test(ok, test_multiple_singles);
    tcase_add_test(ok, test_delegated);
    tcase_add_test(ok, test_rsa_signer);
    suite_add_tcase(s, ok);

    tcase_add_unchecked_fixture(parts, pki_setup, pki_teardown);
    tcase_add_checked_fixture(parts, NULL, ids_free);
    tcase_set_timeout(parts, 30);
    tcase_add_test(parts, test_error_responses);
    tcase_add_test(parts, test_responder_id);
    tcase_add_test(parts, test_certs_field);
    tcase_add_test(parts, test_tbs_errors);
    tcase_add_test(parts, test_single_bytes);
    suite_add_tcase(s, parts);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ocsp_response_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
