/* fit: see fit.h.
 *
 * Why a grid first and golden sections after: replay costs are not smooth (an oscillating
 * loop's error against a record jumps with the phase of the oscillation), so a local method
 * alone finds the nearest dent; the grid finds the right basin, and the golden sections,
 * bounded to one grid cell either side, refine inside it. Everything runs in this process on
 * the inproc transport, one run after the other, in a fixed order: the same command finds the
 * same values. */
#define _GNU_SOURCE
#include "reports/fit.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/duration.h"
#include "reports/measure.h"
#include "sim/run/runner.h"
#include "sim/scenario/scenario.h"

#define GOLDEN 0.6180339887498949

int fit_param_parse(const char *spec, struct fit_param *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof p->path) {
        snprintf(err, errlen, "--param wants PATH=LO:HI[:STEPS], got \"%s\"", spec);
        return -EINVAL;
    }
    snprintf(p->path, sizeof p->path, "%.*s", (int)(eq - spec), spec);
    char buf[256], *parts[4] = {0};
    snprintf(buf, sizeof buf, "%s", eq + 1);
    int n = 0;
    for (char *save, *t = strtok_r(buf, ":", &save); t && n < 4; t = strtok_r(NULL, ":", &save))
        parts[n++] = t;
    if (n < 2 || n > 3) {
        snprintf(err, errlen, "--param %s: wants LO:HI[:STEPS], got \"%s\"", p->path, eq + 1);
        return -EINVAL;
    }
    char *end;
    double lo = strtod(parts[0], &end);
    int num_lo = end != parts[0] && !*end, num_hi;
    double hi = strtod(parts[1], &end);
    num_hi = end != parts[1] && !*end;
    if (!num_lo || !num_hi) {
        int64_t a, b;
        if (num_lo || num_hi || duration_parse(parts[0], &a) || duration_parse(parts[1], &b)) {
            snprintf(err, errlen,
                     "--param %s: LO and HI must both be numbers or both durations (\"1s\"), "
                     "got \"%s\" and \"%s\"",
                     p->path, parts[0], parts[1]);
            return -EINVAL;
        }
        lo = (double)a;
        hi = (double)b;
        p->duration = 1;
    }
    if (!isfinite(lo) || !isfinite(hi) || lo > hi) {
        snprintf(err, errlen, "--param %s: LO must be <= HI, got %s and %s", p->path, parts[0],
                 parts[1]);
        return -EINVAL;
    }
    p->lo = lo;
    p->hi = hi;
    p->steps = 5;
    if (n == 3) {
        long s = strtol(parts[2], &end, 10);
        if (*end || s < 1 || s > FIT_MAX_STEPS) {
            snprintf(err, errlen, "--param %s: STEPS must be an integer in [1, %d], got \"%s\"",
                     p->path, FIT_MAX_STEPS, parts[2]);
            return -EINVAL;
        }
        p->steps = (int)s;
    }
    return 0;
}

/* A value as --set writes it: durations in whole milliseconds, numbers with 10 digits. */
static double settle(const struct fit_param *p, double v)
{
    if (p->duration)
        return (double)llround(v);
    char b[32];
    snprintf(b, sizeof b, "%.10g", v);
    return strtod(b, NULL);
}

static void format_value(const struct fit_param *p, double v, char *buf, size_t len)
{
    if (p->duration)
        snprintf(buf, len, "\"%lldms\"", (long long)llround(v));
    else
        snprintf(buf, len, "%.10g", v);
}

/* The --set list of a run: the user's, then PATH=VALUE of every parameter. */
struct overrides {
    char sets[FIT_MAX_PARAMS][320];
    const char *ovs[FIT_MAX_SETS + FIT_MAX_PARAMS];
    size_t n;
};

static void overrides(const struct fit_opts *o, const double *vals, struct overrides *ov)
{
    ov->n = 0;
    for (size_t i = 0; i < o->n_sets && i < FIT_MAX_SETS; i++)
        ov->ovs[ov->n++] = o->sets[i];
    for (size_t i = 0; i < o->n; i++) {
        char v[64];
        format_value(&o->p[i], vals[i], v, sizeof v);
        snprintf(ov->sets[i], sizeof ov->sets[i], "%s=%s", o->p[i].path, v);
        ov->ovs[ov->n++] = ov->sets[i];
    }
}

/* The run directory, emptied and removed at the end. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                char p[1200];
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

struct search {
    const struct fit_opts *o;
    char dir[512];
    double cur[FIT_MAX_PARAMS]; /* the values of the next run */
    struct fit_result *res;
    int have;
};

static double cost_of(const struct fit_opts *o, const struct kpi_set *k)
{
    const double *v = k->v;
    if (o->target == FIT_RMSE)
        return isnan(v[KPI_FIELD_GRID_RMSE_W]) ? INFINITY : v[KPI_FIELD_GRID_RMSE_W];
    double af = v[KPI_FIELD_OSC_AMPLITUDE_W], ar = v[KPI_FIELD_REPLAY_OSC_AMPLITUDE_W];
    double pf = v[KPI_FIELD_OSC_PERIOD_S], pr = v[KPI_FIELD_REPLAY_OSC_PERIOD_S];
    if (isnan(af) || isnan(ar))
        return INFINITY;
    double c = fabs(ar - af) / fmax(af, 100.0);
    if (!isnan(pf) && !isnan(pr))
        c += fabs(pr - pf) / pf;
    else if (!isnan(pf) || !isnan(pr))
        c += 1;
    return c;
}

/* One run with s->cur; its cost in *cost (INFINITY when the record has nothing to compare). */
static int evaluate(struct search *s, const char *label, double *cost, char *err, size_t errlen)
{
    const struct fit_opts *o = s->o;
    struct overrides ov;
    overrides(o, s->cur, &ov);
    struct scenario *sc;
    int rc = scenario_load(o->scenario, ov.ovs, ov.n, &sc, err, errlen);
    if (rc)
        return rc;
    struct measure_opts mo = {.field_csv = o->field_csv};
    struct measure *m = measure_new(sc, &mo, err, errlen);
    if (!m) {
        scenario_free(sc);
        return -EINVAL;
    }
    struct runner_opts ro = {
        .transport = RUNNER_INPROC, .out_dir = s->dir, .observer = measure_observer(m)};
    struct runner_result rr;
    struct kpi_set k;
    rc = runner_run(sc, &ro, &rr, err, errlen);
    if (!rc)
        rc = measure_end(m, &k, err, errlen);
    measure_free(m);
    scenario_free(sc);
    if (rc)
        return rc;
    *cost = cost_of(o, &k);
    s->res->runs++;
    if (!s->have || *cost < s->res->cost) {
        s->have = 1;
        s->res->cost = *cost;
        s->res->kpis = k;
        memcpy(s->res->best, s->cur, sizeof s->res->best);
    }
    if (o->progress) {
        fprintf(o->progress, "fit: %s", label);
        for (size_t i = 0; i < o->n; i++) {
            char v[64];
            format_value(&o->p[i], s->cur[i], v, sizeof v);
            fprintf(o->progress, " %s=%s", o->p[i].path, v);
        }
        fprintf(o->progress, " cost=%.6g\n", *cost);
        fflush(o->progress);
    }
    return 0;
}

static double grid_value(const struct fit_param *p, int i)
{
    return settle(p, p->steps > 1 ? p->lo + (p->hi - p->lo) * i / (p->steps - 1) : p->lo);
}

static int grid(struct search *s, char *err, size_t errlen)
{
    const struct fit_opts *o = s->o;
    long total = 1;
    for (size_t i = 0; i < o->n; i++)
        total *= o->p[i].steps;
    for (long r = 0; r < total; r++) {
        long q = r;
        for (size_t i = o->n; i-- > 0;) { /* the first parameter varies slowest */
            s->cur[i] = grid_value(&o->p[i], (int)(q % o->p[i].steps));
            q /= o->p[i].steps;
        }
        char label[48];
        snprintf(label, sizeof label, "grid %ld/%ld", r + 1, total);
        double c;
        int rc = evaluate(s, label, &c, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* Golden section on parameter j over one grid cell either side of the best, the others at
 * their best. */
static int refine(struct search *s, size_t j, int iters, char *err, size_t errlen)
{
    const struct fit_param *p = &s->o->p[j];
    if (p->steps < 2 || iters <= 0)
        return 0;
    double h = (p->hi - p->lo) / (p->steps - 1), b = s->res->best[j];
    double a = fmax(p->lo, b - h), c = fmin(p->hi, b + h);
    double x[2] = {c - GOLDEN * (c - a), a + GOLDEN * (c - a)}, f[2];
    char label[48];
    snprintf(label, sizeof label, "refine %s", p->path);
    memcpy(s->cur, s->res->best, sizeof s->cur);
    for (int k = 0; k < 2; k++) {
        s->cur[j] = settle(p, x[k]);
        int rc = evaluate(s, label, &f[k], err, errlen);
        if (rc)
            return rc;
    }
    for (int it = 0; it < iters; it++) {
        int left = f[0] < f[1]; /* the minimum is in [a, x1] */
        if (left) {
            c = x[1];
            x[1] = x[0];
            f[1] = f[0];
            x[0] = c - GOLDEN * (c - a);
        } else {
            a = x[0];
            x[0] = x[1];
            f[0] = f[1];
            x[1] = a + GOLDEN * (c - a);
        }
        int k = left ? 0 : 1;
        memcpy(s->cur, s->res->best, sizeof s->cur);
        s->cur[j] = settle(p, x[k]);
        int rc = evaluate(s, label, &f[k], err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

int fit_run(const struct fit_opts *o, struct fit_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (o->n == 0 || o->n > FIT_MAX_PARAMS) {
        snprintf(err, errlen, "fit: wants 1 to %d --param", FIT_MAX_PARAMS);
        return -EINVAL;
    }
    struct search s = {.o = o, .res = res};
    const char *tmp = getenv("TMPDIR");
    snprintf(s.dir, sizeof s.dir, "%s/derloop-fit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s.dir)) {
        snprintf(err, errlen, "fit: cannot create a run directory %s: %s", s.dir, strerror(errno));
        return -errno;
    }
    int rc = grid(&s, err, errlen);
    int iters = o->refine ? o->refine : 8;
    for (size_t j = 0; !rc && j < o->n; j++)
        rc = refine(&s, j, iters, err, errlen);
    remove_dir(s.dir);
    if (!rc && isinf(res->cost)) {
        snprintf(err, errlen,
                 "fit: nothing to match: the field record has no %s the runs cover (time in "
                 "seconds from the scenario's start)",
                 o->target == FIT_RMSE ? "grid_w samples" : "5-minute window of grid_w samples");
        rc = -EINVAL;
    }
    return rc;
}

int fit_write_scenario(const struct fit_opts *o, const struct fit_result *res, const char *out_path,
                       char *err, size_t errlen)
{
    struct scenario *sc;
    struct overrides ov;
    overrides(o, res->best, &ov);
    int rc = scenario_load(o->scenario, ov.ovs, ov.n, &sc, err, errlen);
    if (rc)
        return rc;
    cJSON *doc = cJSON_Duplicate(sc->root, 1);
    scenario_free(sc);
    char abs[4096];
    if (doc && o->field_csv && !cJSON_GetObjectItemCaseSensitive(doc, "field") &&
        realpath(o->field_csv, abs)) {
        cJSON *f = cJSON_AddObjectToObject(doc, "field"), *c;
        cJSON_AddStringToObject(f, "csv", abs);
        c = cJSON_AddObjectToObject(f, "columns");
        cJSON_AddStringToObject(c, "grid_w", "grid_w");
        cJSON_AddStringToObject(c, "soc", "soc");
        cJSON_AddStringToObject(c, "battery_w", "battery_w");
    }
    char *text = doc ? cJSON_Print(doc) : NULL;
    cJSON_Delete(doc);
    FILE *f = text ? fopen(out_path, "w") : NULL;
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f))
        ok = 0;
    free(text);
    if (!ok) {
        snprintf(err, errlen, "%s: cannot write: %s", out_path, strerror(errno));
        return -EIO;
    }
    return 0;
}
