/* meter: a grid (or load) meter. It shows the true power it measures only every refresh_ms
 * (holding the old value in between, as real meters do), with frequency and voltage, and
 * accumulates import and export energy. Grid sign: + import, - export. A grid meter of an
 * islanded site (site.c sets `islanded`) shows the power failure event. docs/physics.md. */
#ifndef DERLOOP_METER_H
#define DERLOOP_METER_H

#include <stdint.h>

#include "sim/physics/profile.h"

enum meter_role { METER_GRID, METER_LOAD };

/* SunSpec model 203 Evt bit 2, M_EVENT_Power_Failure: the grid side has no power. */
#define METER_EVT_POWER_FAILURE (1u << 2)

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
    int islanded; /* input, set by the site before meter_step: the grid is out */
    uint32_t evt; /* SunSpec 203 Evt as shown (refreshed with the power) */
};

void meter_init(struct meter *m, const struct meter_params *p);
/* true_w is what flowed during [now, now + dt). While `islanded` (grid role only) the shown
 * Evt has METER_EVT_POWER_FAILURE and the frequency reads nominal: the island's own. */
void meter_step(struct meter *m, int64_t now_ms, int64_t dt_ms, double true_w);

#endif
