/* bench_planner: wall time of one plan of the `planner` strategy (gateway/strategies/
 * strat_planner.c: the rolling-horizon LP, solved once per slot) for a household with PV, a
 * time-of-use tariff with feed-in and a demand charge, at 15-minute slots over 24 h and 48 h
 * horizons: the strategy is stepped from slot boundary to slot boundary over two days, so every
 * call solves. Figures only, no target (the solve runs once per slot, 900 s apart; a few
 * milliseconds is far inside the cycle budget). A failed plan makes the exit status 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/rtclock.h"
#include "gateway/control/decision.h"
#include "gateway/control/procimg.h"
#include "gateway/control/sitectx.h"
#include "gateway/strategies/strategy.h"

#define SLOT_MS 900000LL
#define DAYS    4

static cJSON *site_json(int demand)
{
    cJSON *root =
        cJSON_Parse("{\"start\": \"2026-06-15T00:00:00Z\", \"tariff\": {"
                    "\"import\": {\"type\": \"tou\", \"weekday\": ["
                    "{\"from\": \"00:00\", \"to\": \"07:00\", \"price\": 0.18},"
                    "{\"from\": \"07:00\", \"to\": \"17:00\", \"price\": 0.32},"
                    "{\"from\": \"17:00\", \"to\": \"21:00\", \"price\": 0.40},"
                    "{\"from\": \"21:00\", \"to\": \"24:00\", \"price\": 0.32}],"
                    "\"weekend\": [{\"from\": \"00:00\", \"to\": \"24:00\", \"price\": 0.25}]},"
                    "\"export\": {\"type\": \"series\", \"points\": [[\"0s\", 0.08]]}}}");
    if (!root)
        return NULL;
    if (demand)
        cJSON_AddItemToObject(cJSON_GetObjectItem(root, "tariff"), "demand_charge",
                              cJSON_Parse("{\"price_per_kw\": 12}"));
    cJSON *fc = cJSON_AddObjectToObject(root, "forecast");
    cJSON_AddStringToObject(fc, "step", "15m");
    cJSON *arr = cJSON_AddArrayToObject(fc, "net_load_w");
    for (int k = 0; k < DAYS * 96; k++) {
        double h = (k % 96) / 4.0;
        double load = 400 + 1500 * exp(-pow((h - 19) / 2, 2)) + 600 * exp(-pow((h - 7.5) / 1.2, 2));
        double pv = 6000 * pow(fmax(0, cos((h - 13) * M_PI / 12)), 1.5);
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(round(load - pv)));
    }
    return root;
}

static int bench(const char *label, const char *horizon, int demand)
{
    char err[256];
    struct sitectx ctx;
    cJSON *root = site_json(demand);
    if (!root || sitectx_parse(&ctx, root, err, sizeof err)) {
        fprintf(stderr, "bench_planner: site: %s\n", root ? err : "out of memory");
        cJSON_Delete(root);
        return 1;
    }
    cJSON_Delete(root);
    char params[160];
    snprintf(params, sizeof params, "{\"horizon\": \"%s\", \"export_limit_w\": 4000}", horizon);
    cJSON *pj = cJSON_Parse(params);
    struct strategy *st = strategy_new("planner", pj, "params", err, sizeof err);
    cJSON_Delete(pj);
    if (!st) {
        fprintf(stderr, "bench_planner: %s\n", err);
        sitectx_free(&ctx);
        return 1;
    }
    struct procimg img;
    memset(&img, 0, sizeof img);
    img.ctx = &ctx;
    img.n_devices = 2;
    img.grid_ok = 1;
    img.grid_w = 500;
    img.dev[0] = (struct procimg_dev){.type = PROCIMG_METER_GRID, .online = 1, .power_w = 500};
    img.dev[1] = (struct procimg_dev){.type = PROCIMG_BATTERY,
                                      .online = 1,
                                      .soc = 0.5,
                                      .capacity_wh = 10000,
                                      .max_charge_w = 5000,
                                      .max_discharge_w = 5000,
                                      .temperature_c = NAN,
                                      .voltage_v = NAN};
    int n = 0, failed = 0;
    double sum_us = 0, max_us = 0;
    for (int64_t t = 0; t < 2 * 86400000LL; t += SLOT_MS) {
        img.now_ms = t;
        struct decision dm;
        decision_init(&dm, &img, NULL);
        int64_t t0 = rtclock_monotonic_us();
        strategy_decide(st, &img, t, &dm);
        double us = (double)(rtclock_monotonic_us() - t0);
        failed |= strstr(dm.strategy, "no_plan") != NULL;
        sum_us += us;
        max_us = fmax(max_us, us);
        n++;
        img.dev[1].soc = 0.3 + 0.4 * (double)(n % 7) / 7.0; /* a plan from another state */
    }
    printf("%-34s plans=%d mean=%.2f ms max=%.2f ms%s\n", label, n, sum_us / n / 1000,
           max_us / 1000, failed ? " (a plan failed)" : "");
    strategy_free(st);
    sitectx_free(&ctx);
    return failed;
}

int main(void)
{
    int rc = 0;
    rc |= bench("planner 24 h, 96 slots", "1d", 0);
    rc |= bench("planner 24 h, 96 slots, demand", "1d", 1);
    rc |= bench("planner 48 h, 192 slots", "2d", 0);
    rc |= bench("planner 48 h, 192 slots, demand", "2d", 1);
    return rc;
}
