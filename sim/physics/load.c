/* load: a profile-driven site load with AR(1) noise (see load.h and docs/physics.md).
 *
 * x_k = phi * x_(k-1) + sigma * e_k with e_k standard normal from the load's own stream, so a
 * load's draws depend only on (site seed, stream name) and never on the other assets. One draw
 * per step; the noise is per step, so its spectrum depends on the scenario's step. */
#include "sim/physics/load.h"

#include <string.h>

void load_init(struct load *l, const struct load_params *p, uint64_t seed, const char *stream)
{
    memset(l, 0, sizeof *l);
    l->p = *p;
    rng_seed(&l->rng, seed, stream);
}

void load_step(struct load *l, int64_t now_ms, int64_t dt_ms)
{
    double w = l->p.base_w;
    if (l->p.profile)
        w += l->p.scale * profile_value(l->p.profile, now_ms);
    if (l->p.noise_sigma_w > 0.0)
        l->noise_w = l->p.noise_phi * l->noise_w + l->p.noise_sigma_w * rng_normal(&l->rng);
    w += l->noise_w;
    l->power_w = w > 0.0 ? w : 0.0; /* a load never feeds the grid */
    l->energy_wh += l->power_w * (double)dt_ms / 3600000.0;
}
