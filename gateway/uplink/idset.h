/* idset: a bounded set of the most recently seen ids (setpoint ids), each with a small state,
 * so a setpoint delivered twice is applied once and answered with what became of it. When
 * full, the oldest id is forgotten. A plain value struct: whoever declares it owns it. */
#ifndef DERLOOP_IDSET_H
#define DERLOOP_IDSET_H

#include <stddef.h>

#define IDSET_CAP    256 /* ids remembered: many minutes of setpoints at any sane rate */
#define IDSET_ID_LEN 128

struct idset {
    size_t n, head; /* ring: head = the slot the next id takes */
    struct {
        char id[IDSET_ID_LEN];
        int state;
    } e[IDSET_CAP];
};

void idset_init(struct idset *s);

/* Adds id with state. Returns 1 when it was new, 0 when already there (its state is left
 * as it was; *state_out, when given, receives it), -EINVAL for an empty or too long id. */
int idset_add(struct idset *s, const char *id, int state, int *state_out);

/* The state of id, or -ENOENT. */
int idset_get(const struct idset *s, const char *id);

/* Sets the state of a known id; -ENOENT when it is not (or no longer) there. */
int idset_set(struct idset *s, const char *id, int state);

#endif
