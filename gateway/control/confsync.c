/* confsync: see confsync.h.
 *
 * Why a merge of JSON documents and not of parsed structs: the desired configuration must be
 * checked by exactly the code that checks a local file (siteconf for the shapes, the
 * strategies' and safety's parameter tables through controller_policy_new), so the merged
 * document goes through siteconf_parse like any file. The headend runs the same function
 * (confsync_check) over a skeleton site, so a PUT it accepts is one the gateway accepts,
 * except for a reason only a real site can give (there is none today: strategies validate
 * their parameters without looking at the devices). */
#include "gateway/control/confsync.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/log.h"
#include "gateway/control/controller.h"
#include "gateway/control/siteconf.h"
#include "gateway/control/statefile.h"

/* The sections a desired configuration may hold, and those the local file alone decides. */
static const char *const desired_keys[] = {"strategy", "params",    "constraints",
                                           "safety",   "schedules", NULL};
/* What a reload cannot apply to a running controller (it was built from them): compared, to
 * say what a reload left for the next start. "description" changes nothing. */
static const char *const restart_keys[] = {
    "site_id", "gateway_id", "poll_period", "stale_after",   "devices",
    "uplink",  "start",      "tariff",      "ev_departures", NULL};

#define CONFSYNC_VERSION_MAX (UINT64_C(1) << 53) /* exact in a JSON number (a double) */

/* A site with no section of its own, for the headend's check: one grid meter, never polled. */
static const char skeleton[] =
    "{\"site_id\":\"check\",\"devices\":[{\"asset_id\":\"meter\",\"type\":\"meter\","
    "\"role\":\"grid\",\"host\":\"127.0.0.1\",\"port\":1,\"unit_id\":1}]}";

struct confsync {
    struct controller *ctl;
    char path[512];
    char state_dir[512];
    cJSON *file;    /* the local file as last applied */
    cJSON *desired; /* the pushed configuration running, NULL = none */
    uint64_t version;
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
};

/* one line to the caller's log callback (common/log.h) */
#define logf_(x, ...) log_to((x)->log, (x)->log_ctx, __VA_ARGS__)

/* A message inside a quoted log value: its double quotes become single ones. */
static const char *quoted(char *buf, size_t len, const char *s)
{
    snprintf(buf, len, "%s", s);
    for (char *p = buf; *p; p++)
        if (*p == '"' || *p == '\n')
            *p = '\'';
        else if ((unsigned char)*p < ' ' || *p == 0x7f) /* a pushed \r or ESC (a key, a name) */
            *p = '?';
    return buf;
}

static int fail(char *err, size_t errlen, const char *origin, const char *field, const cJSON *got,
                const char *msg)
{
    char *v = got ? cJSON_PrintUnformatted(got) : NULL;
    snprintf(err, errlen, "%s: %s: %s%s%.80s", origin, field, msg, v ? ", got " : "", v ? v : "");
    cJSON_free(v);
    return -EINVAL;
}

/* A key given twice in some object of v, or NULL. cJSON keeps both and reads the first, while
 * other readers of the stored document (the operator's tools) take the last: refused. */
static const char *dup_key(const cJSON *v)
{
    for (const cJSON *a = v->child; a; a = a->next) {
        for (const cJSON *b = a->next; cJSON_IsObject(v) && b; b = b->next)
            if (!strcmp(a->string, b->string))
                return a->string;
        const char *d = dup_key(a);
        if (d)
            return d;
    }
    return NULL;
}

/* The desired document's own rules (the sections' contents are siteconf's and the policy's). */
static int check_desired(const cJSON *d, const char *origin, char *err, size_t errlen)
{
    if (!cJSON_IsObject(d))
        return fail(err, errlen, origin, "(root)", NULL, "must be a JSON object");
    const char *dk = dup_key(d);
    if (dk)
        return fail(err, errlen, origin, dk, NULL, "key given twice");
    for (const cJSON *it = d->child; it; it = it->next) {
        int known = 0;
        for (size_t i = 0; desired_keys[i]; i++)
            known |= !strcmp(it->string, desired_keys[i]);
        if (!known)
            return fail(err, errlen, origin, it->string, NULL,
                        "unknown key (strategy, params, constraints, safety, schedules)");
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(d, "strategy");
    if (!cJSON_IsString(s) || !s->valuestring[0])
        return fail(err, errlen, origin, "strategy", s, "required: a strategy name");
    return 0;
}

/* base with the desired sections laid over it (a new document the caller frees). */
static cJSON *compose(const cJSON *base, const cJSON *desired)
{
    cJSON *out = cJSON_Duplicate(base, 1);
    if (!out || !desired)
        return out;
    static const char *const replaced[] = {"strategy", "params", "constraints"};
    for (size_t i = 0; i < 3; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(out, replaced[i]);
    for (size_t i = 0; desired_keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(desired, desired_keys[i]);
        if (!v)
            continue;
        cJSON_DeleteItemFromObjectCaseSensitive(out, desired_keys[i]);
        cJSON_AddItemToObject(out, desired_keys[i], cJSON_Duplicate(v, 1));
    }
    return out;
}

/* The policy of a whole document, through the same checks as a file at start. */
static struct controller_policy *build(const cJSON *root, const char *origin, char *err,
                                       size_t errlen)
{
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    if (!text) {
        snprintf(err, errlen, "%s: out of memory", origin);
        return NULL;
    }
    struct siteconf *sc = NULL;
    struct controller_policy *p = NULL;
    if (siteconf_parse(text, origin, &sc, err, errlen) == 0)
        p = controller_policy_new(sc, err, errlen);
    siteconf_free(sc);
    cJSON_free(text);
    return p;
}

static cJSON *parse_json(const char *json, const char *origin, char *err, size_t errlen)
{
    const char *end = NULL;
    cJSON *d = json ? cJSON_ParseWithOpts(json, &end, 1) : NULL;
    if (!d)
        snprintf(err, errlen, "%s: invalid JSON near byte %ld", origin,
                 json && end ? (long)(end - json) : 0L);
    return d;
}

int confsync_check(const char *json, char *err, size_t errlen, char *field, size_t fieldlen)
{
    static const char origin[] = "config";
    if (fieldlen)
        field[0] = '\0';
    cJSON *d = parse_json(json, origin, err, errlen);
    if (!d)
        return -EINVAL;
    int rc = check_desired(d, origin, err, errlen);
    if (!rc) {
        cJSON *base = cJSON_Parse(skeleton);
        cJSON *root = base ? compose(base, d) : NULL;
        struct controller_policy *p = build(root, origin, err, errlen);
        rc = p ? 0 : -EINVAL;
        controller_policy_free(p);
        cJSON_Delete(root);
        cJSON_Delete(base);
    }
    cJSON_Delete(d);
    /* "config: FIELD: message": the field is what the caller shows apart */
    const char *f = rc && !strncmp(err, "config: ", 8) ? err + 8 : NULL;
    const char *e = f ? strstr(f, ": ") : NULL;
    if (e && fieldlen)
        snprintf(field, fieldlen, "%.*s", (int)(e - f), f);
    return rc;
}

struct confsync *confsync_new_json(struct controller *ctl, const cJSON *file, const char *origin,
                                   void (*log)(void *ctx, const char *line), void *log_ctx)
{
    struct confsync *cs = file ? calloc(1, sizeof *cs) : NULL;
    if (!cs)
        return NULL;
    cs->ctl = ctl;
    cs->log = log;
    cs->log_ctx = log_ctx;
    snprintf(cs->path, sizeof cs->path, "%s", origin);
    cs->file = cJSON_Duplicate(file, 1);
    if (!cs->file) {
        free(cs);
        return NULL;
    }
    return cs;
}

struct confsync *confsync_new(struct controller *ctl, const char *path, const char *state_dir,
                              void (*log)(void *ctx, const char *line), void *log_ctx)
{
    struct siteconf *sc = NULL;
    char err[512];
    if (siteconf_load_file(path, &sc, err, sizeof err) != 0)
        return NULL;
    struct confsync *cs = confsync_new_json(ctl, sc->root, path, log, log_ctx);
    siteconf_free(sc);
    if (cs)
        snprintf(cs->state_dir, sizeof cs->state_dir, "%s", state_dir ? state_dir : "");
    return cs;
}

void confsync_free(struct confsync *cs)
{
    if (!cs)
        return;
    cJSON_Delete(cs->file);
    cJSON_Delete(cs->desired);
    free(cs);
}

uint64_t confsync_version(const struct confsync *cs)
{
    return cs ? cs->version : 0;
}

/* Validates file + desired as one document and, when it passes, runs it from the next cycle.
 * Nothing changes on an error. */
static int apply(struct confsync *cs, const cJSON *file, const cJSON *desired, const char *origin,
                 char *err, size_t errlen)
{
    int rc = desired ? check_desired(desired, origin, err, errlen) : 0;
    if (rc)
        return rc;
    cJSON *root = compose(file, desired);
    struct controller_policy *p = build(root, origin, err, errlen);
    cJSON_Delete(root);
    if (!p)
        return -EINVAL;
    controller_set_policy(cs->ctl, p);
    return 0;
}

/* The document persisted: {version, config}. */
static int persist(const struct confsync *cs, uint64_t version, const cJSON *desired)
{
    cJSON *doc = cJSON_CreateObject();
    if (!doc)
        return -ENOMEM;
    cJSON_AddNumberToObject(doc, "version", (double)version);
    cJSON_AddItemToObject(doc, "config", cJSON_Duplicate(desired, 1));
    char *text = cJSON_Print(doc);
    cJSON_Delete(doc);
    if (!text)
        return -ENOMEM;
    int rc = statefile_write(cs->state_dir, CONFSYNC_FILE, text, strlen(text));
    cJSON_free(text);
    return rc;
}

uint64_t confsync_start(struct confsync *cs)
{
    if (!cs->state_dir[0])
        return 0;
    char path[600], err[1024], q[1024];
    statefile_path(cs->state_dir, CONFSYNC_FILE, path, sizeof path);
    char *text = NULL;
    int rrc = statefile_read(cs->state_dir, CONFSYNC_FILE, &text);
    if (rrc == -ENOENT)
        return 0; /* nothing pushed yet */
    if (rrc) {    /* there but unreadable: it was taken silently for none */
        logf_(cs, "event=config_rejected source=persisted file=%s strategy=%s reason=\"%s\"", path,
              controller_strategy(cs->ctl), strerror(-rrc));
        return 0;
    }
    cJSON *doc = text[0] ? parse_json(text, path, err, sizeof err) : NULL;
    if (!text[0])
        snprintf(err, sizeof err, "%s: empty", path);
    free(text);
    const cJSON *v = doc ? cJSON_GetObjectItemCaseSensitive(doc, "version") : NULL;
    const cJSON *c = doc ? cJSON_GetObjectItemCaseSensitive(doc, "config") : NULL;
    int rc = doc ? 0 : -EINVAL;
    /* a whole number a double holds exactly: 1e300 was cast to uint64 (undefined; it ran as
     * version 0) and 1.5 ran as 1 */
    if (!rc && (!cJSON_IsNumber(v) ||
                !(v->valuedouble >= 1 && v->valuedouble <= (double)CONFSYNC_VERSION_MAX) ||
                v->valuedouble != (double)(uint64_t)v->valuedouble))
        rc = fail(err, sizeof err, path, "version", v, "must be a whole number in 1..2^53");
    /* without it the gateway reported the version as running while it ran the file's policy */
    if (!rc && !cJSON_IsObject(c))
        rc = fail(err, sizeof err, path, "config", c, "required: the pushed configuration");
    if (!rc)
        rc = apply(cs, cs->file, c, path, err, sizeof err);
    if (rc) {
        logf_(cs, "event=config_rejected source=persisted file=%s strategy=%s reason=\"%s\"", path,
              controller_strategy(cs->ctl), quoted(q, sizeof q, err));
    } else {
        cs->version = (uint64_t)v->valuedouble;
        cs->desired = cJSON_Duplicate(c, 1);
        logf_(cs, "event=config_loaded source=persisted file=%s version=%llu strategy=%s", path,
              (unsigned long long)cs->version, controller_strategy(cs->ctl));
    }
    cJSON_Delete(doc);
    return cs->version;
}

int confsync_push(struct confsync *cs, uint64_t version, const char *json, char *err, size_t errlen)
{
    char origin[64], q[512];
    snprintf(origin, sizeof origin, "pushed config v%llu", (unsigned long long)version);
    if (version == cs->version && cs->desired) {
        logf_(cs, "event=config_push version=%llu result=running reason=\"already running\"",
              (unsigned long long)version);
        return 0;
    }
    /* persisted as a JSON number and read back only in 1..2^53 (confsync_start): version 0 and
     * 2^64-1 were applied here, then refused at the next start */
    int bad = version < 1 || version > CONFSYNC_VERSION_MAX;
    if (bad)
        snprintf(err, errlen, "%s: version must be in 1..2^53", origin);
    cJSON *d = bad ? NULL : parse_json(json, origin, err, errlen);
    int rc = d ? apply(cs, cs->file, d, origin, err, errlen) : -EINVAL;
    if (rc) {
        logf_(cs,
              "event=config_rejected source=headend version=%llu running=%llu strategy=%s "
              "reason=\"%s\"",
              (unsigned long long)version, (unsigned long long)cs->version,
              controller_strategy(cs->ctl), quoted(q, sizeof q, err));
        cJSON_Delete(d);
        return rc;
    }
    cJSON_Delete(cs->desired);
    cs->desired = d;
    cs->version = version;
    int prc = cs->state_dir[0] ? persist(cs, version, d) : 0;
    logf_(cs, "event=config_applied source=headend version=%llu strategy=%s persisted=%s%s%s",
          (unsigned long long)version, controller_strategy(cs->ctl),
          !cs->state_dir[0] ? "no (no uplink.spool_dir)"
          : prc             ? "failed"
                            : "yes",
          prc ? " reason=" : "", prc ? strerror(-prc) : "");
    return 0;
}

int confsync_reload(struct confsync *cs, char *err, size_t errlen)
{
    char q[512];
    struct siteconf *sc = NULL;
    int rc = siteconf_load_file(cs->path, &sc, err, errlen);
    cJSON *file = rc ? NULL : cJSON_Duplicate(sc->root, 1);
    siteconf_free(sc);
    if (!rc && !file) {
        snprintf(err, errlen, "%s: out of memory", cs->path);
        rc = -ENOMEM;
    }
    if (!rc)
        rc = apply(cs, file, cs->desired, cs->path, err, errlen);
    if (rc) {
        logf_(cs, "event=config_reload result=kept file=%s strategy=%s reason=\"%s\"", cs->path,
              controller_strategy(cs->ctl), quoted(q, sizeof q, err));
        cJSON_Delete(file);
        return rc;
    }
    char later[256] = "";
    size_t pos = 0;
    for (size_t i = 0; restart_keys[i]; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(cs->file, restart_keys[i]);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(file, restart_keys[i]);
        if ((a || b) && !(a && b && cJSON_Compare(a, b, 1)) && pos < sizeof later)
            pos += (size_t)snprintf(later + pos, sizeof later - pos, "%s%s", pos ? "," : "",
                                    restart_keys[i]);
    }
    cJSON_Delete(cs->file);
    cs->file = file;
    logf_(cs, "event=config_reload result=applied file=%s strategy=%s%s version=%llu%s%s%s",
          cs->path, controller_strategy(cs->ctl),
          cs->desired ? " note=\"the pushed configuration's sections win over the file's\"" : "",
          (unsigned long long)cs->version, later[0] ? " restart_needed=" : "", later,
          later[0] ? " reason=\"these sections apply at the next start\"" : "");
    return 0;
}
