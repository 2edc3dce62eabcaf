/* Unit tests for sim/physics/profile.c (and the profile parts of the scenario loader):
 * interpolation, repeat and clamping, CSV time formats, tariffs, the clear-sky sun, seeded clouds,
 * EV counts. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "common/caltime.h"
#include "sim/physics/profile.h"
#include "sim/physics/pv.h"
#include "sim/scenario/scenario.h"

#include <stdlib.h>
#include <unistd.h>

#define DIR  "tests/data/scenarios/"
#define H_MS 3600000LL

static char err[1024];

/* A series profile over caller-owned arrays (never passed to profile_free). */
static struct profile series(int64_t *t, double *v, size_t n, enum profile_interp in,
                             int64_t period_ms)
{
    struct profile p = {.kind = PROFILE_SERIES, .interp = in, .period_ms = period_ms};
    p.t_ms = t;
    p.v = v;
    p.n = n;
    return p;
}

static void test_linear_step_clamp(void)
{
    int64_t t[] = {0, 10, 20, 30};
    double v[] = {10, 110, 110, 20};
    struct profile p = series(t, v, 4, INTERP_LINEAR, 0);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 5), 60, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 10), 110, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 15), 110, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 25), 65, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, -100), 10, 1e-12); /* clamped to the first */
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 1000), 20, 1e-12); /* and to the last */
    p.interp = INTERP_STEP;
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 9), 10, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 10), 110, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 29), 110, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 31), 20, 1e-12);
    /* a single point is a constant */
    struct profile one = series(t, v, 1, INTERP_LINEAR, 0);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&one, 12345), 10, 1e-12);
    /* pure: the same t gives the same value in any order */
    p.interp = INTERP_LINEAR;
    double a = profile_value(&p, 7);
    profile_value(&p, 27);
    CU_ASSERT_EQUAL(profile_value(&p, 7), a);
}

static void test_repeat(void)
{
    int64_t t[] = {0, 10, 30};
    double v[] = {0, 100, 100};
    struct profile p = series(t, v, 3, INTERP_LINEAR, 40);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 45), 50, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 35), 50, 1e-12); /* wraps to the next 0 */
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, -5), 50, 1e-12); /* negative t wraps too */
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 400), 0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 4005), 50, 1e-12);
    p.interp = INTERP_STEP;
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 39), 100, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 40), 0, 1e-12);
    /* the first point after 0: the value before it comes from the last point */
    int64_t t2[] = {10, 20};
    double v2[] = {100, 200};
    struct profile q = series(t2, v2, 2, INTERP_LINEAR, 40);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&q, 0), 200 - 100.0 * 20 / 30, 1e-9);
    q.interp = INTERP_STEP;
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&q, 5), 200, 1e-12);
}

static void test_csv_formats(void)
{
    struct profile p = {.interp = INTERP_LINEAR};
    caltime_parse("2026-06-21T00:00:00Z", &p.start_unix_ms);
    CU_ASSERT_EQUAL_FATAL(profile_read_csv(&p, DIR "profiles/load-duration.csv",
                                           &(struct profile_csv_opts){0}, err, sizeof err),
                          0);
    CU_ASSERT_EQUAL(p.kind, PROFILE_SERIES);
    CU_ASSERT_EQUAL_FATAL(p.n, 3);
    CU_ASSERT_EQUAL(p.t_ms[2], 9000000);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, H_MS / 2), 150, 1e-9);
    profile_free(&p);

    CU_ASSERT_EQUAL_FATAL(profile_read_csv(&p, DIR "profiles/load-seconds.csv",
                                           &(struct profile_csv_opts){.time_column = "t_s",
                                                                      .value_column = "power_w"},
                                           err, sizeof err),
                          0);
    CU_ASSERT_EQUAL_FATAL(p.n, 3);
    CU_ASSERT_EQUAL(p.t_ms[1], 900000);
    CU_ASSERT_EQUAL(p.t_ms[2], 1800500);
    CU_ASSERT_DOUBLE_EQUAL(p.v[1], 20, 1e-12);
    profile_free(&p);

    /* ISO instants relative to the start (one before it), CRLF lines, a blank line */
    CU_ASSERT_EQUAL_FATAL(profile_read_csv(&p, DIR "profiles/load-iso.csv",
                                           &(struct profile_csv_opts){.time_column = "timestamp",
                                                                      .value_column = "kw"},
                                           err, sizeof err),
                          0);
    CU_ASSERT_EQUAL_FATAL(p.n, 3);
    CU_ASSERT_EQUAL(p.t_ms[0], -H_MS);
    CU_ASSERT_EQUAL(p.t_ms[2], 2 * H_MS + 250);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 0), 2.0, 1e-9);
    profile_free(&p);

    int rc = profile_read_csv(&p, DIR "profiles/load-bad.csv", &(struct profile_csv_opts){0}, err,
                              sizeof err);
    CU_ASSERT_EQUAL(rc, -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "profiles/load-bad.csv:4:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "got \"12O\""));
    CU_ASSERT_EQUAL(p.n, 0);
    rc = profile_read_csv(&p, DIR "profiles/load-seconds.csv",
                          &(struct profile_csv_opts){.time_column = "t_s", .value_column = "watts"},
                          err, sizeof err);
    CU_ASSERT_EQUAL(rc, -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "load-seconds.csv:1: no value column \"watts\""));
    rc = profile_read_csv(&p, DIR "profiles/absent.csv", &(struct profile_csv_opts){0}, err,
                          sizeof err);
    CU_ASSERT_EQUAL(rc, -ENOENT);

    /* Through the loader: files relative to the scenario's directory, options applied. */
    struct scenario *s = NULL;
    rc = scenario_load(DIR "csv-formats.json", NULL, 0, &s, err, sizeof err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    const struct profile *sec = scenario_profile(s, "by_seconds");
    CU_ASSERT_EQUAL(sec->interp, INTERP_STEP);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(sec, 899999), 10, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(scenario_profile(s, "by_iso"), -2 * H_MS), 1.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(scenario_profile(s, "by_duration"), H_MS), 200, 1e-12);
    scenario_free(s);
}

static void test_tou(void)
{
    struct scenario *s = NULL;
    int rc = scenario_load(DIR "tou.json", NULL, 0, &s, err, sizeof err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    const struct profile *p = scenario_profile(s, "tariff"); /* starts Monday 2026-06-22 */
    CU_ASSERT_EQUAL(p->kind, PROFILE_TOU);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(p, 3 * H_MS), 0.18, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(p, 7 * H_MS - 60000), 0.18, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(p, 7 * H_MS), 0.32, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(p, 18 * H_MS), 0.40, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(p, 23 * H_MS + 59 * 60000), 0.32, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(p, 4 * 24 * H_MS + 18 * H_MS), 0.40, 1e-12); /* Fri */
    CU_ASSERT_DOUBLE_EQUAL(profile_value(p, 5 * 24 * H_MS + 18 * H_MS), 0.25, 1e-12); /* Sat */
    CU_ASSERT_DOUBLE_EQUAL(profile_value(p, 6 * 24 * H_MS + 3 * H_MS), 0.25, 1e-12);  /* Sun */
    CU_ASSERT_DOUBLE_EQUAL(profile_value(p, 7 * 24 * H_MS + 3 * H_MS), 0.18, 1e-12);  /* Mon */
    const struct profile *flat = scenario_profile(s, "flat"); /* weekend defaults to weekday */
    CU_ASSERT_EQUAL(flat->n_weekend, 2);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(flat, 5 * 24 * H_MS + 13 * H_MS), 0.2, 1e-12);
    scenario_free(s);

    static const struct {
        const char *ov, *want;
    } bad[] = {
        {"profiles.flat.weekday=[{\"from\":\"00:00\",\"to\":\"12:00\",\"price\":1},"
         "{\"from\":\"13:00\",\"to\":\"24:00\",\"price\":2}]",
         "profiles.flat.weekday[1].from: bands must be sorted and contiguous from 00:00: "
         "expected \"12:00\", got \"13:00\""},
        {"profiles.flat.weekday=[{\"from\":\"00:00\",\"to\":\"23:00\",\"price\":1}]",
         "profiles.flat.weekday[0].to: the last band must end at \"24:00\", got \"23:00\""},
        {"profiles.flat.weekday=[{\"from\":\"01:00\",\"to\":\"24:00\",\"price\":1}]",
         "profiles.flat.weekday[0].from: bands must be sorted and contiguous"},
        {"profiles.flat.weekday=[{\"from\":\"00:00\",\"to\":\"25:00\",\"price\":1}]",
         "profiles.flat.weekday[0].to: must be \"HH:MM\" or \"24:00\", got \"25:00\""},
        {"profiles.flat.weekday=[{\"from\":\"00:00\",\"to\":\"12:00\",\"price\":1},"
         "{\"from\":\"10:00\",\"to\":\"24:00\",\"price\":2}]",
         "profiles.flat.weekday[1].from: bands must be sorted"},
        {"profiles.flat.weekend=[]", "profiles.flat.weekend: must be an array of bands"},
        {"profiles.flat.weekday[0].cost=1", "profiles.flat.weekday[0]: unknown key \"cost\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = NULL;
        rc = scenario_load(DIR "tou.json", &bad[i].ov, 1, &s, err, sizeof err);
        CU_ASSERT_EQUAL(rc, -EINVAL);
        CU_ASSERT_PTR_NULL(s);
        if (!strstr(err, bad[i].want))
            fprintf(stderr, "\n  got:  %s\n  want: %s\n", err, bad[i].want);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].want));
    }
}

static void test_clear_sky(void)
{
    int64_t june, dec;
    caltime_parse("2026-06-21T00:00:00Z", &june);
    caltime_parse("2026-12-21T00:00:00Z", &dec);
    double noon = profile_clear_sky_w_m2(48.0, 0.0, june + 12 * H_MS);
    CU_ASSERT(noon > 800 && noon < 1000);
    CU_ASSERT_EQUAL(profile_clear_sky_w_m2(48.0, 0.0, june), 0.0);
    CU_ASSERT_EQUAL(profile_clear_sky_w_m2(48.0, 0.0, june + 23 * H_MS), 0.0);
    double winter = profile_clear_sky_w_m2(48.0, 0.0, dec + 12 * H_MS);
    CU_ASSERT(winter > 100 && winter < noon / 2);
    /* symmetric around solar noon: at longitude 0 that is 12:00 UTC */
    for (int h = 1; h <= 6; h++)
        CU_ASSERT_DOUBLE_EQUAL(profile_clear_sky_w_m2(48.0, 0.0, june + (12 - h) * H_MS),
                               profile_clear_sky_w_m2(48.0, 0.0, june + (12 + h) * H_MS), 1e-9);
    /* 15 degrees east: solar noon an hour earlier in UTC */
    CU_ASSERT_DOUBLE_EQUAL(profile_clear_sky_w_m2(48.0, 15.0, june + 11 * H_MS), noon, 1e-9);
    CU_ASSERT(profile_clear_sky_w_m2(48.0, 0.0, june + 9 * H_MS) < noon);
    /* the profile adds its start instant */
    struct profile p = {.kind = PROFILE_CLEAR_SKY, .latitude_deg = 48.0, .start_unix_ms = june};
    CU_ASSERT_DOUBLE_EQUAL(profile_value(&p, 12 * H_MS), noon, 1e-12);
}

static int same_clouds(const struct profile *a, const struct profile *b)
{
    if (a->n_clouds != b->n_clouds)
        return 0;
    for (size_t i = 0; i < a->n_clouds; i++)
        if (a->clouds[i].from_ms != b->clouds[i].from_ms ||
            a->clouds[i].to_ms != b->clouds[i].to_ms || a->clouds[i].cover != b->clouds[i].cover)
            return 0;
    return 1;
}

static void check_sorted_disjoint(const struct profile *p, int64_t duration_ms)
{
    for (size_t i = 0; i < p->n_clouds; i++) {
        CU_ASSERT(p->clouds[i].from_ms < p->clouds[i].to_ms);
        CU_ASSERT(p->clouds[i].from_ms >= 0 && p->clouds[i].to_ms <= duration_ms);
        CU_ASSERT(p->clouds[i].cover >= 0 && p->clouds[i].cover <= 1);
        if (i > 0)
            CU_ASSERT(p->clouds[i].from_ms >= p->clouds[i - 1].to_ms);
    }
}

static void test_clouds(void)
{
    struct cloud_params g = {2 * H_MS, H_MS / 2, 0.3, 0.9};
    struct profile a = {.name = "sun"}, b = {.name = "sun"}, c = {.name = "sun"};
    int64_t day = 24 * H_MS;
    CU_ASSERT_EQUAL(profile_set_clouds(&a, 42, day, &g, NULL, 0), 0);
    CU_ASSERT_EQUAL(profile_set_clouds(&b, 42, day, &g, NULL, 0), 0);
    CU_ASSERT_EQUAL(profile_set_clouds(&c, 43, day, &g, NULL, 0), 0);
    CU_ASSERT(a.n_clouds > 0);
    CU_ASSERT(same_clouds(&a, &b));
    CU_ASSERT(!same_clouds(&a, &c));
    check_sorted_disjoint(&a, day);
    for (size_t i = 0; i < a.n_clouds; i++)
        CU_ASSERT(a.clouds[i].cover >= 0.3 && a.clouds[i].cover <= 0.9);
    /* Explicit events win: drawn spells are cut around them. */
    struct cloud_event ex[] = {{2 * H_MS, 14 * H_MS, 0.55}};
    CU_ASSERT_EQUAL(profile_set_clouds(&b, 42, day, &g, ex, 1), 0);
    check_sorted_disjoint(&b, day);
    int found = 0;
    for (size_t i = 0; i < b.n_clouds; i++) {
        if (b.clouds[i].from_ms == ex[0].from_ms && b.clouds[i].to_ms == ex[0].to_ms)
            found = 1;
        else
            CU_ASSERT(b.clouds[i].to_ms <= ex[0].from_ms || b.clouds[i].from_ms >= ex[0].to_ms);
    }
    CU_ASSERT(found);
    profile_free(&a);
    profile_free(&b);
    profile_free(&c);

    /* Through the loader: the scenario seed drives the draw; explicit events dim the sun. */
    struct scenario *s1 = NULL, *s2 = NULL, *s3 = NULL;
    const char *ov = "seed=43";
    CU_ASSERT_EQUAL_FATAL(scenario_load(DIR "clouds.json", NULL, 0, &s1, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(scenario_load(DIR "clouds.json", NULL, 0, &s2, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(scenario_load(DIR "clouds.json", &ov, 1, &s3, err, sizeof err), 0);
    const struct profile *p1 = scenario_profile(s1, "sun"), *p3 = scenario_profile(s3, "sun");
    CU_ASSERT(same_clouds(p1, scenario_profile(s2, "sun")));
    CU_ASSERT(!same_clouds(p1, p3));
    check_sorted_disjoint(p1, s1->duration_ms);
    int64_t t = 13 * H_MS + 10 * 60000;
    double clear = profile_clear_sky_w_m2(48.1, 11.6, s1->start_unix_ms + t);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(p1, t), clear * (1 - 0.75 * pow(0.8, 3.4)), 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(profile_value(p3, t), clear * (1 - 0.75 * pow(0.8, 3.4)), 1e-9);
    t = 9 * H_MS + 30 * 60000; /* cover 1: a quarter of the clear sky */
    CU_ASSERT_DOUBLE_EQUAL(profile_value(p1, t),
                           0.25 * profile_clear_sky_w_m2(48.1, 11.6, s1->start_unix_ms + t), 1e-9);
    CU_ASSERT_EQUAL(profile_value(p1, 0), 0.0); /* night stays dark */
    scenario_free(s1);
    scenario_free(s2);
    scenario_free(s3);

    const char *bad = "profiles.sun.cloud_events[1].at=13h10m";
    CU_ASSERT_EQUAL(scenario_load(DIR "clouds.json", &bad, 1, &s1, err, sizeof err), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "profiles.sun.cloud_events: events overlap at 13h10m"));
    bad = "profiles.sun.clouds.cover_max=0.1";
    CU_ASSERT_EQUAL(scenario_load(DIR "clouds.json", &bad, 1, &s1, err, sizeof err), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err, "profiles.sun.clouds.cover_max: must be >= cover_min, got 0.1"));
}

static void test_ev_sessions(void)
{
    struct scenario *s = NULL;
    CU_ASSERT_EQUAL_FATAL(scenario_load(DIR "good-defaults.json", NULL, 0, &s, err, sizeof err), 0);
    const struct profile *p = scenario_profile(s, "cars"); /* 10m-1h30m and 1h-2h */
    CU_ASSERT_EQUAL(p->kind, PROFILE_EV_SESSIONS);
    CU_ASSERT_EQUAL(profile_value(p, 5 * 60000), 0);
    CU_ASSERT_EQUAL(profile_value(p, 10 * 60000), 1);
    CU_ASSERT_EQUAL(profile_value(p, 30 * 60000), 1);
    CU_ASSERT_EQUAL(profile_value(p, 75 * 60000), 2);
    CU_ASSERT_EQUAL(profile_value(p, 90 * 60000), 1); /* departed at 1h30m exactly */
    CU_ASSERT_EQUAL(profile_value(p, 2 * H_MS), 0);
    scenario_free(s);
}

/* ---- record time formats, zones, coverage, the PV power profile ---------------------------- */

static void test_stamps(void)
{
    int64_t t, u;
    caltime_parse("2026-05-12T09:00:00Z", &u);
    CU_ASSERT_EQUAL(
        caltime_parse_stamp("2026-05-12T11:00:00+02:00", CALTIME_ISO, NULL, INT64_MIN, &t), 0);
    CU_ASSERT_EQUAL(t, u);
    CU_ASSERT_EQUAL(caltime_parse_stamp("2026-05-12 09:00:00Z", CALTIME_ISO, NULL, INT64_MIN, &t),
                    0);
    CU_ASSERT_EQUAL(t, u);
    CU_ASSERT_EQUAL(caltime_parse_stamp("2026-05-12 11:00:00", CALTIME_ISO, NULL, INT64_MIN, &t),
                    -EDOM);
    CU_ASSERT_EQUAL(caltime_parse_stamp("1778576400", CALTIME_UNIX_S, NULL, INT64_MIN, &t), 0);
    CU_ASSERT_EQUAL(t, 1778576400000LL);
    CU_ASSERT_EQUAL(caltime_parse_stamp("1778576400.5", CALTIME_UNIX_S, NULL, INT64_MIN, &t), 0);
    CU_ASSERT_EQUAL(t, 1778576400500LL);
    CU_ASSERT_EQUAL(caltime_parse_stamp("1778576400123", CALTIME_UNIX_MS, NULL, INT64_MIN, &t), 0);
    CU_ASSERT_EQUAL(t, 1778576400123LL);
    CU_ASSERT_EQUAL(caltime_parse_stamp("1e9", CALTIME_UNIX_S, NULL, INT64_MIN, &t), -EINVAL);
    CU_ASSERT_EQUAL(caltime_parse_stamp("", CALTIME_UNIX_MS, NULL, INT64_MIN, &t), -EINVAL);

    struct caltime_zone z;
    CU_ASSERT_EQUAL(caltime_zone_open(&z, "Europe/Nowhere"), -ENOENT);
    CU_ASSERT_EQUAL(caltime_zone_open(&z, "../etc/passwd"), -EINVAL);
    const char *before = getenv("TZ");
    char saved[128] = "";
    if (before)
        snprintf(saved, sizeof saved, "%s", before);
    CU_ASSERT_EQUAL_FATAL(caltime_zone_open(&z, "Europe/Berlin"), 0);
    /* summer: UTC+2; winter: UTC+1 */
    CU_ASSERT_EQUAL(caltime_parse_stamp("2026-05-12 11:00:00", CALTIME_ISO, &z, INT64_MIN, &t), 0);
    CU_ASSERT_EQUAL(t, u);
    CU_ASSERT_EQUAL(caltime_parse_stamp("2026-01-12T10:00:00", CALTIME_ISO, &z, INT64_MIN, &t), 0);
    caltime_parse("2026-01-12T09:00:00Z", &u);
    CU_ASSERT_EQUAL(t, u);
    /* an offset in the stamp wins over the zone */
    CU_ASSERT_EQUAL(caltime_parse_stamp("2026-01-12T10:00:00Z", CALTIME_ISO, &z, INT64_MIN, &t), 0);
    CU_ASSERT_EQUAL(t, u + H_MS);
    /* 2026-03-29 02:30 does not exist in Berlin (clocks go 02:00 -> 03:00) */
    CU_ASSERT_EQUAL(caltime_parse_stamp("2026-03-29 02:30:00", CALTIME_ISO, &z, INT64_MIN, &t),
                    -ERANGE);
    /* 2026-10-25 02:30 happens twice: first 00:30Z, then 01:30Z after it */
    CU_ASSERT_EQUAL(caltime_parse_stamp("2026-10-25 02:30:00", CALTIME_ISO, &z, INT64_MIN, &t), 0);
    caltime_parse("2026-10-25T00:30:00Z", &u);
    CU_ASSERT_EQUAL(t, u);
    CU_ASSERT_EQUAL(caltime_parse_stamp("2026-10-25 02:30:00", CALTIME_ISO, &z, u, &t), 0);
    CU_ASSERT_EQUAL(t, u + H_MS);
    caltime_zone_close(&z);
    const char *after = getenv("TZ");
    CU_ASSERT_EQUAL(before == NULL, after == NULL);
    if (before && after)
        CU_ASSERT_STRING_EQUAL(saved, after);
}

static char tdir[64];

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tdir, name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

/* Loads tdir/x.json made of a 1 h run from 2026-05-12T09:00Z and `profiles` + `assets`. */
static int load_x(const char *profiles, const char *assets, struct scenario **s)
{
    char doc[2048], path[256];
    snprintf(doc, sizeof doc,
             "{\"name\": \"x\", \"seed\": 1, \"start\": \"2026-05-12T09:00:00Z\", "
             "\"duration\": \"1h\", \"step\": \"10s\", \"profiles\": {%s}, "
             "\"sites\": [{\"id\": \"s\", \"assets\": [%s]}]}",
             profiles, assets);
    put("x.json", doc);
    snprintf(path, sizeof path, "%s/x.json", tdir);
    *s = NULL;
    return scenario_load(path, NULL, 0, s, err, sizeof err);
}

#define LOAD_ASSET "{\"id\": \"l\", \"type\": \"load\", \"profile\": \"p\"}"

static void test_coverage(void)
{
    struct scenario *s;
    snprintf(tdir, sizeof tdir, "/tmp/derloop-profile-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tdir));
    /* local wall-clock stamps with a zone: 11:00 in Berlin is the run's start */
    put("local.csv", "time,w\n2026-05-12 11:00:00,100\n2026-05-12 11:30:00,200\n"
                     "2026-05-12 12:00:00,300\n");
    CU_ASSERT_EQUAL(load_x("\"p\": {\"type\": \"csv\", \"file\": \"local.csv\", \"tz\": "
                           "\"Europe/Berlin\"}",
                           LOAD_ASSET, &s),
                    0);
    if (s) {
        CU_ASSERT_DOUBLE_EQUAL(profile_value(scenario_profile(s, "p"), H_MS / 2), 200, 1e-9);
        scenario_free(s);
    }
    /* the same stamps without the zone: an error that says what to add */
    CU_ASSERT_EQUAL(load_x("\"p\": {\"type\": \"csv\", \"file\": \"local.csv\"}", LOAD_ASSET, &s),
                    -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err, "local.csv:2: time \"2026-05-12 11:00:00\" has no UTC offset"));
    /* offsets that put every sample before the start: no silent clamp, the spans named */
    put("early.csv", "time,w\n2026-05-12T09:00:00+02:00,100\n2026-05-12T10:00:00+02:00,300\n");
    CU_ASSERT_EQUAL(load_x("\"p\": {\"type\": \"csv\", \"file\": \"early.csv\"}", LOAD_ASSET, &s),
                    -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "profiles.p.file: early.csv covers "
                                       "2026-05-12T07:00:00.000Z to 2026-05-12T08:00:00.000Z "
                                       "(-2h to -1h from start), the run reads it from "
                                       "2026-05-12T09:00:00.000Z to 2026-05-12T09:59:50.000Z"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "\"extend\""));
    /* a short series: hold or repeat, on request only */
    put("short.csv", "unix_ms,w\n1778576400000,100\n1778576410000,200\n1778576420000,300\n");
    CU_ASSERT_EQUAL(load_x("\"p\": {\"type\": \"csv\", \"file\": \"short.csv\"}", LOAD_ASSET, &s),
                    -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "(0s to 20s from start)"));
    CU_ASSERT_EQUAL(load_x("\"p\": {\"type\": \"csv\", \"file\": \"short.csv\", \"extend\": "
                           "\"hold\"}",
                           LOAD_ASSET, &s),
                    0);
    if (s) {
        CU_ASSERT_DOUBLE_EQUAL(profile_value(scenario_profile(s, "p"), H_MS), 300, 1e-9);
        scenario_free(s);
    }
    CU_ASSERT_EQUAL(load_x("\"p\": {\"type\": \"csv\", \"file\": \"short.csv\", \"extend\": "
                           "\"repeat\", \"interpolation\": \"step\"}",
                           LOAD_ASSET, &s),
                    0);
    if (s) { /* period 30 s from the first point: 0 -> 100, 10 -> 200, 20 -> 300, 30 -> 100 */
        const struct profile *p = scenario_profile(s, "p");
        CU_ASSERT_DOUBLE_EQUAL(profile_value(p, 30000), 100, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(profile_value(p, 55000), 300, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(profile_value(p, 70000), 200, 1e-9);
        scenario_free(s);
    }
    CU_ASSERT_EQUAL(load_x("\"p\": {\"type\": \"csv\", \"file\": \"short.csv\", \"extend\": "
                           "\"loop\"}",
                           LOAD_ASSET, &s),
                    -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "profiles.p.extend: must be \"hold\" or \"repeat\""));
    /* unix seconds by key; a bad cell names the format */
    put("unix.csv", "t,w\n1778576400,1\n1778580000,2\nnoon,3\n");
    CU_ASSERT_EQUAL(load_x("\"p\": {\"type\": \"csv\", \"file\": \"unix.csv\", \"time_format\": "
                           "\"unix_s\"}",
                           LOAD_ASSET, &s),
                    -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unix.csv:4: time must be Unix seconds, got \"noon\""));
}

#define PV_PROFILE "\"p\": {\"type\": \"series\", \"points\": [[\"0s\", 0], [\"1h\", 4000]]}"

static void test_pv_power(void)
{
    struct scenario *s;
    CU_ASSERT_EQUAL(load_x(PV_PROFILE,
                           "{\"id\": \"pv\", \"type\": \"pv\", \"peak_kw\": 5, "
                           "\"power_profile\": \"p\"}",
                           &s),
                    0);
    if (s) {
        struct pv v;
        pv_init(&v, &s->sites[0].assets[0].u.pv);
        pv_step(&v, H_MS / 2, 1000);
        CU_ASSERT_DOUBLE_EQUAL(v.power_w, 2000, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(v.available_w, 2000, 1e-9);
        pv_command_limit(&v, H_MS / 2, 20); /* curtailment still applies: 20 % of 5 kW */
        pv_step(&v, H_MS / 2 + 1000, 1000);
        CU_ASSERT_DOUBLE_EQUAL(v.power_w, 1000, 1e-9);
        scenario_free(s);
    }
    /* a power profile the inverter would clip is an error, not a silent cap */
    CU_ASSERT_EQUAL(load_x(PV_PROFILE,
                           "{\"id\": \"pv\", \"type\": \"pv\", \"peak_kw\": 1, "
                           "\"power_profile\": \"p\"}",
                           &s),
                    -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "sites[0].assets[0].power_profile: profile \"p\" reaches "
                                       "4000 W, above the AC rating 1000 W"));
    CU_ASSERT_EQUAL(load_x(PV_PROFILE,
                           "{\"id\": \"pv\", \"type\": \"pv\", \"peak_kw\": 5, "
                           "\"power_profile\": \"p\", \"irradiance\": \"p\"}",
                           &s),
                    -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "give irradiance or power_profile, not both"));
    CU_ASSERT_EQUAL(load_x(PV_PROFILE, "{\"id\": \"pv\", \"type\": \"pv\", \"peak_kw\": 5}", &s),
                    -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "sites[0].assets[0].irradiance: required key missing"));
    static const char *const files[] = {"x.json", "local.csv", "early.csv", "short.csv",
                                        "unix.csv"};
    char path[256];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tdir, files[i]);
        unlink(path);
    }
    rmdir(tdir);
}

void test_register_profile(void)
{
    CU_pSuite su = CU_add_suite("profile (scenario inputs)", NULL, NULL);
    CU_add_test(su, "linear, step, clamping", test_linear_step_clamp);
    CU_add_test(su, "repeat period", test_repeat);
    CU_add_test(su, "CSV time formats and errors", test_csv_formats);
    CU_add_test(su, "time-of-use weekday and weekend", test_tou);
    CU_add_test(su, "clear-sky irradiance", test_clear_sky);
    CU_add_test(su, "clouds: seeded, merged", test_clouds);
    CU_add_test(su, "EV session count", test_ev_sessions);
    CU_add_test(su, "record stamps: ISO offsets, zones, Unix s/ms", test_stamps);
    CU_add_test(su, "CSV coverage, extend, tz and time_format", test_coverage);
    CU_add_test(su, "PV power profile and its rating", test_pv_power);
}
