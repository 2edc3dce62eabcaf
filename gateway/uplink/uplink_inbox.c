/* uplink_inbox: what the headend sends on the stream (a HeadendMessage, proto/der/v1/agent.proto),
 * decoded and handed to one handler per body type; uplink_inbox_receive is the one place that
 * dispatches by type (a new message type is a new case and a new handler). Runs on the uplink
 * thread; the state shared with the control thread is touched under mu. */
#include <math.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/rtclock.h"
#include "gateway/uplink/command.h"
#include "gateway/uplink/remote.h"
#include "gateway/uplink/uplink_impl.h"

/* HeadendMessage body fields (the proto's field numbers, agentmsg_headend.body). */
enum headend_body {
    HEADEND_REGISTER_RESULT = 10,
    HEADEND_SETPOINT = 11,
    HEADEND_PING = 12,
    HEADEND_TELEMETRY_ACK = 13,
    HEADEND_EMERGENCY_STOP = 16,
    HEADEND_COMMAND = 15,
};

/* RegisterResult: the stream is registered; the headend says which assets it accepted and
 * whether it acknowledges telemetry (docs/protocol.md). */
static void on_register_result(struct uplink *u, const struct agentmsg_headend *m)
{
    u->acks_on = m->telemetry_acks && !u->cfg.legacy;
    pthread_mutex_lock(&u->mu);
    outbox_touch(u->out, rtclock_monotonic_ms());
    u->st.acks = u->acks_on;
    u->st.registered = 1;
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->mu);
    u->failures = 0;
    u->next_hb_ms = rtclock_monotonic_ms() + u->cfg.heartbeat_period_ms;
    uplink_log(u, "event=registered target=%s accepted=%zu rejected=%zu telemetry_acks=%s",
               u->cfg.target, m->n_accepted, m->n_rejected, u->acks_on ? "yes" : "no");
    for (size_t i = 0; i < m->n_rejected && i < AGENTMSG_MAX_REJECT; i++)
        uplink_log(u, "event=asset_rejected asset=%s reason=\"%s\"", m->rejected[i].asset_id,
                   m->rejected[i].reason);
}

/* Setpoint: queued for the control thread once per setpoint_id and acked RECEIVED at once; a
 * repeat is answered with what became of the first delivery. */
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
        uplink_log(u, "event=setpoint_ignored reason=\"empty setpoint_id\"");
        return;
    }
    uplink_log(u, "event=%s setpoint_id=%s target=%s%s%s power_w=%.3f expires_ms=%lld ack=%s",
               fresh ? "setpoint" : "setpoint_duplicate", sp->setpoint_id,
               sp->target == 'a'   ? "asset:"
               : sp->target == 's' ? "site:"
                                   : "primary",
               sp->target ? sp->target_id : "", "", sp->power_w, (long long)sp->expires_ms,
               agentmsg_ack_name(state));
    struct agentmsg_ack a = {sp->setpoint_id, state, detail, sp->power_w, NAN, NULL, 0};
    if (agentmsg_ack(&a, &buf, &len) == 0) {
        pthread_mutex_lock(&u->mu);
        outbox_push_ack(u->out, buf, len);
        pthread_mutex_unlock(&u->mu);
    }
}

/* TelemetryAck: the headend committed everything through ack_through (only when it said it
 * acknowledges: an older headend's stray field is ignored). */
static void on_telemetry_ack(struct uplink *u, const struct agentmsg_headend *m)
{
    if (!u->acks_on)
        return;
    pthread_mutex_lock(&u->mu);
    outbox_release_through(u->out, m->ack_through, rtclock_monotonic_ms());
    pthread_mutex_unlock(&u->mu);
}

void uplink_inbox_receive(struct uplink *u, const uint8_t *bytes, size_t len)
{
    if (remote_on_headend(u->opts.remote, bytes,
                          len)) /* remote hook: Ping, ConfigPush, EmergencyStop */
        return;
    /* Large, so not on the stack; and not static: a multi-site der-gateway runs one uplink
     * thread per site in one process, and one shared buffer handed a site's setpoint to
     * another site's uplink (seen with 1,000 sites: tests/bench/fleet_live.py). */
    struct agentmsg_headend *m = malloc(sizeof *m);
    if (!m) {
        uplink_log(u, "event=bad_message reason=\"out of memory\"");
        return;
    }
    int rc = agentmsg_parse_headend(bytes, len, m);
    if (rc) {
        uplink_log(u, "event=bad_message reason=\"%s\"",
                   rc == -EMSGSIZE ? "id too long"
                   : rc == -EINVAL ? "control character in an id"
                                   : "not a HeadendMessage");
        free(m);
        return;
    }
    switch (m->body) {
    case HEADEND_REGISTER_RESULT:
        on_register_result(u, m);
        break;
    case HEADEND_SETPOINT:
        on_setpoint(u, &m->setpoint);
        break;
    case HEADEND_TELEMETRY_ACK:
        on_telemetry_ack(u, m);
        break;
    case HEADEND_EMERGENCY_STOP: /* taken by the remote hook; without one nobody applies it */
        uplink_log(u, "event=estop_refused reason=\"this uplink has no emergency stop (no remote "
                      "hook): the headend was told so by Register (estop false)\"");
        break;
    case HEADEND_COMMAND: /* command hook (the headend sends them only when Register said so) */
        if (u->opts.commands)
            command_on_headend(u->opts.commands, &m->command);
        else
            uplink_log(u, "event=command_ignored command_id=%s reason=\"no command handler\"",
                       m->command.command_id);
        break;
    default: /* Ping (the HTTP/2 keepalive does its work), or a body this gateway predates */
        break;
    }
    free(m);
}
