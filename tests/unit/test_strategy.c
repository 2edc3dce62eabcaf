/* Unit tests for the strategy framework (gateway/strategies/strategy.c): parameter tables
 * (defaults, unknown keys, bounds, types, durations, messages), the registry, each strategy's
 * decide, and that docs/strategies.md carries the tables generated from the code. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "gateway/control/arbiter.h"
#include "gateway/control/safety.h"
#include "gateway/strategies/strategy.h"

struct tcfg {
    double kp;
    int n;
    int on;
    int64_t hold_ms;
};

static const struct param_field tfields[] = {
    {"kp", PARAM_DOUBLE, offsetof(struct tcfg, kp), 0.5, 0, 100, "", "gain"},
    {"n", PARAM_INT, offsetof(struct tcfg, n), 3, 1, 10, "", "count"},
    {"on", PARAM_BOOL, offsetof(struct tcfg, on), 1, 0, 1, "", "switch"},
    {"hold", PARAM_DURATION_MS, offsetof(struct tcfg, hold_ms), 60000, 0, 3600000, "ms", "hold"},
};
#define NT (sizeof tfields / sizeof tfields[0])

static int load(const char *json, struct tcfg *c, char *err, size_t len)
{
    cJSON *o = cJSON_Parse(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    int rc = param_load(tfields, NT, o, "gateway.params", c, err, len);
    cJSON_Delete(o);
    return rc;
}

static void test_params_good(void)
{
    struct tcfg c;
    char err[256] = "";
    CU_ASSERT_EQUAL(param_load(tfields, NT, NULL, "x", &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(c.kp, 0.5);
    CU_ASSERT_EQUAL(c.n, 3);
    CU_ASSERT_EQUAL(c.on, 1);
    CU_ASSERT_EQUAL(c.hold_ms, 60000);
    CU_ASSERT_EQUAL(
        load("{\"kp\": 0.4, \"n\": 10, \"on\": false, \"hold\": \"15m\"}", &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(c.kp, 0.4);
    CU_ASSERT_EQUAL(c.n, 10);
    CU_ASSERT_EQUAL(c.on, 0);
    CU_ASSERT_EQUAL(c.hold_ms, 900000);
    CU_ASSERT_EQUAL(load("{\"hold\": 2500}", &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(c.hold_ms, 2500);
    CU_ASSERT_EQUAL(c.kp, 0.5); /* untouched keys keep defaults */
}

static void test_params_rejects(void)
{
    struct tcfg c;
    char err[256];
    CU_ASSERT_EQUAL(load("{\"kp\": -1}", &c, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "gateway.params.kp: must be in [0, 100], got -1");
    CU_ASSERT_EQUAL(load("{\"kpp\": 1}", &c, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "gateway.params.kpp: unknown parameter (known: kp, n, on, hold)");
    CU_ASSERT_EQUAL(load("{\"kp\": \"fast\"}", &c, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "gateway.params.kp: must be a number, got \"fast\"");
    CU_ASSERT_EQUAL(load("{\"n\": 2.5}", &c, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "gateway.params.n: must be an integer, got 2.5");
    CU_ASSERT_EQUAL(load("{\"n\": 11}", &c, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "gateway.params.n: must be in [1, 10], got 11");
    CU_ASSERT_EQUAL(load("{\"on\": 1}", &c, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "gateway.params.on: must be true or false, got 1");
    CU_ASSERT_EQUAL(load("{\"hold\": \"soon\"}", &c, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err,
                           "gateway.params.hold: must be a duration such as \"15m\", got \"soon\"");
    CU_ASSERT_EQUAL(load("{\"hold\": \"2h\"}", &c, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "gateway.params.hold: must be in [0s, 1h], got 2h");
    CU_ASSERT_EQUAL(load("{\"kp\": 1, \"kp\": 2}", &c, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "gateway.params.kp: given twice");
    CU_ASSERT_EQUAL(load("[1]", &c, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "gateway.params: must be an object");
    CU_ASSERT_EQUAL(load("{\"kp\": null}", &c, err, sizeof err), -EINVAL);
}

static void test_registry(void)
{
    const char *names[] = {"null",      "charge",       "discharge",     "net_zero",
                           "manual",    "peak_shaving", "time_of_use",   "self_consumption",
                           "arbitrage", "backup_power", "grid_services", "ev_charging",
                           "boiler",    "planner"};
    size_t n = sizeof names / sizeof names[0];
    CU_ASSERT_EQUAL(strategy_count(), n);
    for (size_t i = 0; i < n && i < strategy_count(); i++) {
        CU_ASSERT_PTR_NOT_NULL(strategy_find(names[i]));
        CU_ASSERT_STRING_EQUAL(strategy_at(i)->name, names[i]);
    }
    CU_ASSERT_PTR_NULL(strategy_find("netzero"));
    CU_ASSERT_PTR_NULL(strategy_at(n));
    char err[256];
    CU_ASSERT_PTR_NULL(strategy_new("netzero", NULL, "gateway.params", err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown strategy \"netzero\""));
    cJSON *o = cJSON_Parse("{\"kp\": -1}");
    CU_ASSERT_PTR_NULL(strategy_new("net_zero", o, "gateway.params", err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "gateway.params.kp: must be in [0, 100], got -1");
    cJSON_Delete(o);
    o = cJSON_Parse("{\"kp\": 1}");
    CU_ASSERT_PTR_NULL(strategy_new("charge", o, "gateway.params", err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "gateway.params.kp: unknown parameter"));
    cJSON_Delete(o);
}

/* A site: battery 0, pv 1, grid meter 2. */
static void site(struct procimg *img, double soc, double grid_w)
{
    memset(img, 0, sizeof *img);
    img->n_devices = 3;
    const char *ids[] = {"bat1", "pv1", "grid"};
    enum procimg_type types[] = {PROCIMG_BATTERY, PROCIMG_PV, PROCIMG_METER_GRID};
    for (int i = 0; i < 3; i++) {
        struct procimg_dev *d = &img->dev[i];
        snprintf(d->asset_id, sizeof d->asset_id, "%s", ids[i]);
        d->type = types[i];
        d->online = 1;
        d->soc = NAN;
        d->soc_min = d->soc_max = d->capacity_wh = d->temperature_c = d->voltage_v = NAN;
        d->max_charge_w = d->max_discharge_w = d->rated_w = NAN;
    }
    img->dev[0].soc = soc;
    img->dev[0].capacity_wh = 10000;
    img->grid_w = grid_w;
    img->grid_ok = 1;
}

static struct strategy *make(const char *name, const char *json)
{
    char err[256] = "";
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    struct strategy *s = strategy_new(name, o, "gateway.params", err, sizeof err);
    cJSON_Delete(o);
    if (!s)
        fprintf(stderr, "%s: %s\n", name, err);
    return s;
}

static void test_null(void)
{
    struct procimg img;
    struct decision dm;
    site(&img, 0.5, 1000);
    struct strategy *s = make("null", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    decision_init(&dm, &img, NULL);
    CU_ASSERT_EQUAL(strategy_decide(s, &img, 0, &dm), 0);
    CU_ASSERT_EQUAL(dm.n_requests, 0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "null");
    strategy_free(s);
}

static void test_charge_discharge(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = make("charge", "{\"power_w\": 3000, \"stop_soc\": 0.9}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    site(&img, 0.5, 0);
    decision_init(&dm, &img, NULL);
    strategy_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(dm.n_requests, 1);
    CU_ASSERT_EQUAL(dm.req[0].asset, DECISION_SITE);
    CU_ASSERT_EQUAL(dm.req[0].source, DSRC_SCHEDULED);
    CU_ASSERT_EQUAL(dm.req[0].power_w, -3000.0);
    /* stops at 0.9, stays stopped at 0.89, resumes below 0.88 */
    double socs[] = {0.9, 0.89, 0.875};
    double want[] = {0, 0, -3000};
    for (int k = 0; k < 3; k++) {
        site(&img, socs[k], 0);
        decision_init(&dm, &img, NULL);
        strategy_decide(s, &img, 1000 * (k + 1), &dm);
        CU_ASSERT_EQUAL(dm.req[0].power_w, want[k]);
    }
    strategy_free(s);

    s = make("discharge", "{\"power_w\": 2000, \"stop_soc\": 0.2}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    site(&img, 0.5, 0);
    decision_init(&dm, &img, NULL);
    strategy_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(dm.req[0].power_w, 2000.0);
    site(&img, 0.2, 0);
    decision_init(&dm, &img, NULL);
    strategy_decide(s, &img, 1000, &dm);
    CU_ASSERT_EQUAL(dm.req[0].power_w, 0.0);
    strategy_free(s);
}

/* The feed-forward (issue 14): a 3 kW load step, the battery measured at what it was given one
 * cycle late, a meter that repeats each sample for `hold` cycles: the grid comes back within
 * two fresh samples, without overshoot and without the PID-only rebound. */
static double net_zero_step(int hold, double *overshoot_w, double *at5_w)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = make("net_zero", "{\"kp\": 0.5, \"ki_per_s\": 0.2}");
    double battery = 500, meter = 0, worst = 0, last_grid = 0;
    for (int k = 0; k < 40; k++) {
        double load = k < 10 ? 500 : 3500;
        if (k % hold == 0)
            meter = load - battery; /* the meter samples now, shows it until the next sample */
        site(&img, 0.5, meter);
        img.dev[0].power_w = battery;
        img.dev[0].has_prev_setpoint = 1;
        img.dev[0].prev_setpoint_w = battery;
        decision_init(&dm, &img, NULL);
        strategy_decide(s, &img, k * 1000, &dm);
        battery = dm.req[0].power_w;
        last_grid = load - battery;
        if (k >= 10 && -last_grid > worst)
            worst = -last_grid;
        if (k == 15) /* 5 cycles after the step */
            *at5_w = last_grid;
    }
    strategy_free(s);
    *overshoot_w = worst;
    return last_grid;
}

static void test_net_zero_feed_forward(void)
{
    for (int hold = 1; hold <= 3; hold++) {
        double over, at5, end = net_zero_step(hold, &over, &at5);
        CU_ASSERT(fabs(end) < 30);
        CU_ASSERT(fabs(at5) < 0.02 * 3000);
        CU_ASSERT(over < 0.05 * 3000);
    }
}

static void test_net_zero(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = make("net_zero", "{\"kp\": 0.5, \"ki_per_s\": 0.2, \"rate_w_per_s\": 0, "
                                          "\"quantum_w\": 0, \"ff_gain\": 0}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    /* a closed loop, the PID alone: load 1500 W, the battery follows the request one cycle
     * late; the integral carries the steady state */
    double battery = 0;
    for (int k = 0; k < 100; k++) {
        site(&img, 0.5, 1500 - battery);
        img.dev[0].has_prev_setpoint = k > 0;
        img.dev[0].prev_setpoint_w = battery;
        img.dev[0].prev_setpoint_ms = (k - 1) * 1000;
        decision_init(&dm, &img, NULL);
        CU_ASSERT_EQUAL(strategy_decide(s, &img, k * 1000, &dm), 0);
        CU_ASSERT_EQUAL(dm.req[0].source, DSRC_OPTIMISATION);
        battery = dm.req[0].power_w;
    }
    CU_ASSERT(fabs(battery - 1500) < 25);
    CU_ASSERT_EQUAL(dm.target_w, 0.0);
    CU_ASSERT(fabs(dm.error_w) < 25);
    CU_ASSERT(fabs(dm.i_w - 1500) < 30);
    CU_ASSERT(!isnan(dm.p_w) && !isnan(dm.d_w));
    /* the grid meter goes stale: ask for 0 W */
    site(&img, 0.5, 1500);
    img.grid_ok = 0;
    decision_init(&dm, &img, NULL);
    strategy_decide(s, &img, 100000, &dm);
    CU_ASSERT_EQUAL(dm.req[0].power_w, 0.0);
    strategy_free(s);
}

static void test_manual(void)
{
    struct procimg img;
    struct decision dm;
    struct strategy *s = make("manual", "{\"power_w\": -1000, \"expires\": \"10s\"}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    site(&img, 0.5, 0);
    decision_init(&dm, &img, NULL);
    strategy_decide(s, &img, 9999, &dm);
    CU_ASSERT_EQUAL(dm.n_requests, 1);
    CU_ASSERT_EQUAL(dm.req[0].source, DSRC_MANUAL);
    CU_ASSERT_EQUAL(dm.req[0].power_w, -1000.0);
    decision_init(&dm, &img, NULL);
    strategy_decide(s, &img, 10000, &dm);
    CU_ASSERT_EQUAL(dm.n_requests, 0); /* expired: no request */
    /* a command for one asset */
    CU_ASSERT_EQUAL(strategy_dispatch(s, 0, 2500, 20000), 0);
    CU_ASSERT_EQUAL(strategy_dispatch(s, 0, NAN, 20000), -EINVAL);
    decision_init(&dm, &img, NULL);
    strategy_decide(s, &img, 15000, &dm);
    CU_ASSERT_EQUAL(dm.n_requests, 1);
    CU_ASSERT_EQUAL(dm.req[0].asset, 0);
    CU_ASSERT_EQUAL(dm.req[0].power_w, 2500.0);
    decision_init(&dm, &img, NULL);
    strategy_decide(s, &img, 20000, &dm);
    CU_ASSERT_EQUAL(dm.n_requests, 0);
    strategy_free(s);
    /* strategies without commands refuse them */
    s = make("null", NULL);
    CU_ASSERT_EQUAL(strategy_dispatch(s, DECISION_SITE, 1, 1), -ENOTSUP);
    strategy_free(s);
}

/* The docs must carry the tables the code generates: a stale table fails here. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

static int doc_has_table(const char *doc, const struct param_field *f, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    param_print_markdown(f, n, m);
    fclose(m);
    int ok = doc && strstr(doc, buf) != NULL;
    if (!ok)
        fprintf(stderr, "docs: table missing or stale:\n%s", buf);
    free(buf);
    return ok;
}

static void test_docs_match_tables(void)
{
    char *doc = slurp("docs/strategies.md");
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    for (size_t i = 0; i < strategy_count(); i++) {
        const struct strategy_ops *o = strategy_at(i);
        char head[64];
        snprintf(head, sizeof head, "`%s`", o->name);
        CU_ASSERT_PTR_NOT_NULL(strstr(doc, head));
        CU_ASSERT(doc_has_table(doc, o->fields, o->n_fields));
    }
    CU_ASSERT(doc_has_table(doc, arbiter_fields, arbiter_n_fields));
    free(doc);
    doc = slurp("docs/safety.md");
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT(doc_has_table(doc, safety_fields, safety_n_fields));
    for (int r = 0; r < DR_COUNT; r++) {
        char code[64];
        snprintf(code, sizeof code, "`%s`", decision_reason_name(r));
        CU_ASSERT_PTR_NOT_NULL(strstr(doc, code));
    }
    free(doc);
}

static void test_help_text(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    const struct strategy_ops *o = strategy_find("net_zero");
    CU_ASSERT_EQUAL(param_print_help(o->fields, o->n_fields, "gateway.params.", m), 0);
    fclose(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "  gateway.params.kp=0.5  (number in [0, 100] W/W) "));
    free(buf);
}

void test_register_strategy(void)
{
    CU_pSuite s = CU_add_suite("strategy", NULL, NULL);
    CU_add_test(s, "params good", test_params_good);
    CU_add_test(s, "params rejects", test_params_rejects);
    CU_add_test(s, "registry", test_registry);
    CU_add_test(s, "null", test_null);
    CU_add_test(s, "charge and discharge", test_charge_discharge);
    CU_add_test(s, "net_zero", test_net_zero);
    CU_add_test(s, "net_zero feed-forward", test_net_zero_feed_forward);
    CU_add_test(s, "manual", test_manual);
    CU_add_test(s, "help text", test_help_text);
    CU_add_test(s, "docs match tables", test_docs_match_tables);
}
