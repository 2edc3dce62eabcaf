/* strat_ev: the EVCharging strategy: cars charge from PV surplus, with start and stop
 * hysteresis, whole amps between the charger's minimum and maximum, departure deadlines met
 * from the grid when the surplus is not enough, several chargers sharing the surplus equally
 * or in configuration order, and batteries that do not discharge into the cars.
 *
 * Surplus: what PV gives beyond the house, seen at the meter: evse + (-grid) - battery, where
 * the battery term counts its charging as available to the cars (ev_before_battery: cars
 * first, the battery takes what they leave) and never its discharging.
 *
 * Per connected charger (IEC 61851 B or C with energy still wanted), share = its part of the
 * surplus. Off, it starts when share >= minimum power + start_margin_w has held for
 * start_delay; on, it stops when share < minimum power - stop_margin_w has held for
 * stop_delay (between the two it charges at the minimum, topping up from the grid). The
 * current is floor(share / (230 V x phases)) amps, clamped to [min, max]; the EVSE driver
 * turns the request in W back into exactly that current.
 *
 * Deadlines: with a departure for the charger (site configuration "ev_departures", as a
 * user's app would set it; the charger's register map has no such point) and its
 * SessionNeedRemaining, the power still needed on average is need / time left x
 * deadline_margin, planned to finish deadline_reserve before the departure (a car tapers
 * near full, so the last kWh come slowly; inside the reserve the charger runs at its
 * maximum while energy is still wanted). Once that reaches the charger's minimum power (later
 * charging at the minimum would no longer finish in time) the plan takes over, and holds until
 * the car leaves, is full or gets another departure: the charger runs at least at the minimum,
 * at the plan's power rounded up to whole amps if more, from the grid if need be. Until then
 * the car waits for surplus. (Without the hold the plan let go as soon as the car, charging at
 * the rounded-up current, got ahead of the average, and took over again seconds later:
 * ev-charging made 4828 writes with start_margin_w=6000 and 1894 with min_current_a=16.)
 * Under the plan, a car that takes clearly less than it is given (under EV_SLOW_RATIO of the
 * last request for EV_SLOW_HOLD_MS: it tapers, is capped, or charges on fewer phases than
 * the charger) gets full current to the end: the plan's average no longer finishes it.
 * The reserve must cover the taper: with a higher min_current_a the plan starts later (its
 * slack, (deadline_margin - 1) x need / minimum power, shrinks) and the taper begins later.
 *
 * Currents are whole amps (IEC 61851 duty steps in practice; the EVSE driver floors a
 * request): a fractional minimum is rounded up, a fractional maximum down.
 *
 * Batteries: unless battery_to_ev, while a car charges the site battery request is bounded
 * to discharge at most the house's own net load, so a strategy stacked before this one
 * (self_consumption) does not empty the battery into the car (`ev_battery` conflict). */
#include "gateway/strategies/strat_util.h"
#include "gateway/strategies/strategy.h"

#include <math.h>
#include <stddef.h>

struct ev_cfg {
    double start_margin_w, stop_margin_w;
    int64_t start_delay_ms, stop_delay_ms;
    double min_current_a;
    int priority;
    int ev_before_battery, battery_to_ev;
    double deadline_margin;
    int64_t deadline_reserve_ms;
};

struct ev_charger {
    int on;
    int64_t cond_since; /* -1: the start (off) or stop (on) condition does not hold */
    int deadline;       /* the plan has taken over until the car leaves or is full */
    int64_t dep_ms;     /* the departure it plans for */
    int64_t slow_since; /* -1: the car takes what it is given */
    int slow;           /* it took clearly less for EV_SLOW_HOLD_MS: full current to the end */
};

/* The car "takes less than it is given" below this fraction of the last request, held this
 * long (well beyond the EVSE's response latency and ramp after a change of request). */
#define EV_SLOW_RATIO   0.9
#define EV_SLOW_HOLD_MS 60000

struct ev_state {
    const struct ev_cfg *cfg;
    struct ev_charger ch[PROCIMG_MAX_DEVICES];
};

#define F(m) offsetof(struct ev_cfg, m)
static const struct param_field ev_fields[] = {
    {"start_margin_w", PARAM_DOUBLE, F(start_margin_w), 200, 0, 1e5, "W",
     "surplus above the minimum charging power needed to start"},
    {"stop_margin_w", PARAM_DOUBLE, F(stop_margin_w), 500, 0, 1e5, "W",
     "grid top-up tolerated below the minimum power before stopping"},
    {"start_delay", PARAM_DURATION_MS, F(start_delay_ms), 60000, 0, 3600000, "ms",
     "the start condition must hold this long"},
    {"stop_delay", PARAM_DURATION_MS, F(stop_delay_ms), 120000, 0, 3600000, "ms",
     "the stop condition must hold this long"},
    {"min_current_a", PARAM_DOUBLE, F(min_current_a), 6, 0, 100, "A",
     "least charging current (the charger's own minimum applies if higher)"},
    {"priority", PARAM_BOOL, F(priority), 0, 0, 1, "",
     "share the surplus in configuration order (false: equally)"},
    {"ev_before_battery", PARAM_BOOL, F(ev_before_battery), 1, 0, 1, "",
     "the cars get the surplus before the batteries charge"},
    {"battery_to_ev", PARAM_BOOL, F(battery_to_ev), 0, 0, 1, "",
     "the batteries may discharge into the cars"},
    {"deadline_margin", PARAM_DOUBLE, F(deadline_margin), 1.2, 1, 10, "",
     "factor on the power needed to finish by the departure"},
    {"deadline_reserve", PARAM_DURATION_MS, F(deadline_reserve_ms), 3600000, 0, 86400000, "ms",
     "plan to finish this long before the departure; inside it, full current (cars taper)"},
};
#undef F

static int ev_init(void *state, const void *cfg)
{
    struct ev_state *s = state;
    s->cfg = cfg;
    for (size_t i = 0; i < PROCIMG_MAX_DEVICES; i++)
        s->ch[i].cond_since = s->ch[i].slow_since = -1;
    return 0;
}

static int connected(const struct procimg_dev *d)
{
    return d->type == PROCIMG_EVSE && procimg_dev_usable(d) &&
           (d->evse_state == PROCIMG_EVSE_B || d->evse_state == PROCIMG_EVSE_C) &&
           !(d->evse_need_wh <= 0);
}

/* Whether cond has held for delay_ms (the timer restarts whenever it does not hold). */
static int held(struct ev_charger *c, int cond, int64_t now_ms, int64_t delay_ms)
{
    if (!cond) {
        c->cond_since = -1;
        return 0;
    }
    if (c->cond_since < 0)
        c->cond_since = now_ms;
    return now_ms - c->cond_since >= delay_ms;
}

static int ev_decide(void *state, const struct procimg *img, int64_t now_ms, struct decision *dm)
{
    struct ev_state *s = state;
    const struct ev_cfg *c = s->cfg;
    double evse_w = procimg_sum_w(img, PROCIMG_EVSE);
    double batt_w = procimg_sum_w(img, PROCIMG_BATTERY);
    double surplus = 0;
    if (img->grid_ok && isfinite(img->grid_w))
        surplus = evse_w - img->grid_w - (c->ev_before_battery ? batt_w : fmax(batt_w, 0));
    size_t n = 0;
    for (size_t i = 0; i < img->n_devices; i++)
        n += connected(&img->dev[i]);
    double left = surplus, total = 0;
    int any_on = 0, any_deadline = 0;
    for (size_t i = 0; i < img->n_devices && i < PROCIMG_MAX_DEVICES; i++) {
        const struct procimg_dev *d = &img->dev[i];
        struct ev_charger *ch = &s->ch[i];
        if (d->type != PROCIMG_EVSE)
            continue;
        if (!connected(d)) {
            ch->on = 0;
            ch->cond_since = ch->slow_since = -1;
            ch->deadline = ch->slow = 0;
            if (procimg_dev_usable(d))
                decision_request(dm, DSRC_OPTIMISATION, (int)i, 0.0);
            continue;
        }
        double unit = STRAT_EVSE_VOLTAGE_V * (d->evse_phases > 0 ? d->evse_phases : 3);
        double min_a = ceil(fmax(c->min_current_a, d->evse_min_a > 0 ? d->evse_min_a : 6) - 1e-9);
        double max_a = floor((d->evse_max_a > 0 ? d->evse_max_a : 16) + 1e-9);
        if (min_a > max_a)
            min_a = max_a;
        double share = c->priority ? fmin(fmax(left, 0), max_a * unit) : surplus / (double)n;
        if (!ch->on &&
            held(ch, share >= min_a * unit + c->start_margin_w, now_ms, c->start_delay_ms)) {
            ch->on = 1;
            ch->cond_since = -1;
        } else if (ch->on &&
                   held(ch, share < min_a * unit - c->stop_margin_w, now_ms, c->stop_delay_ms)) {
            ch->on = 0;
            ch->cond_since = -1;
        }
        double amps = ch->on ? strat_clamp(floor(share / unit + 1e-9), min_a, max_a) : 0;
        int64_t dep;
        if (sitectx_next_departure(img->ctx, d->asset_id, now_ms, &dep) == 0) {
            if (ch->deadline && dep != ch->dep_ms)
                ch->deadline = ch->slow = 0; /* a new departure: plan afresh */
            double hours = (double)(dep - now_ms - c->deadline_reserve_ms) / 3600000.0;
            double need_w = hours > 0 ? d->evse_need_wh / hours * c->deadline_margin : INFINITY;
            if (need_w >= min_a * unit) {
                ch->deadline = 1;
                ch->dep_ms = dep;
            }
            int taking_less = d->evse_state == PROCIMG_EVSE_C && d->has_prev_setpoint &&
                              d->prev_setpoint_w > 0 &&
                              d->power_w < EV_SLOW_RATIO * d->prev_setpoint_w;
            if (!taking_less)
                ch->slow_since = -1;
            else if (ch->slow_since < 0)
                ch->slow_since = now_ms;
            if (ch->deadline && ch->slow_since >= 0 && now_ms - ch->slow_since >= EV_SLOW_HOLD_MS)
                ch->slow = 1;
            if (ch->deadline && ch->slow)
                need_w = INFINITY;
            if (ch->deadline && need_w > amps * unit) {
                amps = strat_clamp(ceil(need_w / unit - 1e-9), min_a, max_a);
                any_deadline = 1;
            }
        } else {
            ch->deadline = ch->slow = 0;
        }
        double w = amps * unit;
        left -= w;
        total += w;
        any_on |= amps > 0;
        decision_request(dm, DSRC_OPTIMISATION, (int)i, w);
    }
    dm->target_w = surplus;
    dm->raw_w = total;
    if (!strchr(dm->strategy, '/') && !strcmp(dm->strategy, "ev_charging"))
        strat_mode(dm, any_deadline ? "deadline" : any_on ? "surplus" : n ? "waiting" : "idle");
    if (any_on && !c->battery_to_ev && img->grid_ok) {
        double house = img->grid_w + batt_w - evse_w; /* net load without batteries and cars */
        strategy_narrow_site(dm, DSRC_OPTIMISATION, -INFINITY, fmax(house, 0), DC_EV_BATTERY);
    }
    return 0;
}

const struct strategy_ops strategy_ev_charging_ops = {
    .name = "ev_charging",
    .summary = "Charge cars from PV surplus (hysteresis, whole amps), meet departure deadlines "
               "from the grid, share among chargers.",
    .source = DSRC_OPTIMISATION,
    .fields = ev_fields,
    .n_fields = sizeof ev_fields / sizeof ev_fields[0],
    .cfg_size = sizeof(struct ev_cfg),
    .state_size = sizeof(struct ev_state),
    .init = ev_init,
    .decide = ev_decide,
};
