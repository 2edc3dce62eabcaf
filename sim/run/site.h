/* site: one simulated site at run time: its assets in file order, their images, the scenario's
 * events for it, and the power balance grid = load + evse + boiler - pv - battery - unserved.
 * While a grid outage islands the site, grid is 0, the batteries form the grid and cover the
 * balance, and what they cannot cover is unserved (docs/physics.md). Created from a loaded
 * scenario (which must outlive it); freed with site_free. */
#ifndef DERLOOP_SITE_H
#define DERLOOP_SITE_H

#include <stddef.h>
#include <stdint.h>

#include "sim/wire/asset.h"
#include "sim/scenario/scenario.h"

struct site;

struct site_balance {
    double load_w, pv_w, battery_w, evse_w, boiler_w, grid_w;
    double unserved_w; /* demand not supplied (load shed); > 0 only while islanded */
    int islanded;      /* a grid outage of the site was active during the step */
};

struct site *site_new(const struct scenario *sc, size_t site_index, char *err, size_t errlen);
void site_free(struct site *s);

/* One step [now, now + dt): events due at or before now begin or end (file order at ties),
 * control points are read from the images, every model steps, the meters see the balance, and
 * the images are refreshed (unless frozen). */
void site_step(struct site *s, int64_t now_ms, int64_t dt_ms);

/* on = 0: site_step leaves the register images alone (no control points read, nothing
 * published): the physics alone, for the benchmark. Default on. */
void site_set_images(struct site *s, int on);

const struct site_cfg *site_cfg(const struct site *s);
size_t site_n_assets(const struct site *s);
struct sim_asset *site_asset(struct site *s, size_t i);
struct sim_asset *site_find_asset(struct site *s, const char *asset_id);
struct site_balance site_balance(const struct site *s); /* of the last step */

/* The invariants checked after every step: the balance closes to 1e-6 W, SoC in [0, 1],
 * temperatures finite, grid exactly 0 while islanded and unserved 0 otherwise. Returns 0, or -1
 * with the broken invariant in err. */
int site_check(const struct site *s, char *err, size_t errlen);

#endif
