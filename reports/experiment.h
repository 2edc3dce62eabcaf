/* experiment: one `der-sim run` from start to finish: validates the expectations, runs the
 * scenario (runner.h), runs it again with the baseline strategy in the same process
 * (in-process transport), judges the expectations, writes kpis.json, computes the run's
 * digest, then draws the plots (plot.h) and writes report.html (report.h). The caller owns
 * the scenario and the result; nothing here prints or exits. */
#ifndef DERLOOP_EXPERIMENT_H
#define DERLOOP_EXPERIMENT_H

#include <stdio.h>

#include "reports/expect.h"
#include "reports/kpi.h"
#include "sim/run/runner.h"
#include "sim/scenario/scenario.h"

struct experiment_opts {
    struct runner_opts run; /* the main run (transport, out_dir, progress, ...) */
    int no_baseline;        /* skip the baseline run (vs_baseline KPIs are null) */
    int no_plots;           /* do not run gnuplot */
    int no_report;          /* do not write report.html */
    const char *gnuplot;    /* NULL = "gnuplot" from PATH */
};

struct experiment_result {
    struct runner_result run;
    struct kpi_set kpis; /* with the vs_baseline deltas when the baseline ran */
    int have_baseline;
    struct kpi_set baseline;
    char baseline_strategy[32];
    struct runner_result baseline_run;
    struct expect_list expect;
    struct expect_result results[EXPECT_MAX];
    size_t failed;   /* expectations that failed */
    char digest[65]; /* SHA-256 of the three outputs and kpis.json */
    int plots_rc;    /* 0, -ENOENT (no gnuplot), -EIO; 1 = not attempted */
    char plot_msg[512];
    char report_path[1100]; /* "" when no report was written */
};

/* Validates the scenario's expectations (the error names the file and path), then runs.
 * Returns 0 when it ran (look at failed and the run's check counts), or -errno with err. */
int experiment_run(const struct scenario *sc, const struct experiment_opts *o,
                   struct experiment_result *res, char *err, size_t errlen);

/* The strategy the scenario's gateway section names ("null" when it names none). */
const char *experiment_strategy(const struct scenario *sc);

#endif
