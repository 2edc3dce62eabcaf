/* arbiter: see arbiter.h.
 *
 * Priority classes are walked from the top. Within a class, asset requests go first (the most
 * specific command wins: `asset_id` over `site_id`, as for headend dispatch), and among several
 * requests of one class for the same target the last one added wins (the newest command).
 * A site request in a class covers only the batteries still unclaimed, and its whole amount is
 * split among them: an operator who sets one battery by hand takes it out of the site's
 * pool, the others still deliver what the site was asked for, as far as their limits allow.
 * Batteries that are offline or stale are not in the pool (they will be held at 0 W by
 * safety), so the others take their share. */
#include "gateway/control/arbiter.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "gateway/control/split.h"

const struct param_field arbiter_fields[] = {
    {"split_resolution_w", PARAM_DOUBLE, offsetof(struct arbiter_cfg, split_resolution_w), 1, 0,
     1e4, "W", "rounding unit of the site split among batteries (0 = none)"},
    {"soc_horizon_s", PARAM_DOUBLE, offsetof(struct arbiter_cfg, soc_horizon_s), 3600, 60, 604800,
     "s", "soc_balance: the time over which the batteries' SoCs are driven together"},
    {"evse", PARAM_BOOL, offsetof(struct arbiter_cfg, with_evse), 0, 0, 1, "",
     "chargers take what the batteries cannot of a site request to import more"},
    {"boiler", PARAM_BOOL, offsetof(struct arbiter_cfg, with_boiler), 0, 0, 1, "",
     "boilers take what the batteries and chargers cannot of a site request to import more"},
    {"pv_curtailment", PARAM_BOOL, offsetof(struct arbiter_cfg, with_pv), 0, 0, 1, "",
     "PV is curtailed for what is left of a site request to export less"},
};
const size_t arbiter_n_fields = sizeof arbiter_fields / sizeof arbiter_fields[0];

static int load_priority(const cJSON *pr, const char *path, struct arbiter_cfg *cfg, char *err,
                         size_t errlen)
{
    if (!cJSON_IsArray(pr)) {
        snprintf(err, errlen, "%s.priority: must be an array of asset ids", path);
        return -EINVAL;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, pr)
    {
        if (!cJSON_IsString(it) || !it->valuestring[0] ||
            strlen(it->valuestring) >= PROCIMG_ID_LEN) {
            snprintf(err, errlen, "%s.priority[%zu]: must be an asset id (a non-empty string)",
                     path, cfg->n_priority);
            return -EINVAL;
        }
        for (size_t k = 0; k < cfg->n_priority; k++)
            if (!strcmp(cfg->priority[k], it->valuestring)) {
                snprintf(err, errlen, "%s.priority[%zu]: %s is listed twice", path, cfg->n_priority,
                         it->valuestring);
                return -EINVAL;
            }
        if (cfg->n_priority == PROCIMG_MAX_DEVICES) {
            snprintf(err, errlen, "%s.priority: more than %d ids", path, PROCIMG_MAX_DEVICES);
            return -EINVAL;
        }
        snprintf(cfg->priority[cfg->n_priority++], PROCIMG_ID_LEN, "%s", it->valuestring);
    }
    return 0;
}

int arbiter_cfg_load(const cJSON *obj, const char *path, struct arbiter_cfg *cfg, char *err,
                     size_t errlen)
{
    /* "policy" and "priority" are not numbers: they are read here, the rest by param_load
     * from a copy without them */
    cJSON *rest = obj ? cJSON_Duplicate(obj, 1) : NULL;
    if (obj && !rest) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    cJSON *pol = rest ? cJSON_DetachItemFromObjectCaseSensitive(rest, "policy") : NULL;
    cJSON *pr = rest ? cJSON_DetachItemFromObjectCaseSensitive(rest, "priority") : NULL;
    int rc = param_load(arbiter_fields, arbiter_n_fields, rest, path, cfg, err, errlen);
    cfg->policy = SPLIT_POLICY_CAPACITY;
    cfg->n_priority = 0;
    if (rc == 0 && pol) {
        int p = cJSON_IsString(pol) ? split_policy_parse(pol->valuestring) : -1;
        if (p < 0) {
            char *v = cJSON_PrintUnformatted(pol);
            snprintf(err, errlen,
                     "%s.policy: must be one of capacity, equal, soc_balance, loss_min, "
                     "priority, got %s",
                     path, v ? v : "?");
            cJSON_free(v);
            rc = -EINVAL;
        } else {
            cfg->policy = p;
        }
    }
    if (rc == 0 && pr)
        rc = load_priority(pr, path, cfg, err, errlen);
    cJSON_Delete(pol);
    cJSON_Delete(pr);
    cJSON_Delete(rest);
    return rc;
}

int arbiter_cfg_check_assets(const struct arbiter_cfg *cfg, const char *path,
                             const char *const *ids, size_t n, char *err, size_t errlen)
{
    for (size_t k = 0; k < cfg->n_priority; k++) {
        size_t i = 0;
        while (i < n && strcmp(ids[i], cfg->priority[k]))
            i++;
        if (i == n) {
            snprintf(err, errlen, "%s.priority[%zu]: unknown asset %s", path, k, cfg->priority[k]);
            return -EINVAL;
        }
    }
    return 0;
}

/* The asset's place in the priority list; unlisted assets come after every listed one. */
static int priority_rank(const struct arbiter_cfg *cfg, const char *asset_id)
{
    for (size_t k = 0; k < cfg->n_priority; k++)
        if (!strcmp(cfg->priority[k], asset_id))
            return (int)k;
    return (int)cfg->n_priority;
}

/* Outside any real battery's rating; keeps split_dispatch's arithmetic finite. */
#define BIG_W 1e9

static double bound_or(double v, double fallback)
{
    return isfinite(v) ? v : fallback;
}

/* What the batteries could not take of a site request to import more / export less (rest < 0,
 * site signs) goes to the other devices the configuration lets take part, in this order:
 * chargers and boilers use the energy (their power goes up to their rating), PV curtailment
 * throws it away, so it comes last. Only devices unclaimed in this cycle, usable, with a known
 * rating (PV: its measured production is what can be curtailed). A request to discharge /
 * export more is the batteries' alone. */
static void split_flex(const struct arbiter_cfg *cfg, const struct procimg *img,
                       struct decision *dm, const struct decision_request *r, double rest)
{
    static const enum procimg_type order[] = {PROCIMG_EVSE, PROCIMG_BOILER, PROCIMG_PV};
    const int on[] = {cfg->with_evse, cfg->with_boiler, cfg->with_pv};
    for (size_t t = 0; t < 3; t++) {
        for (size_t i = 0; i < dm->n_assets && rest < -0.5; i++) {
            const struct procimg_dev *d = &img->dev[i];
            if (!on[t] || d->type != order[t] || dm->asset[i].source != DSRC_NONE ||
                !procimg_dev_usable(d) || !isfinite(d->power_w))
                continue;
            double room = d->type == PROCIMG_PV  ? d->power_w
                          : isfinite(d->rated_w) ? d->rated_w - d->power_w
                                                 : 0;
            if (!(room > 0))
                continue;
            double take = fmin(-rest, room);
            /* PV: a production limit below what it makes; the others: a higher consumption */
            dm->asset[i].requested_w =
                d->type == PROCIMG_PV ? d->power_w - take : d->power_w + take;
            dm->asset[i].source = r->source;
            rest += take;
        }
    }
}

static void split_site(const struct arbiter_cfg *cfg, const struct procimg *img, const double *lo_w,
                       const double *hi_w, struct decision *dm, const struct decision_request *r)
{
    struct split_asset a[PROCIMG_MAX_DEVICES];
    double soc[PROCIMG_MAX_DEVICES], rating[PROCIMG_MAX_DEVICES];
    int rank[PROCIMG_MAX_DEVICES];
    size_t idx[PROCIMG_MAX_DEVICES], n = 0;
    for (size_t i = 0; i < dm->n_assets; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (d->type != PROCIMG_BATTERY || dm->asset[i].source != DSRC_NONE ||
            !procimg_dev_usable(d))
            continue;
        double lo = lo_w ? lo_w[i] : -(d->max_charge_w >= 0 ? d->max_charge_w : BIG_W);
        double hi = hi_w ? hi_w[i] : (d->max_discharge_w >= 0 ? d->max_discharge_w : BIG_W);
        lo = fmax(bound_or(lo, -BIG_W), -BIG_W);
        hi = fmin(bound_or(hi, BIG_W), BIG_W);
        if (lo > hi)
            lo = hi = 0;
        a[n] = (struct split_asset){d->capacity_wh > 0 ? d->capacity_wh : 0, lo, hi};
        soc[n] = d->soc;
        /* the converter's rating for the loss model: the larger reported power limit */
        rating[n] = fmax(d->max_charge_w >= 0 ? d->max_charge_w : 0,
                         d->max_discharge_w >= 0 ? d->max_discharge_w : 0);
        rank[n] = priority_rank(cfg, d->asset_id);
        idx[n++] = i;
    }
    double part[PROCIMG_MAX_DEVICES];
    if (n == 0) {
        split_flex(cfg, img, dm, r, r->power_w);
        return;
    }
    struct split_result res;
    struct split_opts o = {
        .policy = (enum split_policy)cfg->policy,
        .resolution_w = cfg->split_resolution_w,
        .soc_horizon_s = cfg->soc_horizon_s > 0 ? cfg->soc_horizon_s : 3600,
        .soc = soc,
        .rating_w = rating,
        .rank = rank,
    };
    if (!isfinite(r->power_w) ||
        split_dispatch_policy(&o, a, n, r->power_w, part, NULL, &res) != 0) {
        /* A NaN request cannot be split; pass it on so safety records it as such. */
        for (size_t k = 0; k < n; k++)
            part[k] = isfinite(r->power_w) ? r->power_w / (double)n : r->power_w;
    }
    double rest = r->power_w;
    for (size_t k = 0; k < n; k++) {
        dm->asset[idx[k]].requested_w = part[k];
        dm->asset[idx[k]].source = r->source;
        rest -= part[k];
    }
    split_flex(cfg, img, dm, r, rest);
}

int arbiter_resolve(const struct arbiter_cfg *cfg, const struct procimg *img, const double *lo_w,
                    const double *hi_w, struct decision *dm)
{
    if (!cfg || !img || !dm || dm->n_assets > img->n_devices)
        return -EINVAL;
    for (size_t i = 0; i < dm->n_assets; i++) {
        dm->asset[i].source = DSRC_NONE;
        dm->asset[i].requested_w = NAN;
    }
    for (int src = DSRC_COUNT - 1; src > DSRC_NONE; src--) {
        /* claims made in this class, so that a later request of the class overrides an
         * earlier one but never a higher class's */
        uint8_t mine[PROCIMG_MAX_DEVICES] = {0};
        const struct decision_request *site = NULL;
        for (size_t k = 0; k < dm->n_requests; k++) {
            const struct decision_request *r = &dm->req[k];
            if (r->source != src)
                continue;
            if (r->asset == DECISION_SITE) {
                site = r;
                continue;
            }
            if (r->asset < 0 || (size_t)r->asset >= dm->n_assets)
                continue;
            struct decision_asset *a = &dm->asset[r->asset];
            if (a->source != DSRC_NONE && !mine[r->asset])
                continue;
            a->source = (uint8_t)src;
            a->requested_w = r->power_w;
            mine[r->asset] = 1;
        }
        if (site)
            split_site(cfg, img, lo_w, hi_w, dm, site);
    }
    for (size_t i = 0; i < dm->n_assets; i++)
        if (dm->asset[i].source == DSRC_NONE && img->dev[i].type == PROCIMG_BATTERY)
            dm->asset[i].requested_w = 0;
    return 0;
}

void arbiter_estop(const struct procimg *img, double pv_limit_w, struct decision *dm)
{
    for (size_t i = 0; i < dm->n_assets && i < img->n_devices; i++) {
        struct decision_asset *a = &dm->asset[i];
        enum procimg_type t = img->dev[i].type;
        if (t != PROCIMG_BATTERY && t != PROCIMG_PV && t != PROCIMG_EVSE && t != PROCIMG_BOILER)
            continue;
        double safe = t == PROCIMG_PV ? pv_limit_w : 0;
        decision_clamp(dm, (int)i, DC_ESTOP, a->requested_w, safe);
        a->requested_w = safe;
        a->source = DSRC_SAFETY;
    }
}
