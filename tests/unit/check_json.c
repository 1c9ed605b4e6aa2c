/*
 * check_json: the shared JSON writer and hex (common/json), and the audit hash chain
 * (common/chain) as the journal and the commit pipeline seal it (issue 9 item 3).
 * What the writer produces is read back with jansson, as tsactl verify does.
 */
#include "common/chain.h"
#include "common/commit.h"
#include "common/journal.h"
#include "common/json.h"
#include "common/status.h"
#include "common/store.h"
#include "tests/unit/unitutil.h"

#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- writer ---- */

static json_t *
parse(const char *s)
{
    json_error_t e;
    json_t *o = json_loads(s, 0, &e);

    ck_assert_msg(o != NULL, "not JSON (%s): %s", e.text, s);
    return o;
}

START_TEST(test_escapes)
{
    char buf[256];
    struct jw o;
    json_t *v;

    jw_init(&o, buf, sizeof(buf));
    jw_begin(&o);
    jw_kstr(&o, "q", "a\"b\\c");
    jw_kstr(&o, "ctl", "\n\t\r\b\f\x01\x1f\x7f");
    jw_kstr(&o, "utf8", "Ţară ✓ 𝄞");
    jw_close(&o);
    ck_assert_uint_gt(jw_end(&o), 0);
    ck_assert_str_eq(buf, "{\"q\":\"a\\\"b\\\\c\",\"ctl\":\"\\n\\t\\r\\b\\f\\u0001\\u001f\\u007f\","
                          "\"utf8\":\"Ţară ✓ 𝄞\"}");
    v = parse(buf);
    ck_assert_str_eq(json_string_value(json_object_get(v, "q")), "a\"b\\c");
    ck_assert_str_eq(json_string_value(json_object_get(v, "ctl")), "\n\t\r\b\f\x01\x1f\x7f");
    ck_assert_str_eq(json_string_value(json_object_get(v, "utf8")), "Ţară ✓ 𝄞");
    json_decref(v);
}
END_TEST

/* Bytes that are not UTF-8 (a Latin-1 name, a cut sequence, an overlong form, a surrogate,
 * beyond U+10FFFF) go as \u00XX so that the text stays JSON that jansson (tsactl verify) reads
 * (review of issue 9 item 3: the intact record was named damaged). */
START_TEST(test_not_utf8)
{
    static const char *const in[] = {"caf\xe9",          "\xe2\x9c", "\xc0\xaf",    "\xed\xa0\x80",
                                     "\xf4\x90\x80\x80", "\xff\xfe", "\xf0\x9d\x84"};
    static const char *const out[] = {"\"caf\\u00e9\"",
                                      "\"\\u00e2\\u009c\"",
                                      "\"\\u00c0\\u00af\"",
                                      "\"\\u00ed\\u00a0\\u0080\"",
                                      "\"\\u00f4\\u0090\\u0080\\u0080\"",
                                      "\"\\u00ff\\u00fe\"",
                                      "\"\\u00f0\\u009d\\u0084\""};
    char buf[128];
    struct jw o;

    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        json_error_t e;
        json_t *v;

        jw_init(&o, buf, sizeof(buf));
        jw_str(&o, in[i]);
        ck_assert_uint_gt(jw_end(&o), 0);
        ck_assert_str_eq(buf, out[i]);
        v = json_loads(buf, JSON_DECODE_ANY, &e);
        ck_assert_msg(json_is_string(v), "%zu: not JSON (%s): %s", i, e.text, buf);
        json_decref(v);
    }
    /* the longest well-formed sequences of each length pass unchanged */
    jw_init(&o, buf, sizeof(buf));
    jw_str(&o, "\x7f\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf");
    ck_assert_str_eq(buf, "\"\\u007f\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf\"");
}
END_TEST

/* --from/--to times (tsactl export, ocspctl export --journal): an impossible date or time is
 * refused (a usage error), not moved to another day by timegm (review of issue 9 item 3). */
START_TEST(test_time_parse)
{
    static const char *const bad[] = {"2026-02-31",
                                      "2026-02-29",
                                      "2026-04-31T00:00:00Z",
                                      "2026-01-02T-1:00:00Z",
                                      "2026-01-02T24:00:00Z",
                                      "2026-01-02T03:-4:05Z",
                                      "2026-01-02T03:04:-5Z",
                                      "2026-13-01",
                                      " 2026-01-02",
                                      "+2026-01-02",
                                      "2026-1-02",
                                      "2026-01-02T3:04:05Z",
                                      "2026-01-02T03:04:05",
                                      "2026-01-02T03:04:05+1:00",
                                      "2026-01-02T03:04:05+01:60",
                                      "2026-01-02T03:04:05.Z",
                                      "yesterday",
                                      ""};
    int64_t us = 0;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!chain_time_parse(bad[i], &us), "'%s' accepted", bad[i]);
    ck_assert(chain_time_parse("2028-02-29", &us));
    ck_assert_int_eq(us, 1835395200LL * 1000000);
    ck_assert(chain_time_parse("2026-01-02T03:04:05Z", &us));
    ck_assert_int_eq(us, 1767323045LL * 1000000);
    ck_assert(chain_time_parse("2026-01-02T04:04:05.5+01:00", &us));
    ck_assert_int_eq(us, 1767323045LL * 1000000 + 500000);
    ck_assert(chain_time_parse("2026-01-01T22:34:05-04:30", &us));
    ck_assert_int_eq(us, 1767323045LL * 1000000);
    ck_assert(chain_time_parse("2016-12-31T23:59:60Z", &us)); /* a leap second: the next one */
    ck_assert_int_eq(us, 1483228800LL * 1000000);
}
END_TEST

/* Commas: between members and items, never after a key nor after an opening brace. */
START_TEST(test_nesting_and_values)
{
    char buf[256];
    uint8_t b[3] = {0x00, 0xab, 0xff};
    struct jw o;
    json_t *v;

    jw_init(&o, buf, sizeof(buf));
    jw_begin(&o);
    jw_ku64(&o, "n", 9223372036854775807ULL);
    jw_key(&o, "obj");
    jw_begin(&o);
    jw_key(&o, "neg");
    jw_i64(&o, -5);
    jw_key(&o, "t");
    jw_bool(&o, true);
    jw_key(&o, "z");
    jw_null(&o);
    jw_close(&o);
    jw_key(&o, "arr");
    jw_raw(&o, "[", 1);
    jw_item(&o);
    jw_hex(&o, b, 3);
    jw_item(&o);
    jw_str(&o, NULL);
    jw_raw(&o, "]", 1);
    jw_close(&o);
    ck_assert_str_eq(buf, "{\"n\":9223372036854775807,\"obj\":{\"neg\":-5,\"t\":true,\"z\":null},"
                          "\"arr\":[\"00abff\",null]}");
    v = parse(buf);
    json_decref(v);
}
END_TEST

START_TEST(test_full_buffer)
{
    char buf[8];
    struct jw o;

    jw_init(&o, buf, sizeof(buf));
    jw_begin(&o);
    jw_kstr(&o, "k", "abc"); /* {"k":"abc"} is 11 bytes */
    jw_close(&o);
    ck_assert_uint_eq(jw_end(&o), 0);
    jw_init(&o, buf, sizeof(buf));
    jw_lit(&o, "1234567"); /* exactly fits with its NUL */
    ck_assert_uint_eq(jw_end(&o), 7);
    jw_lit(&o, "8");
    ck_assert_uint_eq(jw_end(&o), 0);
}
END_TEST

START_TEST(test_hex)
{
    uint8_t b[4] = {0xde, 0xad, 0x01, 0x0f}, back[4];
    char s[9];

    hex_encode(s, b, 4, false);
    ck_assert_str_eq(s, "dead010f");
    hex_encode(s, b, 4, true);
    ck_assert_str_eq(s, "DEAD010F");
    ck_assert(hex_decode(back, 4, "DEad010f", 8));
    ck_assert_mem_eq(back, b, 4);
    ck_assert(!hex_decode(back, 4, "dead010", 7));
    ck_assert(!hex_decode(back, 4, "dead01xg", 8));
}
END_TEST

/* ---- chain ---- */

START_TEST(test_seal)
{
    uint8_t zero[32] = {0}, h1[32], h2[32], check[32];
    char out[512], out2[512];
    size_t n = chain_seal(out, sizeof(out), 1, "n1", zero, "{\"a\":1}", 7, h1);

    ck_assert_uint_gt(n, 0);
    ck_assert_str_eq(out,
                     "{\"seq\":1,\"node\":\"n1\",\"prev\":\"0000000000000000000000000000000000000"
                     "000000000000000000000000000\",\"a\":1}");
    chain_hash(out, n, check);
    ck_assert_mem_eq(check, h1, 32);
    n = chain_seal(out2, sizeof(out2), 2, "n1", h1, "{\"a\":2}", 7, h2);
    ck_assert_uint_gt(n, 0);
    ck_assert_ptr_nonnull(strstr(out2, "\"seq\":2,"));
    /* not an object, an empty object, no room: refused */
    ck_assert_uint_eq(chain_seal(out, sizeof(out), 1, "n1", zero, "[1]", 3, h1), 0);
    ck_assert_uint_eq(chain_seal(out, sizeof(out), 1, "n1", zero, "{}", 2, h1), 0);
    ck_assert_uint_eq(chain_seal(out, 40, 1, "n1", zero, "{\"a\":1}", 7, h1), 0);
    ck_assert(chain_node_valid("node-1.a_b"));
    ck_assert(!chain_node_valid("a b"));
    ck_assert(!chain_node_valid("a\"b"));
    ck_assert(!chain_node_valid(""));
}
END_TEST

static char dir[64];

static void
setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/check_json.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
    remove_tree(dir);
}

/* Every stored record's prev is the SHA-256 of the one before it; n records 1..n. */
static void
assert_chain(struct store *st, uint64_t n)
{
    uint8_t prev[32] = {0}, key[8];
    struct store_txn *t;

    ck_assert_int_eq(store_txn_begin(st, false, &t), ST_OK);
    for (uint64_t seq = 1; seq <= n; seq++) {
        const void *val;
        size_t vlen;
        json_t *o;
        char *v;

        journal_key(seq, key);
        ck_assert_int_eq(store_txn_get(t, 0, key, 8, &val, &vlen), ST_OK);
        v = strndup(val, vlen);
        o = parse(v);
        ck_assert_int_eq(json_integer_value(json_object_get(o, "seq")), (json_int_t)seq);
        {
            uint8_t p[32];
            const char *ph = json_string_value(json_object_get(o, "prev"));

            ck_assert(hex_decode(p, 32, ph, strlen(ph)));
            ck_assert_msg(memcmp(p, prev, 32) == 0, "record %llu: prev is not the hash of %llu",
                          (unsigned long long)seq, (unsigned long long)seq - 1);
        }
        chain_hash(val, vlen, prev);
        json_decref(o);
        free(v);
    }
    ck_assert_int_eq(store_txn_last(t, 0, key, 8, &(size_t){0}), ST_OK);
    ck_assert_uint_eq(journal_key_seq(key), n);
    store_txn_abort(t);
}

struct capp {
    struct commit_op op;
    const char *rec;
};

static int
capp_apply(struct store_txn *t, struct commit_op *op)
{
    return chain_txn_append(t, 0, "c1", ((struct capp *)op)->rec, strlen(((struct capp *)op)->rec));
}

static const char *const names[] = {"log"};

/* journal = no: sealed in the pipeline's transaction, also across a reopen. */
START_TEST(test_commit_chain)
{
    for (int round = 0; round < 2; round++) {
        struct store *st = store_open(dir, 64u << 20, names, 1, false);
        struct commit *cm = commit_new(st, &(struct commit_config){.name = "json-test"});

        for (int i = 0; i < 5; i++) {
            struct capp a = {.op = {.cls = COMMIT_ESSENTIAL, .apply = capp_apply},
                             .rec = "{\"v\":1,\"x\":\"y\"}"};

            ck_assert_int_eq(commit_run(cm, &a.op), ST_OK);
        }
        commit_free(cm);
        assert_chain(st, 5 * (uint64_t)(round + 1));
        store_close(st);
    }
}
END_TEST

struct jdone {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int left;
};

static void
jdone_cb(struct journal_rec *r, int status)
{
    struct jdone *d = r->user;

    ck_assert_int_eq(status, ST_OK);
    pthread_mutex_lock(&d->lock);
    d->left--;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

/* journal = yes: sealed by the journal's writer; the chain goes on after a restart, after a
 * journal replay (records only in the journal when the process died) and across a switch to
 * journal = no. */
START_TEST(test_journal_chain)
{
    char jdir[128];
    struct journal_config jc = {
        .dir = jdir, .segment_size = 256u * 1024u, .segments_max = 2, .chain_node = "j1"};
    struct journal_rec recs[20];
    struct jdone d = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    pid_t pid;
    int wst;

    snprintf(jdir, sizeof(jdir), "%s/journal", dir);
    for (int round = 0; round < 2; round++) {
        struct store *st = store_open(dir, 64u << 20, names, 1, false);
        struct commit *cm = commit_new(st, &(struct commit_config){.name = "json-test"});
        struct journal *j = journal_open(&jc, cm, 0);

        ck_assert_ptr_nonnull(j);
        d.left = 20;
        for (int i = 0; i < 20; i++) {
            recs[i] = (struct journal_rec){
                .data = "{\"v\":1,\"k\":\"v\"}", .len = 15, .done = jdone_cb, .user = &d};
            ck_assert_int_eq(journal_append(j, &recs[i]), ST_OK);
        }
        pthread_mutex_lock(&d.lock);
        while (d.left > 0)
            pthread_cond_wait(&d.cond, &d.lock);
        pthread_mutex_unlock(&d.lock);
        journal_close(j);
        commit_free(cm);
        assert_chain(st, 20 * (uint64_t)(round + 1));
        store_close(st);
    }
    /* a child writes 10 records durably to the journal and dies before they are applied */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct journal_config cj = jc;
        struct store *st = store_open(dir, 64u << 20, names, 1, false);
        struct commit *cm = commit_new(st, &(struct commit_config){.name = "json-child"});
        struct journal *j;

        cj.apply_delay = 3600; /* nothing reaches the database */
        j = journal_open(&cj, cm, 0);
        d.left = 10;
        for (int i = 0; i < 10; i++) {
            recs[i] = (struct journal_rec){
                .data = "{\"v\":1,\"k\":\"w\"}", .len = 15, .done = jdone_cb, .user = &d};
            journal_append(j, &recs[i]);
        }
        pthread_mutex_lock(&d.lock);
        while (d.left > 0)
            pthread_cond_wait(&d.cond, &d.lock);
        pthread_mutex_unlock(&d.lock);
        _exit(0); /* no close: the records are only in the journal */
    }
    ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
    {
        struct store *st = store_open(dir, 64u << 20, names, 1, false);
        struct commit *cm = commit_new(st, &(struct commit_config){.name = "json-test"});
        struct journal *j = journal_open(&jc, cm, 0); /* replays 41..50 */

        ck_assert_ptr_nonnull(j);
        d.left = 1;
        recs[0] = (struct journal_rec){
            .data = "{\"v\":1,\"k\":\"x\"}", .len = 15, .done = jdone_cb, .user = &d};
        ck_assert_int_eq(journal_append(j, &recs[0]), ST_OK);
        pthread_mutex_lock(&d.lock);
        while (d.left > 0)
            pthread_cond_wait(&d.cond, &d.lock);
        pthread_mutex_unlock(&d.lock);
        journal_close(j);
        /* then journal = no on the same store */
        {
            struct capp a = {.op = {.cls = COMMIT_ESSENTIAL, .apply = capp_apply},
                             .rec = "{\"v\":1,\"x\":\"z\"}"};

            ck_assert_int_eq(commit_run(cm, &a.op), ST_OK);
        }
        commit_free(cm);
        assert_chain(st, 52);
        store_close(st);
    }
}
END_TEST

static Suite *
json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tw = tcase_create("writer"), *tc = tcase_create("chain");

    tcase_add_test(tw, test_escapes);
    tcase_add_test(tw, test_not_utf8);
    tcase_add_test(tw, test_time_parse);
    tcase_add_test(tw, test_nesting_and_values);
    tcase_add_test(tw, test_full_buffer);
    tcase_add_test(tw, test_hex);
    suite_add_tcase(s, tw);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_seal);
    tcase_add_test(tc, test_commit_chain);
    tcase_add_test(tc, test_journal_chain);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(json_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
