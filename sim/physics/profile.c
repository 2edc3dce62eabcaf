/* profile: evaluation of a scenario's input series as pure functions of time, plus the two
 * builders that need more than JSON: CSV series and the seeded cloud process. Everything random
 * is drawn here once, at load time, so profile_value never changes its answer for a given t.
 * JSON validation lives in scenario.c; formulas in docs/scenario-format.md and docs/physics.md. */
#include "sim/physics/profile.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/caltime.h"
#include "common/duration.h"
#include "sim/physics/rng.h"

#define DEG (M_PI / 180.0)

/* ---- evaluation -------------------------------------------------------------------------- */

/* Interpolates between point i (at ta) and the next point (value vb at tb). */
static double interp(const struct profile *p, int64_t t, int64_t ta, double va, int64_t tb,
                     double vb)
{
    if (p->interp == INTERP_STEP || tb <= ta)
        return va;
    return va + (vb - va) * ((double)(t - ta) / (double)(tb - ta));
}

/* Largest i with t_ms[i] <= t; the caller guarantees t_ms[0] <= t. */
static size_t series_floor(const struct profile *p, int64_t t)
{
    size_t lo = 0, hi = p->n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->t_ms[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static double series_value(const struct profile *p, int64_t t)
{
    size_t n = p->n;
    if (n == 0)
        return 0.0;
    if (n == 1)
        return p->v[0];
    if (p->period_ms > 0) {
        /* One period is the points in [0, period); the gap from the last point to the first
         * point of the next period is interpolated like any other, so a day wraps smoothly. */
        int64_t P = p->period_ms, tm = (t - p->period_origin_ms) % P;
        if (tm < 0)
            tm += P;
        tm += p->period_origin_ms;
        if (tm < p->t_ms[0])
            return interp(p, tm, p->t_ms[n - 1] - P, p->v[n - 1], p->t_ms[0], p->v[0]);
        if (tm >= p->t_ms[n - 1])
            return interp(p, tm, p->t_ms[n - 1], p->v[n - 1], p->t_ms[0] + P, p->v[0]);
        size_t i = series_floor(p, tm);
        return interp(p, tm, p->t_ms[i], p->v[i], p->t_ms[i + 1], p->v[i + 1]);
    }
    if (t <= p->t_ms[0])
        return p->v[0];
    if (t >= p->t_ms[n - 1])
        return p->v[n - 1];
    size_t i = series_floor(p, t);
    return interp(p, t, p->t_ms[i], p->v[i], p->t_ms[i + 1], p->v[i + 1]);
}

/* Haurwitz (1945) clear-sky global horizontal irradiance with the textbook sun position
 * (Cooper's declination, hour angle from mean solar time; no equation of time). */
double profile_clear_sky_w_m2(double latitude_deg, double longitude_deg, int64_t unix_ms)
{
    struct caltm c;
    caltime_split(unix_ms, &c);
    double utc_h = c.hour + c.min / 60.0 + (c.sec + c.ms / 1000.0) / 3600.0;
    double decl = 23.45 * sin(360.0 * (284 + c.yday) / 365.0 * DEG);
    double hour_angle = 15.0 * (utc_h + longitude_deg / 15.0 - 12.0);
    double lat = latitude_deg * DEG, d = decl * DEG;
    double cos_z = sin(lat) * sin(d) + cos(lat) * cos(d) * cos(hour_angle * DEG);
    if (cos_z <= 0.0)
        return 0.0;
    return 1098.0 * cos_z * exp(-0.059 / cos_z);
}

/* The cloud cover at t, 0 outside every event (clouds are sorted and disjoint). */
static double cloud_cover(const struct profile *p, int64_t t)
{
    size_t lo = 0, hi = p->n_clouds;
    if (hi == 0 || t < p->clouds[0].from_ms)
        return 0.0;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->clouds[mid].from_ms <= t)
            lo = mid;
        else
            hi = mid;
    }
    return t < p->clouds[lo].to_ms ? p->clouds[lo].cover : 0.0;
}

static double clear_sky_value(const struct profile *p, int64_t t)
{
    double g = profile_clear_sky_w_m2(p->latitude_deg, p->longitude_deg, p->start_unix_ms + t);
    double n = cloud_cover(p, t);
    if (g <= 0.0 || n <= 0.0)
        return g;
    return g * (1.0 - 0.75 * pow(n, 3.4)); /* Kasten and Czeplak (1980) */
}

static double tou_value(const struct profile *p, int64_t t)
{
    struct caltm c;
    caltime_split(p->start_unix_ms + t, &c);
    int weekend = c.wday == 0 || c.wday == 6;
    const struct tou_band *b = weekend ? p->weekend : p->weekday;
    size_t n = weekend ? p->n_weekend : p->n_weekday;
    int minute = c.hour * 60 + c.min;
    for (size_t i = 0; i < n; i++)
        if (minute >= b[i].from_min && minute < b[i].to_min)
            return b[i].price;
    return n ? b[n - 1].price : 0.0;
}

static double ev_count(const struct profile *p, int64_t t)
{
    int cars = 0;
    for (size_t i = 0; i < p->n_sessions && p->sessions[i].arrive_ms <= t; i++)
        if (t < p->sessions[i].depart_ms)
            cars++;
    return cars;
}

double profile_value(const struct profile *p, int64_t t_ms)
{
    if (!p)
        return 0.0;
    switch (p->kind) {
    case PROFILE_SERIES:
        return series_value(p, t_ms);
    case PROFILE_CLEAR_SKY:
        return clear_sky_value(p, t_ms);
    case PROFILE_TOU:
        return tou_value(p, t_ms);
    case PROFILE_EV_SESSIONS:
        return ev_count(p, t_ms);
    }
    return 0.0;
}

void profile_free(struct profile *p)
{
    if (!p)
        return;
    free(p->t_ms);
    free(p->v);
    free(p->clouds);
    free(p->weekday);
    free(p->weekend);
    free(p->sessions);
    p->t_ms = NULL;
    p->v = NULL;
    p->clouds = NULL;
    p->weekday = p->weekend = NULL;
    p->sessions = NULL;
    p->n = p->n_clouds = p->n_weekday = p->n_weekend = p->n_sessions = 0;
}

/* ---- clouds ------------------------------------------------------------------------------ */

struct cloud_vec {
    struct cloud_event *a;
    size_t n, cap;
};

static int cloud_push(struct cloud_vec *v, int64_t from_ms, int64_t to_ms, double cover)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        struct cloud_event *a = realloc(v->a, cap * sizeof *a);
        if (!a)
            return -ENOMEM;
        v->a = a;
        v->cap = cap;
    }
    v->a[v->n++] = (struct cloud_event){from_ms, to_ms, cover};
    return 0;
}

/* Alternating clear and cloudy spells with exponential lengths: the simplest process that gives
 * the long sunny stretches and short passing clouds a PV controller meets. The first state is
 * drawn from the stationary distribution so t = 0 is not special. */
static int clouds_draw(struct cloud_vec *out, const char *name, uint64_t seed, int64_t duration_ms,
                       const struct cloud_params *g)
{
    char stream[96];
    struct rng r;
    snprintf(stream, sizeof stream, "profile/%s/clouds", name);
    rng_seed(&r, seed, stream);
    double p_cloudy = (double)g->mean_cloudy_ms / (double)(g->mean_clear_ms + g->mean_cloudy_ms);
    int cloudy = rng_uniform(&r) < p_cloudy;
    int64_t t = 0;
    while (t < duration_ms) {
        double mean = (double)(cloudy ? g->mean_cloudy_ms : g->mean_clear_ms);
        double len = rng_exponential(&r, mean);
        int64_t len_ms = len >= (double)(duration_ms - t) ? duration_ms - t : llround(len);
        if (len_ms < 1)
            len_ms = 1;
        if (cloudy) {
            double cover = g->cover_min + rng_uniform(&r) * (g->cover_max - g->cover_min);
            if (cloud_push(out, t, t + len_ms, cover))
                return -ENOMEM;
        }
        t += len_ms;
        cloudy = !cloudy;
    }
    return 0;
}

static int cloud_cmp(const void *a, const void *b)
{
    const struct cloud_event *x = a, *y = b;
    return (x->from_ms > y->from_ms) - (x->from_ms < y->from_ms);
}

int profile_set_clouds(struct profile *p, uint64_t seed, int64_t duration_ms,
                       const struct cloud_params *gen, const struct cloud_event *explicit_ev,
                       size_t n_explicit)
{
    struct cloud_vec drawn = {0}, out = {0};
    int rc = 0;
    if (gen && (rc = clouds_draw(&drawn, p->name, seed, duration_ms, gen)))
        goto done;
    /* Cut each drawn spell around the explicit events (both lists are sorted and disjoint). */
    size_t j = 0;
    for (size_t i = 0; i < drawn.n; i++) {
        int64_t cur = drawn.a[i].from_ms, end = drawn.a[i].to_ms;
        while (j < n_explicit && explicit_ev[j].to_ms <= cur)
            j++;
        for (size_t k = j; k < n_explicit && explicit_ev[k].from_ms < end; k++) {
            if (explicit_ev[k].from_ms > cur &&
                (rc = cloud_push(&out, cur, explicit_ev[k].from_ms, drawn.a[i].cover)))
                goto done;
            if (explicit_ev[k].to_ms > cur)
                cur = explicit_ev[k].to_ms;
        }
        if (cur < end && (rc = cloud_push(&out, cur, end, drawn.a[i].cover)))
            goto done;
    }
    for (size_t k = 0; k < n_explicit; k++)
        if ((rc = cloud_push(&out, explicit_ev[k].from_ms, explicit_ev[k].to_ms,
                             explicit_ev[k].cover)))
            goto done;
    /* Disjoint intervals: ordering by start is total, so qsort's instability cannot show. */
    if (out.n)
        qsort(out.a, out.n, sizeof *out.a, cloud_cmp);
    free(p->clouds);
    p->clouds = out.a;
    p->n_clouds = out.n;
    out.a = NULL;
done:
    free(drawn.a);
    free(out.a);
    return rc;
}

/* ---- CSV --------------------------------------------------------------------------------- */

/* Strips blanks, a trailing CR and one pair of double quotes, in place. */
static char *cell_trim(char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    if (e - s >= 2 && s[0] == '"' && e[-1] == '"') {
        e[-1] = '\0';
        s++;
    }
    return s;
}

static int is_blank(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return *s == '\0';
}

size_t profile_csv_split(char *line, char **cells, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        cells[n++] = cell_trim(p);
        if (!comma)
            break;
        p = comma + 1;
    }
    return n;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    if (!*s)
        return -EINVAL;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return -EINVAL;
    *out = v;
    return 0;
}

/* A time cell in "auto" format: plain seconds, a duration, or an instant (ISO, relative to the
 * scenario start). After a zone is given, ISO stamps without an offset are wall-clock time. */
static int parse_time_cell(const char *s, const struct caltime_zone *z, int have_fmt,
                           enum caltime_format fmt, int64_t start_unix_ms, int64_t prev_ms,
                           int64_t *t_ms)
{
    double sec;
    int64_t x;
    if (!have_fmt) {
        if (parse_double(s, &sec) == 0) {
            if (fabs(sec) > 9.0e12)
                return -EINVAL;
            *t_ms = llround(sec * 1000.0);
            return 0;
        }
        if (duration_parse(s, &x) == 0) {
            *t_ms = x;
            return 0;
        }
    }
    int rc = caltime_parse_stamp(s, fmt, z,
                                 prev_ms == INT64_MIN ? INT64_MIN : prev_ms + start_unix_ms, &x);
    if (rc)
        return rc;
    *t_ms = x - start_unix_ms;
    return 0;
}

static int column_index(char **cells, size_t n, const char *name, size_t dflt, size_t *out)
{
    if (!name) {
        if (dflt >= n)
            return -EINVAL;
        *out = dflt;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(cells[i], name) == 0) {
            *out = i;
            return 0;
        }
    return -EINVAL;
}

#define CSV_MAX_COLS 64

void profile_repeat_points(struct profile *p)
{
    if (p->n < 2) {
        p->period_ms = 0; /* one point is a constant */
        return;
    }
    p->period_origin_ms = p->t_ms[0];
    p->period_ms = p->t_ms[p->n - 1] - p->t_ms[0] + (p->t_ms[p->n - 1] - p->t_ms[p->n - 2]);
}

static const char *time_help(int have_fmt, enum caltime_format fmt)
{
    if (!have_fmt)
        return "a duration, seconds or an ISO instant";
    return fmt == CALTIME_ISO      ? "an ISO 8601 instant"
           : fmt == CALTIME_UNIX_S ? "Unix seconds"
                                   : "Unix milliseconds";
}

int profile_read_csv(struct profile *p, const char *csv_path, const struct profile_csv_opts *o,
                     char *err, size_t errlen)
{
    const char *time_column = o->time_column, *value_column = o->value_column;
    enum caltime_format fmt = CALTIME_ISO;
    int have_fmt = 0;
    struct caltime_zone zone = {0};
    if (o->time_format && strcmp(o->time_format, "auto") != 0) {
        if (caltime_format_parse(o->time_format, &fmt)) {
            snprintf(err, errlen,
                     "%s: time_format must be auto, iso, unix_s or unix_ms, got \"%s\"", csv_path,
                     o->time_format);
            return -EINVAL;
        }
        have_fmt = 1;
    }
    if (o->tz) {
        int zr = caltime_zone_open(&zone, o->tz);
        if (zr) {
            snprintf(err, errlen,
                     "%s: tz must be an IANA zone in the system's zoneinfo, got \"%s\"", csv_path,
                     o->tz);
            return -EINVAL;
        }
    }
    FILE *f = fopen(csv_path, "r");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", csv_path, strerror(e));
        caltime_zone_close(&zone);
        return e == ENOMEM ? -ENOMEM : -ENOENT;
    }
    char *line = NULL, *cells[CSV_MAX_COLS];
    size_t cap = 0, n = 0, alloc = 0, ti = 0, vi = 0, ncols = 0;
    int64_t *t = NULL;
    double *v = NULL;
    int rc = 0;
    long lineno = 0;
    int have_header = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *l = line;
        if (lineno == 1 && (unsigned char)l[0] == 0xEF && (unsigned char)l[1] == 0xBB &&
            (unsigned char)l[2] == 0xBF)
            l += 3; /* a UTF-8 byte order mark, as spreadsheets write it */
        if (is_blank(l))
            continue;
        size_t nc = profile_csv_split(l, cells, CSV_MAX_COLS);
        if (!have_header) {
            have_header = 1;
            ncols = nc;
            if (column_index(cells, nc, time_column, 0, &ti)) {
                snprintf(err, errlen, "%s:%ld: no time column \"%s\" in the header", csv_path,
                         lineno, time_column ? time_column : "(first)");
                rc = -EINVAL;
                goto done;
            }
            if (column_index(cells, nc, value_column, 1, &vi)) {
                snprintf(err, errlen, "%s:%ld: no value column \"%s\" in the header", csv_path,
                         lineno, value_column ? value_column : "(second)");
                rc = -EINVAL;
                goto done;
            }
            /* A column named for Unix time says its format. */
            if (!have_fmt &&
                (strcmp(cells[ti], "unix_s") == 0 || strcmp(cells[ti], "unix_ms") == 0)) {
                caltime_format_parse(cells[ti], &fmt);
                have_fmt = 1;
            }
            continue;
        }
        if (nc != ncols) {
            snprintf(err, errlen, "%s:%ld: expected %zu cells as in the header, got %zu", csv_path,
                     lineno, ncols, nc);
            rc = -EINVAL;
            goto done;
        }
        int64_t tm;
        double val;
        int trc = parse_time_cell(cells[ti], zone.open ? &zone : NULL, have_fmt, fmt,
                                  p->start_unix_ms, n ? t[n - 1] : INT64_MIN, &tm);
        if (trc) {
            if (trc == -EDOM)
                snprintf(err, errlen,
                         "%s:%ld: time \"%.64s\" has no UTC offset: add one (\"+02:00\", \"Z\") or "
                         "give the zone (\"tz\": \"Europe/Berlin\")",
                         csv_path, lineno, cells[ti]);
            else if (trc == -ERANGE)
                snprintf(err, errlen,
                         "%s:%ld: time \"%.64s\" does not exist in %s (skipped by a clock change)",
                         csv_path, lineno, cells[ti], zone.name);
            else
                snprintf(err, errlen, "%s:%ld: time must be %s, got \"%.64s\"", csv_path, lineno,
                         time_help(have_fmt, fmt), cells[ti]);
            rc = -EINVAL;
            goto done;
        }
        if (parse_double(cells[vi], &val)) {
            snprintf(err, errlen, "%s:%ld: value must be a finite number, got \"%.64s\"", csv_path,
                     lineno, cells[vi]);
            rc = -EINVAL;
            goto done;
        }
        if (n > 0 && tm <= t[n - 1]) {
            snprintf(err, errlen, "%s:%ld: times must be strictly increasing, got \"%.64s\"",
                     csv_path, lineno, cells[ti]);
            rc = -EINVAL;
            goto done;
        }
        if (n == alloc) {
            size_t na = alloc ? alloc * 2 : 256;
            int64_t *nt = realloc(t, na * sizeof *nt);
            if (!nt) {
                rc = -ENOMEM;
                goto done;
            }
            t = nt;
            double *nv = realloc(v, na * sizeof *nv);
            if (!nv) {
                rc = -ENOMEM;
                goto done;
            }
            v = nv;
            alloc = na;
        }
        t[n] = tm;
        v[n] = val;
        n++;
    }
    if (!have_header || n == 0) {
        snprintf(err, errlen, "%s:%ld: %s", csv_path, lineno,
                 have_header ? "no data rows after the header"
                             : "empty file, a header is required");
        rc = -EINVAL;
        goto done;
    }
    free(p->t_ms);
    free(p->v);
    p->kind = PROFILE_SERIES;
    p->t_ms = t;
    p->v = v;
    p->n = n;
    t = NULL;
    v = NULL;
done:
    if (rc == -ENOMEM)
        snprintf(err, errlen, "%s: out of memory", csv_path);
    free(t);
    free(v);
    free(line);
    fclose(f);
    caltime_zone_close(&zone);
    return rc;
}
