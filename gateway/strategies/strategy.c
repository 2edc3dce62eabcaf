/* strategy: see strategy.h.
 *
 * Two things live here because they always go together: the parameter tables (a Redis-style
 * config table: one row per setting, read by the validator, the --help printer and the docs
 * generator, so the three cannot disagree) and the strategy registry with the object that
 * pairs a strategy's ops with its validated configuration and its state. Adding a strategy is
 * a new strat_*.c file and one line in `registry` below. */
#include "gateway/strategies/strategy.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/duration.h"

/* ---- parameter tables ---------------------------------------------------------------------- */

static void *member(void *cfg, const struct param_field *f)
{
    return (char *)cfg + f->offset;
}

static void set_value(void *cfg, const struct param_field *f, double v)
{
    switch (f->type) {
    case PARAM_DOUBLE:
        *(double *)member(cfg, f) = v;
        break;
    case PARAM_INT:
        *(int *)member(cfg, f) = (int)v;
        break;
    case PARAM_BOOL:
        *(int *)member(cfg, f) = v != 0;
        break;
    case PARAM_DURATION_MS:
        *(int64_t *)member(cfg, f) = (int64_t)v;
        break;
    }
}

void param_defaults(const struct param_field *f, size_t n, void *cfg)
{
    for (size_t i = 0; i < n; i++)
        set_value(cfg, &f[i], f[i].def);
}

static void fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The JSON text of a value, for messages; "?" when it cannot be printed. */
static void json_text(const cJSON *v, char *buf, size_t len)
{
    char *s = cJSON_PrintUnformatted(v);
    snprintf(buf, len, "%s", s ? s : "?");
    cJSON_free(s);
}

static const char *type_name(enum param_type t)
{
    switch (t) {
    case PARAM_DOUBLE:
        return "number";
    case PARAM_INT:
        return "integer";
    case PARAM_BOOL:
        return "boolean";
    case PARAM_DURATION_MS:
        return "duration";
    }
    return "?";
}

/* Formats a bound or a default as the user writes it. */
static void value_text(const struct param_field *f, double v, char *buf, size_t len)
{
    char d[40];
    switch (f->type) {
    case PARAM_BOOL:
        snprintf(buf, len, "%s", v != 0 ? "true" : "false");
        break;
    case PARAM_DURATION_MS:
        /* an out-of-range number (1e30) is shown as the number: converting it would be
         * undefined behaviour (found by the siteconf fuzzer) */
        if (v >= 0 && v <= (double)DURATION_MAX_MS)
            snprintf(buf, len, "%s", duration_format((int64_t)v, d, sizeof d));
        else
            snprintf(buf, len, "%.10g ms", v);
        break;
    default:
        snprintf(buf, len, "%.10g", v);
        break;
    }
}

static int load_one(const struct param_field *f, const cJSON *v, const char *path, void *cfg,
                    char *err, size_t errlen)
{
    char got[64];
    json_text(v, got, sizeof got);
    double x;
    if (f->type == PARAM_BOOL) {
        if (!cJSON_IsBool(v)) {
            fail(err, errlen, "%s.%s: must be true or false, got %s", path, f->name, got);
            return -EINVAL;
        }
        set_value(cfg, f, cJSON_IsTrue(v) ? 1 : 0);
        return 0;
    }
    if (f->type == PARAM_DURATION_MS && cJSON_IsString(v)) {
        int64_t ms;
        if (duration_parse(v->valuestring, &ms) != 0) {
            fail(err, errlen, "%s.%s: must be a duration such as \"15m\", got %s", path, f->name,
                 got);
            return -EINVAL;
        }
        x = (double)ms;
    } else if (cJSON_IsNumber(v)) {
        x = v->valuedouble;
        if (!isfinite(x) ||
            ((f->type == PARAM_INT || f->type == PARAM_DURATION_MS) && x != floor(x))) {
            fail(err, errlen, "%s.%s: must be %s %s, got %s", path, f->name,
                 f->type == PARAM_DOUBLE ? "a" : "an",
                 f->type == PARAM_DOUBLE ? "finite number" : "integer", got);
            return -EINVAL;
        }
    } else {
        fail(err, errlen, "%s.%s: must be a %s, got %s", path, f->name, type_name(f->type), got);
        return -EINVAL;
    }
    if (!(x >= f->min && x <= f->max)) {
        char lo[40], hi[40], val[40];
        value_text(f, f->min, lo, sizeof lo);
        value_text(f, f->max, hi, sizeof hi);
        value_text(f, x, val, sizeof val);
        fail(err, errlen, "%s.%s: must be in [%s, %s], got %s", path, f->name, lo, hi, val);
        return -EINVAL;
    }
    set_value(cfg, f, x);
    return 0;
}

int param_load(const struct param_field *f, size_t n, const cJSON *obj, const char *path, void *cfg,
               char *err, size_t errlen)
{
    if (!path)
        path = "params";
    param_defaults(f, n, cfg);
    if (!obj || cJSON_IsNull(obj))
        return 0;
    if (!cJSON_IsObject(obj)) {
        fail(err, errlen, "%s: must be an object", path);
        return -EINVAL;
    }
    for (const cJSON *v = obj->child; v; v = v->next) {
        for (const cJSON *u = obj->child; u != v; u = u->next)
            if (strcmp(u->string, v->string) == 0) {
                fail(err, errlen, "%s.%s: given twice", path, v->string);
                return -EINVAL;
            }
        const struct param_field *hit = NULL;
        for (size_t i = 0; i < n && !hit; i++)
            if (strcmp(f[i].name, v->string) == 0)
                hit = &f[i];
        if (!hit) {
            char known[256] = "";
            size_t pos = 0;
            for (size_t i = 0; i < n && pos < sizeof known; i++) {
                int w = snprintf(known + pos, sizeof known - pos, "%s%s", i ? ", " : "", f[i].name);
                pos += w > 0 ? (size_t)w : 0;
            }
            fail(err, errlen, "%s.%s: unknown parameter (known: %s)", path, v->string,
                 n ? known : "none");
            return -EINVAL;
        }
        int rc = load_one(hit, v, path, cfg, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

int param_print_markdown(const struct param_field *f, size_t n, FILE *out)
{
    if (n == 0)
        return fprintf(out, "No parameters.\n") < 0 ? -EIO : 0;
    int bad = fprintf(out, "| name | type | default | range | unit | description |\n"
                           "|---|---|---|---|---|---|\n") < 0;
    for (size_t i = 0; i < n; i++) {
        char def[40], lo[40], hi[40], range[90];
        value_text(&f[i], f[i].def, def, sizeof def);
        value_text(&f[i], f[i].min, lo, sizeof lo);
        value_text(&f[i], f[i].max, hi, sizeof hi);
        if (f[i].type == PARAM_BOOL)
            snprintf(range, sizeof range, "-");
        else
            snprintf(range, sizeof range, "[%s, %s]", lo, hi);
        bad |= fprintf(out, "| `%s` | %s | %s | %s | %s | %s |\n", f[i].name, type_name(f[i].type),
                       def, range, f[i].unit, f[i].help) < 0;
    }
    return bad ? -EIO : 0;
}

int param_print_help(const struct param_field *f, size_t n, const char *prefix, FILE *out)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char def[40], lo[40], hi[40];
        value_text(&f[i], f[i].def, def, sizeof def);
        value_text(&f[i], f[i].min, lo, sizeof lo);
        value_text(&f[i], f[i].max, hi, sizeof hi);
        if (f[i].type == PARAM_BOOL)
            bad |= fprintf(out, "  %s%s=%s  (%s) %s\n", prefix ? prefix : "", f[i].name, def,
                           type_name(f[i].type), f[i].help) < 0;
        else
            bad |= fprintf(out, "  %s%s=%s  (%s in [%s, %s]%s%s) %s\n", prefix ? prefix : "",
                           f[i].name, def, type_name(f[i].type), lo, hi, *f[i].unit ? " " : "",
                           f[i].unit, f[i].help) < 0;
    }
    return bad ? -EIO : 0;
}

/* ---- registry ------------------------------------------------------------------------------ */

static const struct strategy_ops *const registry[] = {
    &strategy_null_ops,         &strategy_charge_ops,           &strategy_discharge_ops,
    &strategy_net_zero_ops,     &strategy_manual_ops,           &strategy_peak_shaving_ops,
    &strategy_time_of_use_ops,  &strategy_self_consumption_ops, &strategy_arbitrage_ops,
    &strategy_backup_power_ops, &strategy_grid_services_ops,    &strategy_ev_charging_ops,
    &strategy_boiler_ops,       &strategy_planner_ops,
};

size_t strategy_count(void)
{
    return sizeof registry / sizeof registry[0];
}

const struct strategy_ops *strategy_at(size_t i)
{
    return i < strategy_count() ? registry[i] : NULL;
}

const struct strategy_ops *strategy_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < strategy_count(); i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

/* ---- strategy objects ---------------------------------------------------------------------- */

struct strategy {
    const struct strategy_ops *ops;
    void *cfg;
    void *state;
    size_t n_constraints;
    struct strategy *constraint[STRATEGY_MAX_CONSTRAINTS];
    struct procimg *view; /* the image without the additive responses (added_w), lazily */
};

struct strategy *strategy_new(const char *name, const cJSON *params, const char *path, char *err,
                              size_t errlen)
{
    const struct strategy_ops *ops = strategy_find(name);
    if (!ops) {
        char known[256] = "";
        size_t pos = 0;
        for (size_t i = 0; i < strategy_count() && pos < sizeof known; i++) {
            int w =
                snprintf(known + pos, sizeof known - pos, "%s%s", i ? ", " : "", registry[i]->name);
            pos += w > 0 ? (size_t)w : 0;
        }
        fail(err, errlen, "unknown strategy \"%s\" (known: %s)", name ? name : "", known);
        return NULL;
    }
    struct strategy *s = calloc(1, sizeof *s);
    if (!s)
        goto nomem;
    s->ops = ops;
    /* calloc(1, 0) may return NULL; one byte keeps "no configuration" distinct from failure */
    s->cfg = calloc(1, ops->cfg_size ? ops->cfg_size : 1);
    s->state = calloc(1, ops->state_size ? ops->state_size : 1);
    if (!s->cfg || !s->state)
        goto nomem;
    if (param_load(ops->fields, ops->n_fields, params, path, s->cfg, err, errlen))
        goto fail;
    if (ops->check && ops->check(s->cfg, path ? path : "params", err, errlen))
        goto fail;
    if (ops->init) {
        int rc = ops->init(s->state, s->cfg);
        if (rc) {
            fail(err, errlen, "%s: cannot start strategy %s (%s)", path ? path : "params",
                 ops->name, strerror(-rc));
            goto fail;
        }
    }
    return s;
nomem:
    fail(err, errlen, "strategy %s: out of memory", name);
fail:
    if (s) {
        free(s->state);
        free(s->cfg);
        free(s);
    }
    return NULL;
}

void strategy_free(struct strategy *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_constraints; i++)
        strategy_free(s->constraint[i]);
    if (s->ops->fini)
        s->ops->fini(s->state);
    free(s->view);
    free(s->state);
    free(s->cfg);
    free(s);
}

const struct strategy_ops *strategy_ops_of(const struct strategy *s)
{
    return s->ops;
}

const void *strategy_cfg(const struct strategy *s)
{
    return s->cfg;
}

/* What the grid loops see: img, or - while additive constraints (grid_services) respond - a
 * copy whose grid reading has their last response taken out (+ discharge lowers the import,
 * so it is added back). Without memory for the copy the loops see the real grid. */
static const struct procimg *strategy_loop_view(struct strategy *s, const struct procimg *img)
{
    double added = 0;
    for (size_t i = 0; i < s->n_constraints; i++) {
        const struct strategy *c = s->constraint[i];
        if (c->ops->added_w)
            added += c->ops->added_w(c->state);
    }
    if (added == 0 || !isfinite(added) || !img->grid_ok || !isfinite(img->grid_w))
        return img;
    if (!s->view && !(s->view = malloc(sizeof *s->view)))
        return img;
    *s->view = *img;
    s->view->grid_w += added;
    for (size_t i = 0; i < s->view->n_devices; i++)
        if (s->view->dev[i].type == PROCIMG_METER_GRID && isfinite(s->view->dev[i].power_w))
            s->view->dev[i].power_w += added;
    return s->view;
}

int strategy_decide(struct strategy *s, const struct procimg *img, int64_t now_ms,
                    struct decision *dm)
{
    snprintf(dm->strategy, sizeof dm->strategy, "%s", s->ops->name);
    const struct procimg *loop_img = strategy_loop_view(s, img);
    int rc = s->ops->decide(s->state, loop_img, now_ms, dm);
    if (s->n_constraints == 0)
        return rc;
    /* The DecisionMetrics has one set of controller terms: the primary's. */
    double keep[6] = {dm->target_w, dm->error_w, dm->p_w, dm->i_w, dm->d_w, dm->raw_w};
    double lo = -INFINITY, hi = INFINITY; /* the constraints' windows so far */
    for (size_t i = 0; i < s->n_constraints; i++) {
        const struct strategy *c = s->constraint[i];
        if (!c->ops->constrain) {
            int crc = c->ops->decide(c->state, loop_img, now_ms, dm);
            rc = rc ? rc : crc;
            continue;
        }
        struct strategy_window w = {-INFINITY, INFINITY, 0};
        int crc = c->ops->constrain(c->state, img, now_ms, dm, &w);
        rc = rc ? rc : crc;
        if (crc || !(w.lo_w <= w.hi_w))
            continue;
        double nlo = fmax(lo, w.lo_w), nhi = fmin(hi, w.hi_w);
        if (nlo > nhi) {
            /* Disjoint: the earlier constraints win; this one's loss is on the record, from the
             * edge of its window to where the earlier ones hold the request. */
            double edge = w.hi_w < lo ? w.hi_w : w.lo_w;
            double held = w.hi_w < lo ? lo : hi;
            decision_clamp(dm, DECISION_SITE, w.conflict, edge, held);
            continue;
        }
        lo = nlo;
        hi = nhi;
        strategy_narrow_site(dm, c->ops->source, lo, hi, w.conflict);
    }
    dm->target_w = keep[0];
    dm->error_w = keep[1];
    dm->p_w = keep[2];
    dm->i_w = keep[3];
    dm->d_w = keep[4];
    dm->raw_w = keep[5];
    return rc;
}

int strategy_add_constraints(struct strategy *s, const cJSON *arr, const char *path, char *err,
                             size_t errlen)
{
    if (!arr || cJSON_IsNull(arr))
        return 0;
    if (!path)
        path = "constraints";
    if (!cJSON_IsArray(arr)) {
        fail(err, errlen, "%s: must be an array", path);
        return -EINVAL;
    }
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        char p[96], sub[256];
        if (s->n_constraints >= STRATEGY_MAX_CONSTRAINTS) {
            fail(err, errlen, "%s: at most %d constraints", path, STRATEGY_MAX_CONSTRAINTS);
            return -EINVAL;
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "strategy");
        snprintf(p, sizeof p, "%s[%zu].params", path, i);
        struct strategy *c =
            strategy_new(cJSON_IsString(name) ? name->valuestring : NULL,
                         cJSON_GetObjectItemCaseSensitive(e, "params"), p, sub, sizeof sub);
        if (!c) {
            /* a parameter error names its own path; an unknown strategy gets its key's */
            if (cJSON_IsString(name) && strategy_find(name->valuestring))
                fail(err, errlen, "%s", sub);
            else
                fail(err, errlen, "%s[%zu].strategy: %s", path, i, sub);
            return -EINVAL;
        }
        s->constraint[s->n_constraints++] = c;
    }
    return 0;
}

size_t strategy_n_constraints(const struct strategy *s)
{
    return s->n_constraints;
}

double strategy_site_request(const struct decision *dm, int *source)
{
    double w = 0;
    int src = DSRC_NONE;
    for (size_t k = 0; k < dm->n_requests; k++) {
        const struct decision_request *r = &dm->req[k];
        if (r->asset == DECISION_SITE && r->source >= src) {
            src = r->source;
            w = r->power_w;
        }
    }
    if (source)
        *source = src;
    return w;
}

double strategy_narrow_site(struct decision *dm, int source, double lo_w, double hi_w, int conflict)
{
    int src;
    double w = strategy_site_request(dm, &src);
    double to = w;
    if (!isfinite(w))
        to = 0;
    if (to > hi_w)
        to = hi_w;
    if (to < lo_w)
        to = lo_w;
    if (to == w)
        return w;
    decision_request(dm, src > source ? src : source, DECISION_SITE, to);
    decision_clamp(dm, DECISION_SITE, conflict, w, to);
    return to;
}

int strategy_dispatch(struct strategy *s, int asset, double power_w, int64_t expires_ms)
{
    if (!s->ops->dispatch)
        return -ENOTSUP;
    return s->ops->dispatch(s->state, asset, power_w, expires_ms);
}
