/* experiment: see experiment.h.
 *
 * kpis.json is part of the digest, so everything in it is a function of the scenario, its
 * seed and the build: fixed precision, keys sorted, no wall time, no paths. It carries the
 * digest of the three other outputs (it cannot carry its own); the digest `der-sim run`
 * prints covers all four. Plots and report.html are not digested: they are drawn from the
 * digested data, and a missing gnuplot must not change a run's identity.
 *
 * The baseline is the same scenario with the gateway section's strategy replaced and its
 * params and stacked constraints dropped (a baseline strategy runs on its defaults), always over
 * the in-process transport: both transports give identical results, and the in-process one is the
 * fast one. */
#include "reports/experiment.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/sha256.h"
#include "reports/measure.h"
#include "reports/plot.h"
#include "reports/progress.h"
#include "reports/report.h"

/* The strategy the scenario's gateway section names ("null" when it names none). */
static const char *experiment_strategy(const struct scenario *sc)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(sc->gateway, "strategy");
    return cJSON_IsString(s) ? s->valuestring : "null";
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* Expectation names are KPI names; sorted like every other object of the file. */
static int by_kpi_name(const void *a, const void *b)
{
    const struct expectation *x = a, *y = b;
    return strcmp(kpi_def(x->kpi)->name, kpi_def(y->kpi)->name);
}

/* A phase that failed ("run", "baseline") and why; kpis.json carries it as "failure" (absent
 * when every phase completed, so a good run's file and digest do not change). */
struct failure {
    const char *phase;
    const char *error;
};

static int write_kpis(const char *dir, const struct scenario *sc,
                      const struct experiment_result *res, const struct failure *fail)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/kpis.json", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fputs("{\n  \"baseline\": ", f);
    if (res->have_baseline) {
        fputs("{\n    \"kpis\": {\n", f);
        kpi_write_members(f, &res->baseline, 0, KPI_VS_FIRST, 6);
        fputs("    },\n    \"strategy\": ", f);
        json_string(f, res->baseline_strategy);
        fputs("\n  },\n", f);
    } else {
        fputs("null,\n", f);
    }
    fprintf(f, "  \"digest_outputs\": \"%s\",\n  \"expectations\": {", res->run.digest);
    struct expectation sorted[EXPECT_MAX];
    size_t n = res->expect.n;
    memcpy(sorted, res->expect.e, n * sizeof sorted[0]);
    qsort(sorted, n, sizeof sorted[0], by_kpi_name);
    for (size_t i = 0; i < n; i++) {
        size_t j = 0; /* the result of this expectation, by its position in the file */
        while (j < n && res->expect.e[j].kpi != sorted[i].kpi)
            j++;
        const struct kpi_def *d = kpi_def(sorted[i].kpi);
        char b[128];
        expect_bounds_text(&sorted[i], b, sizeof b);
        fprintf(f, "%s\n    \"%s\": {\"bounds\": ", i ? "," : "", d->name);
        json_string(f, b);
        fprintf(f, ", \"pass\": %s, \"value\": ", res->results[j].pass ? "true" : "false");
        if (isfinite(res->results[j].value))
            fprintf(f, "%.*f}", d->precision, res->results[j].value);
        else
            fputs("null}", f);
    }
    fprintf(f, "%s},\n", n ? "\n  " : "");
    if (fail && fail->phase) {
        fputs("  \"failure\": {\"error\": ", f);
        json_string(f, fail->error ? fail->error : "");
        fputs(", \"phase\": ", f);
        json_string(f, fail->phase);
        fputs("},\n", f);
    }
    fputs("  \"kpis\": {\n", f);
    kpi_write_members(f, &res->kpis, 0, KPI_VS_FIRST, 4);
    fputs("  },\n  \"notes\": [", f);
    int notes = 0;
    if (!res->kpis.v[KPI_PRICES_KNOWN]) {
        fputs("\n    \"no site names import_price or export_price: the cost KPIs are 0\"", f);
        notes++;
    }
    if (!res->have_baseline) {
        fprintf(f, "%s\n    \"the baseline was not run: vs_baseline is null\"", notes ? "," : "");
        notes++;
    }
    if (res->optimum_note[0]) {
        fprintf(f, "%s\n    ", notes ? "," : "");
        json_string(f, res->optimum_note);
        notes++;
    }
    fprintf(f, "%s],\n  \"scenario\": {\"duration_s\": %.3f, \"name\": ", notes ? "\n  " : "",
            sc->duration_ms / 1000.0);
    json_string(f, sc->name);
    fprintf(f,
            ", \"seed\": %llu, \"sha256\": \"%s\", \"sites\": %zu, \"step_s\": %.3f, "
            "\"strategy\": ",
            (unsigned long long)sc->seed, sc->sha256, sc->n_sites, sc->step_ms / 1000.0);
    json_string(f, experiment_strategy(sc));
    fputs("},\n  \"vs_baseline\": {\n", f);
    kpi_write_members(f, &res->kpis, KPI_VS_FIRST, KPI_COUNT, 4);
    fputs("  }\n}\n", f);
    return fclose(f) ? -EIO : 0;
}

/* A limit the scenario sets on `strategy` (the primary strategy or a stacked constraint), for
 * the plots' limit lines: NaN when the strategy is not there, the file does not set the
 * parameter, or it is a "none" value (1e8 W or more). */
static double strategy_limit_w(const cJSON *gw, const char *strategy, const char *param)
{
    const cJSON *c, *st = cJSON_GetObjectItemCaseSensitive(gw, "strategy"), *params = NULL;
    if (cJSON_IsString(st) && !strcmp(st->valuestring, strategy))
        params = cJSON_GetObjectItemCaseSensitive(gw, "params");
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(gw, "constraints"))
    {
        st = cJSON_GetObjectItemCaseSensitive(c, "strategy");
        if (!params && cJSON_IsString(st) && !strcmp(st->valuestring, strategy))
            params = cJSON_GetObjectItemCaseSensitive(c, "params");
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, param);
    return cJSON_IsNumber(v) && v->valuedouble < 1e8 ? v->valuedouble : NAN;
}

/* One run of sc measured (measure.h): its KPIs in kpis, the optimum's note in note (NULL:
 * not wanted). 0 or -errno with err. */
static int measured_run(const struct scenario *sc, const struct runner_opts *ro,
                        const struct measure_opts *mo, struct runner_result *run,
                        struct kpi_set *kpis, char *note, size_t note_len, char *err, size_t errlen)
{
    struct measure *m = measure_new(sc, mo, err, errlen);
    if (!m)
        return -ENOMEM;
    struct runner_opts o = *ro;
    o.observer = measure_observer(m);
    int rc = runner_run(sc, &o, run, err, errlen);
    if (rc == 0)
        rc = measure_end(m, kpis, err, errlen);
    if (note)
        snprintf(note, note_len, "%s", measure_optimum_note(m));
    measure_free(m);
    return rc;
}

static int run_baseline(const struct scenario *sc, const struct experiment_opts *o,
                        struct experiment_result *res, struct progress *pg, char *err,
                        size_t errlen)
{
    cJSON *gw = sc->gateway ? cJSON_Duplicate(sc->gateway, 1) : cJSON_CreateObject();
    if (!gw)
        return -ENOMEM;
    cJSON_DeleteItemFromObjectCaseSensitive(gw, "strategy");
    cJSON_DeleteItemFromObjectCaseSensitive(gw, "params");
    cJSON_DeleteItemFromObjectCaseSensitive(gw, "constraints"); /* stacked strategies too */
    if (!cJSON_AddStringToObject(gw, "strategy", res->expect.baseline_strategy)) {
        cJSON_Delete(gw);
        return -ENOMEM;
    }
    struct scenario b = *sc; /* shares the profiles and sites: the runner only reads them */
    b.gateway = gw;
    b.headend = NULL; /* operator dispatches still apply, straight to the controller */
    char dir[1100], sub[1024];
    snprintf(dir, sizeof dir, "%s/baseline", o->run.out_dir);
    struct runner_opts ro = {.transport = RUNNER_INPROC,
                             .out_dir = dir,
                             .sample_ms = o->run.sample_ms,
                             .on_progress = pg ? progress_baseline : NULL,
                             .progress_ctx = pg,
                             .stop = o->run.stop};
    /* the baseline's own optimum is never read (savings_vs_optimal_pct uses the run's) */
    struct measure_opts mo = {.kpi_gateway = sc->gateway, /* the same frequency requirement */
                              .plot_dir = dir,
                              .no_optimum = "the optimum is solved for the run, not its baseline"};
    int rc =
        measured_run(&b, &ro, &mo, &res->baseline_run, &res->baseline, NULL, 0, sub, sizeof sub);
    cJSON_Delete(gw);
    if (rc) {
        snprintf(err, errlen, "baseline (strategy %s): %s", res->expect.baseline_strategy, sub);
        return rc;
    }
    res->have_baseline = 1;
    return 0;
}

/* The baseline in a thread of its own, alongside the run: the two share nothing they write
 * (the baseline has its own sites, gateways, bus and output directory; the scenario's profiles
 * are read-only), so their outputs are the same as one after the other, in about half the wall
 * time on two cores. */
struct baseline_job {
    const struct scenario *sc;
    const struct experiment_opts *o;
    struct experiment_result *res;
    struct progress *pg;
    int rc;
    atomic_int done;
    char err[1200];
};

static void *baseline_main(void *arg)
{
    struct baseline_job *j = arg;
    j->rc = run_baseline(j->sc, j->o, j->res, j->pg, j->err, sizeof j->err);
    atomic_store(&j->done, 1);
    return NULL;
}

/* Waits for the baseline's thread, with its progress line. */
static void baseline_join(pthread_t th, struct baseline_job *j)
{
    while (j->pg && !atomic_load(&j->done)) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        progress_wait_tick(j->pg);
        nanosleep(&ts, NULL);
    }
    pthread_join(th, NULL);
}

/* kpis.json for a run whose phase `phase` failed: what is known (the KPIs null when the run
 * itself failed), the expectations judged on it, and the failure. */
static void write_failed(const struct scenario *sc, const struct experiment_opts *o,
                         struct experiment_result *res, const char *phase, const char *error)
{
    struct failure fail = {phase, error};
    if (!strcmp(phase, "run"))
        for (size_t i = 0; i < KPI_COUNT; i++)
            res->kpis.v[i] = NAN;
    res->failed = expect_eval(&res->expect, &res->kpis, res->results);
    write_kpis(o->run.out_dir, sc, res, &fail); /* best effort: the error is already reported */
}

int experiment_run(const struct scenario *sc, const struct experiment_opts *o,
                   struct experiment_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    res->plots_rc = 1;
    int rc = expect_parse(sc->expect, sc->path, &res->expect, err, errlen);
    if (rc)
        return rc;
    snprintf(res->baseline_strategy, sizeof res->baseline_strategy, "%s",
             res->expect.baseline_strategy);
    snprintf(res->strategy, sizeof res->strategy, "%s", experiment_strategy(sc));
    static struct progress pg_store; /* one run per process at a time (der-sim run) */
    struct progress *pg = o->run.progress ? &pg_store : NULL;
    struct runner_opts ro = o->run;
    struct optimum_long_opts oo = o->optimum;
    if (pg) {
        progress_init(pg, stderr, sc->name, !o->no_baseline);
        ro.on_progress = progress_run;
        ro.progress_ctx = pg;
        if (oo.progress) {
            oo.progress = progress_optimum;
            oo.ctx = pg;
        }
    }
    struct baseline_job job = {.sc = sc, .o = o, .res = res, .pg = pg};
    pthread_t th;
    int threaded = 0;
    if (!o->no_baseline)
        threaded = pthread_create(&th, NULL, baseline_main, &job) == 0;
    struct measure_opts mo = {.plot_dir = !o->no_plots || !o->no_report ? o->run.out_dir : NULL,
                              .optimum = &oo,
                              .no_optimum = o->no_optimum ? "--no-optimum: not solved" : NULL};
    rc = measured_run(sc, &ro, &mo, &res->run, &res->kpis, res->optimum_note,
                      sizeof res->optimum_note, err, errlen);
    if (!o->no_baseline) {
        if (threaded)
            baseline_join(th, &job);
        else if (rc == 0)
            job.rc = run_baseline(sc, o, res, pg, job.err, sizeof job.err);
    }
    if (pg && (rc != 0 || job.rc != 0))
        progress_end(pg);
    if (rc != 0) {
        write_failed(sc, o, res, "run", err);
        return rc;
    }
    if (!o->no_baseline) {
        if (job.rc != 0) {
            snprintf(err, errlen, "%s", job.err);
            write_failed(sc, o, res, "baseline", err);
            return job.rc;
        }
        kpi_vs_baseline(&res->kpis, &res->baseline);
    }
    res->failed = expect_eval(&res->expect, &res->kpis, res->results);
    if ((rc = write_kpis(o->run.out_dir, sc, res, NULL)) != 0) {
        snprintf(err, errlen, "%s/kpis.json: cannot write: %s", o->run.out_dir, strerror(-rc));
        return rc;
    }
    /* the run's three files are already in its hash state: add kpis.json */
    struct sha256 h = res->run.digest_ctx;
    uint8_t d[32];
    if (runner_hash_file(&h, o->run.out_dir, "kpis.json") != 0) {
        snprintf(err, errlen, "%s: cannot read the outputs back", o->run.out_dir);
        return -EIO;
    }
    sha256_final(&h, d);
    sha256_to_hex(d, res->digest);

    char title[256], bdir[1100];
    snprintf(title, sizeof title, "%s (%s)", sc->name, experiment_strategy(sc));
    snprintf(bdir, sizeof bdir, "%s/baseline", o->run.out_dir);
    if (!o->no_plots) {
        if (pg)
            progress_phase(pg, "plots");
        struct plot_opts po = {
            .title = title,
            .duration_s = sc->duration_ms / 1000.0,
            .peak_15m_kw = res->kpis.v[KPI_PEAK_IMPORT_15M_KW],
            .import_limit_kw =
                strategy_limit_w(sc->gateway, "peak_shaving", "import_limit_w") / 1000.0,
            .export_limit_kw =
                strategy_limit_w(sc->gateway, "self_consumption", "export_limit_w") / 1000.0,
            .start_unix_ms = sc->start_unix_ms,
            .tz_name = sc->timezone,
            .tz_offset_s = sc->tz_offset_s,
            .baseline_dir = res->have_baseline ? bdir : NULL,
            .gnuplot = o->gnuplot};
        res->plots_rc = plot_render(o->run.out_dir, &po, res->plot_msg, sizeof res->plot_msg);
    }
    if (!o->no_report) {
        if (pg)
            progress_phase(pg, "report");
        snprintf(res->report_path, sizeof res->report_path, "%s/report.html", o->run.out_dir);
        if ((rc = report_write(res->report_path, o->run.out_dir, sc, res, err, errlen)) != 0) {
            res->report_path[0] = '\0';
            return rc;
        }
    }
    if (pg)
        progress_end(pg);
    return 0;
}
