/* regmap_boiler: the register map of an electric water heater: the derloop boiler map at
 * register 0 (gateway/devices/maps/boiler.json, the description the gateway's driver decodes
 * with), its values, write checks and the control code (power limit, thermostat setpoint,
 * SG-Ready mode, commands). Rows and hooks as sim/wire/regmap_map.h describes them. */
#include <errno.h>
#include <stdio.h>

#include "sim/wire/regmap_map.h"

/* Boiler */
static double v_bo_state(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.op.state;
}

static double v_bo_temp(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.temp_c;
}

static double v_bo_setpoint0(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.p.setpoint_c;
}

static double v_bo_power(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.power_w;
}

static double v_bo_rated(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.p.rated_w;
}

static double v_bo_fault(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.fault;
}

static double v_bo_tmax(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.p.temp_max_c;
}

static double v_bo_energy(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.energy_wh;
}

static double v_bo_demand(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.heat_demand;
}

static int ck_bo_setpoint(const struct sim_asset *a, const struct regmap_state *st,
                          const uint16_t *scratch, double v)
{
    (void)st, (void)scratch;
    return v < 20.0 || v > a->m.boiler.p.temp_max_c - 5.0 ? 3 : 0;
}

static int ck_bo_limit(const struct sim_asset *a, const struct regmap_state *st,
                       const uint16_t *scratch, double v)
{
    (void)st, (void)scratch;
    return v < 0.0 || v > a->m.boiler.p.rated_w ? 3 : 0;
}

static void boiler_controls(struct sim_asset *a, struct regmap_state *st, int64_t now_ms)
{
    struct boiler *b = &a->m.boiler;
    double limit = regmap_slot_or(a, st, SLOT_BO_LIMIT, b->p.rated_w);
    double setpoint = regmap_slot_or(a, st, SLOT_BO_SETPOINT, b->p.setpoint_c);
    int sg = (int)regmap_slot_or(a, st, SLOT_BO_SG, 2);
    if (limit != st->u.bo.limit_w || setpoint != st->u.bo.setpoint_c || sg != st->u.bo.sg) {
        boiler_set(b, limit, setpoint, sg);
        st->u.bo.limit_w = limit;
        st->u.bo.setpoint_c = setpoint;
        st->u.bo.sg = sg;
    }
    int cmd = (int)regmap_slot_or(a, st, SLOT_BO_CMD, 0);
    if (cmd >= BOILER_CMD_START && cmd <= BOILER_CMD_RESET) {
        boiler_command(b, now_ms, (enum opstate_cmd)cmd);
        regmap_slot_put(a, st, SLOT_BO_CMD, 0); /* executed: the register reads 0 again */
    }
}

static void boiler_reset_model(struct sim_asset *a, struct regmap_state *st)
{
    struct boiler *b = &a->m.boiler;
    boiler_set(b, b->p.rated_w, b->p.setpoint_c, 2);
    st->u.bo.limit_w = b->p.rated_w;
    st->u.bo.setpoint_c = b->p.setpoint_c;
    st->u.bo.sg = 2;
}

static void boiler_map_init(struct sim_asset *a, struct regmap_state *st)
{
    st->u.bo.limit_w = a->m.boiler.power_limit_w;
    st->u.bo.setpoint_c = a->m.boiler.setpoint_c;
    st->u.bo.sg = a->m.boiler.sg_mode;
}

/* PowerLimit and RatedPower are uint16 watts. */
static int boiler_check(const struct sim_asset *a, char *err, size_t errlen)
{
    if (a->m.boiler.p.rated_w <= 65534.0)
        return 0;
    snprintf(err, errlen, "asset %s: boiler rated_w %g above the map's 65534 W",
             a->cfg ? a->cfg->id : "?", a->m.boiler.p.rated_w);
    return -ERANGE;
}

static const struct row boiler_rows[] = {
    REGMAP_DEVMAP_HEAD_ROWS,
    {.point = "State", .kind = ROW_MEASURE, .get = v_bo_state},
    {.point = "TankTemp", .kind = ROW_MEASURE, .get = v_bo_temp},
    {.point = "TempSetpoint",
     .kind = ROW_CONTROL,
     .slot = SLOT_BO_SETPOINT,
     .get = v_bo_setpoint0,
     .check = ck_bo_setpoint},
    {.point = "Power", .kind = ROW_MEASURE, .get = v_bo_power},
    {.point = "PowerLimit",
     .kind = ROW_CONTROL,
     .slot = SLOT_BO_LIMIT,
     .get = v_bo_rated,
     .check = ck_bo_limit},
    {.point = "SgReadyMode", .kind = ROW_CONTROL, .slot = SLOT_BO_SG, .c = 2},
    {.point = "Command", .kind = ROW_CONTROL, .slot = SLOT_BO_CMD, .c = 0},
    {.point = "FaultCode", .kind = ROW_MEASURE, .get = v_bo_fault},
    {.point = "TempMax", .kind = ROW_STATIC, .get = v_bo_tmax},
    {.point = "RatedPower", .kind = ROW_STATIC, .get = v_bo_rated},
    {.point = "Energy", .kind = ROW_MEASURE, .get = v_bo_energy},
    {.point = "HeatDemand", .kind = ROW_MEASURE, .get = v_bo_demand},
};

const struct asset_map regmap_boiler_map = {
    .devmap = "derloop-boiler",
    .rows = boiler_rows,
    .n_rows = REGMAP_N(boiler_rows),
    .check = boiler_check,
    .init = boiler_map_init,
    .controls = boiler_controls,
    .reset = boiler_reset_model,
};
