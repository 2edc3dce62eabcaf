/* Unit tests for the gateway's device drivers (gateway/devices/device.c) and control cycle
 * (gateway/control/controller.c) against the simulator's own register images through the in-process
 * bus: what the gateway reads must be what the models hold, and what it writes must reach them. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "common/devtype.h"
#include "gateway/control/controller.h"
#include "gateway/devices/devmap.h"
#include "gateway/devices/device.h"
#include "gateway/uplink/agentmsg.h"
#include "proto/der/v1/agent.pb-c.h"
#include "sim/wire/regmap_map.h"
#include "sim/wire/bus_inproc.h"
#include "sim/scenario/scenario.h"
#include "sim/run/site.h"
#include "sim/run/sitecfg.h"

struct rig {
    struct scenario *sc;
    struct site *site;
    struct bus *bus;
    struct siteconf *conf;
    int64_t now;
};

static int rig_open(struct rig *r)
{
    char err[1024];
    memset(r, 0, sizeof *r);
    if (scenario_load("tests/data/gateway/drivers.json", NULL, 0, &r->sc, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    r->site = site_new(r->sc, 0, err, sizeof err);
    if (!r->site || bus_inproc_new(NULL, &r->bus))
        return -1;
    for (size_t k = 0; k < site_n_assets(r->site); k++) {
        struct sim_asset *a = site_asset(r->site, k);
        if (a->img)
            bus_inproc_add_unit(r->bus, a->cfg->unit_id, a->img, &a->wire);
    }
    cJSON *j = sitecfg_json(r->sc, r->site, "127.0.0.1", 1502, "test");
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    int rc = siteconf_parse(text, "drivers", &r->conf, err, sizeof err);
    free(text);
    if (rc)
        fprintf(stderr, "%s\n", err);
    return rc;
}

static void rig_step(struct rig *r, int n)
{
    for (int i = 0; i < n; i++, r->now += 1000)
        site_step(r->site, r->now, 1000);
}

static void rig_close(struct rig *r)
{
    siteconf_free(r->conf);
    bus_close(r->bus);
    site_free(r->site);
    scenario_free(r->sc);
}

static struct device *dev(struct rig *r, const char *id)
{
    char err[256];
    const struct device_cfg *c = siteconf_find(r->conf, id);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    struct device *d = device_new(c, r->bus, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    return d;
}

static void test_battery_read_write(void)
{
    struct rig r;
    CU_ASSERT_EQUAL_FATAL(rig_open(&r), 0);
    rig_step(&r, 2);
    struct device *d = dev(&r, "bat");
    struct procimg_dev o = {0};
    CU_ASSERT_EQUAL_FATAL(device_poll(d, r.now, &o), 0);
    const struct battery *b = &site_find_asset(r.site, "bat")->m.battery;
    CU_ASSERT_EQUAL(o.online, 1);
    CU_ASSERT_EQUAL(o.type, PROCIMG_BATTERY);
    CU_ASSERT(fabs(o.soc - b->soc) < 0.01);
    CU_ASSERT(fabs(o.capacity_wh - 12000) < 100);
    CU_ASSERT(o.max_charge_w > 4000 && o.max_charge_w <= 5100);
    CU_ASSERT(o.max_discharge_w > 5000 && o.max_discharge_w <= 6100);
    /* a charge setpoint reaches the model and its power follows */
    CU_ASSERT_EQUAL(device_write(d, -2500, r.now), 0);
    rig_step(&r, 3);
    CU_ASSERT(fabs(b->setpoint_w + 2500) < 1);
    CU_ASSERT(fabs(b->power_w + 2500) < 1);
    CU_ASSERT_EQUAL(device_poll(d, r.now, &o), 0);
    CU_ASSERT(fabs(o.power_w + 2500) < 10);
    /* NaN releases: WSetEna off, the battery idles */
    CU_ASSERT_EQUAL(device_write(d, NAN, r.now), 0);
    rig_step(&r, 3);
    CU_ASSERT(fabs(b->power_w) < 1);
    /* the gateway's view of what it polls equals the image */
    uint16_t start;
    size_t count;
    const uint8_t *valid;
    CU_ASSERT_EQUAL(device_poll(d, r.now, &o), 0);
    const uint16_t *m = device_mirror(d, &start, &count, &valid);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    const struct regimage *img = site_find_asset(r.site, "bat")->img;
    size_t polled = 0, same = 0;
    for (size_t j = 0; j < count; j++)
        if (valid[j]) {
            polled++;
            same += m[j] == img->map->tab_registers[start + j - img->start];
        }
    CU_ASSERT(polled > 20);
    CU_ASSERT_EQUAL(polled, same);
    device_free(d);
    rig_close(&r);
}

static void test_pv_meters(void)
{
    struct rig r;
    CU_ASSERT_EQUAL_FATAL(rig_open(&r), 0);
    rig_step(&r, 2);
    struct device *pv = dev(&r, "pv"), *grid = dev(&r, "grid"), *lm = dev(&r, "house-meter");
    struct procimg_dev o = {0}, g = {0}, l = {0};
    CU_ASSERT_EQUAL_FATAL(device_poll(pv, r.now, &o), 0);
    const struct pv *p = &site_find_asset(r.site, "pv")->m.pv;
    CU_ASSERT(p->power_w > 3000);
    CU_ASSERT(fabs(o.power_w - p->power_w) < 10);
    CU_ASSERT(fabs(o.rated_w - 8000) < 1);
    /* curtail to 2 kW */
    CU_ASSERT_EQUAL(device_write(pv, 2000, r.now), 0);
    rig_step(&r, 3);
    CU_ASSERT(fabs(p->power_w - 2000) < 20);
    CU_ASSERT_EQUAL(device_poll(pv, r.now, &o), 0);
    CU_ASSERT(fabs(o.pv_limit_w - 2000) < 20);
    /* meters: grid + import, load + consumption; the grid meter closes the balance */
    CU_ASSERT_EQUAL(device_poll(grid, r.now, &g), 0);
    CU_ASSERT_EQUAL(device_poll(lm, r.now, &l), 0);
    struct site_balance bal = site_balance(r.site);
    CU_ASSERT_EQUAL(g.type, PROCIMG_METER_GRID);
    CU_ASSERT_EQUAL(l.type, PROCIMG_METER_LOAD);
    CU_ASSERT(fabs(g.power_w - bal.grid_w) <= 10);
    CU_ASSERT(fabs(l.power_w - 700) <= 10);
    device_free(pv);
    device_free(grid);
    device_free(lm);
    rig_close(&r);
}

static void test_evse_boiler(void)
{
    struct rig r;
    CU_ASSERT_EQUAL_FATAL(rig_open(&r), 0);
    rig_step(&r, 2);
    struct device *ev = dev(&r, "evse"), *bo = dev(&r, "boiler");
    struct procimg_dev o = {0};
    CU_ASSERT_EQUAL_FATAL(device_poll(ev, r.now, &o), 0);
    CU_ASSERT_EQUAL(o.type, PROCIMG_EVSE);
    CU_ASSERT_EQUAL(o.evse_state, 'C' - 'A');
    const struct evse *e = &site_find_asset(r.site, "evse")->m.evse;
    /* 8 kW on 3 x 230 V is 11.6 A: whole amps down, 11 A */
    CU_ASSERT_EQUAL(device_write(ev, 8000, r.now), 0);
    rig_step(&r, 2);
    CU_ASSERT(fabs(e->current_limit_a - 11) < 1e-9);
    /* below the 6 A minimum the charger pauses */
    CU_ASSERT_EQUAL(device_write(ev, 3000, r.now), 0);
    rig_step(&r, 2);
    CU_ASSERT(fabs(e->current_limit_a) < 1e-9);
    CU_ASSERT(fabs(e->power_w) < 1);
    CU_ASSERT_EQUAL(device_poll(bo, r.now, &o), 0);
    CU_ASSERT_EQUAL(o.type, PROCIMG_BOILER);
    CU_ASSERT(fabs(o.boiler_temperature_c - site_find_asset(r.site, "boiler")->m.boiler.temp_c) <
              0.1);
    CU_ASSERT_EQUAL(device_write(bo, 1500, r.now), 0);
    rig_step(&r, 2);
    CU_ASSERT(fabs(site_find_asset(r.site, "boiler")->m.boiler.power_limit_w - 1500) < 1);
    device_free(ev);
    device_free(bo);
    rig_close(&r);
}

static void test_offline_and_back(void)
{
    struct rig r;
    CU_ASSERT_EQUAL_FATAL(rig_open(&r), 0);
    rig_step(&r, 2);
    struct device *d = dev(&r, "bat");
    struct procimg_dev o = {0};
    CU_ASSERT_EQUAL(device_poll(d, r.now, &o), 0);
    struct sim_asset *a = site_find_asset(r.site, "bat");
    a->wire.mode = WIRE_TIMEOUT;
    CU_ASSERT_EQUAL(device_poll(d, r.now + 1000, &o), -ETIMEDOUT);
    CU_ASSERT_EQUAL(o.online, 0);
    CU_ASSERT_EQUAL(o.last_ok_ms, r.now); /* the last good data keeps its time */
    a->wire.mode = WIRE_EXCEPTION;
    a->wire.code = 4;
    CU_ASSERT_EQUAL(bus_exception_code(device_poll(d, r.now + 2000, &o)), 4);
    a->wire.mode = WIRE_OK;
    CU_ASSERT_EQUAL(device_poll(d, r.now + 3000, &o), 0); /* discovered again */
    CU_ASSERT_EQUAL(o.online, 1);
    device_free(d);
    rig_close(&r);
}

static struct bus *rig_bus(void *ctx, const struct device_cfg *d, char *err, size_t len)
{
    (void)d;
    (void)err;
    (void)len;
    return ctx;
}

static void test_controller_cycle(void)
{
    struct rig r;
    char err[512];
    CU_ASSERT_EQUAL_FATAL(rig_open(&r), 0);
    struct controller_opts co = {.open_bus = rig_bus, .bus_ctx = r.bus};
    struct controller *c = controller_new(r.conf, &co, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    static struct decision dm;
    rig_step(&r, 1);
    CU_ASSERT_EQUAL(controller_cycle(c, r.now, &dm), 0);
    uint64_t w1 = controller_writes(c);
    CU_ASSERT(w1 >= 1);
    for (int i = 0; i < 5; i++) {
        rig_step(&r, 1);
        CU_ASSERT_EQUAL(controller_cycle(c, r.now, &dm), 0);
    }
    CU_ASSERT_EQUAL(controller_writes(c), w1); /* the same 3 kW charge: nothing rewritten */
    CU_ASSERT(fabs(site_find_asset(r.site, "bat")->m.battery.power_w + 3000) < 1);
    /* an operator command wins over the strategy until it expires */
    CU_ASSERT_EQUAL(controller_command(c, "bat", 1500, r.now + 3000), 0);
    CU_ASSERT_EQUAL(controller_command(c, "nope", 1, r.now + 3000), -ENOENT);
    rig_step(&r, 1);
    controller_cycle(c, r.now, &dm);
    rig_step(&r, 1);
    controller_cycle(c, r.now, &dm);
    CU_ASSERT(fabs(site_find_asset(r.site, "bat")->m.battery.power_w - 1500) < 1);
    for (int i = 0; i < 4; i++) {
        rig_step(&r, 1);
        controller_cycle(c, r.now, &dm);
    }
    CU_ASSERT(fabs(site_find_asset(r.site, "bat")->m.battery.power_w + 3000) < 1);
    /* a silent device: the cycle reports it and the battery gets its safe state later */
    site_find_asset(r.site, "pv")->wire.mode = WIRE_TIMEOUT;
    rig_step(&r, 1);
    CU_ASSERT(controller_cycle(c, r.now, &dm) < 0);
    CU_ASSERT_EQUAL(controller_image(c)->dev[2].online, 0);
    controller_free(c);
    rig_close(&r);
}

/* The one list of device types (common/devtype.h): every enum derived from it agrees with it,
 * and the proto has a value of the same name and number for every entry, so that adding a type
 * without its AssetType fails here. */
static void test_device_types(void)
{
    int i = 0;
#define CHECK_TYPE(NAME, name, proto, driver)                                                      \
    do {                                                                                           \
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(                \
            &der__v1__asset_type__descriptor, "ASSET_TYPE_" #NAME);                                \
        CU_ASSERT_PTR_NOT_NULL(v);                                                                 \
        if (v)                                                                                     \
            CU_ASSERT_EQUAL(v->value, proto);                                                      \
        CU_ASSERT_EQUAL(AGENTMSG_ASSET_##NAME, proto);                                             \
        CU_ASSERT_EQUAL(devtype_proto(i), proto);                                                  \
        CU_ASSERT_EQUAL((int)DEV_##NAME, i);                                                       \
        CU_ASSERT_EQUAL((int)ASSET_##NAME, i);                                                     \
        CU_ASSERT_EQUAL((int)PROCIMG_##NAME, i);                                                   \
        CU_ASSERT_STRING_EQUAL(dev_type_name(DEV_##NAME), #name);                                  \
        CU_ASSERT_STRING_EQUAL(asset_type_name(ASSET_##NAME), #name);                              \
        CU_ASSERT_STRING_EQUAL(devtype_driver(i), driver);                                         \
        i++;                                                                                       \
    } while (0);
    DEVTYPE_LIST(CHECK_TYPE)
#undef CHECK_TYPE
    CU_ASSERT_EQUAL(i, DEVTYPE_COUNT);
    CU_ASSERT_STRING_EQUAL(asset_type_name(ASSET_LOAD), "load");
    CU_ASSERT_PTR_NULL(devtype_json(DEVTYPE_COUNT));
}

/* The derloop maps have one description: the driver a type names is a map the gateway knows,
 * the simulator serves that very map, and it fills every point of it. */
static void test_device_maps(void)
{
    CU_ASSERT_EQUAL(regmap_map_count(), DEVTYPE_COUNT);
    for (int t = 0; t < DEVTYPE_COUNT; t++) {
        const struct asset_map *sim = regmap_map_at((size_t)t);
        CU_ASSERT_PTR_NOT_NULL_FATAL(sim);
        if (!strcmp(devtype_driver(t), "sunspec")) {
            CU_ASSERT(sim->n_models > 0);
            continue;
        }
        const struct devmap *dm = devmap_find(devtype_driver(t));
        CU_ASSERT_PTR_NOT_NULL_FATAL(dm);
        CU_ASSERT_STRING_EQUAL(sim->devmap, dm->driver);
        CU_ASSERT_EQUAL(dm->points[0].offset, 0);
        for (size_t i = 0; i < dm->n_points; i++) {
            int rows = 0;
            for (size_t r = 0; r < sim->n_rows; r++)
                rows += !sim->rows[r].model && !strcmp(sim->rows[r].point, dm->points[i].name);
            CU_ASSERT_EQUAL(rows, 1);
            if (rows != 1)
                fprintf(stderr, "\n  %s: %s has %d rows in the simulator\n", dm->driver,
                        dm->points[i].name, rows);
        }
    }
    CU_ASSERT_PTR_NULL(devmap_at(devmap_count()));
}

/* The drivers' command tables and register commands: refusals name the reason; start, stop,
 * reset and set_temperature reach the models, and the operating state comes back in the poll. */
static void test_device_commands(void)
{
    char what[200];
    CU_ASSERT_EQUAL(device_cmd_parse("set_temperature"), DEVICE_CMD_SET_TEMPERATURE);
    CU_ASSERT_EQUAL(device_cmd_parse("explode"), -EINVAL);
    CU_ASSERT_STRING_EQUAL(device_cmd_name(DEVICE_CMD_DISCHARGE), "discharge");
    struct rig r;
    CU_ASSERT_EQUAL_FATAL(rig_open(&r), 0);
    rig_step(&r, 2);
    struct device *bat = dev(&r, "bat"), *pv = dev(&r, "pv"), *ev = dev(&r, "evse");
    struct device *bo = dev(&r, "boiler"), *grid = dev(&r, "grid");
    CU_ASSERT_STRING_EQUAL(device_cmd_refusal(device_cfg(bat), DEVICE_CMD_SET_TEMPERATURE),
                           "battery has no temperature setpoint");
    CU_ASSERT_PTR_NOT_NULL(device_cmd_refusal(device_cfg(pv), DEVICE_CMD_CHARGE));
    CU_ASSERT_PTR_NOT_NULL(device_cmd_refusal(device_cfg(grid), DEVICE_CMD_START));
    CU_ASSERT_PTR_NULL(device_cmd_refusal(device_cfg(bo), DEVICE_CMD_SET_TEMPERATURE));
    CU_ASSERT_PTR_NULL(device_cmd_refusal(device_cfg(ev), DEVICE_CMD_RESET));
    /* before the first poll: offline */
    CU_ASSERT_EQUAL(device_command(bat, DEVICE_CMD_STOP, 0, what, sizeof what), -ENOTCONN);
    struct procimg_dev o[4];
    memset(o, 0, sizeof o);
    struct device *all[4] = {bat, pv, ev, bo};
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL_FATAL(device_poll(all[i], r.now, &o[i]), 0);
    }
    CU_ASSERT_EQUAL(o[0].op_state, PROCIMG_OP_RUNNING);
    CU_ASSERT_EQUAL(device_command(bat, DEVICE_CMD_SET_TEMPERATURE, 50, what, sizeof what),
                    -ENOTSUP);
    CU_ASSERT_EQUAL(device_command(bat, DEVICE_CMD_CHARGE, 50, what, sizeof what), -ENOTSUP);
    /* stop every controllable device: IDLE in the poll, 0 W under a battery setpoint */
    CU_ASSERT_EQUAL(device_write(bat, 3000, r.now), 0);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(device_command(all[i], DEVICE_CMD_STOP, 0, what, sizeof what), 0);
    CU_ASSERT_STRING_EQUAL(what, "Command=2");
    rig_step(&r, 8); /* the boiler's stop_delay: 5 s */
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(device_poll(all[i], r.now, &o[i]), 0);
        CU_ASSERT_EQUAL(o[i].op_state, PROCIMG_OP_IDLE);
    }
    CU_ASSERT_EQUAL(site_find_asset(r.site, "bat")->m.battery.power_w, 0.0);
    CU_ASSERT_EQUAL(o[0].power_w, 0.0);
    /* started again: RUNNING, and the battery follows its setpoint */
    CU_ASSERT_EQUAL(device_command(bat, DEVICE_CMD_START, 0, what, sizeof what), 0);
    CU_ASSERT_STRING_EQUAL(what, "802.SetOp=CONNECT");
    CU_ASSERT_EQUAL(device_command(pv, DEVICE_CMD_START, 0, what, sizeof what), 0);
    CU_ASSERT_STRING_EQUAL(what, "123.Conn=CONNECT");
    CU_ASSERT_EQUAL(device_command(bo, DEVICE_CMD_SET_TEMPERATURE, 50, what, sizeof what), 0);
    CU_ASSERT_EQUAL(device_command(ev, DEVICE_CMD_RESET, 0, what, sizeof what), 0);
    rig_step(&r, 2);
    CU_ASSERT_EQUAL(device_poll(bat, r.now, &o[0]), 0);
    CU_ASSERT_EQUAL(o[0].op_state, PROCIMG_OP_RUNNING);
    CU_ASSERT(fabs(o[0].power_w - 3000) < 10);
    CU_ASSERT_EQUAL(site_find_asset(r.site, "pv")->m.pv.op.state, OPSTATE_RUNNING);
    CU_ASSERT_EQUAL(site_find_asset(r.site, "boiler")->m.boiler.setpoint_c, 50.0);
    CU_ASSERT_EQUAL(site_find_asset(r.site, "evse")->m.evse.op.state, OPSTATE_IDLE);
    /* beyond the boiler's range: the device refuses the write */
    CU_ASSERT_NOT_EQUAL(device_command(bo, DEVICE_CMD_SET_TEMPERATURE, 99, what, sizeof what), 0);
    for (int i = 0; i < 4; i++)
        device_free(all[i]);
    device_free(grid);
    rig_close(&r);
}

void test_register_device(void)
{
    CU_pSuite s = CU_add_suite("device", NULL, NULL);
    CU_add_test(s, "battery: read, write, release, view", test_battery_read_write);
    CU_add_test(s, "pv curtailment and meters", test_pv_meters);
    CU_add_test(s, "evse current and boiler limit", test_evse_boiler);
    CU_add_test(s, "offline, exception, rediscovery", test_offline_and_back);
    CU_add_test(s, "controller: cycle, writes only changes, commands", test_controller_cycle);
    CU_add_test(s, "device types: one list, the proto agrees", test_device_types);
    CU_add_test(s, "device maps: one description", test_device_maps);
    CU_add_test(s, "commands: tables, register writes, state", test_device_commands);
}
