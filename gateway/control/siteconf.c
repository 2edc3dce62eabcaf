/* siteconf: see siteconf.h. Every key is checked: unknown keys are errors, so a typo in a
 * configuration is found at start-up instead of silently running with a default. */
#include "gateway/control/siteconf.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/duration.h"

struct ctx {
    const char *origin;
    char *err;
    size_t errlen;
};

static int fail(struct ctx *c, const char *path, const cJSON *got, const char *fmt, ...)
{
    char msg[256], val[96] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (got && cJSON_IsNumber(got) && !isfinite(got->valuedouble)) {
        /* cJSON prints an overflowed number ("1e400") as null: say what it was */
        snprintf(val, sizeof val, ", got a number beyond the range of a double");
    } else if (got) {
        char *s = cJSON_PrintUnformatted(got);
        if (s) {
            snprintf(val, sizeof val, ", got %.80s", s);
            cJSON_free(s);
        }
    }
    snprintf(c->err, c->errlen, "%s: %s: %s%s", c->origin, path, msg, val);
    return -EINVAL;
}

static int only_keys(struct ctx *c, const char *path, const cJSON *obj, const char *const *keys)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        int known = 0;
        for (size_t i = 0; keys[i]; i++)
            known |= !strcmp(it->string, keys[i]);
        if (!known) {
            char p[160];
            snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", it->string);
            return fail(c, p, NULL, "unknown key \"%s\"", it->string);
        }
    }
    return 0;
}

static int get_id(struct ctx *c, const char *path, const cJSON *v, char *dst, size_t len)
{
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= len)
        return fail(c, path, v, "must be a non-empty string of at most %zu characters", len - 1);
    for (const char *p = v->valuestring; *p; p++)
        if (!(*p == '-' || *p == '_' || *p == '.' || *p == ':' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return fail(c, path, v, "may hold only letters, digits and - _ . :");
    strcpy(dst, v->valuestring);
    return 0;
}

static int get_num(struct ctx *c, const char *path, const cJSON *v, double lo, double hi,
                   double *dst)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return fail(c, path, v, "must be a number");
    if (v->valuedouble < lo || v->valuedouble > hi)
        return fail(c, path, v, "must be in [%g, %g]", lo, hi);
    *dst = v->valuedouble;
    return 0;
}

static int get_int(struct ctx *c, const char *path, const cJSON *v, int lo, int hi, int *dst)
{
    double d = 0;
    int rc = get_num(c, path, v, lo, hi, &d);
    if (rc)
        return rc;
    if (d != floor(d))
        return fail(c, path, v, "must be a whole number");
    *dst = (int)d;
    return 0;
}

/* A duration in [lo, hi] (docs/gateway-config.md says why each field's bounds). */
static int get_dur(struct ctx *c, const char *path, const cJSON *v, int64_t lo, int64_t hi,
                   int64_t *dst)
{
    char a[32], b[32];
    int64_t ms = 0;
    int rc = cJSON_IsString(v) ? duration_parse(v->valuestring, &ms) : -EINVAL;
    if (rc == -EINVAL)
        return fail(c, path, v, "must be a duration such as \"500ms\", \"1s\" or \"2m\"");
    if (rc != 0 || ms < lo || ms > hi)
        return fail(c, path, v, "must be in [%s, %s]", duration_format(lo, a, sizeof a),
                    duration_format(hi, b, sizeof b));
    *dst = ms;
    return 0;
}

const char *dev_type_name(enum dev_type t)
{
    return devtype_json((int)t) ? devtype_json((int)t) : "?";
}

static int parse_device(struct ctx *c, const cJSON *d, size_t i, struct device_cfg *out)
{
    static const char *const keys[] = {"asset_id",    "type",          "role",
                                       "driver",      "host",          "port",
                                       "unit_id",     "timeout",       "invert_sign",
                                       "capacity_wh", "max_charge_w",  "max_discharge_w",
                                       "peak_w",      "min_current_a", "max_current_a",
                                       "phases",      "rated_w",       NULL};
    char path[96], p[128];
    snprintf(path, sizeof path, "devices[%zu]", i);
    if (!cJSON_IsObject(d))
        return fail(c, path, d, "must be an object");
    int rc = only_keys(c, path, d, keys);
    if (rc)
        return rc;
#define AT(k) (snprintf(p, sizeof p, "%s.%s", path, k), p)
    memset(out, 0, sizeof *out);
    out->timeout_ms = 500;
    if ((rc = get_id(c, AT("asset_id"), cJSON_GetObjectItemCaseSensitive(d, "asset_id"),
                     out->asset_id, sizeof out->asset_id)))
        return rc;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "type");
    int found = 0;
    for (int k = 0; k < DEVTYPE_COUNT && cJSON_IsString(t); k++)
        if (!strcmp(t->valuestring, dev_type_name((enum dev_type)k))) {
            out->type = (enum dev_type)k;
            found = 1;
        }
    if (!found)
        return fail(c, AT("type"), t, "must be one of %s", DEVTYPE_NAMES);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(d, "role");
    if (out->type == DEV_METER) {
        if (cJSON_IsString(role) && !strcmp(role->valuestring, "grid"))
            out->role = ROLE_GRID;
        else if (cJSON_IsString(role) && !strcmp(role->valuestring, "load"))
            out->role = ROLE_LOAD;
        else
            return fail(c, AT("role"), role, "a meter needs role \"grid\" or \"load\"");
    } else if (role) {
        return fail(c, AT("role"), role, "only meters have a role");
    }
    const char *def_driver = devtype_driver((int)out->type);
    const cJSON *drv = cJSON_GetObjectItemCaseSensitive(d, "driver");
    if (drv) {
        if (!cJSON_IsString(drv) || strcmp(drv->valuestring, def_driver))
            return fail(c, AT("driver"), drv, "a %s uses driver \"%s\"", dev_type_name(out->type),
                        def_driver);
    }
    strcpy(out->driver, def_driver);
    const cJSON *host = cJSON_GetObjectItemCaseSensitive(d, "host");
    if (!cJSON_IsString(host) || !host->valuestring[0] ||
        strlen(host->valuestring) >= sizeof out->host)
        return fail(c, AT("host"), host, "must be a host name or address");
    strcpy(out->host, host->valuestring);
    if ((rc = get_int(c, AT("port"), cJSON_GetObjectItemCaseSensitive(d, "port"), 1, 65535,
                      &out->port)))
        return rc;
    if ((rc = get_int(c, AT("unit_id"), cJSON_GetObjectItemCaseSensitive(d, "unit_id"), 0, 255,
                      &out->unit_id)))
        return rc;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(d, "timeout")) &&
        (rc = get_dur(c, AT("timeout"), v, SITECONF_TIMEOUT_MIN_MS, SITECONF_TIMEOUT_MAX_MS,
                      &out->timeout_ms)))
        return rc;
    if ((v = cJSON_GetObjectItemCaseSensitive(d, "invert_sign"))) {
        if (!cJSON_IsBool(v))
            return fail(c, AT("invert_sign"), v, "must be true or false");
        out->invert_sign = cJSON_IsTrue(v);
    }
    const struct {
        const char *key;
        double *dst;
        double hi;
    } ratings[] = {
        {"capacity_wh", &out->capacity_wh, 1e9},
        {"max_charge_w", &out->max_charge_w, 1e8},
        {"max_discharge_w", &out->max_discharge_w, 1e8},
        {"peak_w", &out->peak_w, 1e8},
        {"min_current_a", &out->min_current_a, 1000},
        {"max_current_a", &out->max_current_a, 1000},
        {"rated_w", &out->rated_w, 1e8},
    };
    for (size_t k = 0; k < sizeof ratings / sizeof ratings[0]; k++)
        if ((v = cJSON_GetObjectItemCaseSensitive(d, ratings[k].key)) &&
            (rc = get_num(c, AT(ratings[k].key), v, 0, ratings[k].hi, ratings[k].dst)))
            return rc;
    out->phases = 3;
    if ((v = cJSON_GetObjectItemCaseSensitive(d, "phases"))) {
        if ((rc = get_int(c, AT("phases"), v, 1, 3, &out->phases)))
            return rc;
        if (out->phases == 2)
            return fail(c, AT("phases"), v, "must be 1 or 3");
    }
    if (out->max_current_a > 0 && out->min_current_a > out->max_current_a)
        return fail(c, AT("min_current_a"), cJSON_GetObjectItemCaseSensitive(d, "min_current_a"),
                    "must not exceed max_current_a");
#undef AT
    return 0;
}

/* The strategy-facing sections: the calendar, tariffs and departures (sitectx.c), the
 * schedules (schedule.c) and the shape of "constraints" (each strategy validates its own params
 * when it is created). */
static int validate_inputs(struct ctx *c, struct siteconf *sc)
{
    char sub[300];
    int rc = sitectx_parse(&sc->ctx, sc->root, sub, sizeof sub);
    if (rc) {
        snprintf(c->err, c->errlen, "%s: %s", c->origin, sub);
        return rc;
    }
    rc = schedule_parse(cJSON_GetObjectItemCaseSensitive(sc->root, "schedules"), "schedules",
                        &sc->schedule, sub, sizeof sub);
    if (rc) {
        snprintf(c->err, c->errlen, "%s: %s", c->origin, sub);
        return rc;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sc->root, "constraints");
    if (!v)
        return 0;
    if (!cJSON_IsArray(v))
        return fail(c, "constraints", v, "must be an array of {\"strategy\", \"params\"}");
    static const char *const keys[] = {"strategy", "params", NULL};
    size_t i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        char p[64];
        snprintf(p, sizeof p, "constraints[%zu]", i);
        if (!cJSON_IsObject(e))
            return fail(c, p, e, "must be an object {\"strategy\", \"params\"}");
        if ((rc = only_keys(c, p, e, keys)))
            return rc;
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "strategy");
        snprintf(p, sizeof p, "constraints[%zu].strategy", i);
        if (!cJSON_IsString(n) || !n->valuestring[0])
            return fail(c, p, n, "must be a strategy name");
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(e, "params");
        snprintf(p, sizeof p, "constraints[%zu].params", i);
        if (pa && !cJSON_IsObject(pa))
            return fail(c, p, pa, "must be an object");
    }
    sc->constraints = v;
    return 0;
}

static int validate(struct ctx *c, struct siteconf *sc)
{
    static const char *const keys[] = {
        "site_id", "gateway_id",    "poll_period", "stale_after", "devices",     "strategy",
        "params",  "safety",        "split",       "uplink",      "description", "start",
        "tariff",  "ev_departures", "constraints", "schedules",   "forecast",    NULL};
    const cJSON *root = sc->root;
    if (!cJSON_IsObject(root))
        return fail(c, "(root)", NULL, "must be a JSON object");
    int rc = only_keys(c, "", root, keys);
    if (rc)
        return rc;
    if ((rc = get_id(c, "site_id", cJSON_GetObjectItemCaseSensitive(root, "site_id"), sc->site_id,
                     sizeof sc->site_id)))
        return rc;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "gateway_id");
    if (v) {
        if ((rc = get_id(c, "gateway_id", v, sc->gateway_id, sizeof sc->gateway_id)))
            return rc;
    } else {
        snprintf(sc->gateway_id, sizeof sc->gateway_id, "gw-%.*s", SITECONF_ID_MAX - 4,
                 sc->site_id);
    }
    sc->poll_period_ms = 1000;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "poll_period")) &&
        (rc = get_dur(c, "poll_period", v, 1, SITECONF_POLL_PERIOD_MAX_MS, &sc->poll_period_ms)))
        return rc;
    sc->stale_after_ms = 3 * sc->poll_period_ms;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "stale_after")) &&
        (rc = get_dur(c, "stale_after", v, 1, SITECONF_STALE_AFTER_MAX_MS, &sc->stale_after_ms)))
        return rc;
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(root, "devices");
    if (!cJSON_IsArray(devs) || cJSON_GetArraySize(devs) < 1)
        return fail(c, "devices", devs, "must be a non-empty array");
    if (cJSON_GetArraySize(devs) > SITECONF_MAX_DEVICES)
        return fail(c, "devices", NULL, "at most %d devices, got %d", SITECONF_MAX_DEVICES,
                    cJSON_GetArraySize(devs));
    size_t i = 0, grid_meters = 0, first_grid = 0;
    for (const cJSON *d = devs->child; d; d = d->next, i++) {
        if ((rc = parse_device(c, d, i, &sc->devices[i])))
            return rc;
        for (size_t k = 0; k < i; k++) {
            char p[64];
            snprintf(p, sizeof p, "devices[%zu].asset_id", i);
            if (!strcmp(sc->devices[k].asset_id, sc->devices[i].asset_id))
                return fail(c, p, cJSON_GetObjectItemCaseSensitive(d, "asset_id"),
                            "duplicate asset id (also devices[%zu])", k);
        }
        if (sc->devices[i].role == ROLE_GRID && grid_meters++) {
            char p[64];
            snprintf(p, sizeof p, "devices[%zu].role", i);
            return fail(c, p, cJSON_GetObjectItemCaseSensitive(d, "role"),
                        "a second grid meter (devices[%zu] is one already): at most one",
                        first_grid);
        }
        if (sc->devices[i].role == ROLE_GRID)
            first_grid = i;
    }
    sc->n_devices = i;
    strcpy(sc->strategy, "null");
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "strategy"))) {
        if (!cJSON_IsString(v) || !v->valuestring[0] ||
            strlen(v->valuestring) >= sizeof sc->strategy)
            return fail(c, "strategy", v, "must be a strategy name");
        strcpy(sc->strategy, v->valuestring);
    }
    static const char *const objs[] = {"params", "safety", "split", "uplink"};
    const cJSON **dst[] = {&sc->params, &sc->safety, &sc->split, &sc->uplink};
    for (size_t k = 0; k < 4; k++) {
        v = cJSON_GetObjectItemCaseSensitive(root, objs[k]);
        if (v && !cJSON_IsObject(v))
            return fail(c, objs[k], v, "must be an object");
        *dst[k] = v;
    }
    return validate_inputs(c, sc);
}

static void line_col(const char *text, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

int siteconf_parse(const char *text, const char *origin, struct siteconf **out, char *err,
                   size_t errlen)
{
    struct ctx c = {origin ? origin : "(config)", err, errlen};
    *out = NULL;
    struct siteconf *sc = calloc(1, sizeof *sc);
    if (!sc)
        return -ENOMEM;
    snprintf(sc->path, sizeof sc->path, "%s", c.origin);
    const char *end = NULL;
    sc->root = cJSON_ParseWithOpts(text, &end, 1);
    if (!sc->root) {
        int line, col;
        line_col(text, end ? end : text, &line, &col);
        snprintf(err, errlen, "%s: line %d, column %d: invalid JSON", c.origin, line, col);
        free(sc);
        return -EINVAL;
    }
    int rc = validate(&c, sc);
    if (rc) {
        siteconf_free(sc);
        return rc;
    }
    *out = sc;
    return 0;
}

int siteconf_load_file(const char *path, struct siteconf **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return -ENOENT;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (size_t n; buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += n;
        if (cap - len - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return -ENOMEM;
    buf[len] = '\0';
    int rc = siteconf_parse(buf, path, out, err, errlen);
    free(buf);
    return rc;
}

void siteconf_free(struct siteconf *c)
{
    if (!c)
        return;
    sitectx_free(&c->ctx);
    cJSON_Delete(c->root);
    free(c);
}

const struct device_cfg *siteconf_find(const struct siteconf *c, const char *asset_id)
{
    for (size_t i = 0; i < c->n_devices; i++)
        if (!strcmp(c->devices[i].asset_id, asset_id))
            return &c->devices[i];
    return NULL;
}
