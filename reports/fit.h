/* fit: `der-sim fit`, calibration of a replay against its field record. Searches scenario
 * values (device and controller parameters: a meter's refresh, a battery's latency, a gain) for
 * the replay that best matches a field CSV (fidelity.h): a grid over every parameter's range
 * (the first varies slowest), then golden-section searches one parameter at a time around the
 * best grid point, each run in process (inproc transport, no plots), deterministic from start to
 * finish. The best evaluated point wins (ties: the first). Nothing here prints except through
 * the progress stream; nothing exits. */
#ifndef DERLOOP_FIT_H
#define DERLOOP_FIT_H

#include <stddef.h>
#include <stdio.h>

#include "reports/kpi.h"

#define FIT_MAX_PARAMS 8
#define FIT_MAX_STEPS  101
#define FIT_MAX_SETS   64 /* further --set of every run */

struct fit_param {
    char path[256]; /* a --set path: gateway.params.kp, sites[0].assets[1].response.latency */
    double lo, hi;  /* durations in ms */
    int steps;      /* grid points over [lo, hi] (2..FIT_MAX_STEPS; 1 = lo only) */
    int duration;   /* the range was written as durations ("1s:5s"): values are set as "Nms" */
};

/* "PATH=LO:HI[:STEPS]" (STEPS default 5; LO and HI both numbers or both durations, LO <= HI).
 * 0, or -EINVAL with err naming the part that is wrong. */
int fit_param_parse(const char *spec, struct fit_param *p, char *err, size_t errlen);

/* What is matched: the record's grid power (field_grid_rmse_w), or the oscillation of the grid
 * power seen at the record's samples: |A_replay - A_record| / max(A_record, 100 W) +
 * |P_replay - P_record| / P_record (field_*osc_* KPIs; 1 when only one side oscillates). */
enum fit_target { FIT_RMSE, FIT_OSCILLATION };

struct fit_opts {
    const char *scenario;    /* the scenario file */
    const char *field_csv;   /* the field CSV; NULL = the scenario's "field" block */
    const char *const *sets; /* further --set PATH=VALUE applied to every run */
    size_t n_sets;
    struct fit_param p[FIT_MAX_PARAMS];
    size_t n;
    enum fit_target target;
    int refine; /* golden-section steps per parameter after the grid (default 8 when 0; <0 none) */
    FILE *progress; /* one line per run; NULL = none */
};

struct fit_result {
    double best[FIT_MAX_PARAMS];
    double cost;
    struct kpi_set kpis; /* of the best run */
    int runs;
};

/* Runs the search. 0, or -errno with err (a run that cannot run, a record without the series
 * the target needs). */
int fit_run(const struct fit_opts *o, struct fit_result *res, char *err, size_t errlen);

/* Writes the scenario with the best values set (and, when it had none, a "field" block naming
 * the CSV by its absolute path) as JSON to out_path. Profile CSVs stay relative to the original
 * file: write it beside it. 0, or -errno with err. */
int fit_write_scenario(const struct fit_opts *o, const struct fit_result *res, const char *out_path,
                       char *err, size_t errlen);

#endif
