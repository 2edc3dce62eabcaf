/* schedule: see schedule.h.
 *
 * Why a schedule builds on the strategies' request instead of replacing it: a cap window is a
 * limit, not a programme, so outside its limit the strategy keeps running; a charge window
 * replaces what the strategy asked. Caps are predicted the way safety's grid limits are
 * (docs/physics.md balance: the grid moves by minus the batteries' change), from the measured
 * battery power and the grid meter; without a usable grid meter a cap does nothing. */
#include "gateway/control/schedule.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/caltime.h"
#include "gateway/control/sitectx.h"

static const char *const day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
static const char *const action_names[] = {"charge", "discharge", "hold_soc", "import_cap",
                                           "export_cap"};
#define N_ACTIONS (sizeof action_names / sizeof action_names[0])

static int fail(char *err, size_t errlen, const char *path, const cJSON *got, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(char *err, size_t errlen, const char *path, const cJSON *got, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *v = got ? cJSON_PrintUnformatted(got) : NULL;
    snprintf(err, errlen, "%s: %s%s%.80s", path, msg, v ? ", got " : "", v ? v : "");
    cJSON_free(v);
    return -EINVAL;
}

static int parse_days(const cJSON *v, const char *path, uint8_t *days, char *err, size_t errlen)
{
    if (!v) {
        *days = 0x7f;
        return 0;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1)
        return fail(err, errlen, path, v, "must be a non-empty array of sun, mon, ... sat");
    *days = 0;
    for (const cJSON *d = v->child; d; d = d->next) {
        int k = 7;
        for (int i = 0; i < 7 && cJSON_IsString(d); i++)
            if (!strcmp(d->valuestring, day_names[i]))
                k = i;
        if (k == 7)
            return fail(err, errlen, path, d,
                        "each day must be one of sun, mon, tue, wed, thu, "
                        "fri, sat");
        *days |= (uint8_t)(1u << k);
    }
    return 0;
}

static int parse_window(const cJSON *o, const char *path, struct schedule_window *w, char *err,
                        size_t errlen)
{
    static const char *const keys[] = {"days", "from", "to", "action", "power_w", "soc", NULL};
    char p[160];
    if (!cJSON_IsObject(o))
        return fail(err, errlen, path, o,
                    "must be an object {days, from, to, action, power_w, soc}");
    for (const cJSON *it = o->child; it; it = it->next) {
        int known = 0;
        for (size_t i = 0; keys[i]; i++)
            known |= !strcmp(it->string, keys[i]);
        snprintf(p, sizeof p, "%s.%s", path, it->string);
        if (!known)
            return fail(err, errlen, p, NULL, "unknown key (days, from, to, action, power_w, soc)");
    }
    memset(w, 0, sizeof *w);
    w->soc = NAN;
    snprintf(p, sizeof p, "%s.days", path);
    int rc = parse_days(cJSON_GetObjectItemCaseSensitive(o, "days"), p, &w->days, err, errlen);
    if (rc)
        return rc;
    const char *which[2] = {"from", "to"};
    int *dst[2] = {&w->from_min, &w->to_min};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, which[k]);
        snprintf(p, sizeof p, "%s.%s", path, which[k]);
        if (!cJSON_IsString(v) || caltime_parse_hhmm(v->valuestring, k == 1, dst[k]))
            return fail(err, errlen, p, v, "must be a time of day \"HH:MM\" (00:00 to %s)",
                        k ? "24:00" : "23:59");
    }
    if (w->from_min == w->to_min)
        return fail(err, errlen, p, cJSON_GetObjectItemCaseSensitive(o, "to"),
                    "must differ from \"from\" (an empty window)");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "action");
    snprintf(p, sizeof p, "%s.action", path);
    size_t k = N_ACTIONS;
    for (size_t i = 0; i < N_ACTIONS && cJSON_IsString(a); i++)
        if (!strcmp(a->valuestring, action_names[i]))
            k = i;
    if (k == N_ACTIONS)
        return fail(err, errlen, p, a,
                    "must be one of charge, discharge, hold_soc, import_cap, export_cap");
    w->action = (enum schedule_action)k;
    const cJSON *pw = cJSON_GetObjectItemCaseSensitive(o, "power_w");
    const cJSON *soc = cJSON_GetObjectItemCaseSensitive(o, "soc");
    if (soc && w->action != SCHED_HOLD_SOC) {
        snprintf(p, sizeof p, "%s.soc", path);
        return fail(err, errlen, p, soc, "only hold_soc takes a target soc");
    }
    if (soc) {
        snprintf(p, sizeof p, "%s.soc", path);
        if (!cJSON_IsNumber(soc) || !(soc->valuedouble >= 0 && soc->valuedouble <= 1))
            return fail(err, errlen, p, soc, "must be a state of charge in [0, 1]");
        w->soc = soc->valuedouble;
    }
    snprintf(p, sizeof p, "%s.power_w", path);
    if (w->action == SCHED_HOLD_SOC && !soc) {
        if (pw)
            return fail(err, errlen, p, pw,
                        "hold_soc takes no power without a target soc (it holds at 0 W)");
        return 0;
    }
    if (!cJSON_IsNumber(pw) || !isfinite(pw->valuedouble) || pw->valuedouble < 0 ||
        pw->valuedouble > 1e9)
        return fail(err, errlen, p, pw, "required for %s: a number of watts in [0, 1e9]",
                    w->action == SCHED_HOLD_SOC ? "hold_soc with a target soc" : action_names[k]);
    w->power_w = pw->valuedouble;
    return 0;
}

int schedule_parse(const cJSON *arr, const char *path, struct schedule *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > SCHEDULE_MAX_WINDOWS)
        return fail(err, errlen, path, arr, "must be an array of at most %d windows",
                    SCHEDULE_MAX_WINDOWS);
    for (const cJSON *o = arr->child; o; o = o->next) {
        char p[128];
        snprintf(p, sizeof p, "%s[%zu]", path, out->n);
        int rc = parse_window(o, p, &out->w[out->n], err, errlen);
        if (rc) {
            memset(out, 0, sizeof *out);
            return rc;
        }
        out->n++;
    }
    return 0;
}

int schedule_window_active(const struct schedule_window *w, int64_t unix_ms)
{
    struct caltm tm;
    caltime_split(unix_ms, &tm);
    int m = tm.hour * 60 + tm.min, today = (w->days >> tm.wday) & 1,
        yesterday = (w->days >> ((tm.wday + 6) % 7)) & 1;
    if (w->from_min < w->to_min)
        return today && m >= w->from_min && m < w->to_min;
    return (today && m >= w->from_min) || (yesterday && m < w->to_min);
}

double schedule_hold_soc_w(const struct schedule_window *w, const struct procimg *img)
{
    double soc = procimg_site_soc(img);
    if (w->action != SCHED_HOLD_SOC || !isfinite(w->soc) || !isfinite(soc))
        return 0;
    double gap = soc - w->soc; /* > 0: above the target, discharge (site signs) */
    if (fabs(gap) <= SCHEDULE_SOC_BAND)
        return 0;
    double cap_wh = 0;
    for (size_t i = 0; i < img->n_devices; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (d->type == PROCIMG_BATTERY && procimg_dev_usable(d) && d->capacity_wh > 0)
            cap_wh += d->capacity_wh;
    }
    /* without a capacity the gap in Wh is unknown: full power until the band */
    double want = cap_wh > 0 ? fabs(gap) * cap_wh * 3600.0 / SCHEDULE_SOC_HORIZON_S : INFINITY;
    double p = fmin(want, w->power_w);
    return gap > 0 ? p : -p;
}

void schedule_decide(const struct schedule *s, const struct procimg *img, struct decision *dm)
{
    int64_t unix_ms;
    if (!s || s->n == 0 || sitectx_calendar(img->ctx, img->now_ms, &unix_ms))
        return;
    /* the strategies' site request as the arbiter would pick it: the highest class they used
     * (some run at the scheduled class: docs/strategies.md), the last one within it */
    double asked = NAN;
    int cls = DSRC_NONE;
    for (size_t k = 0; k < dm->n_requests; k++) {
        const struct decision_request *r = &dm->req[k];
        if (r->asset == DECISION_SITE && r->source <= DSRC_SCHEDULED && r->source >= cls) {
            cls = r->source;
            asked = r->power_w;
        }
    }
    double x = isfinite(asked) ? asked : 0; /* nobody asked: the batteries rest (arbiter.h) */
    int changed = 0;
    for (size_t i = 0; i < s->n; i++) {
        const struct schedule_window *w = &s->w[i];
        if (w->action > SCHED_HOLD_SOC || !schedule_window_active(w, unix_ms))
            continue;
        x = w->action == SCHED_CHARGE      ? -w->power_w
            : w->action == SCHED_DISCHARGE ? w->power_w
                                           : schedule_hold_soc_w(w, img);
        changed = 1;
    }
    if (img->grid_ok && isfinite(img->grid_w)) {
        /* the site without its batteries: what the grid would see at 0 W */
        double house = img->grid_w + procimg_sum_w(img, PROCIMG_BATTERY);
        for (size_t i = 0; i < s->n; i++) {
            const struct schedule_window *w = &s->w[i];
            if (w->action <= SCHED_HOLD_SOC || !schedule_window_active(w, unix_ms))
                continue;
            double y = w->action == SCHED_IMPORT_CAP ? fmax(x, house - w->power_w)
                                                     : fmin(x, house + w->power_w);
            changed |= y != x;
            x = y;
        }
    }
    if (!changed)
        return;
    decision_request(dm, DSRC_SCHEDULED, DECISION_SITE, x);
    decision_clamp(dm, DECISION_SITE, DC_SCHEDULE, asked, x);
}
