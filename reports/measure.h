/* measure: what a run means, measured while it runs. The observer (sim/run/runner.h) that
 * reports/ hands the runner: after every physics step it samples every site for the KPI
 * accumulator (kpi.h), the optimum's (optimum_kpi.h) and, optionally, the plot recorder
 * (plot.h); it counts every gateway cycle's interlocks; at the end it adds the sites' totals and
 * bus statistics, solves the optimum and closes the KPIs. The SoC limits and the frequency
 * contract the KPIs judge by are the gateway's own. measure_new returns a measurement the
 * caller owns (measure_free); its observer lives as long as it. */
#ifndef DERLOOP_MEASURE_H
#define DERLOOP_MEASURE_H

#include <stddef.h>

#include "reports/kpi.h"
#include "reports/optimum.h"
#include "sim/run/runner.h"
#include "sim/scenario/scenario.h"

struct measure_opts {
    /* The gateway section whose grid_services contract the frequency-response KPIs judge by;
     * NULL = the scenario's own. A baseline run passes the original scenario's, so that its
     * batteries are held to the same requirement. */
    const cJSON *kpi_gateway;
    const char *plot_dir; /* write plot_dir/plots/data.csv (undigested: plot.h); NULL = none */
    /* A field CSV to judge the run against (fidelity.h) instead of the scenario's "field"
     * block; NULL = the block's, if any. */
    const char *field_csv;
    /* The optimum's chunks, budget and progress (optimum.h); NULL = its defaults. */
    const struct optimum_long_opts *optimum;
    const char *no_optimum; /* non-NULL: skip the optimum, its KPIs null, this the reason */
};

struct measure;

/* For a run of sc. NULL with err when out of memory or the field record cannot be read. */
struct measure *measure_new(const struct scenario *sc, const struct measure_opts *o, char *err,
                            size_t errlen);
const struct runner_observer *measure_observer(struct measure *m);

/* After a run that completed: its KPIs (the vs_baseline entries NaN) and the plot data closed.
 * Returns 0, or -EIO with err when the plot data could not be written. */
int measure_end(struct measure *m, struct kpi_set *out, char *err, size_t errlen);
void measure_free(struct measure *m);

/* Why the optimum's KPIs are null, or how they were solved (optimum_kpi_note); "" if nothing. */
const char *measure_optimum_note(const struct measure *m);

#endif
