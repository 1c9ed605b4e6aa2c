/*
 * p11speed: the raw signing rate of a PKCS#11 token, the HSM limit of the bench harness
 * (DESIGN D1, D9). It calls the module through the PKCS#11 API directly, as common/signer_p11
 * does (PKCS #11 v2.40 Base §5.4 C_Initialize with CKF_OS_LOCKING_OK, §5.6 one session per
 * thread, §5.13 C_SignInit/C_Sign), with nothing else around it: N threads, each with its own
 * session, sign a 32-byte digest in a loop for a fixed time. ECDSA keys use CKM_ECDSA on the
 * digest; RSA keys CKM_RSA_PKCS on a SHA-256 DigestInfo (RFC 8017 §9.2). Beside the rate it
 * reports the process's CPU time (user + system, getrusage) over the timed part divided by the
 * signatures made: the CPU of one raw C_Sign on this token, which the bench sets against the
 * server CPU tsad spends per token on the same token.
 *
 *   p11speed --module SO --token LABEL --pin-file F --key LABEL [--threads N]
 *            [--duration S] [--json FILE]
 */
#include "common/log.h"
#include "common/status.h"

#include <dlfcn.h>
#include <getopt.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define PS_MAX_THREADS 64

struct ps_opts {
    const char *module, *token, *pin_file, *key, *json;
    unsigned threads;
    double duration;
};

struct ps_ctx {
    CK_FUNCTION_LIST *fn;
    CK_SLOT_ID slot;
    CK_MECHANISM_TYPE mech;
    CK_BYTE input[64];
    CK_ULONG input_len;
    const char *key;
    double deadline;
    atomic_bool failed;
};

/* What a run measured. */
struct ps_result {
    double rate;        /* signatures per second */
    double cpu_us_sign; /* process CPU (user + system) per signature, microseconds */
};

struct ps_worker {
    struct ps_ctx *ctx;
    pthread_t tid;
    CK_SESSION_HANDLE session;
    CK_OBJECT_HANDLE key;
    unsigned long signs;
};

static double
ps_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A space-padded CK_UTF8CHAR[32] label equals s. */
/* CPU seconds (user + system, all threads) the process has used so far; < 0 on failure. */
static double
ps_cpu_s(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static bool
ps_label_eq(const CK_UTF8CHAR *label, size_t n, const char *s)
{
    size_t l = strlen(s), i;

    if (l > n || memcmp(label, s, l) != 0)
        return false;
    for (i = l; i < n; i++) {
        if (label[i] != ' ')
            return false;
    }
    return true;
}

static int
ps_find_slot(struct ps_ctx *c, const char *token)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64, i;
    CK_TOKEN_INFO ti;

    if (c->fn->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return ST_HSM;
    for (i = 0; i < n; i++) {
        if (c->fn->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
            ps_label_eq(ti.label, sizeof(ti.label), token)) {
            c->slot = slots[i];
            return ST_OK;
        }
    }
    log_err("no token labelled '%s'", token);
    return ST_NOTFOUND;
}

static int
ps_find_key(struct ps_ctx *c, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *key)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)},
                           {CKA_LABEL, (void *)c->key, strlen(c->key)}};
    CK_ULONG n = 0;
    int st = ST_HSM;

    if (c->fn->C_FindObjectsInit(s, tmpl, 2) != CKR_OK)
        return ST_HSM;
    if (c->fn->C_FindObjects(s, key, 1, &n) == CKR_OK)
        st = n == 1 ? ST_OK : ST_NOTFOUND;
    c->fn->C_FindObjectsFinal(s);
    return st;
}

/* Mechanism and input for the key's type. */
static int
ps_set_mech(struct ps_ctx *c, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key)
{
    static const CK_BYTE sha256_prefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                            0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                            0x01, 0x05, 0x00, 0x04, 0x20};
    CK_KEY_TYPE kt;
    CK_ATTRIBUTE a = {CKA_KEY_TYPE, &kt, sizeof(kt)};
    size_t i;

    if (c->fn->C_GetAttributeValue(s, key, &a, 1) != CKR_OK)
        return ST_HSM;
    for (i = 0; i < 32; i++)
        c->input[sizeof(sha256_prefix) + i] = (CK_BYTE)(i * 7 + 1);
    if (kt == CKK_EC) {
        c->mech = CKM_ECDSA;
        memmove(c->input, c->input + sizeof(sha256_prefix), 32);
        c->input_len = 32;
    } else if (kt == CKK_RSA) {
        c->mech = CKM_RSA_PKCS;
        memcpy(c->input, sha256_prefix, sizeof(sha256_prefix));
        c->input_len = sizeof(sha256_prefix) + 32;
    } else {
        log_err("key '%s' is neither EC nor RSA", c->key);
        return ST_INVALID;
    }
    return ST_OK;
}

static int
ps_sign_once(struct ps_ctx *c, struct ps_worker *w)
{
    CK_MECHANISM m = {c->mech, NULL, 0};
    CK_BYTE sig[1024];
    CK_ULONG sl = sizeof(sig);
    CK_RV rv;

    rv = c->fn->C_SignInit(w->session, &m, w->key);
    if (rv == CKR_OK)
        rv = c->fn->C_Sign(w->session, c->input, c->input_len, sig, &sl);
    if (rv != CKR_OK) {
        log_err("C_Sign: 0x%lx", (unsigned long)rv);
        return ST_HSM;
    }
    return ST_OK;
}

static void *
ps_worker_main(void *arg)
{
    struct ps_worker *w = arg;
    struct ps_ctx *c = w->ctx;
    unsigned i;

    while (!atomic_load(&c->failed)) {
        for (i = 0; i < 16; i++) {
            if (ps_sign_once(c, w) != ST_OK) {
                atomic_store(&c->failed, true);
                return NULL;
            }
            w->signs++;
        }
        if (ps_now() >= c->deadline)
            break;
    }
    return NULL;
}

static int
ps_read_pin(const char *path, char *pin, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return ST_IO;
    n = fread(pin, 1, cap - 1, f);
    fclose(f);
    while (n > 0 && (pin[n - 1] == '\n' || pin[n - 1] == '\r'))
        n--;
    pin[n] = '\0';
    return n > 0 ? ST_OK : ST_INVALID;
}

/* Open every worker's session; the first logs the token in (login is per application). */
static int
ps_sessions(struct ps_ctx *c, struct ps_worker *w, unsigned n, const char *pin_file)
{
    char pin[256];
    CK_RV rv;
    unsigned i;
    int st = ST_HSM;

    if (ps_read_pin(pin_file, pin, sizeof(pin)) != ST_OK) {
        log_err("cannot read PIN file %s", pin_file);
        return ST_IO;
    }
    for (i = 0; i < n; i++) {
        w[i].ctx = c;
        rv = c->fn->C_OpenSession(c->slot, CKF_SERIAL_SESSION, NULL, NULL, &w[i].session);
        if (rv != CKR_OK)
            goto out;
    }
    rv = c->fn->C_Login(w[0].session, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        log_err("C_Login: 0x%lx", (unsigned long)rv);
        goto out;
    }
    for (i = 0; i < n; i++) {
        if ((st = ps_find_key(c, w[i].session, &w[i].key)) != ST_OK) {
            log_err("no private key labelled '%s'", c->key);
            goto out;
        }
    }
    st = ps_set_mech(c, w[0].session, w[0].key);
out:
    memset(pin, 0, sizeof(pin));
    return st;
}

static int
ps_run(struct ps_ctx *c, struct ps_worker *w, const struct ps_opts *o, struct ps_result *res)
{
    unsigned i, started;
    unsigned long total = 0;
    double t0, cpu0, cpu1;

    if (ps_sign_once(c, &w[0]) != ST_OK) /* warm the path, check the key signs */
        return ST_HSM;
    cpu0 = ps_cpu_s();
    t0 = ps_now();
    c->deadline = t0 + o->duration;
    for (started = 0; started < o->threads; started++) {
        if (pthread_create(&w[started].tid, NULL, ps_worker_main, &w[started]) != 0)
            break;
    }
    for (i = 0; i < started; i++) {
        pthread_join(w[i].tid, NULL);
        total += w[i].signs;
    }
    res->rate = (double)total / (ps_now() - t0);
    cpu1 = ps_cpu_s();
    if (started != o->threads || atomic_load(&c->failed) || total == 0)
        return ST_HSM;
    if (cpu0 < 0 || cpu1 < 0) {
        log_err("getrusage failed");
        return ST_IO;
    }
    res->cpu_us_sign = (cpu1 - cpu0) * 1e6 / (double)total;
    return ST_OK;
}

static int
ps_load(struct ps_ctx *c, const char *module, void **dl)
{
    CK_C_GetFunctionList get;
    CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
    CK_RV rv;

    *dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    if (*dl == NULL) {
        log_err("cannot load %s: %s", module, dlerror());
        return ST_HSM;
    }
    get = (CK_C_GetFunctionList)dlsym(*dl, "C_GetFunctionList");
    if (get == NULL || get(&c->fn) != CKR_OK)
        return ST_HSM;
    rv = c->fn->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        log_err("C_Initialize: 0x%lx", (unsigned long)rv);
        c->fn = NULL;
        return ST_HSM;
    }
    return ST_OK;
}

static int
ps_args(struct ps_opts *o, int argc, char **argv)
{
    static const struct option lo[] = {{"module", 1, NULL, 'm'},   {"token", 1, NULL, 't'},
                                       {"pin-file", 1, NULL, 'p'}, {"key", 1, NULL, 'k'},
                                       {"threads", 1, NULL, 'n'},  {"duration", 1, NULL, 'd'},
                                       {"json", 1, NULL, 'j'},     {NULL, 0, NULL, 0}};
    int c;

    *o = (struct ps_opts){.threads = 1, .duration = 3};
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'm':
            o->module = optarg;
            break;
        case 't':
            o->token = optarg;
            break;
        case 'p':
            o->pin_file = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 'n':
            o->threads = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            o->duration = strtod(optarg, NULL);
            break;
        case 'j':
            o->json = optarg;
            break;
        default:
            return ST_INVALID;
        }
    }
    if (o->module == NULL || o->token == NULL || o->pin_file == NULL || o->key == NULL ||
        o->threads == 0 || o->threads > PS_MAX_THREADS || !(o->duration > 0 && o->duration <= 600))
        return ST_INVALID;
    return ST_OK;
}

static int
ps_report(const struct ps_opts *o, const struct ps_ctx *c, const struct ps_result *res)
{
    const char *mech = c->mech == CKM_ECDSA ? "CKM_ECDSA" : "CKM_RSA_PKCS";
    FILE *f;

    printf("p11speed: key %s, %s, %u thread(s): %.1f signatures/s, %.1f us CPU per signature\n",
           o->key, mech, o->threads, res->rate, res->cpu_us_sign);
    if (o->json == NULL)
        return ST_OK;
    if ((f = fopen(o->json, "w")) == NULL) {
        log_err("cannot write %s", o->json);
        return ST_IO;
    }
    fprintf(f,
            "{\"key\": \"%s\", \"mechanism\": \"%s\", \"threads\": %u, \"signs_per_s\": %.1f, "
            "\"cpu_us_per_sign\": %.2f}\n",
            o->key, mech, o->threads, res->rate, res->cpu_us_sign);
    return fclose(f) == 0 ? ST_OK : ST_IO;
}

int
main(int argc, char **argv)
{
    struct ps_opts o;
    struct ps_ctx c = {0};
    struct ps_worker w[PS_MAX_THREADS] = {{0}};
    struct ps_result res = {0};
    void *dl = NULL;
    int st;

    log_init("p11speed", LOG_LVL_NOTICE);
    if (ps_args(&o, argc, argv) != ST_OK) {
        fprintf(stderr, "usage: p11speed --module SO --token LABEL --pin-file F --key LABEL "
                        "[--threads N] [--duration S] [--json FILE]\n");
        return 2;
    }
    c.key = o.key;
    st = ps_load(&c, o.module, &dl);
    if (st == ST_OK)
        st = ps_find_slot(&c, o.token);
    if (st == ST_OK)
        st = ps_sessions(&c, w, o.threads, o.pin_file);
    if (st == ST_OK)
        st = ps_run(&c, w, &o, &res);
    if (st == ST_OK)
        st = ps_report(&o, &c, &res);
    if (c.fn != NULL)
        c.fn->C_Finalize(NULL);
    if (dl != NULL)
        dlclose(dl);
    return st == ST_OK ? 0 : 1;
}
