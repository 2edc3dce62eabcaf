/* strat_gridsvc: what the grid_services strategy promises the grid, typed, for whoever judges
 * it (reports/ times the frequency response against it). Read from the strategy's own
 * parameter table and configuration struct, so a renamed parameter breaks the build or the
 * load, never a judgement. */
#ifndef DERLOOP_STRAT_GRIDSVC_H
#define DERLOOP_STRAT_GRIDSVC_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* The frequency-response part of a grid_services configuration. A power of 0 means no such
 * service. */
struct gridsvc_contract {
    double nominal_hz; /* the frequency the gateway believes nominal */
    double fcr_power_w, fcr_deadband_hz, fcr_full_hz;
    double ffr_power_w, ffr_trigger_hz;
    int64_t ffr_duration_ms, ffr_rearm_ms;
};

/* Parses a grid_services `params` object (NULL = every default) as the gateway does, defaults
 * filled in. Returns 0, or -EINVAL with err naming path.key and the value. */
int gridsvc_contract_load(const cJSON *params, const char *path, struct gridsvc_contract *out,
                          char *err, size_t errlen);

#endif
