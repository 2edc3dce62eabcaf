/* uplink: the gateway's one outbound gRPC stream to the headend (proto/der/v1/agent.proto).
 * A thread of its own owns the channel, the completion queue and the stream; it registers the
 * site's assets, sends telemetry, heartbeats and setpoint acks, receives setpoints, and
 * reconnects with jittered exponential backoff. The control loop only calls the non-blocking
 * functions below, which touch bounded queues under a mutex: it never waits on the network.
 * uplink_new returns an object the caller owns (uplink_free stops the thread).
 * The configuration and the identity are in uplink_config.h. */
#ifndef DERLOOP_UPLINK_H
#define DERLOOP_UPLINK_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/control/decision.h"
#include "gateway/control/procimg.h"
#include "gateway/uplink/agentmsg.h"
#include "gateway/uplink/uplink_config.h"

struct remote;
struct command;

struct uplink_opts {
    void (*log)(void *ctx, const char *line); /* one line per event; NULL = stderr */
    void *log_ctx;
    uint64_t seed;            /* of the backoff jitter */
    struct remote *remote;    /* Ping and ConfigPush (gateway/uplink/remote.h); NULL = none */
    struct command *commands; /* per-asset commands (gateway/uplink/command.h); NULL = none */
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

/* The cycle's Decision (docs/protocol.md, "Decisions"), queued when dm differs from the last
 * one queued (agentmsg_decision_changed) or decision_period has passed since (0 = only on
 * change), at controller time now_ms. uplink_publish calls it every cycle; nothing in legacy
 * mode or without dm. 1 when queued, 0 when not due, -ENOMEM. */
int uplink_decide(struct uplink *u, const struct decision *dm, int64_t now_ms);

/* The next setpoint received (each setpoint_id once: repeats are answered with the last ack
 * state and not returned). 1 with *out filled, 0 when none. */
int uplink_poll_setpoint(struct uplink *u, struct agentmsg_setpoint *out);

/* Queues a SetpointAck. Returns 0, -ENOMEM, or -ENOBUFS when the ack queue was full (the
 * oldest ack was dropped to make room). */
int uplink_ack(struct uplink *u, const struct agentmsg_ack *a);

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
    uint64_t decisions_queued, decisions_sent, decisions_dropped; /* docs/protocol.md */
    size_t queue_depth;                                           /* telemetry waiting in memory */
};

void uplink_get_stats(struct uplink *u, struct uplink_stats *st);

/* Blocks until the stream is registered (0) or timeout_ms passed (-ETIMEDOUT). For tools
 * and the lockstep runner, never for the control loop. */
int uplink_wait_registered(struct uplink *u, int64_t timeout_ms);

#endif
