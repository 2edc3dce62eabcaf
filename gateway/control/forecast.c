/* forecast: see forecast.h. */
#include "gateway/control/forecast.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/caltime.h"
#include "common/duration.h"

#define MAX_SLOTS  (400 * 96) /* a year and a month at 15 min */
#define LINE_BYTES 512

static int fail(char *err, size_t errlen, const char *path, const char *field, const cJSON *got,
                const char *msg)
{
    char val[96] = "";
    if (got) {
        char *s = cJSON_PrintUnformatted(got);
        if (s) {
            snprintf(val, sizeof val, ", got %.80s", s);
            cJSON_free(s);
        }
    }
    snprintf(err, errlen, "%s%s%s: %s%s", path, field ? "." : "", field ? field : "", msg, val);
    return -EINVAL;
}

static int get_duration(const cJSON *v, int64_t *ms)
{
    if (cJSON_IsString(v))
        return duration_parse(v->valuestring, ms);
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble == floor(v->valuedouble)) {
        *ms = (int64_t)v->valuedouble;
        return 0;
    }
    return -EINVAL;
}

/* One CSV time cell: seconds since the start, or an ISO instant (needs the calendar). */
static int csv_time(const char *cell, int has_start, int64_t start_unix_ms, int64_t *t_ms)
{
    char *end;
    double s = strtod(cell, &end);
    if (end != cell && *end == '\0' && isfinite(s)) {
        *t_ms = (int64_t)llround(s * 1000.0);
        return 0;
    }
    int64_t u;
    if (!has_start || caltime_parse(cell, &u) != 0)
        return -EINVAL;
    *t_ms = u - start_unix_ms;
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '"')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n' ||
                 s[n - 1] == '"'))
        s[--n] = '\0';
    return s;
}

static int read_csv(struct forecast *f, const char *file, int has_start, int64_t start_unix_ms,
                    char *err, size_t errlen)
{
    FILE *fp = fopen(file, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
        return -ENOENT;
    }
    char line[LINE_BYTES];
    size_t lineno = 0, cap = 0;
    int rc = 0;
    int64_t prev = 0;
    while (!rc && fgets(line, sizeof line, fp)) {
        lineno++;
        char *comma = strchr(line, ',');
        if (lineno == 1) {
            if (!comma || strcmp(trim(comma + 1), "net_load_w") != 0) {
                snprintf(err, errlen, "%s:1: the header must be \"time,net_load_w\"", file);
                rc = -EINVAL;
            }
            continue;
        }
        if (trim(line)[0] == '\0')
            continue;
        char *end;
        int64_t t;
        if (!comma) {
            snprintf(err, errlen, "%s:%zu: expected two cells \"time,net_load_w\"", file, lineno);
            rc = -EINVAL;
            break;
        }
        *comma = '\0';
        const char *vcell = trim(comma + 1);
        double v = strtod(vcell, &end);
        if (csv_time(trim(line), has_start, start_unix_ms, &t) != 0) {
            snprintf(err, errlen,
                     "%s:%zu: time must be seconds since the start or an ISO instant (with the "
                     "site's start), got \"%.40s\"",
                     file, lineno, trim(line));
            rc = -EINVAL;
        } else if (end == vcell || *end != '\0' || !isfinite(v)) {
            snprintf(err, errlen, "%s:%zu: net_load_w must be a number, got \"%.40s\"", file,
                     lineno, vcell);
            rc = -EINVAL;
        } else if (f->n >= MAX_SLOTS) {
            snprintf(err, errlen, "%s:%zu: more than %d rows", file, lineno, MAX_SLOTS);
            rc = -EINVAL;
        } else if (f->n == 1 && t <= prev) {
            snprintf(err, errlen, "%s:%zu: times must increase", file, lineno);
            rc = -EINVAL;
        } else if (f->n >= 2 && t - prev != f->step_ms) {
            snprintf(err, errlen, "%s:%zu: rows must be evenly spaced (%lld s), got %lld s", file,
                     lineno, (long long)(f->step_ms / 1000), (long long)((t - prev) / 1000));
            rc = -EINVAL;
        }
        if (rc)
            break;
        if (f->n == cap) {
            cap = cap ? 2 * cap : 256;
            double *nv = realloc(f->net_w, cap * sizeof *nv);
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            f->net_w = nv;
        }
        if (f->n == 0)
            f->t0_ms = t;
        else if (f->n == 1)
            f->step_ms = t - prev;
        f->net_w[f->n++] = v;
        prev = t;
    }
    fclose(fp);
    if (!rc && f->n < 2) {
        snprintf(err, errlen, "%s: at least two rows needed", file);
        rc = -EINVAL;
    }
    return rc;
}

int forecast_parse(struct forecast *f, const cJSON *obj, const char *path, int has_start,
                   int64_t start_unix_ms, char *err, size_t errlen)
{
    static const char *const keys[] = {"step", "from", "net_load_w", "file", NULL};
    memset(f, 0, sizeof *f);
    if (!cJSON_IsObject(obj))
        return fail(err, errlen, path, NULL, obj,
                    "must be an object {\"step\", \"net_load_w\"} or {\"file\"}");
    for (const cJSON *it = obj->child; it; it = it->next) {
        int known = 0;
        for (size_t i = 0; keys[i]; i++)
            known |= !strcmp(it->string, keys[i]);
        if (!known)
            return fail(err, errlen, path, it->string, NULL, "unknown key");
    }
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(obj, "file");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, "net_load_w");
    int rc = 0;
    if (file && arr)
        return fail(err, errlen, path, "file", NULL, "give either file or net_load_w");
    if (file) {
        if (!cJSON_IsString(file) || !file->valuestring[0])
            return fail(err, errlen, path, "file", file, "must be a file name");
        rc = read_csv(f, file->valuestring, has_start, start_unix_ms, err, errlen);
    } else {
        const cJSON *step = cJSON_GetObjectItemCaseSensitive(obj, "step");
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(obj, "from");
        if (!step || get_duration(step, &f->step_ms) != 0 || f->step_ms <= 0)
            return fail(err, errlen, path, "step", step, "must be a duration such as \"15m\"");
        if (from && get_duration(from, &f->t0_ms) != 0)
            return fail(err, errlen, path, "from", from, "must be a duration such as \"0s\"");
        int n = cJSON_GetArraySize(arr);
        if (!cJSON_IsArray(arr) || n < 1 || n > MAX_SLOTS)
            return fail(err, errlen, path, "net_load_w", NULL,
                        "must be an array of 1 .. 38400 numbers (W)");
        f->net_w = malloc((size_t)n * sizeof *f->net_w);
        if (!f->net_w)
            return -ENOMEM;
        size_t i = 0;
        for (const cJSON *it = arr->child; it; it = it->next, i++) {
            if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
                char field[48];
                snprintf(field, sizeof field, "net_load_w[%zu]", i);
                rc = fail(err, errlen, path, field, it, "must be a number (W)");
                break;
            }
            f->net_w[i] = it->valuedouble;
        }
        f->n = i;
    }
    if (rc)
        forecast_free(f);
    return rc;
}

void forecast_free(struct forecast *f)
{
    if (!f)
        return;
    free(f->net_w);
    memset(f, 0, sizeof *f);
}

int64_t forecast_end_ms(const struct forecast *f)
{
    return f && f->n ? f->t0_ms + (int64_t)f->n * f->step_ms : INT64_MIN;
}

double forecast_net_w(const struct forecast *f, int64_t from_ms, int64_t to_ms)
{
    if (!f || !f->n || from_ms >= to_ms || from_ms < f->t0_ms || to_ms > forecast_end_ms(f))
        return NAN;
    double sum = 0;
    int64_t t = from_ms;
    while (t < to_ms) {
        size_t k = (size_t)((t - f->t0_ms) / f->step_ms);
        int64_t end = f->t0_ms + (int64_t)(k + 1) * f->step_ms;
        if (end > to_ms)
            end = to_ms;
        sum += f->net_w[k] * (double)(end - t);
        t = end;
    }
    return sum / (double)(to_ms - from_ms);
}
