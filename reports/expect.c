/* expect: see expect.h.
 *
 * A misspelt KPI name must fail loudly: a bound on a name that does not exist would otherwise
 * be a test that can never fail. The same goes for a misspelt bound ("mx"). */
#include "reports/expect.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gateway/strategies/strategy.h"

static int bound(const cJSON *spec, const char *key, const char *file, const char *name,
                 double *out, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(spec, key);
    if (!it)
        return 0;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
        char *txt = cJSON_PrintUnformatted(it);
        snprintf(err, errlen, "%s: expect.%s.%s: must be a finite number, got %s", file, name, key,
                 txt ? txt : "?");
        cJSON_free(txt);
        return -EINVAL;
    }
    *out = it->valuedouble;
    return 1;
}

static int parse_one(const cJSON *spec, const char *file, struct expectation *e, char *err,
                     size_t errlen)
{
    const char *name = spec->string;
    int id = kpi_find(name);
    if (id < 0) {
        snprintf(err, errlen, "%s: expect.%s: unknown KPI (docs/kpis.md lists them)", file, name);
        return -EINVAL;
    }
    if (!cJSON_IsObject(spec)) {
        snprintf(err, errlen, "%s: expect.%s: must be an object like {\"min\": 1, \"max\": 2}",
                 file, name);
        return -EINVAL;
    }
    for (const cJSON *k = spec->child; k; k = k->next) {
        if (strcmp(k->string, "min") && strcmp(k->string, "max") && strcmp(k->string, "eq") &&
            strcmp(k->string, "tol")) {
            snprintf(err, errlen, "%s: expect.%s: unknown key \"%s\" (min, max, eq, tol)", file,
                     name, k->string);
            return -EINVAL;
        }
    }
    memset(e, 0, sizeof *e);
    e->kpi = id;
    int rc;
    if ((rc = bound(spec, "min", file, name, &e->min, err, errlen)) < 0)
        return rc;
    e->has |= rc ? EXPECT_MIN : 0;
    if ((rc = bound(spec, "max", file, name, &e->max, err, errlen)) < 0)
        return rc;
    e->has |= rc ? EXPECT_MAX_BOUND : 0;
    if ((rc = bound(spec, "eq", file, name, &e->eq, err, errlen)) < 0)
        return rc;
    e->has |= rc ? EXPECT_EQ : 0;
    e->tol = 0.5 * pow(10.0, -kpi_def(id)->precision); /* what kpis.json can show */
    if ((rc = bound(spec, "tol", file, name, &e->tol, err, errlen)) < 0)
        return rc;
    if (rc && (!(e->has & EXPECT_EQ) || e->tol < 0)) {
        snprintf(err, errlen, "%s: expect.%s.tol: needs eq and must be >= 0, got %g", file, name,
                 e->tol);
        return -EINVAL;
    }
    if (!e->has) {
        snprintf(err, errlen, "%s: expect.%s: needs at least one of min, max, eq", file, name);
        return -EINVAL;
    }
    if ((e->has & EXPECT_MIN) && (e->has & EXPECT_MAX_BOUND) && e->min > e->max) {
        snprintf(err, errlen, "%s: expect.%s.min: must be <= max (%g), got %g", file, name, e->max,
                 e->min);
        return -EINVAL;
    }
    return 0;
}

int expect_parse(const cJSON *expect, const char *file, struct expect_list *out, char *err,
                 size_t errlen)
{
    memset(out, 0, sizeof *out);
    snprintf(out->baseline_strategy, sizeof out->baseline_strategy, "null");
    if (!expect)
        return 0;
    if (!cJSON_IsObject(expect)) {
        snprintf(err, errlen, "%s: expect: must be an object", file);
        return -EINVAL;
    }
    for (const cJSON *it = expect->child; it; it = it->next) {
        if (!strcmp(it->string, "baseline_strategy")) {
            if (!cJSON_IsString(it) || !strategy_find(it->valuestring)) {
                char *txt = cJSON_PrintUnformatted(it);
                snprintf(err, errlen, "%s: expect.baseline_strategy: must name a strategy, got %s",
                         file, txt ? txt : "?");
                cJSON_free(txt);
                return -EINVAL;
            }
            snprintf(out->baseline_strategy, sizeof out->baseline_strategy, "%s", it->valuestring);
            continue;
        }
        if (out->n >= EXPECT_MAX) {
            snprintf(err, errlen, "%s: expect: at most %d expectations", file, EXPECT_MAX);
            return -EINVAL;
        }
        int rc = parse_one(it, file, &out->e[out->n], err, errlen);
        if (rc)
            return rc;
        out->n++;
    }
    return 0;
}

int expect_needs_baseline(const struct expect_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (kpi_is_vs_baseline(l->e[i].kpi))
            return 1;
    return 0;
}

void expect_bounds_text(const struct expectation *e, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    if ((e->has & EXPECT_MIN) && o < len)
        o += (size_t)snprintf(buf + o, len - o, "min %g", e->min);
    if ((e->has & EXPECT_MAX_BOUND) && o < len)
        o += (size_t)snprintf(buf + o, len - o, "%smax %g", o ? ", " : "", e->max);
    if ((e->has & EXPECT_EQ) && o < len)
        snprintf(buf + o, len - o, "%seq %g ± %g", o ? ", " : "", e->eq, e->tol);
}

size_t expect_eval(const struct expect_list *l, const struct kpi_set *k, struct expect_result *res)
{
    size_t failed = 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct expectation *e = &l->e[i];
        const struct kpi_def *d = kpi_def(e->kpi);
        struct expect_result *r = &res[i];
        double v = k->v[e->kpi];
        char b[128], val[64];
        expect_bounds_text(e, b, sizeof b);
        r->value = v;
        if (isnan(v)) {
            r->pass = 0;
            snprintf(val, sizeof val, "no value%s",
                     kpi_is_vs_baseline(e->kpi) ? " (the baseline was not run)" : "");
        } else {
            r->pass = (!(e->has & EXPECT_MIN) || v >= e->min) &&
                      (!(e->has & EXPECT_MAX_BOUND) || v <= e->max) &&
                      (!(e->has & EXPECT_EQ) || fabs(v - e->eq) <= e->tol);
            snprintf(val, sizeof val, "%.*f %s", d->precision, v, d->unit);
        }
        snprintf(r->text, sizeof r->text, "%s = %s (%s): %s", d->name, val, b,
                 r->pass ? "PASS" : "FAIL");
        failed += !r->pass;
    }
    return failed;
}
