/* posembed.c: the fixed sin-cos position tables (see posembed.h), in double like the reference's NumPy. */
#include "posembed.h"

#include <math.h>

/* out[0 .. D') of one position: D'/2 sines then D'/2 cosines of pos * 10000^(-k/(D'/2)). */
static void sincos_1d(float *out, int64_t Dp, double pos) {
    int64_t half = Dp / 2;
    for (int64_t k = 0; k < half; k++) {
        double omega = 1.0 / pow(10000.0, (double)k / (double)half);
        out[k] = (float)sin(pos * omega);
        out[half + k] = (float)cos(pos * omega);
    }
}

/* MAE's 2-D table of one (h, w): the w coordinate's 1-D table, then the h coordinate's, each at width D/2. */
static void sincos_2d(float *out, int64_t D, int64_t h, int64_t w) {
    sincos_1d(out, D / 2, (double)w);
    sincos_1d(out + D / 2, D / 2, (double)h);
}

int posembed_3d_sincos(float *out, int64_t D, int64_t t, int64_t gh, int64_t gw) {
    if (D <= 0 || D % 16 != 0) return -1;
    int64_t Dt = D / 4, Ds = D - Dt;
    for (int64_t ti = 0; ti < t; ti++)
        for (int64_t h = 0; h < gh; h++)
            for (int64_t w = 0; w < gw; w++) {
                float *row = out + ((ti * gh + h) * gw + w) * D;
                sincos_1d(row, Dt, (double)ti);
                sincos_2d(row + Dt, Ds, h, w);
            }
    return 0;
}

int posembed_2d_sincos(float *out, int64_t D, int64_t gh, int64_t gw, int cls) {
    if (D <= 0 || D % 4 != 0) return -1;
    if (cls)
        for (int64_t c = 0; c < D; c++) out[c] = 0.0f;
    float *rows = out + (cls ? D : 0);
    for (int64_t h = 0; h < gh; h++)
        for (int64_t w = 0; w < gw; w++) sincos_2d(rows + (h * gw + w) * D, D, h, w);
    return 0;
}

int posembed_1d_interleaved(float *out, int64_t D, int64_t n) {
    if (D <= 0 || D % 2 != 0) return -1;
    for (int64_t p = 0; p < n; p++)
        for (int64_t j = 0; j < D; j++) {
            double angle = (double)p / pow(10000.0, 2.0 * (double)(j / 2) / (double)D);
            out[p * D + j] = (float)(j % 2 == 0 ? sin(angle) : cos(angle));
        }
    return 0;
}
