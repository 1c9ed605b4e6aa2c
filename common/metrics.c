/*
 * metrics: process-wide registry rendered in the Prometheus text exposition format 0.0.4
 * (DESIGN D8; STANDARDS TSA-22). See metrics.h for the contract.
 *
 * Values live in 64-bit atomics: a counter keeps an integer part (fetch_add, the common
 * case) and a floating-point remainder (compare-and-swap on the bits of a double); a gauge
 * is the bits of a double; a histogram keeps one non-cumulative count per bucket plus a
 * double sum, and is made cumulative only when rendered, so an observation touches two
 * atomics. _count is rendered as the +Inf bucket so that the two always agree.
 */
#include "common/metrics.h"
#include "common/status.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bound of one rendering; a registry this large is a bug, not a workload. */
#define METRICS_OUT_MAX (64u * 1024u * 1024u)
#define METRICS_NUM_MAX 32

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

static const char *const metric_type_names[] = {"counter", "gauge", "histogram"};

struct metric_family;

struct metric {
    enum metric_type type;
    struct metric_family *fam;
    struct metric *next;    /* next series of the family */
    char *name;             /* full name, with the label set if any */
    size_t base_len;        /* length of the base name inside name */
    _Atomic uint64_t count; /* counter: integer part */
    _Atomic uint64_t bits;  /* counter: fractional rest; gauge: value; histogram: sum */
    size_t nbounds;         /* histogram: finite upper bounds */
    double *bounds;
    _Atomic uint64_t *hits; /* histogram: nbounds + 1 non-cumulative bucket counts */
};

struct metric_family {
    struct metric_family *next;
    enum metric_type type;
    char *base;
    char *help;
    struct metric *first;
    struct metric *last;
};

struct metric_source {
    struct metric_source *next;
    metrics_source_fn fn;
    void *ctx;
};

struct metrics_out {
    char *buf;
    size_t len;
    size_t cap;
    bool failed;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric_family *reg_first;
static struct metric_family *reg_last;
static struct metric_source *src_first;

/* ---- atomic doubles ---- */

static uint64_t
dbl_bits(double d)
{
    uint64_t u;

    memcpy(&u, &d, sizeof(u));
    return u;
}

static double
bits_dbl(uint64_t u)
{
    double d;

    memcpy(&d, &u, sizeof(d));
    return d;
}

static void
atomic_add_dbl(_Atomic uint64_t *bits, double v)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);

    while (!atomic_compare_exchange_weak_explicit(bits, &old, dbl_bits(bits_dbl(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static double
load_dbl(const _Atomic uint64_t *bits)
{
    return bits_dbl(atomic_load_explicit(bits, memory_order_relaxed));
}

/* ---- name validation ---- */

static bool
is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* One quoted label value starting after the opening quote; returns the closing quote. */
static const char *
label_value_end(const char *p)
{
    for (; *p != '\0' && *p != '"'; p++) {
        if (*p == '\n')
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p != '\\' && *p != '"' && *p != 'n')
                return NULL;
        }
    }
    return *p == '"' ? p : NULL;
}

/* `{k="v",...}` running to the end of the string; *has_le tells whether "le" is used. */
static bool
labels_valid(const char *p, bool *has_le)
{
    const char *start;

    *has_le = false;
    if (*p++ != '{')
        return false;
    for (;;) {
        start = p;
        if (!is_name_start(*p))
            return false;
        while (is_name_char(*p))
            p++;
        if (p - start == 2 && strncmp(start, "le", 2) == 0)
            *has_le = true;
        if (p[0] != '=' || p[1] != '"')
            return false;
        p = label_value_end(p + 2);
        if (p == NULL)
            return false;
        p++;
        if (*p == '}')
            return p[1] == '\0';
        if (*p++ != ',')
            return false;
    }
}

/* Validate a full metric name; on success *base_len is the length of the base name. */
static bool
name_valid(const char *name, size_t *base_len, bool *has_le)
{
    size_t i = 0;

    *has_le = false;
    if (name == NULL || !(is_name_start(name[0]) || name[0] == ':'))
        return false;
    while (is_name_char(name[i]) || name[i] == ':')
        i++;
    *base_len = i;
    if (name[i] == '\0')
        return true;
    return labels_valid(name + i, has_le);
}

/* ---- registration ---- */

static struct metric_family *
family_find(const char *base, size_t base_len)
{
    for (struct metric_family *f = reg_first; f != NULL; f = f->next)
        if (strlen(f->base) == base_len && memcmp(f->base, base, base_len) == 0)
            return f;
    return NULL;
}

static struct metric *
series_find(const struct metric_family *f, const char *name)
{
    for (struct metric *m = f->first; m != NULL; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

static void
metric_free(struct metric *m)
{
    if (m == NULL)
        return;
    free(m->name);
    free(m->bounds);
    free(m->hits);
    free(m);
}

static struct metric_family *
family_new(const char *base, size_t base_len, const char *help, enum metric_type type)
{
    struct metric_family *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return NULL;
    f->type = type;
    f->base = strndup(base, base_len);
    f->help = strdup(help != NULL ? help : "");
    if (f->base == NULL || f->help == NULL) {
        free(f->base);
        free(f->help);
        free(f);
        return NULL;
    }
    if (reg_last != NULL)
        reg_last->next = f;
    else
        reg_first = f;
    reg_last = f;
    return f;
}

static struct metric *
series_new(const char *name, size_t base_len, enum metric_type type, const double *bounds,
           size_t nbounds)
{
    struct metric *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->type = type;
    m->base_len = base_len;
    m->name = strdup(name);
    if (m->name == NULL)
        goto fail;
    if (type == METRIC_HISTOGRAM) {
        m->nbounds = nbounds;
        m->bounds = calloc(nbounds + 1, sizeof(*m->bounds));
        m->hits = calloc(nbounds + 1, sizeof(*m->hits));
        if (m->bounds == NULL || m->hits == NULL)
            goto fail;
        if (nbounds > 0)
            memcpy(m->bounds, bounds, nbounds * sizeof(*bounds));
    }
    return m;
fail:
    metric_free(m);
    return NULL;
}

static bool
same_bounds(const struct metric *m, const double *bounds, size_t nbounds)
{
    if (m->nbounds != nbounds)
        return false;
    for (size_t i = 0; i < nbounds; i++)
        if (!(m->bounds[i] == bounds[i]))
            return false;
    return true;
}

/* Register under reg_lock; bounds only for histograms. */
static struct metric *
metric_register(const char *name, const char *help, enum metric_type type, const double *bounds,
                size_t nbounds)
{
    struct metric_family *f;
    struct metric *m = NULL;
    size_t base_len;
    bool has_le;

    if (!name_valid(name, &base_len, &has_le) || (type == METRIC_HISTOGRAM && has_le))
        return NULL;
    pthread_mutex_lock(&reg_lock);
    f = family_find(name, base_len);
    if (f != NULL && f->type != type)
        goto out;
    if (f != NULL && (m = series_find(f, name)) != NULL) {
        if (type == METRIC_HISTOGRAM && !same_bounds(m, bounds, nbounds))
            m = NULL;
        goto out;
    }
    if (f == NULL && (f = family_new(name, base_len, help, type)) == NULL)
        goto out;
    m = series_new(name, base_len, type, bounds, nbounds);
    if (m == NULL)
        goto out;
    m->fam = f;
    if (f->last != NULL)
        f->last->next = m;
    else
        f->first = m;
    f->last = m;
out:
    pthread_mutex_unlock(&reg_lock);
    return m;
}

struct metric *
metrics_counter(const char *name, const char *help)
{
    return metric_register(name, help, METRIC_COUNTER, NULL, 0);
}

struct metric *
metrics_gauge(const char *name, const char *help)
{
    return metric_register(name, help, METRIC_GAUGE, NULL, 0);
}

struct metric *
metrics_histogram(const char *name, const char *help, const double *buckets, size_t n)
{
    if (n > 0 && buckets == NULL)
        return NULL;
    if (n > 0 && isinf(buckets[n - 1]) && buckets[n - 1] > 0)
        n--;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(buckets[i]))
            return NULL;
        if (i > 0 && !(buckets[i] > buckets[i - 1]))
            return NULL;
    }
    return metric_register(name, help, METRIC_HISTOGRAM, buckets, n);
}

/* ---- updates (lock-free) ---- */

void
metrics_inc(struct metric *m)
{
    if (m == NULL)
        return;
    if (m->type == METRIC_COUNTER)
        atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    else if (m->type == METRIC_GAUGE)
        atomic_add_dbl(&m->bits, 1.0);
}

void
metrics_dec(struct metric *m)
{
    if (m != NULL && m->type == METRIC_GAUGE)
        atomic_add_dbl(&m->bits, -1.0);
}

void
metrics_add(struct metric *m, double v)
{
    if (m == NULL)
        return;
    if (m->type == METRIC_GAUGE) {
        atomic_add_dbl(&m->bits, v);
        return;
    }
    if (m->type != METRIC_COUNTER || !(v > 0))
        return;
    /* whole numbers (request and byte counts) take the cheap integer path */
    if (v < 9.0e18 && (double)(uint64_t)v == v)
        atomic_fetch_add_explicit(&m->count, (uint64_t)v, memory_order_relaxed);
    else
        atomic_add_dbl(&m->bits, v);
}

void
metrics_set(struct metric *m, double v)
{
    if (m != NULL && m->type == METRIC_GAUGE)
        atomic_store_explicit(&m->bits, dbl_bits(v), memory_order_relaxed);
}

void
metrics_observe(struct metric *m, double v)
{
    size_t i = 0;

    if (m == NULL || m->type != METRIC_HISTOGRAM || isnan(v))
        return;
    while (i < m->nbounds && v > m->bounds[i])
        i++;
    atomic_fetch_add_explicit(&m->hits[i], 1, memory_order_relaxed);
    atomic_add_dbl(&m->bits, v);
}

static uint64_t
histogram_total(const struct metric *m)
{
    uint64_t total = 0;

    for (size_t i = 0; i <= m->nbounds; i++)
        total += atomic_load_explicit(&m->hits[i], memory_order_relaxed);
    return total;
}

double
metrics_get(const struct metric *m)
{
    if (m == NULL)
        return 0;
    switch (m->type) {
    case METRIC_COUNTER:
        return (double)atomic_load_explicit(&m->count, memory_order_relaxed) + load_dbl(&m->bits);
    case METRIC_GAUGE:
        return load_dbl(&m->bits);
    case METRIC_HISTOGRAM:
        return (double)histogram_total(m);
    }
    return 0;
}

/* ---- output buffer ---- */

static bool
out_reserve(struct metrics_out *o, size_t need)
{
    size_t cap;
    char *nb;

    if (o->failed)
        return false;
    if (need <= o->cap - o->len)
        return true;
    if (need > METRICS_OUT_MAX - o->len)
        goto fail;
    cap = o->cap != 0 ? o->cap : 4096;
    while (cap - o->len < need)
        cap *= 2;
    if (cap > METRICS_OUT_MAX)
        cap = METRICS_OUT_MAX;
    nb = realloc(o->buf, cap);
    if (nb == NULL)
        goto fail;
    o->buf = nb;
    o->cap = cap;
    return true;
fail:
    o->failed = true;
    return false;
}

static void
out_write(struct metrics_out *o, const char *s, size_t n)
{
    if (!out_reserve(o, n + 1))
        return;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void
out_str(struct metrics_out *o, const char *s)
{
    out_write(o, s, strlen(s));
}

void
metrics_out_printf(struct metrics_out *out, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (out == NULL || !out_reserve(out, 256))
        return;
    va_start(ap, fmt);
    n = vsnprintf(out->buf + out->len, out->cap - out->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        out->buf[out->len] = '\0';
        return;
    }
    if ((size_t)n >= out->cap - out->len) {
        if (!out_reserve(out, (size_t)n + 1))
            return;
        va_start(ap, fmt);
        n = vsnprintf(out->buf + out->len, out->cap - out->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
    }
    out->len += (size_t)n;
}

/* Shortest of %.15g / %.17g that reads back as the same double; Prometheus spellings. */
static void
fmt_double(char *buf, size_t cap, double v)
{
    if (isnan(v))
        snprintf(buf, cap, "NaN");
    else if (isinf(v))
        snprintf(buf, cap, "%s", v > 0 ? "+Inf" : "-Inf");
    else {
        snprintf(buf, cap, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, cap, "%.17g", v);
    }
}

static void
out_help_text(struct metrics_out *o, const char *help)
{
    for (const char *p = help; *p != '\0'; p++) {
        if (*p == '\\')
            out_write(o, "\\\\", 2);
        else if (*p == '\n')
            out_write(o, "\\n", 2);
        else
            out_write(o, p, 1);
    }
}

void
metrics_out_family(struct metrics_out *out, const char *base, const char *type, const char *help)
{
    if (out == NULL)
        return;
    metrics_out_printf(out, "# HELP %s ", base);
    out_help_text(out, help != NULL ? help : "");
    metrics_out_printf(out, "\n# TYPE %s %s\n", base, type);
}

void
metrics_out_value(struct metrics_out *out, const char *name, double v)
{
    char num[METRICS_NUM_MAX];

    if (out == NULL)
        return;
    fmt_double(num, sizeof(num), v);
    metrics_out_printf(out, "%s %s\n", name, num);
}

/* ---- render ---- */

static void
render_counter(struct metrics_out *o, const struct metric *m)
{
    uint64_t whole = atomic_load_explicit(&m->count, memory_order_relaxed);
    double rest = load_dbl(&m->bits);

    if (rest == 0)
        metrics_out_printf(o, "%s %llu\n", m->name, (unsigned long long)whole);
    else
        metrics_out_value(o, m->name, (double)whole + rest);
}

/* `base<suffix>{labels[,extra]}`; labels come from the registered name. */
static void
render_hist_name(struct metrics_out *o, const struct metric *m, const char *suffix,
                 const char *extra)
{
    const char *labels = m->name + m->base_len;
    size_t inner = *labels == '{' ? strlen(labels) - 2 : 0;

    out_write(o, m->name, m->base_len);
    out_str(o, suffix);
    if (inner == 0 && extra == NULL)
        return;
    out_write(o, "{", 1);
    if (inner > 0)
        out_write(o, labels + 1, inner);
    if (inner > 0 && extra != NULL)
        out_write(o, ",", 1);
    if (extra != NULL)
        out_str(o, extra);
    out_write(o, "}", 1);
}

static void
render_histogram(struct metrics_out *o, const struct metric *m)
{
    char num[METRICS_NUM_MAX], le[METRICS_NUM_MAX + 8];
    uint64_t cum = 0;

    for (size_t i = 0; i <= m->nbounds; i++) {
        cum += atomic_load_explicit(&m->hits[i], memory_order_relaxed);
        fmt_double(num, sizeof(num), i < m->nbounds ? m->bounds[i] : INFINITY);
        snprintf(le, sizeof(le), "le=\"%s\"", num);
        render_hist_name(o, m, "_bucket", le);
        metrics_out_printf(o, " %llu\n", (unsigned long long)cum);
    }
    render_hist_name(o, m, "_sum", NULL);
    fmt_double(num, sizeof(num), load_dbl(&m->bits));
    metrics_out_printf(o, " %s\n", num);
    render_hist_name(o, m, "_count", NULL);
    metrics_out_printf(o, " %llu\n", (unsigned long long)cum);
}

static void
render_family(struct metrics_out *o, const struct metric_family *f)
{
    metrics_out_family(o, f->base, metric_type_names[f->type], f->help);
    for (const struct metric *m = f->first; m != NULL; m = m->next) {
        if (m->type == METRIC_COUNTER)
            render_counter(o, m);
        else if (m->type == METRIC_GAUGE)
            metrics_out_value(o, m->name, load_dbl(&m->bits));
        else
            render_histogram(o, m);
    }
}

int
metrics_render(char **out, size_t *len)
{
    struct metrics_out o = {NULL, 0, 0, false};
    int st = ST_OK;

    *out = NULL;
    *len = 0;
    pthread_mutex_lock(&reg_lock);
    out_reserve(&o, 1);
    for (const struct metric_family *f = reg_first; f != NULL; f = f->next)
        render_family(&o, f);
    for (const struct metric_source *s = src_first; s != NULL; s = s->next)
        s->fn(s->ctx, &o);
    pthread_mutex_unlock(&reg_lock);
    if (o.failed) {
        free(o.buf);
        st = ST_NOMEM;
        goto out;
    }
    o.buf[o.len] = '\0';
    *out = o.buf;
    *len = o.len;
out:
    return st;
}

/* ---- sources ---- */

int
metrics_source_add(metrics_source_fn fn, void *ctx)
{
    struct metric_source *s, **tail;
    int st = ST_OK;

    if (fn == NULL)
        return ST_INVALID;
    pthread_mutex_lock(&reg_lock);
    for (tail = &src_first; *tail != NULL; tail = &(*tail)->next) {
        if ((*tail)->fn == fn && (*tail)->ctx == ctx) {
            st = ST_EXISTS;
            goto out;
        }
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        st = ST_NOMEM;
        goto out;
    }
    s->fn = fn;
    s->ctx = ctx;
    *tail = s;
out:
    pthread_mutex_unlock(&reg_lock);
    return st;
}

void
metrics_source_remove(metrics_source_fn fn, void *ctx)
{
    pthread_mutex_lock(&reg_lock);
    for (struct metric_source **p = &src_first; *p != NULL; p = &(*p)->next) {
        if ((*p)->fn == fn && (*p)->ctx == ctx) {
            struct metric_source *dead = *p;

            *p = dead->next;
            free(dead);
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
}

/* ---- reset and teardown ---- */

static void
metric_zero(struct metric *m)
{
    atomic_store_explicit(&m->count, 0, memory_order_relaxed);
    atomic_store_explicit(&m->bits, dbl_bits(0.0), memory_order_relaxed);
    for (size_t i = 0; m->hits != NULL && i <= m->nbounds; i++)
        atomic_store_explicit(&m->hits[i], 0, memory_order_relaxed);
}

void
metrics_reset_all(void)
{
    pthread_mutex_lock(&reg_lock);
    for (struct metric_family *f = reg_first; f != NULL; f = f->next)
        for (struct metric *m = f->first; m != NULL; m = m->next)
            metric_zero(m);
    pthread_mutex_unlock(&reg_lock);
}

void
metrics_fini(void)
{
    struct metric_family *f, *fnext;
    struct metric *m, *mnext;
    struct metric_source *s, *snext;

    pthread_mutex_lock(&reg_lock);
    for (f = reg_first; f != NULL; f = fnext) {
        fnext = f->next;
        for (m = f->first; m != NULL; m = mnext) {
            mnext = m->next;
            metric_free(m);
        }
        free(f->base);
        free(f->help);
        free(f);
    }
    for (s = src_first; s != NULL; s = snext) {
        snext = s->next;
        free(s);
    }
    reg_first = reg_last = NULL;
    src_first = NULL;
    pthread_mutex_unlock(&reg_lock);
}
