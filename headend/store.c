/* store: backend selection, the dispatch state names and the expiry step shared by every
 * backend. */
#include "headend/store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct {
    int state;
    const char *name;
} state_names[] = {
    {DISPATCH_QUEUED, "QUEUED"},   {DISPATCH_SENT, "SENT"},         {DISPATCH_RECEIVED, "RECEIVED"},
    {DISPATCH_APPLIED, "APPLIED"}, {DISPATCH_REJECTED, "REJECTED"}, {DISPATCH_EXPIRED, "EXPIRED"},
    {DISPATCH_FAILED, "FAILED"},
};

const char *dispatch_state_name(int state)
{
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (state_names[i].state == state)
            return state_names[i].name;
    return "UNKNOWN";
}

int dispatch_state_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (!strcmp(state_names[i].name, name))
            return state_names[i].state;
    return -EINVAL;
}

int dispatch_state_final(int state)
{
    return state == DISPATCH_APPLIED || state == DISPATCH_REJECTED || state == DISPATCH_EXPIRED ||
           state == DISPATCH_FAILED;
}

int store_expire_one(const struct store_dispatch *d, void *arg)
{
    struct store_expire_ctx *x = arg;
    int e = x->st->ops->dispatch_set_state(x->st, d->id, DISPATCH_EXPIRED,
                                           "ttl elapsed at the headend", x->now_ms, 0);
    if (e)
        return e;
    return x->cb ? x->cb(d, x->ctx) : 0;
}

int store_open(const char *location, struct store **out, char *err, size_t errlen)
{
    if (!strncmp(location, "postgres://", 11) || !strncmp(location, "postgresql://", 13))
        return store_pg_open(location, out, err, errlen);
    return store_sqlite_open(location, out, err, errlen);
}

void store_close(struct store *st)
{
    if (st)
        st->ops->close(st);
}
