/* Unit tests for fleets in scenario files (sim/scenario/vary.c, sites.c): a "vary" block gives
 * every replica its own values, the same seed gives the same fleet, a different seed another;
 * values stay in their ranges, lists and step grids; groups cycle; asset ids of replicated
 * sites are "<site id>:<asset id>" outside the simulator; a bad block names its path. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "sim/scenario/scenario.h"

#define FILE_ "tests/data/scenarios/fleet-vary.json"

static char err[1024];

static struct scenario *load(const char *const *ov, size_t n)
{
    struct scenario *s = NULL;
    int rc = scenario_load(FILE_, ov, n, &s, err, sizeof err);
    if (rc)
        fprintf(stderr, "\n  unexpected error (%d): %s\n", rc, err);
    CU_ASSERT_EQUAL(rc, 0);
    return s;
}

static const struct asset_cfg *asset(const struct site_cfg *c, const char *id)
{
    for (size_t k = 0; k < c->n_assets; k++)
        if (!strcmp(c->assets[k].id, id))
            return &c->assets[k];
    return NULL;
}

/* A fingerprint of the varied values of every site. */
static void fleet_print(const struct scenario *s, char *buf, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_sites && n < len; i++) {
        const struct site_cfg *c = &s->sites[i];
        const struct asset_cfg *b = asset(c, "bat"), *pv = asset(c, "pv"), *h = asset(c, "house");
        if (!b)
            continue;
        n += (size_t)snprintf(buf + n, len - n, "%s %s %s %g %g %g %s %g|", c->id, c->group,
                              c->import_price->name, b->u.battery.capacity_wh,
                              b->u.battery.max_charge_w, pv->u.pv.peak_w, pv->u.pv.irradiance->name,
                              h->u.load.scale);
    }
}

static void test_values(void)
{
    struct scenario *s = load(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s->n_sites, 13);
    int caps[2] = {0, 0}, suns[2] = {0, 0};
    double pv_min = 1e9, pv_max = 0;
    for (size_t i = 0; i < 12; i++) {
        const struct site_cfg *c = &s->sites[i];
        static const char *const groups[] = {"north", "south", "east"};
        CU_ASSERT_STRING_EQUAL(c->group, groups[i % 3]); /* cycle: round robin */
        CU_ASSERT_EQUAL(c->namespaced, 1);
        const struct asset_cfg *b = asset(c, "bat"), *pv = asset(c, "pv"), *h = asset(c, "house");
        CU_ASSERT_FATAL(b && pv && h);
        double cap = b->u.battery.capacity_wh, ch = b->u.battery.max_charge_w;
        CU_ASSERT(cap == 5000 || cap == 10000);
        caps[cap == 10000]++;
        CU_ASSERT(ch >= 2000 && ch <= 5000 && fmod(ch, 500) == 0); /* on the step grid */
        CU_ASSERT_EQUAL(b->u.battery.max_discharge_w, 3000);       /* not varied */
        CU_ASSERT(pv->u.pv.peak_w >= 3000 && pv->u.pv.peak_w <= 9000);
        pv_min = fmin(pv_min, pv->u.pv.peak_w);
        pv_max = fmax(pv_max, pv->u.pv.peak_w);
        suns[!strcmp(pv->u.pv.irradiance->name, "sun-b")]++;
        double sc10 = h->u.load.scale * 10;
        CU_ASSERT(h->u.load.scale >= 0.5 - 1e-12 && h->u.load.scale <= 1.5 + 1e-12 &&
                  fabs(sc10 - nearbyint(sc10)) < 1e-9);
    }
    /* a fleet, not clones: both list values drawn, PV spread over the range */
    CU_ASSERT(caps[0] > 0 && caps[1] > 0);
    CU_ASSERT(suns[0] > 0 && suns[1] > 0);
    CU_ASSERT(pv_max - pv_min > 1000);
    /* the solo site keeps its written group and ids */
    CU_ASSERT_STRING_EQUAL(s->sites[12].group, "depots");
    CU_ASSERT_EQUAL(s->sites[12].namespaced, 0);
    scenario_free(s);
}

static void test_deterministic(void)
{
    static char a[8192], b[8192], c[8192];
    struct scenario *s1 = load(NULL, 0), *s2 = load(NULL, 0);
    const char *ov[] = {"seed=12"};
    struct scenario *s3 = load(ov, 1);
    CU_ASSERT_FATAL(s1 && s2 && s3);
    fleet_print(s1, a, sizeof a);
    fleet_print(s2, b, sizeof b);
    fleet_print(s3, c, sizeof c);
    CU_ASSERT_STRING_EQUAL(a, b);     /* same seed, same fleet */
    CU_ASSERT_STRING_NOT_EQUAL(a, c); /* another seed, another fleet */
    scenario_free(s1);
    scenario_free(s2);
    scenario_free(s3);
}

static void test_ids(void)
{
    const char *ov[] = {"sites[0].replicas=1000"};
    struct scenario *s = load(ov, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s->sites[41].id, "home-0042");
    char buf[SCN_ID_MAX];
    CU_ASSERT_STRING_EQUAL(scenario_asset_uid(&s->sites[41], "bat", buf), "home-0042:bat");
    CU_ASSERT_STRING_EQUAL(scenario_asset_local(&s->sites[41], "home-0042:bat"), "bat");
    CU_ASSERT_STRING_EQUAL(scenario_asset_local(&s->sites[41], "home-0043:bat"), "home-0043:bat");
    CU_ASSERT_STRING_EQUAL(scenario_asset_uid(&s->sites[1000], "grid", buf), "grid");
    /* every site id, and so every namespaced asset id, unique */
    for (size_t i = 1; i < 1000; i++)
        CU_ASSERT(strcmp(s->sites[i - 1].id, s->sites[i].id) < 0);
    scenario_free(s);
}

static void expect_fail(const char *ov, const char *want)
{
    struct scenario *s = NULL;
    const char *ovs[] = {ov};
    int rc = scenario_load(FILE_, ovs, 1, &s, err, sizeof err);
    CU_ASSERT_EQUAL(rc, -EINVAL);
    CU_ASSERT_PTR_NULL(s);
    if (!strstr(err, want))
        fprintf(stderr, "\n  --set %s\n    got:  %s\n    want: %s\n", ov, err, want);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
}

static void test_errors(void)
{
    expect_fail("sites[0].vary.assets.nope={\"x\": [1]}",
                "sites[0].vary.assets.nope: no asset \"nope\" in this site");
    expect_fail("sites[0].vary.assets.bat.type=[\"pv\"]",
                "sites[0].vary.assets.bat.type: an asset's id, type and unit id cannot vary");
    expect_fail("sites[0].vary.assets.bat.capacity_kwh=[]",
                "sites[0].vary.assets.bat.capacity_kwh: a list must not be empty");
    expect_fail("sites[0].vary.assets.bat.capacity_kwh={\"min\": 5, \"max\": 2}",
                "sites[0].vary.assets.bat.capacity_kwh.max: must be >= 5");
    expect_fail("sites[0].vary.assets.bat.capacity_kwh=7", "must be a list of values");
    expect_fail("sites[0].vary.color=[1]", "sites[0].vary: unknown key \"color\"");
    expect_fail("sites[0].group=x", "sites[0].vary.group: the site has a \"group\" already");
    /* a drawn value is judged like a written one, in the replica's name */
    expect_fail("sites[0].vary.assets.bat.capacity_kwh=[-1]",
                "sites[0] (replica home-01).assets[1].capacity_kwh");
    expect_fail("sites[1].group=\"a b\"", "sites[1].group: must match");
    /* "<site id>:<asset id>" must fit */
    expect_fail(
        "sites[0].assets[0].id=\"grid-meter-with-a-rather-long-name-written-for-this-test-x\"",
        "too long for a replicated site");
}

void test_register_vary(void)
{
    CU_pSuite su = CU_add_suite("vary", NULL, NULL);
    CU_add_test(su, "varied values in range, lists, grids, groups", test_values);
    CU_add_test(su, "same seed same fleet", test_deterministic);
    CU_add_test(su, "replica and asset ids", test_ids);
    CU_add_test(su, "bad vary blocks name their path", test_errors);
}
