/* scenario: the loader of scenario files (docs/scenario-format.md) and the owner of what it
 * loads. It reads the file, hashes it, applies --set overrides to the parsed document, then
 * validates the top level and hands each section to its parser (sections.h), which fills the
 * plain structs of scenario.h. Every error names the file, the JSON path and the offending
 * value; unknown keys are errors everywhere, because a misspelt key that silently falls back to
 * its default is the most expensive bug a scenario file can have. */
#include "sim/scenario/scenario.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/caltime.h"
#include "common/sha256.h"
#include "sim/scenario/sections.h"

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

static int syntax_error(struct scn_ld *L, const char *buf, size_t len, const char *at)
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

/* "field": the recorded series a run made from field records keeps beside it (der-sim import),
 * for reports to overlay. Only the shape is checked here: the CSV is read by its consumers. */
static int parse_field(struct scn_ld *L, const cJSON *f)
{
    static const char *const keys[] = {"csv", "columns", NULL};
    const char *csv;
    int rc;
    if (!f)
        return 0;
    if ((rc = scn_need_object(L, f, "field")) || (rc = scn_check_keys(L, f, "field", keys, NULL)) ||
        (rc = scn_get_str(L, f, "field", "csv", 1, &csv)))
        return rc;
    if (!*csv)
        return scn_fail(L, "field.csv", scn_item(f, "csv"), "must name a CSV file");
    const cJSON *cols = scn_item(f, "columns");
    if (!cols)
        return scn_fail(L, "field.columns", NULL, "required key missing");
    if (!cJSON_IsObject(cols) || !cols->child)
        return scn_fail(L, "field.columns", cols,
                        "must be an object of at least one series name -> CSV column");
    for (const cJSON *c = cols->child; c; c = c->next) {
        char p[SCN_PATH_MAX];
        scn_pkey(p, "field.columns", c->string);
        if (!scn_valid_id(c->string, SCN_ID_MAX))
            return scn_fail(L, p, NULL, "series names must match [A-Za-z0-9._-]+");
        if (!cJSON_IsString(c) || !*c->valuestring)
            return scn_fail(L, p, c, "must be a CSV column name");
    }
    if (csv[0] == '/')
        snprintf(L->s->field_csv, sizeof L->s->field_csv, "%s", csv);
    else
        snprintf(L->s->field_csv, sizeof L->s->field_csv, "%s/%s", L->dir, csv);
    L->s->field = cJSON_Duplicate(f, 1);
    return L->s->field ? 0 : -ENOMEM;
}

/* "timezone": an IANA zone for the clock-time axes of reports (plots, report.html). Only the
 * name and the zone's UTC offset at the start are kept: the run itself stays in UTC (KPIs,
 * outputs, digest), and a run across a daylight-saving change keeps the start's offset (the
 * axis label says which). The zone file is read once here, a loader. */
static int parse_timezone(struct scn_ld *L, const cJSON *root)
{
    const cJSON *tz = scn_item(root, "timezone");
    if (!tz)
        return 0;
    struct caltime_zone z;
    int rc = cJSON_IsString(tz) ? caltime_zone_open(&z, tz->valuestring) : -EINVAL;
    if (rc)
        return scn_fail(L, "timezone", tz,
                        rc == -ENOENT ? "no such zone in the system's zoneinfo"
                                      : "must be an IANA zone name like \"Europe/Berlin\"");
    time_t t0 = (time_t)(L->s->start_unix_ms / 1000);
    struct tm tm;
    long off = localtime_r(&t0, &tm) ? tm.tm_gmtoff : 0;
    caltime_zone_close(&z);
    snprintf(L->s->timezone, sizeof L->s->timezone, "%s", tz->valuestring);
    L->s->tz_offset_s = (int32_t)off;
    return 0;
}

static int parse_top(struct scn_ld *L, const cJSON *root)
{
    static const char *const keys[] = {
        "name",    "description", "seed",   "start",   "duration", "step",     "profiles", "sites",
        "gateway", "events",      "expect", "headend", "field",    "forecast", "timezone", NULL};
    struct scenario *s = L->s;
    const char *desc, *start;
    double seed;
    int rc;
    if ((rc = scn_need_object(L, root, "")) || (rc = scn_check_keys(L, root, "", keys, NULL)) ||
        (rc = scn_get_id(L, root, "", "name", s->name, sizeof s->name)) ||
        (rc = scn_get_str(L, root, "", "description", 0, &desc)) ||
        (rc = scn_get_num(L, root, "", "seed", 0, 0, 0, B_REQ, &seed)) ||
        (rc = scn_get_str(L, root, "", "start", 1, &start)))
        return rc;
    if (desc && strlen(desc) >= sizeof s->description)
        return scn_fail(L, "description", NULL, "must be shorter than %zu characters",
                        sizeof s->description);
    snprintf(s->description, sizeof s->description, "%s", desc ? desc : "");
    /* 2^53: the largest integer a JSON number carries exactly in a double. */
    if (seed < 0 || seed != floor(seed) || seed > 9007199254740992.0)
        return scn_fail(L, "seed", scn_item(root, "seed"), "must be an integer in [0, 2^53]");
    s->seed = (uint64_t)seed;
    if (caltime_parse(start, &s->start_unix_ms))
        return scn_fail(L, "start", scn_item(root, "start"),
                        "must be an ISO 8601 UTC instant like \"2026-06-21T00:00:00Z\"");
    if ((rc =
             scn_get_dur(L, root, "", "duration", 0, 0, B_REQ | B_MIN | B_MINX, &s->duration_ms)) ||
        (rc = scn_get_dur(L, root, "", "step", 0, 1, B_REQ | B_MIN, &s->step_ms)))
        return rc;
    if (s->duration_ms % s->step_ms)
        return scn_fail(L, "duration", scn_item(root, "duration"),
                        "must be a multiple of step (%s)", scn_item(root, "step")->valuestring);
    const cJSON *gw = scn_item(root, "gateway"), *ex = scn_item(root, "expect"),
                *he = scn_item(root, "headend");
    if ((gw && (rc = scn_need_object(L, gw, "gateway"))) ||
        (ex && (rc = scn_need_object(L, ex, "expect"))) ||
        (he && (rc = scn_need_object(L, he, "headend"))))
        return rc;
    static const char *const no_keys[] = {NULL}; /* "headend": {} has no settings yet */
    if (he && (rc = scn_check_keys(L, he, "headend", no_keys, NULL)))
        return rc;
    if ((rc = parse_field(L, scn_item(root, "field"))) ||
        (rc = scn_parse_forecast(L, scn_item(root, "forecast"))) || (rc = parse_timezone(L, root)))
        return rc;
    if ((rc = scn_parse_profiles(L, scn_item(root, "profiles"))) ||
        (rc = scn_parse_sites(L, scn_item(root, "sites"))) ||
        (rc = scn_parse_events(L, scn_item(root, "events"), scn_item(root, "sites"))))
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
    struct scn_ld L = {.file = path, .err = err, .errlen = errlen};
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
        rc = scn_fail(&L, "", NULL, "path too long");
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
        if ((rc = scn_apply_override(&L, s->root, overrides[i])))
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
    cJSON_Delete(s->field);
    cJSON_Delete(s->root);
    free(s);
}
