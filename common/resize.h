/* resize.h: PIL's BILINEAR resize of 8-bit RGB images, reproduced bit for bit.
 *
 * The reference pipeline resizes every crop with PIL (Image.resize(size, Image.BILINEAR)); matching its integer
 * arithmetic exactly makes the project's pixels, and so the teachers' targets, equal to the reference's for the
 * same decoded frame. The method (Pillow's resampling code, stable for many releases): two separable passes,
 * horizontal then vertical, each rounding to uint8; per output pixel a triangle filter whose support widens by
 * the scale factor when shrinking (antialiasing); weights normalised in double, then fixed point with 22
 * fractional bits. */
#ifndef MVD_RESIZE_H
#define MVD_RESIZE_H

#include <stdint.h>

#include "util.h"

/* Resizes src (src_h rows of src_w RGB pixels, rows src_stride bytes apart) into dst (dst_h x dst_w x 3,
 * packed). Fails only for sizes that are not positive. */
int resize_bilinear_pil(const uint8_t *src, int src_w, int src_h, size_t src_stride, uint8_t *dst, int dst_w,
                        int dst_h, mvd_err *err);

#endif
