/* Unit tests for the simulator's register maps (sim/wire/regmap*.c): images built for hand-made
 * assets, decoded back through gateway/devices/sunspec.c; writes checked as the Modbus server
 * checks them (regimage_check_write), then applied as libmodbus would apply them. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "gateway/devices/sunspec.h"
#include "reports/regdoc.h"
#include "sim/wire/regmap.h"

static struct asset_cfg cfg_of(const char *id, enum asset_type t, int unit)
{
    struct asset_cfg c;
    memset(&c, 0, sizeof c);
    snprintf(c.id, sizeof c.id, "%s", id);
    c.type = t;
    c.unit_id = unit;
    return c;
}

static void battery_asset(struct sim_asset *a, struct asset_cfg *c)
{
    struct battery_params p = {
        .capacity_wh = 10000,
        .soc_init = 0.5,
        .max_charge_w = 4000,
        .max_discharge_w = 5000,
        .eta_charge = 1,
        .eta_discharge = 1,
        .soc_low_band = 0.05,
        .soc_high_band = 0.95,
        .temp_init_c = 25,
        .temp_ambient_c = 20,
        .temp_tau_s = 3600,
        .temp_rise_c = 10,
        .temp_derate_c = 45,
        .temp_stop_c = 60,
        .voltage_v = 400,
    };
    *c = cfg_of("bat-1", ASSET_BATTERY, 3);
    c->u.battery = p;
    memset(a, 0, sizeof *a);
    a->cfg = c;
    a->type = ASSET_BATTERY;
    battery_init(&a->m.battery, &p);
}

/* Where a model starts in the image: walk it like a client. */
struct img_reader {
    struct regimage *img;
};

static int img_read(void *ctx, uint16_t addr, uint16_t n, uint16_t *dst)
{
    struct regimage *img = ctx;
    if (regimage_check_read(img, addr, n))
        return -1;
    memcpy(dst, regimage_regs(img) + (addr - img->start), n * sizeof *dst);
    return 0;
}

static uint16_t *model_regs(struct sim_asset *a, uint16_t id)
{
    struct sunspec_found found[8];
    size_t n;
    uint16_t base;
    if (sunspec_walk(img_read, a->img, found, 8, &n, &base, NULL, 0))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (found[i].id == id)
            return regimage_regs(a->img) + (found[i].start - a->img->start);
    return NULL;
}

static uint16_t addr_of(struct sim_asset *a, uint16_t id, const char *point)
{
    uint16_t *m = model_regs(a, id);
    const struct sunspec_point *p = sunspec_point_find(sunspec_model_find(id), point);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    return (uint16_t)(a->img->start + (m - regimage_regs(a->img)) + p->offset);
}

static int get(struct sim_asset *a, uint16_t id, const char *point, double *v)
{
    const struct sunspec_model *m = sunspec_model_find(id);
    return sunspec_read_value(m, sunspec_point_find(m, point), model_regs(a, id), v);
}

static double val(struct sim_asset *a, uint16_t id, const char *point)
{
    double v = NAN;
    CU_ASSERT_EQUAL(get(a, id, point, &v), 0);
    return v;
}

/* A client write: the server's checks, then the words land and the counter moves. */
static int wr(struct sim_asset *a, uint16_t addr, uint16_t n, const uint16_t *v)
{
    int rc = regimage_check_write(a->img, addr, n, v);
    if (rc == 0) {
        memcpy(regimage_regs(a->img) + (addr - a->img->start), v, n * sizeof *v);
        a->img->writes++;
    }
    return rc;
}

static int wr1(struct sim_asset *a, uint16_t addr, uint16_t v)
{
    return wr(a, addr, 1, &v);
}

static void test_battery_image(void)
{
    struct sim_asset a;
    struct asset_cfg c;
    char err[200];
    battery_asset(&a, &c);
    CU_ASSERT_EQUAL_FATAL(regmap_attach(&a, err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a.img);
    CU_ASSERT_EQUAL(a.img->start, 40000);
    uint16_t *r = regimage_regs(a.img);
    CU_ASSERT_EQUAL(r[0], 0x5375);
    CU_ASSERT_EQUAL(r[1], 0x6E53);

    char s[40];
    const struct sunspec_model *m1 = sunspec_model_find(1);
    CU_ASSERT_EQUAL(
        sunspec_read_string(sunspec_point_find(m1, "Mn"), model_regs(&a, 1), s, sizeof s), 0);
    CU_ASSERT_STRING_EQUAL(s, "derloop");
    sunspec_read_string(sunspec_point_find(m1, "Md"), model_regs(&a, 1), s, sizeof s);
    CU_ASSERT_STRING_EQUAL(s, "sim-battery");
    sunspec_read_string(sunspec_point_find(m1, "SN"), model_regs(&a, 1), s, sizeof s);
    CU_ASSERT_STRING_EQUAL(s, "bat-1");
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 1, "DA"), 3, 0);

    CU_ASSERT_DOUBLE_EQUAL(val(&a, 713, "SoC"), 50.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 802, "SoC"), 50.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 713, "WHRtg"), 10000, 0);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 702, "WMaxRtg"), 5000, 0);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 702, "WChaRteMaxRtg"), 4000, 0);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 701, "W"), 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 701, "InvSt"), 7, 0); /* STANDBY */
    /* Unfilled points read "not implemented". */
    double v;
    CU_ASSERT_EQUAL(get(&a, 701, "TotVarhInj", &v), -ENODATA);

    /* Discharge: + on 701 and 802, injected energy counted. */
    battery_command(&a.m.battery, 0, 3000);
    for (int i = 0; i < 3600; i++)
        battery_step(&a.m.battery, i * 1000, 1000);
    regmap_publish(&a, 3600000);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 701, "W"), 3000, 0.5);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 802, "W"), 3000, 0.5);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 802, "A"), 7.5, 0.01);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 701, "TotWhInj"), 3000, 1);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 701, "TotWhAbs"), 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 713, "SoC"), 20.0, 0.1);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 701, "InvSt"), 3, 0); /* RUNNING */
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 802, "ChaSt"), 3, 0); /* DISCHARGING */
    /* Charge: negative. */
    battery_command(&a.m.battery, 3600000, -2000);
    battery_step(&a.m.battery, 3600000, 1000);
    regmap_publish(&a, 3601000);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 701, "W"), -2000, 0.5);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 802, "ChaSt"), 4, 0); /* CHARGING */
    CU_ASSERT(val(&a, 701, "TotWhAbs") > 0);
    regmap_detach(&a);
    CU_ASSERT_PTR_NULL(a.img);
}

static void test_battery_writes(void)
{
    struct sim_asset a;
    struct asset_cfg c;
    char err[200];
    battery_asset(&a, &c);
    CU_ASSERT_EQUAL_FATAL(regmap_attach(&a, err, sizeof err), 0);
    uint16_t ena = addr_of(&a, 704, "WSetEna"), wset = addr_of(&a, 704, "WSet");
    uint16_t mod = addr_of(&a, 704, "WSetMod");

    /* Read-only and outside the image: 2. */
    CU_ASSERT_EQUAL(wr1(&a, addr_of(&a, 701, "W"), 5), 2);
    CU_ASSERT_EQUAL(wr1(&a, 40000, 5), 2);
    CU_ASSERT_EQUAL(wr1(&a, a.img->start + a.img->count, 5), 2);
    /* Bad values: 3. */
    CU_ASSERT_EQUAL(wr1(&a, ena, 2), 3);
    CU_ASSERT_EQUAL(wr1(&a, mod, 7), 3);
    uint16_t big[2] = {0, 6000}; /* 6000 W > WMax 5000 */
    CU_ASSERT_EQUAL(wr(&a, wset, 2, big), 3);
    uint16_t neg_big[2] = {0xFFFF, (uint16_t)-5001};
    CU_ASSERT_EQUAL(wr(&a, wset, 2, neg_big), 3);
    CU_ASSERT_EQUAL(a.img->writes, 0);
    /* A stored-only enum still takes only its symbols. */
    CU_ASSERT_EQUAL(wr1(&a, addr_of(&a, 704, "VarSetMod"), 9), 3);
    CU_ASSERT_EQUAL(wr1(&a, addr_of(&a, 704, "VarSetMod"), 1), 0);

    /* A good setpoint in one FC16: ena, mod, WSet. */
    uint16_t blk[4] = {1, 1, 0xFFFF, (uint16_t)-2500};
    CU_ASSERT_EQUAL(wr(&a, ena, 4, blk), 0);
    regmap_read_controls(&a, 1000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.battery.setpoint_w, -2500, 0);

    /* Partial writes: the low word alone, then the high word alone. From -2500 to +1000:
     * low word 1000 with the high word 0xFFFF is -64536, which exceeds WMax: refused. So a
     * client writes the high word first (0 with low -2500 = 63036 also too big)... use a
     * value where each half-step is legal: from 1000 (0, 1000) to 4000 (0, 4000). */
    uint16_t w1000[2] = {0, 1000};
    CU_ASSERT_EQUAL(wr(&a, wset, 2, w1000), 0);
    regmap_read_controls(&a, 2000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.battery.setpoint_w, 1000, 0);
    CU_ASSERT_EQUAL(wr1(&a, (uint16_t)(wset + 1), 4000), 0); /* low word only */
    regmap_read_controls(&a, 3000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.battery.setpoint_w, 4000, 0);
    /* A 5-register block ending on the high word of WSetRvrt (seen in the field). */
    uint16_t five[5] = {1, 1, 0, 3000, 0};
    CU_ASSERT_EQUAL(wr(&a, ena, 5, five), 0);
    regmap_read_controls(&a, 4000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.battery.setpoint_w, 3000, 0);
    /* The high word alone, validated with the low word in the image: 0x0001:3000 = 68536. */
    CU_ASSERT_EQUAL(wr1(&a, wset, 1), 3);

    /* WMax caps: lower it, the same WSet is clamped and a bigger one refused. */
    CU_ASSERT_EQUAL(wr1(&a, addr_of(&a, 702, "WMax"), 2000), 0);
    regmap_read_controls(&a, 5000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.battery.setpoint_w, 2000, 0);
    CU_ASSERT_EQUAL(wr(&a, wset, 2, five + 2), 3);
    CU_ASSERT_EQUAL(wr1(&a, addr_of(&a, 702, "WMax"), 6000), 3);

    /* W_MAX_PCT mode: 50 % of WMax (2000) = 1000 W. */
    CU_ASSERT_EQUAL(wr1(&a, addr_of(&a, 704, "WSetPct"), 500), 0); /* sf -1 */
    CU_ASSERT_EQUAL(wr1(&a, addr_of(&a, 704, "WSetPct"), 1001), 3);
    CU_ASSERT_EQUAL(wr1(&a, mod, 0), 0);
    regmap_read_controls(&a, 6000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.battery.setpoint_w, 1000, 1e-9);
    /* Disabled: 0. */
    CU_ASSERT_EQUAL(wr1(&a, ena, 0), 0);
    regmap_read_controls(&a, 7000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.battery.setpoint_w, 0, 0);
    regmap_detach(&a);
}

static void test_battery_reversion_and_reset(void)
{
    struct sim_asset a;
    struct asset_cfg c;
    char err[200];
    battery_asset(&a, &c);
    CU_ASSERT_EQUAL_FATAL(regmap_attach(&a, err, sizeof err), 0);
    uint16_t ena = addr_of(&a, 704, "WSetEna"), wset = addr_of(&a, 704, "WSet");
    uint16_t tms[2] = {0, 60};
    CU_ASSERT_EQUAL(wr(&a, addr_of(&a, 704, "WSetRvrtTms"), 2, tms), 0);
    uint16_t blk[4] = {1, 1, 0, 1500};
    CU_ASSERT_EQUAL(wr(&a, ena, 4, blk), 0);
    regmap_read_controls(&a, 10000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.battery.setpoint_w, 1500, 0);
    regmap_publish(&a, 10000);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 704, "WSetRvrtRem"), 60, 0);
    /* Rewriting the same setpoint restarts the timer. */
    regmap_read_controls(&a, 50000);
    CU_ASSERT_EQUAL(wr(&a, wset, 2, blk + 2), 0);
    regmap_read_controls(&a, 60000);
    regmap_read_controls(&a, 100000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.battery.setpoint_w, 1500, 0);
    regmap_publish(&a, 100000);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 704, "WSetRvrtRem"), 20, 0);
    regmap_read_controls(&a, 120000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.battery.setpoint_w, 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 704, "WSetEna"), 0, 0); /* the lapse shows on the wire */

    /* Reset: defaults back, model told. */
    CU_ASSERT_EQUAL(wr(&a, ena, 4, blk), 0);
    CU_ASSERT_EQUAL(wr1(&a, addr_of(&a, 702, "WMax"), 2500), 0);
    regmap_read_controls(&a, 130000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.battery.setpoint_w, 1500, 0);
    regmap_reset(&a, 140000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.battery.setpoint_w, 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 704, "WSetEna"), 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 704, "WSet"), 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 704, "WSetMod"), 1, 0);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 704, "WSetRvrtTms"), 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 702, "WMax"), 5000, 0);
    regmap_read_controls(&a, 141000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.battery.setpoint_w, 0, 0);

    /* Spike: the main power point, then a named one; frozen skips the publish. */
    a.spike = 1;
    a.spike_value = 12345;
    regmap_publish(&a, 142000);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 701, "W"), 12345, 0);
    snprintf(a.spike_point, sizeof a.spike_point, "802.SoC");
    a.spike_value = 99;
    regmap_publish(&a, 143000);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 701, "W"), 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 802, "SoC"), 99, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 713, "SoC"), 50, 1e-9);
    a.spike_value = 1e9; /* saturates */
    snprintf(a.spike_point, sizeof a.spike_point, "%s", "");
    regmap_publish(&a, 144000);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 701, "W"), 32767, 0);
    a.spike = 0;
    a.frozen = 1;
    regmap_publish(&a, 145000);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 701, "W"), 32767, 0);
    a.frozen = 0;
    regmap_publish(&a, 146000);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 701, "W"), 0, 0);
    regmap_detach(&a);
}

static void test_pv(void)
{
    struct sim_asset a;
    struct asset_cfg c = cfg_of("pv-1", ASSET_PV, 2);
    struct pv_params p = {.peak_w = 8000,
                          .ac_max_w = 6000,
                          .gamma_per_k = -0.004,
                          .noct_c = 45,
                          .temp_ambient_c = 20,
                          .system_derate = 1};
    c.u.pv = p;
    memset(&a, 0, sizeof a);
    a.cfg = &c;
    a.type = ASSET_PV;
    pv_init(&a.m.pv, &p);
    char err[200];
    CU_ASSERT_EQUAL_FATAL(regmap_attach(&a, err, sizeof err), 0);
    CU_ASSERT_PTR_NULL(model_regs(&a, 802));
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 702, "WMaxRtg"), 6000, 0);
    a.m.pv.power_w = 4321;
    regmap_publish(&a, 1000);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 701, "W"), 4321, 0);

    uint16_t pct = addr_of(&a, 704, "WMaxLimPct"), ena = addr_of(&a, 704, "WMaxLimPctEna");
    CU_ASSERT_EQUAL(wr1(&a, pct, 1001), 3); /* 100.1 % */
    CU_ASSERT_EQUAL(wr1(&a, pct, 400), 0);  /* 40 %, not enabled yet */
    regmap_read_controls(&a, 2000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.pv.limit_pct, 100, 0);
    CU_ASSERT_EQUAL(wr1(&a, ena, 1), 0);
    regmap_read_controls(&a, 3000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.pv.limit_pct, 40, 0);
    /* Reversion after 10 s. */
    uint16_t tms[2] = {0, 10};
    CU_ASSERT_EQUAL(wr(&a, addr_of(&a, 704, "WMaxLimPctRvrtTms"), 2, tms), 0);
    regmap_read_controls(&a, 4000);
    regmap_read_controls(&a, 13000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.pv.limit_pct, 40, 0);
    regmap_read_controls(&a, 14000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.pv.limit_pct, 100, 0);
    /* WSet is stored, not implemented, on a PV inverter: any int32 accepted. */
    uint16_t w[2] = {0x7FFF, 0};
    CU_ASSERT_EQUAL(wr(&a, addr_of(&a, 704, "WSet"), 2, w), 0);
    CU_ASSERT_EQUAL(wr1(&a, pct, 500), 0);
    regmap_reset(&a, 20000);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 704, "WMaxLimPct"), 100, 0);
    CU_ASSERT_DOUBLE_EQUAL(a.m.pv.limit_pct, 100, 0);
    regmap_detach(&a);
}

static void test_meter(void)
{
    struct sim_asset a;
    struct asset_cfg c = cfg_of("grid", ASSET_METER, 1);
    struct meter_params p = {.role = METER_GRID, .voltage_v = 230, .nominal_hz = 50, .phases = 3};
    c.u.meter = p;
    memset(&a, 0, sizeof a);
    a.cfg = &c;
    a.type = ASSET_METER;
    meter_init(&a.m.meter, &p);
    char err[200];
    CU_ASSERT_EQUAL_FATAL(regmap_attach(&a, err, sizeof err), 0);
    meter_step(&a.m.meter, 0, 3600000, -3000); /* exporting 3 kW for an hour */
    regmap_publish(&a, 3600000);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 203, "W"), -3000, 10); /* W_SF 1 for a 69 kW scale */
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 203, "WphA"), -1000, 10);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 203, "TotWhExp"), 3000, 1);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 203, "Hz"), 50, 0.01);
    CU_ASSERT_DOUBLE_EQUAL(val(&a, 203, "PhVphB"), 230, 0.1);
    double v;
    CU_ASSERT_EQUAL(get(&a, 203, "TotWhImp", &v), -ENODATA); /* acc32 0 reads so */
    CU_ASSERT_EQUAL(wr1(&a, addr_of(&a, 203, "W"), 1), 2);
    regmap_detach(&a);
}

static void test_evse(void)
{
    struct sim_asset a;
    struct asset_cfg c = cfg_of("ev-1", ASSET_EVSE, 5);
    struct evse_params p = {.phases = 3,
                            .min_current_a = 6,
                            .max_current_a = 16,
                            .voltage_v = 230,
                            .default_current_a = 16,
                            .failsafe_ms = 0};
    c.u.evse = p;
    memset(&a, 0, sizeof a);
    a.cfg = &c;
    a.type = ASSET_EVSE;
    evse_init(&a.m.evse, &p);
    char err[200];
    CU_ASSERT_EQUAL_FATAL(regmap_attach(&a, err, sizeof err), 0);
    uint16_t *r = regimage_regs(a.img);
    CU_ASSERT_EQUAL(a.img->start, 0);
    CU_ASSERT_EQUAL(r[0], 0x4556);
    CU_ASSERT_EQUAL(r[2], 'A');
    CU_ASSERT_EQUAL(r[4], 60);
    CU_ASSERT_EQUAL(r[6], 160);
    CU_ASSERT_EQUAL(wr1(&a, 2, 'C'), 2); /* read-only */
    CU_ASSERT_EQUAL(wr1(&a, 6, 30), 3);  /* 3 A: below the minimum */
    CU_ASSERT_EQUAL(wr1(&a, 6, 170), 3); /* 17 A: above the maximum */
    CU_ASSERT_EQUAL(wr1(&a, 6, 0), 0);   /* pause */
    regmap_read_controls(&a, 1000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.evse.current_limit_a, 0, 0);
    CU_ASSERT_EQUAL(wr1(&a, 6, 70), 0); /* 7 A */
    regmap_read_controls(&a, 2000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.evse.current_limit_a, 7, 0);
    CU_ASSERT_EQUAL(a.m.evse.last_command_ms, 2000);
    CU_ASSERT_EQUAL(wr1(&a, 7, 2), 3);
    CU_ASSERT_EQUAL(wr1(&a, 7, 0), 0);
    regmap_read_controls(&a, 3000);
    CU_ASSERT_EQUAL(a.m.evse.enabled, 0);
    /* Failsafe registers reach the model. */
    uint16_t fs[2] = {30, 60};
    CU_ASSERT_EQUAL(wr(&a, 19, 2, fs), 0);
    regmap_read_controls(&a, 4000);
    CU_ASSERT_EQUAL(a.m.evse.p.failsafe_ms, 30000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.evse.p.failsafe_current_a, 6, 0);
    a.m.evse.power_w = 11040;
    regmap_publish(&a, 5000);
    CU_ASSERT_EQUAL(r[9], 0);
    CU_ASSERT_EQUAL(r[10], 11040);
    /* Spike on a named map point. */
    a.spike = 1;
    snprintf(a.spike_point, sizeof a.spike_point, "Current");
    a.spike_value = 99.9;
    regmap_publish(&a, 6000);
    CU_ASSERT_EQUAL(r[11], 999);
    a.spike = 0;
    /* Reset: default current, enabled, failsafe from the parameters. */
    regmap_reset(&a, 7000);
    CU_ASSERT_EQUAL(r[6], 160);
    CU_ASSERT_EQUAL(r[7], 1);
    CU_ASSERT_EQUAL(r[19], 0);
    CU_ASSERT_DOUBLE_EQUAL(a.m.evse.current_limit_a, 16, 0);
    CU_ASSERT_EQUAL(a.m.evse.enabled, 1);
    CU_ASSERT_EQUAL(a.m.evse.p.failsafe_ms, 0);
    regmap_detach(&a);
}

static void test_boiler(void)
{
    struct sim_asset a;
    struct asset_cfg c = cfg_of("boiler", ASSET_BOILER, 6);
    struct boiler_params p = {.rated_w = 3000,
                              .volume_l = 200,
                              .ua_w_per_k = 2,
                              .eta = 1,
                              .temp_init_c = 50,
                              .temp_ambient_c = 20,
                              .temp_cold_c = 10,
                              .setpoint_c = 60,
                              .hysteresis_k = 5,
                              .temp_max_c = 85,
                              .temp_min_c = 40};
    c.u.boiler = p;
    memset(&a, 0, sizeof a);
    a.cfg = &c;
    a.type = ASSET_BOILER;
    boiler_init(&a.m.boiler, &p);
    char err[200];
    CU_ASSERT_EQUAL_FATAL(regmap_attach(&a, err, sizeof err), 0);
    uint16_t *r = regimage_regs(a.img);
    CU_ASSERT_EQUAL(r[0], 0x424F);
    CU_ASSERT_EQUAL(r[3], 500);
    CU_ASSERT_EQUAL(r[4], 600);
    CU_ASSERT_EQUAL(r[6], 3000);
    CU_ASSERT_EQUAL(wr1(&a, 4, 810), 3); /* 81 C > 85 - 5 */
    CU_ASSERT_EQUAL(wr1(&a, 4, 150), 3); /* 15 C < 20 */
    CU_ASSERT_EQUAL(wr1(&a, 6, 3001), 3);
    CU_ASSERT_EQUAL(wr1(&a, 7, 5), 3);
    CU_ASSERT_EQUAL(wr1(&a, 8, 4), 3);
    uint16_t set[4] = {700, 0, 1500, 3}; /* setpoint 70 C, (Power is read-only) */
    CU_ASSERT_EQUAL(wr(&a, 4, 4, set), 2);
    CU_ASSERT_EQUAL(wr1(&a, 4, 700), 0);
    uint16_t lim[2] = {1500, 3};
    CU_ASSERT_EQUAL(wr(&a, 6, 2, lim), 0);
    regmap_read_controls(&a, 1000);
    CU_ASSERT_DOUBLE_EQUAL(a.m.boiler.setpoint_c, 70, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(a.m.boiler.power_limit_w, 1500, 0);
    CU_ASSERT_EQUAL(a.m.boiler.sg_mode, 3);
    /* Command: executes at the next read and clears. */
    a.m.boiler.heat_demand = 0;
    CU_ASSERT_EQUAL(wr1(&a, 8, 1), 0);
    regmap_read_controls(&a, 2000);
    CU_ASSERT_EQUAL(a.m.boiler.heat_demand, 1);
    CU_ASSERT_EQUAL(r[8], 0);
    CU_ASSERT_EQUAL(wr1(&a, 8, 2), 0);
    regmap_read_controls(&a, 3000);
    CU_ASSERT_EQUAL(a.m.boiler.heat_demand, 0);
    CU_ASSERT_EQUAL(r[8], 0);
    regmap_reset(&a, 4000);
    CU_ASSERT_EQUAL(r[4], 600);
    CU_ASSERT_EQUAL(r[6], 3000);
    CU_ASSERT_EQUAL(r[7], 2);
    CU_ASSERT_DOUBLE_EQUAL(a.m.boiler.setpoint_c, 60, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(a.m.boiler.power_limit_w, 3000, 0);
    CU_ASSERT_EQUAL(a.m.boiler.sg_mode, 2);
    regmap_detach(&a);
}

static void test_load_and_markdown(void)
{
    struct sim_asset a;
    memset(&a, 0, sizeof a);
    a.type = ASSET_LOAD;
    char err[200];
    CU_ASSERT_EQUAL(regmap_attach(&a, err, sizeof err), 0);
    CU_ASSERT_PTR_NULL(a.img);
    regmap_publish(&a, 0);
    regmap_read_controls(&a, 0);
    regmap_detach(&a);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(regdoc_markdown(f), 0);
    fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "| 40301 | 704 | WSet | int32 | W | WSet_SF | RW |"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "## EVSE"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "| 6 | CurrentLimit |"));
    free(buf);
}

/* The words sunspec.c gives v on a copy of the model (with res_write's saturation when it
 * refuses): what publish must have written, whichever path it took. */
static void expect_words(struct sim_asset *a, uint16_t id, const char *point, double v)
{
    const struct sunspec_model *m = sunspec_model_find(id);
    const struct sunspec_point *p = sunspec_point_find(m, point);
    uint16_t *mr = model_regs(a, id);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mr);
    uint16_t copy[256];
    CU_ASSERT_FATAL(m->length + 2u <= 256u);
    memcpy(copy, mr, (m->length + 2u) * sizeof *copy);
    if (isnan(v)) {
        sunspec_write_na(p, copy);
    } else if (sunspec_write_value(m, p, copy, v) == -ERANGE) {
        int64_t lo, hi;
        CU_ASSERT_EQUAL_FATAL(sunspec_type_range(p->type, &lo, &hi), 0);
        sunspec_write_raw(p, copy, v > 0 ? hi : lo);
    }
    int same = !memcmp(copy + p->offset, mr + p->offset, p->size * sizeof *copy);
    if (!same)
        fprintf(stderr, "\n  %u.%s for %.17g: %04x, sunspec.c %04x\n", id, point, v, mr[p->offset],
                copy[p->offset]);
    CU_ASSERT(same);
}

/* Publish writes only the points whose value changed; every value, rounding halfway cases,
 * saturation, accumulators past their width and a spiked scale factor included, must still
 * come out as gateway/devices/sunspec.c encodes it on a fresh copy. */
static void test_publish_matches_sunspec(void)
{
    struct sim_asset a;
    struct asset_cfg c;
    char err[200];
    battery_asset(&a, &c);
    CU_ASSERT_EQUAL_FATAL(regmap_attach(&a, err, sizeof err), 0);
    static const double powers[] = {
        0,      -0.0,    0.5,     -0.5,    1.5,      -1.5, 2.5,  -2.5,    0.49999999999999994,
        4999.5, -3999.5, 32766.6, 32767.5, -32767.5, 1e9,  -1e9, 123.456, 123.456,
        7,      -7,      1e300,   -1e300};
    static const double energies[] = {0,    0.4,    0.5, 1e6 + 0.5, 4294967295.0, 4294967296.5,
                                      1e15, 9.3e18, 0.5};
    static const double temps[] = {25, 25.04, 25.05, 25.15, -12.25, 3276.7, 3276.75, 1e5};
    int64_t now = 0;
    for (size_t i = 0; i < sizeof powers / sizeof powers[0]; i++) {
        struct battery *b = &a.m.battery;
        b->power_w = powers[i];
        b->discharged_wh = energies[i % (sizeof energies / sizeof energies[0])];
        b->charged_wh = energies[(i + 3) % (sizeof energies / sizeof energies[0])];
        b->temp_c = temps[i % (sizeof temps / sizeof temps[0])];
        b->soc = (double)i / 40.0 + 0.00125;
        regmap_publish(&a, now += 1000);
        expect_words(&a, 701, "W", powers[i]);
        expect_words(&a, 701, "VA", fabs(powers[i]));
        expect_words(&a, 701, "A", fabs(powers[i]) / (3.0 * 230.0));
        expect_words(&a, 802, "W", powers[i]);
        expect_words(&a, 802, "A", powers[i] / 400.0);
        expect_words(&a, 701, "TotWhInj", b->discharged_wh);
        expect_words(&a, 701, "TotWhAbs", b->charged_wh);
        expect_words(&a, 701, "TmpCab", b->temp_c);
        expect_words(&a, 713, "SoC", b->soc * 100.0);
        expect_words(&a, 701, "Hz", 50.0);
        if (i == 10) {
            /* A spike on a scale factor stays in the image (scale factors are written once):
             * every later value is encoded with it. */
            a.spike = 1;
            snprintf(a.spike_point, sizeof a.spike_point, "701.W_SF");
            a.spike_value = 2;
            regmap_publish(&a, now += 1000);
            a.spike = 0;
            a.spike_point[0] = '\0';
        }
    }
    regmap_detach(&a);
}

void test_register_regmap(void)
{
    CU_pSuite s = CU_add_suite("regmap", NULL, NULL);
    CU_add_test(s, "battery image", test_battery_image);
    CU_add_test(s, "battery writes", test_battery_writes);
    CU_add_test(s, "battery reversion, reset, spike", test_battery_reversion_and_reset);
    CU_add_test(s, "pv", test_pv);
    CU_add_test(s, "meter", test_meter);
    CU_add_test(s, "evse", test_evse);
    CU_add_test(s, "boiler", test_boiler);
    CU_add_test(s, "load and markdown", test_load_and_markdown);
    CU_add_test(s, "publish encodes as sunspec.c", test_publish_matches_sunspec);
}
