/* config: the headend's settings as one declarative table (name, type, default, bounds, help).
 * Validation, `der-headend --help` and the table in docs/operations.md all come from it.
 * struct headend_config is a plain value; it owns nothing (strings are inline arrays). */
#ifndef HEADEND_CONFIG_H
#define HEADEND_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define CONFIG_STR_MAX 256

struct headend_config {
    char grpc_listen[CONFIG_STR_MAX];
    char http_listen[CONFIG_STR_MAX];
    char inventory[CONFIG_STR_MAX];
    char db[CONFIG_STR_MAX];
    int keepalive_time_ms;
    int keepalive_timeout_ms;
    int min_ping_interval_ms;
    int idle_timeout_ms;
    int presence_timeout_ms;
    int max_streams;
    int register_timeout_ms;
    int max_pending_per_peer;
    int max_streams_per_connection;
    int handshake_timeout_ms;
    int telemetry_future_ms;
    int telemetry_retention_s;
    int telemetry_flush_ms;
    int dispatch_ttl_default_s;
    int dispatch_ttl_min_s;
    int dispatch_ttl_max_s;
    int shutdown_grace_ms;
    int log_debug;
    /* REST listener limits (docs/operations.md, REST limits) */
    int http_max_connections;
    int http_max_per_ip;
    int http_timeout_s;
    int http_threads;
    int http_max_event_streams; /* GET /events streams (docs/operations.md, "Live events") */
    /* gRPC TLS (docs/operations.md, "Securing a deployment"): PEM files; "" = none. */
    char tls_cert[CONFIG_STR_MAX];
    char tls_key[CONFIG_STR_MAX];
    char tls_client_ca[CONFIG_STR_MAX];
    /* REST security (docs/operations.md, "Securing a deployment"): HTTPS, tokens, the rate
     * limit of state-changing requests per token. */
    char http_tls_cert[CONFIG_STR_MAX];
    char http_tls_key[CONFIG_STR_MAX];
    int auth;
    int http_post_per_min;
    int http_post_burst;
    int insecure;
    /* Ping (docs/protocol.md): the headend's round-trip probe of each gateway; 0 = none. */
    int ping_interval_ms;
    /* Alerts (docs/operations.md, "Alerts"): the rules' thresholds (0 turns a rule off), how
     * often they are evaluated, the cleared alerts kept, and the webhook. */
    int alert_eval_ms;
    int alert_offline_after_s;
    int alert_stale_after_s;
    int alert_lag_max_ms;
    int alert_soc_reserve_pct;
    int alert_fault;
    int alert_dispatch;
    int alert_modbus_error_pct;
    int alert_modbus_window_s;
    int alert_modbus_min_requests;
    int alert_history;
    char alert_webhook[CONFIG_STR_MAX];
    int alert_webhook_timeout_ms;
    int alert_webhook_retries;
    /* /metrics: per-site gauges too (docs/operations.md, "Metrics") */
    int metrics_per_site;
    /* Several headends on one PostgreSQL (docs/operations.md, "Several headends"): this
     * headend's name ("" = hostname:port of --grpc-listen), its heartbeat, and how long after
     * its last heartbeat the others count its gateway sessions as gone. */
    char node_id[CONFIG_STR_MAX];
    int cluster_heartbeat_ms;
    int cluster_expiry_ms;
};

/* Fills every field with its default. */
void config_defaults(struct headend_config *c);
/* Sets one option by its table name (dashes or underscores) from text: a duration option takes
 * common/duration.h's syntax (500ms, 10s, 2m), or under its old name a bare number (logs a
 * deprecation warning). 0, -ENOENT for an unknown name, -EINVAL / -ERANGE with a message in
 * err for a bad value. */
int config_set(struct headend_config *c, const char *name, const char *value, char *err,
               size_t errlen);
/* Cross-field checks (ttl bounds ordered, TLS files given together, no plaintext gRPC on a
 * non-loopback address without --insecure). 0 or -EINVAL + err. */
int config_check(const struct headend_config *c, char *err, size_t errlen);
/* Is the host of a listen address ("host:port") a loopback one (127.0.0.0/8, ::1,
 * localhost, a unix: socket)? An empty host, 0.0.0.0 and [::] are not. */
int config_is_loopback(const char *listen);
/* What the gRPC listener is: "mutual" (cert, key and client CA), "server" (cert and key) or
 * "off". */
const char *config_grpc_tls_mode(const struct headend_config *c);
/* `--name VALUE  help (default: x)` lines for --help. */
void config_print_help(FILE *out);
/* The table as a Markdown table, for docs/operations.md (der-headend --config-doc). */
void config_print_markdown(FILE *out);
/* Number of table rows and the name of row i (for getopt tables). */
size_t config_count(void);
const char *config_name(size_t i);
/* The old spelling of duration row i ("keepalive-time-ms", "http-timeout-s"), deprecated but
 * accepted by config_set with a warning, written into buf; NULL when row i has none. */
const char *config_old_name(size_t i, char *buf, size_t len);
/* Is row i an option without a value (--insecure)? */
int config_is_flag(size_t i);

#endif
