/* meter: a grid or load meter (see meter.h and docs/physics.md).
 *
 * Energy counters integrate the true power every step; the displayed power, frequency and
 * voltage refresh together only every refresh_ms, held in between, because that is what a
 * controller polling a real meter sees (typical meters update their registers every 0.2-1 s).
 *
 * A grid outage (site.c sets `islanded`; the site makes true power 0) is shown with the same
 * refresh: SunSpec 203 Evt bit M_EVENT_Power_Failure set, voltage and frequency nominal. The
 * meter reads on the site side of the disconnect, where the grid-forming battery inverter
 * holds nominal voltage and frequency; the grid's frequency profile does not reach the island.
 * A load meter never shows the event (it is not at the connection point). */
#include "sim/physics/meter.h"

#include <string.h>

void meter_init(struct meter *m, const struct meter_params *p)
{
    memset(m, 0, sizeof *m);
    m->p = *p;
    m->frequency_hz = p->nominal_hz;
    m->voltage_v = p->voltage_v;
    m->last_refresh_ms = INT64_MIN; /* never refreshed: the first step always refreshes */
}

void meter_step(struct meter *m, int64_t now_ms, int64_t dt_ms, double true_w)
{
    double dt_h = (double)dt_ms / 3600000.0;
    m->true_w = true_w;
    if (true_w > 0.0)
        m->import_wh += true_w * dt_h;
    else
        m->export_wh += -true_w * dt_h;

    if (m->last_refresh_ms == INT64_MIN || m->p.refresh_ms <= 0 ||
        now_ms - m->last_refresh_ms >= m->p.refresh_ms) {
        m->shown_w = true_w;
        int out = m->islanded && m->p.role == METER_GRID;
        m->frequency_hz =
            m->p.frequency && !out ? profile_value(m->p.frequency, now_ms) : m->p.nominal_hz;
        m->voltage_v = m->p.voltage_v;
        m->evt = out ? METER_EVT_POWER_FAILURE : 0;
        m->last_refresh_ms = now_ms;
    }
}
