/* Unit tests for sim/physics/pv.c: irradiance and temperature model, night, AC clipping,
 * curtailment through the response model, energy and curtailment counters, faults. */
#include <math.h>

#include <CUnit/CUnit.h>

#include "sim/physics/pv.h"

/* A constant series profile. */
static int64_t g_t[1] = {0};
static double g_v[1];
static struct profile g_prof = {
    .name = "irr", .kind = PROFILE_SERIES, .n = 1, .t_ms = g_t, .v = g_v};

static struct pv_params params(double g_w_m2)
{
    g_v[0] = g_w_m2;
    struct pv_params p = {
        .peak_w = 10000.0,
        .ac_max_w = 8000.0,
        .gamma_per_k = -0.004,
        .noct_c = 45.0,
        .temp_ambient_c = 20.0,
        .system_derate = 0.9,
        .irradiance = &g_prof,
    };
    return p;
}

static void test_available_power(void)
{
    struct pv_params p = params(800.0);
    struct pv v;
    pv_init(&v, &p);
    pv_step(&v, 0, 1000);
    /* T_cell = 20 + 25/800 * 800 = 45; P = 10 kW * 0.8 * (1 - 0.004 * 20) * 0.9. */
    CU_ASSERT_DOUBLE_EQUAL(v.cell_temp_c, 45.0, 1e-12);
    double expect = 10000.0 * 0.8 * (1.0 - 0.004 * 20.0) * 0.9;
    CU_ASSERT_DOUBLE_EQUAL(v.available_w, expect, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(v.power_w, expect, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(v.energy_wh, expect / 3600.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(v.curtailed_wh, 0.0, 0.0);
}

static void test_ac_clip_and_night(void)
{
    struct pv_params p = params(1200.0);
    p.temp_ambient_c = 0.0;
    p.system_derate = 1.0;
    struct pv v;
    pv_init(&v, &p);
    pv_step(&v, 0, 1000);
    CU_ASSERT_DOUBLE_EQUAL(v.power_w, 8000.0, 0.0);

    p = params(0.0);
    pv_init(&v, &p);
    pv_step(&v, 0, 1000);
    CU_ASSERT_EQUAL(v.power_w, 0.0);
    CU_ASSERT_EQUAL(v.available_w, 0.0);

    p.irradiance = NULL; /* no profile: always night */
    pv_init(&v, &p);
    pv_step(&v, 0, 1000);
    CU_ASSERT_EQUAL(v.power_w, 0.0);
}

static void test_curtailment(void)
{
    struct pv_params p = params(1000.0);
    p.temp_ambient_c = 0.0;
    p.system_derate = 1.0;
    p.response.latency_ms = 1000;
    p.response.ramp_w_per_s = 2000.0;
    struct pv v;
    pv_init(&v, &p);
    pv_command_limit(&v, 0, 25.0); /* 25 % of the 8 kW AC rating: 2 kW */
    pv_step(&v, 0, 1000);
    CU_ASSERT_DOUBLE_EQUAL(v.power_w, 8000.0, 0.0); /* latency: not yet */
    int64_t t = 1000;
    for (; t < 10000; t += 1000)
        pv_step(&v, t, 1000);
    CU_ASSERT_DOUBLE_EQUAL(v.power_w, 2000.0, 1e-9);
    CU_ASSERT(v.curtailed_wh > 0.0);
    double avail = v.available_w;
    double c0 = v.curtailed_wh;
    pv_step(&v, t, 3600000);
    CU_ASSERT_DOUBLE_EQUAL(v.curtailed_wh - c0, avail - 2000.0, 1e-6);
    pv_reset(&v);
    pv_step(&v, t, 1000);
    CU_ASSERT_DOUBLE_EQUAL(v.power_w, 8000.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(v.limit_pct, 100.0, 0.0);
}

static void test_fault(void)
{
    struct pv_params p = params(1000.0);
    struct pv v;
    pv_init(&v, &p);
    v.fault = 1;
    pv_step(&v, 0, 1000);
    CU_ASSERT_EQUAL(v.power_w, 0.0);
    CU_ASSERT(v.available_w > 0.0);
    pv_reset(&v);
    pv_step(&v, 1000, 1000);
    CU_ASSERT(v.power_w > 0.0);
}

void test_register_pv(void)
{
    CU_pSuite s = CU_add_suite("pv", NULL, NULL);
    CU_add_test(s, "available power", test_available_power);
    CU_add_test(s, "ac clip and night", test_ac_clip_and_night);
    CU_add_test(s, "curtailment", test_curtailment);
    CU_add_test(s, "fault", test_fault);
}
