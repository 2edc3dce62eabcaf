/* split: see split.h.
 *
 * Proportional allocation with box constraints is done by repeated clamping: give every free
 * asset its weighted share of what is left, fix the ones that violate a limit at that limit,
 * and share again among the rest. At most n rounds, each fixing at least one asset. The
 * policies differ only in what they place before the common tail: capacity and equal are
 * repeated clamping with their weights; soc_balance solves for a common SoC level by bisection
 * (a fixed number of halvings, so the result is a pure function of the inputs); loss_min tries
 * the k largest converters for every k and keeps the cheapest (quadratic losses are least when
 * the shares follow the ratings, the standby term prefers fewer converters); priority starts
 * from 0 W and fills in rank order. The tail hands any rest out in order within limits, then
 * rounding works in whole resolution units: floor every part, and hand the missing units to the
 * parts with the largest fractional remainders (ties to the lower index) that have room. */
#include "gateway/control/split.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Sorts indexes by descending key, ties by ascending index (a stable, deterministic order). */
static void order_desc(const double *key, size_t *idx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t i = 1; i < n; i++) {
        size_t v = idx[i], j = i;
        while (j > 0 &&
               (key[idx[j - 1]] < key[v] || (key[idx[j - 1]] == key[v] && idx[j - 1] > v))) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

static void round_units(const struct split_asset *a, size_t n, double target_w, double res,
                        double *alloc, uint8_t *flags, size_t *idx, double *frac)
{
    double want_units = round(target_w / res);
    double have_units = 0;
    for (size_t i = 0; i < n; i++) {
        double u = alloc[i] / res;
        double f = floor(u + 1e-9); /* 1e-9: an exact multiple must not lose a unit */
        /* a part must stay inside its limits once rounded: the floor may fall below min */
        if (f * res < a[i].min_w - 1e-9)
            f = ceil(a[i].min_w / res - 1e-9);
        frac[i] = u - f;
        alloc[i] = f * res;
        have_units += f;
    }
    double missing = want_units - have_units;
    order_desc(frac, idx, n);
    for (size_t k = 0; k < n && missing >= 1; k++) {
        size_t i = idx[k];
        if (alloc[i] + res <= a[i].max_w + 1e-9) {
            alloc[i] += res;
            if (flags)
                flags[i] |= SPLIT_ROUNDED_UP;
            missing -= 1;
        }
    }
    /* total rounded down (or floors pushed up by minimums): take units back, smallest first */
    for (size_t k = n; k > 0 && missing <= -1; k--) {
        size_t i = idx[k - 1];
        if (alloc[i] - res >= a[i].min_w - 1e-9) {
            alloc[i] -= res;
            missing += 1;
        }
    }
}

static const char *const policy_names[SPLIT_POLICY_COUNT] = {
    [SPLIT_POLICY_CAPACITY] = "capacity",       [SPLIT_POLICY_EQUAL] = "equal",
    [SPLIT_POLICY_SOC_BALANCE] = "soc_balance", [SPLIT_POLICY_LOSS_MIN] = "loss_min",
    [SPLIT_POLICY_PRIORITY] = "priority",
};

const char *split_policy_name(enum split_policy p)
{
    return (unsigned)p < SPLIT_POLICY_COUNT ? policy_names[p] : "?";
}

int split_policy_parse(const char *name)
{
    for (int p = 0; name && p < SPLIT_POLICY_COUNT; p++)
        if (!strcmp(name, policy_names[p]))
            return p;
    return -1;
}

static double rating_of(const struct split_asset *a, double rating_w)
{
    return rating_w > 0 ? rating_w : fmax(fabs(a->min_w), fabs(a->max_w));
}

double split_loss_w(const struct split_asset *a, double rating_w, double p_w)
{
    double r = rating_of(a, rating_w);
    if (p_w == 0 || !(r > 0))
        return 0;
    double x = p_w / r;
    return r * (SPLIT_LOSS_STANDBY + SPLIT_LOSS_QUADRATIC * x * x);
}

/* Repeated clamping of target over the assets not fixed, with weights w (> 0). */
static void weighted(const struct split_asset *a, size_t n, double target, const double *w,
                     uint8_t *fixed, double *alloc)
{
    for (size_t round_no = 0; round_no <= n; round_no++) {
        double left = target, wsum = 0;
        for (size_t i = 0; i < n; i++) {
            if (fixed[i])
                left -= alloc[i];
            else
                wsum += w[i];
        }
        if (wsum <= 0)
            break;
        int violated = 0;
        for (size_t i = 0; i < n; i++)
            if (!fixed[i])
                alloc[i] = left * w[i] / wsum;
        for (size_t i = 0; i < n; i++) {
            if (fixed[i])
                continue;
            if (alloc[i] > a[i].max_w) {
                alloc[i] = a[i].max_w;
                fixed[i] = 1;
                violated = 1;
            } else if (alloc[i] < a[i].min_w) {
                alloc[i] = a[i].min_w;
                fixed[i] = 1;
                violated = 1;
            }
        }
        if (!violated)
            break;
    }
}

/* The parts at a common SoC level L: each battery moves toward L over the horizon, within
 * its box; their sum falls as L rises. */
static double soc_of(const struct split_opts *o, size_t i)
{
    return o->soc && isfinite(o->soc[i]) ? o->soc[i] : 0.5;
}

static double level_parts(const struct split_opts *o, const struct split_asset *a, size_t n,
                          const double *cap, double h_h, double level, double *alloc)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double soc = soc_of(o, i);
        alloc[i] = clampd(cap[i] * (soc - level) / h_h, a[i].min_w, a[i].max_w);
        sum += alloc[i];
    }
    return sum;
}

static void soc_balance(const struct split_opts *o, const struct split_asset *a, size_t n,
                        double target, int equal, double *cap, double *alloc)
{
    double h_h = o->soc_horizon_s / 3600.0, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        cap[i] = equal ? 1.0 : a[i].capacity;
        double soc = soc_of(o, i);
        lo = fmin(lo, soc - a[i].max_w * h_h / cap[i]);
        hi = fmax(hi, soc - a[i].min_w * h_h / cap[i]);
    }
    /* 200 halvings take any finite bracket below one ulp: more would change nothing */
    for (int it = 0; it < 200 && lo < hi; it++) {
        double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi)
            break;
        if (level_parts(o, a, n, cap, h_h, mid, alloc) > target)
            lo = mid;
        else
            hi = mid;
    }
    level_parts(o, a, n, cap, h_h, hi, alloc);
}

static double rating_in(const struct split_opts *o, size_t i)
{
    return o->rating_w ? o->rating_w[i] : 0;
}

static double parts_loss(const struct split_opts *o, const struct split_asset *a, size_t n,
                         const double *alloc)
{
    double l = 0;
    for (size_t i = 0; i < n; i++)
        l += split_loss_w(a + i, rating_in(o, i), alloc[i]);
    return l;
}

/* Places target on the assets of `mask` (and every asset that cannot be at 0 W) in proportion
 * to their ratings, the others at 0 W. Returns the modelled loss, or INFINITY when their boxes
 * cannot hold target. */
static double place_on(const struct split_opts *o, const struct split_asset *a, size_t n,
                       double target, uint64_t mask, const double *w, uint8_t *fixed, double *alloc)
{
    double lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) {
        int on = ((mask >> i) & 1) || a[i].min_w > 0 || a[i].max_w < 0;
        fixed[i] = !on;
        alloc[i] = 0;
        if (on) {
            lo += a[i].min_w;
            hi += a[i].max_w;
        }
    }
    if (target < lo - 1e-9 || target > hi + 1e-9)
        return INFINITY;
    weighted(a, n, target, w, fixed, alloc);
    return parts_loss(o, a, n, alloc);
}

/* Shared in proportion to the ratings, the quadratic term of a set S of converters carrying T
 * is 0.03 T^2 / sum(R), its standby term 0.005 sum(R): which converters run is the whole
 * question. Up to LOSS_EXHAUSTIVE assets every set is tried (in increasing bit order, so the
 * first of equal losses wins); above, the k largest ratings for every k. */
#define LOSS_EXHAUSTIVE 10
static void loss_min(const struct split_opts *o, const struct split_asset *a, size_t n,
                     double target, uint8_t *fixed, double *w, size_t *idx, double *best,
                     double *alloc)
{
    for (size_t i = 0; i < n; i++)
        w[i] = rating_of(a + i, rating_in(o, i));
    double best_loss = INFINITY;
    size_t n_sets = n <= LOSS_EXHAUSTIVE ? ((size_t)1 << n) - 1 : n;
    if (n > LOSS_EXHAUSTIVE)
        order_desc(w, idx, n);
    for (size_t k = 1; k <= n_sets; k++) {
        uint64_t mask = 0;
        if (n <= LOSS_EXHAUSTIVE)
            mask = k;
        else
            for (size_t j = 0; j < k; j++)
                mask |= (uint64_t)1 << idx[j];
        double ws[SPLIT_MAX_ASSETS];
        for (size_t i = 0; i < n; i++)
            ws[i] = w[i] > 0 ? w[i] : 1.0;
        double l = place_on(o, a, n, target, mask, ws, fixed, alloc);
        if (l < best_loss - 1e-9) {
            best_loss = l;
            memcpy(best, alloc, n * sizeof *best);
        }
    }
    if (isinf(best_loss)) /* cannot happen: all assets together hold the clamped target */
        memset(best, 0, n * sizeof *best);
    memcpy(alloc, best, n * sizeof *alloc);
}

int split_dispatch_policy(const struct split_opts *o, const struct split_asset *a, size_t n,
                          double total_w, double *alloc_w, uint8_t *flags, struct split_result *res)
{
    if (!o || !a || n == 0 || n > SPLIT_MAX_ASSETS || !alloc_w || !isfinite(total_w) ||
        !(o->resolution_w >= 0) || !isfinite(o->resolution_w) ||
        (unsigned)o->policy >= SPLIT_POLICY_COUNT ||
        (o->policy == SPLIT_POLICY_SOC_BALANCE && !(o->soc_horizon_s > 0)))
        return -EINVAL;
    double lo = 0, hi = 0;
    int equal = o->policy == SPLIT_POLICY_EQUAL;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i].min_w) || !isfinite(a[i].max_w) || a[i].min_w > a[i].max_w ||
            isnan(a[i].capacity) || (o->rating_w && isnan(o->rating_w[i])))
            return -EINVAL;
        lo += a[i].min_w;
        hi += a[i].max_w;
        if (!(a[i].capacity > 0))
            equal = 1;
    }
    uint8_t fixed[SPLIT_MAX_ASSETS] = {0};
    size_t idx[SPLIT_MAX_ASSETS];
    double frac[SPLIT_MAX_ASSETS], w[SPLIT_MAX_ASSETS], best[SPLIT_MAX_ASSETS];
    if (flags)
        memset(flags, 0, n);

    double target = clampd(total_w, lo, hi);
    size_t order[SPLIT_MAX_ASSETS]; /* the order in which the tail hands out the rest */
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    switch (o->policy) {
    case SPLIT_POLICY_SOC_BALANCE:
        soc_balance(o, a, n, target, equal, w, alloc_w);
        break;
    case SPLIT_POLICY_LOSS_MIN:
        loss_min(o, a, n, target, fixed, w, idx, best, alloc_w);
        break;
    case SPLIT_POLICY_PRIORITY:
        for (size_t i = 0; i < n; i++) {
            alloc_w[i] = clampd(0, a[i].min_w, a[i].max_w);
            frac[i] = o->rank ? -(double)o->rank[i] : 0; /* order_desc: the lowest rank first */
        }
        order_desc(frac, order, n);
        break;
    default:
        for (size_t i = 0; i < n; i++)
            w[i] = equal ? 1.0 : a[i].capacity;
        weighted(a, n, target, w, fixed, alloc_w);
        break;
    }
    /* Every asset may have been fixed while some of the target is left (clamping overshot on
     * the other side), or the policy placed only a start: hand the rest out in order, within
     * limits. */
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += alloc_w[i];
    for (size_t k = 0; k < n && fabs(target - sum) > 1e-9; k++) {
        size_t i = order[k];
        double nv = clampd(alloc_w[i] + (target - sum), a[i].min_w, a[i].max_w);
        sum += nv - alloc_w[i];
        alloc_w[i] = nv;
    }
    if (o->resolution_w > 0)
        round_units(a, n, target, o->resolution_w, alloc_w, flags, idx, frac);

    sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += alloc_w[i];
        if (flags) {
            if (alloc_w[i] >= a[i].max_w - 1e-9 && a[i].max_w != a[i].min_w && alloc_w[i] != 0)
                flags[i] |= SPLIT_AT_MAX;
            else if (alloc_w[i] <= a[i].min_w + 1e-9 && a[i].max_w != a[i].min_w && alloc_w[i] != 0)
                flags[i] |= SPLIT_AT_MIN;
        }
    }
    if (res) {
        res->requested_w = total_w;
        res->allocated_w = sum;
        res->unallocated_w = total_w - sum;
        res->equal_weights = equal;
    }
    return 0;
}

int split_dispatch(const struct split_asset *a, size_t n, double total_w, double resolution_w,
                   double *alloc_w, uint8_t *flags, struct split_result *res)
{
    struct split_opts o = {.policy = SPLIT_POLICY_CAPACITY, .resolution_w = resolution_w};
    return split_dispatch_policy(&o, a, n, total_w, alloc_w, flags, res);
}
