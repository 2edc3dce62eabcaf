/* agentmsg: the gateway's side of the wire protocol (proto/der/v1/agent.proto) in plain C.
 * Builds the protobuf bytes of what the agent sends (Register, Telemetry, Heartbeat,
 * SetpointAck, CommandAck) and frames a body into an AgentMessage; parses a HeadendMessage into
 * plain structs. Every byte buffer it returns is malloc'd and owned by the caller (free). */
#ifndef DERLOOP_AGENTMSG_H
#define DERLOOP_AGENTMSG_H

#include <stddef.h>
#include <stdint.h>

#include "common/devtype.h"
#include "gateway/control/decision.h"
#include "gateway/control/procimg.h"

#define AGENTMSG_ID_LEN     128 /* setpoint ids and asset ids, with the NUL */
#define AGENTMSG_MAX_ASSETS 64
#define AGENTMSG_MAX_REJECT 16 /* rejected assets kept from one RegisterResult */

/* AgentMessage body fields (the proto's field numbers). */
enum agentmsg_body {
    AGENTMSG_REGISTER = 10,
    AGENTMSG_TELEMETRY = 11,
    AGENTMSG_HEARTBEAT = 12,
    AGENTMSG_ACK = 13,
    AGENTMSG_DECISION = 18,
    AGENTMSG_COMMAND_ACK = 16,
};

/* SetpointAck.State, same values as the proto. */
enum agentmsg_ack_state {
    AGENTMSG_ACK_RECEIVED = 1,
    AGENTMSG_ACK_APPLIED = 2,
    AGENTMSG_ACK_REJECTED = 3,
    AGENTMSG_ACK_EXPIRED = 4,
    AGENTMSG_ACK_FAILED = 5,
};
const char *agentmsg_ack_name(int state); /* "RECEIVED", ... */

/* AssetType values of the proto, from common/devtype.h: AGENTMSG_ASSET_BATTERY, ... */
enum agentmsg_asset_type {
#define AGENTMSG_ASSET_(NAME, name, proto, driver) AGENTMSG_ASSET_##NAME = proto,
    DEVTYPE_LIST(AGENTMSG_ASSET_)
#undef AGENTMSG_ASSET_
};

struct agentmsg_asset {
    char asset_id[PROCIMG_ID_LEN];
    int type; /* enum agentmsg_asset_type */
    double capacity_wh, min_power_w, max_power_w;
};

struct agentmsg_alloc {
    char asset_id[PROCIMG_ID_LEN];
    double power_w;
};

/* A Setpoint as received. target: 0 none (legacy: the primary asset), 'a' asset, 's' site. */
struct agentmsg_setpoint {
    char setpoint_id[AGENTMSG_ID_LEN];
    int target;
    char target_id[AGENTMSG_ID_LEN];
    double power_w;
    int64_t expires_ms; /* Unix ms */
};

/* A Command as received (docs/operations.md, "Commands"). */
struct agentmsg_command {
    char command_id[AGENTMSG_ID_LEN];
    char asset_id[AGENTMSG_ID_LEN];
    char command[32]; /* "start", ...: device_cmd_parse */
    double value;
    int64_t expires_ms; /* Unix ms */
};

struct agentmsg_headend {
    uint64_t seq;
    int body; /* 10 RegisterResult, 11 Setpoint, 12 Ping, 13 TelemetryAck, 15 Command, 0 none */
    struct agentmsg_setpoint setpoint;
    struct agentmsg_command command;
    size_t n_accepted, n_rejected; /* counts in the message */
    struct {
        char asset_id[PROCIMG_ID_LEN];
        char reason[128];
    } rejected[AGENTMSG_MAX_REJECT]; /* the first AGENTMSG_MAX_REJECT of them */
    int telemetry_acks;              /* RegisterResult: the headend will acknowledge telemetry */
    int64_t ping_ms;
    uint64_t ack_through; /* TelemetryAck.through_seq */
};

/* Register: legacy = only primary_asset_id (no assets). Returns 0 or -ENOMEM/-EINVAL. */
int agentmsg_register(const char *gateway_id, const char *site_id,
                      const struct agentmsg_asset *assets, size_t n, const char *primary_asset_id,
                      const char *software, int legacy, uint8_t **out, size_t *len);

/* Telemetry of one device of the process image. asset_id "" = the primary asset (legacy).
 * setpoint_w is the last setpoint written (NaN when none). status NULL = "ok", "stale" or
 * "offline" from the image. */
int agentmsg_telemetry(const struct procimg_dev *d, const char *asset_id, const char *status,
                       int64_t ts_ms, uint64_t telemetry_seq, uint8_t **out, size_t *len);

/* Does buf decode as a Telemetry message? (A spool record a power cut left zero-filled does
 * not; sending it would end every stream.) 1 or 0. */
int agentmsg_telemetry_valid(const uint8_t *buf, size_t len);

int agentmsg_heartbeat(int64_t uptime_ms, uint8_t **out, size_t *len);

/* A SetpointAck: detail NULL = ""; allocs may be NULL when n is 0; requested_w and
 * allocated_w NaN = not known (sent as 0, proto3's "not set"). */
struct agentmsg_ack {
    const char *setpoint_id;
    int state;
    const char *detail;
    double requested_w, allocated_w;
    const struct agentmsg_alloc *allocs;
    size_t n;
};

int agentmsg_ack(const struct agentmsg_ack *a, uint8_t **out, size_t *len);

/* Decision (docs/protocol.md, "Decisions") from the record of one control cycle: its
 * requests, the setpoints written (assets set), interlock clamps and conflicts (reasons at
 * or above DC_FIRST) with asset ids ("" = the site), the estop/schedule state; ts_ms is the
 * wall clock. 0 or -ENOMEM. */
int agentmsg_decision(const struct decision *dm, int64_t ts_ms, uint8_t **out, size_t *len);

/* Does the cycle dm differ from last (the one sent) in what a Decision reports: the
 * strategy, the requests (who asked for which asset), the setpoints (which assets, by which
 * source), the clamp set (asset and reason) or a power by more than 1% (at least
 * AGENTMSG_DECISION_TOL_W)? 1 or 0. Small moves of a controller are not a change. */
#define AGENTMSG_DECISION_TOL_W 10.0
int agentmsg_decision_changed(const struct decision *last, const struct decision *dm);

/* A CommandAck body; state as SetpointAck's (enum agentmsg_ack_state). */
int agentmsg_command_ack(const char *command_id, int state, const char *detail, uint8_t **out,
                         size_t *len);

/* An AgentMessage {seq, sent_ms, body field = body bytes}: the body is embedded as it is, so
 * a spooled Telemetry is framed again without being decoded. */
int agentmsg_frame(uint64_t seq, int64_t sent_ms, int body, const uint8_t *body_bytes,
                   size_t body_len, uint8_t **out, size_t *len);

/* Parses a HeadendMessage. Returns 0, -EBADMSG when it is not one, -EMSGSIZE when an id is
 * longer than AGENTMSG_ID_LEN - 1, -EINVAL when an id holds a control character. */
int agentmsg_parse_headend(const uint8_t *buf, size_t len, struct agentmsg_headend *out);

#endif
