/* sites: the fleet view of the headend (docs/operations.md, "Fleet views"): GET /sites (one row
 * per site from the hub's per-site aggregates: O(sites), no store query), GET /sites/:id (its
 * assets, recent dispatches with their acks, recent sessions, configuration versions), and
 * the dispatch to a group of sites, split by available battery capacity. The caller holds
 * the hub lock; JSON results are cJSON trees the caller frees. */
#ifndef HEADEND_SITES_H
#define HEADEND_SITES_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "headend/hub.h"

/* GET /sites: filter by group (exact) and q (substring of the site, gateway or group id),
 * sort by one of sites_sort_keys ("-" first = descending; ties by inventory order), then
 * offset/limit (limit 0 = all). Any string may be NULL. */
struct sites_query {
    const char *group, *q, *sort;
    size_t offset, limit;
};
extern const char *const sites_sort_keys[]; /* NULL-terminated */
/* 0 with *out, or -EINVAL for an unknown sort key (err names it). */
int sites_list(struct hub *h, const struct sites_query *q, int64_t now_ms, cJSON **out, char *err,
               size_t errlen);
/* GET /sites/:id (site_idx from the inventory): 0 with *out, or -ENOMEM. */
int sites_detail(struct hub *h, size_t site_idx, int64_t now_ms, cJSON **out);

/* Dispatches of the site's recent ones still active at now_ms (not expired, rejected or
 * failed): the "active_setpoints" of /sites. */
unsigned sites_active_setpoints(const struct site_state *ss, int64_t now_ms);

/* A site's battery capacity in the dispatch's direction (W, > 0): the sum of its batteries'
 * max_power_w when discharging (power_w > 0), of -min_power_w when charging. */
double sites_capacity_w(const struct hub *h, size_t site_idx, double power_w);
/* power_w split over n sites in proportion to cap[] (>= 0): share[i] = power_w * cap[i] /
 * sum(cap), the last site with a capacity taking the rounding rest, so the shares add up to
 * power_w exactly. -ERANGE when |power_w| exceeds the sum (*total gets it). */
int sites_split(const double *cap, size_t n, double power_w, double *share, double *total);
/* POST /dispatch {"group_id"}: a site setpoint to each connected, fresh site of the group with
 * capacity in that direction (the gateway splits it by its own policy), the others listed as
 * skipped with the reason. 0 with *out ({"target": "group", "setpoints": [...], "skipped":
 * [...]}), -ENOENT (no such group), -ERANGE (more than the group's connected capacity),
 * -EAGAIN (no site can take it), or a store error; err says which. */
int sites_dispatch_group(struct hub *h, const char *who, const char *group, double power_w,
                         int ttl_s, int64_t now_ms, cJSON **out, char *err, size_t errlen);

/* The JSON of one telemetry sample (GET /telemetry, /sites/:id), of one session record and of
 * one ack (GET /dispatch/:id, /sites/:id). */
cJSON *sites_telemetry_json(const struct store_telemetry *t);
cJSON *sites_session_json(const struct store_session *s);
cJSON *sites_ack_json(const struct store_ack *a);

#endif
