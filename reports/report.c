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
    section_summary(f, dir, sc, res);
    section_kpis(f, res);
    section_expectations(f, res);
    section_baseline(f, res);
    section_plots(f, dir, res);
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
