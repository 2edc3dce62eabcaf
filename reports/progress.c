/* progress: see progress.h.
 *
 * The estimate: while the run and its baseline step (in parallel), the share of their steps
 * done so far against the wall time so far; in the optimum, the share of its intervals. Plots
 * and the report take seconds and have no estimate. */
#include "reports/progress.h"

#include <string.h>

#include "common/rtclock.h"

#define PROGRESS_EVERY_US 500000

void progress_init(struct progress *p, FILE *out, const char *name, int with_baseline)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->name = name;
    p->phase = "run";
    p->t0_us = p->phase_us = rtclock_monotonic_us();
    p->with_baseline = with_baseline;
}

/* "1h02m", "3m05s", "12s" */
static void fmt_dur(char *buf, size_t len, double s)
{
    long v = s > 0 ? (long)(s + 0.5) : 0;
    if (v >= 3600)
        snprintf(buf, len, "%ldh%02ldm", v / 3600, v / 60 % 60);
    else if (v >= 60)
        snprintf(buf, len, "%ldm%02lds", v / 60, v % 60);
    else
        snprintf(buf, len, "%lds", v);
}

static void print_line(struct progress *p, const char *text, int final)
{
    size_t n = strlen(text);
    fprintf(p->out, "\r%s", text);
    for (size_t i = n; i < p->width; i++)
        fputc(' ', p->out); /* blanks what a longer line left */
    if (final)
        fputc('\n', p->out);
    p->width = final ? 0 : n;
    fflush(p->out);
}

/* The line of the run phase (or of the wait for the baseline). */
static void show_steps(struct progress *p, int64_t now_us)
{
    long long rt = atomic_load(&p->run_tick), rn = atomic_load(&p->run_ticks);
    long long bt = atomic_load(&p->base_tick), bn = atomic_load(&p->base_ticks);
    double el = (double)(now_us - p->t0_us) / 1e6;
    double all = (double)rn + (p->with_baseline ? (double)bn : 0);
    double done = (double)rt + (p->with_baseline ? (double)bt : 0);
    char eta[32] = "?", elapsed[32], line[256], base[64] = "";
    if (done > 0 && all > 0 && (!p->with_baseline || bn > 0))
        fmt_dur(eta, sizeof eta, el / done * (all - done));
    fmt_dur(elapsed, sizeof elapsed, el);
    if (p->with_baseline)
        snprintf(base, sizeof base, " baseline %3.0f%%",
                 bn > 0 ? 100.0 * (double)bt / (double)bn : 0);
    snprintf(line, sizeof line, "%s: %s %3.0f%%%s %.2f Msteps/s %s ETA %s", p->name, p->phase,
             rn > 0 ? 100.0 * (double)rt / (double)rn : 0, base, el > 0 ? done / el / 1e6 : 0.0,
             elapsed, eta);
    print_line(p, line, 0);
}

void progress_run(void *ctx, int64_t tick, int64_t ticks)
{
    struct progress *p = ctx;
    atomic_store(&p->run_tick, tick);
    atomic_store(&p->run_ticks, ticks);
    if (strcmp(p->phase, "run") != 0)
        return; /* the run's last call comes after its optimum (solved as the run finishes) */
    int64_t now = rtclock_monotonic_us();
    if (now - p->last_us < PROGRESS_EVERY_US && tick < ticks)
        return;
    p->last_us = now;
    show_steps(p, now);
}

void progress_baseline(void *ctx, int64_t tick, int64_t ticks)
{
    struct progress *p = ctx;
    atomic_store(&p->base_tick, tick);
    atomic_store(&p->base_ticks, ticks);
}

void progress_wait_tick(struct progress *p)
{
    int64_t now = rtclock_monotonic_us();
    if (now - p->last_us < PROGRESS_EVERY_US)
        return;
    p->last_us = now;
    p->phase = "baseline";
    show_steps(p, now);
}

void progress_optimum(void *ctx, size_t done, size_t n)
{
    struct progress *p = ctx;
    int64_t now = rtclock_monotonic_us();
    if (strcmp(p->phase, "optimum") != 0) {
        p->phase = "optimum";
        p->phase_us = now;
    }
    double el = (double)(now - p->phase_us) / 1e6;
    char eta[32] = "?", elapsed[32], line[256];
    if (done > 0 && done <= n)
        fmt_dur(eta, sizeof eta, el / (double)done * (double)(n - done));
    fmt_dur(elapsed, sizeof elapsed, (double)(now - p->t0_us) / 1e6);
    snprintf(line, sizeof line, "%s: optimum %zu/%zu intervals (%.0f%%) %s ETA %s", p->name, done,
             n, n ? 100.0 * (double)done / (double)n : 0, elapsed, eta);
    print_line(p, line, 0);
}

void progress_phase(struct progress *p, const char *phase)
{
    char elapsed[32], line[256];
    p->phase = phase;
    p->phase_us = rtclock_monotonic_us();
    fmt_dur(elapsed, sizeof elapsed, (double)(p->phase_us - p->t0_us) / 1e6);
    snprintf(line, sizeof line, "%s: %s %s", p->name, phase, elapsed);
    print_line(p, line, 0);
}

void progress_end(struct progress *p)
{
    char elapsed[32], line[256];
    fmt_dur(elapsed, sizeof elapsed, (double)(rtclock_monotonic_us() - p->t0_us) / 1e6);
    snprintf(line, sizeof line, "%s: done in %s", p->name, elapsed);
    print_line(p, line, 1);
}
