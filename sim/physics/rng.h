/* rng: the simulator's only source of randomness. A small splittable generator (xoshiro256**,
 * seeded through splitmix64) with one independent stream per (seed, stream name): the name is
 * "<site_id>/<asset_id>/<purpose>" so that adding an asset never shifts another asset's draws.
 * Values are plain structs owned by whoever embeds them. See docs/determinism.md. */
#ifndef DERLOOP_RNG_H
#define DERLOOP_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4];
};

/* Seeds `r` from the scenario seed and a stream name (FNV-1a of the name mixed into the seed). */
void rng_seed(struct rng *r, uint64_t seed, const char *stream);
/* A child seed for a derived entity (e.g. replica k of a site), stable across builds. */
uint64_t rng_derive_seed(uint64_t seed, const char *name);
uint64_t rng_next(struct rng *r);
double rng_uniform(struct rng *r); /* [0, 1) with 53 random bits */
double rng_normal(struct rng *r);  /* standard normal (Box-Muller, one draw pair) */
double rng_exponential(struct rng *r, double mean); /* mean > 0 */

#endif
