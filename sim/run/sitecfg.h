/* sitecfg: the gateway site configuration (docs/gateway-config.md) that the simulator writes
 * for one of its sites: its devices with endpoints, unit ids, drivers and ratings, the step as
 * the poll period, then the scenario's "gateway" object key by key (which wins on a clash).
 * Used by `der-sim serve` (written to files), the lockstep runner (parsed in memory) and
 * `der-sim check` / `der-sim sweep` (built and validated, then freed, before anything runs). */
#ifndef DERLOOP_SITECFG_H
#define DERLOOP_SITECFG_H

#include <cjson/cJSON.h>

#include "gateway/control/siteconf.h"
#include "sim/scenario/scenario.h"
#include "sim/run/site.h"

/* A new JSON object owned by the caller (cJSON_Delete), or NULL when out of memory. */
cJSON *sitecfg_json(const struct scenario *sc, struct site *site, const char *host, int port,
                    const char *writer);

/* The configuration the lockstep runner gives the gateway of site: sitecfg_json with every
 * device at 127.0.0.1:port, parsed and validated by siteconf_parse under the origin
 * "SCENARIO: gateway (site ID)". Returns 0 with *out (the caller owns it: siteconf_free), or
 * -EINVAL/-ENOMEM with err ("SCENARIO: gateway (site ID): json.path: message, got VALUE"). */
int sitecfg_siteconf(const struct scenario *sc, struct site *site, int port, struct siteconf **out,
                     char *err, size_t errlen);

/* Everything the gateway section must pass before a run, for every site of sc, without
 * starting anything: the site (site_new), its configuration (sitecfg_siteconf), the
 * controller the runner would build from it (controller_new: strategy, params, constraints,
 * safety, split, device drivers) over an empty in-process bus that is never polled, and the
 * uplink section as der-gateway would load it (the run itself does not use it). All of it is
 * freed again. Returns 0, or -errno with the message the run (or der-gateway) would give. */
int sitecfg_check(const struct scenario *sc, char *err, size_t errlen);

#endif
