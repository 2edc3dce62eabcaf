/* dispatch: turns the headend's setpoints into controller commands and answers each one:
 * validated (unknown asset or site -> REJECTED, non-finite power -> REJECTED, already expired
 * -> EXPIRED), applied at manual priority with controller_command until its expiry, then
 * APPLIED after the next cycle with the allocations that cycle decided, requested vs
 * allocated W, "partial: ..." when short (FAILED when the write failed, the asset is offline
 * or nothing was allocated; docs/protocol.md "Setpoints and ack states"). Shared by
 * der-gateway and the lockstep runner.
 * dispatch_new returns an object the caller owns; it keeps a pointer to the controller. */
#ifndef DERLOOP_DISPATCH_H
#define DERLOOP_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/uplink/agentmsg.h"
#include "gateway/control/controller.h"
#include "gateway/control/decision.h"

#define DISPATCH_MAX_PENDING 32
#define DISPATCH_TTL_MAX_MS  (7LL * 86400 * 1000) /* a setpoint is held at most this long */

struct dispatch_opts {
    const char *site_id;
    const char *primary_asset_id; /* the target of a setpoint that names none (legacy) */
    /* Lockstep: the remaining lifetime is rounded to whole seconds and the power to 1 mW, so
     * that delivery latency and the REST API's units cannot change a run (docs/operations.md). */
    int lockstep;
    /* Where acks go (normally uplink_ack); NULL = nowhere (scenario dispatch without headend). */
    void (*ack)(void *ctx, const struct agentmsg_ack *a);
    void *ack_ctx;
    void (*log)(void *ctx, const char *line); /* NULL = stderr */
    void *log_ctx;
};

struct dispatch;

struct dispatch *dispatch_new(struct controller *ctl, const struct dispatch_opts *opts);
void dispatch_free(struct dispatch *d);

/* Handles one setpoint at controller time now_ms and Unix time wall_ms (the clock its
 * expires_ms is on). Expiry in controller time: now_ms + (expires_ms - wall_ms). Returns 0
 * when the command was applied (its APPLIED or FAILED ack follows dispatch_after_cycle), or
 * the terminal ack state sent now (AGENTMSG_ACK_REJECTED, AGENTMSG_ACK_EXPIRED). */
int dispatch_setpoint(struct dispatch *d, const struct agentmsg_setpoint *sp, int64_t now_ms,
                      int64_t wall_ms);

/* After controller_cycle: acks every setpoint applied before it, with the cycle's outcome. */
void dispatch_after_cycle(struct dispatch *d, const struct decision *dm);

size_t dispatch_pending(const struct dispatch *d);

#endif
