/* sitecfg: see sitecfg.h. */
#include "sim/run/sitecfg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/caltime.h"
#include "gateway/control/controller.h"
#include "common/duration.h"
#include "gateway/uplink/uplink.h"
#include "sim/wire/bus_inproc.h"

/* The gateway driver of a simulated device: its type's default (common/devtype.h). */
static const char *driver_for(enum asset_type t)
{
    const char *d = devtype_driver((int)t);
    return d ? d : "sunspec";
}

static cJSON *device_json(const struct site_cfg *site, const struct sim_asset *a, const char *host,
                          int port)
{
    const struct asset_cfg *c = a->cfg;
    char uid[SCN_ID_MAX];
    cJSON *d = cJSON_CreateObject();
    if (!d)
        return NULL;
    cJSON_AddStringToObject(d, "asset_id", scenario_asset_uid(site, c->id, uid));
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

/* A price profile as the gateway's tariff (gateway/control/sitectx.h): the same bands, or the same
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
 * "start" = the scenario's start, "tariff" from the site's import_price/export_price profiles
 * and its standing and demand charges,
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
    /* the standing and demand charges, as the scenario's site "tariff" wrote them */
    if (cfg->charges.standing_per_day > 0 || cfg->charges.demand_per_kw > 0) {
        if (!tariff && !(tariff = cJSON_AddObjectToObject(root, "tariff")))
            return -1;
        if (tariff_charges_json(&cfg->charges, tariff))
            return -1;
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
            char uid[SCN_ID_MAX];
            cJSON_AddStringToObject(d, "asset_id", scenario_asset_uid(cfg, a->cfg->id, uid));
            cJSON_AddStringToObject(
                d, "at",
                caltime_format(sc->start_unix_ms + ses->sessions[i].depart_ms, buf, sizeof buf));
            cJSON_AddItemToArray(deps, d);
        }
    }
    /* the scenario's forecast of this site's net load (sim/scenario/forecast.h), inline */
    int oom;
    cJSON *fc = scenario_forecast_json(sc, (size_t)(cfg - sc->sites), &oom);
    if (oom)
        return -1;
    if (fc)
        cJSON_AddItemToObject(root, "forecast", fc);
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
        cJSON *d = device_json(cfg, a, host, port);
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

int sitecfg_siteconf(const struct scenario *sc, struct site *site, int port, struct siteconf **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    cJSON *json = sitecfg_json(sc, site, "127.0.0.1", port, "der-sim run");
    char *text = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    if (!text) {
        snprintf(err, errlen, "%s: gateway (site %s): out of memory", sc->path, site_cfg(site)->id);
        return -ENOMEM;
    }
    char origin[600];
    snprintf(origin, sizeof origin, "%s: gateway (site %s)", sc->path, site_cfg(site)->id);
    int rc = siteconf_parse(text, origin, out, err, errlen);
    free(text);
    return rc;
}

/* The check's stand-in for every device's bus: the controller only keeps it, and nothing
 * polls it before the controller is freed again. */
static struct bus *idle_bus(void *ctx, const struct device_cfg *d, char *err, size_t errlen)
{
    (void)d;
    (void)err;
    (void)errlen;
    return ctx;
}

static void no_log(void *ctx, const char *line)
{
    (void)ctx;
    (void)line;
}

/* One site's configuration through the constructors that validate it at start: the
 * controller (as runner.c builds it) and the uplink section (as gateway/main.c loads it). */
static int check_conf(const struct siteconf *conf, struct bus *bus, char *err, size_t errlen)
{
    struct controller_opts co = {.open_bus = idle_bus, .bus_ctx = bus, .log = no_log};
    char sub[800];
    struct controller *ctl = controller_new(conf, &co, sub, sizeof sub);
    if (!ctl) {
        snprintf(err, errlen, "%s", sub);
        return -EINVAL;
    }
    controller_free(ctl);
    struct uplink_cfg uc;
    if (uplink_cfg_load(conf->uplink, "uplink", &uc, sub, sizeof sub) != 0) {
        snprintf(err, errlen, "%s: %s", conf->path, sub);
        return -EINVAL;
    }
    return 0;
}

int sitecfg_check(const struct scenario *sc, char *err, size_t errlen)
{
    struct bus *bus = NULL;
    int rc = bus_inproc_new(NULL, &bus);
    if (rc) {
        snprintf(err, errlen, "%s: in-process bus: %s", sc->path, strerror(-rc));
        return rc;
    }
    for (size_t i = 0; i < sc->n_sites && !rc; i++) {
        struct site *site = site_new(sc, i, err, errlen);
        if (!site) {
            rc = -EINVAL;
            break;
        }
        struct siteconf *conf;
        /* port 1 as in the runner's in-process runs: no socket is ever opened */
        rc = sitecfg_siteconf(sc, site, 1, &conf, err, errlen);
        if (!rc)
            rc = check_conf(conf, bus, err, errlen);
        siteconf_free(conf);
        site_free(site);
    }
    bus_close(bus);
    return rc;
}
