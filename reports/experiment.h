/* experiment: one `der-sim run` from start to finish: validates the expectations, runs the
 * scenario (runner.h), runs it again with the baseline strategy in the same process
 * (in-process transport), judges the expectations, writes kpis.json, computes the run's
 * digest, then draws the plots (plot.h) and writes report.html (report.h) from the result
 * (result.h). What a run means is measured by measure.h, the runner's observer. The caller owns
 * the scenario and the result; nothing here prints or exits. */
#ifndef DERLOOP_EXPERIMENT_H
#define DERLOOP_EXPERIMENT_H

#include <stdio.h>

#include "reports/optimum.h"
#include "reports/result.h"
#include "sim/run/runner.h"
#include "sim/scenario/scenario.h"

struct experiment_opts {
    struct runner_opts run;           /* the main run (transport, out_dir, progress, ...) */
    int no_baseline;                  /* skip the baseline run (vs_baseline KPIs are null) */
    int no_plots;                     /* do not run gnuplot */
    int no_report;                    /* do not write report.html */
    const char *gnuplot;              /* NULL = "gnuplot" from PATH */
    int no_optimum;                   /* skip the perfect-foresight optimum (its KPIs are null) */
    struct optimum_long_opts optimum; /* its chunks, time budget and progress (optimum.h) */
};

/* Validates the scenario's expectations (the error names the file and path), then runs.
 * Returns 0 when it ran (look at failed and the run's check counts), or -errno with err. */
int experiment_run(const struct scenario *sc, const struct experiment_opts *o,
                   struct experiment_result *res, char *err, size_t errlen);

#endif
