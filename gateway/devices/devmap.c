/* devmap: see devmap.h. The addresses are the contract of docs/registers.md, which the
 * simulator's register images (sim/wire/regmap.c) serve; the lockstep runner's check that the
 * gateway's view of every register equals the simulator's catches any drift. */
#include "gateway/devices/devmap.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define EVSE_VOLTAGE_V 230.0 /* per phase, the nominal low-voltage supply (IEC 60038) */

/* Point indexes, so the per-poll decoding needs no name lookups. */
enum evse_pt {
    EV_MAP_ID,
    EV_MAP_VERSION,
    EV_STATE,
    EV_PHASES,
    EV_MIN_CURRENT,
    EV_MAX_CURRENT,
    EV_CURRENT_LIMIT,
    EV_ENABLE,
    EV_ACTIVE_LIMIT,
    EV_POWER,
    EV_CURRENT,
    EV_SESSION_ENERGY,
    EV_TOTAL_ENERGY,
    EV_NEED,
    EV_FAULT,
    EV_FS_TIMEOUT,
    EV_FS_CURRENT,
    EV_N
};
enum boiler_pt {
    BO_MAP_ID,
    BO_MAP_VERSION,
    BO_STATE,
    BO_TANK_TEMP,
    BO_TEMP_SETPOINT,
    BO_POWER,
    BO_POWER_LIMIT,
    BO_SG_MODE,
    BO_COMMAND,
    BO_FAULT,
    BO_TEMP_MAX,
    BO_RATED,
    BO_ENERGY,
    BO_HEAT_DEMAND,
    BO_N
};

static const struct devmap_point evse_points[EV_N] = {
    [EV_MAP_ID] = {"MapId", 0, DM_U16, 0, 0},
    [EV_MAP_VERSION] = {"MapVersion", 1, DM_U16, 0, 0},
    [EV_STATE] = {"State", 2, DM_U16, 0, 0},
    [EV_PHASES] = {"Phases", 3, DM_U16, 0, 0},
    [EV_MIN_CURRENT] = {"MinCurrent", 4, DM_U16, -1, 0},
    [EV_MAX_CURRENT] = {"MaxCurrent", 5, DM_U16, -1, 0},
    [EV_CURRENT_LIMIT] = {"CurrentLimit", 6, DM_U16, -1, 1},
    [EV_ENABLE] = {"Enable", 7, DM_U16, 0, 1},
    [EV_ACTIVE_LIMIT] = {"ActiveCurrentLimit", 8, DM_U16, -1, 0},
    [EV_POWER] = {"Power", 9, DM_I32, 0, 0},
    [EV_CURRENT] = {"Current", 11, DM_U16, -1, 0},
    [EV_SESSION_ENERGY] = {"SessionEnergy", 12, DM_U32, 0, 0},
    [EV_TOTAL_ENERGY] = {"TotalEnergy", 14, DM_U32, 0, 0},
    [EV_NEED] = {"SessionNeedRemaining", 16, DM_U32, 0, 0},
    [EV_FAULT] = {"FaultCode", 18, DM_U16, 0, 0},
    [EV_FS_TIMEOUT] = {"FailsafeTimeout", 19, DM_U16, 0, 1},
    [EV_FS_CURRENT] = {"FailsafeCurrent", 20, DM_U16, -1, 1},
};

static const struct devmap_point boiler_points[BO_N] = {
    [BO_MAP_ID] = {"MapId", 0, DM_U16, 0, 0},
    [BO_MAP_VERSION] = {"MapVersion", 1, DM_U16, 0, 0},
    [BO_STATE] = {"State", 2, DM_U16, 0, 0},
    [BO_TANK_TEMP] = {"TankTemp", 3, DM_I16, -1, 0},
    [BO_TEMP_SETPOINT] = {"TempSetpoint", 4, DM_I16, -1, 1},
    [BO_POWER] = {"Power", 5, DM_U16, 0, 0},
    [BO_POWER_LIMIT] = {"PowerLimit", 6, DM_U16, 0, 1},
    [BO_SG_MODE] = {"SgReadyMode", 7, DM_U16, 0, 1},
    [BO_COMMAND] = {"Command", 8, DM_U16, 0, 1},
    [BO_FAULT] = {"FaultCode", 9, DM_U16, 0, 0},
    [BO_TEMP_MAX] = {"TempMax", 10, DM_I16, -1, 0},
    [BO_RATED] = {"RatedPower", 11, DM_U16, 0, 0},
    [BO_ENERGY] = {"Energy", 12, DM_U32, 0, 0},
    [BO_HEAT_DEMAND] = {"HeatDemand", 14, DM_U16, 0, 0},
};

static const struct devmap maps[] = {
    {"derloop-evse", 0x4556, 21, sizeof evse_points / sizeof evse_points[0], evse_points},
    {"derloop-boiler", 0x424F, 15, sizeof boiler_points / sizeof boiler_points[0], boiler_points},
};

const struct devmap *devmap_find(const char *driver)
{
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
        if (!strcmp(maps[i].driver, driver))
            return &maps[i];
    return NULL;
}

const struct devmap_point *devmap_point(const struct devmap *m, const char *name)
{
    for (size_t i = 0; i < m->n_points; i++)
        if (!strcmp(m->points[i].name, name))
            return &m->points[i];
    return NULL;
}

static double pow10i(int e)
{
    double f = 1;
    for (int i = 0; i < (e < 0 ? -e : e); i++)
        f *= 10;
    return e < 0 ? 1 / f : f;
}

double devmap_get(const struct devmap_point *p, const uint16_t *regs)
{
    const uint16_t *r = regs + p->addr;
    double raw;
    switch (p->type) {
    case DM_U16:
        raw = r[0];
        break;
    case DM_I16:
        raw = (int16_t)r[0];
        break;
    case DM_U32:
        raw = (double)((uint32_t)r[0] << 16 | r[1]);
        break;
    default:
        raw = (double)(int32_t)((uint32_t)r[0] << 16 | r[1]);
        break;
    }
    return raw * pow10i(p->sf);
}

int devmap_set(const struct devmap_point *p, uint16_t *regs, double v)
{
    double raw = round(v / pow10i(p->sf));
    static const double lo[] = {0, -32768, 0, -2147483648.0};
    static const double hi[] = {65535, 32767, 4294967295.0, 2147483647.0};
    if (!isfinite(raw) || raw < lo[p->type] || raw > hi[p->type])
        return -ERANGE;
    uint32_t u = (uint32_t)(int64_t)raw;
    if (p->type == DM_U16 || p->type == DM_I16) {
        regs[p->addr] = (uint16_t)u;
    } else {
        regs[p->addr] = (uint16_t)(u >> 16);
        regs[p->addr + 1] = (uint16_t)u;
    }
    return 0;
}

int devmap_decode(const struct devmap *m, const uint16_t *regs, size_t n,
                  const struct device_cfg *cfg, struct procimg_dev *o)
{
    if (n < m->count || regs[0] != m->map_id)
        return -EPROTO;
    if (m->points == evse_points) {
        const struct devmap_point *e = evse_points;
        int letter = (int)devmap_get(&e[EV_STATE], regs);
        double phases = devmap_get(&e[EV_PHASES], regs);
        o->power_w = devmap_get(&e[EV_POWER], regs);
        o->evse_state = letter >= 'A' && letter <= 'F' ? letter - 'A' : -1;
        o->evse_current_a = devmap_get(&e[EV_CURRENT], regs);
        o->evse_min_a = devmap_get(&e[EV_MIN_CURRENT], regs);
        o->evse_max_a = devmap_get(&e[EV_MAX_CURRENT], regs);
        o->rated_w = o->evse_max_a * EVSE_VOLTAGE_V * (phases > 0 ? phases : 1);
        o->evse_phases = phases == 1 || phases == 3 ? (int)phases : 0;
        o->evse_session_wh = devmap_get(&e[EV_SESSION_ENERGY], regs);
        o->evse_need_wh = devmap_get(&e[EV_NEED], regs);
    } else {
        const struct devmap_point *b = boiler_points;
        o->power_w = devmap_get(&b[BO_POWER], regs);
        o->boiler_state = (int)devmap_get(&b[BO_STATE], regs);
        o->boiler_temperature_c = devmap_get(&b[BO_TANK_TEMP], regs);
        o->rated_w = devmap_get(&b[BO_RATED], regs);
        o->boiler_heat_demand = (int)devmap_get(&b[BO_HEAT_DEMAND], regs) != 0;
    }
    (void)cfg;
    return 0;
}

int devmap_encode_setpoint(const struct devmap *m, const struct device_cfg *cfg, double w,
                           uint16_t *addr, uint16_t *n, uint16_t *regs)
{
    uint16_t img[32] = {0};
    if (!strcmp(m->driver, "derloop-evse")) {
        double phases = cfg->phases > 0 ? cfg->phases : 3;
        double min_a = cfg->min_current_a > 0 ? cfg->min_current_a : 6;
        double max_a = cfg->max_current_a > 0 ? cfg->max_current_a : 16;
        double amps = isnan(w) ? max_a : floor(w / (EVSE_VOLTAGE_V * phases) + 1e-9);
        if (amps < min_a)
            amps = 0; /* below the minimum the charger can only pause (IEC 61851) */
        if (amps > max_a)
            amps = max_a;
        const struct devmap_point *lim = devmap_point(m, "CurrentLimit");
        const struct devmap_point *ena = devmap_point(m, "Enable");
        if (devmap_set(lim, img, amps) || devmap_set(ena, img, 1))
            return -ERANGE;
        *addr = lim->addr;
        *n = 2;
        regs[0] = img[lim->addr];
        regs[1] = img[ena->addr];
        return 0;
    }
    const struct devmap_point *lim = devmap_point(m, "PowerLimit");
    double rated = cfg->rated_w > 0 ? cfg->rated_w : 65534;
    double v = isnan(w) ? rated : w < 0 ? 0 : w > rated ? rated : w;
    if (devmap_set(lim, img, v))
        return -ERANGE;
    *addr = lim->addr;
    *n = 1;
    regs[0] = img[lim->addr];
    return 0;
}
