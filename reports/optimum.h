/* optimum: the perfect-foresight reference. Given a site's whole horizon (uncontrollable net load,
 * import and export prices, grid limits) and its batteries, a linear program solved with GLPK
 * finds the cheapest (or lowest-peak) battery schedule any controller could reach; the runner
 * compares a strategy's savings with it. Plain value structs; the caller owns every array it
 * passes in or out, and nothing allocated here outlives a call. Formulation in optimum.c. */
#ifndef DERLOOP_OPTIMUM_H
#define DERLOOP_OPTIMUM_H

#include <stddef.h>

#include "sim/physics/battery.h"

/* A year at 15 minutes (leap year: 366 x 96) or a day at 2.5 s; the LP has 2 + 3 x batteries
 * columns per interval. Minimum cost over a year at 15 min takes about 2 s; minimum peak about
 * 1 s up to half a year, minutes for a year (bench_optimum; the reasons in optimum.c). With
 * negative prices the one-direction guard adds a MIP, whose time grows with the binaries. */
#define OPTIMUM_MAX_INTERVALS 35136
#define OPTIMUM_MAX_BATTERIES 8
/* Savings below this (currency) count as "nothing to save" in optimum_savings_vs_optimal_pct. */
#define OPTIMUM_SAVINGS_EPS 1e-6

/* One battery as the optimum sees it: energy in Wh, power on the AC side, both directions as
 * magnitudes. The SoC window [soc_min, soc_max] is widened to include soc_init, so a pack that
 * starts outside the controller's window is never infeasible at t = 0. */
struct optimum_battery {
    double capacity_wh;      /* > 0 */
    double soc_init;         /* [0, 1] */
    double soc_min, soc_max; /* 0 <= soc_min < soc_max <= 1: the window the strategies keep */
    /* The end-of-horizon floor. soc_final_set = 0 (the zero-initialised default) means
     * soc_final_min = soc_init: the battery must end with at least what it started with, so the
     * optimum cannot "save" by selling energy it was given for free (the idle baseline ends at
     * soc_init too). Set soc_final_set = 1 to choose another floor, e.g. soc_min. */
    int soc_final_set;
    double soc_final_min;
    double max_charge_w;    /* >= 0 */
    double max_discharge_w; /* >= 0 */
    double eta_charge;      /* (0, 1] */
    double eta_discharge;   /* (0, 1] */
    /* The simulator's SoC derate (docs/physics.md), linear in the energy at the start of each
     * interval; 0 disables. Discharge limit x min(1, SoC / soc_low_band), charge limit x
     * min(1, (1 - SoC) / (1 - soc_high_band)); soc_high_band 0 or 1 disables the taper. */
    double soc_low_band;
    double soc_high_band;
};

enum optimum_objective {
    OPTIMUM_MIN_COST, /* minimum energy cost; the grid limits, when set, are hard constraints */
    OPTIMUM_MIN_PEAK, /* minimum peak import, then the cheapest schedule holding that peak */
};

struct optimum_problem {
    enum optimum_objective objective;
    size_t n;                 /* intervals, 1 .. OPTIMUM_MAX_INTERVALS */
    double dt_s;              /* interval length, > 0 */
    double last_dt_s;         /* length of the last interval (a short tail); 0 = dt_s */
    const double *net_load_w; /* [n] load + evse + boiler - pv, W, + import, interval mean */
    /* [n] currency/kWh, interval mean, any sign. NULL = 0 in every interval (as the KPIs
     * treat a site without a price profile); both NULL: costs are 0, only peaks matter. */
    const double *import_price;
    const double *export_price;
    int has_import_limit; /* 1: import <= import_limit_w in every interval */
    double import_limit_w;
    int has_export_limit; /* 1: export <= export_limit_w (0 = zero export) */
    double export_limit_w;
    const struct optimum_battery *batteries;
    size_t n_batteries; /* 0 .. OPTIMUM_MAX_BATTERIES (0: the optimum is the baseline) */
    /* Terminal valuation (the KPIs' end_energy_value, optimum_terminal_value): with
     * terminal_valued = 1 the batteries may end anywhere in their window (soc_final_* is
     * ignored) and the objective counts the stored energy left against the start at
     * terminal_price (currency/kWh, >= 0) as optimum_terminal_value does for a run, so a run
     * and the optimum are scored by one rule. 0: the soc_final floor, a surplus worth nothing. */
    int terminal_valued;
    double terminal_price;
    /* OPTIMUM_MIN_PEAK: a peak already reached (an earlier chunk); the stage-two schedule may
     * use up to it. 0 = none. */
    double peak_floor_w;
};

/* Optional per-interval outputs, caller-allocated; any NULL pointer is skipped.
 * battery_w and energy_wh are [n * n_batteries], interval-major (index t * n_batteries + k). */
struct optimum_schedule {
    double *battery_w; /* interval mean AC power, + discharge (site sign) */
    double *energy_wh; /* stored energy at the end of the interval */
    double *grid_w;    /* [n] interval mean grid power, + import */
};

struct optimum_result {
    double optimal_cost;    /* currency: sum (p_imp max(g,0) - p_exp max(-g,0)) dt_h / 1000 */
    double end_value;       /* optimum_terminal_value of the schedule's end (0 unless
                             * terminal_valued) */
    double baseline_cost;   /* the same with every battery idle (g = net_load) */
    double optimal_savings; /* baseline_cost - optimal_cost + end_value */
    double peak_w;          /* max over intervals of max(g, 0) in the optimal schedule; with
                             * OPTIMUM_MIN_PEAK the minimum peak itself */
    double baseline_peak_w; /* max over intervals of max(net_load, 0) */
    double charged_wh, discharged_wh; /* AC throughput of the optimal schedule, all batteries */
    size_t n_binaries;  /* binaries the solve needed to keep one direction per interval
                         * (battery: charge or discharge; grid: import or export). 0
                         * unless prices go negative or export pays more than import */
    int interior_point; /* 1: solved by the interior-point method (large n), cost exact
                         * to about 1e-9 relative, powers to about 1e-5 W; 0: simplex */
    double solve_s;     /* wall-clock time of the solves: for logs, never for kpis.json */
    size_t chunks;      /* optimum_solve_long: chunks solved (1: the exact optimum) */
};

/* Solves the problem. Returns 0 with res (and sched, if non-NULL) filled; -EINVAL for a bad
 * problem (err names the field and interval), -EDOM when the constraints cannot all be held
 * (err says which: with OPTIMUM_MIN_COST and an import limit, err and res->peak_w give the
 * lowest peak that could be held), -E2BIG over the size limits, -ENOMEM, -EIO when GLPK fails.
 * Prints nothing. Not thread-safe against other GLPK users in the same process. */
int optimum_solve(const struct optimum_problem *pb, struct optimum_result *res,
                  const struct optimum_schedule *sched, char *err, size_t errlen);

/* Long horizons. optimum_solve holds the whole horizon in one LP: exact, but a year at 15 min
 * takes seconds for the cost and does not converge for the peak (bench_optimum). Beyond
 * chunk_n intervals optimum_solve_long solves consecutive chunks of chunk_n intervals, each
 * with lookahead_n more intervals that are solved and dropped, and carries each battery's
 * energy (and, for the peak, the peak so far) into the next chunk. Up to chunk_n intervals the
 * answer is optimum_solve's; beyond, it is a feasible schedule close to the optimum (the
 * look-ahead covers the daily cycle a battery of hours lives by), not a proven bound: res->chunks
 * says which. The budget is checked between chunks and handed to the simplex (GLPK's tm_lim). */
struct optimum_long_opts {
    size_t chunk_n;     /* 0 = OPTIMUM_CHUNK_N */
    size_t lookahead_n; /* 0 = OPTIMUM_LOOKAHEAD_N */
    double budget_s;    /* wall-clock seconds for the whole solve; <= 0: no limit */
    /* after every chunk: intervals done of n; NULL = silent */
    void (*progress)(void *ctx, size_t done, size_t n);
    void *ctx;
};
#define OPTIMUM_CHUNK_N     (14 * 96) /* two weeks at 15 min */
#define OPTIMUM_LOOKAHEAD_N (2 * 96)  /* two days */

/* As optimum_solve, in chunks past o->chunk_n intervals; -ETIME with err when the budget ran
 * out (res is then incomplete). o may be NULL (defaults, no budget). */
int optimum_solve_long(const struct optimum_problem *pb, const struct optimum_long_opts *o,
                       struct optimum_result *res, const struct optimum_schedule *sched, char *err,
                       size_t errlen);

/* The value of the batteries' stored energy at the end against their start, e_end_wh the sum of
 * their energies: a surplus counts what it can give back, surplus x mean eta_discharge x price;
 * a deficit what refilling it costs at least, deficit / mean eta_charge x price (means
 * capacity-weighted; price per kWh, < 0 taken as 0, since a stored kWh is never a debt). The one
 * rule for a run's end_energy_value and the optimum's terminal_valued objective. */
double optimum_terminal_value(const struct optimum_battery *b, size_t nb, double e_end_wh,
                              double price);

/* 100 x achieved / optimal. When optimal_savings <= OPTIMUM_SAVINGS_EPS (nothing could be
 * saved, or the limits made the optimum dearer than idling): 100 if the strategy lost nothing
 * (achieved >= -OPTIMUM_SAVINGS_EPS), else 0. Above 100 means the comparison is unfair: most
 * often the run ended with less stored energy than it started with (the optimum may not). */
double optimum_savings_vs_optimal_pct(double achieved_savings, double optimal_savings);

/* Resolution. With prices constant within each interval, the interval-mean problem is a
 * relaxation of the 1 s one: any 1 s schedule, averaged, is a feasible interval schedule with
 * the same energy cost (the SoC is checked only at interval ends). So a coarser resolution only
 * raises optimal_savings: it stays an upper bound on what a controller can reach, looser but
 * faster. Pick an interval that divides the tariff's period (prices are averaged too) and 15
 * minutes for peaks: the optimum's peak is an interval mean, comparable to peak_import_15m_kw
 * (windows aligned to the start), never to the 1 s peak_import_kw. The SoC derate bands,
 * applied at interval starts, are the one approximation that can go either way.
 *
 * Number of intervals optimum_aggregate makes from n_in samples in blocks of `factor`. */
size_t optimum_aggregate_len(size_t n_in, size_t factor);

/* Averages blocks of `factor` consecutive samples of in[n_in] into out[n_out], n_out =
 * optimum_aggregate_len(n_in, factor); a short last block is averaged over the samples it has
 * (give the problem last_dt_s = that count x the sample length). Returns 0 or -EINVAL. */
int optimum_aggregate(const double *in, size_t n_in, size_t factor, double *out, size_t n_out);

/* The optimum's view of a simulator battery: its capacity, soc_init, powers, efficiencies and
 * derate bands, the window [0, 1], soc_final_min = soc_init. Narrow the window to the
 * strategy's SoC limits afterwards so that both play by the same rules. */
void optimum_battery_from_params(struct optimum_battery *ob, const struct battery_params *p);

#endif
