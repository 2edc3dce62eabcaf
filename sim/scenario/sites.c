/* sites: the "sites" array. Each file site is parsed once as a template, then copied into
 * `replicas` sites with their own ids ("<id>-<k>"), seeds (derived from the scenario seed and the
 * id) and ports; with a "vary" block (vary.c) each replica is parsed from its own varied copy.
 * The scenario owns the sites and each site its asset array. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/physics/rng.h"
#include "sim/scenario/sections.h"

static int digits_of(int n)
{
    int d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

/* "<base>-<k>" with k zero-padded to `width` digits (k = 0: the base id alone). The caller
 * has checked that it fits in SCN_ID_MAX. */
static void replica_id(char *out, const char *base, int k, int width)
{
    size_t n = strlen(base);
    memcpy(out, base, n);
    if (k > 0) {
        char num[16];
        int nd = snprintf(num, sizeof num, "%d", k);
        out[n++] = '-';
        for (int i = nd; i < width; i++)
            out[n++] = '0';
        memcpy(out + n, num, (size_t)nd);
        n += (size_t)nd;
    }
    out[n] = '\0';
}

/* What a replica may differ in (its "group", prices and assets), from o into t; t->assets is
 * allocated (and owned by t even on error). path names o in errors. */
static int parse_body(struct scn_ld *L, const cJSON *o, const char *path, struct site_cfg *t)
{
    char p[SCN_PATH_MAX], ap[SCN_PATH_MAX];
    const char *group;
    int rc;
    if ((rc = scn_get_str(L, o, path, "group", 0, &group)) ||
        (rc = scn_get_profile_ref(L, o, path, "import_price", PK(PROFILE_TOU) | PK(PROFILE_SERIES),
                                  0, &t->import_price)) ||
        (rc = scn_get_profile_ref(L, o, path, "export_price", PK(PROFILE_TOU) | PK(PROFILE_SERIES),
                                  0, &t->export_price)))
        return rc;
    if (group && !scn_valid_id(group, sizeof t->group))
        return scn_fail(L, scn_pkey(p, path, "group"), scn_item(o, "group"),
                        "must match [A-Za-z0-9._-]+ and be shorter than %d characters", SCN_ID_MAX);
    snprintf(t->group, sizeof t->group, "%s", group ? group : "");
    const cJSON *arr = scn_item(o, "assets");
    scn_pkey(ap, path, "assets");
    if (!arr)
        return scn_fail(L, ap, NULL, "required key missing");
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1)
        return scn_fail(L, ap, arr, "must be a non-empty array");
    t->n_assets = (size_t)cJSON_GetArraySize(arr);
    t->assets = calloc(t->n_assets, sizeof *t->assets);
    if (!t->assets)
        return -ENOMEM;
    int i = 0;
    for (const cJSON *a = arr->child; a; a = a->next, i++)
        if ((rc = scn_parse_asset(L, a, scn_pidx(p, ap, i), t->assets, i)))
            return rc;
    return 0;
}

/* Replica c's asset ids must fit behind its site id ("<site id>:<asset id>"). */
static int check_uids(struct scn_ld *L, const struct site_cfg *c, const cJSON *o, const char *path)
{
    char p[SCN_PATH_MAX], ap[SCN_PATH_MAX];
    for (size_t k = 0; c->namespaced && k < c->n_assets; k++)
        if (strlen(c->id) + 1 + strlen(c->assets[k].id) >= SCN_ID_MAX)
            return scn_fail(L, scn_pkey(p, scn_pidx(ap, scn_pkey(p, path, "assets"), (int)k), "id"),
                            scn_item(cJSON_GetArrayItem(scn_item(o, "assets"), (int)k), "id"),
                            "too long for a replicated site: \"%s:%s\" must be shorter than %d "
                            "characters",
                            c->id, c->assets[k].id, SCN_ID_MAX);
    return 0;
}

static int parse_site(struct scn_ld *L, const cJSON *o, int si)
{
    static const char *const keys[] = {"id",           "replicas",     "port",   "group",  "vary",
                                       "import_price", "export_price", "tariff", "assets", NULL};
    struct scenario *s = L->s;
    struct site_cfg t = {0};
    char path[SCN_PATH_MAX], p[SCN_PATH_MAX], rp[SCN_PATH_MAX];
    double replicas, port;
    int rc;
    scn_pidx(path, "sites", si);
    if ((rc = scn_need_object(L, o, path)) || (rc = scn_check_keys(L, o, path, keys, NULL)) ||
        (rc = scn_get_id(L, o, path, "id", t.base_id, sizeof t.base_id)) ||
        (rc = scn_get_num(L, o, path, "replicas", 1, 1, 10000, B_INT | B_MIN | B_MAX, &replicas)) ||
        (rc = scn_get_num(L, o, path, "port", 0, 0, 65535, B_INT | B_MIN | B_MAX, &port)))
        return rc;
    char terr[400];
    if (tariff_charges_parse(scn_item(o, "tariff"), scn_pkey(p, path, "tariff"), NULL, &t.charges,
                             terr, sizeof terr))
        return scn_fail(L, "", NULL, "%s", terr);
    int n_rep = (int)replicas, width = digits_of(n_rep);
    if (n_rep > 1 && strlen(t.base_id) + 1 + (size_t)width >= SCN_ID_MAX)
        return scn_fail(L, scn_pkey(p, path, "id"), scn_item(o, "id"),
                        "too long for %d replicas (ids get \"-%0*d\")", n_rep, width, n_rep);
    if (port > 0 && port + n_rep - 1 > 65535)
        return scn_fail(L, scn_pkey(p, path, "port"), scn_item(o, "port"),
                        "port + replicas - 1 must be <= 65535");
    for (size_t i = 0; i < s->n_sites; i++)
        if (strcmp(s->sites[i].base_id, t.base_id) == 0)
            return scn_fail(L, scn_pkey(p, path, "id"), scn_item(o, "id"), "duplicate site id");
    /* Without "vary" the site is parsed once and copied; with it, each replica's object is
     * the written one with its drawn values, parsed on its own. */
    const cJSON *vary = scn_item(o, "vary");
    if (vary ? (rc = scn_vary_check(L, vary, o, scn_pkey(p, path, "vary")))
             : (rc = parse_body(L, o, path, &t)))
        goto out;

    struct site_cfg *grown = realloc(s->sites, (s->n_sites + (size_t)n_rep) * sizeof *grown);
    if (!grown) {
        rc = -ENOMEM;
        goto out;
    }
    s->sites = grown;
    for (int k = 0; k < n_rep; k++) {
        struct site_cfg *c = &s->sites[s->n_sites++]; /* counted now: scenario_free frees it */
        *c = t;
        c->assets = NULL;
        replica_id(c->id, t.base_id, n_rep > 1 ? k + 1 : 0, width);
        c->replica = k;
        c->namespaced = n_rep > 1;
        c->port = port > 0 ? (int)port + k : 0;
        c->seed = rng_derive_seed(s->seed, c->id);
        if (vary) {
            cJSON *copy = cJSON_Duplicate(o, 1);
            rc = copy ? scn_vary_apply(vary, copy, s->seed, c->id, k) : -ENOMEM;
            if (snprintf(rp, sizeof rp, "%s (replica %s)", path, c->id) >= (int)sizeof rp)
                rp[sizeof rp - 1] = '\0'; /* cut, as every path is */
            if (!rc)
                rc = parse_body(L, copy, rp, c);
            cJSON_Delete(copy);
        } else if (!(c->assets = malloc(t.n_assets * sizeof *c->assets))) {
            rc = -ENOMEM;
        } else {
            memcpy(c->assets, t.assets, t.n_assets * sizeof *c->assets);
        }
        if (rc || (rc = check_uids(L, c, o, path)))
            goto out;
    }
    /* A replica id may collide with another file site's id ("a" x2 and "a-1"). */
    for (size_t k = s->n_sites - (size_t)n_rep; k < s->n_sites; k++)
        for (size_t j = 0; j < s->n_sites - (size_t)n_rep; j++)
            if (strcmp(s->sites[k].id, s->sites[j].id) == 0) {
                rc = scn_fail(L, scn_pkey(p, path, "id"), scn_item(o, "id"),
                              "site id \"%s\" is used twice after replication", s->sites[k].id);
                goto out;
            }
out:
    free(t.assets);
    return rc;
}

const char *scenario_asset_uid(const struct site_cfg *c, const char *asset_id, char *buf)
{
    if (!c->namespaced)
        return asset_id;
    if (snprintf(buf, SCN_ID_MAX, "%s:%s", c->id, asset_id) >= SCN_ID_MAX)
        buf[SCN_ID_MAX - 1] = '\0'; /* never: the loader checked the length */
    return buf;
}

const char *scenario_asset_local(const struct site_cfg *c, const char *uid)
{
    size_t n = strlen(c->id);
    if (c->namespaced && !strncmp(uid, c->id, n) && uid[n] == ':')
        return uid + n + 1;
    return uid;
}

int scn_parse_sites(struct scn_ld *L, const cJSON *arr)
{
    if (!arr)
        return scn_fail(L, "sites", NULL, "required key missing");
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1)
        return scn_fail(L, "sites", arr, "must be a non-empty array");
    int i = 0, rc;
    for (const cJSON *o = arr->child; o; o = o->next, i++)
        if ((rc = parse_site(L, o, i)))
            return rc;
    return 0;
}
