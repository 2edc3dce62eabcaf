/* uplink_impl: the uplink's own parts, shared by its three files and by nothing else:
 * uplink.c (the control thread's functions of uplink.h), uplink_stream.c (the uplink thread:
 * channel, stream, completion queue) and uplink_inbox.c (what the headend sends).
 *
 * Threads: the control thread only moves bytes between bounded queues under `mu`; the uplink
 * thread is the only one that touches gRPC. Fields are grouped by who may touch them. */
#ifndef DERLOOP_UPLINK_IMPL_H
#define DERLOOP_UPLINK_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "gateway/uplink/idset.h"
#include "gateway/uplink/spool.h"
#include "gateway/uplink/uplink.h"
#include "gateway/uplink/uplink_outbox.h"

struct uplink {
    struct uplink_cfg cfg;
    struct uplink_identity id;
    struct uplink_opts opts;
    uint8_t *reg; /* the Register body, built once */
    size_t reg_len;

    pthread_t thread;
    int thread_started;
    atomic_int stop;
    atomic_int reload; /* uplink_reload asked; the uplink thread reads the TLS files */

    /* ---- shared by both threads, under mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t cond; /* registration */
    struct outbox *out;
    struct spool *spool; /* NULL = none; the outbox borrows it */
    size_t rx_cap, rx_head, rx_n;
    struct agentmsg_setpoint *rx; /* setpoints received, for uplink_poll_setpoint */
    struct idset ids;
    struct uplink_stats st;
    uint64_t disk_full_seen; /* spool_disk_full() when last logged */

    /* ---- the control thread's own ---- */
    int64_t last_pub_ms;
    int published;
    uint64_t tseq[PROCIMG_MAX_DEVICES];
    uint64_t mem_dropped_logged;
    int64_t mem_drop_log_ms;
    int spool_err;            /* the last spool write error, 0 = writing */
    struct decision *last_dm; /* the last Decision queued (NULL = none yet) */
    int64_t last_dm_ms;

    /* ---- the uplink thread's own ---- */
    grpc_completion_queue *cq;
    grpc_channel *chan;
    grpc_channel *next_chan; /* reloaded credentials, used from the next stream on */
    grpc_call *call;
    int pending;  /* operations of `call` not completed yet */
    int closing;  /* status received or cancelled: no new operations */
    uint64_t seq; /* AgentMessage.seq of the stream */
    uint64_t seq_inflight;
    int reg_pending;
    int acks_on; /* this stream's headend acknowledges telemetry */
    int inflight;
    int inflight_register; /* the message in flight is Register, else an outbox one: */
    enum outbox_kind inflight_kind;
    uint64_t inflight_id;
    grpc_metadata_array md_in, md_trail;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string;
    grpc_byte_buffer *rx_buf, *tx_buf;
    int64_t t_start_ms, next_attempt_ms, connected_at_ms, next_hb_ms;
    int stream_up; /* the current stream got the headend's initial metadata */
    int64_t next_wait_log_ms;
    char cert_problem[300]; /* what the last check of our own certificate found wrong */
    unsigned failures, attempts;
    uint64_t rng;
};

/* One log line through opts.log: fmt ("event=NAME FIELDS"), then site=... gateway=...
 * (uplink.c). */
void uplink_log(struct uplink *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* uplink_stream.c: grpc_init, the channel and the completion queue, then the uplink thread.
 * 0, or -1 with err (the caller then frees u with uplink_free, which calls
 * uplink_stream_stop). uplink_stream_stop ends the thread (bounded) and releases gRPC. */
int uplink_stream_start(struct uplink *u, char *err, size_t errlen);
void uplink_stream_stop(struct uplink *u);

/* uplink_inbox.c: one HeadendMessage received on the stream (uplink thread). */
void uplink_inbox_receive(struct uplink *u, const uint8_t *bytes, size_t len);

#endif
