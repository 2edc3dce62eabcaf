/* regmap_inverter: the register maps of the inverters, battery and PV: SunSpec images (common
 * model 1, DER models 701/702/704, storage 713 and battery 802 for the battery, immediate
 * controls 123 for PV), their values, the write checks and the control code that turns 704's
 * setpoints (WSet, WMaxLimPct, with reversion) into model commands, and the connect points
 * (802 SetOp, 123 Conn) into start and stop. The operating state (sim/physics/opstate.h) shows
 * in 701 InvSt, St and ConnSt and 802 State. Rows and hooks as sim/wire/regmap_map.h
 * describes them. */
#include <math.h>

#include "sim/wire/regmap_map.h"

/* Nominal AC values for the inverters, which have no grid model of their own: 230/400 V and
 * 50 Hz (EN 50160 nominal values of the European low-voltage grid). */
#define AC_LN_V   230.0
#define AC_LL_V   400.0
#define AC_HZ     50.0
#define AC_PHASES 3.0

/* ---- values published ---------------------------------------------------------------------- */

static double bat_rated_w(const struct sim_asset *a)
{
    const struct battery_params *p = &a->m.battery.p;
    return p->max_charge_w > p->max_discharge_w ? p->max_charge_w : p->max_discharge_w;
}

static double pv_rated_w(const struct sim_asset *a)
{
    return a->m.pv.p.ac_max_w > 0.0 ? a->m.pv.p.ac_max_w : a->m.pv.p.peak_w;
}

static double bat_dc_v(const struct sim_asset *a)
{
    return a->m.battery.p.voltage_v > 0.0 ? a->m.battery.p.voltage_v : 48.0;
}

/* Active power as the device shows it: battery + discharge, PV + production. */
static double v_ac_w(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->type == ASSET_BATTERY ? a->m.battery.power_w : a->m.pv.power_w;
}

static double v_ac_va(const struct sim_asset *a, const struct regmap_state *st)
{
    return fabs(v_ac_w(a, st));
}

static double v_ac_a(const struct sim_asset *a, const struct regmap_state *st)
{
    return fabs(v_ac_w(a, st)) / (AC_PHASES * AC_LN_V);
}

static double v_inj_wh(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->type == ASSET_BATTERY ? a->m.battery.discharged_wh : a->m.pv.energy_wh;
}

static double v_abs_wh(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->type == ASSET_BATTERY ? a->m.battery.charged_wh : 0.0;
}

static const struct opstate *asset_op(const struct sim_asset *a)
{
    return a->type == ASSET_BATTERY ? &a->m.battery.op : &a->m.pv.op;
}

/* 701 InvSt outside RUNNING (the gateway reads it back: gateway/devices/device.c). */
static const char *invst_not_running(const struct opstate *op)
{
    switch (op->state) {
    case OPSTATE_IDLE:
        return "OFF";
    case OPSTATE_STARTING:
        return "STARTING";
    case OPSTATE_STOPPING:
        return "SHUTTING_DOWN";
    default:
        return "FAULT";
    }
}

static int asset_faulted(const struct sim_asset *a)
{
    return a->type == ASSET_BATTERY ? a->m.battery.state == BATTERY_FAULT : a->m.pv.fault != 0;
}

static const char *s_st(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return asset_faulted(a) || asset_op(a)->state == OPSTATE_IDLE ? "OFF" : "ON";
}

static const char *s_conn(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return asset_faulted(a) || asset_op(a)->state == OPSTATE_IDLE ? "DISCONNECTED" : "CONNECTED";
}

static const char *s_three_phase(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a, (void)st;
    return "THREE_PHASE";
}

static const char *s_bat_invst(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    if (!opstate_running(&a->m.battery.op))
        return invst_not_running(&a->m.battery.op);
    switch (a->m.battery.state) {
    case BATTERY_RUNNING:
        return "RUNNING";
    case BATTERY_THROTTLED:
        return "THROTTLED";
    case BATTERY_FAULT:
        return "FAULT";
    default:
        return "STANDBY";
    }
}

static const char *s_pv_invst(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    const struct pv *v = &a->m.pv;
    if (!opstate_running(&v->op))
        return invst_not_running(&v->op);
    if (!(v->available_w > 0.0))
        return "SLEEPING";
    if (v->limit_pct < 100.0 && v->available_w > v->power_w + 1.0)
        return "THROTTLED";
    return "RUNNING";
}

/* 701 Alrm bit 7 OVER_TEMP for a temperature trip, bit 16 MANUFACTURER_ALRM otherwise. */
static double v_bat_alrm(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    const struct battery *b = &a->m.battery;
    if (b->state != BATTERY_FAULT)
        return 0;
    return b->temp_c >= b->p.temp_stop_c ? (1u << 7) : (1u << 16);
}

static double v_pv_alrm(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.pv.fault ? (1u << 16) : 0;
}

/* 802 Evt1 bit 1 OVER_TEMP_ALARM for a temperature trip, bit 25 OTHER_ALARM otherwise. */
static double v_bat_evt1(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    const struct battery *b = &a->m.battery;
    if (b->state != BATTERY_FAULT)
        return 0;
    return b->temp_c >= b->p.temp_stop_c ? (1u << 1) : (1u << 25);
}

static double v_bat_temp(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.temp_c;
}

static double v_bat_amb(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.p.temp_ambient_c;
}

static double v_pv_amb(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.pv.p.temp_ambient_c;
}

static double v_pv_cell(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.pv.cell_temp_c;
}

static double v_bat_rated(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return bat_rated_w(a);
}

static double v_bat_cha_rtg(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.p.max_charge_w;
}

static double v_bat_dis_rtg(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.p.max_discharge_w;
}

static double v_bat_amax_ac(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return bat_rated_w(a) / (AC_PHASES * AC_LN_V);
}

static double v_pv_rated(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return pv_rated_w(a);
}

static double v_pv_amax_ac(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return pv_rated_w(a) / (AC_PHASES * AC_LN_V);
}

static double v_bat_wh_rtg(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.p.capacity_wh;
}

static double v_bat_ah_rtg(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.p.capacity_wh / bat_dc_v(a);
}

static double v_bat_wh_avail(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.energy_wh;
}

static double v_bat_soc_pct(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.soc * 100.0;
}

static const char *s_bat_sta(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    switch (a->m.battery.state) {
    case BATTERY_FAULT:
        return "ERROR";
    case BATTERY_THROTTLED:
        return "WARNING";
    default:
        return "OK";
    }
}

static const char *s_bat_chast(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    const struct battery *b = &a->m.battery;
    if (b->state == BATTERY_FAULT || b->op.state == OPSTATE_IDLE)
        return "OFF";
    if (b->power_w < 0.0)
        return "CHARGING";
    if (b->power_w > 0.0)
        return "DISCHARGING";
    if (b->soc >= 0.999)
        return "FULL";
    if (b->soc <= 0.001)
        return "EMPTY";
    return "HOLDING";
}

static const char *s_bat_state(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    switch (a->m.battery.op.state) {
    case OPSTATE_IDLE:
        return "DISCONNECTED";
    case OPSTATE_STARTING:
        return "INITIALIZING";
    case OPSTATE_STOPPING:
        return "SUSPENDING";
    default:
        break;
    }
    switch (a->m.battery.state) {
    case BATTERY_FAULT:
        return "FAULT";
    case BATTERY_STANDBY:
        return "STANDBY";
    default:
        return "CONNECTED";
    }
}

static const char *s_lithium(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a, (void)st;
    return "LITHIUM_ION";
}

static const char *s_remote(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a, (void)st;
    return "REMOTE";
}

static const char *s_inv_started(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a, (void)st;
    return "INVERTER_STARTED";
}

static double v_bat_dc_v(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return bat_dc_v(a);
}

static double v_bat_dc_a(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.power_w / bat_dc_v(a);
}

static double v_bat_w(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.power_w;
}

static double v_bat_acha_max(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return battery_charge_limit_w(&a->m.battery) / bat_dc_v(a);
}

static double v_bat_adis_max(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return battery_discharge_limit_w(&a->m.battery) / bat_dc_v(a);
}

static double v_bat_ncyc(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    const struct battery *b = &a->m.battery;
    return b->p.capacity_wh > 0.0
               ? floor((b->charged_wh + b->discharged_wh) / (2.0 * b->p.capacity_wh))
               : 0.0;
}

static double v_heartbeat(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a;
    return st->heartbeat;
}

static double v_rvrt_wset(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a;
    return st->rvrt_rem_s[GRP_WSET];
}

static double v_rvrt_wmaxlim(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a;
    return st->rvrt_rem_s[GRP_WMAXLIM];
}

/* ---- write checks (engineering units; 0 or Modbus exception 3) ---------------------------- */

static int ck_wset(const struct sim_asset *a, const struct regmap_state *st,
                   const uint16_t *scratch, double v)
{
    double wmax;
    if (regmap_slot_value(st, SLOT_WMAX, scratch, &wmax))
        wmax = a->m.battery.p.max_discharge_w;
    return fabs(v) > wmax ? 3 : 0;
}

static int ck_bat_wmax(const struct sim_asset *a, const struct regmap_state *st,
                       const uint16_t *scratch, double v)
{
    (void)st, (void)scratch;
    return v < 0.0 || v > a->m.battery.p.max_discharge_w ? 3 : 0;
}

static int ck_bat_wcha(const struct sim_asset *a, const struct regmap_state *st,
                       const uint16_t *scratch, double v)
{
    (void)st, (void)scratch;
    return v < 0.0 || v > a->m.battery.p.max_charge_w ? 3 : 0;
}

/* ---- control code ---------------------------------------------------------------------------- */

/* A connect point (802 SetOp, 123 Conn) as a start or stop: its CONNECT symbol starts. */
static enum opstate_cmd connect_cmd(const struct sim_asset *a, const struct regmap_state *st,
                                    enum slot s, double connect)
{
    return regmap_slot_or(a, st, s, connect) == connect ? OPSTATE_CMD_START : OPSTATE_CMD_STOP;
}

static void battery_controls(struct sim_asset *a, struct regmap_state *st, int64_t now_ms)
{
    struct battery *b = &a->m.battery;
    int ena = regmap_reversion(a, st, GRP_WSET, SLOT_WSET_ENA, SLOT_WSET_RVRT_TMS, now_ms);
    double wmax = regmap_slot_or(a, st, SLOT_WMAX, b->p.max_discharge_w);
    double w = 0.0;
    if (ena) {
        if (regmap_slot_or(a, st, SLOT_WSET_MOD, 1) == 1.0) /* WATTS */
            w = regmap_slot_or(a, st, SLOT_WSET, 0);
        else /* W_MAX_PCT */
            w = regmap_slot_or(a, st, SLOT_WSET_PCT, 0) / 100.0 * wmax;
    }
    double dis_max = regmap_slot_or(a, st, SLOT_WDISCHA_MAX, b->p.max_discharge_w);
    double cha_max = regmap_slot_or(a, st, SLOT_WCHA_MAX, b->p.max_charge_w);
    if (w > wmax)
        w = wmax;
    if (w > dis_max)
        w = dis_max;
    if (w < -cha_max)
        w = -cha_max;
    if (w != st->u.cmd || regmap_group_changed(st, GRP_WSET)) {
        battery_command(b, now_ms, w);
        st->u.cmd = w;
    }
    enum opstate_cmd op = connect_cmd(a, st, SLOT_BAT_SETOP, 1);
    if (op != st->op_cmd) {
        battery_opcommand(b, now_ms, op);
        st->op_cmd = op;
    }
}

static void pv_controls(struct sim_asset *a, struct regmap_state *st, int64_t now_ms)
{
    enum opstate_cmd op = connect_cmd(a, st, SLOT_PV_CONN, 1);
    if (op != st->op_cmd) {
        pv_opcommand(&a->m.pv, now_ms, op);
        st->op_cmd = op;
    }
    int ena = regmap_reversion(a, st, GRP_WMAXLIM, SLOT_WMAXLIM_ENA, SLOT_WMAXLIM_RVRT_TMS, now_ms);
    double pct = ena ? regmap_slot_or(a, st, SLOT_WMAXLIM_PCT, 100) : 100.0;
    if (pct != st->u.cmd || regmap_group_changed(st, GRP_WMAXLIM)) {
        pv_command_limit(&a->m.pv, now_ms, pct);
        st->u.cmd = pct;
    }
}

static void battery_reset_model(struct sim_asset *a, struct regmap_state *st)
{
    battery_reset(&a->m.battery);
    st->u.cmd = 0.0;
    st->op_cmd = OPSTATE_CMD_START;
}

static void pv_reset_model(struct sim_asset *a, struct regmap_state *st)
{
    pv_reset(&a->m.pv);
    st->u.cmd = 100.0;
    st->op_cmd = OPSTATE_CMD_START;
}

static void battery_map_init(struct sim_asset *a, struct regmap_state *st)
{
    (void)a;
    st->u.cmd = 0.0; /* the model starts at 0 W, started */
    st->op_cmd = OPSTATE_CMD_START;
}

static void pv_map_init(struct sim_asset *a, struct regmap_state *st)
{
    (void)a;
    st->u.cmd = 100.0; /* the model starts unlimited, started */
    st->op_cmd = OPSTATE_CMD_START;
}

static void battery_full_scale(const struct sim_asset *a, double fs[SFC_N])
{
    double p_w = bat_rated_w(a), wh = a->m.battery.p.capacity_wh, dc_v = bat_dc_v(a);
    fs[SFC_POWER16] = fs[SFC_RATING16] = p_w;
    fs[SFC_AC_A16] = p_w / (AC_PHASES * AC_LN_V);
    fs[SFC_DC_A16] = p_w / dc_v;
    fs[SFC_WH16] = wh;
    fs[SFC_AH16] = wh / dc_v;
}

static void pv_full_scale(const struct sim_asset *a, double fs[SFC_N])
{
    double p_w = pv_rated_w(a);
    fs[SFC_POWER16] = fs[SFC_RATING16] = fs[SFC_DC_A16] = p_w;
    fs[SFC_AC_A16] = p_w / (AC_PHASES * AC_LN_V);
}

/* ---- the maps ----------------------------------------------------------------------------------
 */

/* 701: the AC side both inverters show alike (nominal grid, unity power factor) */
#define ROWS_701_AC                                                                                \
    {.model = 701,                                                                                 \
     .point = "VA",                                                                                \
     .kind = ROW_MEASURE,                                                                          \
     .get = v_ac_va,                                                                               \
     .doc = "abs(W) (unity PF)"},                                                                  \
        {.model = 701, .point = "Var", .kind = ROW_MEASURE, .c = 0, .doc = "0"},                   \
        {.model = 701, .point = "PF", .kind = ROW_MEASURE, .c = 1, .doc = "1.0"},                  \
        {.model = 701,                                                                             \
         .point = "A",                                                                             \
         .kind = ROW_MEASURE,                                                                      \
         .get = v_ac_a,                                                                            \
         .doc = "abs(W) / (3 x 230 V), per phase"},                                                \
        {.model = 701, .point = "LLV", .kind = ROW_MEASURE, .c = AC_LL_V, .doc = "400 V nominal"}, \
        {.model = 701, .point = "LNV", .kind = ROW_MEASURE, .c = AC_LN_V, .doc = "230 V nominal"}, \
    {                                                                                              \
        .model = 701, .point = "Hz", .kind = ROW_MEASURE, .c = AC_HZ, .doc = "50 Hz nominal"       \
    }

/* 701, 702, 704: the scale factors, alike for both inverters */
#define ROWS_701_SF                                                                                \
    SF_CHOSEN(701, "A_SF", SFC_AC_A16), SF_CONST(701, "V_SF", -1), SF_CONST(701, "Hz_SF", -2),     \
        SF_CHOSEN(701, "W_SF", SFC_POWER16), SF_CONST(701, "PF_SF", -3),                           \
        SF_CHOSEN(701, "VA_SF", SFC_POWER16), SF_CHOSEN(701, "Var_SF", SFC_POWER16),               \
        SF_CONST(701, "TotWh_SF", 0), SF_CONST(701, "TotVarh_SF", 0), SF_CONST(701, "Tmp_SF", -1)

#define ROWS_702_SF                                                                                \
    SF_CHOSEN(702, "W_SF", SFC_RATING16), SF_CHOSEN(702, "VA_SF", SFC_RATING16),                   \
        SF_CONST(702, "V_SF", -1), SF_CHOSEN(702, "A_SF", SFC_AC_A16), SF_CONST(702, "PF_SF", -3), \
        SF_CHOSEN(702, "Var_SF", SFC_RATING16)

#define ROWS_704_SF                                                                                \
    SF_CONST(704, "PF_SF", -3), SF_CONST(704, "WMaxLimPct_SF", -1), SF_CONST(704, "WSet_SF", 0),   \
        SF_CONST(704, "WSetPct_SF", -1), SF_CONST(704, "VarSet_SF", 0),                            \
        SF_CONST(704, "VarSetPct_SF", -1)

static const uint16_t battery_models[] = {1, 701, 702, 704, 713, 802};
static const struct row battery_rows[] = {
    REGMAP_COMMON_ROWS,
    /* 701 DERMeasureAC */
    {.model = 701,
     .point = "ACType",
     .kind = ROW_STATIC,
     .sym = s_three_phase,
     .doc = "THREE_PHASE"},
    {.model = 701,
     .point = "St",
     .kind = ROW_MEASURE,
     .sym = s_st,
     .doc = "OFF in FAULT or IDLE (stopped), else ON"},
    {.model = 701,
     .point = "InvSt",
     .kind = ROW_MEASURE,
     .sym = s_bat_invst,
     .doc = "operating state: OFF (IDLE, stopped), STARTING, SHUTTING_DOWN (STOPPING), FAULT; "
            "when RUNNING: STANDBY (0 W), RUNNING, THROTTLED (limits derated)"},
    {.model = 701,
     .point = "ConnSt",
     .kind = ROW_MEASURE,
     .sym = s_conn,
     .doc = "DISCONNECTED in FAULT or IDLE, else CONNECTED"},
    {.model = 701,
     .point = "Alrm",
     .kind = ROW_MEASURE,
     .get = v_bat_alrm,
     .doc = "0; in FAULT bit 7 OVER_TEMP (temperature trip) or bit 16 MANUFACTURER_ALRM"},
    {.model = 701,
     .point = "W",
     .kind = ROW_MEASURE,
     .get = v_ac_w,
     .doc = "AC power, + discharge (injection), - charge (absorption)"},
    ROWS_701_AC,
    {.model = 701,
     .point = "TotWhInj",
     .kind = ROW_MEASURE,
     .get = v_inj_wh,
     .doc = "energy discharged (AC side), accumulated"},
    {.model = 701,
     .point = "TotWhAbs",
     .kind = ROW_MEASURE,
     .get = v_abs_wh,
     .doc = "energy charged (AC side), accumulated"},
    {.model = 701,
     .point = "TmpAmb",
     .kind = ROW_STATIC,
     .get = v_bat_amb,
     .doc = "ambient temperature (parameter)"},
    {.model = 701,
     .point = "TmpCab",
     .kind = ROW_MEASURE,
     .get = v_bat_temp,
     .doc = "battery temperature (the model's thermal state)"},
    ROWS_701_SF,
    /* 702 DERCapacity */
    {.model = 702,
     .point = "WMaxRtg",
     .kind = ROW_STATIC,
     .get = v_bat_dis_rtg,
     .doc = "max_discharge_w"},
    {.model = 702,
     .point = "VAMaxRtg",
     .kind = ROW_STATIC,
     .get = v_bat_rated,
     .doc = "max(max_charge_w, max_discharge_w)"},
    {.model = 702,
     .point = "WChaRteMaxRtg",
     .kind = ROW_STATIC,
     .get = v_bat_cha_rtg,
     .doc = "max_charge_w"},
    {.model = 702,
     .point = "WDisChaRteMaxRtg",
     .kind = ROW_STATIC,
     .get = v_bat_dis_rtg,
     .doc = "max_discharge_w"},
    {.model = 702, .point = "VNomRtg", .kind = ROW_STATIC, .c = AC_LN_V, .doc = "230 V"},
    {.model = 702,
     .point = "AMaxRtg",
     .kind = ROW_STATIC,
     .get = v_bat_amax_ac,
     .doc = "rated power / (3 x 230 V)"},
    {.model = 702,
     .point = "WMax",
     .kind = ROW_CONTROL,
     .slot = SLOT_WMAX,
     .get = v_bat_dis_rtg,
     .check = ck_bat_wmax,
     .doc = "default WMaxRtg; 0..WMaxRtg; caps discharge setpoints and bounds abs(WSet)"},
    {.model = 702,
     .point = "WChaRteMax",
     .kind = ROW_CONTROL,
     .slot = SLOT_WCHA_MAX,
     .get = v_bat_cha_rtg,
     .check = ck_bat_wcha,
     .doc = "default max_charge_w; 0..WChaRteMaxRtg; caps charge setpoints"},
    {.model = 702,
     .point = "WDisChaRteMax",
     .kind = ROW_CONTROL,
     .slot = SLOT_WDISCHA_MAX,
     .get = v_bat_dis_rtg,
     .check = ck_bat_wmax,
     .doc = "default max_discharge_w; 0..WDisChaRteMaxRtg; caps discharge setpoints"},
    ROWS_702_SF,
    /* 704 DERCtlAC */
    {.model = 704,
     .point = "WSetEna",
     .kind = ROW_CONTROL,
     .slot = SLOT_WSET_ENA,
     .group = GRP_WSET,
     .c = 0,
     .doc = "default DISABLED; ENABLED applies the setpoint"},
    {.model = 704,
     .point = "WSetMod",
     .kind = ROW_CONTROL,
     .slot = SLOT_WSET_MOD,
     .group = GRP_WSET,
     .c = 1,
     .doc = "default WATTS (WSet in W); W_MAX_PCT uses WSetPct of WMax"},
    {.model = 704,
     .point = "WSet",
     .kind = ROW_CONTROL,
     .slot = SLOT_WSET,
     .group = GRP_WSET,
     .c = 0,
     .check = ck_wset,
     .doc = "setpoint, + discharge, - charge; default 0; abs(WSet) <= WMax, else exception 3"},
    {.model = 704,
     .point = "WSetPct",
     .kind = ROW_CONTROL,
     .slot = SLOT_WSET_PCT,
     .group = GRP_WSET,
     .c = 0,
     .min = -100,
     .max = 100,
     .doc = "setpoint in % of WMax (W_MAX_PCT mode); default 0; -100..100"},
    {.model = 704,
     .point = "WSetRvrtTms",
     .kind = ROW_CONTROL,
     .slot = SLOT_WSET_RVRT_TMS,
     .group = GRP_WSET,
     .c = 0,
     .doc = "default 0 (never); > 0: the setpoint lapses (WSetEna back to DISABLED, 0 W) this "
            "many seconds after the last write to WSetEna..WSetRvrtTms"},
    {.model = 704,
     .point = "WSetRvrtRem",
     .kind = ROW_MEASURE,
     .get = v_rvrt_wset,
     .doc = "seconds left before the setpoint lapses (0 when no timer runs)"},
    ROWS_704_SF,
    /* 713 DERStorageCapacity */
    {.model = 713, .point = "WHRtg", .kind = ROW_STATIC, .get = v_bat_wh_rtg, .doc = "capacity_wh"},
    {.model = 713,
     .point = "WHAvail",
     .kind = ROW_MEASURE,
     .get = v_bat_wh_avail,
     .doc = "stored energy"},
    {.model = 713,
     .point = "SoC",
     .kind = ROW_MEASURE,
     .get = v_bat_soc_pct,
     .doc = "state of charge, %"},
    {.model = 713, .point = "SoH", .kind = ROW_STATIC, .c = 100, .doc = "100 %"},
    {.model = 713,
     .point = "Sta",
     .kind = ROW_MEASURE,
     .sym = s_bat_sta,
     .doc = "OK; WARNING when THROTTLED; ERROR in FAULT"},
    SF_CHOSEN(713, "WH_SF", SFC_WH16),
    SF_CONST(713, "Pct_SF", -1),
    /* 802 Battery */
    {.model = 802,
     .point = "AHRtg",
     .kind = ROW_STATIC,
     .get = v_bat_ah_rtg,
     .doc = "capacity_wh / voltage_v"},
    {.model = 802, .point = "WHRtg", .kind = ROW_STATIC, .get = v_bat_wh_rtg, .doc = "capacity_wh"},
    {.model = 802,
     .point = "WChaRteMax",
     .kind = ROW_STATIC,
     .get = v_bat_cha_rtg,
     .doc = "max_charge_w"},
    {.model = 802,
     .point = "WDisChaRteMax",
     .kind = ROW_STATIC,
     .get = v_bat_dis_rtg,
     .doc = "max_discharge_w"},
    {.model = 802, .point = "SoCMax", .kind = ROW_STATIC, .c = 100, .doc = "100 %"},
    {.model = 802, .point = "SoCMin", .kind = ROW_STATIC, .c = 0, .doc = "0 %"},
    {.model = 802,
     .point = "SoC",
     .kind = ROW_MEASURE,
     .get = v_bat_soc_pct,
     .doc = "state of charge, %"},
    {.model = 802, .point = "SoH", .kind = ROW_STATIC, .c = 100, .doc = "100 %"},
    {.model = 802,
     .point = "NCyc",
     .kind = ROW_MEASURE,
     .get = v_bat_ncyc,
     .doc = "equivalent full cycles: (charged + discharged) / (2 x capacity)"},
    {.model = 802,
     .point = "ChaSt",
     .kind = ROW_MEASURE,
     .sym = s_bat_chast,
     .doc =
         "CHARGING / DISCHARGING by the power's sign; idle: FULL, EMPTY or HOLDING; OFF in FAULT "
         "or IDLE"},
    {.model = 802, .point = "LocRemCtl", .kind = ROW_STATIC, .sym = s_remote, .doc = "REMOTE"},
    {.model = 802,
     .point = "Hb",
     .kind = ROW_MEASURE,
     .get = v_heartbeat,
     .doc = "heartbeat: +1 at every refresh of the image (stops when frozen)"},
    {.model = 802, .point = "Typ", .kind = ROW_STATIC, .sym = s_lithium, .doc = "LITHIUM_ION"},
    {.model = 802,
     .point = "State",
     .kind = ROW_MEASURE,
     .sym = s_bat_state,
     .doc = "DISCONNECTED (IDLE), INITIALIZING (STARTING), SUSPENDING (STOPPING), FAULT; when "
            "RUNNING: STANDBY (0 W), CONNECTED"},
    {.model = 802,
     .point = "Evt1",
     .kind = ROW_MEASURE,
     .get = v_bat_evt1,
     .doc = "0; in FAULT bit 1 OVER_TEMP_ALARM (temperature trip) or bit 25 OTHER_ALARM"},
    {.model = 802, .point = "Evt2", .kind = ROW_STATIC, .c = 0, .doc = "0"},
    {.model = 802, .point = "EvtVnd1", .kind = ROW_STATIC, .c = 0, .doc = "0"},
    {.model = 802, .point = "EvtVnd2", .kind = ROW_STATIC, .c = 0, .doc = "0"},
    {.model = 802,
     .point = "V",
     .kind = ROW_STATIC,
     .get = v_bat_dc_v,
     .doc = "nominal DC voltage (voltage_v)"},
    {.model = 802,
     .point = "A",
     .kind = ROW_MEASURE,
     .get = v_bat_dc_a,
     .doc = "DC current W / V, + discharge (802 leaves the sign to vendors)"},
    {.model = 802,
     .point = "AChaMax",
     .kind = ROW_MEASURE,
     .get = v_bat_acha_max,
     .doc = "present charge limit (derated by SoC and temperature) / V"},
    {.model = 802,
     .point = "ADisChaMax",
     .kind = ROW_MEASURE,
     .get = v_bat_adis_max,
     .doc = "present discharge limit (derated by SoC and temperature) / V"},
    {.model = 802,
     .point = "W",
     .kind = ROW_MEASURE,
     .get = v_bat_w,
     .doc = "power, + discharge (as 701 W; 802 leaves the sign to vendors)"},
    {.model = 802,
     .point = "SetOp",
     .kind = ROW_CONTROL,
     .slot = SLOT_BAT_SETOP,
     .c = 1,
     .doc = "start and stop: default CONNECT; DISCONNECT stops the battery (STOPPING, then IDLE: "
            "0 W whatever the setpoint), CONNECT starts it again (STARTING, then RUNNING)"},
    {.model = 802,
     .point = "SetInvState",
     .kind = ROW_STATIC,
     .sym = s_inv_started,
     .doc = "INVERTER_STARTED (writable, stored only)"},
    SF_CHOSEN(802, "AHRtg_SF", SFC_AH16),
    SF_CHOSEN(802, "WHRtg_SF", SFC_WH16),
    SF_CHOSEN(802, "WChaDisChaMax_SF", SFC_RATING16),
    SF_CONST(802, "SoC_SF", -1),
    SF_CONST(802, "SoH_SF", 0),
    SF_CONST(802, "V_SF", -1),
    SF_CONST(802, "CellV_SF", -3),
    SF_CHOSEN(802, "A_SF", SFC_DC_A16),
    SF_CHOSEN(802, "AMax_SF", SFC_DC_A16),
    SF_CHOSEN(802, "W_SF", SFC_POWER16),
};

static const uint16_t pv_models[] = {1, 701, 702, 704, 123};
static const struct row pv_rows[] = {
    REGMAP_COMMON_ROWS,
    {.model = 701,
     .point = "ACType",
     .kind = ROW_STATIC,
     .sym = s_three_phase,
     .doc = "THREE_PHASE"},
    {.model = 701,
     .point = "St",
     .kind = ROW_MEASURE,
     .sym = s_st,
     .doc = "OFF when tripped or IDLE (stopped), else ON"},
    {.model = 701,
     .point = "InvSt",
     .kind = ROW_MEASURE,
     .sym = s_pv_invst,
     .doc = "OFF (IDLE, stopped), STARTING, SHUTTING_DOWN (STOPPING), FAULT when tripped; when "
            "RUNNING: SLEEPING without sun, THROTTLED when curtailment cuts the available power, "
            "else RUNNING"},
    {.model = 701,
     .point = "ConnSt",
     .kind = ROW_MEASURE,
     .sym = s_conn,
     .doc = "DISCONNECTED when tripped or IDLE, else CONNECTED"},
    {.model = 701,
     .point = "Alrm",
     .kind = ROW_MEASURE,
     .get = v_pv_alrm,
     .doc = "0; bit 16 MANUFACTURER_ALRM when tripped"},
    {.model = 701,
     .point = "W",
     .kind = ROW_MEASURE,
     .get = v_ac_w,
     .doc = "AC power, + production"},
    ROWS_701_AC,
    {.model = 701,
     .point = "TotWhInj",
     .kind = ROW_MEASURE,
     .get = v_inj_wh,
     .doc = "energy produced, accumulated"},
    {.model = 701, .point = "TotWhAbs", .kind = ROW_MEASURE, .get = v_abs_wh, .doc = "0"},
    {.model = 701,
     .point = "TmpAmb",
     .kind = ROW_STATIC,
     .get = v_pv_amb,
     .doc = "ambient temperature (parameter)"},
    {.model = 701,
     .point = "TmpOt",
     .kind = ROW_MEASURE,
     .get = v_pv_cell,
     .doc = "cell temperature (NOCT model)"},
    ROWS_701_SF,
    {.model = 702,
     .point = "WMaxRtg",
     .kind = ROW_STATIC,
     .get = v_pv_rated,
     .doc = "AC rating (ac_max_w, else peak_w)"},
    {.model = 702, .point = "VAMaxRtg", .kind = ROW_STATIC, .get = v_pv_rated, .doc = "AC rating"},
    {.model = 702, .point = "VNomRtg", .kind = ROW_STATIC, .c = AC_LN_V, .doc = "230 V"},
    {.model = 702,
     .point = "AMaxRtg",
     .kind = ROW_STATIC,
     .get = v_pv_amax_ac,
     .doc = "AC rating / (3 x 230 V)"},
    {.model = 702,
     .point = "WMax",
     .kind = ROW_STATIC,
     .get = v_pv_rated,
     .doc = "AC rating (writable, stored only)"},
    ROWS_702_SF,
    {.model = 704,
     .point = "WMaxLimPctEna",
     .kind = ROW_CONTROL,
     .slot = SLOT_WMAXLIM_ENA,
     .group = GRP_WMAXLIM,
     .c = 0,
     .doc = "default DISABLED; ENABLED applies WMaxLimPct"},
    {.model = 704,
     .point = "WMaxLimPct",
     .kind = ROW_CONTROL,
     .slot = SLOT_WMAXLIM_PCT,
     .group = GRP_WMAXLIM,
     .c = 100,
     .min = 0,
     .max = 100,
     .doc = "curtailment limit, % of WMaxRtg; default 100; 0..100"},
    {.model = 704,
     .point = "WMaxLimPctRvrtTms",
     .kind = ROW_CONTROL,
     .slot = SLOT_WMAXLIM_RVRT_TMS,
     .group = GRP_WMAXLIM,
     .c = 0,
     .doc = "default 0 (never); > 0: the limit lapses (WMaxLimPctEna back to DISABLED, 100 %) "
            "this many seconds after the last write to WMaxLimPctEna..WMaxLimPctRvrtTms"},
    {.model = 704,
     .point = "WMaxLimPctRvrtRem",
     .kind = ROW_MEASURE,
     .get = v_rvrt_wmaxlim,
     .doc = "seconds left before the limit lapses (0 when no timer runs)"},
    ROWS_704_SF,
    /* 123 Immediate controls: only the connection control, for start and stop */
    {.model = 123,
     .point = "Conn",
     .kind = ROW_CONTROL,
     .slot = SLOT_PV_CONN,
     .c = 1,
     .doc = "start and stop: default CONNECT; DISCONNECT stops the inverter (STOPPING, then IDLE: "
            "0 W), CONNECT starts it again (STARTING, then RUNNING); the other points of 123 are "
            "stored only (curtailment is 704's)"},
};

const struct asset_map regmap_battery_map = {
    .title = "Battery",
    .intro = "A battery inverter with its battery: SunSpec DER models.",
    .md = "sim-battery",
    .models = battery_models,
    .n_models = REGMAP_N(battery_models),
    .rows = battery_rows,
    .n_rows = REGMAP_N(battery_rows),
    .full_scale = battery_full_scale,
    .init = battery_map_init,
    .controls = battery_controls,
    .reset = battery_reset_model,
};

const struct asset_map regmap_pv_map = {
    .title = "PV",
    .intro = "A PV inverter: SunSpec DER models.",
    .md = "sim-pv",
    .models = pv_models,
    .n_models = REGMAP_N(pv_models),
    .rows = pv_rows,
    .n_rows = REGMAP_N(pv_rows),
    .full_scale = pv_full_scale,
    .init = pv_map_init,
    .controls = pv_controls,
    .reset = pv_reset_model,
};
