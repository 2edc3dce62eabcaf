/* profiles: the "profiles" section, input series by name: "series" (points in the file), "csv"
 * (a file next to the scenario), "clear_sky" (sun position and clouds), "tou" (the tariff's
 * time-of-use bands, "HH:MM" as caltime_parse_hhmm reads it) and "ev_sessions". The scenario
 * owns the profiles (and their arrays, freed by profile_free); assets and sites refer to them by
 * name through scn_get_profile_ref, which also checks the kind. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/caltime.h"
#include "common/duration.h"
#include "sim/scenario/sections.h"

static const char *const profile_kind_names[] = {"series", "clear_sky", "tou", "ev_sessions"};

static int get_interp_repeat(struct scn_ld *L, const cJSON *o, const char *path, struct profile *p)
{
    const char *s;
    int rc = scn_get_str(L, o, path, "interpolation", 0, &s);
    char b[SCN_PATH_MAX];
    if (rc)
        return rc;
    if (!s || strcmp(s, "linear") == 0)
        p->interp = INTERP_LINEAR;
    else if (strcmp(s, "step") == 0)
        p->interp = INTERP_STEP;
    else
        return scn_fail(L, scn_pkey(b, path, "interpolation"), scn_item(o, "interpolation"),
                        "must be \"linear\" or \"step\"");
    return scn_get_dur(L, o, path, "repeat", 0, 0, B_MIN | B_MINX, &p->period_ms);
}

/* With a repeat period, the points describe one period: they must lie in [0, period). */
static int check_period(struct scn_ld *L, const char *path, const struct profile *p)
{
    if (p->period_ms > 0 && (p->t_ms[0] < 0 || p->t_ms[p->n - 1] >= p->period_ms)) {
        char b[32];
        return scn_fail(L, path, NULL, "with \"repeat\": \"%s\" every point must lie in [0, %s)",
                        duration_format(p->period_ms, b, sizeof b), b);
    }
    return 0;
}

static int parse_series(struct scn_ld *L, const cJSON *o, const char *path, struct profile *p)
{
    static const char *const keys[] = {"type", "interpolation", "repeat", "points", NULL};
    char pp[SCN_PATH_MAX], ip[SCN_PATH_MAX];
    int rc;
    if ((rc = scn_check_keys(L, o, path, keys, NULL)) || (rc = get_interp_repeat(L, o, path, p)))
        return rc;
    const cJSON *pts = scn_item(o, "points");
    scn_pkey(pp, path, "points");
    if (!pts)
        return scn_fail(L, pp, NULL, "required key missing");
    if (!cJSON_IsArray(pts) || cJSON_GetArraySize(pts) < 1)
        return scn_fail(L, pp, pts, "must be an array of at least one [time, value] point");
    size_t n = (size_t)cJSON_GetArraySize(pts);
    p->t_ms = calloc(n, sizeof *p->t_ms);
    p->v = calloc(n, sizeof *p->v);
    if (!p->t_ms || !p->v)
        return -ENOMEM;
    int i = 0;
    for (const cJSON *pt = pts->child; pt; pt = pt->next, i++) {
        scn_pidx(ip, pp, i);
        const cJSON *t = cJSON_GetArrayItem(pt, 0), *v = cJSON_GetArrayItem(pt, 1);
        if (!cJSON_IsArray(pt) || cJSON_GetArraySize(pt) != 2)
            return scn_fail(L, ip, pt, "must be a [\"time\", value] pair");
        if (!cJSON_IsString(t) || duration_parse(t->valuestring, &p->t_ms[i]))
            return scn_fail(L, scn_pidx(ip, pp, i), t,
                            "time must be a duration from the start (\"6h\")");
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return scn_fail(L, ip, v, "value must be a finite number");
        p->v[i] = v->valuedouble;
        if (i > 0 && p->t_ms[i] <= p->t_ms[i - 1])
            return scn_fail(L, ip, t, "times must be strictly increasing");
    }
    p->n = n;
    p->kind = PROFILE_SERIES;
    return check_period(L, pp, p);
}

/* A CSV series made from records must cover the instants the models read it, [start, start +
 * duration - step]: outside its points it would hold its first or last value for the rest of
 * the run, which is how data stamped in the wrong zone once replayed a whole run on one value.
 * "extend" says what to do instead when that is wanted. */
static int check_coverage(struct scn_ld *L, const char *path, const char *file,
                          const struct profile *p)
{
    const struct scenario *s = L->s;
    int64_t first = p->t_ms[0], last = p->t_ms[p->n - 1], end = s->duration_ms - s->step_ms;
    if (first <= 0 && last >= end)
        return 0;
    char a[40], b[40], c[40], d[40], da[32], db[32];
    caltime_format(s->start_unix_ms + first, a, sizeof a);
    caltime_format(s->start_unix_ms + last, b, sizeof b);
    caltime_format(s->start_unix_ms, c, sizeof c);
    caltime_format(s->start_unix_ms + end, d, sizeof d);
    return scn_fail(L, path, NULL,
                    "%s covers %s to %s (%s%s to %s%s from start), the run reads it from %s to %s: "
                    "fix the times (or the scenario's start), or allow it with \"extend\": "
                    "\"hold\" or \"repeat\"",
                    file, a, b, first < 0 ? "-" : "",
                    duration_format(first < 0 ? -first : first, da, sizeof da), last < 0 ? "-" : "",
                    duration_format(last < 0 ? -last : last, db, sizeof db), c, d);
}

static int parse_csv(struct scn_ld *L, const cJSON *o, const char *path, struct profile *p)
{
    static const char *const keys[] = {"type",          "file",   "time_column", "value_column",
                                       "interpolation", "repeat", "time_format", "tz",
                                       "extend",        NULL};
    struct profile_csv_opts opts;
    const char *file, *extend;
    char fp[SCN_PATH_MAX], ep[SCN_PATH_MAX], full[1024], msg[600];
    int rc;
    if ((rc = scn_check_keys(L, o, path, keys, NULL)) || (rc = get_interp_repeat(L, o, path, p)) ||
        (rc = scn_get_str(L, o, path, "file", 1, &file)) ||
        (rc = scn_get_str(L, o, path, "time_column", 0, &opts.time_column)) ||
        (rc = scn_get_str(L, o, path, "value_column", 0, &opts.value_column)) ||
        (rc = scn_get_str(L, o, path, "time_format", 0, &opts.time_format)) ||
        (rc = scn_get_str(L, o, path, "tz", 0, &opts.tz)) ||
        (rc = scn_get_str(L, o, path, "extend", 0, &extend)))
        return rc;
    scn_pkey(fp, path, "file");
    if (!*file)
        return scn_fail(L, fp, scn_item(o, "file"), "must name a CSV file");
    if (extend && strcmp(extend, "hold") != 0 && strcmp(extend, "repeat") != 0)
        return scn_fail(L, scn_pkey(ep, path, "extend"), scn_item(o, "extend"),
                        "must be \"hold\" or \"repeat\"");
    if (extend && p->period_ms > 0)
        return scn_fail(L, scn_pkey(ep, path, "extend"), scn_item(o, "extend"),
                        "a series with \"repeat\" covers every instant already: drop one");
    if (file[0] == '/')
        snprintf(full, sizeof full, "%s", file);
    else
        snprintf(full, sizeof full, "%s/%s", L->dir, file);
    rc = profile_read_csv(p, full, &opts, msg, sizeof msg);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        scn_fail(L, fp, NULL, "%s", msg);
        return rc;
    }
    if (p->period_ms > 0)
        return check_period(L, fp, p);
    if (extend && strcmp(extend, "repeat") == 0)
        profile_repeat_points(p);
    else if (!extend)
        return check_coverage(L, fp, file, p);
    return 0;
}

static int parse_bands(struct scn_ld *L, const cJSON *arr, const char *path, struct tou_band **out,
                       size_t *n_out)
{
    static const char *const keys[] = {"from", "to", "price", NULL};
    char bp[SCN_PATH_MAX], kp[SCN_PATH_MAX];
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1)
        return scn_fail(L, path, arr, "must be an array of bands {\"from\", \"to\", \"price\"}");
    size_t n = (size_t)cJSON_GetArraySize(arr);
    struct tou_band *b = calloc(n, sizeof *b);
    if (!b)
        return -ENOMEM;
    *out = b;
    int i = 0, rc;
    for (const cJSON *o = arr->child; o; o = o->next, i++) {
        const char *from, *to;
        scn_pidx(bp, path, i);
        if ((rc = scn_need_object(L, o, bp)) || (rc = scn_check_keys(L, o, bp, keys, NULL)) ||
            (rc = scn_get_str(L, o, bp, "from", 1, &from)) ||
            (rc = scn_get_str(L, o, bp, "to", 1, &to)) ||
            (rc = scn_get_num(L, o, bp, "price", 0, 0, 0, B_REQ, &b[i].price)))
            return rc;
        if (caltime_parse_hhmm(from, 0, &b[i].from_min))
            return scn_fail(L, scn_pkey(kp, bp, "from"), scn_item(o, "from"), "must be \"HH:MM\"");
        if (caltime_parse_hhmm(to, 1, &b[i].to_min))
            return scn_fail(L, scn_pkey(kp, bp, "to"), scn_item(o, "to"),
                            "must be \"HH:MM\" or \"24:00\"");
        if (b[i].to_min <= b[i].from_min)
            return scn_fail(L, scn_pkey(kp, bp, "to"), scn_item(o, "to"), "must be after \"from\"");
        int expect = i == 0 ? 0 : b[i - 1].to_min;
        if (b[i].from_min != expect)
            return scn_fail(
                L, scn_pkey(kp, bp, "from"), scn_item(o, "from"),
                "bands must be sorted and contiguous from 00:00: expected \"%02d:%02d\"",
                expect / 60, expect % 60);
    }
    if (b[n - 1].to_min != 1440)
        return scn_fail(L, scn_pkey(kp, scn_pidx(bp, path, (int)n - 1), "to"),
                        scn_item(cJSON_GetArrayItem(arr, (int)n - 1), "to"),
                        "the last band must end at \"24:00\"");
    *n_out = n;
    return 0;
}

static int parse_tou(struct scn_ld *L, const cJSON *o, const char *path, struct profile *p)
{
    static const char *const keys[] = {"type", "weekday", "weekend", NULL};
    char b[SCN_PATH_MAX];
    int rc;
    p->kind = PROFILE_TOU;
    if ((rc = scn_check_keys(L, o, path, keys, NULL)))
        return rc;
    if (!scn_item(o, "weekday"))
        return scn_fail(L, scn_pkey(b, path, "weekday"), NULL, "required key missing");
    if ((rc = parse_bands(L, scn_item(o, "weekday"), scn_pkey(b, path, "weekday"), &p->weekday,
                          &p->n_weekday)))
        return rc;
    if (scn_item(o, "weekend"))
        return parse_bands(L, scn_item(o, "weekend"), scn_pkey(b, path, "weekend"), &p->weekend,
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

static int parse_clear_sky(struct scn_ld *L, const cJSON *o, const char *path, struct profile *p)
{
    static const char *const keys[] = {"type",   "latitude",     "longitude",
                                       "clouds", "cloud_events", NULL};
    static const char *const ckeys[] = {"mean_clear", "mean_cloudy", "cover_min", "cover_max",
                                        NULL};
    static const char *const ekeys[] = {"at", "duration", "cover", NULL};
    char b[SCN_PATH_MAX], ep[SCN_PATH_MAX];
    struct cloud_params gen;
    struct cloud_event *ev = NULL;
    size_t n_ev = 0;
    int rc;
    p->kind = PROFILE_CLEAR_SKY;
    if ((rc = scn_check_keys(L, o, path, keys, NULL)) ||
        (rc = scn_get_num(L, o, path, "latitude", 0, -90, 90, B_REQ | B_MIN | B_MAX,
                          &p->latitude_deg)) ||
        (rc = scn_get_num(L, o, path, "longitude", 0, -180, 180, B_REQ | B_MIN | B_MAX,
                          &p->longitude_deg)))
        return rc;
    const cJSON *c = scn_item(o, "clouds");
    if (c) {
        scn_pkey(b, path, "clouds");
        /* Spells shorter than a minute are beyond this model and would only cost memory. */
        if ((rc = scn_need_object(L, c, b)) || (rc = scn_check_keys(L, c, b, ckeys, NULL)) ||
            (rc =
                 scn_get_dur(L, c, b, "mean_clear", 0, 60000, B_REQ | B_MIN, &gen.mean_clear_ms)) ||
            (rc = scn_get_dur(L, c, b, "mean_cloudy", 0, 60000, B_REQ | B_MIN,
                              &gen.mean_cloudy_ms)) ||
            (rc = scn_get_num(L, c, b, "cover_min", 0.3, 0, 1, B_MIN | B_MAX, &gen.cover_min)) ||
            (rc = scn_get_num(L, c, b, "cover_max", 0.9, 0, 1, B_MIN | B_MAX, &gen.cover_max)))
            return rc;
        if (gen.cover_max < gen.cover_min)
            return scn_fail(L, scn_pkey(ep, b, "cover_max"), scn_item(c, "cover_max"),
                            "must be >= cover_min");
    }
    const cJSON *ce = scn_item(o, "cloud_events");
    if (ce) {
        scn_pkey(b, path, "cloud_events");
        if (!cJSON_IsArray(ce))
            return scn_fail(L, b, ce, "must be an array");
        n_ev = (size_t)cJSON_GetArraySize(ce);
        ev = calloc(n_ev ? n_ev : 1, sizeof *ev);
        if (!ev)
            return -ENOMEM;
        int i = 0;
        for (const cJSON *e = ce->child; e; e = e->next, i++) {
            int64_t len;
            scn_pidx(ep, b, i);
            if ((rc = scn_need_object(L, e, ep)) || (rc = scn_check_keys(L, e, ep, ekeys, NULL)) ||
                (rc = scn_get_dur(L, e, ep, "at", 0, 0, B_REQ, &ev[i].from_ms)) ||
                (rc = scn_get_dur(L, e, ep, "duration", 0, 0, B_REQ | B_MIN | B_MINX, &len)) ||
                (rc = scn_get_num(L, e, ep, "cover", 0, 0, 1, B_REQ | B_MIN | B_MAX, &ev[i].cover)))
                goto out;
            ev[i].to_ms = ev[i].from_ms + len;
        }
        /* Explicit events are the author's own: overlapping ones are a mistake, not a merge. */
        qsort(ev, n_ev, sizeof *ev, cloud_cmp_from);
        for (size_t k = 1; k < n_ev; k++)
            if (ev[k].from_ms < ev[k - 1].to_ms) {
                char t1[32];
                rc = scn_fail(L, b, NULL, "events overlap at %s",
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

static int parse_ev_sessions(struct scn_ld *L, const cJSON *o, const char *path, struct profile *p)
{
    static const char *const keys[] = {"type", "sessions", NULL};
    static const char *const skeys[] = {"id",           "arrive", "depart", "energy_kwh",
                                        "max_power_kw", "phases", NULL};
    char b[SCN_PATH_MAX], sp[SCN_PATH_MAX], kp[SCN_PATH_MAX];
    int rc;
    p->kind = PROFILE_EV_SESSIONS;
    if ((rc = scn_check_keys(L, o, path, keys, NULL)))
        return rc;
    const cJSON *a = scn_item(o, "sessions");
    scn_pkey(b, path, "sessions");
    if (!a)
        return scn_fail(L, b, NULL, "required key missing");
    if (!cJSON_IsArray(a))
        return scn_fail(L, b, a, "must be an array");
    size_t n = (size_t)cJSON_GetArraySize(a);
    p->sessions = calloc(n ? n : 1, sizeof *p->sessions);
    if (!p->sessions)
        return -ENOMEM;
    int i = 0;
    for (const cJSON *s = a->child; s; s = s->next, i++) {
        struct ev_session *e = &p->sessions[i];
        double phases;
        scn_pidx(sp, b, i);
        if ((rc = scn_need_object(L, s, sp)) || (rc = scn_check_keys(L, s, sp, skeys, NULL)) ||
            (rc = scn_get_id(L, s, sp, "id", e->id, sizeof e->id)) ||
            (rc = scn_get_dur(L, s, sp, "arrive", 0, 0, B_REQ, &e->arrive_ms)) ||
            (rc = scn_get_dur(L, s, sp, "depart", 0, 0, B_REQ, &e->depart_ms)) ||
            (rc = scn_get_num(L, s, sp, "energy_kwh", 0, 0, 0, B_REQ | B_MIN | B_MINX,
                              &e->energy_wh)) ||
            (rc = scn_get_num(L, s, sp, "max_power_kw", 0, 0, 0, B_REQ | B_MIN | B_MINX,
                              &e->max_power_w)) ||
            (rc = scn_get_num(L, s, sp, "phases", 3, 0, 0, B_1_3, &phases)))
            return rc;
        if (e->depart_ms <= e->arrive_ms)
            return scn_fail(L, scn_pkey(kp, sp, "depart"), scn_item(s, "depart"),
                            "must be after arrive");
        for (int k = 0; k < i; k++)
            if (strcmp(p->sessions[k].id, e->id) == 0)
                return scn_fail(L, scn_pkey(kp, sp, "id"), scn_item(s, "id"),
                                "duplicate session id");
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

int scn_parse_profiles(struct scn_ld *L, const cJSON *obj)
{
    struct scenario *s = L->s;
    char path[SCN_PATH_MAX], tp[SCN_PATH_MAX];
    int rc;
    if (!obj)
        return 0;
    if ((rc = scn_need_object(L, obj, "profiles")))
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
        scn_pkey(path, "profiles", o->string);
        if (!scn_valid_id(o->string, sizeof p->name))
            return scn_fail(L, path, NULL,
                            "profile names must match [A-Za-z0-9._-]+ and be shorter "
                            "than 64 characters");
        for (size_t k = 0; k < i; k++)
            if (strcmp(s->profiles[k].name, o->string) == 0)
                return scn_fail(L, "profiles", NULL, "duplicate key \"%s\"", o->string);
        snprintf(p->name, sizeof p->name, "%s", o->string);
        p->start_unix_ms = s->start_unix_ms;
        const char *type;
        if ((rc = scn_need_object(L, o, path)) || (rc = scn_get_str(L, o, path, "type", 1, &type)))
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
            rc = scn_fail(L, scn_pkey(tp, path, "type"), scn_item(o, "type"),
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

int scn_get_profile_ref(struct scn_ld *L, const cJSON *obj, const char *path, const char *key,
                        unsigned mask, int required, const struct profile **out)
{
    char p[SCN_PATH_MAX], want[64] = "";
    const char *name;
    int rc = scn_get_str(L, obj, path, key, required, &name);
    *out = NULL;
    if (rc || !name)
        return rc;
    scn_pkey(p, path, key);
    const struct profile *pr = scenario_profile(L->s, name);
    if (!pr)
        return scn_fail(L, p, scn_item(obj, key), "no profile \"%s\" in \"profiles\"", name);
    if (!(mask & PK(pr->kind))) {
        for (unsigned k = 0; k < 4; k++)
            if (mask & PK(k))
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s",
                         *want ? " or " : "", profile_kind_names[k]);
        return scn_fail(L, p, scn_item(obj, key), "profile \"%s\" is %s, expected %s", name,
                        profile_kind_names[pr->kind], want);
    }
    *out = pr;
    return 0;
}
