/* store_sqlite: the default store, one SQLite database (a file in WAL mode, or :memory: for
 * tests). Statements are prepared once and reused; the caller groups telemetry inserts in
 * begin/commit so that 10,000 rows/s cost one fsync-free WAL commit per flush
 * (synchronous=NORMAL: a power cut may lose the last flush, never corrupt the file).
 * Telemetry retention deletes by rowid, which grows with arrival time, so pruning needs no
 * second index. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "headend/store.h"

enum stmt_id {
    S_COUNTER_GET,
    S_COUNTER_SET,
    S_SESSION_START,
    S_SESSION_END,
    S_SESSIONS_CLOSE,
    S_SESSIONS_RECENT,
    S_TEL_ADD,
    S_TEL_RANGE,
    S_TEL_LATEST,
    S_TEL_PRUNE,
    S_DISP_ADD,
    S_DISP_GET,
    S_DISP_STATE,
    S_DISP_PENDING,
    S_DISP_RANGE,
    S_DISP_DUE,
    S_ACK_ADD,
    S_ACK_LIST,
    S_ALLOC_DEL,
    S_ALLOC_ADD,
    S_ALLOC_LIST,
    S_TOKEN_ADD,
    S_TOKEN_GET,
    S_TOKEN_LIST,
    S_TOKEN_REVOKE,
    S_TOKEN_TOUCH,
    S_TOKEN_COUNT,
    S_AUDIT_ADD,
    S_AUDIT_RANGE,
    S_CONFIG_GET,
    S_CONFIG_PUT,
    S_DEC_ADD,
    S_DEC_RANGE,
    S_DEC_PRUNE,
    S_COUNT
};

#define DISP_COLS                                                                                  \
    "id, seq, site_id, asset_id, power_w, created_ms, expires_ms, updated_ms, state, detail, "     \
    "session_id, requested_by"
#define TOKEN_COLS "id, name, role, salt, hash, created_ms, last_used_ms, revoked_ms"
#define AUDIT_COLS "id, at_ms, who, role, peer, method, path, summary, status, detail"

static const char *const sql_text[S_COUNT] = {
    [S_COUNTER_GET] = "SELECT value FROM meta WHERE name = ?1",
    [S_COUNTER_SET] = "INSERT INTO meta(name, value) VALUES(?1, ?2) "
                      "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
    [S_SESSION_START] = "INSERT INTO sessions(gateway_id, site_id, peer, started_ms) "
                        "VALUES(?1, ?2, ?3, ?4)",
    [S_SESSION_END] = "UPDATE sessions SET ended_ms = ?2, reason = ?3 WHERE id = ?1",
    [S_SESSIONS_CLOSE] = "UPDATE sessions SET ended_ms = ?1, reason = ?2 WHERE ended_ms = 0",
    [S_SESSIONS_RECENT] = "SELECT id, gateway_id, site_id, peer, started_ms, ended_ms, reason "
                          "FROM sessions WHERE site_id = ?1 ORDER BY id DESC LIMIT ?2",
    /* A replayed sample (same asset and telemetry_seq) is stored once: at-least-once delivery
     * from the gateway becomes exactly-once rows here (docs/protocol.md). */
    [S_TEL_ADD] = "INSERT OR IGNORE INTO telemetry(asset_id, ts_ms, received_ms, seq, power_w, "
                  "setpoint_w, soc, online, status, details) "
                  "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [S_TEL_RANGE] =
        "SELECT asset_id, ts_ms, received_ms, seq, power_w, setpoint_w, soc, online, "
        "status, details FROM telemetry WHERE asset_id = ?1 AND ts_ms BETWEEN ?2 AND ?3 "
        "ORDER BY ts_ms, rowid LIMIT ?4",
    [S_TEL_LATEST] =
        "SELECT asset_id, ts_ms, received_ms, seq, power_w, setpoint_w, soc, online, "
        "status, details FROM telemetry WHERE asset_id = ?1 ORDER BY ts_ms DESC, rowid DESC "
        "LIMIT 1",
    [S_TEL_PRUNE] = "DELETE FROM telemetry WHERE rowid < COALESCE((SELECT rowid FROM telemetry "
                    "WHERE received_ms >= ?1 ORDER BY rowid LIMIT 1), "
                    "(SELECT MAX(rowid) + 1 FROM telemetry))",
    [S_DISP_ADD] = "INSERT INTO dispatch(" DISP_COLS ") "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [S_DISP_GET] = "SELECT " DISP_COLS " FROM dispatch WHERE id = ?1",
    [S_DISP_STATE] = "UPDATE dispatch SET state = ?2, detail = ?3, updated_ms = ?4, "
                     "session_id = CASE WHEN ?5 != 0 THEN ?5 ELSE session_id END WHERE id = ?1",
    [S_DISP_PENDING] =
        "SELECT " DISP_COLS " FROM dispatch "
        "WHERE state IN (0, 1, 101) AND site_id = ?1 AND expires_ms > ?2 ORDER BY seq",
    [S_DISP_RANGE] = "SELECT " DISP_COLS " FROM dispatch "
                     "WHERE site_id = ?1 AND created_ms BETWEEN ?2 AND ?3 ORDER BY seq",
    [S_DISP_DUE] = "SELECT " DISP_COLS " FROM dispatch "
                   "WHERE state IN (0, 1, 101) AND expires_ms <= ?1 ORDER BY seq",
    [S_ACK_ADD] = "INSERT INTO dispatch_ack(setpoint_id, state, detail, at_ms) "
                  "VALUES(?1, ?2, ?3, ?4)",
    [S_ACK_LIST] = "SELECT state, detail, at_ms FROM dispatch_ack WHERE setpoint_id = ?1 "
                   "ORDER BY rowid",
    [S_ALLOC_DEL] = "DELETE FROM dispatch_alloc WHERE setpoint_id = ?1",
    [S_ALLOC_ADD] = "INSERT OR REPLACE INTO dispatch_alloc(setpoint_id, asset_id, power_w) "
                    "VALUES(?1, ?2, ?3)",
    [S_ALLOC_LIST] = "SELECT asset_id, power_w FROM dispatch_alloc WHERE setpoint_id = ?1 "
                     "ORDER BY rowid",
    [S_TOKEN_ADD] = "INSERT INTO tokens(" TOKEN_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, 0, 0)",
    [S_TOKEN_GET] = "SELECT " TOKEN_COLS " FROM tokens WHERE id = ?1",
    [S_TOKEN_LIST] = "SELECT " TOKEN_COLS " FROM tokens ORDER BY created_ms, rowid",
    [S_TOKEN_REVOKE] = "UPDATE tokens SET revoked_ms = ?2 WHERE name = ?1 AND revoked_ms = 0",
    [S_TOKEN_TOUCH] = "UPDATE tokens SET last_used_ms = ?2 WHERE id = ?1",
    [S_TOKEN_COUNT] = "SELECT count(*) FROM tokens",
    [S_AUDIT_ADD] = "INSERT INTO audit(at_ms, who, role, peer, method, path, summary, status, "
                    "detail) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [S_AUDIT_RANGE] = "SELECT " AUDIT_COLS " FROM audit WHERE at_ms BETWEEN ?1 AND ?2 "
                      "ORDER BY at_ms, id LIMIT ?3",
    [S_CONFIG_GET] = "SELECT site_id, version, updated_ms, updated_by, json FROM site_config "
                     "WHERE site_id = ?1",
    /* version N only over N - 1: a concurrent writer's row is never overwritten */
    [S_CONFIG_PUT] = "INSERT INTO site_config(site_id, version, updated_ms, updated_by, json) "
                     "SELECT ?1, ?2, ?3, ?4, ?5 WHERE ?2 = 1 + COALESCE((SELECT version FROM "
                     "site_config WHERE site_id = ?1), 0) ON CONFLICT(site_id) DO UPDATE SET "
                     "version = excluded.version, updated_ms = excluded.updated_ms, "
                     "updated_by = excluded.updated_by, json = excluded.json",
    [S_DEC_ADD] = "INSERT INTO decisions(site_id, gateway_id, ts_ms, received_ms, json) "
                  "VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_DEC_RANGE] = "SELECT site_id, gateway_id, ts_ms, received_ms, json FROM decisions "
                    "WHERE site_id = ?1 AND ts_ms BETWEEN ?2 AND ?3 ORDER BY ts_ms, rowid LIMIT ?4",
    [S_DEC_PRUNE] = "DELETE FROM decisions WHERE received_ms < ?1",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS sessions(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " gateway_id TEXT NOT NULL, site_id TEXT NOT NULL, peer TEXT NOT NULL,"
    " started_ms INTEGER NOT NULL, ended_ms INTEGER NOT NULL DEFAULT 0,"
    " reason TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS sessions_site ON sessions(site_id, id);"
    "CREATE TABLE IF NOT EXISTS telemetry(asset_id TEXT NOT NULL, ts_ms INTEGER NOT NULL,"
    " received_ms INTEGER NOT NULL, seq INTEGER NOT NULL, power_w REAL, setpoint_w REAL,"
    " soc REAL, online INTEGER NOT NULL, status TEXT NOT NULL, details TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS telemetry_asset_ts ON telemetry(asset_id, ts_ms);"
    /* One row per (asset, telemetry_seq); seq 0 means "no sequence" (hand-written peers) and
     * is never deduplicated. A database from before the key loses its duplicates once. */
    "DELETE FROM telemetry WHERE seq > 0 AND rowid NOT IN (SELECT MIN(rowid) FROM telemetry"
    " WHERE seq > 0 GROUP BY asset_id, seq) AND NOT EXISTS (SELECT 1 FROM sqlite_master"
    " WHERE type = 'index' AND name = 'telemetry_asset_seq');"
    "CREATE UNIQUE INDEX IF NOT EXISTS telemetry_asset_seq ON telemetry(asset_id, seq)"
    " WHERE seq > 0;"
    "CREATE TABLE IF NOT EXISTS dispatch(id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " site_id TEXT NOT NULL, asset_id TEXT NOT NULL, power_w REAL NOT NULL,"
    " created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " state INTEGER NOT NULL, detail TEXT NOT NULL, session_id INTEGER NOT NULL,"
    " requested_by TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS dispatch_open ON dispatch(state, site_id, seq);"
    "CREATE TABLE IF NOT EXISTS dispatch_ack(setpoint_id TEXT NOT NULL, state INTEGER NOT NULL,"
    " detail TEXT NOT NULL, at_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS dispatch_ack_id ON dispatch_ack(setpoint_id);"
    "CREATE TABLE IF NOT EXISTS dispatch_alloc(setpoint_id TEXT NOT NULL,"
    " asset_id TEXT NOT NULL, power_w REAL NOT NULL, PRIMARY KEY(setpoint_id, asset_id));"
    /* REST tokens (never the secret: a salted hash of it) and the audit trail of every
     * state-changing request. A name is unique among the tokens not revoked, so a name can
     * be given to a new token once the old one is revoked. */
    "CREATE TABLE IF NOT EXISTS tokens(id TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " role TEXT NOT NULL, salt TEXT NOT NULL, hash TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " last_used_ms INTEGER NOT NULL DEFAULT 0, revoked_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX IF NOT EXISTS tokens_name ON tokens(name) WHERE revoked_ms = 0;"
    "CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at_ms INTEGER NOT NULL, who TEXT NOT NULL, role TEXT NOT NULL, peer TEXT NOT NULL,"
    " method TEXT NOT NULL, path TEXT NOT NULL, summary TEXT NOT NULL, status INTEGER NOT NULL,"
    " detail TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_at ON audit(at_ms, id);"
    /* Each site's desired configuration, the latest version only (the audit trail keeps who
     * changed it when). */
    "CREATE TABLE IF NOT EXISTS site_config(site_id TEXT PRIMARY KEY, version INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, updated_by TEXT NOT NULL, json TEXT NOT NULL);"
    /* The gateways' decisions (docs/protocol.md, "Decisions"), one JSON object per row. */
    "CREATE TABLE IF NOT EXISTS decisions(site_id TEXT NOT NULL, gateway_id TEXT NOT NULL,"
    " ts_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL, json TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS decisions_site_ts ON decisions(site_id, ts_ms);"
    "CREATE INDEX IF NOT EXISTS decisions_received ON decisions(received_ms);";

/* A database from before dispatch.requested_by gets the column (SQLite has no ADD COLUMN IF
 * NOT EXISTS, hence the look at the table first). */
static const char has_requested_by[] =
    "SELECT 1 FROM pragma_table_info('dispatch') WHERE name = 'requested_by'";
static const char add_requested_by[] =
    "ALTER TABLE dispatch ADD COLUMN requested_by TEXT NOT NULL DEFAULT ''";
/* ... and a database from before telemetry.details its column. */
static const char has_details[] =
    "SELECT 1 FROM pragma_table_info('telemetry') WHERE name = 'details'";
static const char add_details[] =
    "ALTER TABLE telemetry ADD COLUMN details TEXT NOT NULL DEFAULT ''";

struct sqlite_store {
    struct store base;
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    int tx_depth;
};

static struct sqlite_store *impl(struct store *st)
{
    return (struct sqlite_store *)st;
}

static int err_of(int rc)
{
    switch (rc) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_FULL:
        return -ENOSPC;
    default:
        return -EIO;
    }
}

/* Returns the reset statement with its bindings cleared, ready to bind. */
static sqlite3_stmt *stmt(struct sqlite_store *s, enum stmt_id id)
{
    sqlite3_stmt *st = s->stmt[id];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_STATIC);
}

static void bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v))
        sqlite3_bind_double(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

static double col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static void col_text(sqlite3_stmt *st, int i, char *dst, size_t len)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, len, "%s", t ? (const char *)t : "");
}

static int exec_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    int e = rc == SQLITE_DONE ? 0 : err_of(rc ? rc : SQLITE_ERROR);
    sqlite3_reset(st);
    return e;
}

static void sq_close(struct store *st)
{
    struct sqlite_store *s = impl(st);
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    free(s);
}

static int sq_begin(struct store *st)
{
    struct sqlite_store *s = impl(st);
    if (s->tx_depth++ > 0)
        return 0;
    return err_of(sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL));
}

static int sq_commit(struct store *st)
{
    struct sqlite_store *s = impl(st);
    if (s->tx_depth == 0 || --s->tx_depth > 0)
        return 0;
    return err_of(sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL));
}

static int sq_next_counter(struct store *st, const char *name, int64_t *value)
{
    struct sqlite_store *s = impl(st);
    sqlite3_stmt *q = stmt(s, S_COUNTER_GET);
    bind_text(q, 1, name);
    int64_t v = 0;
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(q, 0);
    else if (rc != SQLITE_DONE)
        return err_of(rc);
    sqlite3_reset(q);
    v++;
    q = stmt(s, S_COUNTER_SET);
    bind_text(q, 1, name);
    sqlite3_bind_int64(q, 2, v);
    int e = exec_done(q);
    if (e == 0)
        *value = v;
    return e;
}

static int sq_session_start(struct store *st, struct store_session *ss)
{
    struct sqlite_store *s = impl(st);
    sqlite3_stmt *q = stmt(s, S_SESSION_START);
    bind_text(q, 1, ss->gateway_id);
    bind_text(q, 2, ss->site_id);
    bind_text(q, 3, ss->peer);
    sqlite3_bind_int64(q, 4, ss->started_ms);
    int e = exec_done(q);
    if (e == 0)
        ss->id = sqlite3_last_insert_rowid(s->db);
    return e;
}

static int sq_session_end(struct store *st, int64_t id, int64_t ended_ms, const char *reason)
{
    sqlite3_stmt *q = stmt(impl(st), S_SESSION_END);
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, ended_ms);
    bind_text(q, 3, reason);
    return exec_done(q);
}

static int sq_sessions_close_open(struct store *st, int64_t now_ms, const char *reason)
{
    sqlite3_stmt *q = stmt(impl(st), S_SESSIONS_CLOSE);
    sqlite3_bind_int64(q, 1, now_ms);
    bind_text(q, 2, reason);
    return exec_done(q);
}

static int sq_sessions_recent(struct store *st, const char *site_id, int limit, store_session_cb cb,
                              void *ctx)
{
    sqlite3_stmt *q = stmt(impl(st), S_SESSIONS_RECENT);
    bind_text(q, 1, site_id);
    sqlite3_bind_int(q, 2, limit);
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_session r;
        r.id = sqlite3_column_int64(q, 0);
        col_text(q, 1, r.gateway_id, sizeof(r.gateway_id));
        col_text(q, 2, r.site_id, sizeof(r.site_id));
        col_text(q, 3, r.peer, sizeof(r.peer));
        r.started_ms = sqlite3_column_int64(q, 4);
        r.ended_ms = sqlite3_column_int64(q, 5);
        col_text(q, 6, r.reason, sizeof(r.reason));
        stop = cb(&r, ctx);
    }
    sqlite3_reset(q);
    return stop;
}

static int sq_telemetry_add(struct store *st, const struct store_telemetry *t)
{
    sqlite3_stmt *q = stmt(impl(st), S_TEL_ADD);
    bind_text(q, 1, t->asset_id);
    sqlite3_bind_int64(q, 2, t->ts_ms);
    sqlite3_bind_int64(q, 3, t->received_ms);
    sqlite3_bind_int64(q, 4, (int64_t)t->seq);
    bind_real(q, 5, t->power_w);
    bind_real(q, 6, t->setpoint_w);
    bind_real(q, 7, t->soc);
    sqlite3_bind_int(q, 8, t->online);
    bind_text(q, 9, t->status);
    bind_text(q, 10, t->details);
    return exec_done(q);
}

static void read_telemetry(sqlite3_stmt *q, struct store_telemetry *t)
{
    col_text(q, 0, t->asset_id, sizeof(t->asset_id));
    t->ts_ms = sqlite3_column_int64(q, 1);
    t->received_ms = sqlite3_column_int64(q, 2);
    t->seq = (uint64_t)sqlite3_column_int64(q, 3);
    t->power_w = col_real(q, 4);
    t->setpoint_w = col_real(q, 5);
    t->soc = col_real(q, 6);
    t->online = sqlite3_column_int(q, 7);
    col_text(q, 8, t->status, sizeof(t->status));
    col_text(q, 9, t->details, sizeof(t->details));
}

static int sq_telemetry_range(struct store *st, const char *asset_id, int64_t from_ms,
                              int64_t to_ms, int limit, store_telemetry_cb cb, void *ctx)
{
    sqlite3_stmt *q = stmt(impl(st), S_TEL_RANGE);
    bind_text(q, 1, asset_id);
    sqlite3_bind_int64(q, 2, from_ms);
    sqlite3_bind_int64(q, 3, to_ms);
    sqlite3_bind_int(q, 4, limit);
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_telemetry t;
        read_telemetry(q, &t);
        stop = cb(&t, ctx);
    }
    sqlite3_reset(q);
    return stop;
}

static int sq_telemetry_latest(struct store *st, const char *asset_id, struct store_telemetry *out)
{
    sqlite3_stmt *q = stmt(impl(st), S_TEL_LATEST);
    bind_text(q, 1, asset_id);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        read_telemetry(q, out);
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : err_of(rc);
}

/* Retention: a DELETE taking the cut-off time, and the rows it removed. */
static int prune(struct store *st, enum stmt_id id, int64_t before_ms, int64_t *deleted)
{
    struct sqlite_store *s = impl(st);
    sqlite3_stmt *q = stmt(s, id);
    sqlite3_bind_int64(q, 1, before_ms);
    int e = exec_done(q);
    if (deleted)
        *deleted = e == 0 ? sqlite3_changes(s->db) : 0;
    return e;
}

static int sq_telemetry_prune(struct store *st, int64_t before_ms, int64_t *deleted)
{
    return prune(st, S_TEL_PRUNE, before_ms, deleted);
}

static int sq_dispatch_add(struct store *st, const struct store_dispatch *d)
{
    sqlite3_stmt *q = stmt(impl(st), S_DISP_ADD);
    bind_text(q, 1, d->id);
    sqlite3_bind_int64(q, 2, d->seq);
    bind_text(q, 3, d->site_id);
    bind_text(q, 4, d->asset_id);
    sqlite3_bind_double(q, 5, d->power_w);
    sqlite3_bind_int64(q, 6, d->created_ms);
    sqlite3_bind_int64(q, 7, d->expires_ms);
    sqlite3_bind_int64(q, 8, d->updated_ms);
    sqlite3_bind_int(q, 9, d->state);
    bind_text(q, 10, d->detail);
    sqlite3_bind_int64(q, 11, d->session_id);
    bind_text(q, 12, d->requested_by);
    return exec_done(q);
}

static void read_dispatch(sqlite3_stmt *q, struct store_dispatch *d)
{
    col_text(q, 0, d->id, sizeof(d->id));
    d->seq = sqlite3_column_int64(q, 1);
    col_text(q, 2, d->site_id, sizeof(d->site_id));
    col_text(q, 3, d->asset_id, sizeof(d->asset_id));
    d->power_w = sqlite3_column_double(q, 4);
    d->created_ms = sqlite3_column_int64(q, 5);
    d->expires_ms = sqlite3_column_int64(q, 6);
    d->updated_ms = sqlite3_column_int64(q, 7);
    d->state = sqlite3_column_int(q, 8);
    col_text(q, 9, d->detail, sizeof(d->detail));
    d->session_id = sqlite3_column_int64(q, 10);
    col_text(q, 11, d->requested_by, sizeof(d->requested_by));
}

static int sq_dispatch_get(struct store *st, const char *id, struct store_dispatch *out)
{
    sqlite3_stmt *q = stmt(impl(st), S_DISP_GET);
    bind_text(q, 1, id);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        read_dispatch(q, out);
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : err_of(rc);
}

static int sq_dispatch_set_state(struct store *st, const char *id, int state, const char *detail,
                                 int64_t at_ms, int64_t session_id)
{
    struct sqlite_store *s = impl(st);
    sqlite3_stmt *q = stmt(s, S_DISP_STATE);
    bind_text(q, 1, id);
    sqlite3_bind_int(q, 2, state);
    bind_text(q, 3, detail);
    sqlite3_bind_int64(q, 4, at_ms);
    sqlite3_bind_int64(q, 5, session_id);
    int e = exec_done(q);
    return e ? e : sqlite3_changes(s->db) ? 0 : -ENOENT;
}

/* Rows are copied out before the callbacks run, so a callback may write to the store. */
static int collect_dispatch(sqlite3_stmt *q, store_dispatch_cb cb, void *ctx)
{
    struct store_dispatch *rows = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct store_dispatch *nr = realloc(rows, cap * sizeof(*rows));
            if (!nr) {
                free(rows);
                sqlite3_reset(q);
                return -ENOMEM;
            }
            rows = nr;
        }
        read_dispatch(q, &rows[n++]);
    }
    sqlite3_reset(q);
    int stop = rc == SQLITE_DONE ? 0 : err_of(rc);
    for (size_t i = 0; i < n && !stop; i++)
        stop = cb(&rows[i], ctx);
    free(rows);
    return stop;
}

static int sq_dispatch_pending(struct store *st, const char *site_id, int64_t now_ms,
                               store_dispatch_cb cb, void *ctx)
{
    sqlite3_stmt *q = stmt(impl(st), S_DISP_PENDING);
    bind_text(q, 1, site_id);
    sqlite3_bind_int64(q, 2, now_ms);
    return collect_dispatch(q, cb, ctx);
}

static int sq_dispatch_range(struct store *st, const char *site_id, int64_t from_ms, int64_t to_ms,
                             store_dispatch_cb cb, void *ctx)
{
    sqlite3_stmt *q = stmt(impl(st), S_DISP_RANGE);
    bind_text(q, 1, site_id);
    sqlite3_bind_int64(q, 2, from_ms);
    sqlite3_bind_int64(q, 3, to_ms);
    return collect_dispatch(q, cb, ctx);
}

static int sq_dispatch_expire(struct store *st, int64_t now_ms, store_dispatch_cb cb, void *ctx)
{
    sqlite3_stmt *q = stmt(impl(st), S_DISP_DUE);
    sqlite3_bind_int64(q, 1, now_ms);
    struct store_expire_ctx x = {st, now_ms, cb, ctx};
    return collect_dispatch(q, store_expire_one, &x);
}

static int sq_ack_add(struct store *st, const char *id, const struct store_ack *a)
{
    sqlite3_stmt *q = stmt(impl(st), S_ACK_ADD);
    bind_text(q, 1, id);
    sqlite3_bind_int(q, 2, a->state);
    bind_text(q, 3, a->detail);
    sqlite3_bind_int64(q, 4, a->at_ms);
    return exec_done(q);
}

static int sq_acks_list(struct store *st, const char *id, store_ack_cb cb, void *ctx)
{
    sqlite3_stmt *q = stmt(impl(st), S_ACK_LIST);
    bind_text(q, 1, id);
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_ack a;
        a.state = sqlite3_column_int(q, 0);
        col_text(q, 1, a.detail, sizeof(a.detail));
        a.at_ms = sqlite3_column_int64(q, 2);
        stop = cb(&a, ctx);
    }
    sqlite3_reset(q);
    return stop;
}

static int sq_alloc_set(struct store *st, const char *id, const struct store_alloc *a, size_t n)
{
    struct sqlite_store *s = impl(st);
    int e = sq_begin(st);
    sqlite3_stmt *q = stmt(s, S_ALLOC_DEL);
    bind_text(q, 1, id);
    if (!e)
        e = exec_done(q);
    for (size_t i = 0; i < n && !e; i++) {
        q = stmt(s, S_ALLOC_ADD);
        bind_text(q, 1, id);
        bind_text(q, 2, a[i].asset_id);
        sqlite3_bind_double(q, 3, a[i].power_w);
        e = exec_done(q);
    }
    int c = sq_commit(st);
    return e ? e : c;
}

static int sq_alloc_list(struct store *st, const char *id, store_alloc_cb cb, void *ctx)
{
    sqlite3_stmt *q = stmt(impl(st), S_ALLOC_LIST);
    bind_text(q, 1, id);
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_alloc a;
        col_text(q, 0, a.asset_id, sizeof(a.asset_id));
        a.power_w = sqlite3_column_double(q, 1);
        stop = cb(&a, ctx);
    }
    sqlite3_reset(q);
    return stop;
}

static int sq_token_add(struct store *st, const struct store_token *t)
{
    sqlite3_stmt *q = stmt(impl(st), S_TOKEN_ADD);
    bind_text(q, 1, t->id);
    bind_text(q, 2, t->name);
    bind_text(q, 3, t->role);
    bind_text(q, 4, t->salt);
    bind_text(q, 5, t->hash);
    sqlite3_bind_int64(q, 6, t->created_ms);
    return exec_done(q);
}

static void read_token(sqlite3_stmt *q, struct store_token *t)
{
    col_text(q, 0, t->id, sizeof(t->id));
    col_text(q, 1, t->name, sizeof(t->name));
    col_text(q, 2, t->role, sizeof(t->role));
    col_text(q, 3, t->salt, sizeof(t->salt));
    col_text(q, 4, t->hash, sizeof(t->hash));
    t->created_ms = sqlite3_column_int64(q, 5);
    t->last_used_ms = sqlite3_column_int64(q, 6);
    t->revoked_ms = sqlite3_column_int64(q, 7);
}

static int sq_token_get(struct store *st, const char *id, struct store_token *out)
{
    sqlite3_stmt *q = stmt(impl(st), S_TOKEN_GET);
    bind_text(q, 1, id);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        read_token(q, out);
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : err_of(rc);
}

static int sq_token_list(struct store *st, store_token_cb cb, void *ctx)
{
    sqlite3_stmt *q = stmt(impl(st), S_TOKEN_LIST);
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_token t;
        read_token(q, &t);
        stop = cb(&t, ctx);
    }
    sqlite3_reset(q);
    return stop;
}

static int sq_token_revoke(struct store *st, const char *name, int64_t now_ms)
{
    struct sqlite_store *s = impl(st);
    sqlite3_stmt *q = stmt(s, S_TOKEN_REVOKE);
    bind_text(q, 1, name);
    sqlite3_bind_int64(q, 2, now_ms);
    int e = exec_done(q);
    return e ? e : sqlite3_changes(s->db) ? 0 : -ENOENT;
}

static int sq_token_touch(struct store *st, const char *id, int64_t now_ms)
{
    sqlite3_stmt *q = stmt(impl(st), S_TOKEN_TOUCH);
    bind_text(q, 1, id);
    sqlite3_bind_int64(q, 2, now_ms);
    return exec_done(q);
}

static int sq_token_count(struct store *st, int64_t *n)
{
    sqlite3_stmt *q = stmt(impl(st), S_TOKEN_COUNT);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? 0 : err_of(rc ? rc : SQLITE_ERROR);
}

static int sq_audit_add(struct store *st, struct store_audit *a)
{
    struct sqlite_store *s = impl(st);
    sqlite3_stmt *q = stmt(s, S_AUDIT_ADD);
    sqlite3_bind_int64(q, 1, a->at_ms);
    bind_text(q, 2, a->who);
    bind_text(q, 3, a->role);
    bind_text(q, 4, a->peer);
    bind_text(q, 5, a->method);
    bind_text(q, 6, a->path);
    bind_text(q, 7, a->summary);
    sqlite3_bind_int(q, 8, a->status);
    bind_text(q, 9, a->detail);
    int e = exec_done(q);
    if (e == 0)
        a->id = sqlite3_last_insert_rowid(s->db);
    return e;
}

static int sq_audit_range(struct store *st, int64_t from_ms, int64_t to_ms, int limit,
                          store_audit_cb cb, void *ctx)
{
    sqlite3_stmt *q = stmt(impl(st), S_AUDIT_RANGE);
    sqlite3_bind_int64(q, 1, from_ms);
    sqlite3_bind_int64(q, 2, to_ms);
    sqlite3_bind_int(q, 3, limit);
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_audit a;
        a.id = sqlite3_column_int64(q, 0);
        a.at_ms = sqlite3_column_int64(q, 1);
        col_text(q, 2, a.who, sizeof(a.who));
        col_text(q, 3, a.role, sizeof(a.role));
        col_text(q, 4, a.peer, sizeof(a.peer));
        col_text(q, 5, a.method, sizeof(a.method));
        col_text(q, 6, a.path, sizeof(a.path));
        col_text(q, 7, a.summary, sizeof(a.summary));
        a.status = sqlite3_column_int(q, 8);
        col_text(q, 9, a.detail, sizeof(a.detail));
        stop = cb(&a, ctx);
    }
    sqlite3_reset(q);
    return stop;
}

static int sq_config_get(struct store *st, const char *site_id, struct store_config *out)
{
    sqlite3_stmt *q = stmt(impl(st), S_CONFIG_GET);
    bind_text(q, 1, site_id);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        col_text(q, 0, out->site_id, sizeof(out->site_id));
        out->version = sqlite3_column_int64(q, 1);
        out->updated_ms = sqlite3_column_int64(q, 2);
        col_text(q, 3, out->updated_by, sizeof(out->updated_by));
        col_text(q, 4, out->json, sizeof(out->json));
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : err_of(rc);
}

static int sq_config_put(struct store *st, const struct store_config *c)
{
    struct sqlite_store *s = impl(st);
    sqlite3_stmt *q = stmt(s, S_CONFIG_PUT);
    bind_text(q, 1, c->site_id);
    sqlite3_bind_int64(q, 2, c->version);
    sqlite3_bind_int64(q, 3, c->updated_ms);
    bind_text(q, 4, c->updated_by);
    bind_text(q, 5, c->json);
    int e = exec_done(q);
    return e ? e : sqlite3_changes(s->db) ? 0 : -EAGAIN;
}

static int sq_decision_add(struct store *st, const struct store_decision *d)
{
    sqlite3_stmt *q = stmt(impl(st), S_DEC_ADD);
    bind_text(q, 1, d->site_id);
    bind_text(q, 2, d->gateway_id);
    sqlite3_bind_int64(q, 3, d->ts_ms);
    sqlite3_bind_int64(q, 4, d->received_ms);
    bind_text(q, 5, d->json);
    return exec_done(q);
}

static int sq_decision_range(struct store *st, const char *site_id, int64_t from_ms, int64_t to_ms,
                             int limit, store_decision_cb cb, void *ctx)
{
    sqlite3_stmt *q = stmt(impl(st), S_DEC_RANGE);
    bind_text(q, 1, site_id);
    sqlite3_bind_int64(q, 2, from_ms);
    sqlite3_bind_int64(q, 3, to_ms);
    sqlite3_bind_int(q, 4, limit);
    int stop = 0;
    /* one row buffer on the heap: a decision's JSON is several kilobytes */
    struct store_decision *d = malloc(sizeof *d);
    if (!d) {
        sqlite3_reset(q);
        return -ENOMEM;
    }
    while (!stop && sqlite3_step(q) == SQLITE_ROW) {
        col_text(q, 0, d->site_id, sizeof d->site_id);
        col_text(q, 1, d->gateway_id, sizeof d->gateway_id);
        d->ts_ms = sqlite3_column_int64(q, 2);
        d->received_ms = sqlite3_column_int64(q, 3);
        col_text(q, 4, d->json, sizeof d->json);
        stop = cb(d, ctx);
    }
    free(d);
    sqlite3_reset(q);
    return stop;
}

static int sq_decision_prune(struct store *st, int64_t before_ms, int64_t *deleted)
{
    return prune(st, S_DEC_PRUNE, before_ms, deleted);
}

/* ---- alerts and commands: rare next to telemetry, so statements prepared per call --------- */

static const char ops_schema[] =
    "CREATE TABLE IF NOT EXISTS alerts(id INTEGER PRIMARY KEY, active INTEGER NOT NULL,"
    " raised_ms INTEGER NOT NULL, json TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS commands(id TEXT PRIMARY KEY, site_id TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, state INTEGER NOT NULL, json TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS commands_site ON commands(site_id, created_ms);";

static int sq_prepare(struct store *st, const char *sql, sqlite3_stmt **q)
{
    return err_of(sqlite3_prepare_v2(impl(st)->db, sql, -1, q, NULL));
}

/* Steps q to its end, each row's column col to cb; finalizes q. */
static int sq_each_json(sqlite3_stmt *q, int col, store_json_cb cb, void *ctx)
{
    int stop = 0, rc;
    while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(q, col);
        stop = cb(t ? (const char *)t : "", ctx);
    }
    if (!stop && rc != SQLITE_DONE)
        stop = err_of(rc);
    sqlite3_finalize(q);
    return stop;
}

static int sq_alert_put(struct store *st, int64_t id, int active, int64_t raised_ms,
                        const char *json)
{
    sqlite3_stmt *q;
    int e = sq_prepare(st,
                       "INSERT OR REPLACE INTO alerts(id, active, raised_ms, json) "
                       "VALUES(?1, ?2, ?3, ?4)",
                       &q);
    if (e)
        return e;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int(q, 2, active);
    sqlite3_bind_int64(q, 3, raised_ms);
    bind_text(q, 4, json);
    e = exec_done(q);
    sqlite3_finalize(q);
    return e;
}

static int sq_alert_list(struct store *st, int history, store_json_cb cb, void *ctx)
{
    sqlite3_stmt *q;
    int e = sq_prepare(st,
                       "SELECT json FROM alerts WHERE active = 1 OR id IN (SELECT id FROM alerts "
                       "WHERE active = 0 ORDER BY id DESC LIMIT ?1) ORDER BY id",
                       &q);
    if (e)
        return e;
    sqlite3_bind_int(q, 1, history);
    return sq_each_json(q, 0, cb, ctx);
}

static int sq_alert_prune(struct store *st, int keep, int64_t *deleted)
{
    sqlite3_stmt *q;
    int e = sq_prepare(st,
                       "DELETE FROM alerts WHERE active = 0 AND id NOT IN (SELECT id FROM alerts "
                       "WHERE active = 0 ORDER BY id DESC LIMIT ?1)",
                       &q);
    if (e)
        return e;
    sqlite3_bind_int(q, 1, keep);
    e = exec_done(q);
    sqlite3_finalize(q);
    if (!e && deleted)
        *deleted = sqlite3_changes(impl(st)->db);
    return e;
}

static int sq_command_put(struct store *st, const char *id, const char *site_id, int64_t created_ms,
                          int state, const char *json)
{
    sqlite3_stmt *q;
    int e = sq_prepare(st,
                       "INSERT OR REPLACE INTO commands(id, site_id, created_ms, state, json) "
                       "VALUES(?1, ?2, ?3, ?4, ?5)",
                       &q);
    if (e)
        return e;
    bind_text(q, 1, id);
    bind_text(q, 2, site_id);
    sqlite3_bind_int64(q, 3, created_ms);
    sqlite3_bind_int(q, 4, state);
    bind_text(q, 5, json);
    e = exec_done(q);
    sqlite3_finalize(q);
    return e;
}

struct json_copy {
    char *buf;
    size_t len;
    int found;
};

static int copy_json(const char *json, void *ctx)
{
    struct json_copy *c = ctx;
    snprintf(c->buf, c->len, "%s", json);
    c->found = 1;
    return 1;
}

static int sq_command_get(struct store *st, const char *id, char *json, size_t len)
{
    sqlite3_stmt *q;
    int e = sq_prepare(st, "SELECT json FROM commands WHERE id = ?1", &q);
    if (e)
        return e;
    bind_text(q, 1, id);
    struct json_copy c = {json, len, 0};
    e = sq_each_json(q, 0, copy_json, &c);
    return c.found ? 0 : e < 0 ? e : -ENOENT;
}

static int sq_command_range(struct store *st, const char *site_id, int64_t from_ms, int64_t to_ms,
                            store_json_cb cb, void *ctx)
{
    sqlite3_stmt *q;
    int e = sq_prepare(st,
                       site_id ? "SELECT json FROM commands WHERE site_id = ?1 AND created_ms "
                                 "BETWEEN ?2 AND ?3 ORDER BY created_ms, rowid"
                               : "SELECT json FROM commands WHERE state IN (0, 1, 101) "
                                 "ORDER BY created_ms, rowid",
                       &q);
    if (e)
        return e;
    if (site_id) {
        bind_text(q, 1, site_id);
        sqlite3_bind_int64(q, 2, from_ms);
        sqlite3_bind_int64(q, 3, to_ms);
    }
    return sq_each_json(q, 0, cb, ctx);
}

static const struct store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .next_counter = sq_next_counter,
    .session_start = sq_session_start,
    .session_end = sq_session_end,
    .sessions_close_open = sq_sessions_close_open,
    .sessions_recent = sq_sessions_recent,
    .telemetry_add = sq_telemetry_add,
    .telemetry_range = sq_telemetry_range,
    .telemetry_latest = sq_telemetry_latest,
    .telemetry_prune = sq_telemetry_prune,
    .dispatch_add = sq_dispatch_add,
    .dispatch_get = sq_dispatch_get,
    .dispatch_set_state = sq_dispatch_set_state,
    .dispatch_pending = sq_dispatch_pending,
    .dispatch_range = sq_dispatch_range,
    .dispatch_expire = sq_dispatch_expire,
    .ack_add = sq_ack_add,
    .acks_list = sq_acks_list,
    .alloc_set = sq_alloc_set,
    .alloc_list = sq_alloc_list,
    .token_add = sq_token_add,
    .token_get = sq_token_get,
    .token_list = sq_token_list,
    .token_revoke = sq_token_revoke,
    .token_touch = sq_token_touch,
    .token_count = sq_token_count,
    .audit_add = sq_audit_add,
    .audit_range = sq_audit_range,
    .config_get = sq_config_get,
    .config_put = sq_config_put,
    .decision_add = sq_decision_add,
    .decision_range = sq_decision_range,
    .decision_prune = sq_decision_prune,
    .alert_put = sq_alert_put,
    .alert_list = sq_alert_list,
    .alert_prune = sq_alert_prune,
    .command_put = sq_command_put,
    .command_get = sq_command_get,
    .command_range = sq_command_range,
};

/* Adds a column when the look at the table finds it missing. */
static int add_column(sqlite3 *db, const char *has, const char *add)
{
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(db, has, -1, &q, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc == SQLITE_ROW)
        return SQLITE_OK;
    if (rc != SQLITE_DONE)
        return rc;
    return sqlite3_exec(db, add, NULL, NULL, NULL);
}

/* Schema changes a table created by an older build needs (run after the schema). */
static int migrate(sqlite3 *db)
{
    int rc = add_column(db, has_requested_by, add_requested_by);
    return rc != SQLITE_OK ? rc : add_column(db, has_details, add_details);
}

int store_sqlite_open(const char *path, struct store **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sqlite_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->base.ops = &sqlite_ops;
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_busy_timeout(s->db, 2000);
    if (strcmp(path, ":memory:") != 0) {
        rc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            goto fail;
    }
    rc = sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, schema, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = migrate(s->db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, ops_schema, NULL, NULL, NULL);
    for (int i = 0; i < S_COUNT && rc == SQLITE_OK; i++)
        rc = sqlite3_prepare_v3(s->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i],
                                NULL);
    if (rc != SQLITE_OK)
        goto fail;
    *out = &s->base;
    return 0;
fail:
    snprintf(err, errlen, "sqlite %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "cannot open");
    int e = err_of(rc ? rc : SQLITE_ERROR);
    sq_close(&s->base);
    return e ? e : -EIO;
}
