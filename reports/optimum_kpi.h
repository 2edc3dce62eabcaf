/* optimum_kpi: the perfect-foresight KPIs of a run (optimal_savings, optimal_peak_15m_kw,
 * end_energy_value; definitions in kpi.c's table): a second accumulator fed the same samples as
 * the KPI accumulator, keeping each site's 15-minute interval sums, then the optimum's linear
 * programs (optimum.h) over them at the end. optimum_kpi_new returns an accumulator the caller
 * owns (optimum_kpi_free). */
#ifndef DERLOOP_OPTIMUM_KPI_H
#define DERLOOP_OPTIMUM_KPI_H

#include <stddef.h>
#include <stdint.h>

#include "reports/kpi.h"
#include "reports/optimum.h"
#include "sim/scenario/scenario.h"

/* The interval store's bound: sites x intervals (3 doubles each: 96 MB at most). */
#define KPI_OPTIMUM_MAX_ENTRIES (4u << 20)

struct optimum_kpi;

struct optimum_kpi *optimum_kpi_new(size_t n_sites);
void optimum_kpi_free(struct optimum_kpi *o);

/* As kpi_acc_site and kpi_acc_tick_end (kpi.h), with the same samples. */
void optimum_kpi_site(struct optimum_kpi *o, size_t site, const struct kpi_sample *s,
                      int64_t dt_ms);
void optimum_kpi_tick_end(struct optimum_kpi *o, int64_t t_ms, int64_t dt_ms);

/* Energy cost is separable across sites (each has its own connection point, prices and
 * batteries; nothing is shared), so the fleet's optimum is the sum of the sites' own: call
 * optimum_kpi_site_solve once for every site with that site's batteries (in the gateway's SoC
 * window). It solves the site's minimum-cost LP and adds its savings to optimal_savings and its
 * stored-energy change to end_energy_value. A site without a battery or without a price adds 0;
 * both KPIs stay null when no site has both. Returns 0, or -errno with err, and then both stay
 * null whatever the other sites add: -E2BIG over the optimum's limits (more than
 * OPTIMUM_MAX_BATTERIES batteries at the site, more than OPTIMUM_MAX_INTERVALS intervals, or
 * more than KPI_OPTIMUM_MAX_ENTRIES sites x intervals, beyond which no interval is kept at
 * all), or the solver's error. */
int optimum_kpi_site_solve(struct optimum_kpi *o, size_t site, const struct optimum_battery *b,
                           size_t n_batteries, const struct optimum_long_opts *lo, char *err,
                           size_t errlen);

/* After every site's optimum_kpi_site_solve: optimal_peak_15m_kw, the lowest 15-minute peak of
 * the sites' summed import (as peak_import_15m_kw) with perfect foresight. The peak of a sum is
 * not the sum of the sites' peaks, but with no shared limit it is one LP over the summed net
 * load and every battery of every site together: b and n_batteries are all of them. Null when
 * optimal_savings is, or with more than OPTIMUM_MAX_BATTERIES batteries in all (a fleet).
 * Returns 0, or -errno with err when the solver failed (the KPI stays null). */
int optimum_kpi_peak(struct optimum_kpi *o, const struct optimum_battery *b, size_t n_batteries,
                     const struct optimum_long_opts *lo, char *err, size_t errlen);

/* Both of the above for a run of the scenario sc: every site's batteries as the simulator
 * models them, inside the SoC window [soc_floor, soc_ceiling] so that the optimum and the
 * strategies play by one rule. The first failure ends it, with a line for events.log passed to
 * failed ("site=ID event=optimum_failed reason=..." or "event=optimum_failed
 * objective=min_peak reason=..."). */
void optimum_kpi_solve_run(struct optimum_kpi *o, const struct scenario *sc, double soc_floor,
                           double soc_ceiling, const struct optimum_long_opts *lo,
                           void (*failed)(void *ctx, const char *line), void *ctx);

/* The optimum is not solved (--no-optimum): its KPIs are null, and why says so. */
void optimum_kpi_skip(struct optimum_kpi *o, const char *why);

/* Why the optimum KPIs are null (the failure, the skip), or that they came from chunks; "" when
 * there is nothing to say. For kpis.json's notes. */
const char *optimum_kpi_note(const struct optimum_kpi *o);

/* Writes KPI_OPTIMAL_SAVINGS, KPI_OPTIMAL_NET_COST, KPI_OPTIMAL_PEAK_15M_KW and
 * KPI_END_ENERGY_VALUE of out. */
void optimum_kpi_result(const struct optimum_kpi *o, struct kpi_set *out);

#endif
