/* scenario: one experiment loaded from a JSON file (docs/scenario-format.md): clock, seed,
 * profiles, sites with their assets, the gateway section, timed events and expectations.
 * scenario_load validates everything and names the file, JSON path and bad value on error.
 * The caller owns the returned scenario and frees it with scenario_free. */
#ifndef DERLOOP_SCENARIO_H
#define DERLOOP_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/devtype.h"
#include "sim/physics/battery.h"
#include "sim/physics/boiler.h"
#include "sim/physics/evse.h"
#include "sim/physics/load.h"
#include "sim/physics/meter.h"
#include "sim/physics/profile.h"
#include "sim/physics/pv.h"

#define SCN_ID_MAX 64

/* The device types of common/devtype.h (ASSET_BATTERY, ...), then the load: a consumption
 * model, no device (a load-role meter measures it). */
/* (clang-format would take the list and the next enumerator for one expression) */
/* clang-format off */
enum asset_type {
#define ASSET_TYPE_(NAME, name, proto, driver) ASSET_##NAME,
    DEVTYPE_LIST(ASSET_TYPE_)
#undef ASSET_TYPE_
    ASSET_LOAD
};
/* clang-format on */

const char *asset_type_name(enum asset_type t); /* "battery", "pv", "meter", ... */

struct asset_cfg {
    char id[SCN_ID_MAX];
    enum asset_type type;
    int unit_id; /* Modbus unit id, 1-247; default: 1 + index in the site */
    union {
        struct battery_params battery;
        struct pv_params pv;
        struct meter_params meter;
        struct load_params load;
        struct evse_params evse;
        struct boiler_params boiler;
    } u;
};

struct site_cfg {
    char id[SCN_ID_MAX]; /* replicas: "<id>-<k>" with k from 1, zero-padded to the width of N */
    char base_id[SCN_ID_MAX]; /* the id in the file */
    int replica;              /* 0-based */
    int port;                 /* 0 = the server picks (port_base + site index when given) */
    uint64_t seed;            /* derived: rng_derive_seed(scenario seed, site id) */
    const struct profile *import_price, *export_price; /* optional, not owned */
    size_t n_assets;
    struct asset_cfg *assets; /* file order */
};

enum event_type {
    EVENT_FAULT,       /* a device or wire fault on one asset for a duration */
    EVENT_DISPATCH,    /* an operator dispatch (through the headend when the scenario has one) */
    EVENT_GRID_OUTAGE, /* the site's grid connection fails for a duration: the site islands */
};

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
};

struct scenario {
    char path[512];
    char name[SCN_ID_MAX];
    char description[256];
    char sha256[65]; /* of the file as read (before overrides), hex */
    uint64_t seed;
    int64_t start_unix_ms;
    int64_t duration_ms, step_ms; /* duration a multiple of step */
    size_t n_profiles;
    struct profile *profiles;
    size_t n_sites; /* after replication */
    struct site_cfg *sites;
    size_t n_events;
    struct event *events; /* faults only, sorted by (at_ms, seq) */
    size_t n_dispatches;
    struct event *dispatches; /* EVENT_DISPATCH events, sorted by (at_ms, seq) */
    size_t n_outages;
    struct event *outages; /* EVENT_GRID_OUTAGE events, sorted by (at_ms, seq); site_id and
                              duration_ms (> 0) only; never two of one site overlapping */
    cJSON *headend;        /* the "headend" object (the real headend in the loop); NULL */
    cJSON *gateway;        /* the "gateway" object as written (validated by the gateway) */
    cJSON *expect;         /* the "expect" object as written */
    cJSON *root;           /* the whole document after --set overrides */
};

/* Loads and validates `path`. overrides: "json.path=value" strings applied to the document
 * before validation (value parsed as JSON, else taken as a string), e.g.
 * "sites[0].assets[1].peak_kw=8". On error returns -EINVAL (or -ENOENT, -ENOMEM) and writes
 * "FILE: JSON.PATH: message, got VALUE" into err. */
int scenario_load(const char *path, const char *const *overrides, size_t n_overrides,
                  struct scenario **out, char *err, size_t errlen);
void scenario_free(struct scenario *s);

const struct profile *scenario_profile(const struct scenario *s, const char *name);

#endif
