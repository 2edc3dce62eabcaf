/* splitcmp: see splitcmp.h.
 *
 * Every figure comes from the runs' own outputs: timeseries.csv's per-battery columns
 * (soc_<asset>, p_<asset>_w) and kpis.json's interlock count, so the table says nothing a
 * reader cannot recompute from the directories beside it. The simulated loss is the energy
 * balance of the batteries (AC in - AC out - stored change); the simulator's batteries have
 * constant efficiencies, so the split's own loss model (split_loss_w, docs/split.md) is
 * evaluated on the same powers as a second column: it is the quantity loss_min minimises.
 * Tracking compares the newest site dispatch in force with what the batteries delivered. */
#include "reports/splitcmp.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gateway/control/split.h"
#include "reports/experiment.h"
#include "reports/plot.h"

#define MAX_BAT 32
#define MAX_COL 512

struct bat {
    char id[64];
    int soc_col, p_col;
    double thr_wh, cap_wh; /* summed over the sites that have it */
};

struct metrics {
    size_t n_bat;
    struct bat b[MAX_BAT];
    double spread_sum, spread_max;
    long spread_rows;
    double ac_out_wh, stored_delta_wh, model_loss_wh;
    double track_sq, track_n;
    double interlocks;
    size_t expect_failed;
    char digest[65];
};

/* Splits line in place at commas; returns the number of fields (at most max). */
static size_t split_csv(char *line, char **f, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    char *nl = strpbrk(f[n - 1], "\r\n");
    if (nl)
        *nl = '\0';
    return n;
}

static const struct asset_cfg *site_battery(const struct site_cfg *s, const char *id)
{
    for (size_t k = 0; k < s->n_assets; k++)
        if (s->assets[k].type == ASSET_BATTERY && !strcmp(s->assets[k].id, id))
            return &s->assets[k];
    return NULL;
}

static const struct site_cfg *site_of(const struct scenario *sc, const char *id)
{
    for (size_t s = 0; s < sc->n_sites; s++)
        if (!strcmp(sc->sites[s].id, id))
            return &sc->sites[s];
    return NULL;
}

/* The site dispatch in force for site s at the end of the tick t_ms (the newest one), or NULL. */
static const struct event *site_dispatch(const struct scenario *sc, const struct site_cfg *s,
                                         int64_t t_ms)
{
    const struct event *in_force = NULL;
    for (size_t k = 0; k < sc->n_dispatches; k++) {
        const struct event *e = &sc->dispatches[k];
        if (e->asset_id[0] || (e->site_id[0] && strcmp(e->site_id, s->base_id)))
            continue;
        if (e->at_ms < t_ms && t_ms <= e->at_ms + e->ttl_ms)
            in_force = e;
    }
    return in_force;
}

static int header(char **f, size_t n, struct metrics *m, int *t_col, int *site_col, int *bat_col)
{
    *t_col = *site_col = *bat_col = -1;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(f[i], "time_s"))
            *t_col = (int)i;
        else if (!strcmp(f[i], "site"))
            *site_col = (int)i;
        else if (!strcmp(f[i], "battery_w"))
            *bat_col = (int)i;
        else if (!strncmp(f[i], "soc_", 4) && m->n_bat < MAX_BAT) {
            struct bat *b = &m->b[m->n_bat++];
            snprintf(b->id, sizeof b->id, "%s", f[i] + 4);
            b->soc_col = (int)i;
            b->p_col = -1;
            char want[80];
            snprintf(want, sizeof want, "p_%s_w", b->id);
            for (size_t j = 0; j < n; j++)
                if (!strcmp(f[j], want))
                    b->p_col = (int)j;
        }
    }
    return *t_col < 0 || *site_col < 0 || *bat_col < 0 ? -EINVAL : 0;
}

/* Reads DIR/timeseries.csv into m. */
static int measure(const struct scenario *sc, const char *dir, struct metrics *m, char *err,
                   size_t errlen)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/timeseries.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    char *line = NULL, *fld[MAX_COL];
    size_t cap = 0;
    int t_col, site_col, bat_col, rc = 0;
    double dt_h = (double)sc->step_ms / 3600e3;
    /* the last SoC of each (site, battery): the stored energy at the end */
    double *last = calloc(sc->n_sites * MAX_BAT, sizeof *last);
    size_t nf = last && getline(&line, &cap, f) > 0 ? split_csv(line, fld, MAX_COL) : 0;
    if (nf == 0 || header(fld, nf, m, &t_col, &site_col, &bat_col)) {
        snprintf(err, errlen, "%s: not a timeseries.csv with per-battery columns", path);
        rc = -EINVAL;
    }
    for (size_t i = 0; i < sc->n_sites * MAX_BAT && last; i++)
        last[i] = NAN;
    while (rc == 0 && getline(&line, &cap, f) > 0) {
        size_t n = split_csv(line, fld, MAX_COL);
        if ((size_t)bat_col >= n)
            continue;
        const struct site_cfg *s = site_of(sc, fld[site_col]);
        if (!s)
            continue;
        size_t si = (size_t)(s - sc->sites);
        double lo = INFINITY, hi = -INFINITY;
        for (size_t j = 0; j < m->n_bat; j++) {
            struct bat *b = &m->b[j];
            const struct asset_cfg *a = site_battery(s, b->id);
            if (!a || (size_t)b->soc_col >= n || b->p_col < 0 || (size_t)b->p_col >= n ||
                !fld[b->soc_col][0])
                continue;
            double soc = atof(fld[b->soc_col]), p = atof(fld[b->p_col]);
            const struct battery_params *bp = &a->u.battery;
            lo = fmin(lo, soc);
            hi = fmax(hi, soc);
            b->thr_wh += fabs(p) * dt_h;
            m->ac_out_wh += p * dt_h;
            struct split_asset box = {bp->capacity_wh, -bp->max_charge_w, bp->max_discharge_w};
            m->model_loss_wh +=
                split_loss_w(&box, fmax(bp->max_charge_w, bp->max_discharge_w), p) * dt_h;
            last[si * MAX_BAT + j] = soc;
        }
        if (hi >= lo) {
            m->spread_sum += hi - lo;
            m->spread_max = fmax(m->spread_max, hi - lo);
            m->spread_rows++;
        }
        const struct event *e = site_dispatch(sc, s, llround(atof(fld[t_col]) * 1000));
        if (e) {
            double d = e->power_w - atof(fld[bat_col]);
            m->track_sq += d * d;
            m->track_n += 1;
        }
    }
    for (size_t si = 0; rc == 0 && si < sc->n_sites; si++)
        for (size_t j = 0; j < m->n_bat; j++) {
            const struct asset_cfg *a = site_battery(&sc->sites[si], m->b[j].id);
            double soc = last[si * MAX_BAT + j];
            if (!a || isnan(soc))
                continue;
            m->b[j].cap_wh += a->u.battery.capacity_wh;
            m->stored_delta_wh += (soc - a->u.battery.soc_init) * a->u.battery.capacity_wh;
        }
    free(last);
    free(line);
    fclose(f);
    return rc;
}

static double total_cap_wh(const struct metrics *m)
{
    double c = 0;
    for (size_t j = 0; j < m->n_bat; j++)
        c += m->b[j].cap_wh;
    return c;
}

static double thr_wh(const struct metrics *m)
{
    double t = 0;
    for (size_t j = 0; j < m->n_bat; j++)
        t += m->b[j].thr_wh;
    return t;
}

/* The figures of one policy's row, in the order of the CSV's columns. */
static void row_values(const struct metrics *m, double *v)
{
    double cap = total_cap_wh(m);
    v[0] = m->spread_rows ? m->spread_sum / (double)m->spread_rows : NAN;
    v[1] = m->spread_rows ? m->spread_max : NAN;
    v[2] = thr_wh(m) / 1000.0;
    v[3] = cap > 0 ? thr_wh(m) / (2 * cap) : NAN;
    v[4] = (-m->ac_out_wh - m->stored_delta_wh) / 1000.0; /* AC in - AC out - stored change */
    v[5] = m->model_loss_wh / 1000.0;
    v[6] = m->interlocks;
    v[7] = m->track_n > 0 ? sqrt(m->track_sq / m->track_n) : NAN;
}

static const char *const COLS[] = {"soc_spread_mean",   "soc_spread_max", "throughput_kwh",
                                   "equivalent_cycles", "sim_loss_kwh",   "model_loss_kwh",
                                   "interlock_total",   "tracking_rms_w"};
#define N_COLS (sizeof COLS / sizeof COLS[0])

static void write_csv(FILE *f, const struct metrics *m)
{
    fputs("policy", f);
    for (size_t c = 0; c < N_COLS; c++)
        fprintf(f, ",%s", COLS[c]);
    for (size_t j = 0; j < m[0].n_bat; j++)
        fprintf(f, ",throughput_%s_kwh,cycles_%s", m[0].b[j].id, m[0].b[j].id);
    fputs(",expect_failed,digest\n", f);
    for (int p = 0; p < SPLIT_POLICY_COUNT; p++) {
        double v[N_COLS];
        row_values(&m[p], v);
        fprintf(f, "%s,%.6f,%.6f,%.3f,%.4f,%.4f,%.4f,%.0f,%.1f", split_policy_name(p), v[0], v[1],
                v[2], v[3], v[4], v[5], v[6], v[7]);
        for (size_t j = 0; j < m[p].n_bat; j++) {
            const struct bat *b = &m[p].b[j];
            fprintf(f, ",%.3f,%.4f", b->thr_wh / 1000.0,
                    b->cap_wh > 0 ? b->thr_wh / (2 * b->cap_wh) : NAN);
        }
        fprintf(f, ",%zu,%s\n", m[p].expect_failed, m[p].digest);
    }
}

/* The Markdown table: one row per policy, the per-battery cycles in one cell. */
static void write_md(FILE *f, const char *name, const struct metrics *m)
{
    fprintf(f, "# Split policies compared: %s\n\n", name);
    fputs("| policy | SoC spread mean | SoC spread max | throughput kWh | equivalent cycles | "
          "simulated loss kWh | loss model kWh | interlock clamps | tracking RMS W | cycles "
          "per battery |\n|---|---|---|---|---|---|---|---|---|---|\n",
          f);
    for (int p = 0; p < SPLIT_POLICY_COUNT; p++) {
        double v[N_COLS];
        row_values(&m[p], v);
        fprintf(f, "| %s | %.4f | %.4f | %.2f | %.3f | %.3f | %.3f | %.0f | %.1f | ",
                split_policy_name(p), v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
        for (size_t j = 0; j < m[p].n_bat; j++) {
            const struct bat *b = &m[p].b[j];
            fprintf(f, "%s%s %.3f", j ? ", " : "", b->id,
                    b->cap_wh > 0 ? b->thr_wh / (2 * b->cap_wh) : NAN);
        }
        fputs(" |\n", f);
    }
}

static void write_html(FILE *f, const char *name, const struct metrics *m, int have_plot)
{
    fprintf(f,
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>split policies: "
            "%s</title>\n<style>body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #999;padding:2px 8px;text-align:right}</style></head>\n"
            "<body><h1>Split policies compared: %s</h1>\n<table><tr><th>policy</th>",
            name, name);
    for (size_t c = 0; c < N_COLS; c++)
        fprintf(f, "<th>%s</th>", COLS[c]);
    fputs("</tr>\n", f);
    for (int p = 0; p < SPLIT_POLICY_COUNT; p++) {
        double v[N_COLS];
        row_values(&m[p], v);
        fprintf(f, "<tr><th><a href=\"%s/\">%s</a></th>", split_policy_name(p),
                split_policy_name(p));
        for (size_t c = 0; c < N_COLS; c++)
            fprintf(f, "<td>%.4g</td>", v[c]);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    if (have_plot)
        fputs("<p><img src=\"split-compare.svg\" alt=\"split policies compared\"></p>\n", f);
    fputs("<p>docs/split.md: the policies and the loss model.</p></body></html>\n", f);
}

static int plot(const char *dir, const char *gnuplot, char *msg, size_t msglen)
{
    char gp[1200], log[1200], csv[1200], svg[1200];
    snprintf(gp, sizeof gp, "%s/split-compare.gp", dir);
    snprintf(log, sizeof log, "%s/split-compare.gnuplot.log", dir);
    snprintf(csv, sizeof csv, "%s/split-compare.csv", dir);
    snprintf(svg, sizeof svg, "%s/split-compare.svg", dir);
    FILE *f = fopen(gp, "w");
    if (!f)
        return -errno;
    fputs("set terminal svg size 1200,420 font 'sans,11' background '#ffffff'\n"
          "set termoption noenhanced\nset output ",
          f);
    plot_quote(f, svg);
    fputs("\nset datafile separator ','\nset style data histograms\nset style fill solid 0.6\n"
          "set boxwidth 0.8\nset grid ytics\nset xtics rotate by -30\n"
          "set multiplot layout 1,3\nset key below\nset yrange [0:*]\n"
          "set title 'SoC spread (mean over time)'\nplot ",
          f);
    plot_quote(f, csv);
    fputs(" skip 1 using 2:xtic(1) notitle\nset title 'losses (kWh)'\nplot ", f);
    plot_quote(f, csv);
    fputs(" skip 1 using 6:xtic(1) title 'simulated', '' skip 1 using 7 title 'loss model'\n"
          "set title 'site setpoint tracking RMS (W)'\nplot ",
          f);
    plot_quote(f, csv);
    fputs(" skip 1 using 9:xtic(1) notitle\nunset multiplot\n", f);
    if (fclose(f))
        return -EIO;
    int rc = plot_run_gnuplot(gnuplot, gp, log);
    snprintf(msg, msglen, "%s",
             rc == 0         ? "plot=split-compare.svg"
             : rc == -ENOENT ? "plots: skipped (gnuplot is not installed)"
                             : "plots: gnuplot failed (split-compare.gnuplot.log)");
    return rc;
}

/* The override that selects policy p: into the scenario's split object when it has one, else
 * a split object of its own. */
static void policy_set(const struct scenario *sc, int p, char *buf, size_t len)
{
    const cJSON *split =
        sc->gateway ? cJSON_GetObjectItemCaseSensitive(sc->gateway, "split") : NULL;
    if (cJSON_IsObject(split))
        snprintf(buf, len, "gateway.split.policy=%s", split_policy_name(p));
    else
        snprintf(buf, len, "gateway.split={\"policy\": \"%s\"}", split_policy_name(p));
}

static int run_policy(const struct splitcmp_opts *o, const struct scenario *first, int p,
                      struct experiment_result *res, struct metrics *m, char *err, size_t errlen)
{
    const char *sets[SPLITCMP_MAX_SETS + 1];
    char pol[96], dir[1100];
    memcpy(sets, o->sets, o->n_sets * sizeof *sets);
    policy_set(first, p, pol, sizeof pol);
    sets[o->n_sets] = pol;
    struct scenario *sc;
    int rc = scenario_load(o->path, sets, o->n_sets + 1, &sc, err, errlen);
    if (rc)
        return rc;
    snprintf(dir, sizeof dir, "%s/%s", o->out_dir, split_policy_name(p));
    struct experiment_opts eo = {.run = {.transport = RUNNER_INPROC, .out_dir = dir},
                                 .no_baseline = 1,
                                 .no_plots = 1,
                                 .no_report = 1};
    memset(res, 0, sizeof *res);
    rc = experiment_run(sc, &eo, res, err, errlen);
    if (rc == 0)
        rc = measure(sc, dir, m, err, errlen);
    if (rc == 0) {
        m->interlocks = res->kpis.v[KPI_INTERLOCK_TOTAL];
        m->expect_failed = res->failed;
        snprintf(m->digest, sizeof m->digest, "%s", res->digest);
    }
    scenario_free(sc);
    return rc;
}

static FILE *open_in(const char *dir, const char *name, char *err, size_t errlen)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return f;
}

int splitcmp_run(const struct splitcmp_opts *o, FILE *out, char *err, size_t errlen)
{
    if (o->n_sets > SPLITCMP_MAX_SETS) {
        snprintf(err, errlen, "--split-compare: at most %d --set options", SPLITCMP_MAX_SETS);
        return -EINVAL;
    }
    if (mkdir(o->out_dir, 0755) && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", o->out_dir, strerror(errno));
        return -errno;
    }
    struct scenario *first;
    int rc = scenario_load(o->path, o->sets, o->n_sets, &first, err, errlen);
    if (rc)
        return rc;
    struct experiment_result *res = calloc(1, sizeof *res);
    struct metrics *m = calloc(SPLIT_POLICY_COUNT, sizeof *m);
    if (!res || !m) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    for (int p = 0; rc == 0 && p < SPLIT_POLICY_COUNT; p++) {
        rc = run_policy(o, first, p, res, &m[p], err, errlen);
        if (rc == 0)
            fprintf(out, "policy=%s digest=%s expect_failed=%zu\n", split_policy_name(p),
                    m[p].digest, m[p].expect_failed);
    }
    FILE *csv = NULL, *md = NULL, *html = NULL;
    if (rc == 0 && !(csv = open_in(o->out_dir, "split-compare.csv", err, errlen)))
        rc = -EIO;
    if (rc == 0) {
        write_csv(csv, m);
        rc = fclose(csv) ? -EIO : 0;
    }
    char msg[200] = "plots: skipped (--no-plots)";
    int have_plot = rc == 0 && !o->no_plots && plot(o->out_dir, o->gnuplot, msg, sizeof msg) == 0;
    if (rc == 0 && !(md = open_in(o->out_dir, "split-compare.md", err, errlen)))
        rc = -EIO;
    if (rc == 0) {
        write_md(md, first->name, m);
        rc = fclose(md) ? -EIO : 0;
    }
    if (rc == 0 && !(html = open_in(o->out_dir, "split-compare.html", err, errlen)))
        rc = -EIO;
    if (rc == 0) {
        write_html(html, first->name, m, have_plot);
        rc = fclose(html) ? -EIO : 0;
    }
    if (rc == 0)
        fprintf(out, "table=%s/split-compare.csv\n%s\n", o->out_dir, msg);
    free(m);
    free(res);
    scenario_free(first);
    return rc;
}
