/* boiler: an electric hot-water tank (see boiler.h; equations in docs/physics.md).
 *
 * Within a step every coefficient of the tank's energy balance is constant (the element is on
 * or off, the draw is read once at the step's start), so the ODE
 *     m c dT/dt = eta P - UA (T - T_amb) - mdot c (T - T_cold)
 * is linear and has the exact solution T(t) = T_inf + (T0 - T_inf) exp(-k t). When heating
 * would carry the tank past the thermostat's upper threshold inside the step, the step is split
 * at the crossing instant (solved in closed form): the element heats until then and the tank
 * coasts for the rest, so even a one-minute step does not overshoot the threshold.
 *
 * States (opstate.c): the boiler wants to run while it is started and its thermostat asks for
 * heat, so IDLE -> STARTING (start_delay) -> RUNNING -> STOPPING (stop_delay) -> IDLE follows
 * the thermostat; FAULT on over-temperature or an injected fault is latched (the fault code
 * stays set), left only with CMD_RESET once the tank has cooled 5 K below temp_max_c. Only
 * RUNNING draws power. */
#include "sim/physics/boiler.h"

#include <math.h>
#include <string.h>

/* Specific heat of water near 40-60 degC, J/(kg K) (engineering tables); 1 L taken as 1 kg. */
#define WATER_J_PER_KG_K 4186.0
/* SG-Ready (Bundesverband Waermepumpe label): mode 3 raises the target by this much, mode 4
 * heats to temp_max_c minus this much; a FAULT resets only below temp_max_c minus this much. */
#define SG_BOOST_K   5.0
#define MAX_MARGIN_K 5.0

void boiler_init(struct boiler *b, const struct boiler_params *p)
{
    memset(b, 0, sizeof *b);
    b->p = *p;
    opstate_init(&b->op, OPSTATE_IDLE, 0);
    b->temp_c = p->temp_init_c;
    b->setpoint_c = p->setpoint_c;
    b->power_limit_w = p->rated_w;
    b->sg_mode = 2;
}

/* The temperature at which the thermostat switches off, by SG-Ready mode. */
static double upper_c(const struct boiler *b)
{
    switch (b->sg_mode) {
    case 3:
        return b->setpoint_c + SG_BOOST_K;
    case 4:
        return b->p.temp_max_c - MAX_MARGIN_K;
    default:
        return b->setpoint_c;
    }
}

/* Demand switches on below upper - hysteresis and off at upper (the same band in every mode);
 * SG-Ready mode 1 blocks heating altogether. */
static void thermostat(struct boiler *b)
{
    double hi = upper_c(b);
    if (b->sg_mode == 1 || b->temp_c >= hi)
        b->heat_demand = 0;
    else if (b->temp_c < hi - b->p.hysteresis_k)
        b->heat_demand = 1;
}

void boiler_command(struct boiler *b, int64_t now_ms, enum opstate_cmd cmd)
{
    switch (cmd) {
    case BOILER_CMD_START:
        /* A boost: one heating cycle up to the threshold, whatever the hysteresis says. */
        opstate_command(&b->op, OPSTATE_CMD_START);
        if (b->op.state != OPSTATE_FAULT && b->sg_mode != 1 && b->temp_c < upper_c(b))
            b->heat_demand = 1;
        break;
    case BOILER_CMD_STOP:
        /* Ends the current cycle, and the thermostat starts none until the next START. */
        opstate_command(&b->op, OPSTATE_CMD_STOP);
        b->heat_demand = 0;
        break;
    case BOILER_CMD_RESET:
        if (b->op.state == OPSTATE_FAULT && b->temp_c < b->p.temp_max_c - MAX_MARGIN_K) {
            b->fault = 0;
            b->heat_demand = 0;
            opstate_enter(&b->op, OPSTATE_IDLE, now_ms);
        }
        break;
    case BOILER_CMD_NONE:
        break;
    }
}

void boiler_set(struct boiler *b, double power_limit_w, double setpoint_c, int sg_mode)
{
    if (power_limit_w < 0.0)
        power_limit_w = 0.0;
    if (power_limit_w > b->p.rated_w)
        power_limit_w = b->p.rated_w;
    b->power_limit_w = power_limit_w;
    b->setpoint_c = setpoint_c;
    if (sg_mode >= 1 && sg_mode <= 4)
        b->sg_mode = sg_mode;
}

void boiler_reboot(struct boiler *b, int64_t now_ms)
{
    opstate_init(&b->op, OPSTATE_IDLE, now_ms);
    b->fault = 0;
    b->heat_demand = 0;
    boiler_set(b, b->p.rated_w, b->p.setpoint_c, 2);
}

/* The tank's linear ODE for one stretch with constant heat input: dT/dt = a - k T. */
struct tank_ode {
    double k;     /* 1/s, >= 0 */
    double t_inf; /* steady state, when k > 0 */
    double slope; /* K/s, when k == 0 (no losses, no draw) */
};

static struct tank_ode tank_ode(const struct boiler *b, double heat_w, double draw_kg_s)
{
    struct tank_ode o = {0};
    double mc = b->p.volume_l * WATER_J_PER_KG_K;
    double g = b->p.ua_w_per_k + draw_kg_s * WATER_J_PER_KG_K; /* W/K */
    double q = b->p.eta * heat_w;
    if (g > 0.0) {
        o.k = g / mc;
        o.t_inf = (q + b->p.ua_w_per_k * b->p.temp_ambient_c +
                   draw_kg_s * WATER_J_PER_KG_K * b->p.temp_cold_c) /
                  g;
    } else {
        o.slope = q / mc;
    }
    return o;
}

static double ode_at(const struct tank_ode *o, double t0_c, double t_s)
{
    if (o->k > 0.0)
        return o->t_inf + (t0_c - o->t_inf) * exp(-o->k * t_s);
    return t0_c + o->slope * t_s;
}

/* Seconds until the trajectory from t0_c reaches hi_c, or INFINITY if it never does. */
static double ode_crossing_s(const struct tank_ode *o, double t0_c, double hi_c)
{
    if (t0_c >= hi_c)
        return 0.0;
    if (o->k > 0.0) {
        if (o->t_inf <= hi_c)
            return INFINITY;
        return log((t0_c - o->t_inf) / (hi_c - o->t_inf)) / o->k;
    }
    if (o->slope <= 0.0)
        return INFINITY;
    return (hi_c - t0_c) / o->slope;
}

void boiler_step(struct boiler *b, int64_t now_ms, int64_t dt_ms)
{
    double dt_s = (double)dt_ms / 1000.0;
    double draw_kg_s = 0.0;
    if (b->p.draw) {
        draw_kg_s = profile_value(b->p.draw, now_ms) / 3600.0; /* L/h -> kg/s */
        if (!(draw_kg_s > 0.0))
            draw_kg_s = 0.0;
    }

    if (b->temp_c > b->p.temp_max_c && b->fault == 0)
        b->fault = 1;
    if (b->fault || !b->op.enabled)
        b->heat_demand = 0;
    else
        thermostat(b);
    opstate_advance(&b->op, &b->p.op, now_ms, b->heat_demand, b->fault != 0);

    double p_w = 0.0;
    if (opstate_running(&b->op))
        p_w = b->p.rated_w < b->power_limit_w ? b->p.rated_w : b->power_limit_w;

    double heat_s = dt_s;
    struct tank_ode on = tank_ode(b, p_w, draw_kg_s);
    if (p_w > 0.0) {
        double hi = upper_c(b);
        double cross_s = ode_crossing_s(&on, b->temp_c, hi);
        if (cross_s < dt_s) {
            /* The thermostat opens inside the step: heat up to it, then coast. */
            heat_s = cross_s;
            b->temp_c = hi;
            b->heat_demand = 0;
            opstate_enter(&b->op, OPSTATE_STOPPING, now_ms + (int64_t)llround(cross_s * 1000.0));
            struct tank_ode off = tank_ode(b, 0.0, draw_kg_s);
            b->temp_c = ode_at(&off, b->temp_c, dt_s - cross_s);
        } else {
            b->temp_c = ode_at(&on, b->temp_c, dt_s);
        }
    } else {
        b->temp_c = ode_at(&on, b->temp_c, dt_s);
    }

    b->energy_wh += p_w * heat_s / 3600.0;
    /* The step's average, so that power * dt is the energy the site balance books. */
    b->power_w = heat_s < dt_s ? p_w * (heat_s / dt_s) : p_w;

    if (b->temp_c > b->p.temp_max_c && b->fault == 0) {
        b->fault = 1;
        opstate_enter(&b->op, OPSTATE_FAULT, now_ms + dt_ms);
    }
}
