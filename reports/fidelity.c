/* fidelity: see fidelity.h.
 *
 * The comparison is made at the record's own samples, each against the replay at the end of the
 * first step at or after it (where the simulated state is defined: SoC after the step, powers
 * over it): a record holds nothing between its samples, and interpolating a 10 s record of a
 * 6 s oscillation would invent an error the replay does not have. The plots show the record
 * resampled on the run's steps (fidelity_field_at). Sums use Welford's updates (means and
 * co-moments): a day of watts at 1 s in plain sums of squares would lose the correlation's digits.
 */
#define _GNU_SOURCE
#include "reports/fidelity.h"
#include "reports/oscill.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const series_names[FID_COUNT] = {"grid_w", "soc", "battery_w"};

const char *fidelity_series_name(int i)
{
    return i >= 0 && i < FID_COUNT ? series_names[i] : "?";
}

struct fseries {
    size_t n, cap, cur; /* cur: the interpolation cursor (times only grow) */
    size_t done;        /* samples [0, done) compared with the replay */
    int64_t *t;
    double *v;
    /* the comparison: simulated x, recorded y */
    size_t k;
    double mx, my, cxx, cyy, cxy, md, sdd; /* means, co-moments, mean and sum of squares of x-y */
};

struct fidelity {
    struct fseries s[FID_COUNT];
    double *replay_grid; /* the replay's grid power at each recorded grid sample [0, done) */
};

void fidelity_free(struct fidelity *f)
{
    if (!f)
        return;
    for (int i = 0; i < FID_COUNT; i++) {
        free(f->s[i].t);
        free(f->s[i].v);
    }
    free(f->replay_grid);
    free(f);
}

static int push(struct fseries *s, int64_t t, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        int64_t *nt = realloc(s->t, cap * sizeof *nt);
        if (!nt)
            return -ENOMEM;
        s->t = nt;
        double *nv = realloc(s->v, cap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        s->v = nv;
        s->cap = cap;
    }
    s->t[s->n] = t;
    s->v[s->n++] = v;
    return 0;
}

/* Splits a CSV line at commas in place (cells trimmed of blanks and the line end). */
static size_t split(char *line, char **cells, size_t max)
{
    size_t n = 0;
    for (char *p = line; p && n < max;) {
        char *c = strsep(&p, ",");
        while (*c == ' ' || *c == '\t')
            c++;
        size_t len = strlen(c);
        while (len && strchr(" \t\r\n", c[len - 1]))
            c[--len] = '\0';
        cells[n++] = c;
    }
    return n;
}

/* The CSV column named for each series: the field block's "columns", else the series' name. */
static void column_names(const struct scenario *sc, const char *csv_path, const char *col[])
{
    const cJSON *cols =
        !csv_path && sc->field ? cJSON_GetObjectItemCaseSensitive(sc->field, "columns") : NULL;
    for (int i = 0; i < FID_COUNT; i++) {
        const cJSON *c = cols ? cJSON_GetObjectItemCaseSensitive(cols, series_names[i]) : NULL;
        col[i] = cols ? (cJSON_IsString(c) ? c->valuestring : NULL) : series_names[i];
    }
}

#define MAX_CELLS 256

static int read_csv(struct fidelity *f, const char *path, const char *col[], char *err,
                    size_t errlen)
{
    FILE *in = fopen(path, "r");
    if (!in) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -ENOENT;
    }
    char *line = NULL, *cells[MAX_CELLS];
    size_t cap = 0;
    int idx[FID_COUNT], tcol = -1, rc = 0, lineno = 1, any = 0;
    int64_t last_t = INT64_MIN;
    if (getline(&line, &cap, in) < 0) {
        snprintf(err, errlen, "%s: empty (a header row with a time column is required)", path);
        rc = -EINVAL;
        goto out;
    }
    size_t nh = split(line, cells, MAX_CELLS);
    for (int i = 0; i < FID_COUNT; i++)
        idx[i] = -1;
    for (size_t c = 0; c < nh; c++) {
        if (!strcmp(cells[c], "time"))
            tcol = (int)c;
        for (int i = 0; i < FID_COUNT; i++)
            if (col[i] && !strcmp(cells[c], col[i]))
                idx[i] = (int)c, any = 1;
    }
    if (tcol < 0 || !any) {
        snprintf(err, errlen,
                 "%s:1: needs a \"time\" column and a column of grid_w, soc or battery_w "
                 "(the field block's \"columns\" name them)",
                 path);
        rc = -EINVAL;
        goto out;
    }
    while (getline(&line, &cap, in) >= 0) {
        lineno++;
        size_t n = split(line, cells, MAX_CELLS);
        if (n == 1 && !cells[0][0])
            continue; /* a blank line */
        char *end;
        double ts = strtod(n > (size_t)tcol ? cells[tcol] : "", &end);
        if (end == cells[tcol] || *end || !isfinite(ts)) {
            snprintf(err, errlen,
                     "%s:%d: time: must be seconds from the scenario's start, got \"%s\"", path,
                     lineno, n > (size_t)tcol ? cells[tcol] : "");
            rc = -EINVAL;
            goto out;
        }
        int64_t t = (int64_t)llround(ts * 1000.0);
        if (t <= last_t) {
            snprintf(err, errlen, "%s:%d: time: must increase, got %s after %.3f", path, lineno,
                     cells[tcol], last_t / 1000.0);
            rc = -EINVAL;
            goto out;
        }
        last_t = t;
        for (int i = 0; i < FID_COUNT; i++) {
            if (idx[i] < 0 || (size_t)idx[i] >= n || !cells[idx[i]][0])
                continue; /* an empty cell: a missing sample */
            double v = strtod(cells[idx[i]], &end);
            if (end == cells[idx[i]] || *end || !isfinite(v)) {
                snprintf(err, errlen, "%s:%d: %s: must be a number or empty, got \"%s\"", path,
                         lineno, col[i], cells[idx[i]]);
                rc = -EINVAL;
                goto out;
            }
            if ((rc = push(&f->s[i], t, v))) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto out;
            }
        }
    }
out:
    free(line);
    fclose(in);
    return rc;
}

int fidelity_open(const struct scenario *sc, const char *csv_path, struct fidelity **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    const char *path = csv_path ? csv_path : sc->field ? sc->field_csv : NULL;
    if (!path)
        return 0;
    struct fidelity *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    const char *col[FID_COUNT];
    column_names(sc, csv_path, col);
    int rc = read_csv(f, path, col, err, errlen);
    size_t ng = f->s[FID_GRID_W].n;
    if (!rc && ng && !(f->replay_grid = malloc(ng * sizeof *f->replay_grid))) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    if (rc) {
        fidelity_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

double fidelity_field_at(struct fidelity *f, int series, int64_t t_ms)
{
    struct fseries *s = &f->s[series];
    if (!s->n || t_ms < s->t[0] || t_ms > s->t[s->n - 1])
        return NAN;
    if (s->cur >= s->n || s->t[s->cur] > t_ms)
        s->cur = 0; /* a caller going back in time (tests): search again */
    while (s->cur + 1 < s->n && s->t[s->cur + 1] <= t_ms)
        s->cur++;
    size_t i = s->cur;
    if (s->t[i] == t_ms || i + 1 == s->n)
        return s->v[i];
    double a = (double)(t_ms - s->t[i]) / (double)(s->t[i + 1] - s->t[i]);
    return s->v[i] + a * (s->v[i + 1] - s->v[i]);
}

static void compare(struct fseries *s, double x, double y)
{
    s->k++;
    double dx = x - s->mx, dy = y - s->my, d = x - y;
    s->mx += dx / (double)s->k;
    s->my += dy / (double)s->k;
    s->cxx += dx * (x - s->mx);
    s->cyy += dy * (y - s->my);
    s->cxy += dx * (y - s->my);
    s->md += (d - s->md) / (double)s->k;
    s->sdd += d * d;
}

void fidelity_step(struct fidelity *f, int64_t t_ms, const double sim[FID_COUNT])
{
    for (int i = 0; i < FID_COUNT; i++) {
        struct fseries *s = &f->s[i];
        for (; s->done < s->n && s->t[s->done] <= t_ms; s->done++) {
            if (i == FID_GRID_W)
                f->replay_grid[s->done] = sim[i];
            if (isfinite(sim[i]))
                compare(s, sim[i], s->v[s->done]);
        }
    }
}

/* The oscillation of samples x at times t, evenly spaced (resample): 5-minute windows of at least
 * OSC_MIN_SAMPLES evenly spaced samples (within 1 %: a window with a gap is left out), each
 * one's dominant component; the mean amplitude (0 out of the band) and the mean in-band period. */
static void record_oscillation(const int64_t *t, const double *x, size_t n, double *period_s,
                               double *amplitude_w)
{
    double psum = 0, asum = 0;
    int pn = 0, an = 0;
    for (size_t a = 0, b; a < n; a = b) {
        for (b = a + 1; b < n && t[b] / OSC_WINDOW_MS == t[a] / OSC_WINDOW_MS; b++)
            ;
        size_t m = b - a;
        if (m < OSC_MIN_SAMPLES)
            continue;
        double ts = (double)(t[b - 1] - t[a]) / (double)(m - 1), per, amp;
        int even = 1;
        for (size_t j = a + 1; j < b && even; j++)
            even = fabs((double)(t[j] - t[j - 1]) - ts) <= 0.01 * ts;
        if (!even)
            continue;
        int k = oscill_dominant(x + a, m, ts / 1000.0, &per, &amp);
        an++;
        if (k >= OSC_LOWEST_CYCLES) {
            asum += amp;
            psum += per;
            pn++;
        }
    }
    *amplitude_w = an ? asum / an : NAN;
    *period_s = pn ? psum / pn : NAN;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The median interval of times t[0..n) (n >= 2; the lower middle of an even count): 0 when out
 * of memory. */
static int64_t median_interval(const int64_t *t, size_t n)
{
    int64_t *d = malloc((n - 1) * sizeof *d);
    if (!d)
        return 0;
    for (size_t i = 1; i < n; i++)
        d[i - 1] = t[i] - t[i - 1];
    qsort(d, n - 1, sizeof *d, cmp_i64);
    int64_t m = d[(n - 2) / 2];
    free(d);
    return m;
}

/* Resamples x (at times t[0..n)) onto t[0] + k dt, k = 0, 1, ... up to t[n-1]: linear between the
 * two record samples around each instant, and no sample where those are more than 2 dt apart (a
 * gap in the record: record_oscillation then leaves its window out). A record that is already
 * even comes out unchanged. Returns the number of samples written to rt and rx (room for
 * (t[n-1] - t[0]) / dt + 1). */
static size_t resample(const int64_t *t, const double *x, size_t n, int64_t dt, int64_t *rt,
                       double *rx)
{
    size_t m = 0, i = 0;
    for (int64_t u = t[0]; u <= t[n - 1]; u += dt) {
        while (i + 1 < n && t[i + 1] <= u)
            i++;
        if (t[i] == u) {
            rt[m] = u, rx[m++] = x[i];
        } else if (i + 1 < n && t[i + 1] - t[i] <= 2 * dt) {
            double a = (double)(u - t[i]) / (double)(t[i + 1] - t[i]);
            rt[m] = u, rx[m++] = x[i] + a * (x[i + 1] - x[i]);
        }
    }
    return m;
}

/* The oscillation of the record and of the replay at the record's instants. A real gateway's
 * telemetry comes every 10 or 11 s, never exactly evenly, and a DFT wants even samples: both
 * series are resampled onto the record's median interval first (resample), the same way, so
 * the replay aliases a fast oscillation exactly as the record does. */
static void field_oscillation(const struct fseries *g, const double *replay, struct kpi_set *k)
{
    size_t n = g->done;
    if (n < 2)
        return;
    int64_t dt = median_interval(g->t, n);
    if (dt <= 0)
        return;
    size_t cap = (size_t)((g->t[n - 1] - g->t[0]) / dt) + 1;
    int64_t *rt = malloc(cap * sizeof *rt);
    double *rx = malloc(cap * sizeof *rx), *ry = malloc(cap * sizeof *ry);
    if (rt && rx && ry) {
        size_t m = resample(g->t, g->v, n, dt, rt, rx);
        resample(g->t, replay, n, dt, rt, ry);
        record_oscillation(rt, rx, m, &k->v[KPI_FIELD_OSC_PERIOD_S],
                           &k->v[KPI_FIELD_OSC_AMPLITUDE_W]);
        record_oscillation(rt, ry, m, &k->v[KPI_FIELD_REPLAY_OSC_PERIOD_S],
                           &k->v[KPI_FIELD_REPLAY_OSC_AMPLITUDE_W]);
    }
    free(rt);
    free(rx);
    free(ry);
}

void fidelity_result(const struct fidelity *f, struct kpi_set *k)
{
    k->v[KPI_FIELD_OSC_PERIOD_S] = k->v[KPI_FIELD_OSC_AMPLITUDE_W] = NAN;
    k->v[KPI_FIELD_REPLAY_OSC_PERIOD_S] = k->v[KPI_FIELD_REPLAY_OSC_AMPLITUDE_W] = NAN;
    if (f)
        field_oscillation(&f->s[FID_GRID_W], f->replay_grid, k);
    for (int i = 0; i < FID_COUNT; i++) {
        double *v = &k->v[KPI_FIELD_FIRST + 3 * i];
        v[0] = v[1] = v[2] = NAN;
        const struct fseries *s = f ? &f->s[i] : NULL;
        if (!s || !s->k)
            continue;
        v[0] = sqrt(s->sdd / (double)s->k);
        v[1] = s->md;
        v[2] = s->cxx > 0 && s->cyy > 0 ? s->cxy / sqrt(s->cxx * s->cyy) : NAN;
    }
}
