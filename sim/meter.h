/* meter: a grid (or load) meter. It shows the true power it measures only every refresh_ms
 * (holding the old value in between, as real meters do), with frequency and voltage, and
 * accumulates import and export energy. Grid sign: + import, - export. docs/physics.md. */
#ifndef DERLOOP_METER_H
#define DERLOOP_METER_H

#include <stdint.h>

#include "sim/profile.h"

enum meter_role { METER_GRID, METER_LOAD };

struct meter_params {
    enum meter_role role;
    int64_t refresh_ms;              /* 0 = every step */
    double voltage_v;                /* line-to-neutral, e.g. 230 */
    double nominal_hz;               /* 50 or 60 */
    const struct profile *frequency; /* Hz; NULL = nominal; not owned */
    int phases;                      /* 1 or 3 */
};

struct meter {
    struct meter_params p;
    double true_w;  /* the quantity measured, this step */
    double shown_w; /* what the meter displays (refreshed every refresh_ms) */
    double frequency_hz, voltage_v;
    double import_wh, export_wh; /* from true power */
    int64_t last_refresh_ms;
};

void meter_init(struct meter *m, const struct meter_params *p);
/* true_w is what flowed during [now, now + dt). */
void meter_step(struct meter *m, int64_t now_ms, int64_t dt_ms, double true_w);

#endif
