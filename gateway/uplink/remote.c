/* remote: see remote.h. One mutex guards the mailbox, the outgoing queue and the version; no
 * function holds it while calling out (the log is called after unlocking), so the uplink
 * thread may call in while holding its own lock. */
#include "gateway/uplink/remote.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gateway/control/estop.h"
#include "gateway/uplink/agentmsg.h"
#include "proto/der/v1/agent.pb-c.h"

#define OUT_MAX       16 /* Pongs and reports waiting; the oldest goes when full */
#define BODY_PONG     14 /* AgentMessage body field numbers (agent.proto) */
#define BODY_REPORT   15
#define BODY_ESTOP    17
#define PUSH_JSON_MAX 65536 /* a pushed document, at most (the headend's body limit) */

struct outmsg {
    int body;
    uint8_t *buf;
    size_t len;
};

struct remote {
    pthread_mutex_t mu;
    uint64_t version; /* running */
    int has_push;
    uint64_t push_version;
    char *push_json;
    /* the emergency stop: the last one received, not yet taken (the latest state wins), and
     * the one applied, for Register */
    int has_estop, estop_in_active, estop_active;
    char estop_id[ESTOP_ID_MAX], estop_reason[ESTOP_REASON_MAX];
    struct outmsg out[OUT_MAX];
    size_t out_head, out_n;
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
};

/* one line to the caller's log callback (common/log.h) */
#define logf_(x, ...) log_to((x)->log, (x)->log_ctx, __VA_ARGS__)

struct remote *remote_new(void (*log)(void *ctx, const char *line), void *log_ctx)
{
    struct remote *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    r->log = log;
    r->log_ctx = log_ctx;
    return r;
}

void remote_free(struct remote *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->out_n; i++)
        free(r->out[(r->out_head + i) % OUT_MAX].buf);
    free(r->push_json);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Takes buf (freed on failure too). */
static void queue_out(struct remote *r, int body, uint8_t *buf, size_t len)
{
    pthread_mutex_lock(&r->mu);
    if (r->out_n == OUT_MAX) {
        free(r->out[r->out_head].buf);
        r->out_head = (r->out_head + 1) % OUT_MAX;
        r->out_n--;
    }
    r->out[(r->out_head + r->out_n) % OUT_MAX] = (struct outmsg){body, buf, len};
    r->out_n++;
    pthread_mutex_unlock(&r->mu);
}

static int pack(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    *out = malloc(n ? n : 1);
    if (!*out)
        return -ENOMEM;
    *len = protobuf_c_message_pack(m, *out);
    return 0;
}

int remote_on_headend(struct remote *r, const uint8_t *buf, size_t len)
{
    if (!r)
        return 0;
    Der__V1__HeadendMessage *m = der__v1__headend_message__unpack(NULL, len, buf);
    if (!m)
        return 0;
    int taken = 1;
    if (m->body_case == DER__V1__HEADEND_MESSAGE__BODY_PING && m->ping) {
        /* answered at once from the uplink thread: the round trip measures the link, not
         * the control loop */
        Der__V1__Pong p = DER__V1__PONG__INIT;
        p.nonce = m->ping->nonce;
        uint8_t *b;
        size_t n;
        if (pack(&p.base, &b, &n) == 0)
            queue_out(r, BODY_PONG, b, n);
    } else if (m->body_case == DER__V1__HEADEND_MESSAGE__BODY_CONFIG_PUSH && m->config_push) {
        const Der__V1__ConfigPush *c = m->config_push;
        size_t n = strlen(c->json);
        char *copy = n < PUSH_JSON_MAX ? strdup(c->json) : NULL;
        if (!copy) {
            /* refused here: the control thread never sees it */
            remote_report(r, c->version, 0,
                          n >= PUSH_JSON_MAX ? "configuration too large" : "out of memory");
        } else {
            pthread_mutex_lock(&r->mu);
            int replaced = r->has_push;
            free(r->push_json);
            r->push_json = copy;
            r->push_version = c->version;
            r->has_push = 1;
            pthread_mutex_unlock(&r->mu);
            logf_(r, "event=config_push version=%llu bytes=%zu%s", (unsigned long long)c->version,
                  n, replaced ? " note=\"replaces a push not yet applied\"" : "");
        }
    } else if (m->body_case == DER__V1__HEADEND_MESSAGE__BODY_EMERGENCY_STOP && m->emergency_stop) {
        const Der__V1__EmergencyStop *e = m->emergency_stop;
        pthread_mutex_lock(&r->mu);
        r->has_estop = 1;
        r->estop_in_active = e->active;
        snprintf(r->estop_id, sizeof r->estop_id, "%s", e->id);
        snprintf(r->estop_reason, sizeof r->estop_reason, "%s", e->reason);
        pthread_mutex_unlock(&r->mu);
    } else {
        taken = 0;
    }
    der__v1__headend_message__free_unpacked(m, NULL);
    return taken;
}

int remote_register(struct remote *r, const uint8_t *reg, size_t len, uint8_t **out, size_t *outlen)
{
    Der__V1__Register *m = der__v1__register__unpack(NULL, len, reg);
    if (!m)
        return -ENOMEM;
    if (r) {
        pthread_mutex_lock(&r->mu);
        m->config_version = r->version;
        m->estop_active = r->estop_active;
        pthread_mutex_unlock(&r->mu);
        m->config_push = 1;
        m->pong = 1;
        m->estop = 1;
    }
    int rc = pack(&m->base, out, outlen);
    der__v1__register__free_unpacked(m, NULL);
    return rc;
}

uint8_t *remote_next(struct remote *r, uint64_t seq, int64_t sent_ms, size_t *len)
{
    if (!r)
        return NULL;
    pthread_mutex_lock(&r->mu);
    struct outmsg o = {0};
    if (r->out_n) {
        o = r->out[r->out_head];
        r->out_head = (r->out_head + 1) % OUT_MAX;
        r->out_n--;
    }
    pthread_mutex_unlock(&r->mu);
    if (!o.buf)
        return NULL;
    uint8_t *framed = NULL;
    if (agentmsg_frame(seq, sent_ms, o.body, o.buf, o.len, &framed, len))
        framed = NULL;
    free(o.buf);
    return framed;
}

void remote_set_version(struct remote *r, uint64_t version)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->version = version;
    pthread_mutex_unlock(&r->mu);
}

int remote_take_push(struct remote *r, uint64_t *version, char **json)
{
    if (!r)
        return 0;
    pthread_mutex_lock(&r->mu);
    int got = r->has_push;
    if (got) {
        *version = r->push_version;
        *json = r->push_json;
        r->push_json = NULL;
        r->has_push = 0;
    }
    pthread_mutex_unlock(&r->mu);
    return got;
}

void remote_report(struct remote *r, uint64_t version, int applied, const char *detail)
{
    if (!r)
        return;
    Der__V1__ConfigReport m = DER__V1__CONFIG_REPORT__INIT;
    m.version = version;
    m.status = applied ? DER__V1__CONFIG_REPORT__STATUS__APPLIED
                       : DER__V1__CONFIG_REPORT__STATUS__REJECTED;
    m.detail = (char *)(detail ? detail : "");
    if (applied)
        remote_set_version(r, version);
    uint8_t *b;
    size_t n;
    if (pack(&m.base, &b, &n) == 0)
        queue_out(r, BODY_REPORT, b, n);
}

int remote_take_estop(struct remote *r, int *active, char *id, size_t idlen, char *reason,
                      size_t reasonlen)
{
    if (!r)
        return 0;
    pthread_mutex_lock(&r->mu);
    int got = r->has_estop;
    if (got) {
        *active = r->estop_in_active;
        snprintf(id, idlen, "%s", r->estop_id);
        snprintf(reason, reasonlen, "%s", r->estop_reason);
        r->has_estop = 0;
    }
    pthread_mutex_unlock(&r->mu);
    return got;
}

void remote_set_estop(struct remote *r, int active)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->estop_active = !!active;
    pthread_mutex_unlock(&r->mu);
}

void remote_estop_report(struct remote *r, int active, const char *id, const char *reason)
{
    if (!r)
        return;
    remote_set_estop(r, active);
    Der__V1__EstopReport m = DER__V1__ESTOP_REPORT__INIT;
    m.active = !!active;
    m.id = (char *)(id ? id : "");
    m.reason = (char *)(reason ? reason : "");
    uint8_t *b;
    size_t n;
    if (pack(&m.base, &b, &n) == 0)
        queue_out(r, BODY_ESTOP, b, n);
}
