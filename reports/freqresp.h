/* freqresp: one site's frequency response measured against its grid_services contract (the
 * fcr_* and ffr_* KPIs; their definitions are in kpi.c's table), streamed one step at a time.
 * A plain value the caller owns: freqresp_totals works on a copy, so what is still open at the
 * end is closed without changing the measurement. */
#ifndef DERLOOP_FREQRESP_H
#define DERLOOP_FREQRESP_H

#include <stdint.h>

#include "gateway/strategies/strat_gridsvc.h"

struct freqresp {
    struct gridsvc_contract p;
    int on; /* a contract was set */
    int64_t t_ms;
    double prev_bat_w; /* battery_w of the previous step */
    int have_prev;
    int fcr_sign, fcr_done; /* +1 under-frequency (discharge), -1 over, 0 no open excursion */
    double fcr_p0_w;        /* battery_w before the excursion */
    int64_t fcr_q_ms;       /* the step it qualified, -1 before */
    double fcr_worst_s, fcr_req_wh, fcr_del_wh;
    int ffr_seen, ffr_open, ffr_done;
    int64_t ffr_t_ms; /* the last trigger */
    double ffr_p0_w, ffr_worst_s;
    int64_t ffr_win_ms, ffr_held_ms; /* the support window since activation, and held in it */
    double ffr_support_worst;
};

/* Judges f (zero-initialised) by contract p from now on; without it a site is not judged. */
void freqresp_contract(struct freqresp *f, const struct gridsvc_contract *p);

/* The step of dt_ms that follows the last one (the first starts at 0): the grid frequency
 * during it (NaN = no grid meter) and the battery power (+ discharge). */
void freqresp_step(struct freqresp *f, double freq_hz, double battery_w, int64_t dt_ms);

/* The totals so far, what is open closed at the last step's end; NaN where nothing was judged. */
struct freqresp_totals {
    double fcr_worst_s, fcr_req_wh, fcr_del_wh;
    double ffr_worst_s, ffr_support_worst;
};
/* 1 with t filled, or 0 when f has no contract. */
int freqresp_totals(const struct freqresp *f, struct freqresp_totals *t);

#endif
