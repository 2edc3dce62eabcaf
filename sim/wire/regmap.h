/* regmap: the register map of each asset type (docs/registers.md): SunSpec images (common
 * model 1, DER models 701/702/704, storage 713 and battery 802, meter 203) for battery, PV and
 * meters, built from the generated SunSpec tables; the derloop EVSE and boiler maps, built from
 * the generated device maps (gateway/devices/devmap.h). It moves measurements from the model
 * into the image and control points from the image into the model, and validates writes. The
 * maps themselves: sim/wire/regmap_map.h and the family files regmap_*.c. */
#ifndef DERLOOP_REGMAP_H
#define DERLOOP_REGMAP_H

#include <stdint.h>
#include <stddef.h>

#include "sim/wire/asset.h"

/* Builds a->img and a->map_state for a->type and publishes the initial values. A load asset
 * gets no image (the load is measured by a load meter asset). Returns 0 or -errno. */
int regmap_attach(struct sim_asset *a, char *err, size_t errlen);
void regmap_detach(struct sim_asset *a);
/* Measurements (model -> image). A spike overrides its point after the publish. */
void regmap_publish(struct sim_asset *a, int64_t now_ms);
/* Control points (image -> model): a point that changed since the last call becomes a model
 * command at now_ms; reversion timers (WSetRvrtTms) expire here. */
void regmap_read_controls(struct sim_asset *a, int64_t now_ms);
/* Device reboot: control points back to their defaults, the model told so. */
void regmap_reset(struct sim_asset *a, int64_t now_ms);

#endif
