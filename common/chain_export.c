/*
 * chain_export: a time range of a chained log as JSON lines, exactly as stored (see chain.h);
 * shared by `tsactl export` and `ocspctl export --journal` (issue 9 item 3).
 */
#include "common/chain.h"
#include "common/journal.h"
#include "common/status.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* n decimal digits at p (no sign, no space) into *v; false when one is not a digit. */
static bool
digits(const char *p, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        *v = *v * 10 + (p[i] - '0');
    }
    return true;
}

/* YYYY-MM-DD[(T| )hh:mm:ss[.f...](Z|+hh:mm|-hh:mm)], every field with its digits and in its
 * range (an impossible date is refused, not moved to another day by timegm). */
static bool
parse_utc(const char *s, size_t n, int64_t *us)
{
    char buf[64];
    struct tm tm = {0}, back;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    int64_t frac = 0, scale = 1000000, off = 0;
    const char *p;
    time_t t;

    if (n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (n < 10 || !digits(buf, 4, &y) || buf[4] != '-' || !digits(buf + 5, 2, &mo) ||
        buf[7] != '-' || !digits(buf + 8, 2, &d))
        return false;
    p = buf + 10;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (strlen(p) < 9 || !digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi) ||
            p[6] != ':' || !digits(p + 7, 2, &sec))
            return false;
        p += 9;
        if (*p == '.') {
            if (p[1] < '0' || p[1] > '9')
                return false;
            for (p++; *p >= '0' && *p <= '9'; p++)
                if (scale > 1) {
                    scale /= 10;
                    frac += (*p - '0') * scale;
                }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;

            if (strlen(p) < 6 || !digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) ||
                oh > 23 || om > 59)
                return false;
            off = (oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
            p += 6;
        } else {
            return false;
        }
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    if ((t = timegm(&tm)) == (time_t)-1 || gmtime_r(&t, &back) == NULL)
        return false;
    /* 31 February would be 3 March: refused (a leap second, :60, is the next second) */
    if (sec < 60 && (back.tm_year != y - 1900 || back.tm_mon != mo - 1 || back.tm_mday != d))
        return false;
    *us = ((int64_t)t - off) * 1000000 + frac;
    return true;
}

bool
chain_time_parse(const char *s, int64_t *us)
{
    return parse_utc(s, strlen(s), us);
}

bool
chain_record_time(const void *rec, size_t len, int64_t *us)
{
    static const char *const tags[] = {"\"gen_time\":\"", "\"time\":\""};

    static const char num[] = "\"time\":";
    const char *q = memmem(rec, len, num, sizeof(num) - 1);

    if (q != NULL && (size_t)(q - (const char *)rec) + sizeof(num) < len &&
        q[sizeof(num) - 1] >= '0' && q[sizeof(num) - 1] <= '9') {
        *us = strtoll(q + sizeof(num) - 1, NULL, 10) * 1000000;
        return true;
    }
    for (size_t i = 0; i < 2; i++) {
        const char *p = memmem(rec, len, tags[i], strlen(tags[i])), *e;

        if (p == NULL)
            continue;
        p += strlen(tags[i]);
        e = memchr(p, '"', len - (size_t)(p - (const char *)rec));
        if (e != NULL && parse_utc(p, (size_t)(e - p), us))
            return true;
    }
    return false;
}

/* Records seen in sequence order, in two passes over the same walk: the first finds the last
 * record before `to` that comes after the first at or after `from`; the second prints from
 * that first one to that last one (every record between them, so the export is contiguous,
 * whatever their times). Nothing is held in memory: a period exported from a log that goes on
 * long after it costs no more than the period. */
struct exp {
    int64_t from, to, last_time;
    bool started, print, have_end;
    uint64_t last_seq, end_seq;
    FILE *f;
};

static void
exp_record(struct exp *e, uint64_t seq, const void *val, size_t len)
{
    int64_t t;

    e->last_seq = seq;
    if (!chain_record_time(val, len, &t))
        t = e->last_time; /* a record without a time goes with the one before it */
    e->last_time = t;
    if (!e->started) {
        if (t < e->from)
            return;
        e->started = true;
    }
    if (!e->print) {
        if (t < e->to) {
            e->end_seq = seq;
            e->have_end = true;
        }
        return;
    }
    if (e->have_end && seq <= e->end_seq) {
        fwrite(val, 1, len, e->f);
        fputc('\n', e->f);
    }
}

static bool
exp_walk(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (klen == 8)
        exp_record(ctx, journal_key_seq(key), val, vlen);
    return true;
}

static void
exp_journal(void *ctx, uint64_t seq, const void *data, size_t len)
{
    struct exp *e = ctx;

    if (seq == e->last_seq + 1) /* records the store does not have yet */
        exp_record(e, seq, data, len);
}

int
chain_export(struct store *s, int db, const char *journal_dir, int64_t from, int64_t to, FILE *f)
{
    struct exp e = {.from = from, .to = to, .f = f};
    struct stat sb;
    int st = ST_OK;

    for (int pass = 0; pass < 2 && st == ST_OK; pass++) {
        e.print = pass == 1;
        e.started = false;
        e.last_seq = 0;
        e.last_time = INT64_MIN;
        st = store_walk(s, db, NULL, 0, exp_walk, &e);
        if (st == ST_OK && journal_dir != NULL && stat(journal_dir, &sb) == 0)
            st = journal_scan(journal_dir, exp_journal, &e);
        if (!e.have_end)
            break; /* nothing in the range */
    }
    if (st == ST_OK && (fflush(f) != 0 || ferror(f)))
        st = ST_IO;
    return st;
}
