/* arbiter: picks one request per asset from everything asked this cycle. Priorities, highest
 * first: safety (the emergency stop) > manual (operator, headend) > scheduled (schedule.h) >
 * optimisation (the strategies); the interlocks (safety.h) then clamp whatever won; a request for
 * an asset beats a site request of the same priority; site requests are split among the site's
 * usable batteries that no higher request claimed (split.h). Pure function over caller-owned
 * values; the outcome is written into the DecisionMetrics (docs/strategies.md). */
#ifndef DERLOOP_ARBITER_H
#define DERLOOP_ARBITER_H

#include <cjson/cJSON.h>

#include "gateway/control/decision.h"
#include "gateway/control/procimg.h"
#include "gateway/strategies/strategy.h"

struct arbiter_cfg {
    double split_resolution_w; /* rounding unit of the site split (largest remainder) */
};

extern const struct param_field arbiter_fields[];
extern const size_t arbiter_n_fields;

/* Defaults then obj's members (NULL: defaults); errors name path.key (param_load). */
int arbiter_cfg_load(const cJSON *obj, const char *path, struct arbiter_cfg *cfg, char *err,
                     size_t errlen);

/* Resolves dm->req into dm->asset[i].requested_w and .source. lo_w/hi_w (n_devices entries
 * each, or NULL) are the limits the split respects, normally safety_limits(); without them
 * the devices' reported power limits are used. Batteries nobody asked for get 0 W
 * (DSRC_NONE); other devices nobody asked for get NaN (left alone). Returns 0, or -EINVAL
 * for a bad argument. */
int arbiter_resolve(const struct arbiter_cfg *cfg, const struct procimg *img, const double *lo_w,
                    const double *hi_w, struct decision *dm);

/* The emergency stop, after arbiter_resolve: every controllable device goes to its safe state
 * at the safety class, over whatever won below it: batteries 0 W, EV chargers 0 (paused),
 * boilers 0 W (off), PV inverters pv_limit_w. Each gets a DC_ESTOP record every cycle (from
 * what it was asked, NaN when nothing, to its safe value), so decisions.csv shows the stop. */
void arbiter_estop(const struct procimg *img, double pv_limit_w, struct decision *dm);

#endif
