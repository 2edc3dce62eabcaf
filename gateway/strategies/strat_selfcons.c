/* strat_selfcons: the SelfConsumption strategy: the batteries absorb the PV surplus and cover
 * the load, so the site neither exports nor imports while they can; the export stays under
 * export_limit_w, curtailing PV through its limit when the batteries cannot take the rest.
 *
 * Batteries: NetZero's grid loop (strat_follow in strat_util.h: a PID fed back with what the
 * batteries were given, so a full battery or a safety limit does not wind it up) holds the
 * grid at target_w within [-max_charge_w, max_discharge_w], no discharge at or below min_soc.
 *
 * PV: when the export exceeds export_limit_w the total PV limit becomes PV production minus
 * the excess (and margin_w), shared among the inverters in proportion to their rating; while
 * curtailed the limit follows the export back up (limit = PV + headroom) and is released
 * once it reaches the rating. SunSpec inverters report no available power, so the limit is
 * found from the export, not computed from what the array could give. */
#include "gateway/strategies/strat_util.h"
#include "gateway/strategies/strategy.h"

#include <math.h>
#include <stddef.h>

struct sc_cfg {
    double target_w, kp, ki_per_s, max_charge_w, max_discharge_w, min_soc;
    double export_limit_w, margin_w;
    int curtail;
};

struct sc_state {
    const struct sc_cfg *cfg;
    struct pid pid;
    int curtailing;
    double limit_w; /* total PV limit while curtailing */
};

#define F(m) offsetof(struct sc_cfg, m)
static const struct param_field sc_fields[] = {
    {"target_w", PARAM_DOUBLE, F(target_w), 0, -1e6, 1e6, "W",
     "grid power to hold while the batteries can (+ import, - export)"},
    {"kp", PARAM_DOUBLE, F(kp), 0.5, 0, 100, "W/W", "proportional gain of the grid loop"},
    {"ki_per_s", PARAM_DOUBLE, F(ki_per_s), 0.2, 0, 100, "1/s", "integral gain of the grid loop"},
    {"max_charge_w", PARAM_DOUBLE, F(max_charge_w), 1e5, 0, 1e7, "W", "largest charge request"},
    {"max_discharge_w", PARAM_DOUBLE, F(max_discharge_w), 1e5, 0, 1e7, "W",
     "largest discharge request"},
    {"min_soc", PARAM_DOUBLE, F(min_soc), 0.1, 0, 1, "0..1",
     "no discharge at or below this site SoC (charging goes on)"},
    {"export_limit_w", PARAM_DOUBLE, F(export_limit_w), 1e9, 0, 1e9, "W",
     "largest export; PV is curtailed above it"},
    {"margin_w", PARAM_DOUBLE, F(margin_w), 50, 0, 1e5, "W",
     "curtailment aims this far inside the export limit"},
    {"curtail", PARAM_BOOL, F(curtail), 1, 0, 1, "", "curtail PV to hold the export limit"},
};
#undef F

static int sc_init(void *state, const void *cfg)
{
    struct sc_state *s = state;
    const struct sc_cfg *c = cfg;
    s->cfg = c;
    return strat_follow_init(&s->pid, c->kp, c->ki_per_s);
}

/* The PV curtailment for the export limit; requests per inverter while curtailing. */
static void sc_curtail(struct sc_state *s, const struct procimg *img, struct decision *dm)
{
    const struct sc_cfg *c = s->cfg;
    double rated = 0, pv = procimg_sum_w(img, PROCIMG_PV);
    for (size_t i = 0; i < img->n_devices; i++)
        if (img->dev[i].type == PROCIMG_PV && procimg_dev_usable(&img->dev[i]) &&
            img->dev[i].rated_w > 0)
            rated += img->dev[i].rated_w;
    if (!c->curtail || !img->grid_ok || !(rated > 0)) {
        s->curtailing = 0;
        return;
    }
    double room = c->export_limit_w - c->margin_w + img->grid_w; /* export headroom */
    if (!s->curtailing && room >= 0)
        return;
    double limit = fmax(pv + room, 0);
    if (s->curtailing && limit >= rated) {
        s->curtailing = 0; /* released: the inverters go back to their own maximum */
        return;
    }
    s->curtailing = 1;
    s->limit_w = limit;
    for (size_t i = 0; i < img->n_devices; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (d->type == PROCIMG_PV && procimg_dev_usable(d) && d->rated_w > 0)
            decision_request(dm, DSRC_OPTIMISATION, (int)i, limit * d->rated_w / rated);
    }
}

static int sc_decide(void *state, const struct procimg *img, int64_t now_ms, struct decision *dm)
{
    struct sc_state *s = state;
    const struct sc_cfg *c = s->cfg;
    if (!img->grid_ok) {
        pid_reset(&s->pid);
        strat_mode(dm, "no_grid");
        dm->raw_w = 0;
        return decision_request(dm, DSRC_OPTIMISATION, DECISION_SITE, 0.0);
    }
    double hi = procimg_site_soc(img) <= c->min_soc ? 0 : c->max_discharge_w;
    double w = strat_follow(&s->pid, img, c->target_w, -c->max_charge_w, hi, now_ms, dm);
    strat_mode(dm, w < 0 ? "absorb" : w > 0 ? "cover" : "idle");
    dm->raw_w = w;
    int rc = decision_request(dm, DSRC_OPTIMISATION, DECISION_SITE, w);
    sc_curtail(s, img, dm);
    if (s->curtailing)
        strat_mode(dm, "curtail");
    return rc;
}

/* As a constraint: hold the export limit, first with the batteries (they must charge at least
 * the excess), then with PV curtailment. */
static int sc_constrain(void *state, const struct procimg *img, int64_t now_ms, struct decision *dm,
                        struct strategy_window *win)
{
    (void)now_ms;
    struct sc_state *s = state;
    double base = strat_base_w(img);
    if (isnan(base))
        return 0;
    win->hi_w = base + s->cfg->export_limit_w;
    win->conflict = DC_EXPORT_LIMIT;
    sc_curtail(s, img, dm);
    return 0;
}

const struct strategy_ops strategy_self_consumption_ops = {
    .name = "self_consumption",
    .summary = "Absorb PV surplus, cover the load from the batteries, hold an export limit "
               "(curtailing PV).",
    .source = DSRC_OPTIMISATION,
    .fields = sc_fields,
    .n_fields = sizeof sc_fields / sizeof sc_fields[0],
    .cfg_size = sizeof(struct sc_cfg),
    .state_size = sizeof(struct sc_state),
    .init = sc_init,
    .decide = sc_decide,
    .constrain = sc_constrain,
};
