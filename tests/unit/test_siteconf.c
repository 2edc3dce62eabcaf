/* Unit tests for the gateway's site configuration loader (gateway/control/siteconf.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "gateway/control/siteconf.h"

static const char *good =
    "{\"site_id\":\"ref\",\"poll_period\":\"500ms\",\"strategy\":\"net_zero\","
    "\"params\":{\"kp\":0.5},\"devices\":["
    "{\"asset_id\":\"grid\",\"type\":\"meter\",\"role\":\"grid\",\"host\":\"127.0.0.1\","
    "\"port\":1502,\"unit_id\":1},"
    "{\"asset_id\":\"bat-1\",\"type\":\"battery\",\"driver\":\"sunspec\",\"host\":\"127.0.0.1\","
    "\"port\":1502,\"unit_id\":2,\"capacity_wh\":10000,\"max_charge_w\":5000,"
    "\"max_discharge_w\":5000,\"timeout\":\"200ms\"},"
    "{\"asset_id\":\"evse-1\",\"type\":\"evse\",\"host\":\"localhost\",\"port\":1502,"
    "\"unit_id\":3,\"min_current_a\":6,\"max_current_a\":16,\"phases\":1}]}";

static void test_good(void)
{
    struct siteconf *c;
    char err[512] = "";
    CU_ASSERT_EQUAL_FATAL(siteconf_parse(good, "good.json", &c, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(c->site_id, "ref");
    CU_ASSERT_STRING_EQUAL(c->gateway_id, "gw-ref");
    CU_ASSERT_EQUAL(c->poll_period_ms, 500);
    CU_ASSERT_EQUAL(c->stale_after_ms, 1500);
    CU_ASSERT_EQUAL(c->n_devices, 3);
    CU_ASSERT_EQUAL(c->devices[0].role, ROLE_GRID);
    CU_ASSERT_STRING_EQUAL(c->devices[0].driver, "sunspec");
    CU_ASSERT_EQUAL(c->devices[1].timeout_ms, 200);
    CU_ASSERT_EQUAL(c->devices[1].capacity_wh, 10000);
    CU_ASSERT_STRING_EQUAL(c->devices[2].driver, "derloop-evse");
    CU_ASSERT_EQUAL(c->devices[2].phases, 1);
    CU_ASSERT_STRING_EQUAL(c->strategy, "net_zero");
    CU_ASSERT_PTR_NOT_NULL(c->params);
    CU_ASSERT_PTR_NULL(c->safety);
    CU_ASSERT_PTR_NOT_NULL(siteconf_find(c, "bat-1"));
    CU_ASSERT_PTR_NULL(siteconf_find(c, "bat-2"));
    siteconf_free(c);
}

static void expect_error(const char *text, const char *needle)
{
    struct siteconf *c = NULL;
    char err[512] = "";
    int rc = siteconf_parse(text, "bad.json", &c, err, sizeof err);
    CU_ASSERT_NOT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NULL(c);
    if (!strstr(err, needle)) {
        fprintf(stderr, "\n  expected \"%s\" in \"%s\"\n", needle, err);
        CU_FAIL("error message");
    }
}

#define DEV "\"type\":\"battery\",\"host\":\"h\",\"port\":1,\"unit_id\":1"

static void test_bad(void)
{
    expect_error("{", "bad.json: line 1");
    expect_error("[]", "must be a JSON object");
    expect_error("{\"site_id\":\"s\"}", "bad.json: devices: must be a non-empty array");
    expect_error("{\"site_id\":\"s\",\"devices\":[{\"asset_id\":\"b\"," DEV "}],\"polll\":1}",
                 "unknown key \"polll\"");
    expect_error("{\"site_id\":\"s\",\"devices\":[{\"asset_id\":\"b\"," DEV ",\"prot\":2}]}",
                 "devices[0].prot: unknown key");
    expect_error("{\"site_id\":\"s\",\"devices\":[{\"asset_id\":\"b\",\"type\":\"battery\","
                 "\"host\":\"h\",\"port\":0,\"unit_id\":1}]}",
                 "devices[0].port: must be in [1, 65535], got 0");
    expect_error("{\"site_id\":\"s\",\"devices\":[{\"asset_id\":\"b\",\"type\":\"toaster\","
                 "\"host\":\"h\",\"port\":1,\"unit_id\":1}]}",
                 "devices[0].type: must be one of");
    expect_error("{\"site_id\":\"s\",\"devices\":[{\"asset_id\":\"b\"," DEV "},{\"asset_id\":"
                 "\"b\"," DEV "}]}",
                 "devices[1].asset_id: duplicate asset id");
    expect_error("{\"site_id\":\"s\",\"poll_period\":\"fast\",\"devices\":[{\"asset_id\":\"b\"," DEV
                 "}]}",
                 "poll_period: must be a duration");
    expect_error("{\"site_id\":\"s\",\"devices\":[{\"asset_id\":\"m\",\"type\":\"meter\","
                 "\"host\":\"h\",\"port\":1,\"unit_id\":1}]}",
                 "devices[0].role: a meter needs role");
    expect_error("{\"site_id\":\"s\",\"devices\":[{\"asset_id\":\"b\"," DEV
                 ",\"driver\":\"derloop-evse\"}]}",
                 "devices[0].driver: a battery uses driver \"sunspec\"");
    expect_error("{\"site_id\":\"s\",\"devices\":[{\"asset_id\":\"b\"," DEV
                 ",\"capacity_wh\":-5}]}",
                 "devices[0].capacity_wh: must be in [0, 1e+09], got -5");
    expect_error("{\"site_id\":\"bad id\",\"devices\":[{\"asset_id\":\"b\"," DEV "}]}",
                 "site_id: may hold only");
    expect_error("{\"site_id\":\"s\",\"params\":3,\"devices\":[{\"asset_id\":\"b\"," DEV "}]}",
                 "params: must be an object, got 3");
}

/* A one-battery site with extra top-level keys X and device keys Y (each "" or ",...") */
#define SITE(X, Y) "{\"site_id\":\"s\"" X ",\"devices\":[{\"asset_id\":\"b\"," DEV Y "}]}"

static void expect_ok(const char *text, int64_t poll_ms, int64_t stale_ms, int64_t timeout_ms)
{
    struct siteconf *c = NULL;
    char err[512] = "";
    CU_ASSERT_EQUAL(siteconf_parse(text, "ok.json", &c, err, sizeof err), 0);
    if (!c) {
        fprintf(stderr, "\n  unexpected error: %s\n", err);
        CU_FAIL("a configuration inside the bounds was refused");
        return;
    }
    CU_ASSERT_EQUAL(c->poll_period_ms, poll_ms);
    CU_ASSERT_EQUAL(c->stale_after_ms, stale_ms);
    CU_ASSERT_EQUAL(c->devices[0].timeout_ms, timeout_ms);
    siteconf_free(c);
}

/* Every duration has an upper bound (docs/gateway-config.md): at the bound it loads, one
 * millisecond above it is refused with the file, the field and the value; negative numbers,
 * numbers without a unit and garbage are not durations; nothing overflows on the way (the
 * issue's "3333333313333351s" made 3 x poll_period overflow). */
static void test_duration_bounds(void)
{
    expect_ok(SITE(",\"poll_period\":\"1h\"", ""), 3600000, 10800000, 500);
    expect_ok(SITE(",\"poll_period\":\"1ms\"", ""), 1, 3, 500);
    expect_ok(SITE(",\"stale_after\":\"1d\"", ""), 1000, 86400000, 500);
    expect_ok(SITE("", ",\"timeout\":\"1m\""), 1000, 3000, 60000);
    expect_ok(SITE("", ",\"timeout\":\"10ms\""), 1000, 3000, 10);

    expect_error(SITE(",\"poll_period\":\"3333333313333351s\"", ""),
                 "bad.json: poll_period: must be in [1ms, 1h], got \"3333333313333351s\"");
    expect_error(SITE(",\"poll_period\":\"3600001ms\"", ""),
                 "bad.json: poll_period: must be in [1ms, 1h], got \"3600001ms\"");
    expect_error(SITE(",\"poll_period\":\"0s\"", ""),
                 "bad.json: poll_period: must be in [1ms, 1h], got \"0s\"");
    expect_error(SITE(",\"poll_period\":\"99999999999999999999999999d\"", ""),
                 "bad.json: poll_period: must be in [1ms, 1h]");
    expect_error(SITE(",\"poll_period\":\"-1s\"", ""),
                 "bad.json: poll_period: must be a duration such as \"500ms\", \"1s\" or "
                 "\"2m\", got \"-1s\"");
    expect_error(SITE(",\"poll_period\":1000", ""), "poll_period: must be a duration");
    expect_error(SITE(",\"poll_period\":\"1s!\"", ""), "poll_period: must be a duration");
    expect_error(SITE(",\"stale_after\":\"86400001ms\"", ""),
                 "bad.json: stale_after: must be in [1ms, 1d], got \"86400001ms\"");
    expect_error(SITE(",\"stale_after\":\"3333333313333351s\"", ""),
                 "bad.json: stale_after: must be in [1ms, 1d], got \"3333333313333351s\"");
    expect_error(SITE(",\"stale_after\":\"-5m\"", ""), "stale_after: must be a duration");
    expect_error(SITE("", ",\"timeout\":\"60001ms\""),
                 "bad.json: devices[0].timeout: must be in [10ms, 1m], got \"60001ms\"");
    expect_error(SITE("", ",\"timeout\":\"9ms\""),
                 "bad.json: devices[0].timeout: must be in [10ms, 1m], got \"9ms\"");
    expect_error(SITE("", ",\"timeout\":\"3333333313333351s\""),
                 "devices[0].timeout: must be in [10ms, 1m]");
    expect_error(SITE("", ",\"timeout\":\"soon\""), "devices[0].timeout: must be a duration");
}

static void test_missing_file(void)
{
    struct siteconf *c;
    char err[512];
    CU_ASSERT_EQUAL(siteconf_load_file("/nonexistent/x.json", &c, err, sizeof err), -ENOENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/x.json: cannot open"));
}

void test_register_siteconf(void)
{
    CU_pSuite s = CU_add_suite("siteconf", NULL, NULL);
    CU_add_test(s, "good configuration", test_good);
    CU_add_test(s, "bad configurations name the field", test_bad);
    CU_add_test(s, "duration bounds", test_duration_bounds);
    CU_add_test(s, "missing file", test_missing_file);
}
