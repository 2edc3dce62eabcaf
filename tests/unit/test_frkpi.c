/* Unit tests for the frequency-response KPIs of reports/freqresp.c (fcr_activation_s,
 * fcr_energy_pct, ffr_activation_s, ffr_support_pct): synthetic frequency steps fed to the
 * accumulator with an ideal, a delayed, a ramped, a wrong-way and a missing battery response, the
 * FFR trigger and its re-arm, the reference power before the disturbance, several sites, and the
 * null cases (no excursion, no requirement). One-second steps, so times are whole seconds. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include <cjson/cJSON.h>

#include "gateway/strategies/strat_gridsvc.h"
#include "reports/kpi.h"

#define DT_MS 1000

/* Continental Europe's FCR shape and a Nordic-style FFR, as in scenarios/grid-services.json */
static const struct gridsvc_contract req = {.nominal_hz = 50,
                                            .fcr_power_w = 3000,
                                            .fcr_deadband_hz = 0.01,
                                            .fcr_full_hz = 0.2,
                                            .ffr_power_w = 5000,
                                            .ffr_trigger_hz = 49.7,
                                            .ffr_duration_ms = 30000,
                                            .ffr_rearm_ms = 900000};

static struct kpi_acc *acc(size_t n_sites, const struct gridsvc_contract *p)
{
    struct kpi_acc *a = kpi_acc_new(n_sites, 0.05, 0.95);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    for (size_t i = 0; p && i < n_sites; i++)
        kpi_acc_freq_params(a, i, p);
    return a;
}

/* n steps of one site at frequency f with the battery at bat_w (+ discharge). */
static void feed(struct kpi_acc *a, size_t site, int n, double f, double bat_w)
{
    for (int i = 0; i < n; i++) {
        struct kpi_sample s = {.grid_w = 500 - bat_w,
                               .load_w = 500,
                               .battery_w = bat_w,
                               .import_price = NAN,
                               .export_price = NAN,
                               .soc_lo = 0.5,
                               .soc_hi = 0.5,
                               .soc_mean = 0.5,
                               .boiler_temp_c = NAN,
                               .freq_hz = f};
        kpi_acc_site(a, site, &s, DT_MS);
    }
}

static struct kpi_set result(struct kpi_acc *a)
{
    struct kpi_set k;
    kpi_acc_result(a, &k);
    kpi_acc_free(a);
    return k;
}

/* 49.8 Hz is the full deviation (200 mHz): the droop asks for all of fcr_power_w at once. */
static void test_fcr_ideal(void)
{
    struct kpi_acc *a = acc(1, &req);
    feed(a, 0, 10, 50.0, 0);
    feed(a, 0, 60, 49.8, 3000);
    feed(a, 0, 10, 50.0, 0);
    struct kpi_set k = result(a);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ACTIVATION_S], 0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ENERGY_PCT], 100, 1e-9);
    CU_ASSERT(isnan(k.v[KPI_FFR_ACTIVATION_S])); /* 49.8 Hz is above the trigger */
}

/* Five steps late, then exact: 5 s, and the five missed seconds of 60 in the energy. */
static void test_fcr_delayed(void)
{
    struct kpi_acc *a = acc(1, &req);
    feed(a, 0, 10, 50.0, 0);
    feed(a, 0, 5, 49.8, 0);
    feed(a, 0, 55, 49.8, 3000);
    feed(a, 0, 10, 50.0, 0);
    struct kpi_set k = result(a);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ACTIVATION_S], 5, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ENERGY_PCT], 100.0 * 55 / 60, 1e-9);
}

/* A 1 kW/s ramp: 1000 and 2000 W fall short of 90 % of 3000, 3000 W reaches it after 2 s;
 * overshoot later does not make up for the shortfall (each step capped at the requirement). */
static void test_fcr_ramp(void)
{
    struct kpi_acc *a = acc(1, &req);
    feed(a, 0, 10, 50.0, 0);
    feed(a, 0, 1, 49.8, 1000);
    feed(a, 0, 1, 49.8, 2000);
    feed(a, 0, 1, 49.8, 3000);
    feed(a, 0, 7, 49.8, 4000);
    feed(a, 0, 10, 50.0, 0);
    struct kpi_set k = result(a);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ACTIVATION_S], 2, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ENERGY_PCT], 100.0 * (1000 + 2000 + 8 * 3000) / 30000, 1e-9);
}

/* No response: the activation time is the qualified excursion's whole length (at least that
 * late), so a 30 s bound fails; nothing delivered. */
static void test_fcr_none(void)
{
    struct kpi_acc *a = acc(1, &req);
    feed(a, 0, 10, 50.0, 0);
    feed(a, 0, 60, 49.8, 0);
    feed(a, 0, 10, 50.0, 0);
    struct kpi_set k = result(a);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ACTIVATION_S], 60, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ENERGY_PCT], 0, 1e-9);
}

/* Still short when the run ends: counted up to the end. */
static void test_fcr_open_at_end(void)
{
    struct kpi_acc *a = acc(1, &req);
    feed(a, 0, 10, 50.0, 0);
    feed(a, 0, 40, 49.8, 0);
    struct kpi_set k = result(a);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ACTIVATION_S], 40, 1e-9);
}

/* The change counts from the power before the excursion (here 1 kW discharging for something
 * else), and over-frequency asks for charging: discharging more is the wrong way. */
static void test_fcr_reference_and_direction(void)
{
    struct kpi_acc *a = acc(1, &req);
    feed(a, 0, 10, 50.0, 1000);
    feed(a, 0, 3, 49.8, 1000); /* 3 s late from the 1 kW it was doing */
    feed(a, 0, 20, 49.8, 4000);
    feed(a, 0, 10, 50.0, 1000);
    feed(a, 0, 2, 50.2, -2000); /* charging 3 kW more than before: on time */
    feed(a, 0, 10, 50.0, 0);
    struct kpi_set k = result(a);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ACTIVATION_S], 3, 1e-9);

    a = acc(1, &req);
    feed(a, 0, 10, 50.0, 0);
    feed(a, 0, 20, 50.2, 3000); /* over-frequency answered by discharging */
    feed(a, 0, 10, 50.0, 0);
    k = result(a);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ACTIVATION_S], 20, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ENERGY_PCT], 0, 1e-9);
}

/* An excursion that never asks for half of fcr_power_w does not time the activation (its
 * energy still counts); 49.9 Hz asks for (0.1 - 0.01) / 0.19 = 47 %. */
static void test_fcr_small_excursion(void)
{
    struct kpi_acc *a = acc(1, &req);
    feed(a, 0, 10, 50.0, 0);
    feed(a, 0, 30, 49.9, 0);
    feed(a, 0, 10, 50.0, 0);
    struct kpi_set k = result(a);
    CU_ASSERT(isnan(k.v[KPI_FCR_ACTIVATION_S]));
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ENERGY_PCT], 0, 1e-9);
}

/* FFR: the trigger at 49.6 Hz, 5 kW two steps later; no response counts as ffr_duration. */
static void test_ffr(void)
{
    struct gridsvc_contract p = req;
    p.fcr_power_w = 0; /* FFR alone */
    struct kpi_acc *a = acc(1, &p);
    feed(a, 0, 10, 50.0, 0);
    feed(a, 0, 2, 49.6, 0);
    feed(a, 0, 3, 49.6, 5000);
    feed(a, 0, 60, 50.0, 0);
    struct kpi_set k = result(a);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FFR_ACTIVATION_S], 2, 1e-9);
    CU_ASSERT(isnan(k.v[KPI_FCR_ACTIVATION_S]) && isnan(k.v[KPI_FCR_ENERGY_PCT]));
    /* support: held 3 s of the 28 s from activation (12 s) to the duration's end (40 s) */
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FFR_SUPPORT_PCT], 100.0 * 3 / 28, 1e-9);

    a = acc(1, &p);
    feed(a, 0, 10, 50.0, 0);
    feed(a, 0, 5, 49.6, 0);
    feed(a, 0, 60, 50.0, 0);
    k = result(a);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FFR_ACTIVATION_S], 30, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FFR_SUPPORT_PCT], 0, 1e-9); /* never activated */

    /* held for the whole duration, even after the frequency recovered */
    a = acc(1, &p);
    feed(a, 0, 10, 50.0, 0);
    feed(a, 0, 1, 49.6, 0);
    feed(a, 0, 40, 50.0, 5000);
    k = result(a);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FFR_ACTIVATION_S], 1, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FFR_SUPPORT_PCT], 100, 1e-9);
}

/* A second dip during the re-arm time is not a trigger (the reserve is not armed); one after
 * it is, and its late answer is the worst. */
static void test_ffr_rearm(void)
{
    struct gridsvc_contract p = req;
    p.fcr_power_w = 0;
    p.ffr_rearm_ms = 60000;
    struct kpi_acc *a = acc(1, &p);
    feed(a, 0, 10, 50.0, 0);
    feed(a, 0, 30, 49.6, 5000); /* t = 10: on time */
    feed(a, 0, 20, 50.0, 0);    /* the support ends at 40, re-armed at 100 */
    feed(a, 0, 5, 49.6, 0);     /* t = 60: not armed, so no miss */
    feed(a, 0, 45, 50.0, 0);    /* to t = 110 */
    feed(a, 0, 4, 49.6, 0);     /* t = 110: armed again */
    feed(a, 0, 30, 49.6, 5000); /* 4 s late */
    feed(a, 0, 10, 50.0, 0);
    struct kpi_set k = result(a);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FFR_ACTIVATION_S], 4, 1e-9);
}

/* A fall through the FCR band into the trigger: the droop answer already under way counts
 * toward the FFR change, measured from the power before the disturbance. */
static void test_ffr_after_fcr(void)
{
    struct kpi_acc *a = acc(1, &req);
    feed(a, 0, 10, 50.0, 0);
    feed(a, 0, 2, 49.8, 3000); /* FCR, on time */
    feed(a, 0, 1, 49.6, 3000); /* the trigger */
    feed(a, 0, 30, 49.6, 5000);
    feed(a, 0, 10, 50.0, 0);
    struct kpi_set k = result(a);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ACTIVATION_S], 0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FFR_ACTIVATION_S], 1, 1e-9);
}

/* Several sites: the worst one; a site without a requirement or a frequency is not judged. */
static void test_sites(void)
{
    struct kpi_acc *a = kpi_acc_new(3, 0.05, 0.95);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    kpi_acc_freq_params(a, 0, &req);
    kpi_acc_freq_params(a, 1, &req);
    for (int t = 0; t < 40; t++) {
        double f = t < 10 ? 50.0 : 49.8;
        feed(a, 0, 1, f, t < 11 ? 0 : 3000); /* 1 s */
        feed(a, 1, 1, f, t < 17 ? 0 : 3000); /* 7 s */
        feed(a, 2, 1, f, 0);                 /* no requirement */
    }
    struct kpi_set k = result(a);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ACTIVATION_S], 7, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FCR_ENERGY_PCT], 100.0 * (29 + 23) / 60, 1e-9);

    a = acc(1, &req);
    feed(a, 0, 50, NAN, 0); /* no grid meter */
    k = result(a);
    CU_ASSERT(isnan(k.v[KPI_FCR_ACTIVATION_S]) && isnan(k.v[KPI_FFR_ACTIVATION_S]));
}

/* Null without anything to judge: no excursion, or excursions and no requirement. */
static void test_null(void)
{
    struct kpi_acc *a = acc(1, &req);
    feed(a, 0, 100, 50.0, 0);
    feed(a, 0, 100, 50.005, 0); /* inside the deadband */
    struct kpi_set k = result(a);
    CU_ASSERT(isnan(k.v[KPI_FCR_ACTIVATION_S]));
    CU_ASSERT(isnan(k.v[KPI_FCR_ENERGY_PCT]));
    CU_ASSERT(isnan(k.v[KPI_FFR_ACTIVATION_S]));

    a = acc(1, NULL);
    feed(a, 0, 10, 50.0, 0);
    feed(a, 0, 60, 49.5, 0);
    k = result(a);
    CU_ASSERT(isnan(k.v[KPI_FCR_ACTIVATION_S]));
    CU_ASSERT(isnan(k.v[KPI_FCR_ENERGY_PCT]));
    CU_ASSERT(isnan(k.v[KPI_FFR_ACTIVATION_S]));
}

/* The contract is read by the strategy's own table (gridsvc_contract_load): every parameter the
 * KPIs judge by, by the name scenarios write, lands in its typed member. A parameter renamed
 * in gateway/strategies/strat_gridsvc.c fails here (an unknown key), never as a null KPI. */
static void test_contract_names(void)
{
    cJSON *p = cJSON_Parse("{\"nominal_hz\": 60, \"fcr_power_w\": 1234, \"fcr_deadband_hz\": 0.02, "
                           "\"fcr_full_hz\": 0.3, \"ffr_power_w\": 4321, \"ffr_trigger_hz\": 49.6, "
                           "\"ffr_duration\": \"20s\", \"ffr_rearm\": \"5m\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    struct gridsvc_contract c;
    char err[256] = "";
    int rc = gridsvc_contract_load(p, "gateway.params", &c, err, sizeof err);
    cJSON_Delete(p);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(c.nominal_hz, 60);
    CU_ASSERT_EQUAL(c.fcr_power_w, 1234);
    CU_ASSERT_EQUAL(c.fcr_deadband_hz, 0.02);
    CU_ASSERT_EQUAL(c.fcr_full_hz, 0.3);
    CU_ASSERT_EQUAL(c.ffr_power_w, 4321);
    CU_ASSERT_EQUAL(c.ffr_trigger_hz, 49.6);
    CU_ASSERT_EQUAL(c.ffr_duration_ms, 20000);
    CU_ASSERT_EQUAL(c.ffr_rearm_ms, 300000);
    /* defaults as the gateway fills them; a bad value names the path */
    CU_ASSERT_EQUAL(gridsvc_contract_load(NULL, "gateway.params", &c, err, sizeof err), 0);
    CU_ASSERT(c.fcr_power_w == 0 && c.ffr_power_w == 0 && c.fcr_full_hz == 0.2);
    p = cJSON_Parse("{\"fcr_powr_w\": 1}");
    CU_ASSERT_EQUAL(gridsvc_contract_load(p, "gateway.params", &c, err, sizeof err), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "gateway.params.fcr_powr_w"));
    cJSON_Delete(p);
}

void test_register_frkpi(void)
{
    CU_pSuite s = CU_add_suite("frkpi", NULL, NULL);
    CU_add_test(s, "FCR ideal response", test_fcr_ideal);
    CU_add_test(s, "FCR delayed response", test_fcr_delayed);
    CU_add_test(s, "FCR ramped response", test_fcr_ramp);
    CU_add_test(s, "FCR no response", test_fcr_none);
    CU_add_test(s, "FCR open at the end", test_fcr_open_at_end);
    CU_add_test(s, "FCR reference and direction", test_fcr_reference_and_direction);
    CU_add_test(s, "FCR small excursion", test_fcr_small_excursion);
    CU_add_test(s, "FFR trigger", test_ffr);
    CU_add_test(s, "FFR re-arm", test_ffr_rearm);
    CU_add_test(s, "FFR after FCR", test_ffr_after_fcr);
    CU_add_test(s, "several sites", test_sites);
    CU_add_test(s, "null cases", test_null);
    CU_add_test(s, "grid_services contract by name", test_contract_names);
}
