/* progress: the one progress line of a `der-sim run` on stderr (or any stream): the phase (run,
 * baseline, optimum, plots, report), how far it is and an estimate of the time left. The run's
 * and the baseline's steps may be reported from two threads at once; only the thread that calls
 * progress_run, progress_optimum, progress_phase, progress_wait_tick and progress_end prints
 * (the baseline's thread only stores its count). Wall time only: nothing here reaches an
 * output. */
#ifndef DERLOOP_PROGRESS_H
#define DERLOOP_PROGRESS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

struct progress {
    FILE *out;
    const char *name; /* the scenario's */
    const char *phase;
    int64_t t0_us, last_us, phase_us;
    atomic_llong run_tick, run_ticks, base_tick, base_ticks;
    int with_baseline; /* the baseline runs alongside the run */
    size_t opt_done, opt_n;
    size_t width; /* of the last line, to blank it */
};

/* Starts the line (nothing printed yet). */
void progress_init(struct progress *p, FILE *out, const char *name, int with_baseline);

/* Runner callbacks (runner_opts.on_progress): the run's steps (prints, at most twice a second)
 * and the baseline's (stores only: safe from another thread). */
void progress_run(void *ctx, int64_t tick, int64_t ticks);
void progress_baseline(void *ctx, int64_t tick, int64_t ticks);

/* While waiting for the baseline's thread: prints its line (at most twice a second). */
void progress_wait_tick(struct progress *p);

/* The optimum's chunks (optimum_long_opts.progress). */
void progress_optimum(void *ctx, size_t done, size_t n);

/* A phase without a measure of its own ("plots", "report"): printed at once. */
void progress_phase(struct progress *p, const char *phase);

/* The last line, ended with a newline: the total wall time. */
void progress_end(struct progress *p);

#endif
