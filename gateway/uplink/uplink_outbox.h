/* uplink_outbox: what the uplink has to send, and what it keeps until the headend has it
 * (docs/protocol.md, "Delivery of telemetry"). Three stores: setpoint acks (a bounded memory
 * queue, sent first), telemetry in the memory queue (without a spool, or what the disk
 * refused; older than the spool's) and telemetry in the spool, read by its send cursor.
 *
 * A telemetry message sent on the current stream enters the window (its AgentMessage.seq and
 * its record) and leaves its store only when released: by a TelemetryAck covering its seq,
 * or, for a headend that does not acknowledge, by its completed send. When a stream ends the
 * window is rewound and everything unreleased goes again, in order, on the next one.
 * ack_window bounds the window, replay_rate (a token bucket) paces the sends.
 *
 * Not thread-safe: the uplink calls every function with its mutex held. Times are monotonic
 * milliseconds from the caller; counters go to the uplink_stats given to outbox_new. The
 * outbox borrows the spool (NULL = memory only); the caller owns the framed messages it gets. */
#ifndef DERLOOP_UPLINK_OUTBOX_H
#define DERLOOP_UPLINK_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/uplink/spool.h"
#include "gateway/uplink/uplink.h"

/* OUTBOX_REMOTE: a Pong or ConfigReport framed by gateway/uplink/remote.c, not the outbox's;
 * outbox_sent has nothing to do for it. */
enum outbox_kind {
    OUTBOX_NONE,
    OUTBOX_ACK,
    OUTBOX_HEARTBEAT,
    OUTBOX_TELEMETRY,
    OUTBOX_SPOOL,
    OUTBOX_REMOTE,
    OUTBOX_DECISION
};

/* The next message for the stream: an ack or telemetry framed as an AgentMessage (framed,
 * len); OUTBOX_HEARTBEAT for the caller to build; id recognises it in outbox_sent. */
struct outbox_msg {
    enum outbox_kind kind;
    uint64_t id; /* ack or memory-queue message id, spool record number */
    uint8_t *framed;
    size_t len;
    uint64_t corrupt; /* a spool record that did not decode was skipped: its number + 1 */
};

struct outbox;

/* -ENOMEM, or 0 with *out. cfg gives queue_len, ack_window and replay_rate. */
int outbox_new(const struct uplink_cfg *cfg, struct spool *spool, struct uplink_stats *st,
               int64_t now_ms, struct outbox **out);
void outbox_free(struct outbox *ob);

/* Queues a SetpointAck body (takes buf). 1 when the oldest ack was dropped to make room. */
int outbox_push_ack(struct outbox *ob, uint8_t *buf, size_t len);

/* One telemetry body into the spool, or the memory queue when there is none or the disk
 * refused (takes buf; *spool_rc: the spool's error, 0 = none). Returns the records dropped to
 * make room: the spool's oldest segment (*from_spool 1) or the memory queue's oldest. */
uint64_t outbox_push_telemetry(struct outbox *ob, uint8_t *buf, size_t len, int *spool_rc,
                               int *from_spool);

/* Decisions (docs/protocol.md, "Decisions") wait in a queue of their own, OUTBOX_DECISIONS
 * long, never spooled and never acknowledged: they go when no ack, heartbeat or telemetry is
 * ready, and a full queue drops its oldest. Queues a Decision body (takes buf); 1 when the
 * oldest was dropped (counted in decisions_dropped). */
#define OUTBOX_DECISIONS 16
int outbox_push_decision(struct outbox *ob, uint8_t *buf, size_t len);

/* What a registered stream sends next as AgentMessage seq at sent_ms (wall clock): a queued
 * ack, else a heartbeat when hb_due, else telemetry when the window has room and the replay
 * rate a token (it enters the window), else a queued decision, else OUTBOX_NONE. */
void outbox_next(struct outbox *ob, uint64_t seq, int64_t sent_ms, int hb_due, int64_t now_ms,
                 struct outbox_msg *m);

/* The send of a message from outbox_next, as seq, completed: the ack or decision leaves its
 * queue; with
 * acks_on 0 (a headend that does not acknowledge) telemetry is released at once. */
void outbox_sent(struct outbox *ob, enum outbox_kind kind, uint64_t id, uint64_t seq, int acks_on,
                 int64_t now_ms);

/* A TelemetryAck: releases the window through AgentMessage seq `through`. */
void outbox_release_through(struct outbox *ob, uint64_t through, int64_t now_ms);

/* The stream ended: the window goes again on the next one. */
void outbox_rewind(struct outbox *ob);

size_t outbox_window(const struct outbox *ob); /* telemetry sent, not released */
size_t outbox_queued(const struct outbox *ob); /* telemetry in the memory queue */
/* When the window last moved or became non-empty; outbox_touch restarts that clock (a new
 * registration, a restarted stream). */
int64_t outbox_last_moved(const struct outbox *ob);
void outbox_touch(struct outbox *ob, int64_t now_ms);

#endif
