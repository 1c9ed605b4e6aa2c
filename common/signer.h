/*
 * signer: one signing interface, two backends (DESIGN D1, D2).
 *
 *  - PKCS#11 (signer_p11.c): the module named in the config is dlopen()ed, the token is found
 *    by label, the user PIN is read from a file and wiped after C_Login; each worker thread
 *    owns one session. ECDSA (CKM_ECDSA on a digest we computed; the raw r||s result is
 *    re-encoded as a DER ECDSA-Sig-Value), RSA PKCS#1 v1.5 (CKM_RSA_PKCS over a DigestInfo we
 *    built) and RSA-PSS (CKM_RSA_PKCS_PSS on the digest, salt length = digest length).
 *  - software key (in signer.c): a PEM private key through OpenSSL EVP, for development and
 *    benchmarks.
 *
 * Callers hand jobs to a bounded queue; worker threads drain it in batches (each takes a fair
 * share of the queue, at most batch_max, so that every worker and HSM session gets work) and
 * call the owner's batch callback once per batch, on the worker thread, after every job of
 * the batch has its signature (or its error). That is where the caller finishes the DER
 * envelope and hands each result on: to the commit pipeline (common/commit.h, the journal)
 * for whatever must be stored, and to the suspended connection when its reply may leave.
 *
 * A batch callback does no I/O and never waits: no write transaction, no disk, no lock held
 * by another process, no network. It runs on a worker that owns an HSM session; every
 * millisecond it spends there is a millisecond that session does not sign (DESIGN D2, D10).
 * Each worker owns a liveness beat (common/live) that is busy while it signs a batch and
 * runs its callback: a worker stuck in C_Sign stops the watchdog pings.
 *
 * A signature that does not come back (a hung C_Sign, an HSM that stopped answering) never
 * holds a request for ever: a job still queued or being signed `sign_timeout` after it was
 * submitted is completed by the signer's watch thread with ST_TIMEOUT, through the batch
 * callback like any other (so a callback may run on that thread too); whatever the stuck call
 * returns later is dropped. Workers sign from a copy of the job's input and write the result
 * back only if the job has not been completed meanwhile, so the caller may free a job as soon
 * as its callback ran. A full queue answers ST_BUSY at once.
 *
 * A hung token stalls only its own keys: a worker whose call has been inside the module for
 * sign_timeout is left to it (hung) and a spare worker, with its own PKCS#11 session, takes its
 * place, so that the other keys (software keys) are signed at their normal speed; every key of
 * the token is down from then on (its jobs fail at once instead of hanging more workers).
 * Until then (sign_timeout) the jobs queued behind the stuck workers wait, and may time out
 * too. A hung worker keeps its slot (2 x `workers` slots) until its call comes back, then leaves
 * the pool (or takes jobs again if no spare could replace it); its beat stays busy while it is
 * stuck, so the watchdog semantics are unchanged. A token that comes back and hangs again
 * could take every slot: a call into the token is admitted only while, should every call in it
 * hang, a slot would be left for a worker taking jobs; a job refused so fails at once (ST_HSM)
 * and key files are always signed. A round of the watch thread far later than its tick (less the
 * time it spent in batch callbacks, which is no pause) means the process did not run (a paused VM):
 * the calls in the module are timed from then on.
 *
 * Health (DESIGN D8): a token key whose signature fails (ST_HSM, after the backend's own
 * recovery) or times out is down, and up again after a success, each change logged as an
 * audit event (`hsm_unavailable` with the key and the reason, `hsm_available`); the signer is
 * healthy while no key is down and a call into the token could be admitted (not while the calls
 * stuck in it hold every slot but the key files' one). Jobs for a down key fail at once (ST_HSM)
 * without calling the module: a broken HSM is neither hammered nor logged about once per request.
 * Instead the watch thread asks for a test signature with a down key every second (round robin;
 * after one that worked, the next down key at once), so
 * a key comes back when the token answers again, even when no request arrives (a load balancer that
 * took the node out of rotation). Each is made by a thread of its own, one at a time, on one of
 * two probe sessions: one that hangs holds no worker, and is given up after sign_timeout so
 * that the next goes to the other session (a call lost for good must not keep the keys down
 * once the token answers again). The PKCS#11 backend itself recovers sessions, the login and, after
 * a removed device, the whole library (signer_int.h). Metrics: signer_timeouts_total,
 * signer_hsm_failures_total, signer_keys_down, signer_workers_hung.
 *
 * Lifetimes: a struct signer_key belongs to its struct signer and lives until signer_free(),
 * or until its last reference is released (signer_key_release).
 * A job is owned by the caller; the signer only borrows it between signer_submit() and the
 * batch callback that carries it.
 */
#ifndef COMMON_SIGNER_H
#define COMMON_SIGNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#define SIGNER_MAX_DIGEST 64
#define SIGNER_MAX_SIG 1024   /* RSA-8192 or a DER ECDSA signature */
#define SIGNER_MAX_WORKERS 64 /* [signer] workers bound; slots: 2 x workers (spares) */

/* Signature schemes. The hash is the one the caller digests the signed bytes with. */
enum signer_scheme {
    SIGNER_ECDSA = 1,     /* ECDSA, DER-encoded signature */
    SIGNER_RSA_PKCS1 = 2, /* RSASSA-PKCS1-v1_5 */
    SIGNER_RSA_PSS = 3    /* RSASSA-PSS, MGF1 with the same hash, salt = hash length */
};

enum signer_hash { SIGNER_SHA256 = 1, SIGNER_SHA384 = 2, SIGNER_SHA512 = 3 };

struct signer_key;
struct signer;

struct signer_job {
    /* in */
    struct signer_key *key;
    uint8_t digest[SIGNER_MAX_DIGEST]; /* hash of the to-be-signed bytes, with the key's hash */
    size_t digest_len;
    void *user; /* caller's context, untouched */
    /* out, valid in the batch callback */
    int status; /* ST_OK or a negative ST_* code */
    uint8_t sig[SIGNER_MAX_SIG];
    size_t sig_len;
    /* private to the signer */
    struct signer_job *next;
    long long submitted_ns; /* CLOCK_MONOTONIC, for sign_timeout */
    bool done;              /* a worker wrote the result (under the signer's lock) */
};

/* Called on a worker thread with every job of one batch (n >= 1), in queue order. No I/O. */
typedef void (*signer_batch_fn)(struct signer_job **jobs, size_t n, void *ctx);

struct signer_config {
    /* PKCS#11 backend; module NULL means "no token configured" (software keys only) */
    const char *p11_module;   /* path of the PKCS#11 module (.so) */
    const char *p11_token;    /* token label */
    const char *p11_pin_file; /* file holding the user PIN */
    unsigned workers;         /* worker threads; 0 -> number of CPUs. PKCS#11 sessions: 2 x workers
                                 (spares for hung calls) + 3 (2 probes, signer_sign_now) */
    unsigned queue_max;       /* bounded queue: submit beyond this answers ST_BUSY */
    unsigned batch_max;       /* most jobs one worker takes per wake-up */
    double sign_timeout;      /* seconds; a job not signed by then completes ST_TIMEOUT (5) */
};

/* Fill a signer_config from the [signer] section (no module configured -> NULL). */
void signer_config_init(struct signer_config *sc, const struct config_signer *cs);

/* Create the signer (loads and logs in to the PKCS#11 token if configured). Workers are not
 * started until signer_start(). NULL on failure, with the reason logged. */
struct signer *signer_new(const struct signer_config *cfg, signer_batch_fn batch, void *ctx);

/* Add a key held in the token: private key object with CKA_LABEL = label (and public key or
 * certificate to learn its type). `cert` (borrowed) must hold the matching public key: checked.
 * The scheme/hash pair is validated against the key type (ECDSA needs an EC key, RSA schemes an
 * RSA key of 2048..4096 bits... ). Returns NULL on failure (logged). */
struct signer_key *signer_add_p11_key(struct signer *s, const char *label, X509 *cert,
                                      enum signer_scheme scheme, enum signer_hash hash);
/* Add a software key read from a PEM file; same checks. */
struct signer_key *signer_add_soft_key(struct signer *s, const char *pem_path, X509 *cert,
                                       enum signer_scheme scheme, enum signer_hash hash);

/* Reference counting of keys, for a set of keys replaced while the signer runs (issue 9 item
 * 4, reload): a key is added with one reference; signer_key_hold() takes another (a new set
 * that keeps the key), signer_key_release() drops one. At the last one the key leaves the
 * signer (no new job may name it; the caller makes sure none will) and is freed as soon as no
 * queued job, worker (a stuck C_Sign already answered by sign_timeout) or probe holds it; its
 * PKCS#11 key is then no longer looked for when the module is re-initialised. A released key
 * that was down no longer makes the signer unhealthy. */
void signer_key_hold(struct signer_key *k);
void signer_key_release(struct signer *s, struct signer_key *k);
/* A key replaced but kept (ocspd keeps a replaced issuer's key for answers in flight): it
 * still signs, but a re-initialisation of the PKCS#11 module no longer needs to find it (the
 * operator may delete it from the token after a rollover). */
void signer_key_forget_token(struct signer *s, struct signer_key *k);

/* Start the worker threads. Each worker signs a test digest with every key first (a key that
 * cannot sign is an error at start, not at the first request). */
int signer_start(struct signer *s);
/* Stop workers (pending jobs complete with ST_SHUTDOWN) and free everything. NULL-safe. */
void signer_free(struct signer *s);

/* Queue a job. ST_OK, ST_BUSY when the queue is full, ST_SHUTDOWN when stopping. */
int signer_submit(struct signer *s, struct signer_job *job);
/* Sign on the calling thread, outside the queue (self-tests, tsad's audit checkpoints, tools).
 * Thread-safe: one call at a time, on a session of its own. No sign_timeout here: a call that
 * hangs holds its caller (and the next) until it returns, with the liveness beat "signer:now"
 * busy meanwhile, so the watchdog restarts a daemon whose call never returns. */
int signer_sign_now(struct signer *s, struct signer_job *job);

/* Key properties. */
enum signer_scheme signer_key_scheme(const struct signer_key *k);
/* The longest signature the key makes: RSA modulus bytes, or the largest DER ECDSA
 * signature of its curve (a signature is often 1 or 2 bytes shorter). */
size_t signer_key_max_sig(const struct signer_key *k);
enum signer_hash signer_key_hash(const struct signer_key *k);
const EVP_MD *signer_key_md(const struct signer_key *k);
/* A digest fetched once for the process (use it instead of EVP_sha256() on hot paths: OpenSSL 3
 * fetches the legacy ones again on every use). Never NULL. */
const EVP_MD *signer_hash_md(enum signer_hash h);
/* DER AlgorithmIdentifier of the signature (e.g. ecdsa-with-SHA256, sha256WithRSAEncryption,
 * RSASSA-PSS with its parameters). Borrowed, lives with the key. */
const uint8_t *signer_key_sigalg_der(const struct signer_key *k, size_t *len);
/* DER AlgorithmIdentifier of the digest (e.g. id-sha256, parameters absent). Borrowed. */
const uint8_t *signer_key_digestalg_der(const struct signer_key *k, size_t *len);
const char *signer_key_name(const struct signer_key *k);

/* Health and metrics. */
bool signer_healthy(struct signer *s);
unsigned signer_queue_depth(struct signer *s);

/* true once a PKCS#11 token of this process refused the PIN (CKR_PIN_INCORRECT, _LOCKED,
 * _EXPIRED, _INVALID, _LEN_RANGE): the daemon exits with DAEMON_EXIT_PIN rather than being
 * restarted into the same refusal (each attempt counts toward locking the token). */
bool signer_pin_refused(void);

/* Parse "ecdsa", "rsa-pkcs1", "rsa-pss" / "sha256", "sha384", "sha512"; -1 when unknown. */
int signer_scheme_parse(const char *name);
int signer_hash_parse(const char *name);
size_t signer_hash_len(enum signer_hash h);

#endif
