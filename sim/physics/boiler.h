/* boiler: an electric hot-water tank (site sign: + consumption). Tank temperature from heat
 * input, losses (UA) and a draw profile, integrated exactly between thermostat crossings; a
 * thermostat with hysteresis; IDLE -> STARTING -> RUNNING -> STOPPING -> IDLE and FAULT on
 * over-temperature or an injected fault, RESET back to IDLE. docs/physics.md. */
#ifndef DERLOOP_BOILER_H
#define DERLOOP_BOILER_H

#include <stdint.h>

#include "sim/physics/profile.h"

struct boiler_params {
    double rated_w;    /* heating element, > 0 */
    double volume_l;   /* > 0 */
    double ua_w_per_k; /* tank loss coefficient */
    double eta;        /* element efficiency (0, 1] */
    double temp_init_c, temp_ambient_c, temp_cold_c;
    double setpoint_c;   /* thermostat target (default, writable) */
    double hysteresis_k; /* heats again below setpoint - hysteresis */
    double temp_max_c;   /* over-temperature trip -> FAULT */
    double temp_min_c;   /* comfort minimum (reported, for KPIs) */
    int64_t start_delay_ms, stop_delay_ms;
    const struct profile *draw; /* hot water drawn, L/h; NULL = none; not owned */
};

enum boiler_state { BOILER_IDLE, BOILER_STARTING, BOILER_RUNNING, BOILER_STOPPING, BOILER_FAULT };
enum boiler_cmd { BOILER_CMD_NONE, BOILER_CMD_START, BOILER_CMD_STOP, BOILER_CMD_RESET };

struct boiler {
    struct boiler_params p;
    enum boiler_state state;
    double temp_c;
    double setpoint_c;    /* commanded */
    double power_limit_w; /* commanded, [0, rated_w] */
    int sg_mode;          /* SG-Ready 1 blocked, 2 normal, 3 encouraged, 4 forced */
    int fault;            /* 0 none, 1 over-temperature, 2 injected */
    int heat_demand;      /* thermostat output */
    double power_w;       /* during the last step */
    double energy_wh;
    int64_t state_since_ms;
};

void boiler_init(struct boiler *b, const struct boiler_params *p);
void boiler_command(struct boiler *b, int64_t now_ms, enum boiler_cmd cmd);
void boiler_set(struct boiler *b, double power_limit_w, double setpoint_c, int sg_mode);
void boiler_step(struct boiler *b, int64_t now_ms, int64_t dt_ms);
const char *boiler_state_name(enum boiler_state s);

#endif
