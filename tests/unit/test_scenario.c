/* Unit tests for the scenario loader (sim/scenario/): good files load with defaults, unit
 * conversions, replicas and sorted events; bad files and bad overrides fail with the file, the JSON
 * path and the value. Fixtures in tests/data/scenarios/; paths are relative to the repository root.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "common/caltime.h"
#include "sim/physics/rng.h"
#include "sim/scenario/scenario.h"

#define DIR "tests/data/scenarios/"

static char err[1024];

static struct scenario *load_ok(const char *path, const char *const *ov, size_t n)
{
    struct scenario *s = NULL;
    int rc = scenario_load(path, ov, n, &s, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "\n  unexpected error (%d): %s\n", rc, err);
    CU_ASSERT_EQUAL(rc, 0);
    return s;
}

/* Loads path with one optional override and expects rc and every substring in `want`. */
static void expect_fail(const char *path, const char *ov, int want_rc, const char *want1,
                        const char *want2)
{
    struct scenario *s = (struct scenario *)1;
    const char *ovs[1] = {ov};
    int rc = scenario_load(path, ovs, ov ? 1 : 0, &s, err, sizeof err);
    CU_ASSERT_EQUAL(rc, want_rc);
    CU_ASSERT_PTR_NULL(s);
    if (rc == 0)
        scenario_free(s);
    int ok = strstr(err, want1) != NULL && (!want2 || strstr(err, want2) != NULL);
    if (!ok)
        fprintf(stderr, "\n  %s --set %s\n    got:  %s\n    want: %s | %s\n", path, ov ? ov : "-",
                err, want1, want2 ? want2 : "");
    CU_ASSERT(ok);
}

static void test_good_defaults(void)
{
    struct scenario *s = load_ok(DIR "good-defaults.json", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int64_t start;
    caltime_parse("2026-01-05T00:00:00Z", &start);
    CU_ASSERT_STRING_EQUAL(s->name, "good-defaults");
    CU_ASSERT_EQUAL(s->seed, 1234);
    CU_ASSERT_EQUAL(s->start_unix_ms, start);
    CU_ASSERT_EQUAL(s->duration_ms, 7200000);
    CU_ASSERT_EQUAL(s->step_ms, 500);
    CU_ASSERT_EQUAL(strlen(s->sha256), 64);
    CU_ASSERT_EQUAL_FATAL(s->n_profiles, 4);
    CU_ASSERT_STRING_EQUAL(s->profiles[0].name, "sun");
    CU_ASSERT_STRING_EQUAL(s->profiles[3].name, "price");
    CU_ASSERT_EQUAL(s->profiles[1].start_unix_ms, start);

    CU_ASSERT_EQUAL_FATAL(s->n_sites, 1);
    const struct site_cfg *site = &s->sites[0];
    CU_ASSERT_STRING_EQUAL(site->id, "home");
    CU_ASSERT_STRING_EQUAL(site->base_id, "home");
    CU_ASSERT_EQUAL(site->replica, 0);
    CU_ASSERT_EQUAL(site->port, 0);
    CU_ASSERT_EQUAL(site->seed, rng_derive_seed(1234, "home"));
    CU_ASSERT_PTR_EQUAL(site->import_price, scenario_profile(s, "price"));
    CU_ASSERT_PTR_NULL(site->export_price);
    CU_ASSERT_EQUAL_FATAL(site->n_assets, 6);

    const struct asset_cfg *a = site->assets;
    CU_ASSERT_EQUAL(a[0].type, ASSET_BATTERY);
    CU_ASSERT_EQUAL(a[0].unit_id, 1);
    const struct battery_params *b = &a[0].u.battery;
    CU_ASSERT_DOUBLE_EQUAL(b->capacity_wh, 13500, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(b->max_charge_w, 5000, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(b->max_discharge_w, 4600, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(b->soc_init, 0.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(b->eta_charge, 0.95, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(b->eta_discharge, 0.95, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(b->soc_low_band, 0.05, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(b->soc_high_band, 0.9, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(b->temp_tau_s, 1800, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(b->temp_stop_c, 55, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(b->voltage_v, 400, 1e-12);
    CU_ASSERT_EQUAL(b->response.latency_ms, 0);
    CU_ASSERT_DOUBLE_EQUAL(b->response.ramp_w_per_s, 0, 1e-12);

    CU_ASSERT_EQUAL(a[1].type, ASSET_PV);
    CU_ASSERT_EQUAL(a[1].unit_id, 2);
    CU_ASSERT_DOUBLE_EQUAL(a[1].u.pv.peak_w, 9500, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(a[1].u.pv.ac_max_w, 9500, 1e-9); /* defaults to the peak */
    CU_ASSERT_DOUBLE_EQUAL(a[1].u.pv.gamma_per_k, -0.004, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(a[1].u.pv.system_derate, 0.9, 1e-12);
    CU_ASSERT_PTR_EQUAL(a[1].u.pv.irradiance, scenario_profile(s, "sun"));

    CU_ASSERT_EQUAL(a[2].type, ASSET_METER);
    CU_ASSERT_EQUAL(a[2].u.meter.role, METER_GRID);
    CU_ASSERT_EQUAL(a[2].u.meter.refresh_ms, 0);
    CU_ASSERT_EQUAL(a[2].u.meter.phases, 3);
    CU_ASSERT_DOUBLE_EQUAL(a[2].u.meter.nominal_hz, 50, 1e-12);
    CU_ASSERT_PTR_NULL(a[2].u.meter.frequency);

    CU_ASSERT_EQUAL(a[3].type, ASSET_LOAD);
    CU_ASSERT_PTR_EQUAL(a[3].u.load.profile, scenario_profile(s, "load"));
    CU_ASSERT_DOUBLE_EQUAL(a[3].u.load.scale, 1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(a[3].u.load.noise_phi, 0.9, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(a[3].u.load.noise_sigma_w, 0, 1e-12);

    CU_ASSERT_EQUAL(a[4].type, ASSET_EVSE);
    CU_ASSERT_EQUAL(a[4].unit_id, 20);
    CU_ASSERT_EQUAL(a[4].u.evse.phases, 3);
    CU_ASSERT_DOUBLE_EQUAL(a[4].u.evse.default_current_a, 16, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(a[4].u.evse.failsafe_current_a, 6, 1e-12);
    CU_ASSERT_EQUAL(a[4].u.evse.failsafe_ms, 0);
    CU_ASSERT_PTR_EQUAL(a[4].u.evse.sessions, scenario_profile(s, "cars"));

    CU_ASSERT_EQUAL(a[5].type, ASSET_BOILER);
    CU_ASSERT_EQUAL(a[5].unit_id, 6);
    CU_ASSERT_DOUBLE_EQUAL(a[5].u.boiler.rated_w, 2000, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(a[5].u.boiler.temp_max_c, 85, 1e-12);
    CU_ASSERT_EQUAL(a[5].u.boiler.op.start_ms, 10000);
    CU_ASSERT_EQUAL(a[5].u.boiler.op.stop_ms, 5000);

    /* EV sessions sorted by arrival, kWh and kW converted. */
    const struct profile *cars = scenario_profile(s, "cars");
    CU_ASSERT_EQUAL_FATAL(cars->n_sessions, 2);
    CU_ASSERT_STRING_EQUAL(cars->sessions[0].id, "a");
    CU_ASSERT_DOUBLE_EQUAL(cars->sessions[0].energy_wh, 20000, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(cars->sessions[0].max_power_w, 11000, 1e-9);
    CU_ASSERT_EQUAL(cars->sessions[0].phases, 3);
    CU_ASSERT_EQUAL(cars->sessions[1].phases, 1);

    CU_ASSERT_PTR_NOT_NULL_FATAL(s->gateway);
    CU_ASSERT_DOUBLE_EQUAL(
        cJSON_GetObjectItem(cJSON_GetObjectItem(s->gateway, "params"), "kp")->valuedouble, 0.4,
        1e-12);
    CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItem(s->expect, "max_import_w"));
    CU_ASSERT_PTR_NOT_NULL(s->root);
    CU_ASSERT_EQUAL(s->n_events, 0);
    scenario_free(s);
}

static void test_replicas(void)
{
    struct scenario *s = load_ok(DIR "replicas.json", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(s->n_sites, 11);
    CU_ASSERT_STRING_EQUAL(s->sites[0].id, "site-01");
    CU_ASSERT_STRING_EQUAL(s->sites[8].id, "site-09");
    CU_ASSERT_STRING_EQUAL(s->sites[9].id, "site-10");
    CU_ASSERT_STRING_EQUAL(s->sites[10].id, "solo");
    for (int k = 0; k < 10; k++) {
        const struct site_cfg *c = &s->sites[k];
        CU_ASSERT_STRING_EQUAL(c->base_id, "site");
        CU_ASSERT_EQUAL(c->replica, k);
        CU_ASSERT_EQUAL(c->port, 15020 + k);
        CU_ASSERT_EQUAL(c->seed, rng_derive_seed(99, c->id));
        CU_ASSERT_EQUAL_FATAL(c->n_assets, 1);
        CU_ASSERT_DOUBLE_EQUAL(c->assets[0].u.battery.capacity_wh, 5000, 1e-9);
        if (k > 0) {
            CU_ASSERT_PTR_NOT_EQUAL(c->assets, s->sites[0].assets); /* deep copies */
            CU_ASSERT_NOT_EQUAL(c->seed, s->sites[k - 1].seed);
        }
    }
    CU_ASSERT_EQUAL(s->sites[10].port, 0);
    CU_ASSERT_EQUAL(s->sites[10].replica, 0);
    scenario_free(s);

    /* 100 replicas pad to three digits. */
    const char *ov[] = {"sites[0].replicas=100", "sites[0].port=0"};
    s = load_ok(DIR "replicas.json", ov, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s->n_sites, 101);
    CU_ASSERT_STRING_EQUAL(s->sites[0].id, "site-001");
    CU_ASSERT_STRING_EQUAL(s->sites[99].id, "site-100");
    CU_ASSERT_EQUAL(s->sites[99].port, 0);
    scenario_free(s);
}

static void test_events_sorted(void)
{
    struct scenario *s = load_ok(DIR "events.json", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(s->n_events, 5);
    static const int seq[] = {3, 1, 4, 0, 2};
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(s->events[i].seq, seq[i]);
    const struct event *e = s->events;
    CU_ASSERT_EQUAL(e[0].fault, FAULT_SPIKE);
    CU_ASSERT_STRING_EQUAL(e[0].point, "");
    CU_ASSERT_DOUBLE_EQUAL(e[0].value, -7000, 1e-12);
    CU_ASSERT_EQUAL(e[0].duration_ms, 60000);
    CU_ASSERT_EQUAL(e[1].fault, FAULT_SLOW);
    CU_ASSERT_EQUAL(e[1].delay_ms, 800);
    CU_ASSERT_STRING_EQUAL(e[1].site_id, "s2"); /* the base id: every replica */
    CU_ASSERT_STRING_EQUAL(e[2].point, "SoC");
    CU_ASSERT_EQUAL(e[3].fault, FAULT_DEVICE);
    CU_ASSERT_EQUAL(e[3].duration_ms, 0);
    CU_ASSERT_EQUAL(e[3].at_ms, 1800000);
    CU_ASSERT_EQUAL(e[4].fault, FAULT_EXCEPTION);
    CU_ASSERT_EQUAL(e[4].code, 6);
    CU_ASSERT_STRING_EQUAL(e[4].asset_id, "grid");
    CU_ASSERT_STRING_EQUAL(fault_kind_name(FAULT_FROZEN), "frozen");
    CU_ASSERT_STRING_EQUAL(asset_type_name(ASSET_EVSE), "evse");
    scenario_free(s);
}

static void test_overrides(void)
{
    const char *ov[] = {"sites[0].assets[1].peak_kw=8",
                        "gateway.params.kp=0.7",
                        "seed=77",
                        "name=renamed",
                        "gateway.params.new_key={\"a\":[1,2]}",
                        "sites[0].assets[0].response={\"latency\":\"200ms\",\"ramp_kw_per_s\":10}"};
    struct scenario *s = load_ok(DIR "good-defaults.json", ov, 6);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_DOUBLE_EQUAL(s->sites[0].assets[1].u.pv.peak_w, 8000, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(s->sites[0].assets[1].u.pv.ac_max_w, 8000, 1e-9);
    CU_ASSERT_EQUAL(s->seed, 77);
    CU_ASSERT_EQUAL(s->sites[0].seed, rng_derive_seed(77, "home"));
    CU_ASSERT_STRING_EQUAL(s->name, "renamed");
    const cJSON *params = cJSON_GetObjectItem(s->gateway, "params");
    CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItem(params, "kp")->valuedouble, 0.7, 1e-12);
    CU_ASSERT(cJSON_IsObject(cJSON_GetObjectItem(params, "new_key")));
    CU_ASSERT_EQUAL(s->sites[0].assets[0].u.battery.response.latency_ms, 200);
    CU_ASSERT_DOUBLE_EQUAL(s->sites[0].assets[0].u.battery.response.ramp_w_per_s, 10000, 1e-9);
    /* root holds the document after the overrides; the hash is of the file as read */
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(s->root, "seed")->valueint, 77);
    struct scenario *plain = load_ok(DIR "good-defaults.json", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(plain);
    CU_ASSERT_STRING_EQUAL(s->sha256, plain->sha256);
    scenario_free(plain);
    scenario_free(s);

    expect_fail(DIR "good-defaults.json", "sites[3].id=x", -EINVAL,
                "good-defaults.json: override \"sites[3].id=x\"", "no element [3]");
    expect_fail(DIR "good-defaults.json", "nothere.x=1", -EINVAL, "no key \"nothere\"", NULL);
    expect_fail(DIR "good-defaults.json", "sites[0].assets[9]=1", -EINVAL, "index out of range",
                NULL);
    expect_fail(DIR "good-defaults.json", "garbage", -EINVAL, "expected PATH=VALUE", NULL);
    expect_fail(DIR "good-defaults.json", "a..b=1", -EINVAL, "expected PATH=VALUE", NULL);
    /* a new key on an existing object is created, then judged by validation */
    expect_fail(DIR "good-defaults.json", "colour=red", -EINVAL, "unknown key \"colour\"", NULL);
    expect_fail(DIR "good-defaults.json", "sites[0].assets[0].capcity_kwh=3", -EINVAL,
                "sites[0].assets[0]: unknown key \"capcity_kwh\"", NULL);
}

/* "timezone": kept with its offset at the start (report axes only); bad names refused. */
static void test_timezone(void)
{
    const char *ov[] = {"timezone=Europe/Berlin", "start=2026-06-21T00:00:00Z"};
    struct scenario *s = load_ok(DIR "good-defaults.json", ov, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s->timezone, "Europe/Berlin");
    CU_ASSERT_EQUAL(s->tz_offset_s, 7200); /* summer time */
    scenario_free(s);
    const char *winter[] = {"timezone=America/New_York", "start=2026-01-10T00:00:00Z"};
    s = load_ok(DIR "good-defaults.json", winter, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s->tz_offset_s, -5 * 3600);
    scenario_free(s);
    s = load_ok(DIR "good-defaults.json", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s->timezone, "");
    CU_ASSERT_EQUAL(s->tz_offset_s, 0);
    scenario_free(s);
    expect_fail(DIR "good-defaults.json", "timezone=Mars/Base", -EINVAL, "timezone: no such zone",
                "Mars/Base");
    expect_fail(DIR "good-defaults.json", "timezone=../etc/passwd", -EINVAL,
                "timezone: must be an IANA zone name", NULL);
    expect_fail(DIR "good-defaults.json", "timezone=3", -EINVAL, "timezone: must be", NULL);
}

struct bad_case {
    const char *file, *override, *want1, *want2;
};

static void test_bad_files(void)
{
    static const struct bad_case cases[] = {
        {"typo-key.json", NULL,
         "tests/data/scenarios/typo-key.json: sites[0].assets[1]: unknown key \"capcity_kwh\"",
         NULL},
        {"missing-capacity.json", NULL, "sites[0].assets[0].capacity_kwh: required key missing",
         NULL},
        {"syntax-error.json", NULL, "syntax-error.json: line 5, column 3: JSON syntax error",
         "got \"duration\": \"1h\""},
        {"good-defaults.json", "sites[0].assets[0].capacity_kwh=-5",
         "good-defaults.json: sites[0].assets[0].capacity_kwh: must be > 0, got -5", NULL},
        {"good-defaults.json", "sites[0].assets[0].soc_init=1.5",
         "sites[0].assets[0].soc_init: must be in [0, 1], got 1.5", NULL},
        {"good-defaults.json", "sites[0].assets[0].soc_low_band=0.5",
         "soc_low_band: must be in [0, 0.5), got 0.5", NULL},
        {"good-defaults.json", "sites[0].assets[0].temp_stop_c=40",
         "temp_stop_c: must be > temp_derate_c (45), got 40", NULL},
        {"good-defaults.json", "sites[0].assets[0].capacity_kwh=\"ten\"",
         "capacity_kwh: must be a number, got \"ten\"", NULL},
        {"good-defaults.json", "sites[0].assets[1].irradiance=cars",
         "sites[0].assets[1].irradiance: profile \"cars\" is ev_sessions, expected series or "
         "clear_sky, got \"cars\"",
         NULL},
        {"good-defaults.json", "sites[0].assets[1].irradiance=nosun",
         "sites[0].assets[1].irradiance: no profile \"nosun\"", "got \"nosun\""},
        {"good-defaults.json", "sites[0].import_price=sun",
         "sites[0].import_price: profile \"sun\" is clear_sky, expected", NULL},
        {"good-defaults.json", "step=7s", "duration: must be a multiple of step (7s), got \"2h\"",
         NULL},
        {"good-defaults.json", "step=0s", "step: must be >= 1ms, got \"0s\"", NULL},
        {"good-defaults.json", "duration=2 hours", "duration: must be a duration", NULL},
        {"good-defaults.json", "seed=-1", "seed: must be an integer in [0, 2^53], got -1", NULL},
        {"good-defaults.json", "seed=1.5", "seed: must be an integer in [0, 2^53], got 1.5", NULL},
        {"good-defaults.json", "name=bad name!", "name: must match", "got \"bad name!\""},
        {"good-defaults.json", "start=yesterday", "start: must be an ISO 8601",
         "got \"yesterday\""},
        {"good-defaults.json", "sites[0].assets[2].role=sub",
         "sites[0].assets[2].role: must be \"grid\" or \"load\", got \"sub\"", NULL},
        {"good-defaults.json", "sites[0].assets[2].nominal_hz=55", "must be 50 or 60, got 55",
         NULL},
        {"good-defaults.json", "sites[0].assets[2].phases=2", "phases: must be 1 or 3, got 2",
         NULL},
        {"good-defaults.json", "sites[0].assets[3].noise={\"phi\":1}",
         "sites[0].assets[3].noise.phi: must be in [0, 1), got 1", NULL},
        {"good-defaults.json", "sites[0].assets[3].noise={\"sigma\":1}",
         "sites[0].assets[3].noise: unknown key \"sigma\"", NULL},
        {"good-defaults.json", "sites[0].assets[4].unit_id=1",
         "sites[0].assets[4].unit_id: unit id 1 is already used by asset \"bat\"", NULL},
        {"good-defaults.json", "sites[0].assets[4].unit_id=248",
         "unit_id: must be in [1, 247], got 248", NULL},
        {"good-defaults.json", "sites[0].assets[4].max_current_a=5",
         "max_current_a: must be >= min_current_a (6), got 5", NULL},
        {"good-defaults.json", "sites[0].assets[4].default_current_a=3",
         "default_current_a: must be 0 or in [6, 16], got 3", NULL},
        {"good-defaults.json", "sites[0].assets[5].temp_max_c=55",
         "temp_max_c: must be > setpoint_c (60), got 55", NULL},
        {"good-defaults.json", "sites[0].assets[5].start_delay=soon",
         "sites[0].assets[5].start_delay: must be a duration", "got \"soon\""},
        {"good-defaults.json", "sites[0].assets[1].id=bat",
         "sites[0].assets[1].id: duplicate asset id in the site, got \"bat\"", NULL},
        {"good-defaults.json", "sites[0].assets[2].type=inverter",
         "sites[0].assets[2].type: must be one of", "got \"inverter\""},
        {"good-defaults.json",
         "sites[0].assets[3]={\"id\":\"g2\",\"type\":\"meter\",\"role\":\"grid\"}",
         "sites[0].assets[3].role: a site has at most one grid meter", NULL},
        {"good-defaults.json", "sites[0].replicas=0", "sites[0].replicas: must be in [1, 10000]",
         "got 0"},
        {"good-defaults.json", "sites[0].port=70000", "sites[0].port: must be in [0, 65535]",
         "got 70000"},
        {"good-defaults.json", "sites[0].assets=[]", "sites[0].assets: must be a non-empty array",
         "got []"},
        {"good-defaults.json", "gateway=5", "gateway: must be an object, got 5", NULL},
        {"good-defaults.json", "profiles.load.points=[[\"0s\",1],[\"0s\",2]]",
         "profiles.load.points[1]: times must be strictly increasing, got \"0s\"", NULL},
        {"good-defaults.json", "profiles.load.points=[]",
         "profiles.load.points: must be an array of at least one", NULL},
        {"good-defaults.json", "profiles.load.interpolation=cubic",
         "profiles.load.interpolation: must be \"linear\" or \"step\", got \"cubic\"", NULL},
        {"good-defaults.json", "profiles.load.repeat=30m",
         "profiles.load.points: with \"repeat\": \"30m\" every point must lie in [0, 30m)", NULL},
        {"good-defaults.json", "profiles.load.type=spline",
         "profiles.load.type: must be one of series, csv", "got \"spline\""},
        {"good-defaults.json", "profiles.sun.latitude=91",
         "profiles.sun.latitude: must be in [-90, 90], got 91", NULL},
        {"good-defaults.json", "profiles.cars.sessions[0].depart=30m",
         "profiles.cars.sessions[0].depart: must be after arrive, got \"30m\"", NULL},
        {"good-defaults.json", "profiles.cars.sessions[0].phases=2",
         "profiles.cars.sessions[0].phases: must be 1 or 3", NULL},
        {"events.json", "events[0].asset=bat-9",
         "events.json: events[0].asset: no asset \"bat-9\" in site \"s1\"", "got \"bat-9\""},
        {"events.json", "events[0].type=surge", "events[0].type: must be \"fault\"",
         "got \"surge\""},
        {"events.json", "events[2].code=12", "events[2].code: must be in [1, 11], got 12", NULL},
        {"events.json", "events[0].at=1h", "events[0].at: must be before the end of the run",
         "got \"1h\""},
        {"events.json", "events[0].asset=grid",
         "events[0].fault: \"device\" faults apply to battery, pv, evse and boiler, not meter",
         NULL},
        {"events.json", "events[0].site=s9", "events[0].site: no site \"s9\"", NULL},
        {"events.json",
         "events[0]={\"at\":\"1m\",\"type\":\"command\",\"site\":\"s1\",\"asset\":\"bat\","
         "\"command\":\"fly\"}",
         "events[0].command: must be one of start, stop, reset", "got \"fly\""},
        {"events.json",
         "events[0]={\"at\":\"1m\",\"type\":\"command\",\"site\":\"s1\",\"asset\":\"bat\","
         "\"command\":\"start\",\"value\":1}",
         "events[0].value: \"start\" takes no value", NULL},
        {"events.json",
         "events[0]={\"at\":\"1m\",\"type\":\"command\",\"site\":\"s1\",\"asset\":\"bat\","
         "\"command\":\"charge\"}",
         "events[0].value:", NULL},
        {"events.json", "events[0].code=3",
         "events[0].code: only valid with \"fault\": \"exception\", got 3", NULL},
        {"events.json", "events[1].delay=0s", "events[1].delay: must be > 0s, got \"0s\"", NULL},
        {"events.json", "events[0].fault=meltdown", "events[0].fault: must be one of", NULL},
        {"events.json", "sites[1].id=s1", "sites[1].id: duplicate site id, got \"s1\"", NULL},
        {"csv-bad.json", NULL,
         "csv-bad.json: profiles.load.file: tests/data/scenarios/profiles/load-bad.csv:4: value "
         "must be a finite number, got \"12O\"",
         NULL},
        {"csv-formats.json", "profiles.by_seconds.time_column=when",
         "profiles.by_seconds.file: tests/data/scenarios/profiles/load-seconds.csv:1: no time "
         "column \"when\"",
         NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, DIR "%s", cases[i].file);
        expect_fail(path, cases[i].override, -EINVAL, cases[i].want1, cases[i].want2);
    }
    /* A site id must leave room for the replica suffix. */
    expect_fail(DIR "replicas.json",
                "sites[0].id=abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijab",
                -EINVAL, "sites[0].id: too long for 10 replicas", NULL);
    /* An event without "site" is fine only when the file has one site. */
    expect_fail(DIR "events.json",
                "events[0]={\"at\":\"1m\",\"type\":\"fault\",\"asset\":\"bat\","
                "\"fault\":\"timeout\"}",
                -EINVAL, "events[0].site: required when the file has more than one site", NULL);
}

static void test_missing_files(void)
{
    expect_fail(DIR "no-such-scenario.json", NULL, -ENOENT,
                "tests/data/scenarios/no-such-scenario.json: No such file or directory", NULL);
    expect_fail(DIR "csv-missing.json", NULL, -ENOENT,
                "profiles.load.file: tests/data/scenarios/profiles/no-such-file.csv: No such "
                "file",
                NULL);
}

static void test_reference_scenarios(void)
{
    struct scenario *s = load_ok("scenarios/reference-site.json", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s->seed, 42);
    CU_ASSERT_EQUAL(s->duration_ms, 86400000);
    CU_ASSERT_EQUAL(s->step_ms, 1000);
    CU_ASSERT_EQUAL_FATAL(s->n_sites, 1);
    const struct site_cfg *c = &s->sites[0];
    CU_ASSERT_STRING_EQUAL(c->id, "ref");
    CU_ASSERT_EQUAL_FATAL(c->n_assets, 7);
    static const char *ids[] = {"grid",        "bat-1",  "pv-1",    "house",
                                "house-meter", "evse-1", "boiler-1"};
    for (int i = 0; i < 7; i++)
        CU_ASSERT_STRING_EQUAL(c->assets[i].id, ids[i]);
    CU_ASSERT_EQUAL(c->assets[0].u.meter.refresh_ms, 1000);
    CU_ASSERT_EQUAL(c->assets[1].u.battery.response.latency_ms, 200);
    CU_ASSERT_DOUBLE_EQUAL(c->assets[1].u.battery.response.ramp_w_per_s, 10000, 1e-9);
    CU_ASSERT_EQUAL(c->assets[2].u.pv.irradiance->kind, PROFILE_CLEAR_SKY);
    CU_ASSERT(c->assets[2].u.pv.irradiance->n_clouds > 0);
    CU_ASSERT_DOUBLE_EQUAL(c->assets[3].u.load.noise_phi, 0.95, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(c->assets[3].u.load.noise_sigma_w, 40, 1e-12);
    CU_ASSERT_EQUAL(c->assets[4].u.meter.role, METER_LOAD);
    CU_ASSERT_EQUAL(c->assets[5].u.evse.sessions->n_sessions, 1);
    CU_ASSERT_PTR_NOT_NULL(c->assets[6].u.boiler.draw);
    /* The household load averages about 500 W over the day and peaks near 3 kW. */
    const struct profile *house = c->assets[3].u.load.profile;
    double sum = 0, peak = 0;
    for (int64_t t = 0; t < 86400000; t += 60000) {
        double v = profile_value(house, t);
        sum += v;
        peak = v > peak ? v : peak;
    }
    CU_ASSERT(sum / 1440 > 400 && sum / 1440 < 600);
    CU_ASSERT(peak > 2500 && peak <= 3000);
    /* 2026-06-21 is a Sunday: the weekend price. */
    CU_ASSERT_DOUBLE_EQUAL(profile_value(c->import_price, 12 * 3600000LL), 0.25, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(c->export_price, 12 * 3600000LL), 0.08, 1e-12);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(s->gateway, "strategy")->valuestring, "net_zero");
    scenario_free(s);

    s = load_ok("scenarios/faults-demo.json", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s->duration_ms, 600000);
    CU_ASSERT_EQUAL_FATAL(s->n_events, 7);
    int seen[7] = {0};
    for (size_t i = 0; i < s->n_events; i++)
        seen[s->events[i].fault]++;
    for (int k = 0; k < 7; k++)
        CU_ASSERT_EQUAL(seen[k], 1);
    scenario_free(s);
}

/* Dispatch events (issue 5): kept apart from the fault events (site.c never sees them),
 * power_w or mw, site-level when "asset" is absent, whole-second TTL; "headend": {}. */
static void test_dispatch_events(void)
{
    const char *ov[] = {
        "events=[{\"at\":\"2h\",\"type\":\"dispatch\",\"asset\":\"bat-1\",\"power_w\":-3000,"
        "\"ttl\":\"15m\"},{\"at\":\"1h\",\"type\":\"dispatch\",\"mw\":0.004},"
        "{\"at\":\"30m\",\"type\":\"fault\",\"asset\":\"bat-2\",\"fault\":\"timeout\"}]",
        "headend={}"};
    struct scenario *s = load_ok("scenarios/fleet-site.json", ov, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s->n_events, 1);
    CU_ASSERT_EQUAL(s->events[0].type, EVENT_FAULT);
    CU_ASSERT_EQUAL_FATAL(s->n_dispatches, 2);
    CU_ASSERT_EQUAL(s->dispatches[0].type, EVENT_DISPATCH);
    CU_ASSERT_EQUAL(s->dispatches[0].at_ms, 3600000);
    CU_ASSERT_STRING_EQUAL(s->dispatches[0].asset_id, "");
    CU_ASSERT_STRING_EQUAL(s->dispatches[0].site_id, "fleet");
    CU_ASSERT_DOUBLE_EQUAL(s->dispatches[0].power_w, 4000, 1e-6);
    CU_ASSERT_EQUAL(s->dispatches[0].ttl_ms, 900000); /* the default */
    CU_ASSERT_STRING_EQUAL(s->dispatches[1].asset_id, "bat-1");
    CU_ASSERT_DOUBLE_EQUAL(s->dispatches[1].power_w, -3000, 1e-9);
    CU_ASSERT_EQUAL(s->dispatches[1].seq, 0);
    CU_ASSERT(cJSON_IsObject(s->headend));
    scenario_free(s);
    struct scenario *plain = load_ok("scenarios/fleet-site.json", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(plain);
    CU_ASSERT_PTR_NULL(plain->headend);
    CU_ASSERT_EQUAL(plain->n_dispatches, 0);
    scenario_free(plain);
}

static void test_dispatch_event_errors(void)
{
    const char *f = "scenarios/fleet-site.json";
    expect_fail(f, "events=[{\"at\":\"1h\",\"type\":\"dispatch\"}]", -EINVAL, "events[0].power_w",
                "exactly one of power_w or mw");
    expect_fail(f, "events=[{\"at\":\"1h\",\"type\":\"dispatch\",\"mw\":1,\"power_w\":1}]", -EINVAL,
                "events[0].power_w", NULL);
    expect_fail(f, "events=[{\"at\":\"1h\",\"type\":\"dispatch\",\"mw\":1,\"ttl\":\"1500ms\"}]",
                -EINVAL, "events[0].ttl", "whole seconds");
    expect_fail(f, "events=[{\"at\":\"1h\",\"type\":\"dispatch\",\"mw\":1,\"asset\":\"nope\"}]",
                -EINVAL, "events[0].asset", "no asset");
    expect_fail(f, "events=[{\"at\":\"1h\",\"type\":\"dispatch\",\"mw\":1,\"asset\":\"grid\"}]",
                -EINVAL, "events[0].asset", "meter");
    expect_fail(f, "events=[{\"at\":\"1h\",\"type\":\"dispatch\",\"mw\":1,\"fault\":\"timeout\"}]",
                -EINVAL, "events[0]", "fault");
    expect_fail(f, "events=[{\"at\":\"1h\",\"type\":\"surge\"}]", -EINVAL, "events[0].type",
                "dispatch");
    expect_fail(f, "headend=[]", -EINVAL, "headend", NULL);
    expect_fail(f, "headend={\"port\":1}", -EINVAL, "headend", "port");
}

/* Tariff bands take "HH:MM" strictly (caltime_parse_hhmm), as the gateway does: the forms a
 * sloppy parser would read as 07:30 or 07:05 are errors naming the band's field and the value. */
static void test_tou_hhmm(void)
{
    const char *f = DIR "tou.json";
    expect_fail(f, "profiles.flat.weekday[0].from=\" 7:30\"", -EINVAL,
                "tou.json: profiles.flat.weekday[0].from: must be \"HH:MM\", got \" 7:30\"", NULL);
    expect_fail(f, "profiles.flat.weekday[0].to=+7:30", -EINVAL,
                "tou.json: profiles.flat.weekday[0].to: must be \"HH:MM\" or \"24:00\", "
                "got \"+7:30\"",
                NULL);
    expect_fail(f, "profiles.flat.weekday[0].to=07:+5", -EINVAL,
                "profiles.flat.weekday[0].to: must be \"HH:MM\" or \"24:00\", got \"07:+5\"", NULL);
    expect_fail(f, "profiles.flat.weekday[1].from=\"24:00\"", -EINVAL,
                "profiles.flat.weekday[1].from: must be \"HH:MM\", got \"24:00\"", NULL);
}

void test_register_scenario(void)
{
    CU_pSuite su = CU_add_suite("scenario", NULL, NULL);
    CU_add_test(su, "good file: defaults and units", test_good_defaults);
    CU_add_test(su, "replicas: ids, ports, seeds", test_replicas);
    CU_add_test(su, "events sorted by (at, seq)", test_events_sorted);
    CU_add_test(su, "overrides", test_overrides);
    CU_add_test(su, "dispatch events and headend", test_dispatch_events);
    CU_add_test(su, "dispatch event errors", test_dispatch_event_errors);
    CU_add_test(su, "bad files name path and value", test_bad_files);
    CU_add_test(su, "missing files", test_missing_files);
    CU_add_test(su, "timezone", test_timezone);
    CU_add_test(su, "tariff bands: strict HH:MM", test_tou_hhmm);
    CU_add_test(su, "reference scenarios load", test_reference_scenarios);
}
