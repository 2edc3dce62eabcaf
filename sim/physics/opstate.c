/* opstate: see opstate.h.
 *
 * The transitions are evaluated in a loop until nothing moves, so that zero start and stop
 * times chain within one step (a fault that clears at t on a started device is RUNNING at t
 * again when start_ms is 0, which is what the models did before they had a state machine).
 * STOPPING always runs to its end: a start during the stop takes effect from IDLE. */
#include "sim/physics/opstate.h"

void opstate_init(struct opstate *s, enum op_state state, int64_t now_ms)
{
    s->state = state;
    s->since_ms = now_ms;
    s->enabled = 1;
}

void opstate_command(struct opstate *s, enum opstate_cmd cmd)
{
    if (cmd == OPSTATE_CMD_START)
        s->enabled = 1;
    else if (cmd == OPSTATE_CMD_STOP)
        s->enabled = 0;
}

void opstate_enter(struct opstate *s, enum op_state state, int64_t at_ms)
{
    s->state = state;
    s->since_ms = at_ms;
}

void opstate_advance(struct opstate *s, const struct opstate_params *p, int64_t now_ms, int want,
                     int fault)
{
    int run = want && s->enabled;
    if (fault) {
        if (s->state != OPSTATE_FAULT)
            opstate_enter(s, OPSTATE_FAULT, now_ms);
        return;
    }
    /* At most FAULT -> IDLE -> STARTING -> RUNNING in one call. */
    for (int i = 0; i < 4; i++) {
        enum op_state before = s->state;
        switch (s->state) {
        case OPSTATE_FAULT:
            opstate_enter(s, OPSTATE_IDLE, now_ms);
            break;
        case OPSTATE_IDLE:
            if (run)
                opstate_enter(s, OPSTATE_STARTING, now_ms);
            break;
        case OPSTATE_STARTING:
            if (!run)
                opstate_enter(s, OPSTATE_IDLE, now_ms);
            else if (now_ms - s->since_ms >= p->start_ms)
                opstate_enter(s, OPSTATE_RUNNING, now_ms);
            break;
        case OPSTATE_RUNNING:
            if (!run)
                opstate_enter(s, OPSTATE_STOPPING, now_ms);
            break;
        case OPSTATE_STOPPING:
            if (now_ms - s->since_ms >= p->stop_ms)
                opstate_enter(s, OPSTATE_IDLE, now_ms);
            break;
        }
        if (s->state == before)
            break;
    }
}

const char *opstate_name(enum op_state state)
{
    static const char *const names[] = {"IDLE", "STARTING", "RUNNING", "STOPPING", "FAULT"};
    return (unsigned)state <= OPSTATE_FAULT ? names[state] : "?";
}
