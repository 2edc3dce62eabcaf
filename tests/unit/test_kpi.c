/* Unit tests for reports/kpi.c, kpi_acc.c and optimum_kpi.c: energies, prices and ratios from
 * hand-made samples, the 15-minute peak against the instant one, interlock activations counted on
 * rising edges, the baseline deltas, the optimum of several sites against the sum of their own, and
 * kpis.json members sorted with fixed precision. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "reports/kpi.h"
#include "reports/optimum.h"
#include "reports/optimum_kpi.h"

static struct kpi_sample flat(double grid_w, double pv_w, double battery_w)
{
    struct kpi_sample s = {.grid_w = grid_w,
                           .pv_w = pv_w,
                           .battery_w = battery_w,
                           .load_w = grid_w + pv_w + battery_w,
                           .import_price = 0.30,
                           .export_price = 0.10,
                           .soc_lo = 0.5,
                           .soc_hi = 0.5,
                           .soc_mean = 0.5,
                           .boiler_temp_c = NAN};
    return s;
}

/* One hour importing 1 kW, one hour exporting 2 kW, with 1 s steps. */
static void test_energy_and_cost(void)
{
    struct kpi_acc *a = kpi_acc_new(1, 0.05, 0.95);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    int64_t t = 0;
    for (int i = 0; i < 3600; i++) {
        struct kpi_sample s = flat(1000, 0, 0);
        kpi_acc_site(a, 0, &s, 1000);
        t += 1000;
        kpi_acc_tick_end(a, t, 1000);
    }
    for (int i = 0; i < 3600; i++) {
        struct kpi_sample s = flat(-2000, 3000, 0);
        kpi_acc_site(a, 0, &s, 1000);
        t += 1000;
        kpi_acc_tick_end(a, t, 1000);
    }
    struct kpi_set k;
    kpi_acc_result(a, &k);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_ENERGY_IMPORT_KWH], 1.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_ENERGY_EXPORT_KWH], 2.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_PV_ENERGY_KWH], 3.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_ENERGY_COST], 0.30, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_EXPORT_REVENUE], 0.20, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_NET_COST], 0.10, 1e-9);
    CU_ASSERT_EQUAL(k.v[KPI_PRICES_KNOWN], 1);
    /* self-consumption: 1 - 2/3; self-sufficiency: 1 - 1/(1 + 1) */
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_SELF_CONSUMPTION_RATIO], 1.0 / 3.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_SELF_SUFFICIENCY_RATIO], 0.5, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_PEAK_IMPORT_KW], 1.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_PEAK_IMPORT_15M_KW], 1.0, 1e-9);
    CU_ASSERT(isnan(k.v[KPI_COST_REDUCTION_PCT]));
    kpi_acc_free(a);
}

/* A 10 kW spike of one minute is the instant peak, but a 15-minute window sees 1/15 of it. */
static void test_peak_window(void)
{
    struct kpi_acc *a = kpi_acc_new(2, 0.05, 0.95);
    int64_t t = 0;
    for (int i = 0; i < 1800; i++) {
        double w = (i >= 60 && i < 120) ? 5000 : 0; /* per site: two sites sum to 10 kW */
        struct kpi_sample s = flat(w, 0, 0);
        s.import_price = s.export_price = NAN;
        kpi_acc_site(a, 0, &s, 1000);
        kpi_acc_site(a, 1, &s, 1000);
        t += 1000;
        kpi_acc_tick_end(a, t, 1000);
        if (i == 899)
            CU_ASSERT_DOUBLE_EQUAL(kpi_acc_window_import_w(a), 10000.0 / 15, 1e-6);
    }
    struct kpi_set k;
    kpi_acc_result(a, &k);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_PEAK_IMPORT_KW], 10.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_PEAK_IMPORT_15M_KW], 10.0 / 15, 1e-9);
    CU_ASSERT_EQUAL(k.v[KPI_PRICES_KNOWN], 0);
    CU_ASSERT_EQUAL(k.v[KPI_ENERGY_COST], 0);
    kpi_acc_free(a);
}

static void test_battery_and_soc(void)
{
    struct kpi_acc *a = kpi_acc_new(1, 0.10, 0.90);
    struct kpi_sample s = flat(0, 0, -2000);
    s.soc_lo = 0.05; /* below the floor for 10 s */
    s.soc_hi = 0.20;
    for (int i = 0; i < 10; i++) {
        kpi_acc_site(a, 0, &s, 1000);
        kpi_acc_tick_end(a, (i + 1) * 1000, 1000);
    }
    struct kpi_site_totals tot = {.battery_capacity_wh = 10000,
                                  .ev_delivered_wh = 5000,
                                  .ev_requested_wh = 6000,
                                  .ev_sessions_done = 1};
    kpi_acc_site_totals(a, &tot);
    struct kpi_set k;
    kpi_acc_result(a, &k);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_BATTERY_CHARGE_KWH], 2000.0 * 10 / 3600 / 1000, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_BATTERY_EQUIVALENT_CYCLES],
                           k.v[KPI_BATTERY_THROUGHPUT_KWH] / 20.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_SOC_MIN], 0.05, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_SOC_MAX], 0.20, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_SOC_OUTSIDE_LIMITS_S], 10.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_EV_ENERGY_DELIVERED_KWH], 5.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_EV_SESSIONS_COMPLETED], 1, 1e-12);
    kpi_acc_free(a);
}

/* A clamp held over three cycles is one activation; released and clamped again is two. */
static void test_interlock_edges(void)
{
    struct kpi_acc *a = kpi_acc_new(1, 0.05, 0.95);
    static struct decision dm;
    const int pattern[] = {1, 1, 1, 0, 1, 0};
    for (size_t c = 0; c < sizeof pattern / sizeof pattern[0]; c++) {
        dm.n_clamps = 0;
        if (pattern[c]) {
            decision_clamp(&dm, 0, DR_SOC_FLOOR, -100, 0);
            decision_clamp(&dm, 1, DR_RAMP, 100, 50);
        }
        if (c == 2)
            decision_clamp(&dm, 0, DR_GRID_IMPORT, 0, 10); /* a second reason on asset 0 */
        kpi_acc_decision(a, 0, &dm);
    }
    struct kpi_set k;
    kpi_acc_result(a, &k);
    CU_ASSERT_EQUAL(k.v[KPI_INTERLOCK_FIRST + DR_SOC_FLOOR], 2);
    CU_ASSERT_EQUAL(k.v[KPI_INTERLOCK_FIRST + DR_RAMP], 2);
    CU_ASSERT_EQUAL(k.v[KPI_INTERLOCK_FIRST + DR_GRID_IMPORT], 1);
    CU_ASSERT_EQUAL(k.v[KPI_INTERLOCK_TOTAL], 5);
    kpi_acc_free(a);
}

static void test_vs_baseline(void)
{
    struct kpi_set run = {{0}}, base = {{0}};
    run.v[KPI_NET_COST] = 1.0;
    base.v[KPI_NET_COST] = 4.0;
    run.v[KPI_PEAK_IMPORT_15M_KW] = 3;
    base.v[KPI_PEAK_IMPORT_15M_KW] = 6;
    run.v[KPI_SELF_CONSUMPTION_RATIO] = 0.6;
    base.v[KPI_SELF_CONSUMPTION_RATIO] = 0.4;
    kpi_vs_baseline(&run, &base);
    CU_ASSERT_DOUBLE_EQUAL(run.v[KPI_COST_REDUCTION_PCT], 75.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(run.v[KPI_PEAK_REDUCTION_PCT], 50.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(run.v[KPI_SELF_CONSUMPTION_GAIN], 0.2, 1e-9);
    CU_ASSERT_EQUAL(run.v[KPI_PEAK_INSTANT_REDUCTION_PCT], 0); /* baseline peak 0 */
}

/* A 3 kW load step at 60 s answered by a battery with a 10 s time constant and a small
 * overshoot: settling, overshoot and residual as defined in docs/kpis.md; then a second,
 * smaller step closes the window. */
static void test_step_response(void)
{
    struct kpi_acc *a = kpi_acc_new(1, 0.05, 0.95);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    int64_t t = 0;
    for (int i = 0; i < 900; i++) {
        double load = i < 60 ? 500 : i < 700 ? 3500 : 1000;
        double grid = 0;
        if (i >= 60 && i < 700) {
            double k = i - 60;
            /* 3 kW decaying with tau 10 s, then a 200 W export dip around 40-50 s */
            grid = 3000 * exp(-k / 10.0) - (k >= 40 && k < 50 ? 200 : 0);
        }
        struct kpi_sample s = flat(grid, 0, 0);
        s.load_w = load;
        kpi_acc_site(a, 0, &s, 1000);
        t += 1000;
        kpi_acc_tick_end(a, t, 1000);
    }
    struct kpi_set k;
    kpi_acc_result(a, &k);
    CU_ASSERT(fabs(k.v[KPI_STEP_SIZE_W] - 3000) < 1e-9);
    /* |grid| > 150 W until 3000 e^(-k/10) <= 150, i.e. k = 30 (29.96), and the dip to -200 W
     * during 40..49: the last sample out of the band is k = 49, which ends at 60 + 50 s */
    CU_ASSERT(fabs(k.v[KPI_STEP_SETTLING_S] - 50) < 1e-9);
    CU_ASSERT(fabs(k.v[KPI_STEP_OVERSHOOT_PCT] - 100.0 * (200 - 3000 * exp(-4.9)) / 3000) < 1e-6);
    /* residual from 5 min after the step (k >= 300) to the end of the window (k < 640): ~0 W */
    CU_ASSERT(k.v[KPI_STEP_RESIDUAL_RMS_W] < 1);
    kpi_acc_free(a);
    /* without a step of 100 W or more the step KPIs are null */
    a = kpi_acc_new(1, 0.05, 0.95);
    for (t = 1000; t <= 100000; t += 1000) {
        struct kpi_sample s = flat(10, 0, 0);
        kpi_acc_site(a, 0, &s, 1000);
        kpi_acc_tick_end(a, t, 1000);
    }
    kpi_acc_result(a, &k);
    CU_ASSERT(isnan(k.v[KPI_STEP_SIZE_W]) && isnan(k.v[KPI_STEP_SETTLING_S]));
    kpi_acc_free(a);
}

/* ---- the optimum of several sites ---------------------------------------------------------- */

#define OPT_DT_MS   (5 * 60 * 1000)
#define OPT_TICKS   288 /* a day */
#define OPT_NO_BATT 2   /* the site without battery or price */

/* Three sites that differ in everything: A has PV, an evening peak, a two-level tariff and a
 * feed-in price, and ends below its start SoC; B has a morning peak, another tariff, no export
 * price and ends above its start; C has neither battery nor price. */
static struct kpi_sample opt_sample(int site, int i)
{
    double h = i * (OPT_DT_MS / 3600000.0);
    struct kpi_sample s = {.soc_lo = NAN, .soc_hi = NAN, .soc_mean = NAN, .boiler_temp_c = NAN};
    if (site == 0) {
        s.load_w = 1500 + (h >= 17 && h < 21 ? 1000 : 0);
        s.pv_w = h > 6 && h < 18 ? 3000 * sin(M_PI * (h - 6) / 12) : 0;
        s.import_price = h < 7 ? 0.20 : 0.35;
        s.export_price = 0.08;
        s.soc_mean = 0.5 - 0.2 * i / (OPT_TICKS - 1);
    } else if (site == 1) {
        s.load_w = 800 + (h >= 7 && h < 9 ? 2500 : 0);
        s.import_price = h < 6 || h >= 22 ? 0.15 : 0.30;
        s.export_price = NAN;
        s.soc_mean = 0.4 + 0.3 * i / (OPT_TICKS - 1);
    } else {
        s.load_w = 1000;
        s.import_price = s.export_price = NAN;
    }
    s.grid_w = s.load_w - s.pv_w;
    s.soc_lo = s.soc_hi = s.soc_mean;
    return s;
}

/* Feeds sites[j] as the accumulator's site j; sum: one site that is all of them together. */
static struct optimum_kpi *opt_feed(const int *sites, size_t n, int sum)
{
    struct optimum_kpi *a = optimum_kpi_new(sum ? 1 : n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    for (int i = 0; i < OPT_TICKS; i++) {
        struct kpi_sample t = opt_sample(sites[0], i);
        for (size_t j = 0; j < n; j++) {
            struct kpi_sample s = opt_sample(sites[j], i);
            if (!sum) {
                optimum_kpi_site(a, j, &s, OPT_DT_MS);
            } else if (j > 0) {
                t.load_w += s.load_w;
                t.pv_w += s.pv_w;
                t.grid_w += s.grid_w;
            }
        }
        if (sum)
            optimum_kpi_site(a, 0, &t, OPT_DT_MS);
        optimum_kpi_tick_end(a, (int64_t)(i + 1) * OPT_DT_MS, OPT_DT_MS);
    }
    return a;
}

static struct optimum_battery opt_battery(double cap_kwh, double kw, double eta, double soc0)
{
    struct optimum_battery b = {.capacity_wh = cap_kwh * 1000,
                                .soc_init = soc0,
                                .soc_min = 0.1,
                                .soc_max = 0.9,
                                .max_charge_w = kw * 1000,
                                .max_discharge_w = kw * 1000,
                                .eta_charge = eta,
                                .eta_discharge = eta};
    return b;
}

/* The batteries of site `site` (none for C) into b; returns how many. */
static size_t opt_batteries(int site, struct optimum_battery *b)
{
    if (site == 0) {
        b[0] = opt_battery(10, 5, 0.95, 0.5);
        return 1;
    }
    if (site == 1) {
        b[0] = opt_battery(5, 3, 0.90, 0.4);
        b[1] = opt_battery(3, 2, 0.92, 0.4);
        return 2;
    }
    return 0;
}

/* Solves every site of a with its own batteries, then the peak over all of them. */
static int opt_solve(struct optimum_kpi *a, const int *sites, size_t n, struct kpi_set *k)
{
    struct optimum_battery all[OPTIMUM_MAX_BATTERIES], b[OPTIMUM_MAX_BATTERIES];
    size_t n_all = 0;
    char err[256] = "";
    for (size_t j = 0; j < n; j++) {
        size_t nb = opt_batteries(sites[j], b);
        int rc = optimum_kpi_site_solve(a, j, b, nb, NULL, err, sizeof err);
        if (rc)
            return rc;
        memcpy(all + n_all, b, nb * sizeof *b);
        n_all += nb;
    }
    int rc = optimum_kpi_peak(a, all, n_all, NULL, err, sizeof err);
    *k = (struct kpi_set){{0}};
    optimum_kpi_result(a, k);
    return rc;
}

/* Cost is separable across sites: two sites' optimal_savings and end_energy_value are the sums
 * of each site's own; a third site without battery or price adds 0; the peak of the fleet is
 * the peak of one site with the summed load and all the batteries. */
static void test_optimum_sites(void)
{
    const int a_only[] = {0}, b_only[] = {1}, both[] = {0, 1}, three[] = {0, 1, OPT_NO_BATT};
    struct kpi_set ka, kb, k2, k3, ksum;
    struct optimum_kpi *a = opt_feed(a_only, 1, 0), *b = opt_feed(b_only, 1, 0);
    struct optimum_kpi *ab = opt_feed(both, 2, 0), *abc = opt_feed(three, 3, 0);
    struct optimum_kpi *sum = opt_feed(both, 2, 1);
    CU_ASSERT_EQUAL(opt_solve(a, a_only, 1, &ka), 0);
    CU_ASSERT_EQUAL(opt_solve(b, b_only, 1, &kb), 0);
    CU_ASSERT_EQUAL(opt_solve(ab, both, 2, &k2), 0);
    CU_ASSERT_EQUAL(opt_solve(abc, three, 3, &k3), 0);
    /* the summed site: A's prices, all three batteries (only its peak is compared) */
    struct optimum_battery all[3];
    opt_batteries(0, all);
    opt_batteries(1, all + 1);
    char err[256];
    CU_ASSERT_EQUAL(optimum_kpi_site_solve(sum, 0, all, 3, NULL, err, sizeof err), 0);
    CU_ASSERT_EQUAL(optimum_kpi_peak(sum, all, 3, NULL, err, sizeof err), 0);
    optimum_kpi_result(sum, &ksum);

    /* both sites have something to save, and different amounts */
    CU_ASSERT(ka.v[KPI_OPTIMAL_SAVINGS] > 0.1 && kb.v[KPI_OPTIMAL_SAVINGS] > 0.1);
    CU_ASSERT(fabs(ka.v[KPI_OPTIMAL_SAVINGS] - kb.v[KPI_OPTIMAL_SAVINGS]) > 0.01);
    CU_ASSERT_DOUBLE_EQUAL(k2.v[KPI_OPTIMAL_SAVINGS],
                           ka.v[KPI_OPTIMAL_SAVINGS] + kb.v[KPI_OPTIMAL_SAVINGS], 1e-9);
    /* A ends below its start (a deficit, negative), B above (a surplus, positive) */
    CU_ASSERT(ka.v[KPI_END_ENERGY_VALUE] < 0 && kb.v[KPI_END_ENERGY_VALUE] > 0);
    CU_ASSERT_DOUBLE_EQUAL(k2.v[KPI_END_ENERGY_VALUE],
                           ka.v[KPI_END_ENERGY_VALUE] + kb.v[KPI_END_ENERGY_VALUE], 1e-12);
    /* B's surplus: 0.3 x 8 kWh x the capacity-weighted discharge efficiency at 0.15 */
    CU_ASSERT_DOUBLE_EQUAL(kb.v[KPI_END_ENERGY_VALUE], 0.3 * 8 * ((5 * 0.90 + 3 * 0.92) / 8) * 0.15,
                           1e-12);
    CU_ASSERT_EQUAL(k3.v[KPI_OPTIMAL_SAVINGS], k2.v[KPI_OPTIMAL_SAVINGS]);
    CU_ASSERT_EQUAL(k3.v[KPI_END_ENERGY_VALUE], k2.v[KPI_END_ENERGY_VALUE]);
    /* the fleet's peak is one LP over the sum: not the sum of the sites' own peaks */
    CU_ASSERT(isfinite(k2.v[KPI_OPTIMAL_PEAK_15M_KW]));
    CU_ASSERT_DOUBLE_EQUAL(k2.v[KPI_OPTIMAL_PEAK_15M_KW], ksum.v[KPI_OPTIMAL_PEAK_15M_KW], 1e-6);
    CU_ASSERT(k2.v[KPI_OPTIMAL_PEAK_15M_KW] <
              ka.v[KPI_OPTIMAL_PEAK_15M_KW] + kb.v[KPI_OPTIMAL_PEAK_15M_KW] - 0.01);
    CU_ASSERT(k3.v[KPI_OPTIMAL_PEAK_15M_KW] > k2.v[KPI_OPTIMAL_PEAK_15M_KW]); /* + C's 1 kW */
    /* savings_vs_optimal_pct follows from the sums */
    CU_ASSERT_DOUBLE_EQUAL(k2.v[KPI_OPTIMAL_NET_COST],
                           ka.v[KPI_OPTIMAL_NET_COST] + kb.v[KPI_OPTIMAL_NET_COST], 1e-9);
    struct kpi_set base = k2;
    base.v[KPI_NET_COST] = k2.v[KPI_OPTIMAL_NET_COST] + 1.0;
    base.v[KPI_END_ENERGY_VALUE] = NAN;
    struct kpi_set run = k2;
    run.v[KPI_NET_COST] = k2.v[KPI_OPTIMAL_NET_COST] + 0.75;
    run.v[KPI_END_ENERGY_VALUE] = 0.25;
    kpi_vs_baseline(&run, &base);
    CU_ASSERT_DOUBLE_EQUAL(run.v[KPI_SAVINGS_VS_OPTIMAL_PCT], 50.0, 1e-9);
    optimum_kpi_free(a);
    optimum_kpi_free(b);
    optimum_kpi_free(ab);
    optimum_kpi_free(abc);
    optimum_kpi_free(sum);
}

/* Null when no site has both a battery and a price, and when one site cannot be solved: a sum
 * that leaves a site out would understate the optimum. */
static void test_optimum_sites_null(void)
{
    const int none[] = {OPT_NO_BATT, OPT_NO_BATT}, both[] = {0, 1};
    struct kpi_set k;
    struct optimum_kpi *a = opt_feed(none, 2, 0);
    CU_ASSERT_EQUAL(opt_solve(a, none, 2, &k), 0);
    CU_ASSERT(isnan(k.v[KPI_OPTIMAL_SAVINGS]) && isnan(k.v[KPI_END_ENERGY_VALUE]) &&
              isnan(k.v[KPI_OPTIMAL_PEAK_15M_KW]));
    optimum_kpi_free(a);
    /* the second site has one battery more than the optimum takes */
    a = opt_feed(both, 2, 0);
    struct optimum_battery b[OPTIMUM_MAX_BATTERIES + 1];
    char err[256];
    CU_ASSERT_EQUAL(optimum_kpi_site_solve(a, 0, b, opt_batteries(0, b), NULL, err, sizeof err), 0);
    for (size_t i = 0; i <= OPTIMUM_MAX_BATTERIES; i++)
        b[i] = opt_battery(1, 1, 0.9, 0.5);
    CU_ASSERT_EQUAL(
        optimum_kpi_site_solve(a, 1, b, OPTIMUM_MAX_BATTERIES + 1, NULL, err, sizeof err), -E2BIG);
    CU_ASSERT_EQUAL(optimum_kpi_peak(a, b, 1, NULL, err, sizeof err), 0);
    optimum_kpi_result(a, &k);
    CU_ASSERT(isnan(k.v[KPI_OPTIMAL_SAVINGS]) && isnan(k.v[KPI_END_ENERGY_VALUE]) &&
              isnan(k.v[KPI_OPTIMAL_PEAK_15M_KW]));
    optimum_kpi_free(a);
    /* a site islanded by a grid outage: no figure (the LP knows no outage), and the note says
     * why; a skipped optimum likewise */
    a = optimum_kpi_new(1);
    for (int i = 0; i < OPT_TICKS; i++) {
        struct kpi_sample s = opt_sample(0, i);
        s.islanded = i == OPT_TICKS / 2;
        optimum_kpi_site(a, 0, &s, OPT_DT_MS);
        optimum_kpi_tick_end(a, (int64_t)(i + 1) * OPT_DT_MS, OPT_DT_MS);
    }
    opt_batteries(0, b);
    CU_ASSERT_EQUAL(optimum_kpi_site_solve(a, 0, b, 1, NULL, err, sizeof err), -EDOM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "grid outage"));
    optimum_kpi_result(a, &k);
    CU_ASSERT(isnan(k.v[KPI_OPTIMAL_SAVINGS]) && isnan(k.v[KPI_OPTIMAL_NET_COST]));
    optimum_kpi_free(a);
    a = optimum_kpi_new(1);
    optimum_kpi_skip(a, "--no-optimum: not solved");
    CU_ASSERT_STRING_EQUAL(optimum_kpi_note(a), "--no-optimum: not solved");
    optimum_kpi_result(a, &k);
    CU_ASSERT(isnan(k.v[KPI_OPTIMAL_SAVINGS]));
    optimum_kpi_free(a);
    /* a run of one site longer than the optimum's intervals keeps none: -E2BIG, null */
    a = optimum_kpi_new(1);
    struct kpi_sample s = opt_sample(0, 0);
    const int64_t iv_ms = 15 * 60 * 1000;
    for (int64_t i = 0; i <= OPTIMUM_MAX_INTERVALS; i++) {
        optimum_kpi_site(a, 0, &s, iv_ms);
        optimum_kpi_tick_end(a, (i + 1) * iv_ms, iv_ms);
    }
    CU_ASSERT_EQUAL(optimum_kpi_site_solve(a, 0, b, 1, NULL, err, sizeof err), -E2BIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "35137 15-minute intervals"));
    optimum_kpi_result(a, &k);
    CU_ASSERT(isnan(k.v[KPI_OPTIMAL_SAVINGS]));
    optimum_kpi_free(a);
}

static void test_table_and_json(void)
{
    for (int i = 0; i < KPI_COUNT; i++) {
        const struct kpi_def *d = kpi_def(i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        CU_ASSERT_PTR_NOT_NULL_FATAL(d->name);
        CU_ASSERT_PTR_NOT_NULL(d->unit);
        CU_ASSERT_PTR_NOT_NULL(d->formula);
        CU_ASSERT_EQUAL(kpi_find(d->name), i); /* unique names */
    }
    CU_ASSERT_EQUAL(kpi_find("no_such_kpi"), -1);
    struct kpi_set k;
    for (int i = 0; i < KPI_COUNT; i++)
        k.v[i] = -0.0000001;
    k.v[KPI_SOC_MIN] = NAN;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    kpi_write_members(f, &k, 0, KPI_VS_FIRST, 2);
    fclose(f);
    CU_ASSERT_PTR_NULL(strstr(buf, "-0")); /* no negative zero */
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "  \"soc_min\": null,\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"energy_import_kwh\": 0.000,"));
    /* sorted: every name is greater than the one before */
    char prev[64] = "";
    for (char *p = buf; (p = strchr(p, '"'));) {
        char *e = strchr(p + 1, '"');
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(e - p - 1), p + 1);
        CU_ASSERT(strcmp(prev, name) < 0);
        snprintf(prev, sizeof prev, "%s", name);
        p = strchr(e, '\n');
        if (!p)
            break;
    }
    free(buf);
}

void test_register_kpi(void)
{
    CU_pSuite s = CU_add_suite("kpi", NULL, NULL);
    CU_add_test(s, "energies, prices and ratios", test_energy_and_cost);
    CU_add_test(s, "15-minute peak over the sites' sum", test_peak_window);
    CU_add_test(s, "battery throughput and SoC limits", test_battery_and_soc);
    CU_add_test(s, "interlocks counted on rising edges", test_interlock_edges);
    CU_add_test(s, "deltas against the baseline", test_vs_baseline);
    CU_add_test(s, "step response", test_step_response);
    CU_add_test(s, "optimum of several sites: the sum of each", test_optimum_sites);
    CU_add_test(s, "optimum of several sites: null", test_optimum_sites_null);
    CU_add_test(s, "table and sorted JSON members", test_table_and_json);
}
