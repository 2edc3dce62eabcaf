/* sweep: see sweep.h.
 *
 * Each combination is a separate process: runs share nothing, a crash costs one row, and N
 * cores run N combinations. Combination k numbers the grid with the first --set varying
 * slowest, like nested loops written in the order of the command line; the tables follow k,
 * never the order in which children finish, so a sweep's outputs are deterministic. */
#define _GNU_SOURCE
#include "reports/sweep.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reports/compare.h"
#include "reports/expect.h"
#include "reports/kpi.h"
#include "reports/plot.h"
#include "reports/report.h"
#include "sim/scenario/scenario.h"
#include "sim/run/sitecfg.h"

extern char **environ;

/* The KPIs every sweep shows and plots (plus the one being optimised). */
static const int main_kpis[] = {KPI_NET_COST, KPI_PEAK_IMPORT_15M_KW, KPI_SELF_CONSUMPTION_RATIO,
                                KPI_INTERLOCK_TOTAL};
#define N_MAIN (sizeof main_kpis / sizeof main_kpis[0])

enum run_status { RUN_PENDING, RUN_PASS, RUN_FAIL, RUN_ERROR };
static const char *const status_names[] = {"pending", "pass", "fail", "error"};

/* The end of the value starting at v: the next comma outside JSON brackets and strings, or the
 * terminating NUL, so "[1,2],[3,4]" is two values and "{\"a\":1,\"b\":2}" one. */
static const char *value_end(const char *v)
{
    int depth = 0, quoted = 0;
    for (; *v; v++) {
        if (quoted) {
            if (*v == '\\' && v[1])
                v++;
            else if (*v == '"')
                quoted = 0;
        } else if (*v == '"') {
            quoted = 1;
        } else if (*v == '[' || *v == '{') {
            depth++;
        } else if ((*v == ']' || *v == '}') && depth > 0) {
            depth--;
        } else if (*v == ',' && depth == 0) {
            break;
        }
    }
    return v;
}

int sweep_parse_param(const char *arg, struct sweep_param *p, char *err, size_t errlen)
{
    const char *eq = strchr(arg, '=');
    memset(p, 0, sizeof *p);
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof p->path || !eq[1]) {
        snprintf(err, errlen, "--set wants PATH=V1,V2,..., got \"%s\"", arg);
        return -EINVAL;
    }
    memcpy(p->path, arg, (size_t)(eq - arg));
    for (const char *v = eq + 1;;) {
        const char *end = value_end(v);
        size_t len = (size_t)(end - v);
        if (p->n >= SWEEP_MAX_VALUES || len == 0 || len >= sizeof p->value[0]) {
            snprintf(err, errlen, "--set %s: 1 to %d non-empty values under %zu characters",
                     p->path, SWEEP_MAX_VALUES, sizeof p->value[0]);
            return -EINVAL;
        }
        memcpy(p->value[p->n++], v, len);
        if (!*end)
            break;
        v = end + 1;
    }
    return 0;
}

/* One CSV field: quoted (RFC 4180) when it holds a comma, a quote or a line break, as JSON
 * values do. */
static void csv_field(FILE *f, const char *s)
{
    if (!s[strcspn(s, ",\"\r\n")]) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* The value index of parameter j in combination k. */
static size_t value_of(const struct sweep_opts *o, size_t k, size_t j)
{
    size_t stride = 1;
    for (size_t q = j + 1; q < o->n_params; q++)
        stride *= o->params[q].n;
    return (k / stride) % o->params[j].n;
}

/* Runs per combination (at least 1). */
static size_t seeds_of(const struct sweep_opts *o)
{
    return o->seeds > 1 ? o->seeds : 1;
}

/* Run r's directory name under runs/: "NNNN" (the combination) or "NNNN-sI" with seeds. */
static void run_name(const struct sweep_opts *o, size_t r, char *buf, size_t len)
{
    if (o->seeds > 1)
        snprintf(buf, len, "%04zu-s%zu", r / o->seeds, r % o->seeds);
    else
        snprintf(buf, len, "%04zu", r);
}

/* The arguments of run r, the combination r / seeds_of(o): `der-sim run` into dir
 * (OUT/runs/NAME), NULL-terminated, in argv (room for 18 + 2 x (params + fixed)); sets and seed
 * hold the texts. */
struct run_args {
    char dir[1100], log[1200], status[1200];
    char sets[SWEEP_MAX_PARAMS][400], seed[32];
    const char **argv;
};

static int run_args(const struct sweep_opts *o, size_t r, struct run_args *ra)
{
    size_t k = r / seeds_of(o);
    char name[64];
    run_name(o, r, name, sizeof name);
    snprintf(ra->dir, sizeof ra->dir, "%s/runs/%s", o->out_dir, name);
    snprintf(ra->log, sizeof ra->log, "%s/runs/%s.log", o->out_dir, name);
    snprintf(ra->status, sizeof ra->status, "%s/runs/%s.status", o->out_dir, name);
    /* every fixed --set goes to every run (a fixed-size argv used to drop those past 64) */
    ra->argv = malloc((18 + 2 * SWEEP_MAX_PARAMS + 2 * o->n_fixed) * sizeof *ra->argv);
    if (!ra->argv)
        return -ENOMEM;
    const char **argv = ra->argv;
    size_t a = 0;
    argv[a++] = o->exe;
    argv[a++] = "run";
    argv[a++] = "--transport";
    argv[a++] = "inproc";
    argv[a++] = "--quiet";
    argv[a++] = "--no-plots";
    argv[a++] = "--no-report";
    argv[a++] = "--out";
    argv[a++] = ra->dir;
    for (size_t i = 0; i < o->n_fixed; i++) {
        argv[a++] = "--set";
        argv[a++] = o->fixed_sets[i];
    }
    for (size_t j = 0; j < o->n_params; j++) {
        snprintf(ra->sets[j], sizeof ra->sets[j], "%s=%s", o->params[j].path,
                 o->params[j].value[value_of(o, k, j)]);
        argv[a++] = "--set";
        argv[a++] = ra->sets[j];
    }
    if (o->seeds > 1) {
        snprintf(ra->seed, sizeof ra->seed, "%llu",
                 (unsigned long long)(o->base_seed + r % o->seeds));
        argv[a++] = "--seed";
        argv[a++] = ra->seed;
    }
    argv[a++] = o->scenario;
    argv[a] = NULL;
    return 0;
}

static pid_t spawn_run(const struct sweep_opts *o, size_t r)
{
    struct run_args ra;
    if (run_args(o, r, &ra) != 0)
        return -ENOMEM;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, ra.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, o->exe, &fa, NULL, (char *const *)ra.argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    free(ra.argv);
    return rc ? -rc : pid;
}

static void combo_text(const struct sweep_opts *o, size_t k, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t j = 0; j < o->n_params && used < len; j++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s=%s", j ? " " : "", o->params[j].path,
                                 o->params[j].value[value_of(o, k, j)]);
}

/* The number of combinations, or 0 (with err) when there are none or too many. */
static size_t n_combos(const struct sweep_opts *o, char *err, size_t errlen)
{
    size_t n = 1;
    for (size_t j = 0; j < o->n_params; j++)
        n *= o->params[j].n;
    if (!o->n_params || n > SWEEP_MAX_RUNS) {
        snprintf(err, errlen, "1 to %d combinations, got %zu", SWEEP_MAX_RUNS, o->n_params ? n : 0);
        return 0;
    }
    return n;
}

/* Combination k as its run would load it: the scenario with the fixed --set values, then the
 * combination's, then its expectations and each site's gateway configuration. */
static int check_one(const struct sweep_opts *o, size_t k, const char **sets, char *err,
                     size_t errlen)
{
    char combo[SWEEP_MAX_PARAMS][400];
    size_t n = 0;
    for (size_t i = 0; i < o->n_fixed; i++)
        sets[n++] = o->fixed_sets[i];
    for (size_t j = 0; j < o->n_params; j++) {
        snprintf(combo[j], sizeof combo[j], "%s=%s", o->params[j].path,
                 o->params[j].value[value_of(o, k, j)]);
        sets[n++] = combo[j];
    }
    struct scenario *sc;
    int rc = scenario_load(o->scenario, sets, n, &sc, err, errlen);
    if (rc)
        return rc;
    struct expect_list el;
    if ((rc = expect_parse(sc->expect, sc->path, &el, err, errlen)) == 0)
        rc = sitecfg_check(sc, err, errlen);
    scenario_free(sc);
    return rc;
}

int sweep_check(const struct sweep_opts *o, FILE *out, char *err, size_t errlen)
{
    size_t n = n_combos(o, err, errlen), n_bad = 0;
    if (!n)
        return -EINVAL;
    const char **sets = malloc((o->n_fixed + o->n_params + 1) * sizeof *sets);
    if (!sets) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int first_rc = 0;
    for (size_t k = 0; k < n; k++) {
        char why[1024], combo[512];
        int rc = check_one(o, k, sets, why, sizeof why);
        if (!rc)
            continue;
        combo_text(o, k, combo, sizeof combo);
        fprintf(out, "run %04zu %s: invalid: %s\n", k, combo, why);
        if (!n_bad++) {
            first_rc = rc;
            if (snprintf(err, errlen, "run %04zu %s: %s", k, combo, why) >= (int)errlen)
                err[errlen - 1] = '\0'; /* cut, still a message */
        }
    }
    free(sets);
    if (n_bad) {
        /* the first invalid combination in full, and how many there are */
        char first[1600];
        snprintf(first, sizeof first, "%s", err);
        if (snprintf(err, errlen, "%zu of %zu combinations invalid, no run started; first: %s",
                     n_bad, n, first) >= (int)errlen)
            err[errlen - 1] = '\0'; /* cut, still a message */
    }
    return first_rc;
}

static double json_kpi(const cJSON *k, int id)
{
    const cJSON *g =
        cJSON_GetObjectItemCaseSensitive(k, kpi_is_vs_baseline(id) ? "vs_baseline" : "kpis");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(g, kpi_def(id)->name);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Whether every value of parameter j is a number (plotted at its value, else at its index). */
static int param_numeric(const struct sweep_opts *o, size_t j)
{
    int numeric = 1;
    for (size_t v = 0; v < o->params[j].n; v++) {
        char *end;
        strtod(o->params[j].value[v], &end);
        numeric &= *end == '\0';
    }
    return numeric;
}

/* With two swept parameters, the other one draws one series per value. */
static size_t other_param(const struct sweep_opts *o, size_t j)
{
    return o->n_params == 2 ? 1 - j : SIZE_MAX;
}

/* The main KPIs against parameter j, one panel each; returns 0, -ENOENT or -EIO. */
static int plot_param(const struct sweep_opts *o, size_t j, const char *csv, size_t n_runs)
{
    char script[1200], log[1200];
    snprintf(script, sizeof script, "%s/plots/param%zu.gp", o->out_dir, j);
    snprintf(log, sizeof log, "%s/plots/gnuplot.log", o->out_dir);
    FILE *f = fopen(script, "w");
    if (!f)
        return -EIO;
    /* numeric values are plotted at their value, others at their position with a label */
    int numeric = param_numeric(o, j);
    size_t q = other_param(o, j);
    int kpis[N_MAIN + 1];
    size_t nk = 0;
    for (size_t i = 0; i < N_MAIN; i++)
        kpis[nk++] = main_kpis[i];
    if (o->optimise != kpis[0] && o->optimise != kpis[1] && o->optimise != kpis[2] &&
        o->optimise != kpis[3])
        kpis[nk++] = o->optimise;
    fputs("set datafile separator ','\nset datafile missing ''\nset grid\n", f);
    /* the series' key once, in the first panel; a margin so that end points show */
    fputs("set key off\nset offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n", f);
    if (!numeric) {
        fputs("set xtics (", f);
        for (size_t v = 0; v < o->params[j].n; v++) {
            fprintf(f, "%s", v ? ", " : "");
            plot_quote(f, o->params[j].value[v]);
            fprintf(f, " %zu", v);
        }
        fputs(")\n", f);
    }
    for (int svg = 0; svg <= 1; svg++) {
        fputs(svg ? "set terminal svg size 1100,700 font 'sans,11' background '#ffffff'\nset "
                    "termoption noenhanced\n"
                  : "if (strstrt(GPVAL_TERMINALS, ' pngcairo ') > 0) {\n  set terminal pngcairo "
                    "size 1100,700 font 'sans,10' background '#ffffff'\n} else {\n  set terminal "
                    "png size 1100,700\n}\nset termoption noenhanced\n",
              f);
        fprintf(f, "set output '%s/plots/param%zu.%s'\nset multiplot layout 2,%zu title ",
                o->out_dir, j, svg ? "svg" : "png", (nk + 1) / 2);
        char title[400];
        if (o->seeds > 1)
            snprintf(title, sizeof title,
                     "KPIs against %s (%zu combinations x %zu seeds: mean, error bars one standard "
                     "deviation)",
                     o->params[j].path, n_runs, o->seeds);
        else
            snprintf(title, sizeof title, "KPIs against %s (%zu runs)", o->params[j].path, n_runs);
        plot_quote(f, title);
        fputc('\n', f);
        for (size_t i = 0; i < nk; i++) {
            const struct kpi_def *d = kpi_def(kpis[i]);
            fputs("set xlabel ", f);
            plot_quote(f, o->params[j].path);
            fprintf(f, "\nset ylabel '%s (%s)'\n", d->name, d->unit);
            /* plots/paramJ.csv: x, then mean and sd of the KPIs in this order; with seeds the
             * standard deviation as error bars */
            const char *style = o->seeds > 1 ? "yerrorlines" : "linespoints";
            char using[64];
            if (o->seeds > 1)
                snprintf(using, sizeof using, "1:%zu:%zu", 2 * i + 2, 2 * i + 3);
            else
                snprintf(using, sizeof using, "1:%zu", 2 * i + 2);
            if (q == SIZE_MAX) {
                fprintf(f, "plot '%s' skip 1 using %s with %s pt 7 ps 1.2\n", csv, using,
                        o->seeds > 1 ? style : "points");
                continue;
            }
            /* one series per value of the other parameter, named in the key */
            fputs(i == 0 ? "set key inside top left opaque box font ',9'\nplot "
                         : "set key off\nplot ",
                  f);
            for (size_t b = 0; b < o->params[q].n; b++) {
                char t[400];
                snprintf(t, sizeof t, "%s=%s", o->params[q].path, o->params[q].value[b]);
                fprintf(f, "%s'%s' index %zu skip 1 using %s with %s pt 7 ps 1.2 title ",
                        b ? ", " : "", csv, b, using, style);
                plot_quote(f, t);
            }
            fputc('\n', f);
        }
        fputs("unset multiplot\n", f);
    }
    fclose(f);
    return plot_run_gnuplot(o->gnuplot, script, log);
}

/* Why run `name` produced no KPIs: the last line of its log that is not the "der-sim run:
 * scenario=..." banner (e.g. "...: params.kp: must be in [0, 100], got -1"), or how it ended
 * (code: its exit status, -1 when unknown; ws: its wait status when it ran here, else 0).
 * buf: at least 1300 bytes (a log line and a log path). */
static void run_error_reason(const struct sweep_opts *o, const char *name, int code, int ws,
                             char *buf, size_t len)
{
    char log[1200], line[1024];
    snprintf(log, sizeof log, "%s/runs/%s.log", o->out_dir, name);
    buf[0] = '\0';
    FILE *f = fopen(log, "r");
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] && strncmp(line, "der-sim run: scenario=", 22))
            snprintf(buf, len, "%s", line);
    }
    if (f)
        fclose(f);
    if (WIFSIGNALED(ws))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(ws), log);
    else if (!buf[0])
        snprintf(buf, len, "exit status %d and no kpis.json (%s)", code, log);
}

/* A sweep under way: per combination its status, child and KPIs (kpis.json, NULL for none),
 * the errors, the best combination and what the plots said. */
struct sweep {
    const struct sweep_opts *o;
    FILE *out;
    size_t n;             /* combinations */
    size_t nr;            /* runs: n x seeds */
    enum run_status *st;  /* per run */
    pid_t *pids;          /* per run */
    cJSON **k;            /* per run */
    enum run_status *cst; /* per combination: error if a run has no KPIs, else fail if one failed */
    size_t n_error, first_error_run;
    char first_error[800];
    int best, runner_up; /* combinations, -1 for none */
    char note[256];      /* about the plots, "" when they went well */
};

/* The m-th KPI a sweep shows: the main ones, then the one optimised. */
static int shown_kpi(const struct sweep_opts *o, size_t m)
{
    return m < N_MAIN ? main_kpis[m] : o->optimise;
}

/* KPI id of combination c: the mean over its runs that have it (the value itself with one
 * seed), NaN when none; sd (may be NULL): the sample standard deviation, NaN under 2 values. */
static double combo_kpi_sd(const struct sweep *sw, size_t c, int id, double *sd)
{
    size_t S = seeds_of(sw->o), n = 0;
    double sum = 0, v[SWEEP_MAX_SEEDS];
    for (size_t i = 0; i < S && i < SWEEP_MAX_SEEDS; i++) {
        const cJSON *k = sw->k[c * S + i];
        double x = k ? json_kpi(k, id) : NAN;
        if (isnan(x))
            continue;
        v[n++] = x;
        sum += x;
    }
    double mean = n ? sum / (double)n : NAN;
    if (sd) {
        double sq = 0;
        for (size_t i = 0; i < n; i++)
            sq += (v[i] - mean) * (v[i] - mean);
        *sd = n > 1 ? sqrt(sq / (double)(n - 1)) : NAN;
    }
    return mean;
}

static double run_kpi(const struct sweep *sw, size_t c, int id)
{
    return combo_kpi_sd(sw, c, id, NULL);
}

static int make_dirs(const struct sweep_opts *o, char *err, size_t errlen)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/runs", o->out_dir);
    if ((mkdir(o->out_dir, 0755) < 0 && errno != EEXIST) ||
        (mkdir(path, 0755) < 0 && errno != EEXIST)) {
        snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        return -errno;
    }
    snprintf(path, sizeof path, "%s/plots", o->out_dir);
    mkdir(path, 0755);
    return 0;
}

/* Run i produced no KPIs, for the reason why: a line in out, and the message names the lowest
 * such combination, whatever finished first. */
static void run_failed(struct sweep *sw, size_t i, const char *why)
{
    char combo[512], name[64];
    combo_text(sw->o, i / seeds_of(sw->o), combo, sizeof combo);
    run_name(sw->o, i, name, sizeof name);
    sw->st[i] = RUN_ERROR;
    fprintf(sw->out, "run %s %s: error: %s\n", name, combo, why);
    if (!sw->n_error++ || i < sw->first_error_run) {
        sw->first_error_run = i;
        if (snprintf(sw->first_error, sizeof sw->first_error, "run %s %s: %s", name, combo, why) >=
            (int)sizeof sw->first_error)
            sw->first_error[sizeof sw->first_error - 1] = '\0'; /* cut, still a message */
    }
}

/* Run i ended with exit code `code` (-1: unknown, e.g. killed; ws its wait status, 0 when it ran
 * elsewhere): its KPIs and status, and a line in out. */
static void run_done(struct sweep *sw, size_t i, int code, int ws)
{
    char name[64], dir[1200], sub[256];
    run_name(sw->o, i, name, sizeof name);
    snprintf(dir, sizeof dir, "%s/runs/%s", sw->o->out_dir, name);
    sw->k[i] = compare_load_kpis(dir, sub, sizeof sub);
    if (!sw->k[i]) {
        /* no KPIs: say why (a crash, an I/O error: sweep_check caught bad values) */
        char why[1400];
        run_error_reason(sw->o, name, code, ws, why, sizeof why);
        run_failed(sw, i, why);
    } else {
        sw->st[i] = code == 0 ? RUN_PASS : RUN_FAIL;
        char combo[512];
        combo_text(sw->o, i / seeds_of(sw->o), combo, sizeof combo);
        fprintf(sw->out, "run %s %s: %s\n", name, combo, status_names[sw->st[i]]);
    }
    fflush(sw->out);
}

/* The child pid ended with wait status ws: its status file (what a job list writes, so that
 * --collect reads the same), KPIs and status. 1 when it was one of ours. */
static int run_ended(struct sweep *sw, pid_t pid, int ws)
{
    for (size_t i = 0; i < sw->nr; i++) {
        if (sw->pids[i] != pid)
            continue;
        sw->pids[i] = 0;
        int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
        char name[64], path[1200];
        run_name(sw->o, i, name, sizeof name);
        snprintf(path, sizeof path, "%s/runs/%s.status", sw->o->out_dir, name);
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "%d\n", code);
            fclose(f);
        }
        run_done(sw, i, WIFEXITED(ws) ? code : -1, ws);
        return 1;
    }
    return 0;
}

/* Every combination, up to jobs children at once. */
static void run_all(struct sweep *sw)
{
    size_t next = 0, running = 0, done = 0;
    while (done < sw->nr) {
        for (; running < (size_t)sw->o->jobs && next < sw->nr; next++) {
            pid_t pid = spawn_run(sw->o, next);
            if (pid < 0) {
                char why[300];
                snprintf(why, sizeof why, "cannot start: %s", strerror((int)-pid));
                run_failed(sw, next, why);
                done++;
            } else {
                sw->pids[next] = pid;
                running++;
            }
        }
        if (!running)
            continue;
        int ws;
        pid_t pid = waitpid(-1, &ws, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (run_ended(sw, pid, ws)) {
            running--;
            done++;
        }
    }
}

/* The best run by the optimised KPI, among the runs that passed their expectations only: a run
 * that failed one (an interlock tripped, a bound missed) is not a candidate however good its
 * figure, or tuning would steer towards a broken configuration. -1 when none qualifies. */
static int find_best(const struct sweep *sw, int exclude)
{
    const struct sweep_opts *o = sw->o;
    int best = -1;
    for (size_t i = 0; i < sw->n; i++) {
        if (sw->cst[i] != RUN_PASS || (int)i == exclude)
            continue;
        double v = run_kpi(sw, i, o->optimise);
        if (isnan(v))
            continue;
        double b = best >= 0 ? run_kpi(sw, (size_t)best, o->optimise) : NAN;
        if (best < 0 || (o->maximise ? v > b : v < b))
            best = (int)i;
    }
    return best;
}

/* Each combination's status from its runs' (error before fail before pass). */
static void combo_status(struct sweep *sw)
{
    size_t S = seeds_of(sw->o);
    for (size_t c = 0; c < sw->n; c++) {
        enum run_status st = RUN_PASS;
        for (size_t i = 0; i < S; i++) {
            enum run_status r = sw->st[c * S + i];
            if (r == RUN_ERROR || r == RUN_PENDING)
                st = RUN_ERROR;
            else if (r == RUN_FAIL && st == RUN_PASS)
                st = RUN_FAIL;
        }
        sw->cst[c] = st;
    }
}

/* With seeds: whether the best and the runner-up differ by no more than the larger of their
 * standard deviations (then the seeds, not the parameters, may have decided). diff and spread
 * get the figures. */
static int within_noise(const struct sweep *sw, double *diff, double *spread)
{
    if (sw->o->seeds < 2 || sw->best < 0 || sw->runner_up < 0)
        return 0;
    double sb, sr;
    double b = combo_kpi_sd(sw, (size_t)sw->best, sw->o->optimise, &sb);
    double r = combo_kpi_sd(sw, (size_t)sw->runner_up, sw->o->optimise, &sr);
    *diff = fabs(b - r);
    *spread = fmax(isnan(sb) ? 0 : sb, isnan(sr) ? 0 : sr);
    return *diff <= *spread;
}

/* The KPI columns of sweep.csv, each once: the shown ones (main, then the optimised one unless it
 * is a main one), then every other KPI in table order. Returns how many (KPI_COUNT). */
static size_t csv_columns(const struct sweep_opts *o, int *order)
{
    unsigned char used[KPI_COUNT] = {0};
    size_t n = 0;
    for (size_t m = 0; m <= N_MAIN; m++) {
        int id = shown_kpi(o, m);
        if (id >= 0 && id < KPI_COUNT && !used[id]) {
            used[id] = 1;
            order[n++] = id;
        }
    }
    for (int id = 0; id < KPI_COUNT; id++)
        if (!used[id])
            order[n++] = id;
    return n;
}

/* sweep.csv: every KPI of every run, each once, the main ones first. */
static int write_csv(const struct sweep *sw, char *err, size_t errlen)
{
    const struct sweep_opts *o = sw->o;
    char csv[1200];
    snprintf(csv, sizeof csv, "%s/sweep.csv", o->out_dir);
    FILE *f = fopen(csv, "w");
    if (!f) {
        snprintf(err, errlen, "%s: cannot write: %s", csv, strerror(errno));
        return -errno;
    }
    fputs("combo", f);
    for (size_t j = 0; j < o->n_params; j++) {
        fputc(',', f);
        csv_field(f, o->params[j].path);
    }
    fputs(o->seeds > 1 ? ",status,seeds" : ",status", f);
    /* each KPI once: the main ones and the optimised one first, then the rest in table order;
     * with seeds each KPI's mean, then its standard deviation over the seeds (NAME_sd) */
    int order[KPI_COUNT];
    size_t n_cols = csv_columns(o, order);
    for (size_t m = 0; m < n_cols; m++)
        fprintf(f, o->seeds > 1 ? ",%s,%s_sd" : ",%s", kpi_def(order[m])->name,
                kpi_def(order[m])->name);
    fputc('\n', f);
    for (size_t i = 0; i < sw->n; i++) {
        fprintf(f, "%zu", i);
        for (size_t j = 0; j < o->n_params; j++) {
            fputc(',', f);
            csv_field(f, o->params[j].value[value_of(o, i, j)]);
        }
        fprintf(f, ",%s", status_names[sw->cst[i]]);
        if (o->seeds > 1)
            fprintf(f, ",%zu", o->seeds);
        for (size_t m = 0; m < n_cols; m++) {
            int id = order[m];
            double sd, v = combo_kpi_sd(sw, i, id, &sd);
            if (isfinite(v))
                fprintf(f, ",%.*f", kpi_def(id)->precision, v);
            else
                fputc(',', f);
            if (o->seeds > 1 && isfinite(sd))
                fprintf(f, ",%.*f", kpi_def(id)->precision + 1, sd);
            else if (o->seeds > 1)
                fputc(',', f);
        }
        fputc('\n', f);
    }
    fclose(f);
    return 0;
}

static void param_row(FILE *x, const struct sweep *sw, size_t j, size_t i, int numeric)
{
    const struct sweep_opts *o = sw->o;
    size_t vi = value_of(o, i, j);
    if (numeric)
        fprintf(x, "%s", o->params[j].value[vi]);
    else
        fprintf(x, "%zu", vi);
    for (size_t m = 0; m < N_MAIN + 1; m++) {
        double sd, v = combo_kpi_sd(sw, i, shown_kpi(o, m), &sd);
        if (isfinite(v))
            fprintf(x, ",%.6g", v);
        else
            fputc(',', x);
        if (isfinite(sd))
            fprintf(x, ",%.6g", sd);
        else
            fputs(",0", x);
    }
    fputc('\n', x);
}

/* plots/paramJ.csv, the shown KPIs against parameter j: the x column is the value when every
 * value is a number, else its index; then per KPI its mean and standard deviation over the
 * seeds (0 with one seed). With two swept parameters, one block per value of the other (blocks
 * apart by two blank lines: gnuplot's `index`), in the order of its values. 0 or -errno. */
static int write_param_csv(const struct sweep *sw, size_t j, const char *path)
{
    const struct sweep_opts *o = sw->o;
    FILE *x = fopen(path, "w");
    if (!x)
        return -errno;
    int numeric = param_numeric(o, j);
    fputs("x", x);
    for (size_t m = 0; m < N_MAIN + 1; m++)
        fprintf(x, ",%s,%s_sd", kpi_def(shown_kpi(o, m))->name, kpi_def(shown_kpi(o, m))->name);
    fputc('\n', x);
    size_t q = other_param(o, j);
    if (q == SIZE_MAX) {
        for (size_t i = 0; i < sw->n; i++)
            param_row(x, sw, j, i, numeric);
    } else {
        for (size_t b = 0; b < o->params[q].n; b++) {
            if (b)
                fputs("\n\n", x);
            for (size_t i = 0; i < sw->n; i++)
                if (value_of(o, i, q) == b)
                    param_row(x, sw, j, i, numeric);
        }
    }
    fclose(x);
    return 0;
}

/* One plot per parameter (nothing to plot without KPIs); what went wrong in sw->note. */
static void write_plots(struct sweep *sw)
{
    const struct sweep_opts *o = sw->o;
    for (size_t j = 0; j < o->n_params && sw->n_error < sw->nr; j++) {
        char xcsv[1200];
        snprintf(xcsv, sizeof xcsv, "%s/plots/param%zu.csv", o->out_dir, j);
        if (write_param_csv(sw, j, xcsv) != 0)
            continue;
        int rc = plot_param(o, j, xcsv, sw->n);
        if (rc == -ENOENT) {
            snprintf(sw->note, sizeof sw->note,
                     "plots: gnuplot not found in PATH (Debian: apt-get "
                     "install gnuplot-nox); the tables are complete");
            break;
        }
        if (rc)
            snprintf(sw->note, sizeof sw->note, "plots: gnuplot failed (see plots/gnuplot.log)");
    }
    if (sw->note[0])
        fprintf(sw->out, "%s\n", sw->note);
}

static void html_best(FILE *f, const struct sweep *sw)
{
    const struct sweep_opts *o = sw->o;
    fprintf(f,
            "</h1>\n<section id=\"best\">\n<h2>Best combination</h2>\n<p>Optimising "
            "<code>%s</code> (%s): ",
            kpi_def(o->optimise)->name, o->maximise ? "max" : "min");
    if (sw->best >= 0) {
        char combo[512];
        combo_text(o, (size_t)sw->best, combo, sizeof combo);
        fprintf(f, "run %04d, <code>", sw->best);
        report_escape(f, combo);
        fprintf(f, "</code>, %s = %.*f %s</p>\n", kpi_def(o->optimise)->name,
                kpi_def(o->optimise)->precision, run_kpi(sw, (size_t)sw->best, o->optimise),
                kpi_def(o->optimise)->unit);
        double diff, spread;
        if (within_noise(sw, &diff, &spread))
            fprintf(f,
                    "<p class=\"note\">Within the noise: run %04d differs by %.*f, not more than "
                    "the standard deviation over the seeds (%.*f); more seeds would tell.</p>\n",
                    sw->runner_up, kpi_def(o->optimise)->precision + 1, diff,
                    kpi_def(o->optimise)->precision + 1, spread);
    } else {
        fputs("no run produced a value</p>\n", f);
    }
}

static void html_table(FILE *f, const struct sweep *sw)
{
    const struct sweep_opts *o = sw->o;
    fputs("</section>\n<section id=\"table\">\n<h2>KPIs per combination</h2>\n<table>\n<tr>"
          "<th>run</th>",
          f);
    for (size_t j = 0; j < o->n_params; j++) {
        fputs("<th>", f);
        report_escape(f, o->params[j].path);
        fputs("</th>", f);
    }
    fputs("<th>expectations</th>", f);
    for (size_t m = 0; m < N_MAIN + 1; m++)
        fprintf(f, "<th>%s%s</th>", m == N_MAIN ? "optimised: " : "",
                kpi_def(shown_kpi(o, m))->name);
    fputs("</tr>\n", f);
    for (size_t i = 0; i < sw->n; i++) {
        fprintf(f, "<tr%s><td>%04zu</td>", (int)i == sw->best ? " class=\"pass\"" : "", i);
        for (size_t j = 0; j < o->n_params; j++) {
            fputs("<td>", f);
            report_escape(f, o->params[j].value[value_of(o, i, j)]);
            fputs("</td>", f);
        }
        fprintf(f, "<td class=\"%s\">%s</td>", sw->cst[i] == RUN_PASS ? "pass" : "fail",
                status_names[sw->cst[i]]);
        for (size_t m = 0; m < N_MAIN + 1; m++) {
            int id = shown_kpi(o, m);
            double sd, v = combo_kpi_sd(sw, i, id, &sd);
            if (isfinite(v) && isfinite(sd))
                fprintf(f, "<td class=\"num\">%.*f &plusmn; %.*f</td>", kpi_def(id)->precision, v,
                        kpi_def(id)->precision + 1, sd);
            else if (isfinite(v))
                fprintf(f, "<td class=\"num\">%.*f</td>", kpi_def(id)->precision, v);
            else
                fputs("<td class=\"num\">-</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n<p class=\"note\">Every KPI of every run: sweep.csv; each run's outputs "
          "and kpis.json: runs/NNNN/.</p>\n</section>\n",
          f);
}

static void html_plots(FILE *f, const struct sweep *sw)
{
    const struct sweep_opts *o = sw->o;
    fputs("<section id=\"plots\">\n<h2>KPIs against each parameter</h2>\n", f);
    if (sw->note[0]) {
        fputs("<p class=\"note\">", f);
        report_escape(f, sw->note);
        fputs("</p>\n", f);
    }
    for (size_t j = 0; j < o->n_params; j++) {
        char png[1200];
        snprintf(png, sizeof png, "%s/plots/param%zu.png", o->out_dir, j);
        if (access(png, R_OK) == 0) {
            fputs("<figure>\n", f);
            report_embed_png(f, png, o->params[j].path);
            fputs("\n</figure>\n", f);
        }
    }
    fputs("</section>\n", f);
}

/* sweep.html at path: the best combination, the table, the plots. */
static int write_html(const struct sweep *sw, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        return -errno;
    }
    report_page_begin(f, "der-sim sweep");
    fputs("<h1>der-sim sweep: ", f);
    report_escape(f, sw->o->scenario);
    html_best(f, sw);
    html_table(f, sw);
    html_plots(f, sw);
    report_page_end(f);
    fclose(f);
    return 0;
}

/* The result lines, and what the sweep returns: the best, or why there is none. */
static int conclude(const struct sweep *sw, const char *html, char *err, size_t errlen)
{
    const struct sweep_opts *o = sw->o;
    if (sw->best >= 0) {
        char combo[512];
        combo_text(o, (size_t)sw->best, combo, sizeof combo);
        const struct kpi_def *d = kpi_def(o->optimise);
        double sd, v = combo_kpi_sd(sw, (size_t)sw->best, o->optimise, &sd);
        fprintf(sw->out, "best (%s %s): run %04d %s %s=%.*f", o->maximise ? "max" : "min", d->name,
                sw->best, combo, d->name, d->precision, v);
        if (o->seeds > 1)
            fprintf(sw->out, " sd=%.*f over %zu seeds", d->precision + 1, isnan(sd) ? 0 : sd,
                    o->seeds);
        double diff, spread;
        if (within_noise(sw, &diff, &spread))
            fprintf(sw->out,
                    " (within the noise: run %04d differs by %.*f, not more than the spread "
                    "%.*f)",
                    sw->runner_up, d->precision + 1, diff, d->precision + 1, spread);
        else if (o->seeds > 1 && sw->runner_up >= 0)
            fprintf(sw->out, " (ahead of run %04d by %.*f, beyond the spread %.*f)", sw->runner_up,
                    d->precision + 1, diff, d->precision + 1, spread);
        fputc('\n', sw->out);
    }
    fprintf(sw->out, "table=%s/sweep.csv\nreport=%s\n", o->out_dir, html);
    if (sw->n_error) {
        /* the tables are complete, but a sweep with a hole in it is not a success */
        if (snprintf(err, errlen, "%zu of %zu runs produced no KPIs; first: %s", sw->n_error,
                     sw->nr, sw->first_error) >= (int)errlen)
            err[errlen - 1] = '\0'; /* cut, still a message */
        return -EIO;
    }
    if (sw->best < 0) {
        size_t failed = 0;
        for (size_t i = 0; i < sw->n; i++)
            failed += sw->cst[i] == RUN_FAIL;
        if (failed) {
            /* the tables are the product and they are complete: no configuration passed, which
             * is an answer (a failing run is never named best), not a failure of the sweep */
            fprintf(sw->out, "best: none: %zu of %zu runs failed their expectations\n", failed,
                    sw->n);
            return SWEEP_NO_BEST;
        }
        snprintf(err, errlen, "no run produced %s", kpi_def(o->optimise)->name);
        return -ENODATA;
    }
    return sw->best;
}

static void sweep_free(struct sweep *sw)
{
    for (size_t i = 0; sw->k && i < sw->nr; i++)
        cJSON_Delete(sw->k[i]);
    free(sw->k);
    free(sw->pids);
    free(sw->st);
    free(sw->cst);
}

/* The combinations and runs, the directories and the tables (empty). */
static int sweep_init(struct sweep *sw, const struct sweep_opts *o, FILE *out, char *err,
                      size_t errlen)
{
    memset(sw, 0, sizeof *sw);
    sw->o = o;
    sw->out = out;
    sw->best = sw->runner_up = -1;
    if (o->seeds > SWEEP_MAX_SEEDS) {
        snprintf(err, errlen, "--seeds: at most %d", SWEEP_MAX_SEEDS);
        return -EINVAL;
    }
    if (!(sw->n = n_combos(o, err, errlen)))
        return -EINVAL;
    sw->nr = sw->n * seeds_of(o);
    if (sw->nr > SWEEP_MAX_RUNS) {
        snprintf(err, errlen, "at most %d runs (combinations x seeds), got %zu", SWEEP_MAX_RUNS,
                 sw->nr);
        return -EINVAL;
    }
    int rc = make_dirs(o, err, errlen);
    if (rc)
        return rc;
    sw->st = calloc(sw->nr, sizeof *sw->st);
    sw->pids = calloc(sw->nr, sizeof *sw->pids);
    sw->k = calloc(sw->nr, sizeof *sw->k);
    sw->cst = calloc(sw->n, sizeof *sw->cst);
    if (!sw->st || !sw->pids || !sw->k || !sw->cst) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* After every run: the best, the tables, the plots, the page, the result lines. */
static int sweep_finish(struct sweep *sw, char *err, size_t errlen)
{
    combo_status(sw);
    sw->best = find_best(sw, -1);
    sw->runner_up = sw->best >= 0 ? find_best(sw, sw->best) : -1;
    char html[1200];
    snprintf(html, sizeof html, "%s/sweep.html", sw->o->out_dir);
    int rc = write_csv(sw, err, errlen);
    if (rc)
        return rc;
    write_plots(sw);
    if ((rc = write_html(sw, html, err, errlen)) == 0)
        rc = conclude(sw, html, err, errlen);
    return rc;
}

/* out_dir/sweep-plan.json: everything sweep_collect needs to rebuild the options. */
static int write_plan_json(const struct sweep_opts *o, char *err, size_t errlen)
{
    cJSON *j = cJSON_CreateObject(), *fixed = cJSON_AddArrayToObject(j, "fixed"),
          *params = cJSON_AddArrayToObject(j, "params");
    cJSON_AddStringToObject(j, "exe", o->exe);
    cJSON_AddStringToObject(j, "scenario", o->scenario);
    for (size_t i = 0; i < o->n_fixed; i++)
        cJSON_AddItemToArray(fixed, cJSON_CreateString(o->fixed_sets[i]));
    for (size_t p = 0; p < o->n_params; p++) {
        cJSON *x = cJSON_CreateObject(), *v = cJSON_AddArrayToObject(x, "values");
        cJSON_AddStringToObject(x, "path", o->params[p].path);
        for (size_t i = 0; i < o->params[p].n; i++)
            cJSON_AddItemToArray(v, cJSON_CreateString(o->params[p].value[i]));
        cJSON_AddItemToArray(params, x);
    }
    cJSON_AddNumberToObject(j, "seeds", (double)o->seeds);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->base_seed);
    cJSON_AddStringToObject(j, "base_seed", seed); /* a string: 64 bits do not fit a double */
    cJSON_AddStringToObject(j, "optimise", kpi_def(o->optimise)->name);
    cJSON_AddBoolToObject(j, "maximise", o->maximise);
    char *text = cJSON_Print(j), path[1200];
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/sweep-plan.json", o->out_dir);
    FILE *f = text ? fopen(path, "w") : NULL;
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f)
        ok &= fclose(f) == 0;
    free(text);
    if (!ok) {
        snprintf(err, errlen, "%s: cannot write", path);
        return -EIO;
    }
    return 0;
}

int sweep_run(const struct sweep_opts *o, FILE *out, char *err, size_t errlen)
{
    struct sweep sw;
    int rc = sweep_init(&sw, o, out, err, errlen);
    if (rc == 0)
        rc = write_plan_json(o, err, errlen);
    if (rc == 0) {
        if (o->seeds > 1)
            fprintf(out, "sweep: %zu combinations x %zu seeds, %d at a time, outputs in %s\n", sw.n,
                    o->seeds, o->jobs, o->out_dir);
        else
            fprintf(out, "sweep: %zu combinations, %d at a time, outputs in %s\n", sw.n, o->jobs,
                    o->out_dir);
        run_all(&sw);
        rc = sweep_finish(&sw, err, errlen);
    }
    sweep_free(&sw);
    return rc;
}

/* s in single quotes for a POSIX shell ('\'' for a quote inside). */
static void sh_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", f);
        else
            fputc(*s, f);
    }
    fputc('\'', f);
}

int sweep_plan(const struct sweep_opts *o, const char *plan_path, char *err, size_t errlen)
{
    struct sweep sw;
    int rc = sweep_init(&sw, o, stdout, err, errlen);
    if (rc == 0)
        rc = write_plan_json(o, err, errlen);
    FILE *f = rc == 0 ? fopen(plan_path, "w") : NULL;
    if (rc == 0 && !f) {
        snprintf(err, errlen, "%s: cannot write: %s", plan_path, strerror(errno));
        rc = -errno;
    }
    for (size_t r = 0; f && r < sw.nr; r++) {
        struct run_args ra;
        if ((rc = run_args(o, r, &ra)) != 0)
            break;
        /* one line a run: its outputs, log and exit status next to the others' */
        for (size_t a = 0; ra.argv[a]; a++) {
            if (a)
                fputc(' ', f);
            sh_quote(f, ra.argv[a]);
        }
        fputs(" > ", f);
        sh_quote(f, ra.log);
        fputs(" 2>&1; echo $? > ", f);
        sh_quote(f, ra.status);
        fputc('\n', f);
        free(ra.argv);
    }
    if (f && fclose(f) != 0 && rc == 0) {
        snprintf(err, errlen, "%s: write error", plan_path);
        rc = -EIO;
    }
    size_t nr = sw.nr;
    sweep_free(&sw);
    return rc ? rc : (int)nr;
}

/* The options of a sweep from dir/sweep-plan.json; the strings point into *doc (the caller
 * frees it) and fixed (allocated). */
static int read_plan_json(const char *dir, struct sweep_opts *o, cJSON **doc, const char ***fixed,
                          char *err, size_t errlen)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/sweep-plan.json", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read: %s (not a sweep made with --plan?)", path,
                 strerror(errno));
        return -ENOENT;
    }
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf)
        return -ENOMEM;
    buf[n] = '\0';
    *doc = cJSON_Parse(buf);
    free(buf);
    const cJSON *j = *doc, *x;
    const cJSON *exe = cJSON_GetObjectItemCaseSensitive(j, "exe"),
                *sc = cJSON_GetObjectItemCaseSensitive(j, "scenario"),
                *fx = cJSON_GetObjectItemCaseSensitive(j, "fixed"),
                *ps = cJSON_GetObjectItemCaseSensitive(j, "params"),
                *seeds = cJSON_GetObjectItemCaseSensitive(j, "seeds"),
                *bs = cJSON_GetObjectItemCaseSensitive(j, "base_seed"),
                *opt = cJSON_GetObjectItemCaseSensitive(j, "optimise"),
                *mx = cJSON_GetObjectItemCaseSensitive(j, "maximise");
    if (!cJSON_IsString(exe) || !cJSON_IsString(sc) || !cJSON_IsArray(fx) || !cJSON_IsArray(ps) ||
        !cJSON_IsNumber(seeds) || !cJSON_IsString(bs) || !cJSON_IsString(opt) ||
        !cJSON_IsBool(mx) || (o->optimise = kpi_find(opt->valuestring)) < 0) {
        snprintf(err, errlen,
                 "%s: not a sweep plan (exe, scenario, fixed, params, seeds, "
                 "base_seed, optimise, maximise)",
                 path);
        return -EINVAL;
    }
    o->exe = exe->valuestring;
    o->scenario = sc->valuestring;
    o->seeds = (size_t)seeds->valuedouble;
    o->base_seed = strtoull(bs->valuestring, NULL, 10);
    o->maximise = cJSON_IsTrue(mx);
    o->jobs = 1;
    *fixed = calloc((size_t)cJSON_GetArraySize(fx) + 1, sizeof **fixed);
    if (!*fixed)
        return -ENOMEM;
    cJSON_ArrayForEach(x, fx)
    {
        if (cJSON_IsString(x))
            (*fixed)[o->n_fixed++] = x->valuestring;
    }
    o->fixed_sets = *fixed;
    cJSON_ArrayForEach(x, ps)
    {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(x, "path"), *v;
        if (o->n_params >= SWEEP_MAX_PARAMS || !cJSON_IsString(p))
            break;
        struct sweep_param *sp = &o->params[o->n_params++];
        snprintf(sp->path, sizeof sp->path, "%s", p->valuestring);
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(x, "values"))
        {
            if (cJSON_IsString(v) && sp->n < SWEEP_MAX_VALUES)
                snprintf(sp->value[sp->n++], sizeof sp->value[0], "%s", v->valuestring);
        }
    }
    return 0;
}

int sweep_collect(const char *dir, FILE *out, char *err, size_t errlen)
{
    static struct sweep_opts o; /* large (the values): not on the stack */
    memset(&o, 0, sizeof o);
    cJSON *doc = NULL;
    const char **fixed = NULL;
    struct sweep sw = {0};
    o.out_dir = dir;
    int rc = read_plan_json(dir, &o, &doc, &fixed, err, errlen);
    if (rc == 0)
        rc = sweep_init(&sw, &o, out, err, errlen);
    if (rc == 0) {
        fprintf(out, "sweep: collecting %zu runs from %s\n", sw.nr, dir);
        for (size_t r = 0; r < sw.nr; r++) {
            char name[64], path[1200];
            run_name(&o, r, name, sizeof name);
            snprintf(path, sizeof path, "%s/runs/%s.status", dir, name);
            FILE *f = fopen(path, "r");
            int code = -1;
            if (!f || fscanf(f, "%d", &code) != 1)
                code = -1; /* not run (yet), or it never got to write its status */
            if (f)
                fclose(f);
            run_done(&sw, r, code, 0);
        }
        rc = sweep_finish(&sw, err, errlen);
    }
    sweep_free(&sw);
    free(fixed);
    cJSON_Delete(doc);
    return rc;
}
