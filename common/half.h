/* half.h: IEEE 754 binary16 (fp16) <-> binary32 (fp32) conversion.
 *
 * The target cache stores teacher features as fp16 by default. The conversion is done here, bit-exactly, rather
 * than by HDF5's generic float converter, so that what a shard holds is the same whatever library wrote it and
 * matches numpy's float32 -> float16 cast: round to nearest, ties to even; values at or above 65520 in magnitude
 * become infinity; values below the smallest normal become subnormals (or signed zero); NaN stays NaN (quieted,
 * keeping the top payload bits); fp16 -> fp32 is exact. */
#ifndef MVD_HALF_H
#define MVD_HALF_H

#include <stddef.h>
#include <stdint.h>

uint16_t half_from_float(float f);
float half_to_float(uint16_t h);

void half_from_float_array(uint16_t *dst, const float *src, size_t n);
void half_to_float_array(float *dst, const uint16_t *src, size_t n);

#endif
