/* Hand-built process images and a small closed loop for the strategy tests
 * (tests/unit/test_strat_*.c). Header-only: each test file includes it once. */
#ifndef DERLOOP_TEST_STRAT_FIXTURE_H
#define DERLOOP_TEST_STRAT_FIXTURE_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "common/caltime.h"
#include "gateway/control/sitectx.h"
#include "gateway/strategies/strategy.h"

/* An empty site. */
static inline void fx_init(struct procimg *img)
{
    memset(img, 0, sizeof *img);
}

/* Adds a usable device with every optional reading NaN; returns its index. */
static inline int fx_add(struct procimg *img, enum procimg_type t, const char *id)
{
    int i = (int)img->n_devices++;
    struct procimg_dev *d = &img->dev[i];
    memset(d, 0, sizeof *d);
    snprintf(d->asset_id, sizeof d->asset_id, "%s", id);
    d->type = t;
    d->online = 1;
    d->power_w = 0;
    d->rated_w = d->soc = d->soc_min = d->soc_max = d->capacity_wh = NAN;
    d->temperature_c = d->voltage_v = d->max_charge_w = d->max_discharge_w = NAN;
    d->pv_available_w = d->pv_limit_w = d->evse_current_a = d->boiler_temperature_c = NAN;
    d->freq_hz = d->evse_min_a = d->evse_max_a = d->evse_session_wh = d->evse_need_wh = NAN;
    d->boiler_heat_demand = -1;
    return i;
}

/* A battery (10 kWh at soc) and a grid meter reading grid_w: devices 0 and 1. */
static inline void fx_site(struct procimg *img, double soc, double grid_w)
{
    fx_init(img);
    int b = fx_add(img, PROCIMG_BATTERY, "bat1");
    img->dev[b].soc = soc;
    img->dev[b].capacity_wh = 10000;
    int g = fx_add(img, PROCIMG_METER_GRID, "grid");
    img->dev[g].power_w = grid_w;
    img->grid_w = grid_w;
    img->grid_ok = 1;
}

static inline void fx_grid(struct procimg *img, double grid_w)
{
    for (size_t i = 0; i < img->n_devices; i++)
        if (img->dev[i].type == PROCIMG_METER_GRID)
            img->dev[i].power_w = grid_w;
    img->grid_w = grid_w;
    img->grid_ok = 1;
}

static inline struct strategy *fx_make(const char *name, const char *json)
{
    char err[256] = "";
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    struct strategy *s = strategy_new(name, o, "params", err, sizeof err);
    if (!s)
        fprintf(stderr, "fx_make %s: %s\n", name, err);
    cJSON_Delete(o);
    return s;
}

static inline int fx_decide(struct strategy *s, struct procimg *img, int64_t now_ms,
                            struct decision *dm)
{
    img->now_ms = now_ms;
    decision_init(dm, img, NULL);
    return strategy_decide(s, img, now_ms, dm);
}

/* The request for one asset (the last one), NaN when none. */
static inline double fx_asset_req(const struct decision *dm, int asset)
{
    double w = NAN;
    for (size_t k = 0; k < dm->n_requests; k++)
        if (dm->req[k].asset == asset)
            w = dm->req[k].power_w;
    return w;
}

/* A closed loop on the site of fx_site: the net load without batteries is base_w, the battery
 * delivers last cycle's site request (one cycle late, as with setpoint latency); runs `cycles`
 * one-second cycles from t0_ms and returns the last site request. */
static inline double fx_loop(struct strategy *s, struct procimg *img, double base_w, int cycles,
                             int64_t t0_ms, struct decision *dm)
{
    double battery = img->dev[0].power_w, w = 0;
    for (int k = 0; k < cycles; k++) {
        img->dev[0].power_w = battery;
        img->dev[0].has_prev_setpoint = k > 0;
        img->dev[0].prev_setpoint_w = battery;
        img->dev[0].prev_setpoint_ms = t0_ms + (int64_t)(k - 1) * 1000;
        fx_grid(img, base_w - battery);
        fx_decide(s, img, t0_ms + (int64_t)k * 1000, dm);
        w = strategy_site_request(dm, NULL);
        battery = w;
    }
    return w;
}

/* A calendar context starting at an ISO instant, optionally with JSON tariff/departures. */
static inline int fx_ctx(struct sitectx *ctx, const char *json)
{
    char err[256] = "";
    cJSON *o = cJSON_Parse(json);
    int rc = o ? sitectx_parse(ctx, o, err, sizeof err) : -1;
    if (rc)
        fprintf(stderr, "fx_ctx: %s\n", err);
    cJSON_Delete(o);
    return rc;
}

#endif
