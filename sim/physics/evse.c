/* evse: an AC charger and the cars that visit it (see evse.h and docs/physics.md).
 *
 * One step [now, now + dt):
 *   1. a car whose departure is due leaves (the session is booked: done, full or short);
 *   2. the car present at now, if any, is found in the sessions profile (arrive <= now < depart);
 *   3. the effective current limit: the commanded one, or the failsafe current when the
 *      controller has not written for failsafe_ms; 0 pauses, else min..max in whole amps;
 *   4. the power the car would draw, I * V * phases capped by the car, goes through the
 *      response model (latency, ramp), then the taper near full and the remaining need cap it;
 *   5. IEC 61851 state: A no car, B car not charging, C charging, F fault.
 * A car leaving, a fault or a charger not RUNNING (opstate.c: stopped, starting, faulted) cuts
 * the current at once: that is a contactor, not a control loop. */
#include "sim/physics/evse.h"

#include <math.h>
#include <string.h>

/* The car's charge tapers from this fraction of its session need (CC-CV knee, physics.md). */
#define TAPER_START 0.8
/* The car's BMS ends the CV phase when the tapered charge falls to this fraction of what it
 * would draw (the C/20-style termination): at 1 - 0.05 x (1 - TAPER_START) = 99 % of the need.
 * The car then reports full and draws nothing more. */
#define TERMINATE_FRAC 0.05
/* A session counts as full when the car terminated, or the need is met to within this (energy
 * counter resolution, for needs too small to taper). */
#define FULL_TOLERANCE_WH 1.0

static int session_full(double need_wh, double delivered_wh)
{
    double residual = need_wh * TERMINATE_FRAC * (1.0 - TAPER_START);
    return need_wh - delivered_wh <= (residual > FULL_TOLERANCE_WH ? residual : FULL_TOLERANCE_WH);
}

static double effective_current_a(const struct evse *e, double amps);

void evse_init(struct evse *e, const struct evse_params *p)
{
    memset(e, 0, sizeof *e);
    e->p = *p;
    e->state = IEC_A;
    e->enabled = 1;
    e->current_limit_a = effective_current_a(e, p->default_current_a);
    e->session = -1;
    response_init(&e->resp, &p->response, 0.0);
    opstate_init(&e->op, OPSTATE_RUNNING, 0);
}

void evse_opcommand(struct evse *e, int64_t now_ms, enum opstate_cmd cmd)
{
    opstate_command(&e->op, cmd);
    opstate_advance(&e->op, &e->p.op, now_ms, 1, e->fault);
}

/* 0 (or less) pauses; anything else is raised to the minimum, cut down to whole amps (the
 * 1 A resolution of IEC 61851-1 PWM duty steps in practice) and capped at the maximum. */
static double effective_current_a(const struct evse *e, double amps)
{
    if (!(amps > 0.0))
        return 0.0;
    if (amps < e->p.min_current_a)
        amps = e->p.min_current_a;
    amps = floor(amps);
    if (amps < e->p.min_current_a)
        amps = ceil(e->p.min_current_a); /* a fractional minimum still charges */
    if (amps > e->p.max_current_a)
        amps = floor(e->p.max_current_a);
    return amps;
}

void evse_command(struct evse *e, int64_t now_ms, double current_limit_a, int enabled)
{
    e->current_limit_a = effective_current_a(e, current_limit_a);
    e->enabled = enabled != 0;
    e->last_command_ms = now_ms;
}

static const struct ev_session *session_at(const struct evse *e, int i)
{
    if (i < 0 || !e->p.sessions || (size_t)i >= e->p.sessions->n_sessions)
        return NULL;
    return &e->p.sessions->sessions[i];
}

static void depart(struct evse *e)
{
    const struct ev_session *s = session_at(e, e->session);
    double remaining = s->energy_wh - e->session_energy_wh;
    e->sessions_done++;
    if (session_full(s->energy_wh, e->session_energy_wh))
        e->sessions_full++; /* full: what the termination leaves is not a shortfall */
    else if (remaining > 0.0)
        e->shortfall_wh += remaining;
    e->session = -1;
    e->session_energy_wh = 0.0;
}

/* The session whose car is present at now. Sessions are sorted by arrival, so the scan stops at
 * the first future arrival, and starts after the leading run of departed sessions (time only
 * moves forward), which keeps a year of daily sessions cheap. */
static int find_session(struct evse *e, int64_t now_ms)
{
    if (!e->p.sessions)
        return -1;
    size_t n = e->p.sessions->n_sessions;
    while ((size_t)e->next_session < n &&
           e->p.sessions->sessions[e->next_session].depart_ms <= now_ms)
        e->next_session++;
    for (size_t i = (size_t)e->next_session; i < n; i++) {
        const struct ev_session *s = &e->p.sessions->sessions[i];
        if (s->arrive_ms > now_ms)
            break;
        if (now_ms < s->depart_ms)
            return (int)i;
    }
    return -1;
}

static double last_commanded(const struct response *r)
{
    if (r->count == 0)
        return r->target;
    return r->fifo[(r->head + r->count - 1) % RESPONSE_FIFO].value;
}

static int phases_used(const struct evse *e, const struct ev_session *s)
{
    int ph = e->p.phases > 0 ? e->p.phases : 1;
    if (s && s->phases > 0 && s->phases < ph)
        ph = s->phases;
    return ph;
}

void evse_step(struct evse *e, int64_t now_ms, int64_t dt_ms)
{
    double dt_h = (double)dt_ms / 3600000.0;
    const struct ev_session *s = session_at(e, e->session);
    if (s && now_ms >= s->depart_ms)
        depart(e);
    if (e->session < 0)
        e->session = find_session(e, now_ms);
    s = session_at(e, e->session);
    opstate_advance(&e->op, &e->p.op, now_ms, 1, e->fault);

    if (!s || !opstate_running(&e->op)) {
        response_reset(&e->resp, 0.0);
        e->power_w = 0.0;
        e->current_a = 0.0;
        e->state = e->fault ? IEC_F : (s ? IEC_B : IEC_A);
        return;
    }

    double amps = e->enabled ? e->current_limit_a : 0.0;
    if (e->p.failsafe_ms > 0 && now_ms - e->last_command_ms > e->p.failsafe_ms)
        amps = effective_current_a(e, e->p.failsafe_current_a);
    int ph = phases_used(e, s);
    double want = amps * e->p.voltage_v * ph;
    if (s->max_power_w > 0.0 && want > s->max_power_w)
        want = s->max_power_w;
    if (want != last_commanded(&e->resp))
        response_command(&e->resp, now_ms, want);
    double p = response_step(&e->resp, now_ms, dt_ms);

    double remaining = s->energy_wh - e->session_energy_wh;
    if (s->energy_wh > 0.0) {
        double frac = e->session_energy_wh / s->energy_wh;
        if (frac >= TAPER_START) {
            double f = (1.0 - frac) / (1.0 - TAPER_START);
            p *= f > TERMINATE_FRAC ? f : 0.0; /* below it the car has terminated */
        }
    }
    if (dt_h > 0.0 && p * dt_h > remaining)
        p = remaining > 0.0 ? remaining / dt_h : 0.0;
    if (p < 0.0)
        p = 0.0;

    e->power_w = p;
    e->current_a = e->p.voltage_v > 0.0 ? p / (e->p.voltage_v * ph) : 0.0;
    e->session_energy_wh += p * dt_h;
    e->total_energy_wh += p * dt_h;
    e->state = p > 0.0 ? IEC_C : IEC_B;
}

void evse_reset(struct evse *e)
{
    e->current_limit_a = effective_current_a(e, e->p.default_current_a);
    e->enabled = 1;
    e->fault = 0;
    e->op.enabled = 1;
    response_reset(&e->resp, 0.0);
}
