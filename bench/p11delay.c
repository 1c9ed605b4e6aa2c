/*
 * p11delay: a simulated network HSM for the bench harness (DESIGN D9). A PKCS#11 module
 * (shared object, build/bench/libp11delay.so) that loads a real module and passes every call
 * through to it, except that a signature costs what it costs on a network-attached HSM: a
 * round trip of fixed latency, and a fixed number of operations in flight at once. With the
 * defaults (2 ms, 8 in parallel) the simulated device signs at most 8 / 2 ms = 4000 times a
 * second, whatever the real module behind it could do.
 *
 *   P11DELAY_MODULE=/usr/lib/softhsm/libsofthsm2.so   the real module (required)
 *   P11DELAY_LATENCY_MS=2      added to every signature; fractional values allowed (0.5)
 *   P11DELAY_PARALLEL=8        signature operations in flight at once; more wait their turn
 *   P11DELAY_CONF=FILE         optional file of "module = ...", "latency_ms = ...",
 *                              "parallel = ..." lines and of the fault keys below ("hang_file
 *                              = ...", ...; '#' or ';' starts a comment); the environment
 *                              variables override the file's values
 *
 * Fault injection (issue 8, "faults of the parts"), for the tests of a failing HSM
 * (tests/integration/test_watchdog.sh, test_hsm_faults.sh). Each fault is driven by a file
 * the test creates and removes while the application runs: its existence is checked on each
 * call concerned, so nothing is restarted to start or end a fault. Unset: no check, no cost.
 *
 *   P11DELAY_HANG_FILE=FILE    (hang_file) while FILE exists, a signature does not come back
 *                              (it waits, checking every 50 ms): a device that stopped
 *                              answering. The call then goes on normally. The first held
 *                              signature creates FILE.held (a test knows one is held).
 *   P11DELAY_REMOVED_FILE=FILE (removed_file) while FILE exists, every call an application
 *                              makes to find a token and sign (C_GetSlotList, C_GetSlotInfo,
 *                              C_GetTokenInfo, C_OpenSession, C_CloseSession,
 *                              C_CloseAllSessions, C_GetSessionInfo, C_Login, C_Logout,
 *                              C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal,
 *                              C_GetAttributeValue, C_SignInit, C_Sign, C_SignFinal) returns
 *                              CKR_DEVICE_REMOVED. The first call that sees the file closes
 *                              every session of the real module (a device that went away
 *                              forgets its sessions and the login), so once FILE is removed
 *                              the application's old session handles are invalid
 *                              (CKR_SESSION_HANDLE_INVALID) and it must open sessions and log in
 *                              again.
 *   P11DELAY_REINIT=1          (removed_reinit = yes) and after such a removal the calls above
 *                              keep returning CKR_DEVICE_REMOVED, even once FILE is gone, until
 *                              the application calls C_Finalize (with FILE gone) and
 *                              C_Initialize again: a client library that does not reconnect
 *                              by itself, as several network HSMs' libraries behave.
 *   P11DELAY_CLOSE_FILE=FILE   (close_file) a signature (C_Sign, C_SignFinal) that finds FILE
 *                              removes it, closes every session of the real module and
 *                              returns CKR_SESSION_CLOSED (v2.40 §5.1: the session was closed
 *                              during the call): one lost session set per touch of FILE.
 *   P11DELAY_BADPIN_FILE=FILE  (badpin_file) while FILE exists, C_Login returns
 *                              CKR_PIN_INCORRECT without reaching the real module: a wrong PIN.
 *
 * C_GetFunctionList dlopen()s the real module, copies its function list (PKCS #11 v2.40 Base
 * §5.2) and replaces C_Sign and C_SignFinal (§5.11), and, when a fault file is configured, the
 * functions named above. Each signature takes one of PARALLEL
 * slots (a counting semaphore: a mutex, a count of free slots and a first-come-first-served
 * queue of the operations waiting for one), holds it for one round trip of LATENCY_MS and
 * gives it back. The real function is called inside the round trip, which is slept to an
 * absolute deadline: a network HSM's latency includes its own signing time, so the real
 * module's CPU time (about 0.1 ms for SoftHSM2 P-256) does not add to it. An operation that
 * had to queue starts its round trip when the previous one on its slot ended on paper, not
 * when its thread is woken up, so a busy device signs PARALLEL / LATENCY_MS times a second
 * and not less by the kernel's wake-up delays (about 0.1 ms per sleep on a VM). Like a
 * blocking round trip on a socket, each signature costs the calling thread one sleep and
 * wake-up, which shows in the caller's CPU time (about 50 us on a small VM). A length
 * query (pSignature NULL, §5.2) neither waits nor sleeps: it never reaches a real device's
 * signing engine. Every other function is the real module's own.
 *
 * C_Initialize is exported too, for callers that resolve it by name. When the real module is
 * not configured or cannot be loaded, C_GetFunctionList and C_Initialize say why on stderr
 * and return CKR_GENERAL_ERROR. The real module stays loaded until the process exits.
 * Thread-safe: the set-up runs once (pthread_once); the slots and the queue are guarded by
 * one mutex; the wrapped functions keep no other state.
 *
 * Built alone with -fPIC -shared (it links nothing of libcommon), so it can be given to any
 * PKCS#11 application: tsad/ocspd ([signer] pkcs11_module), build/bench/p11speed, pkcs11-tool.
 */
#include <dlfcn.h>
#include <errno.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define P11D_PATH_MAX 4096
#define P11D_MAX_PARALLEL 4096u
#define P11D_MAX_LATENCY_MS 60000.0

struct p11d_settings {
    char module[P11D_PATH_MAX];
    double latency_ms;
    unsigned parallel;
    char hang_file[P11D_PATH_MAX];    /* while it exists, signatures do not come back */
    char removed_file[P11D_PATH_MAX]; /* while it exists, CKR_DEVICE_REMOVED */
    bool removed_reinit;              /* after a removal, DEVICE_REMOVED until re-initialised */
    char close_file[P11D_PATH_MAX];   /* a signature that finds it loses every session */
    char badpin_file[P11D_PATH_MAX];  /* while it exists, C_Login says CKR_PIN_INCORRECT */
};

/* An operation queued for a slot (on its thread's stack while it waits). */
struct p11d_waiter {
    pthread_cond_t cond;
    long long arrival, start; /* CLOCK_MONOTONIC ns */
    bool granted;
    struct p11d_waiter *next;
};

struct p11d_state {
    struct p11d_settings set;
    void *dl;
    CK_FUNCTION_LIST *real;
    CK_FUNCTION_LIST list; /* the real list with our C_Sign, C_SignFinal, C_GetFunctionList */
    CK_RV load_rv;
    long long latency_ns;
    pthread_mutex_t lock;
    unsigned nfree;                  /* slots free */
    struct p11d_waiter *head, *tail; /* operations queued for a slot, first come first */
    /* removal fault, guarded by `lock` */
    bool removed_seen; /* the current removal closed the real sessions already */
    bool stale;        /* removed_reinit: a removal was seen since the last C_Finalize */
};

static struct p11d_state p11d_st = {.lock = PTHREAD_MUTEX_INITIALIZER,
                                    .load_rv = CKR_GENERAL_ERROR};
static pthread_once_t p11d_once = PTHREAD_ONCE_INIT;

/* ---- settings ---- */

static bool
p11d_parse_latency(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0 && v <= P11D_MAX_LATENCY_MS))
        return false;
    *out = v;
    return true;
}

static bool
p11d_parse_parallel(const char *s, unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    if (errno != 0 || end == s || *end != '\0' || v == 0 || v > P11D_MAX_PARALLEL)
        return false;
    *out = (unsigned)v;
    return true;
}

static bool
p11d_set_module(struct p11d_settings *set, const char *path)
{
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(set->module))
        return false;
    memcpy(set->module, path, n + 1);
    return true;
}

static bool
p11d_set_path(char *dst, const char *path)
{
    size_t n = strlen(path);

    if (n >= P11D_PATH_MAX)
        return false;
    memcpy(dst, path, n + 1);
    return true;
}

/* One "key = value" setting, from the file or the environment. */
static bool
p11d_setting(struct p11d_settings *set, const char *key, const char *value)
{
    if (strcmp(key, "module") == 0)
        return p11d_set_module(set, value);
    if (strcmp(key, "latency_ms") == 0)
        return p11d_parse_latency(value, &set->latency_ms);
    if (strcmp(key, "parallel") == 0)
        return p11d_parse_parallel(value, &set->parallel);
    if (strcmp(key, "hang_file") == 0)
        return p11d_set_path(set->hang_file, value);
    if (strcmp(key, "removed_file") == 0)
        return p11d_set_path(set->removed_file, value);
    if (strcmp(key, "close_file") == 0)
        return p11d_set_path(set->close_file, value);
    if (strcmp(key, "badpin_file") == 0)
        return p11d_set_path(set->badpin_file, value);
    if (strcmp(key, "removed_reinit") == 0) {
        if (strcmp(value, "yes") == 0 || strcmp(value, "1") == 0)
            set->removed_reinit = true;
        else if (strcmp(value, "no") == 0 || strcmp(value, "0") == 0)
            set->removed_reinit = false;
        else
            return false;
        return true;
    }
    return false;
}

/* Trim blanks and the line end in place; returns the first non-blank character. */
static char *
p11d_trim(char *s)
{
    size_t n;

    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static bool
p11d_conf_line(struct p11d_settings *set, char *line, const char *path, unsigned lineno)
{
    char *s = p11d_trim(line), *eq;

    if (*s == '\0' || *s == '#' || *s == ';')
        return true;
    eq = strchr(s, '=');
    if (eq != NULL) {
        *eq = '\0';
        if (p11d_setting(set, p11d_trim(s), p11d_trim(eq + 1)))
            return true;
    }
    fprintf(stderr,
            "p11delay: %s:%u: expected module = PATH, latency_ms = MS, parallel = N "
            "or a fault key (hang_file, removed_file, removed_reinit, close_file, "
            "badpin_file)\n",
            path, lineno);
    return false;
}

static bool
p11d_conf_file(struct p11d_settings *set, const char *path)
{
    char line[P11D_PATH_MAX + 64];
    unsigned lineno = 0;
    bool ok = true;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        fprintf(stderr, "p11delay: cannot read P11DELAY_CONF %s: %s\n", path, strerror(errno));
        return false;
    }
    while (ok && fgets(line, sizeof(line), f) != NULL)
        ok = p11d_conf_line(set, line, path, ++lineno);
    if (fclose(f) != 0)
        ok = false;
    return ok;
}

static bool
p11d_env(struct p11d_settings *set, const char *var, const char *key)
{
    const char *v = getenv(var);

    if (v == NULL || p11d_setting(set, key, v))
        return true;
    fprintf(stderr, "p11delay: bad %s '%s'\n", var, v);
    return false;
}

/* Defaults, then P11DELAY_CONF, then the environment. */
static bool
p11d_settings_load(struct p11d_settings *set)
{
    const char *conf = getenv("P11DELAY_CONF");

    memset(set, 0, sizeof(*set));
    set->latency_ms = 2;
    set->parallel = 8;
    if (conf != NULL && *conf != '\0' && !p11d_conf_file(set, conf))
        return false;
    if (!p11d_env(set, "P11DELAY_MODULE", "module") ||
        !p11d_env(set, "P11DELAY_LATENCY_MS", "latency_ms") ||
        !p11d_env(set, "P11DELAY_PARALLEL", "parallel") ||
        !p11d_env(set, "P11DELAY_HANG_FILE", "hang_file") ||
        !p11d_env(set, "P11DELAY_REMOVED_FILE", "removed_file") ||
        !p11d_env(set, "P11DELAY_REINIT", "removed_reinit") ||
        !p11d_env(set, "P11DELAY_CLOSE_FILE", "close_file") ||
        !p11d_env(set, "P11DELAY_BADPIN_FILE", "badpin_file"))
        return false;
    if (set->module[0] == '\0') {
        fprintf(stderr, "p11delay: no real PKCS#11 module: set P11DELAY_MODULE (for example "
                        "/usr/lib/softhsm/libsofthsm2.so) or module = in P11DELAY_CONF\n");
        return false;
    }
    return true;
}

/* ---- the simulated device ---- */

static long long
p11d_now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Sleep to an absolute deadline, so that signals and the real call before it do not stretch
 * the round trip. Not at all when it has passed: even then the kernel would switch tasks. */
static void
p11d_sleep_until(long long ns)
{
    struct timespec t = {.tv_sec = (time_t)(ns / 1000000000LL),
                         .tv_nsec = (long)(ns % 1000000000LL)};

    if (p11d_now_ns() >= ns)
        return;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
        continue;
}

/*
 * Take a slot for an operation that arrived at `arrival` and return when its round trip
 * starts: at its arrival when a slot is free; otherwise it queues (first come, first served)
 * and the operation that frees a slot hands it over directly, with the start set to when the
 * previous round trip ended on paper. A device kept busy starts its next operation when the
 * last one ends, not when our thread happens to be woken up, so the wake-up delays of sleeping
 * and waiting threads do not lower the capacity below PARALLEL / LATENCY.
 */
static long long
p11d_slot_take(struct p11d_state *s, long long arrival)
{
    struct p11d_waiter me = {.arrival = arrival};
    long long start = arrival;

    pthread_mutex_lock(&s->lock);
    if (s->nfree > 0 && s->head == NULL) {
        s->nfree--;
        pthread_mutex_unlock(&s->lock);
        return start;
    }
    pthread_cond_init(&me.cond, NULL);
    if (s->tail != NULL)
        s->tail->next = &me;
    else
        s->head = &me;
    s->tail = &me;
    while (!me.granted)
        pthread_cond_wait(&me.cond, &s->lock);
    start = me.start;
    pthread_mutex_unlock(&s->lock);
    pthread_cond_destroy(&me.cond);
    return start;
}

/* Free the slot whose round trip ended (on paper) at `end`: to the first queued operation,
 * or back to the pool. */
static void
p11d_slot_give(struct p11d_state *s, long long end)
{
    struct p11d_waiter *w;

    pthread_mutex_lock(&s->lock);
    if ((w = s->head) == NULL) {
        s->nfree++;
        pthread_mutex_unlock(&s->lock);
        return;
    }
    if ((s->head = w->next) == NULL)
        s->tail = NULL;
    w->start = w->arrival > end ? w->arrival : end;
    w->granted = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&s->lock);
}

/* After the real call, sleep out the round trip that started at `start` and free the slot. */
static void
p11d_round_trip_end(struct p11d_state *s, long long start)
{
    long long end = start + s->latency_ns;

    p11d_sleep_until(end);
    p11d_slot_give(s, end);
}

/* A device that stopped answering: wait while the hang file exists, with FILE.held made
 * (once) so that a test knows a signature is being held. */
static void
p11d_hang(const struct p11d_state *s)
{
    struct timespec nap = {0, 50000000L};
    char held[P11D_PATH_MAX + 8];
    FILE *f;

    if (s->set.hang_file[0] == '\0' || access(s->set.hang_file, F_OK) != 0)
        return;
    snprintf(held, sizeof(held), "%s.held", s->set.hang_file);
    if ((f = fopen(held, "a")) != NULL)
        fclose(f);
    while (access(s->set.hang_file, F_OK) == 0)
        nanosleep(&nap, NULL);
}

/* ---- faults ---- */

static bool
p11d_exists(const char *path)
{
    return path[0] != '\0' && access(path, F_OK) == 0;
}

/* Close every session of the real module, on every slot with a token: what a device that
 * went away, or a session that was torn down under the application, leaves behind. Called
 * with the lock held. */
static void
p11d_close_all_real(struct p11d_state *s)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = sizeof(slots) / sizeof(slots[0]);

    if (s->real->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return;
    for (CK_ULONG i = 0; i < n; i++)
        (void)s->real->C_CloseAllSessions(slots[i]);
}

/* CKR_DEVICE_REMOVED while the removed file exists (and, with removed_reinit, after it until
 * C_Finalize); CKR_OK otherwise. The first call of a removal closes the real sessions. */
static CK_RV
p11d_removed(struct p11d_state *s)
{
    bool now;
    CK_RV rv = CKR_OK;

    if (s->set.removed_file[0] == '\0')
        return CKR_OK;
    now = p11d_exists(s->set.removed_file);
    pthread_mutex_lock(&s->lock);
    if (now && !s->removed_seen) {
        s->removed_seen = true;
        p11d_close_all_real(s);
    }
    if (now && s->set.removed_reinit)
        s->stale = true;
    if (!now)
        s->removed_seen = false;
    if (now || s->stale)
        rv = CKR_DEVICE_REMOVED;
    pthread_mutex_unlock(&s->lock);
    return rv;
}

/* A signature that finds the close file loses every session: CKR_SESSION_CLOSED. */
static bool
p11d_session_closed(struct p11d_state *s)
{
    bool hit = false;

    if (!p11d_exists(s->set.close_file))
        return false;
    pthread_mutex_lock(&s->lock);
    if (unlink(s->set.close_file) == 0) { /* one event per touch, whoever saw it first */
        p11d_close_all_real(s);
        hit = true;
    }
    pthread_mutex_unlock(&s->lock);
    return hit;
}

/* The sign-path checks shared by C_Sign and C_SignFinal; CKR_OK to go on. */
static CK_RV
p11d_sign_faults(struct p11d_state *s)
{
    CK_RV rv;

    if ((rv = p11d_removed(s)) != CKR_OK)
        return rv;
    if (p11d_session_closed(s))
        return CKR_SESSION_CLOSED;
    return CKR_OK;
}

static CK_RV
p11d_sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
          CK_ULONG_PTR sig_len)
{
    struct p11d_state *s = &p11d_st;
    long long start;
    CK_RV rv;

    if ((rv = p11d_sign_faults(s)) != CKR_OK)
        return rv;
    if (sig == NULL)
        return s->real->C_Sign(h, data, len, sig, sig_len);
    p11d_hang(s);
    start = p11d_slot_take(s, p11d_now_ns());
    rv = s->real->C_Sign(h, data, len, sig, sig_len);
    p11d_round_trip_end(s, start);
    return rv;
}

static CK_RV
p11d_sign_final(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
    struct p11d_state *s = &p11d_st;
    long long start;
    CK_RV rv;

    if ((rv = p11d_sign_faults(s)) != CKR_OK)
        return rv;
    if (sig == NULL)
        return s->real->C_SignFinal(h, sig, sig_len);
    p11d_hang(s);
    start = p11d_slot_take(s, p11d_now_ns());
    rv = s->real->C_SignFinal(h, sig, sig_len);
    p11d_round_trip_end(s, start);
    return rv;
}

/* The other functions a signing application calls: CKR_DEVICE_REMOVED during a removal. */
#define P11D_WRAP(name, params, args)                                                              \
    static CK_RV p11d_##name params                                                                \
    {                                                                                              \
        CK_RV rv = p11d_removed(&p11d_st);                                                         \
                                                                                                   \
        return rv != CKR_OK ? rv : p11d_st.real->name args;                                        \
    }

P11D_WRAP(C_GetSlotList, (CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR n),
          (present, list, n))
P11D_WRAP(C_GetSlotInfo, (CK_SLOT_ID slot, CK_SLOT_INFO_PTR info), (slot, info))
P11D_WRAP(C_GetTokenInfo, (CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info), (slot, info))
P11D_WRAP(C_OpenSession,
          (CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
           CK_SESSION_HANDLE_PTR h),
          (slot, flags, app, notify, h))
P11D_WRAP(C_CloseSession, (CK_SESSION_HANDLE h), (h))
P11D_WRAP(C_CloseAllSessions, (CK_SLOT_ID slot), (slot))
P11D_WRAP(C_GetSessionInfo, (CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR info), (h, info))
P11D_WRAP(C_Logout, (CK_SESSION_HANDLE h), (h))
P11D_WRAP(C_FindObjectsInit, (CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n), (h, t, n))
P11D_WRAP(C_FindObjects,
          (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR objs, CK_ULONG max, CK_ULONG_PTR n),
          (h, objs, max, n))
P11D_WRAP(C_FindObjectsFinal, (CK_SESSION_HANDLE h), (h))
P11D_WRAP(C_GetAttributeValue,
          (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR t, CK_ULONG n),
          (h, obj, t, n))
P11D_WRAP(C_SignInit, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key),
          (h, mech, key))

static CK_RV
p11d_C_Login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
    CK_RV rv = p11d_removed(&p11d_st);

    if (rv != CKR_OK)
        return rv;
    if (p11d_exists(p11d_st.set.badpin_file))
        return CKR_PIN_INCORRECT;
    return p11d_st.real->C_Login(h, user, pin, len);
}

/* A re-initialisation ends the stale state of removed_reinit once the device is back. */
static CK_RV
p11d_C_Finalize(CK_VOID_PTR reserved)
{
    struct p11d_state *s = &p11d_st;

    pthread_mutex_lock(&s->lock);
    if (!p11d_exists(s->set.removed_file))
        s->stale = false;
    pthread_mutex_unlock(&s->lock);
    return s->real->C_Finalize(reserved);
}

/* Our function list: the real one with the wrappers the settings call for. */
static void
p11d_list_faults(struct p11d_state *s)
{
    CK_FUNCTION_LIST *l = &s->list;

    if (s->set.removed_file[0] != '\0') {
        l->C_GetSlotList = p11d_C_GetSlotList;
        l->C_GetSlotInfo = p11d_C_GetSlotInfo;
        l->C_GetTokenInfo = p11d_C_GetTokenInfo;
        l->C_OpenSession = p11d_C_OpenSession;
        l->C_CloseSession = p11d_C_CloseSession;
        l->C_CloseAllSessions = p11d_C_CloseAllSessions;
        l->C_GetSessionInfo = p11d_C_GetSessionInfo;
        l->C_Logout = p11d_C_Logout;
        l->C_FindObjectsInit = p11d_C_FindObjectsInit;
        l->C_FindObjects = p11d_C_FindObjects;
        l->C_FindObjectsFinal = p11d_C_FindObjectsFinal;
        l->C_GetAttributeValue = p11d_C_GetAttributeValue;
        l->C_SignInit = p11d_C_SignInit;
        l->C_Finalize = p11d_C_Finalize;
    }
    if (s->set.removed_file[0] != '\0' || s->set.badpin_file[0] != '\0')
        l->C_Login = p11d_C_Login;
}

/* ---- loading ---- */

static CK_RV p11d_get_list(CK_FUNCTION_LIST_PTR_PTR out);

/* dlopen the real module and build our function list from its own. */
static CK_RV
p11d_load_real(struct p11d_state *s)
{
    CK_C_GetFunctionList get;
    CK_RV rv;

    if ((s->dl = dlopen(s->set.module, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        fprintf(stderr, "p11delay: cannot load P11DELAY_MODULE %s: %s\n", s->set.module, dlerror());
        return CKR_GENERAL_ERROR;
    }
    *(void **)&get = dlsym(s->dl, "C_GetFunctionList");
    if (get == NULL || get == C_GetFunctionList || get == p11d_get_list) {
        fprintf(stderr,
                "p11delay: %s is not a PKCS#11 module to wrap (no C_GetFunctionList, "
                "or p11delay itself)\n",
                s->set.module);
        return CKR_GENERAL_ERROR;
    }
    if ((rv = get(&s->real)) != CKR_OK || s->real == NULL) {
        fprintf(stderr, "p11delay: C_GetFunctionList of %s failed: 0x%lx\n", s->set.module,
                (unsigned long)rv);
        s->real = NULL;
        return rv == CKR_OK ? CKR_GENERAL_ERROR : rv;
    }
    s->list = *s->real;
    if (s->list.version.major > 2) { /* we hand out the v2.40 list only */
        s->list.version.major = 2;
        s->list.version.minor = 40;
    }
    s->list.C_GetFunctionList = p11d_get_list;
    s->list.C_Sign = p11d_sign;
    s->list.C_SignFinal = p11d_sign_final;
    p11d_list_faults(s);
    return CKR_OK;
}

static void
p11d_load_once(void)
{
    struct p11d_state *s = &p11d_st;

    if (!p11d_settings_load(&s->set)) {
        s->load_rv = CKR_GENERAL_ERROR;
        return;
    }
    s->latency_ns = (long long)(s->set.latency_ms * 1e6 + 0.5);
    s->nfree = s->set.parallel;
    s->load_rv = p11d_load_real(s);
}

static CK_RV
p11d_load(void)
{
    if (pthread_once(&p11d_once, p11d_load_once) != 0)
        return CKR_GENERAL_ERROR;
    return p11d_st.load_rv;
}

static CK_RV
p11d_get_list(CK_FUNCTION_LIST_PTR_PTR out)
{
    CK_RV rv;

    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    if ((rv = p11d_load()) != CKR_OK)
        return rv;
    *out = &p11d_st.list;
    return CKR_OK;
}

/* ---- the module's exported entry points ---- */

CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    return p11d_get_list(list);
}

CK_RV
C_Initialize(CK_VOID_PTR init_args)
{
    CK_RV rv = p11d_load();

    if (rv != CKR_OK)
        return rv;
    return p11d_st.real->C_Initialize(init_args);
}
