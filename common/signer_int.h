/*
 * signer_int: what signer.c shares with its backends (signer_p11.c; software keys in signer.c).
 * Not for use outside common/signer*.c.
 */
#ifndef COMMON_SIGNER_INT_H
#define COMMON_SIGNER_INT_H

#include "common/signer.h"

#include <p11-kit/pkcs11.h>
#include <stdatomic.h>

struct signer_p11;

/* Worker slots: [signer] workers, and as many spares for the workers stuck in a call that the
 * watch thread gave up on (sign_timeout). Each slot has its own PKCS#11 session and software key
 * context, and so have the two probe slots (the test signatures, slots nslots and nslots + 1)
 * and signer_sign_now() (slot nslots + 2): SIGNER_MAX_SESSIONS in all at most. */
#define SIGNER_MAX_SLOTS (2 * SIGNER_MAX_WORKERS)
#define SIGNER_PROBE_SLOTS 2
#define SIGNER_MAX_SESSIONS (SIGNER_MAX_SLOTS + SIGNER_PROBE_SLOTS + 1)

struct signer_key {
    struct signer *owner;
    char name[128]; /* "pkcs11:<label>" or the PEM path, for logs */
    enum signer_scheme scheme;
    enum signer_hash hash;
    int pkey_type;  /* EVP_PKEY_EC or EVP_PKEY_RSA */
    size_t max_sig; /* RSA modulus bytes, or the largest DER ECDSA signature */
    EVP_PKEY *soft; /* software backend: the private key; NULL for PKCS#11 */
    EVP_PKEY *pub;  /* the certificate's public key (own reference) */
    EVP_PKEY_CTX *soft_ctx[SIGNER_MAX_SESSIONS]; /* software backend: one per slot */
    CK_OBJECT_HANDLE p11_obj;                    /* PKCS#11 backend: private key object handle */
    atomic_bool down; /* PKCS#11: its last signature failed or timed out */
    atomic_uint refs; /* signer_key_hold / signer_key_release; 1 when added */
    bool retired;     /* released: off s->keys, freed once no worker holds it (s->lock) */
    atomic_bool token_forgotten; /* its PKCS#11 key is no longer looked for at a re-init */
    uint8_t sigalg[80];          /* DER AlgorithmIdentifier of the signature */
    size_t sigalg_len;
    uint8_t digalg[24]; /* DER AlgorithmIdentifier of the digest */
    size_t digalg_len;
    struct signer_key *next;
};

/*
 * PKCS#11 backend (signer_p11.c).
 *
 * signer_p11_open: dlopen `module`, C_GetFunctionList, C_Initialize (with OS locking),
 * find the slot whose token label equals `token` (labels are blank-padded to 32 bytes in
 * CK_TOKEN_INFO), open `sessions` R/O serial sessions, C_Login(CKU_USER) once with the PIN read
 * from `pin_file` (trailing newline stripped; buffer wiped with OPENSSL_cleanse after login;
 * never logged). NULL on failure, with a clear log line naming module/token/CK_RV.
 */
struct signer_p11 *signer_p11_open(const char *module, const char *token, const char *pin_file,
                                   unsigned sessions);
/* C_Logout, C_CloseAllSessions, C_Finalize, dlclose. NULL-safe. */
void signer_p11_close(struct signer_p11 *p);
/*
 * Find the private key object with CKA_CLASS=CKO_PRIVATE_KEY and CKA_LABEL=label. There must
 * be exactly one. Check it matches `pub` (the certificate's public key): for EC compare the
 * CKA_EC_POINT of the public-key object with the same label (or CKA_ID) against the cert's
 * point; for RSA compare CKA_MODULUS of the private key object with the cert's modulus.
 * ST_NOTFOUND, ST_INVALID (mismatch, or more than one) or ST_HSM.
 */
int signer_p11_find_key(struct signer_p11 *p, const char *label, EVP_PKEY *pub,
                        CK_OBJECT_HANDLE *out);
/* The key found as `obj` is no longer used by this signer key (one fewer user; at none it is
 * not looked for again by a re-initialisation). */
void signer_p11_forget_key(struct signer_p11 *p, CK_OBJECT_HANDLE obj);
/*
 * Sign `digest` with session number `session` (0 <= session < sessions; each session is used
 * by one thread at a time, so no locking is needed here):
 *   SIGNER_ECDSA: CKM_ECDSA on the digest; converts the raw r||s result to a DER
 *                 ECDSA-Sig-Value (SEQUENCE of two minimal positive INTEGERs).
 *   SIGNER_RSA_PKCS1: CKM_RSA_PKCS over DigestInfo(hash OID, digest) built here.
 *   SIGNER_RSA_PSS: CKM_RSA_PKCS_PSS on the digest with CK_RSA_PKCS_PSS_PARAMS
 *                 {hashAlg, CKG_MGF1_<hash>, sLen = digest length}.
 * *sig_len is the capacity in, the length out. ST_OK or ST_HSM (CK_RV logged).
 * On CKR_SESSION_HANDLE_INVALID / CKR_DEVICE_REMOVED / CKR_TOKEN_NOT_PRESENT /
 * CKR_USER_NOT_LOGGED_IN it tries once to reopen that session (and log in again) before
 * failing, so a token that comes back is used again without a restart.
 */
int signer_p11_sign(struct signer_p11 *p, unsigned session, CK_OBJECT_HANDLE key,
                    enum signer_scheme scheme, enum signer_hash hash, const uint8_t *digest,
                    size_t digest_len, uint8_t *sig, size_t *sig_len);
/* false after a sign failure that reopening did not cure, true again after a success. */
bool signer_p11_healthy(struct signer_p11 *p);

#endif
