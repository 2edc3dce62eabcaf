/* Unit tests for the site inputs (gateway/control/sitectx.c: calendar, tariffs, departures, their
 * errors) and for stacking (strategy.c: windows, precedence, conflicts, kept controller terms). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "gateway/control/siteconf.h"
#include "strat_fixture.h"

#define H (3600 * 1000LL)

static int parse_err(const char *json, char *err, size_t len)
{
    struct sitectx c;
    cJSON *o = cJSON_Parse(json);
    int rc = sitectx_parse(&c, o, err, len);
    cJSON_Delete(o);
    if (!rc)
        sitectx_free(&c);
    return rc;
}

static void test_sitectx(void)
{
    struct sitectx c;
    CU_ASSERT_EQUAL_FATAL(
        fx_ctx(&c, "{\"start\": \"2026-01-16T00:00:00Z\", \"tariff\": {"
                   "\"import\": {\"type\": \"tou\", \"weekday\": [{\"from\": \"00:00\", \"to\": "
                   "\"07:00\", \"price\": 0.18}, {\"from\": \"07:00\", \"to\": \"24:00\", "
                   "\"price\": 0.32}], \"weekend\": [{\"from\": \"00:00\", \"to\": \"24:00\", "
                   "\"price\": 0.25}]},"
                   "\"export\": {\"type\": \"series\", \"interpolation\": \"linear\", \"repeat\": "
                   "\"1d\", \"points\": [[\"0h\", 0.0], [\"12h\", 0.12]]}},"
                   "\"ev_departures\": [{\"asset_id\": \"e1\", \"daily\": \"07:30\"},"
                   "{\"asset_id\": \"e1\", \"at\": \"2026-01-16T05:00:00Z\"}]}"),
        0);
    CU_ASSERT_EQUAL(sitectx_price(&c, 0, 6 * H), 0.18); /* Friday */
    CU_ASSERT_EQUAL(sitectx_price(&c, 0, 7 * H), 0.32);
    CU_ASSERT_EQUAL(sitectx_price(&c, 0, 24 * H + H), 0.25); /* Saturday */
    CU_ASSERT(fabs(sitectx_price(&c, 1, 6 * H) - 0.06) < 1e-12);
    CU_ASSERT(fabs(sitectx_price(&c, 1, 24 * H + 6 * H) - 0.06) < 1e-12); /* repeats */
    CU_ASSERT(fabs(sitectx_price(&c, 1, 18 * H) - 0.12) < 1e-12); /* holds after the last point */
    double lo, hi;
    CU_ASSERT_EQUAL(sitectx_price_range(&c, 0, 0, 24 * H, H, &lo, &hi), 0);
    CU_ASSERT_EQUAL(lo, 0.18);
    CU_ASSERT_EQUAL(hi, 0.32);
    int64_t dep;
    CU_ASSERT_EQUAL(sitectx_next_departure(&c, "e1", 0, &dep), 0);
    CU_ASSERT_EQUAL(dep, 5 * H); /* the one-off comes first */
    CU_ASSERT_EQUAL(sitectx_next_departure(&c, "e1", 6 * H, &dep), 0);
    CU_ASSERT_EQUAL(dep, 7 * H + 30 * 60000); /* then the daily one */
    CU_ASSERT_EQUAL(sitectx_next_departure(&c, "e1", 8 * H, &dep), 0);
    CU_ASSERT_EQUAL(dep, 31 * H + 30 * 60000);
    CU_ASSERT_EQUAL(sitectx_next_departure(&c, "e2", 0, &dep), -ENOENT);
    sitectx_free(&c);
    /* without a start there is no calendar: TOU prices and departures are unknown */
    CU_ASSERT_EQUAL(fx_ctx(&c, "{}"), 0);
    CU_ASSERT(isnan(sitectx_price(&c, 0, 0)));
    CU_ASSERT_EQUAL(sitectx_next_departure(&c, "e1", 0, &dep), -ENOENT);
    sitectx_free(&c);
}

static void test_sitectx_errors(void)
{
    char err[256];
    CU_ASSERT_EQUAL(parse_err("{\"start\": \"yesterday\"}", err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "start: must be an ISO instant such as \"2026-06-21T00:00:00Z\", "
                                "got \"yesterday\"");
    CU_ASSERT_EQUAL(parse_err("{\"tariff\": {\"import\": {\"type\": \"tou\", \"weekday\": "
                              "[{\"from\": \"00:00\", \"to\": \"07:00\", \"price\": 1}, "
                              "{\"from\": \"08:00\", \"to\": \"24:00\", \"price\": 2}]}}}",
                              err, sizeof err),
                    -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "tariff.import.weekday[1].from: must be \"HH:MM\" where the "
                                "previous band ended (07:00), got \"08:00\"");
    /* "HH:MM" is strict (caltime_parse_hhmm, as in the scenario files): these used to pass. */
    static const struct {
        const char *to0, *from1, *want;
    } sloppy[] = {
        {" 7:30", "07:30", "weekday[0].to: must be \"HH:MM\" or \"24:00\", got \" 7:30\""},
        {"07:30", "+7:30", "weekday[1].from: must be \"HH:MM\", got \"+7:30\""},
        {"07:+5", "07:05", "weekday[0].to: must be \"HH:MM\" or \"24:00\", got \"07:+5\""},
    };
    for (size_t i = 0; i < sizeof sloppy / sizeof sloppy[0]; i++) {
        char json[256], want[128];
        snprintf(json, sizeof json,
                 "{\"tariff\": {\"import\": {\"type\": \"tou\", \"weekday\": [{\"from\": "
                 "\"00:00\", \"to\": \"%s\", \"price\": 1}, {\"from\": \"%s\", \"to\": "
                 "\"24:00\", \"price\": 2}]}}}",
                 sloppy[i].to0, sloppy[i].from1);
        snprintf(want, sizeof want, "tariff.import.%s", sloppy[i].want);
        CU_ASSERT_EQUAL(parse_err(json, err, sizeof err), -EINVAL);
        CU_ASSERT_STRING_EQUAL(err, want);
    }
    CU_ASSERT_EQUAL(parse_err("{\"ev_departures\": [{\"asset_id\": \"e1\", \"daily\": \" 7:30\"}]}",
                              err, sizeof err),
                    -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "ev_departures[0].daily: must be \"HH:MM\" (UTC), got \" 7:30\"");
    CU_ASSERT_EQUAL(parse_err("{\"tariff\": {\"import\": {\"type\": \"series\", \"points\": "
                              "[[\"1h\", 1], [\"1h\", 2]]}}}",
                              err, sizeof err),
                    -EINVAL);
    CU_ASSERT_STRING_EQUAL(err,
                           "tariff.import.points[1]: times must strictly increase, got \"1h\"");
    CU_ASSERT_EQUAL(parse_err("{\"tariff\": {\"impot\": {}}}", err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "tariff: unknown key \"impot\"");
    CU_ASSERT_EQUAL(parse_err("{\"ev_departures\": [{\"asset_id\": \"e1\"}]}", err, sizeof err),
                    -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "ev_departures[0]: needs exactly one of"));
}

/* Two constraints that disagree: the earlier one wins, the later one's loss is recorded. */
static void test_precedence(void)
{
    char err[256];
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("discharge", "{\"power_w\": 1000}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    cJSON *c = cJSON_Parse(
        "[{\"strategy\": \"backup_power\", \"params\": {\"reserve_soc\": 0.5}},"
        " {\"strategy\": \"peak_shaving\", \"params\": {\"import_limit_w\": 4000, \"margin_w\": 0,"
        "  \"recharge_below_w\": 0, \"reserve_soc\": 0}}]");
    CU_ASSERT_EQUAL(strategy_add_constraints(s, c, "constraints", err, sizeof err), 0);
    cJSON_Delete(c);
    fx_site(&img, 0.5, 6000); /* at the reserve, 2 kW over the limit */
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 0.0);
    CU_ASSERT_EQUAL_FATAL(dm.n_clamps, 2);
    CU_ASSERT_EQUAL(dm.clamp[0].reason, DC_RESERVE);    /* 1000 > 0 */
    CU_ASSERT_EQUAL(dm.clamp[1].reason, DC_PEAK_LIMIT); /* wanted >= 2000, held at 0 */
    CU_ASSERT_EQUAL(dm.clamp[1].from_w, 2000.0);
    CU_ASSERT_EQUAL(dm.clamp[1].to_w, 0.0);
    /* above the reserve the peak limit raises the discharge */
    img.dev[0].soc = 0.6;
    fx_decide(s, &img, 1000, &dm);
    CU_ASSERT_EQUAL(strategy_site_request(&dm, NULL), 2000.0);
    CU_ASSERT_EQUAL(decision_count(&dm, DC_PEAK_LIMIT), 1);
    /* the interlock counters stop at DR_COUNT: conflicts are not interlocks */
    CU_ASSERT((int)DC_FIRST >= (int)DR_COUNT);
    CU_ASSERT_STRING_EQUAL(decision_reason_name(DC_EV_BATTERY), "ev_battery");
    strategy_free(s);
}

/* The primary's controller terms survive the constraints. */
static void test_terms_kept(void)
{
    char err[256];
    struct procimg img;
    struct decision dm;
    struct strategy *s = fx_make("net_zero", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    cJSON *c = cJSON_Parse("[{\"strategy\": \"grid_services\", \"params\": {\"fcr_power_w\": "
                           "1000}}]");
    CU_ASSERT_EQUAL(strategy_add_constraints(s, c, "constraints", err, sizeof err), 0);
    cJSON_Delete(c);
    fx_site(&img, 0.5, 500);
    img.dev[1].freq_hz = 49.5; /* full FCR: +1000 W on top of NetZero's request */
    fx_decide(s, &img, 0, &dm);
    CU_ASSERT_EQUAL(dm.error_w, 500.0);
    CU_ASSERT_STRING_EQUAL(dm.strategy, "net_zero");
    CU_ASSERT_EQUAL(decision_count(&dm, DC_GRID_SERVICE), 1);
    CU_ASSERT(fabs(strategy_site_request(&dm, NULL) - (dm.raw_w + 1000)) < 1e-9);
    strategy_free(s);
}

/* The site configuration carries the new sections and checks the shape of "constraints". */
static void test_siteconf_sections(void)
{
    const char *head = "{\"site_id\": \"s\", \"devices\": [{\"asset_id\": \"g\", \"type\": "
                       "\"meter\", \"role\": \"grid\", \"host\": \"h\", \"port\": 502, "
                       "\"unit_id\": 1}]";
    char text[1024], err[256];
    struct siteconf *sc;
    snprintf(text, sizeof text,
             "%s, \"start\": \"2026-01-16T00:00:00Z\", \"constraints\": "
             "[{\"strategy\": \"backup_power\"}]}",
             head);
    CU_ASSERT_EQUAL_FATAL(siteconf_parse(text, "x.json", &sc, err, sizeof err), 0);
    CU_ASSERT(sc->ctx.has_start);
    CU_ASSERT_PTR_NOT_NULL(sc->constraints);
    siteconf_free(sc);
    snprintf(text, sizeof text,
             "%s, \"constraints\": [{\"strategy\": \"backup_power\", "
             "\"param\": {}}]}",
             head);
    CU_ASSERT_EQUAL(siteconf_parse(text, "x.json", &sc, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "x.json: constraints[0].param: unknown key \"param\"");
    snprintf(text, sizeof text, "%s, \"tariff\": {\"import\": {\"type\": \"flat\"}}}", head);
    CU_ASSERT_EQUAL(siteconf_parse(text, "x.json", &sc, err, sizeof err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "x.json: tariff.import.type: must be \"tou\" or \"series\", got "
                                "\"flat\"");
}

void test_register_strat_stack(void)
{
    CU_pSuite s = CU_add_suite("strat_stack", NULL, NULL);
    CU_add_test(s, "site inputs", test_sitectx);
    CU_add_test(s, "site input errors", test_sitectx_errors);
    CU_add_test(s, "constraint precedence", test_precedence);
    CU_add_test(s, "controller terms kept", test_terms_kept);
    CU_add_test(s, "site configuration sections", test_siteconf_sections);
}
