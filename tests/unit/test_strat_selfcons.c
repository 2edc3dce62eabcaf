/* Unit tests for the SelfConsumption strategy (gateway/strategies/strat_selfcons.c): absorb, cover,
 * the SoC floor and PV curtailment at the export limit. */
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "strat_fixture.h"

static void test_absorb_cover(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("self_consumption", "{\"min_soc\": 0.1}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 0);
    double w = fx_loop(s, &img, -3000, 60, 0, &dm);
    CU_ASSERT(fabs(w + 3000) < 25);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "self_consumption/absorb");
    w = fx_loop(s, &img, 2000, 60, 100000, &dm);
    CU_ASSERT(fabs(w - 2000) < 25);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "self_consumption/cover");
    /* at the floor: no discharge */
    img.dev[0].soc = 0.1;
    w = fx_loop(s, &img, 2000, 5, 200000, &dm);
    CU_ASSERT_EQUAL(w, 0.0);
    strategy_free(s);
}

static void test_curtail(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("self_consumption", "{\"max_charge_w\": 0, \"export_limit_w\": "
                                                     "4000, \"margin_w\": 0}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, -6000);
    int pv = fx_add(&img, PROCIMG_PV, "pv1");
    img.dev[pv].rated_w = 8000;
    img.dev[pv].power_w = 6000;
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT(fabs(fx_asset_req(&dm, pv) - 4000) < 1e-9); /* 2 kW over the limit */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "self_consumption/curtail");
    /* the export fell to 1 kW at a 4 kW limit: the limit follows it up */
    img.dev[pv].power_w = 4000;
    fx_grid(&img, -1000);
    fx_decide(s, &img, 1000, &dm);
    CU_ASSERT(fabs(fx_asset_req(&dm, pv) - 7000) < 1e-9);
    /* and is released once it reaches the rating */
    img.dev[pv].power_w = 7000;
    fx_decide(s, &img, 2000, &dm);
    CU_ASSERT(isnan(fx_asset_req(&dm, pv)));
    strategy_free(s);
}

void test_register_strat_selfcons(void)
{
    CU_pSuite s = CU_add_suite("strat_selfcons", NULL, NULL);
    CU_add_test(s, "absorb and cover", test_absorb_cover);
    CU_add_test(s, "curtail at the export limit", test_curtail);
}
