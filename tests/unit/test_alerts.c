/* Alert rules (headend/alerts.c): each predicate at and around its threshold, the raise/clear
 * state machine with its notifications, events cleared by an ack, the history ring, the
 * webhook URL rules (headend/webhook.c), and the desired-configuration check the headend
 * shares with the gateway (gateway/control/confsync.c). */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "gateway/control/confsync.h"
#include "headend/alerts.h"
#include "headend/webhook.h"

static const struct alert_limits L = {
    .offline_after_ms = 60000,
    .stale_after_ms = 30000,
    .lag_max_ms = 5000,
    .soc_reserve = 0.10,
    .fault = 1,
    .dispatch = 1,
};

static void test_predicates(void)
{
    double v;
    /* offline: only a site seen before, only when not connected, from the threshold on */
    CU_ASSERT_FALSE(alert_offline_holds(&L, 0, 0, 1000000, &v)); /* never seen */
    CU_ASSERT_FALSE(alert_offline_holds(&L, 0, 1000, 1000 + 59999, &v));
    CU_ASSERT_TRUE(alert_offline_holds(&L, 0, 1000, 1000 + 60000, &v));
    CU_ASSERT_DOUBLE_EQUAL(v, 60000, 1e-9);
    CU_ASSERT_FALSE(alert_offline_holds(&L, 1, 1000, 1000 + 600000, &v)); /* connected */
    /* stale: connected and silent */
    CU_ASSERT_FALSE(alert_stale_holds(&L, 0, 1000, 100000, &v));
    CU_ASSERT_FALSE(alert_stale_holds(&L, 1, 1000, 30999, &v));
    CU_ASSERT_TRUE(alert_stale_holds(&L, 1, 1000, 31000, &v));
    /* fault: the operating state (Telemetry.state) decides when the gateway reports one */
    CU_ASSERT_TRUE(alert_fault_holds(&L, "FAULT", "ok", ""));
    CU_ASSERT_FALSE(alert_fault_holds(&L, "RUNNING", "inverter fault 12", "")); /* text only */
    CU_ASSERT_FALSE(alert_fault_holds(&L, "IDLE", "ok", "FAULT"));
    CU_ASSERT_FALSE(alert_fault_holds(&L, "STARTING", "ok", "F"));
    /* ... else (a gateway that predates it) the status text or the device state */
    CU_ASSERT_TRUE(alert_fault_holds(&L, "", "FAULT", ""));
    CU_ASSERT_TRUE(alert_fault_holds(&L, NULL, "inverter fault 12", ""));
    CU_ASSERT_TRUE(alert_fault_holds(&L, "", "ok", "FAULT")); /* a boiler */
    CU_ASSERT_TRUE(alert_fault_holds(&L, "", "ok", "F"));     /* an EV charger's error state */
    CU_ASSERT_FALSE(alert_fault_holds(&L, "", "ok", "C"));
    CU_ASSERT_FALSE(alert_fault_holds(&L, "", "stale", "RUNNING"));
    /* soc: below the reserve raises; cleared only above reserve + hysteresis */
    CU_ASSERT_TRUE(alert_soc_holds(&L, 0.099, 0));
    CU_ASSERT_FALSE(alert_soc_holds(&L, 0.10, 0));
    CU_ASSERT_TRUE(alert_soc_holds(&L, 0.11, 1));
    CU_ASSERT_FALSE(alert_soc_holds(&L, 0.125, 1));
    CU_ASSERT_FALSE(alert_soc_holds(&L, NAN, 1)); /* not a battery */
    /* lag: connected assets only */
    CU_ASSERT_TRUE(alert_lag_holds(&L, 1, 5000));
    CU_ASSERT_FALSE(alert_lag_holds(&L, 1, 4999));
    CU_ASSERT_FALSE(alert_lag_holds(&L, 0, 1e9));
    CU_ASSERT_FALSE(alert_lag_holds(&L, 1, NAN));
    /* 0 turns a rule off */
    struct alert_limits off = {0};
    CU_ASSERT_FALSE(alert_offline_holds(&off, 0, 1, 1e12, &v));
    CU_ASSERT_FALSE(alert_stale_holds(&off, 1, 1, 1e12, &v));
    CU_ASSERT_FALSE(alert_fault_holds(&off, "FAULT", "FAULT", "FAULT"));
    CU_ASSERT_FALSE(alert_soc_holds(&off, 0.0, 0));
    CU_ASSERT_FALSE(alert_lag_holds(&off, 1, 1e12));
}

struct seen {
    char changes[16][160];
    int n;
};

static void record(void *ctx, const struct alert *a, const char *change)
{
    struct seen *s = ctx;
    if (s->n < 16)
        snprintf(s->changes[s->n++], sizeof(s->changes[0]), "%s %s %s", change,
                 alert_rule_name(a->rule), a->subject);
}

static void test_state_machine(void)
{
    struct seen s = {0};
    struct alerts *a = alerts_new(2, record, &s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    /* raised once on the rising edge, refreshed while it holds, cleared on the falling one */
    CU_ASSERT_EQUAL(alerts_observe(a, ALERT_SOC_LOW, "s1", "bat", 1, 0.05, "low", 100), 1);
    CU_ASSERT_EQUAL(alerts_observe(a, ALERT_SOC_LOW, "s1", "bat", 1, 0.04, "lower", 200), 0);
    const struct alert *al = alerts_find(a, ALERT_SOC_LOW, "bat");
    CU_ASSERT_PTR_NOT_NULL_FATAL(al);
    CU_ASSERT_DOUBLE_EQUAL(al->value, 0.04, 1e-12);
    CU_ASSERT_STRING_EQUAL(al->detail, "lower");
    CU_ASSERT_EQUAL(al->raised_ms, 100);
    CU_ASSERT_EQUAL(alerts_active(a, ALERT_SOC_LOW), 1);
    CU_ASSERT_EQUAL(alerts_observe(a, ALERT_SOC_LOW, "s1", "bat2", 0, 0.5, "", 200), 0);
    CU_ASSERT_EQUAL(alerts_observe(a, ALERT_SOC_LOW, "s1", "bat", 0, 0.5, "", 300), -1);
    CU_ASSERT_PTR_NULL(alerts_find(a, ALERT_SOC_LOW, "bat"));
    CU_ASSERT_EQUAL(alerts_count(a), 1);
    CU_ASSERT_FALSE(alerts_at(a, 0)->active);
    CU_ASSERT_EQUAL(alerts_at(a, 0)->cleared_ms, 300);
    /* the same subject under another rule is another alert */
    alerts_observe(a, ALERT_ASSET_FAULT, "s1", "bat", 1, NAN, "", 400);
    alerts_observe(a, ALERT_TELEMETRY_LAG, "s1", "bat", 1, 9000, "", 400);
    CU_ASSERT_EQUAL(alerts_count(a), 3);
    CU_ASSERT_EQUAL(alerts_at(a, 0)->rule, ALERT_ASSET_FAULT); /* active first, oldest first */
    CU_ASSERT_EQUAL(alerts_at(a, 1)->rule, ALERT_TELEMETRY_LAG);
    CU_ASSERT_EQUAL(alerts_at(a, 2)->rule, ALERT_SOC_LOW); /* then the history */
    /* an ack keeps a condition alert active; a second ack is refused */
    uint64_t id = alerts_find(a, ALERT_ASSET_FAULT, "bat")->id;
    CU_ASSERT_EQUAL(alerts_ack(a, id, "ops", 500), 0);
    CU_ASSERT_EQUAL(alerts_ack(a, id, "ops", 501), -EALREADY);
    CU_ASSERT_EQUAL(alerts_ack(a, 999, "ops", 501), -ENOENT);
    const struct alert *f = alerts_find(a, ALERT_ASSET_FAULT, "bat");
    CU_ASSERT_FATAL(f && f->active && f->acked_ms == 500);
    CU_ASSERT_STRING_EQUAL(f->acked_by, "ops");
    /* an event holds until acknowledged; one per subject */
    CU_ASSERT_EQUAL(alerts_event(a, ALERT_DISPATCH_FAILED, "s1", "sp-1", 1e6, "EXPIRED", 600), 1);
    CU_ASSERT_EQUAL(alerts_event(a, ALERT_DISPATCH_FAILED, "s1", "sp-1", 1e6, "EXPIRED", 601), 0);
    id = alerts_find(a, ALERT_DISPATCH_FAILED, "sp-1")->id;
    CU_ASSERT_EQUAL(alerts_ack(a, id, "ops", 700), 0);
    CU_ASSERT_PTR_NULL(alerts_find(a, ALERT_DISPATCH_FAILED, "sp-1"));
    CU_ASSERT_EQUAL(alerts_raised(a, ALERT_DISPATCH_FAILED), 1);
    /* the history keeps 2: the SoC alert (oldest) went */
    CU_ASSERT_EQUAL(alerts_count(a), 4);
    CU_ASSERT_EQUAL(alerts_at(a, 2)->rule, ALERT_DISPATCH_FAILED);
    CU_ASSERT_EQUAL(alerts_at(a, 3)->rule, ALERT_SOC_LOW);
    alerts_observe(a, ALERT_TELEMETRY_LAG, "s1", "bat", 0, 10, "", 800);
    CU_ASSERT_EQUAL(alerts_count(a), 3);
    CU_ASSERT_EQUAL(alerts_at(a, 1)->rule, ALERT_TELEMETRY_LAG);
    CU_ASSERT_EQUAL(alerts_at(a, 2)->rule, ALERT_DISPATCH_FAILED);
    /* every change notified, in order */
    static const char *const want[] = {
        "raised soc_low bat",         "cleared soc_low bat",          "raised asset_fault bat",
        "raised telemetry_lag bat",   "acked asset_fault bat",        "raised dispatch_failed sp-1",
        "acked dispatch_failed sp-1", "cleared dispatch_failed sp-1", "cleared telemetry_lag bat",
    };
    CU_ASSERT_EQUAL_FATAL(s.n, 9);
    for (int i = 0; i < 9; i++)
        CU_ASSERT_STRING_EQUAL(s.changes[i], want[i]);
    /* the JSON shape of REST and the webhook */
    cJSON *j = alert_json(alerts_at(a, 0));
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(j, "rule")->valuestring, "asset_fault");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(j, "state")->valuestring, "active");
    CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(j, "value")));
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(j, "acked_by")->valuestring, "ops");
    cJSON_Delete(j);
    CU_ASSERT_EQUAL(alert_rule_parse("gateway_stale"), ALERT_GATEWAY_STALE);
    CU_ASSERT_EQUAL(alert_rule_parse("modbus_errors"), ALERT_MODBUS_ERRORS);
    CU_ASSERT_EQUAL(alert_rule_parse("modbus"), -EINVAL);
    alerts_free(a);
}

static void test_webhook_url(void)
{
    char host[64], path[64], err[256];
    int port;
    CU_ASSERT_EQUAL(webhook_parse_url("http://127.0.0.1:8081/hook?x=1", host, sizeof(host), &port,
                                      path, sizeof(path), err, sizeof(err)),
                    0);
    CU_ASSERT_STRING_EQUAL(host, "127.0.0.1");
    CU_ASSERT_EQUAL(port, 8081);
    CU_ASSERT_STRING_EQUAL(path, "/hook?x=1");
    CU_ASSERT_EQUAL(webhook_parse_url("http://alerts.example", host, sizeof(host), &port, path,
                                      sizeof(path), err, sizeof(err)),
                    0);
    CU_ASSERT_EQUAL(port, 80);
    CU_ASSERT_STRING_EQUAL(path, "/");
    CU_ASSERT_EQUAL(webhook_parse_url("http://[::1]:9/a", host, sizeof(host), &port, path,
                                      sizeof(path), err, sizeof(err)),
                    0);
    CU_ASSERT_STRING_EQUAL(host, "::1");
    CU_ASSERT_EQUAL(port, 9);
    static const char *const bad[] = {"https://x/",  "ftp://x/",        "http://:80/",
                                      "http://x:0/", "http://x:99999/", "http://x/a b",
                                      "http://[::1/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(webhook_parse_url(bad[i], host, sizeof(host), &port, path, sizeof(path),
                                          err, sizeof(err)),
                        -EINVAL);
        CU_ASSERT(strstr(err, "--alert-webhook") != NULL);
    }
}

/* The check the headend runs on PUT /sites/:id/config is the gateway's: fields named. */
static void test_desired_check(void)
{
    char err[512], field[64];
    CU_ASSERT_EQUAL(confsync_check("{\"strategy\":\"charge\",\"params\":{\"power_w\":500}}", err,
                                   sizeof(err), field, sizeof(field)),
                    0);
    CU_ASSERT_EQUAL(confsync_check("{\"strategy\":\"null\",\"schedules\":[],\"safety\":"
                                   "{\"soc_floor\":0.2}}",
                                   err, sizeof(err), field, sizeof(field)),
                    0);
    static const struct {
        const char *json, *field, *in_err;
    } bad[] = {
        {"{\"strategy\":\"charge\",\"params\":{\"power_w\":-1}}", "params.power_w", "-1"},
        {"{\"strategy\":\"charge\",\"params\":{\"speed\":1}}", "params.speed", "speed"},
        {"{\"strategy\":\"warp\"}", "strategy", "warp"},
        {"{\"params\":{}}", "strategy", "required"},
        {"{\"strategy\":\"null\",\"safety\":{\"soc_floor\":0.9,\"soc_ceiling\":0.5}}",
         "safety.soc_floor", "soc_ceiling"},
        {"{\"strategy\":\"null\",\"constraints\":[{\"strategy\":\"peak_shaving\","
         "\"params\":{\"import_limit_w\":\"x\"}}]}",
         "constraints[0].params.import_limit_w", "x"},
        {"{\"strategy\":\"null\",\"schedules\":[{\"from\":\"08:00\"}]}", "schedules[0].to",
         "HH:MM"},
        {"{\"strategy\":\"null\",\"schedules\":[{\"from\":\"08:00\",\"to\":\"09:00\","
         "\"action\":\"charge\"}]}",
         "schedules[0].power_w", "required"},
        {"{\"strategy\":\"null\",\"devices\":[]}", "devices", "unknown key"},
        {"[1]", "(root)", "object"},
        {"{\"strategy\":", "", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(confsync_check(bad[i].json, err, sizeof(err), field, sizeof(field)),
                        -EINVAL);
        CU_ASSERT_STRING_EQUAL(field, bad[i].field);
        CU_ASSERT(strstr(err, bad[i].in_err) != NULL);
        if (strcmp(field, bad[i].field) || !strstr(err, bad[i].in_err))
            printf("\n  %s -> field '%s' err '%s'\n", bad[i].json, field, err);
    }
}

/* modbus_errors: the rate over a sliding window of the gateway's cumulative counters */
static void test_modbus_rate(void)
{
    struct alert_limits M = {
        .modbus_error_pct = 10, .modbus_window_ms = 80000, .modbus_min_requests = 20};
    struct alert_rate r;
    memset(&r, 0, sizeof r);
    double pct;
    uint64_t calls, errs;
    CU_ASSERT_FALSE(alert_modbus_holds(&M, &r, 0, &pct, &calls, &errs)); /* nothing yet */
    /* 10 calls a second, no errors: a rate of 0 */
    uint64_t req = 0, err = 0;
    int64_t t = 0;
    for (; t <= 100000; t += 1000, req += 10)
        alert_rate_push(&r, M.modbus_window_ms, req, err, t);
    t -= 1000;
    CU_ASSERT_FALSE(alert_modbus_holds(&M, &r, t, &pct, &calls, &errs));
    CU_ASSERT_DOUBLE_EQUAL(pct, 0, 1e-9);
    CU_ASSERT_TRUE(calls >= 700 && calls <= 800); /* 7/8 to all of the window */
    /* then 2 of 10 fail: 20 % once the window holds only them */
    for (t += 1000; t <= 200000; t += 1000, req += 10, err += 2)
        alert_rate_push(&r, M.modbus_window_ms, req, err, t);
    t -= 1000;
    CU_ASSERT_TRUE(alert_modbus_holds(&M, &r, t, &pct, &calls, &errs));
    CU_ASSERT_DOUBLE_EQUAL(pct, 20, 1e-9);
    CU_ASSERT_EQUAL(errs * 5, calls);
    /* a threshold above it does not hold; fewer calls than the minimum give no rate */
    struct alert_limits hi = M;
    hi.modbus_error_pct = 25;
    CU_ASSERT_FALSE(alert_modbus_holds(&hi, &r, t, &pct, &calls, &errs));
    struct alert_limits few = M;
    few.modbus_min_requests = 100000;
    CU_ASSERT_FALSE(alert_modbus_holds(&few, &r, t, &pct, &calls, &errs));
    CU_ASSERT_TRUE(isnan(pct));
    /* the errors stop: it clears within the window */
    int cleared_at = -1;
    for (int k = 1; k <= 90 && cleared_at < 0; k++, req += 10) {
        alert_rate_push(&r, M.modbus_window_ms, req, err, t + k * 1000);
        if (!alert_modbus_holds(&M, &r, t + k * 1000, &pct, &calls, &errs))
            cleared_at = k;
    }
    CU_ASSERT_TRUE(cleared_at > 0 && cleared_at <= 80);
    /* the gateway restarted (counters lower): the window starts again, no bogus rate */
    alert_rate_push(&r, M.modbus_window_ms, 5, 5, t + 100000);
    CU_ASSERT_FALSE(alert_modbus_holds(&M, &r, t + 100000, &pct, &calls, &errs));
    CU_ASSERT_EQUAL(calls, 0);
    /* off: 0 % */
    struct alert_limits off = {0};
    CU_ASSERT_FALSE(alert_modbus_holds(&off, &r, t, &pct, &calls, &errs));
    CU_ASSERT_STRING_EQUAL(alert_rule_name(ALERT_MODBUS_ERRORS), "modbus_errors");
}

void test_register_alerts(void)
{
    CU_pSuite s = CU_add_suite("alerts", NULL, NULL);
    CU_add_test(s, "rule predicates at their thresholds", test_predicates);
    CU_add_test(s, "raise, refresh, clear, ack, history", test_state_machine);
    CU_add_test(s, "webhook URL", test_webhook_url);
    CU_add_test(s, "modbus error rate over its window", test_modbus_rate);
    CU_add_test(s, "desired configuration check", test_desired_check);
}
