/* idset: see idset.h. A linear scan of 256 short strings costs well under a microsecond per
 * setpoint, far below anything a headend sends; no hashing needed. */
#include "gateway/uplink/idset.h"

#include <errno.h>
#include <string.h>

void idset_init(struct idset *s)
{
    memset(s, 0, sizeof *s);
}

static int find(const struct idset *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->e[i].id, id))
            return (int)i;
    return -1;
}

int idset_add(struct idset *s, const char *id, int state, int *state_out)
{
    if (!id || !*id || strlen(id) >= IDSET_ID_LEN)
        return -EINVAL;
    int i = find(s, id);
    if (i >= 0) {
        if (state_out)
            *state_out = s->e[i].state;
        return 0;
    }
    memcpy(s->e[s->head].id, id, strlen(id) + 1);
    s->e[s->head].state = state;
    s->head = (s->head + 1) % IDSET_CAP;
    if (s->n < IDSET_CAP)
        s->n++;
    return 1;
}

int idset_get(const struct idset *s, const char *id)
{
    int i = find(s, id);
    return i < 0 ? -ENOENT : s->e[i].state;
}

int idset_set(struct idset *s, const char *id, int state)
{
    int i = find(s, id);
    if (i < 0)
        return -ENOENT;
    s->e[i].state = state;
    return 0;
}
