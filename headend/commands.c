/* commands: see commands.h. A ring of records, looked up by a linear scan from the newest: a
 * GET of one command or an ack is rare next to telemetry, and the table is bounded. */
#include "headend/commands.h"

#include <errno.h>
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

size_t commands_expire(struct commands *c, int64_t now_ms)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++) {
        struct command_rec *r = &c->r[(c->head + i) % COMMANDS_MAX];
        if (!final(r->state) && r->expires_ms > 0 && now_ms > r->expires_ms) {
            set_state(r, DISPATCH_EXPIRED, "no final ack before it expired", now_ms);
            n++;
        }
    }
    return n;
}
