/* battery: energy, limits, temperature and state of a battery system (see battery.h; the
 * equations, units and parameter sources are in docs/physics.md).
 *
 * One step [now, now + dt) in this order:
 *   1. the setpoint goes through the response model (latency, ramp, quantisation);
 *   2. it is clamped to the limits at `now`: SoC derate near the ends, temperature derate, and
 *      the energy that is there (or the room that is left) in this step;
 *   3. energy, losses and AC counters move with the clamped power;
 *   4. the temperature follows its first-order lag, integrated exactly.
 * A fault (injected, or the temperature at or above temp_stop_c) forces the power to 0, and so
 * does any operating state but RUNNING (opstate.c: the fault is its FAULT, a stop its STOPPING
 * and IDLE); the setpoint's response model advances all the same.
 *
 * On an islanded site (site.c) the inverter is grid-forming: battery_step_island takes the
 * power the site's balance asks of it instead of the setpoint, inside the same limits
 * (battery_step_limits), and steps 3 and 4 are the same. */
#include "sim/physics/battery.h"

#include <math.h>
#include <string.h>

/* The tolerance below which a clamp does not count as throttling: well under one milliwatt,
 * so rounding in the limit arithmetic never flips the state. */
#define THROTTLE_EPS_W 1e-6

void battery_init(struct battery *b, const struct battery_params *p)
{
    memset(b, 0, sizeof *b);
    b->p = *p;
    b->energy_wh = p->soc_init * p->capacity_wh;
    if (b->energy_wh < 0.0)
        b->energy_wh = 0.0;
    if (b->energy_wh > p->capacity_wh)
        b->energy_wh = p->capacity_wh;
    b->soc = p->capacity_wh > 0.0 ? b->energy_wh / p->capacity_wh : 0.0;
    b->temp_c = p->temp_init_c;
    b->state = BATTERY_STANDBY;
    response_init(&b->resp, &p->response, 0.0);
    opstate_init(&b->op, OPSTATE_RUNNING, 0);
}

void battery_command(struct battery *b, int64_t now_ms, double setpoint_w)
{
    b->setpoint_w = setpoint_w;
    response_command(&b->resp, now_ms, setpoint_w);
}

/* 1 at or below temp_derate_c, falling linearly to 0 at temp_stop_c. */
static double temp_factor(const struct battery *b)
{
    double t = b->temp_c, lo = b->p.temp_derate_c, hi = b->p.temp_stop_c;
    if (!isfinite(t) || t >= hi)
        return 0.0;
    if (t <= lo || hi <= lo)
        return 1.0;
    return (hi - t) / (hi - lo);
}

static int faulted(const struct battery *b)
{
    return b->fault != 0 || !(b->temp_c < b->p.temp_stop_c);
}

double battery_discharge_limit_w(const struct battery *b)
{
    if (faulted(b))
        return 0.0;
    double f = 1.0;
    if (b->p.soc_low_band > 0.0 && b->soc < b->p.soc_low_band)
        f = b->soc > 0.0 ? b->soc / b->p.soc_low_band : 0.0;
    return b->p.max_discharge_w * f * temp_factor(b);
}

double battery_charge_limit_w(const struct battery *b)
{
    if (faulted(b))
        return 0.0;
    double f = 1.0;
    if (b->p.soc_high_band < 1.0 && b->soc > b->p.soc_high_band)
        f = b->soc < 1.0 ? (1.0 - b->soc) / (1.0 - b->p.soc_high_band) : 0.0;
    return b->p.max_charge_w * f * temp_factor(b);
}

void battery_opcommand(struct battery *b, int64_t now_ms, enum opstate_cmd cmd)
{
    opstate_command(&b->op, cmd);
    opstate_advance(&b->op, &b->p.op, now_ms, 1, faulted(b));
}

int battery_available(struct battery *b, int64_t now_ms)
{
    opstate_advance(&b->op, &b->p.op, now_ms, 1, faulted(b));
    return opstate_running(&b->op);
}

/* Moves energy for power p_w (+ discharge) over dt_h. The caller already clamped p_w so that
 * the store cannot run empty or over-full by more than rounding; the final clamp keeps the SoC
 * exactly inside [0, 1] and books the rounding as loss, so the energy books still balance. */
static void move_energy(struct battery *b, double p_w, double dt_h)
{
    double before = b->energy_wh;
    double ac_wh = p_w * dt_h;
    if (p_w > 0.0) {
        b->energy_wh -= ac_wh / b->p.eta_discharge;
        b->discharged_wh += ac_wh;
    } else if (p_w < 0.0) {
        b->energy_wh += -ac_wh * b->p.eta_charge;
        b->charged_wh += -ac_wh;
    }
    if (b->energy_wh < 0.0)
        b->energy_wh = 0.0;
    if (b->energy_wh > b->p.capacity_wh)
        b->energy_wh = b->p.capacity_wh;
    /* AC in - AC out - stored change = what the conversion lost. */
    b->loss_wh += -ac_wh - (b->energy_wh - before);
    b->soc = b->energy_wh / b->p.capacity_wh;
}

/* Exact solution of dT/dt = (T_ss - T) / tau over dt: stable for any dt, unlike Euler. */
static void move_temperature(struct battery *b, double p_w, double dt_s)
{
    double pmax = p_w >= 0.0 ? b->p.max_discharge_w : b->p.max_charge_w;
    double x = pmax > 0.0 ? p_w / pmax : 0.0;
    double t_ss = b->p.temp_ambient_c + b->p.temp_rise_c * x * x;
    if (b->p.temp_tau_s <= 0.0) {
        b->temp_c = t_ss;
        return;
    }
    b->temp_c = t_ss + (b->temp_c - t_ss) * exp(-dt_s / b->p.temp_tau_s);
}

/* The power limits over the next dt: the derated limits at `now`, and never more energy than
 * is there, nor more than the room left, in one step. Both 0 in FAULT. */
void battery_step_limits(const struct battery *b, int64_t dt_ms, double *dis_w, double *chg_w)
{
    double dt_h = (double)dt_ms / 1000.0 / 3600.0; /* as apply_power: the same rounding */
    double dis = battery_discharge_limit_w(b), chg = battery_charge_limit_w(b);
    if (dt_h > 0.0) {
        double dis_e = b->energy_wh * b->p.eta_discharge / dt_h;
        double chg_e = (b->p.capacity_wh - b->energy_wh) / (b->p.eta_charge * dt_h);
        if (dis_e < dis)
            dis = dis_e;
        if (chg_e < chg)
            chg = chg_e;
    }
    *dis_w = dis;
    *chg_w = chg;
}

/* Energy, state and temperature for the power p actually applied; `want` is what the
 * controller asked for (a clamp by more than THROTTLE_EPS_W is THROTTLED). */
static void apply_power(struct battery *b, double p, double want, int64_t dt_ms)
{
    double dt_s = (double)dt_ms / 1000.0, dt_h = dt_s / 3600.0;
    move_energy(b, p, dt_h);
    b->power_w = p;
    if (faulted(b))
        b->state = BATTERY_FAULT;
    else if (fabs(p - want) > THROTTLE_EPS_W)
        b->state = BATTERY_THROTTLED;
    else if (p != 0.0)
        b->state = BATTERY_RUNNING;
    else
        b->state = BATTERY_STANDBY;
    move_temperature(b, p, dt_s);
}

void battery_step(struct battery *b, int64_t now_ms, int64_t dt_ms)
{
    double want = response_step(&b->resp, now_ms, dt_ms);
    double p = want;

    if (!battery_available(b, now_ms)) {
        p = 0.0;
        if (!faulted(b))
            want = 0.0; /* stopped: STANDBY, not THROTTLED */
    } else {
        double dis, chg;
        battery_step_limits(b, dt_ms, &dis, &chg);
        if (p > dis)
            p = dis;
        if (p < -chg)
            p = -chg;
    }
    apply_power(b, p, want, dt_ms);
}

/* Grid-forming: the site's balance sets the power. The setpoint's response model still
 * advances (its output unused), so that at the end of the island the inverter goes back to
 * the setpoint the controller holds, through the same latency and ramp state. Not THROTTLED:
 * there is no setpoint to fall short of. */
void battery_step_island(struct battery *b, int64_t now_ms, int64_t dt_ms, double p_w)
{
    (void)response_step(&b->resp, now_ms, dt_ms);
    double dis, chg;
    battery_step_limits(b, dt_ms, &dis, &chg);
    if (!battery_available(b, now_ms))
        p_w = 0.0;
    if (p_w > dis)
        p_w = dis;
    if (p_w < -chg)
        p_w = -chg;
    apply_power(b, p_w, p_w, dt_ms);
}

void battery_reset(struct battery *b)
{
    b->setpoint_w = 0.0;
    b->fault = 0;
    b->power_w = 0.0;
    response_reset(&b->resp, 0.0);
    b->state = BATTERY_STANDBY;
    b->op.enabled = 1;
}
