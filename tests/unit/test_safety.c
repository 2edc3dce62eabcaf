/* Unit tests for the safety interlocks (gateway/control/safety.c), one per interlock with its
 * reason code, the device safe states, the configuration rules, and the DecisionMetrics CSV row. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "gateway/control/arbiter.h"
#include "gateway/control/safety.h"

static struct safety_cfg cfg;

static int setup(void)
{
    char err[256];
    return safety_cfg_load(NULL, "gateway.safety", &cfg, err, sizeof err);
}

/* Battery 0 (5 kW, SoC 0.5, 25 degC), pv 1, evse 2, boiler 3, grid meter 4. */
static void site(struct procimg *img)
{
    memset(img, 0, sizeof *img);
    img->now_ms = 10000;
    img->n_devices = 5;
    enum procimg_type t[] = {PROCIMG_BATTERY, PROCIMG_PV, PROCIMG_EVSE, PROCIMG_BOILER,
                             PROCIMG_METER_GRID};
    const char *ids[] = {"bat", "pv", "evse", "boiler", "grid"};
    for (int i = 0; i < 5; i++) {
        struct procimg_dev *d = &img->dev[i];
        snprintf(d->asset_id, sizeof d->asset_id, "%s", ids[i]);
        d->type = t[i];
        d->online = 1;
        d->soc = d->soc_min = d->soc_max = d->capacity_wh = d->voltage_v = NAN;
        d->temperature_c = NAN;
        d->max_charge_w = d->max_discharge_w = NAN;
        d->rated_w = 7000;
    }
    struct procimg_dev *b = &img->dev[0];
    b->soc = 0.5;
    b->temperature_c = 25;
    b->max_charge_w = b->max_discharge_w = 5000;
    b->voltage_v = 400;
    img->grid_ok = 1;
}

/* Runs a battery request through arbitration and safety; returns the final setpoint. */
static double run(const struct procimg *img, double req_w, struct decision *dm)
{
    static const struct arbiter_cfg acfg = {.split_resolution_w = 1};
    decision_init(dm, img, "test");
    decision_request(dm, DSRC_MANUAL, 0, req_w);
    arbiter_resolve(&acfg, img, NULL, NULL, dm);
    CU_ASSERT_EQUAL(safety_apply(&cfg, img, dm), 0);
    CU_ASSERT(dm->asset[0].set);
    return dm->asset[0].final_w;
}

static int has(const struct decision *dm, int reason, double from, double to)
{
    for (size_t i = 0; i < dm->n_clamps; i++)
        if (dm->clamp[i].reason == reason && fabs(dm->clamp[i].from_w - from) < 1e-6 &&
            fabs(dm->clamp[i].to_w - to) < 1e-6)
            return 1;
    return 0;
}

static void test_pass_through(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    CU_ASSERT_EQUAL(run(&img, 1234, &dm), 1234.0);
    CU_ASSERT_EQUAL(dm.n_clamps, 0);
    CU_ASSERT_EQUAL(dm.asset[0].source, DSRC_MANUAL);
    CU_ASSERT_FALSE(dm.asset[1].set); /* nobody asked the pv */
}

static void test_nonfinite(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    CU_ASSERT_EQUAL(run(&img, NAN, &dm), 0.0);
    CU_ASSERT_EQUAL(decision_count(&dm, DR_NONFINITE), 1);
    CU_ASSERT_EQUAL(run(&img, -INFINITY, &dm), 0.0);
    CU_ASSERT_EQUAL(decision_count(&dm, DR_NONFINITE), 1);
}

static void test_offline_stale(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    img.dev[0].online = 0;
    CU_ASSERT_EQUAL(run(&img, 3000, &dm), 0.0);
    CU_ASSERT(has(&dm, DR_OFFLINE, 3000, 0));
    site(&img);
    img.dev[0].stale = 1;
    img.dev[0].has_prev_setpoint = 1; /* the safe state does not wait for the ramp */
    img.dev[0].prev_setpoint_w = 4000;
    img.dev[0].prev_setpoint_ms = 9000;
    cfg.ramp_w_per_s = 100;
    CU_ASSERT_EQUAL(run(&img, 3000, &dm), 0.0);
    cfg.ramp_w_per_s = 0;
    CU_ASSERT(has(&dm, DR_STALE, 3000, 0));
    /* other devices: pv and boiler released, evse to 0 */
    site(&img);
    for (int i = 1; i < 4; i++)
        img.dev[i].online = 0;
    decision_init(&dm, &img, "t");
    for (int i = 1; i < 4; i++)
        decision_request(&dm, DSRC_MANUAL, i, 1000);
    struct arbiter_cfg acfg = {.split_resolution_w = 1};
    arbiter_resolve(&acfg, &img, NULL, NULL, &dm);
    safety_apply(&cfg, &img, &dm);
    CU_ASSERT_FALSE(dm.asset[1].set);
    CU_ASSERT(dm.asset[2].set);
    CU_ASSERT_EQUAL(dm.asset[2].final_w, 0.0);
    CU_ASSERT_FALSE(dm.asset[3].set);
    CU_ASSERT_FALSE(dm.asset[4].set); /* meters are never set */
}

static void test_soc(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    img.dev[0].soc = 0.05; /* at the floor: no discharge, charge allowed */
    CU_ASSERT_EQUAL(run(&img, 3000, &dm), 0.0);
    CU_ASSERT(has(&dm, DR_SOC_FLOOR, 3000, 0));
    CU_ASSERT_EQUAL(run(&img, -3000, &dm), -3000.0);
    img.dev[0].soc = 0.06; /* half-way up the 0.02 band: half power */
    CU_ASSERT(fabs(run(&img, 5000, &dm) - 2500) < 1e-6);
    img.dev[0].soc = 0.95; /* at the ceiling: no charge */
    CU_ASSERT_EQUAL(run(&img, -3000, &dm), 0.0);
    CU_ASSERT(has(&dm, DR_SOC_CEILING, -3000, 0));
    CU_ASSERT_EQUAL(run(&img, 3000, &dm), 3000.0);
    img.dev[0].soc = 0.5; /* the battery's own window is tighter */
    img.dev[0].soc_min = 0.5;
    CU_ASSERT_EQUAL(run(&img, 3000, &dm), 0.0);
    img.dev[0].soc_min = NAN;
    img.dev[0].soc = 1.2; /* implausible readings: stop */
    CU_ASSERT_EQUAL(run(&img, -3000, &dm), 0.0);
    CU_ASSERT(has(&dm, DR_SOC_INVALID, -3000, 0));
    img.dev[0].soc = NAN;
    CU_ASSERT_EQUAL(run(&img, 3000, &dm), 0.0);
}

static void test_temperature(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    img.dev[0].temperature_c = 55; /* stop */
    CU_ASSERT_EQUAL(run(&img, 3000, &dm), 0.0);
    CU_ASSERT(has(&dm, DR_TEMP_STOP, 3000, 0));
    img.dev[0].temperature_c = 50; /* half-way from 45 to 55: half of 5 kW */
    CU_ASSERT(fabs(run(&img, 5000, &dm) - 2500) < 1e-6);
    CU_ASSERT(has(&dm, DR_TEMP_DERATE, 5000, 2500));
    CU_ASSERT(fabs(run(&img, -5000, &dm) + 2500) < 1e-6);
    img.dev[0].temperature_c = -5; /* too cold to charge, discharge fine */
    CU_ASSERT_EQUAL(run(&img, -1000, &dm), 0.0);
    CU_ASSERT(has(&dm, DR_TEMP_COLD, -1000, 0));
    CU_ASSERT_EQUAL(run(&img, 1000, &dm), 1000.0);
    img.dev[0].temperature_c = NAN; /* no sensor: no temperature interlock */
    CU_ASSERT_EQUAL(run(&img, 1000, &dm), 1000.0);
}

static void test_power_current(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    CU_ASSERT_EQUAL(run(&img, 8000, &dm), 5000.0);
    CU_ASSERT(has(&dm, DR_POWER_DEVICE, 8000, 5000));
    cfg.max_charge_w = 2000;
    CU_ASSERT_EQUAL(run(&img, -8000, &dm), -2000.0);
    CU_ASSERT(has(&dm, DR_POWER_DEVICE, -8000, -5000));
    CU_ASSERT(has(&dm, DR_POWER_CONFIG, -5000, -2000));
    cfg.max_charge_w = 1e6;
    cfg.max_current_a = 10; /* 10 A at 400 V */
    CU_ASSERT_EQUAL(run(&img, 4500, &dm), 4000.0);
    CU_ASSERT(has(&dm, DR_CURRENT, 4500, 4000));
    img.dev[0].voltage_v = NAN; /* nominal 400 V */
    CU_ASSERT_EQUAL(run(&img, -4500, &dm), -4000.0);
    img.dev[0].voltage_v = 200;
    CU_ASSERT_EQUAL(run(&img, -4500, &dm), -2000.0);
    cfg.max_current_a = 0;
    img.dev[0].max_discharge_w = -1; /* a nonsense reading allows nothing */
    CU_ASSERT_EQUAL(run(&img, 100, &dm), 0.0);
}

static void test_ramp(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    cfg.ramp_w_per_s = 500;
    img.dev[0].has_prev_setpoint = 1;
    img.dev[0].prev_setpoint_w = 1000;
    img.dev[0].prev_setpoint_ms = 8000; /* 2 s ago: +/- 1000 W */
    CU_ASSERT_EQUAL(run(&img, 4000, &dm), 2000.0);
    CU_ASSERT(has(&dm, DR_RAMP, 4000, 2000));
    CU_ASSERT_EQUAL(run(&img, -3000, &dm), 0.0);
    CU_ASSERT_EQUAL(run(&img, 1500, &dm), 1500.0);
    /* a hard limit below the ramp window wins: the SoC floor stops it now */
    img.dev[0].prev_setpoint_w = 4000;
    img.dev[0].soc = 0.04;
    CU_ASSERT_EQUAL(run(&img, 4000, &dm), 0.0);
    cfg.ramp_w_per_s = 0;
}

static void test_grid_limits(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    cfg.grid_import_max_w = 3000;
    cfg.grid_export_max_w = 1000;
    img.grid_w = 6000; /* battery idle; importing 6 kW */
    img.dev[0].power_w = 0;
    CU_ASSERT_EQUAL(run(&img, 0, &dm), 3000.0);
    CU_ASSERT(has(&dm, DR_GRID_IMPORT, 0, 3000));
    img.grid_w = 10000; /* beyond what the battery can do: as far as it can */
    CU_ASSERT_EQUAL(run(&img, 0, &dm), 5000.0);
    img.grid_w = -4000; /* exporting 4 kW: charge 3 kW */
    CU_ASSERT_EQUAL(run(&img, 0, &dm), -3000.0);
    CU_ASSERT(has(&dm, DR_GRID_EXPORT, 0, -3000));
    /* the strategy's own change counts: discharging 2 kW more would export too much */
    img.grid_w = 500;
    CU_ASSERT_EQUAL(run(&img, 2000, &dm), 1500.0);
    /* but never against an interlock: at the floor it cannot discharge for the import limit */
    img.grid_w = 6000;
    img.dev[0].soc = 0.05;
    CU_ASSERT_EQUAL(run(&img, 0, &dm), 0.0);
    /* no trustworthy grid reading: no grid adjustment */
    img.dev[0].soc = 0.5;
    img.grid_ok = 0;
    CU_ASSERT_EQUAL(run(&img, 0, &dm), 0.0);
    cfg.grid_import_max_w = cfg.grid_export_max_w = 1e9;
}

/* Three batteries 0-2 (5 kW each, SoC 0.5, measured power 0) and a grid meter 3. */
static void site3(struct procimg *img)
{
    site(img);
    img->n_devices = 4;
    for (int i = 1; i < 3; i++) {
        img->dev[i] = img->dev[0];
        snprintf(img->dev[i].asset_id, sizeof img->dev[i].asset_id, "bat%d", i);
    }
    img->dev[3].type = PROCIMG_METER_GRID;
    for (int i = 0; i < 3; i++)
        img->dev[i].power_w = 0;
}

/* Runs per-battery requests through arbitration and safety into final[0..2]. */
static void run3(const struct procimg *img, const double req[3], struct decision *dm,
                 double final[3])
{
    static const struct arbiter_cfg acfg = {.split_resolution_w = 1};
    decision_init(dm, img, "test");
    for (int i = 0; i < 3; i++)
        decision_request(dm, DSRC_MANUAL, i, req[i]);
    arbiter_resolve(&acfg, img, NULL, NULL, dm);
    CU_ASSERT_EQUAL(safety_apply(&cfg, img, dm), 0);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT(dm->asset[i].set);
        final[i] = dm->asset[i].final_w;
    }
}

/* The grid limits with several batteries (docs/safety.md rows 15-16): in device order, each as
 * far as its range allows, until the predicted grid is exactly at the limit. */
static void test_grid_several_batteries(void)
{
    struct procimg img;
    struct decision dm;
    double f[3];
    const double idle[3] = {0, 0, 0};
    site3(&img);
    cfg.grid_import_max_w = 3000;
    cfg.grid_export_max_w = 1000;

    /* exporting 12 kW: 11 kW more charge, the first two full, the third the rest */
    img.grid_w = -12000;
    run3(&img, idle, &dm, f);
    CU_ASSERT_EQUAL(f[0], -5000.0);
    CU_ASSERT_EQUAL(f[1], -5000.0);
    CU_ASSERT_EQUAL(f[2], -1000.0);
    CU_ASSERT(has(&dm, DR_GRID_EXPORT, 0, -1000));
    CU_ASSERT_EQUAL(decision_count(&dm, DR_GRID_EXPORT), 3);

    /* the first battery's ramp leaves it 2 kW of room: the others take the rest */
    cfg.ramp_w_per_s = 2000;
    img.dev[0].has_prev_setpoint = 1;
    img.dev[0].prev_setpoint_w = 0;
    img.dev[0].prev_setpoint_ms = img.now_ms - 1000;
    run3(&img, idle, &dm, f);
    CU_ASSERT_EQUAL(f[0], -2000.0);
    CU_ASSERT_EQUAL(f[1], -5000.0);
    CU_ASSERT_EQUAL(f[2], -4000.0);
    /* a battery already charging 1 kW of its 2 kW ramp room: it has 1 kW left, not 2 */
    const double some[3] = {-1000, 0, 0};
    run3(&img, some, &dm, f);
    CU_ASSERT_EQUAL(f[0], -2000.0);
    CU_ASSERT_EQUAL(f[1], -5000.0);
    CU_ASSERT_EQUAL(f[2], -4000.0);
    cfg.ramp_w_per_s = 0;
    img.dev[0].has_prev_setpoint = 0;

    /* importing: the strategy's own charging counts (grid 9 kW + 2 kW = 11 kW), 8 kW more
     * discharge, the first battery from -2 kW to +5 kW, the second the last 1 kW */
    img.grid_w = 9000;
    const double charging[3] = {-2000, 0, 0};
    run3(&img, charging, &dm, f);
    CU_ASSERT_EQUAL(f[0], 5000.0);
    CU_ASSERT_EQUAL(f[1], 1000.0);
    CU_ASSERT_EQUAL(f[2], 0.0);
    CU_ASSERT(has(&dm, DR_GRID_IMPORT, -2000, 5000));
    CU_ASSERT(has(&dm, DR_GRID_IMPORT, 0, 1000));

    /* an offline battery is not in the prediction (its 3 kW reading cannot be trusted) and is
     * not moved; a battery with no power reading is left out of the prediction but moves */
    img.grid_w = 5000;
    img.dev[0].online = 0;
    img.dev[0].power_w = 3000;
    img.dev[1].power_w = NAN;
    run3(&img, idle, &dm, f);
    CU_ASSERT_EQUAL(f[0], 0.0);
    CU_ASSERT_EQUAL(f[1], 2000.0);
    CU_ASSERT_EQUAL(f[2], 0.0);
    site3(&img);

    /* out of reach: every battery at its limit, nothing more */
    img.grid_w = -40000;
    run3(&img, idle, &dm, f);
    CU_ASSERT_EQUAL(f[0], -5000.0);
    CU_ASSERT_EQUAL(f[1], -5000.0);
    CU_ASSERT_EQUAL(f[2], -5000.0);

    /* liveness: requests inside every limit, grid inside its limits: unchanged, no clamp */
    img.grid_w = 2000;
    const double fine[3] = {1500, -700, 250.5};
    run3(&img, fine, &dm, f);
    CU_ASSERT_EQUAL(f[0], 1500.0);
    CU_ASSERT_EQUAL(f[1], -700.0);
    CU_ASSERT_EQUAL(f[2], 250.5);
    CU_ASSERT_EQUAL(dm.n_clamps, 0);
    cfg.grid_import_max_w = cfg.grid_export_max_w = 1e9;
}

static void test_other_devices(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_MANUAL, 1, 9000); /* pv limit above rating */
    decision_request(&dm, DSRC_MANUAL, 2, -100); /* evse cannot feed in */
    decision_request(&dm, DSRC_MANUAL, 3, NAN);  /* boiler: released */
    struct arbiter_cfg acfg = {.split_resolution_w = 1};
    arbiter_resolve(&acfg, &img, NULL, NULL, &dm);
    safety_apply(&cfg, &img, &dm);
    CU_ASSERT_EQUAL(dm.asset[1].final_w, 7000.0);
    CU_ASSERT(has(&dm, DR_RATING, 9000, 7000));
    CU_ASSERT_EQUAL(dm.asset[2].final_w, 0.0);
    CU_ASSERT_FALSE(dm.asset[3].set);
    CU_ASSERT_EQUAL(decision_count(&dm, DR_NONFINITE), 1);
    CU_ASSERT_EQUAL(dm.asset[0].final_w, 0.0); /* battery default */
}

static void test_limits_for_split(void)
{
    struct procimg img;
    site(&img);
    img.dev[0].soc = 0.05;
    double lo[5], hi[5];
    safety_limits(&cfg, &img, lo, hi);
    CU_ASSERT_EQUAL(lo[0], -5000.0);
    CU_ASSERT_EQUAL(hi[0], 0.0);
    CU_ASSERT_EQUAL(hi[1], 7000.0);
    CU_ASSERT_EQUAL(lo[4], 0.0);
    CU_ASSERT_EQUAL(hi[4], 0.0);
}

static void test_config_rules(void)
{
    struct safety_cfg c;
    char err[256];
    cJSON *o = cJSON_Parse("{\"soc_floor\": 0.9, \"soc_ceiling\": 0.8}");
    CU_ASSERT_EQUAL(safety_cfg_load(o, "gateway.safety", &c, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err,
                           "gateway.safety.soc_floor: must be below soc_ceiling (0.8), got 0.9");
    cJSON_Delete(o);
    o = cJSON_Parse("{\"soc_floor\": 1.5}");
    CU_ASSERT_EQUAL(safety_cfg_load(o, "gateway.safety", &c, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "gateway.safety.soc_floor: must be in [0, 1], got 1.5");
    cJSON_Delete(o);
    o = cJSON_Parse("{\"temp_derate_c\": 60}");
    CU_ASSERT_EQUAL(safety_cfg_load(o, "gateway.safety", &c, err, sizeof err), -EINVAL);
    cJSON_Delete(o);
}

static void test_csv(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    img.grid_w = 1500.25;
    img.dev[0].soc = 0.05;
    snprintf(img.dev[0].asset_id, sizeof img.dev[0].asset_id, "bat,1");
    run(&img, 3000, &dm);
    dm.target_w = 0;
    char buf[1024];
    CU_ASSERT(decision_csv_header(buf, sizeof buf) > 0);
    CU_ASSERT_STRING_EQUAL(buf, "now_ms,strategy,grid_w,soc,battery_w,pv_w,target_w,error_w,p_w,"
                                "i_w,d_w,raw_w,setpoints,clamps,dropped\n");
    CU_ASSERT(decision_csv_row(&dm, buf, sizeof buf) > 0);
    CU_ASSERT_STRING_EQUAL(buf, "10000,test,1500.250,0.050000,0.000,0.000,0.000,nan,nan,nan,nan,"
                                "nan,bat_1=0.000@manual,bat_1:soc_floor:3000.000>0.000,0\n");
    CU_ASSERT_EQUAL(decision_csv_row(&dm, buf, 20), -ENOSPC);
    CU_ASSERT_EQUAL(strlen(buf), 19);
}

void test_register_safety(void)
{
    CU_pSuite s = CU_add_suite("safety", setup, NULL);
    CU_add_test(s, "pass through", test_pass_through);
    CU_add_test(s, "non-finite request", test_nonfinite);
    CU_add_test(s, "offline and stale safe states", test_offline_stale);
    CU_add_test(s, "soc floor and ceiling", test_soc);
    CU_add_test(s, "temperature", test_temperature);
    CU_add_test(s, "power and current", test_power_current);
    CU_add_test(s, "ramp", test_ramp);
    CU_add_test(s, "grid import and export", test_grid_limits);
    CU_add_test(s, "grid limits with several batteries", test_grid_several_batteries);
    CU_add_test(s, "pv, evse, boiler", test_other_devices);
    CU_add_test(s, "limits for the split", test_limits_for_split);
    CU_add_test(s, "config rules", test_config_rules);
    CU_add_test(s, "csv row", test_csv);
}
