/* inventory: see inventory.h. The asset limits are the ratings the gateway is configured
 * with (sitecfg.c): a battery from -max charge to +max discharge, PV up to its peak, an EVSE
 * up to its maximum current on its phases at 230 V, a boiler up to its rating; a meter has no
 * power range. */
#include "sim/run/inventory.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sim_inventory_gateway_id(const struct site_cfg *c, char *buf, size_t len)
{
    snprintf(buf, len, "gw-%s", c->id);
}

static cJSON *asset_json(const struct site_cfg *c, const struct asset_cfg *a)
{
    char uid[SCN_ID_MAX];
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "asset_id", scenario_asset_uid(c, a->id, uid));
    cJSON_AddStringToObject(o, "type", asset_type_name(a->type));
    double lo = 0, hi = 0;
    switch (a->type) {
    case ASSET_BATTERY:
        cJSON_AddNumberToObject(o, "capacity_wh", a->u.battery.capacity_wh);
        lo = -a->u.battery.max_charge_w;
        hi = a->u.battery.max_discharge_w;
        break;
    case ASSET_PV:
        hi = a->u.pv.peak_w;
        break;
    case ASSET_EVSE:
        hi = a->u.evse.max_current_a * 230.0 * a->u.evse.phases;
        break;
    case ASSET_BOILER:
        hi = a->u.boiler.rated_w;
        break;
    default:
        break;
    }
    cJSON_AddNumberToObject(o, "min_power_w", lo);
    cJSON_AddNumberToObject(o, "max_power_w", hi);
    return o;
}

static cJSON *site_json(const struct site_cfg *c)
{
    char gw[SCN_ID_MAX + 8];
    cJSON *s = cJSON_CreateObject(), *g, *as;
    if (!s || !cJSON_AddStringToObject(s, "site_id", c->id) ||
        (c->group[0] && !cJSON_AddStringToObject(s, "group", c->group)) ||
        !(g = cJSON_AddArrayToObject(s, "gateways")) ||
        !(as = cJSON_AddArrayToObject(s, "assets"))) {
        cJSON_Delete(s);
        return NULL;
    }
    sim_inventory_gateway_id(c, gw, sizeof gw);
    cJSON_AddItemToArray(g, cJSON_CreateString(gw));
    for (size_t k = 0; k < c->n_assets; k++) {
        if (c->assets[k].type == ASSET_LOAD) /* no register image, no device */
            continue;
        cJSON *o = asset_json(c, &c->assets[k]);
        if (!o) {
            cJSON_Delete(s);
            return NULL;
        }
        cJSON_AddItemToArray(as, o);
    }
    return s;
}

/* An asset id as the headend sees it, with its site (for the error). */
struct owned {
    const char *id;
    const struct site_cfg *site;
    size_t order; /* (site, asset) position: ties sort the same way every time */
};

static int cmp_owned(const void *a, const void *b)
{
    const struct owned *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* Namespaced ids are unique by construction ("<unique site id>:..." and a written id has no
 * ':'); the written ids of the other sites are sorted and compared with their neighbours. */
static int check_unique(const struct scenario *sc, char *err, size_t errlen)
{
    size_t n = 0;
    for (size_t i = 0; i < sc->n_sites; i++)
        n += sc->sites[i].namespaced ? 0 : sc->sites[i].n_assets;
    struct owned *v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "inventory: out of memory");
        return -ENOMEM;
    }
    n = 0;
    for (size_t i = 0; i < sc->n_sites; i++)
        for (size_t k = 0; !sc->sites[i].namespaced && k < sc->sites[i].n_assets; k++)
            if (sc->sites[i].assets[k].type != ASSET_LOAD) {
                v[n] = (struct owned){sc->sites[i].assets[k].id, &sc->sites[i], n};
                n++;
            }
    qsort(v, n, sizeof *v, cmp_owned);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++)
        if (!strcmp(v[i - 1].id, v[i].id)) {
            snprintf(err, errlen,
                     "%s: asset id \"%s\" is in sites %s and %s; the headend needs asset ids "
                     "unique across sites (a replicated site's are: docs/scenario-format.md)",
                     sc->path, v[i].id, v[i - 1].site->id, v[i].site->id);
            rc = -EINVAL;
        }
    free(v);
    return rc;
}

cJSON *sim_inventory_json(const struct scenario *sc, char *err, size_t errlen)
{
    if (check_unique(sc, err, errlen))
        return NULL;
    cJSON *root = cJSON_CreateObject(), *sites = cJSON_AddArrayToObject(root, "sites");
    for (size_t i = 0; sites && i < sc->n_sites; i++) {
        cJSON *s = site_json(&sc->sites[i]);
        if (!s)
            break;
        cJSON_AddItemToArray(sites, s);
    }
    if (!sites || (size_t)cJSON_GetArraySize(sites) != sc->n_sites) {
        cJSON_Delete(root);
        snprintf(err, errlen, "inventory: out of memory");
        return NULL;
    }
    return root;
}

int sim_inventory_write(const struct scenario *sc, const char *path, char *err, size_t errlen)
{
    cJSON *root = sim_inventory_json(sc, err, errlen);
    if (!root)
        return -EINVAL;
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    char tmp[4096];
    int rc = !text                                                          ? -ENOMEM
             : snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp ? -ENAMETOOLONG
                                                                            : 0;
    if (rc) {
        free(text);
        snprintf(err, errlen, "inventory: %s: %s", path, strerror(-rc));
        return rc;
    }
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f))
        ok = 0;
    int e = errno;
    free(text);
    if (!ok || rename(tmp, path) < 0) {
        e = ok ? errno : e;
        unlink(tmp);
        snprintf(err, errlen, "inventory: cannot write %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}
