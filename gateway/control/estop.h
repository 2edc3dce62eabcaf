/* estop: a site's emergency stop at the gateway (docs/operations.md, "Emergency stop"). Engaged
 * by the headend (EmergencyStop on the stream) or a lockstep scenario event, it holds until it
 * is released the same way: the controller takes every controllable asset to its safe state
 * every cycle (controller_set_estop), whether or not the stream is still up, and the state is
 * persisted as STATE_DIR/estop.json (next to the spool, as confsync persists a pushed
 * configuration), so that a gateway restarted while it holds starts stopped. Every change is
 * one log line, event=estop. Runs on the control thread; the caller owns it (estop_free) and
 * the controller, which must outlive it. */
#ifndef DERLOOP_ESTOP_H
#define DERLOOP_ESTOP_H

#include <stddef.h>

#define ESTOP_FILE       "estop.json"
#define ESTOP_ID_MAX     64
#define ESTOP_REASON_MAX 256

struct controller;
struct estop;

struct estop_state {
    int active;
    char id[ESTOP_ID_MAX];         /* the headend's id of the stop ("" when none given) */
    char reason[ESTOP_REASON_MAX]; /* the operator's words */
};

/* state_dir "" persists nothing (lockstep runs). log: one key=value line per change. */
struct estop *estop_new(struct controller *ctl, const char *state_dir,
                        void (*log)(void *ctx, const char *line), void *log_ctx);
void estop_free(struct estop *e);

/* At start: a persisted stop is engaged again at once (a file that cannot be read engages it
 * too, with that reason: a stop is never dropped by accident). Returns 1 when one holds. */
int estop_start(struct estop *e);

/* Engages (active 1) or releases (0), from the next cycle; source names who asked in the log
 * ("headend", "scenario"). Returns 0, or -errno when the state could not be persisted (the
 * stop is applied all the same, and the log says so). */
int estop_set(struct estop *e, int active, const char *id, const char *reason, const char *source);

const struct estop_state *estop_state(const struct estop *e);

#endif
