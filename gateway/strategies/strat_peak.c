/* strat_peak: the PeakShaving strategy. The batteries discharge just enough to keep the grid
 * import under import_limit_w and recharge only while the import is below recharge_below_w,
 * so that recharging never makes a new peak.
 *
 * The mode comes from the site's net load without batteries, base = grid + battery
 * (strat_util.h): above the target the batteries shave, below recharge_below_w (and under
 * recharge_soc) they recharge, in between they hold. Shaving and recharging run NetZero's
 * grid loop (strat_follow) toward the target, discharge-only or charge-only.
 *
 * With `window` (e.g. "15m", the billing interval of demand charges) the limit applies to the
 * window's average: the energy imported so far in the window (aligned to the calendar when
 * the site has one) leaves a budget, and the instantaneous target is what the rest of the
 * window may still use on average. Short spikes early in a window then cost no battery.
 *
 * With a demand charge in the site's tariff (sitectx.charges, common/tariff.h) the strategy
 * bills as the tariff does: it keeps the running peak of the billing period (the highest
 * 15-minute mean import among the windows whose start lies in the charge's time windows,
 * calendar-aligned) and holds max(import_limit_w, that peak): once the period's peak is set at
 * X, holding the import below X earns nothing, and the energy is better kept (the limit and the
 * recharge threshold both move up by X - import_limit_w). Outside the charge's time windows the
 * import costs no demand charge: the batteries do not shave and recharge at recharge_power_w up
 * to recharge_soc whatever the import. The running peak lives in memory: a restarted gateway
 * starts the period again from import_limit_w (conservative: it shaves at least as much).
 *
 * reserve_soc is the energy kept for the day's expected peaks. As a constraint stacked after
 * another strategy (docs/strategies.md) peak shaving bounds the site battery request: at
 * least base - target (so nobody, e.g. grid charging at a cheap tariff, pushes the import
 * over the limit) and no discharge for other purposes at or below reserve_soc. */
#include "gateway/strategies/strat_util.h"
#include "gateway/strategies/strategy.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>

struct peak_cfg {
    double import_limit_w;
    int64_t window_ms;
    double margin_w;
    double recharge_below_w, recharge_power_w, recharge_soc;
    double reserve_soc;
    double max_discharge_w;
    double kp, ki_per_s;
};

struct peak_state {
    const struct peak_cfg *cfg;
    struct pid pid;
    int64_t win_index, last_ms;
    double win_ws; /* W x s imported in the current window */
    double last_grid_w;
    int has_last;
    /* the demand charge's billing (only with one in the site's tariff) */
    int64_t bill_index; /* the current 15-minute billing window */
    double bill_ws;     /* W x s imported in it */
    long bill_period;   /* its billing period (tariff_demand_period), -1 = not billed */
    long peak_period;   /* the period period_peak_w belongs to, -1 = none yet */
    double period_peak_w;
    int has_bill;
};

#define BILL_WINDOW_MS (15 * 60 * 1000) /* a demand charge bills 15-minute means (tariff.h) */

#define F(m) offsetof(struct peak_cfg, m)
static const struct param_field peak_fields[] = {
    {"import_limit_w", PARAM_DOUBLE, F(import_limit_w), 5000, 0, 1e8, "W",
     "grid import to stay under (instantaneous, or the window's average)"},
    {"window", PARAM_DURATION_MS, F(window_ms), 0, 0, 86400000, "ms",
     "averaging window of the limit, e.g. 15m (0s = instantaneous)"},
    {"margin_w", PARAM_DOUBLE, F(margin_w), 100, 0, 1e6, "W",
     "the batteries aim this far below the limit (meter noise, latency)"},
    {"recharge_below_w", PARAM_DOUBLE, F(recharge_below_w), 3000, 0, 1e8, "W",
     "recharge only while the import (with the charging) stays below this"},
    {"recharge_power_w", PARAM_DOUBLE, F(recharge_power_w), 2000, 0, 1e7, "W",
     "largest recharge power"},
    {"recharge_soc", PARAM_DOUBLE, F(recharge_soc), 0.9, 0, 1, "0..1", "recharge up to this SoC"},
    {"reserve_soc", PARAM_DOUBLE, F(reserve_soc), 0.3, 0, 1, "0..1",
     "energy kept for the day's peaks: stacked strategies do not discharge below it"},
    {"max_discharge_w", PARAM_DOUBLE, F(max_discharge_w), 1e5, 0, 1e7, "W",
     "largest discharge request"},
    {"kp", PARAM_DOUBLE, F(kp), 0.5, 0, 100, "W/W", "proportional gain of the grid loop"},
    {"ki_per_s", PARAM_DOUBLE, F(ki_per_s), 0.2, 0, 100, "1/s", "integral gain of the grid loop"},
};
#undef F

static int peak_check(const void *cfgp, const char *path, char *err, size_t errlen)
{
    const struct peak_cfg *c = cfgp;
    if (c->recharge_below_w > c->import_limit_w) {
        snprintf(err, errlen, "%s.recharge_below_w: must not exceed import_limit_w (%g), got %g",
                 path, c->import_limit_w, c->recharge_below_w);
        return -EINVAL;
    }
    return 0;
}

static int peak_init(void *state, const void *cfg)
{
    struct peak_state *s = state;
    const struct peak_cfg *c = cfg;
    s->cfg = c;
    s->bill_period = s->peak_period = -1;
    return strat_follow_init(&s->pid, c->kp, c->ki_per_s);
}

/* The demand charge the strategy bills by: the site's, when it has one and a calendar (the
 * charge's windows and periods are calendar times); NULL otherwise. */
static const struct tariff_charges *peak_charges(const struct procimg *img)
{
    int64_t unix_ms;
    if (!img->ctx || !(img->ctx->charges.demand_per_kw > 0) ||
        sitectx_calendar(img->ctx, 0, &unix_ms))
        return NULL;
    return &img->ctx->charges;
}

/* Adds the import since the last cycle to the billing window; when a window closes its mean
 * updates the running peak of its billing period. t is calendar time. */
static void peak_bill(struct peak_state *s, const struct tariff_charges *ch, int64_t t,
                      double add_ws)
{
    int64_t idx = t / BILL_WINDOW_MS;
    if (s->has_bill)
        s->bill_ws += add_ws;
    if (s->has_bill && idx == s->bill_index)
        return;
    if (s->has_bill && s->bill_period >= 0) { /* a billed window closed: its mean counts */
        double mean = s->bill_ws / (BILL_WINDOW_MS / 1000.0);
        if (s->peak_period != s->bill_period) {
            s->peak_period = s->bill_period;
            s->period_peak_w = 0;
        }
        s->period_peak_w = fmax(s->period_peak_w, mean);
    }
    s->has_bill = 1;
    s->bill_index = idx;
    s->bill_ws = 0;
    s->bill_period = tariff_demand_period(ch, idx * BILL_WINDOW_MS);
}

/* The limit in force: import_limit_w, or the billing period's running peak once above it. */
static double peak_limit(const struct peak_state *s, const struct tariff_charges *ch)
{
    double limit = s->cfg->import_limit_w;
    if (ch && s->bill_period >= 0 && s->peak_period == s->bill_period)
        limit = fmax(limit, s->period_peak_w);
    return limit;
}

/* The grid power to aim at this cycle: the limit, or with a window what is left of the
 * window's budget spread over its rest. Integrates the import since the last cycle (into the
 * window and, with a demand charge, the billing window). *billed is 0 outside the demand
 * charge's time windows (nothing to shave there), 1 otherwise; *lift is how far the limit
 * moved up to the period's running peak. */
static double peak_target(struct peak_state *s, const struct procimg *img, int64_t now_ms,
                          int *billed, double *lift)
{
    const struct peak_cfg *c = s->cfg;
    const struct tariff_charges *ch = peak_charges(img);
    int64_t t = now_ms, unix_ms;
    if (sitectx_calendar(img->ctx, now_ms, &unix_ms) == 0)
        t = unix_ms;
    double add_ws = 0;
    if (s->has_last && now_ms > s->last_ms && isfinite(s->last_grid_w))
        add_ws = fmax(s->last_grid_w, 0) * (double)(now_ms - s->last_ms) / 1000.0;
    if (ch)
        peak_bill(s, ch, t, add_ws);
    *billed = !ch || s->bill_period >= 0;
    *lift = peak_limit(s, ch) - c->import_limit_w;
    double limit = c->import_limit_w + *lift - c->margin_w;
    int first = !s->has_last;
    s->has_last = 1;
    s->last_ms = now_ms;
    s->last_grid_w = img->grid_ok ? img->grid_w : NAN;
    if (c->window_ms <= 0)
        return limit;
    int64_t idx = t / c->window_ms;
    s->win_ws += add_ws;
    if (first || idx != s->win_index) {
        s->win_index = idx;
        s->win_ws = 0;
    }
    double left_s = (double)((idx + 1) * c->window_ms - t) / 1000.0;
    if (left_s < 1)
        return limit;
    double budget = limit * (double)c->window_ms / 1000.0 - s->win_ws;
    return fmax(budget / left_s, 0);
}

static int peak_decide(void *state, const struct procimg *img, int64_t now_ms, struct decision *dm)
{
    struct peak_state *s = state;
    const struct peak_cfg *c = s->cfg;
    int billed;
    double lift;
    double target = peak_target(s, img, now_ms, &billed, &lift);
    double base = strat_base_w(img);
    dm->target_w = target;
    if (isnan(base)) {
        pid_reset(&s->pid);
        strat_mode(dm, "no_grid");
        dm->raw_w = 0;
        return decision_request(dm, DSRC_OPTIMISATION, DECISION_SITE, 0.0);
    }
    double soc = procimg_site_soc(img), w = 0;
    if (!billed) { /* outside the demand charge's windows: refill for the next one */
        pid_reset(&s->pid);
        w = soc < c->recharge_soc ? -c->recharge_power_w : 0;
        strat_mode(dm, w < 0 ? "recharge_unbilled" : "hold_unbilled");
    } else if (base > target) {
        w = strat_follow(&s->pid, img, target, 0, c->max_discharge_w, now_ms, dm);
        strat_mode(dm, "shave");
    } else if (soc < c->recharge_soc && base < c->recharge_below_w + lift) {
        w = strat_follow(&s->pid, img, c->recharge_below_w + lift, -c->recharge_power_w, 0, now_ms,
                         dm);
        strat_mode(dm, "recharge");
    } else {
        pid_reset(&s->pid);
        strat_mode(dm, "hold");
    }
    dm->raw_w = w;
    return decision_request(dm, DSRC_OPTIMISATION, DECISION_SITE, w);
}

static int peak_constrain(void *state, const struct procimg *img, int64_t now_ms,
                          struct decision *dm, struct strategy_window *win)
{
    (void)dm;
    struct peak_state *s = state;
    int billed;
    double lift;
    double target = peak_target(s, img, now_ms, &billed, &lift);
    double base = strat_base_w(img);
    if (isnan(base))
        return 0;
    if (billed) /* outside the demand charge's windows the import is free to rise */
        win->lo_w = base - target;
    if (procimg_site_soc(img) <= s->cfg->reserve_soc)
        win->hi_w = billed ? fmax(win->lo_w, 0) : 0;
    win->conflict = DC_PEAK_LIMIT;
    return 0;
}

const struct strategy_ops strategy_peak_shaving_ops = {
    .name = "peak_shaving",
    .summary = "Keep the grid import under a limit (instantaneous or a window's average); "
               "recharge below a threshold; with a demand charge, hold the billing period's "
               "peak and shave only in its time windows.",
    .source = DSRC_OPTIMISATION,
    .fields = peak_fields,
    .n_fields = sizeof peak_fields / sizeof peak_fields[0],
    .cfg_size = sizeof(struct peak_cfg),
    .state_size = sizeof(struct peak_state),
    .check = peak_check,
    .init = peak_init,
    .decide = peak_decide,
    .constrain = peak_constrain,
};
