/* oscill: how much a site's control loop oscillates, measured while the run runs (the
 * oscillation KPIs of kpi.h). Per site, the grid power (its RMS around the strategy's target, and
 * its spectrum: the power itself, whose mean never counts) is cut into fixed windows aligned to the
 * run's start and each window's spectrum (a plain DFT, libm only) gives its dominant period and
 * amplitude; the batteries' final setpoints are followed for direction reversals. A pure function
 * of what is fed in, in order. oscill_new returns an accumulator the caller owns (oscill_free). */
#ifndef DERLOOP_OSCILL_H
#define DERLOOP_OSCILL_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/control/decision.h"

#define OSC_WINDOW_MS     (5 * 60 * 1000) /* the analysis window */
#define OSC_MAX_SAMPLES   600             /* per window; longer ones average consecutive steps */
#define OSC_MIN_SAMPLES   16              /* fewer per window (steps over ~19 s): no analysis */
#define OSC_THRESHOLD_W   200.0           /* a window oscillates from this amplitude on */
#define OSC_REVERSAL_W    100.0           /* hysteresis of a setpoint direction reversal */
#define OSC_LOWEST_CYCLES 3               /* the band's longest period: window / 3 */

/* One analysed window of one site: its dominant component (period NaN and amplitude 0 for a
 * flat window), in_band when its period is in the oscillation band (2 samples to a third of the
 * window). */
struct oscill_window {
    int64_t t0_ms; /* the window's start */
    int64_t len_ms;
    double period_s, amplitude_w;
    int in_band;
};

/* The run's oscillation figures (NaN where kpi.c says null). */
struct oscill_totals {
    double battery_reversals_per_h, site_reversals_per_h;
    double grid_target_rms_w;
    double period_s, amplitude_w; /* the in-band window with the largest amplitude */
    double osc_time_s, osc_share;
};

struct oscill;

struct oscill *oscill_new(size_t n_sites);
void oscill_free(struct oscill *o);

/* Site `site`'s true grid power over the step [t_ms - dt_ms, t_ms); steps follow one another
 * from 0 with the same dt. Call oscill_tick_end once per tick after every site. */
void oscill_grid(struct oscill *o, size_t site, double grid_w, int64_t t_ms, int64_t dt_ms);
void oscill_tick_end(struct oscill *o, int64_t t_ms);

/* A gateway cycle of `site`: its target (in force for the steps that follow) and its batteries'
 * final setpoints. */
void oscill_decision(struct oscill *o, size_t site, const struct decision *dm);

/* The analysed windows of `site` so far, in time order (plots). */
const struct oscill_window *oscill_windows(const struct oscill *o, size_t site, size_t *n);

/* End of run (the last, partial window is analysed when it covers half a window or more;
 * o itself is not changed). */
void oscill_result(const struct oscill *o, struct oscill_totals *out);

/* The dominant component of x[0..n) sampled every ts_s seconds: the largest DFT bin k in
 * [1, n/2], its period refined by the power centroid of bins k-1..k+1, its amplitude from their
 * energy (a sinusoid's amplitude to within 8 %). Returns k, or -1 for a flat or too short
 * series (outputs NaN). The oscillation band is k >= OSC_LOWEST_CYCLES. */
int oscill_dominant(const double *x, size_t n, double ts_s, double *period_s, double *amplitude);

#endif
