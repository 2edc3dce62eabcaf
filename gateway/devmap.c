/* devmap: see devmap.h. The addresses are the contract of docs/registers.md, which the
 * simulator's register images (sim/regmap.c) serve; the lockstep runner's check that the
 * gateway's view of every register equals the simulator's catches any drift. */
#include "gateway/devmap.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define EVSE_VOLTAGE_V 230.0 /* per phase, the nominal low-voltage supply (IEC 60038) */

static const struct devmap_point evse_points[] = {
    {"MapId", 0, DM_U16, 0, 0},
    {"MapVersion", 1, DM_U16, 0, 0},
    {"State", 2, DM_U16, 0, 0},
    {"Phases", 3, DM_U16, 0, 0},
    {"MinCurrent", 4, DM_U16, -1, 0},
    {"MaxCurrent", 5, DM_U16, -1, 0},
    {"CurrentLimit", 6, DM_U16, -1, 1},
    {"Enable", 7, DM_U16, 0, 1},
    {"ActiveCurrentLimit", 8, DM_U16, -1, 0},
    {"Power", 9, DM_I32, 0, 0},
    {"Current", 11, DM_U16, -1, 0},
    {"SessionEnergy", 12, DM_U32, 0, 0},
    {"TotalEnergy", 14, DM_U32, 0, 0},
    {"SessionNeedRemaining", 16, DM_U32, 0, 0},
    {"FaultCode", 18, DM_U16, 0, 0},
    {"FailsafeTimeout", 19, DM_U16, 0, 1},
    {"FailsafeCurrent", 20, DM_U16, -1, 1},
};

static const struct devmap_point boiler_points[] = {
    {"MapId", 0, DM_U16, 0, 0},        {"MapVersion", 1, DM_U16, 0, 0},
    {"State", 2, DM_U16, 0, 0},        {"TankTemp", 3, DM_I16, -1, 0},
    {"TempSetpoint", 4, DM_I16, -1, 1}, {"Power", 5, DM_U16, 0, 0},
    {"PowerLimit", 6, DM_U16, 0, 1},   {"SgReadyMode", 7, DM_U16, 0, 1},
    {"Command", 8, DM_U16, 0, 1},      {"FaultCode", 9, DM_U16, 0, 0},
    {"TempMax", 10, DM_I16, -1, 0},    {"RatedPower", 11, DM_U16, 0, 0},
    {"Energy", 12, DM_U32, 0, 0},      {"HeatDemand", 14, DM_U16, 0, 0},
};

static const struct devmap maps[] = {
    {"derloop-evse", 0x4556, 21, sizeof evse_points / sizeof evse_points[0], evse_points},
    {"derloop-boiler", 0x424F, 15, sizeof boiler_points / sizeof boiler_points[0],
     boiler_points},
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

static double get(const struct devmap *m, const uint16_t *regs, const char *name)
{
    const struct devmap_point *p = devmap_point(m, name);
    return p ? devmap_get(p, regs) : NAN;
}

int devmap_decode(const struct devmap *m, const uint16_t *regs, size_t n,
                  const struct device_cfg *cfg, struct procimg_dev *o)
{
    if (n < m->count || regs[0] != m->map_id)
        return -EPROTO;
    o->power_w = get(m, regs, "Power");
    if (!strcmp(m->driver, "derloop-evse")) {
        int letter = (int)get(m, regs, "State");
        o->evse_state = letter >= 'A' && letter <= 'F' ? letter - 'A' : -1;
        o->evse_current_a = get(m, regs, "Current");
        double phases = get(m, regs, "Phases");
        o->rated_w = get(m, regs, "MaxCurrent") * EVSE_VOLTAGE_V * (phases > 0 ? phases : 1);
        o->evse_phases = phases == 1 || phases == 3 ? (int)phases : 0;
        o->evse_min_a = get(m, regs, "MinCurrent");
        o->evse_max_a = get(m, regs, "MaxCurrent");
        o->evse_session_wh = get(m, regs, "SessionEnergy");
        o->evse_need_wh = get(m, regs, "SessionNeedRemaining");
    } else {
        o->boiler_state = (int)get(m, regs, "State");
        o->boiler_temperature_c = get(m, regs, "TankTemp");
        o->rated_w = get(m, regs, "RatedPower");
        o->boiler_heat_demand = (int)get(m, regs, "HeatDemand") != 0;
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
