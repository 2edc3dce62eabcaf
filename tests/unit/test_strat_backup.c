/* Unit tests for the BackupPower strategy (gateway/strategies/strat_backup.c): recharge with
 * hysteresis, the island supply, and the reserve as a constraint. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "strat_fixture.h"

static void test_recharge_and_island(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("backup_power", "{\"reserve_soc\": 0.5, \"resume_band\": 0.02, "
                                                 "\"recharge_power_w\": 2000}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fx_site(&img, 0.49, 300);
    fx_decide(s, &img, 0, &dm); /* inside the band: no recharge yet */
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    img.dev[0].soc = 0.47;
    fx_decide(s, &img, 1000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), -2000.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "backup_power/recharge");
    img.dev[0].soc = 0.49; /* recharging goes on up to the reserve */
    fx_decide(s, &img, 2000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), -2000.0);
    img.dev[0].soc = 0.5;
    fx_decide(s, &img, 3000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "backup_power/hold");
    /* the grid meter reports a power failure: supply load - PV from the battery */
    int lm = fx_add(&img, PROCIMG_METER_LOAD, "house");
    int pv = fx_add(&img, PROCIMG_PV, "pv1");
    img.dev[lm].power_w = 1500;
    img.dev[pv].power_w = 500;
    img.dev[1].islanded = 1;
    fx_grid(&img, 0);
    fx_decide(s, &img, 4000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 1000.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "backup_power/island");
    strategy_free(s);
}

/* Stacked after a discharge programme: no discharge at the reserve, a `reserve` conflict. */
static void test_constraint(void)
{
    char err[256];
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("discharge", "{\"power_w\": 3000}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    cJSON *c =
        cJSON_Parse("[{\"strategy\": \"backup_power\", \"params\": {\"reserve_soc\": 0.5}}]");
    CU_ASSERT_EQUAL(strategy_add_constraints(s, c, "constraints", err, sizeof err), 0);
    cJSON_Delete(c);
    CU_ASSERT_EQUAL(strategy_n_constraints(s), 1);
    fx_site(&img, 0.6, 500);
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 3000.0); /* above the reserve: free */
    CU_ASSERT_EQUAL(dm.n_clamps, 0);
    img.dev[0].soc = 0.5;
    fx_decide(s, &img, 1000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    CU_ASSERT_EQUAL_FATAL(dm.n_clamps, 1);
    CU_ASSERT_EQUAL(dm.clamp[0].asset, DECISION_SITE);
    CU_ASSERT_EQUAL(dm.clamp[0].reason, DC_RESERVE);
    CU_ASSERT_EQUAL(dm.clamp[0].from_w, 3000.0);
    char row[1024];
    CU_ASSERT(decision_csv_row(&dm, row, sizeof row) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(row, "site:reserve:3000.000>0.000"));
    strategy_free(s);
    /* a bad constraint names its place */
    s = fx_make("null", NULL);
    c = cJSON_Parse("[{\"strategy\": \"backup_power\", \"params\": {\"reserve\": 1}}]");
    CU_ASSERT_EQUAL(strategy_add_constraints(s, c, "constraints", err, sizeof err), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "constraints[0].params.reserve: unknown"));
    CU_ASSERT_PTR_NULL(strstr(err, "constraints[0]: ")); /* the path once */
    cJSON_Delete(c);
    c = cJSON_Parse("[{\"strategy\": \"backup\"}]");
    CU_ASSERT_EQUAL(strategy_add_constraints(s, c, "constraints", err, sizeof err), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "constraints[0].strategy: unknown strategy \"backup\""));
    cJSON_Delete(c);
    strategy_free(s);
}

void test_register_strat_backup(void)
{
    CU_pSuite s = CU_add_suite("strat_backup", NULL, NULL);
    CU_add_test(s, "recharge and island", test_recharge_and_island);
    CU_add_test(s, "reserve as a constraint", test_constraint);
}
