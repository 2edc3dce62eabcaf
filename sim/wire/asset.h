/* asset: one simulated device at run time: its model state, its register image, and the fault
 * state that the scenario's events set (read by the Modbus server and by the site's step).
 * Owned by its site (site.c). */
#ifndef DERLOOP_ASSET_H
#define DERLOOP_ASSET_H

#include <stdint.h>

#include "sim/wire/regimage.h"
#include "sim/scenario/scenario.h"

/* What the wire shows of a device, set by fault events, read by mbserver at every request. */
enum wire_mode { WIRE_OK, WIRE_TIMEOUT, WIRE_EXCEPTION, WIRE_SLOW, WIRE_OFFLINE };

struct wirefault {
    enum wire_mode mode;
    int code;         /* WIRE_EXCEPTION */
    int64_t delay_ms; /* WIRE_SLOW */
};

struct sim_asset {
    const struct asset_cfg *cfg; /* not owned: the scenario outlives its sites */
    enum asset_type type;
    union {
        struct battery battery;
        struct pv pv;
        struct meter meter;
        struct load load;
        struct evse evse;
        struct boiler boiler;
    } m;
    struct regimage *img; /* owned (regmap_attach / regmap_detach); NULL for ASSET_LOAD
                             unless it has a load meter map */
    void *map_state;      /* owned by regmap */
    struct wirefault wire;
    int frozen; /* FAULT_FROZEN: regmap_publish is skipped */
    int spike;  /* FAULT_SPIKE active */
    char spike_point[32];
    double spike_value;
};

#endif
