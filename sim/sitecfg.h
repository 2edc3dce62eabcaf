/* sitecfg: the gateway site configuration (docs/gateway-config.md) that the simulator writes
 * for one of its sites: its devices with endpoints, unit ids, drivers and ratings, the step as
 * the poll period, then the scenario's "gateway" object key by key (which wins on a clash).
 * Used by `der-sim serve` (written to files) and the lockstep runner (parsed in memory). */
#ifndef DERLOOP_SITECFG_H
#define DERLOOP_SITECFG_H

#include <cjson/cJSON.h>

#include "sim/scenario.h"
#include "sim/site.h"

/* A new JSON object owned by the caller (cJSON_Delete), or NULL when out of memory. */
cJSON *sitecfg_json(const struct scenario *sc, struct site *site, const char *host, int port,
                    const char *writer);

#endif
