/* Unit tests for the Arbitrage strategy (gateway/strategies/strat_arbitrage.c): buying in cheap and
 * selling in dear slots, the spread after losses, two cycles for two peaks, steering to the
 * planned energy, and the daily cycle budget. */
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
    /* the cheap slot: the plan fills 4.5 kWh within the hour, 4.5 / sqrt(0.9) = 4.74 kW */
    fx_decide(s, &img, 6 * H, &dm);
    CU_ASSERT_DOUBLE_EQUAL(strategy_site_request(&dm, NULL), -4743.4, 0.1);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/buy");
    img.dev[0].soc = 0.95; /* full at noon: nothing better than the evening to sell into */
    fx_decide(s, &img, 12 * H, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/idle");
    fx_decide(s, &img, 18 * H, &dm); /* the peak: full power */
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
    fx_decide(s, &img, 30 * H, &dm); /* the next day: a fresh budget */
    CU_ASSERT_STRING_NOT_EQUAL(dm.strategy, "arbitrage/budget");
    strategy_free(s);
    sitectx_free(&ctx);
    char err[256];
    cJSON *o = cJSON_Parse("{\"soc_min\": 0.9, \"soc_max\": 0.5}");
    CU_ASSERT_PTR_NULL(strategy_new("arbitrage", o, "params", err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "params.soc_min: must be below soc_max (0.5), got 0.9");
    cJSON_Delete(o);
}

/* Two peaks a day with a cheap valley between them: the plan sells into the first, smaller
 * peak because it can refill in the valley before the second (a threshold on the day's
 * dearest hours would wait for the evening), and buys in the valley, not in the dearer
 * morning hours before it. */
static const char *two_peaks_json =
    "{\"start\": \"2026-05-12T00:00:00Z\", \"tariff\": {\"import\": {\"type\": \"series\", "
    "\"repeat\": \"1d\", \"points\": [[\"0h\", 0.10], [\"6h\", 0.30], [\"8h\", 0.12], "
    "[\"12h\", 0.05], [\"14h\", 0.12], [\"18h\", 0.40], [\"20h\", 0.15]]}}}";

static void test_two_peaks(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, two_peaks_json), 0);
    struct strategy *s = fx_make("arbitrage", "{\"power_w\": 5000, \"scan_step\": \"1h\", "
                                              "\"min_spread\": 0.01, \"cycles_per_day\": 2}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.95, 0);
    img.ctx = &ctx;
    fx_decide(s, &img, 6 * H, &dm); /* morning peak, full: sell at full power */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/sell");
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 5000.0);
    img.dev[0].soc = 0.1;
    fx_decide(s, &img, 9 * H, &dm); /* empty at 0.12: wait for the valley */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/idle");
    fx_decide(s, &img, 12 * H, &dm); /* the valley: buy */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/buy");
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), -5000.0);
    CU_ASSERT(dm.target_w < -4000 && dm.target_w >= -5000.0);
    img.dev[0].soc = 0.95;
    fx_decide(s, &img, 18 * H, &dm); /* evening peak */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/sell");
    strategy_free(s);
    /* one cycle a day: the budget goes to the better, evening peak, not the first one */
    s = fx_make("arbitrage", "{\"power_w\": 5000, \"scan_step\": \"1h\", \"min_spread\": 0.01, "
                             "\"cycles_per_day\": 1}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    img.dev[0].soc = 0.95;
    fx_decide(s, &img, 6 * H, &dm);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/idle");
    fx_decide(s, &img, 18 * H, &dm);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/sell");
    strategy_free(s);
    sitectx_free(&ctx);
}

/* Near the end of a slot the request is what still reaches the planned energy by the slot's
 * end, never more than power_w; a site without prices gets no request. */
static void test_steer_and_no_price(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, two_peaks_json), 0);
    struct strategy *s = fx_make("arbitrage", "{\"power_w\": 5000, \"scan_step\": \"1h\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.945, 0); /* 9.45 kWh: 50 Wh short of soc_max */
    img.ctx = &ctx;
    fx_decide(s, &img, 13 * H + 30 * 60000, &dm); /* valley, half an hour left */
    double w = strategy_site_request(&dm, NULL);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/buy");
    CU_ASSERT(w < -50 && w > -200); /* about 50 Wh / 0.95 over 0.5 h */
    strategy_free(s);
    sitectx_free(&ctx);
    s = fx_make("arbitrage", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 0);
    img.ctx = NULL;
    fx_decide(s, &img, 6 * H, &dm);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "arbitrage/no_price");
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    strategy_free(s);
}

void test_register_strat_arbitrage(void)
{
    CU_pSuite s = CU_add_suite("strat_arbitrage", NULL, NULL);
    CU_add_test(s, "buy and sell", test_buy_sell);
    CU_add_test(s, "cycle budget", test_budget);
    CU_add_test(s, "two peaks, two cycles", test_two_peaks);
    CU_add_test(s, "steering and no price", test_steer_and_no_price);
}
