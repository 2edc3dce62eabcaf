/* report: see report.h.
 *
 * The page must open from a mail attachment or a CI artefact store as well as from disk, so it
 * carries everything in itself: PNGs as data URIs (smaller than inline SVG for a day of data;
 * the SVG files sit next to the page for print), the style in one <style> block. It is read by
 * people, not digested, so it may say how long the run took. */
#include "reports/report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reports/plot.h"

#define MAX_EVENT_ROWS 1000

void report_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

void report_page_begin(FILE *f, const char *title)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", f);
    report_escape(f, title);
    fputs("</title>\n<style>\n"
          "body{font-family:sans-serif;margin:1.5em auto;max-width:1150px;color:#222}\n"
          "h1{font-size:1.5em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;"
          "margin-top:1.6em}\n"
          "table{border-collapse:collapse;margin:.5em 0;font-size:.9em}\n"
          "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\n"
          "th{background:#f2f2f2}td.num{text-align:right;font-family:monospace}\n"
          ".pass{background:#dff0d8;color:#1d5e1d;font-weight:bold}\n"
          ".fail{background:#f2dede;color:#a01515;font-weight:bold}\n"
          ".note{color:#666;font-size:.9em}code,.mono{font-family:monospace}\n"
          "figure{margin:1em 0}figcaption{font-size:.9em;color:#444}\n"
          "img{max-width:100%;border:1px solid #eee}\n"
          ".scroll{max-height:30em;overflow:auto}\n"
          "</style>\n</head>\n<body>\n",
          f);
}

void report_page_end(FILE *f)
{
    fputs("</body>\n</html>\n", f);
}

int report_embed_png(FILE *f, const char *png_path, const char *alt)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *in = fopen(png_path, "rb");
    if (!in)
        return -errno;
    fputs("<img alt=\"", f);
    report_escape(f, alt);
    fputs("\" src=\"data:image/png;base64,", f);
    unsigned char buf[3 * 1024];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        /* full reads are multiples of 3, so padding only ever appears at the very end */
        for (size_t i = 0; i < n; i += 3) {
            unsigned v = (unsigned)buf[i] << 16;
            if (i + 1 < n)
                v |= (unsigned)buf[i + 1] << 8;
            if (i + 2 < n)
                v |= buf[i + 2];
            fputc(b64[(v >> 18) & 63], f);
            fputc(b64[(v >> 12) & 63], f);
            fputc(i + 1 < n ? b64[(v >> 6) & 63] : '=', f);
            fputc(i + 2 < n ? b64[v & 63] : '=', f);
        }
    }
    fclose(in);
    fputs("\">", f);
    return 0;
}

static void num(FILE *f, double v, int precision)
{
    if (isfinite(v))
        fprintf(f, "<td class=\"num\">%.*f</td>", precision, v);
    else
        fputs("<td class=\"num\">-</td>", f);
}

/* The expectation on KPI id, or -1. */
static int expectation_of(const struct experiment_result *res, int id)
{
    for (size_t i = 0; i < res->expect.n; i++)
        if (res->expect.e[i].kpi == id)
            return (int)i;
    return -1;
}

static void section_summary(FILE *f, const char *dir, const struct scenario *sc,
                            const struct experiment_result *res)
{
    char dur[64];
    snprintf(dur, sizeof dur, "%.0f s (%.2f h), step %.3f s", sc->duration_ms / 1000.0,
             sc->duration_ms / 3600000.0, sc->step_ms / 1000.0);
    fputs("<section id=\"summary\">\n<h2>Scenario</h2>\n<table>\n<tr><th>name</th><td>", f);
    report_escape(f, sc->name);
    fputs("</td></tr>\n<tr><th>description</th><td>", f);
    report_escape(f, sc->description);
    fputs("</td></tr>\n<tr><th>file</th><td class=\"mono\">", f);
    report_escape(f, sc->path);
    fprintf(f,
            "</td></tr>\n<tr><th>seed</th><td>%llu</td></tr>\n<tr><th>duration</th><td>%s"
            "</td></tr>\n<tr><th>sites</th><td>",
            (unsigned long long)sc->seed, dur);
    for (size_t i = 0; i < sc->n_sites; i++) {
        fprintf(f, "%s", i ? "; " : "");
        report_escape(f, sc->sites[i].id);
        fputs(" (", f);
        for (size_t k = 0; k < sc->sites[i].n_assets; k++) {
            fprintf(f, "%s", k ? ", " : "");
            report_escape(f, sc->sites[i].assets[k].id);
            fprintf(f, ": %s", asset_type_name(sc->sites[i].assets[k].type));
        }
        fputs(")", f);
    }
    fputs("</td></tr>\n<tr><th>strategy</th><td>", f);
    report_escape(f, res->strategy);
    fprintf(f,
            "</td></tr>\n<tr><th>events</th><td>%zu</td></tr>\n"
            "<tr><th>result</th><td class=\"%s\">%s: %zu of %zu expectations failed, %u "
            "invariant check failures, %u register view mismatches</td></tr>\n"
            "<tr><th>run</th><td>%lld ticks, %llu gateway cycles, %llu register "
            "transactions in %.2f s wall time</td></tr>\n<tr><th>outputs</th><td class=\"mono\">",
            sc->n_events,
            res->failed || res->run.check_failures || res->run.view_mismatches ? "fail" : "pass",
            res->failed || res->run.check_failures || res->run.view_mismatches ? "FAIL" : "PASS",
            res->failed, res->expect.n, res->run.check_failures, res->run.view_mismatches,
            (long long)res->run.ticks, (unsigned long long)res->run.cycles,
            (unsigned long long)res->run.transactions, res->run.wall_s);
    report_escape(f, dir);
    fputs("</td></tr>\n</table>\n</section>\n", f);
}

static void section_kpis(FILE *f, const struct experiment_result *res)
{
    fputs("<section id=\"kpis\">\n<h2>KPIs</h2>\n<p class=\"note\">Definitions and formulas: "
          "docs/kpis.md. The expectation column shows the scenario's bound and whether it "
          "held.</p>\n<table>\n<tr><th>KPI</th><th>value</th><th>unit</th><th>expectation</th>"
          "</tr>\n",
          f);
    for (int i = 0; i < KPI_COUNT; i++) {
        const struct kpi_def *d = kpi_def(i);
        int e = expectation_of(res, i);
        if (kpi_is_vs_baseline(i) && e < 0)
            continue; /* in the baseline section */
        fprintf(f, "<tr><td>%s</td>", d->name);
        num(f, res->kpis.v[i], d->precision);
        fprintf(f, "<td>%s</td>", d->unit);
        if (e >= 0) {
            char b[128];
            expect_bounds_text(&res->expect.e[e], b, sizeof b);
            fprintf(f, "<td class=\"%s\">", res->results[e].pass ? "pass" : "fail");
            report_escape(f, b);
            fprintf(f, ": %s</td>", res->results[e].pass ? "PASS" : "FAIL");
        } else {
            fputs("<td></td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    if (!res->kpis.v[KPI_PRICES_KNOWN])
        fputs("<p class=\"note\">No site names an import_price or export_price profile: the "
              "cost KPIs are 0.</p>\n",
              f);
    fputs("</section>\n", f);
}

static void section_expectations(FILE *f, const struct experiment_result *res)
{
    fputs("<section id=\"expectations\">\n<h2>Expectations</h2>\n", f);
    if (!res->expect.n) {
        fputs("<p>The scenario has no <code>expect</code> block.</p>\n</section>\n", f);
        return;
    }
    fprintf(f, "<p class=\"%s\">%zu of %zu expectations failed.</p>\n",
            res->failed ? "fail" : "pass", res->failed, res->expect.n);
    fputs("<table>\n<tr><th>KPI</th><th>bounds</th><th>value</th><th>result</th></tr>\n", f);
    for (size_t i = 0; i < res->expect.n; i++) {
        const struct kpi_def *d = kpi_def(res->expect.e[i].kpi);
        char b[128];
        expect_bounds_text(&res->expect.e[i], b, sizeof b);
        fprintf(f, "<tr><td>%s</td><td>", d->name);
        report_escape(f, b);
        fputs("</td>", f);
        num(f, res->results[i].value, d->precision);
        fprintf(f, "<td class=\"%s\">%s</td></tr>\n", res->results[i].pass ? "pass" : "fail",
                res->results[i].pass ? "PASS" : "FAIL");
    }
    fputs("</table>\n</section>\n", f);
}

static void section_baseline(FILE *f, const struct experiment_result *res)
{
    static const int rows[] = {
        KPI_ENERGY_IMPORT_KWH,      KPI_ENERGY_EXPORT_KWH,      KPI_NET_COST,
        KPI_PEAK_IMPORT_KW,         KPI_PEAK_IMPORT_15M_KW,     KPI_SELF_CONSUMPTION_RATIO,
        KPI_SELF_SUFFICIENCY_RATIO, KPI_BATTERY_THROUGHPUT_KWH, KPI_EV_ENERGY_DELIVERED_KWH,
        KPI_BOILER_BELOW_MIN_S};
    fputs("<section id=\"baseline\">\n<h2>Baseline comparison</h2>\n", f);
    if (!res->have_baseline) {
        fputs("<p>The baseline was not run (<code>--no-baseline</code>).</p>\n</section>\n", f);
        return;
    }
    fputs("<p>The same scenario with the baseline strategy <code>", f);
    report_escape(f, res->baseline_strategy);
    fputs("</code>, in-process transport; its outputs are in <code>baseline/</code>.</p>\n"
          "<table>\n<tr><th>KPI</th><th>this run</th><th>baseline</th><th>unit</th></tr>\n",
          f);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct kpi_def *d = kpi_def(rows[i]);
        fprintf(f, "<tr><td>%s</td>", d->name);
        num(f, res->kpis.v[rows[i]], d->precision);
        num(f, res->baseline.v[rows[i]], d->precision);
        fprintf(f, "<td>%s</td></tr>\n", d->unit);
    }
    fputs("</table>\n<table>\n<tr><th>against the baseline</th><th>value</th><th>unit</th>"
          "</tr>\n",
          f);
    for (int i = KPI_VS_FIRST; i < KPI_COUNT; i++) {
        const struct kpi_def *d = kpi_def(i);
        fprintf(f, "<tr><td>%s</td>", d->name);
        num(f, res->kpis.v[i], d->precision);
        fprintf(f, "<td>%s</td></tr>\n", d->unit);
    }
    fputs("</table>\n</section>\n", f);
}

static void section_plots(FILE *f, const char *dir, const struct experiment_result *res)
{
    fputs("<section id=\"plots\">\n<h2>Plots</h2>\n", f);
    if (res->plots_rc != 0) {
        fputs("<p class=\"note\">", f);
        report_escape(f, res->plots_rc == 1 ? "plots were not drawn (--no-plots)" : res->plot_msg);
        fputs("</p>\n", f);
    }
    for (size_t i = 0; i < plot_count(); i++) {
        char png[1200];
        snprintf(png, sizeof png, "%s/plots/%s.png", dir, plot_name(i));
        FILE *probe = fopen(png, "rb");
        if (!probe)
            continue; /* nothing to draw for this scenario, or no gnuplot */
        fclose(probe);
        fprintf(f, "<figure id=\"plot-%s\">\n", plot_name(i));
        report_embed_png(f, png, plot_caption(i));
        fputs("\n<figcaption>", f);
        report_escape(f, plot_caption(i));
        fprintf(f, " (plots/%s.png, plots/%s.svg)</figcaption>\n</figure>\n", plot_name(i),
                plot_name(i));
    }
    fputs("</section>\n", f);
}

/* ---- the interactive plots ------------------------------------------------------------------- */

/* The charts of the interactive section: columns of plots/data.csv, drawn when they hold a
 * non-zero number. lo/hi: the envelope columns (each row's lowest and highest step). */
static const struct ichart_series {
    const char *chart, *col, *name, *color, *lo, *hi;
    double scale;
    int dash;
} ichart_series[] = {
    {"power", "grid_w", "grid", "#1f77b4", "grid_w_min", "grid_w_max", 1e-3, 0},
    {"power", "battery_w", "battery", "#2ca02c", "battery_w_min", "battery_w_max", 1e-3, 0},
    {"power", "pv_w", "PV", "#ff7f0e", NULL, NULL, 1e-3, 0},
    {"power", "load_w", "load", "#7f7f7f", NULL, NULL, 1e-3, 0},
    {"power", "evse_w", "EVSE", "#9467bd", NULL, NULL, 1e-3, 0},
    {"power", "boiler_w", "boiler", "#d62728", NULL, NULL, 1e-3, 0},
    {"power", "field_grid_w", "grid, field", "#08306b", NULL, NULL, 1e-3, 1},
    {"power", "field_battery_w", "battery, field", "#00441b", NULL, NULL, 1e-3, 1},
    {"power", "grid_limit_w", "import limit", "#d62728", NULL, NULL, 1e-3, 1},
    {"power", "bat2_w", "battery 2", "#17becf", NULL, NULL, 1e-3, 0},
    {"power", "bat3_w", "battery 3", "#bcbd22", NULL, NULL, 1e-3, 0},
    {"power", "bat4_w", "battery 4", "#8c564b", NULL, NULL, 1e-3, 0},
    {"soc", "soc", "SoC", "#2ca02c", NULL, NULL, 100, 0},
    {"soc", "bat2_soc", "SoC 2", "#17becf", NULL, NULL, 100, 0},
    {"soc", "bat3_soc", "SoC 3", "#bcbd22", NULL, NULL, 100, 0},
    {"soc", "bat4_soc", "SoC 4", "#8c564b", NULL, NULL, 100, 0},
    {"soc", "field_soc", "SoC, field", "#7f2704", NULL, NULL, 100, 1},
    {"soc", "soc_floor", "floor", "#d62728", NULL, NULL, 100, 1},
    {"soc", "soc_ceiling", "ceiling", "#ff7f0e", NULL, NULL, 100, 1},
};
#define N_ISERIES     (sizeof ichart_series / sizeof ichart_series[0])
#define ICHART_POINTS 1500 /* at most, per series: report.html stays a few hundred KB */

static const char chart_js[] =
    "(function () {\n"
    "  var D = JSON.parse(document.getElementById('plot-data').textContent);\n"
    "  var T = D.t, N = T.length, x0 = T[0], x1 = T[N - 1], hover = null;\n"
    "  var sec = document.getElementById('interactive');\n"
    "  function clock(s) {\n"
    "    var d = new Date(D.t0 + s * 1000), iso = d.toISOString();\n"
    "    return (x1 - x0 > 86400 ? iso.substr(5, 5) + ' ' : '') + iso.substr(11, 8);\n"
    "  }\n"
    "  function nearest(s) {\n"
    "    var lo = 0, hi = N - 1;\n"
    "    while (hi - lo > 1) { var m = (lo + hi) >> 1; if (T[m] < s) lo = m; else hi = m; }\n"
    "    return s - T[lo] < T[hi] - s ? lo : hi;\n"
    "  }\n"
    "  function draw(c) {\n"
    "    var cv = c.canvas, g = cv.getContext('2d'), W = cv.width, H = cv.height, L = 60, R = 10, "
    "B = 24, P = 8;\n"
    "    var i0 = nearest(x0), i1 = nearest(x1), ymin = Infinity, ymax = -Infinity, i, k;\n"
    "    c.series.forEach(function (s) {\n"
    "      for (i = i0; i <= i1; i++) {\n"
    "        var a = s.lo ? s.lo[i] : s.v[i], b = s.hi ? s.hi[i] : s.v[i];\n"
    "        if (a !== null && a < ymin) ymin = a;\n"
    "        if (b !== null && b > ymax) ymax = b;\n"
    "      }\n"
    "    });\n"
    "    if (!(ymax > ymin)) { ymin -= 1; ymax += 1; }\n"
    "    var X = function (t) { return L + (W - L - R) * (t - x0) / (x1 - x0 || 1); };\n"
    "    var Y = function (v) { return P + (H - P - B) * (ymax - v) / (ymax - ymin); };\n"
    "    g.clearRect(0, 0, W, H); g.font = '11px sans-serif'; g.strokeStyle = '#ddd'; g.fillStyle "
    "= '#444';\n"
    "    for (k = 0; k <= 4; k++) {\n"
    "      var yv = ymin + (ymax - ymin) * k / 4, xv = x0 + (x1 - x0) * k / 4;\n"
    "      g.beginPath(); g.moveTo(L, Y(yv)); g.lineTo(W - R, Y(yv)); g.stroke();\n"
    "      g.fillText(yv.toPrecision(3), 2, Y(yv) + 4);\n"
    "      g.fillText(clock(xv), Math.min(X(xv) - 20, W - 70), H - 6);\n"
    "    }\n"
    "    c.series.forEach(function (s) {\n"
    "      g.strokeStyle = g.fillStyle = s.color; g.setLineDash(s.dash ? [5, 4] : []);\n"
    "      if (s.lo) {\n"
    "        g.globalAlpha = 0.25; g.beginPath();\n"
    "        for (i = i0; i <= i1; i++) g.lineTo(X(T[i]), Y(s.hi[i]));\n"
    "        for (i = i1; i >= i0; i--) g.lineTo(X(T[i]), Y(s.lo[i]));\n"
    "        g.fill(); g.globalAlpha = 1;\n"
    "      }\n"
    "      g.beginPath(); var up = false;\n"
    "      for (i = i0; i <= i1; i++) {\n"
    "        if (s.v[i] === null) { up = false; continue; }\n"
    "        if (up) g.lineTo(X(T[i]), Y(s.v[i])); else g.moveTo(X(T[i]), Y(s.v[i]));\n"
    "        up = true;\n"
    "      }\n"
    "      g.stroke();\n"
    "    });\n"
    "    g.setLineDash([]);\n"
    "    if (hover !== null) {\n"
    "      var j = nearest(hover), txt = clock(T[j]) + ' ' + D.tz;\n"
    "      g.strokeStyle = '#000'; g.beginPath(); g.moveTo(X(T[j]), P); g.lineTo(X(T[j]), H - B); "
    "g.stroke();\n"
    "      c.series.forEach(function (s) { if (s.v[j] !== null) txt += '  ' + s.name + ' ' + "
    "s.v[j].toPrecision(4); });\n"
    "      c.tip.textContent = txt;\n"
    "    }\n"
    "    c.div.setAttribute('data-x0', x0.toFixed(3)); c.div.setAttribute('data-x1', "
    "x1.toFixed(3));\n"
    "    c.X = X; c.L = L; c.W = W; c.R = R;\n"
    "  }\n"
    "  function all() { D.charts.forEach(draw); }\n"
    "  function tOf(c, ev) {\n"
    "    var r = c.canvas.getBoundingClientRect(), px = (ev.clientX - r.left) * c.canvas.width / "
    "r.width;\n"
    "    return x0 + (x1 - x0) * (px - c.L) / (c.W - c.L - c.R);\n"
    "  }\n"
    "  D.charts.forEach(function (c) {\n"
    "    c.div = document.createElement('div'); c.div.id = 'ichart-' + c.id; c.div.className = "
    "'ichart';\n"
    "    c.div.setAttribute('data-points', N);\n"
    "    var h = document.createElement('h3'); h.textContent = c.title; c.div.appendChild(h);\n"
    "    c.canvas = document.createElement('canvas'); c.canvas.width = 1100; c.canvas.height = "
    "260;\n"
    "    c.div.appendChild(c.canvas);\n"
    "    c.tip = document.createElement('div'); c.tip.className = 'tip note'; "
    "c.div.appendChild(c.tip);\n"
    "    sec.appendChild(c.div);\n"
    "    var from = null;\n"
    "    c.canvas.addEventListener('mousedown', function (e) { from = tOf(c, e); });\n"
    "    c.canvas.addEventListener('mouseup', function (e) {\n"
    "      var to = tOf(c, e);\n"
    "      if (from !== null && Math.abs(to - from) > (x1 - x0) / 200) {\n"
    "        x0 = Math.max(T[0], Math.min(from, to)); x1 = Math.min(T[N - 1], Math.max(from, to)); "
    "all();\n"
    "      }\n"
    "      from = null;\n"
    "    });\n"
    "    c.canvas.addEventListener('mousemove', function (e) { hover = tOf(c, e); all(); });\n"
    "    c.canvas.addEventListener('dblclick', function () { x0 = T[0]; x1 = T[N - 1]; all(); });\n"
    "  });\n"
    "  /* #zoom=FROM,TO (seconds from the start) and #hover=T: links into the page, and tests */\n"
    "  var m = /zoom=([0-9.]+),([0-9.]+)/.exec(location.hash), h = "
    "/hover=([0-9.]+)/.exec(location.hash);\n"
    "  if (m && +m[2] > +m[1]) { x0 = Math.max(T[0], +m[1]); x1 = Math.min(T[N - 1], +m[2]); }\n"
    "  if (h) hover = +h[1];\n"
    "  all();\n"
    "})();\n";

/* plots/data.csv in memory, by column. */
struct table {
    char names[64][32];
    size_t n_cols, n_rows, cap;
    double *v; /* row-major */
};

static int load_table(const char *path, struct table *t)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[4096];
    if (fgets(line, sizeof line, f))
        for (char *save, *tok = strtok_r(line, ",\n", &save); tok && t->n_cols < 64;
             tok = strtok_r(NULL, ",\n", &save))
            snprintf(t->names[t->n_cols++], 32, "%s", tok);
    while (t->n_cols && fgets(line, sizeof line, f)) {
        if (t->n_rows == t->cap) {
            size_t cap = t->cap ? 2 * t->cap : 1024;
            double *nv = realloc(t->v, cap * t->n_cols * sizeof *nv);
            if (!nv)
                break;
            t->v = nv;
            t->cap = cap;
        }
        double *row = &t->v[t->n_rows++ * t->n_cols];
        char *p = line;
        for (size_t c = 0; c < t->n_cols; c++) {
            row[c] = p && strncmp(p, "nan", 3) ? strtod(p, NULL) : NAN;
            p = p ? strchr(p, ',') : NULL;
            p = p ? p + 1 : NULL;
        }
    }
    fclose(f);
    return 0;
}

static int table_col(const struct table *t, const char *name)
{
    for (size_t c = 0; name && c < t->n_cols; c++)
        if (!strcmp(t->names[c], name))
            return (int)c;
    return -1;
}

static int col_nonzero(const struct table *t, int c)
{
    for (size_t r = 0; c >= 0 && r < t->n_rows; r++)
        if (isfinite(t->v[r * t->n_cols + (size_t)c]) && t->v[r * t->n_cols + (size_t)c] != 0)
            return 1;
    return 0;
}

/* One series over buckets of `per` rows: the mean (fn 0), lowest (1) or highest (2). */
static void json_series(FILE *f, const struct table *t, int c, size_t per, int fn, double scale)
{
    fputc('[', f);
    for (size_t b = 0; b * per < t->n_rows; b++) {
        double acc = fn == 1 ? INFINITY : fn == 2 ? -INFINITY : 0;
        size_t n = 0;
        for (size_t r = b * per; r < (b + 1) * per && r < t->n_rows; r++) {
            double v = t->v[r * t->n_cols + (size_t)c];
            if (!isfinite(v))
                continue;
            acc = fn == 1 ? fmin(acc, v) : fn == 2 ? fmax(acc, v) : acc + v;
            n++;
        }
        if (n)
            fprintf(f, "%s%.5g", b ? "," : "", (fn ? acc : acc / (double)n) * scale);
        else
            fprintf(f, "%snull", b ? "," : "");
    }
    fputc(']', f);
}

/* The clock the time axes show: the scenario's "timezone" at its offset at the start
 * ("Europe/Berlin UTC+02:00"), else "UTC" (zone names are [A-Za-z0-9/_+-]: no escaping).
 * Returns the start in that clock's milliseconds (the plots' t0). */
static long long clock_zone(const struct scenario *sc, char *buf, size_t len)
{
    if (!sc->timezone[0]) {
        snprintf(buf, len, "UTC");
        return (long long)sc->start_unix_ms;
    }
    long off = sc->tz_offset_s, a = off < 0 ? -off : off;
    snprintf(buf, len, "%s UTC%c%02ld:%02ld", sc->timezone, off < 0 ? '-' : '+', a / 3600,
             a % 3600 / 60);
    return (long long)sc->start_unix_ms + (long long)off * 1000;
}

/* Zoom (drag; double-click resets) and hover (time and values) over the run's series, drawn by
 * a small script from data kept in the page (no network): plots/data.csv, decimated to at most
 * ICHART_POINTS buckets, powers with their lowest and highest step so that an oscillation
 * faster than a bucket still shows as a band. */
static void section_interactive(FILE *f, const char *dir, const struct scenario *sc)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/plots/data.csv", dir);
    struct table t;
    if (load_table(path, &t) || t.n_rows < 2 || table_col(&t, "time_s") != 0) {
        free(t.v);
        return;
    }
    size_t per = (t.n_rows + ICHART_POINTS - 1) / ICHART_POINTS;
    char zone[96];
    long long t0 = clock_zone(sc, zone, sizeof zone);
    fprintf(f,
            "<section id=\"interactive\">\n<h2>Interactive plots</h2>\n<p class=\"note\">Drag "
            "across a plot to zoom (all plots follow), double-click to reset, hover for the "
            "values. Time in %s; powers in kW (bands: the lowest and highest step of each point), "
            "SoC in %%.</p>\n<script type=\"application/json\" id=\"plot-data\">\n",
            zone);
    fprintf(f, "{\"tz\":\"%s\",\"t0\":%lld,\"t\":", zone, t0);
    json_series(f, &t, 0, per, 0, 1);
    fputs(",\"charts\":[", f);
    static const char *const charts[2][2] = {{"power", "Power (kW, site signs)"},
                                             {"soc", "State of charge (%)"}};
    int nchart = 0;
    for (int k = 0; k < 2; k++) {
        int any = 0;
        for (size_t i = 0; i < N_ISERIES; i++) {
            const struct ichart_series *s = &ichart_series[i];
            int c = table_col(&t, s->col);
            if (strcmp(s->chart, charts[k][0]) || !col_nonzero(&t, c))
                continue;
            if (!any)
                fprintf(f, "%s{\"id\":\"%s\",\"title\":\"%s\",\"series\":[", nchart++ ? "," : "",
                        charts[k][0], charts[k][1]);
            fprintf(f, "%s{\"name\":\"%s\",\"color\":\"%s\",\"dash\":%d,\"v\":", any++ ? "," : "",
                    s->name, s->color, s->dash);
            json_series(f, &t, c, per, 0, s->scale);
            int lo = table_col(&t, s->lo), hi = table_col(&t, s->hi);
            if (lo >= 0 && hi >= 0) {
                fputs(",\"lo\":", f);
                json_series(f, &t, lo, per, 1, s->scale);
                fputs(",\"hi\":", f);
                json_series(f, &t, hi, per, 2, s->scale);
            }
            fputc('}', f);
        }
        if (any)
            fputs("]}", f);
    }
    fputs("]}\n</script>\n<script>\n", f);
    fputs(chart_js, f);
    fputs("</script>\n</section>\n", f);
    free(t.v);
}

/* events.log lines are `t=SECONDS key=value ...`: the table shows time, site, asset, event
 * and the rest as details. */
static void event_row(FILE *f, char *line)
{
    char *t = "", *site = "", *asset = "", *event = "", details[1024] = "";
    size_t dl = 0;
    for (char *save, *tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
        if (!strncmp(tok, "t=", 2))
            t = tok + 2;
        else if (!strncmp(tok, "site=", 5))
            site = tok + 5;
        else if (!strncmp(tok, "asset=", 6))
            asset = tok + 6;
        else if (!strncmp(tok, "event=", 6))
            event = tok + 6;
        else if (dl < sizeof details)
            dl += (size_t)snprintf(details + dl, sizeof details - dl, "%s%s", dl ? " " : "", tok);
    }
    fputs("<tr><td class=\"num\">", f);
    report_escape(f, t);
    fputs("</td><td>", f);
    report_escape(f, site);
    fputs("</td><td>", f);
    report_escape(f, asset);
    fputs("</td><td>", f);
    report_escape(f, event);
    fputs("</td><td class=\"mono\">", f);
    report_escape(f, details);
    fputs("</td></tr>\n", f);
}

static void section_events(FILE *f, const char *dir, const struct experiment_result *res)
{
    fputs("<section id=\"events\">\n<h2>Events and interlocks</h2>\n<h3>Interlock "
          "activations</h3>\n<table>\n<tr><th>interlock</th><th>activations</th></tr>\n",
          f);
    for (int i = KPI_INTERLOCK_FIRST; i <= KPI_INTERLOCK_TOTAL; i++)
        if (res->kpis.v[i] > 0 || i == KPI_INTERLOCK_TOTAL)
            fprintf(f, "<tr><td>%s</td><td class=\"num\">%.0f</td></tr>\n", kpi_def(i)->name,
                    res->kpis.v[i]);
    fputs("</table>\n<h3>Events (events.log)</h3>\n<div class=\"scroll\"><table>\n<tr><th>t (s)"
          "</th><th>site</th><th>asset</th><th>event</th><th>details</th></tr>\n",
          f);
    char path[1200], line[2048];
    snprintf(path, sizeof path, "%s/events.log", dir);
    FILE *in = fopen(path, "r");
    size_t rows = 0, total = 0;
    while (in && fgets(line, sizeof line, in)) {
        if (total++ < MAX_EVENT_ROWS) {
            event_row(f, line);
            rows++;
        }
    }
    if (in)
        fclose(in);
    fputs("</table></div>\n", f);
    if (total > rows)
        fprintf(f, "<p class=\"note\">First %zu of %zu lines; the rest are in events.log.</p>\n",
                rows, total);
    fputs("</section>\n", f);
}

static void section_digest(FILE *f, const struct scenario *sc, const struct experiment_result *res)
{
    fprintf(f,
            "<section id=\"digest\">\n<h2>Digest</h2>\n<table>\n<tr><th>run digest (SHA-256 "
            "of timeseries.csv, decisions.csv, events.log, kpis.json)</th><td class=\"mono\">"
            "%s</td></tr>\n<tr><th>outputs digest (the three files, in kpis.json)</th><td "
            "class=\"mono\">%s</td></tr>\n<tr><th>scenario file SHA-256</th><td "
            "class=\"mono\">%s</td></tr>\n</table>\n<p class=\"note\">The same scenario, seed "
            "and build give the same digests on either transport (docs/determinism.md). "
            "Plots and this page are not digested.</p>\n</section>\n",
            res->digest, res->run.digest, sc->sha256);
}

int report_write(const char *path, const char *dir, const struct scenario *sc,
                 const struct experiment_result *res, char *err, size_t errlen)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(e));
        return -e;
    }
    char title[256];
    snprintf(title, sizeof title, "der-sim run: %s", sc->name);
    report_page_begin(f, title);
    fputs("<h1>", f);
    report_escape(f, title);
    fputs("</h1>\n", f);
    /* what a run did is seen first, then judged: plots before the KPI tables */
    section_summary(f, dir, sc, res);
    section_plots(f, dir, res);
    section_interactive(f, dir, sc);
    section_kpis(f, res);
    section_expectations(f, res);
    section_baseline(f, res);
    section_events(f, dir, res);
    section_digest(f, sc, res);
    report_page_end(f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(e));
        return -e;
    }
    return 0;
}
