/* mask.h: tube masking (MVD/VideoMAE) as a pure function of an rng key.
 *
 * Per clip, int(ratio * gh*gw) spatial positions are chosen uniformly at random (a partial Fisher-Yates
 * shuffle driven by the key) and the same spatial mask repeats over all t temporal slices, so every clip has
 * the same counts. The key is normally rng_key(seed, epoch, clip_id, MASK_RNG_TAG): a clip's mask depends on
 * nothing else (not on the batch it lands in, the thread or the call order). */
#ifndef MVD_MASK_H
#define MVD_MASK_H

#include <stdint.h>

#define MASK_RNG_TAG 0x6d61736bULL /* "mask" */

/* Spatial positions masked per slice: int(ratio * hw) as the reference computes it (truncation). */
int64_t mask_count_spatial(double ratio, int64_t hw);
/* out (t*gh*gw) uint8 in (t, h, w) order, 1 = masked. */
void mask_tube(uint8_t *out, int64_t t, int64_t gh, int64_t gw, double ratio, uint64_t key);
/* Convenience: the key of a clip's mask in a given epoch. */
uint64_t mask_key(uint64_t seed, uint64_t epoch, uint64_t clip_id);

#endif
