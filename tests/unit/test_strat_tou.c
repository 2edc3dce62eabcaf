/* Unit tests for the TimeOfUse strategy (gateway/strat_tou.c): bands, weekday/weekend, the
 * round-trip rule and saving energy for the dearer band. */
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "strat_fixture.h"

#define H (3600 * 1000LL)

/* 2026-01-16 is a Friday. */
static const char *ctx_json =
    "{\"start\": \"2026-01-16T00:00:00Z\", \"tariff\": {\"import\": {\"type\": \"tou\", "
    "\"weekday\": [{\"from\": \"00:00\", \"to\": \"07:00\", \"price\": 0.18},"
    "{\"from\": \"07:00\", \"to\": \"17:00\", \"price\": 0.32},"
    "{\"from\": \"17:00\", \"to\": \"21:00\", \"price\": 0.40},"
    "{\"from\": \"21:00\", \"to\": \"24:00\", \"price\": 0.32}],"
    "\"weekend\": [{\"from\": \"00:00\", \"to\": \"24:00\", \"price\": 0.25}]}}}";

static void test_bands(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, ctx_json), 0);
    struct strategy *s = fx_make("time_of_use", "{\"charge_power_w\": 2500, \"expected_load_w\": "
                                                "1000, \"eta_round_trip\": 0.9}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.3, 500);
    img.ctx = &ctx;
    /* Friday 03:00, the cheap band, and 0.40 x 0.9 > 0.18: charge */
    fx_decide(s, &img, 3 * H, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), -2500.0);
    CU_ASSERT_EQUAL(dm.req[0].source, DSRC_SCHEDULED);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/charge");
    /* full */
    img.dev[0].soc = 0.96;
    fx_decide(s, &img, 3 * H + 60000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/full");
    /* 08:00 at 0.32: 0.32 x 0.9 - 0.18 pays; 8.6 kWh stored > 4 h x 1 kW for the evening */
    double w = fx_loop(s, &img, 800, 30, 8 * H, &dm);
    CU_ASSERT(fabs(w - 800) < 20);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/discharge");
    /* 08:00 with 3 kWh above the floor: kept for 17:00-21:00 */
    img.dev[0].soc = 0.4;
    fx_decide(s, &img, 8 * H + 120000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/save_for_peak");
    /* 18:00 at 0.40, the dearest: discharge */
    w = fx_loop(s, &img, 800, 30, 18 * H, &dm);
    CU_ASSERT(w > 700);
    /* Saturday noon, flat 0.25: a cycle would lose, hold */
    img.dev[0].soc = 0.8;
    fx_decide(s, &img, 36 * H, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/hold");
    strategy_free(s);
    sitectx_free(&ctx);
}

/* Without a calendar or a tariff: no price, hold. */
static void test_no_price(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("time_of_use", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 500);
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/no_price");
    strategy_free(s);
}

/* A spread the losses eat: 0.20 x 0.9 - 0.18 < 0.02, so neither charge nor discharge. */
static void test_round_trip(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(
        fx_ctx(&ctx, "{\"start\": \"2026-01-16T00:00:00Z\", \"tariff\": {\"import\": {\"type\": "
                     "\"tou\", \"weekday\": [{\"from\": \"00:00\", \"to\": \"12:00\", \"price\": "
                     "0.18}, {\"from\": \"12:00\", \"to\": \"24:00\", \"price\": 0.20}]}}}"),
        0);
    struct strategy *s = fx_make("time_of_use", "{\"eta_round_trip\": 0.9, \"min_spread\": 0.02}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 500);
    img.ctx = &ctx;
    fx_decide(s, &img, 3 * H, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    fx_decide(s, &img, 14 * H, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/hold");
    strategy_free(s);
    sitectx_free(&ctx);
}

void test_register_strat_tou(void)
{
    CU_pSuite s = CU_add_suite("strat_tou", NULL, NULL);
    CU_add_test(s, "bands", test_bands);
    CU_add_test(s, "no price", test_no_price);
    CU_add_test(s, "round trip", test_round_trip);
}
