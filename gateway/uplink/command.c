/* command: see command.h. One mutex guards the inbox, the acks waiting to be sent and the ids
 * seen; no function holds it while calling out (the log, the dispatcher, the bus), so the
 * uplink thread may call in while holding its own lock. */
#include "gateway/uplink/command.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gateway/uplink/dispatch.h"
#include "gateway/uplink/idset.h"
#include "proto/der/v1/agent.pb-c.h"

#define INBOX_MAX 32 /* commands waiting for the control thread */
#define ACKS_MAX  64 /* acks waiting for the stream; the oldest goes when full */

struct ackmsg {
    uint8_t *buf;
    size_t len;
};

struct command {
    struct controller *ctl;
    struct dispatch *disp; /* set_output, charge, discharge */
    pthread_mutex_t mu;
    struct idset ids;
    struct agentmsg_command inbox[INBOX_MAX];
    size_t in_head, in_n;
    struct ackmsg acks[ACKS_MAX];
    size_t ack_head, ack_n;
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
};

/* one line to the caller's log callback (common/log.h) */
#define logf_(x, ...) log_to((x)->log, (x)->log_ctx, __VA_ARGS__)

/* Queues a CommandAck and remembers the state for repeats of the id. */
static void ack(struct command *c, const char *id, int state, const char *detail)
{
    uint8_t *buf;
    size_t len;
    if (agentmsg_command_ack(id, state, detail, &buf, &len))
        return;
    pthread_mutex_lock(&c->mu);
    idset_set(&c->ids, id, state);
    if (c->ack_n == ACKS_MAX) {
        free(c->acks[c->ack_head].buf);
        c->ack_head = (c->ack_head + 1) % ACKS_MAX;
        c->ack_n--;
    }
    c->acks[(c->ack_head + c->ack_n) % ACKS_MAX] = (struct ackmsg){buf, len};
    c->ack_n++;
    pthread_mutex_unlock(&c->mu);
}

/* The dispatcher's acks of setpoint commands are CommandAcks (allocations: the asset's own). */
static void dispatch_ack(void *ctx, const struct agentmsg_ack *a)
{
    ack(ctx, a->setpoint_id, a->state, a->detail);
}

struct command *command_new(struct controller *ctl, const char *site_id,
                            void (*log)(void *ctx, const char *line), void *log_ctx)
{
    struct command *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    struct dispatch_opts o = {
        .site_id = site_id, .ack = dispatch_ack, .ack_ctx = c, .log = log, .log_ctx = log_ctx};
    c->ctl = ctl;
    c->disp = dispatch_new(ctl, &o);
    if (!c->disp) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    idset_init(&c->ids);
    c->log = log;
    c->log_ctx = log_ctx;
    return c;
}

void command_free(struct command *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->ack_n; i++)
        free(c->acks[(c->ack_head + i) % ACKS_MAX].buf);
    dispatch_free(c->disp);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void command_on_headend(struct command *c, const struct agentmsg_command *m)
{
    if (!c)
        return;
    int state = AGENTMSG_ACK_RECEIVED;
    pthread_mutex_lock(&c->mu);
    int fresh = idset_add(&c->ids, m->command_id, AGENTMSG_ACK_RECEIVED, &state);
    int full = fresh == 1 && c->in_n == INBOX_MAX;
    if (fresh == 1 && !full) {
        c->inbox[(c->in_head + c->in_n) % INBOX_MAX] = *m;
        c->in_n++;
    }
    pthread_mutex_unlock(&c->mu);
    if (fresh < 0) {
        logf_(c, "event=command_ignored reason=\"empty command_id\"");
        return;
    }
    if (full)
        state = AGENTMSG_ACK_REJECTED;
    logf_(c, "event=%s command_id=%s asset=%s command=%s value=%.3f ack=%s",
          fresh ? "command" : "command_duplicate", m->command_id, m->asset_id, m->command, m->value,
          agentmsg_ack_name(state));
    ack(c, m->command_id, state, full ? "gateway busy: command queue full" : "");
}

int command_register(struct command *c, const uint8_t *reg, size_t len, uint8_t **out,
                     size_t *outlen)
{
    Der__V1__Register *m = der__v1__register__unpack(NULL, len, reg);
    if (!m)
        return -ENOMEM;
    m->commands = c != NULL;
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    *out = malloc(n ? n : 1);
    int rc = *out ? 0 : -ENOMEM;
    if (*out)
        *outlen = protobuf_c_message_pack(&m->base, *out);
    der__v1__register__free_unpacked(m, NULL);
    return rc;
}

uint8_t *command_next(struct command *c, uint64_t seq, int64_t sent_ms, size_t *len)
{
    if (!c)
        return NULL;
    struct ackmsg a = {0};
    pthread_mutex_lock(&c->mu);
    if (c->ack_n) {
        a = c->acks[c->ack_head];
        c->ack_head = (c->ack_head + 1) % ACKS_MAX;
        c->ack_n--;
    }
    pthread_mutex_unlock(&c->mu);
    if (!a.buf)
        return NULL;
    uint8_t *framed = NULL;
    if (agentmsg_frame(seq, sent_ms, AGENTMSG_COMMAND_ACK, a.buf, a.len, &framed, len))
        framed = NULL;
    free(a.buf);
    return framed;
}

static void finish(struct command *c, const struct agentmsg_command *m, int state,
                   const char *detail)
{
    logf_(c, "event=command_%s command_id=%s asset=%s command=%s %s=\"%s\"",
          state == AGENTMSG_ACK_APPLIED    ? "applied"
          : state == AGENTMSG_ACK_REJECTED ? "rejected"
          : state == AGENTMSG_ACK_EXPIRED  ? "expired"
                                           : "failed",
          m->command_id, m->asset_id, m->command,
          state == AGENTMSG_ACK_APPLIED ? "wrote" : "reason", detail);
    ack(c, m->command_id, state, detail);
}

static struct device *find_device(struct command *c, const char *asset_id)
{
    for (size_t i = 0; i < controller_n_devices(c->ctl); i++) {
        struct device *d = controller_device(c->ctl, i);
        if (!strcmp(device_cfg(d)->asset_id, asset_id))
            return d;
    }
    return NULL;
}

/* set_output (site signs), charge (W in), discharge (W out): a setpoint for the asset. */
static void apply_setpoint(struct command *c, const struct agentmsg_command *m, int cmd,
                           int64_t now_ms, int64_t wall_ms)
{
    if (!isfinite(m->value) || (cmd != DEVICE_CMD_SET_OUTPUT && m->value < 0)) {
        finish(c, m, AGENTMSG_ACK_REJECTED,
               cmd == DEVICE_CMD_SET_OUTPUT ? "value: not a finite power in W"
                                            : "value: a power in W, >= 0");
        return;
    }
    struct agentmsg_setpoint sp = {.target = 'a',
                                   .power_w = cmd == DEVICE_CMD_CHARGE ? -m->value : m->value,
                                   .expires_ms = m->expires_ms};
    snprintf(sp.setpoint_id, sizeof sp.setpoint_id, "%s", m->command_id);
    snprintf(sp.target_id, sizeof sp.target_id, "%s", m->asset_id);
    logf_(c, "event=command_setpoint command_id=%s asset=%s command=%s power_w=%.3f", m->command_id,
          m->asset_id, m->command, sp.power_w);
    dispatch_setpoint(c->disp, &sp, now_ms, wall_ms); /* acks through dispatch_ack */
}

static void apply_one(struct command *c, const struct agentmsg_command *m, int64_t now_ms,
                      int64_t wall_ms)
{
    char what[200];
    int cmd = device_cmd_parse(m->command);
    struct device *d = find_device(c, m->asset_id);
    if (cmd < 0) {
        snprintf(what, sizeof what, "unknown command \"%s\"", m->command);
        finish(c, m, AGENTMSG_ACK_REJECTED, what);
        return;
    }
    if (!d) {
        snprintf(what, sizeof what, "unknown asset %s", m->asset_id);
        finish(c, m, AGENTMSG_ACK_REJECTED, what);
        return;
    }
    const char *no = device_cmd_refusal(device_cfg(d), (enum device_cmd)cmd);
    if (no) {
        finish(c, m, AGENTMSG_ACK_REJECTED, no);
        return;
    }
    if (m->expires_ms > 0 && m->expires_ms <= wall_ms) {
        snprintf(what, sizeof what, "expired %lld ms before it was applied",
                 (long long)(wall_ms - m->expires_ms));
        finish(c, m, AGENTMSG_ACK_EXPIRED, what);
        return;
    }
    if (cmd == DEVICE_CMD_SET_OUTPUT || cmd == DEVICE_CMD_CHARGE || cmd == DEVICE_CMD_DISCHARGE) {
        apply_setpoint(c, m, cmd, now_ms, wall_ms);
        return;
    }
    if (cmd == DEVICE_CMD_SET_TEMPERATURE && !isfinite(m->value)) {
        finish(c, m, AGENTMSG_ACK_REJECTED, "value: not a finite temperature in degC");
        return;
    }
    int rc = device_command(d, (enum device_cmd)cmd, m->value, what, sizeof what);
    if (rc == 0) {
        finish(c, m, AGENTMSG_ACK_APPLIED, what);
    } else if (rc == -ENOTSUP || rc == -ERANGE) {
        finish(c, m, AGENTMSG_ACK_REJECTED, what);
    } else if (rc == -ENOTCONN) {
        finish(c, m, AGENTMSG_ACK_FAILED, what);
    } else {
        char why[300];
        snprintf(why, sizeof why, "write failed: %s (%s)", bus_strerror(rc), what);
        finish(c, m, AGENTMSG_ACK_FAILED, why);
    }
}

void command_apply(struct command *c, int64_t now_ms, int64_t wall_ms)
{
    if (!c)
        return;
    for (;;) {
        struct agentmsg_command m;
        pthread_mutex_lock(&c->mu);
        int got = c->in_n > 0;
        if (got) {
            m = c->inbox[c->in_head];
            c->in_head = (c->in_head + 1) % INBOX_MAX;
            c->in_n--;
        }
        pthread_mutex_unlock(&c->mu);
        if (!got)
            return;
        apply_one(c, &m, now_ms, wall_ms);
    }
}

void command_after_cycle(struct command *c, const struct decision *dm)
{
    if (c)
        dispatch_after_cycle(c->disp, dm);
}

int command_state(struct command *c, const char *command_id)
{
    if (!c)
        return -ENOENT;
    pthread_mutex_lock(&c->mu);
    for (; c->ack_n; c->ack_n--) {
        free(c->acks[c->ack_head].buf);
        c->ack_head = (c->ack_head + 1) % ACKS_MAX;
    }
    int state = idset_get(&c->ids, command_id);
    pthread_mutex_unlock(&c->mu);
    return state;
}
