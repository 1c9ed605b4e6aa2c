/*
 * check_tsa_token: unit suite of tsa/tsa_token (TSU loading, TSTInfo, CMS SignedData and
 * TimeStampResp DER; RFC 3161 §2.4.2, RFC 5816, RFC 5652 §5, RFC 5035, ETSI EN 319 422) and
 * of tsa/tsa_audit's record format.
 *
 * A throwaway PKI is made with the OpenSSL API once per test case (unchecked fixture, in the
 * parent before the forks): an EC P-256 root, TSU certificates with a critical
 * id-kp-timeStamping EKU on EC P-256 and RSA-3072 keys, and defective TSU certificates
 * (TSP-24). Tokens are issued through the real path (tsa_request_parse, tsa_unit_load,
 * software signer, tsa_token_prepare, signer_sign_now, tsa_token_response) and verified by
 * OpenSSL's own RFC 3161 verifier (TS_RESP_verify_response) and CMS verifier (CMS_verify),
 * then taken apart field by field: TSP-10, -14, -15, -16, -17, -18, -19, -20, -21, -22,
 * CIR-01, TSP-03 for rejections.
 */
#include "common/clock.h"
#include "common/der.h"
#include "common/log.h"
#include "common/signer.h"
#include "common/status.h"
#include "tsa/tsa_audit.h"
#include "tsa/tsa_config.h"
#include "tsa/tsa_request.h"
#include "tsa/tsa_token.h"

#include <check.h>
#include <dirent.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ts.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POLICY "1.3.6.1.4.1.99999.1.1"

static char dir[64];
static char ca_pem[128], other_ca_pem[128];
static char ec_pem[128], ec_key[128], rsa_pem[128], rsa_key[128];
static char noncrit_pem[128], extra_pem[128], noeku_pem[128], expired_pem[128];

static const int hashes[] = {NID_sha256, NID_sha384, NID_sha512};

/* ---- the throwaway PKI (unchecked fixture) ---- */

static void
write_key(const char *path, EVP_PKEY *k)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

static void
write_cert(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_X509(f, x), 1);
    fclose(f);
}

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *e;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

/* A certificate for `key` named CN=cn, signed by issuer/issuer_key (self-signed when NULL),
 * valid from now+nb to now+na seconds. `eku` is the extendedKeyUsage value or NULL. */
static X509 *
make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *eku,
          long nb, long na)
{
    X509 *x = X509_new();
    X509_NAME *n;
    BIGNUM *bn = BN_new();

    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(bn);
    ck_assert_int_eq(X509_set_version(x, 2), 1);
    ck_assert_int_eq(BN_rand(bn, 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY), 1);
    ck_assert_ptr_nonnull(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)));
    BN_free(bn);
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), nb));
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), na));
    n = X509_get_subject_name(x);
    ck_assert_int_eq(X509_NAME_add_entry_by_txt(
                         n, "O", MBSTRING_ASC, (const unsigned char *)"tsad unit tests", -1, -1, 0),
                     1);
    ck_assert_int_eq(
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
    ck_assert_int_eq(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n), 1);
    ck_assert_int_eq(X509_set_pubkey(x, key), 1);
    add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
    if (issuer == NULL) {
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
        add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
        if (eku != NULL)
            add_ext(x, issuer, NID_ext_key_usage, eku);
    }
    ck_assert_int_gt(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()), 0);
    return x;
}

static void
setup_pki(void)
{
    EVP_PKEY *ca_k, *other_k, *ec_k, *rsa_k;
    X509 *ca, *other, *x;

    snprintf(dir, sizeof(dir), "/tmp/check_tsa_token.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
#define P(var, name) snprintf(var, sizeof(var), "%s/%s", dir, name)
    P(ca_pem, "ca.pem");
    P(other_ca_pem, "other-ca.pem");
    P(ec_pem, "tsu-ec.pem");
    P(ec_key, "tsu-ec.key");
    P(rsa_pem, "tsu-rsa.pem");
    P(rsa_key, "tsu-rsa.key");
    P(noncrit_pem, "noncrit.pem");
    P(extra_pem, "extra.pem");
    P(noeku_pem, "noeku.pem");
    P(expired_pem, "expired.pem");
#undef P
    ca_k = EVP_EC_gen("P-256");
    other_k = EVP_EC_gen("P-256");
    ec_k = EVP_EC_gen("P-256");
    rsa_k = EVP_RSA_gen(3072);
    ck_assert_ptr_nonnull(ca_k);
    ck_assert_ptr_nonnull(other_k);
    ck_assert_ptr_nonnull(ec_k);
    ck_assert_ptr_nonnull(rsa_k);

    ca = make_cert("Test TSA Root", ca_k, NULL, NULL, NULL, -3600, 86400 * 30);
    write_cert(ca_pem, ca);
    other = make_cert("Other Root", other_k, NULL, NULL, NULL, -3600, 86400 * 30);
    write_cert(other_ca_pem, other);

    x = make_cert("TSU EC", ec_k, ca, ca_k, "critical,timeStamping", -3600, 86400);
    write_cert(ec_pem, x);
    X509_free(x);
    write_key(ec_key, ec_k);
    x = make_cert("TSU RSA", rsa_k, ca, ca_k, "critical,timeStamping", -3600, 86400);
    write_cert(rsa_pem, x);
    X509_free(x);
    write_key(rsa_key, rsa_k);
    /* TSP-24 defects, all on the EC key */
    x = make_cert("TSU noncritical", ec_k, ca, ca_k, "timeStamping", -3600, 86400);
    write_cert(noncrit_pem, x);
    X509_free(x);
    x = make_cert("TSU extra", ec_k, ca, ca_k, "critical,timeStamping,serverAuth", -3600, 86400);
    write_cert(extra_pem, x);
    X509_free(x);
    x = make_cert("TSU no EKU", ec_k, ca, ca_k, NULL, -3600, 86400);
    write_cert(noeku_pem, x);
    X509_free(x);
    x = make_cert("TSU expired", ec_k, ca, ca_k, "critical,timeStamping", -7200, -3600);
    write_cert(expired_pem, x);
    X509_free(x);

    X509_free(ca);
    X509_free(other);
    EVP_PKEY_free(ca_k);
    EVP_PKEY_free(other_k);
    EVP_PKEY_free(ec_k);
    EVP_PKEY_free(rsa_k);
}

static void
teardown_pki(void)
{
    DIR *dh = opendir(dir);
    struct dirent *e;
    char p[512];

    if (dh == NULL)
        return;
    while ((e = readdir(dh)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(dh);
    rmdir(dir);
}

/* ---- a loaded TSU with a software key (checked fixture) ---- */

static struct tsa_unit_config ucfg;
static struct tsa_unit unit;
static struct signer *sgn;
static bool unit_loaded;

static void
setup_unit_cfg(void)
{
    memset(&ucfg, 0, sizeof(ucfg));
    memset(&unit, 0, sizeof(unit));
    snprintf(ucfg.name, sizeof(ucfg.name), "test");
    snprintf(ucfg.policy, sizeof(ucfg.policy), POLICY);
    snprintf(ucfg.path, sizeof(ucfg.path), "/tsa");
    ucfg.is_default = true;
    snprintf(ucfg.cert, sizeof(ucfg.cert), "%s", ec_pem);
    snprintf(ucfg.chain, sizeof(ucfg.chain), "%s", ca_pem);
    snprintf(ucfg.key_file, sizeof(ucfg.key_file), "%s", ec_key);
    ucfg.scheme = SIGNER_ECDSA;
    ucfg.hash = SIGNER_SHA256;
    ucfg.accuracy = 1.0;
    ucfg.tsa_name = true;
    unit_loaded = false;
    sgn = NULL;
}

static void
teardown_unit(void)
{
    if (unit_loaded)
        tsa_unit_clear(&unit);
    signer_free(sgn);
    sgn = NULL;
}

/* Load the unit as configured in ucfg and attach its software key. */
static void
load_unit(void)
{
    struct signer_config sc = {.p11_module = NULL, .workers = 1};

    ck_assert_int_eq(tsa_unit_load(&unit, &ucfg), ST_OK);
    unit_loaded = true;
    sgn = signer_new(&sc, NULL, NULL);
    ck_assert_ptr_nonnull(sgn);
    unit.key = signer_add_soft_key(sgn, ucfg.key_file, unit.cert, (enum signer_scheme)ucfg.scheme,
                                   (enum signer_hash)ucfg.hash);
    ck_assert_ptr_nonnull(unit.key);
}

/* ---- issuing ---- */

struct issued {
    TS_REQ *ts_req;         /* what the client sent, for the verifier */
    struct tsa_request req; /* as parsed */
    struct tsa_token tok;
    uint8_t *resp;
    size_t resp_len;
};

static void
issued_free(struct issued *is)
{
    TS_REQ_free(is->ts_req);
    free(is->resp);
    memset(is, 0, sizeof(*is));
}

/* A SHA-256 request over `data`, with an 8-byte nonce when nonce is true. */
static TS_REQ *
make_request(const char *data, bool nonce, bool cert_req, const char *policy)
{
    TS_REQ *r = TS_REQ_new();
    TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
    X509_ALGOR *alg = X509_ALGOR_new();
    uint8_t h[32];

    ck_assert_ptr_nonnull(r);
    SHA256((const unsigned char *)data, strlen(data), h);
    ck_assert_int_eq(TS_REQ_set_version(r, 1), 1);
    ck_assert_int_eq(X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL), 1);
    ck_assert_int_eq(TS_MSG_IMPRINT_set_algo(mi, alg), 1);
    ck_assert_int_eq(TS_MSG_IMPRINT_set_msg(mi, h, sizeof(h)), 1);
    ck_assert_int_eq(TS_REQ_set_msg_imprint(r, mi), 1);
    if (nonce) {
        uint8_t nb[8];
        BIGNUM *bn;
        ASN1_INTEGER *ai;

        ck_assert_int_eq(RAND_bytes(nb, sizeof(nb)), 1);
        nb[0] |= 0x80; /* top bit set: encoded with a leading 00 (TSP-09) */
        bn = BN_bin2bn(nb, sizeof(nb), NULL);
        ai = BN_to_ASN1_INTEGER(bn, NULL);
        ck_assert_int_eq(TS_REQ_set_nonce(r, ai), 1);
        ASN1_INTEGER_free(ai);
        BN_free(bn);
    }
    if (policy != NULL) {
        ASN1_OBJECT *o = OBJ_txt2obj(policy, 1);

        ck_assert_int_eq(TS_REQ_set_policy_id(r, o), 1);
        ASN1_OBJECT_free(o);
    }
    ck_assert_int_eq(TS_REQ_set_cert_req(r, cert_req), 1);
    X509_ALGOR_free(alg);
    TS_MSG_IMPRINT_free(mi);
    return r;
}

/* Issue a token for ts_req through the real path (takes ts_req). */
static void
issue_req(struct issued *is, TS_REQ *ts_req)
{
    unsigned char *der = NULL;
    int n = i2d_TS_REQ(ts_req, &der);
    const char *why = NULL;
    struct timespec now;
    uint8_t digest[EVP_MAX_MD_SIZE];
    size_t dl = 0;
    struct signer_job job;

    memset(is, 0, sizeof(*is));
    is->ts_req = ts_req;
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(tsa_request_parse(der, (size_t)n, hashes, 3, &is->req, &why), TSA_FAIL_NONE);
    OPENSSL_free(der);
    ck_assert_int_eq(tsa_serial_new(is->tok.serial), ST_OK);
    ck_assert_int_eq(clock_gettime(CLOCK_REALTIME, &now), 0);
    tsa_unit_gen_time(&unit, &now, &is->tok.gen_time);
    ck_assert_int_eq(tsa_token_prepare(&unit, &is->req, &is->tok, digest, &dl), ST_OK);
    ck_assert_uint_eq(dl, EVP_MD_get_size(signer_key_md(unit.key)));
    memset(&job, 0, sizeof(job));
    job.key = unit.key;
    memcpy(job.digest, digest, dl);
    job.digest_len = dl;
    ck_assert_int_eq(signer_sign_now(sgn, &job), ST_OK);
    ck_assert_int_eq(tsa_token_response(&unit, &is->req, &is->tok, job.sig, job.sig_len, &is->resp,
                                        &is->resp_len),
                     ST_OK);
    ck_assert_ptr_nonnull(is->resp);
}

static void
issue(struct issued *is, bool nonce, bool cert_req)
{
    issue_req(is, make_request("hello, time", nonce, cert_req, POLICY));
}

static X509 *
read_pem_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x;

    ck_assert_ptr_nonnull(f);
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    ck_assert_ptr_nonnull(x);
    return x;
}

static X509_STORE *
trust_store(void)
{
    X509_STORE *st = X509_STORE_new();
    X509 *ca = read_pem_cert(ca_pem);

    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(X509_STORE_add_cert(st, ca), 1);
    X509_free(ca);
    return st;
}

static void
print_openssl_errors(void)
{
    unsigned long e;
    char b[256];

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, b, sizeof(b));
        fprintf(stderr, "openssl: %s\n", b);
    }
}

static TS_RESP *
parse_resp(const struct issued *is)
{
    const unsigned char *p = is->resp;
    TS_RESP *r = d2i_TS_RESP(NULL, &p, (long)is->resp_len);

    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_eq(p, is->resp + is->resp_len);
    return r;
}

/* OpenSSL's RFC 3161 verifier: signature and chain to the test root with the timestamping
 * purpose, ESS signing certificate, version, policy, imprint, nonce, tsa name = signer. */
static int
verify_ts_rc(const struct issued *is)
{
    TS_RESP *r = parse_resp(is);
    TS_VERIFY_CTX *ctx = TS_REQ_to_TS_VERIFY_CTX(is->ts_req, NULL);
    STACK_OF(X509) *certs = sk_X509_new_null();
    int ok;

    ck_assert_ptr_nonnull(ctx);
    TS_VERIFY_CTX_add_flags(ctx,
                            TS_VFY_SIGNATURE | TS_VFY_SIGNER | TS_VFY_VERSION | TS_VFY_IMPRINT);
    TS_VERIFY_CTX_set_store(ctx, trust_store());
    /* without certReq the verifier needs the TSU certificate from elsewhere */
    ck_assert_int_gt(sk_X509_push(certs, read_pem_cert(ucfg.cert)), 0);
    TS_VERIFY_CTX_set_certs(ctx, certs);
    ok = TS_RESP_verify_response(ctx, r);
    TS_VERIFY_CTX_free(ctx);
    TS_RESP_free(r);
    return ok;
}

static void
verify_ts(const struct issued *is)
{
    int ok = verify_ts_rc(is);

    if (ok != 1)
        print_openssl_errors();
    ck_assert_int_eq(ok, 1);
}

/* OpenSSL's CMS verifier on the TimeStampToken: signedAttrs content-type and message-digest,
 * signature over the DER SET OF signedAttrs (TSP-15), chain with the timestamping purpose. */
static int
verify_cms_rc(const struct issued *is, bool check_content)
{
    const uint8_t *tok;
    size_t tok_len;
    const unsigned char *p;
    CMS_ContentInfo *cms;
    X509_STORE *st = trust_store();
    STACK_OF(X509) *certs = sk_X509_new_null();
    BIO *out = BIO_new(BIO_s_mem());
    char *data;
    long dl;
    int ok;

    ck_assert_int_eq(tsa_audit_token_span(is->resp, is->resp_len, &tok, &tok_len), ST_OK);
    p = tok;
    cms = d2i_CMS_ContentInfo(NULL, &p, (long)tok_len);
    ck_assert_ptr_nonnull(cms);
    ck_assert_ptr_eq(p, tok + tok_len);
    ck_assert_int_eq(OBJ_obj2nid(CMS_get0_eContentType(cms)), NID_id_smime_ct_TSTInfo);
    ck_assert_int_gt(sk_X509_push(certs, read_pem_cert(ucfg.cert)), 0);
    ck_assert_int_eq(X509_STORE_set_purpose(st, X509_PURPOSE_TIMESTAMP_SIGN), 1);
    ok = CMS_verify(cms, certs, st, NULL, out, CMS_BINARY);
    if (ok == 1 && check_content) {
        /* the signed content is our TSTInfo */
        dl = BIO_get_mem_data(out, &data);
        ck_assert_int_eq(dl, (long)is->tok.tstinfo_len);
        ck_assert_mem_eq(data, is->tok.tstinfo, is->tok.tstinfo_len);
    }
    BIO_free(out);
    sk_X509_pop_free(certs, X509_free);
    X509_STORE_free(st);
    CMS_ContentInfo_free(cms);
    return ok;
}

static void
verify_cms(const struct issued *is)
{
    int ok = verify_cms_rc(is, true);

    if (ok != 1)
        print_openssl_errors();
    ck_assert_int_eq(ok, 1);
}

/* Content of the idx-th element inside (c, n). */
static void
der_child(const uint8_t *c, size_t n, int idx, uint8_t *tag, const uint8_t **out, size_t *olen)
{
    const uint8_t *p = c;

    for (int i = 0; i <= idx; i++)
        ck_assert_msg(der_read(&p, c + n, tag, out, olen), "element %d of %d missing", i, idx);
}

/* ---- granted tokens ---- */

START_TEST(test_ecdsa_token_verifies)
{
    struct issued is;

    load_unit();
    issue(&is, true, true);
    verify_ts(&is);
    verify_cms(&is);
    issued_free(&is);
    /* and without nonce and without certificates */
    issue(&is, false, false);
    verify_ts(&is);
    verify_cms(&is);
    issued_free(&is);
}
END_TEST

/* ALG-02: an ECDSA key signs with the hash that matches its curve; a P-256 key with SHA-384
 * is refused when the key is added, not at the first request. */
START_TEST(test_ecdsa_hash_must_match_curve)
{
    struct signer_config sc = {.p11_module = NULL, .workers = 1};

    ck_assert_int_eq(tsa_unit_load(&unit, &ucfg), ST_OK);
    unit_loaded = true;
    sgn = signer_new(&sc, NULL, NULL);
    ck_assert_ptr_nonnull(sgn);
    ck_assert_ptr_null(
        signer_add_soft_key(sgn, ucfg.key_file, unit.cert, SIGNER_ECDSA, SIGNER_SHA384));
    ck_assert_ptr_null(
        signer_add_soft_key(sgn, ucfg.key_file, unit.cert, SIGNER_ECDSA, SIGNER_SHA512));
    ck_assert_ptr_nonnull(
        signer_add_soft_key(sgn, ucfg.key_file, unit.cert, SIGNER_ECDSA, SIGNER_SHA256));
}
END_TEST

START_TEST(test_rsa_pkcs1_token_verifies)
{
    struct issued is;

    snprintf(ucfg.cert, sizeof(ucfg.cert), "%s", rsa_pem);
    snprintf(ucfg.key_file, sizeof(ucfg.key_file), "%s", rsa_key);
    ucfg.scheme = SIGNER_RSA_PKCS1;
    load_unit();
    issue(&is, true, true);
    verify_ts(&is);
    verify_cms(&is);
    issued_free(&is);
}
END_TEST

START_TEST(test_rsa_pss_token_verifies)
{
    /* OpenSSL's TS verifier goes through PKCS7, which knows no RSASSA-PSS: CMS_verify checks
     * the signature, and TS_RESP_verify_response the rest with the signature check off. */
    struct issued is;
    TS_RESP *r;
    TS_VERIFY_CTX *ctx;

    snprintf(ucfg.cert, sizeof(ucfg.cert), "%s", rsa_pem);
    snprintf(ucfg.key_file, sizeof(ucfg.key_file), "%s", rsa_key);
    ucfg.scheme = SIGNER_RSA_PSS;
    ucfg.hash = SIGNER_SHA384;
    load_unit();
    issue(&is, true, true);
    verify_cms(&is);
    r = parse_resp(&is);
    ctx = TS_REQ_to_TS_VERIFY_CTX(is.ts_req, NULL);
    ck_assert_ptr_nonnull(ctx);
    TS_VERIFY_CTX_set_flags(ctx, TS_VFY_VERSION | TS_VFY_IMPRINT | TS_VFY_NONCE | TS_VFY_POLICY);
    ck_assert_int_eq(TS_RESP_verify_response(ctx, r), 1);
    TS_VERIFY_CTX_free(ctx);
    TS_RESP_free(r);
    issued_free(&is);
}
END_TEST

START_TEST(test_tampered_fails)
{
    /* the verifiers above can fail: one flipped bit in the signature, or in the genTime
     * inside the signed TSTInfo, and neither accepts the token */
    struct issued is;
    uint8_t *g;

    load_unit();
    issue(&is, true, true);
    is.resp[is.resp_len - 1] ^= 0x01; /* last octet of the signature */
    ck_assert_int_ne(verify_ts_rc(&is), 1);
    ck_assert_int_ne(verify_cms_rc(&is, false), 1);
    is.resp[is.resp_len - 1] ^= 0x01;
    ck_assert_int_eq(verify_ts_rc(&is), 1);
    g = memmem(is.resp, is.resp_len, is.tok.tstinfo, is.tok.tstinfo_len);
    ck_assert_ptr_nonnull(g);
    g[is.tok.tstinfo_len - 1] ^= 0x01; /* inside TSTInfo: the message digest no longer holds */
    ck_assert_int_ne(verify_ts_rc(&is), 1);
    ck_assert_int_ne(verify_cms_rc(&is, false), 1);
    ERR_clear_error();
    issued_free(&is);
}
END_TEST

START_TEST(test_cert_req)
{
    /* TSP-10: certReq true -> the TSU certificate (not the self-signed root) is sent;
     * false -> the certificates field is absent */
    struct issued is;
    TS_RESP *r;
    PKCS7 *p7;
    X509 *tsu = read_pem_cert(ec_pem);

    load_unit();
    issue(&is, true, true);
    r = parse_resp(&is);
    p7 = TS_RESP_get_token(r);
    ck_assert_ptr_nonnull(p7->d.sign->cert);
    ck_assert_int_eq(sk_X509_num(p7->d.sign->cert), 1);
    ck_assert_int_eq(X509_cmp(sk_X509_value(p7->d.sign->cert, 0), tsu), 0);
    TS_RESP_free(r);
    issued_free(&is);

    issue(&is, true, false);
    r = parse_resp(&is);
    p7 = TS_RESP_get_token(r);
    ck_assert(p7->d.sign->cert == NULL || sk_X509_num(p7->d.sign->cert) == 0);
    /* at the byte level: after encapContentInfo comes SET OF SignerInfo, no [0] */
    {
        const uint8_t *tok, *c, *sd;
        size_t tl, cl, sdl;
        uint8_t tag;

        ck_assert_int_eq(tsa_audit_token_span(is.resp, is.resp_len, &tok, &tl), ST_OK);
        der_child(tok, tl, 0, &tag, &c, &cl); /* ContentInfo */
        der_child(c, cl, 1, &tag, &sd, &sdl); /* [0] */
        der_child(sd, sdl, 0, &tag, &c, &cl); /* SignedData */
        der_child(c, cl, 3, &tag, &sd, &sdl);
        ck_assert_uint_eq(tag, DER_SET); /* signerInfos, not certificates [0] */
    }
    TS_RESP_free(r);
    issued_free(&is);
    X509_free(tsu);
}
END_TEST

START_TEST(test_signed_data_shape)
{
    /* TSP-14/15: id-signedData, version 3, eContentType id-ct-TSTInfo, exactly one SignerInfo
     * (version 1, issuerAndSerialNumber), digestAlgorithms = the signer's digest */
    struct issued is;
    TS_RESP *r;
    PKCS7 *p7;
    PKCS7_SIGNER_INFO *si;
    X509 *tsu = read_pem_cert(ec_pem);
    const X509_ALGOR *dalg;

    load_unit();
    issue(&is, true, true);
    r = parse_resp(&is);
    ck_assert_int_eq(ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(r))), 0);
    p7 = TS_RESP_get_token(r);
    ck_assert(PKCS7_type_is_signed(p7));
    ck_assert_int_eq(ASN1_INTEGER_get(p7->d.sign->version), 3);
    ck_assert_int_eq(OBJ_obj2nid(p7->d.sign->contents->type), NID_id_smime_ct_TSTInfo);
    ck_assert_int_eq(sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info), 1);
    si = sk_PKCS7_SIGNER_INFO_value(p7->d.sign->signer_info, 0);
    ck_assert_int_eq(ASN1_INTEGER_get(si->version), 1);
    ck_assert_int_eq(X509_NAME_cmp(si->issuer_and_serial->issuer, X509_get_issuer_name(tsu)), 0);
    ck_assert_int_eq(ASN1_INTEGER_cmp(si->issuer_and_serial->serial, X509_get0_serialNumber(tsu)),
                     0);
    ck_assert_int_eq(sk_X509_ALGOR_num(p7->d.sign->md_algs), 1);
    dalg = sk_X509_ALGOR_value(p7->d.sign->md_algs, 0);
    ck_assert_int_eq(OBJ_obj2nid(dalg->algorithm), NID_sha256);
    ck_assert_int_eq(OBJ_obj2nid(si->digest_alg->algorithm), NID_sha256);
    ck_assert_int_eq(OBJ_obj2nid(si->digest_enc_alg->algorithm), NID_ecdsa_with_SHA256);
    /* signedAttrs: content-type id-ct-TSTInfo */
    {
        ASN1_TYPE *ct = PKCS7_get_signed_attribute(si, NID_pkcs9_contentType);

        ck_assert_ptr_nonnull(ct);
        ck_assert_int_eq(ct->type, V_ASN1_OBJECT);
        ck_assert_int_eq(OBJ_obj2nid(ct->value.object), NID_id_smime_ct_TSTInfo);
        ck_assert_ptr_nonnull(PKCS7_get_signed_attribute(si, NID_pkcs9_messageDigest));
    }
    TS_RESP_free(r);
    X509_free(tsu);
    issued_free(&is);
}
END_TEST

START_TEST(test_tstinfo_fields)
{
    /* TSP-17 version 1; TSP-08 policy; TSP-07 imprint; TSP-09 nonce; TSP-18 serial;
     * TSP-22 tsa = the TSU subject; TSP-21 ordering absent */
    struct issued is;
    TS_RESP *r;
    TS_TST_INFO *tst;
    X509 *tsu = read_pem_cert(ec_pem);
    char oid[64];
    uint8_t ser[TSA_SERIAL_LEN];
    BIGNUM *bn;
    const GENERAL_NAME *gn;

    load_unit();
    issue(&is, true, true);
    r = parse_resp(&is);
    tst = TS_RESP_get_tst_info(r);
    ck_assert_int_eq(TS_TST_INFO_get_version(tst), 1);
    OBJ_obj2txt(oid, sizeof(oid), TS_TST_INFO_get_policy_id(tst), 1);
    ck_assert_str_eq(oid, POLICY);
    ck_assert_int_eq(ASN1_INTEGER_cmp(TS_TST_INFO_get_nonce(tst), TS_REQ_get_nonce(is.ts_req)), 0);
    ck_assert_int_eq(ASN1_STRING_length(TS_MSG_IMPRINT_get_msg(TS_TST_INFO_get_msg_imprint(tst))),
                     32);
    bn = ASN1_INTEGER_to_BN(TS_TST_INFO_get_serial(tst), NULL);
    ck_assert_ptr_nonnull(bn);
    ck_assert(!BN_is_negative(bn));
    ck_assert_int_eq(BN_bn2binpad(bn, ser, sizeof(ser)), (int)sizeof(ser));
    ck_assert_mem_eq(ser, is.tok.serial, sizeof(ser));
    BN_free(bn);
    ck_assert_int_eq(TS_TST_INFO_get_ordering(tst), 0);
    gn = TS_TST_INFO_get_tsa(tst);
    ck_assert_ptr_nonnull(gn);
    ck_assert_int_eq(gn->type, GEN_DIRNAME);
    ck_assert_int_eq(X509_NAME_cmp(gn->d.directoryName, X509_get_subject_name(tsu)), 0);
    ck_assert_ptr_null(TS_TST_INFO_get_exts(tst)); /* not qualified: no extensions */
    TS_RESP_free(r);
    X509_free(tsu);
    issued_free(&is);
}
END_TEST

START_TEST(test_tstinfo_der_order)
{
    /* TSTInfo element tags in order; no BOOLEAN after accuracy (TSP-21); imprint and nonce
     * byte for byte as received (TSP-07, TSP-09); genTime form (TSP-19) */
    struct issued is;
    const uint8_t *c, *e, *p;
    size_t cl, el;
    uint8_t tag;
    static const uint8_t want_tags[] = {
        DER_INTEGER,          DER_OID,      DER_SEQUENCE, DER_INTEGER,
        DER_GENERALIZED_TIME, DER_SEQUENCE, DER_INTEGER,  DER_CTX_CONS(0)};
    size_t i = 0;

    load_unit();
    issue(&is, true, false);
    p = is.tok.tstinfo;
    ck_assert(der_read(&p, is.tok.tstinfo + is.tok.tstinfo_len, &tag, &c, &cl));
    ck_assert_ptr_eq(p, is.tok.tstinfo + is.tok.tstinfo_len);
    p = c;
    while (p < c + cl) {
        const uint8_t *start = p;

        ck_assert(der_read(&p, c + cl, &tag, &e, &el));
        ck_assert_uint_lt(i, sizeof(want_tags));
        ck_assert_msg(tag == want_tags[i], "element %zu: tag %02x, want %02x", i, tag,
                      want_tags[i]);
        if (i == 2) {
            ck_assert_uint_eq((size_t)(p - start), is.req.imprint_len);
            ck_assert_mem_eq(start, is.req.imprint, is.req.imprint_len);
        }
        if (i == 4) {
            /* ^\d{14}(\.\d*[1-9])?Z$ */
            ck_assert_uint_ge(el, 15);
            for (size_t k = 0; k < 14; k++)
                ck_assert(e[k] >= '0' && e[k] <= '9');
            ck_assert_uint_eq(e[el - 1], 'Z');
            if (el > 15) {
                ck_assert_uint_eq(e[14], '.');
                ck_assert_uint_ge(el, 17);
                ck_assert(e[el - 2] >= '1' && e[el - 2] <= '9');
            }
        }
        if (i == 6) {
            ck_assert_uint_eq((size_t)(p - start), is.req.nonce_len);
            ck_assert_mem_eq(start, is.req.nonce, is.req.nonce_len);
        }
        i++;
    }
    ck_assert_uint_eq(i, sizeof(want_tags));
    issued_free(&is);
}
END_TEST

static void
check_accuracy(double acc, const uint8_t *want, size_t wlen, long s, long ms, long us,
               unsigned digits)
{
    struct issued is;
    TS_RESP *r;
    const TS_ACCURACY *a;

    ucfg.accuracy = acc;
    load_unit();
    ck_assert_uint_eq(unit.accuracy_len, wlen);
    ck_assert_mem_eq(unit.accuracy, want, wlen);
    ck_assert_uint_eq(unit.frac_digits, digits);
    issue(&is, false, false);
    verify_ts(&is);
    r = parse_resp(&is);
    a = TS_TST_INFO_get_accuracy(TS_RESP_get_tst_info(r));
    ck_assert_ptr_nonnull(a); /* TPR-04: always present */
    ck_assert_int_eq(TS_ACCURACY_get_seconds(a) ? ASN1_INTEGER_get(TS_ACCURACY_get_seconds(a)) : 0,
                     s);
    ck_assert_int_eq(TS_ACCURACY_get_millis(a) ? ASN1_INTEGER_get(TS_ACCURACY_get_millis(a)) : 0,
                     ms);
    ck_assert_int_eq(TS_ACCURACY_get_micros(a) ? ASN1_INTEGER_get(TS_ACCURACY_get_micros(a)) : 0,
                     us);
    /* zero parts are omitted, not encoded as 0 (TSP-20) */
    ck_assert(s != 0 || TS_ACCURACY_get_seconds(a) == NULL);
    ck_assert(ms != 0 || TS_ACCURACY_get_millis(a) == NULL);
    ck_assert(us != 0 || TS_ACCURACY_get_micros(a) == NULL);
    TS_RESP_free(r);
    issued_free(&is);
    teardown_unit();
}

START_TEST(test_accuracy_1s)
{
    /* TSP-20: seconds 1; genTime with one fraction digit (TPR-03) */
    check_accuracy(1.0, (const uint8_t[]){0x30, 0x03, 0x02, 0x01, 0x01}, 5, 1, 0, 0, 1);
}
END_TEST

START_TEST(test_accuracy_100ms)
{
    check_accuracy(0.1, (const uint8_t[]){0x30, 0x03, 0x80, 0x01, 0x64}, 5, 0, 100, 0, 2);
}
END_TEST

START_TEST(test_accuracy_1500us)
{
    check_accuracy(0.0015, (const uint8_t[]){0x30, 0x07, 0x80, 0x01, 0x01, 0x81, 0x02, 0x01, 0xf4},
                   9, 0, 1, 500, 4);
}
END_TEST

START_TEST(test_accuracy_500ms_1us)
{
    check_accuracy(0.5, (const uint8_t[]){0x30, 0x04, 0x80, 0x02, 0x01, 0xf4}, 6, 0, 500, 0, 2);
    check_accuracy(1e-6, (const uint8_t[]){0x30, 0x03, 0x81, 0x01, 0x01}, 5, 0, 0, 1, 6);
}
END_TEST

START_TEST(test_qualified_extension)
{
    /* CIR-01 / TPR-12: one qcStatements extension, not critical, holding
     * esi4-qtstStatement-1 exactly once */
    static const uint8_t want[] = {0x30, 0x0b, 0x30, 0x09, 0x06, 0x07, 0x04,
                                   0x00, 0x81, 0x97, 0x5e, 0x01, 0x01};
    struct issued is;
    TS_RESP *r;
    STACK_OF(X509_EXTENSION) * exts;
    X509_EXTENSION *ext;
    const ASN1_OCTET_STRING *v;
    char oid[64];

    ucfg.qualified = true;
    load_unit();
    issue(&is, true, true);
    verify_ts(&is);
    r = parse_resp(&is);
    exts = TS_TST_INFO_get_exts(TS_RESP_get_tst_info(r));
    ck_assert_ptr_nonnull(exts);
    ck_assert_int_eq(sk_X509_EXTENSION_num(exts), 1);
    ext = sk_X509_EXTENSION_value(exts, 0);
    OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1);
    ck_assert_str_eq(oid, "1.3.6.1.5.5.7.1.3");
    ck_assert_int_eq(X509_EXTENSION_get_critical(ext), 0);
    v = X509_EXTENSION_get_data(ext);
    ck_assert_int_eq(ASN1_STRING_length(v), (int)sizeof(want));
    ck_assert_mem_eq(ASN1_STRING_get0_data(v), want, sizeof(want));
    TS_RESP_free(r);
    issued_free(&is);
}
END_TEST

/* Content of the signed attribute `nid` of the only SignerInfo: the attribute value's DER. */
static void
signed_attr(const struct issued *is, int nid, uint8_t *buf, size_t cap, size_t *len)
{
    TS_RESP *r = parse_resp(is);
    PKCS7_SIGNER_INFO *si =
        sk_PKCS7_SIGNER_INFO_value(TS_RESP_get_token(r)->d.sign->signer_info, 0);
    ASN1_TYPE *at = PKCS7_get_signed_attribute(si, nid);

    *len = 0;
    if (at != NULL) {
        ck_assert_int_eq(at->type, V_ASN1_SEQUENCE);
        ck_assert_uint_le((size_t)at->value.sequence->length, cap);
        *len = (size_t)at->value.sequence->length;
        memcpy(buf, at->value.sequence->data, *len);
    }
    TS_RESP_free(r);
}

/* The ESSCertID(v2) inside a SigningCertificate(V2) value: its certHash and IssuerSerial. */
static void
check_ess_cert_id(const uint8_t *v, size_t vl, const uint8_t *hash, size_t hl)
{
    const uint8_t *c, *certs, *id, *h, *isr, *gns, *dn, *name;
    size_t cl, certsl, idl, hlen, isrl, gnsl, dnl, namel;
    uint8_t tag;
    X509 *tsu = read_pem_cert(ec_pem);
    unsigned char *ider = NULL, *sder = NULL;
    int il, sl;

    der_child(v, vl, 0, &tag, &c, &cl); /* SigningCertificate(V2) */
    ck_assert_uint_eq(tag, DER_SEQUENCE);
    der_child(c, cl, 0, &tag, &certs, &certsl); /* certs SEQUENCE OF */
    ck_assert_uint_eq(tag, DER_SEQUENCE);
    der_child(certs, certsl, 0, &tag, &id, &idl); /* ESSCertID(v2) */
    ck_assert_uint_eq(tag, DER_SEQUENCE);
    /* first element: certHash; for v2 with SHA-256 the hashAlgorithm is absent (TSP-16) */
    der_child(id, idl, 0, &tag, &h, &hlen);
    ck_assert_uint_eq(tag, DER_OCTET_STRING);
    ck_assert_uint_eq(hlen, hl);
    ck_assert_mem_eq(h, hash, hl);
    der_child(id, idl, 1, &tag, &isr, &isrl); /* IssuerSerial */
    ck_assert_uint_eq(tag, DER_SEQUENCE);
    der_child(isr, isrl, 0, &tag, &gns, &gnsl); /* GeneralNames */
    ck_assert_uint_eq(tag, DER_SEQUENCE);
    der_child(gns, gnsl, 0, &tag, &dn, &dnl); /* directoryName [4] */
    ck_assert_uint_eq(tag, DER_CTX_CONS(4));
    il = i2d_X509_NAME(X509_get_issuer_name(tsu), &ider);
    ck_assert_uint_eq(dnl, (size_t)il);
    ck_assert_mem_eq(dn, ider, dnl);
    der_child(isr, isrl, 1, &tag, &name, &namel); /* serialNumber */
    ck_assert_uint_eq(tag, DER_INTEGER);
    sl = i2d_ASN1_INTEGER(X509_get0_serialNumber(tsu), &sder);
    ck_assert_uint_eq(namel + 2, (size_t)sl);
    ck_assert_mem_eq(name, sder + 2, namel);
    OPENSSL_free(ider);
    OPENSSL_free(sder);
    X509_free(tsu);
}

START_TEST(test_ess_cert_id_v2)
{
    struct issued is;
    uint8_t v[1024], h[32], *der = NULL;
    size_t vl;
    X509 *tsu = read_pem_cert(ec_pem);
    int n = i2d_X509(tsu, &der);

    ck_assert_int_gt(n, 0);
    SHA256(der, (size_t)n, h);
    load_unit();
    ck_assert_mem_eq(unit.cert_sha256, h, 32);
    issue(&is, false, false);
    signed_attr(&is, NID_id_smime_aa_signingCertificateV2, v, sizeof(v), &vl);
    ck_assert_uint_gt(vl, 0);
    check_ess_cert_id(v, vl, h, 32);
    /* no v1 attribute unless configured */
    signed_attr(&is, NID_id_smime_aa_signingCertificate, v, sizeof(v), &vl);
    ck_assert_uint_eq(vl, 0);
    issued_free(&is);
    OPENSSL_free(der);
    X509_free(tsu);
}
END_TEST

START_TEST(test_ess_cert_id_v1)
{
    struct issued is;
    uint8_t v[1024], h[20], *der = NULL;
    size_t vl;
    X509 *tsu = read_pem_cert(ec_pem);
    int n = i2d_X509(tsu, &der);

    ck_assert_int_gt(n, 0);
    SHA1(der, (size_t)n, h);
    ucfg.ess_cert_id_v1 = true;
    load_unit();
    issue(&is, true, true);
    verify_ts(&is);
    verify_cms(&is);
    signed_attr(&is, NID_id_smime_aa_signingCertificate, v, sizeof(v), &vl);
    ck_assert_uint_gt(vl, 0);
    check_ess_cert_id(v, vl, h, 20);
    signed_attr(&is, NID_id_smime_aa_signingCertificateV2, v, sizeof(v), &vl);
    ck_assert_uint_gt(vl, 0);
    issued_free(&is);
    OPENSSL_free(der);
    X509_free(tsu);
}
END_TEST

START_TEST(test_no_tsa_name)
{
    struct issued is;
    TS_RESP *r;

    ucfg.tsa_name = false;
    load_unit();
    ck_assert_ptr_null(unit.tsa_name);
    issue(&is, true, false);
    verify_ts(&is);
    r = parse_resp(&is);
    ck_assert_ptr_null(TS_TST_INFO_get_tsa(TS_RESP_get_tst_info(r)));
    TS_RESP_free(r);
    issued_free(&is);
}
END_TEST

START_TEST(test_big_nonce)
{
    /* the largest nonce accepted (128 octets, top bit set) still fits the token */
    TS_REQ *req = make_request("big nonce", false, true, NULL);
    uint8_t nb[128];
    BIGNUM *bn;
    ASN1_INTEGER *ai;
    struct issued is;

    memset(nb, 0xff, sizeof(nb));
    bn = BN_bin2bn(nb, sizeof(nb), NULL);
    ai = BN_to_ASN1_INTEGER(bn, NULL);
    ck_assert_int_eq(TS_REQ_set_nonce(req, ai), 1);
    ASN1_INTEGER_free(ai);
    BN_free(bn);
    ucfg.qualified = true;
    ucfg.ess_cert_id_v1 = true;
    load_unit();
    issue_req(&is, req);
    ck_assert_uint_eq(is.req.nonce_len, 132);
    verify_ts(&is);
    issued_free(&is);
}
END_TEST

/* ---- TSU loading ---- */

START_TEST(test_unit_load_refuses)
{
    /* TSP-24 defects, expiry, a chain the certificate does not verify against (TSA-10) */
    const char *const bad[] = {noncrit_pem, extra_pem, noeku_pem, expired_pem};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(ucfg.cert, sizeof(ucfg.cert), "%s", bad[i]);
        ck_assert_msg(tsa_unit_load(&unit, &ucfg) == ST_CONFIG, "%s loaded", ucfg.cert);
        tsa_unit_clear(&unit);
    }
    snprintf(ucfg.cert, sizeof(ucfg.cert), "%s", ec_pem);
    snprintf(ucfg.chain, sizeof(ucfg.chain), "%s", other_ca_pem);
    ck_assert_int_eq(tsa_unit_load(&unit, &ucfg), ST_CONFIG);
    tsa_unit_clear(&unit);
    snprintf(ucfg.chain, sizeof(ucfg.chain), "%s/missing.pem", dir);
    ck_assert_int_eq(tsa_unit_load(&unit, &ucfg), ST_CONFIG);
    tsa_unit_clear(&unit);
    snprintf(ucfg.chain, sizeof(ucfg.chain), "%s", ca_pem);
    snprintf(ucfg.cert, sizeof(ucfg.cert), "%s/missing.pem", dir);
    ck_assert_int_eq(tsa_unit_load(&unit, &ucfg), ST_CONFIG);
    tsa_unit_clear(&unit);
    /* a key file that is not the certificate's key */
    snprintf(ucfg.cert, sizeof(ucfg.cert), "%s", ec_pem);
    ck_assert_int_eq(tsa_unit_load(&unit, &ucfg), ST_OK);
    unit_loaded = true;
    {
        struct signer_config sc = {.workers = 1};

        sgn = signer_new(&sc, NULL, NULL);
        ck_assert_ptr_nonnull(sgn);
        ck_assert_ptr_null(
            signer_add_soft_key(sgn, rsa_key, unit.cert, SIGNER_ECDSA, SIGNER_SHA256));
    }
}
END_TEST

START_TEST(test_unit_load_no_chain)
{
    struct issued is;

    ucfg.chain[0] = '\0';
    load_unit();
    ck_assert_int_eq(sk_X509_num(unit.chain), 0);
    issue(&is, true, true);
    verify_ts(&is);
    issued_free(&is);
}
END_TEST

/* issue 8, RFC 3161 §2.3: a certificate that may issue certificates or CRLs is no TSU
 * certificate (the demo root: CA:TRUE, keyCertSign, cRLSign); a TSU certificate passes. */
START_TEST(test_cert_check_not_ca)
{
    X509 *good = read_pem_cert(ec_pem);
    X509 *root = read_pem_cert(ca_pem);

    ck_assert_ptr_null(tsa_cert_check_not_ca(good));
    ck_assert_ptr_nonnull(tsa_cert_check_not_ca(root));
    ck_assert_ptr_nonnull(strstr(tsa_cert_check_not_ca(root), "CA:TRUE"));
    X509_free(good);
    X509_free(root);
}
END_TEST

START_TEST(test_cert_check_eku)
{
    /* TSP-24: exactly one EKU extension, critical, holding only id-kp-timeStamping */
    X509 *good = read_pem_cert(ec_pem);
    X509 *noncrit = read_pem_cert(noncrit_pem);
    X509 *extra = read_pem_cert(extra_pem);
    X509 *none = read_pem_cert(noeku_pem);
    X509 *root = read_pem_cert(ca_pem);

    ck_assert_ptr_null(tsa_cert_check_eku(good));
    ck_assert_ptr_nonnull(tsa_cert_check_eku(noncrit));
    ck_assert_ptr_nonnull(strstr(tsa_cert_check_eku(noncrit), "critical"));
    ck_assert_ptr_nonnull(tsa_cert_check_eku(extra));
    ck_assert_ptr_nonnull(tsa_cert_check_eku(none));
    ck_assert_ptr_nonnull(tsa_cert_check_eku(root));
    /* a second EKU extension added to a good certificate */
    {
        X509_EXTENSION *e = X509_get_ext(good, X509_get_ext_by_NID(good, NID_ext_key_usage, -1));
        X509_EXTENSION *dup = X509_EXTENSION_dup(e);

        ck_assert_ptr_nonnull(dup);
        ck_assert_int_eq(X509_add_ext(good, dup, -1), 1);
        X509_EXTENSION_free(dup);
        ck_assert_ptr_nonnull(tsa_cert_check_eku(good));
    }
    X509_free(good);
    X509_free(noncrit);
    X509_free(extra);
    X509_free(none);
    X509_free(root);
}
END_TEST

/* ---- genTime and serials ---- */

START_TEST(test_gen_time_monotonic)
{
    struct timespec now = {1767323045, 500000000}, out;

    load_unit();
    tsa_unit_gen_time(&unit, &now, &out);
    ck_assert_int_eq(out.tv_sec, now.tv_sec);
    ck_assert_int_eq(out.tv_nsec, now.tv_nsec);
    /* the clock steps back a second: genTime holds */
    now.tv_sec -= 1;
    tsa_unit_gen_time(&unit, &now, &out);
    ck_assert_int_eq(out.tv_sec, 1767323045);
    ck_assert_int_eq(out.tv_nsec, 500000000);
    /* same second, earlier nanoseconds */
    now.tv_sec = 1767323045;
    now.tv_nsec = 499999999;
    tsa_unit_gen_time(&unit, &now, &out);
    ck_assert_int_eq(out.tv_nsec, 500000000);
    /* equal is fine, later moves on */
    now.tv_nsec = 500000001;
    tsa_unit_gen_time(&unit, &now, &out);
    ck_assert_int_eq(out.tv_nsec, 500000001);
    now.tv_sec += 10;
    now.tv_nsec = 0;
    tsa_unit_gen_time(&unit, &now, &out);
    ck_assert_int_eq(out.tv_sec, 1767323055);
    ck_assert_int_eq(out.tv_nsec, 0);
    /* a run of random readings never yields a decreasing sequence */
    {
        struct timespec prev = out;

        for (int i = 0; i < 1000; i++) {
            uint32_t r;

            ck_assert_int_eq(RAND_bytes((unsigned char *)&r, sizeof(r)), 1);
            now.tv_sec = 1767323050 + (time_t)(r % 20);
            now.tv_nsec = (long)(r % 1000000000);
            tsa_unit_gen_time(&unit, &now, &out);
            ck_assert(out.tv_sec > prev.tv_sec ||
                      (out.tv_sec == prev.tv_sec && out.tv_nsec >= prev.tv_nsec));
            prev = out;
        }
    }
}
END_TEST

static int
cmp_serial(const void *a, const void *b)
{
    return memcmp(a, b, TSA_SERIAL_LEN);
}

START_TEST(test_serials)
{
    /* TSP-18: positive, 16 octets (127 random bits), distinct */
    static uint8_t s[1000][TSA_SERIAL_LEN];
    int top_bit_seen = 0;

    for (int i = 0; i < 1000; i++) {
        bool nonzero = false;

        ck_assert_int_eq(tsa_serial_new(s[i]), ST_OK);
        ck_assert_uint_eq(s[i][0] & 0x80, 0);
        for (int k = 0; k < TSA_SERIAL_LEN; k++)
            nonzero |= s[i][k] != 0;
        ck_assert(nonzero);
        top_bit_seen |= s[i][0] & 0x40;
    }
    ck_assert(top_bit_seen); /* bit 126 is random too */
    qsort(s, 1000, TSA_SERIAL_LEN, cmp_serial);
    for (int i = 1; i < 1000; i++)
        ck_assert_int_ne(memcmp(s[i - 1], s[i], TSA_SERIAL_LEN), 0);
}
END_TEST

START_TEST(test_serials_in_tokens)
{
    /* distinct serials across tokens of one unit, each a positive INTEGER of <= 16 octets */
    struct issued is;
    uint8_t seen[20][TSA_SERIAL_LEN];

    load_unit();
    for (int i = 0; i < 20; i++) {
        TS_RESP *r;
        const ASN1_INTEGER *ser;

        issue(&is, true, false);
        r = parse_resp(&is);
        ser = TS_TST_INFO_get_serial(TS_RESP_get_tst_info(r));
        ck_assert_int_eq(ASN1_STRING_type(ser), V_ASN1_INTEGER);
        ck_assert_int_le(ASN1_STRING_length(ser), TSA_SERIAL_LEN);
        memcpy(seen[i], is.tok.serial, TSA_SERIAL_LEN);
        for (int k = 0; k < i; k++)
            ck_assert_int_ne(memcmp(seen[k], seen[i], TSA_SERIAL_LEN), 0);
        TS_RESP_free(r);
        issued_free(&is);
    }
}
END_TEST

/* ---- rejections (TSP-03) ---- */

START_TEST(test_rejection_bad_alg)
{
    static const uint8_t want[] = {0x30, 0x10, 0x30, 0x0e, 0x02, 0x01, 0x02, 0x30, 0x05,
                                   0x0c, 0x03, 'b',  'a',  'd',  0x03, 0x02, 0x07, 0x80};
    uint8_t buf[512];
    size_t n = tsa_rejection(TSA_FAIL_BAD_ALG, "bad", buf, sizeof(buf));

    ck_assert_uint_eq(n, sizeof(want));
    ck_assert_mem_eq(buf, want, sizeof(want));
}
END_TEST

START_TEST(test_rejection_shapes)
{
    uint8_t buf[512];
    size_t n;
    const unsigned char *p;
    TS_RESP *r;
    const TS_STATUS_INFO *si;
    char text[300];
    static const enum tsa_fail all[] = {TSA_FAIL_BAD_ALG,
                                        TSA_FAIL_BAD_REQUEST,
                                        TSA_FAIL_BAD_DATA_FORMAT,
                                        TSA_FAIL_TIME_NOT_AVAILABLE,
                                        TSA_FAIL_UNACCEPTED_POLICY,
                                        TSA_FAIL_UNACCEPTED_EXTENSION,
                                        TSA_FAIL_ADD_INFO_NOT_AVAILABLE,
                                        TSA_FAIL_SYSTEM_FAILURE};

    /* without text: no statusString */
    n = tsa_rejection(TSA_FAIL_BAD_ALG, NULL, buf, sizeof(buf));
    ck_assert_uint_eq(n, 11);
    ck_assert_mem_eq(
        buf, ((const uint8_t[]){0x30, 0x09, 0x30, 0x07, 0x02, 0x01, 0x02, 0x03, 0x02, 0x07, 0x80}),
        11);
    /* systemFailure, bit 25 */
    n = tsa_rejection(TSA_FAIL_SYSTEM_FAILURE, "", buf, sizeof(buf));
    ck_assert_uint_eq(n, 14);
    ck_assert_mem_eq(buf + 7, ((const uint8_t[]){0x03, 0x05, 0x06, 0x00, 0x00, 0x00, 0x40}), 7);
    /* every failure parses with OpenSSL as rejection(2), the one bit, no token */
    memset(text, 'x', sizeof(text));
    text[sizeof(text) - 1] = '\0';
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        n = tsa_rejection(all[i], i % 2 ? text : "refused", buf, sizeof(buf));
        ck_assert_uint_gt(n, 0);
        p = buf;
        r = d2i_TS_RESP(NULL, &p, (long)n);
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_eq(p, buf + n);
        si = TS_RESP_get_status_info(r);
        ck_assert_int_eq(ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(si)), 2);
        ck_assert_ptr_null(TS_RESP_get_token(r));
        for (int b = 0; b < 32; b++)
            ck_assert_int_eq(ASN1_BIT_STRING_get_bit(TS_STATUS_INFO_get0_failure_info(si), b),
                             b == (int)all[i]);
        ck_assert_int_eq(sk_ASN1_UTF8STRING_num(TS_STATUS_INFO_get0_text(si)), 1);
        if (i % 2)
            ck_assert_int_eq(
                ASN1_STRING_length(sk_ASN1_UTF8STRING_value(TS_STATUS_INFO_get0_text(si), 0)),
                200); /* long texts are cut */
        TS_RESP_free(r);
    }
    /* a buffer too small gives 0 */
    ck_assert_uint_eq(tsa_rejection(TSA_FAIL_BAD_ALG, "bad", buf, 17), 0);
}
END_TEST

/* ---- audit record ---- */

static void
hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

START_TEST(test_audit_format)
{
    struct issued is;
    struct clock_reading clk;
    uint8_t tsha[32];
    const uint8_t *tok, *c;
    size_t tl, cl;
    char rec[TSA_AUDIT_MAX], want[512], h[300];
    size_t n;
    uint8_t tag;
    const uint8_t *pp;

    load_unit();
    issue(&is, true, true);
    ck_assert_int_eq(tsa_audit_token_span(is.resp, is.resp_len, &tok, &tl), ST_OK);
    ck_assert_ptr_eq(tok + tl, is.resp + is.resp_len);
    SHA256(tok, tl, tsha);
    memset(&clk, 0, sizeof(clk));
    clk.verdict = CLOCK_OK;
    clk.error_bound = 0.0005;
    clk.sample.stratum = 2;
    clk.sample.ref_id = 0x7f7f0101;
    n = tsa_audit_format(rec, sizeof(rec), &unit, &is.req, &is.tok, &clk, "192.0.2.7", tsha);
    ck_assert_uint_gt(n, 0);
    ck_assert_uint_eq(strlen(rec), n);
    ck_assert_int_eq(rec[0], '{');
    ck_assert_int_eq(rec[n - 1], '}');
    ck_assert_ptr_null(strchr(rec, '\n'));

    hex(is.tok.serial, TSA_SERIAL_LEN, h);
    snprintf(want, sizeof(want), "\"serial\":\"%s\"", h);
    ck_assert_msg(strstr(rec, want) != NULL, "%s lacks %s", rec, want);
    /* the imprint hash: last 32 octets of the MessageImprint */
    hex(is.req.imprint + is.req.imprint_len - 32, 32, h);
    snprintf(want, sizeof(want), "\"imprint\":\"%s\"", h);
    ck_assert_msg(strstr(rec, want) != NULL, "%s lacks %s", rec, want);
    pp = is.req.nonce;
    ck_assert(der_read(&pp, is.req.nonce + is.req.nonce_len, &tag, &c, &cl));
    hex(c, cl, h);
    snprintf(want, sizeof(want), "\"nonce\":\"%s\"", h);
    ck_assert_msg(strstr(rec, want) != NULL, "%s lacks %s", rec, want);
    hex(tsha, 32, h);
    snprintf(want, sizeof(want), "\"token_sha256\":\"%s\"", h);
    ck_assert_msg(strstr(rec, want) != NULL, "%s lacks %s", rec, want);
    ck_assert_ptr_nonnull(strstr(rec, "\"policy\":\"" POLICY "\""));
    ck_assert_ptr_nonnull(strstr(rec, "\"tsu\":\"test\""));
    ck_assert_ptr_nonnull(strstr(rec, "\"client\":\"192.0.2.7\""));
    ck_assert_ptr_nonnull(strstr(rec, "\"ref_id\":\"7f7f0101\""));
    ck_assert_ptr_nonnull(strstr(rec, "\"stratum\":2"));
    /* too small a buffer: 0, never a cut record */
    ck_assert_uint_eq(tsa_audit_format(rec, n, &unit, &is.req, &is.tok, &clk, "192.0.2.7", tsha),
                      0);
    ck_assert_uint_eq(
        tsa_audit_format(rec, n + 1, &unit, &is.req, &is.tok, &clk, "192.0.2.7", tsha), n);
    issued_free(&is);
    /* no nonce: null */
    issue(&is, false, false);
    n = tsa_audit_format(rec, sizeof(rec), &unit, &is.req, &is.tok, &clk, NULL, tsha);
    ck_assert_uint_gt(n, 0);
    ck_assert_ptr_nonnull(strstr(rec, "\"nonce\":null"));
    issued_free(&is);
}
END_TEST

START_TEST(test_audit_token_span_rejects)
{
    uint8_t buf[512];
    size_t n = tsa_rejection(TSA_FAIL_BAD_ALG, "x", buf, sizeof(buf));
    const uint8_t *tok;
    size_t tl;

    /* a rejection has no token */
    ck_assert_int_ne(tsa_audit_token_span(buf, n, &tok, &tl), ST_OK);
    ck_assert_int_ne(tsa_audit_token_span(buf, 1, &tok, &tl), ST_OK);
}
END_TEST

static Suite *
tsa_token_suite(void)
{
    Suite *s = suite_create("tsa_token");
    TCase *tok = tcase_create("token");
    TCase *unit_tc = tcase_create("unit");
    TCase *rej = tcase_create("rejection_audit");

    tcase_add_unchecked_fixture(tok, setup_pki, teardown_pki);
    tcase_add_checked_fixture(tok, setup_unit_cfg, teardown_unit);
    tcase_set_timeout(tok, 60);
    tcase_add_test(tok, test_ecdsa_token_verifies);
    tcase_add_test(tok, test_ecdsa_hash_must_match_curve);
    tcase_add_test(tok, test_rsa_pkcs1_token_verifies);
    tcase_add_test(tok, test_rsa_pss_token_verifies);
    tcase_add_test(tok, test_tampered_fails);
    tcase_add_test(tok, test_cert_req);
    tcase_add_test(tok, test_signed_data_shape);
    tcase_add_test(tok, test_tstinfo_fields);
    tcase_add_test(tok, test_tstinfo_der_order);
    tcase_add_test(tok, test_accuracy_1s);
    tcase_add_test(tok, test_accuracy_100ms);
    tcase_add_test(tok, test_accuracy_1500us);
    tcase_add_test(tok, test_accuracy_500ms_1us);
    tcase_add_test(unit_tc, test_cert_check_not_ca);
    tcase_add_test(tok, test_qualified_extension);
    tcase_add_test(tok, test_ess_cert_id_v2);
    tcase_add_test(tok, test_ess_cert_id_v1);
    tcase_add_test(tok, test_no_tsa_name);
    tcase_add_test(tok, test_big_nonce);
    tcase_add_test(tok, test_serials_in_tokens);
    tcase_add_test(tok, test_audit_format);
    suite_add_tcase(s, tok);

    tcase_add_unchecked_fixture(unit_tc, setup_pki, teardown_pki);
    tcase_add_checked_fixture(unit_tc, setup_unit_cfg, teardown_unit);
    tcase_set_timeout(unit_tc, 60);
    tcase_add_test(unit_tc, test_unit_load_refuses);
    tcase_add_test(unit_tc, test_unit_load_no_chain);
    tcase_add_test(unit_tc, test_cert_check_eku);
    tcase_add_test(unit_tc, test_gen_time_monotonic);
    tcase_add_test(unit_tc, test_serials);
    suite_add_tcase(s, unit_tc);

    tcase_add_test(rej, test_rejection_bad_alg);
    tcase_add_test(rej, test_rejection_shapes);
    tcase_add_test(rej, test_audit_token_span_rejects);
    suite_add_tcase(s, rej);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(tsa_token_suite());
    int failed;

    log_init("check_tsa_token", LOG_LVL_ERR);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
