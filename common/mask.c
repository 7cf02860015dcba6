/* mask.c: tube masks as pure functions of a key (see mask.h). */
#include "mask.h"

#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "util.h"

int64_t mask_count_spatial(double ratio, int64_t hw) {
    int64_t k = (int64_t)(ratio * (double)hw); /* Python's int(): truncation toward zero */
    if (k < 0) k = 0;
    if (k > hw) k = hw;
    return k;
}

void mask_tube(uint8_t *out, int64_t t, int64_t gh, int64_t gw, double ratio, uint64_t key) {
    int64_t hw = gh * gw, k = mask_count_spatial(ratio, hw);
    int64_t *perm = xmalloc((size_t)(hw ? hw : 1) * sizeof *perm);
    for (int64_t i = 0; i < hw; i++) perm[i] = i;
    /* partial Fisher-Yates: the first k entries are a uniform random k-subset */
    rng_state r;
    rng_init(&r, key);
    for (int64_t i = 0; i < k; i++) {
        int64_t j = i + (int64_t)rng_below(&r, (uint64_t)(hw - i));
        int64_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    memset(out, 0, (size_t)hw);
    for (int64_t i = 0; i < k; i++) out[perm[i]] = 1;
    for (int64_t s = 1; s < t; s++) memcpy(out + s * hw, out, (size_t)hw);
    free(perm);
}

uint64_t mask_key(uint64_t seed, uint64_t epoch, uint64_t clip_id) { return rng_key(seed, epoch, clip_id, MASK_RNG_TAG); }
