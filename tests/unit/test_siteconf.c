/* Unit tests for the gateway's site configuration loader (gateway/siteconf.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "gateway/siteconf.h"

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
    CU_add_test(s, "missing file", test_missing_file);
}
