/* commands: see commands.h. A ring of records, looked up by a linear scan from the newest: a
 * GET of one command or an ack is rare next to telemetry, and the table is bounded. */
#include "headend/commands.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct commands {
    struct command_rec *r; /* COMMANDS_MAX */
    size_t head, n;        /* ring: r[(head + i) % MAX], oldest first */
    uint64_t next;
};

/* The commands of docs/operations.md and whether each takes a value (W or degC). */
static const struct {
    const char *name;
    int value;
} names[] = {
    {"start", 0},  {"stop", 0},      {"reset", 0},           {"set_output", 1},
    {"charge", 1}, {"discharge", 1}, {"set_temperature", 1},
};

int commands_takes_value(const char *name)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (name && !strcmp(name, names[i].name))
            return names[i].value;
    return -1;
}

const char *commands_names(void)
{
    return "start, stop, reset, set_output, charge, discharge, set_temperature";
}

struct commands *commands_new(void)
{
    struct commands *c = calloc(1, sizeof *c);
    if (c && !(c->r = calloc(COMMANDS_MAX, sizeof *c->r))) {
        free(c);
        return NULL;
    }
    return c;
}

void commands_free(struct commands *c)
{
    if (c)
        free(c->r);
    free(c);
}

struct command_rec *commands_add(struct commands *c, int64_t now_ms)
{
    if (c->n == COMMANDS_MAX) {
        c->head = (c->head + 1) % COMMANDS_MAX;
        c->n--;
    }
    struct command_rec *r = &c->r[(c->head + c->n++) % COMMANDS_MAX];
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "cmd-%lld-%llu", (long long)now_ms,
             (unsigned long long)++c->next);
    r->created_ms = r->updated_ms = now_ms;
    r->state = DISPATCH_QUEUED;
    return r;
}

struct command_rec *commands_get(struct commands *c, const char *id)
{
    for (size_t i = c->n; i-- > 0;) {
        struct command_rec *r = &c->r[(c->head + i) % COMMANDS_MAX];
        if (!strcmp(r->id, id))
            return r;
    }
    return NULL;
}

static int final(int state)
{
    return state == DISPATCH_APPLIED || state == DISPATCH_REJECTED || state == DISPATCH_EXPIRED ||
           state == DISPATCH_FAILED;
}

static void set_state(struct command_rec *r, int state, const char *detail, int64_t now_ms)
{
    r->state = state;
    r->updated_ms = now_ms;
    snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "");
    if (r->n_acks < COMMAND_ACKS_MAX) {
        struct command_ack *a = &r->acks[r->n_acks++];
        a->state = state;
        a->at_ms = now_ms;
        snprintf(a->detail, sizeof a->detail, "%s", r->detail);
    }
}

int commands_ack(struct commands *c, const char *id, int state, const char *detail, int64_t now_ms)
{
    struct command_rec *r = commands_get(c, id);
    if (!r)
        return -ENOENT;
    if (!final(r->state)) /* a late RECEIVED after APPLIED changes nothing */
        set_state(r, state, detail, now_ms);
    return 0;
}

size_t commands_expire(struct commands *c, int64_t now_ms,
                       void (*each)(void *ctx, const struct command_rec *r), void *ctx)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++) {
        struct command_rec *r = &c->r[(c->head + i) % COMMANDS_MAX];
        if (!final(r->state) && r->expires_ms > 0 && now_ms > r->expires_ms) {
            set_state(r, DISPATCH_EXPIRED, "no final ack before it expired", now_ms);
            n++;
            if (each)
                each(ctx, r);
        }
    }
    return n;
}

struct command_rec *commands_restore(struct commands *c, const struct command_rec *r)
{
    struct command_rec *have = commands_get(c, r->id);
    if (have)
        return have;
    if (c->n == COMMANDS_MAX) {
        c->head = (c->head + 1) % COMMANDS_MAX;
        c->n--;
    }
    struct command_rec *n = &c->r[(c->head + c->n++) % COMMANDS_MAX];
    *n = *r;
    return n;
}

cJSON *command_rec_json(const struct command_rec *c, int with_session)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "command_id", c->id);
    cJSON_AddStringToObject(o, "state", dispatch_state_name(c->state));
    cJSON_AddStringToObject(o, "detail", c->detail);
    cJSON_AddStringToObject(o, "asset_id", c->asset_id);
    cJSON_AddStringToObject(o, "site_id", c->site_id);
    cJSON_AddStringToObject(o, "gateway_id", c->gateway_id);
    cJSON_AddStringToObject(o, "command", c->command);
    if (isfinite(c->value))
        cJSON_AddNumberToObject(o, "value", c->value);
    else
        cJSON_AddNullToObject(o, "value");
    cJSON_AddNumberToObject(o, "created_ms", (double)c->created_ms);
    cJSON_AddNumberToObject(o, "expires_ms", (double)c->expires_ms);
    cJSON_AddNumberToObject(o, "updated_ms", (double)c->updated_ms);
    cJSON_AddStringToObject(o, "requested_by", c->requested_by);
    cJSON *acks = cJSON_AddArrayToObject(o, "acks");
    for (size_t i = 0; i < c->n_acks; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "state", dispatch_state_name(c->acks[i].state));
        cJSON_AddStringToObject(a, "detail", c->acks[i].detail);
        cJSON_AddNumberToObject(a, "at_ms", (double)c->acks[i].at_ms);
        cJSON_AddItemToArray(acks, a);
    }
    if (with_session)
        cJSON_AddNumberToObject(o, "session_id", (double)c->session_id);
    return o;
}

static void get_str(const cJSON *o, const char *k, char *dst, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    snprintf(dst, len, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static int64_t get_ms(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

int command_rec_from_json(const cJSON *o, struct command_rec *out)
{
    memset(out, 0, sizeof *out);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "state");
    if (!cJSON_IsString(st) || (out->state = dispatch_state_parse(st->valuestring)) < 0)
        return -EINVAL;
    get_str(o, "command_id", out->id, sizeof out->id);
    if (!out->id[0])
        return -EINVAL;
    get_str(o, "detail", out->detail, sizeof out->detail);
    get_str(o, "asset_id", out->asset_id, sizeof out->asset_id);
    get_str(o, "site_id", out->site_id, sizeof out->site_id);
    get_str(o, "gateway_id", out->gateway_id, sizeof out->gateway_id);
    get_str(o, "command", out->command, sizeof out->command);
    get_str(o, "requested_by", out->requested_by, sizeof out->requested_by);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value");
    out->value = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    out->created_ms = get_ms(o, "created_ms");
    out->expires_ms = get_ms(o, "expires_ms");
    out->updated_ms = get_ms(o, "updated_ms");
    out->session_id = get_ms(o, "session_id");
    const cJSON *acks = cJSON_GetObjectItemCaseSensitive(o, "acks");
    const cJSON *a;
    cJSON_ArrayForEach(a, acks)
    {
        if (out->n_acks == COMMAND_ACKS_MAX)
            break;
        struct command_ack *k = &out->acks[out->n_acks];
        const cJSON *as = cJSON_GetObjectItemCaseSensitive(a, "state");
        if (!cJSON_IsString(as) || (k->state = dispatch_state_parse(as->valuestring)) < 0)
            continue;
        get_str(a, "detail", k->detail, sizeof k->detail);
        k->at_ms = get_ms(a, "at_ms");
        out->n_acks++;
    }
    return 0;
}
