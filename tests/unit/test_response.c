/* Unit tests for sim/physics/response.c: latency FIFO, ramp limit, quantisation, reset. */
#include <math.h>

#include <CUnit/CUnit.h>

#include "sim/physics/response.h"

static void test_latency(void)
{
    struct response_params p = {.latency_ms = 500};
    struct response r;
    response_init(&r, &p, 0.0);
    response_command(&r, 0, 1000.0);
    for (int64_t t = 0; t < 500; t += 100)
        CU_ASSERT_DOUBLE_EQUAL(response_step(&r, t, 100), 0.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 500, 100), 1000.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 600, 100), 1000.0, 0.0);
}

static void test_zero_latency_same_step(void)
{
    struct response_params p = {0};
    struct response r;
    response_init(&r, &p, 0.0);
    response_command(&r, 1000, -300.0);
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 1000, 1000), -300.0, 0.0);
}

static void test_newest_due_wins(void)
{
    struct response_params p = {.latency_ms = 1000};
    struct response r;
    response_init(&r, &p, 0.0);
    response_command(&r, 0, 100.0);
    response_command(&r, 200, 200.0);
    response_command(&r, 1500, 300.0); /* due at 2500: not yet */
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 1500, 500), 200.0, 0.0);
    CU_ASSERT_EQUAL(r.count, 1);
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 2500, 500), 300.0, 0.0);
}

static void test_fifo_overflow_drops_oldest(void)
{
    struct response_params p = {.latency_ms = 10000};
    struct response r;
    response_init(&r, &p, 0.0);
    for (int i = 0; i < RESPONSE_FIFO + 5; i++)
        response_command(&r, i, (double)i);
    CU_ASSERT_EQUAL(r.count, RESPONSE_FIFO);
    CU_ASSERT_DOUBLE_EQUAL(r.fifo[r.head].value, 5.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 20000, 1000), (double)(RESPONSE_FIFO + 4), 0.0);
}

static void test_ramp(void)
{
    struct response_params p = {.ramp_w_per_s = 100.0};
    struct response r;
    response_init(&r, &p, 0.0);
    response_command(&r, 0, 1000.0);
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 0, 1000), 100.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 1000, 2000), 300.0, 1e-12);
    for (int64_t t = 3000; t < 20000; t += 1000)
        response_step(&r, t, 1000);
    CU_ASSERT_DOUBLE_EQUAL(r.output, 1000.0, 0.0); /* reaches and holds, no overshoot */
    response_command(&r, 20000, -1000.0);
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 20000, 500), 950.0, 1e-12);
}

static void test_quantisation(void)
{
    struct response_params p = {.quantum_w = 100.0};
    struct response r;
    response_init(&r, &p, 0.0);
    response_command(&r, 0, 149.0);
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 0, 1000), 100.0, 0.0);
    response_command(&r, 1, 150.0);
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 1, 1000), 200.0, 0.0); /* half away from zero */
    response_command(&r, 2, -150.0);
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 2, 1000), -200.0, 0.0);
    response_command(&r, 3, -149.9);
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 3, 1000), -100.0, 0.0);
}

/* A ramp slower than one quantum per step must still arrive (it runs unquantised). */
static void test_slow_ramp_with_quantum(void)
{
    struct response_params p = {.ramp_w_per_s = 10.0, .quantum_w = 100.0};
    struct response r;
    response_init(&r, &p, 0.0);
    response_command(&r, 0, 500.0);
    int64_t t = 0;
    for (; t < 100000 && r.output < 500.0; t += 1000)
        response_step(&r, t, 1000);
    CU_ASSERT_DOUBLE_EQUAL(r.output, 500.0, 0.0);
    CU_ASSERT(t >= 45000 && t <= 51000);
}

static void test_reset(void)
{
    struct response_params p = {.latency_ms = 1000, .ramp_w_per_s = 1.0};
    struct response r;
    response_init(&r, &p, 0.0);
    response_command(&r, 0, 5000.0);
    response_reset(&r, 0.0);
    CU_ASSERT_EQUAL(r.count, 0);
    CU_ASSERT_DOUBLE_EQUAL(response_step(&r, 5000, 1000), 0.0, 0.0);
}

void test_register_response(void)
{
    CU_pSuite s = CU_add_suite("response", NULL, NULL);
    CU_add_test(s, "latency", test_latency);
    CU_add_test(s, "zero latency same step", test_zero_latency_same_step);
    CU_add_test(s, "newest due wins", test_newest_due_wins);
    CU_add_test(s, "fifo overflow drops oldest", test_fifo_overflow_drops_oldest);
    CU_add_test(s, "ramp", test_ramp);
    CU_add_test(s, "quantisation", test_quantisation);
    CU_add_test(s, "slow ramp with quantum", test_slow_ramp_with_quantum);
    CU_add_test(s, "reset", test_reset);
}
