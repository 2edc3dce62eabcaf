/* Unit tests for sim/kpi.c: energies, prices and ratios from hand-made samples, the 15-minute
 * peak against the instant one, interlock activations counted on rising edges, the baseline
 * deltas, and kpis.json members sorted with fixed precision. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "sim/kpi.h"

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
    CU_add_test(s, "table and sorted JSON members", test_table_and_json);
}
