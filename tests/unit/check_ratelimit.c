/*
 * check_ratelimit: unit suite of common/ratelimit, the per-source token buckets of ocspd and
 * tsad (STANDARDS OCSP-27; issue 8 item 2): a burst then the rate, Retry-After rounding, one
 * "first refusal" per episode, sources apart, IPv6 by /64 and IPv4-mapped as IPv4, a bounded
 * table that evicts without ever refusing a client under its rate, no limit when off, and the
 * [limits] keys.
 */
#include "common/config.h"
#include "common/ratelimit.h"
#include "common/status.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

static struct ratelimit *
rl_make(double rate, double burst, unsigned sources)
{
    struct ratelimit_config c;

    ratelimit_config_defaults(&c, rate, burst);
    c.sources = sources;
    return ratelimit_new(&c);
}

START_TEST(test_burst_then_rate)
{
    struct ratelimit *rl = rl_make(2, 5, 1024);
    struct ratelimit_verdict v;
    const uint8_t a[4] = {192, 0, 2, 1};

    ck_assert_ptr_nonnull(rl);
    for (int i = 0; i < 5; i++)
        ck_assert(ratelimit_take(rl, a, 4, 100.0).allowed);
    v = ratelimit_take(rl, a, 4, 100.0);
    ck_assert(!v.allowed);
    ck_assert(v.first);
    ck_assert_uint_eq(v.retry_after, 1); /* 1 token at 2/s: 0.5 s, rounded up */
    v = ratelimit_take(rl, a, 4, 100.1);
    ck_assert(!v.allowed);
    ck_assert(!v.first);                                /* logged once per episode */
    ck_assert(ratelimit_take(rl, a, 4, 100.6).allowed); /* 0.6 s at 2/s: one token back */
    ck_assert(!ratelimit_take(rl, a, 4, 100.6).allowed);
    /* long idle: the bucket refills to burst, not beyond */
    for (int i = 0; i < 5; i++)
        ck_assert(ratelimit_take(rl, a, 4, 1000.0).allowed);
    ck_assert(!ratelimit_take(rl, a, 4, 1000.0).allowed);
    ratelimit_free(rl);
}
END_TEST

START_TEST(test_retry_after_slow_rate)
{
    struct ratelimit *rl = rl_make(0.1, 1, 1024);
    struct ratelimit_verdict v;

    ck_assert(ratelimit_take(rl, "x", 1, 5.0).allowed);
    v = ratelimit_take(rl, "x", 1, 5.0);
    ck_assert(!v.allowed);
    ck_assert_uint_eq(v.retry_after, 10);
    v = ratelimit_take(rl, "x", 1, 11.0);
    ck_assert(!v.allowed);
    ck_assert_uint_eq(v.retry_after, 4);
    ratelimit_free(rl);
}
END_TEST

START_TEST(test_sources_apart)
{
    struct ratelimit *rl = rl_make(1, 2, 1024);

    ck_assert(ratelimit_take_addr(rl, "192.0.2.1").allowed);
    ck_assert(ratelimit_take_addr(rl, "192.0.2.1").allowed);
    ck_assert(!ratelimit_take_addr(rl, "192.0.2.1").allowed);
    /* another address is not touched by the first one's refusals */
    ck_assert(ratelimit_take_addr(rl, "192.0.2.2").allowed);
    ck_assert(ratelimit_take_addr(rl, "192.0.2.2").allowed);
    /* IPv6: one /64 is one source */
    ck_assert(ratelimit_take_addr(rl, "2001:db8:1:2::1").allowed);
    ck_assert(ratelimit_take_addr(rl, "2001:db8:1:2::ffff").allowed);
    ck_assert(!ratelimit_take_addr(rl, "2001:db8:1:2:abcd::5").allowed);
    ck_assert(ratelimit_take_addr(rl, "2001:db8:1:3::1").allowed);
    /* an IPv4 client seen through an IPv6 socket is that IPv4 address, not ::ffff:0:0/64 */
    ck_assert(!ratelimit_take_addr(rl, "::ffff:192.0.2.1").allowed);
    ck_assert(ratelimit_take_addr(rl, "::ffff:192.0.2.3").allowed);
    ratelimit_free(rl);
}
END_TEST

/* A table far smaller than the sources: memory stays bounded, and evicting a source gives it
 * a full bucket again, so a client under its rate is never refused because of others. */
START_TEST(test_bounded_eviction_never_refuses_the_innocent)
{
    struct ratelimit *rl = rl_make(1, 3, RATELIMIT_SOURCES_MIN);
    const uint8_t victim[4] = {10, 0, 0, 1};
    double now = 10;

    for (int round = 0; round < 50; round++) {
        /* 200 other sources, each taking its whole burst */
        for (uint32_t i = 0; i < 200; i++) {
            uint8_t k[4] = {172, 16, (uint8_t)(i >> 8), (uint8_t)i};

            for (int t = 0; t < 4; t++)
                ratelimit_take(rl, k, 4, now);
        }
        /* the victim: one request per second, under its rate of 1/s */
        ck_assert(ratelimit_take(rl, victim, 4, now).allowed);
        now += 1.0;
    }
    ratelimit_free(rl);
}
END_TEST

/* A hot source keeps its bucket: sources that come and go do not reset it, as long as they
 * are fewer than the ways of its set. */
START_TEST(test_hot_source_kept)
{
    struct ratelimit *rl = rl_make(1, 2, 1u << 16);
    const uint8_t hot[4] = {198, 51, 100, 7};

    ck_assert(ratelimit_take(rl, hot, 4, 1).allowed);
    ck_assert(ratelimit_take(rl, hot, 4, 1).allowed);
    for (uint32_t i = 0; i < 1000; i++) {
        uint8_t k[4] = {203, 0, (uint8_t)(i >> 8), (uint8_t)i};

        ratelimit_take(rl, k, 4, 1);
    }
    ck_assert(!ratelimit_take(rl, hot, 4, 1).allowed);
    ratelimit_free(rl);
}
END_TEST

START_TEST(test_off)
{
    struct ratelimit_config c;

    ratelimit_config_defaults(&c, 0, 10);
    ck_assert_ptr_null(ratelimit_new(&c));
    for (int i = 0; i < 1000; i++)
        ck_assert(ratelimit_take_addr(NULL, "192.0.2.1").allowed);
}
END_TEST

static int
key_cb(void *user, const char *section, const char *key, const char *value,
       const struct config_pos *pos)
{
    struct config_parse *p = ((void **)user)[0];
    struct ratelimit_config *c = ((void **)user)[1];
    int st;

    if (strcmp(section, "limits") != 0)
        return config_error(p, pos, "section");
    st = ratelimit_config_key(p, c, "sign", key, value, pos);
    return st == ST_NOTFOUND ? config_error(p, pos, "unknown key '%s'", key) : st;
}

static int
parse(const char *text, struct ratelimit_config *c, char *err, size_t cap)
{
    struct config_parse p = {0};
    void *user[2] = {&p, c};
    int st;

    ratelimit_config_defaults(c, 20, 100);
    p.fn = key_cb;
    p.user = user;
    st = config_parse_string(&p, "t.conf", text);
    snprintf(err, cap, "%s", p.err);
    return st;
}

START_TEST(test_config_keys)
{
    struct ratelimit_config c;
    char err[CONFIG_ERR_MAX];

    ck_assert_int_eq(parse("[limits]\nsign_rate = 2.5\nsign_burst = 40\nsign_sources = 4096\n", &c,
                           err, sizeof(err)),
                     ST_OK);
    ck_assert(c.rate == 2.5 && c.burst == 40 && c.sources == 4096);
    ck_assert_int_eq(parse("[limits]\nsign_rate = 0\n", &c, err, sizeof(err)), ST_OK);
    ck_assert(c.rate == 0);
    ck_assert_int_eq(parse("[limits]\nsign_rate = -1\n", &c, err, sizeof(err)), ST_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "t.conf:2: sign_rate"));
    ck_assert_int_eq(parse("[limits]\nsign_burst = 0\n", &c, err, sizeof(err)), ST_CONFIG);
    ck_assert_int_eq(parse("[limits]\nsign_sources = 10\n", &c, err, sizeof(err)), ST_CONFIG);
    ck_assert_int_eq(parse("[limits]\nsign_rate = fast\n", &c, err, sizeof(err)), ST_CONFIG);
    ck_assert_int_eq(parse("[limits]\ntoken_rate = 1\n", &c, err, sizeof(err)), ST_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "unknown key 'token_rate'"));
}
END_TEST

static Suite *
ratelimit_suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_burst_then_rate);
    tcase_add_test(tc, test_retry_after_slow_rate);
    tcase_add_test(tc, test_sources_apart);
    tcase_add_test(tc, test_bounded_eviction_never_refuses_the_innocent);
    tcase_add_test(tc, test_hot_source_kept);
    tcase_add_test(tc, test_off);
    tcase_add_test(tc, test_config_keys);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ratelimit_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
