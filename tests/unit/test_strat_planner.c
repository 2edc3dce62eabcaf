/* Unit tests for the Planner strategy (gateway/strategies/strat_planner.c) and the gateway's
 * forecast (gateway/control/forecast.c): the forecast's forms and errors, slot means, a plan
 * that charges in the cheap night and covers the dear evening, the demand charge's peak shaved,
 * and no plan without prices. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "gateway/control/forecast.h"
#include "sim/scenario/scenario.h"
#include "strat_fixture.h"

#define H (3600 * 1000LL)

static int parse(struct forecast *f, const char *json, char *err, size_t errlen)
{
    cJSON *o = cJSON_Parse(json);
    int rc = forecast_parse(f, o, "forecast", 1, 1781049600000LL, err, errlen);
    cJSON_Delete(o);
    return rc;
}

static void test_forecast(void)
{
    struct forecast f;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(
        parse(&f, "{\"step\": \"15m\", \"net_load_w\": [100, 300, -200]}", err, sizeof err), 0);
    CU_ASSERT_EQUAL(f.n, 3);
    CU_ASSERT_EQUAL(forecast_end_ms(&f), 45 * 60000);
    CU_ASSERT_DOUBLE_EQUAL(forecast_net_w(&f, 0, 900000), 100, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(forecast_net_w(&f, 450000, 1350000), 200, 1e-9); /* half and half */
    CU_ASSERT(isnan(forecast_net_w(&f, 0, 46 * 60000)));                    /* beyond its end */
    forecast_free(&f);
    CU_ASSERT_NOT_EQUAL(parse(&f, "{\"step\": \"soon\", \"net_load_w\": [1]}", err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "forecast.step: must be a duration"));
    CU_ASSERT_NOT_EQUAL(
        parse(&f, "{\"step\": \"15m\", \"net_load_w\": [1, \"x\"]}", err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "forecast.net_load_w[1]: must be a number"));
    CU_ASSERT_NOT_EQUAL(parse(&f, "{\"stepp\": \"15m\"}", err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "forecast.stepp: unknown key"));

    /* the CSV form: ISO instants against the start, evenly spaced */
    char path[] = "/tmp/derloop-forecast-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    fputs("time,net_load_w\n2026-06-10T00:15:00Z,500\n2026-06-10T00:30:00Z,700\n", fp);
    fclose(fp);
    char json[200];
    snprintf(json, sizeof json, "{\"file\": \"%s\"}", path);
    CU_ASSERT_EQUAL(parse(&f, json, err, sizeof err), 0);
    CU_ASSERT_EQUAL(f.t0_ms, 15 * 60000);
    CU_ASSERT_EQUAL(f.step_ms, 15 * 60000);
    CU_ASSERT_DOUBLE_EQUAL(forecast_net_w(&f, 15 * 60000, 45 * 60000), 600, 1e-9);
    forecast_free(&f);
    fp = fopen(path, "w");
    fputs("time,net_load_w\n0,1\n900,2\n2000,3\n", fp);
    fclose(fp);
    CU_ASSERT_NOT_EQUAL(parse(&f, json, err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":4: rows must be evenly spaced"));
    unlink(path);
}

/* A day: 0.18 until 07:00, 0.30 by day, 0.40 from 17:00 to 21:00; a flat 500 W forecast. */
static void site_ctx(struct sitectx *ctx, const char *extra, double evening_w)
{
    char json[4096];
    int n = snprintf(json, sizeof json,
                     "{\"start\": \"2026-06-10T00:00:00Z\", \"tariff\": {\"import\": {\"type\": "
                     "\"tou\", \"weekday\": [{\"from\": \"00:00\", \"to\": \"07:00\", \"price\": "
                     "0.18}, {\"from\": \"07:00\", \"to\": \"17:00\", \"price\": 0.30}, "
                     "{\"from\": \"17:00\", \"to\": \"21:00\", \"price\": 0.40}, {\"from\": "
                     "\"21:00\", \"to\": \"24:00\", \"price\": 0.30}]}%s}, \"forecast\": "
                     "{\"step\": \"15m\", \"net_load_w\": [",
                     extra);
    for (int k = 0; k < 2 * 96; k++)
        n += snprintf(json + n, sizeof json - (size_t)n, "%s%g", k ? ", " : "",
                      (k % 96) / 4 == 18 ? evening_w : 500.0);
    snprintf(json + n, sizeof json - (size_t)n, "]}}");
    CU_ASSERT_EQUAL_FATAL(fx_ctx(ctx, json), 0);
}

static void test_plan_tou(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    site_ctx(&ctx, "", 500);
    /* follow_grid false: the request is the plan's battery power itself */
    struct strategy *s = fx_make("planner", "{\"follow_grid\": false}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.2, 500);
    img.dev[0].max_charge_w = img.dev[0].max_discharge_w = 5000;
    img.ctx = &ctx;
    fx_decide(s, &img, 1 * H, &dm); /* the cheap night: charge at full power, early */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "planner/charge");
    CU_ASSERT_DOUBLE_EQUAL(strategy_site_request(&dm, NULL), -5000, 1);
    img.dev[0].soc = 0.9;
    fx_decide(s, &img, 18 * H, &dm); /* the dear evening: cover the load, export nothing */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "planner/discharge");
    CU_ASSERT_DOUBLE_EQUAL(strategy_site_request(&dm, NULL), 500, 1);
    strategy_free(s);
    sitectx_free(&ctx);

    s = fx_make("planner", NULL); /* no tariff: no plan, 0 W */
    fx_site(&img, 0.5, 500);
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "planner/no_plan");
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    strategy_free(s);
}

static void test_plan_demand(void)
{
    struct procimg img;
    struct decision dm;
    struct sitectx ctx;
    /* an 8 kW hour at 18:00 and a demand charge: the battery shaves it, holding the grid at the
     * plan's flat peak rather than covering the whole evening */
    site_ctx(&ctx, ", \"demand_charge\": {\"price_per_kw\": 20}", 8000);
    struct strategy *s = fx_make("planner", "{\"follow_grid\": false}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.6, 8000);
    img.dev[0].max_charge_w = img.dev[0].max_discharge_w = 5000;
    img.ctx = &ctx;
    fx_decide(s, &img, 18 * H, &dm);
    double w = strategy_site_request(&dm, NULL);
    CU_ASSERT(w >= 4000 && w <= 5000.5); /* 5 kW: the peak down to 3 kW */
    CU_ASSERT_STRING_EQUAL(dm.strategy, "planner/discharge");
    strategy_free(s);
    sitectx_free(&ctx);
}

/* The scenario's forecast section: its errors, and the forecast it hands to the gateway. */
static void test_scenario_forecast(void)
{
    const char *path = "scenarios/planner-stacked-noisy.json";
    char err[512];
    struct scenario *sc = NULL;
    const char *bad[] = {"forecast.quality=bogus"};
    CU_ASSERT_NOT_EQUAL(scenario_load(path, bad, 1, &sc, err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "forecast.quality: must be \"perfect\""));
    const char *q[] = {"forecast.quality=perfect", "forecast.quality=noisy",
                       "forecast.quality=persistence"};
    double first[3][2];
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(scenario_load(path, &q[i], 1, &sc, err, sizeof err), 0);
        int oom;
        for (int rep = 0; rep < 2; rep++) { /* the same twice: deterministic */
            cJSON *f = scenario_forecast_json(sc, 0, &oom);
            CU_ASSERT_PTR_NOT_NULL_FATAL(f);
            const cJSON *arr = cJSON_GetObjectItem(f, "net_load_w");
            CU_ASSERT_EQUAL(cJSON_GetArraySize(arr), 96); /* a day at 15 min, no horizon */
            double sum = 0;
            for (const cJSON *v = arr->child; v; v = v->next)
                sum += v->valuedouble;
            first[i][rep] = sum;
            cJSON_Delete(f);
        }
        CU_ASSERT_EQUAL(first[i][0], first[i][1]);
        scenario_free(sc);
    }
    CU_ASSERT_NOT_EQUAL(first[0][0], first[1][0]); /* noise moves it */
    CU_ASSERT_NOT_EQUAL(first[0][0], first[2][0]); /* yesterday had no car at 18:00 */
}

void test_register_strat_planner(void)
{
    CU_pSuite s = CU_add_suite("strat_planner", NULL, NULL);
    CU_add_test(s, "forecast", test_forecast);
    CU_add_test(s, "plan time of use", test_plan_tou);
    CU_add_test(s, "plan demand charge", test_plan_demand);
    CU_add_test(s, "scenario forecast", test_scenario_forecast);
}
