/* oscill: see oscill.h.
 *
 * Why a DFT over fixed windows and not zero crossings: a noisy grid crosses its target all the
 * time, and a load step followed by a slow recovery is one long excursion; the spectrum tells a
 * real periodic component (a peak above its neighbours) from both, and the window being fixed
 * in simulated time keeps the figures a function of the scenario. A window's dominant component
 * is its spectrum's largest bin over every period, not only the band's: a load step, its slow
 * recovery or a ramp puts its energy into the lowest bins (periods of a window or half of one),
 * so it is dominant and out of the band, and never counts as an oscillation; a loop hunting at
 * a few seconds puts a peak far above them.
 * The cost is O(n^2 / 2) per window with n <= OSC_MAX_SAMPLES: a few hundred multiply-adds per
 * step and site. */
#include "reports/oscill.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/control/procimg.h"

/* A direction follower with hysteresis: a reversal is a move of OSC_REVERSAL_W against the
 * current direction from its extreme, so jitter of a few watts never counts. */
struct follow {
    int has, dir;
    double ref; /* the first value (dir 0) or the extreme in the current direction */
    unsigned reversals;
};

struct osite {
    double target_w; /* the last cycle's target; NaN = none */
    /* the open window */
    int64_t win;        /* its index (start / OSC_WINDOW_MS); -1 before the first step */
    int64_t covered_ms; /* steps inside it so far */
    double x[OSC_MAX_SAMPLES + 1];
    size_t n;
    double group_sum;
    int group_n;
    /* the run */
    double sq_w2ms; /* sum of (grid - target)^2 x dt over steps with a target */
    int64_t sq_ms;
    struct oscill_window *w;
    size_t n_w, cap_w;
    struct follow bat[PROCIMG_MAX_DEVICES], sum;
};

struct oscill {
    size_t n_sites;
    struct osite *s;
    int64_t dt_ms;   /* the step, from the first sample */
    int group;       /* steps averaged into one sample */
    int disabled;    /* steps too long for OSC_MIN_SAMPLES per window */
    int64_t last_ms; /* the end of the last tick */
    int oom;         /* a window record could not be kept: its figures still count */
};

struct oscill *oscill_new(size_t n_sites)
{
    struct oscill *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->s = calloc(n_sites ? n_sites : 1, sizeof *o->s);
    if (!o->s) {
        free(o);
        return NULL;
    }
    o->n_sites = n_sites;
    for (size_t i = 0; i < n_sites; i++) {
        o->s[i].target_w = NAN;
        o->s[i].win = -1;
    }
    return o;
}

void oscill_free(struct oscill *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n_sites; i++)
        free(o->s[i].w);
    free(o->s);
    free(o);
}

/* ---- the spectrum ---------------------------------------------------------------------------- */

/* The angles are multiples of 2 pi / n reduced modulo n in integers, so every bin sees exact
 * multiples of 2 pi / n; their cosines and sines come from a table of n entries (one sincos per
 * sample instead of one per sample and bin: the spectrum was a quarter of a 1 s run's time). The
 * table holds exactly what cos() and sin() gave per term before, so the figures are unchanged.
 * Up to four bins k0..k0+nb-1 at a time: each bin's sums run in the same order as alone (the
 * same result to the bit), but four independent chains keep the FPU busy where one waited on
 * each addition. */
static void bin_powers(const double *x, size_t n, size_t k0, size_t nb, const double *cs,
                       const double *sn, double *p)
{
    if (nb == 4) { /* the common case, spelt out so that every chain stays in a register */
        double r0 = 0, r1 = 0, r2 = 0, r3 = 0, i0 = 0, i1 = 0, i2 = 0, i3 = 0;
        size_t m0 = 0, m1 = 0, m2 = 0, m3 = 0; /* (j * k) % n per bin */
        const size_t k1 = k0 + 1, k2 = k0 + 2, k3 = k0 + 3;
        for (size_t j = 0; j < n; j++) {
            const double v = x[j];
            r0 += v * cs[m0];
            i0 -= v * sn[m0];
            r1 += v * cs[m1];
            i1 -= v * sn[m1];
            r2 += v * cs[m2];
            i2 -= v * sn[m2];
            r3 += v * cs[m3];
            i3 -= v * sn[m3];
            m0 = m0 + k0 >= n ? m0 + k0 - n : m0 + k0;
            m1 = m1 + k1 >= n ? m1 + k1 - n : m1 + k1;
            m2 = m2 + k2 >= n ? m2 + k2 - n : m2 + k2;
            m3 = m3 + k3 >= n ? m3 + k3 - n : m3 + k3;
        }
        p[k0] = r0 * r0 + i0 * i0;
        p[k1] = r1 * r1 + i1 * i1;
        p[k2] = r2 * r2 + i2 * i2;
        p[k3] = r3 * r3 + i3 * i3;
        return;
    }
    for (size_t b = 0; b < nb; b++) {
        double re = 0, im = 0;
        size_t m = 0, k = k0 + b;
        for (size_t j = 0; j < n; j++) {
            re += x[j] * cs[m];
            im -= x[j] * sn[m];
            m = m + k >= n ? m + k - n : m + k;
        }
        p[k] = re * re + im * im;
    }
}

int oscill_dominant(const double *x, size_t n, double ts_s, double *period_s, double *amplitude)
{
    *period_s = *amplitude = NAN;
    size_t kmax = n / 2;
    if (n < 8)
        return -1;
    double *p = calloc(kmax + 2 + 2 * n, sizeof *p);
    if (!p)
        return -1;
    double *cs = p + kmax + 2, *sn = cs + n;
    for (size_t m = 0; m < n; m++) {
        double a = 2.0 * M_PI * (double)m / (double)n;
        cs[m] = cos(a);
        sn[m] = sin(a);
    }
    for (size_t k = 1; k <= kmax; k += 4)
        bin_powers(x, n, k, kmax - k + 1 < 4 ? kmax - k + 1 : 4, cs, sn, p);
    size_t best = 1;
    for (size_t k = 1; k <= kmax; k++)
        if (p[k] > p[best])
            best = k;
    int rc = -1;
    if (p[best] > 0) {
        size_t lo = best > 1 ? best - 1 : best, hi = best < kmax ? best + 1 : best;
        double e = 0, m = 0;
        for (size_t k = lo; k <= hi; k++) {
            e += p[k];
            m += (double)k * p[k];
        }
        /* Parseval: a sinusoid of amplitude A puts (A n / 2)^2 into its bins */
        *amplitude = 2.0 / (double)n * sqrt(e);
        *period_s = (double)n * ts_s / (m / e);
        rc = (int)best;
    }
    free(p);
    return rc;
}

/* ---- windows --------------------------------------------------------------------------------- */

static void flush_group(struct osite *s)
{
    if (s->group_n > 0 && s->n < OSC_MAX_SAMPLES + 1)
        s->x[s->n++] = s->group_sum / s->group_n;
    s->group_sum = 0;
    s->group_n = 0;
}

/* The open window's figures, without changing it (0 = nothing to analyse). */
static int analyse(const struct oscill *o, const struct osite *s, struct oscill_window *w)
{
    if (s->win < 0 || s->covered_ms * 2 < OSC_WINDOW_MS)
        return 0;
    double x[OSC_MAX_SAMPLES + 1];
    memcpy(x, s->x, s->n * sizeof x[0]);
    size_t n = s->n;
    if (s->group_n > 0 && n < OSC_MAX_SAMPLES + 1)
        x[n++] = s->group_sum / s->group_n;
    w->t0_ms = s->win * OSC_WINDOW_MS;
    w->len_ms = s->covered_ms;
    double ts = (double)(o->dt_ms * o->group) / 1000.0;
    int k = oscill_dominant(x, n, ts, &w->period_s, &w->amplitude_w);
    w->in_band = k >= OSC_LOWEST_CYCLES;
    if (k < 0)
        w->amplitude_w = 0;
    return 1;
}

static void close_window(struct oscill *o, struct osite *s)
{
    struct oscill_window w;
    if (analyse(o, s, &w)) {
        if (s->n_w == s->cap_w) {
            size_t cap = s->cap_w ? 2 * s->cap_w : 16;
            struct oscill_window *nw = realloc(s->w, cap * sizeof *nw);
            if (nw) {
                s->w = nw;
                s->cap_w = cap;
            }
        }
        if (s->n_w < s->cap_w)
            s->w[s->n_w++] = w;
        else
            o->oom = 1;
    }
    s->n = 0;
    s->group_sum = 0;
    s->group_n = 0;
    s->covered_ms = 0;
}

void oscill_grid(struct oscill *o, size_t site, double grid_w, int64_t t_ms, int64_t dt_ms)
{
    if (site >= o->n_sites || dt_ms <= 0)
        return;
    if (!o->dt_ms) {
        o->dt_ms = dt_ms;
        int64_t steps = OSC_WINDOW_MS / dt_ms;
        o->group = (int)((steps + OSC_MAX_SAMPLES - 1) / OSC_MAX_SAMPLES);
        if (o->group < 1)
            o->group = 1;
        o->disabled = steps / o->group < OSC_MIN_SAMPLES;
    }
    struct osite *s = &o->s[site];
    double dev = grid_w - (isnan(s->target_w) ? 0 : s->target_w);
    if (!isnan(s->target_w)) {
        s->sq_w2ms += dev * dev * (double)dt_ms;
        s->sq_ms += dt_ms;
    }
    if (o->disabled)
        return;
    int64_t win = (t_ms - dt_ms) / OSC_WINDOW_MS; /* a step belongs to the window of its start */
    if (win != s->win) {
        close_window(o, s);
        s->win = win;
    }
    s->covered_ms += dt_ms;
    /* The spectrum is taken of the grid power itself, not of its deviation from the target: a
     * constant target only moves bin 0 (never counted), and a target that is not a setpoint (a
     * peak limit's instantaneous headroom while holding, which jumps by kW when the mode
     * changes) once showed as a 60 kW "oscillation" of a site whose grid never left 12 kW. */
    s->group_sum += grid_w;
    if (++s->group_n >= o->group)
        flush_group(s);
}

void oscill_tick_end(struct oscill *o, int64_t t_ms)
{
    o->last_ms = t_ms;
}

static void follow(struct follow *f, double v)
{
    if (!f->has) {
        f->has = 1;
        f->ref = v;
        return;
    }
    if (f->dir == 0) {
        if (fabs(v - f->ref) >= OSC_REVERSAL_W) {
            f->dir = v > f->ref ? 1 : -1;
            f->ref = v;
        }
    } else if ((v - f->ref) * f->dir > 0) {
        f->ref = v; /* further in the same direction */
    } else if (fabs(v - f->ref) >= OSC_REVERSAL_W) {
        f->reversals++;
        f->dir = -f->dir;
        f->ref = v;
    }
}

void oscill_decision(struct oscill *o, size_t site, const struct decision *dm)
{
    if (site >= o->n_sites)
        return;
    struct osite *s = &o->s[site];
    /* A target counts only while the strategy regulates towards it (its error is finite): a
     * peak strategy holding below its limit reports the headroom it has left, not a setpoint. */
    s->target_w = isfinite(dm->error_w) ? dm->target_w : NAN;
    double sum = 0;
    int any = 0;
    for (size_t i = 0; i < dm->n_assets && i < PROCIMG_MAX_DEVICES; i++) {
        const struct decision_asset *a = &dm->asset[i];
        if (a->type != PROCIMG_BATTERY || !a->set || !isfinite(a->final_w))
            continue;
        follow(&s->bat[i], a->final_w);
        sum += a->final_w;
        any = 1;
    }
    if (any)
        follow(&s->sum, sum);
}

const struct oscill_window *oscill_windows(const struct oscill *o, size_t site, size_t *n)
{
    *n = site < o->n_sites ? o->s[site].n_w : 0;
    return site < o->n_sites ? o->s[site].w : NULL;
}

static void count_window(const struct oscill_window *w, struct oscill_totals *t, int *analysed)
{
    *analysed = 1;
    if (isnan(t->amplitude_w))
        t->amplitude_w = 0;
    if (!w->in_band)
        return;
    if (w->amplitude_w > t->amplitude_w) {
        t->amplitude_w = w->amplitude_w;
        t->period_s = w->period_s;
    }
    if (w->amplitude_w >= OSC_THRESHOLD_W)
        t->osc_time_s += (double)w->len_ms / 1000.0;
}

void oscill_result(const struct oscill *o, struct oscill_totals *out)
{
    *out = (struct oscill_totals){.battery_reversals_per_h = NAN,
                                  .site_reversals_per_h = NAN,
                                  .grid_target_rms_w = NAN,
                                  .period_s = NAN,
                                  .amplitude_w = NAN};
    double hours = (double)o->last_ms / 3600000.0;
    int analysed = 0;
    for (size_t i = 0; i < o->n_sites; i++) {
        const struct osite *s = &o->s[i];
        for (size_t k = 0; k < PROCIMG_MAX_DEVICES; k++)
            if (s->bat[k].has && hours > 0)
                out->battery_reversals_per_h =
                    fmax(out->battery_reversals_per_h, s->bat[k].reversals / hours);
        if (s->sum.has && hours > 0)
            out->site_reversals_per_h = fmax(out->site_reversals_per_h, s->sum.reversals / hours);
        if (s->sq_ms > 0)
            out->grid_target_rms_w =
                fmax(out->grid_target_rms_w, sqrt(s->sq_w2ms / (double)s->sq_ms));
        for (size_t k = 0; k < s->n_w; k++)
            count_window(&s->w[k], out, &analysed);
        struct oscill_window last;
        if (analyse(o, s, &last))
            count_window(&last, out, &analysed);
    }
    if (!analysed) {
        out->osc_time_s = NAN;
        out->osc_share = NAN;
        return;
    }
    out->osc_share =
        o->last_ms > 0 ? out->osc_time_s / ((double)o->last_ms / 1000.0) / (double)o->n_sites : 0;
}
