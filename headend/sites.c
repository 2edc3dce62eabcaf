/* sites: the fleet view. Everything /sites shows is in the hub's memory already (the
 * per-site aggregate the hub keeps as telemetry arrives, the session registry, the alerts),
 * so one call is a pass over the sites, a sort of the filtered ones and the JSON of one page:
 * at 10,000 sites it stays in milliseconds (tests/bench/bench_sites.c). /sites/:id adds the
 * few store reads of one site (its dispatches' acks, its sessions, its configuration).
 *
 * A group dispatch is split here, not at the gateways: each connected site of the group gets
 * a site setpoint in proportion to what its batteries can do in that direction (inventory
 * limits), and each gateway then splits its share by its own policy, as for any site
 * setpoint. Sites that cannot take a share (offline, silent, no capacity) are listed with the
 * reason instead of failing the whole request. */
#define _GNU_SOURCE /* qsort_r */
#include "headend/sites.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headend/strmap.h"

#define RECENT_SESSIONS 5

const char *const sites_sort_keys[] = {"site_id",   "group", "state",  "grid_w",    "pv_w",
                                       "battery_w", "soc",   "alarms", "setpoints", NULL};

static void num_or_null(cJSON *o, const char *k, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static void str_or_null(cJSON *o, const char *k, const char *v)
{
    if (v && v[0])
        cJSON_AddStringToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

cJSON *sites_telemetry_json(const struct store_telemetry *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "asset_id", t->asset_id);
    cJSON_AddNumberToObject(o, "ts_ms", (double)t->ts_ms);
    cJSON_AddNumberToObject(o, "received_ms", (double)t->received_ms);
    cJSON_AddNumberToObject(o, "telemetry_seq", (double)t->seq);
    num_or_null(o, "power_w", t->power_w);
    num_or_null(o, "setpoint_w", t->setpoint_w);
    num_or_null(o, "soc", t->soc);
    cJSON_AddBoolToObject(o, "online", t->online);
    cJSON_AddStringToObject(o, "status", t->status);
    return o;
}

cJSON *sites_session_json(const struct store_session *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "session_id", (double)s->id);
    cJSON_AddStringToObject(o, "gateway_id", s->gateway_id);
    cJSON_AddStringToObject(o, "peer", s->peer);
    cJSON_AddNumberToObject(o, "started_ms", (double)s->started_ms);
    if (s->ended_ms)
        cJSON_AddNumberToObject(o, "ended_ms", (double)s->ended_ms);
    else
        cJSON_AddNullToObject(o, "ended_ms");
    cJSON_AddStringToObject(o, "reason", s->reason);
    return o;
}

/* ---- one site's row ---------------------------------------------------------------------- */

enum site_state_code { ST_OK, ST_ALARM, ST_STALE, ST_OFFLINE };
static const char *const state_names[] = {"ok", "alarm", "stale", "offline"};

/* What one row shows, gathered once so that sorting and totals read the same numbers. */
struct row {
    size_t idx;
    int state;
    int connected, stale;
    unsigned alarms, setpoints;
    const struct site_state *ss;
    const struct site_remote *rm; /* another live headend holds its session (else NULL) */
    const struct site_agg *agg;   /* ours, or the holder's */
};

/* Several headends (hub.h): the holder's view of a site no stream of ours serves. */
static const struct site_remote *remote_of(const struct hub *h, size_t i)
{
    const struct site_remote *rm = hub_site_remote_c(h, i);
    return rm && rm->held && !registry_site(hub_registry(h), i) ? rm : NULL;
}

/* The headend that holds (or last held) the site's session: this one when a stream of ours
 * serves it, else the other's name from the presence table, else NULL. */
static const char *node_of(const struct hub *h, size_t i)
{
    const struct site_remote *rm = hub_site_remote_c(h, i);
    if (registry_site(hub_registry(h), i))
        return hub_node_id(h);
    return rm && rm->known ? rm->node_id : NULL;
}

unsigned sites_active_setpoints(const struct site_state *ss, int64_t now_ms)
{
    unsigned n = 0;
    for (size_t i = 0; i < ss->n_recent; i++) {
        int st = ss->recent[i].state;
        if (now_ms < ss->recent[i].expires_ms && st != DISPATCH_REJECTED &&
            st != DISPATCH_EXPIRED && st != DISPATCH_FAILED)
            n++;
    }
    return n;
}

static void fill_row(const struct hub *h, size_t i, const unsigned *alarms, int64_t now_ms,
                     struct row *r)
{
    const struct session *s = registry_site(hub_registry(h), i);
    r->idx = i;
    r->ss = hub_site_state(h, i);
    r->rm = remote_of(h, i);
    r->agg = r->rm ? &r->rm->agg : &r->ss->agg;
    r->connected = s != NULL || r->rm;
    r->stale =
        s ? now_ms - s->last_seen_ms > hub_config(h)->presence_timeout_ms : r->rm && r->rm->stale;
    r->alarms = alarms ? alarms[i] : 0;
    r->setpoints = r->rm ? r->rm->setpoints : sites_active_setpoints(r->ss, now_ms);
    r->state = !r->connected ? ST_OFFLINE : r->stale ? ST_STALE : r->alarms ? ST_ALARM : ST_OK;
}

static void add_agg(cJSON *o, const struct site_agg *g)
{
    num_or_null(o, "grid_w", g->grid_w);
    num_or_null(o, "import_w", isfinite(g->grid_w) ? fmax(g->grid_w, 0) : NAN);
    num_or_null(o, "export_w", isfinite(g->grid_w) ? fmax(-g->grid_w, 0) : NAN);
    num_or_null(o, "pv_w", g->pv_w);
    num_or_null(o, "battery_w", g->battery_w);
    num_or_null(o, "soc_mean", g->soc_mean);
    num_or_null(o, "ev_w", g->ev_w);
    num_or_null(o, "boiler_w", g->boiler_w);
    if (g->updated_ms)
        cJSON_AddNumberToObject(o, "updated_ms", (double)g->updated_ms);
    else
        cJSON_AddNullToObject(o, "updated_ms");
}

static cJSON *row_json(const struct hub *h, const struct row *r)
{
    const struct inventory *inv = hub_inventory(h);
    const struct session *s = registry_site(hub_registry(h), r->idx);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site_id", inventory_site_at(inv, r->idx)->id);
    str_or_null(o, "group", inventory_site_group(inv, r->idx));
    str_or_null(o, "gateway_id", s ? s->gateway_id : r->rm ? r->rm->gateway_id : r->ss->gateway_id);
    cJSON_AddStringToObject(o, "state", state_names[r->state]);
    cJSON_AddBoolToObject(o, "connected", r->connected);
    cJSON_AddBoolToObject(o, "stale", r->stale);
    str_or_null(o, "node", node_of(h, r->idx));
    int64_t seen = s ? s->last_seen_ms : r->rm ? r->rm->last_seen_ms : r->ss->last_seen_ms;
    if (seen)
        cJSON_AddNumberToObject(o, "last_seen_ms", (double)seen);
    else
        cJSON_AddNullToObject(o, "last_seen_ms");
    add_agg(o, r->agg);
    cJSON_AddNumberToObject(o, "active_setpoints", r->setpoints);
    cJSON_AddNumberToObject(o, "alarms", r->alarms);
    return o;
}

/* Active alerts per site index, in one pass over the alerts (NULL when out of memory). */
static unsigned *alarm_counts(const struct hub *h)
{
    const struct inventory *inv = hub_inventory(h);
    unsigned *n = calloc(inventory_site_count(inv) + 1, sizeof(*n));
    const struct alerts *al = hub_alerts(h);
    for (size_t i = 0; n && i < alerts_count(al); i++) {
        const struct alert *a = alerts_at(al, i);
        const struct inv_site *s = a->active ? inventory_site(inv, a->site_id) : NULL;
        if (s)
            n[s->index]++;
    }
    return n;
}

/* ---- GET /sites -------------------------------------------------------------------------- */

struct sort_ctx {
    const struct hub *h;
    int key, desc;
};

/* The value of a number key; NaN (no data) sorts last in either direction. */
static double key_value(const struct row *r, int key)
{
    const struct site_agg *g = r->agg;
    switch (key) {
    case 3:
        return g->grid_w;
    case 4:
        return g->pv_w;
    case 5:
        return g->battery_w;
    case 6:
        return g->soc_mean;
    case 7:
        return r->alarms;
    case 8:
        return r->setpoints;
    default: /* state: worst first when ascending */
        return -r->state;
    }
}

static int cmp_rows(const void *pa, const void *pb, void *arg)
{
    const struct sort_ctx *c = arg;
    const struct row *a = pa, *b = pb;
    const struct inventory *inv = hub_inventory(c->h);
    int r;
    if (c->key == 0) {
        r = strcmp(inventory_site_at(inv, a->idx)->id, inventory_site_at(inv, b->idx)->id);
    } else if (c->key == 1) {
        r = strcmp(inventory_site_group(inv, a->idx), inventory_site_group(inv, b->idx));
    } else {
        double x = key_value(a, c->key), y = key_value(b, c->key);
        if (isnan(x) || isnan(y))
            r = isnan(x) - isnan(y);
        else
            r = c->desc ? (x < y) - (x > y) : (x > y) - (x < y);
        return r ? r : (a->idx > b->idx) - (a->idx < b->idx);
    }
    if (c->desc)
        r = -r;
    return r ? r : (a->idx > b->idx) - (a->idx < b->idx);
}

struct totals {
    size_t sites, connected, stale, offline, setpoints, alarms, n_soc;
    double grid_w, import_w, export_w, pv_w, battery_w, ev_w, boiler_w, soc_sum;
};

static void total_add(struct totals *t, const struct row *r)
{
    const struct site_agg *g = r->agg;
    t->sites++;
    t->connected += r->connected;
    t->stale += r->stale;
    t->offline += !r->connected;
    t->setpoints += r->setpoints;
    t->alarms += r->alarms;
    if (!r->connected) /* its last samples are history, not the fleet's power now */
        return;
    if (isfinite(g->grid_w)) {
        t->grid_w += g->grid_w;
        t->import_w += fmax(g->grid_w, 0);
        t->export_w += fmax(-g->grid_w, 0);
    }
    t->pv_w += isfinite(g->pv_w) ? g->pv_w : 0;
    t->battery_w += isfinite(g->battery_w) ? g->battery_w : 0;
    t->ev_w += isfinite(g->ev_w) ? g->ev_w : 0;
    t->boiler_w += isfinite(g->boiler_w) ? g->boiler_w : 0;
    if (isfinite(g->soc_mean)) {
        t->soc_sum += g->soc_mean;
        t->n_soc++;
    }
}

static cJSON *totals_json(const struct totals *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "sites", (double)t->sites);
    cJSON_AddNumberToObject(o, "connected", (double)t->connected);
    cJSON_AddNumberToObject(o, "stale", (double)t->stale);
    cJSON_AddNumberToObject(o, "offline", (double)t->offline);
    cJSON_AddNumberToObject(o, "grid_w", t->grid_w);
    cJSON_AddNumberToObject(o, "import_w", t->import_w);
    cJSON_AddNumberToObject(o, "export_w", t->export_w);
    cJSON_AddNumberToObject(o, "pv_w", t->pv_w);
    cJSON_AddNumberToObject(o, "battery_w", t->battery_w);
    cJSON_AddNumberToObject(o, "ev_w", t->ev_w);
    cJSON_AddNumberToObject(o, "boiler_w", t->boiler_w);
    num_or_null(o, "soc_mean", t->n_soc ? t->soc_sum / (double)t->n_soc : NAN);
    cJSON_AddNumberToObject(o, "active_setpoints", (double)t->setpoints);
    cJSON_AddNumberToObject(o, "alarms", (double)t->alarms);
    return o;
}

/* The groups of the whole fleet with their site counts, in order of first appearance. */
static cJSON *groups_json(const struct hub *h)
{
    const struct inventory *inv = hub_inventory(h);
    struct strmap *seen = strmap_new();
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; seen && i < inventory_site_count(inv); i++) {
        const char *g = inventory_site_group(inv, i);
        if (!g[0])
            continue;
        cJSON *o = strmap_get(seen, g);
        if (!o) {
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "group", g);
            cJSON_AddNumberToObject(o, "sites", 0);
            cJSON_AddNumberToObject(o, "connected", 0);
            cJSON_AddItemToArray(arr, o);
            if (strmap_put(seen, g, o, NULL) < 0)
                break;
        }
        cJSON *ns = cJSON_GetObjectItem(o, "sites"), *nc = cJSON_GetObjectItem(o, "connected");
        cJSON_SetNumberValue(ns, ns->valuedouble + 1);
        cJSON_SetNumberValue(nc, nc->valuedouble + (registry_site(hub_registry(h), i) != NULL ||
                                                    remote_of(h, i) != NULL));
    }
    strmap_free(seen);
    return arr;
}

static int matches(const struct hub *h, const struct row *r, const struct sites_query *q)
{
    const struct inventory *inv = hub_inventory(h);
    const char *g = inventory_site_group(inv, r->idx);
    if (q->group && q->group[0] && strcmp(q->group, g))
        return 0;
    if (!q->q || !q->q[0])
        return 1;
    const struct session *s = registry_site(hub_registry(h), r->idx);
    return strstr(inventory_site_at(inv, r->idx)->id, q->q) || strstr(g, q->q) ||
           strstr(s       ? s->gateway_id
                  : r->rm ? r->rm->gateway_id
                          : r->ss->gateway_id,
                  q->q);
}

int sites_list(struct hub *h, const struct sites_query *q, int64_t now_ms, cJSON **out, char *err,
               size_t errlen)
{
    *out = NULL;
    struct sort_ctx sc = {h, -1, 0};
    if (q->sort && q->sort[0]) {
        const char *k = q->sort[0] == '-' ? q->sort + 1 : q->sort;
        sc.desc = q->sort[0] == '-';
        for (int i = 0; sites_sort_keys[i]; i++)
            if (!strcmp(k, sites_sort_keys[i]))
                sc.key = i;
        if (sc.key < 0) {
            snprintf(err, errlen,
                     "unknown sort key '%.40s' (site_id, group, state, grid_w, pv_w, "
                     "battery_w, soc, alarms, setpoints; '-' first for descending)",
                     q->sort);
            return -EINVAL;
        }
    }
    size_t ns = inventory_site_count(hub_inventory(h));
    struct row *all = calloc(ns + 1, sizeof(*all));
    unsigned *alarms = alarm_counts(h);
    if (!all || !alarms) {
        free(all);
        free(alarms);
        return -ENOMEM;
    }
    size_t n = 0;
    struct totals t = {0};
    for (size_t i = 0; i < ns; i++) {
        fill_row(h, i, alarms, now_ms, &all[n]); /* n <= i: the matches move to the front */
        if (matches(h, &all[n], q))
            total_add(&t, &all[n++]);
    }
    free(alarms);
    if (sc.key >= 0)
        qsort_r(all, n, sizeof(*all), cmp_rows, &sc);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "now_ms", (double)now_ms);
    cJSON_AddNumberToObject(o, "total", (double)n);
    cJSON_AddNumberToObject(o, "offset", (double)q->offset);
    cJSON_AddItemToObject(o, "totals", totals_json(&t));
    cJSON_AddItemToObject(o, "groups", groups_json(h)); /* the whole fleet's, for the form */
    cJSON *arr = cJSON_AddArrayToObject(o, "sites");
    size_t end = q->limit && q->offset + q->limit < n ? q->offset + q->limit : n;
    for (size_t i = q->offset; i < end; i++)
        cJSON_AddItemToArray(arr, row_json(h, &all[i]));
    free(all);
    *out = o;
    return 0;
}

/* ---- GET /sites/:id ---------------------------------------------------------------------- */

cJSON *sites_ack_json(const struct store_ack *a)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "state", dispatch_state_name(a->state));
    cJSON_AddStringToObject(o, "detail", a->detail);
    cJSON_AddNumberToObject(o, "at_ms", (double)a->at_ms);
    return o;
}

static int add_ack_json(const struct store_ack *a, void *ctx)
{
    cJSON_AddItemToArray(ctx, sites_ack_json(a));
    return 0;
}

static int add_session_json(const struct store_session *s, void *ctx)
{
    cJSON_AddItemToArray(ctx, sites_session_json(s));
    return 0;
}

double sites_capacity_w(const struct hub *h, size_t site_idx, double power_w)
{
    const struct inventory *inv = hub_inventory(h);
    const struct inv_site *s = inventory_site_at(inv, site_idx);
    double cap = 0;
    for (size_t k = 0; s && k < s->n_assets; k++) {
        const struct inv_asset *a = inventory_asset_at(inv, s->assets[k]);
        if (a->type == 1)
            cap += power_w >= 0 ? fmax(a->max_power_w, 0) : fmax(-a->min_power_w, 0);
    }
    return cap;
}

int sites_detail(struct hub *h, size_t site_idx, int64_t now_ms, cJSON **out)
{
    const struct inventory *inv = hub_inventory(h);
    const struct inv_site *site = inventory_site_at(inv, site_idx);
    struct store *st = hub_store(h);
    unsigned *alarms = alarm_counts(h);
    if (!alarms)
        return -ENOMEM;
    struct row r;
    fill_row(h, site_idx, alarms, now_ms, &r);
    free(alarms);
    cJSON *o = row_json(h, &r);
    const struct session *s = registry_site(hub_registry(h), site_idx);
    str_or_null(o, "peer", s ? s->peer : r.ss->peer);
    num_or_null(o, "rtt_ms", r.ss->has_rtt ? r.ss->rtt_last_ms : NAN);
    cJSON *cap = cJSON_AddObjectToObject(o, "capacity");
    cJSON_AddNumberToObject(cap, "discharge_w", sites_capacity_w(h, site_idx, 1));
    cJSON_AddNumberToObject(cap, "charge_w", sites_capacity_w(h, site_idx, -1));
    cJSON *assets = cJSON_AddArrayToObject(o, "assets");
    for (size_t k = 0; k < site->n_assets; k++) {
        const struct inv_asset *a = inventory_asset_at(inv, site->assets[k]);
        const struct asset_state *as = hub_asset_state(h, a->index);
        cJSON *ja = cJSON_CreateObject();
        cJSON_AddStringToObject(ja, "asset_id", a->id);
        cJSON_AddStringToObject(ja, "type", inventory_type_name(a->type));
        cJSON_AddNumberToObject(ja, "capacity_wh", a->capacity_wh);
        cJSON_AddNumberToObject(ja, "min_power_w", a->min_power_w);
        cJSON_AddNumberToObject(ja, "max_power_w", a->max_power_w);
        /* held by another headend: its gateway claimed the site's assets there */
        cJSON_AddBoolToObject(ja, "connected",
                              registry_asset(hub_registry(h), a->index) != NULL || r.rm);
        cJSON_AddBoolToObject(ja, "grid_meter", a->index == r.ss->grid_asset);
        str_or_null(ja, "device_state", as->device_state);
        cJSON_AddItemToObject(
            ja, "latest", as->has_latest ? sites_telemetry_json(&as->latest) : cJSON_CreateNull());
        cJSON_AddItemToArray(assets, ja);
    }
    cJSON *ds = cJSON_AddArrayToObject(o, "dispatches"); /* newest first */
    for (size_t i = r.ss->n_recent; i-- > 0;) {
        const struct site_dispatch *d = &r.ss->recent[i];
        cJSON *jd = cJSON_CreateObject();
        cJSON_AddStringToObject(jd, "setpoint_id", d->id);
        str_or_null(jd, "asset_id", d->asset_id);
        /* with several headends the acks may have come in on another one: the shared row */
        struct store_dispatch row;
        int state = d->state;
        if (hub_site_remote_c(h, site_idx)->known && !dispatch_state_final(state) &&
            st->ops->dispatch_get(st, d->id, &row) == 0)
            state = row.state;
        cJSON_AddStringToObject(jd, "state", dispatch_state_name(state));
        cJSON_AddNumberToObject(jd, "power_w", d->power_w);
        cJSON_AddNumberToObject(jd, "created_ms", (double)d->created_ms);
        cJSON_AddNumberToObject(jd, "expires_ms", (double)d->expires_ms);
        st->ops->acks_list(st, d->id, add_ack_json, cJSON_AddArrayToObject(jd, "acks"));
        cJSON_AddItemToArray(ds, jd);
    }
    st->ops->sessions_recent(st, site->id, RECENT_SESSIONS, add_session_json,
                             cJSON_AddArrayToObject(o, "sessions"));
    static struct store_config c; /* 16 KB; the hub's lock serialises every caller */
    int e = st->ops->config_get(st, site->id, &c);
    cJSON *cfg = cJSON_AddObjectToObject(o, "config");
    num_or_null(cfg, "desired_version", e == 0 ? (double)c.version : NAN);
    /* held by another headend: what the gateway reported there (its presence row) */
    int has = r.rm ? r.rm->has_reported : r.ss->has_reported;
    int64_t rv = r.rm ? r.rm->reported_version : r.ss->reported_version;
    num_or_null(cfg, "reported_version", has ? (double)rv : NAN);
    str_or_null(cfg, "reported_status",
                has ? (r.rm ? r.rm->reported_status : r.ss->reported_status) : NULL);
    cJSON_AddBoolToObject(cfg, "in_sync", e == 0 && has && rv == c.version);
    *out = o;
    return 0;
}

/* ---- group dispatch ---------------------------------------------------------------------- */

int sites_split(const double *cap, size_t n, double power_w, double *share, double *total)
{
    double sum = 0;
    size_t last = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        sum += cap[i];
        if (cap[i] > 0)
            last = i;
    }
    *total = sum;
    if (fabs(power_w) > sum * (1 + 1e-12) + 1e-9)
        return -ERANGE;
    double given = 0;
    for (size_t i = 0; i < n; i++) {
        share[i] = i == last ? power_w - given : sum > 0 ? power_w * (cap[i] / sum) : 0;
        given += share[i];
    }
    return 0;
}

static void skip(cJSON *arr, const char *site_id, const char *reason)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site_id", site_id);
    cJSON_AddStringToObject(o, "reason", reason);
    cJSON_AddItemToArray(arr, o);
}

int sites_dispatch_group(struct hub *h, const char *who, const char *group, double power_w,
                         int ttl_s, int64_t now_ms, cJSON **out, char *err, size_t errlen)
{
    *out = NULL;
    const struct inventory *inv = hub_inventory(h);
    size_t ns = inventory_site_count(inv), n = 0, members = 0;
    size_t *idx = calloc(ns + 1, sizeof(*idx));
    double *cap = calloc(ns + 1, sizeof(*cap)), *share = calloc(ns + 1, sizeof(*share));
    cJSON *o = cJSON_CreateObject();
    cJSON *skipped = cJSON_CreateArray();
    int rc = 0;
    if (!idx || !cap || !share || !o || !skipped) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    int presence_ms = hub_config(h)->presence_timeout_ms;
    for (size_t i = 0; i < ns; i++) {
        if (strcmp(inventory_site_group(inv, i), group) != 0)
            continue;
        members++;
        const char *sid = inventory_site_at(inv, i)->id;
        const struct session *s = registry_site(hub_registry(h), i);
        const struct site_remote *rm = remote_of(h, i); /* held by another headend */
        double c = sites_capacity_w(h, i, power_w);
        if (!s && !rm)
            skip(skipped, sid, "not connected");
        else if (s ? now_ms - s->last_seen_ms > presence_ms : rm->stale)
            skip(skipped, sid, "connected but stale (silent longer than the presence timeout)");
        else if (c <= 0)
            skip(skipped, sid,
                 power_w >= 0 ? "no battery discharge capacity" : "no battery charge capacity");
        else {
            idx[n] = i;
            cap[n++] = c;
        }
    }
    double total = 0;
    if (!members) {
        rc = -ENOENT;
        snprintf(err, errlen, "no site belongs to group '%s'", group);
    } else if (!n) {
        rc = -EAGAIN;
        snprintf(err, errlen, "no site of group '%s' can take a share now (%zu skipped)", group,
                 members);
    } else if (sites_split(cap, n, power_w, share, &total) < 0) {
        rc = -ERANGE;
        snprintf(err, errlen,
                 "%g MW exceeds the %g MW the connected sites of group '%s' can do in that "
                 "direction",
                 power_w / 1e6, total / 1e6, group);
    }
    if (rc)
        goto out;
    cJSON_AddStringToObject(o, "target", "group");
    cJSON_AddStringToObject(o, "group_id", group);
    cJSON_AddNumberToObject(o, "power_w", power_w);
    cJSON_AddNumberToObject(o, "capacity_w", total);
    cJSON_AddNumberToObject(o, "expires_ms", (double)(now_ms + (int64_t)ttl_s * 1000));
    if (who)
        cJSON_AddStringToObject(o, "requested_by", who);
    cJSON *sps = cJSON_AddArrayToObject(o, "setpoints");
    for (size_t k = 0; k < n; k++) {
        char id[STORE_ID_MAX];
        int state;
        const char *sid = inventory_site_at(inv, idx[k])->id;
        int e = hub_dispatch_by(h, who, idx[k], SIZE_MAX, share[k], ttl_s, now_ms, id, &state);
        if (e < 0) {
            skip(skipped, sid, "the store could not record the dispatch");
            continue;
        }
        cJSON *jd = cJSON_CreateObject();
        cJSON_AddStringToObject(jd, "site_id", sid);
        cJSON_AddStringToObject(jd, "setpoint_id", id);
        cJSON_AddNumberToObject(jd, "power_w", share[k]);
        cJSON_AddStringToObject(jd, "state", dispatch_state_name(state));
        cJSON_AddItemToArray(sps, jd);
    }
    cJSON_AddItemToObject(o, "skipped", skipped);
    skipped = NULL;
    *out = o;
    o = NULL;
out:
    cJSON_Delete(o);
    cJSON_Delete(skipped);
    free(idx);
    free(cap);
    free(share);
    return rc;
}
