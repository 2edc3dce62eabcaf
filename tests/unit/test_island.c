/* Unit tests for grid outages (islanding): the `grid_outage` event in sim/scenario/scenario.c, the
 * island physics of sim/run/site.c (grid 0, the batteries follow the balance, a shortfall is
 * unserved, a surplus curtails PV, no battery means a blackout), the grid meter's SunSpec 203 Evt
 * bit and the outage KPIs of reports/kpi.c. The fixture tests/data/island/island.json islands its
 * one site from 10 s to 30 s; overrides vary the assets. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "gateway/devices/sunspec.h"
#include "reports/kpi.h"
#include "sim/wire/regimage.h"
#include "sim/scenario/scenario.h"
#include "sim/run/site.h"

#define ISLAND "tests/data/island/island.json"
#define TOL_W  1e-6

static struct scenario *load(const char *const *ovs, size_t n)
{
    struct scenario *sc = NULL;
    char err[1024];
    int rc = scenario_load(ISLAND, ovs, n, &sc, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "\n%s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return sc;
}

static struct site *new_site(const struct scenario *sc)
{
    char err[1024];
    struct site *s = site_new(sc, 0, err, sizeof err);
    if (!s)
        fprintf(stderr, "\n%s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

/* One checked step of 1 s at t. */
static struct site_balance step(struct site *s, int64_t t)
{
    char err[512];
    site_step(s, t, 1000);
    int rc = site_check(s, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "\nt=%lld ms: %s\n", (long long)t, err);
    CU_ASSERT_EQUAL(rc, 0);
    return site_balance(s);
}

static int islanded_at(int64_t t)
{
    return t >= 10000 && t < 30000;
}

/* A point of a SunSpec model in an asset's image, decoded as a client would. */
static int img_read(void *ctx, uint16_t addr, uint16_t n, uint16_t *dst)
{
    struct regimage *img = ctx;
    if (regimage_check_read(img, addr, n))
        return -1;
    memcpy(dst, regimage_regs(img) + (addr - img->start), n * sizeof *dst);
    return 0;
}

static double point(struct sim_asset *a, uint16_t model, const char *name)
{
    struct sunspec_found found[8];
    size_t n;
    uint16_t base;
    double v = NAN;
    CU_ASSERT_EQUAL_FATAL(sunspec_walk(img_read, a->img, found, 8, &n, &base, NULL, 0), 0);
    for (size_t i = 0; i < n; i++) {
        if (found[i].id != model)
            continue;
        const struct sunspec_model *m = sunspec_model_find(model);
        CU_ASSERT_EQUAL(sunspec_read_value(m, sunspec_point_find(m, name),
                                           regimage_regs(a->img) + (found[i].start - a->img->start),
                                           &v),
                        0);
    }
    return v;
}

/* Islanded, the battery takes the whole load (its setpoint 0 notwithstanding), the grid and
 * the grid meter read 0 and the meter's Evt shows the power failure with nominal frequency;
 * before and after, the site imports and the Evt is clear. */
static void test_balance(void)
{
    struct scenario *sc = load(NULL, 0);
    struct site *s = new_site(sc);
    struct sim_asset *grid = site_find_asset(s, "grid"), *bat = site_find_asset(s, "bat");
    struct sim_asset *lm = site_find_asset(s, "load-meter");
    for (int64_t t = 0; t < 60000; t += 1000) {
        struct site_balance b = step(s, t);
        int on = islanded_at(t);
        CU_ASSERT_EQUAL_FATAL(b.islanded, on);
        CU_ASSERT_DOUBLE_EQUAL(b.unserved_w, 0.0, 0.0);
        CU_ASSERT_DOUBLE_EQUAL(b.load_w, 2000.0, TOL_W);
        CU_ASSERT_DOUBLE_EQUAL(b.grid_w, on ? 0.0 : 2000.0, TOL_W);
        CU_ASSERT_DOUBLE_EQUAL(b.battery_w, on ? 2000.0 : 0.0, TOL_W);
        CU_ASSERT_DOUBLE_EQUAL(grid->m.meter.true_w, b.grid_w, 0.0);
        CU_ASSERT_DOUBLE_EQUAL(point(grid, 203, "W"), on ? 0.0 : 2000.0, 1.0);
        CU_ASSERT_DOUBLE_EQUAL(point(grid, 203, "Evt"), on ? METER_EVT_POWER_FAILURE : 0, 0);
        CU_ASSERT_DOUBLE_EQUAL(point(grid, 203, "Hz"), on ? 50.0 : 49.9, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(point(lm, 203, "Evt"), 0, 0); /* a load meter never shows it */
        CU_ASSERT_DOUBLE_EQUAL(point(lm, 203, "W"), 2000.0, 1.0);
    }
    /* 20 s at 2 kW from the battery, nothing from the grid in that time. */
    CU_ASSERT_DOUBLE_EQUAL(bat->m.battery.discharged_wh, 2000.0 * 20 / 3600, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(grid->m.meter.import_wh, 2000.0 * 40 / 3600, 1e-9);
    site_free(s);
    scenario_free(sc);
}

/* An empty battery delivers nothing: the whole load is unserved; the balance still closes. */
static void test_empty_battery(void)
{
    const char *ov[] = {"sites[0].assets[2].soc_init=0"};
    struct scenario *sc = load(ov, 1);
    struct site *s = new_site(sc);
    for (int64_t t = 0; t < 40000; t += 1000) {
        struct site_balance b = step(s, t);
        CU_ASSERT_DOUBLE_EQUAL(b.battery_w, 0.0, 0.0);
        CU_ASSERT_DOUBLE_EQUAL(b.unserved_w, islanded_at(t) ? 2000.0 : 0.0, TOL_W);
    }
    site_free(s);
    scenario_free(sc);
}

/* A battery too small for the outage covers the load until it is empty, then the rest is
 * unserved; at no step does it deliver more than was stored. */
static void test_battery_runs_out(void)
{
    const char *ov[] = {"sites[0].assets[2].capacity_kwh=0.005"}; /* 5 Wh: 2.5 kWs */
    struct scenario *sc = load(ov, 1);
    struct site *s = new_site(sc);
    struct sim_asset *bat = site_find_asset(s, "bat");
    double unserved_wh = 0;
    for (int64_t t = 0; t < 40000; t += 1000) {
        struct site_balance b = step(s, t);
        unserved_wh += b.unserved_w / 3600.0;
        CU_ASSERT(b.battery_w >= 0.0);
        CU_ASSERT(b.battery_w + b.unserved_w <= 2000.0 + TOL_W);
    }
    CU_ASSERT(bat->m.battery.soc < 0.05);
    CU_ASSERT(unserved_wh > 2000.0 * 20 / 3600 - 2.5 - 1e-6); /* the 2.5 Wh the battery had */
    CU_ASSERT(unserved_wh < 2000.0 * 20 / 3600);
    site_free(s);
    scenario_free(sc);
}

/* PV beyond load + what the battery can take is curtailed by the excess; a full battery takes
 * nothing, so PV is cut to the load. */
static void test_pv_surplus(void)
{
    const char *ov[] = {"profiles.sun.points=[[\"0s\",1000]]",
                        "sites[0].assets[2].max_charge_kw=1"};
    struct scenario *sc = load(ov, 2);
    struct site *s = new_site(sc);
    struct sim_asset *pv = site_find_asset(s, "pv");
    for (int64_t t = 0; t < 40000; t += 1000) {
        double curt0 = pv->m.pv.curtailed_wh;
        struct site_balance b = step(s, t);
        CU_ASSERT(pv->m.pv.available_w > 4000.0);
        if (islanded_at(t)) {
            CU_ASSERT_DOUBLE_EQUAL(b.battery_w, -1000.0, TOL_W);
            CU_ASSERT_DOUBLE_EQUAL(b.pv_w, 3000.0, TOL_W);
            CU_ASSERT_DOUBLE_EQUAL(pv->m.pv.curtailed_wh - curt0,
                                   (pv->m.pv.available_w - 3000.0) / 3600.0, 1e-9);
        } else {
            CU_ASSERT_DOUBLE_EQUAL(b.pv_w, pv->m.pv.available_w, TOL_W);
            CU_ASSERT(b.grid_w < -2000.0); /* exporting */
        }
        CU_ASSERT_DOUBLE_EQUAL(b.unserved_w, 0.0, 0.0);
    }
    site_free(s);
    scenario_free(sc);

    const char *full[] = {"profiles.sun.points=[[\"0s\",1000]]", "sites[0].assets[2].soc_init=1"};
    sc = load(full, 2);
    s = new_site(sc);
    for (int64_t t = 0; t < 40000; t += 1000) {
        struct site_balance b = step(s, t);
        if (islanded_at(t)) {
            CU_ASSERT_DOUBLE_EQUAL(b.battery_w, 0.0, TOL_W);
            CU_ASSERT_DOUBLE_EQUAL(b.pv_w, 2000.0, TOL_W);
        }
    }
    site_free(s);
    scenario_free(sc);
}

/* No battery: nothing forms the grid, PV trips (anti-islanding) and all demand is unserved. */
static void test_no_battery(void)
{
    const char *ov[] = {"profiles.sun.points=[[\"0s\",1000]]",
                        "sites[0].assets[2]={\"id\":\"bat\",\"type\":\"load\",\"base_w\":0}"};
    struct scenario *sc = load(ov, 2);
    struct site *s = new_site(sc);
    struct sim_asset *pv = site_find_asset(s, "pv");
    for (int64_t t = 0; t < 40000; t += 1000) {
        struct site_balance b = step(s, t);
        int on = islanded_at(t);
        CU_ASSERT_DOUBLE_EQUAL(b.pv_w, on ? 0.0 : pv->m.pv.available_w, TOL_W);
        CU_ASSERT_DOUBLE_EQUAL(b.unserved_w, on ? 2000.0 : 0.0, TOL_W);
        CU_ASSERT_DOUBLE_EQUAL(b.grid_w, on ? 0.0 : 2000.0 - pv->m.pv.available_w, TOL_W);
    }
    site_free(s);
    scenario_free(sc);
}

/* Two batteries share the load by what each can deliver (5 kW and 2.5 kW: 2/3 and 1/3). */
static void test_two_batteries(void)
{
    const char *ov[] = {"sites[0].assets[1].base_w=3000",
                        "sites[0].assets[4]={\"id\":\"bat2\",\"type\":\"battery\","
                        "\"capacity_kwh\":5,\"soc_init\":0.5,\"max_charge_kw\":2.5,"
                        "\"max_discharge_kw\":2.5}"};
    struct scenario *sc = load(ov, 2);
    struct site *s = new_site(sc);
    struct sim_asset *b1 = site_find_asset(s, "bat"), *b2 = site_find_asset(s, "bat2");
    for (int64_t t = 0; t < 40000; t += 1000) {
        struct site_balance b = step(s, t);
        int on = islanded_at(t);
        CU_ASSERT_DOUBLE_EQUAL(b1->m.battery.power_w, on ? 2000.0 : 0.0, TOL_W);
        CU_ASSERT_DOUBLE_EQUAL(b2->m.battery.power_w, on ? 1000.0 : 0.0, TOL_W);
        CU_ASSERT_DOUBLE_EQUAL(b.unserved_w, 0.0, 0.0);
    }
    site_free(s);
    scenario_free(sc);
}

/* The setpoint is ignored while islanded and followed again once the grid is back; a faulted
 * battery forms no grid (a blackout, as without a battery). */
static void test_restoration(void)
{
    struct scenario *sc = load(NULL, 0);
    struct site *s = new_site(sc);
    struct sim_asset *bat = site_find_asset(s, "bat");
    battery_command(&bat->m.battery, 0, -1000.0);
    for (int64_t t = 0; t < 40000; t += 1000) {
        struct site_balance b = step(s, t);
        CU_ASSERT_DOUBLE_EQUAL(b.battery_w, islanded_at(t) ? 2000.0 : -1000.0, TOL_W);
        CU_ASSERT_EQUAL(bat->m.battery.state, BATTERY_RUNNING);
    }
    site_free(s);
    scenario_free(sc);

    /* an override cannot append to a list: the whole list, with a device fault from 0 s */
    const char *ov2[] = {
        "events=[{\"at\":\"10s\",\"type\":\"grid_outage\",\"duration\":\"20s\"},"
        "{\"at\":\"0s\",\"type\":\"fault\",\"asset\":\"bat\",\"fault\":\"device\"}]"};
    sc = load(ov2, 1);
    s = new_site(sc);
    for (int64_t t = 0; t < 40000; t += 1000) {
        struct site_balance b = step(s, t);
        CU_ASSERT_DOUBLE_EQUAL(b.battery_w, 0.0, 0.0);
        CU_ASSERT_DOUBLE_EQUAL(b.unserved_w, islanded_at(t) ? 2000.0 : 0.0, TOL_W);
    }
    site_free(s);
    scenario_free(sc);
}

/* ---- the event ----------------------------------------------------------------------------- */

static void expect_fail(const char *ov, const char *want1, const char *want2)
{
    struct scenario *sc = (struct scenario *)1;
    char err[1024] = "";
    const char *ovs[1] = {ov};
    int rc = scenario_load(ISLAND, ovs, 1, &sc, err, sizeof err);
    CU_ASSERT_EQUAL(rc, -EINVAL);
    CU_ASSERT_PTR_NULL(sc);
    if (rc == 0)
        scenario_free(sc);
    int ok = strstr(err, want1) != NULL && (!want2 || strstr(err, want2) != NULL);
    if (!ok)
        fprintf(stderr, "\n  --set %s\n    got:  %s\n    want: %s | %s\n", ov, err, want1,
                want2 ? want2 : "");
    CU_ASSERT(ok);
}

static void test_event_parse(void)
{
    const char *ov[] = {"events=[{\"at\":\"40s\",\"type\":\"grid_outage\",\"duration\":\"5s\"},"
                        "{\"at\":\"0s\",\"type\":\"fault\",\"asset\":\"bat\",\"fault\":\"frozen\"},"
                        "{\"at\":\"10s\",\"type\":\"grid_outage\",\"site\":\"s\","
                        "\"duration\":\"20s\"}]"};
    struct scenario *sc = load(ov, 1);
    CU_ASSERT_EQUAL(sc->n_events, 1); /* the fault only */
    CU_ASSERT_EQUAL(sc->n_dispatches, 0);
    CU_ASSERT_EQUAL_FATAL(sc->n_outages, 2);
    CU_ASSERT_EQUAL(sc->outages[0].seq, 2); /* sorted by (at, seq) */
    CU_ASSERT_EQUAL(sc->outages[0].type, EVENT_GRID_OUTAGE);
    CU_ASSERT_EQUAL(sc->outages[0].at_ms, 10000);
    CU_ASSERT_EQUAL(sc->outages[0].duration_ms, 20000);
    CU_ASSERT_STRING_EQUAL(sc->outages[0].site_id, "s");
    CU_ASSERT_EQUAL(sc->outages[1].seq, 0);
    CU_ASSERT_EQUAL(sc->outages[1].at_ms, 40000);
    scenario_free(sc);
    /* back to back is not an overlap */
    const char *adj[] = {"events=[{\"at\":\"10s\",\"type\":\"grid_outage\",\"duration\":\"5s\"},"
                         "{\"at\":\"15s\",\"type\":\"grid_outage\",\"duration\":\"5s\"}]"};
    sc = load(adj, 1);
    CU_ASSERT_EQUAL(sc->n_outages, 2);
    scenario_free(sc);
}

static void test_event_errors(void)
{
    expect_fail("events[0].site=nowhere",
                "island.json: events[0].site: no site \"nowhere\", got \"nowhere\"", NULL);
    expect_fail("events[0].duration=0s", "island.json: events[0].duration: must be >= 1s",
                "got \"0s\"");
    expect_fail("events[0].duration=-5m", "events[0].duration: must be a duration", "got \"-5m\"");
    expect_fail("events=[{\"at\":\"10s\",\"type\":\"grid_outage\"}]",
                "events[0].duration: required key missing", NULL);
    expect_fail("events[0].asset=grid",
                "events[0].asset: a grid_outage islands the whole site: name the site, not an "
                "asset, got \"grid\"",
                NULL);
    expect_fail("events[0].fault=timeout", "events[0]: unknown key \"fault\"", NULL);
    expect_fail("events[0].at=2m", "events[0].at: must be before the end of the run", NULL);
    expect_fail("events=[{\"at\":\"10s\",\"type\":\"grid_outage\",\"duration\":\"20s\"},"
                "{\"at\":\"5s\",\"type\":\"fault\",\"asset\":\"bat\",\"fault\":\"frozen\"},"
                "{\"at\":\"29s\",\"type\":\"grid_outage\",\"duration\":\"5s\"}]",
                "island.json: events[2].at: overlaps the grid outage of site \"s\" at events[0] "
                "(10s to 30s), got \"29s\"",
                NULL);
    expect_fail("events[0].type=blackout", "events[0].type: must be \"fault\", \"dispatch\", ",
                "\"estop_release\", \"command\", \"headend_outage\" or \"headend_freeze\", got "
                "\"blackout\"");
}

/* ---- KPIs ---------------------------------------------------------------------------------- */

static void test_kpis(void)
{
    struct kpi_acc *a = kpi_acc_new(1, 0.0, 1.0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    struct kpi_sample s = {.load_w = 2000,
                           .soc_lo = NAN,
                           .soc_hi = NAN,
                           .soc_mean = NAN,
                           .import_price = NAN,
                           .export_price = NAN,
                           .boiler_temp_c = NAN,
                           .freq_hz = NAN};
    struct kpi_set k, base;
    /* No outage: outage_s 0, unserved 0, island_supply_pct null. */
    kpi_acc_site(a, 0, &s, 3600000);
    kpi_acc_tick_end(a, 3600000, 3600000);
    kpi_acc_result(a, &k);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_OUTAGE_S], 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_UNSERVED_ENERGY_KWH], 0, 0);
    CU_ASSERT(isnan(k.v[KPI_ISLAND_SUPPLY_PCT]));
    /* An hour islanded at 2 kW demand with 500 W unserved: 0.5 kWh, 75 % supplied. */
    s.islanded = 1;
    s.unserved_w = 500;
    s.battery_w = 1500;
    kpi_acc_site(a, 0, &s, 3600000);
    kpi_acc_tick_end(a, 7200000, 3600000);
    kpi_acc_result(a, &k);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_OUTAGE_S], 3600, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_UNSERVED_ENERGY_KWH], 0.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_ISLAND_SUPPLY_PCT], 75.0, 1e-9);
    CU_ASSERT(isnan(k.v[KPI_UNSERVED_REDUCTION_KWH]));
    memset(&base, 0, sizeof base);
    base.v[KPI_UNSERVED_ENERGY_KWH] = 2.0;
    kpi_vs_baseline(&k, &base);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_UNSERVED_REDUCTION_KWH], 1.5, 1e-12);
    CU_ASSERT(kpi_is_vs_baseline(KPI_UNSERVED_REDUCTION_KWH));
    CU_ASSERT(!kpi_is_vs_baseline(KPI_ISLAND_SUPPLY_PCT));
    CU_ASSERT_EQUAL(kpi_find("unserved_energy_kwh"), KPI_UNSERVED_ENERGY_KWH);
    CU_ASSERT_EQUAL(kpi_find("outage_s"), KPI_OUTAGE_S);
    CU_ASSERT_EQUAL(kpi_find("island_supply_pct"), KPI_ISLAND_SUPPLY_PCT);
    CU_ASSERT_EQUAL(kpi_find("unserved_reduction_kwh"), KPI_UNSERVED_REDUCTION_KWH);
    kpi_acc_free(a);
}

void test_register_island(void)
{
    CU_pSuite s = CU_add_suite("island", NULL, NULL);
    CU_add_test(s, "balance and meter Evt", test_balance);
    CU_add_test(s, "empty battery", test_empty_battery);
    CU_add_test(s, "battery runs out", test_battery_runs_out);
    CU_add_test(s, "pv surplus curtailed", test_pv_surplus);
    CU_add_test(s, "no battery", test_no_battery);
    CU_add_test(s, "two batteries", test_two_batteries);
    CU_add_test(s, "restoration and faulted battery", test_restoration);
    CU_add_test(s, "event parse", test_event_parse);
    CU_add_test(s, "event errors", test_event_errors);
    CU_add_test(s, "kpis", test_kpis);
}
