/*
 * signer_p11: the PKCS#11 backend of the signer (DESIGN D1). It loads the module named in the
 * config, logs in to one token with a PIN read from a file, and signs digests the caller
 * computed, one session per worker thread.
 *
 * Implements: PKCS #11 v2.40 Base §5.4 (C_Initialize with CKF_OS_LOCKING_OK; an already
 * initialised library is shared, not finalised), §5.6 (the login state belongs to the
 * application and is shared by all its sessions: one C_Login per token; closing the last session
 * logs out), §5.11 (C_SignInit/C_Sign; CKR_BUFFER_TOO_SMALL leaves the operation active);
 * PKCS #11 v2.40 Current Mechanisms §2.3.1 (CKM_ECDSA returns r||s, each half the order length),
 * §2.1.6/§2.1.14 (CKM_RSA_PKCS, CKM_RSA_PKCS_PSS with CK_RSA_PKCS_PSS_PARAMS); RFC 8017 §9.2
 * note 1 (the DigestInfo prefixes of EMSA-PKCS1-v1_5); RFC 3279 §2.2.3 / RFC 5480 (the DER
 * Ecdsa-Sig-Value, written through OpenSSL's encoder).
 *
 * Thread-safety: signer_p11_sign() may run concurrently for distinct session numbers; the
 * module is initialised with OS locking. The lock in struct signer_p11 guards only the slot id
 * and the login, which change when a session is reopened.
 */
#include "common/signer_int.h"

#include "common/log.h"
#include "common/status.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>

#define P11_LABEL_LEN 32     /* CK_TOKEN_INFO.label, blank padded */
#define P11_PIN_FILE_MAX 256 /* longest PIN file accepted, line end included */
#define P11_POINT_MAX 160    /* uncompressed P-521 point is 133 bytes */
#define P11_DIGEST_INFO_MAX (19 + SIGNER_MAX_DIGEST)

/*
 * What find_key learnt about a key, so that a signature can find it again. Object handles may
 * change while the object lives (v2.40 §2.4: SoftHSM2 drops the handles of private objects at
 * logout), so the handle given to the caller stays the caller's name for the key, and `cur` is
 * the handle to use now. Nodes are pushed under the lock, never changed except `cur`, `users`
 * and `given` (see signer_p11_forget_key), and freed only by close, so signers walk the list
 * without the lock. A node no key uses any more (a TSU or delegate replaced by a reload, issue 9
 * item 4) is retired: a re-initialisation does not look for it (the operator may have deleted
 * that key from the token), and a key found again at its handle revives it.
 */
struct p11_key_ref {
    _Atomic CK_OBJECT_HANDLE given;
    _Atomic CK_OBJECT_HANDLE cur;
    char *label;
    EVP_PKEY *pub;  /* the certificate's key, to check a key found again */
    unsigned users; /* signer keys using it (under the lock); 0: retired */
    struct p11_key_ref *next;
};

struct signer_p11 {
    void *dl;
    CK_FUNCTION_LIST_PTR fn;
    bool finalize; /* we initialised the library, so we finalise it (and may re-initialise it) */
    /* held shared by every call into the module on the signing path, exclusively by a
     * re-initialisation (C_Finalize + C_Initialize after a removed device); writers first */
    pthread_rwlock_t rw;
    bool rw_ok;
    atomic_llong reinit_last; /* CLOCK_MONOTONIC ns of the last re-initialisation attempt */
    atomic_bool pin_refused;  /* the token refused the PIN: never offered again */
    atomic_bool need_reinit;  /* a re-initialisation began and did not finish: no key handle
                                 can be trusted (a number may name another key now) */
    char *module;
    char *pin_file; /* re-read to log in again after a reopen */
    char token[P11_LABEL_LEN + 1];
    pthread_mutex_t lock; /* guards slot and login */
    bool lock_ok;
    CK_SLOT_ID slot;
    unsigned nsessions;
    CK_SESSION_HANDLE *sessions; /* sessions[i]: by slot i only (a worker, a probe, ...) */
    atomic_bool healthy;
    struct p11_key_ref *_Atomic keys;
};

/* DigestInfo prefixes, RFC 8017 §9.2 note 1: SEQUENCE { AlgorithmIdentifier, OCTET STRING }. */
static const uint8_t p11_di_sha256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                        0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const uint8_t p11_di_sha384[] = {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                        0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30};
static const uint8_t p11_di_sha512[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                        0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};

struct p11_rv_name {
    CK_RV rv;
    const char *name;
};

static const struct p11_rv_name p11_rv_names[] = {
    {CKR_OK, "CKR_OK"},
    {CKR_CANCEL, "CKR_CANCEL"},
    {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
    {CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID"},
    {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
    {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
    {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
    {CKR_CANT_LOCK, "CKR_CANT_LOCK"},
    {CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE"},
    {CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID"},
    {CKR_DATA_INVALID, "CKR_DATA_INVALID"},
    {CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE"},
    {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
    {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
    {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
    {CKR_FUNCTION_CANCELED, "CKR_FUNCTION_CANCELED"},
    {CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED"},
    {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
    {CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE"},
    {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
    {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
    {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
    {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
    {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"},
    {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
    {CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED"},
    {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
    {CKR_PIN_INVALID, "CKR_PIN_INVALID"},
    {CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE"},
    {CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED"},
    {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
    {CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED"},
    {CKR_SESSION_COUNT, "CKR_SESSION_COUNT"},
    {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
    {CKR_SESSION_PARALLEL_NOT_SUPPORTED, "CKR_SESSION_PARALLEL_NOT_SUPPORTED"},
    {CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE"},
    {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
    {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
    {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
    {CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN"},
    {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
    {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"},
    {CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID"},
    {CKR_USER_ANOTHER_ALREADY_LOGGED_IN, "CKR_USER_ANOTHER_ALREADY_LOGGED_IN"},
    {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
    {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
    {CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED"},
    {CKR_FUNCTION_REJECTED, "CKR_FUNCTION_REJECTED"},
};

/* Readable name of a CK_RV; "CKR_VENDOR_DEFINED" or "CKR_?" when not in the table. */
static const char *
p11_rv_name(CK_RV rv)
{
    for (size_t i = 0; i < sizeof(p11_rv_names) / sizeof(p11_rv_names[0]); i++)
        if (p11_rv_names[i].rv == rv)
            return p11_rv_names[i].name;
    return rv >= CKR_VENDOR_DEFINED ? "CKR_VENDOR_DEFINED" : "CKR_?";
}

/* "CKR_PIN_INCORRECT (0x000000a0)": what every log line about a CK_RV shows. */
static const char *
p11_rv_str(CK_RV rv, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s (0x%08lx)", p11_rv_name(rv), (unsigned long)rv);
    return buf;
}

static void
p11_log_rv(int level, const struct signer_p11 *p, const char *what, CK_RV rv)
{
    char rvs[64];

    log_msg(level, "pkcs11: module %s token '%s': %s: %s", p->module, p->token, what,
            p11_rv_str(rv, rvs, sizeof(rvs)));
}

/* The errors after which a session is reopened (and the user logged in again) once. */
static bool
p11_rv_reopens(CK_RV rv)
{
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
           rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_USER_NOT_LOGGED_IN;
}

/*
 * Read the PIN from `path` into pin[0..cap) and strip trailing CR/LF. The caller wipes `pin`.
 * ST_IO when the file cannot be read, ST_CONFIG when it is empty once stripped or holds cap
 * bytes or more.
 * The contents are never logged.
 */
static int
p11_read_pin(const char *path, char *pin, size_t cap, size_t *len)
{
    struct stat sb;
    size_t n = 0;
    ssize_t r;
    int fd = -1, st = ST_IO;

    *len = 0;
    if (strncmp(path, CONFIG_CREDENTIAL_PREFIX, strlen(CONFIG_CREDENTIAL_PREFIX)) == 0) {
        log_err("pkcs11: PIN file %s: $CREDENTIALS_DIRECTORY is not set: run under systemd with "
                "LoadCredential=%s:FILE (or systemd-run -p LoadCredential=...)",
                path, path + strlen(CONFIG_CREDENTIAL_PREFIX));
        st = ST_CONFIG;
        goto out;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
        log_err("pkcs11: PIN file %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
        log_err("pkcs11: PIN file %s: not a regular file", path);
        goto out;
    }
    /* issue 8: a PIN others may read is no secret any more, and one others may write could
     * lock the token with wrong PINs: refuse it rather than warn */
    if ((sb.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) != 0) {
        log_err("pkcs11: PIN file %s is readable or writable by group or others (mode %04o): "
                "refused; chmod 600 it (owner only), or use pin_file = credential:NAME",
                path, (unsigned)(sb.st_mode & 07777));
        st = ST_CONFIG;
        goto out;
    }
    /* nor one owned by another user: its owner could read it, or rewrite it with wrong PINs
     * that spend the token's attempts (root's or the daemon user's only, as ssh's rule) */
    if (sb.st_uid != 0 && sb.st_uid != geteuid()) {
        log_err("pkcs11: PIN file %s is owned by uid %lu, not by root or this daemon's user "
                "(uid %lu): refused; chown it",
                path, (unsigned long)sb.st_uid, (unsigned long)geteuid());
        st = ST_CONFIG;
        goto out;
    }
    while (n < cap && (r = read(fd, pin + n, cap - n)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            log_err("pkcs11: PIN file %s: %s", path, strerror(errno));
            goto out;
        }
        n += (size_t)r;
    }
    st = ST_CONFIG;
    if (n == cap) {
        log_err("pkcs11: PIN file %s: longer than %zu bytes", path, cap - 1);
        goto out;
    }
    while (n > 0 && (pin[n - 1] == '\n' || pin[n - 1] == '\r'))
        n--;
    if (n == 0) {
        log_err("pkcs11: PIN file %s is empty", path);
        goto out;
    }
    pin[n] = '\0';
    *len = n;
    st = ST_OK;
out:
    if (fd != -1)
        close(fd);
    return st;
}

/*
 * Re-encode the raw r||s of CKM_ECDSA as a DER Ecdsa-Sig-Value (RFC 3279 §2.2.3): SEQUENCE of
 * two minimal positive INTEGERs. *out_len is the capacity in, the length out.
 */
static int
p11_ecdsa_der(const uint8_t *raw, size_t raw_len, uint8_t *out, size_t *out_len)
{
    ECDSA_SIG *sig = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *p = out;
    size_t half = raw_len / 2;
    int len, st = ST_INVALID;

    if (raw_len == 0 || raw_len % 2 != 0 || raw_len > 2 * 66) {
        log_err("pkcs11: ECDSA signature of %zu bytes is not r||s", raw_len);
        goto out;
    }
    st = ST_CRYPTO;
    if ((r = BN_bin2bn(raw, (int)half, NULL)) == NULL ||
        (s = BN_bin2bn(raw + half, (int)half, NULL)) == NULL || (sig = ECDSA_SIG_new()) == NULL)
        goto out;
    if (ECDSA_SIG_set0(sig, r, s) != 1)
        goto out;
    r = s = NULL; /* owned by sig now */
    if ((len = i2d_ECDSA_SIG(sig, NULL)) <= 0)
        goto out;
    st = ST_INVALID;
    if ((size_t)len > *out_len) {
        log_err("pkcs11: DER ECDSA signature of %d bytes exceeds %zu", len, *out_len);
        goto out;
    }
    st = ST_CRYPTO;
    if (i2d_ECDSA_SIG(sig, &p) != len)
        goto out;
    *out_len = (size_t)len;
    st = ST_OK;
out:
    if (st == ST_CRYPTO)
        log_openssl(LOG_LVL_ERR, "pkcs11: encoding the ECDSA signature");
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return st;
}

/* DigestInfo(hash OID, digest) for CKM_RSA_PKCS. *out_len is the capacity in, the length out. */
static int
p11_digest_info(enum signer_hash hash, const uint8_t *digest, size_t digest_len, uint8_t *out,
                size_t *out_len)
{
    const uint8_t *prefix;
    size_t plen;

    switch (hash) {
    case SIGNER_SHA256:
        prefix = p11_di_sha256;
        plen = sizeof(p11_di_sha256);
        break;
    case SIGNER_SHA384:
        prefix = p11_di_sha384;
        plen = sizeof(p11_di_sha384);
        break;
    case SIGNER_SHA512:
        prefix = p11_di_sha512;
        plen = sizeof(p11_di_sha512);
        break;
    default:
        return ST_INVALID;
    }
    /* the last prefix byte is the OCTET STRING length, i.e. the digest length */
    if (digest_len != prefix[plen - 1] || plen + digest_len > *out_len)
        return ST_INVALID;
    memcpy(out, prefix, plen);
    memcpy(out + plen, digest, digest_len);
    *out_len = plen + digest_len;
    return ST_OK;
}

/* dlopen the module, get its function list and initialise it for a multi-threaded caller. */
static int
p11_load(struct signer_p11 *p)
{
    CK_C_INITIALIZE_ARGS args;
    CK_C_GetFunctionList get_list;
    CK_RV rv;

    if ((p->dl = dlopen(p->module, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        log_err("pkcs11: cannot load module %s: %s", p->module, dlerror());
        return ST_CONFIG;
    }
    *(void **)&get_list = dlsym(p->dl, "C_GetFunctionList");
    if (get_list == NULL) {
        log_err("pkcs11: module %s has no C_GetFunctionList", p->module);
        return ST_CONFIG;
    }
    if ((rv = get_list(&p->fn)) != CKR_OK || p->fn == NULL) {
        p->fn = NULL;
        p11_log_rv(LOG_LVL_ERR, p, "C_GetFunctionList", rv);
        return ST_HSM;
    }
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    rv = p->fn->C_Initialize(&args);
    if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        log_info("pkcs11: module %s already initialised in this process; sharing it", p->module);
        return ST_OK;
    }
    if (rv != CKR_OK) {
        p11_log_rv(LOG_LVL_ERR, p, "C_Initialize", rv);
        return ST_HSM;
    }
    p->finalize = true;
    return ST_OK;
}

/* Find the one slot whose token carries p->token. Called at open and, locked, at reopen. */
static int
p11_find_slot(struct signer_p11 *p)
{
    CK_SLOT_ID *slots = NULL;
    CK_TOKEN_INFO info;
    CK_ULONG n = 0;
    unsigned char want[P11_LABEL_LEN];
    unsigned found = 0;
    CK_RV rv;
    int st = ST_HSM;

    memset(want, ' ', sizeof(want));
    memcpy(want, p->token, strlen(p->token));
    if ((rv = p->fn->C_GetSlotList(CK_TRUE, NULL, &n)) != CKR_OK) {
        p11_log_rv(LOG_LVL_ERR, p, "C_GetSlotList", rv);
        goto out;
    }
    if (n > 0 && (slots = calloc(n, sizeof(*slots))) == NULL) {
        st = ST_NOMEM;
        goto out;
    }
    if (n > 0 && (rv = p->fn->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK) {
        p11_log_rv(LOG_LVL_ERR, p, "C_GetSlotList", rv);
        goto out;
    }
    for (CK_ULONG i = 0; i < n; i++) {
        if (p->fn->C_GetTokenInfo(slots[i], &info) != CKR_OK)
            continue;
        if (memcmp(info.label, want, sizeof(want)) == 0 && found++ == 0)
            p->slot = slots[i];
    }
    st = found == 1 ? ST_OK : found == 0 ? ST_NOTFOUND : ST_INVALID;
    if (st != ST_OK)
        log_err("pkcs11: module %s: %s token labelled '%s' (%lu slots with a token)", p->module,
                found == 0 ? "no" : "more than one", p->token, (unsigned long)n);
out:
    free(slots);
    return st;
}

/* Set once a token of this process refused its PIN; read by the daemon for its exit status. */
static atomic_bool p11_any_pin_refused;

bool
signer_pin_refused(void)
{
    return atomic_load(&p11_any_pin_refused);
}

/* The C_Login results that say the PIN itself is wrong or unusable: trying it again only
 * brings the token closer to locking the user (v2.40 §5.6, CKF_USER_PIN_COUNT_LOW, ..._LOCKED). */
static bool
p11_rv_pin_refused(CK_RV rv)
{
    return rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_PIN_EXPIRED ||
           rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE;
}

/* C_Login(CKU_USER) with the PIN from the PIN file; the PIN is wiped before returning. A PIN
 * the token refused is never offered again by this process (it would count toward locking
 * the token): every later login fails at once until a restart with a corrected PIN file. */
static int
p11_login(struct signer_p11 *p, CK_SESSION_HANDLE h)
{
    char pin[P11_PIN_FILE_MAX + 1]; /* one more byte tells a file that is too long */
    char rvs[64];
    size_t len = 0;
    CK_RV rv;
    int st;

    if (atomic_load(&p->pin_refused)) {
        log_err("pkcs11: token '%s': not logging in: the token refused the PIN of %s earlier; "
                "correct it and restart",
                p->token, p->pin_file);
        return ST_HSM;
    }
    if ((st = p11_read_pin(p->pin_file, pin, sizeof(pin), &len)) != ST_OK)
        goto out;
    rv = p->fn->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)len);
    if (p11_rv_pin_refused(rv)) {
        atomic_store(&p->pin_refused, true);
        atomic_store(&p11_any_pin_refused, true);
        p11_log_rv(LOG_LVL_ERR, p, "C_Login", rv);
        log_audit("hsm_login_refused", "module=%s token=%s: the token refused the PIN in %s: %s",
                  p->module, p->token, p->pin_file, p11_rv_str(rv, rvs, sizeof(rvs)));
        log_err("pkcs11: token '%s': the PIN in %s was refused; it will not be tried again (each "
                "attempt counts toward locking the token): correct the PIN file and restart",
                p->token, p->pin_file);
        st = ST_HSM;
    } else if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        p11_log_rv(LOG_LVL_ERR, p, "C_Login", rv);
        st = ST_HSM;
    }
out:
    OPENSSL_cleanse(pin, sizeof(pin));
    return st;
}

static CK_RV
p11_open_session(struct signer_p11 *p, CK_SESSION_HANDLE *h)
{
    CK_RV rv;

    *h = CK_INVALID_HANDLE;
    if ((rv = p->fn->C_OpenSession(p->slot, CKF_SERIAL_SESSION, NULL, NULL, h)) != CKR_OK)
        *h = CK_INVALID_HANDLE;
    return rv;
}

static int
p11_open_sessions(struct signer_p11 *p)
{
    CK_RV rv;

    for (unsigned i = 0; i < p->nsessions; i++) {
        if ((rv = p11_open_session(p, &p->sessions[i])) != CKR_OK) {
            p11_log_rv(LOG_LVL_ERR, p, "C_OpenSession", rv);
            return ST_HSM;
        }
    }
    return ST_OK;
}

static int
p11_init_fields(struct signer_p11 *p, const char *module, const char *token, const char *pin_file,
                unsigned sessions)
{
    if (strlen(token) == 0 || strlen(token) > P11_LABEL_LEN) {
        log_err("pkcs11: token label '%s' must have 1 to %d bytes", token, P11_LABEL_LEN);
        return ST_CONFIG;
    }
    memcpy(p->token, token, strlen(token) + 1);
    if (sessions == 0) {
        log_err("pkcs11: token '%s': zero sessions requested", token);
        return ST_INVALID;
    }
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        return ST_ERR;
    p->lock_ok = true;
    {
        pthread_rwlockattr_t ra;
        int rc;

        pthread_rwlockattr_init(&ra);
        pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        rc = pthread_rwlock_init(&p->rw, &ra);
        pthread_rwlockattr_destroy(&ra);
        if (rc != 0)
            return ST_ERR;
        p->rw_ok = true;
    }
    p->nsessions = sessions;
    if ((p->module = strdup(module)) == NULL || (p->pin_file = strdup(pin_file)) == NULL ||
        (p->sessions = calloc(sessions, sizeof(*p->sessions))) == NULL)
        return ST_NOMEM;
    return ST_OK;
}

struct signer_p11 *
signer_p11_open(const char *module, const char *token, const char *pin_file, unsigned sessions)
{
    struct signer_p11 *p = NULL;
    int st = ST_NOMEM;

    if (module == NULL || token == NULL || pin_file == NULL) {
        log_err("pkcs11: module, token label and PIN file are all required");
        return NULL;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL)
        goto out;
    atomic_init(&p->healthy, true);
    if ((st = p11_init_fields(p, module, token, pin_file, sessions)) != ST_OK)
        goto out;
    if ((st = p11_load(p)) != ST_OK || (st = p11_find_slot(p)) != ST_OK ||
        (st = p11_open_sessions(p)) != ST_OK || (st = p11_login(p, p->sessions[0])) != ST_OK)
        goto out;
    log_info("pkcs11: module %s token '%s' (slot %lu): logged in, %u sessions", module, token,
             (unsigned long)p->slot, sessions);
out:
    if (st != ST_OK) {
        log_err("pkcs11: cannot open token '%s' in module %s: %s", token, module, status_str(st));
        signer_p11_close(p);
        p = NULL;
    }
    return p;
}

void
signer_p11_close(struct signer_p11 *p)
{
    if (p == NULL)
        return;
    if (p->fn != NULL && p->sessions != NULL) {
        /* The login belongs to whoever initialised the library; a second user in the same
         * process closes only its own sessions and leaves the first one logged in. */
        if (p->finalize && p->sessions[0] != CK_INVALID_HANDLE)
            (void)p->fn->C_Logout(p->sessions[0]);
        for (unsigned i = 0; i < p->nsessions; i++)
            if (p->sessions[i] != CK_INVALID_HANDLE)
                (void)p->fn->C_CloseSession(p->sessions[i]);
    }
    if (p->fn != NULL && p->finalize)
        (void)p->fn->C_Finalize(NULL);
    if (p->dl != NULL)
        dlclose(p->dl);
    if (p->lock_ok)
        pthread_mutex_destroy(&p->lock);
    if (p->rw_ok)
        pthread_rwlock_destroy(&p->rw);
    for (struct p11_key_ref *r = atomic_load(&p->keys), *next; r != NULL; r = next) {
        next = r->next;
        EVP_PKEY_free(r->pub);
        free(r->label);
        free(r);
    }
    free(p->sessions);
    free(p->module);
    free(p->pin_file);
    free(p);
}

bool
signer_p11_healthy(struct signer_p11 *p)
{
    return p != NULL && atomic_load(&p->healthy);
}

/*
 * Find the one object of `cls` whose attribute `type` equals val[0..len). ST_NOTFOUND when
 * there is none, ST_INVALID when there are several.
 */
static int
p11_find_unique(struct signer_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls,
                CK_ATTRIBUTE_TYPE type, const void *val, size_t len, CK_OBJECT_HANDLE *obj)
{
    CK_ATTRIBUTE tmpl[2] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {type, (void *)val, (CK_ULONG)len},
    };
    CK_OBJECT_HANDLE found[2];
    CK_ULONG n = 0;
    CK_RV rv;

    if ((rv = p->fn->C_FindObjectsInit(h, tmpl, 2)) != CKR_OK) {
        p11_log_rv(LOG_LVL_ERR, p, "C_FindObjectsInit", rv);
        return ST_HSM;
    }
    rv = p->fn->C_FindObjects(h, found, 2, &n);
    (void)p->fn->C_FindObjectsFinal(h);
    if (rv != CKR_OK) {
        p11_log_rv(LOG_LVL_ERR, p, "C_FindObjects", rv);
        return ST_HSM;
    }
    if (n != 1)
        return n == 0 ? ST_NOTFOUND : ST_INVALID;
    *obj = found[0];
    return ST_OK;
}

/* Read a variable-length attribute into a new buffer (*val, caller frees). */
static int
p11_get_attr(struct signer_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
             CK_ATTRIBUTE_TYPE type, uint8_t **val, size_t *len)
{
    CK_ATTRIBUTE a = {type, NULL, 0};
    CK_RV rv;

    *val = NULL;
    *len = 0;
    rv = p->fn->C_GetAttributeValue(h, obj, &a, 1);
    if (rv == CKR_ATTRIBUTE_TYPE_INVALID || a.ulValueLen == CK_UNAVAILABLE_INFORMATION)
        return ST_NOTFOUND;
    if (rv != CKR_OK) {
        p11_log_rv(LOG_LVL_ERR, p, "C_GetAttributeValue", rv);
        return ST_HSM;
    }
    if ((a.pValue = malloc(a.ulValueLen > 0 ? a.ulValueLen : 1)) == NULL)
        return ST_NOMEM;
    if ((rv = p->fn->C_GetAttributeValue(h, obj, &a, 1)) != CKR_OK) {
        p11_log_rv(LOG_LVL_ERR, p, "C_GetAttributeValue", rv);
        free(a.pValue);
        return ST_HSM;
    }
    *val = a.pValue;
    *len = a.ulValueLen;
    return ST_OK;
}

/* The private key must be of the certificate's key type and allowed to sign. */
static int
p11_check_private(struct signer_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
                  const char *label, int pkey_type)
{
    CK_KEY_TYPE kt = 0;
    CK_BBOOL can_sign = CK_FALSE;
    CK_ATTRIBUTE a[2] = {
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_SIGN, &can_sign, sizeof(can_sign)},
    };
    CK_RV rv;

    if ((rv = p->fn->C_GetAttributeValue(h, obj, a, 2)) != CKR_OK) {
        p11_log_rv(LOG_LVL_ERR, p, "C_GetAttributeValue(CKA_KEY_TYPE, CKA_SIGN)", rv);
        return ST_HSM;
    }
    if ((kt == CKK_EC) != (pkey_type == EVP_PKEY_EC) ||
        (kt == CKK_RSA) != (pkey_type == EVP_PKEY_RSA || pkey_type == EVP_PKEY_RSA_PSS) ||
        (kt != CKK_EC && kt != CKK_RSA)) {
        log_err("pkcs11: token '%s' key '%s': key type %lu does not match the certificate",
                p->token, label, (unsigned long)kt);
        return ST_INVALID;
    }
    if (can_sign != CK_TRUE) {
        log_err("pkcs11: token '%s' key '%s': CKA_SIGN is not set", p->token, label);
        return ST_INVALID;
    }
    return ST_OK;
}

static int
p11_match_rsa(struct signer_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, EVP_PKEY *pub)
{
    BIGNUM *n = NULL;
    uint8_t *mod = NULL, *cert_mod = NULL;
    size_t mod_len = 0, off = 0;
    int cert_len, st;

    if ((st = p11_get_attr(p, h, obj, CKA_MODULUS, &mod, &mod_len)) != ST_OK)
        goto out;
    st = ST_CRYPTO;
    if (EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        (cert_mod = malloc((size_t)BN_num_bytes(n) + 1)) == NULL ||
        (cert_len = BN_bn2bin(n, cert_mod)) <= 0) {
        log_openssl(LOG_LVL_ERR, "pkcs11: reading the certificate's RSA modulus");
        goto out;
    }
    while (off < mod_len && mod[off] == 0)
        off++;
    st = (mod_len - off == (size_t)cert_len && memcmp(mod + off, cert_mod, (size_t)cert_len) == 0)
             ? ST_OK
             : ST_INVALID;
out:
    BN_free(n);
    free(mod);
    free(cert_mod);
    return st;
}

/* CKA_EC_POINT is a DER OCTET STRING around the point (v2.40); some modules give it bare. */
static bool
p11_ec_point_equal(const uint8_t *attr, size_t attr_len, const uint8_t *point, size_t point_len)
{
    ASN1_OCTET_STRING *os = NULL;
    const unsigned char *q = attr;
    bool eq;

    if (attr_len == point_len && memcmp(attr, point, point_len) == 0)
        return true;
    if ((os = d2i_ASN1_OCTET_STRING(NULL, &q, (long)attr_len)) == NULL)
        return false;
    eq = q == attr + attr_len && (size_t)ASN1_STRING_length(os) == point_len &&
         memcmp(ASN1_STRING_get0_data(os), point, point_len) == 0;
    ASN1_OCTET_STRING_free(os);
    return eq;
}

/* The public key object with the private key's label, else the one with its CKA_ID. */
static int
p11_find_ec_public(struct signer_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE priv,
                   const char *label, CK_OBJECT_HANDLE *pub)
{
    uint8_t *id = NULL;
    size_t id_len = 0;
    int st;

    st = p11_find_unique(p, h, CKO_PUBLIC_KEY, CKA_LABEL, label, strlen(label), pub);
    if (st != ST_NOTFOUND)
        return st;
    if ((st = p11_get_attr(p, h, priv, CKA_ID, &id, &id_len)) == ST_OK)
        st = id_len > 0 ? p11_find_unique(p, h, CKO_PUBLIC_KEY, CKA_ID, id, id_len, pub)
                        : ST_NOTFOUND;
    free(id);
    if (st == ST_NOTFOUND)
        log_err("pkcs11: token '%s' key '%s': no public key object with that label or CKA_ID",
                p->token, label);
    return st;
}

static int
p11_match_ec(struct signer_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE priv, const char *label,
             EVP_PKEY *pub)
{
    CK_OBJECT_HANDLE pobj = CK_INVALID_HANDLE;
    uint8_t point[P11_POINT_MAX], *attr = NULL;
    size_t point_len = 0, attr_len = 0;
    int st;

    if (EVP_PKEY_get_octet_string_param(pub, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point),
                                        &point_len) != 1) {
        log_openssl(LOG_LVL_ERR, "pkcs11: reading the certificate's EC point");
        return ST_CRYPTO;
    }
    if (point_len == 0 || point[0] != POINT_CONVERSION_UNCOMPRESSED) {
        log_err("pkcs11: key '%s': only uncompressed EC points are supported", label);
        return ST_INVALID;
    }
    if ((st = p11_find_ec_public(p, h, priv, label, &pobj)) != ST_OK ||
        (st = p11_get_attr(p, h, pobj, CKA_EC_POINT, &attr, &attr_len)) != ST_OK)
        goto out;
    st = p11_ec_point_equal(attr, attr_len, point, point_len) ? ST_OK : ST_INVALID;
out:
    free(attr);
    return st;
}

static int
p11_match_key(struct signer_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, const char *label,
              EVP_PKEY *pub)
{
    int type = EVP_PKEY_get_base_id(pub);
    int st;

    if ((st = p11_check_private(p, h, obj, label, type)) != ST_OK)
        return st;
    st = type == EVP_PKEY_EC ? p11_match_ec(p, h, obj, label, pub) : p11_match_rsa(p, h, obj, pub);
    if (st == ST_INVALID)
        log_err("pkcs11: token '%s' key '%s' does not match the certificate's public key", p->token,
                label);
    return st;
}

static struct p11_key_ref *
p11_key_ref_get(struct signer_p11 *p, CK_OBJECT_HANDLE given)
{
    for (struct p11_key_ref *r = atomic_load(&p->keys); r != NULL; r = r->next)
        if (atomic_load(&r->given) == given)
            return r;
    return NULL;
}

/* Remember the key found as `obj`. A name still taken by another key whose handle changed
 * (after a token reset) is refused rather than made ambiguous. */
static int
p11_key_ref_add(struct signer_p11 *p, const char *label, EVP_PKEY *pub, CK_OBJECT_HANDLE obj)
{
    struct p11_key_ref *r;
    int st = ST_OK;

    pthread_mutex_lock(&p->lock);
    if ((r = p11_key_ref_get(p, obj)) != NULL && r->users == 0 &&
        (atomic_load(&r->cur) != obj || strcmp(r->label, label) != 0 ||
         EVP_PKEY_eq(r->pub, pub) != 1)) {
        /* retired, and its handle now names another key: the node is left behind */
        atomic_store(&r->given, CK_INVALID_HANDLE);
        r = NULL;
    }
    if (r != NULL) {
        r->users++;
        if (atomic_load(&r->cur) != obj || strcmp(r->label, label) != 0 ||
            EVP_PKEY_eq(r->pub, pub) != 1) {
            r->users--;
            log_err("pkcs11: token '%s' key '%s': handle %lu still names key '%s'; restart",
                    p->token, label, (unsigned long)obj, r->label);
            st = ST_INVALID;
        }
        goto out;
    }
    st = ST_NOMEM;
    if ((r = calloc(1, sizeof(*r))) == NULL)
        goto out;
    if ((r->label = strdup(label)) == NULL || EVP_PKEY_up_ref(pub) != 1) {
        free(r->label);
        free(r);
        goto out;
    }
    r->pub = pub;
    r->users = 1;
    atomic_init(&r->given, obj);
    atomic_init(&r->cur, obj);
    r->next = atomic_load(&p->keys);
    atomic_store(&p->keys, r);
    st = ST_OK;
out:
    pthread_mutex_unlock(&p->lock);
    return st;
}

void
signer_p11_forget_key(struct signer_p11 *p, CK_OBJECT_HANDLE obj)
{
    struct p11_key_ref *r;

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    if ((r = p11_key_ref_get(p, obj)) != NULL && r->users > 0)
        r->users--;
    pthread_mutex_unlock(&p->lock);
}

int
signer_p11_find_key(struct signer_p11 *p, const char *label, EVP_PKEY *pub, CK_OBJECT_HANDLE *out)
{
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    CK_RV rv;
    int st = ST_INVALID;

    if (p == NULL || label == NULL || pub == NULL || out == NULL)
        return ST_INVALID;
    pthread_rwlock_rdlock(&p->rw);
    /* a session of our own: the workers' sessions may be busy signing */
    pthread_mutex_lock(&p->lock);
    rv = p11_open_session(p, &h);
    pthread_mutex_unlock(&p->lock);
    if (rv != CKR_OK) {
        p11_log_rv(LOG_LVL_ERR, p, "C_OpenSession", rv);
        st = ST_HSM;
        goto out;
    }
    st = p11_find_unique(p, h, CKO_PRIVATE_KEY, CKA_LABEL, label, strlen(label), &obj);
    if (st == ST_NOTFOUND || st == ST_INVALID)
        log_err("pkcs11: token '%s': %s private key labelled '%s'", p->token,
                st == ST_NOTFOUND ? "no" : "more than one", label);
    if (st == ST_OK && (st = p11_match_key(p, h, obj, label, pub)) == ST_OK &&
        (st = p11_key_ref_add(p, label, pub, obj)) == ST_OK)
        *out = obj;
out:
    if (h != CK_INVALID_HANDLE)
        (void)p->fn->C_CloseSession(h);
    pthread_rwlock_unlock(&p->rw);
    return st;
}

/*
 * C_SignInit + C_Sign into out[0..cap). When the module says the buffer is too small the
 * operation stays active (v2.40 §5.2, §5.11), so it is finished into a scratch buffer and dropped.
 */
static CK_RV
p11_sign_once(struct signer_p11 *p, CK_SESSION_HANDLE h, CK_MECHANISM *mech, CK_OBJECT_HANDLE key,
              const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *out_len)
{
    CK_ULONG n = (CK_ULONG)cap;
    uint8_t *scratch;
    CK_RV rv;

    if ((rv = p->fn->C_SignInit(h, mech, key)) != CKR_OK)
        return rv;
    rv = p->fn->C_Sign(h, (CK_BYTE_PTR)in, (CK_ULONG)in_len, out, &n);
    if (rv == CKR_BUFFER_TOO_SMALL && (scratch = malloc(n)) != NULL) {
        (void)p->fn->C_Sign(h, (CK_BYTE_PTR)in, (CK_ULONG)in_len, scratch, &n);
        free(scratch);
    }
    if (rv == CKR_OK)
        *out_len = (size_t)n;
    return rv;
}

/* Log in again if the token forgot us (a logout, or its last session closed; v2.40 §5.6).
 * Called with the lock held. */
static CK_RV
p11_ensure_login(struct signer_p11 *p, CK_SESSION_HANDLE h)
{
    CK_SESSION_INFO info;
    CK_RV rv;

    if ((rv = p->fn->C_GetSessionInfo(h, &info)) != CKR_OK)
        return rv;
    if (info.state != CKS_RO_PUBLIC_SESSION)
        return CKR_OK;
    log_notice("pkcs11: token '%s': logged out, logging in again", p->token);
    return p11_login(p, h) == ST_OK ? CKR_OK : CKR_USER_NOT_LOGGED_IN;
}

/*
 * Recover session i after `why` (one of p11_rv_reopens): log in again if that is all that was
 * lost, else replace the session. A handle the module already calls invalid is not closed: its
 * number may have been given to another session since.
 */
static CK_RV
p11_reopen(struct signer_p11 *p, unsigned i, CK_RV why)
{
    bool stale = why == CKR_SESSION_HANDLE_INVALID || why == CKR_SESSION_CLOSED;
    CK_RV rv;

    pthread_mutex_lock(&p->lock);
    if (why == CKR_USER_NOT_LOGGED_IN && p->sessions[i] != CK_INVALID_HANDLE &&
        (rv = p11_ensure_login(p, p->sessions[i])) == CKR_OK)
        goto out;
    if (!stale && p->sessions[i] != CK_INVALID_HANDLE)
        (void)p->fn->C_CloseSession(p->sessions[i]);
    rv = p11_open_session(p, &p->sessions[i]);
    if (rv == CKR_SLOT_ID_INVALID || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_REMOVED) {
        /* the token may come back in another slot */
        if (p11_find_slot(p) == ST_OK)
            rv = p11_open_session(p, &p->sessions[i]);
    }
    if (rv == CKR_OK)
        rv = p11_ensure_login(p, p->sessions[i]);
    if (rv == CKR_OK)
        log_notice("pkcs11: token '%s': session %u reopened", p->token, i);
out:
    pthread_mutex_unlock(&p->lock);
    if (rv != CKR_OK)
        p11_log_rv(LOG_LVL_ERR, p, "reopening a session", rv);
    return rv;
}

/* Digest length, hash mechanism and MGF1 variant of each signer_hash; 0s when unknown. */
static size_t
p11_hash_params(enum signer_hash hash, CK_MECHANISM_TYPE *mech, CK_RSA_PKCS_MGF_TYPE *mgf)
{
    switch (hash) {
    case SIGNER_SHA256:
        *mech = CKM_SHA256;
        *mgf = CKG_MGF1_SHA256;
        return 32;
    case SIGNER_SHA384:
        *mech = CKM_SHA384;
        *mgf = CKG_MGF1_SHA384;
        return 48;
    case SIGNER_SHA512:
        *mech = CKM_SHA512;
        *mgf = CKG_MGF1_SHA512;
        return 64;
    default:
        *mech = 0;
        *mgf = 0;
        return 0;
    }
}

/*
 * The mechanism and what goes into C_Sign: the digest itself, or the DigestInfo around it for
 * PKCS#1 v1.5. `pss` must outlive the use of `mech`.
 */
static int
p11_sign_setup(enum signer_scheme scheme, enum signer_hash hash, const uint8_t *digest,
               size_t digest_len, CK_MECHANISM *mech, CK_RSA_PKCS_PSS_PARAMS *pss, uint8_t *in,
               size_t *in_len)
{
    size_t want = p11_hash_params(hash, &pss->hashAlg, &pss->mgf);

    pss->sLen = (CK_ULONG)want;
    memset(mech, 0, sizeof(*mech));
    if (want == 0 || digest_len != want)
        return ST_INVALID;
    switch (scheme) {
    case SIGNER_RSA_PKCS1:
        mech->mechanism = CKM_RSA_PKCS;
        return p11_digest_info(hash, digest, digest_len, in, in_len);
    case SIGNER_RSA_PSS:
        mech->mechanism = CKM_RSA_PKCS_PSS;
        mech->pParameter = pss;
        mech->ulParameterLen = sizeof(*pss);
        break;
    case SIGNER_ECDSA:
        mech->mechanism = CKM_ECDSA;
        break;
    default:
        return ST_INVALID;
    }
    if (digest_len > *in_len)
        return ST_INVALID;
    memcpy(in, digest, digest_len);
    *in_len = digest_len;
    return ST_OK;
}

/* Copy (RSA) or re-encode (ECDSA) the module's signature into the caller's buffer. */
static int
p11_sign_output(enum signer_scheme scheme, const uint8_t *raw, size_t raw_len, uint8_t *sig,
                size_t *sig_len)
{
    if (scheme == SIGNER_ECDSA)
        return p11_ecdsa_der(raw, raw_len, sig, sig_len);
    if (raw_len > *sig_len) {
        log_err("pkcs11: RSA signature of %zu bytes exceeds %zu", raw_len, *sig_len);
        return ST_INVALID;
    }
    memcpy(sig, raw, raw_len);
    *sig_len = raw_len;
    return ST_OK;
}

/* Look the key up again by label on session i, check it against the certificate, and use its
 * new handle from now on. */
static CK_RV
p11_refresh_key(struct signer_p11 *p, unsigned i, struct p11_key_ref *r)
{
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    int st;

    pthread_mutex_lock(&p->lock);
    /* private objects are invisible until we are logged in again */
    st = p11_ensure_login(p, p->sessions[i]) == CKR_OK ? ST_OK : ST_HSM;
    if (st == ST_OK)
        st = p11_find_unique(p, p->sessions[i], CKO_PRIVATE_KEY, CKA_LABEL, r->label,
                             strlen(r->label), &obj);
    if (st == ST_OK && (st = p11_match_key(p, p->sessions[i], obj, r->label, r->pub)) == ST_OK)
        atomic_store(&r->cur, obj);
    pthread_mutex_unlock(&p->lock);
    if (st != ST_OK) {
        log_err("pkcs11: token '%s' key '%s': cannot find it again: %s", p->token, r->label,
                status_str(st));
        return CKR_KEY_HANDLE_INVALID;
    }
    log_notice("pkcs11: token '%s' key '%s': found again as handle %lu", p->token, r->label,
               (unsigned long)obj);
    return CKR_OK;
}

static CK_OBJECT_HANDLE
p11_key_now(struct p11_key_ref *r, CK_OBJECT_HANDLE key)
{
    return r != NULL ? atomic_load(&r->cur) : key;
}

/*
 * Sign on session i, recovering once from a lost session or login (reopen, log in again) and
 * once from a stale key handle (find the key again), so a token that comes back is used again.
 */
static CK_RV
p11_sign_recovering(struct signer_p11 *p, unsigned i, CK_OBJECT_HANDLE key, CK_MECHANISM *mech,
                    const uint8_t *in, size_t in_len, uint8_t *raw, size_t cap, size_t *raw_len)
{
    struct p11_key_ref *r = p11_key_ref_get(p, key);
    CK_RV rv;

    rv = p11_sign_once(p, p->sessions[i], mech, p11_key_now(r, key), in, in_len, raw, cap, raw_len);
    if (p11_rv_reopens(rv)) {
        p11_log_rv(LOG_LVL_WARN, p, "C_SignInit/C_Sign, reopening the session", rv);
        if ((rv = p11_reopen(p, i, rv)) == CKR_OK)
            rv = p11_sign_once(p, p->sessions[i], mech, p11_key_now(r, key), in, in_len, raw, cap,
                               raw_len);
    }
    if ((rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID) && r != NULL) {
        p11_log_rv(LOG_LVL_WARN, p, "C_SignInit/C_Sign, finding the key again", rv);
        if ((rv = p11_refresh_key(p, i, r)) == CKR_OK)
            rv = p11_sign_once(p, p->sessions[i], mech, p11_key_now(r, key), in, in_len, raw, cap,
                               raw_len);
    }
    return rv;
}

/* The errors after which the session could not be replaced that say the device (or the
 * library's connection to it) is gone: worth a re-initialisation of the library. */
static bool
p11_rv_reinit(CK_RV rv)
{
    return rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_SLOT_ID_INVALID ||
           rv == CKR_DEVICE_ERROR || rv == CKR_CRYPTOKI_NOT_INITIALIZED;
}

/*
 * After a removed device: C_Finalize + C_Initialize, find the token's slot again, open every
 * session, log in and find every key again (handles do not survive a re-initialisation, and a
 * handle number may now name another object). Only when this signer initialised the library
 * (another user's library is not ours to finalise), at most once per P11_REINIT_INTERVAL_NS
 * (calls in between fail at once), and only once no other call is inside the module (the
 * exclusive lock, waited for at most P11_REINIT_WAIT_S: a call stuck in the module keeps it).
 */
#define P11_REINIT_INTERVAL_NS 1000000000LL
#define P11_REINIT_WAIT_S 1

static long long
p11_now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static CK_RV
p11_reinit_locked(struct signer_p11 *p)
{
    CK_C_INITIALIZE_ARGS args;
    CK_RV rv;

    atomic_store(&p->need_reinit, true); /* until every key is found again below */
    (void)p->fn->C_Finalize(NULL);
    for (unsigned i = 0; i < p->nsessions; i++)
        p->sessions[i] = CK_INVALID_HANDLE; /* gone with the library's state */
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    if ((rv = p->fn->C_Initialize(&args)) != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
        return rv;
    if (p11_find_slot(p) != ST_OK)
        return CKR_TOKEN_NOT_PRESENT;
    for (unsigned i = 0; i < p->nsessions; i++)
        if ((rv = p11_open_session(p, &p->sessions[i])) != CKR_OK)
            return rv;
    if (p11_login(p, p->sessions[0]) != ST_OK)
        return CKR_USER_NOT_LOGGED_IN;
    for (struct p11_key_ref *r = atomic_load(&p->keys); r != NULL; r = r->next) {
        CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;

        if (r->users == 0 || atomic_load(&r->given) == CK_INVALID_HANDLE)
            continue; /* retired: no key of ours uses it */
        if (p11_find_unique(p, p->sessions[0], CKO_PRIVATE_KEY, CKA_LABEL, r->label,
                            strlen(r->label), &obj) != ST_OK ||
            p11_match_key(p, p->sessions[0], obj, r->label, r->pub) != ST_OK)
            return CKR_KEY_HANDLE_INVALID;
        atomic_store(&r->cur, obj);
    }
    atomic_store(&p->need_reinit, false);
    return CKR_OK;
}

static CK_RV
p11_reinit(struct signer_p11 *p, CK_RV why)
{
    struct timespec until;
    long long now = p11_now_ns(), last = atomic_load(&p->reinit_last);
    CK_RV rv;

    if (!p->finalize || now - last < P11_REINIT_INTERVAL_NS ||
        !atomic_compare_exchange_strong(&p->reinit_last, &last, now))
        return why;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += P11_REINIT_WAIT_S;
    if (pthread_rwlock_timedwrlock(&p->rw, &until) != 0) {
        log_warn("pkcs11: token '%s': cannot re-initialise the module: a call is still inside "
                 "it",
                 p->token);
        return why;
    }
    pthread_mutex_lock(&p->lock);
    rv = p11_reinit_locked(p);
    pthread_mutex_unlock(&p->lock);
    pthread_rwlock_unlock(&p->rw);
    if (rv == CKR_OK)
        log_notice("pkcs11: module %s token '%s': re-initialised after %s (C_Finalize, "
                   "C_Initialize): %u sessions, logged in, keys found again",
                   p->module, p->token, p11_rv_name(why), p->nsessions);
    else
        p11_log_rv(LOG_LVL_ERR, p, "re-initialising the module", rv);
    return rv;
}

/* p11_sign_recovering under the shared lock, and once more after a re-initialisation when
 * the device was gone. After an unfinished re-initialisation only a finished one may sign
 * again: the sessions could be reopened one by one, but a key handle might name another key. */
static CK_RV
p11_sign_reinit(struct signer_p11 *p, unsigned i, CK_OBJECT_HANDLE key, CK_MECHANISM *mech,
                const uint8_t *in, size_t in_len, uint8_t *raw, size_t cap, size_t *raw_len)
{
    CK_RV rv;

    if (atomic_load(&p->need_reinit) && (rv = p11_reinit(p, CKR_DEVICE_REMOVED)) != CKR_OK)
        return rv;
    pthread_rwlock_rdlock(&p->rw);
    rv = p11_sign_recovering(p, i, key, mech, in, in_len, raw, cap, raw_len);
    pthread_rwlock_unlock(&p->rw);
    if (p11_rv_reinit(rv) && p11_reinit(p, rv) == CKR_OK) {
        pthread_rwlock_rdlock(&p->rw);
        rv = p11_sign_recovering(p, i, key, mech, in, in_len, raw, cap, raw_len);
        pthread_rwlock_unlock(&p->rw);
    }
    return rv;
}

int
signer_p11_sign(struct signer_p11 *p, unsigned session, CK_OBJECT_HANDLE key,
                enum signer_scheme scheme, enum signer_hash hash, const uint8_t *digest,
                size_t digest_len, uint8_t *sig, size_t *sig_len)
{
    CK_MECHANISM mech;
    CK_RSA_PKCS_PSS_PARAMS pss;
    uint8_t in[P11_DIGEST_INFO_MAX], raw[SIGNER_MAX_SIG];
    size_t in_len = sizeof(in), raw_len = 0;
    CK_RV rv;
    int st;

    if (p == NULL || session >= p->nsessions || digest == NULL || sig == NULL || sig_len == NULL)
        return ST_INVALID;
    if ((st = p11_sign_setup(scheme, hash, digest, digest_len, &mech, &pss, in, &in_len)) != ST_OK)
        return st;
    rv = p11_sign_reinit(p, session, key, &mech, in, in_len, raw, sizeof(raw), &raw_len);
    if (rv != CKR_OK) {
        p11_log_rv(LOG_LVL_ERR, p, "C_SignInit/C_Sign", rv);
        atomic_store(&p->healthy, false);
        return ST_HSM;
    }
    if ((st = p11_sign_output(scheme, raw, raw_len, sig, sig_len)) != ST_OK)
        return st;
    atomic_store(&p->healthy, true);
    return ST_OK;
}
