/* override: the --set overrides ("PATH=VALUE", see scenario_load), applied to the parsed
 * document before any validation, so that an overridden value is judged exactly like one
 * written in the file. A path is keys and [indices]: sites[0].assets[1].peak_kw. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim/scenario/sections.h"

/* One step of an override path: a key or an [index]. */
struct step {
    char key[128];
    int index; /* -1 for a key */
};

static int parse_override_path(const char *path, size_t len, struct step *st, size_t max, size_t *n)
{
    size_t i = 0, k = 0;
    while (i < len) {
        if (k == max)
            return -EINVAL;
        if (path[i] == '[') {
            char *end;
            long v = strtol(path + i + 1, &end, 10);
            if (end == path + i + 1 || *end != ']' || v < 0 || v > 1000000 ||
                (size_t)(end - path) >= len)
                return -EINVAL;
            st[k].index = (int)v;
            st[k].key[0] = '\0';
            k++;
            i = (size_t)(end - path) + 1;
            if (i < len && path[i] == '.') {
                i++;
                if (i == len)
                    return -EINVAL;
            }
            continue;
        }
        size_t j = i;
        while (j < len && path[j] != '.' && path[j] != '[')
            j++;
        if (j == i || j - i >= sizeof st[k].key)
            return -EINVAL;
        memcpy(st[k].key, path + i, j - i);
        st[k].key[j - i] = '\0';
        st[k].index = -1;
        k++;
        i = j;
        if (i < len && path[i] == '.') {
            i++;
            if (i == len)
                return -EINVAL;
        }
    }
    *n = k;
    return k ? 0 : -EINVAL;
}

/* Applies "PATH=VALUE" to the document. A missing key on an existing object is created (then
 * validation judges it); a path through a missing object or past an array's end is an error. */
int scn_apply_override(struct scn_ld *L, cJSON *root, const char *ov)
{
    const char *eq = strchr(ov, '=');
    struct step st[32];
    size_t n;
    if (!eq || parse_override_path(ov, (size_t)(eq - ov), st, 32, &n))
        return scn_fail(L, "", NULL,
                        "override \"%s\": expected PATH=VALUE with PATH like "
                        "sites[0].assets[1].peak_kw",
                        ov);
    cJSON *cur = root;
    for (size_t i = 0; i + 1 < n; i++) {
        cJSON *next;
        if (st[i].index >= 0) {
            if (!cJSON_IsArray(cur) || st[i].index >= cJSON_GetArraySize(cur))
                return scn_fail(L, "", NULL, "override \"%s\": no element [%d]", ov, st[i].index);
            next = cJSON_GetArrayItem(cur, st[i].index);
        } else {
            next = cJSON_IsObject(cur) ? cJSON_GetObjectItemCaseSensitive(cur, st[i].key) : NULL;
            if (!next)
                return scn_fail(L, "", NULL, "override \"%s\": no key \"%s\"", ov, st[i].key);
        }
        cur = next;
    }
    const struct step *last = &st[n - 1];
    if (last->index >= 0 ? (!cJSON_IsArray(cur) || last->index >= cJSON_GetArraySize(cur))
                         : !cJSON_IsObject(cur))
        return scn_fail(L, "", NULL, "override \"%s\": %s", ov,
                        last->index >= 0 ? "index out of range" : "parent is not an object");
    cJSON *v = cJSON_ParseWithOpts(eq + 1, NULL, 1);
    if (!v)
        v = cJSON_CreateString(eq + 1);
    if (!v)
        return -ENOMEM;
    int ok;
    if (last->index >= 0)
        ok = cJSON_ReplaceItemInArray(cur, last->index, v);
    else if (cJSON_GetObjectItemCaseSensitive(cur, last->key))
        ok = cJSON_ReplaceItemInObjectCaseSensitive(cur, last->key, v);
    else
        ok = cJSON_AddItemToObject(cur, last->key, v);
    if (!ok) {
        cJSON_Delete(v);
        return -ENOMEM;
    }
    return 0;
}
