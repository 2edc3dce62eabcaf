/* tariff: see tariff.h. */
#include "common/tariff.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/caltime.h"

static const char *const period_names[] = {"month", "run"};
static const char *const days_names[] = {"all", "weekdays", "weekend"};

static int fail(char *err, size_t errlen, const char *path, const char *field, const cJSON *got,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int fail(char *err, size_t errlen, const char *path, const char *field, const cJSON *got,
                const char *fmt, ...)
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
    snprintf(err, errlen, "%s%s%s: %s%s", path, *field ? "." : "", field, msg, val);
    return -EINVAL;
}

/* every key of obj is one of keys or of skip (either may be NULL) */
static int known_keys(const cJSON *obj, const char *path, const char *const *keys,
                      const char *const *skip, char *err, size_t errlen)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        int known = 0;
        for (size_t i = 0; keys && keys[i]; i++)
            known |= !strcmp(it->string, keys[i]);
        for (size_t i = 0; skip && skip[i]; i++)
            known |= !strcmp(it->string, skip[i]);
        if (!known)
            return fail(err, errlen, path, "", NULL, "unknown key \"%s\"", it->string);
        for (const cJSON *u = obj->child; u != it; u = u->next)
            if (!strcmp(u->string, it->string))
                return fail(err, errlen, path, "", NULL, "key \"%s\" given twice", it->string);
    }
    return 0;
}

static int nonneg(const cJSON *obj, const char *key, const char *path, double *out, char *err,
                  size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
        return fail(err, errlen, path, key, v, "must be a number >= 0");
    *out = v->valuedouble;
    return 0;
}

static int name_of(const cJSON *obj, const char *key, const char *path, const char *const *names,
                   int n, int *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    for (int i = 0; i < n && cJSON_IsString(v); i++)
        if (!strcmp(v->valuestring, names[i])) {
            *out = i;
            return 0;
        }
    return fail(err, errlen, path, key, v, "must be \"%s\" or \"%s\"%s%s%s", names[0], names[1],
                n > 2 ? " or \"" : "", n > 2 ? names[2] : "", n > 2 ? "\"" : "");
}

static int parse_window(const cJSON *w, const char *path, struct tariff_window *out, char *err,
                        size_t errlen)
{
    static const char *const keys[] = {"from", "to", "days", NULL};
    if (!cJSON_IsObject(w))
        return fail(err, errlen, path, "", w, "must be an object {from, to, days}");
    int rc = known_keys(w, path, keys, NULL, err, errlen);
    if (rc)
        return rc;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(w, "from");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(w, "to");
    if (!cJSON_IsString(f) || caltime_parse_hhmm(f->valuestring, 0, &out->from_min))
        return fail(err, errlen, path, "from", f, "must be \"HH:MM\"");
    if (!cJSON_IsString(t) || caltime_parse_hhmm(t->valuestring, 1, &out->to_min) ||
        out->to_min <= out->from_min)
        return fail(err, errlen, path, "to", t, "must be \"HH:MM\" after from (up to \"24:00\")");
    int days = TARIFF_DAYS_ALL;
    rc = name_of(w, "days", path, days_names, 3, &days, err, errlen);
    out->days = (enum tariff_days)days;
    return rc;
}

static int parse_demand(const cJSON *d, const char *path, struct tariff_charges *out, char *err,
                        size_t errlen)
{
    static const char *const keys[] = {"price_per_kw", "period", "windows", NULL};
    if (!cJSON_IsObject(d))
        return fail(err, errlen, path, "", d, "must be an object {price_per_kw, period, windows}");
    int period = TARIFF_PERIOD_MONTH, rc;
    if ((rc = known_keys(d, path, keys, NULL, err, errlen)) ||
        (rc = nonneg(d, "price_per_kw", path, &out->demand_per_kw, err, errlen)) ||
        (rc = name_of(d, "period", path, period_names, 2, &period, err, errlen)))
        return rc;
    out->period = (enum tariff_period)period;
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(d, "windows");
    if (!ws)
        return 0;
    if (!cJSON_IsArray(ws) || cJSON_GetArraySize(ws) < 1 ||
        cJSON_GetArraySize(ws) > TARIFF_MAX_WINDOWS)
        return fail(err, errlen, path, "windows", ws, "must be an array of 1 to %d windows",
                    TARIFF_MAX_WINDOWS);
    char p[256];
    for (const cJSON *w = ws->child; w; w = w->next) {
        snprintf(p, sizeof p, "%.200s.windows[%zu]", path, out->n_windows);
        if ((rc = parse_window(w, p, &out->windows[out->n_windows], err, errlen)))
            return rc;
        out->n_windows++;
    }
    return 0;
}

int tariff_charges_parse(const cJSON *obj, const char *path, const char *const *skip,
                         struct tariff_charges *out, char *err, size_t errlen)
{
    static const char *const keys[] = {"standing_charge_per_day", "demand_charge", NULL};
    memset(out, 0, sizeof *out);
    if (!obj)
        return 0;
    if (!cJSON_IsObject(obj))
        return fail(err, errlen, path, "", obj, "must be an object");
    int rc;
    if ((rc = known_keys(obj, path, keys, skip, err, errlen)) ||
        (rc = nonneg(obj, "standing_charge_per_day", path, &out->standing_per_day, err, errlen)))
        return rc;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(obj, "demand_charge");
    if (!d)
        return 0;
    char p[256];
    snprintf(p, sizeof p, "%.200s.demand_charge", path);
    return parse_demand(d, p, out, err, errlen);
}

long tariff_demand_period(const struct tariff_charges *c, int64_t unix_ms)
{
    if (!c || !(c->demand_per_kw > 0))
        return -1;
    struct caltm tm;
    caltime_split(unix_ms, &tm);
    int covered = c->n_windows == 0, minute = tm.hour * 60 + tm.min;
    int weekend = tm.wday == 0 || tm.wday == 6;
    for (size_t i = 0; i < c->n_windows && !covered; i++) {
        const struct tariff_window *w = &c->windows[i];
        covered = minute >= w->from_min && minute < w->to_min &&
                  (w->days == TARIFF_DAYS_ALL || (w->days == TARIFF_DAYS_WEEKEND) == weekend);
    }
    if (!covered)
        return -1;
    return c->period == TARIFF_PERIOD_RUN ? 0 : (long)(tm.year - 1970) * 12 + (tm.month - 1);
}

static cJSON *hhmm_json(int m)
{
    char s[8];
    snprintf(s, sizeof s, "%02d:%02d", m / 60 % 100, m % 60);
    return cJSON_CreateString(s);
}

int tariff_charges_json(const struct tariff_charges *c, cJSON *obj)
{
    if (c->standing_per_day > 0 &&
        !cJSON_AddNumberToObject(obj, "standing_charge_per_day", c->standing_per_day))
        return -ENOMEM;
    if (!(c->demand_per_kw > 0))
        return 0;
    cJSON *d = cJSON_AddObjectToObject(obj, "demand_charge");
    if (!d || !cJSON_AddNumberToObject(d, "price_per_kw", c->demand_per_kw) ||
        !cJSON_AddStringToObject(d, "period", period_names[c->period]))
        return -ENOMEM;
    if (!c->n_windows)
        return 0;
    cJSON *ws = cJSON_AddArrayToObject(d, "windows");
    if (!ws)
        return -ENOMEM;
    for (size_t i = 0; i < c->n_windows; i++) {
        cJSON *w = cJSON_CreateObject();
        if (!w)
            return -ENOMEM;
        cJSON_AddItemToArray(ws, w);
        cJSON_AddItemToObject(w, "from", hhmm_json(c->windows[i].from_min));
        cJSON_AddItemToObject(w, "to", hhmm_json(c->windows[i].to_min));
        cJSON_AddStringToObject(w, "days", days_names[c->windows[i].days]);
    }
    return 0;
}
