/*
 * check_metrics: unit suite of common/metrics, the registry behind /metrics (DESIGN D8;
 * STANDARDS TSA-22: request, latency, HSM and queue figures exported for capacity
 * monitoring). Asserts the Prometheus text exposition format 0.0.4 line by line: HELP/TYPE
 * grouping by base name, label sets, cumulative histogram buckets with +Inf, _sum and
 * _count, number spellings, render sources, and exact counts under concurrent updates.
 */
#include "common/metrics.h"
#include "common/status.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *text;

static void
teardown(void)
{
    free(text);
    text = NULL;
    metrics_fini();
}

/* Render into the global `text` (freed by teardown or the next render). */
static const char *
render(void)
{
    size_t len = 0;

    free(text);
    text = NULL;
    ck_assert_int_eq(metrics_render(&text, &len), ST_OK);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(strlen(text), len);
    return text;
}

static int
count_of(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* TSA-22: a counter renders with HELP and TYPE and counts exactly. */
START_TEST(test_counter_render)
{
    struct metric *c = metrics_counter("tsa_requests_total", "Requests received.");

    ck_assert_ptr_nonnull(c);
    metrics_inc(c);
    metrics_inc(c);
    metrics_add(c, 5);
    ck_assert(metrics_get(c) == 7.0);
    ck_assert_str_eq(render(), "# HELP tsa_requests_total Requests received.\n"
                               "# TYPE tsa_requests_total counter\n"
                               "tsa_requests_total 7\n");
}
END_TEST

/* Counters never go down; fractional adds are kept. */
START_TEST(test_counter_monotonic)
{
    struct metric *c = metrics_counter("busy_seconds_total", "Seconds busy.");

    metrics_add(c, -3);
    metrics_add(c, NAN);
    metrics_dec(c);
    metrics_set(c, 100);
    ck_assert(metrics_get(c) == 0.0);
    metrics_add(c, 1.5);
    metrics_inc(c);
    ck_assert(metrics_get(c) == 2.5);
    ck_assert_ptr_nonnull(strstr(render(), "\nbusy_seconds_total 2.5\n"));
}
END_TEST

START_TEST(test_gauge)
{
    struct metric *g = metrics_gauge("queue_depth", "Jobs queued.");

    metrics_set(g, 10);
    metrics_inc(g);
    metrics_dec(g);
    metrics_dec(g);
    metrics_add(g, -0.25);
    ck_assert(metrics_get(g) == 8.75);
    ck_assert_ptr_nonnull(strstr(render(), "# TYPE queue_depth gauge\nqueue_depth 8.75\n"));
    metrics_set(g, -1e-7);
    ck_assert_ptr_nonnull(strstr(render(), "\nqueue_depth -1e-07\n"));
    metrics_set(g, INFINITY);
    ck_assert_ptr_nonnull(strstr(render(), "\nqueue_depth +Inf\n"));
    metrics_set(g, -INFINITY);
    ck_assert_ptr_nonnull(strstr(render(), "\nqueue_depth -Inf\n"));
    metrics_set(g, NAN);
    ck_assert_ptr_nonnull(strstr(render(), "\nqueue_depth NaN\n"));
    metrics_set(g, 0.1);
    ck_assert_ptr_nonnull(strstr(render(), "\nqueue_depth 0.1\n"));
}
END_TEST

/* Buckets are cumulative, le is inclusive, +Inf equals _count. */
START_TEST(test_histogram_buckets)
{
    const double b[] = {0.1, 0.5, 1};
    struct metric *h = metrics_histogram("sign_seconds", "Signing latency.", b, 3);

    ck_assert_ptr_nonnull(h);
    metrics_observe(h, 0.05);
    metrics_observe(h, 0.1);
    metrics_observe(h, 0.3);
    metrics_observe(h, 2);
    metrics_observe(h, NAN);
    ck_assert(metrics_get(h) == 4.0);
    ck_assert_str_eq(render(), "# HELP sign_seconds Signing latency.\n"
                               "# TYPE sign_seconds histogram\n"
                               "sign_seconds_bucket{le=\"0.1\"} 2\n"
                               "sign_seconds_bucket{le=\"0.5\"} 3\n"
                               "sign_seconds_bucket{le=\"1\"} 3\n"
                               "sign_seconds_bucket{le=\"+Inf\"} 4\n"
                               "sign_seconds_sum 2.45\n"
                               "sign_seconds_count 4\n");
}
END_TEST

START_TEST(test_histogram_rules)
{
    const double good[] = {1, 2, INFINITY};
    const double same[] = {1, 2};
    const double other[] = {1, 3};
    const double bad[] = {2, 1};
    const double nan_b[] = {1, NAN};
    struct metric *h;

    h = metrics_histogram("x_seconds", "x", good, 3);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_eq(metrics_histogram("x_seconds", "x", same, 2), h);
    ck_assert_ptr_null(metrics_histogram("x_seconds", "x", other, 2));
    ck_assert_ptr_null(metrics_histogram("y_seconds", "y", bad, 2));
    ck_assert_ptr_null(metrics_histogram("z_seconds", "z", nan_b, 2));
    ck_assert_ptr_null(metrics_histogram("w_seconds", "w", NULL, 2));
    ck_assert_ptr_null(metrics_histogram("v_seconds{le=\"1\"}", "v", same, 2));
    /* no finite bucket at all: only +Inf */
    h = metrics_histogram("u_seconds", "u", NULL, 0);
    ck_assert_ptr_nonnull(h);
    metrics_observe(h, 42);
    ck_assert_ptr_nonnull(strstr(render(), "u_seconds_bucket{le=\"+Inf\"} 1\n"
                                           "u_seconds_sum 42\nu_seconds_count 1\n"));
    /* observe/set on the wrong type does nothing */
    metrics_set(h, 5);
    metrics_inc(h);
    ck_assert(metrics_get(h) == 1.0);
}
END_TEST

/* Series sharing a base name render under one HELP/TYPE, in registration order. */
START_TEST(test_labels_grouped)
{
    struct metric *a = metrics_counter("tsa_tokens_total{policy=\"1.2.3\"}", "Tokens issued.");
    struct metric *other = metrics_gauge("clock_offset_seconds", "Offset.");
    struct metric *b = metrics_counter("tsa_tokens_total{policy=\"4.5\",alg=\"sha256\"}", "x");
    const char *t;

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);
    ck_assert_ptr_eq(metrics_counter("tsa_tokens_total{policy=\"1.2.3\"}", "y"), a);
    metrics_add(a, 3);
    metrics_inc(b);
    metrics_set(other, 0.5);
    t = render();
    ck_assert_int_eq(count_of(t, "# TYPE tsa_tokens_total counter\n"), 1);
    ck_assert_int_eq(count_of(t, "# HELP tsa_tokens_total"), 1);
    ck_assert_ptr_nonnull(strstr(t, "# HELP tsa_tokens_total Tokens issued.\n"
                                    "# TYPE tsa_tokens_total counter\n"
                                    "tsa_tokens_total{policy=\"1.2.3\"} 3\n"
                                    "tsa_tokens_total{policy=\"4.5\",alg=\"sha256\"} 1\n"
                                    "# HELP clock_offset_seconds Offset.\n"));
    /* the base name of a family has one type only */
    ck_assert_ptr_null(metrics_gauge("tsa_tokens_total{policy=\"9\"}", "z"));
    ck_assert_ptr_null(metrics_counter("clock_offset_seconds", "z"));
}
END_TEST

START_TEST(test_histogram_labels)
{
    const double b[] = {0.01};
    struct metric *h = metrics_histogram("op_seconds{op=\"sign\"}", "Op latency.", b, 1);

    ck_assert_ptr_nonnull(h);
    metrics_observe(h, 0.001);
    metrics_observe(h, 0.5);
    ck_assert_str_eq(render(), "# HELP op_seconds Op latency.\n"
                               "# TYPE op_seconds histogram\n"
                               "op_seconds_bucket{op=\"sign\",le=\"0.01\"} 1\n"
                               "op_seconds_bucket{op=\"sign\",le=\"+Inf\"} 2\n"
                               "op_seconds_sum{op=\"sign\"} 0.501\n"
                               "op_seconds_count{op=\"sign\"} 2\n");
}
END_TEST

START_TEST(test_bad_names)
{
    static const char *const bad[] = {
        "",
        "1abc",
        "a b",
        "a-b",
        "x{}",
        "x{y}",
        "x{y=z}",
        "x{y=\"z\"",
        "x{y=\"z\"}q",
        "x{y=\"z\",}",
        "x{1y=\"z\"}",
        "x{y=\"a\nb\"}",
        "x{y=\"\\q\"}",
        "x{y=\"z\"}{}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(metrics_counter(bad[i], "h") == NULL, "accepted \"%s\"", bad[i]);
    ck_assert_ptr_null(metrics_counter(NULL, "h"));
    ck_assert_ptr_nonnull(metrics_counter("ns:sub_total{a=\"q\\\"uote\\\\\\n\"}", "h"));
    ck_assert_ptr_nonnull(metrics_gauge("_x", NULL));
}
END_TEST

START_TEST(test_help_escaped)
{
    metrics_gauge("g", "back\\slash\nnewline");
    ck_assert_str_eq(render(), "# HELP g back\\\\slash\\nnewline\n# TYPE g gauge\ng 0\n");
}
END_TEST

static void
src_depth(void *ctx, struct metrics_out *out)
{
    const int *depth = ctx;

    metrics_out_family(out, "signer_queue_depth", "gauge", "Jobs waiting for a signer.");
    metrics_out_value(out, "signer_queue_depth{signer=\"a\"}", *depth);
    metrics_out_printf(out, "signer_queue_depth{signer=\"b\"} %d\n", *depth * 2);
}

/* Render sources run after the registered families and can be removed. */
START_TEST(test_sources)
{
    int depth = 3;
    const char *t;

    metrics_counter("first_total", "First.");
    ck_assert_int_eq(metrics_source_add(src_depth, &depth), ST_OK);
    ck_assert_int_eq(metrics_source_add(src_depth, &depth), ST_EXISTS);
    ck_assert_int_eq(metrics_source_add(NULL, &depth), ST_INVALID);
    t = render();
    ck_assert_ptr_nonnull(strstr(t, "first_total 0\n"
                                    "# HELP signer_queue_depth Jobs waiting for a signer.\n"
                                    "# TYPE signer_queue_depth gauge\n"
                                    "signer_queue_depth{signer=\"a\"} 3\n"
                                    "signer_queue_depth{signer=\"b\"} 6\n"));
    depth = 4;
    ck_assert_ptr_nonnull(strstr(render(), "signer_queue_depth{signer=\"a\"} 4\n"));
    metrics_source_remove(src_depth, &depth);
    ck_assert_ptr_null(strstr(render(), "signer_queue_depth"));
    metrics_source_remove(src_depth, &depth);
}
END_TEST

static void
src_big(void *ctx, struct metrics_out *out)
{
    (void)ctx;
    for (int i = 0; i < 5000; i++)
        metrics_out_printf(out, "big_series{n=\"%d\"} %d\n", i, i);
}

/* Output larger than the first buffer grows correctly. */
START_TEST(test_render_grows)
{
    const char *t;

    ck_assert_int_eq(metrics_source_add(src_big, NULL), ST_OK);
    t = render();
    ck_assert_ptr_nonnull(strstr(t, "big_series{n=\"0\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(t, "big_series{n=\"4999\"} 4999\n"));
    ck_assert_int_eq(count_of(t, "big_series{"), 5000);
}
END_TEST

START_TEST(test_empty_render)
{
    ck_assert_str_eq(render(), "");
}
END_TEST

START_TEST(test_reset_and_fini)
{
    const double b[] = {1};
    struct metric *c = metrics_counter("c_total", "c");
    struct metric *g = metrics_gauge("g", "g");
    struct metric *h = metrics_histogram("h", "h", b, 1);

    metrics_add(c, 2.5);
    metrics_set(g, 4);
    metrics_observe(h, 0.5);
    metrics_reset_all();
    ck_assert(metrics_get(c) == 0.0);
    ck_assert(metrics_get(g) == 0.0);
    ck_assert(metrics_get(h) == 0.0);
    ck_assert_ptr_nonnull(strstr(render(), "h_bucket{le=\"1\"} 0\n"));
    metrics_fini();
    ck_assert_str_eq(render(), "");
    c = metrics_counter("c_total", "c again");
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(strstr(render(), "# HELP c_total c again\n"));
}
END_TEST

START_TEST(test_null_handles)
{
    metrics_inc(NULL);
    metrics_dec(NULL);
    metrics_add(NULL, 1);
    metrics_set(NULL, 1);
    metrics_observe(NULL, 1);
    ck_assert(metrics_get(NULL) == 0.0);
    metrics_out_printf(NULL, "x");
    metrics_out_value(NULL, "x", 1);
    metrics_out_family(NULL, "x", "gauge", "x");
}
END_TEST

#define RACE_THREADS 4
#define RACE_ROUNDS 100000

struct race {
    struct metric *c;
    struct metric *g;
    struct metric *h;
};

static void *
race_worker(void *arg)
{
    struct race *r = arg;

    for (int i = 0; i < RACE_ROUNDS; i++) {
        metrics_inc(r->c);
        metrics_add(r->g, 0.5);
        metrics_observe(r->h, (i % 2) ? 0.1 : 10);
    }
    return NULL;
}

/* Lock-free updates from several threads lose nothing. */
START_TEST(test_concurrent_updates)
{
    const double b[] = {1};
    struct race r;
    pthread_t t[RACE_THREADS];
    const char *s;
    char want[128];

    r.c = metrics_counter("race_total", "r");
    r.g = metrics_gauge("race_gauge", "r");
    r.h = metrics_histogram("race_seconds", "r", b, 1);
    for (int i = 0; i < RACE_THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, race_worker, &r), 0);
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(t[i], NULL);
    ck_assert(metrics_get(r.c) == (double)RACE_THREADS * RACE_ROUNDS);
    ck_assert(metrics_get(r.g) == (double)RACE_THREADS * RACE_ROUNDS * 0.5);
    ck_assert(metrics_get(r.h) == (double)RACE_THREADS * RACE_ROUNDS);
    s = render();
    snprintf(want, sizeof(want), "race_seconds_bucket{le=\"1\"} %d\n",
             RACE_THREADS * RACE_ROUNDS / 2);
    ck_assert_ptr_nonnull(strstr(s, want));
}
END_TEST

static Suite *
metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *fmt = tcase_create("format");
    TCase *reg = tcase_create("registry");

    tcase_add_checked_fixture(fmt, NULL, teardown);
    tcase_add_test(fmt, test_counter_render);
    tcase_add_test(fmt, test_counter_monotonic);
    tcase_add_test(fmt, test_gauge);
    tcase_add_test(fmt, test_histogram_buckets);
    tcase_add_test(fmt, test_histogram_labels);
    tcase_add_test(fmt, test_labels_grouped);
    tcase_add_test(fmt, test_help_escaped);
    tcase_add_test(fmt, test_empty_render);
    suite_add_tcase(s, fmt);

    tcase_add_checked_fixture(reg, NULL, teardown);
    tcase_set_timeout(reg, 30);
    tcase_add_test(reg, test_histogram_rules);
    tcase_add_test(reg, test_bad_names);
    tcase_add_test(reg, test_sources);
    tcase_add_test(reg, test_render_grows);
    tcase_add_test(reg, test_reset_and_fini);
    tcase_add_test(reg, test_null_handles);
    tcase_add_test(reg, test_concurrent_updates);
    suite_add_tcase(s, reg);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
