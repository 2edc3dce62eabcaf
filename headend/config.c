/* config: the headend's option table. Each row names a field of struct headend_config by
 * offset, so adding an option is adding a row (and a field); the parser, --help and the docs
 * table read the same rows. Keepalive defaults follow docs/protocol.md: the server's
 * minimum ping interval must not exceed the gateways' keepalive time (gateway default 10 s),
 * else idle gateways get GOAWAY "too_many_pings". */
#include "headend/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/duration.h"
#include "common/log.h"
#include "headend/webhook.h"

enum opt_type {
    OPT_STR,
    OPT_INT,
    OPT_BOOL,
    OPT_FLAG, /* no value on the command line: given = 1 */
    OPT_MS,   /* a duration (common/duration.h: 500ms, 10s, 2m) kept in milliseconds */
    OPT_S     /* a duration of whole seconds, kept in seconds */
};

/* min and max are in the field's unit (ms for OPT_MS, s for OPT_S). A duration option also
 * answers to its old spelling, name + "-ms" (OPT_MS) or "-s" (OPT_S), taking a bare number in
 * that unit: deprecated, it logs a warning (deployed command lines keep working). */
struct opt {
    const char *name;
    enum opt_type type;
    size_t offset;
    const char *def;
    long min, max;
    const char *help;
};

#define F(f) offsetof(struct headend_config, f)

static const struct opt table[] = {
    {"grpc-listen", OPT_STR, F(grpc_listen), "127.0.0.1:50051", 0, 0,
     "gRPC listen address host:port; port 0 picks a free port (printed on stdout)"},
    {"http-listen", OPT_STR, F(http_listen), "127.0.0.1:8080", 0, 0,
     "REST listen address host:port; port 0 picks a free port (printed on stdout)"},
    {"inventory", OPT_STR, F(inventory), "inventory.json", 0, 0,
     "assets file (JSON): sites, assets, limits and the gateways allowed per site"},
    {"db", OPT_STR, F(db), "", 0, 0,
     "store: SQLite file (WAL) or :memory:; DATABASE_URL=postgres://... overrides it; "
     "default $STATE_DIRECTORY/headend.db, else $XDG_STATE_HOME/derloop/headend.db, else "
     "~/.local/state/derloop/headend.db"},
    {"keepalive-time", OPT_MS, F(keepalive_time_ms), "10s", 1000, 3600000,
     "interval of the headend's HTTP/2 keepalive pings to each gateway"},
    {"keepalive-timeout", OPT_MS, F(keepalive_timeout_ms), "5s", 100, 600000,
     "a gateway that does not answer a ping within this is disconnected"},
    {"min-ping-interval", OPT_MS, F(min_ping_interval_ms), "5s", 100, 3600000,
     "smallest interval accepted between a gateway's pings (keep <= the gateways' keepalive)"},
    {"idle-timeout", OPT_MS, F(idle_timeout_ms), "2m", 0, 2073600000,
     "close connections without any stream after this long; 0 = never"},
    {"presence-timeout", OPT_MS, F(presence_timeout_ms), "30s", 1000, 3600000,
     "a connected gateway silent (no heartbeat, telemetry or ack) this long is shown stale"},
    {"max-streams", OPT_INT, F(max_streams), "20000", 1, 1000000,
     "most concurrent gateway streams; beyond it new streams get RESOURCE_EXHAUSTED"},
    {"register-timeout", OPT_MS, F(register_timeout_ms), "5s", 100, 600000,
     "a stream that has not sent Register within this is closed (DEADLINE_EXCEEDED)"},
    {"max-pending-per-peer", OPT_INT, F(max_pending_per_peer), "64", 1, 1000000,
     "streams not yet registered from one IP address; a newer one closes the oldest"},
    {"max-streams-per-connection", OPT_INT, F(max_streams_per_connection), "100", 1, 1000000,
     "concurrent streams on one HTTP/2 connection (a gateway needs one)"},
    {"handshake-timeout", OPT_MS, F(handshake_timeout_ms), "10s", 100, 600000,
     "a connection that has not finished its HTTP/2 (and TLS) handshake within this is closed"},
    {"telemetry-future", OPT_MS, F(telemetry_future_ms), "5m", 0, 86400000,
     "telemetry stamped further than this ahead of the headend's clock is stored, counted, "
     "and never becomes an asset's latest sample"},
    {"telemetry-retention", OPT_S, F(telemetry_retention_s), "1d", 60, 31622400,
     "telemetry older than this is deleted from the store (checked every 10 s)"},
    {"telemetry-flush", OPT_MS, F(telemetry_flush_ms), "100ms", 1, 10000,
     "telemetry is written to the store in one transaction at most this often"},
    {"dispatch-ttl-default", OPT_S, F(dispatch_ttl_default_s), "5m", 1, 604800,
     "ttl_s of POST /dispatch when the request has none"},
    {"dispatch-ttl-min", OPT_S, F(dispatch_ttl_min_s), "1s", 1, 604800,
     "smallest ttl_s accepted by POST /dispatch"},
    {"dispatch-ttl-max", OPT_S, F(dispatch_ttl_max_s), "1d", 1, 604800,
     "largest ttl_s accepted by POST /dispatch"},
    {"shutdown-grace", OPT_MS, F(shutdown_grace_ms), "1s", 0, 60000,
     "on SIGINT/SIGTERM, time given to streams before they are cancelled"},
    {"debug", OPT_BOOL, F(log_debug), "0", 0, 1, "log per-message debug lines"},
    /* REST listener limits: idle or half-sent connections must not keep /healthz from
     * answering. The minimum connections (16) is the maximum threads, as libmicrohttpd
     * shares the connection limit out among its threads. */
    {"http-max-connections", OPT_INT, F(http_max_connections), "256", 16, 65536,
     "most concurrent REST connections; beyond it new ones wait in the listen backlog"},
    {"http-max-per-ip", OPT_INT, F(http_max_per_ip), "32", 0, 65536,
     "most concurrent REST connections from one IP address; 0 = no per-address limit"},
    {"http-timeout", OPT_S, F(http_timeout_s), "10s", 1, 3600,
     "a REST connection silent this long (idle or a request half sent) is closed"},
    {"http-threads", OPT_INT, F(http_threads), "2", 1, 16,
     "REST worker threads (each with its own epoll set)"},
    {"http-max-event-streams", OPT_INT, F(http_max_event_streams), "64", 0, 4096,
     "most open GET /events streams (beyond it 503); 0 = no event streams"},
    {"tls-cert", OPT_STR, F(tls_cert), "", 0, 0,
     "PEM certificate (chain) of the gRPC listener; with --tls-key the gateways speak TLS"},
    {"tls-key", OPT_STR, F(tls_key), "", 0, 0, "PEM private key of --tls-cert"},
    {"tls-client-ca", OPT_STR, F(tls_client_ca), "", 0, 0,
     "PEM CA certificate(s) of the gateways: mutual TLS, each gateway needs a certificate "
     "signed by it, and its identity (SAN URI urn:derloop:gateway:ID, else the CN) must be "
     "the gateway_id it registers"},
    /* REST security: HTTPS, bearer tokens, the rate limit of state-changing requests. */
    {"http-tls-cert", OPT_STR, F(http_tls_cert), "", 0, 0,
     "PEM certificate (chain) of the REST listener; with --http-tls-key it serves HTTPS only"},
    {"http-tls-key", OPT_STR, F(http_tls_key), "", 0, 0, "PEM private key of --http-tls-cert"},
    {"auth", OPT_FLAG, F(auth), "0", 0, 1,
     "REST asks for a bearer token even while the store holds none (it always does once a "
     "token exists, and on a non-loopback address)"},
    {"http-post-per-min", OPT_INT, F(http_post_per_min), "60", 1, 1000000,
     "state-changing REST requests (POST, DELETE) a token may make per minute; beyond it 429"},
    {"http-post-burst", OPT_INT, F(http_post_burst), "10", 1, 1000000,
     "state-changing REST requests a token may make at once before the per-minute rate applies"},
    {"insecure", OPT_FLAG, F(insecure), "0", 0, 1,
     "allow, on a non-loopback address, gRPC without mutual TLS (anyone who reaches the port can "
     "register as any gateway) and REST without HTTPS (tokens cross the network in clear)"},
    /* Ping and alerts (docs/operations.md, "Alerts"): a rule's threshold 0 turns it off. */
    {"ping-interval", OPT_MS, F(ping_interval_ms), "30s", 0, 3600000,
     "a Ping to every connected gateway this often (round-trip time in /agents and "
     "/metrics); 0 = only on POST /agents/:gateway/ping"},
    {"alert-eval", OPT_MS, F(alert_eval_ms), "1s", 100, 60000,
     "the alert rules are evaluated this often"},
    {"alert-offline-after", OPT_S, F(alert_offline_after_s), "1m", 0, 86400,
     "alert gateway_offline: a site seen before has had no live session for this long"},
    {"alert-stale-after", OPT_S, F(alert_stale_after_s), "1m", 0, 86400,
     "alert gateway_stale: a connected gateway has sent nothing for this long"},
    {"alert-lag-max", OPT_MS, F(alert_lag_max_ms), "30s", 0, 86400000,
     "alert telemetry_lag: an asset's latest sample arrived this long after its timestamp"},
    {"alert-soc-reserve-pct", OPT_INT, F(alert_soc_reserve_pct), "10", 0, 100,
     "alert soc_low: a battery's state of charge below this (cleared 2 points above it)"},
    {"alert-fault", OPT_BOOL, F(alert_fault), "1", 0, 1,
     "alert asset_fault: an asset's operating state is FAULT (from gateways reporting none: its "
     "status "
     "contains \"fault\")"},
    {"alert-dispatch", OPT_BOOL, F(alert_dispatch), "1", 0, 1,
     "alert dispatch_failed: a dispatch ended FAILED or EXPIRED (cleared when acknowledged)"},
    {"alert-modbus-error-pct", OPT_INT, F(alert_modbus_error_pct), "10", 0, 100,
     "alert modbus_errors: this share of a device's Modbus calls failed over the window (the "
     "gateway's counters in telemetry)"},
    {"alert-modbus-window", OPT_S, F(alert_modbus_window_s), "5m", 1, 86400,
     "alert modbus_errors: the window of the error rate (it clears within this once the "
     "errors stop)"},
    {"alert-modbus-min-requests", OPT_INT, F(alert_modbus_min_requests), "20", 1, 1000000,
     "alert modbus_errors: fewer calls than this in the window give no rate"},
    {"alert-history", OPT_INT, F(alert_history), "1000", 1, 1000000,
     "cleared alerts kept for GET /alerts (and in the store, where they survive a restart)"},
    {"alert-webhook", OPT_STR, F(alert_webhook), "", 0, 0,
     "http://HOST[:PORT]/PATH: every alert change is POSTed there as JSON (http only)"},
    {"alert-webhook-timeout", OPT_MS, F(alert_webhook_timeout_ms), "5s", 100, 60000,
     "one webhook POST (connect, send, status line) must finish within this"},
    {"metrics-per-site", OPT_FLAG, F(metrics_per_site), "0", 0, 1,
     "GET /metrics also carries per-site gauges (power, state of charge, connected): "
     "5 series per site, so off by default for large fleets"},
    {"alert-webhook-retries", OPT_INT, F(alert_webhook_retries), "5", 0, 100,
     "a failed webhook POST is retried this many times (backoff from 0.5 s, doubling) and "
     "then dropped"},
    /* Several headends on one PostgreSQL (headend/cluster.h): ignored with SQLite. */
    {"node-id", OPT_STR, F(node_id), "", 0, 0,
     "this headend's name among several on one PostgreSQL (shown in /sites); "
     "default hostname:port of --grpc-listen"},
    {"cluster-heartbeat", OPT_MS, F(cluster_heartbeat_ms), "1s", 100, 60000,
     "with PostgreSQL: how often this headend renews its row and its gateways' presence"},
    {"cluster-expiry", OPT_MS, F(cluster_expiry_ms), "5s", 300, 600000,
     "with PostgreSQL: a headend silent this long is gone for the others, its gateways' "
     "sessions stale"},
};

#define NOPT (sizeof(table) / sizeof(table[0]))

/* The unit of a duration option's field, in ms; 0 for the other types. */
static int64_t unit_ms(const struct opt *o)
{
    return o->type == OPT_MS ? 1 : o->type == OPT_S ? 1000 : 0;
}

size_t config_count(void)
{
    return NOPT;
}

const char *config_name(size_t i)
{
    return i < NOPT ? table[i].name : NULL;
}

const char *config_old_name(size_t i, char *buf, size_t len)
{
    if (i >= NOPT || !unit_ms(&table[i]))
        return NULL;
    snprintf(buf, len, "%s%s", table[i].name, table[i].type == OPT_MS ? "-ms" : "-s");
    return buf;
}

int config_is_flag(size_t i)
{
    return i < NOPT && table[i].type == OPT_FLAG;
}

/* The row of name (dashes or underscores); *old set when name is a duration option's old
 * spelling (name + "-ms" or "-s"). */
static const struct opt *lookup(const char *name, int *old)
{
    char norm[64];
    size_t n = strlen(name);
    *old = 0;
    if (n >= sizeof(norm))
        return NULL;
    for (size_t i = 0; i <= n; i++)
        norm[i] = name[i] == '_' ? '-' : name[i];
    for (size_t i = 0; i < NOPT; i++) {
        size_t k = strlen(table[i].name);
        if (strcmp(table[i].name, norm) == 0)
            return &table[i];
        if (unit_ms(&table[i]) && !strncmp(table[i].name, norm, k) &&
            !strcmp(norm + k, table[i].type == OPT_MS ? "-ms" : "-s")) {
            *old = 1;
            return &table[i];
        }
    }
    return NULL;
}

/* A duration option's value: a duration (or a bare 0), or with `old` the old spelling's bare
 * number in the field's unit. The value in the field's unit, in [min, max]. */
static int parse_duration(const struct opt *o, const char *name, const char *value, int old,
                          long *out, char *err, size_t errlen)
{
    int64_t unit = unit_ms(o), ms;
    char a[32], b[32];
    if (old) {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (end == value || *end || errno) {
            snprintf(err, errlen, "--%s: '%s' is not an integer", name, value);
            return -EINVAL;
        }
        ms = v < 0 ? -1 : v > DURATION_MAX_MS / unit ? DURATION_MAX_MS + 1 : (int64_t)v * unit;
    } else if (strcmp(value, "0") == 0) {
        ms = 0;
    } else if (duration_parse(value, &ms) != 0) {
        snprintf(err, errlen, "--%s: '%s' is not a duration (such as 500ms, 10s, 2m, 1h30m)", name,
                 value);
        return -EINVAL;
    } else if (ms % unit) {
        snprintf(err, errlen, "--%s: '%s' is not a whole number of seconds", name, value);
        return -EINVAL;
    }
    if (ms < (int64_t)o->min * unit || ms > (int64_t)o->max * unit) {
        snprintf(err, errlen, "--%s: %s is outside [%s, %s]", name, value,
                 duration_format((int64_t)o->min * unit, a, sizeof(a)),
                 duration_format((int64_t)o->max * unit, b, sizeof(b)));
        return -ERANGE;
    }
    *out = (long)(ms / unit);
    return 0;
}

static int apply(struct headend_config *c, const struct opt *o, const char *name, const char *value,
                 int old, char *err, size_t errlen)
{
    char *field = (char *)c + o->offset;
    if (unit_ms(o)) {
        long v;
        int rc = parse_duration(o, name, value, old, &v, err, errlen);
        if (rc)
            return rc;
        int iv = (int)v;
        memcpy(field, &iv, sizeof(iv));
        return 0;
    }
    if (o->type == OPT_STR) {
        if (strlen(value) >= CONFIG_STR_MAX) {
            snprintf(err, errlen, "--%s: longer than %d characters", o->name, CONFIG_STR_MAX - 1);
            return -ERANGE;
        }
        strcpy(field, value);
        return 0;
    }
    if (o->type == OPT_BOOL || o->type == OPT_FLAG) {
        int b;
        if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes"))
            b = 1;
        else if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no"))
            b = 0;
        else {
            snprintf(err, errlen, "--%s: '%s' is not a boolean (0/1/true/false)", o->name, value);
            return -EINVAL;
        }
        memcpy(field, &b, sizeof(b));
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (end == value || *end || errno) {
        snprintf(err, errlen, "--%s: '%s' is not an integer", o->name, value);
        return -EINVAL;
    }
    if (v < o->min || v > o->max) {
        snprintf(err, errlen, "--%s: %ld is outside [%ld, %ld]", o->name, v, o->min, o->max);
        return -ERANGE;
    }
    int iv = (int)v;
    memcpy(field, &iv, sizeof(iv));
    return 0;
}

void config_defaults(struct headend_config *c)
{
    char err[128];
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NOPT; i++)
        apply(c, &table[i], table[i].name, table[i].def, 0, err, sizeof(err));
}

int config_set(struct headend_config *c, const char *name, const char *value, char *err,
               size_t errlen)
{
    int old;
    const struct opt *o = lookup(name, &old);
    if (!o) {
        snprintf(err, errlen, "unknown option --%s", name);
        return -ENOENT;
    }
    int rc = apply(c, o, name, value, old, err, errlen);
    if (rc == 0 && old)
        log_event(LOG_WARN,
                  "event=deprecated_option option=--%s use=--%s reason=\"--%s takes a duration "
                  "(e.g. %s); the old spelling will go\"",
                  name, o->name, o->name, o->def);
    return rc;
}

int config_check(const struct headend_config *c, char *err, size_t errlen)
{
    if (c->dispatch_ttl_min_s > c->dispatch_ttl_max_s) {
        snprintf(err, errlen, "--dispatch-ttl-min %ds exceeds --dispatch-ttl-max %ds",
                 c->dispatch_ttl_min_s, c->dispatch_ttl_max_s);
        return -EINVAL;
    }
    if (c->dispatch_ttl_default_s < c->dispatch_ttl_min_s ||
        c->dispatch_ttl_default_s > c->dispatch_ttl_max_s) {
        snprintf(err, errlen, "--dispatch-ttl-default %ds is outside [%ds, %ds]",
                 c->dispatch_ttl_default_s, c->dispatch_ttl_min_s, c->dispatch_ttl_max_s);
        return -EINVAL;
    }
    for (const char *p = c->node_id; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '\\' || *p == 0x7f) {
            snprintf(err, errlen, "--node-id \"%.64s\": no spaces, quotes or backslashes",
                     c->node_id);
            return -EINVAL;
        }
    if (strlen(c->node_id) > 63) {
        snprintf(err, errlen, "--node-id: at most 63 characters, got %zu", strlen(c->node_id));
        return -EINVAL;
    }
    if (c->cluster_expiry_ms < 2 * c->cluster_heartbeat_ms) {
        snprintf(err, errlen,
                 "--cluster-expiry %dms is less than twice --cluster-heartbeat %dms (one late "
                 "heartbeat would make this headend's gateways look gone)",
                 c->cluster_expiry_ms, c->cluster_heartbeat_ms);
        return -EINVAL;
    }
    if (!strchr(c->grpc_listen, ':') || !strchr(c->http_listen, ':')) {
        snprintf(err, errlen, "listen addresses are host:port");
        return -EINVAL;
    }
    if (!c->tls_cert[0] != !c->tls_key[0]) {
        snprintf(err, errlen, "--tls-cert and --tls-key go together");
        return -EINVAL;
    }
    if (c->tls_client_ca[0] && !c->tls_cert[0]) {
        snprintf(err, errlen, "--tls-client-ca needs --tls-cert and --tls-key");
        return -EINVAL;
    }
    /* Without mutual TLS a gateway's identity is whatever its Register claims: fine on a
     * development machine, not where others can reach the port. Server-only TLS hides the
     * traffic but still lets anyone register as any gateway, so it does not count. */
    if (!config_is_loopback(c->grpc_listen) && strcmp(config_grpc_tls_mode(c), "mutual") != 0 &&
        !c->insecure) {
        snprintf(err, errlen,
                 "--grpc-listen %s is not a loopback address: give --tls-cert, --tls-key and "
                 "--tls-client-ca (mutual TLS), or --insecure to accept any gateway's claim",
                 c->grpc_listen);
        return -EINVAL;
    }
    if (!c->http_tls_cert[0] != !c->http_tls_key[0]) {
        snprintf(err, errlen, "--http-tls-cert and --http-tls-key go together");
        return -EINVAL;
    }
    char host[CONFIG_STR_MAX], path[CONFIG_STR_MAX];
    int port;
    if (c->alert_webhook[0] && webhook_parse_url(c->alert_webhook, host, sizeof(host), &port, path,
                                                 sizeof(path), err, errlen))
        return -EINVAL;
    return 0;
}

int config_is_loopback(const char *listen)
{
    if (!strncmp(listen, "unix:", 5) || !strncmp(listen, "unix-abstract:", 14))
        return 1;
    if (!strncmp(listen, "ipv4:", 5) || !strncmp(listen, "ipv6:", 5))
        listen += 5;
    const char *colon = strrchr(listen, ':');
    size_t n = colon ? (size_t)(colon - listen) : strlen(listen);
    char host[CONFIG_STR_MAX];
    if (n >= sizeof(host))
        return 0;
    memcpy(host, listen, n);
    host[n] = '\0';
    if (!strcmp(host, "localhost") || !strcmp(host, "[::1]") || !strcmp(host, "::1"))
        return 1;
    /* 127.0.0.0/8, written as four decimal numbers */
    unsigned a, b, cc, d;
    char extra;
    return sscanf(host, "%u.%u.%u.%u%c", &a, &b, &cc, &d, &extra) == 4 && a == 127 && b < 256 &&
           cc < 256 && d < 256;
}

const char *config_grpc_tls_mode(const struct headend_config *c)
{
    if (!c->tls_cert[0])
        return "off";
    return c->tls_client_ca[0] ? "mutual" : "server";
}

/* "1s..1h" for a duration option, "1..16" for a number; "" for the others. */
static const char *range_text(const struct opt *o, char *buf, size_t len)
{
    char a[32], b[32];
    int64_t u = unit_ms(o);
    if (u)
        snprintf(buf, len, "%s..%s", duration_format((int64_t)o->min * u, a, sizeof(a)),
                 duration_format((int64_t)o->max * u, b, sizeof(b)));
    else if (o->type == OPT_INT)
        snprintf(buf, len, "%ld..%ld", o->min, o->max);
    else
        buf[0] = '\0';
    return buf;
}

void config_print_help(FILE *out)
{
    for (size_t i = 0; i < NOPT; i++) {
        const struct opt *o = &table[i];
        char lhs[64], range[64];
        snprintf(lhs, sizeof(lhs), "--%s%s", o->name,
                 o->type == OPT_STR    ? " TEXT"
                 : o->type == OPT_INT  ? " N"
                 : unit_ms(o)          ? " DURATION"
                 : o->type == OPT_FLAG ? ""
                                       : " 0|1");
        fprintf(out, "  %-30s %s (default: %s", lhs, o->help,
                o->type == OPT_FLAG ? "off"
                : o->def[0]         ? o->def
                                    : "none");
        if (range_text(o, range, sizeof(range))[0])
            fprintf(out, "; %s", range);
        fputs(")\n", out);
    }
}

void config_print_markdown(FILE *out)
{
    fputs("| option | default | range | meaning |\n|---|---|---|---|\n", out);
    for (size_t i = 0; i < NOPT; i++) {
        const struct opt *o = &table[i];
        char range[64];
        if (o->type == OPT_FLAG || !o->def[0])
            fprintf(out, "| `--%s` | %s | ", o->name, o->type == OPT_FLAG ? "off" : "none");
        else
            fprintf(out, "| `--%s` | `%s` | ", o->name, o->def);
        fprintf(out, "%s | %s |\n", range_text(o, range, sizeof(range)), o->help);
    }
}
