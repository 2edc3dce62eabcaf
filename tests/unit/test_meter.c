/* Unit tests for sim/physics/meter.c: refresh period (held values), first step, frequency, energy.
 */
#include <CUnit/CUnit.h>

#include "sim/physics/meter.h"

static int64_t f_t[2] = {0, 10000};
static double f_v[2] = {50.0, 49.8};
static struct profile f_prof = {
    .name = "hz", .kind = PROFILE_SERIES, .n = 2, .t_ms = f_t, .v = f_v};

static void test_refresh_holds(void)
{
    struct meter_params p = {.role = METER_GRID,
                             .refresh_ms = 5000,
                             .voltage_v = 230.0,
                             .nominal_hz = 50.0,
                             .frequency = &f_prof,
                             .phases = 3};
    struct meter m;
    meter_init(&m, &p);
    meter_step(&m, 0, 1000, 100.0);
    CU_ASSERT_EQUAL(m.shown_w, 100.0); /* the first step always refreshes */
    for (int64_t t = 1000; t < 5000; t += 1000) {
        meter_step(&m, t, 1000, 100.0 + (double)t);
        CU_ASSERT_EQUAL(m.shown_w, 100.0);
        CU_ASSERT_EQUAL(m.frequency_hz, 50.0);
    }
    meter_step(&m, 5000, 1000, -700.0);
    CU_ASSERT_EQUAL(m.shown_w, -700.0);
    CU_ASSERT_DOUBLE_EQUAL(m.frequency_hz, 49.9, 1e-12);
    CU_ASSERT_EQUAL(m.true_w, -700.0);
    CU_ASSERT_EQUAL(m.voltage_v, 230.0);
}

static void test_every_step_and_energy(void)
{
    struct meter_params p = {
        .role = METER_LOAD, .refresh_ms = 0, .voltage_v = 230.0, .nominal_hz = 60.0, .phases = 1};
    struct meter m;
    meter_init(&m, &p);
    meter_step(&m, 0, 1800000, 2000.0);
    CU_ASSERT_EQUAL(m.shown_w, 2000.0);
    CU_ASSERT_EQUAL(m.frequency_hz, 60.0);
    meter_step(&m, 1800000, 1800000, -1000.0);
    CU_ASSERT_EQUAL(m.shown_w, -1000.0);
    CU_ASSERT_DOUBLE_EQUAL(m.import_wh, 1000.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(m.export_wh, 500.0, 1e-9);
}

void test_register_meter(void)
{
    CU_pSuite s = CU_add_suite("meter", NULL, NULL);
    CU_add_test(s, "refresh holds", test_refresh_holds);
    CU_add_test(s, "every step and energy", test_every_step_and_energy);
}
