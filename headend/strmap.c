/* strmap: open addressing with linear probing and backward-shift deletion (no tombstones),
 * so a table that sees many connects and disconnects never degrades. The table doubles at
 * 50% load; FNV-1a is enough for ids we choose ourselves. */
#include "headend/strmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct slot {
    char *key;
    void *value;
};

struct strmap {
    struct slot *slots;
    size_t cap; /* a power of two */
    size_t count;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

struct strmap *strmap_new(void)
{
    struct strmap *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->cap = 16;
    m->slots = calloc(m->cap, sizeof(*m->slots));
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

void strmap_free(struct strmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    free(m);
}

static size_t find(const struct strmap *m, const char *key)
{
    size_t i = hash(key) & (m->cap - 1);
    while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int grow(struct strmap *m)
{
    struct strmap n = {.cap = m->cap * 2, .count = m->count};
    n.slots = calloc(n.cap, sizeof(*n.slots));
    if (!n.slots)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key)
            n.slots[find(&n, m->slots[i].key)] = m->slots[i];
    }
    free(m->slots);
    *m = n;
    return 0;
}

int strmap_put(struct strmap *m, const char *key, void *value, void **old)
{
    if (old)
        *old = NULL;
    if ((m->count + 1) * 2 > m->cap && grow(m) < 0)
        return -ENOMEM;
    size_t i = find(m, key);
    if (m->slots[i].key) {
        if (old)
            *old = m->slots[i].value;
        m->slots[i].value = value;
        return 0;
    }
    char *k = strdup(key);
    if (!k)
        return -ENOMEM;
    m->slots[i].key = k;
    m->slots[i].value = value;
    m->count++;
    return 0;
}

void *strmap_get(const struct strmap *m, const char *key)
{
    size_t i = find(m, key);
    return m->slots[i].key ? m->slots[i].value : NULL;
}

void *strmap_del(struct strmap *m, const char *key)
{
    size_t i = find(m, key);
    if (!m->slots[i].key)
        return NULL;
    void *v = m->slots[i].value;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->count--;
    /* Backward shift: move later members of the probe run into the hole when their home
     * slot is at or before it, so lookups never stop early at an empty slot. */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & (m->cap - 1);
        if (!m->slots[j].key)
            break;
        size_t home = hash(m->slots[j].key) & (m->cap - 1);
        if (((j - home) & (m->cap - 1)) >= ((j - hole) & (m->cap - 1))) {
            m->slots[hole] = m->slots[j];
            m->slots[j].key = NULL;
            m->slots[j].value = NULL;
            hole = j;
        }
    }
    return v;
}

size_t strmap_count(const struct strmap *m)
{
    return m->count;
}

void strmap_each(const struct strmap *m, void (*fn)(const char *, void *, void *), void *ctx)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            fn(m->slots[i].key, m->slots[i].value, ctx);
}
