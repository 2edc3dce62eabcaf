/* agentmsg: see agentmsg.h.
 *
 * protobuf-c does the encoding; the one trick is agentmsg_frame: a protobuf message is a
 * sequence of fields, so an AgentMessage is its packed {seq, sent_ms} followed by the body as
 * one length-delimited field (tag = field << 3 | 2). That lets the uplink keep telemetry as
 * packed bytes in its queue and spool and give it a stream seq only when it sends it. */
#include "gateway/uplink/agentmsg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/der/v1/agent.pb-c.h"

const char *agentmsg_ack_name(int state)
{
    static const char *const names[] = {"UNSPECIFIED", "RECEIVED", "APPLIED",
                                        "REJECTED",    "EXPIRED",  "FAILED"};
    return state >= 0 && state <= 5 ? names[state] : "?";
}

/* Packs any message into a malloc'd buffer. */
static int pack(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return -ENOMEM;
    *len = protobuf_c_message_pack(m, b);
    *out = b;
    return 0;
}

int agentmsg_register(const char *gateway_id, const char *site_id,
                      const struct agentmsg_asset *assets, size_t n, const char *primary_asset_id,
                      const char *software, int legacy, uint8_t **out, size_t *len)
{
    if (n > AGENTMSG_MAX_ASSETS)
        return -EINVAL;
    Der__V1__Register r = DER__V1__REGISTER__INIT;
    Der__V1__AssetInfo info[AGENTMSG_MAX_ASSETS], *ptr[AGENTMSG_MAX_ASSETS];
    r.gateway_id = (char *)gateway_id;
    r.site_id = (char *)site_id;
    r.primary_asset_id = (char *)(primary_asset_id ? primary_asset_id : "");
    r.software = (char *)(software ? software : "");
    if (!legacy) {
        /* keeps telemetry until the headend acknowledges its commit (docs/protocol.md); a
         * legacy agent predates TelemetryAck and does not ask for it */
        r.telemetry_acks = 1;
        r.decisions = 1; /* a legacy agent sends no Decision either */
        for (size_t i = 0; i < n; i++) {
            der__v1__asset_info__init(&info[i]);
            info[i].asset_id = (char *)assets[i].asset_id;
            info[i].type = (Der__V1__AssetType)assets[i].type;
            info[i].capacity_wh = assets[i].capacity_wh;
            info[i].min_power_w = assets[i].min_power_w;
            info[i].max_power_w = assets[i].max_power_w;
            ptr[i] = &info[i];
        }
        r.n_assets = n;
        r.assets = ptr;
    }
    return pack(&r.base, out, len);
}

static const char *status_of(const struct procimg_dev *d)
{
    if (!d->online)
        return "offline";
    return d->stale ? "stale" : "ok";
}

int agentmsg_telemetry(const struct procimg_dev *d, const char *asset_id, const char *status,
                       int64_t ts_ms, uint64_t telemetry_seq, uint8_t **out, size_t *len)
{
    static const char *const boiler_states[] = {"IDLE", "STARTING", "RUNNING", "STOPPING", "FAULT"};
    Der__V1__Telemetry t = DER__V1__TELEMETRY__INIT;
    Der__V1__StorageDetails st = DER__V1__STORAGE_DETAILS__INIT;
    Der__V1__PvDetails pv = DER__V1__PV_DETAILS__INIT;
    Der__V1__EvseDetails ev = DER__V1__EVSE_DETAILS__INIT;
    Der__V1__BoilerDetails bo = DER__V1__BOILER_DETAILS__INIT;
    Der__V1__MeterDetails me = DER__V1__METER_DETAILS__INIT;
    char evse_state[2] = "";
    t.asset_id = (char *)asset_id;
    t.ts_ms = ts_ms;
    t.telemetry_seq = telemetry_seq;
    t.power_w = d->power_w;
    t.setpoint_w = d->has_prev_setpoint ? d->prev_setpoint_w : NAN;
    t.online = d->online;
    t.status = (char *)(status ? status : status_of(d));
    t.state = (char *)procimg_opstate_name(d->op_state);
    t.modbus_requests = d->bus_requests;
    t.modbus_errors = d->bus_errors;
    t.modbus_timeouts = d->bus_timeouts;
    t.breaker = (char *)d->breaker;
    switch (d->type) {
    case PROCIMG_BATTERY:
        st.soc = d->soc;
        st.temperature_c = d->temperature_c;
        st.max_charge_w = d->max_charge_w;
        st.max_discharge_w = d->max_discharge_w;
        t.details_case = DER__V1__TELEMETRY__DETAILS_STORAGE;
        t.storage = &st;
        break;
    case PROCIMG_PV:
        pv.available_w = d->pv_available_w;
        pv.limit_w = d->pv_limit_w;
        t.details_case = DER__V1__TELEMETRY__DETAILS_PV;
        t.pv = &pv;
        break;
    case PROCIMG_EVSE:
        if (d->evse_state >= 0 && d->evse_state <= 5)
            evse_state[0] = (char)('A' + d->evse_state);
        ev.state = evse_state;
        ev.current_a = d->evse_current_a;
        ev.session_energy_wh = d->evse_session_wh;
        t.details_case = DER__V1__TELEMETRY__DETAILS_EVSE;
        t.evse = &ev;
        break;
    case PROCIMG_BOILER:
        bo.state =
            (char *)(d->boiler_state >= 0 && d->boiler_state <= 4 ? boiler_states[d->boiler_state]
                                                                  : "");
        bo.temperature_c = d->boiler_temperature_c;
        t.details_case = DER__V1__TELEMETRY__DETAILS_BOILER;
        t.boiler = &bo;
        break;
    case PROCIMG_METER:
    case PROCIMG_METER_LOAD:
        /* what the process image has of a meter: its frequency (NaN when not reported) */
        me.frequency_hz = d->freq_hz;
        me.voltage_v = NAN;
        me.import_wh = NAN;
        me.export_wh = NAN;
        t.details_case = DER__V1__TELEMETRY__DETAILS_METER;
        t.meter = &me;
        break;
    default:
        break;
    }
    return pack(&t.base, out, len);
}

int agentmsg_telemetry_valid(const uint8_t *buf, size_t len)
{
    Der__V1__Telemetry *t = der__v1__telemetry__unpack(NULL, len, buf);
    if (!t)
        return 0;
    der__v1__telemetry__free_unpacked(t, NULL);
    return 1;
}

int agentmsg_heartbeat(int64_t uptime_ms, uint8_t **out, size_t *len)
{
    Der__V1__Heartbeat h = DER__V1__HEARTBEAT__INIT;
    h.uptime_ms = uptime_ms;
    return pack(&h.base, out, len);
}

int agentmsg_ack(const struct agentmsg_ack *ack, uint8_t **out, size_t *len)
{
    size_t n = ack->n;
    if (n > AGENTMSG_MAX_ASSETS)
        return -EINVAL;
    Der__V1__SetpointAck a = DER__V1__SETPOINT_ACK__INIT;
    Der__V1__Allocation al[AGENTMSG_MAX_ASSETS], *ptr[AGENTMSG_MAX_ASSETS];
    a.setpoint_id = (char *)ack->setpoint_id;
    a.state = (Der__V1__SetpointAck__State)ack->state;
    a.detail = (char *)(ack->detail ? ack->detail : "");
    a.requested_w = isfinite(ack->requested_w) ? ack->requested_w : 0;
    a.allocated_w = isfinite(ack->allocated_w) ? ack->allocated_w : 0;
    for (size_t i = 0; i < n; i++) {
        der__v1__allocation__init(&al[i]);
        al[i].asset_id = (char *)ack->allocs[i].asset_id;
        al[i].power_w = ack->allocs[i].power_w;
        ptr[i] = &al[i];
    }
    a.n_allocations = n;
    a.allocations = ptr;
    return pack(&a.base, out, len);
}

/* ---- Decision ------------------------------------------------------------------------------ */

/* The asset id of a request or clamp index: "" for the site (DECISION_SITE) or out of range. */
static char *decision_asset_id(const struct decision *dm, int asset)
{
    return (char *)(asset >= 0 && (size_t)asset < dm->n_assets ? dm->asset[asset].asset_id : "");
}

static size_t decision_setpoints(const struct decision *dm, Der__V1__DecisionSetpoint *sp,
                                 Der__V1__DecisionSetpoint **ptr)
{
    size_t n = 0;
    for (size_t i = 0; i < dm->n_assets; i++) {
        const struct decision_asset *a = &dm->asset[i];
        if (!a->set)
            continue;
        der__v1__decision_setpoint__init(&sp[n]);
        sp[n].asset_id = (char *)a->asset_id;
        sp[n].source = (char *)decision_source_name(a->source);
        sp[n].requested_w = a->requested_w;
        sp[n].final_w = a->final_w;
        ptr[n] = &sp[n];
        n++;
    }
    return n;
}

int agentmsg_decision(const struct decision *dm, int64_t ts_ms, uint8_t **out, size_t *len)
{
    Der__V1__Decision d = DER__V1__DECISION__INIT;
    Der__V1__DecisionRequest rq[DECISION_MAX_REQUESTS], *rqp[DECISION_MAX_REQUESTS];
    Der__V1__DecisionSetpoint sp[PROCIMG_MAX_DEVICES], *spp[PROCIMG_MAX_DEVICES];
    Der__V1__DecisionClamp cl[DECISION_MAX_CLAMPS], *clp[DECISION_MAX_CLAMPS],
        *cfp[DECISION_MAX_CLAMPS];
    d.ts_ms = ts_ms;
    d.cycle_ms = dm->now_ms;
    d.strategy = (char *)dm->strategy;
    for (size_t i = 0; i < dm->n_requests && i < DECISION_MAX_REQUESTS; i++) {
        der__v1__decision_request__init(&rq[i]);
        rq[i].asset_id = decision_asset_id(dm, dm->req[i].asset);
        rq[i].source = (char *)decision_source_name(dm->req[i].source);
        rq[i].power_w = dm->req[i].power_w;
        rqp[i] = &rq[i];
        d.n_requests++;
        d.schedule_active |= dm->req[i].source == DSRC_SCHEDULED;
        d.estop_active |= dm->req[i].source == DSRC_SAFETY;
    }
    d.requests = rqp;
    d.n_setpoints = decision_setpoints(dm, sp, spp);
    d.setpoints = spp;
    /* clamps and conflicts share one record kind; a conflict's code lies at or above DC_FIRST */
    for (size_t i = 0; i < dm->n_clamps && i < DECISION_MAX_CLAMPS; i++) {
        const struct decision_clamp *c = &dm->clamp[i];
        der__v1__decision_clamp__init(&cl[i]);
        cl[i].asset_id = decision_asset_id(dm, c->asset);
        cl[i].reason = (char *)decision_reason_name(c->reason);
        cl[i].from_w = c->from_w;
        cl[i].to_w = c->to_w;
        if (c->reason >= DC_FIRST)
            cfp[d.n_conflicts++] = &cl[i];
        else
            clp[d.n_clamps++] = &cl[i];
        d.estop_active |= c->reason == DC_ESTOP;
        d.schedule_active |= c->reason == DC_SCHEDULE;
    }
    d.clamps = clp;
    d.conflicts = cfp;
    d.dropped = dm->requests_dropped + dm->clamps_dropped;
    d.grid_w = dm->grid_w;
    d.soc = dm->soc;
    d.raw_w = dm->raw_w;
    return pack(&d.base, out, len);
}

/* Two powers are the same decision when within 1% of the larger (at least the tolerance);
 * two NaNs (no request) are the same, one NaN is a change. */
static int power_moved(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) != isnan(b);
    double m = fmax(fabs(a), fabs(b)) * 0.01;
    return fabs(a - b) > fmax(m, AGENTMSG_DECISION_TOL_W);
}

int agentmsg_decision_changed(const struct decision *last, const struct decision *dm)
{
    if (strcmp(last->strategy, dm->strategy) || last->n_requests != dm->n_requests ||
        last->n_assets != dm->n_assets || last->n_clamps != dm->n_clamps)
        return 1;
    for (size_t i = 0; i < dm->n_requests && i < DECISION_MAX_REQUESTS; i++) {
        const struct decision_request *a = &last->req[i], *b = &dm->req[i];
        if (a->asset != b->asset || a->source != b->source || power_moved(a->power_w, b->power_w))
            return 1;
    }
    for (size_t i = 0; i < dm->n_assets; i++) {
        const struct decision_asset *a = &last->asset[i], *b = &dm->asset[i];
        if (a->set != b->set || strcmp(a->asset_id, b->asset_id))
            return 1;
        if (b->set && (a->source != b->source || power_moved(a->final_w, b->final_w)))
            return 1;
    }
    for (size_t i = 0; i < dm->n_clamps && i < DECISION_MAX_CLAMPS; i++) {
        const struct decision_clamp *a = &last->clamp[i], *b = &dm->clamp[i];
        if (a->asset != b->asset || a->reason != b->reason)
            return 1;
    }
    return 0;
}

int agentmsg_command_ack(const char *command_id, int state, const char *detail, uint8_t **out,
                         size_t *len)
{
    Der__V1__CommandAck a = DER__V1__COMMAND_ACK__INIT;
    a.command_id = (char *)command_id;
    a.state = (Der__V1__SetpointAck__State)state;
    a.detail = (char *)(detail ? detail : "");
    return pack(&a.base, out, len);
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

int agentmsg_frame(uint64_t seq, int64_t sent_ms, int body, const uint8_t *body_bytes,
                   size_t body_len, uint8_t **out, size_t *len)
{
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = seq;
    m.sent_ms = sent_ms;
    size_t head = protobuf_c_message_get_packed_size(&m.base);
    uint8_t *b = malloc(head + 20 + body_len);
    if (!b)
        return -ENOMEM;
    size_t n = protobuf_c_message_pack(&m.base, b);
    n += put_varint(b + n, (uint64_t)body << 3 | 2);
    n += put_varint(b + n, body_len);
    if (body_len)
        memcpy(b + n, body_bytes, body_len);
    *out = b;
    *len = n + body_len;
    return 0;
}

/* An id from the headend: bounded, and without control characters (a newline in a setpoint
 * id would forge log lines and be echoed in acks and decisions). */
static int copy_id(char *dst, size_t cap, const char *src)
{
    if (!src)
        src = "";
    size_t n = strlen(src);
    if (n >= cap)
        return -EMSGSIZE;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)src[i] < 0x20 || src[i] == 0x7f)
            return -EINVAL;
    memcpy(dst, src, n + 1);
    return 0;
}

/* Free text from the headend (a rejection reason) kept on one line: control characters
 * become '?' and quotes '\'' so it stays one logfmt value. */
static void copy_text(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
    for (char *p = dst; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
        else if (*p == '"')
            *p = '\'';
}

int agentmsg_parse_headend(const uint8_t *buf, size_t len, struct agentmsg_headend *out)
{
    memset(out, 0, sizeof *out);
    Der__V1__HeadendMessage *m = der__v1__headend_message__unpack(NULL, len, buf);
    if (!m)
        return -EBADMSG;
    int rc = 0;
    out->seq = m->seq;
    out->body = (int)m->body_case;
    switch (m->body_case) {
    case DER__V1__HEADEND_MESSAGE__BODY_SETPOINT: {
        const Der__V1__Setpoint *s = m->setpoint;
        struct agentmsg_setpoint *o = &out->setpoint;
        rc = copy_id(o->setpoint_id, sizeof o->setpoint_id, s->setpoint_id);
        if (s->target_case == DER__V1__SETPOINT__TARGET_ASSET_ID) {
            o->target = 'a';
            rc = rc ? rc : copy_id(o->target_id, sizeof o->target_id, s->asset_id);
        } else if (s->target_case == DER__V1__SETPOINT__TARGET_SITE_ID) {
            o->target = 's';
            rc = rc ? rc : copy_id(o->target_id, sizeof o->target_id, s->site_id);
        }
        o->power_w = s->power_w;
        o->expires_ms = s->expires_ms;
        break;
    }
    case DER__V1__HEADEND_MESSAGE__BODY_COMMAND: {
        const Der__V1__Command *c = m->command;
        struct agentmsg_command *o = &out->command;
        rc = copy_id(o->command_id, sizeof o->command_id, c->command_id);
        rc = rc ? rc : copy_id(o->asset_id, sizeof o->asset_id, c->asset_id);
        /* a name this gateway does not know is refused by name: kept, cut to fit */
        copy_text(o->command, sizeof o->command, c->command);
        o->value = c->value;
        o->expires_ms = c->expires_ms;
        break;
    }
    case DER__V1__HEADEND_MESSAGE__BODY_REGISTER_RESULT: {
        const Der__V1__RegisterResult *r = m->register_result;
        out->n_accepted = r->n_accepted;
        out->n_rejected = r->n_rejected;
        out->telemetry_acks = r->telemetry_acks;
        for (size_t i = 0; i < r->n_rejected && i < AGENTMSG_MAX_REJECT; i++) {
            copy_text(out->rejected[i].asset_id, sizeof out->rejected[i].asset_id,
                      r->rejected[i]->asset_id);
            copy_text(out->rejected[i].reason, sizeof out->rejected[i].reason,
                      r->rejected[i]->reason);
        }
        break;
    }
    case DER__V1__HEADEND_MESSAGE__BODY_PING:
        out->ping_ms = m->ping->sent_ms;
        break;
    case DER__V1__HEADEND_MESSAGE__BODY_TELEMETRY_ACK:
        out->ack_through = m->telemetry_ack->through_seq;
        break;
    default:
        break;
    }
    der__v1__headend_message__free_unpacked(m, NULL);
    return rc;
}
