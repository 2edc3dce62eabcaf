/* devmap: the small register maps of devices SunSpec does not cover (the derloop EVSE and
 * boiler maps of docs/registers.md), as data. Each map is described once, in
 * gateway/devices/maps/NAME.json (SunSpec's format: name, address, type, scale, units, access,
 * symbols, description), and compiled at build time into the tables below (build/gen/
 * devmap_maps.{c,h}, by sunspec-gen --maps). The gateway's drivers decode and encode with them;
 * the simulator serves its images from them; docs/registers.md prints them. Points are
 * struct sunspec_point whose offset is the 0-based register address, so gateway/devices/
 * sunspec.c encodes them. The tables are static. */
#ifndef DERLOOP_DEVMAP_H
#define DERLOOP_DEVMAP_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/control/procimg.h"
#include "gateway/control/siteconf.h"
#include "gateway/devices/sunspec.h"

struct devmap {
    const char *driver; /* "derloop-evse", "derloop-boiler" */
    const char *title;  /* its section of docs/registers.md: heading and introduction */
    const char *intro;
    uint16_t map_id;  /* the value of register 0 (MapId) */
    uint16_t version; /* the value of register 1 (MapVersion) */
    uint16_t count;   /* registers from 0 */
    uint16_t n_points;
    const struct sunspec_point *points; /* in address order; offset = PDU address */
    const char *const *docs;            /* per point: what it holds */
};

size_t devmap_count(void);
const struct devmap *devmap_at(size_t i); /* NULL past the end */
const struct devmap *devmap_find(const char *driver);
const struct sunspec_point *devmap_point(const struct devmap *m, const char *name);
/* Engineering value of a point from regs (the map from register 0): raw x 10^sf. A register
 * holding the type's "not implemented" pattern reads as its raw number. */
double devmap_get(const struct sunspec_point *p, const uint16_t *regs);
/* Encodes v into regs; -ERANGE when it does not fit the type. */
int devmap_set(const struct sunspec_point *p, uint16_t *regs, double v);

/* Fills a process-image entry from the map's registers (n of them, from 0). Returns 0, or
 * -EPROTO when the map id does not match (not the device the configuration names). */
int devmap_decode(const struct devmap *m, const uint16_t *regs, size_t n,
                  const struct device_cfg *cfg, struct procimg_dev *out);
/* The registers that carry a setpoint in W (NaN = release to the device's default):
 * EVSE: CurrentLimit and Enable (W over 230 V x phases, whole amps, below the minimum pauses);
 * boiler: PowerLimit. Fills *addr, *n (<= 8) and regs. */
int devmap_encode_setpoint(const struct devmap *m, const struct device_cfg *cfg, double w,
                           uint16_t *addr, uint16_t *n, uint16_t *regs);

#endif
