/* Property test of the safety interlocks against an oracle written from docs/safety.md (not
 * from gateway/control/safety.c). Random cycles (seeded, sim/physics/rng.h) of configurations,
 * device states (SoC anywhere, implausible readings, stale and offline devices, limits,
 * temperatures, previous setpoints, several batteries) and requests (NaN, Inf, absurd values,
 * values inside, at and outside every limit). A quarter of the cycles go through the arbiter (site
 * and asset requests, the split); the others hand safety per-asset requests chosen around the
 * oracle's limits. Every controllable device is checked against named properties: set        who is
 * written: batteries always, meters never, pv and boiler released in their safe state, an evse that
 * was commanded paused at 0 W (Safe states) safe_state offline, stale, implausible SoC, temp_stop:
 * exactly 0 W interlock  the final setpoint lies inside each interlock's own range (rows 5-13) ramp
 * inside the window around the last setpoint, or at the hard edge nearest to it nearest    no
 * over-clamping: a battery that no grid correction moves ends at the point of its allowed range
 * nearest to the request; pv, evse, boiler at the request clamped into [0, rated] liveness   a
 * request inside every limit passes unchanged, bit for bit, with no clamp grid_*     the grid
 * limits with several batteries: the predicted grid lands exactly at the limit when the batteries
 * have the headroom (neither beyond nor short of it), else every battery is at its bound; batteries
 * move only in the correcting direction and in device order; none moves when the grid is inside its
 * limits clamps     the clamp records chain from the request to the final value in the order of the
 *              table, the first naming the first interlock that bit, grid clamps the right limit
 *   oracle     the final setpoint equals the oracle's
 * The oracle builds each interlock's range from the page's table and intersects them, applies
 * the ramp rule, then the grid rule as a greedy pass in device order. Coverage counters make
 * sure the generator reaches every interlock and every grid situation. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "gateway/control/arbiter.h"
#include "gateway/control/safety.h"
#include "sim/physics/rng.h"

#ifndef SAFETY_PROPERTY_CASES
#define SAFETY_PROPERTY_CASES 400000
#endif

/* ---- random inputs -------------------------------------------------------------------------- */

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

static void random_cfg(struct rng *r, struct safety_cfg *c)
{
    c->soc_floor = chance(r, 0.1) ? 0 : uni(r, 0, 0.3);
    c->soc_ceiling = chance(r, 0.1) ? 1 : uni(r, 0.6, 1.0);
    c->soc_band = chance(r, 0.2) ? 0 : chance(r, 0.05) ? uni(r, 0.1, 0.5) : uni(r, 0, 0.1);
    c->temp_derate_c = uni(r, 30, 50);
    c->temp_stop_c = c->temp_derate_c + uni(r, 0.5, 20);
    c->temp_charge_min_c = uni(r, -10, 5);
    c->max_charge_w = chance(r, 0.05) ? 0 : chance(r, 0.1) ? 1e7 : uni(r, 0, 10000);
    c->max_discharge_w = chance(r, 0.05) ? 0 : chance(r, 0.1) ? 1e7 : uni(r, 0, 10000);
    c->max_current_a = chance(r, 0.5) ? 0 : uni(r, 1, 50);
    c->nominal_voltage_v = uni(r, 50, 800);
    c->ramp_w_per_s = chance(r, 0.4) ? 0 : uni(r, 1, 5000);
    c->grid_import_max_w = chance(r, 0.3) ? 1e9 : chance(r, 0.1) ? 0 : uni(r, 0, 15000);
    c->grid_export_max_w = chance(r, 0.3) ? 1e9 : chance(r, 0.1) ? 0 : uni(r, 0, 15000);
}

static double pick_soc(struct rng *r, const struct safety_cfg *c)
{
    double u = rng_uniform(r);
    if (u < 0.08)
        return c->soc_floor;
    if (u < 0.16)
        return c->soc_ceiling;
    if (u < 0.26)
        return c->soc_floor + uni(r, 0, c->soc_band);
    if (u < 0.36)
        return c->soc_ceiling - uni(r, 0, c->soc_band);
    if (u < 0.40)
        return wild(r, -0.5, 1.5);
    return uni(r, -0.02, 1.02);
}

static double pick_temp(struct rng *r, const struct safety_cfg *c)
{
    double u = rng_uniform(r);
    if (u < 0.10)
        return NAN;
    if (u < 0.13)
        return c->temp_stop_c;
    if (u < 0.15)
        return c->temp_derate_c;
    if (u < 0.17)
        return c->temp_charge_min_c;
    if (u < 0.18)
        return INFINITY;
    if (u < 0.19)
        return -INFINITY;
    if (u < 0.35)
        return uni(r, c->temp_derate_c, c->temp_stop_c + 5);
    return uni(r, -15, 45);
}

/* A device-reported limit: NaN (not reported), negative, infinite, or plausible. */
static double pick_dev_limit(struct rng *r)
{
    double u = rng_uniform(r);
    if (u < 0.2)
        return NAN;
    if (u < 0.23)
        return -uni(r, 0, 100);
    if (u < 0.24)
        return -INFINITY;
    if (u < 0.25)
        return INFINITY;
    if (u < 0.27)
        return 0;
    return uni(r, 0, 12000);
}

static void random_site(struct rng *r, const struct safety_cfg *c, struct procimg *img)
{
    img->now_ms = (int64_t)uni(r, 0, 1e9);
    img->n_devices = 1 + (size_t)(rng_next(r) % 7);
    img->grid_ok = chance(r, 0.85);
    img->grid_w = chance(r, 0.05) ? wild(r, -30000, 30000) : uni(r, -30000, 30000);
    for (size_t i = 0; i < img->n_devices; i++) {
        struct procimg_dev *d = &img->dev[i];
        memset(d, 0, sizeof *d);
        d->asset_id[0] = (char)('a' + i);
        uint64_t t = rng_next(r) % 12;
        d->type = t < 7     ? PROCIMG_BATTERY
                  : t == 7  ? PROCIMG_PV
                  : t == 8  ? PROCIMG_EVSE
                  : t == 9  ? PROCIMG_BOILER
                  : t == 10 ? PROCIMG_METER_GRID
                            : PROCIMG_METER_LOAD;
        d->online = chance(r, 0.92);
        d->stale = chance(r, 0.06);
        d->power_w = chance(r, 0.05) ? wild(r, -10000, 10000) : uni(r, -10000, 10000);
        double u = rng_uniform(r);
        d->rated_w = u < 0.1 ? NAN : u < 0.13 ? -uni(r, 0, 100) : uni(r, 0, 20000);
        d->soc = pick_soc(r, c);
        d->soc_min = chance(r, 0.7) ? NAN : wild(r, 0, 0.5);
        d->soc_max = chance(r, 0.7) ? NAN : wild(r, 0.5, 1);
        d->capacity_wh = chance(r, 0.2) ? NAN : uni(r, 0, 50000);
        d->temperature_c = pick_temp(r, c);
        u = rng_uniform(r);
        d->voltage_v = u < 0.2 ? NAN : u < 0.25 ? wild(r, -100, 0) : uni(r, 100, 900);
        d->max_charge_w = pick_dev_limit(r);
        d->max_discharge_w = pick_dev_limit(r);
        d->has_prev_setpoint = chance(r, 0.7);
        d->prev_setpoint_w = chance(r, 0.05) ? NAN : uni(r, -12000, 12000);
        d->prev_setpoint_ms = img->now_ms - (int64_t)uni(r, -1000, 10000);
    }
}

/* ---- the oracle (docs/safety.md) ------------------------------------------------------------ */

struct want {
    int battery, usable, asked, set;
    double req;                          /* the request as safety received it */
    double x0;                           /* where the interlocks start: 0 for NaN/Inf */
    double ilo[DR_COUNT], ihi[DR_COUNT]; /* each interlock's own range, rows 2-13 */
    double lo, hi;                       /* their intersection: the hard range */
    int ramp;                            /* row 14 applies */
    double wlo, whi;                     /* the ramp window */
    double rlo, rhi;                     /* what is left after row 14 (the grid step's room) */
    double x;                            /* the value after row 14 */
    double fin;                          /* the final value after rows 15-16 */
    int grid_idle;                       /* the grid step clearly leaves it alone */
    double tol;                          /* rounding allowance for this device's values */
};

/* Row 5: NaN = not reported (no limit), negative = nothing allowed. */
static double device_limit(double v)
{
    if (isnan(v))
        return INFINITY;
    return v < 0 ? 0 : v;
}

static void range(struct want *w, int reason, double lo, double hi)
{
    w->ilo[reason] = lo;
    w->ihi[reason] = hi;
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Rows 2-12 for a battery. */
static void battery_ranges(const struct safety_cfg *c, const struct procimg_dev *d, struct want *w)
{
    if (!d->online) {
        range(w, DR_OFFLINE, 0, 0);
        return;
    }
    if (d->stale) {
        range(w, DR_STALE, 0, 0);
        return;
    }
    if (!(d->soc >= 0 && d->soc <= 1)) {
        range(w, DR_SOC_INVALID, 0, 0);
        return;
    }
    double dis = device_limit(d->max_discharge_w), chg = device_limit(d->max_charge_w);
    range(w, DR_POWER_DEVICE, -chg, dis);
    range(w, DR_POWER_CONFIG, -c->max_charge_w, c->max_discharge_w);
    dis = fmin(dis, c->max_discharge_w); /* finite from here on: the configuration's are */
    chg = fmin(chg, c->max_charge_w);
    if (c->max_current_a > 0) {
        int measured = d->voltage_v > 0 && d->voltage_v < INFINITY;
        double p = c->max_current_a * (measured ? d->voltage_v : c->nominal_voltage_v);
        range(w, DR_CURRENT, -p, p);
        dis = fmin(dis, p);
        chg = fmin(chg, p);
    }
    /* SoC window: the tighter of the configured one and the battery's own (when in [0, 1]);
     * the taper scales the limit left after rows 5-7 */
    double floor_soc = c->soc_floor, ceil_soc = c->soc_ceiling;
    if (d->soc_min >= 0 && d->soc_min <= 1)
        floor_soc = fmax(floor_soc, d->soc_min);
    if (d->soc_max >= 0 && d->soc_max <= 1)
        ceil_soc = fmin(ceil_soc, d->soc_max);
    if (d->soc <= floor_soc)
        dis = 0;
    else if (d->soc - floor_soc < c->soc_band)
        dis *= (d->soc - floor_soc) / c->soc_band;
    if (d->soc >= ceil_soc)
        chg = 0;
    else if (ceil_soc - d->soc < c->soc_band)
        chg *= (ceil_soc - d->soc) / c->soc_band;
    range(w, DR_SOC_FLOOR, -INFINITY, dis);
    range(w, DR_SOC_CEILING, -chg, INFINITY);
    /* temperature: NaN = no sensor */
    double t = d->temperature_c;
    if (isnan(t))
        return;
    if (t >= c->temp_stop_c) {
        range(w, DR_TEMP_STOP, 0, 0);
        return;
    }
    if (t > c->temp_derate_c) {
        double f = (c->temp_stop_c - t) / (c->temp_stop_c - c->temp_derate_c);
        range(w, DR_TEMP_DERATE, -chg * f, dis * f);
    }
    if (t < c->temp_charge_min_c)
        range(w, DR_TEMP_COLD, 0, INFINITY);
}

/* Everything that does not depend on the request: the ranges, the ramp window, the room. */
static void want_static(const struct safety_cfg *c, const struct procimg *img, size_t i,
                        struct want *w)
{
    const struct procimg_dev *d = &img->dev[i];
    memset(w, 0, sizeof *w);
    for (int k = 0; k < DR_COUNT; k++) {
        w->ilo[k] = -INFINITY;
        w->ihi[k] = INFINITY;
    }
    w->battery = d->type == PROCIMG_BATTERY;
    w->usable = procimg_dev_usable(d);
    if (w->battery) {
        battery_ranges(c, d, w);
    } else if (d->type == PROCIMG_PV || d->type == PROCIMG_EVSE || d->type == PROCIMG_BOILER) {
        if (!d->online)
            range(w, DR_OFFLINE, 0, 0);
        else if (d->stale)
            range(w, DR_STALE, 0, 0);
        else /* row 13: no upper bound when the rating is unknown (NaN) or implausible (< 0) */
            range(w, DR_RATING, 0, d->rated_w >= 0 ? d->rated_w : INFINITY);
    }
    w->lo = -INFINITY;
    w->hi = INFINITY;
    for (int k = 0; k < DR_COUNT; k++) {
        w->lo = fmax(w->lo, w->ilo[k]);
        w->hi = fmin(w->hi, w->ihi[k]);
    }
    w->rlo = w->lo;
    w->rhi = w->hi;
    w->ramp = w->battery && w->usable && c->ramp_w_per_s > 0 && d->has_prev_setpoint &&
              isfinite(d->prev_setpoint_w);
    if (w->ramp) {
        double dt = img->now_ms > d->prev_setpoint_ms
                        ? (double)(img->now_ms - d->prev_setpoint_ms) / 1000.0
                        : 0;
        w->wlo = d->prev_setpoint_w - c->ramp_w_per_s * dt;
        w->whi = d->prev_setpoint_w + c->ramp_w_per_s * dt;
        if (w->wlo > w->hi) /* the hard limits win: the edge nearest to the window */
            w->rlo = w->hi;
        else if (w->whi < w->lo)
            w->rhi = w->lo;
        else {
            w->rlo = fmax(w->lo, w->wlo);
            w->rhi = fmin(w->hi, w->whi);
        }
    }
}

static double mag(double v)
{
    return isfinite(v) ? fabs(v) : 0;
}

/* The request: row 1, then the value after rows 2-14. */
static void want_request(const struct procimg_dev *d, const struct decision_asset *a,
                         struct want *w)
{
    w->req = a->requested_w;
    w->asked = w->battery || a->source != DSRC_NONE;
    w->x0 = isfinite(w->req) ? w->req : 0;
    w->x = clampd(w->x0, w->rlo, w->rhi);
    w->fin = w->x;
    int released = d->type == PROCIMG_PV || d->type == PROCIMG_BOILER;
    w->set = w->asked &&
             (w->battery || d->type == PROCIMG_EVSE || (released && w->usable && isfinite(w->req)));
    w->tol = 1e-6 + 1e-12 * (mag(w->x0) + mag(w->lo) + mag(w->hi) + mag(w->wlo) + mag(w->whi));
}

/* Rows 15-16: the grid prediction and the greedy correction in device order. Returns the
 * direction (+1 discharge more for the import limit, -1 charge more for the export limit, 0
 * none) and sets *need (what the batteries must cover), *room (what they can), *pred. A
 * battery is grid_idle when the step clearly does not move it: no correction and the
 * prediction not within tolg of a limit, or an earlier battery covered the rest with room to
 * spare. */
static int want_grid(const struct safety_cfg *c, const struct procimg *img, struct want *w,
                     double tolg, double *pred, double *need, double *room)
{
    *need = *room = 0;
    *pred = NAN;
    for (size_t i = 0; i < img->n_devices; i++)
        w[i].grid_idle = 1;
    if (!img->grid_ok || !isfinite(img->grid_w))
        return 0;
    double p = img->grid_w;
    for (size_t i = 0; i < img->n_devices; i++)
        if (w[i].battery && w[i].usable && isfinite(img->dev[i].power_w))
            p -= w[i].x - img->dev[i].power_w;
    *pred = p;
    int dir = p > c->grid_import_max_w ? 1 : p < -c->grid_export_max_w ? -1 : 0;
    double left = dir > 0 ? p - c->grid_import_max_w : -c->grid_export_max_w - p;
    int idle = !dir && p < c->grid_import_max_w - tolg && p > -c->grid_export_max_w + tolg;
    *need = dir ? left : 0;
    for (size_t i = 0; i < img->n_devices; i++) {
        if (!w[i].battery || !w[i].usable)
            continue;
        w[i].grid_idle = idle;
        if (!dir)
            continue;
        double r = dir > 0 ? w[i].rhi - w[i].x : w[i].x - w[i].rlo;
        *room += r;
        double m = fmin(left, r);
        w[i].fin = w[i].x + dir * m;
        if (r - left > tolg)
            idle = 1;
        left -= m;
    }
    return dir;
}

/* ---- the properties ------------------------------------------------------------------------ */

enum prop {
    P_SET,
    P_SAFE_STATE,
    P_INTERLOCK,
    P_RAMP,
    P_NEAREST,
    P_LIVENESS,
    P_GRID_LAND,
    P_GRID_SATURATE,
    P_GRID_DIRECTION,
    P_GRID_ORDER,
    P_CLAMPS,
    P_ORACLE,
    P_COUNT
};
static const char *const prop_name[P_COUNT] = {
    "set",       "safe_state",    "interlock",      "ramp",       "nearest", "liveness",
    "grid_land", "grid_saturate", "grid_direction", "grid_order", "clamps",  "oracle"};

/* What the generator reached; each must be > 0 at the end. */
enum cover {
    C_LIVENESS,
    C_NEAREST_CLAMPED,
    C_RAMP_WINDOW,
    C_RAMP_EDGE,
    C_GRID_IMPORT_MULTI, /* an import correction moved two batteries or more */
    C_GRID_EXPORT_MULTI,
    C_GRID_LAND_IMPORT,
    C_GRID_LAND_EXPORT,
    C_GRID_SATURATED,
    C_GRID_UNUSABLE_POWER, /* an offline/stale battery with a power reading, grid correcting */
    C_FIRST_REASON,
    C_COUNT
};
static const char *const cover_name[C_COUNT] = {
    "liveness",          "nearest (clamped)",
    "ramp window",       "ramp edge",
    "grid import multi", "grid export multi",
    "grid land import",  "grid land export",
    "grid saturated",    "grid with an unusable battery's power",
    "first clamp reason"};

static unsigned long fails[P_COUNT];
static unsigned long covered[C_COUNT];

static void violation(int p, size_t case_no, const struct procimg_dev *d, const struct want *w,
                      double v, const char *what)
{
    if (fails[p]++ < 5)
        fprintf(stderr,
                "safety property %s, case %zu asset %s: %s: final %.9g (request %.9g, oracle "
                "%.9g, range [%.9g, %.9g], after ramp [%.9g, %.9g]) soc %.4f T %.2f online %d "
                "stale %d\n",
                prop_name[p], case_no, d->asset_id, what, v, w->req, w->fin, w->lo, w->hi, w->rlo,
                w->rhi, d->soc, d->temperature_c, d->online, d->stale);
}

/* The reason the first clamp must carry: the first interlock (rows 2-13, then the ramp) whose
 * range the request is outside; -1 when none is; -2 when the request is within the rounding
 * allowance of a bound (whether that interlock bit is then a matter of the last bit). */
static int first_reason(const struct want *w)
{
    if (!isfinite(w->req))
        return DR_NONFINITE;
    double lo = -INFINITY, hi = INFINITY, x = w->x0;
    for (int k = DR_OFFLINE; k <= DR_RATING; k++) {
        lo = fmax(lo, w->ilo[k]);
        hi = fmin(hi, w->ihi[k]);
        double above = x - hi, below = lo - x; /* > 0: outside */
        if (above > w->tol || below > w->tol)
            return k;
        if ((above > 0 && hi == 0) || (below > 0 && lo == 0))
            return k; /* a bound of exactly 0 W is exact in any computation */
        if ((above > -w->tol && hi != 0) || (below > -w->tol && lo != 0))
            return -2;
    }
    if (w->ramp) {
        if (x > w->rhi + w->tol || x < w->rlo - w->tol)
            return DR_RAMP;
        if (x > w->rhi - w->tol || x < w->rlo + w->tol)
            return -2;
    }
    return -1;
}

static void check_clamps(const struct decision *dm, size_t i, const struct want *w,
                         const struct procimg_dev *d, int dir, size_t case_no)
{
    const struct decision_asset *a = &dm->asset[i];
    const struct decision_clamp *prev = NULL;
    size_t n = 0;
    for (size_t j = 0; j < dm->n_clamps; j++) {
        const struct decision_clamp *cl = &dm->clamp[j];
        if (cl->asset != (int)i)
            continue;
        if (n == 0) {
            int same = cl->from_w == w->req || (isnan(cl->from_w) && isnan(w->req));
            if (!same)
                violation(P_CLAMPS, case_no, d, w, cl->from_w,
                          "the first clamp is not from the "
                          "request");
            int first = first_reason(w);
            if (first >= 0) {
                covered[C_FIRST_REASON]++;
                if (cl->reason != first) {
                    char what[96];
                    snprintf(what, sizeof what,
                             "first clamp %s, the first interlock that bit is %s",
                             decision_reason_name(cl->reason), decision_reason_name(first));
                    violation(P_CLAMPS, case_no, d, w, a->final_w, what);
                }
            }
        } else {
            if (cl->from_w != prev->to_w)
                violation(P_CLAMPS, case_no, d, w, cl->from_w, "clamps do not chain");
            if (cl->reason < prev->reason)
                violation(P_CLAMPS, case_no, d, w, cl->from_w, "clamps out of the table's order");
        }
        if (cl->from_w == cl->to_w)
            violation(P_CLAMPS, case_no, d, w, cl->to_w, "a clamp that changed nothing");
        if ((cl->reason == DR_GRID_IMPORT && dir != 1) ||
            (cl->reason == DR_GRID_EXPORT && dir != -1))
            violation(P_CLAMPS, case_no, d, w, cl->to_w, "a grid clamp for the wrong limit");
        prev = cl;
        n++;
    }
    if (n == 0 && a->final_w != w->req)
        violation(P_CLAMPS, case_no, d, w, a->final_w, "a change with no clamp recorded");
    if (n > 0 && prev->to_w != a->final_w)
        violation(P_CLAMPS, case_no, d, w, prev->to_w, "the last clamp is not to the final value");
}

/* One controllable device's final state against the oracle, except the grid properties. */
static void check_device(const struct decision *dm, size_t i, const struct procimg_dev *d,
                         const struct want *w, double tolg, int dir, size_t case_no)
{
    const struct decision_asset *a = &dm->asset[i];
    double v = a->final_w;
    if (d->type == PROCIMG_METER_GRID || d->type == PROCIMG_METER_LOAD) {
        if (a->set)
            violation(P_SET, case_no, d, w, v, "a meter was set");
        return;
    }
    if (a->set != w->set) {
        violation(P_SET, case_no, d, w, v, w->set ? "not set" : "set in its released state");
        return;
    }
    if (!a->set)
        return;
    if (!isfinite(v)) {
        violation(P_SET, case_no, d, w, v, "not finite");
        return;
    }
    if (!w->battery && (!w->usable || !isfinite(w->req)) && v != 0)
        violation(P_SAFE_STATE, case_no, d, w, v, "an evse in its safe state not at 0 W");
    if (w->battery &&
        (w->ihi[DR_OFFLINE] == 0 || w->ihi[DR_STALE] == 0 || w->ihi[DR_SOC_INVALID] == 0 ||
         w->ihi[DR_TEMP_STOP] == 0) &&
        v != 0)
        violation(P_SAFE_STATE, case_no, d, w, v, "not exactly 0 W");
    for (int k = DR_OFFLINE; k <= DR_RATING; k++) {
        if (v > w->ihi[k] + w->tol || v < w->ilo[k] - w->tol) {
            char what[64];
            snprintf(what, sizeof what, "outside the %s range [%.9g, %.9g]",
                     decision_reason_name(k), w->ilo[k], w->ihi[k]);
            violation(P_INTERLOCK, case_no, d, w, v, what);
        }
    }
    if (w->ramp) {
        if (w->wlo <= w->hi - w->tol && w->whi >= w->lo + w->tol) {
            covered[C_RAMP_WINDOW]++;
            if (v > w->whi + w->tol || v < w->wlo - w->tol)
                violation(P_RAMP, case_no, d, w, v, "outside the ramp window");
        } else if (w->wlo > w->hi + w->tol || w->whi < w->lo - w->tol) {
            covered[C_RAMP_EDGE]++;
            double edge = w->wlo > w->hi ? w->hi : w->lo;
            if (fabs(v - edge) > w->tol)
                violation(P_RAMP, case_no, d, w, v, "not at the hard edge nearest the window");
        }
    }
    double tol = fmax(w->tol, tolg);
    if (w->fin == w->x) { /* no grid correction moves it */
        if (w->x != w->x0)
            covered[C_NEAREST_CLAMPED]++;
        if (fabs(v - w->x) > tol)
            violation(P_NEAREST, case_no, d, w, v, "not the allowed value nearest to the request");
    }
    if (w->grid_idle) { /* a request strictly inside every limit passes unchanged */
        int inside = isfinite(w->req) && ((w->req > w->rlo + w->tol && w->req < w->rhi - w->tol) ||
                                          (w->req == 0 && w->rlo == 0 && w->rhi == 0));
        if (inside && (w->battery || w->usable)) {
            covered[C_LIVENESS]++;
            int clamped = 0;
            for (size_t j = 0; j < dm->n_clamps; j++)
                clamped |= dm->clamp[j].asset == (int)i;
            if (v != w->req || clamped)
                violation(P_LIVENESS, case_no, d, w, v, "a request inside every limit changed");
        }
    }
    if (fabs(v - w->fin) > tol)
        violation(P_ORACLE, case_no, d, w, v, "differs from the oracle");
    if (!dm->clamps_dropped)
        check_clamps(dm, i, w, d, dir, case_no);
}

/* Rows 15-16 over the site. */
static void check_grid(const struct safety_cfg *c, const struct procimg *img,
                       const struct decision *dm, const struct want *w, int dir, double pred,
                       double need, double room, double tolg, size_t case_no)
{
    if (!dir)
        return; /* nothing may move: the nearest property checks it per battery */
    /* the grid the final setpoints give, in the page's prediction */
    double after = pred;
    size_t moved = 0, n_unusable_power = 0;
    for (size_t i = 0; i < img->n_devices; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (!w[i].battery)
            continue;
        if (!w[i].usable) {
            n_unusable_power += isfinite(d->power_w) && d->power_w != 0;
            continue;
        }
        double v = dm->asset[i].final_w;
        after -= v - w[i].x;
        double bound = dir > 0 ? w[i].rhi : w[i].rlo;
        double tol = fmax(w[i].tol, tolg);
        if (dir * (v - w[i].x) < -tol)
            violation(P_GRID_DIRECTION, case_no, d, &w[i], v,
                      dir > 0 ? "moved towards charge for the import limit"
                              : "moved towards discharge for the export limit");
        if (fabs(v - w[i].x) > tol) {
            moved++;
            for (size_t j = 0; j < i; j++) {
                if (!w[j].battery || !w[j].usable)
                    continue;
                double bj = dir > 0 ? w[j].rhi : w[j].rlo;
                if (fabs(dm->asset[j].final_w - bj) > fmax(w[j].tol, tolg)) {
                    violation(P_GRID_ORDER, case_no, d, &w[i], v,
                              "moved while an earlier battery had room left");
                    break;
                }
            }
        }
        if (room < need - tolg && fabs(v - bound) > tol)
            violation(P_GRID_SATURATE, case_no, d, &w[i], v,
                      "not at its bound although the limit is out of reach");
    }
    double limit = dir > 0 ? c->grid_import_max_w : -c->grid_export_max_w;
    if (room >= need + tolg) {
        covered[dir > 0 ? C_GRID_LAND_IMPORT : C_GRID_LAND_EXPORT]++;
        if (fabs(after - limit) > tolg) {
            char what[96];
            snprintf(what, sizeof what, "predicted grid %.9g, limit %.9g (from %.9g)", after,
                     dir * limit, pred);
            violation(P_GRID_LAND, case_no, &img->dev[0], &w[0], after, what);
        }
    } else if (room < need - tolg) {
        covered[C_GRID_SATURATED]++;
    }
    if (moved >= 2)
        covered[dir > 0 ? C_GRID_IMPORT_MULTI : C_GRID_EXPORT_MULTI]++;
    if (n_unusable_power)
        covered[C_GRID_UNUSABLE_POWER]++;
}

/* Requests chosen around the oracle's limits: inside, at the edges, outside, absurd. */
static double pick_request(struct rng *r, const struct procimg_dev *d, const struct want *w)
{
    double u = rng_uniform(r);
    if (u < 0.05)
        return NAN;
    if (u < 0.07)
        return INFINITY;
    if (u < 0.09)
        return -INFINITY;
    if (u < 0.40 && isfinite(w->rlo) && isfinite(w->rhi))
        return uni(r, w->rlo, w->rhi);
    if (u < 0.40)
        return uni(r, fmax(w->rlo, -1000), fmin(w->rhi, 1000));
    if (u < 0.48) {
        double e[4] = {w->rlo, w->rhi, w->lo, w->hi};
        double v = e[rng_next(r) % 4];
        return isfinite(v) ? v : 0;
    }
    if (u < 0.51)
        return isfinite(d->prev_setpoint_w) ? d->prev_setpoint_w : 0;
    if (u < 0.54)
        return 0;
    if (u < 0.57)
        return uni(r, -1e12, 1e12);
    return uni(r, -15000, 15000);
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

static void test_property(void)
{
    struct rng r;
    rng_seed(&r, 20240601, "safety/property");
    struct arbiter_cfg acfg = {0};
    struct safety_cfg c;
    struct procimg img;
    struct decision dm;
    struct want w[PROCIMG_MAX_DEVICES];
    unsigned long seen[DR_COUNT] = {0};
    memset(fails, 0, sizeof fails);
    memset(covered, 0, sizeof covered);
    memset(&img, 0, sizeof img);
    unsigned long errors = 0;
    for (size_t k = 0; k < SAFETY_PROPERTY_CASES; k++) {
        random_cfg(&r, &c);
        random_site(&r, &c, &img);
        decision_init(&dm, &img, "prop");
        for (size_t i = 0; i < img.n_devices; i++)
            want_static(&c, &img, i, &w[i]);
        if (chance(&r, 0.25)) { /* through the arbiter */
            acfg.split_resolution_w = chance(&r, 0.5) ? 0 : 10;
            random_requests(&r, &dm);
            double lo[PROCIMG_MAX_DEVICES], hi[PROCIMG_MAX_DEVICES];
            safety_limits(&c, &img, lo, hi);
            if (arbiter_resolve(&acfg, &img, lo, hi, &dm) != 0)
                errors++;
        } else {
            for (size_t i = 0; i < img.n_devices; i++) {
                const struct procimg_dev *d = &img.dev[i];
                int meter = d->type == PROCIMG_METER_GRID || d->type == PROCIMG_METER_LOAD;
                int none = meter || chance(&r, d->type == PROCIMG_BATTERY ? 0.1 : 0.2);
                dm.asset[i].source =
                    none ? DSRC_NONE : (uint8_t)(1 + rng_next(&r) % (DSRC_COUNT - 1));
                dm.asset[i].requested_w =
                    none && !(d->type == PROCIMG_BATTERY) ? NAN : pick_request(&r, d, &w[i]);
            }
        }
        for (size_t i = 0; i < img.n_devices; i++)
            want_request(&img.dev[i], &dm.asset[i], &w[i]);
        /* the grid step's rounding allowance: it sums over the site */
        double scale = mag(img.grid_w) + mag(c.grid_import_max_w) + mag(c.grid_export_max_w);
        for (size_t i = 0; i < img.n_devices; i++)
            if (w[i].battery && w[i].usable)
                scale += mag(img.dev[i].power_w) + mag(w[i].x) + mag(w[i].rlo) + mag(w[i].rhi);
        double tolg = 1e-6 + 1e-12 * scale;
        double pred, need, room;
        int dir = want_grid(&c, &img, w, tolg, &pred, &need, &room);
        if (safety_apply(&c, &img, &dm) != 0) {
            errors++;
            continue;
        }
        for (size_t i = 0; i < img.n_devices; i++)
            check_device(&dm, i, &img.dev[i], &w[i], tolg, dir, k);
        check_grid(&c, &img, &dm, w, dir, pred, need, room, tolg, k);
        for (size_t j = 0; j < dm.n_clamps; j++)
            seen[dm.clamp[j].reason]++;
    }
    CU_ASSERT_EQUAL(errors, 0);
    for (int p = 0; p < P_COUNT; p++) {
        if (fails[p])
            fprintf(stderr, "safety property %s: %lu violations\n", prop_name[p], fails[p]);
        CU_ASSERT_EQUAL(fails[p], 0);
    }
    /* the generator must reach every interlock and situation, or the properties prove little */
    for (int reason = 0; reason < DR_COUNT; reason++) {
        if (seen[reason] == 0)
            fprintf(stderr, "safety property: interlock %s never exercised\n",
                    decision_reason_name(reason));
        CU_ASSERT(seen[reason] > 0);
    }
    for (int cv = 0; cv < C_COUNT; cv++) {
        if (covered[cv] == 0)
            fprintf(stderr, "safety property: %s never reached\n", cover_name[cv]);
        CU_ASSERT(covered[cv] > 0);
    }
}

void test_register_safety_property(void)
{
    CU_pSuite s = CU_add_suite("safety_property", NULL, NULL);
    CU_add_test(s, "random cycles against the docs/safety.md oracle", test_property);
}
