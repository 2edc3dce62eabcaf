/* Unit tests for the EVCharging strategy (gateway/strategies/strat_ev.c): surplus start/stop
 * hysteresis, whole amps, departure deadlines, sharing, and the battery kept out of the car. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "strat_fixture.h"

#define H    (3600 * 1000LL)
#define UNIT (230.0 * 3) /* W per amp on three phases */

static int add_evse(struct procimg *img, const char *id, double need_wh)
{
    int i = fx_add(img, PROCIMG_EVSE, id);
    img->dev[i].evse_state = PROCIMG_EVSE_B;
    img->dev[i].evse_phases = 3;
    img->dev[i].evse_min_a = 6;
    img->dev[i].evse_max_a = 16;
    img->dev[i].evse_need_wh = need_wh;
    return i;
}

static void test_surplus_hysteresis(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("ev_charging", "{\"start_delay\": \"60s\", \"stop_delay\": "
                                                "\"120s\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_init(&img);
    fx_add(&img, PROCIMG_METER_GRID, "grid");
    int e = add_evse(&img, "evse1", 20000);
    fx_grid(&img, -5000);
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 0.0); /* the start condition must hold 60 s */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "ev_charging/waiting");
    fx_decide(s, &img, 60000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 7 * UNIT); /* floor(5000 / 690) = 7 A */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "ev_charging/surplus");
    /* the car draws 7 A; surplus falls to 3 kW (below 6 A - 500 W): 6 A until stop_delay */
    img.dev[e].power_w = 7 * UNIT;
    img.dev[e].evse_state = PROCIMG_EVSE_C;
    fx_grid(&img, 7 * UNIT - 3000);
    fx_decide(s, &img, 61000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 6 * UNIT);
    fx_decide(s, &img, 181000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 0.0);
    /* no car: paused */
    img.dev[e].evse_state = PROCIMG_EVSE_A;
    fx_decide(s, &img, 182000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "ev_charging/idle");
    strategy_free(s);
}

static void test_deadline(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, "{\"start\": \"2026-06-22T00:00:00Z\", \"ev_departures\": "
                                       "[{\"asset_id\": \"evse1\", \"daily\": \"14:00\"}]}"),
                          0);
    struct strategy *s = fx_make("ev_charging", "{\"deadline_margin\": 1.2, "
                                                "\"deadline_reserve\": \"1h\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_init(&img);
    img.ctx = &ctx;
    fx_add(&img, PROCIMG_METER_GRID, "grid");
    int e = add_evse(&img, "evse1", 2000);
    fx_grid(&img, 500);             /* no surplus */
    fx_decide(s, &img, 8 * H, &dm); /* 2 kWh in 5 h: 480 W < the 6 A minimum, wait */
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 0.0);
    img.dev[e].evse_need_wh = 10000;
    fx_decide(s, &img, 11 * H, &dm); /* 10 kWh in 3 - 1 h x 1.2 = 6 kW: ceil to 9 A */
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 9 * UNIT);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "ev_charging/deadline");
    fx_decide(s, &img, 13 * H + 1000, &dm); /* inside the reserve: full current */
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 16 * UNIT);
    strategy_free(s);
    sitectx_free(&ctx);
}

static void test_sharing_and_battery(void)
{
    struct procimg img;
    struct decision dm;
    char err[256];
    struct strategy *s = fx_make("ev_charging", "{\"start_delay\": \"0s\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_init(&img);
    fx_add(&img, PROCIMG_METER_GRID, "grid");
    int a = add_evse(&img, "evse1", 20000), b = add_evse(&img, "evse2", 20000);
    fx_grid(&img, -10000);
    fx_decide(s, &img, 0, &dm); /* equally: 5 kW each, 7 A */
    CU_ASSERT_EQUAL(fx_asset_req(&dm, a), 7 * UNIT);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 7 * UNIT);
    strategy_free(s);
    s = fx_make("ev_charging", "{\"start_delay\": \"0s\", \"priority\": true}");
    fx_decide(s, &img, 0, &dm); /* in order: 10 kW to the first (14 A), 340 W left */
    CU_ASSERT_EQUAL(fx_asset_req(&dm, a), 14 * UNIT);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 0.0);
    strategy_free(s);
    /* stacked after a 3 kW discharge: the battery may cover the house (500 W), not the car */
    s = fx_make("discharge", "{\"power_w\": 3000}");
    cJSON *c = cJSON_Parse("[{\"strategy\": \"ev_charging\", \"params\": {\"start_delay\": "
                           "\"0s\"}}]");
    CU_ASSERT_EQUAL(strategy_add_constraints(s, c, "constraints", err, sizeof err), 0);
    cJSON_Delete(c);
    fx_init(&img);
    int bat = fx_add(&img, PROCIMG_BATTERY, "bat1");
    img.dev[bat].soc = 0.5;
    fx_add(&img, PROCIMG_METER_GRID, "grid");
    a = add_evse(&img, "evse1", 20000);
    img.dev[a].power_w = 5000;
    fx_grid(&img, -300); /* 5.8 kW PV, 500 W house, 5 kW car */
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, a), 7 * UNIT);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0); /* house net load -300 + 0 */
    CU_ASSERT_EQUAL(decision_count(&dm, DC_EV_BATTERY), 1);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "discharge");
    strategy_free(s);
}

/* The plan, once it has taken over, holds until the car leaves or is full. It used to drop
 * out as soon as the car, charging at the rounded-up current, got ahead of the average
 * power (need / time left x margin back under the minimum), wait, take over again seconds
 * later: thousands of writes and half the charge (ev-charging with start_margin_w=6000). */
static void test_deadline_holds(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, "{\"start\": \"2026-06-22T00:00:00Z\", \"ev_departures\": "
                                       "[{\"asset_id\": \"evse1\", \"daily\": \"14:00\"}]}"),
                          0);
    struct strategy *s = fx_make("ev_charging", "{\"deadline_margin\": 1.2, "
                                                "\"deadline_reserve\": \"1h\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_init(&img);
    img.ctx = &ctx;
    fx_add(&img, PROCIMG_METER_GRID, "grid");
    int e = add_evse(&img, "evse1", 6 * UNIT * 5 / 1.2); /* exactly 6 A on average over 5 h */
    fx_grid(&img, 500);
    fx_decide(s, &img, 8 * H, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 6 * UNIT);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "ev_charging/deadline");
    /* a minute at 6 A: now a little under 6 A on average, still 6 A (not 0) */
    img.dev[e].evse_state = PROCIMG_EVSE_C;
    img.dev[e].power_w = 6 * UNIT;
    img.dev[e].evse_need_wh -= 6 * UNIT / 60;
    fx_decide(s, &img, 8 * H + 60000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 6 * UNIT);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "ev_charging/deadline");
    /* the car leaves: the plan ends; the next car waits again */
    img.dev[e].evse_state = PROCIMG_EVSE_A;
    fx_decide(s, &img, 8 * H + 61000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 0.0);
    img.dev[e].evse_state = PROCIMG_EVSE_B;
    img.dev[e].evse_need_wh = 1000;
    fx_decide(s, &img, 8 * H + 62000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 0.0);
    strategy_free(s);
    sitectx_free(&ctx);
}

/* Under the plan, a car that takes clearly less than it is given for a minute (it tapers near
 * full, or is capped, or charges on fewer phases) gets full current to the end: the plan's
 * average would no longer finish in time. Before, it stayed at the planned minimum until the
 * reserve, and the tapering car missed "full" by the departure. */
static void test_deadline_taper(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, "{\"start\": \"2026-06-22T00:00:00Z\", \"ev_departures\": "
                                       "[{\"asset_id\": \"evse1\", \"daily\": \"17:00\"}]}"),
                          0);
    struct strategy *s = fx_make("ev_charging", "{\"deadline_reserve\": \"2h\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_init(&img);
    img.ctx = &ctx;
    fx_add(&img, PROCIMG_METER_GRID, "grid");
    int e = add_evse(&img, "evse1", 20000);
    fx_grid(&img, 500);
    fx_decide(s, &img, 9 * H, &dm); /* 20 kWh in 6 h x 1.2 = 4 kW: under 6 A, wait */
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 0.0);
    fx_decide(s, &img, 10 * H, &dm); /* 20 kWh in 5 h x 1.2 = 4.8 kW: 7 A */
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 7 * UNIT);
    /* the car tapers: given 7 A, it takes 2 kW; 4 kWh left need only 6 A on average */
    img.dev[e].evse_state = PROCIMG_EVSE_C;
    img.dev[e].has_prev_setpoint = 1;
    img.dev[e].prev_setpoint_w = 7 * UNIT;
    img.dev[e].power_w = 2000;
    img.dev[e].evse_need_wh = 4000;
    fx_decide(s, &img, 12 * H, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 6 * UNIT);
    fx_decide(s, &img, 12 * H + 59000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 6 * UNIT);
    fx_decide(s, &img, 12 * H + 60000, &dm); /* a minute of it: full current */
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 16 * UNIT);
    img.dev[e].prev_setpoint_w = 16 * UNIT; /* and it stays there while the car tapers */
    img.dev[e].power_w = 1500;
    fx_decide(s, &img, 12 * H + 61000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 16 * UNIT);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "ev_charging/deadline");
    strategy_free(s);
    sitectx_free(&ctx);
}

/* A fractional minimum is rounded up to whole amps: the charger only has 1 A steps and the
 * EVSE driver floors the request, so 6.5 A would have become 6 A, under the minimum. */
static void test_whole_amp_minimum(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("ev_charging", "{\"start_delay\": \"0s\", \"min_current_a\": 6.5, "
                                                "\"start_margin_w\": 0, \"stop_margin_w\": 1000}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_init(&img);
    fx_add(&img, PROCIMG_METER_GRID, "grid");
    int e = add_evse(&img, "evse1", 20000);
    fx_grid(&img, -5000);
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 7 * UNIT);
    /* the surplus falls to 4.5 kW (6.5 A): between the stop and start thresholds, at least 7 A */
    img.dev[e].power_w = 7 * UNIT;
    fx_grid(&img, 7 * UNIT - 4500);
    fx_decide(s, &img, 1000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, e), 7 * UNIT);
    strategy_free(s);
}

void test_register_strat_ev(void)
{
    CU_pSuite s = CU_add_suite("strat_ev", NULL, NULL);
    CU_add_test(s, "surplus hysteresis", test_surplus_hysteresis);
    CU_add_test(s, "departure deadline", test_deadline);
    CU_add_test(s, "deadline plan holds", test_deadline_holds);
    CU_add_test(s, "deadline plan and taper", test_deadline_taper);
    CU_add_test(s, "whole-amp minimum", test_whole_amp_minimum);
    CU_add_test(s, "sharing and battery", test_sharing_and_battery);
}
