/* Unit tests for the Arbitrage strategy (gateway/strat_arbitrage.c): cheapest and dearest
 * slots, the spread after losses and the daily cycle budget. */
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "strat_fixture.h"

#define H (3600 * 1000LL)

static const char *ctx_json =
    "{\"start\": \"2026-05-12T00:00:00Z\", \"tariff\": {\"import\": {\"type\": \"series\", "
    "\"repeat\": \"1d\", \"points\": [[\"0h\", 0.10], [\"6h\", 0.05], [\"8h\", 0.12], "
    "[\"18h\", 0.30], [\"20h\", 0.15]]}}}";

static void test_buy_sell(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, ctx_json), 0);
    /* 10 kWh from 0.1 to 0.95 = 8.5 kWh = 2 one-hour slots at 5 kW */
    struct strategy *s = fx_make("arbitrage", "{\"power_w\": 5000, \"scan_step\": \"1h\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 0);
    img.ctx = &ctx;
    fx_decide(s, &img, 6 * H, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), -5000.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/buy");
    fx_decide(s, &img, 12 * H, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/idle");
    fx_decide(s, &img, 18 * H, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 5000.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/sell");
    /* at soc_min: no selling */
    img.dev[0].soc = 0.1;
    fx_decide(s, &img, 18 * H + 60000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    strategy_free(s);
    /* a spread the losses eat: 0.30 x 0.5 - 0.05 < 0.2 */
    s = fx_make("arbitrage", "{\"eta_round_trip\": 0.5, \"min_spread\": 0.2}");
    img.dev[0].soc = 0.5;
    fx_decide(s, &img, 6 * H, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    fx_decide(s, &img, 18 * H, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    strategy_free(s);
    sitectx_free(&ctx);
}

static void test_budget(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, ctx_json), 0);
    /* 0.001 cycles of 10 kWh = 10 Wh a day */
    struct strategy *s = fx_make("arbitrage", "{\"cycles_per_day\": 0.001}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 0);
    img.ctx = &ctx;
    img.dev[0].power_w = 5000;
    for (int k = 0; k <= 10; k++)
        fx_decide(s, &img, 18 * H + k * 1000, &dm); /* 10 s at 5 kW = 13.9 Wh */
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/budget");
    fx_decide(s, &img, 30 * H, &dm); /* the next day: trading again (06:00, buy) */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/buy");
    strategy_free(s);
    sitectx_free(&ctx);
    char err[256];
    cJSON *o = cJSON_Parse("{\"soc_min\": 0.9, \"soc_max\": 0.5}");
    CU_ASSERT_PTR_NULL(strategy_new("arbitrage", o, "params", err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "params.soc_min: must be below soc_max (0.5), got 0.9");
    cJSON_Delete(o);
}

void test_register_strat_arbitrage(void)
{
    CU_pSuite s = CU_add_suite("strat_arbitrage", NULL, NULL);
    CU_add_test(s, "buy and sell", test_buy_sell);
    CU_add_test(s, "cycle budget", test_budget);
}
