/*
 * check_signer: unit suite of common/signer's queue and batching (DESIGN D2), with a software
 * P-256 key made for the test (the PKCS#11 backend has check_signer_p11): batch sizes (a fair
 * share of the queue per worker, at most batch_max), callbacks in queue order, ST_BUSY
 * back-pressure with queue_max = 1, ST_SHUTDOWN for jobs still queued when the signer is
 * freed, signatures that verify, ST_TIMEOUT for jobs still queued after sign_timeout; RSA
 * key sizes (ALG-03).
 */
#include "common/log.h"
#include "common/signer.h"
#include "common/status.h"

#include <check.h>
#include <fcntl.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], key_path[128];
static X509 *cert;

static void
setup(void)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509_NAME *name;
    FILE *f;

    snprintf(dir, sizeof(dir), "/tmp/check_signer.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
    ck_assert_ptr_nonnull(pk);
    f = fopen(key_path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    cert = X509_new();
    ck_assert_ptr_nonnull(cert);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_set_pubkey(cert, pk);
    ck_assert_int_gt(X509_sign(cert, pk, EVP_sha256()), 0);
    EVP_PKEY_free(pk);
}

static void
teardown(void)
{
    X509_free(cert);
    unlink(key_path);
    rmdir(dir);
}

/* A batch callback that records batches and can be held (to keep a worker busy). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool hold, in_callback;
static size_t batches, max_batch, done_count;
static int order[4096];
static int statuses[4096];

static void
on_batch(struct signer_job **jobs, size_t n, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&lock);
    in_callback = true;
    pthread_cond_broadcast(&cond);
    while (hold && jobs[0]->status != ST_TIMEOUT) /* the watch thread is never held */
        pthread_cond_wait(&cond, &lock);
    batches++;
    if (n > max_batch)
        max_batch = n;
    for (size_t i = 0; i < n; i++) {
        int id = (int)(intptr_t)jobs[i]->user;

        order[done_count] = id;
        statuses[id] = jobs[i]->status;
        done_count++;
    }
    in_callback = false;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

/* Hold the batch callback (a worker stays busy in it) or release it. */
static void
set_hold(bool on)
{
    pthread_mutex_lock(&lock);
    hold = on;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

static void
reset(void)
{
    pthread_mutex_lock(&lock);
    hold = in_callback = false;
    batches = max_batch = done_count = 0;
    memset(statuses, 0x7f, sizeof(statuses));
    pthread_mutex_unlock(&lock);
}

static struct signer *
new_signer_timeout(unsigned workers, unsigned queue_max, unsigned batch_max, double timeout,
                   struct signer_key **k)
{
    struct signer_config sc = {.workers = workers,
                               .queue_max = queue_max,
                               .batch_max = batch_max,
                               .sign_timeout = timeout};
    struct signer *s = signer_new(&sc, on_batch, NULL);

    ck_assert_ptr_nonnull(s);
    *k = signer_add_soft_key(s, key_path, cert, SIGNER_ECDSA, SIGNER_SHA256);
    ck_assert_ptr_nonnull(*k);
    return s;
}

static struct signer *
new_signer(unsigned workers, unsigned queue_max, unsigned batch_max, struct signer_key **k)
{
    return new_signer_timeout(workers, queue_max, batch_max, 0, k);
}

static void
job_init(struct signer_job *j, struct signer_key *k, int id)
{
    memset(j, 0, sizeof(*j));
    j->key = k;
    j->digest_len = 32;
    memset(j->digest, id & 0xff, 32);
    j->user = (void *)(intptr_t)id;
}

static void
wait_done(size_t n)
{
    pthread_mutex_lock(&lock);
    while (done_count < n)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
}

static void
wait_in_callback(void)
{
    pthread_mutex_lock(&lock);
    while (!in_callback)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
}

START_TEST(test_order_and_verify)
{
    static struct signer_job jobs[200];
    struct signer_key *k;
    struct signer *s;
    EVP_PKEY_CTX *vc;

    reset();
    s = new_signer(1, 1000, 64, &k);
    set_hold(true);
    ck_assert_int_eq(signer_start(s), ST_OK);
    for (int i = 0; i < 200; i++) {
        job_init(&jobs[i], k, i);
        ck_assert_int_eq(signer_submit(s, &jobs[i]), ST_OK);
    }
    set_hold(false);
    wait_done(200);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(order[i], i); /* one worker: queue order */
    ck_assert_uint_le(max_batch, 64);
    vc = EVP_PKEY_CTX_new(X509_get0_pubkey(cert), NULL);
    ck_assert_int_eq(EVP_PKEY_verify_init(vc), 1);
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(statuses[i], ST_OK);
        ck_assert_int_eq(EVP_PKEY_verify(vc, jobs[i].sig, jobs[i].sig_len, jobs[i].digest, 32), 1);
    }
    EVP_PKEY_CTX_free(vc);
    signer_free(s);
}
END_TEST

START_TEST(test_fair_share)
{
    /* 64 jobs queued for 2 idle workers: neither takes more than its half */
    static struct signer_job jobs[64];
    struct signer_key *k;
    struct signer *s;

    reset();
    s = new_signer(2, 1000, 64, &k);
    ck_assert_int_eq(signer_start(s), ST_OK);
    /* queue all 64 while both workers are parked in a held callback */
    set_hold(true);
    job_init(&jobs[0], k, 0);
    job_init(&jobs[1], k, 1);
    ck_assert_int_eq(signer_submit(s, &jobs[0]), ST_OK);
    wait_in_callback();
    ck_assert_int_eq(signer_submit(s, &jobs[1]), ST_OK);
    usleep(50000); /* the second worker takes job 1 and waits in the callback too */
    for (int i = 2; i < 64; i++) {
        job_init(&jobs[i], k, i);
        ck_assert_int_eq(signer_submit(s, &jobs[i]), ST_OK);
    }
    set_hold(false);
    wait_done(64);
    ck_assert_uint_le(max_batch, 31); /* 62 queued, 2 workers: at most 31 each */
    ck_assert_uint_ge(batches, 4);
    signer_free(s);
}
END_TEST

START_TEST(test_busy_with_queue_max_1)
{
    static struct signer_job jobs[3];
    struct signer_key *k;
    struct signer *s;

    reset();
    s = new_signer(1, 1, 64, &k);
    ck_assert_int_eq(signer_start(s), ST_OK);
    set_hold(true);
    for (int i = 0; i < 3; i++)
        job_init(&jobs[i], k, i);
    ck_assert_int_eq(signer_submit(s, &jobs[0]), ST_OK);
    wait_in_callback();                                    /* the worker holds job 0 */
    ck_assert_int_eq(signer_submit(s, &jobs[1]), ST_OK);   /* the one queue place */
    ck_assert_int_eq(signer_submit(s, &jobs[2]), ST_BUSY); /* back-pressure */
    ck_assert_uint_eq(signer_queue_depth(s), 1);
    set_hold(false);
    wait_done(2);
    ck_assert_int_eq(statuses[0], ST_OK);
    ck_assert_int_eq(statuses[1], ST_OK);
    ck_assert_int_eq(statuses[2], 0x7f7f7f7f); /* never called back */
    signer_free(s);
}
END_TEST

START_TEST(test_timeout_queued)
{
    /* issue 8: the only worker is stuck (here in its callback, as it would be in a C_Sign that
     * does not return): the jobs queued behind it complete with ST_TIMEOUT after sign_timeout,
     * unsigned, through the callback on the watch thread; the stuck one completes normally when
     * it returns, and the signer keeps working */
    static struct signer_job jobs[6];
    struct signer_key *k;
    struct signer *s;

    reset();
    s = new_signer_timeout(1, 100, 64, 0.2, &k);
    ck_assert_int_eq(signer_start(s), ST_OK);
    set_hold(true);
    for (int i = 0; i < 6; i++)
        job_init(&jobs[i], k, i);
    ck_assert_int_eq(signer_submit(s, &jobs[0]), ST_OK);
    wait_in_callback();
    for (int i = 1; i < 5; i++)
        ck_assert_int_eq(signer_submit(s, &jobs[i]), ST_OK);
    wait_done(4); /* while the worker is still held */
    pthread_mutex_lock(&lock);
    ck_assert(hold);
    pthread_mutex_unlock(&lock);
    ck_assert_uint_eq(signer_queue_depth(s), 0);
    for (int i = 1; i < 5; i++) {
        ck_assert_int_eq(statuses[i], ST_TIMEOUT);
        ck_assert_uint_eq(jobs[i].sig_len, 0);
    }
    set_hold(false);
    wait_done(5);
    ck_assert_int_eq(statuses[0], ST_OK);
    ck_assert_int_eq(signer_submit(s, &jobs[5]), ST_OK);
    wait_done(6);
    ck_assert_int_eq(statuses[5], ST_OK);
    ck_assert(signer_healthy(s)); /* a software key says nothing about an HSM */
    signer_free(s);
}
END_TEST

static void *
free_signer(void *arg)
{
    signer_free(arg);
    return NULL;
}

START_TEST(test_shutdown_pending)
{
    /* jobs still queued when the signer is freed complete with ST_SHUTDOWN, unsigned */
    static struct signer_job jobs[10], late;
    struct signer_key *k;
    struct signer *s;
    pthread_t t;

    reset();
    s = new_signer(1, 100, 64, &k);
    ck_assert_int_eq(signer_start(s), ST_OK);
    set_hold(true);
    for (int i = 0; i < 10; i++)
        job_init(&jobs[i], k, i);
    ck_assert_int_eq(signer_submit(s, &jobs[0]), ST_OK);
    wait_in_callback();
    for (int i = 1; i < 10; i++)
        ck_assert_int_eq(signer_submit(s, &jobs[i]), ST_OK);
    ck_assert_int_eq(pthread_create(&t, NULL, free_signer, s), 0);
    usleep(50000); /* signer_free has marked it stopping and waits for the worker */
    job_init(&late, k, 99);
    ck_assert_int_eq(signer_submit(s, &late), ST_SHUTDOWN);
    set_hold(false);
    pthread_join(t, NULL);
    ck_assert_uint_eq(done_count, 10);
    ck_assert_int_eq(statuses[0], ST_OK);
    for (int i = 1; i < 10; i++) {
        ck_assert_int_eq(statuses[i], ST_SHUTDOWN);
        ck_assert_uint_eq(jobs[i].sig_len, 0);
    }
}
END_TEST

/* An RSA key of `bits` in DIR/rsa.pem and a self-signed certificate for it. */
static X509 *
rsa_key_and_cert(unsigned bits, char *path, size_t cap)
{
    EVP_PKEY *pk = EVP_RSA_gen(bits);
    X509 *c = X509_new();
    FILE *f;

    ck_assert_ptr_nonnull(pk);
    ck_assert_ptr_nonnull(c);
    snprintf(path, cap, "%s/rsa%u.pem", dir, bits);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), 2);
    X509_gmtime_adj(X509_getm_notBefore(c), 0);
    X509_gmtime_adj(X509_getm_notAfter(c), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_ASC,
                               (const unsigned char *)"rsa", -1, -1, 0);
    X509_set_issuer_name(c, X509_get_subject_name(c));
    X509_set_pubkey(c, pk);
    ck_assert_int_gt(X509_sign(c, pk, EVP_sha256()), 0);
    EVP_PKEY_free(pk);
    return c;
}

/* Add the key of `bits` with stderr (the log) captured into `log`; whether it was accepted. */
static bool
add_rsa_logged(struct signer *s, unsigned bits, char *log, size_t cap)
{
    char path[160], logpath[160];
    X509 *c = rsa_key_and_cert(bits, path, sizeof(path));
    int saved = dup(STDERR_FILENO), fd;
    struct signer_key *k;
    ssize_t n;

    snprintf(logpath, sizeof(logpath), "%s/log%u", dir, bits);
    fd = open(logpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    k = signer_add_soft_key(s, path, c, SIGNER_RSA_PKCS1, SIGNER_SHA256);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = pread(fd, log, cap - 1, 0);
    log[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(logpath);
    unlink(path);
    X509_free(c);
    return k != NULL;
}

/* ALG-03 (ETSI TS 119 312 §8.4): RSA below 2048 bits is refused; 2048..2999 is accepted as
 * legacy, with a warning; 3072 without one. */
START_TEST(test_rsa_key_sizes)
{
    struct signer_config sc = {.workers = 1, .queue_max = 4, .batch_max = 1};
    struct signer *s = signer_new(&sc, on_batch, NULL);
    char log[2048];

    ck_assert_ptr_nonnull(s);
    log_set_level(LOG_LVL_WARN); /* the suite runs at err; this case reads the warnings */
    ck_assert(!add_rsa_logged(s, 1024, log, sizeof(log)));
    ck_assert_ptr_nonnull(strstr(log, "RSA key of 1024 bits"));
    ck_assert(add_rsa_logged(s, 2048, log, sizeof(log)));
    ck_assert_ptr_nonnull(strstr(log, "RSA-2048 is legacy"));
    ck_assert(add_rsa_logged(s, 3072, log, sizeof(log)));
    ck_assert_ptr_null(strstr(log, "legacy"));
    signer_free(s);
}
END_TEST

static Suite *
signer_suite(void)
{
    Suite *s = suite_create("signer");
    TCase *tc = tcase_create("queue");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_order_and_verify);
    tcase_add_test(tc, test_fair_share);
    tcase_add_test(tc, test_busy_with_queue_max_1);
    tcase_add_test(tc, test_shutdown_pending);
    tcase_add_test(tc, test_timeout_queued);
    tcase_add_test(tc, test_rsa_key_sizes);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(signer_suite());
    int failed;

    log_init("check_signer", LOG_LVL_ERR);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
