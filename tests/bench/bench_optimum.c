/* bench_optimum: wall time of the perfect-foresight LP (reports/optimum.c) for a synthetic site at
 * 15-minute resolution over a day, a month and a year (35,040 intervals), cost and peak
 * objectives, one and two batteries; then the year as `der-sim run` solves it
 * (optimum_solve_long: chunks of 14 days with 2 days of look-ahead, the end valued), cost and
 * peak, with its time: the one-LP year of min peak does not converge in the interior point and
 * the simplex fallback takes minutes, which is why runs use chunks. Figures only, no target; a
 * solve that fails makes the exit status 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "reports/optimum.h"

#define DT_S    900.0
#define PER_DAY 96

/* A household with PV and a two-rate tariff with a spot-like daily swing: deterministic
 * closed forms, no generator, so every run solves the same problem. */
static void synth(size_t n, double *net_w, double *p_imp, double *p_exp)
{
    for (size_t i = 0; i < n; i++) {
        double day = (double)(i / PER_DAY), hour = (double)(i % PER_DAY) * 24.0 / PER_DAY;
        double season = 0.5 - 0.5 * cos(2.0 * M_PI * (day + 10.0) / 365.0); /* 0 winter */
        double load = 400.0 + 1200.0 * exp(-pow((hour - 19.0) / 2.0, 2)) +
                      600.0 * exp(-pow((hour - 7.5) / 1.2, 2)) + 150.0 * sin(0.37 * (double)i);
        double sun = fmax(0.0, cos((hour - 13.0) * M_PI / 12.0));
        double pv = (2000.0 + 3000.0 * season) * pow(sun, 1.5) * (0.7 + 0.3 * sin(day * 1.7));
        net_w[i] = load - pv;
        double spot = 0.08 + 0.06 * sin((hour - 13.0) * M_PI / 12.0) * (1.0 - 0.5 * season) +
                      0.02 * sin(day * 0.9);
        p_imp[i] = spot + 0.15 + (hour >= 17.0 && hour < 21.0 ? 0.08 : 0.0);
        p_exp[i] = spot;
    }
}

/* chunked: solve as a run does (optimum_solve_long, the end valued at the cheapest price) */
static int bench_as(int chunked, const char *label, size_t n, enum optimum_objective obj, size_t nb,
                    double *net, double *pi, double *pe)
{
    struct optimum_battery b[2];
    for (size_t k = 0; k < 2; k++) {
        b[k] = (struct optimum_battery){
            .capacity_wh = 10000.0,
            .soc_init = 0.5,
            .soc_min = 0.1,
            .soc_max = 0.95,
            .max_charge_w = 5000.0,
            .max_discharge_w = 5000.0,
            .eta_charge = 0.95,
            .eta_discharge = 0.95,
            .soc_low_band = 0.05 + 0.1 * (double)k,
            .soc_high_band = 0.9,
        };
    }
    struct optimum_problem pb = {
        .objective = obj,
        .n = n,
        .dt_s = DT_S,
        .net_load_w = net,
        .import_price = pi,
        .export_price = pe,
        .batteries = b,
        .n_batteries = nb,
        .terminal_valued = chunked,
        .terminal_price = 0.15,
    };
    struct optimum_result r;
    char err[256] = "";
    int rc = chunked ? optimum_solve_long(&pb, NULL, &r, NULL, err, sizeof err)
                     : optimum_solve(&pb, &r, NULL, err, sizeof err);
    if (rc) {
        printf("%-40s failed: %d %s\n", label, rc, err);
        return 1;
    }
    printf("%-40s n=%-6zu batteries=%zu %8.3f s  baseline=%10.2f optimal=%10.2f "
           "savings=%9.2f peak=%7.1f kW (idle %7.1f) binaries=%zu\n",
           label, n, nb, r.solve_s, r.baseline_cost, r.optimal_cost, r.optimal_savings,
           r.peak_w / 1000.0, r.baseline_peak_w / 1000.0, r.n_binaries);
    if (chunked)
        printf("%-40s chunks=%zu\n", "", r.chunks);
    return 0;
}

static int bench(const char *label, size_t n, enum optimum_objective obj, size_t nb, double *net,
                 double *pi, double *pe)
{
    return bench_as(0, label, n, obj, nb, net, pi, pe);
}

int main(void)
{
    size_t year = 365 * PER_DAY;
    double *net = malloc(year * sizeof *net), *pi = malloc(year * sizeof *pi),
           *pe = malloc(year * sizeof *pe);
    if (!net || !pi || !pe)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0); /* figures as they come, also into a pipe */
    synth(year, net, pi, pe);
    int failed = 0;
    failed |= bench("1 day at 15 min, min cost", PER_DAY, OPTIMUM_MIN_COST, 1, net, pi, pe);
    failed |= bench("30 days at 15 min, min cost", 30 * PER_DAY, OPTIMUM_MIN_COST, 1, net, pi, pe);
    failed |= bench("30 days at 15 min, min peak", 30 * PER_DAY, OPTIMUM_MIN_PEAK, 1, net, pi, pe);
    failed |= bench("1 year at 15 min, min cost", year, OPTIMUM_MIN_COST, 1, net, pi, pe);
    failed |=
        bench("1 year at 15 min, min cost, 2 batteries", year, OPTIMUM_MIN_COST, 2, net, pi, pe);
    failed |= bench("90 days at 15 min, min peak", 90 * PER_DAY, OPTIMUM_MIN_PEAK, 1, net, pi, pe);
    failed |= bench_as(1, "1 year in chunks, min cost (der-sim run)", year, OPTIMUM_MIN_COST, 1,
                       net, pi, pe);
    failed |= bench_as(1, "1 year in chunks, min peak (der-sim run)", year, OPTIMUM_MIN_PEAK, 1,
                       net, pi, pe);
    free(net);
    free(pi);
    free(pe);
    return failed;
}
