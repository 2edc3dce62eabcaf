/* Unit tests for sim/physics/battery.c: energy books with efficiencies, SoC derate and bounds,
 * temperature rise, derate and stop, response in front of the limits, faults and reset. */
#include <math.h>

#include <CUnit/CUnit.h>

#include "sim/physics/battery.h"

static struct battery_params params(void)
{
    struct battery_params p = {
        .capacity_wh = 10000.0,
        .soc_init = 0.5,
        .max_charge_w = 5000.0,
        .max_discharge_w = 5000.0,
        .eta_charge = 0.95,
        .eta_discharge = 0.95,
        .soc_low_band = 0.05,
        .soc_high_band = 0.9,
        .temp_init_c = 25.0,
        .temp_ambient_c = 25.0,
        .temp_tau_s = 1800.0,
        .temp_rise_c = 10.0,
        .temp_derate_c = 45.0,
        .temp_stop_c = 55.0,
        .voltage_v = 400.0,
    };
    return p;
}

static void run(struct battery *b, int64_t *t, int64_t dt_ms, int n)
{
    for (int i = 0; i < n; i++, *t += dt_ms)
        battery_step(b, *t, dt_ms);
}

static void test_charge_efficiency(void)
{
    struct battery_params p = params();
    p.soc_init = 0.2;
    struct battery b;
    battery_init(&b, &p);
    battery_command(&b, 0, -1000.0);
    int64_t t = 0;
    run(&b, &t, 1000, 3600);
    CU_ASSERT_DOUBLE_EQUAL(b.energy_wh, 2000.0 + 950.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(b.charged_wh, 1000.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(b.loss_wh, 50.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(b.discharged_wh, 0.0, 0.0);
    CU_ASSERT_EQUAL(b.state, BATTERY_RUNNING);
    CU_ASSERT_DOUBLE_EQUAL(b.power_w, -1000.0, 0.0);
}

static void test_discharge_efficiency(void)
{
    struct battery_params p = params();
    struct battery b;
    battery_init(&b, &p);
    battery_command(&b, 0, 950.0);
    int64_t t = 0;
    run(&b, &t, 60000, 60);
    CU_ASSERT_DOUBLE_EQUAL(b.energy_wh, 5000.0 - 1000.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(b.discharged_wh, 950.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(b.loss_wh, 50.0, 1e-6);
    /* The books close: stored change = AC in - AC out - losses. */
    CU_ASSERT_DOUBLE_EQUAL(b.energy_wh - 5000.0, b.charged_wh - b.discharged_wh - b.loss_wh, 1e-9);
}

static void test_soc_derate(void)
{
    struct battery_params p = params();
    p.soc_init = 0.025; /* half way down the low band */
    struct battery b;
    battery_init(&b, &p);
    CU_ASSERT_DOUBLE_EQUAL(battery_discharge_limit_w(&b), 2500.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(battery_charge_limit_w(&b), 5000.0, 1e-9);
    battery_command(&b, 0, 5000.0);
    battery_step(&b, 0, 1000);
    CU_ASSERT_DOUBLE_EQUAL(b.power_w, 2500.0, 1e-9);
    CU_ASSERT_EQUAL(b.state, BATTERY_THROTTLED);

    p.soc_init = 0.95; /* half way up the high band */
    battery_init(&b, &p);
    CU_ASSERT_DOUBLE_EQUAL(battery_charge_limit_w(&b), 2500.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(battery_discharge_limit_w(&b), 5000.0, 1e-9);
}

/* Hours of full power each way: the SoC stays within [0, 1] exactly and ends at the bounds. */
static void test_soc_bounds(void)
{
    struct battery_params p = params();
    p.soc_low_band = 0.0; /* no derate: only the energy clip keeps the SoC in range */
    p.soc_high_band = 1.0;
    p.temp_rise_c = 0.0;
    struct battery b;
    battery_init(&b, &p);
    int64_t t = 0;
    battery_command(&b, 0, -5000.0);
    for (int i = 0; i < 600; i++, t += 60000) {
        battery_step(&b, t, 60000);
        CU_ASSERT_FATAL(b.soc >= 0.0 && b.soc <= 1.0);
    }
    CU_ASSERT_EQUAL(b.soc, 1.0);
    CU_ASSERT_EQUAL(b.power_w, 0.0);
    CU_ASSERT_EQUAL(b.state, BATTERY_THROTTLED);
    battery_command(&b, t, 5000.0);
    for (int i = 0; i < 600; i++, t += 60000) {
        battery_step(&b, t, 60000);
        CU_ASSERT_FATAL(b.soc >= 0.0 && b.soc <= 1.0);
    }
    CU_ASSERT_EQUAL(b.soc, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(b.energy_wh - 5000.0, b.charged_wh - b.discharged_wh - b.loss_wh, 1e-6);
}

/* With the default bands the SoC approaches its ends only asymptotically and never crosses. */
static void test_soc_bands_long_run(void)
{
    struct battery_params p = params();
    p.temp_rise_c = 0.0;
    struct battery b;
    battery_init(&b, &p);
    battery_command(&b, 0, -5000.0);
    int64_t t = 0;
    run(&b, &t, 1000, 8 * 3600);
    CU_ASSERT(b.soc > 0.99 && b.soc <= 1.0);
    CU_ASSERT(battery_charge_limit_w(&b) < 500.0);
}

static void test_temperature(void)
{
    struct battery_params p = params();
    p.soc_init = 0.2;
    p.temp_rise_c = 15.0; /* stays below the derate threshold */
    p.temp_tau_s = 600.0;
    struct battery b;
    battery_init(&b, &p);
    battery_command(&b, 0, -5000.0);
    int64_t t = 0;
    /* One time constant at full power: T = 25 + 15 (1 - 1/e). */
    run(&b, &t, 1000, 600);
    CU_ASSERT_DOUBLE_EQUAL(b.temp_c, 25.0 + 15.0 * (1.0 - exp(-1.0)), 1e-9);
    /* One big step gives the same answer as many small ones (exact integration). */
    struct battery c;
    battery_init(&c, &p);
    battery_command(&c, 0, -5000.0);
    battery_step(&c, 0, 600000);
    CU_ASSERT_DOUBLE_EQUAL(c.temp_c, 25.0 + 15.0 * (1.0 - exp(-1.0)), 1e-9);

    /* At 50 degC, half way from derate (45) to stop (55): limits halve. */
    battery_init(&c, &p);
    c.temp_c = 50.0;
    CU_ASSERT_DOUBLE_EQUAL(battery_charge_limit_w(&c), 2500.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(battery_discharge_limit_w(&c), 2500.0, 1e-9);
    c.temp_c = 55.0;
    CU_ASSERT_DOUBLE_EQUAL(battery_charge_limit_w(&c), 0.0, 0.0);
    battery_command(&c, 0, 1000.0);
    battery_step(&c, 0, 1000);
    CU_ASSERT_EQUAL(c.state, BATTERY_FAULT);
    CU_ASSERT_EQUAL(c.power_w, 0.0);
}

/* A hot ambient pushes a battery at full power through derate into a stop. */
static void test_overheat_stops(void)
{
    struct battery_params p = params();
    p.temp_ambient_c = 40.0;
    p.temp_rise_c = 30.0;
    p.temp_tau_s = 300.0;
    struct battery b;
    battery_init(&b, &p);
    battery_command(&b, 0, 5000.0);
    int64_t t = 0;
    int throttled = 0;
    for (int i = 0; i < 3600; i++, t += 1000) {
        battery_step(&b, t, 1000);
        throttled |= b.state == BATTERY_THROTTLED;
        CU_ASSERT_FATAL(b.temp_c < 55.0 + 1e-9);
    }
    CU_ASSERT(throttled);
    CU_ASSERT(b.temp_c > 45.0);
    CU_ASSERT(b.power_w < 5000.0);
}

static void test_latency_and_ramp(void)
{
    struct battery_params p = params();
    p.response.latency_ms = 2000;
    p.response.ramp_w_per_s = 1000.0;
    p.response.quantum_w = 10.0;
    struct battery b;
    battery_init(&b, &p);
    battery_command(&b, 0, 3004.0);
    battery_step(&b, 0, 1000);
    battery_step(&b, 1000, 1000);
    CU_ASSERT_EQUAL(b.power_w, 0.0);
    CU_ASSERT_EQUAL(b.state, BATTERY_STANDBY);
    battery_step(&b, 2000, 1000);
    CU_ASSERT_DOUBLE_EQUAL(b.power_w, 1000.0, 1e-9);
    battery_step(&b, 3000, 1000);
    battery_step(&b, 4000, 1000);
    CU_ASSERT_DOUBLE_EQUAL(b.power_w, 3000.0, 1e-9); /* 3004 quantised to 10 W */
    battery_step(&b, 5000, 1000);
    CU_ASSERT_DOUBLE_EQUAL(b.power_w, 3000.0, 1e-9);
}

static void test_fault_and_reset(void)
{
    struct battery_params p = params();
    struct battery b;
    battery_init(&b, &p);
    battery_command(&b, 0, 2000.0);
    b.fault = 1;
    battery_step(&b, 0, 1000);
    CU_ASSERT_EQUAL(b.state, BATTERY_FAULT);
    CU_ASSERT_EQUAL(b.power_w, 0.0);
    double e = b.energy_wh;
    battery_reset(&b);
    CU_ASSERT_EQUAL(b.fault, 0);
    CU_ASSERT_EQUAL(b.setpoint_w, 0.0);
    battery_step(&b, 1000, 1000);
    CU_ASSERT_EQUAL(b.power_w, 0.0); /* the old setpoint is gone */
    CU_ASSERT_EQUAL(b.state, BATTERY_STANDBY);
    CU_ASSERT_DOUBLE_EQUAL(b.energy_wh, e, 0.0);
}

void test_register_battery(void)
{
    CU_pSuite s = CU_add_suite("battery", NULL, NULL);
    CU_add_test(s, "charge efficiency", test_charge_efficiency);
    CU_add_test(s, "discharge efficiency", test_discharge_efficiency);
    CU_add_test(s, "soc derate", test_soc_derate);
    CU_add_test(s, "soc bounds", test_soc_bounds);
    CU_add_test(s, "soc bands long run", test_soc_bands_long_run);
    CU_add_test(s, "temperature", test_temperature);
    CU_add_test(s, "overheat stops", test_overheat_stops);
    CU_add_test(s, "latency and ramp", test_latency_and_ramp);
    CU_add_test(s, "fault and reset", test_fault_and_reset);
}
