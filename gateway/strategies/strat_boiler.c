/* strat_boiler: the Boiler strategy (power to heat): hot-water tanks heat with PV surplus and
 * from the grid only to keep their minimum temperature.
 *
 * The boiler's own thermostat decides whether it heats (docs/registers.md: IDLE, STARTING,
 * RUNNING, STOPPING, FAULT); the gateway sets its PowerLimit. Per boiler:
 *   - FAULT: no command (the boiler is left alone until someone resets it);
 *   - below min_temp_c, or falling so fast that it would reach min_temp_c within
 *     min_temp_lookahead (the slope over the last one to two minutes): full rated power until
 *     min_temp_c + min_temp_band_k (comfort and hygiene come before cost), mode /keep_min. A
 *     draw of 240 L/h takes about 10 kW out of a 50 degC tank (physics.md: mdot c (T - T_cold))
 *     against a 3 kW element, so waiting for min_temp_c itself is minutes too late;
 *   - otherwise the surplus, in steps of quantum_w, once it reaches start_surplus_w (and
 *     then down to one quantum); below that 0 W, so the tank does not heat from the grid, mode
 *     /surplus or /blocked. Below min_temp_c + draw_reserve_k any surplus (one quantum) starts
 *     it, and such an on-period ends once the tank is out of that reserve unless the surplus
 *     reached start_surplus_w: the tank keeps a reserve for the next draw with PV that would
 *     otherwise be exported. No reaction during a draw replaces it: in boiler-pv a 60 L
 *     morning draw from 48-49 degC ends under 42 degC even at full power from its first
 *     second, which start_surplus_w >= 1250 W (no morning preheat) used to show;
 *   - the state machine is respected: while STARTING or STOPPING the limit is not changed,
 *     and a limit stays on (or off) for at least min_on (min_off) so the element is not
 *     switched on every passing cloud.
 * Surplus = boiler + (-grid) - battery: the battery's charging counts as available when
 * boiler_before_battery, its discharging never (the battery does not heat water). */
#include "gateway/strategies/strat_util.h"
#include "gateway/strategies/strategy.h"

#include <math.h>
#include <stddef.h>

struct boiler_cfg {
    double min_temp_c, min_temp_band_k;
    int64_t lookahead_ms;
    double draw_reserve_k;
    double start_surplus_w, quantum_w;
    int64_t min_on_ms, min_off_ms;
    int boiler_before_battery;
};

/* The tank's trend: samples at least BOILER_TREND_STEP_MS apart, the slope taken from the
 * oldest of BOILER_TREND_N of them (1-2 minutes), and only from a change of at least
 * BOILER_TREND_MIN_K: TankTemp has 0.1 K steps (docs/registers.md), so one step in a quiet
 * night must not read as a fall. */
#define BOILER_TREND_N       13
#define BOILER_TREND_STEP_MS 10000
#define BOILER_TREND_MIN_K   0.2

struct boiler_unit {
    int has_last;
    double last_w;
    int64_t since_ms; /* when last_w switched between 0 and > 0 */
    int keep_min;
    int small; /* on only because the tank was low: the surplus never reached start_surplus_w */
    int n_trend, head;
    int64_t trend_ms[BOILER_TREND_N];
    double trend_c[BOILER_TREND_N];
};

struct boiler_state {
    const struct boiler_cfg *cfg;
    struct boiler_unit u[PROCIMG_MAX_DEVICES];
};

#define F(m) offsetof(struct boiler_cfg, m)
static const struct param_field boiler_fields[] = {
    {"min_temp_c", PARAM_DOUBLE, F(min_temp_c), 45, 0, 95, "degC",
     "below this the tank heats at full power, from the grid if need be"},
    {"min_temp_band_k", PARAM_DOUBLE, F(min_temp_band_k), 3, 0, 30, "K",
     "full power goes on until min_temp_c + this"},
    {"min_temp_lookahead", PARAM_DURATION_MS, F(lookahead_ms), 900000, 0, 86400000, "ms",
     "full power also when the tank, falling as fast as it is, would reach min_temp_c within this"},
    {"draw_reserve_k", PARAM_DOUBLE, F(draw_reserve_k), 8, 0, 50, "K",
     "below min_temp_c + this, any surplus (one quantum) heats: a reserve for the next draw"},
    {"start_surplus_w", PARAM_DOUBLE, F(start_surplus_w), 300, 0, 1e6, "W",
     "least surplus worth heating with"},
    {"quantum_w", PARAM_DOUBLE, F(quantum_w), 100, 1, 1e5, "W",
     "the power limit moves in these steps"},
    {"min_on", PARAM_DURATION_MS, F(min_on_ms), 120000, 0, 3600000, "ms",
     "a non-zero limit holds at least this long"},
    {"min_off", PARAM_DURATION_MS, F(min_off_ms), 120000, 0, 3600000, "ms",
     "a zero limit holds at least this long"},
    {"boiler_before_battery", PARAM_BOOL, F(boiler_before_battery), 0, 0, 1, "",
     "the boiler gets the surplus before the batteries charge"},
};
#undef F

static int boiler_init(void *state, const void *cfg)
{
    struct boiler_state *s = state;
    s->cfg = cfg;
    return 0;
}

/* Records temp_c and returns the tank's slope in K/s over the last one to two minutes (NaN
 * until there is a minute of history, 0 for less than BOILER_TREND_MIN_K of change). */
static double trend(struct boiler_unit *u, int64_t now_ms, double temp_c)
{
    if (!isfinite(temp_c)) {
        u->n_trend = 0;
        return NAN;
    }
    int newest = (u->head + BOILER_TREND_N - 1) % BOILER_TREND_N;
    if (u->n_trend == 0 || now_ms - u->trend_ms[newest] >= BOILER_TREND_STEP_MS) {
        newest = u->head;
        u->trend_ms[newest] = now_ms;
        u->trend_c[newest] = temp_c;
        u->head = (u->head + 1) % BOILER_TREND_N;
        if (u->n_trend < BOILER_TREND_N)
            u->n_trend++;
    }
    /* the oldest sample of the last BOILER_TREND_N steps (fewer after a gap in the readings) */
    int oldest = (u->head + BOILER_TREND_N - u->n_trend) % BOILER_TREND_N;
    while (oldest != newest && now_ms - u->trend_ms[oldest] > BOILER_TREND_N * BOILER_TREND_STEP_MS)
        oldest = (oldest + 1) % BOILER_TREND_N;
    int64_t dt_ms = now_ms - u->trend_ms[oldest];
    double dt_c = temp_c - u->trend_c[oldest];
    if (dt_ms < 6 * BOILER_TREND_STEP_MS)
        return NAN;
    return fabs(dt_c) < BOILER_TREND_MIN_K - 1e-9 ? 0 : dt_c / ((double)dt_ms / 1000.0);
}

static int boiler_decide(void *state, const struct procimg *img, int64_t now_ms,
                         struct decision *dm)
{
    struct boiler_state *s = state;
    const struct boiler_cfg *c = s->cfg;
    double batt_w = procimg_sum_w(img, PROCIMG_BATTERY);
    double surplus = 0;
    if (img->grid_ok && isfinite(img->grid_w))
        surplus = procimg_sum_w(img, PROCIMG_BOILER) - img->grid_w -
                  (c->boiler_before_battery ? batt_w : fmax(batt_w, 0));
    const char *mode = "idle";
    double total = 0;
    for (size_t i = 0; i < img->n_devices && i < PROCIMG_MAX_DEVICES; i++) {
        const struct procimg_dev *d = &img->dev[i];
        struct boiler_unit *u = &s->u[i];
        if (d->type != PROCIMG_BOILER || !procimg_dev_usable(d))
            continue;
        double slope = trend(u, now_ms, d->boiler_temperature_c);
        if (d->boiler_state == PROCIMG_BOILER_FAULT) {
            u->has_last = 0;
            mode = "fault";
            continue;
        }
        double rated = d->rated_w > 0 ? d->rated_w : 0;
        double t = d->boiler_temperature_c;
        int falling = slope < 0 && t + slope * ((double)c->lookahead_ms / 1000.0) < c->min_temp_c;
        if (t < c->min_temp_c || falling)
            u->keep_min = 1;
        else if (!(t < c->min_temp_c + c->min_temp_band_k))
            u->keep_min = 0;
        double w;
        double avail = fmin(fmax(surplus, 0), rated);
        int was_on = u->has_last && u->last_w > 0;
        if (u->keep_min) {
            w = rated;
            mode = "keep_min";
        } else {
            /* hysteresis: start at start_surplus_w (at one quantum while the tank is in its
             * draw reserve), go on down to one quantum */
            int low = t < c->min_temp_c + c->draw_reserve_k;
            double start = low || (was_on && !u->small) ? c->quantum_w : c->start_surplus_w;
            w = avail >= start ? floor(avail / c->quantum_w) * c->quantum_w : 0;
        }
        if (u->has_last) {
            int transition = d->boiler_state == PROCIMG_BOILER_STARTING ||
                             d->boiler_state == PROCIMG_BOILER_STOPPING;
            int64_t held = now_ms - u->since_ms;
            if (transition && !u->keep_min)
                w = u->last_w;
            else if (was_on && w == 0 && held < c->min_on_ms)
                w = u->last_w;
            else if (!was_on && w > 0 && held < c->min_off_ms && !u->keep_min)
                w = 0;
            if ((w > 0) != was_on)
                u->since_ms = now_ms;
        } else {
            u->since_ms = now_ms;
        }
        if (!(w > 0) || u->keep_min || avail >= c->start_surplus_w)
            u->small = 0;
        else if (!was_on)
            u->small = 1;
        if (!u->keep_min)
            mode = w > 0 ? "surplus" : "blocked"; /* after the holds: what is asked */
        u->has_last = 1;
        u->last_w = w;
        surplus -= w;
        total += w;
        decision_request(dm, DSRC_OPTIMISATION, (int)i, w);
    }
    dm->target_w = surplus + total;
    dm->raw_w = total;
    if (!strcmp(dm->strategy, "boiler"))
        strat_mode(dm, mode);
    return 0;
}

const struct strategy_ops strategy_boiler_ops = {
    .name = "boiler",
    .summary = "Heat hot-water tanks with PV surplus; keep their minimum temperature; respect "
               "their state machine.",
    .source = DSRC_OPTIMISATION,
    .fields = boiler_fields,
    .n_fields = sizeof boiler_fields / sizeof boiler_fields[0],
    .cfg_size = sizeof(struct boiler_cfg),
    .state_size = sizeof(struct boiler_state),
    .init = boiler_init,
    .decide = boiler_decide,
};
