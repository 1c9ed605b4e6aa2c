/*
 * ocsp_presign: sign, in batches, the response of every known certificate of one issuer (or
 * of all) and store them (DESIGN D6; RFC 9919 §2.2.1 pre-produced responses). Used by
 * `ocspctl presign` and by ocspd's refresher. Pre-signed CertID forms: SHA-1 and SHA-256 with
 * NULL hash parameters (what OpenSSL and most clients send); other forms are signed on demand
 * and then stored too. Certificates whose notAfter is past are skipped (signed on demand; `ocspctl
 * purge --answers` drops their stored answers). Each chunk of answers is written in key order,
 * appended while past the last stored key (ocsp_responder_presign).
 */
#ifndef OCSP_OCSP_PRESIGN_H
#define OCSP_OCSP_PRESIGN_H

#include "ocsp/ocsp_config.h"
#include "ocsp/ocsp_store.h"

#include <stddef.h>

/* Open the signer from cfg ([signer]), load the issuer(s) and pre-sign. `issuer_name` NULL
 * means every issuer. *count gets the number of responses stored, *expired the number of
 * certificates skipped because they have expired. ST_OK, ST_FULL when it
 * stopped at the store's fill level (DESIGN D10: the space above is kept for revocations and
 * holds), or another ST_* code (reason logged). */
int ocsp_presign_run(const struct ocsp_config *cfg, struct ocsp_store *st, const char *issuer_name,
                     size_t *count, size_t *expired);

#endif
