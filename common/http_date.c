/*
 * http_date: IMF-fixdate (RFC 9110 section 5.6.7) without gmtime_r() or strftime(); see
 * http_date.h. The date comes from the day count with the civil-from-days method (H.
 * Hinnant, "chrono-Compatible Low-Level Date Algorithms"): days are shifted to an era of
 * 400 years starting on 0000-03-01, so that February, with the leap day, ends each year and
 * the century rules fall out of the divisions.
 */
#include "common/http_date.h"

#include <string.h>

#define HTTP_DAY_S 86400
#define HTTP_ERA_DAYS 146097    /* days in 400 Gregorian years */
#define HTTP_EPOCH_SHIFT 719468 /* days from 0000-03-01 to 1970-01-01 */

static const char http_wday[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char http_month[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static char *
put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

size_t
http_date_format(int64_t t, char out[HTTP_DATE_LEN])
{
    uint64_t s, days, doe, yoe, doy, mp, y, z;
    unsigned sec, d, m;
    char *p = out;

    if (t < 0)
        t = 0;
    if (t > HTTP_DATE_MAX)
        t = HTTP_DATE_MAX;
    s = (uint64_t)t;
    days = s / HTTP_DAY_S;
    sec = (unsigned)(s % HTTP_DAY_S);
    z = days + HTTP_EPOCH_SHIFT;
    doe = z % HTTP_ERA_DAYS;                                     /* day of the era */
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* year of the era */
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* from March 1st */
    mp = (5 * doy + 2) / 153;                                    /* March = 0 */
    d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    y = (z / HTTP_ERA_DAYS) * 400 + yoe + (m <= 2);

    memcpy(p, http_wday[(days + 4) % 7], 3); /* 1970-01-01 was a Thursday */
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    p = put2(p, d);
    *p++ = ' ';
    memcpy(p, http_month[m - 1], 3);
    p += 3;
    *p++ = ' ';
    p = put2(p, (unsigned)(y / 100));
    p = put2(p, (unsigned)(y % 100));
    *p++ = ' ';
    p = put2(p, sec / 3600);
    *p++ = ':';
    p = put2(p, sec / 60 % 60);
    *p++ = ':';
    p = put2(p, sec % 60);
    memcpy(p, " GMT", 5);
    return (size_t)(p + 4 - out);
}
