/* event: the "events" array: faults on an asset, operator dispatches, grid outages and the
 * gateway's events (configuration push, emergency stop), each
 * checked against the sites it names (by file id: an event applies to every replica). The
 * scenario owns three arrays, one per kind, each sorted by (at, position in the file). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/duration.h"
#include "sim/scenario/sections.h"

static const char *const fault_names[] = {"timeout", "exception", "frozen", "offline",
                                          "slow",    "spike",     "device"};

const char *fault_kind_name(enum fault_kind k)
{
    return (unsigned)k < 7 ? fault_names[k] : "?";
}

static const struct site_cfg *file_site(const struct scenario *s, const char *base_id)
{
    for (size_t i = 0; i < s->n_sites; i++)
        if (s->sites[i].replica == 0 && strcmp(s->sites[i].base_id, base_id) == 0)
            return &s->sites[i];
    return NULL;
}

/* The event's "site": a file site id, optional when the file has only one site. */
static int event_site(struct scn_ld *L, const cJSON *o, const char *path, int n_file_sites,
                      const char *only_site, const struct site_cfg **out)
{
    char p[SCN_PATH_MAX];
    const char *site;
    int rc;
    if ((rc = scn_get_str(L, o, path, "site", 0, &site)))
        return rc;
    if (!site) {
        if (n_file_sites != 1)
            return scn_fail(L, scn_pkey(p, path, "site"), NULL,
                            "required when the file has more than one site");
        site = only_site;
    }
    *out = file_site(L->s, site);
    if (!*out)
        return scn_fail(L, scn_pkey(p, path, "site"), scn_item(o, "site"), "no site \"%s\"", site);
    return 0;
}

/* The event's "asset": the id of an asset of site sc, copied into e->asset_id. */
static int event_asset(struct scn_ld *L, const cJSON *o, const char *path,
                       const struct site_cfg *sc, struct event *e, const struct asset_cfg **out)
{
    char p[SCN_PATH_MAX];
    int rc;
    if ((rc = scn_get_id(L, o, path, "asset", e->asset_id, sizeof e->asset_id)))
        return rc;
    for (size_t k = 0; k < sc->n_assets; k++)
        if (strcmp(sc->assets[k].id, e->asset_id) == 0) {
            *out = &sc->assets[k];
            return 0;
        }
    return scn_fail(L, scn_pkey(p, path, "asset"), scn_item(o, "asset"),
                    "no asset \"%s\" in site \"%s\"", e->asset_id, sc->base_id);
}

/* Keys that belong to one fault kind only: present with another kind is an error. */
static int only_for(struct scn_ld *L, const cJSON *o, const char *path, const char *key,
                    enum fault_kind want, enum fault_kind got)
{
    char p[SCN_PATH_MAX];
    if (got != want && scn_item(o, key))
        return scn_fail(L, scn_pkey(p, path, key), scn_item(o, key),
                        "only valid with \"fault\": \"%s\"", fault_names[want]);
    return 0;
}

/* {"at", "type": "dispatch", "site", "asset" (absent = the site), "power_w" | "mw", "ttl"}:
 * the TTL is whole seconds because the headend's REST API takes ttl_s. */
static int parse_dispatch(struct scn_ld *L, const cJSON *o, const char *path, struct event *e,
                          int n_file_sites, const char *only_site)
{
    static const char *const keys[] = {"at", "type", "site", "asset", "power_w", "mw", "ttl", NULL};
    char p[SCN_PATH_MAX];
    const struct site_cfg *sc;
    int rc;
    if ((rc = scn_check_keys(L, o, path, keys, NULL)))
        return rc;
    e->type = EVENT_DISPATCH;
    if ((rc = event_site(L, o, path, n_file_sites, only_site, &sc)))
        return rc;
    snprintf(e->site_id, sizeof e->site_id, "%s", sc->base_id);
    if (scn_item(o, "asset")) {
        const struct asset_cfg *a;
        if ((rc = event_asset(L, o, path, sc, e, &a)))
            return rc;
        if (a->type == ASSET_METER || a->type == ASSET_LOAD)
            return scn_fail(L, scn_pkey(p, path, "asset"), scn_item(o, "asset"),
                            "a %s cannot be dispatched", asset_type_name(a->type));
    }
    if (!!scn_item(o, "power_w") == !!scn_item(o, "mw"))
        return scn_fail(L, scn_pkey(p, path, "power_w"), NULL,
                        "exactly one of power_w or mw is required");
    if (scn_item(o, "mw")) {
        if ((rc = scn_get_num(L, o, path, "mw", 0, 0, 0, B_REQ, &e->power_w)))
            return rc;
        e->power_w *= 1e6;
    } else if ((rc = scn_get_num(L, o, path, "power_w", 0, 0, 0, B_REQ, &e->power_w))) {
        return rc;
    }
    if ((rc = scn_get_dur(L, o, path, "ttl", 900000, 1000, B_MIN, &e->ttl_ms)))
        return rc;
    if (e->ttl_ms % 1000)
        return scn_fail(L, scn_pkey(p, path, "ttl"), scn_item(o, "ttl"), "must be whole seconds");
    return 0;
}

/* {"at", "type": "grid_outage", "site" (absent = the only site), "duration"}: the site's grid
 * connection fails at `at` for `duration` (>= step; it may run past the end of the run) and every
 * replica of the site islands. A whole-site event: naming an asset is an error. */
static int parse_outage(struct scn_ld *L, const cJSON *o, const char *path, struct event *e,
                        int n_file_sites, const char *only_site)
{
    static const char *const keys[] = {"at", "type", "site", "duration", NULL};
    char p[SCN_PATH_MAX];
    const struct site_cfg *sc;
    int rc;
    if (scn_item(o, "asset"))
        return scn_fail(L, scn_pkey(p, path, "asset"), scn_item(o, "asset"),
                        "a grid_outage islands the whole site: name the site, not an asset");
    /* At least one step, so that some step starts inside it (site.c samples at step starts). */
    if ((rc = scn_check_keys(L, o, path, keys, NULL)) ||
        (rc = scn_get_dur(L, o, path, "duration", 0, L->s->step_ms, B_REQ | B_MIN,
                          &e->duration_ms)) ||
        (rc = event_site(L, o, path, n_file_sites, only_site, &sc)))
        return rc;
    e->type = EVENT_GRID_OUTAGE;
    snprintf(e->site_id, sizeof e->site_id, "%s", sc->base_id);
    return 0;
}

/* {"at", "type": "headend_outage" | "headend_freeze", "duration"}: the headend in the loop (the
 * top-level "headend" object) is gone, or stopped, for `duration` (at least one step). It is
 * the one headend of every site: naming a site or an asset is an error. */
static int parse_headend_event(struct scn_ld *L, const cJSON *o, const char *path, const char *type,
                               struct event *e)
{
    static const char *const keys[] = {"at", "type", "duration", NULL};
    char p[SCN_PATH_MAX];
    int rc;
    if ((rc = scn_check_keys(L, o, path, keys, NULL)))
        return rc;
    if (!scn_item(L->s->root, "headend"))
        return scn_fail(L, scn_pkey(p, path, "type"), scn_item(o, "type"),
                        "needs the headend in the loop (a top-level \"headend\": {})");
    if ((rc =
             scn_get_dur(L, o, path, "duration", 0, L->s->step_ms, B_REQ | B_MIN, &e->duration_ms)))
        return rc;
    e->type = strcmp(type, "headend_outage") == 0 ? EVENT_HEADEND_OUTAGE : EVENT_HEADEND_FREEZE;
    return 0;
}

/* The headend is gone or stopped, one span at a time: overlapping spans are a mistake in the
 * file. The events are sorted by start; the later one of an overlapping pair is named. */
static int check_headend_spans(struct scn_ld *L)
{
    const struct scenario *s = L->s;
    int64_t busy_until = -1;
    int busy_seq = -1;
    for (size_t k = 0; k < s->n_dispatches; k++) {
        const struct event *e = &s->dispatches[k];
        if (!event_is_headend(e->type))
            continue;
        if (e->at_ms < busy_until) {
            char path[SCN_PATH_MAX], p[SCN_PATH_MAX];
            scn_pidx(path, "events", e->seq);
            cJSON *at = cJSON_GetArrayItem(scn_item(s->root, "events"), e->seq);
            return scn_fail(L, scn_pkey(p, path, "at"), scn_item(at, "at"),
                            "overlaps the headend outage or freeze of events[%d]", busy_seq);
        }
        busy_until = e->at_ms + e->duration_ms;
        busy_seq = e->seq;
    }
    return 0;
}

/* {"at", "type": "config", "site", "gateway": {...}}: the desired configuration (strategy,
 * params, constraints, safety, schedules; docs/gateway-config.md) pushed into the site's gateway
 * at `at`, as the headend would. Its contents are the gateway's to judge: the runner checks
 * them with the gateway's own code before the run starts (sim/run/headend_loop.c).
 * {"at", "type": "estop", "site", "reason"} and {"at", "type": "estop_release", "site"}: the
 * site's emergency stop. Whole-site events: naming an asset is an error. */
static int parse_gateway_event(struct scn_ld *L, const cJSON *o, const char *path, const char *type,
                               struct event *e, int n_file_sites, const char *only_site)
{
    static const char *const config_keys[] = {"at", "type", "site", "gateway", NULL};
    static const char *const estop_keys[] = {"at", "type", "site", "reason", NULL};
    static const char *const release_keys[] = {"at", "type", "site", NULL};
    char p[SCN_PATH_MAX];
    const struct site_cfg *sc;
    const char *reason = NULL;
    int rc;
    e->type = !strcmp(type, "config")  ? EVENT_CONFIG
              : !strcmp(type, "estop") ? EVENT_ESTOP
                                       : EVENT_ESTOP_RELEASE;
    if (scn_item(o, "asset"))
        return scn_fail(L, scn_pkey(p, path, "asset"), scn_item(o, "asset"),
                        "a %s event is for the whole site's gateway: name the site, not an asset",
                        type);
    if ((rc = scn_check_keys(L, o, path,
                             e->type == EVENT_CONFIG  ? config_keys
                             : e->type == EVENT_ESTOP ? estop_keys
                                                      : release_keys,
                             NULL)) ||
        (rc = event_site(L, o, path, n_file_sites, only_site, &sc)))
        return rc;
    snprintf(e->site_id, sizeof e->site_id, "%s", sc->base_id);
    if (e->type == EVENT_CONFIG) {
        e->config = scn_item(o, "gateway");
        if (!cJSON_IsObject(e->config))
            return scn_fail(L, scn_pkey(p, path, "gateway"), e->config,
                            "required: the desired configuration, an object {\"strategy\", ...}");
    }
    if (e->type == EVENT_ESTOP) {
        if ((rc = scn_get_str(L, o, path, "reason", 0, &reason)))
            return rc;
        if (reason && strlen(reason) >= sizeof e->reason)
            return scn_fail(L, scn_pkey(p, path, "reason"), scn_item(o, "reason"),
                            "must be shorter than %zu characters", sizeof e->reason);
        snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "scenario");
    }
    return 0;
}

/* {"at", "type": "command", "site", "asset", "command", "value", "ttl"}: a per-asset command
 * (docs/operations.md, "Commands") given to the site's gateway at `at`, as the headend would send
 * it. The names and whether each takes a value are the headend's (headend/commands.c); whether
 * the device can do it is the gateway driver's to say (a refusal is a line in events.log, not a
 * load error: it is what a regression of a refusal looks like). */
static int parse_command(struct scn_ld *L, const cJSON *o, const char *path, struct event *e,
                         int n_file_sites, const char *only_site)
{
    static const char *const keys[] = {"at",      "type",  "site", "asset",
                                       "command", "value", "ttl",  NULL};
    static const struct {
        const char *name;
        int value;
    } names[] = {{"start", 0},  {"stop", 0},      {"reset", 0},          {"set_output", 1},
                 {"charge", 1}, {"discharge", 1}, {"set_temperature", 1}};
    char p[SCN_PATH_MAX];
    const struct site_cfg *sc;
    const struct asset_cfg *a;
    const char *name;
    int rc;
    if ((rc = scn_check_keys(L, o, path, keys, NULL)))
        return rc;
    e->type = EVENT_COMMAND;
    if ((rc = event_site(L, o, path, n_file_sites, only_site, &sc)))
        return rc;
    snprintf(e->site_id, sizeof e->site_id, "%s", sc->base_id);
    if ((rc = event_asset(L, o, path, sc, e, &a)) ||
        (rc = scn_get_str(L, o, path, "command", 1, &name)))
        return rc;
    int takes = -1;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (!strcmp(name, names[k].name))
            takes = names[k].value;
    if (takes < 0)
        return scn_fail(L, scn_pkey(p, path, "command"), scn_item(o, "command"),
                        "must be one of start, stop, reset, set_output, charge, discharge, "
                        "set_temperature");
    snprintf(e->command, sizeof e->command, "%s", name);
    e->value = NAN;
    if (!takes && scn_item(o, "value"))
        return scn_fail(L, scn_pkey(p, path, "value"), scn_item(o, "value"),
                        "\"%s\" takes no value", name);
    if (takes && (rc = scn_get_num(L, o, path, "value", 0, 0, 0, B_REQ, &e->value)))
        return rc;
    if ((rc = scn_get_dur(L, o, path, "ttl", 300000, 1000, B_MIN, &e->ttl_ms)))
        return rc;
    if (e->ttl_ms % 1000)
        return scn_fail(L, scn_pkey(p, path, "ttl"), scn_item(o, "ttl"), "must be whole seconds");
    return 0;
}

static int parse_event(struct scn_ld *L, const cJSON *o, int i, struct event *e, int n_file_sites,
                       const char *only_site)
{
    static const char *const keys[] = {"at",   "duration", "type",  "site",  "asset", "fault",
                                       "code", "delay",    "point", "value", NULL};
    struct scenario *s = L->s;
    char path[SCN_PATH_MAX], p[SCN_PATH_MAX];
    const char *type, *fault, *point;
    int rc;
    scn_pidx(path, "events", i);
    e->seq = i;
    if ((rc = scn_need_object(L, o, path)) ||
        (rc = scn_get_dur(L, o, path, "at", 0, 0, B_REQ, &e->at_ms)) ||
        (rc = scn_get_str(L, o, path, "type", 1, &type)))
        return rc;
    if (e->at_ms >= s->duration_ms)
        return scn_fail(L, scn_pkey(p, path, "at"), scn_item(o, "at"),
                        "must be before the end of the run");
    if (strcmp(type, "dispatch") == 0)
        return parse_dispatch(L, o, path, e, n_file_sites, only_site);
    if (strcmp(type, "grid_outage") == 0)
        return parse_outage(L, o, path, e, n_file_sites, only_site);
    if (strcmp(type, "headend_outage") == 0 || strcmp(type, "headend_freeze") == 0)
        return parse_headend_event(L, o, path, type, e);
    if (!strcmp(type, "config") || !strcmp(type, "estop") || !strcmp(type, "estop_release"))
        return parse_gateway_event(L, o, path, type, e, n_file_sites, only_site);
    if (!strcmp(type, "command"))
        return parse_command(L, o, path, e, n_file_sites, only_site);
    if (strcmp(type, "fault") != 0)
        return scn_fail(L, scn_pkey(p, path, "type"), scn_item(o, "type"),
                        "must be \"fault\", \"dispatch\", \"grid_outage\", \"config\", "
                        "\"estop\", \"estop_release\", \"command\", \"headend_outage\" or "
                        "\"headend_freeze\"");
    if ((rc = scn_check_keys(L, o, path, keys, NULL)) ||
        (rc = scn_get_dur(L, o, path, "duration", 0, 0, 0, &e->duration_ms)))
        return rc;
    e->type = EVENT_FAULT;
    const struct site_cfg *sc;
    if ((rc = event_site(L, o, path, n_file_sites, only_site, &sc)))
        return rc;
    snprintf(e->site_id, sizeof e->site_id, "%s", sc->base_id);
    const struct asset_cfg *a;
    if ((rc = event_asset(L, o, path, sc, e, &a)) ||
        (rc = scn_get_str(L, o, path, "fault", 1, &fault)))
        return rc;
    int kind = -1;
    for (int k = 0; k < 7; k++)
        if (strcmp(fault_names[k], fault) == 0)
            kind = k;
    if (kind < 0)
        return scn_fail(L, scn_pkey(p, path, "fault"), scn_item(o, "fault"),
                        "must be one of timeout, exception, frozen, offline, slow, spike, device");
    e->fault = (enum fault_kind)kind;
    if ((rc = only_for(L, o, path, "code", FAULT_EXCEPTION, e->fault)) ||
        (rc = only_for(L, o, path, "delay", FAULT_SLOW, e->fault)) ||
        (rc = only_for(L, o, path, "point", FAULT_SPIKE, e->fault)) ||
        (rc = only_for(L, o, path, "value", FAULT_SPIKE, e->fault)))
        return rc;
    double code;
    switch (e->fault) {
    case FAULT_EXCEPTION:
        if ((rc = scn_get_num(L, o, path, "code", 0, 1, 11, B_REQ | B_INT | B_MIN | B_MAX, &code)))
            return rc;
        e->code = (int)code;
        break;
    case FAULT_SLOW:
        return scn_get_dur(L, o, path, "delay", 0, 0, B_REQ | B_MIN | B_MINX, &e->delay_ms);
    case FAULT_SPIKE:
        if ((rc = scn_get_str(L, o, path, "point", 0, &point)) ||
            (rc = scn_get_num(L, o, path, "value", 0, 0, 0, B_REQ, &e->value)))
            return rc;
        if (point && strlen(point) >= sizeof e->point)
            return scn_fail(L, scn_pkey(p, path, "point"), scn_item(o, "point"),
                            "must be shorter than %zu characters", sizeof e->point);
        snprintf(e->point, sizeof e->point, "%s", point ? point : "");
        break;
    case FAULT_DEVICE:
        if (a->type == ASSET_METER || a->type == ASSET_LOAD)
            return scn_fail(
                L, scn_pkey(p, path, "fault"), scn_item(o, "fault"),
                "\"device\" faults apply to battery, pv, evse and boiler, not %s \"%s\"",
                asset_type_name(a->type), a->id);
        break;
    default:
        break;
    }
    return 0;
}

static int event_cmp(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    if (x->at_ms != y->at_ms)
        return (x->at_ms > y->at_ms) - (x->at_ms < y->at_ms);
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* One site cannot lose its grid twice at once: overlapping outages are a mistake in the file,
 * not a merge (as for cloud events). Outages are sorted by start, so the later one of an
 * overlapping pair is named, with the earlier one's span. */
static int check_outages(struct scn_ld *L)
{
    const struct scenario *s = L->s;
    for (size_t k = 1; k < s->n_outages; k++) {
        const struct event *e = &s->outages[k];
        for (size_t j = 0; j < k; j++) {
            const struct event *o = &s->outages[j];
            if (strcmp(o->site_id, e->site_id) != 0 || e->at_ms >= o->at_ms + o->duration_ms)
                continue;
            char path[SCN_PATH_MAX], p[SCN_PATH_MAX], from[32], to[32];
            scn_pidx(path, "events", e->seq);
            cJSON *at = cJSON_GetArrayItem(scn_item(s->root, "events"), e->seq);
            return scn_fail(L, scn_pkey(p, path, "at"), scn_item(at, "at"),
                            "overlaps the grid outage of site \"%s\" at events[%d] (%s to %s)",
                            e->site_id, o->seq, duration_format(o->at_ms, from, sizeof from),
                            duration_format(o->at_ms + o->duration_ms, to, sizeof to));
        }
    }
    return 0;
}

int scn_parse_events(struct scn_ld *L, const cJSON *arr, const cJSON *sites)
{
    struct scenario *s = L->s;
    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr))
        return scn_fail(L, "events", arr, "must be an array");
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n == 0)
        return 0;
    s->events = calloc(n, sizeof *s->events);
    s->dispatches = calloc(n, sizeof *s->dispatches);
    s->outages = calloc(n, sizeof *s->outages);
    if (!s->events || !s->dispatches || !s->outages)
        return -ENOMEM;
    int n_file_sites = cJSON_GetArraySize(sites), i = 0, rc;
    const char *only = s->sites[0].base_id;
    for (const cJSON *o = arr->child; o; o = o->next, i++) {
        struct event e;
        memset(&e, 0, sizeof e);
        if ((rc = parse_event(L, o, i, &e, n_file_sites, only)))
            return rc;
        /* Dispatches, configurations and stops go to the gateway, not to the devices:
         * site.c never sees them; nor the headend's own events, which the headend loop plays
         * with them. */
        if (e.type == EVENT_DISPATCH || e.type == EVENT_CONFIG || e.type == EVENT_ESTOP ||
            e.type == EVENT_ESTOP_RELEASE || e.type == EVENT_COMMAND || event_is_headend(e.type))
            s->dispatches[s->n_dispatches++] = e;
        else if (e.type == EVENT_GRID_OUTAGE)
            s->outages[s->n_outages++] = e;
        else
            s->events[s->n_events++] = e;
    }
    /* (at, seq) is a total order, so qsort is as good as a stable sort here. */
    qsort(s->events, s->n_events, sizeof *s->events, event_cmp);
    qsort(s->dispatches, s->n_dispatches, sizeof *s->dispatches, event_cmp);
    qsort(s->outages, s->n_outages, sizeof *s->outages, event_cmp);
    if ((rc = check_outages(L)))
        return rc;
    return check_headend_spans(L);
}
