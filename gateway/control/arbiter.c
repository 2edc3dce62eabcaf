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

#include "gateway/control/split.h"

const struct param_field arbiter_fields[] = {
    {"split_resolution_w", PARAM_DOUBLE, offsetof(struct arbiter_cfg, split_resolution_w), 1, 0,
     1e4, "W", "rounding unit of the site split among batteries (0 = none)"},
};
const size_t arbiter_n_fields = sizeof arbiter_fields / sizeof arbiter_fields[0];

int arbiter_cfg_load(const cJSON *obj, const char *path, struct arbiter_cfg *cfg, char *err,
                     size_t errlen)
{
    return param_load(arbiter_fields, arbiter_n_fields, obj, path, cfg, err, errlen);
}

/* Outside any real battery's rating; keeps split_dispatch's arithmetic finite. */
#define BIG_W 1e9

static double bound_or(double v, double fallback)
{
    return isfinite(v) ? v : fallback;
}

static void split_site(const struct arbiter_cfg *cfg, const struct procimg *img, const double *lo_w,
                       const double *hi_w, struct decision *dm, const struct decision_request *r)
{
    struct split_asset a[PROCIMG_MAX_DEVICES];
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
        idx[n++] = i;
    }
    if (n == 0)
        return;
    double part[PROCIMG_MAX_DEVICES];
    struct split_result res;
    if (!isfinite(r->power_w) ||
        split_dispatch(a, n, r->power_w, cfg->split_resolution_w, part, NULL, &res) != 0) {
        /* A NaN request cannot be split; pass it on so safety records it as such. */
        for (size_t k = 0; k < n; k++)
            part[k] = isfinite(r->power_w) ? r->power_w / (double)n : r->power_w;
    }
    for (size_t k = 0; k < n; k++) {
        dm->asset[idx[k]].requested_w = part[k];
        dm->asset[idx[k]].source = r->source;
    }
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
