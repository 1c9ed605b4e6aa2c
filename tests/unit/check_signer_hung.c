/*
 * check_signer_hung: a token that hangs must not stall the other keys' signatures
 * (common/signer.c; DESIGN D2, D8; STANDARDS TSP-13, OCSP-04: a failing HSM is an error for
 * its own requests, never a hang, and the others are unaffected).
 *
 * Like check_signer_p11, this file includes the module's source; it stands in for the PKCS#11
 * backend (signer_int.h) with a fake token whose calls can be held: two token keys (P-256,
 * made here) and a software key file. A held call is one that never comes back until the test
 * lets it go, as a C_Sign on a network HSM that stopped answering. The fake checks that no
 * session is used by two threads at once and counts the calls that reach it.
 *
 * Before the spare workers (README known limitations, before issue 10's fix) every worker
 * that took a job of the hung token stayed in its call, and the software key's jobs waited in
 * the queue until sign_timeout (ST_TIMEOUT), with one worker as with two.
 */
#include "common/signer.c"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>

/* ---- the fake token (signer_int.h's PKCS#11 backend) ---- */

#define FAKE_KEYS 2
#define FAKE_SESSIONS (SIGNER_MAX_SLOTS + 3)

struct signer_p11 {
    unsigned sessions;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    EVP_PKEY *keys[FAKE_KEYS]; /* object handle i + 1 */
    bool hang;                 /* while set, every call waits: the token stopped answering */
    bool hold[FAKE_SESSIONS];  /* a call on this session waits while set: a call lost for good
                                  (a network HSM's dead connection) while the token answers on
                                  its other sessions */
    unsigned held;             /* calls waiting now */
    unsigned calls[FAKE_KEYS]; /* calls that reached the token, per key */
    unsigned sessions;         /* asked for at open */
    bool busy[FAKE_SESSIONS];  /* a call is on this session now */
    bool clash;                /* a session was used by two threads at once */
} fk = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

struct signer_p11 *
signer_p11_open(const char *module, const char *token, const char *pin_file, unsigned sessions)
{
    struct signer_p11 *p = calloc(1, sizeof(*p));

    (void)module;
    (void)token;
    (void)pin_file;
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_le(sessions, FAKE_SESSIONS);
    p->sessions = sessions;
    fk.sessions = sessions;
    return p;
}

void
signer_p11_close(struct signer_p11 *p)
{
    free(p);
}

int
signer_p11_find_key(struct signer_p11 *p, const char *label, EVP_PKEY *pub, CK_OBJECT_HANDLE *out)
{
    (void)p;
    (void)label;
    for (int i = 0; i < FAKE_KEYS; i++)
        if (fk.keys[i] != NULL && EVP_PKEY_eq(fk.keys[i], pub) == 1) {
            *out = (CK_OBJECT_HANDLE)(i + 1);
            return ST_OK;
        }
    return ST_NOTFOUND;
}

void
signer_p11_forget_key(struct signer_p11 *p, CK_OBJECT_HANDLE obj)
{
    (void)p;
    (void)obj;
}

bool
signer_p11_healthy(struct signer_p11 *p)
{
    (void)p;
    return true;
}

bool
signer_pin_refused(void)
{
    return false;
}

int
signer_p11_sign(struct signer_p11 *p, unsigned session, CK_OBJECT_HANDLE key,
                enum signer_scheme scheme, enum signer_hash hash, const uint8_t *digest,
                size_t digest_len, uint8_t *sig, size_t *sig_len)
{
    EVP_PKEY_CTX *ctx;
    int ok;

    (void)scheme;
    (void)hash;
    if (session >= p->sessions || key < 1 || key > FAKE_KEYS)
        return ST_INVALID;
    pthread_mutex_lock(&fk.lock);
    if (fk.busy[session])
        fk.clash = true;
    fk.busy[session] = true;
    fk.calls[key - 1]++;
    fk.held++;
    pthread_cond_broadcast(&fk.cond);
    while (fk.hang || fk.hold[session])
        pthread_cond_wait(&fk.cond, &fk.lock);
    fk.held--;
    pthread_mutex_unlock(&fk.lock);
    ctx = EVP_PKEY_CTX_new(fk.keys[key - 1], NULL);
    ok = ctx != NULL && EVP_PKEY_sign_init(ctx) > 0 &&
         EVP_PKEY_sign(ctx, sig, sig_len, digest, digest_len) > 0;
    EVP_PKEY_CTX_free(ctx);
    pthread_mutex_lock(&fk.lock);
    fk.busy[session] = false;
    pthread_mutex_unlock(&fk.lock);
    return ok ? ST_OK : ST_HSM;
}

static void
fake_hang(bool on)
{
    pthread_mutex_lock(&fk.lock);
    fk.hang = on;
    pthread_cond_broadcast(&fk.cond);
    pthread_mutex_unlock(&fk.lock);
}

/* The token answers again, except to the calls held now on a session below `below`: those
 * stay held until fake_release_all(). */
static void
fake_resume_but_keep_held(unsigned below)
{
    pthread_mutex_lock(&fk.lock);
    for (unsigned i = 0; i < below && i < FAKE_SESSIONS; i++)
        if (fk.busy[i])
            fk.hold[i] = true;
    fk.hang = false;
    pthread_cond_broadcast(&fk.cond);
    pthread_mutex_unlock(&fk.lock);
}

static void
fake_release_all(void)
{
    pthread_mutex_lock(&fk.lock);
    memset(fk.hold, 0, sizeof(fk.hold));
    fk.hang = false;
    pthread_cond_broadcast(&fk.cond);
    pthread_mutex_unlock(&fk.lock);
}

static unsigned
fake_calls(int key)
{
    unsigned n;

    pthread_mutex_lock(&fk.lock);
    n = fk.calls[key];
    pthread_mutex_unlock(&fk.lock);
    return n;
}

static unsigned
fake_held(void)
{
    unsigned n;

    pthread_mutex_lock(&fk.lock);
    n = fk.held;
    pthread_mutex_unlock(&fk.lock);
    return n;
}

/* Wait until `n` calls are held in the token (an ordering, not a time). */
static void
fake_wait_held(unsigned n)
{
    pthread_mutex_lock(&fk.lock);
    while (fk.held < n)
        pthread_cond_wait(&fk.cond, &fk.lock);
    pthread_mutex_unlock(&fk.lock);
}

/* ---- keys and certificates ---- */

static char dir[64], soft_path[128];
static X509 *tok_cert[FAKE_KEYS], *soft_cert;

static X509 *
self_signed(EVP_PKEY *pk, const char *cn)
{
    X509 *c = X509_new();
    X509_NAME *name;

    ck_assert_ptr_nonnull(c);
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), 1);
    X509_gmtime_adj(X509_getm_notBefore(c), 0);
    X509_gmtime_adj(X509_getm_notAfter(c), 3600);
    name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c, name);
    X509_set_pubkey(c, pk);
    ck_assert_int_gt(X509_sign(c, pk, EVP_sha256()), 0);
    return c;
}

static void
setup(void)
{
    EVP_PKEY *pk;
    FILE *f;

    memset(fk.calls, 0, sizeof(fk.calls));
    memset(fk.busy, 0, sizeof(fk.busy));
    memset(fk.hold, 0, sizeof(fk.hold));
    fk.hang = fk.clash = false;
    fk.held = 0;
    for (int i = 0; i < FAKE_KEYS; i++) {
        fk.keys[i] = EVP_EC_gen("P-256");
        ck_assert_ptr_nonnull(fk.keys[i]);
        tok_cert[i] = self_signed(fk.keys[i], i == 0 ? "token a" : "token b");
    }
    snprintf(dir, sizeof(dir), "/tmp/check_signer_hung.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(soft_path, sizeof(soft_path), "%s/key.pem", dir);
    pk = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(pk);
    f = fopen(soft_path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    soft_cert = self_signed(pk, "key file");
    EVP_PKEY_free(pk);
}

static void
teardown(void)
{
    for (int i = 0; i < FAKE_KEYS; i++) {
        X509_free(tok_cert[i]);
        EVP_PKEY_free(fk.keys[i]);
        fk.keys[i] = NULL;
    }
    X509_free(soft_cert);
    unlink(soft_path);
    rmdir(dir);
}

/* ---- the batch callback: statuses by job id ---- */

#define JOBS 256

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int statuses[JOBS];
static bool completed[JOBS];
/* a batch carrying job `block_id` waits in the callback until `gate_open` (a callback that
 * takes long: the watch thread's, for timed-out jobs); `blocked` says it is waiting */
static int block_id = -1;
static bool gate_open, blocked;

static void
on_batch(struct signer_job **jobs, size_t n, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n; i++) {
        int id = (int)(intptr_t)jobs[i]->user;

        statuses[id] = jobs[i]->status;
        completed[id] = true;
        if (id == block_id) {
            blocked = true;
            pthread_cond_broadcast(&cond);
            while (!gate_open)
                pthread_cond_wait(&cond, &lock);
        }
    }
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

static void
reset(void)
{
    pthread_mutex_lock(&lock);
    block_id = -1;
    gate_open = blocked = false;
    memset(completed, 0, sizeof(completed));
    memset(statuses, 0x7f, sizeof(statuses));
    pthread_mutex_unlock(&lock);
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

/* Wait for jobs [from, to) to complete (an ordering: whatever their status). */
static void
wait_jobs(int from, int to)
{
    pthread_mutex_lock(&lock);
    for (int i = from; i < to; i++)
        while (!completed[i])
            pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
}

static int
status_of(int id)
{
    int st;

    pthread_mutex_lock(&lock);
    st = statuses[id];
    pthread_mutex_unlock(&lock);
    return st;
}

static bool
verifies(X509 *c, const struct signer_job *j)
{
    EVP_PKEY_CTX *vc = EVP_PKEY_CTX_new(X509_get0_pubkey(c), NULL);
    bool ok = vc != NULL && EVP_PKEY_verify_init(vc) == 1 &&
              EVP_PKEY_verify(vc, j->sig, j->sig_len, j->digest, j->digest_len) == 1;

    EVP_PKEY_CTX_free(vc);
    return ok;
}

/* A started signer on the fake token: token keys a and b and the key file, each only when its
 * pointer is given (after reset()). */
static struct signer *
start_signer(unsigned workers, double timeout, struct signer_key **ka, struct signer_key **kb,
             struct signer_key **ks)
{
    struct signer_config sc = {
        .p11_module = "fake", .workers = workers, .queue_max = 512, .sign_timeout = timeout};
    struct signer *s;

    reset();
    s = signer_new(&sc, on_batch, NULL);
    ck_assert_ptr_nonnull(s);
    /* a session for each worker and spare, the two probe slots and signer_sign_now */
    ck_assert_uint_eq(fk.sessions, 2 * workers + 3);
    if (ka != NULL)
        ck_assert_ptr_nonnull(*ka = signer_add_p11_key(s, "a", tok_cert[0], SIGNER_ECDSA,
                                                       SIGNER_SHA256));
    if (kb != NULL)
        ck_assert_ptr_nonnull(*kb = signer_add_p11_key(s, "b", tok_cert[1], SIGNER_ECDSA,
                                                       SIGNER_SHA256));
    if (ks != NULL)
        ck_assert_ptr_nonnull(*ks = signer_add_soft_key(s, soft_path, soft_cert, SIGNER_ECDSA,
                                                        SIGNER_SHA256));
    ck_assert_int_eq(signer_start(s), ST_OK);
    return s;
}

/* A bound on waiting for what must happen (not a timing check): 20 s in steps of 10 ms. */
static bool
eventually_healthy(struct signer *s)
{
    for (int i = 0; i < 2000; i++) {
        if (signer_healthy(s))
            return true;
        usleep(10000);
    }
    return false;
}

/* The same bound for a key to go down. A job's sign_timeout counts from its submission and a
 * hung call's from its entry into the module, so on a loaded machine the job may fail a watch
 * round before its worker is found stuck and the key marked down. */
static bool
eventually_unhealthy(struct signer *s)
{
    for (int i = 0; i < 2000; i++) {
        if (!signer_healthy(s))
            return true;
        usleep(10000);
    }
    return false;
}

/*
 * The token stops answering while it signs a job of key a: that job and the token's other key
 * (b) fail (ST_TIMEOUT once, then ST_HSM at once without reaching the token), the key file's
 * jobs are all signed while the call is still held, no more test signatures wait in the token
 * meanwhile than there are probe slots (several probe intervals), no session serves two calls at
 * once; once the call comes back, both token keys sign again and the signer frees cleanly (ASan: no
 * leak, no use after free of the hung worker's batch).
 */
static void
hung_token_case(unsigned workers)
{
    static struct signer_job jobs[JOBS];
    struct signer_key *ka, *kb, *ks;
    struct signer *s = start_signer(workers, 0.3, &ka, &kb, &ks);
    unsigned calls_b;

    /* the token hangs in a's call (as many calls as workers: every worker is stuck) */
    fake_hang(true);
    for (unsigned i = 0; i < workers; i++) {
        job_init(&jobs[i], ka, (int)i);
        ck_assert_int_eq(signer_submit(s, &jobs[i]), ST_OK);
    }
    fake_wait_held(workers);
    wait_jobs(0, (int)workers); /* answered by the watch thread after sign_timeout */
    for (unsigned i = 0; i < workers; i++)
        ck_assert_int_eq(status_of((int)i), ST_TIMEOUT);
    ck_assert_msg(eventually_unhealthy(s), "a hung token's key stayed up");

    /* the key file's jobs are signed although the token still holds those calls */
    for (int i = 10; i < 110; i++) {
        job_init(&jobs[i], ks, i);
        ck_assert_int_eq(signer_submit(s, &jobs[i]), ST_OK);
    }
    wait_jobs(10, 110);
    ck_assert_uint_ge(fake_held(), workers); /* still held: an ordering, not a time */
    for (int i = 10; i < 110; i++) {
        ck_assert_msg(status_of(i) == ST_OK, "key file job %d: %s while the token hangs", i,
                      status_str(status_of(i)));
        ck_assert(verifies(soft_cert, &jobs[i]));
    }

    /* the token's keys are down: their jobs fail at once, without reaching the token */
    calls_b = fake_calls(1);
    job_init(&jobs[120], ka, 120);
    job_init(&jobs[121], kb, 121);
    ck_assert_int_eq(signer_submit(s, &jobs[120]), ST_OK);
    ck_assert_int_eq(signer_submit(s, &jobs[121]), ST_OK);
    wait_jobs(120, 122);
    ck_assert_int_eq(status_of(120), ST_HSM);
    ck_assert_int_eq(status_of(121), ST_HSM);
    ck_assert_uint_le(fake_calls(1), calls_b + 1); /* at most the one test signature */

    /* several probe intervals: one test signature a probe slot at most waits in the token (a
     * probe given up on keeps its slot until its call comes back) */
    usleep(2500000);
    ck_assert_uint_le(fake_held(), workers + SIGNER_PROBE_SLOTS);
    ck_assert_uint_le(fake_calls(0) + fake_calls(1),
                      workers + SIGNER_PROBE_SLOTS + 2 /* self-tests */);

    /* and the key file still signs, on the workers that are not stuck */
    job_init(&jobs[130], ks, 130);
    ck_assert_int_eq(signer_submit(s, &jobs[130]), ST_OK);
    wait_jobs(130, 131);
    ck_assert_int_eq(status_of(130), ST_OK);
    ck_assert_uint_ge(fake_held(), workers);

    /* the token answers again: both keys come back, the stuck workers leave or rejoin */
    fake_hang(false);
    ck_assert_msg(eventually_healthy(s), "the token's keys did not come back");
    job_init(&jobs[140], ka, 140);
    job_init(&jobs[141], kb, 141);
    job_init(&jobs[142], ks, 142);
    for (int i = 140; i < 143; i++)
        ck_assert_int_eq(signer_submit(s, &jobs[i]), ST_OK);
    wait_jobs(140, 143);
    for (int i = 140; i < 143; i++)
        ck_assert_int_eq(status_of(i), ST_OK);
    ck_assert(verifies(tok_cert[0], &jobs[140]));
    ck_assert(verifies(tok_cert[1], &jobs[141]));
    ck_assert(verifies(soft_cert, &jobs[142]));
    pthread_mutex_lock(&fk.lock);
    ck_assert_msg(!fk.clash, "a PKCS#11 session served two calls at once");
    pthread_mutex_unlock(&fk.lock);
    signer_free(s);
}

START_TEST(test_hung_token_one_worker)
{
    hung_token_case(1);
}
END_TEST

START_TEST(test_hung_token_two_workers)
{
    hung_token_case(2);
}
END_TEST

/*
 * A hung call's key released meanwhile (a reload that drops the issuer, issue 9 item 4): the
 * key stays allocated while its worker is in the call, and is freed once the call comes back
 * and the worker leaves; the key file signs throughout.
 */
START_TEST(test_hung_key_released)
{
    static struct signer_job jobs[4];
    struct signer_key *ka, *ks;
    struct signer *s = start_signer(1, 0.2, &ka, NULL, &ks);

    fake_hang(true);
    job_init(&jobs[0], ka, 0);
    ck_assert_int_eq(signer_submit(s, &jobs[0]), ST_OK);
    fake_wait_held(1);
    wait_jobs(0, 1);
    ck_assert_int_eq(status_of(0), ST_TIMEOUT);
    signer_key_release(s, ka); /* still in the hung call: kept */
    pthread_mutex_lock(&s->lock);
    ck_assert_ptr_eq(s->retired, ka);
    pthread_mutex_unlock(&s->lock);
    ck_assert(signer_healthy(s)); /* a released key no longer makes the signer unhealthy */
    job_init(&jobs[1], ks, 1);
    ck_assert_int_eq(signer_submit(s, &jobs[1]), ST_OK);
    wait_jobs(1, 2);
    ck_assert_int_eq(status_of(1), ST_OK);
    fake_hang(false);
    for (int i = 0; i < 2000; i++) { /* a bound, not a timing check */
        bool gone;

        pthread_mutex_lock(&s->lock);
        gone = s->retired == NULL && s->n_hung == 0;
        pthread_mutex_unlock(&s->lock);
        if (gone)
            break;
        usleep(10000);
    }
    pthread_mutex_lock(&s->lock);
    ck_assert_ptr_null(s->retired); /* freed once its worker left the call */
    ck_assert_uint_eq(s->n_hung, 0);
    ck_assert_uint_eq(s->n_live, 1);
    pthread_mutex_unlock(&s->lock);
    job_init(&jobs[2], ks, 2);
    ck_assert_int_eq(signer_submit(s, &jobs[2]), ST_OK);
    wait_jobs(2, 3);
    ck_assert_int_eq(status_of(2), ST_OK);
    signer_free(s);
}
END_TEST

/* Wait (bounded, not a timing check) until no worker is stuck any more. */
static void
wait_no_hung(struct signer *s)
{
    for (int i = 0; i < 2000; i++) {
        unsigned n;

        pthread_mutex_lock(&s->lock);
        n = s->n_hung;
        pthread_mutex_unlock(&s->lock);
        if (n == 0)
            return;
        usleep(10000);
    }
    ck_abort_msg("a stuck worker did not leave after its call came back");
}

/*
 * The test signature itself never comes back (its session is lost for good) while the token
 * answers again on its other sessions: the probe is given up after sign_timeout and the next
 * one goes to another session, so the token's keys come back. Before (review of issue 10's
 * hung-token change, finding 1) the one prober stayed busy for ever: no key was probed again
 * and every key of the token stayed down after the token recovered.
 */
START_TEST(test_stuck_probe_other_session)
{
    static struct signer_job jobs[8];
    struct signer_key *ka, *kb, *ks;
    struct signer *s = start_signer(2, 0.3, &ka, &kb, &ks);

    fake_hang(true);
    job_init(&jobs[0], ka, 0);
    ck_assert_int_eq(signer_submit(s, &jobs[0]), ST_OK);
    wait_jobs(0, 1);
    ck_assert_int_eq(status_of(0), ST_TIMEOUT);
    fake_wait_held(2); /* the worker's call, and the first test signature */
    /* the token answers again, but those two calls stay lost */
    fake_resume_but_keep_held(FAKE_SESSIONS);
    ck_assert_msg(eventually_healthy(s),
                  "a test signature that never came back kept the token's keys down");
    job_init(&jobs[1], ka, 1);
    job_init(&jobs[2], kb, 2);
    job_init(&jobs[3], ks, 3);
    for (int i = 1; i < 4; i++)
        ck_assert_int_eq(signer_submit(s, &jobs[i]), ST_OK);
    wait_jobs(1, 4);
    for (int i = 1; i < 4; i++)
        ck_assert_msg(status_of(i) == ST_OK, "job %d: %s", i, status_str(status_of(i)));
    ck_assert(verifies(tok_cert[0], &jobs[1]));
    ck_assert(verifies(tok_cert[1], &jobs[2]));
    ck_assert(verifies(soft_cert, &jobs[3]));
    ck_assert_uint_eq(fake_held(), 2); /* still lost: an ordering, not a time */
    pthread_mutex_lock(&fk.lock);
    ck_assert_msg(!fk.clash, "a PKCS#11 session served two calls at once");
    pthread_mutex_unlock(&fk.lock);
    fake_release_all();
    wait_no_hung(s);
    signer_free(s);
}
END_TEST

static void wait_keys_up(struct signer *s);

/*
 * The token hangs, comes back (its test signature works) while the calls of the first hang
 * stay lost, and hangs again: the key file must still be signed. Before (review finding 2)
 * each hang took the workers in a call and their spares' slots; after two hangs every one of
 * the 2 x workers slots was stuck, no thread took jobs, and the key file's jobs timed out.
 */
static void
repeated_hangs_case(unsigned workers)
{
    static struct signer_job jobs[32];
    struct signer_key *ka, *ks;
    struct signer *s = start_signer(workers, 0.3, &ka, NULL, &ks);
    unsigned nslots = 2 * workers;

    for (unsigned round = 0; round < 2; round++) {
        int base = (int)(round * 10);

        fake_hang(true);
        for (unsigned i = 0; i < workers; i++) {
            job_init(&jobs[base + (int)i], ka, base + (int)i);
            ck_assert_int_eq(signer_submit(s, &jobs[base + (int)i]), ST_OK);
        }
        wait_jobs(base, base + (int)workers); /* ST_TIMEOUT, or refused at once (ST_HSM) */
        for (unsigned i = 0; i < workers; i++)
            ck_assert_int_ne(status_of(base + (int)i), ST_OK);
        /* the key file still signs while the token hangs */
        job_init(&jobs[base + 8], ks, base + 8);
        ck_assert_int_eq(signer_submit(s, &jobs[base + 8]), ST_OK);
        wait_jobs(base + 8, base + 9);
        ck_assert_msg(status_of(base + 8) == ST_OK, "hang %u: the key file's job: %s", round + 1,
                      status_str(status_of(base + 8)));
        ck_assert(verifies(soft_cert, &jobs[base + 8]));
        if (round == 0) {
            /* the workers' calls stay lost, the test signatures work again */
            fake_resume_but_keep_held(nslots);
            /* its keys come back; with one worker no call into it is admitted (both slots
             * held: the lost call's and the key files'), so the signer is not healthy yet */
            wait_keys_up(s);
            pthread_mutex_lock(&s->lock);
            ck_assert(signer_token_capped(s) == (workers == 1));
            pthread_mutex_unlock(&s->lock);
            ck_assert(signer_healthy(s) == (workers != 1));
        }
    }
    fake_release_all();
    wait_no_hung(s);
    job_init(&jobs[30], ka, 30);
    job_init(&jobs[31], ks, 31);
    ck_assert_msg(eventually_healthy(s), "the token did not come back");
    ck_assert_int_eq(signer_submit(s, &jobs[30]), ST_OK);
    ck_assert_int_eq(signer_submit(s, &jobs[31]), ST_OK);
    wait_jobs(30, 32);
    ck_assert_int_eq(status_of(30), ST_OK);
    ck_assert_int_eq(status_of(31), ST_OK);
    pthread_mutex_lock(&fk.lock);
    ck_assert_msg(!fk.clash, "a PKCS#11 session served two calls at once");
    pthread_mutex_unlock(&fk.lock);
    signer_free(s);
}

START_TEST(test_repeated_hangs_one_worker)
{
    repeated_hangs_case(1);
}
END_TEST

START_TEST(test_repeated_hangs_two_workers)
{
    repeated_hangs_case(2);
}
END_TEST

/* Wait until the watch thread has gone round `n` more times (an ordering). */
static void
wait_watch_rounds(struct signer *s, unsigned long n)
{
    unsigned long start, now;

    pthread_mutex_lock(&s->lock);
    start = s->watch_rounds;
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < 2000; i++) {
        pthread_mutex_lock(&s->lock);
        now = s->watch_rounds;
        pthread_mutex_unlock(&s->lock);
        if (now - start >= n)
            return;
        usleep(1000);
    }
    ck_abort_msg("the watch thread does not go round");
}

/*
 * The whole process is stopped (SIGSTOP here; a VM paused by its host, a debugger) for longer
 * than sign_timeout while a call is in the module: the call did not hang, the clock jumped. Its
 * key must stay up (no false `token_hung` event, no spare started). Before (review finding 3)
 * the watch thread's first round after the pause took the call for a hung token.
 */
START_TEST(test_pause_not_a_hang)
{
    static struct signer_job jobs[2];
    struct signer_key *ka;
    struct signer *s = start_signer(1, 2.0, &ka, NULL, NULL);
    pid_t me = getpid(), child;
    int wst;

    fake_hang(true); /* a slow call, caught by the pause */
    job_init(&jobs[0], ka, 0);
    ck_assert_int_eq(signer_submit(s, &jobs[0]), ST_OK);
    fake_wait_held(1);
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        kill(me, SIGSTOP);
        usleep(4000000);
        kill(me, SIGCONT);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(child, &wst, 0), child); /* returns once the process runs again */
    /* its rounds after the pause, well within sign_timeout: the call is still held and its
     * clock runs again from the resume, so the time this thread takes to run again counts
     * (sign_timeout 2 s, not 1 s: on a loaded machine 1 s was not always enough, review14) */
    wait_watch_rounds(s, 2);
    pthread_mutex_lock(&s->lock);
    ck_assert_msg(s->n_hung == 0, "a pause was taken for a hung call");
    pthread_mutex_unlock(&s->lock);
    ck_assert_msg(signer_healthy(s), "a pause marked the token's key down");
    fake_hang(false);
    wait_jobs(0, 1);
    job_init(&jobs[1], ka, 1);
    ck_assert_int_eq(signer_submit(s, &jobs[1]), ST_OK);
    wait_jobs(1, 2);
    ck_assert_int_eq(status_of(1), ST_OK);
    ck_assert(signer_healthy(s));
    signer_free(s);
}
END_TEST

/* Hold (or let go) every call on session `i` from now on, busy or not. */
static void
fake_hold(unsigned i, bool on)
{
    pthread_mutex_lock(&fk.lock);
    fk.hold[i] = on;
    pthread_cond_broadcast(&fk.cond);
    pthread_mutex_unlock(&fk.lock);
}

/* Wait (bounded, not a timing check) until no token key is down, whatever else keeps the
 * signer unhealthy. */
static void
wait_keys_up(struct signer *s)
{
    for (int i = 0; i < 2000; i++) {
        if (atomic_load(&s->n_down) == 0)
            return;
        usleep(10000);
    }
    ck_abort_msg("the token's keys did not come back");
}

/* Hang the token on the `workers` workers' calls (jobs [base, base + workers) of key k), then
 * let the token answer again except on those calls (lost for good), and wait until the test
 * signature brought the keys back up. */
static void
hang_workers_for_good(struct signer *s, struct signer_job *jobs, int base, unsigned workers,
                      struct signer_key *k)
{
    fake_hang(true);
    for (unsigned i = 0; i < workers; i++) {
        job_init(&jobs[base + (int)i], k, base + (int)i);
        ck_assert_int_eq(signer_submit(s, &jobs[base + (int)i]), ST_OK);
    }
    fake_wait_held(workers);
    wait_jobs(base, base + (int)workers);
    for (unsigned i = 0; i < workers; i++)
        ck_assert_int_eq(status_of(base + (int)i), ST_TIMEOUT);
    fake_resume_but_keep_held(s->nslots); /* the workers' sessions: lost; the probe's: answers */
    wait_keys_up(s);
}

/*
 * review14 finding 1: with one worker (2 slots), a call lost for good leaves no call into the
 * token admissible (one slot is kept for the key files): every token job fails at once
 * (ST_HSM) although the token answers again. The signer must then say it is not healthy
 * (/healthz, ocspd's and tsad's health): before, its keys were up again (the test signature on
 * the probe session worked), signer_keys_down was 0 and signer_healthy() true, so a load
 * balancer kept sending requests that all failed, until the lost call came back.
 */
START_TEST(test_capped_token_not_healthy)
{
    static struct signer_job jobs[8];
    struct signer_config sc = {
        .p11_module = "fake", .workers = 1, .queue_max = 64, .sign_timeout = 0.3};
    struct signer_key *ka, *ks;
    struct signer *s;

    reset();
    s = signer_new(&sc, on_batch, NULL);
    ck_assert_ptr_nonnull(s);
    ka = signer_add_p11_key(s, "a", tok_cert[0], SIGNER_ECDSA, SIGNER_SHA256);
    ks = signer_add_soft_key(s, soft_path, soft_cert, SIGNER_ECDSA, SIGNER_SHA256);
    ck_assert_ptr_nonnull(ka);
    ck_assert_ptr_nonnull(ks);
    ck_assert_int_eq(signer_start(s), ST_OK);
    hang_workers_for_good(s, jobs, 0, 1, ka);
    job_init(&jobs[1], ka, 1);
    job_init(&jobs[2], ks, 2);
    ck_assert_int_eq(signer_submit(s, &jobs[1]), ST_OK);
    ck_assert_int_eq(signer_submit(s, &jobs[2]), ST_OK);
    wait_jobs(1, 3);
    ck_assert_int_eq(status_of(1), ST_HSM); /* no slot for a token call */
    ck_assert_int_eq(status_of(2), ST_OK);  /* the key file signs */
    ck_assert_msg(!signer_healthy(s),
                  "every token job is refused (no slot left) and the signer says it is healthy");
    /* the lost call comes back: the token is used again, the signer healthy */
    fake_release_all();
    wait_no_hung(s);
    ck_assert_msg(eventually_healthy(s), "the signer did not become healthy again");
    job_init(&jobs[3], ka, 3);
    ck_assert_int_eq(signer_submit(s, &jobs[3]), ST_OK);
    wait_jobs(3, 4);
    ck_assert_int_eq(status_of(3), ST_OK);
    ck_assert(verifies(tok_cert[0], &jobs[3]));
    signer_free(s);
}
END_TEST

/* Count the lines of file `path` that contain `what`. */
static unsigned
count_lines(const char *path, const char *what)
{
    char line[4096];
    unsigned n = 0;
    FILE *f = fopen(path, "r");

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, what) != NULL)
            n++;
    fclose(f);
    return n;
}

/*
 * review14 finding 2: while calls lost in the token leave room for one call into it at a time,
 * the jobs refused meanwhile must not log a line each. Before, the "still stuck in the token"
 * warning was re-armed by every call admitted, so under load (one worker in the token, the
 * other refused, in turn) the log had a warning per refused request.
 */
START_TEST(test_cap_warning_once)
{
    static struct signer_job jobs[32];
    struct signer_config sc = {
        .p11_module = "fake", .workers = 2, .queue_max = 64, .sign_timeout = 2.0};
    struct signer_key *ka, *ks;
    struct signer *s;
    char log_path[160];
    int fd, saved;

    reset();
    snprintf(log_path, sizeof(log_path), "%s/log", dir);
    s = signer_new(&sc, on_batch, NULL);
    ck_assert_ptr_nonnull(s);
    ka = signer_add_p11_key(s, "a", tok_cert[0], SIGNER_ECDSA, SIGNER_SHA256);
    ks = signer_add_soft_key(s, soft_path, soft_cert, SIGNER_ECDSA, SIGNER_SHA256);
    ck_assert_ptr_nonnull(ka);
    ck_assert_ptr_nonnull(ks);
    ck_assert_int_eq(signer_start(s), ST_OK);
    /* both workers (slots 0 and 1) lost in the token; spares in slots 2 and 3 */
    hang_workers_for_good(s, jobs, 0, 2, ka);
    fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
    log_set_level(LOG_LVL_WARN);
    for (int round = 0; round < 3; round++) {
        int x = 10 + 2 * round, y = x + 1;

        /* one call in the token (held on the spares' sessions), a second refused meanwhile */
        fake_hold(2, true);
        fake_hold(3, true);
        job_init(&jobs[x], ka, x);
        ck_assert_int_eq(signer_submit(s, &jobs[x]), ST_OK);
        fake_wait_held(3); /* the two lost calls and this one */
        job_init(&jobs[y], ka, y);
        ck_assert_int_eq(signer_submit(s, &jobs[y]), ST_OK);
        wait_jobs(y, y + 1);
        ck_assert_int_eq(status_of(y), ST_HSM);
        fake_hold(2, false);
        fake_hold(3, false);
        wait_jobs(x, x + 1);
        ck_assert_int_eq(status_of(x), ST_OK);
    }
    log_set_level(LOG_LVL_ERR);
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    close(fd);
    ck_assert_msg(count_lines(log_path, "still stuck in the token") == 1,
                  "%u warnings for 3 refused jobs (one is enough until the stuck calls return)",
                  count_lines(log_path, "still stuck in the token"));
    unlink(log_path);
    fake_release_all();
    wait_no_hung(s);
    signer_free(s);
}
END_TEST

struct now_call {
    struct signer *s;
    struct signer_job job;
    int st;
};

static void *
now_main(void *arg)
{
    struct now_call *c = arg;

    c->st = signer_sign_now(c->s, &c->job);
    return NULL;
}

/*
 * review14 finding 4: signer_sign_now() (tsad's audit checkpoints with a key in the token; the
 * self-test of a key added by a reload) calls into the token on the caller's thread, outside
 * the workers and the watch thread. A call that hangs there must show on a liveness beat, as a
 * worker's does, so that the watchdog restarts a daemon whose call never returns (README: a
 * call stuck for watchdog_stall restarts the daemon). Before, it had none: a checkpoint lost in
 * the token stopped the checkpoints for good, silently, and held signer_sign_now's lock (every
 * later checkpoint, a reload's key test) while the watchdog saw nothing.
 */
START_TEST(test_sign_now_stuck_has_beat)
{
    struct signer_config sc = {
        .p11_module = "fake", .workers = 1, .queue_max = 16, .sign_timeout = 0.3};
    struct now_call c;
    struct signer_key *ka;
    struct signer *s;
    pthread_t t;
    char who[LIVE_NAME_MAX] = "";
    double how = 0;

    s = signer_new(&sc, on_batch, NULL);
    ck_assert_ptr_nonnull(s);
    ka = signer_add_p11_key(s, "a", tok_cert[0], SIGNER_ECDSA, SIGNER_SHA256);
    ck_assert_ptr_nonnull(ka);
    ck_assert_int_eq(signer_start(s), ST_OK);
    ck_assert(live_check(0, NULL, 0, NULL)); /* nothing busy: the workers wait for jobs */
    memset(&c, 0, sizeof(c));
    c.s = s;
    c.job.key = ka;
    c.job.digest_len = 32;
    memset(c.job.digest, 0x33, 32);
    fake_hang(true);
    ck_assert_int_eq(pthread_create(&t, NULL, now_main, &c), 0);
    fake_wait_held(1);
    ck_assert_msg(!live_check(0, who, sizeof(who), &how),
                  "a signer_sign_now() call stuck in the token shows on no liveness beat");
    ck_assert_str_eq(who, "signer:now");
    fake_hang(false);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(c.st, ST_OK);
    ck_assert(verifies(tok_cert[0], &c.job));
    ck_assert(live_check(0, NULL, 0, NULL)); /* idle again once the call came back */
    signer_free(s);
}
END_TEST

/*
 * review14 finding 3: a watch round late because the watch thread itself was busy (its batch
 * callback for timed-out jobs, a lock) is no pause of the process: the other threads ran, and
 * a call that hung meanwhile did hang. Before, the gap was measured from the previous round's
 * start, so the time the watch thread spent in its own callback was taken for a pause and the
 * calls' clocks were pushed back by it: here a test signature stuck for twice sign_timeout was
 * not given up (and with a callback that slow in every round, a hung call never would be).
 */
START_TEST(test_watch_busy_not_a_pause)
{
    static struct signer_job jobs[4];
    struct signer_config sc = {
        .p11_module = "fake", .workers = 1, .queue_max = 16, .sign_timeout = 0.3};
    struct signer_key *ka;
    struct signer *s;
    long long bound;
    int probe = -1;

    reset();
    s = signer_new(&sc, on_batch, NULL);
    ck_assert_ptr_nonnull(s);
    ka = signer_add_p11_key(s, "a", tok_cert[0], SIGNER_ECDSA, SIGNER_SHA256);
    ck_assert_ptr_nonnull(ka);
    ck_assert_int_eq(signer_start(s), ST_OK);
    pthread_mutex_lock(&lock);
    block_id = 0; /* its timeout is delivered by the watch thread: it waits there */
    pthread_mutex_unlock(&lock);
    fake_hang(true);
    job_init(&jobs[0], ka, 0);
    ck_assert_int_eq(signer_submit(s, &jobs[0]), ST_OK);
    pthread_mutex_lock(&lock);
    while (!blocked)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    fake_wait_held(2); /* the worker's call, and the test signature sent in the same round */
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < SIGNER_PROBE_SLOTS; i++)
        if (s->probes[i].state == SLOT_RUN)
            probe = i;
    ck_assert_int_ge(probe, 0);
    ck_assert(!s->probes[probe].hung);
    /* the watch thread stays in the callback for twice sign_timeout, well past the pause
     * threshold (an ordering on the clock, not a timed assertion) */
    bound = s->probes[probe].start_ns + 2 * s->timeout_ns;
    pthread_mutex_unlock(&s->lock);
    while (signer_now_ns() < bound)
        usleep(10000);
    pthread_mutex_lock(&lock);
    gate_open = true;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    wait_watch_rounds(s, 1);
    pthread_mutex_lock(&s->lock);
    ck_assert_msg(s->probes[probe].state != SLOT_RUN || s->probes[probe].hung,
                  "a test signature in the module for 2 x sign_timeout is not given up: the "
                  "watch thread's own callback was taken for a pause");
    pthread_mutex_unlock(&s->lock);
    fake_hang(false);
    wait_no_hung(s);
    ck_assert_msg(eventually_healthy(s), "the token's key did not come back");
    signer_free(s);
}
END_TEST

/*
 * review14 finding 5: a hung token takes every key of it down (token_hung), and each comes
 * back only with a test signature of its own. Once one of them signs again, the next down key
 * must be tried at once (the next watch round), not a second later: with the one-a-second pace
 * kept after successes, an ocspd with 30 issuers in the token answered tryLater for some of
 * them for 30 s after the token came back. The pace stays one a second after a failure.
 */
START_TEST(test_keys_back_without_waiting)
{
    static struct signer_job jobs[4];
    struct signer_config sc = {
        .p11_module = "fake", .workers = 1, .queue_max = 16, .sign_timeout = 0.3};
    struct signer_key *ka, *kb, *first, *other;
    struct signer *s;
    bool probed = false;

    reset();
    s = signer_new(&sc, on_batch, NULL);
    ck_assert_ptr_nonnull(s);
    ka = signer_add_p11_key(s, "a", tok_cert[0], SIGNER_ECDSA, SIGNER_SHA256);
    kb = signer_add_p11_key(s, "b", tok_cert[1], SIGNER_ECDSA, SIGNER_SHA256);
    ck_assert_ptr_nonnull(ka);
    ck_assert_ptr_nonnull(kb);
    ck_assert_int_eq(signer_start(s), ST_OK);
    fake_hang(true);
    job_init(&jobs[0], ka, 0);
    ck_assert_int_eq(signer_submit(s, &jobs[0]), ST_OK);
    wait_jobs(0, 1);
    ck_assert_int_eq(status_of(0), ST_TIMEOUT);
    ck_assert_uint_eq(atomic_load(&s->n_down), 2); /* a (timeout) and b (token_hung) */
    fake_wait_held(2);                             /* the worker's call and a test signature */
    pthread_mutex_lock(&s->lock);
    first = s->probe_key;
    pthread_mutex_unlock(&s->lock);
    ck_assert_ptr_nonnull(first);
    other = first == ka ? kb : ka;
    fake_resume_but_keep_held(s->nslots); /* the probe's call comes back; the worker's not */
    for (bool running = true; running;) { /* its thread is done (an ordering) */
        running = false;
        pthread_mutex_lock(&s->lock);
        for (int i = 0; i < SIGNER_PROBE_SLOTS; i++)
            if (s->probes[i].state == SLOT_RUN && s->probes[i].key == first)
                running = true;
        pthread_mutex_unlock(&s->lock);
        if (running)
            usleep(1000);
    }
    ck_assert(!atomic_load(&first->down));
    /* two watch rounds (60 ms here): the slot of the probe that came back is free, and the
     * other key is tried (or up already), well within the second of the old pace */
    wait_watch_rounds(s, 2);
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < SIGNER_PROBE_SLOTS; i++)
        if (s->probes[i].state != SLOT_FREE && s->probes[i].key == other)
            probed = true;
    probed = probed || !atomic_load(&other->down);
    pthread_mutex_unlock(&s->lock);
    ck_assert_msg(probed, "a key of the token that came back waits a second for its test "
                          "signature after another key's test signature worked");
    wait_keys_up(s);
    fake_release_all();
    wait_no_hung(s);
    ck_assert_msg(eventually_healthy(s), "the signer did not become healthy again");
    signer_free(s);
}
END_TEST

static Suite *
signer_hung_suite(void)
{
    Suite *s = suite_create("signer_hung");
    TCase *tc = tcase_create("hung");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60); /* a guard against a deadlock, not a check */
    tcase_add_test(tc, test_hung_token_one_worker);
    tcase_add_test(tc, test_hung_token_two_workers);
    tcase_add_test(tc, test_hung_key_released);
    tcase_add_test(tc, test_stuck_probe_other_session);
    tcase_add_test(tc, test_repeated_hangs_one_worker);
    tcase_add_test(tc, test_repeated_hangs_two_workers);
    tcase_add_test(tc, test_pause_not_a_hang);
    tcase_add_test(tc, test_capped_token_not_healthy);
    tcase_add_test(tc, test_cap_warning_once);
    tcase_add_test(tc, test_sign_now_stuck_has_beat);
    tcase_add_test(tc, test_watch_busy_not_a_pause);
    tcase_add_test(tc, test_keys_back_without_waiting);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(signer_hung_suite());
    int failed;

    log_init("check_signer_hung", LOG_LVL_ERR);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
