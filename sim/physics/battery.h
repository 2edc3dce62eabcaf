/* battery: a battery energy storage system behind its inverter (site sign: + discharge,
 * - charge). Energy with charge/discharge efficiency, power limits derated near the SoC ends
 * and by temperature, first-order temperature, a setpoint response model, a fault state, the
 * operating states of opstate.h (only RUNNING delivers: a stopped battery answers 0 W whatever
 * its setpoint). Equations in docs/physics.md. A value struct; no allocation. */
#ifndef DERLOOP_BATTERY_H
#define DERLOOP_BATTERY_H

#include <stdint.h>

#include "sim/physics/opstate.h"
#include "sim/physics/response.h"

struct battery_params {
    double capacity_wh;     /* > 0 */
    double soc_init;        /* [0, 1] */
    double max_charge_w;    /* > 0, magnitude */
    double max_discharge_w; /* > 0 */
    double eta_charge;      /* (0, 1] */
    double eta_discharge;   /* (0, 1] */
    double soc_low_band;    /* discharge derates linearly to 0 as SoC falls from this to 0 */
    double soc_high_band;   /* charge tapers linearly to 0 as SoC rises from this to 1 */
    double temp_init_c, temp_ambient_c;
    double temp_tau_s;    /* thermal time constant, > 0 */
    double temp_rise_c;   /* steady-state rise at full power: k_heat */
    double temp_derate_c; /* power limits derate linearly from here ... */
    double temp_stop_c;   /* ... to zero here (and FAULT above it) */
    double voltage_v;     /* nominal DC voltage, for currents in the register image */
    struct response_params response;
    struct opstate_params op; /* start_delay, stop_delay (0: at once) */
};

/* What the inverter does while it operates (701 InvSt); op.state says whether it operates. */
enum battery_state { BATTERY_STANDBY, BATTERY_RUNNING, BATTERY_THROTTLED, BATTERY_FAULT };

struct battery {
    struct battery_params p;
    enum battery_state state;
    double energy_wh;  /* stored energy */
    double soc;        /* energy_wh / capacity_wh */
    double setpoint_w; /* last commanded setpoint (+ discharge) */
    double power_w;    /* delivered during the last step, after all limits */
    double temp_c;
    int fault; /* 0 = none; set by a scenario fault event, cleared by battery_reset */
    double charged_wh, discharged_wh; /* AC side, accumulated */
    double loss_wh;                   /* conversion losses, accumulated */
    struct response resp;
    struct opstate op; /* starts RUNNING */
};

void battery_init(struct battery *b, const struct battery_params *p);
void battery_command(struct battery *b, int64_t now_ms, double setpoint_w);
/* Start, stop (RESET: nothing to reset, the battery's faults clear with their cause). */
void battery_opcommand(struct battery *b, int64_t now_ms, enum opstate_cmd cmd);
/* Whether the battery delivers in the step from now: its state machine advanced to now, and
 * RUNNING (so not in FAULT either). */
int battery_available(struct battery *b, int64_t now_ms);
/* Advances by dt: the power applied over [now, now + dt) is the response output clamped to
 * the limits at `now`; the SoC never leaves [0, 1]. */
void battery_step(struct battery *b, int64_t now_ms, int64_t dt_ms);
/* Grid-forming step of an islanded site: the power is p_w (+ discharge) as the site's balance
 * sets it, clamped to battery_step_limits (0 in FAULT); the setpoint's response model advances
 * but its output is not applied. */
void battery_step_island(struct battery *b, int64_t now_ms, int64_t dt_ms, double p_w);
/* What the battery can deliver (dis_w) and absorb (chg_w) over the next dt_ms: the derated
 * limits, the energy that is there and the room that is left; both >= 0, 0 in FAULT. */
void battery_step_limits(const struct battery *b, int64_t dt_ms, double *dis_w, double *chg_w);
double battery_discharge_limit_w(const struct battery *b); /* current limits, >= 0 */
double battery_charge_limit_w(const struct battery *b);
/* device reboot: setpoint 0, fault cleared, started again, energy kept */
void battery_reset(struct battery *b);

#endif
