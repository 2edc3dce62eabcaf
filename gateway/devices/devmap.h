/* devmap: the small register maps of devices SunSpec does not cover (docs/registers.md: the
 * derloop EVSE and boiler maps), as data: each point's address, size, type, scale and
 * access. The gateway's drivers decode and encode with them; the tables are static. */
#ifndef DERLOOP_DEVMAP_H
#define DERLOOP_DEVMAP_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/control/procimg.h"
#include "gateway/control/siteconf.h"

enum devmap_type { DM_U16, DM_I16, DM_U32, DM_I32 };

struct devmap_point {
    const char *name;
    uint16_t addr; /* 0-based PDU address */
    enum devmap_type type;
    int8_t sf; /* engineering value = raw * 10^sf */
    uint8_t writable;
};

struct devmap {
    const char *driver; /* "derloop-evse", "derloop-boiler" */
    uint16_t map_id;    /* the value of register 0 */
    uint16_t count;     /* registers from 0 */
    size_t n_points;
    const struct devmap_point *points;
};

const struct devmap *devmap_find(const char *driver);
const struct devmap_point *devmap_point(const struct devmap *m, const char *name);
/* Engineering value of a point from regs (the map from register 0). */
double devmap_get(const struct devmap_point *p, const uint16_t *regs);
/* Encodes v into regs; -ERANGE when it does not fit the type. */
int devmap_set(const struct devmap_point *p, uint16_t *regs, double v);

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
