/* pid: see pid.h.
 *
 * The controller runs in absolute (positional) form: the output is P + I + D, so the integral
 * carries the steady-state output (for NetZero: the battery power that cancels the site's
 * net load). Everything that limits the output - bounds, rate limit - is folded into one
 * window [lo, hi] around the last output before the integral is updated, so that the
 * anti-windup rule sees every kind of saturation: when the unclamped output lies outside the
 * window and the error pushes further out, the integral is not advanced (conditional
 * integration). The integral is also kept inside the output bounds, so after a long
 * saturation it never holds more than a full-scale output and the loop leaves saturation as
 * soon as the error changes sign. */
#include "gateway/strategies/pid.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int nonneg_finite(double v)
{
    return isfinite(v) && v >= 0;
}

int pid_init(struct pid *p, const struct pid_cfg *cfg)
{
    if (!p || !cfg)
        return -EINVAL;
    if (!nonneg_finite(cfg->kp) || !nonneg_finite(cfg->ki_per_s) || !nonneg_finite(cfg->kd_s) ||
        !nonneg_finite(cfg->deadband_w) || !nonneg_finite(cfg->i_decay_per_s) ||
        !nonneg_finite(cfg->rate_w_per_s) || !nonneg_finite(cfg->quantum_w) ||
        !nonneg_finite(cfg->flip_hysteresis_w) || !isfinite(cfg->out_min_w) ||
        !isfinite(cfg->out_max_w) || cfg->out_min_w > 0 || cfg->out_max_w < 0)
        return -EINVAL;
    memset(p, 0, sizeof *p);
    p->cfg = *cfg;
    return 0;
}

void pid_reset(struct pid *p)
{
    struct pid_cfg cfg = p->cfg;
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
}

void pid_preset_ff(struct pid *p, double out_w, double ff_w)
{
    if (!isfinite(out_w))
        return;
    if (!isfinite(ff_w))
        ff_w = 0;
    p->out_w = clampd(out_w, p->cfg.out_min_w, p->cfg.out_max_w);
    p->integral_w = p->out_w - ff_w;
    p->ff_w = ff_w;
    p->last_sign = p->out_w > 0 ? 1 : p->out_w < 0 ? -1 : 0;
}

void pid_preset(struct pid *p, double out_w)
{
    pid_preset_ff(p, out_w, 0);
}

void pid_track(struct pid *p, double applied_w, double tolerance_w)
{
    if (!isfinite(applied_w) || !(fabs(applied_w - p->out_w) > tolerance_w))
        return;
    applied_w = clampd(applied_w, p->cfg.out_min_w, p->cfg.out_max_w);
    p->out_w =
        p->cfg.quantum_w > 0 ? round(applied_w / p->cfg.quantum_w) * p->cfg.quantum_w : applied_w;
    p->out_w = clampd(p->out_w, p->cfg.out_min_w, p->cfg.out_max_w);
    double i_max = applied_w - p->ff_w;
    p->integral_w = clampd(p->integral_w, fmin(0, i_max), fmax(0, i_max));
}

/* Rounds to the resolution, staying inside [lo, hi]. The last output is a multiple of the
 * quantum and lies inside the window, so stepping one quantum back toward it always lands
 * inside. */
static double quantise(double y, double q, double lo, double hi)
{
    if (q <= 0)
        return y;
    double r = round(y / q) * q;
    if (r > hi)
        r -= q;
    if (r < lo)
        r += q;
    return clampd(r, lo, hi);
}

double pid_step(struct pid *p, double setpoint, double measurement, int64_t now_ms)
{
    return pid_step_ff(p, setpoint, measurement, 0, now_ms);
}

double pid_step_ff(struct pid *p, double setpoint, double measurement, double ff_w, int64_t now_ms)
{
    const struct pid_cfg *c = &p->cfg;
    if (!isfinite(setpoint) || !isfinite(measurement))
        return p->out_w;
    if (!isfinite(ff_w))
        ff_w = 0;

    double dt_s = 0;
    if (p->has_prev && now_ms > p->last_ms)
        dt_s = (double)(now_ms - p->last_ms) / 1000.0;

    double e = setpoint - measurement;
    int in_deadband = fabs(e) <= c->deadband_w;
    if (in_deadband)
        e = 0;

    double p_w = c->kp * e;
    /* On the measurement, not the error: a setpoint change gives no derivative kick. */
    double d_w = 0;
    if (dt_s > 0 && c->kd_s > 0)
        d_w = -c->kd_s * (measurement - p->prev_meas) / dt_s;

    /* The window the output may take this step: bounds, narrowed by the rate limit. */
    double last = clampd(p->out_w, c->out_min_w, c->out_max_w);
    double lo = c->out_min_w, hi = c->out_max_w;
    if (c->rate_w_per_s > 0) {
        double step = c->rate_w_per_s * dt_s;
        lo = fmax(lo, last - step);
        hi = fmin(hi, last + step);
    }

    double i_w = p->integral_w;
    if (dt_s > 0) {
        if (in_deadband) {
            if (c->i_decay_per_s > 0)
                i_w *= exp(-c->i_decay_per_s * dt_s);
        } else {
            double cand = i_w + c->ki_per_s * e * dt_s;
            double u = ff_w + p_w + cand + d_w;
            int winding = (u > hi && e > 0) || (u < lo && e < 0);
            if (!winding)
                i_w = cand;
        }
    }
    /* ff + I stays inside the bounds (with ff 0: I inside the bounds) */
    i_w = clampd(i_w, fmin(0, c->out_min_w - ff_w), fmax(0, c->out_max_w - ff_w));

    double u = ff_w + p_w + i_w + d_w;
    double y = clampd(u, lo, hi);

    /* Sign hysteresis: a battery should not toggle between charging and discharging on
     * meter noise around zero. 0 lies between the last output and y, so it is inside the
     * window and the bounds. */
    if (c->flip_hysteresis_w > 0 && p->last_sign != 0 && y != 0 &&
        (y > 0 ? 1 : -1) != p->last_sign && fabs(y) <= c->flip_hysteresis_w)
        y = 0;

    y = quantise(y, c->quantum_w, lo, hi);

    p->integral_w = i_w;
    p->ff_w = ff_w;
    p->error_w = e;
    p->p_w = p_w;
    p->i_w = i_w;
    p->d_w = d_w;
    p->unclamped_w = u;
    p->saturated = u > hi || u < lo;
    p->out_w = y;
    if (y > 0)
        p->last_sign = 1;
    else if (y < 0)
        p->last_sign = -1;
    p->prev_meas = measurement;
    p->last_ms = now_ms;
    p->has_prev = 1;
    return y;
}
