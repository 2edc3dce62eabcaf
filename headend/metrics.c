/* metrics: names follow Prometheus conventions (base units, _total for counters). Per-asset
 * series carry asset and site labels; ids are validated at inventory load (no quotes or
 * newlines can reach a label from the wire, since labels come from the inventory). */
#include "headend/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "headend/webhook.h"

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
            (unsigned long long)v);
}

int metrics_render(const struct hub *h, int64_t now_ms, char **out, size_t *len)
{
    FILE *f = open_memstream(out, len);
    if (!f)
        return -ENOMEM;
    const struct hub_counters *c = hub_counters(h);
    const struct registry *reg = hub_registry(h);
    const struct inventory *inv = hub_inventory(h);
    const struct headend_config *cfg = hub_config(h);

    fprintf(f,
            "# HELP der_headend_gateways_connected Registered gateway streams.\n"
            "# TYPE der_headend_gateways_connected gauge\n"
            "der_headend_gateways_connected %zu\n",
            registry_sessions(reg));
    fprintf(f,
            "# HELP der_headend_streams Open gRPC streams, registered or not.\n"
            "# TYPE der_headend_streams gauge\nder_headend_streams %zu\n",
            hub_streams(h));
    size_t stale = 0;
    for (size_t i = 0; i < inventory_site_count(inv); i++) {
        const struct session *s = registry_site(reg, i);
        if (s && now_ms - s->last_seen_ms > cfg->presence_timeout_ms)
            stale++;
    }
    fprintf(f,
            "# HELP der_headend_gateways_stale Connected gateways silent longer than the "
            "presence timeout.\n# TYPE der_headend_gateways_stale gauge\n"
            "der_headend_gateways_stale %zu\n",
            stale);
    counter(f, "der_headend_streams_opened_total", "gRPC streams accepted.", c->streams_opened);
    counter(f, "der_headend_streams_closed_total", "gRPC streams ended.", c->streams_closed);
    counter(f, "der_headend_registrations_total", "Successful Register messages.",
            c->registrations);
    counter(f, "der_headend_sessions_replaced_total",
            "Sessions replaced by a reconnecting gateway.", c->replaced);
    counter(f, "der_headend_claims_accepted_total", "Asset claims accepted.", c->claims_accepted);
    counter(f, "der_headend_claims_rejected_total", "Asset claims rejected (inventory).",
            c->claims_rejected);
    counter(f, "der_headend_registers_denied_total", "Register messages with no asset accepted.",
            c->register_denied);
    counter(f, "der_headend_telemetry_messages_total", "Telemetry messages accepted.",
            c->telemetry);
    counter(f, "der_headend_telemetry_rejected_total",
            "Telemetry for assets the session does not serve.", c->telemetry_rejected);
    counter(f, "der_headend_telemetry_future_total",
            "Telemetry stamped beyond telemetry-future-ms ahead: stored, never latest.",
            c->telemetry_future);
    counter(f, "der_headend_telemetry_acks_total", "TelemetryAck messages sent (after commits).",
            c->telemetry_acks);
    counter(f, "der_headend_telemetry_ack_closes_total",
            "Streams closed because their telemetry could not be committed.", c->ack_closes);
    counter(f, "der_headend_ids_refused_total",
            "Register messages refused for control characters in an id.", c->ids_refused);
    counter(f, "der_headend_acks_refused_total",
            "SetpointAcks refused: not sent on that session, or allocations it may not report.",
            c->acks_refused);
    counter(f, "der_headend_register_timeouts_total",
            "Streams closed for not sending Register within register-timeout-ms.",
            c->register_timeouts);
    counter(f, "der_headend_peer_evictions_total",
            "Unregistered streams closed because their address opened too many.",
            c->peer_evictions);
    counter(f, "der_headend_malformed_messages_total", "Undecodable AgentMessages.", c->malformed);
    counter(f, "der_headend_protocol_errors_total", "Protocol violations.", c->protocol_errors);
    counter(f, "der_headend_store_errors_total", "Failed store operations.", c->store_errors);
    counter(f, "der_headend_store_flushes_total", "Telemetry flush transactions.", c->flushes);
    counter(f, "der_headend_store_rows_total", "Telemetry rows written.", c->flushed_rows);
    counter(f, "der_headend_telemetry_pruned_total", "Telemetry rows removed by retention.",
            c->pruned_rows);
    counter(f, "der_headend_dispatch_created_total", "Dispatches created (POST /dispatch).",
            c->dispatch_created);
    counter(f, "der_headend_dispatch_sent_total", "Setpoint messages sent (replays included).",
            c->dispatch_sent);
    fputs("# HELP der_headend_dispatch_outcomes_total Dispatch state changes by state.\n"
          "# TYPE der_headend_dispatch_outcomes_total counter\n",
          f);
    static const char *const names[] = {NULL,       "RECEIVED", "APPLIED",
                                        "REJECTED", "EXPIRED",  "FAILED"};
    for (int i = 1; i <= 5; i++)
        fprintf(f, "der_headend_dispatch_outcomes_total{state=\"%s\"} %llu\n", names[i],
                (unsigned long long)c->dispatch_state[i]);
    fputs("# HELP der_headend_dispatch_apply_seconds POST /dispatch to APPLIED ack.\n"
          "# TYPE der_headend_dispatch_apply_seconds histogram\n",
          f);
    static const char *const le[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "1", "+Inf"};
    uint64_t cum = 0;
    for (int i = 0; i < 8; i++) {
        cum += c->apply_latency_bucket[i];
        fprintf(f, "der_headend_dispatch_apply_seconds_bucket{le=\"%s\"} %llu\n", le[i],
                (unsigned long long)cum);
    }
    fprintf(f, "der_headend_dispatch_apply_seconds_sum %.6f\n", c->apply_latency_sum_s);
    fprintf(f, "der_headend_dispatch_apply_seconds_count %llu\n",
            (unsigned long long)c->apply_latency_count);

    fputs("# HELP der_headend_asset_connected 1 when a session serves the asset.\n"
          "# TYPE der_headend_asset_connected gauge\n",
          f);
    for (size_t i = 0; i < inventory_asset_count(inv); i++) {
        const struct inv_asset *a = inventory_asset_at(inv, i);
        fprintf(f, "der_headend_asset_connected{asset=\"%s\",site=\"%s\"} %d\n", a->id,
                inventory_site_at(inv, a->site)->id, registry_asset(reg, i) != NULL);
    }
    fputs("# HELP der_headend_asset_telemetry_rate_hz Telemetry messages per second (10 s "
          "window).\n# TYPE der_headend_asset_telemetry_rate_hz gauge\n",
          f);
    for (size_t i = 0; i < inventory_asset_count(inv); i++) {
        const struct inv_asset *a = inventory_asset_at(inv, i);
        const struct asset_state *st = hub_asset_state(h, i);
        /* A silent asset must read 0, not its last window's rate. */
        double rate = st->has_latest && now_ms - st->latest.received_ms < 20000 ? st->rate_hz : 0;
        fprintf(f, "der_headend_asset_telemetry_rate_hz{asset=\"%s\",site=\"%s\"} %.3f\n", a->id,
                inventory_site_at(inv, a->site)->id, rate);
    }
    fputs("# HELP der_headend_asset_telemetry_lag_seconds Headend receive time minus the "
          "sample's ts_ms, latest sample.\n# TYPE der_headend_asset_telemetry_lag_seconds gauge\n",
          f);
    for (size_t i = 0; i < inventory_asset_count(inv); i++) {
        const struct asset_state *st = hub_asset_state(h, i);
        if (!st->has_latest)
            continue;
        const struct inv_asset *a = inventory_asset_at(inv, i);
        fprintf(f, "der_headend_asset_telemetry_lag_seconds{asset=\"%s\",site=\"%s\"} %.3f\n",
                a->id, inventory_site_at(inv, a->site)->id, st->lag_ms / 1000.0);
    }
    fputs("# HELP der_headend_asset_telemetry_total Telemetry messages per asset since start.\n"
          "# TYPE der_headend_asset_telemetry_total counter\n",
          f);
    for (size_t i = 0; i < inventory_asset_count(inv); i++) {
        const struct inv_asset *a = inventory_asset_at(inv, i);
        fprintf(f, "der_headend_asset_telemetry_total{asset=\"%s\",site=\"%s\"} %llu\n", a->id,
                inventory_site_at(inv, a->site)->id,
                (unsigned long long)hub_asset_state(h, i)->messages);
    }
    /* Ping round trips, per site with its gateway (ids from the inventory and Register,
     * which passed the id rules: no quote or newline reaches a label). */
    fputs("# HELP der_headend_gateway_rtt_seconds Ping round trip, moving average (1/4 weight "
          "of the newest).\n# TYPE der_headend_gateway_rtt_seconds gauge\n",
          f);
    for (size_t i = 0; i < inventory_site_count(inv); i++) {
        const struct site_state *ss = hub_site_state(h, i);
        if (ss->has_rtt)
            fprintf(f, "der_headend_gateway_rtt_seconds{site=\"%s\",gateway=\"%s\"} %.4f\n",
                    inventory_site_at(inv, i)->id, ss->gateway_id, ss->rtt_ewma_ms / 1000.0);
    }
    fputs("# HELP der_headend_gateway_rtt_last_seconds The last Ping round trip.\n"
          "# TYPE der_headend_gateway_rtt_last_seconds gauge\n",
          f);
    for (size_t i = 0; i < inventory_site_count(inv); i++) {
        const struct site_state *ss = hub_site_state(h, i);
        if (ss->has_rtt)
            fprintf(f, "der_headend_gateway_rtt_last_seconds{site=\"%s\",gateway=\"%s\"} %.4f\n",
                    inventory_site_at(inv, i)->id, ss->gateway_id, ss->rtt_last_ms / 1000.0);
    }
    /* the emergency stop per site: 1 while operators hold one (docs/operations.md) */
    fputs("# HELP der_headend_site_estop 1 while an emergency stop holds the site.\n"
          "# TYPE der_headend_site_estop gauge\n",
          f);
    for (size_t i = 0; i < inventory_site_count(inv); i++)
        fprintf(f, "der_headend_site_estop{site=\"%s\"} %d\n", inventory_site_at(inv, i)->id,
                hub_site_state(h, i)->estop_active);
    counter(f, "der_headend_pings_sent_total", "Ping messages sent.", c->pings_sent);
    counter(f, "der_headend_pongs_total", "Pongs that matched the last Ping.", c->pongs);
    counter(f, "der_headend_config_pushes_total", "ConfigPush messages sent.", c->config_pushes);
    counter(f, "der_headend_config_applied_total", "ConfigReports APPLIED.", c->config_applied);
    counter(f, "der_headend_config_rejected_total", "ConfigReports REJECTED.", c->config_rejected);

    const struct alerts *al = hub_alerts(h);
    fputs("# HELP der_headend_alerts_active Active alerts by rule.\n"
          "# TYPE der_headend_alerts_active gauge\n",
          f);
    for (int r = 0; r < ALERT_RULES; r++)
        fprintf(f, "der_headend_alerts_active{rule=\"%s\"} %zu\n", alert_rule_name(r),
                alerts_active(al, r));
    fputs("# HELP der_headend_alerts_raised_total Alerts raised by rule since start.\n"
          "# TYPE der_headend_alerts_raised_total counter\n",
          f);
    for (int r = 0; r < ALERT_RULES; r++)
        fprintf(f, "der_headend_alerts_raised_total{rule=\"%s\"} %llu\n", alert_rule_name(r),
                (unsigned long long)alerts_raised(al, r));
    struct webhook_stats ws;
    hub_webhook_stats(h, &ws);
    counter(f, "der_headend_alert_webhook_sent_total", "Alert changes the webhook took (2xx).",
            ws.sent);
    counter(f, "der_headend_alert_webhook_failures_total", "Webhook POSTs that failed.",
            ws.failures);
    counter(f, "der_headend_alert_webhook_dropped_total",
            "Alert changes given up (retries spent or queue full).", ws.dropped);
    return fclose(f) == 0 ? 0 : -EIO;
}
