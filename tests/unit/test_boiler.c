/* Unit tests for sim/physics/boiler.c: state machine with delays, exact thermostat crossing (no
 * overshoot with a one-minute step), losses, draw, over-temperature FAULT and RESET, injected
 * faults, SG-Ready modes. */
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "sim/physics/boiler.h"

#define C_WATER 4186.0

static struct boiler_params params(void)
{
    struct boiler_params p = {
        .rated_w = 3000.0,
        .volume_l = 200.0,
        .ua_w_per_k = 2.0,
        .eta = 0.98,
        .temp_init_c = 52.0,
        .temp_ambient_c = 20.0,
        .temp_cold_c = 10.0,
        .setpoint_c = 55.0,
        .hysteresis_k = 5.0,
        .temp_max_c = 85.0,
        .temp_min_c = 40.0,
        .op.start_ms = 30000,
        .op.stop_ms = 20000,
    };
    return p;
}

static void test_state_sequence(void)
{
    struct boiler_params p = params();
    struct boiler b;
    boiler_init(&b, &p);
    boiler_step(&b, 0, 10000);
    CU_ASSERT_EQUAL(b.op.state, BOILER_IDLE); /* 52 degC: inside the hysteresis band */
    boiler_command(&b, 10000, BOILER_CMD_START);
    boiler_step(&b, 10000, 10000);
    CU_ASSERT_EQUAL(b.op.state, BOILER_STARTING);
    CU_ASSERT_EQUAL(b.power_w, 0.0);
    boiler_step(&b, 20000, 10000);
    boiler_step(&b, 30000, 10000);
    CU_ASSERT_EQUAL(b.op.state, BOILER_STARTING);
    boiler_step(&b, 40000, 10000);
    CU_ASSERT_EQUAL(b.op.state, BOILER_RUNNING);
    CU_ASSERT_DOUBLE_EQUAL(b.power_w, 3000.0, 0.0);
    boiler_command(&b, 50000, BOILER_CMD_STOP);
    boiler_step(&b, 50000, 10000);
    CU_ASSERT_EQUAL(b.op.state, BOILER_STOPPING);
    CU_ASSERT_EQUAL(b.power_w, 0.0);
    boiler_step(&b, 60000, 10000);
    CU_ASSERT_EQUAL(b.op.state, BOILER_STOPPING);
    boiler_step(&b, 70000, 10000);
    CU_ASSERT_EQUAL(b.op.state, BOILER_IDLE);
    CU_ASSERT_STRING_EQUAL(opstate_name(BOILER_STOPPING), "STOPPING");
    CU_ASSERT_STRING_EQUAL(opstate_name(BOILER_FAULT), "FAULT");
}

/* Heating from 40 degC with one-minute steps stops exactly at the setpoint; without losses the
 * booked electric energy is exactly the heat in the water divided by eta. */
static void test_exact_crossing(void)
{
    struct boiler_params p = params();
    p.temp_init_c = 40.0;
    p.ua_w_per_k = 0.0;
    p.op.start_ms = 0;
    p.op.stop_ms = 0;
    struct boiler b;
    boiler_init(&b, &p);
    double tmax = 0.0;
    int stopped = 0;
    for (int64_t t = 0; t < 4 * 3600000; t += 60000) {
        boiler_step(&b, t, 60000);
        if (b.temp_c > tmax)
            tmax = b.temp_c;
        stopped |= b.op.state == BOILER_STOPPING || (b.power_w > 0.0 && b.power_w < 3000.0);
    }
    CU_ASSERT(tmax <= 55.0 + 0.01);
    CU_ASSERT_DOUBLE_EQUAL(b.temp_c, 55.0, 1e-9);
    CU_ASSERT(stopped);
    CU_ASSERT_EQUAL(b.heat_demand, 0);
    CU_ASSERT_DOUBLE_EQUAL(b.energy_wh * 3600.0 * 0.98, 200.0 * C_WATER * 15.0, 1e-3);
}

/* The same with losses and a draw: still no overshoot, and the tank cycles in its band. */
static void test_crossing_with_losses(void)
{
    struct boiler_params p = params();
    p.temp_init_c = 30.0;
    p.ua_w_per_k = 3.0;
    p.op.start_ms = 60000;
    p.op.stop_ms = 60000;
    int64_t dt[1] = {0};
    double lph[1] = {20.0};
    struct profile draw = {.name = "draw", .kind = PROFILE_SERIES, .n = 1, .t_ms = dt, .v = lph};
    p.draw = &draw;
    struct boiler b;
    boiler_init(&b, &p);
    double tmax = 0.0, tmin_late = 100.0;
    int starts = 0;
    enum op_state prev = b.op.state;
    for (int64_t t = 0; t < 48 * 3600000LL; t += 60000) {
        boiler_step(&b, t, 60000);
        if (b.temp_c > tmax)
            tmax = b.temp_c;
        if (t > 24 * 3600000LL && b.temp_c < tmin_late)
            tmin_late = b.temp_c;
        starts += b.op.state == BOILER_STARTING && prev != BOILER_STARTING;
        prev = b.op.state;
        CU_ASSERT_FATAL(b.power_w >= 0.0 && b.power_w <= 3000.0);
    }
    CU_ASSERT(tmax <= 55.0 + 0.01);
    CU_ASSERT(tmin_late > 48.0); /* below the band only for the start delay */
    CU_ASSERT(starts > 3);
}

static void test_losses_cool(void)
{
    struct boiler_params p = params();
    p.temp_init_c = 60.0;
    struct boiler b;
    boiler_init(&b, &p);
    boiler_set(&b, 3000.0, 55.0, 1); /* SG-Ready 1: blocked */
    for (int64_t t = 0; t < 24 * 3600000LL; t += 60000)
        boiler_step(&b, t, 60000);
    double k = 2.0 / (200.0 * C_WATER);
    CU_ASSERT_DOUBLE_EQUAL(b.temp_c, 20.0 + 40.0 * exp(-k * 86400.0), 1e-9);
    CU_ASSERT_EQUAL(b.energy_wh, 0.0);
    CU_ASSERT_EQUAL(b.op.state, BOILER_IDLE);
}

static void test_overtemp_fault_and_reset(void)
{
    struct boiler_params p = params();
    p.volume_l = 10.0;
    p.ua_w_per_k = 20.0;
    p.temp_init_c = 90.0;
    struct boiler b;
    boiler_init(&b, &p);
    boiler_step(&b, 0, 60000);
    CU_ASSERT_EQUAL(b.op.state, BOILER_FAULT);
    CU_ASSERT_EQUAL(b.fault, 1);
    CU_ASSERT_EQUAL(b.power_w, 0.0);
    boiler_command(&b, 60000, BOILER_CMD_RESET); /* still too hot: ignored */
    CU_ASSERT_EQUAL(b.op.state, BOILER_FAULT);
    int64_t t = 60000;
    for (; b.temp_c >= 80.0; t += 60000)
        boiler_step(&b, t, 60000);
    CU_ASSERT_EQUAL(b.op.state, BOILER_FAULT); /* latched until RESET */
    boiler_command(&b, t, BOILER_CMD_RESET);
    CU_ASSERT_EQUAL(b.op.state, BOILER_IDLE);
    CU_ASSERT_EQUAL(b.fault, 0);
}

static void test_injected_fault(void)
{
    struct boiler_params p = params();
    p.temp_init_c = 30.0;
    p.op.start_ms = 0;
    struct boiler b;
    boiler_init(&b, &p);
    boiler_step(&b, 0, 1000);
    CU_ASSERT_EQUAL(b.op.state, BOILER_RUNNING);
    b.fault = 2;
    boiler_step(&b, 1000, 1000);
    CU_ASSERT_EQUAL(b.op.state, BOILER_FAULT);
    CU_ASSERT_EQUAL(b.power_w, 0.0);
    boiler_command(&b, 2000, BOILER_CMD_RESET);
    CU_ASSERT_EQUAL(b.fault, 0);
    boiler_step(&b, 2000, 1000);
    CU_ASSERT_EQUAL(b.op.state, BOILER_RUNNING);
}

static double heat_until_idle(struct boiler *b, int mode)
{
    boiler_set(b, 3000.0, 55.0, mode);
    double tmax = 0.0;
    for (int64_t t = 0; t < 12 * 3600000LL; t += 60000) {
        boiler_step(b, t, 60000);
        if (b->temp_c > tmax)
            tmax = b->temp_c;
    }
    return tmax;
}

static void test_sg_ready(void)
{
    struct boiler_params p = params();
    p.temp_init_c = 30.0;
    p.ua_w_per_k = 0.0;
    struct boiler b;
    boiler_init(&b, &p);
    CU_ASSERT_DOUBLE_EQUAL(heat_until_idle(&b, 1), 30.0, 0.0);
    CU_ASSERT_EQUAL(b.energy_wh, 0.0);
    boiler_init(&b, &p);
    CU_ASSERT_DOUBLE_EQUAL(heat_until_idle(&b, 2), 55.0, 0.01);
    boiler_init(&b, &p);
    CU_ASSERT_DOUBLE_EQUAL(heat_until_idle(&b, 3), 60.0, 0.01);
    boiler_init(&b, &p);
    CU_ASSERT_DOUBLE_EQUAL(heat_until_idle(&b, 4), 80.0, 0.01);
    CU_ASSERT_NOT_EQUAL(b.op.state, BOILER_FAULT);
    /* A power limit halves the element. */
    boiler_init(&b, &p);
    p.op.start_ms = 0;
    boiler_init(&b, &p);
    boiler_set(&b, 1500.0, 55.0, 2);
    boiler_step(&b, 0, 1000);
    CU_ASSERT_DOUBLE_EQUAL(b.power_w, 1500.0, 0.0);
}

void test_register_boiler(void)
{
    CU_pSuite s = CU_add_suite("boiler", NULL, NULL);
    CU_add_test(s, "state sequence", test_state_sequence);
    CU_add_test(s, "exact crossing", test_exact_crossing);
    CU_add_test(s, "crossing with losses", test_crossing_with_losses);
    CU_add_test(s, "losses cool", test_losses_cool);
    CU_add_test(s, "overtemp fault and reset", test_overtemp_fault_and_reset);
    CU_add_test(s, "injected fault", test_injected_fault);
    CU_add_test(s, "sg ready", test_sg_ready);
}
