/* posembed.h: the fixed (not learned) position tables of the three models, computed in double and stored as
 * fp32, exactly as the reference computes them in NumPy.
 *
 * - 1-D block sin-cos of width D' (MAE): [sin(p*w_0 .. p*w_{D'/2-1}), cos(same)], w_k = 10000^(-k/(D'/2)).
 * - 2-D (MAE image teacher): first half of the dims the 1-D table of the w coordinate, second half of h.
 * - 3-D (MVD student encoder and decoders): per token (t, h, w), the 1-D table of t at width D/4, then the
 *   2-D table at width 3D/4. D must be a multiple of 16.
 * - VideoMAE 1-D interleaved sinusoid (video teacher): angle = p / 10000^(2*(j/2)/D), sin on even j, cos on
 *   odd j, over the flattened token index p. */
#ifndef MVD_POSEMBED_H
#define MVD_POSEMBED_H

#include <stdint.h>

/* out (t*gh*gw, D), tokens in (t, h, w) order; returns -1 when D is not a multiple of 16. */
int posembed_3d_sincos(float *out, int64_t D, int64_t t, int64_t gh, int64_t gw);
/* out (cls + gh*gw, D): with cls = 1 the first row is zeros (MAE's cls row); D a multiple of 4. */
int posembed_2d_sincos(float *out, int64_t D, int64_t gh, int64_t gw, int cls);
/* out (n, D): VideoMAE's table; D even. */
int posembed_1d_interleaved(float *out, int64_t D, int64_t n);

#endif
