/* strat_boiler: the Boiler strategy (power to heat): hot-water tanks heat with PV surplus and
 * from the grid only to keep their minimum temperature.
 *
 * The boiler's own thermostat decides whether it heats (docs/registers.md: IDLE, STARTING,
 * RUNNING, STOPPING, FAULT); the gateway sets its PowerLimit. Per boiler:
 *   - FAULT: no command (the boiler is left alone until someone resets it);
 *   - below min_temp_c: full rated power until min_temp_c + min_temp_band_k (comfort and
 *     hygiene come before cost), mode /keep_min;
 *   - otherwise the surplus, in steps of quantum_w, once it reaches start_surplus_w (and
 *     then down to one quantum); below that 0 W, so the tank does not heat from the grid, mode
 * /surplus or /blocked;
 *   - the state machine is respected: while STARTING or STOPPING the limit is not changed,
 *     and a limit stays on (or off) for at least min_on (min_off) so the element is not
 *     switched on every passing cloud.
 * Surplus = boiler + (-grid) - battery: the battery's charging counts as available when
 * boiler_before_battery, its discharging never (the battery does not heat water). */
#include "gateway/strat_util.h"
#include "gateway/strategy.h"

#include <math.h>
#include <stddef.h>

struct boiler_cfg {
    double min_temp_c, min_temp_band_k;
    double start_surplus_w, quantum_w;
    int64_t min_on_ms, min_off_ms;
    int boiler_before_battery;
};

struct boiler_unit {
    int has_last;
    double last_w;
    int64_t since_ms; /* when last_w switched between 0 and > 0 */
    int keep_min;
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
        if (d->boiler_state == PROCIMG_BOILER_FAULT) {
            u->has_last = 0;
            mode = "fault";
            continue;
        }
        double rated = d->rated_w > 0 ? d->rated_w : 0;
        double t = d->boiler_temperature_c;
        if (t < c->min_temp_c)
            u->keep_min = 1;
        else if (!(t < c->min_temp_c + c->min_temp_band_k))
            u->keep_min = 0;
        double w;
        if (u->keep_min) {
            w = rated;
            mode = "keep_min";
        } else {
            double avail = fmin(fmax(surplus, 0), rated);
            /* hysteresis: start at start_surplus_w, go on down to one quantum */
            double start = u->has_last && u->last_w > 0 ? c->quantum_w : c->start_surplus_w;
            w = avail >= start ? floor(avail / c->quantum_w) * c->quantum_w : 0;
        }
        if (u->has_last) {
            int transition = d->boiler_state == PROCIMG_BOILER_STARTING ||
                             d->boiler_state == PROCIMG_BOILER_STOPPING;
            int64_t held = now_ms - u->since_ms;
            int was_on = u->last_w > 0;
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
