/* strmap: a string-keyed hash table of pointers (open addressing, linear probing).
 * The map copies and owns its keys; it never owns the values, which the caller frees.
 * Used for the inventory's id lookups and the session routing maps. Not thread-safe. */
#ifndef HEADEND_STRMAP_H
#define HEADEND_STRMAP_H

#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
void strmap_free(struct strmap *m);
/* Inserts or replaces; *old (may be NULL) receives the replaced value. 0 or -ENOMEM. */
int strmap_put(struct strmap *m, const char *key, void *value, void **old);
void *strmap_get(const struct strmap *m, const char *key);
/* Removes key; returns its value or NULL when absent. */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);
/* Calls fn for each entry in an unspecified order; fn must not modify the map. */
void strmap_each(const struct strmap *m, void (*fn)(const char *key, void *value, void *ctx),
                 void *ctx);

#endif
