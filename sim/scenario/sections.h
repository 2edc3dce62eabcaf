/* sections: the scenario loader's parsers, one per part of the document (internal to
 * sim/scenario/). scenario.c calls them in order: overrides on the raw document, then profiles,
 * sites (with their assets), events. Each fills its part of the load's scenario, which owns
 * everything they allocate (also on error: scenario_free releases a half-filled scenario), and
 * returns 0, -ENOMEM, or -EINVAL after writing a field-naming error (field.h). */
#ifndef DERLOOP_SCN_SECTIONS_H
#define DERLOOP_SCN_SECTIONS_H

#include <cjson/cJSON.h>

#include "sim/physics/profile.h"
#include "sim/scenario/field.h"
#include "sim/scenario/scenario.h"

/* override.c: applies one "PATH=VALUE" (--set) to the document before validation. */
int scn_apply_override(struct scn_ld *L, cJSON *root, const char *ov);

/* profiles.c: the "profiles" object (obj may be NULL), and references to its profiles. */
int scn_parse_profiles(struct scn_ld *L, const cJSON *obj);
#define PK(k) (1u << (k)) /* a profile kind in a mask of accepted kinds */
/* The profile named by obj.key, of one of the kinds in `mask`; *out NULL when absent. */
int scn_get_profile_ref(struct scn_ld *L, const cJSON *obj, const char *path, const char *key,
                        unsigned mask, int required, const struct profile **out);

/* assetcfg.c: assets[idx] of a site from o (earlier assets: for duplicate ids and unit ids). */
int scn_parse_asset(struct scn_ld *L, const cJSON *o, const char *path, struct asset_cfg *assets,
                    int idx);

/* vary.c: a site's "vary" block (docs/scenario-format.md, "Fleets"). check: once, against the
 * site object as written (at path). apply: to replica k's copy of that object (site_id: the
 * replica's id), drawing from the scenario seed; -ENOMEM is its only error. */
int scn_vary_check(struct scn_ld *L, const cJSON *vary, const cJSON *site, const char *path);
int scn_vary_apply(const cJSON *vary, cJSON *site, uint64_t seed, const char *site_id, int k);

/* sites.c: the "sites" array, replicas expanded (and varied). */
int scn_parse_sites(struct scn_ld *L, const cJSON *arr);

/* event.c: the "events" array (arr may be NULL); sites: the file's "sites" array. */
int scn_parse_events(struct scn_ld *L, const cJSON *arr, const cJSON *sites);

/* forecast.c: the "forecast" object (obj may be NULL). */
int scn_parse_forecast(struct scn_ld *L, const cJSON *obj);

#endif
