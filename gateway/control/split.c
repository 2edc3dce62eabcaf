/* split: see split.h.
 *
 * Proportional allocation with box constraints is done by repeated clamping: give every free
 * asset its weighted share of what is left, fix the ones that violate a limit at that limit,
 * and share again among the rest. At most n rounds, each fixing at least one asset. Rounding
 * then works in whole resolution units: floor every part, and hand the missing units to the
 * parts with the largest fractional remainders (ties to the lower index) that have room. */
#include "gateway/control/split.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
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

int split_dispatch(const struct split_asset *a, size_t n, double total_w, double resolution_w,
                   double *alloc_w, uint8_t *flags, struct split_result *res)
{
    if (!a || n == 0 || !alloc_w || !isfinite(total_w) || !(resolution_w >= 0) ||
        !isfinite(resolution_w))
        return -EINVAL;
    double lo = 0, hi = 0;
    int equal = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i].min_w) || !isfinite(a[i].max_w) || a[i].min_w > a[i].max_w ||
            isnan(a[i].capacity))
            return -EINVAL;
        lo += a[i].min_w;
        hi += a[i].max_w;
        if (!(a[i].capacity > 0))
            equal = 1;
    }
    uint8_t *fixed = calloc(n, 1);
    size_t *idx = calloc(n, sizeof *idx);
    double *frac = calloc(n, sizeof *frac);
    if (!fixed || !idx || !frac) {
        free(fixed);
        free(idx);
        free(frac);
        return -ENOMEM;
    }
    if (flags)
        memset(flags, 0, n);

    double target = clampd(total_w, lo, hi);
    for (size_t round_no = 0; round_no <= n; round_no++) {
        double left = target, wsum = 0;
        for (size_t i = 0; i < n; i++) {
            if (fixed[i])
                left -= alloc_w[i];
            else
                wsum += equal ? 1.0 : a[i].capacity;
        }
        if (wsum <= 0)
            break;
        int violated = 0;
        for (size_t i = 0; i < n; i++) {
            if (fixed[i])
                continue;
            alloc_w[i] = left * (equal ? 1.0 : a[i].capacity) / wsum;
        }
        for (size_t i = 0; i < n; i++) {
            if (fixed[i])
                continue;
            if (alloc_w[i] > a[i].max_w) {
                alloc_w[i] = a[i].max_w;
                fixed[i] = 1;
                violated = 1;
            } else if (alloc_w[i] < a[i].min_w) {
                alloc_w[i] = a[i].min_w;
                fixed[i] = 1;
                violated = 1;
            }
        }
        if (!violated)
            break;
    }
    /* Every asset may have been fixed while some of the target is left (clamping overshot on
     * the other side): hand the rest out in order, within limits. */
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += alloc_w[i];
    for (size_t i = 0; i < n && fabs(target - sum) > 1e-9; i++) {
        double nv = clampd(alloc_w[i] + (target - sum), a[i].min_w, a[i].max_w);
        sum += nv - alloc_w[i];
        alloc_w[i] = nv;
    }
    if (resolution_w > 0)
        round_units(a, n, target, resolution_w, alloc_w, flags, idx, frac);

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
    free(fixed);
    free(idx);
    free(frac);
    return 0;
}
