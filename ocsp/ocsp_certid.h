/*
 * ocsp_certid: the CertID (RFC 6960 §4.1.1) in both directions, side by side: the issuer
 * hashes a CertID is made of (issuerNameHash over the DER subject name of the issuer
 * certificate, issuerKeyHash over its subjectPublicKey BIT STRING contents; OCSP-11), the
 * encoding of the pre-signed forms (SHA-1 and SHA-256, hash algorithm with NULL parameters)
 * and the decoding of a CertID DER back into its parts.
 *
 * Pure functions of their inputs (no store, no responder); thread-safe.
 */
#ifndef OCSP_OCSP_CERTID_H
#define OCSP_OCSP_CERTID_H

#include "ocsp/ocsp_store.h"

#include <openssl/x509.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OCSP_CERTID_MAX 200 /* a SHA-512 CertID with a 20-octet serial is ~170 bytes */

struct ocsp_certid {
    uint8_t der[OCSP_CERTID_MAX]; /* CertID SEQUENCE exactly as received */
    size_t der_len;
    enum ocsp_hash hash; /* 0 when the hash algorithm is not one we serve */
    uint8_t name_hash[64];
    uint8_t key_hash[64];
    size_t hash_len;
    uint8_t serial[OCSP_SERIAL_MAX]; /* INTEGER content octets */
    size_t serial_len;
};

/* Hashes of one issuer for each CertID hash algorithm, index enum ocsp_hash - 1. */
struct ocsp_issuer_hashes {
    uint8_t name[4][64];
    uint8_t key[4][64];
    size_t len[4];
};

/* The digest of a CertID hash algorithm, NULL for another value. */
const EVP_MD *ocsp_hash_md(enum ocsp_hash h);

/* issuerNameHash and issuerKeyHash of an issuer certificate for hash h (OCSP-11), into 64-byte
 * buffers; *len gets the hash length. ST_OK or ST_CRYPTO. */
int ocsp_issuer_hashes_of(X509 *issuer, enum ocsp_hash h, uint8_t name_hash[64],
                          uint8_t key_hash[64], size_t *len);
/* The same for the four algorithms at once. ST_OK or ST_CRYPTO. */
int ocsp_issuer_hashes(X509 *issuer, struct ocsp_issuer_hashes *h);

/* A CertID in a pre-signed form (OCSP_HASH_SHA1 or OCSP_HASH_SHA256, NULL parameters) for an
 * issuer's hashes and a serial (INTEGER content octets): *out gets the DER and its parts.
 * ST_OK, or ST_INVALID (another hash, a serial longer than OCSP_SERIAL_MAX or empty). */
int ocsp_certid_encode(const struct ocsp_issuer_hashes *h, enum ocsp_hash hash,
                       const uint8_t *serial, size_t serial_len, struct ocsp_certid *out);

/* A CertID in any form a stored answer can have (its key's form byte, see below: any hash of
 * enum ocsp_hash, with NULL parameters or, with OCSP_FORM_NOPARAMS, none), as the refresher
 * re-signs it. ST_OK, or ST_INVALID (another form, a serial empty or too long). */
int ocsp_certid_encode_form(const struct ocsp_issuer_hashes *h, uint8_t form, const uint8_t *serial,
                            size_t serial_len, struct ocsp_certid *out);

/* The form byte of a stored answer's key (ocsp_store.h): the CertID's hash, with
 * OCSP_FORM_NOPARAMS when its hash AlgorithmIdentifier has no parameters (the other accepted
 * spelling is a NULL). ocsp_certid_form_der reads it from a CertID DER and its hash; 0 when
 * the DER is not a CertID or hash not one of enum ocsp_hash. */
uint8_t ocsp_certid_form(const struct ocsp_certid *id);
uint8_t ocsp_certid_form_der(const uint8_t *der, size_t len, enum ocsp_hash hash);

/* A CertID DER of a pre-signed form (SHA-1 or SHA-256) back into *out. ST_OK or ST_INVALID. */
int ocsp_certid_decode(const uint8_t *der, size_t len, struct ocsp_certid *out);

#endif
