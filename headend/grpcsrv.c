/* grpcsrv: the headend's gRPC transport (gRPC core's completion-queue API).
 *
 * Invariants of the stream lifecycle (docs/protocol.md has the rules they serve):
 * - One thread (loop) takes events off the completion queue; each event is handled exactly
 *   once. Every tag is a struct tag inside the object it completes for: a slot, an unknown
 *   call, a stream (one tag per operation kind), or the server's shutdown.
 * - Per stream, separate batches keep one of each operation outstanding: initial metadata
 *   once, RECV_CLOSE_ON_SERVER (its `cancelled` flag is how a vanished gateway is noticed),
 *   RECV_MESSAGE re-posted after each message, SEND_MESSAGE fed from an application queue
 *   with one send in flight, and SEND_STATUS once (finish). `pending` counts the batches
 *   started and not yet completed: +1 only in batch() when start_batch succeeded, -1 only in
 *   on_stream_event.
 * - A stream is freed (maybe_free) only when its close has fired and pending is 0; then no
 *   event can still name it. Its hub session is ended at the close event (or at the free
 *   when the close op could not even be started), exactly once.
 * - All stream state is guarded by the hub lock: the REST thread starts sends directly
 *   under it (no wakeup of this thread needed), and this thread holds it while handling.
 * - Shutdown: shutdown_and_notify, a grace period, cancel_all_calls, then wait for the
 *   shutdown tag and for every stream and unknown call to be freed before the server is
 *   destroyed and the queue drained.
 * Limits an anonymous client cannot exhaust: a stream must Register within
 * register-timeout-ms or is closed; at most max-pending-per-peer unregistered streams per IP
 * address (a newer one closes that address's oldest); max-streams in all.
 * TLS: with --tls-cert/--tls-key the port takes SSL server credentials; with --tls-client-ca
 * too, a client certificate signed by that CA is required and verified by gRPC core during
 * the handshake (a client without one never gets a stream), and each stream's session gets
 * the gateway identity its certificate names, read once from the call's auth context before
 * any message of the stream is handled (hub_identity_from_cert has the rule). */
#include "headend/grpcsrv.h"

#include <errno.h>
#include <pthread.h>
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

#include "common/log.h"
#include "common/pem.h"

#define METHOD_CONNECT    "/der.v1.Headend/Connect"
#define N_SLOTS           64    /* registered-call requests kept posted */
#define LOOP_DEADLINE_MS  20    /* the queue thread's timer resolution */
#define MAX_QUEUED_SENDS  10000 /* per stream; setpoints stay durable in the store anyway */
#define MAX_MESSAGE_BYTES (1 << 20)
#define DRAIN_MAX         256 /* completions handled per lock hold */
#define CERT_URIS_MAX     16  /* SAN URIs looked at per certificate */
#define CERT_VALUE_MAX    256 /* longer SAN URIs or CNs cannot name a gateway anyway */

enum tag_kind {
    T_SLOT,
    T_UNKNOWN,
    T_UNKNOWN_DONE,
    T_META,
    T_RECV,
    T_SEND,
    T_CLOSE,
    T_STATUS,
    T_SHUTDOWN
};

struct tag {
    enum tag_kind kind;
    void *p;
};

struct outmsg {
    struct outmsg *next;
    grpc_byte_buffer *bb;
};

struct stream {
    struct grpcsrv *g;
    grpc_call *call;
    struct session *sess;
    struct tag t_meta, t_recv, t_send, t_close, t_status;
    grpc_byte_buffer *recv_buf;
    grpc_byte_buffer *inflight;
    struct outmsg *head, *tail;
    size_t queued;
    int pending;
    int cancelled;
    int close_fired;
    int status_started;
    grpc_slice status_details;
    char reason[200];
    /* Until it registers: its place in the server's list (opening order) and its peer's. */
    int64_t opened_ms;
    struct peer *peer;
    struct stream *gprev, *gnext, *pprev, *pnext;
};

/* An IP address with unregistered streams: how many, oldest first. */
struct peer {
    struct peer *next; /* hash chain */
    char ip[64];
    size_t n;
    struct stream *head, *tail;
};

#define PEER_BUCKETS 1024

struct slot {
    struct tag t;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
};

struct unknown {
    struct tag t;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    int cancelled;
};

struct grpcsrv {
    struct hub *hub;
    struct headend_config cfg;
    grpc_server *server;
    grpc_completion_queue *cq;
    void *method;
    struct slot slots[N_SLOTS];
    struct unknown *unknown; /* the posted request for unknown methods */
    size_t unknown_live;     /* answered unknown calls not yet completed */
    size_t live_streams;
    struct stream *pend_head, *pend_tail; /* unregistered streams, oldest first */
    struct peer *peers[PEER_BUCKETS];
    uint64_t register_timeouts, peer_evictions;
    int mutual; /* client certificates required and verified */
    pthread_t thread;
    atomic_int stop;
    int shutdown_started, shutdown_done;
    struct tag t_shutdown;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static gpr_timespec in_ms(int ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static int batch(struct stream *s, const grpc_op *ops, size_t n, struct tag *t)
{
    grpc_call_error e = grpc_call_start_batch(s->call, ops, n, t, NULL);
    if (e != GRPC_CALL_OK) {
        log_event(LOG_ERROR, "event=grpc_error gateway=%s op=start_batch code=%d",
                  s->sess ? s->sess->gateway_id : "-", (int)e);
        return -EIO;
    }
    s->pending++;
    return 0;
}

static void kick_send(struct stream *s)
{
    if (s->inflight || !s->head || s->status_started)
        return;
    struct outmsg *m = s->head;
    s->head = m->next;
    if (!s->head)
        s->tail = NULL;
    s->queued--;
    s->inflight = m->bb;
    free(m);
    grpc_op op = {.op = GRPC_OP_SEND_MESSAGE};
    op.data.send_message.send_message = s->inflight;
    if (batch(s, &op, 1, &s->t_send) < 0) {
        grpc_byte_buffer_destroy(s->inflight);
        s->inflight = NULL;
    }
}

static void drop_queue(struct stream *s)
{
    while (s->head) {
        struct outmsg *m = s->head;
        s->head = m->next;
        grpc_byte_buffer_destroy(m->bb);
        free(m);
    }
    s->tail = NULL;
    s->queued = 0;
}

/* link ops: called by the hub with its lock held, from either thread. */
static int link_send(void *link, const Der__V1__HeadendMessage *msg)
{
    struct stream *s = link;
    if (s->status_started || s->close_fired)
        return -EPIPE;
    if (s->queued >= MAX_QUEUED_SENDS)
        return -ENOBUFS;
    size_t n = der__v1__headend_message__get_packed_size(msg);
    grpc_slice sl = grpc_slice_malloc(n);
    der__v1__headend_message__pack(msg, GRPC_SLICE_START_PTR(sl));
    struct outmsg *m = malloc(sizeof(*m));
    if (!m) {
        grpc_slice_unref(sl);
        return -ENOMEM;
    }
    m->bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    m->next = NULL;
    if (s->tail)
        s->tail->next = m;
    else
        s->head = m;
    s->tail = m;
    s->queued++;
    kick_send(s);
    return 0;
}

static void pending_remove(struct grpcsrv *g, struct stream *s);

static void finish(struct stream *s, int code, const char *reason)
{
    if (s->status_started)
        return;
    s->status_started = 1;
    pending_remove(s->g, s);
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
    drop_queue(s);
    if (s->close_fired)
        return;
    s->status_details = grpc_slice_from_copied_string(reason);
    grpc_op op = {.op = GRPC_OP_SEND_STATUS_FROM_SERVER};
    op.data.send_status_from_server.status = (grpc_status_code)code;
    op.data.send_status_from_server.status_details = &s->status_details;
    if (batch(s, &op, 1, &s->t_status) < 0)
        grpc_call_cancel(s->call, NULL);
}

static void link_close(void *link, int code, const char *reason)
{
    finish(link, code, reason);
}

static const struct session_link_ops link_ops = {.send = link_send, .close = link_close};

/* "ipv4:1.2.3.4:5678" -> "ipv4:1.2.3.4", "ipv6:[::1]:5678" -> "ipv6:[::1]". */
static void peer_ip(const char *peer, char *ip, size_t n)
{
    snprintf(ip, n, "%s", peer ? peer : "");
    char *c = strrchr(ip, ':');
    if (c && c > ip && strchr(ip, ':') != c)
        *c = '\0';
}

static unsigned hash_ip(const char *ip)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (; *ip; ip++)
        h = (h ^ (unsigned char)*ip) * 16777619u;
    return h % PEER_BUCKETS;
}

static struct peer *peer_get(struct grpcsrv *g, const char *ip, int create)
{
    unsigned b = hash_ip(ip);
    for (struct peer *p = g->peers[b]; p; p = p->next)
        if (!strcmp(p->ip, ip))
            return p;
    if (!create)
        return NULL;
    struct peer *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    snprintf(p->ip, sizeof(p->ip), "%s", ip);
    p->next = g->peers[b];
    g->peers[b] = p;
    return p;
}

static void peer_drop(struct grpcsrv *g, struct peer *p)
{
    struct peer **pp = &g->peers[hash_ip(p->ip)];
    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    free(p);
}

/* Takes s off the unregistered lists (it registered, finished or is being freed). */
static void pending_remove(struct grpcsrv *g, struct stream *s)
{
    if (!s->peer)
        return;
    if (s->gprev)
        s->gprev->gnext = s->gnext;
    else
        g->pend_head = s->gnext;
    if (s->gnext)
        s->gnext->gprev = s->gprev;
    else
        g->pend_tail = s->gprev;
    struct peer *p = s->peer;
    if (s->pprev)
        s->pprev->pnext = s->pnext;
    else
        p->head = s->pnext;
    if (s->pnext)
        s->pnext->pprev = s->pprev;
    else
        p->tail = s->pprev;
    s->gprev = s->gnext = s->pprev = s->pnext = NULL;
    s->peer = NULL;
    if (--p->n == 0)
        peer_drop(g, p);
}

/* A new stream waits for its Register on the lists; an address over its allowance loses its
 * oldest waiting stream (not the new one: a real gateway registers within a round trip, so
 * a flood from its own address cannot starve it). */
static void pending_add(struct grpcsrv *g, struct stream *s, const char *peer)
{
    char ip[64];
    peer_ip(peer, ip, sizeof(ip));
    struct peer *p = peer_get(g, ip, 1);
    if (!p)
        return; /* out of memory: the register deadline is then not enforced for this one */
    if (p->n >= (size_t)g->cfg.max_pending_per_peer && p->head) {
        struct stream *old = p->head;
        g->peer_evictions++;
        if (g->peer_evictions <= 5 || g->peer_evictions % 1000 == 0)
            log_event(LOG_WARN,
                      "event=stream_evicted peer=%s pending=%zu total=%llu "
                      "reason=\"too many unregistered streams from this address\"",
                      p->ip, p->n, (unsigned long long)g->peer_evictions);
        hub_count_refusal(g->hub, HUB_PEER_EVICTION, 1);
        pending_remove(g, old);
        finish(old, GRPC_STATUS_RESOURCE_EXHAUSTED,
               "too many unregistered streams from this address");
        if (!(p = peer_get(g, ip, 1)))
            return;
    }
    s->opened_ms = now_ms();
    s->peer = p;
    s->gprev = g->pend_tail;
    if (g->pend_tail)
        g->pend_tail->gnext = s;
    else
        g->pend_head = s;
    g->pend_tail = s;
    s->pprev = p->tail;
    if (p->tail)
        p->tail->pnext = s;
    else
        p->head = s;
    p->tail = s;
    p->n++;
}

/* Closes the streams that did not register in time (the list is in opening order, so only
 * its head needs looking at). */
static void pending_expire(struct grpcsrv *g, int64_t now)
{
    size_t n = 0;
    while (g->pend_head && now - g->pend_head->opened_ms >= g->cfg.register_timeout_ms) {
        struct stream *s = g->pend_head;
        pending_remove(g, s);
        if (s->sess && s->sess->registered)
            continue;
        char why[96];
        snprintf(why, sizeof(why), "no Register within %d ms", g->cfg.register_timeout_ms);
        finish(s, GRPC_STATUS_DEADLINE_EXCEEDED, why);
        n++;
    }
    if (n) {
        g->register_timeouts += n;
        hub_count_refusal(g->hub, HUB_REGISTER_TIMEOUT, n);
        log_event(LOG_WARN, "event=register_timeout streams=%zu total=%llu timeout_ms=%d", n,
                  (unsigned long long)g->register_timeouts, g->cfg.register_timeout_ms);
    }
}

static void maybe_free(struct stream *s)
{
    if (s->pending > 0 || !s->close_fired)
        return;
    pending_remove(s->g, s);
    if (s->sess)
        hub_stream_closed(s->g->hub, s->sess, s->reason[0] ? s->reason : "stream closed", now_ms());
    drop_queue(s);
    grpc_slice_unref(s->status_details);
    grpc_call_unref(s->call);
    s->g->live_streams--;
    free(s);
}

static int post_recv(struct stream *s)
{
    grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
    op.data.recv_message.recv_message = &s->recv_buf;
    return batch(s, &op, 1, &s->t_recv);
}

/* Copies an auth property's value (not NUL-terminated) into dst; 0 when it does not fit. */
static int prop_copy(const grpc_auth_property *p, char *dst, size_t cap)
{
    if (p->value_length >= cap || memchr(p->value, '\0', p->value_length))
        return 0;
    memcpy(dst, p->value, p->value_length);
    dst[p->value_length] = '\0';
    return 1;
}

/* The stream's gateway identity from its verified client certificate. gRPC 1.51 exposes one
 * "peer_uri" property per URI SAN (and every SAN of any type, untyped, as
 * "x509_subject_alternative_name"), and the subject CN as "x509_common_name". */
static void authenticate(struct grpcsrv *g, struct stream *s)
{
    char uris[CERT_URIS_MAX][CERT_VALUE_MAX], cn[CERT_VALUE_MAX] = "", id[INV_ID_MAX] = "";
    char why[128] = "";
    const char *up[CERT_URIS_MAX];
    size_t n = 0;
    grpc_auth_context *ctx = grpc_call_auth_context(s->call);
    if (ctx) {
        grpc_auth_property_iterator it =
            grpc_auth_context_find_properties_by_name(ctx, GRPC_PEER_URI_PROPERTY_NAME);
        const grpc_auth_property *p;
        while ((p = grpc_auth_property_iterator_next(&it)) && n < CERT_URIS_MAX)
            if (prop_copy(p, uris[n], sizeof(uris[n])))
                up[n] = uris[n], n++;
        it = grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_CN_PROPERTY_NAME);
        if ((p = grpc_auth_property_iterator_next(&it)))
            prop_copy(p, cn, sizeof(cn));
        grpc_auth_context_release(ctx);
    }
    if (!ctx)
        snprintf(why, sizeof(why), "no client certificate on the stream");
    else
        hub_identity_from_cert(up, n, cn, id, sizeof(id), why, sizeof(why));
    hub_stream_authenticate(g->hub, s->sess, id, why);
    log_event(LOG_DEBUG, "event=tls_peer peer=%s cert_identity=%s cert_cn=%s san_uris=%zu%s%s%s",
              s->sess->peer, id[0] ? id : "-", cn[0] ? cn : "-", n, why[0] ? " problem=\"" : "",
              why, why[0] ? "\"" : "");
}

/* The listener's credentials from the configuration: insecure, TLS, or mutual TLS. NULL with
 * err when a file cannot be read (gRPC itself only checks the PEM contents at the first
 * handshake, so a wrong but readable file shows up as failed handshakes in the log). */
static grpc_server_credentials *server_creds(const struct headend_config *cfg, char *err,
                                             size_t errlen)
{
    if (!cfg->tls_cert[0])
        return grpc_insecure_server_credentials_create();
    char *cert = pem_read("--tls-cert", cfg->tls_cert, err, errlen);
    char *key = cert ? pem_read("--tls-key", cfg->tls_key, err, errlen) : NULL;
    char *ca = key && cfg->tls_client_ca[0]
                   ? pem_read("--tls-client-ca", cfg->tls_client_ca, err, errlen)
                   : NULL;
    grpc_server_credentials *c = NULL;
    if (key && (ca || !cfg->tls_client_ca[0])) {
        grpc_ssl_pem_key_cert_pair pair = {key, cert};
        /* the strings are copied by gRPC core */
        c = grpc_ssl_server_credentials_create_ex(
            ca, &pair, 1,
            ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
        if (!c)
            snprintf(err, errlen, "cannot create TLS credentials from --tls-cert %s",
                     cfg->tls_cert);
    }
    free(cert);
    pem_free(key);
    free(ca);
    return c;
}

static void stream_start(struct grpcsrv *g, grpc_call *call)
{
    struct stream *s = calloc(1, sizeof(*s));
    if (!s) {
        grpc_call_cancel(call, NULL);
        grpc_call_unref(call);
        return;
    }
    s->g = g;
    s->call = call;
    s->status_details = grpc_empty_slice();
    struct tag *tags[] = {&s->t_meta, &s->t_recv, &s->t_send, &s->t_close, &s->t_status};
    enum tag_kind kinds[] = {T_META, T_RECV, T_SEND, T_CLOSE, T_STATUS};
    for (int i = 0; i < 5; i++)
        *tags[i] = (struct tag){kinds[i], s};
    g->live_streams++;
    char *peer = grpc_call_get_peer(call);
    int rc = hub_stream_open(g->hub, peer, &link_ops, s, now_ms(), &s->sess);
    gpr_free(peer);
    if (rc == 0 && g->mutual)
        authenticate(g, s);

    grpc_op meta = {.op = GRPC_OP_SEND_INITIAL_METADATA};
    grpc_op close = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
    close.data.recv_close_on_server.cancelled = &s->cancelled;
    int e = batch(s, &meta, 1, &s->t_meta);
    if (batch(s, &close, 1, &s->t_close) < 0) {
        /* Without the close op nothing would ever free this stream. */
        s->close_fired = 1;
        grpc_call_cancel(call, NULL);
        e = -EIO;
    }
    if (rc < 0 || hub_streams(g->hub) > (size_t)g->cfg.max_streams) {
        log_event(LOG_WARN, "event=stream_refused peer=%s reason=\"too many streams (%d)\"",
                  s->sess ? s->sess->peer : "-", g->cfg.max_streams);
        finish(s, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many gateway streams");
    } else if (e == 0) {
        pending_add(g, s, s->sess->peer);
        post_recv(s);
    }
    maybe_free(s);
}

static void on_recv(struct stream *s, int ok)
{
    grpc_byte_buffer *bb = s->recv_buf;
    s->recv_buf = NULL;
    if (!ok || !bb) {
        if (ok && !bb)
            finish(s, GRPC_STATUS_OK, "gateway closed its side of the stream");
        if (bb)
            grpc_byte_buffer_destroy(bb);
        return;
    }
    grpc_byte_buffer_reader r;
    int code = GRPC_STATUS_OK;
    char reason[200] = "";
    int rc;
    if (!grpc_byte_buffer_reader_init(&r, bb)) {
        rc = -EBADMSG;
        code = GRPC_STATUS_INVALID_ARGUMENT;
        snprintf(reason, sizeof(reason), "undecodable message buffer");
    } else {
        grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
        rc = s->sess && !s->status_started
                 ? hub_on_message(s->g->hub, s->sess, GRPC_SLICE_START_PTR(sl),
                                  GRPC_SLICE_LENGTH(sl), now_ms(), &code, reason, sizeof(reason))
                 : 0;
        grpc_slice_unref(sl);
    }
    grpc_byte_buffer_destroy(bb);
    if (s->peer && s->sess && s->sess->registered)
        pending_remove(s->g, s);
    if (rc < 0)
        finish(s, code, reason);
    else if (!s->status_started && !s->close_fired)
        post_recv(s);
}

static void on_stream_event(struct stream *s, enum tag_kind kind, int ok)
{
    s->pending--;
    switch (kind) {
    case T_RECV:
        on_recv(s, ok);
        break;
    case T_SEND:
        grpc_byte_buffer_destroy(s->inflight);
        s->inflight = NULL;
        if (ok)
            kick_send(s);
        else
            drop_queue(s);
        break;
    case T_CLOSE:
        s->close_fired = 1;
        pending_remove(s->g, s);
        if (!s->reason[0])
            snprintf(s->reason, sizeof(s->reason), "%s",
                     s->cancelled ? "stream cancelled (gateway gone, reset or keepalive timeout)"
                                  : "stream closed");
        if (s->sess) {
            hub_stream_closed(s->g->hub, s->sess, s->reason, now_ms());
            s->sess = NULL;
        }
        drop_queue(s);
        break;
    default:
        break;
    }
    maybe_free(s);
}

static void arm_slot(struct grpcsrv *g, struct slot *sl)
{
    grpc_metadata_array_init(&sl->md);
    sl->call = NULL;
    grpc_call_error e = grpc_server_request_registered_call(
        g->server, g->method, &sl->call, &sl->deadline, &sl->md, NULL, g->cq, g->cq, &sl->t);
    if (e != GRPC_CALL_OK)
        log_event(LOG_ERROR, "event=grpc_error op=request_registered_call code=%d", (int)e);
}

static void arm_unknown(struct grpcsrv *g)
{
    struct unknown *u = calloc(1, sizeof(*u));
    if (!u)
        return;
    u->t = (struct tag){T_UNKNOWN, u};
    grpc_call_details_init(&u->details);
    grpc_metadata_array_init(&u->md);
    if (grpc_server_request_call(g->server, &u->call, &u->details, &u->md, g->cq, g->cq, &u->t) !=
        GRPC_CALL_OK) {
        grpc_call_details_destroy(&u->details);
        grpc_metadata_array_destroy(&u->md);
        free(u);
        return;
    }
    g->unknown = u;
}

static void free_unknown(struct unknown *u)
{
    if (u->call)
        grpc_call_unref(u->call);
    grpc_call_details_destroy(&u->details);
    grpc_metadata_array_destroy(&u->md);
    free(u);
}

static void answer_unknown(struct grpcsrv *g, struct unknown *u)
{
    char *method = grpc_slice_to_c_string(u->details.method);
    char *peer = grpc_call_get_peer(u->call);
    log_event(LOG_WARN, "event=unknown_method method=%s peer=%s reason=\"UNIMPLEMENTED\"", method,
              peer);
    gpr_free(method);
    gpr_free(peer);
    static grpc_slice details;
    details = grpc_slice_from_static_string("unknown method: this headend serves " METHOD_CONNECT);
    grpc_op ops[3] = {{.op = GRPC_OP_SEND_INITIAL_METADATA},
                      {.op = GRPC_OP_RECV_CLOSE_ON_SERVER},
                      {.op = GRPC_OP_SEND_STATUS_FROM_SERVER}};
    ops[1].data.recv_close_on_server.cancelled = &u->cancelled;
    ops[2].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
    ops[2].data.send_status_from_server.status_details = &details;
    u->t.kind = T_UNKNOWN_DONE;
    if (grpc_call_start_batch(u->call, ops, 3, &u->t, NULL) != GRPC_CALL_OK) {
        free_unknown(u);
        return;
    }
    g->unknown_live++;
}

static void handle(struct grpcsrv *g, struct tag *t, int ok)
{
    switch (t->kind) {
    case T_SLOT: {
        struct slot *sl = t->p;
        grpc_call *call = sl->call;
        grpc_metadata_array_destroy(&sl->md);
        if (ok && call)
            stream_start(g, call);
        if (!g->shutdown_started)
            arm_slot(g, sl);
        break;
    }
    case T_UNKNOWN: {
        struct unknown *u = t->p;
        g->unknown = NULL;
        if (ok && u->call)
            answer_unknown(g, u);
        else
            free_unknown(u);
        if (!g->shutdown_started)
            arm_unknown(g);
        break;
    }
    case T_UNKNOWN_DONE:
        g->unknown_live--;
        free_unknown(t->p);
        break;
    case T_SHUTDOWN:
        g->shutdown_done = 1;
        break;
    default:
        on_stream_event(t->p, t->kind, ok);
        break;
    }
}

static void *loop(void *arg)
{
    struct grpcsrv *g = arg;
    gpr_timespec cancel_at = gpr_inf_future(GPR_CLOCK_MONOTONIC);
    int cancelled_all = 0;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(g->cq, in_ms(LOOP_DEADLINE_MS), NULL);
        hub_lock(g->hub);
        /* Drain what is ready under one lock hold (at most DRAIN_MAX, so REST keeps getting
         * the lock), then run the timers once. Every event taken off the queue is handled
         * exactly once, here and nowhere else: handling one twice decrements a stream's
         * pending count twice and frees it with a batch still in flight. */
        for (int n = 0; ev.type == GRPC_OP_COMPLETE;) {
            handle(g, ev.tag, ev.success);
            if (++n >= DRAIN_MAX)
                break;
            ev = grpc_completion_queue_next(g->cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
        }
        int64_t now = now_ms();
        pending_expire(g, now);
        hub_tick(g->hub, now);
        if (atomic_load(&g->stop) && !g->shutdown_started) {
            g->shutdown_started = 1;
            log_event(LOG_INFO, "event=shutdown streams=%zu grace_ms=%d reason=\"signal\"",
                      g->live_streams, g->cfg.shutdown_grace_ms);
            grpc_server_shutdown_and_notify(g->server, g->cq, &g->t_shutdown);
            cancel_at = in_ms(g->cfg.shutdown_grace_ms);
        }
        if (g->shutdown_started && !cancelled_all &&
            gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), cancel_at) >= 0) {
            cancelled_all = 1;
            grpc_server_cancel_all_calls(g->server);
        }
        int done = g->shutdown_done && g->live_streams == 0 && g->unknown_live == 0;
        hub_unlock(g->hub);
        if (done)
            break;
    }
    return NULL;
}

static void set_int(grpc_arg *a, const char *key, int v)
{
    a->type = GRPC_ARG_INTEGER;
    a->key = (char *)key;
    a->value.integer = v;
}

int grpcsrv_start(struct hub *h, const struct headend_config *cfg, struct grpcsrv **out, int *port,
                  char *err, size_t errlen)
{
    *out = NULL;
    struct grpcsrv *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    g->hub = h;
    g->cfg = *cfg;
    g->t_shutdown = (struct tag){T_SHUTDOWN, g};
    grpc_arg args[12];
    size_t na = 0;
    /* docs/protocol.md: the server must accept pings at the gateways' keepalive rate, also
     * on idle streams, or it sends GOAWAY "too_many_pings". */
    set_int(&args[na++], GRPC_ARG_KEEPALIVE_TIME_MS, cfg->keepalive_time_ms);
    set_int(&args[na++], GRPC_ARG_KEEPALIVE_TIMEOUT_MS, cfg->keepalive_timeout_ms);
    set_int(&args[na++], GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    set_int(&args[na++], GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    set_int(&args[na++], GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
            cfg->min_ping_interval_ms);
    set_int(&args[na++], GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, MAX_MESSAGE_BYTES);
    set_int(&args[na++], GRPC_ARG_MAX_CONCURRENT_STREAMS, cfg->max_streams_per_connection);
    set_int(&args[na++], GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, cfg->handshake_timeout_ms);
    if (cfg->idle_timeout_ms > 0)
        set_int(&args[na++], GRPC_ARG_MAX_CONNECTION_IDLE_MS, cfg->idle_timeout_ms);
    grpc_channel_args ca = {na, args};
    g->server = grpc_server_create(&ca, NULL);
    g->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(g->server, g->cq, NULL);
    g->method =
        grpc_server_register_method(g->server, METHOD_CONNECT, NULL, GRPC_SRM_PAYLOAD_NONE, 0);
    g->mutual = cfg->tls_cert[0] && cfg->tls_client_ca[0];
    grpc_server_credentials *creds = server_creds(cfg, err, errlen);
    int have_creds = creds != NULL;
    int p = creds ? grpc_server_add_http2_port(g->server, cfg->grpc_listen, creds) : 0;
    if (creds)
        grpc_server_credentials_release(creds);
    if (p == 0 || !g->method) {
        if (have_creds)
            snprintf(err, errlen, "cannot listen on %s (gRPC)", cfg->grpc_listen);
        grpc_server_destroy(g->server);
        grpc_completion_queue_shutdown(g->cq);
        while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(g->cq);
        free(g);
        return have_creds ? -EADDRINUSE : -EINVAL;
    }
    *port = p;
    grpc_server_start(g->server);
    for (int i = 0; i < N_SLOTS; i++) {
        g->slots[i].t = (struct tag){T_SLOT, &g->slots[i]};
        arm_slot(g, &g->slots[i]);
    }
    arm_unknown(g);
    if (pthread_create(&g->thread, NULL, loop, g) != 0) {
        snprintf(err, errlen, "cannot start the gRPC thread");
        atomic_store(&g->stop, 1);
        loop(g);
        grpc_server_destroy(g->server);
        grpc_completion_queue_destroy(g->cq);
        free(g);
        return -EAGAIN;
    }
    *out = g;
    return 0;
}

void grpcsrv_stop(struct grpcsrv *g)
{
    if (!g)
        return;
    atomic_store(&g->stop, 1);
    pthread_join(g->thread, NULL);
    grpc_server_destroy(g->server);
    grpc_completion_queue_shutdown(g->cq);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(g->cq, in_ms(2000), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN || ev.type == GRPC_QUEUE_TIMEOUT)
            break;
        if (ev.type == GRPC_OP_COMPLETE) {
            struct tag *t = ev.tag;
            if (t->kind == T_SLOT)
                grpc_metadata_array_destroy(&((struct slot *)t->p)->md);
            else if (t->kind == T_UNKNOWN)
                free_unknown(t->p);
        }
    }
    grpc_completion_queue_destroy(g->cq);
    free(g);
}
