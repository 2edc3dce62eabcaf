/* strat_backup: the BackupPower strategy: keep reserve_soc in the batteries for grid outages,
 * recharge to it, and supply the site from batteries and PV while it is an island.
 *
 * Connected: below reserve_soc - resume_band the batteries recharge at recharge_power_w (from
 * the grid, or with grid_recharge false only from PV surplus) until reserve_soc; otherwise
 * they hold (0 W). Islanded - the grid meter reports a grid-side power failure (SunSpec 203
 * Evt bit M_EVENT_Power_Failure, procimg_dev.islanded) - the reserve is there to be spent:
 * the batteries are asked for the site's whole net load, load + EVSE + boiler - PV, down to
 * the safety floor (a grid-forming inverter follows the load by itself; the request keeps
 * the gateway's view in step with it). The simulator's grid_outage event raises the flag.
 *
 * As a constraint stacked after another strategy it narrows the site battery request: no
 * discharge at or below reserve_soc, at least the recharge while recharging, and the island
 * supply while islanded; each override is a `reserve` conflict in decisions.csv. */
#include "gateway/strategies/strat_util.h"
#include "gateway/strategies/strategy.h"

#include <math.h>
#include <stddef.h>

struct backup_cfg {
    double reserve_soc, resume_band, recharge_power_w;
    int grid_recharge;
};

struct backup_state {
    const struct backup_cfg *cfg;
    struct pid pid; /* recharging from surplus only: the grid loop toward 0 W, charge only */
    int recharging;
};

#define F(m) offsetof(struct backup_cfg, m)
static const struct param_field backup_fields[] = {
    {"reserve_soc", PARAM_DOUBLE, F(reserve_soc), 0.5, 0, 1, "0..1",
     "site SoC held for outages: no discharge below it while connected"},
    {"resume_band", PARAM_DOUBLE, F(resume_band), 0.02, 0, 0.5, "0..1",
     "recharging starts this far below reserve_soc and stops at it"},
    {"recharge_power_w", PARAM_DOUBLE, F(recharge_power_w), 2000, 0, 1e7, "W", "recharge power"},
    {"grid_recharge", PARAM_BOOL, F(grid_recharge), 1, 0, 1, "",
     "recharge from the grid (false: only from PV surplus)"},
};
#undef F

static int backup_init(void *state, const void *cfg)
{
    struct backup_state *s = state;
    s->cfg = cfg;
    return strat_follow_init(&s->pid, 0.5, 0.2);
}

/* What the batteries must deliver in an island: the site's net load (from the load meter;
 * without one, grid + batteries, the same balance seen from the grid meter). */
static double island_need_w(const struct procimg *img)
{
    int has_load_meter = 0;
    for (size_t i = 0; i < img->n_devices; i++)
        has_load_meter |=
            img->dev[i].type == PROCIMG_METER_LOAD && procimg_dev_usable(&img->dev[i]);
    if (!has_load_meter) {
        double base = strat_base_w(img);
        return isfinite(base) ? base : 0;
    }
    double load = procimg_sum_w(img, PROCIMG_METER_LOAD) + procimg_sum_w(img, PROCIMG_EVSE) +
                  procimg_sum_w(img, PROCIMG_BOILER) - procimg_sum_w(img, PROCIMG_PV);
    return isfinite(load) ? load : 0;
}

/* The recharge power now (negative), or 0; updates the hysteresis. */
static double backup_recharge(struct backup_state *s, const struct procimg *img)
{
    const struct backup_cfg *c = s->cfg;
    double soc = procimg_site_soc(img);
    if (isnan(soc))
        return 0;
    if (soc >= c->reserve_soc)
        s->recharging = 0;
    else if (soc < c->reserve_soc - c->resume_band)
        s->recharging = 1;
    if (!s->recharging)
        return 0;
    if (c->grid_recharge)
        return -c->recharge_power_w;
    double base = strat_base_w(img); /* surplus only */
    return isnan(base) || base >= 0 ? 0 : -fmin(c->recharge_power_w, -base);
}

static int backup_decide(void *state, const struct procimg *img, int64_t now_ms,
                         struct decision *dm)
{
    struct backup_state *s = state;
    double w;
    if (strat_islanded(img)) {
        w = island_need_w(img);
        strat_mode(dm, "island");
    } else {
        w = backup_recharge(s, img);
        if (s->recharging && !s->cfg->grid_recharge)
            w = strat_follow(&s->pid, img, 0, -s->cfg->recharge_power_w, 0, now_ms, dm);
        else
            pid_reset(&s->pid);
        strat_mode(dm, s->recharging ? "recharge" : "hold");
    }
    dm->raw_w = w;
    return decision_request(dm, DSRC_SCHEDULED, DECISION_SITE, w);
}

static int backup_constrain(void *state, const struct procimg *img, int64_t now_ms,
                            struct decision *dm, struct strategy_window *win)
{
    (void)now_ms;
    (void)dm;
    struct backup_state *s = state;
    win->conflict = DC_RESERVE;
    if (strat_islanded(img)) {
        win->lo_w = win->hi_w = island_need_w(img);
        return 0;
    }
    double r = backup_recharge(s, img);
    if (r < 0)
        win->hi_w = r;
    else if (procimg_site_soc(img) <= s->cfg->reserve_soc)
        win->hi_w = 0;
    return 0;
}

const struct strategy_ops strategy_backup_power_ops = {
    .name = "backup_power",
    .summary = "Hold a reserve SoC for outages and recharge to it; supply the site while "
               "islanded.",
    .source = DSRC_SCHEDULED,
    .fields = backup_fields,
    .n_fields = sizeof backup_fields / sizeof backup_fields[0],
    .cfg_size = sizeof(struct backup_cfg),
    .state_size = sizeof(struct backup_state),
    .init = backup_init,
    .decide = backup_decide,
    .constrain = backup_constrain,
};
