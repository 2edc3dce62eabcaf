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
};

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
    return strat_follow_init(&s->pid, c->kp, c->ki_per_s);
}

/* The grid power to aim at this cycle: the limit, or with a window what is left of the
 * window's budget spread over its rest. Integrates the import since the last cycle. */
static double peak_target(struct peak_state *s, const struct procimg *img, int64_t now_ms)
{
    const struct peak_cfg *c = s->cfg;
    double limit = c->import_limit_w - c->margin_w;
    if (c->window_ms <= 0)
        return limit;
    int64_t t = now_ms, unix_ms;
    if (sitectx_calendar(img->ctx, now_ms, &unix_ms) == 0)
        t = unix_ms;
    int64_t idx = t / c->window_ms;
    if (s->has_last && now_ms > s->last_ms && isfinite(s->last_grid_w))
        s->win_ws += fmax(s->last_grid_w, 0) * (double)(now_ms - s->last_ms) / 1000.0;
    if (!s->has_last || idx != s->win_index) {
        s->win_index = idx;
        s->win_ws = 0;
    }
    s->has_last = 1;
    s->last_ms = now_ms;
    s->last_grid_w = img->grid_ok ? img->grid_w : NAN;
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
    double target = peak_target(s, img, now_ms);
    double base = strat_base_w(img);
    dm->target_w = target;
    if (isnan(base)) {
        pid_reset(&s->pid);
        strat_mode(dm, "no_grid");
        dm->raw_w = 0;
        return decision_request(dm, DSRC_OPTIMISATION, DECISION_SITE, 0.0);
    }
    double soc = procimg_site_soc(img), w = 0;
    if (base > target) {
        w = strat_follow(&s->pid, img, target, 0, c->max_discharge_w, now_ms, dm);
        strat_mode(dm, "shave");
    } else if (soc < c->recharge_soc && base < c->recharge_below_w) {
        w = strat_follow(&s->pid, img, c->recharge_below_w, -c->recharge_power_w, 0, now_ms, dm);
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
    double target = peak_target(s, img, now_ms);
    double base = strat_base_w(img);
    if (isnan(base))
        return 0;
    win->lo_w = base - target;
    if (procimg_site_soc(img) <= s->cfg->reserve_soc)
        win->hi_w = fmax(win->lo_w, 0);
    win->conflict = DC_PEAK_LIMIT;
    return 0;
}

const struct strategy_ops strategy_peak_shaving_ops = {
    .name = "peak_shaving",
    .summary = "Keep the grid import under a limit (instantaneous or a window's average); "
               "recharge below a threshold.",
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
