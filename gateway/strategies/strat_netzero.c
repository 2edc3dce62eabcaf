/* strat_netzero: the NetZero strategy. A PID (pid.c) drives the grid meter's power toward
 * target_w (0: neither import nor export) with the site's batteries.
 *
 * Absolute form: the battery request is the PID output itself (P + I + D), not "previous
 * setpoint + output". The integral then carries the steady-state battery power, which keeps
 * the loop well behaved under setpoint latency and slow meters (an incremental form is an
 * extra integrator and overshoots there). The plant is reverse-acting (more discharge, less
 * import), so the PID sees error = grid_w - target_w and a positive output discharges.
 *
 * What was actually written last cycle (after arbitration and safety) is fed back with
 * pid_track: when an interlock held the batteries below the PID's output, the integral is
 * pulled back instead of winding up behind a limit the PID cannot see. Without a trustworthy
 * grid reading the strategy asks for 0 W and resets the PID; it restarts from what the
 * batteries were last given. */
#include "gateway/strategies/strategy.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>

#include "gateway/strategies/pid.h"
#include "gateway/strategies/strat_util.h"

struct net_zero_cfg {
    double target_w;
    double kp, ki_per_s, kd_s;
    double deadband_w, i_decay_per_s, rate_w_per_s, quantum_w, flip_hysteresis_w;
    double max_charge_w, max_discharge_w;
    double ff_gain;
};

struct net_zero_state {
    const struct net_zero_cfg *cfg;
    struct pid pid;
    int have_sample;    /* last_grid_w and ff_w hold a sample */
    double last_grid_w; /* the grid reading the feed-forward was last computed from */
    double ff_w;        /* the feed-forward, held between new grid samples */
};

#define F(m) offsetof(struct net_zero_cfg, m)
static const struct param_field net_zero_fields[] = {
    {"target_w", PARAM_DOUBLE, F(target_w), 0, -1e6, 1e6, "W",
     "grid power to hold (+ import, - export); 0 = net zero"},
    {"kp", PARAM_DOUBLE, F(kp), 0.5, 0, 100, "W/W", "proportional gain"},
    {"ki_per_s", PARAM_DOUBLE, F(ki_per_s), 0.2, 0, 100, "1/s", "integral gain"},
    {"kd_s", PARAM_DOUBLE, F(kd_s), 0, 0, 100, "s", "derivative gain, on the grid measurement"},
    {"deadband_w", PARAM_DOUBLE, F(deadband_w), 20, 0, 1e5, "W",
     "grid error within +/- this counts as zero"},
    {"i_decay_per_s", PARAM_DOUBLE, F(i_decay_per_s), 0, 0, 10, "1/s",
     "integral decay rate inside the deadband (0 = hold)"},
    {"rate_w_per_s", PARAM_DOUBLE, F(rate_w_per_s), 5000, 0, 1e7, "W/s",
     "max change of the request per second (0 = unlimited)"},
    {"quantum_w", PARAM_DOUBLE, F(quantum_w), 1, 0, 1e4, "W",
     "request resolution, the setpoint register's LSB (0 = none)"},
    {"flip_hysteresis_w", PARAM_DOUBLE, F(flip_hysteresis_w), 100, 0, 1e5, "W",
     "a request of the opposite sign to the last non-zero one stays 0 until it exceeds this"},
    {"max_charge_w", PARAM_DOUBLE, F(max_charge_w), 1e5, 0, 1e7, "W",
     "largest charge request (the PID's lower bound is -max_charge_w)"},
    {"max_discharge_w", PARAM_DOUBLE, F(max_discharge_w), 1e5, 0, 1e7, "W",
     "largest discharge request"},
    {"ff_gain", PARAM_DOUBLE, F(ff_gain), 1, 0, 1, "0..1",
     "share of the measured base load (grid + batteries) fed forward; 0 = PID only"},
};
#undef F

static int net_zero_init(void *state, const void *cfgp)
{
    struct net_zero_state *s = state;
    const struct net_zero_cfg *cfg = cfgp;
    s->cfg = cfg;
    struct pid_cfg pc = {
        .kp = cfg->kp,
        .ki_per_s = cfg->ki_per_s,
        .kd_s = cfg->kd_s,
        .deadband_w = cfg->deadband_w,
        .i_decay_per_s = cfg->i_decay_per_s,
        .rate_w_per_s = cfg->rate_w_per_s,
        .out_min_w = -cfg->max_charge_w,
        .out_max_w = cfg->max_discharge_w,
        .quantum_w = cfg->quantum_w,
        .flip_hysteresis_w = cfg->flip_hysteresis_w,
    };
    return pid_init(&s->pid, &pc);
}

/* The sum of what the cycle last wrote to the batteries; NaN when it never wrote to one. */
static double batteries_applied(const struct procimg *img)
{
    double sum = 0;
    int any = 0;
    for (size_t i = 0; i < img->n_devices; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (d->type != PROCIMG_BATTERY)
            continue;
        if (!d->has_prev_setpoint || !isfinite(d->prev_setpoint_w))
            return NAN;
        sum += d->prev_setpoint_w;
        any = 1;
    }
    return any ? sum : NAN;
}

/* The feed-forward: the battery power that would hold the grid at the target were the site's
 * base load (grid + batteries, strat_base_w) to stay as it is now. It is recomputed only when
 * the grid reading changes: a meter that refreshes slower than the cycle repeats its last
 * sample, and that stale grid reading added to a fresh battery reading that already moved
 * would count the batteries' change twice. Returns 1 when the grid reading is a new sample
 * (or the feed-forward is off: then every reading counts), 0 when it repeats the last one;
 * *ff_w the feed-forward, *moved_w its change this cycle. */
static int feed_forward(struct net_zero_state *s, const struct procimg *img, double *ff_w,
                        double *moved_w)
{
    double base = strat_base_w(img);
    *moved_w = 0;
    if (!(s->cfg->ff_gain > 0) || !isfinite(base)) {
        *ff_w = 0;
        return 1;
    }
    int fresh = !s->have_sample || img->grid_w != s->last_grid_w;
    if (fresh) {
        double ff = s->cfg->ff_gain * (base - s->cfg->target_w);
        *moved_w = s->have_sample ? ff - s->ff_w : 0;
        s->ff_w = ff;
        s->last_grid_w = img->grid_w;
        s->have_sample = 1;
    }
    *ff_w = s->ff_w;
    return fresh;
}

static int net_zero_decide(void *state, const struct procimg *img, int64_t now_ms,
                           struct decision *dm)
{
    struct net_zero_state *s = state;
    dm->target_w = s->cfg->target_w;
    if (!img->grid_ok || !isfinite(img->grid_w)) {
        pid_reset(&s->pid);
        s->have_sample = 0;
        dm->raw_w = 0;
        return decision_request(dm, DSRC_OPTIMISATION, DECISION_SITE, 0.0);
    }
    /* Tolerance: the split's rounding and one quantum per battery are not a cut. */
    double applied = batteries_applied(img);
    double ff, moved;
    int fresh = feed_forward(s, img, &ff, &moved);
    if (!s->pid.has_prev)
        pid_preset_ff(&s->pid, applied, ff);
    else
        pid_track(&s->pid, applied,
                  1.0 + s->cfg->quantum_w * (double)img->n_devices + 0.01 * fabs(s->pid.out_w));
    /* With the feed-forward the PI corrects only what it does not explain: the grid error
     * expected once the batteries deliver what they were given (the latency: a change asked
     * for but not yet measured) and once this cycle's change of the feed-forward acts. Fed
     * the raw error, its P term would add a load step a second time (kp x step of overshoot)
     * and its I term would integrate the step while the batteries are still on their way. A
     * repeated (stale) grid reading says nothing new: the PI holds. */
    double e = img->grid_w - s->cfg->target_w;
    if (s->cfg->ff_gain > 0) {
        double pending = isfinite(applied) ? applied - procimg_sum_w(img, PROCIMG_BATTERY) : 0;
        e = fresh ? e - s->cfg->ff_gain * pending - moved : 0;
    }
    double w = pid_step_ff(&s->pid, 0, -e, ff, now_ms);
    dm->error_w = img->grid_w - s->cfg->target_w;
    dm->p_w = s->pid.p_w;
    dm->i_w = s->pid.i_w;
    dm->d_w = s->pid.d_w;
    dm->raw_w = w;
    return decision_request(dm, DSRC_OPTIMISATION, DECISION_SITE, w);
}

const struct strategy_ops strategy_net_zero_ops = {
    .name = "net_zero",
    .summary = "PID on the grid meter: hold the grid power at a target (0 W) with the batteries.",
    .source = DSRC_OPTIMISATION,
    .fields = net_zero_fields,
    .n_fields = sizeof net_zero_fields / sizeof net_zero_fields[0],
    .cfg_size = sizeof(struct net_zero_cfg),
    .state_size = sizeof(struct net_zero_state),
    .init = net_zero_init,
    .decide = net_zero_decide,
};
