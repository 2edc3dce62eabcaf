/* sitecfg: see sitecfg.h. */
#include "sim/sitecfg.h"

#include <stdio.h>
#include <string.h>

#include "gateway/caltime.h"
#include "gateway/duration.h"

static const char *driver_for(enum asset_type t)
{
    switch (t) {
    case ASSET_EVSE:
        return "derloop-evse";
    case ASSET_BOILER:
        return "derloop-boiler";
    default:
        return "sunspec";
    }
}

static cJSON *device_json(const struct sim_asset *a, const char *host, int port)
{
    const struct asset_cfg *c = a->cfg;
    cJSON *d = cJSON_CreateObject();
    if (!d)
        return NULL;
    cJSON_AddStringToObject(d, "asset_id", c->id);
    cJSON_AddStringToObject(d, "type", asset_type_name(c->type));
    if (c->type == ASSET_METER)
        cJSON_AddStringToObject(d, "role", c->u.meter.role == METER_LOAD ? "load" : "grid");
    cJSON_AddStringToObject(d, "driver", driver_for(c->type));
    cJSON_AddStringToObject(d, "host", host);
    cJSON_AddNumberToObject(d, "port", port);
    cJSON_AddNumberToObject(d, "unit_id", c->unit_id);
    switch (c->type) {
    case ASSET_BATTERY:
        cJSON_AddNumberToObject(d, "capacity_wh", c->u.battery.capacity_wh);
        cJSON_AddNumberToObject(d, "max_charge_w", c->u.battery.max_charge_w);
        cJSON_AddNumberToObject(d, "max_discharge_w", c->u.battery.max_discharge_w);
        break;
    case ASSET_PV:
        cJSON_AddNumberToObject(d, "peak_w", c->u.pv.peak_w);
        break;
    case ASSET_EVSE:
        cJSON_AddNumberToObject(d, "min_current_a", c->u.evse.min_current_a);
        cJSON_AddNumberToObject(d, "max_current_a", c->u.evse.max_current_a);
        cJSON_AddNumberToObject(d, "phases", c->u.evse.phases);
        break;
    case ASSET_BOILER:
        cJSON_AddNumberToObject(d, "rated_w", c->u.boiler.rated_w);
        break;
    default:
        break;
    }
    return d;
}

/* "HH:MM" of a minute of the day (to may be 1440: "24:00"). */
static void hhmm(int minute, char *buf, size_t len)
{
    snprintf(buf, len, "%02d:%02d", minute / 60, minute % 60);
}

static cJSON *bands_json(const struct tou_band *b, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        char from[16], to[16];
        hhmm(b[i].from_min, from, sizeof from);
        hhmm(b[i].to_min, to, sizeof to);
        cJSON *o = cJSON_CreateObject();
        if (!o) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddStringToObject(o, "from", from);
        cJSON_AddStringToObject(o, "to", to);
        cJSON_AddNumberToObject(o, "price", b[i].price);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* A price profile as the gateway's tariff (gateway/sitectx.h): the same bands, or the same
 * points as durations since the start (the gateway's "start" is the scenario's). */
static cJSON *tariff_json(const struct profile *p)
{
    cJSON *t = cJSON_CreateObject();
    if (!t)
        return NULL;
    char d[40];
    if (p->kind == PROFILE_TOU) {
        cJSON_AddStringToObject(t, "type", "tou");
        cJSON_AddItemToObject(t, "weekday", bands_json(p->weekday, p->n_weekday));
        cJSON_AddItemToObject(t, "weekend", bands_json(p->weekend, p->n_weekend));
        return t;
    }
    cJSON_AddStringToObject(t, "type", "series");
    cJSON_AddStringToObject(t, "interpolation", p->interp == INTERP_STEP ? "step" : "linear");
    if (p->period_ms > 0)
        cJSON_AddStringToObject(t, "repeat", duration_format(p->period_ms, d, sizeof d));
    cJSON *pts = cJSON_AddArrayToObject(t, "points");
    for (size_t i = 0; pts && i < p->n; i++) {
        if (i + 1 < p->n && p->t_ms[i + 1] <= 0)
            continue; /* points before the start: only the last of them matters, at 0s */
        int64_t at = p->t_ms[i] < 0 ? 0 : p->t_ms[i];
        cJSON *pt = cJSON_CreateArray();
        if (!pt)
            break;
        cJSON_AddItemToArray(pt, cJSON_CreateString(duration_format(at, d, sizeof d)));
        cJSON_AddItemToArray(pt, cJSON_CreateNumber(p->v[i]));
        cJSON_AddItemToArray(pts, pt);
    }
    return t;
}

/* The calendar, the tariffs and the EV departures the strategies read (docs/gateway-config.md):
 * "start" = the scenario's start, "tariff" from the site's import_price/export_price profiles,
 * "ev_departures" from each EVSE's sessions (a user tells the gateway when the car leaves; the
 * charger itself does not know). */
static int inputs_json(cJSON *root, const struct scenario *sc, struct site *site)
{
    const struct site_cfg *cfg = site_cfg(site);
    char buf[32];
    cJSON_AddStringToObject(root, "start", caltime_format(sc->start_unix_ms, buf, sizeof buf));
    const struct profile *prices[2] = {cfg->import_price, cfg->export_price};
    static const char *const names[2] = {"import", "export"};
    cJSON *tariff = NULL;
    for (int k = 0; k < 2; k++) {
        const struct profile *p = prices[k];
        if (!p || (p->kind != PROFILE_TOU && p->kind != PROFILE_SERIES))
            continue;
        if (!tariff && !(tariff = cJSON_AddObjectToObject(root, "tariff")))
            return -1;
        cJSON *t = tariff_json(p);
        if (!t)
            return -1;
        cJSON_AddItemToObject(tariff, names[k], t);
    }
    cJSON *deps = NULL;
    for (size_t k = 0; k < site_n_assets(site); k++) {
        const struct sim_asset *a = site_asset(site, k);
        if (!a->img || a->cfg->type != ASSET_EVSE || !a->cfg->u.evse.sessions)
            continue;
        const struct profile *ses = a->cfg->u.evse.sessions;
        for (size_t i = 0; i < ses->n_sessions; i++) {
            if (!deps && !(deps = cJSON_AddArrayToObject(root, "ev_departures")))
                return -1;
            cJSON *d = cJSON_CreateObject();
            if (!d)
                return -1;
            cJSON_AddStringToObject(d, "asset_id", a->cfg->id);
            cJSON_AddStringToObject(
                d, "at",
                caltime_format(sc->start_unix_ms + ses->sessions[i].depart_ms, buf, sizeof buf));
            cJSON_AddItemToArray(deps, d);
        }
    }
    return 0;
}

cJSON *sitecfg_json(const struct scenario *sc, struct site *site, const char *host, int port,
                    const char *writer)
{
    const struct site_cfg *cfg = site_cfg(site);
    char period[32], desc[256];
    cJSON *root = cJSON_CreateObject();
    cJSON *devs = cJSON_CreateArray();
    if (!root || !devs) {
        cJSON_Delete(root);
        cJSON_Delete(devs);
        return NULL;
    }
    snprintf(desc, sizeof desc, "written by %s for scenario %s", writer, sc->name);
    cJSON_AddStringToObject(root, "site_id", cfg->id);
    cJSON_AddStringToObject(root, "description", desc);
    cJSON_AddStringToObject(root, "poll_period",
                            duration_format(sc->step_ms, period, sizeof period));
    cJSON_AddItemToObject(root, "devices", devs);
    if (inputs_json(root, sc, site)) {
        cJSON_Delete(root);
        return NULL;
    }
    for (size_t k = 0; k < site_n_assets(site); k++) {
        const struct sim_asset *a = site_asset(site, k);
        if (!a->img)
            continue;
        cJSON *d = device_json(a, host, port);
        if (!d) {
            cJSON_Delete(root);
            return NULL;
        }
        cJSON_AddItemToArray(devs, d);
    }
    if (cJSON_IsObject(sc->gateway)) {
        for (const cJSON *it = sc->gateway->child; it; it = it->next) {
            cJSON *copy = cJSON_Duplicate(it, 1);
            if (!copy) {
                cJSON_Delete(root);
                return NULL;
            }
            if (cJSON_GetObjectItemCaseSensitive(root, it->string))
                cJSON_ReplaceItemInObjectCaseSensitive(root, it->string, copy);
            else
                cJSON_AddItemToObject(root, it->string, copy);
        }
    }
    return root;
}
