/*
 * loadgen_hist: the latency histogram of bench/loadgen (DESIGN D9). Log-linear buckets in the
 * manner of HdrHistogram: values are nanoseconds; below 256 ns every value has its own bucket,
 * above it each power of two is split into 128 equal buckets, so any recorded value is known
 * to within 1/128 (0.8 %) from 1 µs up to LG_HIST_MAX_NS (about 18 min; runs last seconds).
 * Exact minimum, maximum and sum are kept beside the buckets.
 *
 * Included by bench/loadgen.c only (each bench program is one .c file). Not thread-safe: one
 * histogram per load thread, merged at the end.
 */
#ifndef BENCH_LOADGEN_HIST_H
#define BENCH_LOADGEN_HIST_H

#include <stdint.h>
#include <string.h>

#define LG_HIST_SUB_BITS 7                            /* 128 buckets per power of two */
#define LG_HIST_LINEAR (1u << (LG_HIST_SUB_BITS + 1)) /* 256 one-ns buckets */
#define LG_HIST_MAX_SHIFT 33                          /* top value ~ 2^40 ns */
#define LG_HIST_BUCKETS (LG_HIST_LINEAR + LG_HIST_MAX_SHIFT * (1u << LG_HIST_SUB_BITS))
#define LG_HIST_MAX_NS ((UINT64_C(1) << 40) - 1)

struct lg_hist {
    uint64_t count;
    uint64_t min_ns;
    uint64_t max_ns;
    double sum_ns;
    uint64_t bucket[LG_HIST_BUCKETS];
};

static void
lg_hist_reset(struct lg_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

static unsigned
lg_hist_index(uint64_t v)
{
    unsigned msb, shift;

    if (v > LG_HIST_MAX_NS)
        v = LG_HIST_MAX_NS;
    if (v < LG_HIST_LINEAR)
        return (unsigned)v;
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - LG_HIST_SUB_BITS;
    return LG_HIST_LINEAR + (shift - 1u) * (1u << LG_HIST_SUB_BITS) +
           (unsigned)((v >> shift) - (1u << LG_HIST_SUB_BITS));
}

/* Middle of the range of values that fall into bucket i. */
static uint64_t
lg_hist_value(unsigned i)
{
    unsigned shift, sub = 1u << LG_HIST_SUB_BITS;
    uint64_t mant;

    if (i < LG_HIST_LINEAR)
        return i;
    shift = (i - LG_HIST_LINEAR) / sub + 1u;
    mant = sub + (i - LG_HIST_LINEAR) % sub;
    return (mant << shift) + ((UINT64_C(1) << shift) >> 1);
}

static void
lg_hist_record(struct lg_hist *h, uint64_t ns)
{
    h->bucket[lg_hist_index(ns)]++;
    h->count++;
    h->sum_ns += (double)ns;
    if (ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

static void
lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src)
{
    unsigned i;

    for (i = 0; i < LG_HIST_BUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
    dst->count += src->count;
    dst->sum_ns += src->sum_ns;
    if (src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
}

/* Value at quantile q (0..1): the smallest bucket whose cumulative count reaches q of all,
 * clamped to the exact min and max. 0 for an empty histogram. */
static uint64_t
lg_hist_quantile(const struct lg_hist *h, double q)
{
    uint64_t want, seen = 0, v;
    unsigned i;

    if (h->count == 0)
        return 0;
    want = (uint64_t)(q * (double)h->count + 0.999999);
    if (want == 0)
        want = 1;
    for (i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= want)
            break;
    }
    v = lg_hist_value(i < LG_HIST_BUCKETS ? i : LG_HIST_BUCKETS - 1);
    if (v < h->min_ns)
        v = h->min_ns;
    if (v > h->max_ns)
        v = h->max_ns;
    return v;
}

#endif
