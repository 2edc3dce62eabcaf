/* Unit tests for the Boiler strategy (gateway/strategies/strat_boiler.c): surplus in steps, the
 * minimum temperature, min on/off times and the boiler's state machine. */
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "strat_fixture.h"

static int add_boiler(struct procimg *img, double temp_c)
{
    int i = fx_add(img, PROCIMG_BOILER, "boiler1");
    img->dev[i].rated_w = 3000;
    img->dev[i].boiler_state = PROCIMG_BOILER_RUNNING;
    img->dev[i].boiler_temperature_c = temp_c;
    img->dev[i].boiler_heat_demand = 1;
    return i;
}

static void test_surplus_and_minimum(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("boiler", "{\"min_temp_c\": 45, \"min_temp_band_k\": 3, "
                                           "\"min_on\": \"2m\", \"min_off\": \"2m\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_init(&img);
    fx_add(&img, PROCIMG_METER_GRID, "grid");
    int b = add_boiler(&img, 50);
    fx_grid(&img, -1550);
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 1500.0); /* 1550 W in 100 W steps */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "boiler/surplus");
    /* the boiler draws 1500 W, import 200 W: surplus 1300 W */
    img.dev[b].power_w = 1500;
    fx_grid(&img, 200);
    fx_decide(s, &img, 1000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 1300.0);
    /* no surplus: held on for min_on, then 0 */
    img.dev[b].power_w = 1300;
    fx_grid(&img, 1500);
    fx_decide(s, &img, 60000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 1300.0);
    fx_decide(s, &img, 121000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "boiler/blocked");
    /* surplus back at once: held off for min_off */
    img.dev[b].power_w = 0;
    fx_grid(&img, -2000);
    fx_decide(s, &img, 150000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 0.0);
    fx_decide(s, &img, 242000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 2000.0);
    /* below the minimum temperature: full power from the grid until 48 degC */
    fx_grid(&img, 500);
    img.dev[b].boiler_temperature_c = 44;
    fx_decide(s, &img, 243000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 3000.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "boiler/keep_min");
    img.dev[b].boiler_temperature_c = 47;
    fx_decide(s, &img, 244000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 3000.0);
    strategy_free(s);
}

static void test_state_machine(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("boiler", "{\"min_on\": \"0s\", \"min_off\": \"0s\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_init(&img);
    fx_add(&img, PROCIMG_METER_GRID, "grid");
    int b = add_boiler(&img, 55);
    fx_grid(&img, -1000);
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 1000.0);
    /* STARTING: the limit is not changed */
    img.dev[b].boiler_state = PROCIMG_BOILER_STARTING;
    fx_grid(&img, -2500);
    fx_decide(s, &img, 1000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 1000.0);
    /* FAULT: no command at all */
    img.dev[b].boiler_state = PROCIMG_BOILER_FAULT;
    fx_decide(s, &img, 2000, &dm);
    CU_ASSERT(isnan(fx_asset_req(&dm, b)));
    CU_ASSERT_STRING_EQUAL(dm.strategy, "boiler/fault");
    strategy_free(s);
}

/* A draw pulls the tank down faster than the element can heat (240 L/h at 50 degC takes
 * about 10 kW against 3 kW): full power must go on while the tank is still above min_temp_c,
 * as soon as its fall would reach it within min_temp_lookahead. It used to wait for
 * min_temp_c itself, minutes into the draw (boiler-pv with start_surplus_w=1500: 41.3 degC).
 * A quiet night's 0.1 K register step is no fall. */
static void test_falling_tank(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("boiler", "{\"min_temp_c\": 45, \"min_temp_lookahead\": \"15m\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_init(&img);
    fx_add(&img, PROCIMG_METER_GRID, "grid");
    int b = add_boiler(&img, 46.2);
    fx_grid(&img, 400); /* no surplus */
    for (int k = 0; k <= 12; k++) {
        img.dev[b].boiler_temperature_c = k < 6 ? 46.2 : 46.1;
        fx_decide(s, &img, k * 10000LL, &dm);
        CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 0.0);
    }
    CU_ASSERT_STRING_EQUAL(dm.strategy, "boiler/blocked");
    strategy_free(s);
    /* a draw: 0.01 K/s from 50 degC; after a minute of it: 49.4 - 9 K in 15 min < 45 */
    s = fx_make("boiler", "{\"min_temp_c\": 45, \"min_temp_lookahead\": \"15m\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (int k = 0; k <= 6; k++) {
        img.dev[b].boiler_temperature_c = 50 - 0.1 * k;
        fx_decide(s, &img, k * 10000LL, &dm);
        CU_ASSERT_EQUAL(fx_asset_req(&dm, b), k < 6 ? 0.0 : 3000.0);
    }
    CU_ASSERT_STRING_EQUAL(dm.strategy, "boiler/keep_min");
    /* the draw ends, the tank recovers to min_temp_c + band: full power until then */
    img.dev[b].boiler_temperature_c = 47;
    fx_decide(s, &img, 200000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 3000.0);
    img.dev[b].boiler_temperature_c = 48;
    fx_decide(s, &img, 400000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 0.0);
    strategy_free(s);
}

/* Below min_temp_c + draw_reserve_k any surplus heats, whatever start_surplus_w: a tank that
 * enters the morning draw at 48-49 degC ends under its minimum even at full power, and the
 * surplus that would have preheated it was below a high start_surplus_w. Such an on-period
 * ends once the tank is out of its reserve, unless the surplus reached start_surplus_w. */
static void test_draw_reserve(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("boiler", "{\"min_temp_c\": 45, \"draw_reserve_k\": 8, "
                                           "\"start_surplus_w\": 1500, \"min_on\": \"0s\", "
                                           "\"min_off\": \"0s\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_init(&img);
    fx_add(&img, PROCIMG_METER_GRID, "grid");
    int b = add_boiler(&img, 48);
    fx_grid(&img, -500);
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 500.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "boiler/surplus");
    /* out of the reserve (53 degC) with the same 500 W: off */
    img.dev[b].power_w = 500;
    fx_grid(&img, 0);
    img.dev[b].boiler_temperature_c = 53.5;
    fx_decide(s, &img, 1000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 0.0);
    /* above it, start_surplus_w and its hysteresis as before */
    img.dev[b].power_w = 0;
    fx_grid(&img, -1400);
    fx_decide(s, &img, 2000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 0.0);
    fx_grid(&img, -1600);
    fx_decide(s, &img, 3000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 1600.0);
    img.dev[b].power_w = 1600;
    fx_grid(&img, 1100);
    fx_decide(s, &img, 4000, &dm);
    CU_ASSERT_EQUAL(fx_asset_req(&dm, b), 500.0);
    strategy_free(s);
}

void test_register_strat_boiler(void)
{
    CU_pSuite s = CU_add_suite("strat_boiler", NULL, NULL);
    CU_add_test(s, "surplus and minimum temperature", test_surplus_and_minimum);
    CU_add_test(s, "state machine", test_state_machine);
    CU_add_test(s, "falling tank", test_falling_tank);
    CU_add_test(s, "draw reserve", test_draw_reserve);
}
