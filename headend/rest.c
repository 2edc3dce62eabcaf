/* rest: routes and validation. Errors are JSON objects {"error": "...", "field": "..."}
 * naming the offending field (or "path" / "body"), 400 for bad input and 404 for unknown
 * ids. POST /dispatch: {asset_id | site_id, mw, ttl_s}; asset_id wins when both are given;
 * mw is megawatts in site signs (x 1e6 onto the wire's power_w).
 *
 * Input hygiene: URLs are percent-decoded here, not by libmicrohttpd (its decoder writes a
 * %00 into the path as a NUL, and the C string we were handed then named another resource):
 * a path or query value that decodes to a control character is refused, and every id in a
 * path or body must pass ident_valid. Request data written to the log goes through
 * log_escape. The listener has a connection limit, a per-IP limit and an idle timeout, and
 * a small thread pool, so idle or half-sent connections cannot keep /healthz from answering
 * (docs/operations.md, REST limits).
 *
 * Security (docs/operations.md, "Securing a deployment"): every request passes the gate of
 * headend/auth.c (bearer token, role, rate limit) before it is routed, so that a caller
 * without a token learns nothing, not even which paths exist; every state-changing request
 * that passed authentication is written to the audit trail with its outcome. HTTPS is
 * libmicrohttpd's (GnuTLS); plain HTTP on a non-loopback address needs --insecure. */
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

#include "headend/auth.h"
#include "headend/commands.h"
#include "headend/config.h"
#include "headend/console.h"
#include "headend/events.h"
#include "headend/ident.h"
#include "common/log.h"
#include "common/pem.h"
#include "headend/metrics.h"
#include "headend/sites.h"
#include "headend/webhook.h"

#define MAX_BODY            65536
#define RANGE_LIMIT_DEFAULT 10000
#define RANGE_LIMIT_MAX     100000
#define RECENT_SESSIONS     5
#define MAX_ARGS            16 /* query parameters per request */
#define AUDIT_LIMIT_DEFAULT 1000

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
    cJSON_AddItemToArray(ctx, sites_session_json(s));
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
        /* several headends: another one may hold the site's stream (headend/cluster.h) */
        const struct site_remote *rm = hub_site_remote_c(h, a->site);
        if (s || (rm && !rm->held))
            rm = NULL;
        const char *gw = s ? s->gateway_id : rm ? rm->gateway_id : ss->gateway_id;
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
        cJSON_AddBoolToObject(o, "connected", s != NULL || rm != NULL);
        if (s || rm)
            cJSON_AddStringToObject(o, "node", s ? hub_node_id(h) : rm->node_id);
        else
            cJSON_AddNullToObject(o, "node");
        const struct asset_state *as = hub_asset_state(h, i); /* Telemetry.state, latest */
        if (as->op_state[0])
            cJSON_AddStringToObject(o, "state", as->op_state);
        else
            cJSON_AddNullToObject(o, "state");
        if (as->modbus.has_cur && as->modbus.cur_requests) { /* Telemetry 21-24, cumulative */
            cJSON *mb = cJSON_AddObjectToObject(o, "modbus");
            cJSON_AddNumberToObject(mb, "requests", (double)as->modbus.cur_requests);
            cJSON_AddNumberToObject(mb, "errors", (double)as->modbus.cur_errors);
            cJSON_AddNumberToObject(mb, "timeouts", (double)as->modbus_timeouts);
            cJSON_AddStringToObject(mb, "breaker", as->breaker);
        } else {
            cJSON_AddNullToObject(o, "modbus");
        }
        int64_t seen = s ? s->last_seen_ms : rm ? rm->last_seen_ms : ss->last_seen_ms;
        if (!seen && first) {
            cJSON *e = cJSON_GetObjectItem(first, "ended_ms");
            seen = cJSON_IsNumber(e) ? (int64_t)e->valuedouble : 0;
        }
        if (seen)
            cJSON_AddNumberToObject(o, "last_seen_ms", (double)seen);
        else
            cJSON_AddNullToObject(o, "last_seen_ms");
        cJSON_AddBoolToObject(o, "stale",
                              s ? now_ms - s->last_seen_ms > presence_ms : rm && rm->stale);
        /* Ping round trips of the site's gateway (the last one survives a disconnect) */
        add_num_or_null(o, "rtt_ms", ss->has_rtt ? ss->rtt_last_ms : NAN);
        add_num_or_null(o, "rtt_ewma_ms", ss->has_rtt ? ss->rtt_ewma_ms : NAN);
        cJSON_AddBoolToObject(o, "estop", ss->estop_active); /* the site's emergency stop */
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

/* ?from=&to=&limit= of a history query: Unix ms, from 0 to a day ahead, RANGE_LIMIT_DEFAULT
 * rows, by default. 0, or -1 with the error answered in r. */
static int range_args(const char *from_s, const char *to_s, const char *limit_s, int64_t now_ms,
                      int64_t *from, int64_t *to, int64_t *limit, struct rest_response *r)
{
    *from = 0;
    *to = now_ms + 86400000LL;
    *limit = RANGE_LIMIT_DEFAULT;
    if (from_s && parse_ms(from_s, from) < 0)
        error(r, 400, "from", "from must be Unix milliseconds (an integer)");
    else if (to_s && parse_ms(to_s, to) < 0)
        error(r, 400, "to", "to must be Unix milliseconds (an integer)");
    else if (*from > *to)
        error(r, 400, "from", "from is after to");
    else if (limit_s && (parse_ms(limit_s, limit) < 0 || *limit < 1 || *limit > RANGE_LIMIT_MAX))
        error(r, 400, "limit", "limit must be an integer in 1..%d", RANGE_LIMIT_MAX);
    else
        return 0;
    return -1;
}

static int add_sample(const struct store_telemetry *t, void *ctx)
{
    cJSON_AddItemToArray(ctx, sites_telemetry_json(t));
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
        cJSON *o = sites_telemetry_json(&st->latest);
        cJSON_AddNumberToObject(o, "lag_ms", st->lag_ms);
        cJSON_AddNumberToObject(o, "age_ms", (double)(now_ms - st->latest.received_ms));
        if (st->op_state[0])
            cJSON_AddStringToObject(o, "state", st->op_state);
        set_json(r, 200, o);
        return 0;
    }
    int64_t from, to, limit;
    if (range_args(from_s, to_s, limit_s, now_ms, &from, &to, &limit, r))
        return 0;
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
    cJSON_AddItemToArray(ctx, sites_ack_json(a));
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
    if (d.requested_by[0])
        cJSON_AddStringToObject(o, "requested_by", d.requested_by);
    else
        cJSON_AddNullToObject(o, "requested_by");
    st->ops->alloc_list(st, d.id, add_alloc, cJSON_AddArrayToObject(o, "allocations"));
    st->ops->acks_list(st, d.id, add_ack, cJSON_AddArrayToObject(o, "acks"));
    set_json(r, 200, o);
    return 0;
}

/* Finds the first string in a JSON text that holds a NUL, raw or escaped as \u0000. cJSON
 * decodes it into the value, and every C-string use of that value then stops at it:
 * {"asset_id":"bat-1\u0000evil"} was dispatched to bat-1. Returns 1 with key set to the
 * member of the top-level object the string is in (its raw text, cut to keylen - 1; "body"
 * when the NUL is in a member name or outside any member), 0 when no string has one. Only
 * strings matter here, so the scan just tells strings from the rest; it never reads past n
 * and needs no valid JSON (cJSON has parsed the text already). */
static int json_find_nul(const char *s, size_t n, char *key, size_t keylen)
{
    int depth = 0, object = 0, want_key = 0, have_key = 0;
    size_t key_at = 0, key_len = 0;
    for (size_t i = 0; s && i < n; i++) {
        char c = s[i];
        if (c == '"') {
            size_t start = ++i;
            int nul = 0;
            for (; i < n && s[i] != '"'; i++) {
                if (s[i] == 0) {
                    nul = 1;
                } else if (s[i] == '\\' && i + 1 < n) {
                    if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4))
                        nul = 1;
                    i++; /* the escaped character: \" does not end the string */
                }
            }
            int is_key = depth == 1 && object && want_key;
            if (is_key) {
                key_at = start;
                key_len = i - start;
                have_key = 1;
                want_key = 0;
            }
            if (nul) {
                if (is_key || !have_key || depth < 1)
                    snprintf(key, keylen, "body");
                else
                    snprintf(key, keylen, "%.*s", (int)key_len, s + key_at);
                return 1;
            }
        } else if (c == '{' || c == '[') {
            if (++depth == 1) {
                object = c == '{';
                want_key = object;
            }
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 1) {
            want_key = object;
        }
    }
    return 0;
}

/* ---- fleet views and group dispatch (headend/sites.h) ----------------------------------- */

static int get_sites(struct hub *h, rest_arg_fn arg, void *actx, int64_t now_ms,
                     struct rest_response *r)
{
    struct sites_query q = {0};
    int64_t n;
    if (arg) {
        q.group = arg(actx, "group");
        q.q = arg(actx, "q");
        q.sort = arg(actx, "sort");
        const char *lim = arg(actx, "limit"), *off = arg(actx, "offset");
        if (lim && (parse_ms(lim, &n) < 0 || n < 0 || n > RANGE_LIMIT_MAX))
            return error(r, 400, "limit", "limit must be an integer in 0..%d (0 = all)",
                         RANGE_LIMIT_MAX);
        q.limit = lim ? (size_t)n : 0;
        if (off && (parse_ms(off, &n) < 0 || n < 0))
            return error(r, 400, "offset", "offset must be a non-negative integer");
        q.offset = off ? (size_t)n : 0;
    }
    char err[200];
    cJSON *o;
    int e = sites_list(h, &q, now_ms, &o, err, sizeof(err));
    if (e == -EINVAL)
        return error(r, 400, "sort", "%s", err);
    if (e < 0)
        return error(r, 500, "sites", "out of memory");
    set_json(r, 200, o);
    return 0;
}

static int get_site(struct hub *h, const char *site_id, int64_t now_ms, struct rest_response *r)
{
    const struct inv_site *site = inventory_site(hub_inventory(h), site_id);
    if (!site)
        return error(r, 404, "site_id", "unknown site '%s'", site_id);
    cJSON *o;
    if (sites_detail(h, site->index, now_ms, &o) < 0)
        return error(r, 500, "sites", "out of memory");
    set_json(r, 200, o);
    return 0;
}

static int post_dispatch_group(struct hub *h, const char *who, const char *group, double power_w,
                               int ttl, int64_t now_ms, struct rest_response *r)
{
    char err[256];
    cJSON *o;
    /* one WAL flush for all the shares before the 202, not one per share (PostgreSQL) */
    struct store *st = hub_store(h);
    int lazy = st->ops->defer_flush && st->ops->defer_flush(st, 1) == 0;
    int e = sites_dispatch_group(h, who, group, power_w, ttl, now_ms, &o, err, sizeof(err));
    if (lazy && st->ops->defer_flush(st, 0) < 0 && e >= 0 && o)
        /* the shares were sent already: say so rather than answer as if nothing happened */
        cJSON_AddStringToObject(o, "warning",
                                "the store did not confirm the setpoints on disk (see its log): "
                                "a database crash now may lose some; GET /dispatch/:id tells");
    if (e == -ENOENT)
        return error(r, 404, "group_id", "%s", err);
    if (e == -ERANGE)
        return error(r, 400, "mw", "%s", err);
    if (e == -EAGAIN)
        return error(r, 409, "group_id", "%s", err);
    if (e < 0)
        return error(r, 500, "store", "%s", err);
    set_json(r, 202, o);
    return 0;
}

/* A request body as one JSON value and nothing after it but white space: cJSON stops after
 * the first value, so `{"strategy":"null"} trailing` was taken (and stored) as if well formed. */
static cJSON *parse_body(const char *body, size_t len)
{
    const char *b = body ? body : "", *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(b, len, &end, 0);
    while (j && end && (size_t)(end - b) < len && *end && strchr(" \t\r\n", *end))
        end++;
    if (j && end && (size_t)(end - b) < len) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* Whether the body nests arrays and objects deeper than cJSON parses (CJSON_NESTING_LIMIT),
 * brackets inside strings not counted: a body cJSON refused for that is "nested too deep", not
 * "not a JSON object". */
static int json_too_deep(const char *b, size_t len)
{
    size_t depth = 0;
    int in_str = 0;
    for (size_t i = 0; b && i < len; i++) {
        char c = b[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > CJSON_NESTING_LIMIT)
                return 1;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

static int error_not_object(struct rest_response *r, const char *body, size_t len, const char *what)
{
    if (json_too_deep(body, len))
        return error(r, 400, "body",
                     "the body is nested deeper than %d levels of arrays and "
                     "objects",
                     CJSON_NESTING_LIMIT);
    return error(r, 400, "body", "the body must be a JSON object%s", what);
}

static int post_dispatch(struct hub *h, const char *who, const char *body, size_t len,
                         int64_t now_ms, struct rest_response *r)
{
    const struct headend_config *cfg = hub_config(h);
    const struct inventory *inv = hub_inventory(h);
    cJSON *j = parse_body(body, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return error_not_object(r, body, len, "");
    }
    char key[INV_ID_MAX], why[96];
    if (json_find_nul(body, len, key, sizeof(key))) {
        cJSON_Delete(j);
        return error(r, 400, key, "%s contains a NUL character (\\u0000): refused, not cut there",
                     key);
    }
    const cJSON *ja = cJSON_GetObjectItemCaseSensitive(j, "asset_id");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "site_id");
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(j, "mw");
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(j, "ttl_s");
    const cJSON *jg = cJSON_GetObjectItemCaseSensitive(j, "group_id");
    const struct inv_asset *a = NULL;
    const struct inv_site *s = NULL;
    const char *group = NULL;
    int rc = 0;
    if (ja && !cJSON_IsNull(ja)) {
        if (!cJSON_IsString(ja))
            rc = error(r, 400, "asset_id", "asset_id must be a string");
        else if (ident_valid(ja->valuestring, strlen(ja->valuestring), why, sizeof(why)) < 0)
            rc = error(r, 400, "asset_id", "asset_id %s", why);
        else if (!(a = inventory_asset(inv, ja->valuestring)))
            rc = error(r, 404, "asset_id", "unknown asset '%s'", ja->valuestring);
    } else if (js && !cJSON_IsNull(js)) {
        if (!cJSON_IsString(js))
            rc = error(r, 400, "site_id", "site_id must be a string");
        else if (ident_valid(js->valuestring, strlen(js->valuestring), why, sizeof(why)) < 0)
            rc = error(r, 400, "site_id", "site_id %s", why);
        else if (!(s = inventory_site(inv, js->valuestring)))
            rc = error(r, 404, "site_id", "unknown site '%s'", js->valuestring);
    } else if (jg && !cJSON_IsNull(jg)) {
        if (!cJSON_IsString(jg))
            rc = error(r, 400, "group_id", "group_id must be a string");
        else if (ident_valid(jg->valuestring, strlen(jg->valuestring), why, sizeof(why)) < 0)
            rc = error(r, 400, "group_id", "group_id %s", why);
        else
            group = jg->valuestring;
    } else {
        rc = error(r, 400, "asset_id|site_id|group_id",
                   "one of asset_id, site_id or group_id is required");
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
    if (group) {
        /* the group's range depends on which sites are connected: sites_dispatch_group */
    } else if (a) {
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
    if (group) {
        rc = post_dispatch_group(h, who, group, power_w, ttl, now_ms, r);
        goto out;
    }
    char id[STORE_ID_MAX];
    int state;
    int e = hub_dispatch_by(h, who, a ? a->site : s->index, a ? a->index : SIZE_MAX, power_w, ttl,
                            now_ms, id, &state);
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
    if (who)
        cJSON_AddStringToObject(o, "requested_by", who);
    set_json(r, 202, o);
out:
    cJSON_Delete(j);
    return rc;
}

/* ---- audit and tokens (admin) ------------------------------------------------------------ */

static void add_ms_or_null(cJSON *o, const char *k, int64_t v)
{
    if (v)
        cJSON_AddNumberToObject(o, k, (double)v);
    else
        cJSON_AddNullToObject(o, k);
}

static int add_audit(const struct store_audit *a, void *ctx)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)a->id);
    cJSON_AddNumberToObject(o, "at_ms", (double)a->at_ms);
    cJSON_AddStringToObject(o, "who", a->who);
    cJSON_AddStringToObject(o, "role", a->role);
    cJSON_AddStringToObject(o, "peer", a->peer);
    cJSON_AddStringToObject(o, "method", a->method);
    cJSON_AddStringToObject(o, "path", a->path);
    cJSON_AddStringToObject(o, "summary", a->summary);
    cJSON_AddNumberToObject(o, "status", a->status);
    cJSON_AddStringToObject(o, "detail", a->detail);
    cJSON_AddItemToArray(ctx, o);
    return 0;
}

static int get_audit(struct hub *h, rest_arg_fn arg, void *actx, int64_t now_ms,
                     struct rest_response *r)
{
    const char *from_s = arg ? arg(actx, "from") : NULL;
    const char *to_s = arg ? arg(actx, "to") : NULL;
    const char *limit_s = arg ? arg(actx, "limit") : NULL;
    int64_t from = 0, to = now_ms + 86400000LL, limit = AUDIT_LIMIT_DEFAULT;
    if (from_s && parse_ms(from_s, &from) < 0)
        return error(r, 400, "from", "from must be Unix milliseconds (an integer)");
    if (to_s && parse_ms(to_s, &to) < 0)
        return error(r, 400, "to", "to must be Unix milliseconds (an integer)");
    if (from > to)
        return error(r, 400, "from", "from is after to");
    if (limit_s && (parse_ms(limit_s, &limit) < 0 || limit < 1 || limit > RANGE_LIMIT_MAX))
        return error(r, 400, "limit", "limit must be an integer in 1..%d", RANGE_LIMIT_MAX);
    struct store *st = hub_store(h);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "from", (double)from);
    cJSON_AddNumberToObject(o, "to", (double)to);
    cJSON *entries = cJSON_AddArrayToObject(o, "entries");
    if (st->ops->audit_range(st, from, to, (int)limit, add_audit, entries) < 0) {
        cJSON_Delete(o);
        return error(r, 500, "store", "store query failed");
    }
    cJSON_AddNumberToObject(o, "count", cJSON_GetArraySize(entries));
    set_json(r, 200, o);
    return 0;
}

/* A token as GET /tokens and `der-headend token list` show it: never the salt or hash. */
static int add_token(const struct store_token *t, void *ctx)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "role", t->role);
    cJSON_AddStringToObject(o, "id", t->id);
    cJSON_AddNumberToObject(o, "created_ms", (double)t->created_ms);
    add_ms_or_null(o, "last_used_ms", t->last_used_ms);
    add_ms_or_null(o, "revoked_ms", t->revoked_ms);
    cJSON_AddItemToArray(ctx, o);
    return 0;
}

static int get_tokens(struct hub *h, struct rest_response *r)
{
    struct store *st = hub_store(h);
    cJSON *arr = cJSON_CreateArray();
    if (st->ops->token_list(st, add_token, arr) < 0) {
        cJSON_Delete(arr);
        return error(r, 500, "store", "store query failed");
    }
    set_json(r, 200, arr);
    return 0;
}

/* POST /tokens {"name", "role"}: the new token is in this answer and nowhere else. */
static int post_tokens(struct hub *h, const char *body, size_t len, int64_t now_ms,
                       struct rest_response *r)
{
    char key[INV_ID_MAX], why[96];
    cJSON *j = parse_body(body, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return error(r, 400, "body", "the body must be a JSON object {\"name\", \"role\"}");
    }
    if (json_find_nul(body, len, key, sizeof(key))) {
        cJSON_Delete(j);
        return error(r, 400, key, "%s contains a NUL character (\\u0000)", key);
    }
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(j, "name");
    const cJSON *jr = cJSON_GetObjectItemCaseSensitive(j, "role");
    int role = cJSON_IsString(jr) ? auth_role_parse(jr->valuestring) : -EINVAL;
    int rc = 0;
    if (!cJSON_IsString(jn))
        rc = error(r, 400, "name", "name is required (a string)");
    else if (ident_valid(jn->valuestring, strlen(jn->valuestring), why, sizeof(why)) < 0)
        rc = error(r, 400, "name", "name %s", why);
    else if (role < 0)
        rc = error(r, 400, "role", "role must be viewer, operator or admin");
    if (r->body) {
        cJSON_Delete(j);
        return rc;
    }
    struct store_token rec;
    char token[AUTH_TOKEN_MAX];
    struct store *st = hub_store(h);
    int e = auth_token_new(jn->valuestring, role, now_ms, &rec, token);
    if (!e)
        e = st->ops->token_add(st, &rec);
    if (e == -EEXIST)
        rc = error(r, 409, "name", "a token named '%s' exists (revoke it first)", rec.name);
    else if (e < 0)
        rc = error(r, 500, "store", "could not make the token (%s)", strerror(-e));
    else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", rec.name);
        cJSON_AddStringToObject(o, "role", rec.role);
        cJSON_AddStringToObject(o, "id", rec.id);
        cJSON_AddStringToObject(o, "token", token);
        set_json(r, 201, o);
        r->no_store = 1;
    }
    explicit_bzero(token, sizeof(token));
    cJSON_Delete(j);
    return rc;
}

static int delete_token(struct hub *h, const char *name, int64_t now_ms, struct rest_response *r)
{
    struct store *st = hub_store(h);
    int e = st->ops->token_revoke(st, name, now_ms);
    if (e == -ENOENT)
        return error(r, 404, "name", "no token named '%s' that is not revoked", name);
    if (e < 0)
        return error(r, 500, "store", "could not revoke the token (%s)", strerror(-e));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddNumberToObject(o, "revoked_ms", (double)now_ms);
    set_json(r, 200, o);
    return 0;
}

/* ---- remote operations: site configuration, ping, alerts -------------------------------- */

/* Is s (n bytes) UTF-8 without NUL? The store keeps the text as it is, and PostgreSQL takes
 * only valid UTF-8. */
static int utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        size_t k = c < 0x80                 ? 0
                   : c >= 0xC2 && c <= 0xDF ? 1
                   : (c & 0xF0) == 0xE0     ? 2
                   : c >= 0xF0 && c <= 0xF4 ? 3
                                            : SIZE_MAX;
        if (c == 0 || k == SIZE_MAX || i + k >= n)
            return 0;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
        i += k;
    }
    return 1;
}

/* Several headends: the holder's view of a site whose stream another live headend holds
 * (what its gateway reported there), else NULL. */
static const struct site_remote *held_elsewhere(struct hub *h, size_t site_idx)
{
    const struct site_remote *rm = hub_site_remote_c(h, site_idx);
    return rm && rm->held && !registry_site(hub_registry(h), site_idx) ? rm : NULL;
}

/* PUT /sites/:id/config: the body is the desired configuration; the gateway's checks decide
 * (hub_config_put), and their message names the field. */
static int put_site_config(struct hub *h, const char *who, const char *site_id, const char *body,
                           size_t len, int64_t now_ms, struct rest_response *r)
{
    const struct inv_site *site = inventory_site(hub_inventory(h), site_id);
    if (!site)
        return error(r, 404, "site_id", "unknown site '%s'", site_id);
    if (!body || !len || !utf8_ok((const unsigned char *)body, len))
        return error(r, 400, "body", "the body must be a JSON object in UTF-8, without NUL");
    cJSON *j = parse_body(body, len);
    char *norm = j && cJSON_IsObject(j) ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!norm)
        return error_not_object(r, body, len, " (the desired configuration)");
    if (strlen(norm) >= STORE_CONFIG_MAX) {
        cJSON_free(norm);
        return error(r, 413, "body", "the configuration is larger than %d bytes (compact JSON)",
                     STORE_CONFIG_MAX - 1);
    }
    char err[1024], field[128];
    int64_t version = 0;
    int e = hub_config_put(h, site->index, norm, who, now_ms, &version, err, sizeof(err), field,
                           sizeof(field));
    cJSON_free(norm);
    if (e == -EINVAL) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", err);
        cJSON_AddStringToObject(o, "field", field[0] ? field : "body");
        set_json(r, 400, o);
        return 0;
    }
    if (e == -EAGAIN)
        return error(r, 409, "version",
                     "another headend stored a new version at the same time: "
                     "read it and try again");
    if (e < 0)
        return error(r, 500, "store", "could not store the configuration (%s)", strerror(-e));
    const struct session *s = registry_site(hub_registry(h), site->index);
    const struct site_remote *rm = held_elsewhere(h, site->index);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site_id", site->id);
    cJSON_AddNumberToObject(o, "version", (double)version);
    cJSON_AddBoolToObject(o, "pushed", s && s->config_push);
    /* announced to the headend holding the stream (derloop_config), which pushes it */
    if (rm)
        cJSON_AddStringToObject(o, "routed_to", rm->node_id);
    set_json(r, 200, o);
    return 0;
}

static int get_site_config(struct hub *h, const char *site_id, struct rest_response *r)
{
    const struct inv_site *site = inventory_site(hub_inventory(h), site_id);
    if (!site)
        return error(r, 404, "site_id", "unknown site '%s'", site_id);
    static struct store_config c; /* 16 KB; the hub's lock serialises every caller */
    struct store *st = hub_store(h);
    int e = st->ops->config_get(st, site->id, &c);
    if (e < 0 && e != -ENOENT)
        return error(r, 500, "store", "store query failed");
    const struct site_state *ss = hub_site_state(h, site->index);
    const struct site_remote *rm = held_elsewhere(h, site->index);
    /* the gateway's report where it was made: on the headend holding its stream */
    int has = rm ? rm->has_reported : ss->has_reported;
    int64_t version = rm ? rm->reported_version : ss->reported_version;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site_id", site->id);
    if (e == 0) {
        cJSON *d = cJSON_AddObjectToObject(o, "desired");
        cJSON_AddNumberToObject(d, "version", (double)c.version);
        cJSON_AddItemToObject(d, "config", cJSON_Parse(c.json));
        cJSON_AddNumberToObject(d, "updated_ms", (double)c.updated_ms);
        cJSON_AddStringToObject(d, "updated_by", c.updated_by);
    } else {
        cJSON_AddNullToObject(o, "desired");
    }
    if (has) {
        cJSON *p = cJSON_AddObjectToObject(o, "reported");
        cJSON_AddNumberToObject(p, "version", (double)version);
        cJSON_AddStringToObject(p, "status", rm ? rm->reported_status : ss->reported_status);
        cJSON_AddStringToObject(p, "detail", rm ? rm->reported_detail : ss->reported_detail);
        cJSON_AddNumberToObject(p, "at_ms", (double)(rm ? rm->reported_ms : ss->reported_ms));
        cJSON_AddStringToObject(p, "gateway_id", rm ? rm->gateway_id : ss->gateway_id);
        if (rm)
            cJSON_AddStringToObject(p, "node", rm->node_id);
    } else {
        cJSON_AddNullToObject(o, "reported");
    }
    cJSON_AddBoolToObject(o, "in_sync", e == 0 && has && version == c.version);
    set_json(r, 200, o);
    return 0;
}

static int post_ping(struct hub *h, const char *gateway_id, int64_t now_ms, struct rest_response *r)
{
    uint64_t nonce = 0;
    if (hub_ping(h, gateway_id, now_ms, &nonce) < 0)
        return error(r, 404, "gateway_id", "gateway '%s' has no live session", gateway_id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "gateway_id", gateway_id);
    cJSON_AddNumberToObject(o, "nonce", (double)nonce);
    cJSON_AddNumberToObject(o, "sent_ms", (double)now_ms);
    set_json(r, 202, o);
    return 0;
}

/* GET /alerts?state=active|cleared|all&rule=R&site=S&limit=N: active ones first. */
static int get_alerts(struct hub *h, rest_arg_fn arg, void *actx, struct rest_response *r)
{
    const char *state = arg ? arg(actx, "state") : NULL;
    const char *rule_s = arg ? arg(actx, "rule") : NULL;
    const char *site = arg ? arg(actx, "site") : NULL;
    const char *limit_s = arg ? arg(actx, "limit") : NULL;
    int64_t limit = AUDIT_LIMIT_DEFAULT;
    int rule = -1;
    if (state && strcmp(state, "active") && strcmp(state, "cleared") && strcmp(state, "all"))
        return error(r, 400, "state", "state must be active, cleared or all");
    if (rule_s && (rule = alert_rule_parse(rule_s)) < 0)
        return error(r, 400, "rule",
                     "unknown rule (gateway_offline, gateway_stale, asset_fault, "
                     "soc_low, dispatch_failed, telemetry_lag)");
    if (limit_s && (parse_ms(limit_s, &limit) < 0 || limit < 1 || limit > RANGE_LIMIT_MAX))
        return error(r, 400, "limit", "limit must be an integer in 1..%d", RANGE_LIMIT_MAX);
    const struct alerts *al = hub_alerts(h);
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "alerts");
    size_t n = 0;
    for (size_t i = 0; i < alerts_count(al) && n < (size_t)limit; i++) {
        const struct alert *a = alerts_at(al, i);
        if ((state && !strcmp(state, "active") && !a->active) ||
            (state && !strcmp(state, "cleared") && a->active) || (rule >= 0 && a->rule != rule) ||
            (site && strcmp(site, a->site_id)))
            continue;
        cJSON_AddItemToArray(arr, alert_json(a));
        n++;
    }
    cJSON *act = cJSON_AddObjectToObject(o, "active_by_rule");
    for (int k = 0; k < ALERT_RULES; k++)
        cJSON_AddNumberToObject(act, alert_rule_name(k), (double)alerts_active(al, k));
    cJSON_AddNumberToObject(o, "count", (double)n);
    set_json(r, 200, o);
    return 0;
}

static int post_alert_ack(struct hub *h, const char *who, const char *id, int64_t now_ms,
                          struct rest_response *r)
{
    int64_t n = 0;
    if (parse_ms(id, &n) < 0 || n < 1)
        return error(r, 400, "id", "an alert id is a positive integer");
    struct alerts *al = hub_alerts(h);
    int e = alerts_ack(al, (uint64_t)n, who, now_ms);
    if (e == -ENOENT)
        return error(r, 404, "id", "no alert %lld (active, or kept in the history)", (long long)n);
    if (e == -EALREADY)
        return error(r, 409, "id", "alert %lld was acknowledged already", (long long)n);
    for (size_t i = 0; i < alerts_count(al); i++)
        if (alerts_at(al, i)->id == (uint64_t)n) {
            set_json(r, 200, alert_json(alerts_at(al, i)));
            break;
        }
    return 0;
}

static int path_id(const char *path, size_t plen, const char *prefix, const char *suffix,
                   const char **id, size_t *idlen);
static int bad_path_id(struct rest_response *r, const char *field, const char *id, size_t len);

/* ---- the emergency stop: /sites/:id/estop, /groups/:group/estop ----------------------------- */

static cJSON *estop_json(struct hub *h, const struct inv_site *site)
{
    const struct site_state *ss = hub_site_state(h, site->index);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site_id", site->id);
    cJSON_AddBoolToObject(o, "active", ss->estop_active);
    cJSON_AddStringToObject(o, "id", ss->estop_id);
    cJSON_AddStringToObject(o, "reason", ss->estop_active ? ss->estop_reason : "");
    cJSON_AddStringToObject(o, "by", ss->estop_by);
    add_ms_or_null(o, "since_ms", ss->estop_known ? ss->estop_since_ms : 0);
    cJSON *g = cJSON_AddObjectToObject(o, "gateway");
    /* several headends: what the gateway reported on the headend holding its stream */
    const struct site_remote *rm = held_elsewhere(h, site->index);
    cJSON_AddBoolToObject(g, "connected",
                          rm || registry_site(hub_registry(h), site->index) != NULL);
    if (rm)
        cJSON_AddStringToObject(g, "node", rm->node_id);
    cJSON_AddBoolToObject(g, "supports_estop", rm ? rm->estop_capable : ss->estop_capable);
    if (rm ? rm->estop_has_reported : ss->estop_has_reported) {
        cJSON_AddBoolToObject(g, "active",
                              rm ? rm->estop_reported_active : ss->estop_reported_active);
        cJSON_AddNumberToObject(g, "at_ms",
                                (double)(rm ? rm->estop_reported_ms : ss->estop_reported_ms));
    } else {
        cJSON_AddNullToObject(g, "active");
        cJSON_AddNullToObject(g, "at_ms");
    }
    return o;
}

/* The body of POST .../estop: empty, or {"reason": "..."}. 0 with reason, or an answer in r. */
static int estop_reason(const char *body, size_t len, char *reason, size_t rlen,
                        struct rest_response *r)
{
    reason[0] = '\0';
    if (!body || !len)
        return 0;
    cJSON *j = utf8_ok((const unsigned char *)body, len) ? parse_body(body, len) : NULL;
    const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, "reason") : NULL;
    int ok = cJSON_IsObject(j) && cJSON_GetArraySize(j) == (v ? 1 : 0) &&
             (!v || (cJSON_IsString(v) && strlen(v->valuestring) < rlen));
    if (ok && v)
        snprintf(reason, rlen, "%s", v->valuestring);
    cJSON_Delete(j);
    if (!ok)
        error(r, 400, "reason", "the body must be {\"reason\": TEXT} (at most %zu bytes), or empty",
              rlen - 1);
    return ok ? 0 : -1;
}

/* A release when no stop holds (none active here, none as the gateway last reported) changes
 * nothing: no log line, no message, since_ms kept; *changed 0 (the answer is then 200, not
 * 202). Before anything is known (after a restart, the gateway not back yet) a release is
 * recorded: it reaches the gateway at its Register. */
static cJSON *estop_apply(struct hub *h, const char *who, const struct inv_site *site, int active,
                          const char *reason, int64_t now_ms, int *changed)
{
    int sent = 0;
    const struct site_state *ss = hub_site_state(h, site->index);
    int held = ss->estop_active || (ss->estop_has_reported && ss->estop_reported_active) ||
               (!ss->estop_known && !ss->estop_has_reported);
    int e = 0;
    if (active || held) {
        e = hub_estop(h, site->index, active, reason, who, now_ms, &sent);
        *changed = 1;
    }
    cJSON *o = estop_json(h, site);
    cJSON_AddBoolToObject(o, "sent", sent);
    cJSON_AddBoolToObject(o, "changed", active || held);
    if (e == -EIO) /* several headends: the others cannot see it yet (retried) */
        cJSON_AddStringToObject(o, "warning",
                                "the store refused the stop's shared row: the other headends do "
                                "not see it (nor send it) until it is written, retried every "
                                "sweep");
    /* announced to the headend holding the stream (derloop_estop), which sends it */
    const struct site_remote *rm = held_elsewhere(h, site->index);
    if (rm)
        cJSON_AddStringToObject(o, "routed_to", rm->node_id);
    return o;
}

/* 1 when path is an estop route (answered in r), 0 otherwise. */
static int route_estop(struct hub *h, const char *who, const char *method, const char *path,
                       size_t plen, const char *body, size_t len, int64_t now_ms,
                       struct rest_response *r)
{
    const char *id = NULL;
    size_t idlen = 0;
    int group = path_id(path, plen, "/groups/", "/estop", &id, &idlen);
    if (!group && !path_id(path, plen, "/sites/", "/estop", &id, &idlen))
        return 0;
    if (bad_path_id(r, group ? "group" : "site_id", id, idlen))
        return 1;
    char name[INV_ID_MAX], reason[HUB_ESTOP_REASON_MAX];
    snprintf(name, sizeof(name), "%.*s", (int)idlen, id);
    int post = !strcmp(method, "POST"), del = !strcmp(method, "DELETE");
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!post && !del && !(get && !group)) {
        error(r, 405, "method", "use %s %s", group ? "POST or DELETE" : "GET, POST or DELETE",
              path);
        return 1;
    }
    if (post && estop_reason(body, len, reason, sizeof(reason), r))
        return 1;
    const struct inventory *inv = hub_inventory(h);
    if (!group) {
        const struct inv_site *site = inventory_site(inv, name);
        if (!site)
            error(r, 404, "site_id", "unknown site '%s'", name);
        else if (get)
            set_json(r, 200, estop_json(h, site));
        else {
            int changed = 0;
            cJSON *o = estop_apply(h, who, site, post, reason, now_ms, &changed);
            set_json(r, changed ? 202 : 200, o);
        }
        return 1;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "group", name);
    cJSON *arr = cJSON_AddArrayToObject(o, "sites");
    int changed = 0;
    for (size_t i = 0; i < inventory_site_count(inv); i++) {
        const struct inv_site *site = inventory_site_at(inv, i);
        if (!strcmp(site->group, name))
            cJSON_AddItemToArray(arr, estop_apply(h, who, site, post, reason, now_ms, &changed));
    }
    if (cJSON_GetArraySize(arr) == 0) {
        cJSON_Delete(o);
        error(r, 404, "group", "no site of the inventory is in group '%s'", name);
        return 1;
    }
    set_json(r, changed ? 202 : 200, o);
    return 1;
}

/* ---- the gateways' decisions: GET /sites/:id/decisions --------------------------------------- */

static int add_decision(const struct store_decision *d, void *ctx)
{
    cJSON *o = cJSON_Parse(d->json); /* the hub wrote it: an object */
    if (!o)
        o = cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(o, "ts_ms");
    cJSON_AddNumberToObject(o, "ts_ms", (double)d->ts_ms);
    cJSON_AddStringToObject(o, "gateway_id", d->gateway_id);
    cJSON_AddNumberToObject(o, "received_ms", (double)d->received_ms);
    cJSON_AddItemToArray(ctx, o);
    return 0;
}

/* 1 when path is /sites/:id/decisions (answered in r), 0 otherwise. */
static int route_decisions(struct hub *h, const char *method, const char *path, size_t plen,
                           rest_arg_fn arg, void *actx, int64_t now_ms, struct rest_response *r)
{
    const char *id = NULL;
    size_t idlen = 0;
    if (!path_id(path, plen, "/sites/", "/decisions", &id, &idlen))
        return 0;
    if (bad_path_id(r, "site_id", id, idlen))
        return 1;
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        error(r, 405, "method", "use GET %.*s", (int)plen, path);
        return 1;
    }
    char name[INV_ID_MAX];
    snprintf(name, sizeof(name), "%.*s", (int)idlen, id);
    if (!inventory_site(hub_inventory(h), name)) {
        error(r, 404, "site_id", "unknown site '%s'", name);
        return 1;
    }
    int64_t from, to, limit;
    if (range_args(arg ? arg(actx, "from") : NULL, arg ? arg(actx, "to") : NULL,
                   arg ? arg(actx, "limit") : NULL, now_ms, &from, &to, &limit, r))
        return 1;
    struct store *st = hub_store(h);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site_id", name);
    cJSON_AddNumberToObject(o, "from", (double)from);
    cJSON_AddNumberToObject(o, "to", (double)to);
    cJSON *arr = cJSON_AddArrayToObject(o, "decisions");
    if (st->ops->decision_range(st, name, from, to, (int)limit, add_decision, arr) < 0) {
        cJSON_Delete(o);
        error(r, 500, "store", "store query failed");
        return 1;
    }
    cJSON_AddNumberToObject(o, "count", cJSON_GetArraySize(arr));
    set_json(r, 200, o);
    return 1;
}

/* "PREFIX ID SUFFIX" with an id free of slashes: 1 with *id and *idlen pointing into path. */
/* ---- per-asset commands (headend/commands.h; docs/operations.md, "Commands") ------------ */

static cJSON *command_json(const struct command_rec *c)
{
    return command_rec_json(c, 0);
}

/* POST /assets/:asset_id/commands {"command", "value", "ttl_s"}: 202 with the command. */
static int post_command(struct hub *h, const char *who, const char *asset_id, const char *body,
                        size_t len, int64_t now_ms, struct rest_response *r)
{
    const struct inv_asset *a = inventory_asset(hub_inventory(h), asset_id);
    if (!a)
        return error(r, 404, "asset_id", "unknown asset '%s'", asset_id);
    cJSON *j = cJSON_ParseWithLength(body ? body : "", len);
    char key[INV_ID_MAX];
    if (!j || !cJSON_IsObject(j) || json_find_nul(body, len, key, sizeof(key))) {
        cJSON_Delete(j);
        return error_not_object(r, body, len, " (without NUL characters)");
    }
    const cJSON *jc = cJSON_GetObjectItemCaseSensitive(j, "command");
    const cJSON *jv = cJSON_GetObjectItemCaseSensitive(j, "value");
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(j, "ttl_s");
    int takes = cJSON_IsString(jc) ? commands_takes_value(jc->valuestring) : -1;
    double value = NAN;
    int ttl = COMMAND_TTL_S_DEF, rc = 0;
    if (takes < 0)
        rc = error(r, 400, "command", "command must be one of: %s", commands_names());
    else if (takes && !(cJSON_IsNumber(jv) && isfinite(jv->valuedouble)))
        rc = error(r, 400, "value",
                   "%s needs a finite number value (W, or degC for "
                   "set_temperature)",
                   jc->valuestring);
    else if (!takes && jv && !cJSON_IsNull(jv))
        rc = error(r, 400, "value", "%s takes no value", jc->valuestring);
    else if (jt && (!cJSON_IsNumber(jt) || jt->valuedouble != floor(jt->valuedouble) ||
                    jt->valuedouble < 1 || jt->valuedouble > COMMAND_TTL_S_MAX))
        rc = error(r, 400, "ttl_s", "ttl_s must be an integer number of seconds in 1..%d",
                   COMMAND_TTL_S_MAX);
    if (r->body)
        goto out;
    if (takes)
        value = jv->valuedouble;
    if (jt)
        ttl = (int)jt->valuedouble;
    const struct command_rec *c = NULL;
    int e = hub_command(h, who, a->index, jc->valuestring, value, ttl, now_ms, &c);
    if (e == -ENOTCONN)
        rc = error(r, 409, "asset_id", "no gateway is connected for asset '%s'", a->id);
    else if (e == -EOPNOTSUPP)
        rc = error(r, 409, "asset_id",
                   "the gateway serving asset '%s' does not take commands (its Register did not "
                   "announce them: an older der-gateway)",
                   a->id);
    else if (e < 0)
        rc = error(r, 503, "stream", "the command could not be sent (%s)", strerror(-e));
    else if (c->routed && held_elsewhere(h, a->site)) {
        /* stored QUEUED and announced: the headend holding the stream sends it (several
         * headends, docs/operations.md); GET /commands/:id on any headend follows it */
        cJSON *o = command_json(c);
        cJSON_AddStringToObject(o, "routed_to", held_elsewhere(h, a->site)->node_id);
        set_json(r, 202, o);
    } else
        set_json(r, 202, command_json(c));
out:
    cJSON_Delete(j);
    return rc;
}

static int get_command(struct hub *h, const char *id, struct rest_response *r)
{
    const struct command_rec *c = hub_command_get(h, id);
    if (!c)
        return error(r, 404, "command_id", "unknown command_id '%s'", id);
    set_json(r, 200, command_json(c));
    return 0;
}

static int path_id(const char *path, size_t plen, const char *prefix, const char *suffix,
                   const char **id, size_t *idlen)
{
    size_t a = strlen(prefix), b = strlen(suffix);
    if (plen <= a + b || memcmp(path, prefix, a) || memcmp(path + plen - b, suffix, b))
        return 0;
    *id = path + a;
    *idlen = plen - a - b;
    return !memchr(*id, '/', *idlen);
}

/* Index of the first control character (C0, DEL; NUL included) in n bytes, or -1. */
static long find_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            return (long)i;
    return -1;
}

/* An id taken from the path (plen bytes: it may hold a NUL that the decoder produced). */
static int bad_path_id(struct rest_response *r, const char *field, const char *id, size_t len)
{
    char why[96];
    if (ident_valid(id, len, why, sizeof(why)) == 0)
        return 0;
    error(r, 400, field, "%s in the path %s", field, why);
    return 1;
}

/* who: the caller as the gate named it (NULL without a gate: rest_handle, rest_handle_url). */
static int route(struct hub *h, const char *who, const char *method, const char *path, size_t plen,
                 rest_arg_fn arg, void *actx, const char *body, size_t len, int64_t now_ms,
                 struct rest_response *r)
{
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (route_estop(h, who, method, path, plen, body, len, now_ms, r))
        return 0;
    if (route_decisions(h, method, path, plen, arg, actx, now_ms, r))
        return 0;
    /* The routes with an id in the path: the id gets the id rules (and its own field in the
     * error); any other path must simply be free of control characters. */
    int tele = plen > 11 && !memcmp(path, "/telemetry/", 11) && !memchr(path + 11, '/', plen - 11);
    int disp = plen > 10 && !memcmp(path, "/dispatch/", 10) && !memchr(path + 10, '/', plen - 10);
    int tok = plen > 8 && !memcmp(path, "/tokens/", 8) && !memchr(path + 8, '/', plen - 8);
    const char *id = NULL;
    size_t idlen = 0;
    int sitecfg = path_id(path, plen, "/sites/", "/config", &id, &idlen);
    int ping = !sitecfg && path_id(path, plen, "/agents/", "/ping", &id, &idlen);
    int ack = !sitecfg && !ping && path_id(path, plen, "/alerts/", "/ack", &id, &idlen);
    int site = !sitecfg && !ping && !ack && path_id(path, plen, "/sites/", "", &id, &idlen);
    /* per-asset commands: POST /assets/:id/commands, GET /commands/:id */
    const char *cid = NULL;
    size_t cidlen = 0;
    int cmdpost = path_id(path, plen, "/assets/", "/commands", &cid, &cidlen);
    int cmdget = !cmdpost && path_id(path, plen, "/commands/", "", &cid, &cidlen);
    long ctl = tele || disp || tok || sitecfg || ping || ack || site || cmdpost || cmdget
                   ? -1
                   : find_ctl(path, plen);
    if (ctl >= 0)
        return error(r, 400, "path", "the path contains a control character (0x%02x) at byte %ld",
                     (unsigned char)path[ctl], ctl);
    char idbuf[INV_ID_MAX];
    if (sitecfg || ping || ack || site) {
        if (bad_path_id(r, sitecfg || site ? "site_id" : ping ? "gateway_id" : "id", id, idlen))
            return 0;
        snprintf(idbuf, sizeof(idbuf), "%.*s", (int)idlen, id);
    }
    if (cmdpost || cmdget) {
        char cbuf[INV_ID_MAX];
        if (bad_path_id(r, cmdpost ? "asset_id" : "command_id", cid, cidlen))
            return 0;
        snprintf(cbuf, sizeof(cbuf), "%.*s", (int)cidlen, cid);
        if (cmdpost && strcmp(method, "POST") != 0)
            return error(r, 405, "method", "use POST %s", path);
        if (cmdget && !get)
            return error(r, 405, "method", "use GET %s", path);
        return cmdpost ? post_command(h, who, cbuf, body, len, now_ms, r) : get_command(h, cbuf, r);
    }
    if (sitecfg && !strcmp(method, "PUT"))
        return put_site_config(h, who, idbuf, body, len, now_ms, r);
    if (sitecfg && !get)
        return error(r, 405, "method", "use GET or PUT %s", path);
    if (ping || ack) {
        if (strcmp(method, "POST") != 0)
            return error(r, 405, "method", "use POST %s", path);
        return ping ? post_ping(h, idbuf, now_ms, r) : post_alert_ack(h, who, idbuf, now_ms, r);
    }
    if (!strcmp(path, "/dispatch")) {
        if (strcmp(method, "POST") != 0)
            return error(r, 405, "method", "use POST /dispatch");
        return post_dispatch(h, who, body, len, now_ms, r);
    }
    if (!strcmp(path, "/tokens") && !strcmp(method, "POST"))
        return post_tokens(h, body, len, now_ms, r);
    if (tok && !strcmp(method, "DELETE"))
        return bad_path_id(r, "name", path + 8, plen - 8) ? 0
                                                          : delete_token(h, path + 8, now_ms, r);
    if (!get)
        return error(r, 405, "method", "%s is not served on %s", method, path);
    if (!strcmp(path, "/healthz")) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "ok");
        if (who && !who[0]) { /* no token, while tokens are asked for: liveness only */
            set_json(r, 200, o);
            return 0;
        }
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
    if (!strcmp(path, "/audit"))
        return get_audit(h, arg, actx, now_ms, r);
    if (!strcmp(path, "/alerts"))
        return get_alerts(h, arg, actx, r);
    if (sitecfg)
        return get_site_config(h, idbuf, r);
    if (!strcmp(path, "/sites"))
        return get_sites(h, arg, actx, now_ms, r);
    if (site)
        return get_site(h, idbuf, now_ms, r);
    if (!strcmp(path, "/tokens"))
        return get_tokens(h, r);
    if (!strcmp(path, "/metrics")) {
        size_t n;
        if (metrics_render(h, now_ms, &r->body, &n) < 0)
            return error(r, 500, "metrics", "out of memory");
        r->status = 200;
        r->content_type = "text/plain; version=0.0.4";
        return 0;
    }
    if (tele)
        return bad_path_id(r, "asset_id", path + 11, plen - 11)
                   ? 0
                   : get_telemetry(h, path + 11, arg, actx, now_ms, r);
    if (disp)
        return bad_path_id(r, "setpoint_id", path + 10, plen - 10) ? 0
                                                                   : get_dispatch(h, path + 10, r);
    return error(r, 404, "path", "no such endpoint: %s", path);
}

static void out_of_memory(struct rest_response *resp)
{
    resp->status = 500;
    resp->content_type = "application/json";
    resp->body = strdup("{\"error\":\"out of memory\",\"field\":\"\"}");
}

static int handle_n(struct hub *h, const char *method, const char *path, size_t plen,
                    rest_arg_fn arg, void *arg_ctx, const char *body, size_t body_len,
                    int64_t now_ms, struct rest_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    hub_lock(h);
    int rc = route(h, NULL, method, path, plen, arg, arg_ctx, body, body_len, now_ms, resp);
    hub_unlock(h);
    if (!resp->body)
        out_of_memory(resp);
    return rc;
}

int rest_handle(struct hub *h, const char *method, const char *path, rest_arg_fn arg, void *arg_ctx,
                const char *body, size_t body_len, int64_t now_ms, struct rest_response *resp)
{
    return handle_n(h, method, path, strlen(path), arg, arg_ctx, body, body_len, now_ms, resp);
}

/* ---- the request as it came: percent-decoding and the query ----------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes n bytes into a new NUL-terminated string of *outlen bytes (which may hold
 * NULs: the caller compares). A '%' without two hex digits stays as it is, as in
 * libmicrohttpd's own decoder. NULL when out of memory. */
static char *pct_decode(const char *s, size_t n, size_t *outlen)
{
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            o[k++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = 0;
    *outlen = k;
    return o;
}

/* Decoded query parameters; the strings are owned (args_free). */
struct args {
    size_t n;
    char *key[MAX_ARGS], *val[MAX_ARGS]; /* val NULL for a bare `?key` */
};

static const char *args_get(void *ctx, const char *key)
{
    const struct args *a = ctx;
    for (size_t i = 0; i < a->n; i++)
        if (!strcmp(a->key[i], key))
            return a->val[i] ? a->val[i] : "";
    return NULL;
}

static void args_free(struct args *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free(a->key[i]);
        free(a->val[i]);
    }
    a->n = 0;
}

/* Adds one raw (still encoded) parameter. 0, or an error response set in r. */
static int args_add(struct args *a, const char *k, size_t kn, const char *v, size_t vn, int has_v,
                    struct rest_response *r)
{
    if (a->n == MAX_ARGS) {
        error(r, 400, "query", "more than %d query parameters", MAX_ARGS);
        return -E2BIG;
    }
    size_t kl = 0, vl = 0;
    char *key = pct_decode(k, kn, &kl), *val = has_v ? pct_decode(v, vn, &vl) : NULL;
    if (!key || (has_v && !val)) {
        free(key);
        free(val);
        out_of_memory(r);
        return -ENOMEM;
    }
    a->key[a->n] = key;
    a->val[a->n] = val;
    a->n++;
    long kc = find_ctl(key, kl), vc = val ? find_ctl(val, vl) : -1;
    if (kc >= 0) {
        error(r, 400, "query", "a query parameter name contains a control character (0x%02x)",
              (unsigned char)key[kc]);
        return -EINVAL;
    }
    if (vc >= 0) {
        error(r, 400, key, "%s contains a control character (0x%02x) at byte %ld", key,
              (unsigned char)val[vc], vc);
        return -EINVAL;
    }
    return 0;
}

/* Splits a raw query string (after '?') at '&' and '='. */
static int args_parse(struct args *a, const char *q, size_t n, struct rest_response *r)
{
    size_t i = 0;
    while (i < n) {
        const char *amp = memchr(q + i, '&', n - i);
        size_t end = amp ? (size_t)(amp - q) : n;
        if (end > i) {
            const char *eq = memchr(q + i, '=', end - i);
            size_t kend = eq ? (size_t)(eq - q) : end;
            int rc = args_add(a, q + i, kend - i, eq ? eq + 1 : NULL, eq ? end - kend - 1 : 0,
                              eq != NULL, r);
            if (rc < 0)
                return rc;
        }
        i = end + 1;
    }
    return 0;
}

/* ---- the gate, the audit trail and the log ------------------------------------------------ */

/* One request as it came, with who sent it. auth NULL: no gate and no audit trail (rest_handle,
 * rest_handle_url: the unit tests and fuzzers drive the routes directly). */
struct call {
    struct auth *auth;
    const char *authorization; /* the header, or NULL */
    const char *peer;          /* "ip:port", or NULL */
    int log;                   /* write refusals and errors to the log */
    const char *raw_path;      /* as received, for the audit trail */
    size_t raw_len;
    struct auth_verdict v;
};

/* n bytes of s into out (len bytes), cut at a UTF-8 character boundary with "..." when they do
 * not fit. */
static void cut_text(char *out, size_t len, const char *s, size_t n)
{
    if (n < len) {
        memcpy(out, s, n);
        out[n] = '\0';
        return;
    }
    size_t k = len - 4;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    memcpy(out, s, k);
    memcpy(out + k, "...", 4);
}

/* The body as the audit trail keeps it: compact JSON (so whitespace does not use the room),
 * shortened; a body that is not JSON is described, not copied. No endpoint takes a secret in
 * its body (POST /tokens returns one, it does not receive one). */
static void summarize(const char *body, size_t len, char *out, size_t outlen)
{
    if (!body || !len) {
        snprintf(out, outlen, "(no body)");
        return;
    }
    cJSON *j = cJSON_ParseWithLength(body, len);
    char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (txt)
        cut_text(out, outlen, txt, strlen(txt));
    else
        snprintf(out, outlen, "(%zu bytes, not JSON)", len);
    free(txt);
}

/* What came of it, from the answer: the error, or what was made or changed. */
static void outcome(const struct rest_response *r, char *out, size_t outlen)
{
    out[0] = '\0';
    cJSON *j = r->body ? cJSON_Parse(r->body) : NULL;
    static const char *const keys[] = {"error", "setpoint_id", "command_id", "name"};
    for (size_t i = 0; j && i < sizeof(keys) / sizeof(keys[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
        if (!cJSON_IsString(v))
            continue;
        if (i == 0)
            cut_text(out, outlen, v->valuestring, strlen(v->valuestring));
        else
            snprintf(out, outlen, "%s=%s", keys[i], v->valuestring);
        break;
    }
    cJSON_Delete(j);
}

/* One row of the audit trail (lock held). A store that fails is logged: the request has been
 * served already, and its log line stays. */
static void audit(struct store *st, const struct call *c, const char *method, const char *body,
                  size_t len, int64_t now_ms, const struct rest_response *r)
{
    struct store_audit a = {.at_ms = now_ms, .status = r->status};
    snprintf(a.who, sizeof(a.who), "%s", c->v.who);
    snprintf(a.role, sizeof(a.role), "%s", c->v.role ? auth_role_name(c->v.role) : "");
    snprintf(a.peer, sizeof(a.peer), "%s", c->peer ? c->peer : "");
    snprintf(a.method, sizeof(a.method), "%s", method);
    cut_text(a.path, sizeof(a.path), c->raw_path, strnlen(c->raw_path, c->raw_len));
    summarize(body, len, a.summary, sizeof(a.summary));
    outcome(r, a.detail, sizeof(a.detail));
    int e = st->ops->audit_add(st, &a);
    if (e < 0) {
        char wb[LOG_VALUE_MAX], pb[LOG_VALUE_MAX];
        log_event(LOG_ERROR, "event=audit_error who=%s path=%s status=%d error=\"%s\"",
                  log_escape(wb, sizeof(wb), a.who), log_escape(pb, sizeof(pb), a.path), a.status,
                  strerror(-e));
    }
}

static void refusal(struct rest_response *r, const struct auth_verdict *v)
{
    error(r, v->status, v->status == 403 ? "role" : "authorization", "%s", v->reason);
    r->www_authenticate =
        v->status == 403 ? "Bearer realm=\"derloop\", error=\"insufficient_scope\"" : v->challenge;
    r->retry_after_s = v->retry_after_s;
}

/* Refusals by the gate at warn (who tried, from where, why); other errors as before. Every
 * value from outside goes through log_escape. */
static void log_outcome(const struct call *c, const char *method, const char *path, size_t plen,
                        const struct rest_response *r)
{
    char mb[64], pb[LOG_VALUE_MAX], wb[LOG_VALUE_MAX], peer[LOG_VALUE_MAX], why[LOG_VALUE_MAX];
    log_escape(mb, sizeof(mb), method);
    log_escape_n(pb, sizeof(pb), path, plen);
    log_escape(peer, sizeof(peer), c->peer);
    if (c->auth && c->v.status) {
        char tb[AUTH_ID_HEX + 8];
        snprintf(tb, sizeof(tb), "id:%s", c->v.token_id);
        log_escape(wb, sizeof(wb), c->v.who[0] ? c->v.who : c->v.token_id[0] ? tb : NULL);
        log_event(LOG_WARN,
                  "event=auth_refused status=%d method=%s path=%s peer=%s token=%s role=%s "
                  "reason=%s",
                  c->v.status, mb, pb, peer, wb, c->v.role ? auth_role_name(c->v.role) : "-",
                  log_escape(why, sizeof(why), c->v.reason));
    } else if (r->status >= 400) {
        log_event(LOG_INFO, "event=http_error method=%s path=%s status=%d who=%s peer=%s", mb, pb,
                  r->status, log_escape(wb, sizeof(wb), c->auth ? c->v.who : NULL), peer);
    }
}

/* The console's static files (headend/console.h): public, before the gate, because a browser
 * cannot send a bearer token when it navigates to a page; they hold no data, and every call
 * they make goes through the gate with the token the operator typed. 1 when served. */
static int serve_console(const char *method, const char *path, size_t plen, struct rest_response *r)
{
    const struct console_file *f =
        strcmp(method, "GET") && strcmp(method, "HEAD") ? NULL : console_find(path, plen);
    if (!f)
        return 0;
    r->body = malloc(f->len + 1);
    if (!r->body) {
        out_of_memory(r);
        return 1;
    }
    memcpy(r->body, f->data, f->len);
    r->body[f->len] = 0;
    r->status = 200;
    r->content_type = f->type;
    return 1;
}

/* The decoded request through the gate, then routed (unless pre holds an answer already: a
 * bad query string), then written to the audit trail when it may change state and passed
 * authentication (403s included: who tried what is worth keeping; 401s and 429s are only
 * logged, so that neither an anonymous flood nor a throttled one can fill the store). */
static int handle_raw(struct hub *h, struct call *c, const char *method, struct args *a, int pre_rc,
                      struct rest_response *pre, const char *body, size_t body_len, int64_t now_ms,
                      struct rest_response *resp)
{
    size_t plen;
    memset(resp, 0, sizeof(*resp));
    char *path = pct_decode(c->raw_path, c->raw_len, &plen);
    if (!path) {
        free(pre->body);
        out_of_memory(resp);
        return -ENOMEM;
    }
    if (serve_console(method, path, plen, resp)) {
        free(pre->body);
        free(path);
        return 0;
    }
    int rc = 0;
    hub_lock(h);
    struct store *st = hub_store(h);
    if (c->auth && auth_check(c->auth, st, c->authorization, method, path, plen, now_ms, &c->v)) {
        free(pre->body);
        refusal(resp, &c->v);
    } else if (pre_rc < 0) {
        *resp = *pre;
        rc = pre_rc;
    } else {
        rc = route(h, c->auth ? c->v.who : NULL, method, path, plen, args_get, a, body, body_len,
                   now_ms, resp);
        resp->role = auth_role_name(c->auth ? c->v.role : AUTH_ADMIN);
    }
    if (!resp->body)
        out_of_memory(resp);
    if (c->auth && auth_changes_state(method) && (c->v.status == 0 || c->v.status == 403))
        audit(st, c, method, body, body_len, now_ms, resp);
    hub_unlock(h);
    if (c->log)
        log_outcome(c, method, path, plen, resp);
    free(path);
    return rc;
}

static int handle_url(struct hub *h, struct call *c, const char *method, const char *url,
                      size_t url_len, const char *body, size_t body_len, int64_t now_ms,
                      struct rest_response *resp)
{
    struct rest_response pre = {0};
    struct args a = {0};
    const char *q = memchr(url, '?', url_len);
    c->raw_path = url;
    c->raw_len = q ? (size_t)(q - url) : url_len;
    int pre_rc = q ? args_parse(&a, q + 1, url_len - c->raw_len - 1, &pre) : 0;
    int rc = handle_raw(h, c, method, &a, pre_rc, &pre, body, body_len, now_ms, resp);
    args_free(&a);
    return rc;
}

int rest_handle_url(struct hub *h, const char *method, const char *url, size_t url_len,
                    const char *body, size_t body_len, int64_t now_ms, struct rest_response *resp)
{
    struct call c = {0};
    return handle_url(h, &c, method, url, url_len, body, body_len, now_ms, resp);
}

int rest_handle_client(struct hub *h, struct auth *auth, const struct rest_client *client,
                       const char *method, const char *url, size_t url_len, const char *body,
                       size_t body_len, int64_t now_ms, struct rest_response *resp)
{
    struct call c = {.auth = auth,
                     .authorization = client ? client->authorization : NULL,
                     .peer = client ? client->peer : NULL,
                     .log = 1};
    return handle_url(h, &c, method, url, url_len, body, body_len, now_ms, resp);
}

/* ---- libmicrohttpd glue ------------------------------------------------------------------ */

struct rest {
    struct hub *hub;
    struct MHD_Daemon *d;
    struct auth *auth;
    char *tls_cert, *tls_key; /* PEM, kept while the daemon runs; the key wiped at stop */
    size_t tls_key_len;
    struct events *events; /* GET /events (headend/events.h); NULL when the cap is 0 */
};

struct upload {
    char *buf;
    size_t len;
    int too_big;
};

/* libmicrohttpd hands over the path and the query parameters as they came: we decode them
 * (pct_decode), so that a %00 cannot cut a C string short unseen. */
static size_t unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

struct collect {
    struct args *a;
    struct rest_response *r;
    int rc;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct collect *col = cls;
    col->rc =
        args_add(col->a, key, strlen(key), value, value ? strlen(value) : 0, value != NULL, col->r);
    return col->rc ? MHD_NO : MHD_YES;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "ip:port" of the connection's peer (IPv4: the listener binds an IPv4 address). */
static void peer_of(struct MHD_Connection *c, char *out, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char ip[INET_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ci->client_addr;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        port = ntohs(sin->sin_port);
    }
    snprintf(out, len, "%s:%u", ip, port);
}

/* ---- GET /events: Server-Sent Events (docs/operations.md, "Live events") ----------------- */

/* The stream's text comes from headend/events.c; a stream with nothing to send is suspended
 * (it holds no thread of the pool while idle) and resumed by the events thread. */
static void sse_suspend(void *conn)
{
    MHD_suspend_connection(conn);
}

static void sse_resume(void *conn)
{
    MHD_resume_connection(conn);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    ssize_t n = events_read(cls, buf, max);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

static void sse_free(void *cls)
{
    events_release(cls);
}

/* The query parameter key's value, or NULL. */
static const char *sse_arg(struct MHD_Connection *c, const char *key)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
}

/* GET /events: through the gate as every GET (viewer), then the parameters (site: the site
 * whose telemetry points to send; keepalive: seconds between keepalive comments), then the
 * cap. 1 with *ret when the stream was queued; 0 with resp filled (an error) otherwise. */
static int serve_events(struct rest *rs, struct MHD_Connection *c, struct rest_response *resp,
                        enum MHD_Result *ret)
{
    char peer[64];
    peer_of(c, peer, sizeof(peer));
    struct call call = {.auth = rs->auth,
                        .authorization =
                            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
                        .peer = peer,
                        .log = 1,
                        .raw_path = "/events",
                        .raw_len = 7};
    const char *site_s = sse_arg(c, "site"), *ka_s = sse_arg(c, "keepalive");
    size_t site_idx = SIZE_MAX;
    int refused = 0;
    hub_lock(rs->hub);
    if (auth_check(rs->auth, hub_store(rs->hub), call.authorization, "GET", "/events", 7, wall_ms(),
                   &call.v)) {
        refusal(resp, &call.v);
        refused = 1;
    } else if (site_s) {
        const struct inv_site *site = inventory_site(hub_inventory(rs->hub), site_s);
        if (site)
            site_idx = site->index;
        else
            error(resp, 404, "site", "no site '%s' in the inventory", site_s);
    }
    hub_unlock(rs->hub);
    if (refused || resp->body) {
        log_outcome(&call, "GET", "/events", 7, resp);
        return 0;
    }
    resp->role = auth_role_name(call.v.role);
    char *end = NULL;
    long ka = ka_s ? strtol(ka_s, &end, 10) : EVENTS_KEEPALIVE_S;
    if (ka_s && (!*ka_s || *end || ka < 1 || ka > 300)) {
        error(resp, 400, "keepalive", "keepalive '%s' is not a number of seconds in 1..300", ka_s);
        return 0;
    }
    if (!rs->events) {
        error(resp, 404, "path", "event streams are off (--http-max-event-streams 0)");
        return 0;
    }
    struct events_stream *es = NULL;
    int e = events_open(rs->events, site_idx,
                        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID"), (int)ka,
                        c, &es);
    if (e == -EBUSY || e == -ESHUTDOWN) {
        error(resp, 503, "path", "%s",
              e == -EBUSY ? "too many event streams open (--http-max-event-streams)"
                          : "shutting down");
        resp->retry_after_s = 5;
        log_event(LOG_WARN, "event=events_refused peer=%s reason=\"%s\"", peer,
                  e == -EBUSY ? "cap reached" : "shutting down");
        return 0;
    }
    if (e < 0) {
        out_of_memory(resp);
        return 0;
    }
    struct MHD_Response *mr =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, es, sse_free);
    if (!mr) {
        events_release(es);
        *ret = MHD_NO;
        return 1;
    }
    MHD_add_response_header(mr, "Content-Type", "text/event-stream");
    MHD_add_response_header(mr, "Cache-Control", "no-store");
    MHD_add_response_header(mr, "X-Accel-Buffering", "no"); /* a proxy must not hold events */
    MHD_add_response_header(mr, "X-Derloop-Role", resp->role);
    *ret = MHD_queue_response(c, MHD_HTTP_OK, mr);
    MHD_destroy_response(mr);
    size_t open = 0;
    uint64_t dropped = 0, last = 0;
    events_stats(rs->events, &open, &dropped, &last);
    char wb[LOG_VALUE_MAX], sb[LOG_VALUE_MAX];
    log_event(LOG_INFO, "event=events_stream peer=%s who=%s site=%s open=%zu dropped_slow=%llu",
              peer, log_escape(wb, sizeof(wb), call.v.who),
              log_escape(sb, sizeof(sb), site_s ? site_s : "-"), open, (unsigned long long)dropped);
    return 1;
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
    memset(&resp, 0, sizeof(resp));
    if (u->too_big) {
        resp.status = 413;
        resp.content_type = "application/json";
        resp.body = strdup("{\"error\":\"body larger than 64 KiB\",\"field\":\"body\"}");
        char mb[64], pb[LOG_VALUE_MAX];
        log_event(LOG_INFO, "event=http_error method=%s path=%s status=413",
                  log_escape(mb, sizeof(mb), method), log_escape(pb, sizeof(pb), url));
    } else if (!strcmp(method, "GET") && !strcmp(url, "/events")) {
        enum MHD_Result ret;
        if (serve_events(rs, c, &resp, &ret))
            return ret;
    } else {
        char peer[64];
        peer_of(c, peer, sizeof(peer));
        struct call call = {.auth = rs->auth,
                            .authorization =
                                MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
                            .peer = peer,
                            .log = 1,
                            .raw_path = url,
                            .raw_len = strlen(url)};
        struct rest_response pre;
        struct args a = {0};
        struct collect col = {&a, &pre, 0};
        memset(&pre, 0, sizeof(pre));
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &col);
        handle_raw(rs->hub, &call, method, &a, col.rc, &pre, u->buf, u->len, wall_ms(), &resp);
        args_free(&a);
    }
    size_t n = resp.body ? strlen(resp.body) : 0;
    struct MHD_Response *mr = MHD_create_response_from_buffer(n, resp.body ? resp.body : (char *)"",
                                                              MHD_RESPMEM_MUST_FREE);
    if (!mr) {
        free(resp.body);
        return MHD_NO;
    }
    MHD_add_response_header(mr, "Content-Type", resp.content_type);
    if (resp.www_authenticate)
        MHD_add_response_header(mr, "WWW-Authenticate", resp.www_authenticate);
    if (resp.retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", resp.retry_after_s);
        MHD_add_response_header(mr, "Retry-After", ra);
    }
    if (resp.no_store)
        MHD_add_response_header(mr, "Cache-Control", "no-store");
    if (resp.role)
        MHD_add_response_header(mr, "X-Derloop-Role", resp.role);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)resp.status, mr);
    MHD_destroy_response(mr);
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

/* A whole PEM file (common/pem.c): libmicrohttpd takes PEM from memory. */
static int read_pem(const char *path, const char *what, char **out, size_t *outlen, char *err,
                    size_t errlen)
{
    *out = pem_read(what, path, err, errlen);
    if (!*out)
        return -EINVAL;
    *outlen = strlen(*out);
    return 0;
}

static void free_tls(struct rest *r)
{
    free(r->tls_cert);
    if (r->tls_key)
        explicit_bzero(r->tls_key, r->tls_key_len);
    free(r->tls_key);
    r->tls_cert = r->tls_key = NULL;
}

/* What the start says about REST security: HTTPS or not, tokens or open access, --insecure. */
static void log_security(struct rest *r, const struct headend_config *cfg, const char *host,
                         int port, int loopback, int64_t now_ms)
{
    int64_t tokens = 0;
    hub_lock(r->hub);
    struct store *st = hub_store(r->hub);
    int enforced = auth_enforced(r->auth, st, now_ms);
    int counted = st->ops->token_count(st, &tokens) == 0;
    hub_unlock(r->hub);
    const char *tls = cfg->http_tls_cert[0] ? "https" : "off";
    log_event(LOG_INFO, "event=http_security http=%s:%d tls=%s auth=%s tokens=%lld insecure=%s",
              host, port, tls, enforced ? "tokens" : "open", counted ? (long long)tokens : -1LL,
              !loopback && !cfg->http_tls_cert[0] ? "yes" : "no");
    if (!enforced)
        log_event(LOG_WARN,
                  "event=auth_open http=%s:%d reason=\"no REST token in the store and no --auth: "
                  "every request from this host is served without credentials (loopback only); "
                  "der-headend token add --name NAME --role admin turns tokens on\"",
                  host, port);
    else if (counted && tokens == 0)
        log_event(LOG_WARN,
                  "event=auth_no_tokens http=%s:%d reason=\"tokens are required but the store "
                  "holds none: every request but /healthz answers 401 until der-headend token "
                  "add makes one\"",
                  host, port);
    if (!loopback && !cfg->http_tls_cert[0])
        log_event(LOG_WARN,
                  "event=insecure listener=http http=%s:%d reason=\"plain HTTP on a non-loopback "
                  "address (--insecure): tokens and requests cross the network in clear\"",
                  host, port);
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
    hub_lock(h);
    struct headend_config cfg = *hub_config(h);
    hub_unlock(h);
    int loopback = config_is_loopback(listen);
    int tls = cfg.http_tls_cert[0] != '\0';
    /* The same rule as gRPC: whoever can reach a non-loopback port could read the tokens off
     * plain HTTP, so that needs HTTPS or an explicit --insecure. */
    if (!loopback && !tls && !cfg.insecure) {
        snprintf(err, errlen,
                 "--http-listen %s is not a loopback address: give --http-tls-cert and "
                 "--http-tls-key (HTTPS), or --insecure to serve plain HTTP there",
                 listen);
        return -EPERM;
    }
    if (tls && !MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        snprintf(err, errlen, "this libmicrohttpd is built without TLS: no HTTPS");
        return -ENOTSUP;
    }
    struct rest *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->hub = h;
    /* Tokens are always asked for on a non-loopback address: open access is for a developer's
     * own machine only. */
    struct auth_config ac = {.required = cfg.auth || !loopback,
                             .post_per_min = cfg.http_post_per_min,
                             .post_burst = cfg.http_post_burst};
    int e = auth_new(&ac, &r->auth);
    size_t cert_len = 0;
    if (!e && tls)
        e = read_pem(cfg.http_tls_cert, "--http-tls-cert", &r->tls_cert, &cert_len, err, errlen);
    if (!e && tls)
        e = read_pem(cfg.http_tls_key, "--http-tls-key", &r->tls_key, &r->tls_key_len, err, errlen);
    if (e < 0) {
        if (e == -ENOMEM)
            snprintf(err, errlen, "out of memory");
        free_tls(r);
        auth_free(r->auth);
        free(r);
        return e;
    }
    /* The limits that keep /healthz answering under idle or half-sent connections (the issue
     * saw ~875 of them stop it): at most conn_limit connections (beyond it new ones wait in
     * the kernel's backlog instead of taking descriptors the gRPC side needs), at most per_ip
     * from one address (one client cannot take them all), and any connection silent for
     * timeout_s seconds closed. A pool of threads, each with its own epoll set, so that one
     * slow request (a long telemetry range) does not hold the others up. With HTTPS, the
     * certificate and key go in from memory; a plain-HTTP request on that port fails the TLS
     * handshake and gets no answer. */
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &sa},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_done, NULL},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape_none, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, cfg.http_max_connections, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg.http_max_per_ip, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, cfg.http_timeout_s, NULL},
        {MHD_OPTION_THREAD_POOL_SIZE, cfg.http_threads, NULL},
        {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, r->tls_cert},
        {tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, r->tls_key},
        {MHD_OPTION_END, 0, NULL},
    };
    /* The event streams (GET /events): suspended while idle, so the daemon allows it. */
    hub_lock(h);
    size_t n_sites = inventory_site_count(hub_inventory(h));
    hub_unlock(h);
    if (cfg.http_max_event_streams > 0 && events_new(n_sites, (size_t)cfg.http_max_event_streams,
                                                     sse_suspend, sse_resume, &r->events) < 0) {
        snprintf(err, errlen, "cannot start the event streams' thread");
        free_tls(r);
        auth_free(r->auth);
        free(r);
        return -ENOMEM;
    }
    r->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                                MHD_ALLOW_SUSPEND_RESUME | (tls ? MHD_USE_TLS : 0),
                            (uint16_t)p, NULL, NULL, on_request, r, MHD_OPTION_ARRAY, opts,
                            MHD_OPTION_END);
    if (!r->d) {
        snprintf(err, errlen,
                 tls ? "cannot listen on %s (HTTPS: the port is taken, or the certificate and key "
                       "do not load or do not match)"
                     : "cannot listen on %s (HTTP)",
                 listen);
        events_free(r->events);
        free_tls(r);
        auth_free(r->auth);
        free(r);
        return -EADDRINUSE;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : (int)p;
    log_security(r, &cfg, host, *port, loopback, wall_ms());
    hub_lock(h);
    hub_events_attach(h, r->events);
    hub_unlock(h);
    *out = r;
    return 0;
}

void rest_stop(struct rest *r)
{
    if (!r)
        return;
    /* the hub stops publishing, every stream ends now (a shutdown never waits for a
     * client), then the daemon closes the connections and releases the streams */
    hub_lock(r->hub);
    hub_events_attach(r->hub, NULL);
    hub_unlock(r->hub);
    events_close(r->events);
    MHD_stop_daemon(r->d);
    events_free(r->events);
    free_tls(r);
    auth_free(r->auth);
    free(r);
}
