/* Unit tests for reports/oscill.c through the KPI accumulator: a sinusoid's period and
 * amplitude found by the DFT; a load step with its recovery, noise and a ramp never count as
 * oscillation; setpoint reversals counted with hysteresis; the RMS around the strategy's target;
 * the time spent oscillating in whole windows. */
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "gateway/control/procimg.h"
#include "reports/kpi.h"
#include "reports/oscill.h"

static void test_dominant_sinusoid(void)
{
    double x[300], per, amp;
    /* 6 s: exactly on a bin; 7 s: between bins (leakage) */
    for (int j = 0; j < 300; j++)
        x[j] = 250 + 3000 * sin(2 * M_PI * j / 6.0);
    CU_ASSERT_EQUAL(oscill_dominant(x, 300, 1.0, &per, &amp), 50);
    CU_ASSERT_DOUBLE_EQUAL(per, 6.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(amp, 3000, 1);
    for (int j = 0; j < 300; j++)
        x[j] = 1500 * cos(2 * M_PI * j / 7.0 + 0.3);
    CU_ASSERT(oscill_dominant(x, 300, 1.0, &per, &amp) >= OSC_LOWEST_CYCLES);
    CU_ASSERT_DOUBLE_EQUAL(per, 7.0, 0.1);
    CU_ASSERT(amp > 1500 * 0.92 && amp < 1500 * 1.01);
    memset(x, 0, sizeof x);
    CU_ASSERT_EQUAL(oscill_dominant(x, 300, 1.0, &per, &amp), -1);
    CU_ASSERT(isnan(per));
}

/* A 3 kW step mid-window that a loop removes in ~30 s, and a ramp: dominant at the longest
 * periods, out of the band. */
static void test_dominant_transients(void)
{
    double x[300], per, amp;
    for (int j = 0; j < 300; j++)
        x[j] = j < 120 ? 0 : 3000 * exp(-(j - 120) / 30.0);
    CU_ASSERT(oscill_dominant(x, 300, 1.0, &per, &amp) < OSC_LOWEST_CYCLES);
    for (int j = 0; j < 300; j++)
        x[j] = j < 150 ? 0 : 3000; /* never recovers (a baseline) */
    CU_ASSERT(oscill_dominant(x, 300, 1.0, &per, &amp) < OSC_LOWEST_CYCLES);
    for (int j = 0; j < 300; j++)
        x[j] = 10.0 * j;
    CU_ASSERT(oscill_dominant(x, 300, 1.0, &per, &amp) < OSC_LOWEST_CYCLES);
}

static struct decision battery_cycle(double target_w, double setpoint_w)
{
    struct decision dm;
    memset(&dm, 0, sizeof dm);
    dm.target_w = target_w;
    dm.n_assets = 1;
    dm.asset[0].type = PROCIMG_BATTERY;
    dm.asset[0].set = 1;
    dm.asset[0].final_w = setpoint_w;
    return dm;
}

/* One hour at 1 s: 20 minutes quiet, 20 minutes hunting at 6 s and 2 kW with the battery's
 * setpoint reversing every 3 s, 20 minutes quiet with 50 W jitter. */
static void test_kpis_hunting(void)
{
    struct kpi_acc *a = kpi_acc_new(1, 0.05, 0.95);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    int64_t t = 0;
    for (int i = 0; i < 3600; i++) {
        int hunting = i >= 1200 && i < 2400;
        double osc = hunting ? 2000 * sin(2 * M_PI * i / 6.0) : 0;
        struct kpi_sample s = {.grid_w = osc + (i % 2 ? 10 : -10),
                               .soc_lo = NAN,
                               .soc_hi = NAN,
                               .soc_mean = NAN,
                               .import_price = NAN,
                               .export_price = NAN,
                               .freq_hz = NAN,
                               .boiler_temp_c = NAN};
        kpi_acc_site(a, 0, &s, 1000);
        t += 1000;
        kpi_acc_tick_end(a, t, 1000);
        double sp = hunting ? ((i / 3) % 2 ? 1500 : -1500) : 1000 + (i % 2 ? 50 : 0);
        struct decision dm = battery_cycle(0, sp);
        kpi_acc_decision(a, 0, &dm);
    }
    struct kpi_set k;
    kpi_acc_result(a, &k);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_GRID_OSC_PERIOD_S], 6.0, 0.01);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_GRID_OSC_AMPLITUDE_W], 2000, 20);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_GRID_OSC_TIME_S], 1200, 1e-9); /* windows 4..7 */
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_GRID_OSC_SHARE], 1.0 / 3, 1e-9);
    /* 400 half-periods of 3 s: 399 reversals between them (the first move down is no
     * reversal) and the one back to 1000 W; the 50 W jitter never counts */
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_SETPOINT_REVERSALS_PER_H], 400, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_SITE_SETPOINT_REVERSALS_PER_H],
                           k.v[KPI_SETPOINT_REVERSALS_PER_H], 1e-9);
    /* RMS: 2000 / sqrt(2) over a third of the run, 10 W everywhere */
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_GRID_TARGET_RMS_W], sqrt(2000.0 * 2000 / 2 / 3 + 100), 2);
    kpi_acc_free(a);
}

/* No decisions (no target, no battery) and a run too short for a window. */
static void test_kpis_null(void)
{
    struct kpi_acc *a = kpi_acc_new(1, 0.05, 0.95);
    int64_t t = 0;
    for (int i = 0; i < 100; i++) {
        struct kpi_sample s = {.grid_w = 500, .soc_lo = NAN, .soc_hi = NAN, .freq_hz = NAN};
        kpi_acc_site(a, 0, &s, 1000);
        t += 1000;
        kpi_acc_tick_end(a, t, 1000);
    }
    struct kpi_set k;
    kpi_acc_result(a, &k);
    CU_ASSERT(isnan(k.v[KPI_GRID_TARGET_RMS_W]));
    CU_ASSERT(isnan(k.v[KPI_SETPOINT_REVERSALS_PER_H]));
    CU_ASSERT(isnan(k.v[KPI_GRID_OSC_AMPLITUDE_W]));
    CU_ASSERT(isnan(k.v[KPI_GRID_OSC_TIME_S]));
    kpi_acc_free(a);
}

void test_register_oscill(void)
{
    CU_pSuite s = CU_add_suite("oscill", NULL, NULL);
    CU_add_test(s, "DFT: a sinusoid's period and amplitude", test_dominant_sinusoid);
    CU_add_test(s, "DFT: steps, recoveries and ramps are not in the band",
                test_dominant_transients);
    CU_add_test(s, "KPIs of a run that hunts for 20 minutes", test_kpis_hunting);
    CU_add_test(s, "KPIs null without targets, batteries or windows", test_kpis_null);
}
