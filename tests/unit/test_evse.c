/* Unit tests for sim/physics/evse.c: IEC 61851 states, pause, minimum current, 1 A steps, taper,
 * departure with a shortfall, failsafe current, faults, response latency. */
#include <math.h>

#include <CUnit/CUnit.h>

#include "sim/physics/evse.h"

/* Car 1: 10:00-12:00 wants 22 kWh at up to 11 kW on 3 phases; car 2: 13:00-13:30, 1 phase. */
static struct ev_session sessions[] = {
    {.id = "car1",
     .arrive_ms = 36000000,
     .depart_ms = 43200000,
     .energy_wh = 22000.0,
     .max_power_w = 11000.0,
     .phases = 3},
    {.id = "car2",
     .arrive_ms = 46800000,
     .depart_ms = 48600000,
     .energy_wh = 100000.0,
     .max_power_w = 7400.0,
     .phases = 1},
};
static struct profile ev_prof = {
    .name = "ev", .kind = PROFILE_EV_SESSIONS, .n_sessions = 2, .sessions = sessions};

static struct evse_params params(void)
{
    struct evse_params p = {
        .phases = 3,
        .min_current_a = 6.0,
        .max_current_a = 16.0,
        .voltage_v = 230.0,
        .default_current_a = 16.0,
        .sessions = &ev_prof,
    };
    return p;
}

static void test_states(void)
{
    struct evse_params p = params();
    struct evse e;
    evse_init(&e, &p);
    evse_step(&e, 0, 60000);
    CU_ASSERT_EQUAL(e.state, IEC_A);
    CU_ASSERT_EQUAL(e.session, -1);
    evse_step(&e, 36000000, 60000);
    CU_ASSERT_EQUAL(e.state, IEC_C);
    CU_ASSERT_EQUAL(e.session, 0);
    CU_ASSERT_DOUBLE_EQUAL(e.power_w, 11000.0, 0.0); /* 16 A * 230 V * 3 = 11040, car max 11 kW */
    CU_ASSERT_DOUBLE_EQUAL(e.current_a, 11000.0 / 690.0, 1e-9);
    evse_command(&e, 36060000, 0.0, 1); /* pause */
    evse_step(&e, 36060000, 60000);
    CU_ASSERT_EQUAL(e.state, IEC_B);
    CU_ASSERT_EQUAL(e.power_w, 0.0);
    evse_command(&e, 36120000, 10.0, 0); /* disabled */
    evse_step(&e, 36120000, 60000);
    CU_ASSERT_EQUAL(e.state, IEC_B);
    e.fault = 1;
    evse_step(&e, 36180000, 60000);
    CU_ASSERT_EQUAL(e.state, IEC_F);
    CU_ASSERT_EQUAL(e.power_w, 0.0);
    evse_reset(&e);
    evse_step(&e, 36240000, 60000);
    CU_ASSERT_EQUAL(e.state, IEC_C);
    CU_ASSERT_DOUBLE_EQUAL(e.current_limit_a, 16.0, 0.0);
}

static void test_current_steps(void)
{
    struct evse_params p = params();
    struct evse e;
    evse_init(&e, &p);
    evse_command(&e, 0, 3.0, 1);
    CU_ASSERT_DOUBLE_EQUAL(e.current_limit_a, 6.0, 0.0); /* at least the minimum */
    evse_command(&e, 0, 9.7, 1);
    CU_ASSERT_DOUBLE_EQUAL(e.current_limit_a, 9.0, 0.0); /* whole amps, down */
    evse_command(&e, 0, 40.0, 1);
    CU_ASSERT_DOUBLE_EQUAL(e.current_limit_a, 16.0, 0.0);
    evse_command(&e, 0, 0.0, 1);
    CU_ASSERT_DOUBLE_EQUAL(e.current_limit_a, 0.0, 0.0);
    evse_command(&e, 36000000, 9.7, 1);
    evse_step(&e, 36000000, 1000);
    CU_ASSERT_DOUBLE_EQUAL(e.power_w, 9.0 * 230.0 * 3.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(e.current_a, 9.0, 1e-12);
}

/* Charging at full power the taper stretches the last 20 %; the car leaves before it is full
 * and the shortfall is what it still wanted. */
static void test_taper_and_shortfall(void)
{
    struct evse_params p = params();
    struct evse e;
    evse_init(&e, &p);
    int64_t t = 36000000;
    double before_taper = 0.0;
    for (; t < 43200000; t += 10000) {
        evse_step(&e, t, 10000);
        CU_ASSERT_FATAL(e.session_energy_wh <= 22000.0 + 1e-9);
        if (e.session_energy_wh < 0.8 * 22000.0)
            before_taper = e.power_w;
    }
    CU_ASSERT_DOUBLE_EQUAL(before_taper, 11000.0, 0.0);
    /* 80 % after 1.6 h, then dE/dt = P (1 - f) / 0.2: an exponential with tau = 0.4 h, so
     * after the last 0.4 h about 4400 Wh / e is still missing. */
    CU_ASSERT_DOUBLE_EQUAL(22000.0 - e.session_energy_wh, 4400.0 * exp(-1.0), 30.0);
    CU_ASSERT_DOUBLE_EQUAL(e.power_w, 11000.0 * exp(-1.0), 80.0);
    double remaining = 22000.0 - e.session_energy_wh;
    evse_step(&e, t, 10000); /* 12:00: car 1 departs */
    CU_ASSERT_EQUAL(e.state, IEC_A);
    CU_ASSERT_EQUAL(e.sessions_done, 1);
    CU_ASSERT_EQUAL(e.sessions_full, remaining <= 1.0 ? 1 : 0);
    CU_ASSERT_DOUBLE_EQUAL(e.shortfall_wh, remaining, 1e-9);

    /* Car 2: one phase, 16 A; half an hour, far from its need. */
    for (t = 46800000; t < 48600000; t += 60000) {
        evse_step(&e, t, 60000);
        CU_ASSERT_DOUBLE_EQUAL(e.power_w, 16.0 * 230.0, 1e-9);
    }
    evse_step(&e, t, 60000);
    CU_ASSERT_EQUAL(e.sessions_done, 2);
    CU_ASSERT_DOUBLE_EQUAL(e.shortfall_wh, remaining + 100000.0 - 16.0 * 230.0 * 0.5, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(e.total_energy_wh, 22000.0 - remaining + 1840.0, 1e-6);
}

/* A car that is filled with time to spare counts as full, and the step cap stops it exactly. */
static void test_full_session(void)
{
    struct ev_session one = {.id = "x",
                             .arrive_ms = 0,
                             .depart_ms = 36000000,
                             .energy_wh = 5000.0,
                             .max_power_w = 11000.0,
                             .phases = 3};
    struct profile prof = {
        .name = "x", .kind = PROFILE_EV_SESSIONS, .n_sessions = 1, .sessions = &one};
    struct evse_params p = params();
    p.sessions = &prof;
    struct evse e;
    evse_init(&e, &p);
    int64_t t = 0;
    for (; t <= 36000000; t += 60000)
        evse_step(&e, t, 60000);
    CU_ASSERT_EQUAL(e.sessions_done, 1);
    CU_ASSERT_EQUAL(e.sessions_full, 1);
    CU_ASSERT(e.shortfall_wh < 1.0);
}

/* The taper never reaches the need; the car terminates at 99 % (5 % of its power left), draws
 * nothing more and is booked full with no shortfall. */
static void test_termination(void)
{
    struct ev_session one = {.id = "t",
                             .arrive_ms = 0,
                             .depart_ms = 36000000,
                             .energy_wh = 20000.0,
                             .max_power_w = 11000.0,
                             .phases = 3};
    struct profile prof = {
        .name = "t", .kind = PROFILE_EV_SESSIONS, .n_sessions = 1, .sessions = &one};
    struct evse_params p = params();
    p.sessions = &prof;
    struct evse e;
    evse_init(&e, &p);
    int64_t t = 0;
    for (; t < 18000000; t += 10000) /* 5 h: 80 % after 1.45 h, then 3 tau = 1.1 h */
        evse_step(&e, t, 10000);
    CU_ASSERT_EQUAL(e.power_w, 0.0);
    CU_ASSERT_EQUAL(e.state, IEC_B);
    CU_ASSERT(e.session_energy_wh >= 0.99 * 20000.0 - 1.0 && e.session_energy_wh < 20000.0);
    for (; t <= 36000000; t += 60000)
        evse_step(&e, t, 60000);
    CU_ASSERT_EQUAL(e.sessions_done, 1);
    CU_ASSERT_EQUAL(e.sessions_full, 1);
    CU_ASSERT_EQUAL(e.shortfall_wh, 0.0);
}

static void test_failsafe(void)
{
    struct evse_params p = params();
    p.failsafe_ms = 60000;
    p.failsafe_current_a = 8.0;
    struct evse e;
    evse_init(&e, &p);
    evse_command(&e, 36000000, 16.0, 1);
    evse_step(&e, 36000000, 30000);
    CU_ASSERT_DOUBLE_EQUAL(e.power_w, 11000.0, 0.0);
    evse_step(&e, 36060000, 30000); /* exactly failsafe_ms: still the commanded current */
    CU_ASSERT_DOUBLE_EQUAL(e.power_w, 11000.0, 0.0);
    evse_step(&e, 36090000, 30000);
    CU_ASSERT_DOUBLE_EQUAL(e.power_w, 8.0 * 230.0 * 3.0, 1e-9);
    evse_command(&e, 36120000, 12.0, 1);
    evse_step(&e, 36120000, 30000);
    CU_ASSERT_DOUBLE_EQUAL(e.power_w, 12.0 * 230.0 * 3.0, 1e-9);
}

static void test_latency(void)
{
    struct evse_params p = params();
    p.response.latency_ms = 5000;
    struct evse e;
    evse_init(&e, &p);
    evse_command(&e, 36000000, 10.0, 1);
    for (int64_t t = 36000000; t < 36005000; t += 1000) {
        evse_step(&e, t, 1000);
        CU_ASSERT_EQUAL(e.power_w, 0.0);
        CU_ASSERT_EQUAL(e.state, IEC_B);
    }
    evse_step(&e, 36005000, 1000);
    CU_ASSERT_DOUBLE_EQUAL(e.power_w, 6900.0, 1e-9);
    CU_ASSERT_EQUAL(e.state, IEC_C);
}

void test_register_evse(void)
{
    CU_pSuite s = CU_add_suite("evse", NULL, NULL);
    CU_add_test(s, "states", test_states);
    CU_add_test(s, "current steps", test_current_steps);
    CU_add_test(s, "taper and shortfall", test_taper_and_shortfall);
    CU_add_test(s, "full session", test_full_session);
    CU_add_test(s, "termination at 99 %", test_termination);
    CU_add_test(s, "failsafe", test_failsafe);
    CU_add_test(s, "latency", test_latency);
}
