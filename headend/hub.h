/* hub: the headend's control plane state and protocol logic, shared by the gRPC thread
 * (hub_on_message...) and the REST thread (hub_dispatch and the read accessors). Every call
 * below requires hub_lock held, except hub_new/hub_free. The hub owns the inventory, the
 * store and every session; the transport owns only its streams and their links. */
#ifndef HEADEND_HUB_H
#define HEADEND_HUB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "headend/alerts.h"
#include "headend/config.h"
#include "headend/inventory.h"
#include "headend/session.h"
#include "headend/store.h"

/* Per configured asset, what the last telemetry said and how many messages it sent. */
struct asset_state {
    int has_latest;
    struct store_telemetry latest;
    double lag_ms; /* received_ms - ts_ms of the latest sample */
    uint64_t messages;
    char device_state[16]; /* the latest sample's boiler or EV charger state ("" = none) */
    char op_state[16];     /* the latest sample's operating state (Telemetry.state; "" = none) */
    /* The device's Modbus statistics as its gateway reports them (Telemetry 21-24): the
     * error rate's window (the modbus_errors alert), the latest timeouts and breaker. */
    struct alert_rate modbus;
    uint64_t modbus_timeouts;
    char breaker[12];
};

#define HUB_REPORT_MAX       512
#define HUB_ESTOP_REASON_MAX 256
#define HUB_RECENT           8 /* dispatches remembered per site (GET /sites/:id, active setpoints) */

/* A dispatch as the site's fleet view shows it: kept in memory, updated by sends, acks and
 * expiry, so /sites counts active setpoints without a store query. */
struct site_dispatch {
    char id[STORE_ID_MAX];
    char asset_id[INV_ID_MAX]; /* "" = a site setpoint */
    double power_w;
    int state; /* DISPATCH_* */
    int64_t created_ms, expires_ms;
};

/* What a site's assets' latest samples add up to (site signs: grid + import, battery +
 * discharge, PV + production, EV and boiler + consumption as measured). Recomputed over the
 * site's few assets whenever one of them gets a newer sample, so a /sites call is O(sites)
 * and reads no store. NAN where no asset of that kind has reported. */
struct site_agg {
    double grid_w, pv_w, battery_w, ev_w, boiler_w;
    double soc_mean;    /* mean of the batteries' latest soc (0..1) */
    int64_t updated_ms; /* received_ms of the newest sample, 0 = none */
};

/* Per configured site: the last session seen, for /agents after a disconnect (restored from
 * the store's sessions at start, so the offline alert survives a headend restart). */
struct site_state {
    char gateway_id[INV_ID_MAX];
    char peer[INV_ID_MAX];
    int64_t last_seen_ms;
    /* The configuration the gateway says it runs: from Register (status RUNNING) and each
     * ConfigReport (APPLIED, REJECTED). In memory: after a headend restart it is known again
     * at the gateway's next Register. */
    int has_reported;
    int64_t reported_version;
    char reported_status[16];
    char reported_detail[HUB_REPORT_MAX];
    int64_t reported_ms;
    /* Ping round trips (headend clock): the last one, and a moving average (1/4 weight). */
    int has_rtt;
    double rtt_last_ms, rtt_ewma_ms;
    int64_t rtt_at_ms;
    /* The emergency stop (docs/operations.md, "Emergency stop"): what operators asked, in
     * memory (estop_known: one asked since this headend started; after a restart a stop is
     * learnt again from the gateway's Register, which says whether one holds there), and what
     * the gateway reports (Register, EstopReport). */
    int estop_known, estop_active;
    char estop_id[40], estop_reason[HUB_ESTOP_REASON_MAX], estop_by[INV_ID_MAX];
    int64_t estop_since_ms;
    int estop_capable; /* the gateway's last Register said it takes EmergencyStop */
    int estop_has_reported, estop_reported_active;
    char estop_reported_id[40];
    int64_t estop_reported_ms;
    /* The fleet view (headend/sites.h): the aggregate of the latest samples, the grid meter
     * (asset index, SIZE_MAX = none: the meter named "grid" or "*[/-]grid", else the site's
     * first meter), the last HUB_RECENT dispatches, newest last. */
    struct site_agg agg;
    size_t grid_asset;
    struct site_dispatch recent[HUB_RECENT];
    size_t n_recent;
};

struct hub_counters {
    uint64_t streams_opened, streams_closed, registrations, replaced;
    uint64_t claims_accepted, claims_rejected, register_denied;
    uint64_t telemetry, telemetry_rejected, malformed, protocol_errors;
    uint64_t telemetry_future;           /* stored, but too far ahead to become "latest" */
    uint64_t telemetry_acks, ack_closes; /* TelemetryAcks sent; streams closed unacked */
    uint64_t ids_refused;                /* Register ids with control characters */
    uint64_t acks_refused;               /* SetpointAcks refused (docs/protocol.md) */
    uint64_t register_timeouts;          /* streams closed without Register in time */
    uint64_t peer_evictions;             /* unregistered streams closed for a newer one */
    uint64_t store_errors, flushes, flushed_rows, pruned_rows;
    uint64_t decisions, decisions_refused; /* Decision records stored; refused (too large,
                                            * or the Register did not announce them) */
    uint64_t dispatch_created, dispatch_sent, dispatch_state[8]; /* index: state - 100 */
    double apply_latency_sum_s;
    uint64_t apply_latency_count;
    uint64_t apply_latency_bucket[8]; /* le 0.005 0.01 0.025 0.05 0.1 0.25 1 +Inf */
    uint64_t pings_sent, pongs, pongs_unmatched;
    uint64_t config_pushes, config_applied, config_rejected;
};

struct hub;

/* Takes ownership of inv and st (freed by hub_free, even when hub_new fails). Ends store
 * sessions a previous run left open. */
int hub_new(const struct headend_config *cfg, struct inventory *inv, struct store *st,
            int64_t now_ms, struct hub **out);
void hub_free(struct hub *h);
void hub_lock(struct hub *h);
void hub_unlock(struct hub *h);

/* Transport side. A new stream gets a session (not yet registered); 0 or -ENOMEM. */
int hub_stream_open(struct hub *h, const char *peer, const struct session_link_ops *ops, void *link,
                    int64_t now_ms, struct session **out);
/* The gateway identity of a client certificate (docs/protocol.md): the one SAN URI
 * urn:derloop:gateway:ID among uris, else the common name cn (NULL or "" = none). 0 with the
 * id in out, or -EPERM with the reason in why (no identity, several different ones, or not
 * a valid id: 1..63 printable characters without space, quote or backslash). */
int hub_identity_from_cert(const char *const *uris, size_t n_uris, const char *cn, char *out,
                           size_t outlen, char *why, size_t whylen);
/* The transport verified the stream's client certificate: identity is the gateway id it
 * names, or NULL/"" with problem saying why it names none (its Registers are then refused). */
void hub_stream_authenticate(struct hub *h, struct session *s, const char *identity,
                             const char *problem);
/* One received AgentMessage (serialized bytes). Returns 0, or a negative code with
 * *grpc_status and reason set: the caller then ends that stream with them. */
int hub_on_message(struct hub *h, struct session *s, const uint8_t *data, size_t len,
                   int64_t now_ms, int *grpc_status, char *reason, size_t reason_len);
/* The stream is gone (or going): routes removed, session recorded as ended, s freed. */
void hub_stream_closed(struct hub *h, struct session *s, const char *reason, int64_t now_ms);
/* The transport's refusals, counted where /metrics reads them. */
enum hub_refusal { HUB_REGISTER_TIMEOUT, HUB_PEER_EVICTION };
void hub_count_refusal(struct hub *h, enum hub_refusal what, uint64_t n);
/* Periodic work: telemetry flush, dispatch expiry, retention. Call often (>= every 100 ms). */
void hub_tick(struct hub *h, int64_t now_ms);
/* Writes the buffered telemetry now, in one transaction; then acknowledges it to every
 * session that asked for TelemetryAck, or, when the store failed, closes those streams
 * (UNAVAILABLE) so that their gateways replay the samples on a new stream. */
int hub_flush(struct hub *h);

/* REST side. Creates a dispatch for an asset (asset_idx) or a whole site (asset_idx ==
 * SIZE_MAX), sends it when a stream serves the target, else keeps it QUEUED until one does.
 * id receives the setpoint_id. 0 or -errno. */
int hub_dispatch(struct hub *h, size_t site_idx, size_t asset_idx, double power_w, int ttl_s,
                 int64_t now_ms, char id[STORE_ID_MAX], int *state);
/* The same, recording who asked (the REST caller's token name) with the dispatch. */
int hub_dispatch_by(struct hub *h, const char *who, size_t site_idx, size_t asset_idx,
                    double power_w, int ttl_s, int64_t now_ms, char id[STORE_ID_MAX], int *state);

/* POST /assets/:id/commands: sends a Command (headend/commands.h) to the gateway serving the
 * asset; value NaN for the commands without one. 0 with *out (the new record, valid until the
 * lock is released), -ENOTCONN (no gateway connected for the asset), -EOPNOTSUPP (its gateway
 * did not announce commands in Register), -EIO (the send failed), -ENOMEM. */
struct command_rec;
int hub_command(struct hub *h, const char *who, size_t asset_idx, const char *command, double value,
                int ttl_s, int64_t now_ms, const struct command_rec **out);
/* GET /commands/:id: the record, or NULL. */
const struct command_rec *hub_command_get(struct hub *h, const char *id);

/* POST /agents/:gateway/ping: a Ping to the live session of that gateway now; its Pong
 * updates the site's RTT. 0 with *nonce, or -ENOENT (no live session of that gateway). */
int hub_ping(struct hub *h, const char *gateway_id, int64_t now_ms, uint64_t *nonce);

/* PUT /sites/:id/config: validates json with the gateway's own checks (confsync_check), stores
 * it as the site's next version (*version) and pushes it to the site's gateway when one is
 * connected and takes pushes. -EINVAL with err and field (the offending one), -EAGAIN (another
 * headend stored that version first), or a store error. */
int hub_config_put(struct hub *h, size_t site_idx, const char *json, const char *who,
                   int64_t now_ms, int64_t *version, char *err, size_t errlen, char *field,
                   size_t fieldlen);

/* POST (active 1, with reason) or DELETE /sites/:id/estop: engages or releases the site's
 * emergency stop and sends it at once to the site's gateway when it is connected and takes
 * it (*sent = 1); while active it is sent again at each Register of that site. -ENOENT for an
 * unknown site. With several headends it is also the site's shared row (announced to the
 * others): -EIO when the store refused the row (the stop holds here and is sent on a stream of
 * ours; the row is written again at the cluster's next sweep). */
int hub_estop(struct hub *h, size_t site_idx, int active, const char *reason, const char *who,
              int64_t now_ms, int *sent);

/* GET/POST /alerts (lock held). */
struct alerts *hub_alerts(const struct hub *h);
/* The webhook's counters (zeros without --alert-webhook). */
struct webhook_stats;
void hub_webhook_stats(const struct hub *h, struct webhook_stats *out);

/* Read accessors (lock held; pointers valid until unlocked). */
const struct headend_config *hub_config(const struct hub *h);
const struct inventory *hub_inventory(const struct hub *h);
struct store *hub_store(struct hub *h);
const struct registry *hub_registry(const struct hub *h);
const struct asset_state *hub_asset_state(const struct hub *h, size_t asset_idx);
const struct site_state *hub_site_state(const struct hub *h, size_t site_idx);
const struct hub_counters *hub_counters(const struct hub *h);
size_t hub_streams(const struct hub *h);

/* ---- several headends on one PostgreSQL (headend/cluster.h; docs/operations.md) ----------
 * The cluster thread is the hub's only link to the others: it tells the hub which sites other
 * headends hold (hub_site_remote), takes the dispatches this hub could not send itself
 * (hub_cluster_take) to announce them, and hands over the ones announced by others
 * (hub_cluster_deliver). All with hub_lock held. */

/* A site whose gateway session another headend holds, as that headend last wrote it. */
struct site_remote {
    int known; /* a presence row of another headend names this site */
    int held;  /* ... and that headend's heartbeat is live */
    char node_id[INV_ID_MAX];
    char gateway_id[INV_ID_MAX];
    int64_t since_ms, last_seen_ms;
    int64_t session_id; /* sessions.id of the holder's session (the database's sequence) */
    int stale;          /* the holder shows the gateway connected but silent */
    unsigned setpoints;
    struct site_agg agg;
    /* What the site's gateway reported there (the holder's site_state): the configuration it
     * runs (ConfigReport) and its emergency stop (EstopReport), so GET from any headend
     * shows them. */
    int has_reported;
    int64_t reported_version, reported_ms;
    char reported_status[16];
    char reported_detail[HUB_REPORT_MAX];
    int estop_capable, estop_has_reported, estop_reported_active;
    int64_t estop_reported_ms;
};
/* The wake callback runs (lock held) when the hub has something for the cluster thread: a
 * dispatch to announce, a session registered or ended. NULL detaches. */
typedef void (*hub_wake_fn)(void *ctx);
/* The REST event streams' ring (headend/events.h) the hub publishes into: telemetry points,
 * dispatch states; NULL detaches. */
struct events;
void hub_events_attach(struct hub *h, struct events *ev);
void hub_cluster_attach(struct hub *h, hub_wake_fn wake, void *ctx);
/* This headend's name (--node-id, filled in by main). */
const char *hub_node_id(const struct hub *h);
/* Moves up to max dispatch ids that no local stream could take into ids; the count. */
size_t hub_cluster_take(struct hub *h, char (*ids)[STORE_ID_MAX], size_t max);
/* Another headend announced dispatch d, which the cluster thread read from the store as
 * QUEUED and not expired in the database's clock (the one clock the headends share): sent
 * here when a stream of this hub serves its target. No store read (the caller resolved a
 * batch of ids in one query, without the hub lock). 1 sent, 0 not ours, or -errno. */
int hub_cluster_deliver(struct hub *h, const struct store_dispatch *d, int64_t now_ms);
/* A live presence row of another headend (node) names a newer session (session_id, from the
 * database's sequence) for site site_idx than the one this hub holds: the local session is
 * ended and its stream closed ("replaced by a newer session on headend NODE"), so nothing is
 * sent on a gateway's stale stream. 1 ended, 0 nothing to do. */
/* Another headend posted the command whose stored JSON (command_rec_json with the session)
 * is json, QUEUED for an asset whose stream may be here: sent when a stream of this hub
 * serves the asset and takes commands (the record joins this hub's table; the gateway's acks
 * update the shared row). 1 sent, 0 not ours, or -errno. */
int hub_cluster_command(struct hub *h, const char *json, int64_t now_ms);
int hub_cluster_superseded(struct hub *h, size_t site_idx, const char *node, int64_t session_id,
                           int64_t now_ms);
/* Every QUEUED dispatch of the sites this hub holds, sent (announcements are lost while the
 * cluster thread is disconnected). The count sent, or -errno when the store failed. */
int hub_cluster_rescan(struct hub *h, int64_t now_ms);
/* Sites whose emergency stop (HUB_NOTE_ESTOP) or desired configuration (HUB_NOTE_CONFIG)
 * changed here, for the cluster thread to announce: up to max into sites/kinds (taken
 * off); the count. */
enum { HUB_NOTE_ESTOP = 1, HUB_NOTE_CONFIG = 2 };
size_t hub_cluster_take_notes(struct hub *h, size_t *sites, unsigned *kinds, size_t max);
/* A site's emergency stop as the shared row says (another headend set it, or a re-scan):
 * adopted when it differs from this hub's, and sent when a stream of this hub serves the
 * site. 1 sent, 0 otherwise. */
int hub_cluster_estop(struct hub *h, const struct store_estop *row, int64_t now_ms);
/* Writes the stop rows whose write failed (hub_estop's -EIO) again: the count written. */
int hub_cluster_estop_retry(struct hub *h);
/* The site's desired configuration changed on another headend (or a sweep found a version
 * the gateway here does not run): pushed when a stream of this hub serves the site. 1
 * pushed, 0 otherwise. */
int hub_cluster_config(struct hub *h, size_t site_idx, int64_t now_ms);
/* Per site (NULL for a bad index); the cluster thread writes it. */
struct site_remote *hub_site_remote(struct hub *h, size_t site_idx);
const struct site_remote *hub_site_remote_c(const struct hub *h, size_t site_idx);

#endif
