/* procimg: the process image, the site as one control cycle sees it. The cycle's reader fills
 * it (values already scaled, in the site sign convention of docs/physics.md) and marks every
 * device online/stale; the control core (strategy, arbiter, safety) only reads it. A plain
 * value struct with fixed capacity: whoever declares it owns it, nothing inside is allocated. */
#ifndef DERLOOP_PROCIMG_H
#define DERLOOP_PROCIMG_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "common/devtype.h"

#define PROCIMG_MAX_DEVICES 32
#define PROCIMG_ID_LEN      48

/* The device types of common/devtype.h (PROCIMG_BATTERY, ...), except that a meter shows in
 * its role: PROCIMG_METER is the grid meter (PROCIMG_METER_GRID), a load-role meter is
 * PROCIMG_METER_LOAD. */
/* (clang-format would take the list and the next enumerator for one expression) */
/* clang-format off */
enum procimg_type {
#define PROCIMG_TYPE_(NAME, name, proto, driver) PROCIMG_##NAME,
    DEVTYPE_LIST(PROCIMG_TYPE_)
#undef PROCIMG_TYPE_
    PROCIMG_METER_LOAD,
    PROCIMG_METER_GRID = PROCIMG_METER,
};
/* clang-format on */

/* One device. Fields that do not apply to its type are ignored; a value the device does not
 * report is NaN (the interlocks say, per field, what NaN means). */
struct procimg_dev {
    char asset_id[PROCIMG_ID_LEN];
    enum procimg_type type;
    uint8_t online;     /* the last poll succeeded (transport and device answered) */
    uint8_t stale;      /* now_ms - last_ok_ms exceeded the reader's stale limit */
    int64_t last_ok_ms; /* when its data was last read successfully */

    /* Measured power, site signs: battery + discharge, pv + production, load/evse/boiler +
     * consumption, grid meter + import. */
    double power_w;
    double rated_w; /* nameplate (pv, evse, boiler): the bound of their setpoints; NaN unknown */

    /* battery */
    double soc;              /* state of charge, 0..1 (readings outside are possible) */
    double soc_min, soc_max; /* the device's own SoC window, 0..1; NaN when not reported */
    double capacity_wh;      /* usable energy; the weight of the site split; NaN unknown */
    double temperature_c;    /* NaN: the device has no temperature reading */
    double voltage_v;        /* battery (DC) voltage for current limits; NaN unknown */
    double max_charge_w;     /* device-reported limits, >= 0; NaN when not reported */
    double max_discharge_w;
    /* The interlocks' static envelope this cycle (safety_limits: SoC window, temperature,
     * ratings; not ramp or grid limits), W, lo <= 0 <= hi. The controller sets it before the
     * strategies run, so they never ask for what safety will refuse; has_envelope 0: unknown
     * (no limit assumed), as in unit tests that build an image by hand. */
    uint8_t has_envelope;
    double envelope_lo_w, envelope_hi_w;

    /* pv */
    double pv_available_w; /* what the array could produce now */
    double pv_limit_w;     /* the active curtailment limit */

    /* grid meter (SunSpec 203) */
    double freq_hz;   /* measured frequency; NaN when not reported */
    uint8_t islanded; /* the meter reports a power failure on the grid side (203 Evt bit 2) */

    /* evse */
    int evse_state; /* driver-defined state code (e.g. IEC 61851 A..F as 0..5) */
    double evse_current_a;
    double evse_min_a, evse_max_a; /* the charger's current range; NaN unknown */
    int evse_phases;               /* phases it charges on (0 unknown) */
    double evse_session_wh;        /* energy delivered in the session */
    double evse_need_wh;           /* energy the car still wants (0 without a car) */

    /* boiler */
    int boiler_state; /* driver-defined state code */
    double boiler_temperature_c;
    int boiler_heat_demand; /* its thermostat wants heat (1), or not (0); -1 unknown */

    /* The operating state (enum procimg_opstate) as the driver read it: 701 InvSt for the
     * SunSpec inverters, the maps' OpState/State; -1 unknown (meters have none). */
    int op_state;

    /* The device's Modbus statistics (gateway/bus/bus.h bus_unit_stats, cumulative since the
     * bus opened) and its breaker state ("closed", "open", "half_open"; "" unknown), copied
     * after each poll: reported in telemetry for the headend's error-rate alert; no strategy
     * or interlock reads them. */
    uint64_t bus_requests, bus_errors, bus_timeouts;
    char breaker[12];

    /* What the cycle last wrote to this device (the ramp limit is measured from it). */
    uint8_t has_prev_setpoint;
    double prev_setpoint_w;
    int64_t prev_setpoint_ms;
};

/* Site inputs that are configuration, not measurements (calendar, tariffs, EV departures):
 * gateway/control/sitectx.h. Owned by the site configuration; NULL when the cycle has none. */
struct sitectx;

struct procimg {
    int64_t now_ms;
    const struct sitectx *ctx;
    size_t n_devices; /* devices in configuration order; indexes are stable within a run */
    struct procimg_dev dev[PROCIMG_MAX_DEVICES];
    double grid_w;   /* the grid meter's power, + import */
    uint8_t grid_ok; /* a grid meter is online and fresh, so grid_w can be trusted */
};

/* A device's data may be used for control: online and not stale. */
static inline int procimg_dev_usable(const struct procimg_dev *d)
{
    return d->online && !d->stale;
}

/* EVSE states as devmap.c decodes them (IEC 61851 letter - 'A'). */
enum {
    PROCIMG_EVSE_A = 0,
    PROCIMG_EVSE_B,
    PROCIMG_EVSE_C,
    PROCIMG_EVSE_D,
    PROCIMG_EVSE_E,
    PROCIMG_EVSE_F
};
/* Operating states of a device (docs/physics.md, "Operating states"; the values of the derloop
 * maps' OpState and State points). */
enum procimg_opstate {
    PROCIMG_OP_IDLE = 0,
    PROCIMG_OP_STARTING,
    PROCIMG_OP_RUNNING,
    PROCIMG_OP_STOPPING,
    PROCIMG_OP_FAULT
};

/* "IDLE" .. "FAULT", or "" when unknown (-1, or out of range). */
static inline const char *procimg_opstate_name(int s)
{
    static const char *const names[] = {"IDLE", "STARTING", "RUNNING", "STOPPING", "FAULT"};
    return s >= 0 && s <= PROCIMG_OP_FAULT ? names[s] : "";
}

/* Boiler states of the derloop map (docs/registers.md). */
enum {
    PROCIMG_BOILER_IDLE = 0,
    PROCIMG_BOILER_STARTING,
    PROCIMG_BOILER_RUNNING,
    PROCIMG_BOILER_STOPPING,
    PROCIMG_BOILER_FAULT
};

/* The usable grid meter, or NULL. */
static inline const struct procimg_dev *procimg_grid_meter(const struct procimg *img)
{
    for (size_t i = 0; i < img->n_devices; i++)
        if (img->dev[i].type == PROCIMG_METER_GRID && procimg_dev_usable(&img->dev[i]))
            return &img->dev[i];
    return NULL;
}

/* Sum of the measured power of the usable devices of one type (NaN readings skipped). */
static inline double procimg_sum_w(const struct procimg *img, enum procimg_type t)
{
    double sum = 0;
    for (size_t i = 0; i < img->n_devices; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (d->type == t && procimg_dev_usable(d) && isfinite(d->power_w))
            sum += d->power_w;
    }
    return sum;
}

/* The sum of the usable batteries' envelopes (W, lo <= 0 <= hi): what the site's batteries
 * may do this cycle; -inf / +inf when a battery's envelope is unknown. */
static inline void procimg_battery_envelope(const struct procimg *img, double *lo_w, double *hi_w)
{
    double lo = 0, hi = 0;
    for (size_t i = 0; i < img->n_devices; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (d->type != PROCIMG_BATTERY || !procimg_dev_usable(d))
            continue;
        lo += d->has_envelope ? d->envelope_lo_w : -INFINITY;
        hi += d->has_envelope ? d->envelope_hi_w : INFINITY;
    }
    *lo_w = lo;
    *hi_w = hi;
}

/* Usable energy of the usable batteries (Wh, unknown capacities count 0). */
static inline double procimg_capacity_wh(const struct procimg *img)
{
    double sum = 0;
    for (size_t i = 0; i < img->n_devices; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (d->type == PROCIMG_BATTERY && procimg_dev_usable(d) && d->capacity_wh > 0)
            sum += d->capacity_wh;
    }
    return sum;
}

/* Capacity-weighted mean SoC of the usable batteries with a plausible reading (equal weights
 * when a capacity is unknown); NaN when there is none. Strategies use it for their SoC goals;
 * the interlocks always look at each battery's own SoC. */
static inline double procimg_site_soc(const struct procimg *img)
{
    double sum = 0, wsum = 0;
    int all_weighted = 1;
    for (size_t i = 0; i < img->n_devices; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (d->type == PROCIMG_BATTERY && procimg_dev_usable(d) && d->soc >= 0 && d->soc <= 1)
            all_weighted &= d->capacity_wh > 0;
    }
    for (size_t i = 0; i < img->n_devices; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (d->type != PROCIMG_BATTERY || !procimg_dev_usable(d) || !(d->soc >= 0 && d->soc <= 1))
            continue;
        double w = all_weighted ? d->capacity_wh : 1.0;
        sum += w * d->soc;
        wsum += w;
    }
    return wsum > 0 ? sum / wsum : NAN;
}

#endif
