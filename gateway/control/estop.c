/* estop: see estop.h.
 *
 * Why persisted by the gateway and not only held by the headend: the stop must hold while the
 * stream is down, and a gateway restarted during an outage would otherwise come back running
 * its strategy with nobody able to reach it. Why a file that cannot be parsed engages the stop:
 * the file exists only while a stop holds, so its presence alone says "stopped". */
#include "gateway/control/estop.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/log.h"
#include "gateway/control/controller.h"
#include "gateway/control/statefile.h"

struct estop {
    struct controller *ctl;
    char state_dir[512];
    struct estop_state st;
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
};

/* one line to the caller's log callback (common/log.h) */
#define logf_(x, ...) log_to((x)->log, (x)->log_ctx, __VA_ARGS__)

struct estop *estop_new(struct controller *ctl, const char *state_dir,
                        void (*log)(void *ctx, const char *line), void *log_ctx)
{
    struct estop *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->ctl = ctl;
    e->log = log;
    e->log_ctx = log_ctx;
    snprintf(e->state_dir, sizeof e->state_dir, "%s", state_dir ? state_dir : "");
    return e;
}

void estop_free(struct estop *e)
{
    free(e);
}

const struct estop_state *estop_state(const struct estop *e)
{
    return &e->st;
}

static void copy_str(char *dst, size_t len, const cJSON *v)
{
    snprintf(dst, len, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static int persist(const struct estop *e)
{
    if (!e->st.active)
        return statefile_remove(e->state_dir, ESTOP_FILE);
    cJSON *doc = cJSON_CreateObject();
    if (!doc || !cJSON_AddBoolToObject(doc, "active", 1) ||
        !cJSON_AddStringToObject(doc, "id", e->st.id) ||
        !cJSON_AddStringToObject(doc, "reason", e->st.reason)) {
        cJSON_Delete(doc);
        return -ENOMEM;
    }
    char *text = cJSON_Print(doc);
    cJSON_Delete(doc);
    if (!text)
        return -ENOMEM;
    int rc = statefile_write(e->state_dir, ESTOP_FILE, text, strlen(text));
    cJSON_free(text);
    return rc;
}

static void log_change(struct estop *e, const char *source, const char *persisted)
{
    char id[LOG_VALUE_MAX], reason[LOG_VALUE_MAX];
    logf_(e, "event=estop state=%s id=%s reason=%s source=%s persisted=%s",
          e->st.active ? "engaged" : "released", log_escape(id, sizeof id, e->st.id),
          log_escape(reason, sizeof reason, e->st.reason), source, persisted);
}

int estop_start(struct estop *e)
{
    if (!e->state_dir[0])
        return 0;
    char *text = NULL;
    int rc = statefile_read(e->state_dir, ESTOP_FILE, &text);
    if (rc == -ENOENT)
        return 0;
    cJSON *doc = rc ? NULL : cJSON_Parse(text);
    free(text);
    e->st.active = 1;
    if (doc) {
        copy_str(e->st.id, sizeof e->st.id, cJSON_GetObjectItemCaseSensitive(doc, "id"));
        copy_str(e->st.reason, sizeof e->st.reason,
                 cJSON_GetObjectItemCaseSensitive(doc, "reason"));
    } else {
        char path[600];
        snprintf(e->st.reason, sizeof e->st.reason, "%s unreadable (%s): held",
                 statefile_path(e->state_dir, ESTOP_FILE, path, sizeof path),
                 rc ? strerror(-rc) : "not JSON");
    }
    cJSON_Delete(doc);
    controller_set_estop(e->ctl, 1);
    log_change(e, "persisted", "yes");
    return 1;
}

int estop_set(struct estop *e, int active, const char *id, const char *reason, const char *source)
{
    e->st.active = !!active;
    snprintf(e->st.id, sizeof e->st.id, "%s", id ? id : "");
    snprintf(e->st.reason, sizeof e->st.reason, "%s", reason ? reason : "");
    controller_set_estop(e->ctl, e->st.active);
    int rc = e->state_dir[0] ? persist(e) : 0;
    char what[96];
    snprintf(what, sizeof what, "%s", !e->state_dir[0] ? "no" : rc ? "failed" : "yes");
    if (rc)
        snprintf(what, sizeof what, "\"failed: %s\"", strerror(-rc));
    log_change(e, source ? source : "-", what);
    return rc;
}
