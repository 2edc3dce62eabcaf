/* Unit tests for the arbiter (gateway/control/arbiter.c): priority classes, asset over site, last
 * request wins within a class, the site split over unclaimed usable batteries, defaults. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "gateway/control/arbiter.h"
#include "gateway/control/split.h"

/* Batteries 0..2 (capacities 10, 10, 20 kWh, 5 kW each), pv 3. */
static void site(struct procimg *img)
{
    memset(img, 0, sizeof *img);
    img->n_devices = 4;
    for (int i = 0; i < 4; i++) {
        struct procimg_dev *d = &img->dev[i];
        snprintf(d->asset_id, sizeof d->asset_id, "dev%d", i);
        d->type = i < 3 ? PROCIMG_BATTERY : PROCIMG_PV;
        d->online = 1;
        d->soc = 0.5;
        d->capacity_wh = i == 2 ? 20000 : 10000;
        d->max_charge_w = d->max_discharge_w = 5000;
        d->rated_w = 8000;
    }
    img->grid_ok = 1;
}

static const struct arbiter_cfg cfg = {.split_resolution_w = 1};

static void test_priorities(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_OPTIMISATION, 0, 100);
    decision_request(&dm, DSRC_MANUAL, 0, 200);
    decision_request(&dm, DSRC_SCHEDULED, 0, 300);
    decision_request(&dm, DSRC_SAFETY, 1, 0);
    decision_request(&dm, DSRC_MANUAL, 1, 999);
    decision_request(&dm, DSRC_SCHEDULED, 2, 400);
    decision_request(&dm, DSRC_OPTIMISATION, 2, 500);
    CU_ASSERT_EQUAL(arbiter_resolve(&cfg, &img, NULL, NULL, &dm), 0);
    CU_ASSERT_EQUAL(dm.asset[0].requested_w, 200.0);
    CU_ASSERT_EQUAL(dm.asset[0].source, DSRC_MANUAL);
    CU_ASSERT_EQUAL(dm.asset[1].requested_w, 0.0);
    CU_ASSERT_EQUAL(dm.asset[1].source, DSRC_SAFETY);
    CU_ASSERT_EQUAL(dm.asset[2].requested_w, 400.0);
    CU_ASSERT_EQUAL(dm.asset[2].source, DSRC_SCHEDULED);
    /* nobody asked the pv: left alone */
    CU_ASSERT(isnan(dm.asset[3].requested_w));
    CU_ASSERT_EQUAL(dm.asset[3].source, DSRC_NONE);
}

static void test_last_wins_in_class(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_MANUAL, 0, 100);
    decision_request(&dm, DSRC_MANUAL, 0, -700);
    arbiter_resolve(&cfg, &img, NULL, NULL, &dm);
    CU_ASSERT_EQUAL(dm.asset[0].requested_w, -700.0);
}

static void test_site_split(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_OPTIMISATION, DECISION_SITE, 4000);
    arbiter_resolve(&cfg, &img, NULL, NULL, &dm);
    /* proportional to capacity 1:1:2 */
    CU_ASSERT_EQUAL(dm.asset[0].requested_w, 1000.0);
    CU_ASSERT_EQUAL(dm.asset[1].requested_w, 1000.0);
    CU_ASSERT_EQUAL(dm.asset[2].requested_w, 2000.0);
    CU_ASSERT_EQUAL(dm.asset[2].source, DSRC_OPTIMISATION);

    /* an operator takes battery 2 out of the pool; the others carry the site request */
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_OPTIMISATION, DECISION_SITE, 4000);
    decision_request(&dm, DSRC_MANUAL, 2, -500);
    arbiter_resolve(&cfg, &img, NULL, NULL, &dm);
    CU_ASSERT_EQUAL(dm.asset[0].requested_w, 2000.0);
    CU_ASSERT_EQUAL(dm.asset[1].requested_w, 2000.0);
    CU_ASSERT_EQUAL(dm.asset[2].requested_w, -500.0);
    CU_ASSERT_EQUAL(dm.asset[2].source, DSRC_MANUAL);

    /* asset over site in the same class */
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_MANUAL, 0, 300);
    decision_request(&dm, DSRC_MANUAL, DECISION_SITE, 3000);
    arbiter_resolve(&cfg, &img, NULL, NULL, &dm);
    CU_ASSERT_EQUAL(dm.asset[0].requested_w, 300.0);
    CU_ASSERT_EQUAL(dm.asset[1].requested_w + dm.asset[2].requested_w, 3000.0);

    /* a higher-class site request beats a lower-class asset request */
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_OPTIMISATION, 0, 300);
    decision_request(&dm, DSRC_MANUAL, DECISION_SITE, 0);
    arbiter_resolve(&cfg, &img, NULL, NULL, &dm);
    CU_ASSERT_EQUAL(dm.asset[0].requested_w, 0.0);
    CU_ASSERT_EQUAL(dm.asset[0].source, DSRC_MANUAL);
}

static void test_split_skips_unusable_and_respects_limits(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    img.dev[1].online = 0;
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_OPTIMISATION, DECISION_SITE, 9000);
    /* battery 0 may only give 1000 W (e.g. near its SoC floor) */
    double lo[4] = {-5000, -5000, -5000, 0}, hi[4] = {1000, 5000, 5000, 8000};
    arbiter_resolve(&cfg, &img, lo, hi, &dm);
    CU_ASSERT_EQUAL(dm.asset[0].requested_w, 1000.0);
    CU_ASSERT_EQUAL(dm.asset[1].requested_w, 0.0); /* offline: default 0 */
    CU_ASSERT_EQUAL(dm.asset[1].source, DSRC_NONE);
    CU_ASSERT_EQUAL(dm.asset[2].requested_w, 5000.0);
}

static void test_nan_request_passes_through(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_OPTIMISATION, DECISION_SITE, NAN);
    arbiter_resolve(&cfg, &img, NULL, NULL, &dm);
    for (int i = 0; i < 3; i++)
        CU_ASSERT(isnan(dm.asset[i].requested_w));
}

static void test_request_errors(void)
{
    struct procimg img;
    struct decision dm;
    site(&img);
    decision_init(&dm, &img, "t");
    CU_ASSERT_EQUAL(decision_request(&dm, DSRC_NONE, 0, 1), -EINVAL);
    CU_ASSERT_EQUAL(decision_request(&dm, DSRC_MANUAL, 4, 1), -EINVAL);
    CU_ASSERT_EQUAL(decision_request(&dm, DSRC_MANUAL, -2, 1), -EINVAL);
    for (int k = 0; k < DECISION_MAX_REQUESTS; k++)
        CU_ASSERT_EQUAL(decision_request(&dm, DSRC_MANUAL, 0, k), 0);
    CU_ASSERT_EQUAL(decision_request(&dm, DSRC_MANUAL, 0, 1), -ENOSPC);
    CU_ASSERT_EQUAL(dm.requests_dropped, 1);
}

static int load(const char *json, struct arbiter_cfg *c, char *err, size_t errlen)
{
    cJSON *o = cJSON_Parse(json);
    int rc = arbiter_cfg_load(o, "split", c, err, errlen);
    cJSON_Delete(o);
    return rc;
}

static void test_policy_config(void)
{
    struct arbiter_cfg c;
    char err[256] = "";
    CU_ASSERT_EQUAL(load("{}", &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(c.policy, SPLIT_POLICY_CAPACITY);
    CU_ASSERT_EQUAL(load("{\"policy\": \"priority\", \"priority\": [\"dev2\", \"dev0\"], "
                         "\"split_resolution_w\": 10}",
                         &c, err, sizeof err),
                    0);
    CU_ASSERT_EQUAL(c.policy, SPLIT_POLICY_PRIORITY);
    CU_ASSERT_EQUAL(c.n_priority, 2);
    CU_ASSERT_DOUBLE_EQUAL(c.split_resolution_w, 10, 1e-12);
    const char *ids[] = {"dev0", "dev1", "dev2"};
    CU_ASSERT_EQUAL(arbiter_cfg_check_assets(&c, "split", ids, 3, err, sizeof err), 0);
    CU_ASSERT_NOT_EQUAL(arbiter_cfg_check_assets(&c, "split", ids, 2, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "split.priority[0]: unknown asset dev2");

    /* dev2 first, then dev0, then dev1 (unlisted): 12 kW = 5 + 5 + 2 */
    struct procimg img;
    struct decision dm;
    site(&img);
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_MANUAL, DECISION_SITE, 12000);
    CU_ASSERT_EQUAL(arbiter_resolve(&c, &img, NULL, NULL, &dm), 0);
    CU_ASSERT_DOUBLE_EQUAL(dm.asset[2].requested_w, 5000, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(dm.asset[0].requested_w, 5000, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(dm.asset[1].requested_w, 2000, 1e-9);

    CU_ASSERT_NOT_EQUAL(load("{\"policy\": \"fastest\"}", &c, err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "split.policy: must be one of"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "got \"fastest\""));
    CU_ASSERT_NOT_EQUAL(load("{\"priority\": [\"a\", \"a\"]}", &c, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "split.priority[1]: a is listed twice");
    CU_ASSERT_NOT_EQUAL(load("{\"priority\": \"a\"}", &c, err, sizeof err), 0);
    CU_ASSERT_NOT_EQUAL(load("{\"polcy\": \"equal\"}", &c, err, sizeof err), 0);
}

/* split.pv_curtailment: PV takes what the batteries cannot of a request to export less, and
 * only then; off by default. */
static void test_pv_takes_part(void)
{
    struct procimg img;
    struct decision dm;
    struct arbiter_cfg c = {.split_resolution_w = 1};
    site(&img);
    img.dev[3].power_w = 6000;
    for (int with = 0; with < 2; with++) {
        c.with_pv = with;
        decision_init(&dm, &img, "t");
        decision_request(&dm, DSRC_MANUAL, DECISION_SITE, -20000);
        CU_ASSERT_EQUAL(arbiter_resolve(&c, &img, NULL, NULL, &dm), 0);
        CU_ASSERT_DOUBLE_EQUAL(dm.asset[0].requested_w + dm.asset[1].requested_w +
                                   dm.asset[2].requested_w,
                               -15000, 1e-9);
        if (with) {
            CU_ASSERT_DOUBLE_EQUAL(dm.asset[3].requested_w, 1000, 1e-9); /* 5 kW curtailed */
            CU_ASSERT_EQUAL(dm.asset[3].source, DSRC_MANUAL);
        } else {
            CU_ASSERT(isnan(dm.asset[3].requested_w));
        }
    }
    /* a request to export more is the batteries' alone */
    decision_init(&dm, &img, "t");
    decision_request(&dm, DSRC_MANUAL, DECISION_SITE, 20000);
    arbiter_resolve(&c, &img, NULL, NULL, &dm);
    CU_ASSERT(isnan(dm.asset[3].requested_w));
}

void test_register_arbiter(void)
{
    CU_pSuite s = CU_add_suite("arbiter", NULL, NULL);
    CU_add_test(s, "priorities", test_priorities);
    CU_add_test(s, "last request wins in a class", test_last_wins_in_class);
    CU_add_test(s, "site split", test_site_split);
    CU_add_test(s, "split skips unusable, respects limits",
                test_split_skips_unusable_and_respects_limits);
    CU_add_test(s, "NaN request passes through", test_nan_request_passes_through);
    CU_add_test(s, "request errors", test_request_errors);
    CU_add_test(s, "split policy configuration", test_policy_config);
    CU_add_test(s, "PV curtailment takes part", test_pv_takes_part);
}
