/*
 * metrics: the process-wide registry of counters, gauges and histograms that /metrics
 * exposes in the Prometheus text exposition format, version 0.0.4 (DESIGN D8;
 * STANDARDS TSA-22: request rate, latency, HSM operations and queue depth exported).
 *
 * A metric is registered once (usually at start-up) and returns a handle; updating a handle
 * is a lock-free atomic operation, so the request path never takes a lock to count. A name
 * may carry a fixed label set, e.g. `tsa_tokens_total{policy="1.2.3"}`: series that share the
 * base name (the part before '{') form one family and are rendered under a single HELP/TYPE
 * pair, in registration order. Figures computed only when scraped (queue depth, clock
 * offset) come from render sources: callbacks that append their own lines at render time.
 *
 * Lifetimes: handles stay valid until metrics_fini(). Every update function accepts NULL
 * (and does nothing), so a failed registration never crashes a caller.
 *
 * Thread-safety: registration, render, source add/remove and metrics_reset_all() are
 * serialised by one internal mutex and may be called from any thread; updates
 * (metrics_inc/dec/add/set/observe) are lock-free and may be called from any thread.
 * metrics_fini() must not run concurrently with anything else in this module.
 */
#ifndef COMMON_METRICS_H
#define COMMON_METRICS_H

#include <stddef.h>

struct metric;
struct metrics_out;

/*
 * Register (or find) a counter. `name` is a Prometheus metric name, optionally followed by a
 * label set `{k="v",...}`; `help` is the HELP text of the family (the first registration of
 * a base name wins). Registering the same full name again returns the same handle. Returns
 * NULL when the name is malformed, when the base name is already used by another metric
 * type, or when memory is exhausted. Both strings are copied.
 */
struct metric *metrics_counter(const char *name, const char *help);

/* Register (or find) a gauge; same rules as metrics_counter(). */
struct metric *metrics_gauge(const char *name, const char *help);

/*
 * Register (or find) a histogram with `n` finite upper bounds `buckets`, strictly
 * increasing (the +Inf bucket is implicit; a trailing +Inf in `buckets` is ignored). The
 * bounds are copied. Re-registering the same full name returns the existing handle only
 * if the bounds are identical, NULL otherwise. A label set may not use the name "le".
 */
struct metric *metrics_histogram(const char *name, const char *help, const double *buckets,
                                 size_t n);

/* Counter or gauge: add 1. Other types: no effect. */
void metrics_inc(struct metric *m);
/* Gauge: subtract 1. Other types: no effect. */
void metrics_dec(struct metric *m);
/* Counter: add v (negative or NaN v is ignored, counters never go down). Gauge: add v. */
void metrics_add(struct metric *m, double v);
/* Gauge: set to v. Other types: no effect. */
void metrics_set(struct metric *m, double v);
/* Histogram: count one observation of v (NaN is ignored). Other types: no effect. */
void metrics_observe(struct metric *m, double v);

/*
 * Current value: a counter's or gauge's value, a histogram's observation count. 0 for
 * NULL. Meant for tests and health checks.
 */
double metrics_get(const struct metric *m);

/*
 * A render source: called under the registry mutex during metrics_render() to append lines
 * with the metrics_out_* functions below. It must not call any other metrics_* function
 * that takes the registry mutex (registration, render, source add/remove); updates are fine.
 */
typedef void (*metrics_source_fn)(void *ctx, struct metrics_out *out);

/*
 * Add a render source; sources render after the registered metrics, in the order added.
 * Returns ST_OK, ST_EXISTS (same fn and ctx already added) or ST_NOMEM.
 */
int metrics_source_add(metrics_source_fn fn, void *ctx);

/*
 * Remove the source added with this fn and ctx. When it returns, the source is not running
 * and will not be called again, so ctx may be freed. Unknown sources are ignored.
 */
void metrics_source_remove(metrics_source_fn fn, void *ctx);

/* Append formatted text to the output (no newline added). */
void metrics_out_printf(struct metrics_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append "# HELP base help" and "# TYPE base type" (type: "counter", "gauge", ...). */
void metrics_out_family(struct metrics_out *out, const char *base, const char *type,
                        const char *help);

/* Append one sample line "name value"; name may include a label set. */
void metrics_out_value(struct metrics_out *out, const char *name, double v);

/*
 * Render every family and then every source into a NUL-terminated malloc'ed buffer in the
 * text exposition format 0.0.4. On ST_OK, *out (caller frees) and *len (excluding the NUL)
 * are set; on failure (ST_NOMEM) *out is NULL.
 */
int metrics_render(char **out, size_t *len);

/* Zero every registered value (registrations and sources stay). For tests. */
void metrics_reset_all(void);

/*
 * Free every metric and forget every source. All handles become invalid; the registry can
 * be used again afterwards. Call once the threads that update metrics have stopped.
 */
void metrics_fini(void);

#endif
