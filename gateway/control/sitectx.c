/* sitectx: see sitectx.h.
 *
 * The formats follow the scenario files' profiles (docs/scenario-format.md) so that the
 * simulator can hand its `tou` and `series` price profiles to the gateway unchanged:
 * time-of-use bands "HH:MM" to "HH:MM" covering the UTC day, weekday and weekend, or points
 * [time, price] where time is a duration since the start or an ISO instant. Tariffs step by
 * default (a price holds until the next point), as spot and tariff prices do. */
#include "gateway/control/sitectx.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/caltime.h"
#include "common/duration.h"

#define DAY_MS 86400000LL

static int fail(char *err, size_t errlen, const char *path, const cJSON *got, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(char *err, size_t errlen, const char *path, const cJSON *got, const char *fmt, ...)
{
    char msg[200], val[96] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (got) {
        char *s = cJSON_PrintUnformatted(got);
        if (s) {
            snprintf(val, sizeof val, ", got %.80s", s);
            cJSON_free(s);
        }
    }
    snprintf(err, errlen, "%s: %s%s", path, msg, val);
    return -EINVAL;
}

static int only_keys(const cJSON *obj, const char *path, const char *const *keys, char *err,
                     size_t errlen)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        int known = 0;
        for (size_t i = 0; keys[i]; i++)
            known |= !strcmp(it->string, keys[i]);
        for (const cJSON *u = obj->child; u != it; u = u->next)
            if (!strcmp(u->string, it->string))
                return fail(err, errlen, path, NULL, "key \"%s\" given twice", it->string);
        if (!known)
            return fail(err, errlen, path, NULL, "unknown key \"%s\"", it->string);
    }
    return 0;
}

/* "HH:MM" to minutes of the day, strictly as caltime_parse_hhmm reads it (the scenario files'
 * tariffs use the same parser, so a band the simulator accepts the gateway accepts too); -1
 * when malformed or absent. */
static int hhmm(const cJSON *v, int end_of_day)
{
    int m;
    if (!cJSON_IsString(v) || caltime_parse_hhmm(v->valuestring, end_of_day, &m))
        return -1;
    return m;
}

static int parse_bands(const cJSON *arr, const char *path, struct tariff_band *out, size_t *n,
                       char *err, size_t errlen)
{
    static const char *const keys[] = {"from", "to", "price", NULL};
    char p[160];
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1 ||
        cJSON_GetArraySize(arr) > SITECTX_MAX_BANDS)
        return fail(err, errlen, path, arr, "must be an array of 1 to %d bands", SITECTX_MAX_BANDS);
    size_t i = 0;
    int expect = 0;
    for (const cJSON *b = arr->child; b; b = b->next, i++) {
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        if (!cJSON_IsObject(b))
            return fail(err, errlen, p, b, "must be an object {from, to, price}");
        int rc = only_keys(b, p, keys, err, errlen);
        if (rc)
            return rc;
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(b, "from");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "to");
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(b, "price");
        int from = hhmm(f, 0), to = hhmm(t, 1);
        if (from < 0) {
            snprintf(p, sizeof p, "%s[%zu].from", path, i);
            return fail(err, errlen, p, f, "must be \"HH:MM\"");
        }
        if (to < 0) {
            snprintf(p, sizeof p, "%s[%zu].to", path, i);
            return fail(err, errlen, p, t, "must be \"HH:MM\" or \"24:00\"");
        }
        if (from != expect) {
            snprintf(p, sizeof p, "%s[%zu].from", path, i);
            return fail(err, errlen, p, f,
                        "must be \"HH:MM\" where the previous band ended "
                        "(%02d:%02d)",
                        expect / 60, expect % 60);
        }
        if (to <= from) {
            snprintf(p, sizeof p, "%s[%zu].to", path, i);
            return fail(err, errlen, p, t, "must be \"HH:MM\" after from (up to \"24:00\")");
        }
        if (!cJSON_IsNumber(pr) || !isfinite(pr->valuedouble)) {
            snprintf(p, sizeof p, "%s[%zu].price", path, i);
            return fail(err, errlen, p, pr, "must be a number (currency/kWh)");
        }
        out[i] = (struct tariff_band){from, to, pr->valuedouble};
        expect = to;
    }
    if (expect != 1440)
        return fail(err, errlen, path, NULL, "the bands must end at \"24:00\"");
    *n = i;
    return 0;
}

static int parse_series(struct tariff *t, const cJSON *obj, const char *path, char *err,
                        size_t errlen)
{
    char p[160];
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(obj, "points");
    snprintf(p, sizeof p, "%s.points", path);
    if (!cJSON_IsArray(pts) || cJSON_GetArraySize(pts) < 1)
        return fail(err, errlen, p, pts, "must be a non-empty array of [time, price]");
    size_t n = (size_t)cJSON_GetArraySize(pts);
    t->t_ms = calloc(n, sizeof *t->t_ms);
    t->price = calloc(n, sizeof *t->price);
    if (!t->t_ms || !t->price)
        return -ENOMEM;
    size_t i = 0;
    for (const cJSON *e = pts->child; e; e = e->next, i++) {
        snprintf(p, sizeof p, "%s.points[%zu]", path, i);
        const cJSON *tm = cJSON_GetArrayItem(e, 0), *pr = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(tm) ||
            !cJSON_IsNumber(pr) || !isfinite(pr->valuedouble))
            return fail(err, errlen, p, e,
                        "must be [time, price], time a duration since the "
                        "start or an ISO instant");
        int64_t ms;
        int abs = 0;
        if (duration_parse(tm->valuestring, &ms) != 0) {
            if (caltime_parse(tm->valuestring, &ms) != 0)
                return fail(err, errlen, p, tm,
                            "time must be a duration (\"15m\") or an ISO "
                            "instant");
            abs = 1;
        }
        if (i == 0)
            t->absolute = abs;
        else if (abs != t->absolute)
            return fail(err, errlen, p, tm, "all times must be durations or all ISO instants");
        if (i > 0 && ms <= t->t_ms[i - 1])
            return fail(err, errlen, p, tm, "times must strictly increase");
        t->t_ms[i] = ms;
        t->price[i] = pr->valuedouble;
    }
    t->n = n;
    t->step = 1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "interpolation");
    if (v) {
        snprintf(p, sizeof p, "%s.interpolation", path);
        if (cJSON_IsString(v) && !strcmp(v->valuestring, "linear"))
            t->step = 0;
        else if (!cJSON_IsString(v) || strcmp(v->valuestring, "step"))
            return fail(err, errlen, p, v, "must be \"step\" or \"linear\"");
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(obj, "repeat"))) {
        snprintf(p, sizeof p, "%s.repeat", path);
        if (!cJSON_IsString(v) || duration_parse(v->valuestring, &t->period_ms) != 0 ||
            t->period_ms <= 0 || t->absolute)
            return fail(err, errlen, p, v, "must be a positive duration (points as durations)");
        if (t->t_ms[n - 1] >= t->period_ms || t->t_ms[0] < 0)
            return fail(err, errlen, p, v, "every point must lie in [0, repeat)");
    }
    return 0;
}

static int parse_tariff(struct tariff *t, const cJSON *obj, const char *path, char *err,
                        size_t errlen)
{
    static const char *const tou_keys[] = {"type", "weekday", "weekend", NULL};
    static const char *const ser_keys[] = {"type", "points", "interpolation", "repeat", NULL};
    char p[160];
    if (!cJSON_IsObject(obj))
        return fail(err, errlen, path, obj, "must be an object with a \"type\"");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (cJSON_IsString(type) && !strcmp(type->valuestring, "tou")) {
        int rc = only_keys(obj, path, tou_keys, err, errlen);
        if (rc)
            return rc;
        snprintf(p, sizeof p, "%s.weekday", path);
        rc = parse_bands(cJSON_GetObjectItemCaseSensitive(obj, "weekday"), p, t->weekday,
                         &t->n_weekday, err, errlen);
        if (rc)
            return rc;
        const cJSON *we = cJSON_GetObjectItemCaseSensitive(obj, "weekend");
        if (we) {
            snprintf(p, sizeof p, "%s.weekend", path);
            if ((rc = parse_bands(we, p, t->weekend, &t->n_weekend, err, errlen)))
                return rc;
        } else {
            memcpy(t->weekend, t->weekday, sizeof t->weekend);
            t->n_weekend = t->n_weekday;
        }
        t->kind = TARIFF_TOU;
        return 0;
    }
    if (cJSON_IsString(type) && !strcmp(type->valuestring, "series")) {
        int rc = only_keys(obj, path, ser_keys, err, errlen);
        if (rc)
            return rc;
        t->kind = TARIFF_SERIES;
        return parse_series(t, obj, path, err, errlen);
    }
    snprintf(p, sizeof p, "%s.type", path);
    return fail(err, errlen, p, type, "must be \"tou\" or \"series\"");
}

static int parse_departures(struct sitectx *c, const cJSON *arr, char *err, size_t errlen)
{
    static const char *const keys[] = {"asset_id", "at", "daily", NULL};
    char p[96];
    if (!cJSON_IsArray(arr))
        return fail(err, errlen, "ev_departures", arr, "must be an array");
    size_t n = (size_t)cJSON_GetArraySize(arr);
    c->departures = calloc(n ? n : 1, sizeof *c->departures);
    if (!c->departures)
        return -ENOMEM;
    size_t i = 0;
    for (const cJSON *d = arr->child; d; d = d->next, i++) {
        snprintf(p, sizeof p, "ev_departures[%zu]", i);
        if (!cJSON_IsObject(d))
            return fail(err, errlen, p, d, "must be an object {asset_id, at | daily}");
        int rc = only_keys(d, p, keys, err, errlen);
        if (rc)
            return rc;
        struct ev_departure *e = &c->departures[i];
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "asset_id");
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(d, "at");
        const cJSON *daily = cJSON_GetObjectItemCaseSensitive(d, "daily");
        snprintf(p, sizeof p, "ev_departures[%zu].asset_id", i);
        if (!cJSON_IsString(id) || !id->valuestring[0] ||
            strlen(id->valuestring) >= sizeof e->asset_id)
            return fail(err, errlen, p, id, "must be an EVSE's asset id");
        strcpy(e->asset_id, id->valuestring);
        if (!at == !daily) {
            snprintf(p, sizeof p, "ev_departures[%zu]", i);
            return fail(err, errlen, p, NULL,
                        "needs exactly one of \"at\" (ISO instant) or "
                        "\"daily\" (\"HH:MM\" UTC)");
        }
        if (at) {
            snprintf(p, sizeof p, "ev_departures[%zu].at", i);
            if (!cJSON_IsString(at) || caltime_parse(at->valuestring, &e->at_unix_ms) != 0)
                return fail(err, errlen, p, at, "must be an ISO instant");
        } else {
            snprintf(p, sizeof p, "ev_departures[%zu].daily", i);
            e->minute_of_day = hhmm(daily, 0);
            if (e->minute_of_day < 0)
                return fail(err, errlen, p, daily, "must be \"HH:MM\" (UTC)");
            e->daily = 1;
        }
    }
    c->n_departures = i;
    return 0;
}

int sitectx_parse(struct sitectx *c, const cJSON *root, char *err, size_t errlen)
{
    static const char *const tkeys[] = {"import", "export", NULL};
    memset(c, 0, sizeof *c);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "start");
    int rc = 0;
    if (v) {
        if (!cJSON_IsString(v) || caltime_parse(v->valuestring, &c->start_unix_ms) != 0)
            return fail(err, errlen, "start", v,
                        "must be an ISO instant such as "
                        "\"2026-06-21T00:00:00Z\"");
        c->has_start = 1;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "tariff"))) {
        if (!cJSON_IsObject(v))
            rc = fail(err, errlen, "tariff", v,
                      "must be an object {import, export, standing_charge_per_day, demand_charge}");
        if (!rc) /* the charges' keys beside import and export, by their own parser */
            rc = tariff_charges_parse(v, "tariff", tkeys, &c->charges, err, errlen);
        const cJSON *t;
        if (!rc && (t = cJSON_GetObjectItemCaseSensitive(v, "import")))
            rc = parse_tariff(&c->import, t, "tariff.import", err, errlen);
        if (!rc && (t = cJSON_GetObjectItemCaseSensitive(v, "export")))
            rc = parse_tariff(&c->export, t, "tariff.export", err, errlen);
    }
    if (!rc && (v = cJSON_GetObjectItemCaseSensitive(root, "ev_departures")))
        rc = parse_departures(c, v, err, errlen);
    if (!rc && (v = cJSON_GetObjectItemCaseSensitive(root, "forecast")))
        rc = forecast_parse(&c->forecast, v, "forecast", c->has_start, c->start_unix_ms, err,
                            errlen);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    if (rc)
        sitectx_free(c);
    return rc;
}

void sitectx_free(struct sitectx *c)
{
    if (!c)
        return;
    free(c->import.t_ms);
    free(c->import.price);
    free(c->export.t_ms);
    free(c->export.price);
    free(c->departures);
    forecast_free(&c->forecast);
    memset(c, 0, sizeof *c);
}

int sitectx_calendar(const struct sitectx *c, int64_t now_ms, int64_t *unix_ms)
{
    if (!c || !c->has_start)
        return -ENOENT;
    *unix_ms = c->start_unix_ms + now_ms;
    return 0;
}

static double tou_price(const struct tariff *t, int64_t unix_ms)
{
    struct caltm tm;
    caltime_split(unix_ms, &tm);
    int weekend = tm.wday == 0 || tm.wday == 6;
    const struct tariff_band *b = weekend ? t->weekend : t->weekday;
    size_t n = weekend ? t->n_weekend : t->n_weekday;
    int minute = tm.hour * 60 + tm.min;
    for (size_t i = 0; i < n; i++)
        if (minute >= b[i].from_min && minute < b[i].to_min)
            return b[i].price;
    return NAN;
}

static double series_price(const struct tariff *t, int64_t x)
{
    if (t->period_ms > 0) {
        x %= t->period_ms;
        if (x < 0)
            x += t->period_ms;
    }
    size_t n = t->n;
    if (x < t->t_ms[0]) {
        /* before the first point: a repeating series wraps from its last point */
        return t->period_ms > 0 ? t->price[n - 1] : t->price[0];
    }
    size_t lo = 0, hi = n; /* the last point with t <= x */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (t->t_ms[mid] <= x)
            lo = mid;
        else
            hi = mid;
    }
    if (t->step || lo + 1 >= n)
        return t->price[lo];
    double f = (double)(x - t->t_ms[lo]) / (double)(t->t_ms[lo + 1] - t->t_ms[lo]);
    return t->price[lo] + f * (t->price[lo + 1] - t->price[lo]);
}

double sitectx_price(const struct sitectx *c, int which, int64_t now_ms)
{
    if (!c)
        return NAN;
    const struct tariff *t = which ? &c->export : &c->import;
    int64_t unix_ms;
    switch (t->kind) {
    case TARIFF_TOU:
        if (sitectx_calendar(c, now_ms, &unix_ms))
            return NAN;
        return tou_price(t, unix_ms);
    case TARIFF_SERIES:
        if (t->absolute) {
            if (sitectx_calendar(c, now_ms, &unix_ms))
                return NAN;
            return series_price(t, unix_ms);
        }
        return series_price(t, now_ms);
    case TARIFF_NONE:
        break;
    }
    return NAN;
}

int sitectx_price_range(const struct sitectx *c, int which, int64_t now_ms, int64_t horizon_ms,
                        int64_t step_ms, double *min, double *max)
{
    double lo = INFINITY, hi = -INFINITY;
    if (step_ms <= 0)
        step_ms = horizon_ms > 0 ? horizon_ms : 1;
    for (int64_t t = now_ms; t == now_ms || t < now_ms + horizon_ms; t += step_ms) {
        double p = sitectx_price(c, which, t);
        if (isnan(p))
            continue;
        lo = p < lo ? p : lo;
        hi = p > hi ? p : hi;
    }
    if (lo > hi)
        return -ENOENT;
    *min = lo;
    *max = hi;
    return 0;
}

int sitectx_next_departure(const struct sitectx *c, const char *asset_id, int64_t now_ms,
                           int64_t *dep_ms)
{
    int64_t now_unix;
    if (sitectx_calendar(c, now_ms, &now_unix))
        return -ENOENT;
    int64_t best = INT64_MAX;
    for (size_t i = 0; i < c->n_departures; i++) {
        const struct ev_departure *d = &c->departures[i];
        if (strcmp(d->asset_id, asset_id))
            continue;
        int64_t at = d->at_unix_ms;
        if (d->daily) {
            int64_t day = now_unix >= 0 ? now_unix / DAY_MS : -((-now_unix + DAY_MS - 1) / DAY_MS);
            at = day * DAY_MS + (int64_t)d->minute_of_day * 60000;
            if (at <= now_unix)
                at += DAY_MS;
        }
        if (at > now_unix && at < best)
            best = at;
    }
    if (best == INT64_MAX)
        return -ENOENT;
    *dep_ms = best - c->start_unix_ms;
    return 0;
}
