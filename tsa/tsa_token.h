/*
 * tsa_token: time-stamping units (TSUs) and the DER of their tokens.
 *
 * A TSU is loaded once at start: certificate checks (TSP-24: one critical EKU holding only
 * id-kp-timeStamping; validity; chain), and every constant part of its tokens pre-encoded:
 * policy OID, accuracy, tsa name, extensions (qcStatements with esi4-qtstStatement-1 for a
 * qualified TSU, CIR-01/TPR-12), the SignerIdentifier, the SigningCertificateV2 attribute
 * (ESSCertIDv2 with SHA-256, hashAlgorithm omitted as DER DEFAULT, issuerSerial present;
 * TSP-16), optionally SigningCertificate v1, and the certificate set sent when certReq is true.
 *
 * Per request: TSTInfo (RFC 3161 §2.4.2) -> signedAttrs (RFC 5652 §5.3: content-type,
 * message-digest, signing certificate) -> digest to sign -> SignedData + TimeStampResp.
 *
 * Thread-safety: a loaded unit is read-only except tsa_unit_gen_time(), which is locked.
 */
#ifndef TSA_TSA_TOKEN_H
#define TSA_TSA_TOKEN_H

#include "common/signer.h"
#include "tsa/tsa_config.h"
#include "tsa/tsa_request.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define TSA_SERIAL_LEN 16 /* 127 random bits, positive (TSP-18, DESIGN D5) */
#define TSA_CHAIN_MAX 15  /* CA certificates a TSU chain file may hold */

struct tsa_unit {
    const struct tsa_unit_config *cfg;
    X509 *cert;
    STACK_OF(X509) * chain;
    struct signer_key *key;
    time_t key_not_before; /* start of the key's use: cert notBefore or PKUP notBefore */
    time_t key_not_after;  /* end of the key's use: cert notAfter or PKUP notAfter (TSA-09) */
    uint8_t policy[64];    /* OBJECT IDENTIFIER TLV */
    size_t policy_len;
    uint8_t accuracy[24]; /* Accuracy SEQUENCE */
    size_t accuracy_len;
    unsigned frac_digits; /* genTime fraction digits needed by the accuracy (TPR-03) */
    double resolution;    /* 10^-frac_digits: the genTime truncation, seconds */
    double max_error;     /* clock bound it can accept: accuracy less the truncation */
    uint8_t *tsa_name;    /* [0] { directoryName [4] { Name } }, or NULL */
    size_t tsa_name_len;
    uint8_t *extensions; /* [1] Extensions, or NULL */
    size_t extensions_len;
    uint8_t *certs; /* [0] IMPLICIT CertificateSet: TSU cert + chain */
    size_t certs_len;
    uint8_t *sid; /* IssuerAndSerialNumber */
    size_t sid_len;
    uint8_t *sig_cert_attr; /* Attribute signingCertificateV2 */
    size_t sig_cert_attr_len;
    uint8_t *sig_cert_v1_attr; /* Attribute signingCertificate, or NULL */
    size_t sig_cert_v1_attr_len;
    uint8_t cert_sha256[32];
    pthread_mutex_t lock;
    struct timespec last_gen; /* genTime never goes backwards within a TSU (DESIGN D3) */
};

/* Load certificate and chain, check them, pre-encode the constant parts. The signing key is
 * attached by the caller (unit->key). ST_OK or ST_CONFIG (reason logged). */
int tsa_unit_load(struct tsa_unit *u, const struct tsa_unit_config *cfg);
/* Free what tsa_unit_load() allocated. NULL-safe. */
void tsa_unit_clear(struct tsa_unit *u);
/* Check a TSU certificate alone: one extendedKeyUsage, critical, only id-kp-timeStamping
 * (TSP-24). Returns NULL when fine, else a static reason. */
const char *tsa_cert_check_eku(X509 *cert);
/* Check that a TSU certificate cannot issue certificates or CRLs (RFC 3161 §2.3: time-stamping
 * keys are kept apart from certificate-issuing keys; issue 8): no basicConstraints CA:TRUE,
 * no keyCertSign or cRLSign in keyUsage. Returns NULL when fine, else a static reason. */
const char *tsa_cert_check_not_ca(X509 *cert);

/* genTime for a new token: `now`, never earlier than the unit's previous genTime. Returns
 * false when `now` is earlier than that by more than the genTime resolution: the clock went
 * back, and a clamped genTime would be outside the token's accuracy (no token then). */
bool tsa_unit_gen_time(struct tsa_unit *u, const struct timespec *now, struct timespec *out);
/* The same with u->lock already held: a caller that reads the clock under the lock too gives
 * concurrent requests genTimes in the order they read the clock. */
bool tsa_unit_gen_time_locked(struct tsa_unit *u, const struct timespec *now, struct timespec *out);
/* With the key attached: build the largest token this unit can be asked for (SHA-512 imprint,
 * 128-octet nonce) to prove at start that it fits (no failure at the first request). */
int tsa_unit_selftest(const struct tsa_unit *u);

/* The next serial number: positive, 127 bits, never repeated within the process (a keyed
 * pseudorandom permutation of a counter, key from the OS CSPRNG; see tsa_token.c). Thread-safe.
 * ST_OK or ST_CRYPTO. */
int tsa_serial_new(uint8_t serial[TSA_SERIAL_LEN]);

/* A token being built, from TSTInfo to the signature input. */
struct tsa_token {
    uint8_t serial[TSA_SERIAL_LEN];
    struct timespec gen_time;
    uint8_t tstinfo[2048];
    size_t tstinfo_len;
    uint8_t signed_attrs[2048]; /* DER SET OF Attribute (tag 0x31): what the signature covers */
    size_t signed_attrs_len;
};

/* Build TSTInfo and signedAttrs and the digest to sign (into digest, *digest_len).
 * ST_OK or ST_INVALID. */
int tsa_token_prepare(const struct tsa_unit *u, const struct tsa_request *req, struct tsa_token *t,
                      uint8_t *digest, size_t *digest_len);

/* Assemble the granted TimeStampResp around the signature. *out is malloc()ed (caller frees).
 * ST_OK or ST_NOMEM. */
int tsa_token_response(const struct tsa_unit *u, const struct tsa_request *req,
                       const struct tsa_token *t, const uint8_t *sig, size_t sig_len, uint8_t **out,
                       size_t *out_len);

/* A rejection TimeStampResp: status rejection(2), statusString `text`, failInfo bit `fail`,
 * no token (TSP-03). Writes into buf (cap bytes, 512 is always enough); returns the length,
 * 0 on failure. */
size_t tsa_rejection(enum tsa_fail fail, const char *text, uint8_t *buf, size_t cap);

#endif
