/* scenario: the loader of scenario files (docs/scenario-format.md). It reads the file, hashes
 * it, applies --set overrides to the parsed document, then validates every level against the
 * tables below, filling the plain structs of scenario.h. Every error names the file, the JSON
 * path and the offending value; unknown keys are errors everywhere, because a misspelt key that
 * silently falls back to its default is the most expensive bug a scenario file can have.
 *
 * Asset parameters are data, not code: one table per asset type (key, kind, offset, default,
 * bounds, kW -> W scale) drives reading, defaults, bounds checks and the unknown-key check. A
 * small per-type function adds what a table cannot say (defaults derived from other keys and
 * relations between keys). */
#include "sim/scenario/scenario.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/caltime.h"
#include "common/duration.h"
#include "common/sha256.h"
#include "sim/physics/rng.h"

/* ---- names --------------------------------------------------------------------------------- */

static const char *const fault_names[] = {"timeout", "exception", "frozen", "offline",
                                          "slow",    "spike",     "device"};
static const char *const profile_kind_names[] = {"series", "clear_sky", "tou", "ev_sessions"};

const char *asset_type_name(enum asset_type t)
{
    if (t == ASSET_LOAD)
        return "load";
    return devtype_json((int)t) ? devtype_json((int)t) : "?";
}

const char *fault_kind_name(enum fault_kind k)
{
    return (unsigned)k < 7 ? fault_names[k] : "?";
}

/* ---- errors and JSON paths ----------------------------------------------------------------- */

/* What one load carries around: where errors go and what the file was. */
struct ld {
    const char *file;
    char *err;
    size_t errlen;
    struct scenario *s;
    char dir[512]; /* the scenario file's directory, for CSV files */
};

#define PATH_MAX_LEN 256

/* "FILE: PATH: message[, got VALUE]" with VALUE printed as JSON (cut to a readable length). */
static int fail(struct ld *L, const char *path, const cJSON *got, const char *fmt, ...)
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

/* Appends parts to a PATH_MAX_LEN buffer; a path that long is cut in the message, never
 * overflowed (written by hand: snprintf of a buffer into its own size trips -Wformat-truncation).
 */
static const char *path_join(char *buf, const char *a, const char *sep, const char *b)
{
    size_t n = 0;
    const char *parts[3] = {a, sep, b};
    for (int i = 0; i < 3; i++)
        for (const char *c = parts[i]; *c && n < PATH_MAX_LEN - 1; c++)
            buf[n++] = *c;
    buf[n] = '\0';
    return buf;
}

static const char *pkey(char *buf, const char *path, const char *key)
{
    return path_join(buf, path, *path ? "." : "", key);
}

static const char *pidx(char *buf, const char *path, int i)
{
    char ix[16];
    snprintf(ix, sizeof ix, "[%d]", i);
    return path_join(buf, path, ix, "");
}

static const cJSON *item(const cJSON *obj, const char *key)
{
    return obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

/* Rejects keys not in `keys` (NULL-terminated) or `extra` (NULL-terminated), and duplicates
 * (cJSON keeps both and would silently read the first). */
static int check_keys(struct ld *L, const cJSON *obj, const char *path, const char *const *keys,
                      const char *const *extra)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        int ok = 0;
        for (size_t i = 0; keys && keys[i] && !ok; i++)
            ok = strcmp(keys[i], c->string) == 0;
        for (size_t i = 0; extra && extra[i] && !ok; i++)
            ok = strcmp(extra[i], c->string) == 0;
        if (!ok)
            return fail(L, path, NULL, "unknown key \"%s\"", c->string);
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (strcmp(d->string, c->string) == 0)
                return fail(L, path, NULL, "duplicate key \"%s\"", c->string);
    }
    return 0;
}

static int need_object(struct ld *L, const cJSON *j, const char *path)
{
    return cJSON_IsObject(j) ? 0 : fail(L, path, j, "must be an object");
}

static int valid_id(const char *s, size_t max)
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

/* An identifier: [A-Za-z0-9._-]+, shorter than max. */
static int get_id(struct ld *L, const cJSON *obj, const char *path, const char *key, char *out,
                  size_t max)
{
    char p[PATH_MAX_LEN];
    const cJSON *j = item(obj, key);
    pkey(p, path, key);
    if (!j)
        return fail(L, p, NULL, "required key missing");
    if (!cJSON_IsString(j))
        return fail(L, p, j, "must be a string");
    if (!valid_id(j->valuestring, max))
        return fail(L, p, j, "must match [A-Za-z0-9._-]+ and be shorter than %zu characters", max);
    snprintf(out, max, "%s", j->valuestring);
    return 0;
}

/* An optional string; *out = NULL when absent. */
static int get_str(struct ld *L, const cJSON *obj, const char *path, const char *key, int required,
                   const char **out)
{
    char p[PATH_MAX_LEN];
    const cJSON *j = item(obj, key);
    *out = NULL;
    if (!j)
        return required ? fail(L, pkey(p, path, key), NULL, "required key missing") : 0;
    if (!cJSON_IsString(j))
        return fail(L, pkey(p, path, key), j, "must be a string");
    *out = j->valuestring;
    return 0;
}

/* Bounds of a number: flags say which ends apply and whether they are open. */
#define B_MIN  0x01u
#define B_MINX 0x02u /* exclusive */
#define B_MAX  0x04u
#define B_MAXX 0x08u
#define B_INT  0x10u
#define B_REQ  0x20u
#define B_1_3  0x40u /* 1 or 3 (phases) */
#define B_HZ   0x80u /* 50 or 60 */

static int check_num(struct ld *L, const char *path, const cJSON *j, double v, double lo, double hi,
                     unsigned fl)
{
    if (!isfinite(v))
        return fail(L, path, j, "must be a finite number");
    if ((fl & (B_INT | B_1_3)) && v != floor(v))
        return fail(L, path, j, "must be an integer");
    if ((fl & B_1_3) && v != 1 && v != 3)
        return fail(L, path, j, "must be 1 or 3");
    if ((fl & B_HZ) && v != 50 && v != 60)
        return fail(L, path, j, "must be 50 or 60");
    int bad_lo = (fl & B_MIN) && ((fl & B_MINX) ? !(v > lo) : !(v >= lo));
    int bad_hi = (fl & B_MAX) && ((fl & B_MAXX) ? !(v < hi) : !(v <= hi));
    if (!bad_lo && !bad_hi)
        return 0;
    if ((fl & B_MIN) && (fl & B_MAX))
        return fail(L, path, j, "must be in %s%g, %g%s", (fl & B_MINX) ? "(" : "[", lo, hi,
                    (fl & B_MAXX) ? ")" : "]");
    if (fl & B_MIN)
        return fail(L, path, j, "must be %s %g", (fl & B_MINX) ? ">" : ">=", lo);
    return fail(L, path, j, "must be %s %g", (fl & B_MAXX) ? "<" : "<=", hi);
}

/* A number with a default (used when absent and not B_REQ). */
static int get_num(struct ld *L, const cJSON *obj, const char *path, const char *key, double dflt,
                   double lo, double hi, unsigned fl, double *out)
{
    char p[PATH_MAX_LEN];
    const cJSON *j = item(obj, key);
    pkey(p, path, key);
    if (!j) {
        if (fl & B_REQ)
            return fail(L, p, NULL, "required key missing");
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(j))
        return fail(L, p, j, "must be a number");
    *out = j->valuedouble;
    return check_num(L, p, j, *out, lo, hi, fl);
}

/* A duration string ("15m") with a default in ms; bounds in ms like get_num. */
static int get_dur(struct ld *L, const cJSON *obj, const char *path, const char *key,
                   int64_t dflt_ms, int64_t lo_ms, unsigned fl, int64_t *out)
{
    char p[PATH_MAX_LEN];
    const cJSON *j = item(obj, key);
    pkey(p, path, key);
    if (!j) {
        if (fl & B_REQ)
            return fail(L, p, NULL, "required key missing");
        *out = dflt_ms;
        return 0;
    }
    if (!cJSON_IsString(j) || duration_parse(j->valuestring, out) != 0)
        return fail(L, p, j, "must be a duration such as \"15m\", \"1h30m\" or \"250ms\"");
    if ((fl & B_MIN) && ((fl & B_MINX) ? !(*out > lo_ms) : !(*out >= lo_ms))) {
        char b[32];
        return fail(L, p, j, "must be %s %s",
                    (fl & B_MINX) ? ">" : ">=", duration_format(lo_ms, b, sizeof b));
    }
    return 0;
}

/* ---- overrides ----------------------------------------------------------------------------- */

/* One step of an override path: a key or an [index]. */
struct step {
    char key[128];
    int index; /* -1 for a key */
};

static int parse_override_path(const char *path, size_t len, struct step *st, size_t max, size_t *n)
{
    size_t i = 0, k = 0;
    while (i < len) {
        if (k == max)
            return -EINVAL;
        if (path[i] == '[') {
            char *end;
            long v = strtol(path + i + 1, &end, 10);
            if (end == path + i + 1 || *end != ']' || v < 0 || v > 1000000 ||
                (size_t)(end - path) >= len)
                return -EINVAL;
            st[k].index = (int)v;
            st[k].key[0] = '\0';
            k++;
            i = (size_t)(end - path) + 1;
            if (i < len && path[i] == '.') {
                i++;
                if (i == len)
                    return -EINVAL;
            }
            continue;
        }
        size_t j = i;
        while (j < len && path[j] != '.' && path[j] != '[')
            j++;
        if (j == i || j - i >= sizeof st[k].key)
            return -EINVAL;
        memcpy(st[k].key, path + i, j - i);
        st[k].key[j - i] = '\0';
        st[k].index = -1;
        k++;
        i = j;
        if (i < len && path[i] == '.') {
            i++;
            if (i == len)
                return -EINVAL;
        }
    }
    *n = k;
    return k ? 0 : -EINVAL;
}

/* Applies "PATH=VALUE" to the document. A missing key on an existing object is created (then
 * validation judges it); a path through a missing object or past an array's end is an error. */
static int apply_override(struct ld *L, cJSON *root, const char *ov)
{
    const char *eq = strchr(ov, '=');
    struct step st[32];
    size_t n;
    if (!eq || parse_override_path(ov, (size_t)(eq - ov), st, 32, &n))
        return fail(L, "", NULL,
                    "override \"%s\": expected PATH=VALUE with PATH like "
                    "sites[0].assets[1].peak_kw",
                    ov);
    cJSON *cur = root;
    for (size_t i = 0; i + 1 < n; i++) {
        cJSON *next;
        if (st[i].index >= 0) {
            if (!cJSON_IsArray(cur) || st[i].index >= cJSON_GetArraySize(cur))
                return fail(L, "", NULL, "override \"%s\": no element [%d]", ov, st[i].index);
            next = cJSON_GetArrayItem(cur, st[i].index);
        } else {
            next = cJSON_IsObject(cur) ? cJSON_GetObjectItemCaseSensitive(cur, st[i].key) : NULL;
            if (!next)
                return fail(L, "", NULL, "override \"%s\": no key \"%s\"", ov, st[i].key);
        }
        cur = next;
    }
    const struct step *last = &st[n - 1];
    if (last->index >= 0 ? (!cJSON_IsArray(cur) || last->index >= cJSON_GetArraySize(cur))
                         : !cJSON_IsObject(cur))
        return fail(L, "", NULL, "override \"%s\": %s", ov,
                    last->index >= 0 ? "index out of range" : "parent is not an object");
    cJSON *v = cJSON_ParseWithOpts(eq + 1, NULL, 1);
    if (!v)
        v = cJSON_CreateString(eq + 1);
    if (!v)
        return -ENOMEM;
    int ok;
    if (last->index >= 0)
        ok = cJSON_ReplaceItemInArray(cur, last->index, v);
    else if (cJSON_GetObjectItemCaseSensitive(cur, last->key))
        ok = cJSON_ReplaceItemInObjectCaseSensitive(cur, last->key, v);
    else
        ok = cJSON_AddItemToObject(cur, last->key, v);
    if (!ok) {
        cJSON_Delete(v);
        return -ENOMEM;
    }
    return 0;
}

/* ---- profiles ------------------------------------------------------------------------------ */

#define PK(k) (1u << (k))

static int get_interp_repeat(struct ld *L, const cJSON *o, const char *path, struct profile *p)
{
    const char *s;
    int rc = get_str(L, o, path, "interpolation", 0, &s);
    char b[PATH_MAX_LEN];
    if (rc)
        return rc;
    if (!s || strcmp(s, "linear") == 0)
        p->interp = INTERP_LINEAR;
    else if (strcmp(s, "step") == 0)
        p->interp = INTERP_STEP;
    else
        return fail(L, pkey(b, path, "interpolation"), item(o, "interpolation"),
                    "must be \"linear\" or \"step\"");
    return get_dur(L, o, path, "repeat", 0, 0, B_MIN | B_MINX, &p->period_ms);
}

/* With a repeat period, the points describe one period: they must lie in [0, period). */
static int check_period(struct ld *L, const char *path, const struct profile *p)
{
    if (p->period_ms > 0 && (p->t_ms[0] < 0 || p->t_ms[p->n - 1] >= p->period_ms)) {
        char b[32];
        return fail(L, path, NULL, "with \"repeat\": \"%s\" every point must lie in [0, %s)",
                    duration_format(p->period_ms, b, sizeof b), b);
    }
    return 0;
}

static int parse_series(struct ld *L, const cJSON *o, const char *path, struct profile *p)
{
    static const char *const keys[] = {"type", "interpolation", "repeat", "points", NULL};
    char pp[PATH_MAX_LEN], ip[PATH_MAX_LEN];
    int rc;
    if ((rc = check_keys(L, o, path, keys, NULL)) || (rc = get_interp_repeat(L, o, path, p)))
        return rc;
    const cJSON *pts = item(o, "points");
    pkey(pp, path, "points");
    if (!pts)
        return fail(L, pp, NULL, "required key missing");
    if (!cJSON_IsArray(pts) || cJSON_GetArraySize(pts) < 1)
        return fail(L, pp, pts, "must be an array of at least one [time, value] point");
    size_t n = (size_t)cJSON_GetArraySize(pts);
    p->t_ms = calloc(n, sizeof *p->t_ms);
    p->v = calloc(n, sizeof *p->v);
    if (!p->t_ms || !p->v)
        return -ENOMEM;
    int i = 0;
    for (const cJSON *pt = pts->child; pt; pt = pt->next, i++) {
        pidx(ip, pp, i);
        const cJSON *t = cJSON_GetArrayItem(pt, 0), *v = cJSON_GetArrayItem(pt, 1);
        if (!cJSON_IsArray(pt) || cJSON_GetArraySize(pt) != 2)
            return fail(L, ip, pt, "must be a [\"time\", value] pair");
        if (!cJSON_IsString(t) || duration_parse(t->valuestring, &p->t_ms[i]))
            return fail(L, pidx(ip, pp, i), t, "time must be a duration from the start (\"6h\")");
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return fail(L, ip, v, "value must be a finite number");
        p->v[i] = v->valuedouble;
        if (i > 0 && p->t_ms[i] <= p->t_ms[i - 1])
            return fail(L, ip, t, "times must be strictly increasing");
    }
    p->n = n;
    p->kind = PROFILE_SERIES;
    return check_period(L, pp, p);
}

static int parse_csv(struct ld *L, const cJSON *o, const char *path, struct profile *p)
{
    static const char *const keys[] = {"type",          "file",   "time_column", "value_column",
                                       "interpolation", "repeat", NULL};
    const char *file, *tcol, *vcol;
    char fp[PATH_MAX_LEN], full[1024], msg[600];
    int rc;
    if ((rc = check_keys(L, o, path, keys, NULL)) || (rc = get_interp_repeat(L, o, path, p)) ||
        (rc = get_str(L, o, path, "file", 1, &file)) ||
        (rc = get_str(L, o, path, "time_column", 0, &tcol)) ||
        (rc = get_str(L, o, path, "value_column", 0, &vcol)))
        return rc;
    pkey(fp, path, "file");
    if (!*file)
        return fail(L, fp, item(o, "file"), "must name a CSV file");
    if (file[0] == '/')
        snprintf(full, sizeof full, "%s", file);
    else
        snprintf(full, sizeof full, "%s/%s", L->dir, file);
    rc = profile_read_csv(p, full, tcol, vcol, msg, sizeof msg);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        fail(L, fp, NULL, "%s", msg);
        return rc;
    }
    return check_period(L, fp, p);
}

/* "HH:MM" (or "24:00") to minutes of the day. */
static int parse_hhmm(const char *s, int *out)
{
    if (strlen(s) != 5 || s[2] != ':')
        return -EINVAL;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -EINVAL;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && m != 0))
        return -EINVAL;
    *out = h * 60 + m;
    return 0;
}

static int parse_bands(struct ld *L, const cJSON *arr, const char *path, struct tou_band **out,
                       size_t *n_out)
{
    static const char *const keys[] = {"from", "to", "price", NULL};
    char bp[PATH_MAX_LEN], kp[PATH_MAX_LEN];
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1)
        return fail(L, path, arr, "must be an array of bands {\"from\", \"to\", \"price\"}");
    size_t n = (size_t)cJSON_GetArraySize(arr);
    struct tou_band *b = calloc(n, sizeof *b);
    if (!b)
        return -ENOMEM;
    *out = b;
    int i = 0, rc;
    for (const cJSON *o = arr->child; o; o = o->next, i++) {
        const char *from, *to;
        pidx(bp, path, i);
        if ((rc = need_object(L, o, bp)) || (rc = check_keys(L, o, bp, keys, NULL)) ||
            (rc = get_str(L, o, bp, "from", 1, &from)) || (rc = get_str(L, o, bp, "to", 1, &to)) ||
            (rc = get_num(L, o, bp, "price", 0, 0, 0, B_REQ, &b[i].price)))
            return rc;
        if (parse_hhmm(from, &b[i].from_min) || b[i].from_min == 1440)
            return fail(L, pkey(kp, bp, "from"), item(o, "from"), "must be \"HH:MM\"");
        if (parse_hhmm(to, &b[i].to_min))
            return fail(L, pkey(kp, bp, "to"), item(o, "to"), "must be \"HH:MM\" or \"24:00\"");
        if (b[i].to_min <= b[i].from_min)
            return fail(L, pkey(kp, bp, "to"), item(o, "to"), "must be after \"from\"");
        int expect = i == 0 ? 0 : b[i - 1].to_min;
        if (b[i].from_min != expect)
            return fail(L, pkey(kp, bp, "from"), item(o, "from"),
                        "bands must be sorted and contiguous from 00:00: expected \"%02d:%02d\"",
                        expect / 60, expect % 60);
    }
    if (b[n - 1].to_min != 1440)
        return fail(L, pkey(kp, pidx(bp, path, (int)n - 1), "to"),
                    item(cJSON_GetArrayItem(arr, (int)n - 1), "to"),
                    "the last band must end at \"24:00\"");
    *n_out = n;
    return 0;
}

static int parse_tou(struct ld *L, const cJSON *o, const char *path, struct profile *p)
{
    static const char *const keys[] = {"type", "weekday", "weekend", NULL};
    char b[PATH_MAX_LEN];
    int rc;
    p->kind = PROFILE_TOU;
    if ((rc = check_keys(L, o, path, keys, NULL)))
        return rc;
    if (!item(o, "weekday"))
        return fail(L, pkey(b, path, "weekday"), NULL, "required key missing");
    if ((rc = parse_bands(L, item(o, "weekday"), pkey(b, path, "weekday"), &p->weekday,
                          &p->n_weekday)))
        return rc;
    if (item(o, "weekend"))
        return parse_bands(L, item(o, "weekend"), pkey(b, path, "weekend"), &p->weekend,
                           &p->n_weekend);
    p->weekend = malloc(p->n_weekday * sizeof *p->weekend);
    if (!p->weekend)
        return -ENOMEM;
    memcpy(p->weekend, p->weekday, p->n_weekday * sizeof *p->weekend);
    p->n_weekend = p->n_weekday;
    return 0;
}

static int cloud_cmp_from(const void *a, const void *b)
{
    const struct cloud_event *x = a, *y = b;
    return (x->from_ms > y->from_ms) - (x->from_ms < y->from_ms);
}

static int parse_clear_sky(struct ld *L, const cJSON *o, const char *path, struct profile *p)
{
    static const char *const keys[] = {"type",   "latitude",     "longitude",
                                       "clouds", "cloud_events", NULL};
    static const char *const ckeys[] = {"mean_clear", "mean_cloudy", "cover_min", "cover_max",
                                        NULL};
    static const char *const ekeys[] = {"at", "duration", "cover", NULL};
    char b[PATH_MAX_LEN], ep[PATH_MAX_LEN];
    struct cloud_params gen;
    struct cloud_event *ev = NULL;
    size_t n_ev = 0;
    int rc;
    p->kind = PROFILE_CLEAR_SKY;
    if ((rc = check_keys(L, o, path, keys, NULL)) ||
        (rc = get_num(L, o, path, "latitude", 0, -90, 90, B_REQ | B_MIN | B_MAX,
                      &p->latitude_deg)) ||
        (rc = get_num(L, o, path, "longitude", 0, -180, 180, B_REQ | B_MIN | B_MAX,
                      &p->longitude_deg)))
        return rc;
    const cJSON *c = item(o, "clouds");
    if (c) {
        pkey(b, path, "clouds");
        /* Spells shorter than a minute are beyond this model and would only cost memory. */
        if ((rc = need_object(L, c, b)) || (rc = check_keys(L, c, b, ckeys, NULL)) ||
            (rc = get_dur(L, c, b, "mean_clear", 0, 60000, B_REQ | B_MIN, &gen.mean_clear_ms)) ||
            (rc = get_dur(L, c, b, "mean_cloudy", 0, 60000, B_REQ | B_MIN, &gen.mean_cloudy_ms)) ||
            (rc = get_num(L, c, b, "cover_min", 0.3, 0, 1, B_MIN | B_MAX, &gen.cover_min)) ||
            (rc = get_num(L, c, b, "cover_max", 0.9, 0, 1, B_MIN | B_MAX, &gen.cover_max)))
            return rc;
        if (gen.cover_max < gen.cover_min)
            return fail(L, pkey(ep, b, "cover_max"), item(c, "cover_max"), "must be >= cover_min");
    }
    const cJSON *ce = item(o, "cloud_events");
    if (ce) {
        pkey(b, path, "cloud_events");
        if (!cJSON_IsArray(ce))
            return fail(L, b, ce, "must be an array");
        n_ev = (size_t)cJSON_GetArraySize(ce);
        ev = calloc(n_ev ? n_ev : 1, sizeof *ev);
        if (!ev)
            return -ENOMEM;
        int i = 0;
        for (const cJSON *e = ce->child; e; e = e->next, i++) {
            int64_t len;
            pidx(ep, b, i);
            if ((rc = need_object(L, e, ep)) || (rc = check_keys(L, e, ep, ekeys, NULL)) ||
                (rc = get_dur(L, e, ep, "at", 0, 0, B_REQ, &ev[i].from_ms)) ||
                (rc = get_dur(L, e, ep, "duration", 0, 0, B_REQ | B_MIN | B_MINX, &len)) ||
                (rc = get_num(L, e, ep, "cover", 0, 0, 1, B_REQ | B_MIN | B_MAX, &ev[i].cover)))
                goto out;
            ev[i].to_ms = ev[i].from_ms + len;
        }
        /* Explicit events are the author's own: overlapping ones are a mistake, not a merge. */
        qsort(ev, n_ev, sizeof *ev, cloud_cmp_from);
        for (size_t k = 1; k < n_ev; k++)
            if (ev[k].from_ms < ev[k - 1].to_ms) {
                char t1[32];
                rc = fail(L, b, NULL, "events overlap at %s",
                          duration_format(ev[k].from_ms, t1, sizeof t1));
                goto out;
            }
    }
    rc = profile_set_clouds(p, L->s->seed, L->s->duration_ms, c ? &gen : NULL, ev, n_ev);
out:
    free(ev);
    return rc;
}

static int session_cmp(const void *a, const void *b)
{
    const struct ev_session *x = a, *y = b;
    return (x->arrive_ms > y->arrive_ms) - (x->arrive_ms < y->arrive_ms);
}

static int parse_ev_sessions(struct ld *L, const cJSON *o, const char *path, struct profile *p)
{
    static const char *const keys[] = {"type", "sessions", NULL};
    static const char *const skeys[] = {"id",           "arrive", "depart", "energy_kwh",
                                        "max_power_kw", "phases", NULL};
    char b[PATH_MAX_LEN], sp[PATH_MAX_LEN], kp[PATH_MAX_LEN];
    int rc;
    p->kind = PROFILE_EV_SESSIONS;
    if ((rc = check_keys(L, o, path, keys, NULL)))
        return rc;
    const cJSON *a = item(o, "sessions");
    pkey(b, path, "sessions");
    if (!a)
        return fail(L, b, NULL, "required key missing");
    if (!cJSON_IsArray(a))
        return fail(L, b, a, "must be an array");
    size_t n = (size_t)cJSON_GetArraySize(a);
    p->sessions = calloc(n ? n : 1, sizeof *p->sessions);
    if (!p->sessions)
        return -ENOMEM;
    int i = 0;
    for (const cJSON *s = a->child; s; s = s->next, i++) {
        struct ev_session *e = &p->sessions[i];
        double phases;
        pidx(sp, b, i);
        if ((rc = need_object(L, s, sp)) || (rc = check_keys(L, s, sp, skeys, NULL)) ||
            (rc = get_id(L, s, sp, "id", e->id, sizeof e->id)) ||
            (rc = get_dur(L, s, sp, "arrive", 0, 0, B_REQ, &e->arrive_ms)) ||
            (rc = get_dur(L, s, sp, "depart", 0, 0, B_REQ, &e->depart_ms)) ||
            (rc =
                 get_num(L, s, sp, "energy_kwh", 0, 0, 0, B_REQ | B_MIN | B_MINX, &e->energy_wh)) ||
            (rc = get_num(L, s, sp, "max_power_kw", 0, 0, 0, B_REQ | B_MIN | B_MINX,
                          &e->max_power_w)) ||
            (rc = get_num(L, s, sp, "phases", 3, 0, 0, B_1_3, &phases)))
            return rc;
        if (e->depart_ms <= e->arrive_ms)
            return fail(L, pkey(kp, sp, "depart"), item(s, "depart"), "must be after arrive");
        for (int k = 0; k < i; k++)
            if (strcmp(p->sessions[k].id, e->id) == 0)
                return fail(L, pkey(kp, sp, "id"), item(s, "id"), "duplicate session id");
        e->energy_wh *= 1000.0;
        e->max_power_w *= 1000.0;
        e->phases = (int)phases;
    }
    p->n_sessions = n;
    /* Stable by arrival: insertion sort keeps file order among equal arrivals. */
    for (size_t k = 1; k < n; k++) {
        struct ev_session x = p->sessions[k];
        size_t j = k;
        for (; j > 0 && session_cmp(&p->sessions[j - 1], &x) > 0; j--)
            p->sessions[j] = p->sessions[j - 1];
        p->sessions[j] = x;
    }
    return 0;
}

static int parse_profiles(struct ld *L, const cJSON *obj)
{
    struct scenario *s = L->s;
    char path[PATH_MAX_LEN], tp[PATH_MAX_LEN];
    int rc;
    if (!obj)
        return 0;
    if ((rc = need_object(L, obj, "profiles")))
        return rc;
    size_t n = (size_t)cJSON_GetArraySize(obj);
    if (n == 0)
        return 0;
    s->profiles = calloc(n, sizeof *s->profiles);
    if (!s->profiles)
        return -ENOMEM;
    s->n_profiles = n;
    size_t i = 0;
    for (const cJSON *o = obj->child; o; o = o->next, i++) {
        struct profile *p = &s->profiles[i];
        pkey(path, "profiles", o->string);
        if (!valid_id(o->string, sizeof p->name))
            return fail(L, path, NULL,
                        "profile names must match [A-Za-z0-9._-]+ and be shorter "
                        "than 64 characters");
        for (size_t k = 0; k < i; k++)
            if (strcmp(s->profiles[k].name, o->string) == 0)
                return fail(L, "profiles", NULL, "duplicate key \"%s\"", o->string);
        snprintf(p->name, sizeof p->name, "%s", o->string);
        p->start_unix_ms = s->start_unix_ms;
        const char *type;
        if ((rc = need_object(L, o, path)) || (rc = get_str(L, o, path, "type", 1, &type)))
            return rc;
        if (strcmp(type, "series") == 0)
            rc = parse_series(L, o, path, p);
        else if (strcmp(type, "csv") == 0)
            rc = parse_csv(L, o, path, p);
        else if (strcmp(type, "clear_sky") == 0)
            rc = parse_clear_sky(L, o, path, p);
        else if (strcmp(type, "tou") == 0)
            rc = parse_tou(L, o, path, p);
        else if (strcmp(type, "ev_sessions") == 0)
            rc = parse_ev_sessions(L, o, path, p);
        else
            rc = fail(L, pkey(tp, path, "type"), item(o, "type"),
                      "must be one of series, csv, clear_sky, tou, ev_sessions");
        if (rc)
            return rc;
    }
    return 0;
}

const struct profile *scenario_profile(const struct scenario *s, const char *name)
{
    for (size_t i = 0; s && name && i < s->n_profiles; i++)
        if (strcmp(s->profiles[i].name, name) == 0)
            return &s->profiles[i];
    return NULL;
}

/* A reference to a profile by name, of one of the kinds in `mask`. */
static int get_profile_ref(struct ld *L, const cJSON *obj, const char *path, const char *key,
                           unsigned mask, int required, const struct profile **out)
{
    char p[PATH_MAX_LEN], want[64] = "";
    const char *name;
    int rc = get_str(L, obj, path, key, required, &name);
    *out = NULL;
    if (rc || !name)
        return rc;
    pkey(p, path, key);
    const struct profile *pr = scenario_profile(L->s, name);
    if (!pr)
        return fail(L, p, item(obj, key), "no profile \"%s\" in \"profiles\"", name);
    if (!(mask & PK(pr->kind))) {
        for (unsigned k = 0; k < 4; k++)
            if (mask & PK(k))
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s",
                         *want ? " or " : "", profile_kind_names[k]);
        return fail(L, p, item(obj, key), "profile \"%s\" is %s, expected %s", name,
                    profile_kind_names[pr->kind], want);
    }
    *out = pr;
    return 0;
}

/* ---- asset parameter tables ---------------------------------------------------------------- */

enum fkind {
    F_NUM,     /* double, times scale */
    F_INT,     /* int */
    F_DUR_MS,  /* duration string -> int64_t ms */
    F_DUR_S,   /* duration string -> double s */
    F_PROFILE, /* profile name -> const struct profile * of a kind in `mask` */
    F_ROLE,    /* meter role "grid" | "load" */
    F_OBJ,     /* nested object described by `sub`, stored at base + off */
};

struct field {
    const char *key;
    enum fkind kind;
    size_t off;
    double dflt; /* NAN: derived by the type's check function */
    double lo, hi;
    unsigned fl;
    double scale; /* 0 = 1; kW and kWh in the file -> W and Wh in the structs */
    unsigned mask;
    const struct field *sub;
};

#define KW 1000.0
#define ENDF                                                                                       \
    {                                                                                              \
        NULL, 0, 0, 0, 0, 0, 0, 0, 0, NULL                                                         \
    }

static const struct field response_fields[] = {
    {"latency", F_DUR_MS, offsetof(struct response_params, latency_ms), 0, 0, 0, 0, 0, 0, NULL},
    {"ramp_kw_per_s", F_NUM, offsetof(struct response_params, ramp_w_per_s), 0, 0, 0, B_MIN, KW, 0,
     NULL},
    {"quantum_w", F_NUM, offsetof(struct response_params, quantum_w), 0, 0, 0, B_MIN, 0, 0, NULL},
    ENDF,
};

#define BAT(m) offsetof(struct battery_params, m)
static const struct field battery_fields[] = {
    {"capacity_kwh", F_NUM, BAT(capacity_wh), 0, 0, 0, B_REQ | B_MIN | B_MINX, KW, 0, NULL},
    {"soc_init", F_NUM, BAT(soc_init), 0.5, 0, 1, B_MIN | B_MAX, 0, 0, NULL},
    {"max_charge_kw", F_NUM, BAT(max_charge_w), 0, 0, 0, B_REQ | B_MIN | B_MINX, KW, 0, NULL},
    {"max_discharge_kw", F_NUM, BAT(max_discharge_w), 0, 0, 0, B_REQ | B_MIN | B_MINX, KW, 0, NULL},
    {"eta_charge", F_NUM, BAT(eta_charge), 0.95, 0, 1, B_MIN | B_MINX | B_MAX, 0, 0, NULL},
    {"eta_discharge", F_NUM, BAT(eta_discharge), 0.95, 0, 1, B_MIN | B_MINX | B_MAX, 0, 0, NULL},
    {"soc_low_band", F_NUM, BAT(soc_low_band), 0.05, 0, 0.5, B_MIN | B_MAX | B_MAXX, 0, 0, NULL},
    {"soc_high_band", F_NUM, BAT(soc_high_band), 0.9, 0.5, 1, B_MIN | B_MINX | B_MAX, 0, 0, NULL},
    {"temp_init_c", F_NUM, BAT(temp_init_c), 25, -50, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"temp_ambient_c", F_NUM, BAT(temp_ambient_c), 25, -50, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"temp_tau", F_DUR_S, BAT(temp_tau_s), 1800000, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"temp_rise_c", F_NUM, BAT(temp_rise_c), 15, 0, 0, B_MIN, 0, 0, NULL},
    {"temp_derate_c", F_NUM, BAT(temp_derate_c), 45, 0, 0, 0, 0, 0, NULL},
    {"temp_stop_c", F_NUM, BAT(temp_stop_c), 55, 0, 0, 0, 0, 0, NULL},
    {"voltage_v", F_NUM, BAT(voltage_v), 400, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"response", F_OBJ, BAT(response), 0, 0, 0, 0, 0, 0, response_fields},
    ENDF,
};

#define PV(m) offsetof(struct pv_params, m)
static const struct field pv_fields[] = {
    {"peak_kw", F_NUM, PV(peak_w), 0, 0, 0, B_REQ | B_MIN | B_MINX, KW, 0, NULL},
    {"ac_max_kw", F_NUM, PV(ac_max_w), NAN, 0, 0, B_MIN | B_MINX, KW, 0, NULL},
    {"gamma_per_k", F_NUM, PV(gamma_per_k), -0.004, -0.1, 0.1, B_MIN | B_MAX, 0, 0, NULL},
    {"noct_c", F_NUM, PV(noct_c), 45, 20, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"temp_ambient_c", F_NUM, PV(temp_ambient_c), 20, -50, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"system_derate", F_NUM, PV(system_derate), 0.9, 0, 1, B_MIN | B_MINX | B_MAX, 0, 0, NULL},
    {"irradiance", F_PROFILE, PV(irradiance), 0, 0, 0, B_REQ, 0,
     PK(PROFILE_CLEAR_SKY) | PK(PROFILE_SERIES), NULL},
    {"response", F_OBJ, PV(response), 0, 0, 0, 0, 0, 0, response_fields},
    ENDF,
};

#define MET(m) offsetof(struct meter_params, m)
static const struct field meter_fields[] = {
    {"role", F_ROLE, MET(role), 0, 0, 0, B_REQ, 0, 0, NULL},
    {"refresh", F_DUR_MS, MET(refresh_ms), 0, 0, 0, 0, 0, 0, NULL},
    {"voltage_v", F_NUM, MET(voltage_v), 230, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"nominal_hz", F_NUM, MET(nominal_hz), 50, 0, 0, B_HZ, 0, 0, NULL},
    {"frequency", F_PROFILE, MET(frequency), 0, 0, 0, 0, 0, PK(PROFILE_SERIES), NULL},
    {"phases", F_INT, MET(phases), 3, 0, 0, B_1_3, 0, 0, NULL},
    ENDF,
};

#define LOAD(m) offsetof(struct load_params, m)
static const struct field noise_fields[] = {
    {"phi", F_NUM, LOAD(noise_phi), 0.9, 0, 1, B_MIN | B_MAX | B_MAXX, 0, 0, NULL},
    {"sigma_w", F_NUM, LOAD(noise_sigma_w), 0, 0, 0, B_MIN, 0, 0, NULL},
    ENDF,
};
static const struct field load_fields[] = {
    {"profile", F_PROFILE, LOAD(profile), 0, 0, 0, 0, 0, PK(PROFILE_SERIES), NULL},
    {"scale", F_NUM, LOAD(scale), 1, 0, 0, B_MIN, 0, 0, NULL},
    {"base_w", F_NUM, LOAD(base_w), 0, 0, 0, 0, 0, 0, NULL},
    {"noise", F_OBJ, 0, 0, 0, 0, 0, 0, 0, noise_fields}, /* flat members of load_params */
    ENDF,
};

#define EVSE(m) offsetof(struct evse_params, m)
static const struct field evse_fields[] = {
    {"phases", F_INT, EVSE(phases), 3, 0, 0, B_1_3, 0, 0, NULL},
    {"min_current_a", F_NUM, EVSE(min_current_a), 6, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"max_current_a", F_NUM, EVSE(max_current_a), 16, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"voltage_v", F_NUM, EVSE(voltage_v), 230, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"default_current_a", F_NUM, EVSE(default_current_a), NAN, 0, 0, B_MIN, 0, 0, NULL},
    {"failsafe", F_DUR_MS, EVSE(failsafe_ms), 0, 0, 0, 0, 0, 0, NULL},
    {"failsafe_current_a", F_NUM, EVSE(failsafe_current_a), NAN, 0, 0, B_MIN, 0, 0, NULL},
    {"sessions", F_PROFILE, EVSE(sessions), 0, 0, 0, 0, 0, PK(PROFILE_EV_SESSIONS), NULL},
    {"response", F_OBJ, EVSE(response), 0, 0, 0, 0, 0, 0, response_fields},
    ENDF,
};

#define BOI(m) offsetof(struct boiler_params, m)
static const struct field boiler_fields[] = {
    {"rated_kw", F_NUM, BOI(rated_w), 0, 0, 0, B_REQ | B_MIN | B_MINX, KW, 0, NULL},
    {"volume_l", F_NUM, BOI(volume_l), 200, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"ua_w_per_k", F_NUM, BOI(ua_w_per_k), 2.0, 0, 0, B_MIN, 0, 0, NULL},
    {"eta", F_NUM, BOI(eta), 0.98, 0, 1, B_MIN | B_MINX | B_MAX, 0, 0, NULL},
    {"temp_init_c", F_NUM, BOI(temp_init_c), 50, 0, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"temp_ambient_c", F_NUM, BOI(temp_ambient_c), 20, -50, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"temp_cold_c", F_NUM, BOI(temp_cold_c), 10, 0, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"setpoint_c", F_NUM, BOI(setpoint_c), 60, 0, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"hysteresis_k", F_NUM, BOI(hysteresis_k), 5, 0, 0, B_MIN, 0, 0, NULL},
    {"temp_max_c", F_NUM, BOI(temp_max_c), 85, 0, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"temp_min_c", F_NUM, BOI(temp_min_c), 40, 0, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"start_delay", F_DUR_MS, BOI(start_delay_ms), 10000, 0, 0, 0, 0, 0, NULL},
    {"stop_delay", F_DUR_MS, BOI(stop_delay_ms), 5000, 0, 0, 0, 0, 0, NULL},
    {"draw", F_PROFILE, BOI(draw), 0, 0, 0, 0, 0, PK(PROFILE_SERIES), NULL},
    ENDF,
};

static int check_keys_fields(struct ld *L, const cJSON *obj, const char *path,
                             const struct field *f, const char *const *extra)
{
    const char *keys[32];
    size_t n = 0;
    for (; f->key && n < 31; f++)
        keys[n++] = f->key;
    keys[n] = NULL;
    return check_keys(L, obj, path, keys, extra);
}

/* Reads every field of table `f` from obj (NULL: all defaults) into the struct at base. */
static int apply_fields(struct ld *L, const cJSON *obj, const char *path, const struct field *f,
                        unsigned char *base)
{
    char p[PATH_MAX_LEN];
    int rc;
    for (; f->key; f++) {
        void *dst = base + f->off;
        double v;
        int64_t ms;
        const char *s;
        switch (f->kind) {
        case F_NUM:
            if ((rc = get_num(L, obj, path, f->key, f->dflt, f->lo, f->hi, f->fl, &v)))
                return rc;
            *(double *)dst = isnan(v) ? v : v * (f->scale ? f->scale : 1.0);
            break;
        case F_INT:
            if ((rc = get_num(L, obj, path, f->key, f->dflt, f->lo, f->hi, f->fl | B_INT, &v)))
                return rc;
            *(int *)dst = (int)v;
            break;
        case F_DUR_MS:
        case F_DUR_S:
            if ((rc = get_dur(L, obj, path, f->key, (int64_t)f->dflt, (int64_t)f->lo, f->fl, &ms)))
                return rc;
            if (f->kind == F_DUR_MS)
                *(int64_t *)dst = ms;
            else
                *(double *)dst = (double)ms / 1000.0;
            break;
        case F_PROFILE:
            if ((rc = get_profile_ref(L, obj, path, f->key, f->mask, (f->fl & B_REQ) != 0,
                                      (const struct profile **)dst)))
                return rc;
            break;
        case F_ROLE:
            if ((rc = get_str(L, obj, path, f->key, (f->fl & B_REQ) != 0, &s)))
                return rc;
            if (s && strcmp(s, "grid") == 0)
                *(enum meter_role *)dst = METER_GRID;
            else if (s && strcmp(s, "load") == 0)
                *(enum meter_role *)dst = METER_LOAD;
            else
                return fail(L, pkey(p, path, f->key), item(obj, f->key),
                            "must be \"grid\" or \"load\"");
            break;
        case F_OBJ: {
            const cJSON *sub = item(obj, f->key);
            pkey(p, path, f->key);
            if (sub && ((rc = need_object(L, sub, p)) ||
                        (rc = check_keys_fields(L, sub, p, f->sub, NULL))))
                return rc;
            if ((rc = apply_fields(L, sub, p, f->sub, (unsigned char *)dst)))
                return rc;
            break;
        }
        }
    }
    return 0;
}

/* Relations a table cannot state, and defaults taken from other keys. */
static int check_battery(struct ld *L, struct asset_cfg *a, const cJSON *o, const char *path)
{
    char p[PATH_MAX_LEN];
    const struct battery_params *b = &a->u.battery;
    if (b->temp_stop_c <= b->temp_derate_c)
        return fail(L, pkey(p, path, "temp_stop_c"), item(o, "temp_stop_c"),
                    "must be > temp_derate_c (%g)", b->temp_derate_c);
    return 0;
}

static int check_pv(struct ld *L, struct asset_cfg *a, const cJSON *o, const char *path)
{
    if (isnan(a->u.pv.ac_max_w))
        a->u.pv.ac_max_w = a->u.pv.peak_w;
    return 0;
}

static int check_evse(struct ld *L, struct asset_cfg *a, const cJSON *o, const char *path)
{
    char p[PATH_MAX_LEN];
    struct evse_params *e = &a->u.evse;
    if (e->max_current_a < e->min_current_a)
        return fail(L, pkey(p, path, "max_current_a"), item(o, "max_current_a"),
                    "must be >= min_current_a (%g)", e->min_current_a);
    if (isnan(e->default_current_a))
        e->default_current_a = e->max_current_a;
    if (isnan(e->failsafe_current_a))
        e->failsafe_current_a = e->min_current_a;
    /* 0 pauses; anything else must be a current the charger can actually signal. */
    static const char *const keys[] = {"default_current_a", "failsafe_current_a"};
    const double vals[] = {e->default_current_a, e->failsafe_current_a};
    for (size_t k = 0; k < 2; k++)
        if (vals[k] != 0 && (vals[k] < e->min_current_a || vals[k] > e->max_current_a))
            return fail(L, pkey(p, path, keys[k]), item(o, keys[k]), "must be 0 or in [%g, %g]",
                        e->min_current_a, e->max_current_a);
    return 0;
}

static int check_boiler(struct ld *L, struct asset_cfg *a, const cJSON *o, const char *path)
{
    char p[PATH_MAX_LEN];
    const struct boiler_params *b = &a->u.boiler;
    if (b->temp_max_c <= b->setpoint_c)
        return fail(L, pkey(p, path, "temp_max_c"), item(o, "temp_max_c"),
                    "must be > setpoint_c (%g)", b->setpoint_c);
    return 0;
}

struct asset_kind {
    const char *name;
    enum asset_type type;
    const struct field *fields;
    int (*check)(struct ld *L, struct asset_cfg *a, const cJSON *o, const char *path);
};

static const struct asset_kind asset_kinds[] = {
    {"battery", ASSET_BATTERY, battery_fields, check_battery},
    {"pv", ASSET_PV, pv_fields, check_pv},
    {"meter", ASSET_METER, meter_fields, NULL},
    {"load", ASSET_LOAD, load_fields, NULL},
    {"evse", ASSET_EVSE, evse_fields, check_evse},
    {"boiler", ASSET_BOILER, boiler_fields, check_boiler},
};

/* ---- sites --------------------------------------------------------------------------------- */

static int parse_asset(struct ld *L, const cJSON *o, const char *path, struct asset_cfg *assets,
                       int idx)
{
    static const char *const common[] = {"id", "type", "unit_id", NULL};
    struct asset_cfg *a = &assets[idx];
    char p[PATH_MAX_LEN];
    const char *type;
    double unit;
    int rc;
    if ((rc = need_object(L, o, path)) || (rc = get_id(L, o, path, "id", a->id, sizeof a->id)) ||
        (rc = get_str(L, o, path, "type", 1, &type)))
        return rc;
    const struct asset_kind *k = NULL;
    for (size_t i = 0; i < sizeof asset_kinds / sizeof asset_kinds[0]; i++)
        if (strcmp(asset_kinds[i].name, type) == 0)
            k = &asset_kinds[i];
    if (!k)
        return fail(L, pkey(p, path, "type"), item(o, "type"),
                    "must be one of battery, pv, meter, load, evse, boiler");
    a->type = k->type;
    if ((rc = check_keys_fields(L, o, path, k->fields, common)) ||
        (rc = get_num(L, o, path, "unit_id", 1 + idx, 1, 247, B_INT | B_MIN | B_MAX, &unit)) ||
        (rc = apply_fields(L, o, path, k->fields, (unsigned char *)&a->u)) ||
        (k->check && (rc = k->check(L, a, o, path))))
        return rc;
    a->unit_id = (int)unit;
    for (int i = 0; i < idx; i++) {
        if (strcmp(assets[i].id, a->id) == 0)
            return fail(L, pkey(p, path, "id"), item(o, "id"), "duplicate asset id in the site");
        if (assets[i].unit_id == a->unit_id)
            return fail(L, pkey(p, path, "unit_id"), NULL,
                        "unit id %d is already used by asset \"%s\"", a->unit_id, assets[i].id);
        if (a->type == ASSET_METER && assets[i].type == ASSET_METER &&
            a->u.meter.role == METER_GRID && assets[i].u.meter.role == METER_GRID)
            return fail(L, pkey(p, path, "role"), item(o, "role"),
                        "a site has at most one grid meter (\"%s\" is one)", assets[i].id);
    }
    return 0;
}

static int digits_of(int n)
{
    int d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

/* "<base>-<k>" with k zero-padded to `width` digits (k = 0: the base id alone). The caller
 * has checked that it fits in SCN_ID_MAX. */
static void replica_id(char *out, const char *base, int k, int width)
{
    size_t n = strlen(base);
    memcpy(out, base, n);
    if (k > 0) {
        char num[16];
        int nd = snprintf(num, sizeof num, "%d", k);
        out[n++] = '-';
        for (int i = nd; i < width; i++)
            out[n++] = '0';
        memcpy(out + n, num, (size_t)nd);
        n += (size_t)nd;
    }
    out[n] = '\0';
}

static int parse_site(struct ld *L, const cJSON *o, int si)
{
    static const char *const keys[] = {"id",           "replicas", "port", "import_price",
                                       "export_price", "assets",   NULL};
    struct scenario *s = L->s;
    struct site_cfg t = {0};
    char path[PATH_MAX_LEN], p[PATH_MAX_LEN], ap[PATH_MAX_LEN];
    double replicas, port;
    int rc;
    pidx(path, "sites", si);
    if ((rc = need_object(L, o, path)) || (rc = check_keys(L, o, path, keys, NULL)) ||
        (rc = get_id(L, o, path, "id", t.base_id, sizeof t.base_id)) ||
        (rc = get_num(L, o, path, "replicas", 1, 1, 10000, B_INT | B_MIN | B_MAX, &replicas)) ||
        (rc = get_num(L, o, path, "port", 0, 0, 65535, B_INT | B_MIN | B_MAX, &port)) ||
        (rc = get_profile_ref(L, o, path, "import_price", PK(PROFILE_TOU) | PK(PROFILE_SERIES), 0,
                              &t.import_price)) ||
        (rc = get_profile_ref(L, o, path, "export_price", PK(PROFILE_TOU) | PK(PROFILE_SERIES), 0,
                              &t.export_price)))
        return rc;
    int n_rep = (int)replicas, width = digits_of(n_rep);
    if (n_rep > 1 && strlen(t.base_id) + 1 + (size_t)width >= SCN_ID_MAX)
        return fail(L, pkey(p, path, "id"), item(o, "id"),
                    "too long for %d replicas (ids get \"-%0*d\")", n_rep, width, n_rep);
    if (port > 0 && port + n_rep - 1 > 65535)
        return fail(L, pkey(p, path, "port"), item(o, "port"),
                    "port + replicas - 1 must be <= 65535");
    for (size_t i = 0; i < s->n_sites; i++)
        if (strcmp(s->sites[i].base_id, t.base_id) == 0)
            return fail(L, pkey(p, path, "id"), item(o, "id"), "duplicate site id");

    const cJSON *arr = item(o, "assets");
    pkey(ap, path, "assets");
    if (!arr)
        return fail(L, ap, NULL, "required key missing");
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1)
        return fail(L, ap, arr, "must be a non-empty array");
    t.n_assets = (size_t)cJSON_GetArraySize(arr);
    t.assets = calloc(t.n_assets, sizeof *t.assets);
    if (!t.assets)
        return -ENOMEM;
    int i = 0;
    for (const cJSON *a = arr->child; a; a = a->next, i++)
        if ((rc = parse_asset(L, a, pidx(p, ap, i), t.assets, i)))
            goto out;

    /* Replicas: copies of the template with their own ids, seeds and ports. */
    struct site_cfg *grown = realloc(s->sites, (s->n_sites + (size_t)n_rep) * sizeof *grown);
    if (!grown) {
        rc = -ENOMEM;
        goto out;
    }
    s->sites = grown;
    for (int k = 0; k < n_rep; k++) {
        struct site_cfg *c = &s->sites[s->n_sites];
        *c = t;
        c->assets = malloc(t.n_assets * sizeof *c->assets);
        if (!c->assets) {
            rc = -ENOMEM;
            goto out;
        }
        memcpy(c->assets, t.assets, t.n_assets * sizeof *c->assets);
        s->n_sites++;
        replica_id(c->id, t.base_id, n_rep > 1 ? k + 1 : 0, width);
        c->replica = k;
        c->port = port > 0 ? (int)port + k : 0;
        c->seed = rng_derive_seed(s->seed, c->id);
    }
    /* A replica id may collide with another file site's id ("a" x2 and "a-1"). */
    for (size_t k = s->n_sites - (size_t)n_rep; k < s->n_sites; k++)
        for (size_t j = 0; j < s->n_sites - (size_t)n_rep; j++)
            if (strcmp(s->sites[k].id, s->sites[j].id) == 0) {
                rc = fail(L, pkey(p, path, "id"), item(o, "id"),
                          "site id \"%s\" is used twice after replication", s->sites[k].id);
                goto out;
            }
out:
    free(t.assets);
    return rc;
}

static int parse_sites(struct ld *L, const cJSON *arr)
{
    if (!arr)
        return fail(L, "sites", NULL, "required key missing");
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1)
        return fail(L, "sites", arr, "must be a non-empty array");
    int i = 0, rc;
    for (const cJSON *o = arr->child; o; o = o->next, i++)
        if ((rc = parse_site(L, o, i)))
            return rc;
    return 0;
}

/* ---- events -------------------------------------------------------------------------------- */

static const struct site_cfg *file_site(const struct scenario *s, const char *base_id)
{
    for (size_t i = 0; i < s->n_sites; i++)
        if (s->sites[i].replica == 0 && strcmp(s->sites[i].base_id, base_id) == 0)
            return &s->sites[i];
    return NULL;
}

/* The event's "site": a file site id, optional when the file has only one site. */
static int event_site(struct ld *L, const cJSON *o, const char *path, int n_file_sites,
                      const char *only_site, const struct site_cfg **out)
{
    char p[PATH_MAX_LEN];
    const char *site;
    int rc;
    if ((rc = get_str(L, o, path, "site", 0, &site)))
        return rc;
    if (!site) {
        if (n_file_sites != 1)
            return fail(L, pkey(p, path, "site"), NULL,
                        "required when the file has more than one site");
        site = only_site;
    }
    *out = file_site(L->s, site);
    if (!*out)
        return fail(L, pkey(p, path, "site"), item(o, "site"), "no site \"%s\"", site);
    return 0;
}

/* Keys that belong to one fault kind only: present with another kind is an error. */
static int only_for(struct ld *L, const cJSON *o, const char *path, const char *key,
                    enum fault_kind want, enum fault_kind got)
{
    char p[PATH_MAX_LEN];
    if (got != want && item(o, key))
        return fail(L, pkey(p, path, key), item(o, key), "only valid with \"fault\": \"%s\"",
                    fault_names[want]);
    return 0;
}

/* {"at", "type": "dispatch", "site", "asset" (absent = the site), "power_w" | "mw", "ttl"}:
 * the TTL is whole seconds because the headend's REST API takes ttl_s. */
static int parse_dispatch(struct ld *L, const cJSON *o, const char *path, struct event *e,
                          int n_file_sites, const char *only_site)
{
    static const char *const keys[] = {"at", "type", "site", "asset", "power_w", "mw", "ttl", NULL};
    char p[PATH_MAX_LEN];
    const struct site_cfg *sc;
    int rc;
    if ((rc = check_keys(L, o, path, keys, NULL)))
        return rc;
    e->type = EVENT_DISPATCH;
    if ((rc = event_site(L, o, path, n_file_sites, only_site, &sc)))
        return rc;
    snprintf(e->site_id, sizeof e->site_id, "%s", sc->base_id);
    if (item(o, "asset")) {
        if ((rc = get_id(L, o, path, "asset", e->asset_id, sizeof e->asset_id)))
            return rc;
        const struct asset_cfg *a = NULL;
        for (size_t k = 0; k < sc->n_assets && !a; k++)
            if (strcmp(sc->assets[k].id, e->asset_id) == 0)
                a = &sc->assets[k];
        if (!a)
            return fail(L, pkey(p, path, "asset"), item(o, "asset"),
                        "no asset \"%s\" in site \"%s\"", e->asset_id, sc->base_id);
        if (a->type == ASSET_METER || a->type == ASSET_LOAD)
            return fail(L, pkey(p, path, "asset"), item(o, "asset"), "a %s cannot be dispatched",
                        asset_type_name(a->type));
    }
    if (!!item(o, "power_w") == !!item(o, "mw"))
        return fail(L, pkey(p, path, "power_w"), NULL, "exactly one of power_w or mw is required");
    if (item(o, "mw")) {
        if ((rc = get_num(L, o, path, "mw", 0, 0, 0, B_REQ, &e->power_w)))
            return rc;
        e->power_w *= 1e6;
    } else if ((rc = get_num(L, o, path, "power_w", 0, 0, 0, B_REQ, &e->power_w))) {
        return rc;
    }
    if ((rc = get_dur(L, o, path, "ttl", 900000, 1000, B_MIN, &e->ttl_ms)))
        return rc;
    if (e->ttl_ms % 1000)
        return fail(L, pkey(p, path, "ttl"), item(o, "ttl"), "must be whole seconds");
    return 0;
}

/* {"at", "type": "grid_outage", "site" (absent = the only site), "duration"}: the site's grid
 * connection fails at `at` for `duration` (>= step; it may run past the end of the run) and every
 * replica of the site islands. A whole-site event: naming an asset is an error. */
static int parse_outage(struct ld *L, const cJSON *o, const char *path, struct event *e,
                        int n_file_sites, const char *only_site)
{
    static const char *const keys[] = {"at", "type", "site", "duration", NULL};
    char p[PATH_MAX_LEN];
    const struct site_cfg *sc;
    int rc;
    if (item(o, "asset"))
        return fail(L, pkey(p, path, "asset"), item(o, "asset"),
                    "a grid_outage islands the whole site: name the site, not an asset");
    /* At least one step, so that some step starts inside it (site.c samples at step starts). */
    if ((rc = check_keys(L, o, path, keys, NULL)) ||
        (rc = get_dur(L, o, path, "duration", 0, L->s->step_ms, B_REQ | B_MIN, &e->duration_ms)) ||
        (rc = event_site(L, o, path, n_file_sites, only_site, &sc)))
        return rc;
    e->type = EVENT_GRID_OUTAGE;
    snprintf(e->site_id, sizeof e->site_id, "%s", sc->base_id);
    return 0;
}

static int parse_event(struct ld *L, const cJSON *o, int i, struct event *e, int n_file_sites,
                       const char *only_site)
{
    static const char *const keys[] = {"at",   "duration", "type",  "site",  "asset", "fault",
                                       "code", "delay",    "point", "value", NULL};
    struct scenario *s = L->s;
    char path[PATH_MAX_LEN], p[PATH_MAX_LEN];
    const char *type, *fault, *point;
    int rc;
    pidx(path, "events", i);
    e->seq = i;
    if ((rc = need_object(L, o, path)) ||
        (rc = get_dur(L, o, path, "at", 0, 0, B_REQ, &e->at_ms)) ||
        (rc = get_str(L, o, path, "type", 1, &type)))
        return rc;
    if (e->at_ms >= s->duration_ms)
        return fail(L, pkey(p, path, "at"), item(o, "at"), "must be before the end of the run");
    if (strcmp(type, "dispatch") == 0)
        return parse_dispatch(L, o, path, e, n_file_sites, only_site);
    if (strcmp(type, "grid_outage") == 0)
        return parse_outage(L, o, path, e, n_file_sites, only_site);
    if (strcmp(type, "fault") != 0)
        return fail(L, pkey(p, path, "type"), item(o, "type"),
                    "must be \"fault\", \"dispatch\" or \"grid_outage\"");
    if ((rc = check_keys(L, o, path, keys, NULL)) ||
        (rc = get_dur(L, o, path, "duration", 0, 0, 0, &e->duration_ms)))
        return rc;
    e->type = EVENT_FAULT;
    const struct site_cfg *sc;
    if ((rc = event_site(L, o, path, n_file_sites, only_site, &sc)))
        return rc;
    snprintf(e->site_id, sizeof e->site_id, "%s", sc->base_id);
    if ((rc = get_id(L, o, path, "asset", e->asset_id, sizeof e->asset_id)))
        return rc;
    const struct asset_cfg *a = NULL;
    for (size_t k = 0; k < sc->n_assets && !a; k++)
        if (strcmp(sc->assets[k].id, e->asset_id) == 0)
            a = &sc->assets[k];
    if (!a)
        return fail(L, pkey(p, path, "asset"), item(o, "asset"), "no asset \"%s\" in site \"%s\"",
                    e->asset_id, sc->base_id);
    if ((rc = get_str(L, o, path, "fault", 1, &fault)))
        return rc;
    int kind = -1;
    for (int k = 0; k < 7; k++)
        if (strcmp(fault_names[k], fault) == 0)
            kind = k;
    if (kind < 0)
        return fail(L, pkey(p, path, "fault"), item(o, "fault"),
                    "must be one of timeout, exception, frozen, offline, slow, spike, device");
    e->fault = (enum fault_kind)kind;
    if ((rc = only_for(L, o, path, "code", FAULT_EXCEPTION, e->fault)) ||
        (rc = only_for(L, o, path, "delay", FAULT_SLOW, e->fault)) ||
        (rc = only_for(L, o, path, "point", FAULT_SPIKE, e->fault)) ||
        (rc = only_for(L, o, path, "value", FAULT_SPIKE, e->fault)))
        return rc;
    double code;
    switch (e->fault) {
    case FAULT_EXCEPTION:
        if ((rc = get_num(L, o, path, "code", 0, 1, 11, B_REQ | B_INT | B_MIN | B_MAX, &code)))
            return rc;
        e->code = (int)code;
        break;
    case FAULT_SLOW:
        return get_dur(L, o, path, "delay", 0, 0, B_REQ | B_MIN | B_MINX, &e->delay_ms);
    case FAULT_SPIKE:
        if ((rc = get_str(L, o, path, "point", 0, &point)) ||
            (rc = get_num(L, o, path, "value", 0, 0, 0, B_REQ, &e->value)))
            return rc;
        if (point && strlen(point) >= sizeof e->point)
            return fail(L, pkey(p, path, "point"), item(o, "point"),
                        "must be shorter than %zu characters", sizeof e->point);
        snprintf(e->point, sizeof e->point, "%s", point ? point : "");
        break;
    case FAULT_DEVICE:
        if (a->type == ASSET_METER || a->type == ASSET_LOAD)
            return fail(L, pkey(p, path, "fault"), item(o, "fault"),
                        "\"device\" faults apply to battery, pv, evse and boiler, not %s \"%s\"",
                        asset_type_name(a->type), a->id);
        break;
    default:
        break;
    }
    return 0;
}

static int event_cmp(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    if (x->at_ms != y->at_ms)
        return (x->at_ms > y->at_ms) - (x->at_ms < y->at_ms);
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* One site cannot lose its grid twice at once: overlapping outages are a mistake in the file,
 * not a merge (as for cloud events). Outages are sorted by start, so the later one of an
 * overlapping pair is named, with the earlier one's span. */
static int check_outages(struct ld *L)
{
    const struct scenario *s = L->s;
    for (size_t k = 1; k < s->n_outages; k++) {
        const struct event *e = &s->outages[k];
        for (size_t j = 0; j < k; j++) {
            const struct event *o = &s->outages[j];
            if (strcmp(o->site_id, e->site_id) != 0 || e->at_ms >= o->at_ms + o->duration_ms)
                continue;
            char path[PATH_MAX_LEN], p[PATH_MAX_LEN], from[32], to[32];
            pidx(path, "events", e->seq);
            cJSON *at = cJSON_GetArrayItem(item(s->root, "events"), e->seq);
            return fail(L, pkey(p, path, "at"), item(at, "at"),
                        "overlaps the grid outage of site \"%s\" at events[%d] (%s to %s)",
                        e->site_id, o->seq, duration_format(o->at_ms, from, sizeof from),
                        duration_format(o->at_ms + o->duration_ms, to, sizeof to));
        }
    }
    return 0;
}

static int parse_events(struct ld *L, const cJSON *arr, const cJSON *sites)
{
    struct scenario *s = L->s;
    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr))
        return fail(L, "events", arr, "must be an array");
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n == 0)
        return 0;
    s->events = calloc(n, sizeof *s->events);
    s->dispatches = calloc(n, sizeof *s->dispatches);
    s->outages = calloc(n, sizeof *s->outages);
    if (!s->events || !s->dispatches || !s->outages)
        return -ENOMEM;
    int n_file_sites = cJSON_GetArraySize(sites), i = 0, rc;
    const char *only = s->sites[0].base_id;
    for (const cJSON *o = arr->child; o; o = o->next, i++) {
        struct event e;
        memset(&e, 0, sizeof e);
        if ((rc = parse_event(L, o, i, &e, n_file_sites, only)))
            return rc;
        /* Dispatches go to the gateway, not to the devices: site.c never sees them. */
        if (e.type == EVENT_DISPATCH)
            s->dispatches[s->n_dispatches++] = e;
        else if (e.type == EVENT_GRID_OUTAGE)
            s->outages[s->n_outages++] = e;
        else
            s->events[s->n_events++] = e;
    }
    /* (at, seq) is a total order, so qsort is as good as a stable sort here. */
    qsort(s->events, s->n_events, sizeof *s->events, event_cmp);
    qsort(s->dispatches, s->n_dispatches, sizeof *s->dispatches, event_cmp);
    qsort(s->outages, s->n_outages, sizeof *s->outages, event_cmp);
    return check_outages(L);
}

/* ---- top level ----------------------------------------------------------------------------- */

static int read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        char *nb = realloc(b, cap * 2);
        if (!nb) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!b)
        return -ENOMEM;
    if (bad) {
        free(b);
        return -EIO;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

static int syntax_error(struct ld *L, const char *buf, size_t len, const char *at)
{
    size_t off = at && at >= buf && at <= buf + len ? (size_t)(at - buf) : len;
    int line = 1, col = 1;
    for (size_t i = 0; i < off; i++) {
        if (buf[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char near[32];
    size_t k = 0;
    for (; k < sizeof near - 1 && off + k < len && buf[off + k] != '\n' && buf[off + k] != '\r';
         k++)
        near[k] = buf[off + k];
    near[k] = '\0';
    if (L->err && L->errlen)
        snprintf(L->err, L->errlen, "%s: line %d, column %d: JSON syntax error, got %s", L->file,
                 line, col, k ? near : "the end of the file");
    return -EINVAL;
}

static int parse_top(struct ld *L, const cJSON *root)
{
    static const char *const keys[] = {"name",   "description", "seed",  "start",   "duration",
                                       "step",   "profiles",    "sites", "gateway", "events",
                                       "expect", "headend",     NULL};
    struct scenario *s = L->s;
    const char *desc, *start;
    double seed;
    int rc;
    if ((rc = need_object(L, root, "")) || (rc = check_keys(L, root, "", keys, NULL)) ||
        (rc = get_id(L, root, "", "name", s->name, sizeof s->name)) ||
        (rc = get_str(L, root, "", "description", 0, &desc)) ||
        (rc = get_num(L, root, "", "seed", 0, 0, 0, B_REQ, &seed)) ||
        (rc = get_str(L, root, "", "start", 1, &start)))
        return rc;
    if (desc && strlen(desc) >= sizeof s->description)
        return fail(L, "description", NULL, "must be shorter than %zu characters",
                    sizeof s->description);
    snprintf(s->description, sizeof s->description, "%s", desc ? desc : "");
    /* 2^53: the largest integer a JSON number carries exactly in a double. */
    if (seed < 0 || seed != floor(seed) || seed > 9007199254740992.0)
        return fail(L, "seed", item(root, "seed"), "must be an integer in [0, 2^53]");
    s->seed = (uint64_t)seed;
    if (caltime_parse(start, &s->start_unix_ms))
        return fail(L, "start", item(root, "start"),
                    "must be an ISO 8601 UTC instant like \"2026-06-21T00:00:00Z\"");
    if ((rc = get_dur(L, root, "", "duration", 0, 0, B_REQ | B_MIN | B_MINX, &s->duration_ms)) ||
        (rc = get_dur(L, root, "", "step", 0, 1, B_REQ | B_MIN, &s->step_ms)))
        return rc;
    if (s->duration_ms % s->step_ms)
        return fail(L, "duration", item(root, "duration"), "must be a multiple of step (%s)",
                    item(root, "step")->valuestring);
    const cJSON *gw = item(root, "gateway"), *ex = item(root, "expect"),
                *he = item(root, "headend");
    if ((gw && (rc = need_object(L, gw, "gateway"))) ||
        (ex && (rc = need_object(L, ex, "expect"))) || (he && (rc = need_object(L, he, "headend"))))
        return rc;
    static const char *const no_keys[] = {NULL}; /* "headend": {} has no settings yet */
    if (he && (rc = check_keys(L, he, "headend", no_keys, NULL)))
        return rc;
    if ((rc = parse_profiles(L, item(root, "profiles"))) ||
        (rc = parse_sites(L, item(root, "sites"))) ||
        (rc = parse_events(L, item(root, "events"), item(root, "sites"))))
        return rc;
    if ((gw && !(s->gateway = cJSON_Duplicate(gw, 1))) ||
        (ex && !(s->expect = cJSON_Duplicate(ex, 1))) ||
        (he && !(s->headend = cJSON_Duplicate(he, 1))))
        return -ENOMEM;
    return 0;
}

int scenario_load(const char *path, const char *const *overrides, size_t n_overrides,
                  struct scenario **out, char *err, size_t errlen)
{
    struct ld L = {.file = path, .err = err, .errlen = errlen};
    char *buf = NULL;
    size_t len = 0;
    int rc;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    struct scenario *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    L.s = s;
    if (strlen(path) >= sizeof s->path || strlen(path) >= sizeof L.dir) {
        rc = fail(&L, "", NULL, "path too long");
        goto fail;
    }
    snprintf(s->path, sizeof s->path, "%s", path);
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(L.dir, sizeof L.dir, "%.*s", (int)(slash - path) + (slash == path), path);
    else
        snprintf(L.dir, sizeof L.dir, ".");

    if ((rc = read_file(path, &buf, &len))) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        if (rc != -ENOMEM)
            rc = -ENOENT;
        goto fail;
    }
    sha256_hex(buf, len, s->sha256);
    const char *end = NULL;
    s->root = cJSON_ParseWithOpts(buf, &end, 1);
    if (!s->root) {
        rc = syntax_error(&L, buf, len, end ? end : cJSON_GetErrorPtr());
        goto fail;
    }
    for (size_t i = 0; i < n_overrides; i++)
        if ((rc = apply_override(&L, s->root, overrides[i])))
            goto fail;
    if ((rc = parse_top(&L, s->root)))
        goto fail;
    free(buf);
    *out = s;
    return 0;
fail:
    if (rc == -ENOMEM && err && errlen)
        snprintf(err, errlen, "%s: out of memory", path);
    free(buf);
    scenario_free(s);
    return rc;
}

void scenario_free(struct scenario *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_profiles; i++)
        profile_free(&s->profiles[i]);
    free(s->profiles);
    for (size_t i = 0; i < s->n_sites; i++)
        free(s->sites[i].assets);
    free(s->sites);
    free(s->events);
    free(s->dispatches);
    free(s->outages);
    cJSON_Delete(s->headend);
    cJSON_Delete(s->gateway);
    cJSON_Delete(s->expect);
    cJSON_Delete(s->root);
    free(s);
}
