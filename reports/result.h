/* result: what one experiment (experiment.h) produced: the run and its KPIs, the baseline's,
 * the expectations judged, the digest and how the plots went. experiment.c fills it, report.c
 * renders it and der-sim prints it: the one thing they share, so neither needs the other. A
 * plain value. */
#ifndef DERLOOP_RESULT_H
#define DERLOOP_RESULT_H

#include "reports/expect.h"
#include "reports/kpi.h"
#include "sim/run/runner.h"

struct experiment_result {
    struct runner_result run;
    char strategy[64];   /* the strategy the scenario's gateway section names ("null": none) */
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
    char optimum_note[400]; /* why the optimum KPIs are null, or how they were solved; "" */
};

#endif
