/* remote: what the headend asks of a gateway beyond setpoints (docs/protocol.md, "Ping",
 * "Configuration" and "Emergency stop"): Ping is answered with Pong; an EmergencyStop waits in
 * a one-slot mailbox (the latest state wins) for the control thread, which applies it
 * (gateway/control/estop.h) and reports it (EstopReport, and Register's estop_active); a
 * ConfigPush waits in a one-slot mailbox (a
 * newer push replaces one not yet taken) for the control thread, which applies it between two
 * cycles (gateway/control/confsync.h) and reports APPLIED or REJECTED; Register says which
 * configuration version runs. The uplink thread calls remote_on_headend, remote_register and
 * remote_next; the control thread the rest. Every function takes a NULL remote (an uplink
 * without one, as in lockstep runs) and then does nothing. The caller owns it (remote_free),
 * and it must outlive the uplink that uses it. */
#ifndef DERLOOP_REMOTE_H
#define DERLOOP_REMOTE_H

#include <stddef.h>
#include <stdint.h>

struct remote;

struct remote *remote_new(void (*log)(void *ctx, const char *line), void *log_ctx);
void remote_free(struct remote *r);

/* ---- the uplink thread ---- */
/* A HeadendMessage (serialized): 1 when it was a Ping, ConfigPush or EmergencyStop, taken here;
 * 0 otherwise. */
int remote_on_headend(struct remote *r, const uint8_t *buf, size_t len);
/* The Register body bytes with config_version, config_push, pong, estop and estop_active set; *out
 * malloc'd (the caller frees it). Without a remote, a copy of reg. 0 or -ENOMEM. */
int remote_register(struct remote *r, const uint8_t *reg, size_t len, uint8_t **out,
                    size_t *outlen);
/* The next message to send (a Pong, a ConfigReport or an EstopReport) framed as AgentMessage {seq,
 * sent_ms}; malloc'd, or NULL when there is none. Taken off the queue: a message lost with a broken
 * stream is not repeated (Register tells the version again, a Ping is asked again). */
uint8_t *remote_next(struct remote *r, uint64_t seq, int64_t sent_ms, size_t *len);

/* ---- the control thread ---- */
/* The version running at start (0 = the local file), for Register. */
void remote_set_version(struct remote *r, uint64_t version);
/* The pending push: 1 with *version and *json (malloc'd, the caller frees it), 0 when none. */
int remote_take_push(struct remote *r, uint64_t *version, char **json);
/* Queues the ConfigReport of a push; applied: the version runs from now on (Register says
 * so); else detail says why it was refused. */
void remote_report(struct remote *r, uint64_t version, int applied, const char *detail);
/* The EmergencyStop received and not yet taken: 1 with its fields, 0 when none. */
int remote_take_estop(struct remote *r, int *active, char *id, size_t idlen, char *reason,
                      size_t reasonlen);
/* Whether a stop holds (for Register), e.g. the persisted one at start. */
void remote_set_estop(struct remote *r, int active);
/* The stop as now applied: Register says so, and an EstopReport is queued. */
void remote_estop_report(struct remote *r, int active, const char *id, const char *reason);

#endif
