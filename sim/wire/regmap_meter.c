/* regmap_meter: the register map of a meter: a SunSpec image (common model 1, wye meter 203) in
 * the grid role (+ import, - export) or the load role (+ consumption). Measurements only: a
 * meter takes no commands. Rows as sim/wire/regmap_map.h describes them. */
#include <math.h>

#include "sim/wire/regmap_map.h"

/* A meter has no rating: its power scale covers a 100 A service on each of its phases, the
 * upper end of residential and small commercial main fuses. */
#define METER_FULL_SCALE_A 100.0
#define AC_LN_V            230.0 /* when the meter has no voltage of its own (EN 50160) */

/* Meter: the displayed power (grid role + import, load role + consumption). */
static double meter_phases(const struct sim_asset *a)
{
    return a->m.meter.p.phases == 3 ? 3.0 : 1.0;
}

static double v_m_w(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.shown_w;
}

static double v_m_w_ph(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.shown_w / meter_phases(a);
}

static double v_m_w_ph3(const struct sim_asset *a, const struct regmap_state *st)
{
    return a->m.meter.p.phases == 3 ? v_m_w_ph(a, st) : NAN;
}

static double meter_v(const struct sim_asset *a)
{
    return a->m.meter.voltage_v > 0.0 ? a->m.meter.voltage_v : a->m.meter.p.voltage_v;
}

static double v_m_a(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return fabs(a->m.meter.shown_w) / meter_v(a);
}

static double v_m_a_ph(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return fabs(a->m.meter.shown_w) / meter_phases(a) / meter_v(a);
}

static double v_m_a_ph3(const struct sim_asset *a, const struct regmap_state *st)
{
    return a->m.meter.p.phases == 3 ? v_m_a_ph(a, st) : NAN;
}

static double v_m_v(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return meter_v(a);
}

static double v_m_v3(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.p.phases == 3 ? meter_v(a) : NAN;
}

static double v_m_vll(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.p.phases == 3 ? meter_v(a) * sqrt(3.0) : NAN;
}

static double v_m_hz(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.frequency_hz > 0.0 ? a->m.meter.frequency_hz : a->m.meter.p.nominal_hz;
}

/* 203 Evt: the meter's shown events (meter.c sets M_EVENT_Power_Failure in an outage). */
static double v_m_evt(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.evt;
}

static double v_m_imp(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.import_wh;
}

static double v_m_exp(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.export_wh;
}

static void meter_full_scale(const struct sim_asset *a, double fs[SFC_N])
{
    double v = a->m.meter.p.voltage_v > 0 ? a->m.meter.p.voltage_v : AC_LN_V;
    double p_w = meter_phases(a) * v * METER_FULL_SCALE_A;
    fs[SFC_POWER16] = fs[SFC_RATING16] = fs[SFC_DC_A16] = p_w;
    fs[SFC_AC_A16] = METER_FULL_SCALE_A * meter_phases(a);
}

static const uint16_t meter_models[] = {1, 203};
static const struct row meter_rows[] = {
    REGMAP_COMMON_ROWS,
    {.model = 203, .point = "A", .kind = ROW_MEASURE, .get = v_m_a, .doc = "abs(W) / V, total"},
    {.model = 203,
     .point = "AphA",
     .kind = ROW_MEASURE,
     .get = v_m_a_ph,
     .doc = "abs(W) / phases / V"},
    {.model = 203,
     .point = "AphB",
     .kind = ROW_MEASURE,
     .get = v_m_a_ph3,
     .doc = "as AphA (3 phases only)"},
    {.model = 203,
     .point = "AphC",
     .kind = ROW_MEASURE,
     .get = v_m_a_ph3,
     .doc = "as AphA (3 phases only)"},
    SF_CHOSEN(203, "A_SF", SFC_AC_A16),
    {.model = 203,
     .point = "PhV",
     .kind = ROW_MEASURE,
     .get = v_m_v,
     .doc = "voltage, line to neutral"},
    {.model = 203, .point = "PhVphA", .kind = ROW_MEASURE, .get = v_m_v, .doc = "as PhV"},
    {.model = 203,
     .point = "PhVphB",
     .kind = ROW_MEASURE,
     .get = v_m_v3,
     .doc = "as PhV (3 phases only)"},
    {.model = 203,
     .point = "PhVphC",
     .kind = ROW_MEASURE,
     .get = v_m_v3,
     .doc = "as PhV (3 phases only)"},
    {.model = 203,
     .point = "PPV",
     .kind = ROW_MEASURE,
     .get = v_m_vll,
     .doc = "PhV x sqrt(3) (3 phases only)"},
    SF_CONST(203, "V_SF", -1),
    {.model = 203,
     .point = "Hz",
     .kind = ROW_MEASURE,
     .get = v_m_hz,
     .doc = "frequency (profile or nominal; nominal while islanded)"},
    SF_CONST(203, "Hz_SF", -2),
    {.model = 203,
     .point = "W",
     .kind = ROW_MEASURE,
     .get = v_m_w,
     .doc = "power shown (refreshed every refresh_ms): grid role + import / - export; "
            "load role + consumption"},
    {.model = 203, .point = "WphA", .kind = ROW_MEASURE, .get = v_m_w_ph, .doc = "W / phases"},
    {.model = 203,
     .point = "WphB",
     .kind = ROW_MEASURE,
     .get = v_m_w_ph3,
     .doc = "W / 3 (3 phases only)"},
    {.model = 203,
     .point = "WphC",
     .kind = ROW_MEASURE,
     .get = v_m_w_ph3,
     .doc = "W / 3 (3 phases only)"},
    SF_CHOSEN(203, "W_SF", SFC_POWER16),
    {.model = 203,
     .point = "TotWhExp",
     .kind = ROW_MEASURE,
     .get = v_m_exp,
     .doc = "grid role: energy exported; load role: 0 (acc32, rolls over)"},
    {.model = 203,
     .point = "TotWhImp",
     .kind = ROW_MEASURE,
     .get = v_m_imp,
     .doc = "grid role: energy imported; load role: energy consumed (acc32, rolls over)"},
    SF_CONST(203, "TotWh_SF", 0),
    {.model = 203,
     .point = "Evt",
     .kind = ROW_MEASURE,
     .get = v_m_evt,
     .doc = "grid role: bit 2 M_EVENT_Power_Failure while the site is islanded (a "
            "`grid_outage` event), else 0; load role: 0"},
};

const struct asset_map regmap_meter_map = {
    .title = "Meter",
    .intro =
        "A three-phase (wye) meter, in the grid role (`+` import, `-` export) or the load role "
        "(`+` consumption). SunSpec model 203 leaves the sign of W to vendors; the gateway "
        "takes it as a per-device setting.",
    .md = "sim-meter",
    .models = meter_models,
    .n_models = REGMAP_N(meter_models),
    .rows = meter_rows,
    .n_rows = REGMAP_N(meter_rows),
    .full_scale = meter_full_scale,
};
