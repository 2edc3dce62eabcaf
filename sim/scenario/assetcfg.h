/* assetcfg: one asset of a scenario site as the file describes it: its id, type, Modbus unit id
 * and the parameters of its device model (sim/physics/). Plain data, filled and validated by the
 * scenario loader (assetcfg.c reads the per-type parameter tables); owned by its site_cfg.
 * Identifiers in a scenario match [A-Za-z0-9._-]+ and are shorter than SCN_ID_MAX. */
#ifndef DERLOOP_ASSETCFG_H
#define DERLOOP_ASSETCFG_H

#include "common/devtype.h"
#include "sim/physics/battery.h"
#include "sim/physics/boiler.h"
#include "sim/physics/evse.h"
#include "sim/physics/load.h"
#include "sim/physics/meter.h"
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

#endif
