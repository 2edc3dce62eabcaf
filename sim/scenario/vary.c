/* vary: a site's "vary" block (docs/scenario-format.md, "Fleets"), which makes the replicas of
 * a site a fleet rather than N clones. It is checked once against the site as written, then
 * applied to a copy of the site's JSON object for each replica, before that copy is parsed like
 * any site: a varied value is judged by exactly the rules of a written one.
 *
 * Every drawn value has its own random stream, named "<replica id>/vary/<asset id or ->/<key>"
 * under the scenario seed: the same seed gives the same fleet, and adding a key to the block
 * (or an asset to the site) never changes the values drawn for the others. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/physics/rng.h"
#include "sim/scenario/sections.h"

/* Site-level keys a block may vary (besides "assets"): the group and the tariff. */
static const char *const site_keys[] = {"group", "import_price", "export_price", "assets", NULL};

/* A value spec: [a, b, ...] (one drawn per replica), {"cycle": [a, b, ...]} (replica k gets
 * the k-th, round robin) or {"min": x, "max": y[, "step": s]} (uniform, on the step grid). */
static int check_spec(struct scn_ld *L, const cJSON *v, const char *path)
{
    static const char *const range_keys[] = {"min", "max", "step", "cycle", NULL};
    char p[SCN_PATH_MAX];
    int rc;
    if (cJSON_IsArray(v))
        return cJSON_GetArraySize(v) > 0 ? 0 : scn_fail(L, path, v, "a list must not be empty");
    if (!cJSON_IsObject(v))
        return scn_fail(L, path, v,
                        "must be a list of values, {\"cycle\": [...]} or {\"min\": x, \"max\": y}");
    if ((rc = scn_check_keys(L, v, path, range_keys, NULL)))
        return rc;
    const cJSON *cyc = scn_item(v, "cycle");
    if (cyc) {
        if (cJSON_GetArraySize(v) != 1)
            return scn_fail(L, path, v, "\"cycle\" takes no other key");
        if (!cJSON_IsArray(cyc) || cJSON_GetArraySize(cyc) < 1)
            return scn_fail(L, scn_pkey(p, path, "cycle"), cyc, "must be a non-empty list");
        return 0;
    }
    double lo, hi, step;
    if ((rc = scn_get_num(L, v, path, "min", 0, 0, 0, B_REQ, &lo)) ||
        (rc = scn_get_num(L, v, path, "max", 0, lo, 0, B_REQ | B_MIN, &hi)) ||
        (rc = scn_get_num(L, v, path, "step", 0, 0, 0, B_MIN | B_MINX, &step)))
        return rc;
    return 0;
}

/* Keys of a free-form object (asset ids, parameter names): only duplicates are refused. */
static int no_dups(struct scn_ld *L, const cJSON *obj, const char *path)
{
    for (const cJSON *c = obj->child; c; c = c->next)
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (!strcmp(d->string, c->string))
                return scn_fail(L, path, NULL, "duplicate key \"%s\"", c->string);
    return 0;
}

static const cJSON *asset_by_id(const cJSON *assets, const char *id)
{
    for (const cJSON *a = assets ? assets->child : NULL; a; a = a->next) {
        const cJSON *j = scn_item(a, "id");
        if (cJSON_IsString(j) && !strcmp(j->valuestring, id))
            return a;
    }
    return NULL;
}

int scn_vary_check(struct scn_ld *L, const cJSON *vary, const cJSON *site, const char *path)
{
    char p[SCN_PATH_MAX], ap[SCN_PATH_MAX], kp[SCN_PATH_MAX];
    int rc;
    if ((rc = scn_need_object(L, vary, path)) ||
        (rc = scn_check_keys(L, vary, path, site_keys, NULL)))
        return rc;
    if (scn_item(vary, "group") && scn_item(site, "group"))
        return scn_fail(L, scn_pkey(p, path, "group"), scn_item(vary, "group"),
                        "the site has a \"group\" already: give one or the other");
    for (const cJSON *k = vary->child; k; k = k->next)
        if (strcmp(k->string, "assets") && (rc = check_spec(L, k, scn_pkey(p, path, k->string))))
            return rc;
    const cJSON *assets = scn_item(vary, "assets");
    if (!assets)
        return 0;
    scn_pkey(ap, path, "assets");
    if ((rc = scn_need_object(L, assets, ap)) || (rc = no_dups(L, assets, ap)))
        return rc;
    for (const cJSON *a = assets->child; a; a = a->next) {
        scn_pkey(p, ap, a->string);
        if (!asset_by_id(scn_item(site, "assets"), a->string))
            return scn_fail(L, p, NULL, "no asset \"%s\" in this site", a->string);
        if ((rc = scn_need_object(L, a, p)) || (rc = no_dups(L, a, p)))
            return rc;
        for (const cJSON *k = a->child; k; k = k->next) {
            scn_pkey(kp, p, k->string);
            if (!strcmp(k->string, "id") || !strcmp(k->string, "type") ||
                !strcmp(k->string, "unit_id"))
                return scn_fail(L, kp, NULL, "an asset's id, type and unit id cannot vary");
            if ((rc = check_spec(L, k, kp)))
                return rc;
        }
    }
    return 0;
}

/* Replica k's value of a checked spec, drawn from the stream `stream`. */
static cJSON *draw(const cJSON *spec, uint64_t seed, const char *stream, int k)
{
    struct rng r;
    rng_seed(&r, seed, stream);
    if (cJSON_IsArray(spec)) {
        int n = cJSON_GetArraySize(spec), i = (int)(rng_uniform(&r) * n);
        return cJSON_Duplicate(cJSON_GetArrayItem(spec, i < n ? i : n - 1), 1);
    }
    const cJSON *cyc = scn_item(spec, "cycle");
    if (cyc)
        return cJSON_Duplicate(cJSON_GetArrayItem(cyc, k % cJSON_GetArraySize(cyc)), 1);
    double lo = scn_item(spec, "min")->valuedouble, hi = scn_item(spec, "max")->valuedouble;
    const cJSON *st = scn_item(spec, "step");
    double v;
    if (st) {
        double n = floor((hi - lo) / st->valuedouble + 1e-9) + 1; /* grid points in [lo, hi] */
        v = lo + floor(rng_uniform(&r) * n) * st->valuedouble;
    } else {
        v = lo + rng_uniform(&r) * (hi - lo);
    }
    /* 12 significant digits: 0.1 * 3 is written as 0.3, not 0.30000000000000004 */
    char buf[32];
    snprintf(buf, sizeof buf, "%.12g", v);
    return cJSON_CreateNumber(strtod(buf, NULL));
}

static int set_key(cJSON *obj, const char *key, cJSON *v)
{
    if (!v)
        return -ENOMEM;
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        return cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v) ? 0 : -ENOMEM;
    return cJSON_AddItemToObject(obj, key, v) ? 0 : -ENOMEM;
}

int scn_vary_apply(const cJSON *vary, cJSON *site, uint64_t seed, const char *site_id, int k)
{
    char stream[3 * SCN_ID_MAX + 16];
    int rc;
    for (const cJSON *s = vary->child; s; s = s->next) {
        if (strcmp(s->string, "assets")) {
            snprintf(stream, sizeof stream, "%s/vary/-/%s", site_id, s->string);
            if ((rc = set_key(site, s->string, draw(s, seed, stream, k))))
                return rc;
            continue;
        }
        for (const cJSON *a = s->child; a; a = a->next) {
            cJSON *obj = (cJSON *)asset_by_id(scn_item(site, "assets"), a->string);
            for (const cJSON *p = a->child; obj && p; p = p->next) {
                snprintf(stream, sizeof stream, "%s/vary/%s/%s", site_id, a->string, p->string);
                if ((rc = set_key(obj, p->string, draw(p, seed, stream, k))))
                    return rc;
            }
        }
    }
    return 0;
}
