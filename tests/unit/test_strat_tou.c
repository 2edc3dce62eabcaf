/* Unit tests for the TimeOfUse strategy (gateway/strategies/strat_tou.c): bands, weekday/weekend,
 * the round-trip rule, saving energy for the dearer band, and the consistency of the charge and
 * discharge rules: energy is bought only for a period in which it will be let out at a price
 * that pays the losses (the sweep of eta_round_trip on scenarios/time-of-use.json found it
 * charging on Friday night for an evening whose discharge it then refused, comparing with the
 * weekend's 0.25 instead). */
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

/* A spread the losses eat: 0.19 x 0.9 - 0.18 < 0.02, so no charge; and 0.19 beats the 0.18
 * ahead by less than min_spread, so the stored energy is kept too: hold. */
static void test_round_trip(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(
        fx_ctx(&ctx, "{\"start\": \"2026-01-16T00:00:00Z\", \"tariff\": {\"import\": {\"type\": "
                     "\"tou\", \"weekday\": [{\"from\": \"00:00\", \"to\": \"12:00\", \"price\": "
                     "0.18}, {\"from\": \"12:00\", \"to\": \"24:00\", \"price\": 0.19}]}}}"),
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

/* Sunk cost is sunk: at 0.21 no cycle pays (0.21 x 0.9 - 0.18 < 0.02, so the battery is never
 * refilled), but energy already stored earns 0.03 more now than at the 0.18 ahead: it covers
 * the load. Once empty, the cheap band does not refill it. */
static void test_sunk_cost(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(
        fx_ctx(&ctx, "{\"start\": \"2026-01-16T00:00:00Z\", \"tariff\": {\"import\": {\"type\": "
                     "\"tou\", \"weekday\": [{\"from\": \"00:00\", \"to\": \"12:00\", \"price\": "
                     "0.18}, {\"from\": \"12:00\", \"to\": \"24:00\", \"price\": 0.21}]}}}"),
        0);
    struct strategy *s = fx_make("time_of_use", "{\"eta_round_trip\": 0.9, \"min_spread\": 0.02}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 500);
    img.ctx = &ctx;
    double w = fx_loop(s, &img, 600, 30, 14 * H, &dm);
    CU_ASSERT(fabs(w - 600) < 20);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/discharge");
    img.dev[0].soc = 0.1;
    img.dev[0].power_w = 0;
    for (int64_t t = 24 * H; t < 36 * H; t += H / 4) {
        fx_decide(s, &img, t, &dm);
        CU_ASSERT(strategy_site_request(&dm, NULL) >= 0);
    }
    strategy_free(s);
    sitectx_free(&ctx);
}

/* (a) eta so low that no band pair pays (0.40 x 0.4 < 0.18): over Friday to Monday, at any
 * SoC, the strategy never charges. */
static void test_no_pair_pays(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, ctx_json), 0);
    struct strategy *s = fx_make("time_of_use", "{\"eta_round_trip\": 0.4, \"min_spread\": 0.02, "
                                                "\"expected_load_w\": 1200}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (int i = 0; i < 3; i++) {
        fx_site(&img, 0.1 + 0.4 * i, 500);
        img.ctx = &ctx;
        for (int64_t t = 0; t < 4 * 24 * H; t += H / 4) {
            fx_decide(s, &img, t, &dm);
            CU_ASSERT(strategy_site_request(&dm, NULL) >= 0);
            CU_ASSERT(!strstr(dm.strategy, "/charge"));
        }
    }
    strategy_free(s);
    sitectx_free(&ctx);
}

/* Decides once at now_ms with a fresh strategy and returns the site request (mode in dm). */
static double tou_once(const struct sitectx *ctx, const char *params, double soc, int64_t now_ms,
                       struct decision *dm)
{
    struct procimg img;
    struct strategy *s = fx_make("time_of_use", params);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, soc, 500);
    img.ctx = ctx;
    fx_decide(s, &img, now_ms, dm);
    double w = strategy_site_request(dm, NULL);
    strategy_free(s);
    return w;
}

/* (b) A charge only for what a later band pays for after losses. Friday 03:00 at 0.18: with
 * eta 0.6 only the 0.40 evening pays (0.40 x 0.6 - 0.18 = 0.06; 0.32 x 0.6 - 0.18 = 0.012 <
 * 0.02), 4 h x 1 kW: the charge stops at 0.1 + 4 kWh / 10 kWh = 0.5. With eta 0.75 the 0.32
 * bands pay too: up to charge_to_soc. With a hurdle the 0.40 band does not clear, no charge. A
 * paying band at the end of the look-ahead, with nothing known after it, pays for nothing yet:
 * the discharge rule would not let the energy out there (no cheaper price in sight after it). */
static void test_charge_pays(void)
{
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, ctx_json), 0);
    const char *eta06 =
        "{\"eta_round_trip\": 0.6, \"min_spread\": 0.02, \"expected_load_w\": 1000}";
    CU_ASSERT_EQUAL(tou_once(&ctx, eta06, 0.3, 3 * H, &dm), -3000.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/charge");
    CU_ASSERT_EQUAL(tou_once(&ctx, eta06, 0.52, 3 * H, &dm), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/full");
    const char *eta075 =
        "{\"eta_round_trip\": 0.75, \"min_spread\": 0.02, \"expected_load_w\": 1000}";
    CU_ASSERT_EQUAL(tou_once(&ctx, eta075, 0.52, 3 * H, &dm), -3000.0);
    CU_ASSERT_EQUAL(tou_once(&ctx, eta075, 0.96, 3 * H, &dm), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/full");
    CU_ASSERT_EQUAL(
        tou_once(&ctx, "{\"eta_round_trip\": 0.6, \"min_spread\": 0.07}", 0.3, 3 * H, &dm), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/hold");
    /* a 1 h look-ahead at 06:30 sees 0.18, 0.18, 0.32, 0.32: the 0.32 has no cheaper price
     * after it in sight, so it sells nothing yet and pays for no charge */
    CU_ASSERT_EQUAL(
        tou_once(&ctx, "{\"eta_round_trip\": 0.9, \"horizon\": \"1h\"}", 0.3, 6 * H + H / 2, &dm),
        0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/hold");
    sitectx_free(&ctx);
}

/* (c) The sweep's case, scenarios/time-of-use.json at eta 0.6: cheap Friday night, 0.32 and
 * 0.40 on Friday, a flat 0.25 weekend. The charge is for the 0.40 evening only (4 h x 1.2 kW),
 * and that evening the energy goes out: the weekend's 0.25 is no refill (nothing pays for a
 * charge at 0.25), so 0.40 only has to beat it. What is left at 21:00 covers the 0.32 load
 * (it would otherwise wait for a weekend at 0.25); the flat weekend holds and never charges. */
static void test_weekend(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, ctx_json), 0);
    const char *params = "{\"charge_power_w\": 2500, \"eta_round_trip\": 0.6, \"min_spread\": "
                         "0.02, \"expected_load_w\": 1200}";
    CU_ASSERT_EQUAL(tou_once(&ctx, params, 0.2, 3 * H, &dm), -2500.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/charge");
    /* 5 kWh above the floor is more than the 4.8 kWh the evening needs: no more */
    CU_ASSERT_EQUAL(tou_once(&ctx, params, 0.6, 3 * H, &dm), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/full");
    /* 08:00 at 0.32: 4.5 kWh is kept for the evening */
    CU_ASSERT_EQUAL(tou_once(&ctx, params, 0.55, 8 * H, &dm), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/save_for_peak");
    struct strategy *s = fx_make("time_of_use", params);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.55, 500);
    img.ctx = &ctx;
    double w = fx_loop(s, &img, 1500, 60, 18 * H, &dm);
    CU_ASSERT(fabs(w - 1500) < 25); /* within the loop's 20 W deadband */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/discharge");
    img.dev[0].soc = 0.3;
    w = fx_loop(s, &img, 900, 30, 22 * H, &dm);
    CU_ASSERT(fabs(w - 900) < 20);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/discharge");
    /* the weekend, Saturday and Sunday until Monday's 0.18 comes into sight: hold */
    img.dev[0].power_w = 0;
    for (int64_t t = 24 * H; t <= 48 * H; t += H / 4) {
        fx_decide(s, &img, t, &dm);
        CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
        CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/hold");
    }
    strategy_free(s);
    sitectx_free(&ctx);
}

/* Stored energy and the next refill. Sunday 21:30 at 0.25, with Monday's 0.18 night, its 0.40
 * evening and the 0.32 after it in sight: at eta 0.6 selling at 0.25 and buying back at 0.18
 * loses (0.15 < 0.18), so the energy is kept and Monday night charges only what is missing; at
 * eta 0.9 it pays (0.225 - 0.18 >= 0.02): the load is covered now. At 18:00 Monday's evening
 * is only partly in sight (nothing after it yet), so no refill is: the energy is kept for the
 * dearer Monday periods in sight. */
static void test_refill(void)
{
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, ctx_json), 0);
    const char *eta06 =
        "{\"eta_round_trip\": 0.6, \"min_spread\": 0.02, \"expected_load_w\": 1200}";
    CU_ASSERT_EQUAL(tou_once(&ctx, eta06, 0.5, 69 * H + H / 2, &dm), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/hold");
    CU_ASSERT_EQUAL(tou_once(&ctx, eta06, 0.5, 66 * H, &dm), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/save_for_peak");
    /* Monday 03:00: 0.1 + 4.8 kWh / 10 kWh = 0.58 */
    CU_ASSERT_EQUAL(tou_once(&ctx, eta06, 0.5, 75 * H, &dm), -3000.0);
    CU_ASSERT_EQUAL(tou_once(&ctx, eta06, 0.59, 75 * H, &dm), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/full");
    tou_once(&ctx, "{\"eta_round_trip\": 0.9, \"min_spread\": 0.02}", 0.5, 69 * H + H / 2, &dm);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "time_of_use/discharge");
    sitectx_free(&ctx);
}

void test_register_strat_tou(void)
{
    CU_pSuite s = CU_add_suite("strat_tou", NULL, NULL);
    CU_add_test(s, "bands", test_bands);
    CU_add_test(s, "no price", test_no_price);
    CU_add_test(s, "round trip", test_round_trip);
    CU_add_test(s, "sunk cost", test_sunk_cost);
    CU_add_test(s, "no band pair pays", test_no_pair_pays);
    CU_add_test(s, "charge only what pays", test_charge_pays);
    CU_add_test(s, "weekend", test_weekend);
    CU_add_test(s, "refill", test_refill);
}
