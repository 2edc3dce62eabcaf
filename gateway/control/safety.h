/* safety: the interlocks, applied last to whatever the arbiter chose, so that no strategy,
 * operator or headend command can drive a device outside its limits: stale/offline safe
 * state, SoC floor and ceiling, power and current limits, temperature derate and stop, ramp,
 * grid import/export limits. Pure functions over caller-owned values; every change is
 * recorded as a clamp with its reason in the DecisionMetrics. docs/safety.md is the
 * reference (order, reason codes, each device type's safe state). */
#ifndef DERLOOP_SAFETY_H
#define DERLOOP_SAFETY_H

#include <cjson/cJSON.h>

#include "gateway/control/decision.h"
#include "gateway/control/procimg.h"
#include "gateway/strategies/strategy.h"

struct safety_cfg {
    double soc_floor, soc_ceiling; /* 0..1 */
    double soc_band;               /* power tapers to 0 over this band next to floor/ceiling */
    double temp_derate_c, temp_stop_c, temp_charge_min_c;
    double max_charge_w, max_discharge_w;        /* per battery, >= 0 */
    double max_current_a;                        /* per battery; 0 = no current limit */
    double nominal_voltage_v;                    /* used when the battery reports no voltage */
    double ramp_w_per_s;                         /* per battery; 0 = no ramp limit */
    double grid_import_max_w, grid_export_max_w; /* site, >= 0 */
    double estop_pv_limit_w; /* per PV inverter while the emergency stop holds (estop.h) */
};

extern const struct param_field safety_fields[];
extern const size_t safety_n_fields;

/* Defaults then obj's members (NULL: defaults), with the cross-field rules
 * (soc_floor < soc_ceiling, temp_derate_c < temp_stop_c, temp_charge_min_c < temp_stop_c).
 * Errors name path.key and the value. Returns 0 or -EINVAL. */
int safety_cfg_load(const cJSON *obj, const char *path, struct safety_cfg *cfg, char *err,
                    size_t errlen);

/* The static envelope [lo_w[i], hi_w[i]] of every device this cycle (everything but ramp and
 * grid limits; lo <= 0 <= hi for batteries, [0, 0] when the device must be held at its safe
 * state), for the arbiter's split. Arrays have img->n_devices entries. */
void safety_limits(const struct safety_cfg *cfg, const struct procimg *img, double *lo_w,
                   double *hi_w);

/* Turns dm->asset[i].requested_w into .final_w and .set for every device, recording a clamp
 * for each interlock that changed a value. Batteries are always set (0 W in their safe
 * state); pv and boiler are released (set = 0) in theirs, evse set to 0. Returns 0, or
 * -EINVAL for bad arguments. */
int safety_apply(const struct safety_cfg *cfg, const struct procimg *img, struct decision *dm);

#endif
