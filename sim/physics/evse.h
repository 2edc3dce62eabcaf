/* evse: an AC EV charger and the cars that visit it (site sign: + consumption). Sessions from
 * a profile (arrival, departure, energy need, the car's limit and phases); IEC 61851 states;
 * a current limit setpoint (0 pauses, otherwise min..max in 1 A steps); taper near full;
 * a failsafe current when the controller stops writing; the operating states of opstate.h
 * (only RUNNING charges; FAULT while faulted). docs/physics.md. */
#ifndef DERLOOP_EVSE_H
#define DERLOOP_EVSE_H

#include <stdint.h>

#include "sim/physics/opstate.h"
#include "sim/physics/profile.h"
#include "sim/physics/response.h"

struct evse_params {
    int phases;               /* 1 or 3 */
    double min_current_a;     /* usually 6 */
    double max_current_a;     /* e.g. 16 or 32 */
    double voltage_v;         /* per phase, 230 */
    double default_current_a; /* limit at start-up and after a reboot (0 = paused) */
    int64_t failsafe_ms;      /* 0 = off; else fall back to failsafe_current_a without writes */
    double failsafe_current_a;
    const struct profile *sessions;  /* PROFILE_EV_SESSIONS; NULL = no car ever; not owned */
    struct response_params response; /* on the delivered power */
    struct opstate_params op;        /* start_delay, stop_delay (0: at once) */
};

enum iec61851_state { IEC_A = 'A', IEC_B = 'B', IEC_C = 'C', IEC_E = 'E', IEC_F = 'F' };

struct evse {
    struct evse_params p;
    char state; /* enum iec61851_state */
    int enabled;
    double current_limit_a;   /* commanded */
    double power_w;           /* delivered during the last step */
    double current_a;         /* per phase */
    int session;              /* index into the sessions profile, -1 = no car */
    int next_session;         /* scan cursor: sessions before it have departed */
    double session_energy_wh; /* delivered in this session */
    double total_energy_wh;
    int sessions_done;   /* finished (departed), full or not */
    int sessions_full;   /* finished full: the car terminated its charge (99 % of the need) */
    double shortfall_wh; /* summed over finished sessions */
    int fault;
    int64_t last_command_ms;
    struct response resp;
    struct opstate op; /* starts RUNNING */
};

void evse_init(struct evse *e, const struct evse_params *p);
void evse_command(struct evse *e, int64_t now_ms, double current_limit_a, int enabled);
/* Start, stop (RESET: nothing to reset, a fault clears with its cause). */
void evse_opcommand(struct evse *e, int64_t now_ms, enum opstate_cmd cmd);
void evse_step(struct evse *e, int64_t now_ms, int64_t dt_ms);
void evse_reset(struct evse *e); /* device reboot: defaults, fault cleared, started again */

#endif
