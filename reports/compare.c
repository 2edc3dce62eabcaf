/* compare: see compare.h.
 *
 * KPIs come from kpis.json, never from the CSVs: the numbers on the page are the numbers the
 * runs were judged by. Overlays read plots/data.csv, the compact series every run writes. */
#include "reports/compare.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "reports/kpi.h"
#include "reports/plot.h"
#include "reports/report.h"

cJSON *compare_load_kpis(const char *dir, char *err, size_t errlen)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/kpis.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s (not a der-sim run directory?)", path,
                 strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[65536];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "out of memory");
                return NULL;
            }
            buf = nb;
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    cJSON *j = buf ? (buf[len] = '\0', cJSON_Parse(buf)) : NULL;
    free(buf);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        snprintf(err, errlen, "%s: not a kpis.json", path);
        return NULL;
    }
    return j;
}

static double kpi_value(const cJSON *k, int id)
{
    const char *group = kpi_is_vs_baseline(id) ? "vs_baseline" : "kpis";
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(k, group);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(g, kpi_def(id)->name);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *scenario_str(const cJSON *k, const char *key)
{
    const cJSON *s =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(k, "scenario"), key);
    return cJSON_IsString(s) ? s->valuestring : "?";
}

static const struct overlay {
    const char *name, *caption, *col, *ylabel;
    double scale;
    const char *field_col; /* the field record's series (plot.h), drawn once; NULL = none */
} overlays[] = {
    {"grid", "Grid power (+ import), overlaid", "grid_w", "grid power (kW)", 1e-3, "field_grid_w"},
    {"battery", "Battery power (+ discharge), overlaid", "battery_w", "battery power (kW)", 1e-3,
     "field_battery_w"},
    {"soc", "Battery state of charge, overlaid", "soc", "state of charge (%)", 100, "field_soc"},
    {"pv", "PV power, overlaid", "pv_w", "PV power (kW)", 1e-3, NULL},
};

/* A run without plots/data.csv (made with --no-plots and --no-report) cannot be overlaid:
 * say so in the note rather than leave it out of the plots without a word. */
static void no_plot_data(const char *const *dirs, size_t n, char *note, size_t notelen)
{
    for (size_t i = 0; i < n; i++) {
        char data[1100];
        snprintf(data, sizeof data, "%s/plots/data.csv", dirs[i]);
        if (plot_data_column(data, "time_s", NULL))
            continue;
        size_t l = strlen(note);
        snprintf(note + l, notelen - l,
                 "%swarning: run %zu (%s) has no plot data (plots/data.csv: it was run with "
                 "--no-plots --no-report); it is left out of the overlaid plots",
                 l ? "\n" : "", i + 1, dirs[i]);
    }
}

/* One gnuplot process per overlay; returns 0, -ENOENT (no gnuplot) or -EIO. */
static int draw(const char *const *dirs, size_t n, const char *out, double duration_s,
                const char *gnuplot)
{
    int hours = duration_s >= 3 * 3600;
    char script[1200], log[1200];
    snprintf(log, sizeof log, "%s/plots/gnuplot.log", out);
    for (size_t p = 0; p < sizeof overlays / sizeof overlays[0]; p++) {
        const struct overlay *ov = &overlays[p];
        snprintf(script, sizeof script, "%s/plots/%s.gp", out, ov->name);
        FILE *f = fopen(script, "w");
        if (!f)
            return -EIO;
        fputs("set datafile separator ','\nset datafile missing 'nan'\nset grid\n"
              "set key outside bottom center horizontal\n",
              f);
        fprintf(f, "set xlabel 'time since the start (%s)'\nset ylabel ", hours ? "h" : "min");
        plot_quote(f, ov->ylabel);
        fputs("\nset title ", f);
        plot_quote(f, ov->caption);
        fputc('\n', f);
        char cmd[8192];
        size_t len = 0;
        int drawn = 0, field = 0;
        for (size_t i = 0; i < n && len < sizeof cmd - 2800; i++) {
            char data[1100];
            snprintf(data, sizeof data, "%s/plots/data.csv", dirs[i]);
            int has, c = plot_data_column(data, ov->col, &has);
            if (!c || !has)
                continue;
            char title[64];
            snprintf(title, sizeof title, "run %zu", i + 1);
            len += (size_t)snprintf(cmd + len, sizeof cmd - len,
                                    "%s'%s' skip 1 using ($1/%d):($%d*%g) with lines lw 1.5 "
                                    "title '%s'",
                                    drawn ? ", " : "plot ", data, hours ? 3600 : 60, c, ov->scale,
                                    title);
            drawn++;
            /* the field record of the first run that has one: the runs replay the same site */
            int fc = !field && ov->field_col ? plot_data_column(data, ov->field_col, &has) : 0;
            if (fc && has) {
                len += (size_t)snprintf(cmd + len, sizeof cmd - len,
                                        ", '%s' skip 1 using ($1/%d):($%d*%g) with lines lw 1.5 "
                                        "dt 2 lc rgb '#000000' title 'field record'",
                                        data, hours ? 3600 : 60, fc, ov->scale);
                field = 1;
            }
        }
        for (int svg = 0; drawn && svg <= 1; svg++) {
            fputs(svg ? "set terminal svg size 1100,420 font 'sans,11' background '#ffffff'\nset "
                        "termoption noenhanced\n"
                      : "if (strstrt(GPVAL_TERMINALS, ' pngcairo ') > 0) {\n  set terminal "
                        "pngcairo size 1100,420 font 'sans,10' background '#ffffff'\n} else {\n"
                        "  set terminal png size 1100,420\n}\nset termoption noenhanced\n",
                  f);
            fprintf(f, "set output '%s/plots/%s.%s'\n%s\n", out, ov->name, svg ? "svg" : "png",
                    cmd);
        }
        fclose(f);
        if (!drawn)
            continue;
        int rc = plot_run_gnuplot(gnuplot, script, log);
        if (rc)
            return rc;
    }
    return 0;
}

int compare_write(const char *const *dirs, size_t n, const char *out_dir, const char *gnuplot,
                  char *note, size_t notelen, char *err, size_t errlen)
{
    cJSON **k = calloc(n, sizeof *k);
    if (!k)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (!(k[i] = compare_load_kpis(dirs[i], err, errlen))) {
            rc = -EINVAL;
            goto out;
        }
    char path[1200];
    snprintf(path, sizeof path, "%s/plots", out_dir);
    if ((mkdir(out_dir, 0755) < 0 && errno != EEXIST) ||
        (mkdir(path, 0755) < 0 && errno != EEXIST)) {
        rc = -errno;
        snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        goto out;
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(k[0], "scenario"), "duration_s");
    int prc = draw(dirs, n, out_dir, cJSON_IsNumber(d) ? d->valuedouble : 0, gnuplot);
    snprintf(note, notelen, "%s",
             prc == -ENOENT ? "plots: gnuplot not found in PATH (Debian: apt-get install "
                              "gnuplot-nox); the comparison table is complete"
             : prc          ? "plots: gnuplot failed (see plots/gnuplot.log)"
                            : "");
    no_plot_data(dirs, n, note, notelen);

    /* compare.csv: one row per KPI, one column per run */
    snprintf(path, sizeof path, "%s/compare.csv", out_dir);
    FILE *csv = fopen(path, "w");
    snprintf(path, sizeof path, "%s/compare.html", out_dir);
    FILE *f = fopen(path, "w");
    if (!csv || !f) {
        rc = -errno;
        snprintf(err, errlen, "%s: cannot write: %s", out_dir, strerror(errno));
        if (csv)
            fclose(csv);
        if (f)
            fclose(f);
        goto out;
    }
    report_page_begin(f, "der-sim compare");
    fputs("<h1>der-sim compare</h1>\n<section id=\"runs\">\n<h2>Runs</h2>\n<table>\n<tr><th>"
          "</th><th>directory</th><th>scenario</th><th>strategy</th><th>digest</th></tr>\n",
          f);
    fputs("kpi,unit", csv);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "<tr><td>run %zu</td><td class=\"mono\">", i + 1);
        report_escape(f, dirs[i]);
        fputs("</td><td>", f);
        report_escape(f, scenario_str(k[i], "name"));
        fputs("</td><td>", f);
        report_escape(f, scenario_str(k[i], "strategy"));
        const cJSON *dg = cJSON_GetObjectItemCaseSensitive(k[i], "digest_outputs");
        fprintf(f, "</td><td class=\"mono\">%.16s</td></tr>\n",
                cJSON_IsString(dg) ? dg->valuestring : "?");
        fprintf(csv, ",run%zu", i + 1);
    }
    fputs("\n", csv);
    fputs("</table>\n</section>\n<section id=\"kpis\">\n<h2>KPIs side by side</h2>\n<p "
          "class=\"note\">Δ is the difference to run 1. Definitions: docs/kpis.md.</p>\n<table>\n"
          "<tr><th>KPI</th><th>unit</th>",
          f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "<th>run %zu</th>%s", i + 1, i ? "<th>Δ</th>" : "");
    fputs("</tr>\n", f);
    for (int id = 0; id < KPI_COUNT; id++) {
        const struct kpi_def *def = kpi_def(id);
        fprintf(f, "<tr><td>%s</td><td>%s</td>", def->name, def->unit);
        fprintf(csv, "%s,%s", def->name, def->unit);
        double v0 = kpi_value(k[0], id);
        for (size_t i = 0; i < n; i++) {
            double v = kpi_value(k[i], id);
            if (isfinite(v)) {
                fprintf(f, "<td class=\"num\">%.*f</td>", def->precision, v);
                fprintf(csv, ",%.*f", def->precision, v);
            } else {
                fputs("<td class=\"num\">-</td>", f);
                fputs(",", csv);
            }
            if (i) {
                if (isfinite(v) && isfinite(v0))
                    fprintf(f, "<td class=\"num\">%+.*f</td>", def->precision, v - v0);
                else
                    fputs("<td class=\"num\">-</td>", f);
            }
        }
        fputs("</tr>\n", f);
        fputs("\n", csv);
    }
    fputs("</table>\n</section>\n<section id=\"plots\">\n<h2>Overlaid plots</h2>\n", f);
    if (note[0]) {
        fputs("<p class=\"note\">", f);
        report_escape(f, note);
        fputs("</p>\n", f);
    }
    for (size_t p = 0; p < sizeof overlays / sizeof overlays[0]; p++) {
        char png[1200];
        snprintf(png, sizeof png, "%s/plots/%s.png", out_dir, overlays[p].name);
        FILE *probe = fopen(png, "rb");
        if (!probe)
            continue;
        fclose(probe);
        fputs("<figure>\n", f);
        report_embed_png(f, png, overlays[p].caption);
        fputs("\n<figcaption>", f);
        report_escape(f, overlays[p].caption);
        fputs("</figcaption>\n</figure>\n", f);
    }
    fputs("</section>\n", f);
    report_page_end(f);
    if ((fclose(f) | fclose(csv)) != 0) {
        rc = -EIO;
        snprintf(err, errlen, "%s: write error", out_dir);
    }
out:
    for (size_t i = 0; i < n; i++)
        cJSON_Delete(k[i]);
    free(k);
    return rc;
}
