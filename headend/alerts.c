/* alerts: see alerts.h.
 *
 * The active list is small (one entry per condition that holds) and searched linearly by
 * (rule, subject); the history is a ring of cleared alerts. Notification happens inside the
 * call that changed the alert, after the state is updated, so a webhook body always shows the
 * alert as it now is. */
#include "headend/alerts.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const rule_names[ALERT_RULES] = {
    "gateway_offline", "gateway_stale", "asset_fault",   "soc_low",
    "dispatch_failed", "telemetry_lag", "modbus_errors",
};

const char *alert_rule_name(int rule)
{
    return rule >= 0 && rule < ALERT_RULES ? rule_names[rule] : NULL;
}

int alert_rule_parse(const char *name)
{
    for (int r = 0; r < ALERT_RULES; r++)
        if (name && !strcmp(name, rule_names[r]))
            return r;
    return -EINVAL;
}

/* ---- the predicates ----------------------------------------------------------------------- */

int alert_offline_holds(const struct alert_limits *l, int connected, int64_t last_seen_ms,
                        int64_t now_ms, double *value)
{
    *value = (double)(now_ms - last_seen_ms);
    /* a site never seen (last_seen 0) is not watched: an inventory lists sites before their
     * gateways are installed */
    return l->offline_after_ms > 0 && !connected && last_seen_ms > 0 &&
           now_ms - last_seen_ms >= l->offline_after_ms;
}

int alert_stale_holds(const struct alert_limits *l, int connected, int64_t last_seen_ms,
                      int64_t now_ms, double *value)
{
    *value = (double)(now_ms - last_seen_ms);
    return l->stale_after_ms > 0 && connected && now_ms - last_seen_ms >= l->stale_after_ms;
}

int alert_fault_holds(const struct alert_limits *l, const char *op_state, const char *status,
                      const char *device_state)
{
    if (!l->fault)
        return 0;
    /* the state machine's own word wins: a status text is free and may say "fault" of a
     * fault that has been reset (or of none) */
    if (op_state && op_state[0])
        return !strcmp(op_state, "FAULT");
    if (device_state && (!strcmp(device_state, "FAULT") || !strcmp(device_state, "F")))
        return 1;
    if (!status)
        return 0;
    for (const char *p = status; *p; p++)
        if (!strncasecmp(p, "fault", 5))
            return 1;
    return 0;
}

int alert_soc_holds(const struct alert_limits *l, double soc, int active)
{
    if (!(l->soc_reserve > 0) || !isfinite(soc))
        return 0;
    return soc < l->soc_reserve + (active ? ALERT_SOC_HYSTERESIS : 0.0);
}

int alert_lag_holds(const struct alert_limits *l, int connected, double lag_ms)
{
    return l->lag_max_ms > 0 && connected && isfinite(lag_ms) && lag_ms >= (double)l->lag_max_ms;
}

/* ---- the Modbus error rate ----------------------------------------------------------------- */

/* Drops checkpoints that left the window (but keeps the newest one as a base while nothing
 * newer came: a gateway that stopped sending keeps its last rate until it clears). */
static void rate_trim(struct alert_rate *r, int64_t window_ms, int64_t now_ms)
{
    while (r->n > 1 && r->pt[r->head].t_ms < now_ms - window_ms) {
        r->head = (r->head + 1) % ALERT_RATE_POINTS;
        r->n--;
    }
}

void alert_rate_push(struct alert_rate *r, int64_t window_ms, uint64_t requests, uint64_t errors,
                     int64_t now_ms)
{
    if (r->has_cur && (requests < r->cur_requests || errors < r->cur_errors))
        memset(r, 0, sizeof(*r)); /* the gateway restarted: its counters began again */
    r->cur_ms = now_ms;
    r->cur_requests = requests;
    r->cur_errors = errors;
    r->has_cur = 1;
    int64_t every = window_ms / (ALERT_RATE_POINTS - 1);
    size_t last = (r->head + r->n - 1) % ALERT_RATE_POINTS;
    if (r->n == 0 || now_ms - r->pt[last].t_ms >= every) {
        if (r->n == ALERT_RATE_POINTS) {
            r->head = (r->head + 1) % ALERT_RATE_POINTS;
            r->n--;
        }
        size_t k = (r->head + r->n++) % ALERT_RATE_POINTS;
        r->pt[k].t_ms = now_ms;
        r->pt[k].requests = requests;
        r->pt[k].errors = errors;
    }
    rate_trim(r, window_ms, now_ms);
}

int alert_modbus_holds(const struct alert_limits *l, const struct alert_rate *r, int64_t now_ms,
                       double *pct, uint64_t *calls, uint64_t *errors)
{
    *pct = NAN;
    *calls = *errors = 0;
    if (!(l->modbus_error_pct > 0) || l->modbus_window_ms <= 0 || !r->has_cur || r->n == 0)
        return 0;
    /* the oldest checkpoint inside the window at now (time passes without samples too) */
    size_t i = 0;
    while (i + 1 < r->n &&
           r->pt[(r->head + i) % ALERT_RATE_POINTS].t_ms < now_ms - l->modbus_window_ms)
        i++;
    size_t k = (r->head + i) % ALERT_RATE_POINTS;
    *calls = r->cur_requests - r->pt[k].requests;
    *errors = r->cur_errors - r->pt[k].errors;
    if (*calls == 0 || *calls < (uint64_t)(l->modbus_min_requests > 0 ? l->modbus_min_requests : 1))
        return 0;
    *pct = 100.0 * (double)*errors / (double)*calls;
    return *pct >= l->modbus_error_pct;
}

/* ---- the state ---------------------------------------------------------------------------- */

struct alerts {
    struct alert *active;
    size_t n_active, cap_active;
    struct alert *hist; /* ring */
    size_t hist_cap, hist_head, hist_n;
    uint64_t next_id;
    uint64_t raised[ALERT_RULES];
    alert_notify_fn notify;
    void *ctx;
    alert_id_fn ids;
    void *ids_ctx;
};

void alerts_set_ids(struct alerts *a, alert_id_fn fn, void *ctx)
{
    a->ids = fn;
    a->ids_ctx = ctx;
}

struct alerts *alerts_new(size_t history_max, alert_notify_fn notify, void *ctx)
{
    struct alerts *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->hist_cap = history_max ? history_max : 1;
    a->hist = calloc(a->hist_cap, sizeof(*a->hist));
    if (!a->hist) {
        free(a);
        return NULL;
    }
    a->notify = notify;
    a->ctx = ctx;
    return a;
}

void alerts_free(struct alerts *a)
{
    if (!a)
        return;
    free(a->active);
    free(a->hist);
    free(a);
}

static struct alert *find(const struct alerts *a, int rule, const char *subject)
{
    for (size_t i = 0; i < a->n_active; i++)
        if (a->active[i].rule == rule && !strcmp(a->active[i].subject, subject))
            return &a->active[i];
    return NULL;
}

const struct alert *alerts_find(const struct alerts *a, int rule, const char *subject)
{
    return find(a, rule, subject);
}

static void notify(struct alerts *a, const struct alert *al, const char *change)
{
    if (a->notify)
        a->notify(a->ctx, al, change);
}

static int raise_one(struct alerts *a, int rule, const char *site_id, const char *subject,
                     double value, const char *detail, int64_t now_ms)
{
    if (a->n_active == a->cap_active) {
        size_t cap = a->cap_active ? a->cap_active * 2 : 16;
        struct alert *n = realloc(a->active, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        a->active = n;
        a->cap_active = cap;
    }
    struct alert *al = &a->active[a->n_active++];
    memset(al, 0, sizeof(*al));
    uint64_t id = 0;
    if (a->ids && a->ids(a->ids_ctx, &id) == 0 && id > a->next_id)
        a->next_id = id;
    else
        ++a->next_id;
    al->id = a->next_id;
    al->rule = rule;
    snprintf(al->site_id, sizeof(al->site_id), "%s", site_id ? site_id : "");
    snprintf(al->subject, sizeof(al->subject), "%s", subject);
    al->active = 1;
    al->raised_ms = now_ms;
    al->value = value;
    snprintf(al->detail, sizeof(al->detail), "%s", detail ? detail : "");
    a->raised[rule]++;
    notify(a, al, "raised");
    return 1;
}

static void hist_push(struct alerts *a, const struct alert *al)
{
    if (a->hist_n == a->hist_cap) {
        a->hist_head = (a->hist_head + 1) % a->hist_cap;
        a->hist_n--;
    }
    a->hist[(a->hist_head + a->hist_n) % a->hist_cap] = *al;
    a->hist_n++;
}

/* Moves an active alert to the history (order of the active list kept: oldest first). */
static void clear_one(struct alerts *a, struct alert *al, int64_t now_ms)
{
    al->active = 0;
    al->cleared_ms = now_ms;
    struct alert copy = *al;
    size_t i = (size_t)(al - a->active);
    memmove(&a->active[i], &a->active[i + 1], (a->n_active - i - 1) * sizeof(*al));
    a->n_active--;
    hist_push(a, &copy);
    notify(a, &copy, "cleared");
}

int alerts_restore(struct alerts *a, const struct alert *al)
{
    if (al->id > a->next_id)
        a->next_id = al->id;
    if (!al->active) {
        hist_push(a, al);
        return 0;
    }
    if (find(a, al->rule, al->subject))
        return 0;
    if (a->n_active == a->cap_active) {
        size_t cap = a->cap_active ? a->cap_active * 2 : 16;
        struct alert *n = realloc(a->active, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        a->active = n;
        a->cap_active = cap;
    }
    a->active[a->n_active++] = *al;
    return 0;
}

int alerts_observe(struct alerts *a, int rule, const char *site_id, const char *subject, int holds,
                   double value, const char *detail, int64_t now_ms)
{
    struct alert *al = find(a, rule, subject);
    if (holds && !al)
        return raise_one(a, rule, site_id, subject, value, detail, now_ms);
    if (!holds && al) {
        clear_one(a, al, now_ms);
        return -1;
    }
    if (al) {
        al->value = value;
        snprintf(al->detail, sizeof(al->detail), "%s", detail ? detail : "");
    }
    return 0;
}

int alerts_event(struct alerts *a, int rule, const char *site_id, const char *subject, double value,
                 const char *detail, int64_t now_ms)
{
    if (find(a, rule, subject))
        return 0;
    return raise_one(a, rule, site_id, subject, value, detail, now_ms);
}

int alerts_ack(struct alerts *a, uint64_t id, const char *who, int64_t now_ms)
{
    struct alert *al = NULL;
    for (size_t i = 0; i < a->n_active && !al; i++)
        if (a->active[i].id == id)
            al = &a->active[i];
    for (size_t i = 0; i < a->hist_n && !al; i++)
        if (a->hist[(a->hist_head + i) % a->hist_cap].id == id)
            al = &a->hist[(a->hist_head + i) % a->hist_cap];
    if (!al)
        return -ENOENT;
    if (al->acked_ms)
        return -EALREADY;
    al->acked_ms = now_ms;
    snprintf(al->acked_by, sizeof(al->acked_by), "%s", who && who[0] ? who : "-");
    notify(a, al, "acked");
    if (al->active && al->rule == ALERT_DISPATCH_FAILED)
        clear_one(a, al, now_ms); /* an event holds until someone has seen it */
    return 0;
}

size_t alerts_count(const struct alerts *a)
{
    return a->n_active + a->hist_n;
}

const struct alert *alerts_at(const struct alerts *a, size_t i)
{
    if (i < a->n_active)
        return &a->active[i];
    i -= a->n_active;
    if (i >= a->hist_n)
        return NULL;
    return &a->hist[(a->hist_head + a->hist_n - 1 - i) % a->hist_cap]; /* newest first */
}

size_t alerts_active(const struct alerts *a, int rule)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n_active; i++)
        n += a->active[i].rule == rule;
    return n;
}

uint64_t alerts_raised(const struct alerts *a, int rule)
{
    return rule >= 0 && rule < ALERT_RULES ? a->raised[rule] : 0;
}

static void add_ms(cJSON *o, const char *k, int64_t v)
{
    if (v)
        cJSON_AddNumberToObject(o, k, (double)v);
    else
        cJSON_AddNullToObject(o, k);
}

static int64_t get_ms(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static void get_str(const cJSON *o, const char *k, char *dst, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    snprintf(dst, len, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

int alert_from_json(const cJSON *o, struct alert *out)
{
    memset(out, 0, sizeof(*out));
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(o, "rule");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(o, "state");
    if (!cJSON_IsNumber(id) || id->valuedouble < 1 || !cJSON_IsString(rule) ||
        !cJSON_IsString(state) || (out->rule = alert_rule_parse(rule->valuestring)) < 0)
        return -EINVAL;
    out->id = (uint64_t)id->valuedouble;
    out->active = !strcmp(state->valuestring, "active");
    get_str(o, "site_id", out->site_id, sizeof(out->site_id));
    get_str(o, "subject", out->subject, sizeof(out->subject));
    get_str(o, "acked_by", out->acked_by, sizeof(out->acked_by));
    get_str(o, "detail", out->detail, sizeof(out->detail));
    out->raised_ms = get_ms(o, "raised_ms");
    out->cleared_ms = get_ms(o, "cleared_ms");
    out->acked_ms = get_ms(o, "acked_ms");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value");
    out->value = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    return 0;
}

cJSON *alert_json(const struct alert *a)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "id", (double)a->id);
    cJSON_AddStringToObject(o, "rule", alert_rule_name(a->rule));
    cJSON_AddStringToObject(o, "site_id", a->site_id);
    cJSON_AddStringToObject(o, "subject", a->subject);
    cJSON_AddStringToObject(o, "state", a->active ? "active" : "cleared");
    add_ms(o, "raised_ms", a->raised_ms);
    add_ms(o, "cleared_ms", a->cleared_ms);
    add_ms(o, "acked_ms", a->acked_ms);
    if (a->acked_ms)
        cJSON_AddStringToObject(o, "acked_by", a->acked_by);
    else
        cJSON_AddNullToObject(o, "acked_by");
    if (isfinite(a->value))
        cJSON_AddNumberToObject(o, "value", a->value);
    else
        cJSON_AddNullToObject(o, "value");
    cJSON_AddStringToObject(o, "detail", a->detail);
    return o;
}

size_t alerts_clear_unknown(struct alerts *a,
                            int (*known)(void *ctx, int rule, const char *subject), void *ctx,
                            int64_t now_ms)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n_active;) {
        struct alert *al = &a->active[i];
        if (al->rule != ALERT_DISPATCH_FAILED && !known(ctx, al->rule, al->subject)) {
            clear_one(a, al, now_ms); /* moves the next one into slot i */
            n++;
        } else {
            i++;
        }
    }
    return n;
}
