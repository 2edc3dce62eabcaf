/* forecast: see forecast.h.
 *
 * The truth is what the site's uncontrolled assets do on their own: each load (its profile and
 * scale, without the measurement-scale noise), each PV array's available power (before any
 * curtailment) and each EVSE left at its default current, stepped through copies of the
 * simulator's own models every minute and averaged per slot. Boilers are not forecast (their
 * draw depends on the control). The errors of a noisy forecast are drawn per slot on the rng
 * streams "<site>/forecast/load" and "<site>/forecast/pv" of the site's seed. */
#include "sim/scenario/forecast.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/physics/evse.h"
#include "sim/physics/load.h"
#include "sim/physics/pv.h"
#include "sim/physics/rng.h"
#include "sim/scenario/field.h"
#include "sim/scenario/scenario.h"
#include "sim/scenario/sections.h"

#define DAY_MS   86400000LL
#define MODEL_MS 60000 /* the models' step for the truth */

const char *forecast_quality_name(enum forecast_quality q)
{
    switch (q) {
    case FORECAST_PERFECT:
        return "perfect";
    case FORECAST_PERSISTENCE:
        return "persistence";
    case FORECAST_NOISY:
        return "noisy";
    default:
        return NULL;
    }
}

int scn_parse_forecast(struct scn_ld *L, const cJSON *obj)
{
    static const char *const keys[] = {"quality", "error_pct", "phi", "step", "horizon", NULL};
    struct forecast_cfg *f = &L->s->forecast;
    memset(f, 0, sizeof *f);
    if (!obj)
        return 0;
    const char *q;
    int rc;
    if ((rc = scn_need_object(L, obj, "forecast")) ||
        (rc = scn_check_keys(L, obj, "forecast", keys, NULL)) ||
        (rc = scn_get_str(L, obj, "forecast", "quality", 1, &q)) ||
        (rc = scn_get_num(L, obj, "forecast", "error_pct", 10, 0, 500, B_MIN | B_MAX,
                          &f->error_pct)) ||
        (rc = scn_get_num(L, obj, "forecast", "phi", 0.9, 0, 1, B_MIN | B_MAX | B_MAXX, &f->phi)) ||
        (rc = scn_get_dur(L, obj, "forecast", "step", 900000, 60000, B_MIN, &f->step_ms)) ||
        (rc = scn_get_dur(L, obj, "forecast", "horizon", 0, 0, B_MIN, &f->horizon_ms)))
        return rc;
    for (int k = FORECAST_PERFECT; k <= FORECAST_NOISY; k++)
        if (!strcmp(q, forecast_quality_name((enum forecast_quality)k)))
            f->quality = (enum forecast_quality)k;
    if (f->quality == FORECAST_NONE)
        return scn_fail(L, "forecast.quality", scn_item(obj, "quality"),
                        "must be \"perfect\", \"persistence\" or \"noisy\"");
    if (f->step_ms % MODEL_MS || f->step_ms > DAY_MS || DAY_MS % f->step_ms)
        return scn_fail(L, "forecast.step", scn_item(obj, "step"),
                        "must be whole minutes dividing a day, e.g. \"15m\"");
    if (f->horizon_ms > 7 * DAY_MS)
        return scn_fail(L, "forecast.horizon", scn_item(obj, "horizon"), "must be at most 7d");
    return 0;
}

/* The truth's slot means of consumption (loads and EVSEs) and PV, from t0 on (n slots). */
static void truth(const struct site_cfg *sc, int64_t t0, int64_t step, size_t n, double *load,
                  double *pv)
{
    memset(load, 0, n * sizeof *load);
    memset(pv, 0, n * sizeof *pv);
    int64_t per = step / MODEL_MS;
    for (size_t a = 0; a < sc->n_assets; a++) {
        const struct asset_cfg *c = &sc->assets[a];
        struct load l;
        struct pv v;
        struct evse e;
        if (c->type == ASSET_LOAD) {
            struct load_params p = c->u.load;
            p.noise_sigma_w = 0;
            load_init(&l, &p, sc->seed, "forecast");
        } else if (c->type == ASSET_PV) {
            pv_init(&v, &c->u.pv);
        } else if (c->type == ASSET_EVSE) {
            evse_init(&e, &c->u.evse);
        } else {
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            double sum = 0;
            for (int64_t i = 0; i < per; i++) {
                int64_t t = t0 + (int64_t)k * step + i * MODEL_MS;
                if (c->type == ASSET_LOAD) {
                    load_step(&l, t, MODEL_MS);
                    sum += l.power_w;
                } else if (c->type == ASSET_PV) {
                    pv_step(&v, t, MODEL_MS);
                    sum += v.available_w;
                } else {
                    evse_step(&e, t, MODEL_MS);
                    sum += e.power_w;
                }
            }
            (c->type == ASSET_PV ? pv : load)[k] += sum / (double)per;
        }
    }
}

cJSON *scenario_forecast_json(const struct scenario *s, size_t site, int *oom)
{
    const struct forecast_cfg *f = &s->forecast;
    *oom = 0;
    if (f->quality == FORECAST_NONE || site >= s->n_sites)
        return NULL;
    const struct site_cfg *sc = &s->sites[site];
    size_t n = (size_t)((s->duration_ms + f->horizon_ms + f->step_ms - 1) / f->step_ms);
    size_t spd = (size_t)(DAY_MS / f->step_ms), m = n + spd; /* from a day before the start */
    double *load = malloc(m * sizeof *load), *pv = malloc(m * sizeof *pv);
    cJSON *obj = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    if (!load || !pv || !obj || !arr || !cJSON_AddNumberToObject(obj, "step", (double)f->step_ms)) {
        free(load);
        free(pv);
        cJSON_Delete(obj);
        cJSON_Delete(arr);
        *oom = 1;
        return NULL;
    }
    cJSON_AddItemToObject(obj, "net_load_w", arr);
    truth(sc, -DAY_MS, f->step_ms, m, load, pv);
    struct rng rl, rp;
    char stream[3 * SCN_ID_MAX];
    snprintf(stream, sizeof stream, "%s/forecast/load", sc->id);
    rng_seed(&rl, sc->seed, stream);
    snprintf(stream, sizeof stream, "%s/forecast/pv", sc->id);
    rng_seed(&rp, sc->seed, stream);
    double sig = f->error_pct / 100.0, el = 0, ep = 0, innov = sqrt(1 - f->phi * f->phi);
    for (size_t k = 0; k < n; k++) {
        size_t i = k + spd; /* today's slot in the arrays; i - spd is yesterday's */
        double net = load[i] - pv[i];
        if (f->quality == FORECAST_PERSISTENCE) {
            net = load[i - spd] - pv[i - spd];
        } else if (f->quality == FORECAST_NOISY) {
            double zl = rng_normal(&rl), zp = rng_normal(&rp);
            el = k ? f->phi * el + innov * sig * zl : sig * zl;
            ep = k ? f->phi * ep + innov * sig * zp : sig * zp;
            net = fmax(load[i] * (1 + el), 0) - fmax(pv[i] * (1 + ep), 0);
        }
        cJSON *v = cJSON_CreateNumber(round(net * 10) / 10);
        if (!v) {
            *oom = 1;
            break;
        }
        cJSON_AddItemToArray(arr, v);
    }
    free(load);
    free(pv);
    if (*oom) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}
