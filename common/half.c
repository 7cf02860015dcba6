/* half.c: fp32 <-> fp16 by bit manipulation (see half.h for the rounding rules). Portable C, no F16C needed. */
#include "half.h"

#include <string.h>

#define F32_ABS_INF 0x7f800000u
#define F32_HALF_OVERFLOW 0x477ff000u  /* 65520: halfway between 65504 (largest fp16) and 65536 */
#define F32_HALF_MIN_NORMAL 0x38800000u /* 2^-14 */
#define F32_HALF_ZERO_LIMIT 0x33000000u /* 2^-25: at or below it everything rounds to zero */

static uint32_t float_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

static float bits_float(uint32_t x) {
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* Keeps `kept` after dropping the low `shift` bits of `value`, rounding to nearest, ties to even. */
static uint32_t round_shift(uint32_t value, unsigned shift) {
    uint32_t kept = value >> shift;
    uint32_t rest = value & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (kept & 1u))) kept++;
    return kept;
}

uint16_t half_from_float(float f) {
    uint32_t x = float_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t a = x & 0x7fffffffu;
    if (a >= F32_ABS_INF) {
        if (a == F32_ABS_INF) return sign | 0x7c00u;
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* quiet NaN, top payload kept */
    }
    if (a >= F32_HALF_OVERFLOW) return sign | 0x7c00u;
    if (a >= F32_HALF_MIN_NORMAL) {
        /* Rebias the exponent (127 -> 15) and round the 23-bit mantissa to 10; a carry may bump the exponent. */
        uint32_t h = round_shift(a, 13) - ((127u - 15u) << 10);
        return (uint16_t)(sign | h);
    }
    if (a <= F32_HALF_ZERO_LIMIT) return sign;
    /* fp16 subnormal: value / 2^-24 = mantissa (with its implicit bit) >> (126 - exponent). Exponent is in
     * 102..112 here, so the shift is 14..24; rounding up may give 0x400, the smallest normal, as it should. */
    uint32_t exponent = a >> 23;
    uint32_t mantissa = (a & 0x7fffffu) | 0x800000u;
    return (uint16_t)(sign | round_shift(mantissa, 126u - exponent));
}

float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1fu) return bits_float(sign | F32_ABS_INF | (mantissa << 13));
    if (exponent != 0) return bits_float(sign | ((exponent + 127u - 15u) << 23) | (mantissa << 13));
    float magnitude = (float)mantissa * 0x1p-24f; /* zero or subnormal: exact in fp32 */
    return sign ? -magnitude : magnitude;
}

void half_from_float_array(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = half_from_float(src[i]);
}

void half_to_float_array(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = half_to_float(src[i]);
}
