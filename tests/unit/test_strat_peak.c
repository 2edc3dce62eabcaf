/* Unit tests for the PeakShaving strategy (gateway/strategies/strat_peak.c) on hand-built images.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "strat_fixture.h"

static void test_shave_and_recharge(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s =
        fx_make("peak_shaving", "{\"import_limit_w\": 5000, \"margin_w\": 100, "
                                "\"recharge_below_w\": 3000, \"recharge_soc\": 0.9}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 0);
    /* 8 kW of load: the battery takes everything above 4.9 kW */
    double w = fx_loop(s, &img, 8000, 60, 0, &dm);
    CU_ASSERT(fabs(w - 3100) < 30);
    CU_ASSERT(fabs(img.grid_w - 4900) < 40);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "peak_shaving/shave");
    CU_ASSERT_EQUAL(dm.target_w, 4900.0);
    /* 2 kW: recharge up to the 3 kW threshold, not beyond */
    w = fx_loop(s, &img, 2000, 60, 100000, &dm);
    CU_ASSERT(fabs(w + 1000) < 30);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "peak_shaving/recharge");
    /* full: hold */
    img.dev[0].soc = 0.95;
    w = fx_loop(s, &img, 2000, 3, 200000, &dm);
    CU_ASSERT_EQUAL(w, 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "peak_shaving/hold");
    /* no grid meter: 0 W */
    img.grid_ok = 0;
    fx_decide(s, &img, 300000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    strategy_free(s);
}

/* With a 15-minute window the target is what is left of the window's budget. */
static void test_window_budget(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, "{\"start\": \"2026-03-03T00:00:00Z\"}"), 0);
    struct strategy *s = fx_make("peak_shaving", "{\"import_limit_w\": 5000, \"margin_w\": 0, "
                                                 "\"window\": \"15m\", \"recharge_below_w\": 0}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 10000);
    img.ctx = &ctx;
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT(fabs(dm.target_w - 5000) < 1e-6); /* nothing used yet: the limit */
    for (int k = 1; k <= 450; k++)
        fx_decide(s, &img, k * 1000, &dm); /* the battery never follows: 10 kW for 7.5 min */
    CU_ASSERT(fabs(dm.target_w) < 1e-6);   /* the budget is spent */
    fx_decide(s, &img, 900000, &dm);       /* a new window */
    CU_ASSERT(fabs(dm.target_w - 5000) < 1e-6);
    strategy_free(s);
    sitectx_free(&ctx);
}

static void test_check_and_constraint(void)
{
    char err[256];
    cJSON *o = cJSON_Parse("{\"import_limit_w\": 3000, \"recharge_below_w\": 4000}");
    CU_ASSERT_PTR_NULL(strategy_new("peak_shaving", o, "params", err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "params.recharge_below_w: must not exceed import_limit_w (3000), "
                                "got 4000");
    cJSON_Delete(o);
    /* as a constraint: a charge request that would push the import over the limit is cut */
    struct strategy *s = fx_make("charge", "{\"power_w\": 5000}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    cJSON *c = cJSON_Parse("[{\"strategy\": \"peak_shaving\", \"params\": {\"import_limit_w\": "
                           "4000, \"margin_w\": 0, \"recharge_below_w\": 0}}]");
    CU_ASSERT_EQUAL(strategy_add_constraints(s, c, "constraints", err, sizeof err), 0);
    cJSON_Delete(c);
    struct procimg img;
    struct decision dm;
    fx_site(&img, 0.5, 1000);
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), -3000.0);
    CU_ASSERT_EQUAL(dm.n_clamps, 1);
    CU_ASSERT_EQUAL(dm.clamp[0].reason, DC_PEAK_LIMIT);
    CU_ASSERT_STRING_EQUAL(decision_reason_name(DC_PEAK_LIMIT), "peak_limit");
    CU_ASSERT_STRING_EQUAL(dm.strategy, "charge");
    strategy_free(s);
}

/* With a demand charge the limit follows the billing period's running peak: once a 15-minute
 * window closed at 8 kW, holding 5 kW earns nothing; limit and recharge threshold move up. */
static void test_running_peak(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(fx_ctx(&ctx, "{\"start\": \"2026-03-03T00:00:00Z\", \"tariff\": "
                                       "{\"demand_charge\": {\"price_per_kw\": 12}}}"),
                          0);
    struct strategy *s = fx_make("peak_shaving", "{\"import_limit_w\": 5000, \"margin_w\": 0, "
                                                 "\"recharge_below_w\": 3000}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 8000);
    img.ctx = &ctx;
    for (int k = 0; k < 900; k++)
        fx_decide(s, &img, k * 1000, &dm); /* the battery never follows: 8 kW for 15 min */
    CU_ASSERT(fabs(dm.target_w - 5000) < 1e-6);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "peak_shaving/shave");
    fx_grid(&img, 7000);
    fx_decide(s, &img, 900000, &dm); /* the window closed at 8 kW: the period's peak */
    CU_ASSERT(fabs(dm.target_w - 8000) < 1);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "peak_shaving/hold");
    fx_grid(&img, 5500); /* under 3 kW + the 3 kW lift: recharge */
    fx_decide(s, &img, 901000, &dm);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "peak_shaving/recharge");
    strategy_free(s);
    /* a new month starts from import_limit_w again */
    s = fx_make("peak_shaving", "{\"import_limit_w\": 5000, \"margin_w\": 0}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int64_t eom = (int64_t)29 * 86400000 - 900000; /* 2026-03-31T23:45 */
    fx_grid(&img, 8000);
    for (int k = 0; k < 900; k++)
        fx_decide(s, &img, eom + k * 1000, &dm);
    fx_decide(s, &img, eom + 900000, &dm);
    CU_ASSERT(fabs(dm.target_w - 5000) < 1e-6);
    strategy_free(s);
    sitectx_free(&ctx);
}

/* Outside the demand charge's time windows the batteries recharge and do not shave, alone or
 * as a constraint. */
static void test_unbilled_windows(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    CU_ASSERT_EQUAL_FATAL(
        fx_ctx(&ctx, "{\"start\": \"2026-03-03T00:00:00Z\", \"tariff\": {\"demand_charge\": "
                     "{\"price_per_kw\": 12, \"windows\": [{\"from\": \"07:00\", \"to\": "
                     "\"20:00\", \"days\": \"weekdays\"}]}}}"),
        0);
    struct strategy *s = fx_make("peak_shaving", "{\"import_limit_w\": 5000, \"margin_w\": 0, "
                                                 "\"recharge_power_w\": 2500}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.5, 8000);
    img.ctx = &ctx;
    fx_decide(s, &img, 0, &dm); /* 00:00 on a Tuesday: not billed */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "peak_shaving/recharge_unbilled");
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), -2500.0);
    img.dev[0].soc = 0.95;
    fx_decide(s, &img, 1000, &dm);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "peak_shaving/hold_unbilled");
    fx_decide(s, &img, (int64_t)7 * 3600000, &dm); /* 07:00: billed */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "peak_shaving/shave");
    strategy_free(s);
    /* as a constraint: a charge that would push the import over the limit passes at night */
    char err[256];
    s = fx_make("charge", "{\"power_w\": 5000}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    cJSON *c = cJSON_Parse("[{\"strategy\": \"peak_shaving\", \"params\": {\"import_limit_w\": "
                           "4000, \"margin_w\": 0, \"recharge_below_w\": 0}}]");
    CU_ASSERT_EQUAL(strategy_add_constraints(s, c, "constraints", err, sizeof err), 0);
    cJSON_Delete(c);
    fx_site(&img, 0.5, 1000);
    img.ctx = &ctx;
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), -5000.0);
    fx_decide(s, &img, (int64_t)8 * 3600000, &dm); /* 08:00: held to the limit */
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), -3000.0);
    strategy_free(s);
    sitectx_free(&ctx);
}

/* The gateway's site configuration takes the demand charge as a scenario site does (one
 * parser, common/tariff.c) and names the bad field and value. */
static void test_gateway_demand_charge(void)
{
    struct sitectx ctx;
    char err[256] = "";
    cJSON *o = cJSON_Parse("{\"tariff\": {\"demand_charge\": {\"price_per_kw\": 12, "
                           "\"period\": \"week\"}}}");
    CU_ASSERT_EQUAL(sitectx_parse(&ctx, o, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "tariff.demand_charge.period: must be \"month\" or \"run\", got "
                                "\"week\"");
    sitectx_free(&ctx);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"tariff\": {\"demand_charge\": {\"price_per_kw\": 12, \"windows\": "
                    "[{\"from\": \"07:00\", \"to\": \"20:00\", \"days\": \"weekdays\"}]}}}");
    CU_ASSERT_EQUAL_FATAL(sitectx_parse(&ctx, o, err, sizeof err), 0);
    CU_ASSERT_EQUAL(ctx.charges.demand_per_kw, 12.0);
    CU_ASSERT_EQUAL(ctx.charges.n_windows, 1);
    sitectx_free(&ctx);
    cJSON_Delete(o);
}

void test_register_strat_peak(void)
{
    CU_pSuite s = CU_add_suite("strat_peak", NULL, NULL);
    CU_add_test(s, "shave and recharge", test_shave_and_recharge);
    CU_add_test(s, "window budget", test_window_budget);
    CU_add_test(s, "check and constraint", test_check_and_constraint);
    CU_add_test(s, "running peak of the billing period", test_running_peak);
    CU_add_test(s, "outside the demand charge's windows", test_unbilled_windows);
    CU_add_test(s, "demand charge in the gateway configuration", test_gateway_demand_charge);
}
