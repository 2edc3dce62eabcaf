/* bench.h: how a benchmark reports a documented target (the figures stay the product; nothing
 * here is a timed unit test). bench_target() prints one line per target,
 *   target <figure> = <value> <unit> (target <op> <bound>): ok
 *   MISS <bench>: <figure> = <value> <unit> (target <op> <bound>)
 * and bench_exit() turns a miss into exit status 3 (1 stays "the benchmark failed"), so that
 * `make bench` (tests/bench/run.sh) fails when a target is missed. */
#ifndef DERLOOP_BENCH_H
#define DERLOOP_BENCH_H

#include <stdio.h>
#include <string.h>

#define BENCH_EXIT_MISS 3

static int bench_missed;

/* op is ">=", ">", "<=" or "<". */
static inline void bench_target(const char *bench, const char *figure, double value,
                                const char *unit, const char *op, double bound)
{
    int ok = strcmp(op, ">=") == 0   ? value >= bound
             : strcmp(op, ">") == 0  ? value > bound
             : strcmp(op, "<=") == 0 ? value <= bound
                                     : value < bound;
    if (ok) {
        printf("target %s = %.6g %s (target %s %.6g): ok\n", figure, value, unit, op, bound);
    } else {
        printf("MISS %s: %s = %.6g %s (target %s %.6g)\n", bench, figure, value, unit, op, bound);
        bench_missed++;
    }
    fflush(stdout);
}

/* A target whose figure could not be measured counts as missed. */
static inline void bench_no_figure(const char *bench, const char *figure, const char *why)
{
    printf("MISS %s: %s: %s\n", bench, figure, why);
    bench_missed++;
    fflush(stdout);
}

/* The exit status of main: 1 when the benchmark itself failed, else 3 on a missed target. */
static inline int bench_exit(int failed)
{
    return failed ? 1 : bench_missed ? BENCH_EXIT_MISS : 0;
}

#endif
