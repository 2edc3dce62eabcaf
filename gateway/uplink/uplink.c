/* uplink: see uplink.h.
 *
 * Threads: the control thread calls publish/poll/ack, which only move bytes between bounded
 * queues under `mu`. The uplink thread is the only one that touches gRPC: it loops on the
 * completion queue with a 50 ms deadline (there is no alarm object in the C core to wake it,
 * docs/protocol.md), and on each turn starts a stream when due, sends the next message when
 * none is in flight (at most one SEND_MESSAGE may be outstanding per call) and handles one
 * completion. Each long-lived operation has its own batch and tag; a stream is freed only
 * when its last operation has completed.
 *
 * Order on a stream: Register first; after RegisterResult, acks before heartbeats before
 * telemetry. Telemetry is sent in the order it was published.
 *
 * Delivery (docs/protocol.md): with a spool every sample goes to disk first (page cache: a
 * kill -9 of the gateway loses nothing) and is read from there by a send cursor; without
 * one it waits in the memory queue. A sent sample enters the window (stream seq, record)
 * and leaves its store only when a TelemetryAck covers that seq, i.e. the headend has
 * committed it; a headend that does not acknowledge (RegisterResult.telemetry_acks false)
 * releases it when its send completes, as before. When a stream ends, the cursor goes back
 * to the oldest unreleased sample and everything unacknowledged is sent again, in order, on
 * the next stream; the headend's (asset, seq) key makes the repeat harmless. The window
 * (ack_window) and a token bucket (replay_rate) pace a replay after a long outage.
 *
 * TLS (uplink.tls): the channel's credentials come from PEM files read when the uplink
 * starts. uplink_reload only raises a flag; the uplink thread reads the files again and
 * builds a new channel, which replaces the old one between streams (a registered stream is
 * not cut for a certificate rotation; one still waiting to connect, e.g. refused for an
 * expired certificate, is restarted on the new channel at once). Nothing of the delivery
 * state above belongs to a channel, so a swap loses and repeats nothing. */
#include "gateway/uplink/uplink.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/duration.h"
#include "gateway/uplink/idset.h"
#include "gateway/uplink/remote.h" /* remote hook */
#include "gateway/uplink/spool.h"

#define METHOD            "/der.v1.Headend/Connect"
#define TURN_MS           50    /* completion-queue deadline: how often queues are looked at */
#define DRAIN_MS          2000  /* at most this long to finish a stream at shutdown */
#define WAIT_LOG_FIRST_MS 5000  /* a stream not up after this is logged ... */
#define WAIT_LOG_EVERY_MS 60000 /* ... and again this often */
#define CERT_URI_PREFIX   "urn:derloop:gateway:"

/* ---- configuration -------------------------------------------------------------------------- */

const struct param_field uplink_fields[] = {
    {"legacy", PARAM_BOOL, offsetof(struct uplink_cfg, legacy), 0, 0, 1, "",
     "single-asset agent: register only the primary asset, telemetry without asset_id"},
    {"telemetry_period", PARAM_DURATION_MS, offsetof(struct uplink_cfg, telemetry_period_ms), 0, 0,
     86400000, "ms", "telemetry of every asset at most this often (0 = every cycle)"},
    {"heartbeat_period", PARAM_DURATION_MS, offsetof(struct uplink_cfg, heartbeat_period_ms), 10000,
     100, 3600000, "ms", "a Heartbeat on the stream this often"},
    {"keepalive_time", PARAM_DURATION_MS, offsetof(struct uplink_cfg, keepalive_time_ms), 10000,
     100, 3600000, "ms",
     "HTTP/2 ping after this long without data (must be >= the headend's "
     "minimum ping interval)"},
    {"keepalive_timeout", PARAM_DURATION_MS, offsetof(struct uplink_cfg, keepalive_timeout_ms),
     5000, 100, 600000, "ms", "no ping answer within this: the connection is dead"},
    {"backoff_initial", PARAM_DURATION_MS, offsetof(struct uplink_cfg, backoff_initial_ms), 500, 10,
     600000, "ms", "first reconnect delay; doubles per failure, jittered to 50-100 %"},
    {"backoff_max", PARAM_DURATION_MS, offsetof(struct uplink_cfg, backoff_max_ms), 30000, 10,
     3600000, "ms", "the largest reconnect delay"},
    {"spool_max_bytes", PARAM_INT, offsetof(struct uplink_cfg, spool_max_bytes), 16777216, 65536,
     2147483647, "bytes", "disk spool bound; the oldest telemetry is dropped beyond it"},
    {"queue_len", PARAM_INT, offsetof(struct uplink_cfg, queue_len), 1024, 4, 1048576, "",
     "messages in each memory queue (telemetry, acks, setpoints)"},
    {"ack_window", PARAM_INT, offsetof(struct uplink_cfg, ack_window), 512, 16, 65536, "",
     "telemetry messages sent and not yet acknowledged by the headend, at most"},
    {"replay_rate", PARAM_INT, offsetof(struct uplink_cfg, replay_rate), 500, 1, 1000000, "1/s",
     "telemetry messages sent per second at most (paces the replay after an outage)"},
    {"ack_timeout", PARAM_DURATION_MS, offsetof(struct uplink_cfg, ack_timeout_ms), 30000, 1000,
     3600000, "ms",
     "no acknowledgement for this long with telemetry in flight: the stream is restarted"},
};
const size_t uplink_n_fields = sizeof uplink_fields / sizeof uplink_fields[0];

static int load_string(const cJSON *obj, const char *path, const char *key, char *dst, size_t cap,
                       char *err, size_t errlen)
{
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!v)
        return 0;
    if (!cJSON_IsString(v)) {
        char *t = cJSON_PrintUnformatted(v);
        snprintf(err, errlen, "%s.%s: must be a string, got %s", path, key, t ? t : "?");
        cJSON_free(t);
        return -EINVAL;
    }
    if (strlen(v->valuestring) >= cap) {
        snprintf(err, errlen, "%s.%s: must be shorter than %zu characters", path, key, cap);
        return -EINVAL;
    }
    snprintf(dst, cap, "%s", v->valuestring);
    return 0;
}

/* "host:port", "[v6]:port", or a gRPC URI such as "unix:/path" or "dns:///host:port". */
static int target_ok(const char *t)
{
    if (strstr(t, ":/"))
        return 1;
    const char *c = strrchr(t, ':');
    if (!c || c == t || !c[1])
        return 0;
    char *end;
    long port = strtol(c + 1, &end, 10);
    return *end == '\0' && port >= 1 && port <= 65535;
}

/* uplink.tls: {"ca": PATH, "cert": PATH, "key": PATH, "server_name": NAME}. */
static int load_tls(const cJSON *obj, const char *path, struct uplink_tls *t, char *err,
                    size_t errlen)
{
    char p[64];
    snprintf(p, sizeof p, "%s.tls", path);
    if (!cJSON_IsObject(obj)) {
        snprintf(err, errlen, "%s: must be an object {\"ca\", \"cert\", \"key\", \"server_name\"}",
                 p);
        return -EINVAL;
    }
    for (const cJSON *c = obj->child; c; c = c->next)
        if (strcmp(c->string, "ca") && strcmp(c->string, "cert") && strcmp(c->string, "key") &&
            strcmp(c->string, "server_name")) {
            snprintf(err, errlen, "%s.%s: unknown key (ca, cert, key, server_name)", p, c->string);
            return -EINVAL;
        }
    int rc = load_string(obj, p, "ca", t->ca, sizeof t->ca, err, errlen);
    if (!rc)
        rc = load_string(obj, p, "cert", t->cert, sizeof t->cert, err, errlen);
    if (!rc)
        rc = load_string(obj, p, "key", t->key, sizeof t->key, err, errlen);
    if (!rc)
        rc = load_string(obj, p, "server_name", t->server_name, sizeof t->server_name, err, errlen);
    if (rc)
        return rc;
    /* no default roots: a fleet's headend is signed by the fleet's own CA, and what gRPC
     * would fall back to (its roots file, or none on Debian) is not what to trust here */
    if (!t->ca[0]) {
        snprintf(err, errlen, "%s.ca: required (the PEM file of the CA that signed the headend)",
                 p);
        return -EINVAL;
    }
    if (!t->cert[0] != !t->key[0]) {
        snprintf(err, errlen, "%s.%s: cert and key go together", p, t->cert[0] ? "key" : "cert");
        return -EINVAL;
    }
    t->on = 1;
    return 0;
}

int uplink_cfg_load(const cJSON *obj, const char *path, struct uplink_cfg *cfg, char *err,
                    size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    if (obj && !cJSON_IsObject(obj)) {
        snprintf(err, errlen, "%s: must be an object", path);
        return -EINVAL;
    }
    /* The table knows numbers and booleans; the strings and tls are taken out first. */
    cJSON *rest = obj ? cJSON_Duplicate(obj, 1) : NULL;
    if (obj && !rest) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    int rc = load_string(obj, path, "target", cfg->target, sizeof cfg->target, err, errlen);
    if (!rc)
        rc =
            load_string(obj, path, "spool_dir", cfg->spool_dir, sizeof cfg->spool_dir, err, errlen);
    const cJSON *tls = obj ? cJSON_GetObjectItemCaseSensitive(obj, "tls") : NULL;
    if (!rc && tls)
        rc = load_tls(tls, path, &cfg->tls, err, errlen);
    if (!rc && rest) {
        cJSON_DeleteItemFromObjectCaseSensitive(rest, "target");
        cJSON_DeleteItemFromObjectCaseSensitive(rest, "spool_dir");
        cJSON_DeleteItemFromObjectCaseSensitive(rest, "tls");
    }
    if (!rc)
        rc = param_load(uplink_fields, uplink_n_fields, rest, path, cfg, err, errlen);
    cJSON_Delete(rest);
    if (rc)
        return rc;
    if (cfg->target[0] && !target_ok(cfg->target)) {
        snprintf(err, errlen, "%s.target: must be HOST:PORT, got \"%s\"", path, cfg->target);
        return -EINVAL;
    }
    if (cfg->backoff_max_ms < cfg->backoff_initial_ms) {
        char a[32], b[32];
        snprintf(err, errlen, "%s.backoff_max: must be at least backoff_initial (%s), got %s", path,
                 duration_format(cfg->backoff_initial_ms, a, sizeof a),
                 duration_format(cfg->backoff_max_ms, b, sizeof b));
        return -EINVAL;
    }
    return 0;
}

void uplink_identity_from_site(const struct siteconf *site, const char *software,
                               struct uplink_identity *id)
{
    memset(id, 0, sizeof *id);
    snprintf(id->gateway_id, sizeof id->gateway_id, "%s", site->gateway_id);
    snprintf(id->site_id, sizeof id->site_id, "%s", site->site_id);
    snprintf(id->software, sizeof id->software, "%s", software ? software : "");
    int battery = -1;
    for (size_t i = 0; i < site->n_devices && i < AGENTMSG_MAX_ASSETS; i++) {
        const struct device_cfg *d = &site->devices[i];
        struct agentmsg_asset *a = &id->assets[id->n_assets++];
        snprintf(a->asset_id, sizeof a->asset_id, "%s", d->asset_id);
        switch (d->type) {
        case DEV_BATTERY:
            a->type = AGENTMSG_ASSET_BATTERY;
            a->capacity_wh = d->capacity_wh;
            a->min_power_w = -d->max_charge_w;
            a->max_power_w = d->max_discharge_w;
            if (battery < 0)
                battery = (int)i;
            break;
        case DEV_PV:
            a->type = AGENTMSG_ASSET_PV;
            a->max_power_w = d->peak_w;
            break;
        case DEV_METER:
            a->type = AGENTMSG_ASSET_METER;
            break;
        case DEV_EVSE:
            a->type = AGENTMSG_ASSET_EVSE;
            a->max_power_w = d->max_current_a * 230.0 * (d->phases > 0 ? d->phases : 1);
            break;
        case DEV_BOILER:
            a->type = AGENTMSG_ASSET_BOILER;
            a->max_power_w = d->rated_w;
            break;
        }
    }
    if (id->n_assets)
        snprintf(id->primary_asset_id, sizeof id->primary_asset_id, "%s",
                 id->assets[battery >= 0 ? battery : 0].asset_id);
}

/* ---- bounded byte queues -------------------------------------------------------------------- */

struct qmsg {
    uint8_t *buf;
    size_t len;
    uint64_t id; /* to recognise the message in flight after the queue moved */
};

struct msgq {
    size_t cap, head, n;
    uint64_t next_id;
    struct qmsg *m;
};

static int q_init(struct msgq *q, size_t cap)
{
    q->m = calloc(cap, sizeof *q->m);
    q->cap = cap;
    return q->m ? 0 : -ENOMEM;
}

static struct qmsg *q_front(struct msgq *q)
{
    return q->n ? &q->m[q->head] : NULL;
}

static struct qmsg *q_at(struct msgq *q, size_t i)
{
    return i < q->n ? &q->m[(q->head + i) % q->cap] : NULL;
}

static void q_pop(struct msgq *q)
{
    if (!q->n)
        return;
    free(q->m[q->head].buf);
    q->m[q->head].buf = NULL;
    q->head = (q->head + 1) % q->cap;
    q->n--;
}

/* Takes buf. Returns 1 when the oldest message was dropped to make room. */
static int q_push(struct msgq *q, uint8_t *buf, size_t len)
{
    int dropped = 0;
    if (q->n == q->cap) {
        q_pop(q);
        dropped = 1;
    }
    q->m[(q->head + q->n) % q->cap] = (struct qmsg){buf, len, ++q->next_id};
    q->n++;
    return dropped;
}

static void q_free(struct msgq *q)
{
    while (q->n)
        q_pop(q);
    free(q->m);
}

/* ---- the uplink ----------------------------------------------------------------------------- */

enum tag { T_SEND_MD = 1, T_RECV_MD, T_STATUS, T_RECV, T_SEND };
enum src { SRC_NONE, SRC_REGISTER, SRC_ACK, SRC_HEARTBEAT, SRC_TELEMETRY, SRC_SPOOL, SRC_REMOTE };

struct uplink {
    struct uplink_cfg cfg;
    struct uplink_identity id;
    struct uplink_opts opts;
    uint8_t *reg;
    size_t reg_len;

    pthread_t thread;
    int thread_started;
    atomic_int stop;
    atomic_int reload; /* uplink_reload asked; the uplink thread reads the TLS files */

    /* ---- shared with the control thread, under mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t cond; /* registration */
    struct msgq tel, acks;
    size_t rx_cap, rx_head, rx_n;
    struct agentmsg_setpoint *rx;
    struct idset ids;
    struct spool *spool;
    struct uplink_stats st;
    int64_t last_pub_ms;
    int published;
    uint64_t tseq[PROCIMG_MAX_DEVICES];
    size_t tel_sent; /* memory-queue messages sent on this stream (a prefix of tel) */
    /* The window: telemetry sent on this stream and not yet released, in send order. */
    struct sent {
        uint64_t seq; /* AgentMessage.seq it went out with */
        uint64_t no;  /* spool record number, or memory-queue message id */
        int spool;
    } * win;
    size_t win_head, win_n;
    uint64_t mem_dropped_logged;
    int64_t mem_drop_log_ms;
    uint64_t disk_full_seen; /* spool_disk_full() when last logged */
    int spool_err;           /* the last spool write error, 0 = writing (control thread) */

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
    enum src inflight_src;
    uint64_t inflight_id;
    grpc_metadata_array md_in, md_trail;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string;
    grpc_byte_buffer *rx_buf, *tx_buf;
    int64_t t_start_ms, next_attempt_ms, connected_at_ms, next_hb_ms;
    int64_t last_ack_ms; /* the window last moved (or became non-empty) */
    int stream_up;       /* the current stream got the headend's initial metadata */
    int64_t next_wait_log_ms;
    char cert_problem[300]; /* what the last check of our own certificate found wrong */
    double tokens;          /* replay_rate's bucket */
    int64_t tokens_ms;
    unsigned failures, attempts;
    uint64_t rng;
    uint8_t *spool_buf;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logf_(struct uplink *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct uplink *u, const char *fmt, ...)
{
    char body[600], line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "site=%s gateway=%s uplink %s", u->id.site_id, u->id.gateway_id,
             body);
    if (u->opts.log)
        u->opts.log(u->opts.log_ctx, line);
    else
        fprintf(stderr, "%s\n", line);
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

/* ---- the delivery window ------------------------------------------------------------------- */

/* Releases what the headend has acknowledged: every window entry sent with seq <= through
 * (mu held). A memory-queue message that was dropped meanwhile is simply gone. */
static void release_through(struct uplink *u, uint64_t through)
{
    size_t cap = (size_t)u->cfg.ack_window;
    while (u->win_n && u->win[u->win_head].seq <= through) {
        struct sent e = u->win[u->win_head];
        u->win_head = (u->win_head + 1) % cap;
        u->win_n--;
        if (e.spool) {
            if (spool_release(u->spool, e.no + 1) == 0)
                u->st.spool_replayed++;
        } else {
            struct qmsg *q = q_front(&u->tel);
            if (q && q->id == e.no) {
                q_pop(&u->tel);
                u->tel_sent--;
            }
        }
        u->st.telemetry_acked++;
    }
    u->last_ack_ms = mono_ms();
}

/* A spool record that does not decode (a power cut can leave a zero-filled one) would end
 * every stream it is sent on and block all later samples: it is skipped and counted. It is
 * released in order: at once when nothing is in flight (it is then the oldest), else with
 * the last message in flight (mu held). */
static void skip_corrupt(struct uplink *u, uint64_t no)
{
    u->st.spool_corrupt++;
    if (u->win_n == 0) {
        spool_release(u->spool, no + 1);
        return;
    }
    size_t cap = (size_t)u->cfg.ack_window;
    uint64_t last = u->win[(u->win_head + u->win_n - 1) % cap].seq;
    u->win[(u->win_head + u->win_n) % cap] = (struct sent){last, no, 1};
    u->win_n++;
}

/* The stream ended: whatever it did not get acknowledged goes again on the next (mu held). */
static void rewind_window(struct uplink *u)
{
    u->win_head = u->win_n = 0;
    u->tel_sent = 0;
    if (u->spool)
        spool_rewind(u->spool);
}

/* replay_rate's token bucket, refilled from the monotonic clock; holds 1/10 s of tokens
 * (at least one) so a burst after an idle spell stays short. */
static int take_token(struct uplink *u)
{
    int64_t now = mono_ms();
    double rate = (double)u->cfg.replay_rate, cap = rate / 10.0 < 1.0 ? 1.0 : rate / 10.0;
    u->tokens += (double)(now - u->tokens_ms) * rate / 1000.0;
    u->tokens_ms = now;
    if (u->tokens > cap)
        u->tokens = cap;
    if (u->tokens < 1.0)
        return 0;
    u->tokens -= 1.0;
    return 1;
}

/* ---- the stream ----------------------------------------------------------------------------- */

static int start_op(struct uplink *u, grpc_op *op, enum tag t)
{
    grpc_call_error e = grpc_call_start_batch(u->call, op, 1, (void *)(intptr_t)t, NULL);
    if (e != GRPC_CALL_OK) {
        logf_(u, "event=error op=%d call_error=%d", (int)t, (int)e);
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
    logf_(u, "event=connecting target=%s attempt=%u", u->cfg.target, u->attempts);
}

/* The last operation of a finished stream completed: release it. */
static void end_call(struct uplink *u)
{
    grpc_call_unref(u->call);
    u->call = NULL;
    pthread_mutex_lock(&u->mu);
    rewind_window(u);
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
        logf_(u, "event=tls_channel target=%s reason=\"reloaded credentials in use\"",
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
        logf_(u, "event=%s target=%s code=%d reason=\"%s\" connected_for_ms=%lld failures=%u",
              was_connected ? "disconnected" : "connect_failed", u->cfg.target, (int)u->status,
              details[0] ? details : (u->error_string ? "transport error" : "stream ended"),
              was_connected ? (long long)(mono_ms() - u->connected_at_ms) : 0LL, u->failures);
    grpc_call_cancel(u->call, NULL); /* the other operations complete now */
}

static void on_setpoint(struct uplink *u, const struct agentmsg_setpoint *sp)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int state = AGENTMSG_ACK_RECEIVED;
    const char *detail = "";
    pthread_mutex_lock(&u->mu);
    int fresh = idset_add(&u->ids, sp->setpoint_id, AGENTMSG_ACK_RECEIVED, &state);
    if (fresh == 1) {
        u->st.setpoints++;
        if (u->rx_n == u->rx_cap) {
            u->st.setpoints_dropped++;
            state = AGENTMSG_ACK_REJECTED;
            detail = "gateway busy: setpoint queue full";
            idset_set(&u->ids, sp->setpoint_id, state);
        } else {
            u->rx[(u->rx_head + u->rx_n) % u->rx_cap] = *sp;
            u->rx_n++;
        }
    } else if (fresh == 0) {
        u->st.setpoint_duplicates++;
    }
    pthread_mutex_unlock(&u->mu);
    if (fresh < 0) {
        logf_(u, "event=setpoint_ignored reason=\"empty setpoint_id\"");
        return;
    }
    logf_(u, "event=%s setpoint_id=%s target=%s%s%s power_w=%.3f expires_ms=%lld ack=%s",
          fresh ? "setpoint" : "setpoint_duplicate", sp->setpoint_id,
          sp->target == 'a'   ? "asset:"
          : sp->target == 's' ? "site:"
                              : "primary",
          sp->target ? sp->target_id : "", "", sp->power_w, (long long)sp->expires_ms,
          agentmsg_ack_name(state));
    /* RECEIVED at once from here; a repeat gets what became of the first delivery. */
    if (agentmsg_ack(sp->setpoint_id, state, detail, NULL, 0, &buf, &len) == 0) {
        pthread_mutex_lock(&u->mu);
        if (q_push(&u->acks, buf, len))
            u->st.acks_dropped++;
        pthread_mutex_unlock(&u->mu);
    }
}

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
    if (remote_on_headend(u->opts.remote, bytes, len)) { /* remote hook: Ping, ConfigPush */
        free(bytes);
        return;
    }
    static struct agentmsg_headend m; /* only the uplink thread parses */
    int rc = agentmsg_parse_headend(bytes, len, &m);
    free(bytes);
    if (rc) {
        logf_(u, "event=bad_message reason=\"%s\"",
              rc == -EMSGSIZE ? "id too long"
              : rc == -EINVAL ? "control character in an id"
                              : "not a HeadendMessage");
        return;
    }
    if (m.body == 10) {
        u->acks_on = m.telemetry_acks && !u->cfg.legacy;
        u->last_ack_ms = mono_ms();
        pthread_mutex_lock(&u->mu);
        u->st.acks = u->acks_on;
        u->st.registered = 1;
        pthread_cond_broadcast(&u->cond);
        pthread_mutex_unlock(&u->mu);
        u->failures = 0;
        u->next_hb_ms = mono_ms() + u->cfg.heartbeat_period_ms;
        logf_(u, "event=registered target=%s accepted=%zu rejected=%zu telemetry_acks=%s",
              u->cfg.target, m.n_accepted, m.n_rejected, u->acks_on ? "yes" : "no");
        for (size_t i = 0; i < m.n_rejected && i < AGENTMSG_MAX_REJECT; i++)
            logf_(u, "asset=%s event=asset_rejected reason=\"%s\"", m.rejected[i].asset_id,
                  m.rejected[i].reason);
    } else if (m.body == 11) {
        on_setpoint(u, &m.setpoint);
    } else if (m.body == 13 && u->acks_on) {
        pthread_mutex_lock(&u->mu);
        release_through(u, m.ack_through);
        pthread_mutex_unlock(&u->mu);
    }
}

/* Frames and sends the next message when nothing is in flight. */
static void pump(struct uplink *u)
{
    if (!u->call || u->closing || u->inflight)
        return;
    int body = 0;
    uint8_t *framed = NULL;
    size_t flen = 0;
    enum src src = SRC_NONE;
    uint64_t mid = 0, corrupt = 0;
    int64_t sent = wall_ms();
    if (u->reg_pending) {
        uint8_t *reg = NULL; /* remote hook: Register with the running config version */
        size_t rlen = 0;
        if (remote_register(u->opts.remote, u->reg, u->reg_len, &reg, &rlen) == 0 &&
            agentmsg_frame(u->seq + 1, sent, AGENTMSG_REGISTER, reg, rlen, &framed, &flen) == 0)
            src = SRC_REGISTER;
        free(reg);
    } else {
        pthread_mutex_lock(&u->mu);
        int registered = u->st.registered;
        struct qmsg *q;
        if (!registered) {
            /* nothing but Register before RegisterResult */
        } else if ((framed = remote_next(u->opts.remote, u->seq + 1, sent, &flen))) {
            src = SRC_REMOTE; /* remote hook: Pong, ConfigReport */
        } else if ((q = q_front(&u->acks))) {
            body = AGENTMSG_ACK;
            src = SRC_ACK;
            mid = q->id;
            if (agentmsg_frame(u->seq + 1, sent, body, q->buf, q->len, &framed, &flen))
                src = SRC_NONE;
        } else if (mono_ms() >= u->next_hb_ms) {
            src = SRC_HEARTBEAT;
        } else if (u->win_n < (size_t)u->cfg.ack_window &&
                   (u->tel_sent < u->tel.n || (u->spool && spool_unsent(u->spool))) &&
                   take_token(u)) {
            /* the memory queue is older than the spool: it only holds what the disk refused */
            size_t len;
            uint64_t no;
            if ((q = q_at(&u->tel, u->tel_sent))) {
                src = SRC_TELEMETRY;
                mid = q->id;
                if (agentmsg_frame(u->seq + 1, sent, AGENTMSG_TELEMETRY, q->buf, q->len, &framed,
                                   &flen))
                    src = SRC_NONE;
                else
                    u->tel_sent++;
            } else if (spool_next(u->spool, u->spool_buf, SPOOL_MAX_RECORD, &len, &no) == 0) {
                if (!agentmsg_telemetry_valid(u->spool_buf, len)) {
                    skip_corrupt(u, no);
                    corrupt = no + 1;
                } else {
                    src = SRC_SPOOL;
                    mid = no;
                    if (agentmsg_frame(u->seq + 1, sent, AGENTMSG_TELEMETRY, u->spool_buf, len,
                                       &framed, &flen))
                        src = SRC_NONE;
                }
            }
            if (src != SRC_NONE) {
                if (u->win_n == 0)
                    u->last_ack_ms = mono_ms();
                size_t cap = (size_t)u->cfg.ack_window;
                u->win[(u->win_head + u->win_n) % cap] =
                    (struct sent){u->seq + 1, mid, src == SRC_SPOOL};
                u->win_n++;
            } else if (u->spool && !corrupt) {
                /* out of memory after the cursor moved: send it again from the start */
                rewind_window(u);
            }
        }
        pthread_mutex_unlock(&u->mu);
        if (corrupt)
            logf_(u,
                  "event=spool_corrupt record=%llu reason=\"not a Telemetry message (a torn "
                  "or zeroed write): skipped\"",
                  (unsigned long long)(corrupt - 1));
        if (src == SRC_HEARTBEAT) {
            uint8_t *hb;
            size_t hl;
            u->next_hb_ms = mono_ms() + u->cfg.heartbeat_period_ms;
            if (agentmsg_heartbeat(mono_ms() - u->t_start_ms, &hb, &hl) ||
                agentmsg_frame(u->seq + 1, sent, AGENTMSG_HEARTBEAT, hb, hl, &framed, &flen))
                src = SRC_NONE;
            free(hb);
        }
    }
    if (src == SRC_NONE) {
        free(framed);
        return;
    }
    grpc_slice s = grpc_slice_new(framed, flen, free);
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
        if (src == SRC_TELEMETRY || src == SRC_SPOOL)
            grpc_call_cancel(u->call, NULL);
        return;
    }
    u->seq++;
    u->seq_inflight = u->seq;
    u->inflight = 1;
    u->inflight_src = src;
    u->inflight_id = mid;
    if (src == SRC_REGISTER)
        u->reg_pending = 0;
}

static void on_sent(struct uplink *u, int ok)
{
    grpc_byte_buffer_destroy(u->tx_buf);
    u->tx_buf = NULL;
    u->inflight = 0;
    if (!ok) {
        if (u->inflight_src == SRC_REGISTER)
            u->reg_pending = 1;
        return; /* the stream is breaking: the message stays queued for the next one */
    }
    pthread_mutex_lock(&u->mu);
    struct qmsg *q;
    switch (u->inflight_src) {
    case SRC_ACK:
        if ((q = q_front(&u->acks)) && q->id == u->inflight_id)
            q_pop(&u->acks);
        u->st.acks_sent++;
        break;
    case SRC_TELEMETRY:
    case SRC_SPOOL:
        u->st.telemetry_sent++;
        /* a headend that does not acknowledge: a completed send is all we will know */
        if (!u->acks_on)
            release_through(u, u->seq_inflight);
        break;
    case SRC_HEARTBEAT:
        u->st.heartbeats++;
        break;
    default:
        break;
    }
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
            logf_(u, "event=connected target=%s attempt=%u", u->cfg.target, u->attempts);
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

/* ---- channel and credentials --------------------------------------------------------------- */

#define PEM_MAX (1 << 20)

/* A whole PEM file, NUL-terminated, for the caller to free; NULL with err naming the key. */
static char *read_pem(const char *key, const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        snprintf(err, errlen, "uplink.tls.%s: cannot read \"%s\": %s", key, file, strerror(errno));
        return NULL;
    }
    char *buf = malloc(PEM_MAX + 1);
    size_t n = buf ? fread(buf, 1, PEM_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (buf)
        buf[n <= PEM_MAX ? n : PEM_MAX] = '\0';
    if (!buf || bad || n == 0 || n > PEM_MAX || !strstr(buf, "-----BEGIN ")) {
        snprintf(err, errlen, "uplink.tls.%s: \"%s\" is %s", key, file,
                 !buf  ? "too big to hold (out of memory)"
                 : bad ? "unreadable"
                       : "not a PEM file (empty, over 1 MiB, or no -----BEGIN line)");
        free(buf);
        return NULL;
    }
    return buf;
}

/* ASN.1 time as ISO 8601 UTC. */
static void asn1_iso(const ASN1_TIME *t, char *buf, size_t len)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1 || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "?");
}

/* The gateway id a certificate names, by the headend's rule (docs/protocol.md): the SAN URI
 * urn:derloop:gateway:ID, else the subject CN; "" when none. */
static void cert_identity(X509 *x, char *out, size_t len)
{
    out[0] = '\0';
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && !out[0]; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI)
            continue;
        const char *uri = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        int n = ASN1_STRING_length(g->d.uniformResourceIdentifier);
        size_t plen = strlen(CERT_URI_PREFIX);
        if (n > (int)plen && !strncmp(uri, CERT_URI_PREFIX, plen))
            snprintf(out, len, "%.*s", n - (int)plen, uri + plen);
    }
    GENERAL_NAMES_free(names);
    if (!out[0] &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)len) < 0)
        out[0] = '\0';
}

/* Verifies cert against the CAs of the PEM text ca (client purpose). 1, or 0 with why. */
static int cert_verifies(X509 *x, const char *ca, char *why, size_t len)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    BIO *b = BIO_new_mem_buf(ca, -1);
    STACK_OF(X509_INFO) *infos = b ? PEM_X509_INFO_read_bio(b, NULL, NULL, NULL) : NULL;
    int ok = 0;
    for (int i = 0; store && infos && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *xi = sk_X509_INFO_value(infos, i);
        if (xi->x509)
            X509_STORE_add_cert(store, xi->x509);
    }
    if (store && ctx && X509_STORE_CTX_init(ctx, store, x, NULL) == 1) {
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
        ok = X509_verify_cert(ctx) == 1;
        if (!ok)
            snprintf(why, len, "%s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    } else {
        snprintf(why, len, "cannot set up the check");
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(b);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

/* What the gateway can tell about its own certificate before the headend refuses it: the
 * headend rejects a bad client certificate during the TLS handshake, and gRPC gives the
 * client no reason (with TLS 1.3 the gateway does not even see an error; its stream just
 * waits), so the reason is worked out here, with the same OpenSSL gRPC uses. -EINVAL with
 * note when the files cannot work at all (no certificate, no key, a key that is not the
 * certificate's); 1 with the reason in note when the headend will refuse the certificate
 * (expired, not yet valid, another gateway's identity, not issued by a CA in uplink.tls.ca:
 * harmless when the headend trusts another CA for gateways); 0 when it looks right. */
static int check_cert(const char *gateway_id, const char *ca, const char *cert, const char *key,
                      char *note, size_t len, char *why, size_t whylen)
{
    why[0] = '\0';
    BIO *b = BIO_new_mem_buf(cert, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!x) {
        snprintf(note, len, "uplink.tls.cert: no certificate in the file");
        ERR_clear_error();
        return -EINVAL;
    }
    b = BIO_new_mem_buf(key, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    int rc = 0;
    if (!k) {
        snprintf(note, len,
                 "uplink.tls.key: no private key in the file (encrypted keys are not "
                 "supported)");
        rc = -EINVAL;
    } else if (X509_check_private_key(x, k) != 1) {
        snprintf(note, len, "uplink.tls.key: not the key of uplink.tls.cert");
        rc = -EINVAL;
    }
    EVP_PKEY_free(k);
    if (rc == 0) {
        char id[128], na[32], nb[32], verr[120];
        cert_identity(x, id, sizeof id);
        asn1_iso(X509_get0_notAfter(x), na, sizeof na);
        asn1_iso(X509_get0_notBefore(x), nb, sizeof nb);
        if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
            snprintf(why, whylen, "expired at %s: the headend refuses the TLS handshake", na);
        else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
            snprintf(why, whylen, "not valid before %s: the headend refuses the TLS handshake", nb);
        else if (!id[0])
            snprintf(why, whylen,
                     "names no gateway (no SAN URI " CERT_URI_PREFIX "ID, no CN): the headend "
                     "refuses every Register");
        else if (strcmp(id, gateway_id) != 0)
            snprintf(why, whylen,
                     "names gateway %.63s, this gateway is %s: the headend refuses its Register",
                     id, gateway_id);
        else if (!cert_verifies(x, ca, verr, sizeof verr))
            snprintf(why, whylen,
                     "not issued by a CA in uplink.tls.ca (%s): the headend refuses the TLS "
                     "handshake unless its --tls-client-ca holds the issuer",
                     verr);
        snprintf(note, len, "identity=%s not_after=%s", id[0] ? id : "-", na);
        rc = why[0] ? 1 : 0;
    }
    X509_free(x);
    ERR_clear_error();
    return rc;
}

/* The channel to cfg->target, with TLS credentials from the files when uplink.tls is set.
 * NULL with err when a file cannot be read (gRPC checks the PEM contents only at the first
 * handshake, which then fails and is logged by gRPC core). */
static grpc_channel *make_channel(const struct uplink_cfg *cfg, const char *gateway_id, char *err,
                                  size_t errlen, char *note, size_t notelen, char *why,
                                  size_t whylen, int *cert_rc)
{
    note[0] = why[0] = '\0';
    *cert_rc = 0;
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
    grpc_channel_credentials *creds = NULL;
    if (!cfg->tls.on) {
        creds = grpc_insecure_credentials_create();
    } else {
        char *root = read_pem("ca", cfg->tls.ca, err, errlen);
        char *cert = root && cfg->tls.cert[0] ? read_pem("cert", cfg->tls.cert, err, errlen) : NULL;
        char *key = cert ? read_pem("key", cfg->tls.key, err, errlen) : NULL;
        if (cert && !key) { /* a key file that cannot be read: not a server-only setup */
            free(cert);
            cert = NULL;
        }
        if (key) {
            *cert_rc = check_cert(gateway_id, root, cert, key, note, notelen, why, whylen);
            if (*cert_rc < 0) {
                snprintf(err, errlen, "%s", note);
                memset(key, 0, strlen(key));
                free(key);
                key = NULL;
                free(cert);
                cert = NULL;
            }
        }
        if (root && (key || !cfg->tls.cert[0])) {
            grpc_ssl_pem_key_cert_pair pair = {key, cert};
            /* gRPC core copies the strings */
            creds = grpc_ssl_credentials_create_ex(root, key ? &pair : NULL, NULL, NULL);
            if (!creds)
                snprintf(err, errlen, "uplink.tls: gRPC refused the credentials");
        }
        if (key)
            memset(key, 0, strlen(key));
        free(root);
        free(cert);
        free(key);
    }
    if (!creds)
        return NULL;
    grpc_channel *ch = grpc_channel_create(cfg->target, creds, &ca);
    grpc_channel_credentials_release(creds);
    if (!ch)
        snprintf(err, errlen, "uplink.target: cannot create a channel to \"%s\"", cfg->target);
    return ch;
}

/* The result of check_cert, logged and kept for the connect_waiting line. */
static void log_cert(struct uplink *u, const char *note, const char *why)
{
    if (!note[0])
        return;
    snprintf(u->cert_problem, sizeof u->cert_problem, "%s", why);
    logf_(u, "event=tls_cert status=%s cert=%s %s%s%s%s", why[0] ? "warning" : "ok",
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
        logf_(u,
              "event=connect_waiting target=%s attempt=%u tls=off reason=\"no connection yet: "
              "the headend is down or unreachable\"",
              u->cfg.target, u->attempts);
    else
        logf_(u,
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
        logf_(u, "event=tls_reload status=skipped reason=\"no uplink.tls: nothing to reload\"");
        return;
    }
    char err[700], note[160], why[sizeof u->cert_problem];
    int cert_rc;
    grpc_channel *ch = make_channel(&u->cfg, u->id.gateway_id, err, sizeof err, note, sizeof note,
                                    why, sizeof why, &cert_rc);
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
        logf_(u, "event=tls_reload status=failed reason=\"%s; the previous credentials stay\"",
              err);
        return;
    }
    log_cert(u, note, why);
    if (u->next_chan) /* a second reload before the first was used */
        grpc_channel_destroy(u->next_chan);
    u->next_chan = ch;
    pthread_mutex_lock(&u->mu);
    int registered = u->st.registered;
    pthread_mutex_unlock(&u->mu);
    logf_(u, "event=tls_reload status=ok ca=%s cert=%s applies=\"%s\"", u->cfg.tls.ca,
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
    size_t n = u->win_n;
    pthread_mutex_unlock(&u->mu);
    int64_t idle = mono_ms() - u->last_ack_ms;
    if (n == 0 || idle < u->cfg.ack_timeout_ms)
        return;
    logf_(u,
          "event=ack_timeout window=%zu idle_ms=%lld reason=\"no TelemetryAck: restarting the "
          "stream, the window is sent again\"",
          n, (long long)idle);
    pthread_mutex_lock(&u->mu);
    u->st.ack_timeouts++;
    pthread_mutex_unlock(&u->mu);
    u->last_ack_ms = mono_ms();
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

/* ---- the control thread's side -------------------------------------------------------------- */

struct uplink *uplink_new(const struct uplink_cfg *cfg, const struct uplink_identity *id,
                          const struct uplink_opts *opts, char *err, size_t errlen)
{
    if (!cfg->target[0]) {
        snprintf(err, errlen, "uplink.target: required");
        return NULL;
    }
    if (id->n_assets == 0) {
        snprintf(err, errlen, "uplink: the site has no assets to register");
        return NULL;
    }
    struct uplink *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, errlen, "uplink: out of memory");
        return NULL;
    }
    u->cfg = *cfg;
    u->id = *id;
    if (opts)
        u->opts = *opts;
    u->rng = (u->opts.seed ? u->opts.seed : (uint64_t)wall_ms()) | 1;
    /* telemetry_seq starts at the start time in Unix ms: below 1000 samples a second it keeps
     * increasing across restarts (spooled samples of the last run carry lower ones) */
    int64_t seq0 = wall_ms();
    for (size_t i = 0; i < PROCIMG_MAX_DEVICES; i++)
        u->tseq[i] = seq0 > 0 ? (uint64_t)seq0 : 0;
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cond, NULL);
    idset_init(&u->ids);
    u->t_start_ms = mono_ms();
    u->rx_cap = (size_t)cfg->queue_len;
    u->rx = calloc(u->rx_cap, sizeof *u->rx);
    u->spool_buf = malloc(SPOOL_MAX_RECORD);
    u->win = calloc((size_t)cfg->ack_window, sizeof *u->win);
    u->tokens_ms = mono_ms();
    if (!u->rx || !u->spool_buf || !u->win || q_init(&u->tel, (size_t)cfg->queue_len) ||
        q_init(&u->acks, (size_t)cfg->queue_len) ||
        agentmsg_register(id->gateway_id, id->site_id, id->assets, id->n_assets,
                          id->primary_asset_id, id->software, cfg->legacy, &u->reg, &u->reg_len)) {
        snprintf(err, errlen, "uplink: out of memory");
        goto fail;
    }
    if (cfg->spool_dir[0]) {
        int rc =
            spool_open(cfg->spool_dir, id->gateway_id, (uint64_t)cfg->spool_max_bytes, &u->spool);
        if (rc) {
            snprintf(err, errlen, "uplink.spool_dir: cannot open \"%s\": %s", cfg->spool_dir,
                     strerror(-rc));
            goto fail;
        }
        if (spool_records(u->spool))
            logf_(u, "event=spool_found dir=%s records=%llu", cfg->spool_dir,
                  (unsigned long long)spool_records(u->spool));
    }

    grpc_init();
    char note[160], why[sizeof u->cert_problem];
    int cert_rc;
    u->chan = make_channel(cfg, id->gateway_id, err, errlen, note, sizeof note, why, sizeof why,
                           &cert_rc);
    u->cq = grpc_completion_queue_create_for_next(NULL);
    if (!u->chan || !u->cq) {
        if (u->chan)
            snprintf(err, errlen, "uplink: out of memory");
        goto fail_grpc;
    }
    if (pthread_create(&u->thread, NULL, run, u) != 0) {
        snprintf(err, errlen, "uplink: cannot start its thread");
        goto fail_grpc;
    }
    u->thread_started = 1;
    log_cert(u, note, why);
    logf_(u,
          "event=start target=%s assets=%zu primary=%s legacy=%d spool=%s telemetry_seq0=%llu "
          "tls=%s",
          cfg->target, id->n_assets, id->primary_asset_id, cfg->legacy,
          cfg->spool_dir[0] ? cfg->spool_dir : "-", (unsigned long long)u->tseq[0],
          !cfg->tls.on       ? "off"
          : cfg->tls.cert[0] ? "mutual"
                             : "server");
    return u;
fail_grpc:
    uplink_free(u);
    return NULL;
fail:
    spool_close(u->spool);
    u->spool = NULL;
    q_free(&u->tel);
    q_free(&u->acks);
    free(u->rx);
    free(u->reg);
    free(u->spool_buf);
    free(u->win);
    pthread_mutex_destroy(&u->mu);
    pthread_cond_destroy(&u->cond);
    free(u);
    return NULL;
}

void uplink_free(struct uplink *u)
{
    if (!u)
        return;
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
        grpc_completion_queue_shutdown(u->cq);
        int64_t end = mono_ms() + DRAIN_MS;
        while (mono_ms() < end) {
            grpc_event ev = grpc_completion_queue_next(
                u->cq,
                gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                             gpr_time_from_millis(TURN_MS, GPR_TIMESPAN)),
                NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN)
                break;
        }
        grpc_completion_queue_destroy(u->cq);
    }
    if (u->tx_buf)
        grpc_byte_buffer_destroy(u->tx_buf);
    if (u->rx_buf)
        grpc_byte_buffer_destroy(u->rx_buf);
    grpc_shutdown();
    if (u->thread_started)
        logf_(u,
              "event=stop telemetry_sent=%llu acked=%llu spooled=%llu unacked=%llu "
              "dropped=%llu ack_timeouts=%llu",
              (unsigned long long)u->st.telemetry_sent, (unsigned long long)u->st.telemetry_acked,
              (unsigned long long)u->st.spooled,
              (unsigned long long)(u->tel.n + (u->spool ? spool_records(u->spool) : 0)),
              (unsigned long long)(u->st.telemetry_dropped +
                                   (u->spool ? spool_dropped(u->spool) : 0)),
              (unsigned long long)u->st.ack_timeouts);
    spool_close(u->spool);
    q_free(&u->tel);
    q_free(&u->acks);
    free(u->rx);
    free(u->reg);
    free(u->spool_buf);
    free(u->win);
    pthread_mutex_destroy(&u->mu);
    pthread_cond_destroy(&u->cond);
    free(u);
}

void uplink_reload(struct uplink *u)
{
    atomic_store(&u->reload, 1);
}

/* One telemetry record into the spool, or the memory queue without one (mu held; takes
 * buf). Returns the records dropped to make room (the spool's oldest segment, or the memory
 * queue's oldest message), for the caller to log once mu is released. */
static uint64_t enqueue_telemetry(struct uplink *u, uint8_t *buf, size_t len, int *spool_rc,
                                  int *from_spool)
{
    u->st.telemetry_queued++;
    *spool_rc = 0;
    *from_spool = 0;
    if (u->spool) {
        uint64_t before = spool_dropped(u->spool);
        int rc = spool_push(u->spool, buf, len);
        if (rc == 0) {
            u->st.spooled++;
            free(buf);
            *from_spool = 1;
            return spool_dropped(u->spool) - before;
        }
        /* the disk refused: fall back to memory (dropping the oldest there) */
        *spool_rc = rc;
    }
    if (!q_push(&u->tel, buf, len))
        return 0;
    u->st.telemetry_dropped++;
    if (u->tel_sent) /* the dropped one was sent and waited for its ack */
        u->tel_sent--;
    return 1;
}

static const char *clamp_of(const struct decision *dm, size_t i)
{
    for (size_t k = 0; dm && k < dm->n_clamps; k++)
        if (dm->clamp[k].asset == (int)i)
            return decision_reason_name(dm->clamp[k].reason);
    return NULL;
}

/* Dropped telemetry is logged when it happens: a spool segment at once (it is rare and
 * large), single memory-queue messages at most every 10 s of controller time, with counts. */
static void log_drop(struct uplink *u, uint64_t n, uint64_t total, int64_t now_ms, int from_spool)
{
    if (from_spool) {
        pthread_mutex_lock(&u->mu);
        uint64_t full = spool_disk_full(u->spool);
        int disk = full != u->disk_full_seen;
        u->disk_full_seen = full;
        pthread_mutex_unlock(&u->mu);
        logf_(u,
              "event=telemetry_dropped records=%llu total=%llu reason=\"%s (spool_max_bytes %d): "
              "oldest segment deleted\"",
              (unsigned long long)n, (unsigned long long)total,
              disk ? "disk full (ENOSPC) before the spool's bound" : "spool full",
              u->cfg.spool_max_bytes);
        return;
    }
    u->mem_dropped_logged += n;
    if (u->mem_drop_log_ms && now_ms - u->mem_drop_log_ms < 10000)
        return;
    logf_(u,
          "event=telemetry_dropped records=%llu total=%llu reason=\"memory queue full "
          "(queue_len %d)\"",
          (unsigned long long)u->mem_dropped_logged, (unsigned long long)total, u->cfg.queue_len);
    u->mem_dropped_logged = 0;
    u->mem_drop_log_ms = now_ms;
}

/* The spool refused a write (disk full with nothing left to delete, I/O error): said once
 * per episode, and again when it works again (control thread). */
static void log_spool_error(struct uplink *u, int err)
{
    if (err && !u->spool_err)
        logf_(u,
              "event=spool_error error=\"%s\" reason=\"cannot write the spool: samples wait "
              "in memory (queue_len %d) and are lost if the gateway stops\"",
              strerror(-err), u->cfg.queue_len);
    else if (!err && u->spool_err)
        logf_(u, "event=spool_ok reason=\"the spool takes samples again\"");
    u->spool_err = err;
}

int uplink_publish(struct uplink *u, const struct procimg *img, const struct decision *dm,
                   int64_t now_ms)
{
    if (u->published && now_ms - u->last_pub_ms < u->cfg.telemetry_period_ms)
        return 0;
    u->published = 1;
    u->last_pub_ms = now_ms;
    int64_t ts = wall_ms();
    int n = 0;
    for (size_t i = 0; i < img->n_devices && i < PROCIMG_MAX_DEVICES; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (u->cfg.legacy && strcmp(d->asset_id, u->id.primary_asset_id))
            continue;
        uint8_t *buf;
        size_t len;
        char status[64] = "";
        const char *clamp = clamp_of(dm, i);
        if (clamp) /* the status says why the setpoint is not what was asked */
            snprintf(status, sizeof status, "%s clamped=%s",
                     !d->online ? "offline"
                     : d->stale ? "stale"
                                : "ok",
                     clamp);
        if (agentmsg_telemetry(d, u->cfg.legacy ? "" : d->asset_id, clamp ? status : NULL, ts,
                               ++u->tseq[i], &buf, &len))
            continue;
        pthread_mutex_lock(&u->mu);
        int spool_rc, from_spool;
        uint64_t dropped = enqueue_telemetry(u, buf, len, &spool_rc, &from_spool);
        uint64_t total = u->st.telemetry_dropped + (u->spool ? spool_dropped(u->spool) : 0);
        pthread_mutex_unlock(&u->mu);
        if (u->spool)
            log_spool_error(u, spool_rc);
        if (dropped)
            log_drop(u, dropped, total, now_ms, from_spool);
        n++;
    }
    return n;
}

int uplink_poll_setpoint(struct uplink *u, struct agentmsg_setpoint *out)
{
    int got = 0;
    pthread_mutex_lock(&u->mu);
    if (u->rx_n) {
        *out = u->rx[u->rx_head];
        u->rx_head = (u->rx_head + 1) % u->rx_cap;
        u->rx_n--;
        got = 1;
    }
    pthread_mutex_unlock(&u->mu);
    return got;
}

int uplink_ack(struct uplink *u, const char *setpoint_id, int state, const char *detail,
               const struct agentmsg_alloc *allocs, size_t n)
{
    uint8_t *buf;
    size_t len;
    if (agentmsg_ack(setpoint_id, state, detail, allocs, n, &buf, &len))
        return -ENOMEM;
    pthread_mutex_lock(&u->mu);
    idset_set(&u->ids, setpoint_id, state);
    int dropped = q_push(&u->acks, buf, len);
    if (dropped)
        u->st.acks_dropped++;
    pthread_mutex_unlock(&u->mu);
    return dropped ? -ENOBUFS : 0;
}

void uplink_get_stats(struct uplink *u, struct uplink_stats *st)
{
    pthread_mutex_lock(&u->mu);
    *st = u->st;
    st->queue_depth = u->tel.n;
    st->window = u->win_n;
    if (u->spool) {
        st->spool_records = spool_records(u->spool);
        st->spool_dropped = spool_dropped(u->spool);
    }
    pthread_mutex_unlock(&u->mu);
}

int uplink_wait_registered(struct uplink *u, int64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    int rc = 0;
    pthread_mutex_lock(&u->mu);
    while (!u->st.registered && rc == 0)
        rc = pthread_cond_timedwait(&u->cond, &u->mu, &ts);
    int ok = u->st.registered;
    pthread_mutex_unlock(&u->mu);
    return ok ? 0 : -ETIMEDOUT;
}
