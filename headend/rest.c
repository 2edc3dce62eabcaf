/* rest: routes and validation. Errors are JSON objects {"error": "...", "field": "..."}
 * naming the offending field (or "path" / "body"), 400 for bad input and 404 for unknown
 * ids. POST /dispatch: {asset_id | site_id, mw, ttl_s}; asset_id wins when both are given;
 * mw is megawatts in site signs (x 1e6 onto the wire's power_w). */
#include "headend/rest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "headend/log.h"
#include "headend/metrics.h"

#define MAX_BODY            65536
#define RANGE_LIMIT_DEFAULT 10000
#define RANGE_LIMIT_MAX     100000
#define RECENT_SESSIONS     5

static void set_json(struct rest_response *r, int status, cJSON *j)
{
    r->status = status;
    r->content_type = "application/json";
    r->body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
}

static int error(struct rest_response *r, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int error(struct rest_response *r, int status, const char *field, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    cJSON_AddStringToObject(j, "field", field);
    set_json(r, status, j);
    return 0;
}

static void add_num_or_null(cJSON *o, const char *k, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static cJSON *telemetry_json(const struct store_telemetry *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "asset_id", t->asset_id);
    cJSON_AddNumberToObject(o, "ts_ms", (double)t->ts_ms);
    cJSON_AddNumberToObject(o, "received_ms", (double)t->received_ms);
    cJSON_AddNumberToObject(o, "telemetry_seq", (double)t->seq);
    add_num_or_null(o, "power_w", t->power_w);
    add_num_or_null(o, "setpoint_w", t->setpoint_w);
    add_num_or_null(o, "soc", t->soc);
    cJSON_AddBoolToObject(o, "online", t->online);
    cJSON_AddStringToObject(o, "status", t->status);
    return o;
}

static int get_assets(struct hub *h, struct rest_response *r)
{
    const struct inventory *inv = hub_inventory(h);
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < inventory_asset_count(inv); i++) {
        const struct inv_asset *a = inventory_asset_at(inv, i);
        const struct inv_site *s = inventory_site_at(inv, a->site);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "asset_id", a->id);
        cJSON_AddStringToObject(o, "site_id", s->id);
        cJSON_AddStringToObject(o, "type", inventory_type_name(a->type));
        cJSON_AddNumberToObject(o, "capacity_wh", a->capacity_wh);
        cJSON_AddNumberToObject(o, "min_power_w", a->min_power_w);
        cJSON_AddNumberToObject(o, "max_power_w", a->max_power_w);
        cJSON *gws = cJSON_AddArrayToObject(o, "gateways");
        for (size_t g = 0; g < s->n_gateways; g++)
            cJSON_AddItemToArray(gws, cJSON_CreateString(s->gateways[g]));
        cJSON_AddItemToArray(arr, o);
    }
    set_json(r, 200, arr);
    return 0;
}

static int add_session(const struct store_session *s, void *ctx)
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
    cJSON_AddItemToArray(ctx, o);
    return 0;
}

static int get_agents(struct hub *h, int64_t now_ms, struct rest_response *r)
{
    const struct inventory *inv = hub_inventory(h);
    const struct registry *reg = hub_registry(h);
    struct store *st = hub_store(h);
    int presence_ms = hub_config(h)->presence_timeout_ms;
    size_t ns = inventory_site_count(inv);
    cJSON **recent = calloc(ns + 1, sizeof(*recent)); /* one store query per site */
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < inventory_asset_count(inv); i++) {
        const struct inv_asset *a = inventory_asset_at(inv, i);
        const struct inv_site *site = inventory_site_at(inv, a->site);
        const struct site_state *ss = hub_site_state(h, a->site);
        const struct session *s = registry_asset(reg, i);
        if (recent && !recent[a->site]) {
            recent[a->site] = cJSON_CreateArray();
            st->ops->sessions_recent(st, site->id, RECENT_SESSIONS, add_session, recent[a->site]);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "asset_id", a->id);
        cJSON_AddStringToObject(o, "site_id", site->id);
        const char *gw = s ? s->gateway_id : ss->gateway_id;
        const char *peer = s ? s->peer : ss->peer;
        cJSON *first = recent && recent[a->site] ? cJSON_GetArrayItem(recent[a->site], 0) : NULL;
        if (!s && !gw[0] && first) { /* after a restart: the store remembers */
            gw = cJSON_GetObjectItem(first, "gateway_id")->valuestring;
            peer = cJSON_GetObjectItem(first, "peer")->valuestring;
        }
        if (gw[0])
            cJSON_AddStringToObject(o, "gateway_id", gw);
        else
            cJSON_AddNullToObject(o, "gateway_id");
        if (peer[0])
            cJSON_AddStringToObject(o, "peer", peer);
        else
            cJSON_AddNullToObject(o, "peer");
        cJSON_AddBoolToObject(o, "connected", s != NULL);
        int64_t seen = s ? s->last_seen_ms : ss->last_seen_ms;
        if (!seen && first) {
            cJSON *e = cJSON_GetObjectItem(first, "ended_ms");
            seen = cJSON_IsNumber(e) ? (int64_t)e->valuedouble : 0;
        }
        if (seen)
            cJSON_AddNumberToObject(o, "last_seen_ms", (double)seen);
        else
            cJSON_AddNullToObject(o, "last_seen_ms");
        cJSON_AddBoolToObject(o, "stale", s && now_ms - s->last_seen_ms > presence_ms);
        if (s)
            cJSON_AddNumberToObject(o, "session_id", (double)s->id);
        else
            cJSON_AddNullToObject(o, "session_id");
        cJSON_AddItemToObject(o, "recent_sessions",
                              recent && recent[a->site] ? cJSON_Duplicate(recent[a->site], 1)
                                                        : cJSON_CreateArray());
        cJSON_AddItemToArray(arr, o);
    }
    for (size_t i = 0; recent && i < ns; i++)
        cJSON_Delete(recent[i]);
    free(recent);
    set_json(r, 200, arr);
    return 0;
}

static int parse_ms(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno)
        return -EINVAL;
    *out = v;
    return 0;
}

static int add_sample(const struct store_telemetry *t, void *ctx)
{
    cJSON_AddItemToArray(ctx, telemetry_json(t));
    return 0;
}

static int get_telemetry(struct hub *h, const char *id, rest_arg_fn arg, void *actx, int64_t now_ms,
                         struct rest_response *r)
{
    const struct inv_asset *a = inventory_asset(hub_inventory(h), id);
    if (!a)
        return error(r, 404, "asset_id", "unknown asset '%s'", id);
    const char *from_s = arg ? arg(actx, "from") : NULL;
    const char *to_s = arg ? arg(actx, "to") : NULL;
    const char *limit_s = arg ? arg(actx, "limit") : NULL;
    if (!from_s && !to_s) {
        const struct asset_state *st = hub_asset_state(h, a->index);
        if (!st->has_latest)
            return error(r, 404, "asset_id", "no telemetry yet for asset '%s'", id);
        cJSON *o = telemetry_json(&st->latest);
        cJSON_AddNumberToObject(o, "lag_ms", st->lag_ms);
        cJSON_AddNumberToObject(o, "age_ms", (double)(now_ms - st->latest.received_ms));
        set_json(r, 200, o);
        return 0;
    }
    int64_t from = 0, to = now_ms + 86400000LL, limit = RANGE_LIMIT_DEFAULT;
    if (from_s && parse_ms(from_s, &from) < 0)
        return error(r, 400, "from", "from must be Unix milliseconds (an integer)");
    if (to_s && parse_ms(to_s, &to) < 0)
        return error(r, 400, "to", "to must be Unix milliseconds (an integer)");
    if (from > to)
        return error(r, 400, "from", "from is after to");
    if (limit_s && (parse_ms(limit_s, &limit) < 0 || limit < 1 || limit > RANGE_LIMIT_MAX))
        return error(r, 400, "limit", "limit must be an integer in 1..%d", RANGE_LIMIT_MAX);
    hub_flush(h); /* the history includes what is still buffered */
    struct store *st = hub_store(h);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "asset_id", a->id);
    cJSON_AddNumberToObject(o, "from", (double)from);
    cJSON_AddNumberToObject(o, "to", (double)to);
    cJSON *samples = cJSON_AddArrayToObject(o, "samples");
    if (st->ops->telemetry_range(st, a->id, from, to, (int)limit, add_sample, samples) < 0) {
        cJSON_Delete(o);
        return error(r, 500, "store", "store query failed");
    }
    cJSON_AddNumberToObject(o, "count", cJSON_GetArraySize(samples));
    set_json(r, 200, o);
    return 0;
}

static int add_alloc(const struct store_alloc *a, void *ctx)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "asset_id", a->asset_id);
    cJSON_AddNumberToObject(o, "power_w", a->power_w);
    cJSON_AddItemToArray(ctx, o);
    return 0;
}

static int add_ack(const struct store_ack *a, void *ctx)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "state", dispatch_state_name(a->state));
    cJSON_AddStringToObject(o, "detail", a->detail);
    cJSON_AddNumberToObject(o, "at_ms", (double)a->at_ms);
    cJSON_AddItemToArray(ctx, o);
    return 0;
}

static int get_dispatch(struct hub *h, const char *id, struct rest_response *r)
{
    struct store *st = hub_store(h);
    struct store_dispatch d;
    int e = st->ops->dispatch_get(st, id, &d);
    if (e == -ENOENT)
        return error(r, 404, "setpoint_id", "unknown setpoint_id '%s'", id);
    if (e < 0)
        return error(r, 500, "store", "store query failed");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "setpoint_id", d.id);
    cJSON_AddStringToObject(o, "state", dispatch_state_name(d.state));
    cJSON_AddStringToObject(o, "site_id", d.site_id);
    if (d.asset_id[0])
        cJSON_AddStringToObject(o, "asset_id", d.asset_id);
    else
        cJSON_AddNullToObject(o, "asset_id");
    cJSON_AddNumberToObject(o, "power_w", d.power_w);
    cJSON_AddNumberToObject(o, "mw", d.power_w / 1e6);
    cJSON_AddNumberToObject(o, "created_ms", (double)d.created_ms);
    cJSON_AddNumberToObject(o, "expires_ms", (double)d.expires_ms);
    cJSON_AddNumberToObject(o, "updated_ms", (double)d.updated_ms);
    cJSON_AddStringToObject(o, "detail", d.detail);
    st->ops->alloc_list(st, d.id, add_alloc, cJSON_AddArrayToObject(o, "allocations"));
    st->ops->acks_list(st, d.id, add_ack, cJSON_AddArrayToObject(o, "acks"));
    set_json(r, 200, o);
    return 0;
}

static int post_dispatch(struct hub *h, const char *body, size_t len, int64_t now_ms,
                         struct rest_response *r)
{
    const struct headend_config *cfg = hub_config(h);
    const struct inventory *inv = hub_inventory(h);
    cJSON *j = cJSON_ParseWithLength(body ? body : "", len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return error(r, 400, "body", "the body must be a JSON object");
    }
    const cJSON *ja = cJSON_GetObjectItemCaseSensitive(j, "asset_id");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "site_id");
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(j, "mw");
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(j, "ttl_s");
    const struct inv_asset *a = NULL;
    const struct inv_site *s = NULL;
    int rc = 0;
    if (ja && !cJSON_IsNull(ja)) {
        if (!cJSON_IsString(ja))
            rc = error(r, 400, "asset_id", "asset_id must be a string");
        else if (!(a = inventory_asset(inv, ja->valuestring)))
            rc = error(r, 404, "asset_id", "unknown asset '%s'", ja->valuestring);
    } else if (js && !cJSON_IsNull(js)) {
        if (!cJSON_IsString(js))
            rc = error(r, 400, "site_id", "site_id must be a string");
        else if (!(s = inventory_site(inv, js->valuestring)))
            rc = error(r, 404, "site_id", "unknown site '%s'", js->valuestring);
    } else {
        rc = error(r, 400, "asset_id|site_id", "one of asset_id or site_id is required");
    }
    if (r->body)
        goto out;
    if (!jm)
        rc = error(r, 400, "mw", "mw is required (megawatts, site signs)");
    else if (!cJSON_IsNumber(jm))
        rc = error(r, 400, "mw", "mw must be a number");
    else if (!isfinite(jm->valuedouble))
        rc = error(r, 400, "mw", "mw must be finite");
    if (r->body)
        goto out;
    double power_w = jm->valuedouble * 1e6;
    double lo = 0, hi = 0;
    if (a) {
        lo = a->min_power_w;
        hi = a->max_power_w;
    } else {
        for (size_t i = 0; i < s->n_assets; i++) {
            lo += inventory_asset_at(inv, s->assets[i])->min_power_w;
            hi += inventory_asset_at(inv, s->assets[i])->max_power_w;
        }
    }
    if ((lo != 0 || hi != 0) && (power_w < lo - 1e-6 || power_w > hi + 1e-6)) {
        rc = error(r, 400, "mw", "mw %g is outside the target's range [%g, %g] MW", jm->valuedouble,
                   lo / 1e6, hi / 1e6);
        goto out;
    }
    int ttl = cfg->dispatch_ttl_default_s;
    if (jt) {
        if (!cJSON_IsNumber(jt) || !isfinite(jt->valuedouble) ||
            jt->valuedouble != floor(jt->valuedouble))
            rc = error(r, 400, "ttl_s", "ttl_s must be an integer number of seconds");
        else if (jt->valuedouble < cfg->dispatch_ttl_min_s ||
                 jt->valuedouble > cfg->dispatch_ttl_max_s)
            rc = error(r, 400, "ttl_s", "ttl_s must be in %d..%d", cfg->dispatch_ttl_min_s,
                       cfg->dispatch_ttl_max_s);
        else
            ttl = (int)jt->valuedouble;
        if (r->body)
            goto out;
    }
    char id[STORE_ID_MAX];
    int state;
    int e = hub_dispatch(h, a ? a->site : s->index, a ? a->index : SIZE_MAX, power_w, ttl, now_ms,
                         id, &state);
    if (e < 0) {
        rc = error(r, 500, "store", "could not record the dispatch (%s)", strerror(-e));
        goto out;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "setpoint_id", id);
    cJSON_AddStringToObject(o, "state", dispatch_state_name(state));
    cJSON_AddStringToObject(o, "target", a ? "asset" : "site");
    cJSON_AddStringToObject(o, a ? "asset_id" : "site_id", a ? a->id : s->id);
    cJSON_AddNumberToObject(o, "power_w", power_w);
    cJSON_AddNumberToObject(o, "expires_ms", (double)(now_ms + (int64_t)ttl * 1000));
    set_json(r, 202, o);
out:
    cJSON_Delete(j);
    return rc;
}

static int route(struct hub *h, const char *method, const char *path, rest_arg_fn arg, void *actx,
                 const char *body, size_t len, int64_t now_ms, struct rest_response *r)
{
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!strcmp(path, "/dispatch")) {
        if (strcmp(method, "POST") != 0)
            return error(r, 405, "method", "use POST /dispatch");
        return post_dispatch(h, body, len, now_ms, r);
    }
    if (!get)
        return error(r, 405, "method", "%s is not served on %s", method, path);
    if (!strcmp(path, "/healthz")) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "ok");
        cJSON_AddNumberToObject(o, "gateways", (double)registry_sessions(hub_registry(h)));
        cJSON_AddNumberToObject(o, "streams", (double)hub_streams(h));
        cJSON_AddStringToObject(o, "store", hub_store(h)->ops->name);
        set_json(r, 200, o);
        return 0;
    }
    if (!strcmp(path, "/assets"))
        return get_assets(h, r);
    if (!strcmp(path, "/agents"))
        return get_agents(h, now_ms, r);
    if (!strcmp(path, "/metrics")) {
        size_t n;
        if (metrics_render(h, now_ms, &r->body, &n) < 0)
            return error(r, 500, "metrics", "out of memory");
        r->status = 200;
        r->content_type = "text/plain; version=0.0.4";
        return 0;
    }
    if (!strncmp(path, "/telemetry/", 11) && path[11] && !strchr(path + 11, '/'))
        return get_telemetry(h, path + 11, arg, actx, now_ms, r);
    if (!strncmp(path, "/dispatch/", 10) && path[10] && !strchr(path + 10, '/'))
        return get_dispatch(h, path + 10, r);
    return error(r, 404, "path", "no such endpoint: %s", path);
}

int rest_handle(struct hub *h, const char *method, const char *path, rest_arg_fn arg, void *arg_ctx,
                const char *body, size_t body_len, int64_t now_ms, struct rest_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    hub_lock(h);
    int rc = route(h, method, path, arg, arg_ctx, body, body_len, now_ms, resp);
    hub_unlock(h);
    if (!resp->body) {
        resp->status = 500;
        resp->content_type = "application/json";
        resp->body = strdup("{\"error\":\"out of memory\",\"field\":\"\"}");
    }
    return rc;
}

/* ---- libmicrohttpd glue ------------------------------------------------------------------ */

struct rest {
    struct hub *hub;
    struct MHD_Daemon *d;
};

struct upload {
    char *buf;
    size_t len;
    int too_big;
};

static const char *mhd_arg(void *ctx, const char *key)
{
    return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, key);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    struct rest *rs = cls;
    struct upload *u = *con_cls;
    if (!u) {
        u = calloc(1, sizeof(*u));
        if (!u)
            return MHD_NO;
        *con_cls = u;
        return MHD_YES;
    }
    if (*upload_size) {
        if (u->len + *upload_size > MAX_BODY) {
            u->too_big = 1;
        } else {
            char *nb = realloc(u->buf, u->len + *upload_size + 1);
            if (!nb)
                return MHD_NO;
            memcpy(nb + u->len, upload_data, *upload_size);
            u->buf = nb;
            u->len += *upload_size;
            u->buf[u->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    struct rest_response resp;
    if (u->too_big) {
        memset(&resp, 0, sizeof(resp));
        resp.status = 413;
        resp.content_type = "application/json";
        resp.body = strdup("{\"error\":\"body larger than 64 KiB\",\"field\":\"body\"}");
    } else {
        rest_handle(rs->hub, method, url, mhd_arg, c, u->buf, u->len, wall_ms(), &resp);
    }
    size_t n = resp.body ? strlen(resp.body) : 0;
    struct MHD_Response *mr = MHD_create_response_from_buffer(n, resp.body ? resp.body : (char *)"",
                                                              MHD_RESPMEM_MUST_FREE);
    if (!mr) {
        free(resp.body);
        return MHD_NO;
    }
    MHD_add_response_header(mr, "Content-Type", resp.content_type);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)resp.status, mr);
    MHD_destroy_response(mr);
    if (resp.status >= 400)
        log_event(LOG_INFO, "event=http_error method=%s path=%s status=%d", method, url,
                  resp.status);
    return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    struct upload *u = *con_cls;
    if (u) {
        free(u->buf);
        free(u);
    }
    *con_cls = NULL;
}

int rest_start(struct hub *h, const char *listen, struct rest **out, int *port, char *err,
               size_t errlen)
{
    *out = NULL;
    char host[128];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof(host)) {
        snprintf(err, errlen, "http listen '%s' is not host:port", listen);
        return -EINVAL;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    long p = strtol(colon + 1, NULL, 10);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    if (p < 0 || p > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "http listen '%s': need an IPv4 address and a port", listen);
        return -EINVAL;
    }
    struct rest *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->hub = h;
    r->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_INTERNAL_THREAD,
                            (uint16_t)p, NULL, NULL, on_request, r, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!r->d) {
        snprintf(err, errlen, "cannot listen on %s (HTTP)", listen);
        free(r);
        return -EADDRINUSE;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : (int)p;
    *out = r;
    return 0;
}

void rest_stop(struct rest *r)
{
    if (!r)
        return;
    MHD_stop_daemon(r->d);
    free(r);
}
