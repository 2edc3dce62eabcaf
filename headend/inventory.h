/* inventory: the configured sites and assets (the assets file, JSON) and the claim rule:
 * a gateway may serve a site only when the site lists it, and claim only that site's assets.
 * The inventory owns every string and record it returns; it is immutable after loading, so
 * both headend threads read it without a lock. */
#ifndef HEADEND_INVENTORY_H
#define HEADEND_INVENTORY_H

#include <stddef.h>

#define INV_ID_MAX 64 /* ids are at most 63 bytes */

struct inv_asset {
    char id[INV_ID_MAX];
    int type; /* der.v1.AssetType numbers: 1 battery, 2 pv, 3 meter, 4 evse, 5 boiler */
    double capacity_wh;
    double min_power_w;
    double max_power_w;
    size_t site;  /* index of its site */
    size_t index; /* its own index, stable for the process lifetime */
};

struct inv_site {
    char id[INV_ID_MAX];
    char (*gateways)[INV_ID_MAX];
    size_t n_gateways;
    size_t *assets; /* asset indexes */
    size_t n_assets;
    size_t index;
    char group[INV_ID_MAX]; /* optional "group" of the site ("" = none): POST /groups/:g/estop */
};

struct inventory;

/* Parses the assets file; on error returns -errno and a message naming the path/field. */
int inventory_load(const char *path, struct inventory **out, char *err, size_t errlen);
int inventory_parse(const char *json, struct inventory **out, char *err, size_t errlen);
void inventory_free(struct inventory *inv);

size_t inventory_site_count(const struct inventory *inv);
size_t inventory_asset_count(const struct inventory *inv);
const struct inv_site *inventory_site_at(const struct inventory *inv, size_t i);
const struct inv_asset *inventory_asset_at(const struct inventory *inv, size_t i);
const struct inv_site *inventory_site(const struct inventory *inv, const char *id);
const struct inv_asset *inventory_asset(const struct inventory *inv, const char *id);

/* May gateway_id serve site_id? 0, -ENOENT (unknown site) or -EPERM; reason filled on error. */
int inventory_check_gateway(const struct inventory *inv, const char *gateway_id,
                            const char *site_id, char *reason, size_t len);
/* May gateway_id, registered for site_id, claim asset_id? 0, -ENOENT (unknown asset or
 * site) or -EPERM (another site's asset, or a gateway the site does not list). */
int inventory_check_claim(const struct inventory *inv, const char *gateway_id, const char *site_id,
                          const char *asset_id, char *reason, size_t len);
/* Name of a der.v1.AssetType number ("battery"...); "unspecified" otherwise. */
const char *inventory_type_name(int type);

#endif
