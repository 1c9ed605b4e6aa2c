/*
 * check_signer_p11: tests of the PKCS#11 signer backend, common/signer_p11.c (DESIGN D1;
 * STANDARDS ALG-02 and ALG-04: ECDSA P-256/P-384, RSA PKCS#1 v1.5 and PSS; TSP-13: an HSM
 * failure is an error, never a partial signature).
 *
 * Like chrony's test/unit, this file includes the module's source, so the pure helpers (DER
 * re-encoding of r||s, DigestInfo, CK_RV names, PIN file) are tested directly, without a token.
 * The token cases run when P11_TEST_DIR names a directory prepared by
 * tests/integration/test_signer_p11.sh (a SoftHSM2 token with keys generated inside it and
 * certificates that carry their public keys); without it only the pure cases are registered,
 * since unit tests use no HSM.
 */
#include "common/signer_p11.c"

#include <check.h>
#include <limits.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/* ---- helpers ---- */

/* One temp dir per test case, made and removed in the parent process (unchecked fixture), so
 * it goes away even when a test fails in its forked child. */
static char tmp_dir[PATH_MAX];

static void
tmp_setup(void)
{
    const char *base = getenv("TMPDIR");

    snprintf(tmp_dir, sizeof(tmp_dir), "%s/check_signer_p11.XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
}

static void
tmp_teardown(void)
{
    static const char *const names[] = {"pin", "log", "dir", "removed", "badpin", NULL};
    char path[PATH_MAX + 8];

    for (int i = 0; names[i] != NULL; i++) {
        snprintf(path, sizeof(path), "%s/%s", tmp_dir, names[i]);
        if (unlink(path) != 0)
            (void)rmdir(path);
    }
    (void)rmdir(tmp_dir);
}

/* Write `len` bytes to tmp_dir/pin with `mode`; returns the path (static buffer). */
static const char *
write_pin(const char *content, size_t len, mode_t mode)
{
    static char path[PATH_MAX + 8];
    int fd;

    snprintf(path, sizeof(path), "%s/pin", tmp_dir);
    (void)unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
    return path;
}

/* stderr capture: everything log.c writes between the two calls lands in tmp_dir/log. */
static int saved_stderr = -1;

static void
capture_begin(void)
{
    char path[PATH_MAX + 8];
    int fd;

    snprintf(path, sizeof(path), "%s/log", tmp_dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(saved_stderr, 0);
    ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
}

/* Restore stderr and return what was logged (caller frees). */
static char *
capture_end(void)
{
    char path[PATH_MAX + 8], *buf;
    FILE *f;
    size_t n;

    ck_assert_int_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    snprintf(path, sizeof(path), "%s/log", tmp_dir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    buf = calloc(1, 65536);
    ck_assert_ptr_nonnull(buf);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- r||s to DER Ecdsa-Sig-Value (RFC 3279 §2.2.3) ---- */

START_TEST(test_ecdsa_der_golden)
{
    /* r = 0x0080 (high bit: a 0x00 pad byte stays), s = 0x0001 (leading zero dropped) */
    static const uint8_t raw[] = {0x00, 0x80, 0x00, 0x01};
    static const uint8_t want[] = {0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x01};
    uint8_t out[16];
    size_t len = sizeof(out);

    ck_assert_int_eq(p11_ecdsa_der(raw, sizeof(raw), out, &len), ST_OK);
    ck_assert_uint_eq(len, sizeof(want));
    ck_assert_mem_eq(out, want, sizeof(want));
}
END_TEST

START_TEST(test_ecdsa_der_high_bit_p256)
{
    uint8_t raw[64], out[80];
    size_t len = sizeof(out);

    memset(raw, 0xff, 32);      /* r: high bit set, needs the 0x00 pad */
    memset(raw + 32, 0x7f, 32); /* s: high bit clear, no pad */
    ck_assert_int_eq(p11_ecdsa_der(raw, sizeof(raw), out, &len), ST_OK);
    ck_assert_uint_eq(len, 2 + 35 + 34);
    ck_assert_uint_eq(out[0], 0x30);
    ck_assert_uint_eq(out[1], 69);
    ck_assert_uint_eq(out[2], 0x02);
    ck_assert_uint_eq(out[3], 33);
    ck_assert_uint_eq(out[4], 0x00);
    ck_assert_uint_eq(out[5], 0xff);
    ck_assert_uint_eq(out[37], 0x02);
    ck_assert_uint_eq(out[38], 32);
    ck_assert_uint_eq(out[39], 0x7f);
    ck_assert_uint_eq(out[70], 0x7f);
}
END_TEST

START_TEST(test_ecdsa_der_leading_zeros_round_trip)
{
    uint8_t raw[96], out[110], again[110], *q = again;
    const unsigned char *p;
    const BIGNUM *r, *s;
    uint8_t back[48];
    ECDSA_SIG *sig;
    size_t len = sizeof(out);

    /* P-384 halves: r = 00 00 00 01 02 ..., s = 00 ff fe ... (zero dropped, pad added) */
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (uint8_t)(i * 7 + 1);
    raw[0] = raw[1] = raw[2] = 0x00;
    raw[48] = 0x00;
    raw[49] = 0xff;
    ck_assert_int_eq(p11_ecdsa_der(raw, sizeof(raw), out, &len), ST_OK);
    ck_assert_uint_eq(out[2], 0x02);
    ck_assert_uint_eq(out[3], 45); /* 48 - 3 zero bytes */
    ck_assert_uint_eq(out[4], raw[3]);
    ck_assert_uint_eq(out[4 + 45], 0x02);
    ck_assert_uint_eq(out[4 + 46], 48); /* 47 significant bytes + the 0x00 pad */
    ck_assert_uint_eq(out[4 + 47], 0x00);
    ck_assert_uint_eq(out[4 + 48], 0xff);

    p = out;
    sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    ck_assert_ptr_nonnull(sig);
    ck_assert_ptr_eq(p, out + len);
    ECDSA_SIG_get0(sig, &r, &s);
    ck_assert_int_eq(BN_bn2binpad(r, back, 48), 48);
    ck_assert_mem_eq(back, raw, 48);
    ck_assert_int_eq(BN_bn2binpad(s, back, 48), 48);
    ck_assert_mem_eq(back, raw + 48, 48);
    /* minimal: OpenSSL's own encoding of the decoded value is byte-identical */
    ck_assert_int_eq(i2d_ECDSA_SIG(sig, &q), (int)len);
    ck_assert_mem_eq(again, out, len);
    ECDSA_SIG_free(sig);
}
END_TEST

START_TEST(test_ecdsa_der_zero_and_p521)
{
    uint8_t raw[132], out[160];
    size_t len = sizeof(out);
    static const uint8_t zero[] = {0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00};

    memset(raw, 0, sizeof(raw));
    ck_assert_int_eq(p11_ecdsa_der(raw, 64, out, &len), ST_OK);
    ck_assert_uint_eq(len, sizeof(zero));
    ck_assert_mem_eq(out, zero, sizeof(zero));

    /* P-521: 2 x (2 + 1 + 66) = 138 content bytes needs the long length form 0x81 */
    memset(raw, 0xff, sizeof(raw));
    len = sizeof(out);
    ck_assert_int_eq(p11_ecdsa_der(raw, sizeof(raw), out, &len), ST_OK);
    ck_assert_uint_eq(len, 141);
    ck_assert_uint_eq(out[0], 0x30);
    ck_assert_uint_eq(out[1], 0x81);
    ck_assert_uint_eq(out[2], 138);
    ck_assert_uint_eq(out[3], 0x02);
    ck_assert_uint_eq(out[4], 67);
    ck_assert_uint_eq(out[5], 0x00);
}
END_TEST

START_TEST(test_ecdsa_der_rejects)
{
    uint8_t raw[140], out[160];
    size_t len;

    memset(raw, 0x11, sizeof(raw));
    len = sizeof(out);
    ck_assert_int_eq(p11_ecdsa_der(raw, 0, out, &len), ST_INVALID);
    ck_assert_int_eq(p11_ecdsa_der(raw, 63, out, &len), ST_INVALID);
    ck_assert_int_eq(p11_ecdsa_der(raw, 134, out, &len), ST_INVALID);
    ck_assert_uint_eq(len, sizeof(out));
    len = 8; /* far too small for a P-256 signature */
    ck_assert_int_eq(p11_ecdsa_der(raw, 64, out, &len), ST_INVALID);
    ck_assert_uint_eq(len, 8);
    len = 70; /* exactly right: 2 + 2 x (2 + 32) */
    ck_assert_int_eq(p11_ecdsa_der(raw, 64, out, &len), ST_OK);
    ck_assert_uint_eq(len, 70);
}
END_TEST

/* ---- DigestInfo for CKM_RSA_PKCS (RFC 8017 §9.2) ---- */

START_TEST(test_digest_info_sha256_golden)
{
    static const uint8_t want_prefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                          0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                          0x01, 0x05, 0x00, 0x04, 0x20};
    uint8_t digest[32], out[P11_DIGEST_INFO_MAX];
    size_t len = sizeof(out);

    for (size_t i = 0; i < sizeof(digest); i++)
        digest[i] = (uint8_t)(0xa0 + i);
    ck_assert_int_eq(p11_digest_info(SIGNER_SHA256, digest, 32, out, &len), ST_OK);
    ck_assert_uint_eq(len, 51);
    ck_assert_mem_eq(out, want_prefix, sizeof(want_prefix));
    ck_assert_mem_eq(out + 19, digest, 32);
}
END_TEST

/* Each DigestInfo parses as X509_SIG with the right hash OID, NULL parameters and digest. */
START_TEST(test_digest_info_parses)
{
    static const struct {
        enum signer_hash hash;
        int nid;
        size_t len;
    } cases[] = {
        {SIGNER_SHA256, NID_sha256, 32},
        {SIGNER_SHA384, NID_sha384, 48},
        {SIGNER_SHA512, NID_sha512, 64},
    };
    uint8_t digest[64], out[P11_DIGEST_INFO_MAX];

    memset(digest, 0x5a, sizeof(digest));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const X509_ALGOR *alg;
        const ASN1_OCTET_STRING *dg;
        const ASN1_OBJECT *oid;
        const void *pval;
        const unsigned char *p = out;
        int ptype;
        size_t len = sizeof(out);
        X509_SIG *xs;

        ck_assert_int_eq(p11_digest_info(cases[i].hash, digest, cases[i].len, out, &len), ST_OK);
        ck_assert_uint_eq(len, 19 + cases[i].len);
        xs = d2i_X509_SIG(NULL, &p, (long)len);
        ck_assert_ptr_nonnull(xs);
        ck_assert_ptr_eq(p, out + len);
        X509_SIG_get0(xs, &alg, &dg);
        X509_ALGOR_get0(&oid, &ptype, &pval, alg);
        ck_assert_int_eq(OBJ_obj2nid(oid), cases[i].nid);
        ck_assert_int_eq(ptype, V_ASN1_NULL);
        ck_assert_int_eq(ASN1_STRING_length(dg), (int)cases[i].len);
        ck_assert_mem_eq(ASN1_STRING_get0_data(dg), digest, cases[i].len);
        X509_SIG_free(xs);
    }
}
END_TEST

START_TEST(test_digest_info_rejects)
{
    uint8_t digest[64] = {0}, out[P11_DIGEST_INFO_MAX];
    size_t len = sizeof(out);

    ck_assert_int_eq(p11_digest_info(SIGNER_SHA256, digest, 48, out, &len), ST_INVALID);
    ck_assert_int_eq(p11_digest_info(SIGNER_SHA384, digest, 32, out, &len), ST_INVALID);
    ck_assert_int_eq(p11_digest_info((enum signer_hash)0, digest, 32, out, &len), ST_INVALID);
    len = 50; /* one byte short for SHA-256 */
    ck_assert_int_eq(p11_digest_info(SIGNER_SHA256, digest, 32, out, &len), ST_INVALID);
    ck_assert_uint_eq(len, 50);
}
END_TEST

/* ---- CK_RV names and the reopen rule ---- */

START_TEST(test_rv_names)
{
    char buf[64];

    ck_assert_str_eq(p11_rv_str(CKR_PIN_INCORRECT, buf, sizeof(buf)),
                     "CKR_PIN_INCORRECT (0x000000a0)");
    ck_assert_str_eq(p11_rv_str(CKR_SESSION_HANDLE_INVALID, buf, sizeof(buf)),
                     "CKR_SESSION_HANDLE_INVALID (0x000000b3)");
    ck_assert_str_eq(p11_rv_str(CKR_OK, buf, sizeof(buf)), "CKR_OK (0x00000000)");
    ck_assert_str_eq(p11_rv_str(CKR_VENDOR_DEFINED + 5, buf, sizeof(buf)),
                     "CKR_VENDOR_DEFINED (0x80000005)");
    ck_assert_str_eq(p11_rv_str(0x3ff, buf, sizeof(buf)), "CKR_? (0x000003ff)");
    ck_assert_str_eq(p11_rv_name(CKR_CRYPTOKI_ALREADY_INITIALIZED),
                     "CKR_CRYPTOKI_ALREADY_INITIALIZED");
    ck_assert_str_eq(p11_rv_name(CKR_KEY_TYPE_INCONSISTENT), "CKR_KEY_TYPE_INCONSISTENT");
}
END_TEST

START_TEST(test_rv_reopens)
{
    ck_assert(p11_rv_reopens(CKR_SESSION_HANDLE_INVALID));
    ck_assert(p11_rv_reopens(CKR_DEVICE_REMOVED));
    ck_assert(p11_rv_reopens(CKR_TOKEN_NOT_PRESENT));
    ck_assert(p11_rv_reopens(CKR_USER_NOT_LOGGED_IN));
    ck_assert(!p11_rv_reopens(CKR_OK));
    ck_assert(!p11_rv_reopens(CKR_PIN_INCORRECT));
    ck_assert(!p11_rv_reopens(CKR_KEY_HANDLE_INVALID));
    ck_assert(!p11_rv_reopens(CKR_GENERAL_ERROR));
}
END_TEST

/* ---- PIN file ---- */

static void
assert_pin(const char *content, size_t clen, const char *want)
{
    char pin[P11_PIN_FILE_MAX + 1];
    size_t len = 99;

    ck_assert_int_eq(p11_read_pin(write_pin(content, clen, 0600), pin, sizeof(pin), &len), ST_OK);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_mem_eq(pin, want, len);
    ck_assert_int_eq(pin[len], '\0');
}

START_TEST(test_pin_strip)
{
    assert_pin("1234\n", 5, "1234");
    assert_pin("1234\r\n", 6, "1234");
    assert_pin("1234", 4, "1234");
    assert_pin("12 34\n\n\r\n", 9, "12 34");
    assert_pin("ab\ncd\n", 6, "ab\ncd"); /* only the line end goes */
    assert_pin(" x \n", 4, " x ");
}
END_TEST

START_TEST(test_pin_bounds)
{
    char content[P11_PIN_FILE_MAX + 2], pin[P11_PIN_FILE_MAX + 1];
    size_t len = 0;

    memset(content, 'p', sizeof(content));
    /* the largest file accepted */
    ck_assert_int_eq(
        p11_read_pin(write_pin(content, P11_PIN_FILE_MAX, 0600), pin, sizeof(pin), &len), ST_OK);
    ck_assert_uint_eq(len, P11_PIN_FILE_MAX);
    /* one byte more */
    ck_assert_int_eq(
        p11_read_pin(write_pin(content, P11_PIN_FILE_MAX + 1, 0600), pin, sizeof(pin), &len),
        ST_CONFIG);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(p11_read_pin(write_pin("", 0, 0600), pin, sizeof(pin), &len), ST_CONFIG);
    ck_assert_int_eq(p11_read_pin(write_pin("\r\n\n", 3, 0600), pin, sizeof(pin), &len), ST_CONFIG);
}
END_TEST

START_TEST(test_pin_unreadable)
{
    char pin[64], path[PATH_MAX + 8];
    size_t len = 0;

    snprintf(path, sizeof(path), "%s/absent", tmp_dir);
    ck_assert_int_eq(p11_read_pin(path, pin, sizeof(pin), &len), ST_IO);
    snprintf(path, sizeof(path), "%s/dir", tmp_dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_int_eq(p11_read_pin(path, pin, sizeof(pin), &len), ST_IO);
}
END_TEST

/* issue 8 item 8: a PIN file group or others may read or write is refused (it was only a
 * warning), with a message that names the file and its mode but not the PIN. */
START_TEST(test_pin_loose_mode_refused_without_pin)
{
    static const mode_t loose[] = {0640, 0604, 0620, 0602, 0644};
    char pin[64], *log;
    size_t len = 0;

    for (size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
        const char *path = write_pin("s3cr3t-PIN-value\n", 17, loose[i]);
        char want[32];

        capture_begin();
        ck_assert_int_eq(p11_read_pin(path, pin, sizeof(pin), &len), ST_CONFIG);
        log = capture_end();
        snprintf(want, sizeof(want), "(mode %04o)", (unsigned)loose[i]);
        ck_assert_ptr_nonnull(strstr(log, "readable or writable by group or others"));
        ck_assert_ptr_nonnull(strstr(log, want));
        ck_assert_ptr_null(strstr(log, "s3cr3t"));
        ck_assert_uint_eq(len, 0);
        free(log);
    }
    /* owner-only modes are fine, an executable bit for the group too (no read, no write) */
    ck_assert_int_eq(p11_read_pin(write_pin("1234\n", 5, 0400), pin, sizeof(pin), &len), ST_OK);
    ck_assert_int_eq(p11_read_pin(write_pin("1234\n", 5, 0610), pin, sizeof(pin), &len), ST_OK);
}
END_TEST

/* ---- open/close without a token ---- */

START_TEST(test_open_bad_module)
{
    const char *pin = write_pin("1234\n", 5, 0600);
    char *log;

    capture_begin();
    ck_assert_ptr_null(signer_p11_open("/nonexistent/libnothing.so", "t", pin, 1));
    /* a real shared object without C_GetFunctionList */
    ck_assert_ptr_null(signer_p11_open("libm.so.6", "t", pin, 1));
    log = capture_end();
    ck_assert_ptr_nonnull(strstr(log, "cannot load module /nonexistent/libnothing.so"));
    ck_assert_ptr_nonnull(strstr(log, "module libm.so.6 has no C_GetFunctionList"));
    free(log);
}
END_TEST

/* Open with bad arguments and check that the refusal is the one named: its reason is logged
 * and the module was never loaded (libm.so.6 would otherwise be refused too, later, for having
 * no C_GetFunctionList: a NULL alone cannot tell which check refused). Issue 8 item 9. */
static void
open_refused(const char *module, const char *token, const char *pin, unsigned sessions,
             const char *reason)
{
    struct signer_p11 *p;
    char *log;

    capture_begin();
    p = signer_p11_open(module, token, pin, sessions);
    log = capture_end();
    ck_assert_ptr_null(p);
    ck_assert_msg(strstr(log, reason) != NULL, "refusal '%s' not logged; log: %s", reason, log);
    ck_assert_msg(strstr(log, "C_GetFunctionList") == NULL,
                  "the module was loaded before the refusal '%s'; log: %s", reason, log);
    free(log);
}

START_TEST(test_open_bad_arguments)
{
    const char *pin = write_pin("1234\n", 5, 0600);

    open_refused("libm.so.6", "t", pin, 0, "pkcs11: token 't': zero sessions requested");
    open_refused("libm.so.6", "", pin, 1, "pkcs11: token label '' must have 1 to 32 bytes");
    open_refused("libm.so.6", "0123456789abcdef0123456789abcdef0", pin, 1,
                 "pkcs11: token label '0123456789abcdef0123456789abcdef0' must have 1 to 32 "
                 "bytes");
    open_refused(NULL, "t", pin, 1, "pkcs11: module, token label and PIN file are all required");
    open_refused("libm.so.6", NULL, pin, 1,
                 "pkcs11: module, token label and PIN file are all required");
    open_refused("libm.so.6", "t", NULL, 1,
                 "pkcs11: module, token label and PIN file are all required");
    /* the control: the same module with good arguments is refused later, for what it is */
    capture_begin();
    ck_assert_ptr_null(signer_p11_open("libm.so.6", "t", pin, 1));
    {
        char *log = capture_end();

        ck_assert_msg(strstr(log, "has no C_GetFunctionList") != NULL, "log: %s", log);
        free(log);
    }
}
END_TEST

START_TEST(test_null_safe)
{
    uint8_t digest[32] = {0}, sig[64];
    size_t sig_len = sizeof(sig);
    CK_OBJECT_HANDLE obj = 0;

    signer_p11_close(NULL);
    ck_assert(!signer_p11_healthy(NULL));
    ck_assert_int_eq(
        signer_p11_sign(NULL, 0, 1, SIGNER_ECDSA, SIGNER_SHA256, digest, 32, sig, &sig_len),
        ST_INVALID);
    ck_assert_int_eq(signer_p11_find_key(NULL, "x", NULL, &obj), ST_INVALID);
}
END_TEST

/* ---- token cases (P11_TEST_DIR) ---- */

static const char *tok_dir, *tok_module, *tok_label;

static const char *
tok_path(const char *name)
{
    static char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", tok_dir, name);
    return path;
}

/* Public key of tok_dir/<name>.crt (caller frees). */
static EVP_PKEY *
tok_pub(const char *name)
{
    char file[64];
    EVP_PKEY *pub;
    X509 *cert;
    FILE *f;

    snprintf(file, sizeof(file), "%s.crt", name);
    f = fopen(tok_path(file), "r");
    ck_assert_msg(f != NULL, "cannot open %s", tok_path(file));
    cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    ck_assert_ptr_nonnull(cert);
    pub = X509_get_pubkey(cert);
    ck_assert_ptr_nonnull(pub);
    X509_free(cert);
    return pub;
}

static struct signer_p11 *
tok_open(unsigned sessions)
{
    struct signer_p11 *p = signer_p11_open(tok_module, tok_label, tok_path("pin"), sessions);

    ck_assert_ptr_nonnull(p);
    return p;
}

static CK_OBJECT_HANDLE
tok_key(struct signer_p11 *p, const char *label, const char *cert)
{
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    EVP_PKEY *pub = tok_pub(cert);

    ck_assert_int_eq(signer_p11_find_key(p, label, pub, &obj), ST_OK);
    ck_assert_uint_ne(obj, CK_INVALID_HANDLE);
    EVP_PKEY_free(pub);
    return obj;
}

static int
tok_find(struct signer_p11 *p, const char *label, const char *cert)
{
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    EVP_PKEY *pub = tok_pub(cert);
    int st = signer_p11_find_key(p, label, pub, &obj);

    EVP_PKEY_free(pub);
    return st;
}

static const EVP_MD *
hash_md(enum signer_hash h)
{
    return h == SIGNER_SHA256 ? EVP_sha256() : h == SIGNER_SHA384 ? EVP_sha384() : EVP_sha512();
}

/* 1 when `sig` verifies over `digest` with OpenSSL under the scheme's exact parameters. */
static int
verify_sig(EVP_PKEY *pub, enum signer_scheme scheme, enum signer_hash hash, const uint8_t *digest,
           size_t digest_len, const uint8_t *sig, size_t sig_len)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pub, NULL);
    const EVP_MD *md = hash_md(hash);
    int rc;

    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_PKEY_verify_init(ctx), 1);
    ck_assert_int_gt(EVP_PKEY_CTX_set_signature_md(ctx, md), 0);
    if (scheme == SIGNER_RSA_PKCS1)
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING), 0);
    if (scheme == SIGNER_RSA_PSS) {
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING), 0);
        /* salt length exactly the digest length, MGF1 with the same hash */
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST), 0);
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md), 0);
    }
    rc = EVP_PKEY_verify(ctx, sig, sig_len, digest, digest_len);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return rc == 1;
}

/* Sign a digest of `msg` on `session`, verify it, and check a changed digest fails. */
static void
sign_and_verify(struct signer_p11 *p, unsigned session, CK_OBJECT_HANDLE key, EVP_PKEY *pub,
                enum signer_scheme scheme, enum signer_hash hash, const char *msg)
{
    uint8_t digest[EVP_MAX_MD_SIZE], sig[SIGNER_MAX_SIG];
    unsigned dlen = 0;
    size_t sig_len = sizeof(sig);

    ck_assert_int_eq(EVP_Digest(msg, strlen(msg), digest, &dlen, hash_md(hash), NULL), 1);
    ck_assert_int_eq(signer_p11_sign(p, session, key, scheme, hash, digest, dlen, sig, &sig_len),
                     ST_OK);
    if (scheme != SIGNER_ECDSA)
        ck_assert_uint_eq(sig_len, (size_t)EVP_PKEY_get_size(pub));
    ck_assert_uint_le(sig_len, (size_t)EVP_PKEY_get_size(pub));
    ck_assert_msg(verify_sig(pub, scheme, hash, digest, dlen, sig, sig_len),
                  "signature does not verify (scheme %d hash %d)", scheme, hash);
    digest[0] ^= 0x01;
    ck_assert_msg(!verify_sig(pub, scheme, hash, digest, dlen, sig, sig_len),
                  "signature verifies over another digest");
}

/* ---- through the fault-injecting shim (build/bench/libp11delay.so, P11_SHIM) ---- */

static const char *tok_shim;

/* A path in tmp_dir (static buffer per call site: copy when two are needed). */
static const char *
tmp_path(const char *name)
{
    static char path[PATH_MAX + 16];

    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    return path;
}

static void
touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

    ck_assert_int_ge(fd, 0);
    close(fd);
}

/* Open the token through the shim with its fault files in tmp_dir (each test is a fresh
 * child process, so the shim reads these settings anew). */
static struct signer_p11 *
shim_open(unsigned sessions)
{
    char removed[PATH_MAX + 16];
    struct signer_p11 *p;

    snprintf(removed, sizeof(removed), "%s", tmp_path("removed"));
    ck_assert_int_eq(setenv("P11DELAY_MODULE", tok_module, 1), 0);
    ck_assert_int_eq(setenv("P11DELAY_LATENCY_MS", "0", 1), 0);
    ck_assert_int_eq(setenv("P11DELAY_REMOVED_FILE", removed, 1), 0);
    ck_assert_int_eq(setenv("P11DELAY_BADPIN_FILE", tmp_path("badpin"), 1), 0);
    unsetenv("P11DELAY_REINIT");
    p = signer_p11_open(tok_shim, tok_label, tok_path("pin"), sessions);
    ck_assert_ptr_nonnull(p);
    return p;
}

static int
sign_status(struct signer_p11 *p, CK_OBJECT_HANDLE key)
{
    uint8_t digest[32] = {1}, sig[SIGNER_MAX_SIG];
    size_t sig_len = sizeof(sig);

    return signer_p11_sign(p, 0, key, SIGNER_ECDSA, SIGNER_SHA256, digest, 32, sig, &sig_len);
}

START_TEST(test_token_removed_reinit)
{
    /* issue 8: a removed device makes the signer re-initialise the library; one that began
     * (C_Finalize) and could not finish leaves every key handle untrusted (SoftHSM2 numbers
     * them anew, so a handle may now name the other key): nothing is signed until a
     * re-initialisation finishes and finds each key again, even though the sessions alone
     * could be reopened */
    struct signer_p11 *p = shim_open(1);
    EVP_PKEY *ec = tok_pub("ec256"), *rsa = tok_pub("rsa3072");
    CK_OBJECT_HANDLE ke = tok_key(p, "ec256", "ec256"), kr = tok_key(p, "rsa3072", "rsa3072");
    char *log;

    sign_and_verify(p, 0, ke, ec, SIGNER_ECDSA, SIGNER_SHA256, "before");
    touch(tmp_path("removed"));
    capture_begin();
    ck_assert_int_eq(sign_status(p, ke), ST_HSM);
    log = capture_end();
    ck_assert_msg(strstr(log, "CKR_DEVICE_REMOVED") != NULL, "log: %s", log);
    ck_assert_msg(strstr(log, "re-initialising the module") != NULL, "log: %s", log);
    free(log);
    ck_assert(!signer_p11_healthy(p));
    ck_assert(atomic_load(&p->need_reinit));
    ck_assert_int_eq(unlink(tmp_path("removed")), 0);
    /* within a second of the last attempt: refused at once, not signed with old handles */
    capture_begin();
    ck_assert_int_eq(sign_status(p, ke), ST_HSM);
    log = capture_end();
    ck_assert_msg(strstr(log, "re-initialised") == NULL, "log: %s", log);
    free(log);
    usleep(1100000);
    capture_begin();
    sign_and_verify(p, 0, ke, ec, SIGNER_ECDSA, SIGNER_SHA256, "after");
    log = capture_end();
    ck_assert_msg(strstr(log, "re-initialised after CKR_DEVICE_REMOVED") != NULL, "log: %s", log);
    free(log);
    sign_and_verify(p, 0, kr, rsa, SIGNER_RSA_PKCS1, SIGNER_SHA256, "after, rsa");
    ck_assert(!atomic_load(&p->need_reinit));
    ck_assert(signer_p11_healthy(p));
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
    signer_p11_close(p);
}
END_TEST

START_TEST(test_token_pin_refused_not_retried)
{
    /* issue 8: a PIN the token refuses when logging in again is never offered again (each
     * attempt counts toward locking the user PIN), even once it would be accepted */
    struct signer_p11 *p = shim_open(1);
    CK_OBJECT_HANDLE k = tok_key(p, "ec256", "ec256");
    char *log;

    ck_assert_int_eq(sign_status(p, k), ST_OK);
    ck_assert(!signer_pin_refused());
    touch(tmp_path("badpin"));
    ck_assert_uint_eq(p->fn->C_CloseAllSessions(p->slot), CKR_OK); /* the login goes too */
    capture_begin();
    ck_assert_int_eq(sign_status(p, k), ST_HSM);
    log = capture_end();
    ck_assert_msg(strstr(log, "C_Login: CKR_PIN_INCORRECT") != NULL, "log: %s", log);
    ck_assert_msg(strstr(log, "AUDIT event=hsm_login_refused") != NULL, "log: %s", log);
    free(log);
    ck_assert(signer_pin_refused());
    ck_assert_int_eq(unlink(tmp_path("badpin")), 0);
    capture_begin();
    ck_assert_int_eq(sign_status(p, k), ST_HSM);
    log = capture_end();
    ck_assert_msg(strstr(log, "C_Login") == NULL, "the PIN was offered again: %s", log);
    ck_assert_msg(strstr(log, "not logging in: the token refused the PIN") != NULL, "log: %s", log);
    free(log);
    signer_p11_close(p);
}
END_TEST

START_TEST(test_token_wrong_pin_not_logged)
{
    struct signer_p11 *p;
    char *log;

    capture_begin();
    p = signer_p11_open(tok_module, tok_label, tok_path("badpin"), 1);
    log = capture_end();
    ck_assert_ptr_null(p);
    ck_assert_ptr_nonnull(strstr(log, "C_Login: CKR_PIN_INCORRECT (0x000000a0)"));
    ck_assert_ptr_null(strstr(log, "XYZZY"));
    free(log);
    /* the library was finalised cleanly: a good PIN works in the same process */
    p = tok_open(1);
    ck_assert(signer_p11_healthy(p));
    signer_p11_close(p);
}
END_TEST

START_TEST(test_token_unknown_label)
{
    struct signer_p11 *p;
    char *log, other[40];

    capture_begin();
    p = signer_p11_open(tok_module, "no-such-token", tok_path("pin"), 1);
    log = capture_end();
    ck_assert_ptr_null(p);
    ck_assert_ptr_nonnull(strstr(log, "no token labelled 'no-such-token'"));
    free(log);
    /* labels compare as 32 blank-padded bytes: case matters, and so does every byte */
    snprintf(other, sizeof(other), "%s2", tok_label);
    ck_assert_ptr_null(signer_p11_open(tok_module, other, tok_path("pin"), 1));
    snprintf(other, sizeof(other), "%s", tok_label);
    other[0] = (char)(other[0] ^ 0x20); /* flip the case of an ASCII letter */
    ck_assert_ptr_null(signer_p11_open(tok_module, other, tok_path("pin"), 1));
}
END_TEST

/* The PIN file of the token ends with CR LF here; login still works. */
START_TEST(test_token_pin_crlf)
{
    struct signer_p11 *p = signer_p11_open(tok_module, tok_label, tok_path("pin-crlf"), 2);

    ck_assert_ptr_nonnull(p);
    signer_p11_close(p);
}
END_TEST

START_TEST(test_token_find_keys)
{
    struct signer_p11 *p = tok_open(1);
    CK_OBJECT_HANDLE a, b, c;

    a = tok_key(p, "ec256", "ec256");
    b = tok_key(p, "ec384", "ec384");
    c = tok_key(p, "rsa3072", "rsa3072");
    ck_assert_uint_ne(a, b);
    ck_assert_uint_ne(b, c);
    ck_assert_uint_ne(a, c);
    ck_assert_int_eq(tok_find(p, "absent", "ec256"), ST_NOTFOUND);
    ck_assert_int_eq(tok_find(p, "dup", "ec256"), ST_INVALID);
    signer_p11_close(p);
}
END_TEST

START_TEST(test_token_find_mismatch)
{
    struct signer_p11 *p = tok_open(1);

    ck_assert_int_eq(tok_find(p, "ec256", "ec384"), ST_INVALID);      /* other curve */
    ck_assert_int_eq(tok_find(p, "ec256", "other256"), ST_INVALID);   /* same curve, other key */
    ck_assert_int_eq(tok_find(p, "rsa3072", "otherrsa"), ST_INVALID); /* other modulus, same size */
    ck_assert_int_eq(tok_find(p, "ec256", "rsa3072"), ST_INVALID);    /* other key type */
    ck_assert_int_eq(tok_find(p, "rsa3072", "ec256"), ST_INVALID);
    signer_p11_close(p);
}
END_TEST

/* Set CKA_SIGN on the private key `label`, in a R/W session of our own. */
static void
set_sign(struct signer_p11 *p, const char *label, bool on)
{
    CK_BBOOL val = on ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE a = {CKA_SIGN, &val, sizeof(val)};
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;

    ck_assert_uint_eq(
        p->fn->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h), CKR_OK);
    ck_assert_int_eq(p11_find_unique(p, h, CKO_PRIVATE_KEY, CKA_LABEL, label, strlen(label), &obj),
                     ST_OK);
    ck_assert_uint_eq(p->fn->C_SetAttributeValue(h, obj, &a, 1), CKR_OK);
    ck_assert_uint_eq(p->fn->C_CloseSession(h), CKR_OK);
}

/* The public key object found by CKA_ID when its label differs; no public key: not found;
 * a key whose CKA_SIGN is false: refused. */
START_TEST(test_token_find_by_id_and_attrs)
{
    struct signer_p11 *p = tok_open(1);

    ck_assert_int_eq(tok_find(p, "byid", "byid"), ST_OK);
    ck_assert_int_eq(tok_find(p, "byid", "ec256"), ST_INVALID);
    ck_assert_int_eq(tok_find(p, "nopub", "nopub"), ST_NOTFOUND);
    set_sign(p, "nosign", true);
    ck_assert_int_eq(tok_find(p, "nosign", "nosign"), ST_OK);
    set_sign(p, "nosign", false);
    ck_assert_int_eq(tok_find(p, "nosign", "nosign"), ST_INVALID);
    signer_p11_close(p);
}
END_TEST

START_TEST(test_token_sign_ecdsa)
{
    struct signer_p11 *p = tok_open(2);
    EVP_PKEY *p256 = tok_pub("ec256"), *p384 = tok_pub("ec384");
    CK_OBJECT_HANDLE k256 = tok_key(p, "ec256", "ec256"), k384 = tok_key(p, "ec384", "ec384");

    sign_and_verify(p, 0, k256, p256, SIGNER_ECDSA, SIGNER_SHA256, "tst-info p256");
    sign_and_verify(p, 1, k384, p384, SIGNER_ECDSA, SIGNER_SHA384, "tst-info p384");
    sign_and_verify(p, 1, k384, p384, SIGNER_ECDSA, SIGNER_SHA512, "p384 with sha512");
    ck_assert(signer_p11_healthy(p));
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    signer_p11_close(p);
}
END_TEST

START_TEST(test_token_sign_rsa)
{
    struct signer_p11 *p = tok_open(1);
    EVP_PKEY *pub = tok_pub("rsa3072");
    CK_OBJECT_HANDLE k = tok_key(p, "rsa3072", "rsa3072");

    sign_and_verify(p, 0, k, pub, SIGNER_RSA_PKCS1, SIGNER_SHA256, "ocsp response data");
    sign_and_verify(p, 0, k, pub, SIGNER_RSA_PKCS1, SIGNER_SHA384, "sha384");
    sign_and_verify(p, 0, k, pub, SIGNER_RSA_PKCS1, SIGNER_SHA512, "sha512");
    sign_and_verify(p, 0, k, pub, SIGNER_RSA_PSS, SIGNER_SHA256, "pss sha256");
    sign_and_verify(p, 0, k, pub, SIGNER_RSA_PSS, SIGNER_SHA384, "pss sha384");
    sign_and_verify(p, 0, k, pub, SIGNER_RSA_PSS, SIGNER_SHA512, "pss sha512");
    EVP_PKEY_free(pub);
    signer_p11_close(p);
}
END_TEST

/* A module that answers CKR_BUFFER_TOO_SMALL keeps the operation active (v2.40 §5.2):
 * p11_sign_once finishes it, so the session signs again afterwards. */
START_TEST(test_token_sign_once_buffer_too_small)
{
    struct signer_p11 *p = tok_open(1);
    EVP_PKEY *rsa = tok_pub("rsa3072");
    CK_OBJECT_HANDLE k = tok_key(p, "rsa3072", "rsa3072");
    CK_MECHANISM mech = {CKM_RSA_PKCS, NULL, 0};
    uint8_t in[P11_DIGEST_INFO_MAX], digest[32] = {5}, out[SIGNER_MAX_SIG];
    size_t in_len = sizeof(in), out_len = 0;

    ck_assert_int_eq(p11_digest_info(SIGNER_SHA256, digest, 32, in, &in_len), ST_OK);
    ck_assert_uint_eq(p11_sign_once(p, p->sessions[0], &mech, k, in, in_len, out, 100, &out_len),
                      CKR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(
        p11_sign_once(p, p->sessions[0], &mech, k, in, in_len, out, sizeof(out), &out_len), CKR_OK);
    ck_assert_uint_eq(out_len, 384);
    ck_assert(verify_sig(rsa, SIGNER_RSA_PKCS1, SIGNER_SHA256, digest, 32, out, out_len));
    EVP_PKEY_free(rsa);
    signer_p11_close(p);
}
END_TEST

/* Caller mistakes are ST_INVALID before the token is asked. */
START_TEST(test_token_sign_bad_arguments)
{
    struct signer_p11 *p = tok_open(2);
    CK_OBJECT_HANDLE k = tok_key(p, "ec256", "ec256");
    uint8_t digest[64] = {1}, sig[SIGNER_MAX_SIG];
    size_t sig_len = sizeof(sig);

    ck_assert_int_eq(
        signer_p11_sign(p, 0, k, SIGNER_ECDSA, SIGNER_SHA256, digest, 48, sig, &sig_len),
        ST_INVALID);
    ck_assert_int_eq(
        signer_p11_sign(p, 2, k, SIGNER_ECDSA, SIGNER_SHA256, digest, 32, sig, &sig_len),
        ST_INVALID);
    ck_assert_int_eq(
        signer_p11_sign(p, 0, k, (enum signer_scheme)9, SIGNER_SHA256, digest, 32, sig, &sig_len),
        ST_INVALID);
    ck_assert(signer_p11_healthy(p)); /* caller mistakes say nothing about the token */
    signer_p11_close(p);
}
END_TEST

/* A buffer too small is refused, and leaves no operation active on the session. */
START_TEST(test_token_sign_small_buffer)
{
    struct signer_p11 *p = tok_open(1);
    EVP_PKEY *ec = tok_pub("ec256"), *rsa = tok_pub("rsa3072");
    CK_OBJECT_HANDLE kec = tok_key(p, "ec256", "ec256"), krsa = tok_key(p, "rsa3072", "rsa3072");
    uint8_t digest[32] = {7}, sig[SIGNER_MAX_SIG];
    size_t sig_len = 100;

    ck_assert_int_eq(
        signer_p11_sign(p, 0, krsa, SIGNER_RSA_PSS, SIGNER_SHA256, digest, 32, sig, &sig_len),
        ST_INVALID);
    sign_and_verify(p, 0, krsa, rsa, SIGNER_RSA_PSS, SIGNER_SHA256, "after a short buffer");
    sig_len = 20;
    ck_assert_int_eq(
        signer_p11_sign(p, 0, kec, SIGNER_ECDSA, SIGNER_SHA256, digest, 32, sig, &sig_len),
        ST_INVALID);
    sign_and_verify(p, 0, kec, ec, SIGNER_ECDSA, SIGNER_SHA256, "after a short buffer");
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
    signer_p11_close(p);
}
END_TEST

/* A token error is ST_HSM, logged with its CK_RV, and marks the backend unhealthy until the
 * next success. */
START_TEST(test_token_sign_error_health)
{
    struct signer_p11 *p = tok_open(1);
    EVP_PKEY *ec = tok_pub("ec256");
    CK_OBJECT_HANDLE k = tok_key(p, "ec256", "ec256");
    uint8_t digest[32] = {3}, sig[SIGNER_MAX_SIG];
    size_t sig_len = sizeof(sig);
    char *log;

    capture_begin();
    ck_assert_int_eq(
        signer_p11_sign(p, 0, k, SIGNER_RSA_PSS, SIGNER_SHA256, digest, 32, sig, &sig_len), ST_HSM);
    log = capture_end();
    ck_assert_ptr_nonnull(strstr(log, "C_SignInit/C_Sign: CKR_"));
    free(log);
    ck_assert(!signer_p11_healthy(p));
    sig_len = sizeof(sig);
    ck_assert_int_eq(
        signer_p11_sign(p, 0, 0x7fffff00UL, SIGNER_ECDSA, SIGNER_SHA256, digest, 32, sig, &sig_len),
        ST_HSM);
    ck_assert(!signer_p11_healthy(p));
    sign_and_verify(p, 0, k, ec, SIGNER_ECDSA, SIGNER_SHA256, "healthy again");
    ck_assert(signer_p11_healthy(p));
    EVP_PKEY_free(ec);
    signer_p11_close(p);
}
END_TEST

/* A session closed under our feet is reopened once and the signature still succeeds. */
START_TEST(test_token_reopen_session)
{
    struct signer_p11 *p = tok_open(2);
    EVP_PKEY *ec = tok_pub("ec256");
    CK_OBJECT_HANDLE k = tok_key(p, "ec256", "ec256");
    CK_SESSION_HANDLE old = p->sessions[0];
    char *log;

    ck_assert_uint_eq(p->fn->C_CloseSession(p->sessions[0]), CKR_OK);
    capture_begin();
    sign_and_verify(p, 0, k, ec, SIGNER_ECDSA, SIGNER_SHA256, "reopened");
    log = capture_end();
    ck_assert_ptr_nonnull(strstr(log, "CKR_SESSION_HANDLE_INVALID"));
    ck_assert_ptr_nonnull(strstr(log, "session 0 reopened"));
    free(log);
    ck_assert_uint_ne(p->sessions[0], old);
    ck_assert(signer_p11_healthy(p));
    EVP_PKEY_free(ec);
    signer_p11_close(p);
}
END_TEST

/* Closing the only session logs the application out (v2.40 §5.6); a logout does too. The
 * reopen logs in again with the PIN from the file. */
START_TEST(test_token_reopen_relogin)
{
    struct signer_p11 *p = tok_open(1);
    EVP_PKEY *ec = tok_pub("ec256");
    CK_OBJECT_HANDLE k = tok_key(p, "ec256", "ec256");
    CK_SESSION_INFO info;
    char *log;

    ck_assert_uint_eq(p->fn->C_CloseSession(p->sessions[0]), CKR_OK);
    sign_and_verify(p, 0, k, ec, SIGNER_ECDSA, SIGNER_SHA256, "after the last session closed");
    ck_assert_uint_eq(p->fn->C_GetSessionInfo(p->sessions[0], &info), CKR_OK);
    ck_assert_uint_eq(info.state, CKS_RO_USER_FUNCTIONS);

    /* SoftHSM2 drops private object handles at logout: the key is found again by label */
    ck_assert_uint_eq(p->fn->C_Logout(p->sessions[0]), CKR_OK);
    ck_assert_uint_eq(p->fn->C_GetSessionInfo(p->sessions[0], &info), CKR_OK);
    ck_assert_uint_eq(info.state, CKS_RO_PUBLIC_SESSION);
    capture_begin();
    sign_and_verify(p, 0, k, ec, SIGNER_ECDSA, SIGNER_SHA256, "after a logout");
    log = capture_end();
    ck_assert_ptr_nonnull(strstr(log, "logging in again"));
    ck_assert_ptr_nonnull(strstr(log, "key 'ec256': found again as handle"));
    free(log);
    ck_assert_uint_eq(p->fn->C_GetSessionInfo(p->sessions[0], &info), CKR_OK);
    ck_assert_uint_eq(info.state, CKS_RO_USER_FUNCTIONS);
    EVP_PKEY_free(ec);
    signer_p11_close(p);
}
END_TEST

/* CKR_USER_NOT_LOGGED_IN only needs a login: the session is kept. */
START_TEST(test_token_reopen_login_only)
{
    struct signer_p11 *p = tok_open(2);
    CK_SESSION_HANDLE old = p->sessions[1];
    CK_SESSION_INFO info;

    ck_assert_uint_eq(p->fn->C_Logout(p->sessions[0]), CKR_OK);
    ck_assert_uint_eq(p11_reopen(p, 1, CKR_USER_NOT_LOGGED_IN), CKR_OK);
    ck_assert_uint_eq(p->sessions[1], old);
    ck_assert_uint_eq(p->fn->C_GetSessionInfo(p->sessions[0], &info), CKR_OK);
    ck_assert_uint_eq(info.state, CKS_RO_USER_FUNCTIONS);
    signer_p11_close(p);
}
END_TEST

/* A key found again is checked against the certificate again: if the label now names a key
 * that does not match, signing fails instead of using it. */
START_TEST(test_token_refind_checks_cert)
{
    struct signer_p11 *p = tok_open(1);
    CK_OBJECT_HANDLE k = tok_key(p, "ec256", "ec256");
    struct p11_key_ref *r = p11_key_ref_get(p, k);
    uint8_t digest[32] = {9}, sig[SIGNER_MAX_SIG];
    size_t sig_len = sizeof(sig);

    ck_assert_ptr_nonnull(r);
    /* stand-in for "the key under this label was replaced": the expected key changes */
    EVP_PKEY_free(r->pub);
    r->pub = tok_pub("other256");
    ck_assert_uint_eq(p->fn->C_Logout(p->sessions[0]), CKR_OK);
    ck_assert_int_eq(
        signer_p11_sign(p, 0, k, SIGNER_ECDSA, SIGNER_SHA256, digest, 32, sig, &sig_len), ST_HSM);
    ck_assert(!signer_p11_healthy(p));
    signer_p11_close(p);
}
END_TEST

/* A second user of the module in the same process shares it and, on close, leaves the first
 * user's sessions and login alone. */
START_TEST(test_token_shared_module)
{
    struct signer_p11 *a = tok_open(1), *b;
    EVP_PKEY *ec = tok_pub("ec256");
    CK_OBJECT_HANDLE ka = tok_key(a, "ec256", "ec256"), kb;

    b = tok_open(1);
    ck_assert(!b->finalize);
    kb = tok_key(b, "ec256", "ec256");
    sign_and_verify(b, 0, kb, ec, SIGNER_ECDSA, SIGNER_SHA256, "second user");
    signer_p11_close(b);
    sign_and_verify(a, 0, ka, ec, SIGNER_ECDSA, SIGNER_SHA256, "first user after the second");
    EVP_PKEY_free(ec);
    signer_p11_close(a);
}
END_TEST

#define THREAD_SIGNS 20

struct thread_arg {
    struct signer_p11 *p;
    unsigned session;
    CK_OBJECT_HANDLE kec, krsa;
    EVP_PKEY *ec, *rsa;
    int ok;
};

/* No ck_assert off the main thread: count verified signatures and let the test assert. */
static void *
thread_main(void *varg)
{
    struct thread_arg *a = varg;

    for (int i = 0; i < THREAD_SIGNS; i++) {
        uint8_t digest[32], sig[SIGNER_MAX_SIG];
        size_t sig_len = sizeof(sig);
        bool rsa = i % 2 == 1;
        enum signer_scheme scheme = rsa ? SIGNER_RSA_PSS : SIGNER_ECDSA;

        memset(digest, (int)(a->session * 64 + (unsigned)i), sizeof(digest));
        if (signer_p11_sign(a->p, a->session, rsa ? a->krsa : a->kec, scheme, SIGNER_SHA256, digest,
                            32, sig, &sig_len) == ST_OK &&
            verify_sig(rsa ? a->rsa : a->ec, scheme, SIGNER_SHA256, digest, 32, sig, sig_len))
            a->ok++;
    }
    return NULL;
}

START_TEST(test_token_two_threads)
{
    struct signer_p11 *p = tok_open(2);
    struct thread_arg args[2];
    pthread_t th[2];

    for (unsigned i = 0; i < 2; i++) {
        args[i] = (struct thread_arg){.p = p, .session = i};
        args[i].kec = tok_key(p, "ec256", "ec256");
        args[i].krsa = tok_key(p, "rsa3072", "rsa3072");
        args[i].ec = tok_pub("ec256");
        args[i].rsa = tok_pub("rsa3072");
    }
    for (unsigned i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    for (unsigned i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    for (unsigned i = 0; i < 2; i++) {
        ck_assert_int_eq(args[i].ok, THREAD_SIGNS);
        EVP_PKEY_free(args[i].ec);
        EVP_PKEY_free(args[i].rsa);
    }
    ck_assert(signer_p11_healthy(p));
    signer_p11_close(p);
}
END_TEST

static Suite *
signer_p11_suite(void)
{
    Suite *s = suite_create("signer_p11");
    TCase *tc;

    tc = tcase_create("der");
    tcase_add_test(tc, test_ecdsa_der_golden);
    tcase_add_test(tc, test_ecdsa_der_high_bit_p256);
    tcase_add_test(tc, test_ecdsa_der_leading_zeros_round_trip);
    tcase_add_test(tc, test_ecdsa_der_zero_and_p521);
    tcase_add_test(tc, test_ecdsa_der_rejects);
    tcase_add_test(tc, test_digest_info_sha256_golden);
    tcase_add_test(tc, test_digest_info_parses);
    tcase_add_test(tc, test_digest_info_rejects);
    suite_add_tcase(s, tc);

    tc = tcase_create("rv");
    tcase_add_test(tc, test_rv_names);
    tcase_add_test(tc, test_rv_reopens);
    suite_add_tcase(s, tc);

    tc = tcase_create("pin");
    tcase_add_unchecked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_add_test(tc, test_pin_strip);
    tcase_add_test(tc, test_pin_bounds);
    tcase_add_test(tc, test_pin_unreadable);
    tcase_add_test(tc, test_pin_loose_mode_refused_without_pin);
    tcase_add_test(tc, test_open_bad_module);
    tcase_add_test(tc, test_open_bad_arguments);
    tcase_add_test(tc, test_null_safe);
    suite_add_tcase(s, tc);

    if ((tok_dir = getenv("P11_TEST_DIR")) != NULL && tok_dir[0] != '\0') {
        tok_module = getenv("P11_MODULE");
        if (tok_module == NULL || tok_module[0] == '\0')
            tok_module = "/usr/lib/softhsm/libsofthsm2.so";
        tok_label = getenv("P11_TOKEN");
        if (tok_label == NULL || tok_label[0] == '\0')
            tok_label = "t";
        tc = tcase_create("token");
        tcase_set_timeout(tc, 120); /* RSA-3072 in SoftHSM under ASan: a guard, not a check */
        tcase_add_unchecked_fixture(tc, tmp_setup, tmp_teardown);
        tcase_add_test(tc, test_token_wrong_pin_not_logged);
        tcase_add_test(tc, test_token_unknown_label);
        tcase_add_test(tc, test_token_pin_crlf);
        tcase_add_test(tc, test_token_find_keys);
        tcase_add_test(tc, test_token_find_mismatch);
        tcase_add_test(tc, test_token_find_by_id_and_attrs);
        tcase_add_test(tc, test_token_sign_ecdsa);
        tcase_add_test(tc, test_token_sign_rsa);
        tcase_add_test(tc, test_token_sign_bad_arguments);
        tcase_add_test(tc, test_token_sign_small_buffer);
        tcase_add_test(tc, test_token_sign_once_buffer_too_small);
        tcase_add_test(tc, test_token_sign_error_health);
        tcase_add_test(tc, test_token_reopen_session);
        tcase_add_test(tc, test_token_reopen_relogin);
        tcase_add_test(tc, test_token_reopen_login_only);
        tcase_add_test(tc, test_token_refind_checks_cert);
        tcase_add_test(tc, test_token_shared_module);
        tcase_add_test(tc, test_token_two_threads);
        tok_shim = getenv("P11_SHIM");
        if (tok_shim != NULL && tok_shim[0] != '\0' && access(tok_shim, R_OK) == 0) {
            tcase_add_test(tc, test_token_removed_reinit);
            tcase_add_test(tc, test_token_pin_refused_not_retried);
        }
        suite_add_tcase(s, tc);
    }
    return s;
}

int
main(void)
{
    SRunner *sr;
    int failed;

    log_init("check_signer_p11", LOG_LVL_DEBUG);
    sr = srunner_create(signer_p11_suite());
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
