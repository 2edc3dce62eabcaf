/* store: the headend's durable records (sessions, telemetry, dispatches with their acks and
 * allocations, REST tokens, the audit trail and each site's desired configuration, the gateways'
 * decisions) behind one small interface, a struct of function pointers per backend (store_sqlite.c,
 * store_pg.c). Records are plain values copied in and out; callbacks see records valid only during
 * the call. A store is used by one thread at a time (the headend serialises access with its lock).
 */
#ifndef HEADEND_STORE_H
#define HEADEND_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_ID_MAX      64
#define STORE_TEXT_MAX    160
#define STORE_DETAILS_MAX 256

/* Dispatch states: QUEUED (no stream yet) and SENT are ours; the rest are the gateway's acks
 * (der.v1.SetpointAck.State numbers + 100 keep them apart from ours). */
enum dispatch_state {
    DISPATCH_QUEUED = 0,
    DISPATCH_SENT = 1,
    DISPATCH_RECEIVED = 101,
    DISPATCH_APPLIED = 102,
    DISPATCH_REJECTED = 103,
    DISPATCH_EXPIRED = 104,
    DISPATCH_FAILED = 105,
};

struct store_session {
    int64_t id; /* assigned by session_start */
    char gateway_id[STORE_ID_MAX];
    char site_id[STORE_ID_MAX];
    char peer[STORE_ID_MAX];
    int64_t started_ms;
    int64_t ended_ms; /* 0 while open */
    char reason[STORE_TEXT_MAX];
};

struct store_telemetry {
    char asset_id[STORE_ID_MAX];
    int64_t ts_ms;       /* gateway clock */
    int64_t received_ms; /* headend clock */
    uint64_t seq;
    double power_w;
    double setpoint_w; /* NaN when none */
    double soc;        /* NaN unless a battery */
    int online;
    char status[STORE_ID_MAX];
    /* The type-specific details of the sample as a JSON object (StorageDetails, PvDetails,
     * MeterDetails, EvseDetails, BoilerDetails: {"type":"meter","frequency_hz":50.01,...});
     * "" = none. Kept whole so an export has everything the gateway sent. */
    char details[STORE_DETAILS_MAX];
};

struct store_dispatch {
    char id[STORE_ID_MAX];
    int64_t seq; /* creation order; delivery order on reconnect */
    char site_id[STORE_ID_MAX];
    char asset_id[STORE_ID_MAX]; /* empty for a site dispatch */
    double power_w;
    int64_t created_ms;
    int64_t expires_ms;
    int64_t updated_ms;
    int state; /* enum dispatch_state */
    char detail[STORE_TEXT_MAX];
    int64_t session_id;              /* the session it was last sent on; 0 = never sent */
    char requested_by[STORE_ID_MAX]; /* the REST caller (token name); "" = not recorded */
};

struct store_alloc {
    char asset_id[STORE_ID_MAX];
    double power_w;
};

struct store_ack {
    int state;
    char detail[STORE_TEXT_MAX];
    int64_t at_ms;
};

#define STORE_ROLE_MAX 16
#define STORE_HEX_MAX  72 /* a SHA-256 in hex (64) and its NUL */

/* A REST bearer token (headend/auth.h): never the secret, only a salted hash of it. */
struct store_token {
    char id[STORE_ID_MAX];   /* the public part of the token, the lookup key */
    char name[STORE_ID_MAX]; /* unique among tokens not revoked */
    char role[STORE_ROLE_MAX];
    char salt[STORE_HEX_MAX]; /* hex */
    char hash[STORE_HEX_MAX]; /* hex SHA-256(salt || secret) */
    int64_t created_ms;
    int64_t last_used_ms; /* 0 = never */
    int64_t revoked_ms;   /* 0 = valid */
};

/* One state-changing REST request: who, when, from where, what, and how it ended. */
struct store_audit {
    int64_t id; /* assigned by audit_add; the order of arrival */
    int64_t at_ms;
    char who[STORE_ID_MAX]; /* token name */
    char role[STORE_ROLE_MAX];
    char peer[STORE_ID_MAX];
    char method[STORE_ROLE_MAX];
    char path[STORE_TEXT_MAX];
    char summary[STORE_TEXT_MAX]; /* the body, shortened */
    int status;
    char detail[STORE_TEXT_MAX]; /* the error, or what was made (setpoint_id=...) */
};

#define STORE_CONFIG_MAX 16384 /* a desired configuration's JSON, with its NUL */

/* A site's desired configuration (docs/operations.md, "Remote configuration"): the JSON the
 * headend pushes to the site's gateway, and its version (1, 2, ... per site). */
struct store_config {
    char site_id[STORE_ID_MAX];
    int64_t version;
    int64_t updated_ms;
    char updated_by[STORE_ID_MAX]; /* the REST caller (token name); "" = not recorded */
    char json[STORE_CONFIG_MAX];
};

/* A site's emergency stop as the operators last set it, shared by several headends on one
 * database (docs/operations.md, "Several headends"): the headend that holds the site's
 * gateway stream sends it, every headend shows it. One row per site ever stopped. */
struct store_estop {
    char site_id[STORE_ID_MAX];
    int active;
    char id[40];
    char reason[256];
    char by[STORE_ID_MAX];
    int64_t since_ms, updated_ms;
};

#define STORE_DECISION_MAX 16384 /* a decision's JSON, with its NUL */

/* A gateway's Decision (docs/protocol.md, "Decisions"): the record of one control cycle as a
 * JSON object {strategy, requests, setpoints, clamps, conflicts, estop_active, ...}. */
struct store_decision {
    char site_id[STORE_ID_MAX];
    char gateway_id[STORE_ID_MAX];
    int64_t ts_ms;       /* gateway clock */
    int64_t received_ms; /* headend clock: retention goes by it, as telemetry's */
    char json[STORE_DECISION_MAX];
};

/* Alerts and commands are stored as the JSON objects REST serves (headend/alerts.h alert_json,
 * headend/commands.h command_rec_json), a few keys beside them as columns. */
#define STORE_RECORD_MAX 4096 /* one alert's or command's JSON, with its NUL */

struct store;
typedef int (*store_json_cb)(const char *json, void *ctx);
typedef int (*store_decision_cb)(const struct store_decision *d, void *ctx);
typedef int (*store_session_cb)(const struct store_session *s, void *ctx);
typedef int (*store_telemetry_cb)(const struct store_telemetry *t, void *ctx);
typedef int (*store_dispatch_cb)(const struct store_dispatch *d, void *ctx);
typedef int (*store_alloc_cb)(const struct store_alloc *a, void *ctx);
typedef int (*store_ack_cb)(const struct store_ack *a, void *ctx);
typedef int (*store_token_cb)(const struct store_token *t, void *ctx);
typedef int (*store_audit_cb)(const struct store_audit *a, void *ctx);

/* Every op returns 0 or -errno (-ENOENT when a looked-up record is absent). Callbacks return
 * 0 to go on or non-zero to stop (the op then returns that value). */
struct store_ops {
    const char *name;
    void (*close)(struct store *st);
    int (*begin)(struct store *st);
    int (*commit)(struct store *st);
    int (*next_counter)(struct store *st, const char *name, int64_t *value);
    int (*session_start)(struct store *st, struct store_session *s);
    int (*session_end)(struct store *st, int64_t id, int64_t ended_ms, const char *reason);
    /* Sessions left open by a previous run (crash) are ended with this reason. */
    int (*sessions_close_open)(struct store *st, int64_t now_ms, const char *reason);
    /* Newest first. */
    int (*sessions_recent)(struct store *st, const char *site_id, int limit, store_session_cb cb,
                           void *ctx);
    int (*telemetry_add)(struct store *st, const struct store_telemetry *t);
    /* ts_ms in [from_ms, to_ms], oldest first, at most limit rows. */
    int (*telemetry_range)(struct store *st, const char *asset_id, int64_t from_ms, int64_t to_ms,
                           int limit, store_telemetry_cb cb, void *ctx);
    int (*telemetry_latest)(struct store *st, const char *asset_id, struct store_telemetry *out);
    int (*telemetry_prune)(struct store *st, int64_t before_ms, int64_t *deleted);
    int (*dispatch_add)(struct store *st, const struct store_dispatch *d);
    int (*dispatch_get)(struct store *st, const char *id, struct store_dispatch *out);
    int (*dispatch_set_state)(struct store *st, const char *id, int state, const char *detail,
                              int64_t at_ms, int64_t session_id);
    /* QUEUED or SENT dispatches of a site not expired at now_ms, in creation order. */
    int (*dispatch_pending)(struct store *st, const char *site_id, int64_t now_ms,
                            store_dispatch_cb cb, void *ctx);
    /* Every dispatch of a site created in [from_ms, to_ms], any state, in creation order (the
     * export of a site's history: der-headend export). */
    int (*dispatch_range)(struct store *st, const char *site_id, int64_t from_ms, int64_t to_ms,
                          store_dispatch_cb cb, void *ctx);
    /* QUEUED or SENT dispatches whose expires_ms <= now_ms: each reported then set EXPIRED. */
    int (*dispatch_expire)(struct store *st, int64_t now_ms, store_dispatch_cb cb, void *ctx);
    int (*ack_add)(struct store *st, const char *id, const struct store_ack *a);
    int (*acks_list)(struct store *st, const char *id, store_ack_cb cb, void *ctx);
    int (*alloc_set)(struct store *st, const char *id, const struct store_alloc *a, size_t n);
    int (*alloc_list)(struct store *st, const char *id, store_alloc_cb cb, void *ctx);
    /* -EEXIST when a token not revoked has the same name (or the id is taken). */
    int (*token_add)(struct store *st, const struct store_token *t);
    /* By id, revoked ones included. */
    int (*token_get)(struct store *st, const char *id, struct store_token *out);
    /* Oldest first, revoked ones included. */
    int (*token_list)(struct store *st, store_token_cb cb, void *ctx);
    /* Revokes the token of that name that is not revoked yet; -ENOENT when there is none. */
    int (*token_revoke)(struct store *st, const char *name, int64_t now_ms);
    int (*token_touch)(struct store *st, const char *id, int64_t now_ms);
    /* Tokens ever made (revoked ones included). */
    int (*token_count)(struct store *st, int64_t *n);
    int (*audit_add)(struct store *st, struct store_audit *a);
    /* at_ms in [from_ms, to_ms], oldest first, at most limit rows. */
    int (*audit_range)(struct store *st, int64_t from_ms, int64_t to_ms, int limit,
                       store_audit_cb cb, void *ctx);
    /* -ENOENT when the site has no desired configuration yet. */
    int (*config_get)(struct store *st, const char *site_id, struct store_config *out);
    /* Stores c when c->version is the stored version + 1 (1 for a site without one): two
     * headends on one database cannot both make version N. -EAGAIN when another did. */
    int (*config_put)(struct store *st, const struct store_config *c);
    int (*decision_add)(struct store *st, const struct store_decision *d);
    /* A site's decisions with ts_ms in [from_ms, to_ms], oldest first, at most limit rows
     * (limit < 0: all). */
    int (*decision_range)(struct store *st, const char *site_id, int64_t from_ms, int64_t to_ms,
                          int limit, store_decision_cb cb, void *ctx);
    /* Removes decisions received before before_ms (telemetry's retention). */
    int (*decision_prune)(struct store *st, int64_t before_ms, int64_t *deleted);
    /* Several headends on one database (PostgreSQL only; NULL elsewhere; docs/operations.md,
     * "Several headends"): names this headend before hub_new, so that the sessions it starts
     * carry its name and sessions_close_open ends only its own open sessions and those of
     * headends whose heartbeat has expired (headend/cluster.h), never a live one's. */
    int (*set_node)(struct store *st, const char *node_id);
    /* PostgreSQL only (NULL elsewhere): a dispatch insert waits for its WAL flush (a 202 is
     * durable); on != 0 lets the inserts that follow skip it, and on == 0 then makes one
     * durable commit that flushes them all (a group dispatch: one flush, not one per share). */
    int (*defer_flush)(struct store *st, int on);
    /* Alerts (docs/operations.md, "Alerts"): each change (raised, cleared, acked) stores the
     * alert by id, replacing what was there. */
    int (*alert_put)(struct store *st, int64_t id, int active, int64_t raised_ms, const char *json);
    /* Every active alert and the newest `history` cleared ones, by id (oldest first). */
    int (*alert_list)(struct store *st, int history, store_json_cb cb, void *ctx);
    /* Removes cleared alerts beyond the newest `keep`. */
    int (*alert_prune)(struct store *st, int keep, int64_t *deleted);
    /* Commands (docs/operations.md, "Commands"): each change stores the command by id. */
    int (*command_put)(struct store *st, const char *id, const char *site_id, int64_t created_ms,
                       int state, const char *json);
    /* -ENOENT when unknown; the JSON is cut to len - 1. */
    int (*command_get)(struct store *st, const char *id, char *json, size_t len);
    /* A site's commands created in [from_ms, to_ms], oldest first (site_id NULL: every site's
     * commands whose state is not final, for a restart). */
    int (*command_range)(struct store *st, const char *site_id, int64_t from_ms, int64_t to_ms,
                         store_json_cb cb, void *ctx);
    /* The site's emergency stop for the other headends (PostgreSQL only; NULL elsewhere: one
     * headend holds it in memory): the row replaced by e. The cluster thread reads the rows
     * with its own connection (headend/cluster.c). */
    int (*estop_put)(struct store *st, const struct store_estop *e);
};

struct store {
    const struct store_ops *ops;
};

/* Opens the backend a location names: "postgres://..." or "postgresql://..." (PostgreSQL),
 * ":memory:" or a file path (SQLite). err gets the reason on failure. */
int store_open(const char *location, struct store **out, char *err, size_t errlen);
void store_close(struct store *st);
const char *dispatch_state_name(int state);
/* Parses a state name back; -EINVAL when unknown. */
int dispatch_state_parse(const char *name);
int dispatch_state_final(int state);

/* For backends' dispatch_expire: a store_dispatch_cb that sets each due dispatch EXPIRED
 * through x->st's own ops, then hands it to x->cb (which may be NULL). */
struct store_expire_ctx {
    struct store *st;
    int64_t now_ms;
    store_dispatch_cb cb;
    void *ctx;
};
int store_expire_one(const struct store_dispatch *d, void *x);

/* Backends. */
int store_sqlite_open(const char *path, struct store **out, char *err, size_t errlen);
int store_pg_open(const char *conninfo, struct store **out, char *err, size_t errlen);

#endif
