/* Unit tests for the PID (gateway/strategies/pid.c): convergence on a simple plant, deadband, rate
 * limit, quantisation, anti-windup, integral decay, sign hysteresis, bad configurations. */
#include <errno.h>
#include <math.h>

#include <CUnit/CUnit.h>

#include "gateway/strategies/pid.h"

static struct pid_cfg base_cfg(void)
{
    struct pid_cfg c = {
        .kp = 0.5,
        .ki_per_s = 0.2,
        .kd_s = 0,
        .deadband_w = 0,
        .i_decay_per_s = 0,
        .rate_w_per_s = 0,
        .out_min_w = -5000,
        .out_max_w = 5000,
        .quantum_w = 0,
        .flip_hysteresis_w = 0,
    };
    return c;
}

/* NetZero's plant: grid = load - battery, the battery following the last output one step
 * late. Returns the grid power after `steps` steps of 1 s. */
static double run_plant(struct pid *p, double load_w, int steps, double *max_out)
{
    double battery = 0, grid = load_w;
    for (int k = 0; k < steps; k++) {
        grid = load_w - battery;
        double out = pid_step(p, 0, -grid, (int64_t)k * 1000);
        if (max_out && out > *max_out)
            *max_out = out;
        battery = out;
    }
    return load_w - battery;
}

static void test_step_converges(void)
{
    struct pid p;
    struct pid_cfg c = base_cfg();
    CU_ASSERT_EQUAL(pid_init(&p, &c), 0);
    double max_out = 0;
    double grid = run_plant(&p, 2000, 120, &max_out);
    CU_ASSERT(fabs(grid) < 1.0);
    CU_ASSERT(fabs(p.out_w - 2000) < 1.0);
    CU_ASSERT(max_out < 2000 * 1.25); /* bounded overshoot */
    /* at steady state the integral carries the output */
    CU_ASSERT(fabs(p.i_w - 2000) < 2.0);
}

static void test_deadband(void)
{
    struct pid p;
    struct pid_cfg c = base_cfg();
    c.deadband_w = 50;
    pid_init(&p, &c);
    for (int k = 0; k < 50; k++)
        CU_ASSERT_EQUAL(pid_step(&p, 0, -40, (int64_t)k * 1000), 0.0);
    CU_ASSERT_EQUAL(p.error_w, 0.0);
    CU_ASSERT_EQUAL(p.i_w, 0.0);
    /* just outside: it acts */
    pid_step(&p, 0, -60, 50000);
    CU_ASSERT(p.out_w > 0);
}

static void test_rate_limit(void)
{
    struct pid p;
    struct pid_cfg c = base_cfg();
    c.rate_w_per_s = 100;
    c.kp = 10;
    pid_init(&p, &c);
    double last = pid_step(&p, 0, -4000, 0);
    CU_ASSERT_EQUAL(last, 0.0); /* first step: dt = 0 */
    for (int k = 1; k <= 20; k++) {
        double out = pid_step(&p, 0, -4000, (int64_t)k * 500);
        CU_ASSERT(out - last <= 50.0 + 1e-9);
        CU_ASSERT(out - last >= 50.0 - 1e-9); /* saturated: exactly the rate */
        last = out;
    }
    CU_ASSERT(p.saturated);
}

static void test_quantisation(void)
{
    struct pid p;
    struct pid_cfg c = base_cfg();
    c.quantum_w = 25;
    c.rate_w_per_s = 333;
    pid_init(&p, &c);
    double battery = 0;
    for (int k = 0; k < 300; k++) {
        double grid = 1234.5 + 10 * sin(k) - battery;
        double out = pid_step(&p, 0, -grid, (int64_t)k * 700);
        CU_ASSERT_EQUAL(fmod(out, 25.0), 0.0);
        battery = out;
    }
    CU_ASSERT(fabs(p.out_w - 1234.5) <= 25 + 10);
}

static void test_anti_windup(void)
{
    struct pid p;
    struct pid_cfg c = base_cfg();
    c.out_max_w = 1000;
    c.out_min_w = -1000;
    pid_init(&p, &c);
    /* a load far beyond the battery's limit for 10 minutes */
    double battery = 0;
    int k = 0;
    for (; k < 600; k++)
        battery = pid_step(&p, 0, -(5000 - battery), (int64_t)k * 1000);
    CU_ASSERT_EQUAL(p.out_w, 1000.0);
    CU_ASSERT(p.integral_w <= 1000.0);
    /* the load drops to 200 W: the output must follow within a few steps, not after the
     * integral has unwound 10 minutes of windup */
    int left = -1;
    for (int j = 0; j < 60; j++, k++) {
        battery = pid_step(&p, 0, -(200 - battery), (int64_t)k * 1000);
        if (battery < 900 && left < 0)
            left = j;
    }
    CU_ASSERT(left >= 0 && left <= 3);
    CU_ASSERT(fabs(battery - 200) < 20);
}

static void test_integral_decay(void)
{
    struct pid p;
    struct pid_cfg c = base_cfg();
    c.deadband_w = 10;
    c.i_decay_per_s = 0.1;
    pid_init(&p, &c);
    for (int k = 0; k < 20; k++)
        pid_step(&p, 0, -500, (int64_t)k * 1000);
    double i0 = p.integral_w;
    CU_ASSERT(i0 > 100);
    /* inside the deadband: decays as exp(-0.1 t) */
    pid_step(&p, 0, -5, 19000 + 10000);
    CU_ASSERT(fabs(p.integral_w - i0 * exp(-1.0)) < 1e-6 * i0);
    /* without decay it holds */
    c.i_decay_per_s = 0;
    pid_init(&p, &c);
    for (int k = 0; k < 20; k++)
        pid_step(&p, 0, -500, (int64_t)k * 1000);
    i0 = p.integral_w;
    pid_step(&p, 0, -5, 30000);
    CU_ASSERT_EQUAL(p.integral_w, i0);
}

static void test_no_flip_flop(void)
{
    struct pid p;
    struct pid_cfg c = base_cfg();
    c.kp = 1;
    c.ki_per_s = 0;
    c.flip_hysteresis_w = 100;
    pid_init(&p, &c);
    CU_ASSERT_EQUAL(pid_step(&p, 0, -300, 0), 300.0);
    /* meter noise around zero: +/- 60 W must not toggle charge/discharge */
    int sign_changes = 0;
    double last = p.out_w;
    for (int k = 1; k < 100; k++) {
        double noise = (k % 2) ? 60 : -60;
        double out = pid_step(&p, 0, -noise, (int64_t)k * 1000);
        if ((out > 0 && last < 0) || (out < 0 && last > 0))
            sign_changes++;
        if (out != 0)
            last = out;
        CU_ASSERT(out >= 0);
    }
    CU_ASSERT_EQUAL(sign_changes, 0);
    /* a real need to charge flips it */
    CU_ASSERT_EQUAL(pid_step(&p, 0, 150, 200000), -150.0);
    /* and now small positive demands are held at 0 */
    CU_ASSERT_EQUAL(pid_step(&p, 0, -80, 201000), 0.0);
    CU_ASSERT_EQUAL(pid_step(&p, 0, -120, 202000), 120.0);
}

static void test_derivative_on_measurement(void)
{
    struct pid p;
    struct pid_cfg c = base_cfg();
    c.kp = 0;
    c.ki_per_s = 0;
    c.kd_s = 2;
    pid_init(&p, &c);
    pid_step(&p, 0, 0, 0);
    /* a setpoint step gives no derivative kick */
    CU_ASSERT_EQUAL(pid_step(&p, 1000, 0, 1000), 0.0);
    /* a measurement rising 100 W/s gives -200 */
    CU_ASSERT_EQUAL(pid_step(&p, 1000, 100, 2000), -200.0);
    CU_ASSERT_EQUAL(p.d_w, -200.0);
}

static void test_bad_config_and_inputs(void)
{
    struct pid p;
    struct pid_cfg c = base_cfg();
    c.kp = -1;
    CU_ASSERT_EQUAL(pid_init(&p, &c), -EINVAL);
    c = base_cfg();
    c.ki_per_s = NAN;
    CU_ASSERT_EQUAL(pid_init(&p, &c), -EINVAL);
    c = base_cfg();
    c.out_min_w = 10; /* range must contain 0 */
    CU_ASSERT_EQUAL(pid_init(&p, &c), -EINVAL);
    c = base_cfg();
    CU_ASSERT_EQUAL(pid_init(&p, &c), 0);
    pid_step(&p, 0, -1000, 0);
    double held = pid_step(&p, 0, -1000, 1000);
    CU_ASSERT_EQUAL(pid_step(&p, 0, NAN, 2000), held);
    CU_ASSERT_EQUAL(pid_step(&p, INFINITY, 0, 3000), held);
}

static void test_track_prevents_hidden_windup(void)
{
    struct pid p;
    struct pid_cfg c = base_cfg();
    pid_init(&p, &c);
    /* the PID asks for more and more, but something downstream holds the battery at 0 */
    for (int k = 0; k < 100; k++) {
        pid_track(&p, 0, 1);
        pid_step(&p, 0, -3000, (int64_t)k * 1000);
    }
    pid_track(&p, 0, 1);
    CU_ASSERT(p.integral_w <= 1e-9);
    pid_preset(&p, 1500);
    CU_ASSERT_EQUAL(p.integral_w, 1500.0);
    CU_ASSERT_EQUAL(p.out_w, 1500.0);
}

void test_register_pid(void)
{
    CU_pSuite s = CU_add_suite("pid", NULL, NULL);
    CU_add_test(s, "step response converges", test_step_converges);
    CU_add_test(s, "deadband", test_deadband);
    CU_add_test(s, "rate limit", test_rate_limit);
    CU_add_test(s, "quantisation", test_quantisation);
    CU_add_test(s, "anti-windup recovers fast", test_anti_windup);
    CU_add_test(s, "integral decay", test_integral_decay);
    CU_add_test(s, "no flip-flop", test_no_flip_flop);
    CU_add_test(s, "derivative on measurement", test_derivative_on_measurement);
    CU_add_test(s, "bad config and inputs", test_bad_config_and_inputs);
    CU_add_test(s, "tracking and preset", test_track_prevents_hidden_windup);
}
