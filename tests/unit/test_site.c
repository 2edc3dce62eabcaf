/* Unit tests for sim/run/site.c over the fixtures in tests/data/site/: the balance closes at every
 * step, fault events begin and end at the right steps (overlaps included), an offline spell
 * ends in a reboot, replicas draw from their own streams, and two runs are bit-identical. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "sim/scenario/scenario.h"
#include "sim/run/site.h"

#define FULL    "tests/data/site/full.json"
#define MINIMAL "tests/data/site/minimal.json"

static struct scenario *load(const char *path)
{
    struct scenario *sc = NULL;
    char err[1024];
    int rc = scenario_load(path, NULL, 0, &sc, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "\n%s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return sc;
}

static struct site *new_site(const struct scenario *sc, size_t i)
{
    char err[1024];
    struct site *s = site_new(sc, i, err, sizeof err);
    if (!s)
        fprintf(stderr, "\n%s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

/* Steps the whole run, checking the invariants after every step. Returns the failed checks. */
static int run_checked(struct site *s, const struct scenario *sc)
{
    int bad = 0;
    char err[512];
    for (int64_t t = 0; t < sc->duration_ms; t += sc->step_ms) {
        site_step(s, t, sc->step_ms);
        if (site_check(s, err, sizeof err) != 0) {
            if (bad++ == 0)
                fprintf(stderr, "\nt=%lld ms: %s\n", (long long)t, err);
        }
    }
    return bad;
}

static void test_balance_closes(void)
{
    struct scenario *sc = load(FULL);
    struct site *s = new_site(sc, 0);
    CU_ASSERT_EQUAL(site_n_assets(s), 7);
    CU_ASSERT_EQUAL(run_checked(s, sc), 0);

    /* The run saw real flows: sun, a car, the boiler and the meters agree with the models. */
    struct sim_asset *grid = site_find_asset(s, "grid"), *pv = site_find_asset(s, "pv");
    struct sim_asset *ev = site_find_asset(s, "ev"), *dhw = site_find_asset(s, "dhw");
    struct sim_asset *hm = site_find_asset(s, "house-meter"), *house = site_find_asset(s, "house");
    CU_ASSERT_PTR_NULL(site_find_asset(s, "nope"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(grid);
    CU_ASSERT_PTR_NOT_NULL_FATAL(hm);
    CU_ASSERT(pv->m.pv.energy_wh > 0.0);
    CU_ASSERT(ev->m.evse.total_energy_wh > 1000.0);
    CU_ASSERT_EQUAL(ev->m.evse.sessions_done, 2);
    CU_ASSERT(dhw->m.boiler.energy_wh > 0.0);
    CU_ASSERT_DOUBLE_EQUAL(hm->m.meter.import_wh, house->m.load.energy_wh, 1e-6);
    struct site_balance b = site_balance(s);
    CU_ASSERT_DOUBLE_EQUAL(grid->m.meter.true_w, b.grid_w, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(b.grid_w, b.load_w + b.evse_w + b.boiler_w - b.pv_w - b.battery_w, 1e-9);
    site_free(s);
    scenario_free(sc);
}

/* Fault events: each begins at the first step with now >= at and ends at the first step with
 * now >= at + duration; an exception that overlaps a timeout outlives it. */
static void test_events(void)
{
    struct scenario *sc = load(FULL);
    struct site *s = new_site(sc, 0);
    struct sim_asset *bat = site_find_asset(s, "bat"), *pv = site_find_asset(s, "pv");
    struct sim_asset *grid = site_find_asset(s, "grid"), *dhw = site_find_asset(s, "dhw");
    struct sim_asset *ev = site_find_asset(s, "ev");
    for (int64_t t = 0; t < 1100000; t += 1000) {
        site_step(s, t, 1000);
        int frozen = t >= 10000 && t < 30000;
        CU_ASSERT_EQUAL_FATAL(bat->frozen, frozen);
        enum wire_mode want = WIRE_OK;
        if (t >= 40000 && t < 45000)
            want = WIRE_TIMEOUT;
        else if (t >= 45000 && t < 65000)
            want = WIRE_EXCEPTION;
        else if (t >= 200000 && t < 260000)
            want = WIRE_OFFLINE;
        CU_ASSERT_EQUAL_FATAL(bat->wire.mode, want);
        if (want == WIRE_EXCEPTION)
            CU_ASSERT_EQUAL(bat->wire.code, 4);
        CU_ASSERT_EQUAL_FATAL(pv->wire.mode, t >= 100000 && t < 130000 ? WIRE_SLOW : WIRE_OK);
        if (pv->wire.mode == WIRE_SLOW)
            CU_ASSERT_EQUAL(pv->wire.delay_ms, 200);
        CU_ASSERT_EQUAL_FATAL(grid->spike, t >= 300000 && t < 310000);
        if (grid->spike) {
            CU_ASSERT_STRING_EQUAL(grid->spike_point, "W");
            CU_ASSERT_DOUBLE_EQUAL(grid->spike_value, 99999.0, 0.0);
        }
        int dhw_fault = t >= 400000 && t < 500000;
        CU_ASSERT_EQUAL_FATAL(dhw->m.boiler.op.state == BOILER_FAULT, dhw_fault);
        CU_ASSERT_EQUAL_FATAL(pv->m.pv.fault, t >= 400000 && t < 450000);
        if (pv->m.pv.fault)
            CU_ASSERT_EQUAL(pv->m.pv.power_w, 0.0);
        CU_ASSERT_EQUAL_FATAL(ev->m.evse.state == IEC_F, t >= 900000 && t < 960000);
        CU_ASSERT_EQUAL_FATAL(bat->m.battery.state == BATTERY_FAULT, t >= 1000000);
    }
    CU_ASSERT_EQUAL(ev->m.evse.state, IEC_C); /* car a is back on charge after the trip */
    site_free(s);
    scenario_free(sc);
}

/* An offline spell ends in a reboot: the battery forgets its setpoint; the energy is kept. */
static void test_offline_reboot(void)
{
    struct scenario *sc = load(MINIMAL);
    struct site *s = new_site(sc, 0);
    struct sim_asset *bat = site_find_asset(s, "bat");
    CU_ASSERT_PTR_NOT_NULL_FATAL(bat);
    int64_t t = 0;
    for (; t < 40000; t += 1000)
        site_step(s, t, 1000);
    battery_command(&bat->m.battery, t, -2000.0);
    for (; t < 80000; t += 1000) {
        site_step(s, t, 1000);
        CU_ASSERT_EQUAL(bat->wire.mode, t >= 50000 ? WIRE_OFFLINE : WIRE_OK);
        CU_ASSERT_DOUBLE_EQUAL(bat->m.battery.power_w, -2000.0, 1e-9);
    }
    double e = bat->m.battery.energy_wh;
    site_step(s, t, 1000); /* 80 s: the spell ends, the device reboots */
    CU_ASSERT_EQUAL(bat->wire.mode, WIRE_OK);
    CU_ASSERT_EQUAL(bat->m.battery.setpoint_w, 0.0);
    CU_ASSERT_EQUAL(bat->m.battery.power_w, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(bat->m.battery.energy_wh, e, 0.0);
    struct site_balance b = site_balance(s);
    CU_ASSERT_DOUBLE_EQUAL(b.grid_w, b.load_w, 0.0);
    site_free(s);
    scenario_free(sc);
}

/* Replicas: their own ids, seeds and noise streams; the invariants hold for each. */
static void test_replicas(void)
{
    struct scenario *sc = load(MINIMAL);
    CU_ASSERT_EQUAL_FATAL(sc->n_sites, 2);
    struct site *a = new_site(sc, 0), *b = new_site(sc, 1);
    CU_ASSERT_STRING_NOT_EQUAL(site_cfg(a)->id, site_cfg(b)->id);
    int differ = 0;
    char err[512];
    for (int64_t t = 0; t < 600000; t += 1000) {
        site_step(a, t, 1000);
        site_step(b, t, 1000);
        CU_ASSERT_EQUAL_FATAL(site_check(a, err, sizeof err), 0);
        CU_ASSERT_EQUAL_FATAL(site_check(b, err, sizeof err), 0);
        differ |= site_balance(a).load_w != site_balance(b).load_w;
    }
    CU_ASSERT(differ);
    site_free(a);
    site_free(b);
    scenario_free(sc);
}

/* site_check catches a broken invariant and names site, asset and value. */
static void test_check_detects(void)
{
    struct scenario *sc = load(MINIMAL);
    struct site *s = new_site(sc, 0);
    char err[512];
    site_step(s, 0, 1000);
    CU_ASSERT_EQUAL(site_check(s, err, sizeof err), 0);
    struct sim_asset *bat = site_find_asset(s, "bat");
    double soc = bat->m.battery.soc;
    bat->m.battery.soc = 1.5;
    CU_ASSERT_EQUAL(site_check(s, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bat"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "1.5"));
    bat->m.battery.soc = soc;
    bat->m.battery.power_w += 1.0; /* a model changed behind the meter's back */
    CU_ASSERT_EQUAL(site_check(s, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "balance"));
    site_free(s);
    scenario_free(sc);
}

/* FNV-1a over the bytes of every value a step produces. */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

static uint64_t state_hash(struct site *s, uint64_t h)
{
    struct site_balance b = site_balance(s);
    h = mix(h, &b, sizeof b);
    for (size_t i = 0; i < site_n_assets(s); i++) {
        struct sim_asset *a = site_asset(s, i);
        double v[4] = {0};
        switch (a->type) {
        case ASSET_BATTERY:
            v[0] = a->m.battery.energy_wh, v[1] = a->m.battery.temp_c;
            v[2] = a->m.battery.loss_wh, v[3] = a->m.battery.state;
            break;
        case ASSET_PV:
            v[0] = a->m.pv.power_w, v[1] = a->m.pv.curtailed_wh;
            break;
        case ASSET_METER:
            v[0] = a->m.meter.shown_w, v[1] = a->m.meter.import_wh, v[2] = a->m.meter.export_wh;
            v[3] = a->m.meter.frequency_hz;
            break;
        case ASSET_LOAD:
            v[0] = a->m.load.noise_w, v[1] = a->m.load.energy_wh;
            break;
        case ASSET_EVSE:
            v[0] = a->m.evse.session_energy_wh, v[1] = a->m.evse.shortfall_wh;
            v[2] = a->m.evse.state;
            break;
        case ASSET_BOILER:
            v[0] = a->m.boiler.temp_c, v[1] = a->m.boiler.energy_wh, v[2] = a->m.boiler.op.state;
            break;
        }
        h = mix(h, v, sizeof v);
        h = mix(h, &a->wire, sizeof a->wire);
    }
    return h;
}

static void run_hashes(uint64_t *out, size_t n)
{
    struct scenario *sc = load(FULL);
    struct site *s = new_site(sc, 0);
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t k = 0; k < n; k++) {
        site_step(s, (int64_t)k * sc->step_ms, sc->step_ms);
        out[k] = h = state_hash(s, h);
    }
    site_free(s);
    scenario_free(sc);
}

static void test_determinism(void)
{
    static uint64_t a[7200], b[7200];
    run_hashes(a, 7200);
    run_hashes(b, 7200);
    size_t first = 7200;
    for (size_t k = 0; k < 7200 && first == 7200; k++)
        if (a[k] != b[k])
            first = k;
    CU_ASSERT_EQUAL(first, 7200);
}

void test_register_site(void)
{
    CU_pSuite s = CU_add_suite("site", NULL, NULL);
    CU_add_test(s, "balance closes", test_balance_closes);
    CU_add_test(s, "events", test_events);
    CU_add_test(s, "offline reboot", test_offline_reboot);
    CU_add_test(s, "replicas", test_replicas);
    CU_add_test(s, "check detects", test_check_detects);
    CU_add_test(s, "determinism", test_determinism);
}
