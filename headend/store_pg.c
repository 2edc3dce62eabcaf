/* store_pg: the PostgreSQL store (libpq), selected by a postgres:// or postgresql:// location
 * (DATABASE_URL). Same records, order and semantics as store_sqlite.c: bigserial `id` columns
 * stand in for SQLite's rowid wherever the order of arrival matters (telemetry, acks,
 * allocations); NaN and infinities are stored as NULL and read back as NaN; text that is not
 * valid UTF-8 (which PostgreSQL refuses and SQLite keeps) has its bad bytes replaced by '?'.
 * One difference: a failed statement aborts its transaction, so commit rolls it back and
 * returns the error (SQLite keeps the statements that succeeded).
 *
 * Every statement is prepared once per connection and run with parameters; no value is ever
 * written into SQL text. Every call is bounded: connect_timeout (5 s unless the URL sets one),
 * statement_timeout (5 s unless the role, database or URL set one), a client-side deadline of
 * statement_timeout + 5 s for a server that stops answering, TCP keepalives and
 * tcp_user_timeout for a silent network.
 *
 * Telemetry added inside begin/commit is buffered and written as multi-row INSERTs of up to
 * TEL_BATCH rows, so a flush of thousands of rows costs a few round trips instead of one per
 * row; an error in the batch is reported by the add that filled the buffer or by commit.
 *
 * A lost connection (server restart, network cut) is reset once per operation (PQreset):
 * outside a transaction the operation then runs again on the new connection (so a statement
 * whose reply was lost may be applied twice: at least once, never silently dropped). Inside a
 * transaction nothing is retried; the transaction fails as a whole and the next one
 * reconnects. While the server stays unreachable, operations fail at once with -ENOTCONN and a
 * reset is tried again after max(1 s, 5 x the last attempt's duration), capped at 30 s, so a
 * dead server costs the headend one failed connect now and then, not one per operation. The
 * outage is logged once (event=store_down) and its end once (event=store_up); other errors
 * are logged per operation (event=store_error) with the operation and PostgreSQL's message. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/log.h"
#include "headend/store.h"

#define SCHEMA_VERSION       10
#define CONNECT_TIMEOUT_S    "5"
#define STATEMENT_TIMEOUT_MS "5000"
#define CALL_DEFAULT_MS      5000 /* when statement_timeout is off */
#define CALL_MARGIN_MS       5000 /* client deadline = statement_timeout + this */
#define RETRY_MIN_MS         1000
#define RETRY_MAX_MS         30000
#define TEL_COLS             10
#define TEL_BATCH            256 /* rows per INSERT: 2,304 parameters, far below 65,535 */
#define MSG_MAX              512

enum stmt_id {
    S_COUNTER_NEXT,
    S_SESSION_START,
    S_SESSION_END,
    S_SESSIONS_CLOSE,
    S_SESSIONS_RECENT,
    S_TEL_ADD,
    S_TEL_BATCH,
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
    S_ESTOP_PUT,
    S_COUNT
};

/* The database's clock in ms: the one clock every headend sharing it agrees on. */
#define PG_NOW_MS "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint"

#define TEL_INSERT                                                                                 \
    "INSERT INTO telemetry(asset_id, ts_ms, received_ms, seq, power_w, setpoint_w, soc, online, "  \
    "status, details) VALUES "
#define DISP_COLS                                                                                  \
    "id, seq, site_id, asset_id, power_w, created_ms, expires_ms, updated_ms, state, detail, "     \
    "session_id, requested_by"
#define TOKEN_COLS "id, name, role, salt, hash, created_ms, last_used_ms, revoked_ms"
#define AUDIT_COLS "id, at_ms, who, role, peer, method, path, summary, status, detail"
#define TEL_SELECT                                                                                 \
    "SELECT asset_id, ts_ms, received_ms, seq, power_w, setpoint_w, soc, online, status, "         \
    "details FROM telemetry "

/* S_TEL_BATCH is generated (TEL_BATCH rows of placeholders) at open. */
static const char *const sql_text[S_COUNT] = {
    /* One statement, so two headends sharing a database never hand out the same number. */
    [S_COUNTER_NEXT] = "INSERT INTO meta(name, value) VALUES($1, 1) ON CONFLICT(name) "
                       "DO UPDATE SET value = meta.value + 1 RETURNING value",
    [S_SESSION_START] = "INSERT INTO sessions(gateway_id, site_id, peer, started_ms, node_id) "
                        "VALUES($1, $2, $3, $4, $5) RETURNING id",
    [S_SESSION_END] = "UPDATE sessions SET ended_ms = $2, reason = $3 WHERE id = $1",
    /* Version 8: ours ($3), and those of headends without a live heartbeat row (another
     * headend's live sessions are not ours to end: headend/cluster.h) */
    [S_SESSIONS_CLOSE] = "UPDATE sessions SET ended_ms = $1, reason = $2 WHERE ended_ms = 0 "
                         "AND (node_id = $3 OR node_id NOT IN (SELECT node_id FROM cluster_nodes "
                         "WHERE expires_ms > " PG_NOW_MS "))",
    [S_SESSIONS_RECENT] = "SELECT id, gateway_id, site_id, peer, started_ms, ended_ms, reason "
                          "FROM sessions WHERE site_id = $1 ORDER BY id DESC LIMIT $2",
    [S_TEL_ADD] = TEL_INSERT "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    [S_TEL_RANGE] = TEL_SELECT "WHERE asset_id = $1 AND ts_ms BETWEEN $2 AND $3 "
                               "ORDER BY ts_ms, id LIMIT $4",
    [S_TEL_LATEST] = TEL_SELECT "WHERE asset_id = $1 ORDER BY ts_ms DESC, id DESC LIMIT 1",
    [S_TEL_PRUNE] = "DELETE FROM telemetry WHERE id < COALESCE((SELECT id FROM telemetry "
                    "WHERE received_ms >= $1 ORDER BY id LIMIT 1), "
                    "(SELECT MAX(id) + 1 FROM telemetry))",
    /* expires_ms in the database's clock (created + ttl re-based on its now), so every
     * headend decides expiry with the one clock they share, whatever its own clock says
     * (FINDINGS 23). synchronous_commit on for this transaction only: a 202 is durable
     * (FINDINGS 29); set_config(..., true) lasts until the statement's commit. */
    [S_DISP_ADD] = "INSERT INTO dispatch(" DISP_COLS ") "
                   "SELECT $1, $2, $3, $4, $5, $6, " PG_NOW_MS " + GREATEST($7::bigint - "
                   "$6::bigint, 0), $8, $9, $10, $11, $12 "
                   "FROM (SELECT CASE WHEN $13::boolean THEN set_config('synchronous_commit', "
                   "'on', true) END) durable",
    [S_DISP_GET] = "SELECT " DISP_COLS " FROM dispatch WHERE id = $1",
    [S_DISP_STATE] = "UPDATE dispatch SET state = $2, detail = $3, updated_ms = $4, "
                     "session_id = CASE WHEN $5::bigint <> 0 THEN $5::bigint ELSE session_id END "
                     "WHERE id = $1",
    [S_DISP_PENDING] = "SELECT " DISP_COLS " FROM dispatch "
                       "WHERE state IN (0, 1, 101) AND site_id = $1 AND expires_ms > " PG_NOW_MS
                       " AND $2::bigint IS NOT NULL ORDER BY seq",
    [S_DISP_RANGE] = "SELECT " DISP_COLS " FROM dispatch "
                     "WHERE site_id = $1 AND created_ms BETWEEN $2 AND $3 ORDER BY seq",
    [S_DISP_DUE] = "SELECT " DISP_COLS " FROM dispatch "
                   "WHERE state IN (0, 1, 101) AND expires_ms <= " PG_NOW_MS
                   " AND $1::bigint IS NOT NULL ORDER BY seq",
    [S_ACK_ADD] = "INSERT INTO dispatch_ack(setpoint_id, state, detail, at_ms) "
                  "VALUES($1, $2, $3, $4)",
    [S_ACK_LIST] = "SELECT state, detail, at_ms FROM dispatch_ack WHERE setpoint_id = $1 "
                   "ORDER BY id",
    [S_ALLOC_DEL] = "DELETE FROM dispatch_alloc WHERE setpoint_id = $1",
    /* SQLite's INSERT OR REPLACE gives the replacing row a new rowid; a new id does the same. */
    [S_ALLOC_ADD] = "INSERT INTO dispatch_alloc(setpoint_id, asset_id, power_w) "
                    "VALUES($1, $2, $3) ON CONFLICT(setpoint_id, asset_id) "
                    "DO UPDATE SET power_w = excluded.power_w, id = DEFAULT",
    [S_ALLOC_LIST] = "SELECT asset_id, power_w FROM dispatch_alloc WHERE setpoint_id = $1 "
                     "ORDER BY id",
    [S_TOKEN_ADD] = "INSERT INTO tokens(" TOKEN_COLS ") VALUES($1, $2, $3, $4, $5, $6, 0, 0)",
    [S_TOKEN_GET] = "SELECT " TOKEN_COLS " FROM tokens WHERE id = $1",
    [S_TOKEN_LIST] = "SELECT " TOKEN_COLS " FROM tokens ORDER BY created_ms, seq",
    [S_TOKEN_REVOKE] = "UPDATE tokens SET revoked_ms = $2 WHERE name = $1 AND revoked_ms = 0",
    [S_TOKEN_TOUCH] = "UPDATE tokens SET last_used_ms = $2 WHERE id = $1",
    [S_TOKEN_COUNT] = "SELECT count(*) FROM tokens",
    [S_AUDIT_ADD] = "INSERT INTO audit(at_ms, who, role, peer, method, path, summary, status, "
                    "detail) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    [S_AUDIT_RANGE] = "SELECT " AUDIT_COLS " FROM audit WHERE at_ms BETWEEN $1 AND $2 "
                      "ORDER BY at_ms, id LIMIT $3",
    [S_CONFIG_GET] = "SELECT site_id, version, updated_ms, updated_by, json FROM site_config "
                     "WHERE site_id = $1",
    /* version N only over N - 1 (store.h): a concurrent headend's row is never overwritten */
    [S_CONFIG_PUT] = "INSERT INTO site_config(site_id, version, updated_ms, updated_by, json) "
                     "SELECT $1, $2::bigint, $3, $4, $5 WHERE $2::bigint = 1 + COALESCE((SELECT "
                     "version FROM site_config WHERE site_id = $1), 0) ON CONFLICT(site_id) DO "
                     "UPDATE SET version = excluded.version, updated_ms = excluded.updated_ms, "
                     "updated_by = excluded.updated_by, json = excluded.json "
                     "WHERE site_config.version = excluded.version - 1",
    [S_DEC_ADD] = "INSERT INTO decisions(site_id, gateway_id, ts_ms, received_ms, json) "
                  "VALUES($1, $2, $3, $4, $5)",
    [S_DEC_RANGE] = "SELECT site_id, gateway_id, ts_ms, received_ms, json FROM decisions "
                    "WHERE site_id = $1 AND ts_ms BETWEEN $2 AND $3 ORDER BY ts_ms, id LIMIT $4",
    [S_DEC_PRUNE] = "DELETE FROM decisions WHERE received_ms < $1",
    /* durable like a dispatch (S_DISP_ADD): an operator's stop acknowledged stays */
    [S_ESTOP_PUT] = "INSERT INTO site_estop(site_id, active, id, reason, by_name, since_ms, "
                    "updated_ms) SELECT $1, $2::boolean, $3, $4, $5, $6, $7 FROM (SELECT "
                    "set_config('synchronous_commit', 'on', true)) durable ON CONFLICT(site_id) "
                    "DO UPDATE SET active = excluded.active, id = excluded.id, reason = "
                    "excluded.reason, by_name = excluded.by_name, since_ms = excluded.since_ms, "
                    "updated_ms = excluded.updated_ms",
};

/* The tables of store_sqlite.c with PostgreSQL types. The advisory lock serialises two
 * headends creating the schema at once (CREATE ... IF NOT EXISTS is not race-free). */
static const char schema[] =
    "SELECT pg_advisory_xact_lock(7301243);"
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value BIGINT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS sessions(id BIGSERIAL PRIMARY KEY,"
    " gateway_id TEXT NOT NULL, site_id TEXT NOT NULL, peer TEXT NOT NULL,"
    " started_ms BIGINT NOT NULL, ended_ms BIGINT NOT NULL DEFAULT 0,"
    " reason TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS sessions_site ON sessions(site_id, id);"
    "CREATE TABLE IF NOT EXISTS telemetry(id BIGSERIAL PRIMARY KEY, asset_id TEXT NOT NULL,"
    " ts_ms BIGINT NOT NULL, received_ms BIGINT NOT NULL, seq BIGINT NOT NULL,"
    " power_w DOUBLE PRECISION, setpoint_w DOUBLE PRECISION, soc DOUBLE PRECISION,"
    " online INTEGER NOT NULL, status TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS telemetry_asset_ts ON telemetry(asset_id, ts_ms, id);"
    /* Version 2: one row per (asset, telemetry_seq) (seq 0 = no sequence, never deduplicated);
     * a version-1 database loses its duplicates once, then gets the key. */
    "DELETE FROM telemetry a USING telemetry b WHERE a.seq > 0 AND a.asset_id = b.asset_id"
    " AND a.seq = b.seq AND a.id > b.id AND NOT EXISTS (SELECT 1 FROM pg_indexes"
    " WHERE indexname = 'telemetry_asset_seq');"
    "CREATE UNIQUE INDEX IF NOT EXISTS telemetry_asset_seq ON telemetry(asset_id, seq)"
    " WHERE seq > 0;"
    "UPDATE meta SET value = 2 WHERE name = 'schema_version' AND value = 1;"
    "CREATE TABLE IF NOT EXISTS dispatch(id TEXT PRIMARY KEY, seq BIGINT NOT NULL,"
    " site_id TEXT NOT NULL, asset_id TEXT NOT NULL, power_w DOUBLE PRECISION NOT NULL,"
    " created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,"
    " state INTEGER NOT NULL, detail TEXT NOT NULL, session_id BIGINT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS dispatch_open ON dispatch(state, site_id, seq);"
    "CREATE TABLE IF NOT EXISTS dispatch_ack(id BIGSERIAL PRIMARY KEY,"
    " setpoint_id TEXT NOT NULL, state INTEGER NOT NULL, detail TEXT NOT NULL,"
    " at_ms BIGINT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS dispatch_ack_id ON dispatch_ack(setpoint_id, id);"
    "CREATE TABLE IF NOT EXISTS dispatch_alloc(id BIGSERIAL, setpoint_id TEXT NOT NULL,"
    " asset_id TEXT NOT NULL, power_w DOUBLE PRECISION NOT NULL,"
    " PRIMARY KEY(setpoint_id, asset_id));"
    /* Version 3: REST tokens (a salted hash, never the secret; a name is unique among the
     * tokens not revoked), the audit trail, and who asked for each dispatch (rows from before
     * have ''). A version-2 database gets them here. */
    "CREATE TABLE IF NOT EXISTS tokens(id TEXT PRIMARY KEY, seq BIGSERIAL, name TEXT NOT NULL,"
    " role TEXT NOT NULL, salt TEXT NOT NULL, hash TEXT NOT NULL, created_ms BIGINT NOT NULL,"
    " last_used_ms BIGINT NOT NULL DEFAULT 0, revoked_ms BIGINT NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX IF NOT EXISTS tokens_name ON tokens(name) WHERE revoked_ms = 0;"
    "CREATE TABLE IF NOT EXISTS audit(id BIGSERIAL PRIMARY KEY, at_ms BIGINT NOT NULL,"
    " who TEXT NOT NULL, role TEXT NOT NULL, peer TEXT NOT NULL, method TEXT NOT NULL,"
    " path TEXT NOT NULL, summary TEXT NOT NULL, status INTEGER NOT NULL,"
    " detail TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_at ON audit(at_ms, id);"
    "ALTER TABLE dispatch ADD COLUMN IF NOT EXISTS requested_by TEXT NOT NULL DEFAULT '';"
    "UPDATE meta SET value = 3 WHERE name = 'schema_version' AND value = 2;"
    /* Version 4: each site's desired configuration (docs/operations.md, "Remote
     * configuration"), its latest version only; a version-3 database gets the table here. */
    "CREATE TABLE IF NOT EXISTS site_config(site_id TEXT PRIMARY KEY, version BIGINT NOT NULL,"
    " updated_ms BIGINT NOT NULL, updated_by TEXT NOT NULL, json TEXT NOT NULL);"
    "UPDATE meta SET value = 4 WHERE name = 'schema_version' AND value = 3;"
    /* Version 5: the type-specific details of each telemetry sample, a JSON object ("" for
     * rows from before). */
    "ALTER TABLE telemetry ADD COLUMN IF NOT EXISTS details TEXT NOT NULL DEFAULT '';"
    "UPDATE meta SET value = 5 WHERE name = 'schema_version' AND value = 4;"
    /* Version 6: the gateways' decisions (docs/protocol.md, "Decisions"), one JSON object per
     * row; a version-5 database gets the table here. */
    "CREATE TABLE IF NOT EXISTS decisions(id BIGSERIAL PRIMARY KEY, site_id TEXT NOT NULL,"
    " gateway_id TEXT NOT NULL, ts_ms BIGINT NOT NULL, received_ms BIGINT NOT NULL,"
    " json TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS decisions_site_ts ON decisions(site_id, ts_ms, id);"
    "CREATE INDEX IF NOT EXISTS decisions_received ON decisions(received_ms);"
    "UPDATE meta SET value = 6 WHERE name = 'schema_version' AND value = 5;"
    /* Version 7: alerts and commands (docs/operations.md, "Alerts", "Commands") as the JSON
     * objects REST serves, by id; a version-6 database gets the tables here. */
    "CREATE TABLE IF NOT EXISTS alerts(id BIGINT PRIMARY KEY, active INTEGER NOT NULL,"
    " raised_ms BIGINT NOT NULL, json TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS commands(id TEXT PRIMARY KEY, site_id TEXT NOT NULL,"
    " created_ms BIGINT NOT NULL, state INTEGER NOT NULL, json TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS commands_site ON commands(site_id, created_ms, id);"
    "UPDATE meta SET value = 7 WHERE name = 'schema_version' AND value = 6;"
    /* Version 8: several headends on one database (docs/operations.md, "Several headends";
     * headend/cluster.c): which headend started each session, each headend's heartbeat (in
     * the database's clock), and which headend holds each site's gateway session now, with
     * the site's fleet-view row as that headend sees it. A version-7 database gets them here. */
    "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS node_id TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX IF NOT EXISTS sessions_open ON sessions(node_id) WHERE ended_ms = 0;"
    "CREATE TABLE IF NOT EXISTS cluster_nodes(node_id TEXT PRIMARY KEY,"
    " started_ms BIGINT NOT NULL, heartbeat_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cluster_presence(site_id TEXT PRIMARY KEY,"
    " node_id TEXT NOT NULL, gateway_id TEXT NOT NULL, session_id BIGINT NOT NULL,"
    " since_ms BIGINT NOT NULL, view TEXT NOT NULL);"
    "UPDATE meta SET value = 8 WHERE name = 'schema_version' AND value = 7;"
    /* Version 9: each site's emergency stop as the operators last set it, so that the headend
     * holding the site's gateway stream sends it and every headend shows it (headend/cluster.c).
     * A version-8 database gets the table here. */
    "CREATE TABLE IF NOT EXISTS site_estop(site_id TEXT PRIMARY KEY, active BOOLEAN NOT NULL,"
    " id TEXT NOT NULL, reason TEXT NOT NULL, by_name TEXT NOT NULL, since_ms BIGINT NOT NULL,"
    " updated_ms BIGINT NOT NULL);"
    "UPDATE meta SET value = 9 WHERE name = 'schema_version' AND value = 8;"
    /* Version 10: alert ids from the counter 'alert' (next_counter: one atomic upsert, shared
     * by every headend on this database, so two never number two alerts alike), seeded above
     * the ids stored before; idempotent. */
    "INSERT INTO meta(name, value) SELECT 'alert', COALESCE(MAX(id), 0) FROM alerts "
    "ON CONFLICT(name) DO UPDATE SET value = GREATEST(meta.value, excluded.value);"
    "UPDATE meta SET value = 10 WHERE name = 'schema_version' AND value = 9;"
    "INSERT INTO meta(name, value) VALUES('schema_version', 10) ON CONFLICT(name) DO NOTHING;";

struct pg_store {
    struct store base;
    PGconn *conn;
    char url[256]; /* the location with its password masked, for messages */
    int ready;     /* session settings and statements in place on this connection */
    int tx_depth;
    int tx_err;       /* first error inside the current transaction: it fails at commit */
    int down;         /* unreachable since down_since_ms: logged once, and once when back */
    int in_flush;     /* writing the telemetry buffer (no recursive flush) */
    int64_t retry_ms; /* no reset attempt before this (monotonic) */
    int64_t call_ms;  /* the client-side deadline of one statement */
    int64_t down_since_ms;
    uint64_t failed_while_down;
    char node[STORE_ID_MAX]; /* set_node: this headend's name among several ("" = none) */
    int lazy; /* defer_flush: dispatch inserts do not wait for the WAL flush until it ends */
    struct store_telemetry tel[TEL_BATCH]; /* telemetry added in this transaction, not sent */
    size_t n_tel;
    const char *tel_val[TEL_BATCH * TEL_COLS];
    char tel_num[TEL_BATCH * TEL_COLS][32];
    char batch_sql[TEL_BATCH * 96 + 256]; /* S_TEL_BATCH's text */
    char tmp_sql[TEL_BATCH * 96 + 256];   /* a shorter batch's text */
};

static struct pg_store *impl(struct store *st)
{
    return (struct pg_store *)st;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Length of the valid UTF-8 sequence at p, 0 when invalid (overlong, surrogate, > U+10FFFF). */
static size_t utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    size_t n = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
               : p[0] >= 0xe0 && p[0] <= 0xef ? 3
               : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                              : 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
        return 0;
    return n;
}

/* PostgreSQL refuses text that is not valid UTF-8 where SQLite keeps the bytes; a gateway's
 * bad status string must not fail a whole telemetry batch, so such bytes become '?'. Returns
 * t itself when valid, else dst (len bytes). */
static const char *utf8_clean(const char *t, char *dst, size_t len)
{
    const unsigned char *p = (const unsigned char *)t;
    size_t n;
    while (*p && (n = utf8_len(p)) > 0)
        p += n;
    if (!*p)
        return t;
    size_t o = 0;
    for (p = (const unsigned char *)t; *p && o + 1 < len;) {
        n = utf8_len(p);
        if (n == 0 || o + n >= len) {
            dst[o++] = '?';
            p++;
            continue;
        }
        memcpy(dst + o, p, n);
        o += n;
        p += n;
    }
    dst[o] = '\0';
    return dst;
}

/* libpq's messages span lines and quote names; a log field wants one line without '"'. */
static void one_line(char *dst, size_t len, const char *msg)
{
    size_t n = 0;
    int space = 0;
    for (const char *p = msg ? msg : ""; *p && n + 1 < len; p++) {
        if (*p == '\n' || *p == '\t' || *p == '\r' || *p == ' ') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < len)
            dst[n++] = ' ';
        space = 0;
        dst[n++] = *p == '"' ? '\'' : *p;
    }
    if (len)
        dst[n] = '\0';
}

/* The URL with the password (user:PASSWORD@ or password=...) replaced by ***. */
static void mask_url(char *dst, size_t len, const char *url)
{
    snprintf(dst, len, "%s", url);
    char *auth = strstr(dst, "://");
    if (auth) {
        auth += 3;
        char *end = auth + strcspn(auth, "/?");
        char *at = NULL;
        for (char *p = auth; p < end; p++)
            if (*p == '@')
                at = p;
        char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            char rest[256];
            snprintf(rest, sizeof(rest), "%s", at);
            snprintf(colon + 1, len - (size_t)(colon + 1 - dst), "***%s", rest);
        }
    }
    char *pw = strstr(dst, "password=");
    if (pw) {
        pw += 9;
        char rest[256];
        snprintf(rest, sizeof(rest), "%s", pw + strcspn(pw, "&"));
        snprintf(pw, len - (size_t)(pw - dst), "***%s", rest);
    }
}

/* SQLSTATE classes to the errno values store_sqlite.c uses for the same conditions. */
static int err_of_state(const char *state)
{
    if (!state || strlen(state) != 5)
        return -EIO;
    if (!strncmp(state, "23", 2))
        return -EEXIST; /* integrity constraint violation, as SQLITE_CONSTRAINT */
    if (!strcmp(state, "57014"))
        return -ETIMEDOUT; /* statement_timeout */
    if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03"))
        return -EBUSY;
    if (!strcmp(state, "53100"))
        return -ENOSPC;
    if (!strcmp(state, "53200"))
        return -ENOMEM;
    if (!strncmp(state, "08", 2) || !strncmp(state, "57P0", 4))
        return -ENOTCONN;
    return -EIO;
}

/* Fails the current transaction (if any) with its first error. */
static int tx_fail(struct pg_store *s, int e)
{
    if (s->tx_depth > 0 && !s->tx_err)
        s->tx_err = e;
    return e;
}

/* Parameters as text (the server parses them with the column's type). */
struct params {
    const char *v[16];
    char num[16][32];
    char text[8][STORE_TEXT_MAX]; /* repaired UTF-8 (rare) */
    int n, n_text;
};

static void p_text(struct params *p, const char *t)
{
    t = t ? t : "";
    if (p->n_text < 8 && utf8_clean(t, p->text[p->n_text], sizeof(p->text[0])) != t)
        t = p->text[p->n_text++];
    p->v[p->n++] = t;
}

static void p_int(struct params *p, int64_t x)
{
    snprintf(p->num[p->n], sizeof(p->num[0]), "%lld", (long long)x);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

static void p_double(struct params *p, double x)
{
    snprintf(p->num[p->n], sizeof(p->num[0]), "%.17g", x);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

static int64_t g_int(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static double g_real(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NAN : strtod(PQgetvalue(r, row, col), NULL);
}

static void g_text(const PGresult *r, int row, int col, char *dst, size_t len)
{
    snprintf(dst, len, "%s", PQgetvalue(r, row, col));
}

/* Server warnings go to the log; NOTICEs (CREATE ... IF NOT EXISTS) are not wanted at all. */
static void on_notice(void *arg, const char *message)
{
    struct pg_store *s = arg;
    char msg[MSG_MAX];
    one_line(msg, sizeof(msg), message);
    log_event(LOG_WARN, "event=store_notice store=postgresql db=%s message=\"%s\"", s->url, msg);
}

static int failed(const PGresult *r)
{
    ExecStatusType rs = PQresultStatus(r);
    return rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK;
}

/* Waits for the results of the query just sent (sent: what PQsend* returned), at most
 * call_ms: libpq's blocking calls have no deadline of their own, and a server that stops
 * answering (frozen, or a half-open connection) must not hold the hub forever. Returns the
 * first failed result, else the last; NULL when the send failed or on timeout (*timed_out;
 * the connection is then reset before the next statement). */
static PGresult *wait_result(struct pg_store *s, int sent, int *timed_out)
{
    *timed_out = 0;
    if (!sent)
        return NULL;
    int64_t deadline = mono_ms() + s->call_ms;
    PGresult *keep = NULL;
    for (;;) {
        while (PQisBusy(s->conn)) {
            int64_t left = deadline - mono_ms();
            if (left <= 0) {
                *timed_out = 1;
                s->ready = 0;
                PQclear(keep);
                return NULL;
            }
            struct pollfd pfd = {.fd = PQsocket(s->conn), .events = POLLIN};
            if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
                break;
            if (!PQconsumeInput(s->conn))
                break; /* PQgetResult reports the broken connection */
        }
        PGresult *r = PQgetResult(s->conn);
        if (!r)
            return keep;
        if (keep && failed(keep)) {
            PQclear(r);
        } else {
            PQclear(keep);
            keep = r;
        }
    }
}

/* A statement without parameters (constants only), for setup and transaction control. */
static int simple(struct pg_store *s, const char *sql, PGresult **out)
{
    int to;
    PGresult *r = wait_result(s, PQsendQuery(s->conn, sql), &to);
    if (!r || failed(r)) {
        PQclear(r);
        if (out)
            *out = NULL;
        return to ? -ETIMEDOUT : -EIO;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return 0;
}

static void why_failed(struct pg_store *s, int e, char *msg, size_t len)
{
    if (e == -ETIMEDOUT)
        snprintf(msg, len, "no answer within %lld ms", (long long)s->call_ms);
    else
        one_line(msg, len, PQerrorMessage(s->conn));
}

/* Session settings: statement_timeout (and from it the client-side deadline),
 * synchronous_commit, float digits, which messages the server sends. */
static int settings(struct pg_store *s, char *msg, size_t len)
{
    /* Only where nobody chose (source 'default': not the server's configuration, the role, the
     * database, the URL's options or PGOPTIONS). synchronous_commit off is the SQLite store's
     * synchronous=NORMAL: a crash of the server may lose the last fraction of a second of
     * commits, never corrupt; without it every autocommit write waits for a WAL fsync. */
    const char *tmo[] = {STATEMENT_TIMEOUT_MS};
    int to;
    PGresult *r = wait_result(
        s,
        PQsendQueryParams(s->conn,
                          "SELECT set_config(name, CASE name WHEN 'statement_timeout' THEN "
                          "$1::text ELSE 'off' END, false) FROM pg_settings WHERE name IN "
                          "('statement_timeout', 'synchronous_commit') AND source = 'default'",
                          1, NULL, tmo, NULL, NULL, 0),
        &to);
    int e = !r || failed(r) ? (to ? -ETIMEDOUT : -EIO) : 0;
    PQclear(r);
    /* extra_float_digits: every double's digits, also from servers before 12. */
    if (!e)
        e = simple(s,
                   "SET extra_float_digits = 3; SET client_min_messages = warning; "
                   "SELECT (EXTRACT(EPOCH FROM current_setting('statement_timeout')::interval)"
                   " * 1000)::bigint",
                   &r);
    if (e) {
        why_failed(s, e, msg, len);
        return e;
    }
    int64_t st_ms = g_int(r, 0, 0);
    PQclear(r);
    s->call_ms = (st_ms > 0 ? st_ms : CALL_DEFAULT_MS) + CALL_MARGIN_MS;
    return 0;
}

/* After every (re)connect: the settings, then every statement prepared. */
static int setup(struct pg_store *s, char *msg, size_t len)
{
    s->ready = 0;
    int e = settings(s, msg, len);
    for (int i = 0; i < S_COUNT && !e; i++) {
        char name[32];
        snprintf(name, sizeof(name), "derloop_%d", i);
        const char *sql = i == S_TEL_BATCH ? s->batch_sql : sql_text[i];
        int to;
        PGresult *r = wait_result(s, PQsendPrepare(s->conn, name, sql, 0, NULL), &to);
        e = !r || failed(r) ? (to ? -ETIMEDOUT : -EIO) : 0;
        PQclear(r);
        if (e)
            why_failed(s, e, msg, len);
    }
    s->ready = e == 0;
    return e;
}

/* One PQreset (blocking, bounded by connect_timeout), then the session set up again. Not
 * tried again before retry_ms, so an unreachable server does not stall every operation. */
static int reconnect(struct pg_store *s, const char *op, const char *why)
{
    int64_t t0 = mono_ms();
    if (t0 < s->retry_ms)
        return -ENOTCONN;
    char msg[MSG_MAX];
    PQreset(s->conn);
    int e = PQstatus(s->conn) == CONNECTION_OK ? setup(s, msg, sizeof(msg)) : -ENOTCONN;
    int64_t t1 = mono_ms();
    if (e == 0) {
        s->retry_ms = 0;
        if (s->down)
            log_event(LOG_INFO,
                      "event=store_up store=postgresql db=%s down_ms=%lld failed_ops=%llu "
                      "reason=\"reconnected\"",
                      s->url, (long long)(t1 - s->down_since_ms),
                      (unsigned long long)s->failed_while_down);
        else
            log_event(LOG_WARN, "event=store_reconnect store=postgresql db=%s op=%s reason=\"%s\"",
                      s->url, op, why);
        s->down = 0;
        s->failed_while_down = 0;
        return 0;
    }
    if (e == -ENOTCONN)
        one_line(msg, sizeof(msg), PQerrorMessage(s->conn));
    s->ready = 0;
    int64_t wait = (t1 - t0) * 5;
    wait = wait < RETRY_MIN_MS ? RETRY_MIN_MS : wait > RETRY_MAX_MS ? RETRY_MAX_MS : wait;
    s->retry_ms = t1 + wait;
    if (!s->down) {
        s->down = 1;
        s->down_since_ms = t0;
        s->failed_while_down = 0;
        log_event(LOG_ERROR,
                  "event=store_down store=postgresql db=%s op=%s error=\"%s\" "
                  "reconnect_error=\"%s\" retry_ms=%lld "
                  "reason=\"store operations fail until PostgreSQL answers again\"",
                  s->url, op, why, msg, (long long)wait);
    }
    return -ENOTCONN;
}

static int connection_lost(struct pg_store *s, const PGresult *r)
{
    return PQstatus(s->conn) != CONNECTION_OK ||
           err_of_state(PQresultErrorField(r, PG_DIAG_SQLSTATE)) == -ENOTCONN;
}

static void flush_tel(struct pg_store *s, const char *op, int *e);

/* Runs one statement: prepared (id >= 0) or `sql` with parameters (id < 0). On success *out
 * holds the result (the caller clears it). Connection loss outside a transaction: one reset,
 * then the statement once more. */
static int run(struct pg_store *s, const char *op, int id, const char *sql, int n,
               const char *const *val, PGresult **out)
{
    *out = NULL;
    if (s->tx_depth > 0 && s->tx_err)
        return s->tx_err;
    if (s->n_tel && !s->in_flush) {
        int e = 0;
        flush_tel(s, op, &e);
        if (e)
            return e;
    }
    char why[MSG_MAX] = "connection lost";
    int reset = 0;
    for (;;) {
        if (PQstatus(s->conn) != CONNECTION_OK || !s->ready) {
            if (s->tx_depth > 0 || reset || reconnect(s, op, why) < 0) {
                if (s->down)
                    s->failed_while_down++;
                else if (reset)
                    log_event(LOG_ERROR,
                              "event=store_error store=postgresql db=%s op=%s error=\"%s\" "
                              "reason=\"connection lost again right after a reset\"",
                              s->url, op, why);
                return tx_fail(s, -ENOTCONN);
            }
            reset = 1;
        }
        char name[32];
        snprintf(name, sizeof(name), "derloop_%d", id);
        int to;
        PGresult *r =
            wait_result(s,
                        id >= 0 ? PQsendQueryPrepared(s->conn, name, n, val, NULL, NULL, 0)
                                : PQsendQueryParams(s->conn, sql, n, NULL, val, NULL, NULL, 0),
                        &to);
        if (r && !failed(r)) {
            *out = r;
            return 0;
        }
        if (to) {
            log_event(LOG_ERROR,
                      "event=store_error store=postgresql db=%s op=%s error=\"no answer within "
                      "%lld ms\" reason=\"connection reset before the next operation\"",
                      s->url, op, (long long)s->call_ms);
            return tx_fail(s, -ETIMEDOUT);
        }
        char msg[MSG_MAX];
        one_line(msg, sizeof(msg), r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
        if (connection_lost(s, r)) {
            PQclear(r);
            snprintf(why, sizeof(why), "%s", msg[0] ? msg : "connection lost");
            s->ready = 0; /* reset before the next statement, whatever the status says */
            if (s->tx_depth > 0) {
                log_event(LOG_ERROR,
                          "event=store_error store=postgresql db=%s op=%s error=\"%s\" "
                          "reason=\"connection lost in a transaction; it is abandoned\"",
                          s->url, op, why);
                return tx_fail(s, -ENOTCONN);
            }
            continue;
        }
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        int e = err_of_state(state);
        log_event(LOG_ERROR,
                  "event=store_error store=postgresql db=%s op=%s sqlstate=%s error=\"%s\"", s->url,
                  op, state ? state : "-", msg);
        PQclear(r);
        return tx_fail(s, e);
    }
}

/* A statement whose result is not needed. */
static int run_cmd(struct pg_store *s, const char *op, int id, int n, const char *const *val)
{
    PGresult *r;
    int e = run(s, op, id, NULL, n, val, &r);
    PQclear(r);
    return e;
}

/* "INSERT ... VALUES ($1, ..., $9), ($10, ...)" for rows rows: placeholders, never values. */
/* A replayed sample (same asset and telemetry_seq) is stored once (docs/protocol.md). */
static void tel_insert_sql(char *buf, size_t cap, size_t rows)
{
    size_t len = (size_t)snprintf(buf, cap, "%s", TEL_INSERT);
    for (size_t i = 0; i < rows && len < cap; i++)
        for (int j = 0; j < TEL_COLS && len < cap; j++)
            len += (size_t)snprintf(buf + len, cap - len, "%s$%zu%s",
                                    j   ? ", "
                                    : i ? ", ("
                                        : "(",
                                    i * TEL_COLS + (size_t)j + 1, j == TEL_COLS - 1 ? ")" : "");
    if (len < cap)
        snprintf(buf + len, cap - len, " ON CONFLICT (asset_id, seq) WHERE seq > 0 DO NOTHING");
}

/* Writes rows as INSERTs of TEL_BATCH rows (prepared), the rest in one INSERT of its size. */
static int write_tel(struct pg_store *s, const char *op, const struct store_telemetry *rows,
                     size_t n)
{
    int e = 0;
    while (n > 0 && !e) {
        size_t k = n < TEL_BATCH ? n : TEL_BATCH;
        for (size_t i = 0; i < k; i++) {
            const struct store_telemetry *t = &rows[i];
            const char **v = &s->tel_val[i * TEL_COLS];
            char(*num)[32] = &s->tel_num[i * TEL_COLS];
            v[0] = t->asset_id;
            snprintf(num[1], 32, "%lld", (long long)t->ts_ms);
            snprintf(num[2], 32, "%lld", (long long)t->received_ms);
            snprintf(num[3], 32, "%lld", (long long)(int64_t)t->seq);
            const double reals[3] = {t->power_w, t->setpoint_w, t->soc};
            for (int j = 0; j < 3; j++)
                snprintf(num[4 + j], 32, "%.17g", reals[j]);
            snprintf(num[7], 32, "%d", t->online);
            for (int j = 1; j < 8; j++)
                v[j] = num[j];
            for (int j = 0; j < 3; j++)
                if (!isfinite(reals[j]))
                    v[4 + j] = NULL;
            v[8] = t->status;
            v[9] = t->details;
        }
        PGresult *r;
        if (k == TEL_BATCH) {
            e = run(s, op, S_TEL_BATCH, NULL, (int)(k * TEL_COLS), s->tel_val, &r);
        } else if (k == 1) {
            e = run(s, op, S_TEL_ADD, NULL, TEL_COLS, s->tel_val, &r);
        } else {
            tel_insert_sql(s->tmp_sql, sizeof(s->tmp_sql), k);
            e = run(s, op, -1, s->tmp_sql, (int)(k * TEL_COLS), s->tel_val, &r);
        }
        PQclear(r);
        rows += k;
        n -= k;
    }
    return e;
}

/* Sends the buffered telemetry of this transaction (before any other statement, so the
 * transaction's statements keep their order). */
static void flush_tel(struct pg_store *s, const char *op, int *e)
{
    s->in_flush = 1;
    *e = write_tel(s, op, s->tel, s->n_tel);
    s->n_tel = 0;
    s->in_flush = 0;
}

static void pg_close(struct store *st)
{
    struct pg_store *s = impl(st);
    PQfinish(s->conn);
    free(s);
}

static int pg_begin(struct store *st)
{
    struct pg_store *s = impl(st);
    if (s->tx_depth > 0) {
        s->tx_depth++;
        return 0;
    }
    s->tx_err = 0;
    s->n_tel = 0;
    PGresult *r;
    int e = run(s, "begin", -1, "BEGIN", 0, NULL, &r);
    PQclear(r);
    s->tx_depth = 1; /* counted even when BEGIN failed: the caller's commit closes it */
    s->tx_err = e;
    return e;
}

static int pg_commit(struct store *st)
{
    struct pg_store *s = impl(st);
    if (s->tx_depth == 0 || --s->tx_depth > 0)
        return 0;
    s->tx_depth = 1; /* the buffered telemetry is still part of the transaction */
    int e = s->tx_err;
    if (!e && s->n_tel)
        flush_tel(s, "commit", &e);
    PGresult *r = NULL;
    if (!e) {
        e = run(s, "commit", -1, "COMMIT", 0, NULL, &r);
        /* COMMIT of a transaction the server already aborted answers ROLLBACK. */
        if (!e && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
            log_event(LOG_ERROR,
                      "event=store_error store=postgresql db=%s op=commit error=\"%s\" "
                      "reason=\"the server rolled the transaction back\"",
                      s->url, PQcmdStatus(r));
            e = -EIO;
        }
    } else if (s->ready && PQstatus(s->conn) == CONNECTION_OK &&
               PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
        simple(s, "ROLLBACK", NULL); /* the server aborted it already: only the state is left */
    }
    PQclear(r);
    s->tx_depth = 0;
    s->tx_err = 0;
    s->n_tel = 0;
    return e;
}

static int pg_next_counter(struct store *st, const char *name, int64_t *value)
{
    struct params p = {.n = 0};
    p_text(&p, name);
    PGresult *r;
    int e = run(impl(st), "next_counter", S_COUNTER_NEXT, NULL, p.n, p.v, &r);
    if (!e)
        *value = g_int(r, 0, 0);
    PQclear(r);
    return e;
}

static int pg_session_start(struct store *st, struct store_session *ss)
{
    struct params p = {.n = 0};
    p_text(&p, ss->gateway_id);
    p_text(&p, ss->site_id);
    p_text(&p, ss->peer);
    p_int(&p, ss->started_ms);
    p_text(&p, impl(st)->node);
    PGresult *r;
    int e = run(impl(st), "session_start", S_SESSION_START, NULL, p.n, p.v, &r);
    if (!e)
        ss->id = g_int(r, 0, 0);
    PQclear(r);
    return e;
}

static int pg_session_end(struct store *st, int64_t id, int64_t ended_ms, const char *reason)
{
    struct params p = {.n = 0};
    p_int(&p, id);
    p_int(&p, ended_ms);
    p_text(&p, reason);
    return run_cmd(impl(st), "session_end", S_SESSION_END, p.n, p.v);
}

static int pg_sessions_close_open(struct store *st, int64_t now_ms, const char *reason)
{
    struct params p = {.n = 0};
    p_int(&p, now_ms);
    p_text(&p, reason);
    p_text(&p, impl(st)->node);
    return run_cmd(impl(st), "sessions_close_open", S_SESSIONS_CLOSE, p.n, p.v);
}

/* Several headends (store.h): the name the sessions of this one carry. */
static int pg_set_node(struct store *st, const char *node_id)
{
    snprintf(impl(st)->node, sizeof(impl(st)->node), "%s", node_id ? node_id : "");
    return 0;
}

/* LIMIT NULL is no limit, as a negative LIMIT is in SQLite. */
static void p_limit(struct params *p, int limit)
{
    if (limit >= 0)
        p_int(p, limit);
    else
        p->v[p->n++] = NULL;
}

static int pg_sessions_recent(struct store *st, const char *site_id, int limit, store_session_cb cb,
                              void *ctx)
{
    struct params p = {.n = 0};
    p_text(&p, site_id);
    p_limit(&p, limit);
    PGresult *r;
    int stop = run(impl(st), "sessions_recent", S_SESSIONS_RECENT, NULL, p.n, p.v, &r);
    for (int i = 0; !stop && i < PQntuples(r); i++) {
        struct store_session v;
        v.id = g_int(r, i, 0);
        g_text(r, i, 1, v.gateway_id, sizeof(v.gateway_id));
        g_text(r, i, 2, v.site_id, sizeof(v.site_id));
        g_text(r, i, 3, v.peer, sizeof(v.peer));
        v.started_ms = g_int(r, i, 4);
        v.ended_ms = g_int(r, i, 5);
        g_text(r, i, 6, v.reason, sizeof(v.reason));
        stop = cb(&v, ctx);
    }
    PQclear(r);
    return stop;
}

static int pg_telemetry_add(struct store *st, const struct store_telemetry *t)
{
    struct pg_store *s = impl(st);
    if (s->tx_depth > 0 && s->tx_err)
        return s->tx_err;
    struct store_telemetry *c = &s->tel[s->n_tel++];
    *c = *t;
    char fix[STORE_ID_MAX];
    if (utf8_clean(c->asset_id, fix, sizeof(fix)) == fix)
        snprintf(c->asset_id, sizeof(c->asset_id), "%s", fix);
    if (utf8_clean(c->status, fix, sizeof(fix)) == fix)
        snprintf(c->status, sizeof(c->status), "%s", fix);
    char dfix[STORE_DETAILS_MAX];
    if (utf8_clean(c->details, dfix, sizeof(dfix)) == dfix)
        snprintf(c->details, sizeof(c->details), "%s", dfix);
    int e = 0;
    if (s->tx_depth == 0 || s->n_tel == TEL_BATCH) /* outside a transaction: at once */
        flush_tel(s, "telemetry_add", &e);
    return e;
}

static void read_telemetry(const PGresult *r, int i, struct store_telemetry *t)
{
    g_text(r, i, 0, t->asset_id, sizeof(t->asset_id));
    t->ts_ms = g_int(r, i, 1);
    t->received_ms = g_int(r, i, 2);
    t->seq = (uint64_t)g_int(r, i, 3);
    t->power_w = g_real(r, i, 4);
    t->setpoint_w = g_real(r, i, 5);
    t->soc = g_real(r, i, 6);
    t->online = (int)g_int(r, i, 7);
    g_text(r, i, 8, t->status, sizeof(t->status));
    g_text(r, i, 9, t->details, sizeof(t->details));
}

static int pg_telemetry_range(struct store *st, const char *asset_id, int64_t from_ms,
                              int64_t to_ms, int limit, store_telemetry_cb cb, void *ctx)
{
    struct params p = {.n = 0};
    p_text(&p, asset_id);
    p_int(&p, from_ms);
    p_int(&p, to_ms);
    p_limit(&p, limit);
    PGresult *r;
    int stop = run(impl(st), "telemetry_range", S_TEL_RANGE, NULL, p.n, p.v, &r);
    for (int i = 0; !stop && i < PQntuples(r); i++) {
        struct store_telemetry t;
        read_telemetry(r, i, &t);
        stop = cb(&t, ctx);
    }
    PQclear(r);
    return stop;
}

static int pg_telemetry_latest(struct store *st, const char *asset_id, struct store_telemetry *out)
{
    struct params p = {.n = 0};
    p_text(&p, asset_id);
    PGresult *r;
    int e = run(impl(st), "telemetry_latest", S_TEL_LATEST, NULL, p.n, p.v, &r);
    if (!e && PQntuples(r) == 0)
        e = -ENOENT;
    else if (!e)
        read_telemetry(r, 0, out);
    PQclear(r);
    return e;
}

/* Retention: a DELETE taking the cut-off time, and the rows it removed. */
static int prune(struct store *st, const char *op, int id, int64_t before_ms, int64_t *deleted)
{
    struct params p = {.n = 0};
    p_int(&p, before_ms);
    PGresult *r;
    int e = run(impl(st), op, id, NULL, p.n, p.v, &r);
    if (deleted)
        *deleted = e == 0 ? strtoll(PQcmdTuples(r), NULL, 10) : 0;
    PQclear(r);
    return e;
}

static int pg_telemetry_prune(struct store *st, int64_t before_ms, int64_t *deleted)
{
    return prune(st, "telemetry_prune", S_TEL_PRUNE, before_ms, deleted);
}

static int pg_dispatch_add(struct store *st, const struct store_dispatch *d)
{
    struct params p = {.n = 0};
    p_text(&p, d->id);
    p_int(&p, d->seq);
    p_text(&p, d->site_id);
    p_text(&p, d->asset_id);
    p_double(&p, d->power_w);
    p_int(&p, d->created_ms);
    p_int(&p, d->expires_ms);
    p_int(&p, d->updated_ms);
    p_int(&p, d->state);
    p_text(&p, d->detail);
    p_int(&p, d->session_id);
    p_text(&p, d->requested_by);
    p_text(&p, impl(st)->lazy ? "false" : "true");
    return run_cmd(impl(st), "dispatch_add", S_DISP_ADD, p.n, p.v);
}

static int pg_exec(struct store *st, const char *op, const char *sql, struct params *p,
                   int64_t *changed);

/* A transaction with an xid commits with a record, and a synchronous commit flushes the WAL up
 * to it: every lazy insert before it is then on disk too. */
static int pg_defer_flush(struct store *st, int on)
{
    struct pg_store *s = impl(st);
    int was = s->lazy;
    s->lazy = on != 0;
    if (on || !was)
        return 0;
    struct params p = {.n = 0};
    return pg_exec(st, "dispatch_flush",
                   "SELECT set_config('synchronous_commit', 'on', true), txid_current()", &p, NULL);
}

static void read_dispatch(const PGresult *r, int i, struct store_dispatch *d)
{
    g_text(r, i, 0, d->id, sizeof(d->id));
    d->seq = g_int(r, i, 1);
    g_text(r, i, 2, d->site_id, sizeof(d->site_id));
    g_text(r, i, 3, d->asset_id, sizeof(d->asset_id));
    d->power_w = strtod(PQgetvalue(r, i, 4), NULL);
    d->created_ms = g_int(r, i, 5);
    d->expires_ms = g_int(r, i, 6);
    d->updated_ms = g_int(r, i, 7);
    d->state = (int)g_int(r, i, 8);
    g_text(r, i, 9, d->detail, sizeof(d->detail));
    d->session_id = g_int(r, i, 10);
    g_text(r, i, 11, d->requested_by, sizeof(d->requested_by));
}

static int pg_dispatch_get(struct store *st, const char *id, struct store_dispatch *out)
{
    struct params p = {.n = 0};
    p_text(&p, id);
    PGresult *r;
    int e = run(impl(st), "dispatch_get", S_DISP_GET, NULL, p.n, p.v, &r);
    if (!e && PQntuples(r) == 0)
        e = -ENOENT;
    else if (!e)
        read_dispatch(r, 0, out);
    PQclear(r);
    return e;
}

static int pg_dispatch_set_state(struct store *st, const char *id, int state, const char *detail,
                                 int64_t at_ms, int64_t session_id)
{
    struct params p = {.n = 0};
    p_text(&p, id);
    p_int(&p, state);
    p_text(&p, detail);
    p_int(&p, at_ms);
    p_int(&p, session_id);
    PGresult *r;
    int e = run(impl(st), "dispatch_set_state", S_DISP_STATE, NULL, p.n, p.v, &r);
    if (!e && strtoll(PQcmdTuples(r), NULL, 10) == 0)
        e = -ENOENT;
    PQclear(r);
    return e;
}

/* The result is complete in memory before the callbacks run, so a callback may write to the
 * store (dispatch_expire does). */
static int each_dispatch(const PGresult *r, store_dispatch_cb cb, void *ctx)
{
    int stop = 0;
    for (int i = 0; !stop && i < PQntuples(r); i++) {
        struct store_dispatch d;
        read_dispatch(r, i, &d);
        stop = cb(&d, ctx);
    }
    return stop;
}

static int pg_dispatch_pending(struct store *st, const char *site_id, int64_t now_ms,
                               store_dispatch_cb cb, void *ctx)
{
    struct params p = {.n = 0};
    p_text(&p, site_id);
    p_int(&p, now_ms);
    PGresult *r;
    int e = run(impl(st), "dispatch_pending", S_DISP_PENDING, NULL, p.n, p.v, &r);
    if (!e)
        e = each_dispatch(r, cb, ctx);
    PQclear(r);
    return e;
}

static int pg_dispatch_range(struct store *st, const char *site_id, int64_t from_ms, int64_t to_ms,
                             store_dispatch_cb cb, void *ctx)
{
    struct params p = {.n = 0};
    p_text(&p, site_id);
    p_int(&p, from_ms);
    p_int(&p, to_ms);
    PGresult *r;
    int e = run(impl(st), "dispatch_range", S_DISP_RANGE, NULL, p.n, p.v, &r);
    if (!e)
        e = each_dispatch(r, cb, ctx);
    PQclear(r);
    return e;
}

static int pg_dispatch_expire(struct store *st, int64_t now_ms, store_dispatch_cb cb, void *ctx)
{
    struct params p = {.n = 0};
    p_int(&p, now_ms);
    PGresult *r;
    int e = run(impl(st), "dispatch_expire", S_DISP_DUE, NULL, p.n, p.v, &r);
    struct store_expire_ctx x = {st, now_ms, cb, ctx};
    if (!e)
        e = each_dispatch(r, store_expire_one, &x);
    PQclear(r);
    return e;
}

static int pg_ack_add(struct store *st, const char *id, const struct store_ack *a)
{
    struct params p = {.n = 0};
    p_text(&p, id);
    p_int(&p, a->state);
    p_text(&p, a->detail);
    p_int(&p, a->at_ms);
    return run_cmd(impl(st), "ack_add", S_ACK_ADD, p.n, p.v);
}

static int pg_acks_list(struct store *st, const char *id, store_ack_cb cb, void *ctx)
{
    struct params p = {.n = 0};
    p_text(&p, id);
    PGresult *r;
    int stop = run(impl(st), "acks_list", S_ACK_LIST, NULL, p.n, p.v, &r);
    for (int i = 0; !stop && i < PQntuples(r); i++) {
        struct store_ack a;
        a.state = (int)g_int(r, i, 0);
        g_text(r, i, 1, a.detail, sizeof(a.detail));
        a.at_ms = g_int(r, i, 2);
        stop = cb(&a, ctx);
    }
    PQclear(r);
    return stop;
}

static int pg_alloc_set(struct store *st, const char *id, const struct store_alloc *a, size_t n)
{
    struct pg_store *s = impl(st);
    int e = pg_begin(st);
    struct params p = {.n = 0};
    p_text(&p, id);
    if (!e)
        e = run_cmd(s, "alloc_set", S_ALLOC_DEL, p.n, p.v);
    for (size_t i = 0; i < n && !e; i++) {
        struct params q = {.n = 0};
        p_text(&q, id);
        p_text(&q, a[i].asset_id);
        p_double(&q, a[i].power_w);
        e = run_cmd(s, "alloc_set", S_ALLOC_ADD, q.n, q.v);
    }
    int c = pg_commit(st);
    return e ? e : c;
}

static int pg_alloc_list(struct store *st, const char *id, store_alloc_cb cb, void *ctx)
{
    struct params p = {.n = 0};
    p_text(&p, id);
    PGresult *r;
    int stop = run(impl(st), "alloc_list", S_ALLOC_LIST, NULL, p.n, p.v, &r);
    for (int i = 0; !stop && i < PQntuples(r); i++) {
        struct store_alloc a;
        g_text(r, i, 0, a.asset_id, sizeof(a.asset_id));
        a.power_w = strtod(PQgetvalue(r, i, 1), NULL);
        stop = cb(&a, ctx);
    }
    PQclear(r);
    return stop;
}

static int pg_token_add(struct store *st, const struct store_token *t)
{
    struct params p = {.n = 0};
    p_text(&p, t->id);
    p_text(&p, t->name);
    p_text(&p, t->role);
    p_text(&p, t->salt);
    p_text(&p, t->hash);
    p_int(&p, t->created_ms);
    return run_cmd(impl(st), "token_add", S_TOKEN_ADD, p.n, p.v);
}

static void read_token(const PGresult *r, int i, struct store_token *t)
{
    g_text(r, i, 0, t->id, sizeof(t->id));
    g_text(r, i, 1, t->name, sizeof(t->name));
    g_text(r, i, 2, t->role, sizeof(t->role));
    g_text(r, i, 3, t->salt, sizeof(t->salt));
    g_text(r, i, 4, t->hash, sizeof(t->hash));
    t->created_ms = g_int(r, i, 5);
    t->last_used_ms = g_int(r, i, 6);
    t->revoked_ms = g_int(r, i, 7);
}

static int pg_token_get(struct store *st, const char *id, struct store_token *out)
{
    struct params p = {.n = 0};
    p_text(&p, id);
    PGresult *r;
    int e = run(impl(st), "token_get", S_TOKEN_GET, NULL, p.n, p.v, &r);
    if (!e && PQntuples(r) == 0)
        e = -ENOENT;
    else if (!e)
        read_token(r, 0, out);
    PQclear(r);
    return e;
}

static int pg_token_list(struct store *st, store_token_cb cb, void *ctx)
{
    PGresult *r;
    int stop = run(impl(st), "token_list", S_TOKEN_LIST, NULL, 0, NULL, &r);
    for (int i = 0; !stop && i < PQntuples(r); i++) {
        struct store_token t;
        read_token(r, i, &t);
        stop = cb(&t, ctx);
    }
    PQclear(r);
    return stop;
}

static int pg_token_revoke(struct store *st, const char *name, int64_t now_ms)
{
    struct params p = {.n = 0};
    p_text(&p, name);
    p_int(&p, now_ms);
    PGresult *r;
    int e = run(impl(st), "token_revoke", S_TOKEN_REVOKE, NULL, p.n, p.v, &r);
    if (!e && strtoll(PQcmdTuples(r), NULL, 10) == 0)
        e = -ENOENT;
    PQclear(r);
    return e;
}

static int pg_token_touch(struct store *st, const char *id, int64_t now_ms)
{
    struct params p = {.n = 0};
    p_text(&p, id);
    p_int(&p, now_ms);
    return run_cmd(impl(st), "token_touch", S_TOKEN_TOUCH, p.n, p.v);
}

static int pg_config_get(struct store *st, const char *site_id, struct store_config *out)
{
    struct params p = {.n = 0};
    p_text(&p, site_id);
    PGresult *r;
    int e = run(impl(st), "config_get", S_CONFIG_GET, NULL, p.n, p.v, &r);
    if (!e && PQntuples(r) == 0)
        e = -ENOENT;
    else if (!e) {
        g_text(r, 0, 0, out->site_id, sizeof(out->site_id));
        out->version = g_int(r, 0, 1);
        out->updated_ms = g_int(r, 0, 2);
        g_text(r, 0, 3, out->updated_by, sizeof(out->updated_by));
        g_text(r, 0, 4, out->json, sizeof(out->json));
    }
    PQclear(r);
    return e;
}

static int pg_config_put(struct store *st, const struct store_config *c)
{
    struct params p = {.n = 0};
    p_text(&p, c->site_id);
    p_int(&p, c->version);
    p_int(&p, c->updated_ms);
    p_text(&p, c->updated_by);
    p.v[p.n++] = c->json; /* valid UTF-8 (cJSON printed it from a parsed document) */
    PGresult *r;
    int e = run(impl(st), "config_put", S_CONFIG_PUT, NULL, p.n, p.v, &r);
    if (!e && strtoll(PQcmdTuples(r), NULL, 10) == 0)
        e = -EAGAIN;
    PQclear(r);
    return e;
}

static int pg_estop_put(struct store *st, const struct store_estop *e)
{
    struct params p = {.n = 0};
    p_text(&p, e->site_id);
    p.v[p.n++] = e->active ? "true" : "false";
    p_text(&p, e->id);
    p.v[p.n++] = e->reason; /* valid UTF-8 (REST checked it), up to 255 bytes */
    p_text(&p, e->by);
    p_int(&p, e->since_ms);
    p_int(&p, e->updated_ms);
    return run_cmd(impl(st), "estop_put", S_ESTOP_PUT, p.n, p.v);
}

static int pg_token_count(struct store *st, int64_t *n)
{
    PGresult *r;
    int e = run(impl(st), "token_count", S_TOKEN_COUNT, NULL, 0, NULL, &r);
    if (!e)
        *n = g_int(r, 0, 0);
    PQclear(r);
    return e;
}

static int pg_audit_add(struct store *st, struct store_audit *a)
{
    struct params p = {.n = 0};
    p_int(&p, a->at_ms);
    p_text(&p, a->who);
    p_text(&p, a->role);
    p_text(&p, a->peer);
    p_text(&p, a->method);
    p_text(&p, a->path);
    p_text(&p, a->summary);
    p_int(&p, a->status);
    p_text(&p, a->detail);
    PGresult *r;
    int e = run(impl(st), "audit_add", S_AUDIT_ADD, NULL, p.n, p.v, &r);
    if (!e)
        a->id = g_int(r, 0, 0);
    PQclear(r);
    return e;
}

static int pg_audit_range(struct store *st, int64_t from_ms, int64_t to_ms, int limit,
                          store_audit_cb cb, void *ctx)
{
    struct params p = {.n = 0};
    p_int(&p, from_ms);
    p_int(&p, to_ms);
    p_limit(&p, limit);
    PGresult *r;
    int stop = run(impl(st), "audit_range", S_AUDIT_RANGE, NULL, p.n, p.v, &r);
    for (int i = 0; !stop && i < PQntuples(r); i++) {
        struct store_audit a;
        a.id = g_int(r, i, 0);
        a.at_ms = g_int(r, i, 1);
        g_text(r, i, 2, a.who, sizeof(a.who));
        g_text(r, i, 3, a.role, sizeof(a.role));
        g_text(r, i, 4, a.peer, sizeof(a.peer));
        g_text(r, i, 5, a.method, sizeof(a.method));
        g_text(r, i, 6, a.path, sizeof(a.path));
        g_text(r, i, 7, a.summary, sizeof(a.summary));
        a.status = (int)g_int(r, i, 8);
        g_text(r, i, 9, a.detail, sizeof(a.detail));
        stop = cb(&a, ctx);
    }
    PQclear(r);
    return stop;
}

/* The JSON is the headend's own (hub.c writes it ASCII only): p_text's repair buffer, sized
 * for short fields, is never needed for it. */
static int pg_decision_add(struct store *st, const struct store_decision *d)
{
    struct params p = {.n = 0};
    p_text(&p, d->site_id);
    p_text(&p, d->gateway_id);
    p_int(&p, d->ts_ms);
    p_int(&p, d->received_ms);
    p.v[p.n++] = d->json;
    PGresult *r;
    int e = run(impl(st), "decision_add", S_DEC_ADD, NULL, p.n, p.v, &r);
    PQclear(r);
    return e;
}

static int pg_decision_range(struct store *st, const char *site_id, int64_t from_ms, int64_t to_ms,
                             int limit, store_decision_cb cb, void *ctx)
{
    struct params p = {.n = 0};
    p_text(&p, site_id);
    p_int(&p, from_ms);
    p_int(&p, to_ms);
    p_limit(&p, limit);
    PGresult *r;
    int stop = run(impl(st), "decision_range", S_DEC_RANGE, NULL, p.n, p.v, &r);
    struct store_decision *d = stop ? NULL : malloc(sizeof *d);
    if (!stop && !d)
        stop = -ENOMEM;
    for (int i = 0; !stop && i < PQntuples(r); i++) {
        g_text(r, i, 0, d->site_id, sizeof d->site_id);
        g_text(r, i, 1, d->gateway_id, sizeof d->gateway_id);
        d->ts_ms = g_int(r, i, 2);
        d->received_ms = g_int(r, i, 3);
        g_text(r, i, 4, d->json, sizeof d->json);
        stop = cb(d, ctx);
    }
    free(d);
    PQclear(r);
    return stop;
}

static int pg_decision_prune(struct store *st, int64_t before_ms, int64_t *deleted)
{
    return prune(st, "decision_prune", S_DEC_PRUNE, before_ms, deleted);
}

/* ---- alerts and commands (schema version 7): rare, so plain parameterised statements ----- */

static int pg_json_rows(struct store *st, const char *op, const char *sql, struct params *p,
                        store_json_cb cb, void *ctx)
{
    PGresult *r;
    int stop = run(impl(st), op, -1, sql, p->n, p->v, &r);
    for (int i = 0; !stop && i < PQntuples(r); i++)
        stop = cb(PQgetvalue(r, i, 0), ctx);
    PQclear(r);
    return stop;
}

static int pg_exec(struct store *st, const char *op, const char *sql, struct params *p,
                   int64_t *changed)
{
    PGresult *r;
    int e = run(impl(st), op, -1, sql, p->n, p->v, &r);
    if (!e && changed)
        *changed = atoll(PQcmdTuples(r));
    PQclear(r);
    return e;
}

static int pg_alert_put(struct store *st, int64_t id, int active, int64_t raised_ms,
                        const char *json)
{
    struct params p = {.n = 0};
    p_int(&p, id);
    p_int(&p, active);
    p_int(&p, raised_ms);
    p.v[p.n++] = json;
    return pg_exec(st, "alert_put",
                   "INSERT INTO alerts(id, active, raised_ms, json) VALUES($1, $2, $3, $4) "
                   "ON CONFLICT(id) DO UPDATE SET active = excluded.active, json = excluded.json",
                   &p, NULL);
}

static int pg_alert_list(struct store *st, int history, store_json_cb cb, void *ctx)
{
    struct params p = {.n = 0};
    p_int(&p, history);
    return pg_json_rows(st, "alert_list",
                        "SELECT json FROM alerts WHERE active = 1 OR id IN (SELECT id FROM alerts "
                        "WHERE active = 0 ORDER BY id DESC LIMIT $1) ORDER BY id",
                        &p, cb, ctx);
}

static int pg_alert_prune(struct store *st, int keep, int64_t *deleted)
{
    struct params p = {.n = 0};
    p_int(&p, keep);
    return pg_exec(st, "alert_prune",
                   "DELETE FROM alerts WHERE active = 0 AND id NOT IN (SELECT id FROM alerts "
                   "WHERE active = 0 ORDER BY id DESC LIMIT $1)",
                   &p, deleted);
}

static int pg_command_put(struct store *st, const char *id, const char *site_id, int64_t created_ms,
                          int state, const char *json)
{
    struct params p = {.n = 0};
    p_text(&p, id);
    p_text(&p, site_id);
    p_int(&p, created_ms);
    p_int(&p, state);
    p.v[p.n++] = json;
    return pg_exec(st, "command_put",
                   "INSERT INTO commands(id, site_id, created_ms, state, json) "
                   "VALUES($1, $2, $3, $4, $5) ON CONFLICT(id) DO UPDATE SET "
                   "state = excluded.state, json = excluded.json",
                   &p, NULL);
}

struct pg_json_copy {
    char *buf;
    size_t len;
    int found;
};

static int pg_copy_json(const char *json, void *ctx)
{
    struct pg_json_copy *c = ctx;
    snprintf(c->buf, c->len, "%s", json);
    c->found = 1;
    return 1;
}

static int pg_command_get(struct store *st, const char *id, char *json, size_t len)
{
    struct params p = {.n = 0};
    p_text(&p, id);
    struct pg_json_copy c = {json, len, 0};
    int e = pg_json_rows(st, "command_get", "SELECT json FROM commands WHERE id = $1", &p,
                         pg_copy_json, &c);
    return c.found ? 0 : e < 0 ? e : -ENOENT;
}

static int pg_command_range(struct store *st, const char *site_id, int64_t from_ms, int64_t to_ms,
                            store_json_cb cb, void *ctx)
{
    struct params p = {.n = 0};
    if (!site_id)
        return pg_json_rows(st, "command_range",
                            "SELECT json FROM commands WHERE state IN (0, 1, 101) "
                            "ORDER BY created_ms, id",
                            &p, cb, ctx);
    p_text(&p, site_id);
    p_int(&p, from_ms);
    p_int(&p, to_ms);
    return pg_json_rows(st, "command_range",
                        "SELECT json FROM commands WHERE site_id = $1 AND created_ms BETWEEN $2 "
                        "AND $3 ORDER BY created_ms, id",
                        &p, cb, ctx);
}

static const struct store_ops pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .next_counter = pg_next_counter,
    .session_start = pg_session_start,
    .session_end = pg_session_end,
    .sessions_close_open = pg_sessions_close_open,
    .sessions_recent = pg_sessions_recent,
    .telemetry_add = pg_telemetry_add,
    .telemetry_range = pg_telemetry_range,
    .telemetry_latest = pg_telemetry_latest,
    .telemetry_prune = pg_telemetry_prune,
    .dispatch_add = pg_dispatch_add,
    .dispatch_get = pg_dispatch_get,
    .dispatch_set_state = pg_dispatch_set_state,
    .dispatch_pending = pg_dispatch_pending,
    .dispatch_range = pg_dispatch_range,
    .dispatch_expire = pg_dispatch_expire,
    .ack_add = pg_ack_add,
    .acks_list = pg_acks_list,
    .alloc_set = pg_alloc_set,
    .alloc_list = pg_alloc_list,
    .token_add = pg_token_add,
    .token_get = pg_token_get,
    .token_list = pg_token_list,
    .token_revoke = pg_token_revoke,
    .token_touch = pg_token_touch,
    .token_count = pg_token_count,
    .audit_add = pg_audit_add,
    .audit_range = pg_audit_range,
    .config_get = pg_config_get,
    .config_put = pg_config_put,
    .decision_add = pg_decision_add,
    .decision_range = pg_decision_range,
    .decision_prune = pg_decision_prune,
    .set_node = pg_set_node,
    .defer_flush = pg_defer_flush,
    .alert_put = pg_alert_put,
    .alert_list = pg_alert_list,
    .alert_prune = pg_alert_prune,
    .command_put = pg_command_put,
    .command_get = pg_command_get,
    .command_range = pg_command_range,
    .estop_put = pg_estop_put,
};

/* Creates the tables (in one transaction) and checks the schema version. */
static int create_schema(struct pg_store *s, char *msg, size_t len)
{
    int e = simple(s, "BEGIN", NULL);
    if (!e)
        e = simple(s, schema, NULL); /* several statements in one query; constants only */
    if (e) {
        why_failed(s, e, msg, len);
        simple(s, "ROLLBACK", NULL);
        return e;
    }
    PGresult *r;
    e = simple(s, "COMMIT", NULL);
    if (!e)
        e = simple(s, "SELECT value FROM meta WHERE name = 'schema_version'", &r);
    if (e) {
        why_failed(s, e, msg, len);
        return e;
    }
    int64_t v = PQntuples(r) == 1 ? g_int(r, 0, 0) : -1;
    PQclear(r);
    if (v != SCHEMA_VERSION) {
        snprintf(msg, len, "schema version %lld in the database, this build knows %d", (long long)v,
                 SCHEMA_VERSION);
        return -EPROTO;
    }
    return 0;
}

int store_pg_open(const char *conninfo, struct store **out, char *err, size_t errlen)
{
    *out = NULL;
    /* Name where the location came from: the operator looks there. */
    const char *env = getenv("DATABASE_URL");
    const char *src = env && !strcmp(env, conninfo) ? "DATABASE_URL" : "--db";
    struct pg_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->base.ops = &pg_ops;
    s->call_ms = CALL_DEFAULT_MS + CALL_MARGIN_MS;
    mask_url(s->url, sizeof(s->url), conninfo);
    tel_insert_sql(s->batch_sql, sizeof(s->batch_sql), TEL_BATCH);

    /* Defaults first: what the URL (expanded from dbname) says wins over them. */
    const char *timeout = getenv("PGCONNECT_TIMEOUT");
    const char *opts[][2] = {
        {"client_encoding", "UTF8"},
        {"connect_timeout", timeout ? timeout : CONNECT_TIMEOUT_S},
        {"keepalives", "1"},
        {"keepalives_idle", "10"},
        {"keepalives_interval", "5"},
        {"keepalives_count", "3"},
        {"tcp_user_timeout", "10000"}, /* ms unacknowledged before the link counts as dead */
        {"fallback_application_name", "der-headend"},
        {"dbname", conninfo},
    };
    enum { N_OPTS = sizeof(opts) / sizeof(opts[0]) };
    const char *kw[N_OPTS + 1], *val[N_OPTS + 1];
    for (size_t i = 0; i < N_OPTS; i++) {
        kw[i] = opts[i][0];
        val[i] = opts[i][1];
    }
    kw[N_OPTS] = val[N_OPTS] = NULL;

    char msg[MSG_MAX] = "";
    const char *what = "connect";
    int e = 0;
    s->conn = PQconnectdbParams(kw, val, 1);
    if (s->conn)
        PQsetNoticeProcessor(s->conn, on_notice, s);
    if (!s->conn) {
        snprintf(msg, sizeof(msg), "out of memory");
        e = -ENOMEM;
    } else if (PQstatus(s->conn) != CONNECTION_OK) {
        one_line(msg, sizeof(msg), PQerrorMessage(s->conn));
        e = -ENOTCONN;
    } else if ((e = settings(s, msg, sizeof(msg))) < 0) {
        what = "session settings";
    } else if ((e = create_schema(s, msg, sizeof(msg))) < 0) {
        what = "create schema";
    } else if ((e = setup(s, msg, sizeof(msg))) < 0) {
        what = "prepare statements";
    }
    if (e < 0) {
        snprintf(err, errlen, "PostgreSQL (%s=%s): %s: %s", src, s->url, what, msg);
        pg_close(&s->base);
        return e;
    }
    *out = &s->base;
    return 0;
}
