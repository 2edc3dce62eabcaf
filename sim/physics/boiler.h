/* boiler: an electric hot-water tank (site sign: + consumption). Tank temperature from heat
 * input, losses (UA) and a draw profile, integrated exactly between thermostat crossings; a
 * thermostat with hysteresis; the operating states of opstate.h (RUNNING = heating: the
 * thermostat starts and stops it while the boiler is started), FAULT on over-temperature or an
 * injected fault, latched until RESET. docs/physics.md. */
#ifndef DERLOOP_BOILER_H
#define DERLOOP_BOILER_H

#include <stdint.h>

#include "sim/physics/opstate.h"
#include "sim/physics/profile.h"

struct boiler_params {
    double rated_w;    /* heating element, > 0 */
    double volume_l;   /* > 0 */
    double ua_w_per_k; /* tank loss coefficient */
    double eta;        /* element efficiency (0, 1] */
    double temp_init_c, temp_ambient_c, temp_cold_c;
    double setpoint_c;          /* thermostat target (default, writable) */
    double hysteresis_k;        /* heats again below setpoint - hysteresis */
    double temp_max_c;          /* over-temperature trip -> FAULT */
    double temp_min_c;          /* comfort minimum (reported, for KPIs) */
    struct opstate_params op;   /* start_delay, stop_delay */
    const struct profile *draw; /* hot water drawn, L/h; NULL = none; not owned */
};

/* The boiler's states and commands are opstate.h's (the derloop map's State and Command). */
#define BOILER_IDLE      OPSTATE_IDLE
#define BOILER_STARTING  OPSTATE_STARTING
#define BOILER_RUNNING   OPSTATE_RUNNING
#define BOILER_STOPPING  OPSTATE_STOPPING
#define BOILER_FAULT     OPSTATE_FAULT
#define BOILER_CMD_NONE  OPSTATE_CMD_NONE
#define BOILER_CMD_START OPSTATE_CMD_START
#define BOILER_CMD_STOP  OPSTATE_CMD_STOP
#define BOILER_CMD_RESET OPSTATE_CMD_RESET

struct boiler {
    struct boiler_params p;
    struct opstate op;
    double temp_c;
    double setpoint_c;    /* commanded */
    double power_limit_w; /* commanded, [0, rated_w] */
    int sg_mode;          /* SG-Ready 1 blocked, 2 normal, 3 encouraged, 4 forced */
    int fault;            /* 0 none, 1 over-temperature, 2 injected */
    int heat_demand;      /* thermostat output */
    double power_w;       /* during the last step */
    double energy_wh;
};

void boiler_init(struct boiler *b, const struct boiler_params *p);
/* START: started, and one heating cycle up to the thermostat's threshold (a boost); STOP: the
 * cycle ends and the thermostat starts no other until START; RESET: leaves a FAULT once the
 * tank has cooled 5 K below temp_max_c. */
void boiler_command(struct boiler *b, int64_t now_ms, enum opstate_cmd cmd);
void boiler_set(struct boiler *b, double power_limit_w, double setpoint_c, int sg_mode);
void boiler_step(struct boiler *b, int64_t now_ms, int64_t dt_ms);
/* A device reboot: IDLE and started, fault cleared, commands back to their defaults. */
void boiler_reboot(struct boiler *b, int64_t now_ms);

#endif
