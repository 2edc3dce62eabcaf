/* Property test for arbitration + safety: a million random cycles (seeded, sim/rng.h) of
 * strategy outputs (including NaN, Inf and absurd values), device states (SoC anywhere,
 * implausible readings, stale and offline devices, random limits, temperatures, previous
 * setpoints) and safety configurations. For every controllable device an independent oracle
 * written from docs/safety.md checks the final setpoint: finite, within power and current
 * limits, no discharge at/below the SoC floor, no charge at/above the ceiling, within the
 * temperature derate, within the ramp from the previous setpoint whenever the hard limits
 * allow it, and the safe state when offline or stale. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "gateway/arbiter.h"
#include "gateway/safety.h"
#include "sim/rng.h"

#define CASES 1000000

static double uni(struct rng *r, double lo, double hi)
{
    return lo + (hi - lo) * rng_uniform(r);
}

static int chance(struct rng *r, double p)
{
    return rng_uniform(r) < p;
}

/* A value that is sometimes pathological. */
static double wild(struct rng *r, double lo, double hi)
{
    double u = rng_uniform(r);
    if (u < 0.02)
        return NAN;
    if (u < 0.03)
        return INFINITY;
    if (u < 0.04)
        return -INFINITY;
    if (u < 0.06)
        return uni(r, -1e12, 1e12);
    return uni(r, lo, hi);
}

static double pick_soc(struct rng *r, const struct safety_cfg *c)
{
    double u = rng_uniform(r);
    if (u < 0.1)
        return c->soc_floor;
    if (u < 0.2)
        return c->soc_ceiling;
    if (u < 0.3)
        return c->soc_floor + uni(r, 0, c->soc_band);
    if (u < 0.4)
        return c->soc_ceiling - uni(r, 0, c->soc_band);
    if (u < 0.45)
        return wild(r, -0.5, 1.5);
    return uni(r, -0.05, 1.05);
}

static void random_cfg(struct rng *r, struct safety_cfg *c)
{
    c->soc_floor = uni(r, 0, 0.3);
    c->soc_ceiling = uni(r, 0.6, 1.0);
    c->soc_band = chance(r, 0.2) ? 0 : uni(r, 0, 0.1);
    c->temp_derate_c = uni(r, 30, 50);
    c->temp_stop_c = c->temp_derate_c + uni(r, 0.5, 20);
    c->temp_charge_min_c = uni(r, -10, 5);
    c->max_charge_w = uni(r, 0, 10000);
    c->max_discharge_w = uni(r, 0, 10000);
    c->max_current_a = chance(r, 0.5) ? 0 : uni(r, 1, 50);
    c->nominal_voltage_v = uni(r, 50, 800);
    c->ramp_w_per_s = chance(r, 0.3) ? 0 : uni(r, 1, 5000);
    c->grid_import_max_w = chance(r, 0.5) ? 1e9 : uni(r, 0, 20000);
    c->grid_export_max_w = chance(r, 0.5) ? 1e9 : uni(r, 0, 20000);
}

static void random_site(struct rng *r, const struct safety_cfg *c, struct procimg *img)
{
    img->now_ms = (int64_t)uni(r, 0, 1e9);
    img->n_devices = 1 + (size_t)(rng_next(r) % 6);
    img->grid_ok = chance(r, 0.8);
    img->grid_w = wild(r, -30000, 30000);
    for (size_t i = 0; i < img->n_devices; i++) {
        struct procimg_dev *d = &img->dev[i];
        d->asset_id[0] = (char)('a' + i);
        d->asset_id[1] = '\0';
        uint64_t t = rng_next(r) % 10;
        d->type = t < 6    ? PROCIMG_BATTERY
                  : t == 6 ? PROCIMG_PV
                  : t == 7 ? PROCIMG_EVSE
                  : t == 8 ? PROCIMG_BOILER
                           : PROCIMG_METER_GRID;
        d->online = chance(r, 0.9);
        d->stale = chance(r, 0.1);
        d->power_w = wild(r, -10000, 10000);
        d->rated_w = chance(r, 0.1) ? NAN : uni(r, 0, 20000);
        d->soc = pick_soc(r, c);
        d->soc_min = chance(r, 0.7) ? NAN : wild(r, 0, 0.5);
        d->soc_max = chance(r, 0.7) ? NAN : wild(r, 0.5, 1);
        d->capacity_wh = chance(r, 0.2) ? NAN : uni(r, 0, 50000);
        d->temperature_c = chance(r, 0.1) ? NAN : wild(r, -30, 80);
        d->voltage_v = chance(r, 0.2) ? NAN : wild(r, 0, 1000);
        d->max_charge_w = chance(r, 0.2) ? NAN : wild(r, -100, 12000);
        d->max_discharge_w = chance(r, 0.2) ? NAN : wild(r, -100, 12000);
        d->has_prev_setpoint = chance(r, 0.7);
        d->prev_setpoint_w = chance(r, 0.05) ? NAN : uni(r, -12000, 12000);
        d->prev_setpoint_ms = img->now_ms - (int64_t)uni(r, -1000, 10000);
    }
}

static void random_requests(struct rng *r, struct decision *dm)
{
    int n = (int)(rng_next(r) % 7);
    for (int k = 0; k < n; k++) {
        int src = 1 + (int)(rng_next(r) % (DSRC_COUNT - 1));
        int asset = chance(r, 0.4) ? DECISION_SITE : (int)(rng_next(r) % dm->n_assets);
        decision_request(dm, src, asset, wild(r, -15000, 15000));
    }
}

static double limit_of(double reported)
{
    return isnan(reported) ? INFINITY : reported > 0 ? reported : 0;
}

static unsigned long violations;

static void violation(const char *what, size_t case_no, const struct procimg_dev *d, double v)
{
    if (violations++ < 10)
        fprintf(stderr, "case %zu %s: %s, final %.6f soc %.4f T %.2f online %d stale %d\n", case_no,
                d->asset_id, what, v, d->soc, d->temperature_c, d->online, d->stale);
}

/* The oracle for one battery. */
static void check_battery(const struct safety_cfg *c, const struct procimg *img,
                          const struct procimg_dev *d, const struct decision_asset *a,
                          size_t case_no)
{
    double v = a->final_w;
    if (!a->set || !isfinite(v)) {
        violation("not set or not finite", case_no, d, v);
        return;
    }
    if (!d->online || d->stale || !(d->soc >= 0 && d->soc <= 1)) {
        if (v != 0)
            violation("nonzero in safe state", case_no, d, v);
        return;
    }
    double hi = fmin(c->max_discharge_w, limit_of(d->max_discharge_w));
    double lo = -fmin(c->max_charge_w, limit_of(d->max_charge_w));
    if (c->max_current_a > 0) {
        double volts =
            isfinite(d->voltage_v) && d->voltage_v > 0 ? d->voltage_v : c->nominal_voltage_v;
        hi = fmin(hi, c->max_current_a * volts);
        lo = fmax(lo, -c->max_current_a * volts);
    }
    double fl = c->soc_floor, ce = c->soc_ceiling;
    if (d->soc_min >= 0 && d->soc_min <= 1)
        fl = fmax(fl, d->soc_min);
    if (d->soc_max >= 0 && d->soc_max <= 1)
        ce = fmin(ce, d->soc_max);
    if (d->soc <= fl)
        hi = 0;
    else if (c->soc_band > 0 && d->soc < fl + c->soc_band)
        hi *= (d->soc - fl) / c->soc_band;
    if (d->soc >= ce)
        lo = 0;
    else if (c->soc_band > 0 && d->soc > ce - c->soc_band)
        lo *= (ce - d->soc) / c->soc_band;
    double t = d->temperature_c;
    if (!isnan(t)) {
        if (t >= c->temp_stop_c)
            lo = hi = 0;
        else if (t > c->temp_derate_c) {
            double f = (c->temp_stop_c - t) / (c->temp_stop_c - c->temp_derate_c);
            lo *= f;
            hi *= f;
        }
        if (t < c->temp_charge_min_c)
            lo = 0;
    }
    double eps = 1e-6 + 1e-9 * fmax(fabs(lo), fabs(hi));
    if (v > hi + eps)
        violation("above the discharge limit", case_no, d, v);
    if (v < lo - eps)
        violation("below the charge limit", case_no, d, v);
    if (d->soc <= fl && v > 0)
        violation("discharging at/below the floor", case_no, d, v);
    if (d->soc >= ce && v < 0)
        violation("charging at/above the ceiling", case_no, d, v);
    if (c->ramp_w_per_s > 0 && d->has_prev_setpoint && isfinite(d->prev_setpoint_w)) {
        double dt = img->now_ms > d->prev_setpoint_ms
                        ? (double)(img->now_ms - d->prev_setpoint_ms) / 1000.0
                        : 0;
        double wlo = d->prev_setpoint_w - c->ramp_w_per_s * dt;
        double whi = d->prev_setpoint_w + c->ramp_w_per_s * dt;
        double reps = 1e-6 + 1e-9 * fabs(d->prev_setpoint_w);
        if (wlo <= hi && whi >= lo) {
            if (v > whi + reps || v < wlo - reps)
                violation("beyond the ramp", case_no, d, v);
        } else if (v != (wlo > hi ? hi : lo) && fabs(v - (wlo > hi ? hi : lo)) > eps) {
            violation("not at the hard limit nearest the ramp window", case_no, d, v);
        }
    }
}

static void check_other(const struct procimg_dev *d, const struct decision_asset *a, size_t case_no)
{
    if (d->type == PROCIMG_METER_GRID || d->type == PROCIMG_METER_LOAD) {
        if (a->set)
            violation("a meter was set", case_no, d, a->final_w);
        return;
    }
    if (!procimg_dev_usable(d)) {
        /* evse: 0 when it was being commanded, pv and boiler: released */
        if (d->type == PROCIMG_EVSE ? (a->set && a->final_w != 0) : a->set)
            violation("not in its safe state", case_no, d, a->final_w);
        return;
    }
    if (!a->set)
        return;
    double v = a->final_w;
    if (!isfinite(v) || v < 0 || (d->rated_w >= 0 && v > d->rated_w))
        violation("outside [0, rated]", case_no, d, v);
}

static void test_property(void)
{
    struct rng r;
    rng_seed(&r, 20240601, "safety/property");
    struct arbiter_cfg acfg;
    struct safety_cfg c;
    struct procimg img;
    struct decision dm;
    unsigned long seen[DR_COUNT] = {0};
    violations = 0;
    memset(&img, 0, sizeof img);
    for (size_t k = 0; k < CASES; k++) {
        random_cfg(&r, &c);
        acfg.split_resolution_w = chance(&r, 0.5) ? 0 : 10;
        random_site(&r, &c, &img);
        decision_init(&dm, &img, "prop");
        random_requests(&r, &dm);
        double lo[PROCIMG_MAX_DEVICES], hi[PROCIMG_MAX_DEVICES];
        safety_limits(&c, &img, lo, hi);
        if (arbiter_resolve(&acfg, &img, lo, hi, &dm) != 0 || safety_apply(&c, &img, &dm) != 0) {
            violations++;
            continue;
        }
        for (size_t i = 0; i < img.n_devices; i++) {
            if (img.dev[i].type == PROCIMG_BATTERY)
                check_battery(&c, &img, &img.dev[i], &dm.asset[i], k);
            else
                check_other(&img.dev[i], &dm.asset[i], k);
        }
        for (size_t j = 0; j < dm.n_clamps; j++)
            seen[dm.clamp[j].reason]++;
    }
    CU_ASSERT_EQUAL(violations, 0);
    /* the generator must reach every interlock, or the property proves little */
    for (int reason = 0; reason < DR_COUNT; reason++) {
        if (seen[reason] == 0)
            fprintf(stderr, "property: interlock %s never exercised\n",
                    decision_reason_name(reason));
        CU_ASSERT(seen[reason] > 0);
    }
}

void test_register_safety_property(void)
{
    CU_pSuite s = CU_add_suite("safety_property", NULL, NULL);
    CU_add_test(s, "1M random cycles stay in bounds", test_property);
}
