/* Unit tests of the fleet view (headend/sites.c) through the REST routes: the per-site
 * aggregates the hub keeps from telemetry, GET /sites (filter, sort, page, totals),
 * GET /sites/:id, the group dispatch split and its refusals, the precedence of the targets,
 * and the inventory's group key. A hub on an in-memory store with a link that keeps nothing. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <cjson/cJSON.h>

#include "common/log.h"
#include "headend/hub.h"
#include "headend/rest.h"
#include "headend/sites.h"
#include "proto/der/v1/agent.pb-c.h"

static const char FLEET_INV[] =
    "{\"sites\":["
    "{\"site_id\":\"s1\",\"group\":\"g\",\"gateways\":[\"gw1\"],\"assets\":["
    "{\"asset_id\":\"s1/load\",\"type\":\"meter\"},{\"asset_id\":\"s1/grid\",\"type\":\"meter\"},"
    "{\"asset_id\":\"s1/bat\",\"type\":\"battery\",\"min_power_w\":-5000,\"max_power_w\":5000},"
    "{\"asset_id\":\"s1/pv\",\"type\":\"pv\",\"max_power_w\":9000}]},"
    "{\"site_id\":\"s2\",\"group\":\"g\",\"gateways\":[\"gw2\"],\"assets\":["
    "{\"asset_id\":\"s2/bat\",\"type\":\"battery\",\"min_power_w\":-3000,\"max_power_w\":3000}]},"
    "{\"site_id\":\"s3\",\"group\":\"g\",\"gateways\":[\"gw3\"],\"assets\":["
    "{\"asset_id\":\"s3/bat\",\"type\":\"battery\",\"min_power_w\":-1000,\"max_power_w\":1000}]},"
    "{\"site_id\":\"s4\",\"gateways\":[\"gw4\"],\"assets\":["
    "{\"asset_id\":\"s4/pv\",\"type\":\"pv\",\"max_power_w\":1000}]}]}";

static int keep_nothing(void *link, const Der__V1__HeadendMessage *m)
{
    return 0;
}

static void close_nothing(void *link, int status, const char *reason)
{
}

static const struct session_link_ops quiet_ops = {keep_nothing, close_nothing};

static struct hub *fleet_hub(void)
{
    struct headend_config cfg;
    config_defaults(&cfg);
    struct inventory *inv;
    struct store *st;
    char err[256];
    struct hub *h = NULL;
    log_set_level(LOG_ERROR);
    CU_ASSERT_EQUAL_FATAL(inventory_parse(FLEET_INV, &inv, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL_FATAL(store_open(":memory:", &st, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL_FATAL(hub_new(&cfg, inv, st, 1000, &h), 0);
    return h;
}

static int msg(struct hub *h, struct session *s, Der__V1__AgentMessage *m, int64_t now)
{
    uint8_t buf[4096];
    size_t n = der__v1__agent_message__pack(m, buf);
    char reason[200];
    int status = 0;
    return hub_on_message(h, s, buf, n, now, &status, reason, sizeof(reason));
}

static struct session *connect_site(struct hub *h, const char *gw, const char *site,
                                    const char *const *assets, size_t n)
{
    struct session *s;
    CU_ASSERT_EQUAL_FATAL(hub_stream_open(h, "test", &quiet_ops, NULL, 1000, &s), 0);
    Der__V1__AssetInfo infos[8], *ip[8];
    for (size_t i = 0; i < n; i++) {
        der__v1__asset_info__init(&infos[i]);
        infos[i].asset_id = (char *)assets[i];
        ip[i] = &infos[i];
    }
    Der__V1__Register r = DER__V1__REGISTER__INIT;
    r.gateway_id = (char *)gw;
    r.site_id = (char *)site;
    r.n_assets = n;
    r.assets = ip;
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = 1;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_REGISTER;
    m.register_ = &r;
    CU_ASSERT_EQUAL(msg(h, s, &m, 1000), 0);
    return s;
}

static void sample(struct hub *h, struct session *s, uint64_t seq, const char *asset, double w,
                   double soc, int64_t now)
{
    Der__V1__Telemetry t = DER__V1__TELEMETRY__INIT;
    Der__V1__StorageDetails sd = DER__V1__STORAGE_DETAILS__INIT;
    t.asset_id = (char *)asset;
    t.ts_ms = now;
    t.telemetry_seq = seq;
    t.power_w = w;
    t.online = 1;
    if (!isnan(soc)) {
        sd.soc = soc;
        t.details_case = DER__V1__TELEMETRY__DETAILS_STORAGE;
        t.storage = &sd;
    }
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = seq;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_TELEMETRY;
    m.telemetry = &t;
    CU_ASSERT_EQUAL(msg(h, s, &m, now), 0);
}

static const char *query_arg(void *ctx, const char *key)
{
    const char *const *kv = ctx;
    for (; kv && kv[0]; kv += 2)
        if (!strcmp(kv[0], key))
            return kv[1];
    return NULL;
}

/* The JSON answer of one request (NULL unless the status is want). */
static cJSON *call(struct hub *h, const char *method, const char *path, const char *const *args,
                   const char *body, int want)
{
    struct rest_response r;
    rest_handle(h, method, path, query_arg, (void *)args, body, body ? strlen(body) : 0, 5000, &r);
    CU_ASSERT_EQUAL(r.status, want);
    if (r.status != want)
        fprintf(stderr, "\n%s %s: %d %s\n", method, path, r.status, r.body);
    cJSON *j = r.status == want ? cJSON_Parse(r.body) : NULL;
    free(r.body);
    return j;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void test_split(void)
{
    double cap[] = {5000, 0, 3000}, share[3], total;
    CU_ASSERT_EQUAL(sites_split(cap, 3, 4000, share, &total), 0);
    CU_ASSERT_DOUBLE_EQUAL(share[0], 2500, 1e-9);
    CU_ASSERT_EQUAL(share[1], 0);
    CU_ASSERT_EQUAL(share[0] + share[1] + share[2], 4000); /* exactly: the rest to the last */
    CU_ASSERT_EQUAL(sites_split(cap, 3, -8000, share, &total), 0);
    CU_ASSERT_DOUBLE_EQUAL(share[2], -3000, 1e-9);
    CU_ASSERT_EQUAL(sites_split(cap, 3, 8001, share, &total), -ERANGE);
    CU_ASSERT_EQUAL(total, 8000);
}

static void test_sites_views(void)
{
    struct hub *h = fleet_hub();
    const char *a1[] = {"s1/load", "s1/grid", "s1/bat", "s1/pv"}, *a2[] = {"s2/bat"};
    struct session *s1 = connect_site(h, "gw1", "s1", a1, 4);
    struct session *s2 = connect_site(h, "gw2", "s2", a2, 1);
    sample(h, s1, 2, "s1/load", 7000, NAN, 2000); /* the load meter is not the grid */
    sample(h, s1, 3, "s1/grid", 1200, NAN, 2000);
    sample(h, s1, 4, "s1/bat", -500, 0.4, 2000);
    sample(h, s1, 5, "s1/pv", 800, NAN, 2000);
    sample(h, s2, 2, "s2/bat", 300, 0.8, 2000);
    sample(h, s1, 6, "s1/grid", -200, NAN, 3000); /* newer: replaces the site's grid power */

    cJSON *j = call(h, "GET", "/sites", NULL, NULL, 200);
    CU_ASSERT_EQUAL(num(j, "total"), 4);
    const cJSON *rows = cJSON_GetObjectItem(j, "sites");
    const cJSON *r1 = cJSON_GetArrayItem(rows, 0), *r4 = cJSON_GetArrayItem(rows, 3);
    CU_ASSERT_STRING_EQUAL(str(r1, "site_id"), "s1");
    CU_ASSERT_STRING_EQUAL(str(r1, "group"), "g");
    CU_ASSERT_STRING_EQUAL(str(r1, "gateway_id"), "gw1");
    CU_ASSERT_STRING_EQUAL(str(r1, "state"), "ok");
    CU_ASSERT_EQUAL(num(r1, "grid_w"), -200);
    CU_ASSERT_EQUAL(num(r1, "import_w"), 0);
    CU_ASSERT_EQUAL(num(r1, "export_w"), 200);
    CU_ASSERT_EQUAL(num(r1, "pv_w"), 800);
    CU_ASSERT_EQUAL(num(r1, "battery_w"), -500);
    CU_ASSERT_DOUBLE_EQUAL(num(r1, "soc_mean"), 0.4, 1e-12);
    CU_ASSERT_STRING_EQUAL(str(r4, "state"), "offline");
    CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(r4, "group")));
    const cJSON *t = cJSON_GetObjectItem(j, "totals");
    CU_ASSERT_EQUAL(num(t, "connected"), 2);
    CU_ASSERT_EQUAL(num(t, "battery_w"), -200);
    CU_ASSERT_DOUBLE_EQUAL(num(t, "soc_mean"), 0.6, 1e-12);
    const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "groups"), 0);
    CU_ASSERT_STRING_EQUAL(str(g, "group"), "g");
    CU_ASSERT_EQUAL(num(g, "sites"), 3);
    CU_ASSERT_EQUAL(num(g, "connected"), 2);
    cJSON_Delete(j);

    /* sort descending by battery power, NaN last; a page of one; a search */
    const char *sorted[] = {"sort", "-battery_w", "limit", "2", NULL};
    j = call(h, "GET", "/sites", sorted, NULL, 200);
    rows = cJSON_GetObjectItem(j, "sites");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(rows), 2);
    CU_ASSERT_STRING_EQUAL(str(cJSON_GetArrayItem(rows, 0), "site_id"), "s2");
    CU_ASSERT_STRING_EQUAL(str(cJSON_GetArrayItem(rows, 1), "site_id"), "s1");
    cJSON_Delete(j);
    const char *search[] = {"q", "gw2", NULL};
    j = call(h, "GET", "/sites", search, NULL, 200);
    CU_ASSERT_EQUAL(num(j, "total"), 1);
    cJSON_Delete(j);
    const char *grp[] = {"group", "g", "sort", "-site_id", NULL};
    j = call(h, "GET", "/sites", grp, NULL, 200);
    CU_ASSERT_EQUAL(num(j, "total"), 3);
    CU_ASSERT_STRING_EQUAL(str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "sites"), 0), "site_id"),
                           "s3");
    cJSON_Delete(j);
    const char *bad[] = {"sort", "power", NULL};
    j = call(h, "GET", "/sites", bad, NULL, 400);
    CU_ASSERT_STRING_EQUAL(str(j, "field"), "sort");
    cJSON_Delete(j);

    /* group dispatch: by discharge capacity over the connected sites; s3 is skipped */
    j = call(h, "POST", "/dispatch", NULL, "{\"group_id\":\"g\",\"mw\":0.004,\"ttl_s\":60}", 202);
    const cJSON *sps = cJSON_GetObjectItem(j, "setpoints");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(sps), 2);
    CU_ASSERT_STRING_EQUAL(str(cJSON_GetArrayItem(sps, 0), "site_id"), "s1");
    CU_ASSERT_DOUBLE_EQUAL(num(cJSON_GetArrayItem(sps, 0), "power_w"), 2500, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(num(cJSON_GetArrayItem(sps, 1), "power_w"), 1500, 1e-9);
    CU_ASSERT_STRING_EQUAL(str(cJSON_GetArrayItem(sps, 0), "state"), "SENT");
    const cJSON *sk = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "skipped"), 0);
    CU_ASSERT_STRING_EQUAL(str(sk, "site_id"), "s3");
    CU_ASSERT_STRING_EQUAL(str(sk, "reason"), "not connected");
    char sp1[64];
    snprintf(sp1, sizeof(sp1), "%s", str(cJSON_GetArrayItem(sps, 0), "setpoint_id"));
    cJSON_Delete(j);
    j = call(h, "POST", "/dispatch", NULL, "{\"group_id\":\"g\",\"mw\":-0.009}", 400);
    CU_ASSERT_STRING_EQUAL(str(j, "field"), "mw");
    cJSON_Delete(j);
    j = call(h, "POST", "/dispatch", NULL, "{\"group_id\":\"nope\",\"mw\":0.001}", 404);
    CU_ASSERT_STRING_EQUAL(str(j, "field"), "group_id");
    cJSON_Delete(j);
    j = call(h, "POST", "/dispatch", NULL, "{\"group_id\":7,\"mw\":0.001}", 400);
    cJSON_Delete(j);
    /* precedence: site_id over group_id */
    j = call(h, "POST", "/dispatch", NULL, "{\"group_id\":\"g\",\"site_id\":\"s2\",\"mw\":0.001}",
             202);
    CU_ASSERT_STRING_EQUAL(str(j, "target"), "site");
    cJSON_Delete(j);

    /* the site page: assets with the grid meter marked, the dispatches newest first */
    j = call(h, "GET", "/sites/s1", NULL, NULL, 200);
    CU_ASSERT_EQUAL(num(j, "active_setpoints"), 1);
    const cJSON *as = cJSON_GetObjectItem(j, "assets");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(as), 4);
    CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(as, 1), "grid_meter")));
    CU_ASSERT_EQUAL(num(cJSON_GetObjectItem(j, "capacity"), "discharge_w"), 5000);
    const cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "dispatches"), 0);
    CU_ASSERT_STRING_EQUAL(str(d0, "setpoint_id"), sp1);
    CU_ASSERT_STRING_EQUAL(str(d0, "state"), "SENT");
    cJSON_Delete(j);
    j = call(h, "GET", "/sites/zz", NULL, NULL, 404);
    cJSON_Delete(j);

    /* the console is served, and without a route's JSON */
    struct rest_response r;
    rest_handle_url(h, "GET", "/", 1, NULL, 0, 5000, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "derloop console"));
    free(r.body);
    hub_stream_closed(h, s1, "test", 6000);
    hub_stream_closed(h, s2, "test", 6000);
    hub_free(h);
}

static void test_inventory_group(void)
{
    struct inventory *inv;
    char err[256];
    CU_ASSERT_EQUAL(inventory_parse("{\"sites\":[{\"site_id\":\"a\",\"group\":\"\","
                                    "\"gateways\":[\"g\"],\"assets\":[]}]}",
                                    &inv, err, sizeof(err)),
                    -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'group'"));
    CU_ASSERT_EQUAL(inventory_parse("{\"sites\":[{\"site_id\":\"a\",\"group\":\"v\\\"p\","
                                    "\"gateways\":[\"g\"],\"assets\":[]}]}",
                                    &inv, err, sizeof(err)),
                    -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "site a: 'group' contains a quote"));
    CU_ASSERT_EQUAL(inventory_parse(FLEET_INV, &inv, err, sizeof(err)), 0);
    CU_ASSERT_STRING_EQUAL(inventory_site_group(inv, 0), "g");
    CU_ASSERT_STRING_EQUAL(inventory_site_group(inv, 3), "");
    inventory_free(inv);
}

void test_register_sites(void)
{
    CU_pSuite s = CU_add_suite("headend sites", NULL, NULL);
    CU_add_test(s, "group split", test_split);
    CU_add_test(s, "sites views and group dispatch", test_sites_views);
    CU_add_test(s, "inventory group", test_inventory_group);
}
