/* strat_util: small pure helpers the strategies share (static inline, no state): the site's
 * net load seen without its batteries, the calendar, clamping, and the mode note that a
 * strategy appends to its name in the DecisionMetrics ("time_of_use/charge"), so that every
 * row of decisions.csv says which branch of the strategy decided. */
#ifndef DERLOOP_STRAT_UTIL_H
#define DERLOOP_STRAT_UTIL_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/caltime.h"
#include "gateway/control/decision.h"
#include "gateway/strategies/pid.h"
#include "gateway/control/procimg.h"
#include "gateway/control/sitectx.h"

#define STRAT_EVSE_VOLTAGE_V 230.0 /* per phase, as the EVSE driver converts (devmap.c) */

static inline double strat_clamp(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

/* The grid power the site would have with its batteries at 0 W (grid + battery, the site
 * balance of docs/physics.md): + the batteries would have to discharge this much to reach 0 W at
 * the meter, - this much surplus is there to charge. NaN without a trustworthy grid meter. */
static inline double strat_base_w(const struct procimg *img)
{
    if (!img->grid_ok || !isfinite(img->grid_w))
        return NAN;
    return img->grid_w + procimg_sum_w(img, PROCIMG_BATTERY);
}

/* Whether the grid meter reports that the site is an island (grid-side power failure). */
static inline int strat_islanded(const struct procimg *img)
{
    const struct procimg_dev *m = procimg_grid_meter(img);
    return m && m->islanded;
}

/* The calendar at now_ms split into fields; 0, or -1 without a calendar. */
static inline int strat_calendar(const struct procimg *img, int64_t now_ms, struct caltm *tm)
{
    int64_t unix_ms;
    if (sitectx_calendar(img->ctx, now_ms, &unix_ms))
        return -1;
    caltime_split(unix_ms, tm);
    return 0;
}

/* Milliseconds since midnight (UTC calendar); -1 without a calendar. */
static inline int64_t strat_time_of_day_ms(const struct procimg *img, int64_t now_ms)
{
    struct caltm tm;
    if (strat_calendar(img, now_ms, &tm))
        return -1;
    return ((int64_t)tm.hour * 3600 + tm.min * 60 + tm.sec) * 1000 + tm.ms;
}

/* ---- the grid follower --------------------------------------------------------------------- */

/* Strategies that hold the grid meter at a target with the batteries (self_consumption,
 * peak_shaving, time_of_use while discharging, backup_power in an island) use NetZero's loop
 * (strat_netzero.c, docs/strategies.md "NetZero in detail"): a PID in absolute form on the
 * grid meter, fed back with what the batteries were actually given. A one-step calculation
 * from grid + battery readings looks simpler but oscillates as soon as the meter and the
 * battery are not read at the same instant, which is every real site. The bounds change per
 * cycle with the strategy's mode (e.g. discharge only); they must contain 0. */
static inline int strat_follow_init(struct pid *p, double kp, double ki_per_s)
{
    struct pid_cfg pc = {
        .kp = kp,
        .ki_per_s = ki_per_s,
        .deadband_w = 20,
        .rate_w_per_s = 5000,
        .out_min_w = -1e7,
        .out_max_w = 1e7,
        .quantum_w = 1,
        .flip_hysteresis_w = 100,
    };
    return pid_init(p, &pc);
}

/* The sum of what the cycle last wrote to the batteries; NaN when it never wrote to one. */
static inline double strat_batteries_applied(const struct procimg *img)
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

/* One step toward grid = target_w with a battery request in [lo_w, hi_w] (lo <= 0 <= hi).
 * Without a trustworthy grid reading the loop resets and asks for 0 W. Writes the PID terms
 * into dm. */
static inline double strat_follow(struct pid *p, const struct procimg *img, double target_w,
                                  double lo_w, double hi_w, int64_t now_ms, struct decision *dm)
{
    if (!img->grid_ok || !isfinite(img->grid_w)) {
        pid_reset(p);
        return 0;
    }
    double env_lo, env_hi; /* no request beyond what the interlocks allow: no wind-up */
    procimg_battery_envelope(img, &env_lo, &env_hi);
    lo_w = fmax(lo_w, env_lo);
    hi_w = fmin(hi_w, env_hi);
    p->cfg.out_min_w = lo_w < 0 ? lo_w : 0;
    p->cfg.out_max_w = hi_w > 0 ? hi_w : 0;
    double applied = strat_batteries_applied(img);
    if (!p->has_prev)
        pid_preset(p, applied);
    else
        pid_track(p, applied, 1.0 + (double)img->n_devices + 0.01 * fabs(p->out_w));
    double w = pid_step(p, -target_w, -img->grid_w, now_ms);
    dm->target_w = target_w;
    dm->error_w = img->grid_w - target_w;
    dm->p_w = p->p_w;
    dm->i_w = p->i_w;
    dm->d_w = p->d_w;
    return w;
}

/* Appends "/mode" to the strategy's name in dm (once per cycle; later calls replace it). */
static inline void strat_mode(struct decision *dm, const char *mode)
{
    char *slash = strchr(dm->strategy, '/');
    if (slash)
        *slash = '\0';
    size_t n = strlen(dm->strategy);
    snprintf(dm->strategy + n, sizeof dm->strategy - n, "/%s", mode);
}

#endif
