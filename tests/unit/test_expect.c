/* Unit tests for reports/expect.c: bounds parsed and judged (min, max, eq with its default and
 * explicit tolerance), unknown KPIs and keys rejected with the file and path, a vs_baseline
 * expectation failing without a baseline, and the baseline strategy's name. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "reports/expect.h"

static int parse(const char *json, struct expect_list *l, char *err, size_t errlen)
{
    cJSON *j = cJSON_Parse(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    int rc = expect_parse(j, "x.json", l, err, errlen);
    cJSON_Delete(j);
    return rc;
}

static void test_judge(void)
{
    struct expect_list l;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(parse("{\"energy_import_kwh\": {\"min\": 1, \"max\": 2},"
                                " \"ev_sessions_full\": {\"eq\": 1},"
                                " \"net_cost\": {\"eq\": 0.5, \"tol\": 0.1},"
                                " \"cost_reduction_pct\": {\"min\": 10}}",
                                &l, err, sizeof err),
                          0);
    CU_ASSERT_EQUAL(l.n, 4);
    CU_ASSERT_STRING_EQUAL(l.baseline_strategy, "null");
    CU_ASSERT(expect_needs_baseline(&l));
    struct kpi_set k;
    for (int i = 0; i < KPI_COUNT; i++)
        k.v[i] = NAN;
    k.v[KPI_ENERGY_IMPORT_KWH] = 2.0; /* inclusive bound */
    k.v[KPI_EV_SESSIONS_FULL] = 1;
    k.v[KPI_NET_COST] = 0.59;
    struct expect_result r[EXPECT_MAX];
    CU_ASSERT_EQUAL(expect_eval(&l, &k, r), 1); /* no baseline: cost_reduction_pct fails */
    CU_ASSERT(r[0].pass && r[1].pass && r[2].pass && !r[3].pass);
    CU_ASSERT_PTR_NOT_NULL(strstr(r[3].text, "baseline was not run"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r[0].text, "PASS"));
    k.v[KPI_ENERGY_IMPORT_KWH] = 2.001;
    k.v[KPI_NET_COST] = 0.61;
    k.v[KPI_COST_REDUCTION_PCT] = 12;
    CU_ASSERT_EQUAL(expect_eval(&l, &k, r), 2);
    CU_ASSERT(!r[0].pass && r[1].pass && !r[2].pass && r[3].pass);
    CU_ASSERT_PTR_NOT_NULL(strstr(r[0].text, "FAIL"));
}

static void test_errors(void)
{
    struct expect_list l;
    char err[256];
    CU_ASSERT_EQUAL(parse("{\"energy_imprt_kwh\": {\"max\": 1}}", &l, err, sizeof err), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "x.json: expect.energy_imprt_kwh: unknown KPI"));
    CU_ASSERT_EQUAL(parse("{\"net_cost\": {\"mx\": 1}}", &l, err, sizeof err), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "expect.net_cost: unknown key \"mx\""));
    CU_ASSERT_EQUAL(parse("{\"net_cost\": {\"min\": \"1\"}}", &l, err, sizeof err), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "expect.net_cost.min: must be a finite number"));
    CU_ASSERT_EQUAL(parse("{\"net_cost\": {\"min\": 2, \"max\": 1}}", &l, err, sizeof err),
                    -EINVAL);
    CU_ASSERT_EQUAL(parse("{\"net_cost\": {}}", &l, err, sizeof err), -EINVAL);
    CU_ASSERT_EQUAL(parse("{\"net_cost\": {\"tol\": 1}}", &l, err, sizeof err), -EINVAL);
    CU_ASSERT_EQUAL(parse("{\"net_cost\": 3}", &l, err, sizeof err), -EINVAL);
    CU_ASSERT_EQUAL(parse("{\"baseline_strategy\": \"nope\"}", &l, err, sizeof err), -EINVAL);
    CU_ASSERT_EQUAL(parse("{\"baseline_strategy\": \"charge\"}", &l, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(l.baseline_strategy, "charge");
    CU_ASSERT_EQUAL(l.n, 0);
    CU_ASSERT_EQUAL(expect_parse(NULL, "x.json", &l, err, sizeof err), 0);
}

void test_register_expect(void)
{
    CU_pSuite s = CU_add_suite("expect", NULL, NULL);
    CU_add_test(s, "bounds judged", test_judge);
    CU_add_test(s, "unknown KPIs and bad bounds are errors", test_errors);
}
