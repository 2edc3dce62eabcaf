/* Unit tests for the GridServices strategy (gateway/strategies/strat_gridsvc.c): FCR droop with its
 * deadband, the FFR trigger, duration and re-arm, demand response and SoC recovery; stacked
 * after a grid loop: on top of what the battery can do, hidden from the loop. */
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "strat_fixture.h"

#define H (3600 * 1000LL)

static void set_hz(struct procimg *img, double hz)
{
    img->dev[1].freq_hz = hz;
}

static void test_fcr(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("grid_services", "{\"fcr_power_w\": 3000, \"soc_recovery_w\": "
                                                  "500}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 0);
    set_hz(&img, 49.9); /* 100 mHz low: (0.1 - 0.01) / (0.2 - 0.01) of 3 kW, discharging */
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT(fabs(strategy_site_request(&dm, NULL) - 3000 * 0.09 / 0.19) < 1e-6);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "grid_services/fcr");
    set_hz(&img, 50.3); /* beyond full activation: -3 kW */
    fx_decide(s, &img, 1000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), -3000.0);
    set_hz(&img, 50.005); /* in the deadband: SoC recovery toward 0.5 */
    img.dev[0].soc = 0.3;
    fx_decide(s, &img, 2000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), -500.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "grid_services/recover");
    img.dev[0].soc = 0.52;
    fx_decide(s, &img, 3000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    strategy_free(s);
}

static void test_ffr(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("grid_services", "{\"ffr_power_w\": 5000, \"ffr_duration\": "
                                                  "\"30s\", \"ffr_rearm\": \"15m\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 0);
    set_hz(&img, 49.75);
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0); /* above the trigger */
    set_hz(&img, 49.65);
    fx_decide(s, &img, 1000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 5000.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "grid_services/ffr");
    set_hz(&img, 50.0); /* support holds for its duration whatever the frequency */
    fx_decide(s, &img, 30000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 5000.0);
    fx_decide(s, &img, 31000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    set_hz(&img, 49.6); /* re-arming: no second activation */
    fx_decide(s, &img, 60000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    fx_decide(s, &img, 31000 + 900000, &dm); /* re-armed */
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 5000.0);
    strategy_free(s);
}

static void test_demand_response(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, "{\"start\": \"2026-02-10T00:00:00Z\"}"), 0);
    struct strategy *s = fx_make("grid_services", "{\"dr_reduce_w\": 2000, \"dr_from\": \"17h\", "
                                                  "\"dr_to\": \"19h\", \"soc_recovery_w\": 0}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 3000);
    img.ctx = &ctx;
    fx_decide(s, &img, 16 * H, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    fx_decide(s, &img, 17 * H, &dm); /* baseline 3 kW: hold 1 kW */
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 2000.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "grid_services/dr");
    img.dev[0].power_w = 2000;
    fx_grid(&img, 2000); /* the load rose by 1 kW: the battery covers it too */
    fx_decide(s, &img, 18 * H, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 3000.0);
    fx_decide(s, &img, 19 * H, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    strategy_free(s);
    sitectx_free(&ctx);
}

/* Stacked after self_consumption: a full battery (its envelope allows no charge) asked to
 * absorb an export still gives the whole droop when the frequency dips; and the next cycle the
 * loop sees the grid without the response, so it does not take it back. */
static void test_stacked_on_grid_loop(void)
{
    struct procimg img;
    struct decision dm;
    char err[256];
    struct strategy *s = fx_make("self_consumption", "{\"kp\": 0.5, \"ki_per_s\": 0}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    cJSON *c = cJSON_Parse("[{\"strategy\": \"grid_services\", \"params\": "
                           "{\"fcr_power_w\": 3000, \"soc_band\": 0.5}}]");
    CU_ASSERT_EQUAL_FATAL(strategy_add_constraints(s, c, "constraints", err, sizeof err), 0);
    cJSON_Delete(c);
    fx_site(&img, 0.95, -4000); /* exporting 4 kW, battery full */
    img.dev[0].has_envelope = 1;
    img.dev[0].envelope_lo_w = 0; /* no charge */
    img.dev[0].envelope_hi_w = 5000;
    set_hz(&img, 49.8); /* 200 mHz low: the full 3 kW */
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_DOUBLE_EQUAL(strategy_site_request(&dm, NULL), 3000.0, 1e-6);
    /* the battery delivers it: the export grows to 7 kW, of which the loop sees 4 kW */
    fx_grid(&img, -7000);
    img.dev[0].power_w = 3000;
    img.dev[0].has_prev_setpoint = 1;
    img.dev[0].prev_setpoint_w = 3000;
    fx_decide(s, &img, 1000, &dm);
    CU_ASSERT_DOUBLE_EQUAL(strategy_site_request(&dm, NULL), 3000.0, 1e-6);
    CU_ASSERT(dm.error_w > -4000.5 && dm.error_w < -3999.5);
    strategy_free(s);
    /* a fixed charge request to the full battery counts as the 0 W it will be */
    s = fx_make("charge", "{\"power_w\": 2000, \"stop_soc\": 1}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    c = cJSON_Parse("[{\"strategy\": \"grid_services\", \"params\": {\"fcr_power_w\": 3000}}]");
    CU_ASSERT_EQUAL_FATAL(strategy_add_constraints(s, c, "constraints", err, sizeof err), 0);
    cJSON_Delete(c);
    fx_decide(s, &img, 2000, &dm);
    CU_ASSERT_DOUBLE_EQUAL(strategy_site_request(&dm, NULL), 3000.0, 1e-6);
    strategy_free(s);
}

void test_register_strat_gridsvc(void)
{
    CU_pSuite s = CU_add_suite("strat_gridsvc", NULL, NULL);
    CU_add_test(s, "fcr droop and recovery", test_fcr);
    CU_add_test(s, "ffr trigger and re-arm", test_ffr);
    CU_add_test(s, "demand response", test_demand_response);
    CU_add_test(s, "stacked on a grid loop", test_stacked_on_grid_loop);
}
