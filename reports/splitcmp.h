/* splitcmp: `der-sim run --split-compare`: the same scenario, seed and overrides run once per
 * split policy (gateway.split.policy, docs/split.md), in process, without baseline; then one
 * table comparing them (split-compare.csv, .md, .html) and a plot (split-compare.svg, when
 * gnuplot is there): SoC spread, per-battery throughput and equivalent cycles, losses
 * (simulated and the split's loss model), interlock clamps, site setpoint tracking. Every
 * policy's run keeps its own directory OUT/<policy>/. Nothing here prints but to `out`. */
#ifndef DERLOOP_SPLITCMP_H
#define DERLOOP_SPLITCMP_H

#include <stddef.h>
#include <stdio.h>

struct splitcmp_opts {
    const char *path;        /* the scenario file */
    const char *const *sets; /* --set overrides, applied to every policy's run */
    size_t n_sets;           /* at most SPLITCMP_MAX_SETS */
    const char *out_dir;     /* created; OUT/<policy>/ for each run */
    int no_plots;            /* do not run gnuplot */
    const char *gnuplot;     /* NULL = "gnuplot" from PATH */
};

#define SPLITCMP_MAX_SETS 64

/* Runs every policy and writes the table. Returns 0 (a run whose expectations failed is in
 * the table, column expect_failed), or -errno with err naming what failed. */
int splitcmp_run(const struct splitcmp_opts *o, FILE *out, char *err, size_t errlen);

#endif
