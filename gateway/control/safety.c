/* safety: see safety.h and docs/safety.md.
 *
 * Each battery's allowed range is built as an interval [lo, hi] that contains 0 and only
 * ever shrinks, interlock by interlock in a fixed order; the request is clamped into it at
 * every step and a step that moves the value records its reason. Because every interval
 * contains 0, clamping step by step equals clamping into the intersection, and stopping
 * (0 W) is always allowed. The ramp window is not such an interval (it is centred on the last
 * setpoint): it is intersected with [lo, hi] when they overlap; when they do not, the hard
 * limits win and the value goes to the edge of [lo, hi] nearest to the window - a battery
 * that must stop stops now, not at the ramp rate. The grid limits come last and only move
 * batteries inside what is left. */
#include "gateway/control/safety.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>

#define F(m) offsetof(struct safety_cfg, m)
const struct param_field safety_fields[] = {
    {"soc_floor", PARAM_DOUBLE, F(soc_floor), 0.05, 0, 1, "0..1",
     "no discharge at or below this SoC (or the battery's own minimum, if higher)"},
    {"soc_ceiling", PARAM_DOUBLE, F(soc_ceiling), 0.95, 0, 1, "0..1",
     "no charge at or above this SoC (or the battery's own maximum, if lower)"},
    {"soc_band", PARAM_DOUBLE, F(soc_band), 0.02, 0, 0.5, "0..1",
     "power tapers linearly to 0 over this band above the floor and below the ceiling"},
    {"temp_derate_c", PARAM_DOUBLE, F(temp_derate_c), 45, -40, 120, "degC",
     "power derates linearly from here to 0 at temp_stop_c"},
    {"temp_stop_c", PARAM_DOUBLE, F(temp_stop_c), 55, -40, 150, "degC",
     "no power at or above this battery temperature"},
    {"temp_charge_min_c", PARAM_DOUBLE, F(temp_charge_min_c), 0, -60, 40, "degC",
     "no charge below this battery temperature (lithium plating)"},
    {"max_charge_w", PARAM_DOUBLE, F(max_charge_w), 1e6, 0, 1e7, "W",
     "configured charge limit per battery (the device's own limit applies too)"},
    {"max_discharge_w", PARAM_DOUBLE, F(max_discharge_w), 1e6, 0, 1e7, "W",
     "configured discharge limit per battery (the device's own limit applies too)"},
    {"max_current_a", PARAM_DOUBLE, F(max_current_a), 0, 0, 1e5, "A",
     "battery current limit, as power at the measured voltage (0 = none)"},
    {"nominal_voltage_v", PARAM_DOUBLE, F(nominal_voltage_v), 400, 1, 2000, "V",
     "voltage for the current limit when the battery reports none"},
    {"ramp_w_per_s", PARAM_DOUBLE, F(ramp_w_per_s), 0, 0, 1e7, "W/s",
     "max change per second from the last written setpoint (0 = none)"},
    {"grid_import_max_w", PARAM_DOUBLE, F(grid_import_max_w), 1e9, 0, 1e9, "W",
     "site import limit: batteries discharge more to stay below it when they can"},
    {"grid_export_max_w", PARAM_DOUBLE, F(grid_export_max_w), 1e9, 0, 1e9, "W",
     "site export limit: batteries charge more to stay below it when they can"},
    {"estop_pv_limit_w", PARAM_DOUBLE, F(estop_pv_limit_w), 0, 0, 1e8, "W",
     "production limit of each PV inverter while an emergency stop holds"},
};
#undef F
const size_t safety_n_fields = sizeof safety_fields / sizeof safety_fields[0];

int safety_cfg_load(const cJSON *obj, const char *path, struct safety_cfg *cfg, char *err,
                    size_t errlen)
{
    int rc = param_load(safety_fields, safety_n_fields, obj, path, cfg, err, errlen);
    if (rc)
        return rc;
    if (!path)
        path = "params";
    if (!(cfg->soc_floor < cfg->soc_ceiling)) {
        snprintf(err, errlen, "%s.soc_floor: must be below soc_ceiling (%g), got %g", path,
                 cfg->soc_ceiling, cfg->soc_floor);
        return -EINVAL;
    }
    if (!(cfg->temp_derate_c < cfg->temp_stop_c)) {
        snprintf(err, errlen, "%s.temp_derate_c: must be below temp_stop_c (%g), got %g", path,
                 cfg->temp_stop_c, cfg->temp_derate_c);
        return -EINVAL;
    }
    if (!(cfg->temp_charge_min_c < cfg->temp_stop_c)) {
        snprintf(err, errlen, "%s.temp_charge_min_c: must be below temp_stop_c (%g), got %g", path,
                 cfg->temp_stop_c, cfg->temp_charge_min_c);
        return -EINVAL;
    }
    return 0;
}

/* The working state of one device through the interlocks. */
struct env {
    double lo, hi, x;
    struct decision *dm; /* NULL: compute limits only, record nothing */
    int asset;
};

/* Shrinks the envelope to [lo, hi] (which contains 0) and clamps the value into it. */
static void narrow(struct env *e, double lo, double hi, int reason)
{
    if (lo > e->lo)
        e->lo = lo;
    if (hi < e->hi)
        e->hi = hi;
    double from = e->x;
    if (e->x > e->hi)
        e->x = e->hi;
    if (e->x < e->lo)
        e->x = e->lo;
    if (e->dm && e->x != from)
        decision_clamp(e->dm, e->asset, reason, from, e->x);
}

/* A reported limit: NaN means "not reported" (no limit from the device), a negative or
 * -Inf reading means the device allows nothing. */
static double reported_limit(double v)
{
    if (isnan(v))
        return INFINITY;
    return v > 0 ? v : 0;
}

/* A limit times a factor in [0, 1]; 0 stays 0 even for an unlimited (infinite) bound. */
static double scale(double limit, double f)
{
    return f > 0 ? limit * f : 0;
}

static void battery_envelope(const struct safety_cfg *c, const struct procimg_dev *d, struct env *e)
{
    if (!d->online) {
        narrow(e, 0, 0, DR_OFFLINE);
        return;
    }
    if (d->stale) {
        narrow(e, 0, 0, DR_STALE);
        return;
    }
    if (!(d->soc >= 0 && d->soc <= 1)) {
        narrow(e, 0, 0, DR_SOC_INVALID);
        return;
    }

    double chg = reported_limit(d->max_charge_w), dis = reported_limit(d->max_discharge_w);
    narrow(e, -chg, dis, DR_POWER_DEVICE);
    narrow(e, -c->max_charge_w, c->max_discharge_w, DR_POWER_CONFIG);
    if (c->max_current_a > 0) {
        double v = d->voltage_v > 0 && isfinite(d->voltage_v) ? d->voltage_v : c->nominal_voltage_v;
        double p = c->max_current_a * v;
        narrow(e, -p, p, DR_CURRENT);
    }

    /* SoC: the tighter of the configured window and the battery's own. Inside the band the
     * remaining limit scales down linearly, reaching 0 at the floor/ceiling, so a battery
     * approaches its limit gently instead of stopping from full power. */
    double floor_soc = c->soc_floor, ceil_soc = c->soc_ceiling;
    if (d->soc_min >= 0 && d->soc_min <= 1 && d->soc_min > floor_soc)
        floor_soc = d->soc_min;
    if (d->soc_max >= 0 && d->soc_max <= 1 && d->soc_max < ceil_soc)
        ceil_soc = d->soc_max;
    double fdis = 1, fchg = 1;
    if (d->soc <= floor_soc)
        fdis = 0;
    else if (c->soc_band > 0 && d->soc < floor_soc + c->soc_band)
        fdis = (d->soc - floor_soc) / c->soc_band;
    if (d->soc >= ceil_soc)
        fchg = 0;
    else if (c->soc_band > 0 && d->soc > ceil_soc - c->soc_band)
        fchg = (ceil_soc - d->soc) / c->soc_band;
    narrow(e, e->lo, scale(e->hi, fdis), DR_SOC_FLOOR);
    narrow(e, scale(e->lo, fchg), e->hi, DR_SOC_CEILING);

    /* Temperature: NaN means the battery has no sensor (its BMS protects itself). */
    double t = d->temperature_c;
    if (!isnan(t)) {
        if (t >= c->temp_stop_c) {
            narrow(e, 0, 0, DR_TEMP_STOP);
            return;
        }
        if (t > c->temp_derate_c) {
            double f = (c->temp_stop_c - t) / (c->temp_stop_c - c->temp_derate_c);
            narrow(e, scale(e->lo, f), scale(e->hi, f), DR_TEMP_DERATE);
        }
        if (t < c->temp_charge_min_c)
            narrow(e, 0, e->hi, DR_TEMP_COLD);
    }
}

/* pv, evse, boiler: setpoints in [0, rated]. */
static void other_envelope(const struct procimg_dev *d, struct env *e)
{
    if (!d->online) {
        narrow(e, 0, 0, DR_OFFLINE);
        return;
    }
    if (d->stale) {
        narrow(e, 0, 0, DR_STALE);
        return;
    }
    narrow(e, 0, e->hi, DR_RATING);
    if (d->rated_w >= 0)
        narrow(e, e->lo, d->rated_w, DR_RATING);
}

static int controllable(enum procimg_type t)
{
    return t == PROCIMG_BATTERY || t == PROCIMG_PV || t == PROCIMG_EVSE || t == PROCIMG_BOILER;
}

void safety_limits(const struct safety_cfg *cfg, const struct procimg *img, double *lo_w,
                   double *hi_w)
{
    for (size_t i = 0; i < img->n_devices && i < PROCIMG_MAX_DEVICES; i++) {
        const struct procimg_dev *d = &img->dev[i];
        struct env e = {-INFINITY, INFINITY, 0, NULL, (int)i};
        if (d->type == PROCIMG_BATTERY)
            battery_envelope(cfg, d, &e);
        else if (controllable(d->type))
            other_envelope(d, &e);
        else
            e.lo = e.hi = 0;
        lo_w[i] = e.lo;
        hi_w[i] = e.hi;
    }
}

/* Ramp: moves the value into the window around the last written setpoint, or as close to it
 * as the envelope allows; the envelope becomes what the grid step may still use. */
static void ramp(const struct safety_cfg *c, const struct procimg *img, const struct procimg_dev *d,
                 struct env *e)
{
    if (!(c->ramp_w_per_s > 0) || !d->has_prev_setpoint || !isfinite(d->prev_setpoint_w))
        return;
    double dt_s = img->now_ms > d->prev_setpoint_ms
                      ? (double)(img->now_ms - d->prev_setpoint_ms) / 1000.0
                      : 0.0;
    double r = c->ramp_w_per_s * dt_s;
    double wlo = d->prev_setpoint_w - r, whi = d->prev_setpoint_w + r;
    double from = e->x;
    if (wlo > e->hi) {
        e->x = e->lo = e->hi;
    } else if (whi < e->lo) {
        e->x = e->hi = e->lo;
    } else {
        e->lo = fmax(e->lo, wlo);
        e->hi = fmin(e->hi, whi);
        e->x = e->x > e->hi ? e->hi : e->x < e->lo ? e->lo : e->x;
    }
    if (e->x != from)
        decision_clamp(e->dm, e->asset, DR_RAMP, from, e->x);
}

/* Grid limits: predicts the grid power after this cycle's battery changes (each battery moves
 * the grid by minus its change, the site balance of docs/physics.md) and, if it would leave the
 * limits, moves batteries in index order inside what their envelopes still allow. */
static void grid_limits(const struct safety_cfg *c, const struct procimg *img, struct decision *dm,
                        struct env *env)
{
    if (!img->grid_ok || !isfinite(img->grid_w))
        return;
    double predicted = img->grid_w;
    for (size_t i = 0; i < dm->n_assets; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (d->type == PROCIMG_BATTERY && procimg_dev_usable(d) && isfinite(d->power_w))
            predicted -= env[i].x - d->power_w;
    }
    double excess = predicted - c->grid_import_max_w; /* > 0: more discharge needed */
    int reason = DR_GRID_IMPORT;
    if (!(excess > 0)) {
        excess = predicted + c->grid_export_max_w; /* < 0: more charge needed */
        reason = DR_GRID_EXPORT;
        if (!(excess < 0))
            return;
    }
    for (size_t i = 0; i < dm->n_assets && excess != 0; i++) {
        struct env *e = &env[i];
        if (img->dev[i].type != PROCIMG_BATTERY || !procimg_dev_usable(&img->dev[i]))
            continue;
        double from = e->x;
        if (excess > 0) {
            double take = fmin(excess, e->hi - e->x);
            if (take > 0) {
                e->x += take;
                excess -= take;
            }
        } else {
            double take = fmin(-excess, e->x - e->lo);
            if (take > 0) {
                e->x -= take;
                excess += take;
            }
        }
        /* guard against rounding outside the envelope */
        e->x = e->x > e->hi ? e->hi : e->x < e->lo ? e->lo : e->x;
        if (e->x != from)
            decision_clamp(dm, (int)i, reason, from, e->x);
    }
}

int safety_apply(const struct safety_cfg *cfg, const struct procimg *img, struct decision *dm)
{
    if (!cfg || !img || !dm || dm->n_assets > img->n_devices)
        return -EINVAL;
    struct env env[PROCIMG_MAX_DEVICES];
    for (size_t i = 0; i < dm->n_assets; i++) {
        const struct procimg_dev *d = &img->dev[i];
        struct decision_asset *a = &dm->asset[i];
        struct env *e = &env[i];
        *e = (struct env){-INFINITY, INFINITY, a->requested_w, dm, (int)i};
        a->set = 0;
        a->final_w = NAN;
        if (!controllable(d->type))
            continue;
        int asked = a->source != DSRC_NONE || d->type == PROCIMG_BATTERY;
        if (!asked)
            continue; /* nobody asked: leave the device to its own behaviour */
        if (!isfinite(e->x)) {
            decision_clamp(dm, (int)i, DR_NONFINITE, e->x, 0);
            e->x = 0;
            if (d->type == PROCIMG_PV || d->type == PROCIMG_BOILER)
                continue; /* their safe state is to be left alone */
        }
        if (d->type == PROCIMG_BATTERY) {
            battery_envelope(cfg, d, e);
            if (procimg_dev_usable(d))
                ramp(cfg, img, d, e);
        } else {
            other_envelope(d, e);
            if (!procimg_dev_usable(d) && d->type != PROCIMG_EVSE)
                continue;
        }
        a->set = 1;
    }
    grid_limits(cfg, img, dm, env);
    for (size_t i = 0; i < dm->n_assets; i++)
        if (dm->asset[i].set)
            dm->asset[i].final_w = env[i].x + 0.0; /* + 0.0: no -0 in the output */
    return 0;
}
