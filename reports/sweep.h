/* sweep: `der-sim sweep`: runs a scenario for every combination of --set values, each in its
 * own `der-sim run` child process (in-process transport, up to `jobs` at once), and writes a
 * table of KPIs per combination (CSV and HTML, in combination order whatever the order of
 * completion), plots of the main KPIs against each parameter, and the best combination for
 * one KPI. sweep_check validates every combination up front, so that a bad value fails the
 * sweep before any run starts. The caller owns the options; results are files under out_dir. */
#ifndef DERLOOP_SWEEP_H
#define DERLOOP_SWEEP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SWEEP_MAX_PARAMS 8
#define SWEEP_MAX_VALUES 64
#define SWEEP_MAX_RUNS   4096
#define SWEEP_MAX_SEEDS  100

struct sweep_param {
    char path[256]; /* a --set path, e.g. gateway.params.kp */
    size_t n;
    char value[SWEEP_MAX_VALUES][128]; /* as written after the '=' */
};

struct sweep_opts {
    const char *exe; /* der-sim itself (children run `exe run ...`) */
    const char *scenario;
    const char *out_dir;
    size_t n_params;
    struct sweep_param params[SWEEP_MAX_PARAMS];
    const char *const *fixed_sets; /* --set applied to every run (single values) */
    size_t n_fixed;
    int jobs;            /* >= 1 */
    int optimise;        /* enum kpi_id */
    int maximise;        /* 1 = the best is the largest value, 0 = the smallest */
    const char *gnuplot; /* NULL = from PATH */
    /* Runs per combination: seeds > 1 runs each combination with --seed base_seed + i for i in
     * [0, seeds) into runs/NNNN-sI/, and the tables give each KPI's mean and standard deviation;
     * 0 or 1: one run at the scenario's own seed, into runs/NNNN/. */
    size_t seeds;
    uint64_t base_seed; /* the scenario's seed (with the fixed --set values) */
};

/* Parses "PATH=V1,V2,..." into p. Commas inside JSON brackets or strings do not separate
 * values: "x=[1,2],[3,4]" is two values. Returns 0 or -EINVAL with err. */
int sweep_parse_param(const char *arg, struct sweep_param *p, char *err, size_t errlen);

/* Validates every combination before anything runs: the scenario loaded with the fixed
 * --set values and the combination's (scenario_load), its expectations (expect_parse) and each
 * site's gateway configuration as the run would build it (sitecfg_check). Writes one line per
 * invalid combination to out ("run 0001 PATH=VALUE: invalid: MESSAGE"). Returns 0, or the
 * first invalid combination's error (-EINVAL, -ENOENT, -ENOMEM) with err naming it, its
 * values and the message, and how many combinations are invalid. */
int sweep_check(const struct sweep_opts *o, FILE *out, char *err, size_t errlen);

/* Returned by sweep_run when every run that produced the optimised KPI failed its expectations:
 * no best (a failing run is never named best), the tables complete. */
#define SWEEP_NO_BEST (-1000)

/* Runs the grid; progress and the result lines go to out. Returns the index of the best
 * combination among the runs that passed (>= 0), SWEEP_NO_BEST, or -errno with err: -EIO when a run
 * produced no KPIs (a crash, an error sweep_check cannot see; err names the first such combination
 * and the error from its log; the tables are written all the same), -ENODATA when no run produced
 * the optimised KPI. */
int sweep_run(const struct sweep_opts *o, FILE *out, char *err, size_t errlen);

/* Instead of running: writes the runs as a job list to plan_path, one shell command line per
 * run (`der-sim run ...` into its own runs/ directory, its log and exit status beside it), for
 * GNU parallel (`parallel < FILE`, also over ssh) or any runner of command lines, and
 * out_dir/sweep-plan.json, which sweep_collect reads. Returns the number of runs or -errno. */
int sweep_plan(const struct sweep_opts *o, const char *plan_path, char *err, size_t errlen);

/* After the job list ran: reads dir/sweep-plan.json and every run's outputs, and writes the same
 * tables, plots and best line as sweep_run (same return values). */
int sweep_collect(const char *dir, FILE *out, char *err, size_t errlen);

#endif
