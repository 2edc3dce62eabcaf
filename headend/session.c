/* session: the routing maps are two arrays indexed by the inventory's site and asset indexes
 * (the inventory is fixed for the process lifetime, and ids resolve to indexes through its
 * hash maps), so a telemetry message or a dispatch finds its stream in O(1). */
#include "headend/session.h"

#include <errno.h>
#include <stdlib.h>

struct registry {
    struct session **site;
    size_t n_sites;
    struct session **asset;
    size_t n_assets;
    size_t sessions;
};

struct registry *registry_new(size_t n_sites, size_t n_assets)
{
    struct registry *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->site = calloc(n_sites + 1, sizeof(*r->site));
    r->asset = calloc(n_assets + 1, sizeof(*r->asset));
    if (!r->site || !r->asset) {
        registry_free(r);
        return NULL;
    }
    r->n_sites = n_sites;
    r->n_assets = n_assets;
    return r;
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    free(r->site);
    free(r->asset);
    free(r);
}

void registry_detach(struct registry *r, struct session *s)
{
    if (s->site < r->n_sites && r->site[s->site] == s) {
        r->site[s->site] = NULL;
        r->sessions--;
    }
    for (size_t i = 0; i < s->n_assets; i++)
        if (s->assets[i] < r->n_assets && r->asset[s->assets[i]] == s)
            r->asset[s->assets[i]] = NULL;
}

int registry_attach(struct registry *r, struct session *s, struct session **replaced)
{
    *replaced = NULL;
    if (s->site >= r->n_sites)
        return -EINVAL;
    for (size_t i = 0; i < s->n_assets; i++)
        if (s->assets[i] >= r->n_assets)
            return -EINVAL;
    struct session *old = r->site[s->site];
    if (old && old != s) {
        registry_detach(r, old);
        *replaced = old;
    }
    if (r->site[s->site] != s)
        r->sessions++;
    r->site[s->site] = s;
    for (size_t i = 0; i < s->n_assets; i++)
        r->asset[s->assets[i]] = s;
    return 0;
}

struct session *registry_site(const struct registry *r, size_t site)
{
    return site < r->n_sites ? r->site[site] : NULL;
}

struct session *registry_asset(const struct registry *r, size_t asset)
{
    return asset < r->n_assets ? r->asset[asset] : NULL;
}

size_t registry_sessions(const struct registry *r)
{
    return r->sessions;
}

int session_serves(const struct session *s, size_t asset)
{
    for (size_t i = 0; i < s->n_assets; i++)
        if (s->assets[i] == asset)
            return 1;
    return 0;
}
