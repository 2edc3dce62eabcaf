/* sitecfg: see sitecfg.h. */
#include "sim/sitecfg.h"

#include <stdio.h>
#include <string.h>

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
    cJSON_AddStringToObject(root, "poll_period", duration_format(sc->step_ms, period, sizeof period));
    cJSON_AddItemToObject(root, "devices", devs);
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
