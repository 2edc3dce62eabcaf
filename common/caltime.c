/* caltime: see caltime.h. Civil-date conversions after Howard Hinnant's public-domain
 * days_from_civil / civil_from_days algorithms (proleptic Gregorian calendar). */
#include "common/caltime.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int64_t caltime_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

void caltime_split(int64_t unix_ms, struct caltm *o)
{
    int64_t days = unix_ms >= 0 ? unix_ms / 86400000 : -((-unix_ms + 86399999) / 86400000);
    int64_t rem = unix_ms - days * 86400000;
    civil_from_days(days, &o->year, &o->month, &o->day);
    o->yday = (int)(days - caltime_from_civil(o->year, 1, 1)) + 1;
    o->wday = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    o->hour = (int)(rem / 3600000);
    o->min = (int)(rem / 60000 % 60);
    o->sec = (int)(rem / 1000 % 60);
    o->ms = (int)(rem % 1000);
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -EINVAL;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int caltime_parse(const char *s, int64_t *unix_ms)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off_min = 0;
    const char *p = s;
    if (!s || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d))
        return -EINVAL;
    if (mo < 1 || mo > 12)
        return -EINVAL;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (d < 1 || d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
        return -EINVAL;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
            return -EINVAL;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec))
                return -EINVAL;
            if (*p == '.') {
                p++;
                int scale = 100;
                if (*p < '0' || *p > '9')
                    return -EINVAL;
                while (*p >= '0' && *p <= '9') {
                    ms += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                }
            }
        }
        if (h > 23 || mi > 59 || sec > 59)
            return -EINVAL;
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
                return -EINVAL;
            off_min = sign * (oh * 60 + om);
        } else {
            return -EINVAL; /* an instant without a zone is ambiguous */
        }
    }
    if (*p != '\0')
        return -EINVAL;
    int64_t days = caltime_from_civil(y, mo, d);
    *unix_ms = ((days * 24 + h) * 60 + mi - off_min) * 60000 + (int64_t)sec * 1000 + ms;
    return 0;
}

int caltime_parse_hhmm(const char *s, int end_of_day, int *minute)
{
    int h, m;
    const char *p = s;
    /* digits() stops at the first non-digit, so a short string never reads past its end. */
    if (!s || digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &m) || *p != '\0')
        return -EINVAL;
    if (m > 59 || h > 24 || (h == 24 && (m != 0 || !end_of_day)))
        return -EINVAL;
    *minute = h * 60 + m;
    return 0;
}

char *caltime_format(int64_t unix_ms, char *buf, int len)
{
    struct caltm t;
    caltime_split(unix_ms, &t);
    snprintf(buf, (size_t)len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.year, t.month, t.day,
             t.hour, t.min, t.sec, t.ms);
    return buf;
}
