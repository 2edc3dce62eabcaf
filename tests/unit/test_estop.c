/* Unit tests for the emergency stop and the schedules (issue 15): the arbiter's estop over every
 * class below safety (gateway/control/arbiter.c), the schedule windows (gateway/control/
 * schedule.c: parsing errors that name the field, days and midnight, the scheduled request and
 * caps), and the estop's persistence across a restart (gateway/control/estop.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "common/caltime.h"
#include "gateway/control/arbiter.h"
#include "gateway/control/controller.h"
#include "gateway/control/estop.h"
#include "gateway/control/schedule.h"
#include "gateway/control/siteconf.h"
#include "gateway/control/sitectx.h"
#include "sim/wire/bus_inproc.h"

/* battery 0, pv 1, evse 2, boiler 3, grid meter 4 */
static void site(struct procimg *img)
{
    static const enum procimg_type t[] = {PROCIMG_BATTERY, PROCIMG_PV, PROCIMG_EVSE, PROCIMG_BOILER,
                                          PROCIMG_METER_GRID};
    memset(img, 0, sizeof *img);
    img->n_devices = 5;
    for (int i = 0; i < 5; i++) {
        struct procimg_dev *d = &img->dev[i];
        snprintf(d->asset_id, sizeof d->asset_id, "dev%d", i);
        d->type = t[i];
        d->online = 1;
        d->soc = 0.5;
        d->capacity_wh = 10000;
        d->max_charge_w = d->max_discharge_w = 5000;
        d->rated_w = 8000;
        d->power_w = 0;
    }
    img->grid_ok = 1;
    img->grid_w = 1000;
}

static const struct arbiter_cfg cfg = {.split_resolution_w = 1};

/* The stop beats manual, scheduled and optimisation requests and every device type goes to
 * its safe state; each is recorded as DC_ESTOP; the meter is left alone. */
static void test_arbiter_estop(void)
{
    struct procimg img;
    static struct decision dm;
    site(&img);
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_MANUAL, 0, -3000);
    decision_request(&dm, DSRC_SCHEDULED, DECISION_SITE, 2000);
    decision_request(&dm, DSRC_OPTIMISATION, 2, 7000);
    decision_request(&dm, DSRC_MANUAL, 3, 2000);
    CU_ASSERT_EQUAL(arbiter_resolve(&cfg, &img, NULL, NULL, &dm), 0);
    CU_ASSERT_EQUAL(dm.asset[0].source, DSRC_MANUAL);
    arbiter_estop(&img, 150, &dm);
    static const double safe[] = {0, 150, 0, 0};
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(dm.asset[i].source, DSRC_SAFETY);
        CU_ASSERT_EQUAL(dm.asset[i].requested_w, safe[i]);
    }
    CU_ASSERT_EQUAL(dm.asset[4].source, DSRC_NONE);
    CU_ASSERT_EQUAL(decision_count(&dm, DC_ESTOP), 4);
    CU_ASSERT_EQUAL(dm.clamp[0].from_w, -3000);
    CU_ASSERT(isnan(dm.clamp[1].from_w)); /* nobody asked the pv */
    CU_ASSERT_STRING_EQUAL(decision_reason_name(DC_ESTOP), "estop");
    CU_ASSERT_STRING_EQUAL(decision_reason_name(DC_SCHEDULE), "schedule");
}

static int parse(const char *json, struct schedule *s, char *err, size_t errlen)
{
    cJSON *j = cJSON_Parse(json);
    int rc = schedule_parse(j, "schedules", s, err, errlen);
    cJSON_Delete(j);
    return rc;
}

static void test_schedule_errors(void)
{
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"{}", "schedules: must be an array"},
        {"[1]", "schedules[0]: must be an object"},
        {"[{\"from\":\"7:30\",\"to\":\"09:00\",\"action\":\"charge\",\"power_w\":1}]",
         "schedules[0].from: must be a time of day \"HH:MM\" (00:00 to 23:59), got \"7:30\""},
        {"[{\"from\":\"07:30\",\"to\":\"24:01\",\"action\":\"charge\",\"power_w\":1}]",
         "schedules[0].to: must be a time of day"},
        {"[{\"from\":\"07:30\",\"to\":\"07:30\",\"action\":\"charge\",\"power_w\":1}]",
         "schedules[0].to: must differ from \"from\""},
        {"[{\"from\":\"07:30\",\"to\":\"08:00\",\"action\":\"fly\"}]",
         "schedules[0].action: must be one of charge, discharge, hold_soc, import_cap, "
         "export_cap, got \"fly\""},
        {"[{\"from\":\"07:30\",\"to\":\"08:00\",\"action\":\"charge\"}]",
         "schedules[0].power_w: required for charge"},
        {"[{\"from\":\"07:30\",\"to\":\"08:00\",\"action\":\"hold_soc\",\"power_w\":5}]",
         "schedules[0].power_w: hold_soc takes no power"},
        {"[{\"from\":\"07:30\",\"to\":\"08:00\",\"action\":\"charge\",\"power_w\":-1}]",
         "schedules[0].power_w: required for charge: a number of watts in [0, 1e9], got -1"},
        {"[{\"from\":\"07:30\",\"to\":\"08:00\",\"days\":[\"monday\"],\"action\":\"hold_soc\"}]",
         "schedules[0].days: each day must be one of sun"},
        {"[{\"from\":\"07:30\",\"to\":\"08:00\",\"action\":\"hold_soc\",\"when\":1}]",
         "schedules[0].when: unknown key"},
        {"[{\"from\":\"07:30\",\"to\":\"08:00\",\"action\":\"hold_soc\",\"soc\":1.5,"
         "\"power_w\":1}]",
         "schedules[0].soc: must be a state of charge in [0, 1], got 1.5"},
        {"[{\"from\":\"07:30\",\"to\":\"08:00\",\"action\":\"hold_soc\",\"soc\":0.5}]",
         "schedules[0].power_w: required for hold_soc with a target soc"},
        {"[{\"from\":\"07:30\",\"to\":\"08:00\",\"action\":\"charge\",\"soc\":0.5,"
         "\"power_w\":1}]",
         "schedules[0].soc: only hold_soc takes a target soc"},
    };
    struct schedule s;
    char err[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(parse(bad[i].json, &s, err, sizeof err), -EINVAL);
        CU_ASSERT_EQUAL(s.n, 0);
        if (strncmp(err, bad[i].want, strlen(bad[i].want))) {
            CU_FAIL("schedule error");
            printf("\n  %s\n   got  %s\n   want %s\n", bad[i].json, err, bad[i].want);
        }
    }
    /* and the same message from a whole site configuration, with its origin */
    struct siteconf *sc = NULL;
    CU_ASSERT_EQUAL(
        siteconf_parse("{\"site_id\":\"s\",\"devices\":[{\"asset_id\":\"m\",\"type\":\"meter\","
                       "\"role\":\"grid\",\"host\":\"h\",\"port\":1,\"unit_id\":1}],"
                       "\"schedules\":[{\"from\":\"25:00\"}]}",
                       "site.json", &sc, err, sizeof err),
        -EINVAL);
    CU_ASSERT(strstr(err, "site.json: schedules[0].from: must be a time of day") == err);
}

static int64_t at(const char *iso)
{
    int64_t ms = 0;
    caltime_parse(iso, &ms);
    return ms;
}

static void test_schedule_windows(void)
{
    struct schedule s;
    char err[256];
    /* 2026-06-15 is a Monday */
    CU_ASSERT_EQUAL_FATAL(
        parse("[{\"from\":\"22:00\",\"to\":\"06:00\",\"days\":[\"mon\"],\"action\":\"charge\","
              "\"power_w\":2000},"
              "{\"from\":\"17:00\",\"to\":\"24:00\",\"action\":\"import_cap\",\"power_w\":300}]",
              &s, err, sizeof err),
        0);
    CU_ASSERT_EQUAL(s.n, 2);
    CU_ASSERT(schedule_window_active(&s.w[0], at("2026-06-15T23:00:00Z")));
    CU_ASSERT(schedule_window_active(&s.w[0], at("2026-06-16T05:59:00Z"))); /* started Monday */
    CU_ASSERT(!schedule_window_active(&s.w[0], at("2026-06-16T06:00:00Z")));
    CU_ASSERT(!schedule_window_active(&s.w[0], at("2026-06-15T05:00:00Z"))); /* Sunday's */
    CU_ASSERT(!schedule_window_active(&s.w[0], at("2026-06-16T23:00:00Z"))); /* Tuesday */
    CU_ASSERT(schedule_window_active(&s.w[1], at("2026-06-16T23:59:00Z")));

    /* the requests: at 23:00 Monday the charge window sets -2000, the import cap (grid 1000 W
     * at battery 0: house 1000) raises it to 700 */
    struct sitectx ctx = {.has_start = 1, .start_unix_ms = at("2026-06-15T00:00:00Z")};
    struct procimg img;
    static struct decision dm;
    site(&img);
    img.ctx = &ctx;
    img.now_ms = 23 * 3600000LL;
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_OPTIMISATION, DECISION_SITE, -100);
    schedule_decide(&s, &img, &dm);
    CU_ASSERT_EQUAL_FATAL(dm.n_requests, 2);
    CU_ASSERT_EQUAL(dm.req[1].source, DSRC_SCHEDULED);
    CU_ASSERT_EQUAL(dm.req[1].power_w, 700);
    CU_ASSERT_EQUAL(decision_count(&dm, DC_SCHEDULE), 1);
    CU_ASSERT_EQUAL(dm.clamp[0].from_w, -100);
    CU_ASSERT_EQUAL(arbiter_resolve(&cfg, &img, NULL, NULL, &dm), 0);
    CU_ASSERT_EQUAL(dm.asset[0].source, DSRC_SCHEDULED);
    CU_ASSERT_EQUAL(dm.asset[0].requested_w, 700);
    /* at noon no window runs: nothing added, the strategy's request stands */
    img.now_ms = 12 * 3600000LL;
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_OPTIMISATION, DECISION_SITE, -100);
    schedule_decide(&s, &img, &dm);
    CU_ASSERT_EQUAL(dm.n_requests, 1);
    /* a cap that does not bind adds nothing either (at 18:00, grid 200 W < 300 W) */
    img.now_ms = 18 * 3600000LL;
    img.grid_w = 200;
    decision_init(&dm, &img, "t");
    schedule_decide(&s, &img, &dm);
    CU_ASSERT_EQUAL(dm.n_requests, 0);
    /* without a calendar no window runs */
    img.ctx = NULL;
    img.grid_w = 5000;
    decision_init(&dm, &img, "t");
    schedule_decide(&s, &img, &dm);
    CU_ASSERT_EQUAL(dm.n_requests, 0);
}

/* hold_soc with a target: toward it at most power_w, slowing near it, then 0 W within the band;
 * above it the batteries discharge; without a target (or a reading) 0 W */
static void test_schedule_hold_soc(void)
{
    struct schedule s;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(parse("[{\"from\":\"00:00\",\"to\":\"24:00\",\"action\":\"hold_soc\","
                                "\"soc\":0.8,\"power_w\":3000},"
                                "{\"from\":\"10:00\",\"to\":\"11:00\",\"action\":\"hold_soc\"}]",
                                &s, err, sizeof err),
                          0);
    CU_ASSERT_DOUBLE_EQUAL(s.w[0].soc, 0.8, 1e-12);
    CU_ASSERT(isnan(s.w[1].soc));
    struct procimg img;
    site(&img); /* one 10 kWh battery at 50 % */
    /* far below: the cap (0.3 x 10 kWh in 15 min would be 12 kW) */
    CU_ASSERT_DOUBLE_EQUAL(schedule_hold_soc_w(&s.w[0], &img), -3000, 1e-9);
    /* near it: what closes the gap in 15 min (2 points of 10 kWh = 200 Wh: 800 W) */
    img.dev[0].soc = 0.78;
    CU_ASSERT_DOUBLE_EQUAL(schedule_hold_soc_w(&s.w[0], &img), -800, 1e-6);
    /* within the band: hold */
    img.dev[0].soc = 0.797;
    CU_ASSERT_DOUBLE_EQUAL(schedule_hold_soc_w(&s.w[0], &img), 0, 1e-12);
    img.dev[0].soc = 0.804;
    CU_ASSERT_DOUBLE_EQUAL(schedule_hold_soc_w(&s.w[0], &img), 0, 1e-12);
    /* above it: discharge toward it */
    img.dev[0].soc = 0.9;
    CU_ASSERT_DOUBLE_EQUAL(schedule_hold_soc_w(&s.w[0], &img), 3000, 1e-9);
    /* no reading, or no target: 0 W */
    img.dev[0].online = 0;
    CU_ASSERT_DOUBLE_EQUAL(schedule_hold_soc_w(&s.w[0], &img), 0, 1e-12);
    img.dev[0].online = 1;
    CU_ASSERT_DOUBLE_EQUAL(schedule_hold_soc_w(&s.w[1], &img), 0, 1e-12);

    /* in the cycle: the site request at the scheduled priority, the last window winning */
    struct sitectx ctx = {.has_start = 1, .start_unix_ms = at("2026-06-15T00:00:00Z")};
    static struct decision dm;
    img.ctx = &ctx;
    img.dev[0].soc = 0.5;
    img.now_ms = 9 * 3600000LL;
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_OPTIMISATION, DECISION_SITE, 1000);
    schedule_decide(&s, &img, &dm);
    CU_ASSERT_EQUAL_FATAL(dm.n_requests, 2);
    CU_ASSERT_EQUAL(dm.req[1].source, DSRC_SCHEDULED);
    CU_ASSERT_DOUBLE_EQUAL(dm.req[1].power_w, -3000, 1e-9);
    img.now_ms = 10 * 3600000LL + 60000; /* the plain hold_soc window comes later in the file */
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_OPTIMISATION, DECISION_SITE, 1000);
    schedule_decide(&s, &img, &dm);
    CU_ASSERT_EQUAL_FATAL(dm.n_requests, 2);
    CU_ASSERT_DOUBLE_EQUAL(dm.req[1].power_w, 0, 1e-12);
}

/* ---- persistence: a stop survives a restart of the gateway until it is released ---- */

static struct bus *no_bus(void *ctx, const struct device_cfg *d, char *err, size_t len)
{
    (void)d;
    (void)err;
    (void)len;
    return ctx;
}

static struct controller *new_controller(struct siteconf **sc, struct bus *bus)
{
    char err[512];
    if (siteconf_parse("{\"site_id\":\"s\",\"devices\":[{\"asset_id\":\"b\",\"type\":\"battery\","
                       "\"host\":\"h\",\"port\":1,\"unit_id\":1}]}",
                       "t", sc, err, sizeof err))
        return NULL;
    struct controller_opts co = {.open_bus = no_bus, .bus_ctx = bus};
    return controller_new(*sc, &co, err, sizeof err);
}

static void quiet(void *ctx, const char *line)
{
    (void)ctx;
    (void)line;
}

static void test_estop_persists(void)
{
    char dir[] = "/tmp/derloop-estop-XXXXXX", path[600];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/%s", dir, ESTOP_FILE);
    struct bus_inproc_config bc;
    bus_inproc_config_default(&bc);
    struct bus *bus = NULL;
    CU_ASSERT_EQUAL_FATAL(bus_inproc_new(&bc, &bus), 0);
    struct siteconf *sc = NULL;
    struct controller *c = new_controller(&sc, bus);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    struct estop *e = estop_new(c, dir, quiet, NULL);
    CU_ASSERT_EQUAL(estop_start(e), 0);
    CU_ASSERT_EQUAL(controller_estop(c), 0);
    CU_ASSERT_EQUAL(estop_set(e, 1, "es-1", "fire \"drill\"", "test"), 0);
    CU_ASSERT_EQUAL(controller_estop(c), 1);
    CU_ASSERT_EQUAL(access(path, F_OK), 0);
    estop_free(e);
    controller_free(c);
    siteconf_free(sc);

    /* "restart": a new controller starts stopped, with the stop's id and reason */
    c = new_controller(&sc, bus);
    e = estop_new(c, dir, quiet, NULL);
    CU_ASSERT_EQUAL(estop_start(e), 1);
    CU_ASSERT_EQUAL(controller_estop(c), 1);
    CU_ASSERT_STRING_EQUAL(estop_state(e)->id, "es-1");
    CU_ASSERT_STRING_EQUAL(estop_state(e)->reason, "fire \"drill\"");
    CU_ASSERT_EQUAL(estop_set(e, 0, "es-1", "", "test"), 0);
    CU_ASSERT_EQUAL(controller_estop(c), 0);
    CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
    estop_free(e);
    controller_free(c);
    siteconf_free(sc);

    /* a torn file still holds the site stopped */
    FILE *f = fopen(path, "w");
    fputs("{\"act", f);
    fclose(f);
    c = new_controller(&sc, bus);
    e = estop_new(c, dir, quiet, NULL);
    CU_ASSERT_EQUAL(estop_start(e), 1);
    CU_ASSERT_EQUAL(controller_estop(c), 1);
    CU_ASSERT(strstr(estop_state(e)->reason, "unreadable") != NULL);
    estop_free(e);
    controller_free(c);
    siteconf_free(sc);
    unlink(path);
    rmdir(dir);
    bus_close(bus);
}

void test_register_estop(void)
{
    CU_pSuite s = CU_add_suite("estop and schedules", NULL, NULL);
    CU_add_test(s, "arbiter: the estop above every class", test_arbiter_estop);
    CU_add_test(s, "schedule parsing errors name the field", test_schedule_errors);
    CU_add_test(s, "schedule windows, requests and caps", test_schedule_windows);
    CU_add_test(s, "schedule hold_soc toward a target", test_schedule_hold_soc);
    CU_add_test(s, "estop persisted across a restart", test_estop_persists);
}
