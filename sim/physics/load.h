/* load: a site load from a profile with seeded AR(1) noise (site sign: + consumption).
 * Owns its own random stream, so its draws never depend on other assets. docs/physics.md. */
#ifndef DERLOOP_LOAD_H
#define DERLOOP_LOAD_H

#include <stdint.h>

#include "sim/physics/profile.h"
#include "sim/physics/rng.h"

struct load_params {
    const struct profile *profile; /* W; NULL = base_w only; not owned */
    double scale;                  /* multiplies the profile */
    double base_w;                 /* added to the scaled profile */
    double noise_phi;              /* AR(1) coefficient in [0, 1) */
    double noise_sigma_w;          /* innovation standard deviation, >= 0 */
};

struct load {
    struct load_params p;
    struct rng rng;
    double noise_w;
    double power_w; /* never negative */
    double energy_wh;
};

/* stream: "<site>/<asset>/noise" (see rng.h). */
void load_init(struct load *l, const struct load_params *p, uint64_t seed, const char *stream);
void load_step(struct load *l, int64_t now_ms, int64_t dt_ms);

#endif
