/* rng.h: seeded, pure random numbers.
 *
 * Every random choice of the project (clip starts, crops, masks, drop-path decisions, initial weights) is a pure
 * function of a seed and the coordinates of the choice (epoch, clip, layer...), never of call order or thread
 * count. rng_key mixes such coordinates into one 64-bit key (SplitMix64 finaliser); an rng stream started from
 * a key gives a reproducible sequence (xoshiro256**). The state is plain data so a checkpoint can store it. */
#ifndef MVD_RNG_H
#define MVD_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng_state;

/* Mixes up to four coordinates into a key; unused coordinates should be 0. */
uint64_t rng_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);

void rng_init(rng_state *r, uint64_t key);
uint64_t rng_u64(rng_state *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t rng_below(rng_state *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform(rng_state *r);
/* Standard normal (Box-Muller, one value per call). */
double rng_normal(rng_state *r);

#endif
