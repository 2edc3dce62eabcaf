/* hub: the protocol as docs/protocol.md states it. A stream must open with Register; the
 * inventory decides which claimed assets it gets; a newer session for the same site replaces
 * the older one; Telemetry and Setpoint without asset_id mean the session's primary asset;
 * dispatches are stored first and sent when a stream serves their target, then replayed in
 * creation order after a reconnect until an ack moves them on or their TTL ends them.
 * Telemetry is buffered and written in one transaction per flush (telemetry-flush-ms).
 *
 * Delivery (docs/protocol.md): a gateway that asks for TelemetryAck gets, after each commit
 * that holds its rows, the highest AgentMessage seq whose telemetry is now durable. Nothing
 * is acknowledged before the commit, so a headend killed with rows in its buffer loses
 * nothing: the gateway still has them and replays them; the store's (asset, seq) key turns
 * the replay into no duplicate. A stream with many unacknowledged rows (a replay) flushes
 * at once instead of waiting for the timer, so its window keeps moving. */
#include "headend/hub.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>

#include "common/log.h"
#include "gateway/control/confsync.h"
#include "headend/commands.h"
#include "headend/events.h"
#include "headend/ident.h"
#include "headend/webhook.h"

#define PRUNE_EVERY_MS          10000
#define EXPIRE_EVERY_MS         200
#define FLUSH_MAX_ROWS          20000
#define LOG_REJECTS_PER_SESSION 5
#define ACK_EAGER_ROWS          256  /* a session with this many unacknowledged rows flushes */
#define REGISTER_MAX_CLAIMS     4096 /* assets one Register may claim */
#define PING_CHECK_MS           1000 /* how often the periodic Pings are looked at */
#define RTT_EWMA_WEIGHT         0.25 /* of the newest round trip in the moving average */

struct hub {
    pthread_mutex_t lock;
    struct headend_config cfg;
    struct inventory *inv;
    struct store *st;
    struct registry *reg;
    struct asset_state *assets;
    struct site_state *sites;
    struct hub_counters c;
    size_t streams;
    struct store_telemetry *batch;
    size_t n_batch, cap_batch;
    struct session **ackq; /* sessions with telemetry awaiting its TelemetryAck */
    size_t n_ackq, cap_ackq;
    int flush_now;
    int64_t last_flush_ms, last_prune_ms, last_expire_ms;
    int64_t last_ping_ms, last_alert_ms;
    uint64_t next_nonce;
    struct alert_limits limits;
    struct alerts *alerts;
    struct webhook *webhook; /* NULL without --alert-webhook */
    struct commands *cmds;   /* per-asset commands and their acks (headend/commands.h) */
    /* several headends (hub.h): the others' sites, the dispatches to announce, the wake-up */
    struct site_remote *remote;
    char (*announce)[STORE_ID_MAX];
    size_t n_announce, cap_announce;
    unsigned char *notes;          /* per site: HUB_NOTE_* to announce (hub_cluster_take_notes) */
    size_t n_notes;                /* sites with a note */
    unsigned char *estop_unshared; /* per site: our stop's row could not be written (retried) */
    /* per site: the version last pushed and on which session (push_config sends a version
     * once per session: a notification and a sweep of the cluster may both ask) */
    struct {
        int64_t session, version;
    } * pushed;
    hub_wake_fn wake;
    void *wake_ctx;
    struct events *events; /* the REST event streams (headend/events.h); NULL = none */
    int alerts_checked;    /* the restored alerts' subjects checked (eval_alerts) */
};

static const char *nz(const char *s)
{
    return s && s[0] ? s : "-";
}

/* An alert as it now is, into the store (alerts survive a restart: alerts.h). */
static void store_alert(struct hub *h, const struct alert *a)
{
    cJSON *o = alert_json(a);
    char *txt = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!txt || h->st->ops->alert_put(h->st, (int64_t)a->id, a->active, a->raised_ms, txt) < 0)
        h->c.store_errors++;
    cJSON_free(txt);
}

/* New alert ids from the store's counter (alerts_set_ids): shared by the headends of one
 * PostgreSQL database (schema version 10 seeds it above the ids stored before). */
static int next_alert_id(void *ctx, uint64_t *id)
{
    struct hub *h = ctx;
    int64_t v = 0;
    int e = h->st->ops->next_counter(h->st, "alert", &v);
    if (e < 0 || v <= 0)
        return e < 0 ? e : -ERANGE;
    *id = (uint64_t)v;
    return 0;
}

static int restore_alert(const char *json, void *ctx)
{
    struct hub *h = ctx;
    cJSON *o = cJSON_Parse(json);
    struct alert a;
    if (o && alert_from_json(o, &a) == 0)
        alerts_restore(h->alerts, &a);
    cJSON_Delete(o);
    return 0;
}

/* Every alert change: a log line, the store, and the webhook's body {"change", "alert"}. */
static void on_alert(void *ctx, const struct alert *a, const char *change)
{
    struct hub *h = ctx;
    store_alert(h, a);
    char db[LOG_VALUE_MAX];
    log_event(!strcmp(change, "raised") ? LOG_WARN : LOG_INFO,
              "event=alert_%s id=%llu rule=%s site=%s subject=%s detail=%s", change,
              (unsigned long long)a->id, alert_rule_name(a->rule), nz(a->site_id), a->subject,
              log_escape(db, sizeof(db), a->detail));
    if (!h->webhook)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "change", change);
    cJSON_AddItemToObject(o, "alert", alert_json(a));
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (body)
        webhook_post(h->webhook, body);
    cJSON_free(body);
}

/* ---- the fleet view's per-site state (headend/sites.h reads it) -------------------------- */

static int grid_named(const char *id)
{
    size_t n = strlen(id);
    return !strcmp(id, "grid") ||
           (n > 5 && !strcmp(id + n - 4, "grid") && (id[n - 5] == '/' || id[n - 5] == '-'));
}

/* The meter whose power is the site's grid exchange: the inventory has no meter roles, so
 * the one named grid wins, else the site's first meter. */
static size_t find_grid_meter(const struct inventory *inv, const struct inv_site *site)
{
    size_t first = SIZE_MAX;
    for (size_t k = 0; k < site->n_assets; k++) {
        const struct inv_asset *a = inventory_asset_at(inv, site->assets[k]);
        if (a->type != 3)
            continue;
        if (grid_named(a->id))
            return a->index;
        if (first == SIZE_MAX)
            first = a->index;
    }
    return first;
}

static void add_or_nan(double *sum, double v)
{
    if (isfinite(v))
        *sum = isnan(*sum) ? v : *sum + v;
}

/* The site's aggregate from its assets' latest samples: a handful of assets per site, so a
 * recomputation per sample costs less than keeping running sums right across replays. */
static void site_recompute(struct hub *h, size_t site_idx)
{
    const struct inv_site *site = inventory_site_at(h->inv, site_idx);
    struct site_state *ss = &h->sites[site_idx];
    struct site_agg g = {NAN, NAN, NAN, NAN, NAN, NAN, 0};
    double soc_sum = 0;
    int n_soc = 0;
    for (size_t k = 0; k < site->n_assets; k++) {
        const struct inv_asset *a = inventory_asset_at(h->inv, site->assets[k]);
        const struct asset_state *st = &h->assets[a->index];
        if (!st->has_latest)
            continue;
        double p = st->latest.power_w;
        if (st->latest.received_ms > g.updated_ms)
            g.updated_ms = st->latest.received_ms;
        switch (a->type) {
        case 1:
            add_or_nan(&g.battery_w, p);
            if (isfinite(st->latest.soc)) {
                soc_sum += st->latest.soc;
                n_soc++;
            }
            break;
        case 2:
            add_or_nan(&g.pv_w, p);
            break;
        case 3:
            if (a->index == ss->grid_asset)
                g.grid_w = p;
            break;
        case 4:
            add_or_nan(&g.ev_w, p);
            break;
        case 5:
            add_or_nan(&g.boiler_w, p);
            break;
        }
    }
    g.soc_mean = n_soc ? soc_sum / n_soc : NAN;
    ss->agg = g;
}

static struct site_dispatch *recent_find(struct hub *h, const char *site_id, const char *id)
{
    const struct inv_site *site = inventory_site(h->inv, site_id);
    if (!site)
        return NULL;
    struct site_state *ss = &h->sites[site->index];
    for (size_t i = 0; i < ss->n_recent; i++)
        if (!strcmp(ss->recent[i].id, id))
            return &ss->recent[i];
    return NULL;
}

/* A dispatch's new state for the event streams (the console's SENT -> RECEIVED -> APPLIED). */
static void publish_dispatch(struct hub *h, const char *site_id, const char *id,
                             const char *asset_id, int state)
{
    if (!h->events)
        return;
    const struct inv_site *site = inventory_site(h->inv, site_id);
    char b[EVENTS_DATA_MAX];
    snprintf(b, sizeof(b),
             "{\"setpoint_id\":\"%s\",\"site_id\":\"%s\",\"asset_id\":\"%s\",\"state\":\"%s\"}", id,
             site_id, asset_id ? asset_id : "", dispatch_state_name(state));
    events_publish(h->events, "dispatch", site ? site->index : SIZE_MAX, b);
}

static void recent_state(struct hub *h, const char *site_id, const char *id, int state)
{
    struct site_dispatch *r = recent_find(h, site_id, id);
    if (r)
        r->state = state;
    publish_dispatch(h, site_id, id, r ? r->asset_id : NULL, state);
}

/* Newest last; the oldest leaves when the ring is full. */
static void recent_add(struct hub *h, const struct store_dispatch *d)
{
    const struct inv_site *site = inventory_site(h->inv, d->site_id);
    if (!site)
        return;
    struct site_state *ss = &h->sites[site->index];
    if (ss->n_recent == HUB_RECENT)
        memmove(&ss->recent[0], &ss->recent[1], (HUB_RECENT - 1) * sizeof(ss->recent[0]));
    else
        ss->n_recent++;
    struct site_dispatch *r = &ss->recent[ss->n_recent - 1];
    snprintf(r->id, sizeof(r->id), "%s", d->id);
    snprintf(r->asset_id, sizeof(r->asset_id), "%s", d->asset_id);
    r->power_w = d->power_w;
    r->state = d->state;
    r->created_ms = d->created_ms;
    r->expires_ms = d->expires_ms;
}

static int restore_recent(const struct store_dispatch *d, void *ctx)
{
    recent_add(ctx, d);
    return 0;
}

static int restore_site(const struct store_session *rec, void *ctx)
{
    struct site_state *ss = ctx;
    snprintf(ss->gateway_id, sizeof(ss->gateway_id), "%s", rec->gateway_id);
    snprintf(ss->peer, sizeof(ss->peer), "%s", rec->peer);
    ss->last_seen_ms = rec->ended_ms ? rec->ended_ms : rec->started_ms;
    return 1;
}

/* A command still waiting at the last stop: back in the table, so that it expires here (its
 * session is gone: a late ack from the gateway's new session is not taken). */
static int restore_command(const char *json, void *ctx)
{
    struct hub *h = ctx;
    cJSON *o = cJSON_Parse(json);
    struct command_rec rec;
    if (o && command_rec_from_json(o, &rec) == 0)
        commands_restore(h->cmds, &rec);
    cJSON_Delete(o);
    return 0;
}

/* The operating and device states of a restored latest sample (its details, details_json),
 * so that the alerts judge a restarted headend's assets as the last samples left them. */
static void restore_states(struct asset_state *a)
{
    cJSON *d = a->latest.details[0] ? cJSON_Parse(a->latest.details) : NULL;
    const cJSON *op = cJSON_GetObjectItem(d, "op_state"), *ds = cJSON_GetObjectItem(d, "state");
    if (cJSON_IsString(op))
        snprintf(a->op_state, sizeof a->op_state, "%s", op->valuestring);
    if (cJSON_IsString(ds))
        snprintf(a->device_state, sizeof a->device_state, "%s", ds->valuestring);
    cJSON_Delete(d);
}

int hub_new(const struct headend_config *cfg, struct inventory *inv, struct store *st,
            int64_t now_ms, struct hub **out)
{
    *out = NULL;
    struct hub *h = calloc(1, sizeof(*h));
    if (!h) {
        inventory_free(inv);
        store_close(st);
        return -ENOMEM;
    }
    h->cfg = *cfg;
    h->inv = inv;
    h->st = st;
    pthread_mutex_init(&h->lock, NULL);
    size_t ns = inventory_site_count(inv), na = inventory_asset_count(inv);
    h->reg = registry_new(ns, na);
    h->assets = calloc(na + 1, sizeof(*h->assets));
    h->sites = calloc(ns + 1, sizeof(*h->sites));
    h->cmds = commands_new();
    h->remote = calloc(ns + 1, sizeof(*h->remote));
    h->notes = calloc(ns + 1, 1);
    h->pushed = calloc(ns + 1, sizeof(*h->pushed));
    h->estop_unshared = calloc(ns + 1, 1);
    if (!h->reg || !h->assets || !h->sites || !h->cmds || !h->remote || !h->notes || !h->pushed ||
        !h->estop_unshared) {
        hub_free(h);
        return -ENOMEM;
    }
    h->last_flush_ms = h->last_prune_ms = h->last_expire_ms = now_ms;
    h->last_ping_ms = h->last_alert_ms = now_ms;
    h->limits = (struct alert_limits){
        .offline_after_ms = (int64_t)cfg->alert_offline_after_s * 1000,
        .stale_after_ms = (int64_t)cfg->alert_stale_after_s * 1000,
        .lag_max_ms = cfg->alert_lag_max_ms,
        .soc_reserve = cfg->alert_soc_reserve_pct / 100.0,
        .fault = cfg->alert_fault,
        .dispatch = cfg->alert_dispatch,
        .modbus_error_pct = cfg->alert_modbus_error_pct,
        .modbus_window_ms = (int64_t)cfg->alert_modbus_window_s * 1000,
        .modbus_min_requests = cfg->alert_modbus_min_requests,
    };
    h->alerts = alerts_new((size_t)cfg->alert_history, on_alert, h);
    char werr[256];
    if (!h->alerts || (cfg->alert_webhook[0] &&
                       webhook_new(cfg->alert_webhook, cfg->alert_webhook_timeout_ms,
                                   cfg->alert_webhook_retries, &h->webhook, werr, sizeof(werr)))) {
        if (h->alerts)
            log_event(LOG_ERROR, "event=webhook_error reason=\"%s\"", werr);
        hub_free(h);
        return -ENOMEM;
    }
    if (st->ops->set_node) { /* a shared database: only this headend's sessions are ours */
        st->ops->set_node(st, cfg->node_id);
        alerts_set_ids(h->alerts, next_alert_id, h); /* and alert ids from its counter */
    }
    /* the stored alerts (active, acknowledged, history) and the commands still waiting */
    st->ops->alert_list(st, cfg->alert_history, restore_alert, h);
    st->ops->command_range(st, NULL, 0, 0, restore_command, h);
    st->ops->sessions_close_open(st, now_ms, "headend restarted");
    /* Each site's last session, so that /agents and the offline alert know a gateway that
     * was there before the restart (one indexed query per site). */
    for (size_t i = 0; i < ns; i++) {
        const struct inv_site *site = inventory_site_at(inv, i);
        st->ops->sessions_recent(st, site->id, 1, restore_site, &h->sites[i]);
        h->sites[i].grid_asset = find_grid_meter(inv, site);
        st->ops->dispatch_pending(st, site->id, now_ms, restore_recent, h);
    }
    /* Restore what the store knows, so /telemetry and /agents survive a restart. */
    for (size_t i = 0; i < na; i++) {
        struct asset_state *a = &h->assets[i];
        if (st->ops->telemetry_latest(st, inventory_asset_at(inv, i)->id, &a->latest) == 0) {
            a->has_latest = 1;
            a->lag_ms = (double)a->latest.received_ms - (double)a->latest.ts_ms;
            restore_states(a);
        }
    }
    for (size_t i = 0; i < ns; i++)
        site_recompute(h, i);
    *out = h;
    return 0;
}

void hub_free(struct hub *h)
{
    if (!h)
        return;
    if (h->st)
        hub_flush(h);
    webhook_free(h->webhook);
    alerts_free(h->alerts);
    commands_free(h->cmds);
    registry_free(h->reg);
    free(h->assets);
    free(h->sites);
    free(h->batch);
    free(h->ackq);
    free(h->remote);
    free(h->notes);
    free(h->pushed);
    free(h->estop_unshared);
    free(h->announce);
    inventory_free(h->inv);
    store_close(h->st);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void hub_lock(struct hub *h)
{
    pthread_mutex_lock(&h->lock);
}

void hub_unlock(struct hub *h)
{
    pthread_mutex_unlock(&h->lock);
}

int hub_stream_open(struct hub *h, const char *peer, const struct session_link_ops *ops, void *link,
                    int64_t now_ms, struct session **out)
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    snprintf(s->peer, sizeof(s->peer), "%s", peer ? peer : "");
    s->ops = ops;
    s->link = link;
    s->started_ms = s->last_seen_ms = now_ms;
    s->site = SIZE_MAX;
    s->ack_idx = SIZE_MAX;
    h->streams++;
    h->c.streams_opened++;
    *out = s;
    return 0;
}

#define CERT_URI_PREFIX "urn:derloop:gateway:"

/* An id as it may appear in a log line or a store row: the same bytes a Register could
 * carry, minus what would make a key=value line ambiguous. */
static int id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= INV_ID_MAX)
        return 0;
    for (const char *p = id; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '"' || *p == '\\')
            return 0;
    return 1;
}

int hub_identity_from_cert(const char *const *uris, size_t n_uris, const char *cn, char *out,
                           size_t outlen, char *why, size_t whylen)
{
    const char *found = NULL;
    size_t plen = strlen(CERT_URI_PREFIX);
    for (size_t i = 0; i < n_uris; i++) {
        if (strncmp(uris[i], CERT_URI_PREFIX, plen) != 0)
            continue;
        const char *id = uris[i] + plen;
        if (found && strcmp(found, id) != 0) {
            snprintf(why, whylen, "certificate names two gateways (%.40s, %.40s)", found, id);
            return -EPERM;
        }
        found = id;
    }
    const char *src = "SAN URI";
    if (!found && cn && cn[0]) {
        found = cn;
        src = "CN";
    }
    if (!found) {
        snprintf(why, whylen,
                 "certificate names no gateway (no SAN URI " CERT_URI_PREFIX "ID, no CN)");
        return -EPERM;
    }
    if (!id_ok(found) || strlen(found) >= outlen) {
        snprintf(why, whylen, "certificate %s is not a gateway id (1..%d printable characters)",
                 src, INV_ID_MAX - 1);
        return -EPERM;
    }
    snprintf(out, outlen, "%s", found);
    return 0;
}

void hub_stream_authenticate(struct hub *h, struct session *s, const char *identity,
                             const char *problem)
{
    (void)h;
    s->cert_auth = 1;
    snprintf(s->cert_identity, sizeof(s->cert_identity), "%s", identity ? identity : "");
    snprintf(s->cert_problem, sizeof(s->cert_problem), "%s",
             problem && problem[0] ? problem : "certificate names no gateway");
}

static int send_msg(struct session *s, Der__V1__HeadendMessage *m)
{
    m->seq = ++s->out_seq;
    return s->ops->send(s->link, m);
}

/* Ends a session's registration: routes, store record, log line. The stream itself is
 * closed by the caller or the transport. */
static void end_session(struct hub *h, struct session *s, const char *reason, int64_t now_ms)
{
    if (s->ended)
        return;
    s->ended = 1;
    if (!s->registered)
        return;
    registry_detach(h->reg, s);
    struct site_state *ss = &h->sites[s->site];
    ss->last_seen_ms = s->last_seen_ms;
    if (s->id && h->st->ops->session_end(h->st, s->id, now_ms, reason) < 0)
        h->c.store_errors++;
    if (h->wake) /* the others learn the site is no longer held here */
        h->wake(h->wake_ctx);
    log_event(LOG_INFO,
              "event=disconnect gateway=%s site=%s peer=%s session=%lld seq_gaps=%llu "
              "reason=\"%s\"",
              s->gateway_id, s->site_id, s->peer, (long long)s->id, (unsigned long long)s->seq_gaps,
              reason);
}

/* The ack list: sessions whose telemetry waits for the next commit. O(1) in and out, so a
 * closing stream leaves it without a scan. */
static int ackq_add(struct hub *h, struct session *s, uint64_t seq)
{
    s->ack_due_seq = seq;
    s->unacked_rows++;
    if (s->ack_idx != SIZE_MAX)
        return 0;
    if (h->n_ackq == h->cap_ackq) {
        size_t cap = h->cap_ackq ? h->cap_ackq * 2 : 64;
        struct session **q = realloc(h->ackq, cap * sizeof(*q));
        if (!q)
            return -ENOMEM; /* no ack this time: the gateway replays, the key dedupes */
        h->ackq = q;
        h->cap_ackq = cap;
    }
    s->ack_idx = h->n_ackq;
    h->ackq[h->n_ackq++] = s;
    return 0;
}

static void ackq_remove(struct hub *h, struct session *s)
{
    size_t i = s->ack_idx;
    if (i == SIZE_MAX)
        return;
    h->ackq[i] = h->ackq[--h->n_ackq];
    h->ackq[i]->ack_idx = i;
    s->ack_idx = SIZE_MAX;
    s->ack_due_seq = 0;
    s->unacked_rows = 0;
}

void hub_stream_closed(struct hub *h, struct session *s, const char *reason, int64_t now_ms)
{
    ackq_remove(h, s);
    if (!s->registered && !s->ended)
        log_event(LOG_INFO,
                  "event=disconnect gateway=- site=- peer=%s reason=\"%s\" "
                  "registered=no",
                  s->peer, reason);
    end_session(h, s, reason, now_ms);
    h->streams--;
    h->c.streams_closed++;
    free(s->assets);
    free(s);
}

static int send_setpoint(struct hub *h, struct session *s, const struct store_dispatch *d,
                         int64_t now_ms)
{
    Der__V1__Setpoint sp = DER__V1__SETPOINT__INIT;
    sp.setpoint_id = (char *)d->id;
    sp.power_w = d->power_w;
    sp.expires_ms = d->expires_ms;
    if (d->asset_id[0]) {
        sp.target_case = DER__V1__SETPOINT__TARGET_ASSET_ID;
        sp.asset_id = (char *)d->asset_id;
    } else {
        sp.target_case = DER__V1__SETPOINT__TARGET_SITE_ID;
        sp.site_id = (char *)d->site_id;
    }
    Der__V1__HeadendMessage m = DER__V1__HEADEND_MESSAGE__INIT;
    m.body_case = DER__V1__HEADEND_MESSAGE__BODY_SETPOINT;
    m.setpoint = &sp;
    int rc = send_msg(s, &m);
    if (rc < 0)
        return rc;
    if (h->st->ops->dispatch_set_state(h->st, d->id, DISPATCH_SENT, "", now_ms, s->id) < 0)
        h->c.store_errors++;
    recent_state(h, d->site_id, d->id, DISPATCH_SENT);
    h->c.dispatch_sent++;
    log_event(LOG_INFO,
              "event=dispatch_sent setpoint=%s site=%s asset=%s gateway=%s power_w=%.1f "
              "expires_ms=%lld",
              d->id, d->site_id, nz(d->asset_id), s->gateway_id, d->power_w,
              (long long)d->expires_ms);
    return 0;
}

struct replay {
    struct hub *h;
    struct session *s;
    int64_t now_ms;
    int sent;
    int queued_only; /* a cluster rescan: SENT ones went out on a stream already */
};

static int replay_one(const struct store_dispatch *d, void *arg)
{
    struct replay *r = arg;
    if (r->queued_only && d->state != DISPATCH_QUEUED)
        return 0;
    if (!recent_find(r->h, d->site_id, d->id)) /* posted on another headend */
        recent_add(r->h, d);
    if (d->asset_id[0]) {
        const struct inv_asset *a = inventory_asset(r->h->inv, d->asset_id);
        if (!a || !session_serves(r->s, a->index))
            return 0; /* stays queued until a session claims that asset */
    }
    if (send_setpoint(r->h, r->s, d, r->now_ms) == 0)
        r->sent++;
    return 0;
}

static void add_rejected(Der__V1__RegisterResult *rr, Der__V1__RegisterResult__Rejected *rej,
                         char (*reasons)[256], const char *asset_id, const char *reason)
{
    size_t i = rr->n_rejected++;
    der__v1__register_result__rejected__init(&rej[i]);
    snprintf(reasons[i], 256, "%s", reason);
    rej[i].asset_id = (char *)asset_id;
    rej[i].reason = reasons[i];
    rr->rejected[i] = &rej[i];
}

static void set_reported(struct site_state *ss, int64_t version, const char *status,
                         const char *detail, int64_t now_ms)
{
    ss->has_reported = 1;
    ss->reported_version = version;
    snprintf(ss->reported_status, sizeof(ss->reported_status), "%s", status);
    snprintf(ss->reported_detail, sizeof(ss->reported_detail), "%s", detail);
    ss->reported_ms = now_ms;
}

/* Sends the site's desired configuration to s when s takes pushes and runs another version.
 * The gateway answers with a ConfigReport; until then the reported version stays the old one.
 * 1 sent, 0 not. */
static int push_config(struct hub *h, struct session *s, int64_t now_ms)
{
    (void)now_ms;
    if (!s->config_push)
        return 0;
    static struct store_config c; /* 16 KB; the hub's lock serialises every caller */
    int e = h->st->ops->config_get(h->st, s->site_id, &c);
    if (e == -ENOENT || (e == 0 && (uint64_t)c.version == s->config_version))
        return 0;
    if (e < 0) {
        h->c.store_errors++;
        return 0;
    }
    if (s->id && h->pushed[s->site].session == s->id && h->pushed[s->site].version == c.version)
        return 0; /* on its way (or refused): the gateway answers each push once */
    Der__V1__ConfigPush cp = DER__V1__CONFIG_PUSH__INIT;
    cp.version = (uint64_t)c.version;
    cp.json = c.json;
    Der__V1__HeadendMessage m = DER__V1__HEADEND_MESSAGE__INIT;
    m.body_case = DER__V1__HEADEND_MESSAGE__BODY_CONFIG_PUSH;
    m.config_push = &cp;
    if (send_msg(s, &m) == 0) {
        h->pushed[s->site].session = s->id;
        h->pushed[s->site].version = c.version;
        h->c.config_pushes++;
        log_event(LOG_INFO, "event=config_push gateway=%s site=%s version=%lld running=%llu",
                  s->gateway_id, s->site_id, (long long)c.version,
                  (unsigned long long)s->config_version);
        return 1;
    }
    return 0;
}

static void send_ping(struct hub *h, struct session *s, int64_t now_ms)
{
    Der__V1__Ping p = DER__V1__PING__INIT;
    p.nonce = ++h->next_nonce;
    p.sent_ms = now_ms;
    Der__V1__HeadendMessage m = DER__V1__HEADEND_MESSAGE__INIT;
    m.body_case = DER__V1__HEADEND_MESSAGE__BODY_PING;
    m.ping = &p;
    s->ping_due_ms = now_ms + h->cfg.ping_interval_ms;
    if (send_msg(s, &m) == 0) {
        s->ping_nonce = p.nonce;
        s->ping_sent_ms = now_ms;
        h->c.pings_sent++;
    }
}

/* Only the Pong of the last Ping counts: an older one would measure a longer round trip. */
static void on_pong(struct hub *h, struct session *s, const Der__V1__Pong *p, int64_t now_ms)
{
    if (!s->ping_nonce || p->nonce != s->ping_nonce) {
        h->c.pongs_unmatched++;
        return;
    }
    struct site_state *ss = &h->sites[s->site];
    double rtt = (double)(now_ms - s->ping_sent_ms);
    ss->rtt_ewma_ms =
        ss->has_rtt ? ss->rtt_ewma_ms + RTT_EWMA_WEIGHT * (rtt - ss->rtt_ewma_ms) : rtt;
    ss->rtt_last_ms = rtt;
    ss->rtt_at_ms = now_ms;
    ss->has_rtt = 1;
    s->ping_nonce = 0;
    h->c.pongs++;
    log_event(LOG_DEBUG, "event=pong gateway=%s site=%s rtt_ms=%.0f ewma_ms=%.1f", s->gateway_id,
              s->site_id, rtt, ss->rtt_ewma_ms);
}

static void on_config_report(struct hub *h, struct session *s, const Der__V1__ConfigReport *r,
                             int64_t now_ms)
{
    int applied = r->status == DER__V1__CONFIG_REPORT__STATUS__APPLIED;
    struct site_state *ss = &h->sites[s->site];
    if (applied) {
        s->config_version = r->version;
        h->c.config_applied++;
    } else {
        h->c.config_rejected++;
    }
    /* a refusal keeps the version that runs; the status and detail say what was refused */
    set_reported(ss, applied ? (int64_t)r->version : ss->reported_version,
                 applied ? "APPLIED" : "REJECTED", r->detail, now_ms);
    char db[LOG_VALUE_MAX];
    log_event(applied ? LOG_INFO : LOG_WARN,
              "event=config_report gateway=%s site=%s version=%llu status=%s detail=%s",
              s->gateway_id, s->site_id, (unsigned long long)r->version,
              applied ? "APPLIED" : "REJECTED", log_escape(db, sizeof(db), r->detail));
    if (h->wake) /* the others show the reported version: our presence row, now */
        h->wake(h->wake_ctx);
}

/* ---- the emergency stop ---------------------------------------------------------------- */

/* The site's stop as the headend holds it, on s (when its gateway takes EmergencyStop). */
static int send_estop(struct hub *h, struct session *s)
{
    struct site_state *ss = &h->sites[s->site];
    if (!ss->estop_capable)
        return 0;
    Der__V1__EmergencyStop es = DER__V1__EMERGENCY_STOP__INIT;
    es.active = ss->estop_active;
    es.id = ss->estop_id;
    es.reason = ss->estop_reason;
    Der__V1__HeadendMessage m = DER__V1__HEADEND_MESSAGE__INIT;
    m.body_case = DER__V1__HEADEND_MESSAGE__BODY_EMERGENCY_STOP;
    m.emergency_stop = &es;
    if (send_msg(s, &m) != 0)
        return 0;
    log_event(LOG_WARN, "event=estop_sent gateway=%s site=%s active=%s id=%s", s->gateway_id,
              s->site_id, ss->estop_active ? "yes" : "no", ss->estop_id);
    return 1;
}

/* For the cluster thread to announce (hub_cluster_take_notes). */
static void note(struct hub *h, size_t site_idx, unsigned kind)
{
    if (!h->wake)
        return;
    if (!h->notes[site_idx])
        h->n_notes++;
    h->notes[site_idx] |= (unsigned char)kind;
    h->wake(h->wake_ctx);
}

/* Several headends: the stop in the shared row, so that the headend holding the site's stream
 * sends it and every headend shows it (hub_cluster_estop on the others). 0, or -EIO when the
 * store refused the row: it is written again at the cluster's next sweep, and until then the
 * row (older than our stop) is not adopted here. */
static int estop_share(struct hub *h, size_t site_idx, const char *site_id)
{
    if (!h->st->ops->estop_put)
        return 0;
    const struct site_state *ss = &h->sites[site_idx];
    struct store_estop row = {.active = ss->estop_active,
                              .since_ms = ss->estop_since_ms,
                              .updated_ms = ss->estop_since_ms};
    snprintf(row.site_id, sizeof(row.site_id), "%s", site_id);
    snprintf(row.id, sizeof(row.id), "%s", ss->estop_id);
    snprintf(row.reason, sizeof(row.reason), "%s", ss->estop_reason);
    snprintf(row.by, sizeof(row.by), "%s", ss->estop_by);
    if (h->st->ops->estop_put(h->st, &row) < 0) {
        h->c.store_errors++;
        if (!h->estop_unshared[site_idx]) /* once per failure, not per retry */
            log_event(LOG_ERROR,
                      "event=estop_share_failed site=%s id=%s reason=\"the store refused the row: "
                      "the other headends do not see this stop until it is written (retried "
                      "every sweep)\"",
                      site_id, ss->estop_id);
        h->estop_unshared[site_idx] = 1;
        return -EIO;
    }
    if (h->estop_unshared[site_idx])
        log_event(LOG_INFO, "event=estop_shared site=%s id=%s reason=\"written after a failure\"",
                  site_id, ss->estop_id);
    h->estop_unshared[site_idx] = 0;
    note(h, site_idx, HUB_NOTE_ESTOP);
    return 0;
}

/* At Register: what the gateway holds, then the operators' stop again while it is active;
 * a stop the gateway holds that this headend never saw (it was restarted) is adopted, so
 * that an operator can see and release it; one released here while the gateway was away is
 * released there. */
static void estop_at_register(struct hub *h, struct session *s, const Der__V1__Register *r,
                              int64_t now_ms)
{
    struct site_state *ss = &h->sites[s->site];
    ss->estop_capable = r->estop;
    if (!r->estop)
        return;
    ss->estop_has_reported = 1;
    ss->estop_reported_active = r->estop_active;
    ss->estop_reported_ms = now_ms;
    if (r->estop_active && !ss->estop_known) {
        ss->estop_known = ss->estop_active = 1;
        snprintf(ss->estop_reason, sizeof(ss->estop_reason),
                 "held by the gateway at its Register (engaged before this headend started)");
        snprintf(ss->estop_by, sizeof(ss->estop_by), "gateway");
        ss->estop_since_ms = now_ms;
        log_event(LOG_WARN, "event=estop site=%s state=engaged source=gateway_register gateway=%s",
                  s->site_id, s->gateway_id);
        estop_share(h, s->site, s->site_id); /* the other headends show it held too */
        return;
    }
    if (ss->estop_active || r->estop_active)
        send_estop(h, s);
}

static void on_estop_report(struct hub *h, struct session *s, const Der__V1__EstopReport *r,
                            int64_t now_ms)
{
    struct site_state *ss = &h->sites[s->site];
    ss->estop_has_reported = 1;
    ss->estop_reported_active = r->active;
    snprintf(ss->estop_reported_id, sizeof(ss->estop_reported_id), "%s", r->id);
    ss->estop_reported_ms = now_ms;
    char ib[LOG_VALUE_MAX];
    log_event(LOG_WARN, "event=estop_report gateway=%s site=%s active=%s id=%s", s->gateway_id,
              s->site_id, r->active ? "yes" : "no", log_escape(ib, sizeof(ib), r->id));
    if (h->wake) /* the others show what the gateway holds: our presence row, now */
        h->wake(h->wake_ctx);
}

int hub_estop(struct hub *h, size_t site_idx, int active, const char *reason, const char *who,
              int64_t now_ms, int *sent)
{
    const struct inv_site *site = inventory_site_at(h->inv, site_idx);
    *sent = 0;
    if (!site)
        return -ENOENT;
    struct site_state *ss = &h->sites[site_idx];
    ss->estop_known = 1;
    if (active) {
        /* a new id per engagement; a repeated POST while active keeps the stop's id */
        if (!ss->estop_active) {
            snprintf(ss->estop_id, sizeof(ss->estop_id), "estop-%lld", (long long)now_ms);
            ss->estop_since_ms = now_ms;
        }
        snprintf(ss->estop_reason, sizeof(ss->estop_reason), "%s", reason ? reason : "");
    } else {
        ss->estop_since_ms = now_ms;
    }
    ss->estop_active = active;
    snprintf(ss->estop_by, sizeof(ss->estop_by), "%s", nz(who));
    char rb[LOG_VALUE_MAX];
    log_event(LOG_WARN, "event=estop site=%s state=%s id=%s reason=%s by=%s", site->id,
              active ? "engaged" : "released", ss->estop_id,
              log_escape(rb, sizeof(rb), active ? ss->estop_reason : ""), nz(who));
    int shared = estop_share(h, site_idx, site->id);
    struct session *s = registry_site(h->reg, site_idx);
    if (s)
        *sent = send_estop(h, s);
    return shared;
}

/* Register: who the stream is and which assets it gets. The rules, in the order applied:
 * - a stream registers once; ids must pass ident_valid before anything is looked up or
 *   logged (a control character would otherwise reach the log and the store);
 * - the gateway must be one the inventory lists for the site (inventory_check_gateway), and
 *   with mutual TLS it must be the gateway the client certificate names: a Register cannot
 *   claim another identity than the one the handshake proved;
 * - a site served by a live session is taken over only by the same gateway reconnecting
 *   (its new stream replaces the old one, which is closed ABORTED); another gateway, even one
 *   the site lists as a standby, is refused until the live session ends, so two gateways never
 *   drive one site at once;
 * - each claimed asset is checked on its own (inventory_check_claim: it exists, belongs to
 *   that site); a refused claim is answered in RegisterResult.rejected with its reason and the
 *   others are still accepted, because a gateway with one misconfigured device should keep
 *   serving the rest; a Register with no accepted claim at all is PERMISSION_DENIED.
 * The RegisterResult goes out before anything else on the stream, then the dispatches that
 * wait for this site, then the desired configuration when the gateway runs another version. */
static int on_register(struct hub *h, struct session *s, const Der__V1__Register *r, int64_t now_ms,
                       int *grpc_status, char *reason, size_t reason_len)
{
    if (s->registered) {
        *grpc_status = GRPC_STATUS_FAILED_PRECONDITION;
        snprintf(reason, reason_len, "Register sent twice on one stream");
        return -EPROTO;
    }
    if (!r->gateway_id[0] || strlen(r->gateway_id) >= INV_ID_MAX ||
        strlen(r->site_id) >= INV_ID_MAX) {
        *grpc_status = GRPC_STATUS_INVALID_ARGUMENT;
        snprintf(reason, reason_len, "Register needs a gateway_id and ids under %d bytes",
                 INV_ID_MAX);
        return -EINVAL;
    }
    /* Ids are checked by the one rule (headend/ident.h) before anything is looked up or
     * logged: a control character would otherwise reach the log and the store. */
    char idwhy[96];
    const char *bad =
        ident_valid(r->gateway_id, strlen(r->gateway_id), idwhy, sizeof(idwhy)) ? "gateway_id"
        : r->site_id[0] && ident_valid(r->site_id, strlen(r->site_id), idwhy, sizeof(idwhy))
            ? "site_id"
            : NULL;
    if (bad) {
        char gb[INV_ID_MAX * 4 + 8], sb[INV_ID_MAX * 4 + 8];
        h->c.ids_refused++;
        *grpc_status = GRPC_STATUS_INVALID_ARGUMENT;
        snprintf(reason, reason_len, "Register %s %s", bad, idwhy);
        log_event(LOG_WARN, "event=register_rejected gateway=%s site=%s peer=%s reason=\"%s\"",
                  log_escape(gb, sizeof(gb), r->gateway_id), log_escape(sb, sizeof(sb), r->site_id),
                  s->peer, reason);
        return -EINVAL;
    }
    /* Legacy single-asset agents send only primary_asset_id; their site follows from it. */
    size_t n_claims = r->n_assets ? r->n_assets : (r->primary_asset_id[0] ? 1 : 0);
    /* A site has at most as many assets as the inventory lists: a Register claiming more is
     * refused whole instead of answered (and logged) claim by claim. */
    if (n_claims > REGISTER_MAX_CLAIMS) {
        *grpc_status = GRPC_STATUS_INVALID_ARGUMENT;
        snprintf(reason, reason_len, "Register claims %zu assets, at most %d", n_claims,
                 REGISTER_MAX_CLAIMS);
        return -EINVAL;
    }
    const char *site_id = r->site_id;
    if (!site_id[0] && !r->n_assets) {
        const struct inv_asset *pa = inventory_asset(h->inv, r->primary_asset_id);
        if (pa)
            site_id = inventory_site_at(h->inv, pa->site)->id;
    }
    snprintf(s->gateway_id, sizeof(s->gateway_id), "%s", r->gateway_id);
    snprintf(s->site_id, sizeof(s->site_id), "%s", site_id);
    snprintf(s->software, sizeof(s->software), "%s", r->software);

    Der__V1__RegisterResult rr = DER__V1__REGISTER_RESULT__INIT;
    size_t alloc_n = n_claims ? n_claims : 1;
    char **accepted = calloc(alloc_n, sizeof(char *));
    Der__V1__RegisterResult__Rejected *rej = calloc(alloc_n, sizeof(*rej));
    Der__V1__RegisterResult__Rejected **rejp = calloc(alloc_n, sizeof(*rejp));
    char(*reasons)[256] = calloc(alloc_n, 256);
    s->assets = calloc(alloc_n, sizeof(size_t));
    if (!accepted || !rej || !rejp || !reasons || !s->assets) {
        free(accepted);
        free(rej);
        free(rejp);
        free(reasons);
        *grpc_status = GRPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(reason, reason_len, "out of memory");
        return -ENOMEM;
    }
    rr.accepted = accepted;
    rr.rejected = rejp;
    rr.telemetry_acks = r->telemetry_acks;

    char why[256];
    int gw_rc = inventory_check_gateway(h->inv, r->gateway_id, site_id, why, sizeof(why));
    size_t n_logged = 0;
    /* With mutual TLS the certificate says who the gateway is; the Register must agree. */
    if (gw_rc == 0 && s->cert_auth && !s->cert_identity[0]) {
        gw_rc = -EPERM;
        snprintf(why, sizeof(why), "%s", s->cert_problem);
    } else if (gw_rc == 0 && s->cert_auth && strcmp(r->gateway_id, s->cert_identity) != 0) {
        gw_rc = -EPERM;
        snprintf(why, sizeof(why), "gateway_id %.63s is not the client certificate's identity %s",
                 r->gateway_id, s->cert_identity);
    }
    /* A live session is replaced only by its own gateway reconnecting: never by another
     * identity, even one the site lists (it waits until the live session ends). */
    const struct inv_site *isite = gw_rc == 0 ? inventory_site(h->inv, site_id) : NULL;
    struct session *holder = isite ? registry_site(h->reg, isite->index) : NULL;
    if (holder && holder != s && strcmp(holder->gateway_id, r->gateway_id) != 0) {
        gw_rc = -EPERM;
        snprintf(why, sizeof(why),
                 "site %s is served by gateway %s on a live session, which another gateway "
                 "cannot replace",
                 site_id, holder->gateway_id);
    }
    for (size_t i = 0; i < n_claims; i++) {
        const char *aid = r->n_assets ? r->assets[i]->asset_id : r->primary_asset_id;
        int rc = gw_rc < 0
                     ? gw_rc
                     : inventory_check_claim(h->inv, r->gateway_id, site_id, aid, why, sizeof(why));
        if (rc == 0 && ident_valid(aid, strlen(aid), idwhy, sizeof(idwhy))) {
            rc = -EINVAL;
            snprintf(why, sizeof(why), "asset_id %s", idwhy);
            h->c.ids_refused++;
        }
        const struct inv_asset *a = inventory_asset(h->inv, aid);
        if (rc == 0 && session_serves(s, a->index)) {
            rc = -EEXIST;
            snprintf(why, sizeof(why), "asset %s claimed twice", aid);
        }
        if (rc < 0) {
            add_rejected(&rr, rej, reasons, aid, why);
            /* logged for the first few claims of a Register; the rest only counted, so a
             * Register from nobody cannot flood the log (event=register_rejected sums up) */
            if (h->c.claims_rejected++, ++n_logged <= LOG_REJECTS_PER_SESSION) {
                char ab[INV_ID_MAX * 4 + 8];
                log_event(LOG_WARN,
                          "event=claim_rejected gateway=%s site=%s asset=%s peer=%s "
                          "reason=\"%s\"",
                          r->gateway_id, nz(site_id), log_escape(ab, sizeof(ab), nz(aid)), s->peer,
                          why);
            }
            continue;
        }
        s->assets[s->n_assets++] = a->index;
        rr.accepted[rr.n_accepted++] = (char *)a->id;
        h->c.claims_accepted++;
    }

    int rc = 0;
    if (s->n_assets == 0) {
        if (gw_rc == 0)
            snprintf(why, sizeof(why), "no claimed asset was accepted");
        rc = -EPERM;
        *grpc_status = GRPC_STATUS_PERMISSION_DENIED;
        snprintf(reason, reason_len, "%s", why);
        h->c.register_denied++;
        log_event(LOG_WARN,
                  "event=register_rejected gateway=%s site=%s cert_identity=%s peer=%s "
                  "claims=%zu reason=\"%s\"",
                  r->gateway_id, nz(site_id), s->cert_auth ? nz(s->cert_identity) : "-", s->peer,
                  n_claims, why);
    }
    Der__V1__HeadendMessage m = DER__V1__HEADEND_MESSAGE__INIT;
    m.body_case = DER__V1__HEADEND_MESSAGE__BODY_REGISTER_RESULT;
    m.register_result = &rr;
    send_msg(s, &m);
    free(accepted);
    free(rej);
    free(rejp);
    free(reasons);
    if (rc < 0)
        return rc;

    const struct inv_asset *pa = inventory_asset(h->inv, r->primary_asset_id);
    if (!pa || !session_serves(s, pa->index))
        pa = inventory_asset_at(h->inv, s->assets[0]);
    snprintf(s->primary_asset, sizeof(s->primary_asset), "%s", pa->id);
    s->site = inventory_site(h->inv, site_id)->index;
    s->registered = 1;
    s->tel_acks = r->telemetry_acks;
    s->decisions = r->decisions;

    struct session *old = NULL;
    registry_attach(h->reg, s, &old);
    if (old) {
        char msg[200];
        snprintf(msg, sizeof(msg), "replaced by a newer session of gateway %s from %s",
                 s->gateway_id, s->peer);
        h->c.replaced++;
        end_session(h, old, msg, now_ms);
        old->ops->close(old->link, GRPC_STATUS_ABORTED, msg);
    }
    struct store_session rec = {.started_ms = now_ms};
    snprintf(rec.gateway_id, sizeof(rec.gateway_id), "%s", s->gateway_id);
    snprintf(rec.site_id, sizeof(rec.site_id), "%s", s->site_id);
    snprintf(rec.peer, sizeof(rec.peer), "%s", s->peer);
    if (h->st->ops->session_start(h->st, &rec) < 0)
        h->c.store_errors++;
    s->id = rec.id;
    struct site_state *ss = &h->sites[s->site];
    snprintf(ss->gateway_id, sizeof(ss->gateway_id), "%s", s->gateway_id);
    snprintf(ss->peer, sizeof(ss->peer), "%s", s->peer);
    ss->last_seen_ms = now_ms;
    h->c.registrations++;
    log_event(LOG_INFO,
              "event=connect gateway=%s site=%s peer=%s session=%lld accepted=%zu rejected=%zu "
              "primary=%s replaced=%s software=\"%s\" cert_identity=%s",
              s->gateway_id, s->site_id, s->peer, (long long)s->id, s->n_assets,
              n_claims - s->n_assets, s->primary_asset, old ? "yes" : "no", s->software,
              s->cert_auth ? s->cert_identity : "-");

    if (h->wake) /* the others learn the site is held here now */
        h->wake(h->wake_ctx);
    struct replay rp = {h, s, now_ms, 0, 0};
    if (h->st->ops->dispatch_pending(h->st, s->site_id, now_ms, replay_one, &rp) < 0)
        h->c.store_errors++;
    if (rp.sent)
        log_event(LOG_INFO, "event=dispatch_replay gateway=%s site=%s count=%d", s->gateway_id,
                  s->site_id, rp.sent);

    /* The configuration it runs, and the desired one when that is another version (a gateway
     * that was offline while an operator changed it, or one restarted from an old file). */
    s->config_push = r->config_push;
    s->config_version = r->config_version;
    s->pong = r->pong;
    s->commands = r->commands;
    if (r->config_push)
        set_reported(ss, (int64_t)r->config_version, "RUNNING", "", now_ms);
    push_config(h, s, now_ms);
    estop_at_register(h, s, r, now_ms);
    /* the first round trip at the next check (within PING_CHECK_MS), so /agents soon has
     * one; then every ping-interval */
    s->ping_due_ms = now_ms;
    return 0;
}

/* One number of a details object: JSON null when not finite. */
static size_t jnum(char *b, size_t len, size_t o, const char *key, double v)
{
    if (o >= len)
        return o;
    int n = isfinite(v) ? snprintf(b + o, len - o, "%s\"%s\":%.10g", o > 1 ? "," : "", key, v)
                        : snprintf(b + o, len - o, "%s\"%s\":null", o > 1 ? "," : "", key);
    return o + (n > 0 ? (size_t)n : 0);
}

/* A state name of a details object; anything but [A-Za-z0-9_ -] becomes '?', so the JSON
 * needs no escaping whatever the gateway sent. */
static size_t jstate_key(char *b, size_t len, size_t o, const char *key, const char *v)
{
    char clean[32];
    size_t k = 0;
    for (; v && v[k] && k + 1 < sizeof clean; k++)
        clean[k] = isalnum((unsigned char)v[k]) || strchr("_ -", v[k]) ? v[k] : '?';
    clean[k] = '\0';
    if (o >= len)
        return o;
    int n = snprintf(b + o, len - o, "%s\"%s\":\"%s\"", o > 1 ? "," : "", key, clean);
    return o + (n > 0 ? (size_t)n : 0);
}

static size_t jstate(char *b, size_t len, size_t o, const char *v)
{
    return jstate_key(b, len, o, "state", v);
}

/* The type-specific details of a sample as the JSON object the store keeps ("" = none). */
static void details_json(const Der__V1__Telemetry *t, char *b, size_t len)
{
    size_t o = 1;
    b[0] = '{';
    b[1] = '\0';
    switch (t->details_case) {
    case DER__V1__TELEMETRY__DETAILS_STORAGE:
        if (!t->storage)
            break;
        o = jnum(b, len, o, "soc", t->storage->soc);
        o = jnum(b, len, o, "temperature_c", t->storage->temperature_c);
        o = jnum(b, len, o, "max_charge_w", t->storage->max_charge_w);
        o = jnum(b, len, o, "max_discharge_w", t->storage->max_discharge_w);
        break;
    case DER__V1__TELEMETRY__DETAILS_PV:
        if (!t->pv)
            break;
        o = jnum(b, len, o, "available_w", t->pv->available_w);
        o = jnum(b, len, o, "limit_w", t->pv->limit_w);
        break;
    case DER__V1__TELEMETRY__DETAILS_METER:
        if (!t->meter)
            break;
        o = jnum(b, len, o, "frequency_hz", t->meter->frequency_hz);
        o = jnum(b, len, o, "voltage_v", t->meter->voltage_v);
        o = jnum(b, len, o, "import_wh", t->meter->import_wh);
        o = jnum(b, len, o, "export_wh", t->meter->export_wh);
        break;
    case DER__V1__TELEMETRY__DETAILS_EVSE:
        if (!t->evse)
            break;
        o = jstate(b, len, o, t->evse->state);
        o = jnum(b, len, o, "current_a", t->evse->current_a);
        o = jnum(b, len, o, "session_energy_wh", t->evse->session_energy_wh);
        break;
    case DER__V1__TELEMETRY__DETAILS_BOILER:
        if (!t->boiler)
            break;
        o = jstate(b, len, o, t->boiler->state);
        o = jnum(b, len, o, "temperature_c", t->boiler->temperature_c);
        break;
    default:
        break;
    }
    /* The operating state (Telemetry.state) too: the asset-fault alert goes by it, and a
     * restarted headend reads it back from the latest sample (hub_new), so an asset still in
     * FAULT keeps its alert instead of having it cleared by the status text. */
    if (t->state && t->state[0])
        o = jstate_key(b, len, o, "op_state", t->state);
    if (o == 1) { /* nothing to keep */
        b[0] = '\0';
        return;
    }
    if (o + 2 > len) { /* cannot happen with these fields; never store a cut object */
        b[0] = '\0';
        return;
    }
    b[o] = '}';
    b[o + 1] = '\0';
}

static void publish_telemetry(struct hub *h, const struct inv_asset *a,
                              const struct asset_state *st);

static void on_telemetry(struct hub *h, struct session *s, const Der__V1__Telemetry *t,
                         int64_t now_ms)
{
    const char *aid = t->asset_id[0] ? t->asset_id : s->primary_asset;
    const struct inv_asset *a = inventory_asset(h->inv, aid);
    if (!a || registry_asset(h->reg, a->index) != s) {
        h->c.telemetry_rejected++;
        if (s->rejected_telemetry++ < LOG_REJECTS_PER_SESSION)
            log_event(LOG_WARN,
                      "event=telemetry_rejected gateway=%s site=%s asset=%s reason=\"%s\"",
                      s->gateway_id, s->site_id, nz(aid),
                      a ? "asset not served by this session" : "unknown asset");
        return;
    }
    h->c.telemetry++;
    struct asset_state *st = &h->assets[a->index];
    struct store_telemetry rec, *l = &rec;
    memset(l, 0, sizeof *l);
    snprintf(l->asset_id, sizeof(l->asset_id), "%s", a->id);
    l->ts_ms = t->ts_ms;
    l->received_ms = now_ms;
    l->seq = t->telemetry_seq;
    l->power_w = t->power_w;
    l->setpoint_w = t->setpoint_w;
    l->soc = t->details_case == DER__V1__TELEMETRY__DETAILS_STORAGE && t->storage ? t->storage->soc
                                                                                  : NAN;
    l->online = t->online;
    snprintf(l->status, sizeof(l->status), "%s", t->status);
    details_json(t, l->details, sizeof l->details);
    /* the latest is the newest sample: a spool replayed after a reconnect is history only.
     * A timestamp too far ahead (a gateway clock gone wrong, or a forged INT64_MAX) is kept
     * as received but would otherwise stay "latest" for good, so it never becomes it. */
    int future = t->ts_ms > now_ms + (int64_t)h->cfg.telemetry_future_ms;
    if (future) {
        h->c.telemetry_future++;
        if (s->future_telemetry++ < LOG_REJECTS_PER_SESSION)
            log_event(LOG_WARN,
                      "event=telemetry_future gateway=%s site=%s asset=%s ts_ms=%lld "
                      "ahead_ms=%lld reason=\"stored, not used as latest\"",
                      s->gateway_id, s->site_id, a->id, (long long)t->ts_ms,
                      (long long)(t->ts_ms - now_ms));
    } else if (!st->has_latest || l->ts_ms >= st->latest.ts_ms) {
        st->latest = rec;
        st->has_latest = 1;
        const char *ds =
            t->details_case == DER__V1__TELEMETRY__DETAILS_BOILER && t->boiler ? t->boiler->state
            : t->details_case == DER__V1__TELEMETRY__DETAILS_EVSE && t->evse   ? t->evse->state
                                                                               : "";
        snprintf(st->device_state, sizeof(st->device_state), "%s", ds);
        snprintf(st->op_state, sizeof(st->op_state), "%s", t->state);
        /* a gateway that reports no Modbus statistics sends zeros: its window never fills */
        alert_rate_push(&st->modbus, h->limits.modbus_window_ms, t->modbus_requests,
                        t->modbus_errors, now_ms);
        st->modbus_timeouts = t->modbus_timeouts;
        snprintf(st->breaker, sizeof(st->breaker), "%s", t->breaker ? t->breaker : "");
        st->lag_ms = (double)now_ms - (double)t->ts_ms; /* in double: ts_ms is untrusted */
        site_recompute(h, a->site);
        publish_telemetry(h, a, st);
    }
    st->messages++; /* a counter: the rate is the scraper's rate() over it (metrics.c) */
    if (h->n_batch == h->cap_batch) {
        size_t cap = h->cap_batch ? h->cap_batch * 2 : 1024;
        struct store_telemetry *nb = realloc(h->batch, cap * sizeof(*nb));
        if (!nb) {
            h->c.store_errors++;
            return;
        }
        h->batch = nb;
        h->cap_batch = cap;
    }
    h->batch[h->n_batch++] = *l;
    if (h->n_batch >= FLUSH_MAX_ROWS)
        h->flush_now = 1;
}

/* ---- Decision: the gateway's record of a control cycle, stored as a JSON object ------------ */

struct jbuf {
    char *b;
    size_t len, o;
    int full;
};

static void jput(struct jbuf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jput(struct jbuf *j, const char *fmt, ...)
{
    if (j->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(j->b + j->o, j->len - j->o, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= j->len - j->o)
        j->full = 1;
    else
        j->o += (size_t)n;
}

/* A string from the gateway as a JSON string: printable ASCII but the quote and the backslash, else
 * '?', so it needs no escaping and is valid UTF-8 for any store. */
static void jtext(struct jbuf *j, const char *key, const char *v)
{
    char clean[STORE_ID_MAX];
    size_t k = 0;
    for (; v && v[k] && k + 1 < sizeof clean; k++)
        clean[k] = v[k] >= 0x20 && v[k] < 0x7f && v[k] != '"' && v[k] != '\\' ? v[k] : '?';
    clean[k] = '\0';
    jput(j, "\"%s\":\"%s\"", key, clean);
}

static void jreal(struct jbuf *j, const char *key, double v)
{
    if (isfinite(v))
        jput(j, ",\"%s\":%.10g", key, v);
    else
        jput(j, ",\"%s\":null", key);
}

static void jclamps(struct jbuf *j, const char *key, Der__V1__DecisionClamp *const *c, size_t n)
{
    jput(j, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        jput(j, "%s{", i ? "," : "");
        jtext(j, "asset", c[i]->asset_id);
        jput(j, ",");
        jtext(j, "reason", c[i]->reason);
        jreal(j, "from_w", c[i]->from_w);
        jreal(j, "to_w", c[i]->to_w);
        jput(j, "}");
    }
    jput(j, "]");
}

/* A new latest sample for the event streams: the point and its site's sums after it, which
 * is what the site page's charts draw (only sent to streams that watch the site). */
static void publish_telemetry(struct hub *h, const struct inv_asset *a,
                              const struct asset_state *st)
{
    if (!h->events)
        return;
    if (!events_wanted(h->events, a->site)) { /* nobody watches the site: no JSON to make */
        events_touch(h->events);
        return;
    }
    const struct inv_site *site = inventory_site_at(h->inv, a->site);
    const struct site_agg *g = &h->sites[a->site].agg;
    char b[EVENTS_DATA_MAX];
    struct jbuf j = {b, sizeof(b), 0, 0};
    jput(&j, "{");
    jtext(&j, "site_id", site->id);
    jput(&j, ",");
    jtext(&j, "asset_id", a->id);
    jput(&j, ",\"ts_ms\":%lld", (long long)st->latest.ts_ms);
    jreal(&j, "power_w", st->latest.power_w);
    jreal(&j, "soc", st->latest.soc);
    jput(&j, ",\"site\":{\"updated_ms\":%lld", (long long)g->updated_ms);
    jreal(&j, "grid_w", g->grid_w);
    jreal(&j, "pv_w", g->pv_w);
    jreal(&j, "battery_w", g->battery_w);
    jreal(&j, "ev_w", g->ev_w);
    jreal(&j, "boiler_w", g->boiler_w);
    jreal(&j, "soc_mean", g->soc_mean);
    jput(&j, "}}");
    if (!j.full)
        events_publish(h->events, "telemetry", a->site, b);
}

/* The stored object (docs/operations.md, "Decisions"). 0, or -ENOSPC when it does not fit. */
static int decision_json(const Der__V1__Decision *d, char *b, size_t len)
{
    struct jbuf j = {b, len, 0, 0};
    jput(&j, "{\"ts_ms\":%lld,\"cycle_ms\":%lld,", (long long)d->ts_ms, (long long)d->cycle_ms);
    jtext(&j, "strategy", d->strategy);
    jput(&j, ",\"estop_active\":%s,\"schedule_active\":%s,\"dropped\":%u",
         d->estop_active ? "true" : "false", d->schedule_active ? "true" : "false", d->dropped);
    jreal(&j, "grid_w", d->grid_w);
    jreal(&j, "soc", d->soc);
    jreal(&j, "raw_w", d->raw_w);
    jput(&j, ",\"requests\":[");
    for (size_t i = 0; i < d->n_requests; i++) {
        jput(&j, "%s{", i ? "," : "");
        jtext(&j, "asset", d->requests[i]->asset_id);
        jput(&j, ",");
        jtext(&j, "source", d->requests[i]->source);
        jreal(&j, "power_w", d->requests[i]->power_w);
        jput(&j, "}");
    }
    jput(&j, "],\"setpoints\":[");
    for (size_t i = 0; i < d->n_setpoints; i++) {
        jput(&j, "%s{", i ? "," : "");
        jtext(&j, "asset", d->setpoints[i]->asset_id);
        jput(&j, ",");
        jtext(&j, "source", d->setpoints[i]->source);
        jreal(&j, "requested_w", d->setpoints[i]->requested_w);
        jreal(&j, "final_w", d->setpoints[i]->final_w);
        jput(&j, "}");
    }
    jput(&j, "]");
    jclamps(&j, "clamps", d->clamps, d->n_clamps);
    jclamps(&j, "conflicts", d->conflicts, d->n_conflicts);
    jput(&j, "}");
    return j.full ? -ENOSPC : 0;
}

/* Stored at once (they are few: on change or at the gateway's decision_period), only from a
 * session whose Register announced them. */
static void on_decision(struct hub *h, struct session *s, const Der__V1__Decision *d,
                        int64_t now_ms)
{
    struct store_decision *rec = malloc(sizeof *rec);
    int e = rec ? 0 : -ENOMEM;
    if (!e && !s->decisions)
        e = -EPROTO;
    if (!e) {
        snprintf(rec->site_id, sizeof rec->site_id, "%s", s->site_id);
        snprintf(rec->gateway_id, sizeof rec->gateway_id, "%s", s->gateway_id);
        rec->ts_ms = d->ts_ms;
        rec->received_ms = now_ms;
        e = decision_json(d, rec->json, sizeof rec->json);
    }
    if (!e && h->st->ops->decision_add(h->st, rec) < 0) {
        h->c.store_errors++;
        e = -EIO;
    }
    free(rec);
    if (!e) {
        h->c.decisions++;
        return;
    }
    if (e != -EIO)
        h->c.decisions_refused++;
    log_event(LOG_WARN, "event=decision_refused gateway=%s site=%s reason=\"%s\"", s->gateway_id,
              s->site_id,
              e == -EPROTO   ? "Register did not announce decisions"
              : e == -ENOSPC ? "too large to store"
              : e == -EIO    ? "store error"
                             : "out of memory");
}

static int ack_state(Der__V1__SetpointAck__State s)
{
    switch (s) {
    case DER__V1__SETPOINT_ACK__STATE__RECEIVED:
        return DISPATCH_RECEIVED;
    case DER__V1__SETPOINT_ACK__STATE__APPLIED:
        return DISPATCH_APPLIED;
    case DER__V1__SETPOINT_ACK__STATE__REJECTED:
        return DISPATCH_REJECTED;
    case DER__V1__SETPOINT_ACK__STATE__EXPIRED:
        return DISPATCH_EXPIRED;
    case DER__V1__SETPOINT_ACK__STATE__FAILED:
        return DISPATCH_FAILED;
    default:
        return -EINVAL;
    }
}

static void count_outcome(struct hub *h, int state, const struct store_dispatch *d, int64_t now_ms)
{
    if (state >= 100 && state < 108)
        h->c.dispatch_state[state - 100]++;
    if (state == DISPATCH_APPLIED) {
        static const double le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0};
        double sec = (double)(now_ms - d->created_ms) / 1000.0;
        h->c.apply_latency_sum_s += sec;
        h->c.apply_latency_count++;
        size_t b = 0;
        while (b < 7 && sec > le[b])
            b++;
        h->c.apply_latency_bucket[b]++;
    }
}

/* Allocations must name assets this session serves (for an asset setpoint: that asset), each
 * once, with a power inside the asset's inventory limits. NaN means "not set" (the gateway
 * reports an asset it left alone that way) and passes; infinities do not. 0 or the reason. */
static int check_allocations(struct hub *h, struct session *s, const struct store_dispatch *d,
                             const Der__V1__SetpointAck *a, char *why, size_t len)
{
    for (size_t i = 0; i < a->n_allocations; i++) {
        const Der__V1__Allocation *al = a->allocations[i];
        const char *aid = al->asset_id[0] ? al->asset_id : s->primary_asset;
        const struct inv_asset *ia = inventory_asset(h->inv, aid);
        if (!ia || !session_serves(s, ia->index)) {
            snprintf(why, len, "allocation to asset %.63s, which this session does not serve", aid);
            return -EPERM;
        }
        if (d->asset_id[0] && strcmp(d->asset_id, ia->id) != 0) {
            snprintf(why, len, "allocation to asset %s; the setpoint targets asset %s", ia->id,
                     d->asset_id);
            return -EPERM;
        }
        for (size_t k = 0; k < i; k++) {
            const char *other =
                a->allocations[k]->asset_id[0] ? a->allocations[k]->asset_id : s->primary_asset;
            if (!strcmp(other, ia->id)) {
                snprintf(why, len, "asset %s allocated twice", ia->id);
                return -EINVAL;
            }
        }
        double p = al->power_w;
        if (!isnan(p) && (p < ia->min_power_w - 1e-6 || p > ia->max_power_w + 1e-6)) {
            snprintf(why, len, "allocation %.1f W to asset %s is outside its limits %.1f..%.1f W",
                     p, ia->id, ia->min_power_w, ia->max_power_w);
            return -ERANGE;
        }
    }
    return 0;
}

/* An ack changes a dispatch only when it comes from the session the setpoint was last sent
 * on (docs/protocol.md): the store records that session with every send, and a reconnecting
 * gateway gets its open setpoints again at Register, before anything it sends is read, so
 * its queued acks still arrive on "their" session. Acks that could only come from a peer
 * that never got the setpoint (unknown id, another site, another session, allocations
 * beyond what the session serves or the asset can do) are refused; harmless repeats (a
 * final state, a second RECEIVED) are ignored as before. */
static void on_ack(struct hub *h, struct session *s, const Der__V1__SetpointAck *a, int64_t now_ms)
{
    struct store_dispatch d;
    int state = ack_state(a->state);
    const char *ignored = NULL;
    char refused[200] = "";
    if (state < 0)
        ignored = "ack without a state";
    else if (h->st->ops->dispatch_get(h->st, a->setpoint_id, &d) < 0)
        snprintf(refused, sizeof(refused), "unknown setpoint_id");
    else if (strcmp(d.site_id, s->site_id) != 0)
        snprintf(refused, sizeof(refused), "setpoint of another site");
    else if (dispatch_state_final(d.state))
        ignored = "setpoint already final";
    else if (state == DISPATCH_RECEIVED && d.state == DISPATCH_RECEIVED)
        ignored = "duplicate RECEIVED";
    else if (d.state == DISPATCH_QUEUED || s->id == 0 || d.session_id != s->id)
        snprintf(refused, sizeof(refused), "setpoint never sent on this session");
    else
        check_allocations(h, s, &d, a, refused, sizeof(refused));
    if (ignored) {
        log_event(LOG_WARN,
                  "event=ack_ignored gateway=%s site=%s setpoint=%s state=%d "
                  "reason=\"%s\"",
                  s->gateway_id, s->site_id, nz(a->setpoint_id), (int)a->state, ignored);
        return;
    }
    if (refused[0]) {
        h->c.acks_refused++;
        log_event(LOG_WARN,
                  "event=ack_refused gateway=%s site=%s peer=%s session=%lld setpoint=%s "
                  "state=%d allocations=%zu reason=\"%s\"",
                  s->gateway_id, s->site_id, s->peer, (long long)s->id, nz(a->setpoint_id),
                  (int)a->state, a->n_allocations, refused);
        return;
    }
    struct store_ack rec = {.state = state, .at_ms = now_ms};
    snprintf(rec.detail, sizeof(rec.detail), "%s", a->detail);
    struct store *st = h->st;
    int e = st->ops->begin(st);
    if (!e)
        e = st->ops->dispatch_set_state(st, d.id, state, a->detail, now_ms, s->id);
    if (!e)
        e = st->ops->ack_add(st, d.id, &rec);
    if (!e && a->n_allocations) {
        struct store_alloc *al = calloc(a->n_allocations, sizeof(*al));
        if (!al)
            e = -ENOMEM;
        for (size_t i = 0; al && i < a->n_allocations; i++) {
            snprintf(al[i].asset_id, sizeof(al[i].asset_id), "%s",
                     a->allocations[i]->asset_id[0] ? a->allocations[i]->asset_id
                                                    : s->primary_asset);
            al[i].power_w = a->allocations[i]->power_w;
        }
        if (al)
            e = st->ops->alloc_set(st, d.id, al, a->n_allocations);
        free(al);
    }
    int ce = st->ops->commit(st);
    if (e || ce)
        h->c.store_errors++;
    recent_state(h, d.site_id, d.id, state);
    count_outcome(h, state, &d, now_ms);
    if (state == DISPATCH_FAILED && h->limits.dispatch) {
        char why[ALERT_TEXT_MAX];
        snprintf(why, sizeof(why), "dispatch FAILED: %s", a->detail);
        alerts_event(h->alerts, ALERT_DISPATCH_FAILED, d.site_id, d.id, d.power_w, why, now_ms);
    }
    log_event(dispatch_state_final(state) && state != DISPATCH_APPLIED ? LOG_WARN : LOG_INFO,
              "event=dispatch_ack setpoint=%s gateway=%s site=%s state=%s allocations=%zu "
              "requested_w=%.3f allocated_w=%.3f latency_ms=%lld detail=\"%s\"",
              d.id, s->gateway_id, s->site_id, dispatch_state_name(state), a->n_allocations,
              a->requested_w, a->allocated_w, (long long)(now_ms - d.created_ms), a->detail);
}

/* ---- per-asset commands (headend/commands.h) ------------------------------------------------ */

/* A command as it now is, into the store (GET /commands/:id after a restart, the export). */
static void store_command(struct hub *h, const struct command_rec *r)
{
    cJSON *o = command_rec_json(r, 1);
    char *txt = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!txt || h->st->ops->command_put(h->st, r->id, r->site_id, r->created_ms, r->state, txt) < 0)
        h->c.store_errors++;
    cJSON_free(txt);
}

static void store_command_cb(void *ctx, const struct command_rec *r)
{
    struct hub *h = ctx;
    if (r->routed) { /* expired here, but the shared row is the truth: another headend may
                      * have sent it; only a row nobody sent becomes EXPIRED */
        char *json = malloc(STORE_RECORD_MAX);
        struct command_rec rec;
        cJSON *o = NULL;
        int e = json ? h->st->ops->command_get(h->st, r->id, json, STORE_RECORD_MAX) : -ENOMEM;
        if (e == 0 && (o = cJSON_Parse(json)) && command_rec_from_json(o, &rec) == 0 &&
            rec.state != DISPATCH_QUEUED) {
            rec.routed = rec.state == DISPATCH_SENT || rec.state == DISPATCH_RECEIVED;
            *(struct command_rec *)r = rec; /* the table's own record (commands_expire) */
            cJSON_Delete(o);
            free(json);
            return;
        }
        cJSON_Delete(o);
        free(json);
        ((struct command_rec *)r)->routed = 0;
    }
    store_command(ctx, r);
}

/* A CommandAck counts only from the session the command was sent on (like SetpointAck). */
static void on_command_ack(struct hub *h, struct session *s, const Der__V1__CommandAck *a,
                           int64_t now_ms)
{
    struct command_rec *r = commands_get(h->cmds, a->command_id);
    int state = ack_state(a->state);
    if (!r || r->session_id != s->id || state < 0) {
        log_event(LOG_WARN,
                  "event=command_ack_refused gateway=%s site=%s command=%s state=%d reason=\"%s\"",
                  s->gateway_id, s->site_id, nz(a->command_id), (int)a->state,
                  !r          ? "unknown command_id"
                  : state < 0 ? "unknown state"
                              : "command never sent on this session");
        return;
    }
    commands_ack(h->cmds, r->id, state, a->detail, now_ms);
    store_command(h, r);
    log_event(state == DISPATCH_REJECTED || state == DISPATCH_FAILED || state == DISPATCH_EXPIRED
                  ? LOG_WARN
                  : LOG_INFO,
              "event=command_ack command=%s asset=%s gateway=%s state=%s detail=\"%s\"", r->id,
              r->asset_id, s->gateway_id, dispatch_state_name(r->state), r->detail);
}

static int announce(struct hub *h, const char *id);

/* Sends command record r on s (SENT, stored) or marks it FAILED. 0 or -EIO. */
static int send_command(struct hub *h, struct session *s, struct command_rec *r, int64_t now_ms)
{
    snprintf(r->gateway_id, sizeof(r->gateway_id), "%s", s->gateway_id);
    r->session_id = s->id;
    Der__V1__Command c = DER__V1__COMMAND__INIT;
    c.command_id = r->id;
    c.asset_id = r->asset_id;
    c.command = r->command;
    c.value = isnan(r->value) ? 0 : r->value;
    c.expires_ms = r->expires_ms;
    Der__V1__HeadendMessage m = DER__V1__HEADEND_MESSAGE__INIT;
    m.body_case = DER__V1__HEADEND_MESSAGE__BODY_COMMAND;
    m.command = &c;
    if (send_msg(s, &m) < 0) {
        commands_ack(h->cmds, r->id, DISPATCH_FAILED, "the stream refused it", now_ms);
        store_command(h, r);
        return -EIO;
    }
    r->state = DISPATCH_SENT;
    r->updated_ms = now_ms;
    store_command(h, r);
    log_event(LOG_INFO,
              "event=command_sent command=%s asset=%s gateway=%s name=%s value=%g "
              "expires_ms=%lld by=%s",
              r->id, r->asset_id, s->gateway_id, r->command, r->value, (long long)r->expires_ms,
              nz(r->requested_by));
    return 0;
}

int hub_command(struct hub *h, const char *who, size_t asset_idx, const char *command, double value,
                int ttl_s, int64_t now_ms, const struct command_rec **out)
{
    const struct inv_asset *a = inventory_asset_at(h->inv, asset_idx);
    struct session *s = a ? registry_asset(h->reg, asset_idx) : NULL;
    const struct site_remote *rm = a && !s ? &h->remote[a->site] : NULL;
    /* held by another live headend: stored QUEUED and announced (NOTIFY derloop_command);
     * that headend sends it (hub_cluster_command) */
    int routed = rm && rm->held && h->wake;
    if (!s && !routed)
        return -ENOTCONN;
    if (s && !s->commands)
        return -EOPNOTSUPP;
    struct command_rec *r = commands_add(h->cmds, now_ms);
    int64_t n = 0; /* ids unique across the headends sharing a store: its counter */
    if (h->st->ops->next_counter(h->st, "command", &n) == 0)
        snprintf(r->id, sizeof(r->id), "cmd-%lld-%lld", (long long)now_ms, (long long)n);
    snprintf(r->site_id, sizeof(r->site_id), "%s", inventory_site_at(h->inv, a->site)->id);
    snprintf(r->asset_id, sizeof(r->asset_id), "%s", a->id);
    snprintf(r->gateway_id, sizeof(r->gateway_id), "%s", s ? s->gateway_id : rm->gateway_id);
    snprintf(r->command, sizeof(r->command), "%s", command);
    snprintf(r->requested_by, sizeof(r->requested_by), "%s", who ? who : "");
    r->value = value;
    r->expires_ms = now_ms + (int64_t)ttl_s * 1000;
    if (routed) {
        r->routed = 1;
        store_command(h, r);
        char tag[STORE_ID_MAX + 1];
        snprintf(tag, sizeof(tag), "!%s", r->id); /* '!': a command id (cluster.c announce) */
        if (announce(h, tag) < 0)
            return -ENOMEM;
        log_event(LOG_INFO,
                  "event=command_routed command=%s asset=%s node=%s name=%s value=%g by=%s", r->id,
                  r->asset_id, rm->node_id, r->command, value, nz(r->requested_by));
        *out = r;
        return 0;
    }
    int e = send_command(h, s, r, now_ms);
    if (e < 0)
        return e;
    *out = r;
    return 0;
}

int hub_cluster_command(struct hub *h, const char *json, int64_t now_ms)
{
    cJSON *o = cJSON_Parse(json);
    struct command_rec rec;
    int ok = o && command_rec_from_json(o, &rec) == 0;
    cJSON_Delete(o);
    if (!ok || rec.state != DISPATCH_QUEUED)
        return 0;
    const struct inv_asset *a = inventory_asset(h->inv, rec.asset_id);
    struct session *s = a ? registry_asset(h->reg, a->index) : NULL;
    if (!s || !s->commands)
        return 0; /* not ours (or an older gateway): stays QUEUED until it expires */
    struct command_rec *r = commands_restore(h->cmds, &rec);
    if (!r || r->state != DISPATCH_QUEUED)
        return 0;  /* sent already (announced twice, or by a sweep) */
    r->routed = 0; /* ours now: the acks arrive here */
    return send_command(h, s, r, now_ms) == 0 ? 1 : -EIO;
}

const struct command_rec *hub_command_get(struct hub *h, const char *id)
{
    struct command_rec *r = commands_get(h->cmds, id);
    if (r && !r->routed)
        return r;
    /* older than the table, or from before a restart: the store has it */
    char *json = malloc(STORE_RECORD_MAX);
    if (!json)
        return NULL;
    if (h->st->ops->command_get(h->st, id, json, STORE_RECORD_MAX) == 0) {
        cJSON *o = cJSON_Parse(json);
        struct command_rec rec;
        if (o && command_rec_from_json(o, &rec) == 0 && !strcmp(rec.id, id)) {
            if (r) { /* sent by another headend: its acks are in the shared row */
                rec.routed = rec.state == DISPATCH_QUEUED || rec.state == DISPATCH_SENT ||
                             rec.state == DISPATCH_RECEIVED;
                *r = rec;
            } else {
                r = commands_restore(h->cmds, &rec);
            }
        }
        cJSON_Delete(o);
    }
    free(json);
    return r;
}

int hub_on_message(struct hub *h, struct session *s, const uint8_t *data, size_t len,
                   int64_t now_ms, int *grpc_status, char *reason, size_t reason_len)
{
    Der__V1__AgentMessage *m = der__v1__agent_message__unpack(NULL, len, data);
    if (!m) {
        h->c.malformed++;
        *grpc_status = GRPC_STATUS_INVALID_ARGUMENT;
        snprintf(reason, reason_len, "malformed AgentMessage (%zu bytes)", len);
        log_event(LOG_WARN, "event=malformed gateway=%s site=%s peer=%s bytes=%zu",
                  nz(s->gateway_id), nz(s->site_id), s->peer, len);
        return -EBADMSG;
    }
    int rc = 0;
    s->last_seen_ms = now_ms;
    if (m->seq != s->in_seq + 1 && s->in_seq != 0) {
        s->seq_gaps++;
        if (s->seq_gaps <= LOG_REJECTS_PER_SESSION)
            log_event(LOG_WARN, "event=seq_gap gateway=%s site=%s expected=%llu got=%llu",
                      nz(s->gateway_id), nz(s->site_id), (unsigned long long)s->in_seq + 1,
                      (unsigned long long)m->seq);
    }
    s->in_seq = m->seq;
    if (!s->registered && m->body_case != DER__V1__AGENT_MESSAGE__BODY_REGISTER) {
        h->c.protocol_errors++;
        *grpc_status = GRPC_STATUS_FAILED_PRECONDITION;
        snprintf(reason, reason_len, "the first message must be Register");
        log_event(LOG_WARN, "event=protocol_error gateway=- site=- peer=%s reason=\"%s\"", s->peer,
                  reason);
        rc = -EPROTO;
        goto done;
    }
    switch (m->body_case) {
    case DER__V1__AGENT_MESSAGE__BODY_REGISTER:
        rc = on_register(h, s, m->register_, now_ms, grpc_status, reason, reason_len);
        if (rc < 0 && *grpc_status != GRPC_STATUS_PERMISSION_DENIED)
            h->c.protocol_errors++;
        break;
    case DER__V1__AGENT_MESSAGE__BODY_TELEMETRY:
        on_telemetry(h, s, m->telemetry, now_ms);
        /* Refused samples are acknowledged too: they are final, a replay would not help. */
        if (s->tel_acks && ackq_add(h, s, m->seq) == 0 && s->unacked_rows >= ACK_EAGER_ROWS)
            h->flush_now = 1;
        break;
    case DER__V1__AGENT_MESSAGE__BODY_HEARTBEAT:
        break;
    case DER__V1__AGENT_MESSAGE__BODY_SETPOINT_ACK:
        on_ack(h, s, m->setpoint_ack, now_ms);
        break;
    case DER__V1__AGENT_MESSAGE__BODY_PONG:
        on_pong(h, s, m->pong, now_ms);
        break;
    case DER__V1__AGENT_MESSAGE__BODY_CONFIG_REPORT:
        on_config_report(h, s, m->config_report, now_ms);
        break;
    case DER__V1__AGENT_MESSAGE__BODY_ESTOP_REPORT:
        on_estop_report(h, s, m->estop_report, now_ms);
        break;
    case DER__V1__AGENT_MESSAGE__BODY_DECISION:
        on_decision(h, s, m->decision, now_ms);
        break;
    case DER__V1__AGENT_MESSAGE__BODY_COMMAND_ACK:
        on_command_ack(h, s, m->command_ack, now_ms);
        break;
    default:
        h->c.protocol_errors++;
        log_event(LOG_WARN, "event=protocol_error gateway=%s site=%s reason=\"empty message\"",
                  s->gateway_id, s->site_id);
        break;
    }
    if (s->registered)
        h->sites[s->site].last_seen_ms = now_ms;
done:
    der__v1__agent_message__free_unpacked(m, NULL);
    if (h->flush_now)
        hub_flush(h);
    return rc;
}

/* After a flush: each waiting session gets its TelemetryAck, or, when the rows did not
 * reach the store, its stream is closed so the gateway replays them on the next one (an
 * unacknowledged window would otherwise stall until the gateway's ack timeout). */
static void ack_waiting(struct hub *h, int stored)
{
    while (h->n_ackq) {
        struct session *s = h->ackq[h->n_ackq - 1];
        uint64_t seq = s->ack_due_seq;
        ackq_remove(h, s);
        if (!stored) {
            h->c.ack_closes++;
            s->ops->close(s->link, GRPC_STATUS_UNAVAILABLE,
                          "telemetry store unavailable: samples not acknowledged, replay them");
            continue;
        }
        Der__V1__TelemetryAck ta = DER__V1__TELEMETRY_ACK__INIT;
        ta.through_seq = seq;
        Der__V1__HeadendMessage m = DER__V1__HEADEND_MESSAGE__INIT;
        m.body_case = DER__V1__HEADEND_MESSAGE__BODY_TELEMETRY_ACK;
        m.telemetry_ack = &ta;
        if (send_msg(s, &m) == 0) /* a lost ack is covered by the next (cumulative) one */
            h->c.telemetry_acks++;
    }
}

int hub_flush(struct hub *h)
{
    h->flush_now = 0;
    int e = 0, ce = 0;
    if (h->n_batch) {
        struct store *st = h->st;
        e = st->ops->begin(st);
        for (size_t i = 0; i < h->n_batch && !e; i++)
            e = st->ops->telemetry_add(st, &h->batch[i]);
        ce = st->ops->commit(st);
        if (e || ce) {
            h->c.store_errors++;
            log_event(LOG_ERROR, "event=store_error op=telemetry_flush rows=%zu error=%d",
                      h->n_batch, e ? e : ce);
        }
        h->c.flushes++;
        h->c.flushed_rows += h->n_batch;
        h->n_batch = 0;
    }
    ack_waiting(h, !e && !ce);
    return e ? e : ce;
}

struct expiry {
    struct hub *h;
    int64_t now_ms;
};

static int log_expired(const struct store_dispatch *d, void *arg)
{
    struct expiry *x = arg;
    struct hub *h = x->h;
    h->c.dispatch_state[DISPATCH_EXPIRED - 100]++;
    recent_state(h, d->site_id, d->id, DISPATCH_EXPIRED);
    if (h->limits.dispatch)
        alerts_event(h->alerts, ALERT_DISPATCH_FAILED, d->site_id, d->id, d->power_w,
                     d->state == DISPATCH_QUEUED ? "dispatch EXPIRED before any gateway served it"
                                                 : "dispatch EXPIRED without a final ack",
                     x->now_ms);
    log_event(LOG_WARN,
              "event=dispatch_expired setpoint=%s site=%s asset=%s state_was=%s "
              "reason=\"ttl elapsed before %s\"",
              d->id, d->site_id, nz(d->asset_id), dispatch_state_name(d->state),
              d->state == DISPATCH_QUEUED ? "any gateway served it"
              : d->state == DISPATCH_SENT ? "an ack"
                                          : "a final ack (the gateway may have restarted)");
    return 0;
}

void hub_count_refusal(struct hub *h, enum hub_refusal what, uint64_t n)
{
    if (what == HUB_REGISTER_TIMEOUT)
        h->c.register_timeouts += n;
    else
        h->c.peer_evictions += n;
}

/* The condition rules over what the hub knows now (alerts.h): per site, the gateway's
 * presence; per asset, its latest sample. */
static const int site_rules[] = {ALERT_GATEWAY_OFFLINE, ALERT_GATEWAY_STALE};
static const int asset_rules[] = {ALERT_ASSET_FAULT, ALERT_SOC_LOW, ALERT_TELEMETRY_LAG,
                                  ALERT_MODBUS_ERRORS};

/* Clears the active alerts of `rules` on subject (a no-op for those not raised). */
static void clear_rules(struct hub *h, const char *sid, const char *subject, const int *rules,
                        size_t n, const char *why, int64_t now_ms)
{
    for (size_t r = 0; r < n; r++)
        if (alerts_find(h->alerts, rules[r], subject))
            alerts_observe(h->alerts, rules[r], sid, subject, 0, NAN, why, now_ms);
}

/* Whether an alert's subject is still in the inventory (alerts_clear_unknown). */
static int subject_known(void *ctx, int rule, const char *subject)
{
    const struct hub *h = ctx;
    if (rule == ALERT_GATEWAY_OFFLINE || rule == ALERT_GATEWAY_STALE)
        return inventory_site(h->inv, subject) != NULL;
    return inventory_asset(h->inv, subject) != NULL;
}

static void eval_alerts(struct hub *h, int64_t now_ms)
{
    if (!h->alerts_checked) { /* the restored ones, once: their subjects may be gone */
        h->alerts_checked = 1;
        alerts_clear_unknown(h->alerts, subject_known, h, now_ms);
    }
    const struct alert_limits *l = &h->limits;
    char why[ALERT_TEXT_MAX];
    double v;
    for (size_t i = 0; i < inventory_site_count(h->inv); i++) {
        const char *sid = inventory_site_at(h->inv, i)->id;
        const struct site_state *ss = &h->sites[i];
        const struct session *s = registry_site(h->reg, i);
        if (!s && h->remote[i].held) {
            /* another live headend holds its gateway (several headends): its alerts are
             * that headend's to raise; one raised here before the gateway moved clears */
            clear_rules(h, sid, sid, site_rules, sizeof site_rules / sizeof site_rules[0],
                        "the gateway's stream is on another headend", now_ms);
            continue;
        }
        int64_t seen = s ? s->last_seen_ms : ss->last_seen_ms;
        int hold = alert_offline_holds(l, s != NULL, seen, now_ms, &v);
        snprintf(why, sizeof(why), "gateway %s has had no live session for %.0f s",
                 nz(ss->gateway_id), v / 1000.0);
        alerts_observe(h->alerts, ALERT_GATEWAY_OFFLINE, sid, sid, hold, v, why, now_ms);
        hold = alert_stale_holds(l, s != NULL, seen, now_ms, &v);
        snprintf(why, sizeof(why), "gateway %s connected but silent for %.0f s",
                 s ? s->gateway_id : "-", v / 1000.0);
        alerts_observe(h->alerts, ALERT_GATEWAY_STALE, sid, sid, hold, v, why, now_ms);
    }
    for (size_t i = 0; i < inventory_asset_count(h->inv); i++) {
        const struct inv_asset *a = inventory_asset_at(h->inv, i);
        const char *sid = inventory_site_at(h->inv, a->site)->id;
        const struct asset_state *st = &h->assets[i];
        if (!st->has_latest || (!registry_asset(h->reg, i) && h->remote[a->site].held)) {
            /* nothing known of it (no sample since the store's history ended), or its samples
             * go to another live headend: none of its conditions is this headend's to hold,
             * so an alert raised or restored here clears rather than stays */
            clear_rules(h, sid, a->id, asset_rules, sizeof asset_rules / sizeof asset_rules[0],
                        st->has_latest ? "the gateway's stream is on another headend"
                                       : "no sample of the asset is known",
                        now_ms);
            continue;
        }
        int hold = alert_fault_holds(l, st->op_state, st->latest.status, st->device_state);
        if (st->op_state[0])
            snprintf(why, sizeof(why), "operating state %s (status %s)", st->op_state,
                     st->latest.status);
        else
            snprintf(why, sizeof(why), "status %s, device state %s (no operating state reported)",
                     st->latest.status, nz(st->device_state));
        alerts_observe(h->alerts, ALERT_ASSET_FAULT, sid, a->id, hold, NAN, why, now_ms);
        int active = alerts_find(h->alerts, ALERT_SOC_LOW, a->id) != NULL;
        hold = alert_soc_holds(l, st->latest.soc, active);
        snprintf(why, sizeof(why), "state of charge %.1f %% below the reserve %.0f %%",
                 st->latest.soc * 100.0, l->soc_reserve * 100.0);
        alerts_observe(h->alerts, ALERT_SOC_LOW, sid, a->id, hold, st->latest.soc, why, now_ms);
        hold = alert_lag_holds(l, registry_asset(h->reg, i) != NULL, st->lag_ms);
        snprintf(why, sizeof(why), "latest sample arrived %.0f ms after its timestamp", st->lag_ms);
        alerts_observe(h->alerts, ALERT_TELEMETRY_LAG, sid, a->id, hold, st->lag_ms, why, now_ms);
        uint64_t calls, errs;
        if (!st->modbus.has_cur)
            continue; /* no sample since start: a restored alert waits for one */
        hold = alert_modbus_holds(l, &st->modbus, now_ms, &v, &calls, &errs);
        snprintf(why, sizeof(why),
                 "%llu of %llu Modbus calls failed in the last %lld s (%.1f %%), breaker %s",
                 (unsigned long long)errs, (unsigned long long)calls,
                 (long long)(l->modbus_window_ms / 1000), v, nz(st->breaker));
        alerts_observe(h->alerts, ALERT_MODBUS_ERRORS, sid, a->id, hold, v, why, now_ms);
    }
}

void hub_tick(struct hub *h, int64_t now_ms)
{
    if (now_ms - h->last_flush_ms >= h->cfg.telemetry_flush_ms) {
        hub_flush(h);
        h->last_flush_ms = now_ms;
    }
    if (now_ms - h->last_expire_ms >= EXPIRE_EVERY_MS) {
        h->last_expire_ms = now_ms;
        commands_expire(h->cmds, now_ms, store_command_cb, h);
        struct expiry x = {h, now_ms};
        if (h->st->ops->dispatch_expire(h->st, now_ms, log_expired, &x) < 0)
            h->c.store_errors++;
    }
    if (h->cfg.ping_interval_ms > 0 && now_ms - h->last_ping_ms >= PING_CHECK_MS) {
        h->last_ping_ms = now_ms;
        for (size_t i = 0; i < inventory_site_count(h->inv); i++) {
            struct session *s = registry_site(h->reg, i);
            if (s && s->pong && now_ms >= s->ping_due_ms)
                send_ping(h, s, now_ms);
        }
    }
    if (now_ms - h->last_alert_ms >= h->cfg.alert_eval_ms) {
        h->last_alert_ms = now_ms;
        eval_alerts(h, now_ms);
    }
    if (now_ms - h->last_prune_ms >= PRUNE_EVERY_MS) {
        h->last_prune_ms = now_ms;
        int64_t n = 0;
        if (h->st->ops->telemetry_prune(
                h->st, now_ms - (int64_t)h->cfg.telemetry_retention_s * 1000, &n) < 0)
            h->c.store_errors++;
        h->c.pruned_rows += (uint64_t)n;
        n = 0; /* decisions go with telemetry's retention */
        if (h->st->ops->decision_prune(h->st, now_ms - (int64_t)h->cfg.telemetry_retention_s * 1000,
                                       &n) < 0)
            h->c.store_errors++;
        h->c.pruned_rows += (uint64_t)n;
        n = 0; /* the stored alert history: as many as GET /alerts can show */
        if (h->st->ops->alert_prune(h->st, h->cfg.alert_history, &n) < 0)
            h->c.store_errors++;
    }
}

/* A dispatch for the cluster thread to announce (hub_cluster_take). */
static int announce(struct hub *h, const char *id)
{
    if (h->n_announce == h->cap_announce) {
        size_t cap = h->cap_announce ? h->cap_announce * 2 : 64;
        char(*q)[STORE_ID_MAX] = realloc(h->announce, cap * sizeof(*q));
        if (!q)
            return -ENOMEM;
        h->announce = q;
        h->cap_announce = cap;
    }
    snprintf(h->announce[h->n_announce++], STORE_ID_MAX, "%s", id);
    h->wake(h->wake_ctx);
    return 0;
}

void hub_events_attach(struct hub *h, struct events *ev)
{
    h->events = ev;
}

void hub_cluster_attach(struct hub *h, hub_wake_fn wake, void *ctx)
{
    h->wake = wake;
    h->wake_ctx = ctx;
}

const char *hub_node_id(const struct hub *h)
{
    return h->cfg.node_id;
}

size_t hub_cluster_take(struct hub *h, char (*ids)[STORE_ID_MAX], size_t max)
{
    size_t n = h->n_announce < max ? h->n_announce : max;
    if (n == 0) /* announce may be NULL: memcpy from NULL is undefined even for 0 bytes */
        return 0;
    memcpy(ids, h->announce, n * sizeof(*ids));
    memmove(h->announce, h->announce + n, (h->n_announce - n) * sizeof(*ids));
    h->n_announce -= n;
    return n;
}

/* The stream of this hub that serves a dispatch's target, or NULL. */
static struct session *target_session(struct hub *h, const struct store_dispatch *d)
{
    if (d->asset_id[0]) {
        const struct inv_asset *a = inventory_asset(h->inv, d->asset_id);
        return a ? registry_asset(h->reg, a->index) : NULL;
    }
    const struct inv_site *site = inventory_site(h->inv, d->site_id);
    return site ? registry_site(h->reg, site->index) : NULL;
}

int hub_cluster_deliver(struct hub *h, const struct store_dispatch *d, int64_t now_ms)
{
    struct session *s = target_session(h, d);
    /* QUEUED (checked by the caller's query): the holder of the stream sends once, whoever
     * posted it */
    if (!s || d->state != DISPATCH_QUEUED)
        return 0;
    if (!recent_find(h, d->site_id, d->id))
        recent_add(h, d);
    return send_setpoint(h, s, d, now_ms) == 0 ? 1 : -EIO;
}

int hub_cluster_superseded(struct hub *h, size_t site_idx, const char *node, int64_t session_id,
                           int64_t now_ms)
{
    struct session *s =
        site_idx < inventory_site_count(h->inv) ? registry_site(h->reg, site_idx) : NULL;
    /* sessions.id comes from one sequence in the shared database: a larger one registered
     * later, whatever the headends' clocks say. 0 is a session the store did not record. */
    if (!s || !s->id || session_id <= s->id)
        return 0;
    char msg[200];
    snprintf(msg, sizeof(msg), "replaced by a newer session on headend %s (session %lld)", node,
             (long long)session_id);
    h->c.replaced++;
    end_session(h, s, msg, now_ms);
    s->ops->close(s->link, GRPC_STATUS_ABORTED, msg);
    return 1;
}

int hub_cluster_rescan(struct hub *h, int64_t now_ms)
{
    int sent = 0;
    for (size_t i = 0; i < inventory_site_count(h->inv); i++) {
        struct session *s = registry_site(h->reg, i);
        if (!s)
            continue;
        struct replay rp = {h, s, now_ms, 0, 1};
        int e = h->st->ops->dispatch_pending(h->st, s->site_id, now_ms, replay_one, &rp);
        if (e < 0) {
            h->c.store_errors++;
            return e; /* the store is not back yet: the cluster thread tries again */
        }
        sent += rp.sent;
    }
    return sent;
}

size_t hub_cluster_take_notes(struct hub *h, size_t *sites, unsigned *kinds, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; h->n_notes && n < max && i < inventory_site_count(h->inv); i++) {
        if (!h->notes[i])
            continue;
        sites[n] = i;
        kinds[n++] = h->notes[i];
        h->notes[i] = 0;
        h->n_notes--;
    }
    return n;
}

int hub_cluster_estop(struct hub *h, const struct store_estop *row, int64_t now_ms)
{
    (void)now_ms;
    const struct inv_site *site = inventory_site(h->inv, row->site_id);
    if (!site)
        return 0; /* not in this headend's inventory */
    struct site_state *ss = &h->sites[site->index];
    if (h->estop_unshared[site->index])
        return 0; /* ours is newer than the row: hub_cluster_estop_retry writes it */
    if (ss->estop_known && ss->estop_active == row->active && !strcmp(ss->estop_id, row->id) &&
        ss->estop_since_ms == row->since_ms)
        return 0; /* ours already (our own announcement comes back too) */
    ss->estop_known = 1;
    ss->estop_active = row->active;
    snprintf(ss->estop_id, sizeof(ss->estop_id), "%s", row->id);
    snprintf(ss->estop_reason, sizeof(ss->estop_reason), "%s", row->reason);
    snprintf(ss->estop_by, sizeof(ss->estop_by), "%s", row->by);
    ss->estop_since_ms = row->since_ms;
    struct session *s = registry_site(h->reg, site->index);
    char rb[LOG_VALUE_MAX];
    log_event(LOG_WARN, "event=estop site=%s state=%s id=%s reason=%s by=%s source=cluster held=%s",
              site->id, row->active ? "engaged" : "released", row->id,
              log_escape(rb, sizeof(rb), row->active ? row->reason : ""), nz(row->by),
              s ? "yes" : "no");
    return s ? send_estop(h, s) : 0;
}

int hub_cluster_estop_retry(struct hub *h)
{
    int written = 0;
    for (size_t i = 0; i < inventory_site_count(h->inv); i++)
        if (h->estop_unshared[i] && estop_share(h, i, inventory_site_at(h->inv, i)->id) == 0)
            written++;
    return written;
}

int hub_cluster_config(struct hub *h, size_t site_idx, int64_t now_ms)
{
    struct session *s =
        site_idx < inventory_site_count(h->inv) ? registry_site(h->reg, site_idx) : NULL;
    return s ? push_config(h, s, now_ms) : 0;
}

struct site_remote *hub_site_remote(struct hub *h, size_t site_idx)
{
    return site_idx < inventory_site_count(h->inv) ? &h->remote[site_idx] : NULL;
}

const struct site_remote *hub_site_remote_c(const struct hub *h, size_t site_idx)
{
    return site_idx < inventory_site_count(h->inv) ? &h->remote[site_idx] : NULL;
}

int hub_dispatch(struct hub *h, size_t site_idx, size_t asset_idx, double power_w, int ttl_s,
                 int64_t now_ms, char id[STORE_ID_MAX], int *state)
{
    return hub_dispatch_by(h, NULL, site_idx, asset_idx, power_w, ttl_s, now_ms, id, state);
}

int hub_dispatch_by(struct hub *h, const char *who, size_t site_idx, size_t asset_idx,
                    double power_w, int ttl_s, int64_t now_ms, char id[STORE_ID_MAX], int *state)
{
    const struct inv_site *site = inventory_site_at(h->inv, site_idx);
    const struct inv_asset *asset =
        asset_idx == SIZE_MAX ? NULL : inventory_asset_at(h->inv, asset_idx);
    if (asset)
        site = inventory_site_at(h->inv, asset->site);
    if (!site)
        return -ENOENT;
    struct store_dispatch d = {.power_w = power_w,
                               .created_ms = now_ms,
                               .updated_ms = now_ms,
                               .expires_ms = now_ms + (int64_t)ttl_s * 1000,
                               .state = DISPATCH_QUEUED};
    int e = h->st->ops->next_counter(h->st, "setpoint", &d.seq);
    if (e < 0) {
        h->c.store_errors++;
        return e;
    }
    snprintf(d.id, sizeof(d.id), "sp-%lld", (long long)d.seq);
    snprintf(d.site_id, sizeof(d.site_id), "%s", site->id);
    if (asset)
        snprintf(d.asset_id, sizeof(d.asset_id), "%s", asset->id);
    if (who)
        snprintf(d.requested_by, sizeof(d.requested_by), "%s", who);
    if ((e = h->st->ops->dispatch_add(h->st, &d)) < 0) {
        h->c.store_errors++;
        return e;
    }
    h->c.dispatch_created++;
    recent_add(h, &d);
    publish_dispatch(h, d.site_id, d.id, d.asset_id, DISPATCH_QUEUED);
    snprintf(id, STORE_ID_MAX, "%s", d.id);
    struct session *s =
        asset ? registry_asset(h->reg, asset->index) : registry_site(h->reg, site->index);
    *state = DISPATCH_QUEUED;
    if (s && send_setpoint(h, s, &d, now_ms) == 0)
        *state = DISPATCH_SENT;
    else if (h->wake && announce(h, d.id) == 0)
        log_event(LOG_INFO,
                  "event=dispatch_announced setpoint=%s site=%s asset=%s power_w=%.1f ttl_s=%d "
                  "holder=%s reason=\"no stream of this headend serves the target\"",
                  d.id, d.site_id, nz(d.asset_id), power_w, ttl_s,
                  h->remote[site->index].held ? h->remote[site->index].node_id : "-");
    else
        log_event(LOG_INFO,
                  "event=dispatch_queued setpoint=%s site=%s asset=%s power_w=%.1f ttl_s=%d "
                  "reason=\"no stream serves the target\"",
                  d.id, d.site_id, nz(d.asset_id), power_w, ttl_s);
    return 0;
}

int hub_ping(struct hub *h, const char *gateway_id, int64_t now_ms, uint64_t *nonce)
{
    for (size_t i = 0; i < inventory_site_count(h->inv); i++) {
        struct session *s = registry_site(h->reg, i);
        if (s && s->pong && !strcmp(s->gateway_id, gateway_id)) {
            send_ping(h, s, now_ms);
            *nonce = s->ping_nonce;
            return 0;
        }
    }
    return -ENOENT;
}

int hub_config_put(struct hub *h, size_t site_idx, const char *json, const char *who,
                   int64_t now_ms, int64_t *version, char *err, size_t errlen, char *field,
                   size_t fieldlen)
{
    const struct inv_site *site = inventory_site_at(h->inv, site_idx);
    if (!site)
        return -ENOENT;
    /* the gateway's own checks: a version stored here is one the gateway can run */
    int e = confsync_check(json, err, errlen, field, fieldlen);
    if (e)
        return e;
    static struct store_config c; /* 16 KB; the hub's lock serialises every caller */
    memset(&c, 0, sizeof(c));
    e = h->st->ops->config_get(h->st, site->id, &c);
    if (e < 0 && e != -ENOENT) {
        h->c.store_errors++;
        return e;
    }
    c.version = e == -ENOENT ? 1 : c.version + 1;
    snprintf(c.site_id, sizeof(c.site_id), "%s", site->id);
    snprintf(c.updated_by, sizeof(c.updated_by), "%s", who ? who : "");
    snprintf(c.json, sizeof(c.json), "%s", json);
    c.updated_ms = now_ms;
    if ((e = h->st->ops->config_put(h->st, &c)) < 0) {
        if (e != -EAGAIN)
            h->c.store_errors++;
        return e;
    }
    *version = c.version;
    log_event(LOG_INFO, "event=config_desired site=%s version=%lld by=%s", site->id,
              (long long)c.version, nz(who));
    struct session *s = registry_site(h->reg, site_idx);
    if (s)
        push_config(h, s, now_ms);
    else /* another headend may hold the stream: it pushes (hub_cluster_config) */
        note(h, site_idx, HUB_NOTE_CONFIG);
    return 0;
}

struct alerts *hub_alerts(const struct hub *h)
{
    return h->alerts;
}

void hub_webhook_stats(const struct hub *h, struct webhook_stats *out)
{
    webhook_get_stats(h->webhook, out);
}

const struct headend_config *hub_config(const struct hub *h)
{
    return &h->cfg;
}

const struct inventory *hub_inventory(const struct hub *h)
{
    return h->inv;
}

struct store *hub_store(struct hub *h)
{
    return h->st;
}

const struct registry *hub_registry(const struct hub *h)
{
    return h->reg;
}

const struct asset_state *hub_asset_state(const struct hub *h, size_t asset_idx)
{
    return &h->assets[asset_idx];
}

const struct site_state *hub_site_state(const struct hub *h, size_t site_idx)
{
    return &h->sites[site_idx];
}

const struct hub_counters *hub_counters(const struct hub *h)
{
    return &h->c;
}

size_t hub_streams(const struct hub *h)
{
    return h->streams;
}
