/* pv: a PV array and its inverter (site sign: + production). Irradiance from a profile, cell
 * temperature (NOCT), a temperature coefficient, a system derate, the inverter's AC limit, and
 * curtailment to a percentage of the rating through the response model; the operating states
 * of opstate.h (only RUNNING produces; FAULT while tripped). docs/physics.md.
 * Or, for replays of records, a power profile: the AC output before curtailment, in W. */
#ifndef DERLOOP_PV_H
#define DERLOOP_PV_H

#include <stdint.h>

#include "sim/physics/opstate.h"
#include "sim/physics/profile.h"
#include "sim/physics/response.h"

struct pv_params {
    double peak_w;      /* DC rating at STC, > 0 */
    double ac_max_w;    /* inverter AC rating (defaults to peak_w) */
    double gamma_per_k; /* power temperature coefficient, about -0.004 */
    double noct_c;      /* about 45 */
    double temp_ambient_c;
    double system_derate;             /* (0, 1], wiring and soiling losses */
    const struct profile *irradiance; /* W/m^2; not owned; NULL when `power` drives it */
    const struct profile *power;      /* AC output before curtailment, W; not owned; or NULL */
    struct response_params response;  /* applies to the curtailment limit, in W */
    struct opstate_params op;         /* start_delay, stop_delay (0: at once) */
};

struct pv {
    struct pv_params p;
    double irradiance_w_m2;
    double cell_temp_c;
    double available_w; /* what the array could deliver now */
    double limit_pct;   /* commanded curtailment, 100 = none */
    double power_w;     /* delivered during the last step */
    double energy_wh;
    double curtailed_wh;
    int fault;            /* 0 = none; set by a fault event (power 0), cleared by pv_reset */
    struct response resp; /* its output is the limit in W */
    struct opstate op;    /* starts RUNNING */
};

void pv_init(struct pv *v, const struct pv_params *p);
void pv_command_limit(struct pv *v, int64_t now_ms, double limit_pct);
/* Start, stop (RESET: nothing to reset, a trip clears with its cause). */
void pv_opcommand(struct pv *v, int64_t now_ms, enum opstate_cmd cmd);
void pv_step(struct pv *v, int64_t now_ms, int64_t dt_ms);
void pv_reset(struct pv *v); /* device reboot: limit off, trip cleared, started again */

#endif
