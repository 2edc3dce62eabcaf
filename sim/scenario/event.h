/* event: one timed event of a scenario (a fault on an asset, an operator dispatch, a grid
 * outage, a configuration push or an emergency stop for the gateway) as the loader validated it
 * (event.c). Plain data; the scenario owns its arrays. */
#ifndef DERLOOP_SCN_EVENT_H
#define DERLOOP_SCN_EVENT_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "sim/scenario/assetcfg.h" /* SCN_ID_MAX: events name sites and assets by id */

enum event_type {
    EVENT_FAULT,       /* a device or wire fault on one asset for a duration */
    EVENT_DISPATCH,    /* an operator dispatch (through the headend when the scenario has one) */
    EVENT_GRID_OUTAGE, /* the site's grid connection fails for a duration: the site islands */
    /* For the site's gateway, kept with the dispatches (scenario.dispatches): */
    EVENT_CONFIG,         /* a desired configuration pushed into the gateway (confsync.h) */
    EVENT_ESTOP,          /* the site's emergency stop engaged (estop.h) */
    EVENT_ESTOP_RELEASE,  /* and released */
    EVENT_COMMAND,        /* a per-asset command (start, stop, set_temperature...) */
    EVENT_HEADEND_OUTAGE, /* the headend in the loop is gone for a duration: streams cut */
    EVENT_HEADEND_FREEZE, /* the headend in the loop is stopped (SIGSTOP) for a duration */
};

/* The events the headend in the loop plays (sim/run/headend_loop.c), kept with the dispatches. */
static inline int event_is_headend(enum event_type t)
{
    return t == EVENT_HEADEND_OUTAGE || t == EVENT_HEADEND_FREEZE;
}

enum fault_kind {
    FAULT_TIMEOUT,   /* the device does not answer at all */
    FAULT_EXCEPTION, /* every request answered with exception `code` */
    FAULT_FROZEN,    /* the register image stops updating (values held) */
    FAULT_OFFLINE,   /* no answer, then a reboot at the end: controls reset to defaults */
    FAULT_SLOW,      /* replies delayed by delay_ms */
    FAULT_SPIKE,     /* a measurement point reads `value` (engineering units) */
    FAULT_DEVICE,    /* the device itself trips (battery/boiler FAULT state, EVSE state F) */
};

const char *fault_kind_name(enum fault_kind k);

struct event {
    int64_t at_ms, duration_ms; /* duration 0 = until the end of the run */
    int seq;                    /* position in the file: ties at the same instant keep it */
    enum event_type type;
    char site_id[SCN_ID_MAX]; /* base id: applies to every replica of that site */
    char asset_id[SCN_ID_MAX];
    enum fault_kind fault;
    int code;         /* FAULT_EXCEPTION: Modbus exception code 1-11 */
    int64_t delay_ms; /* FAULT_SLOW */
    char point[32];   /* FAULT_SPIKE: SunSpec point name or map point; "" = power */
    double value;     /* FAULT_SPIKE */
    /* EVENT_DISPATCH: asset_id "" = the whole site (split among its batteries) */
    double power_w; /* site signs ("mw" in the file is converted) */
    int64_t ttl_ms; /* a whole number of seconds, > 0 */
    /* EVENT_CONFIG: the "gateway" object (inside the scenario's root); EVENT_ESTOP: why */
    const cJSON *config;
    char reason[128];
    /* EVENT_COMMAND: asset_id, the command's name, value (W or degC; NaN when it takes none),
     * ttl_ms (its lifetime, whole seconds) */
    char command[32];
};

#endif
