/* command: the headend's per-asset commands (docs/operations.md, "Commands"; Command and
 * CommandAck in proto/der/v1/agent.proto). The uplink thread hands each Command over once per
 * command_id (a repeat is answered with what became of the first) and answers RECEIVED; the
 * control thread applies them between two cycles: start, stop, reset and set_temperature are
 * register writes by the asset's driver (gateway/devices/device.h, whose command table refuses
 * what the device cannot do, with the reason); set_output, charge and discharge are setpoints
 * at manual priority through a dispatcher of their own (gateway/uplink/dispatch.h: its TTL,
 * its acks after the next cycle, the interlocks). Every function takes a NULL command (an uplink
 * without one, as in lockstep runs) and then does nothing; Register then does not announce
 * commands, so the headend sends none. The caller owns it (command_free); it keeps a pointer to
 * the controller and must outlive the uplink that uses it. */
#ifndef DERLOOP_COMMAND_H
#define DERLOOP_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/control/controller.h"
#include "gateway/control/decision.h"
#include "gateway/uplink/agentmsg.h"

struct command;

struct command *command_new(struct controller *ctl, const char *site_id,
                            void (*log)(void *ctx, const char *line), void *log_ctx);
void command_free(struct command *c);

/* ---- the uplink thread ---- */
/* A Command received: queued once per command_id and answered RECEIVED (REJECTED when the
 * queue is full); a repeat is answered with the first one's state. */
void command_on_headend(struct command *c, const struct agentmsg_command *m);
/* The Register body bytes with commands set; *out malloc'd (the caller frees it). Without a
 * command, a copy of reg. 0 or -ENOMEM. */
int command_register(struct command *c, const uint8_t *reg, size_t len, uint8_t **out,
                     size_t *outlen);
/* The next CommandAck to send, framed as AgentMessage {seq, sent_ms}; malloc'd, or NULL. */
uint8_t *command_next(struct command *c, uint64_t seq, int64_t sent_ms, size_t *len);

/* ---- the control thread ---- */
/* Applies the commands received, before controller_cycle at controller time now_ms and Unix
 * time wall_ms (the clock of expires_ms). */
void command_apply(struct command *c, int64_t now_ms, int64_t wall_ms);
/* After controller_cycle: the setpoint commands' APPLIED or FAILED. */
void command_after_cycle(struct command *c, const struct decision *dm);

/* ---- without a stream (the lockstep runner's "command" events) ---- */
/* The newest state of command_id (AGENTMSG_ACK_*), or -ENOENT; and drops the acks waiting
 * for a stream (a caller without one never sends them). */
int command_state(struct command *c, const char *command_id);

#endif
