/* caltime: see caltime.h. Civil-date conversions after Howard Hinnant's public-domain
 * days_from_civil / civil_from_days algorithms (proleptic Gregorian calendar). Everything here
 * is pure arithmetic except the caltime_zone functions, which read the system's zoneinfo through
 * TZ, tzset and localtime_r: they exist for loaders converting field records to UTC once, at
 * load time, and are never called while a simulation or a controller runs. */
#include "common/caltime.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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

/* A civil date and time with its zone as written: has_zone 0 = none given ("2026-05-12 11:00"). */
struct civil {
    int y, mo, d, h, mi, sec, ms, off_min, has_zone, has_time;
};

static int parse_civil(const char *s, struct civil *c)
{
    const char *p = s;
    memset(c, 0, sizeof *c);
    if (!s || digits(&p, 4, &c->y) || *p++ != '-' || digits(&p, 2, &c->mo) || *p++ != '-' ||
        digits(&p, 2, &c->d))
        return -EINVAL;
    if (c->mo < 1 || c->mo > 12)
        return -EINVAL;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (c->d < 1 || c->d > mdays[c->mo - 1] + (c->mo == 2 && is_leap(c->y)))
        return -EINVAL;
    c->has_zone = 1; /* a date alone is midnight UTC */
    if (*p == 'T' || *p == ' ') {
        p++;
        c->has_time = 1;
        if (digits(&p, 2, &c->h) || *p++ != ':' || digits(&p, 2, &c->mi))
            return -EINVAL;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &c->sec))
                return -EINVAL;
            if (*p == '.') {
                p++;
                int scale = 100;
                if (*p < '0' || *p > '9')
                    return -EINVAL;
                while (*p >= '0' && *p <= '9') {
                    c->ms += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                }
            }
        }
        if (c->h > 23 || c->mi > 59 || c->sec > 59)
            return -EINVAL;
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
                return -EINVAL;
            c->off_min = sign * (oh * 60 + om);
        } else {
            c->has_zone = 0;
        }
    }
    return *p == '\0' ? 0 : -EINVAL;
}

/* The civil time read as if it were UTC, in ms (the zone's offset not applied). */
static int64_t civil_as_utc_ms(const struct civil *c)
{
    int64_t days = caltime_from_civil(c->y, c->mo, c->d);
    return ((days * 24 + c->h) * 60 + c->mi) * 60000 + (int64_t)c->sec * 1000 + c->ms;
}

int caltime_parse(const char *s, int64_t *unix_ms)
{
    struct civil c;
    if (parse_civil(s, &c) || !c.has_zone)
        return -EINVAL; /* an instant without a zone is ambiguous */
    *unix_ms = civil_as_utc_ms(&c) - (int64_t)c.off_min * 60000;
    return 0;
}

/* ---- time zones (loaders only) ----------------------------------------------------------- */

int caltime_zone_open(struct caltime_zone *z, const char *name)
{
    memset(z, 0, sizeof *z);
    if (!name || !*name || strlen(name) >= sizeof z->name || name[0] == '/' || strstr(name, ".."))
        return -EINVAL;
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("/_+-", *p)))
            return -EINVAL;
    /* tzset() takes an unknown name silently as UTC: the zone file must exist. */
    const char *dir = getenv("TZDIR");
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    if (strcmp(name, "UTC") != 0 && (stat(path, &st) != 0 || !S_ISREG(st.st_mode)))
        return -ENOENT;
    snprintf(z->name, sizeof z->name, "%s", name);
    const char *old = getenv("TZ");
    z->had_tz = old != NULL;
    if (old)
        snprintf(z->saved_tz, sizeof z->saved_tz, "%s", old);
    if (setenv("TZ", name, 1) != 0)
        return -ENOMEM;
    tzset();
    z->open = 1;
    return 0;
}

void caltime_zone_close(struct caltime_zone *z)
{
    if (!z->open)
        return;
    if (z->had_tz)
        setenv("TZ", z->saved_tz, 1);
    else
        unsetenv("TZ");
    tzset();
    z->open = 0;
}

/* The zone's UTC offset at a UTC instant, in seconds. */
static int64_t zone_offset_s(int64_t unix_s)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (!localtime_r(&t, &tm))
        return 0;
    return tm.tm_gmtoff;
}

/* Wall-clock time in the open zone -> UTC. Every offset the zone has within a day of the
 * instant is a candidate; a candidate u is right when the offset at u is the one assumed. None
 * is a time skipped by a clock change (-ERANGE); two are the repeated hour, and the earlier one
 * that still follows `after_ms` is taken (so a series written in wall-clock time stays
 * increasing through the autumn change). */
static int zone_to_utc(const struct civil *c, int64_t after_ms, int64_t *unix_ms)
{
    int64_t wall_ms = civil_as_utc_ms(c), wall_s = wall_ms / 1000 - (wall_ms % 1000 < 0);
    int64_t cand[3] = {0, 0, 0};
    int n = 0;
    for (int k = -1; k <= 1; k++) {
        int64_t off = zone_offset_s(wall_s + k * 86400);
        int64_t u = wall_ms - off * 1000;
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= cand[i] == u;
        if (!dup && zone_offset_s(u / 1000 - (u % 1000 < 0)) == off)
            cand[n++] = u;
    }
    if (n == 0)
        return -ERANGE;
    int64_t best = INT64_MAX, first = INT64_MAX;
    for (int i = 0; i < n; i++) {
        if (cand[i] < first)
            first = cand[i];
        if (cand[i] > after_ms && cand[i] < best)
            best = cand[i];
    }
    *unix_ms = best != INT64_MAX ? best : first;
    return 0;
}

/* A plain decimal number (no exponent, no sign but '-') times scale, rounded to ms. */
static int parse_epoch(const char *s, double scale_ms, int64_t *unix_ms)
{
    const char *p = s;
    int dot = 0, nd = 0;
    if (*p == '-')
        p++;
    for (; *p; p++) {
        if (*p == '.' && !dot)
            dot = 1;
        else if (*p >= '0' && *p <= '9')
            nd++;
        else
            return -EINVAL;
    }
    if (nd == 0 || nd > 16)
        return -EINVAL;
    /* the years an ISO stamp can write (0000..9999): 16 digits of seconds overflowed int64 ms
     * (llround's result is then unspecified), which came out as "out of memory" or "times must
     * be strictly increasing" in the importer, and signed overflow in its interval arithmetic */
    double ms = strtod(s, NULL) * scale_ms;
    if (!(ms >= -62167219200000.0 && ms < 253402300800000.0))
        return -EINVAL;
    *unix_ms = llround(ms);
    return 0;
}

int caltime_parse_stamp(const char *s, enum caltime_format f, const struct caltime_zone *z,
                        int64_t after_ms, int64_t *unix_ms)
{
    struct civil c;
    if (!s)
        return -EINVAL;
    switch (f) {
    case CALTIME_UNIX_S:
        return parse_epoch(s, 1000.0, unix_ms);
    case CALTIME_UNIX_MS:
        return parse_epoch(s, 1.0, unix_ms);
    case CALTIME_ISO:
        break;
    }
    if (parse_civil(s, &c))
        return -EINVAL;
    if (c.has_zone) {
        *unix_ms = civil_as_utc_ms(&c) - (int64_t)c.off_min * 60000;
        return 0;
    }
    if (!z || !z->open)
        return -EDOM;
    return zone_to_utc(&c, after_ms, unix_ms);
}

int caltime_format_parse(const char *name, enum caltime_format *f)
{
    static const char *const names[] = {"iso", "unix_s", "unix_ms"};
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, names[i]) == 0) {
            *f = (enum caltime_format)i;
            return 0;
        }
    return -EINVAL;
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
