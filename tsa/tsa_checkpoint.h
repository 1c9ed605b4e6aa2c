/*
 * tsa_checkpoint: signed checkpoints of tsad's audit chain (issue 9 item 3; STANDARDS EID-11,
 * EID-12, EID-18).
 *
 * Every [audit] checkpoint_interval seconds (and once at a clean stop) a thread of its own
 * reads the chain's head from the audit store (the last record's sequence number K and the
 * SHA-256 H of its stored bytes), signs it with the audit key (a key of its own in the token,
 * never a TSU key: refused by the config and by comparing public keys here) through the
 * signer's out-of-queue slot (signer_sign_now), and appends the checkpoint as a record of the
 * chain itself. Nothing is written when no record came since the last checkpoint.
 *
 * The signed bytes (the digest of them, with [audit] digest) are the text
 *   "tsad-audit-checkpoint v1\nnode=NODE\nseq=K\nhead=H\ntime=TIME\n"
 * (H in lower-case hex, TIME as in the record), and the record (before sealing, chain.h) is
 *   {"v":1,"type":"checkpoint","time":"2026-01-02T03:04:05.678901Z","covers_seq":K,
 *    "covers_head":"H","key":"LABEL","cert_sha256":"<SHA-256 of the audit certificate, DER>",
 *    "sig_alg":"ecdsa|rsa-pkcs1|rsa-pss","digest":"sha256|sha384|sha512","sig":"<hex>"}
 * (ECDSA signatures DER-encoded; RSA-PSS with salt = digest length).
 */
#ifndef TSA_TSA_CHECKPOINT_H
#define TSA_TSA_CHECKPOINT_H

#include "common/commit.h"
#include "common/journal.h"
#include "common/signer.h"
#include "tsa/tsa_config.h"

#include <openssl/x509.h>

struct tsa_checkpoint;

/* Add the audit key to the signer (before signer_start). *out NULL when [audit] has no key
 * (no checkpoints). ST_CONFIG when the key cannot be loaded or is one of the TSU
 * certificates' keys (tsu_certs, n). */
int tsa_checkpoint_new(const struct tsa_audit_config *ac, struct signer *sg, X509 *const *tsu_certs,
                       size_t n, struct tsa_checkpoint **out);
/* Whether `cert` certifies the audit key (a TSU refused at start and at a reload); false
 * when there is no audit key (c NULL). */
bool tsa_checkpoint_is_audit_key(const struct tsa_checkpoint *c, X509 *cert);
/* Start the thread: records go to the journal when there is one, else the pipeline. */
int tsa_checkpoint_start(struct tsa_checkpoint *c, struct store *st, int db, struct journal *jn,
                         struct commit *cm);
/* Write one checkpoint now (if anything is new); ST_OK, or why not. */
int tsa_checkpoint_now(struct tsa_checkpoint *c);
/* A last checkpoint, stop, free. Before the signer and the journal go. NULL-safe. */
void tsa_checkpoint_free(struct tsa_checkpoint *c);

/* The bytes a checkpoint signs (see above) into buf; its length, 0 when it does not fit. */
size_t tsa_checkpoint_tbs(char *buf, size_t cap, const char *node, uint64_t seq,
                          const char *head_hex, const char *time);

#endif
