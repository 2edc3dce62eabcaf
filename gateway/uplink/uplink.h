/* uplink: the gateway's one outbound gRPC stream to the headend (proto/der/v1/agent.proto).
 * A thread of its own owns the channel, the completion queue and the stream; it registers the
 * site's assets, sends telemetry, heartbeats and setpoint acks, receives setpoints, and
 * reconnects with jittered exponential backoff. The control loop only calls the non-blocking
 * functions below, which touch bounded queues under a mutex: it never waits on the network.
 * uplink_new returns an object the caller owns (uplink_free stops the thread). */
#ifndef DERLOOP_UPLINK_H
#define DERLOOP_UPLINK_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "gateway/uplink/agentmsg.h"
#include "gateway/control/decision.h"
#include "gateway/control/procimg.h"
#include "gateway/control/siteconf.h"
#include "gateway/strategies/strategy.h"

/* uplink.tls (docs/gateway-config.md): PEM files, read at start and again on uplink_reload.
 * ca is required (the headend's issuer); cert and key go together (mutual TLS: the
 * certificate names the gateway, docs/protocol.md); server_name, when set, is the name the
 * headend's certificate is checked against instead of the target's host (tests). */
struct uplink_tls {
    int on;
    char ca[512], cert[512], key[512];
    char server_name[256];
};

/* The "uplink" section of a site configuration (docs/gateway-config.md). */
struct uplink_cfg {
    char target[256];            /* "host:port" of the headend's gRPC listener; "" = no uplink */
    int legacy;                  /* single-asset agent: Register with primary_asset_id only */
    int64_t telemetry_period_ms; /* 0 = every cycle */
    int64_t heartbeat_period_ms;
    int64_t keepalive_time_ms, keepalive_timeout_ms;
    int64_t backoff_initial_ms, backoff_max_ms;
    char spool_dir[512]; /* "" = no disk spool: when offline the oldest telemetry is dropped */
    int spool_max_bytes;
    int queue_len; /* telemetry messages, acks and setpoints each */
    /* Delivery (docs/protocol.md): at most ack_window telemetry messages sent and not yet
     * acknowledged, at most replay_rate of them a second, and a stream whose window has not
     * moved for ack_timeout_ms is restarted (its unacknowledged samples go again). */
    int ack_window;
    int replay_rate;
    int64_t ack_timeout_ms;
    struct uplink_tls tls; /* tls.on 0: plaintext */
};

extern const struct param_field uplink_fields[];
extern const size_t uplink_n_fields;

/* Defaults, then obj's members (NULL = defaults). The strings `target` and `spool_dir` and
 * the object `tls` are checked here, the rest by the table; errors name path.key
 * ("uplink.keepalive_time: ..."). Returns 0 or -EINVAL. */
int uplink_cfg_load(const cJSON *obj, const char *path, struct uplink_cfg *cfg, char *err,
                    size_t errlen);

/* Who the gateway is: filled from a site configuration by uplink_identity_from_site. */
struct uplink_identity {
    char gateway_id[SITECONF_ID_MAX], site_id[SITECONF_ID_MAX];
    char software[96];
    size_t n_assets;
    struct agentmsg_asset assets[AGENTMSG_MAX_ASSETS]; /* configuration order */
    char primary_asset_id[PROCIMG_ID_LEN];             /* the first battery, else the first */
};

void uplink_identity_from_site(const struct siteconf *site, const char *software,
                               struct uplink_identity *id);

struct remote;

struct uplink_opts {
    void (*log)(void *ctx, const char *line); /* one line per event; NULL = stderr */
    void *log_ctx;
    uint64_t seed;         /* of the backoff jitter */
    struct remote *remote; /* Ping and ConfigPush (gateway/uplink/remote.h); NULL = none */
};

struct uplink;

/* Starts the uplink thread (which connects in the background). NULL with err on failure. */
struct uplink *uplink_new(const struct uplink_cfg *cfg, const struct uplink_identity *id,
                          const struct uplink_opts *opts, char *err, size_t errlen);
/* Stops the thread (cancelling the stream, bounded to about two seconds) and frees all. */
void uplink_free(struct uplink *u);

/* Asks the uplink thread to read the uplink.tls files again (SIGHUP). It builds new
 * credentials and a new channel; a registered stream keeps running on the old channel
 * until it ends, a stream still waiting to connect is restarted on the new one at once.
 * When a file cannot be read or parsed the old credentials stay and the failure is logged.
 * Never blocks; without uplink.tls it only logs that there is nothing to reload. */
void uplink_reload(struct uplink *u);

/* Telemetry of every device of img (only the primary asset in legacy mode), when the
 * telemetry period has passed since the last one at controller time now_ms. With a spool
 * every sample is written to it (so a killed gateway loses nothing) and kept until the
 * headend acknowledges it; without one it waits in the memory queue (the oldest dropped
 * when full). Returns the number of messages queued or spooled. */
int uplink_publish(struct uplink *u, const struct procimg *img, const struct decision *dm,
                   int64_t now_ms);

/* The next setpoint received (each setpoint_id once: repeats are answered with the last ack
 * state and not returned). 1 with *out filled, 0 when none. */
int uplink_poll_setpoint(struct uplink *u, struct agentmsg_setpoint *out);

/* Queues a SetpointAck. Returns 0, -ENOMEM, or -ENOBUFS when the ack queue was full (the
 * oldest ack was dropped to make room). */
int uplink_ack(struct uplink *u, const char *setpoint_id, int state, const char *detail,
               const struct agentmsg_alloc *allocs, size_t n);

struct uplink_stats {
    int connected;  /* the stream is up */
    int registered; /* RegisterResult received on the current stream */
    uint64_t connects, disconnects;
    uint64_t telemetry_queued, telemetry_sent, telemetry_dropped;
    uint64_t spooled, spool_replayed, spool_dropped, spool_records;
    uint64_t telemetry_acked; /* released after the headend's ack (or a completed send to a
                               * headend that does not acknowledge) */
    uint64_t ack_timeouts;    /* streams restarted because acks stopped */
    uint64_t spool_corrupt;   /* spool records that did not decode, skipped */
    size_t window;            /* telemetry sent on the current stream, not yet acknowledged */
    int acks;                 /* the current stream's headend acknowledges telemetry */
    uint64_t setpoints, setpoint_duplicates, setpoints_dropped;
    uint64_t acks_sent, acks_dropped, heartbeats;
    uint64_t tls_reloads, tls_reload_failures;
    size_t queue_depth; /* telemetry waiting in memory */
};

void uplink_get_stats(struct uplink *u, struct uplink_stats *st);

/* Blocks until the stream is registered (0) or timeout_ms passed (-ETIMEDOUT). For tools
 * and the lockstep runner, never for the control loop. */
int uplink_wait_registered(struct uplink *u, int64_t timeout_ms);

#endif
