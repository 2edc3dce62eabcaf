/* opstate: the operating state machine every controllable device model shares (battery, PV
 * inverter, EVSE, boiler; meters and loads have none). IDLE -> STARTING (start time) ->
 * RUNNING -> STOPPING (stop time) -> IDLE; any state -> FAULT while the model's fault
 * condition holds, FAULT -> IDLE once it has gone (then STARTING again if the device is
 * started). Only RUNNING delivers power. A start or stop command sets `enabled`; the model says
 * whether it wants to run (enabled, and for a boiler its thermostat). Zero times chain within
 * one call. docs/physics.md, "Operating states". A value struct; no allocation. */
#ifndef DERLOOP_OPSTATE_H
#define DERLOOP_OPSTATE_H

#include <stdint.h>

/* The values are those of the derloop maps' State/OpState points (docs/registers.md). */
enum op_state {
    OPSTATE_IDLE,
    OPSTATE_STARTING,
    OPSTATE_RUNNING,
    OPSTATE_STOPPING,
    OPSTATE_FAULT,
};

/* The values are those of the derloop maps' Command points. */
enum opstate_cmd { OPSTATE_CMD_NONE, OPSTATE_CMD_START, OPSTATE_CMD_STOP, OPSTATE_CMD_RESET };

struct opstate_params {
    int64_t start_ms; /* STARTING -> RUNNING */
    int64_t stop_ms;  /* STOPPING -> IDLE */
};

struct opstate {
    enum op_state state;
    int64_t since_ms; /* when it entered the state */
    int enabled;      /* started (1) or stopped (0) by command */
};

/* A device that starts in `state` (RUNNING: every model but the boiler, which starts IDLE and
 * lets its thermostat start it), started. */
void opstate_init(struct opstate *s, enum op_state state, int64_t now_ms);
/* START: enabled; STOP: not enabled. RESET changes nothing here: the model clears its latched
 * fault, and the next opstate_advance leaves FAULT. */
void opstate_command(struct opstate *s, enum opstate_cmd cmd);
/* Runs the transitions at now until they settle. want: the model wants to run (it is also
 * enabled); fault: its fault condition holds. */
void opstate_advance(struct opstate *s, const struct opstate_params *p, int64_t now_ms, int want,
                     int fault);
/* Enters a state at at_ms (a transition the model times itself, inside a step). */
void opstate_enter(struct opstate *s, enum op_state state, int64_t at_ms);
static inline int opstate_running(const struct opstate *s)
{
    return s->state == OPSTATE_RUNNING;
}
const char *opstate_name(enum op_state state); /* "IDLE", ..., "?" */

#endif
