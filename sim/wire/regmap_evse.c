/* regmap_evse: the register map of an AC charger: the derloop EVSE map at register 0
 * (gateway/devices/maps/evse.json, the description the gateway's driver decodes with), its
 * values, write checks and the control code (current limit, enable, failsafe timeout and
 * current, start/stop/reset commands). Rows and hooks as sim/wire/regmap_map.h describes them. */
#include <string.h>

#include "sim/wire/regmap_map.h"

/* EVSE */
static double v_ev_state(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return (unsigned char)a->m.evse.state;
}

static double v_ev_phases(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.p.phases;
}

static double v_ev_min(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.p.min_current_a;
}

static double v_ev_max(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.p.max_current_a;
}

static double v_ev_default(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.p.default_current_a;
}

/* The limit in effect: the commanded one, or the failsafe current once the controller has
 * been silent for longer than the failsafe timeout (evse.c applies the same rule). */
static double v_ev_active(const struct sim_asset *a, const struct regmap_state *st)
{
    const struct evse *e = &a->m.evse;
    if (!e->enabled || !opstate_running(&e->op))
        return 0.0;
    if (e->p.failsafe_ms > 0 && st->now_ms - e->last_command_ms > e->p.failsafe_ms)
        return e->p.failsafe_current_a;
    return e->current_limit_a;
}

static double v_ev_power(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.power_w;
}

static double v_ev_current(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.current_a;
}

static double v_ev_session_wh(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.session_energy_wh;
}

static double v_ev_total_wh(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.total_energy_wh;
}

static double v_ev_need_wh(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    const struct evse *e = &a->m.evse;
    if (e->session < 0 || !e->p.sessions || (size_t)e->session >= e->p.sessions->n_sessions)
        return 0.0;
    double need = e->p.sessions->sessions[e->session].energy_wh - e->session_energy_wh;
    return need > 0.0 ? need : 0.0;
}

static double v_ev_fault(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.fault;
}

static double v_ev_opstate(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.op.state;
}

static double v_ev_fs_s(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a;
    return st->u.ev.fs_ms0 / 1000.0;
}

static double v_ev_fs_a(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a;
    return st->u.ev.fs_a0;
}

/* 0 pauses; otherwise the current must lie in [min, max] (IEC 61851-1: below 6 A a car may
 * not charge at all, so a real charger refuses rather than rounding up). */
static int ck_ev_current(const struct sim_asset *a, const struct regmap_state *st,
                         const uint16_t *scratch, double v)
{
    (void)st, (void)scratch;
    const struct evse_params *p = &a->m.evse.p;
    if (v == 0.0)
        return 0;
    return v < p->min_current_a - 1e-9 || v > p->max_current_a + 1e-9 ? 3 : 0;
}

/* Every accepted write re-sends the command: the model's failsafe watchdog counts writes. */
static void evse_controls(struct sim_asset *a, struct regmap_state *st, int64_t now_ms)
{
    struct evse *e = &a->m.evse;
    double limit = regmap_slot_or(a, st, SLOT_EV_LIMIT, e->p.default_current_a);
    int enable = regmap_slot_or(a, st, SLOT_EV_ENABLE, 1) != 0.0;
    e->p.failsafe_ms = (int64_t)(regmap_slot_or(a, st, SLOT_EV_FS_TIMEOUT, 0) * 1000.0);
    e->p.failsafe_current_a = regmap_slot_or(a, st, SLOT_EV_FS_CURRENT, 0);
    st->u.ev.fs_ms_set = e->p.failsafe_ms;
    st->u.ev.fs_a_set = e->p.failsafe_current_a;
    if (limit != st->u.ev.limit_a || enable != st->u.ev.enable || regmap_any_changed(st)) {
        evse_command(e, now_ms, limit, enable);
        st->u.ev.limit_a = limit;
        st->u.ev.enable = enable;
    }
    int cmd = (int)regmap_slot_or(a, st, SLOT_EV_CMD, 0);
    if (cmd >= OPSTATE_CMD_START && cmd <= OPSTATE_CMD_RESET) {
        evse_opcommand(e, now_ms, (enum opstate_cmd)cmd);
        regmap_slot_put(a, st, SLOT_EV_CMD, 0); /* executed: the register reads 0 again */
    }
}

static void evse_reset_model(struct sim_asset *a, struct regmap_state *st)
{
    struct evse *e = &a->m.evse;
    e->p.failsafe_ms = (int64_t)st->u.ev.fs_ms0;
    e->p.failsafe_current_a = st->u.ev.fs_a0;
    evse_reset(e);
    st->u.ev.limit_a = e->p.default_current_a;
    st->u.ev.enable = 1;
}

static void evse_map_init(struct sim_asset *a, struct regmap_state *st)
{
    st->u.ev.fs_ms0 = (double)a->m.evse.p.failsafe_ms;
    st->u.ev.fs_a0 = a->m.evse.p.failsafe_current_a;
    st->u.ev.limit_a = a->m.evse.p.default_current_a;
    st->u.ev.enable = 1;
}

/* The failsafe parameters are set by every control pass; the model must still hold what the
 * last one gave it for a skipped pass to leave it as a full one would. */
static int evse_as_left(const struct sim_asset *a, const struct regmap_state *st)
{
    const struct evse_params *p = &a->m.evse.p;
    return p->failsafe_ms == st->u.ev.fs_ms_set &&
           !memcmp(&p->failsafe_current_a, &st->u.ev.fs_a_set, sizeof st->u.ev.fs_a_set);
}

static const struct row evse_rows[] = {
    REGMAP_DEVMAP_HEAD_ROWS,
    {.point = "State", .kind = ROW_MEASURE, .get = v_ev_state},
    {.point = "Phases", .kind = ROW_STATIC, .get = v_ev_phases},
    {.point = "MinCurrent", .kind = ROW_STATIC, .get = v_ev_min},
    {.point = "MaxCurrent", .kind = ROW_STATIC, .get = v_ev_max},
    {.point = "CurrentLimit",
     .kind = ROW_CONTROL,
     .slot = SLOT_EV_LIMIT,
     .get = v_ev_default,
     .check = ck_ev_current},
    {.point = "Enable", .kind = ROW_CONTROL, .slot = SLOT_EV_ENABLE, .c = 1},
    {.point = "ActiveCurrentLimit", .kind = ROW_MEASURE, .get = v_ev_active},
    {.point = "Power", .kind = ROW_MEASURE, .get = v_ev_power},
    {.point = "Current", .kind = ROW_MEASURE, .get = v_ev_current},
    {.point = "SessionEnergy", .kind = ROW_MEASURE, .get = v_ev_session_wh},
    {.point = "TotalEnergy", .kind = ROW_MEASURE, .get = v_ev_total_wh},
    {.point = "SessionNeedRemaining", .kind = ROW_MEASURE, .get = v_ev_need_wh},
    {.point = "FaultCode", .kind = ROW_MEASURE, .get = v_ev_fault},
    {.point = "FailsafeTimeout",
     .kind = ROW_CONTROL,
     .slot = SLOT_EV_FS_TIMEOUT,
     .get = v_ev_fs_s,
     .min = 0,
     .max = 3600},
    {.point = "FailsafeCurrent",
     .kind = ROW_CONTROL,
     .slot = SLOT_EV_FS_CURRENT,
     .get = v_ev_fs_a,
     .check = ck_ev_current},
    {.point = "OpState", .kind = ROW_MEASURE, .get = v_ev_opstate},
    {.point = "Command", .kind = ROW_CONTROL, .slot = SLOT_EV_CMD, .c = 0},
};

const struct asset_map regmap_evse_map = {
    .devmap = "derloop-evse",
    .rows = evse_rows,
    .n_rows = REGMAP_N(evse_rows),
    .init = evse_map_init,
    .controls = evse_controls,
    .reset = evse_reset_model,
    .as_left = evse_as_left,
};
