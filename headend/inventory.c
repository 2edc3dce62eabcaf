/* inventory: the assets file. Format (docs/operations.md):
 *   {"sites": [{"site_id": "s1", "gateways": ["gw-1"], "group": "vpp-north",
 *               "assets": [{"asset_id": "s1-bat", "type": "battery", "capacity_wh": 10000,
 *                           "min_power_w": -5000, "max_power_w": 5000}]}]}
 * Unknown keys are errors (a typo must not silently drop a limit). "group" is optional. Asset
 * ids are unique across sites: a simulated fleet names its replicas' assets "<site id>:<id>"
 * (docs/scenario-format.md, "Fleets"), so the headend keys assets by id alone. */
#include "headend/inventory.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/devtype.h"
#include "headend/ident.h"
#include "headend/strmap.h"

struct inventory {
    struct inv_site *sites;
    size_t n_sites;
    struct inv_asset *assets;
    size_t n_assets;
    struct strmap *site_by_id;
    struct strmap *asset_by_id;
};

/* An asset's type is kept as the wire's AssetType value; names and values come from the one
 * list of device types (common/devtype.h). */
const char *inventory_type_name(int type)
{
    for (int i = 0; i < DEVTYPE_COUNT; i++)
        if (devtype_proto(i) == type)
            return devtype_json(i);
    return "unspecified";
}

static int check_keys(const cJSON *obj, const char *const *allowed, const char *where, char *err,
                      size_t errlen)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= !strcmp(*a, it->string);
        if (!ok) {
            snprintf(err, errlen, "%s: unknown key '%s'", where, it->string);
            return -EINVAL;
        }
    }
    return 0;
}

static int get_id(const cJSON *obj, const char *key, char *dst, const char *where, char *err,
                  size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v) || !v->valuestring[0]) {
        snprintf(err, errlen, "%s: '%s' must be a non-empty string", where, key);
        return -EINVAL;
    }
    if (strlen(v->valuestring) >= INV_ID_MAX) {
        snprintf(err, errlen, "%s: '%s' longer than %d bytes", where, key, INV_ID_MAX - 1);
        return -EINVAL;
    }
    strcpy(dst, v->valuestring);
    return 0;
}

static int get_num(const cJSON *obj, const char *key, double def, double *dst, const char *where,
                   char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *dst = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        snprintf(err, errlen, "%s: '%s' must be a finite number", where, key);
        return -EINVAL;
    }
    *dst = v->valuedouble;
    return 0;
}

static int parse_asset(struct inventory *inv, const cJSON *ja, size_t site, char *err,
                       size_t errlen)
{
    static const char *const keys[] = {"asset_id",    "type",        "capacity_wh",
                                       "min_power_w", "max_power_w", NULL};
    char where[128];
    snprintf(where, sizeof(where), "sites[%zu].assets", site);
    if (!cJSON_IsObject(ja)) {
        snprintf(err, errlen, "%s: each asset must be an object", where);
        return -EINVAL;
    }
    int rc;
    if ((rc = check_keys(ja, keys, where, err, errlen)) < 0)
        return rc;
    struct inv_asset *a = &inv->assets[inv->n_assets];
    memset(a, 0, sizeof(*a));
    if ((rc = get_id(ja, "asset_id", a->id, where, err, errlen)) < 0)
        return rc;
    snprintf(where, sizeof(where), "asset %s", a->id);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(ja, "type");
    if (t) {
        int found = -1;
        for (int i = 0; i < DEVTYPE_COUNT; i++)
            if (cJSON_IsString(t) && !strcmp(t->valuestring, devtype_json(i)))
                found = devtype_proto(i);
        if (found < 0) {
            snprintf(err, errlen, "%s: 'type' must be one of %s", where, DEVTYPE_NAMES);
            return -EINVAL;
        }
        a->type = found;
    }
    if ((rc = get_num(ja, "capacity_wh", 0, &a->capacity_wh, where, err, errlen)) < 0 ||
        (rc = get_num(ja, "min_power_w", 0, &a->min_power_w, where, err, errlen)) < 0 ||
        (rc = get_num(ja, "max_power_w", 0, &a->max_power_w, where, err, errlen)) < 0)
        return rc;
    if (a->min_power_w > a->max_power_w || a->capacity_wh < 0) {
        snprintf(err, errlen, "%s: min_power_w > max_power_w or capacity_wh < 0", where);
        return -EINVAL;
    }
    a->site = site;
    a->index = inv->n_assets;
    void *old;
    if (strmap_put(inv->asset_by_id, a->id, a, &old) < 0)
        return -ENOMEM;
    if (old) {
        const struct inv_asset *first = old;
        snprintf(err, errlen,
                 "%s: asset_id listed twice (first in site %s); asset ids are unique across "
                 "sites (a fleet's are \"<site id>:<asset id>\")",
                 where, inv->sites[first->site].id);
        return -EINVAL;
    }
    inv->n_assets++;
    return 0;
}

static int parse_site(struct inventory *inv, const cJSON *js, char *err, size_t errlen)
{
    static const char *const keys[] = {"site_id", "gateways", "assets", "group", NULL};
    size_t idx = inv->n_sites;
    struct inv_site *s = &inv->sites[idx];
    char where[96];
    snprintf(where, sizeof(where), "sites[%zu]", idx);
    if (!cJSON_IsObject(js)) {
        snprintf(err, errlen, "%s: must be an object", where);
        return -EINVAL;
    }
    int rc;
    if ((rc = check_keys(js, keys, where, err, errlen)) < 0 ||
        (rc = get_id(js, "site_id", s->id, where, err, errlen)) < 0)
        return rc;
    /* optional: the site's group (a VPP, a feeder), the target of a group dispatch; it
     * becomes a Prometheus label too, so no quote or backslash either */
    if (cJSON_GetObjectItemCaseSensitive(js, "group")) {
        char why[96];
        if ((rc = get_id(js, "group", s->group, s->id, err, errlen)) < 0)
            return rc;
        if (ident_valid(s->group, strlen(s->group), why, sizeof(why)) < 0 ||
            strpbrk(s->group, "\"\\")) {
            snprintf(err, errlen, "site %s: 'group' %s", s->id,
                     strpbrk(s->group, "\"\\") ? "contains a quote or a backslash" : why);
            return -EINVAL;
        }
    }
    s->index = idx;
    inv->n_sites++; /* counted now so that inventory_free releases its arrays */
    const cJSON *gws = cJSON_GetObjectItemCaseSensitive(js, "gateways");
    if (!cJSON_IsArray(gws) || cJSON_GetArraySize(gws) == 0) {
        snprintf(err, errlen, "site %s: 'gateways' must be a non-empty array of ids", s->id);
        return -EINVAL;
    }
    s->gateways = calloc((size_t)cJSON_GetArraySize(gws), INV_ID_MAX);
    if (!s->gateways)
        return -ENOMEM;
    const cJSON *g;
    cJSON_ArrayForEach(g, gws)
    {
        char w2[96];
        snprintf(w2, sizeof(w2), "site %s: gateways", s->id);
        if (!cJSON_IsString(g) || !g->valuestring[0] || strlen(g->valuestring) >= INV_ID_MAX) {
            snprintf(err, errlen, "%s: each gateway id must be a string of 1..%d bytes", w2,
                     INV_ID_MAX - 1);
            return -EINVAL;
        }
        strcpy(s->gateways[s->n_gateways++], g->valuestring);
    }
    const cJSON *as = cJSON_GetObjectItemCaseSensitive(js, "assets");
    if (!cJSON_IsArray(as)) {
        snprintf(err, errlen, "site %s: 'assets' must be an array", s->id);
        return -EINVAL;
    }
    s->assets = calloc((size_t)cJSON_GetArraySize(as) + 1, sizeof(size_t));
    if (!s->assets)
        return -ENOMEM;
    const cJSON *ja;
    cJSON_ArrayForEach(ja, as)
    {
        if ((rc = parse_asset(inv, ja, idx, err, errlen)) < 0)
            return rc;
        s->assets[s->n_assets++] = inv->n_assets - 1;
    }
    void *old;
    if (strmap_put(inv->site_by_id, s->id, s, &old) < 0)
        return -ENOMEM;
    if (old) {
        snprintf(err, errlen, "site %s: site_id listed twice", s->id);
        return -EINVAL;
    }
    return 0;
}

int inventory_parse(const char *json, struct inventory **out, char *err, size_t errlen)
{
    *out = NULL;
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        snprintf(err, errlen, "invalid JSON near byte %ld",
                 cJSON_GetErrorPtr() ? (long)(cJSON_GetErrorPtr() - json) : -1L);
        return -EINVAL;
    }
    int rc = -ENOMEM;
    struct inventory *inv = calloc(1, sizeof(*inv));
    if (!inv)
        goto fail;
    inv->site_by_id = strmap_new();
    inv->asset_by_id = strmap_new();
    if (!inv->site_by_id || !inv->asset_by_id)
        goto fail;
    static const char *const keys[] = {"sites", NULL};
    const cJSON *sites = cJSON_GetObjectItemCaseSensitive(root, "sites");
    if (cJSON_IsObject(root) && (rc = check_keys(root, keys, "top level", err, errlen)) < 0)
        goto fail;
    if (!cJSON_IsObject(root) || !cJSON_IsArray(sites)) {
        snprintf(err, errlen, "top level: an object with 'sites', an array");
        rc = -EINVAL;
        goto fail;
    }
    size_t n_sites = (size_t)cJSON_GetArraySize(sites), n_assets = 0;
    const cJSON *js;
    cJSON_ArrayForEach(js, sites)
    {
        const cJSON *as = cJSON_GetObjectItemCaseSensitive(js, "assets");
        n_assets += cJSON_IsArray(as) ? (size_t)cJSON_GetArraySize(as) : 0;
    }
    rc = -ENOMEM;
    inv->sites = calloc(n_sites + 1, sizeof(*inv->sites));
    inv->assets = calloc(n_assets + 1, sizeof(*inv->assets));
    if (!inv->sites || !inv->assets)
        goto fail;
    cJSON_ArrayForEach(js, sites)
    {
        if ((rc = parse_site(inv, js, err, errlen)) < 0)
            goto fail;
    }
    cJSON_Delete(root);
    *out = inv;
    return 0;
fail:
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    cJSON_Delete(root);
    inventory_free(inv);
    return rc;
}

int inventory_load(const char *path, struct inventory **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "%s: out of memory", path);
                return -ENOMEM;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = 0;
    char inner[256];
    int rc = inventory_parse(buf, out, inner, sizeof(inner));
    free(buf);
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, inner);
    return rc;
}

void inventory_free(struct inventory *inv)
{
    if (!inv)
        return;
    for (size_t i = 0; i < inv->n_sites; i++) {
        free(inv->sites[i].gateways);
        free(inv->sites[i].assets);
    }
    free(inv->sites);
    free(inv->assets);
    strmap_free(inv->site_by_id);
    strmap_free(inv->asset_by_id);
    free(inv);
}

size_t inventory_site_count(const struct inventory *inv)
{
    return inv->n_sites;
}

size_t inventory_asset_count(const struct inventory *inv)
{
    return inv->n_assets;
}

const struct inv_site *inventory_site_at(const struct inventory *inv, size_t i)
{
    return i < inv->n_sites ? &inv->sites[i] : NULL;
}

const struct inv_asset *inventory_asset_at(const struct inventory *inv, size_t i)
{
    return i < inv->n_assets ? &inv->assets[i] : NULL;
}

const char *inventory_site_group(const struct inventory *inv, size_t i)
{
    return i < inv->n_sites ? inv->sites[i].group : "";
}

const struct inv_site *inventory_site(const struct inventory *inv, const char *id)
{
    return id ? strmap_get(inv->site_by_id, id) : NULL;
}

const struct inv_asset *inventory_asset(const struct inventory *inv, const char *id)
{
    return id ? strmap_get(inv->asset_by_id, id) : NULL;
}

int inventory_check_gateway(const struct inventory *inv, const char *gateway_id,
                            const char *site_id, char *reason, size_t len)
{
    const struct inv_site *s = inventory_site(inv, site_id);
    if (!s) {
        snprintf(reason, len, "unknown site %s", site_id && site_id[0] ? site_id : "(empty)");
        return -ENOENT;
    }
    for (size_t i = 0; i < s->n_gateways; i++)
        if (!strcmp(s->gateways[i], gateway_id))
            return 0;
    snprintf(reason, len, "gateway %s is not allowed to serve site %s",
             gateway_id && gateway_id[0] ? gateway_id : "(empty)", s->id);
    return -EPERM;
}

int inventory_check_claim(const struct inventory *inv, const char *gateway_id, const char *site_id,
                          const char *asset_id, char *reason, size_t len)
{
    int rc = inventory_check_gateway(inv, gateway_id, site_id, reason, len);
    if (rc < 0)
        return rc;
    const struct inv_asset *a = inventory_asset(inv, asset_id);
    if (!a) {
        snprintf(reason, len, "unknown asset %s", asset_id && asset_id[0] ? asset_id : "(empty)");
        return -ENOENT;
    }
    const struct inv_site *own = &inv->sites[a->site];
    if (strcmp(own->id, site_id) != 0) {
        snprintf(reason, len, "asset %s belongs to site %s, not %s", a->id, own->id, site_id);
        return -EPERM;
    }
    return 0;
}
