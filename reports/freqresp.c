/* freqresp: see freqresp.h.
 *
 * Times are the starts of the site's steps, counted from the run's start: the measurement is at
 * the step's resolution, and a pure function of the steps fed in, in order. */
#include "reports/freqresp.h"

#include <math.h>

#include "reports/kpi.h"

/* An FCR excursion counts for the activation time once it asks for this share of fcr_power_w
 * (a small excursion's response is lost in the noise), and a response counts as activated at
 * this share of what is asked: the 90 % criterion of step-response tests (ENTSO-E's FCR
 * prequalification measures full activation; Nordic FFR likewise) with room for the ramp's
 * and the quantisation's last watts. */
#define FR_QUALIFY 0.5
#define FR_REACHED 0.9

static void fr_fcr_close(struct freqresp *f, int64_t end_ms)
{
    if (f->fcr_sign && f->fcr_q_ms >= 0 && !f->fcr_done)
        f->fcr_worst_s = fmax(f->fcr_worst_s, (end_ms - f->fcr_q_ms) / 1000.0);
    f->fcr_sign = 0;
}

static void fr_ffr_close(struct freqresp *f, int64_t end_ms)
{
    if (f->ffr_open && !f->ffr_done)
        f->ffr_worst_s = fmax(f->ffr_worst_s, (end_ms - f->ffr_t_ms) / 1000.0);
    if (f->ffr_open) /* never activated: nothing of the window was held */
        f->ffr_support_worst =
            fmin(f->ffr_support_worst, !f->ffr_done ? 0.0
                                       : f->ffr_win_ms > 0
                                           ? 100.0 * (double)f->ffr_held_ms / (double)f->ffr_win_ms
                                           : 100.0);
    f->ffr_open = 0;
}

static void fr_fcr(struct freqresp *f, double freq_hz, double bat_w, double prev_w, int64_t t,
                   int64_t dt_ms)
{
    const struct gridsvc_contract *p = &f->p;
    double df = freq_hz - p->nominal_hz, span = p->fcr_full_hz - p->fcr_deadband_hz;
    double mag = fabs(df) - p->fcr_deadband_hz;
    mag = span > 0 ? mag / span : mag > 0;
    int sign = isfinite(freq_hz) && mag > 0 ? (df < 0 ? 1 : -1) : 0;
    if (sign != f->fcr_sign) {
        /* straight from one side to the other: the response is still measured from the power
         * before any of it */
        double p0 = f->fcr_sign ? f->fcr_p0_w : prev_w;
        fr_fcr_close(f, t);
        f->fcr_sign = sign;
        f->fcr_p0_w = p0;
        f->fcr_q_ms = -1;
        f->fcr_done = 0;
    }
    if (!sign)
        return;
    double req = p->fcr_power_w * fmin(mag, 1), got = sign * (bat_w - f->fcr_p0_w);
    f->fcr_req_wh += req * (double)dt_ms * KPI_WH_PER_W_MS;
    f->fcr_del_wh += fmin(fmax(got, 0), req) * (double)dt_ms * KPI_WH_PER_W_MS;
    if (f->fcr_q_ms < 0 && req >= FR_QUALIFY * p->fcr_power_w)
        f->fcr_q_ms = t;
    if (f->fcr_q_ms >= 0 && !f->fcr_done && got >= FR_REACHED * req) {
        f->fcr_done = 1;
        f->fcr_worst_s = fmax(f->fcr_worst_s, (t - f->fcr_q_ms) / 1000.0);
    }
}

static void fr_ffr(struct freqresp *f, double freq_hz, double bat_w, double prev_w, int64_t t,
                   int64_t dt_ms)
{
    const struct gridsvc_contract *p = &f->p;
    if (f->ffr_open && t >= f->ffr_t_ms + p->ffr_duration_ms)
        fr_ffr_close(f, f->ffr_t_ms + p->ffr_duration_ms);
    int armed = !f->ffr_seen || t >= f->ffr_t_ms + p->ffr_duration_ms + p->ffr_rearm_ms;
    if (armed && freq_hz <= p->ffr_trigger_hz) { /* NaN compares false */
        f->ffr_seen = f->ffr_open = 1;
        f->ffr_done = 0;
        f->ffr_t_ms = t;
        f->ffr_win_ms = f->ffr_held_ms = 0;
        /* from the power before the disturbance: an FCR droop already under way when the
         * frequency reaches the trigger is part of the change, not a new baseline */
        f->ffr_p0_w = f->fcr_sign > 0 ? f->fcr_p0_w : prev_w;
    }
    int held = bat_w - f->ffr_p0_w >= FR_REACHED * p->ffr_power_w;
    if (f->ffr_open && !f->ffr_done && held) {
        f->ffr_done = 1;
        f->ffr_worst_s = fmax(f->ffr_worst_s, (t - f->ffr_t_ms) / 1000.0);
    }
    if (f->ffr_open && f->ffr_done && t < f->ffr_t_ms + p->ffr_duration_ms) {
        f->ffr_win_ms += dt_ms; /* the support window: activation to ffr_duration */
        f->ffr_held_ms += held ? dt_ms : 0;
    }
}

void freqresp_step(struct freqresp *f, double freq_hz, double battery_w, int64_t dt_ms)
{
    int64_t t = f->t_ms;
    double prev = f->have_prev ? f->prev_bat_w : battery_w;
    f->t_ms += dt_ms;
    f->prev_bat_w = battery_w;
    f->have_prev = 1;
    if (!f->on)
        return;
    if (f->p.fcr_power_w > 0)
        fr_fcr(f, freq_hz, battery_w, prev, t, dt_ms);
    if (f->p.ffr_power_w > 0)
        fr_ffr(f, freq_hz, battery_w, prev, t, dt_ms);
}

void freqresp_contract(struct freqresp *f, const struct gridsvc_contract *p)
{
    f->p = *p;
    f->on = 1;
    f->fcr_worst_s = NAN;
    f->ffr_worst_s = NAN;
    f->ffr_support_worst = NAN;
}

int freqresp_totals(const struct freqresp *f, struct freqresp_totals *t)
{
    if (!f->on)
        return 0;
    struct freqresp c = *f; /* closing what is still open must not change f */
    fr_fcr_close(&c, c.t_ms);
    fr_ffr_close(&c, c.t_ms);
    *t = (struct freqresp_totals){.fcr_worst_s = c.fcr_worst_s,
                                  .fcr_req_wh = c.fcr_req_wh,
                                  .fcr_del_wh = c.fcr_del_wh,
                                  .ffr_worst_s = c.ffr_worst_s,
                                  .ffr_support_worst = c.ffr_support_worst};
    return 1;
}
