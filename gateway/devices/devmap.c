/* devmap: see devmap.h. The maps themselves are data (gateway/devices/maps/NAME.json, compiled into
 * devmap_maps.c); what is code here is what a driver makes of them: which process-image fields a
 * map's points fill, and which registers carry a setpoint. The simulator's images
 * (sim/wire/regmap_evse.c, regmap_boiler.c) are built from the same tables, and the lockstep
 * runner checks that the gateway's view of every register equals the simulator's. */
#include "gateway/devices/devmap.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "devmap_maps.h"

#define EVSE_VOLTAGE_V 230.0 /* per phase, the nominal low-voltage supply (IEC 60038) */

size_t devmap_count(void)
{
    return DEVMAP_N_MAPS;
}

const struct devmap *devmap_at(size_t i)
{
    return i < DEVMAP_N_MAPS ? &devmap_maps[i] : NULL;
}

const struct devmap *devmap_find(const char *driver)
{
    for (size_t i = 0; i < DEVMAP_N_MAPS; i++)
        if (!strcmp(devmap_maps[i].driver, driver))
            return &devmap_maps[i];
    return NULL;
}

const struct sunspec_point *devmap_point(const struct devmap *m, const char *name)
{
    for (size_t i = 0; i < m->n_points; i++)
        if (!strcmp(m->points[i].name, name))
            return &m->points[i];
    return NULL;
}

/* raw x 10^sf, multiplying by 10^-n where sunspec_scale divides by 10^n: the two differ in the
 * last bit (553 x 0.1 is 55.300000000000004, 553 / 10 is 55.3), and the gateway's decisions
 * have been made with this one (a boiler's tank temperature; scenarios/boiler-pv.json's digest
 * changes with the other). */
double devmap_get(const struct sunspec_point *p, const uint16_t *regs)
{
    int64_t raw = 0;
    int sf = 0;
    /* -ENODATA still sets raw: these maps have no "not implemented" values of their own */
    sunspec_read_raw(p, regs, &raw);
    sunspec_point_sf(NULL, p, regs, &sf);
    double f = 1;
    for (int i = 0; i < (sf < 0 ? -sf : sf); i++)
        f *= 10;
    return (double)raw * (sf < 0 ? 1 / f : f);
}

int devmap_set(const struct sunspec_point *p, uint16_t *regs, double v)
{
    int64_t raw;
    int sf = 0;
    sunspec_point_sf(NULL, p, regs, &sf);
    if (sunspec_unscale(v, sf, p->type, &raw))
        return -ERANGE;
    return sunspec_write_raw(p, regs, raw);
}

static void evse_decode(const struct devmap *m, const uint16_t *regs, struct procimg_dev *o)
{
    const struct sunspec_point *e = m->points;
    int letter = (int)devmap_get(&e[DM_EVSE_State], regs);
    double phases = devmap_get(&e[DM_EVSE_Phases], regs);
    o->power_w = devmap_get(&e[DM_EVSE_Power], regs);
    o->evse_state = letter >= 'A' && letter <= 'F' ? letter - 'A' : -1;
    o->evse_current_a = devmap_get(&e[DM_EVSE_Current], regs);
    o->evse_min_a = devmap_get(&e[DM_EVSE_MinCurrent], regs);
    o->evse_max_a = devmap_get(&e[DM_EVSE_MaxCurrent], regs);
    o->rated_w = o->evse_max_a * EVSE_VOLTAGE_V * (phases > 0 ? phases : 1);
    o->evse_phases = phases == 1 || phases == 3 ? (int)phases : 0;
    o->evse_session_wh = devmap_get(&e[DM_EVSE_SessionEnergy], regs);
    o->evse_need_wh = devmap_get(&e[DM_EVSE_SessionNeedRemaining], regs);
    o->op_state = (int)devmap_get(&e[DM_EVSE_OpState], regs);
}

static void boiler_decode(const struct devmap *m, const uint16_t *regs, struct procimg_dev *o)
{
    const struct sunspec_point *b = m->points;
    o->power_w = devmap_get(&b[DM_BOILER_Power], regs);
    o->boiler_state = (int)devmap_get(&b[DM_BOILER_State], regs);
    o->op_state = o->boiler_state;
    o->boiler_temperature_c = devmap_get(&b[DM_BOILER_TankTemp], regs);
    o->rated_w = devmap_get(&b[DM_BOILER_RatedPower], regs);
    o->boiler_heat_demand = (int)devmap_get(&b[DM_BOILER_HeatDemand], regs) != 0;
}

/* W over 230 V x phases in whole amps; below the minimum the charger can only pause
 * (IEC 61851). Writes CurrentLimit and Enable, adjacent in the map. */
static int evse_setpoint(const struct devmap *m, const struct device_cfg *cfg, double w,
                         uint16_t *img)
{
    double phases = cfg->phases > 0 ? cfg->phases : 3;
    double min_a = cfg->min_current_a > 0 ? cfg->min_current_a : 6;
    double max_a = cfg->max_current_a > 0 ? cfg->max_current_a : 16;
    double amps = isnan(w) ? max_a : floor(w / (EVSE_VOLTAGE_V * phases) + 1e-9);
    if (amps < min_a)
        amps = 0;
    if (amps > max_a)
        amps = max_a;
    if (devmap_set(&m->points[DM_EVSE_CurrentLimit], img, amps) ||
        devmap_set(&m->points[DM_EVSE_Enable], img, 1))
        return -ERANGE;
    return 0;
}

static int boiler_setpoint(const struct devmap *m, const struct device_cfg *cfg, double w,
                           uint16_t *img)
{
    double rated = cfg->rated_w > 0 ? cfg->rated_w : 65534;
    double v = isnan(w) ? rated : w < 0 ? 0 : w > rated ? rated : w;
    return devmap_set(&m->points[DM_BOILER_PowerLimit], img, v) ? -ERANGE : 0;
}

/* What the gateway does with each map: the process-image fields it fills, and the setpoint's
 * registers [first, first + n). Indexed by enum devmap_index. */
static const struct driver {
    void (*decode)(const struct devmap *m, const uint16_t *regs, struct procimg_dev *o);
    int (*setpoint)(const struct devmap *m, const struct device_cfg *cfg, double w, uint16_t *img);
    int first, n;
} drivers[DEVMAP_N_MAPS] = {
    [DEVMAP_EVSE] = {evse_decode, evse_setpoint, DM_EVSE_CurrentLimit, 2},
    [DEVMAP_BOILER] = {boiler_decode, boiler_setpoint, DM_BOILER_PowerLimit, 1},
};

int devmap_decode(const struct devmap *m, const uint16_t *regs, size_t n,
                  const struct device_cfg *cfg, struct procimg_dev *o)
{
    if (n < m->count || regs[0] != m->map_id)
        return -EPROTO;
    (void)cfg;
    drivers[m - devmap_maps].decode(m, regs, o);
    return 0;
}

int devmap_encode_setpoint(const struct devmap *m, const struct device_cfg *cfg, double w,
                           uint16_t *addr, uint16_t *n, uint16_t *regs)
{
    const struct driver *d = &drivers[m - devmap_maps];
    uint16_t img[64] = {0};
    if (m->count > 64)
        return -ERANGE;
    int rc = d->setpoint(m, cfg, w, img);
    if (rc)
        return rc;
    const struct sunspec_point *first = &m->points[d->first];
    const struct sunspec_point *last = &m->points[d->first + d->n - 1];
    *addr = first->offset;
    *n = (uint16_t)(last->offset + last->size - first->offset);
    memcpy(regs, img + *addr, *n * sizeof *regs);
    return 0;
}
