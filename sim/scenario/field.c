/* field: see field.h. The readers are strict on purpose: a wrong type, an out-of-range value or
 * a key the table does not know is an error naming the path and the value, never a silent
 * default. */
#include "sim/scenario/field.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/duration.h"

int scn_fail(struct scn_ld *L, const char *path, const cJSON *got, const char *fmt, ...)
{
    char msg[512], val[96] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (got) {
        char *j = cJSON_PrintUnformatted(got);
        if (j) {
            size_t n = strlen(j);
            if (n > 80)
                snprintf(val, sizeof val, ", got %.77s...", j);
            else
                snprintf(val, sizeof val, ", got %s", j);
            cJSON_free(j);
        }
    }
    if (L->err && L->errlen)
        snprintf(L->err, L->errlen, "%s: %s%s%s%s", L->file, path, *path ? ": " : "", msg, val);
    return -EINVAL;
}

/* Appends parts to a SCN_PATH_MAX buffer; a path that long is cut in the message, never
 * overflowed (written by hand: snprintf of a buffer into its own size trips -Wformat-truncation).
 */
static const char *path_join(char *buf, const char *a, const char *sep, const char *b)
{
    size_t n = 0;
    const char *parts[3] = {a, sep, b};
    for (int i = 0; i < 3; i++)
        for (const char *c = parts[i]; *c && n < SCN_PATH_MAX - 1; c++)
            buf[n++] = *c;
    buf[n] = '\0';
    return buf;
}

const char *scn_pkey(char *buf, const char *path, const char *key)
{
    return path_join(buf, path, *path ? "." : "", key);
}

const char *scn_pidx(char *buf, const char *path, int i)
{
    char ix[16];
    snprintf(ix, sizeof ix, "[%d]", i);
    return path_join(buf, path, ix, "");
}

const cJSON *scn_item(const cJSON *obj, const char *key)
{
    return obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

/* Duplicates are refused because cJSON keeps both and would silently read the first. */
int scn_check_keys(struct scn_ld *L, const cJSON *obj, const char *path, const char *const *keys,
                   const char *const *extra)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        int ok = 0;
        for (size_t i = 0; keys && keys[i] && !ok; i++)
            ok = strcmp(keys[i], c->string) == 0;
        for (size_t i = 0; extra && extra[i] && !ok; i++)
            ok = strcmp(extra[i], c->string) == 0;
        if (!ok)
            return scn_fail(L, path, NULL, "unknown key \"%s\"", c->string);
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (strcmp(d->string, c->string) == 0)
                return scn_fail(L, path, NULL, "duplicate key \"%s\"", c->string);
    }
    return 0;
}

int scn_need_object(struct scn_ld *L, const cJSON *j, const char *path)
{
    return cJSON_IsObject(j) ? 0 : scn_fail(L, path, j, "must be an object");
}

int scn_valid_id(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n >= max)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

int scn_get_id(struct scn_ld *L, const cJSON *obj, const char *path, const char *key, char *out,
               size_t max)
{
    char p[SCN_PATH_MAX];
    const cJSON *j = scn_item(obj, key);
    scn_pkey(p, path, key);
    if (!j)
        return scn_fail(L, p, NULL, "required key missing");
    if (!cJSON_IsString(j))
        return scn_fail(L, p, j, "must be a string");
    if (!scn_valid_id(j->valuestring, max))
        return scn_fail(L, p, j, "must match [A-Za-z0-9._-]+ and be shorter than %zu characters",
                        max);
    snprintf(out, max, "%s", j->valuestring);
    return 0;
}

int scn_get_str(struct scn_ld *L, const cJSON *obj, const char *path, const char *key, int required,
                const char **out)
{
    char p[SCN_PATH_MAX];
    const cJSON *j = scn_item(obj, key);
    *out = NULL;
    if (!j)
        return required ? scn_fail(L, scn_pkey(p, path, key), NULL, "required key missing") : 0;
    if (!cJSON_IsString(j))
        return scn_fail(L, scn_pkey(p, path, key), j, "must be a string");
    *out = j->valuestring;
    return 0;
}

/* 1 when the key is there (j); 0 when it is absent and optional (the caller takes its default);
 * -EINVAL when it is absent and B_REQ. */
static int given(struct scn_ld *L, const cJSON *j, const char *p, unsigned fl)
{
    if (j)
        return 1;
    return (fl & B_REQ) ? scn_fail(L, p, NULL, "required key missing") : 0;
}

static int check_num(struct scn_ld *L, const char *path, const cJSON *j, double v, double lo,
                     double hi, unsigned fl)
{
    if (!isfinite(v))
        return scn_fail(L, path, j, "must be a finite number");
    if ((fl & (B_INT | B_1_3)) && v != floor(v))
        return scn_fail(L, path, j, "must be an integer");
    if ((fl & B_1_3) && v != 1 && v != 3)
        return scn_fail(L, path, j, "must be 1 or 3");
    if ((fl & B_HZ) && v != 50 && v != 60)
        return scn_fail(L, path, j, "must be 50 or 60");
    int bad_lo = (fl & B_MIN) && ((fl & B_MINX) ? !(v > lo) : !(v >= lo));
    int bad_hi = (fl & B_MAX) && ((fl & B_MAXX) ? !(v < hi) : !(v <= hi));
    if (!bad_lo && !bad_hi)
        return 0;
    if ((fl & B_MIN) && (fl & B_MAX))
        return scn_fail(L, path, j, "must be in %s%g, %g%s", (fl & B_MINX) ? "(" : "[", lo, hi,
                        (fl & B_MAXX) ? ")" : "]");
    if (fl & B_MIN)
        return scn_fail(L, path, j, "must be %s %g", (fl & B_MINX) ? ">" : ">=", lo);
    return scn_fail(L, path, j, "must be %s %g", (fl & B_MAXX) ? "<" : "<=", hi);
}

int scn_get_num(struct scn_ld *L, const cJSON *obj, const char *path, const char *key, double dflt,
                double lo, double hi, unsigned fl, double *out)
{
    char p[SCN_PATH_MAX];
    const cJSON *j = scn_item(obj, key);
    int rc = given(L, j, scn_pkey(p, path, key), fl);
    if (rc <= 0) {
        *out = dflt;
        return rc;
    }
    if (!cJSON_IsNumber(j))
        return scn_fail(L, p, j, "must be a number");
    *out = j->valuedouble;
    return check_num(L, p, j, *out, lo, hi, fl);
}

int scn_get_dur(struct scn_ld *L, const cJSON *obj, const char *path, const char *key,
                int64_t dflt_ms, int64_t lo_ms, unsigned fl, int64_t *out)
{
    char p[SCN_PATH_MAX];
    const cJSON *j = scn_item(obj, key);
    int rc = given(L, j, scn_pkey(p, path, key), fl);
    if (rc <= 0) {
        *out = dflt_ms;
        return rc;
    }
    if (!cJSON_IsString(j) || duration_parse(j->valuestring, out) != 0)
        return scn_fail(L, p, j, "must be a duration such as \"15m\", \"1h30m\" or \"250ms\"");
    if ((fl & B_MIN) && ((fl & B_MINX) ? !(*out > lo_ms) : !(*out >= lo_ms))) {
        char b[32];
        return scn_fail(L, p, j, "must be %s %s",
                        (fl & B_MINX) ? ">" : ">=", duration_format(lo_ms, b, sizeof b));
    }
    return 0;
}
