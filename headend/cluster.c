/* cluster: the LISTEN/NOTIFY routing and the presence table (headend/cluster.h).
 *
 * The thread waits in poll() on two descriptors: the connection's socket (a notification
 * arrived) and a pipe the hub writes when it has something for us (hub_wake_fn: a dispatch
 * to announce, a session registered or ended); the timeout is the next heartbeat. Each turn:
 * the notifications read, the hub's announcements and its held sites taken under the hub
 * lock, the database work done without it (the hub never waits for PostgreSQL on our
 * account), then the others' presence and the announced dispatches handed to the hub under
 * the lock again. Every statement has a deadline (CALL_MS); a lost connection is dropped and
 * made again at most once a second.
 *
 * Times in the cluster tables are the database's clock (clock_timestamp()), the one clock all
 * headends sharing it agree on; the hub's own times are never compared across machines. */
#include "headend/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "common/log.h"
#include "common/rtclock.h"
#include "headend/session.h"
#include "headend/sites.h"

#define CHANNEL        "derloop_dispatch"
#define CHANNEL_ESTOP  "derloop_estop"  /* payload: a site id; the state is site_estop's row */
#define CHANNEL_CONFIG "derloop_config" /* payload: a site id; the version is site_config's */
/* payload: a command id; the command is the commands row (QUEUED). In the hub's announce
 * queue and in got a command id carries the prefix '!' (never the first byte of an id). */
#define CHANNEL_COMMAND "derloop_command"
#define CALL_MS         5000
#define RECONNECT_MS    1000
#define ANNOUNCE_BATCH  1024
/* Announced ids resolved per turn (one query, without the hub lock), and the most kept
 * waiting: a flood of NOTIFYs from any client of the database costs one query per batch and
 * never holds the hub; beyond GOT_MAX the rest are dropped and a sweep finds the real ones. */
#define RESOLVE_BATCH 2048
#define GOT_MAX       65536
#define SWEEP_BEATS   5 /* every this many heartbeats: the QUEUED rows of our sites */
#define NOW_MS        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint"

/* A growing text buffer (PostgreSQL array literals). */
struct buf {
    char *p;
    size_t n, cap;
    int oom;
};

static void buf_add(struct buf *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0;
}

static void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* An empty text[] literal to add elements to (arr_text), closed with buf_str(b, "}"). */
static void buf_open(struct buf *b)
{
    b->n = 0;
    b->oom = 0;
    buf_str(b, "{");
}

/* One element of a text[] literal: quoted, with " and \ escaped. */
static void arr_text(struct buf *b, const char *s)
{
    buf_add(b, b->n > 1 ? ",\"" : "\"", b->n > 1 ? 2 : 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_add(b, "\\", 1);
        buf_add(b, s, 1);
    }
    buf_add(b, "\"", 1);
}

static void arr_int(struct buf *b, long long v)
{
    char t[32];
    int n = snprintf(t, sizeof(t), "%s%lld", b->n > 1 ? "," : "", v);
    buf_add(b, t, (size_t)n);
}

/* Held sites taken from the hub for one presence write. */
struct held {
    struct buf sites, gateways, sessions, since, views;
    size_t n;
};

static void held_reset(struct held *x)
{
    struct buf *all[] = {&x->sites, &x->gateways, &x->sessions, &x->since, &x->views};
    for (size_t i = 0; i < 5; i++) {
        all[i]->n = 0;
        all[i]->oom = 0;
        buf_str(all[i], "{");
    }
    x->n = 0;
}

static void held_free(struct held *x)
{
    free(x->sites.p);
    free(x->gateways.p);
    free(x->sessions.p);
    free(x->since.p);
    free(x->views.p);
}

struct cluster {
    struct hub *h;
    char *conninfo;
    char node[INV_ID_MAX];
    int heartbeat_ms, expiry_ms;
    PGconn *conn;
    int down;    /* logged once per outage */
    int rescan;  /* re-scan QUEUED dispatches after this (re)connect */
    int wake[2]; /* the hub's wake-up pipe */
    atomic_int stop;
    pthread_t th;
    int started;
    int64_t next_beat_ms, next_connect_ms;
    uint64_t beats;
    char (*ann)[STORE_ID_MAX];     /* announcements taken from the hub */
    char (*got)[STORE_ID_MAX + 1]; /* notifications received ('!': a command id) */
    size_t n_got, cap_got;
    int force_sweep; /* notifications were dropped (GOT_MAX): sweep at the next turn */
    PGresult *cmds;  /* resolve's commands rows (their JSON) for the hub */
    struct held held;
    /* the emergency stops and configuration pushes (hub_cluster_take_notes, the channels
     * derloop_estop and derloop_config): site indices and HUB_NOTE_* taken from the hub, and
     * the site ids announced by others */
    size_t *note_site;
    unsigned *note_kind;
    size_t n_site;      /* sites of the inventory */
    struct buf note_ch; /* text[] literals: the channels and the payloads to announce */
    struct buf note_pl;
    struct buf got_estop; /* text[] literal of the sites announced on derloop_estop */
    int64_t *cfg_seen;    /* per site: the desired version a sweep last handed to the hub */
    size_t n_notes, n_got_estop;
    size_t *got_config; /* site indices announced on derloop_config */
    size_t n_got_config;
};

static int64_t mono_ms(void)
{
    return rtclock_monotonic_ms();
}

static void on_wake(void *ctx)
{
    struct cluster *c = ctx;
    char x = 1;
    if (write(c->wake[1], &x, 1) < 0) { /* full pipe: a wake-up is pending already */
    }
}

/* libpq's messages on one line, for a log value. */
static const char *one_line(const char *msg, char *dst, size_t len)
{
    size_t n = 0;
    for (; msg && *msg && n + 1 < len; msg++)
        dst[n++] = *msg == '\n' || *msg == '\r' || *msg == '"' ? ' ' : *msg;
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = 0;
    return dst;
}

/* Server messages (a FATAL at shutdown) go to the log, not to stderr. */
static void on_notice(void *arg, const char *message)
{
    struct cluster *c = arg;
    char m[256];
    log_event(LOG_WARN, "event=cluster_notice node=%s message=\"%s\"", c->node,
              one_line(message, m, sizeof(m)));
}

static void drop(struct cluster *c, const char *op)
{
    char m[256];
    if (!c->down)
        log_event(LOG_ERROR,
                  "event=cluster_down node=%s op=%s error=\"%s\" reason=\"no dispatch crosses "
                  "to or from the other headends until PostgreSQL answers again\"",
                  c->node, op,
                  one_line(c->conn ? PQerrorMessage(c->conn) : "no connection", m, sizeof(m)));
    c->down = 1;
    PQfinish(c->conn);
    c->conn = NULL;
    c->next_connect_ms = mono_ms() + RECONNECT_MS;
}

/* One statement with text parameters, at most CALL_MS; NULL (connection dropped) on failure. */
static PGresult *call(struct cluster *c, const char *op, const char *sql, int n,
                      const char *const *val)
{
    if (!c->conn)
        return NULL;
    if (!PQsendQueryParams(c->conn, sql, n, NULL, val, NULL, NULL, 0)) {
        drop(c, op);
        return NULL;
    }
    int64_t deadline = mono_ms() + CALL_MS;
    PGresult *keep = NULL, *r;
    for (;;) {
        while (PQisBusy(c->conn)) {
            int64_t left = deadline - mono_ms();
            struct pollfd p = {.fd = PQsocket(c->conn), .events = POLLIN};
            if (left <= 0 || (poll(&p, 1, (int)left) < 0 && errno != EINTR) ||
                !PQconsumeInput(c->conn)) {
                PQclear(keep);
                drop(c, op);
                return NULL;
            }
        }
        if (!(r = PQgetResult(c->conn)))
            break;
        PQclear(keep);
        keep = r;
    }
    ExecStatusType st = keep ? PQresultStatus(keep) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char m[256];
        log_event(
            LOG_ERROR, "event=cluster_error node=%s op=%s error=\"%s\"", c->node, op,
            one_line(keep ? PQresultErrorMessage(keep) : PQerrorMessage(c->conn), m, sizeof(m)));
        PQclear(keep);
        if (PQstatus(c->conn) != CONNECTION_OK)
            drop(c, op);
        return NULL;
    }
    return keep;
}

static int exec_ok(struct cluster *c, const char *op, const char *sql, int n,
                   const char *const *val)
{
    PGresult *r = call(c, op, sql, n, val);
    PQclear(r);
    return r ? 0 : -EIO;
}

static int connect_db(struct cluster *c, char *err, size_t errlen)
{
    const char *kw[] = {"connect_timeout",  "keepalives",
                        "keepalives_idle",  "keepalives_interval",
                        "keepalives_count", "fallback_application_name",
                        "dbname",           NULL};
    const char *val[] = {"5", "1", "10", "5", "3", "der-headend-cluster", c->conninfo, NULL};
    c->conn = PQconnectdbParams(kw, val, 1);
    if (c->conn)
        PQsetNoticeProcessor(c->conn, on_notice, c);
    if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", c->conn ? PQerrorMessage(c->conn) : "out of memory");
        drop(c, "connect");
        return -ENOTCONN;
    }
    if (exec_ok(c, "listen", "LISTEN " CHANNEL, 0, NULL) < 0 ||
        exec_ok(c, "listen", "LISTEN " CHANNEL_ESTOP, 0, NULL) < 0 ||
        exec_ok(c, "listen", "LISTEN " CHANNEL_CONFIG, 0, NULL) < 0 ||
        exec_ok(c, "listen", "LISTEN " CHANNEL_COMMAND, 0, NULL) < 0) {
        snprintf(err, errlen, "LISTEN failed");
        if (c->conn) /* connected but not listening is worse than reconnecting */
            drop(c, "listen");
        return -EIO;
    }
    if (c->down)
        log_event(LOG_INFO,
                  "event=cluster_up node=%s reason=\"reconnected; re-scanning queued "
                  "dispatches (announcements sent meanwhile are lost)\"",
                  c->node);
    c->down = 0;
    c->rescan = 1;
    c->next_beat_ms = 0;
    return 0;
}

/* The fleet-view row of a held site as the others will show it. */
static char *view_json(struct hub *h, size_t i, const struct session *s, int64_t now_ms)
{
    const struct site_state *ss = hub_site_state(h, i);
    const struct site_agg *g = &ss->agg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "last_seen_ms", (double)s->last_seen_ms);
    cJSON_AddBoolToObject(o, "stale",
                          now_ms - s->last_seen_ms > hub_config(h)->presence_timeout_ms);
    cJSON_AddNumberToObject(o, "setpoints", sites_active_setpoints(ss, now_ms));
    const char *k[] = {"grid_w", "pv_w", "battery_w", "soc_mean", "ev_w", "boiler_w"};
    double v[] = {g->grid_w, g->pv_w, g->battery_w, g->soc_mean, g->ev_w, g->boiler_w};
    for (size_t j = 0; j < 6; j++)
        if (isfinite(v[j]))
            cJSON_AddNumberToObject(o, k[j], v[j]);
    cJSON_AddNumberToObject(o, "updated_ms", (double)g->updated_ms);
    if (ss->has_reported) { /* what the gateway runs and holds, for GET on the others */
        cJSON *p = cJSON_AddObjectToObject(o, "config");
        cJSON_AddNumberToObject(p, "version", (double)ss->reported_version);
        cJSON_AddStringToObject(p, "status", ss->reported_status);
        cJSON_AddStringToObject(p, "detail", ss->reported_detail);
        cJSON_AddNumberToObject(p, "at_ms", (double)ss->reported_ms);
    }
    cJSON *e = cJSON_AddObjectToObject(o, "estop");
    cJSON_AddBoolToObject(e, "capable", ss->estop_capable);
    if (ss->estop_has_reported) {
        cJSON_AddBoolToObject(e, "active", ss->estop_reported_active);
        cJSON_AddNumberToObject(e, "at_ms", (double)ss->estop_reported_ms);
    }
    char *t = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return t;
}

/* Under the hub lock: the announcements, and the sites this headend holds now. */
static size_t take_from_hub(struct cluster *c, int held, int64_t now_ms)
{
    struct hub *h = c->h;
    size_t n = hub_cluster_take(h, c->ann, ANNOUNCE_BATCH);
    if (!held) /* the held sites only for a presence write: a notification burst skips them */
        return n;
    held_reset(&c->held);
    const struct inventory *inv = hub_inventory(h);
    for (size_t i = 0; i < inventory_site_count(inv); i++) {
        const struct session *s = registry_site(hub_registry(h), i);
        if (!s)
            continue;
        char *v = view_json(h, i, s, now_ms);
        arr_text(&c->held.sites, inventory_site_at(inv, i)->id);
        arr_text(&c->held.gateways, s->gateway_id);
        arr_int(&c->held.sessions, (long long)s->id);
        arr_int(&c->held.since, (long long)s->started_ms);
        arr_text(&c->held.views, v ? v : "{}");
        cJSON_free(v);
        c->held.n++;
    }
    struct buf *all[] = {&c->held.sites, &c->held.gateways, &c->held.sessions, &c->held.since,
                         &c->held.views};
    for (size_t j = 0; j < 5; j++)
        buf_str(all[j], "}");
    return n;
}

/* Under the hub lock: the sites whose stop or desired configuration changed here, as
 * (channel, site id) pairs for announce. */
static void take_notes(struct cluster *c)
{
    const struct inventory *inv = hub_inventory(c->h);
    c->n_notes = hub_cluster_take_notes(c->h, c->note_site, c->note_kind, c->n_site);
    buf_open(&c->note_ch);
    buf_open(&c->note_pl);
    for (size_t i = 0; i < c->n_notes; i++) {
        const char *id = inventory_site_at(inv, c->note_site[i])->id;
        if (c->note_kind[i] & HUB_NOTE_ESTOP) {
            arr_text(&c->note_ch, CHANNEL_ESTOP);
            arr_text(&c->note_pl, id);
        }
        if (c->note_kind[i] & HUB_NOTE_CONFIG) {
            arr_text(&c->note_ch, CHANNEL_CONFIG);
            arr_text(&c->note_pl, id);
        }
    }
    buf_str(&c->note_ch, "}");
    buf_str(&c->note_pl, "}");
}

static void announce(struct cluster *c, size_t n)
{
    if (!n)
        return;
    struct buf b = {0};
    buf_str(&b, "{");
    for (size_t i = 0; i < n; i++)
        arr_text(&b, c->ann[i]);
    buf_str(&b, "}");
    const char *v[] = {b.p};
    /* one round trip for the batch; NOTIFY is delivered when this statement commits */
    if (!b.oom &&
        exec_ok(c, "notify",
                "SELECT CASE WHEN left(x, 1) = '!' THEN pg_notify('" CHANNEL_COMMAND
                "', substr(x, 2)) ELSE pg_notify('" CHANNEL "', x) END FROM unnest($1::text[]) x",
                1, v) == 0)
        log_event(LOG_DEBUG, "event=cluster_announce node=%s count=%zu", c->node, n);
    free(b.p);
}

/* The stops and configuration changes taken by take_notes: one NOTIFY per (channel, site).
 * Lost (connection down): the others' re-scan at reconnect or their next sweep finds them. */
static void announce_notes(struct cluster *c)
{
    if (!c->n_notes || c->note_ch.oom || c->note_pl.oom)
        return;
    const char *v[] = {c->note_ch.p, c->note_pl.p};
    if (exec_ok(c, "notify",
                "SELECT pg_notify(ch, x) FROM unnest($1::text[], $2::text[]) AS u(ch, x)", 2,
                v) == 0)
        log_event(LOG_DEBUG, "event=cluster_announce_sites node=%s count=%zu", c->node, c->n_notes);
    c->n_notes = 0;
}

/* Heartbeat, our presence rows, and the others' (returned for the hub). */
static PGresult *sync_presence(struct cluster *c)
{
    char exp[32];
    snprintf(exp, sizeof(exp), "%d", c->expiry_ms);
    const char *v1[] = {c->node, exp};
    if (exec_ok(c, "heartbeat",
                "INSERT INTO cluster_nodes(node_id, started_ms, heartbeat_ms, expires_ms) "
                "VALUES($1, " NOW_MS ", " NOW_MS ", " NOW_MS " + $2::bigint) ON CONFLICT(node_id) "
                "DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms, expires_ms = "
                "excluded.expires_ms",
                2, v1) < 0)
        return NULL;
    if (c->held.sites.oom || c->held.gateways.oom || c->held.sessions.oom || c->held.since.oom ||
        c->held.views.oom)
        return NULL;
    const char *v2[] = {c->node,         c->held.sites.p, c->held.gateways.p, c->held.sessions.p,
                        c->held.since.p, c->held.views.p};
    /* the newest session of a site wins (a gateway that moved while its old headend still
     * had the stream open), by sessions.id: one sequence in this database, so no headend's
     * clock decides (FINDINGS 24); a row of a headend gone is taken over whatever its age */
    if (exec_ok(c, "presence",
                "INSERT INTO cluster_presence(site_id, node_id, gateway_id, session_id, since_ms, "
                "view) SELECT s, $1, g, i, t, v FROM unnest($2::text[], $3::text[], "
                "$4::bigint[], $5::bigint[], $6::text[]) AS u(s, g, i, t, v) "
                "ON CONFLICT(site_id) DO UPDATE SET node_id = excluded.node_id, gateway_id = "
                "excluded.gateway_id, session_id = excluded.session_id, since_ms = "
                "excluded.since_ms, view = excluded.view WHERE cluster_presence.node_id = "
                "excluded.node_id OR cluster_presence.session_id <= excluded.session_id OR NOT "
                "EXISTS (SELECT 1 FROM cluster_nodes n WHERE n.node_id = "
                "cluster_presence.node_id AND n.expires_ms > " NOW_MS ")",
                6, v2) < 0)
        return NULL;
    const char *v3[] = {c->node, c->held.sites.p};
    if (exec_ok(c, "release",
                "DELETE FROM cluster_presence WHERE node_id = $1 AND NOT (site_id = "
                "ANY($2::text[]))",
                2, v3) < 0)
        return NULL;
    /* sessions a headend gone left open: ended, as that headend would have at its restart */
    const char *v4[] = {c->node};
    if (exec_ok(c, "reap",
                "UPDATE sessions SET ended_ms = " NOW_MS ", reason = 'headend ' || node_id || "
                "' gone (its heartbeat expired)' WHERE ended_ms = 0 AND node_id <> '' AND "
                "node_id <> $1 AND node_id NOT IN (SELECT node_id FROM cluster_nodes WHERE "
                "expires_ms > " NOW_MS ")",
                1, v4) < 0)
        return NULL;
    return call(c, "presence_read",
                "SELECT p.site_id, p.node_id, p.gateway_id, p.since_ms, p.view, "
                "COALESCE(n.expires_ms > " NOW_MS ", false), p.session_id FROM cluster_presence p "
                "LEFT JOIN cluster_nodes n USING (node_id) WHERE p.node_id <> $1",
                1, v4);
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

/* A time of a presence row's view as int64, range-checked before the cast (FINDINGS 27: a
 * cast of a double beyond int64 is undefined): 0 unless finite and within 0..2^53 ms. */
static int64_t jms(const cJSON *o, const char *k)
{
    double v = jnum(o, k);
    return isfinite(v) && v >= 0 && v <= 9007199254740992.0 ? (int64_t)v : 0;
}

/* Under the hub lock: the others' rows into the hub's per-site remote view. */
static void apply_presence(struct cluster *c, PGresult *r, int64_t now_ms)
{
    struct hub *h = c->h;
    const struct inventory *inv = hub_inventory(h);
    for (size_t i = 0; i < inventory_site_count(inv); i++)
        memset(hub_site_remote(h, i), 0, sizeof(struct site_remote));
    for (int row = 0; row < PQntuples(r); row++) {
        const struct inv_site *site = inventory_site(inv, PQgetvalue(r, row, 0));
        if (!site)
            continue; /* not in this headend's inventory */
        struct site_remote *rm = hub_site_remote(h, site->index);
        rm->known = 1;
        rm->held = PQgetvalue(r, row, 5)[0] == 't';
        snprintf(rm->node_id, sizeof(rm->node_id), "%s", PQgetvalue(r, row, 1));
        snprintf(rm->gateway_id, sizeof(rm->gateway_id), "%s", PQgetvalue(r, row, 2));
        rm->since_ms = strtoll(PQgetvalue(r, row, 3), NULL, 10);
        cJSON *v = cJSON_Parse(PQgetvalue(r, row, 4));
        rm->session_id = strtoll(PQgetvalue(r, row, 6), NULL, 10);
        rm->last_seen_ms = jms(v, "last_seen_ms");
        rm->stale = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "stale"));
        double sp = jnum(v, "setpoints");
        rm->setpoints = isfinite(sp) && sp > 0 ? sp < 1e6 ? (unsigned)sp : 1000000u : 0;
        rm->agg = (struct site_agg){jnum(v, "grid_w"),
                                    jnum(v, "pv_w"),
                                    jnum(v, "battery_w"),
                                    jnum(v, "ev_w"),
                                    jnum(v, "boiler_w"),
                                    jnum(v, "soc_mean"),
                                    0};
        rm->agg.updated_ms = jms(v, "updated_ms");
        const cJSON *cf = cJSON_GetObjectItemCaseSensitive(v, "config");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(cf, "status");
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(cf, "detail");
        if (isfinite(jnum(cf, "version")) && cJSON_IsString(st) && cJSON_IsString(dt)) {
            rm->has_reported = 1;
            rm->reported_version = jms(cf, "version");
            rm->reported_ms = jms(cf, "at_ms");
            snprintf(rm->reported_status, sizeof(rm->reported_status), "%s", st->valuestring);
            snprintf(rm->reported_detail, sizeof(rm->reported_detail), "%s", dt->valuestring);
        }
        const cJSON *es = cJSON_GetObjectItemCaseSensitive(v, "estop");
        const cJSON *ea = cJSON_GetObjectItemCaseSensitive(es, "active");
        rm->estop_capable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(es, "capable"));
        if (cJSON_IsBool(ea)) {
            rm->estop_has_reported = 1;
            rm->estop_reported_active = cJSON_IsTrue(ea);
            rm->estop_reported_ms = jms(es, "at_ms");
        }
        cJSON_Delete(v);
        /* split brain: the gateway registered again on a live headend while our stream to
         * it is still open (half-open): the newer session wins, ours is closed */
        if (rm->held && hub_cluster_superseded(h, site->index, rm->node_id, rm->session_id, now_ms))
            log_event(LOG_WARN,
                      "event=cluster_superseded node=%s site=%s by=%s session=%lld "
                      "reason=\"the gateway registered again on another headend; our stream to "
                      "it is stale\"",
                      c->node, site->id, rm->node_id, (long long)rm->session_id);
    }
}

static void got_add(struct cluster *c, const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len >= STORE_ID_MAX + (id[0] == '!'))
        return; /* names no dispatch: ids are shorter (the payload is anyone's) */
    if (c->n_got >= GOT_MAX) {
        c->force_sweep = 1;
        return;
    }
    if (c->n_got == c->cap_got) {
        size_t cap = c->cap_got ? c->cap_got * 2 : 256;
        char(*g)[STORE_ID_MAX + 1] = realloc(c->got, cap * sizeof(*g));
        if (!g)
            return; /* the next sweep is the backstop */
        c->got = g;
        c->cap_got = cap;
    }
    snprintf(c->got[c->n_got++], sizeof(*c->got), "%s", id);
}

/* The QUEUED, unexpired dispatches of the sites we hold, handed to the hub as if announced:
 * whatever lost an announcement (the announcing headend died between its row and its NOTIFY,
 * a failed NOTIFY, our connection down meanwhile) is sent within SWEEP_BEATS heartbeats. One
 * indexed query, no hub lock. */
static void sweep(struct cluster *c, int64_t now_ms)
{
    if (!c->held.n || c->held.sites.oom)
        return;
    (void)now_ms; /* expiry in the database's clock, as it was written (FINDINGS 23) */
    const char *v[] = {c->held.sites.p};
    PGresult *r = call(c, "sweep",
                       "SELECT id FROM dispatch WHERE state = 0 AND expires_ms > " NOW_MS
                       " AND site_id = ANY($1::text[]) ORDER BY seq",
                       1, v);
    for (int i = 0; r && i < PQntuples(r); i++)
        got_add(c, PQgetvalue(r, i, 0));
    if (r && PQntuples(r))
        log_event(LOG_DEBUG, "event=cluster_sweep node=%s queued=%d", c->node, PQntuples(r));
    PQclear(r);
    /* the QUEUED commands of our sites the same way (a lost derloop_command) */
    r = call(c, "sweep",
             "SELECT '!' || id FROM commands WHERE state = 0 AND site_id = ANY($1::text[]) "
             "ORDER BY created_ms, id",
             1, v);
    for (int i = 0; r && i < PQntuples(r); i++)
        got_add(c, PQgetvalue(r, i, 0));
    PQclear(r);
}

/* Up to RESOLVE_BATCH announced ids read in one query without the hub lock: only the rows
 * still QUEUED and not expired in the database's clock (the one clock every headend shares;
 * expires_ms is written in it: store_pg.c), so a bogus id costs nothing under the lock and a
 * skewed local clock decides nothing. The ids read are removed from got; NULL when there
 * were none or the query failed (the re-scan at reconnect, or the sweep, covers them). */
static PGresult *resolve(struct cluster *c)
{
    size_t n = c->n_got < RESOLVE_BATCH ? c->n_got : RESOLVE_BATCH;
    if (!n)
        return NULL;
    struct buf b = {0}, bc = {0};
    buf_open(&b);
    buf_open(&bc);
    size_t n_cmd = 0;
    for (size_t i = 0; i < n; i++) {
        if (c->got[i][0] == '!')
            n_cmd++, arr_text(&bc, c->got[i] + 1);
        else
            arr_text(&b, c->got[i]);
    }
    buf_str(&b, "}");
    buf_str(&bc, "}");
    memmove(c->got, c->got + n, (c->n_got - n) * sizeof(*c->got));
    c->n_got -= n;
    PGresult *r = NULL;
    const char *v[] = {b.p};
    if (n > n_cmd && !b.oom && c->conn)
        r = call(c, "resolve",
                 "SELECT id, seq, site_id, asset_id, power_w, created_ms, expires_ms, updated_ms, "
                 "state, session_id FROM dispatch WHERE id = ANY($1::text[]) AND state = 0 AND "
                 "expires_ms > " NOW_MS " ORDER BY seq",
                 1, v);
    const char *vc[] = {bc.p};
    PQclear(c->cmds);
    c->cmds = NULL;
    if (n_cmd && !bc.oom && c->conn)
        c->cmds = call(c, "resolve",
                       "SELECT json FROM commands WHERE id = ANY($1::text[]) AND state = 0 "
                       "ORDER BY created_ms, id",
                       1, vc);
    free(b.p);
    free(bc.p);
    return r;
}

/* One row of resolve's result. */
static void row_dispatch(const PGresult *r, int i, struct store_dispatch *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", PQgetvalue(r, i, 0));
    d->seq = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    snprintf(d->site_id, sizeof(d->site_id), "%s", PQgetvalue(r, i, 2));
    snprintf(d->asset_id, sizeof(d->asset_id), "%s", PQgetvalue(r, i, 3));
    d->power_w = strtod(PQgetvalue(r, i, 4), NULL);
    d->created_ms = strtoll(PQgetvalue(r, i, 5), NULL, 10);
    d->expires_ms = strtoll(PQgetvalue(r, i, 6), NULL, 10);
    d->updated_ms = strtoll(PQgetvalue(r, i, 7), NULL, 10);
    d->state = (int)strtol(PQgetvalue(r, i, 8), NULL, 10);
    d->session_id = strtoll(PQgetvalue(r, i, 9), NULL, 10);
}

static void collect_notifications(struct cluster *c)
{
    if (!c->conn)
        return;
    if (!PQconsumeInput(c->conn)) {
        drop(c, "listen");
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(c->conn))) {
        const struct inv_site *site = NULL;
        if (!strcmp(n->relname, CHANNEL_ESTOP)) {
            if (!c->n_got_estop++)
                buf_open(&c->got_estop);
            arr_text(&c->got_estop, n->extra);
        } else if (!strcmp(n->relname, CHANNEL_CONFIG)) {
            /* the inventory is fixed for the hub's life: read without the lock */
            site = inventory_site(hub_inventory(c->h), n->extra);
            if (site && c->n_got_config < c->n_site)
                c->got_config[c->n_got_config++] = site->index;
        } else if (!strcmp(n->relname, CHANNEL_COMMAND)) {
            char tag[STORE_ID_MAX + 1];
            if (n->extra[0] != '!' && strlen(n->extra) < STORE_ID_MAX) {
                snprintf(tag, sizeof(tag), "!%s", n->extra);
                got_add(c, tag);
            }
        } else if (n->extra[0] != '!') {
            got_add(c, n->extra);
        }
        PQfreemem(n);
    }
}

/* The shared stop rows: every row (all != 0: a re-scan or a sweep; one row per site ever
 * stopped) or those of the sites announced on derloop_estop. NULL when none asked or failed
 * (then the re-scan at reconnect covers them). */
static PGresult *fetch_estops(struct cluster *c, int all)
{
    PGresult *r = NULL;
    const char *cols = "SELECT site_id, active, id, reason, by_name, since_ms FROM site_estop";
    char sql[160];
    if (all) {
        r = call(c, "estop_read", cols, 0, NULL);
    } else if (c->n_got_estop) {
        buf_str(&c->got_estop, "}");
        snprintf(sql, sizeof(sql), "%s WHERE site_id = ANY($1::text[])", cols);
        const char *v[] = {c->got_estop.p};
        if (!c->got_estop.oom)
            r = call(c, "estop_read", sql, 1, v);
    }
    c->n_got_estop = 0;
    return r;
}

/* Under the hub lock: each stop row to the hub (sent when we hold the site). The count sent. */
static int apply_estops(struct cluster *c, PGresult *r, int64_t now_ms)
{
    int sent = 0;
    for (int i = 0; r && i < PQntuples(r); i++) {
        struct store_estop e = {.active = PQgetvalue(r, i, 1)[0] == 't',
                                .since_ms = strtoll(PQgetvalue(r, i, 5), NULL, 10)};
        snprintf(e.site_id, sizeof(e.site_id), "%s", PQgetvalue(r, i, 0));
        snprintf(e.id, sizeof(e.id), "%s", PQgetvalue(r, i, 2));
        snprintf(e.reason, sizeof(e.reason), "%s", PQgetvalue(r, i, 3));
        snprintf(e.by, sizeof(e.by), "%s", PQgetvalue(r, i, 4));
        e.updated_ms = e.since_ms;
        sent += hub_cluster_estop(c->h, &e, now_ms);
    }
    return sent;
}

/* The desired versions of the sites we hold (a re-scan or a sweep: a configuration
 * announcement lost). NULL when we hold none or the query failed. */
static PGresult *fetch_versions(struct cluster *c)
{
    if (!c->held.n || c->held.sites.oom)
        return NULL;
    const char *v[] = {c->held.sites.p};
    return call(c, "config_read",
                "SELECT site_id, version FROM site_config WHERE site_id = ANY($1::text[])", 1, v);
}

/* Under the hub lock: the announced sites, and the versions a sweep found that it did not
 * hand over yet, pushed where we hold the stream (push_config sends only a version the
 * gateway does not run). The count pushed. */
static int apply_configs(struct cluster *c, PGresult *r, int64_t now_ms)
{
    int pushed = 0;
    for (size_t i = 0; i < c->n_got_config; i++)
        pushed += hub_cluster_config(c->h, c->got_config[i], now_ms);
    c->n_got_config = 0;
    const struct inventory *inv = hub_inventory(c->h);
    for (int i = 0; r && i < PQntuples(r); i++) {
        const struct inv_site *site = inventory_site(inv, PQgetvalue(r, i, 0));
        int64_t v = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        if (!site || c->cfg_seen[site->index] == v)
            continue;
        c->cfg_seen[site->index] = v;
        pushed += hub_cluster_config(c->h, site->index, now_ms);
    }
    return pushed;
}

static int64_t wall_ms(void)
{
    return rtclock_wall_ms();
}

static void *run(void *arg)
{
    struct cluster *c = arg;
    while (!atomic_load(&c->stop)) {
        int64_t now = mono_ms();
        char err[256];
        if (!c->conn && now >= c->next_connect_ms)
            connect_db(c, err, sizeof(err));
        int64_t due = c->conn ? c->next_beat_ms : c->next_connect_ms;
        int timeout = due <= now ? 0 : due - now > 1000 ? 1000 : (int)(due - now);
        if (c->n_got && c->conn)
            timeout = 0; /* announced ids left from the last turn's batch */
        struct pollfd p[2] = {{.fd = c->wake[0], .events = POLLIN},
                              {.fd = c->conn ? PQsocket(c->conn) : -1, .events = POLLIN}};
        poll(p, 2, timeout);
        int woke = 0;
        char sink[64];
        while (read(c->wake[0], sink, sizeof(sink)) > 0)
            woke = 1;
        collect_notifications(c);
        now = mono_ms();
        int beat = c->conn && (woke || now >= c->next_beat_ms);

        hub_lock(c->h);
        size_t n_ann = 0;
        if (c->conn) {
            n_ann = take_from_hub(c, beat, wall_ms());
            take_notes(c);
        }
        hub_unlock(c->h);

        announce_notes(c); /* the stops first: the safety function */
        announce(c, n_ann);
        PGresult *pres = NULL;
        int state_sweep = 0;
        if (beat && c->conn) {
            pres = sync_presence(c);
            c->next_beat_ms = now + c->heartbeat_ms;
            if (pres && (++c->beats % SWEEP_BEATS == 0 || c->force_sweep)) {
                c->force_sweep = 0;
                sweep(c, wall_ms());
                state_sweep = 1;
            }
        }
        collect_notifications(c);   /* the ones that came in during our statements */
        if (c->rescan && c->conn) { /* announcements were lost meanwhile: read it all */
            state_sweep = 1;
            memset(c->cfg_seen, 0, c->n_site * sizeof(*c->cfg_seen));
        }
        PGresult *est = c->conn ? fetch_estops(c, state_sweep) : NULL;
        PGresult *ver = c->conn && state_sweep ? fetch_versions(c) : NULL;
        c->n_got_estop = 0;
        PGresult *disp = resolve(c);

        if (!pres && !disp && !c->cmds && !est && !ver && !c->n_got_config && !state_sweep &&
            !(c->rescan && c->conn))
            continue;
        hub_lock(c->h);
        int64_t wnow = wall_ms();
        if (pres)
            apply_presence(c, pres, wnow);
        if (state_sweep)
            hub_cluster_estop_retry(c->h);      /* ours that the store refused, before the rows */
        int stops = apply_estops(c, est, wnow); /* before the dispatches: the safety function */
        int pushed = apply_configs(c, ver, wnow);
        int sent = 0;
        int n_disp = disp ? PQntuples(disp) : 0;
        for (int i = 0; i < n_disp; i++) {
            struct store_dispatch d;
            row_dispatch(disp, i, &d);
            sent += hub_cluster_deliver(c->h, &d, wnow) == 1;
        }
        for (int i = 0; c->cmds && i < PQntuples(c->cmds); i++)
            sent += hub_cluster_command(c->h, PQgetvalue(c->cmds, i, 0), wnow) == 1;
        int rescanned = c->rescan && c->conn ? hub_cluster_rescan(c->h, wnow) : -1;
        hub_unlock(c->h);
        PQclear(est);
        PQclear(ver);
        if (stops || pushed)
            log_event(LOG_INFO, "event=cluster_routed node=%s estops_sent=%d configs_pushed=%d",
                      c->node, stops, pushed);
        if (rescanned >= 0) { /* else again at the next turn (the store may be reconnecting) */
            log_event(LOG_INFO, "event=cluster_rescan node=%s sent=%d", c->node, rescanned);
            c->rescan = 0;
        }
        if (sent)
            log_event(LOG_DEBUG, "event=cluster_delivered node=%s count=%d of=%d", c->node, sent,
                      n_disp);
        PQclear(disp);
        PQclear(c->cmds);
        c->cmds = NULL;
        PQclear(pres);
    }
    return NULL;
}

/* Another live headend with our name would delete our presence rows and we theirs: refused.
 * A row with our name whose heartbeat still looks live may be a predecessor killed moments
 * ago (a restart with the same --node-id): it is read again after two heartbeats, and only a
 * heartbeat that moved meanwhile means a live twin. 0, or -EEXIST with err. */
static int check_twin(struct cluster *c, char *err, size_t errlen)
{
    const char *v[] = {c->node};
    const char *sql = "SELECT heartbeat_ms FROM cluster_nodes WHERE node_id = $1 AND "
                      "expires_ms > " NOW_MS;
    PGresult *r = call(c, "twin", sql, 1, v);
    if (!r || PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    long long first = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    struct pollfd none = {.fd = -1};
    poll(&none, 0, 2 * c->heartbeat_ms + 100); /* a sleep without a clock read */
    r = call(c, "twin", sql, 1, v);
    long long again = r && PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : first;
    PQclear(r);
    if (again == first)
        return 0;
    snprintf(err, errlen,
             "--node-id %s: another headend with this id is alive (its heartbeat moved within "
             "%d ms); each headend on one database needs its own --node-id",
             c->node, 2 * c->heartbeat_ms + 100);
    return -EEXIST;
}

int cluster_check_node(const char *conninfo, const struct headend_config *cfg, char *err,
                       size_t errlen)
{
    struct cluster *c = calloc(1, sizeof(*c));
    if (!c || !(c->conninfo = strdup(conninfo))) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    snprintf(c->node, sizeof(c->node), "%.63s", cfg->node_id); /* config_check: < 64 */
    c->heartbeat_ms = cfg->cluster_heartbeat_ms;
    char why[256];
    int e = connect_db(c, why, sizeof(why));
    if (e < 0)
        snprintf(err, errlen, "cluster connection to PostgreSQL: %s", why);
    else
        e = check_twin(c, err, errlen);
    PQfinish(c->conn); /* nothing written: a live twin's rows are not ours to touch */
    free(c->conninfo);
    free(c);
    return e;
}

int cluster_start(struct hub *h, const char *conninfo, struct cluster **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    struct cluster *c = calloc(1, sizeof(*c));
    if (c)
        c->wake[0] = c->wake[1] = -1; /* before any cluster_stop: 0 is stdin */
    if (!c || !(c->conninfo = strdup(conninfo)) ||
        !(c->ann = calloc(ANNOUNCE_BATCH, sizeof(*c->ann)))) {
        snprintf(err, errlen, "out of memory");
        cluster_stop(c);
        return -ENOMEM;
    }
    c->h = h;
    hub_lock(h);
    c->n_site = inventory_site_count(hub_inventory(h));
    hub_unlock(h);
    c->note_site = calloc(c->n_site + 1, sizeof(*c->note_site));
    c->note_kind = calloc(c->n_site + 1, sizeof(*c->note_kind));
    c->got_config = calloc(c->n_site + 1, sizeof(*c->got_config));
    c->cfg_seen = calloc(c->n_site + 1, sizeof(*c->cfg_seen));
    if (!c->note_site || !c->note_kind || !c->got_config || !c->cfg_seen) {
        snprintf(err, errlen, "out of memory");
        cluster_stop(c);
        return -ENOMEM;
    }
    hub_lock(h);
    snprintf(c->node, sizeof(c->node), "%.63s", hub_node_id(h));
    c->heartbeat_ms = hub_config(h)->cluster_heartbeat_ms;
    c->expiry_ms = hub_config(h)->cluster_expiry_ms;
    hub_unlock(h);
    char why[256];
    if (pipe(c->wake) < 0 || fcntl(c->wake[0], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(c->wake[1], F_SETFL, O_NONBLOCK) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        cluster_stop(c);
        return -EIO;
    }
    if (connect_db(c, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "cluster connection to PostgreSQL: %s", why);
        cluster_stop(c);
        return -ENOTCONN;
    }

    /* the stops in the shared rows before any gateway can register here: a stop this headend
     * does not know would be adopted from the gateway's Register and overwrite the row */
    PGresult *est = fetch_estops(c, 1);
    if (!est) {
        snprintf(err, errlen, "cluster: cannot read the emergency stops (site_estop)");
        cluster_stop(c);
        return -EIO;
    }
    hub_lock(h);
    apply_estops(c, est, wall_ms());
    hub_cluster_attach(h, on_wake, c);
    hub_unlock(h);
    PQclear(est);
    if (pthread_create(&c->th, NULL, run, c) != 0) {
        snprintf(err, errlen, "cannot start the cluster thread");
        cluster_stop(c);
        return -EAGAIN;
    }
    c->started = 1;
    log_event(LOG_INFO, "event=cluster_start node=%s heartbeat_ms=%d expiry_ms=%d channel=%s",
              c->node, c->heartbeat_ms, c->expiry_ms, CHANNEL);
    *out = c;
    return 0;
}

void cluster_stop(struct cluster *c)
{
    if (!c)
        return;
    if (c->h) {
        hub_lock(c->h);
        hub_cluster_attach(c->h, NULL, NULL);
        hub_unlock(c->h);
    }
    atomic_store(&c->stop, 1);
    if (c->started) {
        on_wake(c);
        pthread_join(c->th, NULL);
    }
    if (c->conn) { /* our sites are free for the others now, not after the expiry */
        const char *v[] = {c->node};
        exec_ok(c, "leave", "DELETE FROM cluster_presence WHERE node_id = $1", 1, v);
        exec_ok(c, "leave", "DELETE FROM cluster_nodes WHERE node_id = $1", 1, v);
    }
    PQfinish(c->conn);
    if (c->wake[0] >= 0)
        close(c->wake[0]);
    if (c->wake[1] >= 0)
        close(c->wake[1]);
    held_free(&c->held);
    free(c->note_site);
    free(c->note_kind);
    free(c->got_config);
    free(c->cfg_seen);
    free(c->note_ch.p);
    free(c->note_pl.p);
    free(c->got_estop.p);
    free(c->ann);
    free(c->got);
    PQclear(c->cmds);
    free(c->conninfo);
    free(c);
}
