/* uplink_stream: the uplink thread. It owns the channel, the completion queue and the stream:
 * it loops on the completion queue with a 50 ms deadline (there is no alarm object in the C core
 * to wake it, docs/protocol.md), and on each turn starts a stream when due, sends the next
 * message when none is in flight (at most one SEND_MESSAGE may be outstanding per call) and
 * handles one completion. Each long-lived operation has its own batch and tag; a stream is
 * freed only when its last operation has completed. Reconnects wait a jittered exponential
 * backoff.
 *
 * Order on a stream: Register first; after RegisterResult, what the outbox gives (acks before
 * heartbeats before telemetry, telemetry in the order it was published). What arrives goes to
 * uplink_inbox.c.
 *
 * TLS (uplink.tls): the channel's credentials come from PEM files read when the uplink
 * starts. uplink_reload only raises a flag; this thread reads the files again and builds a
 * new channel, which replaces the old one between streams (a registered stream is not cut for
 * a certificate rotation; one still waiting to connect, e.g. refused for an expired
 * certificate, is restarted on the new channel at once). Nothing of the delivery state
 * belongs to a channel, so a swap loses and repeats nothing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "common/rtclock.h"
#include "gateway/uplink/command.h"
#include "gateway/uplink/remote.h"
#include "gateway/uplink/uplink_impl.h"
#include "gateway/uplink/uplink_tls.h"

#define METHOD            "/der.v1.Headend/Connect"
#define TURN_MS           50    /* completion-queue deadline: how often queues are looked at */
#define DRAIN_MS          2000  /* at most this long to finish a stream at shutdown */
#define WAIT_LOG_FIRST_MS 5000  /* a stream not up after this is logged ... */
#define WAIT_LOG_EVERY_MS 60000 /* ... and again this often */

enum tag { T_SEND_MD = 1, T_RECV_MD, T_STATUS, T_RECV, T_SEND };

static int64_t mono_ms(void)
{
    return rtclock_monotonic_ms();
}

/* xorshift64*: the jitter only needs to spread gateways apart, not be strong. */
static uint64_t next_rand(struct uplink *u)
{
    uint64_t x = u->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    u->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* The delay before attempt failures+1: initial x 2^(failures-1), capped, then a uniform
 * draw in [50 %, 100 %] of it so a fleet that lost its headend does not return in step. */
static int64_t backoff_ms(struct uplink *u)
{
    int64_t b = u->cfg.backoff_initial_ms;
    for (unsigned i = 1; i < u->failures && b < u->cfg.backoff_max_ms; i++)
        b *= 2;
    if (b > u->cfg.backoff_max_ms)
        b = u->cfg.backoff_max_ms;
    return b / 2 + (int64_t)(next_rand(u) % (uint64_t)(b / 2 + 1));
}

/* ---- the stream ----------------------------------------------------------------------------- */

static int start_op(struct uplink *u, grpc_op *op, enum tag t)
{
    grpc_call_error e = grpc_call_start_batch(u->call, op, 1, (void *)(intptr_t)t, NULL);
    if (e != GRPC_CALL_OK) {
        uplink_log(u, "event=error op=%d call_error=%d", (int)t, (int)e);
        return -EIO;
    }
    u->pending++;
    return 0;
}

static void post_recv(struct uplink *u)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &u->rx_buf;
    start_op(u, &op, T_RECV);
}

static void start_call(struct uplink *u)
{
    grpc_slice method = grpc_slice_from_static_string(METHOD);
    u->call = grpc_channel_create_call(u->chan, NULL, GRPC_PROPAGATE_DEFAULTS, u->cq, method, NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (!u->call) {
        u->next_attempt_ms = mono_ms() + backoff_ms(u);
        return;
    }
    u->attempts++;
    u->stream_up = 0;
    u->next_wait_log_ms = mono_ms() + WAIT_LOG_FIRST_MS;
    u->pending = 0;
    u->closing = 0;
    u->seq = 0;
    u->reg_pending = 1;
    u->inflight = 0;
    grpc_metadata_array_init(&u->md_in);
    grpc_metadata_array_init(&u->md_trail);
    u->details = grpc_empty_slice();
    u->error_string = NULL;
    u->status = GRPC_STATUS_OK;

    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_INITIAL_METADATA;
    op.flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY; /* wait for the headend, do not fail fast */
    start_op(u, &op, T_SEND_MD);
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_INITIAL_METADATA; /* without it RECV_MESSAGE never completes */
    op.data.recv_initial_metadata.recv_initial_metadata = &u->md_in;
    start_op(u, &op, T_RECV_MD);
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT; /* the disconnect detector */
    op.data.recv_status_on_client.trailing_metadata = &u->md_trail;
    op.data.recv_status_on_client.status = &u->status;
    op.data.recv_status_on_client.status_details = &u->details;
    op.data.recv_status_on_client.error_string = &u->error_string;
    start_op(u, &op, T_STATUS);
    post_recv(u);
    uplink_log(u, "event=connecting target=%s attempt=%u", u->cfg.target, u->attempts);
}

/* The last operation of a finished stream completed: release it. */
static void end_call(struct uplink *u)
{
    grpc_call_unref(u->call);
    u->call = NULL;
    pthread_mutex_lock(&u->mu);
    outbox_rewind(u->out);
    u->st.acks = 0;
    pthread_mutex_unlock(&u->mu);
    u->acks_on = 0;
    grpc_metadata_array_destroy(&u->md_in);
    grpc_metadata_array_destroy(&u->md_trail);
    grpc_slice_unref(u->details);
    if (u->error_string)
        gpr_free((void *)u->error_string);
    u->error_string = NULL;
    if (u->next_chan) {
        grpc_channel_destroy(u->chan);
        u->chan = u->next_chan;
        u->next_chan = NULL;
        /* the new credentials get their attempt now, not after the old ones' backoff */
        u->failures = 0;
        u->next_attempt_ms = mono_ms();
        uplink_log(u, "event=tls_channel target=%s reason=\"reloaded credentials in use\"",
                   u->cfg.target);
        return;
    }
    if (!atomic_load(&u->stop))
        u->next_attempt_ms = mono_ms() + backoff_ms(u);
}

static void on_status(struct uplink *u)
{
    char details[256];
    size_t n = GRPC_SLICE_LENGTH(u->details);
    if (n >= sizeof details)
        n = sizeof details - 1;
    memcpy(details, GRPC_SLICE_START_PTR(u->details), n);
    details[n] = '\0';
    for (char *p = details; *p; p++)
        if (*p == '"' || *p == '\n')
            *p = '\'';
    pthread_mutex_lock(&u->mu);
    int was_connected = u->st.connected;
    u->st.connected = u->st.registered = 0;
    if (was_connected)
        u->st.disconnects++;
    pthread_mutex_unlock(&u->mu);
    u->closing = 1;
    u->failures++;
    if (!atomic_load(&u->stop))
        uplink_log(u, "event=%s target=%s code=%d reason=\"%s\" connected_for_ms=%lld failures=%u",
                   was_connected ? "disconnected" : "connect_failed", u->cfg.target, (int)u->status,
                   details[0] ? details : (u->error_string ? "transport error" : "stream ended"),
                   was_connected ? (long long)(mono_ms() - u->connected_at_ms) : 0LL, u->failures);
    grpc_call_cancel(u->call, NULL); /* the other operations complete now */
}

/* A message arrived: its bytes out of gRPC's buffer, to the inbox. */
static void on_message(struct uplink *u)
{
    grpc_byte_buffer_reader r;
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (grpc_byte_buffer_reader_init(&r, u->rx_buf)) {
        grpc_slice s = grpc_byte_buffer_reader_readall(&r);
        len = GRPC_SLICE_LENGTH(s);
        bytes = malloc(len ? len : 1);
        if (bytes)
            memcpy(bytes, GRPC_SLICE_START_PTR(s), len);
        grpc_slice_unref(s);
        grpc_byte_buffer_reader_destroy(&r);
    }
    grpc_byte_buffer_destroy(u->rx_buf);
    u->rx_buf = NULL;
    if (!bytes)
        return;
    uplink_inbox_receive(u, bytes, len);
    free(bytes);
}

/* Frames and sends the next message when nothing is in flight: Register first, then what the
 * outbox gives once the stream is registered. */
static void pump(struct uplink *u)
{
    if (!u->call || u->closing || u->inflight)
        return;
    struct outbox_msg m = {0};
    int reg = 0;
    int64_t sent = rtclock_wall_ms(), now = mono_ms();
    if (u->reg_pending) {
        uint8_t *rb = NULL, *cb = NULL; /* remote hook: the running configuration version; */
        size_t rl = 0, cl = 0;          /* command hook: whether commands are taken */
        reg = remote_register(u->opts.remote, u->reg, u->reg_len, &rb, &rl) == 0 &&
              /* a legacy agent predates commands: it announces none */
              command_register(u->cfg.legacy ? NULL : u->opts.commands, rb, rl, &cb, &cl) == 0 &&
              agentmsg_frame(u->seq + 1, sent, AGENTMSG_REGISTER, cb, cl, &m.framed, &m.len) == 0;
        free(rb);
        free(cb);
    } else {
        pthread_mutex_lock(&u->mu);
        int registered = u->st.registered; /* nothing but Register before RegisterResult */
        pthread_mutex_unlock(&u->mu);
        /* remote hook: a Pong or ConfigReport goes before acks and telemetry */
        if (registered && (m.framed = remote_next(u->opts.remote, u->seq + 1, sent, &m.len))) {
            m.kind = OUTBOX_REMOTE;
        } else if (registered &&
                   (m.framed = command_next(u->opts.commands, u->seq + 1, sent, &m.len))) {
            m.kind = OUTBOX_REMOTE; /* command hook: a CommandAck, framed by command.c */
        } else if (registered) {
            pthread_mutex_lock(&u->mu);
            outbox_next(u->out, u->seq + 1, sent, now >= u->next_hb_ms, now, &m);
            pthread_mutex_unlock(&u->mu);
        }
        if (m.corrupt)
            uplink_log(u,
                       "event=spool_corrupt record=%llu reason=\"not a Telemetry message (a torn "
                       "or zeroed write): skipped\"",
                       (unsigned long long)(m.corrupt - 1));
        if (m.kind == OUTBOX_HEARTBEAT) {
            uint8_t *hb = NULL;
            size_t hl;
            u->next_hb_ms = mono_ms() + u->cfg.heartbeat_period_ms;
            if (agentmsg_heartbeat(mono_ms() - u->t_start_ms, &hb, &hl) ||
                agentmsg_frame(u->seq + 1, sent, AGENTMSG_HEARTBEAT, hb, hl, &m.framed, &m.len))
                m.kind = OUTBOX_NONE;
            free(hb);
        }
    }
    if (!reg && m.kind == OUTBOX_NONE) {
        free(m.framed);
        return;
    }
    grpc_slice s = grpc_slice_new(m.framed, m.len, free);
    u->tx_buf = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = u->tx_buf;
    if (start_op(u, &op, T_SEND)) {
        grpc_byte_buffer_destroy(u->tx_buf);
        u->tx_buf = NULL;
        /* the window already counts it: end this stream, the next one sends it again */
        if (m.kind == OUTBOX_TELEMETRY || m.kind == OUTBOX_SPOOL)
            grpc_call_cancel(u->call, NULL);
        return;
    }
    u->seq++;
    u->seq_inflight = u->seq;
    u->inflight = 1;
    u->inflight_register = reg;
    u->inflight_kind = m.kind;
    u->inflight_id = m.id;
    if (reg)
        u->reg_pending = 0;
}

static void on_sent(struct uplink *u, int ok)
{
    grpc_byte_buffer_destroy(u->tx_buf);
    u->tx_buf = NULL;
    u->inflight = 0;
    if (!ok) {
        if (u->inflight_register)
            u->reg_pending = 1;
        return; /* the stream is breaking: the message stays queued for the next one */
    }
    if (u->inflight_register)
        return;
    pthread_mutex_lock(&u->mu);
    outbox_sent(u->out, u->inflight_kind, u->inflight_id, u->seq_inflight, u->acks_on, mono_ms());
    pthread_mutex_unlock(&u->mu);
}

static void on_event(struct uplink *u, enum tag t, int ok)
{
    u->pending--;
    switch (t) {
    case T_RECV_MD:
        if (ok && !u->closing) {
            u->stream_up = 1;
            pthread_mutex_lock(&u->mu);
            u->st.connected = 1;
            u->st.connects++;
            pthread_mutex_unlock(&u->mu);
            u->connected_at_ms = mono_ms();
            uplink_log(u, "event=connected target=%s attempt=%u", u->cfg.target, u->attempts);
        }
        break;
    case T_STATUS:
        on_status(u);
        break;
    case T_RECV:
        if (ok && u->rx_buf) {
            on_message(u);
            if (!u->closing)
                post_recv(u);
        } else if (u->rx_buf) {
            grpc_byte_buffer_destroy(u->rx_buf);
            u->rx_buf = NULL;
        }
        break;
    case T_SEND:
        on_sent(u, ok);
        break;
    default:
        break;
    }
    if (u->pending == 0 && u->call)
        end_call(u);
}

/* The channel to cfg->target with the credentials of uplink_tls.c. NULL with err when a
 * file cannot be read or cannot work (*chk says what the certificate check found). */
static grpc_channel *make_channel(const struct uplink_cfg *cfg, const char *gateway_id,
                                  struct uplink_cert_check *chk, char *err, size_t errlen)
{
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = (int)cfg->keepalive_time_ms}},
        {GRPC_ARG_INTEGER,
         GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
         {.integer = (int)cfg->keepalive_timeout_ms}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}},
        /* else pings stop after two on an idle stream (docs/protocol.md) */
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}},
        /* the channel's own TCP reconnects follow the configured backoff */
        {GRPC_ARG_INTEGER,
         GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
         {.integer = (int)cfg->backoff_initial_ms}},
        {GRPC_ARG_INTEGER,
         GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
         {.integer = (int)cfg->backoff_max_ms}},
        {GRPC_ARG_STRING,
         GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
         {.string = (char *)cfg->tls.server_name}},
    };
    size_t na = sizeof args / sizeof args[0];
    if (!cfg->tls.on || !cfg->tls.server_name[0])
        na--; /* the override is the last one */
    grpc_channel_args ca = {na, args};
    grpc_channel_credentials *creds =
        uplink_tls_credentials(&cfg->tls, gateway_id, chk, err, errlen);
    if (!creds)
        return NULL;
    grpc_channel *ch = grpc_channel_create(cfg->target, creds, &ca);
    grpc_channel_credentials_release(creds);
    if (!ch)
        snprintf(err, errlen, "uplink.target: cannot create a channel to \"%s\"", cfg->target);
    return ch;
}

/* The result of the certificate check, logged and kept for the connect_waiting line. */
static void log_cert(struct uplink *u, const struct uplink_cert_check *chk)
{
    const char *note = chk->note, *why = chk->why;
    if (!note[0])
        return;
    snprintf(u->cert_problem, sizeof u->cert_problem, "%s", why);
    uplink_log(u, "event=tls_cert status=%s cert=%s %s%s%s%s", why[0] ? "warning" : "ok",
               u->cfg.tls.cert, note, why[0] ? " reason=\"" : "", why, why[0] ? "\"" : "");
}

/* A stream that has not come up: with WAIT_FOR_READY gRPC keeps trying without a word, so
 * say so now and then, with what may be wrong. */
static void check_waiting(struct uplink *u)
{
    if (!u->call || u->closing || u->stream_up || mono_ms() < u->next_wait_log_ms)
        return;
    u->next_wait_log_ms = mono_ms() + WAIT_LOG_EVERY_MS;
    if (!u->cfg.tls.on)
        uplink_log(u,
                   "event=connect_waiting target=%s attempt=%u tls=off reason=\"no connection yet: "
                   "the headend is down or unreachable\"",
                   u->cfg.target, u->attempts);
    else
        uplink_log(u,
                   "event=connect_waiting target=%s attempt=%u tls=%s reason=\"no connection yet: "
                   "the headend is down or unreachable, or refused the TLS handshake (its log says "
                   "why)\" cert_problem=\"%s\"",
                   u->cfg.target, u->attempts, u->cfg.tls.cert[0] ? "mutual" : "server",
                   u->cert_problem[0] ? u->cert_problem : "none seen by the gateway");
}

/* SIGHUP: new credentials from the files, used from the next stream on (see the top). */
static void do_reload(struct uplink *u)
{
    if (!u->cfg.tls.on) {
        uplink_log(u,
                   "event=tls_reload status=skipped reason=\"no uplink.tls: nothing to reload\"");
        return;
    }
    char err[700];
    struct uplink_cert_check chk;
    grpc_channel *ch = make_channel(&u->cfg, u->id.gateway_id, &chk, err, sizeof err);
    pthread_mutex_lock(&u->mu);
    if (ch)
        u->st.tls_reloads++;
    else
        u->st.tls_reload_failures++;
    pthread_mutex_unlock(&u->mu);
    if (!ch) {
        for (char *p = err; *p; p++)
            if (*p == '"')
                *p = '\'';
        uplink_log(u, "event=tls_reload status=failed reason=\"%s; the previous credentials stay\"",
                   err);
        return;
    }
    log_cert(u, &chk);
    if (u->next_chan) /* a second reload before the first was used */
        grpc_channel_destroy(u->next_chan);
    u->next_chan = ch;
    pthread_mutex_lock(&u->mu);
    int registered = u->st.registered;
    pthread_mutex_unlock(&u->mu);
    uplink_log(u, "event=tls_reload status=ok ca=%s cert=%s applies=\"%s\"", u->cfg.tls.ca,
               u->cfg.tls.cert[0] ? u->cfg.tls.cert : "-",
               !u->call     ? "now"
               : registered ? "from the next stream"
                            : "now (the stream was not connected)");
    if (!u->call) {
        grpc_channel_destroy(u->chan);
        u->chan = u->next_chan;
        u->next_chan = NULL;
        u->failures = 0;
        u->next_attempt_ms = mono_ms();
    } else if (!registered && !u->closing) {
        grpc_call_cancel(u->call, NULL); /* end_call swaps the channels */
    }
}

/* A headend that acknowledges but has stopped doing so (store stuck, a half-dead proxy):
 * restart the stream, so the window is sent again instead of stalling for ever. */
static void check_acks(struct uplink *u)
{
    if (!u->call || u->closing || !u->acks_on)
        return;
    pthread_mutex_lock(&u->mu);
    size_t n = outbox_window(u->out);
    int64_t idle = mono_ms() - outbox_last_moved(u->out);
    pthread_mutex_unlock(&u->mu);
    if (n == 0 || idle < u->cfg.ack_timeout_ms)
        return;
    uplink_log(u,
               "event=ack_timeout window=%zu idle_ms=%lld reason=\"no TelemetryAck: restarting the "
               "stream, the window is sent again\"",
               n, (long long)idle);
    pthread_mutex_lock(&u->mu);
    u->st.ack_timeouts++;
    outbox_touch(u->out, mono_ms());
    pthread_mutex_unlock(&u->mu);
    grpc_call_cancel(u->call, NULL);
}

static void *run(void *arg)
{
    struct uplink *u = arg;
    while (!atomic_load(&u->stop)) {
        if (atomic_exchange(&u->reload, 0))
            do_reload(u);
        if (!u->call && mono_ms() >= u->next_attempt_ms)
            start_call(u);
        pump(u);
        grpc_event ev = grpc_completion_queue_next(
            u->cq,
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(TURN_MS, GPR_TIMESPAN)),
            NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            on_event(u, (enum tag)(intptr_t)ev.tag, ev.success);
        check_acks(u);
        check_waiting(u);
    }
    /* Stop: cancel the stream and wait (bounded) for its operations to finish. */
    if (u->call) {
        grpc_call_cancel(u->call, NULL);
        int64_t end = mono_ms() + DRAIN_MS;
        while (u->call && mono_ms() < end) {
            grpc_event ev = grpc_completion_queue_next(
                u->cq,
                gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                             gpr_time_from_millis(TURN_MS, GPR_TIMESPAN)),
                NULL);
            if (ev.type == GRPC_OP_COMPLETE)
                on_event(u, (enum tag)(intptr_t)ev.tag, ev.success);
        }
    }
    return NULL;
}

/* Waits up to DRAIN_MS for the completion queue to shut down. */
static void drain_queue(struct uplink *u)
{
    grpc_completion_queue_shutdown(u->cq);
    int64_t end = mono_ms() + DRAIN_MS;
    while (mono_ms() < end) {
        grpc_event ev = grpc_completion_queue_next(
            u->cq,
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(TURN_MS, GPR_TIMESPAN)),
            NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
    }
}

int uplink_stream_start(struct uplink *u, char *err, size_t errlen)
{
    grpc_init();
    struct uplink_cert_check chk;
    u->chan = make_channel(&u->cfg, u->id.gateway_id, &chk, err, errlen);
    u->cq = grpc_completion_queue_create_for_next(NULL);
    if (!u->chan || !u->cq) {
        if (u->chan)
            snprintf(err, errlen, "uplink: out of memory");
        return -1;
    }
    if (pthread_create(&u->thread, NULL, run, u) != 0) {
        snprintf(err, errlen, "uplink: cannot start its thread");
        return -1;
    }
    u->thread_started = 1;
    log_cert(u, &chk);
    return 0;
}

void uplink_stream_stop(struct uplink *u)
{
    atomic_store(&u->stop, 1);
    if (u->thread_started)
        pthread_join(u->thread, NULL);
    if (u->call) { /* did not finish within the drain time: leave it to the core */
        grpc_call_unref(u->call);
        u->call = NULL;
    }
    if (u->chan)
        grpc_channel_destroy(u->chan);
    if (u->next_chan)
        grpc_channel_destroy(u->next_chan);
    if (u->cq) {
        drain_queue(u);
        grpc_completion_queue_destroy(u->cq);
    }
    if (u->tx_buf)
        grpc_byte_buffer_destroy(u->tx_buf);
    if (u->rx_buf)
        grpc_byte_buffer_destroy(u->rx_buf);
    grpc_shutdown();
}
