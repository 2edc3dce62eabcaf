/* inventory: the headend inventory (docs/operations.md, "The assets file") of a scenario's
 * fleet, the one generator behind `der-sim inventory`, `der-sim demo` and the lockstep
 * runner's headend in the loop. Per site: its id, its gateway "gw-<site id>", its group (when
 * it has one) and every asset with a device, under its id outside the simulator
 * (scenario_asset_uid: "<site id>:<asset id>" for a replicated site) with its type and power
 * limits. */
#ifndef DERLOOP_SIM_INVENTORY_H
#define DERLOOP_SIM_INVENTORY_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "sim/scenario/scenario.h"

/* The gateway id of a site: "gw-<site id>" (the gateway's own default, siteconf.c). */
void sim_inventory_gateway_id(const struct site_cfg *c, char *buf, size_t len);

/* The inventory as a new JSON object (the caller owns it), or NULL with err: an asset id that
 * two sites share (the headend needs ids unique across sites), or out of memory. */
cJSON *sim_inventory_json(const struct scenario *sc, char *err, size_t errlen);

/* The same, written to path (through a temporary file and a rename). 0 or -errno with err. */
int sim_inventory_write(const struct scenario *sc, const char *path, char *err, size_t errlen);

#endif
