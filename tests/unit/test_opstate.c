/* Unit tests for sim/physics/opstate.c, the operating state machine of every device model, and
 * for the models that use it: start and stop times, FAULT and its clearing, a stopped device
 * that stays stopped, zero times that chain in one step, and the power following the state (a
 * stopped battery answers 0 W whatever its setpoint; a stopped PV inverter or charger too). */
#include <CUnit/CUnit.h>

#include "sim/physics/battery.h"
#include "sim/physics/evse.h"
#include "sim/physics/opstate.h"
#include "sim/physics/pv.h"

static void test_sequence(void)
{
    struct opstate_params p = {.start_ms = 5000, .stop_ms = 2000};
    struct opstate s;
    opstate_init(&s, OPSTATE_RUNNING, 0);
    opstate_advance(&s, &p, 0, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_RUNNING);
    opstate_command(&s, OPSTATE_CMD_STOP);
    opstate_advance(&s, &p, 1000, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_STOPPING);
    opstate_advance(&s, &p, 2999, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_STOPPING);
    opstate_advance(&s, &p, 3000, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_IDLE);
    opstate_advance(&s, &p, 60000, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_IDLE); /* stays stopped */
    opstate_command(&s, OPSTATE_CMD_START);
    opstate_advance(&s, &p, 61000, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_STARTING);
    opstate_advance(&s, &p, 65999, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_STARTING);
    opstate_advance(&s, &p, 66000, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_RUNNING);
    CU_ASSERT_TRUE(opstate_running(&s));
    /* a stop while STARTING goes straight back to IDLE */
    opstate_command(&s, OPSTATE_CMD_STOP);
    opstate_advance(&s, &p, 70000, 1, 0);
    opstate_command(&s, OPSTATE_CMD_START);
    opstate_advance(&s, &p, 80000, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_STARTING);
    opstate_command(&s, OPSTATE_CMD_STOP);
    opstate_advance(&s, &p, 81000, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_IDLE);
    CU_ASSERT_STRING_EQUAL(opstate_name(OPSTATE_STOPPING), "STOPPING");
    CU_ASSERT_STRING_EQUAL(opstate_name((enum op_state)9), "?");
}

/* FAULT while the condition holds; then IDLE, and at once RUNNING again with zero times when
 * the device is started (what the models did before they had a state machine). */
static void test_fault_and_clear(void)
{
    struct opstate_params zero = {0, 0}, slow = {.start_ms = 3000, .stop_ms = 0};
    struct opstate s;
    opstate_init(&s, OPSTATE_RUNNING, 0);
    opstate_advance(&s, &zero, 1000, 1, 1);
    CU_ASSERT_EQUAL(s.state, OPSTATE_FAULT);
    CU_ASSERT_EQUAL(s.since_ms, 1000);
    opstate_advance(&s, &zero, 2000, 1, 1);
    CU_ASSERT_EQUAL(s.since_ms, 1000); /* entered once */
    opstate_advance(&s, &zero, 3000, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_RUNNING);
    /* with a start time: IDLE -> STARTING at the clearing */
    opstate_advance(&s, &slow, 4000, 1, 1);
    opstate_advance(&s, &slow, 5000, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_STARTING);
    opstate_advance(&s, &slow, 8000, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_RUNNING);
    /* a stopped device stays IDLE once its fault clears; RESET alone changes nothing */
    opstate_command(&s, OPSTATE_CMD_STOP);
    opstate_advance(&s, &slow, 9000, 1, 1);
    opstate_command(&s, OPSTATE_CMD_RESET);
    opstate_advance(&s, &slow, 10000, 1, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_IDLE);
    /* a model that does not want to run (a satisfied thermostat) stays IDLE while started */
    opstate_command(&s, OPSTATE_CMD_START);
    opstate_advance(&s, &slow, 11000, 0, 0);
    CU_ASSERT_EQUAL(s.state, OPSTATE_IDLE);
}

static struct battery_params battery_params(void)
{
    struct battery_params p = {
        .capacity_wh = 10000.0,
        .soc_init = 0.5,
        .max_charge_w = 5000.0,
        .max_discharge_w = 5000.0,
        .eta_charge = 1.0,
        .eta_discharge = 1.0,
        .soc_high_band = 1.0,
        .temp_init_c = 25.0,
        .temp_ambient_c = 25.0,
        .temp_tau_s = 1800.0,
        .temp_derate_c = 45.0,
        .temp_stop_c = 55.0,
        .voltage_v = 400.0,
        .op = {.start_ms = 2000, .stop_ms = 1000},
    };
    return p;
}

static void test_battery_follows_state(void)
{
    struct battery_params p = battery_params();
    struct battery b;
    battery_init(&b, &p);
    battery_command(&b, 0, 3000.0);
    battery_step(&b, 0, 1000);
    CU_ASSERT_DOUBLE_EQUAL(b.power_w, 3000.0, 1e-9);
    battery_opcommand(&b, 1000, OPSTATE_CMD_STOP);
    CU_ASSERT_EQUAL(b.op.state, OPSTATE_STOPPING);
    battery_step(&b, 1000, 1000);
    CU_ASSERT_EQUAL(b.power_w, 0.0);
    battery_step(&b, 2000, 1000);
    CU_ASSERT_EQUAL(b.op.state, OPSTATE_IDLE);
    battery_command(&b, 2500, -4000.0); /* stored, but a stopped battery answers 0 W */
    double soc = b.soc;
    for (int64_t t = 3000; t < 10000; t += 1000) {
        battery_step(&b, t, 1000);
        CU_ASSERT_EQUAL(b.power_w, 0.0);
    }
    CU_ASSERT_EQUAL(b.soc, soc);
    CU_ASSERT_EQUAL(b.state, BATTERY_STANDBY); /* not THROTTLED: nothing is asked of it */
    battery_opcommand(&b, 10000, OPSTATE_CMD_START);
    battery_step(&b, 10000, 1000);
    CU_ASSERT_EQUAL(b.op.state, OPSTATE_STARTING);
    CU_ASSERT_EQUAL(b.power_w, 0.0);
    battery_step(&b, 11000, 1000);
    battery_step(&b, 12000, 1000);
    CU_ASSERT_EQUAL(b.op.state, OPSTATE_RUNNING);
    CU_ASSERT_DOUBLE_EQUAL(b.power_w, -4000.0, 1e-9);
    /* an injected fault: FAULT and 0 W; cleared: STARTING (start time), then RUNNING */
    b.fault = 1;
    battery_step(&b, 13000, 1000);
    CU_ASSERT_EQUAL(b.op.state, OPSTATE_FAULT);
    CU_ASSERT_EQUAL(b.power_w, 0.0);
    b.fault = 0;
    battery_step(&b, 14000, 1000);
    CU_ASSERT_EQUAL(b.op.state, OPSTATE_STARTING);
    CU_ASSERT_FALSE(battery_available(&b, 15000));
    CU_ASSERT_TRUE(battery_available(&b, 16000));
    /* a reboot starts it again */
    battery_opcommand(&b, 20000, OPSTATE_CMD_STOP);
    battery_reset(&b);
    CU_ASSERT_EQUAL(b.op.enabled, 1);
}

static void test_pv_and_evse_follow_state(void)
{
    struct pv_params pp = {
        .peak_w = 5000.0, .gamma_per_k = 0.0, .noct_c = 45.0, .system_derate = 1.0};
    struct pv v;
    pv_init(&v, &pp);
    CU_ASSERT_EQUAL(v.op.state, OPSTATE_RUNNING);
    pv_opcommand(&v, 0, OPSTATE_CMD_STOP);
    pv_step(&v, 0, 1000);
    CU_ASSERT_EQUAL(v.op.state, OPSTATE_IDLE);
    CU_ASSERT_EQUAL(v.power_w, 0.0);
    pv_opcommand(&v, 1000, OPSTATE_CMD_START);
    CU_ASSERT_EQUAL(v.op.state, OPSTATE_RUNNING);

    struct evse_params ep = {.phases = 3,
                             .min_current_a = 6,
                             .max_current_a = 16,
                             .voltage_v = 230,
                             .default_current_a = 16};
    struct evse e;
    evse_init(&e, &ep);
    evse_opcommand(&e, 0, OPSTATE_CMD_STOP);
    evse_step(&e, 0, 1000);
    CU_ASSERT_EQUAL(e.op.state, OPSTATE_IDLE);
    CU_ASSERT_EQUAL(e.power_w, 0.0);
    CU_ASSERT_EQUAL(e.state, IEC_A); /* no car */
    e.fault = 1;
    evse_step(&e, 1000, 1000);
    CU_ASSERT_EQUAL(e.op.state, OPSTATE_FAULT);
    CU_ASSERT_EQUAL(e.state, IEC_F);
    e.fault = 0;
    evse_step(&e, 2000, 1000);
    CU_ASSERT_EQUAL(e.op.state, OPSTATE_IDLE); /* stopped before the fault: stays stopped */
    evse_opcommand(&e, 3000, OPSTATE_CMD_START);
    CU_ASSERT_EQUAL(e.op.state, OPSTATE_RUNNING);
}

void test_register_opstate(void)
{
    CU_pSuite s = CU_add_suite("opstate", NULL, NULL);
    CU_add_test(s, "sequence and times", test_sequence);
    CU_add_test(s, "fault and clear", test_fault_and_clear);
    CU_add_test(s, "battery follows the state", test_battery_follows_state);
    CU_add_test(s, "pv and evse follow the state", test_pv_and_evse_follow_state);
}
