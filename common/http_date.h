/*
 * http_date: the HTTP date of RFC 9110 section 5.6.7 in its preferred form, IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT"), for Date, Last-Modified and Expires. Written from the
 * count of seconds with integer arithmetic only (days to the proleptic Gregorian calendar,
 * as gmtime does), so a reply path pays neither gmtime_r()'s time zone lock nor strftime()'s
 * locale: the names of days and months are the fixed English ones the RFC requires.
 */
#ifndef COMMON_HTTP_DATE_H
#define COMMON_HTTP_DATE_H

#include <stddef.h>
#include <stdint.h>

/* Room for an IMF-fixdate and its NUL: 29 characters + 1. */
#define HTTP_DATE_LEN 30
/* The last second with a four-digit year: 9999-12-31 23:59:59 UTC. */
#define HTTP_DATE_MAX INT64_C(253402300799)

/*
 * Write the IMF-fixdate of t (seconds since 1970-01-01 00:00:00 UTC, leap seconds not
 * counted, as time_t) into out, NUL-terminated. The grammar has a four-digit year and no
 * sign, so t is clamped to [0, HTTP_DATE_MAX]: a negative t gives the epoch, a later one
 * 9999-12-31 23:59:59 (a far-future Expires stays far in the future). Returns the length
 * written without the NUL, always HTTP_DATE_LEN - 1. Any thread; no locks, no allocation.
 */
size_t http_date_format(int64_t t, char out[HTTP_DATE_LEN]);

#endif
